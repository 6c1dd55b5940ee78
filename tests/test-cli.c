/* SPDX-License-Identifier: MIT */
/*
 * The elbus command-line tool, run as a user would: a subprocess against a
 * broker, checked by its output and exit status.
 */
#include "config.h"

#include <string.h>

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include <elbus/elbus.h>

#include "elbus-test-util.h"

static const char *
cli_path (void)
{
  const char *path = g_getenv ("ELBUS_CLI");

  g_assert_nonnull (path);
  return path;
}

/* Runs elbus with @args (NULL-terminated) and @input on stdin; returns the
 * exit status. */
static int
run_cli (const char * const  *args,
         const char          *input,
         gsize                input_len,
         char               **out,
         char               **err)
{
  g_autoptr(GBytes) stdin_bytes = input != NULL ? g_bytes_new (input, input_len) : NULL;

  return elbus_test_run_program (cli_path (), args, stdin_bytes, out, err);
}

typedef struct {
  GSubprocess      *proc;
  GDataInputStream *out;
  GDataInputStream *err;
  gboolean          waited;
} Listener;

/* Starts "elbus ADDRESS -n NAME COMMAND…" and waits for its ready line
 * (printed once it is registered and subscribed) to contain @ready. */
static Listener *
listener_start_command (const char         *address,
                        const char         *name,
                        const char * const *command,
                        const char         *ready)
{
  Listener *l = g_new0 (Listener, 1);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  g_ptr_array_add (argv, (char *) cli_path ());
  g_ptr_array_add (argv, (char *) address);
  g_ptr_array_add (argv, (char *) "-n");
  g_ptr_array_add (argv, (char *) name);
  for (guint i = 0; command[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) command[i]);
  g_ptr_array_add (argv, NULL);

  l->proc = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               &error);
  g_assert_no_error (error);
  l->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (l->proc));
  l->err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (l->proc));

  line = elbus_test_read_line (l->err);
  g_assert_nonnull (line);
  g_assert_nonnull (strstr (line, ready));
  g_assert_nonnull (strstr (line, name));

  return l;
}

static Listener *
listener_start (const char *address,
                const char *name,
                const char *topic)
{
  return listener_start_command (address, name,
                                 (const char *[]) { "listen", "-t", topic, NULL },
                                 "listening as");
}

static int
listener_wait (Listener *l)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait (l->proc, NULL, &error);
  g_assert_no_error (error);
  l->waited = TRUE;
  g_assert_true (g_subprocess_get_if_exited (l->proc));
  return g_subprocess_get_exit_status (l->proc);
}

static void
listener_free (Listener *l)
{
  if (!l->waited)
    {
      g_subprocess_send_signal (l->proc, SIGTERM);
      g_subprocess_wait (l->proc, NULL, NULL);
    }
  g_object_unref (l->out);
  g_object_unref (l->err);
  g_object_unref (l->proc);
  g_free (l);
}

static void
assert_line (Listener   *l,
             const char *prefix,
             const char *suffix)
{
  g_autofree char *line = elbus_test_read_line (l->out);

  g_assert_nonnull (line);
  /* after the timestamp: "KIND from SENDER...: PAYLOAD" */
  g_assert_nonnull (strchr (line, ' '));
  if (!g_str_has_prefix (strchr (line, ' ') + 1, prefix) || !g_str_has_suffix (line, suffix))
    g_error ("unexpected line “%s”, wanted “%s…%s”", line, prefix, suffix);
}

static void
test_help (void)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_autofree char *version = NULL;

  g_test_summary ("elbus --help lists the commands, --version prints the version; no "
                  "arguments is a usage error");

  g_assert_cmpint (run_cli ((const char *[]) { "--help", NULL }, NULL, 0, &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "listen"));
  g_assert_nonnull (strstr (out, "publish"));
  g_assert_nonnull (strstr (out, "benchmark"));
  /* all of benchmark's options, as README.md and elbus(1) */
  g_assert_nonnull (strstr (out, "[--payload-size N] [--window N]"));

  g_assert_cmpint (run_cli ((const char *[]) { "--version", NULL }, NULL, 0, &version, NULL),
                   ==, 0);
  g_assert_cmpstr (version, ==, "elbus " ELBUS_VERSION_S "\n");

  g_assert_cmpint (run_cli ((const char *[]) { NULL }, NULL, 0, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "PATH COMMAND"));
}

static void
test_send_publish_listen (gconstpointer data)
{
  ElbusTestTransport transport = GPOINTER_TO_INT (data);
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  g_autofree char *address = NULL;
  Listener *l;

  g_test_summary ("listen prints what send and publish deliver: JSON, text, MessagePack "
                  "(integers above G_MAXINT64 as strings) and hex, messages, broadcasts and "
                  "publications");

  if (transport == ELBUS_TEST_TRANSPORT_UNIX)
    address = g_strdup (elbus_test_broker_get_unix_path (tb));
  else if (transport == ELBUS_TEST_TRANSPORT_WS)
    address = g_strdup (elbus_test_broker_get_ws_url (tb));
  else
    address = g_strdup_printf ("127.0.0.1:%u", elbus_test_broker_get_tcp_port (tb));

  l = listener_start (address, "cli.listener", "x/#");

  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.pub", "publish", "x/y",
                                               "{\"a\": [1, 2]}", NULL }, NULL, 0, NULL, NULL),
                   ==, 0);
  assert_line (l, "publication from cli.pub on x/y: ", "{\"a\":[1,2]}");

  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.snd", "send", "cli.listener",
                                               "hello there", NULL }, NULL, 0, NULL, NULL),
                   ==, 0);
  assert_line (l, "message from cli.snd: ", "hello there");

  /* the payload from standard input, binary */
  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.bin", "send", "cli.listener",
                                               NULL }, "\x01\xff\x00", 3, NULL, NULL),
                   ==, 0);
  assert_line (l, "message from cli.bin: ", "0x01ff00");

  /* MessagePack as JSON; unsigned integers above G_MAXINT64, which
   * json-glib would make negative, as strings of their decimal digits */
  {
    g_autoptr(GBytes) payload =
      elbus_test_msgpack_from_text ("{'max': <uint64 18446744073709551615>, "
                                    "'top': <uint64 9223372036854775808>, "
                                    "'in': <[<uint64 7>, <int64 -1>, "
                                    "<uint64 9223372036854775809>]>}");

    g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.mp", "send",
                                                 "cli.listener", NULL },
                              g_bytes_get_data (payload, NULL), g_bytes_get_size (payload),
                              NULL, NULL), ==, 0);
    assert_line (l, "message from cli.mp: ",
                 "{\"max\":\"18446744073709551615\",\"top\":\"9223372036854775808\","
                 "\"in\":[7,-1,\"9223372036854775809\"]}");
  }
  /* NaN and the infinities, which JSON has not, as their names */
  {
    g_autoptr(GBytes) payload =
      elbus_test_msgpack_from_text ("{'nan': <nan>, 'inf': <inf>, 'minf': <-inf>, "
                                    "'x': <[<1.5>]>}");

    g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.nan", "send",
                                                 "cli.listener", NULL },
                              g_bytes_get_data (payload, NULL), g_bytes_get_size (payload),
                              NULL, NULL), ==, 0);
    assert_line (l, "message from cli.nan: ",
                 "{\"nan\":\"NaN\",\"inf\":\"Infinity\",\"minf\":\"-Infinity\","
                 "\"x\":[1.5]}");
  }

  /* a target with a wildcard is a broadcast */
  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.bc", "send", "cli.*",
                                               "all", NULL }, NULL, 0, NULL, NULL),
                   ==, 0);
  assert_line (l, "broadcast from cli.bc: ", "all");

  /* real-time is flagged */
  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.rt", "publish", "-r", "x/z",
                                               "now", NULL }, NULL, 0, NULL, NULL),
                   ==, 0);
  assert_line (l, "publication from cli.rt on x/z (realtime): ", "now");

  listener_free (l);
  elbus_test_broker_free (tb);
}

static void
test_errors (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autofree char *missing = g_build_filename (g_get_tmp_dir (), "elbus-cli-missing.sock", NULL);
  Listener *l;

  g_test_summary ("Errors are clear and the exit status is 1, or 2 for a command line that "
                  "makes no sense: unknown target, unreachable broker, a silent one within "
                  "--timeout, name taken; unknown command, option or broker method, missing "
                  "or extra argument, an option for another subcommand; the broker going away "
                  "(dropping the client, with or without a reason, or shutting down)");

  {
    g_autofree char *err = NULL;

    g_assert_cmpint (run_cli ((const char *[]) { address, "send", "nobody.here", "x", NULL },
                              NULL, 0, NULL, &err), ==, 1);
    g_assert_nonnull (strstr (err, "“nobody.here” is not registered"));
  }
  {
    g_autofree char *err = NULL;

    g_assert_cmpint (run_cli ((const char *[]) { missing, "send", "a", "x", NULL },
                              NULL, 0, NULL, &err), ==, 1);
    g_assert_true (g_str_has_prefix (err, "elbus: "));
  }
  {
    g_autofree char *err = NULL;

    l = listener_start (address, "cli.taken", "t");
    g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.taken", "publish", "t", "x",
                                                 NULL }, NULL, 0, NULL, &err), ==, 1);
    g_assert_nonnull (strstr (err, "already taken"));
  }
  {
    g_autofree char *err = NULL;

    g_assert_cmpint (run_cli ((const char *[]) { address, "frobnicate", NULL },
                              NULL, 0, NULL, &err), ==, 2);
    g_assert_nonnull (strstr (err, "unknown command"));
  }
  {
    /* command lines that make no sense are usage errors, status 2 */
    const char * const usage_errors[][8] = {
      { "--frob", address, "broker", "test" },
      { address, "send" },
      { address, "listen", "extra" },
      { address, "broker", "benchmark.test" },
      { address, "rpc", "frob" },
      { address, "benchmark", "foo" },
      { address, "benchmark", "--window", "-1" },
      { "--timeout", "1e6", address, "broker", "test" },
    };

    for (guint i = 0; i < G_N_ELEMENTS (usage_errors); i++)
      {
        g_autofree char *err = NULL;

        g_assert_cmpint (run_cli ((const char **) usage_errors[i], NULL, 0, NULL, &err), ==, 2);
        g_assert_true (g_str_has_prefix (err, "elbus: "));
      }
  }
  {
    g_autofree char *err = NULL;
    g_autofree char *dir = g_dir_make_tmp ("elbus-cli-XXXXXX", NULL);
    g_autofree char *silent = g_build_filename (dir, "silent.sock", NULL);
    g_autoptr(GSocketAddress) sa = g_unix_socket_address_new (silent);
    g_autoptr(GSocket) listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                                G_SOCKET_PROTOCOL_DEFAULT, NULL);
    gint64 start;

    /* --timeout bounds connecting too: a peer that accepts and says nothing */
    g_assert_true (g_socket_bind (listener, sa, FALSE, NULL));
    g_assert_true (g_socket_listen (listener, NULL));
    start = g_get_monotonic_time ();
    g_assert_cmpint (run_cli ((const char *[]) { "--timeout", "0.3", silent, "broker", "test",
                                                 NULL }, NULL, 0, NULL, &err), ==, 1);
    g_assert_nonnull (strstr (err, "within 0.3 s"));
    g_assert_cmpint (g_get_monotonic_time () - start, <, elbus_test_scale_ms (3000) * 1000);
    g_socket_close (listener, NULL);
    (void) g_remove (silent);
    (void) g_rmdir (dir);
  }
  {
    g_autofree char *err = NULL;

    /* an option the subcommand would ignore */
    g_assert_cmpint (run_cli ((const char *[]) { address, "rpc", "-t", "x/y", "call", "a.b",
                                                 "m", NULL }, NULL, 0, NULL, &err), ==, 2);
    g_assert_nonnull (strstr (err, "--topic is for rpc listen only"));
  }

  /* the broker drops the listener, telling it why: it says so and fails */
  g_assert_true (elbus_test_broker_disconnect_client (tb, "cli.taken", "policy changed"));
  g_assert_cmpint (listener_wait (l), ==, 1);
  {
    g_autofree char *line = elbus_test_read_line (l->err);

    g_assert_cmpstr (line, ==, "elbus: disconnected by the broker: policy changed");
  }
  listener_free (l);

  /* dropped without a word */
  l = listener_start (address, "cli.dropped", "t");
  g_assert_true (elbus_test_broker_force_disconnect (tb, "cli.dropped"));
  g_assert_cmpint (listener_wait (l), ==, 1);
  {
    g_autofree char *line = elbus_test_read_line (l->err);

    g_assert_cmpstr (line, ==, "elbus: the broker closed the connection");
  }
  listener_free (l);

  /* the broker shuts down, announcing it on .broker/warn: as elbus-monitor */
  elbus_test_broker_enable_core_rpc (tb);
  l = listener_start (address, "cli.shutdown", "t");
  elbus_test_broker_free (tb);
  g_assert_cmpint (listener_wait (l), ==, 1);
  {
    g_autofree char *line = elbus_test_read_line (l->err);

    g_assert_cmpstr (line, ==, "elbus: the broker shut down");
  }
  listener_free (l);
}

static guint
count_substrings (const char *haystack,
                  const char *needle)
{
  guint n = 0;

  for (const char *p = strstr (haystack, needle); p != NULL; p = strstr (p + 1, needle))
    n++;
  return n;
}

static void
test_addresses (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autofree char *missing = g_build_filename (g_get_tmp_dir (), "elbus-cli-missing.sock", NULL);

  g_test_summary ("Address mistakes are said once, on one line: a socket that is not there "
                  "is named (status 1); a word taken for a host name suggests ./, a bad "
                  "port is said once, PATH without a command says so (status 2); ./PATH "
                  "is a socket path");

  {
    g_autofree char *err = NULL;
    g_autofree char *expected = g_strdup_printf ("elbus: cannot connect to %s: there is no "
                                                 "such socket (is elbusd running?)\n", missing);

    g_assert_cmpint (run_cli ((const char *[]) { missing, "send", "a", "x", NULL },
                              NULL, 0, NULL, &err), ==, 1);
    g_assert_cmpstr (err, ==, expected);
  }
  {
    g_autofree char *err = NULL;

    g_assert_cmpint (run_cli ((const char *[]) { "relative", "publish", "a", "b", NULL },
                              NULL, 0, NULL, &err), ==, 2);
    g_assert_cmpuint (count_substrings (err, "\n"), ==, 1);
    g_assert_nonnull (strstr (err, "neither a UNIX socket path nor HOST:PORT"));
    g_assert_nonnull (strstr (err, "“./relative”"));
  }
  {
    g_autofree char *err = NULL;

    g_assert_cmpint (run_cli ((const char *[]) { "127.0.0.1:99999", "publish", "a", "b", NULL },
                              NULL, 0, NULL, &err), ==, 2);
    g_assert_cmpuint (count_substrings (err, "\n"), ==, 1);
    g_assert_cmpuint (count_substrings (err, "99999"), ==, 1);
    g_assert_nonnull (strstr (err, "the port must be a number from 1 to 65535"));
  }
  {
    g_autofree char *err = NULL;

    g_assert_cmpint (run_cli ((const char *[]) { address, NULL }, NULL, 0, NULL, &err), ==, 2);
    g_assert_true (g_str_has_prefix (err, "elbus: missing command"));
    g_assert_nonnull (strstr (err, "PATH COMMAND"));
  }
  {
    g_autoptr(GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
    g_autofree char *dir = g_path_get_dirname (address);
    g_autofree char *base = g_path_get_basename (address);
    g_autofree char *relative = g_strconcat ("./", base, NULL);
    g_autoptr(GSubprocess) proc = NULL;
    g_autoptr(GError) error = NULL;

    g_subprocess_launcher_set_cwd (launcher, dir);
    proc = g_subprocess_launcher_spawn (launcher, &error, cli_path (), relative, "publish",
                                        "t", "x", NULL);
    g_assert_no_error (error);
    g_assert_true (g_subprocess_wait_check (proc, NULL, &error));
    g_assert_no_error (error);
  }

  elbus_test_broker_free (tb);
}

static void
test_broker_commands (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autofree char *out = NULL;
  g_autofree char *list = NULL;
  g_autofree char *info = NULL;

  g_test_summary ("elbus PATH broker test|info|client.list print the .broker answers; "
                  "global options clustered and before --");

  elbus_test_broker_enable_core_rpc (tb);

  g_assert_cmpint (run_cli ((const char *[]) { address, "broker", "test", NULL }, NULL, 0,
                            &out, NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "ok"));
  g_assert_nonnull (strstr (out, "true"));

  g_assert_cmpint (run_cli ((const char *[]) { address, "broker", "info", NULL }, NULL, 0,
                            &info, NULL), ==, 0);
  g_assert_nonnull (strstr (info, ELBUS_VERSION_S));

  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.lister", "broker",
                                               "client.list", NULL }, NULL, 0, &list, NULL),
                   ==, 0);
  g_assert_true (g_str_has_prefix (list, "name"));
  g_assert_nonnull (strstr (list, ".broker"));
  g_assert_nonnull (strstr (list, "internal"));
  g_assert_nonnull (strstr (list, "cli.lister"));
  g_assert_nonnull (strstr (list, "local_ipc"));
  g_clear_pointer (&list, g_free);

  /* -n at the end of a cluster takes the next argument; after --, PATH */
  g_assert_cmpint (run_cli ((const char *[]) { "-sn", "cli.cluster", "--", address, "broker",
                                               "client.list", NULL }, NULL, 0, &list, NULL),
                   ==, 0);
  g_assert_nonnull (strstr (list, "cli.cluster"));

  elbus_test_broker_free (tb);
}

static void
test_benchmark_failure (void)
{
  ElbusTestBrokerOptions options = { .max_frame_size = 1024 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_auto(GStrv) lines = NULL;

  g_test_summary ("A benchmark stage whose client the broker drops (frames over its limit, "
                  "even without acks) says failed instead of a rate, and elbus exits 1");

  elbus_test_broker_enable_core_rpc (tb);
  g_assert_cmpint (run_cli ((const char *[]) { address, "benchmark", "-i", "50",
                                               "--payload-size", "2000", NULL },
                            NULL, 0, &out, &err), ==, 1);
  lines = g_strsplit (out, "\n", -1);
  g_assert_true (g_str_has_prefix (lines[0], "mode: "));
  g_assert_true (g_str_has_prefix (lines[1], "stage"));
  g_assert_true (g_str_has_prefix (lines[2], "send.qos.no "));
  g_assert_nonnull (strstr (lines[2], " failed "));
  g_assert_nonnull (strstr (err, "benchmark send.qos.no, worker 0: "));
  /* every stage failed alike, and no round trip was timed */
  for (guint i = 2; lines[i] != NULL && lines[i][0] != '\0'; i++)
    g_assert_nonnull (strstr (lines[i], " failed "));
  g_assert_null (strstr (out, "round trip"));

  elbus_test_broker_free (tb);
}

static void
test_benchmark_dropped_flush (void)
{
  ElbusTestBrokerOptions options = { .max_frame_size = 1024 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  const char *address = elbus_test_broker_get_unix_path (tb);

  g_test_summary ("A one-way benchmark stage dropped by the broker while it sends (its "
                  "periodic flush fails, then the last one) reports the first error, "
                  "without GLib's warning about a GError set over another");

  elbus_test_broker_enable_core_rpc (tb);
  /* whether the periodic flush (every 1024 frames) or the worker's main
   * loop sees the connection close first is a race: a few runs */
  for (guint run = 0; run < 5; run++)
    {
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;

      g_assert_cmpint (run_cli ((const char *[]) { address, "benchmark", "-i", "1100",
                                                   "--payload-size", "2000", NULL },
                                NULL, 0, &out, &err), ==, 1);
      g_assert_null (strstr (err, "GError set over the top"));
      g_assert_null (strstr (err, "WARNING"));
      g_assert_nonnull (strstr (err, "benchmark send.qos.no, worker 0: "));
      g_assert_nonnull (strstr (out, "send.qos.no "));
    }

  elbus_test_broker_free (tb);
}

static const char *const bench_stages[] = {
  "send.qos.no", "send.qos.processed", "send+recv.qos.no", "send+recv.qos.processed",
  "rpc.call", "rpc.call+handle", "rpc.call0",
};

/* The table after the mode line: the stages in the original's order,
 * each with a rate. */
static void
assert_bench_table (char **lines)
{
  g_assert_true (g_str_has_prefix (lines[1], "stage "));
  for (guint i = 0; i < G_N_ELEMENTS (bench_stages); i++)
    {
      g_auto(GStrv) words = g_strsplit_set (lines[2 + i], " ", -1);
      g_autoptr(GPtrArray) cols = g_ptr_array_new ();

      for (guint j = 0; words[j] != NULL; j++)
        if (words[j][0] != '\0')
          g_ptr_array_add (cols, words[j]);
      g_assert_cmpuint (cols->len, ==, 3);
      g_assert_cmpstr (cols->pdata[0], ==, bench_stages[i]);
      g_assert_cmpfloat (g_ascii_strtod (cols->pdata[1], NULL), >, 0);
    }
}

static const char *
lookup_str (GVariant   *event,
            const char *key)
{
  const char *s = NULL;

  g_assert_true (g_variant_lookup (event, key, "&s", &s));
  return s;
}

static void
test_benchmark_stages (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autoptr(ElbusTestConn) mon = NULL;
  g_autoptr(GBytes) filters = NULL;
  g_autoptr(GBytes) answer = NULL;
  g_autofree char *out = NULL;
  g_auto(GStrv) lines = NULL;
  guint seen[G_N_ELEMENTS (bench_stages)] = { 0 };
  guint settles = 0;
  /* 30 operations a stage, the self-calls' replies, one settling frame
   * after each stage */
  const guint expected = 30 * G_N_ELEMENTS (bench_stages) + 30 + G_N_ELEMENTS (bench_stages);

  g_test_summary ("benchmark runs the original's stages by default: what a monitor sees "
                  "of each (targets, QoS RealtimeProcessed for the processed and rpc "
                  "ones, the 0xEE payload) and the mode line; --window says so");

  elbus_test_broker_enable_core_rpc (tb);
  mon = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "cli.mon");
  filters = elbus_test_msgpack_from_text ("{'sender': <['cli.bench.*']>, "
                                          "'kinds': <['message']>}");
  answer = elbus_test_conn_core_call (mon, 1, "monitor.start", g_bytes_get_data (filters, NULL),
                                      g_bytes_get_size (filters));
  g_assert_nonnull (answer);

  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.bench", "benchmark", "-i",
                                               "30", "--payload-size", "10", NULL },
                            NULL, 0, &out, NULL), ==, 0);
  lines = g_strsplit (out, "\n", -1);
  g_assert_true (g_str_has_prefix (lines[0], "mode: one operation in flight per worker"));
  assert_bench_table (lines);
  g_assert_null (strstr (out, "round trip"));

  for (guint i = 0; i < expected; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(ElbusTestFrame) frame = elbus_test_conn_try_read_frame (mon,
                                                                        ELBUS_TEST_DEADLINE_MS,
                                                                        TRUE, &error);
      g_autoptr(GVariant) event = NULL;
      g_autoptr(GVariant) p = NULL;
      g_autofree char *null_target = NULL;
      const char *s, *d;
      guint stage;
      guint64 q;

      g_assert_no_error (error);
      g_assert_cmpstr (frame->topic, ==, ".broker/monitor");
      event = elbus_msgpack_decode (frame->payload, &error);
      g_assert_no_error (error);
      s = lookup_str (event, "s");
      d = lookup_str (event, "d");
      q = elbus_test_lookup_uint (event, "q");
      /* cli.bench.STAGE.worker.0 */
      g_assert_true (g_str_has_prefix (s, "cli.bench."));
      stage = (guint) g_ascii_strtoull (s + strlen ("cli.bench."), NULL, 10);
      g_assert_cmpuint (stage, <, G_N_ELEMENTS (bench_stages));
      g_assert_true (g_str_has_suffix (s, ".worker.0"));
      if (g_str_equal (d, "elbus.benchmark.nobody"))
        {
          settles++;
          continue;
        }
      seen[stage]++;
      null_target = g_strdup_printf ("%s-null", s);
      p = g_variant_lookup_value (event, "p", G_VARIANT_TYPE_BYTESTRING);
      g_assert_nonnull (p);

      switch (stage)
        {
        case 0:
        case 1:
        case 2:
        case 3:
          g_assert_cmpstr (d, ==, stage < 2 ? null_target : s);
          g_assert_cmpuint (q, ==, stage % 2 ? ELBUS_QOS_REALTIME_PROCESSED : ELBUS_QOS_NO);
          g_assert_cmpuint (elbus_test_lookup_uint (event, "l"), ==, 10);
          g_assert_cmpuint (g_variant_get_size (p), ==, 10);
          g_assert_cmpint (((const guint8 *) g_variant_get_data (p))[0], ==, 0xEE);
          break;
        default:
          /* requests (and, to itself, replies) are real-time and acked */
          g_assert_cmpuint (q, ==, ELBUS_QOS_REALTIME_PROCESSED);
          g_assert_cmpstr (d, ==, stage == 4 ? ".broker" : stage == 5 ? s : null_target);
          break;
        }
    }
  g_assert_cmpuint (settles, ==, G_N_ELEMENTS (bench_stages));
  for (guint i = 0; i < G_N_ELEMENTS (bench_stages); i++)
    g_assert_cmpuint (seen[i], ==, i == 5 ? 60 : 30);
  elbus_test_conn_expect_nothing (mon, ELBUS_TEST_QUIET_MS);

  g_clear_pointer (&out, g_free);
  g_clear_pointer (&lines, g_strfreev);
  g_assert_cmpint (run_cli ((const char *[]) { address, "benchmark", "-i", "40", "-w", "2",
                                               "--window", "8", NULL }, NULL, 0, &out, NULL),
                   ==, 0);
  lines = g_strsplit (out, "\n", -1);
  g_assert_cmpstr (lines[0], ==, "mode: up to 8 operations in flight per worker (--window)");
  assert_bench_table (lines);
  g_assert_nonnull (strstr (out, "round trip"));

  elbus_test_broker_free (tb);
}

static void
test_rpc_commands (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  Listener *l;

  g_test_summary ("rpc listen prints calls with typed K=V params, call0 and notifications; "
                  "rpc call prints answers and RPC errors with their code");

  elbus_test_broker_enable_core_rpc (tb);
  l = listener_start_command (address, "cli.rpcsrv", (const char *[]) { "rpc", "listen", NULL },
                              "listening for RPC as");

  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.caller", "rpc", "call",
                                               "cli.rpcsrv", "hello", "a=1", "b=true", "c=2.5",
                                               "d=text", NULL }, NULL, 0, NULL, NULL), ==, 0);
  assert_line (l, "call hello #1 from cli.caller: ", "{\"a\":1,\"b\":true,\"c\":2.5,\"d\":\"text\"}");

  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.caller", "rpc", "call0",
                                               "cli.rpcsrv", "ping", NULL }, NULL, 0, NULL, NULL),
                   ==, 0);
  assert_line (l, "call ping #0 from cli.caller: ", "");

  g_assert_cmpint (run_cli ((const char *[]) { address, "-n", "cli.caller", "rpc", "notify",
                                               "cli.rpcsrv", "{\"n\": 1}", NULL }, NULL, 0, NULL,
                            NULL), ==, 0);
  assert_line (l, "notification from cli.caller: ", "{\"n\":1}");

  {
    g_autofree char *out = NULL;

    /* raw params from stdin, echoed by .broker */
    g_assert_cmpint (run_cli ((const char *[]) { address, "rpc", "call", ".broker",
                                                 "benchmark.test", "-", NULL },
                              "\x81\xa1k\x07", 4, &out, NULL), ==, 0);
    g_assert_cmpstr (out, ==, "{\"k\":7}\n");
  }
  {
    g_autofree char *err = NULL;

    g_assert_cmpint (run_cli ((const char *[]) { address, "rpc", "call", ".broker", "nosuch",
                                                 NULL }, NULL, 0, NULL, &err), ==, 1);
    g_assert_nonnull (strstr (err, "RPC error -32601"));
  }
  {
    g_autofree char *err = NULL;

    g_assert_cmpint (run_cli ((const char *[]) { address, "rpc", "call", "nobody", "x", NULL },
                              NULL, 0, NULL, &err), ==, 1);
    g_assert_nonnull (strstr (err, "RPC error -32113"));
  }

  listener_free (l);
  elbus_test_broker_free (tb);
}

int
main (int    argc,
      char **argv)
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/cli/help", test_help);
  g_test_add_data_func ("/elbus/cli/send-publish-listen/unix",
                        GINT_TO_POINTER (ELBUS_TEST_TRANSPORT_UNIX), test_send_publish_listen);
  g_test_add_data_func ("/elbus/cli/send-publish-listen/tcp",
                        GINT_TO_POINTER (ELBUS_TEST_TRANSPORT_TCP), test_send_publish_listen);
  if (elbus_test_have_websocket ())
    g_test_add_data_func ("/elbus/cli/send-publish-listen/ws",
                          GINT_TO_POINTER (ELBUS_TEST_TRANSPORT_WS), test_send_publish_listen);
  g_test_add_func ("/elbus/cli/errors", test_errors);
  g_test_add_func ("/elbus/cli/addresses", test_addresses);
  g_test_add_func ("/elbus/cli/broker", test_broker_commands);
  g_test_add_func ("/elbus/cli/rpc", test_rpc_commands);
  g_test_add_func ("/elbus/cli/benchmark-failure", test_benchmark_failure);
  g_test_add_func ("/elbus/cli/benchmark-dropped-flush", test_benchmark_dropped_flush);
  g_test_add_func ("/elbus/cli/benchmark-stages", test_benchmark_stages);

  return g_test_run ();
}

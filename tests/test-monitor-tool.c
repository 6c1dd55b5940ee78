/* SPDX-License-Identifier: MIT */
/*
 * elbus-monitor, run as a user would: a subprocess watching a broker
 * (a spawned elbusd or the in-process test broker, over a UNIX socket or
 * ws://) while the test drives traffic with the library, checked by its
 * output, its pcap file and its exit status.
 *
 * The tool says "monitoring …" on standard error once the broker has
 * answered monitor.start; the tests wait for that line before they send
 * anything, and otherwise wait for lines and exits, never for time.
 */
/* posix_openpt() and its friends */
#define _GNU_SOURCE

#include "config.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include <elbus/elbus.h>

#include "elbus-test-util.h"

static const char *
monitor_path (void)
{
  const char *path = g_getenv ("ELBUS_MONITOR");

  g_assert_nonnull (path);
  return path;
}

/* ---- the tool as a subprocess ---------------------------------------- */

typedef struct {
  GSubprocess      *proc;
  GDataInputStream *out;
  GDataInputStream *err;
  gboolean          exited;
} Monitor;

/* Starts elbus-monitor ADDRESS --name NAME ARGS…; with @wait_ready, waits
 * for its "monitoring" line. */
static Monitor *
monitor_spawn (const char         *address,
               const char         *name,
               const char * const *args,
               gboolean            wait_ready)
{
  Monitor *m = g_new0 (Monitor, 1);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;

  g_ptr_array_add (argv, (char *) monitor_path ());
  g_ptr_array_add (argv, (char *) address);
  g_ptr_array_add (argv, (char *) "--name");
  g_ptr_array_add (argv, (char *) name);
  for (guint i = 0; args != NULL && args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);

  m->proc = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               &error);
  g_assert_no_error (error);
  m->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (m->proc));
  m->err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (m->proc));

  if (wait_ready)
    {
      g_autofree char *line = elbus_test_read_line (m->err);
      g_autofree char *expected = g_strdup_printf ("elbus-monitor: monitoring %s as %s;",
                                                   address, name);

      if (line == NULL || !g_str_has_prefix (line, expected))
        g_error ("elbus-monitor did not start: “%s”", line != NULL ? line : "(end of output)");
    }

  return m;
}

static void
wait_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, &error);
  g_assert_no_error (error);
  *(gboolean *) user_data = TRUE;
}

/* Waits for the tool to exit by itself; returns its exit status. */
static int
monitor_wait (Monitor *m)
{
  gboolean done = FALSE;

  g_subprocess_wait_async (m->proc, NULL, wait_done_cb, &done);
  elbus_test_spin_until (&done, "elbus-monitor's exit");
  m->exited = TRUE;
  g_assert_true (g_subprocess_get_if_exited (m->proc));
  return g_subprocess_get_exit_status (m->proc);
}

static void
monitor_free (Monitor *m)
{
  if (!m->exited)
    {
      g_subprocess_send_signal (m->proc, SIGKILL);
      g_subprocess_wait (m->proc, NULL, NULL);
    }
  g_object_unref (m->out);
  g_object_unref (m->err);
  g_object_unref (m->proc);
  g_free (m);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Monitor, monitor_free)

/* The rest of a stream, once the tool has exited. */
static char *
read_rest (GDataInputStream *in)
{
  g_autoptr(GString) text = g_string_new (NULL);
  char *line;

  while ((line = elbus_test_read_line (in)) != NULL)
    {
      g_string_append_printf (text, "%s\n", line);
      g_free (line);
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

/* Runs the tool to its end with no broker traffic of ours; returns its
 * exit status and standard error. */
static int
run_monitor (const char * const  *argv_tail,
             char               **err)
{
  return elbus_test_run_program (monitor_path (), argv_tail, NULL, NULL, err);
}

/* ---- checking lines ---------------------------------------------------- */

/* The next JSON line, with its "time" and "t" checked against each other
 * and then removed, compared with @expected (compact JSON, members in the
 * tool's order). */
static void
expect_json (Monitor    *m,
             const char *expected)
{
  g_autofree char *line = elbus_test_read_line (m->out);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *rest = NULL;
  g_autofree char *micros = NULL;
  JsonObject *object;
  const char *time;
  gint64 t;

  g_assert_nonnull (line);
  json_parser_load_from_data (parser, line, -1, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
  object = json_node_get_object (json_parser_get_root (parser));

  /* "time" is t in UTC, to the microsecond */
  g_assert_true (json_object_has_member (object, "t"));
  g_assert_true (json_object_has_member (object, "time"));
  t = json_object_get_int_member (object, "t");
  time = json_object_get_string_member (object, "time");
  g_assert_cmpint (t, >, 0);
  g_assert_true (g_regex_match_simple ("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$",
                                       time, 0, 0));
  micros = g_strdup_printf (".%06dZ", (int) (t / 1000 % G_USEC_PER_SEC));
  g_assert_true (g_str_has_suffix (time, micros));
  {
    g_autoptr(GDateTime) parsed = g_date_time_new_from_iso8601 (time, NULL);

    g_assert_nonnull (parsed);
    g_assert_cmpint (g_date_time_to_unix (parsed), ==, t / G_GINT64_CONSTANT (1000000000));
  }

  json_object_remove_member (object, "time");
  json_object_remove_member (object, "t");
  rest = json_to_string (json_parser_get_root (parser), FALSE);
  if (g_strcmp0 (rest, expected) != 0)
    g_error ("unexpected JSON line\n  got:    %s\n  wanted: %s", rest, expected);
}

/* The next line without its timestamp, compared with @expected. */
static void
expect_line (Monitor    *m,
             const char *expected)
{
  g_autofree char *line = elbus_test_read_line (m->out);
  const char *space;

  g_assert_nonnull (line);
  /* HH:MM:SS.uuuuuu */
  g_assert_true (g_regex_match_simple ("^\\d\\d:\\d\\d:\\d\\d\\.\\d{6} ", line, 0, 0));
  space = strchr (line, ' ');
  if (g_strcmp0 (space + 1, expected) != 0)
    g_error ("unexpected line\n  got:    %s\n  wanted: %s", space + 1, expected);
}

/* ---- test clients ------------------------------------------------------ */

static ElbusClient *
connect_client (const char *address,
                const char *name)
{
  g_autoptr(GError) error = NULL;
  ElbusClient *client = elbus_client_new_sync (address, name, NULL, &error);

  g_assert_no_error (error);
  return client;
}

/* mon.b's methods: add (a + b) and fail (an error) */
static gboolean
handle_call_cb (ElbusRpcPeer       *peer,
                ElbusRpcInvocation *invocation,
                gpointer            user_data)
{
  const char *method = elbus_rpc_invocation_get_method (invocation);

  if (g_str_equal (method, "add"))
    {
      g_autoptr(GVariant) params = elbus_rpc_invocation_get_params_variant (invocation, NULL);
      gint64 a = 0, b = 0;

      g_assert_nonnull (params);
      g_variant_lookup (params, "a", "x", &a);
      g_variant_lookup (params, "b", "x", &b);
      elbus_rpc_invocation_return_variant (invocation, g_variant_new_int64 (a + b));
      return TRUE;
    }
  if (g_str_equal (method, "fail"))
    {
      elbus_rpc_invocation_return_error (invocation, ELBUS_RPC_ERROR_INVALID_PARAMS,
                                         "bad things");
      return TRUE;
    }
  return FALSE;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_help (void)
{
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("--help lists the output modes and the filters");

  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, monitor_path (), "--help",
                           NULL);
  g_assert_no_error (error);
  g_subprocess_communicate (proc, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);
  {
    g_autofree char *text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));

    for (const char * const *option = (const char *[]) { "--json", "--pcap", "--stats",
                                                         "--sender", "--target", "--topic",
                                                         "--kind", "--max-payload", "--count",
                                                         "--duration", "Exit status", NULL };
         *option != NULL; option++)
      if (strstr (text, *option) == NULL)
        g_error ("--help does not mention %s:\n%s", *option, text);
  }
}

static void
test_json (void)
{
  g_autoptr(ElbusTestDaemon) daemon = elbus_test_daemon_spawn (NULL, TRUE);
  const char *address = daemon->socket_path;
  g_autoptr(Monitor) m = NULL;
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(ElbusRpcPeer) peer_a = NULL;
  g_autoptr(ElbusRpcPeer) peer_b = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("--json: one object per line for a scripted exchange through elbusd: "
                  "registrations, subscriptions, messages, a broadcast, a publication, "
                  "an RPC call, its reply, an RPC error, call0 and a notification");

  m = monitor_spawn (address, "watch.json", (const char *[]) { "--json", "--sender", "mon.*",
                                                               NULL }, TRUE);

  a = connect_client (address, "mon.a");
  expect_json (m, "{\"kind\":\"reg\",\"sender\":\"mon.a\",\"qos\":0,\"recipients\":0,"
                  "\"result\":\"ok\",\"code\":1,\"size\":0}");
  b = connect_client (address, "mon.b");
  expect_json (m, "{\"kind\":\"reg\",\"sender\":\"mon.b\",\"qos\":0,\"recipients\":0,"
                  "\"result\":\"ok\",\"code\":1,\"size\":0}");

  g_assert_true (elbus_client_subscribe_sync (b, (const char *[]) { "t/#", "u/+", NULL },
                                              ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
  expect_json (m, "{\"kind\":\"subscribe\",\"sender\":\"mon.b\",\"masks\":[\"t/#\",\"u/+\"],"
                  "\"qos\":1,\"recipients\":0,\"result\":\"ok\",\"code\":1,\"size\":0}");

  /* text */
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("hello\nthere", 11);

    g_assert_true (elbus_client_send_sync (a, "mon.b", payload, ELBUS_QOS_PROCESSED, NULL,
                                           &error));
    g_assert_no_error (error);
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.a\",\"target\":\"mon.b\",\"qos\":1,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":11,"
                    "\"truncated\":false,\"payload_format\":\"text\","
                    "\"payload\":\"hello\\nthere\"}");
  }
  /* to nobody: not registered */
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("\x01\xff", 2);

    g_assert_false (elbus_client_send_sync (a, "nobody.here", payload, ELBUS_QOS_PROCESSED,
                                            NULL, &error));
    g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED);
    g_clear_error (&error);
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.a\",\"target\":\"nobody.here\","
                    "\"qos\":1,\"recipients\":0,\"result\":\"not_registered\",\"code\":113,"
                    "\"size\":2,\"truncated\":false,\"payload_format\":\"hex\","
                    "\"payload\":\"01ff\"}");
  }
  /* JSON text, a broadcast without ack: both mon.a and mon.b */
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("{\"x\": [1, 2]}", 13);

    g_assert_true (elbus_client_send_broadcast_sync (a, "mon.*", payload, ELBUS_QOS_NO, NULL,
                                                     &error));
    g_assert_no_error (error);
    expect_json (m, "{\"kind\":\"broadcast\",\"sender\":\"mon.a\",\"target\":\"mon.*\",\"qos\":0,"
                    "\"recipients\":2,\"result\":\"ok\",\"code\":1,\"size\":13,"
                    "\"truncated\":false,\"payload_format\":\"json\","
                    "\"payload\":{\"x\":[1,2]}}");
  }
  /* MessagePack, real-time */
  {
    g_autoptr(GBytes) payload = elbus_test_msgpack_from_text ("{'v': <1.5>, 'ok': <true>}");

    g_assert_true (elbus_client_publish_sync (a, "t/x", payload, ELBUS_QOS_REALTIME_PROCESSED,
                                              NULL, &error));
    g_assert_no_error (error);
    expect_json (m, "{\"kind\":\"publish\",\"sender\":\"mon.a\",\"topic\":\"t/x\",\"qos\":3,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":16,"
                    "\"truncated\":false,\"payload_format\":\"msgpack\","
                    "\"payload\":{\"v\":1.5,\"ok\":true}}");
  }
  /* MessagePack with an unsigned integer above G_MAXINT64: a decimal
   * string, not the negative number json-glib would write */
  {
    g_autoptr(GBytes) payload =
      elbus_test_msgpack_from_text ("{'n': <uint64 18446744073709551615>}");

    g_assert_true (elbus_client_send_sync (a, "mon.b", payload, ELBUS_QOS_PROCESSED, NULL,
                                           &error));
    g_assert_no_error (error);
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.a\",\"target\":\"mon.b\",\"qos\":1,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":12,"
                    "\"truncated\":false,\"payload_format\":\"msgpack\","
                    "\"payload\":{\"n\":\"18446744073709551615\"}}");
  }
  /* words: JSON-GLib's literals (and its "var NAME = VALUE;") are JSON,
   * other words text */
  {
    static const struct {
      const char *payload;
      const char *json;
    } words[] = {
      { "null", "\"payload_format\":\"json\",\"payload\":null" },
      { " true", "\"payload_format\":\"json\",\"payload\":true" },
      { "var v = [1];", "\"payload_format\":\"json\",\"payload\":[1]" },
      { "nope", "\"payload_format\":\"text\",\"payload\":\"nope\"" },
      { "True", "\"payload_format\":\"text\",\"payload\":\"True\"" },
      { "hello", "\"payload_format\":\"text\",\"payload\":\"hello\"" },
    };

    for (guint i = 0; i < G_N_ELEMENTS (words); i++)
      {
        g_autoptr(GBytes) payload = g_bytes_new_static (words[i].payload,
                                                        strlen (words[i].payload));
        g_autofree char *expected =
          g_strdup_printf ("{\"kind\":\"message\",\"sender\":\"mon.a\",\"target\":\"mon.b\","
                           "\"qos\":1,\"recipients\":1,\"result\":\"ok\",\"code\":1,"
                           "\"size\":%zu,\"truncated\":false,%s}",
                           strlen (words[i].payload), words[i].json);

        g_assert_true (elbus_client_send_sync (a, "mon.b", payload, ELBUS_QOS_PROCESSED, NULL,
                                               &error));
        g_assert_no_error (error);
        expect_json (m, expected);
      }
  }
  /* a topic JSON must escape, longer than the room an event has for its
   * strings in itself */
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("hi", 2);
    g_autofree char *tail = g_strnfill (300, 'x');
    g_autofree char *topic = g_strdup_printf ("t/\"q\\u/\u00e9/%s", tail);
    g_autofree char *expected =
      g_strdup_printf ("{\"kind\":\"publish\",\"sender\":\"mon.a\","
                       "\"topic\":\"t/\\\"q\\\\u/\u00e9/%s\",\"qos\":1,"
                       "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":2,"
                       "\"truncated\":false,\"payload_format\":\"text\","
                       "\"payload\":\"hi\"}", tail);

    g_assert_true (elbus_client_publish_sync (a, topic, payload, ELBUS_QOS_PROCESSED, NULL,
                                              &error));
    g_assert_no_error (error);
    expect_json (m, expected);
  }

  /* RPC */
  peer_a = elbus_rpc_peer_new (a);
  peer_b = elbus_rpc_peer_new (b);
  g_signal_connect (peer_b, "handle-call", G_CALLBACK (handle_call_cb), NULL);
  {
    g_auto(ElbusTestCall) call = { 0 };
    g_autoptr(GBytes) params = elbus_test_msgpack_from_text ("{'a': <int64 1>, 'b': <int64 2>}");

    elbus_test_call_and_wait (peer_a, "mon.b", "add", params, ELBUS_QOS_PROCESSED, 0, &call);
    g_assert_no_error (call.error);
    /* 01, id, "add" 00, 7 bytes of params */
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.a\",\"target\":\"mon.b\",\"qos\":1,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":16,"
                    "\"truncated\":false,\"rpc\":{\"type\":\"call\",\"id\":1,\"method\":\"add\"},"
                    "\"payload_format\":\"msgpack\",\"payload\":{\"a\":1,\"b\":2}}");
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.b\",\"target\":\"mon.a\",\"qos\":1,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":6,"
                    "\"truncated\":false,\"rpc\":{\"type\":\"reply\",\"id\":1},"
                    "\"payload_format\":\"msgpack\",\"payload\":3}");
  }
  {
    g_auto(ElbusTestCall) call = { 0 };

    elbus_test_call_and_wait (peer_a, "mon.b", "fail", NULL, ELBUS_QOS_PROCESSED, 0, &call);
    g_assert_error (call.error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INVALID_PARAMS);
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.a\",\"target\":\"mon.b\",\"qos\":1,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":10,"
                    "\"truncated\":false,\"rpc\":{\"type\":\"call\",\"id\":2,\"method\":\"fail\"},"
                    "\"payload_format\":\"empty\",\"payload\":\"\"}");
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.b\",\"target\":\"mon.a\",\"qos\":1,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":17,"
                    "\"truncated\":false,\"rpc\":{\"type\":\"error\",\"id\":2,\"code\":-32602},"
                    "\"payload_format\":\"text\",\"payload\":\"bad things\"}");
  }
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("42", 2);

    g_assert_true (elbus_rpc_peer_call0_sync (peer_a, "mon.b", "ping", NULL,
                                              ELBUS_QOS_PROCESSED, NULL, &error));
    g_assert_no_error (error);
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.a\",\"target\":\"mon.b\",\"qos\":1,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":10,"
                    "\"truncated\":false,\"rpc\":{\"type\":\"call\",\"id\":0,\"method\":\"ping\"},"
                    "\"payload_format\":\"empty\",\"payload\":\"\"}");
    g_assert_true (elbus_rpc_peer_notify_sync (peer_a, "mon.b", payload, ELBUS_QOS_PROCESSED,
                                               NULL, &error));
    g_assert_no_error (error);
    expect_json (m, "{\"kind\":\"message\",\"sender\":\"mon.a\",\"target\":\"mon.b\",\"qos\":1,"
                    "\"recipients\":1,\"result\":\"ok\",\"code\":1,\"size\":3,"
                    "\"truncated\":false,\"rpc\":{\"type\":\"notification\"},"
                    "\"payload_format\":\"json\",\"payload\":42}");
  }

  g_assert_true (elbus_client_unsubscribe_sync (b, (const char *[]) { "t/#", NULL },
                                                ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
  expect_json (m, "{\"kind\":\"unsubscribe\",\"sender\":\"mon.b\",\"masks\":[\"t/#\"],"
                  "\"qos\":1,\"recipients\":0,\"result\":\"ok\",\"code\":1,\"size\":0}");

  elbus_client_close (a);
  expect_json (m, "{\"kind\":\"unreg\",\"sender\":\"mon.a\",\"qos\":0,\"recipients\":0,"
                  "\"result\":\"ok\",\"code\":1,\"size\":0}");

  /* still running; SIGINT ends it cleanly */
  g_subprocess_send_signal (m->proc, SIGINT);
  g_assert_cmpint (monitor_wait (m), ==, 0);
  {
    g_autofree char *rest = read_rest (m->out);

    g_assert_cmpstr (rest, ==, "");
  }

  elbus_client_close (b);
  g_assert_true (WIFEXITED (elbus_test_daemon_stop (daemon)));
}

static void
test_lines (gconstpointer data)
{
  ElbusTestTransport transport = GPOINTER_TO_INT (data);
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = transport == ELBUS_TEST_TRANSPORT_WS ? elbus_test_broker_get_ws_url (tb)
                                                             : elbus_test_broker_get_unix_path (tb);
  g_autoptr(Monitor) m = NULL;
  g_autoptr(ElbusClient) h = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("The default output: one line per event, RPC decoded, text on one line; "
                  "--count ends it with status 0");

  elbus_test_broker_enable_core_rpc (tb);
  m = monitor_spawn (address, "watch.lines", (const char *[]) { "--sender", "mon.h",
                                                                "--count", "4", NULL }, TRUE);

  h = connect_client (address, "mon.h");
  expect_line (m, "reg         mon.h");

  /* a call to itself, which has no such method */
  peer = elbus_rpc_peer_new (h);
  {
    g_auto(ElbusTestCall) call = { 0 };
    g_autoptr(GBytes) params = elbus_test_msgpack_from_text ("{'k': <'v'>}");

    elbus_test_call_and_wait (peer, "mon.h", "nosuch", params, ELBUS_QOS_PROCESSED, 0, &call);
    g_assert_error (call.error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_METHOD_NOT_FOUND);
    expect_line (m, "message     mon.h → mon.h q1 17 B call nosuch #1 {\"k\":\"v\"}");
    expect_line (m, "message     mon.h → mon.h q1 36 B error #1 -32601 "
                    "method “nosuch” not found");
  }
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("two\nlines", 9);

    g_assert_true (elbus_client_publish_sync (h, "h/t", payload, ELBUS_QOS_NO, NULL, &error));
    g_assert_no_error (error);
    expect_line (m, "publish     mon.h → h/t q0 ×0 9 B two\\nlines");
  }

  /* four events: done */
  g_assert_cmpint (monitor_wait (m), ==, 0);
  {
    g_autofree char *rest = read_rest (m->out);

    g_assert_cmpstr (rest, ==, "");
  }

  elbus_client_close (h);
  g_clear_object (&peer);
  g_clear_object (&h);
  elbus_test_broker_free (tb);
}

/* The next line without its time, for lines whose end varies. */
static char *
next_line_text (Monitor *m)
{
  g_autofree char *line = elbus_test_read_line (m->out);
  const char *space;

  g_assert_nonnull (line);
  space = strchr (line, ' ');
  g_assert_nonnull (space);
  return g_strdup (space + 1);
}

static void
test_announcements (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autoptr(GError) error = NULL;

  g_test_summary (".broker's announcements of clients (.broker/info) are left out unless "
                  "--announcements asks for them or a --topic mask names .broker; --count "
                  "counts only what is shown");

  elbus_test_broker_enable_core_rpc (tb);

  /* by default: reg, the publication, unreg; no announcement counted */
  {
    g_autoptr(Monitor) m = monitor_spawn (address, "watch.quiet",
                                          (const char *[]) { "--count", "3", NULL }, TRUE);
    g_autoptr(ElbusClient) c = connect_client (address, "mon.c");
    g_autoptr(GBytes) payload = g_bytes_new_static ("hi", 2);

    g_assert_true (elbus_client_publish_sync (c, "c/t", payload, ELBUS_QOS_PROCESSED, NULL,
                                              &error));
    g_assert_no_error (error);
    elbus_client_close (c);

    expect_line (m, "reg         mon.c");
    expect_line (m, "publish     mon.c → c/t q1 ×0 2 B hi");
    expect_line (m, "unreg       mon.c");
    g_assert_cmpint (monitor_wait (m), ==, 0);
    {
      g_autofree char *rest = read_rest (m->out);

      g_assert_cmpstr (rest, ==, "");
    }
  }

  /* asked for: the reg event and its announcement */
  {
    g_autoptr(Monitor) m = monitor_spawn (address, "watch.all",
                                          (const char *[]) { "--announcements", "--count", "2",
                                                             NULL }, TRUE);
    g_autoptr(ElbusClient) c = connect_client (address, "mon.d");
    g_autofree char *announcement = NULL;

    expect_line (m, "reg         mon.d");
    announcement = next_line_text (m);
    g_assert_true (g_str_has_prefix (announcement, "publish     .broker → .broker/info q0 "));
    g_assert_nonnull (strstr (announcement, "\"s\":\"reg\",\"d\":\"mon.d\""));
    g_assert_cmpint (monitor_wait (m), ==, 0);
    elbus_client_close (c);
  }

  /* a --topic mask that names .broker shows them without being asked */
  {
    g_autoptr(Monitor) m = monitor_spawn (address, "watch.topic",
                                          (const char *[]) { "--topic", ".broker/#", "--count",
                                                             "1", NULL }, TRUE);
    g_autoptr(ElbusClient) c = connect_client (address, "mon.e");
    g_autofree char *announcement = next_line_text (m);

    g_assert_true (g_str_has_prefix (announcement, "publish     .broker → .broker/info q0 "));
    g_assert_cmpint (monitor_wait (m), ==, 0);
    elbus_client_close (c);
  }

  elbus_test_broker_free (tb);
}

static void
test_filters (void)
{
  static const struct {
    const char *topic;
    const char *payload;
  } publications[] = {
    { "d/1", "xy" }, { "c/1", "abcdefgh" }, { "f/1", "xy" }, { "e/1/2", "xy" }, { "e/2", "xy" },
  };
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autoptr(Monitor) m = NULL;
  g_autoptr(ElbusClient) c = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("--kind, --topic and --max-payload reach the broker; a truncated payload "
                  "is marked; --count 2 stops after two events");

  elbus_test_broker_enable_core_rpc (tb);
  m = monitor_spawn (address, "watch.filters",
                     (const char *[]) { "--kind", "publish,message", "--topic", "c/#",
                                        "--topic", "e/+", "--max-payload", "4", "--count", "2",
                                        NULL }, TRUE);

  c = connect_client (address, "mon.c");
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("me", 2);

    g_assert_true (elbus_client_send_sync (c, "mon.c", payload, ELBUS_QOS_PROCESSED, NULL,
                                           &error));
    g_assert_no_error (error);
  }
  for (guint i = 0; i < G_N_ELEMENTS (publications); i++)
    {
      g_autoptr(GBytes) payload = g_bytes_new_static (publications[i].payload,
                                                      strlen (publications[i].payload));

      g_assert_true (elbus_client_publish_sync (c, publications[i].topic, payload,
                                                ELBUS_QOS_PROCESSED, NULL, &error));
      g_assert_no_error (error);
    }
  /* no reg (a kind not asked for), no message (a kind of the other
   * category when only --topic is given), only c/1 and e/2 */
  expect_line (m, "publish     mon.c → c/1 q1 ×0 8 B abcd …(+4 bytes)");
  expect_line (m, "publish     mon.c → e/2 q1 ×0 2 B xy");
  g_assert_cmpint (monitor_wait (m), ==, 0);

  elbus_client_close (c);
  g_clear_object (&c);
  elbus_test_broker_free (tb);
}

/* ---- pcap ---------------------------------------------------------------- */

typedef struct {
  guint32  ts_sec;
  guint32  ts_nsec;
  guint32  orig_len;
  GBytes  *data;          /* the captured bytes */
} PcapRecord;

static void
pcap_record_free (PcapRecord *record)
{
  g_bytes_unref (record->data);
  g_free (record);
}

static guint32
get_u32 (const guint8 *p)
{
  return p[0] | p[1] << 8 | p[2] << 16 | (guint32) p[3] << 24;
}

static guint16
get_u16 (const guint8 *p)
{
  return p[0] | p[1] << 8;
}

/* A small reader: checks the file header, returns the records. */
static GPtrArray *
pcap_read (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len, pos = 24;
  g_autoptr(GError) error = NULL;
  GPtrArray *records = g_ptr_array_new_with_free_func ((GDestroyNotify) pcap_record_free);
  const guint8 *data;

  g_file_get_contents (path, &contents, &len, &error);
  g_assert_no_error (error);
  data = (const guint8 *) contents;

  g_assert_cmpuint (len, >=, 24);
  g_assert_cmpuint (get_u32 (data), ==, 0xa1b23c4d);     /* little-endian, nanoseconds */
  g_assert_cmpuint (get_u16 (data + 4), ==, 2);
  g_assert_cmpuint (get_u16 (data + 6), ==, 4);
  g_assert_cmpuint (get_u32 (data + 16), ==, 262144);    /* snaplen */
  g_assert_cmpuint (get_u32 (data + 20), ==, 147);       /* LINKTYPE_USER0 */

  while (pos < len)
    {
      PcapRecord *record = g_new0 (PcapRecord, 1);
      guint32 incl_len;

      g_assert_cmpuint (len - pos, >=, 16);
      record->ts_sec = get_u32 (data + pos);
      record->ts_nsec = get_u32 (data + pos + 4);
      incl_len = get_u32 (data + pos + 8);
      record->orig_len = get_u32 (data + pos + 12);
      g_assert_cmpuint (record->ts_nsec, <, 1000000000);
      g_assert_cmpuint (incl_len, <=, record->orig_len);
      g_assert_cmpuint (len - pos - 16, >=, incl_len);
      record->data = g_bytes_new (data + pos + 16, incl_len);
      g_ptr_array_add (records, record);
      pos += 16 + incl_len;
    }

  return records;
}

/* Checks a record: metadata, sender, then the frame as the sender wrote
 * it (op id 0, op | qos << 6, body length, body as captured). */
static void
check_record (PcapRecord   *record,
              guint8        kind,
              guint8        qos,
              guint8        result,
              guint32       recipients,
              guint32       size,
              const char   *sender,
              guint8        op,
              const void   *body,
              gsize         body_captured,
              guint32       body_len)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (record->data, &len);
  gsize sender_len = strlen (sender);
  gsize frame = 16 + sender_len;

  g_assert_cmpuint (len, >=, frame);
  g_assert_cmpuint (data[0], ==, 1);                    /* version */
  g_assert_cmpuint (data[1], ==, kind);
  g_assert_cmpuint (data[2], ==, qos);
  g_assert_cmpuint (data[3], ==, result);
  g_assert_cmpuint (get_u32 (data + 4), ==, recipients);
  g_assert_cmpuint (get_u32 (data + 8), ==, size);
  g_assert_cmpuint (get_u16 (data + 12), ==, sender_len);
  g_assert_cmpuint (get_u16 (data + 14), ==, frame);    /* where the frame starts */
  g_assert_cmpmem (data + 16, sender_len, sender, sender_len);

  if (op == 0)
    {
      /* reg, unreg: no frame */
      g_assert_cmpuint (len, ==, frame);
      g_assert_cmpuint (record->orig_len, ==, frame);
      return;
    }
  g_assert_cmpuint (len, ==, frame + 9 + body_captured);
  g_assert_cmpuint (record->orig_len, ==, frame + 9 + body_len);
  g_assert_cmpuint (get_u32 (data + frame), ==, 0);      /* op id */
  g_assert_cmpuint (data[frame + 4], ==, op | qos << 6);
  g_assert_cmpuint (get_u32 (data + frame + 5), ==, body_len);
  g_assert_cmpmem (data + frame + 9, body_captured, body, body_captured);
}

/* Captures reg, subscribe, message, publish (cut to 8 bytes) and unreg
 * of mon.p into @path. */
static void
make_capture (ElbusTestDaemon *daemon,
              const char      *path)
{
  const char *address = daemon->socket_path;
  g_autoptr(Monitor) m = NULL;
  g_autoptr(ElbusClient) p = NULL;
  g_autoptr(GError) error = NULL;

  m = monitor_spawn (address, "watch.pcap",
                     (const char *[]) { "--pcap", path, "--sender", "mon.p", "--max-payload",
                                        "8", "--count", "5", NULL }, TRUE);

  p = connect_client (address, "mon.p");
  g_assert_true (elbus_client_subscribe_sync (p, (const char *[]) { "p/#", "q/+", NULL },
                                              ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("hi", 2);

    g_assert_true (elbus_client_send_sync (p, "mon.p", payload, ELBUS_QOS_REALTIME, NULL,
                                           &error));
    g_assert_no_error (error);
  }
  {
    g_autoptr(GBytes) payload = g_bytes_new_static ("0123456789abcdefghij", 20);

    g_assert_true (elbus_client_publish_sync (p, "p/x", payload, ELBUS_QOS_PROCESSED, NULL,
                                              &error));
    g_assert_no_error (error);
  }
  elbus_client_close (p);

  /* five events: done */
  g_assert_cmpint (monitor_wait (m), ==, 0);
}

static void
test_pcap (void)
{
  g_autoptr(ElbusTestDaemon) daemon = elbus_test_daemon_spawn (NULL, TRUE);
  g_autofree char *path = g_build_filename (daemon->dir, "capture.pcap", NULL);
  g_autoptr(GPtrArray) records = NULL;
  gint64 before = g_get_real_time () / G_USEC_PER_SEC;

  g_test_summary ("--pcap: a pcap file (LINKTYPE_USER0, ns) whose records match the traffic, "
                  "a payload truncated by --max-payload included");

  make_capture (daemon, path);
  records = pcap_read (path);
  g_assert_cmpuint (records->len, ==, 5);

  for (guint i = 0; i < records->len; i++)
    {
      PcapRecord *record = records->pdata[i];

      g_assert_cmpint (record->ts_sec, >=, before);
      g_assert_cmpint (record->ts_sec, <=, g_get_real_time () / G_USEC_PER_SEC);
    }
  check_record (records->pdata[0], 6, 0, 1, 0, 0, "mon.p", 0, NULL, 0, 0);
  check_record (records->pdata[1], 4, 1, 1, 0, 0, "mon.p", 0x02, "p/#\0q/+", 7, 7);
  check_record (records->pdata[2], 1, 2, 1, 1, 2, "mon.p", 0x12, "mon.p\0hi", 8, 8);
  /* "p/x" 00 and 8 of the 20 bytes */
  check_record (records->pdata[3], 3, 1, 1, 1, 20, "mon.p", 0x01, "p/x\0" "01234567", 12, 24);
  check_record (records->pdata[4], 7, 0, 1, 0, 0, "mon.p", 0, NULL, 0, 0);

  g_assert_true (WIFEXITED (elbus_test_daemon_stop (daemon)));
  (void) g_remove (path);
}

static void
test_wireshark (void)
{
  g_autofree char *tshark = g_find_program_in_path ("tshark");
  g_autoptr(ElbusTestDaemon) daemon = NULL;
  g_autofree char *path = NULL;
  g_autofree char *script = NULL;
  g_autofree char *lua_arg = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;

  g_test_summary ("data/elbus.lua decodes a capture in tshark (skipped without tshark)");

  if (tshark == NULL)
    {
      g_test_skip ("tshark is not installed");
      return;
    }

  daemon = elbus_test_daemon_spawn (NULL, TRUE);
  path = g_build_filename (daemon->dir, "capture.pcap", NULL);
  make_capture (daemon, path);

  script = g_test_build_filename (G_TEST_DIST, "..", "data", "elbus.lua", NULL);
  lua_arg = g_strconcat ("lua_script:", script, NULL);
  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                           &error, tshark, "-n", "-X", lua_arg, "-r", path, "-T", "fields",
                           "-E", "separator=|", "-e", "elbus.kind", "-e", "elbus.sender",
                           "-e", "elbus.op", "-e", "elbus.target", "-e", "elbus.topic",
                           "-e", "elbus.mask", "-e", "elbus.value", "-e", "elbus.truncated",
                           NULL);
  g_assert_no_error (error);
  g_subprocess_communicate (proc, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);
  text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));

  g_assert_cmpstr (text, ==,
                   "6|mon.p||||||\n"
                   "4|mon.p|0x02|||p/#,q/+||\n"
                   "1|mon.p|0x12|mon.p|||hi|\n"
                   "3|mon.p|0x01||p/x||01234567|12\n"
                   "7|mon.p||||||\n");

  g_assert_true (WIFEXITED (elbus_test_daemon_stop (daemon)));
  (void) g_remove (path);
}

/* Every line of @text (escape sequences aside) fits @columns. */
static void
assert_columns (const char *text,
                glong       columns)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autoptr(GRegex) escapes = g_regex_new ("\033\\[[0-9;]*[A-Za-z]|\r", 0, 0, NULL);
      g_autofree char *plain = g_regex_replace_literal (escapes, lines[i], -1, 0, "", 0, NULL);

      if (g_utf8_strlen (plain, -1) > columns)
        g_error ("a line wider than %ld columns: “%s”", columns, plain);
    }
}

static void
test_stats (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autoptr(Monitor) m = NULL;
  g_autoptr(ElbusClient) s = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  g_test_summary ("--stats with standard output not a terminal: a summary at the end, "
                  "averaged over the run, traffic per sender (registrations counted per "
                  "kind only) and publications per topic, in 80 columns");

  elbus_test_broker_enable_core_rpc (tb);
  m = monitor_spawn (address, "watch.stats", (const char *[]) { "--stats", "--kind",
                                                                "publish,reg", "--sender",
                                                                "mon.s", "--count", "4", NULL },
                     TRUE);
  s = connect_client (address, "mon.s");
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(GBytes) payload = g_bytes_new_static ("12345", 5);

      g_assert_true (elbus_client_publish_sync (s, i < 2 ? "s/one" : "s/two", payload,
                                                ELBUS_QOS_PROCESSED, NULL, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpint (monitor_wait (m), ==, 0);
  out = read_rest (m->out);
  g_test_message ("%s", out);

  g_assert_nonnull (strstr (out, "events 4 "));
  g_assert_nonnull (strstr (out, "publish 3"));
  g_assert_nonnull (strstr (out, "reg 1"));
  g_assert_nonnull (strstr (out, "/s on average), payload 15 B ("));
  g_assert_null (strstr (out, "Ctrl+C"));
  g_assert_nonnull (strstr (out, "\ntraffic by sender "));
  g_assert_nonnull (strstr (out, "\npublications by topic "));
  assert_columns (out, 80);
  g_assert_true (g_regex_match_simple ("\\n  mon\\.s +[0-9.]+ +[0-9.]+ [a-zA-Z]+ +3 +15 B\\n",
                                       out, 0, 0));
  g_assert_true (g_regex_match_simple ("\\n  s/one +[0-9.]+ +[0-9.]+ [a-zA-Z]+ +2 +10 B\\n",
                                       out, 0, 0));
  g_assert_true (g_regex_match_simple ("\\n  s/two +[0-9.]+ +[0-9.]+ [a-zA-Z]+ +1 +5 B\\n",
                                       out, 0, 0));
  /* no escape sequences when it is not a terminal */
  g_assert_null (strchr (out, '\033'));

  elbus_client_close (s);
  g_clear_object (&s);
  elbus_test_broker_free (tb);
}

/* Appends what the tool writes to the terminal @master until @needle
 * comes after @from, or, with no @needle, until the tool has closed it. */
static void
pty_read_until (int         master,
                GString    *text,
                gsize       from,
                const char *needle)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) elbus_test_scale_ms (10000) * 1000;

  while (needle == NULL || strstr (text->str + from, needle) == NULL)
    {
      struct pollfd pfd = { .fd = master, .events = POLLIN };
      int left = (int) ((deadline - g_get_monotonic_time ()) / 1000);
      char buf[4096];
      ssize_t n;

      if (left <= 0)
        g_error ("no “%s” on the terminal; it has: “%s”", needle != NULL ? needle : "end",
                 text->str + from);
      if (poll (&pfd, 1, left) <= 0)
        continue;
      n = read (master, buf, sizeof buf);
      if (n <= 0 && needle == NULL)
        return;   /* EIO: the last writer closed it */
      g_assert_cmpint (n, >, 0);
      g_string_append_len (text, buf, n);
    }
}

static void
test_stats_live (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GDataInputStream) err = NULL;
  g_autoptr(ElbusClient) c = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) text = g_string_new (NULL);
  g_autofree char *ready = NULL;
  struct winsize size = { .ws_row = 40, .ws_col = 80 };
  const char *final;
  gsize from;
  int master, slave;

  g_test_summary ("--stats on an 80-column terminal: a screen redrawn every second that "
                  "says Ctrl+C stops; after Ctrl+C a last screen with the run's averages, "
                  "without that hint, every line within 80 columns");

  elbus_test_broker_enable_core_rpc (tb);

  master = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
  g_assert_cmpint (master, >=, 0);
  g_assert_cmpint (grantpt (master), ==, 0);
  g_assert_cmpint (unlockpt (master), ==, 0);
  slave = open (ptsname (master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  g_assert_cmpint (slave, >=, 0);
  g_assert_cmpint (ioctl (slave, TIOCSWINSZ, &size), ==, 0);

  g_subprocess_launcher_take_stdout_fd (launcher, slave);
  proc = g_subprocess_launcher_spawn (launcher, &error, monitor_path (), address, "--name",
                                      "watch.live", "--stats", "--sender", "mon.l", NULL);
  g_assert_no_error (error);
  /* the launcher holds the terminal's other end until it goes */
  g_clear_object (&launcher);
  err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (proc));
  ready = elbus_test_read_line (err);
  g_assert_nonnull (ready);
  g_assert_true (g_str_has_prefix (ready, "elbus-monitor: monitoring "));

  c = connect_client (address, "mon.l");
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(GBytes) payload = g_bytes_new_static ("1234", 4);

      g_assert_true (elbus_client_publish_sync (c, "l/t", payload, ELBUS_QOS_PROCESSED, NULL,
                                                &error));
      g_assert_no_error (error);
    }

  /* a redrawn screen that has the publications */
  pty_read_until (master, text, 0, "  l/t ");
  g_assert_nonnull (strstr (text->str, "Ctrl+C stops"));

  from = text->len;
  g_subprocess_send_signal (proc, SIGINT);
  pty_read_until (master, text, from, NULL);
  g_assert_true (g_subprocess_wait_check (proc, NULL, &error));
  g_assert_no_error (error);
  close (master);

  final = g_strrstr (text->str, "\033[H");
  g_assert_nonnull (final);
  g_test_message ("%s", final);
  g_assert_null (strstr (final, "Ctrl+C"));
  g_assert_nonnull (strstr (final, "events 4 ("));
  g_assert_nonnull (strstr (final, "/s on average), payload 12 B ("));
  g_assert_nonnull (strstr (final, "\n  mon.l "));
  g_assert_nonnull (strstr (final, "\n  l/t "));
  assert_columns (text->str, 80);

  elbus_client_close (c);
  elbus_test_broker_free (tb);
}

static void
test_usage (void)
{
  static const struct {
    const char *args[6];
    const char *message;
  } cases[] = {
    { { "/tmp/x.sock", "--kind", "bogus", NULL }, "unknown kind “bogus”" },
    { { "/tmp/x.sock", "--kind", "publish,,reg", NULL }, "unknown kind “”" },
    { { "/tmp/x.sock", "--topic", "a/*", NULL }, "topics are matched with / masks" },
    { { "/tmp/x.sock", "--sender", "a.#", NULL }, "client names are matched with . masks" },
    { { "/tmp/x.sock", "--target", "", NULL }, "a mask cannot be empty" },
    { { "/tmp/x.sock", "--json", "--stats", NULL }, "cannot be used together" },
    { { "/tmp/x.sock", "--count", "-1", NULL }, "cannot be negative" },
    { { "/tmp/x.sock", "--color", "pink", NULL }, "--color takes" },
    { { "/tmp/x.sock", "--frobnicate", NULL }, "Unknown option" },
    { { "/tmp/x.sock", "extra", NULL }, "unexpected argument “extra”" },
    { { NULL }, "usage: elbus-monitor PATH" },
  };

  g_test_summary ("A bad command line is exit status 2 with a message, before any connection");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *err = NULL;

      g_assert_cmpint (run_monitor (cases[i].args, &err), ==, 2);
      if (strstr (err, cases[i].message) == NULL || !g_str_has_prefix (err, "elbus-monitor: "))
        g_error ("case %u: “%s” does not say “%s”", i, err, cases[i].message);
    }
}

static void
test_unreachable (void)
{
  g_autofree char *dir = g_dir_make_tmp ("elbus-monitor-XXXXXX", NULL);
  g_autofree char *missing = g_build_filename (dir, "nobody.sock", NULL);
  g_autofree char *err = NULL;

  g_test_summary ("An unreachable broker: exit status 1 and a message naming it");

  g_assert_cmpint (run_monitor ((const char *[]) { missing, NULL }, &err), ==, 1);
  g_assert_true (g_str_has_prefix (err, "elbus-monitor: cannot connect to "));
  g_assert_nonnull (strstr (err, missing));
  g_rmdir (dir);
}

static void
test_ws_unreachable (void)
{
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/elbus",
                                          elbus_test_pick_free_port ());
  g_autofree char *err = NULL;

  g_test_summary ("A ws:// broker nobody serves, or any ws:// in a build without WebSocket "
                  "support: exit status 1 and a message naming the URL or saying why");

  g_assert_cmpint (run_monitor ((const char *[]) { url, NULL }, &err), ==, 1);
  g_assert_true (g_str_has_prefix (err, "elbus-monitor: "));
  if (elbus_test_have_websocket ())
    g_assert_nonnull (strstr (err, url));
  else if (strstr (err, "without WebSocket support") == NULL)
    g_error ("not a clear refusal: %s", err);
}

/* elbusd serving ws:// only: the monitor sees its traffic, and says so
 * when the broker shuts down. */
static void
test_ws_elbusd (void)
{
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/elbus",
                                          elbus_test_pick_free_port ());
  const char *args[] = { "-B", url, NULL };
  g_autoptr(ElbusTestDaemon) daemon = NULL;
  g_autoptr(Monitor) m = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GBytes) payload = g_bytes_new_static ("21.5", 4);
  g_autoptr(GError) error = NULL;

  g_test_summary ("elbus-monitor over ws:// against elbusd: a publication's line, then "
                  "exit status 1 when the broker shuts down");

  if (!elbus_test_have_websocket ())
    {
      g_test_skip ("this build has no WebSocket support (-Dwebsocket=disabled)");
      return;
    }
  daemon = elbus_test_daemon_spawn (args, FALSE);
  /* connecting is how to know it listens */
  for (guint i = 0; client == NULL; i++)
    {
      g_clear_error (&error);
      client = elbus_client_new_sync (url, "ws.pub", NULL, &error);
      if (client == NULL && i * 20 > ELBUS_TEST_DEADLINE_MS)
        g_error ("elbusd did not serve %s: %s", url, error->message);
      if (client == NULL)
        g_usleep (20000);
    }

  m = monitor_spawn (url, "watch.ws", (const char *[]) { "--sender", "ws.pub", NULL }, TRUE);
  g_assert_true (elbus_client_publish_sync (client, "room/temp", payload, ELBUS_QOS_PROCESSED,
                                            NULL, &error));
  g_assert_no_error (error);
  expect_line (m, "publish     ws.pub → room/temp q1 ×0 4 B 21.5");
  elbus_client_close (client);

  g_assert_true (WIFEXITED (elbus_test_daemon_stop (daemon)));
  g_assert_cmpint (monitor_wait (m), ==, 1);
  {
    g_autofree char *err = read_rest (m->err);

    g_assert_cmpstr (err, ==, "elbus-monitor: the broker shut down\n");
  }
}

/* A `.broker` that knows no methods: what an original broker answers. */
typedef struct {
  ElbusClient  *client;
  ElbusRpcPeer *peer;
} FakeCore;

static void
fake_core_start_cb (ElbusBroker *broker,
                    gpointer     user_data)
{
  FakeCore *core = user_data;
  g_autoptr(GError) error = NULL;

  core->client = elbus_broker_register_client (broker, ".broker", &error);
  g_assert_no_error (error);
  core->peer = elbus_rpc_peer_new (core->client);
}

static void
fake_core_stop_cb (ElbusBroker *broker,
                   gpointer     user_data)
{
  FakeCore *core = user_data;

  g_clear_object (&core->peer);
  elbus_client_close (core->client);
  g_clear_object (&core->client);
}

static void
test_not_supported (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  FakeCore core = { 0 };
  g_autofree char *err = NULL;

  g_test_summary ("A broker without monitor support (monitor.start answered -32601): "
                  "exit status 3 and a message that says so");

  elbus_test_broker_invoke (tb, fake_core_start_cb, &core);
  g_assert_cmpint (run_monitor ((const char *[]) { elbus_test_broker_get_unix_path (tb), NULL },
                                &err), ==, 3);
  g_assert_nonnull (strstr (err, "the broker does not support monitoring"));
  g_assert_nonnull (strstr (err, "original elbus broker"));

  elbus_test_broker_invoke (tb, fake_core_stop_cb, &core);
  elbus_test_broker_free (tb);
}

static void
set_policy_cb (ElbusBroker *broker,
               gpointer     user_data)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();

  /* may connect and call .broker, may not monitor */
  elbus_broker_set_client_policy (broker, "watch.denied", policy);
}

static void
test_access_denied (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  g_autofree char *err = NULL;

  g_test_summary ("A policy that does not allow the client to monitor (-32121), or does "
                  "not know its name (0x79): exit status 3 and one message that says so "
                  "and names the client, not the path");

  elbus_test_broker_enable_core_rpc (tb);
  elbus_test_broker_invoke (tb, set_policy_cb, NULL);
  g_assert_cmpint (run_monitor ((const char *[]) { elbus_test_broker_get_unix_path (tb),
                                                   "--name", "watch.denied", NULL },
                                &err), ==, 3);
  g_assert_nonnull (strstr (err, "access denied"));
  g_assert_nonnull (strstr (err, "watch.denied"));
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (run_monitor ((const char *[]) { elbus_test_broker_get_unix_path (tb),
                                                   "--name", "watch.unknown", NULL },
                                &err), ==, 3);
  g_assert_nonnull (strstr (err, "access denied"));
  g_assert_nonnull (strstr (err, "“watch.unknown”"));
  g_assert_null (strstr (err, elbus_test_broker_get_unix_path (tb)));
  g_assert_cmpint (strchr (err, '\n') - err, ==, strlen (err) - 1);

  elbus_test_broker_free (tb);
}

static void
test_broker_gone (void)
{
  g_autoptr(ElbusTestDaemon) daemon = elbus_test_daemon_spawn (NULL, TRUE);
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  g_autoptr(Monitor) stopped = NULL;
  g_autoptr(Monitor) dropped = NULL;

  g_test_summary ("The broker shutting down, or dropping the monitor: exit status 1 and a "
                  "clear message");

  stopped = monitor_spawn (daemon->socket_path, "watch.stop", NULL, TRUE);
  g_assert_true (WIFEXITED (elbus_test_daemon_stop (daemon)));
  g_assert_cmpint (monitor_wait (stopped), ==, 1);
  {
    g_autofree char *err = read_rest (stopped->err);

    g_assert_cmpstr (err, ==, "elbus-monitor: the broker shut down\n");
  }

  elbus_test_broker_enable_core_rpc (tb);
  dropped = monitor_spawn (elbus_test_broker_get_unix_path (tb), "watch.drop", NULL, TRUE);
  g_assert_true (elbus_test_broker_force_disconnect (tb, "watch.drop"));
  g_assert_cmpint (monitor_wait (dropped), ==, 1);
  {
    g_autofree char *err = read_rest (dropped->err);

    g_assert_true (g_str_has_prefix (err, "elbus-monitor: the broker closed the connection"));
  }

  elbus_test_broker_free (tb);
}

static void
test_duration (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  g_autoptr(Monitor) m = NULL;

  g_test_summary ("--duration ends monitoring by itself with status 0");

  elbus_test_broker_enable_core_rpc (tb);
  m = monitor_spawn (elbus_test_broker_get_unix_path (tb), "watch.duration",
                     (const char *[]) { "--duration", "0.2", NULL }, TRUE);
  g_assert_cmpint (monitor_wait (m), ==, 0);

  elbus_test_broker_free (tb);
}

int
main (int    argc,
      char **argv)
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/monitor-tool/help", test_help);
  g_test_add_func ("/elbus/monitor-tool/json", test_json);
  g_test_add_data_func ("/elbus/monitor-tool/lines", GINT_TO_POINTER (ELBUS_TEST_TRANSPORT_UNIX),
                        test_lines);
  if (elbus_test_have_websocket ())
    g_test_add_data_func ("/elbus/monitor-tool/lines/ws", GINT_TO_POINTER (ELBUS_TEST_TRANSPORT_WS),
                          test_lines);
  g_test_add_func ("/elbus/monitor-tool/ws/elbusd", test_ws_elbusd);
  g_test_add_func ("/elbus/monitor-tool/ws/unreachable", test_ws_unreachable);
  g_test_add_func ("/elbus/monitor-tool/filters", test_filters);
  g_test_add_func ("/elbus/monitor-tool/announcements", test_announcements);
  g_test_add_func ("/elbus/monitor-tool/pcap", test_pcap);
  g_test_add_func ("/elbus/monitor-tool/wireshark", test_wireshark);
  g_test_add_func ("/elbus/monitor-tool/stats", test_stats);
  g_test_add_func ("/elbus/monitor-tool/stats-live", test_stats_live);
  g_test_add_func ("/elbus/monitor-tool/usage", test_usage);
  g_test_add_func ("/elbus/monitor-tool/unreachable", test_unreachable);
  g_test_add_func ("/elbus/monitor-tool/not-supported", test_not_supported);
  g_test_add_func ("/elbus/monitor-tool/access-denied", test_access_denied);
  g_test_add_func ("/elbus/monitor-tool/broker-gone", test_broker_gone);
  g_test_add_func ("/elbus/monitor-tool/duration", test_duration);

  return g_test_run ();
}

/* SPDX-License-Identifier: MIT */
/*
 * The elbusd program ($ELBUSD), spawned: handshake and routing through it,
 * its options, clean shutdown on SIGTERM and bind failures.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "elbus-test-util.h"

static void
assert_exit_status (int status,
                    int code)
{
  if (WIFSIGNALED (status))
    g_error ("elbusd was killed by signal %d", WTERMSIG (status));
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, code);
}

static void
test_handshake_message (void)
{
  g_autoptr(ElbusTestDaemon) d = elbus_test_daemon_spawn (NULL, TRUE);
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;

  g_test_summary ("Clients register with a spawned elbusd and exchange "
                  "acknowledged messages");

  a = elbus_test_conn_new_address (d->socket_path, "d.a");
  b = elbus_test_conn_new_address (d->socket_path, "d.b");
  elbus_test_conn_op_acked (a, OP_MESSAGE, "d.b", "through elbusd", 0x01);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "d.a", NULL, "through elbusd");
  elbus_test_conn_op_acked (b, OP_MESSAGE, "d.nobody", "x", 0x71);

  /* a bad name is refused the same way as in-process */
  {
    g_autoptr(ElbusTestConn) c = elbus_test_conn_connect_address (d->socket_path);

    g_assert_cmphex (elbus_test_conn_handshake (c, "d.a"), ==, 0x76);
    elbus_test_conn_expect_eof (c);
  }

  assert_exit_status (elbus_test_daemon_stop (d), 0);
}

static void
test_sigterm_cleanup (void)
{
  g_autoptr(ElbusTestDaemon) d = NULL;
  g_autofree char *dir = g_dir_make_tmp ("elbusd-pid-XXXXXX", NULL);
  g_autofree char *pidfile = g_build_filename (dir, "elbusd.pid", NULL);
  g_autofree char *second = g_build_filename (dir, "second.sock", NULL);
  g_autofree char *contents = NULL;
  const char *args[] = { "-P", pidfile, "-B", second, NULL };
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;

  g_test_summary ("On SIGTERM elbusd exits 0, closing clients and removing "
                  "its socket files and pid file");

  d = elbus_test_daemon_spawn (args, TRUE);
  g_assert_true (elbus_test_wait_for_socket (second, d->pid, ELBUS_TEST_DEADLINE_MS));

  /* the pid file names the daemon; it is written after the sockets
   * listen, so it may take a moment to appear */
  {
    gint64 deadline = g_get_monotonic_time () + ELBUS_TEST_DEADLINE_MS * G_GINT64_CONSTANT (1000);

    for (;;)
      {
        g_clear_pointer (&contents, g_free);
        if (g_file_get_contents (pidfile, &contents, NULL, NULL) &&
            g_str_has_suffix (contents, "\n"))
          break;
        if (g_get_monotonic_time () > deadline)
          g_error ("no complete pid file %s", pidfile);
        g_usleep (5000);
      }
  }
  g_strstrip (contents);
  g_assert_cmpint (g_ascii_strtoll (contents, NULL, 10), ==, d->pid);

  /* both sockets serve the same bus */
  a = elbus_test_conn_new_address (d->socket_path, "first");
  b = elbus_test_conn_new_address (second, "second");
  elbus_test_conn_op_acked (a, OP_MESSAGE, "second", "across", 0x01);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "first", NULL, "across");

  assert_exit_status (elbus_test_daemon_stop (d), 0);

  elbus_test_conn_drain_until_eof (a, ELBUS_TEST_DEADLINE_MS);
  elbus_test_conn_drain_until_eof (b, ELBUS_TEST_DEADLINE_MS);
  g_assert_false (g_file_test (d->socket_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (second, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (pidfile, G_FILE_TEST_EXISTS));

  (void) g_remove (pidfile);
  (void) g_remove (second);
  (void) g_rmdir (dir);
}

static void
test_bind_failure (void)
{
  g_autoptr(GSocket) holder = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *busy = NULL;

  g_test_summary ("elbusd exits with status 1 when it cannot bind");

  /* a UNIX path in a directory that does not exist */
  {
    const char *args[] = { "-B", "/nonexistent-elbus-dir/x/elbusd.sock", NULL };
    g_autoptr(ElbusTestDaemon) d = elbus_test_daemon_spawn (args, FALSE);

    if (!elbus_test_daemon_wait (d, ELBUS_TEST_DEADLINE_MS))
      g_error ("elbusd kept running with an unbindable UNIX path");
    assert_exit_status (d->wait_status, 1);
  }

  /* a TCP port somebody else holds */
  holder = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_bind (holder, any, FALSE, &error);
  g_assert_no_error (error);
  g_socket_listen (holder, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (holder, &error);
  g_assert_no_error (error);
  busy = g_strdup_printf ("127.0.0.1:%u",
                          g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  {
    const char *args[] = { "-B", busy, NULL };
    g_autoptr(ElbusTestDaemon) d = elbus_test_daemon_spawn (args, FALSE);

    if (!elbus_test_daemon_wait (d, ELBUS_TEST_DEADLINE_MS))
      g_error ("elbusd kept running with a TCP port in use");
    assert_exit_status (d->wait_status, 1);
  }
}

static void
test_start_failure_alone (void)
{
  static const struct {
    const char *address;
    const char *message;
  } cases[] = {
    { "/nonexistent-elbus-dir/x/elbusd.sock", "elbusd: cannot listen on /nonexistent-elbus-dir" },
  };
  /* no address at all: a bad command line */
  static const struct {
    const char *address;
    const char *message;
  } usage[] = {
    { "127.0.0.1:99999", "elbusd: “127.0.0.1:99999”: the port must be a number from 0 to 65535\n" },
    { "relative", "“./relative”" },
    { ":7777", "has no host before the port" },
    { "ws://127.0.0.1/", "is not a ws://HOST:PORT[/PATH] address\n" },
  };

  g_test_summary ("An elbusd that cannot start prints its error alone, on one line, and "
                  "exits 1: no info lines of .broker starting and closing (-v shows them); "
                  "a -B that is no address is a bad command line: exit 2, before anything "
                  "starts");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *err = NULL;
      g_autofree char *verbose_err = NULL;

      g_assert_cmpint (elbus_test_run_program (elbus_test_elbusd_path (),
                                               (const char *[]) { "-B", cases[i].address, NULL },
                                               NULL, NULL, &err), ==, 1);
      g_test_message ("%s", err);
      g_assert_nonnull (strstr (err, cases[i].message));
      g_assert_true (g_str_has_prefix (err, "elbusd: "));
      g_assert_cmpint (strchr (err, '\n') - err, ==, (int) strlen (err) - 1);

      g_assert_cmpint (elbus_test_run_program (elbus_test_elbusd_path (),
                                               (const char *[]) { "-v", "-B", cases[i].address,
                                                                  NULL },
                                               NULL, NULL, &verbose_err), ==, 1);
      g_assert_nonnull (strstr (verbose_err, cases[i].message));
      g_assert_nonnull (strstr (verbose_err, ".broker: registered"));
    }

  for (guint i = 0; i < G_N_ELEMENTS (usage); i++)
    {
      g_autofree char *err = NULL;

      g_assert_cmpint (elbus_test_run_program (elbus_test_elbusd_path (),
                                               (const char *[]) { "-v", "-B", usage[i].address,
                                                                  NULL },
                                               NULL, NULL, &err), ==, 2);
      g_test_message ("%s", err);
      g_assert_true (g_str_has_prefix (err, "elbusd: "));
      g_assert_nonnull (strstr (err, usage[i].message));
      g_assert_nonnull (strstr (err, "elbusd --help"));
      g_assert_null (strstr (err, ".broker"));
    }
}

static void
test_tcp (void)
{
  g_autoptr(ElbusTestDaemon) d = NULL;
  g_autofree char *address = NULL;
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;

  g_test_summary ("elbusd serves UNIX and TCP clients on one bus");

  {
    const char *args[3] = { "-B", NULL, NULL };

    /* the port could in theory be taken between picking and binding */
    address = g_strdup_printf ("127.0.0.1:%u", elbus_test_pick_free_port ());
    args[1] = address;
    d = elbus_test_daemon_spawn (args, TRUE);
  }
  /* the UNIX socket may accept before the TCP one is bound */
  if (!elbus_test_wait_for_socket (address, d->pid, ELBUS_TEST_DEADLINE_MS))
    g_error ("elbusd does not accept connections on %s", address);

  a = elbus_test_conn_new_address (address, "tcp.client");
  b = elbus_test_conn_new_address (d->socket_path, "unix.client");
  elbus_test_conn_op_acked (a, OP_MESSAGE, "unix.client", "over tcp", 0x01);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "tcp.client", NULL, "over tcp");
  elbus_test_conn_op_acked (b, OP_MESSAGE, "tcp.client", "over unix", 0x01);
  elbus_test_conn_expect_message (a, KIND_MESSAGE, "unix.client", NULL, "over unix");

  assert_exit_status (elbus_test_daemon_stop (d), 0);
}

static void
test_options (void)
{
  const char *args[] = { "-t", "1", "--max-frame-size", "1024",
                         "--queue-size", "64", NULL };
  g_autoptr(ElbusTestDaemon) d = elbus_test_daemon_spawn (args, TRUE);
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;
  g_autoptr(ElbusTestFrame) ping = NULL;
  g_autoptr(GError) error = NULL;
  static const guint8 over[] = { 1, 0, 0, 0, OP_MESSAGE, 0x00, 0x08, 0, 0 };   /* 2048 */

  g_test_summary ("-t sets the ping interval and --max-frame-size the "
                  "largest accepted frame body");

  a = elbus_test_conn_new_address (d->socket_path, "opt.a");
  b = elbus_test_conn_new_address (d->socket_path, "opt.b");

  ping = elbus_test_conn_try_read_frame (a, ELBUS_TEST_DEADLINE_MS, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmphex (ping->kind, ==, 0x00);

  elbus_test_conn_op_acked (a, OP_MESSAGE, "opt.b", "small enough", 0x01);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "opt.a", NULL, "small enough");
  elbus_test_conn_send (a, over, sizeof over);
  elbus_test_conn_expect_eof (a);
  elbus_test_conn_send_op (b, OP_MESSAGE, ELBUS_QOS_NO, "opt.b", "still up", 8);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "opt.b", NULL, "still up");

  assert_exit_status (elbus_test_daemon_stop (d), 0);
}

/* Connects to @path, reads the greeting, sends nothing more and returns
 * how long, in ms, the broker took to close the connection. */
static gint64
stalled_handshake_ms (const char *path)
{
  g_autoptr(ElbusTestConn) idle = elbus_test_conn_connect_address (path);
  gint64 start;

  elbus_test_conn_expect_greeting (idle);
  start = g_get_monotonic_time ();
  elbus_test_conn_expect_eof (idle);

  return (g_get_monotonic_time () - start) / 1000;
}

static void
test_handshake_follows_timeout (void)
{
  g_autoptr(ElbusTestDaemon) d = NULL;
  g_autoptr(ElbusTestConn) a = NULL;
  gint64 ms;

  g_test_summary ("Without --handshake-timeout the handshake has -t, as in the original: "
                  "with -t 1 a connection that stalls after the greeting is closed after "
                  "about 1 s, not the 5 s default; --handshake-timeout still wins");

  d = elbus_test_daemon_spawn ((const char *[]) { "-t", "1", NULL }, TRUE);
  a = elbus_test_conn_new_address (d->socket_path, "hs.a");
  ms = stalled_handshake_ms (d->socket_path);
  /* at least the timeout (timers do not fire early), well under 5 s */
  g_assert_cmpint (ms, >=, 500);
  g_assert_cmpint (ms, <, elbus_test_scale_ms (4000));
  /* only the stalled connection went */
  elbus_test_conn_op_acked (a, OP_MESSAGE, "hs.nobody", "still here", 0x71);
  g_clear_pointer (&a, elbus_test_conn_free);
  assert_exit_status (elbus_test_daemon_stop (d), 0);
  g_clear_pointer (&d, elbus_test_daemon_free);

  /* an explicit --handshake-timeout is kept: shorter than -t here */
  d = elbus_test_daemon_spawn ((const char *[]) { "-t", "600", "--handshake-timeout", "1",
                                                  NULL }, TRUE);
  ms = stalled_handshake_ms (d->socket_path);
  g_assert_cmpint (ms, >=, 500);
  g_assert_cmpint (ms, <, elbus_test_scale_ms (4000));
  assert_exit_status (elbus_test_daemon_stop (d), 0);
}

static void
run_sync (const char *arg,
          char      **out,
          int        *status)
{
  const char *argv[] = { elbus_test_elbusd_path (), arg, NULL };
  g_autoptr(GError) error = NULL;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                out, NULL, status, &error);
  g_assert_no_error (error);
}

static void
test_help_version (void)
{
  g_autofree char *help = NULL;
  g_autofree char *version = NULL;
  int status = -1;

  g_test_summary ("--help and --version print to stdout and exit 0");

  run_sync ("--help", &help, &status);
  assert_exit_status (status, 0);
  g_assert_nonnull (strstr (help, "--bind"));
  g_assert_nonnull (strstr (help, "--queue-size"));

  run_sync ("--version", &version, &status);
  assert_exit_status (status, 0);
  g_assert_nonnull (strstr (version, PACKAGE_VERSION));
}

int
main (int   argc,
      char *argv[])
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/elbusd/handshake-message", test_handshake_message);
  g_test_add_func ("/elbus/elbusd/sigterm-cleanup", test_sigterm_cleanup);
  g_test_add_func ("/elbus/elbusd/bind-failure", test_bind_failure);
  g_test_add_func ("/elbus/elbusd/start-failure-alone", test_start_failure_alone);
  g_test_add_func ("/elbus/elbusd/tcp", test_tcp);
  g_test_add_func ("/elbus/elbusd/options", test_options);
  g_test_add_func ("/elbus/elbusd/handshake-follows-timeout", test_handshake_follows_timeout);
  g_test_add_func ("/elbus/elbusd/help-version", test_help_version);

  return g_test_run ();
}

/* SPDX-License-Identifier: MIT */
/*
 * elbusd's configuration file ($ELBUSD --config FILE), spawned: limits and
 * listeners from the file, the command line over the file, bad files at
 * startup, wss:// with the file's certificate or --tls-certificate's, the
 * security policy, and SIGHUP reloads. elbusd's standard error goes to a
 * file, so that the tests can wait for its log lines.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "elbus-test-util.h"

#define RESULT_OK     0x01
#define RESULT_ACCESS 0x79

/* Every file the tests write listens here (relative to the file). */
#define LISTEN_HEADER "[elbusd]\nlisten=elbusd.sock\n"

typedef struct {
  char *dir;              /* (owned): temporary directory: the files, the socket */
  char *conf;             /* (owned): DIR/elbusd.conf */
  char *log;              /* (owned): DIR/elbusd.log, elbusd's standard error */
  char *socket_path;      /* (owned): DIR/elbusd.sock */
  ElbusTestDaemon *daemon; /* (owned) (nullable) */
  gsize log_pos;          /* how far wait_log() has read */
  gboolean no_config;     /* spawn without --config FILE */
} ConfTest;

static ConfTest *
conf_test_new (void)
{
  ConfTest *t = g_new0 (ConfTest, 1);
  g_autoptr(GError) error = NULL;

  t->dir = g_dir_make_tmp ("elbusd-conf-XXXXXX", &error);
  g_assert_no_error (error);
  t->conf = g_build_filename (t->dir, "elbusd.conf", NULL);
  t->log = g_build_filename (t->dir, "elbusd.log", NULL);
  t->socket_path = g_build_filename (t->dir, "elbusd.sock", NULL);

  return t;
}

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) &&
          !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_tree (child);
      else
        (void) g_remove (child);
    }
  (void) g_rmdir (path);
}

static void
conf_test_free (ConfTest *t)
{
  g_clear_pointer (&t->daemon, elbus_test_daemon_free);
  remove_tree (t->dir);
  g_free (t->dir);
  g_free (t->conf);
  g_free (t->log);
  g_free (t->socket_path);
  g_free (t);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ConfTest, conf_test_free)

/* Replaces the configuration file at once (a rename), so that elbusd
 * never reads half of it. */
static void
conf_test_write (ConfTest   *t,
                 const char *contents)
{
  g_autoptr(GError) error = NULL;

  g_file_set_contents (t->conf, contents, -1, &error);
  g_assert_no_error (error);
}

static void
daemon_child_setup (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* Spawns elbusd --config FILE (without it if t->no_config) with @extra
 * arguments, its standard error into t->log; waits until @wait_address
 * (if any) accepts connections. */
static void
conf_test_spawn (ConfTest          *t,
                 const char *const *extra,
                 const char        *wait_address)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) command = elbus_test_daemon_command ();
  int log_fd;

  g_assert_null (t->daemon);

  for (guint i = 0; command[i] != NULL; i++)
    g_ptr_array_add (argv, command[i]);
  if (!t->no_config)
    {
      g_ptr_array_add (argv, (gpointer) "--config");
      g_ptr_array_add (argv, t->conf);
    }
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) extra[i]);
  g_ptr_array_add (argv, NULL);

  log_fd = g_open (t->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  g_assert_cmpint (log_fd, >=, 0);

  t->daemon = g_new0 (ElbusTestDaemon, 1);
  t->daemon->dir = g_strdup (t->dir);

  /* the child's stdout goes to our stderr: stdout is the TAP stream */
  g_spawn_async_with_fds (NULL, (char **) argv->pdata, NULL,
                          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                          daemon_child_setup, NULL,
                          &t->daemon->pid, -1, STDERR_FILENO, log_fd,
                          &error);
  g_assert_no_error (error);
  close (log_fd);

  if (wait_address != NULL &&
      !elbus_test_wait_for_socket (wait_address, t->daemon->pid, ELBUS_TEST_DEADLINE_MS))
    {
      g_autofree char *log = NULL;

      g_file_get_contents (t->log, &log, NULL, NULL);
      g_error ("elbusd does not accept connections on %s; its log:\n%s",
               wait_address, log != NULL ? log : "");
    }
}

static char *
conf_test_read_log (ConfTest *t)
{
  char *log = NULL;

  if (!g_file_get_contents (t->log, &log, NULL, NULL))
    return g_strdup ("");
  return log;
}

/* Waits until a log line written after the last match contains @needle;
 * returns that line. */
static char *
conf_test_wait_log (ConfTest   *t,
                    const char *needle)
{
  gint64 deadline = g_get_monotonic_time () +
                    (gint64) ELBUS_TEST_DEADLINE_MS * 1000;

  for (;;)
    {
      g_autofree char *log = conf_test_read_log (t);
      const char *found = strlen (log) > t->log_pos ? strstr (log + t->log_pos, needle) : NULL;

      if (found != NULL)
        {
          const char *start = found;
          const char *end = strchr (found, '\n');

          while (start > log && start[-1] != '\n')
            start--;
          if (end == NULL)
            end = found + strlen (found);
          t->log_pos = end - log;
          return g_strndup (start, end - start);
        }

      if (g_get_monotonic_time () > deadline ||
          (t->daemon != NULL && elbus_test_daemon_wait (t->daemon, 0)))
        g_error ("no log line with “%s” from elbusd; its log:\n%s", needle, log);
      g_usleep (5000);
    }
}

static guint
conf_test_count_log (ConfTest   *t,
                     const char *needle)
{
  g_autofree char *log = conf_test_read_log (t);
  guint n = 0;

  for (const char *p = strstr (log, needle); p != NULL; p = strstr (p + 1, needle))
    n++;
  return n;
}

/* Writes @contents, sends SIGHUP and waits for @expected_log; returns
 * that log line. */
static char *
conf_test_reload (ConfTest   *t,
                  const char *contents,
                  const char *expected_log)
{
  char *line;

  conf_test_write (t, contents);
  g_assert_cmpint (kill (t->daemon->pid, SIGHUP), ==, 0);
  line = conf_test_wait_log (t, expected_log);
  g_test_message ("elbusd: %s", line);

  return line;
}

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
conf_test_stop (ConfTest *t)
{
  assert_exit_status (elbus_test_daemon_stop (t->daemon), 0);
}

/* A client whose registration is refused with @result: the broker answers
 * and closes. */
static void
assert_refused (const char *address,
                const char *name,
                guint8      result)
{
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect_address (address);

  g_assert_cmphex (elbus_test_conn_handshake (conn, name), ==, result);
  elbus_test_conn_expect_eof (conn);
}

/* A connection the broker closes at once, before its greeting. */
static void
assert_closed_at_accept (const char *address)
{
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect_address (address);

  g_assert_cmpuint (elbus_test_conn_drain_until_eof (conn, ELBUS_TEST_DEADLINE_MS), ==, 0);
}

static void
subscribe_acked (ElbusTestConn *conn,
                 const char    *mask,
                 guint8         result)
{
  guint32 op_id = conn->next_op_id++;

  elbus_test_conn_send_frame (conn, op_id, OP_SUBSCRIBE, ELBUS_QOS_PROCESSED,
                              mask, strlen (mask));
  elbus_test_conn_expect_ack (conn, op_id, result);
}

/* A message frame announcing a 2048-byte body. */
static const guint8 frame_2048[] = { 1, 0, 0, 0, OP_MESSAGE, 0x00, 0x08, 0, 0 };

/* ---- limits ------------------------------------------------------------ */

static void
test_limits (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;
  g_autoptr(ElbusTestConn) c = NULL;

  g_test_summary ("max-clients, max-subscriptions and max-frame-size from "
                  "the configuration file");

  /* .broker is one of the three clients */
  conf_test_write (t, LISTEN_HEADER
                      "max-clients=3\n"
                      "max-subscriptions=2\n"
                      "max-frame-size=1024\n");
  conf_test_spawn (t, NULL, t->socket_path);

  a = elbus_test_conn_new_address (t->socket_path, "lim.a");
  b = elbus_test_conn_new_address (t->socket_path, "lim.b");

  /* over max-clients: closed at once, logged once */
  assert_closed_at_accept (t->socket_path);
  g_free (conf_test_wait_log (t, "client limit of 3 reached"));
  assert_closed_at_accept (t->socket_path);
  g_assert_cmpuint (conf_test_count_log (t, "client limit of 3 reached"), ==, 1);

  /* max-subscriptions */
  subscribe_acked (a, "lim/1", RESULT_OK);
  subscribe_acked (a, "lim/2", RESULT_OK);
  subscribe_acked (a, "lim/3", RESULT_ACCESS);
  g_free (conf_test_wait_log (t, "subscription limit of 2 reached"));
  elbus_test_conn_op_acked (b, OP_PUBLISH, "lim/2", "to a", RESULT_OK);
  elbus_test_conn_expect_message (a, KIND_PUBLISH, "lim.b", "lim/2", "to a");

  /* max-frame-size: a larger body is a protocol error */
  elbus_test_conn_send (b, frame_2048, sizeof frame_2048);
  elbus_test_conn_expect_eof (b);

  /* b's place is free again */
  c = elbus_test_conn_new_address (t->socket_path, "lim.c");
  elbus_test_conn_op_acked (c, OP_MESSAGE, "lim.a", "hello", RESULT_OK);
  elbus_test_conn_expect_message (a, KIND_MESSAGE, "lim.c", NULL, "hello");

  conf_test_stop (t);
}

static void
test_force_register (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autoptr(ElbusTestConn) old = NULL;
  g_autoptr(ElbusTestConn) new = NULL;
  g_autoptr(ElbusTestConn) other = NULL;
  g_autofree char *ws_url = NULL;
  g_autofree char *config = NULL;

  g_test_summary ("force-register=true in the file: a registration takes over "
                  "a name that is taken; ws:// in listen serves WebSocket");

  if (elbus_test_have_websocket ())
    ws_url = g_strdup_printf ("ws://127.0.0.1:%u/bus", elbus_test_pick_free_port ());
  config = g_strdup_printf ("[elbusd]\nlisten=%s%s%s\nforce-register=true\n",
                            t->socket_path, ws_url != NULL ? ";" : "",
                            ws_url != NULL ? ws_url : "");
  conf_test_write (t, config);
  conf_test_spawn (t, NULL, t->socket_path);

  old = elbus_test_conn_new_address (t->socket_path, "svc");
  if (ws_url != NULL)
    {
      new = elbus_test_conn_connect_ws (ws_url);
      g_assert_cmphex (elbus_test_conn_handshake (new, "svc"), ==, RESULT_OK);
    }
  else
    new = elbus_test_conn_new_address (t->socket_path, "svc");
  elbus_test_conn_drain_until_eof (old, ELBUS_TEST_DEADLINE_MS);
  g_free (conf_test_wait_log (t, "replaced by a new registration"));

  other = elbus_test_conn_new_address (t->socket_path, "other");
  elbus_test_conn_op_acked (other, OP_MESSAGE, "svc", "to the new one", RESULT_OK);
  elbus_test_conn_expect_message (new, KIND_MESSAGE, "other", NULL, "to the new one");

  conf_test_stop (t);
}

static void
test_handshake_timeout (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autoptr(ElbusTestConn) idle = NULL;
  g_autoptr(ElbusTestConn) a = NULL;
  g_autofree char *contents = NULL;

  g_test_summary ("handshake-timeout from the file drops a connection that "
                  "does not register, and nobody else");

  /* the keep-alive timeout is far beyond the test's deadline: only the
   * handshake timeout can drop the idle connection in time */
  contents = g_strdup_printf (LISTEN_HEADER
                              "timeout=600\n"
                              "handshake-timeout=%g\n",
                              elbus_test_scale_ms (1000) / 1000.0);
  conf_test_write (t, contents);
  conf_test_spawn (t, NULL, t->socket_path);

  a = elbus_test_conn_new_address (t->socket_path, "hs.a");

  idle = elbus_test_conn_connect_address (t->socket_path);
  elbus_test_conn_expect_greeting (idle);
  elbus_test_conn_expect_eof (idle);
  g_free (conf_test_wait_log (t, "handshake timed out"));

  elbus_test_conn_op_acked (a, OP_PUBLISH, "hs/still", "up", RESULT_OK);

  conf_test_stop (t);
}

static void
test_handshake_follows_timeout (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autoptr(ElbusTestConn) idle = NULL;
  gint64 start, ms;

  g_test_summary ("A file with timeout=1 and no handshake-timeout gives the handshake "
                  "1 s too, as the original does, not the 5 s default");

  conf_test_write (t, LISTEN_HEADER "timeout=1\n");
  conf_test_spawn (t, NULL, t->socket_path);

  idle = elbus_test_conn_connect_address (t->socket_path);
  elbus_test_conn_expect_greeting (idle);
  start = g_get_monotonic_time ();
  elbus_test_conn_expect_eof (idle);
  ms = (g_get_monotonic_time () - start) / 1000;
  g_assert_cmpint (ms, >=, 500);
  g_assert_cmpint (ms, <, elbus_test_scale_ms (4000));
  g_free (conf_test_wait_log (t, "handshake timed out"));

  conf_test_stop (t);
}

static void
test_command_line_wins (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *cmd_socket = g_build_filename (t->dir, "cmd.sock", NULL);
  g_autofree char *file_socket = g_build_filename (t->dir, "file.sock", NULL);
  const char *args[] = { "--max-frame-size", "4096", "-B", cmd_socket, NULL };
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;
  g_autofree guint8 *frame = g_malloc0 (sizeof frame_2048 + 2048);

  g_test_summary ("Options on the command line win over the file: -B "
                  "replaces listen=, --max-frame-size max-frame-size=");

  conf_test_write (t, "[elbusd]\n"
                      "listen=file.sock\n"
                      "max-frame-size=1024\n");
  conf_test_spawn (t, args, cmd_socket);
  g_assert_false (g_file_test (file_socket, G_FILE_TEST_EXISTS));

  a = elbus_test_conn_new_address (cmd_socket, "cmd.a");
  b = elbus_test_conn_new_address (cmd_socket, "cmd.b");

  /* a 2048-byte message: "cmd.b" 00 and padding */
  memcpy (frame, frame_2048, sizeof frame_2048);
  frame[4] = OP_MESSAGE | (ELBUS_QOS_PROCESSED << 6);
  memcpy (frame + sizeof frame_2048, "cmd.b", strlen ("cmd.b") + 1);
  memset (frame + sizeof frame_2048 + 6, 'x', 2048 - 6);
  elbus_test_conn_send (a, frame, sizeof frame_2048 + 2048);
  elbus_test_conn_expect_ack (a, 1, RESULT_OK);
  {
    g_autoptr(ElbusTestFrame) message = elbus_test_conn_read_frame (b);

    g_assert_cmphex (message->kind, ==, KIND_MESSAGE);
    g_assert_cmpuint (g_bytes_get_size (message->payload), ==, 2048 - 6);
  }

  conf_test_stop (t);
}

/* ---- listeners ----------------------------------------------------------- */

static void
test_listeners (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *tcp = g_strdup_printf ("127.0.0.1:%u", elbus_test_pick_free_port ());
  g_autofree char *fifo = g_build_filename (t->dir, "ctl.fifo", NULL);
  g_autofree char *run_dir = g_build_filename (t->dir, "run", NULL);
  g_autofree char *pid_file = g_build_filename (run_dir, "elbusd.pid", NULL);
  g_autofree char *contents = NULL;
  g_autofree char *pid = NULL;
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;

  g_test_summary ("listen= opens UNIX, TCP and FIFO listeners; relative "
                  "paths are taken from the file's directory, pid-file too");

  g_assert_cmpint (g_mkdir (run_dir, 0755), ==, 0);
  contents = g_strdup_printf ("[elbusd]\n"
                              "listen = elbusd.sock ; %s;fifo:ctl.fifo; ./plain\n"
                              "pid-file=run/elbusd.pid\n", tcp);
  conf_test_write (t, contents);
  conf_test_spawn (t, NULL, t->socket_path);
  if (!elbus_test_wait_for_socket (tcp, t->daemon->pid, ELBUS_TEST_DEADLINE_MS))
    g_error ("elbusd does not accept connections on %s", tcp);
  g_free (conf_test_wait_log (t, "listening on fifo:"));

  a = elbus_test_conn_new_address (t->socket_path, "listen.unix");
  b = elbus_test_conn_new_address (tcp, "listen.tcp");
  /* ./plain: a socket path, as on the command line */
  {
    g_autofree char *plain = g_build_filename (t->dir, "plain", NULL);
    g_autoptr(ElbusTestConn) c = elbus_test_conn_new_address (plain, "listen.plain");
  }
  elbus_test_conn_op_acked (a, OP_MESSAGE, "listen.tcp", "over unix", RESULT_OK);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "listen.unix", NULL, "over unix");

  /* the control FIFO: a message from .broker */
  {
    int fd = g_open (fifo, O_WRONLY | O_CLOEXEC, 0);
    static const char line[] = "listen.unix from the fifo\n";

    g_assert_cmpint (fd, >=, 0);
    g_assert_cmpint (write (fd, line, strlen (line)), ==, (gssize) strlen (line));
    close (fd);
  }
  elbus_test_conn_expect_message (a, KIND_MESSAGE, ".broker", NULL, "from the fifo");

  /* the pid file is written once the listeners are up */
  {
    gint64 deadline = g_get_monotonic_time () + (gint64) ELBUS_TEST_DEADLINE_MS * 1000;

    while (!g_file_get_contents (pid_file, &pid, NULL, NULL) ||
           !g_str_has_suffix (pid, "\n"))
      {
        g_clear_pointer (&pid, g_free);
        if (g_get_monotonic_time () > deadline)
          g_error ("no pid file %s", pid_file);
        g_usleep (5000);
      }
  }
  g_assert_cmpint (g_ascii_strtoll (pid, NULL, 10), ==, t->daemon->pid);

  conf_test_stop (t);
  g_assert_false (g_file_test (t->socket_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (fifo, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (pid_file, G_FILE_TEST_EXISTS));
}

/* ---- bad files ------------------------------------------------------------- */

static void
run_elbusd_sync (const char *const *args,
                 char              **err,
                 int                *status)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;

  g_ptr_array_add (argv, (gpointer) elbus_test_elbusd_path ());
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);

  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                NULL, err, status, &error);
  g_assert_no_error (error);
}

static void
test_bad_file (void)
{
  static const struct {
    const char *contents;
    guint line;
    const char *message;
  } cases[] = {
    { "[elbusd]\nlisten=x.sock\nmax-clients=many\n", 3, "is not a whole number" },
    { "[elbusd]\nhandshake-timeout=0\n", 2, "handshake-timeout: 0 is out of range" },
    { "[elbusd]\nverbose=perhaps\n", 2, "is neither true nor false" },
    { "# a comment\n[elbusd]\nlisten=x.sock\nunknown-key=1\n", 4, "in [elbusd]" },
    { "[elbusd]\n\n[elbus]\n", 3, "unknown group [elbus]" },
    { "[elbusd]\nthis is not a key\n", 2, "is not a key=value line" },
    { "key=before-group\n", 1, "before any [group] header" },
    { "[elbusd]\nlisten=a.sock\nlisten=b.sock\n", 3, "given a second time in [elbusd] (first on line 2)" },
    { "[client x]\n[client y]\n[client x]\n", 3, "[client x] given a second time (first on line 1)" },
    { "[client]\n", 1, "needs a client name" },
    { "[client .broker]\n", 1, "belong to the broker" },
    { "[client a%%b]\n", 1, "share the entry of their primary" },
    { "[client a]\nnetworks=10.0.0.0/8;10.0.0.0/33\n", 2, "networks: " },
    { "[client a]\nnetworks=not-an-address\n", 2, "networks: " },
    { "[client a]\n\n\nuids=0;no-such-user-elbus-test\n", 4, "uids: unknown user" },
    { "[client a]\ngids=no-such-group-elbus-test\n", 2, "gids: unknown group" },
    { "[client a]\nuids=4294967295\n", 2, "is not a valid user id" },
    { "[client a]\ndeny=publish;shout\n", 2, "deny: unknown operation" },
    { "[client a]\nmonitor=yes\n", 2, "monitor: " },
    { "[client a]\npublish=a/#\nsubscribe=a/#\nrpc=x\n", 4, "in [client a]" },
  };
  g_autoptr(ConfTest) t = conf_test_new ();

  g_test_summary ("A bad configuration file stops elbusd at startup with "
                  "exit status 1 and FILE:LINE: in the message");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *args[] = { "--config", t->conf, NULL };
      g_autofree char *err = NULL;
      g_autofree char *expected = g_strdup_printf ("elbusd: %s:%u: ", t->conf, cases[i].line);
      int status = -1;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].contents);
      conf_test_write (t, cases[i].contents);
      run_elbusd_sync (args, &err, &status);
      g_test_message ("stderr: %s", err);
      assert_exit_status (status, 1);
      g_assert_true (g_str_has_prefix (err, expected));
      g_assert_nonnull (strstr (err, cases[i].message));
    }

  /* a --config that cannot be read */
  {
    g_autofree char *missing = g_build_filename (t->dir, "missing.conf", NULL);
    const char *args[] = { "--config", missing, NULL };
    g_autofree char *err = NULL;
    int status = -1;

    run_elbusd_sync (args, &err, &status);
    assert_exit_status (status, 1);
    g_assert_nonnull (strstr (err, "missing.conf"));
  }

  /* limits on the command line: a bad value is a bad command line */
  {
    static const char *const bad_options[][2] = {
      { "--max-clients", "-1" },
      { "--handshake-timeout", "soon" },
      { "--max-queue-bytes", "4294967296" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS (bad_options); i++)
      {
        const char *args[] = { "--config", "/dev/null", bad_options[i][0], bad_options[i][1],
                               NULL };
        g_autofree char *err = NULL;
        int status = -1;

        run_elbusd_sync (args, &err, &status);
        assert_exit_status (status, 2);
        g_assert_nonnull (strstr (err, bad_options[i][0]));
      }
  }
}

/* ---- wss:// ------------------------------------------------------------------ */

/* Makes a self-signed certificate for 127.0.0.1 and localhost, and its
 * key, in DIR/CERT and DIR/KEY with openssl. FALSE (the test skipped)
 * without openssl. */
static gboolean
make_certificate (const char *dir,
                  const char *cert,
                  const char *key)
{
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  g_autofree char *cert_path = g_build_filename (dir, cert, NULL);
  g_autofree char *key_path = g_build_filename (dir, key, NULL);
  const char *argv[] = {
    NULL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
    "-nodes", "-keyout", key_path, "-out", cert_path, "-days", "2",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    NULL
  };
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = -1;

  if (openssl == NULL)
    {
      g_test_skip ("openssl is not installed: no test certificate");
      return FALSE;
    }
  argv[0] = openssl;
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("openssl req failed: %s", err);
  return TRUE;
}

typedef struct {
  GPtrArray *frames;      /* (owned) (element-type ElbusFrame) */
} Received;

static void
frame_cb (ElbusClient *client,
          ElbusFrame  *frame,
          gpointer     user_data)
{
  Received *received = user_data;

  g_ptr_array_add (received->frames, elbus_frame_ref (frame));
}

static gboolean
echo_call_cb (ElbusRpcPeer       *peer,
              ElbusRpcInvocation *invocation,
              gpointer            user_data)
{
  elbus_rpc_invocation_return_value (invocation, elbus_rpc_invocation_get_params (invocation));
  return TRUE;
}

static void
assert_payload (ElbusFrame *frame,
                const char *text)
{
  GBytes *payload = elbus_frame_get_payload (frame);

  g_assert_cmpmem (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload),
                   text, strlen (text));
}

/* With ELBUS_TLS_CA_FILE naming @ca_file: a client registers as @name at
 * @url, or the connection fails (NULL, @error set). */
static ElbusClient *
connect_with_ca (const char  *url,
                 const char  *name,
                 const char  *ca_file,
                 GError     **error)
{
  ElbusClient *client;

  if (ca_file != NULL)
    g_setenv ("ELBUS_TLS_CA_FILE", ca_file, TRUE);
  else
    g_unsetenv ("ELBUS_TLS_CA_FILE");
  /* a TLS handshake under valgrind takes its time */
  client = g_initable_new (ELBUS_TYPE_CLIENT, NULL, error, "address", url, "name", name,
                           "timeout", elbus_test_scale_ms (5000) / 1000.0, NULL);
  g_unsetenv ("ELBUS_TLS_CA_FILE");
  return client;
}

static void
assert_certificate_refused (const char *url,
                            const char *ca_file)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = connect_with_ca (url, "wss.untrusting", ca_file, &error);

  g_assert_null (client);
  g_assert_nonnull (error);
  g_test_message ("refused: %s", error->message);
  g_assert_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
}

static void
test_wss (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *url = NULL;
  g_autofree char *config = NULL;
  g_autofree char *ca_file = g_build_filename (t->dir, "cert.pem", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(ElbusRpcPeer) a_rpc = NULL;
  g_autoptr(ElbusRpcPeer) b_rpc = NULL;
  g_autoptr(GBytes) hello = g_bytes_new_static ("hello", 5);
  g_autoptr(GBytes) news = g_bytes_new_static ("news", 4);
  g_autoptr(GBytes) params = elbus_test_msgpack_from_text ("{'x': <int64 7>}");
  g_auto(ElbusTestCall) call = { 0 };
  Received messages = { NULL };
  Received publications = { NULL };
  g_autofree char *line = NULL;

  g_test_summary ("wss:// in listen with tls-certificate and tls-key: clients that "
                  "trust the certificate (ELBUS_TLS_CA_FILE) register, send, publish "
                  "and call over TLS, the elbus tool too; a client that does not is "
                  "refused with a certificate error, logged, and costs nothing else");

  if (!elbus_test_have_websocket ())
    {
      g_test_skip ("built without WebSocket support");
      return;
    }
  if (!make_certificate (t->dir, "cert.pem", "key.pem"))
    return;

  url = g_strdup_printf ("wss://127.0.0.1:%u/elbus", elbus_test_pick_free_port ());
  config = g_strdup_printf ("[elbusd]\n"
                            "listen=elbusd.sock;%s\n"
                            "tls-certificate=cert.pem\n"
                            "tls-key=key.pem\n", url);
  conf_test_write (t, config);
  conf_test_spawn (t, NULL, t->socket_path);
  g_free (conf_test_wait_log (t, "listening on wss://"));

  a = connect_with_ca (url, "wss.a", ca_file, &error);
  g_assert_no_error (error);
  b = connect_with_ca (url, "wss.b", ca_file, &error);
  g_assert_no_error (error);
  g_free (conf_test_wait_log (t, "client wss.b: registered (websocket 127.0.0.1:"));
  messages.frames = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_frame_unref);
  publications.frames = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_frame_unref);
  g_signal_connect (b, "message", G_CALLBACK (frame_cb), &messages);
  g_signal_connect (b, "publication", G_CALLBACK (frame_cb), &publications);

  /* send and publish */
  {
    const char *masks[] = { "wss/#", NULL };

    elbus_client_subscribe_sync (b, masks, ELBUS_QOS_PROCESSED, NULL, &error);
  }
  g_assert_no_error (error);
  elbus_client_send_sync (a, "wss.b", hello, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  elbus_client_publish_sync (a, "wss/news", news, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  while (messages.frames->len < 1 || publications.frames->len < 1)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (elbus_frame_get_sender (g_ptr_array_index (messages.frames, 0)), ==, "wss.a");
  assert_payload (g_ptr_array_index (messages.frames, 0), "hello");
  g_assert_cmpstr (elbus_frame_get_topic (g_ptr_array_index (publications.frames, 0)), ==,
                   "wss/news");
  assert_payload (g_ptr_array_index (publications.frames, 0), "news");

  /* RPC: one wss client calls the other, and the broker */
  a_rpc = elbus_rpc_peer_new (a);
  b_rpc = elbus_rpc_peer_new (b);
  g_signal_connect (b_rpc, "handle-call::echo", G_CALLBACK (echo_call_cb), NULL);
  elbus_test_call_and_wait (a_rpc, "wss.b", "echo", params, ELBUS_QOS_PROCESSED, 10.0, &call);
  g_assert_no_error (call.error);
  g_assert_true (g_bytes_equal (call.reply, params));
  elbus_test_call_and_wait (a_rpc, ".broker", "test", NULL, ELBUS_QOS_PROCESSED, 10.0, &call);
  g_assert_no_error (call.error);

  /* the elbus tool, with ELBUS_TLS_CA_FILE relative to its working
   * directory (as in docs/configuration.md): GTlsFileDatabase wants an
   * absolute path */
  {
    const char *args[] = { url, "rpc", "call", ".broker", "test", NULL };
    g_autofree char *cwd = g_get_current_dir ();
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status;

    g_assert_cmpint (g_chdir (t->dir), ==, 0);
    g_setenv ("ELBUS_TLS_CA_FILE", "cert.pem", TRUE);
    status = elbus_test_run_program (g_getenv ("ELBUS_CLI"), args, NULL, &out, &err);
    g_unsetenv ("ELBUS_TLS_CA_FILE");
    g_assert_cmpint (g_chdir (cwd), ==, 0);
    g_test_message ("elbus: %s%s", out, err);
    g_assert_cmpint (status, ==, 0);
    g_assert_nonnull (strstr (out, "\"ok\":true"));
  }

  /* no CA file: the system's CAs do not know the test certificate */
  assert_certificate_refused (url, NULL);
  line = conf_test_wait_log (t, "closed before a complete HTTP request: the TLS handshake failed");
  g_assert_nonnull (strstr (line, url));

  /* the others are unharmed */
  elbus_client_send_sync (a, "wss.b", hello, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  while (messages.frames->len < 2)
    g_main_context_iteration (NULL, TRUE);

  elbus_client_close (a);
  elbus_client_close (b);
  g_ptr_array_unref (messages.frames);
  g_ptr_array_unref (publications.frames);
  conf_test_stop (t);
}

static void
test_wss_sighup (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *url = NULL;
  g_autofree char *config = NULL;
  g_autofree char *cert = g_build_filename (t->dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (t->dir, "key.pem", NULL);
  g_autofree char *old_ca = g_build_filename (t->dir, "old.pem", NULL);
  g_autofree char *new_cert = g_build_filename (t->dir, "new.pem", NULL);
  g_autofree char *new_key = g_build_filename (t->dir, "new.key", NULL);
  g_autofree char *other_key = g_build_filename (t->dir, "other.key", NULL);
  g_autoptr(ElbusClient) before = NULL;
  g_autoptr(ElbusClient) after = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) hello = g_bytes_new_static ("hello", 5);
  g_autofree char *line = NULL;

  g_test_summary ("SIGHUP reads the certificate files again: connections made "
                  "then get the renewed certificate, those made before stay; "
                  "a key that does not match is refused and the certificate in "
                  "force stays");

  if (!elbus_test_have_websocket ())
    {
      g_test_skip ("built without WebSocket support");
      return;
    }
  if (!make_certificate (t->dir, "cert.pem", "key.pem") ||
      !make_certificate (t->dir, "new.pem", "new.key") ||
      !make_certificate (t->dir, "other.pem", "other.key"))
    return;
  /* the clients' copy of the first certificate: cert.pem is renewed */
  {
    g_autofree char *pem = NULL;

    g_assert_true (g_file_get_contents (cert, &pem, NULL, NULL));
    g_assert_true (g_file_set_contents (old_ca, pem, -1, NULL));
  }

  url = g_strdup_printf ("wss://127.0.0.1:%u/elbus", elbus_test_pick_free_port ());
  config = g_strdup_printf ("[elbusd]\n"
                            "listen=elbusd.sock;%s\n"
                            "tls-certificate=cert.pem\n"
                            "tls-key=key.pem\n", url);
  conf_test_write (t, config);
  conf_test_spawn (t, NULL, t->socket_path);
  g_free (conf_test_wait_log (t, "listening on wss://"));

  before = connect_with_ca (url, "wss.before", old_ca, &error);
  g_assert_no_error (error);

  /* the certificate is renewed in place */
  {
    g_autofree char *pem = NULL;

    g_assert_true (g_file_get_contents (new_cert, &pem, NULL, NULL));
    g_assert_true (g_file_set_contents (cert, pem, -1, NULL));
    g_clear_pointer (&pem, g_free);
    g_assert_true (g_file_get_contents (new_key, &pem, NULL, NULL));
    g_assert_true (g_file_set_contents (key, pem, -1, NULL));
  }
  g_free (conf_test_reload (t, config, "TLS certificate loaded from"));
  g_free (conf_test_wait_log (t, "reloaded the configuration from"));

  assert_certificate_refused (url, old_ca);
  after = connect_with_ca (url, "wss.after", new_cert, &error);
  g_assert_no_error (error);
  elbus_client_send_sync (before, "wss.after", hello, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);

  /* a key of another certificate: not reloaded, the renewed one stays */
  {
    g_autofree char *pem = NULL;

    g_assert_true (g_file_get_contents (other_key, &pem, NULL, NULL));
    g_assert_true (g_file_set_contents (key, pem, -1, NULL));
  }
  line = conf_test_reload (t, config, "does not work with the certificate");
  g_assert_nonnull (strstr (line, "configuration not reloaded"));
  g_clear_object (&after);
  after = connect_with_ca (url, "wss.after2", new_cert, &error);
  g_assert_no_error (error);

  elbus_client_close (before);
  elbus_client_close (after);
  conf_test_stop (t);
}

static void
test_wss_daemonize (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *url = NULL;
  g_autofree char *config = NULL;
  g_autofree char *ca_file = g_build_filename (t->dir, "cert.pem", NULL);
  g_autofree char *pid_file = g_build_filename (t->dir, "elbusd.pid", NULL);
  g_autofree char *pid_text = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = NULL;
  const char *args[] = { "--config", t->conf, "-D", NULL };
  int status = -1;
  GPid pid;

  g_test_summary ("elbusd -D with a wss:// listener: the daemon serves TLS (the "
                  "key is tried after the fork, whose child must not inherit "
                  "GLib's worker threads)");

  if (!elbus_test_have_websocket ())
    {
      g_test_skip ("built without WebSocket support");
      return;
    }
  if (!make_certificate (t->dir, "cert.pem", "key.pem"))
    return;

  url = g_strdup_printf ("wss://127.0.0.1:%u/elbus", elbus_test_pick_free_port ());
  config = g_strdup_printf ("[elbusd]\n"
                            "listen=elbusd.sock;%s\n"
                            "pid-file=elbusd.pid\n"
                            "tls-certificate=cert.pem\n"
                            "tls-key=key.pem\n", url);
  conf_test_write (t, config);
  run_elbusd_sync (args, &err, &status);
  g_test_message ("stderr: %s", err);
  assert_exit_status (status, 0);
  g_assert_true (g_file_get_contents (pid_file, &pid_text, NULL, NULL));
  pid = (GPid) g_ascii_strtoll (pid_text, NULL, 10);
  g_assert_cmpint (pid, >, 0);

  client = connect_with_ca (url, "wss.daemon", ca_file, &error);
  g_assert_no_error (error);
  elbus_client_close (client);

  /* it removes its pid file on the way out (a zombie would still answer
   * kill (pid, 0) where nobody reaps it) */
  g_assert_cmpint (kill (pid, SIGTERM), ==, 0);
  {
    gint64 deadline = g_get_monotonic_time () + (gint64) ELBUS_TEST_DEADLINE_MS * 1000;

    while (g_file_test (pid_file, G_FILE_TEST_EXISTS))
      {
        if (g_get_monotonic_time () > deadline)
          {
            (void) kill (pid, SIGKILL);
            g_error ("the daemon %d does not stop", (int) pid);
          }
        g_usleep (10000);
      }
  }
}

static void
test_wss_bad_certificate (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  guint16 port = elbus_test_pick_free_port ();
  g_autofree char *wss = g_strdup_printf ("wss://127.0.0.1:%u/", port);
  g_autofree char *garbage = g_build_filename (t->dir, "garbage.pem", NULL);
  struct {
    char *contents;
    guint line;
    const char *message;
  } cases[] = {
    { g_strdup_printf ("[elbusd]\nlisten=%s\n", wss), 2,
      "needs tls-certificate and tls-key" },
    { g_strdup ("[elbusd]\nlisten=x.sock\ntls-key=key.pem\n"), 3,
      "tls-key without tls-certificate" },
    { g_strdup ("[elbusd]\nlisten=x.sock\ntls-certificate=\n"), 3, "tls-certificate: empty" },
    { g_strdup ("[elbusd]\nlisten=x.sock\ntls-certificate=missing.pem\ntls-key=key.pem\n"), 3,
      "missing.pem" },
    { g_strdup ("[elbusd]\nlisten=x.sock\ntls-certificate=/dev/zero\n"), 3,
      "tls-certificate: /dev/zero is not a file" },
    { g_strdup ("[elbusd]\nlisten=x.sock\ntls-certificate=garbage.pem\ntls-key=key.pem\n"), 3,
      "tls-certificate: cannot load" },
    { g_strdup ("[elbusd]\nlisten=x.sock\ntls-certificate=cert.pem\ntls-key=garbage.pem\n"), 3,
      "tls-certificate: cannot load" },
    { g_strdup ("[elbusd]\nlisten=x.sock\ntls-certificate=cert.pem\n"), 3,
      "holds no private key" },
    { g_strdup ("[elbusd]\nlisten=x.sock\ntls-certificate=cert.pem\ntls-key=other.key\n"), 3,
      "does not work with the certificate" },
  };
  gboolean have_certificate;

  g_test_summary ("A wss:// listener without tls-certificate, and certificate or "
                  "key files that cannot be read, are not certificates or do not "
                  "match, stop elbusd at startup with FILE:LINE: and why");

  g_assert_true (g_file_set_contents (garbage, "-----BEGIN NONSENSE-----\n", -1, NULL));
  have_certificate = make_certificate (t->dir, "cert.pem", "key.pem") &&
                     make_certificate (t->dir, "other.pem", "other.key");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *args[] = { "--config", t->conf, NULL };
      g_autofree char *err = NULL;
      g_autofree char *expected = g_strdup_printf ("elbusd: %s:%u: ", t->conf, cases[i].line);
      int status = -1;

      /* without openssl, the cases that need no certificate */
      if (i < 5 || have_certificate)
        {
          g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].contents);
          conf_test_write (t, cases[i].contents);
          run_elbusd_sync (args, &err, &status);
          g_test_message ("stderr: %s", err);
          assert_exit_status (status, 1);
          g_assert_true (g_str_has_prefix (err, expected));
          g_assert_nonnull (strstr (err, cases[i].message));
        }
      g_free (cases[i].contents);
    }

  /* -B wss:// and no certificate in the file */
  if (elbus_test_have_websocket ())
    {
      const char *args[] = { "--config", "/dev/null", "-B", wss, NULL };
      g_autofree char *err = NULL;
      int status = -1;

      run_elbusd_sync (args, &err, &status);
      g_test_message ("stderr: %s", err);
      assert_exit_status (status, 1);
      g_assert_nonnull (strstr (err, "wss:// needs a TLS certificate and its key"));
      g_assert_nonnull (strstr (err, "tls-certificate"));
    }
}

/* ---- wss:// with --tls-certificate and --tls-key ------------------------------- */

/* Writes the contents of @first, then of @second (nullable), to @to. */
static void
copy_files (const char *first,
            const char *second,
            const char *to)
{
  g_autofree char *a = NULL;
  g_autofree char *b = NULL;
  g_autofree char *both = NULL;

  g_assert_true (g_file_get_contents (first, &a, NULL, NULL));
  if (second != NULL)
    g_assert_true (g_file_get_contents (second, &b, NULL, NULL));
  both = g_strconcat (a, b, NULL);
  g_assert_true (g_file_set_contents (to, both, -1, NULL));
}

static void
test_wss_command_line (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *url = NULL;
  g_autofree char *cert = g_build_filename (t->dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (t->dir, "key.pem", NULL);
  g_autofree char *old_ca = g_build_filename (t->dir, "old.pem", NULL);
  g_autofree char *new_cert = g_build_filename (t->dir, "new.pem", NULL);
  g_autofree char *new_key = g_build_filename (t->dir, "new.key", NULL);
  g_autofree char *other_key = g_build_filename (t->dir, "other.key", NULL);
  g_autoptr(ElbusClient) before = NULL;
  g_autoptr(ElbusClient) after = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) hello = g_bytes_new_static ("hello", 5);
  g_autofree char *line = NULL;

  g_test_summary ("elbusd -B wss://… --tls-certificate C --tls-key K without a "
                  "configuration file: a client that trusts C registers and sends; "
                  "SIGHUP reads C and K again, a renewed certificate is served, a "
                  "key that does not match is refused and the certificate in force "
                  "stays");

  if (!elbus_test_have_websocket ())
    {
      g_test_skip ("built without WebSocket support");
      return;
    }
  if (!make_certificate (t->dir, "cert.pem", "key.pem") ||
      !make_certificate (t->dir, "new.pem", "new.key") ||
      !make_certificate (t->dir, "other.pem", "other.key"))
    return;
  copy_files (cert, NULL, old_ca);

  url = g_strdup_printf ("wss://127.0.0.1:%u/elbus", elbus_test_pick_free_port ());
  {
    /* a relative file name is taken from the working directory */
    const char *args[] = { "-B", t->socket_path, "-B", url,
                           "--tls-certificate", cert, "--tls-key", "key.pem", NULL };
    g_autofree char *cwd = g_get_current_dir ();

    t->no_config = TRUE;
    g_assert_cmpint (g_chdir (t->dir), ==, 0);
    conf_test_spawn (t, args, NULL);
    g_assert_cmpint (g_chdir (cwd), ==, 0);
  }
  g_assert_true (elbus_test_wait_for_socket (t->socket_path, t->daemon->pid,
                                             ELBUS_TEST_DEADLINE_MS));
  line = conf_test_wait_log (t, "--tls-certificate: TLS certificate loaded from");
  g_assert_nonnull (strstr (line, cert));
  g_free (conf_test_wait_log (t, "listening on wss://"));

  before = connect_with_ca (url, "wss.before", old_ca, &error);
  g_assert_no_error (error);
  elbus_client_send_sync (before, "wss.before", hello, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);

  /* renewed in place: without a configuration file, SIGHUP reads C and K */
  copy_files (new_cert, NULL, cert);
  copy_files (new_key, NULL, key);
  g_assert_cmpint (kill (t->daemon->pid, SIGHUP), ==, 0);
  g_clear_pointer (&line, g_free);
  line = conf_test_wait_log (t, "TLS certificate loaded from");
  g_assert_nonnull (strstr (line, "--tls-certificate: "));
  g_free (conf_test_wait_log (t, "reloaded the TLS certificate from"));
  assert_certificate_refused (url, old_ca);
  after = connect_with_ca (url, "wss.after", new_cert, &error);
  g_assert_no_error (error);
  elbus_client_send_sync (before, "wss.after", hello, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);

  /* a key of another certificate: not reloaded, the renewed one stays */
  copy_files (other_key, NULL, key);
  g_assert_cmpint (kill (t->daemon->pid, SIGHUP), ==, 0);
  g_clear_pointer (&line, g_free);
  line = conf_test_wait_log (t, "does not work with the certificate");
  g_test_message ("elbusd: %s", line);
  g_assert_nonnull (strstr (line, "--tls-certificate: the key in "));
  g_assert_nonnull (strstr (line, "configuration not reloaded"));
  g_clear_object (&after);
  after = connect_with_ca (url, "wss.after2", new_cert, &error);
  g_assert_no_error (error);

  elbus_client_close (before);
  elbus_client_close (after);
  conf_test_stop (t);
}

static void
test_wss_command_line_wins (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *url = NULL;
  g_autofree char *config = NULL;
  g_autofree char *cert = g_build_filename (t->dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (t->dir, "key.pem", NULL);
  g_autofree char *both = g_build_filename (t->dir, "both.pem", NULL);
  g_autofree char *other_cert = g_build_filename (t->dir, "other.pem", NULL);
  g_autofree char *garbage = g_build_filename (t->dir, "garbage.pem", NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GError) error = NULL;
  const char *args[] = { "--tls-certificate", both, NULL };

  g_test_summary ("--tls-certificate wins over the file's tls-certificate and "
                  "tls-key, at start and on SIGHUP: the file's are not read (a "
                  "certificate that cannot be loaded is no obstacle), and its tls-key "
                  "is not paired with the option's certificate, whose file holds the key");

  if (!elbus_test_have_websocket ())
    {
      g_test_skip ("built without WebSocket support");
      return;
    }
  if (!make_certificate (t->dir, "cert.pem", "key.pem") ||
      !make_certificate (t->dir, "other.pem", "other.key"))
    return;
  copy_files (cert, key, both);
  g_assert_true (g_file_set_contents (garbage, "-----BEGIN NONSENSE-----\n", -1, NULL));

  /* wss:// in listen, and a certificate in the file that would stop elbusd */
  url = g_strdup_printf ("wss://127.0.0.1:%u/elbus", elbus_test_pick_free_port ());
  config = g_strdup_printf ("[elbusd]\n"
                            "listen=elbusd.sock;%s\n"
                            "tls-certificate=garbage.pem\n"
                            "tls-key=other.key\n", url);
  conf_test_write (t, config);
  conf_test_spawn (t, args, t->socket_path);
  g_free (conf_test_wait_log (t, "listening on wss://"));

  client = connect_with_ca (url, "wss.cmd", cert, &error);
  g_assert_no_error (error);
  g_clear_object (&client);

  /* SIGHUP: a file naming a good certificate does not replace it either */
  g_free (config);
  config = g_strdup_printf ("[elbusd]\n"
                            "listen=elbusd.sock;%s\n"
                            "tls-certificate=other.pem\n"
                            "tls-key=other.key\n", url);
  g_free (conf_test_reload (t, config, "reloaded the configuration from"));
  client = connect_with_ca (url, "wss.cmd2", cert, &error);
  g_assert_no_error (error);
  assert_certificate_refused (url, other_cert);
  /* once, at start: the same certificate again is not news */
  g_assert_cmpuint (conf_test_count_log (t, "--tls-certificate: TLS certificate loaded from"), ==, 1);
  g_assert_cmpuint (conf_test_count_log (t, "TLS certificate loaded from"), ==, 1);

  elbus_client_close (client);
  conf_test_stop (t);
}

static void
test_wss_command_line_bad (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *socket_arg = g_build_filename (t->dir, "x.sock", NULL);
  g_autofree char *cert = g_build_filename (t->dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (t->dir, "key.pem", NULL);
  g_autofree char *other_key = g_build_filename (t->dir, "other.key", NULL);
  g_autofree char *garbage = g_build_filename (t->dir, "garbage.pem", NULL);
  g_autofree char *missing = g_build_filename (t->dir, "missing.pem", NULL);
  g_autofree char *wss = g_strdup_printf ("wss://127.0.0.1:%u/", elbus_test_pick_free_port ());
  g_autofree char *garbage_key = g_strdup_printf ("elbusd: --tls-certificate: cannot load %s "
                                                  "with the key %s: ", cert, garbage);
  g_autofree char *missing_cert = g_strdup_printf ("elbusd: --tls-certificate: cannot load %s "
                                                   "with the key %s: ", missing, key);
  g_autofree char *no_key = g_strdup_printf ("elbusd: --tls-certificate: %s holds no private "
                                             "key: name its file in --tls-key\n", cert);
  g_autofree char *wrong_key = g_strdup_printf ("elbusd: --tls-certificate: the key in %s does "
                                                "not work with the certificate %s: ",
                                                other_key, cert);
  /* a certificate or key that cannot be used: status 1, one line */
  const struct {
    const char *args[5];
    const char *message;
  } cases[] = {
    { { "--tls-certificate", cert, "--tls-key", garbage }, garbage_key },
    { { "--tls-certificate", cert, "--tls-key", other_key }, wrong_key },
    { { "--tls-certificate", cert, "--tls-key", "/dev/null" },
      "elbusd: --tls-key: /dev/null is not a file\n" },
    { { "--tls-certificate", missing, "--tls-key", key }, missing_cert },
    { { "--tls-certificate", cert }, no_key },
  };
  /* a bad command line: status 2 */
  const struct {
    const char *args[5];
    const char *message;
  } usage_cases[] = {
    { { "--tls-key", key }, "elbusd: --tls-key without --tls-certificate\n" },
    { { "--tls-certificate=", "--tls-key", key }, "elbusd: --tls-certificate: empty\n" },
    { { "--tls-certificate", cert, "--tls-key=" }, "elbusd: --tls-key: empty\n" },
  };

  g_test_summary ("--tls-certificate and --tls-key files that cannot be read, are not "
                  "certificates or keys, or do not match stop elbusd at startup with "
                  "status 1 and one line saying why; --tls-key alone or an empty file "
                  "name is a bad command line");

  if (!make_certificate (t->dir, "cert.pem", "key.pem") ||
      !make_certificate (t->dir, "other.pem", "other.key"))
    return;
  g_assert_true (g_file_set_contents (garbage, "-----BEGIN NONSENSE-----\n", -1, NULL));

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GPtrArray) args = g_ptr_array_new ();
      g_autofree char *err = NULL;
      int status = -1;

      g_ptr_array_add (args, (gpointer) "-B");
      g_ptr_array_add (args, socket_arg);
      for (guint j = 0; j < G_N_ELEMENTS (cases[i].args) && cases[i].args[j] != NULL; j++)
        g_ptr_array_add (args, (gpointer) cases[i].args[j]);
      g_ptr_array_add (args, NULL);

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].message);
      run_elbusd_sync ((const char *const *) args->pdata, &err, &status);
      g_test_message ("stderr: %s", err);
      assert_exit_status (status, 1);
      g_assert_true (g_str_has_prefix (err, cases[i].message));
      g_assert_true (g_str_has_suffix (err, "\n"));
      g_assert_true (strchr (err, '\n') == err + strlen (err) - 1);
      g_assert_false (g_file_test (socket_arg, G_FILE_TEST_EXISTS));
    }

  for (gsize i = 0; i < G_N_ELEMENTS (usage_cases); i++)
    {
      g_autoptr(GPtrArray) args = g_ptr_array_new ();
      g_autofree char *err = NULL;
      int status = -1;

      g_ptr_array_add (args, (gpointer) "-B");
      g_ptr_array_add (args, socket_arg);
      for (guint j = 0; j < G_N_ELEMENTS (usage_cases[i].args) && usage_cases[i].args[j] != NULL;
           j++)
        g_ptr_array_add (args, (gpointer) usage_cases[i].args[j]);
      g_ptr_array_add (args, NULL);

      run_elbusd_sync ((const char *const *) args->pdata, &err, &status);
      g_test_message ("stderr: %s", err);
      assert_exit_status (status, 2);
      g_assert_true (g_str_has_prefix (err, usage_cases[i].message));
    }

  /* -B wss:// without a certificate: the message names the options too */
  if (elbus_test_have_websocket ())
    {
      const char *args[] = { "--config", "/dev/null", "-B", wss, NULL };
      g_autofree char *err = NULL;
      int status = -1;

      run_elbusd_sync (args, &err, &status);
      g_test_message ("stderr: %s", err);
      assert_exit_status (status, 1);
      g_assert_nonnull (strstr (err, "--tls-certificate and --tls-key"));
    }
}

/* ---- policy -------------------------------------------------------------------- */

static void
test_policy (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autoptr(ElbusTestConn) sensor = NULL;
  g_autoptr(ElbusTestConn) secondary = NULL;
  g_autoptr(ElbusTestConn) control = NULL;

  g_test_summary ("[client NAME] groups put a policy in force: listed names "
                  "register, others are refused 0x79, refused operations "
                  "are acked 0x79");

  conf_test_write (t, LISTEN_HEADER
                      "\n"
                      "[client pol.sensor]\n"
                      "publish=sensors/#\n"
                      "subscribe=control/#\n"
                      "message=pol.control\n"
                      "deny=broadcast\n"
                      "\n"
                      "# allowed everything\n"
                      "[client pol.control]\n");
  conf_test_spawn (t, NULL, t->socket_path);

  sensor = elbus_test_conn_new_address (t->socket_path, "pol.sensor");
  control = elbus_test_conn_new_address (t->socket_path, "pol.control");
  assert_refused (t->socket_path, "pol.stranger", RESULT_ACCESS);

  /* allowed and refused operations */
  elbus_test_conn_op_acked (sensor, OP_PUBLISH, "sensors/t1", "21.5", RESULT_OK);
  elbus_test_conn_op_acked (sensor, OP_PUBLISH, "control/t1", "21.5", RESULT_ACCESS);
  elbus_test_conn_op_acked (sensor, OP_BROADCAST, "pol.*", "hi", RESULT_ACCESS);
  subscribe_acked (sensor, "control/set", RESULT_OK);
  subscribe_acked (sensor, "sensors/#", RESULT_ACCESS);
  elbus_test_conn_op_acked (sensor, OP_MESSAGE, "pol.control", "ping", RESULT_OK);
  elbus_test_conn_expect_message (control, KIND_MESSAGE, "pol.sensor", NULL, "ping");

  /* pol.control has an empty entry: anything goes */
  elbus_test_conn_op_acked (control, OP_PUBLISH, "control/set", "on", RESULT_OK);
  elbus_test_conn_expect_message (sensor, KIND_PUBLISH, "pol.control", "control/set", "on");
  elbus_test_conn_op_acked (control, OP_BROADCAST, "pol.sensor", "all", RESULT_OK);
  elbus_test_conn_expect_message (sensor, KIND_BROADCAST, "pol.control", NULL, "all");

  /* a secondary shares its primary's entry */
  secondary = elbus_test_conn_new_address (t->socket_path, "pol.sensor%%rpc");
  elbus_test_conn_op_acked (secondary, OP_PUBLISH, "sensors/t2", "1", RESULT_OK);
  elbus_test_conn_op_acked (secondary, OP_PUBLISH, "other/t2", "1", RESULT_ACCESS);

  conf_test_stop (t);
}

/* Calls .broker's monitor.start with QoS No and returns the RPC event
 * type of the answer: 0x11 (reply) or 0x12 (error). */
static guint8
call_monitor_start (ElbusTestConn *conn)
{
  static const guint8 request[] = {
    0x01, 7, 0, 0, 0,
    'm', 'o', 'n', 'i', 't', 'o', 'r', '.', 's', 't', 'a', 'r', 't', 0x00,
    0x80,
  };
  g_autoptr(ElbusTestFrame) answer = NULL;

  elbus_test_conn_send_op (conn, OP_MESSAGE, ELBUS_QOS_NO, ".broker",
                           request, sizeof request);
  answer = elbus_test_conn_read_frame (conn);
  g_assert_cmphex (answer->kind, ==, KIND_MESSAGE);
  g_assert_cmpstr (answer->sender, ==, ".broker");
  g_assert_cmpuint (g_bytes_get_size (answer->payload), >=, 5);
  g_assert_cmphex (((const guint8 *) g_bytes_get_data (answer->payload, NULL))[1], ==, 7);

  return ((const guint8 *) g_bytes_get_data (answer->payload, NULL))[0];
}

static void
test_policy_sources (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *tcp = g_strdup_printf ("127.0.0.1:%u", elbus_test_pick_free_port ());
  g_autofree char *contents = NULL;
  struct passwd *pw = getpwuid (getuid ());
  g_autoptr(ElbusTestConn) local = NULL;
  g_autoptr(ElbusTestConn) mute = NULL;
  g_autoptr(ElbusTestConn) watcher = NULL;
  g_autoptr(ElbusTestConn) plain = NULL;

  g_test_summary ("networks=, uids= and gids= (numbers and names) choose "
                  "who may connect; deny= wins over masks; monitor=");

  g_assert_nonnull (pw);
  contents = g_strdup_printf ("[elbusd]\n"
                              "listen=elbusd.sock;%s\n"
                              "[client src.uid]\nuids=%u\n"
                              "[client src.user]\nuids=nobody-elbus-x-no;%s\n"
                              "[client src.gid]\ngids=%u\n"
                              "[client src.other]\nuids=%u\n"
                              "[client src.local]\nnetworks=127.0.0.0/8;::1\n"
                              "[client src.remote]\nnetworks=10.0.0.0/8\n"
                              "[client src.mute]\ndeny=publish\npublish=mute/#\nsubscribe=\n"
                              "[client src.watcher]\nmonitor=true\n"
                              "[client src.plain]\n",
                              tcp, (guint) getuid (), pw->pw_name, (guint) getgid (),
                              (guint) getuid () + 1);
  /* the unknown user makes the file bad: first that, then the good one */
  conf_test_write (t, contents);
  {
    const char *args[] = { "--config", t->conf, NULL };
    g_autofree char *err = NULL;
    int status = -1;

    run_elbusd_sync (args, &err, &status);
    assert_exit_status (status, 1);
    g_assert_nonnull (strstr (err, ":6: uids: unknown user"));
  }
  g_free (contents);
  contents = g_strdup_printf ("[elbusd]\n"
                              "listen=elbusd.sock;%s\n"
                              "[client src.uid]\nuids=%u\n"
                              "[client src.user]\nuids=%s\n"
                              "[client src.gid]\ngids=%u\n"
                              "[client src.other]\nuids=%u\n"
                              "[client src.local]\nnetworks=127.0.0.0/8;::1\n"
                              "[client src.remote]\nnetworks=10.0.0.0/8\n"
                              "[client src.mute]\ndeny=publish\npublish=mute/#\nsubscribe=\n"
                              "[client src.watcher]\nmonitor=true\n"
                              "[client src.plain]\n",
                              tcp, (guint) getuid (), pw->pw_name, (guint) getgid (),
                              (guint) getuid () + 1);
  conf_test_write (t, contents);
  conf_test_spawn (t, NULL, t->socket_path);
  if (!elbus_test_wait_for_socket (tcp, t->daemon->pid, ELBUS_TEST_DEADLINE_MS))
    g_error ("elbusd does not accept connections on %s", tcp);

  /* credentials: UNIX clients only */
  {
    g_autoptr(ElbusTestConn) a = elbus_test_conn_new_address (t->socket_path, "src.uid");
    g_autoptr(ElbusTestConn) b = elbus_test_conn_new_address (t->socket_path, "src.user");
    g_autoptr(ElbusTestConn) c = elbus_test_conn_new_address (t->socket_path, "src.gid");
  }
  assert_refused (t->socket_path, "src.other", RESULT_ACCESS);
  assert_refused (tcp, "src.uid", RESULT_ACCESS);

  /* networks: TCP clients only */
  local = elbus_test_conn_new_address (tcp, "src.local");
  assert_refused (tcp, "src.remote", RESULT_ACCESS);
  {
    g_autoptr(ElbusTestConn) remote_over_unix = elbus_test_conn_new_address (t->socket_path, "src.remote");
  }

  /* deny= wins, whatever the order of the keys; an empty list allows
   * nothing */
  mute = elbus_test_conn_new_address (t->socket_path, "src.mute");
  elbus_test_conn_op_acked (mute, OP_PUBLISH, "mute/x", "1", RESULT_ACCESS);
  subscribe_acked (mute, "any/thing", RESULT_ACCESS);
  elbus_test_conn_op_acked (mute, OP_MESSAGE, "src.local", "may talk", RESULT_OK);
  elbus_test_conn_expect_message (local, KIND_MESSAGE, "src.mute", NULL, "may talk");

  /* monitor= */
  plain = elbus_test_conn_new_address (t->socket_path, "src.plain");
  g_assert_cmphex (call_monitor_start (plain), ==, 0x12);
  watcher = elbus_test_conn_new_address (t->socket_path, "src.watcher");
  g_assert_cmphex (call_monitor_start (watcher), ==, 0x11);

  conf_test_stop (t);
}

static void
test_no_policy (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;

  g_test_summary ("A file without [client NAME] groups puts no policy in force");

  conf_test_write (t, LISTEN_HEADER);
  conf_test_spawn (t, NULL, t->socket_path);
  g_free (conf_test_wait_log (t, "no security policy"));

  a = elbus_test_conn_new_address (t->socket_path, "anyone.at.all");
  b = elbus_test_conn_new_address (t->socket_path, "anybody.else");
  elbus_test_conn_op_acked (a, OP_BROADCAST, "anybody.*", "hello", RESULT_OK);
  elbus_test_conn_expect_message (b, KIND_BROADCAST, "anyone.at.all", NULL, "hello");

  conf_test_stop (t);
}

/* ---- SIGHUP -------------------------------------------------------------------- */

static void
test_sighup (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autoptr(ElbusTestConn) stay = NULL;
  g_autoptr(ElbusTestConn) stay2 = NULL;
  g_autoptr(ElbusTestConn) gone = NULL;
  g_autoptr(ElbusTestConn) gone2 = NULL;
  g_autoptr(ElbusTestConn) added = NULL;
  g_autoptr(ElbusTestConn) anyone = NULL;
  g_autofree char *line = NULL;

  g_test_summary ("SIGHUP reloads the policy: allowed clients stay, removed "
                  "ones are dropped, new names may register; a broken file "
                  "is rejected and the old policy stays");

  conf_test_write (t, LISTEN_HEADER
                      "[client hup.stay]\n"
                      "publish=hup/#\n"
                      "[client hup.gone]\n");
  conf_test_spawn (t, NULL, t->socket_path);

  stay = elbus_test_conn_new_address (t->socket_path, "hup.stay");
  stay2 = elbus_test_conn_new_address (t->socket_path, "hup.stay%%2");
  gone = elbus_test_conn_new_address (t->socket_path, "hup.gone");
  gone2 = elbus_test_conn_new_address (t->socket_path, "hup.gone%%2");
  assert_refused (t->socket_path, "hup.added", RESULT_ACCESS);

  /* hup.gone's entry is removed, hup.added's appears */
  line = conf_test_reload (t, LISTEN_HEADER
                       "[client hup.stay]\n"
                       "publish=hup/#\n"
                       "[client hup.added]\n",
                    "reloaded the configuration from");
  /* the dropped client is told why on .broker/warn, then closed; its
   * secondary goes with it */
  elbus_test_conn_expect_disconnect_notice (gone, "the reloaded security policy has no "
                                                  "entry for the name hup.gone");
  elbus_test_conn_expect_eof (gone);
  elbus_test_conn_drain_until_eof (gone2, ELBUS_TEST_DEADLINE_MS);
  g_assert_cmpuint (conf_test_count_log (t, "client hup.gone: disconnected by the broker: "
                                            "the reloaded security policy has no entry"), ==, 1);
  g_assert_cmpuint (conf_test_count_log (t, "1 client disconnected"), ==, 1);

  /* the client allowed in both keeps its connection and its entry */
  elbus_test_conn_op_acked (stay, OP_PUBLISH, "hup/x", "still here", RESULT_OK);
  elbus_test_conn_op_acked (stay, OP_PUBLISH, "other/x", "no", RESULT_ACCESS);
  elbus_test_conn_op_acked (stay2, OP_PUBLISH, "hup/y", "me too", RESULT_OK);

  added = elbus_test_conn_new_address (t->socket_path, "hup.added");
  assert_refused (t->socket_path, "hup.gone", RESULT_ACCESS);
  elbus_test_conn_op_acked (added, OP_MESSAGE, "hup.stay", "welcome", RESULT_OK);
  elbus_test_conn_expect_message (stay, KIND_MESSAGE, "hup.added", NULL, "welcome");

  /* a broken file: it would bring hup.gone back and drop hup.added, but
   * none of it is applied */
  g_free (line);
  line = conf_test_reload (t, LISTEN_HEADER
                              "[client hup.stay]\n"
                              "[client hup.gone]\n"
                              "networks=10.0.0.0/99\n",
                           "configuration not reloaded");
  {
    g_autofree char *expected = g_strdup_printf ("WARNING elbusd: %s:5: networks: ", t->conf);

    g_assert_nonnull (strstr (line, expected));
  }
  assert_refused (t->socket_path, "hup.gone", RESULT_ACCESS);
  elbus_test_conn_op_acked (added, OP_MESSAGE, "hup.stay", "still welcome", RESULT_OK);
  elbus_test_conn_expect_message (stay, KIND_MESSAGE, "hup.added", NULL, "still welcome");
  elbus_test_conn_op_acked (stay, OP_PUBLISH, "other/x", "still no", RESULT_ACCESS);

  /* a file without [client] groups: no policy, nobody dropped; a client
   * keeps the entry it registered under until it reconnects */
  g_free (line);
  line = conf_test_reload (t, LISTEN_HEADER, "no security policy, 0 clients disconnected");
  anyone = elbus_test_conn_new_address (t->socket_path, "hup.anyone");
  elbus_test_conn_op_acked (anyone, OP_PUBLISH, "other/x", "yes now", RESULT_OK);
  elbus_test_conn_op_acked (stay, OP_PUBLISH, "other/x", "not yet", RESULT_ACCESS);
  elbus_test_conn_op_acked (anyone, OP_MESSAGE, "hup.added", "hi", RESULT_OK);
  elbus_test_conn_expect_message (added, KIND_MESSAGE, "hup.anyone", NULL, "hi");

  conf_test_stop (t);
}

static void
test_sighup_limits (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;
  g_autoptr(ElbusTestConn) c = NULL;
  g_autoptr(ElbusTestConn) d = NULL;

  g_test_summary ("SIGHUP applies new limits; a changed listen= is logged "
                  "as needing a restart and the listeners stay");

  conf_test_write (t, LISTEN_HEADER "max-clients=3\n");
  conf_test_spawn (t, NULL, t->socket_path);

  a = elbus_test_conn_new_address (t->socket_path, "lim.a");
  b = elbus_test_conn_new_address (t->socket_path, "lim.b");
  assert_closed_at_accept (t->socket_path);

  /* more clients, a smaller frame limit, another listener */
  g_free (conf_test_reload (t, "[elbusd]\n"
                       "listen=elbusd.sock;other.sock\n"
                       "max-clients=5\n"
                       "max-frame-size=1024\n",
                    "reloaded the configuration from"));
  g_assert_cmpuint (conf_test_count_log (t, "listen changed: restart elbusd to apply it"), ==, 1);
  {
    g_autofree char *other = g_build_filename (t->dir, "other.sock", NULL);

    g_assert_false (g_file_test (other, G_FILE_TEST_EXISTS));
  }

  c = elbus_test_conn_new_address (t->socket_path, "lim.c");
  d = elbus_test_conn_new_address (t->socket_path, "lim.d");
  elbus_test_conn_send (d, frame_2048, sizeof frame_2048);
  elbus_test_conn_expect_eof (d);

  /* limits the file no longer sets go back to the defaults */
  g_free (conf_test_reload (t, LISTEN_HEADER, "reloaded the configuration from"));
  g_clear_pointer (&d, elbus_test_conn_free);
  d = elbus_test_conn_new_address (t->socket_path, "lim.d");
  {
    g_autoptr(ElbusTestConn) e = elbus_test_conn_new_address (t->socket_path, "lim.e");
    g_autoptr(ElbusTestConn) f = elbus_test_conn_new_address (t->socket_path, "lim.f");
  }

  conf_test_stop (t);
}

/* ---- the shipped example ----------------------------------------------------------- */

static void
test_example (void)
{
  g_autoptr(ConfTest) t = conf_test_new ();
  g_autofree char *example = g_test_build_filename (G_TEST_DIST, "..", "data", "elbusd.conf", NULL);
  g_autofree char *contents = NULL;
  const char *args[] = { "-B", t->socket_path, NULL };
  g_autoptr(GError) error = NULL;

  g_test_summary ("data/elbusd.conf is a valid configuration file");

  g_file_get_contents (example, &contents, NULL, &error);
  g_assert_no_error (error);
  conf_test_write (t, contents);
  conf_test_spawn (t, args, t->socket_path);
  g_free (conf_test_wait_log (t, "security policy with 3 client entries"));
  assert_refused (t->socket_path, "example.stranger", RESULT_ACCESS);

  conf_test_stop (t);
}

/* ---- --help ---------------------------------------------------------------------- */

static void
assert_help_line (const char *help,
                  const char *option,
                  const char *default_value)
{
  g_auto(GStrv) lines = g_strsplit (help, "\n", -1);
  g_autofree char *expected = g_strdup_printf ("(default: %s)", default_value);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      if (strstr (lines[i], option) != NULL)
        {
          g_assert_nonnull (strstr (lines[i], expected));
          return;
        }
    }
  g_error ("--help does not describe %s", option);
}

static void
test_help (void)
{
  g_autofree char *help = NULL;
  g_autofree char *v = NULL;
  g_autoptr(GError) error = NULL;
  const char *argv[] = { elbus_test_elbusd_path (), "--help", NULL };
  int status = -1;

  g_test_summary ("--help describes --config and the limit options with "
                  "the library's defaults");

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                &help, NULL, &status, &error);
  g_assert_no_error (error);
  assert_exit_status (status, 0);

  g_assert_nonnull (strstr (help, "--config=FILE"));
  g_assert_nonnull (strstr (help, "elbus/elbusd.conf"));
  v = g_strdup_printf ("%u", ELBUS_BROKER_DEFAULT_MAX_CLIENTS);
  assert_help_line (help, "--max-clients=", v);
  g_free (v);
  v = g_strdup_printf ("%u", ELBUS_BROKER_DEFAULT_MAX_SUBSCRIPTIONS);
  assert_help_line (help, "--max-subscriptions=", v);
  g_free (v);
  v = g_strdup_printf ("%u", ELBUS_BROKER_DEFAULT_MAX_FRAME_SIZE);
  assert_help_line (help, "--max-frame-size=", v);
  g_free (v);
  assert_help_line (help, "--handshake-timeout=", "the --timeout value");
  v = g_strdup_printf ("%g", ELBUS_BROKER_DEFAULT_TIMEOUT);
  assert_help_line (help, "--timeout=", v);
  g_free (v);
  v = g_strdup_printf ("%u", ELBUS_BROKER_DEFAULT_QUEUE_SIZE);
  assert_help_line (help, "--queue-size=", v);
}

int
main (int   argc,
      char *argv[])
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/elbusd/config/limits", test_limits);
  g_test_add_func ("/elbus/elbusd/config/handshake-timeout", test_handshake_timeout);
  g_test_add_func ("/elbus/elbusd/config/force-register", test_force_register);
  g_test_add_func ("/elbus/elbusd/config/handshake-follows-timeout",
                   test_handshake_follows_timeout);
  g_test_add_func ("/elbus/elbusd/config/command-line-wins", test_command_line_wins);
  g_test_add_func ("/elbus/elbusd/config/listeners", test_listeners);
  g_test_add_func ("/elbus/elbusd/config/bad-file", test_bad_file);
  g_test_add_func ("/elbus/elbusd/config/wss", test_wss);
  g_test_add_func ("/elbus/elbusd/config/wss-sighup", test_wss_sighup);
  g_test_add_func ("/elbus/elbusd/config/wss-daemonize", test_wss_daemonize);
  g_test_add_func ("/elbus/elbusd/config/wss-bad-certificate", test_wss_bad_certificate);
  g_test_add_func ("/elbus/elbusd/config/wss-command-line", test_wss_command_line);
  g_test_add_func ("/elbus/elbusd/config/wss-command-line-wins", test_wss_command_line_wins);
  g_test_add_func ("/elbus/elbusd/config/wss-command-line-bad", test_wss_command_line_bad);
  g_test_add_func ("/elbus/elbusd/config/policy", test_policy);
  g_test_add_func ("/elbus/elbusd/config/policy-sources", test_policy_sources);
  g_test_add_func ("/elbus/elbusd/config/no-policy", test_no_policy);
  g_test_add_func ("/elbus/elbusd/config/sighup", test_sighup);
  g_test_add_func ("/elbus/elbusd/config/sighup-limits", test_sighup_limits);
  g_test_add_func ("/elbus/elbusd/config/example", test_example);
  g_test_add_func ("/elbus/elbusd/config/help", test_help);

  return g_test_run ();
}

/* SPDX-License-Identifier: MIT */
/*
 * elbusd: the elbus broker server.
 *
 * Parses the original server's options, opens the listeners (-B and, with
 * libsystemd, sockets passed by socket activation), optionally daemonizes,
 * writes the pid file and runs the broker on the main loop until SIGINT or
 * SIGTERM. Messages printed for the person at the terminal are translated;
 * log lines are not, so that they can be searched for.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include <elbus/elbus.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "elbus-tool-util.h"

/* Exit statuses: 0 after a clean shutdown, 1 when the broker cannot start
 * (a listener, the pid file, daemonizing), 2 for a bad command line. */
#define EXIT_USAGE 2

typedef struct {
  char **binds;           /* (owned) (nullable): -B addresses, in order */
  char *pid_file;         /* (owned) (nullable): -P */
  gboolean daemonize;     /* -D */
  double timeout;         /* -t, seconds */
  gint64 buf_size;        /* --buf-size, bytes */
  gint64 buf_ttl;         /* --buf-ttl, microseconds */
  gint64 queue_size;      /* --queue-size, frames */
  gint64 max_frame_size;  /* --max-frame-size, bytes */
  int workers;            /* -w, ignored; 0 when not given */
  gboolean verbose;       /* -v */
  gboolean log_syslog;    /* --log-syslog */
  gboolean version;       /* --version */
} Options;

static Options opts = {
  .timeout = ELBUS_BROKER_DEFAULT_TIMEOUT,
  .buf_size = ELBUS_BROKER_DEFAULT_BUF_SIZE,
  .buf_ttl = ELBUS_BROKER_DEFAULT_BUF_TTL,
  .queue_size = ELBUS_BROKER_DEFAULT_QUEUE_SIZE,
  .max_frame_size = ELBUS_BROKER_DEFAULT_MAX_FRAME_SIZE,
};

static const GOptionEntry option_entries[] = {
  { "bind", 'B', 0, G_OPTION_ARG_FILENAME_ARRAY, &opts.binds,
    N_("Listen on ADDRESS: a UNIX socket path, HOST:PORT or fifo:PATH (repeatable)"),
    N_("ADDRESS") },
  { "pid-file", 'P', 0, G_OPTION_ARG_FILENAME, &opts.pid_file,
    N_("Write the process id to FILE once all listeners are up"),
    N_("FILE") },
  { "daemonize", 'D', 0, G_OPTION_ARG_NONE, &opts.daemonize,
    N_("Run in the background once all listeners are up"), NULL },
  { "timeout", 't', 0, G_OPTION_ARG_DOUBLE, &opts.timeout,
    N_("Handshake, keep-alive and write timeout (default: 5)"),
    N_("SECONDS") },
  { "buf-size", 0, 0, G_OPTION_ARG_INT64, &opts.buf_size,
    N_("Size of each client's write buffer (default: 8192)"),
    N_("BYTES") },
  { "buf-ttl", 0, 0, G_OPTION_ARG_INT64, &opts.buf_ttl,
    N_("Longest time a buffered frame waits to be written (default: 10)"),
    N_("MICROSECONDS") },
  { "queue-size", 0, 0, G_OPTION_ARG_INT64, &opts.queue_size,
    N_("Frames a client's outgoing queue holds before the client is dropped (default: 8192)"),
    N_("FRAMES") },
  { "max-frame-size", 0, 0, G_OPTION_ARG_INT64, &opts.max_frame_size,
    N_("Largest frame body accepted (default: 67108864, 64 MiB)"),
    N_("BYTES") },
  { "workers", 'w', 0, G_OPTION_ARG_INT, &opts.workers,
    N_("Accepted for compatibility with the original elbusd and ignored"),
    N_("N") },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opts.verbose,
    N_("Log debug messages too"), NULL },
  { "log-syslog", 0, 0, G_OPTION_ARG_NONE, &opts.log_syslog,
    N_("Log to syslog instead of standard error"), NULL },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opts.version,
    N_("Print the version and exit"), NULL },
  G_OPTION_ENTRY_NULL
};

typedef struct {
  GMainLoop *loop;        /* (owned) */
  int quit_signal;        /* the signal that stopped us, 0 while running */
} QuitState;

static void
options_clear (void)
{
  g_clear_pointer (&opts.binds, g_strfreev);
  g_clear_pointer (&opts.pid_file, g_free);
}

/* Checks the numeric options against the ranges of the broker properties
 * they set, so that the limits live in one place. */
static gboolean
check_ranges (void)
{
  static const struct {
    const char *option;
    const char *property;
    const gint64 *value;
  } uint_options[] = {
    { "--buf-size", "buf-size", &opts.buf_size },
    { "--buf-ttl", "buf-ttl", &opts.buf_ttl },
    { "--queue-size", "queue-size", &opts.queue_size },
    { "--max-frame-size", "max-frame-size", &opts.max_frame_size },
  };
  g_autoptr(GTypeClass) broker_class = g_type_class_ref (ELBUS_TYPE_BROKER);
  GParamSpecDouble *timeout_spec;

  timeout_spec = G_PARAM_SPEC_DOUBLE (
    g_object_class_find_property (G_OBJECT_CLASS (broker_class), "timeout"));
  if (!isfinite (opts.timeout) ||
      opts.timeout < timeout_spec->minimum ||
      opts.timeout > timeout_spec->maximum)
    {
      g_printerr (_("elbusd: %s must be between %g and %g seconds\n"),
                  "--timeout", timeout_spec->minimum, timeout_spec->maximum);
      return FALSE;
    }

  for (gsize i = 0; i < G_N_ELEMENTS (uint_options); i++)
    {
      GParamSpecUInt *spec = G_PARAM_SPEC_UINT (
        g_object_class_find_property (G_OBJECT_CLASS (broker_class),
                                      uint_options[i].property));
      gint64 value = *uint_options[i].value;

      if (value < spec->minimum || value > spec->maximum)
        {
          g_printerr (_("elbusd: %s must be between %u and %u\n"),
                      uint_options[i].option, spec->minimum, spec->maximum);
          return FALSE;
        }
    }

  return TRUE;
}

/* Returns EXIT_SUCCESS to go on, or the status to exit with. */
static int
parse_options (int    *argc,
               char ***argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;

  context = g_option_context_new (_("- run an elbus message bus broker"));
  g_option_context_add_main_entries (context, option_entries, GETTEXT_PACKAGE);
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Runs an elbus broker: clients connect to it and exchange one-to-one\n"
      "messages, broadcasts and publications.\n"
      "\n"
      "Each -B adds a listener. An ADDRESS that starts with “/” or ends in\n"
      "“.sock”, “.socket” or “.ipc” is a UNIX socket path: the socket file is\n"
      "created, and removed again on shutdown. Anything else is HOST:PORT\n"
      "for TCP. At least one -B is needed, unless the service manager passes\n"
      "listening sockets (systemd socket activation)."));
  g_option_context_set_description (context,
    _("Examples:\n"
      "  elbusd -B /tmp/elbus.sock\n"
      "  elbusd -B /tmp/elbus.sock -B 127.0.0.1:7777 -v\n"
      "  elbusd -B /run/elbus.sock -P /run/elbusd.pid -D --log-syslog\n"
      "\n"
      "SIGTERM or SIGINT (Ctrl+C) stops the broker: it disconnects its clients,\n"
      "removes the socket and pid files it created and exits with status 0.\n"
      "Exit status 1 means it could not start, 2 a bad command line.\n"));

  if (!g_option_context_parse (context, argc, argv, &error))
    {
      g_printerr ("elbusd: %s\n", error->message);
      g_printerr (_("Try “%s --help” for more information.\n"), "elbusd");
      return EXIT_USAGE;
    }

  if (opts.version)
    return EXIT_SUCCESS;

  if (*argc > 1)
    {
      g_printerr (_("elbusd: unexpected argument “%s”\n"), (*argv)[1]);
      g_printerr (_("Try “%s --help” for more information.\n"), "elbusd");
      return EXIT_USAGE;
    }

  if (!check_ranges ())
    return EXIT_USAGE;

  return EXIT_SUCCESS;
}

/* Socket activation: how many listening sockets the service manager
 * passed us (from SD_LISTEN_FDS_START on), or -1 after printing why not. */
static int
count_activated_sockets (void)
{
#ifdef HAVE_LIBSYSTEMD
  int n_fds = sd_listen_fds (TRUE);

  if (n_fds < 0)
    {
      g_printerr (_("elbusd: cannot use the sockets passed by systemd: %s\n"),
                  g_strerror (-n_fds));
      return -1;
    }

  return n_fds;
#else
  return 0;
#endif
}

static gboolean
listen_on_address (ElbusBroker *broker,
                   const char  *address,
                   GPtrArray   *listeners)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *bind_string = NULL;

  /* Daemonizing changes the working directory to /: a relative socket path
   * is made absolute first, so that shutdown removes the right file. */
  if (opts.daemonize && g_str_has_prefix (address, "fifo:") &&
      !g_path_is_absolute (address + strlen ("fifo:")))
    {
      g_autofree char *path = g_canonicalize_filename (address + strlen ("fifo:"), NULL);

      bind_string = g_strconcat ("fifo:", path, NULL);
    }
  else if (opts.daemonize && elbus_tool_address_is_unix (address) &&
           !g_path_is_absolute (address))
    bind_string = g_canonicalize_filename (address, NULL);
  else
    bind_string = g_strdup (address);

  /* The library logs "listening on ADDRESS" at info level. */
  if (!elbus_broker_listen (broker, bind_string, &error))
    {
      g_printerr (_("elbusd: cannot listen on %s: %s\n"), address,
                  error->message);
      return FALSE;
    }

  g_ptr_array_add (listeners, g_steal_pointer (&bind_string));

  return TRUE;
}

#ifdef HAVE_LIBSYSTEMD
static gboolean
adopt_activated_socket (ElbusBroker *broker,
                        int          fd,
                        GPtrArray   *listeners)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) local_address = NULL;
  g_autofree char *bind_string = NULL;

  if (sd_is_socket (fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
    {
      g_printerr (_("elbusd: file descriptor %d passed by systemd is not a listening stream socket\n"),
                  fd);
      return FALSE;
    }

  fcntl (fd, F_SETFD, FD_CLOEXEC);

  socket = g_socket_new_from_fd (fd, &error);
  if (socket != NULL)
    local_address = g_socket_get_local_address (socket, &error);
  if (local_address == NULL)
    {
      g_printerr (_("elbusd: cannot use file descriptor %d passed by systemd: %s\n"),
                  fd, error->message);
      return FALSE;
    }

  bind_string = elbus_tool_socket_address_to_string (local_address);
  if (!elbus_broker_add_socket (broker, socket, bind_string, &error))
    {
      g_printerr (_("elbusd: cannot listen on %s: %s\n"), bind_string,
                  error->message);
      return FALSE;
    }

  g_debug ("adopted socket activation fd %d as %s", fd, bind_string);
  g_ptr_array_add (listeners, g_steal_pointer (&bind_string));

  return TRUE;
}
#endif

static gboolean
open_listeners (ElbusBroker *broker,
                int          n_activated,
                GPtrArray   *listeners)
{
  for (gsize i = 0; opts.binds != NULL && opts.binds[i] != NULL; i++)
    {
      if (!listen_on_address (broker, opts.binds[i], listeners))
        return FALSE;
    }

#ifdef HAVE_LIBSYSTEMD
  for (int i = 0; i < n_activated; i++)
    {
      if (!adopt_activated_socket (broker, SD_LISTEN_FDS_START + i, listeners))
        return FALSE;
    }
#endif

  return TRUE;
}

/* Forks into the background, in a new session, with / as the working
 * directory. The first parent waits until the daemon reports through
 * @ready_fd (see daemonize_finish()) so that it exits 0 only when the
 * daemon is really up, with its pid file written. Must run before anything
 * starts a thread (g_unix_signal_add() does). */
static gboolean
daemonize_start (int *ready_fd)
{
  int ready_pipe[2];
  g_autoptr(GError) error = NULL;
  pid_t pid;

  if (!g_unix_open_pipe (ready_pipe, FD_CLOEXEC, &error))
    {
      g_printerr (_("elbusd: cannot daemonize: %s\n"), error->message);
      return FALSE;
    }

  fflush (NULL);
  pid = fork ();
  if (pid < 0)
    {
      g_printerr (_("elbusd: cannot daemonize: %s\n"), g_strerror (errno));
      return FALSE;
    }

  if (pid > 0)
    {
      char byte;
      ssize_t n;

      close (ready_pipe[1]);
      do
        n = read (ready_pipe[0], &byte, 1);
      while (n < 0 && errno == EINTR);
      _exit (n == 1 ? EXIT_SUCCESS : EXIT_FAILURE);
    }

  close (ready_pipe[0]);
  setsid ();

  /* Leave the session leader behind so that we never get a terminal. */
  pid = fork ();
  if (pid < 0)
    {
      g_printerr (_("elbusd: cannot daemonize: %s\n"), g_strerror (errno));
      _exit (EXIT_FAILURE);
    }
  if (pid > 0)
    _exit (EXIT_SUCCESS);

  if (chdir ("/") != 0)
    g_debug ("cannot change to /: %s", g_strerror (errno));

  *ready_fd = ready_pipe[1];

  return TRUE;
}

/* Detaches standard input and output from the terminal and tells the
 * waiting parent that we are up. */
static void
daemonize_finish (int ready_fd)
{
  int null_fd = open ("/dev/null", O_RDWR | O_CLOEXEC);

  if (null_fd >= 0)
    {
      dup2 (null_fd, STDIN_FILENO);
      dup2 (null_fd, STDOUT_FILENO);
      dup2 (null_fd, STDERR_FILENO);
      if (null_fd > STDERR_FILENO)
        close (null_fd);
    }

  if (write (ready_fd, "", 1) != 1)
    g_debug ("cannot report readiness to the parent: %s", g_strerror (errno));
  close (ready_fd);
}

static gboolean
write_pid_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = g_strdup_printf ("%ld\n", (long) getpid ());

  if (!g_file_set_contents_full (path, contents, -1,
                                 G_FILE_SET_CONTENTS_NONE, 0644,
                                 &error))
    {
      g_printerr (_("elbusd: cannot write the pid file: %s\n"), error->message);
      return FALSE;
    }

  g_debug ("wrote pid file %s", path);

  return TRUE;
}

static void
print_hint (GPtrArray *listeners)
{
  const char *address = NULL;

  /* a socket to talk to, not the FIFO */
  for (guint i = 0; i < listeners->len && address == NULL; i++)
    if (!g_str_has_prefix (g_ptr_array_index (listeners, i), "fifo:"))
      address = g_ptr_array_index (listeners, i);

  if (address == NULL || !isatty (STDOUT_FILENO))
    return;

  g_print (_("elbusd is ready on %s. Talk to it with the elbus tool, e.g.:\n"
             "  elbus %s listen -t '#'\n"
             "Press Ctrl+C to stop it.\n"),
           address, address);
}

static void
request_quit (QuitState *state,
              int        signum)
{
  if (state->quit_signal == 0)
    state->quit_signal = signum;
  g_main_loop_quit (state->loop);
}

static gboolean
sigint_cb (gpointer user_data)
{
  request_quit (user_data, SIGINT);
  return G_SOURCE_CONTINUE;
}

static gboolean
sigterm_cb (gpointer user_data)
{
  request_quit (user_data, SIGTERM);
  return G_SOURCE_CONTINUE;
}

static void
notify_service_manager (const char *state)
{
#ifdef HAVE_LIBSYSTEMD
  int r = sd_notify (0, state);

  if (r < 0)
    g_debug ("sd_notify failed: %s", g_strerror (-r));
#endif
}

static void
configure_broker (ElbusBroker *broker)
{
  elbus_broker_set_timeout (broker, opts.timeout);
  elbus_broker_set_buf_size (broker, (guint) opts.buf_size);
  elbus_broker_set_buf_ttl (broker, (guint) opts.buf_ttl);
  elbus_broker_set_queue_size (broker, (guint) opts.queue_size);
  elbus_broker_set_max_frame_size (broker, (guint) opts.max_frame_size);

  g_debug ("timeout %g s, buf-size %u bytes, buf-ttl %u µs, "
           "queue-size %u frames, max-frame-size %u bytes",
           elbus_broker_get_timeout (broker),
           elbus_broker_get_buf_size (broker),
           elbus_broker_get_buf_ttl (broker),
           elbus_broker_get_queue_size (broker),
           elbus_broker_get_max_frame_size (broker));
}

static int
run (void)
{
  g_autoptr(ElbusBroker) broker = NULL;
  g_autoptr(GPtrArray) listeners = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *pid_file = NULL;
  QuitState quit_state = { NULL, 0 };
  int n_activated;
  int ready_fd = -1;
  guint sigint_id;
  guint sigterm_id;

  n_activated = count_activated_sockets ();
  if (n_activated < 0)
    return EXIT_FAILURE;

  if ((opts.binds == NULL || opts.binds[0] == NULL) && n_activated == 0)
    {
      g_printerr (_("elbusd: no listener: give at least one -B\n"));
      g_printerr (_("Try “%s --help” for more information.\n"), "elbusd");
      return EXIT_USAGE;
    }

  if (opts.workers != 0)
    g_debug ("--workers %d ignored: one thread serves all clients",
             opts.workers);

  /* Resolved now: daemonizing changes the working directory. */
  if (opts.pid_file != NULL)
    pid_file = g_canonicalize_filename (opts.pid_file, NULL);

  broker = elbus_broker_new ();
  configure_broker (broker);

  /* .broker: the core RPC methods and the client announcements */
  {
    g_autoptr(GError) core_error = NULL;

    if (!elbus_broker_enable_core_rpc (broker, &core_error))
      {
        g_printerr (_("elbusd: cannot start the .broker client: %s\n"), core_error->message);
        return EXIT_FAILURE;
      }
  }

  /* Bind first, so that errors still reach the terminal; then daemonize;
   * then write the pid file, so that it holds the daemon's pid. */
  if (!open_listeners (broker, n_activated, listeners))
    {
      elbus_broker_close (broker);
      return EXIT_FAILURE;
    }

  if (opts.daemonize && !daemonize_start (&ready_fd))
    {
      elbus_broker_close (broker);
      return EXIT_FAILURE;
    }

  if (pid_file != NULL && !write_pid_file (pid_file))
    {
      elbus_broker_close (broker);
      return EXIT_FAILURE;
    }

  if (opts.daemonize)
    daemonize_finish (ready_fd);

  quit_state.loop = g_main_loop_new (NULL, FALSE);
  sigint_id = g_unix_signal_add (SIGINT, sigint_cb, &quit_state);
  sigterm_id = g_unix_signal_add (SIGTERM, sigterm_cb, &quit_state);

  notify_service_manager ("READY=1");
  print_hint (listeners);

  g_main_loop_run (quit_state.loop);

  g_info ("shutting down (%s)",
          quit_state.quit_signal == SIGINT ? "SIGINT" : "SIGTERM");
  notify_service_manager ("STOPPING=1");

  g_source_remove (sigint_id);
  g_source_remove (sigterm_id);
  g_clear_pointer (&quit_state.loop, g_main_loop_unref);

  elbus_broker_close (broker);
  if (pid_file != NULL && g_unlink (pid_file) != 0 && errno != ENOENT)
    g_warning ("cannot remove the pid file %s: %s", pid_file,
               g_strerror (errno));

  return EXIT_SUCCESS;
}

int
main (int    argc,
      char **argv)
{
  int status;

  elbus_tool_init_i18n ();
  g_set_prgname ("elbusd");

  status = parse_options (&argc, &argv);
  if (status != EXIT_SUCCESS)
    {
      options_clear ();
      return status;
    }

  if (opts.version)
    {
      g_print ("elbusd %s (protocol %d)\n", ELBUS_VERSION_S,
               ELBUS_PROTOCOL_VERSION);
      options_clear ();
      return EXIT_SUCCESS;
    }

  elbus_tool_log_init (G_LOG_DOMAIN,
                       opts.log_syslog ? ELBUS_TOOL_LOG_SYSLOG
                                       : ELBUS_TOOL_LOG_AUTO,
                       opts.verbose);

  /* A peer that goes away mid-write must cost an EPIPE, not the process. */
  signal (SIGPIPE, SIG_IGN);

  status = run ();
  options_clear ();

  return status;
}

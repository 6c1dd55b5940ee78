/* SPDX-License-Identifier: MIT */
/*
 * elbusd: the elbus broker server.
 *
 * Parses the original server's options and the configuration file
 * (elbusd-config.c), opens the listeners (-B or listen=, and, with
 * libsystemd, sockets passed by socket activation), optionally daemonizes,
 * writes the pid file and runs the broker on the main loop until SIGINT or
 * SIGTERM; SIGHUP reloads the configuration file. Messages printed for the
 * person at the terminal are translated; log lines are not, so that they
 * can be searched for.
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
#include "elbusd-config.h"

/* Exit statuses: 0 after a clean shutdown, 1 when the broker cannot start
 * (a bad configuration file, a listener, the pid file, daemonizing),
 * EXIT_USAGE (2) for a bad command line. */

/* Read when --config is not given, if it exists (tools/meson.build). */
#ifndef ELBUSD_DEFAULT_CONFIG_FILE
#define ELBUSD_DEFAULT_CONFIG_FILE "/etc/elbus/elbusd.conf"
#endif

typedef struct {
  char **binds;           /* (owned) (nullable): -B addresses, in order */
  char *pid_file;         /* (owned) (nullable): -P */
  char *config_file;      /* (owned) (nullable): --config */
  gboolean daemonize;     /* -D */
  ElbusdLimits limits;    /* -t, --buf-size, --max-clients, …: those given */
  int workers;            /* -w, ignored; 0 when not given */
  gboolean verbose;       /* -v */
  gboolean log_syslog;    /* --log-syslog */
  gboolean force_register; /* --force-register */
  char *tls_certificate_file; /* (owned) (nullable): --tls-certificate, made absolute */
  char *tls_key_file;     /* (owned) (nullable): --tls-key, made absolute */
  gboolean version;       /* --version */
} Options;

static Options opts;

static gboolean limit_option_cb (const char  *option_name,
                                 const char  *value,
                                 gpointer     data,
                                 GError     **error);

/* The descriptions of the limit options name their defaults, which come
 * from the broker's properties: they are filled in by
 * describe_limit_options(). */
static GOptionEntry option_entries[] = {
  { "bind", 'B', 0, G_OPTION_ARG_FILENAME_ARRAY, &opts.binds,
    N_("Listen on ADDRESS: a UNIX socket path, HOST:PORT, ws://HOST:PORT/PATH, wss://HOST:PORT/PATH or fifo:PATH (repeatable)"),
    N_("ADDRESS") },
  { "pid-file", 'P', 0, G_OPTION_ARG_FILENAME, &opts.pid_file,
    N_("Write the process id to FILE once all listeners are up"),
    N_("FILE") },
  { "daemonize", 'D', 0, G_OPTION_ARG_NONE, &opts.daemonize,
    N_("Run in the background once all listeners are up"), NULL },
  { "config", 0, 0, G_OPTION_ARG_FILENAME, &opts.config_file,
    NULL, N_("FILE") },
  { "timeout", 't', 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("SECONDS") },
  { "buf-size", 0, 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("BYTES") },
  { "buf-ttl", 0, 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("MICROSECONDS") },
  { "queue-size", 0, 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("FRAMES") },
  { "max-queue-bytes", 0, 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("BYTES") },
  { "max-frame-size", 0, 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("BYTES") },
  { "max-clients", 0, 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("N") },
  { "max-subscriptions", 0, 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("N") },
  { "handshake-timeout", 0, 0, G_OPTION_ARG_CALLBACK, limit_option_cb,
    NULL, N_("SECONDS") },
  { "force-register", 0, 0, G_OPTION_ARG_NONE, &opts.force_register,
    N_("Let a client registering a name that is taken replace the client holding it"), NULL },
  { "tls-certificate", 0, 0, G_OPTION_ARG_FILENAME, &opts.tls_certificate_file,
    N_("Present the certificate in FILE (PEM) on wss:// listeners; FILE holds its key too unless --tls-key is given"),
    N_("FILE") },
  { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &opts.tls_key_file,
    N_("Read the certificate's private key from FILE (PEM, unencrypted)"),
    N_("FILE") },
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

/* The running daemon. */
typedef struct {
  GMainLoop *loop;        /* (owned) */
  int quit_signal;        /* the signal that stopped us, 0 while running */
  ElbusBroker *broker;    /* (unowned) */
  char *config_path;      /* (owned): the file SIGHUP reloads: --config or the default */
  gboolean config_given;  /* --config was given: the file must exist */
  ElbusdConfig *config;   /* (owned) (nullable): the file in force; NULL for none */
  GTlsCertificate *tls_certificate; /* (owned) (nullable): from --tls-certificate and
                                     * --tls-key, which win over the file's */
} Daemon;

/* (owned): the descriptions of the options that name a default, which
 * comes from the broker's properties (or the build, for --config) */
static GPtrArray *option_descriptions;

static char *
describe_option (const char *long_name,
                 const char *default_value)
{
  if (g_str_equal (long_name, "config"))
    return g_strdup_printf (_("Read the configuration from FILE (default: %s, if it exists)"), default_value);
  if (g_str_equal (long_name, "timeout"))
    return g_strdup_printf (_("Keep-alive ping interval; also the time allowed for the rest of a frame and for a blocked write (default: %s)"), default_value);
  if (g_str_equal (long_name, "buf-size"))
    return g_strdup_printf (_("Size of each client's write buffer (default: %s)"), default_value);
  if (g_str_equal (long_name, "buf-ttl"))
    return g_strdup_printf (_("Longest time a buffered frame waits to be written (default: %s)"), default_value);
  if (g_str_equal (long_name, "queue-size"))
    return g_strdup_printf (_("Frames a client's outgoing queue holds before the client is dropped (default: %s)"), default_value);
  if (g_str_equal (long_name, "max-queue-bytes"))
    return g_strdup_printf (_("Bytes a client's outgoing queue holds before the client is dropped; 0 for no limit (default: %s)"), default_value);
  if (g_str_equal (long_name, "max-frame-size"))
    return g_strdup_printf (_("Largest frame body accepted (default: %s)"), default_value);
  if (g_str_equal (long_name, "max-clients"))
    return g_strdup_printf (_("Most connections served at once, the broker's own .broker client included; 0 for no limit (default: %s)"), default_value);
  if (g_str_equal (long_name, "max-subscriptions"))
    return g_strdup_printf (_("Most subscription masks one client may hold; 0 for no limit (default: %s)"), default_value);
  if (g_str_equal (long_name, "handshake-timeout"))
    return g_strdup (_("Time a new connection has to complete its handshake (default: the --timeout value)"));
  g_assert_not_reached ();
}

static void
describe_limit_options (void)
{
  option_descriptions = g_ptr_array_new_with_free_func (g_free);

  for (gsize i = 0; option_entries[i].long_name != NULL; i++)
    {
      const char *long_name = option_entries[i].long_name;
      g_autofree char *default_value = NULL;
      ElbusdLimit limit;
      char *description;

      if (elbusd_limit_lookup (long_name, &limit))
        {
          double d = elbusd_limit_get_default (limit);

          /* %g would write 64 MiB as 6.71089e+07 */
          default_value = d == floor (d) ? g_strdup_printf ("%.0f", d)
                                         : g_strdup_printf ("%g", d);
        }
      else if (g_str_equal (long_name, "config"))
        default_value = g_strdup (ELBUSD_DEFAULT_CONFIG_FILE);
      else
        continue;

      description = describe_option (long_name, default_value);
      g_ptr_array_add (option_descriptions, description);
      option_entries[i].description = description;
    }
}

static void
options_clear (void)
{
  g_clear_pointer (&opts.binds, g_strfreev);
  g_clear_pointer (&opts.pid_file, g_free);
  g_clear_pointer (&opts.config_file, g_free);
  g_clear_pointer (&opts.tls_certificate_file, g_free);
  g_clear_pointer (&opts.tls_key_file, g_free);
  g_clear_pointer (&option_descriptions, g_ptr_array_unref);
}

/* -t, --timeout, --max-clients, …: checked against the range of the broker
 * property they set, the same way as in the configuration file. */
static gboolean
limit_option_cb (const char  *option_name,
                 const char  *value,
                 gpointer     data,
                 GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  const char *name = option_name;
  ElbusdLimit limit;

  while (*name == '-')
    name++;
  if (g_str_equal (name, "t"))
    name = "timeout";
  if (!elbusd_limit_lookup (name, &limit))
    g_assert_not_reached ();

  if (!elbusd_limit_parse (limit, value, &opts.limits.value[limit], &local_error))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s: %s", option_name, local_error->message);
      return FALSE;
    }
  opts.limits.set[limit] = TRUE;

  return TRUE;
}

/* --tls-certificate and --tls-key as the file's keys: neither empty, no key
 * without a certificate. Made absolute, since -D changes the working
 * directory before SIGHUP reads them again. FALSE after saying why. */
static gboolean
check_tls_options (void)
{
  struct {
    char **file;
    const char *option;
  } options[] = {
    { &opts.tls_certificate_file, "--tls-certificate" },
    { &opts.tls_key_file, "--tls-key" },
  };

  if (opts.tls_key_file != NULL && opts.tls_certificate_file == NULL)
    {
      g_printerr (_("elbusd: --tls-key without --tls-certificate\n"));
      return FALSE;
    }

  for (gsize i = 0; i < G_N_ELEMENTS (options); i++)
    {
      char *file = *options[i].file;

      if (file == NULL)
        continue;
      if (*file == '\0')
        {
          g_autofree char *message = g_strdup_printf (_("%s: empty"), options[i].option);

          g_printerr ("elbusd: %s\n", message);
          return FALSE;
        }
      *options[i].file = g_canonicalize_filename (file, NULL);
      g_free (file);
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

  describe_limit_options ();
  context = g_option_context_new (_("— run an elbus message bus broker"));
  g_option_context_add_main_entries (context, option_entries, GETTEXT_PACKAGE);
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Runs an elbus broker: clients connect to it and exchange one-to-one\n"
      "messages, broadcasts and publications.\n"
      "\n"
      "Each -B adds a listener. An ADDRESS that starts with “/”, “./” or\n"
      "“../” or ends in “.sock”, “.socket” or “.ipc” is a UNIX socket path:\n"
      "the socket file is created, and removed again on shutdown.\n"
      "ws://HOST:PORT/PATH serves elbus over WebSocket, wss://HOST:PORT/PATH\n"
      "over WebSocket and TLS with the certificate and key of\n"
      "--tls-certificate and --tls-key, or else of the configuration file.\n"
      "Anything else is HOST:PORT for TCP. At least one -B is needed, unless\n"
      "the configuration file lists listeners or the service manager passes\n"
      "listening sockets (systemd socket activation).\n"
      "\n"
      "The configuration file holds these options, the TLS certificate and\n"
      "the security policy; options given on the command line win over the\n"
      "file. SIGHUP reloads the file."));
  g_option_context_set_description (context,
    _("Examples:\n"
      "  elbusd -B /tmp/elbus.sock\n"
      "  elbusd -B /tmp/elbus.sock -B 127.0.0.1:7777 -v\n"
      "  elbusd -B /run/elbus.sock -P /run/elbusd.pid -D --log-syslog\n"
      "  elbusd --config /etc/elbus/elbusd.conf\n"
      "  elbusd -B wss://0.0.0.0:7778/elbus --tls-certificate cert.pem --tls-key key.pem\n"
      "\n"
      "SIGTERM or SIGINT (Ctrl+C) stops the broker: it disconnects its clients,\n"
      "removes the socket and pid files it created and exits with status 0.\n"
      "SIGHUP reloads the configuration file and the TLS certificate without\n"
      "dropping connections.\n"
      "Exit status 1 means it could not start (a bad configuration file\n"
      "included), 2 a bad command line.\n"));

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

  if (!check_tls_options ())
    {
      g_printerr (_("Try “%s --help” for more information.\n"), "elbusd");
      return EXIT_USAGE;
    }

  /* a -B that is no address is a bad command line (in the file's listen=,
   * a bad file: exit 1, when the listeners open) */
  for (gsize i = 0; opts.binds != NULL && opts.binds[i] != NULL; i++)
    {
      g_autofree char *checked = NULL;

      if (g_str_has_prefix (opts.binds[i], "fifo:"))
        continue;
      checked = elbus_tool_check_address (opts.binds[i], TRUE, &error);
      if (checked == NULL)
        {
          g_printerr ("elbusd: %s\n", error->message);
          g_printerr (_("Try “%s --help” for more information.\n"), "elbusd");
          return EXIT_USAGE;
        }
    }

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
  g_autofree char *checked = NULL;

  /* a mistake in the address said once, before the library sees it */
  if (!g_str_has_prefix (address, "fifo:"))
    {
      checked = elbus_tool_check_address (address, TRUE, &error);
      if (checked == NULL)
        {
          g_printerr ("elbusd: %s\n", error->message);
          return FALSE;
        }
      address = checked;
    }

  /* Daemonizing changes the working directory to /: a relative socket path
   * is made absolute first, so that shutdown removes the right file. */
  if (opts.daemonize && g_str_has_prefix (address, "fifo:") &&
      !g_path_is_absolute (address + strlen ("fifo:")))
    {
      g_autofree char *path = g_canonicalize_filename (address + strlen ("fifo:"), NULL);

      bind_string = g_strconcat ("fifo:", path, NULL);
    }
  else if (opts.daemonize && elbus_address_is_unix (address) &&
           !g_path_is_absolute (address))
    bind_string = g_canonicalize_filename (address, NULL);
  else
    bind_string = g_strdup (address);

  if (g_str_has_prefix (address, "wss://") && elbus_broker_get_tls_certificate (broker) == NULL)
    {
      g_printerr (_("elbusd: cannot listen on %s: wss:// needs a TLS certificate and its key: "
                    "name their files with --tls-certificate and --tls-key, or in "
                    "tls-certificate and tls-key in the configuration file\n"),
                  address);
      return FALSE;
    }

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

/* -B, or else listen= in the configuration file. */
static char **
get_binds (Daemon *daemon)
{
  if (opts.binds != NULL && opts.binds[0] != NULL)
    return opts.binds;
  if (daemon->config != NULL)
    return daemon->config->listen;
  return NULL;
}

static gboolean
open_listeners (Daemon    *daemon,
                int        n_activated,
                GPtrArray *listeners)
{
  ElbusBroker *broker = daemon->broker;
  char **binds = get_binds (daemon);

  for (gsize i = 0; binds != NULL && binds[i] != NULL; i++)
    {
      if (!listen_on_address (broker, binds[i], listeners))
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
request_quit (Daemon *daemon,
              int     signum)
{
  if (daemon->quit_signal == 0)
    daemon->quit_signal = signum;
  g_main_loop_quit (daemon->loop);
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

/* The limits: the command line wins over the file, the file over the
 * broker's defaults; so does the TLS certificate. */
static void
configure_broker (Daemon *daemon)
{
  ElbusBroker *broker = daemon->broker;

  elbusd_limits_apply (&opts.limits,
                       daemon->config != NULL ? &daemon->config->limits : NULL,
                       broker);
  elbus_broker_set_force_register (broker, opts.force_register ||
                                   (daemon->config != NULL && daemon->config->force_register));
  /* none in the file leaves open wss:// listeners with the one they have */
  if (daemon->tls_certificate != NULL)
    elbus_broker_set_tls_certificate (broker, daemon->tls_certificate);
  else if (daemon->config != NULL && daemon->config->tls_certificate != NULL)
    elbus_broker_set_tls_certificate (broker, daemon->config->tls_certificate);

  g_debug ("timeout %g s, buf-size %u bytes, buf-ttl %u µs, "
           "queue-size %u frames, max-queue-bytes %u, max-frame-size %u bytes, "
           "max-clients %u, max-subscriptions %u, handshake-timeout %g s",
           elbus_broker_get_timeout (broker),
           elbus_broker_get_buf_size (broker),
           elbus_broker_get_buf_ttl (broker),
           elbus_broker_get_queue_size (broker),
           elbus_broker_get_max_queue_bytes (broker),
           elbus_broker_get_max_frame_size (broker),
           elbus_broker_get_max_clients (broker),
           elbus_broker_get_max_subscriptions (broker),
           elbus_broker_get_handshake_timeout (broker));
}

static void
log_policy (const ElbusdConfig *config)
{
  guint n_entries = elbusd_config_count_clients (config);

  if (n_entries == 0)
    g_info ("configuration %s: no [client] entries, no security policy",
            config->path);
  else
    g_info ("configuration %s: security policy with %u client %s",
            config->path, n_entries, n_entries == 1 ? "entry" : "entries");
}

/* --tls-certificate wins over the file's tls-certificate and tls-key, which
 * are then not read at all: the file's certificate could be one that
 * cannot be used, which is why it is replaced. */
static ElbusdConfigFlags
config_flags (void)
{
  return opts.tls_certificate_file != NULL ? ELBUSD_CONFIG_TLS_ELSEWHERE : ELBUSD_CONFIG_NONE;
}

/* --tls-certificate and --tls-key, read at start and on SIGHUP as the
 * file's keys are; the key is tried apart, by check_command_line_key().
 * NULL without the options, or with @error set. */
static GTlsCertificate *
load_command_line_certificate (GError **error)
{
  if (opts.tls_certificate_file == NULL)
    return NULL;
  return elbusd_tls_certificate_load (opts.tls_certificate_file, opts.tls_key_file,
                                      "--tls-certificate", "--tls-key", NULL, error);
}

static gboolean
check_command_line_key (GTlsCertificate  *certificate,
                        GError          **error)
{
  return certificate == NULL ||
         elbusd_tls_certificate_check_key (certificate, opts.tls_certificate_file,
                                           opts.tls_key_file, "--tls-certificate", error);
}

/* Loads the configuration file at startup: --config, or the default file
 * if there is one. Returns FALSE after printing why on a bad file. */
static gboolean
load_config (Daemon *daemon)
{
  g_autoptr(GError) error = NULL;

  /* absolute: -D changes the working directory before any SIGHUP */
  daemon->config_given = opts.config_file != NULL;
  daemon->config_path = g_canonicalize_filename (daemon->config_given ? opts.config_file
                                                                      : ELBUSD_DEFAULT_CONFIG_FILE,
                                                 NULL);

  if (!daemon->config_given &&
      !g_file_test (daemon->config_path, G_FILE_TEST_EXISTS))
    return TRUE;

  daemon->config = elbusd_config_load (daemon->config_path, config_flags (), &error);
  if (daemon->config == NULL)
    {
      g_printerr ("elbusd: %s\n", error->message);
      return FALSE;
    }

  return TRUE;
}

static gboolean
strv_equal0 (char **a,
             char **b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return g_strv_equal ((const char * const *) a, (const char * const *) b);
}

/* What SIGHUP cannot change: the listeners (they would have to be closed
 * under their clients), the pid file and the logging. Said, not done. */
static void
log_restart_needed (const ElbusdConfig *old,
                    const ElbusdConfig *config)
{
  char **old_listen = old != NULL ? old->listen : NULL;
  const char *old_pid_file = old != NULL ? old->pid_file : NULL;
  gboolean old_verbose = old != NULL && old->verbose;
  gboolean old_log_syslog = old != NULL && old->log_syslog;

  if (!strv_equal0 (old_listen, config->listen))
    {
      if (opts.binds != NULL && opts.binds[0] != NULL)
        g_debug ("%s: listen changed; -B is in force", config->path);
      else
        g_message ("%s: listen changed: restart elbusd to apply it; "
                   "the current listeners stay", config->path);
    }
  if (g_strcmp0 (old_pid_file, config->pid_file) != 0 && opts.pid_file == NULL)
    g_message ("%s: pid-file changed: restart elbusd to apply it", config->path);
  if (old_verbose != config->verbose && !opts.verbose)
    g_message ("%s: verbose changed: restart elbusd to apply it", config->path);
  if (old_log_syslog != config->log_syslog && !opts.log_syslog)
    g_message ("%s: log-syslog changed: restart elbusd to apply it", config->path);
}

/* Said at start and on SIGHUP, which reads the certificate files again: a
 * renewed certificate is served to the connections made from then on.
 * The certificate is @command_line's (nullable), from --tls-certificate,
 * or else @config's (nullable). */
static void
log_tls_certificate (ElbusBroker        *broker,
                     const ElbusdConfig *config,
                     GTlsCertificate    *command_line)
{
  GTlsCertificate *old = elbus_broker_get_tls_certificate (broker);
  GTlsCertificate *certificate;
  const char *source;
  const char *file;

  if (command_line != NULL)
    {
      certificate = command_line;
      source = "--tls-certificate";
      file = opts.tls_certificate_file;
      if (config != NULL && config->tls_certificate_file != NULL)
        g_debug ("%s: tls-certificate and tls-key not read; --tls-certificate is in force",
                 config->path);
    }
  else if (config != NULL)
    {
      certificate = config->tls_certificate;
      source = config->path;
      file = config->tls_certificate_file;
    }
  else
    return;

  if (certificate != NULL)
    {
      g_autoptr(GDateTime) not_after = g_tls_certificate_get_not_valid_after (certificate);
      g_autoptr(GDateTime) now = g_date_time_new_now_utc ();

      if (old == NULL || !g_tls_certificate_is_same (old, certificate))
        g_info ("%s: TLS certificate loaded from %s", source, file);
      if (not_after != NULL && g_date_time_compare (not_after, now) < 0)
        {
          g_autofree char *when = g_date_time_format_iso8601 (not_after);

          g_message ("%s: the TLS certificate %s expired on %s: wss:// clients will refuse it",
                     source, file, when);
        }
    }
  else if (old != NULL)
    g_message ("%s: tls-certificate removed: the wss:// listeners keep the "
               "certificate they have until elbusd restarts", source);
}

/* SIGHUP: reads the configuration file again, and the files of
 * --tls-certificate and --tls-key. A bad file or certificate changes
 * nothing. A good one replaces the limits, the policy and the TLS
 * certificate, which apply to connections made from now on; connected
 * clients whose name has no entry any more are disconnected (with their
 * secondaries). */
static void
reload_config (Daemon *daemon)
{
  g_autoptr(ElbusdConfig) config = NULL;
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) clients = NULL;
  guint n_dropped = 0;
  gboolean no_file = !daemon->config_given &&
                     !g_file_test (daemon->config_path, G_FILE_TEST_EXISTS);

  if (no_file)
    {
      if (daemon->config == NULL)
        g_info ("SIGHUP: there is no configuration file %s: %s", daemon->config_path,
                opts.tls_certificate_file != NULL ? "only --tls-certificate is read again"
                                                  : "nothing to reload");
      else
        g_warning ("SIGHUP: the configuration file %s is gone; "
                   "the current configuration stays in force",
                   daemon->config_path);
      if (opts.tls_certificate_file == NULL)
        return;
    }

  notify_service_manager ("RELOADING=1");

  if (!no_file)
    {
      config = elbusd_config_load (daemon->config_path, config_flags (), &error);
      if (config != NULL && !elbusd_config_check_tls_key (config, &error))
        g_clear_pointer (&config, elbusd_config_free);
    }
  if (error == NULL)
    {
      certificate = load_command_line_certificate (&error);
      if (certificate != NULL && !check_command_line_key (certificate, &error))
        g_clear_object (&certificate);
    }
  if (error != NULL)
    {
      g_warning ("%s; configuration not reloaded: the current one stays in force",
                 error->message);
      notify_service_manager ("READY=1");
      return;
    }

  if (config != NULL)
    log_restart_needed (daemon->config, config);
  log_tls_certificate (daemon->broker, config != NULL ? config : daemon->config, certificate);

  g_set_object (&daemon->tls_certificate, certificate);
  if (no_file)
    {
      configure_broker (daemon);
      g_info ("reloaded the TLS certificate from %s (--tls-certificate)",
              opts.tls_certificate_file);
      notify_service_manager ("READY=1");
      return;
    }

  g_clear_pointer (&daemon->config, elbusd_config_free);
  daemon->config = g_steal_pointer (&config);

  configure_broker (daemon);
  elbusd_config_apply_policy (daemon->config, daemon->broker);

  /* the broker's own clients (".broker") are not subject to the policy;
   * a secondary goes with its primary. The client is told why on
   * .broker/warn (in English: the text goes over the wire). */
  clients = elbus_broker_list_clients (daemon->broker);
  for (guint i = 0; clients[i] != NULL; i++)
    {
      const char *name = clients[i];
      g_autofree char *reason = NULL;

      if (name[0] == '.' || strstr (name, "%%") != NULL ||
          elbusd_config_allows_name (daemon->config, name))
        continue;

      /* the broker logs it, with the reason */
      reason = g_strdup_printf ("the reloaded security policy has no entry for the name %s",
                                name);
      if (elbus_broker_disconnect_client (daemon->broker, name, reason))
        n_dropped++;
    }

  g_info ("reloaded the configuration from %s: %s, %u client%s disconnected",
          daemon->config->path,
          elbusd_config_count_clients (daemon->config) > 0 ? "security policy in force"
                                                           : "no security policy",
          n_dropped, n_dropped == 1 ? "" : "s");

  notify_service_manager ("READY=1");
}

static gboolean
sighup_cb (gpointer user_data)
{
  reload_config (user_data);
  return G_SOURCE_CONTINUE;
}

static void
daemon_clear (Daemon *daemon)
{
  g_clear_pointer (&daemon->loop, g_main_loop_unref);
  g_clear_pointer (&daemon->config_path, g_free);
  g_clear_pointer (&daemon->config, elbusd_config_free);
  g_clear_object (&daemon->tls_certificate);
}

static int
run (Daemon *daemon)
{
  g_autoptr(ElbusBroker) broker = NULL;
  g_autoptr(GPtrArray) listeners = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *pid_file = NULL;
  const char *pid_file_option;
  char **binds;
  int n_activated;
  int ready_fd = -1;
  guint sigint_id;
  guint sigterm_id;
  guint sighup_id;

  n_activated = count_activated_sockets ();
  if (n_activated < 0)
    return EXIT_FAILURE;

  binds = get_binds (daemon);
  if ((binds == NULL || binds[0] == NULL) && n_activated == 0)
    {
      g_printerr (_("elbusd: no listener: give at least one -B, or listen= in the configuration file\n"));
      g_printerr (_("Try “%s --help” for more information.\n"), "elbusd");
      return EXIT_USAGE;
    }

  if (opts.workers != 0)
    g_debug ("--workers %d ignored: one thread serves all clients",
             opts.workers);

  /* Resolved now: daemonizing changes the working directory. (The
   * configuration file's paths are absolute already.) */
  pid_file_option = opts.pid_file;
  if (pid_file_option == NULL && daemon->config != NULL)
    pid_file_option = daemon->config->pid_file;
  if (pid_file_option != NULL)
    pid_file = g_canonicalize_filename (pid_file_option, NULL);

  /* read now, as the file's are with the file; the key is tried later */
  {
    g_autoptr(GError) tls_error = NULL;

    daemon->tls_certificate = load_command_line_certificate (&tls_error);
    if (tls_error != NULL)
      {
        g_printerr ("elbusd: %s\n", tls_error->message);
        return EXIT_FAILURE;
      }
  }

  broker = elbus_broker_new ();
  daemon->broker = broker;
  log_tls_certificate (broker, daemon->config, daemon->tls_certificate);
  configure_broker (daemon);
  if (daemon->config != NULL)
    {
      log_policy (daemon->config);
      elbusd_config_apply_policy (daemon->config, broker);
    }

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
  if (!open_listeners (daemon, n_activated, listeners))
    {
      elbus_broker_close (broker);
      return EXIT_FAILURE;
    }

  if (opts.daemonize && !daemonize_start (&ready_fd))
    {
      elbus_broker_close (broker);
      return EXIT_FAILURE;
    }

  /* the TLS key, the command line's or the file's, tried now: the
   * handshake starts GLib's worker threads, which must not be there when
   * daemonize_start() forks (its error still reaches the terminal, and the
   * parent exits 1) */
  {
    g_autoptr(GError) key_error = NULL;

    if (!check_command_line_key (daemon->tls_certificate, &key_error) ||
        (daemon->config != NULL && !elbusd_config_check_tls_key (daemon->config, &key_error)))
      {
        g_printerr ("elbusd: %s\n", key_error->message);
        elbus_broker_close (broker);
        return EXIT_FAILURE;
      }
  }

  if (pid_file != NULL && !write_pid_file (pid_file))
    {
      elbus_broker_close (broker);
      return EXIT_FAILURE;
    }

  /* started: what was said meanwhile goes out now, while standard error
   * is still the terminal */
  elbus_tool_log_release (TRUE);

  if (opts.daemonize)
    daemonize_finish (ready_fd);

  daemon->loop = g_main_loop_new (NULL, FALSE);
  sigint_id = g_unix_signal_add (SIGINT, sigint_cb, daemon);
  sigterm_id = g_unix_signal_add (SIGTERM, sigterm_cb, daemon);
  sighup_id = g_unix_signal_add (SIGHUP, sighup_cb, daemon);

  notify_service_manager ("READY=1");
  print_hint (listeners);

  g_main_loop_run (daemon->loop);

  g_info ("shutting down (%s)",
          daemon->quit_signal == SIGINT ? "SIGINT" : "SIGTERM");
  notify_service_manager ("STOPPING=1");

  g_source_remove (sigint_id);
  g_source_remove (sigterm_id);
  g_source_remove (sighup_id);
  g_clear_pointer (&daemon->loop, g_main_loop_unref);

  elbus_broker_close (broker);
  daemon->broker = NULL;
  if (pid_file != NULL && g_unlink (pid_file) != 0 && errno != ENOENT)
    g_warning ("cannot remove the pid file %s: %s", pid_file,
               g_strerror (errno));

  return EXIT_SUCCESS;
}

int
main (int    argc,
      char **argv)
{
  Daemon daemon = { 0 };
  gboolean verbose;
  gboolean log_syslog;
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

  /* before logging starts: the file may ask for syslog */
  if (!load_config (&daemon))
    {
      daemon_clear (&daemon);
      options_clear ();
      return EXIT_FAILURE;
    }

  verbose = opts.verbose || (daemon.config != NULL && daemon.config->verbose);
  log_syslog = opts.log_syslog || (daemon.config != NULL && daemon.config->log_syslog);
  elbus_tool_log_init (G_LOG_DOMAIN,
                       log_syslog ? ELBUS_TOOL_LOG_SYSLOG : ELBUS_TOOL_LOG_AUTO,
                       verbose);

  /* A peer that goes away mid-write must cost an EPIPE, not the process. */
  signal (SIGPIPE, SIG_IGN);

  /* An elbusd that cannot start prints its error alone: the info lines
   * of starting (and of closing again) are written once it has started,
   * or with -v as they come. */
  elbus_tool_log_hold ();
  status = run (&daemon);
  elbus_tool_log_release (FALSE);
  daemon_clear (&daemon);
  options_clear ();

  return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the command-line tools: gettext set-up, logging to
 * journald, syslog or standard error, and address helpers. Payloads as
 * JSON, text or hex are in elbus-tool-payload.c, so that a tool that does
 * not show payloads (elbusd) does not link json-glib.
 */

#include "config.h"

#include "elbus-tool-util.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include <elbus/elbus.h>

/**
 * elbus_tool_init_i18n:
 *
 * Sets the locale from the environment and binds the `elbus` gettext
 * domain, so that `_()` translates the tools' messages.
 */
void
elbus_tool_init_i18n (void)
{
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
}

/* ---- logging ---------------------------------------------------------- */

typedef enum {
  LOG_SINK_STDERR,
  LOG_SINK_JOURNALD,
  LOG_SINK_SYSLOG,
} LogSink;

typedef struct {
  char *ident;          /* (owned): the tool's own log domain and syslog ident */
  LogSink sink;
  gboolean verbose;     /* debug messages of our own domains too */
  gboolean use_color;   /* standard error is a terminal that takes colour */
  GPtrArray *held;      /* (owned) (nullable) (element-type HeldMessage):
                         * info messages held by elbus_tool_log_hold() */
} LogState;

typedef struct {
  char *domain;         /* (owned) (nullable) */
  char *message;        /* (owned) */
} HeldMessage;

static LogState log_state;

/* The library's log domain (elbus/meson.build). */
#define ELBUS_LIBRARY_LOG_DOMAIN "Elbus"

static gboolean
log_is_own_domain (const char *domain)
{
  return g_strcmp0 (domain, log_state.ident) == 0 ||
         g_strcmp0 (domain, ELBUS_LIBRARY_LOG_DOMAIN) == 0;
}

/* Errors, criticals, warnings and messages are always written. Info is
 * written for our own domains (the tool's and the library's), debug for
 * them only with --verbose. Anything else follows G_MESSAGES_DEBUG, as
 * GLib's default writer does. */
static gboolean
log_would_drop (GLogLevelFlags  level,
                const char     *domain)
{
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL |
               G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE))
    return FALSE;

  if (log_is_own_domain (domain))
    {
      if (level & G_LOG_LEVEL_INFO)
        return FALSE;
      if (log_state.verbose)
        return FALSE;
    }

  return g_log_writer_default_would_drop (level, domain);
}

static const char *
log_field_string (const GLogField *fields,
                  gsize            n_fields,
                  const char      *key,
                  gssize          *length)
{
  for (gsize i = 0; i < n_fields; i++)
    {
      if (g_strcmp0 (fields[i].key, key) == 0)
        {
          *length = fields[i].length < 0 ? (gssize) strlen (fields[i].value)
                                         : fields[i].length;
          return fields[i].value;
        }
    }

  *length = 0;
  return NULL;
}

static const char *
log_level_name (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return "ERROR";
  if (level & G_LOG_LEVEL_CRITICAL)
    return "CRITICAL";
  if (level & G_LOG_LEVEL_WARNING)
    return "WARNING";
  if (level & G_LOG_LEVEL_MESSAGE)
    return "NOTICE";
  if (level & G_LOG_LEVEL_INFO)
    return "INFO";
  return "DEBUG";
}

static const char *
log_level_color (GLogLevelFlags level)
{
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    return "\033[1;31m";
  if (level & G_LOG_LEVEL_WARNING)
    return "\033[1;33m";
  if (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO))
    return "\033[1;32m";
  return "\033[1;34m";
}

/* The same mapping as GLib's journald writer. */
static int
log_level_to_priority (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return LOG_ERR;
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    return LOG_WARNING;
  if (level & G_LOG_LEVEL_MESSAGE)
    return LOG_NOTICE;
  if (level & G_LOG_LEVEL_INFO)
    return LOG_INFO;
  return LOG_DEBUG;
}

/* One line: "2026-01-31 12:00:00.123 INFO elbusd: listening on ...",
 * written with one call so that lines from several threads do not mix. */
static GLogWriterOutput
log_write_stderr (GLogLevelFlags  level,
                  const char     *domain,
                  const char     *message,
                  gssize          message_length)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y-%m-%d %H:%M:%S");
  g_autoptr(GString) line = g_string_new (NULL);

  g_string_append_printf (line, "%s.%03d ", stamp,
                          g_date_time_get_microsecond (now) / 1000);
  if (log_state.use_color)
    g_string_append_printf (line, "%s%s\033[0m ", log_level_color (level),
                            log_level_name (level));
  else
    g_string_append_printf (line, "%s ", log_level_name (level));
  g_string_append_printf (line, "%s: ", domain != NULL ? domain : "");
  g_string_append_len (line, message, message_length);
  g_string_append_c (line, '\n');

  if (fwrite (line->str, 1, line->len, stderr) != line->len)
    return G_LOG_WRITER_UNHANDLED;
  fflush (stderr);

  return G_LOG_WRITER_HANDLED;
}

static GLogWriterOutput
log_write_syslog (GLogLevelFlags  level,
                  const char     *domain,
                  const char     *message,
                  gssize          message_length)
{
  int priority = log_level_to_priority (level);

  if (domain == NULL || g_strcmp0 (domain, log_state.ident) == 0)
    syslog (priority, "%.*s", (int) message_length, message);
  else
    syslog (priority, "%s: %.*s", domain, (int) message_length, message);

  return G_LOG_WRITER_HANDLED;
}

static GLogWriterOutput
log_writer_cb (GLogLevelFlags   level,
               const GLogField *fields,
               gsize            n_fields,
               gpointer         user_data)
{
  const char *domain;
  const char *message;
  gssize domain_length;
  gssize message_length;
  g_autofree char *domain_copy = NULL;

  domain = log_field_string (fields, n_fields, "GLIB_DOMAIN", &domain_length);
  if (domain != NULL)
    domain = domain_copy = g_strndup (domain, domain_length);

  if (log_would_drop (level, domain))
    return G_LOG_WRITER_HANDLED;

  message = log_field_string (fields, n_fields, "MESSAGE", &message_length);
  if (message == NULL)
    {
      message = "(no message)";
      message_length = strlen (message);
    }

  if (log_state.held != NULL && (level & G_LOG_LEVEL_INFO))
    {
      HeldMessage *held = g_new (HeldMessage, 1);

      held->domain = g_steal_pointer (&domain_copy);
      held->message = g_strndup (message, message_length);
      g_ptr_array_add (log_state.held, held);
      return G_LOG_WRITER_HANDLED;
    }

  switch (log_state.sink)
    {
    case LOG_SINK_JOURNALD:
      if (g_log_writer_journald (level, fields, n_fields, NULL) == G_LOG_WRITER_HANDLED)
        return G_LOG_WRITER_HANDLED;
      return log_write_stderr (level, domain, message, message_length);
    case LOG_SINK_SYSLOG:
      return log_write_syslog (level, domain, message, message_length);
    case LOG_SINK_STDERR:
    default:
      return log_write_stderr (level, domain, message, message_length);
    }
}

/**
 * elbus_tool_log_init:
 * @ident: the tool's own log domain (its `G_LOG_DOMAIN`), also the syslog
 *   identifier
 * @target: where to write
 * @verbose: write debug messages of the tool's and the library's domains
 *
 * Installs the process's log writer. Info messages of @ident and of the
 * library's `Elbus` domain are written; debug messages only with @verbose;
 * other domains follow `G_MESSAGES_DEBUG`. Call once, early in main().
 */
void
elbus_tool_log_init (const char         *ident,
                     ElbusToolLogTarget  target,
                     gboolean            verbose)
{
  g_return_if_fail (ident != NULL);
  g_return_if_fail (log_state.ident == NULL);

  log_state.ident = g_strdup (ident);
  log_state.verbose = verbose;

  if (target == ELBUS_TOOL_LOG_SYSLOG)
    {
      log_state.sink = LOG_SINK_SYSLOG;
      openlog (log_state.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    }
  else if (g_log_writer_is_journald (fileno (stderr)))
    {
      log_state.sink = LOG_SINK_JOURNALD;
    }
  else
    {
      log_state.sink = LOG_SINK_STDERR;
      log_state.use_color = g_log_writer_supports_color (fileno (stderr));
    }

  g_log_set_writer_func (log_writer_cb, NULL, NULL);
}

static void
held_message_free (HeldMessage *held)
{
  g_free (held->domain);
  g_free (held->message);
  g_free (held);
}

/**
 * elbus_tool_log_hold:
 *
 * Holds back info messages (not debug ones, not messages or warnings)
 * until elbus_tool_log_release(), so that a program that cannot start
 * prints its error alone. Does nothing when the log is verbose: then
 * everything is written as it comes.
 */
void
elbus_tool_log_hold (void)
{
  g_return_if_fail (log_state.ident != NULL);

  if (!log_state.verbose && log_state.held == NULL)
    log_state.held = g_ptr_array_new_with_free_func ((GDestroyNotify) held_message_free);
}

/**
 * elbus_tool_log_release:
 * @write: write the held messages (the program started), or drop them
 *
 * Ends elbus_tool_log_hold(): writes the info messages held since, in
 * their order, or drops them. Does nothing when nothing is held.
 */
void
elbus_tool_log_release (gboolean write)
{
  g_autoptr(GPtrArray) held = g_steal_pointer (&log_state.held);

  if (held == NULL || !write)
    return;

  for (guint i = 0; i < held->len; i++)
    {
      HeldMessage *m = g_ptr_array_index (held, i);
      const GLogField fields[] = {
        { "MESSAGE", m->message, -1 },
        { "PRIORITY", "6", -1 },
        { "GLIB_DOMAIN", m->domain, -1 },
      };

      g_log_structured_array (G_LOG_LEVEL_INFO, fields,
                              m->domain != NULL ? G_N_ELEMENTS (fields) : G_N_ELEMENTS (fields) - 1);
    }
}

/**
 * elbus_tool_fail:
 * @status: the exit status to return
 * @format: a printf() format for the message
 * @...: its arguments
 *
 * Writes “PRGNAME: message” to standard error, for the person at the
 * terminal (not a log line). The program name is g_get_prgname(): set it
 * with g_set_prgname() first.
 *
 * Returns: @status, so that `return elbus_tool_fail (1, …);` ends a command
 */
int
elbus_tool_fail (int         status,
                 const char *format,
                 ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("%s: %s\n", g_get_prgname (), message);

  return status;
}

/**
 * elbus_tool_parse_path_command_line:
 * @context: the tool's options
 * @argc: (inout): the command line's length
 * @argv: (inout): the command line
 * @version: the flag --version sets
 * @usage: the translated message for a command line without PATH
 *
 * Parses the command line of a tool whose one argument is the broker's
 * PATH, and answers --version. Errors go to standard error through
 * elbus_tool_fail().
 *
 * Returns: -1 when the tool goes on with (*@argv)[1] as PATH; otherwise
 *   the exit status to end with (0 after --version, %EXIT_USAGE)
 */
int
elbus_tool_parse_path_command_line (GOptionContext   *context,
                                    int              *argc,
                                    char           ***argv,
                                    const gboolean   *version,
                                    const char       *usage)
{
  g_autoptr(GError) error = NULL;

  if (!g_option_context_parse (context, argc, argv, &error))
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  if (*version)
    {
      g_print ("%s %s\n", g_get_prgname (), PACKAGE_VERSION);
      return 0;
    }
  if (*argc > 2)
    return elbus_tool_fail (EXIT_USAGE, _("unexpected argument “%s”"), (*argv)[2]);
  if (*argc < 2)
    return elbus_tool_fail (EXIT_USAGE, "%s", usage);
  return -1;
}

/**
 * elbus_tool_check_timeout:
 * @seconds: a --timeout value
 * @error: return location for a %G_OPTION_ERROR_BAD_VALUE
 *
 * Whether @seconds is a value [property@Elbus.Client:timeout] takes: the
 * tools give it to their clients before they connect, where a value out
 * of range would be a GLib critical.
 *
 * Returns: %TRUE if it is
 */
gboolean
elbus_tool_check_timeout (double   seconds,
                          GError **error)
{
  g_autoptr(GTypeClass) klass = g_type_class_ref (ELBUS_TYPE_CLIENT);
  GParamSpecDouble *spec =
    G_PARAM_SPEC_DOUBLE (g_object_class_find_property (G_OBJECT_CLASS (klass), "timeout"));

  if (seconds >= spec->minimum && seconds <= spec->maximum)
    return TRUE;
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               _("--timeout must be between %g and %g seconds"), spec->minimum, spec->maximum);
  return FALSE;
}

/* ---- addresses -------------------------------------------------------- */

/**
 * elbus_tool_check_address:
 * @address: a broker address from the command line
 * @listening: %TRUE for an address to listen on (port 0 is allowed:
 *   any free port)
 * @error: return location for a %G_OPTION_ERROR_BAD_VALUE
 *
 * Checks @address before the library sees it, so that a mistake is said
 * once and plainly: a UNIX socket path (starting with `/`, `./` or `../`,
 * or ending in `.sock`, `.socket` or `.ipc`), `HOST:PORT` with a port
 * from 1 to 65535, or a WebSocket URL `ws://HOST:PORT[/PATH]` or
 * `wss://HOST:PORT[/PATH]`. A word with no `:` is taken for a file name
 * that needs `./`.
 *
 * Returns: (transfer full) (nullable): the address to give the library (a
 *   path starting with `./` or `../` made absolute), or %NULL
 */
char *
elbus_tool_check_address (const char  *address,
                          gboolean     listening,
                          GError     **error)
{
  const char *colon;
  const char *port;
  guint64 number;

  g_return_val_if_fail (address != NULL, NULL);

  if (address[0] == '\0')
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("an empty broker address"));
      return NULL;
    }
  if (g_str_has_prefix (address, "./") || g_str_has_prefix (address, "../"))
    return g_canonicalize_filename (address, NULL);
  if (elbus_address_is_unix (address))
    return g_strdup (address);
  if (g_ascii_strncasecmp (address, "ws://", 5) == 0 ||
      g_ascii_strncasecmp (address, "wss://", 6) == 0)
    {
      g_autoptr(GUri) uri = g_uri_parse (address, G_URI_FLAGS_NONE, NULL);

      if (uri == NULL || g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0' ||
          g_uri_get_port (uri) < (listening ? 0 : 1) || g_uri_get_query (uri) != NULL ||
          g_uri_get_fragment (uri) != NULL)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("“%s” is not a ws://HOST:PORT[/PATH] address"), address);
          return NULL;
        }
      return g_strdup (address);
    }

  colon = strrchr (address, ':');
  if (colon == NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("“%s” is neither a UNIX socket path nor HOST:PORT; a socket in the "
                     "current directory is “./%s”"), address, address);
      return NULL;
    }

  if (colon == address)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("“%s” has no host before the port (HOST:PORT)"), address);
      return NULL;
    }
  /* host:port and [::1]:7777 are checked; a bare IPv6 address is GIO's */
  if (strchr (address, ':') != colon && colon[-1] != ']')
    return g_strdup (address);

  port = colon + 1;
  if (!g_ascii_string_to_unsigned (port, 10, listening ? 0 : 1, 65535, &number, NULL))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("“%s”: the port must be a number from %d to 65535"), address,
                   listening ? 0 : 1);
      return NULL;
    }

  return g_strdup (address);
}

/**
 * elbus_tool_connect_error:
 * @address: the address the client tried
 * @error: why connecting or registering failed
 *
 * Says why a client could not reach the broker at @address, naming it
 * once: the common system errors in words, others as GIO has them.
 *
 * Returns: (transfer full): the message
 */
char *
elbus_tool_connect_error (const char   *address,
                          const GError *error)
{
  gboolean unix_path = elbus_address_is_unix (address);

  g_return_val_if_fail (address != NULL && error != NULL, NULL);

  /* the library names it in its handshake errors already */
  if (strstr (error->message, address) != NULL)
    return g_strdup (error->message);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) && unix_path)
    return g_strdup_printf (_("cannot connect to %s: there is no such socket (is elbusd "
                              "running?)"), address);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
    return g_strdup_printf (unix_path
                            ? _("cannot connect to %s: no broker listens on it (elbusd "
                                "stopped?)")
                            : _("cannot connect to %s: connection refused (is elbusd "
                                "listening there?)"), address);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED))
    return g_strdup_printf (_("cannot connect to %s: permission denied"), address);

  return g_strdup_printf (_("cannot connect to %s: %s"), address, error->message);
}

/**
 * elbus_tool_socket_address_to_string:
 * @address: a socket address
 *
 * Formats @address the way it would be written with `-B`: the path of a
 * UNIX socket (an abstract one prefixed with `@`), `host:port` for IPv4
 * and `[host]:port` for IPv6.
 *
 * Returns: (transfer full): the address as text
 */
char *
elbus_tool_socket_address_to_string (GSocketAddress *address)
{
  g_return_val_if_fail (G_IS_SOCKET_ADDRESS (address), NULL);

  if (G_IS_UNIX_SOCKET_ADDRESS (address))
    {
      GUnixSocketAddress *unix_address = G_UNIX_SOCKET_ADDRESS (address);
      const char *path = g_unix_socket_address_get_path (unix_address);

      switch (g_unix_socket_address_get_address_type (unix_address))
        {
        case G_UNIX_SOCKET_ADDRESS_ABSTRACT:
        case G_UNIX_SOCKET_ADDRESS_ABSTRACT_PADDED:
          return g_strdup_printf ("@%s", path);
        case G_UNIX_SOCKET_ADDRESS_ANONYMOUS:
          return g_strdup ("(anonymous)");
        case G_UNIX_SOCKET_ADDRESS_PATH:
        case G_UNIX_SOCKET_ADDRESS_INVALID:
        default:
          return g_strdup (path);
        }
    }

  if (G_IS_INET_SOCKET_ADDRESS (address))
    {
      GInetSocketAddress *inet_address = G_INET_SOCKET_ADDRESS (address);
      GInetAddress *host = g_inet_socket_address_get_address (inet_address);
      g_autofree char *host_string = g_inet_address_to_string (host);
      guint16 port = g_inet_socket_address_get_port (inet_address);

      if (g_inet_address_get_family (host) == G_SOCKET_FAMILY_IPV6)
        return g_strdup_printf ("[%s]:%u", host_string, port);
      return g_strdup_printf ("%s:%u", host_string, port);
    }

  return g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));
}

/* SPDX-License-Identifier: MIT */
/*
 * elbusd's configuration file: a GKeyFile with one [elbusd] group (the
 * server options and the listeners) and one [client NAME] group per entry
 * of the security policy. See docs/configuration.md and elbusd(1).
 *
 * Loading parses and checks everything, so that applying a loaded file
 * cannot fail half-way: a bad file is rejected as a whole, with the file
 * name and the line of the culprit ("FILE:LINE: …"). GKeyFile does not
 * tell lines, so the text is scanned once more here to find the line of
 * each group header and key (and to catch what GKeyFile would silently
 * merge: a group or a key given twice).
 */

#include "config.h"

#include "elbusd-config.h"

#include <errno.h>
#include <grp.h>
#include <math.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include "elbus-tool-util.h"

/* ---- limits ------------------------------------------------------------ */

/* In ElbusdLimit order; each is also a property of ElbusBroker. */
static const char *const limit_names[ELBUSD_N_LIMITS] = {
  [ELBUSD_LIMIT_TIMEOUT] = "timeout",
  [ELBUSD_LIMIT_BUF_SIZE] = "buf-size",
  [ELBUSD_LIMIT_BUF_TTL] = "buf-ttl",
  [ELBUSD_LIMIT_QUEUE_SIZE] = "queue-size",
  [ELBUSD_LIMIT_MAX_QUEUE_BYTES] = "max-queue-bytes",
  [ELBUSD_LIMIT_MAX_CLIENTS] = "max-clients",
  [ELBUSD_LIMIT_MAX_SUBSCRIPTIONS] = "max-subscriptions",
  [ELBUSD_LIMIT_MAX_FRAME_SIZE] = "max-frame-size",
  [ELBUSD_LIMIT_HANDSHAKE_TIMEOUT] = "handshake-timeout",
};

static GParamSpec *
limit_get_pspec (ElbusdLimit limit)
{
  /* the class stays alive once referenced: the pspecs are static */
  GObjectClass *broker_class = g_type_class_ref (ELBUS_TYPE_BROKER);
  GParamSpec *pspec = g_object_class_find_property (broker_class, limit_names[limit]);

  g_type_class_unref (broker_class);
  g_assert (pspec != NULL);

  return pspec;
}

const char *
elbusd_limit_get_name (ElbusdLimit limit)
{
  g_return_val_if_fail (limit < ELBUSD_N_LIMITS, NULL);

  return limit_names[limit];
}

gboolean
elbusd_limit_lookup (const char  *name,
                     ElbusdLimit *limit)
{
  for (guint i = 0; i < ELBUSD_N_LIMITS; i++)
    {
      if (g_strcmp0 (name, limit_names[i]) == 0)
        {
          *limit = i;
          return TRUE;
        }
    }

  return FALSE;
}

double
elbusd_limit_get_default (ElbusdLimit limit)
{
  GParamSpec *pspec = limit_get_pspec (limit);

  if (G_IS_PARAM_SPEC_DOUBLE (pspec))
    return G_PARAM_SPEC_DOUBLE (pspec)->default_value;

  return G_PARAM_SPEC_UINT (pspec)->default_value;
}

/* Parses @text as a value of @limit and checks it against the range of
 * the broker property. The error message does not name the limit: the
 * caller puts the option or key in front. */
gboolean
elbusd_limit_parse (ElbusdLimit   limit,
                    const char   *text,
                    double       *value,
                    GError      **error)
{
  GParamSpec *pspec;

  g_return_val_if_fail (limit < ELBUSD_N_LIMITS, FALSE);
  g_return_val_if_fail (text != NULL, FALSE);

  pspec = limit_get_pspec (limit);

  if (G_IS_PARAM_SPEC_DOUBLE (pspec))
    {
      GParamSpecDouble *dspec = G_PARAM_SPEC_DOUBLE (pspec);
      char *end = NULL;
      double d;

      d = g_ascii_strtod (text, &end);
      if (*text == '\0' || end == NULL || *end != '\0' || !isfinite (d))
        {
          g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                       _("“%s” is not a number of seconds"), text);
          return FALSE;
        }
      if (d < dspec->minimum || d > dspec->maximum)
        {
          g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                       _("%s is out of range: it must be between %g and %g seconds"),
                       text, dspec->minimum, dspec->maximum);
          return FALSE;
        }
      *value = d;
    }
  else
    {
      GParamSpecUInt *uspec = G_PARAM_SPEC_UINT (pspec);
      guint64 u;

      if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT64, &u, NULL))
        {
          g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                       _("“%s” is not a whole number"), text);
          return FALSE;
        }
      if (u < uspec->minimum || u > uspec->maximum)
        {
          g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                       _("%s is out of range: it must be between %u and %u"),
                       text, uspec->minimum, uspec->maximum);
          return FALSE;
        }
      *value = (double) u;
    }

  return TRUE;
}

void
elbusd_limits_apply (const ElbusdLimits *first,
                     const ElbusdLimits *second,
                     ElbusBroker        *broker)
{
  g_return_if_fail (first != NULL);
  g_return_if_fail (ELBUS_IS_BROKER (broker));

  g_object_freeze_notify (G_OBJECT (broker));

  /* ELBUSD_LIMIT_TIMEOUT comes before ELBUSD_LIMIT_HANDSHAKE_TIMEOUT, so
   * the timeout in force is known when the handshake's is decided */
  G_STATIC_ASSERT (ELBUSD_LIMIT_TIMEOUT < ELBUSD_LIMIT_HANDSHAKE_TIMEOUT);

  for (guint i = 0; i < ELBUSD_N_LIMITS; i++)
    {
      GParamSpec *pspec = limit_get_pspec (i);
      double value;

      if (first->set[i])
        value = first->value[i];
      else if (second != NULL && second->set[i])
        value = second->value[i];
      else if (i == ELBUSD_LIMIT_HANDSHAKE_TIMEOUT)
        /* as the original, which gives each handshake read its timeout:
         * without a handshake-timeout of its own, the handshake has -t */
        value = elbus_broker_get_timeout (broker);
      else
        value = elbusd_limit_get_default (i);

      if (G_IS_PARAM_SPEC_DOUBLE (pspec))
        g_object_set (broker, limit_names[i], value, NULL);
      else
        g_object_set (broker, limit_names[i], (guint) value, NULL);
    }

  g_object_thaw_notify (G_OBJECT (broker));
}

/* ---- scanning for lines -------------------------------------------------- */

typedef struct {
  const char *path;       /* (unowned): the file, for messages */
  char *dir;              /* (owned): its directory, absolute */
  GHashTable *lines;      /* (owned): "GROUP" and "GROUP\nKEY" → line number */
  ElbusdConfigFlags flags;
} Parser;

#define CLIENT_GROUP_PREFIX "client "

static gboolean G_GNUC_PRINTF (4, 5)
fail_at (Parser      *p,
         guint        line,
         GError     **error,
         const char  *format,
         ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  if (line > 0)
    g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
                 "%s:%u: %s", p->path, line, message);
  else
    g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
                 "%s: %s", p->path, message);

  return FALSE;
}

static guint
group_line (Parser     *p,
            const char *group)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (p->lines, group));
}

static guint
key_line (Parser     *p,
          const char *group,
          const char *key)
{
  g_autofree char *id = g_strconcat (group, "\n", key, NULL);

  return GPOINTER_TO_UINT (g_hash_table_lookup (p->lines, id));
}

/* Walks the text the way GKeyFile reads it (blank lines, comment lines
 * starting with #, [group] headers, key=value lines; leading white space
 * ignored), records where each group and key is, and rejects what
 * GKeyFile would reject without saying where, or would silently merge. */
static gboolean
scan_lines (Parser      *p,
            const char  *text,
            gsize        length,
            GError     **error)
{
  g_autofree char *group = NULL;
  const char *line = text;
  const char *end = text + length;
  guint number = 0;

  while (line < end)
    {
      const char *eol = memchr (line, '\n', end - line);
      g_autofree char *copy = NULL;
      char *s;

      if (eol == NULL)
        eol = end;
      number++;

      if (memchr (line, '\0', eol - line) != NULL)
        return fail_at (p, number, error, _("a NUL byte in the line"));

      copy = g_strndup (line, eol - line);
      line = eol + 1;

      if (!g_utf8_validate (copy, -1, NULL))
        return fail_at (p, number, error, _("the line is not valid UTF-8"));

      s = copy;
      while (g_ascii_isspace (*s))
        s++;
      g_strchomp (s);

      if (*s == '\0' || *s == '#')
        continue;

      if (*s == '[')
        {
          char *close = strchr (s, ']');

          if (close == NULL || close[1] != '\0' || close == s + 1 ||
              memchr (s + 1, '[', close - s - 1) != NULL)
            return fail_at (p, number, error,
                            _("“%s” is not a valid [group] header"), s);

          g_free (group);
          group = g_strndup (s + 1, close - s - 1);

          if (g_hash_table_contains (p->lines, group))
            return fail_at (p, number, error,
                            _("[%s] given a second time (first on line %u)"),
                            group, group_line (p, group));
          g_hash_table_insert (p->lines, g_strdup (group), GUINT_TO_POINTER (number));
        }
      else
        {
          char *equals = strchr (s, '=');
          g_autofree char *key = NULL;
          g_autofree char *id = NULL;

          if (equals == NULL)
            return fail_at (p, number, error,
                            _("“%s” is not a key=value line, a [group] header or a comment"),
                            s);
          key = g_strndup (s, equals - s);
          g_strchomp (key);
          if (*key == '\0')
            return fail_at (p, number, error, _("a value without a key"));
          if (group == NULL)
            return fail_at (p, number, error,
                            _("key “%s” before any [group] header"), key);

          id = g_strconcat (group, "\n", key, NULL);
          if (g_hash_table_contains (p->lines, id))
            return fail_at (p, number, error,
                            _("key “%s” given a second time in [%s] (first on line %u)"),
                            key, group, key_line (p, group, key));
          g_hash_table_insert (p->lines, g_steal_pointer (&id), GUINT_TO_POINTER (number));
        }
    }

  return TRUE;
}

/* ---- values ---------------------------------------------------------------- */

/* Refuses what GKeyFile's unescaping would refuse: a backslash that ends
 * the value or starts no escape it knows (\s \n \t \r \\, and \; in a
 * list). GLib 2.74 sets its GError twice for a value with two such faults
 * (a warning, and the first error leaked), so they are caught here first. */
static gboolean
check_escapes (Parser      *p,
               GKeyFile    *keyfile,
               const char  *group,
               const char  *key,
               gboolean     list,
               GError     **error)
{
  g_autofree char *raw = g_key_file_get_value (keyfile, group, key, NULL);

  for (const char *c = raw; c != NULL && *c != '\0'; c++)
    {
      if (*c != '\\')
        continue;
      c++;
      if (*c == '\0' || strchr (list ? "sntr\\;" : "sntr\\", *c) == NULL)
        return fail_at (p, key_line (p, group, key), error,
                        _("%s: a backslash that starts no escape (\\s, \\n, \\t, \\r, \\\\%s)"),
                        key, list ? ", \\;" : "");
    }
  return TRUE;
}

static char *
get_string (Parser      *p,
            GKeyFile    *keyfile,
            const char  *group,
            const char  *key,
            GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  char *value;

  if (!check_escapes (p, keyfile, group, key, FALSE, error))
    return NULL;
  value = g_key_file_get_string (keyfile, group, key, &local_error);

  if (value == NULL)
    {
      fail_at (p, key_line (p, group, key), error, "%s: %s", key, local_error->message);
      return NULL;
    }

  return g_strstrip (value);
}

/* A ;-separated list, each item stripped of white space, empty items
 * dropped. */
static GStrv
get_list (Parser      *p,
          GKeyFile    *keyfile,
          const char  *group,
          const char  *key,
          GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_auto(GStrv) items = NULL;
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();

  if (!check_escapes (p, keyfile, group, key, TRUE, error))
    return NULL;
  items = g_key_file_get_string_list (keyfile, group, key, NULL, &local_error);
  if (items == NULL && local_error != NULL &&
      !g_error_matches (local_error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE))
    {
      fail_at (p, key_line (p, group, key), error, "%s: %s", key, local_error->message);
      return NULL;
    }

  for (guint i = 0; items != NULL && items[i] != NULL; i++)
    {
      g_strstrip (items[i]);
      if (items[i][0] != '\0')
        g_strv_builder_add (builder, items[i]);
    }

  return g_strv_builder_end (builder);
}

static gboolean
get_boolean (Parser      *p,
             GKeyFile    *keyfile,
             const char  *group,
             const char  *key,
             gboolean    *value,
             GError     **error)
{
  g_autofree char *text = get_string (p, keyfile, group, key, error);

  if (text == NULL)
    return FALSE;

  if (g_str_equal (text, "true") || g_str_equal (text, "1"))
    *value = TRUE;
  else if (g_str_equal (text, "false") || g_str_equal (text, "0"))
    *value = FALSE;
  else
    return fail_at (p, key_line (p, group, key), error,
                    _("%s: “%s” is neither true nor false"), key, text);

  return TRUE;
}

/* A path from the file: relative ones are taken from the file's directory. */
static char *
resolve_path (Parser     *p,
              const char *path)
{
  return g_canonicalize_filename (path, p->dir);
}

/* ---- [elbusd] ---------------------------------------------------------------- */

typedef struct {
  GTlsConnection *server;  /* (unowned) */
  GSocket *socket;         /* (unowned): its socket */
  int first_failed;        /* (atomic): 0, or the side that failed first */
} TlsProbe;

enum { PROBE_SERVER = 1, PROBE_CLIENT };

static gpointer
probe_server_thread (gpointer data)
{
  TlsProbe *probe = data;
  GError *error = NULL;

  if (g_tls_connection_handshake (probe->server, NULL, &error))
    return NULL;
  g_atomic_int_compare_and_exchange (&probe->first_failed, 0, PROBE_SERVER);
  /* the client's side would wait for more */
  (void) g_socket_shutdown (probe->socket, TRUE, TRUE, NULL);
  return error;
}

static gboolean
probe_accept_cb (GTlsConnection       *connection,
                 GTlsCertificate      *certificate,
                 GTlsCertificateFlags  errors,
                 gpointer              user_data)
{
  /* who signed it is the clients' business: only the key is tried here */
  return TRUE;
}

/* Whether @certificate's key is the one its certificate was made for: a
 * TLS handshake with itself over a socket pair (the server's side on a
 * thread of its own), whose client checks the server's signature
 * (GTlsCertificate cannot compare the keys). A wrong key would otherwise
 * fail every wss:// handshake. */
static gboolean
check_tls_key (GTlsCertificate  *certificate,
               GError          **error)
{
  g_autoptr(GSocket) server_socket = NULL;
  g_autoptr(GSocket) client_socket = NULL;
  g_autoptr(GSocketConnection) server_stream = NULL;
  g_autoptr(GSocketConnection) client_stream = NULL;
  g_autoptr(GIOStream) server = NULL;
  g_autoptr(GIOStream) client = NULL;
  g_autoptr(GError) client_error = NULL;
  g_autoptr(GError) server_error = NULL;
  TlsProbe probe = { 0 };
  GThread *thread;
  int fds[2];

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "socketpair: %s", g_strerror (saved_errno));
      return FALSE;
    }
  server_socket = g_socket_new_from_fd (fds[0], error);
  if (server_socket == NULL)
    {
      close (fds[0]);
      close (fds[1]);
      return FALSE;
    }
  client_socket = g_socket_new_from_fd (fds[1], error);
  if (client_socket == NULL)
    {
      close (fds[1]);
      return FALSE;
    }
  server_stream = g_socket_connection_factory_create_connection (server_socket);
  client_stream = g_socket_connection_factory_create_connection (client_socket);

  server = g_tls_server_connection_new (G_IO_STREAM (server_stream), certificate, error);
  if (server == NULL)
    return FALSE;
  client = g_tls_client_connection_new (G_IO_STREAM (client_stream), NULL, error);
  if (client == NULL)
    return FALSE;
  /* no CA is consulted (loading the system's takes longer than the rest) */
  g_tls_connection_set_database (G_TLS_CONNECTION (client), NULL);
  g_signal_connect (client, "accept-certificate", G_CALLBACK (probe_accept_cb), NULL);

  probe.server = G_TLS_CONNECTION (server);
  probe.socket = server_socket;
  thread = g_thread_new ("elbusd-tls-probe", probe_server_thread, &probe);
  if (!g_tls_connection_handshake (G_TLS_CONNECTION (client), NULL, &client_error))
    {
      g_atomic_int_compare_and_exchange (&probe.first_failed, 0, PROBE_CLIENT);
      /* the server's side would wait for more */
      (void) g_socket_shutdown (client_socket, TRUE, TRUE, NULL);
    }
  server_error = g_thread_join (thread);

  /* the side that failed first says why; the other one lost its peer */
  if (server_error != NULL && (client_error == NULL || probe.first_failed == PROBE_SERVER))
    {
      g_propagate_error (error, g_steal_pointer (&server_error));
      return FALSE;
    }
  if (client_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&client_error));
      return FALSE;
    }
  return TRUE;
}

/* The certificate and key files of tls-certificate and tls-key, or of
 * elbusd's --tls-certificate and --tls-key (@certificate_setting and
 * @key_setting name them in the messages): without @key_file the
 * certificate file holds the key too. Not a device or a FIFO, which could
 * be read without end; holding a certificate and a private key. @culprit
 * (nullable) tells which file an error is about. Whether the key belongs
 * to the certificate is elbusd_tls_certificate_check_key()'s question. */
GTlsCertificate *
elbusd_tls_certificate_load (const char     *certificate_file,
                             const char     *key_file,
                             const char     *certificate_setting,
                             const char     *key_setting,
                             ElbusdTlsFile  *culprit,
                             GError        **error)
{
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *key_pem = NULL;
  ElbusdTlsFile unused;

  g_return_val_if_fail (certificate_file != NULL, NULL);

  if (culprit == NULL)
    culprit = &unused;
  *culprit = ELBUSD_TLS_FILE_CERTIFICATE;

  /* (a missing file is the loader's to say) */
  if (g_file_test (certificate_file, G_FILE_TEST_EXISTS) &&
      !g_file_test (certificate_file, G_FILE_TEST_IS_REGULAR))
    {
      /* Translators: a setting (tls-certificate or --tls-certificate, …), a file */
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, _("%s: %s is not a file"),
                   certificate_setting, certificate_file);
      return NULL;
    }
  if (key_file != NULL &&
      g_file_test (key_file, G_FILE_TEST_EXISTS) &&
      !g_file_test (key_file, G_FILE_TEST_IS_REGULAR))
    {
      *culprit = ELBUSD_TLS_FILE_KEY;
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, _("%s: %s is not a file"),
                   key_setting, key_file);
      return NULL;
    }

  if (key_file != NULL)
    certificate = g_tls_certificate_new_from_files (certificate_file, key_file, &local_error);
  else
    certificate = g_tls_certificate_new_from_file (certificate_file, &local_error);
  if (certificate == NULL)
    {
      if (key_file != NULL)
        g_set_error (error, local_error->domain, local_error->code,
                     /* Translators: tls-certificate or an option, files, why */
                     _("%s: cannot load %s with the key %s: %s"),
                     certificate_setting, certificate_file, key_file, local_error->message);
      else
        g_set_error (error, local_error->domain, local_error->code,
                     _("%s: cannot load %s: %s"),
                     certificate_setting, certificate_file, local_error->message);
      return NULL;
    }

  g_object_get (certificate, "private-key-pem", &key_pem, NULL);
  if (key_pem == NULL)
    {
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                   /* Translators: tls-certificate, a file, tls-key; or the options */
                   _("%s: %s holds no private key: name its file in %s"),
                   certificate_setting, certificate_file, key_setting);
      return NULL;
    }

  return g_steal_pointer (&certificate);
}

/* Whether @certificate's key is the one its certificate was made for (see
 * check_tls_key()); the error begins with @certificate_setting and names
 * the files @certificate was loaded from. Not part of loading: the
 * handshake starts GLib's worker threads, which elbusd must not have
 * before it daemonizes. */
gboolean
elbusd_tls_certificate_check_key (GTlsCertificate  *certificate,
                                  const char       *certificate_file,
                                  const char       *key_file,
                                  const char       *certificate_setting,
                                  GError          **error)
{
  g_autoptr(GError) local_error = NULL;

  g_return_val_if_fail (G_IS_TLS_CERTIFICATE (certificate), FALSE);

  if (check_tls_key (certificate, &local_error))
    return TRUE;

  g_set_error (error, local_error->domain, local_error->code,
               /* Translators: tls-certificate or an option, key file, certificate file, why */
               _("%s: the key in %s does not work with the certificate %s: %s"),
               certificate_setting, key_file != NULL ? key_file : certificate_file,
               certificate_file, local_error->message);
  return FALSE;
}

/* tls-certificate and tls-key: the files are read now, so that a file that
 * cannot be used is a bad configuration (at start, and on SIGHUP, where
 * the certificate in force stays). wss:// in listen needs them. With
 * ELBUSD_CONFIG_TLS_ELSEWHERE the certificate is elbusd's
 * --tls-certificate: neither is read, and wss:// needs neither. */
static gboolean
load_tls_certificate (Parser        *p,
                      const char    *group,
                      ElbusdConfig  *config,
                      GError       **error)
{
  g_autoptr(GError) local_error = NULL;
  guint line = key_line (p, group, "tls-certificate");
  ElbusdTlsFile culprit;

  if (config->tls_certificate_file == NULL)
    {
      if (config->tls_key_file != NULL)
        return fail_at (p, key_line (p, group, "tls-key"), error,
                        _("tls-key without tls-certificate"));
      for (guint i = 0; config->listen != NULL && config->listen[i] != NULL &&
                        !(p->flags & ELBUSD_CONFIG_TLS_ELSEWHERE); i++)
        if (g_str_has_prefix (config->listen[i], "wss://"))
          return fail_at (p, key_line (p, group, "listen"), error,
                          _("listen: %s needs tls-certificate and tls-key"),
                          config->listen[i]);
      return TRUE;
    }

  config->tls_certificate_line = line;
  if (p->flags & ELBUSD_CONFIG_TLS_ELSEWHERE)
    return TRUE;

  config->tls_certificate = elbusd_tls_certificate_load (config->tls_certificate_file,
                                                         config->tls_key_file,
                                                         "tls-certificate", "tls-key",
                                                         &culprit, &local_error);
  if (config->tls_certificate == NULL)
    return fail_at (p, culprit == ELBUSD_TLS_FILE_KEY ? key_line (p, group, "tls-key") : line,
                    error, "%s", local_error->message);

  return TRUE;
}

static gboolean
parse_server_group (Parser        *p,
                    GKeyFile      *keyfile,
                    const char    *group,
                    ElbusdConfig  *config,
                    GError       **error)
{
  g_auto(GStrv) keys = g_key_file_get_keys (keyfile, group, NULL, NULL);

  for (guint i = 0; keys != NULL && keys[i] != NULL; i++)
    {
      const char *key = keys[i];
      guint line = key_line (p, group, key);
      ElbusdLimit limit;

      if (elbusd_limit_lookup (key, &limit))
        {
          g_autoptr(GError) local_error = NULL;
          g_autofree char *text = get_string (p, keyfile, group, key, error);

          if (text == NULL)
            return FALSE;
          if (!elbusd_limit_parse (limit, text, &config->limits.value[limit], &local_error))
            return fail_at (p, line, error, "%s: %s", key, local_error->message);
          config->limits.set[limit] = TRUE;
        }
      else if (g_str_equal (key, "listen"))
        {
          g_auto(GStrv) addresses = get_list (p, keyfile, group, key, error);
          g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();

          if (addresses == NULL)
            return FALSE;
          if (addresses[0] == NULL)
            return fail_at (p, line, error, _("listen: no address"));

          for (guint j = 0; addresses[j] != NULL; j++)
            {
              const char *address = addresses[j];

              if (g_str_has_prefix (address, "fifo:"))
                {
                  g_autofree char *path = NULL;
                  g_autofree char *fifo = NULL;

                  if (address[strlen ("fifo:")] == '\0')
                    return fail_at (p, line, error, _("listen: “fifo:” without a path"));
                  path = resolve_path (p, address + strlen ("fifo:"));
                  fifo = g_strconcat ("fifo:", path, NULL);
                  g_strv_builder_add (builder, fifo);
                }
              else if (g_str_has_prefix (address, "ws://") ||
                       g_str_has_prefix (address, "wss://"))
                g_strv_builder_add (builder, address);
              else if (elbus_address_is_unix (address) || g_str_has_prefix (address, "./") ||
                       g_str_has_prefix (address, "../"))
                {
                  g_autofree char *path = resolve_path (p, address);

                  g_strv_builder_add (builder, path);
                }
              else if (strrchr (address, ':') == NULL)
                return fail_at (p, line, error,
                                _("listen: “%s” is neither a UNIX socket path, HOST:PORT, ws://HOST:PORT/PATH, wss://HOST:PORT/PATH nor fifo:PATH"),
                                address);
              else
                g_strv_builder_add (builder, address);
            }

          g_clear_pointer (&config->listen, g_strfreev);
          config->listen = g_strv_builder_end (builder);
        }
      else if (g_str_equal (key, "pid-file"))
        {
          g_autofree char *path = get_string (p, keyfile, group, key, error);

          if (path == NULL)
            return FALSE;
          if (*path == '\0')
            return fail_at (p, line, error, _("pid-file: empty"));
          g_free (config->pid_file);
          config->pid_file = resolve_path (p, path);
        }
      else if (g_str_equal (key, "verbose"))
        {
          if (!get_boolean (p, keyfile, group, key, &config->verbose, error))
            return FALSE;
        }
      else if (g_str_equal (key, "log-syslog"))
        {
          if (!get_boolean (p, keyfile, group, key, &config->log_syslog, error))
            return FALSE;
        }
      else if (g_str_equal (key, "force-register"))
        {
          if (!get_boolean (p, keyfile, group, key, &config->force_register, error))
            return FALSE;
        }
      else if (g_str_equal (key, "tls-certificate") || g_str_equal (key, "tls-key"))
        {
          g_autofree char *path = get_string (p, keyfile, group, key, error);

          if (path == NULL)
            return FALSE;
          if (*path == '\0')
            return fail_at (p, line, error, _("%s: empty"), key);
          if (g_str_equal (key, "tls-certificate"))
            {
              g_free (config->tls_certificate_file);
              config->tls_certificate_file = resolve_path (p, path);
            }
          else
            {
              g_free (config->tls_key_file);
              config->tls_key_file = resolve_path (p, path);
            }
        }
      else
        {
          return fail_at (p, line, error, _("unknown key “%s” in [%s]"), key, group);
        }
    }

  return load_tls_certificate (p, group, config, error);
}

/* ---- [client NAME] ------------------------------------------------------------- */

static const struct {
  const char *name;       /* the key for its masks, and its name in deny= */
  ElbusPolicyOp op;
} policy_ops[] = {
  { "message", ELBUS_POLICY_OP_MESSAGE },
  { "broadcast", ELBUS_POLICY_OP_BROADCAST },
  { "publish", ELBUS_POLICY_OP_PUBLISH },
  { "subscribe", ELBUS_POLICY_OP_SUBSCRIBE },
};

static gboolean
lookup_op (const char    *name,
           ElbusPolicyOp *op)
{
  for (gsize i = 0; i < G_N_ELEMENTS (policy_ops); i++)
    {
      if (g_str_equal (name, policy_ops[i].name))
        {
          *op = policy_ops[i].op;
          return TRUE;
        }
    }

  return FALSE;
}

/* A user or group: a number, or a name for getpwnam()/getgrnam(). */
static gboolean
parse_id (Parser      *p,
          guint        line,
          const char  *key,
          const char  *text,
          gboolean     is_user,
          guint32     *id,
          GError     **error)
{
  guint64 number;

  if (g_ascii_isdigit (text[0]))
    {
      if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT32 - 1, &number, NULL))
        return fail_at (p, line, error,
                        is_user ? _("%s: “%s” is not a valid user id")
                                : _("%s: “%s” is not a valid group id"),
                        key, text);
      *id = (guint32) number;
      return TRUE;
    }

  if (is_user)
    {
      struct passwd *pw = getpwnam (text);

      if (pw == NULL)
        return fail_at (p, line, error, _("%s: unknown user “%s”"), key, text);
      *id = pw->pw_uid;
    }
  else
    {
      struct group *gr = getgrnam (text);

      if (gr == NULL)
        return fail_at (p, line, error, _("%s: unknown group “%s”"), key, text);
      *id = gr->gr_gid;
    }

  return TRUE;
}

static gboolean
parse_client_group (Parser             *p,
                    GKeyFile           *keyfile,
                    const char         *group,
                    ElbusClientPolicy  *policy,
                    GError            **error)
{
  g_auto(GStrv) keys = g_key_file_get_keys (keyfile, group, NULL, NULL);
  gboolean denied[G_N_ELEMENTS (policy_ops)] = { FALSE, };

  for (guint i = 0; keys != NULL && keys[i] != NULL; i++)
    {
      const char *key = keys[i];
      guint line = key_line (p, group, key);
      ElbusPolicyOp op;

      if (lookup_op (key, &op))
        {
          g_auto(GStrv) masks = get_list (p, keyfile, group, key, error);

          if (masks == NULL)
            return FALSE;

          /* nothing listed: nothing allowed */
          if (masks[0] == NULL)
            denied[op] = TRUE;
          for (guint j = 0; masks[j] != NULL; j++)
            elbus_client_policy_allow (policy, op, masks[j]);
        }
      else if (g_str_equal (key, "deny"))
        {
          g_auto(GStrv) ops = get_list (p, keyfile, group, key, error);

          if (ops == NULL)
            return FALSE;
          for (guint j = 0; ops[j] != NULL; j++)
            {
              if (!lookup_op (ops[j], &op))
                return fail_at (p, line, error,
                                _("deny: unknown operation “%s” (known: message, broadcast, publish, subscribe)"),
                                ops[j]);
              denied[op] = TRUE;
            }
        }
      else if (g_str_equal (key, "networks"))
        {
          g_auto(GStrv) networks = get_list (p, keyfile, group, key, error);

          if (networks == NULL)
            return FALSE;
          if (networks[0] == NULL)
            return fail_at (p, line, error, _("networks: no network"));
          for (guint j = 0; networks[j] != NULL; j++)
            {
              g_autoptr(GError) local_error = NULL;

              if (!elbus_client_policy_add_network (policy, networks[j], &local_error))
                return fail_at (p, line, error, "networks: %s", local_error->message);
            }
        }
      else if (g_str_equal (key, "uids") || g_str_equal (key, "gids"))
        {
          gboolean is_user = g_str_equal (key, "uids");
          g_auto(GStrv) ids = get_list (p, keyfile, group, key, error);

          if (ids == NULL)
            return FALSE;
          if (ids[0] == NULL)
            return fail_at (p, line, error,
                            is_user ? _("uids: no user") : _("gids: no group"));
          for (guint j = 0; ids[j] != NULL; j++)
            {
              guint32 id = 0;

              if (!parse_id (p, line, key, ids[j], is_user, &id, error))
                return FALSE;
              if (is_user)
                elbus_client_policy_add_uid (policy, id);
              else
                elbus_client_policy_add_gid (policy, id);
            }
        }
      else if (g_str_equal (key, "monitor"))
        {
          gboolean monitor;

          if (!get_boolean (p, keyfile, group, key, &monitor, error))
            return FALSE;
          elbus_client_policy_set_monitor (policy, monitor);
        }
      else
        {
          return fail_at (p, line, error, _("unknown key “%s” in [%s]"), key, group);
        }
    }

  /* Last, whatever the order of the keys: deny= wins over the masks
   * (elbus_client_policy_deny() drops the masks allowed before it). */
  for (gsize i = 0; i < G_N_ELEMENTS (policy_ops); i++)
    if (denied[policy_ops[i].op])
      elbus_client_policy_deny (policy, policy_ops[i].op);

  return TRUE;
}

/* The NAME of a [client NAME] header: a primary client name. */
static gboolean
check_client_name (Parser      *p,
                   const char  *group,
                   const char  *name,
                   GError     **error)
{
  guint line = group_line (p, group);

  if (*name == '\0')
    return fail_at (p, line, error, _("[client] needs a client name: [client NAME]"));
  if (name[0] == '.')
    return fail_at (p, line, error,
                    _("[%s]: names starting with “.” belong to the broker"), group);
  if (strstr (name, "%%") != NULL)
    return fail_at (p, line, error,
                    _("[%s]: secondary names (NAME%%%%SUFFIX) share the entry of their primary NAME"),
                    group);

  return TRUE;
}

/* ---- the file ------------------------------------------------------------------ */

ElbusdConfig *
elbusd_config_load (const char         *path,
                    ElbusdConfigFlags   flags,
                    GError            **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *text = NULL;
  gsize length;

  g_return_val_if_fail (path != NULL, NULL);

  if (!g_file_get_contents (path, &text, &length, &local_error))
    {
      g_set_error (error, local_error->domain, local_error->code,
                   _("cannot read the configuration file: %s"), local_error->message);
      return NULL;
    }

  return elbusd_config_load_data (path, text, length, flags, error);
}

/* As elbusd_config_load(), from @length bytes of @text (not necessarily
 * NUL-terminated) said to come from @path: relative paths in it are taken
 * from @path's directory. */
ElbusdConfig *
elbusd_config_load_data (const char         *path,
                         const char         *text,
                         gsize               length,
                         ElbusdConfigFlags   flags,
                         GError            **error)
{
  g_autoptr(ElbusdConfig) config = g_new0 (ElbusdConfig, 1);
  g_autoptr(GKeyFile) keyfile = g_key_file_new ();
  g_autoptr(GError) local_error = NULL;
  g_autofree char *absolute = NULL;
  g_auto(GStrv) groups = NULL;
  Parser p = { 0 };
  gboolean ok = FALSE;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (text != NULL || length == 0, NULL);

  config->path = g_strdup (path);

  absolute = g_canonicalize_filename (path, NULL);
  p.path = path;
  p.flags = flags;
  p.dir = g_path_get_dirname (absolute);
  p.lines = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  if (!scan_lines (&p, text, length, error))
    goto out;

  if (!g_key_file_load_from_data (keyfile, text, length, G_KEY_FILE_NONE, &local_error))
    {
      fail_at (&p, 0, error, "%s", local_error->message);
      goto out;
    }

  groups = g_key_file_get_groups (keyfile, NULL);
  for (guint i = 0; groups[i] != NULL; i++)
    {
      const char *group = groups[i];

      if (g_str_equal (group, "elbusd"))
        {
          if (!parse_server_group (&p, keyfile, group, config, error))
            goto out;
        }
      else if (g_str_equal (group, "client") ||
               g_str_has_prefix (group, CLIENT_GROUP_PREFIX))
        {
          g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
          g_autofree char *name = g_strdup (group + MIN (strlen (group), strlen (CLIENT_GROUP_PREFIX)));

          g_strstrip (name);
          if (!check_client_name (&p, group, name, error))
            goto out;
          if (config->policy != NULL && g_hash_table_contains (config->policy, name))
            {
              fail_at (&p, group_line (&p, group), error,
                       _("a second entry for client “%s”"), name);
              goto out;
            }
          if (!parse_client_group (&p, keyfile, group, policy, error))
            goto out;

          if (config->policy == NULL)
            config->policy = g_hash_table_new_full (g_str_hash, g_str_equal,
                                                    g_free, g_object_unref);
          g_hash_table_insert (config->policy, g_steal_pointer (&name),
                               g_steal_pointer (&policy));
        }
      else
        {
          fail_at (&p, group_line (&p, group), error,
                   _("unknown group [%s] (known: [elbusd] and [client NAME])"), group);
          goto out;
        }
    }

  ok = TRUE;

out:
  g_free (p.dir);
  g_hash_table_unref (p.lines);

  return ok ? g_steal_pointer (&config) : NULL;
}

void
elbusd_config_free (ElbusdConfig *config)
{
  if (config == NULL)
    return;

  g_free (config->path);
  g_strfreev (config->listen);
  g_free (config->pid_file);
  g_free (config->tls_certificate_file);
  g_free (config->tls_key_file);
  g_clear_object (&config->tls_certificate);
  g_clear_pointer (&config->policy, g_hash_table_unref);
  g_free (config);
}

/* The number of [client NAME] entries. */
guint
elbusd_config_count_clients (const ElbusdConfig *config)
{
  return config->policy != NULL ? g_hash_table_size (config->policy) : 0;
}

/* Whether a client named @name (a full name: a secondary's is looked up
 * by its primary) may stay connected under @config's policy. */
gboolean
elbusd_config_allows_name (const ElbusdConfig *config,
                           const char         *name)
{
  const char *split;
  g_autofree char *primary = NULL;

  if (config->policy == NULL)
    return TRUE;

  split = strstr (name, "%%");
  primary = split != NULL ? g_strndup (name, split - name) : g_strdup (name);

  return g_hash_table_contains (config->policy, primary);
}

/* Puts @config's policy in force on @broker (none when the file has no
 * [client NAME] group). It applies to connections made from now on. */
void
elbusd_config_apply_policy (const ElbusdConfig *config,
                            ElbusBroker        *broker)
{
  elbus_broker_set_policy (broker, config->policy);
}

/* Whether the key of @config's certificate belongs to it (TRUE without a
 * certificate), tried in a TLS handshake; the error names the file and
 * the line of tls-certificate, as a bad file's does. Not part of loading:
 * the handshake starts GLib's worker threads, which elbusd must not have
 * before it daemonizes. */
gboolean
elbusd_config_check_tls_key (const ElbusdConfig  *config,
                             GError             **error)
{
  g_autoptr(GError) local_error = NULL;

  if (config->tls_certificate == NULL ||
      elbusd_tls_certificate_check_key (config->tls_certificate, config->tls_certificate_file,
                                        config->tls_key_file, "tls-certificate", &local_error))
    return TRUE;

  g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s:%u: %s",
               config->path, config->tls_certificate_line, local_error->message);
  return FALSE;
}

/* SPDX-License-Identifier: MIT */
/*
 * elbus-bridge: joins an elbus broker to an MQTT broker, so that brokers on
 * several machines share topics through it.
 *
 *   elbus-bridge PATH --mqtt HOST:PORT [--export MASK]… [--import MASK]…
 *                [--prefix PREFIX] [--mqtt-qos 0|1|2] [--retain] …
 *
 * The work is ElbusMqttBridge's (elbus/elbus-mqtt-bridge.c); this file
 * reads the command line and the configuration file, reloads the rules on
 * SIGHUP and exits on SIGINT/SIGTERM. docs/man/elbus-bridge.1 documents
 * the options and the configuration file; keep the two in step.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib-unix.h>

#include <elbus/elbus.h>

#include "elbus-tool-util.h"

/* Exit statuses (the man page lists them too): EXIT_ERROR (the MQTT broker
 * refused the credentials) and EXIT_USAGE (a bad command line or
 * configuration file) as the other tools, and: */
#define EXIT_OK 0   /* SIGINT or SIGTERM */

#define CONFIG_GROUP "bridge"
#define RULE_GROUP_PREFIX "rule "

typedef struct {
  char *mqtt;
  char **exports;
  char **imports;
  char *prefix;
  char *name;
  int qos;
  gboolean retain;
  int queue_size;
  char *client_id;
  char *origin;
  char *username;
  char *password_file;
  char *tls_ca;
  char *tls_cert;
  char *tls_key;
  char *config;
  gboolean verbose;
  gboolean version;
} Options;

/* -1: not given */
static Options opts = { .qos = -1, .queue_size = -1 };

static const GOptionEntry rule_entries[] = {
  { "mqtt", 0, 0, G_OPTION_ARG_STRING, &opts.mqtt,
    N_("The MQTT broker, HOST:PORT (port 1883 when left out)"), N_("HOST:PORT") },
  { "export", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opts.exports,
    N_("Publish local publications whose topic matches MASK to MQTT as PREFIX/TOPIC; "
       "repeatable"), N_("MASK") },
  { "import", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opts.imports,
    N_("Publish MQTT messages on PREFIX/MASK on the local broker, without the prefix; "
       "repeatable"), N_("MASK") },
  { "prefix", 0, 0, G_OPTION_ARG_STRING, &opts.prefix,
    N_("The first MQTT topic levels (default elbus; may be empty)"), N_("PREFIX") },
  { NULL }
};

static const GOptionEntry main_entries[] = {
  { "name", 'n', 0, G_OPTION_ARG_STRING, &opts.name,
    N_("Client name on the local broker (default elbus-bridge.HOSTNAME)"), N_("NAME") },
  { "mqtt-qos", 0, 0, G_OPTION_ARG_INT, &opts.qos,
    N_("MQTT QoS of exports and imports: 0, 1 or 2 (default 0); 1 and 2 also keep a "
       "persistent session"), N_("QOS") },
  { "retain", 0, 0, G_OPTION_ARG_NONE, &opts.retain,
    N_("Export with MQTT's retain flag"), NULL },
  { "queue-size", 0, 0, G_OPTION_ARG_INT, &opts.queue_size,
    N_("Exports held while MQTT is away (default 10000); the oldest are dropped beyond"),
    N_("N") },
  { "client-id", 0, 0, G_OPTION_ARG_STRING, &opts.client_id,
    N_("MQTT client identifier (default NAME@HOSTNAME)"), N_("ID") },
  { "origin", 0, 0, G_OPTION_ARG_STRING, &opts.origin,
    N_("Identity of the local bus in exports (default HOSTNAME:PATH)"), N_("ID") },
  { "username", 0, 0, G_OPTION_ARG_STRING, &opts.username,
    N_("MQTT user name"), N_("USER") },
  { "password-file", 0, 0, G_OPTION_ARG_FILENAME, &opts.password_file,
    N_("Read the MQTT password from the first line of FILE"), N_("FILE") },
  { "tls-ca", 0, 0, G_OPTION_ARG_FILENAME, &opts.tls_ca,
    N_("Connect with TLS; the broker's certificate must be signed by the CA in FILE"),
    N_("FILE") },
  { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &opts.tls_cert,
    N_("TLS client certificate (with --tls-key)"), N_("FILE") },
  { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &opts.tls_key,
    N_("Private key of the TLS client certificate"), N_("FILE") },
  { "config", 0, 0, G_OPTION_ARG_FILENAME, &opts.config,
    N_("Read settings and rules from FILE (reloaded on SIGHUP)"), N_("FILE") },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opts.verbose, N_("Debug logging"), NULL },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opts.version, N_("Print the version and exit"), NULL },
  { NULL }
};

static void
options_clear (void)
{
  g_clear_pointer (&opts.mqtt, g_free);
  g_clear_pointer (&opts.exports, g_strfreev);
  g_clear_pointer (&opts.imports, g_strfreev);
  g_clear_pointer (&opts.prefix, g_free);
  g_clear_pointer (&opts.name, g_free);
  g_clear_pointer (&opts.client_id, g_free);
  g_clear_pointer (&opts.origin, g_free);
  g_clear_pointer (&opts.username, g_free);
  g_clear_pointer (&opts.password_file, g_free);
  g_clear_pointer (&opts.tls_ca, g_free);
  g_clear_pointer (&opts.tls_cert, g_free);
  g_clear_pointer (&opts.tls_key, g_free);
  g_clear_pointer (&opts.config, g_free);
}

/* ---- the configuration file ------------------------------------------ */

/* Settings from [bridge] and the rules of every [rule NAME] group. The
 * command line's values win; rules of both apply. */
typedef struct {
  GKeyFile *file;
  GPtrArray *exports;     /* (element-type utf8) */
  GPtrArray *imports;     /* (element-type utf8) */
} Config;

static void
config_clear (Config *config)
{
  g_clear_pointer (&config->file, g_key_file_unref);
  g_clear_pointer (&config->exports, g_ptr_array_unref);
  g_clear_pointer (&config->imports, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Config, config_clear)

static void
add_list (GKeyFile   *file,
          const char *group,
          const char *key,
          GPtrArray  *into)
{
  g_auto(GStrv) values = g_key_file_get_string_list (file, group, key, NULL, NULL);

  for (guint i = 0; values != NULL && values[i] != NULL; i++)
    g_ptr_array_add (into, g_strstrip (g_strdup (values[i])));
}

static gboolean
config_load (Config      *config,
             const char  *path,
             GError     **error)
{
  g_auto(GStrv) groups = NULL;

  config->file = g_key_file_new ();
  config->exports = g_ptr_array_new_with_free_func (g_free);
  config->imports = g_ptr_array_new_with_free_func (g_free);
  if (path == NULL)
    return TRUE;
  if (!g_key_file_load_from_file (config->file, path, G_KEY_FILE_NONE, error))
    {
      g_prefix_error (error, _("cannot read the configuration file “%s”: "), path);
      return FALSE;
    }

  groups = g_key_file_get_groups (config->file, NULL);
  for (guint i = 0; groups[i] != NULL; i++)
    {
      if (strcmp (groups[i], CONFIG_GROUP) != 0 &&
          !g_str_has_prefix (groups[i], RULE_GROUP_PREFIX))
        {
          g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
                       _("%s: unknown group [%s] (known: [bridge], [rule NAME])"), path,
                       groups[i]);
          return FALSE;
        }
      add_list (config->file, groups[i], "export", config->exports);
      add_list (config->file, groups[i], "import", config->imports);
    }
  return TRUE;
}

static char *
config_string (Config     *config,
               const char *given,
               const char *key)
{
  if (given != NULL)
    return g_strdup (given);
  return g_key_file_get_string (config->file, CONFIG_GROUP, key, NULL);
}

static gboolean
config_int (Config      *config,
            int          given,
            const char  *key,
            int          fallback,
            int         *out,
            GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  int value;

  if (given >= 0 || !g_key_file_has_key (config->file, CONFIG_GROUP, key, NULL))
    {
      *out = given >= 0 ? given : fallback;
      return TRUE;
    }
  value = g_key_file_get_integer (config->file, CONFIG_GROUP, key, &local_error);
  if (local_error != NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s: %s", key,
                   local_error->message);
      return FALSE;
    }
  *out = value;
  return TRUE;
}

/* The first line of @path, without its line end. */
static char *
read_password (const char  *path,
               GError     **error)
{
  g_autofree char *contents = NULL;

  if (!g_file_get_contents (path, &contents, NULL, error))
    {
      g_prefix_error (error, _("cannot read the password file: "));
      return NULL;
    }
  contents[strcspn (contents, "\r\n")] = '\0';
  return g_steal_pointer (&contents);
}

/* ---- the bridge ------------------------------------------------------- */

typedef struct {
  GMainLoop *loop;
  ElbusMqttBridge *bridge;
  const char *path;
  int status;
} Bridge;

/* The command line's and the configuration file's rules into @bridge. */
static gboolean
apply_rules (ElbusMqttBridge  *bridge,
             Config           *config,
             GError          **error)
{
  for (guint i = 0; opts.exports != NULL && opts.exports[i] != NULL; i++)
    if (!elbus_mqtt_bridge_add_export (bridge, opts.exports[i], error))
      return FALSE;
  for (guint i = 0; opts.imports != NULL && opts.imports[i] != NULL; i++)
    if (!elbus_mqtt_bridge_add_import (bridge, opts.imports[i], error))
      return FALSE;
  for (guint i = 0; i < config->exports->len; i++)
    if (!elbus_mqtt_bridge_add_export (bridge, g_ptr_array_index (config->exports, i), error))
      return FALSE;
  for (guint i = 0; i < config->imports->len; i++)
    if (!elbus_mqtt_bridge_add_import (bridge, g_ptr_array_index (config->imports, i), error))
      return FALSE;
  return TRUE;
}

static gboolean
check_rules (Config  *config,
             GError **error)
{
  g_autoptr(ElbusMqttBridge) scratch = elbus_mqtt_bridge_new ("-", "-", "-");

  if (!apply_rules (scratch, config, error))
    return FALSE;
  if ((opts.exports == NULL || opts.exports[0] == NULL) &&
      (opts.imports == NULL || opts.imports[0] == NULL) &&
      config->exports->len == 0 && config->imports->len == 0)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           _("nothing to bridge: give --export or --import masks"));
      return FALSE;
    }
  return TRUE;
}

static ElbusMqttBridge *
bridge_new (const char  *path,
            GError     **error)
{
  g_auto(Config) config = { 0 };
  g_autoptr(ElbusMqttBridge) bridge = NULL;
  g_autofree char *mqtt = NULL;
  g_autofree char *name = NULL;
  g_autofree char *prefix = NULL;
  g_autofree char *client_id = NULL;
  g_autofree char *origin = NULL;
  g_autofree char *username = NULL;
  g_autofree char *password_file = NULL;
  g_autofree char *password = NULL;
  g_autofree char *tls_ca = NULL;
  g_autofree char *tls_cert = NULL;
  g_autofree char *tls_key = NULL;
  int qos;
  int queue_size;
  gboolean retain = opts.retain;

  if (!config_load (&config, opts.config, error))
    return NULL;

  mqtt = config_string (&config, opts.mqtt, "mqtt");
  if (mqtt == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           _("which MQTT broker? give --mqtt HOST:PORT"));
      return NULL;
    }
  name = config_string (&config, opts.name, "name");
  if (name == NULL)
    name = g_strdup_printf ("elbus-bridge.%s", g_get_host_name ());
  prefix = config_string (&config, opts.prefix, "prefix");
  client_id = config_string (&config, opts.client_id, "client-id");
  origin = config_string (&config, opts.origin, "origin");
  username = config_string (&config, opts.username, "username");
  password_file = config_string (&config, opts.password_file, "password-file");
  tls_ca = config_string (&config, opts.tls_ca, "tls-ca");
  tls_cert = config_string (&config, opts.tls_cert, "tls-cert");
  tls_key = config_string (&config, opts.tls_key, "tls-key");
  if (!retain)
    retain = g_key_file_get_boolean (config.file, CONFIG_GROUP, "retain", NULL);
  if (!config_int (&config, opts.qos, "mqtt-qos", 0, &qos, error) ||
      !config_int (&config, opts.queue_size, "queue-size",
                   ELBUS_MQTT_BRIDGE_DEFAULT_QUEUE_SIZE, &queue_size, error))
    return NULL;
  if (qos < 0 || qos > 2)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--mqtt-qos must be 0, 1 or 2, not %d"), qos);
      return NULL;
    }
  if (queue_size < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--queue-size must not be negative"));
      return NULL;
    }
  if (password_file != NULL && username == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           _("--password-file needs --username"));
      return NULL;
    }
  if (password_file != NULL && (password = read_password (password_file, error)) == NULL)
    return NULL;
  if (!check_rules (&config, error))
    return NULL;

  bridge = elbus_mqtt_bridge_new (path, name, mqtt);
  g_object_set (bridge, "mqtt-qos", qos, "retain", retain, "queue-size", (guint) queue_size,
                NULL);
  if (prefix != NULL)
    g_object_set (bridge, "prefix", prefix, NULL);
  if (client_id != NULL)
    g_object_set (bridge, "client-id", client_id, NULL);
  if (origin != NULL)
    g_object_set (bridge, "origin", origin, NULL);
  elbus_mqtt_bridge_set_credentials (bridge, username, password);
  if (password != NULL)
    memset (password, 0, strlen (password));
  elbus_mqtt_bridge_set_tls (bridge, tls_ca, tls_cert, tls_key);
  if (!apply_rules (bridge, &config, error))
    return NULL;

  return g_steal_pointer (&bridge);
}

static gboolean
quit_cb (gpointer user_data)
{
  Bridge *self = user_data;

  g_info ("%s", _("stopping"));
  g_main_loop_quit (self->loop);
  return G_SOURCE_CONTINUE;
}

/* SIGHUP: the rules again, from the command line and the file. Other
 * settings take a restart. */
static gboolean
reload_cb (gpointer user_data)
{
  Bridge *self = user_data;
  g_auto(Config) config = { 0 };
  g_autoptr(GError) error = NULL;

  if (!config_load (&config, opts.config, &error) || !check_rules (&config, &error))
    {
      g_warning (_("configuration not reloaded: %s"), error->message);
      return G_SOURCE_CONTINUE;
    }
  elbus_mqtt_bridge_clear_rules (self->bridge);
  if (!apply_rules (self->bridge, &config, &error))
    g_warning (_("configuration not reloaded: %s"), error->message);
  else
    g_message ("%s", _("rules reloaded"));
  return G_SOURCE_CONTINUE;
}

static void
failed_cb (ElbusMqttBridge *bridge,
           GError          *error,
           gpointer         user_data)
{
  Bridge *self = user_data;

  self->status = elbus_tool_fail (EXIT_ERROR, "%s", error->message);
  g_main_loop_quit (self->loop);
}

static int
bridge_run (Bridge *self)
{
  g_autoptr(GError) error = NULL;
  guint sigint;
  guint sigterm;
  guint sighup;

  self->bridge = bridge_new (self->path, &error);
  if (self->bridge == NULL)
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  g_signal_connect (self->bridge, "failed", G_CALLBACK (failed_cb), self);
  if (!elbus_mqtt_bridge_start (self->bridge, &error))
    {
      g_clear_object (&self->bridge);
      return elbus_tool_fail (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED) ?
                              EXIT_ERROR : EXIT_USAGE, "%s", error->message);
    }

  self->status = EXIT_OK;
  sigint = g_unix_signal_add (SIGINT, quit_cb, self);
  sigterm = g_unix_signal_add (SIGTERM, quit_cb, self);
  sighup = g_unix_signal_add (SIGHUP, reload_cb, self);
  g_main_loop_run (self->loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_source_remove (sighup);

  elbus_mqtt_bridge_stop (self->bridge);
  g_clear_object (&self->bridge);
  return self->status;
}

/* ---- main ------------------------------------------------------------- */

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  Bridge bridge = { 0 };
  int status;

  elbus_tool_init_i18n ();
  g_set_prgname ("elbus-bridge");

  context = g_option_context_new (_("PATH — join an elbus broker to an MQTT broker"));
  g_option_context_add_main_entries (context, rule_entries, GETTEXT_PACKAGE);
  g_option_context_add_main_entries (context, main_entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Connects to the elbus broker at PATH (a UNIX socket path, HOST:PORT, or "
      "ws://HOST:PORT/PATH or wss://HOST:PORT/PATH for WebSocket, wss:// trusting the CA "
      "certificates in the file ELBUS_TLS_CA_FILE names, or else the system's) and to an MQTT "
      "broker, and passes publications between them: local ones that match an --export mask "
      "go to MQTT as PREFIX/TOPIC, MQTT messages on PREFIX/MASK for an --import mask are "
      "published locally without the prefix. A message never returns to the bus it came "
      "from. Both sides are reconnected when they go away."));
  g_option_context_set_description (context,
    _("Exit status: 0 when stopped by SIGINT or SIGTERM; 1 when the MQTT broker refuses the "
      "credentials or the client identifier; 2 for a bad command line or configuration "
      "file.\n"
      "\n"
      "Examples:\n"
      "  elbus-bridge /run/elbus.sock --mqtt gateway:1883 --export 'plant/#' --import "
      "'fleet/#'\n"
      "  elbus-bridge /run/elbus.sock --config /etc/elbus/bridge.conf\n"
      "  elbus /run/elbus.sock rpc call elbus-bridge.HOSTNAME bridge.stats"));

  status = elbus_tool_parse_path_command_line (context, &argc, &argv, &opts.version,
                                               _("which broker? usage: elbus-bridge PATH --mqtt HOST:PORT "
                                                 "[OPTION…]; see elbus-bridge --help"));
  if (status >= 0)
    goto out;

  elbus_tool_log_init ("elbus-bridge", ELBUS_TOOL_LOG_AUTO, opts.verbose);

  path = elbus_tool_check_address (argv[1], FALSE, &error);
  if (path == NULL)
    {
      status = elbus_tool_fail (EXIT_USAGE, "%s", error->message);
      goto out;
    }

  bridge.loop = g_main_loop_new (NULL, FALSE);
  bridge.path = path;
  status = bridge_run (&bridge);
  g_main_loop_unref (bridge.loop);

out:
  options_clear ();
  return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for elbusd's configuration file (tools/elbusd-config.c):
 * the input is the file. It is accepted whole, or refused with one error
 * whose message is UTF-8 and names the file; an accepted file applies to a
 * broker (its limits and its policy) without a warning or a critical, holds
 * only absolute paths, and its policy names only primaries that elbusd
 * lets stay, their secondaries too. Checked with abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elbusd-config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

#define CHECK(cond) do { if (!(cond)) { fprintf (stderr, "failed: %s\n", #cond); abort (); } } while (0)

#define PATH "/etc/elbus/elbusd.conf"

static GLogWriterOutput
log_writer (GLogLevelFlags   level,
            const GLogField *fields,
            gsize            n_fields,
            gpointer         user_data)
{
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR | G_LOG_LEVEL_WARNING))
    {
      g_log_writer_standard_streams (level, fields, n_fields, user_data);
      abort ();
    }
  return G_LOG_WRITER_HANDLED;
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  g_log_set_writer_func (log_writer, NULL, NULL);
  return 0;
}

static void
check_config (ElbusdConfig *config)
{
  g_autoptr(ElbusBroker) broker = elbus_broker_new ();
  GHashTableIter iter;
  const char *name;

  CHECK (g_str_equal (config->path, PATH));
  for (guint i = 0; config->listen != NULL && config->listen[i] != NULL; i++)
    CHECK (g_utf8_validate (config->listen[i], -1, NULL));
  CHECK (config->pid_file == NULL || g_path_is_absolute (config->pid_file));

  if (config->policy != NULL)
    {
      g_hash_table_iter_init (&iter, config->policy);
      while (g_hash_table_iter_next (&iter, (gpointer *) &name, NULL))
        {
          g_autofree char *secondary = g_strconcat (name, "%%2", NULL);

          CHECK (name[0] != '\0' && name[0] != '.' && strstr (name, "%%") == NULL);
          CHECK (elbusd_config_allows_name (config, name));
          /* (the first %% splits: a name ending in % has no secondaries) */
          CHECK (g_str_has_suffix (name, "%") || elbusd_config_allows_name (config, secondary));
        }
      CHECK (elbusd_config_count_clients (config) == g_hash_table_size (config->policy));
    }
  else
    CHECK (elbusd_config_allows_name (config, "any.name"));

  elbusd_limits_apply (&config->limits, NULL, broker);
  for (guint i = 0; i < ELBUSD_N_LIMITS; i++)
    if (config->limits.set[i])
      {
        GValue value = G_VALUE_INIT;
        double got;

        g_value_init (&value, G_TYPE_DOUBLE);
        g_object_get_property (G_OBJECT (broker), elbusd_limit_get_name (i), &value);
        got = g_value_get_double (&value);
        CHECK (got == config->limits.value[i]);
      }
  elbusd_config_apply_policy (config, broker);
  CHECK (elbus_broker_get_policy_enabled (broker) == (config->policy != NULL));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusdConfig) config = NULL;

  config = elbusd_config_load_data (PATH, (const char *) data, size, &error);
  if (config == NULL)
    {
      CHECK (error != NULL);
      CHECK (g_utf8_validate (error->message, -1, NULL));
      CHECK (g_str_has_prefix (error->message, PATH ":"));
      return 0;
    }
  CHECK (error == NULL);
  check_config (config);
  return 0;
}

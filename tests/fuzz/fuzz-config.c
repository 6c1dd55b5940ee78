/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for elbusd's configuration file (tools/elbusd-config.c):
 * the input is the file. It is accepted whole, or refused with one error
 * whose message is UTF-8 and names the file; an accepted file applies to a
 * broker (its limits, each as given, and its policy) without a warning or
 * a critical, its pid file is an absolute path, and its policy names only
 * primaries that elbusd lets stay, their secondaries too. Checked with
 * abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elbusd-config.h"

#include "fuzz-util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);


#define PATH "/etc/elbus/elbusd.conf"

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_log_init (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR | G_LOG_LEVEL_WARNING);
  return 0;
}

static void
check_config (ElbusdConfig *config)
{
  g_autoptr(ElbusBroker) broker = elbus_broker_new ();
  GHashTableIter iter;
  const char *name;

  FUZZ_CHECK (g_str_equal (config->path, PATH));
  for (guint i = 0; config->listen != NULL && config->listen[i] != NULL; i++)
    FUZZ_CHECK (g_utf8_validate (config->listen[i], -1, NULL));
  FUZZ_CHECK (config->pid_file == NULL || g_path_is_absolute (config->pid_file));

  if (config->policy != NULL)
    {
      g_hash_table_iter_init (&iter, config->policy);
      while (g_hash_table_iter_next (&iter, (gpointer *) &name, NULL))
        {
          g_autofree char *secondary = g_strconcat (name, "%%2", NULL);

          FUZZ_CHECK (name[0] != '\0' && name[0] != '.' && strstr (name, "%%") == NULL);
          FUZZ_CHECK (elbusd_config_allows_name (config, name));
          /* (the first %% splits: a name ending in % has no secondaries) */
          FUZZ_CHECK (g_str_has_suffix (name, "%") || elbusd_config_allows_name (config, secondary));
        }
      FUZZ_CHECK (elbusd_config_count_clients (config) == g_hash_table_size (config->policy));
    }
  else
    FUZZ_CHECK (elbusd_config_allows_name (config, "any.name"));

  elbusd_limits_apply (&config->limits, NULL, broker);
  for (guint i = 0; i < ELBUSD_N_LIMITS; i++)
    if (config->limits.set[i])
      {
        GValue value = G_VALUE_INIT;
        double got;

        g_value_init (&value, G_TYPE_DOUBLE);
        g_object_get_property (G_OBJECT (broker), elbusd_limit_get_name (i), &value);
        got = g_value_get_double (&value);
        FUZZ_CHECK (got == config->limits.value[i]);
      }
  elbusd_config_apply_policy (config, broker);
  FUZZ_CHECK (elbus_broker_get_policy_enabled (broker) == (config->policy != NULL));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusdConfig) config = NULL;

  config = elbusd_config_load_data (PATH, (const char *) data, size, ELBUSD_CONFIG_NONE, &error);
  if (config == NULL)
    {
      FUZZ_CHECK (error != NULL);
      FUZZ_CHECK (g_utf8_validate (error->message, -1, NULL));
      FUZZ_CHECK (g_str_has_prefix (error->message, PATH ":"));
      return 0;
    }
  FUZZ_CHECK (error == NULL);
  check_config (config);
  return 0;
}

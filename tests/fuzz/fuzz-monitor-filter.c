/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for elbus-monitor's filters
 * (tools/elbus-monitor-filter.c): each line of the input is one option
 * value, its first byte saying which (s --sender, t --target, p --topic,
 * k --kind, m --max-payload, as a number). Lines that are not UTF-8 are
 * dropped, as GOption would refuse them. When the tool accepts the values,
 * the params it builds must be accepted by the broker's monitor.start (an
 * in-process client of a broker made once) with the same filters; when it
 * refuses them, with one G_OPTION_ERROR. Checked with abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elbus-broker-private.h"
#include "elbus-msgpack.h"
#include "elbus-monitor-event.h"
#include "elbus-monitor-filter.h"

#include "fuzz-util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);


static ElbusBroker *broker;
static ElbusClient *client;
static ElbusPeer *peer;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_log_init (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR | G_LOG_LEVEL_WARNING);
  broker = elbus_broker_new ();
  client = elbus_broker_register_client (broker, "fuzz.monitor", NULL);
  peer = g_hash_table_lookup (broker->clients, "fuzz.monitor");
  FUZZ_CHECK (client != NULL && peer != NULL);
  return 0;
}

static char **
strv_or_null (GPtrArray *array)
{
  if (array->len == 0)
    return NULL;
  g_ptr_array_add (array, NULL);
  return (char **) array->pdata;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *text = g_strndup ((const char *) data, size);
  g_auto(GStrv) lines = g_strsplit (text, "\n", 64);
  g_autoptr(GPtrArray) senders = g_ptr_array_new ();
  g_autoptr(GPtrArray) targets = g_ptr_array_new ();
  g_autoptr(GPtrArray) topics = g_ptr_array_new ();
  g_autoptr(GPtrArray) given_kinds = g_ptr_array_new ();
  g_auto(GStrv) kinds = NULL;
  g_autoptr(GVariant) filters = NULL;
  g_autoptr(GBytes) params = NULL;
  g_autoptr(GError) error = NULL;
  gint64 max_payload = -1;
  gboolean ok;

  for (guint i = 0; lines[i] != NULL; i++)
    {
      char *value = lines[i] + (lines[i][0] != '\0');

      if (!g_utf8_validate (lines[i], -1, NULL))
        continue;
      switch (lines[i][0])
        {
        case 's':
          g_ptr_array_add (senders, value);
          break;
        case 't':
          g_ptr_array_add (targets, value);
          break;
        case 'p':
          g_ptr_array_add (topics, value);
          break;
        case 'k':
          g_ptr_array_add (given_kinds, value);
          break;
        case 'm':
          max_payload = g_ascii_strtoull (value, NULL, 10) & G_MAXUINT32;
          break;
        default:
          break;
        }
    }

  if (given_kinds->len > 0)
    {
      kinds = parse_kinds (strv_or_null (given_kinds), &error);
      if (kinds == NULL)
        {
          FUZZ_CHECK (g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE));
          return 0;
        }
      for (guint i = 0; kinds[i] != NULL; i++)
        {
          EventKind k;

          FUZZ_CHECK (kind_from_string (kinds[i], &k));
          FUZZ_CHECK (!g_strv_contains ((const char * const *) kinds + i + 1, kinds[i]));
        }
    }
  ok = check_masks (strv_or_null (senders), "--sender", '.', &error) &&
       check_masks (strv_or_null (targets), "--target", '.', &error) &&
       check_masks (strv_or_null (topics), "--topic", '/', &error);
  if (!ok)
    {
      FUZZ_CHECK (g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE));
      FUZZ_CHECK (g_utf8_validate (error->message, -1, NULL));
      return 0;
    }
  (void) masks_name_broker (strv_or_null (senders));

  filters = g_variant_ref_sink (build_filters (strv_or_null (senders), strv_or_null (targets),
                                               strv_or_null (topics), kinds, max_payload));
  params = elbus_msgpack_encode_variant (filters, &error);
  FUZZ_CHECK (params != NULL);
  if (!_elbus_broker_monitor_start (broker, peer, params, &error))
    {
      fprintf (stderr, "the broker refuses filters the tool accepts: %s\n", error->message);
      abort ();
    }
  FUZZ_CHECK (_elbus_broker_monitor_is (broker, peer));
  _elbus_broker_monitor_stop (broker, peer);
  FUZZ_CHECK (!_elbus_broker_monitor_is (broker, peer));
  return 0;
}

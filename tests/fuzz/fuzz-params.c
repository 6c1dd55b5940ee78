/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for `KEY=VALUE` RPC parameters
 * (elbus_rpc_params_from_pairs(), which `elbus rpc call` and the FIFO
 * channel's `:method k=v` lines use): the input's lines are the pairs, as
 * from a command line, so not necessarily UTF-8. Each must come out as
 * an a{sv} with one entry per pair, keyed by what precedes its first `=`
 * and typed by the documented rule, or as one ELBUS_ERROR_DATA; and the
 * params must survive the MessagePack round trip unchanged. Checked with
 * abort(); a critical also aborts.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elbus-error.h"
#include "elbus-msgpack.h"
#include "elbus-rpc-peer.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

#define CHECK(cond) do { if (!(cond)) { fprintf (stderr, "failed: %s\n", #cond); abort (); } } while (0)

#define MAX_PAIRS 16

static void
check_entry (GVariant   *entry,
             const char *pair)
{
  const char *eq = strchr (pair, '=');
  const char *key;
  g_autoptr(GVariant) value = NULL;

  g_variant_get (entry, "{&sv}", &key, &value);
  CHECK (eq != NULL && eq != pair);
  CHECK (strlen (key) == (gsize) (eq - pair) && strncmp (key, pair, eq - pair) == 0);
  if (g_str_equal (eq + 1, "true") || g_str_equal (eq + 1, "false"))
    CHECK (g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN) &&
           g_variant_get_boolean (value) == (eq[1] == 't'));
  else if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
    CHECK (g_str_equal (g_variant_get_string (value, NULL), eq + 1));
  else
    CHECK (g_variant_is_of_type (value, G_VARIANT_TYPE_INT64) ||
           g_variant_is_of_type (value, G_VARIANT_TYPE_DOUBLE));
}

static GLogWriterOutput
log_writer (GLogLevelFlags   level,
            const GLogField *fields,
            gsize            n_fields,
            gpointer         user_data)
{
  g_log_writer_standard_streams (level, fields, n_fields, user_data);
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR | G_LOG_LEVEL_WARNING))
    abort ();
  return G_LOG_WRITER_HANDLED;
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  g_log_set_writer_func (log_writer, NULL, NULL);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *text = g_strndup ((const char *) data, size);
  g_auto(GStrv) pairs = g_strsplit (text, "\n", MAX_PAIRS);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) params = NULL;
  g_autoptr(GVariant) again = NULL;
  g_autoptr(GBytes) encoded = NULL;
  GVariantIter iter;
  GVariant *entry;
  guint i = 0;

  /* a line cut at a NUL byte is what a command line would pass */
  params = elbus_rpc_params_from_pairs ((const char * const *) pairs, &error);
  if (params == NULL)
    {
      CHECK (g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_DATA));
      CHECK (g_utf8_validate (error->message, -1, NULL));
      return 0;
    }
  CHECK (error == NULL);
  CHECK (g_variant_is_of_type (params, G_VARIANT_TYPE_VARDICT));
  CHECK (!g_variant_is_floating (params));
  CHECK (g_variant_n_children (params) == g_strv_length (pairs));

  g_variant_iter_init (&iter, params);
  while ((entry = g_variant_iter_next_value (&iter)) != NULL)
    {
      check_entry (entry, pairs[i++]);
      g_variant_unref (entry);
    }

  encoded = elbus_msgpack_encode_variant (params, &error);
  CHECK (encoded != NULL);
  again = elbus_msgpack_decode (encoded, &error);
  CHECK (again != NULL);
  CHECK (g_variant_equal (params, again));
  return 0;
}

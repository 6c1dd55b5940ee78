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

#include "fuzz-util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);


#define MAX_PAIRS 16

static void
check_entry (GVariant   *entry,
             const char *pair)
{
  const char *eq = strchr (pair, '=');
  const char *key;
  g_autoptr(GVariant) value = NULL;

  g_variant_get (entry, "{&sv}", &key, &value);
  FUZZ_CHECK (eq != NULL && eq != pair);
  FUZZ_CHECK (strlen (key) == (gsize) (eq - pair) && strncmp (key, pair, eq - pair) == 0);
  if (g_str_equal (eq + 1, "true") || g_str_equal (eq + 1, "false"))
    FUZZ_CHECK (g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN) &&
           g_variant_get_boolean (value) == (eq[1] == 't'));
  else if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
    FUZZ_CHECK (g_str_equal (g_variant_get_string (value, NULL), eq + 1));
  else
    FUZZ_CHECK (g_variant_is_of_type (value, G_VARIANT_TYPE_INT64) ||
           g_variant_is_of_type (value, G_VARIANT_TYPE_DOUBLE));
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_log_init (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR | G_LOG_LEVEL_WARNING);
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
      FUZZ_CHECK (g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_DATA));
      FUZZ_CHECK (g_utf8_validate (error->message, -1, NULL));
      return 0;
    }
  FUZZ_CHECK (error == NULL);
  FUZZ_CHECK (g_variant_is_of_type (params, G_VARIANT_TYPE_VARDICT));
  FUZZ_CHECK (!g_variant_is_floating (params));
  FUZZ_CHECK (g_variant_n_children (params) == g_strv_length (pairs));

  g_variant_iter_init (&iter, params);
  while ((entry = g_variant_iter_next_value (&iter)) != NULL)
    {
      check_entry (entry, pairs[i++]);
      g_variant_unref (entry);
    }

  encoded = elbus_msgpack_encode_variant (params, &error);
  FUZZ_CHECK (encoded != NULL);
  again = elbus_msgpack_decode (encoded, &error);
  FUZZ_CHECK (again != NULL);
  FUZZ_CHECK (g_variant_equal (params, again));
  return 0;
}

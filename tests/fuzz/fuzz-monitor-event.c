/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for elbus-monitor's event decoder
 * (tools/elbus-monitor-event.c): the input is a monitor event's MessagePack
 * map as the broker would send it. event_parse() must refuse whatever
 * elbus_msgpack_decode_data() refuses, with the same message (it promises
 * to take events exactly as the library would), and what it accepts must
 * hold together: a known kind, UTF-8 strings, a payload inside the input
 * and no longer than the length announced. The input also goes to the RPC
 * payload parser as a message payload: whatever it finds lies inside it.
 * Checked with abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <elbus/elbus.h>

#include "elbus-monitor-event.h"

#include "fuzz-util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);


static gboolean
inside (const guint8 *p,
        gsize         len,
        const guint8 *data,
        gsize         size)
{
  return len == 0 || (p >= data && p + len <= data + size);
}

static void
check_rpc (const guint8 *data,
           gsize         size)
{
  Rpc rpc = { 0 };

  if (!rpc_parse (data, size, &rpc))
    return;
  FUZZ_CHECK (rpc.type != RPC_NONE);
  FUZZ_CHECK (strcmp (rpc_type_name (&rpc), "none") != 0);
  FUZZ_CHECK (inside (rpc.body, rpc.body_len, data, size));
  FUZZ_CHECK ((rpc.method != NULL) == (rpc.type == RPC_CALL));
  if (rpc.method != NULL)
    {
      const guint8 *nul = memchr (rpc.method, 0, data + size - (const guint8 *) rpc.method);

      FUZZ_CHECK (nul != NULL && nul + 1 == rpc.body);
      FUZZ_CHECK (g_utf8_validate (rpc.method, -1, NULL));
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* a copy of exactly the input's size, so that reading past it is caught */
  guint8 *copy = g_memdup2 (data, MAX (size, 1));
  g_autoptr(GBytes) bytes = g_bytes_new_take (copy, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) library_error = NULL;
  g_autoptr(GVariant) value = NULL;
  g_auto(Event) ev = { 0 };
  Rpc rpc = { 0 };

  value = elbus_msgpack_decode_data (copy, size, &library_error);
  if (!event_parse (bytes, &ev, &error))
    {
      FUZZ_CHECK (error != NULL && g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_DATA));
      FUZZ_CHECK (g_utf8_validate (error->message, -1, NULL));
      if (value == NULL)
        FUZZ_CHECK (g_str_equal (error->message, library_error->message));
      check_rpc (copy, size);
      return 0;
    }
  FUZZ_CHECK (value != NULL);
  FUZZ_CHECK (g_variant_is_of_type (value, G_VARIANT_TYPE ("a{sv}")));

  FUZZ_CHECK (ev.kind < N_KINDS && kind_names[ev.kind] != NULL);
  FUZZ_CHECK (ev.sender != NULL && g_utf8_validate (ev.sender, -1, NULL));
  FUZZ_CHECK ((ev.dest != NULL) == kind_has_payload (ev.kind));
  FUZZ_CHECK (ev.dest == NULL || g_utf8_validate (ev.dest, -1, NULL));
  for (guint i = 0; ev.masks != NULL && ev.masks[i] != NULL; i++)
    FUZZ_CHECK (g_utf8_validate (ev.masks[i], -1, NULL));
  FUZZ_CHECK (ev.masks == NULL || !kind_has_payload (ev.kind));
  FUZZ_CHECK (ev.qos <= 3 && ev.result <= 0xff && ev.t >= 0);
  FUZZ_CHECK (inside (ev.payload, ev.payload_len, copy, size));
  FUZZ_CHECK (ev.size >= ev.payload_len);
  FUZZ_CHECK (event_is_truncated (&ev) == (ev.size > ev.payload_len));
  FUZZ_CHECK (result_name (ev.result) != NULL);
  (void) event_is_announcement (&ev);

  if (event_parse_rpc (&ev, &rpc))
    {
      FUZZ_CHECK (ev.kind == KIND_MESSAGE);
      check_rpc (ev.payload, ev.payload_len);
    }
  check_rpc (copy, size);
  return 0;
}

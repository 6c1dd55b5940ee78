/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the MessagePack decoder (elbus-msgpack.h): whatever
 * elbus_msgpack_decode_data() accepts must encode again with
 * elbus_msgpack_encode_variant(), and that encoding must decode to an equal
 * value and re-encode to the same bytes (the round trip is stable).
 * The decoders return full references, never floating ones, in normal
 * form (checked on an untrusted copy: GLib trusts the decoder's result).
 *
 * The decoder used to build a msgpack-c object and a GVariant per value
 * (some 200 bytes each), which GLib before 2.76 keeps in its slice
 * allocator: this target slowed down as its inputs grew and its RSS
 * climbed to hundreds of megabytes. It now writes the serialized GVariant
 * straight into one buffer.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elbus-msgpack.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort (); } while (0)

static gboolean
bytes_equal (GBytes *a, GBytes *b)
{
  return g_bytes_get_size (a) == g_bytes_get_size (b) && g_bytes_equal (a, b);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  guint8 *buf = g_malloc (MAX (size, 1));
  GError *error = NULL;
  GVariant *v1, *v2, *v3;
  GBytes *e1, *e2;

  if (size > 0)
    memcpy (buf, data, size);

  v1 = elbus_msgpack_decode_data (buf, size, &error);
  if (v1 == NULL)
    {
      CHECK (error != NULL);
      g_clear_error (&error);
      g_free (buf);
      return 0;
    }
  CHECK (error == NULL);
  CHECK (g_variant_is_normal_form (v1));
  {
    GBytes *serialized = g_variant_get_data_as_bytes (v1);
    GVariant *untrusted = g_variant_ref_sink (
      g_variant_new_from_bytes (g_variant_get_type (v1), serialized, FALSE));

    CHECK (g_variant_is_normal_form (untrusted));
    g_variant_unref (untrusted);
    g_bytes_unref (serialized);
  }

  e1 = elbus_msgpack_encode_variant (v1, &error);
  if (e1 == NULL)
    {
      g_printerr ("decoded value does not encode: %s\n", error->message);
      abort ();
    }

  v2 = elbus_msgpack_decode (e1, &error);
  if (v2 == NULL)
    {
      g_printerr ("re-encoded value does not decode: %s\n", error->message);
      abort ();
    }
  CHECK (g_variant_equal (v1, v2));

  /* the encoding is canonical: encoding the re-decoded value gives the
   * same bytes, and decoding those the same value */
  e2 = elbus_msgpack_encode_variant (v2, &error);
  CHECK (e2 != NULL);
  CHECK (bytes_equal (e1, e2));
  v3 = elbus_msgpack_decode_data (g_bytes_get_data (e2, NULL), g_bytes_get_size (e2), &error);
  CHECK (v3 != NULL);
  CHECK (g_variant_equal (v2, v3));

  g_variant_unref (v3);
  g_bytes_unref (e2);
  g_variant_unref (v2);
  g_bytes_unref (e1);
  g_variant_unref (v1);
  g_free (buf);
  return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * GVariant <-> MessagePack, on msgpack-c, after json-glib's json-gvariant.c.
 *
 * Encoding walks the GVariant and feeds a msgpack_packer, which picks the
 * smallest encoding of every integer and length.
 *
 * Decoding is for bytes from peers and is fuzzed. It runs in two passes:
 *
 *  1. _elbus_msgpack_check() (elbus-msgpack-check.c) walks the bytes once,
 *     without recursion or allocation, and rejects everything the conversion cannot take: truncation,
 *     trailing bytes, the unused marker 0xc1, extension types, strings that
 *     are not UTF-8 (or hold a NUL), nesting deeper than
 *     ELBUS_MSGPACK_MAX_DEPTH, and containers that declare more elements
 *     than there are bytes left. The last one matters: msgpack-c allocates
 *     room for every declared element before reading any, so five bytes
 *     `dd 0f ff ff ff` would otherwise cost it gigabytes.
 *  2. msgpack_unpack_next() builds the object tree, which
 *     object_to_variant() turns into a GVariant. After pass 1 the tree is
 *     at most ELBUS_MSGPACK_MAX_DEPTH deep and its size linear in the input.
 */
#include "config.h"

#include <string.h>

#include <msgpack.h>

#include "elbus-error.h"
#include "elbus-msgpack.h"
#include "elbus-msgpack-check-private.h"

/* ELBUS_MSGPACK_MAX_DEPTH is msgpack-c's MSGPACK_EMBED_STACK_SIZE, the
 * fixed stack of its parser, compiled into libmsgpackc (and not in the
 * headers msgpack.h pulls in). /elbus/msgpack/round-trip/depth checks
 * that msgpack-c takes that many levels. */

/* ------------------------------------------------------------------ */
/* Encoding */

static int
byte_array_write_cb (void       *data,
                     const char *buf,
                     size_t      len)
{
  if (len > 0)
    g_byte_array_append (data, (const guint8 *) buf, len);
  return 0;
}

static gboolean
check_length (gsize        len,
              const char  *what,
              GError     **error)
{
  if (len > G_MAXUINT32)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   "a %s of length %" G_GSIZE_FORMAT " is too long for MessagePack",
                   what, len);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_depth (guint        depth,
             GVariant    *value,
             GError     **error)
{
  if (depth >= ELBUS_MSGPACK_MAX_DEPTH)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   "a value of type “%s” nests containers deeper than %u levels",
                   g_variant_get_type_string (value), ELBUS_MSGPACK_MAX_DEPTH);
      return FALSE;
    }
  return TRUE;
}

/* @depth is the number of MessagePack arrays and maps around @value. */
static gboolean
encode_value (msgpack_packer  *pk,
              GVariant        *value,
              guint            depth,
              GError         **error)
{
  g_autoptr(GVariant) unwrapped = NULL;
  GVariantIter iter;
  GVariant *child;
  const char *str;
  gsize len;

  /* Variants and maybes add no MessagePack level: unwrap them in a loop,
   * so that a deep chain of them costs no stack. */
  for (;;)
    {
      GVariant *inner;

      if (g_variant_is_of_type (value, G_VARIANT_TYPE_VARIANT))
        {
          inner = g_variant_get_variant (value);
        }
      else if (g_variant_is_of_type (value, G_VARIANT_TYPE_MAYBE))
        {
          inner = g_variant_get_maybe (value);
          if (inner == NULL)
            {
              msgpack_pack_nil (pk);
              return TRUE;
            }
        }
      else
        {
          break;
        }

      g_clear_pointer (&unwrapped, g_variant_unref);
      unwrapped = inner;
      value = inner;
    }

  switch (g_variant_classify (value))
    {
    case G_VARIANT_CLASS_BOOLEAN:
      if (g_variant_get_boolean (value))
        msgpack_pack_true (pk);
      else
        msgpack_pack_false (pk);
      return TRUE;

    case G_VARIANT_CLASS_BYTE:
      msgpack_pack_uint64 (pk, g_variant_get_byte (value));
      return TRUE;
    case G_VARIANT_CLASS_UINT16:
      msgpack_pack_uint64 (pk, g_variant_get_uint16 (value));
      return TRUE;
    case G_VARIANT_CLASS_UINT32:
      msgpack_pack_uint64 (pk, g_variant_get_uint32 (value));
      return TRUE;
    case G_VARIANT_CLASS_UINT64:
      msgpack_pack_uint64 (pk, g_variant_get_uint64 (value));
      return TRUE;
    case G_VARIANT_CLASS_INT16:
      msgpack_pack_int64 (pk, g_variant_get_int16 (value));
      return TRUE;
    case G_VARIANT_CLASS_INT32:
      msgpack_pack_int64 (pk, g_variant_get_int32 (value));
      return TRUE;
    case G_VARIANT_CLASS_HANDLE:
      msgpack_pack_int64 (pk, g_variant_get_handle (value));
      return TRUE;
    case G_VARIANT_CLASS_INT64:
      msgpack_pack_int64 (pk, g_variant_get_int64 (value));
      return TRUE;

    case G_VARIANT_CLASS_DOUBLE:
      msgpack_pack_double (pk, g_variant_get_double (value));
      return TRUE;

    case G_VARIANT_CLASS_STRING:
    case G_VARIANT_CLASS_OBJECT_PATH:
    case G_VARIANT_CLASS_SIGNATURE:
      str = g_variant_get_string (value, &len);
      if (!check_length (len, "string", error))
        return FALSE;
      msgpack_pack_str (pk, len);
      msgpack_pack_str_body (pk, str, len);
      return TRUE;

    case G_VARIANT_CLASS_ARRAY:
      if (g_variant_is_of_type (value, G_VARIANT_TYPE_BYTESTRING))
        {
          const guint8 *bytes = g_variant_get_fixed_array (value, &len, 1);

          if (!check_length (len, "byte array", error))
            return FALSE;
          msgpack_pack_bin (pk, len);
          msgpack_pack_bin_body (pk, bytes, len);
          return TRUE;
        }

      /* Dictionaries, and a(vv): what a map whose keys have no common
       * type decodes to (a{vv} is not a valid GVariant type). */
      if (g_variant_type_is_dict_entry (g_variant_type_element (g_variant_get_type (value))) ||
          g_variant_is_of_type (value, G_VARIANT_TYPE ("a(vv)")))
        {
          len = g_variant_n_children (value);
          if (!check_depth (depth, value, error) ||
              !check_length (len, "map", error))
            return FALSE;

          msgpack_pack_map (pk, len);
          g_variant_iter_init (&iter, value);
          while ((child = g_variant_iter_next_value (&iter)) != NULL)
            {
              g_autoptr(GVariant) entry = child;
              g_autoptr(GVariant) key = g_variant_get_child_value (entry, 0);
              g_autoptr(GVariant) val = g_variant_get_child_value (entry, 1);

              if (!encode_value (pk, key, depth + 1, error) ||
                  !encode_value (pk, val, depth + 1, error))
                return FALSE;
            }
          return TRUE;
        }
      /* Any other array: as a tuple. */
      G_GNUC_FALLTHROUGH;

    case G_VARIANT_CLASS_TUPLE:
      len = g_variant_n_children (value);
      if (!check_depth (depth, value, error) ||
          !check_length (len, "array", error))
        return FALSE;

      msgpack_pack_array (pk, len);
      g_variant_iter_init (&iter, value);
      while ((child = g_variant_iter_next_value (&iter)) != NULL)
        {
          g_autoptr(GVariant) element = child;

          if (!encode_value (pk, element, depth + 1, error))
            return FALSE;
        }
      return TRUE;

    case G_VARIANT_CLASS_DICT_ENTRY:
      /* A dict entry on its own: a map of one entry, as json-glib does. */
      if (!check_depth (depth, value, error))
        return FALSE;
      else
        {
          g_autoptr(GVariant) key = g_variant_get_child_value (value, 0);
          g_autoptr(GVariant) val = g_variant_get_child_value (value, 1);

          msgpack_pack_map (pk, 1);
          return encode_value (pk, key, depth + 1, error) &&
                 encode_value (pk, val, depth + 1, error);
        }

    case G_VARIANT_CLASS_VARIANT:
    case G_VARIANT_CLASS_MAYBE:
    default:
      /* Variants and maybes were unwrapped above; nothing else exists
       * today, but a future GVariant class must not pass silently. */
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   "values of type “%s” cannot be encoded as MessagePack",
                   g_variant_get_type_string (value));
      return FALSE;
    }
}

/**
 * elbus_msgpack_encode_variant:
 * @value: the value to encode; consumed if floating
 * @error: return location for a #GError
 *
 * Encodes @value as one MessagePack value, the format elbus peers use
 * for RPC parameters and most payloads:
 *
 * | GVariant | MessagePack |
 * |---|---|
 * | `b` | bool |
 * | `y`, `n`, `q`, `i`, `u`, `x`, `t`, `h` | int, in its smallest encoding |
 * | `d` | float 64 |
 * | `s`, `o`, `g` | str |
 * | `ay` | bin |
 * | `a{s*}` and any other dictionary `a{?*}` | map; the keys encoded as their values |
 * | `a(vv)`, (key, value) pairs | map |
 * | a dict entry `{?*}` on its own | a map of one entry |
 * | any other array `a*`, and tuples | array |
 * | `v` | its contents |
 * | `m*` | nil when nothing, else the contents |
 *
 * So `{'ok': <true>}` of type `a{sv}` becomes `81 a2 6f 6b c3`.
 * Integers that are not negative get the same encoding whether their type
 * is signed or not, as msgpack-c does; negative ones get the smallest
 * signed encoding.
 *
 * The mapping inverts [func@Elbus.msgpack_decode_data]'s: whatever that
 * returns encodes to MessagePack that decodes to an equal value. Hence
 * `a(vv)`, which it returns for maps whose keys have no common type, is a
 * map here, not an array of pairs.
 *
 * Fails with %ELBUS_ERROR_DATA for what MessagePack cannot hold or
 * [func@Elbus.msgpack_decode_data] would refuse: arrays and maps nested
 * deeper than %ELBUS_MSGPACK_MAX_DEPTH, strings, byte arrays and
 * containers longer than %G_MAXUINT32.
 *
 * Returns: (transfer full): the MessagePack bytes, or %NULL on error
 *
 * Since: 1.0
 */
GBytes *
elbus_msgpack_encode_variant (GVariant  *value,
                              GError   **error)
{
  g_autoptr(GVariant) owned = NULL;
  g_autoptr(GByteArray) out = NULL;
  msgpack_packer pk;

  g_return_val_if_fail (value != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  owned = g_variant_ref_sink (value);
  out = g_byte_array_new ();
  msgpack_packer_init (&pk, out, byte_array_write_cb);

  if (!encode_value (&pk, owned, 0, error))
    return NULL;

  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

/* ------------------------------------------------------------------ */
/* Decoding, pass 2: conversion */

static GVariant *object_to_variant (const msgpack_object  *obj,
                                    GError               **error);

/* _elbus_msgpack_check() validated @str as UTF-8 without NUL bytes.
 * msgpack-c leaves the pointer of an empty str %NULL. */
static GVariant *
new_string (const msgpack_object_str *str)
{
  if (str->size == 0)
    return g_variant_new_string ("");
  return g_variant_new_take_string (g_strndup (str->ptr, str->size));
}

/* The key type of the dictionary a map becomes, or %NULL when its keys
 * have no common basic GVariant type. */
static const GVariantType *
map_key_type (const msgpack_object_map *map)
{
  gboolean all_str = TRUE, all_int = TRUE, all_bool = TRUE, all_float = TRUE;
  gboolean any_negative = FALSE, any_above_int64 = FALSE;

  for (guint32 i = 0; i < map->size; i++)
    {
      const msgpack_object *key = &map->ptr[i].key;

      all_str = all_str && key->type == MSGPACK_OBJECT_STR;
      all_int = all_int && (key->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                            key->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
      all_bool = all_bool && key->type == MSGPACK_OBJECT_BOOLEAN;
      all_float = all_float && (key->type == MSGPACK_OBJECT_FLOAT32 ||
                                key->type == MSGPACK_OBJECT_FLOAT64);
      if (key->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        any_negative = TRUE;
      else if (key->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
               key->via.u64 > G_MAXINT64)
        any_above_int64 = TRUE;
    }

  /* An empty map has only string keys. */
  if (all_str)
    return G_VARIANT_TYPE_STRING;
  if (all_int && !any_above_int64)
    return G_VARIANT_TYPE_INT64;
  if (all_int && !any_negative)
    return G_VARIANT_TYPE_UINT64;
  if (all_bool)
    return G_VARIANT_TYPE_BOOLEAN;
  if (all_float)
    return G_VARIANT_TYPE_DOUBLE;
  return NULL;
}

static GVariant *
key_to_variant (const msgpack_object *key,
                const GVariantType   *type)
{
  if (g_variant_type_equal (type, G_VARIANT_TYPE_STRING))
    return new_string (&key->via.str);
  if (g_variant_type_equal (type, G_VARIANT_TYPE_INT64))
    return g_variant_new_int64 (key->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                ? (gint64) key->via.u64 : key->via.i64);
  if (g_variant_type_equal (type, G_VARIANT_TYPE_UINT64))
    return g_variant_new_uint64 (key->via.u64);
  if (g_variant_type_equal (type, G_VARIANT_TYPE_BOOLEAN))
    return g_variant_new_boolean (key->via.boolean);
  return g_variant_new_double (key->via.f64);
}

static GVariant *
map_to_variant (const msgpack_object_map  *map,
                GError                   **error)
{
  const GVariantType *key_type = map_key_type (map);
  g_autoptr(GVariantType) type = NULL;
  GVariantBuilder builder;

  if (key_type != NULL)
    {
      g_autoptr(GVariantType) entry = g_variant_type_new_dict_entry (key_type,
                                                                      G_VARIANT_TYPE_VARIANT);
      type = g_variant_type_new_array (entry);
    }
  else
    {
      type = g_variant_type_new ("a(vv)");
    }

  g_variant_builder_init (&builder, type);
  for (guint32 i = 0; i < map->size; i++)
    {
      const msgpack_object_kv *kv = &map->ptr[i];
      GVariant *key, *val;

      if (key_type != NULL)
        key = key_to_variant (&kv->key, key_type);
      else if ((key = object_to_variant (&kv->key, error)) != NULL)
        key = g_variant_new_variant (key);
      if (key == NULL)
        {
          g_variant_builder_clear (&builder);
          return NULL;
        }

      val = object_to_variant (&kv->val, error);
      if (val == NULL)
        {
          g_variant_unref (g_variant_ref_sink (key));
          g_variant_builder_clear (&builder);
          return NULL;
        }

      val = g_variant_new_variant (val);
      if (key_type != NULL)
        g_variant_builder_add_value (&builder, g_variant_new_dict_entry (key, val));
      else
        g_variant_builder_add_value (&builder, g_variant_new_tuple ((GVariant *[2]) { key, val }, 2));
    }

  return g_variant_builder_end (&builder);
}

/* Returns a floating reference. Recursion is bounded by
 * ELBUS_MSGPACK_MAX_DEPTH, which _elbus_msgpack_check() enforced. */
static GVariant *
object_to_variant (const msgpack_object  *obj,
                   GError               **error)
{
  GVariantBuilder builder;

  switch (obj->type)
    {
    case MSGPACK_OBJECT_NIL:
      return g_variant_new_maybe (G_VARIANT_TYPE_VARIANT, NULL);

    case MSGPACK_OBJECT_BOOLEAN:
      return g_variant_new_boolean (obj->via.boolean);

    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      if (obj->via.u64 > G_MAXINT64)
        return g_variant_new_uint64 (obj->via.u64);
      return g_variant_new_int64 ((gint64) obj->via.u64);

    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      return g_variant_new_int64 (obj->via.i64);

    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      return g_variant_new_double (obj->via.f64);

    case MSGPACK_OBJECT_STR:
      return new_string (&obj->via.str);

    case MSGPACK_OBJECT_BIN:
      {
        g_autoptr(GBytes) bytes = g_bytes_new (obj->via.bin.ptr, obj->via.bin.size);

        return g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, bytes, TRUE);
      }

    case MSGPACK_OBJECT_ARRAY:
      g_variant_builder_init (&builder, G_VARIANT_TYPE ("av"));
      for (guint32 i = 0; i < obj->via.array.size; i++)
        {
          GVariant *element = object_to_variant (&obj->via.array.ptr[i], error);

          if (element == NULL)
            {
              g_variant_builder_clear (&builder);
              return NULL;
            }
          g_variant_builder_add_value (&builder, g_variant_new_variant (element));
        }
      return g_variant_builder_end (&builder);

    case MSGPACK_OBJECT_MAP:
      return map_to_variant (&obj->via.map, error);

    case MSGPACK_OBJECT_EXT:
    default:
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   "MessagePack values of kind %d cannot be converted to a GVariant",
                   (int) obj->type);
      return NULL;
    }
}

/* ------------------------------------------------------------------ */
/* Decoding, public API */

/**
 * elbus_msgpack_decode:
 * @data: exactly one MessagePack value
 * @error: return location for a #GError
 *
 * Decodes @data, which must hold one MessagePack value and nothing after
 * it. See [func@Elbus.msgpack_decode_data] for the mapping.
 *
 * Returns: (transfer full): the value, never floating, or %NULL on error
 *
 * Since: 1.0
 */
GVariant *
elbus_msgpack_decode (GBytes  *data,
                      GError **error)
{
  const guint8 *bytes;
  gsize len;

  g_return_val_if_fail (data != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  bytes = g_bytes_get_data (data, &len);
  return elbus_msgpack_decode_data (bytes, len, error);
}

/**
 * elbus_msgpack_decode_data:
 * @data: (array length=len) (nullable): exactly one MessagePack value
 * @len: the length of @data in bytes
 * @error: return location for a #GError
 *
 * Decodes @data, which must hold one MessagePack value and nothing after
 * it, into a GVariant of one of these types:
 *
 * | MessagePack | GVariant |
 * |---|---|
 * | map whose keys are all str (and the empty map) | `a{sv}` |
 * | map whose keys are all ints | `a{xv}`, or `a{tv}` when a key is above %G_MAXINT64 and none is negative |
 * | map whose keys are all bools, or all floats | `a{bv}`, `a{dv}` |
 * | any other map | `a(vv)`: (key, value) pairs in order (`a{vv}` is not a valid GVariant type) |
 * | array | `av` |
 * | str | `s` |
 * | int | `x`, or `t` above %G_MAXINT64 |
 * | float 32 and float 64 | `d` |
 * | bool | `b` |
 * | bin | `ay` |
 * | nil | `mv`, nothing |
 *
 * Maps keep their order and any duplicate keys. Values are not checked
 * against any schema; use g_variant_lookup() and friends on the result.
 *
 * Fails with %ELBUS_ERROR_DATA when @data is empty or truncated, has
 * bytes after the value, is not MessagePack, holds an extension value
 * (timestamps included) or a str that is not UTF-8 or contains a NUL byte,
 * or nests arrays and maps deeper than %ELBUS_MSGPACK_MAX_DEPTH. The
 * decoder is made for untrusted input: its memory use is linear in @len.
 *
 * Returns: (transfer full): the value, never floating, or %NULL on error
 *
 * Since: 1.0
 */
GVariant *
elbus_msgpack_decode_data (const guint8  *data,
                           gsize          len,
                           GError       **error)
{
  msgpack_unpacked unpacked;
  GVariant *value = NULL;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (_elbus_msgpack_unpack (data, len, &unpacked, error))
    value = object_to_variant (&unpacked.data, error);
  msgpack_unpacked_destroy (&unpacked);

  return value != NULL ? g_variant_ref_sink (value) : NULL;
}

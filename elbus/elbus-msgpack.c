/* SPDX-License-Identifier: MIT */
/*
 * GVariant <-> MessagePack, on msgpack-c, after json-glib's json-gvariant.c.
 *
 * Encoding walks the GVariant and feeds a msgpack_packer, which picks the
 * smallest encoding of every integer and length.
 *
 * Decoding is for bytes from peers and is fuzzed. It runs in two passes,
 * neither of which builds a MessagePack object or a GVariant per value:
 *
 *  1. _elbus_msgpack_check_full() (elbus-msgpack-check.c) walks the bytes
 *     once, without recursion or allocation, and rejects everything the
 *     conversion cannot take: truncation, trailing bytes, the unused
 *     marker 0xc1, extension types, strings that are not UTF-8 (or hold a
 *     NUL), and data beyond the limits (depth, number of values, size).
 *     A container that declares more elements than there are bytes left,
 *     or than the limit of values allows, is refused at its header, so
 *     five bytes `dd 0f ff ff ff` cost nothing. It also notes what the
 *     keys of each map are, which decides the map's GVariant type.
 *  2. decode_value() writes the GVariant's serialized form straight into
 *     one buffer, which becomes one GVariant. (Building it from a GVariant
 *     per value, as g_variant_builder_*() does, costs some 200 bytes per
 *     value, which GLib before 2.76 keeps in its slice allocator, spread
 *     over the heap: a 1 MiB array of zeros left 200 MiB in a broker that
 *     malloc_trim() could not give back.)
 */
#include "config.h"

#include <string.h>

#include <msgpack.h>

#include "elbus-error.h"
#include "elbus-i18n-private.h"
#include "elbus-msgpack.h"
#include "elbus-msgpack-check-private.h"
#include "elbus-msgpack-private.h"

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
              GVariant    *value,
              GError     **error)
{
  if (len > G_MAXUINT32)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("a value of type “%s” of length %lu is too long for MessagePack"),
                   g_variant_get_type_string (value), (gulong) len);
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
                   _("a value of type “%s” nests containers deeper than %u levels"),
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
      if (!check_length (len, value, error))
        return FALSE;
      msgpack_pack_str (pk, len);
      msgpack_pack_str_body (pk, str, len);
      return TRUE;

    case G_VARIANT_CLASS_ARRAY:
      if (g_variant_is_of_type (value, G_VARIANT_TYPE_BYTESTRING))
        {
          const guint8 *bytes = g_variant_get_fixed_array (value, &len, 1);

          if (!check_length (len, value, error))
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
              !check_length (len, value, error))
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
          !check_length (len, value, error))
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
                   _("values of type “%s” cannot be encoded as MessagePack"),
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

/* The serialized GVariant is written straight into one growing buffer,
 * in GVariant's own format (normal form), and wrapped once at the end:
 * no GVariant, builder or MessagePack object per value. Every container
 * and every variant is 8-aligned in the types the decoder makes (`av`,
 * `a{?v}`, `a(vv)`, `v`, `mv`), and the buffer starts 8-aligned, so
 * alignment within a container is alignment of the buffer position.
 * Pass 1 validated the bytes, so reading trusts them. */
typedef struct {
  const guint8 *data;
  gsize         pos;
  guint8       *out;           /* (owned) */
  gsize         out_len;
  gsize         out_cap;
  gsize        *offsets;       /* (owned): framing offsets of the open containers */
  gsize         n_offsets;
  gsize         offsets_cap;
  const guint8 *map_keys;      /* pass 1's key flags, one per map */
  gsize         next_map;
} Decoder;

static guint8 *
out_reserve (Decoder *d,
             gsize    n)
{
  guint8 *p;

  if (n > d->out_cap - d->out_len)
    {
      d->out_cap = MAX (MAX (d->out_cap * 2, d->out_len + n), 256);
      d->out = g_realloc (d->out, d->out_cap);
    }
  p = d->out + d->out_len;
  d->out_len += n;
  return p;
}

static void
out_append (Decoder    *d,
            const void *bytes,
            gsize       n)
{
  if (n > 0)
    memcpy (out_reserve (d, n), bytes, n);
}

static void
out_align8 (Decoder *d)
{
  gsize pad = (8 - (d->out_len & 7)) & 7;

  if (pad > 0)
    memset (out_reserve (d, pad), 0, pad);
}

static void
offsets_push (Decoder *d,
              gsize    offset)
{
  if (d->n_offsets == d->offsets_cap)
    {
      d->offsets_cap = MAX (d->offsets_cap * 2, 64);
      d->offsets = g_renew (gsize, d->offsets, d->offsets_cap);
    }
  d->offsets[d->n_offsets++] = offset;
}

/* The size of the framing offsets of a container of @body_size bytes
 * with @n offsets: the smallest that can address the whole container. */
static guint
offset_size (gsize body_size,
             gsize n)
{
  if (body_size + n <= G_MAXUINT8)
    return 1;
  if (body_size + 2 * n <= G_MAXUINT16)
    return 2;
  if (body_size + 4 * n <= G_MAXUINT32)
    return 4;
  return 8;
}

/* Appends the framing offsets pushed since @base, little-endian, for the
 * container that began at @start, and pops them. */
static void
offsets_finish (Decoder *d,
                gsize    start,
                gsize    base)
{
  gsize n = d->n_offsets - base;
  guint size;
  guint8 *p;

  if (n == 0)
    return;
  size = offset_size (d->out_len - start, n);
  p = out_reserve (d, n * size);
  for (gsize i = base; i < d->n_offsets; i++)
    {
      guint64 v = d->offsets[i];

      for (guint b = 0; b < size; b++, v >>= 8)
        *p++ = v & 0xff;
    }
  d->n_offsets = base;
}

static guint64
read_be (Decoder *d,
         guint    size)
{
  guint64 v = 0;

  for (guint i = 0; i < size; i++)
    v = (v << 8) | d->data[d->pos++];
  return v;
}

/* Reads an integer of marker @marker: its two's-complement bits, and
 * whether it is negative. */
static guint64
read_int (Decoder  *d,
          guint8    marker,
          gboolean *negative)
{
  guint64 v;

  *negative = FALSE;
  if (marker <= 0x7f)
    return marker;
  if (marker >= 0xe0)
    {
      *negative = TRUE;
      return (guint64) (gint64) (gint8) marker;
    }
  if (marker >= 0xcc && marker <= 0xcf)
    return read_be (d, 1u << (marker - 0xcc));

  /* int 8-64: sign-extend */
  {
    guint size = 1u << (marker - 0xd0);

    v = read_be (d, size);
    if (size < 8 && (v & (G_GUINT64_CONSTANT (1) << (size * 8 - 1))) != 0)
      v |= G_MAXUINT64 << (size * 8);
    *negative = (gint64) v < 0;
    return v;
  }
}

static double
read_float (Decoder *d,
            guint8   marker)
{
  if (marker == 0xca)
    {
      guint32 bits = (guint32) read_be (d, 4);
      float f;

      memcpy (&f, &bits, sizeof f);
      return f;
    }
  else
    {
      guint64 bits = read_be (d, 8);
      double f;

      memcpy (&f, &bits, sizeof f);
      return f;
    }
}

/* The length of a str, bin, array or map of marker @marker. */
static gsize
read_length (Decoder *d,
             guint8   marker)
{
  if (marker >= 0x80 && marker <= 0x8f)
    return marker & 0x0f;
  if (marker >= 0x90 && marker <= 0x9f)
    return marker & 0x0f;
  if (marker >= 0xa0 && marker <= 0xbf)
    return marker & 0x1f;
  switch (marker)
    {
    case 0xc4: case 0xd9: return read_be (d, 1);
    case 0xc5: case 0xda: case 0xdc: case 0xde: return read_be (d, 2);
    default: return read_be (d, 4);
    }
}

static const char *decode_value (Decoder *d);

/* A value wrapped in a variant: its data, 00, its type string. */
static void
decode_variant (Decoder *d)
{
  const char *type;

  out_align8 (d);
  type = decode_value (d);
  out_append (d, "", 1);
  out_append (d, type, strlen (type));
}

static void
write_int64 (Decoder *d,
             guint64  v)
{
  out_align8 (d);
  out_append (d, &v, sizeof v);   /* gint64 and guint64 alike, host order */
}

static const char *
decode_map (Decoder *d,
            gsize    n)
{
  guint8 keys = d->map_keys[d->next_map++];
  gsize start = d->out_len;
  gsize base = d->n_offsets;
  const char *type;
  char key_type;

  /* an empty map has only string keys */
  if ((keys & ~ELBUS_MSGPACK_KEY_STR) == 0)
    key_type = 's', type = "a{sv}";
  else if (keys == ELBUS_MSGPACK_KEY_INT ||
           keys == (ELBUS_MSGPACK_KEY_INT | ELBUS_MSGPACK_KEY_NEGATIVE))
    key_type = 'x', type = "a{xv}";
  else if (keys == (ELBUS_MSGPACK_KEY_INT | ELBUS_MSGPACK_KEY_ABOVE_INT64))
    key_type = 't', type = "a{tv}";
  else if (keys == ELBUS_MSGPACK_KEY_BOOL)
    key_type = 'b', type = "a{bv}";
  else if (keys == ELBUS_MSGPACK_KEY_FLOAT)
    key_type = 'd', type = "a{dv}";
  else
    key_type = 'v', type = "a(vv)";

  for (gsize i = 0; i < n; i++)
    {
      gsize entry, key_end;
      gboolean negative;
      guint8 marker;

      out_align8 (d);
      entry = d->out_len;
      if (key_type == 'v')
        decode_variant (d);
      else
        {
          marker = d->data[d->pos++];
          switch (key_type)
            {
            case 's':
              {
                gsize len = read_length (d, marker);

                out_append (d, d->data + d->pos, len);
                out_append (d, "", 1);
                d->pos += len;
              }
              break;
            case 'x': case 't':
              write_int64 (d, read_int (d, marker, &negative));
              break;
            case 'b':
              out_append (d, (guint8[]) { marker == 0xc3 }, 1);
              break;
            default:
              {
                double f = read_float (d, marker);

                out_append (d, &f, sizeof f);
              }
              break;
            }
        }
      key_end = d->out_len - entry;

      decode_variant (d);
      /* a key of variable size gets its end as the entry's framing offset */
      if (key_type == 's' || key_type == 'v')
        {
          offsets_push (d, key_end);
          offsets_finish (d, entry, d->n_offsets - 1);
        }
      offsets_push (d, d->out_len - start);
    }

  offsets_finish (d, start, base);
  return type;
}

/* Writes the next value in the type it maps to, at the end of the
 * output (8-aligned there for containers), and returns that type. */
static const char *
decode_value (Decoder *d)
{
  guint8 marker = d->data[d->pos++];
  gboolean negative;
  guint64 v;
  gsize n;

  if (marker <= 0x7f || marker >= 0xe0 || (marker >= 0xcc && marker <= 0xd3))
    {
      v = read_int (d, marker, &negative);
      write_int64 (d, v);
      return !negative && v > G_MAXINT64 ? "t" : "x";
    }

  switch (marker)
    {
    case 0xc0:
      return "mv";              /* nothing: no bytes */
    case 0xc2:
    case 0xc3:
      out_append (d, (guint8[]) { marker == 0xc3 }, 1);
      return "b";
    case 0xca:
    case 0xcb:
      {
        double f = read_float (d, marker);

        out_align8 (d);
        out_append (d, &f, sizeof f);
      }
      return "d";
    default:
      break;
    }

  n = read_length (d, marker);
  if ((marker >= 0xa0 && marker <= 0xbf) || (marker >= 0xd9 && marker <= 0xdb))
    {
      out_append (d, d->data + d->pos, n);
      out_append (d, "", 1);
      d->pos += n;
      return "s";
    }
  if (marker >= 0xc4 && marker <= 0xc6)
    {
      out_append (d, d->data + d->pos, n);
      d->pos += n;
      return "ay";
    }
  if ((marker >= 0x90 && marker <= 0x9f) || marker == 0xdc || marker == 0xdd)
    {
      gsize start = d->out_len;
      gsize base = d->n_offsets;

      for (gsize i = 0; i < n; i++)
        {
          decode_variant (d);
          offsets_push (d, d->out_len - start);
        }
      offsets_finish (d, start, base);
      return "av";
    }

  /* pass 1 left nothing else but maps */
  return decode_map (d, n);
}

/* Both passes. *@over_limit tells whether a limit was what failed. */
GVariant *
_elbus_msgpack_decode_limited (const guint8              *data,
                               gsize                      len,
                               const ElbusMsgpackLimits  *limits,
                               gboolean                  *over_limit,
                               GError                   **error)
{
  ElbusMsgpackMapKeys map_keys = { NULL, 0, 0, 0, 0 };
  Decoder d = { data, 0, };
  const char *type;
  GBytes *bytes;
  GVariant *value;

  if (!_elbus_msgpack_check_full (data, len, limits, &map_keys, over_limit, error))
    {
      g_free (map_keys.data);
      return NULL;
    }

  /* A large result gets room for all of it at once, so that it never
   * moves (copying it at each doubling costs more than writing it): per
   * value at most 7 bytes of padding, 8 of data, 1 + 5 of variant type,
   * 8 of framing offset (its own and, for a map key, its entry's), plus
   * the contents of str and bin values and their NULs. Pages that are
   * not written are not resident; the rest is given back at the end. A
   * small one grows from a little: a big block costs an mmap(). */
  d.out_cap = map_keys.values * 40 + map_keys.content_bytes;
  if (d.out_cap < 1024 * 1024)
    d.out_cap = MIN (d.out_cap, 1024);
  d.out = g_malloc (d.out_cap);
  d.map_keys = map_keys.data;
  type = decode_value (&d);
  g_free (d.offsets);
  g_free (map_keys.data);

  if (d.out_len == 0)
    {
      g_free (d.out);
      bytes = g_bytes_new_static ("", 0);
    }
  else
    {
      bytes = g_bytes_new_take (g_realloc (d.out, d.out_len), d.out_len);
    }

  value = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (type), bytes, TRUE));
  g_bytes_unref (bytes);
  return value;
}

/* ------------------------------------------------------------------ */
/* Decoding, public API */

static GVariant *
decode_full (const guint8  *data,
             gsize          len,
             guint          max_depth,
             gsize          max_values,
             gsize          max_size,
             GError       **error)
{
  ElbusMsgpackLimits limits = {
    max_depth > 0 ? MIN (max_depth, ELBUS_MSGPACK_MAX_DEPTH) : ELBUS_MSGPACK_MAX_DEPTH,
    max_values > 0 ? max_values : ELBUS_MSGPACK_DEFAULT_MAX_VALUES,
    max_size > 0 ? max_size : ELBUS_MSGPACK_DEFAULT_MAX_SIZE,
  };

  return _elbus_msgpack_decode_limited (data, len, &limits, NULL, error);
}

/**
 * elbus_msgpack_decode:
 * @data: exactly one MessagePack value
 * @error: return location for a #GError
 *
 * Decodes @data, which must hold one MessagePack value and nothing after
 * it, within the default limits. See [func@Elbus.msgpack_decode_data] for
 * the mapping and [func@Elbus.msgpack_decode_full] for the limits.
 *
 * Returns: (transfer full): the value, never floating, or %NULL on error
 *
 * Since: 1.0
 */
GVariant *
elbus_msgpack_decode (GBytes  *data,
                      GError **error)
{
  return elbus_msgpack_decode_full (data, 0, 0, 0, error);
}

/**
 * elbus_msgpack_decode_full:
 * @data: exactly one MessagePack value
 * @max_depth: how deeply arrays and maps may nest, the outermost one
 *   counting as the first level; 0 for %ELBUS_MSGPACK_MAX_DEPTH, which
 *   is also the most
 * @max_values: how many values @data may hold (the outermost value,
 *   every array element, every map key and every map value count one);
 *   0 for %ELBUS_MSGPACK_DEFAULT_MAX_VALUES
 * @max_size: how many bytes @data may have; 0 for
 *   %ELBUS_MSGPACK_DEFAULT_MAX_SIZE
 * @error: return location for a #GError
 *
 * [func@Elbus.msgpack_decode] with limits of the caller's choice, for
 * data from peers that must cost less (or may cost more) than the
 * defaults allow.
 *
 * The limits are checked in a first pass over @data that allocates
 * nothing: a container whose declared count passes the limit of values,
 * or that declares more elements than there are bytes left (each takes
 * at least one), is refused at its header, before anything is built.
 * What passes is converted in one pass into one buffer. Memory and time
 * are therefore linear in the size of @data: the result takes at most 20
 * bytes per value (an array of one-byte integers, each an `x` in a `v`,
 * is the worst case) plus the bytes of strings and binaries, and the
 * decoder at most 8 bytes more per value while it builds it.
 *
 * Fails with %ELBUS_ERROR_DATA, whose message names the limit, when
 * @data passes a limit, and as [func@Elbus.msgpack_decode_data] does when
 * it is not what that takes.
 *
 * Returns: (transfer full): the value, never floating, or %NULL on error
 *
 * Since: 1.0
 */
GVariant *
elbus_msgpack_decode_full (GBytes  *data,
                           guint    max_depth,
                           gsize    max_values,
                           gsize    max_size,
                           GError **error)
{
  const guint8 *bytes;
  gsize len;

  g_return_val_if_fail (data != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  bytes = g_bytes_get_data (data, &len);
  return decode_full (bytes, len, max_depth, max_values, max_size, error);
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
 * or passes the default limits: nesting deeper than
 * %ELBUS_MSGPACK_MAX_DEPTH, more than %ELBUS_MSGPACK_DEFAULT_MAX_VALUES
 * values, more than %ELBUS_MSGPACK_DEFAULT_MAX_SIZE bytes. The decoder is
 * made for untrusted input: its time and memory are linear in @len (see
 * [func@Elbus.msgpack_decode_full]).
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
  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return decode_full (data, len, 0, 0, 0, error);
}

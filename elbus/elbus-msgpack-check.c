/* SPDX-License-Identifier: MIT */
/*
 * The first pass of MessagePack decoding: validation and limits, without
 * recursion or allocation (see elbus-msgpack.c). Its own file, so that
 * elbus-monitor, which reads events with msgpack-c directly, builds it in
 * too and takes exactly what elbus_msgpack_decode() takes.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>

/* the whole public API: elbus-monitor builds this file too */
#include <elbus/elbus.h>

#include "elbus-i18n-private.h"
#include "elbus-msgpack-check-private.h"

static gboolean
truncated (gsize    offset,
           GError **error)
{
  g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
               _("the MessagePack data is truncated: the value at offset %lu does not end"),
               (gulong) offset);
  return FALSE;
}

/* Reads a big-endian unsigned integer of @size bytes at *@pos. */
static gboolean
read_uint (const guint8 *data,
           gsize         len,
           gsize        *pos,
           guint         size,
           guint64      *out)
{
  guint64 v = 0;

  if (size > len - *pos)
    return FALSE;
  for (guint i = 0; i < size; i++)
    v = (v << 8) | data[*pos + i];
  *pos += size;
  *out = v;
  return TRUE;
}

static gboolean
check_string (const guint8  *str,
              gsize          len,
              gsize          offset,
              GError       **error)
{
  gsize i;

  /* nearly always a few bytes of ASCII without NUL: valid as they are */
  for (i = 0; i < len && str[i] != 0 && str[i] < 0x80; i++)
    ;
  if (i == len)
    return TRUE;

  if (memchr (str, '\0', len) != NULL)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("the MessagePack string at offset %lu contains a NUL byte, which a "
                     "GVariant string cannot hold"),
                   (gulong) offset);
      return FALSE;
    }
  if (!g_utf8_validate_len ((const char *) str, len, NULL))
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("the MessagePack string at offset %lu is not valid UTF-8"),
                   (gulong) offset);
      return FALSE;
    }
  return TRUE;
}

static gboolean over_limit_error (gboolean    *over_limit,
                                  GError     **error,
                                  const char  *format,
                                  ...) G_GNUC_PRINTF (3, 4);

/* Sets @error and *@over_limit: a limit is what failed. */

static gboolean
over_limit_error (gboolean    *over_limit,
                  GError     **error,
                  const char  *format,
                  ...)
{
  va_list args;

  if (over_limit != NULL)
    *over_limit = TRUE;
  if (error != NULL)
    {
      va_start (args, format);
      *error = g_error_new_valist (ELBUS_ERROR, ELBUS_ERROR_DATA, format, args);
      va_end (args);
    }
  return FALSE;
}

gboolean
_elbus_msgpack_check_full (const guint8              *data,
                           gsize                      len,
                           const ElbusMsgpackLimits  *limits,
                           ElbusMsgpackMapKeys       *map_keys,
                           gboolean                  *over_limit,
                           GError                   **error)
{
  /* Values still to read in each open container (twice the entries for
   * a map), and for maps their index in @map_keys (else G_MAXUINT). */
  guint64 pending[ELBUS_MSGPACK_MAX_DEPTH];
  guint map_index[ELBUS_MSGPACK_MAX_DEPTH];
  guint max_depth = MIN (limits->max_depth, ELBUS_MSGPACK_MAX_DEPTH);
  guint64 values = 1;             /* declared so far, the outermost one included */
  guint depth = 0;
  gsize pos = 0;

  if (over_limit != NULL)
    *over_limit = FALSE;

  if (len == 0)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                           _("the MessagePack data is empty"));
      return FALSE;
    }
  if (len > limits->max_size)
    return over_limit_error (over_limit, error,
                             _("the MessagePack data is %lu bytes long, more than the "
                               "limit of %lu"),
                             (gulong) len, (gulong) limits->max_size);

  do
    {
      gsize start = pos;
      guint8 marker;
      guint header = 0;           /* size of the length field */
      guint skip = 0;             /* fixed payload size */
      gboolean is_str = FALSE, is_bin = FALSE;
      gboolean is_array = FALSE, is_map = FALSE;
      guint8 key_class = ELBUS_MSGPACK_KEY_OTHER;
      guint64 n = 0;

      if (pos >= len)
        return truncated (start, error);
      marker = data[pos++];

      if (marker <= 0x7f)
        key_class = ELBUS_MSGPACK_KEY_INT;
      else if (marker >= 0xe0)
        key_class = ELBUS_MSGPACK_KEY_INT | ELBUS_MSGPACK_KEY_NEGATIVE;
      else if (marker <= 0x8f)
        is_map = TRUE, n = marker & 0x0f;
      else if (marker <= 0x9f)
        is_array = TRUE, n = marker & 0x0f;
      else if (marker <= 0xbf)
        is_str = TRUE, n = marker & 0x1f;
      else
        {
          switch (marker)
            {
            case 0xc0:
              break;
            case 0xc2: case 0xc3:
              key_class = ELBUS_MSGPACK_KEY_BOOL;
              break;
            case 0xc1:
            default:
              g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                           _("the MessagePack data is invalid: byte 0xc1 at offset %lu is "
                             "never used"),
                           (gulong) start);
              return FALSE;
            case 0xc4: is_bin = TRUE, header = 1; break;
            case 0xc5: is_bin = TRUE, header = 2; break;
            case 0xc6: is_bin = TRUE, header = 4; break;
            case 0xc7: case 0xc8: case 0xc9:
            case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
              g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                           _("the MessagePack extension value at offset %lu cannot be "
                             "converted to a GVariant"),
                           (gulong) start);
              return FALSE;
            case 0xca: skip = 4, key_class = ELBUS_MSGPACK_KEY_FLOAT; break;
            case 0xcb: skip = 8, key_class = ELBUS_MSGPACK_KEY_FLOAT; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd9: is_str = TRUE, header = 1; break;
            case 0xda: is_str = TRUE, header = 2; break;
            case 0xdb: is_str = TRUE, header = 4; break;
            case 0xdc: is_array = TRUE, header = 2; break;
            case 0xdd: is_array = TRUE, header = 4; break;
            case 0xde: is_map = TRUE, header = 2; break;
            case 0xdf: is_map = TRUE, header = 4; break;
            }
        }

      if (header > 0 && !read_uint (data, len, &pos, header, &n))
        return truncated (start, error);

      if (skip > len - pos)
        return truncated (start, error);
      if (marker >= 0xcc && marker <= 0xd3)
        {
          /* uint 8-64 and int 8-64: a signed one is negative, and a
           * uint 64 above G_MAXINT64, when its first byte has the top
           * bit set */
          key_class = ELBUS_MSGPACK_KEY_INT;
          if (marker >= 0xd0 && (data[pos] & 0x80) != 0)
            key_class |= ELBUS_MSGPACK_KEY_NEGATIVE;
          else if (marker == 0xcf && (data[pos] & 0x80) != 0)
            key_class |= ELBUS_MSGPACK_KEY_ABOVE_INT64;
        }
      pos += skip;

      if (is_str)
        key_class = ELBUS_MSGPACK_KEY_STR;
      /* a key: the next value of a map whose count of values left is even */
      if (map_keys != NULL && depth > 0 && map_index[depth - 1] != G_MAXUINT &&
          pending[depth - 1] % 2 == 0)
        map_keys->data[map_index[depth - 1]] |= key_class;

      if (is_str || is_bin)
        {
          if (n > len - pos)
            return truncated (start, error);
          if (is_str && !check_string (data + pos, n, start, error))
            return FALSE;
          pos += n;
          if (map_keys != NULL)
            map_keys->content_bytes += n;
        }
      else if (is_array || is_map)
        {
          if (depth >= max_depth)
            {
              if (depth < ELBUS_MSGPACK_MAX_DEPTH && over_limit != NULL)
                *over_limit = TRUE;
              g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                           _("the MessagePack data nests deeper than %u levels at offset %lu"),
                           max_depth, (gulong) start);
              return FALSE;
            }
          if (is_map)
            n *= 2;
          /* Every value takes at least one byte. */
          if (n > len - pos)
            return truncated (start, error);
          values += n;
          if (values > limits->max_values)
            return over_limit_error (over_limit, error,
                                     _("the MessagePack data holds more than %lu values "
                                       "(the limit), at offset %lu"),
                                     (gulong) limits->max_values, (gulong) start);
          if (is_map && map_keys != NULL)
            {
              if (map_keys->len == map_keys->cap)
                {
                  map_keys->cap = MAX (2 * map_keys->cap, 16);
                  map_keys->data = g_realloc (map_keys->data, map_keys->cap);
                }
              map_keys->data[map_keys->len++] = 0;
            }
          if (n > 0)
            {
              map_index[depth] = is_map && map_keys != NULL ? map_keys->len - 1 : G_MAXUINT;
              pending[depth++] = n;
              continue;
            }
        }

      /* A value is complete: count it off its container, and off every
       * container it completes in turn. */
      while (depth > 0 && --pending[depth - 1] == 0)
        depth--;
    }
  while (depth > 0);

  if (map_keys != NULL)
    map_keys->values = values;

  if (pos < len)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("the MessagePack value ends at offset %lu, followed by %lu more bytes"),
                   (gulong) pos, (gulong) (len - pos));
      return FALSE;
    }

  return TRUE;
}

gboolean
_elbus_msgpack_check (const guint8  *data,
                      gsize          len,
                      GError       **error)
{
  const ElbusMsgpackLimits limits = {
    ELBUS_MSGPACK_MAX_DEPTH, ELBUS_MSGPACK_DEFAULT_MAX_VALUES, ELBUS_MSGPACK_DEFAULT_MAX_SIZE
  };

  return _elbus_msgpack_check_full (data, len, &limits, NULL, NULL, error);
}

gboolean
_elbus_msgpack_unpack (const guint8      *data,
                       gsize              len,
                       msgpack_unpacked  *unpacked,
                       GError           **error)
{
  msgpack_unpack_return ret;
  size_t offset = 0;

  msgpack_unpacked_init (unpacked);
  if (!_elbus_msgpack_check (data, len, error))
    return FALSE;

  /* checked, so only a failed allocation can make msgpack-c fail; still,
   * trust neither side blindly */
  ret = msgpack_unpack_next (unpacked, (const char *) data, len, &offset);
  if (ret == MSGPACK_UNPACK_SUCCESS && offset == len)
    return TRUE;
  if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
    g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                         _("msgpack-c ran out of memory decoding the MessagePack data"));
  else
    g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                 _("msgpack-c rejected the MessagePack data (result %d at offset %lu)"),
                 (int) ret, (gulong) offset);
  return FALSE;
}

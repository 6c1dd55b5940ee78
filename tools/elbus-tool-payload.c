/* SPDX-License-Identifier: MIT */
/*
 * Payloads shown as the tools show them: JSON when they are JSON or
 * MessagePack, else text, else hex. Declared in elbus-tool-util.h.
 */

#include "config.h"

#include <math.h>
#include <string.h>

#include <elbus/elbus.h>

#include "elbus-tool-util.h"

/* ---- GVariant to JSON ------------------------------------------------- */

/*
 * json_gvariant_serialize() stores a `t` in a gint64 JsonNode, so an
 * unsigned value above G_MAXINT64 (a MessagePack uint 64 from 2^63 on; the
 * decoder gives `x` below that) would come out negative. A JsonNode cannot
 * hold such a number exactly, and a double would round it without saying
 * so (2^64 - 1 would become 2^64). Such a value is written instead as a
 * string of its decimal digits, "18446744073709551615", as the protobuf
 * JSON mapping writes 64-bit integers: exact, and plainly not an ordinary
 * number. Likewise JSON has no NaN or infinities (json-glib would write
 * "nan.0"): a MessagePack float that is one is written as the string
 * "NaN", "Infinity" or "-Infinity", as that mapping writes them too.
 * Everything else, `t` values up to G_MAXINT64 and `t` map keys included
 * (json-glib formats keys as unsigned), is written as json-glib writes it.
 */

static GVariant *replace_unrepresentable (GVariant *value);

static void
variant_unref0 (gpointer value)
{
  if (value != NULL)
    g_variant_unref (value);
}

/* {key, <value>} for the dictionary entry @entry, with @value (nullable)
 * in place of its own value. Returns a floating reference. */
static GVariant *
dict_entry_boxed (GVariant *entry,
                  GVariant *value)
{
  g_autoptr(GVariant) key = g_variant_get_child_value (entry, 0);
  g_autoptr(GVariant) own = value == NULL ? g_variant_get_child_value (entry, 1) : NULL;

  return g_variant_new_dict_entry (key, g_variant_new_variant (value != NULL ? value : own));
}

/* replace_unrepresentable() for an array, tuple or dictionary entry. Where a
 * child changes, the children of an array (or the values of a dictionary)
 * all go in a `v`, which json-glib writes as its content: the JSON keeps
 * its shape. */
static GVariant *
replace_in_container (GVariant *value)
{
  GVariantClass class = g_variant_classify (value);
  gsize n = g_variant_n_children (value);
  const GVariantType *type = g_variant_get_type (value);
  gboolean is_dict = class == G_VARIANT_CLASS_ARRAY &&
                     g_variant_type_is_dict_entry (g_variant_type_element (type));
  g_autoptr(GPtrArray) replaced = NULL;
  g_autoptr(GPtrArray) children = NULL;
  gboolean any = FALSE;

  if (class == G_VARIANT_CLASS_DICT_ENTRY)
    {
      g_autoptr(GVariant) entry_value = g_variant_get_child_value (value, 1);
      g_autoptr(GVariant) new_value = replace_unrepresentable (entry_value);

      return new_value != NULL ? g_variant_ref_sink (dict_entry_boxed (value, new_value)) : NULL;
    }

  replaced = g_ptr_array_new_full (n, variant_unref0);
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (value, i);
      GVariant *new_child = replace_unrepresentable (child);

      any = any || new_child != NULL;
      g_ptr_array_add (replaced, new_child);
    }
  if (!any)
    return NULL;

  children = g_ptr_array_new_full (n, (GDestroyNotify) g_variant_unref);
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (value, i);
      GVariant *new_child = g_ptr_array_index (replaced, i);
      GVariant *element = new_child != NULL ? new_child : child;

      if (class == G_VARIANT_CLASS_TUPLE)
        g_ptr_array_add (children, g_variant_ref (element));
      else if (is_dict && new_child == NULL)
        g_ptr_array_add (children, g_variant_ref_sink (dict_entry_boxed (child, NULL)));
      else if (is_dict)
        g_ptr_array_add (children, g_variant_ref (new_child));   /* boxed already */
      else
        g_ptr_array_add (children, g_variant_ref_sink (g_variant_new_variant (element)));
    }

  if (class == G_VARIANT_CLASS_TUPLE)
    return g_variant_ref_sink (g_variant_new_tuple ((GVariant **) children->pdata, n));
  return g_variant_ref_sink (g_variant_new_array (is_dict ? NULL : G_VARIANT_TYPE_VARIANT,
                                                  (GVariant **) children->pdata, n));
}

/* A value that json_gvariant_serialize() writes as @value should be
 * written, each `t` above G_MAXINT64 a decimal string and each non-finite
 * `d` a name (see above); NULL when @value holds none, as nearly every
 * value does. The result's type may differ from @value's. */
static GVariant *
replace_unrepresentable (GVariant *value)
{
  /* nothing to do without a `t` or a `d`, or a `v` that could hold one */
  if (strpbrk (g_variant_get_type_string (value), "tdv") == NULL)
    return NULL;

  switch (g_variant_classify (value))
    {
    case G_VARIANT_CLASS_UINT64:
      if (g_variant_get_uint64 (value) <= G_MAXINT64)
        return NULL;
      return g_variant_ref_sink (g_variant_new_take_string (
        g_strdup_printf ("%" G_GUINT64_FORMAT, g_variant_get_uint64 (value))));

    case G_VARIANT_CLASS_DOUBLE:
      {
        double d = g_variant_get_double (value);

        if (isfinite (d))
          return NULL;
        return g_variant_ref_sink (g_variant_new_string (isnan (d) ? "NaN" :
                                                         d > 0 ? "Infinity" : "-Infinity"));
      }

    case G_VARIANT_CLASS_VARIANT:
    case G_VARIANT_CLASS_MAYBE:
      /* written as their content (an empty maybe as null) */
      if (g_variant_n_children (value) == 0)
        return NULL;
      {
        g_autoptr(GVariant) child = g_variant_get_child_value (value, 0);

        return replace_unrepresentable (child);
      }

    case G_VARIANT_CLASS_ARRAY:
    case G_VARIANT_CLASS_TUPLE:
    case G_VARIANT_CLASS_DICT_ENTRY:
      return replace_in_container (value);

    default:
      return NULL;
    }
}

/* json_gvariant_serialize(), but with unsigned integers above G_MAXINT64
 * as decimal strings and NaN and the infinities as names (see above). */
static JsonNode *
variant_to_json_node (GVariant *value)
{
  g_autoptr(GVariant) replaced = replace_unrepresentable (value);

  return json_gvariant_serialize (replaced != NULL ? replaced : value);
}

/* ---- payloads --------------------------------------------------------- */

/* UTF-8 without control characters other than tab, newline and return. */
static gboolean
payload_is_printable (const guint8 *data,
                      gsize         len)
{
  if (!g_utf8_validate_len ((const char *) data, len, NULL))
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (data[i] < 0x20 && data[i] != '\t' && data[i] != '\n' && data[i] != '\r')
      return FALSE;
  return TRUE;
}

/**
 * elbus_tool_payload_format_name:
 * @format: a payload format
 *
 * Returns: (transfer none): the format's name as the tools print it:
 *   `empty`, `json`, `text`, `msgpack` or `hex`
 */
const char *
elbus_tool_payload_format_name (ElbusToolPayloadFormat format)
{
  static const char * const names[] = { "empty", "json", "text", "msgpack", "hex" };

  g_return_val_if_fail ((guint) format < G_N_ELEMENTS (names), "hex");

  return names[format];
}

/* @prefix and the lowercase hex digits of @data, in one allocation */
static char *
payload_to_hex (const char   *prefix,
                const guint8 *data,
                gsize         len)
{
  static const char digits[] = "0123456789abcdef";
  gsize skip = strlen (prefix);
  char *hex = g_malloc (skip + len * 2 + 1);
  char *out = hex + skip;

  memcpy (hex, prefix, skip);
  for (gsize i = 0; i < len; i++)
    {
      out[2 * i] = digits[data[i] >> 4];
      out[2 * i + 1] = digits[data[i] & 0x0f];
    }
  out[len * 2] = '\0';
  return hex;
}

/* Payloads of more values than this are shown as text or hex, not as
 * JSON: JSON-GLib spends some hundred bytes per value, and a hostile
 * payload (16 MiB of MessagePack zeros, or of "[0,0,...]") must not
 * make `elbus listen` balloon. Well above what anyone reads. */
#define DISPLAY_MAX_VALUES 65536

/* Whether JSON text @data holds at most DISPLAY_MAX_VALUES values: every
 * value but the first follows a `,`, `:`, `[` or `{`. */
static gboolean
json_within_display_limit (const guint8 *data,
                           gsize         len)
{
  gsize n = 0;

  for (gsize i = 0; i < len; i++)
    if (data[i] == ',' || data[i] == ':' || data[i] == '[' || data[i] == '{')
      if (++n >= DISPLAY_MAX_VALUES)
        return FALSE;
  return TRUE;
}

/* Whether JSON-GLib could take printable @data: not when it starts, after
 * blanks, with a letter that begins none of true, false, null and var
 * (JSON-GLib takes "var NAME = VALUE;"). Saves text payloads a parse that
 * fails, error message and all, each time. */
static gboolean
might_be_json (const guint8 *data,
               gsize         len)
{
  gsize i = 0;

  while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
    i++;
  return i == len || !g_ascii_isalpha (data[i]) || strchr ("tfnv", data[i]) != NULL;
}

static JsonNode *payload_decode (const guint8           *data,
                                 gsize                   len,
                                 ElbusToolPayloadFormat *format);

/**
 * elbus_tool_payload_decode:
 * @data: (array length=len): the payload
 * @len: its length
 * @format: (out): what the payload was taken for
 *
 * Decodes a payload the way the tools show it. Printable text is JSON
 * when it parses as JSON, else text; anything else is MessagePack when it
 * decodes as MessagePack, else shown in hex. (Text goes first: a printable
 * byte such as `5` is also a MessagePack integer.) JSON or MessagePack of
 * more than DISPLAY_MAX_VALUES values is shown as text or hex.
 *
 * Returns: (transfer full): the decoded value for JSON and MessagePack
 *   (a MessagePack unsigned integer above %G_MAXINT64 as a string of its
 *   decimal digits: JSON-GLib cannot hold it as a number); a string node
 *   holding the text, the lowercase hex digits (no `0x`), or `""` for an
 *   empty payload
 */
JsonNode *
elbus_tool_payload_decode (const guint8           *data,
                           gsize                   len,
                           ElbusToolPayloadFormat *format)
{
  JsonNode *node;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (format != NULL, NULL);

  node = payload_decode (data, len, format);
  if (node == NULL)
    {
      g_autofree char *hex = payload_to_hex ("", data, len);

      node = json_node_init_string (json_node_alloc (), hex);
    }
  return node;
}

/* elbus_tool_payload_decode(), but NULL for %ELBUS_TOOL_PAYLOAD_HEX: a
 * hostile payload's hex digits are written once, where they are needed */
static JsonNode *
payload_decode (const guint8           *data,
                gsize                   len,
                ElbusToolPayloadFormat *format)
{
  g_autoptr(GVariant) value = NULL;

  if (len == 0)
    {
      *format = ELBUS_TOOL_PAYLOAD_EMPTY;
      return json_node_init_string (json_node_alloc (), "");
    }

  if (payload_is_printable (data, len))
    {
      g_autofree char *text = NULL;

      if (might_be_json (data, len) && json_within_display_limit (data, len))
        {
          g_autoptr(JsonParser) parser = json_parser_new_immutable ();

          if (json_parser_load_from_data (parser, (const char *) data, len, NULL) &&
              json_parser_get_root (parser) != NULL)
            {
              *format = ELBUS_TOOL_PAYLOAD_JSON;
              return json_node_copy (json_parser_get_root (parser));
            }
        }
      *format = ELBUS_TOOL_PAYLOAD_TEXT;
      text = g_strndup ((const char *) data, len);
      return json_node_init_string (json_node_alloc (), text);
    }

  {
    g_autoptr(GBytes) bytes = g_bytes_new_static (data, len);

    value = elbus_msgpack_decode_full (bytes, 0, DISPLAY_MAX_VALUES, 0, NULL);
  }
  if (value != NULL)
    {
      *format = ELBUS_TOOL_PAYLOAD_MSGPACK;
      return variant_to_json_node (value);
    }

  *format = ELBUS_TOOL_PAYLOAD_HEX;
  return NULL;
}

/**
 * elbus_tool_format_payload_data:
 * @data: (array length=len): the payload
 * @len: its length
 *
 * A payload as one piece of text (see elbus_tool_payload_decode()): JSON
 * and MessagePack as compact JSON, text as it is, anything else as `0x`
 * and hex digits, an empty payload as `""`.
 *
 * Returns: (transfer full): the text
 */
char *
elbus_tool_format_payload_data (const guint8 *data,
                                gsize         len)
{
  ElbusToolPayloadFormat format;
  g_autoptr(JsonNode) node = NULL;

  g_return_val_if_fail (data != NULL || len == 0, NULL);

  node = payload_decode (data, len, &format);
  switch (format)
    {
    case ELBUS_TOOL_PAYLOAD_JSON:
    case ELBUS_TOOL_PAYLOAD_MSGPACK:
      return json_to_string (node, FALSE);
    case ELBUS_TOOL_PAYLOAD_HEX:
      return payload_to_hex ("0x", data, len);
    case ELBUS_TOOL_PAYLOAD_EMPTY:
    case ELBUS_TOOL_PAYLOAD_TEXT:
    default:
      return json_node_dup_string (node);
    }
}

/**
 * elbus_tool_variant_to_json:
 * @value: a value, typically decoded from MessagePack
 *
 * Writes @value as json_gvariant_serialize() does, except that a `t` above
 * %G_MAXINT64 is a string of its decimal digits, not a negative number.
 *
 * Returns: (transfer full): @value as compact JSON
 */
char *
elbus_tool_variant_to_json (GVariant *value)
{
  g_autoptr(JsonNode) node = NULL;

  g_return_val_if_fail (value != NULL, NULL);

  node = variant_to_json_node (value);
  return json_to_string (node, FALSE);
}

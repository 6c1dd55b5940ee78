/* SPDX-License-Identifier: MIT */
/*
 * Payloads shown as the tools show them: JSON when they are JSON or
 * MessagePack, else text, else hex. Declared in elbus-tool-util.h.
 */

#include "config.h"

#include <string.h>

#include <elbus/elbus.h>

#include "elbus-tool-util.h"

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

static char *
payload_to_hex (const guint8 *data,
                gsize         len)
{
  GString *hex = g_string_sized_new (len * 2 + 1);

  for (gsize i = 0; i < len; i++)
    g_string_append_printf (hex, "%02x", data[i]);

  return g_string_free (hex, FALSE);
}

/**
 * elbus_tool_payload_decode:
 * @data: (array length=len): the payload
 * @len: its length
 * @format: (out): what the payload was taken for
 *
 * Decodes a payload the way the tools show it. Printable text is JSON
 * when it parses as JSON, else text; anything else is MessagePack when it
 * decodes as MessagePack, else shown in hex. (Text goes first: a printable
 * byte such as `5` is also a MessagePack integer.)
 *
 * Returns: (transfer full): the decoded value for JSON and MessagePack; a
 *   string node holding the text, the lowercase hex digits (no `0x`), or
 *   `""` for an empty payload
 */
JsonNode *
elbus_tool_payload_decode (const guint8           *data,
                           gsize                   len,
                           ElbusToolPayloadFormat *format)
{
  g_autoptr(GVariant) value = NULL;
  g_autofree char *hex = NULL;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (format != NULL, NULL);

  if (len == 0)
    {
      *format = ELBUS_TOOL_PAYLOAD_EMPTY;
      return json_node_init_string (json_node_alloc (), "");
    }

  if (payload_is_printable (data, len))
    {
      g_autoptr(JsonParser) parser = json_parser_new_immutable ();
      g_autofree char *text = NULL;

      if (json_parser_load_from_data (parser, (const char *) data, len, NULL) &&
          json_parser_get_root (parser) != NULL)
        {
          *format = ELBUS_TOOL_PAYLOAD_JSON;
          return json_node_copy (json_parser_get_root (parser));
        }
      *format = ELBUS_TOOL_PAYLOAD_TEXT;
      text = g_strndup ((const char *) data, len);
      return json_node_init_string (json_node_alloc (), text);
    }

  value = elbus_msgpack_decode_data (data, len, NULL);
  if (value != NULL)
    {
      *format = ELBUS_TOOL_PAYLOAD_MSGPACK;
      return json_gvariant_serialize (value);
    }

  *format = ELBUS_TOOL_PAYLOAD_HEX;
  hex = payload_to_hex (data, len);
  return json_node_init_string (json_node_alloc (), hex);
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
  g_autoptr(JsonNode) node = elbus_tool_payload_decode (data, len, &format);

  switch (format)
    {
    case ELBUS_TOOL_PAYLOAD_JSON:
    case ELBUS_TOOL_PAYLOAD_MSGPACK:
      return json_to_string (node, FALSE);
    case ELBUS_TOOL_PAYLOAD_HEX:
      return g_strconcat ("0x", json_node_get_string (node), NULL);
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
 * Returns: (transfer full): @value as compact JSON
 */
char *
elbus_tool_variant_to_json (GVariant *value)
{
  g_autoptr(JsonNode) node = NULL;

  g_return_val_if_fail (value != NULL, NULL);

  node = json_gvariant_serialize (value);
  return json_to_string (node, FALSE);
}

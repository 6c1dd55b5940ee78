/* SPDX-License-Identifier: MIT */
/* elbus-monitor's event decoder: monitor events and RPC payloads, from bytes. */
#include "config.h"

#include <string.h>
#include <msgpack.h>

#include <elbus/elbus.h>

#include "elbus-monitor-event.h"
#include "elbus-msgpack-check-private.h"

const char * const kind_names[N_KINDS] = {
  "message", "broadcast", "publish", "subscribe", "unsubscribe", "reg", "unreg",
};

void
event_clear (Event *ev)
{
  g_clear_pointer (&ev->bytes, g_bytes_unref);
  g_clear_pointer (&ev->heap, g_free);
}

gboolean
kind_has_payload (EventKind kind)
{
  return kind == KIND_MESSAGE || kind == KIND_BROADCAST || kind == KIND_PUBLISH;
}

gboolean
kind_from_string (const char *name,
                  EventKind  *kind)
{
  for (guint i = 0; i < N_KINDS; i++)
    if (g_str_equal (name, kind_names[i]))
      {
        *kind = i;
        return TRUE;
      }
  return FALSE;
}

/* ---- decoding events ---------------------------------------------------
 *
 * Events come by the hundred thousand per second, so the map is read with
 * msgpack-c directly rather than through elbus_msgpack_decode(), whose
 * GVariant tree would cost most of the monitor's time. The event is taken
 * exactly as it was from that tree, though: first _elbus_msgpack_check(),
 * the library's own first pass built in here too, refuses what
 * elbus_msgpack_decode() refuses, with the same messages; then
 * msgpack-c unpacks it (its objects point into the bytes: strings and
 * the payload are not copied) and the top-level map is read in one pass.
 */

/* A non-negative integer; 0 for anything else (a negative integer, a
 * float, a string…). */
static guint64
object_to_uint (const msgpack_object *obj)
{
  return obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? obj->via.u64 : 0;
}

/* The string @str (checked: no NUL) NUL-terminated at *@pos, which
 * moves past it. An empty str may have a NULL pointer. */
static char *
copy_string (char                     **pos,
             const msgpack_object_str  *str)
{
  char *copy = *pos;

  if (str->size > 0)
    memcpy (copy, str->ptr, str->size);
  copy[str->size] = '\0';
  *pos += str->size + 1;
  return copy;
}

/* Reads the event map @obj in one pass, as the GVariant tree was read:
 * of repeated members the last counts, except that the first list of
 * masks @d and the first payload @p do; a string member of another type
 * counts as missing and an integer member of another type (or negative)
 * as 0; members whose key is not one letter are a later version's and
 * ignored. */
static gboolean
event_read_map (Event                 *ev,
                const msgpack_object  *obj,
                GError               **error)
{
  const msgpack_object_str *kind = NULL, *sender = NULL, *dest = NULL;
  const msgpack_object_array *masks = NULL;
  const msgpack_object_bin *payload = NULL;
  gboolean want_masks;
  gsize n_masks = 0, need = 0;
  char *pos;

  if (obj->type != MSGPACK_OBJECT_MAP)
    goto not_a_map;

  for (guint32 i = 0; i < obj->via.map.size; i++)
    {
      const msgpack_object *key = &obj->via.map.ptr[i].key;
      const msgpack_object *value = &obj->via.map.ptr[i].val;

      if (key->type != MSGPACK_OBJECT_STR)
        goto not_a_map;
      if (key->via.str.size != 1)
        continue;     /* not ours: a later version's, ignored */

      switch (key->via.str.ptr[0])
        {
        case 't':
          ev->t = (gint64) MIN (object_to_uint (value), (guint64) G_MAXINT64);
          break;
        case 'k':
          kind = value->type == MSGPACK_OBJECT_STR ? &value->via.str : NULL;
          break;
        case 's':
          sender = value->type == MSGPACK_OBJECT_STR ? &value->via.str : NULL;
          break;
        case 'd':
          if (value->type == MSGPACK_OBJECT_STR)
            dest = &value->via.str;
          else if (value->type == MSGPACK_OBJECT_ARRAY && masks == NULL)
            masks = &value->via.array;
          break;
        case 'q':
          ev->qos = (guint) MIN (object_to_uint (value), 3);
          break;
        case 'n':
          ev->recipients = object_to_uint (value);
          break;
        case 'r':
          ev->result = (guint) MIN (object_to_uint (value), 0xff);
          break;
        case 'l':
          ev->size = object_to_uint (value);
          break;
        case 'p':
          if (value->type == MSGPACK_OBJECT_BIN && payload == NULL)
            payload = &value->via.bin;
          break;
        default:
          break;
        }
    }

  ev->kind = N_KINDS;
  for (guint i = 0; kind != NULL && i < N_KINDS; i++)
    if (kind->size == strlen (kind_names[i]) &&
        memcmp (kind->ptr, kind_names[i], kind->size) == 0)
      ev->kind = i;
  if (ev->kind == N_KINDS)
    {
      g_autofree char *name = kind != NULL ? g_strndup (kind->ptr, kind->size)
                                           : g_strdup ("(none)");

      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, "unknown kind “%s”", name);
      return FALSE;
    }

  if (payload != NULL && payload->size > 0)
    {
      ev->payload = (const guint8 *) payload->ptr;
      ev->payload_len = payload->size;
    }
  /* what was sent is never more than the whole */
  ev->size = MAX (ev->size, ev->payload_len);

  /* Only what is shown: a target or topic for the kinds with a payload;
   * masks for subscriptions, and for reg and unreg when the map has some
   * (their line shows them), never for the kinds with a payload */
  if (!kind_has_payload (ev->kind))
    dest = NULL;
  want_masks = ev->kind == KIND_SUBSCRIBE || ev->kind == KIND_UNSUBSCRIBE ||
               (masks != NULL && !kind_has_payload (ev->kind));

  /* the room for the strings: the masks array first, for its alignment */
  if (want_masks)
    {
      for (guint32 i = 0; masks != NULL && i < masks->size; i++)
        if (masks->ptr[i].type == MSGPACK_OBJECT_STR)
          {
            n_masks++;
            need += masks->ptr[i].via.str.size + 1;
          }
      need += (n_masks + 1) * sizeof (char *);
    }
  if (sender != NULL)
    need += sender->size + 1;
  if (dest != NULL)
    need += dest->size + 1;
  if (need <= sizeof ev->strings)
    pos = ev->strings.bytes;
  else
    pos = ev->heap = g_malloc (need);

  if (want_masks)
    {
      gsize j = 0;

      ev->masks = (char **) (gpointer) pos;
      pos += (n_masks + 1) * sizeof (char *);
      for (guint32 i = 0; masks != NULL && i < masks->size; i++)
        if (masks->ptr[i].type == MSGPACK_OBJECT_STR)
          ev->masks[j++] = copy_string (&pos, &masks->ptr[i].via.str);
      ev->masks[j] = NULL;
    }
  ev->sender = sender != NULL ? copy_string (&pos, sender) : "";
  if (kind_has_payload (ev->kind))
    ev->dest = dest != NULL ? copy_string (&pos, dest) : "";

  return TRUE;

not_a_map:
  g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, "not a map with string keys");
  return FALSE;
}

gboolean
event_parse (GBytes  *bytes,
             Event   *ev,
             GError **error)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  msgpack_unpacked unpacked;
  gboolean ok;

  ok = _elbus_msgpack_unpack (data, len, &unpacked, error) &&
       event_read_map (ev, &unpacked.data, error);
  msgpack_unpacked_destroy (&unpacked);

  /* the payload points into it */
  if (ok)
    ev->bytes = g_bytes_ref (bytes);
  return ok;
}

/* `.broker` announcing clients (docs/protocol.md section 6): the reg and unreg
 * events say the same, so these are left out unless asked for. */
gboolean
event_is_announcement (const Event *ev)
{
  return ev->kind == KIND_PUBLISH && g_str_equal (ev->sender, BROKER_NAME) &&
         ev->dest != NULL && g_str_has_prefix (ev->dest, BROKER_NAME "/");
}

gboolean
event_is_truncated (const Event *ev)
{
  return ev->size > ev->payload_len;
}

/* The wire result byte (docs/protocol.md section 2) as a word. */
const char *
result_name (guint code)
{
  switch (code)
    {
    case 0x01:
      return "ok";
    case ELBUS_ERROR_NOT_REGISTERED:
      return "not_registered";
    case ELBUS_ERROR_DATA:
      return "data";
    case ELBUS_ERROR_IO:
      return "io";
    case ELBUS_ERROR_OTHER:
      return "other";
    case ELBUS_ERROR_NOT_SUPPORTED:
      return "not_supported";
    case ELBUS_ERROR_BUSY:
      return "busy";
    case ELBUS_ERROR_NOT_DELIVERED:
      return "not_delivered";
    case ELBUS_ERROR_TIMEOUT:
      return "timeout";
    case ELBUS_ERROR_ACCESS:
      return "access_denied";
    default:
      return "unknown";
    }
}

/* ---- the RPC layer (docs/protocol.md section 8) ----------------------------- */

static guint32
read_u32_le (const guint8 *data)
{
  return (guint32) data[0] | (guint32) data[1] << 8 | (guint32) data[2] << 16 |
         (guint32) data[3] << 24;
}

/* A message payload that parses as RPC: the type byte, then its layout.
 * A call whose method is cut off by --max-payload or is not UTF-8 is not
 * taken for RPC. */
gboolean
rpc_parse (const guint8 *data,
           gsize         len,
           Rpc          *rpc)
{
  if (len < 1)
    return FALSE;

  switch (data[0])
    {
    case 0x00:
      rpc->type = RPC_NOTIFICATION;
      rpc->body = data + 1;
      rpc->body_len = len - 1;
      return TRUE;

    case 0x01:
      {
        const guint8 *end;

        if (len < 6)
          return FALSE;
        end = memchr (data + 5, 0, len - 5);
        if (end == NULL || !g_utf8_validate_len ((const char *) data + 5, end - (data + 5), NULL))
          return FALSE;
        rpc->type = RPC_CALL;
        rpc->id = read_u32_le (data + 1);
        rpc->method = (const char *) data + 5;
        rpc->body = end + 1;
        rpc->body_len = len - (end + 1 - data);
        return TRUE;
      }

    case 0x11:
      if (len < 5)
        return FALSE;
      rpc->type = RPC_REPLY;
      rpc->id = read_u32_le (data + 1);
      rpc->body = data + 5;
      rpc->body_len = len - 5;
      return TRUE;

    case 0x12:
      if (len < 7)
        return FALSE;
      rpc->type = RPC_ERROR;
      rpc->id = read_u32_le (data + 1);
      rpc->code = (gint16) (guint16) (data[5] | data[6] << 8);
      rpc->body = data + 7;
      rpc->body_len = len - 7;
      return TRUE;

    default:
      return FALSE;
    }
}

const char *
rpc_type_name (const Rpc *rpc)
{
  switch (rpc->type)
    {
    case RPC_NOTIFICATION:
      return "notification";
    case RPC_CALL:
      return "call";
    case RPC_REPLY:
      return "reply";
    case RPC_ERROR:
      return "error";
    case RPC_NONE:
    default:
      return "none";
    }
}

/* The payload as RPC when the event is a message and the payload parses. */
gboolean
event_parse_rpc (const Event *ev,
                 Rpc         *rpc)
{
  return ev->kind == KIND_MESSAGE && rpc_parse (ev->payload, ev->payload_len, rpc);
}

/* SPDX-License-Identifier: MIT */
/*
 * The elbus wire codec: docs/protocol.md sections 1 to 3, and nothing else.
 *
 * Every decoder takes the bytes a reader has buffered so far and never
 * looks past @len; every encoder writes into a caller buffer. Nothing here
 * allocates, blocks or knows about sockets, which is what lets the broker
 * route straight out of its read buffer and lets the fuzzer call in.
 */
#include "config.h"

#include <string.h>

#include "elbus-codec-private.h"
#include "elbus-error.h"
#include "elbus-i18n-private.h"

#define DECODE_ERROR(error, ...) \
  (g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, __VA_ARGS__), ELBUS_DECODE_ERROR)

void
_elbus_codec_encode_greeting (guint8 out[ELBUS_GREETING_LEN])
{
  out[0] = ELBUS_GREETING;
  out[1] = ELBUS_WIRE_VERSION;
  out[2] = 0;
}

/* Answers the client's echo of the greeting: *result is ELBUS_RESULT_OK or
 * ELBUS_ERROR_NOT_SUPPORTED. */
ElbusDecodeStatus
_elbus_codec_decode_greeting (const guint8 *buf,
                              gsize         len,
                              guint8       *result)
{
  if (len < ELBUS_GREETING_LEN)
    return ELBUS_DECODE_INCOMPLETE;

  if (buf[0] == ELBUS_GREETING && buf[1] == ELBUS_WIRE_VERSION && buf[2] == 0)
    *result = ELBUS_RESULT_OK;
  else
    *result = ELBUS_ERROR_NOT_SUPPORTED;

  return ELBUS_DECODE_OK;
}

/* Writes the u16 length and the name; returns the bytes written, or 0 when
 * the name does not fit in @out_len or in a u16. */
gsize
_elbus_codec_encode_name (guint8     *out,
                          gsize       out_len,
                          const char *name)
{
  gsize name_len = strlen (name);

  if (name_len > G_MAXUINT16 || name_len + 2 > out_len)
    return 0;

  out[0] = name_len & 0xff;
  out[1] = (name_len >> 8) & 0xff;
  memcpy (out + 2, name, name_len);

  return name_len + 2;
}

ElbusDecodeStatus
_elbus_codec_decode_name (const guint8  *buf,
                          gsize          len,
                          const char   **name,
                          gsize         *name_len,
                          gsize         *consumed,
                          gsize         *needed)
{
  gsize n;

  if (len < 2)
    {
      *needed = 2;
      return ELBUS_DECODE_INCOMPLETE;
    }

  n = (gsize) buf[0] | ((gsize) buf[1] << 8);
  if (len < 2 + n)
    {
      *needed = 2 + n;
      return ELBUS_DECODE_INCOMPLETE;
    }

  *name = (const char *) buf + 2;
  *name_len = n;
  *consumed = 2 + n;

  return ELBUS_DECODE_OK;
}

/* The registration checks that need nothing but the name: returns
 * ELBUS_RESULT_OK or ELBUS_ERROR_DATA (empty, reserved '.' prefix, too
 * long, a NUL byte, invalid UTF-8). Whether the name is free, and whether a
 * secondary's primary is connected, is the broker's business. */
guint8
_elbus_codec_check_name (const char *name,
                         gsize       name_len)
{
  if (name_len == 0 || name_len > ELBUS_CODEC_MAX_NAME_LENGTH)
    return ELBUS_ERROR_DATA;

  if (name[0] == '.')
    return ELBUS_ERROR_DATA;

  /* g_utf8_validate_len() refuses embedded NULs, which names never hold */
  if (!g_utf8_validate_len (name, name_len, NULL))
    return ELBUS_ERROR_DATA;

  return ELBUS_RESULT_OK;
}

/* A secondary client's name is PRIMARY%%SUFFIX. Returns TRUE for one and
 * sets *primary_len to the length of PRIMARY. */
gboolean
_elbus_codec_split_secondary (const char *name,
                              gsize       name_len,
                              gsize      *primary_len)
{
  for (gsize i = 0; i + 1 < name_len; i++)
    {
      if (name[i] == '%' && name[i + 1] == '%')
        {
          *primary_len = i;
          return TRUE;
        }
    }

  return FALSE;
}

void
_elbus_codec_encode_client_header (guint8   out[ELBUS_CLIENT_HEADER_LEN],
                                   guint32  op_id,
                                   guint8   op,
                                   ElbusQoS qos,
                                   guint32  body_len)
{
  _elbus_write_u32 (out, op_id);
  out[4] = (op & 0x3f) | ((qos & 0x03) << 6);
  _elbus_write_u32 (out + 5, body_len);
}

static gboolean
find_terminator (const guint8 *body,
                 gsize         body_len,
                 gsize        *pos)
{
  const guint8 *nul = memchr (body, 0, body_len);

  if (nul == NULL)
    return FALSE;

  *pos = nul - body;
  return TRUE;
}

static gboolean
valid_masks (const guint8 *body,
             gsize         body_len)
{
  gsize pos = 0;
  const char *mask;
  gsize mask_len;

  while (_elbus_codec_next_mask (body, body_len, &pos, &mask, &mask_len))
    {
      if (!g_utf8_validate_len (mask, mask_len, NULL))
        return FALSE;
    }

  return TRUE;
}

ElbusDecodeStatus
_elbus_codec_decode_client_frame (const guint8      *buf,
                                  gsize              len,
                                  guint32            max_body,
                                  ElbusClientFrame  *frame,
                                  gsize             *needed,
                                  GError           **error)
{
  guint8 flags;
  guint32 body_len;
  gsize terminator;

  if (len < ELBUS_CLIENT_HEADER_LEN)
    {
      *needed = ELBUS_CLIENT_HEADER_LEN;
      return ELBUS_DECODE_INCOMPLETE;
    }

  memset (frame, 0, sizeof *frame);
  frame->op_id = _elbus_read_u32 (buf);
  flags = buf[4];
  frame->op = flags & 0x3f;
  frame->qos = flags >> 6;

  /* a ping is the bare header; its length field means nothing */
  if (flags == 0)
    {
      frame->frame_len = ELBUS_CLIENT_HEADER_LEN;
      return ELBUS_DECODE_OK;
    }

  switch (frame->op)
    {
    case ELBUS_OP_NOP:
    case ELBUS_OP_PUBLISH:
    case ELBUS_OP_SUBSCRIBE:
    case ELBUS_OP_UNSUBSCRIBE:
    case ELBUS_OP_MESSAGE:
    case ELBUS_OP_BROADCAST:
      break;
    default:
      return DECODE_ERROR (error, _("unknown operation 0x%02x"), frame->op);
    }

  body_len = _elbus_read_u32 (buf + 5);
  if (body_len > max_body)
    return DECODE_ERROR (error, _("frame body of %u bytes is over the limit of %u"),
                         body_len, max_body);

  if (len - ELBUS_CLIENT_HEADER_LEN < body_len)
    {
      *needed = ELBUS_CLIENT_HEADER_LEN + (gsize) body_len;
      return ELBUS_DECODE_INCOMPLETE;
    }

  frame->body = buf + ELBUS_CLIENT_HEADER_LEN;
  frame->body_len = body_len;
  frame->frame_len = ELBUS_CLIENT_HEADER_LEN + (gsize) body_len;

  switch (frame->op)
    {
    case ELBUS_OP_NOP:
      /* op 0 with QoS bits (a ping has flags 0): the original parses its
       * body as TARGET 00 PAYLOAD, then ignores it; so a body that does
       * not parse is a protocol error here too */
    case ELBUS_OP_PUBLISH:
    case ELBUS_OP_MESSAGE:
    case ELBUS_OP_BROADCAST:
      if (!find_terminator (frame->body, body_len, &terminator))
        return DECODE_ERROR (error, _("no 0x00 after the target of operation 0x%02x"),
                             frame->op);
      if (!g_utf8_validate_len ((const char *) frame->body, terminator, NULL))
        return DECODE_ERROR (error, _("target of operation 0x%02x is not valid UTF-8"),
                             frame->op);
      frame->target = (const char *) frame->body;
      frame->target_len = terminator;
      frame->payload = frame->body + terminator + 1;
      frame->payload_len = body_len - terminator - 1;
      break;

    default:
      /* ELBUS_OP_SUBSCRIBE, ELBUS_OP_UNSUBSCRIBE */
      if (!valid_masks (frame->body, body_len))
        return DECODE_ERROR (error, _("a topic mask of operation 0x%02x is not valid UTF-8"),
                             frame->op);
      break;
    }

  return ELBUS_DECODE_OK;
}

/* Iterates over the 0x00-separated masks of a (un)subscribe body. An empty
 * body holds one empty mask; a trailing 0x00 does not add another one.
 * Start with *pos = 0; returns FALSE when done. */
gboolean
_elbus_codec_next_mask (const guint8  *body,
                        gsize          body_len,
                        gsize         *pos,
                        const char   **mask,
                        gsize         *mask_len)
{
  gsize start = *pos;
  gsize end;

  if (start > body_len || (start == body_len && start > 0))
    return FALSE;

  end = start;
  while (end < body_len && body[end] != 0)
    end++;

  *mask = (const char *) body + start;
  *mask_len = end - start;
  /* past the terminator; a body ending in 0x00 ends here too */
  *pos = end + 1;
  if (*pos == body_len && end < body_len)
    *pos = body_len + 1;

  return TRUE;
}

void
_elbus_codec_encode_broker_header (guint8   out[ELBUS_BROKER_HEADER_LEN],
                                   guint8   kind,
                                   guint32  len,
                                   gboolean realtime)
{
  out[0] = kind;
  _elbus_write_u32 (out + 1, len);
  out[5] = realtime ? 1 : 0;
}

void
_elbus_codec_encode_ack (guint8  out[ELBUS_ACK_LEN],
                         guint32 op_id,
                         guint8  result)
{
  out[0] = ELBUS_KIND_ACK;
  _elbus_write_u32 (out + 1, op_id);
  out[5] = result;
}

ElbusDecodeStatus
_elbus_codec_decode_broker_frame (const guint8      *buf,
                                  gsize              len,
                                  guint32            max_body,
                                  ElbusBrokerFrame  *frame,
                                  gsize             *needed,
                                  GError           **error)
{
  guint32 body_len;
  const guint8 *body;
  gsize sender_end, topic_end;

  if (len < ELBUS_BROKER_HEADER_LEN)
    {
      *needed = ELBUS_BROKER_HEADER_LEN;
      return ELBUS_DECODE_INCOMPLETE;
    }

  memset (frame, 0, sizeof *frame);
  frame->kind = buf[0];

  switch (frame->kind)
    {
    case ELBUS_KIND_PING:
      frame->frame_len = ELBUS_BROKER_HEADER_LEN;
      return ELBUS_DECODE_OK;

    case ELBUS_KIND_ACK:
      frame->op_id = _elbus_read_u32 (buf + 1);
      frame->result = buf[5];
      frame->frame_len = ELBUS_ACK_LEN;
      return ELBUS_DECODE_OK;

    case ELBUS_KIND_MESSAGE:
    case ELBUS_KIND_BROADCAST:
    case ELBUS_KIND_PUBLISH:
      break;

    default:
      return DECODE_ERROR (error, _("unknown frame kind 0x%02x"), frame->kind);
    }

  body_len = _elbus_read_u32 (buf + 1);
  if (body_len > max_body)
    return DECODE_ERROR (error, _("frame of %u bytes is over the limit of %u"),
                         body_len, max_body);

  if (len - ELBUS_BROKER_HEADER_LEN < body_len)
    {
      *needed = ELBUS_BROKER_HEADER_LEN + (gsize) body_len;
      return ELBUS_DECODE_INCOMPLETE;
    }

  frame->realtime = buf[5] != 0;
  frame->frame_len = ELBUS_BROKER_HEADER_LEN + (gsize) body_len;
  body = buf + ELBUS_BROKER_HEADER_LEN;

  if (!find_terminator (body, body_len, &sender_end))
    return DECODE_ERROR (error, _("no 0x00 after the sender"));
  if (!g_utf8_validate_len ((const char *) body, sender_end, NULL))
    return DECODE_ERROR (error, _("sender is not valid UTF-8"));
  frame->sender = (const char *) body;
  frame->sender_len = sender_end;
  frame->payload = body + sender_end + 1;
  frame->payload_len = body_len - sender_end - 1;

  if (frame->kind == ELBUS_KIND_PUBLISH)
    {
      if (!find_terminator (frame->payload, frame->payload_len, &topic_end))
        return DECODE_ERROR (error, _("no 0x00 after the topic"));
      if (!g_utf8_validate_len ((const char *) frame->payload, topic_end, NULL))
        return DECODE_ERROR (error, _("topic is not valid UTF-8"));
      frame->topic = (const char *) frame->payload;
      frame->topic_len = topic_end;
      frame->payload += topic_end + 1;
      frame->payload_len -= topic_end + 1;
    }

  return ELBUS_DECODE_OK;
}

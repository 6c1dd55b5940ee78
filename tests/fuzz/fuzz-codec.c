/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the pure wire codec (elbus-codec-private.h): the
 * input is decoded as a stream of client frames and as a stream of broker
 * frames under several body limits, as a handshake name, and every
 * SUBSCRIBE/UNSUBSCRIBE body is walked mask by mask. Invariants that the
 * codec's callers rely on are checked with abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elbus-codec-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort (); } while (0)

static const guint32 max_bodies[] = { 0, 1, 16, 4096, 64u * 1024u * 1024u, G_MAXUINT32 };

static gboolean
within (const void *p, gsize n, const guint8 *start, gsize len)
{
  const guint8 *q = p;

  return q >= start && q <= start + len && n <= (gsize) (start + len - q);
}

static void
check_masks (const guint8 *body, gsize body_len)
{
  gsize pos = 0, total = 0, last = 0;
  const char *mask;
  gsize mask_len;
  guint n = 0;

  while (_elbus_codec_next_mask (body, body_len, &pos, &mask, &mask_len))
    {
      CHECK (within (mask, mask_len, body, body_len));
      CHECK (memchr (mask, 0, mask_len) == NULL);
      CHECK (pos > last || n == 0);
      CHECK (pos <= body_len + 1);
      last = pos;
      total += mask_len;
      CHECK (total <= body_len);
      CHECK (++n <= body_len + 1);
    }
}

/* The checks every decode result gets; TRUE when a frame was decoded. */
static gboolean
decoded (ElbusDecodeStatus  st,
         GError            *error,
         gsize              needed,
         gsize              avail)
{
  if (st == ELBUS_DECODE_INCOMPLETE)
    {
      CHECK (error == NULL);
      CHECK (needed > avail);
      return FALSE;
    }
  if (st == ELBUS_DECODE_ERROR)
    {
      CHECK (error != NULL);
      g_error_free (error);
      return FALSE;
    }
  CHECK (st == ELBUS_DECODE_OK && error == NULL);
  return TRUE;
}

static void
fuzz_client (const guint8 *buf, gsize len, guint32 max_body)
{
  gsize off = 0;

  for (;;)
    {
      ElbusClientFrame frame;
      gsize needed = 0;
      GError *error = NULL;
      ElbusDecodeStatus st;

      st = _elbus_codec_decode_client_frame (buf + off, len - off, max_body,
                                             &frame, &needed, &error);
      if (!decoded (st, error, needed, len - off))
        break;
      CHECK (frame.frame_len >= ELBUS_CLIENT_HEADER_LEN);
      CHECK (frame.frame_len <= len - off);
      if (frame.body != NULL)
        {
          CHECK (frame.body == buf + off + ELBUS_CLIENT_HEADER_LEN);
          CHECK (frame.body_len <= max_body);
          CHECK (frame.frame_len == ELBUS_CLIENT_HEADER_LEN + frame.body_len);
        }
      switch (frame.op)
        {
        case ELBUS_OP_PUBLISH:
        case ELBUS_OP_MESSAGE:
        case ELBUS_OP_BROADCAST:
          if (frame.body == NULL)
            break; /* a ping */
          CHECK (frame.target != NULL);
          CHECK (within (frame.target, frame.target_len + 1, frame.body, frame.body_len));
          CHECK (frame.target[frame.target_len] == '\0');
          CHECK (strlen (frame.target) == frame.target_len);
          CHECK (g_utf8_validate (frame.target, frame.target_len, NULL));
          CHECK (frame.payload == (const guint8 *) frame.target + frame.target_len + 1);
          CHECK (within (frame.payload, frame.payload_len, frame.body, frame.body_len));
          CHECK (frame.target_len + 1 + frame.payload_len == frame.body_len);
          break;
        case ELBUS_OP_SUBSCRIBE:
        case ELBUS_OP_UNSUBSCRIBE:
          if (frame.body != NULL)
            check_masks (frame.body, frame.body_len);
          break;
        default:
          CHECK (frame.op == ELBUS_OP_NOP);
          break;
        }
      off += frame.frame_len;
      if (off >= len)
        break;
    }
}

static void
fuzz_broker (const guint8 *buf, gsize len, guint32 max_body)
{
  gsize off = 0;

  for (;;)
    {
      ElbusBrokerFrame frame;
      gsize needed = 0;
      GError *error = NULL;
      ElbusDecodeStatus st;
      const guint8 *body;
      gsize body_len;

      st = _elbus_codec_decode_broker_frame (buf + off, len - off, max_body,
                                             &frame, &needed, &error);
      if (!decoded (st, error, needed, len - off))
        break;
      CHECK (frame.frame_len >= ELBUS_BROKER_HEADER_LEN);
      CHECK (frame.frame_len <= len - off);
      body = buf + off + ELBUS_BROKER_HEADER_LEN;
      body_len = frame.frame_len - ELBUS_BROKER_HEADER_LEN;
      switch (frame.kind)
        {
        case ELBUS_KIND_PING:
        case ELBUS_KIND_ACK:
          CHECK (frame.sender == NULL && frame.payload == NULL);
          break;
        case ELBUS_KIND_PUBLISH:
        case ELBUS_KIND_MESSAGE:
        case ELBUS_KIND_BROADCAST:
          CHECK (body_len <= max_body);
          CHECK (frame.sender == (const char *) body);
          CHECK (within (frame.sender, frame.sender_len + 1, body, body_len));
          CHECK (frame.sender[frame.sender_len] == '\0');
          CHECK (strlen (frame.sender) == frame.sender_len);
          CHECK (g_utf8_validate (frame.sender, frame.sender_len, NULL));
          if (frame.kind == ELBUS_KIND_PUBLISH)
            {
              CHECK (frame.topic == frame.sender + frame.sender_len + 1);
              CHECK (within (frame.topic, frame.topic_len + 1, body, body_len));
              CHECK (frame.topic[frame.topic_len] == '\0');
              CHECK (strlen (frame.topic) == frame.topic_len);
              CHECK (g_utf8_validate (frame.topic, frame.topic_len, NULL));
              CHECK (frame.payload == (const guint8 *) frame.topic + frame.topic_len + 1);
              CHECK (frame.sender_len + frame.topic_len + 2 + frame.payload_len == body_len);
            }
          else
            {
              CHECK (frame.topic == NULL);
              CHECK (frame.payload == (const guint8 *) frame.sender + frame.sender_len + 1);
              CHECK (frame.sender_len + 1 + frame.payload_len == body_len);
            }
          CHECK (within (frame.payload, frame.payload_len, body, body_len));
          break;
        default:
          abort ();
        }
      off += frame.frame_len;
      if (off >= len)
        break;
    }
}

static void
fuzz_handshake (const guint8 *buf, gsize len)
{
  const char *name = NULL;
  gsize name_len = 0, consumed = 0, needed = 0, primary_len = G_MAXSIZE;
  guint8 result;
  ElbusDecodeStatus st;

  st = _elbus_codec_decode_greeting (buf, len, &result);
  CHECK (st == ELBUS_DECODE_INCOMPLETE || st == ELBUS_DECODE_OK);
  if (st == ELBUS_DECODE_OK)
    CHECK ((result == ELBUS_RESULT_OK) ==
           (buf[0] == ELBUS_GREETING && buf[1] == ELBUS_WIRE_VERSION && buf[2] == 0));

  st = _elbus_codec_decode_name (buf, len, &name, &name_len, &consumed, &needed);
  if (st == ELBUS_DECODE_INCOMPLETE)
    {
      CHECK (needed > len);
      return;
    }
  CHECK (st == ELBUS_DECODE_OK);
  CHECK (consumed == name_len + 2 && consumed <= len);
  CHECK (name == (const char *) buf + 2);

  if (_elbus_codec_check_name (name, name_len) == ELBUS_RESULT_OK)
    {
      CHECK (name_len > 0 && name_len <= ELBUS_CODEC_MAX_NAME_LENGTH);
      CHECK (name[0] != '.');
      CHECK (memchr (name, 0, name_len) == NULL);
      CHECK (g_utf8_validate (name, name_len, NULL));
    }
  if (_elbus_codec_split_secondary (name, name_len, &primary_len))
    {
      CHECK (primary_len + 2 <= name_len);
      CHECK (name[primary_len] == '%' && name[primary_len + 1] == '%');
    }

  /* a name also encodes back to the same bytes */
  if (name_len > 0 && memchr (name, 0, name_len) == NULL)
    {
      char *copy = g_strndup (name, name_len);
      guint8 *out = g_malloc (name_len + 2);
      gsize n = _elbus_codec_encode_name (out, name_len + 2, copy);

      CHECK (n == 0 || (n == name_len + 2 && memcmp (out, buf, n) == 0));
      g_free (out);
      g_free (copy);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* a private copy of exactly @size bytes, so ASan sees any over-read */
  guint8 *buf = g_malloc (MAX (size, 1));

  if (size > 0)
    memcpy (buf, data, size);

  for (gsize i = 0; i < G_N_ELEMENTS (max_bodies); i++)
    {
      fuzz_client (buf, size, max_bodies[i]);
      fuzz_broker (buf, size, max_bodies[i]);
    }
  fuzz_handshake (buf, size);
  check_masks (buf, size);

  g_free (buf);
  return 0;
}

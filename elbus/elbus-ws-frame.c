/* SPDX-License-Identifier: MIT */
/*
 * WebSocket framing for the broker, as pure functions (see
 * elbus-ws-frame-private.h).
 */
#include "config.h"

#include <string.h>

#include "elbus-error.h"
#include "elbus-i18n-private.h"
#include "elbus-ws-frame-private.h"

void
_elbus_ws_reader_init (ElbusWsReader *reader,
                       guint64        max_frame)
{
  memset (reader, 0, sizeof *reader);
  reader->max_frame = max_frame;
}

gboolean
_elbus_ws_reader_in_frame (const ElbusWsReader *reader)
{
  return reader->hdr_len > 0 || reader->left > 0;
}

gsize
_elbus_ws_encode_header (guint8  *hdr,
                         guint8   opcode,
                         guint64  len)
{
  hdr[0] = 0x80 | opcode;
  if (len < 126)
    {
      hdr[1] = (guint8) len;
      return 2;
    }
  if (len <= G_MAXUINT16)
    {
      hdr[1] = 126;
      hdr[2] = (guint8) (len >> 8);
      hdr[3] = (guint8) len;
      return 4;
    }
  hdr[1] = 127;
  for (guint i = 0; i < 8; i++)
    hdr[2 + i] = (guint8) (len >> (56 - 8 * i));
  return 10;
}

static ElbusWsReadResult
fail (guint16    *close_code,
      guint16     code,
      GError    **error,
      const char *message)
{
  *close_code = code;
  g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_DATA, message);
  return ELBUS_WS_READ_ERROR;
}

/* Checks a header read whole. */
static ElbusWsReadResult
check_header (ElbusWsReader  *r,
              guint16        *close_code,
              GError        **error)
{
  const guint8 *h = r->hdr;
  guint len7 = h[1] & 0x7f;
  guint off = 2;

  r->fin = (h[0] & 0x80) != 0;
  r->opcode = h[0] & 0x0f;
  r->left = len7;
  if (len7 == 126)
    {
      r->left = ((guint64) h[2] << 8) | h[3];
      off = 4;
    }
  else if (len7 == 127)
    {
      r->left = 0;
      for (guint i = 0; i < 8; i++)
        r->left = (r->left << 8) | h[2 + i];
      off = 10;
    }
  memcpy (r->mask, h + off, 4);
  r->mask_pos = 0;
  r->control_len = 0;

  if ((h[0] & 0x70) != 0)
    return fail (close_code, ELBUS_WS_CLOSE_PROTOCOL_ERROR, error,
                 _("a frame with reserved bits set"));
  if (r->opcode == ELBUS_WS_OP_TEXT)
    return fail (close_code, ELBUS_WS_CLOSE_UNSUPPORTED, error,
                 _("a text message (elbus takes binary ones)"));
  if (r->opcode & 0x8)
    {
      if (r->opcode > ELBUS_WS_OP_PONG)
        return fail (close_code, ELBUS_WS_CLOSE_PROTOCOL_ERROR, error,
                     _("a frame with an unknown opcode"));
      if (!r->fin || r->left > ELBUS_WS_MAX_CONTROL)
        return fail (close_code, ELBUS_WS_CLOSE_PROTOCOL_ERROR, error,
                     _("a fragmented or long control frame"));
      return ELBUS_WS_READ_OK;
    }
  if (r->opcode != ELBUS_WS_OP_BINARY && r->opcode != ELBUS_WS_OP_CONTINUATION)
    return fail (close_code, ELBUS_WS_CLOSE_PROTOCOL_ERROR, error,
                 _("a frame with an unknown opcode"));
  if ((r->opcode == ELBUS_WS_OP_CONTINUATION) != r->in_message)
    return fail (close_code, ELBUS_WS_CLOSE_PROTOCOL_ERROR, error,
                 _("a continuation frame out of place"));
  if (r->left > r->max_frame)
    {
      *close_code = ELBUS_WS_CLOSE_TOO_BIG;
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("a frame of %lu bytes, larger than the %lu the broker takes"),
                   (gulong) r->left, (gulong) r->max_frame);
      return ELBUS_WS_READ_ERROR;
    }
  r->in_message = !r->fin;
  return ELBUS_WS_READ_OK;
}

ElbusWsReadResult
_elbus_ws_reader_feed (ElbusWsReader            *r,
                       guint8                   *data,
                       gsize                     len,
                       const ElbusWsReaderFuncs *funcs,
                       gpointer                  user_data,
                       guint16                  *close_code,
                       GError                  **error)
{
  while (len > 0)
    {
      if (r->hdr_need == 0 || r->hdr_len < r->hdr_need)
        {
          ElbusWsReadResult result;

          if (r->hdr_need == 0)
            r->hdr_need = 2;
          r->hdr[r->hdr_len++] = *data++;
          len--;
          if (r->hdr_len == 2)
            {
              /* client frames are masked (RFC 6455 5.1) */
              if ((r->hdr[1] & 0x80) == 0)
                return fail (close_code, ELBUS_WS_CLOSE_PROTOCOL_ERROR, error,
                             _("an unmasked frame"));
              r->hdr_need = 2 + 4 + ((r->hdr[1] & 0x7f) == 126 ? 2 :
                                     (r->hdr[1] & 0x7f) == 127 ? 8 : 0);
            }
          if (r->hdr_len < r->hdr_need)
            continue;
          result = check_header (r, close_code, error);
          if (result != ELBUS_WS_READ_OK)
            return result;
        }

      if (r->left > 0 && len > 0)
        {
          gsize n = (gsize) MIN ((guint64) len, r->left);

          for (gsize i = 0; i < n; i++)
            data[i] ^= r->mask[(r->mask_pos + i) & 3];
          r->mask_pos = (r->mask_pos + n) & 3;
          r->left -= n;
          if (r->opcode & 0x8)
            {
              memcpy (r->control + r->control_len, data, n);
              r->control_len += n;
            }
          else
            {
              if (r->left == 0)
                r->hdr_len = r->hdr_need = 0;
              /* the reader is not touched after a callback that says stop:
               * its owner may be gone */
              if (!funcs->data (user_data, data, n))
                return ELBUS_WS_READ_STOPPED;
            }
          data += n;
          len -= n;
        }

      if (r->left == 0 && r->hdr_need != 0)
        {
          /* the frame is over */
          r->hdr_len = r->hdr_need = 0;
          if ((r->opcode & 0x8) &&
              !funcs->control (user_data, r->opcode, r->control, r->control_len))
            return ELBUS_WS_READ_STOPPED;
        }
    }

  return ELBUS_WS_READ_OK;
}

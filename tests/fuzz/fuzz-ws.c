/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the broker's WebSocket framing
 * (elbus-ws-frame-private.h): the input after its first two bytes is read
 * as client frames twice, once whole and once in pieces whose size the
 * first byte picks, with a largest frame the second byte picks. Both
 * readings must agree: the same payload bytes, the same control frames,
 * the same end (taken whole, or the same error, an ELBUS_ERROR_DATA with a
 * UTF-8 message and a close code); no more payload than input, control
 * frames of at most 125 bytes. Checked with abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elbus-error.h"
#include "elbus-ws-frame-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort (); } while (0)

typedef struct {
  GByteArray *out;   /* payload, then 0xff OPCODE LEN PAYLOAD per control frame */
} Seen;

static gboolean
data_cb (gpointer  user_data,
         guint8   *bytes,
         gsize     len)
{
  Seen *seen = user_data;

  CHECK (len > 0);
  g_byte_array_append (seen->out, bytes, len);
  return TRUE;
}

static gboolean
control_cb (gpointer      user_data,
            guint8        opcode,
            const guint8 *payload,
            gsize         len)
{
  Seen *seen = user_data;
  guint8 mark[3] = { 0xff, opcode, (guint8) len };

  CHECK (opcode == ELBUS_WS_OP_CLOSE || opcode == ELBUS_WS_OP_PING ||
         opcode == ELBUS_WS_OP_PONG);
  CHECK (len <= ELBUS_WS_MAX_CONTROL);
  g_byte_array_append (seen->out, mark, 3);
  g_byte_array_append (seen->out, payload, len);
  return TRUE;
}

static const ElbusWsReaderFuncs funcs = { .data = data_cb, .control = control_cb };

static ElbusWsReadResult
read_all (const uint8_t *data,
          size_t         size,
          gsize          step,
          guint64        max_frame,
          GByteArray    *out,
          guint16       *code,
          char         **message)
{
  guint8 *copy = g_memdup2 (data, size);
  ElbusWsReader reader;
  ElbusWsReadResult result = ELBUS_WS_READ_OK;
  GError *error = NULL;
  Seen seen = { out };

  _elbus_ws_reader_init (&reader, max_frame);
  for (gsize off = 0; off < size && result == ELBUS_WS_READ_OK;)
    {
      gsize n = MIN (step, size - off);

      result = _elbus_ws_reader_feed (&reader, copy + off, n, &funcs, &seen, code, &error);
      off += n;
    }
  CHECK (result != ELBUS_WS_READ_STOPPED);
  if (result == ELBUS_WS_READ_ERROR)
    {
      CHECK (g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_DATA));
      CHECK (error->message[0] != '\0' && g_utf8_validate (error->message, -1, NULL));
      CHECK (*code >= 1002 && *code <= 1009);
      *message = g_strdup (error->message);
      g_error_free (error);
    }
  else
    CHECK (error == NULL);
  g_free (copy);
  return result;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GByteArray) whole = g_byte_array_new ();
  g_autoptr(GByteArray) pieces = g_byte_array_new ();
  g_autofree char *whole_message = NULL;
  g_autofree char *pieces_message = NULL;
  guint16 whole_code = 0, pieces_code = 0;
  ElbusWsReadResult a, b;
  gsize step;
  guint64 max_frame;

  if (size < 2)
    return 0;
  step = (data[0] % 16) + 1;
  max_frame = (guint64) data[1] * 64;
  data += 2;
  size -= 2;

  a = read_all (data, size, size > 0 ? size : 1, max_frame, whole, &whole_code, &whole_message);
  b = read_all (data, size, step, max_frame, pieces, &pieces_code, &pieces_message);
  CHECK (a == b);
  CHECK (whole_code == pieces_code);
  CHECK (g_strcmp0 (whole_message, pieces_message) == 0);
  CHECK (whole->len == pieces->len);
  CHECK (whole->len == 0 || memcmp (whole->data, pieces->data, whole->len) == 0);
  /* payload is unmasked input: never more than came in (control frames
   * add 3 bytes of marking each, for at least 6 of input) */
  CHECK (whole->len <= size);
  return 0;
}

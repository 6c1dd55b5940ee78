/* SPDX-License-Identifier: MIT */
/*
 * The broker's WebSocket framing (elbus-ws-frame-private.h): client frames
 * in, fed whole and byte by byte; server headers out.
 */
#include "config.h"

#include <string.h>

#include "elbus-error.h"
#include "elbus-ws-frame-private.h"

static const guint8 mask[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* A masked client frame: first byte @first, then @payload masked. */
static void
append_frame (GByteArray   *into,
              guint8        first,
              const guint8 *payload,
              gsize         len)
{
  guint8 hdr[ELBUS_WS_MAX_HEADER];
  gsize hdr_len = _elbus_ws_encode_header (hdr, 0, len);

  hdr[0] = first;
  hdr[1] |= 0x80;
  g_byte_array_append (into, hdr, hdr_len);
  g_byte_array_append (into, mask, 4);
  for (gsize i = 0; i < len; i++)
    {
      guint8 b = payload[i] ^ mask[i & 3];

      g_byte_array_append (into, &b, 1);
    }
}

typedef struct {
  GByteArray *data;       /* the binary payload, joined */
  GString    *events;     /* control frames, as "ping:hi;" */
  gsize       stop_after; /* 0, or stop once data has this many bytes */
} Seen;

static gboolean
data_cb (gpointer  user_data,
         guint8   *bytes,
         gsize     len)
{
  Seen *seen = user_data;

  g_byte_array_append (seen->data, bytes, len);
  return seen->stop_after == 0 || seen->data->len < seen->stop_after;
}

static gboolean
control_cb (gpointer      user_data,
            guint8        opcode,
            const guint8 *payload,
            gsize         len)
{
  Seen *seen = user_data;

  g_string_append_printf (seen->events, "%s:%.*s;",
                          opcode == ELBUS_WS_OP_PING ? "ping" :
                          opcode == ELBUS_WS_OP_PONG ? "pong" : "close",
                          (int) len, (const char *) payload);
  return TRUE;
}

static const ElbusWsReaderFuncs funcs = { .data = data_cb, .control = control_cb };

/* Feeds @input in pieces of @step bytes (all at once for 0); returns the
 * result of the last feed, with what was seen. */
static ElbusWsReadResult
feed (GByteArray *input,
      gsize       step,
      guint64     max_frame,
      Seen       *seen,
      guint16    *code,
      GError    **error)
{
  g_autoptr(GByteArray) copy = g_byte_array_new ();
  ElbusWsReader reader;
  ElbusWsReadResult result = ELBUS_WS_READ_OK;

  g_byte_array_append (copy, input->data, input->len);
  _elbus_ws_reader_init (&reader, max_frame);
  seen->data = g_byte_array_new ();
  seen->events = g_string_new (NULL);
  for (gsize off = 0; off < copy->len && result == ELBUS_WS_READ_OK;)
    {
      gsize n = step == 0 ? copy->len : MIN (step, copy->len - off);

      result = _elbus_ws_reader_feed (&reader, copy->data + off, n, &funcs, seen, code, error);
      off += n;
    }
  if (result == ELBUS_WS_READ_OK)
    g_assert_false (_elbus_ws_reader_in_frame (&reader));
  return result;
}

static void
seen_clear (Seen *seen)
{
  g_byte_array_unref (seen->data);
  g_string_free (seen->events, TRUE);
}

static void
test_good (void)
{
  g_autoptr(GByteArray) input = g_byte_array_new ();
  g_autoptr(GByteArray) expected = g_byte_array_new ();
  g_autofree guint8 *medium = g_malloc (300);
  g_autofree guint8 *large = g_malloc (70000);

  g_test_summary ("Binary frames of every length form, fragments with control "
                  "frames between them: the same payload and events whether fed "
                  "whole, byte by byte or in 7-byte pieces");

  for (guint i = 0; i < 300; i++)
    medium[i] = (guint8) i;
  for (guint i = 0; i < 70000; i++)
    large[i] = (guint8) (i * 7);

  append_frame (input, 0x82, (const guint8 *) "abc", 3);
  g_byte_array_append (expected, (const guint8 *) "abc", 3);
  append_frame (input, 0x89, (const guint8 *) "hi", 2);
  append_frame (input, 0x82, medium, 300);               /* 16-bit length */
  g_byte_array_append (expected, medium, 300);
  append_frame (input, 0x02, (const guint8 *) "fr", 2);  /* fragments */
  append_frame (input, 0x8a, (const guint8 *) "", 0);
  append_frame (input, 0x00, (const guint8 *) "ag", 2);
  append_frame (input, 0x80, large, 70000);              /* 64-bit length */
  g_byte_array_append (expected, (const guint8 *) "frag", 4);
  g_byte_array_append (expected, large, 70000);
  append_frame (input, 0x82, NULL, 0);
  append_frame (input, 0x88, (const guint8 *) "\x03\xe8", 2);

  for (guint s = 0; s < 3; s++)
    {
      Seen seen = { 0 };
      guint16 code = 0;
      g_autoptr(GError) error = NULL;

      g_assert_cmpint (feed (input, (gsize[]) { 0, 1, 7 }[s], 100000, &seen, &code, &error), ==,
                       ELBUS_WS_READ_OK);
      g_assert_no_error (error);
      g_assert_cmpmem (seen.data->data, seen.data->len, expected->data, expected->len);
      g_assert_cmpstr (seen.events->str, ==, "ping:hi;pong:;close:\x03\xe8;");
      seen_clear (&seen);
    }
}

static void
test_stop (void)
{
  g_autoptr(GByteArray) input = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  guint16 code = 0;
  Seen seen = { 0 };

  g_test_summary ("A callback that says stop stops the reader at once");

  append_frame (input, 0x82, (const guint8 *) "abcdef", 6);
  append_frame (input, 0x82, (const guint8 *) "ghi", 3);
  seen.stop_after = 1;
  g_assert_cmpint (feed (input, 0, 100, &seen, &code, &error), ==, ELBUS_WS_READ_STOPPED);
  g_assert_cmpmem (seen.data->data, seen.data->len, "abcdef", 6);
  seen_clear (&seen);
}

static void
test_bad (void)
{
  static const struct {
    guint8      first;
    gboolean    masked;
    gsize       len;
    guint16     code;
    const char *message;
  } cases[] = {
    { 0x81, TRUE, 3, ELBUS_WS_CLOSE_UNSUPPORTED, "a text message" },
    { 0x82, FALSE, 3, ELBUS_WS_CLOSE_PROTOCOL_ERROR, "an unmasked frame" },
    { 0xc2, TRUE, 3, ELBUS_WS_CLOSE_PROTOCOL_ERROR, "reserved bits" },
    { 0x83, TRUE, 3, ELBUS_WS_CLOSE_PROTOCOL_ERROR, "unknown opcode" },
    { 0x8b, TRUE, 3, ELBUS_WS_CLOSE_PROTOCOL_ERROR, "unknown opcode" },
    { 0x09, TRUE, 3, ELBUS_WS_CLOSE_PROTOCOL_ERROR, "fragmented or long control frame" },
    { 0x89, TRUE, 126, ELBUS_WS_CLOSE_PROTOCOL_ERROR, "fragmented or long control frame" },
    { 0x80, TRUE, 3, ELBUS_WS_CLOSE_PROTOCOL_ERROR, "continuation frame out of place" },
    { 0x82, TRUE, 101, ELBUS_WS_CLOSE_TOO_BIG, "a frame of 101 bytes, larger than the 100" },
  };

  g_test_summary ("Frames a client must not send: each an ELBUS_ERROR_DATA that says "
                  "why, with the close code to answer it with, fed whole or byte by byte");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    for (guint s = 0; s < 2; s++)
      {
        g_autoptr(GByteArray) input = g_byte_array_new ();
        g_autofree guint8 *payload = g_malloc0 (cases[i].len);
        g_autoptr(GError) error = NULL;
        guint16 code = 0;
        Seen seen = { 0 };

        append_frame (input, cases[i].first, payload, cases[i].len);
        if (!cases[i].masked)
          {
            input->data[1] &= 0x7f;
            g_byte_array_remove_range (input, input->data[1] == 126 ? 4 : 2, 4);
          }
        g_test_message ("case %u, step %u", i, s);
        g_assert_cmpint (feed (input, s, 100, &seen, &code, &error), ==, ELBUS_WS_READ_ERROR);
        g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
        g_assert_nonnull (strstr (error->message, cases[i].message));
        g_assert_cmpuint (code, ==, cases[i].code);
        g_assert_cmpuint (seen.data->len, ==, 0);
        seen_clear (&seen);
      }

  /* a binary frame in the middle of a fragmented message */
  {
    g_autoptr(GByteArray) input = g_byte_array_new ();
    g_autoptr(GError) error = NULL;
    guint16 code = 0;
    Seen seen = { 0 };

    append_frame (input, 0x02, (const guint8 *) "a", 1);
    append_frame (input, 0x82, (const guint8 *) "b", 1);
    g_assert_cmpint (feed (input, 0, 100, &seen, &code, &error), ==, ELBUS_WS_READ_ERROR);
    g_assert_nonnull (strstr (error->message, "continuation frame out of place"));
    g_assert_cmpmem (seen.data->data, seen.data->len, "a", 1);
    seen_clear (&seen);
  }
}

static void
test_encode_header (void)
{
  guint8 hdr[ELBUS_WS_MAX_HEADER];
  static const guint8 h16[] = { 0x82, 126, 0x01, 0x00 };
  static const guint8 h64[] = { 0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 };

  g_test_summary ("Server frame headers: unmasked, the shortest length form");

  g_assert_cmpuint (_elbus_ws_encode_header (hdr, ELBUS_WS_OP_BINARY, 125), ==, 2);
  g_assert_cmphex (hdr[0], ==, 0x82);
  g_assert_cmphex (hdr[1], ==, 125);
  g_assert_cmpuint (_elbus_ws_encode_header (hdr, ELBUS_WS_OP_BINARY, 256), ==, 4);
  g_assert_cmpmem (hdr, 4, h16, 4);
  g_assert_cmpuint (_elbus_ws_encode_header (hdr, ELBUS_WS_OP_BINARY, 65536), ==, 10);
  g_assert_cmpmem (hdr, 10, h64, 10);
  g_assert_cmpuint (_elbus_ws_encode_header (hdr, ELBUS_WS_OP_CLOSE, 2), ==, 2);
  g_assert_cmphex (hdr[0], ==, 0x88);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/elbus/ws-frame/good", test_good);
  g_test_add_func ("/elbus/ws-frame/stop", test_stop);
  g_test_add_func ("/elbus/ws-frame/bad", test_bad);
  g_test_add_func ("/elbus/ws-frame/encode-header", test_encode_header);

  return g_test_run ();
}

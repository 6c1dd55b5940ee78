/* SPDX-License-Identifier: MIT */
/*
 * The pure wire codec (elbus-codec-private.h): exact bytes out, every
 * prefix of a frame INCOMPLETE, every malformed input an ERROR.
 */
#include "config.h"

#include <string.h>

#include "elbus-codec-private.h"
#include "elbus-error.h"
#include "elbus-test-util.h"

#define MAX_BODY (64u * 1024u * 1024u)

/* ------------------------------------------------------------------ */
/* Handshake */

static void
test_greeting_encode (void)
{
  guint8 out[ELBUS_GREETING_LEN + 1] = { 0xAA, 0xAA, 0xAA, 0xAA };
  static const guint8 expected[] = { 0xEB, 0x01, 0x00, 0xAA };

  g_test_summary ("The greeting is EB 01 00 and nothing more is written");

  _elbus_codec_encode_greeting (out);
  g_assert_cmpmem (out, sizeof out, expected, sizeof expected);
}

static void
test_greeting_decode (void)
{
  static const struct {
    guint8 bytes[4];
    gsize  len;
    guint8 result;
  } cases[] = {
    { { 0xEB, 0x01, 0x00 }, 3, ELBUS_RESULT_OK },
    { { 0xEB, 0x01, 0x00, 0x55 }, 4, ELBUS_RESULT_OK },   /* trailing bytes ignored */
    { { 0xEC, 0x01, 0x00 }, 3, ELBUS_ERROR_NOT_SUPPORTED },
    { { 0x00, 0x00, 0x00 }, 3, ELBUS_ERROR_NOT_SUPPORTED },
    { { 0xEB, 0x02, 0x00 }, 3, ELBUS_ERROR_NOT_SUPPORTED },
    { { 0xEB, 0x00, 0x00 }, 3, ELBUS_ERROR_NOT_SUPPORTED },
    { { 0xEB, 0x00, 0x01 }, 3, ELBUS_ERROR_NOT_SUPPORTED }, /* version 256 */
    { { 0xEB, 0x01, 0x01 }, 3, ELBUS_ERROR_NOT_SUPPORTED }, /* version 257 */
  };

  g_test_summary ("The client's greeting is accepted only as EB 01 00; "
                  "shorter input is incomplete");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint8 result = 0xAA;

      for (gsize n = 0; n < ELBUS_GREETING_LEN; n++)
        {
          g_assert_cmpint (_elbus_codec_decode_greeting (cases[i].bytes, n, &result),
                           ==, ELBUS_DECODE_INCOMPLETE);
          g_assert_cmphex (result, ==, 0xAA);
        }
      g_assert_cmpint (_elbus_codec_decode_greeting (cases[i].bytes, cases[i].len, &result),
                       ==, ELBUS_DECODE_OK);
      g_assert_cmphex (result, ==, cases[i].result);
    }
}

static void
test_name_encode (void)
{
  guint8 out[16];
  g_autofree guint8 *big = g_malloc (70000);
  g_autofree char *name300 = g_strnfill (300, 'n');
  g_autofree char *name65535 = g_strnfill (G_MAXUINT16, 'm');
  g_autofree char *name65536 = g_strnfill (G_MAXUINT16 + 1, 'm');
  static const guint8 abc[] = { 0x03, 0x00, 'a', 'b', 'c' };

  g_test_summary ("A name is encoded as a u16 LE length and the bytes; "
                  "0 is returned when it does not fit");

  memset (out, 0xAA, sizeof out);
  g_assert_cmpuint (_elbus_codec_encode_name (out, sizeof out, "abc"), ==, 5);
  g_assert_cmpmem (out, 5, abc, sizeof abc);
  g_assert_cmphex (out[5], ==, 0xAA);

  /* exactly fitting, and one byte short */
  g_assert_cmpuint (_elbus_codec_encode_name (out, 5, "abc"), ==, 5);
  g_assert_cmpuint (_elbus_codec_encode_name (out, 4, "abc"), ==, 0);
  g_assert_cmpuint (_elbus_codec_encode_name (out, 0, ""), ==, 0);

  g_assert_cmpuint (_elbus_codec_encode_name (out, sizeof out, ""), ==, 2);
  g_assert_cmphex (out[0], ==, 0);
  g_assert_cmphex (out[1], ==, 0);

  g_assert_cmpuint (_elbus_codec_encode_name (big, 70000, name300), ==, 302);
  g_assert_cmphex (big[0], ==, 0x2C);
  g_assert_cmphex (big[1], ==, 0x01);
  g_assert_cmpmem (big + 2, 300, name300, 300);

  g_assert_cmpuint (_elbus_codec_encode_name (big, 70000, name65535), ==, 65537);
  g_assert_cmphex (big[0], ==, 0xFF);
  g_assert_cmphex (big[1], ==, 0xFF);
  g_assert_cmpuint (_elbus_codec_encode_name (big, 70000, name65536), ==, 0);
}

static void
test_name_decode (void)
{
  static const guint8 hello[] = { 0x05, 0x00, 'h', 'e', 'l', 'l', 'o', 0xEE, 0xEE };
  static const guint8 empty[] = { 0x00, 0x00 };
  static const guint8 huge[] = { 0xFF, 0xFF, 'x' };
  const char *name = NULL;
  gsize name_len = 0, consumed = 0, needed = 0;

  g_test_summary ("Name decoding: every prefix is incomplete with the "
                  "right need, the whole is OK pointing into the buffer");

  for (gsize n = 0; n < 7; n++)
    {
      needed = 0;
      g_assert_cmpint (_elbus_codec_decode_name (hello, n, &name, &name_len,
                                                 &consumed, &needed),
                       ==, ELBUS_DECODE_INCOMPLETE);
      g_assert_cmpuint (needed, ==, n < 2 ? 2 : 7);
    }
  for (gsize n = 7; n <= sizeof hello; n++)
    {
      g_assert_cmpint (_elbus_codec_decode_name (hello, n, &name, &name_len,
                                                 &consumed, &needed),
                       ==, ELBUS_DECODE_OK);
      g_assert_true (name == (const char *) hello + 2);
      g_assert_cmpuint (name_len, ==, 5);
      g_assert_cmpuint (consumed, ==, 7);
      g_assert_cmpmem (name, name_len, "hello", 5);
    }

  g_assert_cmpint (_elbus_codec_decode_name (empty, 2, &name, &name_len,
                                             &consumed, &needed),
                   ==, ELBUS_DECODE_OK);
  g_assert_cmpuint (name_len, ==, 0);
  g_assert_cmpuint (consumed, ==, 2);

  g_assert_cmpint (_elbus_codec_decode_name (huge, sizeof huge, &name, &name_len,
                                             &consumed, &needed),
                   ==, ELBUS_DECODE_INCOMPLETE);
  g_assert_cmpuint (needed, ==, 2 + 65535);
}

static void
test_name_check (void)
{
  g_autofree char *longest = g_strnfill (ELBUS_MAX_NAME_LENGTH, 'a');
  g_autofree char *too_long = g_strnfill (ELBUS_MAX_NAME_LENGTH + 1, 'a');
  static const struct {
    const char *name;
    gsize       len;
    guint8      result;
  } cases[] = {
    { "a", 1, ELBUS_RESULT_OK },
    { "group.sub.client", 16, ELBUS_RESULT_OK },
    { "svc%%1", 6, ELBUS_RESULT_OK },
    { "h\xc3\xa9llo", 6, ELBUS_RESULT_OK },
    { "a.", 2, ELBUS_RESULT_OK },
    { "", 0, ELBUS_ERROR_DATA },
    { ".broker", 7, ELBUS_ERROR_DATA },
    { ".", 1, ELBUS_ERROR_DATA },
    { "\xff", 1, ELBUS_ERROR_DATA },
    { "ab\xc3", 3, ELBUS_ERROR_DATA },          /* truncated sequence */
    { "\xc0\x80", 2, ELBUS_ERROR_DATA },        /* overlong */
    { "\xed\xa0\x80", 3, ELBUS_ERROR_DATA },    /* surrogate */
    { "a\0b", 3, ELBUS_ERROR_DATA },            /* embedded NUL */
  };

  g_test_summary ("Name checks: empty, '.'-prefixed, invalid UTF-8, NUL "
                  "and names over 4096 bytes are refused with 72");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("name case %" G_GSIZE_FORMAT, i);
      g_assert_cmphex (_elbus_codec_check_name (cases[i].name, cases[i].len),
                       ==, cases[i].result);
    }
  g_assert_cmphex (_elbus_codec_check_name (longest, ELBUS_MAX_NAME_LENGTH),
                   ==, ELBUS_RESULT_OK);
  g_assert_cmphex (_elbus_codec_check_name (too_long, ELBUS_MAX_NAME_LENGTH + 1),
                   ==, ELBUS_ERROR_DATA);
  /* only name_len bytes count: a valid prefix of an invalid string */
  g_assert_cmphex (_elbus_codec_check_name ("ok\xff", 2), ==, ELBUS_RESULT_OK);
}

static void
test_name_secondary (void)
{
  static const struct {
    const char *name;
    gssize      len;            /* -1: strlen */
    gboolean    secondary;
    gsize       primary_len;
  } cases[] = {
    { "svc%%1", -1, TRUE, 3 },
    { "svc", -1, FALSE, 0 },
    { "a.b.c%%x.y", -1, TRUE, 5 },
    { "a%%", -1, TRUE, 1 },
    { "%%x", -1, TRUE, 0 },
    { "a%b%%c", -1, TRUE, 3 },
    { "a%%b%%c", -1, TRUE, 1 },   /* the first %% splits */
    { "a%", -1, FALSE, 0 },
    { "a%b%c", -1, FALSE, 0 },
    { "ab%%", 3, FALSE, 0 },      /* only name_len bytes count */
    { "", 0, FALSE, 0 },
  };

  g_test_summary ("PRIMARY%%SUFFIX names split at the first %%");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gsize len = cases[i].len < 0 ? strlen (cases[i].name) : (gsize) cases[i].len;
      gsize primary_len = 12345;
      gboolean r = _elbus_codec_split_secondary (cases[i].name, len, &primary_len);

      g_test_message ("'%s'", cases[i].name);
      g_assert_cmpint (r, ==, cases[i].secondary);
      if (r)
        g_assert_cmpuint (primary_len, ==, cases[i].primary_len);
    }
}

/* ------------------------------------------------------------------ */
/* Client frames */

static GByteArray *
client_frame (guint32     op_id,
              guint8      op,
              ElbusQoS    qos,
              const void *body,
              gsize       body_len)
{
  GByteArray *a = g_byte_array_new ();
  guint8 header[ELBUS_CLIENT_HEADER_LEN];

  _elbus_codec_encode_client_header (header, op_id, op, qos, body_len);
  g_byte_array_append (a, header, sizeof header);
  if (body_len > 0)
    g_byte_array_append (a, body, body_len);
  return a;
}

static void
test_client_encode_header (void)
{
  static const struct {
    guint32  op_id;
    guint8   op;
    ElbusQoS qos;
    guint32  body_len;
    guint8   bytes[9];
  } cases[] = {
    { 1, ELBUS_OP_MESSAGE, ELBUS_QOS_NO, 5, { 1, 0, 0, 0, 0x12, 5, 0, 0, 0 } },
    { 0x04030201, ELBUS_OP_MESSAGE, ELBUS_QOS_PROCESSED, 0x0A0B0C0D,
      { 1, 2, 3, 4, 0x52, 0x0D, 0x0C, 0x0B, 0x0A } },
    { 0xFFFFFFFF, ELBUS_OP_BROADCAST, ELBUS_QOS_REALTIME, 0,
      { 0xFF, 0xFF, 0xFF, 0xFF, 0x93, 0, 0, 0, 0 } },
    { 7, ELBUS_OP_PUBLISH, ELBUS_QOS_REALTIME_PROCESSED, 256,
      { 7, 0, 0, 0, 0xC1, 0, 1, 0, 0 } },
    { 0, ELBUS_OP_SUBSCRIBE, ELBUS_QOS_PROCESSED, 3, { 0, 0, 0, 0, 0x42, 3, 0, 0, 0 } },
    { 0, ELBUS_OP_UNSUBSCRIBE, ELBUS_QOS_NO, 3, { 0, 0, 0, 0, 0x03, 3, 0, 0, 0 } },
    { 0, ELBUS_OP_NOP, ELBUS_QOS_NO, 0, { 0, 0, 0, 0, 0, 0, 0, 0, 0 } },
  };

  g_test_summary ("Client headers: u32 LE op id, op | qos << 6, u32 LE "
                  "body length");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint8 out[ELBUS_CLIENT_HEADER_LEN + 1];

      memset (out, 0xAA, sizeof out);
      _elbus_codec_encode_client_header (out, cases[i].op_id, cases[i].op,
                                         cases[i].qos, cases[i].body_len);
      g_assert_cmpmem (out, 9, cases[i].bytes, 9);
      g_assert_cmphex (out[9], ==, 0xAA);
    }
}

static void
decode_ok (const guint8     *buf,
           gsize             len,
           ElbusClientFrame *frame)
{
  g_autoptr(GError) error = NULL;
  gsize needed = 0;

  g_assert_cmpint (_elbus_codec_decode_client_frame (buf, len, MAX_BODY, frame,
                                                     &needed, &error),
                   ==, ELBUS_DECODE_OK);
  g_assert_no_error (error);
}

static void
test_client_decode_ops (void)
{
  g_autoptr(GByteArray) msg = client_frame (0xDEADBEEF, ELBUS_OP_MESSAGE,
                                            ELBUS_QOS_PROCESSED,
                                            "target.x\0pay\0load", 17);
  g_autoptr(GByteArray) pub = client_frame (2, ELBUS_OP_PUBLISH,
                                            ELBUS_QOS_REALTIME, "a/b/c\0v", 7);
  g_autoptr(GByteArray) bc = client_frame (3, ELBUS_OP_BROADCAST,
                                           ELBUS_QOS_REALTIME_PROCESSED, "a.*\0", 4);
  g_autoptr(GByteArray) sub = client_frame (4, ELBUS_OP_SUBSCRIBE,
                                            ELBUS_QOS_NO, "a/#\0b/+", 7);
  g_autoptr(GByteArray) unsub = client_frame (5, ELBUS_OP_UNSUBSCRIBE,
                                              ELBUS_QOS_PROCESSED, "x", 1);
  ElbusClientFrame f;

  g_test_summary ("Each operation decodes into op id, op, QoS, target, "
                  "payload and frame length");

  decode_ok (msg->data, msg->len, &f);
  g_assert_cmpuint (f.op_id, ==, 0xDEADBEEF);
  g_assert_cmphex (f.op, ==, ELBUS_OP_MESSAGE);
  g_assert_cmpuint (f.qos, ==, ELBUS_QOS_PROCESSED);
  g_assert_true (f.body == msg->data + 9);
  g_assert_cmpuint (f.body_len, ==, 17);
  g_assert_cmpstr (f.target, ==, "target.x");   /* NUL-terminated in place */
  g_assert_cmpuint (f.target_len, ==, 8);
  g_assert_true (f.target == (const char *) msg->data + 9);
  g_assert_true (f.payload == msg->data + 9 + 9);
  g_assert_cmpmem (f.payload, f.payload_len, "pay\0load", 8);
  g_assert_cmpuint (f.frame_len, ==, msg->len);

  decode_ok (pub->data, pub->len, &f);
  g_assert_cmphex (f.op, ==, ELBUS_OP_PUBLISH);
  g_assert_cmpuint (f.qos, ==, ELBUS_QOS_REALTIME);
  g_assert_cmpstr (f.target, ==, "a/b/c");
  g_assert_cmpmem (f.payload, f.payload_len, "v", 1);
  g_assert_cmpuint (f.frame_len, ==, 16);

  /* empty payload: the payload pointer is just past the terminator */
  decode_ok (bc->data, bc->len, &f);
  g_assert_cmphex (f.op, ==, ELBUS_OP_BROADCAST);
  g_assert_cmpuint (f.qos, ==, ELBUS_QOS_REALTIME_PROCESSED);
  g_assert_cmpstr (f.target, ==, "a.*");
  g_assert_cmpuint (f.payload_len, ==, 0);
  g_assert_true (f.payload == bc->data + bc->len);

  decode_ok (sub->data, sub->len, &f);
  g_assert_cmphex (f.op, ==, ELBUS_OP_SUBSCRIBE);
  g_assert_cmpuint (f.qos, ==, ELBUS_QOS_NO);
  g_assert_null (f.target);
  g_assert_true (f.body == sub->data + 9);
  g_assert_cmpuint (f.body_len, ==, 7);

  decode_ok (unsub->data, unsub->len, &f);
  g_assert_cmphex (f.op, ==, ELBUS_OP_UNSUBSCRIBE);
  g_assert_cmpuint (f.body_len, ==, 1);
}

static void assert_client_error (const guint8 *buf,
                                 gsize         len,
                                 guint32       max_body);

static void
test_client_decode_nop (void)
{
  /* a ping: flags 0, the length field is garbage and ignored */
  static const guint8 ping[] = { 9, 9, 9, 9, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x12 };
  /* op 0 with QoS bits: a body parsed like a message's, then ignored */
  static const guint8 nop_qos[] = { 1, 0, 0, 0, 0x40, 3, 0, 0, 0, 'x', 0, 'z', 0x12 };
  ElbusClientFrame f;
  gsize needed = 0;

  g_test_summary ("A NOP with flags 0 is 9 bytes whatever its length field; "
                  "op 0 with QoS bits carries a body parsed as TARGET 00 PAYLOAD, "
                  "and one without the 00 (or with a target that is not UTF-8) is "
                  "an error");

  for (gsize n = 0; n < 9; n++)
    {
      g_assert_cmpint (_elbus_codec_decode_client_frame (ping, n, MAX_BODY, &f,
                                                         &needed, NULL),
                       ==, ELBUS_DECODE_INCOMPLETE);
      g_assert_cmpuint (needed, ==, 9);
    }
  decode_ok (ping, 9, &f);
  g_assert_cmphex (f.op, ==, ELBUS_OP_NOP);
  g_assert_cmpuint (f.qos, ==, 0);
  g_assert_cmpuint (f.frame_len, ==, 9);
  decode_ok (ping, sizeof ping, &f);
  g_assert_cmpuint (f.frame_len, ==, 9);

  /* the length field is ignored even when over the limit */
  g_assert_cmpint (_elbus_codec_decode_client_frame (ping, 9, 16, &f, &needed, NULL),
                   ==, ELBUS_DECODE_OK);

  for (gsize n = 9; n < 12; n++)
    {
      g_assert_cmpint (_elbus_codec_decode_client_frame (nop_qos, n, MAX_BODY, &f,
                                                         &needed, NULL),
                       ==, ELBUS_DECODE_INCOMPLETE);
      g_assert_cmpuint (needed, ==, 12);
    }
  decode_ok (nop_qos, sizeof nop_qos, &f);
  g_assert_cmphex (f.op, ==, ELBUS_OP_NOP);
  g_assert_cmpuint (f.qos, ==, ELBUS_QOS_PROCESSED);
  g_assert_cmpuint (f.frame_len, ==, 12);
  g_assert_cmpuint (f.body_len, ==, 3);
  g_assert_cmpstr (f.target, ==, "x");
  g_assert_cmpuint (f.payload_len, ==, 1);
  g_assert_cmpint (f.payload[0], ==, 'z');

  /* only flags 0 is a ping: every QoS on op 0 wants TARGET 00 PAYLOAD */
  for (ElbusQoS qos = ELBUS_QOS_PROCESSED; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      static const char *const bad[] = { "", "xyz", "\xff\xfe" };

      for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
        {
          g_autoptr(GByteArray) frame = client_frame (2, ELBUS_OP_NOP, qos, bad[i],
                                                      strlen (bad[i]));

          assert_client_error (frame->data, frame->len, MAX_BODY);
        }
      {
        /* an invalid UTF-8 target before the 00 */
        g_autoptr(GByteArray) frame = client_frame (3, ELBUS_OP_NOP, qos, "\xc3\0p", 3);

        assert_client_error (frame->data, frame->len, MAX_BODY);
      }
      {
        g_autoptr(GByteArray) frame = client_frame (4, ELBUS_OP_NOP, qos, "\0", 1);

        decode_ok (frame->data, frame->len, &f);
        g_assert_cmpuint (f.qos, ==, qos);
        g_assert_cmpuint (f.target_len, ==, 0);
        g_assert_cmpuint (f.payload_len, ==, 0);
      }
    }
}

/* Every proper prefix is INCOMPLETE with *needed = 9 while the header is
 * short and the whole frame length after; the whole is OK. */
static void
assert_incremental_client (const guint8 *buf,
                           gsize         len)
{
  ElbusClientFrame f;

  for (gsize n = 0; n < len; n++)
    {
      g_autoptr(GError) error = NULL;
      gsize needed = 0;

      g_assert_cmpint (_elbus_codec_decode_client_frame (buf, n, MAX_BODY, &f,
                                                         &needed, &error),
                       ==, ELBUS_DECODE_INCOMPLETE);
      g_assert_no_error (error);
      g_assert_cmpuint (needed, >, n);
      g_assert_cmpuint (needed, ==, n < ELBUS_CLIENT_HEADER_LEN ? ELBUS_CLIENT_HEADER_LEN : len);
    }
  decode_ok (buf, len, &f);
  g_assert_cmpuint (f.frame_len, ==, len);
}

static void
test_client_incremental (void)
{
  g_autoptr(GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);
  g_autofree guint8 *big = g_malloc0 (70000);

  g_test_summary ("Client frames fed one byte at a time: each prefix "
                  "incomplete with a sensible need, the whole OK");

  memcpy (big, "big.target", 11);
  g_ptr_array_add (frames, client_frame (1, ELBUS_OP_MESSAGE, ELBUS_QOS_NO, "t\0payload", 9));
  g_ptr_array_add (frames, client_frame (2, ELBUS_OP_PUBLISH, ELBUS_QOS_PROCESSED, "a/b\0", 4));
  g_ptr_array_add (frames, client_frame (3, ELBUS_OP_BROADCAST, ELBUS_QOS_REALTIME, "*\0x", 3));
  g_ptr_array_add (frames, client_frame (4, ELBUS_OP_SUBSCRIBE, ELBUS_QOS_NO, "a\0b", 3));
  g_ptr_array_add (frames, client_frame (5, ELBUS_OP_UNSUBSCRIBE, ELBUS_QOS_NO, "", 0));
  g_ptr_array_add (frames, client_frame (6, ELBUS_OP_NOP, ELBUS_QOS_REALTIME, "a\0c", 3));
  g_ptr_array_add (frames, client_frame (7, ELBUS_OP_MESSAGE, ELBUS_QOS_PROCESSED, big, 70000));

  for (guint i = 0; i < frames->len; i++)
    {
      GByteArray *a = frames->pdata[i];

      assert_incremental_client (a->data, a->len);
    }
}

static void
test_client_back_to_back (void)
{
  g_autoptr(GByteArray) all = g_byte_array_new ();
  static const guint8 ping[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0 };
  gsize pos = 0;
  guint count = 0;

  g_test_summary ("Frames back to back in one buffer decode one after the "
                  "other, each with its own length");

  for (guint i = 0; i < 100; i++)
    {
      char body[32];
      int n = g_snprintf (body, sizeof body, "target%u", i);
      g_autoptr(GByteArray) f = NULL;

      body[n] = 0;
      memcpy (body + n + 1, "p", 1);
      f = client_frame (i, i % 2 ? ELBUS_OP_MESSAGE : ELBUS_OP_PUBLISH,
                        i % 4, body, n + 1 + (i % 3 == 0 ? 1 : 0));
      g_byte_array_append (all, f->data, f->len);
      if (i % 10 == 0)
        g_byte_array_append (all, ping, sizeof ping);
    }

  while (pos < all->len)
    {
      ElbusClientFrame f;
      g_autofree char *expected = NULL;

      decode_ok (all->data + pos, all->len - pos, &f);
      pos += f.frame_len;
      if (f.op == ELBUS_OP_NOP)
        continue;
      expected = g_strdup_printf ("target%u", count);
      g_assert_cmpuint (f.op_id, ==, count);
      g_assert_cmpuint (f.qos, ==, count % 4);
      g_assert_cmpstr (f.target, ==, expected);
      g_assert_cmpuint (f.payload_len, ==, count % 3 == 0 ? 1 : 0);
      count++;
    }
  g_assert_cmpuint (pos, ==, all->len);
  g_assert_cmpuint (count, ==, 100);
}

static void
assert_client_error (const guint8 *buf,
                     gsize         len,
                     guint32       max_body)
{
  g_autoptr(GError) error = NULL;
  ElbusClientFrame f;
  gsize needed = 0;

  g_assert_cmpint (_elbus_codec_decode_client_frame (buf, len, max_body, &f,
                                                     &needed, &error),
                   ==, ELBUS_DECODE_ERROR);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
  /* a NULL error is allowed */
  g_assert_cmpint (_elbus_codec_decode_client_frame (buf, len, max_body, &f,
                                                     &needed, NULL),
                   ==, ELBUS_DECODE_ERROR);
}

static void
test_client_malformed (void)
{
  static const struct {
    guint8      op;
    const char *body;
    gsize       len;
  } bodies[] = {
    { ELBUS_OP_MESSAGE, "target", 6 },          /* no terminator */
    { ELBUS_OP_PUBLISH, "topic", 5 },
    { ELBUS_OP_BROADCAST, "a.*", 3 },
    { ELBUS_OP_MESSAGE, "", 0 },
    { ELBUS_OP_MESSAGE, "t\xff\0x", 4 },        /* invalid UTF-8 target */
    { ELBUS_OP_PUBLISH, "a/\xc3\0x", 5 },       /* invalid UTF-8 topic */
    { ELBUS_OP_BROADCAST, "\xc0\x80\0x", 4 },   /* invalid UTF-8 mask */
    { ELBUS_OP_SUBSCRIBE, "ok\0\xff", 4 },      /* invalid UTF-8 subscription */
    { ELBUS_OP_UNSUBSCRIBE, "\xfe", 1 },
  };

  g_test_summary ("Unknown ops, missing terminators and invalid UTF-8 are "
                  "errors of the ELBUS_ERROR_DATA kind");

  /* every unknown op, at the header already */
  for (guint op = 0; op < 64; op++)
    {
      guint8 header[ELBUS_CLIENT_HEADER_LEN];

      if (op == ELBUS_OP_NOP || op == ELBUS_OP_PUBLISH || op == ELBUS_OP_SUBSCRIBE ||
          op == ELBUS_OP_UNSUBSCRIBE || op == ELBUS_OP_MESSAGE || op == ELBUS_OP_BROADCAST)
        continue;
      for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
        {
          _elbus_codec_encode_client_header (header, 1, op, qos, 100);
          assert_client_error (header, sizeof header, MAX_BODY);
        }
    }

  for (gsize i = 0; i < G_N_ELEMENTS (bodies); i++)
    for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
      {
        g_autoptr(GByteArray) f = client_frame (1, bodies[i].op, qos,
                                                bodies[i].body, bodies[i].len);

        g_test_message ("body case %" G_GSIZE_FORMAT, i);
        assert_client_error (f->data, f->len, MAX_BODY);
      }
}

static void
test_client_max_body (void)
{
  guint8 header[ELBUS_CLIENT_HEADER_LEN];
  ElbusClientFrame f;
  gsize needed = 0;

  g_test_summary ("A body over the limit is an error from the header "
                  "alone; at the limit it is awaited");

  _elbus_codec_encode_client_header (header, 1, ELBUS_OP_MESSAGE, ELBUS_QOS_NO, 1025);
  assert_client_error (header, sizeof header, 1024);

  _elbus_codec_encode_client_header (header, 1, ELBUS_OP_PUBLISH, ELBUS_QOS_PROCESSED, G_MAXUINT32);
  assert_client_error (header, sizeof header, MAX_BODY);

  /* op 0 with QoS bits has a real length, so it is limited too */
  _elbus_codec_encode_client_header (header, 1, ELBUS_OP_NOP, ELBUS_QOS_PROCESSED, 1025);
  assert_client_error (header, sizeof header, 1024);

  _elbus_codec_encode_client_header (header, 1, ELBUS_OP_MESSAGE, ELBUS_QOS_NO, 1024);
  g_assert_cmpint (_elbus_codec_decode_client_frame (header, sizeof header, 1024, &f,
                                                     &needed, NULL),
                   ==, ELBUS_DECODE_INCOMPLETE);
  g_assert_cmpuint (needed, ==, 9 + 1024);

  _elbus_codec_encode_client_header (header, 1, ELBUS_OP_MESSAGE, ELBUS_QOS_NO, G_MAXUINT32);
  g_assert_cmpint (_elbus_codec_decode_client_frame (header, sizeof header, G_MAXUINT32,
                                                     &f, &needed, NULL),
                   ==, ELBUS_DECODE_INCOMPLETE);
  g_assert_cmpuint (needed, ==, 9 + (gsize) G_MAXUINT32);
}

static void
test_client_next_mask (void)
{
  static const struct {
    const char *body;
    gsize       len;
    const char *masks[4];       /* expected, NULL-terminated */
  } cases[] = {
    { "a/b", 3, { "a/b", NULL } },
    { "a/b\0c/#", 7, { "a/b", "c/#", NULL } },
    { "a\0", 2, { "a", NULL } },                  /* a trailing 00 adds nothing */
    { "", 0, { "", NULL } },                      /* the empty body is one empty mask */
    { "\0", 1, { "", NULL } },
    { "a\0\0b", 4, { "a", "", "b", NULL } },      /* an empty mask in the middle */
    { "x\0y\0z", 5, { "x", "y", "z", NULL } },
  };

  g_test_summary ("Subscription bodies split into their 00-separated masks");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *const *expected = cases[i].masks;
      const guint8 *body = (const guint8 *) cases[i].body;
      gsize pos = 0;
      guint n = 0;
      const char *mask;
      gsize mask_len;

      g_test_message ("mask case %" G_GSIZE_FORMAT, i);
      while (_elbus_codec_next_mask (body, cases[i].len, &pos, &mask, &mask_len))
        {
          g_assert_nonnull (expected[n]);
          g_assert_true (mask >= cases[i].body && mask + mask_len <= cases[i].body + cases[i].len);
          g_assert_cmpmem (mask, mask_len, expected[n], strlen (expected[n]));
          n++;
        }
      g_assert_cmpuint (n, ==, g_strv_length ((char **) expected));
      /* done stays done */
      g_assert_false (_elbus_codec_next_mask (body, cases[i].len, &pos, &mask, &mask_len));
    }
}

/* ------------------------------------------------------------------ */
/* Broker frames */

static void
test_broker_encode (void)
{
  guint8 out[7];
  static const guint8 msg[] = { 0x12, 0x10, 0x00, 0x00, 0x00, 0x00, 0xAA };
  static const guint8 rt[] = { 0x01, 0x04, 0x03, 0x02, 0x01, 0x01, 0xAA };
  static const guint8 bc[] = { 0x13, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0xAA };
  static const guint8 ping[] = { 0, 0, 0, 0, 0, 0, 0xAA };
  static const guint8 ack[] = { 0xFE, 0xEF, 0xBE, 0xAD, 0xDE, 0x77, 0xAA };
  static const guint8 ack_ok[] = { 0xFE, 0x01, 0x00, 0x00, 0x00, 0x01, 0xAA };

  g_test_summary ("Broker headers, pings and acks are encoded byte for byte");

  memset (out, 0xAA, sizeof out);
  _elbus_codec_encode_broker_header (out, ELBUS_KIND_MESSAGE, 16, FALSE);
  g_assert_cmpmem (out, sizeof out, msg, sizeof msg);
  _elbus_codec_encode_broker_header (out, ELBUS_KIND_PUBLISH, 0x01020304, TRUE);
  g_assert_cmpmem (out, sizeof out, rt, sizeof rt);
  _elbus_codec_encode_broker_header (out, ELBUS_KIND_BROADCAST, G_MAXUINT32, 7);
  g_assert_cmpmem (out, sizeof out, bc, sizeof bc);
  _elbus_codec_encode_broker_header (out, ELBUS_KIND_PING, 0, FALSE);
  g_assert_cmpmem (out, sizeof out, ping, sizeof ping);
  _elbus_codec_encode_ack (out, 0xDEADBEEF, ELBUS_ERROR_NOT_DELIVERED);
  g_assert_cmpmem (out, sizeof out, ack, sizeof ack);
  _elbus_codec_encode_ack (out, 1, ELBUS_RESULT_OK);
  g_assert_cmpmem (out, sizeof out, ack_ok, sizeof ack_ok);
}

static GByteArray *
broker_frame (guint8      kind,
              gboolean    realtime,
              const void *body,
              gsize       body_len)
{
  GByteArray *a = g_byte_array_new ();
  guint8 header[ELBUS_BROKER_HEADER_LEN];

  _elbus_codec_encode_broker_header (header, kind, body_len, realtime);
  g_byte_array_append (a, header, sizeof header);
  if (body_len > 0)
    g_byte_array_append (a, body, body_len);
  return a;
}

static void
broker_decode_ok (const guint8     *buf,
                  gsize             len,
                  ElbusBrokerFrame *frame)
{
  g_autoptr(GError) error = NULL;
  gsize needed = 0;

  g_assert_cmpint (_elbus_codec_decode_broker_frame (buf, len, MAX_BODY, frame,
                                                     &needed, &error),
                   ==, ELBUS_DECODE_OK);
  g_assert_no_error (error);
}

static void
test_broker_decode (void)
{
  static const guint8 ping[] = { 0, 0, 0, 0, 0, 0 };
  static const guint8 ack[] = { 0xFE, 0x04, 0x03, 0x02, 0x01, 0x71 };
  g_autoptr(GByteArray) msg = broker_frame (ELBUS_KIND_MESSAGE, FALSE, "snd\0hi\0there", 12);
  g_autoptr(GByteArray) msg_rt = broker_frame (ELBUS_KIND_MESSAGE, TRUE, "s%%1\0", 5);
  g_autoptr(GByteArray) bc = broker_frame (ELBUS_KIND_BROADCAST, TRUE, "a.b\0x", 5);
  g_autoptr(GByteArray) pub = broker_frame (ELBUS_KIND_PUBLISH, FALSE, "pub\0t/x\0data", 12);
  g_autoptr(GByteArray) pub_empty = broker_frame (ELBUS_KIND_PUBLISH, TRUE, "p\0\0", 3);
  ElbusBrokerFrame f;

  g_test_summary ("Pings, acks, messages, broadcasts and publications "
                  "decode with sender, topic, payload and realtime flag");

  broker_decode_ok (ping, sizeof ping, &f);
  g_assert_cmphex (f.kind, ==, ELBUS_KIND_PING);
  g_assert_cmpuint (f.frame_len, ==, 6);

  broker_decode_ok (ack, sizeof ack, &f);
  g_assert_cmphex (f.kind, ==, ELBUS_KIND_ACK);
  g_assert_cmpuint (f.op_id, ==, 0x01020304);
  g_assert_cmphex (f.result, ==, 0x71);
  g_assert_cmpuint (f.frame_len, ==, 6);

  broker_decode_ok (msg->data, msg->len, &f);
  g_assert_cmphex (f.kind, ==, ELBUS_KIND_MESSAGE);
  g_assert_false (f.realtime);
  g_assert_cmpstr (f.sender, ==, "snd");
  g_assert_cmpuint (f.sender_len, ==, 3);
  g_assert_true (f.sender == (const char *) msg->data + 6);
  g_assert_null (f.topic);
  g_assert_cmpmem (f.payload, f.payload_len, "hi\0there", 8);
  g_assert_cmpuint (f.frame_len, ==, 18);

  broker_decode_ok (msg_rt->data, msg_rt->len, &f);
  g_assert_true (f.realtime);
  g_assert_cmpstr (f.sender, ==, "s%%1");
  g_assert_cmpuint (f.payload_len, ==, 0);

  broker_decode_ok (bc->data, bc->len, &f);
  g_assert_cmphex (f.kind, ==, ELBUS_KIND_BROADCAST);
  g_assert_true (f.realtime);
  g_assert_cmpstr (f.sender, ==, "a.b");
  g_assert_cmpmem (f.payload, f.payload_len, "x", 1);

  broker_decode_ok (pub->data, pub->len, &f);
  g_assert_cmphex (f.kind, ==, ELBUS_KIND_PUBLISH);
  g_assert_false (f.realtime);
  g_assert_cmpstr (f.sender, ==, "pub");
  g_assert_cmpstr (f.topic, ==, "t/x");
  g_assert_cmpuint (f.topic_len, ==, 3);
  g_assert_cmpmem (f.payload, f.payload_len, "data", 4);
  g_assert_cmpuint (f.frame_len, ==, 18);

  broker_decode_ok (pub_empty->data, pub_empty->len, &f);
  g_assert_cmpstr (f.sender, ==, "p");
  g_assert_cmpstr (f.topic, ==, "");
  g_assert_cmpuint (f.payload_len, ==, 0);
}

static void
test_broker_incremental (void)
{
  g_autoptr(GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);
  static const guint8 ping[] = { 0, 0, 0, 0, 0, 0 };
  static const guint8 ack[] = { 0xFE, 1, 0, 0, 0, 1 };
  g_autoptr(GByteArray) all = g_byte_array_new ();
  gsize pos = 0;
  guint count = 0;

  g_test_summary ("Broker frames fed one byte at a time, and back to back");

  g_ptr_array_add (frames, broker_frame (ELBUS_KIND_MESSAGE, FALSE, "a\0b", 3));
  g_ptr_array_add (frames, broker_frame (ELBUS_KIND_BROADCAST, TRUE, "abc\0", 4));
  g_ptr_array_add (frames, broker_frame (ELBUS_KIND_PUBLISH, FALSE, "a\0t\0p", 5));
  g_ptr_array_add (frames, g_byte_array_append (g_byte_array_new (), ping, 6));
  g_ptr_array_add (frames, g_byte_array_append (g_byte_array_new (), ack, 6));

  for (guint i = 0; i < frames->len; i++)
    {
      GByteArray *a = frames->pdata[i];
      ElbusBrokerFrame f;

      for (gsize n = 0; n < a->len; n++)
        {
          gsize needed = 0;

          g_assert_cmpint (_elbus_codec_decode_broker_frame (a->data, n, MAX_BODY,
                                                             &f, &needed, NULL),
                           ==, ELBUS_DECODE_INCOMPLETE);
          g_assert_cmpuint (needed, ==, n < 6 ? 6 : a->len);
        }
      broker_decode_ok (a->data, a->len, &f);
      g_assert_cmpuint (f.frame_len, ==, a->len);
      g_byte_array_append (all, a->data, a->len);
    }

  while (pos < all->len)
    {
      ElbusBrokerFrame f;

      broker_decode_ok (all->data + pos, all->len - pos, &f);
      g_assert_cmpuint (f.frame_len, ==, ((GByteArray *) frames->pdata[count])->len);
      g_assert_cmphex (f.kind, ==, ((GByteArray *) frames->pdata[count])->data[0]);
      pos += f.frame_len;
      count++;
    }
  g_assert_cmpuint (count, ==, frames->len);
}

static void
assert_broker_error (GByteArray *a,
                     guint32     max_body)
{
  g_autoptr(GError) error = NULL;
  ElbusBrokerFrame f;
  gsize needed = 0;

  g_assert_cmpint (_elbus_codec_decode_broker_frame (a->data, a->len, max_body, &f,
                                                     &needed, &error),
                   ==, ELBUS_DECODE_ERROR);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
}

static void
test_broker_malformed (void)
{
  static const guint8 unknown_kinds[] = { 0x02, 0x03, 0x11, 0x14, 0x80, 0xFF };

  g_test_summary ("Unknown kinds, missing sender or topic terminators and "
                  "lengths over the limit are errors");

  for (gsize i = 0; i < G_N_ELEMENTS (unknown_kinds); i++)
    {
      g_autoptr(GByteArray) a = broker_frame (unknown_kinds[i], FALSE, "a\0b", 3);

      assert_broker_error (a, MAX_BODY);
    }

  {
    g_autoptr(GByteArray) a = broker_frame (ELBUS_KIND_MESSAGE, FALSE, "sender", 6);

    assert_broker_error (a, MAX_BODY);
  }
  {
    g_autoptr(GByteArray) a = broker_frame (ELBUS_KIND_BROADCAST, FALSE, "", 0);

    assert_broker_error (a, MAX_BODY);
  }
  {
    /* a publication whose topic has no terminator */
    g_autoptr(GByteArray) a = broker_frame (ELBUS_KIND_PUBLISH, FALSE, "snd\0topic", 9);

    assert_broker_error (a, MAX_BODY);
  }
  {
    g_autoptr(GByteArray) a = broker_frame (ELBUS_KIND_PUBLISH, FALSE, "snd\0", 4);

    assert_broker_error (a, MAX_BODY);
  }
  {
    /* over the limit: known from the header alone */
    g_autoptr(GByteArray) a = broker_frame (ELBUS_KIND_MESSAGE, FALSE, NULL, 0);

    _elbus_write_u32 (a->data + 1, 1025);
    assert_broker_error (a, 1024);
  }
}

/* ------------------------------------------------------------------ */
/* Random input: decoders stay within bounds */

static void
test_random_input (void)
{
  guint8 buf[64];

  g_test_summary ("Random bytes never make a decoder read past its input "
                  "or claim a frame longer than it has");

  for (guint iter = 0; iter < 20000; iter++)
    {
      gsize len = g_test_rand_int_range (0, sizeof buf + 1);
      ElbusClientFrame cf;
      ElbusBrokerFrame bf;
      gsize needed = 0;
      ElbusDecodeStatus s;

      for (gsize i = 0; i < len; i++)
        buf[i] = g_test_rand_int_range (0, 256);
      /* bias towards plausible headers */
      if (len > 8 && iter % 2 == 0)
        {
          buf[5] = len - 9;
          buf[6] = buf[7] = buf[8] = 0;
          buf[4] = (buf[4] & 0xC0) | (iter % 4 == 0 ? 0x12 : 0x01);
        }

      s = _elbus_codec_decode_client_frame (buf, len, 1024, &cf, &needed, NULL);
      if (s == ELBUS_DECODE_OK)
        {
          g_assert_cmpuint (cf.frame_len, <=, len);
          g_assert_cmpuint (cf.frame_len, >=, ELBUS_CLIENT_HEADER_LEN);
          if (cf.target != NULL)
            {
              g_assert_cmphex (cf.target[cf.target_len], ==, 0);
              g_assert_true (cf.payload + cf.payload_len == buf + cf.frame_len);
            }
        }
      else if (s == ELBUS_DECODE_INCOMPLETE)
        g_assert_cmpuint (needed, >, len);

      if (len > 5 && iter % 2 == 0)
        {
          buf[1] = len - 6;
          buf[2] = buf[3] = buf[4] = 0;
          buf[0] = iter % 4 == 0 ? 0x12 : 0x01;
        }
      s = _elbus_codec_decode_broker_frame (buf, len, 1024, &bf, &needed, NULL);
      if (s == ELBUS_DECODE_OK)
        {
          g_assert_cmpuint (bf.frame_len, <=, len);
          g_assert_cmpuint (bf.frame_len, >=, ELBUS_BROKER_HEADER_LEN);
          if (bf.sender != NULL)
            {
              g_assert_cmphex (bf.sender[bf.sender_len], ==, 0);
              g_assert_true (bf.payload + bf.payload_len == buf + bf.frame_len);
            }
          if (bf.topic != NULL)
            g_assert_cmphex (bf.topic[bf.topic_len], ==, 0);
        }
      else if (s == ELBUS_DECODE_INCOMPLETE)
        g_assert_cmpuint (needed, >, len);
    }
}

int
main (int   argc,
      char *argv[])
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/codec/greeting/encode", test_greeting_encode);
  g_test_add_func ("/elbus/codec/greeting/decode", test_greeting_decode);
  g_test_add_func ("/elbus/codec/name/encode", test_name_encode);
  g_test_add_func ("/elbus/codec/name/decode", test_name_decode);
  g_test_add_func ("/elbus/codec/name/check", test_name_check);
  g_test_add_func ("/elbus/codec/name/secondary", test_name_secondary);
  g_test_add_func ("/elbus/codec/client/encode-header", test_client_encode_header);
  g_test_add_func ("/elbus/codec/client/decode-ops", test_client_decode_ops);
  g_test_add_func ("/elbus/codec/client/nop", test_client_decode_nop);
  g_test_add_func ("/elbus/codec/client/incremental", test_client_incremental);
  g_test_add_func ("/elbus/codec/client/back-to-back", test_client_back_to_back);
  g_test_add_func ("/elbus/codec/client/malformed", test_client_malformed);
  g_test_add_func ("/elbus/codec/client/max-body", test_client_max_body);
  g_test_add_func ("/elbus/codec/client/next-mask", test_client_next_mask);
  g_test_add_func ("/elbus/codec/broker/encode", test_broker_encode);
  g_test_add_func ("/elbus/codec/broker/decode", test_broker_decode);
  g_test_add_func ("/elbus/codec/broker/incremental", test_broker_incremental);
  g_test_add_func ("/elbus/codec/broker/malformed", test_broker_malformed);
  g_test_add_func ("/elbus/codec/random-input", test_random_input);

  return g_test_run ();
}

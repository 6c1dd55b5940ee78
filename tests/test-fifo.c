/* SPDX-License-Identifier: MIT */
/*
 * The FIFO control channel's lines (elbus-fifo-line-private.h): what each
 * well-formed line asks for, one clear error for each shape that makes no
 * sense, and lines split out of whatever the pipe hands over.
 */
#include "config.h"

#include <string.h>

#include "elbus-error.h"
#include "elbus-fifo-line-private.h"
#include "elbus-msgpack.h"
#include "elbus-test-util.h"

static void
test_parse_good (void)
{
  static const struct {
    const char        *line;
    ElbusFifoLineKind  kind;
    const char        *target;
    const char        *payload;
  } cases[] = {
    { "fifo.t hello text", ELBUS_FIFO_LINE_MESSAGE, "fifo.t", "hello text" },
    { "fifo.t ", ELBUS_FIFO_LINE_MESSAGE, "fifo.t", "" },
    { "fifo.t  two  spaces ", ELBUS_FIFO_LINE_MESSAGE, "fifo.t", " two  spaces " },
    { "fifo.* bc", ELBUS_FIFO_LINE_BROADCAST, "fifo.*", "bc" },
    { "fifo.? bc", ELBUS_FIFO_LINE_BROADCAST, "fifo.?", "bc" },
    { "=a/b pubtext", ELBUS_FIFO_LINE_PUBLISH, "a/b", "pubtext" },
    { "=a/b ", ELBUS_FIFO_LINE_PUBLISH, "a/b", "" },
    { "=a/b :x", ELBUS_FIFO_LINE_PUBLISH, "a/b", ":x" },
    { "fifo.t .note", ELBUS_FIFO_LINE_NOTIFY, "fifo.t", "note" },
    { "fifo.t .", ELBUS_FIFO_LINE_NOTIFY, "fifo.t", "" },
    { "fifo.t grüße", ELBUS_FIFO_LINE_MESSAGE, "fifo.t", "grüße" },
  };

  g_test_summary ("Messages, broadcasts, publications and notifications: kind, target "
                  "and text, an empty text when the line ends in its space");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      ElbusFifoLine parsed;
      g_autoptr(GError) error = NULL;

      g_test_message ("%s", cases[i].line);
      g_assert_true (_elbus_fifo_line_parse (cases[i].line, strlen (cases[i].line), &parsed,
                                             &error));
      g_assert_no_error (error);
      g_assert_cmpint (parsed.kind, ==, cases[i].kind);
      g_assert_cmpstr (parsed.target, ==, cases[i].target);
      g_assert_null (parsed.method);
      g_assert_nonnull (parsed.payload);
      g_assert_cmpmem (g_bytes_get_data (parsed.payload, NULL), g_bytes_get_size (parsed.payload),
                       cases[i].payload, strlen (cases[i].payload));
      _elbus_fifo_line_clear (&parsed);
      g_assert_null (parsed.target);
      g_assert_null (parsed.payload);
    }
}

static void
test_parse_call0 (void)
{
  ElbusFifoLine parsed;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) params = NULL;
  const char *line = "fifo.t :do x=1  y=true z=s w=2.5 ";
  gint64 x;
  gboolean y;
  const char *z;
  double w;

  g_test_summary ("TARGET :METHOD K=V... is a call0 whose params are a typed MessagePack "
                  "map; extra spaces separate nothing; no pairs is an empty map");

  g_assert_true (_elbus_fifo_line_parse (line, strlen (line), &parsed, &error));
  g_assert_no_error (error);
  g_assert_cmpint (parsed.kind, ==, ELBUS_FIFO_LINE_CALL0);
  g_assert_cmpstr (parsed.target, ==, "fifo.t");
  g_assert_cmpstr (parsed.method, ==, "do");
  params = elbus_msgpack_decode (parsed.payload, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_variant_n_children (params), ==, 4);
  g_assert_true (g_variant_lookup (params, "x", "x", &x));
  g_assert_cmpint (x, ==, 1);
  g_assert_true (g_variant_lookup (params, "y", "b", &y));
  g_assert_true (y);
  g_assert_true (g_variant_lookup (params, "z", "&s", &z));
  g_assert_cmpstr (z, ==, "s");
  g_assert_true (g_variant_lookup (params, "w", "d", &w));
  g_assert_cmpfloat (w, ==, 2.5);
  _elbus_fifo_line_clear (&parsed);

  line = "fifo.t :ping";
  g_assert_true (_elbus_fifo_line_parse (line, strlen (line), &parsed, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (parsed.method, ==, "ping");
  g_assert_cmpmem (g_bytes_get_data (parsed.payload, NULL), g_bytes_get_size (parsed.payload),
                   "\x80", 1);
  _elbus_fifo_line_clear (&parsed);
}

static void
test_parse_empty (void)
{
  ElbusFifoLine parsed;
  g_autoptr(GError) error = NULL;

  g_test_summary ("An empty line asks for nothing and is no error");

  g_assert_true (_elbus_fifo_line_parse ("", 0, &parsed, &error));
  g_assert_no_error (error);
  g_assert_cmpint (parsed.kind, ==, ELBUS_FIFO_LINE_EMPTY);
  g_assert_null (parsed.target);
  g_assert_null (parsed.payload);
  _elbus_fifo_line_clear (&parsed);
}

static void
test_parse_bad (void)
{
  static const struct {
    const char *line;
    gsize       len;      /* 0: strlen */
    const char *message;  /* a part of the error message */
  } cases[] = {
    { " hello", 0, "“ hello” has no target" },
    { "  ", 0, "has no target" },
    { "fifo.t", 0, "“fifo.t” has no text after its target" },
    { "=a/b", 0, "“=a/b” has no text after its target" },
    { "=", 0, "“=” is a publication without a topic" },
    { "= text", 0, "“= text” is a publication without a topic" },
    { "fifo.t :", 0, "“fifo.t :” is an RPC call without a method" },
    { "fifo.t : x=1", 0, "an RPC call without a method" },
    { "fifo.t :do k", 0, "“fifo.t :do k”: “k” is not KEY=VALUE" },
    { "fifo.t :do x=1 =v", 0, "“=v” is not KEY=VALUE" },
    { "fifo.* .note", 0, "“fifo.* .note” is an RPC notification to a mask" },
    { "fifo.? :do", 0, "an RPC call to a mask" },
    { "fifo.t \xff\xfe", 0, "a line that is not UTF-8 text (byte 8)" },
    { "\xc3", 0, "not UTF-8 text (byte 1)" },
    { "fifo.t a\0b", 10, "a line with a NUL byte (byte 9)" },
    { "a-target-whose-name-is-far-too-long-to-quote-in-full", 0,
      "“a-target-whose-name-is-far-too-long-to-q…” has no text" },
  };

  g_test_summary ("Each line that makes no sense (no target, no text, = without a topic, "
                  ": without a method, a key without =, RPC to a mask, invalid UTF-8, a "
                  "NUL byte) is one ELBUS_ERROR_DATA saying what is wrong, and asks for "
                  "nothing");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      ElbusFifoLine parsed;
      g_autoptr(GError) error = NULL;
      gsize len = cases[i].len != 0 ? cases[i].len : strlen (cases[i].line);

      g_assert_false (_elbus_fifo_line_parse (cases[i].line, len, &parsed, &error));
      g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
      g_test_message ("%s", error->message);
      g_assert_nonnull (strstr (error->message, cases[i].message));
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      _elbus_fifo_line_clear (&parsed);
      g_assert_null (parsed.target);
      g_assert_null (parsed.method);
      g_assert_null (parsed.payload);
    }
}

typedef struct {
  GPtrArray *events; /* (element-type utf8): "KIND TARGET|payload" or "error: message" */
} Collected;

static void
collect_cb (const ElbusFifoLine *line,
            const GError        *error,
            gpointer             user_data)
{
  Collected *c = user_data;

  g_assert_true ((line == NULL) != (error == NULL));
  if (error != NULL)
    {
      g_ptr_array_add (c->events, g_strdup_printf ("error: %s", error->message));
      return;
    }
  g_assert_cmpint (line->kind, !=, ELBUS_FIFO_LINE_EMPTY);
  g_ptr_array_add (c->events, g_strdup_printf ("%d %s|%.*s", line->kind, line->target,
                                               (int) g_bytes_get_size (line->payload),
                                               (const char *) g_bytes_get_data (line->payload,
                                                                                NULL)));
}

static void
test_reader_split (void)
{
  static const char input[] = "a one\n\n=t/x two\nb .three\n \nc four";
  Collected c = { g_ptr_array_new_with_free_func (g_free) };
  ElbusFifoReader reader;

  g_test_summary ("Lines are handled as their newline arrives, however the bytes are "
                  "split; empty lines are skipped; a bad line is reported and the next "
                  "one still works; an unfinished line waits");

  for (gsize chunk = 1; chunk <= sizeof input; chunk++)
    {
      g_ptr_array_set_size (c.events, 0);
      _elbus_fifo_reader_init (&reader, 64);
      for (gsize pos = 0; pos < sizeof input - 1; pos += chunk)
        _elbus_fifo_reader_feed (&reader, input + pos, MIN (chunk, sizeof input - 1 - pos),
                                 collect_cb, &c);
      g_assert_cmpuint (c.events->len, ==, 4);
      g_assert_cmpstr (c.events->pdata[0], ==, "1 a|one");
      g_assert_cmpstr (c.events->pdata[1], ==, "3 t/x|two");
      g_assert_cmpstr (c.events->pdata[2], ==, "4 b|three");
      g_assert_true (g_str_has_prefix (c.events->pdata[3], "error: “ ” has no target"));

      _elbus_fifo_reader_feed (&reader, "\n", 1, collect_cb, &c);
      g_assert_cmpuint (c.events->len, ==, 5);
      g_assert_cmpstr (c.events->pdata[4], ==, "1 c|four");
      _elbus_fifo_reader_clear (&reader);
    }
  g_ptr_array_unref (c.events);
}

static void
test_reader_overlong (void)
{
  Collected c = { g_ptr_array_new_with_free_func (g_free) };
  ElbusFifoReader reader;
  g_autofree char *long_line = g_strnfill (100, 'x');

  g_test_summary ("A line longer than the limit is reported once, as soon as it passes "
                  "the limit, however it arrives; its rest is skipped up to its newline "
                  "and the next line works; a line of exactly the limit works");

  _elbus_fifo_reader_init (&reader, 16);

  /* byte by byte: one report when it passes 16 bytes, none later */
  for (int i = 0; i < 100; i++)
    _elbus_fifo_reader_feed (&reader, long_line, 1, collect_cb, &c);
  g_assert_cmpuint (c.events->len, ==, 1);
  g_assert_cmpstr (c.events->pdata[0], ==, "error: a line longer than 16 bytes");
  _elbus_fifo_reader_feed (&reader, "\nok 1\n", 6, collect_cb, &c);
  g_assert_cmpuint (c.events->len, ==, 2);
  g_assert_cmpstr (c.events->pdata[1], ==, "1 ok|1");

  /* at once, with the next line in the same read */
  _elbus_fifo_reader_feed (&reader, long_line, 100, collect_cb, &c);
  _elbus_fifo_reader_feed (&reader, "\nok 2\n", 6, collect_cb, &c);
  g_assert_cmpuint (c.events->len, ==, 4);
  g_assert_cmpstr (c.events->pdata[2], ==, "error: a line longer than 16 bytes");
  g_assert_cmpstr (c.events->pdata[3], ==, "1 ok|2");

  /* exactly 16 bytes is a line, 17 is not */
  _elbus_fifo_reader_feed (&reader, "t 34567890123456\nt 345678901234567\n", 35,
                           collect_cb, &c);
  g_assert_cmpuint (c.events->len, ==, 6);
  g_assert_cmpstr (c.events->pdata[4], ==, "1 t|34567890123456");
  g_assert_cmpstr (c.events->pdata[5], ==, "error: a line longer than 16 bytes");

  _elbus_fifo_reader_clear (&reader);
  g_ptr_array_unref (c.events);
}

int
main (int    argc,
      char **argv)
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/fifo/parse/good", test_parse_good);
  g_test_add_func ("/elbus/fifo/parse/call0", test_parse_call0);
  g_test_add_func ("/elbus/fifo/parse/empty", test_parse_empty);
  g_test_add_func ("/elbus/fifo/parse/bad", test_parse_bad);
  g_test_add_func ("/elbus/fifo/reader/split", test_reader_split);
  g_test_add_func ("/elbus/fifo/reader/overlong", test_reader_overlong);

  return g_test_run ();
}

/* SPDX-License-Identifier: MIT */
/*
 * GVariant <-> MessagePack (elbus-msgpack.c): exact bytes against
 * hand-written MessagePack, round trips for every mapped type and every
 * length and integer encoding, and every way the decoder refuses input.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "elbus-test-util.h"

/* ------------------------------------------------------------------ */
/* Helpers */

/* "81 a2 6f 6b c3" -> bytes; spaces are ignored. */
static GBytes *
hex_to_bytes (const char *hex)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();

  while (*hex != '\0')
    {
      guint8 byte;

      if (*hex == ' ')
        {
          hex++;
          continue;
        }
      g_assert_cmpint (g_ascii_xdigit_value (hex[0]), >=, 0);
      g_assert_cmpint (g_ascii_xdigit_value (hex[1]), >=, 0);
      byte = (guint8) (g_ascii_xdigit_value (hex[0]) << 4 | g_ascii_xdigit_value (hex[1]));
      g_byte_array_append (out, &byte, 1);
      hex += 2;
    }

  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

static GVariant *
parse_variant (const char *text)
{
  g_autoptr(GError) error = NULL;
  GVariant *value;

  /* g_variant_parse() returns a reference that is not floating. */
  value = g_variant_parse (NULL, text, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (g_variant_is_floating (value));
  return value;
}

static void
assert_variant_equal (GVariant   *value,
                      GVariant   *expected)
{
  g_autofree char *printed = g_variant_print (value, TRUE);
  g_autofree char *printed_expected = g_variant_print (expected, TRUE);

  g_assert_cmpstr (g_variant_get_type_string (value), ==,
                   g_variant_get_type_string (expected));
  g_assert_cmpstr (printed, ==, printed_expected);
  g_assert_true (g_variant_equal (value, expected));
}

static void
assert_bytes_equal (GBytes *bytes,
                    GBytes *expected)
{
  gsize len, expected_len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  const guint8 *expected_data = g_bytes_get_data (expected, &expected_len);

  g_assert_cmpmem (data, len, expected_data, expected_len);
}

static GBytes *
encode_ok (GVariant *value)
{
  g_autoptr(GError) error = NULL;
  GBytes *bytes;

  bytes = elbus_msgpack_encode_variant (value, &error);
  g_assert_no_error (error);
  g_assert_nonnull (bytes);
  return bytes;
}

/* What the decoder builds is in normal form, checked on a copy that
 * GLib does not trust (it trusts the decoder's own result). */
static void
assert_normal_form (GVariant *value)
{
  g_autoptr(GBytes) data = g_variant_get_data_as_bytes (value);
  g_autoptr(GVariant) untrusted = g_variant_ref_sink (
    g_variant_new_from_bytes (g_variant_get_type (value), data, FALSE));

  g_assert_true (g_variant_is_normal_form (untrusted));
  g_assert_true (g_variant_equal (untrusted, value));
}

static GVariant *
decode_ok (GBytes *bytes)
{
  g_autoptr(GError) error = NULL;
  GVariant *value;

  value = elbus_msgpack_decode (bytes, &error);
  g_assert_no_error (error);
  g_assert_nonnull (value);
  g_assert_false (g_variant_is_floating (value));
  assert_normal_form (value);
  return value;
}

/* Decoding @data must fail with ELBUS_ERROR_DATA, and the message must
 * contain @needle when given. */
static void
assert_decode_fails (const guint8 *data,
                     gsize         len,
                     const char   *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;

  value = elbus_msgpack_decode_data (data, len, &error);
  g_assert_null (value);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
  g_assert_nonnull (error->message);
  if (needle != NULL && strstr (error->message, needle) == NULL)
    g_assert_cmpstr (error->message, ==, needle);
}

static void
assert_decode_hex_fails (const char *hex,
                         const char *needle)
{
  g_autoptr(GBytes) bytes = hex_to_bytes (hex);
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  assert_decode_fails (data, len, needle);
}

/* Encodes @value, checks the bytes are @hex, decodes them and checks the
 * result is @decoded (or @value itself when %NULL), and checks that the
 * result encodes to the same bytes again. */
static void
check_round_trip (GVariant   *value,
                  const char *hex,
                  GVariant   *decoded)
{
  g_autoptr(GBytes) bytes = encode_ok (value);
  g_autoptr(GVariant) result = NULL;
  g_autoptr(GBytes) again = NULL;

  if (hex != NULL)
    {
      g_autoptr(GBytes) expected = hex_to_bytes (hex);

      assert_bytes_equal (bytes, expected);
    }

  result = decode_ok (bytes);
  assert_variant_equal (result, decoded != NULL ? decoded : value);

  again = encode_ok (result);
  assert_bytes_equal (again, bytes);
}

/* Nests @depth arrays: [[[...[]...]]], as av and as its bytes. */
static GVariant *
nested_arrays (guint depth)
{
  GVariant *value = g_variant_new_array (G_VARIANT_TYPE_VARIANT, NULL, 0);

  for (guint i = 1; i < depth; i++)
    {
      GVariant *child = g_variant_new_variant (value);

      value = g_variant_new_array (G_VARIANT_TYPE_VARIANT, &child, 1);
    }

  return g_variant_ref_sink (value);
}

static GBytes *
nested_arrays_bytes (guint depth)
{
  guint8 *data = g_malloc (depth);

  memset (data, 0x91, depth - 1);
  data[depth - 1] = 0x90;
  return g_bytes_new_take (data, depth);
}

/* ------------------------------------------------------------------ */
/* Golden bytes */

typedef struct {
  const char *variant;      /* GVariant text format */
  const char *hex;          /* its MessagePack */
} EncodeCase;

static void
test_encode_golden (void)
{
  static const EncodeCase cases[] = {
    /* maps */
    { "@a{sv} {'ok': <true>}", "81 a2 6f 6b c3" },
    { "@a{sv} {}", "80" },
    { "@a{ss} {'a': 'b'}", "81 a1 61 a1 62" },
    { "@a{sa{si}} {'a': {'b': 1}}", "81 a1 61 81 a1 62 01" },
    { "@a{xs} {1: 'a'}", "81 01 a1 61" },
    { "@a{ys} {255: 'a'}", "81 cc ff a1 61" },
    { "@a{bi} {true: -1}", "81 c3 ff" },
    { "@a{os} {'/a': ''}", "81 a2 2f 61 a0" },
    { "@a{dv} {0.5: <@mv nothing>}", "81 cb 3f e0 00 00 00 00 00 00 c0" },
    { "@{sv} {'a', <1>}", "81 a1 61 01" },
    { "@a(vv) [(<1>, <true>), (<'a'>, <@mv nothing>)]", "82 01 c3 a1 61 c0" },
    { "@a(vv) []", "80" },
    { "{'a': <[1, 2]>, 'b': <{'c': <@ai []>}>}",
      "82 a1 61 92 01 02 a1 62 81 a1 63 90" },
    /* arrays and tuples */
    { "@av [<1>, <'a'>, <@mv nothing>]", "93 01 a1 61 c0" },
    { "(1, 'a', @mv nothing)", "93 01 a1 61 c0" },
    { "@av []", "90" },
    { "()", "90" },
    { "@ai [1, -1, 300]", "93 01 ff cd 01 2c" },
    { "@as ['x']", "91 a1 78" },
    { "@a(ib) [(1, true)]", "91 92 01 c3" },
    { "@a(vs) [(<1>, 'a')]", "91 92 01 a1 61" },
    { "@a(vvv) [(<1>, <2>, <3>)]", "91 93 01 02 03" },
    { "@aay [[0x61], []]", "92 c4 01 61 c4 00" },
    { "@aav [[<1>], []]", "92 91 01 90" },
    /* scalars */
    { "true", "c3" },
    { "false", "c2" },
    { "@y 0", "00" },
    { "@y 200", "cc c8" },
    { "@n -200", "d1 ff 38" },
    { "@n 200", "cc c8" },
    { "@q 65535", "cd ff ff" },
    { "@i -2147483648", "d2 80 00 00 00" },
    { "@i 2147483647", "ce 7f ff ff ff" },
    { "@u 4294967295", "ce ff ff ff ff" },
    { "@h 3", "03" },
    { "@x -1", "ff" },
    { "@t 18446744073709551615", "cf ff ff ff ff ff ff ff ff" },
    { "1.5", "cb 3f f8 00 00 00 00 00 00" },
    { "-0.0", "cb 80 00 00 00 00 00 00 00" },
    { "''", "a0" },
    { "'héllo'", "a6 68 c3 a9 6c 6c 6f" },
    { "@o '/a'", "a2 2f 61" },
    { "@g 'ai'", "a2 61 69" },
    { "@ay []", "c4 00" },
    { "@ay [0x61, 0x62]", "c4 02 61 62" },
    { "b'ab'", "c4 03 61 62 00" },              /* a bytestring keeps its NUL */
    /* variants and maybes */
    { "<<<5>>>", "05" },
    { "@mi nothing", "c0" },
    { "@mi 5", "05" },
    { "@ms 'x'", "a1 78" },
    { "@mmi just nothing", "c0" },
    { "@mmi nothing", "c0" },
    { "@mv <@mv nothing>", "c0" },
    { "@mav [<1>]", "91 01" },
  };

  g_test_summary ("Every GVariant type encodes to exactly the hand-written "
                  "MessagePack, integers and lengths in their smallest form");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GVariant) value = parse_variant (cases[i].variant);
      g_autoptr(GBytes) bytes = encode_ok (value);
      g_autoptr(GBytes) expected = hex_to_bytes (cases[i].hex);

      g_test_message ("%s", cases[i].variant);
      assert_bytes_equal (bytes, expected);
    }
}

static void
test_encode_floating (void)
{
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) expected = hex_to_bytes ("92 a1 61 01");
  g_autoptr(GVariant) held = g_variant_ref_sink (g_variant_new_int32 (7));
  g_autoptr(GBytes) held_bytes = NULL;

  g_test_summary ("A floating value is consumed; a held one is left alone");

  bytes = encode_ok (g_variant_new ("(si)", "a", 1));
  assert_bytes_equal (bytes, expected);

  held_bytes = encode_ok (held);
  g_assert_cmpuint (g_bytes_get_size (held_bytes), ==, 1);
  g_assert_false (g_variant_is_floating (held));
  g_assert_cmpint (g_variant_get_int32 (held), ==, 7);
}

typedef struct {
  const char *hex;
  const char *variant;      /* the expected result, typed */
} DecodeCase;

static void
test_decode_golden (void)
{
  static const DecodeCase cases[] = {
    /* maps */
    { "81 a2 6f 6b c3", "@a{sv} {'ok': <true>}" },
    { "80", "@a{sv} {}" },
    { "de 00 00", "@a{sv} {}" },
    { "df 00 00 00 01 a1 61 c0", "@a{sv} {'a': <@mv nothing>}" },
    { "82 a1 61 01 a1 61 02", "@a{sv} [{'a', <int64 1>}, {'a', <int64 2>}]" },
    { "81 01 a1 61", "@a{xv} {1: <'a'>}" },
    { "82 ff c3 01 c2", "@a{xv} {-1: <true>, 1: <false>}" },
    { "82 cf ff ff ff ff ff ff ff ff 01 00 02", "@a{tv} {18446744073709551615: <int64 1>, 0: <int64 2>}" },
    { "81 c3 90", "@a{bv} {true: <@av []>}" },
    { "81 ca 3f c0 00 00 c0", "@a{dv} {1.5: <@mv nothing>}" },
    { "82 01 c3 a1 61 c2", "@a(vv) [(<int64 1>, <true>), (<'a'>, <false>)]" },
    { "82 ff 01 cf ff ff ff ff ff ff ff ff 02",
      "@a(vv) [(<int64 -1>, <int64 1>), (<uint64 18446744073709551615>, <int64 2>)]" },
    { "81 c0 01", "@a(vv) [(<@mv nothing>, <int64 1>)]" },
    { "81 90 01", "@a(vv) [(<@av []>, <int64 1>)]" },
    { "81 c4 01 00 01", "@a(vv) [(<@ay [0]>, <int64 1>)]" },
    /* arrays */
    { "93 01 a1 61 c0", "@av [<int64 1>, <'a'>, <@mv nothing>]" },
    { "90", "@av []" },
    { "dc 00 01 01", "@av [<int64 1>]" },
    { "dd 00 00 00 02 90 80", "@av [<@av []>, <@a{sv} {}>]" },
    /* integers, in every encoding, minimal or not */
    { "00", "int64 0" },
    { "7f", "int64 127" },
    { "cc 80", "int64 128" },
    { "cc 05", "int64 5" },
    { "cd 00 05", "int64 5" },
    { "ce 00 00 00 05", "int64 5" },
    { "cf 00 00 00 00 00 00 00 05", "int64 5" },
    { "d0 05", "int64 5" },
    { "d1 00 05", "int64 5" },
    { "d2 00 00 00 05", "int64 5" },
    { "d3 00 00 00 00 00 00 00 05", "int64 5" },
    { "cf 7f ff ff ff ff ff ff ff", "int64 9223372036854775807" },
    { "cf 80 00 00 00 00 00 00 00", "uint64 9223372036854775808" },
    { "cf ff ff ff ff ff ff ff ff", "uint64 18446744073709551615" },
    { "ff", "int64 -1" },
    { "e0", "int64 -32" },
    { "d0 df", "int64 -33" },
    { "d0 80", "int64 -128" },
    { "d1 ff 7f", "int64 -129" },
    { "d2 80 00 00 00", "int64 -2147483648" },
    { "d3 80 00 00 00 00 00 00 00", "int64 -9223372036854775808" },
    /* others */
    { "ca 3f c0 00 00", "1.5" },
    { "cb 3f f8 00 00 00 00 00 00", "1.5" },
    { "c3", "true" },
    { "c2", "false" },
    { "c0", "@mv nothing" },
    { "a0", "''" },
    { "a1 61", "'a'" },
    { "d9 01 61", "'a'" },
    { "da 00 01 61", "'a'" },
    { "db 00 00 00 01 61", "'a'" },
    { "a3 e2 9c 93", "'✓'" },
    { "c4 00", "@ay []" },
    { "c4 02 00 ff", "@ay [0, 255]" },
    { "c5 00 01 61", "@ay [0x61]" },
    { "c6 00 00 00 01 61", "@ay [0x61]" },
  };

  g_test_summary ("Hand-written MessagePack decodes to a{sv}, av, x, t, d, b, "
                  "s, ay and mv; other maps by the type of their keys");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GBytes) bytes = hex_to_bytes (cases[i].hex);
      g_autoptr(GVariant) expected = parse_variant (cases[i].variant);
      g_autoptr(GVariant) value = NULL;
      g_autoptr(GError) error = NULL;
      gsize len;
      const guint8 *data = g_bytes_get_data (bytes, &len);

      g_test_message ("%s", cases[i].hex);
      value = decode_ok (bytes);
      assert_variant_equal (value, expected);
      g_clear_pointer (&value, g_variant_unref);

      /* The pointer variant agrees. */
      value = elbus_msgpack_decode_data (data, len, &error);
      g_assert_no_error (error);
      g_assert_false (g_variant_is_floating (value));
      assert_variant_equal (value, expected);
    }
}

static void
test_decode_lookup (void)
{
  g_autoptr(GBytes) bytes = hex_to_bytes ("83 a2 6f 6b c3 a1 6e 2a a1 73 a2 68 69");
  g_autoptr(GVariant) value = decode_ok (bytes);
  gboolean ok = FALSE;
  gint64 n = 0;
  const char *s = NULL;

  g_test_summary ("A decoded map works with g_variant_lookup()");

  g_assert_true (g_variant_lookup (value, "ok", "b", &ok));
  g_assert_true (ok);
  g_assert_true (g_variant_lookup (value, "n", "x", &n));
  g_assert_cmpint (n, ==, 42);
  g_assert_true (g_variant_lookup (value, "s", "&s", &s));
  g_assert_cmpstr (s, ==, "hi");
}

/* ------------------------------------------------------------------ */
/* Round trips */

typedef struct {
  const char *variant;
  const char *decoded;      /* what it decodes to, when not itself */
} RoundTripCase;

static void
test_round_trip_types (void)
{
  static const RoundTripCase cases[] = {
    { "true", NULL },
    { "false", NULL },
    { "@y 255", "int64 255" },
    { "@n -32768", "int64 -32768" },
    { "@q 65535", "int64 65535" },
    { "@i -2147483648", "int64 -2147483648" },
    { "@u 4294967295", "int64 4294967295" },
    { "int64 -9223372036854775808", NULL },
    { "uint64 18446744073709551615", NULL },
    { "uint64 1", "int64 1" },
    { "@h 7", "int64 7" },
    { "1.25", NULL },
    { "-1e300", NULL },
    { "'text ✓'", NULL },
    { "@o '/org/elbus'", "'/org/elbus'" },
    { "@g 'a{sv}'", "'a{sv}'" },
    { "b'bytes'", NULL },
    { "@ay []", NULL },
    { "@mv nothing", NULL },
    { "@mi nothing", "@mv nothing" },
    { "@ms 'x'", "'x'" },
    { "<int64 5>", "int64 5" },
    { "@av []", NULL },
    { "@a{sv} {}", NULL },
    { "()", "@av []" },
    { "(1, 'a', true)", "[<int64 1>, <'a'>, <true>]" },
    { "@ai [1, 2]", "[<int64 1>, <int64 2>]" },
    { "@a{ss} {'a': 'b'}", "{'a': <'b'>}" },
    { "@a{xs} {-5: 'a'}", "@a{xv} {-5: <'a'>}" },
    { "@a{ts} {18446744073709551615: 'a', 1: 'b'}",
      "@a{tv} {18446744073709551615: <'a'>, 1: <'b'>}" },
    { "@a{bi} {true: 1}", "@a{bv} {true: <int64 1>}" },
    { "@a{di} {2.5: 1}", "@a{dv} {2.5: <int64 1>}" },
    { "@{sv} {'k', <1>}", "{'k': <int64 1>}" },
    { "@a(vv) [(<int64 1>, <'a'>), (<'b'>, <true>)]", NULL },
    { "@a(vv) [(<@mv nothing>, <[<int64 1>]>)]", NULL },
    { "@a(vv) [(<1>, <'a'>), (<'b'>, <true>)]", "@a(vv) [(<int64 1>, <'a'>), (<'b'>, <true>)]" },
    { "@a(vv) []", "@a{sv} {}" },
    /* already in decoded form: comes back unchanged */
    { "{'name': <'x'>, 'list': <[<int64 1>, <'two'>, <@av []>, <@a{sv} {}>,"
      " <@mv nothing>]>, 'map': <{'inner': <[<b'\\x00\\xff'>, <3.5>, <false>]>,"
      " 'deeper': <{'n': <int64 -129>}>}>, 'empty-bin': <@ay []>,"
      " 'big': <uint64 18446744073709551615>}", NULL },
  };

  g_test_summary ("Every mapped type survives encode, decode, encode; "
                  "integer types widen to x (or t), o and g become s");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GVariant) value = parse_variant (cases[i].variant);
      g_autoptr(GVariant) decoded = NULL;

      g_test_message ("%s", cases[i].variant);
      if (cases[i].decoded != NULL)
        decoded = parse_variant (cases[i].decoded);
      check_round_trip (value, NULL, decoded);
    }
}

static void
test_round_trip_ints (void)
{
  static const struct {
    gint64      value;
    const char *hex;
  } signed_cases[] = {
    { 0, "00" },
    { 1, "01" },
    { 127, "7f" },
    { 128, "cc 80" },
    { 255, "cc ff" },
    { 256, "cd 01 00" },
    { 65535, "cd ff ff" },
    { 65536, "ce 00 01 00 00" },
    { G_MAXUINT32, "ce ff ff ff ff" },
    { (gint64) G_MAXUINT32 + 1, "cf 00 00 00 01 00 00 00 00" },
    { G_MAXINT64, "cf 7f ff ff ff ff ff ff ff" },
    { -1, "ff" },
    { -32, "e0" },
    { -33, "d0 df" },
    { -128, "d0 80" },
    { -129, "d1 ff 7f" },
    { -32768, "d1 80 00" },
    { -32769, "d2 ff ff 7f ff" },
    { G_MININT32, "d2 80 00 00 00" },
    { (gint64) G_MININT32 - 1, "d3 ff ff ff ff 7f ff ff ff" },
    { G_MININT64, "d3 80 00 00 00 00 00 00 00" },
  };
  static const struct {
    guint64     value;
    const char *hex;
  } unsigned_cases[] = {
    { 0, "00" },
    { 127, "7f" },
    { 128, "cc 80" },
    { 255, "cc ff" },
    { 256, "cd 01 00" },
    { 65535, "cd ff ff" },
    { 65536, "ce 00 01 00 00" },
    { G_MAXUINT32, "ce ff ff ff ff" },
    { (guint64) G_MAXUINT32 + 1, "cf 00 00 00 01 00 00 00 00" },
    { G_MAXINT64, "cf 7f ff ff ff ff ff ff ff" },
    { (guint64) G_MAXINT64 + 1, "cf 80 00 00 00 00 00 00 00" },
    { G_MAXUINT64, "cf ff ff ff ff ff ff ff ff" },
  };

  g_test_summary ("Integers at every encoding boundary: smallest encoding out, "
                  "x back (t above G_MAXINT64), same bytes again");

  for (gsize i = 0; i < G_N_ELEMENTS (signed_cases); i++)
    {
      g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_int64 (signed_cases[i].value));

      g_test_message ("x %" G_GINT64_FORMAT, signed_cases[i].value);
      check_round_trip (value, signed_cases[i].hex, NULL);
    }

  for (gsize i = 0; i < G_N_ELEMENTS (unsigned_cases); i++)
    {
      g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_uint64 (unsigned_cases[i].value));
      g_autoptr(GVariant) decoded = NULL;

      g_test_message ("t %" G_GUINT64_FORMAT, unsigned_cases[i].value);
      if (unsigned_cases[i].value <= G_MAXINT64)
        decoded = g_variant_ref_sink (g_variant_new_int64 ((gint64) unsigned_cases[i].value));
      check_round_trip (value, unsigned_cases[i].hex, decoded);
    }
}

static void
test_round_trip_lengths (void)
{
  static const struct {
    gsize       len;
    const char *str_header;
    const char *bin_header;
    const char *array_header;
    const char *map_header;
  } cases[] = {
    { 0, "a0", "c4 00", "90", "80" },
    { 1, "a1", "c4 01", "91", "81" },
    { 15, "af", "c4 0f", "9f", "8f" },
    { 16, "b0", "c4 10", "dc 00 10", "de 00 10" },
    { 31, "bf", "c4 1f", "dc 00 1f", "de 00 1f" },
    { 32, "d9 20", "c4 20", "dc 00 20", "de 00 20" },
    { 255, "d9 ff", "c4 ff", "dc 00 ff", "de 00 ff" },
    { 256, "da 01 00", "c5 01 00", "dc 01 00", "de 01 00" },
    { 65535, "da ff ff", "c5 ff ff", "dc ff ff", "de ff ff" },
    { 65536, "db 00 01 00 00", "c6 00 01 00 00", "dd 00 01 00 00", "df 00 01 00 00" },
  };

  g_test_summary ("Strings, binaries, arrays and maps of every length class "
                  "get the right header and come back whole");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gsize len = cases[i].len;
      g_autofree char *str = g_strnfill (len, 'x');
      g_autofree guint8 *bin = g_malloc0 (len + 1);
      g_autoptr(GVariant) value = NULL;
      g_autoptr(GBytes) bytes = NULL;
      g_autoptr(GBytes) header = NULL;
      GVariantBuilder builder;

      g_test_message ("length %" G_GSIZE_FORMAT, len);
      for (gsize j = 0; j < len; j++)
        bin[j] = (guint8) j;

      /* str */
      value = g_variant_ref_sink (g_variant_new_string (str));
      bytes = encode_ok (value);
      header = hex_to_bytes (cases[i].str_header);
      g_assert_cmpuint (g_bytes_get_size (bytes), ==, g_bytes_get_size (header) + len);
      g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (header),
                       g_bytes_get_data (header, NULL), g_bytes_get_size (header));
      check_round_trip (value, NULL, NULL);
      g_clear_pointer (&value, g_variant_unref);
      g_clear_pointer (&bytes, g_bytes_unref);
      g_clear_pointer (&header, g_bytes_unref);

      /* bin */
      value = g_variant_ref_sink (g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, bin, len, 1));
      bytes = encode_ok (value);
      header = hex_to_bytes (cases[i].bin_header);
      g_assert_cmpuint (g_bytes_get_size (bytes), ==, g_bytes_get_size (header) + len);
      g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (header),
                       g_bytes_get_data (header, NULL), g_bytes_get_size (header));
      check_round_trip (value, NULL, NULL);
      g_clear_pointer (&value, g_variant_unref);
      g_clear_pointer (&bytes, g_bytes_unref);
      g_clear_pointer (&header, g_bytes_unref);

      /* array: av of nil */
      g_variant_builder_init (&builder, G_VARIANT_TYPE ("av"));
      for (gsize j = 0; j < len; j++)
        g_variant_builder_add (&builder, "v", g_variant_new_maybe (G_VARIANT_TYPE_VARIANT, NULL));
      value = g_variant_ref_sink (g_variant_builder_end (&builder));
      bytes = encode_ok (value);
      header = hex_to_bytes (cases[i].array_header);
      g_assert_cmpuint (g_bytes_get_size (bytes), ==, g_bytes_get_size (header) + len);
      g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (header),
                       g_bytes_get_data (header, NULL), g_bytes_get_size (header));
      check_round_trip (value, NULL, NULL);
      g_clear_pointer (&value, g_variant_unref);
      g_clear_pointer (&bytes, g_bytes_unref);
      g_clear_pointer (&header, g_bytes_unref);

      /* map: a{sv}, string keys "k0".."kN" to false */
      g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
      for (gsize j = 0; j < len; j++)
        {
          g_autofree char *key = g_strdup_printf ("k%" G_GSIZE_FORMAT, j);

          g_variant_builder_add (&builder, "{sv}", key, g_variant_new_boolean (FALSE));
        }
      value = g_variant_ref_sink (g_variant_builder_end (&builder));
      bytes = encode_ok (value);
      header = hex_to_bytes (cases[i].map_header);
      g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (header),
                       g_bytes_get_data (header, NULL), g_bytes_get_size (header));
      check_round_trip (value, NULL, NULL);
    }
}

static void
test_round_trip_depth (void)
{
  g_autoptr(GVariant) deepest = nested_arrays (ELBUS_MSGPACK_MAX_DEPTH);
  g_autoptr(GVariant) too_deep = nested_arrays (ELBUS_MSGPACK_MAX_DEPTH + 1);
  g_autoptr(GBytes) deepest_bytes = nested_arrays_bytes (ELBUS_MSGPACK_MAX_DEPTH);
  g_autoptr(GBytes) too_deep_bytes = nested_arrays_bytes (ELBUS_MSGPACK_MAX_DEPTH + 1);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Arrays nested ELBUS_MSGPACK_MAX_DEPTH deep go both ways; "
                  "one level more is refused both ways");

  check_round_trip (deepest, NULL, NULL);
  bytes = encode_ok (deepest);
  assert_bytes_equal (bytes, deepest_bytes);

  g_assert_null (elbus_msgpack_encode_variant (too_deep, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
  g_assert_nonnull (strstr (error->message, "deeper"));

  assert_decode_fails (g_bytes_get_data (too_deep_bytes, NULL),
                       g_bytes_get_size (too_deep_bytes), "deeper");
}

static void
test_round_trip_depth_mixed_keys (void)
{
  gsize len = 4 * ELBUS_MSGPACK_MAX_DEPTH + 1;
  g_autofree guint8 *data = g_malloc (len);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) again = NULL;
  g_autoptr(GVariant) value = NULL;

  g_test_summary ("Maps with mixed keys nested to the limit decode to a(vv) "
                  "and encode back to the same maps, not one level deeper");

  /* {1: nil, "": {1: nil, "": ... nil}} */
  for (gsize i = 0; i < ELBUS_MSGPACK_MAX_DEPTH; i++)
    memcpy (data + 4 * i, "\x82\x01\xc0\xa0", 4);
  data[len - 1] = 0xc0;
  bytes = g_bytes_new_take (g_steal_pointer (&data), len);

  value = decode_ok (bytes);
  g_assert_cmpstr (g_variant_get_type_string (value), ==, "a(vv)");
  again = encode_ok (value);
  assert_bytes_equal (again, bytes);
}

static void
test_encode_deep_variants (void)
{
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GVariant) maybe = NULL;
  g_autoptr(GBytes) bytes = NULL;
  GVariant *v = g_variant_new_int32 (5);
  GVariant *m = g_variant_new_boolean (TRUE);

  g_test_summary ("Variants and maybes add no MessagePack level and cost no "
                  "recursion: 10,000 of them around a value encode as the value");

  /* <just <just <... 5>>>, of type v all along */
  for (guint i = 0; i < 5000; i++)
    v = g_variant_new_variant (g_variant_new_maybe (NULL, v));
  value = g_variant_ref_sink (v);

  /* mm...mb: GVariant types nest at most 128 deep */
  for (guint i = 0; i < 100; i++)
    m = g_variant_new_maybe (NULL, m);
  maybe = g_variant_ref_sink (m);

  bytes = encode_ok (value);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), "\x05", 1);
  g_clear_pointer (&bytes, g_bytes_unref);

  bytes = encode_ok (maybe);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), "\xc3", 1);
}

/* ------------------------------------------------------------------ */
/* Errors */

/* One value using every MessagePack format this decoder accepts. */
#define COMPLEX_HEX \
  "8f"                                          /* fixmap, 15 entries */ \
  "a1 61 c0"                                    /* nil */ \
  "a1 62 c2"                                    /* false */ \
  "a1 63 93 7f e0 cc 80"                        /* fixarray, fixints, uint8 */ \
  "a1 64 dc 00 03 cd 01 00 ce 00 01 00 00 cf 00 00 00 01 00 00 00 00" \
  "a1 65 dd 00 00 00 04 d0 df d1 ff 7f d2 ff ff 7f ff d3 80 00 00 00 00 00 00 00" \
  "a1 66 ca 3f c0 00 00"                        /* float32 */ \
  "a1 67 cb 3f f8 00 00 00 00 00 00"            /* float64 */ \
  "a1 68 d9 02 c3 a9"                           /* str8 */ \
  "a1 69 da 00 01 78"                           /* str16 */ \
  "a1 6a db 00 00 00 01 79"                     /* str32 */ \
  "a1 6b c4 01 00"                              /* bin8 */ \
  "a1 6c c5 00 02 01 02"                        /* bin16 */ \
  "a1 6d c6 00 00 00 00"                        /* bin32 */ \
  "a1 6e de 00 01 01 80"                        /* map16, int key */ \
  "a1 6f df 00 00 00 01 a0 81 a1 70 90"         /* map32, nested */

static void
check_every_prefix (GBytes *bytes)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  g_autoptr(GVariant) whole = NULL;

  whole = decode_ok (bytes);

  for (gsize n = 0; n < len; n++)
    {
      /* A copy of exactly n bytes, so that valgrind and ASan see any read
       * past the end. */
      g_autofree guint8 *prefix = g_memdup2 (data, n);

      assert_decode_fails (prefix, n, n == 0 ? "empty" : "truncated");
    }
}

static void
test_error_truncated (void)
{
  g_autoptr(GBytes) complex = hex_to_bytes (COMPLEX_HEX);
  g_autoptr(GVariant) nested = parse_variant (
      "{'a': <[<int64 1>, <'two'>, <@av []>, <{'x': <b'\\x01\\x02'>}>]>,"
      " 'b': <uint64 18446744073709551615>, 'c': <-2.5>, 'd': <@mv nothing>,"
      " 'e': <int64 -70000>, 'f': <'ünïcode'>}");
  g_autoptr(GBytes) encoded = encode_ok (nested);

  g_test_summary ("Every proper prefix of a value using every format, and of "
                  "an encoded nested a{sv}, is refused as truncated");

  check_every_prefix (complex);
  check_every_prefix (encoded);
}

static void
test_error_trailing (void)
{
  g_test_summary ("Bytes after the value are refused");

  assert_decode_hex_fails ("c3 00", "followed by 1 more bytes");
  assert_decode_hex_fails ("81 a2 6f 6b c3 c0", "followed by 1 more bytes");
  assert_decode_hex_fails ("90 90 90", "followed by 2 more bytes");
  assert_decode_hex_fails ("a1 61 ff", "ends at offset 2");
}

static void
test_error_deep (void)
{
  gsize depth = 10000;
  g_autofree guint8 *arrays = g_malloc (depth + 1);
  g_autofree guint8 *maps = g_malloc (2 * depth + 1);

  g_test_summary ("10,000 nested arrays or maps are refused without "
                  "recursion, as is any nesting past the limit");

  memset (arrays, 0x91, depth);
  arrays[depth] = 0xc0;
  assert_decode_fails (arrays, depth + 1, "deeper than 32 levels at offset 32");

  /* {"": {"": ...}} */
  for (gsize i = 0; i < depth; i++)
    {
      maps[2 * i] = 0x81;
      maps[2 * i + 1] = 0xa0;
    }
  maps[2 * depth] = 0xc0;
  assert_decode_fails (maps, 2 * depth + 1, "deeper than 32 levels");

  /* Truncated and too deep at once: depth wins, it comes first. */
  assert_decode_fails (arrays, depth, "deeper");
}

static void
test_error_utf8 (void)
{
  g_test_summary ("A str that is not UTF-8, or holds a NUL, is refused, "
                  "as a value and as a key");

  assert_decode_hex_fails ("a1 ff", "not valid UTF-8");
  assert_decode_hex_fails ("a2 c3 28", "not valid UTF-8");
  assert_decode_hex_fails ("a1 c3", "not valid UTF-8");            /* cut sequence */
  assert_decode_hex_fails ("a2 c0 80", "not valid UTF-8");         /* overlong NUL */
  assert_decode_hex_fails ("a3 ed a0 80", "not valid UTF-8");      /* surrogate */
  assert_decode_hex_fails ("a4 f4 90 80 80", "not valid UTF-8");   /* above U+10FFFF */
  assert_decode_hex_fails ("d9 01 fe", "not valid UTF-8");
  assert_decode_hex_fails ("a3 61 00 62", "NUL");
  assert_decode_hex_fails ("a1 00", "NUL");
  assert_decode_hex_fails ("81 a1 ff 01", "at offset 1 is not valid UTF-8");
  assert_decode_hex_fails ("92 01 a1 80", "at offset 2 is not valid UTF-8");
}

static void
test_error_ext (void)
{
  static const char * const cases[] = {
    "d4 01 00",                                 /* fixext 1 */
    "d5 01 00 00",                              /* fixext 2 */
    "d6 ff 00 00 00 00",                        /* fixext 4: a timestamp */
    "d7 01 00 00 00 00 00 00 00 00",            /* fixext 8 */
    "d8 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    "c7 00 05",                                 /* ext 8, empty */
    "c7 01 05 00",
    "c8 00 01 05 00",                           /* ext 16 */
    "c9 00 00 00 01 05 00",                     /* ext 32 */
    "91 d4 01 00",                              /* inside an array */
    "81 a1 61 d4 01 00",                        /* as a map value */
    "81 d4 01 00 01",                           /* as a map key */
  };

  g_test_summary ("Extension values, timestamps included, are refused "
                  "wherever they appear");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_decode_hex_fails (cases[i], "extension value");
}

static void
test_error_invalid (void)
{
  g_test_summary ("The never-used marker 0xc1 is refused");

  assert_decode_hex_fails ("c1", "0xc1 at offset 0");
  assert_decode_hex_fails ("92 01 c1", "0xc1 at offset 2");
  assert_decode_hex_fails ("81 c1 01", "0xc1 at offset 1");
}

static void
test_error_huge_counts (void)
{
  static const char * const cases[] = {
    "dd ff ff ff ff",
    "dd 0f ff ff ff 00 00 00",
    "df ff ff ff ff",
    "df 01 00 00 00 a0 c0",
    "dc ff ff",
    "de ff ff",
    "db ff ff ff ff",
    "c6 ff ff ff ff 00",
    "91 dd ff ff ff ff",
    "de 00 02 a0 c0 a0",                        /* needs 4 values, has 3 bytes */
  };

  g_test_summary ("Containers, strings and binaries that declare more than "
                  "the data holds are refused before anything is allocated");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_decode_hex_fails (cases[i], "truncated");
}

static void
test_error_empty (void)
{
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;

  g_test_summary ("No bytes at all is an error, not a nil");

  value = elbus_msgpack_decode (empty, &error);
  g_assert_null (value);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
  g_assert_nonnull (strstr (error->message, "empty"));
  g_clear_error (&error);

  assert_decode_fails (NULL, 0, "empty");
}

static void
test_decode_mutations (void)
{
  g_autoptr(GBytes) complex = hex_to_bytes (COMPLEX_HEX);
  gsize len;
  const guint8 *data = g_bytes_get_data (complex, &len);
  guint iterations = elbus_test_under_valgrind () ? 2000 : 20000;
  guint accepted = 0;

  g_test_summary ("Random mutations of a valid value never crash: each one "
                  "decodes to a value that survives encode and decode "
                  "unchanged, or is an ELBUS_ERROR_DATA");

  for (guint i = 0; i < iterations; i++)
    {
      g_autofree guint8 *mutated = g_memdup2 (data, len);
      gsize mutated_len = len;
      guint n_changes = g_test_rand_int_range (1, 4);
      g_autoptr(GVariant) value = NULL;
      g_autoptr(GError) error = NULL;

      for (guint j = 0; j < n_changes; j++)
        {
          gsize at = g_test_rand_int_range (0, (gint32) mutated_len);

          switch (g_test_rand_int_range (0, 3))
            {
            case 0:
              mutated[at] = (guint8) g_test_rand_int_range (0, 256);
              break;
            case 1:
              mutated[at] ^= (guint8) (1u << g_test_rand_int_range (0, 8));
              break;
            default:
              mutated_len = at + 1;
              break;
            }
        }

      value = elbus_msgpack_decode_data (mutated, mutated_len, &error);
      if (value != NULL)
        {
          g_autoptr(GBytes) again = NULL;
          g_autoptr(GVariant) value_again = NULL;

          g_assert_no_error (error);
          g_assert_false (g_variant_is_floating (value));
          assert_normal_form (value);
          again = encode_ok (value);
          value_again = decode_ok (again);
          assert_variant_equal (value_again, value);
          accepted++;
        }
      else
        {
          g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
        }
    }

  g_test_message ("%u of %u mutations decoded", accepted, iterations);
}


/* dd N, then N zeros: an array of N+1 values in all. */
static GBytes *
zeros_array (gsize n)
{
  guint8 *data = g_malloc0 (5 + n);

  data[0] = 0xdd;
  data[1] = n >> 24, data[2] = n >> 16, data[3] = n >> 8, data[4] = n;
  return g_bytes_new_take (data, 5 + n);
}

static void
assert_limited (GBytes     *bytes,
                guint       max_depth,
                gsize       max_values,
                gsize       max_size,
                const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = elbus_msgpack_decode_full (bytes, max_depth, max_values,
                                                         max_size, &error);

  g_assert_null (value);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
  if (strstr (error->message, needle) == NULL)
    g_assert_cmpstr (error->message, ==, needle);
}

static GVariant *
decode_full_ok (GBytes *bytes,
                guint   max_depth,
                gsize   max_values,
                gsize   max_size)
{
  g_autoptr(GError) error = NULL;
  GVariant *value = elbus_msgpack_decode_full (bytes, max_depth, max_values, max_size, &error);

  g_assert_no_error (error);
  g_assert_nonnull (value);
  assert_normal_form (value);
  return value;
}

static void
test_limits_values (void)
{
  g_autoptr(GBytes) array = zeros_array (1000);
  g_autoptr(GBytes) map = hex_to_bytes ("83 a1 61 01 a1 62 92 02 03 a1 63 c0");
  g_autoptr(GVariant) value = NULL;

  g_test_summary ("elbus_msgpack_decode_full() counts every value (the outermost, "
                  "elements, keys, values) and refuses more than max_values");

  value = decode_full_ok (array, 0, 1001, 0);
  g_assert_cmpuint (g_variant_n_children (value), ==, 1000);
  assert_limited (array, 0, 1000, 0, "more than 1000 values (the limit), at offset 0");

  /* 1 map + 3 keys + 3 values + 2 elements */
  g_clear_pointer (&value, g_variant_unref);
  value = decode_full_ok (map, 0, 9, 0);
  g_assert_cmpuint (g_variant_n_children (value), ==, 3);
  assert_limited (map, 0, 8, 0, "more than 8 values (the limit), at offset 6");
}

static void
test_limits_default_values (void)
{
  g_autoptr(GBytes) most = zeros_array (ELBUS_MSGPACK_DEFAULT_MAX_VALUES - 1);
  g_autoptr(GBytes) too_many = zeros_array (ELBUS_MSGPACK_DEFAULT_MAX_VALUES);
  g_autoptr(GBytes) huge = zeros_array (16 * 1024 * 1024);
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("By default a million values decode and one more does not; a 16 MiB "
                  "array of zeros is refused at its header");

  value = elbus_msgpack_decode (most, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_variant_n_children (value), ==, ELBUS_MSGPACK_DEFAULT_MAX_VALUES - 1);
  g_clear_pointer (&value, g_variant_unref);

  value = elbus_msgpack_decode (too_many, &error);
  g_assert_null (value);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
  g_assert_nonnull (strstr (error->message, "values (the limit)"));
  g_clear_error (&error);

  assert_limited (huge, 0, 0, 0, "values (the limit), at offset 0");
}

static void
test_limits_depth (void)
{
  g_autoptr(GBytes) four = hex_to_bytes ("91 81 a1 6b 91 90");
  g_autoptr(GVariant) value = NULL;

  g_test_summary ("max_depth counts arrays and maps, the outermost as the first level; "
                  "a limit above ELBUS_MSGPACK_MAX_DEPTH is that");

  value = decode_full_ok (four, 4, 0, 0);
  assert_limited (four, 3, 0, 0, "deeper than 3 levels at offset 5");
  g_clear_pointer (&value, g_variant_unref);

  {
    g_autoptr(GBytes) deep = nested_arrays_bytes (ELBUS_MSGPACK_MAX_DEPTH + 1);

    assert_limited (deep, ELBUS_MSGPACK_MAX_DEPTH + 10, 0, 0, "deeper than 32 levels");
  }
}

static void
test_limits_size (void)
{
  g_autoptr(GBytes) text = hex_to_bytes ("a9 65 6c 62 75 73 2d 67 6c 69");  /* 10 bytes */
  g_autoptr(GVariant) value = NULL;

  g_test_summary ("max_size refuses MessagePack longer than it, whatever it holds");

  value = decode_full_ok (text, 0, 0, 10);
  g_assert_cmpstr (g_variant_get_string (value, NULL), ==, "elbus-gli");
  assert_limited (text, 0, 0, 9, "is 10 bytes long, more than the limit of 9");
}

static void
test_params_from_pairs (void)
{
  static const char * const pairs[] = {
    "int=42", "neg=-7", "plus=+5", "yes=true", "no=false", "float=2.5", "exp=1e3",
    "big=99999999999999999999", "nan=nan", "inf=-inf", "hex=0x10", "blank= 5",
    "text=abc", "empty=", "eq=a=b", "False=False", NULL
  };
  static const char * const bad[][2] = { { "noequals", NULL }, { "=v", NULL } };
  g_autoptr(GVariant) params = NULL;
  g_autoptr(GVariant) expected = NULL;
  g_autoptr(GError) error = NULL;
  double d;

  g_test_summary ("KEY=VALUE pairs as the original tools type them: booleans, decimal "
                  "integers within 64 bits, other decimal numbers as floats, anything else "
                  "(hex, leading blanks) as a string; a pair without = or key is an error");

  params = elbus_rpc_params_from_pairs (pairs, &error);
  g_assert_no_error (error);
  expected = g_variant_ref_sink (g_variant_new_parsed (
    "{'int': <int64 42>, 'neg': <int64 -7>, 'plus': <int64 5>, 'yes': <true>, "
    "'no': <false>, 'float': <2.5>, 'exp': <1000.0>, 'big': <1e20>, 'hex': <'0x10'>, "
    "'blank': <' 5'>, 'text': <'abc'>, 'empty': <''>, 'eq': <'a=b'>, "
    "'False': <'False'>}"));
  for (guint i = 0; pairs[i] != NULL; i++)
    {
      g_autofree char *key = g_strndup (pairs[i], strchr (pairs[i], '=') - pairs[i]);
      g_autoptr(GVariant) got = g_variant_lookup_value (params, key, NULL);
      g_autoptr(GVariant) want = g_variant_lookup_value (expected, key, NULL);

      g_assert_nonnull (got);
      if (want == NULL)
        continue;               /* nan, inf: below */
      if (!g_variant_equal (got, want))
        g_error ("%s: got %s", pairs[i], g_variant_print (got, TRUE));
    }
  g_assert_true (g_variant_lookup (params, "nan", "d", &d) && isnan (d));
  g_assert_true (g_variant_lookup (params, "inf", "d", &d) && isinf (d) && d < 0);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_assert_null (elbus_rpc_params_from_pairs (bad[i], &error));
      g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
      g_clear_error (&error);
    }
}

int
main (int   argc,
      char *argv[])
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/msgpack/encode/golden", test_encode_golden);
  g_test_add_func ("/elbus/msgpack/encode/floating", test_encode_floating);
  g_test_add_func ("/elbus/msgpack/encode/deep-variants", test_encode_deep_variants);
  g_test_add_func ("/elbus/msgpack/decode/golden", test_decode_golden);
  g_test_add_func ("/elbus/msgpack/decode/lookup", test_decode_lookup);
  g_test_add_func ("/elbus/msgpack/decode/mutations", test_decode_mutations);
  g_test_add_func ("/elbus/msgpack/round-trip/types", test_round_trip_types);
  g_test_add_func ("/elbus/msgpack/round-trip/ints", test_round_trip_ints);
  g_test_add_func ("/elbus/msgpack/round-trip/lengths", test_round_trip_lengths);
  g_test_add_func ("/elbus/msgpack/round-trip/depth", test_round_trip_depth);
  g_test_add_func ("/elbus/msgpack/round-trip/depth-mixed-keys", test_round_trip_depth_mixed_keys);
  g_test_add_func ("/elbus/msgpack/error/truncated", test_error_truncated);
  g_test_add_func ("/elbus/msgpack/error/trailing", test_error_trailing);
  g_test_add_func ("/elbus/msgpack/error/deep", test_error_deep);
  g_test_add_func ("/elbus/msgpack/error/utf8", test_error_utf8);
  g_test_add_func ("/elbus/msgpack/error/ext", test_error_ext);
  g_test_add_func ("/elbus/msgpack/error/invalid", test_error_invalid);
  g_test_add_func ("/elbus/msgpack/error/huge-counts", test_error_huge_counts);
  g_test_add_func ("/elbus/msgpack/error/empty", test_error_empty);
  g_test_add_func ("/elbus/msgpack/limits/values", test_limits_values);
  g_test_add_func ("/elbus/msgpack/limits/default-values", test_limits_default_values);
  g_test_add_func ("/elbus/msgpack/limits/depth", test_limits_depth);
  g_test_add_func ("/elbus/msgpack/limits/size", test_limits_size);
  g_test_add_func ("/elbus/msgpack/params-from-pairs", test_params_from_pairs);

  return g_test_run ();
}

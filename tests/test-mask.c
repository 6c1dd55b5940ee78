/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the routing tries (elbus-mask.c, docs/protocol.md section 4):
 * table-driven cases for broadcast and subscription masks, the subscription
 * bookkeeping, and a randomized cross-check against the naive matchers
 * below, which follow the protocol text word for word. The single-mask
 * matchers (_elbus_name_mask_matches(), _elbus_topic_mask_matches()) are
 * checked against the trees on the same tables and on random input.
 */

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "elbus-mask-private.h"

/* Helpers */

static void
collect_cb (gpointer value,
            gpointer user_data)
{
  g_ptr_array_add (user_data, value);
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

static int
compare_pointers (gconstpointer a,
                  gconstpointer b)
{
  guintptr pa = GPOINTER_TO_SIZE (*(gconstpointer const *) a);
  guintptr pb = GPOINTER_TO_SIZE (*(gconstpointer const *) b);

  return pa < pb ? -1 : pa > pb ? 1 : 0;
}

/* "@label => <s1> <s2> ...", sorted, so that a failure shows what differs. */
static char *
join_sorted (const char *label,
             GPtrArray  *strings)
{
  GString *out = g_string_new (label);
  guint i;

  g_string_append (out, " =>");
  g_ptr_array_sort (strings, compare_strings);
  for (i = 0; i < strings->len; i++)
    g_string_append_printf (out, " <%s>", (const char *) g_ptr_array_index (strings, i));

  return g_string_free (out, FALSE);
}

static char *
join_sorted_strv (const char        *label,
                  const char *const *strv)
{
  g_autoptr(GPtrArray) strings = g_ptr_array_new ();

  for (; *strv != NULL; strv++)
    g_ptr_array_add (strings, (gpointer) *strv);

  return join_sorted (label, strings);
}

static char *
join_sorted_pointers (const char *label,
                      GPtrArray  *pointers)
{
  GString *out = g_string_new (label);
  guint i;

  g_string_append (out, " =>");
  g_ptr_array_sort (pointers, compare_pointers);
  for (i = 0; i < pointers->len; i++)
    g_string_append_printf (out, " %" G_GSIZE_FORMAT,
                            (gsize) GPOINTER_TO_SIZE (g_ptr_array_index (pointers, i)));

  return g_string_free (out, FALSE);
}

static char *
name_match_joined (ElbusNameTree *tree,
                   const char    *mask,
                   gsize          mask_len)
{
  g_autoptr(GPtrArray) got = g_ptr_array_new ();
  g_autofree char *label = g_strndup (mask, mask_len);

  _elbus_name_tree_match (tree, mask, mask_len, collect_cb, got);

  return join_sorted (label, got);
}

static char *
topic_match_joined (ElbusTopicTree *tree,
                    const char     *topic,
                    gsize           topic_len)
{
  g_autoptr(GPtrArray) got = g_ptr_array_new ();
  g_autofree char *label = g_strndup (topic, topic_len);

  _elbus_topic_tree_match (tree, topic, topic_len, collect_cb, got);

  return join_sorted (label, got);
}

static guint
name_match_count (ElbusNameTree *tree,
                  const char    *mask)
{
  g_autoptr(GPtrArray) got = g_ptr_array_new ();

  _elbus_name_tree_match (tree, mask, strlen (mask), collect_cb, got);

  return got->len;
}

static guint
topic_match_count (ElbusTopicTree *tree,
                   const char     *topic)
{
  g_autoptr(GPtrArray) got = g_ptr_array_new ();

  _elbus_topic_tree_match (tree, topic, strlen (topic), collect_cb, got);

  return got->len;
}

/* Splits like the protocol does: "" is one empty part. */
static char **
split_parts (const char *s,
             const char *sep)
{
  if (*s == '\0')
    {
      char **parts = g_new0 (char *, 2);

      parts[0] = g_strdup ("");
      return parts;
    }

  return g_strsplit (s, sep, -1);
}

/* The protocol text, word for word: @one matches exactly one part, @rest one
 * or more remaining parts and ends the mask, anything else itself. */
static gboolean
reference_match (const char *mask,
                 const char *subject,
                 const char *sep,
                 const char *one,
                 const char *rest)
{
  g_auto(GStrv) m = split_parts (mask, sep);
  g_auto(GStrv) s = split_parts (subject, sep);
  guint n_s = g_strv_length (s);
  guint i;

  for (i = 0; m[i] != NULL; i++)
    {
      if (strcmp (m[i], rest) == 0)
        return n_s > i;
      if (i >= n_s)
        return FALSE;
      if (strcmp (m[i], one) != 0 && strcmp (m[i], s[i]) != 0)
        return FALSE;
    }

  return i == n_s;
}

/* Table-driven cases */

typedef struct
{
  const char *pattern;       /* a broadcast mask or a published topic */
  const char *expected[20];  /* matching names or subscription masks */
} MatchCase;

typedef struct
{
  const char *const *universe;  /* names or subscription masks */
  const MatchCase   *cases;
  gsize              n_cases;
} MatchTable;

#define MATCH_TABLE(universe, cases) { universe, cases, G_N_ELEMENTS (cases) }

/* Each name's value is the name itself. */
static const char *const broadcast_names[] = {
  "a", "a.b", "a.b.c", "a.b.c.d", "a.x.c", "a.x.y.c", "a..c", "a.b%%1",
  "b", "b.a", "a*", "a*.b", "x.y", ".broker", "", "?", "*.z",
  NULL
};

#define ALL_A_STAR "a.b", "a.b.c", "a.b.c.d", "a.x.c", "a.x.y.c", "a..c", "a.b%%1"

static const MatchCase broadcast_question_cases[] = {
  { "a.?.c", { "a.b.c", "a.x.c", "a..c" } },
  { "?", { "a", "b", "a*", "", "?" } },
  { "?.b", { "a.b", "a*.b" } },
  { "a.b.?", { "a.b.c" } },
  { "?.?", { "a.b", "a.b%%1", "b.a", "a*.b", "x.y", ".broker", "*.z" } },
  { "a.?", { "a.b", "a.b%%1" } },
  { "?.?.?.?", { "a.b.c.d", "a.x.y.c" } },
  { "?.x.?", { "a.x.c" } },
  { "?.?.c", { "a.b.c", "a.x.c", "a..c" } },
  { "a.?.?.c", { "a.x.y.c" } },
  { "b.?.?", { NULL } },
  { "?.?.?.?.?", { NULL } },
};

static const MatchCase broadcast_star_cases[] = {
  { "a.*", { ALL_A_STAR } },
  { "a.b.*", { "a.b.c", "a.b.c.d" } },
  { "?.*", { ALL_A_STAR, "b.a", "a*.b", "x.y", ".broker", "*.z" } },
  { "b.*", { "b.a" } },
  { "a.b.c.d.*", { NULL } },
  { "a.?.*", { "a.b.c", "a.b.c.d", "a.x.c", "a.x.y.c", "a..c" } },
  { ".*", { ".broker" } },
  { "nope.*", { NULL } },
};

static const MatchCase broadcast_star_alone_cases[] = {
  { "*", { "a", ALL_A_STAR, "b", "b.a", "a*", "a*.b", "x.y", ".broker", "", "?", "*.z" } },
};

static const MatchCase broadcast_star_ends_mask_cases[] = {
  { "a.*.b", { ALL_A_STAR } },
  { "a.*.zzz.?", { ALL_A_STAR } },
  { "a.*.", { ALL_A_STAR } },
  { "*.z", { "a", ALL_A_STAR, "b", "b.a", "a*", "a*.b", "x.y", ".broker", "", "?", "*.z" } },
  { "*.*", { "a", ALL_A_STAR, "b", "b.a", "a*", "a*.b", "x.y", ".broker", "", "?", "*.z" } },
};

static const MatchCase broadcast_literal_star_cases[] = {
  { "a*", { "a*" } },
  { "a*.b", { "a*.b" } },
  { "*a", { NULL } },
  { "a.b*", { NULL } },
  { "a.*b", { NULL } },
  { "??", { NULL } },
  { "**", { NULL } },
  { "?*", { NULL } },
};

static const MatchCase broadcast_exact_cases[] = {
  { "a", { "a" } },
  { "a.b", { "a.b" } },
  { "a.b.c.d", { "a.b.c.d" } },
  { "x.y", { "x.y" } },
  { "nope", { NULL } },
  { "a.b.c.d.e", { NULL } },
  { "a.b.", { NULL } },
  { "x", { NULL } },
  { "a.x", { NULL } },
  { "A", { NULL } },
};

static const MatchCase broadcast_empty_part_cases[] = {
  { "", { "" } },
  { "a..c", { "a..c" } },
  { ".broker", { ".broker" } },
  { "?..?", { "a..c" } },
  { ".?", { ".broker" } },
  { "?.broker", { ".broker" } },
  { ".", { NULL } },
  { "..", { NULL } },
  { "a.", { NULL } },
};

static const MatchCase broadcast_secondary_cases[] = {
  { "a.b%%1", { "a.b%%1" } },
  { "a.b%%?", { NULL } },
  { "a.b%%", { NULL } },
  { "a.?", { "a.b", "a.b%%1" } },
};

static const MatchTable broadcast_question = MATCH_TABLE (broadcast_names, broadcast_question_cases);
static const MatchTable broadcast_star = MATCH_TABLE (broadcast_names, broadcast_star_cases);
static const MatchTable broadcast_star_alone = MATCH_TABLE (broadcast_names, broadcast_star_alone_cases);
static const MatchTable broadcast_star_ends_mask = MATCH_TABLE (broadcast_names, broadcast_star_ends_mask_cases);
static const MatchTable broadcast_literal_star = MATCH_TABLE (broadcast_names, broadcast_literal_star_cases);
static const MatchTable broadcast_exact = MATCH_TABLE (broadcast_names, broadcast_exact_cases);
static const MatchTable broadcast_empty_part = MATCH_TABLE (broadcast_names, broadcast_empty_part_cases);
static const MatchTable broadcast_secondary = MATCH_TABLE (broadcast_names, broadcast_secondary_cases);

/* Each subscription mask has its own subscriber: the mask itself. */
static const char *const topic_masks[] = {
  "#", "a/#", "a/#/b", "a/+", "a/+/c", "+/b", "+/+", "a/b", "a/b/c", "+",
  "", "a//c", "a/+/#", "/", "+/#", "b/#", "+/+/+",
  NULL
};

static const MatchCase topic_hash_alone_cases[] = {
  { "x/y/z/w", { "#", "+/#" } },
  { "b", { "#", "+" } },
  { "#", { "#", "+" } },
  { "zzz", { "#", "+" } },
};

static const MatchCase topic_hash_parent_cases[] = {
  { "a", { "#", "+" } },
  { "a/b", { "#", "a/#", "a/#/b", "a/+", "+/b", "+/+", "a/b", "+/#" } },
  { "a/b/c/d", { "#", "a/#", "a/#/b", "a/+/#", "+/#" } },
  { "a/", { "#", "a/#", "a/#/b", "a/+", "+/+", "+/#" } },
  { "b/b", { "#", "+/b", "+/+", "+/#", "b/#" } },
};

static const MatchCase topic_plus_middle_cases[] = {
  { "a/x/c", { "#", "a/#", "a/#/b", "a/+/c", "a/+/#", "+/#", "+/+/+" } },
  { "a/b/c", { "#", "a/#", "a/#/b", "a/+/c", "a/b/c", "a/+/#", "+/#", "+/+/+" } },
  { "a/x/y/c", { "#", "a/#", "a/#/b", "a/+/#", "+/#" } },
  { "c/b", { "#", "+/b", "+/+", "+/#" } },
};

static const MatchCase topic_plus_empty_cases[] = {
  { "a/", { "#", "a/#", "a/#/b", "a/+", "+/+", "+/#" } },
  { "/", { "#", "+/+", "/", "+/#" } },
  { "", { "#", "+", "" } },
  { "a//c", { "#", "a/#", "a/#/b", "a/+/c", "a//c", "a/+/#", "+/#", "+/+/+" } },
  { "//", { "#", "+/#", "+/+/+" } },
};

static const MatchCase topic_empty_cases[] = {
  { "", { "#", "+", "" } },
  { "/", { "#", "+/+", "/", "+/#" } },
};

static const MatchCase topic_literal_cases[] = {
  { "+", { "#", "+" } },
  { "a/+", { "#", "a/#", "a/#/b", "a/+", "+/+", "+/#" } },
  { "a/#", { "#", "a/#", "a/#/b", "a/+", "+/+", "+/#" } },
  { "+/+/+", { "#", "+/#", "+/+/+" } },
};

static const MatchCase topic_exact_cases[] = {
  { "a/b", { "#", "a/#", "a/#/b", "a/+", "+/b", "+/+", "a/b", "+/#" } },
  { "a/b/c", { "#", "a/#", "a/#/b", "a/+/c", "a/b/c", "a/+/#", "+/#", "+/+/+" } },
  { "A/B", { "#", "+/+", "+/#" } },
};

static const MatchTable topic_hash_alone = MATCH_TABLE (topic_masks, topic_hash_alone_cases);
static const MatchTable topic_hash_parent = MATCH_TABLE (topic_masks, topic_hash_parent_cases);
static const MatchTable topic_plus_middle = MATCH_TABLE (topic_masks, topic_plus_middle_cases);
static const MatchTable topic_plus_empty = MATCH_TABLE (topic_masks, topic_plus_empty_cases);
static const MatchTable topic_empty = MATCH_TABLE (topic_masks, topic_empty_cases);
static const MatchTable topic_literal = MATCH_TABLE (topic_masks, topic_literal_cases);
static const MatchTable topic_exact = MATCH_TABLE (topic_masks, topic_exact_cases);

typedef char *(*MatchJoinedFunc) (gpointer    tree,
                                  const char *pattern,
                                  gsize       len);

static char *
name_match_joined_func (gpointer    tree,
                        const char *pattern,
                        gsize       len)
{
  return name_match_joined (tree, pattern, len);
}

static char *
topic_match_joined_func (gpointer    tree,
                         const char *pattern,
                         gsize       len)
{
  return topic_match_joined (tree, pattern, len);
}

/* Runs @match on @pattern three ways: NUL-terminated; from an exact-size
 * heap copy (so that valgrind and ASan see any read past the end); and
 * followed by @junk that would change the result if it were read. */
static void
check_case (gpointer         tree,
            MatchJoinedFunc  match,
            const MatchCase *c,
            const char      *junk)
{
  gsize len = strlen (c->pattern);
  g_autofree char *expected = join_sorted_strv (c->pattern, c->expected);
  g_autofree char *got = NULL;
  g_autofree char *exact = g_malloc (MAX (len, 1));
  g_autofree char *longer = g_strconcat (c->pattern, junk, NULL);

  got = match (tree, c->pattern, len);
  g_assert_cmpstr (got, ==, expected);
  g_clear_pointer (&got, g_free);

  memcpy (exact, c->pattern, len);
  got = match (tree, exact, len);
  g_assert_cmpstr (got, ==, expected);
  g_clear_pointer (&got, g_free);

  got = match (tree, longer, len);
  g_assert_cmpstr (got, ==, expected);
}

typedef gboolean (*SingleMatchFunc) (const char *mask,
                                     gsize       mask_len,
                                     const char *subject,
                                     gsize       subject_len);

/* Runs @func on @mask and @subject NUL-terminated; on exact-size heap
 * copies of both (so that valgrind and ASan see any read past the end);
 * and on copies followed by @junk that would change the result if it were
 * read. Each must say @expected. */
static void
check_single (SingleMatchFunc  func,
              const char      *mask,
              const char      *subject,
              const char      *junk,
              gboolean         expected)
{
  gsize mask_len = strlen (mask);
  gsize subject_len = strlen (subject);
  g_autofree char *mask_exact = g_malloc (MAX (mask_len, 1));
  g_autofree char *subject_exact = g_malloc (MAX (subject_len, 1));
  g_autofree char *mask_longer = g_strconcat (mask, junk, NULL);
  g_autofree char *subject_longer = g_strconcat (subject, junk, NULL);

  memcpy (mask_exact, mask, mask_len);
  memcpy (subject_exact, subject, subject_len);

  if (func (mask, mask_len, subject, subject_len) != expected)
    g_error ("mask <%s> against <%s>: expected %s", mask, subject,
             expected ? "a match" : "no match");
  g_assert_cmpint (func (mask_exact, mask_len, subject_exact, subject_len), ==, expected);
  g_assert_cmpint (func (mask_longer, mask_len, subject_longer, subject_len), ==, expected);
  g_assert_cmpint (func (mask_exact, mask_len, subject_longer, subject_len), ==, expected);
  g_assert_cmpint (func (mask_longer, mask_len, subject_exact, subject_len), ==, expected);
}

static gboolean
strv_has (const char *const *strv,
          const char        *s)
{
  for (; *strv != NULL; strv++)
    {
      if (strcmp (*strv, s) == 0)
        return TRUE;
    }

  return FALSE;
}

static void
test_broadcast_table (gconstpointer data)
{
  const MatchTable *table = data;
  ElbusNameTree *tree = _elbus_name_tree_new ();
  gsize i;

  g_test_summary ("Broadcast masks from a table, each also read out of an "
                  "exact-size buffer and out of a longer one; the single-mask "
                  "matcher gives the same answers name by name.");

  for (i = 0; table->universe[i] != NULL; i++)
    _elbus_name_tree_insert (tree, table->universe[i], strlen (table->universe[i]),
                             (gpointer) table->universe[i]);

  for (i = 0; i < table->n_cases; i++)
    {
      const MatchCase *c = &table->cases[i];
      gboolean wild = _elbus_broadcast_mask_has_wildcards (c->pattern, strlen (c->pattern));

      gsize j;

      check_case (tree, name_match_joined_func, c, ".*.?");

      for (j = 0; table->universe[j] != NULL; j++)
        check_single (_elbus_name_mask_matches, c->pattern, table->universe[j], ".*.?",
                      strv_has (c->expected, table->universe[j]));

      /* Without wildcards a mask reaches the name equal to it or nothing:
       * the broker's hash-lookup fast path. */
      if (!wild)
        {
          g_assert_true (c->expected[0] == NULL ||
                         (strcmp (c->expected[0], c->pattern) == 0 && c->expected[1] == NULL));
        }
    }

  _elbus_name_tree_free (tree);
}

static void
test_topic_table (gconstpointer data)
{
  const MatchTable *table = data;
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  gsize i;

  g_test_summary ("Publications from a table, one subscriber per mask, each "
                  "topic also read out of an exact-size buffer and a longer one; "
                  "the single-mask matcher gives the same answers mask by mask.");

  for (i = 0; table->universe[i] != NULL; i++)
    {
      const char *mask = table->universe[i];

      g_assert_true (_elbus_topic_tree_subscribe (tree, mask, strlen (mask), (gpointer) mask));
    }

  for (i = 0; i < table->n_cases; i++)
    {
      const MatchCase *c = &table->cases[i];
      gsize j;

      check_case (tree, topic_match_joined_func, c, "/x/y");

      for (j = 0; table->universe[j] != NULL; j++)
        check_single (_elbus_topic_mask_matches, table->universe[j], c->pattern, "/x/y",
                      strv_has (c->expected, table->universe[j]));
    }

  for (i = 0; table->universe[i] != NULL; i++)
    g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, (gpointer) table->universe[i]), ==, 1);

  _elbus_topic_tree_free (tree);
}

/* Broadcast: single cases */

static void
test_broadcast_has_wildcards (void)
{
  static const struct
  {
    const char *mask;
    gboolean    wild;
  } cases[] = {
    { "*", TRUE },
    { "?", TRUE },
    { "a.*", TRUE },
    { "a.?.c", TRUE },
    { "?.a", TRUE },
    { "a.b.?", TRUE },
    { "a.*.b", TRUE },
    { "..*", TRUE },
    { "", FALSE },
    { "a", FALSE },
    { "a.b.c", FALSE },
    { "a*", FALSE },
    { "*a", FALSE },
    { "a.b*.c", FALSE },
    { "??", FALSE },
    { "**", FALSE },
    { "a.??.c", FALSE },
    { "a.b%%1", FALSE },
    { "...", FALSE },
    { "/#/+", FALSE },
  };
  gsize i;

  g_test_summary ("Only a part that is exactly ? or * is a wildcard.");

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gsize len = strlen (cases[i].mask);
      g_autofree char *longer = g_strconcat (cases[i].mask, ".*", NULL);

      g_test_message ("mask '%s'", cases[i].mask);
      g_assert_cmpint (_elbus_broadcast_mask_has_wildcards (cases[i].mask, len), ==, cases[i].wild);
      g_assert_cmpint (_elbus_broadcast_mask_has_wildcards (longer, len), ==, cases[i].wild);
    }

  g_assert_false (_elbus_broadcast_mask_has_wildcards (NULL, 0));
  g_assert_false (_elbus_broadcast_mask_has_wildcards ("*", 0));
}

static void
test_broadcast_not_nul_terminated (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  const char *buffer = "a.bcd.e";
  g_autofree char *got = NULL;

  g_test_summary ("Names and masks are (pointer, length), not NUL-terminated strings.");

  /* Names, too, are (pointer, length): "a.bc" and "a". */
  _elbus_name_tree_insert (tree, buffer, 4, GUINT_TO_POINTER (1));
  _elbus_name_tree_insert (tree, buffer, 1, GUINT_TO_POINTER (2));

  g_assert_cmpuint (name_match_count (tree, "a.bc"), ==, 1);
  g_assert_cmpuint (name_match_count (tree, "a.bcd"), ==, 0);
  g_assert_cmpuint (name_match_count (tree, "a"), ==, 1);
  g_assert_cmpuint (name_match_count (tree, "*"), ==, 2);

  /* "a.*" out of "a.*.b", "a.?" out of "a.?.c" */
  {
    g_autoptr(GPtrArray) values = g_ptr_array_new ();

    _elbus_name_tree_match (tree, "a.*.b", 3, collect_cb, values);
    got = join_sorted_pointers ("a.*", values);
    g_assert_cmpstr (got, ==, "a.* => 1");
    g_clear_pointer (&got, g_free);

    g_ptr_array_set_size (values, 0);
    _elbus_name_tree_match (tree, "a.?.c", 3, collect_cb, values);
    got = join_sorted_pointers ("a.?", values);
    g_assert_cmpstr (got, ==, "a.? => 1");
    g_clear_pointer (&got, g_free);
  }

  /* A mask cut right after a separator has an empty last part. */
  g_assert_cmpuint (name_match_count (tree, "a."), ==, 0);
  _elbus_name_tree_insert (tree, "a.x", 2, GUINT_TO_POINTER (3));
  g_assert_cmpuint (name_match_count (tree, "a."), ==, 1);
  g_assert_cmpuint (name_match_count (tree, "a.?"), ==, 2);

  /* Empty names and masks; NULL with length 0 is the empty string. */
  g_assert_cmpuint (name_match_count (tree, ""), ==, 0);
  _elbus_name_tree_insert (tree, "xyz", 0, GUINT_TO_POINTER (4));
  g_assert_cmpuint (name_match_count (tree, ""), ==, 1);
  g_assert_true (_elbus_name_tree_remove (tree, NULL, 0));
  g_assert_false (_elbus_name_tree_remove (tree, "zz", 0));

  g_assert_true (_elbus_name_tree_remove (tree, buffer, 4));
  g_assert_false (_elbus_name_tree_remove (tree, buffer, 4));
  g_assert_true (_elbus_name_tree_remove (tree, "a.", 2));
  g_assert_true (_elbus_name_tree_remove (tree, buffer, 1));
  g_assert_cmpuint (name_match_count (tree, "*"), ==, 0);

  _elbus_name_tree_free (tree);
}

static void
test_broadcast_replace (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  g_autoptr(GPtrArray) got = g_ptr_array_new ();

  g_test_summary ("Inserting a name again replaces its value.");

  _elbus_name_tree_insert (tree, "a.b", 3, GUINT_TO_POINTER (1));
  _elbus_name_tree_insert (tree, "a.b", 3, GUINT_TO_POINTER (2));

  _elbus_name_tree_match (tree, "*", 1, collect_cb, got);
  g_assert_cmpuint (got->len, ==, 1);
  g_assert_cmpuint (GPOINTER_TO_UINT (got->pdata[0]), ==, 2);

  /* NULL is a value like any other. */
  g_ptr_array_set_size (got, 0);
  _elbus_name_tree_insert (tree, "a.b", 3, NULL);
  _elbus_name_tree_match (tree, "a.b", 3, collect_cb, got);
  g_assert_cmpuint (got->len, ==, 1);
  g_assert_null (got->pdata[0]);

  g_assert_true (_elbus_name_tree_remove (tree, "a.b", 3));
  g_assert_false (_elbus_name_tree_remove (tree, "a.b", 3));

  _elbus_name_tree_free (tree);
}

static void
test_broadcast_remove (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  const char *names[] = { "a", "a.b", "a.b.c", "a.x.y", "b" };
  gsize i;

  g_test_summary ("Removing names, inner ones and prefixes included.");

  for (i = 0; i < G_N_ELEMENTS (names); i++)
    _elbus_name_tree_insert (tree, names[i], strlen (names[i]), (gpointer) names[i]);

  /* A prefix of a name is not a name. */
  g_assert_false (_elbus_name_tree_remove (tree, "a.x", 3));
  g_assert_false (_elbus_name_tree_remove (tree, "a.x.y.z", 7));
  g_assert_false (_elbus_name_tree_remove (tree, "c", 1));
  g_assert_cmpuint (name_match_count (tree, "*"), ==, 5);

  /* Removing an inner name keeps the names below it, and the other way. */
  g_assert_true (_elbus_name_tree_remove (tree, "a.b", 3));
  g_assert_cmpuint (name_match_count (tree, "a.b"), ==, 0);
  g_assert_cmpuint (name_match_count (tree, "a.b.c"), ==, 1);
  g_assert_cmpuint (name_match_count (tree, "a.*"), ==, 2);
  g_assert_true (_elbus_name_tree_remove (tree, "a.b.c", 5));
  g_assert_cmpuint (name_match_count (tree, "a.*"), ==, 1);
  g_assert_cmpuint (name_match_count (tree, "a"), ==, 1);

  /* Names can come back after being removed. */
  _elbus_name_tree_insert (tree, "a.b.c", 5, (gpointer) "a.b.c");
  g_assert_cmpuint (name_match_count (tree, "a.?.?"), ==, 2);

  g_assert_true (_elbus_name_tree_remove (tree, "a.x.y", 5));
  g_assert_true (_elbus_name_tree_remove (tree, "a", 1));
  g_assert_cmpuint (name_match_count (tree, "*"), ==, 2);

  _elbus_name_tree_free (tree);

  /* Freeing NULL is fine. */
  _elbus_name_tree_free (NULL);
}

static void
test_broadcast_long_parts (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  g_autofree char *p300 = g_strnfill (300, 'p');
  g_autofree char *p5000 = g_strnfill (5000, 'q');
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  guint i;

  g_test_summary ("Parts of 300 and 5000 bytes.");

  /* Siblings with long parts that differ only at the end, enough of them
   * for the children to be hashed. */
  for (i = 0; i < 40; i++)
    g_ptr_array_add (names, g_strdup_printf ("grp.%s%u.%s", p300, i, p5000));
  g_ptr_array_add (names, g_strdup_printf ("%s.%s", p5000, p300));

  for (i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];

      _elbus_name_tree_insert (tree, name, strlen (name), GUINT_TO_POINTER (i + 1));
    }

  for (i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      g_autoptr(GPtrArray) got = g_ptr_array_new ();

      _elbus_name_tree_match (tree, name, strlen (name), collect_cb, got);
      g_assert_cmpuint (got->len, ==, 1);
      g_assert_cmpuint (GPOINTER_TO_UINT (got->pdata[0]), ==, i + 1);
    }

  {
    g_autofree char *mask = g_strdup_printf ("grp.?.%s", p5000);
    g_autofree char *mask2 = g_strdup_printf ("grp.%s7.*", p300);
    g_autofree char *mask3 = g_strdup_printf ("%s.?", p5000);
    g_autofree char *miss = g_strdup_printf ("grp.%s7.%s", p300, p300);

    g_assert_cmpuint (name_match_count (tree, mask), ==, 40);
    g_assert_cmpuint (name_match_count (tree, mask2), ==, 1);
    g_assert_cmpuint (name_match_count (tree, mask3), ==, 1);
    g_assert_cmpuint (name_match_count (tree, miss), ==, 0);
  }

  for (i = 0; i < names->len; i += 2)
    {
      const char *name = names->pdata[i];

      g_assert_true (_elbus_name_tree_remove (tree, name, strlen (name)));
    }
  g_assert_cmpuint (name_match_count (tree, "*"), ==, names->len / 2);

  _elbus_name_tree_free (tree);
}

static void
test_broadcast_many_children (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  guint round, i;

  g_test_summary ("A node whose children grow and shrink past the hashing threshold.");

  /* Grow and shrink one node's children across the point where they get
   * hashed, several times, checking every name each time. */
  for (round = 0; round < 3; round++)
    {
      for (i = 0; i < 100; i++)
        {
          g_autofree char *name = g_strdup_printf ("n.%u", i);

          _elbus_name_tree_insert (tree, name, strlen (name), GUINT_TO_POINTER (i + 1));
        }
      g_assert_cmpuint (name_match_count (tree, "n.?"), ==, 100);

      for (i = 0; i < 100; i++)
        {
          g_autofree char *name = g_strdup_printf ("n.%u", (i * 37) % 100);
          guint j;

          g_assert_true (_elbus_name_tree_remove (tree, name, strlen (name)));
          g_assert_false (_elbus_name_tree_remove (tree, name, strlen (name)));
          g_assert_cmpuint (name_match_count (tree, "n.*"), ==, 99 - i);

          for (j = i + 1; j < 100; j++)
            {
              g_autofree char *other = g_strdup_printf ("n.%u", (j * 37) % 100);

              g_assert_cmpuint (name_match_count (tree, other), ==, 1);
            }
        }
    }

  _elbus_name_tree_free (tree);
}

static void
test_broadcast_deep (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  const guint depth = 20000;
  GString *name = g_string_new ("x");
  GString *mask = g_string_new ("?");
  guint i;

  g_test_summary ("A name 20000 parts deep: no recursion.");

  /* A name 20000 parts deep: matching and freeing must not recurse. */
  for (i = 1; i < depth; i++)
    {
      g_string_append (name, ".x");
      g_string_append (mask, ".?");
    }
  _elbus_name_tree_insert (tree, name->str, name->len, GUINT_TO_POINTER (1));

  g_assert_cmpuint (name_match_count (tree, name->str), ==, 1);
  g_assert_cmpuint (name_match_count (tree, mask->str), ==, 1);
  g_assert_cmpuint (name_match_count (tree, "x.*"), ==, 1);
  g_assert_cmpuint (name_match_count (tree, "*"), ==, 1);
  g_string_append (mask, ".?");
  g_assert_cmpuint (name_match_count (tree, mask->str), ==, 0);

  _elbus_name_tree_free (tree);
  g_string_free (name, TRUE);
  g_string_free (mask, TRUE);
}

static void
test_broadcast_wide_question (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  const guint depth = 200;
  GString *name = g_string_new (NULL);
  GString *mask = g_string_new ("?");
  guint i;

  g_test_summary ("More pending ? branches than the on-stack work buffer holds.");

  /* x.y, x.x.y, ... then x.x.x...x: every node on the x chain has two
   * children, so `?.?.?...` keeps one pending branch per level, more than
   * fit in the on-stack work buffer. */
  for (i = 0; i < depth; i++)
    {
      g_autofree char *with_y = g_strconcat (name->str, "y", NULL);

      _elbus_name_tree_insert (tree, with_y, strlen (with_y), GUINT_TO_POINTER (i + 1));
      g_string_append (name, "x.");
    }
  g_string_truncate (name, name->len - 1);
  _elbus_name_tree_insert (tree, name->str, name->len, GUINT_TO_POINTER (depth + 1));

  for (i = 1; i < depth; i++)
    g_string_append (mask, ".?");

  /* x^199.y and x^200 */
  g_assert_cmpuint (name_match_count (tree, mask->str), ==, 2);
  g_assert_cmpuint (name_match_count (tree, "?.*"), ==, depth);
  g_assert_cmpuint (name_match_count (tree, "*"), ==, depth + 1);

  _elbus_name_tree_free (tree);
  g_string_free (name, TRUE);
  g_string_free (mask, TRUE);
}

static const char *const random_parts[] = {
  "", "a", "b", "c", "ab", "ba", "x", "y", "z", "q", "*", "?", "a*", "%%1", "\xc3\xa9",
};

static char *
random_path (const char        *sep,
             const char *const *parts,
             gsize              n_parts,
             const char        *extra_a,
             const char        *extra_b,
             guint              max_depth)
{
  GString *out = g_string_new (NULL);
  guint depth = g_test_rand_int_range (1, max_depth + 1);
  guint i;

  for (i = 0; i < depth; i++)
    {
      gint32 pick = g_test_rand_int_range (0, n_parts + 4);

      if (i > 0)
        g_string_append (out, sep);
      if (pick < (gint32) n_parts)
        g_string_append (out, parts[pick]);
      else
        g_string_append (out, pick % 2 ? extra_a : extra_b);
    }

  return g_string_free (out, FALSE);
}

static void
test_broadcast_random (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  /* name -> value, as the tree should hold them */
  g_autoptr(GHashTable) reference = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint serial = 0;
  guint n_ops = g_test_slow () ? 100000 : 6000;
  guint op;

  g_test_summary ("Random names and masks against a naive matcher.");

  for (op = 0; op < n_ops; op++)
    {
      gint32 what = g_test_rand_int_range (0, 10);

      if (what < 4)
        {
          char *name = random_path (".", random_parts, G_N_ELEMENTS (random_parts), "a", "b", 3);
          gpointer value = GUINT_TO_POINTER (++serial);

          _elbus_name_tree_insert (tree, name, strlen (name), value);
          g_hash_table_replace (reference, name, value);
        }
      else if (what < 6)
        {
          g_autofree char *name = random_path (".", random_parts, G_N_ELEMENTS (random_parts), "a", "b", 3);
          gboolean present = g_hash_table_remove (reference, name);

          g_assert_cmpint (_elbus_name_tree_remove (tree, name, strlen (name)), ==, present);
        }
      else
        {
          g_autofree char *mask = random_path (".", random_parts, G_N_ELEMENTS (random_parts), "?", "*", 4);
          g_autoptr(GPtrArray) got = g_ptr_array_new ();
          g_autoptr(GPtrArray) expected = g_ptr_array_new ();
          g_autofree char *got_s = NULL;
          g_autofree char *expected_s = NULL;
          GHashTableIter iter;
          gpointer name, value;

          _elbus_name_tree_match (tree, mask, strlen (mask), collect_cb, got);

          g_hash_table_iter_init (&iter, reference);
          while (g_hash_table_iter_next (&iter, &name, &value))
            {
              if (reference_match (mask, name, ".", "?", "*"))
                g_ptr_array_add (expected, value);
            }

          got_s = join_sorted_pointers (mask, got);
          expected_s = join_sorted_pointers (mask, expected);
          g_assert_cmpstr (got_s, ==, expected_s);

          if (!_elbus_broadcast_mask_has_wildcards (mask, strlen (mask)))
            g_assert_cmpuint (got->len, ==, g_hash_table_contains (reference, mask) ? 1 : 0);
        }
    }

  g_test_message ("%u names at the end", g_hash_table_size (reference));

  _elbus_name_tree_free (tree);
}

/* Random names in a tree, each its own value, and random masks: for each
 * name, the single-mask matcher says what the tree says. */
static void
test_broadcast_single_random (void)
{
  ElbusNameTree *tree = _elbus_name_tree_new ();
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  guint n_masks = g_test_slow () ? 20000 : 1500;
  guint i;

  g_test_summary ("_elbus_name_mask_matches() against ElbusNameTree on random "
                  "names and masks.");

  for (i = 0; i < 80; i++)
    {
      char *name = random_path (".", random_parts, G_N_ELEMENTS (random_parts), "a", "b", 3);

      if (g_ptr_array_find_with_equal_func (names, name, g_str_equal, NULL))
        {
          g_free (name);
          continue;
        }
      _elbus_name_tree_insert (tree, name, strlen (name), name);
      g_ptr_array_add (names, name);
    }

  for (i = 0; i < n_masks; i++)
    {
      g_autofree char *mask = random_path (".", random_parts, G_N_ELEMENTS (random_parts), "?", "*", 4);
      g_autoptr(GPtrArray) got = g_ptr_array_new ();
      guint j;

      _elbus_name_tree_match (tree, mask, strlen (mask), collect_cb, got);

      for (j = 0; j < names->len; j++)
        {
          const char *name = g_ptr_array_index (names, j);
          gboolean in_tree = g_ptr_array_find (got, name, NULL);

          g_assert_cmpint (reference_match (mask, name, ".", "?", "*"), ==, in_tree);
          check_single (_elbus_name_mask_matches, mask, name, ".*.?", in_tree);
        }
    }

  g_test_message ("%u names", names->len);

  _elbus_name_tree_free (tree);
}

/* Topics: single cases */

static void
test_topic_not_nul_terminated (void)
{
  static char sub_ab[] = "a/b";
  static char sub_ahash[] = "a/#";
  static char sub_empty[] = "empty";
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  const char *buffer = "a/b/c/d";
  g_autofree char *got = NULL;

  g_test_summary ("Masks and topics are (pointer, length), not NUL-terminated strings.");

  /* Subscribe to "a/b" and "a/#" out of longer buffers. */
  g_assert_true (_elbus_topic_tree_subscribe (tree, buffer, 3, sub_ab));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/#/x", 3, sub_ahash));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "a/b", 3, sub_ab));

  got = topic_match_joined (tree, buffer, 3);
  g_assert_cmpstr (got, ==, "a/b => <a/#> <a/b>");
  g_clear_pointer (&got, g_free);

  got = topic_match_joined (tree, buffer, 5);
  g_assert_cmpstr (got, ==, "a/b/c => <a/#>");
  g_clear_pointer (&got, g_free);

  /* Cut right after a separator: an empty last level. */
  got = topic_match_joined (tree, buffer, 2);
  g_assert_cmpstr (got, ==, "a/ => <a/#>");
  g_clear_pointer (&got, g_free);

  got = topic_match_joined (tree, buffer, 1);
  g_assert_cmpstr (got, ==, "a =>");
  g_clear_pointer (&got, g_free);

  /* NULL with length 0 is the empty topic. */
  g_assert_true (_elbus_topic_tree_subscribe (tree, NULL, 0, sub_empty));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "x", 0, sub_empty));
  got = topic_match_joined (tree, "zz", 0);
  g_assert_cmpstr (got, ==, " => <empty>");
  g_clear_pointer (&got, g_free);

  g_assert_true (_elbus_topic_tree_unsubscribe (tree, buffer, 3, sub_ab));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, buffer, 3, sub_ab));
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a/#/b", 3, sub_ahash));
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, NULL, 0, sub_empty));

  _elbus_topic_tree_free (tree);
}

static void
test_topic_duplicate (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  gpointer s1 = GUINT_TO_POINTER (1);
  gpointer s2 = GUINT_TO_POINTER (2);

  g_test_summary ("A (mask, subscriber) pair is stored once, masks compared after normalization.");

  /* Each (mask, subscriber) pair is stored once. */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/b", 3, s1));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "a/b", 3, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/b", 3, s2));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 1);
  g_assert_cmpuint (topic_match_count (tree, "a/b"), ==, 2);

  /* The same mask once normalized: anything after `#` is ignored. */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/#", 3, s1));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "a/#/b", 5, s1));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "a/#/#", 5, s1));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 2);

  /* Empty mask, `#` alone, `+` alone */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "", 0, s1));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "", 0, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "#", 1, s1));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "#/", 2, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "+", 1, s1));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "+", 1, s1));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 5);

  g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, s1), ==, 5);
  g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, s2), ==, 1);

  _elbus_topic_tree_free (tree);
}

static void
test_topic_several_masks (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  gpointer s1 = GUINT_TO_POINTER (1);
  gpointer s2 = GUINT_TO_POINTER (2);
  g_autoptr(GPtrArray) got = g_ptr_array_new ();
  g_autofree char *joined = NULL;

  g_test_summary ("A subscriber is reported once per matching mask.");

  /* A subscriber is reported once per matching mask; de-duplicating is the
   * broker's job (docs/protocol.md: it receives the publication once). */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/b/c", 5, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/+/c", 5, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/#", 3, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "#", 1, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "+/+/+", 5, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/b/d", 5, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/b/c", 5, s2));

  _elbus_topic_tree_match (tree, "a/b/c", 5, collect_cb, got);
  joined = join_sorted_pointers ("a/b/c", got);
  g_assert_cmpstr (joined, ==, "a/b/c => 1 1 1 1 1 2");

  g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, s1), ==, 6);
  g_assert_cmpuint (topic_match_count (tree, "a/b/c"), ==, 1);
  g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, s2), ==, 1);
  g_assert_cmpuint (topic_match_count (tree, "a/b/c"), ==, 0);

  _elbus_topic_tree_free (tree);
}

static void
test_topic_unsubscribe (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  gpointer s1 = GUINT_TO_POINTER (1);
  gpointer s2 = GUINT_TO_POINTER (2);

  g_test_summary ("Unsubscribing one mask of one subscriber.");

  /* Never subscribed */
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "a", 1, s1));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "#", 1, s1));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "", 0, s1));

  /* `a/#/b` and `a/#` are the same subscription, both ways. */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/#/b", 5, s1));
  g_assert_cmpuint (topic_match_count (tree, "a/x"), ==, 1);
  g_assert_cmpuint (topic_match_count (tree, "a/x/b"), ==, 1);
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a/#", 3, s1));
  g_assert_cmpuint (topic_match_count (tree, "a/x"), ==, 0);
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/#", 3, s1));
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a/#/zzz/+", 9, s1));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 0);

  /* Only the given subscriber, and only the given mask */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/+", 3, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/+", 3, s2));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/b", 3, s1));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "a/b", 3, s2));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "a/c", 3, s1));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "a", 1, s1));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "a/b/c", 5, s1));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "a/#", 3, s1));
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a/+", 3, s1));
  g_assert_false (_elbus_topic_tree_unsubscribe (tree, "a/+", 3, s1));
  g_assert_cmpuint (topic_match_count (tree, "a/b"), ==, 2);
  g_assert_cmpuint (topic_match_count (tree, "a/c"), ==, 1);

  /* An inner node that loses its own subscription keeps its children. */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a", 1, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/b/c", 5, s1));
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a/b", 3, s1));
  g_assert_cmpuint (topic_match_count (tree, "a/b/c"), ==, 1);
  g_assert_cmpuint (topic_match_count (tree, "a"), ==, 1);
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a", 1, s1));
  g_assert_cmpuint (topic_match_count (tree, "a/b/c"), ==, 1);

  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 1);
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s2), ==, 1);

  /* A tree freed with subscriptions left in it frees them. */
  _elbus_topic_tree_free (tree);
  _elbus_topic_tree_free (NULL);
}

static void
test_topic_unsubscribe_all (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  guint n_subscribers = 20;
  guint i, j;

  g_test_summary ("Unsubscribing a subscriber from everything.");

  /* Subscriber i holds masks "m/j" for j < i plus "#" and "", shared with
   * the others. */
  for (i = 1; i <= n_subscribers; i++)
    {
      gpointer s = GUINT_TO_POINTER (i);

      for (j = 0; j < i; j++)
        {
          g_autofree char *mask = g_strdup_printf ("m/%u", j);

          g_assert_true (_elbus_topic_tree_subscribe (tree, mask, strlen (mask), s));
        }
      g_assert_true (_elbus_topic_tree_subscribe (tree, "#", 1, s));
      g_assert_true (_elbus_topic_tree_subscribe (tree, "", 0, s));
      g_assert_cmpuint (_elbus_topic_tree_count (tree, s), ==, i + 2);
    }

  g_assert_cmpuint (topic_match_count (tree, "m/0"), ==, 2 * n_subscribers);
  g_assert_cmpuint (topic_match_count (tree, ""), ==, 2 * n_subscribers);

  /* Drop the odd ones. */
  for (i = 1; i <= n_subscribers; i += 2)
    {
      gpointer s = GUINT_TO_POINTER (i);

      g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, s), ==, i + 2);
      g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, s), ==, 0);
      g_assert_cmpuint (_elbus_topic_tree_count (tree, s), ==, 0);
      g_assert_false (_elbus_topic_tree_unsubscribe (tree, "#", 1, s));
    }

  for (j = 0; j < n_subscribers; j++)
    {
      g_autofree char *topic = g_strdup_printf ("m/%u", j);
      guint expected = n_subscribers / 2;  /* "#" */

      for (i = 2; i <= n_subscribers; i += 2)
        expected += j < i;
      g_assert_cmpuint (topic_match_count (tree, topic), ==, expected);
    }

  /* Unknown subscriber */
  g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, GUINT_TO_POINTER (999)), ==, 0);
  g_assert_cmpuint (_elbus_topic_tree_count (tree, GUINT_TO_POINTER (999)), ==, 0);

  /* A subscriber that comes back starts from nothing. */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "x", 1, GUINT_TO_POINTER (1)));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, GUINT_TO_POINTER (1)), ==, 1);

  for (i = 1; i <= n_subscribers; i++)
    _elbus_topic_tree_unsubscribe_all (tree, GUINT_TO_POINTER (i));
  g_assert_cmpuint (topic_match_count (tree, "m/0"), ==, 0);
  g_assert_cmpuint (topic_match_count (tree, "x"), ==, 0);

  _elbus_topic_tree_free (tree);
}

static void
test_topic_count (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  gpointer s1 = GUINT_TO_POINTER (1);
  gpointer s2 = GUINT_TO_POINTER (2);

  g_test_summary ("Counting the masks of a subscriber.");

  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 0);
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a", 1, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/+", 3, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a/#", 3, s1));
  g_assert_false (_elbus_topic_tree_subscribe (tree, "a/#/b", 5, s1));
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a", 1, s2));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 3);
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s2), ==, 1);

  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a/+", 3, s1));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 2);
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a", 1, s1));
  g_assert_true (_elbus_topic_tree_unsubscribe (tree, "a/#", 3, s1));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s1), ==, 0);
  g_assert_cmpuint (_elbus_topic_tree_count (tree, s2), ==, 1);

  /* NULL is a subscriber like any other. */
  g_assert_true (_elbus_topic_tree_subscribe (tree, "a", 1, NULL));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, NULL), ==, 1);
  g_assert_cmpuint (topic_match_count (tree, "a"), ==, 2);
  g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, NULL), ==, 1);

  _elbus_topic_tree_free (tree);
}

static void
test_topic_many_subscribers (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  const guint n = 500;
  g_autofree guint *order = g_new (guint, n);
  g_autofree gboolean *present = g_new0 (gboolean, n + 1);
  guint i;

  g_test_summary ("Many subscribers on one mask, removed in random order.");

  /* Many subscribers on the same masks, removed in random order. */
  for (i = 1; i <= n; i++)
    {
      g_assert_true (_elbus_topic_tree_subscribe (tree, "s/+", 3, GUINT_TO_POINTER (i)));
      g_assert_true (_elbus_topic_tree_subscribe (tree, "s/x", 3, GUINT_TO_POINTER (i)));
      present[i] = TRUE;
    }
  for (i = 0; i < n; i++)
    order[i] = i + 1;
  for (i = n - 1; i > 0; i--)
    {
      guint j = g_test_rand_int_range (0, i + 1);
      guint tmp = order[i];

      order[i] = order[j];
      order[j] = tmp;
    }

  for (i = 0; i < n; i++)
    {
      gpointer s = GUINT_TO_POINTER (order[i]);

      if (i % 2)
        {
          g_assert_true (_elbus_topic_tree_unsubscribe (tree, "s/x", 3, s));
          g_assert_true (_elbus_topic_tree_unsubscribe (tree, "s/+", 3, s));
        }
      else
        {
          g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, s), ==, 2);
        }
      present[order[i]] = FALSE;

      if (i % 50 == 0)
        {
          g_autoptr(GPtrArray) got = g_ptr_array_new ();
          guint j;

          _elbus_topic_tree_match (tree, "s/x", 3, collect_cb, got);
          g_assert_cmpuint (got->len, ==, 2 * (n - i - 1));
          for (j = 0; j < got->len; j++)
            g_assert_true (present[GPOINTER_TO_UINT (got->pdata[j])]);
        }
    }
  g_assert_cmpuint (topic_match_count (tree, "s/x"), ==, 0);

  _elbus_topic_tree_free (tree);
}

static void
test_topic_long_levels (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  g_autofree char *l300 = g_strnfill (300, 'l');
  g_autofree char *l5000 = g_strnfill (5000, 'm');
  guint i;

  g_test_summary ("Levels of 300 and 5000 bytes.");

  for (i = 0; i < 30; i++)
    {
      g_autofree char *mask = g_strdup_printf ("t/%s%u/%s", l300, i, l5000);

      g_assert_true (_elbus_topic_tree_subscribe (tree, mask, strlen (mask), GUINT_TO_POINTER (i + 1)));
    }

  for (i = 0; i < 30; i++)
    {
      g_autofree char *topic = g_strdup_printf ("t/%s%u/%s", l300, i, l5000);
      g_autoptr(GPtrArray) got = g_ptr_array_new ();

      _elbus_topic_tree_match (tree, topic, strlen (topic), collect_cb, got);
      g_assert_cmpuint (got->len, ==, 1);
      g_assert_cmpuint (GPOINTER_TO_UINT (got->pdata[0]), ==, i + 1);
    }

  {
    g_autofree char *plus = g_strdup_printf ("t/+/%s", l5000);
    g_autofree char *topic = g_strdup_printf ("t/%s/%s", l5000, l5000);
    g_autofree char *miss = g_strdup_printf ("t/%s7/%s", l300, l300);

    g_assert_true (_elbus_topic_tree_subscribe (tree, plus, strlen (plus), GUINT_TO_POINTER (100)));
    g_assert_cmpuint (topic_match_count (tree, topic), ==, 1);
    g_assert_cmpuint (topic_match_count (tree, miss), ==, 0);
    g_assert_true (_elbus_topic_tree_unsubscribe (tree, plus, strlen (plus), GUINT_TO_POINTER (100)));
  }

  for (i = 0; i < 30; i++)
    g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, GUINT_TO_POINTER (i + 1)), ==, 1);

  _elbus_topic_tree_free (tree);
}

static void
test_topic_deep (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  const guint depth = 20000;
  const guint wide = 200;
  GString *plus = g_string_new ("+");
  GString *topic = g_string_new ("x");
  GString *prefix = g_string_new (NULL);
  guint i;

  g_test_summary ("Masks and topics 20000 levels deep, and many pending + branches.");

  /* Masks and topics 20000 levels deep: nothing may recurse. */
  for (i = 1; i < depth; i++)
    {
      g_string_append (plus, "/+");
      g_string_append (topic, "/x");
    }
  g_assert_true (_elbus_topic_tree_subscribe (tree, plus->str, plus->len, GUINT_TO_POINTER (1)));
  g_assert_true (_elbus_topic_tree_subscribe (tree, topic->str, topic->len, GUINT_TO_POINTER (2)));
  g_assert_cmpuint (topic_match_count (tree, topic->str), ==, 2);

  /* x/+/#, x/x/+/#, ...: one pending `+` branch per level, more than fit in
   * the on-stack work buffer. */
  for (i = 0; i < wide; i++)
    {
      g_autofree char *mask = g_strconcat (prefix->str, "+/#", NULL);

      g_assert_true (_elbus_topic_tree_subscribe (tree, mask, strlen (mask), GUINT_TO_POINTER (3)));
      g_string_append (prefix, "x/");
    }
  /* The deep topic matches all of them; x^wide matches all but the last. */
  g_assert_cmpuint (topic_match_count (tree, topic->str), ==, 2 + wide);
  g_string_truncate (prefix, prefix->len - 1);
  g_assert_cmpuint (topic_match_count (tree, prefix->str), ==, wide - 1);

  g_assert_true (_elbus_topic_tree_unsubscribe (tree, topic->str, topic->len, GUINT_TO_POINTER (2)));
  g_assert_cmpuint (_elbus_topic_tree_count (tree, GUINT_TO_POINTER (3)), ==, wide);

  /* Free with the deep `+` chain still subscribed. */
  _elbus_topic_tree_free (tree);
  g_string_free (plus, TRUE);
  g_string_free (topic, TRUE);
  g_string_free (prefix, TRUE);
}

static const char *const random_levels[] = {
  "", "a", "b", "c", "d", "e", "f", "ab", "x", "%", "a+", "\xc3\xa9",
};

/* "@subscriber|@normalized_mask" */
static char *
reference_key (guint       subscriber,
               const char *mask)
{
  const char *hash = NULL;

  if (strcmp (mask, "#") == 0 || g_str_has_prefix (mask, "#/"))
    hash = mask;
  else if ((hash = strstr (mask, "/#/")) != NULL)
    hash++;
  else if (g_str_has_suffix (mask, "/#"))
    hash = mask + strlen (mask) - 1;

  if (hash != NULL)
    return g_strdup_printf ("%u|%.*s", subscriber, (int) (hash - mask + 1), mask);

  return g_strdup_printf ("%u|%s", subscriber, mask);
}

static void
test_topic_random (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  /* "subscriber|normalized mask" set, as the tree should hold it */
  g_autoptr(GHashTable) reference = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const guint n_subscribers = 6;
  guint n_ops = g_test_slow () ? 100000 : 8000;
  guint op;

  g_test_summary ("Random subscriptions and topics against a naive matcher.");

  for (op = 0; op < n_ops; op++)
    {
      gint32 what = g_test_rand_int_range (0, 100);
      guint subscriber = g_test_rand_int_range (1, n_subscribers + 1);
      gpointer s = GUINT_TO_POINTER (subscriber);

      if (what < 40)
        {
          g_autofree char *mask = random_path ("/", random_levels, G_N_ELEMENTS (random_levels), "+", "#", 4);
          char *key = reference_key (subscriber, mask);
          gboolean added = g_hash_table_add (reference, key);

          g_assert_cmpint (_elbus_topic_tree_subscribe (tree, mask, strlen (mask), s), ==, added);
        }
      else if (what < 60)
        {
          g_autofree char *mask = random_path ("/", random_levels, G_N_ELEMENTS (random_levels), "+", "#", 4);
          g_autofree char *key = reference_key (subscriber, mask);
          gboolean present = g_hash_table_remove (reference, key);

          g_assert_cmpint (_elbus_topic_tree_unsubscribe (tree, mask, strlen (mask), s), ==, present);
        }
      else if (what < 62)
        {
          g_autofree char *prefix = g_strdup_printf ("%u|", subscriber);
          GHashTableIter iter;
          gpointer key;
          guint n = 0;

          g_hash_table_iter_init (&iter, reference);
          while (g_hash_table_iter_next (&iter, &key, NULL))
            {
              if (g_str_has_prefix (key, prefix))
                {
                  g_hash_table_iter_remove (&iter);
                  n++;
                }
            }

          g_assert_cmpuint (_elbus_topic_tree_count (tree, s), ==, n);
          g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (tree, s), ==, n);
          g_assert_cmpuint (_elbus_topic_tree_count (tree, s), ==, 0);
        }
      else
        {
          /* Topics use the same levels, `+` and `#` included (literally). */
          g_autofree char *topic = random_path ("/", random_levels, G_N_ELEMENTS (random_levels), "+", "#", 4);
          g_autoptr(GPtrArray) got = g_ptr_array_new ();
          g_autoptr(GPtrArray) expected = g_ptr_array_new ();
          g_autofree char *got_s = NULL;
          g_autofree char *expected_s = NULL;
          GHashTableIter iter;
          gpointer key;

          _elbus_topic_tree_match (tree, topic, strlen (topic), collect_cb, got);

          g_hash_table_iter_init (&iter, reference);
          while (g_hash_table_iter_next (&iter, &key, NULL))
            {
              const char *bar = strchr (key, '|');

              if (reference_match (bar + 1, topic, "/", "+", "#"))
                g_ptr_array_add (expected, GUINT_TO_POINTER (strtoul (key, NULL, 10)));
            }

          got_s = join_sorted_pointers (topic, got);
          expected_s = join_sorted_pointers (topic, expected);
          g_assert_cmpstr (got_s, ==, expected_s);
        }
    }

  g_test_message ("%u subscriptions at the end", g_hash_table_size (reference));

  _elbus_topic_tree_free (tree);
}

/* Random masks in a tree, each with a subscriber of its own (its index
 * + 1), and random topics: for each mask, as written, the single-mask
 * matcher says what the tree says. */
static void
test_topic_single_random (void)
{
  ElbusTopicTree *tree = _elbus_topic_tree_new ();
  g_autoptr(GPtrArray) masks = g_ptr_array_new_with_free_func (g_free);
  guint n_topics = g_test_slow () ? 20000 : 1500;
  guint i;

  g_test_summary ("_elbus_topic_mask_matches() against ElbusTopicTree on random "
                  "masks and topics.");

  for (i = 0; i < 80; i++)
    {
      char *mask = random_path ("/", random_levels, G_N_ELEMENTS (random_levels), "+", "#", 4);

      g_assert_true (_elbus_topic_tree_subscribe (tree, mask, strlen (mask),
                                                  GUINT_TO_POINTER (masks->len + 1)));
      g_ptr_array_add (masks, mask);
    }

  for (i = 0; i < n_topics; i++)
    {
      g_autofree char *topic = random_path ("/", random_levels, G_N_ELEMENTS (random_levels), "+", "#", 4);
      g_autoptr(GPtrArray) got = g_ptr_array_new ();
      guint j;

      _elbus_topic_tree_match (tree, topic, strlen (topic), collect_cb, got);

      for (j = 0; j < masks->len; j++)
        {
          const char *mask = g_ptr_array_index (masks, j);
          gboolean in_tree = g_ptr_array_find (got, GUINT_TO_POINTER (j + 1), NULL);

          g_assert_cmpint (reference_match (mask, topic, "/", "+", "#"), ==, in_tree);
          check_single (_elbus_topic_mask_matches, mask, topic, "/x/y", in_tree);
        }
    }

  _elbus_topic_tree_free (tree);
}

/* Single masks: the fine points, NULL with length 0 */
static void
test_single_fine_points (void)
{
  g_test_summary ("The single-mask matchers on the protocol's fine points and "
                  "on (NULL, 0) strings.");

  /* `*` and `#` need at least one part or level after what precedes them */
  check_single (_elbus_name_mask_matches, "a.*", "a", "", FALSE);
  check_single (_elbus_name_mask_matches, "a.*", "a.", "", TRUE);
  check_single (_elbus_name_mask_matches, "*", "", "", TRUE);
  check_single (_elbus_name_mask_matches, "a.*.b", "a.x.y", "", TRUE);
  check_single (_elbus_name_mask_matches, "?", "", "", TRUE);
  check_single (_elbus_name_mask_matches, "a.?", "a.*", "", TRUE);
  check_single (_elbus_name_mask_matches, "a.?", "a.b.c", "", FALSE);
  check_single (_elbus_name_mask_matches, "a", "a.b", "", FALSE);
  check_single (_elbus_name_mask_matches, "a.b", "a", "", FALSE);
  check_single (_elbus_name_mask_matches, "a*", "ab", "", FALSE);
  check_single (_elbus_topic_mask_matches, "a/#", "a", "", FALSE);
  check_single (_elbus_topic_mask_matches, "a/#", "a/", "", TRUE);
  check_single (_elbus_topic_mask_matches, "#", "", "", TRUE);
  check_single (_elbus_topic_mask_matches, "a/#/b", "a/x/y", "", TRUE);
  check_single (_elbus_topic_mask_matches, "+", "", "", TRUE);
  check_single (_elbus_topic_mask_matches, "a/+", "a/#", "", TRUE);
  check_single (_elbus_topic_mask_matches, "a/+", "a/b/c", "", FALSE);
  check_single (_elbus_topic_mask_matches, "a+", "ab", "", FALSE);
  /* the other separator is just text */
  check_single (_elbus_name_mask_matches, "a.?", "a.b/c", "", TRUE);
  check_single (_elbus_topic_mask_matches, "a/+", "a/b.c", "", TRUE);

  /* (NULL, 0) is the empty string: one empty part */
  g_assert_true (_elbus_name_mask_matches (NULL, 0, NULL, 0));
  g_assert_true (_elbus_name_mask_matches ("?", 1, NULL, 0));
  g_assert_true (_elbus_name_mask_matches ("*", 1, NULL, 0));
  g_assert_false (_elbus_name_mask_matches (NULL, 0, "a", 1));
  g_assert_true (_elbus_topic_mask_matches (NULL, 0, NULL, 0));
  g_assert_true (_elbus_topic_mask_matches ("#", 1, NULL, 0));
  g_assert_false (_elbus_topic_mask_matches ("a", 1, NULL, 0));
}

/* Pruning: memory comes back */

#if defined(__GLIBC__)
#if __GLIBC_PREREQ(2, 33)
#define HAVE_MALLINFO2 1
#endif
#endif

#ifdef HAVE_MALLINFO2

static gsize
heap_in_use (void)
{
  struct mallinfo2 info = mallinfo2 ();

  return info.uordblks;
}

/* Subscribes 3000 masks of 4 levels (about 9000 nodes) under @round for 30
 * subscribers, then removes them all, half one by one, half with
 * unsubscribe_all. */
static void
prune_round (ElbusTopicTree *topics,
             ElbusNameTree  *names,
             guint           round)
{
  guint i;

  for (i = 0; i < 3000; i++)
    {
      g_autofree char *mask = g_strdup_printf ("r%u/%u/%s/%u", round, i / 10,
                                               i % 3 ? "+" : "lvl", i);
      g_autofree char *name = g_strdup_printf ("r%u.%u.%u", round, i / 10, i);

      g_assert_true (_elbus_topic_tree_subscribe (topics, mask, strlen (mask), GUINT_TO_POINTER (i % 30)));
      _elbus_name_tree_insert (names, name, strlen (name), GUINT_TO_POINTER (i));
    }

  for (i = 0; i < 3000; i += 2)
    {
      g_autofree char *mask = g_strdup_printf ("r%u/%u/%s/%u", round, i / 10,
                                               i % 3 ? "+" : "lvl", i);

      g_assert_true (_elbus_topic_tree_unsubscribe (topics, mask, strlen (mask), GUINT_TO_POINTER (i % 30)));
    }
  for (i = 0; i < 30; i++)
    g_assert_cmpuint (_elbus_topic_tree_unsubscribe_all (topics, GUINT_TO_POINTER (i)), ==, i % 2 ? 100 : 0);

  for (i = 0; i < 3000; i++)
    {
      g_autofree char *name = g_strdup_printf ("r%u.%u.%u", round, i / 10, i);

      g_assert_true (_elbus_name_tree_remove (names, name, strlen (name)));
    }
}
#endif

static void
test_topic_prune (void)
{
#ifdef HAVE_MALLINFO2
  ElbusTopicTree *topics;
  ElbusNameTree *names;
  gsize after_first, after_last;
  guint round;
#endif

  g_test_summary ("Emptied nodes are freed: memory comes back after unsubscribing.");

#ifdef HAVE_MALLINFO2
  topics = _elbus_topic_tree_new ();
  names = _elbus_name_tree_new ();

  /* Each round uses new masks and names: if emptied nodes were kept, every
   * round would leave about a megabyte behind. The first round warms up
   * the allocator's caches. */
  prune_round (topics, names, 0);
  after_first = heap_in_use ();
  for (round = 1; round < 5; round++)
    prune_round (topics, names, round);
  after_last = heap_in_use ();

  g_test_message ("heap in use after the first round: %" G_GSIZE_FORMAT
                  ", after the last: %" G_GSIZE_FORMAT, after_first, after_last);
  g_assert_cmpuint (after_last, <=, after_first + 64 * 1024);

  g_assert_cmpuint (topic_match_count (topics, "#"), ==, 0);
  g_assert_cmpuint (name_match_count (names, "*"), ==, 0);

  _elbus_topic_tree_free (topics);
  _elbus_name_tree_free (names);
#else
  g_test_skip ("needs glibc's mallinfo2()");
#endif
}

/* The consistency checks report every name and subscription once, with
 * the path rebuilt from the trie (empty parts and levels included), and
 * find nothing wrong in trees built and pruned the normal way. */
static void
collect_path_cb (const char *path,
                 gpointer    value,
                 gpointer    user_data)
{
  g_ptr_array_add (user_data, g_strdup_printf ("%s=%s", path, (const char *) value));
}

static int
compare_paths (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

static void
check_collected (GPtrArray          *got,
                 const char * const *expected)
{
  g_ptr_array_sort (got, compare_paths);
  g_ptr_array_add (got, NULL);
  g_assert_cmpstrv ((char **) got->pdata, expected);
}

static void
test_check_trees (void)
{
  ElbusNameTree *names = _elbus_name_tree_new ();
  ElbusTopicTree *topics = _elbus_topic_tree_new ();
  g_autoptr(GPtrArray) got = g_ptr_array_new_with_free_func (g_free);
  const char * const expected_names[] = { "a.=A.", "a.b=AB", "a.c.d=ACD", "x=X", NULL };
  const char * const expected_topics[] = { "/=s1", "a/#=s1", "a/#=s2", "a/+/c=s2", NULL };
  char name[32];

  _elbus_name_tree_insert (names, "a.b", 3, "AB");
  _elbus_name_tree_insert (names, "a.", 2, "A.");
  _elbus_name_tree_insert (names, "a.c.d", 5, "ACD");
  _elbus_name_tree_insert (names, "x", 1, "X");
  _elbus_name_tree_insert (names, "gone.away", 9, "G");
  /* enough children for an index, then few enough to drop it */
  for (guint i = 0; i < 12; i++)
    {
      g_snprintf (name, sizeof name, "a.n%u", i);
      _elbus_name_tree_insert (names, name, strlen (name), "N");
    }
  g_assert_null (_elbus_name_tree_check (names, collect_path_cb, got));
  g_assert_cmpuint (got->len, ==, 17);
  for (guint i = 0; i < 12; i++)
    {
      g_snprintf (name, sizeof name, "a.n%u", i);
      _elbus_name_tree_remove (names, name, strlen (name));
    }
  _elbus_name_tree_remove (names, "gone.away", 9);
  g_ptr_array_set_size (got, 0);
  g_assert_null (_elbus_name_tree_check (names, collect_path_cb, got));
  check_collected (got, expected_names);

  _elbus_topic_tree_subscribe (topics, "a/#", 3, "s1");
  _elbus_topic_tree_subscribe (topics, "a/#/b", 5, "s2");   /* stored as a/# */
  _elbus_topic_tree_subscribe (topics, "a/+/c", 5, "s2");
  _elbus_topic_tree_subscribe (topics, "/", 1, "s1");
  _elbus_topic_tree_subscribe (topics, "x/y/z", 5, "s3");
  _elbus_topic_tree_unsubscribe_all (topics, "s3");
  g_ptr_array_set_size (got, 0);
  g_assert_null (_elbus_topic_tree_check (topics, collect_path_cb, got));
  check_collected (got, expected_topics);

  _elbus_name_tree_free (names);
  _elbus_topic_tree_free (topics);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_data_func ("/elbus/mask/broadcast/question", &broadcast_question, test_broadcast_table);
  g_test_add_data_func ("/elbus/mask/broadcast/star", &broadcast_star, test_broadcast_table);
  g_test_add_data_func ("/elbus/mask/broadcast/star-alone", &broadcast_star_alone, test_broadcast_table);
  g_test_add_data_func ("/elbus/mask/broadcast/star-ends-mask", &broadcast_star_ends_mask, test_broadcast_table);
  g_test_add_data_func ("/elbus/mask/broadcast/literal-star", &broadcast_literal_star, test_broadcast_table);
  g_test_add_data_func ("/elbus/mask/broadcast/exact", &broadcast_exact, test_broadcast_table);
  g_test_add_data_func ("/elbus/mask/broadcast/empty-part", &broadcast_empty_part, test_broadcast_table);
  g_test_add_data_func ("/elbus/mask/broadcast/secondary", &broadcast_secondary, test_broadcast_table);
  g_test_add_func ("/elbus/mask/broadcast/has-wildcards", test_broadcast_has_wildcards);
  g_test_add_func ("/elbus/mask/broadcast/not-nul-terminated", test_broadcast_not_nul_terminated);
  g_test_add_func ("/elbus/mask/broadcast/replace", test_broadcast_replace);
  g_test_add_func ("/elbus/mask/broadcast/remove", test_broadcast_remove);
  g_test_add_func ("/elbus/mask/broadcast/long-parts", test_broadcast_long_parts);
  g_test_add_func ("/elbus/mask/broadcast/many-children", test_broadcast_many_children);
  g_test_add_func ("/elbus/mask/broadcast/deep", test_broadcast_deep);
  g_test_add_func ("/elbus/mask/broadcast/wide-question", test_broadcast_wide_question);
  g_test_add_func ("/elbus/mask/broadcast/random", test_broadcast_random);
  g_test_add_func ("/elbus/mask/broadcast/single-random", test_broadcast_single_random);

  g_test_add_data_func ("/elbus/mask/topic/hash-alone", &topic_hash_alone, test_topic_table);
  g_test_add_data_func ("/elbus/mask/topic/hash-parent", &topic_hash_parent, test_topic_table);
  g_test_add_data_func ("/elbus/mask/topic/plus-middle", &topic_plus_middle, test_topic_table);
  g_test_add_data_func ("/elbus/mask/topic/plus-empty", &topic_plus_empty, test_topic_table);
  g_test_add_data_func ("/elbus/mask/topic/empty-topic", &topic_empty, test_topic_table);
  g_test_add_data_func ("/elbus/mask/topic/literal-topic", &topic_literal, test_topic_table);
  g_test_add_data_func ("/elbus/mask/topic/exact", &topic_exact, test_topic_table);
  g_test_add_func ("/elbus/mask/topic/not-nul-terminated", test_topic_not_nul_terminated);
  g_test_add_func ("/elbus/mask/topic/duplicate", test_topic_duplicate);
  g_test_add_func ("/elbus/mask/topic/several-masks", test_topic_several_masks);
  g_test_add_func ("/elbus/mask/topic/unsubscribe", test_topic_unsubscribe);
  g_test_add_func ("/elbus/mask/topic/unsubscribe-all", test_topic_unsubscribe_all);
  g_test_add_func ("/elbus/mask/topic/count", test_topic_count);
  g_test_add_func ("/elbus/mask/topic/many-subscribers", test_topic_many_subscribers);
  g_test_add_func ("/elbus/mask/topic/long-levels", test_topic_long_levels);
  g_test_add_func ("/elbus/mask/topic/deep", test_topic_deep);
  g_test_add_func ("/elbus/mask/topic/random", test_topic_random);
  g_test_add_func ("/elbus/mask/topic/single-random", test_topic_single_random);
  g_test_add_func ("/elbus/mask/topic/prune", test_topic_prune);
  g_test_add_func ("/elbus/mask/single/fine-points", test_single_fine_points);
  g_test_add_func ("/elbus/mask/check", test_check_trees);

  return g_test_run ();
}

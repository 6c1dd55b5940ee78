/* SPDX-License-Identifier: MIT */
/*
 * The FIFO control channel's lines (elbus-fifo-line-private.h): pure
 * functions, unit-tested by tests/test-fifo.c and fuzzed by
 * tests/fuzz/fuzz-fifo.c.
 */
#include "config.h"

#include <string.h>

#include "elbus-error.h"
#include "elbus-fifo-line-private.h"
#include "elbus-i18n-private.h"
#include "elbus-msgpack.h"
#include "elbus-rpc-peer.h"

/* how much of a line an error message quotes */
#define QUOTE_CHARS 40

#define LINE_FORMS "TARGET TEXT, =TOPIC TEXT, TARGET .TEXT or TARGET :METHOD [KEY=VALUE]..."

/* The start of a line (valid UTF-8) as a user wrote it, in quotes. */
static char *
quote_line (const char *line,
            gsize       len)
{
  const char *end = line;

  for (guint n = 0; end < line + len && n < QUOTE_CHARS; n++)
    end = g_utf8_next_char (end);

  return g_strdup_printf ("“%.*s%s”", (int) (end - line), line,
                          end < line + len ? "…" : "");
}

static gboolean
parse_call0 (const char     *quoted,
             const char     *text,
             gsize           text_len,
             ElbusFifoLine  *parsed,
             GError        **error)
{
  g_autofree char *call = g_strndup (text, text_len);
  g_auto(GStrv) words = g_strsplit (call, " ", -1);
  g_autoptr(GPtrArray) pairs = g_ptr_array_new ();
  g_autoptr(GVariant) params = NULL;
  g_autoptr(GError) local_error = NULL;

  if (words[0] == NULL || words[0][0] == '\0')
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("%s is an RPC call without a method (TARGET :METHOD [KEY=VALUE]...)"), quoted);
      return FALSE;
    }

  for (guint i = 1; words[i] != NULL; i++)
    if (words[i][0] != '\0')
      g_ptr_array_add (pairs, words[i]);
  g_ptr_array_add (pairs, NULL);

  params = elbus_rpc_params_from_pairs ((const char * const *) pairs->pdata, &local_error);
  if (params != NULL)
    parsed->payload = elbus_msgpack_encode_variant (params, &local_error);
  if (parsed->payload == NULL)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, "%s: %s", quoted, local_error->message);
      return FALSE;
    }

  parsed->method = g_strdup (words[0]);
  return TRUE;
}

/*
 * _elbus_fifo_line_parse:
 * @line: (array length=len): one line, without its newline
 * @len: its length in bytes
 * @parsed: (out caller-allocates): what the line asks for; cleared with
 *   _elbus_fifo_line_clear() after success or failure
 * @error: return location for an error
 *
 * Reads one line of the FIFO control channel. An empty line is
 * %ELBUS_FIFO_LINE_EMPTY, with no target and no payload.
 *
 * Returns: %TRUE when @parsed holds what the line asks for, %FALSE with
 *   an %ELBUS_ERROR_DATA error that quotes the line otherwise
 */
gboolean
_elbus_fifo_line_parse (const char     *line,
                        gsize           len,
                        ElbusFifoLine  *parsed,
                        GError        **error)
{
  g_autofree char *quoted = NULL;
  const char *invalid;
  const char *space;
  const char *text;
  gsize text_len;

  memset (parsed, 0, sizeof *parsed);
  parsed->kind = ELBUS_FIFO_LINE_EMPTY;

  if (len == 0)
    return TRUE;

  if (!g_utf8_validate_len (line, len, &invalid))
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, *invalid == '\0'
                   ? _("a line with a NUL byte (byte %lu)")
                   : _("a line that is not UTF-8 text (byte %lu)"),
                   (unsigned long) (invalid - line) + 1);
      return FALSE;
    }

  quoted = quote_line (line, len);
  space = memchr (line, ' ', len);

  if (line[0] == ' ')
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("%s has no target (lines are %s)"), quoted, LINE_FORMS);
      return FALSE;
    }
  if (line[0] == '=' && (len == 1 || line[1] == ' '))
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("%s is a publication without a topic (=TOPIC TEXT)"), quoted);
      return FALSE;
    }
  if (space == NULL)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("%s has no text after its target (lines are %s; "
                     "a line that ends in a space sends an empty text)"), quoted, LINE_FORMS);
      return FALSE;
    }

  text = space + 1;
  text_len = line + len - text;

  if (line[0] == '=')
    {
      parsed->kind = ELBUS_FIFO_LINE_PUBLISH;
      parsed->target = g_strndup (line + 1, space - line - 1);
      parsed->payload = g_bytes_new (text, text_len);
      return TRUE;
    }

  parsed->target = g_strndup (line, space - line);

  if (text_len > 0 && (text[0] == '.' || text[0] == ':') &&
      strpbrk (parsed->target, "*?") != NULL)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   text[0] == '.'
                   ? _("%s is an RPC notification to a mask: an RPC goes to one client, "
                       "whose name has no * or ?")
                   : _("%s is an RPC call to a mask: an RPC goes to one client, "
                       "whose name has no * or ?"), quoted);
      return FALSE;
    }

  if (text_len > 0 && text[0] == '.')
    {
      parsed->kind = ELBUS_FIFO_LINE_NOTIFY;
      parsed->payload = g_bytes_new (text + 1, text_len - 1);
    }
  else if (text_len > 0 && text[0] == ':')
    {
      parsed->kind = ELBUS_FIFO_LINE_CALL0;
      if (!parse_call0 (quoted, text + 1, text_len - 1, parsed, error))
        return FALSE;
    }
  else
    {
      parsed->kind = strpbrk (parsed->target, "*?") != NULL ? ELBUS_FIFO_LINE_BROADCAST
                                                             : ELBUS_FIFO_LINE_MESSAGE;
      parsed->payload = g_bytes_new (text, text_len);
    }

  return TRUE;
}

/*
 * _elbus_fifo_line_clear:
 * @parsed: a line filled by _elbus_fifo_line_parse()
 *
 * Frees what @parsed holds and leaves it empty.
 */
void
_elbus_fifo_line_clear (ElbusFifoLine *parsed)
{
  g_clear_pointer (&parsed->target, g_free);
  g_clear_pointer (&parsed->method, g_free);
  g_clear_pointer (&parsed->payload, g_bytes_unref);
  parsed->kind = ELBUS_FIFO_LINE_EMPTY;
}

void
_elbus_fifo_reader_init (ElbusFifoReader *reader,
                         gsize            max_len)
{
  reader->line = g_string_new (NULL);
  reader->max_len = max_len;
  reader->overlong = FALSE;
}

void
_elbus_fifo_reader_clear (ElbusFifoReader *reader)
{
  if (reader->line != NULL)
    g_string_free (reader->line, TRUE);
  reader->line = NULL;
}

static void
line_done (ElbusFifoReader   *reader,
           ElbusFifoLineFunc  func,
           gpointer           user_data)
{
  ElbusFifoLine parsed;
  g_autoptr(GError) error = NULL;

  if (!_elbus_fifo_line_parse (reader->line->str, reader->line->len, &parsed, &error))
    func (NULL, error, user_data);
  else if (parsed.kind != ELBUS_FIFO_LINE_EMPTY)
    func (&parsed, NULL, user_data);
  _elbus_fifo_line_clear (&parsed);
}

/*
 * _elbus_fifo_reader_feed:
 * @reader: a reader
 * @data: (array length=len): bytes read from the pipe
 * @len: how many
 * @func: called for every complete line but empty ones, in order
 * @user_data: data for @func
 *
 * Adds @data to the line being read and handles every line it completes.
 * A line longer than the reader's limit is reported once, as soon as it
 * passes the limit, and the rest of it up to its newline is skipped.
 */
void
_elbus_fifo_reader_feed (ElbusFifoReader   *reader,
                         const char        *data,
                         gsize              len,
                         ElbusFifoLineFunc  func,
                         gpointer           user_data)
{
  while (len > 0)
    {
      const char *newline = memchr (data, '\n', len);
      gsize part = newline != NULL ? (gsize) (newline - data) : len;

      if (!reader->overlong && part > reader->max_len - reader->line->len)
        {
          g_autoptr(GError) error = NULL;

          g_set_error (&error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                       _("a line longer than %lu bytes"), (unsigned long) reader->max_len);
          func (NULL, error, user_data);
          reader->overlong = TRUE;
          g_string_truncate (reader->line, 0);
        }
      if (!reader->overlong)
        g_string_append_len (reader->line, data, part);

      if (newline == NULL)
        return;

      if (!reader->overlong)
        line_done (reader, func, user_data);
      g_string_truncate (reader->line, 0);
      reader->overlong = FALSE;
      data += part + 1;
      len -= part + 1;
    }
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the FIFO control channel's lines
 * (elbus-fifo-line-private.h): the input up to its first newline is parsed
 * as one line, and the whole input is fed to a line reader with a small limit in chunks whose sizes its first
 * byte picks. Every line must come out either as something to send that
 * the broker can send as it is, or as one ELBUS_ERROR_DATA with a UTF-8
 * message; never both, never neither. Checked with abort().
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elbus-error.h"
#include "elbus-fifo-line-private.h"
#include "elbus-msgpack.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort (); } while (0)

#define READER_MAX_LINE 256

static void
check_line (const ElbusFifoLine *line)
{
  gboolean has_wildcard;

  CHECK (line->kind != ELBUS_FIFO_LINE_EMPTY);
  CHECK (line->target != NULL && line->target[0] != '\0');
  CHECK (g_utf8_validate (line->target, -1, NULL));
  CHECK (strchr (line->target, ' ') == NULL && strchr (line->target, '\n') == NULL);
  CHECK (line->payload != NULL);
  CHECK ((line->method != NULL) == (line->kind == ELBUS_FIFO_LINE_CALL0));

  has_wildcard = strpbrk (line->target, "*?") != NULL;
  switch (line->kind)
    {
    case ELBUS_FIFO_LINE_MESSAGE:
      CHECK (!has_wildcard && line->target[0] != '=');
      break;
    case ELBUS_FIFO_LINE_BROADCAST:
      CHECK (has_wildcard && line->target[0] != '=');
      break;
    case ELBUS_FIFO_LINE_PUBLISH:
      break;
    case ELBUS_FIFO_LINE_NOTIFY:
      CHECK (!has_wildcard);
      break;
    case ELBUS_FIFO_LINE_CALL0:
      {
        GVariant *params;

        CHECK (!has_wildcard);
        CHECK (line->method[0] != '\0' && strchr (line->method, ' ') == NULL);
        params = elbus_msgpack_decode (line->payload, NULL);
        CHECK (params != NULL);
        CHECK (g_variant_is_of_type (params, G_VARIANT_TYPE_VARDICT));
        g_variant_unref (params);
      }
      break;
    case ELBUS_FIFO_LINE_EMPTY:
    default:
      abort ();
    }
}

static void
check_error (const GError *error)
{
  CHECK (error != NULL);
  CHECK (g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_DATA));
  CHECK (error->message != NULL && error->message[0] != '\0');
  CHECK (g_utf8_validate (error->message, -1, NULL));
}

static void
line_cb (const ElbusFifoLine *line,
         const GError        *error,
         gpointer             user_data)
{
  guint *n_lines = user_data;

  CHECK ((line == NULL) != (error == NULL));
  if (line != NULL)
    check_line (line);
  else
    check_error (error);
  (*n_lines)++;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* a copy of exactly the input's size, so that reading past it is caught */
  char *buf = g_malloc (MAX (size, 1));
  ElbusFifoLine parsed;
  ElbusFifoReader reader;
  GError *error = NULL;
  const char *newline;
  char *first;
  gsize first_len, chunk, newlines = 0;
  guint n_lines = 0;

  if (size > 0)
    memcpy (buf, data, size);

  /* the first line, in a buffer that ends where it does */
  newline = size > 0 ? memchr (buf, '\n', size) : NULL;
  first_len = newline != NULL ? (gsize) (newline - buf) : size;
  first = g_memdup2 (buf, MAX (first_len, 1));
  if (_elbus_fifo_line_parse (first, first_len, &parsed, &error))
    {
      CHECK (error == NULL);
      if (first_len == 0)
        CHECK (parsed.kind == ELBUS_FIFO_LINE_EMPTY && parsed.target == NULL);
      else
        check_line (&parsed);
    }
  else
    {
      check_error (error);
      g_clear_error (&error);
    }
  _elbus_fifo_line_clear (&parsed);
  CHECK (parsed.target == NULL && parsed.method == NULL && parsed.payload == NULL);
  g_free (first);

  /* as a stream, in chunks of 1 to 256 bytes */
  chunk = size > 0 ? (gsize) data[0] + 1 : 1;
  _elbus_fifo_reader_init (&reader, READER_MAX_LINE);
  for (gsize pos = 0; pos < size; pos += chunk)
    {
      _elbus_fifo_reader_feed (&reader, buf + pos, MIN (chunk, size - pos), line_cb, &n_lines);
      CHECK (reader.line->len <= READER_MAX_LINE);
    }
  /* at most one report per line: what it asks for, why it is dropped, or
   * that it is too long (which may come before its newline) */
  for (gsize i = 0; i < size; i++)
    newlines += buf[i] == '\n';
  CHECK (n_lines <= newlines + 1);
  _elbus_fifo_reader_clear (&reader);

  g_free (buf);
  return 0;
}

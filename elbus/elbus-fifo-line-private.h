/* SPDX-License-Identifier: MIT */
/*
 * The lines of the FIFO control channel (docs/protocol.md section 6), as pure
 * functions: bytes in, lines and what they ask for out. No I/O, no
 * GObject; elbus-broker-fifo.c reads the pipe and sends what comes out.
 *
 *   TARGET TEXT             a message; a broadcast when TARGET has * or ?
 *   =TOPIC TEXT             a publication
 *   TARGET .TEXT            an RPC notification
 *   TARGET :method k=v ...  an RPC call wanting no answer; params typed
 *
 * Empty lines are skipped. Any other line that is none of these (no
 * target, no text, a publication without a topic, a call without a
 * method, a parameter without `=`, an RPC to a mask, bytes that are not
 * UTF-8, a line over the reader's limit) is an ELBUS_ERROR_DATA whose
 * message says what is wrong, and asks for nothing.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* a longer line is dropped, not buffered without end */
#define ELBUS_FIFO_MAX_LINE (64 * 1024)

typedef enum {
  ELBUS_FIFO_LINE_EMPTY,
  ELBUS_FIFO_LINE_MESSAGE,
  ELBUS_FIFO_LINE_BROADCAST,
  ELBUS_FIFO_LINE_PUBLISH,
  ELBUS_FIFO_LINE_NOTIFY,
  ELBUS_FIFO_LINE_CALL0,
} ElbusFifoLineKind;

typedef struct {
  ElbusFifoLineKind  kind;
  char              *target;  /* (owned) (nullable): client name, broadcast mask or topic */
  char              *method;  /* (owned) (nullable): CALL0 only */
  GBytes            *payload; /* (owned) (nullable): the text; CALL0's params as MessagePack */
} ElbusFifoLine;

gboolean  _elbus_fifo_line_parse (const char     *line,
                                  gsize           len,
                                  ElbusFifoLine  *parsed,
                                  GError        **error);
void      _elbus_fifo_line_clear (ElbusFifoLine  *parsed);

/* Called for each line that asks for something (parsed) or is dropped
 * (error); never for an empty line. Both are borrowed for the call. */
typedef void (*ElbusFifoLineFunc) (const ElbusFifoLine *parsed,
                                   const GError        *error,
                                   gpointer             user_data);

/* Splits what the pipe gives into lines of at most max_len bytes. */
typedef struct {
  GString  *line;     /* (owned): the line being read */
  gsize     max_len;
  gboolean  overlong; /* dropping the rest of an overlong line */
} ElbusFifoReader;

void      _elbus_fifo_reader_init  (ElbusFifoReader   *reader,
                                    gsize              max_len);
void      _elbus_fifo_reader_clear (ElbusFifoReader   *reader);
void      _elbus_fifo_reader_feed  (ElbusFifoReader   *reader,
                                    const char        *data,
                                    gsize              len,
                                    ElbusFifoLineFunc  func,
                                    gpointer           user_data);

G_END_DECLS

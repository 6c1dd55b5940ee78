/* SPDX-License-Identifier: MIT */
/*
 * WebSocket framing (RFC 6455 section 5) as the broker's side of a
 * connection needs it, as pure functions: client frames in, the payload
 * of binary messages and whole control frames out; server frame headers
 * out. No I/O; elbus-broker-ws.c reads and writes the socket.
 *
 * A client frame must be masked and have no reserved bit set (no
 * extension is ever agreed); a control frame (close, ping, pong) must be
 * whole and at most 125 bytes; continuation frames must continue a
 * fragmented binary message and nothing else; a data frame may be at
 * most the reader's max_frame bytes. A text message is refused too:
 * elbus rides in binary ones. Anything else is an ELBUS_ERROR_DATA whose
 * message says what is wrong, with the close code to answer it with.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define ELBUS_WS_OP_CONTINUATION 0x0
#define ELBUS_WS_OP_TEXT         0x1
#define ELBUS_WS_OP_BINARY       0x2
#define ELBUS_WS_OP_CLOSE        0x8
#define ELBUS_WS_OP_PING         0x9
#define ELBUS_WS_OP_PONG         0xa

/* close codes (RFC 6455 7.4.1) */
#define ELBUS_WS_CLOSE_NORMAL          1000
#define ELBUS_WS_CLOSE_PROTOCOL_ERROR  1002
#define ELBUS_WS_CLOSE_UNSUPPORTED     1003
#define ELBUS_WS_CLOSE_TOO_BIG         1009
#define ELBUS_WS_CLOSE_TRY_AGAIN_LATER 1013

/* the longest header a server frame has */
#define ELBUS_WS_MAX_HEADER 10
#define ELBUS_WS_MAX_CONTROL 125

typedef struct {
  guint64  max_frame;          /* the largest data frame taken */
  /* the frame being read */
  guint8   hdr[14];
  guint    hdr_len;            /* bytes of hdr read */
  guint    hdr_need;           /* bytes hdr has when complete; 0 between frames */
  guint8   opcode;
  gboolean fin;
  guint64  left;               /* payload bytes still to come */
  guint8   mask[4];
  guint    mask_pos;
  gboolean in_message;         /* a fragmented binary message goes on */
  guint8   control[ELBUS_WS_MAX_CONTROL];
  guint    control_len;
} ElbusWsReader;

typedef struct {
  /* Payload bytes of binary messages, unmasked, as they come (frame and
   * message boundaries mean nothing). FALSE stops the reader, which does
   * not touch itself again: the callback may have freed it. */
  gboolean (*data)    (gpointer      user_data,
                       guint8       *bytes,
                       gsize         len);
  /* A whole control frame: ELBUS_WS_OP_CLOSE, _PING or _PONG. FALSE
   * stops the reader, as for data. */
  gboolean (*control) (gpointer      user_data,
                       guint8        opcode,
                       const guint8 *payload,
                       gsize         len);
} ElbusWsReaderFuncs;

typedef enum {
  ELBUS_WS_READ_OK,            /* all of it taken */
  ELBUS_WS_READ_STOPPED,       /* a callback said stop */
  ELBUS_WS_READ_ERROR,         /* a frame the client should not have sent */
} ElbusWsReadResult;

void              _elbus_ws_reader_init     (ElbusWsReader            *reader,
                                             guint64                   max_frame);
ElbusWsReadResult _elbus_ws_reader_feed     (ElbusWsReader            *reader,
                                             guint8                   *data,
                                             gsize                     len,
                                             const ElbusWsReaderFuncs *funcs,
                                             gpointer                  user_data,
                                             guint16                  *close_code,
                                             GError                  **error);
/* whether the connection ending now would cut a frame */
gboolean          _elbus_ws_reader_in_frame (const ElbusWsReader      *reader);

/* Writes the header of an unmasked server frame with @len payload bytes
 * into @hdr (ELBUS_WS_MAX_HEADER bytes); returns its length. */
gsize             _elbus_ws_encode_header   (guint8                   *hdr,
                                             guint8                    opcode,
                                             guint64                   len);

G_END_DECLS

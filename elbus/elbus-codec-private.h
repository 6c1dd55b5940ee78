/* SPDX-License-Identifier: MIT */
/*
 * The elbus wire codec (docs/protocol.md, sections 1 to 3): pure functions
 * from bytes to frames and back. No I/O, no GObject, no allocation.
 *
 * Decoding is incremental in the simplest way: a decoder looks at the bytes
 * the caller has so far and answers OK (one frame, of frame->frame_len
 * bytes), INCOMPLETE (keep the bytes, read more; *needed says how many bytes
 * the frame needs in all when that is known) or ERROR (a protocol error: drop
 * the connection). Decoded frames point into the caller's buffer.
 */
#pragma once

#include <glib.h>

#include "elbus-types.h"

G_BEGIN_DECLS

#define ELBUS_GREETING              0xEB
#define ELBUS_WIRE_VERSION          1
#define ELBUS_CODEC_MAX_NAME_LENGTH 4096 /* ELBUS_MAX_NAME_LENGTH */
#define ELBUS_GREETING_LEN          3
#define ELBUS_CLIENT_HEADER_LEN     9
#define ELBUS_BROKER_HEADER_LEN     6
#define ELBUS_ACK_LEN               6

/* client operations: low 6 bits of the flags byte */
#define ELBUS_OP_NOP                0x00
#define ELBUS_OP_PUBLISH            0x01
#define ELBUS_OP_SUBSCRIBE          0x02
#define ELBUS_OP_UNSUBSCRIBE        0x03
#define ELBUS_OP_MESSAGE            0x12
#define ELBUS_OP_BROADCAST          0x13

/* broker frame kinds */
#define ELBUS_KIND_PING             0x00
#define ELBUS_KIND_PUBLISH          0x01
#define ELBUS_KIND_MESSAGE          0x12
#define ELBUS_KIND_BROADCAST        0x13
#define ELBUS_KIND_ACK              0xFE

/* result bytes; the errors are the ElbusError codes */
#define ELBUS_RESULT_OK             0x01

#define ELBUS_QOS_NEEDS_ACK(qos)    (((qos) & 0x01) != 0)
#define ELBUS_QOS_IS_REALTIME(qos)  (((qos) & 0x02) != 0)

typedef enum {
  ELBUS_DECODE_OK,
  ELBUS_DECODE_INCOMPLETE,
  ELBUS_DECODE_ERROR,
} ElbusDecodeStatus;

/* A frame from a client to the broker. For PUBLISH, MESSAGE and BROADCAST,
 * target is the topic, target name or mask: target[target_len] is the 0x00
 * terminator inside the buffer, so target is a C string. payload follows it.
 * For SUBSCRIBE and UNSUBSCRIBE, body holds the masks (see
 * _elbus_codec_next_mask()). A ping (flags byte 0) has no body. An op of
 * NOP with a non-zero QoS has a body parsed like a message's (target and
 * payload are set; a body without the 0x00 is an error), which the broker
 * then ignores without an ack. */
typedef struct {
  guint32        op_id;
  guint8         op;
  guint8         qos;
  const guint8  *body;          /* (nullable): the body, body_len bytes */
  gsize          body_len;
  const char    *target;        /* (nullable): NUL-terminated in the buffer */
  gsize          target_len;
  const guint8  *payload;       /* after the target's terminator */
  gsize          payload_len;
  gsize          frame_len;     /* header + body */
  /* (unowned) (nullable): never set by the decoder; a MESSAGE or BROADCAST
   * an in-process client handed over by reference: the payload's first
   * bytes, held apart, then payload_len more at payload */
  GBytes        *head;
} ElbusClientFrame;

/* A frame from the broker to a client. */
typedef struct {
  guint8         kind;
  guint32        op_id;         /* ACK only */
  guint8         result;        /* ACK only */
  gboolean       realtime;      /* MESSAGE, BROADCAST, PUBLISH */
  const char    *sender;        /* NUL-terminated in the buffer */
  gsize          sender_len;
  const char    *topic;         /* PUBLISH only; NUL-terminated */
  gsize          topic_len;
  const guint8  *payload;
  gsize          payload_len;
  gsize          frame_len;
} ElbusBrokerFrame;

/* handshake */
void              _elbus_codec_encode_greeting     (guint8        out[ELBUS_GREETING_LEN]);
ElbusDecodeStatus _elbus_codec_decode_greeting     (const guint8 *buf,
                                                    gsize         len,
                                                    guint8       *result);
gsize             _elbus_codec_encode_name         (guint8       *out,
                                                    gsize         out_len,
                                                    const char   *name);
ElbusDecodeStatus _elbus_codec_decode_name         (const guint8 *buf,
                                                    gsize         len,
                                                    const char  **name,
                                                    gsize        *name_len,
                                                    gsize        *consumed,
                                                    gsize        *needed);
guint8            _elbus_codec_check_name          (const char   *name,
                                                    gsize         name_len);
gboolean          _elbus_codec_split_secondary     (const char   *name,
                                                    gsize         name_len,
                                                    gsize        *primary_len);

/* client -> broker */
void              _elbus_codec_encode_client_header (guint8       out[ELBUS_CLIENT_HEADER_LEN],
                                                     guint32      op_id,
                                                     guint8       op,
                                                     ElbusQoS     qos,
                                                     guint32      body_len);
ElbusDecodeStatus _elbus_codec_decode_client_frame  (const guint8     *buf,
                                                     gsize             len,
                                                     guint32           max_body,
                                                     ElbusClientFrame *frame,
                                                     gsize            *needed,
                                                     GError          **error);
gboolean          _elbus_codec_next_mask            (const guint8 *body,
                                                     gsize         body_len,
                                                     gsize        *pos,
                                                     const char  **mask,
                                                     gsize        *mask_len);

/* broker -> client */
void              _elbus_codec_encode_broker_header (guint8       out[ELBUS_BROKER_HEADER_LEN],
                                                     guint8       kind,
                                                     guint32      len,
                                                     gboolean     realtime);
void              _elbus_codec_encode_ack           (guint8       out[ELBUS_ACK_LEN],
                                                     guint32      op_id,
                                                     guint8       result);
ElbusDecodeStatus _elbus_codec_decode_broker_frame  (const guint8     *buf,
                                                     gsize             len,
                                                     guint32           max_body,
                                                     ElbusBrokerFrame *frame,
                                                     gsize            *needed,
                                                     GError          **error);

static inline guint32
_elbus_read_u32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

static inline void
_elbus_write_u32 (guint8  *p,
                  guint32  v)
{
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}

G_END_DECLS

/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <glib-object.h>

#include "elbus-version-macros.h"

G_BEGIN_DECLS

/**
 * ElbusQoS:
 * @ELBUS_QOS_NO: no acknowledgement, buffered delivery
 * @ELBUS_QOS_PROCESSED: acknowledged when the broker has processed the frame
 * @ELBUS_QOS_REALTIME: no acknowledgement, flushed to recipients at once
 * @ELBUS_QOS_REALTIME_PROCESSED: acknowledged and flushed at once
 *
 * The delivery guarantee of a frame (docs/protocol.md, section 2). Bit 0 asks
 * for an acknowledgement, bit 1 marks the frame real-time.
 *
 * Since: 1.0
 */
typedef enum {
  ELBUS_QOS_NO = 0,
  ELBUS_QOS_PROCESSED = 1,
  ELBUS_QOS_REALTIME = 2,
  ELBUS_QOS_REALTIME_PROCESSED = 3,
} ElbusQoS;

/**
 * ElbusFrameKind:
 * @ELBUS_FRAME_KIND_PUBLISH: a publication on a topic
 * @ELBUS_FRAME_KIND_MESSAGE: a one-to-one message
 * @ELBUS_FRAME_KIND_BROADCAST: a one-to-many broadcast
 *
 * The kind of a frame delivered by the broker. The values are the wire
 * kind bytes.
 *
 * Since: 1.0
 */
typedef enum {
  ELBUS_FRAME_KIND_PUBLISH = 0x01,
  ELBUS_FRAME_KIND_MESSAGE = 0x12,
  ELBUS_FRAME_KIND_BROADCAST = 0x13,
} ElbusFrameKind;

/**
 * ElbusClientKind:
 * @ELBUS_CLIENT_KIND_INTERNAL: a client living inside the broker's process
 * @ELBUS_CLIENT_KIND_LOCAL_IPC: a client connected over a UNIX socket
 * @ELBUS_CLIENT_KIND_TCP: a client connected over TCP
 * @ELBUS_CLIENT_KIND_WEBSOCKET: a client connected over a WebSocket
 *
 * How a client is connected to a broker.
 *
 * Since: 1.0
 */
typedef enum {
  ELBUS_CLIENT_KIND_INTERNAL,
  ELBUS_CLIENT_KIND_LOCAL_IPC,
  ELBUS_CLIENT_KIND_TCP,
  ELBUS_CLIENT_KIND_WEBSOCKET,
} ElbusClientKind;

/**
 * ElbusStats:
 * @r_frames: frames received (read) by the broker
 * @r_bytes: bytes received, headers included
 * @w_frames: frames written by the broker, acknowledgements and pings included
 * @w_bytes: bytes written, headers included
 *
 * Traffic counters of a broker or of one of its clients, as seen from the
 * broker.
 *
 * Since: 1.0
 */
typedef struct {
  guint64 r_frames;
  guint64 r_bytes;
  guint64 w_frames;
  guint64 w_bytes;
} ElbusStats;

#define ELBUS_TYPE_STATS (elbus_stats_get_type ())

ELBUS_AVAILABLE_IN_1_0
GType       elbus_stats_get_type (void) G_GNUC_CONST;
ELBUS_AVAILABLE_IN_1_0
ElbusStats *elbus_stats_copy     (const ElbusStats *stats);
ELBUS_AVAILABLE_IN_1_0
void        elbus_stats_free     (ElbusStats       *stats);

G_END_DECLS

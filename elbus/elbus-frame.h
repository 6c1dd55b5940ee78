/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <glib-object.h>

#include "elbus-types.h"

G_BEGIN_DECLS

#define ELBUS_TYPE_FRAME (elbus_frame_get_type ())

/**
 * ElbusFrame:
 *
 * One message, broadcast or publication delivered by a broker: who sent
 * it, on which topic, and its payload. Frames are immutable and
 * reference-counted.
 *
 * Since: 1.0
 */
typedef struct _ElbusFrame ElbusFrame;

ELBUS_AVAILABLE_IN_1_0
GType           elbus_frame_get_type           (void) G_GNUC_CONST;

ELBUS_AVAILABLE_IN_1_0
ElbusFrame     *elbus_frame_new                (ElbusFrameKind  kind,
                                                const char     *sender,
                                                const char     *topic,
                                                GBytes         *payload,
                                                gboolean        realtime);
ELBUS_AVAILABLE_IN_1_0
ElbusFrame     *elbus_frame_ref                (ElbusFrame     *frame);
ELBUS_AVAILABLE_IN_1_0
void            elbus_frame_unref              (ElbusFrame     *frame);

ELBUS_AVAILABLE_IN_1_0
ElbusFrameKind  elbus_frame_get_kind           (ElbusFrame     *frame);
ELBUS_AVAILABLE_IN_1_0
const char     *elbus_frame_get_sender         (ElbusFrame     *frame);
ELBUS_AVAILABLE_IN_1_0
const char     *elbus_frame_get_primary_sender (ElbusFrame     *frame);
ELBUS_AVAILABLE_IN_1_0
const char     *elbus_frame_get_topic          (ElbusFrame     *frame);
ELBUS_AVAILABLE_IN_1_0
GBytes         *elbus_frame_get_payload        (ElbusFrame     *frame);
ELBUS_AVAILABLE_IN_1_0
gboolean        elbus_frame_is_realtime        (ElbusFrame     *frame);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ElbusFrame, elbus_frame_unref)

G_END_DECLS

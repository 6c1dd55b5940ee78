/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <glib.h>

#include "elbus-version-macros.h"

G_BEGIN_DECLS

/**
 * ELBUS_MSGPACK_MAX_DEPTH:
 *
 * How deeply MessagePack arrays and maps may nest, counting the outermost
 * one as the first level. [func@Elbus.msgpack_decode] refuses deeper
 * input and [func@Elbus.msgpack_encode_variant] refuses to produce it.
 *
 * This is the fixed limit of the msgpack-c parser underneath.
 *
 * Since: 1.0
 */
#define ELBUS_MSGPACK_MAX_DEPTH 32

ELBUS_AVAILABLE_IN_1_0
GBytes   *elbus_msgpack_encode_variant (GVariant      *value,
                                        GError       **error);

ELBUS_AVAILABLE_IN_1_0
GVariant *elbus_msgpack_decode         (GBytes        *data,
                                        GError       **error);
ELBUS_AVAILABLE_IN_1_0
GVariant *elbus_msgpack_decode_data    (const guint8  *data,
                                        gsize          len,
                                        GError       **error);

G_END_DECLS

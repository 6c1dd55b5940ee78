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
 * Applications may set a lower limit ([func@Elbus.msgpack_decode_full]),
 * not a higher one.
 *
 * Since: 1.0
 */
#define ELBUS_MSGPACK_MAX_DEPTH 32

/**
 * ELBUS_MSGPACK_DEFAULT_MAX_VALUES:
 *
 * How many MessagePack values [func@Elbus.msgpack_decode] takes at most
 * by default: the outermost value, every array element, every map key
 * and every map value count one. A million fits any sane call and keeps
 * the decoded GVariant under about 20 MiB. See
 * [func@Elbus.msgpack_decode_full] for other limits.
 *
 * Since: 1.0
 */
#define ELBUS_MSGPACK_DEFAULT_MAX_VALUES (1024 * 1024)

/**
 * ELBUS_MSGPACK_DEFAULT_MAX_SIZE:
 *
 * How many bytes of MessagePack [func@Elbus.msgpack_decode] takes at most
 * by default: 64 MiB, the default largest frame of `elbusd`.
 *
 * Since: 1.0
 */
#define ELBUS_MSGPACK_DEFAULT_MAX_SIZE (64 * 1024 * 1024)

ELBUS_AVAILABLE_IN_1_0
GBytes   *elbus_msgpack_encode_variant (GVariant      *value,
                                        GError       **error);

ELBUS_AVAILABLE_IN_1_0
GVariant *elbus_msgpack_decode         (GBytes        *data,
                                        GError       **error);
ELBUS_AVAILABLE_IN_1_0
GVariant *elbus_msgpack_decode_full    (GBytes        *data,
                                        guint          max_depth,
                                        gsize          max_values,
                                        gsize          max_size,
                                        GError       **error);
ELBUS_AVAILABLE_IN_1_0
GVariant *elbus_msgpack_decode_data    (const guint8  *data,
                                        gsize          len,
                                        GError       **error);

G_END_DECLS

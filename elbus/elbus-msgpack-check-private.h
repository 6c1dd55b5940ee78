/* SPDX-License-Identifier: MIT */
/*
 * Validation of MessagePack bytes before msgpack-c unpacks them, and the
 * unpacking.
 */
#pragma once

#include <glib.h>
#include <msgpack.h>

G_BEGIN_DECLS

/* Whether @data holds exactly one MessagePack value that
 * elbus_msgpack_decode() converts: no truncation or trailing bytes, no
 * marker 0xc1 or extension value, strings of UTF-8 without NUL, nesting
 * at most ELBUS_MSGPACK_MAX_DEPTH deep, and no container that declares
 * more elements than there are bytes left (msgpack-c allocates room for
 * them before reading any). Sets an %ELBUS_ERROR_DATA error otherwise.
 * Iterative; every round consumes at least one byte. */
gboolean _elbus_msgpack_check (const guint8  *data,
                               gsize          len,
                               GError       **error);

/* _elbus_msgpack_check(), then msgpack_unpack_next(): TRUE with the value
 * in @unpacked (its strings and binaries point into @data). Initializes
 * @unpacked in any case: msgpack_unpacked_destroy() it. */
gboolean _elbus_msgpack_unpack (const guint8      *data,
                                gsize              len,
                                msgpack_unpacked  *unpacked,
                                GError           **error);

G_END_DECLS

/* SPDX-License-Identifier: MIT */
/*
 * Validation of MessagePack bytes before they are converted (by
 * elbus-msgpack.c, or by msgpack-c in elbus-monitor), with limits.
 */
#pragma once

#include <glib.h>
#include <msgpack.h>

G_BEGIN_DECLS

/* The limits of one decoding (see elbus_msgpack_decode_full()). */
typedef struct {
  guint max_depth;    /* at most ELBUS_MSGPACK_MAX_DEPTH */
  gsize max_values;   /* every value counts: the outermost, elements, keys */
  gsize max_size;     /* bytes of MessagePack */
} ElbusMsgpackLimits;

/* What pass 1 learns for pass 2: one byte of key flags per map (data is
 * g_malloc()ed; not a GByteArray, whose struct GLib before 2.76 takes
 * from the slice allocator), the number of values and the bytes of str
 * and bin contents, which bound the size of the result. */
typedef struct {
  guint8 *data;
  gsize   len;
  gsize   cap;
  gsize   values;
  gsize   content_bytes;
} ElbusMsgpackMapKeys;

/* What the keys of one map are, as flags (_elbus_msgpack_check_full()
 * records one byte per map, in the order the maps begin). */
enum {
  ELBUS_MSGPACK_KEY_STR = 1 << 0,
  ELBUS_MSGPACK_KEY_INT = 1 << 1,
  ELBUS_MSGPACK_KEY_BOOL = 1 << 2,
  ELBUS_MSGPACK_KEY_FLOAT = 1 << 3,
  ELBUS_MSGPACK_KEY_OTHER = 1 << 4,
  ELBUS_MSGPACK_KEY_NEGATIVE = 1 << 5,        /* an int below 0 */
  ELBUS_MSGPACK_KEY_ABOVE_INT64 = 1 << 6,     /* an int above G_MAXINT64 */
};

/* Whether @data holds exactly one MessagePack value that
 * elbus_msgpack_decode() converts: no truncation or trailing bytes, no
 * marker 0xc1 or extension value, strings of UTF-8 without NUL, and
 * within @limits (nesting, number of values, size; a container that
 * declares more elements than there are bytes left, or than the limit of
 * values allows, is refused at its header, before anything else is
 * read). Sets an %ELBUS_ERROR_DATA error otherwise, and *@over_limit
 * (optional) to whether a limit was what failed. Fills @map_keys
 * (optional) with one byte of ELBUS_MSGPACK_KEY_* flags per map.
 * Iterative, allocates nothing but @map_keys; every round consumes at
 * least one byte. */
gboolean _elbus_msgpack_check_full (const guint8              *data,
                                    gsize                      len,
                                    const ElbusMsgpackLimits  *limits,
                                    ElbusMsgpackMapKeys       *map_keys,
                                    gboolean                  *over_limit,
                                    GError                   **error);

/* _elbus_msgpack_check_full() with the default limits. */
gboolean _elbus_msgpack_check (const guint8  *data,
                               gsize          len,
                               GError       **error);

/* _elbus_msgpack_check(), then msgpack_unpack_next(): TRUE with the value
 * in @unpacked (its strings and binaries point into @data). Initializes
 * @unpacked in any case: msgpack_unpacked_destroy() it. For elbus-monitor,
 * which reads its events with msgpack-c. */
gboolean _elbus_msgpack_unpack (const guint8      *data,
                                gsize              len,
                                msgpack_unpacked  *unpacked,
                                GError           **error);

G_END_DECLS

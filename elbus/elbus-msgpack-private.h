/* SPDX-License-Identifier: MIT */
/*
 * MessagePack decoding with limits, for the library's own callers (the
 * RPC layer answers a call that passes a limit differently from one that
 * is not MessagePack).
 */
#pragma once

#include <glib.h>

#include "elbus-msgpack-check-private.h"

G_BEGIN_DECLS

/* elbus_msgpack_decode_full() with @limits as they are (no 0 for a
 * default); *@over_limit (optional) tells whether a limit was what
 * failed. Returns a full reference. */
GVariant *_elbus_msgpack_decode_limited (const guint8              *data,
                                         gsize                      len,
                                         const ElbusMsgpackLimits  *limits,
                                         gboolean                  *over_limit,
                                         GError                   **error);

G_END_DECLS

/* SPDX-License-Identifier: MIT */
/*
 * Translation of the library's own messages (GError messages, log lines a
 * user reads), as GLib and libsoup do it: _() looks a message up in the
 * library's gettext domain, which the library binds itself on first use,
 * so that an application that never calls bindtextdomain() still shows
 * translated errors. Only for the library's .c files: neither the public
 * headers nor the introspection scanner see it.
 *
 * Debug-level messages and wire or protocol tokens stay untranslated.
 */
#pragma once

#if !defined(ELBUS_COMPILATION)
#error "elbus-i18n-private.h is for the library's own sources"
#endif

#include <glib.h>

G_BEGIN_DECLS

const char *_elbus_gettext (const char *msgid) G_GNUC_FORMAT (1);

#define _(String) _elbus_gettext (String)
#define N_(String) (String)

G_END_DECLS

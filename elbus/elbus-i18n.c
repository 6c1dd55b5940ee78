/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <libintl.h>

#include "elbus-i18n-private.h"

/* The library's messages live in the project's one catalogue, the
 * GETTEXT_PACKAGE (`elbus`) domain that po/ builds and the tools bind too:
 * one set of German (and later other) translations to keep and install,
 * and a tool's message and the library error it quotes come from the same
 * file. The library binds the domain to the install LOCALEDIR itself, once
 * and thread-safely, in UTF-8 (GError messages are UTF-8); it never calls
 * textdomain(), so the application's default domain is left alone. */
static gpointer
bind_domain (gpointer data)
{
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  return NULL;
}

/* Backs _(): @msgid translated into the user's language. */
const char *
_elbus_gettext (const char *msgid)
{
  static GOnce once = G_ONCE_INIT;

  g_once (&once, bind_domain, NULL);
  return g_dgettext (GETTEXT_PACKAGE, msgid);
}

/* SPDX-License-Identifier: MIT */
/*
 * The library translates its own messages: it binds its gettext domain
 * itself (to the install LOCALEDIR, in UTF-8, leaving the application's
 * default domain alone) and looks its messages up there. The German half
 * points the domain at the catalogue built into the build tree (po/) and
 * asks for German through LANGUAGE under C.UTF-8, a locale every glibc
 * has built in, so it needs no generated de_DE locale.
 */
#include "config.h"

#include <libintl.h>
#include <locale.h>

#include <glib.h>

#include <elbus/elbus.h>

static char *
network_error (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  g_autoptr(GError) error = NULL;

  g_assert_false (elbus_client_policy_add_network (policy, "10.0.0.0/129", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  return g_strdup (error->message);
}

/* A listener on a port that does not exist */
static char *
listen_error (void)
{
  g_autoptr(ElbusBroker) broker = elbus_broker_new ();
  g_autoptr(GError) error = NULL;

  g_assert_false (elbus_broker_listen_tcp (broker, "127.0.0.1:99999", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  return g_strdup (error->message);
}

/* MessagePack beyond the size limit a caller set */
static char *
msgpack_limit_error (void)
{
  g_autoptr(GBytes) data = g_bytes_new_static ("\x93\x01\x02\x03", 4);
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GError) error = NULL;

  value = elbus_msgpack_decode_full (data, 8, 100, 3, &error);
  g_assert_null (value);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
  return g_strdup (error->message);
}

static void
test_library_messages (void)
{
  g_autofree char *po_dir = g_test_build_filename (G_TEST_BUILT, "..", "po", NULL);
  g_autofree char *catalogue = g_build_filename (po_dir, "de", "LC_MESSAGES",
                                                 GETTEXT_PACKAGE ".mo", NULL);
  g_autofree char *english = NULL;
  g_autofree char *german = NULL;
  g_autofree char *listen_en = NULL;
  g_autofree char *listen_de = NULL;
  g_autofree char *limit_en = NULL;
  g_autofree char *limit_de = NULL;

  /* English in the C locale; the first message binds the domain */
  g_unsetenv ("LANGUAGE");
  g_assert_nonnull (setlocale (LC_ALL, "C"));
  english = network_error ();
  g_assert_cmpstr (english, ==,
                   "invalid network ‘10.0.0.0/129’: the prefix length is not a number "
                   "from 0 to 128");
  g_assert_cmpstr (elbus_error_code_to_string (ELBUS_ERROR_ACCESS), ==, "access denied");
  listen_en = listen_error ();
  g_assert_cmpstr (listen_en, ==, "“127.0.0.1:99999” is not a HOST:PORT address");
  limit_en = msgpack_limit_error ();
  g_assert_cmpstr (limit_en, ==,
                   "the MessagePack data is 4 bytes long, more than the limit of 3");

  /* bound by the library, not by this program */
  g_assert_cmpstr (bindtextdomain (GETTEXT_PACKAGE, NULL), ==, LOCALEDIR);
  g_assert_cmpstr (bind_textdomain_codeset (GETTEXT_PACKAGE, NULL), ==, "UTF-8");
  g_assert_cmpstr (textdomain (NULL), ==, "messages");

  /* German from the build tree's catalogue */
  g_assert_true (g_file_test (catalogue, G_FILE_TEST_IS_REGULAR));
  if (setlocale (LC_ALL, "C.UTF-8") == NULL)
    {
      g_test_skip ("no C.UTF-8 locale");
      return;
    }
  bindtextdomain (GETTEXT_PACKAGE, po_dir);
  g_setenv ("LANGUAGE", "de", TRUE);
  german = network_error ();
  g_assert_cmpstr (german, ==,
                   "ungültiges Netzwerk „10.0.0.0/129“: Die Präfixlänge ist keine Zahl "
                   "von 0 bis 128");
  g_assert_cmpstr (elbus_error_code_to_string (ELBUS_ERROR_ACCESS), ==, "Zugriff verweigert");
  listen_de = listen_error ();
  g_assert_cmpstr (listen_de, ==, "„127.0.0.1:99999“ ist keine HOST:PORT-Adresse");
  limit_de = msgpack_limit_error ();
  g_assert_cmpstr (limit_de, ==,
                   "Die MessagePack-Daten sind 4 Bytes lang, mehr als die Grenze von 3");

  g_unsetenv ("LANGUAGE");
  setlocale (LC_ALL, "C");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/i18n/library-messages", test_library_messages);

  return g_test_run ();
}

/* SPDX-License-Identifier: MIT */
/*
 * elbus-bench-dbus: the D-Bus side of a side-by-side comparison.
 *
 * The same work as `elbus benchmark`'s send+recv.qos.no stage, on D-Bus:
 * one GDBus connection to a private dbus-daemon sends unicast signals
 * carrying a PAYLOAD-byte array to itself and counts them as they come
 * back, with at most --window in flight. Reports messages per second and
 * the daemon's CPU time. tests/bench/compare-dbus.sh runs this and the
 * elbus stage back to back and prints the ratio.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

static gint64 opt_count = 200000;
static gint   opt_payload_size = 100;
static gint   opt_window = 4096;

static GOptionEntry entries[] = {
  { "count", 'n', 0, G_OPTION_ARG_INT64, &opt_count, "messages (default 200000)", "N" },
  { "payload-size", 's', 0, G_OPTION_ARG_INT, &opt_payload_size,
    "payload bytes per message (default 100)", "BYTES" },
  { "window", 'w', 0, G_OPTION_ARG_INT, &opt_window,
    "most messages in flight (default 4096)", "N" },
  { NULL }
};

static gssize received;     /* atomic */
static gssize bad;          /* atomic */

/* Runs in GDBus's worker thread: counts our signals and drops them, so
 * that nothing is dispatched to a main context (the cheapest a GDBus
 * receiver can be). */
static GDBusMessage *
filter_cb (GDBusConnection *connection,
           GDBusMessage    *message,
           gboolean         incoming,
           gpointer         user_data)
{
  if (!incoming || g_dbus_message_get_message_type (message) != G_DBUS_MESSAGE_TYPE_SIGNAL ||
      g_strcmp0 (g_dbus_message_get_member (message), "Flood") != 0)
    return message;

  {
    GVariant *body = g_dbus_message_get_body (message);
    g_autoptr(GVariant) bytes = body != NULL ? g_variant_get_child_value (body, 0) : NULL;

    if (bytes == NULL || g_variant_get_size (bytes) != (gsize) opt_payload_size)
      g_atomic_pointer_add (&bad, 1);
  }
  g_atomic_pointer_add (&received, 1);
  g_object_unref (message);
  return NULL;
}

static double
cpu_seconds (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *text = NULL;
  g_auto(GStrv) fields = NULL;
  const char *after;

  if (!g_file_get_contents (path, &text, NULL, NULL) || (after = strrchr (text, ')')) == NULL)
    return -1;
  fields = g_strsplit (after + 2, " ", -1);
  if (g_strv_length (fields) < 13)
    return -1;
  return (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) /
         sysconf (_SC_CLK_TCK);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("— flood D-Bus like elbus benchmark's send+recv.qos.no");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *listen = NULL;
  g_autofree char *address = NULL;
  g_autoptr(GSubprocess) daemon = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(GVariant) payload = NULL;
  const char *self_name;
  GPid pid;
  gint64 start, elapsed, sent = 0;
  double cpu_before, cpu_after;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }

  dir = g_dir_make_tmp ("elbus-bench-dbus-XXXXXX", &error);
  g_assert_no_error (error);
  listen = g_strdup_printf ("--address=unix:path=%s/bus", dir);
  daemon = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "dbus-daemon", "--session",
                             "--nofork", "--print-address", listen, NULL);
  if (daemon == NULL)
    {
      g_printerr ("cannot start dbus-daemon: %s\n", error->message);
      return 1;
    }
  pid = (GPid) g_ascii_strtoll (g_subprocess_get_identifier (daemon), NULL, 10);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (daemon));
  address = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);

  connection = g_dbus_connection_new_for_address_sync (address,
                                                       G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                       G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                       NULL, NULL, &error);
  if (connection == NULL)
    {
      g_printerr ("cannot connect to dbus-daemon: %s\n", error->message);
      g_subprocess_force_exit (daemon);
      return 1;
    }
  self_name = g_dbus_connection_get_unique_name (connection);
  g_dbus_connection_add_filter (connection, filter_cb, NULL, NULL);
  {
    g_autofree guint8 *data = g_malloc0 (opt_payload_size);

    payload = g_variant_ref_sink (g_variant_new ("(@ay)",
                                                 g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data,
                                                                            opt_payload_size, 1)));
  }

  cpu_before = cpu_seconds (pid);
  start = g_get_monotonic_time ();
  while (sent < opt_count)
    {
      g_autoptr(GDBusMessage) message = NULL;

      if (sent - g_atomic_pointer_get (&received) >= opt_window)
        {
          g_thread_yield ();
          continue;
        }
      message = g_dbus_message_new_signal ("/org/elbus/Bench", "org.elbus.Bench", "Flood");
      g_dbus_message_set_destination (message, self_name);
      g_dbus_message_set_body (message, payload);
      if (!g_dbus_connection_send_message (connection, message, G_DBUS_SEND_MESSAGE_FLAGS_NONE,
                                           NULL, &error))
        {
          g_printerr ("send failed: %s\n", error->message);
          return 1;
        }
      sent++;
    }
  while (g_atomic_pointer_get (&received) < opt_count)
    {
      if (g_get_monotonic_time () - start > 120 * G_USEC_PER_SEC)
        {
          g_printerr ("only %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " messages came back\n",
                      (gint64) g_atomic_pointer_get (&received), opt_count);
          return 1;
        }
      g_usleep (100);
    }
  elapsed = MAX (1, g_get_monotonic_time () - start);
  cpu_after = cpu_seconds (pid);

  if (g_atomic_pointer_get (&bad) != 0)
    {
      g_printerr ("%" G_GINT64_FORMAT " messages had a wrong payload\n",
                  (gint64) g_atomic_pointer_get (&bad));
      return 1;
    }

  g_print ("dbus send+recv: %" G_GINT64_FORMAT " messages of %d bytes in %.3f s: %.0f msgs/s; "
           "dbus-daemon CPU %.3f s, %.2f us per message\n",
           opt_count, opt_payload_size, elapsed / 1e6, opt_count * 1e6 / elapsed,
           cpu_after - cpu_before, (cpu_after - cpu_before) * 1e6 / opt_count);

  g_dbus_connection_close_sync (connection, NULL, NULL);
  g_subprocess_send_signal (daemon, SIGTERM);
  g_subprocess_wait (daemon, NULL, NULL);
  {
    g_autofree char *sock = g_build_filename (dir, "bus", NULL);

    g_unlink (sock);
    g_rmdir (dir);
  }

  return 0;
}

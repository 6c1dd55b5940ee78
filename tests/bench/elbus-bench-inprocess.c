/* SPDX-License-Identifier: MIT */
/* Round trip (one in flight) and throughput (a window of acked sends) of
 * one client talking to an in-process echo client on the broker's thread,
 * side by side: the client in-process on the broker's thread and context
 * (same-thread), in-process on a worker thread with its own context
 * (cross-thread), and on a worker thread over a UNIX socket.
 *
 *   elbus-bench-inprocess [ROUND_TRIPS [MESSAGES [same|cross|socket]]]
 *
 * (the third argument runs that stage alone, for a profiler)
 */
#include "config.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>

#include <elbus/elbus.h>

#define WINDOW 256

typedef enum {
  MODE_SAME,
  MODE_CROSS,
  MODE_SOCKET,
} Mode;

typedef struct {
  ElbusBroker *broker;
  const char  *path;
  Mode         mode;
  guint        round_trips;
  guint        messages;
  double       rtt_us;           /* results */
  double       rate;
  gint         done;
  /* the client's side */
  guint        pongs;
  guint        acked;
  guint        in_flight;
} Run;

static void
on_pong (ElbusClient *client,
         ElbusFrame  *frame,
         Run         *run)
{
  run->pongs++;
}

/* the echo client, on the broker's thread */
static void
on_ping (ElbusClient *client,
         ElbusFrame  *frame,
         gpointer     user_data)
{
  elbus_client_send_async (client, elbus_frame_get_sender (frame),
                           elbus_frame_get_payload (frame), ELBUS_QOS_NO, NULL, NULL, NULL);
}

static void
acked_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  Run *run = user_data;
  g_autoptr(GError) error = NULL;

  if (!elbus_client_send_finish (ELBUS_CLIENT (source), result, &error))
    g_error ("send: %s", error->message);
  run->acked++;
  run->in_flight--;
}

static void
measure (Run *run)
{
  GMainContext *context = g_main_context_get_thread_default ();
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GBytes) payload = g_bytes_new_static ("0123456789abcdef", 16);
  g_autofree char *name = g_strdup_printf ("bench.client%d", run->mode);
  gint64 start;
  guint sent = 0;

  if (run->mode == MODE_SOCKET)
    client = elbus_client_new_sync (run->path, name, NULL, &error);
  else
    client = elbus_broker_register_client (run->broker, name, &error);
  if (client == NULL)
    g_error ("client: %s", error->message);
  g_signal_connect (client, "message", G_CALLBACK (on_pong), run);

  start = g_get_monotonic_time ();
  for (guint i = 0; i < run->round_trips; i++)
    {
      elbus_client_send_async (client, "bench.echo", payload, ELBUS_QOS_NO, NULL, NULL, NULL);
      while (run->pongs <= i)
        g_main_context_iteration (context, TRUE);
    }
  run->rtt_us = (double) (g_get_monotonic_time () - start) / run->round_trips;

  g_signal_handlers_disconnect_by_func (client, on_pong, run);
  start = g_get_monotonic_time ();
  while (run->acked < run->messages)
    {
      while (sent < run->messages && run->in_flight < WINDOW)
        {
          elbus_client_send_async (client, "bench.sink", payload, ELBUS_QOS_PROCESSED, NULL,
                                   acked_cb, run);
          run->in_flight++;
          sent++;
        }
      g_main_context_iteration (context, TRUE);
    }
  run->rate = run->messages / ((double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);

  elbus_client_close (client);
}

static gpointer
worker (gpointer user_data)
{
  Run *run = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();

  g_main_context_push_thread_default (context);
  measure (run);
  while (g_main_context_iteration (context, FALSE))
    ;
  g_main_context_pop_thread_default (context);
  g_atomic_int_set (&run->done, TRUE);
  g_main_context_wakeup (NULL);
  return NULL;
}

int
main (int    argc,
      char **argv)
{
  static const char *names[] = { "same-thread in-process", "cross-thread in-process",
                                 "UNIX socket" };
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusBroker) broker = elbus_broker_new ();
  g_autoptr(ElbusClient) echo = NULL;
  g_autoptr(ElbusClient) sink = NULL;
  g_autofree char *dir = g_dir_make_tmp ("elbus-bench-XXXXXX", &error);
  g_autofree char *path = NULL;
  guint round_trips = argc > 1 ? atoi (argv[1]) : 20000;
  guint messages = argc > 2 ? atoi (argv[2]) : 200000;
  static const char *only[] = { "same", "cross", "socket" };

  g_assert_no_error (error);
  path = g_build_filename (dir, "bus.sock", NULL);
  if (!elbus_broker_listen_unix (broker, path, &error))
    g_error ("listen: %s", error->message);
  echo = elbus_broker_register_client (broker, "bench.echo", &error);
  g_assert_no_error (error);
  g_signal_connect (echo, "message", G_CALLBACK (on_ping), NULL);
  sink = elbus_broker_register_client (broker, "bench.sink", &error);
  g_assert_no_error (error);

  printf ("%-26s %15s %16s\n", "client", "round trip µs", "acked msgs/s");
  for (Mode mode = MODE_SAME; mode <= MODE_SOCKET; mode++)
    {
      Run run = { .broker = broker, .path = path, .mode = mode, .round_trips = round_trips,
                  .messages = messages };

      if (argc > 3 && !g_str_equal (argv[3], only[mode]))
        continue;
      if (mode == MODE_SAME)
        measure (&run);
      else
        {
          GThread *thread = g_thread_new ("bench", worker, &run);

          while (!g_atomic_int_get (&run.done))
            g_main_context_iteration (NULL, TRUE);
          g_thread_join (thread);
        }
      while (g_main_context_iteration (NULL, FALSE))
        ;
      printf ("%-26s %14.2f %16.0f\n", names[mode], run.rtt_us, run.rate);
    }

  g_clear_object (&echo);
  g_clear_object (&sink);
  elbus_broker_close (broker);
  g_unlink (path);
  g_rmdir (dir);
  return 0;
}

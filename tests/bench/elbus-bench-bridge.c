/* SPDX-License-Identifier: MIT */
/*
 * elbus-bench-bridge: what a pair of elbus-bridges and Mosquitto add to a
 * publication. Spawns Mosquitto on a free loopback port, two elbusd (A
 * and B) on temporary sockets and two elbus-bridge processes (A exports
 * bench/#, B imports it), then measures from this process, a client of
 * both brokers:
 *
 *   - latency: one publication at a time on A, timed until it arrives on
 *     B (median and 99th percentile), and the same with the publisher
 *     and the subscriber on one broker, for the difference;
 *   - throughput: --count publications on A with at most --window in
 *     flight, publications per second arriving on B.
 *
 * Every publication must arrive exactly once, or the run fails.
 */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "elbus-test-util.h"

static char *opt_bridge = NULL;
static char *opt_mosquitto = NULL;
static gint opt_count = 20000;
static gint opt_pings = 2000;
static gint opt_payload_size = 100;
static gint opt_window = 1000;
static gint opt_qos = 0;

static GOptionEntry entries[] = {
  { "bridge", 0, 0, G_OPTION_ARG_FILENAME, &opt_bridge,
    "elbus-bridge to spawn (default: $ELBUS_BRIDGE, else ../../tools/elbus-bridge next to this "
    "program)", "PATH" },
  { "mosquitto", 0, 0, G_OPTION_ARG_FILENAME, &opt_mosquitto,
    "mosquitto to spawn (default /usr/sbin/mosquitto)", "PATH" },
  { "count", 'n', 0, G_OPTION_ARG_INT, &opt_count,
    "publications for the throughput run (default 20000)", "N" },
  { "pings", 'p', 0, G_OPTION_ARG_INT, &opt_pings,
    "publications for the latency runs (default 2000)", "N" },
  { "payload-size", 's', 0, G_OPTION_ARG_INT, &opt_payload_size,
    "payload bytes (default 100)", "BYTES" },
  { "window", 'w', 0, G_OPTION_ARG_INT, &opt_window,
    "most publications in flight in the throughput run (default 1000)", "N" },
  { "mqtt-qos", 'q', 0, G_OPTION_ARG_INT, &opt_qos,
    "--mqtt-qos of the bridges (default 0)", "QOS" },
  { NULL }
};

static void
child_setup (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static GPid
spawn (const char * const *argv)
{
  g_autoptr(GError) error = NULL;
  int null_fd = g_open ("/dev/null", O_WRONLY | O_CLOEXEC, 0);
  GPid pid;

  g_spawn_async_with_fds (NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, child_setup,
                          NULL, &pid, -1, null_fd, null_fd, &error);
  close (null_fd);
  if (error != NULL)
    g_error ("cannot run %s: %s", argv[0], error->message);
  return pid;
}

static void
stop (GPid pid)
{
  kill (pid, SIGTERM);
  waitpid (pid, NULL, 0);
  g_spawn_close_pid (pid);
}

/* ---- the runs ----------------------------------------------------------- */

typedef struct {
  ElbusClient *pub;
  const char *topic;
  GBytes *payload;
  guint64 received;
  guint64 sent;
  gint64 sent_at;
  GArray *latencies;     /* (element-type gint64): µs */
  gboolean done;
  gboolean pinging;
} Run;

static void
publish_next (Run *run)
{
  run->sent_at = g_get_monotonic_time ();
  run->sent++;
  elbus_client_publish_async (run->pub, run->topic, run->payload, ELBUS_QOS_NO, NULL, NULL,
                              NULL);
}

static void
received_cb (ElbusClient *client,
             ElbusFrame  *frame,
             gpointer     user_data)
{
  Run *run = user_data;

  if (g_bytes_get_size (elbus_frame_get_payload (frame)) != (gsize) opt_payload_size)
    g_error ("a payload of %zu bytes", g_bytes_get_size (elbus_frame_get_payload (frame)));
  run->received++;
  if (run->pinging)
    {
      gint64 latency = g_get_monotonic_time () - run->sent_at;

      g_array_append_val (run->latencies, latency);
      if (run->received == (guint64) opt_pings)
        run->done = TRUE;
      else
        publish_next (run);
      return;
    }
  if (run->received == (guint64) opt_count)
    run->done = TRUE;
}

static gboolean
flood_cb (gpointer user_data)
{
  Run *run = user_data;

  while (run->sent < (guint64) opt_count && run->sent - run->received < (guint64) opt_window)
    {
      run->sent++;
      elbus_client_publish_async (run->pub, run->topic, run->payload, ELBUS_QOS_NO, NULL, NULL,
                                  NULL);
    }
  return run->sent < (guint64) opt_count ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a;
  gint64 y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static void
spin_until_done (Run *run)
{
  GMainContext *context = g_main_context_default ();
  gint64 deadline = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;

  while (!run->done)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("only %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " arrived", run->received,
                 run->sent);
      g_main_context_iteration (context, TRUE);
    }
}

/* One at a time from @pub to @sub; prints the median and p99 in µs and
 * returns the median. */
static gint64
latency (const char  *label,
         ElbusClient *pub,
         const char  *topic,
         ElbusClient *sub,
         GBytes      *payload)
{
  Run run = { pub, topic, payload, 0, 0, 0, g_array_new (FALSE, FALSE, sizeof (gint64)), FALSE, TRUE };
  gulong id = g_signal_connect (sub, "publication", G_CALLBACK (received_cb), &run);
  gint64 median;
  gint64 p99;

  publish_next (&run);
  spin_until_done (&run);
  g_signal_handler_disconnect (sub, id);
  g_array_sort (run.latencies, compare_gint64);
  median = g_array_index (run.latencies, gint64, run.latencies->len / 2);
  p99 = g_array_index (run.latencies, gint64, run.latencies->len * 99 / 100);
  printf ("%-34s median %6" G_GINT64_FORMAT " µs   p99 %6" G_GINT64_FORMAT " µs\n", label,
          median, p99);
  g_array_unref (run.latencies);
  return median;
}

static void
throughput (ElbusClient *pub,
            ElbusClient *sub,
            GBytes      *payload)
{
  Run run = { pub, "bench/x", payload, 0, 0, 0, NULL, FALSE, FALSE };
  gulong id = g_signal_connect (sub, "publication", G_CALLBACK (received_cb), &run);
  gint64 start = g_get_monotonic_time ();
  double seconds;

  g_idle_add (flood_cb, &run);
  spin_until_done (&run);
  seconds = (g_get_monotonic_time () - start) / 1e6;
  g_signal_handler_disconnect (sub, id);
  /* nothing more may come: each publication exactly once */
  elbus_test_spin_for (200);
  if (run.received != (guint64) opt_count)
    g_error ("%" G_GUINT64_FORMAT " arrived for %d published", run.received, opt_count);
  printf ("%-34s %8.0f publications/s (%d of %d B in %.2f s)\n", "A -> bridge -> MQTT -> bridge -> B",
          opt_count / seconds, opt_count, opt_payload_size, seconds);
}

static ElbusClient *
connect_client (const char *path,
                const char *name,
                const char *mask)
{
  g_autoptr(GError) error = NULL;
  ElbusClient *client = elbus_client_new_sync (path, name, NULL, &error);
  const char *masks[] = { mask, NULL };

  if (client == NULL)
    g_error ("cannot connect to %s: %s", path, error->message);
  if (mask != NULL && !elbus_client_subscribe_sync (client, masks, ELBUS_QOS_PROCESSED, NULL,
                                                    &error))
    g_error ("cannot subscribe: %s", error->message);
  return client;
}

static gboolean
warm_cb (gpointer user_data)
{
  Run *run = user_data;

  elbus_client_publish_async (run->pub, run->topic, run->payload, ELBUS_QOS_NO, NULL, NULL,
                              NULL);
  return G_SOURCE_CONTINUE;
}

static void
warm_received_cb (ElbusClient *client,
                  ElbusFrame  *frame,
                  gpointer     user_data)
{
  ((Run *) user_data)->done = TRUE;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *conf = NULL;
  g_autofree char *text = NULL;
  g_autofree char *path_a = NULL;
  g_autofree char *path_b = NULL;
  g_autofree char *mqtt = NULL;
  g_autofree char *qos = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(ElbusClient) pub_a = NULL;
  g_autoptr(ElbusClient) sub_a = NULL;
  g_autoptr(ElbusClient) sub_b = NULL;
  const char *elbusd;
  guint16 port;
  GPid pids[5];
  gint64 direct;
  gint64 bridged;

  context = g_option_context_new ("— latency and throughput through a pair of elbus-bridges");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  signal (SIGPIPE, SIG_IGN);
  if (opt_bridge == NULL)
    opt_bridge = g_strdup (g_getenv ("ELBUS_BRIDGE"));
  if (opt_bridge == NULL)
    {
      g_autofree char *here = g_path_get_dirname (argv[0]);
      opt_bridge = g_build_filename (here, "..", "..", "tools", "elbus-bridge", NULL);
    }
  if (opt_mosquitto == NULL)
    opt_mosquitto = g_strdup ("/usr/sbin/mosquitto");
  if (g_getenv ("ELBUSD") == NULL)
    {
      g_autofree char *here = g_path_get_dirname (argv[0]);
      g_autofree char *d = g_build_filename (here, "..", "..", "tools", "elbusd", NULL);
      g_setenv ("ELBUSD", d, TRUE);
    }
  elbusd = g_getenv ("ELBUSD");

  dir = g_dir_make_tmp ("elbus-bench-bridge-XXXXXX", &error);
  g_assert_no_error (error);
  port = elbus_test_pick_free_port ();
  conf = g_build_filename (dir, "mosquitto.conf", NULL);
  text = g_strdup_printf ("listener %u 127.0.0.1\nallow_anonymous true\npersistence false\n%s",
                          port, geteuid () == 0 ? "user root\n" : "");
  g_file_set_contents (conf, text, -1, &error);
  g_assert_no_error (error);
  path_a = g_build_filename (dir, "a.sock", NULL);
  path_b = g_build_filename (dir, "b.sock", NULL);
  mqtt = g_strdup_printf ("127.0.0.1:%u", port);
  qos = g_strdup_printf ("%d", opt_qos);

  pids[0] = spawn ((const char *[]) { opt_mosquitto, "-c", conf, NULL });
  pids[1] = spawn ((const char *[]) { elbusd, "-B", path_a, NULL });
  pids[2] = spawn ((const char *[]) { elbusd, "-B", path_b, NULL });
  if (!elbus_test_wait_for_socket (mqtt, pids[0], 10000) ||
      !elbus_test_wait_for_socket (path_a, pids[1], 10000) ||
      !elbus_test_wait_for_socket (path_b, pids[2], 10000))
    g_error ("mosquitto or elbusd did not start");
  pids[3] = spawn ((const char *[]) { opt_bridge, path_a, "--mqtt", mqtt, "-n", "bridge.a",
                                      "--export", "bench/#", "--mqtt-qos", qos, NULL });
  pids[4] = spawn ((const char *[]) { opt_bridge, path_b, "--mqtt", mqtt, "-n", "bridge.b",
                                      "--import", "bench/#", "--mqtt-qos", qos, NULL });

  payload = g_bytes_new_take (g_malloc0 (opt_payload_size), opt_payload_size);
  pub_a = connect_client (path_a, "bench.pub", NULL);
  /* direct/x is not exported: the one-broker run stays on A */
  sub_a = connect_client (path_a, "bench.sub.a", "direct/x");
  sub_b = connect_client (path_b, "bench.sub.b", "bench/x");

  /* until the path through both bridges is up */
  {
    Run warm = { pub_a, "bench/warm", payload, 0, 0, 0, NULL, FALSE, FALSE };
    const char *masks[] = { "bench/warm", NULL };
    gulong id = g_signal_connect (sub_b, "publication", G_CALLBACK (warm_received_cb), &warm);

    elbus_client_subscribe_sync (sub_b, masks, ELBUS_QOS_PROCESSED, NULL, NULL);
    guint timer = g_timeout_add (20, warm_cb, &warm);

    spin_until_done (&warm);
    g_source_remove (timer);
    g_signal_handler_disconnect (sub_b, id);
    elbus_client_unsubscribe_sync (sub_b, masks, ELBUS_QOS_PROCESSED, NULL, NULL);
    elbus_test_spin_for (300);
  }
  printf ("payload %d B, MQTT QoS %d, one host, loopback\n", opt_payload_size, opt_qos);
  direct = latency ("A -> A (one elbusd)", pub_a, "direct/x", sub_a, payload);
  bridged = latency ("A -> bridges + MQTT -> B", pub_a, "bench/x", sub_b, payload);
  printf ("%-34s median %6" G_GINT64_FORMAT " µs\n", "added by the bridge pair + MQTT",
          bridged - direct);
  throughput (pub_a, sub_b, payload);

  g_clear_object (&pub_a);
  g_clear_object (&sub_a);
  g_clear_object (&sub_b);
  for (int i = 4; i >= 0; i--)
    stop (pids[i]);
  g_remove (conf);
  g_remove (path_a);
  g_remove (path_b);
  g_rmdir (dir);
  g_free (opt_bridge);
  g_free (opt_mosquitto);
  return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * elbus-bench-scale: what idle clients cost the broker.
 *
 * Spawns elbusd on a temporary UNIX socket (or uses --address with
 * --broker-pid) and, for each N of --clients (default 1000,10000):
 *
 *  - the one-at-a-time rpc.call round trip to .broker (method "test",
 *    the median of --calls) with no idle client connected;
 *  - connects and registers N idle clients, made here with raw
 *    non-blocking sockets (a window of handshakes in flight, the greeting
 *    echo and the name sent at once), and prints the seconds each half
 *    took;
 *  - the broker's RSS per idle client (VmRSS before and after);
 *  - the round trip again with the N clients connected;
 *  - with --fanout (default 1000) subscribers: one publisher's QoS 0
 *    publications fanned out to them, frames delivered per second and the
 *    broker's CPU per delivery (the median of 5 runs), without and with
 *    the N idle clients beside them.
 *
 * The fd limit is raised as far as needed (as root, the hard limit too),
 * and elbusd is spawned with --max-clients 0 and a long --timeout, so that
 * no keep-alive ping lands in the measured part. A benchmark, not a test:
 * it fails only when the broker misbehaves (a refused registration, a
 * missing frame).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>

#include "elbus-bench-util.h"
#include "elbus-test-util.h"

static char    *opt_elbusd = NULL;
static char    *opt_address = NULL;
static gint     opt_broker_pid = 0;
static char    *opt_clients = NULL;
static gint     opt_fanout = 1000;
static gint     opt_calls = 2000;
static gint     opt_publications = 1000;
static gint     opt_window = 256;

static GOptionEntry entries[] = {
  { "elbusd", 0, 0, G_OPTION_ARG_FILENAME, &opt_elbusd,
    "elbusd to spawn (default: $ELBUSD, else ../../tools/elbusd next to this program)", "PATH" },
  { "address", 'a', 0, G_OPTION_ARG_STRING, &opt_address,
    "use the running broker at this UNIX socket path instead of spawning one", "PATH" },
  { "broker-pid", 'p', 0, G_OPTION_ARG_INT, &opt_broker_pid,
    "the broker's process id (with --address), for its CPU time and RSS", "PID" },
  { "clients", 'n', 0, G_OPTION_ARG_STRING, &opt_clients,
    "idle clients to connect, comma-separated runs (default 1000,10000)", "N,..." },
  { "fanout", 'f', 0, G_OPTION_ARG_INT, &opt_fanout,
    "subscribers for the fan-out, 0 to skip it (default 1000)", "N" },
  { "calls", 'c', 0, G_OPTION_ARG_INT, &opt_calls,
    "rpc.call round trips per measurement (default 2000)", "N" },
  { "publications", 'P', 0, G_OPTION_ARG_INT, &opt_publications,
    "publications per fan-out run, 5 runs a measurement (default 1000)", "N" },
  { "window", 'w', 0, G_OPTION_ARG_INT, &opt_window,
    "handshakes in flight while connecting (default 256)", "N" },
  { NULL }
};

static double
now_s (void)
{
  return g_get_monotonic_time () / 1e6;
}

/* broker process figures */

static gboolean
read_cpu (GPid    pid,
          double *cpu)
{
  double utime, stime;

  if (!elbus_bench_read_cpu (pid, &utime, &stime))
    return FALSE;
  *cpu = utime + stime;
  return TRUE;
}

static gint64
read_rss_kib (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *contents = NULL;
  const char *p;

  if (pid <= 0 || !g_file_get_contents (path, &contents, NULL, NULL))
    return -1;
  p = strstr (contents, "VmRSS:");
  return p != NULL ? g_ascii_strtoll (p + 6, NULL, 10) : -1;
}

/* idle clients */

typedef struct {
  int    fd;
  guint8 got;      /* handshake bytes received: greeting 3, OK, OK */
} Idle;

static struct sockaddr_un broker_addr;

static int
connect_nonblocking (void)
{
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0)
    g_error ("socket(): %s", g_strerror (errno));
  if (connect (fd, (struct sockaddr *) &broker_addr, sizeof broker_addr) != 0 &&
      errno != EINPROGRESS && errno != EAGAIN)
    g_error ("connect(): %s", g_strerror (errno));
  return fd;
}

/* Connects and registers clients [from, to) of @idle; at most @window
 * handshakes in flight. Returns the seconds it took. */
static double
connect_idle (Idle  *idle,
              guint  from,
              guint  to,
              guint  run)
{
  int ep = epoll_create1 (EPOLL_CLOEXEC);
  guint next = from, done = from, in_flight = 0;
  double t0 = now_s ();

  while (done < to)
    {
      struct epoll_event events[256];
      int n;

      while (next < to && in_flight < (guint) opt_window)
        {
          Idle *c = &idle[next];
          char name[64];
          guint8 buf[3 + 2 + sizeof name];
          gsize len = g_snprintf (name, sizeof name, "idle.%u.%u", run, next);
          struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

          c->fd = connect_nonblocking ();
          c->got = 0;
          /* the greeting's echo and the name at once: the broker reads
           * them from one buffer */
          buf[0] = 0xEB;
          buf[1] = 1;
          buf[2] = 0;
          buf[3] = len & 0xff;
          buf[4] = len >> 8;
          memcpy (buf + 5, name, len);
          if (write (c->fd, buf, 5 + len) != (gssize) (5 + len))
            g_error ("writing a handshake failed: %s", g_strerror (errno));
          epoll_ctl (ep, EPOLL_CTL_ADD, c->fd, &ev);
          next++;
          in_flight++;
        }

      n = epoll_wait (ep, events, G_N_ELEMENTS (events), 10000);
      if (n == 0)
        g_error ("handshakes stalled (%u of %u done)", done - from, to - from);
      for (int i = 0; i < n; i++)
        {
          Idle *c = events[i].data.ptr;
          guint8 buf[8];
          gssize r = read (c->fd, buf, 5 - c->got);

          if (r <= 0)
            g_error ("a handshake failed: %s", r == 0 ? "closed" : g_strerror (errno));
          for (gssize k = 0; k < r; k++)
            if (c->got + k >= 3 && buf[k] != 0x01)
              g_error ("registration refused: 0x%02x", buf[k]);
          c->got += r;
          if (c->got == 5)
            {
              epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
              in_flight--;
              done++;
            }
        }
    }

  close (ep);
  return now_s () - t0;
}

/* rpc.call round trip: the median of opt_calls calls, one at a time (a
 * mean would mostly measure the other processes of a shared machine) */

static int
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
round_trip_us (ElbusRpcPeer *peer)
{
  g_autofree double *times = g_new (double, opt_calls);

  for (int i = 0; i < 50; i++)
    g_bytes_unref (elbus_rpc_peer_call_sync (peer, ".broker", "test", NULL,
                                             ELBUS_QOS_PROCESSED, 5, NULL, NULL));
  for (int i = 0; i < opt_calls; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) reply = NULL;
      double t0 = now_s ();

      reply = elbus_rpc_peer_call_sync (peer, ".broker", "test", NULL, ELBUS_QOS_PROCESSED,
                                        5, NULL, &error);
      if (error != NULL)
        g_error ("rpc.call failed: %s", error->message);
      times[i] = (now_s () - t0) * 1e6;
    }
  qsort (times, opt_calls, sizeof *times, compare_doubles);
  return times[opt_calls / 2];
}

/* fan-out */

typedef struct {
  ElbusTestConn **subs;
  guint           n_subs;
  ElbusTestConn  *publisher;
  int             ep;
  gsize           frame_len;   /* of one delivered publication */
} Fanout;

#define FANOUT_TOPIC   "bench/scale"
#define FANOUT_PAYLOAD 64
#define FANOUT_ROUND   20       /* publications in flight */

static void
fanout_setup (Fanout     *f,
              const char *address)
{
  f->ep = epoll_create1 (EPOLL_CLOEXEC);
  f->subs = g_new0 (ElbusTestConn *, opt_fanout);
  f->n_subs = opt_fanout;
  for (guint i = 0; i < f->n_subs; i++)
    {
      g_autofree char *name = g_strdup_printf ("sub.%u", i);
      struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

      f->subs[i] = elbus_test_conn_new_address (address, name);
      elbus_test_conn_subscribe (f->subs[i], FANOUT_TOPIC, NULL);
      g_unix_set_fd_nonblocking (f->subs[i]->fd, TRUE, NULL);
      epoll_ctl (f->ep, EPOLL_CTL_ADD, f->subs[i]->fd, &ev);
    }
  f->publisher = elbus_test_conn_new_address (address, "pub");
  /* header, sender, topic, payload */
  f->frame_len = 6 + strlen ("pub") + 1 + strlen (FANOUT_TOPIC) + 1 + FANOUT_PAYLOAD;
}

/* Publishes opt_publications in rounds, each read back by every
 * subscriber before the next; returns deliveries per second and the
 * broker's CPU µs per delivery in *cpu_us. */
static double
fanout_run (Fanout *f,
            GPid    pid,
            double *cpu_us)
{
  guint8 payload[FANOUT_PAYLOAD] = { 0 };
  g_autoptr(GBytes) frame = elbus_test_build_op (0, OP_PUBLISH, ELBUS_QOS_NO, FANOUT_TOPIC,
                                                 payload, sizeof payload);
  gsize frame_size = g_bytes_get_size (frame);
  g_autofree guint8 *round = g_malloc (frame_size * FANOUT_ROUND);
  guint rounds = MAX (1, opt_publications / FANOUT_ROUND);
  double t0, c0 = 0, c1 = 0, secs;
  gboolean have_cpu;

  for (guint i = 0; i < FANOUT_ROUND; i++)
    memcpy (round + i * frame_size, g_bytes_get_data (frame, NULL), frame_size);

  have_cpu = read_cpu (pid, &c0);
  t0 = now_s ();
  for (guint r = 0; r < rounds; r++)
    {
      guint64 want = (guint64) f->n_subs * FANOUT_ROUND * f->frame_len, got = 0;

      elbus_test_conn_send (f->publisher, round, frame_size * FANOUT_ROUND);
      while (got < want)
        {
          struct epoll_event events[256];
          int n = epoll_wait (f->ep, events, G_N_ELEMENTS (events), 10000);

          if (n == 0)
            g_error ("fan-out stalled: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes",
                     got, want);
          for (int i = 0; i < n; i++)
            {
              guint8 buf[65536];
              gssize k;

              while ((k = read (f->subs[events[i].data.u32]->fd, buf, sizeof buf)) > 0)
                got += k;
            }
        }
      if (got != want)
        g_error ("fan-out: %" G_GUINT64_FORMAT " bytes instead of %" G_GUINT64_FORMAT,
                 got, want);
    }
  secs = now_s () - t0;
  if (have_cpu && read_cpu (pid, &c1))
    *cpu_us = (c1 - c0) * 1e6 / ((double) rounds * FANOUT_ROUND * f->n_subs);
  else
    *cpu_us = -1;
  return (double) rounds * FANOUT_ROUND * f->n_subs / secs;
}

/* The median rate (and its run's CPU per delivery) of FANOUT_RUNS runs:
 * on a shared machine one run can be a third off either way. */
#define FANOUT_RUNS 5

typedef struct {
  double rate;
  double cpu_us;
} FanoutRun;

static int
compare_runs (gconstpointer a,
              gconstpointer b)
{
  return compare_doubles (&((const FanoutRun *) a)->rate, &((const FanoutRun *) b)->rate);
}

static double
fanout_median (Fanout *f,
               GPid    pid,
               double *cpu_us)
{
  FanoutRun runs[FANOUT_RUNS];

  for (guint i = 0; i < FANOUT_RUNS; i++)
    runs[i].rate = fanout_run (f, pid, &runs[i].cpu_us);
  qsort (runs, FANOUT_RUNS, sizeof runs[0], compare_runs);
  *cpu_us = runs[FANOUT_RUNS / 2].cpu_us;
  return runs[FANOUT_RUNS / 2].rate;
}

static void
fanout_free (Fanout *f)
{
  for (guint i = 0; i < f->n_subs; i++)
    elbus_test_conn_free (f->subs[i]);
  g_free (f->subs);
  elbus_test_conn_free (f->publisher);
  close (f->ep);
}

static void
raise_nofile (rlim_t wanted)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= wanted)
    return;
  if (rl.rlim_max < wanted)
    rl.rlim_max = wanted;          /* as root */
  rl.rlim_cur = wanted;
  if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
    {
      getrlimit (RLIMIT_NOFILE, &rl);
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
      g_printerr ("warning: fd limit %lu, fewer than %lu wanted\n",
                  (unsigned long) rl.rlim_cur, (unsigned long) wanted);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusTestDaemon) daemon = NULL;
  g_auto(GStrv) runs = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  guint max_n = 0;
  const char *address;
  GPid pid;
  Fanout fanout = { 0 };
  int status = 0;

  context = g_option_context_new ("- what idle clients cost a broker");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  runs = g_strsplit (opt_clients != NULL ? opt_clients : "1000,10000", ",", -1);
  for (guint i = 0; runs[i] != NULL; i++)
    max_n = MAX (max_n, (guint) g_ascii_strtoull (runs[i], NULL, 10));
  if (opt_calls <= 0 || opt_window <= 0 || opt_fanout < 0)
    {
      g_printerr ("invalid arguments\n");
      return 2;
    }

  signal (SIGPIPE, SIG_IGN);
  /* the idle clients, the subscribers and the broker's ends (elbusd
   * inherits the limit) */
  raise_nofile (max_n + opt_fanout + 1024);

  if (opt_address != NULL)
    {
      address = opt_address;
      pid = opt_broker_pid;
    }
  else
    {
      g_autofree char *elbusd = opt_elbusd ? g_strdup (opt_elbusd) : elbus_bench_default_elbusd ();
      const char *args[] = { "--max-clients", "0", "-t", "600", NULL };

      g_setenv ("ELBUSD", elbusd, TRUE);
      daemon = elbus_test_daemon_spawn (args, TRUE);
      address = daemon->socket_path;
      pid = daemon->pid;
    }
  broker_addr.sun_family = AF_UNIX;
  g_strlcpy (broker_addr.sun_path, address, sizeof broker_addr.sun_path);

  client = elbus_client_new_sync (address, "bench.rpc", NULL, &error);
  if (client == NULL)
    g_error ("connecting: %s", error->message);
  peer = elbus_rpc_peer_new (client);
  if (opt_fanout > 0)
    fanout_setup (&fanout, address);

  g_print ("elbus-bench-scale: broker %s%s, %d fan-out subscribers\n", address,
           daemon != NULL ? " (spawned elbusd)" : "", opt_fanout);

  for (guint r = 0; runs[r] != NULL; r++)
    {
      guint n = g_ascii_strtoull (runs[r], NULL, 10);
      g_autofree Idle *idle = g_new0 (Idle, n);
      double rt0, rt1, first, second, fan0 = 0, fan1 = 0, cpu0 = 0, cpu1 = 0;
      gint64 rss0, rss1;

      rt0 = round_trip_us (peer);
      if (opt_fanout > 0)
        fan0 = fanout_median (&fanout, pid, &cpu0);
      rss0 = read_rss_kib (pid);

      first = connect_idle (idle, 0, n / 2, r);
      second = connect_idle (idle, n / 2, n, r);
      /* a second for the broker and the kernel to settle after the burst
       * (measured at once, the round trip is off by up to 2x for a moment) */
      g_usleep (1000 * 1000);
      rss1 = read_rss_kib (pid);

      rt1 = round_trip_us (peer);
      if (opt_fanout > 0)
        fan1 = fanout_median (&fanout, pid, &cpu1);

      g_print ("\n%u idle clients:\n", n);
      g_print ("  connect+register: first half %.3f s, second half %.3f s (%.2fx), "
               "all %.3f s\n", first, second, second / first, first + second);
      g_print ("  rpc.call round trip to .broker: %.1f us without, %.1f us with them (%.2fx)\n",
               rt0, rt1, rt1 / rt0);
      if (opt_fanout > 0)
        {
          g_print ("  fan-out to %d subscribers: %.0f frames/s without, %.0f with them "
                   "(%.2fx the time per frame)\n", opt_fanout, fan0, fan1, fan0 / fan1);
          if (cpu0 >= 0 && cpu1 >= 0)
            g_print ("  broker CPU per delivery: %.3f us without, %.3f us with them\n",
                     cpu0, cpu1);
        }
      if (rss0 > 0 && rss1 > 0)
        g_print ("  broker RSS: %" G_GINT64_FORMAT " KiB before, %" G_GINT64_FORMAT
                 " KiB after: %.2f KiB per idle client\n",
                 rss0, rss1, (double) (rss1 - rss0) / n);

      for (guint i = 0; i < n; i++)
        close (idle[i].fd);
      /* their departures are announced before the next run */
      g_usleep (500 * 1000);
    }

  if (opt_fanout > 0)
    fanout_free (&fanout);
  g_clear_object (&peer);
  elbus_client_close (client);
  if (daemon != NULL)
    {
      int ws = elbus_test_daemon_stop (daemon);

      if (!WIFEXITED (ws) || WEXITSTATUS (ws) != 0)
        {
          g_printerr ("elbusd did not exit cleanly (status 0x%x)\n", ws);
          status = 1;
        }
    }
  return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * elbus-bench-flood: one sender floods one receiver with QoS 0 messages
 * through a broker and reports delivered frames per second.
 *
 * The broker is a spawned elbusd on a temporary UNIX socket, or any broker
 * given with --address. The sender writes large batches of pre-built
 * frames from its own thread; the receiver parses every frame (skipping
 * pings) and checks its kind, sender and payload size, and the run fails
 * unless exactly --count frames arrive.
 *
 * A broker that keeps docs/protocol.md section 5 drops a receiver whose queue
 * overflows, so the sender keeps at most --window frames in flight (sent
 * but not yet received); the default is half the default queue size. Use
 * --window 0 for an unbounded flood.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "elbus-bench-util.h"
#include "elbus-test-util.h"

#define SENDER_NAME   "bench.sender"
#define RECEIVER_NAME "bench.receiver"

static char    *opt_elbusd = NULL;
static char    *opt_address = NULL;
static gint64   opt_count = 2000000;
static gint     opt_payload_size = 100;
static gint     opt_batch_size = 64 * 1024;
static gint     opt_window = ELBUS_BROKER_DEFAULT_QUEUE_SIZE / 2;
static gint     opt_queue_size = 0;
static gint     opt_broker_pid = 0;

static GOptionEntry entries[] = {
  { "elbusd", 0, 0, G_OPTION_ARG_FILENAME, &opt_elbusd,
    "elbusd to spawn (default: $ELBUSD, else ../../tools/elbusd next to this program)", "PATH" },
  { "address", 'a', 0, G_OPTION_ARG_STRING, &opt_address,
    "use the running broker at ADDRESS (UNIX socket path or host:port) instead of spawning one", "ADDRESS" },
  { "count", 'n', 0, G_OPTION_ARG_INT64, &opt_count,
    "number of messages (default 2000000)", "N" },
  { "payload-size", 's', 0, G_OPTION_ARG_INT, &opt_payload_size,
    "payload bytes per message (default 100)", "BYTES" },
  { "batch-size", 'b', 0, G_OPTION_ARG_INT, &opt_batch_size,
    "bytes per sender write (default 65536)", "BYTES" },
  { "window", 'w', 0, G_OPTION_ARG_INT, &opt_window,
    "most frames in flight, 0 for no limit (default 4096)", "FRAMES" },
  { "queue-size", 'q', 0, G_OPTION_ARG_INT, &opt_queue_size,
    "--queue-size for the spawned elbusd", "FRAMES" },
  { "broker-pid", 'p', 0, G_OPTION_ARG_INT, &opt_broker_pid,
    "measure the CPU time of this process (with --address)", "PID" },
  { NULL }
};

static inline guint32
read_u32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) |
         ((guint32) p[3] << 24);
}

typedef struct {
  ElbusTestConn *conn;

  GMutex         mutex;
  GCond          cond;
  gint64         received;      /* under mutex */
  gboolean       sender_waiting;/* under mutex */
  gint64         t_last;        /* monotonic µs of the last frame */
  gboolean       failed;
  char          *failure;
  guint64        wire_bytes;
  guint64        pings;
} Receiver;

static void
receiver_fail (Receiver   *r,
               const char *format,
               ...) G_GNUC_PRINTF (2, 3);

static void
receiver_fail (Receiver   *r,
               const char *format,
               ...)
{
  va_list ap;

  va_start (ap, format);
  g_mutex_lock (&r->mutex);
  if (r->failure == NULL)
    r->failure = g_strdup_vprintf (format, ap);
  r->failed = TRUE;
  g_mutex_unlock (&r->mutex);
  va_end (ap);
}

static gpointer
receiver_thread (gpointer data)
{
  Receiver *r = data;
  gsize cap = 4 * 1024 * 1024;
  guint8 *buf = g_malloc (cap);
  gsize have = 0;
  gint64 count = 0;
  const gsize sender_len = strlen (SENDER_NAME);
  const guint32 body_len = sender_len + 1 + opt_payload_size;
  struct timeval tv = { 10, 0 };

  /* bytes the handshake helper may have buffered */
  have = r->conn->rbuf->len - r->conn->rpos;
  memcpy (buf, r->conn->rbuf->data + r->conn->rpos, have);

  setsockopt (r->conn->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  while (count < opt_count)
    {
      gsize pos = 0;
      ssize_t n;

      if (cap - have < 64 * 1024)
        {
          cap *= 2;
          buf = g_realloc (buf, cap);
        }
      n = recv (r->conn->fd, buf + have, cap - have, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          receiver_fail (r, "receiver: %s after %" G_GINT64_FORMAT " frames",
                         n == 0 ? "connection closed" :
                         errno == EAGAIN ? "nothing for 10 s" : g_strerror (errno),
                         count);
          break;
        }
      have += n;
      r->wire_bytes += n;

      while (have - pos >= 6)
        {
          const guint8 *h = buf + pos;
          guint32 len = read_u32 (h + 1);

          if (h[0] == 0x00)
            {
              if (len != 0 || h[5] != 0)
                {
                  receiver_fail (r, "receiver: malformed ping");
                  goto out;
                }
              r->pings++;
              pos += 6;
              continue;
            }
          if (h[0] != 0x12)
            {
              receiver_fail (r, "receiver: frame kind 0x%02x, expected 0x12", h[0]);
              goto out;
            }
          if (len != body_len)
            {
              receiver_fail (r, "receiver: frame body of %u bytes, expected %u",
                             len, body_len);
              goto out;
            }
          if (have - pos < 6 + (gsize) len)
            break;
          if (h[5] != 0 || memcmp (h + 6, SENDER_NAME, sender_len + 1) != 0)
            {
              receiver_fail (r, "receiver: wrong sender or realtime flag");
              goto out;
            }
          pos += 6 + len;
          count++;
        }
      memmove (buf, buf + pos, have - pos);
      have -= pos;

      g_mutex_lock (&r->mutex);
      r->received = count;
      if (r->sender_waiting)
        g_cond_broadcast (&r->cond);
      g_mutex_unlock (&r->mutex);
    }

  r->t_last = g_get_monotonic_time ();
  if (!r->failed && have != 0)
    {
      /* only pings may follow */
      for (gsize pos = 0; pos + 6 <= have; pos += 6)
        if (buf[pos] != 0)
          receiver_fail (r, "receiver: extra data after %" G_GINT64_FORMAT " frames",
                         count);
    }

out:
  g_mutex_lock (&r->mutex);
  r->received = count;
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->mutex);
  g_free (buf);
  return NULL;
}

typedef struct {
  ElbusTestConn *conn;
  Receiver      *receiver;
  gint64         t_first;
} Sender;

static gpointer
sender_thread (gpointer data)
{
  Sender *s = data;
  Receiver *r = s->receiver;
  g_autofree guint8 *payload = g_malloc (opt_payload_size);
  g_autoptr(GBytes) one = NULL;
  g_autoptr(GByteArray) batch = g_byte_array_new ();
  gsize frame_len;
  gint64 per_batch, sent = 0;

  memset (payload, 'p', opt_payload_size);
  one = elbus_test_build_op (0, 0x12, ELBUS_QOS_NO, RECEIVER_NAME, payload,
                             opt_payload_size);
  frame_len = g_bytes_get_size (one);
  per_batch = MAX (1, (gint64) opt_batch_size / (gint64) frame_len);
  if (opt_window > 0 && per_batch > opt_window / 2)
    per_batch = MAX (1, opt_window / 2);
  for (gint64 i = 0; i < per_batch; i++)
    g_byte_array_append (batch, g_bytes_get_data (one, NULL), frame_len);

  s->t_first = g_get_monotonic_time ();
  while (sent < opt_count)
    {
      gint64 n = MIN (per_batch, opt_count - sent);

      if (opt_window > 0)
        {
          g_mutex_lock (&r->mutex);
          while (sent + n - r->received > opt_window && !r->failed &&
                 r->received < opt_count)
            {
              r->sender_waiting = TRUE;
              g_cond_wait (&r->cond, &r->mutex);
              r->sender_waiting = FALSE;
            }
          if (r->failed)
            {
              g_mutex_unlock (&r->mutex);
              break;
            }
          g_mutex_unlock (&r->mutex);
        }
      else if (g_atomic_int_get (&r->failed))
        break;
      if (!elbus_test_conn_try_send (s->conn, batch->data, n * frame_len))
        {
          g_printerr ("sender: the broker closed the connection after %"
                      G_GINT64_FORMAT " frames\n", sent);
          break;
        }
      sent += n;
    }

  return NULL;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusTestDaemon) daemon = NULL;
  g_autofree char *queue_arg = NULL;
  const char *address;
  GPid pid = 0;
  Receiver r = { 0 };
  Sender s = { 0 };
  GThread *rt, *st;
  double u0 = 0, s0 = 0, u1 = 0, s1 = 0;
  gboolean have_cpu = FALSE;
  double secs;
  int status = 0;

  context = g_option_context_new ("- flood a broker with one-to-one messages");
  g_option_context_set_summary (context,
    "One sender floods one receiver with QoS 0 messages through an elbus\n"
    "broker; reports delivered frames per second, MB/s and the broker's CPU\n"
    "time per frame. Fails unless exactly --count frames arrive intact.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (opt_count <= 0 || opt_payload_size < 0 || opt_batch_size <= 0 || opt_window < 0)
    {
      g_printerr ("invalid arguments\n");
      return 2;
    }

  signal (SIGPIPE, SIG_IGN);

  if (opt_address != NULL)
    {
      address = opt_address;
      pid = opt_broker_pid;
    }
  else
    {
      g_autofree char *elbusd = opt_elbusd ? g_strdup (opt_elbusd) : elbus_bench_default_elbusd ();
      const char *args[4] = { NULL };

      g_setenv ("ELBUSD", elbusd, TRUE);
      if (opt_queue_size > 0)
        {
          queue_arg = g_strdup_printf ("%d", opt_queue_size);
          args[0] = "--queue-size";
          args[1] = queue_arg;
        }
      daemon = elbus_test_daemon_spawn (args, TRUE);
      address = daemon->socket_path;
      pid = daemon->pid;
    }

  r.conn = elbus_test_conn_new_address (address, RECEIVER_NAME);
  s.conn = elbus_test_conn_new_address (address, SENDER_NAME);
  s.receiver = &r;
  g_mutex_init (&r.mutex);
  g_cond_init (&r.cond);

  g_print ("elbus-bench-flood: %" G_GINT64_FORMAT " messages of %d bytes, QoS 0, "
           "via %s%s, window %d frames\n",
           opt_count, opt_payload_size, address,
           daemon ? " (spawned elbusd)" : "", opt_window);

  if (pid > 0)
    have_cpu = elbus_bench_read_cpu (pid, &u0, &s0);

  rt = g_thread_new ("receiver", receiver_thread, &r);
  st = g_thread_new ("sender", sender_thread, &s);
  g_thread_join (st);
  g_thread_join (rt);

  if (have_cpu)
    have_cpu = elbus_bench_read_cpu (pid, &u1, &s1);

  if (r.failed || r.received != opt_count)
    {
      g_printerr ("FAILED: %s (%" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " frames)\n",
                  r.failure ? r.failure : "frames missing", r.received, opt_count);
      status = 1;
    }
  else
    {
      secs = (r.t_last - s.t_first) / 1e6;
      g_print ("delivered: %" G_GINT64_FORMAT " frames in %.3f s: %.0f frames/s, "
               "%.1f MB/s payload, %.1f MB/s on the wire (%" G_GUINT64_FORMAT " pings)\n",
               r.received, secs, r.received / secs,
               (double) r.received * opt_payload_size / secs / 1e6,
               r.wire_bytes / secs / 1e6, r.pings);
      if (have_cpu)
        {
          double cpu = (u1 - u0) + (s1 - s0);

          g_print ("broker CPU: %.3f s (user %.3f, system %.3f), %.3f us per frame, "
                   "%.0f%% of one core\n",
                   cpu, u1 - u0, s1 - s0, cpu * 1e6 / r.received, 100 * cpu / secs);
        }
    }

  elbus_test_conn_free (s.conn);
  elbus_test_conn_free (r.conn);
  if (daemon != NULL)
    {
      int ws = elbus_test_daemon_stop (daemon);

      if (!WIFEXITED (ws) || WEXITSTATUS (ws) != 0)
        {
          g_printerr ("elbusd did not exit cleanly (status 0x%x)\n", ws);
          status = 1;
        }
    }
  g_mutex_clear (&r.mutex);
  g_cond_clear (&r.cond);
  g_free (r.failure);
  return status;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the whole broker: an in-process ElbusBroker with
 * `.broker` enabled, no threads, driven by iterating its own GMainContext
 * without ever blocking, and NCONN connections, each one end of a
 * socketpair() handed to the broker (_elbus_broker_add_connection()).
 *
 * An input is a script. Its first byte picks the broker's limits (see
 * set_up_broker()); then each opcode byte says what to do (its value modulo
 * N_OPS) and on which connection (its value divided by N_OPS, modulo NCONN),
 * and the bytes after it are the operation's arguments. The operations
 * write raw bytes, or whole frames built from small tables of names, masks,
 * topics and `.broker` methods (so that registrations, secondaries,
 * overlapping names and masks, wildcards and monitor filters come quickly),
 * close or half-close a connection, stop or resume reading from one (a slow
 * consumer), flood, or iterate the loop. A connection that was closed is
 * opened anew by the next operation on it. Missing argument bytes read as 0.
 *
 * After every input: the broker's invariants hold
 * (_elbus_broker_check_invariants()), every connection whose socket was
 * closed is gone from the broker, and freeing the broker returns all its
 * memory (LeakSanitizer). A violation aborts. Timeouts are set to a day so
 * that no timer fires during an input: the script alone drives the broker.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elbus-broker-private.h"
#include "elbus-codec-private.h"
#include "elbus-rpc-private.h"

#include "fuzz-util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

#define NCONN 4
/* a socket buffer this small fills after a few frames */
#define SOCKET_BUFFER 4096
/* loop iterations to let the broker notice the closed sockets */
#define SETTLE_ITERATIONS 256

enum {
  OP_RAW,          /* len, bytes: written as they are */
  OP_HELLO,        /* name: the greeting and the name */
  OP_MESSAGE,      /* target, qos, len, payload */
  OP_BROADCAST,    /* mask, qos, len, payload */
  OP_PUBLISH,      /* topic, qos, len, payload */
  OP_SUBSCRIBE,    /* count, qos, masks... */
  OP_UNSUBSCRIBE,  /* count, qos, masks... */
  OP_CALL,         /* method, filters, qos: an RPC call to .broker */
  OP_RPC,          /* target, type, len, payload: any RPC event */
  OP_CLOSE,        /* close the connection */
  OP_TOGGLE_READ,  /* stop or resume reading what the broker sends */
  OP_ITERATE,      /* n: iterate the loop 1 + n % 16 times */
  OP_PING,         /* a client ping (flags 0, no body) */
  OP_FLOOD,        /* n: 1 + n % 64 publications on a/b */
  OP_SHUTDOWN,     /* shutdown(SHUT_WR): end of input, reading goes on */
  OP_PARTIAL,      /* target, len: a message header and part of its body */
  N_OPS
};

static const char * const names[] = {
  "a", "a.b", "a.b.c", "b", "a%%1", "a%%2", "a.b%%x", "a%%1%%2",
  "s.1", "s.2", "m", ".broker", ".x", "a.", "", "a b",
};

static const char * const masks[] = {
  "*", "a.*", "a.?", "?.b", "a.?.c", "s.*", "?", "a.b",
  "a%%*", "*.b.*", ".broker", "?.?", "a", "s.?", ".*", "",
};

static const char * const topic_masks[] = {
  "#", "a/#", "a/+", "+/b", "a/b", "a/+/c", "+", "+/+",
  "a/b/c", ".broker/#", ".broker/monitor", ".broker/warn", "a/#/b", "", "/", "a//b",
};

static const char * const topics[] = {
  "a", "a/b", "a/b/c", "x/b", "a/x/c", ".broker/warn", "", "/",
  "a//b", "s/1", ".broker/monitor", ".broker/info", "a/b/c/d", "+", "#", "b",
};

static const char * const methods[] = {
  "test", "info", "stats", "client.list", "benchmark.test", "monitor.start",
  "monitor.stop", "monitor.start", "nope", "",
};

typedef struct {
  int      fd;             /* our end, -1 when closed */
  gboolean stop_reading;
} Conn;

typedef struct {
  const guint8 *data;
  gsize         size;
  gsize         pos;
  ElbusBroker  *broker;
  GMainContext *context;
  Conn          conns[NCONN];
  guint32       op_id;
} Script;

static GBytes *filters[10];

#define CHECK(cond, what) do { if (!(cond)) { fprintf (stderr, "%s\n", what); abort (); } } while (0)

static guint8
next_byte (Script *s)
{
  return s->pos < s->size ? s->data[s->pos++] : 0;
}

static const char *
pick (Script             *s,
      const char * const *table,
      gsize               n)
{
  return table[next_byte (s) % n];
}
#define PICK(s, table) pick ((s), (table), G_N_ELEMENTS (table))

/* MessagePack, just enough for the monitor filters */

static void
mp_map (GByteArray *out, guint n)
{
  guint8 b = 0x80 | n;

  g_byte_array_append (out, &b, 1);
}

static void
mp_array (GByteArray *out, guint n)
{
  guint8 b = 0x90 | n;

  g_byte_array_append (out, &b, 1);
}

static void
mp_str (GByteArray *out, const char *str)
{
  guint8 b = 0xa0 | strlen (str);

  g_byte_array_append (out, &b, 1);
  g_byte_array_append (out, (const guint8 *) str, strlen (str));
}

static void
mp_strs (GByteArray *out, const char *key, const char *a, const char *b)
{
  mp_str (out, key);
  mp_array (out, b != NULL ? 2 : 1);
  mp_str (out, a);
  if (b != NULL)
    mp_str (out, b);
}

static void
build_filters (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (filters); i++)
    {
      GByteArray *out = g_byte_array_new ();
      guint8 b;

      switch (i)
        {
        case 0:   /* no parameters: everything */
          break;
        case 1:
          mp_map (out, 1);
          mp_strs (out, "kinds", "message", "publish");
          break;
        case 2:
          mp_map (out, 2);
          mp_strs (out, "sender", "a.*", "s.?");
          mp_strs (out, "kinds", "reg", "unreg");
          break;
        case 3:
          mp_map (out, 1);
          mp_strs (out, "target", "a.?", "*");
          break;
        case 4:
          mp_map (out, 2);
          mp_strs (out, "topic", "a/#", "+/b");
          mp_strs (out, "kinds", "subscribe", "unsubscribe");
          break;
        case 5:
          mp_map (out, 2);
          mp_str (out, "max_payload");
          b = 4;
          g_byte_array_append (out, &b, 1);
          mp_strs (out, "kinds", "broadcast", "publish");
          break;
        case 6:
          mp_map (out, 1);
          mp_strs (out, "kinds", "bogus", NULL);
          break;
        case 7:
          mp_map (out, 1);
          mp_str (out, "sender");
          b = 5;
          g_byte_array_append (out, &b, 1);
          break;
        case 8:   /* nil */
          b = 0xc0;
          g_byte_array_append (out, &b, 1);
          break;
        case 9:   /* an empty map: everything */
        default:
          mp_map (out, 0);
          break;
        }
      filters[i] = g_byte_array_free_to_bytes (out);
    }
}

/* connections */

static void
set_buffers (int fd)
{
  int size = SOCKET_BUFFER;

  (void) setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  (void) setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

static int
conn_fd (Script *s,
         guint   i)
{
  Conn *conn = &s->conns[i];
  int fds[2];

  if (conn->fd >= 0)
    return conn->fd;

  CHECK (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0,
         "socketpair() failed");
  set_buffers (fds[0]);
  set_buffers (fds[1]);
  conn->fd = fds[0];
  conn->stop_reading = FALSE;
  _elbus_broker_add_connection (s->broker, fds[1]);
  return conn->fd;
}

static void
conn_close (Script *s,
            guint   i)
{
  if (s->conns[i].fd >= 0)
    close (s->conns[i].fd);
  s->conns[i].fd = -1;
}

static void
iterate (Script *s,
         guint   n)
{
  for (guint i = 0; i < n; i++)
    g_main_context_iteration (s->context, FALSE);
}

/* Reads and drops what the broker sent to the connections that read. */
static void
drain (Script *s)
{
  guint8 sink[16384];

  for (guint i = 0; i < NCONN; i++)
    {
      if (s->conns[i].fd < 0 || s->conns[i].stop_reading)
        continue;
      for (guint turns = 0; turns < 16; turns++)
        {
          gssize n = read (s->conns[i].fd, sink, sizeof sink);

          if (n == 0)
            {
              conn_close (s, i);
              break;
            }
          if (n < 0)
            break;
        }
    }
}

/* Writes what the socket takes, letting the broker read in between; the
 * rest is dropped (a frame cut short is part of the game). */
static void
conn_write (Script       *s,
            guint         i,
            const guint8 *buf,
            gsize         len)
{
  int fd = conn_fd (s, i);

  for (guint tries = 0; len > 0 && tries < 8; tries++)
    {
      gssize n = send (fd, buf, len, MSG_NOSIGNAL);

      if (n > 0)
        {
          buf += n;
          len -= n;
          continue;
        }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return;
      iterate (s, 1);
      drain (s);
    }
}

/* frames */

static void
send_frame (Script       *s,
            guint         i,
            guint8        op,
            guint8        qos,
            const char   *target,
            const guint8 *prefix,
            gsize         prefix_len,
            const guint8 *payload,
            gsize         payload_len)
{
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  gsize target_len = target != NULL ? strlen (target) + 1 : 0;
  guint8 hdr[ELBUS_CLIENT_HEADER_LEN];

  _elbus_codec_encode_client_header (hdr, ++s->op_id, op, qos & 3,
                                     target_len + prefix_len + payload_len);
  g_byte_array_append (frame, hdr, sizeof hdr);
  if (target != NULL)
    g_byte_array_append (frame, (const guint8 *) target, target_len);
  g_byte_array_append (frame, prefix, prefix_len);
  g_byte_array_append (frame, payload, payload_len);
  conn_write (s, i, frame->data, frame->len);
}

/* len, bytes: at most what the input has left */
static const guint8 *
next_payload (Script *s,
              gsize  *len)
{
  gsize wanted = next_byte (s) % 64;
  const guint8 *payload = s->data + s->pos;

  *len = MIN (wanted, s->size - s->pos);
  s->pos += *len;
  return payload;
}

static void
op_hello (Script *s,
          guint   i)
{
  guint8 buf[ELBUS_GREETING_LEN + 2 + 64];
  const char *name = PICK (s, names);
  gsize n;

  _elbus_codec_encode_greeting (buf);
  n = _elbus_codec_encode_name (buf + ELBUS_GREETING_LEN, sizeof buf - ELBUS_GREETING_LEN, name);
  conn_write (s, i, buf, ELBUS_GREETING_LEN + n);
}

static void
op_subscribe (Script *s,
              guint   i,
              guint8  op)
{
  g_autoptr(GByteArray) body = g_byte_array_new ();
  guint n = next_byte (s) % 4 + 1;
  guint8 qos = next_byte (s);
  guint8 hdr[ELBUS_CLIENT_HEADER_LEN];

  for (guint k = 0; k < n; k++)
    {
      const char *mask = PICK (s, topic_masks);

      g_byte_array_append (body, (const guint8 *) mask, strlen (mask) + 1);
    }
  _elbus_codec_encode_client_header (hdr, ++s->op_id, op, qos & 3, body->len);
  g_byte_array_prepend (body, hdr, sizeof hdr);
  conn_write (s, i, body->data, body->len);
}

static void
op_call (Script *s,
         guint   i)
{
  const char *method = PICK (s, methods);
  GBytes *params = filters[next_byte (s) % G_N_ELEMENTS (filters)];
  guint8 qos = next_byte (s);
  g_autoptr(GByteArray) prefix = g_byte_array_new ();
  guint8 head[5] = { ELBUS_RPC_REQUEST };

  _elbus_write_u32 (head + 1, s->op_id + 1);
  g_byte_array_append (prefix, head, sizeof head);
  g_byte_array_append (prefix, (const guint8 *) method, strlen (method) + 1);
  send_frame (s, i, ELBUS_OP_MESSAGE, qos, ".broker", prefix->data, prefix->len,
              g_bytes_get_data (params, NULL), g_bytes_get_size (params));
}

static void
op_rpc (Script *s,
        guint   i)
{
  static const guint8 types[] = {
    ELBUS_RPC_NOTIFICATION, ELBUS_RPC_REQUEST, ELBUS_RPC_REPLY, ELBUS_RPC_ERROR_REPLY,
  };
  const char *target = next_byte (s) % 2 ? ".broker" : PICK (s, names);
  guint8 type = next_byte (s);
  const guint8 *payload;
  gsize len;

  type = type < 0x80 ? types[type % G_N_ELEMENTS (types)] : type;
  payload = next_payload (s, &len);
  send_frame (s, i, ELBUS_OP_MESSAGE, 1, target, &type, 1, payload, len);
}

static void
op_flood (Script *s,
          guint   i)
{
  static const guint8 payload[32] = { 0 };
  guint n = next_byte (s) % 64 + 1;

  for (guint k = 0; k < n; k++)
    send_frame (s, i, ELBUS_OP_PUBLISH, 0, "a/b", NULL, 0, payload, sizeof payload);
}

static void
op_partial (Script *s,
            guint   i)
{
  const char *target = PICK (s, names);
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  guint8 hdr[ELBUS_CLIENT_HEADER_LEN];
  gsize body_len = strlen (target) + 1 + 100;

  _elbus_codec_encode_client_header (hdr, ++s->op_id, ELBUS_OP_MESSAGE, 1, body_len);
  g_byte_array_append (frame, hdr, sizeof hdr);
  g_byte_array_append (frame, (const guint8 *) target, strlen (target) + 1);
  conn_write (s, i, frame->data, next_byte (s) % (frame->len + 1));
}

static void
run_op (Script *s)
{
  guint8 b = next_byte (s);
  guint i = (b / N_OPS) % NCONN;
  const guint8 *payload;
  const char *target;
  guint8 qos;
  gsize len;

  switch (b % N_OPS)
    {
    case OP_RAW:
      payload = next_payload (s, &len);
      conn_write (s, i, payload, len);
      break;
    case OP_HELLO:
      op_hello (s, i);
      break;
    case OP_MESSAGE:
      target = next_byte (s) == 0 ? ".broker" : PICK (s, names);
      qos = next_byte (s);
      payload = next_payload (s, &len);
      send_frame (s, i, ELBUS_OP_MESSAGE, qos, target, NULL, 0, payload, len);
      break;
    case OP_BROADCAST:
      target = PICK (s, masks);
      qos = next_byte (s);
      payload = next_payload (s, &len);
      send_frame (s, i, ELBUS_OP_BROADCAST, qos, target, NULL, 0, payload, len);
      break;
    case OP_PUBLISH:
      target = PICK (s, topics);
      qos = next_byte (s);
      payload = next_payload (s, &len);
      send_frame (s, i, ELBUS_OP_PUBLISH, qos, target, NULL, 0, payload, len);
      break;
    case OP_SUBSCRIBE:
      op_subscribe (s, i, ELBUS_OP_SUBSCRIBE);
      break;
    case OP_UNSUBSCRIBE:
      op_subscribe (s, i, ELBUS_OP_UNSUBSCRIBE);
      break;
    case OP_CALL:
      op_call (s, i);
      break;
    case OP_RPC:
      op_rpc (s, i);
      break;
    case OP_CLOSE:
      conn_close (s, i);
      break;
    case OP_TOGGLE_READ:
      s->conns[i].stop_reading = !s->conns[i].stop_reading;
      break;
    case OP_ITERATE:
      iterate (s, next_byte (s) % 16 + 1);
      break;
    case OP_PING:
      {
        guint8 hdr[ELBUS_CLIENT_HEADER_LEN];

        _elbus_codec_encode_client_header (hdr, 0, ELBUS_OP_NOP, 0, 0);
        conn_write (s, i, hdr, sizeof hdr);
      }
      break;
    case OP_FLOOD:
      op_flood (s, i);
      break;
    case OP_SHUTDOWN:
      (void) shutdown (conn_fd (s, i), SHUT_WR);
      break;
    case OP_PARTIAL:
      op_partial (s, i);
      break;
    default:
      g_assert_not_reached ();
    }
}

/* the broker */

static ElbusClientPolicy *
policy_new (gboolean monitor,
            const char *publish)
{
  ElbusClientPolicy *policy = elbus_client_policy_new ();

  elbus_client_policy_set_monitor (policy, monitor);
  if (publish != NULL)
    {
      elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, publish);
      elbus_client_policy_allow (policy, ELBUS_POLICY_OP_SUBSCRIBE, publish);
      elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "a.*");
      elbus_client_policy_deny (policy, ELBUS_POLICY_OP_BROADCAST);
    }
  return policy;
}

/* The first byte: bit 0 a queue of 4 frames, bit 1 at most 3
 * subscriptions, bit 2 a policy, bit 3 at most 512 bytes queued, bit 4
 * frames of at most 64 bytes, bit 5 a flush on every frame queued. */
static ElbusBroker *
set_up_broker (guint8 flags)
{
  ElbusBroker *broker = elbus_broker_new ();
  GError *error = NULL;

  elbus_broker_set_timeout (broker, 86400.0);
  elbus_broker_set_handshake_timeout (broker, 86400.0);
  elbus_broker_set_queue_size (broker, flags & 0x01 ? 4 : 64);
  elbus_broker_set_max_subscriptions (broker, flags & 0x02 ? 3 : 0);
  elbus_broker_set_max_queue_bytes (broker, flags & 0x08 ? 512 : 0);
  elbus_broker_set_max_frame_size (broker, flags & 0x10 ? 64 : 65536);
  elbus_broker_set_buf_size (broker, flags & 0x20 ? 1 : 8192);
  if (flags & 0x04)
    {
      g_autoptr(ElbusClientPolicy) a = policy_new (FALSE, "a/#");
      g_autoptr(ElbusClientPolicy) m = policy_new (TRUE, NULL);
      g_autoptr(ElbusClientPolicy) s = policy_new (FALSE, NULL);

      elbus_broker_set_client_policy (broker, "a", a);
      elbus_broker_set_client_policy (broker, "m", m);
      elbus_broker_set_client_policy (broker, "s.1", s);
      elbus_broker_set_client_policy (broker, "b", s);
    }
  if (!elbus_broker_enable_core_rpc (broker, &error))
    {
      fprintf (stderr, ".broker: %s\n", error->message);
      abort ();
    }
  return broker;
}

static void
check_invariants (ElbusBroker *broker)
{
  g_autofree char *problem = _elbus_broker_check_invariants (broker);

  if (problem != NULL)
    {
      fprintf (stderr, "broker invariant violated: %s\n", problem);
      abort ();
    }
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_log_init (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR);
  build_filters ();
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  Script s = { data, size, 0 };
  guint settle;

  s.context = g_main_context_new ();
  g_main_context_push_thread_default (s.context);
  s.broker = set_up_broker (next_byte (&s));
  for (guint i = 0; i < NCONN; i++)
    s.conns[i].fd = -1;

  while (s.pos < s.size)
    {
      run_op (&s);
      iterate (&s, 1);
      drain (&s);
    }
  iterate (&s, 4);
  drain (&s);
  check_invariants (s.broker);

  /* every connection whose socket closes leaves the broker: only .broker
   * stays */
  for (guint i = 0; i < NCONN; i++)
    conn_close (&s, i);
  for (settle = 0; settle < SETTLE_ITERATIONS; settle++)
    {
      if (g_hash_table_size (s.broker->pending) == 0 &&
          g_hash_table_size (s.broker->clients) == 1)
        break;
      iterate (&s, 1);
    }
  CHECK (settle < SETTLE_ITERATIONS, "connections outlived their sockets");
  CHECK (g_hash_table_contains (s.broker->clients, ".broker"), ".broker is gone");
  check_invariants (s.broker);

  g_object_unref (s.broker);
  while (g_main_context_iteration (s.context, FALSE))
    ;
  g_main_context_pop_thread_default (s.context);
  g_main_context_unref (s.context);
  return 0;
}

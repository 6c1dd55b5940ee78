/* SPDX-License-Identifier: MIT */
/*
 * One broker connection: its read buffer, the handshake, the frame loop and
 * the outgoing queue.
 *
 * Reading: one read() per turn on the broker's ready list
 * (elbus-broker-dispatch.c) into a refcounted chunk (elbus-io.c); every
 * complete frame in it is routed in place, and recipients keep a reference
 * to the chunk instead of a copy of the payload.
 *
 * Writing: a recipient's queue (elbus-io.c) is written in one sendmsg() of
 * many iovecs. A socket that takes no more makes the peer wait for
 * EPOLLOUT; it never makes anyone else wait.
 *
 * A WebSocket peer (elbus-broker-ws.c) has no fd: its input arrives in
 * _elbus_peer_feed(), its queue leaves as one WebSocket message per flush,
 * and it waits for _elbus_peer_writable() instead of EPOLLOUT.
 *
 * A peer calls nothing above it: the broker through broker->ops
 * (ElbusBrokerOps), a WebSocket or in-process transport through
 * peer->funcs (ElbusPeerFuncs).
 */
#define _GNU_SOURCE   /* struct ucred */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elbus-broker-private.h"
#include "elbus-error.h"
#include "elbus-i18n-private.h"

/* peers */

/* What a connection always waits for; EPOLLOUT is added while it is full.
 * EPOLLRDHUP keeps a hang-up that came with the last bytes from passing
 * for drained input: it stays set until a read returns the end. */
#define PEER_EVENTS (EPOLLIN | EPOLLRDHUP)
#define PEER_READ_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)

static void peer_dispatch (ElbusDispatchFile *file);

const char *
_elbus_peer_describe (ElbusPeer *peer)
{
  if (peer->name != NULL)
    return peer->name;
  if (peer->source_addr != NULL)
    return peer->source_addr;
  return "(unregistered)";
}

static void
set_nodelay (int fd)
{
  int one = 1;

  (void) setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The UNIX peer's uid, gid and pid, as the kernel saw them at connect(). */
static void
read_credentials (ElbusPeer *peer)
{
  struct ucred ucred;
  socklen_t len = sizeof ucred;

  if (getsockopt (peer->fd, SOL_SOCKET, SO_PEERCRED, &ucred, &len) != 0 || len != sizeof ucred)
    return;
  peer->uid = ucred.uid;
  peer->gid = ucred.gid;
  peer->pid = ucred.pid;
}

/* "ip:port" of a TCP peer's address as accept() gave it, and the address
 * if @address is not NULL; NULL when it is not an inet address. */
char *
_elbus_sockaddr_describe (const struct sockaddr  *addr,
                          gsize                   addr_len,
                          GInetAddress          **address)
{
  g_autoptr(GSocketAddress) remote = NULL;
  GInetSocketAddress *isa;
  g_autofree char *ip = NULL;

  if (addr == NULL || addr_len == 0 ||
      (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
    return NULL;
  remote = g_socket_address_new_from_native ((gpointer) addr, addr_len);
  if (!G_IS_INET_SOCKET_ADDRESS (remote))
    return NULL;

  isa = G_INET_SOCKET_ADDRESS (remote);
  if (address != NULL)
    *address = g_object_ref (g_inet_socket_address_get_address (isa));
  ip = g_inet_address_to_string (g_inet_socket_address_get_address (isa));
  return g_strdup_printf ("%s:%u", ip, g_inet_socket_address_get_port (isa));
}

/* Takes over @fd, a non-blocking accepted socket, or else @ws, a
 * WebSocket connection (@fd is -1) written through @funcs; @addr is its
 * remote address as accept() gave it. */
ElbusPeer *
_elbus_peer_new (ElbusBroker           *broker,
                 int                    fd,
                 ElbusWsPeer           *ws,
                 const ElbusPeerFuncs  *funcs,
                 ElbusClientKind        kind,
                 const char            *port,
                 const struct sockaddr *addr,
                 gsize                  addr_len)
{
  ElbusPeer *peer = g_new0 (ElbusPeer, 1);
  guint8 greeting[ELBUS_GREETING_LEN];
  ElbusOutEntry entry = { 0 };

  peer->broker = broker;
  peer->ref = 1;
  peer->fd = fd;
  peer->ws = ws;
  peer->funcs = funcs;
  peer->file.fd = -1;
  peer->uid = peer->gid = peer->pid = -1;
  peer->kind = kind;
  peer->port = g_strdup (port);
  peer->state = ELBUS_PEER_GREETING;
  peer->dirty_link.data = peer;
  _elbus_out_queue_init (&peer->out);

  if (kind == ELBUS_CLIENT_KIND_TCP || kind == ELBUS_CLIENT_KIND_WEBSOCKET)
    peer->source_addr = _elbus_sockaddr_describe (addr, addr_len, &peer->address);
  if (kind == ELBUS_CLIENT_KIND_TCP)
    set_nodelay (peer->fd);
  else if (kind == ELBUS_CLIENT_KIND_LOCAL_IPC)
    read_credentials (peer);

  if (fd >= 0 &&
      !_elbus_dispatch_file_add (&peer->file, broker, fd, PEER_EVENTS, peer_dispatch))
    {
      _elbus_peer_close (peer, G_LOG_LEVEL_WARNING, _("cannot watch the connection: %s"),
                         g_strerror (errno));
      return peer;
    }
  _elbus_deadline_start (peer, ELBUS_DEADLINE_HANDSHAKE, g_get_monotonic_time ());

  _elbus_codec_encode_greeting (greeting);
  memcpy (entry.hdr, greeting, sizeof greeting);
  entry.hdr_len = sizeof greeting;
  _elbus_peer_enqueue (peer, &entry, TRUE);
  _elbus_peer_flush (peer);

  return peer;
}

/* An in-process client's end: no socket, no source. What is queued for it
 * is handed to the client object when flushed; what it sends is routed
 * directly (see elbus-broker-local.c). */
ElbusPeer *
_elbus_peer_new_internal (ElbusBroker          *broker,
                          ElbusLocal           *local,
                          const ElbusPeerFuncs *funcs)
{
  ElbusPeer *peer = g_new0 (ElbusPeer, 1);

  peer->broker = broker;
  peer->ref = 1;
  peer->fd = -1;
  peer->file.fd = -1;
  peer->uid = peer->gid = peer->pid = -1;
  peer->kind = ELBUS_CLIENT_KIND_INTERNAL;
  peer->funcs = funcs;
  peer->local = local;
  peer->state = ELBUS_PEER_NAME;
  peer->dirty_link.data = peer;
  _elbus_out_queue_init (&peer->out);

  return peer;
}

void
_elbus_peer_unref (ElbusPeer *peer)
{
  if (--peer->ref > 0)
    return;

  g_assert (peer->closed);
  _elbus_out_queue_clear (&peer->out);
  _elbus_read_buf_clear (&peer->rb);
  g_clear_pointer (&peer->name, g_ref_string_release);
  g_clear_pointer (&peer->secondaries, g_ptr_array_unref);
  g_clear_object (&peer->address);
  g_clear_object (&peer->policy);
  g_free (peer->drain_reason);
  g_free (peer->source_addr);
  g_free (peer->port);
  g_free (peer);
}

/* Connections that fail before registering (bad greetings, refused
 * names, hang-ups) are logged at most LOG_BURST a second: a flood of them
 * must not become a flood of log lines. What was left out is summed up
 * once the second is over (at the next such failure or the next sweep). */
#define LOG_BURST 20

void
_elbus_peer_log_window_roll (ElbusBroker *self,
                             gint64       now)
{
  if (now - self->log_window_start < G_USEC_PER_SEC)
    return;
  if (self->log_suppressed > 0)
    g_message (_("%u more connections failed before registering (not logged one by one)"),
               self->log_suppressed);
  self->log_window_start = now;
  self->log_in_window = 0;
  self->log_suppressed = 0;
}

gboolean
_elbus_peer_log_unregistered (ElbusBroker *self)
{
  _elbus_peer_log_window_roll (self, g_get_monotonic_time ());
  if (self->log_in_window < LOG_BURST)
    {
      self->log_in_window++;
      return TRUE;
    }
  self->log_suppressed++;
  return FALSE;
}

/* Best effort to let a refusal byte reach a peer before the socket goes:
 * closing with unread input would reset the connection and discard it. */
static void
linger_close (ElbusPeer *peer)
{
  guint8 sink[4096];

  if (peer->fd < 0)
    return;
  shutdown (peer->fd, SHUT_WR);
  while (read (peer->fd, sink, sizeof sink) > 0)
    ;
}

void
_elbus_peer_close (ElbusPeer      *peer,
                   GLogLevelFlags  level,
                   const char     *format,
                   ...)
{
  ElbusBroker *broker = peer->broker;
  g_autofree char *reason = NULL;
  ElbusLocal *local;
  va_list args;

  if (peer->closed)
    return;
  peer->closed = TRUE;

  va_start (args, format);
  reason = g_strdup_vprintf (format, args);
  va_end (args);
  if (peer->state == ELBUS_PEER_REGISTERED || _elbus_peer_log_unregistered (broker))
    g_log (G_LOG_DOMAIN, level, _("client %s: %s"), _elbus_peer_describe (peer), reason);

  for (guint kind = 0; kind < ELBUS_N_DEADLINES; kind++)
    _elbus_deadline_stop (peer, kind);

  if (peer->dirty)
    {
      g_queue_unlink (&broker->dirty, &peer->dirty_link);
      peer->dirty = FALSE;
    }

  if (peer->fd >= 0)
    {
      _elbus_dispatch_file_remove (&peer->file);
      if (peer->abort && peer->kind == ELBUS_CLIENT_KIND_TCP)
        {
          struct linger reset = { .l_onoff = 1, .l_linger = 0 };

          (void) setsockopt (peer->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        }
      close (peer->fd);
      peer->fd = -1;
      broker->ops->fd_closed (broker);
    }
  /* a WebSocket connection goes; an in-process client is held: a
   * client-unregistered handler may drop it */
  if (peer->funcs != NULL)
    peer->funcs->close (peer);
  _elbus_out_queue_clear (&peer->out);
  _elbus_read_buf_clear (&peer->rb);

  local = g_steal_pointer (&peer->local);

  /* takes over the registry's reference and emits client-unregistered */
  broker->ops->forget_peer (broker, peer);

  /* an in-process client learns it at once, its name already free */
  if (local != NULL && peer->funcs->closed != NULL)
    peer->funcs->closed (local, reason);
}

/* On the broker's dirty list, flushed at the end of the dispatch, or
 * before the loop sleeps (elbus-broker.c). */
static void
mark_dirty (ElbusBroker *self,
            ElbusPeer   *peer,
            gboolean     urgent)
{
  if (!peer->dirty)
    {
      if (self->dirty.length == 0)
        self->dirty_since = g_get_monotonic_time ();
      g_queue_push_tail_link (&self->dirty, &peer->dirty_link);
      peer->dirty = TRUE;
    }
  if (urgent)
    self->flush_now = TRUE;
}

/* Takes over @entry's references. Returns FALSE, dropping them, when the
 * queue is full: the caller then drops the peer as a slow consumer. */
gboolean
_elbus_peer_enqueue (ElbusPeer     *peer,
                     ElbusOutEntry *entry,
                     gboolean       urgent)
{
  ElbusBroker *broker = peer->broker;

  if (G_UNLIKELY (peer->closed || peer->out.len >= broker->queue_size ||
                  (peer->out.len > 0 && broker->max_queue_bytes > 0 &&
                   peer->out.bytes + _elbus_out_entry_len (entry) > broker->max_queue_bytes)))
    {
      _elbus_out_entry_clear (entry);
      return FALSE;
    }

  _elbus_out_queue_push (&peer->out, entry);

  /* an in-process client is never flushed from inside routing: its
   * handlers may send, and routing is not reentrant */
  if (!peer->want_write)
    {
      if (peer->out.bytes >= broker->buf_size && peer->local == NULL)
        _elbus_peer_flush (peer);
      else
        mark_dirty (broker, peer, urgent);
    }

  return TRUE;
}

/* A slow consumer: its queue is full. What it has not read is dropped
 * with it (a TCP reset, not a graceful close that would keep it). */
void
_elbus_peer_drop_slow (ElbusPeer *peer)
{
  peer->abort = TRUE;
  if (peer->broker->monitors->len > 0 && peer->broker->ops->is_monitor (peer->broker, peer))
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                       _("queue overflow (%u frames, %lu bytes waiting), dropping slow monitor"),
                       peer->out.len, (gulong) peer->out.bytes);
  else
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                       _("queue overflow (%u frames, %lu bytes waiting), dropping slow client"),
                       peer->out.len, (gulong) peer->out.bytes);
}

void
_elbus_peer_enqueue_ack (ElbusPeer *peer,
                         guint32    op_id,
                         guint8     result)
{
  ElbusOutEntry entry = { 0 };

  _elbus_codec_encode_ack (entry.hdr, op_id, result);
  entry.hdr_len = ELBUS_ACK_LEN;
  if (!_elbus_peer_enqueue (peer, &entry, TRUE) && !peer->closed)
    _elbus_peer_drop_slow (peer);
}

void
_elbus_peer_enqueue_ping (ElbusPeer *peer)
{
  ElbusOutEntry entry = { 0 };

  if (peer->closed)
    return;
  _elbus_codec_encode_broker_header (entry.hdr, ELBUS_KIND_PING, 0, FALSE);
  entry.hdr_len = ELBUS_BROKER_HEADER_LEN;
  _elbus_deadline_start (peer, ELBUS_DEADLINE_PING, g_get_monotonic_time ());
  _elbus_peer_enqueue (peer, &entry, TRUE);
}

/* The end of a drain: the queue is written, the peer goes. */
static void
finish_drain (ElbusPeer *peer)
{
  g_autofree char *reason = g_steal_pointer (&peer->drain_reason);

  linger_close (peer);
  _elbus_peer_close (peer, G_LOG_LEVEL_INFO, _("disconnected by the broker: %s"), reason);
}

/* Disconnects @peer on purpose (elbus_broker_disconnect_client()): queues
 * @notice, a publication body from .broker (TOPIC 00 PAYLOAD), if any,
 * stops reading from the peer, and closes it once its queue is written,
 * or when the write stalls for the timeout. An in-process client is
 * closed at once; it is told @reason directly. */
void
_elbus_peer_drain (ElbusPeer  *peer,
                   GBytes     *notice,
                   const char *reason)
{
  if (peer->closed || peer->drain_reason != NULL)
    return;

  if (peer->local != NULL)
    {
      _elbus_peer_close (peer, G_LOG_LEVEL_INFO, "%s", reason);
      return;
    }

  peer->drain_reason = g_strdup (reason);
  if (notice != NULL)
    {
      ElbusOutEntry entry = { 0 };
      gsize len;

      entry.bytes = g_bytes_ref (notice);
      entry.payload = g_bytes_get_data (notice, &len);
      entry.payload_len = len;
      _elbus_codec_encode_broker_header (entry.hdr, ELBUS_KIND_PUBLISH,
                                         strlen (".broker") + 1 + len, FALSE);
      _elbus_out_entry_set_name (&entry, ELBUS_BROKER_HEADER_LEN, ".broker", strlen (".broker"));
      if (!_elbus_peer_enqueue (peer, &entry, TRUE))
        {
          /* its queue is full: it would not read the notice in time */
          finish_drain (peer);
          return;
        }
    }

  if (!peer->deadline_on[ELBUS_DEADLINE_STALL])
    _elbus_deadline_start (peer, ELBUS_DEADLINE_STALL, g_get_monotonic_time ());
  _elbus_peer_flush (peer);
  /* an empty queue may still have a batch waiting for the socket in the
   * transport (WebSocket): then the end comes with _elbus_peer_writable() */
  if (!peer->closed && peer->out.len == 0 && !peer->want_write)
    finish_drain (peer);
}

static void
set_want_write (ElbusPeer *peer,
                gboolean   want)
{
  if (peer->want_write == want)
    return;

  peer->want_write = want;
  _elbus_dispatch_file_set_interest (&peer->file, PEER_EVENTS | (want ? EPOLLOUT : 0));
}

/* Writes as much of the queue as the socket takes; the rest waits for
 * EPOLLOUT, and a write that stays stuck for the timeout drops the peer. */
void
_elbus_peer_flush (ElbusPeer *peer)
{
  ElbusBroker *broker = peer->broker;
  guint64 frames = 0, bytes = 0;
  gsize waiting = peer->out.bytes;
  ElbusWriteStatus status;

  if (peer->dirty)
    {
      g_queue_unlink (&broker->dirty, &peer->dirty_link);
      peer->dirty = FALSE;
    }

  if (peer->closed || peer->out.len == 0)
    return;

  if (peer->funcs != NULL)
    status = peer->funcs->write (peer, &frames, &bytes);
  else
    status = _elbus_out_queue_write (&peer->out, peer->fd, &frames, &bytes);
  peer->stats.w_frames += frames;
  peer->stats.w_bytes += bytes;
  broker->stats.w_frames += frames;
  broker->stats.w_bytes += bytes;

  if (peer->kind == ELBUS_CLIENT_KIND_INTERNAL)
    {
      /* a client on another thread that does not take what waits */
      if (status != ELBUS_WRITE_DONE && !peer->closed)
        _elbus_peer_drop_slow (peer);
      return;
    }

  switch (status)
    {
    case ELBUS_WRITE_DONE:
      _elbus_deadline_stop (peer, ELBUS_DEADLINE_STALL);
      set_want_write (peer, FALSE);
      if (G_UNLIKELY (peer->drain_reason != NULL))
        finish_drain (peer);
      break;

    case ELBUS_WRITE_BLOCKED:
      /* the stall clock runs from the last write that made progress; a
       * draining peer's from the start of the drain, so that frames still
       * routed to it cannot keep it open */
      if (!peer->deadline_on[ELBUS_DEADLINE_STALL] ||
          (peer->out.bytes != waiting && peer->drain_reason == NULL))
        _elbus_deadline_start (peer, ELBUS_DEADLINE_STALL, g_get_monotonic_time ());
      set_want_write (peer, TRUE);
      break;

    case ELBUS_WRITE_FAILED:
    default:
      _elbus_peer_close (peer, G_LOG_LEVEL_INFO, _("write failed: %s"), g_strerror (errno));
      break;
    }
}

/* the handshake */

static void
queue_byte (ElbusPeer *peer,
            guint8     byte)
{
  ElbusOutEntry entry = { 0 };

  entry.hdr[0] = byte;
  entry.hdr_len = 1;
  _elbus_peer_enqueue (peer, &entry, TRUE);
}

static void
send_byte_now (ElbusPeer *peer,
               guint8     byte)
{
  queue_byte (peer, byte);
  _elbus_peer_flush (peer);
}

static void
refuse (ElbusPeer  *peer,
        guint8      code,
        const char *what)
{
  send_byte_now (peer, code);
  if (!peer->closed && peer->fd >= 0)
    linger_close (peer);
  _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, "%s (0x%02x, %s)", what, code,
                     elbus_error_code_to_string (code));
}

/* Runs the handshake on the bytes buffered so far. Returns TRUE when the
 * peer is registered and the rest of the buffer holds frames. */
static gboolean
handshake (ElbusPeer *peer)
{
  ElbusBroker *broker = peer->broker;
  const guint8 *buf = peer->rb.chunk->data + peer->rb.start;
  gsize len = peer->rb.end - peer->rb.start;
  guint8 result;

  if (peer->state == ELBUS_PEER_GREETING)
    {
      if (_elbus_codec_decode_greeting (buf, len, &result) == ELBUS_DECODE_INCOMPLETE)
        return FALSE;
      if (result != ELBUS_RESULT_OK)
        {
          refuse (peer, result, _("unsupported greeting or protocol version"));
          return FALSE;
        }
      peer->rb.start += ELBUS_GREETING_LEN;
      buf += ELBUS_GREETING_LEN;
      len -= ELBUS_GREETING_LEN;
      peer->state = ELBUS_PEER_NAME;
      /* a client that sent its name along gets both answers in one write */
      queue_byte (peer, ELBUS_RESULT_OK);
    }

  if (peer->state == ELBUS_PEER_NAME)
    {
      const char *name;
      gsize name_len, consumed, needed;

      if (_elbus_codec_decode_name (buf, len, &name, &name_len, &consumed, &needed) ==
          ELBUS_DECODE_INCOMPLETE)
        {
          if (needed > 2 + ELBUS_CODEC_MAX_NAME_LENGTH)
            refuse (peer, ELBUS_ERROR_DATA, _("client name too long"));
          else
            peer->rb.needed = needed;
          return FALSE;
        }

      result = _elbus_codec_check_name (name, name_len);
      if (result == ELBUS_RESULT_OK)
        result = broker->ops->register_name (broker, peer, name, name_len);
      if (result != ELBUS_RESULT_OK)
        {
          g_autofree char *shown = g_utf8_make_valid (name, MIN (name_len, 256));
          g_autofree char *what = g_strdup_printf (_("registration of “%s” refused"), shown);

          refuse (peer, result, what);
          return FALSE;
        }

      peer->rb.start += consumed;
      peer->rb.needed = 0;
      _elbus_deadline_stop (peer, ELBUS_DEADLINE_HANDSHAKE);
      send_byte_now (peer, ELBUS_RESULT_OK);
      return !peer->closed;
    }

  return TRUE;
}

/* reading */

static void
process_frames (ElbusPeer *peer)
{
  ElbusBroker *broker = peer->broker;
  ElbusReadBuf *rb = &peer->rb;
  /* held while routing: a frame may get the peer dropped (a slow consumer
   * of its own message or publication), which clears its read buffer,
   * and the frame's payload must outlive that for the other recipients
   * and the monitors */
  g_autoptr(ElbusChunk) chunk = _elbus_chunk_ref (rb->chunk);
  gboolean completed = FALSE;

  while (!peer->closed)
    {
      ElbusClientFrame frame;
      gsize needed = 0;
      g_autoptr(GError) error = NULL;

      switch (_elbus_codec_decode_client_frame (chunk->data + rb->start,
                                                rb->end - rb->start,
                                                broker->max_frame_size,
                                                &frame, &needed, &error))
        {
        case ELBUS_DECODE_OK:
          rb->start += frame.frame_len;
          /* the clock of an incomplete frame runs from the last complete
           * one: a client streaming steadily may never stop mid-frame */
          completed = TRUE;
          peer->stats.r_frames++;
          peer->stats.r_bytes += frame.frame_len;
          broker->stats.r_frames++;
          broker->stats.r_bytes += frame.frame_len;
          broker->ops->route (broker, peer, &frame, chunk);
          break;

        case ELBUS_DECODE_INCOMPLETE:
          rb->needed = needed;
          if (rb->start == rb->end)
            _elbus_deadline_stop (peer, ELBUS_DEADLINE_PARTIAL);
          else if (completed || !peer->deadline_on[ELBUS_DEADLINE_PARTIAL])
            _elbus_deadline_start (peer, ELBUS_DEADLINE_PARTIAL, g_get_monotonic_time ());
          return;

        case ELBUS_DECODE_ERROR:
        default:
          _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, _("protocol error: %s"), error->message);
          return;
        }
    }
}

/* Decodes what the read buffer holds: the handshake, then frames. */
static void
consume (ElbusPeer *peer)
{
  /* a peer being disconnected is read only to see its end */
  if (G_UNLIKELY (peer->drain_reason != NULL))
    peer->rb.start = peer->rb.end;
  else if (peer->state == ELBUS_PEER_REGISTERED || handshake (peer))
    process_frames (peer);

  /* an idle connection holds no read buffer: the next read takes one from
   * the pool (thousands of idle clients would pin 64 KiB each) */
  if (peer->rb.chunk != NULL && peer->rb.start == peer->rb.end && !peer->closed)
    _elbus_read_buf_clear (&peer->rb);
}

/* One read(). Under edge-triggered epoll the event is drained only when a
 * read comes back short or with EAGAIN: a full buffer may have left bytes
 * in the socket, and the peer stays on the ready list for another turn. */
static void
peer_read (ElbusPeer *peer)
{
  ElbusReadBuf *rb = &peer->rb;
  gssize n = _elbus_read_buf_fill (rb, peer->fd);

  if (n < 0)
    {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          _elbus_dispatch_file_clear (&peer->file, PEER_READ_EVENTS);
          return;
        }
      _elbus_peer_close (peer, G_LOG_LEVEL_INFO, _("read failed: %s"), g_strerror (errno));
      return;
    }

  if (n == 0)
    {
      _elbus_peer_hangup (peer);
      return;
    }

  /* a short read took all there was; a hang-up or an error still waits
   * for the read that reports it */
  if (rb->end < rb->chunk->size)
    _elbus_dispatch_file_clear (&peer->file, EPOLLIN);

  consume (peer);
}

/* The end of the peer's stream. */
void
_elbus_peer_hangup (ElbusPeer *peer)
{
  ElbusReadBuf *rb = &peer->rb;

  if (rb->end > rb->start)
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                       _("disconnected in the middle of a frame (%lu bytes unread)"),
                       (gulong) (rb->end - rb->start));
  else if (peer->state != ELBUS_PEER_REGISTERED)
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, _("disconnected during the handshake"));
  else
    _elbus_peer_close (peer, G_LOG_LEVEL_INFO, _("disconnected"));
}

/* Bytes that came without a read() (a WebSocket message): copied into the
 * read buffer as a read would have put them there, and decoded alike. */
void
_elbus_peer_feed (ElbusPeer    *peer,
                  const guint8 *data,
                  gsize         len)
{
  while (len > 0 && !peer->closed)
    {
      gsize space;
      guint8 *dest = _elbus_read_buf_prepare (&peer->rb, &space);
      gsize n = MIN (space, len);

      memcpy (dest, data, n);
      peer->rb.end += n;
      data += n;
      len -= n;
      consume (peer);
    }
}

/* A WebSocket peer that waited for its socket to drain may send again. */
void
_elbus_peer_writable (ElbusPeer *peer)
{
  if (peer->closed)
    return;
  if (peer->out.len > 0)
    {
      peer->want_write = FALSE;
      _elbus_peer_flush (peer);
      return;
    }
  _elbus_deadline_stop (peer, ELBUS_DEADLINE_STALL);
  set_want_write (peer, FALSE);
  /* the last of a drained peer's queue is out */
  if (G_UNLIKELY (peer->drain_reason != NULL))
    finish_drain (peer);
}

/* One turn on the broker's ready list: input first, so that what it
 * produces for this peer leaves with the flush. */
static void
peer_dispatch (ElbusDispatchFile *file)
{
  ElbusPeer *peer = (ElbusPeer *) ((guint8 *) file - G_STRUCT_OFFSET (ElbusPeer, file));
  guint32 events = file->events;

  peer->ref++;

  /* one read a turn, as one read a wake-up before: reading more at
   * once would move frames from the kernel's buffers into the queues of
   * their recipients, and a client that paces itself by a window just
   * below the queue size would find its queue full */
  if (events & PEER_READ_EVENTS)
    peer_read (peer);

  if (!peer->closed && (events & EPOLLOUT))
    {
      _elbus_dispatch_file_clear (file, EPOLLOUT);
      _elbus_peer_flush (peer);
    }

  _elbus_peer_unref (peer);
}

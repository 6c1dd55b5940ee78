/* SPDX-License-Identifier: MIT */
/*
 * One broker connection: its read buffer, the handshake, the frame loop and
 * the outgoing queue.
 *
 * Reading: one read() per wake-up into a refcounted chunk (elbus-io.c);
 * every complete frame in it is routed in place, and recipients keep a
 * reference to the chunk instead of a copy of the payload.
 *
 * Writing: a recipient's queue (elbus-io.c) is written in one sendmsg() of
 * many iovecs. A socket that takes no more makes the peer wait for
 * G_IO_OUT; it never makes anyone else wait.
 */
#define _GNU_SOURCE   /* struct ucred */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elbus-broker-private.h"
#include "elbus-client-private.h"
#include "elbus-error.h"

/* peers */

typedef struct {
  GSource    source;
  ElbusPeer *peer;       /* (unowned): the peer owns the source */
} ElbusPeerSource;

static gboolean peer_dispatch (GSource     *source,
                               GSourceFunc  callback,
                               gpointer     user_data);

static GSourceFuncs peer_source_funcs = {
  .dispatch = peer_dispatch,
};

static void handshake_timeout_cb_destroy (gpointer data);
static gboolean handshake_timeout_cb (gpointer data);

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
  g_autoptr(GCredentials) credentials = g_socket_get_credentials (peer->socket, NULL);
  const struct ucred *ucred;

  if (credentials == NULL)
    return;
  ucred = g_credentials_get_native (credentials, G_CREDENTIALS_TYPE_LINUX_UCRED);
  if (ucred == NULL)
    return;
  peer->uid = ucred->uid;
  peer->gid = ucred->gid;
  peer->pid = ucred->pid;
}

/* "ip:port" of a TCP socket's remote end, and its address if @address is
 * not NULL; NULL when it is not an inet socket. */
char *
_elbus_socket_describe_remote (GSocket       *socket,
                               GInetAddress **address)
{
  g_autoptr(GSocketAddress) remote = g_socket_get_remote_address (socket, NULL);
  GInetSocketAddress *isa;
  g_autofree char *ip = NULL;

  if (!G_IS_INET_SOCKET_ADDRESS (remote))
    return NULL;

  isa = G_INET_SOCKET_ADDRESS (remote);
  if (address != NULL)
    *address = g_object_ref (g_inet_socket_address_get_address (isa));
  ip = g_inet_address_to_string (g_inet_socket_address_get_address (isa));
  return g_strdup_printf ("%s:%u", ip, g_inet_socket_address_get_port (isa));
}

ElbusPeer *
_elbus_peer_new (ElbusBroker     *broker,
                 GSocket         *socket,
                 ElbusClientKind  kind,
                 const char      *port)
{
  ElbusPeer *peer = g_new0 (ElbusPeer, 1);
  ElbusPeerSource *ps;
  guint8 greeting[ELBUS_GREETING_LEN];
  ElbusOutEntry entry = { 0 };

  peer->broker = broker;
  peer->ref = 1;
  peer->socket = g_object_ref (socket);
  peer->fd = g_socket_get_fd (socket);
  peer->uid = peer->gid = peer->pid = -1;
  peer->kind = kind;
  peer->port = g_strdup (port);
  peer->state = ELBUS_PEER_GREETING;
  peer->dirty_link.data = peer;
  _elbus_out_queue_init (&peer->out);
  peer->last_ping = g_get_monotonic_time ();

  g_socket_set_blocking (socket, FALSE);

  if (kind == ELBUS_CLIENT_KIND_TCP)
    {
      set_nodelay (peer->fd);
      peer->source_addr = _elbus_socket_describe_remote (socket, &peer->address);
    }
  else
    read_credentials (peer);

  ps = (ElbusPeerSource *) g_source_new (&peer_source_funcs, sizeof (ElbusPeerSource));
  ps->peer = peer;
  peer->source = (GSource *) ps;
  g_source_set_static_name (peer->source, "[elbus] broker peer");
  peer->fd_tag = g_source_add_unix_fd (peer->source, peer->fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_attach (peer->source, broker->context);

  peer->handshake_timeout = g_timeout_source_new ((guint) (broker->handshake_timeout * 1000));
  g_source_set_static_name (peer->handshake_timeout, "[elbus] handshake timeout");
  g_source_set_callback (peer->handshake_timeout, handshake_timeout_cb, peer,
                         handshake_timeout_cb_destroy);
  peer->ref++;
  g_source_attach (peer->handshake_timeout, broker->context);

  _elbus_codec_encode_greeting (greeting);
  memcpy (entry.hdr, greeting, sizeof greeting);
  entry.hdr_len = sizeof greeting;
  _elbus_peer_enqueue (peer, &entry, TRUE);
  _elbus_peer_flush (peer);

  return peer;
}

/* An in-process client's end: no socket, no source. What is queued for it
 * is handed to the client object when flushed; what it sends is routed
 * directly (see elbus-client.c). */
ElbusPeer *
_elbus_peer_new_internal (ElbusBroker *broker,
                          ElbusClient *client)
{
  ElbusPeer *peer = g_new0 (ElbusPeer, 1);

  peer->broker = broker;
  peer->ref = 1;
  peer->fd = -1;
  peer->uid = peer->gid = peer->pid = -1;
  peer->kind = ELBUS_CLIENT_KIND_INTERNAL;
  peer->internal = client;
  peer->state = ELBUS_PEER_NAME;
  peer->dirty_link.data = peer;
  _elbus_out_queue_init (&peer->out);
  peer->last_ping = g_get_monotonic_time ();

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
  g_clear_pointer (&peer->source, g_source_unref);
  g_clear_object (&peer->socket);
  g_clear_pointer (&peer->name, g_ref_string_release);
  g_clear_pointer (&peer->secondaries, g_ptr_array_unref);
  g_clear_object (&peer->address);
  g_clear_object (&peer->policy);
  g_free (peer->source_addr);
  g_free (peer->port);
  g_free (peer);
}

/* Best effort to let a refusal byte reach a peer before the socket goes:
 * closing with unread input would reset the connection and discard it. */
static void
linger_close (ElbusPeer *peer)
{
  guint8 sink[4096];

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
  ElbusClient *internal;
  va_list args;

  if (peer->closed)
    return;
  peer->closed = TRUE;

  va_start (args, format);
  reason = g_strdup_vprintf (format, args);
  va_end (args);
  if (peer->state == ELBUS_PEER_REGISTERED || _elbus_broker_log_unregistered (broker))
    g_log (G_LOG_DOMAIN, level, "client %s: %s", _elbus_peer_describe (peer), reason);

  if (peer->handshake_timeout != NULL)
    {
      g_source_destroy (peer->handshake_timeout);
      g_clear_pointer (&peer->handshake_timeout, g_source_unref);
    }

  if (peer->dirty)
    {
      g_queue_unlink (&broker->dirty, &peer->dirty_link);
      peer->dirty = FALSE;
    }

  if (peer->source != NULL)
    g_source_destroy (peer->source);
  if (peer->abort && peer->kind == ELBUS_CLIENT_KIND_TCP)
    {
      struct linger reset = { .l_onoff = 1, .l_linger = 0 };

      (void) setsockopt (peer->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
  if (peer->socket != NULL)
    g_socket_close (peer->socket, NULL);
  _elbus_out_queue_clear (&peer->out);
  _elbus_read_buf_clear (&peer->rb);

  /* held: a client-unregistered handler may drop it */
  internal = peer->internal != NULL ? g_object_ref (peer->internal) : NULL;
  peer->internal = NULL;

  /* takes over the registry's reference and emits client-unregistered */
  _elbus_broker_forget_peer (broker, peer);

  /* an in-process client learns it at once, its name already free */
  if (internal != NULL)
    {
      _elbus_client_internal_closed (internal, reason);
      g_object_unref (internal);
    }
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
      if (peer->out.bytes >= broker->buf_size && peer->internal == NULL)
        _elbus_peer_flush (peer);
      else
        _elbus_broker_mark_dirty (broker, peer, urgent);
    }

  return TRUE;
}

/* A slow consumer: its queue is full. What it has not read is dropped
 * with it (a TCP reset, not a graceful close that would keep it). */
void
_elbus_peer_drop_slow (ElbusPeer *peer)
{
  peer->abort = TRUE;
  _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                     "queue overflow (%u frames, %" G_GSIZE_FORMAT " bytes waiting), "
                     "dropping slow %s",
                     peer->out.len, peer->out.bytes,
                     peer->broker->monitors->len > 0 &&
                     _elbus_broker_monitor_is (peer->broker, peer) ? "monitor" : "client");
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

  _elbus_codec_encode_broker_header (entry.hdr, ELBUS_KIND_PING, 0, FALSE);
  entry.hdr_len = ELBUS_BROKER_HEADER_LEN;
  peer->last_ping = g_get_monotonic_time ();
  _elbus_peer_enqueue (peer, &entry, TRUE);
}

static void
set_want_write (ElbusPeer *peer,
                gboolean   want)
{
  if (peer->want_write == want)
    return;

  peer->want_write = want;
  g_source_modify_unix_fd (peer->source, peer->fd_tag,
                           G_IO_IN | G_IO_HUP | G_IO_ERR | (want ? G_IO_OUT : 0));
}

/* Writes as much of the queue as the socket takes; the rest waits for
 * G_IO_OUT, and a write that stays stuck for the timeout drops the peer. */
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

  if (peer->internal != NULL)
    {
      _elbus_client_internal_deliver (peer->internal, &peer->out, &frames, &bytes);
      peer->stats.w_frames += frames;
      peer->stats.w_bytes += bytes;
      broker->stats.w_frames += frames;
      broker->stats.w_bytes += bytes;
      return;
    }

  status = _elbus_out_queue_write (&peer->out, peer->fd, &frames, &bytes);
  peer->stats.w_frames += frames;
  peer->stats.w_bytes += bytes;
  broker->stats.w_frames += frames;
  broker->stats.w_bytes += bytes;

  switch (status)
    {
    case ELBUS_WRITE_DONE:
      peer->stall_since = 0;
      set_want_write (peer, FALSE);
      break;

    case ELBUS_WRITE_BLOCKED:
      /* the stall clock runs from the last write that made progress */
      if (peer->out.bytes != waiting || peer->stall_since == 0)
        peer->stall_since = g_get_monotonic_time ();
      set_want_write (peer, TRUE);
      break;

    case ELBUS_WRITE_FAILED:
    default:
      _elbus_peer_close (peer, G_LOG_LEVEL_INFO, "write failed: %s", g_strerror (errno));
      break;
    }
}

/* the handshake */

static gboolean
handshake_timeout_cb (gpointer data)
{
  ElbusPeer *peer = data;

  g_clear_pointer (&peer->handshake_timeout, g_source_unref);
  _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, "handshake timed out");

  return G_SOURCE_REMOVE;
}

static void
handshake_timeout_cb_destroy (gpointer data)
{
  _elbus_peer_unref (data);
}

static void
send_byte_now (ElbusPeer *peer,
               guint8     byte)
{
  ElbusOutEntry entry = { 0 };

  entry.hdr[0] = byte;
  entry.hdr_len = 1;
  _elbus_peer_enqueue (peer, &entry, TRUE);
  _elbus_peer_flush (peer);
}

static void
refuse (ElbusPeer  *peer,
        guint8      code,
        const char *what)
{
  send_byte_now (peer, code);
  if (!peer->closed)
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
          refuse (peer, result, "unsupported greeting or protocol version");
          return FALSE;
        }
      peer->rb.start += ELBUS_GREETING_LEN;
      buf += ELBUS_GREETING_LEN;
      len -= ELBUS_GREETING_LEN;
      peer->state = ELBUS_PEER_NAME;
      send_byte_now (peer, ELBUS_RESULT_OK);
      if (peer->closed)
        return FALSE;
    }

  if (peer->state == ELBUS_PEER_NAME)
    {
      const char *name;
      gsize name_len, consumed, needed;

      if (_elbus_codec_decode_name (buf, len, &name, &name_len, &consumed, &needed) ==
          ELBUS_DECODE_INCOMPLETE)
        {
          if (needed > 2 + ELBUS_MAX_NAME_LENGTH)
            refuse (peer, ELBUS_ERROR_DATA, "client name too long");
          else
            peer->rb.needed = needed;
          return FALSE;
        }

      result = _elbus_codec_check_name (name, name_len);
      if (result == ELBUS_RESULT_OK)
        result = _elbus_broker_register (broker, peer, name, name_len);
      if (result != ELBUS_RESULT_OK)
        {
          g_autofree char *shown = g_utf8_make_valid (name, MIN (name_len, 256));
          g_autofree char *what = g_strdup_printf ("registration of \"%s\" refused", shown);

          refuse (peer, result, what);
          return FALSE;
        }

      peer->rb.start += consumed;
      peer->rb.needed = 0;
      if (peer->handshake_timeout != NULL)
        {
          g_source_destroy (peer->handshake_timeout);
          g_clear_pointer (&peer->handshake_timeout, g_source_unref);
        }
      send_byte_now (peer, ELBUS_RESULT_OK);
      return !peer->closed;
    }

  return TRUE;
}

/* reading */

/* reading */

static void
process_frames (ElbusPeer *peer)
{
  ElbusBroker *broker = peer->broker;
  ElbusReadBuf *rb = &peer->rb;
  ElbusChunk *chunk = rb->chunk;

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
          peer->partial_since = 0;
          peer->stats.r_frames++;
          peer->stats.r_bytes += frame.frame_len;
          broker->stats.r_frames++;
          broker->stats.r_bytes += frame.frame_len;
          _elbus_broker_route (broker, peer, &frame, chunk);
          break;

        case ELBUS_DECODE_INCOMPLETE:
          rb->needed = needed;
          if (rb->start == rb->end)
            peer->partial_since = 0;
          else if (peer->partial_since == 0)
            peer->partial_since = g_get_monotonic_time ();
          return;

        case ELBUS_DECODE_ERROR:
        default:
          _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, "protocol error: %s", error->message);
          return;
        }
    }
}

static void
peer_read (ElbusPeer *peer)
{
  ElbusReadBuf *rb = &peer->rb;
  gssize n = _elbus_read_buf_fill (rb, peer->fd);

  if (n < 0)
    {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      _elbus_peer_close (peer, G_LOG_LEVEL_INFO, "read failed: %s", g_strerror (errno));
      return;
    }

  if (n == 0)
    {
      if (rb->end > rb->start)
        _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                           "disconnected in the middle of a frame (%" G_GSIZE_FORMAT " bytes unread)",
                           rb->end - rb->start);
      else if (peer->state != ELBUS_PEER_REGISTERED)
        _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, "disconnected during the handshake");
      else
        _elbus_peer_close (peer, G_LOG_LEVEL_INFO, "disconnected");
      return;
    }

  if (peer->state == ELBUS_PEER_REGISTERED || handshake (peer))
    process_frames (peer);

  /* an idle connection holds no read buffer: the next read takes one from
   * the pool (thousands of idle clients would pin 64 KiB each) */
  if (peer->rb.chunk != NULL && peer->rb.start == peer->rb.end && !peer->closed)
    _elbus_read_buf_clear (&peer->rb);
}

static gboolean
peer_dispatch (GSource     *source,
               GSourceFunc  callback,
               gpointer     user_data)
{
  ElbusPeer *peer = ((ElbusPeerSource *) source)->peer;
  ElbusBroker *broker = peer->broker;
  GIOCondition cond = g_source_query_unix_fd (source, peer->fd_tag);

  peer->ref++;

  if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR))
    peer_read (peer);

  if (!peer->closed && (cond & G_IO_OUT))
    _elbus_peer_flush (peer);

  _elbus_broker_end_dispatch (broker);
  _elbus_peer_unref (peer);

  return G_SOURCE_CONTINUE;
}

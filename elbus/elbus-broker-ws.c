/* SPDX-License-Identifier: MIT */
/*
 * The broker's WebSocket transport (ws://HOST:PORT[/PATH], and
 * wss://HOST:PORT[/PATH] over TLS), as BUS/RT has it: a SoupServer on the
 * broker's GMainContext answers the HTTP upgrade, and the elbus byte
 * stream then rides in binary WebSocket messages whose boundaries mean
 * nothing (a frame may span messages, a message may hold many frames).
 * A wss:// server presents the broker's tls-certificate; libsoup does the
 * TLS handshake before the HTTP request is read.
 *
 * libsoup answers the HTTP request (the 101 of the upgrade, agreeing to
 * no extension, or 400/404) and then hands the connection over: its
 * socket becomes a file on the broker's epoll instance, as a TCP client's
 * is, and the WebSocket framing (RFC 6455) is done here, so that an idle
 * WebSocket client costs the main loop nothing. The peer has no fd of its
 * own (peer->fd is -1; ElbusWsPeer holds the socket and the stream, a
 * TLS connection's for wss://): what is read is unmasked and fed to the
 * peer's read path (_elbus_peer_feed()), so the handshake, limits,
 * timeouts and routing are the TCP ones; a flush drains the peer's queue
 * into one binary frame behind room for its header (one copy, one
 * write), and what the socket does not take waits in that buffer for
 * EPOLLOUT while new frames wait in the peer's queue, where the queue
 * limits, the stall timeout and the slow-consumer rule apply as to a TCP
 * client. Pings are answered with pongs, fragments and frame boundaries
 * mean nothing, a close frame is answered and ends the connection.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "elbus-broker-private.h"
#include "elbus-i18n-private.h"
#include "elbus-ws-frame-private.h"

#ifdef HAVE_LIBSOUP

#include <libsoup/soup.h>


typedef struct {
  ElbusBroker *broker;             /* (unowned) */
  SoupServer  *server;             /* (owned) */
  char        *bind_string;        /* (owned): the ws:// address as configured */
  char        *path;               /* (owned) */
  gboolean     tls;                /* wss:// */
} ElbusWsListener;

static void
ws_listener_free (gpointer data)
{
  ElbusWsListener *listener = data;

  g_object_set_data (G_OBJECT (listener->server), "elbus-listener", NULL);
  soup_server_disconnect (listener->server);
  g_object_unref (listener->server);
  g_free (listener->bind_string);
  g_free (listener->path);
  g_free (listener);
}

/* A new certificate for the wss:// servers (notify::tls-certificate, so
 * that the broker core needs to know nothing of them): libsoup hands it on
 * to their listening sockets, for the connections accepted from now on.
 * (libsoup 3.2's listening socket keeps a reference on the certificate it
 * had: one certificate per listener and renewal.) */
static void
tls_certificate_notify_cb (ElbusBroker *broker,
                           GParamSpec  *pspec,
                           gpointer     user_data)
{
  if (broker->ws_listeners == NULL || broker->tls_certificate == NULL)
    return;

  for (guint i = 0; i < broker->ws_listeners->len; i++)
    {
      ElbusWsListener *listener = g_ptr_array_index (broker->ws_listeners, i);

      if (listener->tls)
        soup_server_set_tls_certificate (listener->server, broker->tls_certificate);
    }
}

/* After the upgrade, the connection is the broker's own: the stream
 * libsoup hands over (a socket's, or the TLS connection's on it) is read
 * and written without blocking, its socket is a file on the broker's
 * epoll instance like any TCP client's, and the WebSocket framing
 * (RFC 6455) is done here. So a WebSocket client costs the main loop
 * nothing while it is idle: thousands of them do not slow anyone's round
 * trip (libsoup's own connection object would put one more source on the
 * GMainContext for each, polled on every iteration). */

#define WS_EVENTS      (EPOLLIN | EPOLLRDHUP)
#define WS_READ_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)


struct _ElbusWsPeer {
  ElbusPeer         *peer;         /* (unowned): owns us */
  ElbusDispatchFile  file;         /* the socket on the broker's epoll */
  GIOStream         *stream;       /* (owned): taken over from libsoup */
  GSocket           *socket;       /* (owned) */
  GInputStream      *in;           /* (unowned): the stream's */
  GOutputStream     *out;          /* (unowned): the stream's */
  gboolean           tls;          /* a read may end short of what is there */

  ElbusWsReader      reader;       /* the client's frames */

  /* what waits for the socket: whole WebSocket frames from wpos on */
  GByteArray        *wbuf;         /* (owned) */
  gsize              wpos;
  gboolean           close_sent;
};

/* The largest WebSocket frame taken: a frame of the largest size the
 * broker takes, plus room for the frames around it. */
static guint64
max_message_size (ElbusBroker *broker)
{
  return (guint64) broker->max_frame_size + ELBUS_READ_CHUNK_SIZE;
}

/* Writes what waits in wbuf as far as the socket takes it. */
static ElbusWriteStatus
ws_write_pending (ElbusWsPeer *ws)
{
  while (ws->wpos < ws->wbuf->len)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (ws->out),
                                                             ws->wbuf->data + ws->wpos,
                                                             ws->wbuf->len - ws->wpos,
                                                             NULL, &error);

      if (n < 0)
        {
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            return ELBUS_WRITE_BLOCKED;
          errno = EPIPE;
          return ELBUS_WRITE_FAILED;
        }
      ws->wpos += n;
    }

  if (ws->wbuf->len > ELBUS_READ_CHUNK_SIZE)
    {
      /* a large batch once is no reason to keep its buffer */
      g_byte_array_unref (ws->wbuf);
      ws->wbuf = g_byte_array_new ();
    }
  else
    g_byte_array_set_size (ws->wbuf, 0);
  ws->wpos = 0;
  return ELBUS_WRITE_DONE;
}

/* Queues a control frame behind what waits. */
static void
queue_control (ElbusWsPeer  *ws,
               guint8        opcode,
               const guint8 *payload,
               gsize         len)
{
  guint8 hdr[ELBUS_WS_MAX_HEADER];

  g_byte_array_append (ws->wbuf, hdr, _elbus_ws_encode_header (hdr, opcode, len));
  g_byte_array_append (ws->wbuf, payload, len);
}

static void
queue_close (ElbusWsPeer *ws,
             guint16      code,
             const char  *reason)
{
  guint8 payload[2 + 64];
  gsize len = MIN (strlen (reason), 64);

  if (ws->close_sent)
    return;
  ws->close_sent = TRUE;
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  memcpy (payload + 2, reason, len);
  queue_control (ws, ELBUS_WS_OP_CLOSE, payload, 2 + len);
}

static void
set_want_write (ElbusWsPeer *ws,
                gboolean     want)
{
  _elbus_dispatch_file_set_interest (&ws->file, WS_EVENTS | (want ? EPOLLOUT : 0));
}

/* Lets go of the connection: if @graceful, what waits still goes out as
 * far as the socket takes it at once, with a close frame, and the unread
 * input is drained so that the close does not reset the connection and
 * lose it; then the socket closes. */
static void
ws_release (ElbusWsPeer *ws,
            gboolean     graceful)
{
  _elbus_dispatch_file_remove (&ws->file);
  if (graceful)
    {
      queue_close (ws, ELBUS_WS_CLOSE_NORMAL, "");
      if (ws_write_pending (ws) != ELBUS_WRITE_FAILED)
        {
          guint8 sink[4096];
          int fd = g_socket_get_fd (ws->socket);

          shutdown (fd, SHUT_WR);
          while (read (fd, sink, sizeof sink) > 0)
            ;
        }
    }
  /* the socket first: closing the stream then sends nothing */
  g_socket_close (ws->socket, NULL);
  g_io_stream_close (ws->stream, NULL, NULL);
  g_object_unref (ws->stream);
  g_object_unref (ws->socket);
  g_byte_array_unref (ws->wbuf);
  g_free (ws);
}

/* Called by _elbus_peer_close(): gracefully unless the peer is dropped
 * (a slow consumer, a broker closing). */
static void
ws_peer_close (ElbusPeer *peer)
{
  ElbusWsPeer *ws = g_steal_pointer (&peer->ws);

  if (ws != NULL)
    ws_release (ws, !peer->abort && !peer->broker->closed);
}

/* Writes what waits in wbuf, without the peer's queue (a pong). */
static void
ws_send_pending (ElbusWsPeer *ws)
{
  switch (ws_write_pending (ws))
    {
    case ELBUS_WRITE_DONE:
      break;
    case ELBUS_WRITE_BLOCKED:
      set_want_write (ws, TRUE);
      break;
    default:
      _elbus_peer_close (ws->peer, G_LOG_LEVEL_INFO, _("write failed: %s"), g_strerror (errno));
      break;
    }
}

/* Sends what waits in the peer's queue as one binary frame (after what
 * the socket has not taken yet, if anything). */
static ElbusWriteStatus
ws_peer_write (ElbusPeer *peer,
               guint64   *frames,
               guint64   *bytes)
{
  ElbusWsPeer *ws = peer->ws;
  ElbusWriteStatus status;
  gsize start, payload, hdr_len;
  guint8 hdr[ELBUS_WS_MAX_HEADER];

  if (ws->wpos < ws->wbuf->len)
    {
      gsize before = ws->wpos;

      status = ws_write_pending (ws);
      if (status != ELBUS_WRITE_DONE)
        {
          /* progress restarts the stall clock, as on a TCP socket */
          if (status == ELBUS_WRITE_BLOCKED && ws->wpos != before)
            _elbus_deadline_start (peer, ELBUS_DEADLINE_STALL, g_get_monotonic_time ());
          set_want_write (ws, status == ELBUS_WRITE_BLOCKED);
          return status;
        }
    }

  /* the batch goes behind room for its header, which is written in front
   * of it once its length is known: one copy, one write */
  start = ws->wbuf->len;
  g_byte_array_set_size (ws->wbuf, start + ELBUS_WS_MAX_HEADER);
  _elbus_out_queue_drain (&peer->out, ws->wbuf, frames, bytes);
  payload = ws->wbuf->len - start - ELBUS_WS_MAX_HEADER;
  hdr_len = _elbus_ws_encode_header (hdr, ELBUS_WS_OP_BINARY, payload);
  memcpy (ws->wbuf->data + start + ELBUS_WS_MAX_HEADER - hdr_len, hdr, hdr_len);
  if (start == 0)
    ws->wpos = ELBUS_WS_MAX_HEADER - hdr_len;
  else
    g_byte_array_remove_range (ws->wbuf, start, ELBUS_WS_MAX_HEADER - hdr_len);

  status = ws_write_pending (ws);
  set_want_write (ws, status == ELBUS_WRITE_BLOCKED);
  return status;
}

/* what the peer calls on its WebSocket connection */
static const ElbusPeerFuncs ws_peer_funcs = {
  .write = ws_peer_write,
  .close = ws_peer_close,
};

static gboolean
ws_data_cb (gpointer  user_data,
            guint8   *bytes,
            gsize     len)
{
  ElbusWsPeer *ws = user_data;
  ElbusPeer *peer = ws->peer;

  _elbus_peer_feed (peer, bytes, len);
  return !peer->closed;
}

/* A control frame read whole. */
static gboolean
ws_control_cb (gpointer      user_data,
               guint8        opcode,
               const guint8 *payload,
               gsize         len)
{
  ElbusWsPeer *ws = user_data;
  ElbusPeer *peer = ws->peer;

  switch (opcode)
    {
    case ELBUS_WS_OP_PING:
      queue_control (ws, ELBUS_WS_OP_PONG, payload, len);
      /* behind a batch the socket did not take, it waits for EPOLLOUT */
      if (!(ws->file.interest & EPOLLOUT))
        ws_send_pending (ws);
      break;

    case ELBUS_WS_OP_CLOSE:
      /* the client said goodbye: answered with the same code */
      if (len >= 2)
        queue_close (ws, (payload[0] << 8) | payload[1], "");
      else
        queue_close (ws, ELBUS_WS_CLOSE_NORMAL, "");
      _elbus_peer_hangup (peer);
      break;

    default:
      /* a pong */
      break;
    }
  return !peer->closed;
}

static const ElbusWsReaderFuncs ws_reader_funcs = {
  .data = ws_data_cb,
  .control = ws_control_cb,
};

/* Decodes @len bytes read from the socket (unmasked in place). */
static void
ws_decode (ElbusWsPeer *ws,
           guint8      *data,
           gsize        len)
{
  ElbusPeer *peer = ws->peer;
  g_autoptr(GError) error = NULL;
  guint16 code = 0;

  if (_elbus_ws_reader_feed (&ws->reader, data, len, &ws_reader_funcs, ws, &code,
                             &error) != ELBUS_WS_READ_ERROR)
    return;

  /* a frame the client should not have sent: its connection goes */
  queue_close (ws, code, "");
  if (code == ELBUS_WS_CLOSE_UNSUPPORTED)
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                       _("protocol error: a WebSocket text message (elbus takes binary ones)"));
  else
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, _("WebSocket error: %s"), error->message);
}

/* One read a turn, as for a TCP client. */
static void
ws_read (ElbusWsPeer *ws)
{
  ElbusPeer *peer = ws->peer;
  g_autoptr(GError) error = NULL;
  guint8 buf[ELBUS_READ_CHUNK_SIZE];
  gssize n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (ws->in),
                                                       buf, sizeof buf, NULL, &error);

  if (n < 0)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        _elbus_dispatch_file_clear (&ws->file, WS_READ_EVENTS);
      else
        _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, _("WebSocket error: %s"), error->message);
      return;
    }

  if (n == 0)
    {
      /* no close frame came: the socket went, perhaps in the middle of a
       * WebSocket frame */
      if (_elbus_ws_reader_in_frame (&ws->reader) ||
          (peer->state == ELBUS_PEER_REGISTERED && peer->rb.end == peer->rb.start))
        _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                           _("the connection ended without a WebSocket close frame "
                             "(the client went away, perhaps in the middle of a WebSocket frame)"));
      else
        _elbus_peer_hangup (peer);
      return;
    }

  /* a short read from a socket took all there was; TLS may end a read at
   * a record, so there only "would block" says so */
  if (!ws->tls && (gsize) n < sizeof buf)
    _elbus_dispatch_file_clear (&ws->file, EPOLLIN);

  ws_decode (ws, buf, n);
}

static void
ws_dispatch (ElbusDispatchFile *file)
{
  ElbusWsPeer *ws = (ElbusWsPeer *) ((guint8 *) file - G_STRUCT_OFFSET (ElbusWsPeer, file));
  ElbusPeer *peer = ws->peer;
  guint32 events = file->events;

  peer->ref++;

  if (events & WS_READ_EVENTS)
    ws_read (ws);

  /* the socket takes more: first what waited in wbuf, then the queue */
  if (peer->ws != NULL && (events & EPOLLOUT))
    {
      _elbus_dispatch_file_clear (file, EPOLLOUT);
      if (peer->out.len > 0)
        _elbus_peer_flush (peer);
      else
        switch (ws_write_pending (ws))
          {
          case ELBUS_WRITE_DONE:
            set_want_write (ws, FALSE);
            _elbus_peer_writable (peer);
            break;
          case ELBUS_WRITE_BLOCKED:
            _elbus_deadline_start (peer, ELBUS_DEADLINE_STALL, g_get_monotonic_time ());
            break;
          default:
            _elbus_peer_close (peer, G_LOG_LEVEL_INFO, _("write failed: %s"), g_strerror (errno));
            break;
          }
    }

  _elbus_peer_unref (peer);
}

/* The 101 answer is out: the connection is the broker's from now on. */
static void
upgraded_cb (SoupServerMessage *msg,
             gpointer           user_data)
{
  ElbusWsListener *listener = user_data;
  ElbusBroker *broker = listener->broker;
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GIOStream) stream = NULL;
  struct sockaddr_storage addr;
  gsize addr_len = 0;
  g_autofree char *source = NULL;
  ElbusWsPeer *ws;
  ElbusPeer *peer;
  int add_errno = 0;

  g_signal_handlers_disconnect_by_func (msg, upgraded_cb, user_data);
  if (soup_server_message_get_socket (msg) == NULL)
    return;
  socket = g_object_ref (soup_server_message_get_socket (msg));
  if (remote != NULL && g_socket_address_to_native (remote, &addr, sizeof addr, NULL))
    addr_len = g_socket_address_get_native_size (remote);
  source = _elbus_sockaddr_describe ((struct sockaddr *) &addr, addr_len, NULL);
  stream = soup_server_message_steal_connection (msg);
  if (stream == NULL)
    return;

  ws = g_new0 (ElbusWsPeer, 1);
  ws->stream = g_steal_pointer (&stream);
  ws->socket = g_steal_pointer (&socket);
  ws->in = g_io_stream_get_input_stream (ws->stream);
  ws->out = g_io_stream_get_output_stream (ws->stream);
  ws->tls = listener->tls;
  ws->wbuf = g_byte_array_new ();
  ws->file.fd = -1;
  _elbus_ws_reader_init (&ws->reader, max_message_size (broker));

  if (broker->closed || !_elbus_broker_may_accept (broker, listener->bind_string, source) ||
      !G_IS_POLLABLE_INPUT_STREAM (ws->in) || !G_IS_POLLABLE_OUTPUT_STREAM (ws->out))
    {
      queue_close (ws, ELBUS_WS_CLOSE_TRY_AGAIN_LATER, "client limit reached");
      ws_release (ws, !broker->closed);
      return;
    }

  (void) g_socket_set_option (ws->socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  if (!_elbus_dispatch_file_add (&ws->file, broker, g_socket_get_fd (ws->socket), WS_EVENTS,
                                 ws_dispatch))
    add_errno = errno;

  peer = _elbus_peer_new (broker, -1, ws, &ws_peer_funcs, ELBUS_CLIENT_KIND_WEBSOCKET,
                          listener->bind_string,
                          addr_len > 0 ? (struct sockaddr *) &addr : NULL, addr_len);
  if (peer->ws != NULL)
    {
      ws->peer = peer;
      if (add_errno != 0)
        _elbus_peer_close (peer, G_LOG_LEVEL_WARNING, _("cannot watch the connection: %s"),
                           g_strerror (add_errno));
      else
        /* libsoup may have read past the request already */
        _elbus_dispatch_file_wake (&ws->file, EPOLLIN);
    }
  _elbus_broker_add_pending (broker, peer);
  _elbus_broker_end_dispatch (broker);
}

/* A request to the listener's path: a WebSocket upgrade is answered 101
 * (no extensions: the messages' bytes are elbus frames as they are),
 * anything else 400, as libsoup checks it. */
static void
request_cb (SoupServer        *server,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           user_data)
{
  if (soup_websocket_server_process_handshake (msg, NULL, NULL, NULL, NULL))
    g_signal_connect (msg, "wrote-informational", G_CALLBACK (upgraded_cb), user_data);
}

/* The first request of a connection, watched until it is read whole: if
 * it is not, the client hung up early or (wss://) the TLS handshake
 * failed, which is what a client refusing the certificate does. libsoup
 * has no signal for either: the message is disconnected (after a failed
 * handshake) or just dropped (after half a request). */
typedef struct {
  GWeakRef server;                 /* the listener's SoupServer */
  char    *source;                 /* (owned) (nullable) */
  gboolean done;                   /* read whole, or said */
} FirstRequest;

static void
first_request_gone (FirstRequest *first)
{
  g_autoptr(SoupServer) server = NULL;
  ElbusWsListener *listener;
  const char *source;

  if (first->done)
    return;
  first->done = TRUE;

  server = g_weak_ref_get (&first->server);
  listener = server != NULL ? g_object_get_data (G_OBJECT (server), "elbus-listener") : NULL;
  if (listener == NULL || listener->broker->closed ||
      !_elbus_peer_log_unregistered (listener->broker))
    return;

  source = first->source != NULL ? first->source : _("(unknown)");
  if (listener->tls)
    g_message (_("%s: connection from %s closed before a complete HTTP request: "
                 "the TLS handshake failed (does the client trust the certificate?), "
                 "or the client left"),
               listener->bind_string, source);
  else
    g_message (_("%s: connection from %s closed before a complete HTTP request"),
               listener->bind_string, source);
}

static void
first_request_free (gpointer data)
{
  FirstRequest *first = data;

  first_request_gone (first);
  g_weak_ref_clear (&first->server);
  g_free (first->source);
  g_free (first);
}

static void
first_request_disconnected_cb (SoupServerMessage *msg,
                               gpointer           user_data)
{
  FirstRequest *first = g_object_get_data (G_OBJECT (msg), "elbus-first-request");

  if (first != NULL)
    first_request_gone (first);
}

static void
request_started_cb (SoupServer        *server,
                    SoupServerMessage *msg,
                    gpointer           user_data)
{
  GSocket *socket = soup_server_message_get_socket (msg);
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);
  FirstRequest *first;

  /* later requests on a kept-alive connection: its end is no news */
  if (socket != NULL && g_object_get_data (G_OBJECT (socket), "elbus-request-read") != NULL)
    return;

  first = g_new0 (FirstRequest, 1);
  g_weak_ref_init (&first->server, server);
  if (remote != NULL)
    first->source = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (remote));
  g_object_set_data_full (G_OBJECT (msg), "elbus-first-request", first, first_request_free);
  g_signal_connect (msg, "disconnected", G_CALLBACK (first_request_disconnected_cb), NULL);
}

/* The peer's address, noted while it waits for the answer: by the time
 * the request is finished, it may be gone. */
static void
request_read_cb (SoupServer        *server,
                 SoupServerMessage *msg,
                 gpointer           user_data)
{
  GSocket *socket = soup_server_message_get_socket (msg);
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);
  FirstRequest *first = g_object_get_data (G_OBJECT (msg), "elbus-first-request");

  if (first != NULL)
    first->done = TRUE;
  if (socket != NULL)
    g_object_set_data (G_OBJECT (socket), "elbus-request-read", GINT_TO_POINTER (TRUE));
  if (remote != NULL)
    g_object_set_data_full (G_OBJECT (msg), "elbus-source",
                            g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (remote)),
                            g_free);
}

/* An HTTP request that did not become a WebSocket: libsoup answered it
 * (400 for a request to the path that is no upgrade, 404 elsewhere). */
static void
request_finished_cb (SoupServer        *server,
                     SoupServerMessage *msg,
                     gpointer           user_data)
{
  ElbusWsListener *listener = user_data;
  guint status = soup_server_message_get_status (msg);
  const char *source = g_object_get_data (G_OBJECT (msg), "elbus-source");

  if (status == SOUP_STATUS_SWITCHING_PROTOCOLS)
    return;
  if (!_elbus_peer_log_unregistered (listener->broker))
    return;

  g_message (_("%s: HTTP %s %s from %s answered %u %s: not a WebSocket upgrade to %s"),
             listener->bind_string, soup_server_message_get_method (msg),
             g_uri_get_path (soup_server_message_get_uri (msg)),
             source != NULL ? source : _("(unknown)"), status,
             soup_status_get_phrase (status), listener->path);
}

gboolean
_elbus_broker_listen_ws (ElbusBroker  *broker,
                         const char   *address,
                         GError      **error)
{
  g_autoptr(GUri) uri = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *host_port = NULL;
  g_autoptr(GSocketConnectable) connectable = NULL;
  g_autoptr(GSocketAddressEnumerator) enumerator = NULL;
  ElbusWsListener *listener;
  const char *path;
  guint n_bound = 0;
  gboolean tls = g_str_has_prefix (address, "wss://");

  if (tls && broker->tls_certificate == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("“%s”: wss:// needs a TLS certificate and its key"), address);
      return FALSE;
    }

  uri = g_uri_parse (address, G_URI_FLAGS_NONE, &local_error);
  if (uri == NULL || g_uri_get_host (uri) == NULL || g_uri_get_port (uri) < 0 ||
      g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   tls ? _("“%s” is not a wss://HOST:PORT[/PATH] address%s%s")
                       : _("“%s” is not a ws://HOST:PORT[/PATH] address%s%s"), address,
                   local_error != NULL ? ": " : "",
                   local_error != NULL ? local_error->message : "");
      return FALSE;
    }
  path = g_uri_get_path (uri)[0] != '\0' ? g_uri_get_path (uri) : "/";

  if (strchr (g_uri_get_host (uri), ':') != NULL)
    host_port = g_strdup_printf ("[%s]:%d", g_uri_get_host (uri), g_uri_get_port (uri));
  else
    host_port = g_strdup_printf ("%s:%d", g_uri_get_host (uri), g_uri_get_port (uri));
  connectable = g_network_address_parse (host_port, 0, error);
  if (connectable == NULL)
    return FALSE;

  listener = g_new0 (ElbusWsListener, 1);
  listener->broker = broker;
  listener->bind_string = g_strdup (address);
  listener->path = g_strdup (path);
  listener->tls = tls;

  /* the server's sources go to the broker's context */
  g_main_context_push_thread_default (broker->context);
  listener->server = soup_server_new ("server-header", PACKAGE_NAME " ", NULL);
  if (tls)
    soup_server_set_tls_certificate (listener->server, broker->tls_certificate);
  soup_server_add_handler (listener->server, path, request_cb, listener, NULL);
  g_object_set_data (G_OBJECT (listener->server), "elbus-listener", listener);
  g_signal_connect (listener->server, "request-started", G_CALLBACK (request_started_cb), NULL);
  g_signal_connect (listener->server, "request-read", G_CALLBACK (request_read_cb), NULL);
  g_signal_connect (listener->server, "request-finished", G_CALLBACK (request_finished_cb),
                    listener);

  /* every address the host names, as for TCP */
  enumerator = g_socket_connectable_enumerate (connectable);
  for (;;)
    {
      g_autoptr(GSocketAddress) sa = NULL;
      g_autoptr(GError) bind_error = NULL;

      sa = g_socket_address_enumerator_next (enumerator, NULL,
                                             local_error == NULL ? &local_error : NULL);
      if (sa == NULL)
        break;
      if (soup_server_listen (listener->server, sa, tls ? SOUP_SERVER_LISTEN_HTTPS : 0,
                              &bind_error))
        n_bound++;
      else if (local_error == NULL)
        local_error = g_steal_pointer (&bind_error);
    }
  g_main_context_pop_thread_default (broker->context);

  if (n_bound == 0)
    {
      if (local_error != NULL)
        g_propagate_prefixed_error (error, g_steal_pointer (&local_error), "%s: ", address);
      else
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("cannot resolve “%s”"), address);
      ws_listener_free (listener);
      return FALSE;
    }

  if (broker->ws_listeners == NULL)
    {
      broker->ws_listeners = g_ptr_array_new_with_free_func (ws_listener_free);
      g_signal_connect (broker, "notify::tls-certificate",
                        G_CALLBACK (tls_certificate_notify_cb), NULL);
    }
  g_ptr_array_add (broker->ws_listeners, listener);
  g_info ("listening on %s", address);
  return TRUE;
}

#else /* !HAVE_LIBSOUP */

gboolean
_elbus_broker_listen_ws (ElbusBroker  *broker,
                         const char   *address,
                         GError      **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               _("“%s”: this elbus library was built without WebSocket support (libsoup)"),
               address);
  return FALSE;
}

#endif /* HAVE_LIBSOUP */

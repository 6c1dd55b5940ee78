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
 * A WebSocket peer is an ElbusPeer without an fd. libsoup reads the
 * socket; each binary message is fed to the peer's read path
 * (_elbus_peer_feed()), so the handshake, limits, timeouts and routing are
 * the TCP ones. Writing: a flush drains the peer's queue into one WebSocket
 * message (libsoup wants the payload contiguous, and copies it into its
 * frame). libsoup keeps what the socket does not take in a queue of its
 * own that it does not report; so after a message that left the socket
 * full, the peer waits for the socket to become writable again before it
 * hands libsoup more, and frames meanwhile wait in the peer's own queue,
 * where the queue limits, the stall timeout and the slow-consumer rule
 * apply as to a TCP client. libsoup holds at most one batch on top.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "elbus-broker-private.h"
#include "elbus-i18n-private.h"

#ifdef HAVE_LIBSOUP

#include <libsoup/soup.h>

/* WebSocket close codes (RFC 6455 7.4.1) */
#define WS_CLOSE_NORMAL          1000
#define WS_CLOSE_UNSUPPORTED     1003
#define WS_CLOSE_TRY_AGAIN_LATER 1013

typedef struct {
  ElbusBroker *broker;             /* (unowned) */
  SoupServer  *server;             /* (owned) */
  char        *bind_string;        /* (owned): the ws:// address as configured */
  char        *path;               /* (owned) */
  gboolean     tls;                /* wss:// */
} ElbusWsListener;

struct _ElbusWsPeer {
  ElbusPeer               *peer;   /* (unowned): owns us */
  SoupWebsocketConnection *conn;   /* (owned) */
  GSource                 *writable; /* (owned) (nullable): waiting for the socket */
  GByteArray              *buf;    /* (owned): the batch being sent */
};

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

static void
on_closed_unref (SoupWebsocketConnection *conn,
                 gpointer                 user_data)
{
  g_signal_handlers_disconnect_by_func (conn, on_closed_unref, user_data);
  g_object_unref (conn);
}

static gboolean
unref_idle_cb (gpointer user_data)
{
  g_object_unref (user_data);
  return G_SOURCE_REMOVE;
}

/* Called by _elbus_peer_close(): what was queued before still goes out,
 * then a close frame, unless the peer is dropped (a slow consumer, a
 * broker closing), whose socket is closed at once. */
static void
ws_peer_close (ElbusPeer *peer)
{
  ElbusWsPeer *ws = g_steal_pointer (&peer->ws);
  SoupWebsocketConnection *conn;

  if (ws == NULL)
    return;
  conn = ws->conn;

  if (ws->writable != NULL)
    {
      g_source_destroy (ws->writable);
      g_source_unref (ws->writable);
    }
  g_signal_handlers_disconnect_by_data (conn, ws);
  g_byte_array_unref (ws->buf);
  g_free (ws);

  if (soup_websocket_connection_get_state (conn) == SOUP_WEBSOCKET_STATE_CLOSED)
    {
      g_object_unref (conn);
      return;
    }
  if (peer->abort || peer->broker->closed)
    {
      g_io_stream_close (soup_websocket_connection_get_io_stream (conn), NULL, NULL);
      if (peer->broker->closed)
        g_object_unref (conn);
      else
        {
          /* we may be inside one of its signals: it goes once that is over */
          GSource *idle = g_idle_source_new ();

          g_source_set_callback (idle, unref_idle_cb, conn, NULL);
          g_source_set_static_name (idle, "[elbus] WebSocket unref");
          g_source_attach (idle, peer->broker->context);
          g_source_unref (idle);
        }
      return;
    }
  /* the connection keeps itself until libsoup has closed it */
  g_signal_connect (conn, "closed", G_CALLBACK (on_closed_unref), NULL);
  if (soup_websocket_connection_get_state (conn) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (conn, WS_CLOSE_NORMAL, NULL);
}

static gboolean
writable_cb (GObject  *stream,
             gpointer  user_data)
{
  ElbusWsPeer *ws = user_data;
  ElbusPeer *peer = ws->peer;

  g_clear_pointer (&ws->writable, g_source_unref);
  peer->ref++;
  _elbus_peer_writable (peer);
  _elbus_broker_end_dispatch (peer->broker);
  _elbus_peer_unref (peer);

  return G_SOURCE_REMOVE;
}

/* Sends the whole queue as one binary message. */
static ElbusWriteStatus
ws_peer_write (ElbusPeer *peer,
               guint64   *frames,
               guint64   *bytes)
{
  ElbusWsPeer *ws = peer->ws;
  GOutputStream *out;

  /* libsoup still holds a batch the socket did not take */
  if (ws->writable != NULL)
    return ELBUS_WRITE_BLOCKED;

  if (soup_websocket_connection_get_state (ws->conn) != SOUP_WEBSOCKET_STATE_OPEN)
    {
      errno = EPIPE;
      return ELBUS_WRITE_FAILED;
    }

  _elbus_out_queue_drain (&peer->out, ws->buf, frames, bytes);
  soup_websocket_connection_send_binary (ws->conn, ws->buf->data, ws->buf->len);
  if (ws->buf->len > ELBUS_READ_CHUNK_SIZE)
    {
      /* a large batch once is no reason to keep its buffer */
      g_byte_array_unref (ws->buf);
      ws->buf = g_byte_array_new ();
    }
  else
    g_byte_array_set_size (ws->buf, 0);

  out = g_io_stream_get_output_stream (soup_websocket_connection_get_io_stream (ws->conn));
  if (!G_IS_POLLABLE_OUTPUT_STREAM (out) ||
      g_pollable_output_stream_is_writable (G_POLLABLE_OUTPUT_STREAM (out)))
    return ELBUS_WRITE_DONE;

  ws->writable = g_pollable_output_stream_create_source (G_POLLABLE_OUTPUT_STREAM (out), NULL);
  g_source_set_callback (ws->writable, G_SOURCE_FUNC (writable_cb), ws, NULL);
  g_source_set_static_name (ws->writable, "[elbus] WebSocket writable");
  g_source_attach (ws->writable, peer->broker->context);
  return ELBUS_WRITE_BLOCKED;
}

/* what the peer calls on its WebSocket connection */
static const ElbusPeerFuncs ws_peer_funcs = {
  .write = ws_peer_write,
  .close = ws_peer_close,
};

static void
on_message (SoupWebsocketConnection *conn,
            SoupWebsocketDataType    type,
            GBytes                  *message,
            gpointer                 user_data)
{
  ElbusWsPeer *ws = user_data;
  ElbusPeer *peer = ws->peer;
  gsize len;
  const guint8 *data = g_bytes_get_data (message, &len);

  peer->ref++;
  if (type != SOUP_WEBSOCKET_DATA_BINARY)
    {
      soup_websocket_connection_close (conn, WS_CLOSE_UNSUPPORTED, "binary messages only");
      _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                         _("protocol error: a WebSocket text message (elbus takes binary ones)"));
    }
  else
    _elbus_peer_feed (peer, data, len);
  _elbus_broker_end_dispatch (peer->broker);
  _elbus_peer_unref (peer);
}

static void
on_error (SoupWebsocketConnection *conn,
          GError                  *error,
          gpointer                 user_data)
{
  ElbusWsPeer *ws = user_data;
  ElbusPeer *peer = ws->peer;

  peer->ref++;
  /* after the client's close frame: what fails is the answer to it, the
   * client gone already */
  if (soup_websocket_connection_get_close_code (conn) != 0)
    _elbus_peer_hangup (peer);
  else
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, _("WebSocket error: %s"), error->message);
  _elbus_broker_end_dispatch (peer->broker);
  _elbus_peer_unref (peer);
}

static void
on_closed (SoupWebsocketConnection *conn,
           gpointer                 user_data)
{
  ElbusWsPeer *ws = user_data;
  ElbusPeer *peer = ws->peer;

  peer->ref++;
  /* no close frame came (libsoup says code 0): the socket went, perhaps
   * in the middle of a WebSocket frame, which libsoup keeps to itself */
  if (soup_websocket_connection_get_close_code (conn) == 0 &&
      peer->state == ELBUS_PEER_REGISTERED && peer->rb.end == peer->rb.start)
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                       _("the connection ended without a WebSocket close frame "
                         "(the client went away, perhaps in the middle of a WebSocket frame)"));
  else
    _elbus_peer_hangup (peer);
  _elbus_broker_end_dispatch (peer->broker);
  _elbus_peer_unref (peer);
}

/* The largest WebSocket message taken: a frame of the largest size the
 * broker takes, plus room for the frames around it. */
static guint64
max_message_size (ElbusBroker *broker)
{
  return (guint64) broker->max_frame_size + ELBUS_READ_CHUNK_SIZE;
}

static void
websocket_cb (SoupServer              *server,
              SoupServerMessage       *msg,
              const char              *path,
              SoupWebsocketConnection *conn,
              gpointer                 user_data)
{
  ElbusWsListener *listener = user_data;
  ElbusBroker *broker = listener->broker;
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);
  GSocket *socket = soup_server_message_get_socket (msg);
  struct sockaddr_storage addr;
  gsize addr_len = 0;
  g_autofree char *source = NULL;
  ElbusWsPeer *ws;
  ElbusPeer *peer;

  if (remote != NULL && g_socket_address_to_native (remote, &addr, sizeof addr, NULL))
    addr_len = g_socket_address_get_native_size (remote);
  source = _elbus_sockaddr_describe ((struct sockaddr *) &addr, addr_len, NULL);

  if (broker->closed || !_elbus_broker_may_accept (broker, listener->bind_string, source))
    {
      /* kept until libsoup has closed it */
      g_signal_connect (g_object_ref (conn), "closed", G_CALLBACK (on_closed_unref), NULL);
      soup_websocket_connection_close (conn, WS_CLOSE_TRY_AGAIN_LATER, "client limit reached");
      return;
    }

  if (socket != NULL)
    (void) g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  soup_websocket_connection_set_max_incoming_payload_size (conn, max_message_size (broker));
  /* elbus pings on its own */
  soup_websocket_connection_set_keepalive_interval (conn, 0);

  ws = g_new0 (ElbusWsPeer, 1);
  ws->conn = g_object_ref (conn);
  ws->buf = g_byte_array_new ();
  g_signal_connect (conn, "message", G_CALLBACK (on_message), ws);
  g_signal_connect (conn, "error", G_CALLBACK (on_error), ws);
  g_signal_connect (conn, "closed", G_CALLBACK (on_closed), ws);

  peer = _elbus_peer_new (broker, -1, ws, &ws_peer_funcs, ELBUS_CLIENT_KIND_WEBSOCKET,
                          listener->bind_string,
                          addr_len > 0 ? (struct sockaddr *) &addr : NULL, addr_len);
  if (peer->ws != NULL)
    ws->peer = peer;
  _elbus_broker_add_pending (broker, peer);
  _elbus_broker_end_dispatch (broker);
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
  soup_server_add_websocket_handler (listener->server, path, NULL, NULL,
                                     websocket_cb, listener, NULL);
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

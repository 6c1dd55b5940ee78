/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket transport: a client's connection to a broker at ws:// or
 * wss:// (libsoup's SoupSession opens it; wss:// checks the certificate
 * against the default TLS database, or the CA file ELBUS_TLS_CA_FILE
 * names). The elbus byte stream rides in binary WebSocket messages whose
 * boundaries mean nothing, as on the broker's side (elbus-broker-ws.c).
 *
 * libsoup reads and writes on the client's context (its sources go to the
 * thread-default context of the moment, so ours is pushed around every
 * call into it). A message only queues its bytes; a source of ours
 * decodes them, so a handler that makes a _sync call is not inside
 * libsoup's input source, which the call needs. The _sync calls drive the
 * connection by iterating the client's context (libsoup has no other way
 * in): other sources on it may run meanwhile.
 *
 * Writing: a flush sends what waits as one binary message; after a
 * message that left the socket full, frames wait in our queue until the
 * socket takes data again, so the stall timeout applies as to a socket.
 */
#include "config.h"

#include <string.h>

#include "elbus-i18n-private.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"
#include "elbus-transport-private.h"

gboolean
_elbus_address_is_ws (const char *address)
{
  return g_ascii_strncasecmp (address, "ws://", 5) == 0 ||
         g_ascii_strncasecmp (address, "wss://", 6) == 0;
}

#ifdef HAVE_LIBSOUP

#include <libsoup/soup.h>

#define WS_CLOSE_NORMAL 1000

typedef enum {
  WS_CONNECTING,
  WS_HANDSHAKE,
  WS_REGISTERED,
  WS_OPEN,
  WS_CLOSED,
} WsState;

typedef struct {
  ElbusTransport           parent;

  GMainContext            *context;   /* (owned) */
  SoupSession             *session;   /* (owned) */
  SoupWebsocketConnection *conn;      /* (owned) (nullable) */
  WsState                  state;
  char                    *address;   /* (owned) */
  char                    *name;      /* (owned) */

  /* messages in, not yet decoded: the one being fed and those after it */
  GQueue                   incoming;  /* (element-type GBytes) (owned) */
  gsize                    incoming_off;  /* bytes of the head already fed */
  ElbusReadBuf             rb;
  GSource                 *decode_source; /* (owned) (nullable) */

  ElbusOutQueue            out;
  GByteArray              *buf;       /* (owned): the batch being sent */
  GSource                 *writable;  /* (owned) (nullable): waiting for the socket */
  GSource                 *flush_source; /* (owned) (nullable) */
  gboolean                 dirty;
  gint64                   stall_since;
  gint64                   last_write;

  /* connecting: the handshake (docs/protocol.md 1), then the task's end */
  GTask                   *task;      /* (owned) (nullable) */
  GSource                 *cancel_source; /* (owned) (nullable) */
  guint                    iterating; /* a _sync call decodes, not the source */
  int                      hs_step;
  GError                  *closed_error; /* (owned) (nullable): why, if it closed */
} WsTransport;

static void ws_close (ElbusTransport *transport);

/* libsoup attaches its sources to the thread-default context */
static gboolean
push_context (WsTransport *self)
{
  GMainContext *current = g_main_context_get_thread_default ();

  if ((current != NULL ? current : g_main_context_default ()) == self->context)
    return FALSE;
  g_main_context_push_thread_default (self->context);
  return TRUE;
}

static void
pop_context (WsTransport *self,
             gboolean     pushed)
{
  if (pushed)
    g_main_context_pop_thread_default (self->context);
}

static gboolean
return_idle_cb (gpointer user_data)
{
  GTask *task = user_data;
  WsTransport *self = g_task_get_task_data (task);

  if (self->closed_error != NULL)
    g_task_return_error (task, g_error_copy (self->closed_error));
  else
    g_task_return_boolean (task, TRUE);
  return G_SOURCE_REMOVE;
}

/* Connecting is over: the task returns from the context, never from
 * inside one of libsoup's signals (its callback may free everything). */
static void
connect_done (WsTransport *self,
              GError      *error)
{
  GTask *task = g_steal_pointer (&self->task);
  GSource *idle;

  if (self->cancel_source != NULL)
    {
      g_source_destroy (self->cancel_source);
      g_clear_pointer (&self->cancel_source, g_source_unref);
    }
  if (task == NULL)
    {
      g_clear_error (&error);
      return;
    }
  self->closed_error = error;
  idle = g_idle_source_new ();
  g_source_set_static_name (idle, "[elbus] client WebSocket connected");
  g_source_set_priority (idle, G_PRIORITY_DEFAULT);
  g_source_set_callback (idle, return_idle_cb, task, g_object_unref);
  g_source_attach (idle, self->context);
  g_source_unref (idle);
}

/* The connection ended: connecting fails, or the client is told. */
static void
ws_closed (WsTransport *self,
           GError      *error)
{
  if (self->state == WS_CLOSED)
    {
      g_error_free (error);
      return;
    }
  if (self->state != WS_OPEN)
    {
      ws_close (&self->parent);
      if (self->task != NULL)
        connect_done (self, error);
      else
        {
          /* registered, not yet attached: the finish tells it */
          g_clear_error (&self->closed_error);
          self->closed_error = error;
        }
      return;
    }
  _elbus_transport_closed (&self->parent, error);
}

/* handshake */

static gboolean
handshake_consume (WsTransport *self)
{
  ElbusReadBuf *rb = &self->rb;
  const guint8 *data = rb->chunk->data + rb->start;
  gsize avail = rb->end - rb->start;
  guint8 out[2 + ELBUS_CODEC_MAX_NAME_LENGTH];
  gsize out_len;

  while (self->state == WS_HANDSHAKE)
    {
      GError *error = NULL;
      gboolean pushed;

      /* steps: 0 the greeting, 2 its acceptance, 4 the name's */
      if (self->hs_step == 0)
        {
          if (avail < ELBUS_GREETING_LEN)
            return FALSE;
          if (data[0] != ELBUS_GREETING || data[1] != ELBUS_WIRE_VERSION || data[2] != 0)
            {
              error = g_error_new (ELBUS_ERROR, ELBUS_ERROR_NOT_SUPPORTED,
                                   _("%s does not greet as an elbus broker of protocol version %d"),
                                   self->address, ELBUS_WIRE_VERSION);
            }
          rb->start += ELBUS_GREETING_LEN;
          _elbus_codec_encode_greeting (out);
          out_len = ELBUS_GREETING_LEN;
        }
      else
        {
          if (avail < 1)
            return FALSE;
          if (data[0] != ELBUS_RESULT_OK)
            error = _elbus_client_registration_error (data[0], self->name);
          rb->start += 1;
          out_len = 0;
          if (self->hs_step == 2)
            out_len = _elbus_codec_encode_name (out, sizeof out, self->name);
        }

      if (error != NULL)
        {
          g_prefix_error (&error, _("cannot register with the broker at %s: "), self->address);
          ws_closed (self, error);
          return FALSE;
        }

      data = rb->chunk->data + rb->start;
      avail = rb->end - rb->start;
      if (self->hs_step == 4)
        {
          /* frames wait in the buffer until the client takes us */
          self->state = WS_REGISTERED;
          self->last_write = g_get_monotonic_time ();
          connect_done (self, NULL);
          return TRUE;
        }

      pushed = push_context (self);
      soup_websocket_connection_send_binary (self->conn, out, out_len);
      pop_context (self, pushed);
      self->hs_step += 2;
    }
  return self->state == WS_REGISTERED;
}

/* reading */

/* Feeds the queued messages and hands over every complete frame; safe
 * to enter again from a handler (a _sync call): all state is in @self. */
static void
ws_process (WsTransport *self)
{
  ElbusReadBuf *rb = &self->rb;

  while (self->state == WS_HANDSHAKE || self->state == WS_OPEN)
    {
      ElbusBrokerFrame bf;
      gsize needed = 0;
      g_autoptr(GError) error = NULL;
      ElbusDecodeStatus result = ELBUS_DECODE_INCOMPLETE;

      if (self->state == WS_HANDSHAKE)
        {
          if (rb->chunk != NULL && handshake_consume (self))
            continue;
        }
      else if (rb->chunk != NULL)
        result = _elbus_codec_decode_broker_frame (rb->chunk->data + rb->start,
                                                   rb->end - rb->start, G_MAXUINT32,
                                                   &bf, &needed, &error);
      if (self->state == WS_CLOSED)
        return;

      switch (result)
        {
        case ELBUS_DECODE_INCOMPLETE:
          {
            GBytes *head = g_queue_peek_head (&self->incoming);
            gsize len, space, n;
            const guint8 *data;
            guint8 *dest;

            rb->needed = needed;
            if (head == NULL)
              return;
            data = g_bytes_get_data (head, &len);
            dest = _elbus_read_buf_prepare (rb, &space);
            n = MIN (space, len - self->incoming_off);
            memcpy (dest, data + self->incoming_off, n);
            rb->end += n;
            self->incoming_off += n;
            if (self->incoming_off == len)
              {
                g_bytes_unref (g_queue_pop_head (&self->incoming));
                self->incoming_off = 0;
              }
          }
          break;

        case ELBUS_DECODE_ERROR:
          ws_closed (self, g_error_new (ELBUS_ERROR, ELBUS_ERROR_DATA,
                                        _("the broker sent a malformed frame: %s"),
                                        error->message));
          return;

        case ELBUS_DECODE_OK:
        default:
          _elbus_transport_deliver_decoded (&self->parent, rb, &bf);
          break;
        }
    }
}

static gboolean
decode_dispatch (GSource     *source,
                 GSourceFunc  callback,
                 gpointer     user_data)
{
  WsTransport *self = user_data;
  /* a handler may drop the client, and the transport with it */
  ElbusClient *client = self->parent.client != NULL ? g_object_ref (self->parent.client) : NULL;

  g_source_set_ready_time (source, -1);
  ws_process (self);
  g_clear_object (&client);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs decode_source_funcs = {
  .dispatch = decode_dispatch,
};

static void
on_message (SoupWebsocketConnection *conn,
            SoupWebsocketDataType    type,
            GBytes                  *message,
            gpointer                 user_data)
{
  WsTransport *self = user_data;

  if (type != SOUP_WEBSOCKET_DATA_BINARY)
    {
      ws_closed (self, g_error_new (ELBUS_ERROR, ELBUS_ERROR_DATA,
                                    _("%s sent a WebSocket text message (elbus takes binary ones)"),
                                    self->address));
      return;
    }
  g_queue_push_tail (&self->incoming, g_bytes_ref (message));
  if (!self->iterating)
    g_source_set_ready_time (self->decode_source, 0);
}

static void
on_error (SoupWebsocketConnection *conn,
          GError                  *error,
          gpointer                 user_data)
{
  WsTransport *self = user_data;

  /* what arrived before still counts */
  ws_process (self);
  ws_closed (self, g_error_new (ELBUS_ERROR, ELBUS_ERROR_IO, _("WebSocket error: %s"),
                                error->message));
}

static void
on_closed (SoupWebsocketConnection *conn,
           gpointer                 user_data)
{
  WsTransport *self = user_data;

  ws_process (self);
  ws_closed (self, g_error_new_literal (ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                                        _("the broker closed the connection")));
}

/* writing */

static gboolean
writable_cb (GObject  *stream,
             gpointer  user_data)
{
  WsTransport *self = user_data;
  ElbusClient *client = g_object_ref (self->parent.client);

  g_clear_pointer (&self->writable, g_source_unref);
  self->stall_since = 0;
  if (self->out.len > 0)
    self->parent.funcs->flush (&self->parent);
  g_object_unref (client);

  return G_SOURCE_REMOVE;
}

static void
ws_flush (ElbusTransport *transport)
{
  WsTransport *self = (WsTransport *) transport;
  GOutputStream *out;
  guint64 frames = 0, bytes = 0;
  gboolean pushed;

  self->dirty = FALSE;
  if (self->state != WS_OPEN || self->out.len == 0 || self->writable != NULL)
    return;

  if (soup_websocket_connection_get_state (self->conn) != SOUP_WEBSOCKET_STATE_OPEN)
    return;

  _elbus_out_queue_drain (&self->out, self->buf, &frames, &bytes);
  pushed = push_context (self);
  soup_websocket_connection_send_binary (self->conn, self->buf->data, self->buf->len);
  if (self->buf->len > ELBUS_READ_CHUNK_SIZE)
    {
      /* a large batch once is no reason to keep its buffer */
      g_byte_array_unref (self->buf);
      self->buf = g_byte_array_new ();
    }
  else
    g_byte_array_set_size (self->buf, 0);
  self->last_write = g_get_monotonic_time ();

  out = g_io_stream_get_output_stream (soup_websocket_connection_get_io_stream (self->conn));
  if (G_IS_POLLABLE_OUTPUT_STREAM (out) &&
      !g_pollable_output_stream_is_writable (G_POLLABLE_OUTPUT_STREAM (out)))
    {
      /* libsoup keeps the rest; ours waits until the socket takes data */
      if (self->stall_since == 0)
        self->stall_since = g_get_monotonic_time ();
      self->writable = g_pollable_output_stream_create_source (G_POLLABLE_OUTPUT_STREAM (out),
                                                               NULL);
      g_source_set_callback (self->writable, G_SOURCE_FUNC (writable_cb), self, NULL);
      g_source_set_static_name (self->writable, "[elbus] client WebSocket writable");
      g_source_attach (self->writable, self->context);
    }
  else
    self->stall_since = 0;
  pop_context (self, pushed);
}

typedef struct {
  GSource      source;
  WsTransport *transport;   /* (unowned) */
} FlushSource;

static gboolean
flush_prepare (GSource *source,
               int     *timeout)
{
  WsTransport *self = ((FlushSource *) source)->transport;

  /* the loop is about to sleep: nothing may wait past this point */
  if (self->dirty)
    ws_flush (&self->parent);

  *timeout = -1;
  return FALSE;
}

static gboolean
flush_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs flush_source_funcs = {
  .prepare = flush_prepare,
  .dispatch = flush_dispatch,
};

static gboolean
ws_send (ElbusTransport  *transport,
         ElbusOutEntry   *entry,
         gboolean         realtime,
         GError         **error)
{
  WsTransport *self = (WsTransport *) transport;

  _elbus_out_queue_push (&self->out, entry);
  if (self->writable != NULL)
    return TRUE;

  if (realtime || self->out.bytes >= transport->buf_size)
    ws_flush (transport);
  else
    self->dirty = TRUE;

  return TRUE;
}

static guint
ws_queued (ElbusTransport *transport)
{
  return ((WsTransport *) transport)->out.len;
}

/* driving the connection from a _sync call */

static gboolean
wake_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the client's context until *@done (or, with @drain, until
 * every frame is handed to the socket), @deadline (monotonic µs) or
 * @cancellable. */
static gboolean
ws_iterate (WsTransport   *self,
            gboolean      *done,
            gboolean       drain,
            gint64         deadline,
            double         timeout,
            GCancellable  *cancellable,
            GError       **error)
{
  gboolean timed_out = FALSE, ok = TRUE;
  GSource *timer, *cancel_source = NULL;
  gint64 left;

  if (!g_main_context_acquire (self->context))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           _("the client's main context is in use by another thread"));
      return FALSE;
    }
  g_main_context_push_thread_default (self->context);
  self->iterating++;

  left = deadline - g_get_monotonic_time ();
  timer = g_timeout_source_new ((guint) CLAMP ((left + 999) / 1000, 0, G_MAXINT));
  g_source_set_static_name (timer, "[elbus] client WebSocket deadline");
  g_source_set_callback (timer, wake_cb, &timed_out, NULL);
  g_source_attach (timer, self->context);
  if (cancellable != NULL)
    {
      cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_dummy_callback (cancel_source);
      g_source_attach (cancel_source, self->context);
    }

  for (;;)
    {
      /* a flush only writes: what arrives waits for the context */
      if (!drain)
        ws_process (self);
      if (drain ? (self->out.len == 0 && self->writable == NULL) : *done)
        break;
      if (self->state == WS_CLOSED)
        {
          g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                               _("the connection to the broker is closed"));
          ok = FALSE;
          break;
        }
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          ok = FALSE;
          break;
        }
      if (timed_out || g_get_monotonic_time () >= deadline)
        {
          if (drain)
            g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                         _("the broker took no data for %.3g s"), timeout);
          else
            g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                         _("the broker did not answer within %.3g s"), timeout);
          ok = FALSE;
          break;
        }
      if (self->out.len > 0)
        ws_flush (&self->parent);
      g_main_context_iteration (self->context, TRUE);
    }

  g_source_destroy (timer);
  g_source_unref (timer);
  if (cancel_source != NULL)
    {
      g_source_destroy (cancel_source);
      g_source_unref (cancel_source);
    }
  self->iterating--;
  if (self->iterating == 0 && self->decode_source != NULL && self->incoming.length > 0)
    g_source_set_ready_time (self->decode_source, 0);
  g_main_context_pop_thread_default (self->context);
  g_main_context_release (self->context);
  return ok;
}

static gboolean
ws_flush_sync (ElbusTransport  *transport,
               double           timeout,
               GCancellable    *cancellable,
               GError         **error)
{
  WsTransport *self = (WsTransport *) transport;

  ws_flush (transport);
  if (self->state == WS_OPEN && self->out.len == 0 && self->writable == NULL)
    return TRUE;
  if (self->state != WS_OPEN)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the connection to the broker closed"));
      return FALSE;
    }
  return ws_iterate (self, NULL, TRUE,
                     g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC), timeout,
                     cancellable, error);
}

static gboolean
ws_pump (ElbusTransport  *transport,
         gboolean        *done,
         double           timeout,
         GCancellable    *cancellable,
         GError         **error)
{
  WsTransport *self = (WsTransport *) transport;

  if (self->out.len > 0)
    ws_flush (transport);
  if (*done)
    return TRUE;
  return ws_iterate (self, done, FALSE,
                     g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC), timeout,
                     cancellable, error);
}

static GError *
ws_tick (ElbusTransport *transport,
         gint64          now,
         gint64          limit)
{
  WsTransport *self = (WsTransport *) transport;

  if (self->stall_since != 0 && now - self->stall_since >= limit)
    return g_error_new (ELBUS_ERROR, ELBUS_ERROR_TIMEOUT, _("the broker took no data for %.3g s"),
                        (double) limit / G_USEC_PER_SEC);

  /* a ping when nothing else went out for a timeout */
  if (self->state == WS_OPEN && self->out.len == 0 && now - self->last_write >= limit)
    {
      ElbusOutEntry entry = { 0 };

      entry.hdr_len = ELBUS_CLIENT_HEADER_LEN;
      ws_send (transport, &entry, TRUE, NULL);
    }

  return NULL;
}

/* Whether a connection is finalized: shared by release_conn() and the
 * connection's data, either of which may go first. */
typedef struct {
  gboolean gone;
} Finalized;

static void
finalized_cb (gpointer data)
{
  Finalized *f = data;

  f->gone = TRUE;
  g_atomic_rc_box_release (f);
}

/* Lets go of @conn at once and for good. Disposing of a connection whose
 * stream is not closed yet starts an asynchronous close that holds a
 * reference until it completes on the thread-default context; on the
 * client's context, it would wait for the next iteration, which a tool
 * that exits after elbus_client_close() never makes (the connection and
 * its message would stay, as valgrind saw). So the stream is closed here,
 * and the connection disposed of on a context of its own, iterated until
 * it is finalized (at once: the stream is closed already; bounded all the
 * same). */
static void
release_conn (SoupWebsocketConnection *conn)
{
  GIOStream *stream = soup_websocket_connection_get_io_stream (conn);
  g_autoptr(GMainContext) context = NULL;
  Finalized *f;
  gboolean timed_out = FALSE;
  GSource *timer;

  if (soup_websocket_connection_get_state (conn) == SOUP_WEBSOCKET_STATE_CLOSED ||
      g_io_stream_has_pending (stream))
    {
      /* closed (we may be in its "closed" signal, which holds it), or
       * libsoup closing it on the client's context: nothing waits on a
       * context that is not iterated, it goes with its last reference */
      g_object_unref (conn);
      return;
    }

  g_io_stream_close (stream, NULL, NULL);
  /* object data goes in finalize, after dispose (where weak references go) */
  f = g_atomic_rc_box_new0 (Finalized);
  g_object_set_data_full (G_OBJECT (conn), "elbus-finalized", g_atomic_rc_box_acquire (f),
                          finalized_cb);
  context = g_main_context_new ();
  timer = g_timeout_source_new (1000);
  g_source_set_callback (timer, wake_cb, &timed_out, NULL);
  g_source_attach (timer, context);
  g_main_context_push_thread_default (context);
  g_object_unref (conn);
  while (!f->gone && !timed_out)
    g_main_context_iteration (context, TRUE);
  g_main_context_pop_thread_default (context);
  g_source_destroy (timer);
  g_source_unref (timer);
  g_atomic_rc_box_release (f);
}

static void
on_close_done (SoupWebsocketConnection *conn,
               gpointer                 user_data)
{
  WsTransport *self = user_data;

  g_signal_handlers_disconnect_by_data (conn, self);
  g_clear_object (&self->conn);
}

static void
ws_close (ElbusTransport *transport)
{
  WsTransport *self = (WsTransport *) transport;
  /* the socket took no more: a close frame would wait behind the rest */
  gboolean stalled = self->writable != NULL;

  if (self->state == WS_CLOSED)
    return;
  self->state = WS_CLOSED;

  if (self->decode_source != NULL)
    {
      g_source_destroy (self->decode_source);
      g_clear_pointer (&self->decode_source, g_source_unref);
    }
  if (self->flush_source != NULL)
    {
      g_source_destroy (self->flush_source);
      g_clear_pointer (&self->flush_source, g_source_unref);
    }
  if (self->writable != NULL)
    {
      g_source_destroy (self->writable);
      g_clear_pointer (&self->writable, g_source_unref);
    }
  g_queue_clear_full (&self->incoming, (GDestroyNotify) g_bytes_unref);
  _elbus_out_queue_clear (&self->out);
  _elbus_out_queue_init (&self->out);

  if (self->conn == NULL)
    return;
  g_signal_handlers_disconnect_by_data (self->conn, self);
  if (!stalled && soup_websocket_connection_get_state (self->conn) == SOUP_WEBSOCKET_STATE_OPEN)
    {
      gboolean pushed = push_context (self);

      /* a close frame; the connection goes once the broker answers it,
       * or when the transport is freed */
      g_signal_connect (self->conn, "closed", G_CALLBACK (on_close_done), self);
      soup_websocket_connection_close (self->conn, WS_CLOSE_NORMAL, NULL);
      pop_context (self, pushed);
      return;
    }
  release_conn (g_steal_pointer (&self->conn));
}

static void
ws_free (ElbusTransport *transport)
{
  WsTransport *self = (WsTransport *) transport;

  ws_close (transport);
  if (self->conn != NULL)
    {
      /* still closing: no one iterates its context for it any more */
      g_signal_handlers_disconnect_by_data (self->conn, self);
      release_conn (g_steal_pointer (&self->conn));
    }
  if (self->cancel_source != NULL)
    {
      g_source_destroy (self->cancel_source);
      g_clear_pointer (&self->cancel_source, g_source_unref);
    }
  g_clear_object (&self->session);
  g_clear_error (&self->closed_error);
  _elbus_read_buf_clear (&self->rb);
  _elbus_out_queue_clear (&self->out);
  g_byte_array_unref (self->buf);
  g_main_context_unref (self->context);
  g_free (self->address);
  g_free (self->name);
  g_free (self);
}

static const ElbusTransportFuncs ws_funcs = {
  .send = ws_send,
  .queued = ws_queued,
  .flush = ws_flush,
  .flush_sync = ws_flush_sync,
  .pump = ws_pump,
  .tick = ws_tick,
  .close = ws_close,
  .free = ws_free,
};

/* connecting */

static void
connect_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  WsTransport *self = user_data;
  GError *error = NULL;
  SoupWebsocketConnection *conn;

  conn = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &error);
  if (conn == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_prefix_error (&error, _("cannot register with the broker at %s: "), self->address);
      ws_closed (self, error);
      return;
    }

  self->conn = conn;
  /* elbus pings on its own; the broker's frames are bounded by it */
  soup_websocket_connection_set_keepalive_interval (conn, 0);
  soup_websocket_connection_set_max_incoming_payload_size (conn, 0);
  g_signal_connect (conn, "message", G_CALLBACK (on_message), self);
  g_signal_connect (conn, "error", G_CALLBACK (on_error), self);
  g_signal_connect (conn, "closed", G_CALLBACK (on_closed), self);
  self->state = WS_HANDSHAKE;
}

/* cancelling stops the handshake too, not only libsoup's part */
static gboolean
cancelled_cb (GCancellable *cancellable,
              gpointer      user_data)
{
  WsTransport *self = user_data;

  g_clear_pointer (&self->cancel_source, g_source_unref);
  if (self->state == WS_HANDSHAKE)
    ws_closed (self, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                          _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

static SoupSession *
make_session (const char  *address,
              GError     **error)
{
  const char *ca_file = g_getenv ("ELBUS_TLS_CA_FILE");
  SoupSession *session = soup_session_new ();

  /* elbus speaks to its broker directly, never through the desktop's
   * proxy (as for TCP) */
  soup_session_set_proxy_resolver (session, NULL);
  if (ca_file != NULL && *ca_file != '\0' && g_ascii_strncasecmp (address, "wss://", 6) == 0)
    {
      /* GTlsFileDatabase wants an absolute path; the user's may be
       * relative to the working directory */
      g_autofree char *anchors = g_canonicalize_filename (ca_file, NULL);
      g_autoptr(GTlsDatabase) db = g_tls_file_database_new (anchors, error);

      if (db == NULL)
        {
          g_prefix_error (error, _("cannot read the CA file %s (ELBUS_TLS_CA_FILE): "), ca_file);
          g_object_unref (session);
          return NULL;
        }
      soup_session_set_tls_database (session, db);
    }
  return session;
}

/* Connects and registers @client as @name on @context (the client's);
 * @cancellable cancels it. The task's transport is the result. */
void
_elbus_ws_connect_async (ElbusClient         *client,
                         const char          *address,
                         const char          *name,
                         GMainContext        *context,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  WsTransport *self = g_new0 (WsTransport, 1);
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GError) error = NULL;
  FlushSource *flush;
  gboolean pushed;

  self->parent.funcs = &ws_funcs;
  self->parent.client = client;
  self->context = g_main_context_ref (context);
  self->address = g_strdup (address);
  self->name = g_strdup (name);
  self->buf = g_byte_array_new ();
  g_queue_init (&self->incoming);
  _elbus_out_queue_init (&self->out);
  self->state = WS_CONNECTING;

  self->task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_task_data (self->task, self, NULL);
  if (cancellable != NULL)
    {
      self->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (self->cancel_source, G_SOURCE_FUNC (cancelled_cb), self, NULL);
      g_source_attach (self->cancel_source, context);
    }

  self->decode_source = g_source_new (&decode_source_funcs, sizeof (GSource));
  g_source_set_static_name (self->decode_source, "[elbus] client WebSocket");
  g_source_set_callback (self->decode_source, NULL, self, NULL);
  g_source_attach (self->decode_source, context);

  flush = (FlushSource *) g_source_new (&flush_source_funcs, sizeof (FlushSource));
  flush->transport = self;
  self->flush_source = (GSource *) flush;
  g_source_set_static_name (self->flush_source, "[elbus] client flush");
  g_source_set_priority (self->flush_source, G_PRIORITY_HIGH - 100);
  g_source_attach (self->flush_source, context);

  if (g_cancellable_set_error_if_cancelled (cancellable, &error))
    {
      /* nothing happens, as with a socket */
      ws_closed (self, g_steal_pointer (&error));
      return;
    }

  pushed = push_context (self);
  self->session = make_session (address, &error);
  if (self->session != NULL)
    msg = soup_message_new ("GET", address);
  if (self->session != NULL && msg == NULL)
    g_set_error (&error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 _("“%s” is not a ws://HOST:PORT[/PATH] address"), address);
  if (msg != NULL)
    soup_session_websocket_connect_async (self->session, msg, NULL, NULL, G_PRIORITY_DEFAULT,
                                          cancellable, connect_cb, self);
  pop_context (self, pushed);

  if (error != NULL)
    ws_closed (self, g_steal_pointer (&error));
}

ElbusTransport *
_elbus_ws_connect_finish (GAsyncResult  *result,
                          GError       **error)
{
  WsTransport *self = g_task_get_task_data (G_TASK (result));

  if (!g_task_propagate_boolean (G_TASK (result), error))
    {
      ws_free (&self->parent);
      return NULL;
    }
  if (self->state != WS_REGISTERED)
    {
      /* closed after it registered */
      g_propagate_error (error, g_steal_pointer (&self->closed_error));
      ws_free (&self->parent);
      return NULL;
    }
  self->state = WS_OPEN;
  if (self->rb.end > self->rb.start || self->incoming.length > 0)
    g_source_set_ready_time (self->decode_source, 0);
  return &self->parent;
}

static void
cancel_ours_cb (GCancellable *cancellable,
                gpointer      ours)
{
  g_cancellable_cancel (G_CANCELLABLE (ours));
}

static void
sync_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

ElbusTransport *
_elbus_ws_connect_sync (ElbusClient   *client,
                        const char    *address,
                        const char    *name,
                        GMainContext  *context,
                        double         timeout,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GCancellable) ours = g_cancellable_new ();
  GAsyncResult *result = NULL;
  gulong handler = 0;
  gint64 deadline = g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC);
  gboolean timed_out = FALSE;
  GSource *timer;
  ElbusTransport *transport;
  GError *local_error = NULL;

  if (!g_main_context_acquire (context))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           _("the client's main context is in use by another thread"));
      return NULL;
    }
  g_main_context_push_thread_default (context);
  /* "cancelled" passes the caller's cancellable first: ours is the data */
  if (cancellable != NULL)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (cancel_ours_cb),
                                     g_object_ref (ours), g_object_unref);

  timer = g_timeout_source_new ((guint) CLAMP ((deadline - g_get_monotonic_time () + 999) / 1000,
                                               0, G_MAXINT));
  g_source_set_static_name (timer, "[elbus] client connect deadline");
  g_source_set_callback (timer, wake_cb, &timed_out, NULL);
  g_source_attach (timer, context);

  _elbus_ws_connect_async (client, address, name, context, ours, sync_cb, &result);
  while (result == NULL)
    {
      if (timed_out && !g_cancellable_is_cancelled (ours))
        g_cancellable_cancel (ours);
      g_main_context_iteration (context, TRUE);
    }

  g_source_destroy (timer);
  g_source_unref (timer);
  if (cancellable != NULL)
    g_cancellable_disconnect (cancellable, handler);

  transport = _elbus_ws_connect_finish (result, &local_error);
  g_object_unref (result);
  g_main_context_pop_thread_default (context);
  g_main_context_release (context);

  if (transport == NULL)
    {
      if (timed_out && !g_cancellable_is_cancelled (cancellable))
        {
          g_clear_error (&local_error);
          g_set_error (&local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       _("cannot register with the broker at %s: no complete handshake within %g s"),
                       address, timeout);
        }
      g_propagate_error (error, local_error);
    }
  return transport;
}

#else /* !HAVE_LIBSOUP */

static void
set_not_supported (GError     **error,
                   const char  *address)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               _("“%s”: this elbus library was built without WebSocket support (libsoup)"),
               address);
}

void
_elbus_ws_connect_async (ElbusClient         *client,
                         const char          *address,
                         const char          *name,
                         GMainContext        *context,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  GError *error = NULL;

  set_not_supported (&error, address);
  g_task_return_error (task, error);
  g_object_unref (task);
}

ElbusTransport *
_elbus_ws_connect_finish (GAsyncResult  *result,
                          GError       **error)
{
  g_task_propagate_boolean (G_TASK (result), error);
  return NULL;
}

ElbusTransport *
_elbus_ws_connect_sync (ElbusClient   *client,
                        const char    *address,
                        const char    *name,
                        GMainContext  *context,
                        double         timeout,
                        GCancellable  *cancellable,
                        GError       **error)
{
  set_not_supported (error, address);
  return NULL;
}

#endif /* HAVE_LIBSOUP */

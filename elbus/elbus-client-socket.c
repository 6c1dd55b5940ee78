/* SPDX-License-Identifier: MIT */
/* The socket transport: a client's frames over a UNIX or TCP socket whose
 * handshake is done (non-blocking reads, batched writes, polling for the
 * _sync calls). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "elbus-i18n-private.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"
#include "elbus-transport-private.h"

typedef struct {
  ElbusTransport     parent;

  GSocketConnection *connection;   /* (owned) */
  int                fd;           /* -1 once closed */
  GSource           *source;       /* (owned) (nullable) */
  gpointer           fd_tag;
  GSource           *flush_source; /* (owned) (nullable) */

  ElbusReadBuf       rb;
  ElbusOutQueue      out;
  gboolean           want_write;
  gboolean           dirty;        /* non-real-time frames wait in out */
  gint64             stall_since;
  gint64             last_write;
} SocketTransport;

static void
socket_closed (SocketTransport *self,
               GError          *error)
{
  /* the client closes the transport and fails what is pending */
  _elbus_transport_closed (&self->parent, error);
}

/* Reads once and hands over every complete frame. */
static void
socket_read (SocketTransport *self)
{
  ElbusReadBuf *rb = &self->rb;
  gssize n = _elbus_read_buf_fill (rb, self->fd);

  if (n < 0)
    {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        socket_closed (self, g_error_new (ELBUS_ERROR, ELBUS_ERROR_IO,
                                          _("reading from the broker failed: %s"),
                                          g_strerror (errno)));
      return;
    }
  if (n == 0)
    {
      socket_closed (self, g_error_new_literal (ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                                                _("the broker closed the connection")));
      return;
    }

  /* a handler may close the client: the buffer stays until it is freed */
  while (self->fd >= 0)
    {
      ElbusBrokerFrame bf;
      gsize needed = 0;
      g_autoptr(GError) error = NULL;

      switch (_elbus_codec_decode_broker_frame (rb->chunk->data + rb->start, rb->end - rb->start,
                                                G_MAXUINT32, &bf, &needed, &error))
        {
        case ELBUS_DECODE_INCOMPLETE:
          rb->needed = needed;
          return;

        case ELBUS_DECODE_ERROR:
          socket_closed (self, g_error_new (ELBUS_ERROR, ELBUS_ERROR_DATA,
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

static void
set_want_write (SocketTransport *self,
                gboolean         want)
{
  if (self->want_write == want || self->source == NULL)
    return;

  self->want_write = want;
  g_source_modify_unix_fd (self->source, self->fd_tag,
                           G_IO_IN | G_IO_HUP | G_IO_ERR | (want ? G_IO_OUT : 0));
}

static void
socket_flush (ElbusTransport *transport)
{
  SocketTransport *self = (SocketTransport *) transport;
  guint64 frames = 0, bytes = 0;
  gsize waiting = self->out.bytes;

  self->dirty = FALSE;
  if (self->fd < 0 || self->out.len == 0)
    return;

  switch (_elbus_out_queue_write (&self->out, self->fd, &frames, &bytes))
    {
    case ELBUS_WRITE_DONE:
      self->stall_since = 0;
      self->last_write = g_get_monotonic_time ();
      set_want_write (self, FALSE);
      break;

    case ELBUS_WRITE_BLOCKED:
      if (self->out.bytes != waiting || self->stall_since == 0)
        self->stall_since = g_get_monotonic_time ();
      set_want_write (self, TRUE);
      break;

    case ELBUS_WRITE_FAILED:
    default:
      socket_closed (self, g_error_new (ELBUS_ERROR, ELBUS_ERROR_IO,
                                        _("writing to the broker failed: %s"),
                                        g_strerror (errno)));
      break;
    }
}

static gboolean
socket_source_dispatch (GSource     *source,
                        GSourceFunc  callback,
                        gpointer     user_data)
{
  SocketTransport *self = user_data;
  /* a handler may drop the client, and the transport with it */
  ElbusClient *client = g_object_ref (self->parent.client);
  GIOCondition cond = g_source_query_unix_fd (source, self->fd_tag);

  if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR))
    socket_read (self);
  if (self->fd >= 0 && (cond & G_IO_OUT))
    socket_flush (&self->parent);

  g_object_unref (client);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs socket_source_funcs = {
  .dispatch = socket_source_dispatch,
};

typedef struct {
  GSource          source;
  SocketTransport *transport;   /* (unowned) */
} FlushSource;

static gboolean
flush_prepare (GSource *source,
               int     *timeout)
{
  SocketTransport *self = ((FlushSource *) source)->transport;

  /* the loop is about to sleep: nothing may wait past this point */
  if (self->dirty && !self->want_write)
    socket_flush (&self->parent);

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

/* Queues one frame. Real-time frames, and any frame once buf-size bytes
 * wait, are written at once; the rest before the loop next sleeps. */
static gboolean
socket_send (ElbusTransport  *transport,
             ElbusOutEntry   *entry,
             gboolean         realtime,
             GError         **error)
{
  SocketTransport *self = (SocketTransport *) transport;

  _elbus_out_queue_push (&self->out, entry);
  if (self->want_write)
    return TRUE;

  if (realtime || self->out.bytes >= transport->buf_size)
    socket_flush (transport);
  else
    self->dirty = TRUE;

  return TRUE;
}

static guint
socket_queued (ElbusTransport *transport)
{
  return ((SocketTransport *) transport)->out.len;
}

static gboolean
socket_flush_sync (ElbusTransport  *transport,
                   double           timeout,
                   GCancellable    *cancellable,
                   GError         **error)
{
  SocketTransport *self = (SocketTransport *) transport;

  socket_flush (transport);
  while (self->fd >= 0 && self->out.len > 0)
    {
      GPollFD fds[2] = { { .fd = self->fd, .events = G_IO_OUT } };
      int n_fds = 1, r;

      if (g_cancellable_make_pollfd (cancellable, &fds[1]))
        n_fds = 2;
      r = g_poll (fds, n_fds, (int) (timeout * 1000));
      if (n_fds == 2)
        g_cancellable_release_fd (cancellable);

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (r == 0)
        {
          g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                       _("the broker took no data for %.3g s"), timeout);
          return FALSE;
        }
      socket_flush (transport);
    }

  if (self->fd < 0)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the connection to the broker closed"));
      return FALSE;
    }

  return TRUE;
}

static gboolean
socket_pump (ElbusTransport  *transport,
             gboolean        *done,
             double           timeout,
             GCancellable    *cancellable,
             GError         **error)
{
  SocketTransport *self = (SocketTransport *) transport;
  gint64 deadline = g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC);

  while (!*done)
    {
      GPollFD fds[2];
      int n_fds = 1, timeout_ms, r;
      gint64 now;

      if (self->fd >= 0 && self->out.len > 0)
        socket_flush (transport);
      if (*done)
        break;
      if (self->fd < 0)
        {
          g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                               _("the connection to the broker is closed"));
          return FALSE;
        }
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;

      now = g_get_monotonic_time ();
      if (now >= deadline)
        {
          g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                       _("the broker did not answer within %.3g s"), timeout);
          return FALSE;
        }
      timeout_ms = (int) MIN ((deadline - now + 999) / 1000, G_MAXINT);

      fds[0].fd = self->fd;
      fds[0].events = G_IO_IN | (self->out.len > 0 ? G_IO_OUT : 0);
      fds[0].revents = 0;
      if (g_cancellable_make_pollfd (cancellable, &fds[1]))
        n_fds = 2;

      r = g_poll (fds, n_fds, timeout_ms);
      if (n_fds == 2)
        g_cancellable_release_fd (cancellable);
      if (r < 0 && errno != EINTR)
        {
          socket_closed (self, g_error_new (ELBUS_ERROR, ELBUS_ERROR_IO, _("poll failed: %s"),
                                            g_strerror (errno)));
          continue;
        }
      if (r > 0 && (fds[0].revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
        socket_read (self);
    }

  return TRUE;
}

static GError *
socket_tick (ElbusTransport *transport,
             gint64          now,
             gint64          limit)
{
  SocketTransport *self = (SocketTransport *) transport;

  if (self->stall_since != 0 && now - self->stall_since >= limit)
    return g_error_new (ELBUS_ERROR, ELBUS_ERROR_TIMEOUT, _("the broker took no data for %.3g s"),
                        (double) limit / G_USEC_PER_SEC);

  /* a ping when nothing else went out for a timeout */
  if (self->fd >= 0 && self->out.len == 0 && now - self->last_write >= limit)
    {
      ElbusOutEntry entry = { 0 };

      entry.hdr_len = ELBUS_CLIENT_HEADER_LEN;
      socket_send (transport, &entry, TRUE, NULL);
    }

  return NULL;
}

static void
socket_close (ElbusTransport *transport)
{
  SocketTransport *self = (SocketTransport *) transport;

  if (self->fd < 0)
    return;

  if (self->source != NULL)
    {
      g_source_destroy (self->source);
      g_clear_pointer (&self->source, g_source_unref);
    }
  if (self->flush_source != NULL)
    {
      g_source_destroy (self->flush_source);
      g_clear_pointer (&self->flush_source, g_source_unref);
    }
  g_io_stream_close (G_IO_STREAM (self->connection), NULL, NULL);
  self->fd = -1;
  _elbus_out_queue_clear (&self->out);
  _elbus_out_queue_init (&self->out);
}

static void
socket_free (ElbusTransport *transport)
{
  SocketTransport *self = (SocketTransport *) transport;

  socket_close (transport);
  _elbus_read_buf_clear (&self->rb);
  _elbus_out_queue_clear (&self->out);
  g_clear_object (&self->connection);
  g_free (self);
}

static const ElbusTransportFuncs socket_funcs = {
  .send = socket_send,
  .queued = socket_queued,
  .flush = socket_flush,
  .flush_sync = socket_flush_sync,
  .pump = socket_pump,
  .tick = socket_tick,
  .close = socket_close,
  .free = socket_free,
};

ElbusTransport *
_elbus_socket_transport_new (ElbusClient       *client,
                             GSocketConnection *connection,
                             GMainContext      *context)
{
  SocketTransport *self = g_new0 (SocketTransport, 1);
  GSocket *socket = g_socket_connection_get_socket (connection);
  FlushSource *flush;

  self->parent.funcs = &socket_funcs;
  self->parent.client = client;
  self->connection = g_object_ref (connection);
  self->fd = g_socket_get_fd (socket);
  g_socket_set_timeout (socket, 0);
  g_socket_set_blocking (socket, FALSE);
  _elbus_out_queue_init (&self->out);
  self->last_write = g_get_monotonic_time ();

  self->source = g_source_new (&socket_source_funcs, sizeof (GSource));
  g_source_set_static_name (self->source, "[elbus] client");
  self->fd_tag = g_source_add_unix_fd (self->source, self->fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback (self->source, NULL, self, NULL);
  g_source_attach (self->source, context);

  flush = (FlushSource *) g_source_new (&flush_source_funcs, sizeof (FlushSource));
  flush->transport = self;
  self->flush_source = (GSource *) flush;
  g_source_set_static_name (self->flush_source, "[elbus] client flush");
  g_source_set_priority (self->flush_source, G_PRIORITY_HIGH - 100);
  g_source_attach (self->flush_source, context);

  return &self->parent;
}

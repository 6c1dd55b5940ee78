/* SPDX-License-Identifier: MIT */
/* Connecting a client: the address, the socket, the handshake (blocking
 * and in steps, within the client's timeout), GInitable and
 * GAsyncInitable; then the transport takes over. */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <gio/gunixsocketaddress.h>

#include "elbus-i18n-private.h"
#include "elbus-client-internal.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"

static void
client_start_transport (ElbusClient    *self,
                        ElbusTransport *transport)
{
  _elbus_client_attach_transport (self, transport);
  _elbus_client_restart_tick (self);
}

/* The handshake is done: the socket transport takes the connection. */
static void
client_start_io (ElbusClient *self)
{
  ElbusTransport *transport = _elbus_socket_transport_new (self, self->connection, self->context);

  g_clear_object (&self->connection);
  client_start_transport (self, transport);
}

void
_elbus_client_attach_transport (ElbusClient    *self,
                                ElbusTransport *transport)
{
  g_return_if_fail (self->transport == NULL);

  self->transport = transport;
  transport->events = &_elbus_client_transport_events;
  transport->buf_size = self->buf_size;
  self->init_state = INIT_DONE;
  self->connected = TRUE;
}

static GSocketConnectable *
make_connectable (const char  *address,
                  GError     **error)
{
  if (_elbus_address_is_unix (address))
    return G_SOCKET_CONNECTABLE (g_unix_socket_address_new (address));

  return g_network_address_parse (address, 0, error);
}

static GSocketClient *
make_socket_client (ElbusClient *self)
{
  GSocketClient *socket_client = g_socket_client_new ();

  /* elbus speaks its own protocol to a broker, never through the
   * desktop's HTTP or SOCKS proxy (GProxyResolver would otherwise ask
   * glib-networking, and through it GSettings, on every TCP connect) */
  g_socket_client_set_enable_proxy (socket_client, FALSE);
  g_socket_client_set_timeout (socket_client, (guint) MAX (1, self->timeout + 0.999));
  return socket_client;
}

static void
set_nodelay (GSocketConnection *connection)
{
  GSocket *socket = g_socket_connection_get_socket (connection);
  int one = 1;

  if (g_socket_get_family (socket) != G_SOCKET_FAMILY_UNIX)
    (void) setsockopt (g_socket_get_fd (socket), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* the handshake, in steps (docs/protocol.md 1) */

typedef struct {
  guint8  buf[2 + ELBUS_CODEC_MAX_NAME_LENGTH];
  gsize   len;
  int     step;
} Handshake;

static gboolean
handshake_check (ElbusClient  *self,
                 Handshake    *hs,
                 gsize         got,
                 GError      **error)
{
  /* read_all stops short, without an error, at the end of the stream */
  if (got < hs->len)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                   _("%s closed the connection during the handshake"), self->address);
      return FALSE;
    }

  switch (hs->step)
    {
    case 0:
      if (hs->buf[0] != ELBUS_GREETING || hs->buf[1] != ELBUS_WIRE_VERSION || hs->buf[2] != 0)
        {
          g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_SUPPORTED,
                       _("%s does not greet as an elbus broker of protocol version %d"),
                       self->address, ELBUS_WIRE_VERSION);
          return FALSE;
        }
      return TRUE;
    case 2:
    case 4:
      if (hs->buf[0] != ELBUS_RESULT_OK)
        {
          g_propagate_error (error, _elbus_client_registration_error (hs->buf[0], self->name));
          return FALSE;
        }
      return TRUE;
    default:
      return TRUE;
    }
}

/* Steps: 0 read greeting, 1 write it back, 2 read 01, 3 write name,
 * 4 read 01. Sets up buf/len for the step. */
static gboolean
handshake_prepare (ElbusClient *self,
                   Handshake   *hs)
{
  switch (hs->step)
    {
    case 0:
      hs->len = ELBUS_GREETING_LEN;
      return TRUE;
    case 1:
      _elbus_codec_encode_greeting (hs->buf);
      hs->len = ELBUS_GREETING_LEN;
      return FALSE;
    case 2:
    case 4:
      hs->len = 1;
      return TRUE;
    case 3:
    default:
      hs->len = _elbus_codec_encode_name (hs->buf, sizeof hs->buf, self->name);
      return FALSE;
    }
}

/* The whole connection, handshake included, must be done within the
 * client's timeout: a peer that accepts and then trickles its bytes
 * cannot hold the caller longer than a silent one. */
static void
set_connect_timeout_error (ElbusClient  *self,
                           GError      **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
               _("cannot register with the broker at %s: no complete handshake within %g s"),
               self->address, self->timeout);
}

/* Reads or writes the bytes of @hs's step before @deadline (monotonic
 * µs). A read stops short, without an error, at the end of the stream. */
static gboolean
handshake_io_sync (ElbusClient   *self,
                   GSocket       *socket,
                   Handshake     *hs,
                   gboolean       input,
                   gint64         deadline,
                   gsize         *got,
                   GCancellable  *cancellable,
                   GError       **error)
{
  *got = 0;
  while (*got < hs->len)
    {
      gint64 left = deadline - g_get_monotonic_time ();
      GError *local_error = NULL;
      gssize n;

      if (left <= 0 ||
          !g_socket_condition_timed_wait (socket, input ? G_IO_IN : G_IO_OUT, left,
                                          cancellable, &local_error))
        {
          if (local_error == NULL ||
              g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
            {
              g_clear_error (&local_error);
              set_connect_timeout_error (self, error);
            }
          else
            g_propagate_error (error, local_error);
          return FALSE;
        }

      if (input)
        n = g_socket_receive (socket, (char *) hs->buf + *got, hs->len - *got,
                              cancellable, &local_error);
      else
        n = g_socket_send (socket, (const char *) hs->buf + *got, hs->len - *got,
                           cancellable, &local_error);
      if (n < 0)
        {
          if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            {
              g_clear_error (&local_error);
              continue;
            }
          g_propagate_prefixed_error (error, local_error,
                                      _("cannot register with the broker at %s: "), self->address);
          return FALSE;
        }
      if (n == 0 && input)
        break;
      *got += (gsize) n;
    }
  return TRUE;
}

static gboolean
connect_sync (ElbusClient   *self,
              GCancellable  *cancellable,
              GError       **error)
{
  g_autoptr(GSocketConnectable) connectable = NULL;
  g_autoptr(GSocketClient) socket_client = NULL;
  gint64 deadline = g_get_monotonic_time () + (gint64) (self->timeout * G_USEC_PER_SEC);
  GSocket *socket;
  Handshake hs = { .step = 0 };

  /* ws:// and wss:// (elbus-client-ws.c) */
  if (_elbus_address_is_ws (self->address))
    {
      ElbusTransport *transport = _elbus_ws_connect_sync (self, self->address, self->name,
                                                          self->context, self->timeout,
                                                          cancellable, error);

      if (transport == NULL)
        return FALSE;
      client_start_transport (self, transport);
      return TRUE;
    }

  connectable = make_connectable (self->address, error);
  if (connectable == NULL)
    return FALSE;

  socket_client = make_socket_client (self);
  self->connection = g_socket_client_connect (socket_client, connectable, cancellable, error);
  if (self->connection == NULL)
    return FALSE;

  set_nodelay (self->connection);
  socket = g_socket_connection_get_socket (self->connection);
  g_socket_set_timeout (socket, 0);
  g_socket_set_blocking (socket, FALSE);

  for (hs.step = 0; hs.step <= 4; hs.step++)
    {
      gboolean input = handshake_prepare (self, &hs);
      gsize got = 0;

      if (!handshake_io_sync (self, socket, &hs, input, deadline, &got, cancellable, error))
        return FALSE;
      if (input && !handshake_check (self, &hs, got, error))
        {
          g_prefix_error (error, _("cannot register with the broker at %s: "), self->address);
          return FALSE;
        }
    }

  client_start_io (self);
  return TRUE;
}

typedef struct {
  Handshake     hs;
  GCancellable *cancellable;     /* ours: the caller's or the deadline cancels it */
  GCancellable *caller;          /* (nullable) */
  gulong        caller_handler;
  GSource      *deadline;
  gboolean      timed_out;
} ConnectData;

static void
connect_data_free (ConnectData *data)
{
  if (data->caller != NULL)
    {
      g_cancellable_disconnect (data->caller, data->caller_handler);
      g_object_unref (data->caller);
    }
  if (data->deadline != NULL)
    {
      g_source_destroy (data->deadline);
      g_source_unref (data->deadline);
    }
  g_clear_object (&data->cancellable);
  g_free (data);
}

static void
connect_caller_cancelled (GCancellable *caller,
                          gpointer      user_data)
{
  g_cancellable_cancel (G_CANCELLABLE (user_data));
}

static gboolean
connect_deadline_cb (gpointer user_data)
{
  GTask *task = user_data;
  ConnectData *data = g_task_get_task_data (task);

  data->timed_out = TRUE;
  g_cancellable_cancel (data->cancellable);
  return G_SOURCE_REMOVE;
}

/* The outcome of connecting, which later init calls return again. */
static void
init_done (ElbusClient  *self,
           const GError *error)
{
  self->init_state = INIT_DONE;
  if (error != NULL)
    {
      self->init_error = g_error_copy (error);
      g_clear_object (&self->connection);
    }
}

static gboolean
init_result (ElbusClient  *self,
             GError      **error)
{
  if (self->init_state == INIT_RUNNING)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                           _("the client is already connecting"));
      return FALSE;
    }
  if (self->init_error != NULL)
    {
      g_propagate_error (error, g_error_copy (self->init_error));
      return FALSE;
    }
  return TRUE;
}

static void
connect_return_error (GTask  *task,
                      GError *error)
{
  ElbusClient *self = g_task_get_source_object (task);
  ConnectData *data = g_task_get_task_data (task);

  if (data->timed_out && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_clear_error (&error);
      set_connect_timeout_error (self, &error);
    }
  init_done (self, error);
  g_task_return_error (task, error);
  g_object_unref (task);
}

static void handshake_step (GTask *task);

static void
handshake_io_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  GTask *task = user_data;
  ElbusClient *self = g_task_get_source_object (task);
  ConnectData *data = g_task_get_task_data (task);
  GError *error = NULL;
  gboolean ok;

  gsize got = 0;

  if (G_IS_INPUT_STREAM (source))
    ok = g_input_stream_read_all_finish (G_INPUT_STREAM (source), result, &got, &error) &&
         handshake_check (self, &data->hs, got, &error);
  else
    ok = g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error);

  if (!ok)
    {
      if (!data->timed_out)
        g_prefix_error (&error, _("cannot register with the broker at %s: "), self->address);
      connect_return_error (task, error);
      return;
    }

  data->hs.step++;
  handshake_step (task);
}

static void
handshake_step (GTask *task)
{
  ElbusClient *self = g_task_get_source_object (task);
  ConnectData *data = g_task_get_task_data (task);
  GIOStream *stream = G_IO_STREAM (self->connection);

  if (data->hs.step > 4)
    {
      client_start_io (self);
      init_done (self, NULL);
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }

  if (handshake_prepare (self, &data->hs))
    g_input_stream_read_all_async (g_io_stream_get_input_stream (stream), data->hs.buf,
                                   data->hs.len, g_task_get_priority (task),
                                   data->cancellable, handshake_io_cb, task);
  else
    g_output_stream_write_all_async (g_io_stream_get_output_stream (stream), data->hs.buf,
                                     data->hs.len, g_task_get_priority (task),
                                     data->cancellable, handshake_io_cb, task);
}

static void
connect_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GTask *task = user_data;
  ElbusClient *self = g_task_get_source_object (task);
  GError *error = NULL;

  self->connection = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  if (self->connection == NULL)
    {
      connect_return_error (task, error);
      return;
    }

  set_nodelay (self->connection);
  handshake_step (task);
}

static void
ws_connect_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GTask *task = user_data;
  ElbusClient *self = g_task_get_source_object (task);
  GError *error = NULL;
  ElbusTransport *transport = _elbus_ws_connect_finish (result, &error);

  if (transport == NULL)
    {
      connect_return_error (task, error);
      return;
    }
  client_start_transport (self, transport);
  init_done (self, NULL);
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static gboolean
check_new_args (const char  *address,
                const char  *name,
                GError     **error)
{
  guint8 result;

  if (address == NULL || name == NULL)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                           _("a client needs the address of its broker and a name"));
      return FALSE;
    }
  result = _elbus_codec_check_name (name, strlen (name));
  if (result != ELBUS_RESULT_OK)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                   _("“%s” is not a valid client name: it must be non-empty UTF-8 of at "
                     "most %d bytes, not starting with “.”"),
                   name, ELBUS_CODEC_MAX_NAME_LENGTH);
      return FALSE;
    }
  if (*address == '\0')
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("the broker address is empty"));
      return FALSE;
    }
  return TRUE;
}

/* GInitable and GAsyncInitable: connecting and registering, once */

static gboolean
elbus_client_initable_init (GInitable     *initable,
                            GCancellable  *cancellable,
                            GError       **error)
{
  ElbusClient *self = ELBUS_CLIENT (initable);
  g_autoptr(GError) local_error = NULL;

  if (self->init_state != INIT_NONE)
    return init_result (self, error);

  self->init_state = INIT_RUNNING;
  if (!check_new_args (self->address, self->name, &local_error) ||
      !connect_sync (self, cancellable, &local_error))
    {
      init_done (self, local_error);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  init_done (self, NULL);
  return TRUE;
}

void
_elbus_client_initable_iface_init (GInitableIface *iface)
{
  iface->init = elbus_client_initable_init;
}

void
_elbus_client_init_async (GAsyncInitable      *initable,
                         int                  io_priority,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  ElbusClient *self = ELBUS_CLIENT (initable);
  g_autoptr(GSocketConnectable) connectable = NULL;
  g_autoptr(GSocketClient) socket_client = NULL;
  GError *error = NULL;
  ConnectData *data;
  GTask *task;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, _elbus_client_init_async);
  g_task_set_priority (task, io_priority);

  if (self->init_state != INIT_NONE)
    {
      if (init_result (self, &error))
        g_task_return_boolean (task, TRUE);
      else
        g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  self->init_state = INIT_RUNNING;
  data = g_new0 (ConnectData, 1);
  g_task_set_task_data (task, data, (GDestroyNotify) connect_data_free);

  if (!check_new_args (self->address, self->name, &error) ||
      (!_elbus_address_is_ws (self->address) &&
       (connectable = make_connectable (self->address, &error)) == NULL))
    {
      connect_return_error (task, error);
      return;
    }

  data->cancellable = g_cancellable_new ();
  if (cancellable != NULL)
    {
      data->caller = g_object_ref (cancellable);
      data->caller_handler = g_cancellable_connect (cancellable,
                                                    G_CALLBACK (connect_caller_cancelled),
                                                    g_object_ref (data->cancellable),
                                                    g_object_unref);
    }
  data->deadline = g_timeout_source_new ((guint) (self->timeout * 1000 + 0.999));
  g_source_set_static_name (data->deadline, "[elbus] client connect deadline");
  /* not g_task_attach_source(): its reference to the task would keep the
   * task, and so the client, alive until the deadline */
  g_source_set_callback (data->deadline, connect_deadline_cb, task, NULL);
  g_source_attach (data->deadline, g_task_get_context (task));

  if (connectable == NULL)
    {
      /* ws:// and wss:// (elbus-client-ws.c) */
      _elbus_ws_connect_async (self, self->address, self->name, self->context,
                               data->cancellable, ws_connect_cb, task);
      return;
    }
  socket_client = make_socket_client (self);
  g_socket_client_connect_async (socket_client, connectable, data->cancellable, connect_cb,
                                 task);
}

static gboolean
elbus_client_init_finish (GAsyncInitable  *initable,
                          GAsyncResult    *result,
                          GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, initable), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
_elbus_client_async_initable_iface_init (GAsyncInitableIface *iface)
{
  iface->init_async = _elbus_client_init_async;
  iface->init_finish = elbus_client_init_finish;
}

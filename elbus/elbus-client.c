/* SPDX-License-Identifier: MIT */
/* The ElbusClient object: its properties, signals and life cycle, and the
 * public API (constructors, secondaries, settings, operations), over the
 * pieces in elbus-client-internal.h. */
#include "config.h"

#include <string.h>

#include "elbus-i18n-private.h"
#include "elbus-client-internal.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"

/**
 * ElbusClient:
 *
 * One registered connection to an elbus broker.
 *
 * A client connects to a UNIX socket path or a `HOST:PORT` (an address
 * that starts with `/` or ends in `.sock`, `.socket` or `.ipc` is a UNIX
 * socket), registers a name, and then sends one-to-one messages,
 * broadcasts and publications, and receives them through the
 * [signal@Elbus.Client::message], [signal@Elbus.Client::broadcast] and
 * [signal@Elbus.Client::publication] signals.
 *
 * ```c
 * g_autoptr(ElbusClient) client = NULL;
 * g_autoptr(GBytes) payload = g_bytes_new_static ("hello", 5);
 * const char *topics[] = { "plant/+/temp", NULL };
 *
 * client = elbus_client_new_sync ("/tmp/elbus.sock", "demo.client", NULL, &error);
 * g_signal_connect (client, "publication", G_CALLBACK (on_publication), NULL);
 * elbus_client_subscribe_sync (client, topics, ELBUS_QOS_PROCESSED, NULL, &error);
 * elbus_client_send_sync (client, "demo.other", payload, ELBUS_QOS_PROCESSED, NULL, &error);
 * ```
 *
 * [func@Elbus.Client.new_async] and [ctor@Elbus.Client.new_sync] connect
 * with the default settings. The client also implements
 * [iface@Gio.AsyncInitable] and [iface@Gio.Initable], so that its
 * properties can be set before it connects, a longer
 * [property@Elbus.Client:timeout] for a slow link, say:
 *
 * ```c
 * client = g_initable_new (ELBUS_TYPE_CLIENT, NULL, &error,
 *                          "address", "10.0.0.2:7777", "name", "demo.client",
 *                          "timeout", 30.0, NULL);
 * ```
 *
 * Initializing connects and registers once; calling it again gives the
 * same outcome.
 *
 * Every operation takes a [enum@Elbus.QoS]. With an acknowledged QoS the
 * `_async` operation completes when the broker's acknowledgement arrives
 * and fails with its [error@Elbus.Error] code; otherwise it completes once
 * the frame is queued. Frames that are not real-time are batched and
 * written before the main loop next sleeps.
 *
 * A client is bound to the thread-default main context of the thread that
 * created it: it emits its signals and completes its operations there, and
 * must be used from that thread. The `_sync` variants work whether that
 * context is running or not (from a script, say): they drive the
 * connection themselves, and frames that arrive meanwhile are emitted
 * later from the context, in order.
 *
 * When the connection ends, every pending operation fails with
 * %ELBUS_ERROR_CLOSED and [signal@Elbus.Client::disconnected] is emitted
 * (after any frames still waiting to be emitted).
 *
 * Since: 1.0
 */


G_DEFINE_FINAL_TYPE_WITH_CODE (ElbusClient, elbus_client, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      _elbus_client_initable_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE,
                                                      _elbus_client_async_initable_iface_init))

/* GObject */

static void
elbus_client_dispose (GObject *object)
{
  ElbusClient *self = ELBUS_CLIENT (object);

  /* the broker still points at the client: keep it (leaked) rather than
   * let the broker use freed memory */
  if (_elbus_client_wrong_thread (self, NULL))
    {
      g_object_ref (self);
      return;
    }

  elbus_client_close (self);
  if (self->deferred_source != NULL)
    {
      g_source_destroy (self->deferred_source);
      g_clear_pointer (&self->deferred_source, g_source_unref);
    }
  g_queue_clear_full (&self->deferred, (GDestroyNotify) elbus_frame_unref);
  g_clear_error (&self->disconnect_error);
  g_clear_error (&self->init_error);

  G_OBJECT_CLASS (elbus_client_parent_class)->dispose (object);
}

static void
elbus_client_finalize (GObject *object)
{
  ElbusClient *self = ELBUS_CLIENT (object);

  if (self->transport != NULL)
    self->transport->funcs->free (self->transport);
  g_hash_table_unref (self->pending);
  g_clear_object (&self->connection);
  g_clear_pointer (&self->name, g_ref_string_release);
  g_free (self->address);
  g_free (self->drop_reason);
  g_main_context_unref (self->context);

  G_OBJECT_CLASS (elbus_client_parent_class)->finalize (object);
}

static void
elbus_client_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  ElbusClient *self = ELBUS_CLIENT (object);

  switch (prop_id)
    {
    case PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case PROP_ADDRESS:
      g_value_set_string (value, self->address);
      break;
    case PROP_CONNECTED:
      g_value_set_boolean (value, self->connected);
      break;
    case PROP_TIMEOUT:
      g_value_set_double (value, self->timeout);
      break;
    case PROP_QUEUE_SIZE:
      g_value_set_uint (value, self->queue_size);
      break;
    case PROP_BUF_SIZE:
      g_value_set_uint (value, self->buf_size);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_client_set_property (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  ElbusClient *self = ELBUS_CLIENT (object);

  switch (prop_id)
    {
    case PROP_NAME:
      if (g_value_get_string (value) != NULL)
        self->name = g_ref_string_new (g_value_get_string (value));
      break;
    case PROP_ADDRESS:
      self->address = g_value_dup_string (value);
      break;
    case PROP_TIMEOUT:
      elbus_client_set_timeout (self, g_value_get_double (value));
      break;
    case PROP_QUEUE_SIZE:
      elbus_client_set_queue_size (self, g_value_get_uint (value));
      break;
    case PROP_BUF_SIZE:
      elbus_client_set_buf_size (self, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_client_class_init (ElbusClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = elbus_client_dispose;
  object_class->finalize = elbus_client_finalize;
  object_class->get_property = elbus_client_get_property;
  object_class->set_property = elbus_client_set_property;

  /**
   * ElbusClient:name:
   *
   * The name the client registers with; `NAME%%SUFFIX` for a secondary
   * client of `NAME`.
   *
   * Since: 1.0
   */
  _elbus_client_properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * ElbusClient:address:
   *
   * The broker's address: a UNIX socket path, `HOST:PORT`, or
   * `ws://HOST:PORT/PATH` or `wss://HOST:PORT/PATH` for a broker serving
   * WebSocket (with libsoup; else connecting fails with
   * %G_IO_ERROR_NOT_SUPPORTED). `wss://` checks the certificate against
   * the default TLS database, or the CA file the environment variable
   * `ELBUS_TLS_CA_FILE` names. Over WebSocket the `_sync` calls iterate
   * the client's main context (libsoup's sources live there), so other
   * sources attached to it may run during them.
   *
   * Since: 1.0
   */
  _elbus_client_properties[PROP_ADDRESS] =
    g_param_spec_string ("address", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * ElbusClient:connected:
   *
   * Whether the client is registered with its broker.
   *
   * Since: 1.0
   */
  _elbus_client_properties[PROP_CONNECTED] =
    g_param_spec_boolean ("connected", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusClient:timeout:
   *
   * Seconds allowed for connecting and registering (set it before
   * initializing the client: see [iface@Gio.Initable]), for an
   * acknowledgement and for a blocked write; also the keep-alive ping
   * interval.
   *
   * Since: 1.0
   */
  _elbus_client_properties[PROP_TIMEOUT] =
    g_param_spec_double ("timeout", NULL, NULL, 0.001, 86400.0, ELBUS_CLIENT_DEFAULT_TIMEOUT,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusClient:queue-size:
   *
   * The most frames waiting to be written to the broker; past it,
   * operations fail with %ELBUS_ERROR_BUSY.
   *
   * Since: 1.0
   */
  _elbus_client_properties[PROP_QUEUE_SIZE] =
    g_param_spec_uint ("queue-size", NULL, NULL, 1, G_MAXINT32, ELBUS_CLIENT_DEFAULT_QUEUE_SIZE,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusClient:buf-size:
   *
   * Bytes of frames that are not real-time that may wait to be batched
   * into one write; more are written at once.
   *
   * Since: 1.0
   */
  _elbus_client_properties[PROP_BUF_SIZE] =
    g_param_spec_uint ("buf-size", NULL, NULL, 1, G_MAXINT32, ELBUS_CLIENT_DEFAULT_BUF_SIZE,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, _elbus_client_properties);

  /**
   * ElbusClient::message:
   * @self: the client
   * @frame: the message
   *
   * Emitted for each one-to-one message to this client.
   *
   * Since: 1.0
   */
  _elbus_client_signals[SIGNAL_MESSAGE] =
    g_signal_new ("message", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1,
                  ELBUS_TYPE_FRAME);

  /**
   * ElbusClient::broadcast:
   * @self: the client
   * @frame: the broadcast
   *
   * Emitted for each broadcast whose mask matches this client's name.
   *
   * Since: 1.0
   */
  _elbus_client_signals[SIGNAL_BROADCAST] =
    g_signal_new ("broadcast", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1,
                  ELBUS_TYPE_FRAME);

  /**
   * ElbusClient::publication:
   * @self: the client
   * @frame: the publication; see [method@Elbus.Frame.get_topic]
   *
   * Emitted for each publication on a topic this client subscribed to
   * (once, however many of its masks match).
   *
   * Since: 1.0
   */
  _elbus_client_signals[SIGNAL_PUBLICATION] =
    g_signal_new ("publication", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1,
                  ELBUS_TYPE_FRAME);

  /**
   * ElbusClient::disconnected:
   * @self: the client
   * @error: (nullable): why, or %NULL after [method@Elbus.Client.close]
   *
   * Emitted once when the connection ends. Pending operations have
   * failed with %ELBUS_ERROR_CLOSED by then.
   *
   * Since: 1.0
   */
  _elbus_client_signals[SIGNAL_DISCONNECTED] =
    g_signal_new ("disconnected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
elbus_client_init (ElbusClient *self)
{
  self->context = g_main_context_ref_thread_default ();
  self->timeout = ELBUS_CLIENT_DEFAULT_TIMEOUT;
  self->queue_size = ELBUS_CLIENT_DEFAULT_QUEUE_SIZE;
  self->buf_size = ELBUS_CLIENT_DEFAULT_BUF_SIZE;
  self->pending = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) _elbus_client_pending_op_free);
  g_queue_init (&self->deferred);
}

/**
 * elbus_client_new_async:
 * @address: the broker: a UNIX socket path or `HOST:PORT`
 * @name: the name to register, e.g. `group.subgroup.client`
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called when registered, or on failure
 * @user_data: data for @callback
 *
 * Connects to the broker at @address and registers as @name. The client is
 * bound to the thread-default main context. The connection and the
 * handshake together must be done within %ELBUS_CLIENT_DEFAULT_TIMEOUT
 * seconds, however slowly the broker answers, else they fail with
 * %G_IO_ERROR_TIMED_OUT (for another timeout, use
 * g_async_initable_new_async() with the properties). Finish with
 * [ctor@Elbus.Client.new_finish].
 *
 * Since: 1.0
 */
void
elbus_client_new_async (const char          *address,
                        const char          *name,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  g_return_if_fail (address != NULL);
  g_return_if_fail (name != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (ELBUS_TYPE_CLIENT, G_PRIORITY_DEFAULT, cancellable, callback,
                              user_data, "address", address, "name", name, NULL);
}

/**
 * elbus_client_new_finish:
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [func@Elbus.Client.new_async]. Registration refusals are
 * [error@Elbus.Error] codes: %ELBUS_ERROR_BUSY for a name already taken,
 * %ELBUS_ERROR_DATA for an invalid one, %ELBUS_ERROR_NOT_REGISTERED for a
 * secondary whose primary is not connected, %ELBUS_ERROR_ACCESS for one the
 * policy refuses; connection failures are [error@Gio.IOErrorEnum] codes.
 *
 * Returns: (transfer full): the registered client, or %NULL on error
 *
 * Since: 1.0
 */
ElbusClient *
elbus_client_new_finish (GAsyncResult  *result,
                         GError       **error)
{
  g_autoptr(GObject) source = NULL;

  g_return_val_if_fail (G_IS_TASK (result), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) ==
                        _elbus_client_init_async, NULL);

  source = g_async_result_get_source_object (result);
  return (ElbusClient *) g_async_initable_new_finish (G_ASYNC_INITABLE (source), result,
                                                      error);
}

/**
 * elbus_client_new_sync:
 * @address: the broker: a UNIX socket path or `HOST:PORT`
 * @name: the name to register
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Connects and registers, blocking the calling thread: see
 * [func@Elbus.Client.new_async].
 *
 * Returns: (transfer full): the registered client, or %NULL on error
 *
 * Since: 1.0
 */
ElbusClient *
elbus_client_new_sync (const char    *address,
                       const char    *name,
                       GCancellable  *cancellable,
                       GError       **error)
{
  g_return_val_if_fail (address != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (ELBUS_TYPE_CLIENT, cancellable, error,
                         "address", address, "name", name, NULL);
}

static char *
next_secondary_name (ElbusClient *self)
{
  gsize primary_len;

  /* a secondary's secondary is another secondary of the same primary */
  if (!_elbus_codec_split_secondary (self->name, strlen (self->name), &primary_len))
    primary_len = strlen (self->name);

  return g_strdup_printf ("%.*s%%%%%u", (int) primary_len, self->name, ++self->n_secondaries);
}

static void
copy_settings (ElbusClient *from,
               ElbusClient *to)
{
  elbus_client_set_timeout (to, from->timeout);
  elbus_client_set_queue_size (to, from->queue_size);
  elbus_client_set_buf_size (to, from->buf_size);
}

/* Suffixes already taken (by a sibling secondary that counted on its own)
 * are skipped; this many tries at the most. */
#define SECONDARY_TRIES 64

static void
secondary_new_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  ElbusClient *self = g_task_get_source_object (task);
  GError *error = NULL;
  ElbusClient *secondary = elbus_client_new_finish (result, &error);
  guint tries = GPOINTER_TO_UINT (g_task_get_task_data (task));

  if (secondary == NULL)
    {
      if (g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_BUSY) && tries < SECONDARY_TRIES &&
          self->connected)
        {
          g_autofree char *name = next_secondary_name (self);
          GCancellable *cancellable = g_task_get_cancellable (task);

          g_clear_error (&error);
          g_task_set_task_data (task, GUINT_TO_POINTER (tries + 1), NULL);
          elbus_client_new_async (self->address, name, cancellable, secondary_new_cb,
                                  g_steal_pointer (&task));
          return;
        }
      g_task_return_error (task, error);
      return;
    }

  copy_settings (self, secondary);
  g_task_return_pointer (task, secondary, g_object_unref);
}

/* The in-process and blocking ways, with the same skipping of taken
 * suffixes. */
static ElbusClient *
register_secondary_now (ElbusClient   *self,
                        GCancellable  *cancellable,
                        GError       **error)
{
  for (guint tries = 1; ; tries++)
    {
      g_autofree char *name = next_secondary_name (self);
      GError *local_error = NULL;
      ElbusClient *secondary;

      if (_elbus_client_wrong_thread (self, error))
        return NULL;
      if (self->transport->funcs->new_secondary != NULL)
        secondary = self->transport->funcs->new_secondary (self->transport, name, &local_error);
      else
        secondary = elbus_client_new_sync (self->address, name, cancellable, &local_error);

      if (secondary != NULL)
        {
          copy_settings (self, secondary);
          return secondary;
        }
      if (!g_error_matches (local_error, ELBUS_ERROR, ELBUS_ERROR_BUSY) ||
          tries >= SECONDARY_TRIES)
        {
          g_propagate_error (error, local_error);
          return NULL;
        }
      g_error_free (local_error);
    }
}

/**
 * elbus_client_register_secondary_async:
 * @self: a connected client
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called when the secondary is registered
 * @user_data: data for @callback
 *
 * Registers another connection of the same primary client, named
 * `NAME%%N` with N counting from 1 (a suffix already taken is skipped). A secondary shares the primary's
 * security policy, is not announced, and is disconnected by the broker
 * when the primary goes. An RPC handler uses one to make calls of its own
 * without waiting on its primary connection. The new client is bound to
 * the thread-default main context and takes @self's timeout and sizes.
 * Finish with [method@Elbus.Client.register_secondary_finish].
 *
 * Since: 1.0
 */
void
elbus_client_register_secondary_async (ElbusClient         *self,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  g_autofree char *name = NULL;
  GTask *task;

  g_return_if_fail (ELBUS_IS_CLIENT (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, elbus_client_register_secondary_async);

  if (!self->connected)
    {
      g_task_return_new_error (task, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                               _("the primary client is not connected"));
      g_object_unref (task);
      return;
    }

  if (self->transport->funcs->new_secondary != NULL)
    {
      GError *error = NULL;
      ElbusClient *secondary = register_secondary_now (self, cancellable, &error);

      if (secondary == NULL)
        g_task_return_error (task, error);
      else
        g_task_return_pointer (task, secondary, g_object_unref);
      g_object_unref (task);
      return;
    }

  name = next_secondary_name (self);
  g_task_set_task_data (task, GUINT_TO_POINTER (1), NULL);
  elbus_client_new_async (self->address, name, cancellable, secondary_new_cb, task);
}

/**
 * elbus_client_register_secondary_finish:
 * @self: a client
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.Client.register_secondary_async].
 *
 * Returns: (transfer full): the secondary client, or %NULL on error
 *
 * Since: 1.0
 */
ElbusClient *
elbus_client_register_secondary_finish (ElbusClient   *self,
                                        GAsyncResult  *result,
                                        GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) ==
                        elbus_client_register_secondary_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * elbus_client_register_secondary_sync:
 * @self: a connected client
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Registers a secondary client, blocking: see
 * [method@Elbus.Client.register_secondary_async].
 *
 * Returns: (transfer full): the secondary client, or %NULL on error
 *
 * Since: 1.0
 */
ElbusClient *
elbus_client_register_secondary_sync (ElbusClient   *self,
                                      GCancellable  *cancellable,
                                      GError       **error)
{
  ElbusClient *secondary;

  g_return_val_if_fail (ELBUS_IS_CLIENT (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!self->connected)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the primary client is not connected"));
      return NULL;
    }

  secondary = register_secondary_now (self, cancellable, error);

  return secondary;
}

/**
 * elbus_client_get_name:
 * @self: a client
 *
 * Gets [property@Elbus.Client:name].
 *
 * Returns: (transfer none): the registered name
 *
 * Since: 1.0
 */
const char *
elbus_client_get_name (ElbusClient *self)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), NULL);

  return self->name;
}

/**
 * elbus_client_get_address:
 * @self: a client
 *
 * Gets [property@Elbus.Client:address].
 *
 * Returns: (transfer none): the broker's address
 *
 * Since: 1.0
 */
const char *
elbus_client_get_address (ElbusClient *self)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), NULL);

  return self->address;
}

/**
 * elbus_client_is_connected:
 * @self: a client
 *
 * Gets [property@Elbus.Client:connected].
 *
 * Returns: %TRUE while registered with the broker
 *
 * Since: 1.0
 */
gboolean
elbus_client_is_connected (ElbusClient *self)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);

  return self->connected;
}

/**
 * elbus_client_get_timeout:
 * @self: a client
 *
 * Gets [property@Elbus.Client:timeout].
 *
 * Returns: seconds
 *
 * Since: 1.0
 */
double
elbus_client_get_timeout (ElbusClient *self)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), 0);

  return self->timeout;
}

/**
 * elbus_client_set_timeout:
 * @self: a client
 * @timeout: seconds, more than 0
 *
 * Sets [property@Elbus.Client:timeout].
 *
 * Since: 1.0
 */
void
elbus_client_set_timeout (ElbusClient *self,
                          double       timeout)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (timeout >= 0.001 && timeout <= 86400.0);

  if (self->timeout == timeout)
    return;

  self->timeout = timeout;
  _elbus_client_restart_tick (self);
  g_object_notify_by_pspec (G_OBJECT (self), _elbus_client_properties[PROP_TIMEOUT]);
}

/**
 * elbus_client_get_queue_size:
 * @self: a client
 *
 * Gets [property@Elbus.Client:queue-size].
 *
 * Returns: frames
 *
 * Since: 1.0
 */
guint
elbus_client_get_queue_size (ElbusClient *self)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), 0);

  return self->queue_size;
}

/**
 * elbus_client_set_queue_size:
 * @self: a client
 * @queue_size: frames, at least 1
 *
 * Sets [property@Elbus.Client:queue-size].
 *
 * Since: 1.0
 */
void
elbus_client_set_queue_size (ElbusClient *self,
                             guint        queue_size)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (queue_size >= 1 && queue_size <= G_MAXINT32);

  if (self->queue_size == queue_size)
    return;

  self->queue_size = queue_size;
  g_object_notify_by_pspec (G_OBJECT (self), _elbus_client_properties[PROP_QUEUE_SIZE]);
}

/**
 * elbus_client_get_buf_size:
 * @self: a client
 *
 * Gets [property@Elbus.Client:buf-size].
 *
 * Returns: bytes
 *
 * Since: 1.0
 */
guint
elbus_client_get_buf_size (ElbusClient *self)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), 0);

  return self->buf_size;
}

/**
 * elbus_client_set_buf_size:
 * @self: a client
 * @buf_size: bytes, at least 1
 *
 * Sets [property@Elbus.Client:buf-size].
 *
 * Since: 1.0
 */
void
elbus_client_set_buf_size (ElbusClient *self,
                           guint        buf_size)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (buf_size >= 1 && buf_size <= G_MAXINT32);

  if (self->buf_size == buf_size)
    return;

  self->buf_size = buf_size;
  if (self->transport != NULL)
    self->transport->buf_size = buf_size;
  g_object_notify_by_pspec (G_OBJECT (self), _elbus_client_properties[PROP_BUF_SIZE]);
}

/**
 * elbus_client_send_async:
 * @self: a client
 * @target: the name of the client to send to
 * @payload: (nullable): the bytes to send
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async) (nullable): called when done
 * @user_data: data for @callback
 *
 * Sends a one-to-one message. With an acknowledged @qos it fails with
 * %ELBUS_ERROR_NOT_REGISTERED when no client @target is connected. Finish
 * with [method@Elbus.Client.send_finish]. With no @callback and a @qos
 * without acknowledgement nothing is allocated beyond the queued frame; a
 * frame that cannot be queued then (the client is closed, or
 * [property@Elbus.Client:queue-size] frames wait already) is logged.
 *
 * Since: 1.0
 */
void
elbus_client_send_async (ElbusClient         *self,
                         const char          *target,
                         GBytes              *payload,
                         ElbusQoS             qos,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (target != NULL);

  _elbus_client_op_async (self, elbus_client_send_async, ELBUS_OP_MESSAGE, target, NULL, payload,
                          qos, cancellable, callback, user_data);
}

/* elbus_client_send_async() of @head then @payload as one payload, not
 * joined (an RPC answer's few bytes, then a large result as it lies);
 * finished with elbus_client_send_finish(). */
void
_elbus_client_send_parts_async (ElbusClient         *self,
                                const char          *target,
                                GBytes              *head,
                                GBytes              *payload,
                                ElbusQoS             qos,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (target != NULL);

  _elbus_client_op_async (self, elbus_client_send_async, ELBUS_OP_MESSAGE, target, head, payload,
                          qos, cancellable, callback, user_data);
}

/**
 * elbus_client_send_finish:
 * @self: a client
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.Client.send_async].
 *
 * Returns: %TRUE when sent (and acknowledged, for an acknowledged QoS)
 *
 * Since: 1.0
 */
gboolean
elbus_client_send_finish (ElbusClient   *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  return _elbus_client_op_finish (self, result, elbus_client_send_async, error);
}

/**
 * elbus_client_send_sync:
 * @self: a client
 * @target: the name of the client to send to
 * @payload: (nullable): the bytes to send
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Sends a one-to-one message and waits until it is written (and
 * acknowledged, for an acknowledged @qos). See
 * [method@Elbus.Client.send_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_send_sync (ElbusClient   *self,
                        const char    *target,
                        GBytes        *payload,
                        ElbusQoS       qos,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (target != NULL, FALSE);

  return _elbus_client_op_sync (self, ELBUS_OP_MESSAGE, target, payload, qos, cancellable, error);
}

/**
 * elbus_client_send_broadcast_async:
 * @self: a client
 * @mask: a `.`-separated name mask: `?` matches one part, `*` one or more
 * @payload: (nullable): the bytes to send
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called when done
 * @user_data: data for @callback
 *
 * Sends a broadcast to every client whose name matches @mask (this client
 * included). It is acknowledged even when nobody matches. Finish with
 * [method@Elbus.Client.send_broadcast_finish].
 *
 * Since: 1.0
 */
void
elbus_client_send_broadcast_async (ElbusClient         *self,
                                   const char          *mask,
                                   GBytes              *payload,
                                   ElbusQoS             qos,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (mask != NULL);

  _elbus_client_op_async (self, elbus_client_send_broadcast_async, ELBUS_OP_BROADCAST, mask, NULL, payload,
                          qos, cancellable, callback, user_data);
}

/**
 * elbus_client_send_broadcast_finish:
 * @self: a client
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.Client.send_broadcast_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_send_broadcast_finish (ElbusClient   *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  return _elbus_client_op_finish (self, result, elbus_client_send_broadcast_async, error);
}

/**
 * elbus_client_send_broadcast_sync:
 * @self: a client
 * @mask: a `.`-separated name mask
 * @payload: (nullable): the bytes to send
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Sends a broadcast and waits: see
 * [method@Elbus.Client.send_broadcast_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_send_broadcast_sync (ElbusClient   *self,
                                  const char    *mask,
                                  GBytes        *payload,
                                  ElbusQoS       qos,
                                  GCancellable  *cancellable,
                                  GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (mask != NULL, FALSE);

  return _elbus_client_op_sync (self, ELBUS_OP_BROADCAST, mask, payload, qos, cancellable, error);
}

/**
 * elbus_client_publish_async:
 * @self: a client
 * @topic: the topic, `/`-separated
 * @payload: (nullable): the bytes to publish
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called when the broker has acknowledged
 * @user_data: data for @callback
 *
 * Publishes @payload on @topic. Finish with
 * [method@Elbus.Client.publish_finish].
 *
 * Since: 1.0
 */
void
elbus_client_publish_async (ElbusClient         *self,
                            const char          *topic,
                            GBytes              *payload,
                            ElbusQoS             qos,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (topic != NULL);

  _elbus_client_op_async (self, elbus_client_publish_async, ELBUS_OP_PUBLISH, topic, NULL, payload,
                          qos, cancellable, callback, user_data);
}

/**
 * elbus_client_publish_finish:
 * @self: a client
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.Client.publish_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_publish_finish (ElbusClient   *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  return _elbus_client_op_finish (self, result, elbus_client_publish_async, error);
}

/**
 * elbus_client_publish_sync:
 * @self: a client
 * @topic: the topic
 * @payload: (nullable): the bytes to publish
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Publishes and waits: see [method@Elbus.Client.publish_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_publish_sync (ElbusClient   *self,
                           const char    *topic,
                           GBytes        *payload,
                           ElbusQoS       qos,
                           GCancellable  *cancellable,
                           GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (topic != NULL, FALSE);

  return _elbus_client_op_sync (self, ELBUS_OP_PUBLISH, topic, payload, qos, cancellable, error);
}

/**
 * elbus_client_subscribe_async:
 * @self: a client
 * @masks: (array zero-terminated=1): topic masks: `+` matches one level,
 *   `#` one or more
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called when done
 * @user_data: data for @callback
 *
 * Subscribes to the topics matching any of @masks, in one frame. Finish
 * with [method@Elbus.Client.subscribe_finish].
 *
 * Since: 1.0
 */
void
elbus_client_subscribe_async (ElbusClient         *self,
                              const char * const  *masks,
                              ElbusQoS             qos,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (masks != NULL && masks[0] != NULL);

  _elbus_client_masks_async (self, elbus_client_subscribe_async, ELBUS_OP_SUBSCRIBE, masks, qos,
               cancellable, callback, user_data);
}

/**
 * elbus_client_subscribe_finish:
 * @self: a client
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.Client.subscribe_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_subscribe_finish (ElbusClient   *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  return _elbus_client_op_finish (self, result, elbus_client_subscribe_async, error);
}

/**
 * elbus_client_subscribe_sync:
 * @self: a client
 * @masks: (array zero-terminated=1): topic masks
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Subscribes and waits: see [method@Elbus.Client.subscribe_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_subscribe_sync (ElbusClient         *self,
                             const char * const  *masks,
                             ElbusQoS             qos,
                             GCancellable        *cancellable,
                             GError             **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (masks != NULL && masks[0] != NULL, FALSE);

  return _elbus_client_masks_sync (self, ELBUS_OP_SUBSCRIBE, masks, qos, cancellable, error);
}

/**
 * elbus_client_unsubscribe_async:
 * @self: a client
 * @masks: (array zero-terminated=1): topic masks, as subscribed
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called when done
 * @user_data: data for @callback
 *
 * Drops subscriptions. Finish with
 * [method@Elbus.Client.unsubscribe_finish].
 *
 * Since: 1.0
 */
void
elbus_client_unsubscribe_async (ElbusClient         *self,
                                const char * const  *masks,
                                ElbusQoS             qos,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));
  g_return_if_fail (masks != NULL && masks[0] != NULL);

  _elbus_client_masks_async (self, elbus_client_unsubscribe_async, ELBUS_OP_UNSUBSCRIBE, masks, qos,
               cancellable, callback, user_data);
}

/**
 * elbus_client_unsubscribe_finish:
 * @self: a client
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.Client.unsubscribe_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_unsubscribe_finish (ElbusClient   *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  return _elbus_client_op_finish (self, result, elbus_client_unsubscribe_async, error);
}

/**
 * elbus_client_unsubscribe_sync:
 * @self: a client
 * @masks: (array zero-terminated=1): topic masks, as subscribed
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Unsubscribes and waits: see [method@Elbus.Client.unsubscribe_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_client_unsubscribe_sync (ElbusClient         *self,
                               const char * const  *masks,
                               ElbusQoS             qos,
                               GCancellable        *cancellable,
                               GError             **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (masks != NULL && masks[0] != NULL, FALSE);

  return _elbus_client_masks_sync (self, ELBUS_OP_UNSUBSCRIBE, masks, qos, cancellable, error);
}

/**
 * elbus_client_flush_sync:
 * @self: a client
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Writes every queued frame to the broker now, blocking until the socket
 * has taken them all (or [property@Elbus.Client:timeout] passes).
 *
 * Returns: %TRUE when everything was written
 *
 * Since: 1.0
 */
gboolean
elbus_client_flush_sync (ElbusClient   *self,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);

  return _elbus_client_flush_sync (self, cancellable, error);
}

/**
 * elbus_client_close:
 * @self: a client
 *
 * Writes what is queued as far as the socket takes it without waiting,
 * then closes the connection. Pending operations fail with
 * %ELBUS_ERROR_CLOSED and [signal@Elbus.Client::disconnected] is emitted
 * with a %NULL error. Disposing of the client closes it too.
 *
 * Since: 1.0
 */
void
elbus_client_close (ElbusClient *self)
{
  g_return_if_fail (ELBUS_IS_CLIENT (self));

  if (!self->connected || _elbus_client_wrong_thread (self, NULL))
    return;

  self->transport->funcs->flush (self->transport);
  _elbus_client_disconnect (self, NULL);
}

/**
 * elbus_address_is_unix:
 * @address: a bus address, as given to [func@Elbus.Client.new_async] or
 *   [method@Elbus.Broker.listen]
 *
 * The address rule of the elbus tools (docs/protocol.md section 1): a path that
 * starts with `/` or ends in `.sock`, `.socket` or `.ipc` is a UNIX
 * socket; anything else is `HOST:PORT`.
 *
 * Returns: %TRUE if @address names a UNIX socket
 *
 * Since: 1.0
 */
gboolean
elbus_address_is_unix (const char *address)
{
  g_return_val_if_fail (address != NULL, FALSE);

  return _elbus_address_is_unix (address);
}


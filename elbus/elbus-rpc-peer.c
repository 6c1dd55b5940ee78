/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "elbus-client-private.h"
#include "elbus-error.h"
#include "elbus-i18n-private.h"
#include "elbus-msgpack.h"
#include "elbus-msgpack-private.h"
#include "elbus-rpc-private.h"

/**
 * ElbusRpcPeer:
 *
 * The elbus RPC layer over an [class@Elbus.Client]: calls to other clients
 * and answers to theirs, carried in one-to-one messages (docs/protocol.md
 * section 8), byte-compatible with the original elbus RPC.
 *
 * ```c
 * peer = elbus_rpc_peer_new (client);
 * g_signal_connect (peer, "handle-call", G_CALLBACK (handle_call_cb), NULL);
 * reply = elbus_rpc_peer_call_sync (peer, "svc.db", "get", params,
 *                                   ELBUS_QOS_PROCESSED, -1, NULL, &error);
 * ```
 *
 * Incoming calls are emitted as [signal@Elbus.RpcPeer::handle-call] with an
 * [class@Elbus.RpcInvocation]; a call no handler takes is answered
 * %ELBUS_RPC_ERROR_METHOD_NOT_FOUND. Notifications are emitted as
 * [signal@Elbus.RpcPeer::notification]. Broadcasts and publications, and
 * the messages themselves, still reach the client's signals.
 *
 * A call completes with the reply's bytes, or fails with an
 * %ELBUS_RPC_ERROR carrying the callee's code and error data; a call the
 * broker refuses fails with code -32000 - result byte (e.g. -32113 when the
 * target is not registered). Calls fail with %ELBUS_ERROR_TIMEOUT when no
 * answer comes in time and %ELBUS_ERROR_CLOSED when the client
 * disconnects: none waits forever.
 *
 * A handler that must itself call other clients before it answers should
 * do so through a secondary client
 * ([method@Elbus.Client.register_secondary_async]) or asynchronously: a
 * `_sync` call made from a handler drives the connection but leaves other
 * incoming calls waiting until it returns.
 *
 * Since: 1.0
 */

typedef struct {
  ElbusRpcPeer  *peer;           /* (unowned) */
  guint32        call_id;
  char          *target;         /* (owned) */
  GTask         *task;           /* (owned) (nullable): an async call */
  gboolean      *sync_done;      /* (nullable): a sync call */
  GBytes       **sync_result;
  GError       **sync_error;
  GSource       *timeout_source; /* (owned) (nullable) */
  GSource       *cancel_source;  /* (owned) (nullable) */
} PendingCall;

/* The RPC state of a client, shared by all its peers (qdata on the
 * client): call ids are unique per client, so that each reply finds the
 * peer that made the call, however many peers the client has. */
typedef struct {
  ElbusClient *client;           /* (unowned): owns the hub */
  GPtrArray   *peers;            /* (element-type ElbusRpcPeer) (unowned): newest last */
  GHashTable  *calls;            /* (owned): call id -> PendingCall */
  guint32      next_call_id;
} RpcHub;

struct _ElbusRpcPeer {
  GObject       parent_instance;

  GMainContext *context;         /* (owned): thread-default at construction */
  ElbusClient  *client;          /* (owned) */
  RpcHub       *hub;             /* (unowned): the client's */
  double        call_timeout;
  ElbusMsgpackLimits limits;     /* for replies and incoming params */
  gulong        message_id;
  gulong        disconnected_id;
};

enum {
  PROP_0,
  PROP_CLIENT,
  PROP_CALL_TIMEOUT,
  N_PROPS
};

enum {
  SIGNAL_HANDLE_CALL,
  SIGNAL_NOTIFICATION,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (ElbusRpcPeer, elbus_rpc_peer, G_TYPE_OBJECT)

/* pending calls */

static void
pending_call_free (PendingCall *call)
{
  if (call->timeout_source != NULL)
    {
      g_source_destroy (call->timeout_source);
      g_source_unref (call->timeout_source);
    }
  if (call->cancel_source != NULL)
    {
      g_source_destroy (call->cancel_source);
      g_source_unref (call->cancel_source);
    }
  g_clear_object (&call->task);
  g_free (call->target);
  g_free (call);
}

/* Completes the call @call_id, if still pending, with @result or @error
 * (taken). */
static void
complete_call (ElbusRpcPeer *self,
               guint32       call_id,
               GBytes       *result,
               GError       *error)
{
  PendingCall *call = NULL;

  if (!g_hash_table_steal_extended (self->hub->calls, GUINT_TO_POINTER (call_id), NULL,
                                    (gpointer *) &call))
    {
      /* answered already, timed out or cancelled: nothing waits */
      g_clear_error (&error);
      return;
    }

  if (call->task != NULL)
    {
      if (error != NULL)
        g_task_return_error (call->task, error);
      else
        g_task_return_pointer (call->task, g_bytes_ref (result), (GDestroyNotify) g_bytes_unref);
    }
  else
    {
      if (error != NULL)
        g_propagate_error (call->sync_error, error);
      else
        *call->sync_result = g_bytes_ref (result);
      *call->sync_done = TRUE;
    }

  pending_call_free (call);
}

static guint32
next_call_id (RpcHub *hub)
{
  /* from 1, wrapping back to 1, skipping ids still waiting */
  do
    {
      if (++hub->next_call_id == 0)
        hub->next_call_id = 1;
    }
  while (g_hash_table_contains (hub->calls, GUINT_TO_POINTER (hub->next_call_id)));

  return hub->next_call_id;
}

static void
rpc_hub_free (RpcHub *hub)
{
  /* every peer failed its calls when it went */
  g_assert (hub->peers->len == 0);
  g_ptr_array_unref (hub->peers);
  g_hash_table_unref (hub->calls);
  g_free (hub);
}

static RpcHub *
rpc_hub_get (ElbusClient *client)
{
  /* peers are made on any thread: threads that race store the same */
  static guint quark_id;
  GQuark quark = g_atomic_int_get (&quark_id);
  RpcHub *hub;

  if (G_UNLIKELY (quark == 0))
    {
      quark = g_quark_from_static_string ("elbus-rpc-hub");
      g_atomic_int_set (&quark_id, quark);
    }
  hub = g_object_get_qdata (G_OBJECT (client), quark);
  if (hub == NULL)
    {
      hub = g_new0 (RpcHub, 1);
      hub->client = client;
      hub->peers = g_ptr_array_new ();
      hub->calls = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) pending_call_free);
      g_object_set_qdata_full (G_OBJECT (client), quark, hub, (GDestroyNotify) rpc_hub_free);
    }
  return hub;
}

static GBytes *
build_request (guint32     call_id,
               const char *method,
               GBytes     *params)
{
  gsize method_len = strlen (method);
  gsize params_len = params != NULL ? g_bytes_get_size (params) : 0;
  guint8 *buf = g_malloc (1 + 4 + method_len + 1 + params_len);

  buf[0] = ELBUS_RPC_REQUEST;
  _elbus_write_u32 (buf + 1, call_id);
  memcpy (buf + 5, method, method_len + 1);
  if (params_len > 0)
    memcpy (buf + 5 + method_len + 1, g_bytes_get_data (params, NULL), params_len);

  return g_bytes_new_take (buf, 1 + 4 + method_len + 1 + params_len);
}

static GBytes *build_notification (GBytes *payload);

/* A call the broker refused: -32000 - result byte. */
static GError *
bus_error_to_rpc (const GError *error)
{
  if (error->domain == ELBUS_ERROR && error->code != ELBUS_ERROR_CLOSED)
    return g_error_new_literal (ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_BUS - error->code,
                                error->message);
  return g_error_copy (error);
}

/* incoming */

static GError *
error_from_reply (const guint8 *data,
                  gsize         len)
{
  gint16 code = (gint16) ((guint16) data[0] | ((guint16) data[1] << 8));
  g_autofree char *message = g_utf8_make_valid ((const char *) data + 2, len - 2);

  return g_error_new_literal (ELBUS_RPC_ERROR, code, message);
}

/* Sees every one-to-one message first, even during a _sync call: replies
 * and errors complete calls here and go no further. */
static gboolean
message_filter (ElbusClient *client,
                const char  *sender,
                GBytes      *payload,
                gboolean     realtime,
                gpointer     user_data)
{
  RpcHub *hub = user_data;
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);
  PendingCall *call;
  guint32 call_id;

  if (len == 0 || (data[0] != ELBUS_RPC_REPLY && data[0] != ELBUS_RPC_ERROR_REPLY))
    return FALSE;

  if (len < 5 || (data[0] == ELBUS_RPC_ERROR_REPLY && len < 7))
    {
      if (data[0] == ELBUS_RPC_REPLY)
        g_message (_("RPC reply from %s is too short (%lu bytes), dropped"), sender,
                   (gulong) len);
      else
        g_message (_("RPC error from %s is too short (%lu bytes), dropped"), sender,
                   (gulong) len);
      return TRUE;
    }

  call_id = _elbus_read_u32 (data + 1);
  call = g_hash_table_lookup (hub->calls, GUINT_TO_POINTER (call_id));
  if (call == NULL)
    return TRUE;                /* answered already, timed out or cancelled */

  if (data[0] == ELBUS_RPC_REPLY)
    {
      g_autoptr(GBytes) result = g_bytes_new_from_bytes (payload, 5, len - 5);

      complete_call (call->peer, call_id, result, NULL);
    }
  else
    complete_call (call->peer, call_id, NULL, error_from_reply (data + 5, len - 5));

  return TRUE;
}

/* The client's other peers too, newest first, referenced (a handler may
 * drop one); NULL when there is one peer, as there nearly always is. */
static GPtrArray *
rpc_hub_ref_peers (RpcHub *hub)
{
  GPtrArray *peers;

  if (hub->peers->len == 1)
    return NULL;
  peers = g_ptr_array_new_full (hub->peers->len, g_object_unref);
  for (guint i = hub->peers->len; i > 0; i--)
    g_ptr_array_add (peers, g_object_ref (g_ptr_array_index (hub->peers, i - 1)));
  return peers;
}

/* The @i-th of @peers from rpc_hub_ref_peers(), @self when that is NULL. */
static inline gpointer
peer_at (ElbusRpcPeer *self,
         GPtrArray    *peers,
         guint         i)
{
  return peers != NULL ? g_ptr_array_index (peers, i) : self;
}

/* Every peer of a client sees the "message" signal; the newest one
 * dispatches for all: notifications to each peer, a call to the peers
 * newest first until one handles it. */
static void
message_cb (ElbusClient *client,
            ElbusFrame  *frame,
            gpointer     user_data)
{
  ElbusRpcPeer *self = user_data;
  GBytes *payload = elbus_frame_get_payload (frame);
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);
  const char *sender = elbus_frame_get_sender (frame);
  g_autoptr(ElbusRpcPeer) held = NULL;
  g_autoptr(GPtrArray) peers = NULL;
  guint n_peers;

  if (g_ptr_array_index (self->hub->peers, self->hub->peers->len - 1) != self)
    return;
  held = g_object_ref (self);
  peers = rpc_hub_ref_peers (self->hub);
  n_peers = peers != NULL ? peers->len : 1;

  if (len == 0)
    {
      g_message (_("RPC: empty message from %s, dropped"), sender);
      return;
    }

  switch (data[0])
    {
    case ELBUS_RPC_NOTIFICATION:
      {
        g_autoptr(GBytes) body = g_bytes_new_from_bytes (payload, 1, len - 1);

        for (guint i = 0; i < n_peers; i++)
          g_signal_emit (peer_at (self, peers, i), signals[SIGNAL_NOTIFICATION], 0, sender,
                         body);
      }
      break;

    case ELBUS_RPC_REQUEST:
      {
        const guint8 *method_end;
        g_autoptr(ElbusRpcInvocation) invocation = NULL;
        g_autoptr(GBytes) params = NULL;
        g_autofree char *method = NULL;
        gboolean handled = FALSE;
        guint32 call_id;

        if (len < 6 || (method_end = memchr (data + 5, 0, len - 5)) == NULL)
          {
            g_message (_("RPC request from %s is malformed (no method), dropped"), sender);
            return;
          }

        call_id = _elbus_read_u32 (data + 1);
        method = g_strndup ((const char *) data + 5, method_end - (data + 5));
        params = g_bytes_new_from_bytes (payload, method_end + 1 - data,
                                         len - (method_end + 1 - data));
        invocation = _elbus_rpc_invocation_new (client, sender, method, params, call_id,
                                                elbus_frame_is_realtime (frame));

        if (!g_utf8_validate (method, -1, NULL))
          {
            elbus_rpc_invocation_return_error (invocation, ELBUS_RPC_ERROR_BUS - ELBUS_ERROR_DATA,
                                               "the method name is not valid UTF-8");
            return;
          }

        for (guint i = 0; i < n_peers && !handled; i++)
          {
            ElbusRpcPeer *peer = peer_at (self, peers, i);

            /* params decode within the limits of the peer that offers the call */
            _elbus_rpc_invocation_set_limits (invocation, &peer->limits);
            g_signal_emit (peer, signals[SIGNAL_HANDLE_CALL], g_quark_try_string (method),
                           invocation, &handled);
          }
        if (!handled)
          {
            g_autofree char *text = g_strdup_printf ("method “%s” not found", method);

            elbus_rpc_invocation_return_error (invocation, ELBUS_RPC_ERROR_METHOD_NOT_FOUND, text);
          }
      }
      break;

    case ELBUS_RPC_REPLY:
    case ELBUS_RPC_ERROR_REPLY:
      /* handled by message_filter */
      break;

    default:
      g_message (_("RPC: message of unknown type 0x%02x from %s, dropped"), data[0], sender);
      break;
    }
}

static void
disconnected_cb (ElbusClient *client,
                 GError      *error,
                 gpointer     user_data)
{
  ElbusRpcPeer *self = user_data;
  GHashTableIter iter;
  gpointer key, value;
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (guint32));

  g_hash_table_iter_init (&iter, self->hub->calls);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      guint32 id = GPOINTER_TO_UINT (key);

      if (((PendingCall *) value)->peer == self)
        g_array_append_val (ids, id);
    }
  for (guint i = 0; i < ids->len; i++)
    complete_call (self, g_array_index (ids, guint32, i), NULL,
                   g_error_new_literal (ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                                        _("the connection to the broker closed")));
}

/* outgoing */

typedef struct {
  ElbusRpcPeer *peer;      /* (owned) */
  guint32       call_id;
} SentData;

static void
request_sent_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  SentData *sent = user_data;
  GError *error = NULL;

  if (!elbus_client_send_finish (ELBUS_CLIENT (source), result, &error))
    {
      complete_call (sent->peer, sent->call_id, NULL, bus_error_to_rpc (error));
      g_error_free (error);
    }

  g_object_unref (sent->peer);
  g_free (sent);
}

static gboolean
call_timeout_cb (gpointer user_data)
{
  PendingCall *call = user_data;

  g_clear_pointer (&call->timeout_source, g_source_unref);
  complete_call (call->peer, call->call_id, NULL,
                 g_error_new (ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                              _("no answer from “%s” in time"), call->target));
  return G_SOURCE_REMOVE;
}

static gboolean
call_cancelled_cb (GCancellable *cancellable,
                   gpointer      user_data)
{
  PendingCall *call = user_data;

  g_clear_pointer (&call->cancel_source, g_source_unref);
  complete_call (call->peer, call->call_id, NULL,
                 g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

static PendingCall *
add_call (ElbusRpcPeer *self,
          const char   *target)
{
  PendingCall *call = g_new0 (PendingCall, 1);

  call->peer = self;
  call->call_id = next_call_id (self->hub);
  call->target = g_strdup (target);
  g_hash_table_insert (self->hub->calls, GUINT_TO_POINTER (call->call_id), call);

  return call;
}

static double
effective_timeout (ElbusRpcPeer *self,
                   double        timeout)
{
  return timeout > 0 ? timeout : self->call_timeout;
}

/* GObject */

static void
elbus_rpc_peer_dispose (GObject *object)
{
  ElbusRpcPeer *self = ELBUS_RPC_PEER (object);

  /* the hub stays: a call made after dispose still gets its answer */
  if (self->hub != NULL && g_ptr_array_remove (self->hub->peers, self))
    {
      if (self->hub->peers->len == 0)
        _elbus_client_clear_message_filter (self->client, self->hub);
      g_clear_signal_handler (&self->message_id, self->client);
      g_clear_signal_handler (&self->disconnected_id, self->client);
      /* nothing may wait on a peer that is gone */
      disconnected_cb (self->client, NULL, self);
    }

  G_OBJECT_CLASS (elbus_rpc_peer_parent_class)->dispose (object);
}

static void
elbus_rpc_peer_finalize (GObject *object)
{
  ElbusRpcPeer *self = ELBUS_RPC_PEER (object);

  g_clear_object (&self->client);
  g_main_context_unref (self->context);

  G_OBJECT_CLASS (elbus_rpc_peer_parent_class)->finalize (object);
}

static void
elbus_rpc_peer_constructed (GObject *object)
{
  ElbusRpcPeer *self = ELBUS_RPC_PEER (object);

  G_OBJECT_CLASS (elbus_rpc_peer_parent_class)->constructed (object);

  g_assert (self->client != NULL);
  self->hub = rpc_hub_get (self->client);
  if (self->hub->peers->len == 0)
    _elbus_client_set_message_filter (self->client, message_filter, self->hub);
  g_ptr_array_add (self->hub->peers, self);
  self->message_id = g_signal_connect (self->client, "message", G_CALLBACK (message_cb), self);
  self->disconnected_id = g_signal_connect (self->client, "disconnected",
                                            G_CALLBACK (disconnected_cb), self);
  if (self->call_timeout <= 0)
    self->call_timeout = elbus_client_get_timeout (self->client);
}

static void
elbus_rpc_peer_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  ElbusRpcPeer *self = ELBUS_RPC_PEER (object);

  switch (prop_id)
    {
    case PROP_CLIENT:
      g_value_set_object (value, self->client);
      break;
    case PROP_CALL_TIMEOUT:
      g_value_set_double (value, self->call_timeout);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_rpc_peer_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  ElbusRpcPeer *self = ELBUS_RPC_PEER (object);

  switch (prop_id)
    {
    case PROP_CLIENT:
      self->client = g_value_dup_object (value);
      break;
    case PROP_CALL_TIMEOUT:
      if (g_value_get_double (value) > 0)
        elbus_rpc_peer_set_call_timeout (self, g_value_get_double (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_rpc_peer_class_init (ElbusRpcPeerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = elbus_rpc_peer_constructed;
  object_class->dispose = elbus_rpc_peer_dispose;
  object_class->finalize = elbus_rpc_peer_finalize;
  object_class->get_property = elbus_rpc_peer_get_property;
  object_class->set_property = elbus_rpc_peer_set_property;

  /**
   * ElbusRpcPeer:client:
   *
   * The client the RPC layer runs over.
   *
   * Since: 1.0
   */
  properties[PROP_CLIENT] =
    g_param_spec_object ("client", NULL, NULL, ELBUS_TYPE_CLIENT,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * ElbusRpcPeer:call-timeout:
   *
   * Seconds a call waits for its answer when the call itself gives no
   * timeout; by default the client's [property@Elbus.Client:timeout].
   *
   * Since: 1.0
   */
  properties[PROP_CALL_TIMEOUT] =
    g_param_spec_double ("call-timeout", NULL, NULL, 0, 86400.0, 0,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS |
                         G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * ElbusRpcPeer::handle-call:
   * @self: the peer
   * @invocation: the call
   *
   * Emitted for each incoming call; the detail is the method name, so
   * `handle-call::get` sees only calls of `get`. A handler that takes the
   * call returns %TRUE and answers it, now or later; if none does, the
   * caller gets %ELBUS_RPC_ERROR_METHOD_NOT_FOUND.
   *
   * Returns: %TRUE when the call is taken
   *
   * Since: 1.0
   */
  signals[SIGNAL_HANDLE_CALL] =
    g_signal_new ("handle-call", G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0,
                  g_signal_accumulator_true_handled, NULL, NULL,
                  G_TYPE_BOOLEAN, 1, ELBUS_TYPE_RPC_INVOCATION);

  /**
   * ElbusRpcPeer::notification:
   * @self: the peer
   * @sender: the full name of the notifying client
   * @payload: the notification's payload
   *
   * Emitted for each incoming notification.
   *
   * Since: 1.0
   */
  signals[SIGNAL_NOTIFICATION] =
    g_signal_new ("notification", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_BYTES);
}

static void
elbus_rpc_peer_init (ElbusRpcPeer *self)
{
  self->context = g_main_context_ref_thread_default ();
  elbus_rpc_peer_set_decode_limits (self, 0, 0, 0);
}

/**
 * elbus_rpc_peer_new:
 * @client: a client; the peer keeps a reference
 *
 * Runs the RPC layer over @client. A client may have several peers, say
 * a library's and an application's: each gets the replies to its own
 * calls (call ids are unique per client); a notification is emitted on
 * every peer; an incoming call is offered to the peers newest first, and
 * only when none handles it is it answered
 * %ELBUS_RPC_ERROR_METHOD_NOT_FOUND.
 *
 * Returns: (transfer full): a new peer
 *
 * Since: 1.0
 */
ElbusRpcPeer *
elbus_rpc_peer_new (ElbusClient *client)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (client), NULL);

  return g_object_new (ELBUS_TYPE_RPC_PEER, "client", client, NULL);
}

/**
 * elbus_rpc_peer_get_client:
 * @self: a peer
 *
 * Gets [property@Elbus.RpcPeer:client].
 *
 * Returns: (transfer none): the client
 *
 * Since: 1.0
 */
ElbusClient *
elbus_rpc_peer_get_client (ElbusRpcPeer *self)
{
  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), NULL);

  return self->client;
}

/**
 * elbus_rpc_peer_get_call_timeout:
 * @self: a peer
 *
 * Gets [property@Elbus.RpcPeer:call-timeout].
 *
 * Returns: seconds
 *
 * Since: 1.0
 */
double
elbus_rpc_peer_get_call_timeout (ElbusRpcPeer *self)
{
  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), 0);

  return self->call_timeout;
}

/**
 * elbus_rpc_peer_set_call_timeout:
 * @self: a peer
 * @timeout: seconds, more than 0
 *
 * Sets [property@Elbus.RpcPeer:call-timeout].
 *
 * Since: 1.0
 */
void
elbus_rpc_peer_set_call_timeout (ElbusRpcPeer *self,
                                 double        timeout)
{
  g_return_if_fail (ELBUS_IS_RPC_PEER (self));
  g_return_if_fail (timeout > 0);

  if (self->call_timeout == timeout)
    return;

  self->call_timeout = timeout;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CALL_TIMEOUT]);
}

/**
 * elbus_rpc_peer_set_decode_limits:
 * @self: a peer
 * @max_depth: how deeply arrays and maps may nest; 0 for
 *   %ELBUS_MSGPACK_MAX_DEPTH, which is also the most
 * @max_values: how many MessagePack values may be decoded at once; 0 for
 *   %ELBUS_MSGPACK_DEFAULT_MAX_VALUES
 * @max_size: how many bytes of MessagePack may be decoded at once; 0 for
 *   %ELBUS_MSGPACK_DEFAULT_MAX_SIZE
 *
 * Sets the limits (see [func@Elbus.msgpack_decode_full]) within which
 * this peer decodes MessagePack from other clients: the replies of
 * [method@Elbus.RpcPeer.call_variant_async] and
 * [method@Elbus.RpcPeer.call_variant_sync], and the params of the calls it
 * offers to its [signal@Elbus.RpcPeer::handle-call] handlers when they
 * ask for [method@Elbus.RpcInvocation.get_params_variant]. The defaults
 * fit any sane call and keep a hostile one from costing more than a few
 * times its size; a peer that expects nothing big may set lower ones.
 * Raw bytes ([method@Elbus.RpcPeer.call_async],
 * [method@Elbus.RpcInvocation.get_params]) are never decoded.
 *
 * A reply beyond the limits fails the call with %ELBUS_RPC_ERROR_PARSE;
 * params beyond them make
 * [method@Elbus.RpcInvocation.get_params_variant] fail with
 * %ELBUS_RPC_ERROR_INVALID_PARAMS, which
 * [method@Elbus.RpcInvocation.return_gerror] passes on to the caller.
 *
 * Since: 1.0
 */
void
elbus_rpc_peer_set_decode_limits (ElbusRpcPeer *self,
                                  guint         max_depth,
                                  gsize         max_values,
                                  gsize         max_size)
{
  g_return_if_fail (ELBUS_IS_RPC_PEER (self));

  self->limits.max_depth = max_depth > 0 ? MIN (max_depth, ELBUS_MSGPACK_MAX_DEPTH)
                                         : ELBUS_MSGPACK_MAX_DEPTH;
  self->limits.max_values = max_values > 0 ? max_values : ELBUS_MSGPACK_DEFAULT_MAX_VALUES;
  self->limits.max_size = max_size > 0 ? max_size : ELBUS_MSGPACK_DEFAULT_MAX_SIZE;
}

/**
 * elbus_rpc_peer_get_decode_limits:
 * @self: a peer
 * @max_depth: (out) (optional): the nesting limit
 * @max_values: (out) (optional): the limit of values
 * @max_size: (out) (optional): the limit of bytes
 *
 * Gets the limits set with [method@Elbus.RpcPeer.set_decode_limits], with
 * the defaults in place of 0.
 *
 * Since: 1.0
 */
void
elbus_rpc_peer_get_decode_limits (ElbusRpcPeer *self,
                                  guint        *max_depth,
                                  gsize        *max_values,
                                  gsize        *max_size)
{
  g_return_if_fail (ELBUS_IS_RPC_PEER (self));

  if (max_depth != NULL)
    *max_depth = self->limits.max_depth;
  if (max_values != NULL)
    *max_values = self->limits.max_values;
  if (max_size != NULL)
    *max_size = self->limits.max_size;
}

/**
 * elbus_rpc_peer_call_async:
 * @self: a peer
 * @target: the client to call
 * @method: the method name
 * @params: (nullable): the params (usually MessagePack)
 * @qos: delivery guarantee of the request; with an acknowledged QoS a
 *   target that is not registered fails the call at once (-32113)
 * @timeout: seconds to wait for the answer; 0 or less for
 *   [property@Elbus.RpcPeer:call-timeout]
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called with the answer
 * @user_data: data for @callback
 *
 * Calls @method of @target. Finish with [method@Elbus.RpcPeer.call_finish].
 *
 * Since: 1.0
 */
void
elbus_rpc_peer_call_async (ElbusRpcPeer        *self,
                           const char          *target,
                           const char          *method,
                           GBytes              *params,
                           ElbusQoS             qos,
                           double               timeout,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr(GBytes) request = NULL;
  PendingCall *call;
  SentData *sent;

  g_return_if_fail (ELBUS_IS_RPC_PEER (self));
  g_return_if_fail (target != NULL);
  g_return_if_fail (method != NULL);

  call = add_call (self, target);
  call->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (call->task, elbus_rpc_peer_call_async);

  if (g_cancellable_is_cancelled (cancellable))
    {
      complete_call (self, call->call_id, NULL,
                     g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                          _("Operation was cancelled")));
      return;
    }

  call->timeout_source = g_timeout_source_new ((guint) (effective_timeout (self, timeout) * 1000));
  g_source_set_static_name (call->timeout_source, "[elbus] RPC call timeout");
  g_source_set_callback (call->timeout_source, call_timeout_cb, call, NULL);
  g_source_attach (call->timeout_source, self->context);
  if (cancellable != NULL)
    {
      call->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (call->cancel_source, G_SOURCE_FUNC (call_cancelled_cb), call, NULL);
      g_source_attach (call->cancel_source, self->context);
    }

  request = build_request (call->call_id, method, params);
  sent = g_new0 (SentData, 1);
  sent->peer = g_object_ref (self);
  sent->call_id = call->call_id;
  elbus_client_send_async (self->client, target, request, qos, NULL, request_sent_cb, sent);
}

/**
 * elbus_rpc_peer_call_finish:
 * @self: a peer
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.RpcPeer.call_async].
 *
 * Returns: (transfer full): the reply's bytes, or %NULL with @error set
 *
 * Since: 1.0
 */
GBytes *
elbus_rpc_peer_call_finish (ElbusRpcPeer  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == elbus_rpc_peer_call_async,
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * elbus_rpc_peer_call_sync:
 * @self: a peer
 * @target: the client to call
 * @method: the method name
 * @params: (nullable): the params
 * @qos: delivery guarantee of the request
 * @timeout: seconds to wait for the answer; 0 or less for the default
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Calls @method of @target and waits for the answer, driving the
 * connection itself: it works with no main loop running. See
 * [method@Elbus.RpcPeer.call_async].
 *
 * Returns: (transfer full): the reply's bytes, or %NULL with @error set
 *
 * Since: 1.0
 */
GBytes *
elbus_rpc_peer_call_sync (ElbusRpcPeer  *self,
                          const char    *target,
                          const char    *method,
                          GBytes        *params,
                          ElbusQoS       qos,
                          double         timeout,
                          GCancellable  *cancellable,
                          GError       **error)
{
  g_autoptr(GBytes) request = NULL;
  g_autoptr(GError) send_error = NULL;
  GBytes *result = NULL;
  GError *call_error = NULL;
  gboolean done = FALSE;
  PendingCall *call;
  guint32 call_id;

  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), NULL);
  g_return_val_if_fail (target != NULL, NULL);
  g_return_val_if_fail (method != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  call = add_call (self, target);
  call->sync_done = &done;
  call->sync_result = &result;
  call->sync_error = &call_error;
  call_id = call->call_id;

  request = build_request (call_id, method, params);
  if (!elbus_client_send_sync (self->client, target, request, qos, cancellable, &send_error))
    complete_call (self, call_id, NULL, bus_error_to_rpc (send_error));
  else if (!done &&
           !_elbus_client_pump_until (self->client, &done, effective_timeout (self, timeout),
                                      cancellable, &call_error))
    {
      /* timed out, cancelled or closed while waiting */
      PendingCall *left = NULL;

      if (g_hash_table_steal_extended (self->hub->calls, GUINT_TO_POINTER (call_id), NULL,
                                       (gpointer *) &left))
        pending_call_free (left);
      if (g_error_matches (call_error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT))
        {
          g_clear_error (&call_error);
          g_set_error (&call_error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                       _("no answer from “%s” in time"), target);
        }
    }

  if (call_error != NULL)
    {
      g_propagate_error (error, call_error);
      g_clear_pointer (&result, g_bytes_unref);
      return NULL;
    }

  return result;
}

static gboolean
send_sync_mapped (ElbusRpcPeer  *self,
                  const char    *target,
                  GBytes        *payload,
                  ElbusQoS       qos,
                  GCancellable  *cancellable,
                  GError       **error)
{
  g_autoptr(GError) send_error = NULL;

  if (elbus_client_send_sync (self->client, target, payload, qos, cancellable, &send_error))
    return TRUE;

  g_propagate_error (error, bus_error_to_rpc (send_error));
  return FALSE;
}

/**
 * elbus_rpc_peer_call0_sync:
 * @self: a peer
 * @target: the client to call
 * @method: the method name
 * @params: (nullable): the params
 * @qos: delivery guarantee of the request
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Calls @method of @target wanting no answer (call id 0): returns once the
 * request is sent (and acknowledged, for an acknowledged @qos).
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_rpc_peer_call0_sync (ElbusRpcPeer  *self,
                           const char    *target,
                           const char    *method,
                           GBytes        *params,
                           ElbusQoS       qos,
                           GCancellable  *cancellable,
                           GError       **error)
{
  g_autoptr(GBytes) request = NULL;

  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), FALSE);
  g_return_val_if_fail (target != NULL, FALSE);
  g_return_val_if_fail (method != NULL, FALSE);

  request = build_request (0, method, params);
  return send_sync_mapped (self, target, request, qos, cancellable, error);
}

/**
 * elbus_rpc_peer_notify_sync:
 * @self: a peer
 * @target: the client to notify
 * @payload: (nullable): the notification's payload
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * Sends an RPC notification to @target.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_rpc_peer_notify_sync (ElbusRpcPeer  *self,
                            const char    *target,
                            GBytes        *payload,
                            ElbusQoS       qos,
                            GCancellable  *cancellable,
                            GError       **error)
{
  g_autoptr(GBytes) message = NULL;

  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), FALSE);
  g_return_val_if_fail (target != NULL, FALSE);

  message = build_notification (payload);

  return send_sync_mapped (self, target, message, qos, cancellable, error);
}

/**
 * elbus_rpc_params_from_pairs:
 * @pairs: (array zero-terminated=1): `KEY=VALUE` strings
 * @error: return location for an error
 *
 * Builds RPC params from `KEY=VALUE` pairs by the rule of the original
 * elbus tools (its CLI and its broker's FIFO channel): `true` and `false`
 * are booleans, decimal integers within 64 bits are integers, other
 * decimal numbers (`2.5`, `1e3`, an integer too large, `nan`, `inf`) are
 * floats, and anything else, `0x10` or ` 5` say, is a string. Encode the
 * result with [func@Elbus.msgpack_encode_variant].
 *
 * Returns: (transfer full): an `a{sv}`, or %NULL when a pair has no `=`,
 *   an empty key, or is not UTF-8
 *
 * Since: 1.0
 */
GVariant *
elbus_rpc_params_from_pairs (const char * const  *pairs,
                             GError             **error)
{
  GVariantBuilder builder;

  g_return_val_if_fail (pairs != NULL, NULL);

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  for (guint i = 0; pairs[i] != NULL; i++)
    {
      const char *eq = strchr (pairs[i], '=');
      g_autofree char *key = NULL;
      const char *value;
      gboolean numeric;
      char *end;
      gint64 n;
      double d;

      /* a command line's bytes: a{sv} keys and strings are UTF-8 */
      if (!g_utf8_validate (pairs[i], -1, NULL))
        {
          g_autofree char *shown = g_utf8_make_valid (pairs[i], -1);

          g_variant_builder_clear (&builder);
          g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, "“%s” is not UTF-8", shown);
          return NULL;
        }
      if (eq == NULL || eq == pairs[i])
        {
          g_variant_builder_clear (&builder);
          g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("“%s” is not KEY=VALUE"), pairs[i]);
          return NULL;
        }
      key = g_strndup (pairs[i], eq - pairs[i]);
      value = eq + 1;

      /* numbers as Rust's str::parse reads them: no blanks, no hex */
      numeric = *value != '\0' && !g_ascii_isspace (*value) && strpbrk (value, "xX(") == NULL;

      if (g_str_equal (value, "true") || g_str_equal (value, "false"))
        g_variant_builder_add (&builder, "{sv}", key, g_variant_new_boolean (value[0] == 't'));
      else if (numeric && (errno = 0, n = g_ascii_strtoll (value, &end, 10),
                           *end == '\0' && errno != ERANGE))
        g_variant_builder_add (&builder, "{sv}", key, g_variant_new_int64 (n));
      else if (numeric && (d = g_ascii_strtod (value, &end), *end == '\0'))
        g_variant_builder_add (&builder, "{sv}", key, g_variant_new_double (d));
      else
        g_variant_builder_add (&builder, "{sv}", key, g_variant_new_string (value));
    }

  return g_variant_ref_sink (g_variant_builder_end (&builder));
}

/* GVariant forms */

static GBytes *
encode_params (GVariant  *params,
               GError   **error)
{
  g_autoptr(GVariant) value = NULL;

  if (params == NULL)
    return g_bytes_new_static ("", 0);
  value = g_variant_ref_sink (params);
  return elbus_msgpack_encode_variant (value, error);
}

static GVariant *
decode_reply (ElbusRpcPeer  *self,
              GBytes        *reply,
              GError       **error)
{
  g_autoptr(GError) local_error = NULL;
  GVariant *value;
  gsize len;
  const guint8 *data = g_bytes_get_data (reply, &len);

  /* an empty result is nothing: an empty maybe */
  if (len == 0)
    return g_variant_ref_sink (g_variant_new_maybe (G_VARIANT_TYPE_VARIANT, NULL));

  value = _elbus_msgpack_decode_limited (data, len, &self->limits, NULL, &local_error);
  if (value == NULL)
    g_set_error (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_PARSE,
                 _("the reply is not MessagePack: %s"), local_error->message);
  return value;
}

static void
call_variant_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  g_autoptr(GBytes) reply = elbus_rpc_peer_call_finish (ELBUS_RPC_PEER (source), result, &error);
  GVariant *value;

  if (reply == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  value = decode_reply (ELBUS_RPC_PEER (source), reply, &error);
  if (value == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, value, (GDestroyNotify) g_variant_unref);
}

/**
 * elbus_rpc_peer_call_variant_async:
 * @self: a peer
 * @target: the client to call
 * @method: the method name
 * @params: (nullable): the params, encoded as MessagePack (an `a{sv}` is a
 *   map); a floating reference is taken
 * @qos: delivery guarantee of the request
 * @timeout: seconds to wait for the answer; 0 or less for the default
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called with the answer
 * @user_data: data for @callback
 *
 * [method@Elbus.RpcPeer.call_async] with MessagePack params and result as
 * GVariant. Finish with [method@Elbus.RpcPeer.call_variant_finish].
 *
 * Since: 1.0
 */
void
elbus_rpc_peer_call_variant_async (ElbusRpcPeer        *self,
                                   const char          *target,
                                   const char          *method,
                                   GVariant            *params,
                                   ElbusQoS             qos,
                                   double               timeout,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  GTask *task;
  g_autoptr(GBytes) bytes = NULL;
  GError *error = NULL;

  g_return_if_fail (ELBUS_IS_RPC_PEER (self));
  g_return_if_fail (target != NULL);
  g_return_if_fail (method != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, elbus_rpc_peer_call_variant_async);

  bytes = encode_params (params, &error);
  if (bytes == NULL)
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  elbus_rpc_peer_call_async (self, target, method, bytes, qos, timeout, cancellable,
                             call_variant_cb, task);
}

/**
 * elbus_rpc_peer_call_variant_finish:
 * @self: a peer
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.RpcPeer.call_variant_async]. An empty reply is
 * an empty maybe (MessagePack nil).
 *
 * Returns: (transfer full): the decoded reply, or %NULL with @error set
 *
 * Since: 1.0
 */
GVariant *
elbus_rpc_peer_call_variant_finish (ElbusRpcPeer  *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) ==
                        elbus_rpc_peer_call_variant_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * elbus_rpc_peer_call_variant_sync:
 * @self: a peer
 * @target: the client to call
 * @method: the method name
 * @params: (nullable): the params; a floating reference is taken
 * @qos: delivery guarantee of the request
 * @timeout: seconds to wait for the answer; 0 or less for the default
 * @cancellable: (nullable): a cancellable
 * @error: return location for an error
 *
 * [method@Elbus.RpcPeer.call_sync] with MessagePack params and result as
 * GVariant.
 *
 * Returns: (transfer full): the decoded reply, or %NULL with @error set
 *
 * Since: 1.0
 */
GVariant *
elbus_rpc_peer_call_variant_sync (ElbusRpcPeer  *self,
                                  const char    *target,
                                  const char    *method,
                                  GVariant      *params,
                                  ElbusQoS       qos,
                                  double         timeout,
                                  GCancellable  *cancellable,
                                  GError       **error)
{
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) reply = NULL;

  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), NULL);

  bytes = encode_params (params, error);
  if (bytes == NULL)
    return NULL;
  reply = elbus_rpc_peer_call_sync (self, target, method, bytes, qos, timeout, cancellable, error);
  if (reply == NULL)
    return NULL;
  return decode_reply (self, reply, error);
}

/* call0 and notify, async: one-way sends whose bus errors map to RPC codes */

static void
one_way_sent_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;

  if (!elbus_client_send_finish (ELBUS_CLIENT (source), result, &error))
    g_task_return_error (task, bus_error_to_rpc (error));
  else
    g_task_return_boolean (task, TRUE);
}

static GBytes *
build_notification (GBytes *payload)
{
  gsize len = payload != NULL ? g_bytes_get_size (payload) : 0;
  guint8 *buf = g_malloc (1 + len);

  buf[0] = ELBUS_RPC_NOTIFICATION;
  if (len > 0)
    memcpy (buf + 1, g_bytes_get_data (payload, NULL), len);
  return g_bytes_new_take (buf, 1 + len);
}

/**
 * elbus_rpc_peer_call0_async:
 * @self: a peer
 * @target: the client to call
 * @method: the method name
 * @params: (nullable): the params
 * @qos: delivery guarantee of the request
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called when sent (and acknowledged)
 * @user_data: data for @callback
 *
 * Calls @method of @target wanting no answer (call id 0). Finish with
 * [method@Elbus.RpcPeer.call0_finish].
 *
 * Since: 1.0
 */
void
elbus_rpc_peer_call0_async (ElbusRpcPeer        *self,
                            const char          *target,
                            const char          *method,
                            GBytes              *params,
                            ElbusQoS             qos,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr(GBytes) request = NULL;
  GTask *task;

  g_return_if_fail (ELBUS_IS_RPC_PEER (self));
  g_return_if_fail (target != NULL);
  g_return_if_fail (method != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, elbus_rpc_peer_call0_async);
  request = build_request (0, method, params);
  elbus_client_send_async (self->client, target, request, qos, cancellable, one_way_sent_cb, task);
}

/**
 * elbus_rpc_peer_call0_finish:
 * @self: a peer
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.RpcPeer.call0_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_rpc_peer_call0_finish (ElbusRpcPeer  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * elbus_rpc_peer_notify_async:
 * @self: a peer
 * @target: the client to notify
 * @payload: (nullable): the notification's payload
 * @qos: delivery guarantee
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called when sent (and acknowledged)
 * @user_data: data for @callback
 *
 * Sends an RPC notification. Finish with
 * [method@Elbus.RpcPeer.notify_finish].
 *
 * Since: 1.0
 */
void
elbus_rpc_peer_notify_async (ElbusRpcPeer        *self,
                             const char          *target,
                             GBytes              *payload,
                             ElbusQoS             qos,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr(GBytes) message = NULL;
  GTask *task;

  g_return_if_fail (ELBUS_IS_RPC_PEER (self));
  g_return_if_fail (target != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, elbus_rpc_peer_notify_async);
  message = build_notification (payload);
  elbus_client_send_async (self->client, target, message, qos, cancellable, one_way_sent_cb, task);
}

/**
 * elbus_rpc_peer_notify_finish:
 * @self: a peer
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Elbus.RpcPeer.notify_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
elbus_rpc_peer_notify_finish (ElbusRpcPeer  *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_RPC_PEER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* SPDX-License-Identifier: MIT */
/* The client: connecting and the handshake, operations and their acks,
 * signals and the _sync calls; its frames go through a transport
 * (elbus-transport-private.h), a socket or the broker in this process. */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <gio/gunixsocketaddress.h>

#include "elbus-i18n-private.h"
#include "elbus-client.h"
#include "elbus-client-private.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"
#include "elbus-io-private.h"
#include "elbus-msgpack.h"
#include "elbus-transport-private.h"

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

typedef struct {
  ElbusClient  *client;        /* (unowned) */
  guint32       op_id;
  GTask        *task;          /* (owned) (nullable): an async operation */
  gboolean     *sync_done;     /* (nullable): a sync operation's flag */
  GError      **sync_error;
  char         *target;        /* (owned) (nullable): for error messages */
  guint8        op;            /* ELBUS_OP_*: for error messages */
  gint64        deadline;      /* monotonic µs */
  GSource      *cancel_source; /* (owned) (nullable) */
} PendingOp;

typedef enum {
  INIT_NONE,
  INIT_RUNNING,
  INIT_DONE,
} InitState;

struct _ElbusClient {
  GObject          parent_instance;

  GMainContext    *context;        /* (owned) */
  char            *name;           /* (owned): a GRefString */
  char            *address;        /* (owned) */
  double           timeout;
  guint            queue_size;
  guint            buf_size;

  /* the other end: a socket, or the broker in this process */
  ElbusTransport  *transport;      /* (owned) (nullable): set once connected */
  GSocketConnection *connection;   /* (owned) (nullable): while connecting */
  GSource         *tick_source;    /* (owned) (nullable): pings, timeouts */
  gboolean         connected;

  guint32          next_op_id;
  guint            n_secondaries;  /* suffixes handed out by register_secondary */
  GHashTable      *pending;        /* (owned): op_id -> PendingOp */

  /* frames that arrived while a _sync call drove the connection, emitted
   * from the context in order */
  GQueue           deferred;       /* (element-type ElbusFrame) (owned) */
  GSource         *deferred_source; /* (owned) (nullable) */
  guint            pumping;
  /* a disconnection that happened while frames were deferred is told
   * after them, as it happened after them */
  gboolean         disconnect_deferred;
  GError          *disconnect_error;  /* (owned) (nullable) */
  /* why the broker said it disconnects this client (.broker/warn) */
  char            *drop_reason;    /* (owned) (nullable) */

  /* the RPC layer's look at one-to-one messages before anyone else's */
  ElbusClientMessageFilter message_filter; /* (nullable) */
  gpointer         message_filter_data;    /* (unowned) */

  /* GInitable/GAsyncInitable: connecting once, its outcome kept */
  InitState        init_state;
  GError          *init_error;     /* (owned) (nullable) */
};

enum {
  PROP_0,
  PROP_NAME,
  PROP_ADDRESS,
  PROP_CONNECTED,
  PROP_TIMEOUT,
  PROP_QUEUE_SIZE,
  PROP_BUF_SIZE,
  N_PROPS
};

enum {
  SIGNAL_MESSAGE,
  SIGNAL_BROADCAST,
  SIGNAL_PUBLICATION,
  SIGNAL_DISCONNECTED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static void elbus_client_initable_iface_init       (GInitableIface      *iface);
static void elbus_client_async_initable_iface_init (GAsyncInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (ElbusClient, elbus_client, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      elbus_client_initable_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE,
                                                      elbus_client_async_initable_iface_init))

static void client_disconnect (ElbusClient *self,
                               GError      *error);
static gboolean pump_until (ElbusClient   *self,
                            gboolean      *done,
                            GCancellable  *cancellable,
                            GError       **error);

/* errors */

static GError *
result_to_error (guint8      result,
                 guint8      op,
                 const char *target)
{
  switch (result)
    {
    case ELBUS_ERROR_NOT_REGISTERED:
      return g_error_new (ELBUS_ERROR, result, _("client “%s” is not registered"),
                          target != NULL ? target : "");
    case ELBUS_ERROR_NOT_DELIVERED:
      return g_error_new (ELBUS_ERROR, result, _("not delivered to “%s”: its queue is full"),
                          target != NULL ? target : "");
    case ELBUS_ERROR_ACCESS:
      if (op == ELBUS_OP_SUBSCRIBE)
        return g_error_new (ELBUS_ERROR, result, _("the broker refuses (some of) the masks of "
                              "this subscription: its policy or its subscription limit"));
      if (target == NULL || op == ELBUS_OP_NOP)
        return g_error_new (ELBUS_ERROR, result, _("access denied by the broker's policy"));
      if (op == ELBUS_OP_PUBLISH)
        return g_error_new (ELBUS_ERROR, result,
                            _("the broker's policy refuses publishing on “%s”"), target);
      if (op == ELBUS_OP_BROADCAST)
        return g_error_new (ELBUS_ERROR, result,
                            _("the broker's policy refuses a broadcast to “%s”"), target);
      return g_error_new (ELBUS_ERROR, result,
                          _("the broker's policy refuses a message to “%s”"), target);
    case ELBUS_ERROR_DATA:
    case ELBUS_ERROR_IO:
    case ELBUS_ERROR_OTHER:
    case ELBUS_ERROR_NOT_SUPPORTED:
    case ELBUS_ERROR_BUSY:
    case ELBUS_ERROR_TIMEOUT:
      return g_error_new (ELBUS_ERROR, result, _("the broker answered: %s"),
                          elbus_error_code_to_string (result));
    default:
      return g_error_new (ELBUS_ERROR, ELBUS_ERROR_OTHER,
                          _("the broker answered with unknown result 0x%02x"), result);
    }
}

GError *
_elbus_client_registration_error (guint8      result,
                                  const char *name)
{
  switch (result)
    {
    case ELBUS_ERROR_BUSY:
      return g_error_new (ELBUS_ERROR, result, _("the name “%s” is already taken"), name);
    case ELBUS_ERROR_DATA:
      return g_error_new (ELBUS_ERROR, result, _("the broker refused the name “%s” as invalid"),
                          name);
    case ELBUS_ERROR_NOT_REGISTERED:
      return g_error_new (ELBUS_ERROR, result,
                          _("the primary client of secondary “%s” is not connected"), name);
    case ELBUS_ERROR_ACCESS:
      return g_error_new (ELBUS_ERROR, result, _("the broker's policy refuses the name “%s”"),
                          name);
    case ELBUS_ERROR_NOT_SUPPORTED:
      return g_error_new (ELBUS_ERROR, result,
                          _("the broker does not speak elbus protocol version %d"),
                          ELBUS_WIRE_VERSION);
    default:
      return result_to_error (result, ELBUS_OP_NOP, name);
    }
}

/* pending operations */

static void
pending_op_free (PendingOp *op)
{
  if (op->cancel_source != NULL)
    {
      g_source_destroy (op->cancel_source);
      g_source_unref (op->cancel_source);
    }
  g_clear_object (&op->task);
  g_free (op->target);
  g_free (op);
}

/* Completes @op with @error (NULL: success) and frees it. */
static void
pending_op_complete (PendingOp *op,
                     GError    *error)
{
  if (op->task != NULL)
    {
      if (error != NULL)
        g_task_return_error (op->task, error);
      else
        g_task_return_boolean (op->task, TRUE);
    }
  else
    {
      if (error != NULL)
        g_propagate_error (op->sync_error, error);
      *op->sync_done = TRUE;
    }
  pending_op_free (op);
}

static void
fail_pending_op (ElbusClient *self,
                 guint32      op_id,
                 GError      *error)
{
  PendingOp *op = NULL;

  if (g_hash_table_steal_extended (self->pending, GUINT_TO_POINTER (op_id), NULL,
                                   (gpointer *) &op))
    pending_op_complete (op, error);
  else
    g_error_free (error);
}

static gboolean
op_cancelled_cb (GCancellable *cancellable,
                 gpointer      user_data)
{
  PendingOp *op = user_data;

  fail_pending_op (op->client, op->op_id,
                   g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                        _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

/* frames in */

static void
emit_frame (ElbusClient *self,
            ElbusFrame  *frame)
{
  switch (elbus_frame_get_kind (frame))
    {
    case ELBUS_FRAME_KIND_MESSAGE:
      g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, frame);
      break;
    case ELBUS_FRAME_KIND_BROADCAST:
      g_signal_emit (self, signals[SIGNAL_BROADCAST], 0, frame);
      break;
    case ELBUS_FRAME_KIND_PUBLISH:
    default:
      g_signal_emit (self, signals[SIGNAL_PUBLICATION], 0, frame);
      break;
    }
}

static gboolean
emit_deferred_cb (gpointer user_data)
{
  ElbusClient *self = g_object_ref (user_data);
  ElbusFrame *frame;

  g_clear_pointer (&self->deferred_source, g_source_unref);
  while (self->pumping == 0 && (frame = g_queue_pop_head (&self->deferred)) != NULL)
    {
      emit_frame (self, frame);
      elbus_frame_unref (frame);
    }
  if (self->pumping == 0 && self->deferred.length == 0 && self->disconnect_deferred)
    {
      g_autoptr(GError) error = g_steal_pointer (&self->disconnect_error);

      self->disconnect_deferred = FALSE;
      g_signal_emit (self, signals[SIGNAL_DISCONNECTED], 0, error);
    }
  g_object_unref (self);

  return G_SOURCE_REMOVE;
}

static void
schedule_deferred (ElbusClient *self)
{
  if (self->deferred_source != NULL)
    return;

  self->deferred_source = g_idle_source_new ();
  g_source_set_static_name (self->deferred_source, "[elbus] client deferred frames");
  g_source_set_priority (self->deferred_source, G_PRIORITY_DEFAULT);
  g_source_set_callback (self->deferred_source, emit_deferred_cb, self, NULL);
  g_source_attach (self->deferred_source, self->context);
}

/* A publication from .broker on .broker/warn saying that the broker is
 * disconnecting this client keeps its reason for the disconnection
 * (docs/protocol.md 10). The publication is delivered as any other. */
static void
note_broker_warn (ElbusClient  *self,
                  const char   *sender,
                  const char   *topic,
                  const guint8 *payload,
                  gsize         payload_len)
{
  g_autoptr(GVariant) map = NULL;
  g_autoptr(GVariantDict) dict = NULL;
  const char *what = NULL, *reason = NULL;

  if (!g_str_equal (sender, ".broker") || !g_str_equal (topic, ".broker/warn"))
    return;
  map = elbus_msgpack_decode_data (payload, payload_len, NULL);
  if (map == NULL || !g_variant_is_of_type (map, G_VARIANT_TYPE_VARDICT))
    return;
  dict = g_variant_dict_new (map);
  if (g_variant_dict_lookup (dict, "s", "&s", &what) && g_str_equal (what, "disconnect") &&
      g_variant_dict_lookup (dict, "d", "&s", &reason))
    {
      g_free (self->drop_reason);
      self->drop_reason = g_strdup (reason);
    }
}

static void
deliver_frame (ElbusClient  *self,
               guint8        kind,
               const char   *sender,
               const char   *topic,
               GBytes       *payload,
               gboolean      realtime)
{
  ElbusFrame *frame;

  if (G_UNLIKELY (kind == ELBUS_KIND_PUBLISH && topic[0] == '.'))
    note_broker_warn (self, sender, topic, g_bytes_get_data (payload, NULL),
                      g_bytes_get_size (payload));

  /* RPC replies complete calls at once, even while a _sync call drives the
   * connection; they are not messages for anyone else */
  if (kind == ELBUS_KIND_MESSAGE && self->message_filter != NULL &&
      self->message_filter (self, sender, payload, realtime, self->message_filter_data))
    return;

  frame = elbus_frame_new (kind, sender, topic, payload, realtime);
  if (self->pumping > 0 || self->deferred.length > 0)
    {
      g_queue_push_tail (&self->deferred, frame);
      schedule_deferred (self);
      return;
    }

  emit_frame (self, frame);
  elbus_frame_unref (frame);
}

static void
handle_ack (ElbusClient *self,
            guint32      op_id,
            guint8       result)
{
  PendingOp *op = NULL;

  /* an op that was cancelled or timed out may still be acked: ignore */
  if (!g_hash_table_steal_extended (self->pending, GUINT_TO_POINTER (op_id), NULL,
                                    (gpointer *) &op))
    return;

  pending_op_complete (op, result == ELBUS_RESULT_OK ? NULL
                                                     : result_to_error (result, op->op, op->target));
}

/* The other end closed: the end of a connection that .broker announced
 * it would end says why (a reset included). */
static void
transport_closed (ElbusClient *self,
                  GError      *error)
{
  if (self->drop_reason != NULL && error != NULL &&
      (g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED) ||
       g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_IO)))
    {
      g_error_free (error);
      error = g_error_new (ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("disconnected by the broker: %s"), self->drop_reason);
    }
  client_disconnect (self, error);
}

/* what the transport calls (elbus-transport-private.h) */

static const ElbusTransportEvents transport_events = {
  .frame = deliver_frame,
  .ack = handle_ack,
  .closed = transport_closed,
};

/* frames out */

/* A transport bound to one thread (an in-process client: the thread that
 * registered it) refuses every other thread loudly, before it touches
 * anything. */
static gboolean
wrong_thread (ElbusClient  *self,
              GError      **error)
{
  if (G_LIKELY (self->transport == NULL || self->transport->thread == NULL ||
                self->transport->thread == g_thread_self ()))
    return FALSE;

  g_critical ("in-process client %s used from a thread other than the one that "
              "registered it; refused", self->name);
  g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_OTHER,
               _("the in-process client %s may only be used from the thread that registered it"),
               self->name);
  return TRUE;
}

/* Queues one frame. Real-time frames, and any frame once buf-size bytes
 * wait, are written at once; the rest before the loop next sleeps. */
static gboolean
client_enqueue (ElbusClient    *self,
                ElbusOutEntry  *entry,
                gboolean        realtime,
                GError        **error)
{
  guint queued;

  if (wrong_thread (self, error))
    {
      _elbus_out_entry_clear (entry);
      return FALSE;
    }
  if (!self->connected)
    {
      _elbus_out_entry_clear (entry);
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the client is not connected"));
      return FALSE;
    }
  queued = self->transport->funcs->queued (self->transport);
  if (queued >= self->queue_size)
    {
      _elbus_out_entry_clear (entry);
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_BUSY,
                   _("%u frames are already waiting to be written to the broker"), queued);
      return FALSE;
    }

  return self->transport->funcs->send (self->transport, entry, realtime, error);
}

static guint32
next_op_id (ElbusClient *self)
{
  /* op ids count from 1 and skip ids still waiting for an ack */
  do
    {
      if (++self->next_op_id == 0)
        self->next_op_id = 1;
    }
  while (g_hash_table_contains (self->pending, GUINT_TO_POINTER (self->next_op_id)));

  return self->next_op_id;
}

/* Builds and queues a frame: header, then @target and 0x00 (if any), then
 * @body_tail from @bytes. Returns the op id, or 0 on error. */
static guint32
queue_frame (ElbusClient  *self,
             guint8        op,
             ElbusQoS      qos,
             const char   *target,
             GBytes       *bytes,
             GError      **error)
{
  ElbusOutEntry entry = { 0 };
  gsize target_len = target != NULL ? strlen (target) : 0;
  gsize payload_len = bytes != NULL ? g_bytes_get_size (bytes) : 0;
  gsize body_len = (target != NULL ? target_len + 1 : 0) + payload_len;
  guint32 op_id = next_op_id (self);

  if (body_len > G_MAXUINT32)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("a frame of %lu bytes is too large"),
                   (unsigned long) body_len);
      return 0;
    }

  _elbus_codec_encode_client_header (entry.hdr, op_id, op, qos, body_len);
  if (target != NULL)
    {
      if (ELBUS_CLIENT_HEADER_LEN + target_len + 1 <= ELBUS_OUT_INLINE)
        _elbus_out_entry_set_name (&entry, ELBUS_CLIENT_HEADER_LEN, target, target_len);
      else
        {
          char *ref = g_ref_string_new_len (target, target_len);

          _elbus_out_entry_set_name (&entry, ELBUS_CLIENT_HEADER_LEN, ref, target_len);
          g_ref_string_release (ref);
        }
    }
  else
    entry.hdr_len = ELBUS_CLIENT_HEADER_LEN;

  if (payload_len > 0)
    {
      entry.bytes = g_bytes_ref (bytes);
      entry.payload = g_bytes_get_data (bytes, NULL);
      entry.payload_len = payload_len;
    }

  if (!client_enqueue (self, &entry, ELBUS_QOS_IS_REALTIME (qos), error))
    return 0;

  return op_id;
}

/* Joins masks into a subscribe/unsubscribe body. */
static GBytes *
join_masks (const char * const *masks)
{
  GByteArray *body = g_byte_array_new ();

  for (guint i = 0; masks[i] != NULL; i++)
    {
      if (i > 0)
        g_byte_array_append (body, (const guint8 *) "", 1);
      g_byte_array_append (body, (const guint8 *) masks[i], strlen (masks[i]));
    }

  return g_byte_array_free_to_bytes (body);
}

typedef enum {
  NAME_TOPIC,
  NAME_TARGET,
  NAME_MASK,
} NameKind;

static gboolean
check_name (NameKind     kind,
            const char  *value,
            GError     **error)
{
  if (!g_utf8_validate (value, -1, NULL))
    {
      /* full sentences, each translated as a whole */
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_DATA,
                           kind == NAME_TOPIC ? _("the topic is not valid UTF-8") :
                           kind == NAME_TARGET ? _("the target is not valid UTF-8") :
                           _("the topic mask is not valid UTF-8"));
      return FALSE;
    }
  return TRUE;
}

/* Starts an operation: queues its frame and, for an acknowledged QoS,
 * registers it as pending. */
static PendingOp *
start_op (ElbusClient   *self,
          guint8         op,
          const char    *target,
          GBytes        *body,
          ElbusQoS       qos,
          GError       **error)
{
  PendingOp *pending;
  guint32 op_id;

  if (target != NULL && !check_name (op == ELBUS_OP_PUBLISH ? NAME_TOPIC : NAME_TARGET,
                                     target, error))
    return NULL;

  op_id = queue_frame (self, op, qos, target, body, error);
  if (op_id == 0)
    return NULL;

  if (!ELBUS_QOS_NEEDS_ACK (qos))
    return NULL;

  pending = g_new0 (PendingOp, 1);
  pending->client = self;
  pending->op_id = op_id;
  pending->target = g_strdup (target);
  pending->op = op;
  pending->deadline = g_get_monotonic_time () + (gint64) (self->timeout * G_USEC_PER_SEC);
  g_hash_table_insert (self->pending, GUINT_TO_POINTER (op_id), pending);

  return pending;
}

static void
op_async (ElbusClient         *self,
          gpointer             source_tag,
          guint8               op,
          const char          *target,
          GBytes              *body,
          ElbusQoS             qos,
          GCancellable        *cancellable,
          GAsyncReadyCallback  callback,
          gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;
  PendingOp *pending;

  /* fire and forget: nobody waits, so nothing to allocate a task for */
  if (callback == NULL && !ELBUS_QOS_NEEDS_ACK (qos))
    {
      if (!g_cancellable_is_cancelled (cancellable))
        start_op (self, op, target, body, qos, &error);
      /* nobody to tell: say it in the log rather than lose it quietly */
      if (error != NULL)
        {
          g_message (_("client %s: frame dropped: %s"), self->name, error->message);
          g_error_free (error);
        }
      return;
    }

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);

  if (g_task_return_error_if_cancelled (task))
    return;

  pending = start_op (self, op, target, body, qos, &error);
  if (error != NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  if (pending == NULL)
    {
      /* no ack wanted: done once queued */
      g_task_return_boolean (task, TRUE);
      return;
    }

  pending->task = g_steal_pointer (&task);
  if (cancellable != NULL)
    {
      pending->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (pending->cancel_source, G_SOURCE_FUNC (op_cancelled_cb),
                             pending, NULL);
      g_source_attach (pending->cancel_source, self->context);
    }
}

static gboolean
op_finish (ElbusClient   *self,
           GAsyncResult  *result,
           gpointer       source_tag,
           GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
_elbus_client_set_message_filter (ElbusClient              *self,
                                  ElbusClientMessageFilter  filter,
                                  gpointer                  user_data)
{
  self->message_filter = filter;
  self->message_filter_data = user_data;
}

void
_elbus_client_clear_message_filter (ElbusClient *self,
                                    gpointer     user_data)
{
  if (self->message_filter_data != user_data)
    return;
  self->message_filter = NULL;
  self->message_filter_data = NULL;
}

gboolean
_elbus_client_pump_until (ElbusClient   *self,
                          gboolean      *done,
                          double         timeout,
                          GCancellable  *cancellable,
                          GError       **error)
{
  double saved = self->timeout;
  gboolean ok;

  /* pump_until's deadline is the client's timeout */
  self->timeout = timeout;
  ok = pump_until (self, done, cancellable, error);
  self->timeout = saved;

  return ok;
}

/* Drives the connection from the calling thread until *done, without
 * iterating the client's context: the _sync variants' engine. */
static gboolean
pump_until (ElbusClient   *self,
            gboolean      *done,
            GCancellable  *cancellable,
            GError       **error)
{
  gboolean ok;

  if (wrong_thread (self, error))
    return FALSE;
  if (self->transport == NULL)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the connection to the broker is closed"));
      return FALSE;
    }

  g_object_ref (self);
  self->pumping++;

  ok = self->transport->funcs->pump (self->transport, done, self->timeout, cancellable, error);

  self->pumping--;
  if (self->pumping == 0 && self->deferred.length > 0)
    schedule_deferred (self);
  g_object_unref (self);

  return ok;
}

static gboolean
op_sync (ElbusClient   *self,
         guint8         op,
         const char    *target,
         GBytes        *body,
         ElbusQoS       qos,
         GCancellable  *cancellable,
         GError       **error)
{
  gboolean done = FALSE;
  GError *op_error = NULL;
  PendingOp *pending;
  guint32 op_id;
  gboolean ok;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  pending = start_op (self, op, target, body, qos, &op_error);
  if (op_error != NULL)
    {
      g_propagate_error (error, op_error);
      return FALSE;
    }
  if (pending == NULL)
    {
      /* no ack: wait until it is written, as a script expects */
      return elbus_client_flush_sync (self, cancellable, error);
    }

  pending->sync_done = &done;
  pending->sync_error = &op_error;
  op_id = pending->op_id;

  ok = pump_until (self, &done, cancellable, error);
  if (!ok)
    {
      /* the op may still be pending (timeout, cancellation) */
      PendingOp *left = NULL;

      if (g_hash_table_steal_extended (self->pending, GUINT_TO_POINTER (op_id), NULL,
                                       (gpointer *) &left))
        pending_op_free (left);
      g_clear_error (&op_error);
      return FALSE;
    }

  if (op_error != NULL)
    {
      g_propagate_error (error, op_error);
      return FALSE;
    }

  return TRUE;
}

/* keep-alive and timeouts */

static gboolean
tick_cb (gpointer user_data)
{
  ElbusClient *self = g_object_ref (user_data);
  gint64 now = g_get_monotonic_time ();
  gint64 limit = (gint64) (self->timeout * G_USEC_PER_SEC);
  g_autoptr(GArray) expired = g_array_new (FALSE, FALSE, sizeof (guint32));
  GHashTableIter iter;
  PendingOp *op;
  GError *dead = self->transport->funcs->tick (self->transport, now, limit);

  if (dead != NULL)
    {
      client_disconnect (self, dead);
      g_object_unref (self);
      return G_SOURCE_REMOVE;
    }

  g_hash_table_iter_init (&iter, self->pending);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &op))
    if (op->task != NULL && now >= op->deadline)
      g_array_append_val (expired, op->op_id);
  for (guint i = 0; i < expired->len; i++)
    fail_pending_op (self, g_array_index (expired, guint32, i),
                     g_error_new (ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                                  _("the broker did not acknowledge within %.3g s"),
                                  self->timeout));

  g_object_unref (self);
  return G_SOURCE_CONTINUE;
}

static void
restart_tick (ElbusClient *self)
{
  if (self->tick_source != NULL)
    {
      g_source_destroy (self->tick_source);
      g_clear_pointer (&self->tick_source, g_source_unref);
    }
  if (!self->connected)
    return;

  self->tick_source = g_timeout_source_new ((guint) CLAMP (self->timeout * 1000 / 4, 1, G_MAXINT));
  g_source_set_static_name (self->tick_source, "[elbus] client keep-alive");
  g_source_set_callback (self->tick_source, tick_cb, self, NULL);
  g_source_attach (self->tick_source, self->context);
}

/* connection */

static void
client_disconnect (ElbusClient *self,
                   GError      *error)
{
  /* takes @error, freed when done */
  g_autoptr(GError) owned_error G_GNUC_UNUSED = error;
  g_autoptr(GPtrArray) ops = NULL;
  GHashTableIter iter;
  PendingOp *op;

  if (!self->connected)
    return;

  g_object_ref (self);
  self->connected = FALSE;

  if (error != NULL)
    g_debug ("client %s: %s", self->name, error->message);

  if (self->tick_source != NULL)
    {
      g_source_destroy (self->tick_source);
      g_clear_pointer (&self->tick_source, g_source_unref);
    }
  self->transport->funcs->close (self->transport);

  /* nothing waits forever: every pending operation fails */
  ops = g_ptr_array_new ();
  g_hash_table_iter_init (&iter, self->pending);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &op))
    {
      g_ptr_array_add (ops, op);
      g_hash_table_iter_steal (&iter);
    }
  for (guint i = 0; i < ops->len; i++)
    pending_op_complete (g_ptr_array_index (ops, i),
                         g_error_new_literal (ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                                              _("the connection to the broker closed")));

  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CONNECTED]);
  if (self->pumping > 0 || self->deferred.length > 0)
    {
      self->disconnect_deferred = TRUE;
      self->disconnect_error = error != NULL ? g_error_copy (error) : NULL;
      schedule_deferred (self);
    }
  else
    g_signal_emit (self, signals[SIGNAL_DISCONNECTED], 0, error);
  g_object_unref (self);
}

static void
client_start_transport (ElbusClient    *self,
                        ElbusTransport *transport)
{
  _elbus_client_attach_transport (self, transport);
  restart_tick (self);
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
  transport->events = &transport_events;
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

static void
elbus_client_initable_iface_init (GInitableIface *iface)
{
  iface->init = elbus_client_initable_init;
}

static void
elbus_client_init_async (GAsyncInitable      *initable,
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
  g_task_set_source_tag (task, elbus_client_init_async);
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

static void
elbus_client_async_initable_iface_init (GAsyncInitableIface *iface)
{
  iface->init_async = elbus_client_init_async;
  iface->init_finish = elbus_client_init_finish;
}

/* GObject */

static void
elbus_client_dispose (GObject *object)
{
  ElbusClient *self = ELBUS_CLIENT (object);

  /* the broker still points at the client: keep it (leaked) rather than
   * let the broker use freed memory */
  if (wrong_thread (self, NULL))
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
  properties[PROP_NAME] =
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
  properties[PROP_ADDRESS] =
    g_param_spec_string ("address", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * ElbusClient:connected:
   *
   * Whether the client is registered with its broker.
   *
   * Since: 1.0
   */
  properties[PROP_CONNECTED] =
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
  properties[PROP_TIMEOUT] =
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
  properties[PROP_QUEUE_SIZE] =
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
  properties[PROP_BUF_SIZE] =
    g_param_spec_uint ("buf-size", NULL, NULL, 1, G_MAXINT32, ELBUS_CLIENT_DEFAULT_BUF_SIZE,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * ElbusClient::message:
   * @self: the client
   * @frame: the message
   *
   * Emitted for each one-to-one message to this client.
   *
   * Since: 1.0
   */
  signals[SIGNAL_MESSAGE] =
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
  signals[SIGNAL_BROADCAST] =
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
  signals[SIGNAL_PUBLICATION] =
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
  signals[SIGNAL_DISCONNECTED] =
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
  self->pending = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) pending_op_free);
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
                        elbus_client_init_async, NULL);

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

      if (wrong_thread (self, error))
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
  restart_tick (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TIMEOUT]);
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
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_QUEUE_SIZE]);
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
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUF_SIZE]);
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

  op_async (self, elbus_client_send_async, ELBUS_OP_MESSAGE, target, payload, qos,
            cancellable, callback, user_data);
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
  return op_finish (self, result, elbus_client_send_async, error);
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

  return op_sync (self, ELBUS_OP_MESSAGE, target, payload, qos, cancellable, error);
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

  op_async (self, elbus_client_send_broadcast_async, ELBUS_OP_BROADCAST, mask, payload, qos,
            cancellable, callback, user_data);
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
  return op_finish (self, result, elbus_client_send_broadcast_async, error);
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

  return op_sync (self, ELBUS_OP_BROADCAST, mask, payload, qos, cancellable, error);
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

  op_async (self, elbus_client_publish_async, ELBUS_OP_PUBLISH, topic, payload, qos,
            cancellable, callback, user_data);
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
  return op_finish (self, result, elbus_client_publish_async, error);
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

  return op_sync (self, ELBUS_OP_PUBLISH, topic, payload, qos, cancellable, error);
}

static gboolean
check_masks (const char * const  *masks,
             GError             **error)
{
  for (guint i = 0; masks[i] != NULL; i++)
    if (!check_name (NAME_MASK, masks[i], error))
      return FALSE;
  return TRUE;
}

static void
masks_async (ElbusClient         *self,
             gpointer             source_tag,
             guint8               op,
             const char * const  *masks,
             ElbusQoS             qos,
             GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             user_data)
{
  g_autoptr(GBytes) body = NULL;
  GError *error = NULL;

  if (!check_masks (masks, &error))
    {
      g_task_report_error (self, callback, user_data, source_tag, error);
      return;
    }

  body = join_masks (masks);
  op_async (self, source_tag, op, NULL, body, qos, cancellable, callback, user_data);
}

static gboolean
masks_sync (ElbusClient         *self,
            guint8               op,
            const char * const  *masks,
            ElbusQoS             qos,
            GCancellable        *cancellable,
            GError             **error)
{
  g_autoptr(GBytes) body = NULL;

  if (!check_masks (masks, error))
    return FALSE;

  body = join_masks (masks);
  return op_sync (self, op, NULL, body, qos, cancellable, error);
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

  masks_async (self, elbus_client_subscribe_async, ELBUS_OP_SUBSCRIBE, masks, qos,
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
  return op_finish (self, result, elbus_client_subscribe_async, error);
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

  return masks_sync (self, ELBUS_OP_SUBSCRIBE, masks, qos, cancellable, error);
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

  masks_async (self, elbus_client_unsubscribe_async, ELBUS_OP_UNSUBSCRIBE, masks, qos,
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
  return op_finish (self, result, elbus_client_unsubscribe_async, error);
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

  return masks_sync (self, ELBUS_OP_UNSUBSCRIBE, masks, qos, cancellable, error);
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

  if (!self->connected)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the client is not connected"));
      return FALSE;
    }

  if (wrong_thread (self, error))
    return FALSE;

  return self->transport->funcs->flush_sync (self->transport, self->timeout, cancellable, error);
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

  if (!self->connected || wrong_thread (self, NULL))
    return;

  self->transport->funcs->flush (self->transport);
  client_disconnect (self, NULL);
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

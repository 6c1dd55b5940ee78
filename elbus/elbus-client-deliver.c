/* SPDX-License-Identifier: MIT */
/* What the transport hands back to a client: frames (emitted as signals,
 * or deferred while a _sync call drives the connection), acks completing
 * pending operations, keep-alive and timeouts, and the end of the
 * connection. */
#include "config.h"

#include "elbus-i18n-private.h"
#include "elbus-client-internal.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"
#include "elbus-msgpack.h"

GParamSpec *_elbus_client_properties[N_PROPS];
guint _elbus_client_signals[N_SIGNALS];

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

void
_elbus_client_pending_op_free (PendingOp *op)
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
  _elbus_client_pending_op_free (op);
}

void
_elbus_client_fail_pending_op (ElbusClient *self,
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


/* frames in */

static void
emit_frame (ElbusClient *self,
            ElbusFrame  *frame)
{
  switch (elbus_frame_get_kind (frame))
    {
    case ELBUS_FRAME_KIND_MESSAGE:
      g_signal_emit (self, _elbus_client_signals[SIGNAL_MESSAGE], 0, frame);
      break;
    case ELBUS_FRAME_KIND_BROADCAST:
      g_signal_emit (self, _elbus_client_signals[SIGNAL_BROADCAST], 0, frame);
      break;
    case ELBUS_FRAME_KIND_PUBLISH:
    default:
      g_signal_emit (self, _elbus_client_signals[SIGNAL_PUBLICATION], 0, frame);
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
      g_signal_emit (self, _elbus_client_signals[SIGNAL_DISCONNECTED], 0, error);
    }
  g_object_unref (self);

  return G_SOURCE_REMOVE;
}

void
_elbus_client_schedule_deferred (ElbusClient *self)
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
      _elbus_client_schedule_deferred (self);
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
  _elbus_client_disconnect (self, error);
}

/* what the transport calls (elbus-transport-private.h) */

const ElbusTransportEvents _elbus_client_transport_events = {
  .frame = deliver_frame,
  .ack = handle_ack,
  .closed = transport_closed,
};


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
      _elbus_client_disconnect (self, dead);
      g_object_unref (self);
      return G_SOURCE_REMOVE;
    }

  g_hash_table_iter_init (&iter, self->pending);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &op))
    if (op->task != NULL && now >= op->deadline)
      g_array_append_val (expired, op->op_id);
  for (guint i = 0; i < expired->len; i++)
    _elbus_client_fail_pending_op (self, g_array_index (expired, guint32, i),
                     g_error_new (ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                                  _("the broker did not acknowledge within %.3g s"),
                                  self->timeout));

  g_object_unref (self);
  return G_SOURCE_CONTINUE;
}

void
_elbus_client_restart_tick (ElbusClient *self)
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

void
_elbus_client_disconnect (ElbusClient *self,
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

  g_object_notify_by_pspec (G_OBJECT (self), _elbus_client_properties[PROP_CONNECTED]);
  if (self->pumping > 0 || self->deferred.length > 0)
    {
      self->disconnect_deferred = TRUE;
      self->disconnect_error = error != NULL ? g_error_copy (error) : NULL;
      _elbus_client_schedule_deferred (self);
    }
  else
    g_signal_emit (self, _elbus_client_signals[SIGNAL_DISCONNECTED], 0, error);
  g_object_unref (self);
}

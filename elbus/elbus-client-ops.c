/* SPDX-License-Identifier: MIT */
/* A client's operations out: op ids, frames built and queued through the
 * transport, pending operations and their cancellation, and the driver of
 * the _sync calls. */
#include "config.h"

#include <string.h>

#include "elbus-i18n-private.h"
#include "elbus-client-internal.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"

static gboolean pump_until (ElbusClient   *self,
                            gboolean      *done,
                            GCancellable  *cancellable,
                            GError       **error);

/* pending operations */

static gboolean
op_cancelled_cb (GCancellable *cancellable,
                 gpointer      user_data)
{
  PendingOp *op = user_data;

  _elbus_client_fail_pending_op (op->client, op->op_id,
                   g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                        _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

/* frames out */

/* A transport bound to one thread (an in-process client: the thread that
 * registered it) refuses every other thread loudly, before it touches
 * anything. */
gboolean
_elbus_client_wrong_thread (ElbusClient  *self,
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

  if (_elbus_client_wrong_thread (self, error))
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
 * @head (if any) and @bytes, not joined. Returns the op id, or 0 on
 * error. */
static guint32
queue_frame (ElbusClient  *self,
             guint8        op,
             ElbusQoS      qos,
             const char   *target,
             GBytes       *head,
             GBytes       *bytes,
             GError      **error)
{
  ElbusOutEntry entry = { 0 };
  gsize target_len = target != NULL ? strlen (target) : 0;
  gsize payload_len = bytes != NULL ? g_bytes_get_size (bytes) : 0;
  gsize head_len = head != NULL ? g_bytes_get_size (head) : 0;
  gsize body_len = (target != NULL ? target_len + 1 : 0) + head_len + payload_len;
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

  if (head_len > 0 && payload_len > 0)
    {
      /* the head as the prefix of a payload that stays in its GBytes */
      entry.bytes = g_bytes_ref (head);
      entry.chunk = _elbus_chunk_new_for_bytes (bytes);
      entry.payload = g_bytes_get_data (bytes, NULL);
      entry.payload_len = payload_len;
    }
  else if (head_len > 0 || payload_len > 0)
    {
      if (head_len > 0)
        bytes = head;
      entry.bytes = g_bytes_ref (bytes);
      entry.payload = g_bytes_get_data (bytes, NULL);
      entry.payload_len = head_len + payload_len;
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
          GBytes        *head,
          GBytes        *body,
          ElbusQoS       qos,
          GError       **error)
{
  PendingOp *pending;
  guint32 op_id;

  if (target != NULL && !check_name (op == ELBUS_OP_PUBLISH ? NAME_TOPIC : NAME_TARGET,
                                     target, error))
    return NULL;

  op_id = queue_frame (self, op, qos, target, head, body, error);
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

void
_elbus_client_op_async (ElbusClient         *self,
                        gpointer             source_tag,
                        guint8               op,
                        const char          *target,
                        GBytes              *head,
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
        start_op (self, op, target, head, body, qos, &error);
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

  pending = start_op (self, op, target, head, body, qos, &error);
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

gboolean
_elbus_client_op_finish (ElbusClient   *self,
           GAsyncResult  *result,
           gpointer       source_tag,
           GError       **error)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
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

  if (_elbus_client_wrong_thread (self, error))
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
    _elbus_client_schedule_deferred (self);
  g_object_unref (self);

  return ok;
}

gboolean
_elbus_client_op_sync (ElbusClient   *self,
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

  pending = start_op (self, op, target, NULL, body, qos, &op_error);
  if (op_error != NULL)
    {
      g_propagate_error (error, op_error);
      return FALSE;
    }
  if (pending == NULL)
    {
      /* no ack: wait until it is written, as a script expects */
      return _elbus_client_flush_sync (self, cancellable, error);
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
        _elbus_client_pending_op_free (left);
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

static gboolean
check_masks (const char * const  *masks,
             GError             **error)
{
  for (guint i = 0; masks[i] != NULL; i++)
    if (!check_name (NAME_MASK, masks[i], error))
      return FALSE;
  return TRUE;
}

void
_elbus_client_masks_async (ElbusClient         *self,
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
  _elbus_client_op_async (self, source_tag, op, NULL, NULL, body, qos, cancellable, callback, user_data);
}

gboolean
_elbus_client_masks_sync (ElbusClient         *self,
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
  return _elbus_client_op_sync (self, op, NULL, body, qos, cancellable, error);
}


gboolean
_elbus_client_flush_sync (ElbusClient   *self,
                          GCancellable  *cancellable,
                          GError       **error)
{
  if (!self->connected)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the client is not connected"));
      return FALSE;
    }

  if (_elbus_client_wrong_thread (self, error))
    return FALSE;

  return self->transport->funcs->flush_sync (self->transport, self->timeout, cancellable, error);
}

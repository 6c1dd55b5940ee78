/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>

#include "elbus-msgpack.h"
#include "elbus-client-private.h"
#include "elbus-msgpack-private.h"
#include "elbus-rpc-private.h"

/**
 * ElbusRpcInvocation:
 *
 * One incoming RPC call, handed to [signal@Elbus.RpcPeer::handle-call].
 *
 * It is answered exactly once, with [method@Elbus.RpcInvocation.return_value],
 * [method@Elbus.RpcInvocation.return_error] or
 * [method@Elbus.RpcInvocation.return_gerror]; a handler may keep a
 * reference and answer later. An invocation dropped without an answer
 * answers the caller with %ELBUS_RPC_ERROR_INTERNAL, so that no caller
 * waits for nothing. A call made with call id 0 (`call0`) wants no answer:
 * answering it does nothing.
 *
 * Since: 1.0
 */

struct _ElbusRpcInvocation {
  GObject       parent_instance;

  ElbusClient  *client;          /* (owned): answers go out through it */
  char         *sender;          /* (owned) */
  char         *primary_sender;  /* (owned) (nullable): NULL for a primary */
  char         *method;          /* (owned) */
  GBytes       *params;          /* (owned) */
  guint32       call_id;
  gboolean      realtime;
  gboolean      answered;
  ElbusMsgpackLimits limits;     /* for get_params_variant() */
};

/**
 * elbus_rpc_error_quark:
 *
 * The error domain %ELBUS_RPC_ERROR, whose codes are [error@Elbus.RpcError].
 *
 * Returns: the `elbus-rpc-error-quark` quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (elbus-rpc-error-quark, elbus_rpc_error)

G_DEFINE_FINAL_TYPE (ElbusRpcInvocation, elbus_rpc_invocation, G_TYPE_OBJECT)

static void
reply_sent_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!elbus_client_send_finish (ELBUS_CLIENT (source), result, &error))
    g_debug ("RPC reply not delivered: %s", error->message);
}

/* Sends TYPE + call id + @body to the caller. */
static void
send_answer (ElbusRpcInvocation *self,
             guint8              type,
             const guint8       *prefix,
             gsize               prefix_len,
             GBytes             *body)
{
  g_autoptr(GByteArray) payload = NULL;
  g_autoptr(GBytes) bytes = NULL;
  guint8 head[5];

  g_return_if_fail (!self->answered);
  self->answered = TRUE;

  if (self->call_id == 0 || !elbus_client_is_connected (self->client))
    return;

  head[0] = type;
  _elbus_write_u32 (head + 1, self->call_id);
  if (body != NULL && g_bytes_get_size (body) >= ELBUS_READ_CHUNK_SIZE)
    {
      /* a large result goes as it lies, after the few bytes before it */
      g_autoptr(GByteArray) before = g_byte_array_sized_new (sizeof head + prefix_len);
      g_autoptr(GBytes) head_bytes = NULL;

      g_byte_array_append (before, head, sizeof head);
      if (prefix_len > 0)
        g_byte_array_append (before, prefix, prefix_len);
      head_bytes = g_byte_array_free_to_bytes (g_steal_pointer (&before));
      _elbus_client_send_parts_async (self->client, self->sender, head_bytes, body,
                                      self->realtime ? ELBUS_QOS_REALTIME_PROCESSED
                                                     : ELBUS_QOS_PROCESSED,
                                      NULL, reply_sent_cb, NULL);
      return;
    }
  payload = g_byte_array_sized_new (5 + prefix_len + (body != NULL ? g_bytes_get_size (body) : 0));
  g_byte_array_append (payload, head, sizeof head);
  if (prefix_len > 0)
    g_byte_array_append (payload, prefix, prefix_len);
  if (body != NULL)
    g_byte_array_append (payload, g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  bytes = g_byte_array_free_to_bytes (g_steal_pointer (&payload));

  elbus_client_send_async (self->client, self->sender, bytes,
                           self->realtime ? ELBUS_QOS_REALTIME_PROCESSED : ELBUS_QOS_PROCESSED,
                           NULL, reply_sent_cb, NULL);
}

static void
elbus_rpc_invocation_finalize (GObject *object)
{
  ElbusRpcInvocation *self = ELBUS_RPC_INVOCATION (object);

  /* nobody answered: the caller must not wait for nothing */
  if (!self->answered)
    elbus_rpc_invocation_return_error (self, ELBUS_RPC_ERROR_INTERNAL,
                                       "the call was dropped without an answer");

  g_object_unref (self->client);
  g_free (self->sender);
  g_free (self->primary_sender);
  g_free (self->method);
  g_bytes_unref (self->params);

  G_OBJECT_CLASS (elbus_rpc_invocation_parent_class)->finalize (object);
}

static void
elbus_rpc_invocation_class_init (ElbusRpcInvocationClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = elbus_rpc_invocation_finalize;
}

static void
elbus_rpc_invocation_init (ElbusRpcInvocation *self)
{
}

ElbusRpcInvocation *
_elbus_rpc_invocation_new (ElbusClient *client,
                           const char  *sender,
                           const char  *method,
                           GBytes      *params,
                           guint32      call_id,
                           gboolean     realtime)
{
  ElbusRpcInvocation *self = g_object_new (ELBUS_TYPE_RPC_INVOCATION, NULL);
  gsize primary_len;

  self->client = g_object_ref (client);
  self->sender = g_strdup (sender);
  if (_elbus_codec_split_secondary (sender, strlen (sender), &primary_len))
    self->primary_sender = g_strndup (sender, primary_len);
  self->method = g_strdup (method);
  self->params = g_bytes_ref (params);
  self->call_id = call_id;
  self->realtime = realtime;
  self->limits = (ElbusMsgpackLimits) {
    ELBUS_MSGPACK_MAX_DEPTH, ELBUS_MSGPACK_DEFAULT_MAX_VALUES, ELBUS_MSGPACK_DEFAULT_MAX_SIZE
  };

  return self;
}

void
_elbus_rpc_invocation_set_limits (ElbusRpcInvocation       *self,
                                  const ElbusMsgpackLimits *limits)
{
  self->limits = *limits;
}

/**
 * elbus_rpc_invocation_get_sender:
 * @self: an invocation
 *
 * Gets the full name of the calling client.
 *
 * Returns: (transfer none): the caller
 *
 * Since: 1.0
 */
const char *
elbus_rpc_invocation_get_sender (ElbusRpcInvocation *self)
{
  g_return_val_if_fail (ELBUS_IS_RPC_INVOCATION (self), NULL);

  return self->sender;
}

/**
 * elbus_rpc_invocation_get_primary_sender:
 * @self: an invocation
 *
 * Gets the primary client behind the caller: the part of its name before
 * `%%`.
 *
 * Returns: (transfer none): the primary caller
 *
 * Since: 1.0
 */
const char *
elbus_rpc_invocation_get_primary_sender (ElbusRpcInvocation *self)
{
  g_return_val_if_fail (ELBUS_IS_RPC_INVOCATION (self), NULL);

  return self->primary_sender != NULL ? self->primary_sender : self->sender;
}

/**
 * elbus_rpc_invocation_get_method:
 * @self: an invocation
 *
 * Gets the method called.
 *
 * Returns: (transfer none): the method name
 *
 * Since: 1.0
 */
const char *
elbus_rpc_invocation_get_method (ElbusRpcInvocation *self)
{
  g_return_val_if_fail (ELBUS_IS_RPC_INVOCATION (self), NULL);

  return self->method;
}

/**
 * elbus_rpc_invocation_get_params:
 * @self: an invocation
 *
 * Gets the raw params of the call (usually MessagePack).
 *
 * Returns: (transfer none): the params, possibly empty
 *
 * Since: 1.0
 */
GBytes *
elbus_rpc_invocation_get_params (ElbusRpcInvocation *self)
{
  g_return_val_if_fail (ELBUS_IS_RPC_INVOCATION (self), NULL);

  return self->params;
}

/**
 * elbus_rpc_invocation_get_params_variant:
 * @self: an invocation
 * @error: return location for an error
 *
 * Decodes the params from MessagePack (see [func@Elbus.msgpack_decode])
 * within the limits of the peer that offered the call
 * ([method@Elbus.RpcPeer.set_decode_limits]). Empty params decode to an
 * empty `a{sv}`. On failure, answering with
 * [method@Elbus.RpcInvocation.return_gerror] tells the caller why.
 *
 * Returns: (transfer full): the params, or %NULL with an
 *   %ELBUS_RPC_ERROR_PARSE error when they are not MessagePack, or an
 *   %ELBUS_RPC_ERROR_INVALID_PARAMS error when they pass the limits
 *
 * Since: 1.0
 */
GVariant *
elbus_rpc_invocation_get_params_variant (ElbusRpcInvocation  *self,
                                         GError             **error)
{
  g_autoptr(GError) local_error = NULL;
  GVariant *value;
  gboolean over_limit;
  gsize len;
  const guint8 *data;

  g_return_val_if_fail (ELBUS_IS_RPC_INVOCATION (self), NULL);

  data = g_bytes_get_data (self->params, &len);
  if (len == 0)
    return g_variant_ref_sink (g_variant_new ("a{sv}", NULL));

  value = _elbus_msgpack_decode_limited (data, len, &self->limits, &over_limit, &local_error);
  if (value == NULL)
    g_set_error_literal (error, ELBUS_RPC_ERROR,
                         over_limit ? ELBUS_RPC_ERROR_INVALID_PARAMS : ELBUS_RPC_ERROR_PARSE,
                         local_error->message);

  return value;
}

/**
 * elbus_rpc_invocation_get_call_id:
 * @self: an invocation
 *
 * Gets the caller's id for the call; 0 for a call that wants no answer.
 *
 * Returns: the call id
 *
 * Since: 1.0
 */
guint32
elbus_rpc_invocation_get_call_id (ElbusRpcInvocation *self)
{
  g_return_val_if_fail (ELBUS_IS_RPC_INVOCATION (self), 0);

  return self->call_id;
}

/**
 * elbus_rpc_invocation_is_realtime:
 * @self: an invocation
 *
 * Tells whether the call came real-time; the answer then goes out with
 * %ELBUS_QOS_REALTIME_PROCESSED.
 *
 * Returns: %TRUE for a real-time call
 *
 * Since: 1.0
 */
gboolean
elbus_rpc_invocation_is_realtime (ElbusRpcInvocation *self)
{
  g_return_val_if_fail (ELBUS_IS_RPC_INVOCATION (self), FALSE);

  return self->realtime;
}

/**
 * elbus_rpc_invocation_return_value:
 * @self: an invocation not yet answered
 * @result: (nullable): the result bytes (usually MessagePack)
 *
 * Answers the call with @result.
 *
 * Since: 1.0
 */
void
elbus_rpc_invocation_return_value (ElbusRpcInvocation *self,
                                   GBytes             *result)
{
  g_return_if_fail (ELBUS_IS_RPC_INVOCATION (self));

  send_answer (self, ELBUS_RPC_REPLY, NULL, 0, result);
}

/**
 * elbus_rpc_invocation_return_variant:
 * @self: an invocation not yet answered
 * @result: the result, encoded as MessagePack; a floating reference is
 *   taken
 *
 * Answers the call with @result. A value that cannot be encoded answers
 * %ELBUS_RPC_ERROR_INTERNAL instead.
 *
 * Since: 1.0
 */
void
elbus_rpc_invocation_return_variant (ElbusRpcInvocation *self,
                                     GVariant           *result)
{
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;

  g_return_if_fail (ELBUS_IS_RPC_INVOCATION (self));
  g_return_if_fail (result != NULL);

  value = g_variant_ref_sink (result);
  bytes = elbus_msgpack_encode_variant (value, &error);
  if (bytes == NULL)
    elbus_rpc_invocation_return_error (self, ELBUS_RPC_ERROR_INTERNAL, error->message);
  else
    elbus_rpc_invocation_return_value (self, bytes);
}

/**
 * elbus_rpc_invocation_return_error:
 * @self: an invocation not yet answered
 * @code: an RPC error code, e.g. an [error@Elbus.RpcError]; it must fit in
 *   16 bits, as the wire has it
 * @message: (nullable): the error data, as text
 *
 * Answers the call with an error.
 *
 * Since: 1.0
 */
void
elbus_rpc_invocation_return_error (ElbusRpcInvocation *self,
                                   int                 code,
                                   const char         *message)
{
  g_autoptr(GBytes) data = NULL;
  guint8 code_le[2];

  g_return_if_fail (ELBUS_IS_RPC_INVOCATION (self));
  g_return_if_fail (code >= G_MININT16 && code <= G_MAXINT16);

  code_le[0] = (guint16) code & 0xff;
  code_le[1] = ((guint16) code >> 8) & 0xff;
  if (message != NULL)
    data = g_bytes_new (message, strlen (message));
  send_answer (self, ELBUS_RPC_ERROR_REPLY, code_le, sizeof code_le, data);
}

/**
 * elbus_rpc_invocation_return_gerror:
 * @self: an invocation not yet answered
 * @error: the error
 *
 * Answers the call with @error: an %ELBUS_RPC_ERROR keeps its code; any
 * other error becomes %ELBUS_RPC_ERROR_INTERNAL with its message.
 *
 * Since: 1.0
 */
void
elbus_rpc_invocation_return_gerror (ElbusRpcInvocation *self,
                                    const GError       *error)
{
  g_return_if_fail (ELBUS_IS_RPC_INVOCATION (self));
  g_return_if_fail (error != NULL);

  if (error->domain == ELBUS_RPC_ERROR && error->code >= G_MININT16 && error->code <= G_MAXINT16)
    elbus_rpc_invocation_return_error (self, error->code, error->message);
  else
    elbus_rpc_invocation_return_error (self, ELBUS_RPC_ERROR_INTERNAL, error->message);
}

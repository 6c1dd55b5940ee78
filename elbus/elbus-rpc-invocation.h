/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <gio/gio.h>

#include "elbus-version-macros.h"

G_BEGIN_DECLS

/**
 * ELBUS_RPC_ERROR:
 *
 * The error domain of RPC errors: the code is the RPC error code
 * ([error@Elbus.RpcError] or any other the callee chose) and the message
 * carries the error data.
 *
 * Since: 1.0
 */
#define ELBUS_RPC_ERROR (elbus_rpc_error_quark ())

/**
 * ElbusRpcError:
 * @ELBUS_RPC_ERROR_PARSE: the params could not be parsed (-32700)
 * @ELBUS_RPC_ERROR_INVALID_REQUEST: the request is invalid (-32600)
 * @ELBUS_RPC_ERROR_METHOD_NOT_FOUND: no such method (-32601)
 * @ELBUS_RPC_ERROR_INVALID_PARAMS: the params are invalid (-32602)
 * @ELBUS_RPC_ERROR_INTERNAL: the handler failed (-32603)
 * @ELBUS_RPC_ERROR_BUS: the base of bus errors: a call that the broker
 *   refused with result byte B fails with code -32000 - B, e.g. -32113
 *   when the target is not registered (-32000)
 *
 * Well-known RPC error codes (docs/protocol.md section 8).
 *
 * Since: 1.0
 */
typedef enum {
  ELBUS_RPC_ERROR_PARSE = -32700,
  ELBUS_RPC_ERROR_INVALID_REQUEST = -32600,
  ELBUS_RPC_ERROR_METHOD_NOT_FOUND = -32601,
  ELBUS_RPC_ERROR_INVALID_PARAMS = -32602,
  ELBUS_RPC_ERROR_INTERNAL = -32603,
  ELBUS_RPC_ERROR_BUS = -32000,
} ElbusRpcError;

ELBUS_AVAILABLE_IN_1_0
GQuark elbus_rpc_error_quark (void);

#define ELBUS_TYPE_RPC_INVOCATION (elbus_rpc_invocation_get_type ())

ELBUS_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (ElbusRpcInvocation, elbus_rpc_invocation, ELBUS, RPC_INVOCATION, GObject)

ELBUS_AVAILABLE_IN_1_0
const char *elbus_rpc_invocation_get_sender         (ElbusRpcInvocation *self);
ELBUS_AVAILABLE_IN_1_0
const char *elbus_rpc_invocation_get_primary_sender (ElbusRpcInvocation *self);
ELBUS_AVAILABLE_IN_1_0
const char *elbus_rpc_invocation_get_method         (ElbusRpcInvocation *self);
ELBUS_AVAILABLE_IN_1_0
GBytes     *elbus_rpc_invocation_get_params         (ElbusRpcInvocation *self);
ELBUS_AVAILABLE_IN_1_0
GVariant   *elbus_rpc_invocation_get_params_variant (ElbusRpcInvocation *self,
                                                     GError            **error);
ELBUS_AVAILABLE_IN_1_0
guint32     elbus_rpc_invocation_get_call_id        (ElbusRpcInvocation *self);
ELBUS_AVAILABLE_IN_1_0
gboolean    elbus_rpc_invocation_is_realtime        (ElbusRpcInvocation *self);
ELBUS_AVAILABLE_IN_1_0
void        elbus_rpc_invocation_return_value       (ElbusRpcInvocation *self,
                                                     GBytes             *result);
ELBUS_AVAILABLE_IN_1_0
void        elbus_rpc_invocation_return_variant     (ElbusRpcInvocation *self,
                                                     GVariant           *result);
ELBUS_AVAILABLE_IN_1_0
void        elbus_rpc_invocation_return_error       (ElbusRpcInvocation *self,
                                                     int                 code,
                                                     const char         *message);
ELBUS_AVAILABLE_IN_1_0
void        elbus_rpc_invocation_return_gerror      (ElbusRpcInvocation *self,
                                                     const GError       *error);

G_END_DECLS

/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <gio/gio.h>

#include "elbus-client.h"
#include "elbus-rpc-invocation.h"
#include "elbus-types.h"

G_BEGIN_DECLS

#define ELBUS_TYPE_RPC_PEER (elbus_rpc_peer_get_type ())

ELBUS_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (ElbusRpcPeer, elbus_rpc_peer, ELBUS, RPC_PEER, GObject)

ELBUS_AVAILABLE_IN_1_0
ElbusRpcPeer *elbus_rpc_peer_new           (ElbusClient         *client);
ELBUS_AVAILABLE_IN_1_0
ElbusClient  *elbus_rpc_peer_get_client    (ElbusRpcPeer        *self);
ELBUS_AVAILABLE_IN_1_0
double        elbus_rpc_peer_get_call_timeout (ElbusRpcPeer     *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_rpc_peer_set_call_timeout (ElbusRpcPeer     *self,
                                               double            timeout);

ELBUS_AVAILABLE_IN_1_0
void          elbus_rpc_peer_set_decode_limits (ElbusRpcPeer    *self,
                                                guint            max_depth,
                                                gsize            max_values,
                                                gsize            max_size);
ELBUS_AVAILABLE_IN_1_0
void          elbus_rpc_peer_get_decode_limits (ElbusRpcPeer    *self,
                                                guint           *max_depth,
                                                gsize           *max_values,
                                                gsize           *max_size);

ELBUS_AVAILABLE_IN_1_0
void          elbus_rpc_peer_call_async    (ElbusRpcPeer        *self,
                                            const char          *target,
                                            const char          *method,
                                            GBytes              *params,
                                            ElbusQoS             qos,
                                            double               timeout,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
GBytes       *elbus_rpc_peer_call_finish   (ElbusRpcPeer        *self,
                                            GAsyncResult        *result,
                                            GError             **error);
ELBUS_AVAILABLE_IN_1_0
GBytes       *elbus_rpc_peer_call_sync     (ElbusRpcPeer        *self,
                                            const char          *target,
                                            const char          *method,
                                            GBytes              *params,
                                            ElbusQoS             qos,
                                            double               timeout,
                                            GCancellable        *cancellable,
                                            GError             **error);

ELBUS_AVAILABLE_IN_1_0
void          elbus_rpc_peer_call_variant_async  (ElbusRpcPeer        *self,
                                                  const char          *target,
                                                  const char          *method,
                                                  GVariant            *params,
                                                  ElbusQoS             qos,
                                                  double               timeout,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
GVariant     *elbus_rpc_peer_call_variant_finish (ElbusRpcPeer        *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
ELBUS_AVAILABLE_IN_1_0
GVariant     *elbus_rpc_peer_call_variant_sync   (ElbusRpcPeer        *self,
                                                  const char          *target,
                                                  const char          *method,
                                                  GVariant            *params,
                                                  ElbusQoS             qos,
                                                  double               timeout,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

ELBUS_AVAILABLE_IN_1_0
void          elbus_rpc_peer_call0_async   (ElbusRpcPeer        *self,
                                            const char          *target,
                                            const char          *method,
                                            GBytes              *params,
                                            ElbusQoS             qos,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_rpc_peer_call0_finish  (ElbusRpcPeer        *self,
                                            GAsyncResult        *result,
                                            GError             **error);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_rpc_peer_call0_sync    (ElbusRpcPeer        *self,
                                            const char          *target,
                                            const char          *method,
                                            GBytes              *params,
                                            ElbusQoS             qos,
                                            GCancellable        *cancellable,
                                            GError             **error);
ELBUS_AVAILABLE_IN_1_0
void          elbus_rpc_peer_notify_async  (ElbusRpcPeer        *self,
                                            const char          *target,
                                            GBytes              *payload,
                                            ElbusQoS             qos,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_rpc_peer_notify_finish (ElbusRpcPeer        *self,
                                            GAsyncResult        *result,
                                            GError             **error);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_rpc_peer_notify_sync   (ElbusRpcPeer        *self,
                                            const char          *target,
                                            GBytes              *payload,
                                            ElbusQoS             qos,
                                            GCancellable        *cancellable,
                                            GError             **error);

ELBUS_AVAILABLE_IN_1_0
GVariant     *elbus_rpc_params_from_pairs  (const char * const  *pairs,
                                            GError             **error);

G_END_DECLS

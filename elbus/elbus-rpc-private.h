/* SPDX-License-Identifier: MIT */
/*
 * The RPC layer's wire format (docs/protocol.md section 8): the first byte of a
 * one-to-one message's payload is the event type.
 */
#pragma once

#include "elbus-client.h"
#include "elbus-codec-private.h"
#include "elbus-msgpack-check-private.h"
#include "elbus-rpc-invocation.h"
#include "elbus-rpc-peer.h"

G_BEGIN_DECLS

#define ELBUS_RPC_NOTIFICATION  0x00  /* payload */
#define ELBUS_RPC_REQUEST       0x01  /* u32 call id, method, 00, params */
#define ELBUS_RPC_REPLY         0x11  /* u32 call id, result */
#define ELBUS_RPC_ERROR_REPLY   0x12  /* u32 call id, i16 code, data */

ElbusRpcInvocation *_elbus_rpc_invocation_new (ElbusClient *client,
                                               const char  *sender,
                                               const char  *method,
                                               GBytes      *params,
                                               guint32      call_id,
                                               gboolean     realtime);

/* The limits within which elbus_rpc_invocation_get_params_variant()
 * decodes: those of the peer that offers the call. */
void _elbus_rpc_invocation_set_limits (ElbusRpcInvocation       *self,
                                       const ElbusMsgpackLimits *limits);

G_END_DECLS

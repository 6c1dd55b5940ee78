/* SPDX-License-Identifier: MIT */
/*
 * The client's helpers for the RPC layer: the message filter and the
 * driver of the _sync calls.
 */
#pragma once

#include "elbus-client.h"
#include "elbus-io-private.h"

G_BEGIN_DECLS

/* The RPC layer sees each one-to-one message first; TRUE consumes it. */
typedef gboolean (*ElbusClientMessageFilter) (ElbusClient *client,
                                              const char  *sender,
                                              GBytes      *payload,
                                              gboolean     realtime,
                                              gpointer     user_data);
/* One filter: the newest RPC peer takes over from an older one (which, in
 * a garbage-collected language, may linger); clearing with user_data
 * clears only the filter set with that user_data. */
void         _elbus_client_set_message_filter   (ElbusClient              *client,
                                                 ElbusClientMessageFilter  filter,
                                                 gpointer                  user_data);
void         _elbus_client_clear_message_filter (ElbusClient              *client,
                                                 gpointer                  user_data);
/* Drives the connection until *done (as the _sync calls do), for at most
 * @timeout seconds. */
gboolean     _elbus_client_pump_until       (ElbusClient    *client,
                                             gboolean       *done,
                                             double          timeout,
                                             GCancellable   *cancellable,
                                             GError        **error);
/* elbus_client_send_async() of @head then @payload, not joined: a large
 * payload is not copied on its way (elbus_client_send_finish()). */
void         _elbus_client_send_parts_async (ElbusClient         *client,
                                             const char          *target,
                                             GBytes              *head,
                                             GBytes              *payload,
                                             ElbusQoS             qos,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);

G_END_DECLS

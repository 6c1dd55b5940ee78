/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <gio/gio.h>

#include "elbus-frame.h"
#include "elbus-types.h"

G_BEGIN_DECLS

/**
 * ELBUS_CLIENT_DEFAULT_TIMEOUT:
 *
 * The default [property@Elbus.Client:timeout], in seconds.
 *
 * Since: 1.0
 */
#define ELBUS_CLIENT_DEFAULT_TIMEOUT 5.0

/**
 * ELBUS_CLIENT_DEFAULT_QUEUE_SIZE:
 *
 * The default [property@Elbus.Client:queue-size], in frames.
 *
 * Since: 1.0
 */
#define ELBUS_CLIENT_DEFAULT_QUEUE_SIZE 8192

/**
 * ELBUS_CLIENT_DEFAULT_BUF_SIZE:
 *
 * The default [property@Elbus.Client:buf-size], in bytes.
 *
 * Since: 1.0
 */
#define ELBUS_CLIENT_DEFAULT_BUF_SIZE 8192

#define ELBUS_TYPE_CLIENT (elbus_client_get_type ())

ELBUS_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (ElbusClient, elbus_client, ELBUS, CLIENT, GObject)

ELBUS_AVAILABLE_IN_1_0
void         elbus_client_new_async             (const char          *address,
                                                 const char          *name,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
ElbusClient *elbus_client_new_finish            (GAsyncResult        *result,
                                                 GError             **error);
ELBUS_AVAILABLE_IN_1_0
ElbusClient *elbus_client_new_sync              (const char          *address,
                                                 const char          *name,
                                                 GCancellable        *cancellable,
                                                 GError             **error);

ELBUS_AVAILABLE_IN_1_0
void         elbus_client_register_secondary_async  (ElbusClient         *self,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
ElbusClient *elbus_client_register_secondary_finish (ElbusClient         *self,
                                                     GAsyncResult        *result,
                                                     GError             **error);
ELBUS_AVAILABLE_IN_1_0
ElbusClient *elbus_client_register_secondary_sync   (ElbusClient         *self,
                                                     GCancellable        *cancellable,
                                                     GError             **error);

ELBUS_AVAILABLE_IN_1_0
const char  *elbus_client_get_name              (ElbusClient         *self);
ELBUS_AVAILABLE_IN_1_0
const char  *elbus_client_get_address           (ElbusClient         *self);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_is_connected          (ElbusClient         *self);
ELBUS_AVAILABLE_IN_1_0
double       elbus_client_get_timeout           (ElbusClient         *self);
ELBUS_AVAILABLE_IN_1_0
void         elbus_client_set_timeout           (ElbusClient         *self,
                                                 double               timeout);
ELBUS_AVAILABLE_IN_1_0
guint        elbus_client_get_queue_size        (ElbusClient         *self);
ELBUS_AVAILABLE_IN_1_0
void         elbus_client_set_queue_size        (ElbusClient         *self,
                                                 guint                queue_size);
ELBUS_AVAILABLE_IN_1_0
guint        elbus_client_get_buf_size          (ElbusClient         *self);
ELBUS_AVAILABLE_IN_1_0
void         elbus_client_set_buf_size          (ElbusClient         *self,
                                                 guint                buf_size);

ELBUS_AVAILABLE_IN_1_0
void         elbus_client_send_async            (ElbusClient         *self,
                                                 const char          *target,
                                                 GBytes              *payload,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_send_finish           (ElbusClient         *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_send_sync             (ElbusClient         *self,
                                                 const char          *target,
                                                 GBytes              *payload,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GError             **error);

ELBUS_AVAILABLE_IN_1_0
void         elbus_client_send_broadcast_async  (ElbusClient         *self,
                                                 const char          *mask,
                                                 GBytes              *payload,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_send_broadcast_finish (ElbusClient         *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_send_broadcast_sync   (ElbusClient         *self,
                                                 const char          *mask,
                                                 GBytes              *payload,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GError             **error);

ELBUS_AVAILABLE_IN_1_0
void         elbus_client_publish_async         (ElbusClient         *self,
                                                 const char          *topic,
                                                 GBytes              *payload,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_publish_finish        (ElbusClient         *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_publish_sync          (ElbusClient         *self,
                                                 const char          *topic,
                                                 GBytes              *payload,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GError             **error);

ELBUS_AVAILABLE_IN_1_0
void         elbus_client_subscribe_async       (ElbusClient         *self,
                                                 const char * const  *masks,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_subscribe_finish      (ElbusClient         *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_subscribe_sync        (ElbusClient         *self,
                                                 const char * const  *masks,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GError             **error);

ELBUS_AVAILABLE_IN_1_0
void         elbus_client_unsubscribe_async     (ElbusClient         *self,
                                                 const char * const  *masks,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_unsubscribe_finish    (ElbusClient         *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);
ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_unsubscribe_sync      (ElbusClient         *self,
                                                 const char * const  *masks,
                                                 ElbusQoS             qos,
                                                 GCancellable        *cancellable,
                                                 GError             **error);

ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_client_flush_sync            (ElbusClient         *self,
                                                 GCancellable        *cancellable,
                                                 GError             **error);
ELBUS_AVAILABLE_IN_1_0
void         elbus_client_close                 (ElbusClient         *self);

ELBUS_AVAILABLE_IN_1_0
gboolean     elbus_address_is_unix              (const char          *address);

G_END_DECLS

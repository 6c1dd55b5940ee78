/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <gio/gio.h>

#include "elbus-client.h"
#include "elbus-client-policy.h"
#include "elbus-types.h"

G_BEGIN_DECLS

/**
 * ELBUS_BROKER_DEFAULT_TIMEOUT:
 *
 * The default [property@Elbus.Broker:timeout], in seconds.
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_TIMEOUT 5.0

/**
 * ELBUS_BROKER_DEFAULT_QUEUE_SIZE:
 *
 * The default [property@Elbus.Broker:queue-size], in frames.
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_QUEUE_SIZE 8192

/**
 * ELBUS_BROKER_DEFAULT_BUF_SIZE:
 *
 * The default [property@Elbus.Broker:buf-size], in bytes.
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_BUF_SIZE 8192

/**
 * ELBUS_BROKER_DEFAULT_BUF_TTL:
 *
 * The default [property@Elbus.Broker:buf-ttl], in microseconds.
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_BUF_TTL 10

/**
 * ELBUS_BROKER_DEFAULT_MAX_FRAME_SIZE:
 *
 * The default [property@Elbus.Broker:max-frame-size], in bytes (64 MiB).
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_MAX_FRAME_SIZE (64u * 1024u * 1024u)

/**
 * ELBUS_BROKER_DEFAULT_MAX_QUEUE_BYTES:
 *
 * The default [property@Elbus.Broker:max-queue-bytes] (256 MiB).
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_MAX_QUEUE_BYTES (256u * 1024u * 1024u)

/**
 * ELBUS_BROKER_DEFAULT_MAX_CLIENTS:
 *
 * The default [property@Elbus.Broker:max-clients]: connections, registered
 * or in their handshake, that a broker accepts at once.
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_MAX_CLIENTS 8192

/**
 * ELBUS_BROKER_DEFAULT_MAX_SUBSCRIPTIONS:
 *
 * The default [property@Elbus.Broker:max-subscriptions], per client.
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_MAX_SUBSCRIPTIONS 65536

/**
 * ELBUS_BROKER_DEFAULT_HANDSHAKE_TIMEOUT:
 *
 * The default [property@Elbus.Broker:handshake-timeout], in seconds.
 *
 * Since: 1.0
 */
#define ELBUS_BROKER_DEFAULT_HANDSHAKE_TIMEOUT 5.0

/**
 * ELBUS_MAX_NAME_LENGTH:
 *
 * The longest client name, in bytes, that a broker accepts at
 * registration, and the longest subscription mask it subscribes to.
 * Longer names are refused with %ELBUS_ERROR_DATA; a longer mask is not
 * subscribed to and its subscription request is acked %ELBUS_ERROR_DATA.
 *
 * Since: 1.0
 */
#define ELBUS_MAX_NAME_LENGTH 4096

#define ELBUS_TYPE_BROKER (elbus_broker_get_type ())

ELBUS_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (ElbusBroker, elbus_broker, ELBUS, BROKER, GObject)

ELBUS_AVAILABLE_IN_1_0
ElbusBroker  *elbus_broker_new                (void);

ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_listen             (ElbusBroker  *self,
                                               const char   *address,
                                               GError      **error);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_listen_unix        (ElbusBroker  *self,
                                               const char   *path,
                                               GError      **error);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_listen_tcp         (ElbusBroker  *self,
                                               const char   *host_port,
                                               GError      **error);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_listen_fifo        (ElbusBroker  *self,
                                               const char   *path,
                                               GError      **error);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_add_socket         (ElbusBroker  *self,
                                               GSocket      *socket,
                                               const char   *bind_string,
                                               GError      **error);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_close              (ElbusBroker  *self);

ELBUS_AVAILABLE_IN_1_0
double        elbus_broker_get_timeout        (ElbusBroker  *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_timeout        (ElbusBroker  *self,
                                               double        timeout);
ELBUS_AVAILABLE_IN_1_0
guint         elbus_broker_get_queue_size     (ElbusBroker  *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_queue_size     (ElbusBroker  *self,
                                               guint         queue_size);
ELBUS_AVAILABLE_IN_1_0
guint         elbus_broker_get_buf_size       (ElbusBroker  *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_buf_size       (ElbusBroker  *self,
                                               guint         buf_size);
ELBUS_AVAILABLE_IN_1_0
guint         elbus_broker_get_buf_ttl        (ElbusBroker  *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_buf_ttl        (ElbusBroker  *self,
                                               guint         buf_ttl);
ELBUS_AVAILABLE_IN_1_0
guint         elbus_broker_get_max_frame_size (ElbusBroker  *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_max_frame_size (ElbusBroker  *self,
                                               guint         max_frame_size);

ELBUS_AVAILABLE_IN_1_0
guint         elbus_broker_get_max_queue_bytes (ElbusBroker *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_max_queue_bytes (ElbusBroker *self,
                                                guint        max_queue_bytes);
ELBUS_AVAILABLE_IN_1_0
guint         elbus_broker_get_max_clients    (ElbusBroker  *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_max_clients    (ElbusBroker  *self,
                                               guint         max_clients);
ELBUS_AVAILABLE_IN_1_0
guint         elbus_broker_get_max_subscriptions (ElbusBroker *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_max_subscriptions (ElbusBroker *self,
                                                  guint        max_subscriptions);
ELBUS_AVAILABLE_IN_1_0
double        elbus_broker_get_handshake_timeout (ElbusBroker *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_handshake_timeout (ElbusBroker *self,
                                                  double       handshake_timeout);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_get_force_register (ElbusBroker *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_force_register (ElbusBroker *self,
                                               gboolean     force_register);
ELBUS_AVAILABLE_IN_1_0
GTlsCertificate *elbus_broker_get_tls_certificate (ElbusBroker     *self);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_tls_certificate (ElbusBroker     *self,
                                                GTlsCertificate *certificate);

ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_policy         (ElbusBroker  *self,
                                               GHashTable   *policy);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_set_client_policy  (ElbusBroker  *self,
                                               const char   *name,
                                               ElbusClientPolicy *policy);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_get_policy_enabled (ElbusBroker  *self);

ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_enable_core_rpc    (ElbusBroker  *self,
                                               GError      **error);
ELBUS_AVAILABLE_IN_1_0
ElbusClient  *elbus_broker_register_client    (ElbusBroker  *self,
                                               const char   *name,
                                               GError      **error);

ELBUS_AVAILABLE_IN_1_0
char        **elbus_broker_list_clients       (ElbusBroker  *self);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_has_client         (ElbusBroker  *self,
                                               const char   *name);
ELBUS_AVAILABLE_IN_1_0
void          elbus_broker_get_stats          (ElbusBroker  *self,
                                               ElbusStats   *stats);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_get_client_stats   (ElbusBroker  *self,
                                               const char   *name,
                                               ElbusStats   *stats,
                                               guint        *queue_len);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_force_disconnect   (ElbusBroker  *self,
                                               const char   *name);
ELBUS_AVAILABLE_IN_1_0
gboolean      elbus_broker_disconnect_client  (ElbusBroker  *self,
                                               const char   *name,
                                               const char   *reason);

G_END_DECLS

/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <gio/gio.h>

#include "elbus-version-macros.h"

G_BEGIN_DECLS

/**
 * ELBUS_MQTT_BRIDGE_DEFAULT_PREFIX:
 *
 * The MQTT topic prefix of a bridge unless set otherwise.
 *
 * Since: 1.0
 */
#define ELBUS_MQTT_BRIDGE_DEFAULT_PREFIX "elbus"

/**
 * ELBUS_MQTT_BRIDGE_DEFAULT_QUEUE_SIZE:
 *
 * How many exports a bridge holds while the MQTT broker is away, unless
 * set otherwise.
 *
 * Since: 1.0
 */
#define ELBUS_MQTT_BRIDGE_DEFAULT_QUEUE_SIZE 10000

#define ELBUS_TYPE_MQTT_BRIDGE (elbus_mqtt_bridge_get_type ())

ELBUS_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (ElbusMqttBridge, elbus_mqtt_bridge, ELBUS, MQTT_BRIDGE, GObject)

ELBUS_AVAILABLE_IN_1_0
gboolean         elbus_mqtt_bridge_is_supported      (void);

ELBUS_AVAILABLE_IN_1_0
ElbusMqttBridge *elbus_mqtt_bridge_new               (const char       *local_address,
                                                      const char       *name,
                                                      const char       *mqtt_address);

ELBUS_AVAILABLE_IN_1_0
gboolean         elbus_mqtt_bridge_add_export        (ElbusMqttBridge  *self,
                                                      const char       *mask,
                                                      GError          **error);
ELBUS_AVAILABLE_IN_1_0
gboolean         elbus_mqtt_bridge_add_import        (ElbusMqttBridge  *self,
                                                      const char       *mask,
                                                      GError          **error);
ELBUS_AVAILABLE_IN_1_0
void             elbus_mqtt_bridge_clear_rules       (ElbusMqttBridge  *self);

ELBUS_AVAILABLE_IN_1_0
void             elbus_mqtt_bridge_set_credentials   (ElbusMqttBridge  *self,
                                                      const char       *username,
                                                      const char       *password);
ELBUS_AVAILABLE_IN_1_0
void             elbus_mqtt_bridge_set_tls           (ElbusMqttBridge  *self,
                                                      const char       *ca_file,
                                                      const char       *cert_file,
                                                      const char       *key_file);

ELBUS_AVAILABLE_IN_1_0
gboolean         elbus_mqtt_bridge_start             (ElbusMqttBridge  *self,
                                                      GError          **error);
ELBUS_AVAILABLE_IN_1_0
void             elbus_mqtt_bridge_stop              (ElbusMqttBridge  *self);

ELBUS_AVAILABLE_IN_1_0
gboolean         elbus_mqtt_bridge_is_mqtt_connected (ElbusMqttBridge  *self);
ELBUS_AVAILABLE_IN_1_0
gboolean         elbus_mqtt_bridge_is_local_connected (ElbusMqttBridge *self);
ELBUS_AVAILABLE_IN_1_0
GVariant        *elbus_mqtt_bridge_get_stats         (ElbusMqttBridge  *self);

G_END_DECLS

/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <gio/gio.h>

#include "elbus-version-macros.h"

G_BEGIN_DECLS

/**
 * ElbusPolicyOp:
 * @ELBUS_POLICY_OP_MESSAGE: one-to-one messages; masks are `.`-masks
 *   matched against the target name
 * @ELBUS_POLICY_OP_BROADCAST: broadcasts; masks are `.`-masks matched
 *   against the broadcast's own mask, taken literally
 * @ELBUS_POLICY_OP_PUBLISH: publications; masks are `/`-masks matched
 *   against the topic
 * @ELBUS_POLICY_OP_SUBSCRIBE: subscriptions; masks are `/`-masks matched
 *   against the requested subscription mask, taken literally
 *
 * The operations an [class@Elbus.ClientPolicy] restricts.
 *
 * Since: 1.0
 */
typedef enum {
  ELBUS_POLICY_OP_MESSAGE,
  ELBUS_POLICY_OP_BROADCAST,
  ELBUS_POLICY_OP_PUBLISH,
  ELBUS_POLICY_OP_SUBSCRIBE,
} ElbusPolicyOp;

#define ELBUS_TYPE_CLIENT_POLICY (elbus_client_policy_get_type ())

ELBUS_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (ElbusClientPolicy, elbus_client_policy, ELBUS, CLIENT_POLICY, GObject)

ELBUS_AVAILABLE_IN_1_0
ElbusClientPolicy *elbus_client_policy_new               (void);
ELBUS_AVAILABLE_IN_1_0
ElbusClientPolicy *elbus_client_policy_copy              (ElbusClientPolicy *self);

ELBUS_AVAILABLE_IN_1_0
gboolean           elbus_client_policy_add_network       (ElbusClientPolicy *self,
                                                          const char        *cidr,
                                                          GError           **error);
ELBUS_AVAILABLE_IN_1_0
gboolean           elbus_client_policy_allows_address    (ElbusClientPolicy *self,
                                                          GInetAddress      *address);

ELBUS_AVAILABLE_IN_1_0
void               elbus_client_policy_add_uid           (ElbusClientPolicy *self,
                                                          guint32            uid);
ELBUS_AVAILABLE_IN_1_0
void               elbus_client_policy_add_gid           (ElbusClientPolicy *self,
                                                          guint32            gid);
ELBUS_AVAILABLE_IN_1_0
gboolean           elbus_client_policy_allows_credentials (ElbusClientPolicy *self,
                                                           gint64             uid,
                                                           gint64             gid);

ELBUS_AVAILABLE_IN_1_0
void               elbus_client_policy_allow             (ElbusClientPolicy *self,
                                                          ElbusPolicyOp      op,
                                                          const char        *mask);
ELBUS_AVAILABLE_IN_1_0
void               elbus_client_policy_deny              (ElbusClientPolicy *self,
                                                          ElbusPolicyOp      op);
ELBUS_AVAILABLE_IN_1_0
gboolean           elbus_client_policy_allows            (ElbusClientPolicy *self,
                                                          ElbusPolicyOp      op,
                                                          const char        *target);

ELBUS_AVAILABLE_IN_1_0
void               elbus_client_policy_set_monitor       (ElbusClientPolicy *self,
                                                          gboolean           allowed);
ELBUS_AVAILABLE_IN_1_0
gboolean           elbus_client_policy_get_monitor       (ElbusClientPolicy *self);

G_END_DECLS

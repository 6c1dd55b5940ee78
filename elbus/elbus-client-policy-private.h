/* SPDX-License-Identifier: MIT */
/*
 * The broker's side of ElbusClientPolicy (docs/protocol.md section 7): checks
 * made once per frame, so they allocate nothing and take targets as
 * (pointer, length), not NUL-terminated, straight out of a frame's body.
 *
 * The broker keeps its own copies (elbus_client_policy_copy()) and never
 * changes them, so it may call these from its routing path without any
 * lock or reference.
 */
#pragma once

#include "elbus-client-policy.h"

G_BEGIN_DECLS

gboolean _elbus_client_policy_allows_len  (ElbusClientPolicy *self,
                                           ElbusPolicyOp      op,
                                           const char        *target,
                                           gsize              len);
gboolean _elbus_client_policy_restricts   (ElbusClientPolicy *self,
                                           ElbusPolicyOp      op);

G_END_DECLS

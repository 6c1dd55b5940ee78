/* SPDX-License-Identifier: MIT */
/*
 * elbus-monitor's filters: the --sender, --target, --topic and --kind
 * values checked, and the params of `.broker` method monitor.start
 * (docs/protocol.md section 9) built from them.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

gboolean  check_masks       (char       **masks,
                             const char  *option,
                             char         separator,
                             GError     **error);
char    **parse_kinds       (char       **given,
                             GError     **error);
gboolean  masks_name_broker (char       **masks);
GVariant *build_filters     (char       **senders,
                             char       **targets,
                             char       **topics,
                             char       **kinds,
                             gint64       max_payload);

G_END_DECLS

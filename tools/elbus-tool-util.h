/* SPDX-License-Identifier: MIT */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * ElbusToolLogTarget:
 * @ELBUS_TOOL_LOG_AUTO: journald when standard error is connected to the
 *   journal, otherwise standard error with a timestamp prefix
 * @ELBUS_TOOL_LOG_SYSLOG: syslog(3), facility daemon
 *
 * Where elbus_tool_log_init() sends log messages.
 */
typedef enum {
  ELBUS_TOOL_LOG_AUTO,
  ELBUS_TOOL_LOG_SYSLOG,
} ElbusToolLogTarget;

void      elbus_tool_init_i18n                (void);

void      elbus_tool_log_init                 (const char          *ident,
                                               ElbusToolLogTarget   target,
                                               gboolean             verbose);

gboolean  elbus_tool_address_is_unix          (const char          *address);

char     *elbus_tool_socket_address_to_string (GSocketAddress      *address);

G_END_DECLS

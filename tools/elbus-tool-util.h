/* SPDX-License-Identifier: MIT */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

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
void      elbus_tool_log_hold                 (void);
void      elbus_tool_log_release              (gboolean             write);

/* The exit statuses the tools share (each man page lists its own):
 * any error, and a command line that makes no sense. */
#define EXIT_ERROR 1
#define EXIT_USAGE 2

int       elbus_tool_fail                     (int                  status,
                                               const char          *format,
                                               ...) G_GNUC_PRINTF (2, 3);

int       elbus_tool_parse_path_command_line  (GOptionContext      *context,
                                               int                 *argc,
                                               char              ***argv,
                                               const gboolean      *version,
                                               const char          *usage);
gboolean  elbus_tool_check_timeout            (double               seconds,
                                               GError             **error);

char     *elbus_tool_check_address            (const char          *address,
                                               gboolean             listening,
                                               GError             **error);
char     *elbus_tool_connect_error            (const char          *address,
                                               const GError        *error);
char     *elbus_tool_socket_address_to_string (GSocketAddress      *address);

/*
 * ElbusToolPayloadFormat:
 * @ELBUS_TOOL_PAYLOAD_EMPTY: no bytes
 * @ELBUS_TOOL_PAYLOAD_JSON: printable text that parses as JSON
 * @ELBUS_TOOL_PAYLOAD_TEXT: printable UTF-8 text, not JSON
 * @ELBUS_TOOL_PAYLOAD_MSGPACK: binary that decodes as MessagePack
 * @ELBUS_TOOL_PAYLOAD_HEX: anything else
 *
 * What elbus_tool_payload_decode() made of a payload.
 */
typedef enum {
  ELBUS_TOOL_PAYLOAD_EMPTY,
  ELBUS_TOOL_PAYLOAD_JSON,
  ELBUS_TOOL_PAYLOAD_TEXT,
  ELBUS_TOOL_PAYLOAD_MSGPACK,
  ELBUS_TOOL_PAYLOAD_HEX,
} ElbusToolPayloadFormat;

const char *elbus_tool_payload_format_name    (ElbusToolPayloadFormat  format);

JsonNode *elbus_tool_payload_decode           (const guint8            *data,
                                               gsize                    len,
                                               ElbusToolPayloadFormat  *format);

char     *elbus_tool_format_payload_data      (const guint8            *data,
                                               gsize                    len);

char     *elbus_tool_variant_to_json          (GVariant                *value);

G_END_DECLS

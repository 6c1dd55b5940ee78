/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <glib.h>

#include "elbus-version-macros.h"

G_BEGIN_DECLS

/**
 * ELBUS_ERROR:
 *
 * The error domain of elbus bus errors. Codes are [error@Elbus.Error].
 *
 * Since: 1.0
 */
#define ELBUS_ERROR (elbus_error_quark ())

/**
 * ElbusError:
 * @ELBUS_ERROR_NOT_REGISTERED: the target client is not registered (0x71)
 * @ELBUS_ERROR_DATA: malformed data or an invalid name (0x72)
 * @ELBUS_ERROR_IO: an input/output error (0x73)
 * @ELBUS_ERROR_OTHER: another error (0x74)
 * @ELBUS_ERROR_NOT_SUPPORTED: the operation or protocol version is not
 *   supported (0x75)
 * @ELBUS_ERROR_BUSY: the name is already taken, or the peer is busy (0x76)
 * @ELBUS_ERROR_NOT_DELIVERED: the frame could not be delivered, the
 *   target's queue was full (0x77)
 * @ELBUS_ERROR_TIMEOUT: an operation timed out (0x78)
 * @ELBUS_ERROR_ACCESS: refused by the security policy (0x79)
 * @ELBUS_ERROR_CLOSED: the connection is closed
 *
 * Error codes of the `ELBUS_ERROR` domain. Every code but
 * %ELBUS_ERROR_CLOSED equals the result byte of the wire protocol.
 *
 * Since: 1.0
 */
typedef enum {
  ELBUS_ERROR_NOT_REGISTERED = 0x71,
  ELBUS_ERROR_DATA = 0x72,
  ELBUS_ERROR_IO = 0x73,
  ELBUS_ERROR_OTHER = 0x74,
  ELBUS_ERROR_NOT_SUPPORTED = 0x75,
  ELBUS_ERROR_BUSY = 0x76,
  ELBUS_ERROR_NOT_DELIVERED = 0x77,
  ELBUS_ERROR_TIMEOUT = 0x78,
  ELBUS_ERROR_ACCESS = 0x79,
  ELBUS_ERROR_CLOSED = 0x100,
} ElbusError;

ELBUS_AVAILABLE_IN_1_0
GQuark      elbus_error_quark             (void);

ELBUS_AVAILABLE_IN_1_0
const char *elbus_error_code_to_string    (int code);

G_END_DECLS

/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "elbus-error.h"

/**
 * elbus_error_quark:
 *
 * The error domain %ELBUS_ERROR, whose codes are [error@Elbus.Error].
 *
 * Returns: the `elbus-error-quark` quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (elbus-error-quark, elbus_error)

/**
 * elbus_error_code_to_string:
 * @code: an [error@Elbus.Error] code or a wire result byte
 *
 * Describes a wire result byte (PROTOCOL.md section 2) or an error code in
 * a few words, for logs and messages.
 *
 * Returns: (transfer none): a static string
 *
 * Since: 1.0
 */
const char *
elbus_error_code_to_string (int code)
{
  switch (code)
    {
    case 0x01:
      return "OK";
    case ELBUS_ERROR_NOT_REGISTERED:
      return "not registered";
    case ELBUS_ERROR_DATA:
      return "data error";
    case ELBUS_ERROR_IO:
      return "I/O error";
    case ELBUS_ERROR_OTHER:
      return "other error";
    case ELBUS_ERROR_NOT_SUPPORTED:
      return "not supported";
    case ELBUS_ERROR_BUSY:
      return "busy";
    case ELBUS_ERROR_NOT_DELIVERED:
      return "not delivered";
    case ELBUS_ERROR_TIMEOUT:
      return "timeout";
    case ELBUS_ERROR_ACCESS:
      return "access denied";
    case ELBUS_ERROR_CLOSED:
      return "connection closed";
    default:
      return "unknown error";
    }
}

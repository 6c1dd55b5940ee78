/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "elbus-error.h"
#include "elbus-i18n-private.h"

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
 * Describes a wire result byte (docs/protocol.md section 2) or an error code in
 * a few words, for logs and messages, translated into the user's language
 * as the library's error messages are.
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
      return _("OK");
    case ELBUS_ERROR_NOT_REGISTERED:
      return _("not registered");
    case ELBUS_ERROR_DATA:
      return _("data error");
    case ELBUS_ERROR_IO:
      return _("I/O error");
    case ELBUS_ERROR_OTHER:
      return _("other error");
    case ELBUS_ERROR_NOT_SUPPORTED:
      return _("not supported");
    case ELBUS_ERROR_BUSY:
      return _("busy");
    case ELBUS_ERROR_NOT_DELIVERED:
      return _("not delivered");
    case ELBUS_ERROR_TIMEOUT:
      return _("timeout");
    case ELBUS_ERROR_ACCESS:
      return _("access denied");
    case ELBUS_ERROR_CLOSED:
      return _("connection closed");
    default:
      return _("unknown error");
    }
}

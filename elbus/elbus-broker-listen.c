/* SPDX-License-Identifier: MIT */
/* elbus_broker_listen(): an address picks its listener (a UNIX socket, TCP,
 * WebSocket or the FIFO control channel), each of which lives in the file
 * of its transport. */
#include "config.h"

#include <string.h>

#include "elbus-broker-private.h"
#include "elbus-io-private.h"

/**
 * elbus_broker_listen:
 * @self: a broker
 * @address: a UNIX socket path, `HOST:PORT`, `ws://HOST:PORT[/PATH]`,
 *   `wss://HOST:PORT[/PATH]` or `fifo:PATH`
 *
 * Listens on @address: `fifo:PATH` is the FIFO control channel (see
 * [method@Elbus.Broker.listen_fifo]); `ws://HOST:PORT[/PATH]` serves elbus
 * over WebSocket at PATH (`/` when left out), the elbus byte stream riding
 * in binary WebSocket messages whose boundaries mean nothing (this needs a
 * library built with libsoup; else it fails with
 * %G_IO_ERROR_NOT_SUPPORTED); `wss://HOST:PORT[/PATH]` the same over TLS,
 * with [property@Elbus.Broker:tls-certificate], which must be set first
 * (else it fails with %G_IO_ERROR_INVALID_ARGUMENT); an address that starts
 * with `/` or
 * ends with `.sock`, `.socket` or `.ipc` is a UNIX socket path (see
 * [method@Elbus.Broker.listen_unix]); anything else `HOST:PORT` (see
 * [method@Elbus.Broker.listen_tcp]).
 *
 * Returns: %TRUE when listening
 *
 * Since: 1.0
 */
gboolean
elbus_broker_listen (ElbusBroker  *self,
                     const char   *address,
                     GError      **error)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (address != NULL, FALSE);

  if (g_str_has_prefix (address, "fifo:"))
    return elbus_broker_listen_fifo (self, address + strlen ("fifo:"), error);

  if (g_str_has_prefix (address, "ws://") || g_str_has_prefix (address, "wss://"))
    return _elbus_broker_listen_ws (self, address, error);

  if (_elbus_address_is_unix (address))
    return elbus_broker_listen_unix (self, address, error);

  return elbus_broker_listen_tcp (self, address, error);
}


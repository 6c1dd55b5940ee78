#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Pub/sub and RPC with Elbus from Python (PyGObject).

Two clients on one broker: "server" subscribes to demo/# and answers the
RPC method "greet"; "caller" publishes on demo/hello and calls greet.

    elbusd -B /tmp/elbus.sock &
    python3 docs/examples/pubsub-rpc.py [ADDRESS]    # default /tmp/elbus.sock
"""

import os
import sys

import gi
gi.require_version('GLib', '2.0')
gi.require_version('Elbus', '1.0')
from gi.repository import GLib, Elbus  # noqa: E402

address = sys.argv[1] if len(sys.argv) > 1 else '/tmp/elbus.sock'
prefix = 'example.py.%d' % os.getpid()
QOS = Elbus.QoS.PROCESSED
loop = GLib.MainLoop()
failed = []


def fail_after_timeout():
    failed.append('timed out')
    loop.quit()
    return GLib.SOURCE_REMOVE


GLib.timeout_add_seconds(10, fail_after_timeout)

server = Elbus.Client.new_sync(address, prefix + '.server', None)
caller = Elbus.Client.new_sync(address, prefix + '.caller', None)

# Pub/sub: frames arrive as signals on the main loop.
received = []


def on_publication(client, frame):
    text = frame.get_payload().get_data().decode()
    print('%s got %r on %s' % (client.get_name(), text, frame.get_topic()))
    received.append(text)
    loop.quit()


server.connect('publication', on_publication)
server.subscribe_sync(['demo/#'], QOS, None)
caller.publish_sync('demo/hello', GLib.Bytes.new(b'hi there'), QOS, None)
if not received:
    loop.run()

# RPC: a handler for "greet" on the server, an async call from the caller.
def on_greet(peer, invocation):
    name = invocation.get_params_variant().unpack()['name']
    invocation.return_variant(GLib.Variant('s', 'Hello, %s!' % name))
    return True


server_peer = Elbus.RpcPeer.new(server)
server_peer.connect('handle-call::greet', on_greet)


def on_reply(peer, result):
    try:
        print('greet returned %r' % peer.call_variant_finish(result).unpack())
    except GLib.Error as e:
        failed.append(e.message)
    loop.quit()


params = GLib.Variant('a{sv}', {'name': GLib.Variant('s', 'world')})
caller_peer = Elbus.RpcPeer.new(caller)
caller_peer.call_variant_async(server.get_name(), 'greet', params, QOS, 0, None, on_reply)
loop.run()

caller.close()
server.close()
if failed or received != ['hi there']:
    print('failed: %s' % (failed or received), file=sys.stderr)
    sys.exit(1)

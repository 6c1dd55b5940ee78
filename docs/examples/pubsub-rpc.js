// SPDX-License-Identifier: MIT
//
// Pub/sub and RPC with Elbus from GJS, with async/await.
//
// Two clients on one broker: "server" subscribes to demo/# and answers the
// RPC method "greet"; "caller" publishes on demo/hello and calls greet.
//
//   elbusd -B /tmp/elbus.sock &
//   gjs -m docs/examples/pubsub-rpc.js [ADDRESS]    # default /tmp/elbus.sock

import GLib from 'gi://GLib?version=2.0';
import Gio from 'gi://Gio?version=2.0';
import Elbus from 'gi://Elbus?version=1.0';
import System from 'system';

Gio._promisify(Elbus.Client, 'new_async', 'new_finish');
Gio._promisify(Elbus.Client.prototype, 'subscribe_async', 'subscribe_finish');
Gio._promisify(Elbus.Client.prototype, 'publish_async', 'publish_finish');
Gio._promisify(Elbus.RpcPeer.prototype, 'call_variant_async', 'call_variant_finish');

const address = ARGV[0] ?? '/tmp/elbus.sock';
const prefix = `example.gjs.${new Gio.Credentials().get_unix_pid()}`;
const QOS = Elbus.QoS.PROCESSED;

async function main() {
    const server = await Elbus.Client.new_async(address, `${prefix}.server`, null);
    const caller = await Elbus.Client.new_async(address, `${prefix}.caller`, null);

    // Pub/sub: frames arrive as signals on the main loop.
    const received = new Promise(resolve => {
        server.connect('publication', (client, frame) => {
            const text = new TextDecoder().decode(frame.get_payload().toArray());
            print(`${client.get_name()} got '${text}' on ${frame.get_topic()}`);
            resolve(text);
        });
    });
    await server.subscribe_async(['demo/#'], QOS, null);
    await caller.publish_async('demo/hello', new GLib.Bytes(new TextEncoder().encode('hi there')), QOS, null);
    if (await received !== 'hi there')
        throw new Error('wrong publication');

    // RPC: a handler for "greet" on the server, an awaited call from the caller.
    const serverPeer = Elbus.RpcPeer.new(server);
    serverPeer.connect('handle-call::greet', (peer, invocation) => {
        const {name} = invocation.get_params_variant().recursiveUnpack();
        invocation.return_variant(new GLib.Variant('s', `Hello, ${name}!`));
        return true;
    });
    const callerPeer = Elbus.RpcPeer.new(caller);
    const params = new GLib.Variant('a{sv}', {name: new GLib.Variant('s', 'world')});
    const reply = await callerPeer.call_variant_async(server.get_name(), 'greet', params, QOS, 0, null);
    print(`greet returned '${reply.unpack()}'`);

    caller.close();
    server.close();
}

const loop = new GLib.MainLoop(null, false);
let status = 0;
GLib.timeout_add_seconds(GLib.PRIORITY_DEFAULT, 10, () => {
    printerr('timed out');
    status = 1;
    loop.quit();
    return GLib.SOURCE_REMOVE;
});
main().catch(e => {
    printerr(`failed: ${e.message}`);
    status = 1;
}).finally(() => loop.quit());
loop.run();
System.exit(status);

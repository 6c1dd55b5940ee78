// SPDX-License-Identifier: MIT
//
// The Elbus typelib from GJS (`gjs -m`), against the build tree: an
// embedded Elbus.Broker on a temporary UNIX socket, clients connected with
// async/await (promisified _async methods) on the default main context,
// a message and a publication through signals, a subscription, RPC both
// ways with handlers written in JavaScript, an RPC error as GLib.Error and
// an in-process client, and handlers that throw (answered -32603 by
// elbus/overrides/gjs/Elbus.js, found through GJS_PATH=<builddir>/gjs).
//
// Prints TAP; exits non-zero on failure. Run only when gjs is installed,
// so it never skips.

import GLib from 'gi://GLib?version=2.0';
import Gio from 'gi://Gio?version=2.0';
import Elbus from 'gi://Elbus?version=1.0';
import System from 'system';

const QOS = Elbus.QoS.PROCESSED;
const TIMEOUT_MS = 5000;

Gio._promisify(Elbus.Client, 'new_async', 'new_finish');
for (const [async, finish] of [
    ['send_async', 'send_finish'],
    ['send_broadcast_async', 'send_broadcast_finish'],
    ['publish_async', 'publish_finish'],
    ['subscribe_async', 'subscribe_finish'],
    ['unsubscribe_async', 'unsubscribe_finish'],
])
    Gio._promisify(Elbus.Client.prototype, async, finish);
Gio._promisify(Elbus.RpcPeer.prototype, 'call_variant_async', 'call_variant_finish');

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = text => new GLib.Bytes(encoder.encode(text));
const text = gbytes => decoder.decode(gbytes.toArray());
const frameInfo = frame => ({
    sender: frame.get_sender(),
    topic: frame.get_topic(),
    payload: text(frame.get_payload()),
});

function assert(cond, what) {
    if (!cond)
        throw new Error(`assertion failed: ${what}`);
}

// Resolves with what extract() takes from the arguments of the next
// emission of a signal.
function nextSignal(object, signal, extract) {
    return new Promise((resolve, reject) => {
        const timeout = GLib.timeout_add(GLib.PRIORITY_DEFAULT, TIMEOUT_MS, () => {
            object.disconnect(id);
            reject(new Error(`timed out waiting for ${signal}`));
            return GLib.SOURCE_REMOVE;
        });
        const id = object.connect(signal, (_object, ...args) => {
            object.disconnect(id);
            GLib.source_remove(timeout);
            try {
                resolve(extract(...args));
            } catch (e) {
                reject(e);
            }
        });
    });
}

function sumParams(a, b) {
    return new GLib.Variant('a{sv}', {
        a: new GLib.Variant('x', a),
        b: new GLib.Variant('x', b),
    });
}

function addHandlers(peer) {
    peer.connect('handle-call::add', (_peer, invocation) => {
        const params = invocation.get_params_variant().deepUnpack();
        const sum = Number(params.a.unpack()) + Number(params.b.unpack());
        invocation.return_variant(new GLib.Variant('x', sum));
        return true;
    });
    peer.connect('handle-call::fail', (_peer, invocation) => {
        invocation.return_error(Elbus.RpcError.INVALID_PARAMS, 'no, thanks');
        return true;
    });
}

const dir = GLib.dir_make_tmp('elbus-gjs-XXXXXX');
const path = GLib.build_filenamev([dir, 'elbus.sock']);
const broker = Elbus.Broker.new();
const clients = [];

const tests = {
    async connect(bus) {
        bus.a = await Elbus.Client.new_async(path, 'gjs.a', null);
        bus.b = await Elbus.Client.new_async(path, 'gjs.b', null);
        clients.push(bus.a, bus.b);
        assert(bus.a.get_name() === 'gjs.a', 'name');
        assert(bus.b.connected, 'connected property');
    },

    async message(bus) {
        const received = nextSignal(bus.b, 'message', frameInfo);
        assert(await bus.a.send_async('gjs.b', bytes('hello'), QOS, null), 'send');
        const frame = await received;
        assert(frame.sender === 'gjs.a', 'sender');
        assert(frame.payload === 'hello', 'payload');
    },

    async frameOutlivesHandler(bus) {
        // the frame itself, kept past the emission: it is a reference of
        // the script's own, not a pointer into the client's buffers
        const received = nextSignal(bus.b, 'message', frame => frame);
        assert(await bus.a.send_async('gjs.b', bytes('kept'), QOS, null), 'send');
        const frame = await received;
        await new Promise(resolve => GLib.idle_add(GLib.PRIORITY_DEFAULT, () => {
            resolve();
            return GLib.SOURCE_REMOVE;
        }));
        assert(frame.get_sender() === 'gjs.a', 'kept sender');
        assert(new TextDecoder().decode(frame.get_payload().toArray()) === 'kept', 'kept payload');
    },

    async broadcast(bus) {
        const received = nextSignal(bus.b, 'broadcast', frameInfo);
        await bus.a.send_broadcast_async('gjs.*', bytes('all'), QOS, null);
        const frame = await received;
        assert(frame.payload === 'all', 'broadcast payload');
    },

    async publication(bus) {
        assert(await bus.b.subscribe_async(['gjs/#'], QOS, null), 'subscribe');
        const received = nextSignal(bus.b, 'publication', frameInfo);
        await bus.a.publish_async('gjs/room/temp', bytes('21.5'), QOS, null);
        const frame = await received;
        assert(frame.topic === 'gjs/room/temp', 'topic');
        assert(frame.payload === '21.5', 'publication payload');
        assert(await bus.b.unsubscribe_async(['gjs/#'], QOS, null), 'unsubscribe');
    },

    async rpcBothWays(bus) {
        const pa = Elbus.RpcPeer.new(bus.a);
        const pb = Elbus.RpcPeer.new(bus.b);
        addHandlers(pa);
        addHandlers(pb);
        let result = await pa.call_variant_async('gjs.b', 'add', sumParams(2, 3), QOS, 0, null);
        assert(Number(result.unpack()) === 5, `2 + 3 = ${result.unpack()}`);
        result = await pb.call_variant_async('gjs.a', 'add', sumParams(40, 2), QOS, 0, null);
        assert(Number(result.unpack()) === 42, `40 + 2 = ${result.unpack()}`);
    },

    async rpcError(bus) {
        const pa = Elbus.RpcPeer.new(bus.a);
        for (const [method, code] of [
            ['fail', Elbus.RpcError.INVALID_PARAMS],
            ['no_such_method', Elbus.RpcError.METHOD_NOT_FOUND],
        ]) {
            try {
                await pa.call_variant_async('gjs.b', method, null, QOS, 0, null);
            } catch (e) {
                assert(e instanceof GLib.Error, `a GLib.Error: ${e}`);
                assert(e.matches(Elbus.rpc_error_quark(), code), `${method}: ${e.code} ${e.message}`);
                continue;
            }
            throw new Error(`${method} succeeded`);
        }
    },

    async handlerThrows(bus) {
        // the override (elbus/overrides/gjs/Elbus.js): a handler that
        // throws answers -32603 with the error's text, not METHOD_NOT_FOUND.
        // On a client of its own: the peers of the other tests answer
        // whatever they do not handle on gjs.b with METHOD_NOT_FOUND.
        const raiser = await Elbus.Client.new_async(path, 'gjs.raiser', null);
        clients.push(raiser);
        const pa = Elbus.RpcPeer.new(bus.a);
        const pr = Elbus.RpcPeer.new(raiser);
        addHandlers(pr);
        pr.connect('handle-call::boom', () => {
            throw new Error('kaboom');
        });
        pr.connect_after('handle-call::late_boom', (_peer, invocation) => {
            invocation.return_variant(new GLib.Variant('s', 'answered'));
            throw new Error('after the answer');
        });
        pr.connect('handle-call::async_boom', async () => {
            await null;
            throw new Error('kaboom-async');
        });
        const plainId = pr.connect('handle-call', () => {
            throw new TypeError('kaboom-everywhere');
        });

        const expectError = async (method, code, text) => {
            try {
                await pa.call_variant_async('gjs.raiser', method, null, QOS, 0, null);
            } catch (e) {
                assert(e instanceof GLib.Error, `a GLib.Error: ${e}`);
                assert(e.matches(Elbus.rpc_error_quark(), code), `${method}: ${e.code} ${e.message}`);
                assert(!text || e.message.includes(text), `${method}: ${e.message}`);
                return;
            }
            throw new Error(`${method} succeeded`);
        };

        await expectError('boom', Elbus.RpcError.INTERNAL, 'kaboom');
        await expectError('async_boom', Elbus.RpcError.INTERNAL, 'kaboom-async');
        await expectError('anything', -32603, 'kaboom-everywhere');
        // handlers that do not throw are untouched
        const sum = await pa.call_variant_async('gjs.raiser', 'add', sumParams(20, 22), QOS, 0, null);
        assert(Number(sum.unpack()) === 42, '20 + 22');
        pr.disconnect(plainId);
        await expectError('anything', Elbus.RpcError.METHOD_NOT_FOUND);
        // answered before throwing: the answer stands, no second one
        const late = await pa.call_variant_async('gjs.raiser', 'late_boom', null, QOS, 0, null);
        assert(late.unpack() === 'answered', `late_boom: ${late.unpack()}`);
    },

    async inProcessClient(bus) {
        const inproc = broker.register_client('gjs.inproc');
        clients.push(inproc);
        const received = nextSignal(inproc, 'message', frameInfo);
        await bus.a.send_async('gjs.inproc', bytes('inside'), QOS, null);
        const frame = await received;
        assert(frame.payload === 'inside', 'in-process payload');
        const peer = Elbus.RpcPeer.new(inproc);
        const result = await peer.call_variant_async('gjs.b', 'add', sumParams(1, 1), QOS, 0, null);
        assert(Number(result.unpack()) === 2, '1 + 1');
    },
};

async function main() {
    const names = Object.keys(tests);
    print(`1..${names.length}`);
    const bus = {};
    let failed = 0;
    broker.listen_unix(path);
    for (const [i, name] of names.entries()) {
        try {
            // eslint-disable-next-line no-await-in-loop
            await tests[name](bus);
            print(`ok ${i + 1} ${name}`);
        } catch (e) {
            failed++;
            print(`not ok ${i + 1} ${name}`);
            for (const line of `${e}\n${e.stack ?? ''}`.split('\n'))
                print(`# ${line}`);
        }
    }
    return failed;
}

const loop = new GLib.MainLoop(null, false);
let status = 1;
main().then(failed => {
    status = failed ? 1 : 0;
}).catch(e => {
    print(`Bail out! ${e}`);
}).finally(() => loop.quit());
loop.run();

for (const client of clients)
    client.close();
broker.close();
GLib.rmdir(GLib.build_filenamev([dir]));
System.exit(status);

// SPDX-License-Identifier: MIT
//
// Elbus.MqttBridge from GJS (`gjs -m`), against the build tree, without
// an MQTT broker: a malformed mask throws GLib.Error, the bridge registers
// on an embedded Elbus.Broker (notify::local-connected) while the MQTT
// broker it was given is not there, its counters unpack to an object, and
// stop() ends it. tests/python/test_bridge.py goes through a Mosquitto.
//
// Prints TAP; exits non-zero on failure.

import GLib from 'gi://GLib?version=2.0';
import Elbus from 'gi://Elbus?version=1.0';
import System from 'system';

function assert(cond, what) {
    if (!cond)
        throw new Error(`assertion failed: ${what}`);
}

let n = 0;
const ok = what => print(`ok ${++n} - ${what}`);

const loop = new GLib.MainLoop(null, false);
const dir = GLib.dir_make_tmp('elbus-gjs-bridge-XXXXXX');
const path = GLib.build_filenamev([dir, 'elbus.sock']);
const broker = Elbus.Broker.new();
assert(broker.listen_unix(path), 'the broker listens');
let status = 0;

try {
    if (!Elbus.MqttBridge.is_supported()) {
        print('1..0 # SKIP libelbus built without MQTT support');
    } else {
        // port 1 on loopback: nothing listens there
        const bridge = Elbus.MqttBridge.new(path, 'gjs.bridge', '127.0.0.1:1');
        let threw = false;
        try {
            bridge.add_export('a/#/b');
        } catch (e) {
            threw = e instanceof GLib.Error && e.message.includes('invalid mask');
        }
        assert(threw, 'a malformed mask throws GLib.Error');
        ok('a malformed mask throws GLib.Error');

        bridge.add_export('gjs/#');
        bridge.add_import('remote/#');
        bridge.prefix = 'site';
        assert(bridge.prefix === 'site', 'the prefix property');
        const timeout = GLib.timeout_add(GLib.PRIORITY_DEFAULT, 10000, () => {
            status = 1;
            print('not ok - timed out waiting for local-connected');
            loop.quit();
            return GLib.SOURCE_REMOVE;
        });
        bridge.connect('notify::local-connected', () => {
            if (bridge.local_connected)
                loop.quit();
        });
        assert(bridge.start(), 'start()');
        loop.run();
        GLib.source_remove(timeout);
        if (status === 0) {
            assert(!bridge.mqtt_connected, 'no MQTT broker');
            ok('registered on the local broker while MQTT is away');

            const stats = bridge.get_stats().deep_unpack();
            assert(stats.exported === 0 && 'mqtt_reconnects' in stats,
                `the counters: ${JSON.stringify(stats)}`);
            ok('get_stats() unpacks to an object of counters');

            bridge.stop();
            assert(!bridge.local_connected, 'stopped');
            ok('stop() disconnects');
        }
    }
} catch (e) {
    print(`not ok - ${e.message}`);
    printerr(e.stack);
    status = 1;
}
broker.close();
GLib.unlink(path);
GLib.rmdir(dir);
print(`1..${n}`);
System.exit(status);

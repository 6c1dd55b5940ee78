#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# Elbus.MqttBridge from Python (PyGObject), against the build tree: a
# Mosquitto on a free loopback port (started here with a generated
# configuration) and an embedded Elbus.Broker; one bridge exports a topic,
# a second one with another origin imports it back onto the same bus, so
# the subscriber sees the publication twice: once from its publisher, once
# from the importing bridge. Also: a malformed mask raises GLib.Error, and
# the counters come as a dict.
#
# Prints TAP. Exits 77 (skip) only when PyGObject or Mosquitto is missing.

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MOSQUITTO = '/usr/sbin/mosquitto'

try:
    import gi
except ImportError as e:
    print('1..0 # SKIP python3-gi (PyGObject) is not installed: %s' % e)
    sys.exit(77)
if not os.access(MOSQUITTO, os.X_OK):
    print('1..0 # SKIP %s is not installed' % MOSQUITTO)
    sys.exit(77)

gi.require_version('GLib', '2.0')
gi.require_version('Elbus', '1.0')
from gi.repository import GLib, Elbus  # noqa: E402

CTX = GLib.MainContext.default()


def spin_until(cond, timeout=10.0, what='condition'):
    deadline = time.monotonic() + timeout
    tick = GLib.timeout_add(20, lambda: True)
    try:
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError('timed out waiting for %s' % what)
            CTX.iteration(True)
    finally:
        GLib.source_remove(tick)


def run(start, finish):
    """Runs an _async/_finish pair on the default context (the broker is
    on it too, so nothing here may block)."""
    results = []
    start(lambda source, result: results.append(result))
    spin_until(lambda: results, what='an async result')
    return finish(results[0])


def connect(address, name):
    return run(lambda cb: Elbus.Client.new_async(address, name, None, cb),
               Elbus.Client.new_finish)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main():
    n = 0

    def ok(what):
        nonlocal n
        n += 1
        print('ok %d - %s' % (n, what))

    if not Elbus.MqttBridge.is_supported():
        print('1..0 # SKIP libelbus built without MQTT support')
        return 77

    tmp = tempfile.mkdtemp(prefix='elbus-py-bridge-')
    port = free_port()
    conf = os.path.join(tmp, 'mosquitto.conf')
    with open(conf, 'w') as f:
        f.write('listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n' % port)
        if os.geteuid() == 0:
            f.write('user root\n')
    log = open(os.path.join(tmp, 'mosquitto.log'), 'w')
    mosquitto = subprocess.Popen([MOSQUITTO, '-c', conf], stdout=log, stderr=log)
    bridges = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(('127.0.0.1', port)).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

        path = os.path.join(tmp, 'elbus.sock')
        broker = Elbus.Broker.new()
        assert broker.listen_unix(path)
        mqtt = '127.0.0.1:%d' % port

        bad = Elbus.MqttBridge.new(path, 'py.bad', mqtt)
        try:
            bad.add_export('a/#/b')
            raise AssertionError('a malformed mask was accepted')
        except GLib.Error as e:
            assert 'invalid mask' in e.message, e.message
        ok('a malformed mask raises GLib.Error')

        exporter = Elbus.MqttBridge.new(path, 'py.exporter', mqtt)
        exporter.add_export('py/#')
        importer = Elbus.MqttBridge.new(path, 'py.importer', mqtt)
        importer.props.origin = 'another bus'
        importer.add_import('py/#')
        bridges = [exporter, importer]
        for bridge in bridges:
            assert bridge.start()
        spin_until(lambda: all(b.props.mqtt_connected and b.props.local_connected
                               for b in bridges), what='both bridges connected')
        ok('two bridges connected (mqtt-connected, local-connected)')

        got = []
        sub = connect(path, 'py.sub')
        sub.connect('publication',
                    lambda c, f: got.append((f.get_topic(), f.get_sender(),
                                             bytes(f.get_payload().get_data()))))
        run(lambda cb: sub.subscribe_async(['py/#'], Elbus.QoS.PROCESSED, None, cb),
            sub.subscribe_finish)
        pub = connect(path, 'py.pub')
        # until the importer's MQTT subscription is in place
        tick = GLib.timeout_add(50, lambda: pub.publish_async('py/warm', GLib.Bytes(b'w'),
                                                              Elbus.QoS.NO, None, None) or True)
        spin_until(lambda: ('py/warm', 'py.importer', b'w') in got,
                   what='a warm-up through MQTT')
        GLib.source_remove(tick)

        def got_x():
            return sorted((sender, data) for topic, sender, data in got if topic == 'py/x')

        run(lambda cb: pub.publish_async('py/x', GLib.Bytes(b'\x00\x01hello'),
                                         Elbus.QoS.PROCESSED, None, cb),
            pub.publish_finish)
        spin_until(lambda: len(got_x()) >= 2, what='the publication and its import')
        assert got_x() == [('py.importer', b'\x00\x01hello'), ('py.pub', b'\x00\x01hello')], got
        ok('a publication went out through one bridge and came back through the other')

        stats = exporter.get_stats().unpack()
        assert isinstance(stats, dict) and stats['exported'] >= 2, stats
        assert importer.get_stats().unpack()['imported'] >= 2
        ok('get_stats() unpacks to a dict of counters')

        for bridge in bridges:
            bridge.stop()
        assert not exporter.props.mqtt_connected
        ok('stop() disconnects')
        sub.close()
        pub.close()
        broker.close()
    finally:
        mosquitto.terminate()
        mosquitto.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print('1..%d' % n)
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# The Elbus typelib from Python (PyGObject), against the build tree: an
# embedded Elbus.Broker on a temporary UNIX socket, clients connected
# asynchronously on the default main context (and synchronously to an
# elbusd subprocess), messages, broadcasts and publications through
# signals, subscriptions, RPC both ways with handlers written in Python,
# RPC errors as GLib.Error, GVariant params, an in-process client, and
# handlers that raise (answered -32603 by elbus/overrides/python/Elbus.py,
# found through PYTHONPATH=<builddir>/python), and a security policy entry
# (Elbus.ClientPolicy).
#
# Prints TAP. Exits 77 (skip) only when PyGObject itself is not installed.

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import gi
except ImportError as e:
    print('1..0 # SKIP python3-gi (PyGObject) is not installed: %s' % e)
    sys.exit(77)

# From here on everything is a failure, never a skip: PyGObject is there.
gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Elbus', '1.0')
from gi.repository import GLib, Gio, Elbus  # noqa: E402

TIMEOUT = 5.0
CTX = GLib.MainContext.default()
QOS = Elbus.QoS.PROCESSED


def spin_until(cond, timeout=TIMEOUT, what='condition'):
    """Iterates the default main context until cond() holds."""
    deadline = time.monotonic() + timeout
    # wakes the blocking iteration up now and then to check the deadline
    tick = GLib.timeout_add(50, lambda: True)
    try:
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError('timed out waiting for %s' % what)
            CTX.iteration(True)
    finally:
        GLib.source_remove(tick)


def run(start, finish):
    """Runs an _async/_finish pair: start(callback) then finish(result)."""
    results = []
    start(lambda source, result: results.append(result))
    spin_until(lambda: results, what='an async result')
    return finish(results[0])


def connect(address, name):
    return run(lambda cb: Elbus.Client.new_async(address, name, None, cb),
               Elbus.Client.new_finish)


def payload_of(frame):
    return bytes(frame.get_payload().get_data() or b'')


class Bus:
    """A broker on a temporary socket and two clients, py.a and py.b."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='elbus-py-')
        self.path = os.path.join(self.dir, 'elbus.sock')
        self.broker = Elbus.Broker.new()
        assert self.broker.listen_unix(self.path)
        self.a = connect(self.path, 'py.a')
        self.b = connect(self.path, 'py.b')
        self.received = {'message': [], 'broadcast': [], 'publication': []}
        for signal, frames in self.received.items():
            self.b.connect(signal, lambda client, frame, frames=frames:
                           frames.append((frame.get_sender(), frame.get_topic(),
                                          payload_of(frame))))

    def close(self):
        self.a.close()
        self.b.close()
        self.broker.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_connect_async(bus):
    assert bus.a.get_name() == 'py.a'
    assert bus.a.is_connected()
    assert bus.a.props.connected
    assert bus.b.props.name == 'py.b'
    spin_until(lambda: bus.broker.has_client('py.b'), what='py.b registered')
    clients = bus.broker.list_clients()
    assert 'py.a' in clients and 'py.b' in clients, clients


def test_initable(bus):
    # built with its properties, then initialized (Gio.AsyncInitable)
    client = Elbus.Client(address=bus.path, name='py.init', timeout=2.5, queue_size=9)
    assert not client.is_connected()
    run(lambda cb: client.init_async(GLib.PRIORITY_DEFAULT, None, cb), client.init_finish)
    assert client.is_connected()
    assert client.props.timeout == 2.5 and client.props.queue_size == 9
    spin_until(lambda: bus.broker.has_client('py.init'), what='py.init registered')
    client.close()


def test_message(bus):
    frames = bus.received['message']
    ok = run(lambda cb: bus.a.send_async('py.b', GLib.Bytes.new(b'hello'), QOS, None, cb),
             bus.a.send_finish)
    assert ok is True
    spin_until(lambda: frames, what='the message')
    assert frames.pop(0) == ('py.a', None, b'hello')


def test_message_to_nobody(bus):
    try:
        run(lambda cb: bus.a.send_async('py.nobody', GLib.Bytes.new(b'x'), QOS, None, cb),
            bus.a.send_finish)
    except GLib.Error as e:
        assert e.domain == 'elbus-error-quark', e.domain
        assert e.code == Elbus.Error.NOT_REGISTERED, e.code
        assert e.matches(Elbus.error_quark(), Elbus.Error.NOT_REGISTERED)
    else:
        raise AssertionError('sending to an unregistered client succeeded')


def test_broadcast(bus):
    frames = bus.received['broadcast']
    run(lambda cb: bus.a.send_broadcast_async('py.*', GLib.Bytes.new(b'all'), QOS, None, cb),
        bus.a.send_broadcast_finish)
    spin_until(lambda: frames, what='the broadcast')
    assert frames.pop(0) == ('py.a', None, b'all')


def test_subscribe_publish(bus):
    frames = bus.received['publication']
    messages = bus.received['message']
    assert run(lambda cb: bus.b.subscribe_async(['py/+/temp'], QOS, None, cb),
               bus.b.subscribe_finish)
    run(lambda cb: bus.a.publish_async('py/room/temp', GLib.Bytes.new(b'21.5'), QOS, None, cb),
        bus.a.publish_finish)
    spin_until(lambda: frames, what='the publication')
    assert frames.pop(0) == ('py.a', 'py/room/temp', b'21.5')

    assert run(lambda cb: bus.b.unsubscribe_async(['py/+/temp'], QOS, None, cb),
               bus.b.unsubscribe_finish)
    # a publication after unsubscribing, then a message as a marker: the
    # broker keeps py.a's frames in order, so when the marker arrives the
    # publication would have arrived before it.
    run(lambda cb: bus.a.publish_async('py/room/temp', GLib.Bytes.new(b'22'), QOS, None, cb),
        bus.a.publish_finish)
    run(lambda cb: bus.a.send_async('py.b', GLib.Bytes.new(b'marker'), QOS, None, cb),
        bus.a.send_finish)
    spin_until(lambda: messages, what='the marker')
    assert messages.pop(0)[2] == b'marker'
    assert frames == [], frames


def make_peers(bus):
    pa = Elbus.RpcPeer.new(bus.a)
    pb = Elbus.RpcPeer.new(bus.b)
    assert pa.get_client() is bus.a or pa.props.client.get_name() == 'py.a'
    return pa, pb


def add_handler(peer, seen):
    def on_add(peer, invocation):
        seen.append(invocation.get_sender())
        params = invocation.get_params_variant().unpack()
        invocation.return_variant(GLib.Variant('x', params['a'] + params['b']))
        return True

    def on_fail(peer, invocation):
        invocation.return_error(Elbus.RpcError.INVALID_PARAMS, 'no, thanks')
        return True

    def on_custom(peer, invocation):
        invocation.return_error(42, 'the answer')
        return True

    def on_raw(peer, invocation):
        data = bytes(invocation.get_params().get_data() or b'')
        invocation.return_value(GLib.Bytes.new(data[::-1]))
        return True

    peer.connect('handle-call::add', on_add)
    peer.connect('handle-call::fail', on_fail)
    peer.connect('handle-call::custom', on_custom)
    peer.connect('handle-call::raw', on_raw)


def call_variant(peer, target, method, params):
    return run(lambda cb: peer.call_variant_async(target, method, params, QOS, 0, None, cb),
               peer.call_variant_finish)


def sum_params(a, b):
    return GLib.Variant('a{sv}', {'a': GLib.Variant('x', a), 'b': GLib.Variant('x', b)})


def expect_rpc_error(peer, target, method, code):
    try:
        call_variant(peer, target, method, None)
    except GLib.Error as e:
        assert e.domain == 'elbus-rpc-error-quark', e.domain
        assert e.code == code, (e.code, code)
        assert e.matches(Elbus.rpc_error_quark(), code)
        return e
    raise AssertionError('%s on %s succeeded' % (method, target))


def test_rpc_both_ways(bus):
    pa, pb = make_peers(bus)
    seen_a, seen_b = [], []
    add_handler(pa, seen_a)
    add_handler(pb, seen_b)

    result = call_variant(pa, 'py.b', 'add', sum_params(2, 3))
    assert result.unpack() == 5, result
    assert seen_b == ['py.a']

    result = call_variant(pb, 'py.a', 'add', sum_params(40, 2))
    assert result.unpack() == 42, result
    assert seen_a == ['py.b']

    # the MessagePack form: the bytes go through untouched
    raw = run(lambda cb: pa.call_async('py.b', 'raw', GLib.Bytes.new(b'\x93\x01\x02\x03'),
                                       QOS, 0, None, cb),
              pa.call_finish)
    assert bytes(raw.get_data()) == b'\x03\x02\x01\x93'


def test_rpc_errors(bus):
    pa, pb = make_peers(bus)
    add_handler(pb, [])
    e = expect_rpc_error(pa, 'py.b', 'fail', Elbus.RpcError.INVALID_PARAMS)
    assert 'no, thanks' in e.message, e.message
    e = expect_rpc_error(pa, 'py.b', 'custom', 42)
    assert 'the answer' in e.message, e.message
    expect_rpc_error(pa, 'py.b', 'no_such_method', Elbus.RpcError.METHOD_NOT_FOUND)
    # the broker refuses the call: -32000 - 0x71
    expect_rpc_error(pa, 'py.nobody', 'add',
                     Elbus.RpcError.BUS - Elbus.Error.NOT_REGISTERED)


def test_two_peers_one_client(bus):
    # a library's peer and an application's on one client: each gets the
    # answers to its own calls, also while both wait; the one the garbage
    # collector takes leaves the other working
    first = Elbus.RpcPeer.new(bus.a)
    second = Elbus.RpcPeer.new(bus.a)
    server = Elbus.RpcPeer.new(bus.b)
    add_handler(server, [])
    results = {}

    def call(peer, key, a, b):
        def done(source, result):
            results[key] = peer.call_variant_finish(result).unpack()
        peer.call_variant_async('py.b', 'add', sum_params(a, b), QOS, 0, None, done)

    call(first, 'first', 1, 2)
    call(second, 'second', 10, 20)
    spin_until(lambda: len(results) == 2, what='both answers')
    assert results == {'first': 3, 'second': 30}, results

    del first
    gc.collect()
    assert call_variant(second, 'py.b', 'add', sum_params(4, 5)).unpack() == 9


def test_handler_raises(bus):
    # the override (elbus/overrides/python/Elbus.py): a handler that raises
    # answers -32603 with the exception's text, not METHOD_NOT_FOUND. On a
    # client of its own: the other tests' peers on py.b, alive until
    # collected, would be offered the calls too.
    raiser = connect(bus.path, 'py.raiser')
    pa = Elbus.RpcPeer.new(bus.a)
    pb = Elbus.RpcPeer.new(raiser)
    add_handler(pb, [])

    def boom(peer, invocation):
        raise ValueError('kaboom')

    def late_boom(peer, invocation):
        invocation.return_variant(GLib.Variant('s', 'answered'))
        raise RuntimeError('after the answer')

    def plain_boom(peer, invocation, extra):
        assert extra == 'extra'
        raise KeyError('kaboom-everywhere')

    def object_boom(obj, invocation):
        assert obj is bus.a
        raise ValueError('kaboom-object')

    pb.connect('handle-call::boom', boom)
    pb.connect_after('handle-call::late_boom', late_boom)
    pb.connect_object('handle-call::object_boom', object_boom, bus.a)
    plain_id = pb.connect('handle-call', plain_boom, 'extra')
    try:
        for method, text in (('boom', 'kaboom'), ('object_boom', 'kaboom-object'),
                             ('anything', 'kaboom-everywhere')):
            e = expect_rpc_error(pa, 'py.raiser', method, Elbus.RpcError.INTERNAL)
            assert e.code == -32603, e.code
            assert text in e.message, e.message
        # handlers that do not raise are untouched; a detailed handler that
        # takes the call stops the emission before the undetailed one
        assert call_variant(pa, 'py.raiser', 'add', sum_params(20, 22)).unpack() == 42
        # the wrapped handler is found by its own function
        pb.disconnect_by_func(plain_boom)
        expect_rpc_error(pa, 'py.raiser', 'anything', Elbus.RpcError.METHOD_NOT_FOUND)
        # answered before raising: the answer stands, no second one
        # (connected after: it runs once the undetailed handler is gone)
        assert call_variant(pa, 'py.raiser', 'late_boom', None).unpack() == 'answered'
        pb.handler_block_by_func(boom)
        expect_rpc_error(pa, 'py.raiser', 'boom', Elbus.RpcError.METHOD_NOT_FOUND)
        pb.handler_unblock_by_func(boom)
        expect_rpc_error(pa, 'py.raiser', 'boom', Elbus.RpcError.INTERNAL)
    finally:
        if pb.handler_is_connected(plain_id):
            pb.disconnect(plain_id)
        raiser.close()


def test_in_process_client(bus):
    inproc = bus.broker.register_client('py.inproc')
    try:
        assert inproc.get_name() == 'py.inproc'
        assert inproc.get_address() is None
        got = []
        inproc.connect('message', lambda c, f: got.append((f.get_sender(), payload_of(f))))
        run(lambda cb: bus.a.send_async('py.inproc', GLib.Bytes.new(b'inside'), QOS, None, cb),
            bus.a.send_finish)
        spin_until(lambda: got, what='the in-process message')
        assert got == [('py.a', b'inside')]

        # RPC from the in-process client to a socket client
        _, pb = make_peers(bus)
        add_handler(pb, [])
        peer = Elbus.RpcPeer.new(inproc)
        assert call_variant(peer, 'py.b', 'add', sum_params(1, 1)).unpack() == 2
    finally:
        inproc.close()
    spin_until(lambda: not bus.broker.has_client('py.inproc'), what='py.inproc gone')


def test_stats(bus):
    stats = bus.broker.get_stats()
    assert isinstance(stats, Elbus.Stats)
    assert stats.r_frames > 0 and stats.w_frames > 0, (stats.r_frames, stats.w_frames)
    found, client_stats, queue_len = bus.broker.get_client_stats('py.a')
    assert found and client_stats.r_frames > 0 and queue_len >= 0


def test_connect_sync_to_elbusd(bus):
    elbusd = os.environ.get('ELBUSD')
    if not elbusd:
        return 'SKIP ELBUSD is not set'
    path = os.path.join(bus.dir, 'elbusd.sock')
    proc = subprocess.Popen([elbusd, '-B', path])
    try:
        deadline = time.monotonic() + TIMEOUT
        client = None
        while client is None:
            try:
                client = Elbus.Client.new_sync(path, 'py.sync', None)
            except GLib.Error:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.02)
        other = Elbus.Client.new_sync(path, 'py.sync2', None)
        got = []
        other.connect('message', lambda c, f: got.append(payload_of(f)))
        assert client.send_sync('py.sync2', GLib.Bytes.new(b'sync'), QOS, None)
        spin_until(lambda: got, what='the message through elbusd')
        assert got == [b'sync']
        client.close()
        other.close()
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)


def test_client_policy(bus):
    # a security policy entry on its own (the broker takes copies of them)
    op = Elbus.PolicyOp
    policy = Elbus.ClientPolicy.new()
    assert all(policy.allows(o, 'any.thing') for o in
               (op.MESSAGE, op.BROADCAST, op.PUBLISH, op.SUBSCRIBE))
    assert not policy.get_monitor() and not policy.props.monitor

    policy.allow(op.PUBLISH, 'sensors/#')
    assert policy.allows(op.PUBLISH, 'sensors/room/t1')
    assert not policy.allows(op.PUBLISH, 'sensors')
    policy.allow(op.BROADCAST, 'py.*')
    assert policy.allows(op.BROADCAST, 'py.?')      # the mask, as a string
    assert not policy.allows(op.BROADCAST, '*')
    policy.deny(op.SUBSCRIBE)
    assert not policy.allows(op.SUBSCRIBE, '#')
    assert policy.allows(op.MESSAGE, 'py.b')        # not restricted

    assert policy.add_network('10.0.0.0/8')
    assert policy.add_network('::1')
    address = Gio.InetAddress.new_from_string
    assert policy.allows_address(address('10.1.2.3'))
    assert policy.allows_address(address('::ffff:10.1.2.3'))
    assert policy.allows_address(address('::1'))
    assert not policy.allows_address(address('192.168.0.1'))
    try:
        policy.add_network('10.0.0.0/99')
    except GLib.Error as e:
        assert e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.INVALID_ARGUMENT), e
        assert '10.0.0.0/99' in e.message, e.message
    else:
        raise AssertionError('a bad network was accepted')

    policy.add_uid(1000)
    assert policy.allows_credentials(1000, -1)
    assert not policy.allows_credentials(-1, -1)

    copy = policy.copy()
    policy.allow(op.SUBSCRIBE, 'x/#')
    policy.props.monitor = True
    assert policy.allows(op.SUBSCRIBE, 'x/y') and policy.get_monitor()
    assert not copy.allows(op.SUBSCRIBE, 'x/y') and not copy.get_monitor()
    assert copy.allows(op.PUBLISH, 'sensors/t1')
    assert not copy.allows(op.PUBLISH, 'other')

    assert Elbus.ClientPolicy(monitor=True).get_monitor()


def test_address_rule(bus):
    # docs/protocol.md 1: paths and .sock/.socket/.ipc are UNIX, the rest TCP
    for address in ('/run/elbus.sock', 'relative.sock', 'x.socket', 'x.ipc', '/tmp/x'):
        assert Elbus.address_is_unix(address), address
    for address in ('127.0.0.1:7777', '[::1]:7777', 'localhost:9924'):
        assert not Elbus.address_is_unix(address), address


def test_wrong_arguments(bus):
    # the binding's own errors, not a crash (and never a _sync call here:
    # the embedded broker runs on this thread's main context)
    for bad in (lambda: bus.a.send_async(42, None, QOS, None, None),
                lambda: bus.a.send_async('py.b', 'not bytes', QOS, None, None),
                lambda: bus.a.subscribe_async(42, QOS, None, None),
                lambda: Elbus.RpcPeer.new(bus.broker)):
        try:
            bad()
        except TypeError:
            pass
        else:
            raise AssertionError('a wrong argument type was accepted')


TESTS = [
    test_connect_async,
    test_initable,
    test_message,
    test_message_to_nobody,
    test_broadcast,
    test_subscribe_publish,
    test_rpc_both_ways,
    test_rpc_errors,
    test_two_peers_one_client,
    test_handler_raises,
    test_in_process_client,
    test_stats,
    test_connect_sync_to_elbusd,
    test_client_policy,
    test_address_rule,
    test_wrong_arguments,
]


def main():
    print('1..%d' % len(TESTS))
    failed = 0
    bus = Bus()
    try:
        for i, test in enumerate(TESTS, 1):
            name = test.__name__
            try:
                skip = test(bus)
            except Exception:
                failed += 1
                print('not ok %d %s' % (i, name))
                for line in traceback.format_exc().splitlines():
                    print('# ' + line)
            else:
                print('ok %d %s%s' % (i, name, ' # ' + skip if skip else ''))
            sys.stdout.flush()
    finally:
        bus.close()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

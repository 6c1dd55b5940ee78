#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the fuzzers' seed corpora: small hand-made inputs in
tests/fuzz/corpus/codec/ (wire frames, docs/protocol.md sections 1-3),
tests/fuzz/corpus/msgpack/ (MessagePack values) and tests/fuzz/corpus/fifo/
(lines of the FIFO control channel, section 6; the first byte also picks
the fuzzer's chunk size) tests/fuzz/corpus/monitor-event/ (elbus-monitor's events,
section 9) and tests/fuzz/corpus/broker/ (scripts for
fuzz-broker.c: a flags byte, then opcode bytes, each op + 16 * connection,
and their arguments). Run it from anywhere; it rewrites the files next
to it. The outputs are committed."""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def client(op_id, op, qos, body):
    return struct.pack('<IBI', op_id, (qos << 6) | op, len(body)) + body


def broker(kind, body, realtime=0):
    return struct.pack('<BIB', kind, len(body), realtime) + body


def ack(op_id, result):
    return struct.pack('<BIB', 0xFE, op_id, result)


def name(n):
    b = n.encode()
    return struct.pack('<H', len(b)) + b


CODEC = {
    'greeting': bytes([0xEB, 0x01, 0x00]),
    'handshake-name': name('test.client'),
    'handshake-secondary': name('app%%worker1'),
    'client-ping': struct.pack('<IBI', 0, 0, 0),
    'client-publish': client(1, 0x01, 1, b'sensors/temp\x00' + b'\x81\xa1v\x15'),
    'client-subscribe': client(2, 0x02, 1, b'sensors/#\x00alarms/+/high\x00*'),
    'client-unsubscribe': client(3, 0x03, 0, b'sensors/#'),
    'client-message': client(4, 0x12, 3, b'target.name\x00hello'),
    'client-broadcast': client(5, 0x13, 1, b'group.*\x00hi'),
    'client-nop-body': client(6, 0x00, 2, b'ignored\x00body'),
    'client-stream': (client(7, 0x02, 1, b'a/b\x00c/#')
                      + client(8, 0x12, 1, b'x\x00payload')
                      + struct.pack('<IBI', 0, 0, 0)),
    'broker-ping': bytes(6),
    'broker-ack': ack(42, 0x01),
    'broker-message': broker(0x12, b'sender\x00data', 0),
    'broker-broadcast': broker(0x13, b'sender\x00\x92\x01\x02', 1),
    'broker-publish': broker(0x01, b'sender\x00topic/a\x00\xc0', 0),
    'broker-stream': ack(1, 0x01) + broker(0x12, b's\x00p') + bytes(6),
}


def mp_str(s):
    b = s.encode()
    assert len(b) < 32
    return bytes([0xA0 | len(b)]) + b


MSGPACK = {
    'nil': b'\xc0',
    'true': b'\xc3',
    'false': b'\xc2',
    'fixint': b'\x2a',
    'negint': b'\xf0',
    'ints': (b'\x96' + b'\xcc\xff' + b'\xcd\x01\x00' + b'\xd0\x80'
             + b'\xd2\x80\x00\x00\x00' + b'\xcf' + b'\xff' * 8
             + b'\xd3\x80' + b'\x00' * 7),
    'floats': b'\x92\xca\x3f\xc0\x00\x00\xcb\x40\x09\x21\xfb\x54\x44\x2d\x18',
    'str': mp_str('hello, elbus'),
    'str8': b'\xd9\x05\xc3\xa9t\xc3\xa9',
    'bin': b'\xc4\x04\x00\x01\xfe\xff',
    'array': b'\x93\x01' + mp_str('two') + b'\xc0',
    'map-str': b'\x82' + mp_str('ok') + b'\xc3' + mp_str('n') + b'\x07',
    'map-int-keys': b'\x82\x01' + mp_str('a') + b'\xff' + mp_str('b'),
    'map-mixed-keys': b'\x82\x01\xc0' + mp_str('k') + b'\x90',
    'nested': b'\x81' + mp_str('list') + b'\x92\x91\x80\x81\xa1x\xc4\x00',
    'ext': b'\xd4\x01\x00',
}

FIFO = {
    'message': b'sensors.a hello text\n',
    'message-empty': b'sensors.a \n',
    'broadcast': b'sensors.* all of you\n',
    'publish': b'=plant/1/temp 21.5\n',
    'notify': b'ui.main .refresh\n',
    'call0': b'plant.ctl :set on=true level=3 ratio=0.5 name=x\n',
    'call0-bare': b'plant.ctl :stop\n',
    'several': b'a one\n\n=t/x two\nb .three\nc :m k=v\n',
    'no-method': b'plant.ctl :\n',
    'no-key': b'plant.ctl :set on\n',
    'no-topic': b'= text\n',
    'no-target': b' text\n',
    'no-text': b'sensors.a\n',
    'not-utf8': b'sensors.a \xff\xfe\n',
    'nul': b'sensors.a a\x00b\n',
    'overlong': b'\x00' + b'x' * 300 + b'\nsensors.a after\n',
}


def mp_uint(n):
    return bytes([n]) if n < 128 else b'\xcf' + struct.pack('>Q', n)


def event(kind, sender, dest=None, payload=None, masks=None, size=None):
    """A monitor event map (docs/protocol.md 9): t k s d q n r l p."""
    members = [(b't', mp_uint(1733300000000000000)), (b'k', mp_str(kind)),
               (b's', mp_str(sender))]
    if masks is not None:
        members.append((b'd', bytes([0x90 | len(masks)]) + b''.join(mp_str(m) for m in masks)))
    elif dest is not None:
        members.append((b'd', mp_str(dest)))
    else:
        members.append((b'd', b'\xc0'))
    members += [(b'q', b'\x01'), (b'n', b'\x01'), (b'r', b'\x01')]
    if payload is not None:
        members.append((b'l', mp_uint(size if size is not None else len(payload))))
        members.append((b'p', b'\xc4' + bytes([len(payload)]) + payload))
    return bytes([0x80 | len(members)]) + b''.join(b'\xa1' + k + v for k, v in members)


MONITOR_EVENT = {
    'message': event('message', 'a.b', 'c.d', b'hello'),
    'rpc-call': event('message', 'a', '.broker', b'\x01\x07\x00\x00\x00test\x00\x80'),
    'rpc-error': event('message', '.broker', 'a', b'\x12\x07\x00\x00\x00\x87\x83\xc0'),
    'broadcast': event('broadcast', 'a', 's.*', b'\x92\x01\x02'),
    'publish-truncated': event('publish', 'a', 'x/y', b'abcd', size=4096),
    'subscribe': event('subscribe', 'a', masks=['a/#', '+/b']),
    'reg': event('reg', 'a.b'),
    'unknown-kind': event('nope', 'a'),
}

# fuzz-broker.c's opcodes; the connection is added as 16 * conn
RAW, HELLO, MESSAGE, BROADCAST, PUBLISH, SUB, UNSUB, CALL, RPC, CLOSE, \
    TOGGLE, ITERATE, PING, FLOOD, SHUTDOWN, PARTIAL = range(16)


def on(conn, op):
    return bytes([op + 16 * conn])


def hello(conn, name_index):
    return on(conn, HELLO) + bytes([name_index])


BROKER = {
    # a, a.b and the secondary a%%1
    'register': b'\x00' + hello(0, 0) + hello(1, 1) + hello(2, 4),
    # a.b subscribes to # and a/+; a publishes xyz on a/b with an ack
    'pubsub': (b'\x00' + hello(0, 0) + hello(1, 1)
               + on(1, SUB) + b'\x01\x01\x00\x02'
               + on(0, PUBLISH) + b'\x01\x01\x03xyz' + on(0, ITERATE) + b'\x04'
               + on(1, UNSUB) + b'\x00\x01\x00'),
    'broadcast': (b'\x00' + hello(0, 0) + hello(1, 1) + hello(2, 2)
                  + on(0, BROADCAST) + b'\x00\x01\x02hi'
                  + on(1, BROADCAST) + b'\x02\x00\x00'),
    'message': (b'\x00' + hello(0, 0) + hello(1, 1)
                + on(0, MESSAGE) + b'\x02\x03\x01!' + on(1, PING)),
    # m monitors messages and publications, a talks to a.b
    'monitor': (b'\x00' + hello(0, 10) + on(0, CALL) + b'\x05\x01\x01'
                + hello(1, 0) + hello(2, 1)
                + on(1, MESSAGE) + b'\x02\x01\x02ab'
                + on(1, PUBLISH) + b'\x01\x00\x00'
                + on(0, CALL) + b'\x06\x00\x01'),
    'calls': (b'\x00' + hello(0, 0)
              + b''.join(on(0, CALL) + bytes([m, 0, 1]) for m in range(10))
              + on(0, RPC) + b'\x01\x02\x02\x00\x00'),
    # a.b stops reading and a floods it: a slow consumer, dropped
    'slow': (b'\x01' + hello(0, 0) + hello(1, 1) + on(1, TOGGLE)
             + on(1, SUB) + b'\x00\x00\x00'
             + on(0, FLOOD) + b'\x3f' + on(0, ITERATE) + b'\x0f'),
    'policy': (b'\x04' + hello(0, 0) + hello(1, 3) + hello(2, 10)
               + on(0, PUBLISH) + b'\x01\x01\x00' + on(0, SUB) + b'\x01\x01\x01\x04'
               + on(1, BROADCAST) + b'\x00\x01\x00' + on(2, CALL) + b'\x05\x00\x01'),
    'limits': (b'\x3e' + hello(0, 0) + on(0, SUB) + b'\x03\x01\x00\x01\x02\x03'
               + on(0, MESSAGE) + b'\x00\x01\x3f' + b'x' * 63),
    # cut short: a frame's header and half its body, then closed
    'cut': (b'\x00' + hello(0, 0) + hello(1, 4) + on(0, PARTIAL) + b'\x00\x0c'
            + on(0, CLOSE) + on(1, SHUTDOWN) + on(0, RAW) + b'\x03\xeb\x01\x00'),
}


def write(kind, seeds):
    d = os.path.join(HERE, 'corpus', kind)
    os.makedirs(d, exist_ok=True)
    for n, data in seeds.items():
        with open(os.path.join(d, n), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    write('codec', CODEC)
    write('msgpack', MSGPACK)
    write('fifo', FIFO)
    write('broker', BROKER)
    write('monitor-event', MONITOR_EVENT)

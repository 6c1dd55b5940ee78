#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A tiny elbus client that speaks the wire protocol by hand.

Standard library only. It connects to a broker, registers, subscribes to a
topic, publishes on it, sends a one-to-one message and a broadcast to
itself, and prints every frame the broker sends back. It exits 0 when all
of them came back as expected.

    python3 docs/examples/raw-client.py /tmp/elbus.sock
    python3 docs/examples/raw-client.py 127.0.0.1:7777

Frame layouts are those of the protocol page, sections 1 to 3.
"""

import argparse
import os
import socket
import struct
import sys
import time

GREETING = b"\xeb\x01\x00"  # 0xEB, then u16-LE protocol version 1
RESPONSE_OK = 0x01

OP_PUBLISH = 0x01
OP_SUBSCRIBE = 0x02
OP_MESSAGE = 0x12
OP_BROADCAST = 0x13
QOS_PROCESSED = 1  # ask for an ack

KIND_PING = 0x00
KIND_PUBLICATION = 0x01
KIND_MESSAGE = 0x12
KIND_BROADCAST = 0x13
KIND_ACK = 0xFE

RESULTS = {
    0x01: "OK",
    0x71: "not registered",
    0x72: "data",
    0x73: "io",
    0x74: "other",
    0x75: "not supported",
    0x76: "busy",
    0x77: "not delivered",
    0x78: "timeout",
    0x79: "access denied",
}


def is_unix_address(address):
    """The address rule of the protocol, section 1."""
    return address.startswith("/") or address.endswith((".sock", ".socket", ".ipc"))


def connect(address, timeout):
    if is_unix_address(address):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    else:
        host, _, port = address.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def handshake(sock, name):
    greeting = read_exact(sock, 3)
    if greeting != GREETING:
        raise ConnectionError("unexpected greeting %s" % greeting.hex(" "))
    sock.sendall(greeting)
    answer = read_exact(sock, 1)[0]
    if answer != RESPONSE_OK:
        raise ConnectionError("protocol refused: 0x%02x" % answer)
    encoded = name.encode()
    sock.sendall(struct.pack("<H", len(encoded)) + encoded)
    answer = read_exact(sock, 1)[0]
    if answer != RESPONSE_OK:
        raise ConnectionError(
            "registration refused: 0x%02x (%s)" % (answer, RESULTS.get(answer, "?"))
        )


def frame(op_id, op, qos, body):
    """A client-to-broker frame: u32 op id, flags (op | qos << 6), u32 length."""
    return struct.pack("<IBI", op_id, op | (qos << 6), len(body)) + body


def read_frame(sock):
    """A broker-to-client frame, decoded to a dict."""
    kind, length, last = struct.unpack("<BIB", read_exact(sock, 6))
    if kind == KIND_PING:
        return {"kind": "ping"}
    if kind == KIND_ACK:
        # bytes 1-4 are the op id, byte 5 the result; nothing follows
        return {"kind": "ack", "op_id": length, "result": last}
    body = read_exact(sock, length)
    sender, _, rest = body.partition(b"\0")
    decoded = {"sender": sender.decode(), "realtime": bool(last)}
    if kind == KIND_PUBLICATION:
        topic, _, payload = rest.partition(b"\0")
        decoded.update(kind="publication", topic=topic.decode(), payload=payload)
    elif kind in (KIND_MESSAGE, KIND_BROADCAST):
        decoded.update(kind="message" if kind == KIND_MESSAGE else "broadcast", payload=rest)
    else:
        raise ConnectionError("unknown frame kind 0x%02x" % kind)
    return decoded


def describe(decoded):
    kind = decoded["kind"]
    if kind == "ack":
        result = decoded["result"]
        return "ack for op %d: %s (0x%02x)" % (
            decoded["op_id"], RESULTS.get(result, "?"), result)
    if kind == "publication":
        return "publication from %s on %s: %r" % (
            decoded["sender"], decoded["topic"], decoded["payload"])
    return "%s from %s: %r" % (kind, decoded["sender"], decoded["payload"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="broker address: a UNIX socket path or HOST:PORT")
    parser.add_argument("--name", default="raw.client.%d" % os.getpid(),
                        help="client name to register (default: raw.client.PID)")
    parser.add_argument("--topic", default="raw/example", help="topic to use")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    args = parser.parse_args()

    try:
        sock = connect(args.address, args.timeout)
        handshake(sock, args.name)
    except (OSError, ConnectionError) as e:
        print("cannot connect to %s: %s" % (args.address, e), file=sys.stderr)
        return 1
    print("registered as %s on %s" % (args.name, args.address))

    name = args.name.encode()
    topic = args.topic.encode()
    requests = [
        ("subscribe to %s" % args.topic, OP_SUBSCRIBE, topic, None),
        ("publish on %s" % args.topic, OP_PUBLISH, topic + b"\0" + b"hello, topic",
         ("publication", b"hello, topic")),
        ("message to myself", OP_MESSAGE, name + b"\0" + b"hello, me",
         ("message", b"hello, me")),
        ("broadcast to %s" % args.name, OP_BROADCAST, name + b"\0" + b"hello, all",
         ("broadcast", b"hello, all")),
    ]

    state = {"acks": set(), "frames": [], "failed": False}
    deadline = time.monotonic() + args.timeout

    def receive_one():
        """Reads frames until one that is not a ping, and accounts for it."""
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            decoded = read_frame(sock)
            if decoded["kind"] != "ping":
                break
        print("<- " + describe(decoded))
        if decoded["kind"] == "ack":
            state["acks"].discard(decoded["op_id"])
            state["failed"] |= decoded["result"] != RESPONSE_OK
        else:
            key = (decoded["kind"], decoded["payload"])
            if key in state["frames"] and decoded["sender"] == args.name:
                state["frames"].remove(key)

    try:
        for op_id, (what, op, body, expect) in enumerate(requests, start=1):
            print("-> op %d: %s" % (op_id, what))
            sock.sendall(frame(op_id, op, QOS_PROCESSED, body))
            state["acks"].add(op_id)
            if expect is not None:
                state["frames"].append(expect)
            # the subscription must be in place before publishing to it
            while op == OP_SUBSCRIBE and op_id in state["acks"]:
                receive_one()
        while state["acks"] or state["frames"]:
            receive_one()
    except socket.timeout:
        print("timed out waiting for %d ack(s) and %d frame(s)"
              % (len(state["acks"]), len(state["frames"])), file=sys.stderr)
        state["failed"] = True
    except (OSError, ConnectionError) as e:
        print("connection lost: %s" % e, file=sys.stderr)
        state["failed"] = True
    finally:
        sock.close()

    failed = state["failed"]
    print("all frames came back" if not failed else "FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

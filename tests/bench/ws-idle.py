#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What idle WebSocket clients cost everyone else.

Spawns ELBUSD listening on a UNIX socket and on ws://127.0.0.1:PORT/elbus,
then for each N: opens N WebSocket connections that register and stay idle
(a raw RFC 6455 client in this script, standard library only), runs
`elbus UNIX benchmark` (the rpc.call round trip to .broker, one call at a
time, and send+recv.qos.no) and prints its rates and the broker's CPU time
over that run, then closes the N connections.

    tests/bench/ws-idle.py [BUILD_DIR] [N,N,...] [ITERATIONS]
"""

import base64
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time

build = sys.argv[1] if len(sys.argv) > 1 else "build"
counts = [int(n) for n in (sys.argv[2] if len(sys.argv) > 2 else "0,1000").split(",")]
iters = sys.argv[3] if len(sys.argv) > 3 else "20000"

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


class Ws:
    """Just enough of a WebSocket client: masked binary frames out,
    the elbus bytes of the broker's frames in."""

    def __init__(self, port, name):
        self.sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            ("GET /elbus HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += read_exact(self.sock, 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.decode(errors="replace"))
        self.buf = b""
        greeting = self.read(3)
        self.send(greeting)
        if self.read(1) != b"\x01":
            raise ConnectionError("greeting refused")
        name = name.encode()
        self.send(struct.pack("<H", len(name)) + name)
        if self.read(1) != b"\x01":
            raise ConnectionError("name refused")

    def send(self, data):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes([0x82, 0x80 | len(data)]) + mask + masked)

    def read(self, n):
        while len(self.buf) < n:
            _, b1 = read_exact(self.sock, 2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack(">H", read_exact(self.sock, 2))[0]
            elif length == 127:
                length = struct.unpack(">Q", read_exact(self.sock, 8))[0]
            self.buf += read_exact(self.sock, length)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "elbus.sock")
    port = free_port()
    broker = subprocess.Popen([os.path.join(build, "tools", "elbusd"), "-B", path,
                               "-B", "ws://127.0.0.1:%d/elbus" % port,
                               "--max-clients", "0"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        print("idle ws clients   rpc.call/s   send+recv.qos.no/s   elbusd CPU s")
        for n in counts:
            idle = [Ws(port, "idle.%d" % i) for i in range(n)]
            before = cpu_seconds(broker.pid)
            out = subprocess.run([os.path.join(build, "tools", "elbus"), path, "benchmark",
                                  "-i", iters], capture_output=True, text=True).stdout
            used = cpu_seconds(broker.pid) - before
            rates = dict(re.findall(r"^(\S+)\s+(\d+)", out, re.M))
            print("%15d %12s %20s %14.2f" % (n, rates.get("rpc.call", "?"),
                                             rates.get("send+recv.qos.no", "?"), used))
            for ws in idle:
                ws.sock.close()
    finally:
        broker.terminate()
        broker.wait()

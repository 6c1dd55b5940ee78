#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile inputs against a spawned elbusd, measured (see hostile.sh).

A hostile client sends one frame per input (huge MessagePack counts,
many tiny elements, deep nesting, maps with many keys, long strings, big
frames to `.broker`, to an RPC peer and through a monitor) while a
well-behaved client (the bystander) makes one `.broker test` call at a
time. Per input it prints the broker's RSS peak (sampled from /proc every
few milliseconds) and after a pause, the broker's CPU time while the
input was served (the main thread is the only one that works), the
bystander's worst round trip, and the RSS peak of the client that
received the input (`elbus rpc listen` or `elbus listen`), if any.

Usage: hostile.py ELBUSD ELBUS [MIB] [SETTLE_SECONDS]
"""
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ELBUSD, ELBUS = sys.argv[1], sys.argv[2]
MIB = int(sys.argv[3]) if len(sys.argv) > 3 else 16
SETTLE = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
N = MIB * 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Conn:
    def __init__(self, path, name):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        greeting = self.recv(3)
        self.s.sendall(greeting)
        assert self.recv(1) == b"\x01"
        self.s.sendall(struct.pack("<H", len(name)) + name.encode())
        assert self.recv(1) == b"\x01", "registration refused"
        self.op = 0
        self.call_id = 0

    def recv(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.s.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def frame(self, op, qos, body):
        self.op += 1
        self.s.sendall(struct.pack("<IBI", self.op, op | (qos << 6), len(body)))
        self.s.sendall(body)

    def call(self, target, method, params, qos=2):
        self.call_id += 1
        payload = (b"\x01" + struct.pack("<I", self.call_id) + method.encode() + b"\0"
                   + params)
        self.frame(0x12, qos, target.encode() + b"\0" + payload)
        return self.call_id

    def read_frame(self):
        head = self.recv(6)
        kind, length = head[0], struct.unpack("<I", head[1:5])[0]
        if kind in (0x00, 0xFE):
            return kind, b""
        return kind, self.recv(length)

    def reply(self, call_id):
        """The RPC reply or error to @call_id: (type, code or None)."""
        while True:
            kind, body = self.read_frame()
            if kind != 0x12:
                continue
            payload = body.split(b"\0", 1)[1]
            if payload[0] in (0x11, 0x12) and struct.unpack("<I", payload[1:5])[0] == call_id:
                code = struct.unpack("<h", payload[5:7])[0] if payload[0] == 0x12 else None
                return payload[0], code


class Sampler(threading.Thread):
    """Peak RSS of a set of processes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.pids = {}
        self.peaks = {}
        self.lock = threading.Lock()

    def watch(self, key, pid):
        self.pids[key] = pid

    def reset(self):
        with self.lock:
            self.peaks = {k: rss_kib(p) for k, p in self.pids.items()}

    def run(self):
        while True:
            with self.lock:
                for k, p in self.pids.items():
                    self.peaks[k] = max(self.peaks.get(k, 0), rss_kib(p))
            time.sleep(0.002)


class Bystander:
    """One `.broker test` at a time, in a process of its own (so that the
    hostile client's work does not delay it); the worst round trip since
    reset()."""

    def __init__(self, path):
        self.path = path
        self._worst = multiprocessing.Value("d", 0.0)
        self._reset = multiprocessing.Value("i", 0)
        self.proc = multiprocessing.Process(target=self.run, daemon=True)

    def start(self):
        self.proc.start()

    def reset(self):
        self._reset.value = 1
        while self._reset.value:
            time.sleep(0.001)

    @property
    def worst(self):
        return self._worst.value

    def run(self):
        c = Conn(self.path, "bench.bystander")
        while True:
            if self._reset.value:
                self._worst.value = 0.0
                self._reset.value = 0
            t = time.monotonic()
            call_id = c.call(".broker", "test", b"")
            c.reply(call_id)
            rtt = time.monotonic() - t
            if rtt > self._worst.value:
                self._worst.value = rtt
            time.sleep(0.001)


def drain(conn):
    def loop():
        try:
            while True:
                conn.read_frame()
        except (EOFError, OSError):
            pass
    threading.Thread(target=loop, daemon=True).start()


def be32(n):
    return struct.pack(">I", n)


def main():
    tmp = tempfile.mkdtemp(prefix="elbus-hostile-")
    path = os.path.join(tmp, "bus.sock")
    broker = subprocess.Popen([ELBUSD, "-B", path, "--max-queue-bytes", str(1 << 30)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(path):
            break
        time.sleep(0.02)
    time.sleep(0.2)

    devnull = open(os.devnull, "wb")
    rpc_peer = subprocess.Popen([ELBUS, "-n", "bench.peer", path, "rpc", "listen"],
                                stdout=devnull, stderr=devnull)
    listener = subprocess.Popen([ELBUS, "-n", "bench.listener", path, "listen", "-t", "big"],
                                stdout=devnull, stderr=devnull)
    time.sleep(0.5)

    if os.environ.get("HOSTILE_MONITOR", "1") != "0":
        monitor = Conn(path, "bench.monitor")
        mid = monitor.call(".broker", "monitor.start", b"\x80")
        assert monitor.reply(mid) == (0x11, None)
        drain(monitor)

    sampler = Sampler()
    sampler.watch("broker", broker.pid)
    sampler.watch("peer", rpc_peer.pid)
    sampler.watch("listener", listener.pid)
    sampler.start()
    bystander = Bystander(path)
    bystander.start()
    hostile = Conn(path, "bench.hostile")
    time.sleep(0.5)
    baseline = rss_kib(broker.pid)

    zeros = b"\0" * N
    inputs = [
        # (label, kind, target, method, params)
        ("nothing (the bystander alone, for comparison)", "none", None, None, b""),
        ("array32 of N zeros to .broker test", "call", ".broker", "test",
         b"\xdd" + be32(N) + zeros),
        ("map32 of N/2 keys to .broker test", "call", ".broker", "test",
         b"\xdf" + be32(N // 2) + b"\xa0\x00" * (N // 2)),
        ("N nested arrays to .broker test", "call", ".broker", "test",
         b"\x91" * N + b"\x00"),
        ("str32 of N bytes to .broker test", "call", ".broker", "test",
         b"\xdb" + be32(N) + b"a" * N),
        ("array32 of N zeros to .broker nosuch", "call", ".broker", "nosuch",
         b"\xdd" + be32(N) + zeros),
        ("declared 4G elements, 5 bytes", "call", ".broker", "test",
         b"\xdd\xff\xff\xff\xff"),
        ("array32 of N zeros to monitor.start", "call", ".broker", "monitor.start",
         b"\xdd" + be32(N) + zeros),
        ("bin32 of N bytes to benchmark.test", "call", ".broker", "benchmark.test",
         b"\xc6" + be32(N) + zeros),
        ("array32 of N zeros to an RPC peer", "call", "bench.peer", "any",
         b"\xdd" + be32(N) + zeros),
        ("map32 of N/2 keys to an RPC peer", "call", "bench.peer", "any",
         b"\xdf" + be32(N // 2) + b"\xa0\x00" * (N // 2)),
        ("array32 of N zeros published (listener, monitor)", "publish", "big", None,
         b"\xdd" + be32(N) + zeros),
    ]
    del zeros

    print(f"elbusd: {ELBUSD}")
    print(f"N = {N} ({MIB} MiB frames); broker baseline RSS {baseline / 1024:.1f} MiB")
    print("busy: the broker's CPU time from the input's first byte to its answer, 0.2 s"
          " after; the first row is what the bystander's own calls cost in a second")
    print(f"{'input':50} {'RSS peak':>9} {'RSS after':>9} {'busy':>8} {'ms/MiB':>7}"
          f" {'bystander':>9} {'client peak':>11} {'answer':>8}")
    for label, kind, target, method, params in inputs:
        time.sleep(0.3)
        sampler.reset()
        bystander.reset()
        cpu0 = cpu_s(broker.pid)
        t0 = time.monotonic()
        answer = "-"
        if kind == "none":
            frame_len = 0
            time.sleep(0.8)
        elif kind == "call":
            call_id = hostile.call(target, method, params)
            frame_len = len(params)
            try:
                rtype, code = hostile.reply(call_id)
                answer = "reply" if rtype == 0x11 else str(code)
            except EOFError:
                answer = "closed"
        else:
            hostile.frame(0x01, 3, target.encode() + b"\0" + params)
            frame_len = len(params)
            while hostile.read_frame()[0] != 0xFE:
                pass
            answer = "ack"
        time.sleep(0.2)
        busy = cpu_s(broker.pid) - cpu0
        peaks = dict(sampler.peaks)
        worst = bystander.worst
        time.sleep(SETTLE)
        after = rss_kib(broker.pid)
        client = ""
        if target == "bench.peer":
            client = f"{peaks['peer'] / 1024:.0f} MiB"
        elif kind == "publish":
            client = f"{peaks['listener'] / 1024:.0f} MiB"
        if rpc_peer.poll() is not None or listener.poll() is not None:
            client += " (died)"
        per_mib = f"{busy * 1000 / (frame_len / (1 << 20)):7.1f}" if frame_len >= 1 << 20 else "      -"
        print(f"{label:50} {peaks['broker'] / 1024:7.0f}Mi {after / 1024:7.0f}Mi"
              f" {busy * 1000:6.0f}ms {per_mib}"
              f" {worst * 1000:7.1f}ms {client:>11} {answer:>8}", flush=True)

    bystander.proc.terminate()
    for p in (rpc_peer, listener, broker):
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
    try:
        os.rmdir(tmp)
    except OSError:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Hostile-client benchmark of the safe shape: `mts serve` on its defaults (the nginx edge in
front), probed on loopback as issue "hardening the HTTPS edge" asks. Not part of the test run.

    python3 bench/edge_bench.py [--seconds 30] [--only slow,idle,headers,desync]

Probes (each bounded in time and count; every connection goes to 127.0.0.1, client source
addresses 127.0.0.1 and 127.0.0.2 only):
  slow     1,000 slow-header and 1,000 slow-body connections (a header line / a body byte every
           3 s, re-opened when the edge closes them) for --seconds; meanwhile one legitimate
           service-status every 0.5 s from 127.0.0.1 and one from 127.0.0.2, each on a new
           connection: answered share and p50/p99/max latency.
  idle     5,000 idle TLS connections from 127.0.0.1 (re-opened when closed) for --seconds;
           legitimate requests every 0.5 s from 127.0.0.2.
  headers  16 connections each sending 64 MB of header lines: status answered, bytes sent
           before the rejection, resident memory of every process of the product before and
           after (mts, the nginx master and workers).
  desync   the smuggling probes (GET with a body that is a request, two Content-Lengths,
           Content-Length with Transfer-Encoding, 50 pipelined requests): answers delivered
           to the wrong request.
"""

import argparse
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MTS = os.environ.get("MTS_BIN") or os.path.join(HERE, "..", "build", "bin", "mts")
HOST = "127.0.0.1"


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


CTX = ctx()


def tls_connect(port, source="127.0.0.1", timeout=5):
    raw = socket.create_connection((HOST, port), timeout, source_address=(source, 0))
    try:
        return CTX.wrap_socket(raw)
    except BaseException:
        raw.close()
        raise


def read_response(s, deadline):
    data = b""
    while b"\r\n\r\n" not in data:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    status = int(head.split()[1]) if head.startswith(b"HTTP/1.") else None
    return status, body


def legit_once(port, source):
    t0 = time.monotonic()
    try:
        s = tls_connect(port, source, timeout=5)
        s.sendall(b"GET /MTS/service-status HTTP/1.1\r\nHost: mts\r\nConnection: close\r\n\r\n")
        status, _ = read_response(s, t0 + 5)
        s.close()
    except OSError:
        status = None
    return status == 200, time.monotonic() - t0


class Legit(threading.Thread):
    """One request every 0.5 s from `source` until stopped."""

    def __init__(self, port, source):
        super().__init__(daemon=True)
        self.port, self.source = port, source
        self.results = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.results.append(legit_once(self.port, self.source))
            self.stop.wait(max(0.0, 0.5 - (time.monotonic() - t0)))

    def summary(self):
        lat = sorted(t for ok, t in self.results)
        ok = sum(1 for o, _ in self.results if o)
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
        return ("%s: %d/%d answered (%.1f %%), p50 %.3f s, p99 %.3f s, max %.3f s"
                % (self.source, ok, len(self.results), 100.0 * ok / max(1, len(self.results)),
                   pct(0.5), pct(0.99), lat[-1] if lat else float("nan")))


class Attackers:
    """N connections of one kind kept open (re-opened when the edge closes them), served by
    one selector loop."""

    def __init__(self, port, kinds, source="127.0.0.1"):
        self.port, self.kinds, self.source = port, kinds, source
        self.sel = selectors.DefaultSelector()
        self.opened = self.closed_by_edge = self.refused = 0
        self.conns = {}

    def open_one(self, kind):
        try:
            s = tls_connect(self.port, self.source, timeout=3) if kind != "tcp" else \
                socket.create_connection((HOST, self.port), 3, source_address=(self.source, 0))
        except (OSError, ssl.SSLError):
            self.refused += 1
            return
        self.adopt(s, kind)

    def adopt(self, s, kind):
        s.setblocking(False)
        try:
            if kind == "header":
                s.send(b"GET /MTS/service-status HTTP/1.1\r\nHost: mts\r\n")
            elif kind == "body":
                s.send(b"POST /MTS/test-request HTTP/1.1\r\nHost: mts\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 100000\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass
        self.opened += 1
        self.conns[s] = kind
        self.sel.register(s, selectors.EVENT_READ)

    def open_all(self):
        """Opens every connection, eight handshakes at a time, so that they are all open at
        once well within the edge's header deadline."""
        lock = threading.Lock()
        todo = list(self.kinds)

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    kind = todo.pop()
                try:
                    s = tls_connect(self.port, self.source, timeout=3) if kind != "tcp" else \
                        socket.create_connection((HOST, self.port), 3, source_address=(self.source, 0))
                except (OSError, ssl.SSLError):
                    with lock:
                        self.refused += 1
                    continue
                with lock:
                    self.pending.append((s, kind))

        self.pending = []
        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s, kind in self.pending:
            self.adopt(s, kind)
        self.peak = len(self.conns)
        self.first_wave_seconds = time.monotonic() - t0

    def run(self, seconds, interval=3.0):
        self.open_all()
        deadline = time.monotonic() + seconds
        next_tick = time.monotonic() + interval
        while time.monotonic() < deadline:
            for key, _ in self.sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except ssl.SSLWantReadError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.drop(s, reopen=True)
            if time.monotonic() >= next_tick:
                next_tick += interval
                for s, kind in list(self.conns.items()):
                    try:
                        if kind == "header":
                            s.send(b"X-Slow: 1\r\n")
                        elif kind == "body":
                            s.send(b"{")
                    except (ssl.SSLWantWriteError, BlockingIOError):
                        pass
                    except OSError:
                        self.drop(s, reopen=True)
        for s in list(self.conns):
            self.drop(s, reopen=False)

    def drop(self, s, reopen):
        kind = self.conns.pop(s, None)
        try:
            self.sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        if reopen and kind:
            self.closed_by_edge += 1
            self.open_one(kind)


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(e))
            except OSError:
                pass
    return out


class Product:
    """`mts serve` on its defaults but for the data directory and free ports."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mts-edge-bench-")
        self.port, self.http_port, self.internal = free_port(), free_port(), free_port()
        args = ["--storage.path=" + os.path.join(self.dir, "mts.db"), "--http.port=%d" % self.http_port,
                "--edge.port=%d" % self.port, "--edge.internal_port=%d" % self.internal, "--log.level=warn"]
        self.token = subprocess.run([MTS, "token", "create", "--name", "bench", "--days", "1"] + args,
                                    check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        self.log = open(os.path.join(self.dir, "mts.log"), "w")
        self.proc = subprocess.Popen([MTS, "serve"] + args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not legit_once(self.port, HOST)[0]:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("mts did not start; log in " + self.dir)
            time.sleep(0.1)

    def pids(self):
        masters = children_of(self.proc.pid)
        return [self.proc.pid] + masters + [w for m in masters for w in children_of(m)]

    def rss(self):
        return {pid: rss_kib(pid) for pid in self.pids()}

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def with_legit(product, sources, attack):
    legit = [Legit(product.port, s) for s in sources]
    for l in legit:
        l.start()
    attack()
    for l in legit:
        l.stop.set()
    for l in legit:
        l.join(10)
        print("  legitimate " + l.summary())


def probe_slow(p, seconds):
    print("slow: 1,000 slow-header + 1,000 slow-body connections for %d s" % seconds)
    a = Attackers(p.port, ["header"] * 1000 + ["body"] * 1000)
    with_legit(p, ["127.0.0.1", "127.0.0.2"], lambda: a.run(seconds))
    print("  attackers: %d opened, %d closed by the edge and re-opened, %d refused at connect"
          % (a.opened, a.closed_by_edge, a.refused))


def probe_idle(p, seconds):
    print("idle: 5,000 idle TLS connections from 127.0.0.1 for %d s" % seconds)
    a = Attackers(p.port, ["idle"] * 5000)
    with_legit(p, ["127.0.0.2"], lambda: a.run(seconds))
    print("  attackers: first wave of %d handshakes took %.1f s; %d TLS connections opened in all, %d closed by "
          "the edge and re-opened, %d refused at once (over the per-address cap)"
          % (a.peak, a.first_wave_seconds, a.opened, a.closed_by_edge, a.refused))


def probe_headers(p):
    print("headers: 16 connections x 64 MB of header lines")
    before = p.rss()
    results = []

    def flood():
        sent = 0
        status = None
        try:
            s = tls_connect(p.port, timeout=10)
            s.sendall(b"GET /MTS/service-status HTTP/1.1\r\nHost: mts\r\n")
            chunk = (b"X-Filler: " + b"a" * 88 + b"\r\n") * 640
            while sent < 64 * 1024 * 1024:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        try:
            status, _ = read_response(s, time.monotonic() + 5)
        except (OSError, IndexError, ValueError):
            pass
        results.append((status, sent))

    threads = [threading.Thread(target=flood) for _ in range(16)]
    for t in threads:
        t.start()
    peak = dict(before)
    while any(t.is_alive() for t in threads):
        for pid, kib in p.rss().items():
            peak[pid] = max(peak.get(pid, 0), kib)
        time.sleep(0.05)
    after = p.rss()
    print("  statuses %s; bytes sent before the rejection: max %d"
          % (sorted(set(r[0] for r in results), key=str), max(r[1] for r in results)))
    for pid in sorted(set(before) | set(after)):
        print("  pid %d: RSS %d KiB before, peak %d KiB, %d KiB after (growth %+d KiB)"
              % (pid, before.get(pid, 0), peak.get(pid, 0), after.get(pid, 0),
                 peak.get(pid, 0) - before.get(pid, 0)))
    print("  all processes: peak growth %+d KiB" % (sum(peak.values()) - sum(before.values())))


def probe_desync(p):
    print("desync probes")
    token = p.token
    wrong = 0

    def raw(data, wait=3.0):
        s = tls_connect(p.port)
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                c = s.recv(65536)
            except (socket.timeout, ssl.SSLError):
                break
            if not c:
                break
            out += c
        s.close()
        return out

    auth = "Authorization: Bearer %s\r\n" % token
    smuggled = ("GET /MTS/test-status?testId=999999 HTTP/1.1\r\nHost: mts\r\n%s\r\n" % auth).encode()
    out = raw(("GET /MTS/service-status HTTP/1.1\r\nHost: mts\r\nContent-Length: %d\r\n\r\n" % len(smuggled)).encode()
              + smuggled + b"GET /MTS/service-status HTTP/1.1\r\nHost: mts\r\n\r\n")
    wrong += out.count(b"testId: no such test")
    print("  GET with a request as its body: %d answers, %d for the smuggled request"
          % (out.count(b"HTTP/1.1 "), out.count(b"testId: no such test")))
    for name, head in (("two Content-Lengths", "Content-Length: 2\r\nContent-Length: 40\r\n"),
                       ("Content-Length + Transfer-Encoding", "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n")):
        out = raw(("POST /MTS/test-request HTTP/1.1\r\nHost: mts\r\n%sContent-Type: application/json\r\n\r\n{}"
                   % head).encode() + smuggled)
        wrong += out.count(b"testId: no such test")
        print("  %s: %s" % (name, out.split(b"\r\n", 1)[0].decode()))
    batch = b"GET /MTS/service-status HTTP/1.1\r\nHost: mts\r\n\r\n" * 50
    t0 = time.monotonic()
    out = raw(batch, wait=5)
    print("  50 pipelined requests: %d answers in %.2f s" % (out.count(b"HTTP/1.1 200"), time.monotonic() - t0))
    print("  answers delivered to the wrong request: %d" % wrong)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--only", default="slow,idle,headers,desync")
    args = ap.parse_args()
    p = Product()
    try:
        for name in args.only.split(","):
            if name == "slow":
                probe_slow(p, args.seconds)
            elif name == "idle":
                probe_idle(p, args.seconds)
            elif name == "headers":
                probe_headers(p)
            elif name == "desync":
                probe_desync(p)
            else:
                sys.exit("unknown probe " + name)
    finally:
        p.close()


if __name__ == "__main__":
    main()

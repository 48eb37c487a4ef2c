#!/usr/bin/env python3
"""The server's cost against the length of its queue (issue 14). Python 3 standard library
plus wrk; traffic only to 127.0.0.1; never part of ctest.

  bench/queue_bench.py [--queued 1000000] [--seconds 10] [--connections 64] [--rounds 2]
                       [--batches 100]

One run, two data directories, two servers side by side, so a shared machine's drift hits
both alike:

 - EMPTY: a fresh database. FULL: a database filled with sqlite3 to QUEUED pending tests
   before its server starts (one transaction; half immediate tests to telephone numbers, half
   overnight tests to host:port addresses, each test its own address, the request fields of
   the API's example).
 - Both run `mts serve` with its defaults, the rate limit raised out of the way, no edge, and
   the overnight window set to 30 minutes twelve hours from now (closed for the whole run).
   No modems are configured, so the executor cannot run a telephone-number test: it stays
   queued; the overnight tests wait for the window. Tests that cannot start yet, as in the
   issue.
 - Start-to-serving of each: from the spawn to the first answered test-request (answered
   only once the queue is recovered).
 - The same warm-up on each (200 test-requests, 200 test-status), then its resident memory
   (VmRSS); (FULL - EMPTY) / (difference in queued tests) is the memory per queued test.
 - ROUNDS rounds of wrk (-t2 -c CONNECTIONS -d SECONDS), each target on EMPTY then FULL
   (odd rounds) or FULL then EMPTY (even rounds): test-request (alternating the two kinds
   above), test-status, an unknown URL (404: the floor of the HTTP library), and the unknown
   URL with test-status's Authorization header (the floor for a request of that length).
 - On FULL: batch-request ingest (4 clients, BATCHES batches of 1000, the largest allowed) and
   the slowest batch; test-search counts, first pages and a deep offset.

Prints a table and a JSON report with the ratios (FULL/EMPTY test-request throughput,
test-status/404, test-request/test-status), each within one round and over all rounds. The binary is
build/bin/mts (or $MTS_BIN).
"""

import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from engine_bench import free_port  # bench/: the same loopback port picker

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MTS = os.environ.get("MTS_BIN") or os.path.join(ROOT, "build", "bin", "mts")
HOST = "127.0.0.1"
TARGETS = ("test-request", "test-status", "unknown-url-404", "unknown-url-404-auth")
# name, (server, target) over (server, target)
RATIOS = [
    ("test_request_full_over_empty", ("full", "test-request"), ("empty", "test-request")),
    ("test_status_over_404_empty", ("empty", "test-status"), ("empty", "unknown-url-404")),
    ("test_status_over_404_full", ("full", "test-status"), ("full", "unknown-url-404")),
    ("test_status_over_404_auth_empty", ("empty", "test-status"), ("empty", "unknown-url-404-auth")),
    ("test_status_over_404_auth_full", ("full", "test-status"), ("full", "unknown-url-404-auth")),
    ("test_request_over_test_status_empty", ("empty", "test-request"), ("empty", "test-status")),
    ("test_request_over_test_status_full", ("full", "test-request"), ("full", "test-status")),
]

IMMEDIATE_PHONE = {"requestReference": "BENCH", "meterType": "ELSTERA1700", "remoteAddress": "07777000000",
                   "outstationAddress": "1", "serialNumber": "12345678", "password": "AAAA0000",
                   "surveyDays": 10, "surveyDate": "2019-12-01", "immediate": True}
OVERNIGHT_TCP = dict(IMMEDIATE_PHONE, remoteAddress="10.200.0.1:4059", immediate=False)


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Api:
    def __init__(self, port, token, timeout=60):
        self.port, self.token, self.timeout = port, token, timeout
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.conn = None

    def call(self, method, path, body=None, raw=None):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(HOST, self.port, context=self.ctx, timeout=self.timeout)
        headers = {"Authorization": "Bearer " + self.token}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, "/MTS/" + path, body=data, headers=headers)
            r = self.conn.getresponse()
            payload = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        if r.status != 200:
            raise RuntimeError("%s %s: %d %s" % (method, path, r.status, payload[:200]))
        return json.loads(payload)


class Server:
    def __init__(self, name, window):
        self.name = name
        self.work = tempfile.mkdtemp(prefix="mts-queue-bench-%s." % name)
        self.port = free_port()
        self.db = os.path.join(self.work, "mts.db")
        self.args = ["--storage.path=" + self.db, "--http.port=%d" % self.port,
                     "--rate_limit.requests=1000000", "--rate_limit.window_seconds=1", "--log.level=warn",
                     "--edge.enabled=false", "--scheduler.overnight_window=" + window]
        self.proc = None
        out = subprocess.run([MTS, "token", "create", "--name", "bench", "--days", "1"] + self.args,
                             check=True, capture_output=True, text=True)
        self.token = out.stdout.strip()

    def start(self):
        self.log = open(os.path.join(self.work, "mts.log"), "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([MTS, "serve"] + self.args, stdout=self.log, stderr=self.log)

    def wait_serving(self, limit=120):
        """Seconds from spawn to the first answered test-request."""
        deadline = self.started + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mts exited with %s; see %s" % (self.proc.returncode, self.log.name))
            try:
                Api(self.port, self.token, timeout=limit).call("POST", "test-request", IMMEDIATE_PHONE)
                return time.monotonic() - self.started
            except (OSError, http.client.HTTPException, RuntimeError):
                time.sleep(0.02)
        raise RuntimeError("mts did not serve within %d s" % limit)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def warm_up(port, token):
    api = Api(port, token)
    for i in range(200):
        api.call("POST", "test-request", IMMEDIATE_PHONE if i % 2 else OVERNIGHT_TCP)
    for _ in range(200):
        api.call("GET", "test-status?testId=1")


def parse_ms(text):
    value = float(re.sub(r"[a-z]+$", "", text))
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("s"):
        return value * 1000
    return value


def wrk(seconds, connections, url, script=None, header=None):
    cmd = ["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "--latency"]
    if script:
        cmd += ["-s", script]
    if header:
        cmd += ["-H", header]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": parse_ms(p50), "p99_ms": parse_ms(p99), "max_ms": parse_ms(lat.group(3)),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else ""}


def write_post_script(server):
    script = os.path.join(server.work, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["Authorization"] = "Bearer %s"\n'
                "local bodies = {[[%s]], [[%s]]}\n"
                "local n = 0\n"
                "request = function()\n"
                "  n = n + 1\n"
                "  return wrk.format(nil, nil, nil, bodies[n %% 2 + 1])\n"
                "end\n" % (server.token, json.dumps(IMMEDIATE_PHONE), json.dumps(OVERNIGHT_TCP)))
    return script


def run_target(server, target, seconds, connections):
    base = "https://%s:%d/MTS/" % (HOST, server.port)
    if target == "test-request":
        r = wrk(seconds, connections, base + "test-request", script=write_post_script(server))
    elif target == "test-status":
        r = wrk(seconds, connections, base + "test-status?testId=1", header="Authorization: Bearer " + server.token)
    else:
        # unknown-url-404-auth: with test-status's request headers. cpp-httplib reads a
        # request's header lines one SSL_read per byte, so the bare 404 (no Authorization
        # line) is also a shorter request to read, not only a cheaper handler.
        auth = "Authorization: Bearer " + server.token if target.endswith("-auth") else None
        return wrk(seconds, connections, base + "unknown-url", header=auth)
    if r["non_2xx"]:
        print("bench: %d non-2xx answers to %s on %s" % (r["non_2xx"], target, server.name), file=sys.stderr)
    return r


def pending_count(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM tests WHERE state = 'PENDING'").fetchone()[0]
    finally:
        con.close()


def fill(db, target):
    """Inserts pending tests until `target` are pending; returns how many were inserted."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous=OFF")  # the bench's own setup; the server keeps FULL
    have = con.execute("SELECT COUNT(*) FROM tests WHERE state = 'PENDING'").fetchone()[0]
    need = max(0, target - have)
    now = int(time.time())

    def rows():
        for i in range(need):
            if i % 2 == 0:
                imm, addr = 1, "07%09d" % i
            else:
                imm, addr = 0, "10.%d.%d.%d:4059" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)
            yield (now, "FILL", imm, "ELSTERA1700", addr, "1", "12345678", "AAAA0000", 10, "2019-12-01")

    with con:
        con.executemany("INSERT INTO tests (received_time, request_reference, immediate, meter_type, remote_address, "
                        "outstation_address, serial_number, password, survey_days, survey_date, state, result, "
                        "attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', 'PENDING', 0)", rows())
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return need


def batch_ingest(port, token, batches, clients=4, size=1000):
    body = json.dumps([dict(IMMEDIATE_PHONE, remoteAddress="0888%07d" % i) for i in range(size)]).encode()
    lock = threading.Lock()
    left = [batches]
    slowest = [0.0]
    errors = []

    def client():
        api = Api(port, token, timeout=60)
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t = time.monotonic()
            try:
                api.call("POST", "batch-request", raw=body)
            except Exception as e:  # reported, not fatal
                errors.append(str(e))
            with lock:
                slowest[0] = max(slowest[0], time.monotonic() - t)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    return {"batches": batches, "batch_size": size, "clients": clients, "seconds": round(elapsed, 2),
            "tests_per_s": round(batches * size / elapsed), "slowest_batch_s": round(slowest[0], 3),
            "errors": errors[:3]}


def search_costs(port, token):
    api = Api(port, token)
    frm = (datetime.datetime.utcnow() - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = {}
    for name, query in (("count", "limit=0"), ("first-page", "limit=100"),
                        ("first-page-reverse", "limit=100&reverseOrder=true"),
                        ("pending-count", "limit=0&status=PENDING"),
                        ("offset-500000", "limit=100&offset=500000")):
        best = None
        for _ in range(3):
            t = time.monotonic()
            page = api.call("GET", "test-search?fromTime=%s&%s" % (frm, query))
            ms = (time.monotonic() - t) * 1000
            best = ms if best is None else min(best, ms)
        out[name] = {"ms": round(best, 1), "total": page["totalResultCount"]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queued", type=int, default=1000000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("queue_bench: needs wrk (apt-get install wrk)")

    hour = (datetime.datetime.utcnow().hour + 12) % 24
    window = "%02d:00-%02d:30" % (hour, hour)  # closed for the next 11.5 hours
    report = {"queued_target": a.queued, "connections": a.connections, "seconds": a.seconds, "window": window}
    servers = []
    try:
        empty, full = Server("empty", window), Server("full", window)
        servers = [empty, full]
        t = time.monotonic()
        fill(full.db, a.queued)
        report["fill_s"] = round(time.monotonic() - t, 1)
        for s in servers:
            s.start()
            report["start_to_serving_s_" + s.name] = round(s.wait_serving(), 3)
        for s in servers:
            warm_up(s.port, s.token)
            report["rss_kib_" + s.name] = vm_rss_kib(s.proc.pid)
            report["queued_" + s.name] = pending_count(s.db)
        report["rss_bytes_per_queued_test"] = round(
            (report["rss_kib_full"] - report["rss_kib_empty"]) * 1024 /
            max(1, report["queued_full"] - report["queued_empty"]), 1)
        rounds = []
        for i in range(a.rounds):
            res = {"empty": {}, "full": {}}
            # Odd rounds run FULL first: the server measured second in a target differs from
            # the first by up to 40 % on this machine whichever it is (measured by swapping
            # them), so each ratio is also given as the mean over rounds of both orders.
            order = servers if i % 2 == 0 else list(reversed(servers))
            for target in TARGETS:
                for s in order:
                    res[s.name][target] = run_target(s, target, a.seconds, a.connections)
            rounds.append(res)
        report["rounds"] = rounds
        report["batch_ingest"] = batch_ingest(full.port, full.token, a.batches)
        report["search"] = search_costs(full.port, full.token)
        for s in servers:
            report["rss_end_kib_" + s.name] = vm_rss_kib(s.proc.pid)
            report["queued_end_" + s.name] = pending_count(s.db)
    finally:
        for s in servers:
            s.stop()
            if a.keep:
                print("kept", s.work, file=sys.stderr)
            else:
                shutil.rmtree(s.work, ignore_errors=True)

    print("%-5s %-6s %-16s %10s %8s %8s %8s" % ("round", "queue", "target", "req/s", "p50 ms", "p99 ms", "max ms"))
    report["ratios"] = []
    for i, res in enumerate(report["rounds"], 1):
        for target in TARGETS:
            for name in ("empty", "full"):
                r = res[name][target]
                print("%-5d %-6s %-16s %10.0f %8.2f %8.2f %8.1f" % (i, name, target, r["rps"], r["p50_ms"],
                                                                    r["p99_ms"], r["max_ms"]))
        report["ratios"].append({key: round(res[ns][nt]["rps"] / res[ds][dt]["rps"], 2)
                                 for key, (ns, nt), (ds, dt) in RATIOS})
    # Each ratio over all rounds (req/s summed over the rounds), so over both orders.
    total = lambda server, target: sum(r[server][target]["rps"] for r in report["rounds"])
    report["ratios_all_rounds"] = {key: round(total(ns, nt) / total(ds, dt), 2) for key, (ns, nt), (ds, dt) in RATIOS}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

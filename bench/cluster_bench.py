#!/usr/bin/env python3
"""Collectors benchmark (issue 16): the same IEC62056-21 workload against one node (the head runs
the tests itself) and against a head with N collector processes (cluster.head_runs_tests = false),
in the same run, on this machine. Python 3 standard library only; never part of ctest.

  bench/cluster_bench.py [--collectors 3] [--meters 300] [--tests 3000] [--survey-days 1]
                         [--latency-tests 60] [--keep]

For each setup: a fresh head (temporary database, token), `mts-sim serve` with --meters meters
and --verbose (it logs each session's accept with a millisecond UTC time), and, in the cluster
setup, a cluster CA, certificates and secrets made with `mts cluster`, and N `mts collector`
processes with --meters/N TCP sessions each (the single node gets --meters sessions: the same
capacity in all). Reported per setup:

- throughput: --tests tests submitted as batch-requests of 1000, spread round-robin over the
  meters, until all finished: tests/s, the peak of concurrent sessions (the simulator's counter),
  and the head's CPU seconds per test (utime+stime of /proc/PID/stat; in the cluster setup the
  collectors' CPU is reported apart);
- dispatch latency: then --latency-tests tests, one per meter, submitted in one batch: for
  each, from the head's log line "scheduler: test N started on X" to the simulator's accept of
  that meter's session (both stamped by this machine's clock in milliseconds); min, median,
  95th percentile, max. The driver's first byte leaves at link-up, right after that accept.

Every process is stopped by its PID at the end. Binaries: build/bin/mts and build/bin/mts-sim
(or $MTS_BIN / $MTS_SIM_BIN).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_bench import MTS, MTS_SIM, START_TIMEOUT, Api, cpu_seconds, free_port, free_port_run, \
    request_for, stop_processes  # noqa: E402

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def stamp_of(line):
    m = STAMP.match(line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def run(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60, **kw)


class Setup:
    """A head (and collectors) with a simulator; close() stops them by PID."""

    def __init__(self, work, meters, collectors):
        self.work, self.procs = work, []
        os.makedirs(work)
        first = free_port_run(meters)
        self.sim_log_path = os.path.join(work, "sim.log")
        self.sim_log = open(self.sim_log_path, "w+")
        self.sim = self.spawn([MTS_SIM, "serve", "--type", "IEC62056-21", "--count", str(meters), "--port",
                               str(first), "--seed", "1", "--verbose"], stdout=subprocess.PIPE, stderr=self.sim_log)
        self.meters = [json.loads(self.sim.stdout.readline()) for _ in range(meters)]
        port = free_port()
        common = ["--storage.path=" + os.path.join(work, "data", "mts.db"), "--http.port=%d" % port]
        token = run([MTS, "token", "create", "--name", "bench", "--days", "1"] + common).stdout.strip()
        head = common + ["--edge.enabled=false", "--rate_limit.requests=1000000", "--rate_limit.window_seconds=1",
                         "--scheduler.max_concurrent_tests=%d" % meters]
        self.collectors = []
        if collectors:
            pki = os.path.join(work, "pki")
            run([MTS, "cluster", "ca", "--dir", os.path.join(pki, "ca")])
            entries = []
            for name in ["head"] + ["c%d" % i for i in range(collectors)]:
                run([MTS, "cluster", "node-cert", "--ca-dir", os.path.join(pki, "ca"), "--name", name, "--out",
                     os.path.join(pki, name)])
                if name != "head":
                    entries.append(run([MTS, "cluster", "secret", "--name", name, "--out",
                                        os.path.join(pki, name, "secret")]).stdout.strip())

            def files(name):
                return ["--cluster.ca_file=" + os.path.join(pki, "ca", "cluster-ca.pem"),
                        "--cluster.certificate_file=" + os.path.join(pki, name, name + ".pem"),
                        "--cluster.key_file=" + os.path.join(pki, name, name + ".key")]
            cluster_port = free_port()
            head += files("head") + ["--cluster.port=%d" % cluster_port, "--cluster.address=127.0.0.1",
                                     "--cluster.head_runs_tests=false", "--cluster.collectors=" + ",".join(entries)]
        else:
            head += ["--scheduler.max_tcp_sessions=%d" % meters]
        self.head_log_path = os.path.join(work, "head.log")
        self.head = self.spawn([MTS, "serve"] + head, stdout=open(self.head_log_path, "w"), stderr=subprocess.STDOUT)
        self.api = Api(port, token)
        self.wait(lambda: self.api.call("GET", "service-status", timeout=2), "the head to answer")
        for i in range(collectors):
            name = "c%d" % i
            self.collectors.append(self.spawn(
                [MTS, "collector", "--collector.name=" + name,
                 "--collector.secret_file=" + os.path.join(pki, name, "secret"),
                 "--collector.head=127.0.0.1:%d" % cluster_port,
                 "--collector.max_tcp_sessions=%d" % (meters // collectors)] + files(name),
                stdout=open(os.path.join(work, name + ".log"), "w"), stderr=subprocess.STDOUT))
        if collectors:
            self.wait(lambda: all(c["connected"] for c in self.api.call("GET", "service-status")["collectors"]),
                      "the collectors to join")

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, text=True, **kw)
        self.procs.append(p)
        return p

    def wait(self, check, what):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if check():
                    return
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError("timed out waiting for %s; logs in %s" % (what, self.work))
            time.sleep(0.1)

    def counters(self):
        before = self.read_sim_log().count("\n{")
        self.sim.send_signal(signal.SIGUSR1)
        for _ in range(200):
            lines = [l for l in self.read_sim_log().splitlines() if l.startswith("{")]
            if len(lines) > before:
                return json.loads(lines[-1])
            time.sleep(0.05)
        raise RuntimeError("mts-sim printed no counters")

    def read_sim_log(self):
        self.sim_log.flush()
        with open(self.sim_log_path) as f:
            return f.read()

    def run_batches(self, requests):
        ids = []
        for first in range(0, len(requests), 1000):
            batch = self.api.call("POST", "batch-request", requests[first:first + 1000])["batchId"]
            ids.append(batch)
        for batch in ids:
            while True:
                st = self.api.call("GET", "batch-status?batchId=%d" % batch)
                if st["completedCount"] == st["totalCount"]:
                    break
                time.sleep(0.2)
        return ids

    def close(self):
        stop_processes(self.procs)


def measure(setup, args):
    n = len(setup.meters)
    requests = [request_for(setup.meters[i % n], args.survey_days, "bench-%d" % i) for i in range(args.tests)]
    pids = [setup.head.pid] + [c.pid for c in setup.collectors]
    cpu0 = [cpu_seconds(p) for p in pids]
    t0 = time.monotonic()
    setup.run_batches(requests)
    wall = time.monotonic() - t0
    cpu1 = [cpu_seconds(p) for p in pids]
    counters = setup.counters()
    head_cpu = cpu1[0] - cpu0[0]
    collectors_cpu = sum(cpu1[1:]) - sum(cpu0[1:])

    # Dispatch latency: one test per meter, then the head's start line and the meter's accept.
    meters = setup.meters[:args.latency_tests]
    sim_before = setup.read_sim_log().count("\n")
    batch = setup.run_batches([request_for(m, 0, "latency") for m in meters])[0]
    tests = setup.api.call("GET", "batch-status?batchId=%d" % batch)["status"]
    started = {}
    with open(setup.head_log_path) as f:
        for line in f:
            m = re.search(r"scheduler: test (\d+) started on ", line)
            if m:
                started[int(m.group(1))] = stamp_of(line)
    accepted = {}
    for line in setup.read_sim_log().splitlines()[sim_before:]:
        m = re.search(r"meter \d+ \((\w+)\): session \d+ from ", line)
        if m and m.group(1) not in accepted:
            accepted[m.group(1)] = stamp_of(line)
    latencies = sorted((accepted[m["serialNumber"]] - started[t["testId"]]) * 1000
                       for m, t in zip(meters, tests) if t["testId"] in started and m["serialNumber"] in accepted)
    return {
        "tests": args.tests, "wallSeconds": round(wall, 1), "testsPerSecond": round(args.tests / wall, 1),
        "sessionsPeak": counters["sessionsPeak"],
        # One session per meter at a time, across all nodes: 1 when the rule held.
        "meterSessionsPeakMax": max(m["sessionsPeak"] for m in counters["meters"]),
        "headCpuSeconds": round(head_cpu, 2), "headCpuMsPerTest": round(head_cpu * 1000 / args.tests, 2),
        "collectorsCpuSeconds": round(collectors_cpu, 2),
        "dispatchLatencyMs": {
            "samples": len(latencies), "min": round(latencies[0], 1), "median": round(statistics.median(latencies), 1),
            "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 1), "max": round(latencies[-1], 1),
        } if latencies else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collectors", type=int, default=3)
    ap.add_argument("--meters", type=int, default=300)
    ap.add_argument("--tests", type=int, default=3000)
    ap.add_argument("--survey-days", type=int, default=1)
    ap.add_argument("--latency-tests", type=int, default=60)
    ap.add_argument("--keep", action="store_true", help="keep the logs and databases")
    args = ap.parse_args()
    for b in (MTS, MTS_SIM):
        if not os.access(b, os.X_OK):
            sys.exit("missing %s: build first (see README.md)" % b)
    work = tempfile.mkdtemp(prefix="mts-cluster-bench.")
    report = {"meters": args.meters, "surveyDays": args.survey_days, "collectors": args.collectors}
    try:
        for name, collectors in (("oneNode", 0), ("cluster", args.collectors)):
            setup = Setup(os.path.join(work, name), args.meters, collectors)
            try:
                report[name] = measure(setup, args)
            finally:
                setup.close()
            print(name, json.dumps(report[name]), flush=True)
        report["clusterOverOneNode"] = {
            "testsPerSecond": round(report["cluster"]["testsPerSecond"] / report["oneNode"]["testsPerSecond"], 2),
            "headCpuPerTest": round(report["cluster"]["headCpuMsPerTest"] / report["oneNode"]["headCpuMsPerTest"], 2),
        }
        print(json.dumps(report, indent=1))
    finally:
        if args.keep:
            print("logs kept in", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

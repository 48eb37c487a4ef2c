#!/usr/bin/env python3
"""Test engine benchmarks (issue 3): the real `mts` server running IEC62056-21 tests against
`mts-sim` meters over loopback TCP. Python 3 standard library only; never part of ctest.

  bench/engine_bench.py unthrottled [--meters 1000] [--tests 10000] [--survey-days 10]
      N meters, the tests spread round-robin over them (so at most one test per meter runs at
      a time: the scheduler never runs two tests for one address), all immediate, submitted
      with batch-request (1000 per batch), concurrency limits raised to the meter count.
      Reports tests/s, peak concurrent sessions (the simulator's counter), the server's peak
      threads, open file descriptors and memory (VmHWM), the CPU time of server and simulator
      (to show which one limits), the session durations the simulator measured and the result
      counts.

  bench/engine_bench.py paced [--baud 9600] [--survey-days 10] [--type T] [--meter-types FILE]
                              [--driver-reaction-ms MS]
      One test against one meter that answers at --baud (mts-sim --fault pace_baud=B). The
      simulator counts the bytes both ways by line speed, its reads and its replies; from them
      the physical limit of the session is worked out (10 bits a character, the reaction
      delays the protocol requires of each side) and compared with the session's duration as
      the simulator measured it (accept to close).

Both start a fresh server (temporary data directory, a token from `mts token create`) and a
fresh simulator on free loopback ports, and stop them at the end (by PID). The binaries are
build/bin/mts and build/bin/mts-sim (or $MTS_BIN / $MTS_SIM_BIN).
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MTS = os.environ.get("MTS_BIN") or os.path.join(ROOT, "build", "bin", "mts")
MTS_SIM = os.environ.get("MTS_SIM_BIN") or os.path.join(ROOT, "build", "bin", "mts-sim")
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The driver's defaults (drivers/iec62056_21.hpp iec62056_21_config) and the simulator's
# (sim/iec_meter.hpp iec_meter_config): the waits the protocol requires before each message.
DRIVER_REACTION_S = 0.200  # the simulator identifies as "SIM": third letter upper case
METER_REACTION_S = 0.020
BITS_PER_CHARACTER = 10  # 7E1: start, 7 data, parity, stop

START_TIMEOUT = 30.0
SUBMIT_TIMEOUT = 60.0


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_port_run(count):
    """The first of `count` consecutive ports that are free now (bind-tested with SO_REUSEADDR,
    as the simulator binds), below the ephemeral range so the server's own outgoing
    connections never compete for them."""
    low, high = 20000, 32767
    for _ in range(200):
        first = random.randint(low, high - count)
        socks = []
        try:
            for p in range(first, first + count):
                s = socket.socket()
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((HOST, p))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of %d free ports" % count)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


class Api:
    def __init__(self, port, token):
        self.port, self.token = port, token
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.conn = None

    def call(self, method, path, body=None, timeout=SUBMIT_TIMEOUT):
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(HOST, self.port, context=self.ctx, timeout=timeout)
            headers = {"Authorization": "Bearer " + self.token}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            try:
                self.conn.request(method, "/MTS/" + path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = json.loads(r.read() or b"{}")
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if r.status != 200:
                raise RuntimeError("%s %s: %d %s" % (method, path, r.status, payload))
            return payload
        raise AssertionError("unreachable")


class Sampler(threading.Thread):
    """Samples a process's threads, memory and descriptors every `period` seconds."""

    def __init__(self, pid, period=0.2):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak_threads = self.peak_fds = 0
        self.vm_hwm_kb = self.peak_rss_kb = 0
        self.stop_event = threading.Event()

    def sample(self):
        try:
            st = proc_status(self.pid)
        except OSError:
            return
        self.peak_threads = max(self.peak_threads, int(st["Threads"]))
        self.vm_hwm_kb = max(self.vm_hwm_kb, int(st["VmHWM"].split()[0]))
        self.peak_rss_kb = max(self.peak_rss_kb, int(st["VmRSS"].split()[0]))
        self.peak_fds = max(self.peak_fds, fd_count(self.pid))

    def run(self):
        while not self.stop_event.wait(self.period):
            self.sample()

    def stop(self):
        self.stop_event.set()
        self.join(5)
        self.sample()


def stop_processes(procs):
    """SIGTERM to each (the last started first), then wait; SIGKILL after 30 s."""
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


class Rig:
    """A fresh `mts serve` and `mts-sim serve`, stopped (by PID) on close()."""

    def __init__(self, meters, sim_args, overrides, log_level, meter_type="IEC62056-21", meter_types=None):
        self.work = tempfile.mkdtemp(prefix="mts-engine-bench.")
        self.procs = []
        first = free_port_run(meters)
        self.sim_err = open(os.path.join(self.work, "sim.stderr"), "w+")
        self.sim = subprocess.Popen(
            [MTS_SIM, "serve", "--type", meter_type, "--count", str(meters), "--port", str(first),
             "--seed", "1"] + sim_args + (["--meter-types", meter_types] if meter_types else []),
            stdout=subprocess.PIPE, stderr=self.sim_err, text=True)
        self.procs.append(self.sim)
        self.meters = []
        for _ in range(meters):
            line = self.sim.stdout.readline()
            if not line:
                raise RuntimeError("mts-sim did not start: " + self.sim_log())
            self.meters.append(json.loads(line))

        self.port = free_port()
        common = ["--storage.path=" + os.path.join(self.work, "data", "mts.db"),
                  "--http.port=%d" % self.port]
        # The engine is measured without the edge in front (it does not move meter traffic).
        self.overrides = common + overrides + ["--log.level=" + log_level, "--edge.enabled=false"]
        self.token = subprocess.run([MTS, "token", "create", "--name", "bench", "--days", "1"] + common,
                                    check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        self.server_log = open(os.path.join(self.work, "mts.log"), "w")
        config = ["--config", meter_types] if meter_types else []  # [[meter_type]] tables only
        self.server = subprocess.Popen([MTS, "serve"] + config + self.overrides, stdout=self.server_log,
                                       stderr=subprocess.STDOUT)
        self.procs.append(self.server)
        self.api = Api(self.port, self.token)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.api.call("GET", "service-status", timeout=2)
                break
            except (OSError, RuntimeError, http.client.HTTPException):
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise RuntimeError("mts did not start; log in " + self.server_log.name)
                time.sleep(0.1)

    def sim_log(self):
        self.sim_err.flush()
        self.sim_err.seek(0)
        return self.sim_err.read()

    def sim_counters(self, timeout=10.0):
        """SIGUSR1 makes mts-sim print its counters as one JSON line on stderr."""
        before = self.sim_log().count("\n{")
        self.sim.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [l for l in self.sim_log().splitlines() if l.startswith("{")]
            if len(lines) > before:
                return json.loads(lines[-1])
            time.sleep(0.05)
        raise RuntimeError("mts-sim printed no counters")

    def close(self, keep):
        stop_processes(self.procs)
        if keep:
            print("logs kept in", self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def request_for(meter, survey_days, ref):
    return {"requestReference": ref, "immediate": True, "meterType": meter["meterType"],
            "remoteAddress": meter["remoteAddress"], "outstationAddress": meter["outstationAddress"],
            "serialNumber": meter["serialNumber"], "password": meter["password"],
            "surveyDays": survey_days}


def unthrottled(args):
    n = args.meters
    overrides = ["--scheduler.max_concurrent_tests=%d" % n, "--scheduler.max_tcp_sessions=%d" % n,
                 "--rate_limit.requests=1000000", "--rate_limit.window_seconds=1"] + args.server_arg
    rig = Rig(n, [], overrides, args.log_level, args.type, args.meter_types)
    try:
        server_pid, sim_pid = rig.server.pid, rig.sim.pid
        server_s, sim_s = Sampler(server_pid), Sampler(sim_pid)
        print("server pid %d, simulator pid %d; server threads/fds at rest: %d/%d" % (
            server_pid, sim_pid, int(proc_status(server_pid)["Threads"]), fd_count(server_pid)), flush=True)
        cpu0 = (cpu_seconds(server_pid), cpu_seconds(sim_pid), time.process_time())
        server_s.start()
        sim_s.start()
        t0 = time.monotonic()
        batches = []
        for first in range(0, args.tests, 1000):
            body = [request_for(rig.meters[i % n], args.survey_days, "bench-%d" % i)
                    for i in range(first, min(first + 1000, args.tests))]
            batches.append(rig.api.call("POST", "batch-request", body)["batchId"])
        t_submitted = time.monotonic()
        print("submitted %d tests in %d batches in %.2f s" % (args.tests, len(batches), t_submitted - t0))
        summaries = {}
        deadline = t0 + args.timeout
        pending = list(batches)
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError("not finished after %d s" % args.timeout)
            st = rig.api.call("GET", "batch-status?batchId=%d" % pending[0])
            if st["completedCount"] == st["totalCount"]:
                for t in st["status"]:
                    summaries[t["testId"]] = t["resultSummary"]
                pending.pop(0)
                continue
            time.sleep(0.5)
        t_done = time.monotonic()
        cpu1 = (cpu_seconds(server_pid), cpu_seconds(sim_pid), time.process_time())
        server_s.stop()
        sim_s.stop()
        counters = rig.sim_counters()
        wall = t_done - t0
        durations = sorted(m["lastSessionMs"] for m in counters["meters"] if "lastSessionMs" in m)
        results = {}
        for r in summaries.values():
            key = r if not r.startswith("ERROR") else r[:60]
            results[key] = results.get(key, 0) + 1
        report = {
            "meters": n, "tests": args.tests, "surveyDays": args.survey_days,
            "wallSeconds": round(wall, 1), "testsPerSecond": round(args.tests / wall, 1),
            "simSessionsPeak": counters["sessionsPeak"], "simSessionsTotal": counters["sessionsTotal"],
            "serverThreadsPeak": server_s.peak_threads, "serverFdsPeak": server_s.peak_fds,
            "serverVmHWM_MB": round(server_s.vm_hwm_kb / 1024, 1),
            "simThreadsPeak": sim_s.peak_threads, "simVmHWM_MB": round(sim_s.vm_hwm_kb / 1024, 1),
            "serverCpuSeconds": round(cpu1[0] - cpu0[0], 1), "simCpuSeconds": round(cpu1[1] - cpu0[1], 1),
            "benchClientCpuSeconds": round(cpu1[2] - cpu0[2], 1),
            "serverCpuShareOfOneCore": round((cpu1[0] - cpu0[0]) / wall, 2),
            "simCpuShareOfOneCore": round((cpu1[1] - cpu0[1]) / wall, 2),
            "lastSessionMs": {"min": round(durations[0]), "median": round(statistics.median(durations)),
                              "max": round(durations[-1])} if durations else None,
            "results": results,
        }
        print(json.dumps(report, indent=1))
        return report
    finally:
        rig.close(args.keep)


def paced(args):
    overrides = ["--rate_limit.requests=1000000", "--rate_limit.window_seconds=1"] + args.server_arg
    rig = Rig(1, ["--fault", "pace_baud=%d" % args.baud], overrides, args.log_level, args.type, args.meter_types)
    try:
        meter = rig.meters[0]
        tid = rig.api.call("POST", "test-request", request_for(meter, args.survey_days, "paced"))["testId"]
        deadline = time.monotonic() + args.timeout
        while True:
            st = rig.api.call("GET", "test-status?testId=%d" % tid)
            if st["resultSummary"] != "PENDING":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("test still PENDING after %d s" % args.timeout)
            time.sleep(0.2)
        counters = None
        while time.monotonic() < deadline:  # the meter may see the close a moment later
            counters = rig.sim_counters()["meters"][0]
            if "lastSessionMs" in counters:
                break
            time.sleep(0.2)
        measured = counters["lastSessionMs"] / 1000.0

        def wire(by_baud):
            return sum(int(n) * BITS_PER_CHARACTER / int(baud) for baud, n in by_baud.items())

        wire_to_meter = wire(counters["bytesReceived"])
        wire_from_meter = wire(counters["bytesSent"])
        driver_messages, meter_messages = counters["reads"], counters["replies"]
        delays = driver_messages * args.driver_reaction_ms / 1000.0 + meter_messages * METER_REACTION_S
        limit = wire_to_meter + wire_from_meter + delays
        # TCP hands the driver's bytes to the simulator at once: they cost no line time in this
        # rig, so the measured session can only be compared with the limit without them.
        limit_simulated = limit - wire_to_meter
        report = {
            "meterType": args.type, "baud": args.baud, "surveyDays": args.survey_days, "result": st["resultSummary"],
            "bytesToMeter": counters["bytesReceived"], "bytesFromMeter": counters["bytesSent"],
            "driverMessages": driver_messages, "meterMessages": meter_messages,
            "wireSecondsToMeter": round(wire_to_meter, 3), "wireSecondsFromMeter": round(wire_from_meter, 3),
            "reactionDelaySeconds": round(delays, 3),
            "physicalLimitSeconds": round(limit, 3),
            "simulatedLimitSeconds": round(limit_simulated, 3),
            "measuredSessionSeconds": round(measured, 3),
            "ratio": round(measured / limit_simulated, 4),
            "testStart": st.get("testStartTime"), "connectionStart": st.get("connectionStartTime"),
            "connectionEnd": st.get("connectionEndTime"), "testEnd": st.get("testEndTime"),
        }
        print(json.dumps(report, indent=1))
        return report
    finally:
        rig.close(args.keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    u = sub.add_parser("unthrottled")
    u.add_argument("--meters", type=int, default=1000)
    u.add_argument("--tests", type=int, default=10000)
    u.add_argument("--survey-days", type=int, default=10)
    u.add_argument("--timeout", type=int, default=1800, help="longest wait for all tests, seconds")
    p = sub.add_parser("paced")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--survey-days", type=int, default=10)
    p.add_argument("--timeout", type=int, default=600, help="longest wait for the test, seconds")
    p.add_argument("--driver-reaction-ms", type=float, default=DRIVER_REACTION_S * 1000,
                   help="the driver's pause before each message it sends (IEC and Elster 200; DLMS 0)")
    for s in (u, p):
        s.add_argument("--type", default="IEC62056-21",
                       help="meter type served and tested (IEC62056-21, ELSTERA1700, ELSTERA1140, DLMS, ...)")
        s.add_argument("--meter-types", help="a TOML file of [[meter_type]] tables for both server and simulator "
                                             "(e.g. bench/dlms_types.toml)")
        s.add_argument("--log-level", default="info", help="the server's log.level")
        s.add_argument("--keep", action="store_true", help="keep the logs and the database")
        s.add_argument("--server-arg", action="append", default=[],
                       help="an extra `mts serve` override, e.g. --server-arg=--scheduler.transcript_max_bytes=0")
    args = ap.parse_args()
    for b in (MTS, MTS_SIM):
        if not os.access(b, os.X_OK):
            sys.exit("missing %s: build first (see README.md)" % b)
    (unthrottled if args.mode == "unthrottled" else paced)(args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compact storage and retention (the storage issue). Python 3 standard library; traffic only
to 127.0.0.1; never part of ctest. Every mode starts its own servers and simulators on free
loopback ports with fresh data directories and stops them by PID.

  bench/storage_bench.py size [--tests 100] [--meters 50] [--reference-bin PATH]
      IEC62056-21 tests of 10 survey days against mts-sim, on this build and (with
      --reference-bin, e.g. main's build/bin/mts) on the build before the change, one after the
      other in the same run. Database growth per test: the database file after the server has
      stopped (its WAL checkpointed into it) minus the same database before the tests. Then
      both servers serve their results side by side and test-status of a completed test is
      timed in alternating rounds (sequential requests on one keep-alive connection), so
      latencies are compared within a round.

  bench/storage_bench.py month [--nights 31] [--tests 100] [--retain-days 7] [--transcript-days 3]
      A month of nightly runs with a fake clock: each night the server runs under libfaketime
      (Debian faketime; the wall clock starts at 01:00 UTC of that night, the monotonic clock is
      real, as scripts/run-tests-at-times.sh does) and the simulator with --start-time at the
      same moment; the night's tests run, then the server stops. The retention pass at each
      start-up deletes what has aged past the retention. Reports the database's size after
      every night.

  bench/storage_bench.py purge [--rows 200000] [--step-rows N]
      A database holding ROWS copies of real completed results (taken from a short real run,
      copied with sqlite3), all 500 days old, and a server with retain_completed_days 400: the
      purge pass's steps (the longest step is how long the writer was held at once), its
      duration, and test-request latency while it runs against after it.

  bench/storage_bench.py convert [--rows 10000]
      A database as the build before compact storage left it (schema 4, results as text: the
      same real results, decompressed): start-to-serving of this build on it (the migration),
      the background conversion's duration, and test-request latency while it runs.

Binaries: build/bin/mts and build/bin/mts-sim (or $MTS_BIN / $MTS_SIM_BIN).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_bench import Api, HOST, MTS, MTS_SIM, ROOT, free_port, free_port_run  # noqa: E402

import http.client  # noqa: E402

DAY = 86400
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SHIM = os.path.join(ROOT, "build", "faketime_real_monotonic.so")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Server:
    """`mts serve` on a data directory of its own (kept across restarts), without the edge."""

    def __init__(self, work, name, binary=MTS, overrides=(), env=None):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.db = os.path.join(self.dir, "mts.db")
        self.binary, self.env = binary, env
        self.port = free_port()
        self.base = ["--storage.path=" + self.db, "--http.port=%d" % self.port]
        self.overrides = ["--edge.enabled=false", "--rate_limit.requests=1000000", "--rate_limit.window_seconds=1",
                          "--scheduler.max_concurrent_tests=1000", "--scheduler.max_tcp_sessions=1000"] + list(overrides)
        self.log_path = os.path.join(self.dir, "mts.log")
        self.proc = None
        self.token = subprocess.run([binary, "token", "create", "--name", "bench-%d" % time.time_ns(), "--days",
                                     "3650"] + self.base, check=True, capture_output=True, text=True,
                                    timeout=60, env=env).stdout.strip()
        self.api = None

    def start(self, timeout=600.0):
        self.log_file = open(self.log_path, "a")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "serve"] + self.base + self.overrides, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=self.env)
        self.api = Api(self.port, self.token)
        while True:
            try:
                self.api.call("GET", "service-status", timeout=2)
                return time.monotonic() - t0
            except (OSError, RuntimeError, http.client.HTTPException):
                if time.monotonic() - t0 > timeout or self.proc.poll() is not None:
                    raise RuntimeError("mts did not start; log " + self.log_path)
                time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.proc = None
        self.log_file.close()

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def db_bytes(self):
        """The database's size once checkpointed (the server stopped): a read-only connection
        may have closed last and left the WAL beside it."""
        db = sqlite3.connect(self.db)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return sum(os.path.getsize(p) for p in (self.db, self.db + "-wal") if os.path.exists(p))


class Simulator:
    def __init__(self, count, seed=1, start_time=None):
        port = free_port_run(count)
        args = [MTS_SIM, "serve", "--count", str(count), "--port", str(port), "--seed", str(seed)]
        if start_time:
            args += ["--start-time", start_time]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.meters = [json.loads(self.proc.stdout.readline()) for _ in range(count)]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def request_for(meter, survey_days=10, **changes):
    body = {"immediate": True, "meterType": meter["meterType"], "remoteAddress": meter["remoteAddress"],
            "outstationAddress": meter["outstationAddress"], "serialNumber": meter["serialNumber"],
            "password": meter["password"], "surveyDays": survey_days}
    body.update(changes)
    return body


def run_tests(srv, meters, count, timeout=1800):
    """`count` immediate tests spread over the meters, in batches of 1000; waits for all."""
    batches = []
    for first in range(0, count, 1000):
        body = [request_for(meters[i % len(meters)]) for i in range(first, min(first + 1000, count))]
        batches.append(srv.api.call("POST", "batch-request", body)["batchId"])
    results, deadline = {}, time.monotonic() + timeout
    for b in batches:
        while True:
            st = srv.api.call("GET", "batch-status?batchId=%d" % b)
            if st["completedCount"] == st["totalCount"]:
                for t in st["status"]:
                    results[t["resultSummary"][:40]] = results.get(t["resultSummary"][:40], 0) + 1
                break
            if time.monotonic() > deadline:
                raise RuntimeError("tests not finished after %d s" % timeout)
            time.sleep(0.5)
    return results


def timed(call, n):
    """Latencies in ms of n sequential calls."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms):
    ms = sorted(ms)
    return {"n": len(ms), "mean": round(statistics.mean(ms), 2), "p50": round(ms[len(ms) // 2], 2),
            "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max": round(ms[-1], 2)}


def pending_request():
    # A telephone number without modems: it stays queued and PENDING, so it costs only its write.
    return {"immediate": True, "meterType": "IEC62056-21", "remoteAddress": "+441234567890", "surveyDays": 0}


def pass_line(text):
    m = re.search(r"purge pass: deleted (\d+) completed tests.*?; (\d+) steps \(longest ([\d.]+) ms, ([\d.]+) s in all\); "
                  r"database ([\d.]+) MB \(([\d.]+) MB free(?:, ([\d.]+) MB given back)?\)", text)
    if not m:
        return None
    return {"purgedTests": int(m.group(1)), "steps": int(m.group(2)), "longestStepMs": float(m.group(3)),
            "passSeconds": float(m.group(4)), "databaseMB": float(m.group(5)), "freeMB": float(m.group(6)),
            "givenBackMB": float(m.group(7) or 0)}


# ---------------------------------------------------------------- size

def size(args, work):
    sim = Simulator(args.meters)
    report = {"tests": args.tests, "surveyDays": 10}
    servers = []
    try:
        for name, binary in (("reference", args.reference_bin), ("this", MTS)):
            if not binary:
                continue
            srv = Server(work, name, binary)
            srv.start()
            srv.stop()
            empty = srv.db_bytes()
            srv.start()
            t0 = time.monotonic()
            results = run_tests(srv, sim.meters, args.tests)
            wall = time.monotonic() - t0
            srv.stop()
            full = srv.db_bytes()
            db = sqlite3.connect(srv.db)
            cols = [r[1] for r in db.execute("PRAGMA table_info(tests)")]
            stored = "readings" if "readings" in cols else "readings_json"
            tcol = "transcript" if "transcript" in [r[1] for r in db.execute("PRAGMA table_info(test_transcripts)")] \
                else "transcript_json"
            readings = db.execute("SELECT AVG(LENGTH(%s)) FROM tests" % stored).fetchone()[0]
            transcripts = db.execute("SELECT AVG(LENGTH(%s)) FROM test_transcripts" % tcol).fetchone()[0]
            db.close()
            report[name] = {"results": results, "wallSeconds": round(wall, 1), "emptyBytes": empty, "fullBytes": full,
                            "bytesPerTest": round((full - empty) / args.tests),
                            "storedReadingsBytesAvg": round(readings), "storedTranscriptBytesAvg": round(transcripts)}
            log(name, json.dumps(report[name]))
            servers.append((name, srv))
        # test-status of a completed 10-day test, side by side, alternating which goes first.
        for _, srv in servers:
            srv.start()
        rounds = []
        for r in range(args.rounds):
            row = {}
            for name, srv in (servers if r % 2 == 0 else servers[::-1]):
                api = srv.api
                timed(lambda: api.call("GET", "test-status?testId=1"), 20)  # warm-up
                row[name] = summary(timed(lambda: api.call("GET", "test-status?testId=1"), args.requests))
            if "reference" in row:
                row["ratioMean"] = round(row["this"]["mean"] / row["reference"]["mean"], 3)
                row["ratioP50"] = round(row["this"]["p50"] / row["reference"]["p50"], 3)
            log("round", r + 1, json.dumps(row))
            rounds.append(row)
        report["testStatusRounds"] = rounds
        if len(servers) == 2:
            pooled = {n: statistics.mean(r[n]["mean"] for r in rounds) for n in ("reference", "this")}
            report["testStatusRatio"] = {"pooledMeans": round(pooled["this"] / pooled["reference"], 3),
                                         "medianOfRounds": round(statistics.median(r["ratioMean"] for r in rounds), 3),
                                         "rounds": [r["ratioMean"] for r in rounds]}
        body = servers[-1][1].api
        report["testStatusBodyBytes"] = len(json.dumps(body.call("GET", "test-status?testId=1")))
    finally:
        for _, srv in servers:
            if srv.proc:
                srv.stop()
        sim.stop()
    return report


# ---------------------------------------------------------------- month

def faketime_env(moment):
    if not os.path.exists(FAKETIME_LIB):
        sys.exit("month needs libfaketime: apt-get install faketime")
    if not os.path.exists(SHIM):
        subprocess.run(["g++", "-x", "c", "-shared", "-fPIC", "-O2", "-o", SHIM,
                        os.path.join(ROOT, "scripts", "faketime_real_monotonic.c"), "-ldl"], check=True)
    env = dict(os.environ)
    env.update({"TZ": "UTC", "FAKETIME": moment.strftime("@%Y-%m-%d %H:%M:%S"), "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "LD_PRELOAD": SHIM + ":" + FAKETIME_LIB})
    return env


def month(args, work):
    base = datetime.datetime.now(datetime.timezone.utc).replace(hour=1, minute=0, second=0, microsecond=0) + \
        datetime.timedelta(days=1)
    retention = ["--storage.retain_completed_days=%d" % args.retain_days,
                 "--storage.retain_transcripts_days=%d" % args.transcript_days]
    nights = []
    srv = None
    for night in range(args.nights):
        moment = base + datetime.timedelta(days=night)
        env = faketime_env(moment)
        if srv is None:
            srv = Server(work, "month", overrides=retention, env=env)
        srv.env = env
        sim = Simulator(args.tests, seed=1 + night, start_time=moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
        try:
            srv.start()
            results = run_tests(srv, sim.meters, args.tests)
            status = srv.api.call("GET", "service-status")
            srv.stop()
        finally:
            sim.stop()
        db = sqlite3.connect(srv.db)
        tests, transcripts = (db.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0]
                              for t in ("tests", "test_transcripts"))
        db.close()
        passes = [pass_line(line) for line in srv.log().splitlines() if "purge pass" in line]
        row = {"night": night + 1, "fakeDate": moment.strftime("%Y-%m-%d"), "results": results,
               "dbMB": round(srv.db_bytes() / 1e6, 2), "testsStored": tests, "transcriptsStored": transcripts,
               "purgedAtStart": passes[-1]["purgedTests"] if passes and passes[-1] else None,
               "serverClock": status.get("storage", {}).get("lastPurgeTime")}
        log(json.dumps(row))
        nights.append(row)
    steady = [n["dbMB"] for n in nights[args.retain_days + 1:]]
    return {"nights": nights, "testsPerNight": args.tests, "retainCompletedDays": args.retain_days,
            "retainTranscriptsDays": args.transcript_days,
            "steadyStateMB": {"min": min(steady), "max": max(steady)} if steady else None}


# ---------------------------------------------------------------- purge and convert

def real_results(work, count):
    """A database of `count` real completed 10-day tests (this build: packed)."""
    sim = Simulator(min(count, 100))
    srv = Server(work, "source")
    try:
        srv.start()
        run_tests(srv, sim.meters, count)
        srv.stop()
    finally:
        sim.stop()
    db = sqlite3.connect(srv.db)
    cols = [r[1] for r in db.execute("PRAGMA table_info(tests)") if r[1] not in ("id", "batch_id", "readings_json")]
    rows = db.execute("SELECT %s FROM tests WHERE readings IS NOT NULL" % ", ".join(cols)).fetchall()
    transcripts = [r[0] for r in db.execute("SELECT transcript FROM test_transcripts ORDER BY test_id")]
    db.close()
    return cols, rows, transcripts


def fill(db_path, cols, rows, transcripts, count, age_days, legacy=False):
    """Copies of the real rows, received in id order `age_days` ago; as text when `legacy`."""
    db = sqlite3.connect(db_path)
    now = int(time.time())
    ri, ci, rd = cols.index("received_time"), cols.index("completed_time"), cols.index("readings")
    names = list(cols)
    if legacy:
        names[rd] = "readings_json"
        texts = [zlib.decompress(r[rd][5:]).decode() for r in rows]
        transcripts = [zlib.decompress(t[5:]).decode() for t in transcripts]
    insert = "INSERT INTO tests (%s) VALUES (%s)" % (", ".join(names), ", ".join("?" * len(names)))
    transcript_insert = ("INSERT INTO test_transcripts (test_id, transcript_json) VALUES (?, ?)" if legacy else
                         "INSERT INTO test_transcripts (test_id, transcript_json, transcript) VALUES (?, '', ?)")
    db.execute("BEGIN")
    for i in range(count):
        r = list(rows[i % len(rows)])
        r[ri] = now - age_days * DAY + i // 10
        r[ci] = r[ri] + 10
        if legacy:
            r[rd] = texts[i % len(rows)]
        test_id = db.execute(insert, r).lastrowid
        db.execute(transcript_insert, (test_id, transcripts[i % len(transcripts)]))
        if i % 20000 == 19999:
            db.execute("COMMIT")
            db.execute("BEGIN")
    db.execute("COMMIT")
    db.close()


def step_durations(text):
    """The purge and vacuum steps' durations (ms) from the server's debug lines."""
    out = {"purge": [], "vacuum": [], "conversion": []}
    for line in text.splitlines():
        m = re.search(r"(purge step: .* in|free pages back in|conversion step: .* stored in) ([\d.]+) ms", line)
        if m:
            kind = "purge" if "purge step" in line else "vacuum" if "pages back" in line else "conversion"
            out[kind].append(float(m.group(2)))
    return {k: summary(v) for k, v in out.items() if v}


def latency_while(srv, done, sample=50):
    """test-request latency in ms while done() is false, then the same number after it."""
    api = srv.api
    during = []
    while not done():
        during += timed(lambda: api.call("POST", "test-request", pending_request()), sample)
    after = timed(lambda: api.call("POST", "test-request", pending_request()), max(len(during), sample))
    return {"during": summary(during) if during else None, "after": summary(after)}


def purge(args, work):
    cols, rows, transcripts = real_results(work, args.source_tests)
    overrides = ["--storage.retain_completed_days=400", "--storage.purge_interval_seconds=86400", "--log.level=debug"]
    if args.step_rows:
        overrides.append("--storage.maintenance_step_rows=%d" % args.step_rows)
    srv = Server(work, "purge", overrides=overrides)
    fill(srv.db, cols, rows, transcripts, args.rows, 500)
    before = srv.db_bytes()
    log("filled %d rows: %.1f MB" % (args.rows, before / 1e6))
    srv.start()
    latency = latency_while(srv, lambda: "purge pass" in srv.log())
    srv.stop()
    line = pass_line(srv.log())
    return {"rows": args.rows, "dbMBBefore": round(before / 1e6, 1), "pass": line, "stepMs": step_durations(srv.log()),
            "rowsPerSecond": round(line["purgedTests"] / line["passSeconds"]) if line["passSeconds"] else None,
            "secondsPerMillionRows": round(line["passSeconds"] * 1e6 / args.rows, 1),
            "dbMBAfter": round(srv.db_bytes() / 1e6, 1), "testRequestMs": latency}


def convert(args, work):
    cols, rows, transcripts = real_results(work, args.source_tests)
    srv = Server(work, "convert")
    db = sqlite3.connect(srv.db)  # back to what the build before compact storage created (schema 4)
    db.execute("ALTER TABLE tests DROP COLUMN readings")
    db.execute("ALTER TABLE test_transcripts DROP COLUMN transcript")
    db.execute("DROP TABLE storage_conversion")
    db.execute("DELETE FROM schema_migrations WHERE version = 5")
    db.commit()
    db.execute("PRAGMA auto_vacuum=NONE")
    db.execute("VACUUM")
    db.close()
    fill(srv.db, cols, rows, transcripts, args.rows, 1, legacy=True)
    before = srv.db_bytes()
    log("filled %d legacy rows: %.1f MB" % (args.rows, before / 1e6))
    srv.overrides.append("--log.level=debug")
    startup = srv.start()
    latency = latency_while(srv, lambda: "conversion to the compact encoding complete" in srv.log())
    srv.stop()
    again = srv.start()  # the same database, migrated and converted: start-up without either
    srv.stop()
    m = re.search(r"conversion to the compact encoding complete \(tests \d+ to \d+, (\d+) steps, ([\d.]+) s\)",
                  srv.log())
    seconds = float(m.group(2))
    return {"rows": args.rows, "dbMBBefore": round(before / 1e6, 1), "startToServingSeconds": round(startup, 2),
            "startToServingAfterSeconds": round(again, 2), "stepMs": step_durations(srv.log()),
            "migration": re.search(r"database ready \(schema version \d+[^)]*\)", srv.log()).group(0),
            "conversionSteps": int(m.group(1)), "conversionSeconds": seconds,
            "rowsPerSecond": round(args.rows / seconds), "hoursPerMillionRows": round(seconds * 1e6 / args.rows / 3600, 2),
            "dbMBAfter": round(srv.db_bytes() / 1e6, 1), "testRequestMs": latency}


# Each mode's options: (flag, type, default, help).
MODES = {
    "size": (size, [("--tests", int, 100, None), ("--meters", int, 50, None),
                    ("--reference-bin", str, None, "mts of the build before the change (e.g. main's build/bin/mts)"),
                    ("--rounds", int, 10, None),
                    ("--requests", int, 200, "test-status requests per server and round")]),
    "month": (month, [("--nights", int, 31, None), ("--tests", int, 100, "tests per night (one meter each)"),
                      ("--retain-days", int, 7, None), ("--transcript-days", int, 3, None)]),
    "purge": (purge, [("--rows", int, 200000, None),
                      ("--source-tests", int, 100, "real tests whose results are copied"),
                      ("--step-rows", int, None, "storage.maintenance_step_rows (default: the server's)")]),
    "convert": (convert, [("--rows", int, 10000, None),
                          ("--source-tests", int, 100, "real tests whose results are copied")]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode, (_, options) in MODES.items():
        p = sub.add_parser(mode)
        for flag, kind, default, text in options:
            p.add_argument(flag, type=kind, default=default, help=text)
    ap.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    args = ap.parse_args()
    for b in (MTS, MTS_SIM):
        if not os.access(b, os.X_OK):
            sys.exit("missing %s: build first (see README.md)" % b)
    work = tempfile.mkdtemp(prefix="mts-storage-bench.")
    try:
        report = MODES[args.mode][0](args, work)
        print(json.dumps(report, indent=1))
    finally:
        if args.keep:
            log("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

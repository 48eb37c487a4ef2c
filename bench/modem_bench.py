#!/usr/bin/env python3
"""Dial-up throughput: N overnight IEC62056-21 tests dialled through M simulated modems with a
CONNECT delay of D seconds, against the ideal N x line time / M, where the line time is what
one test occupies a modem when it runs alone (measured first, in the same run).

    bench/modem_bench.py [TESTS=200] [MODEMS=4] [CONNECT_DELAY_S=25]

Uses build/bin/mts and build/bin/mts-sim (the e2e harness); all traffic on 127.0.0.1. The
overnight window is set around the current time so the overnight tests run at once. Prints
one line per figure; see docs/benchmarks.md."""

import datetime
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

import test_modem as tm  # noqa: E402
from harness import parse_utc  # noqa: E402


def window_around_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    start = (now - datetime.timedelta(hours=1)).strftime("%H:%M")
    end = (now + datetime.timedelta(hours=6)).strftime("%H:%M")
    return "%s-%s" % (start, end)


def wait_all(srv, ids, limit):
    deadline = time.monotonic() + limit
    pending = set(ids)
    results = {}
    while pending and time.monotonic() < deadline:
        for test_id in list(pending):
            st = srv.request("GET", "test-status?testId=%d" % test_id).json
            if st["resultSummary"] != "PENDING":
                results[test_id] = st
                pending.discard(test_id)
        time.sleep(0.25)
    if pending:
        raise SystemExit("%d tests still pending after %.0f s" % (len(pending), limit))
    return results


def main():
    tests = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    modems = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 25.0
    sim = tm.SimulatedModem(tests, seed=77, start_time=tm.test_engine.EngineTest.START,
                            connect_delay_ms=int(delay * 1000))
    try:
        pool = [sim.gateway("m%d" % (i + 1)) for i in range(modems)]
        srv = tm.modem_server(pool, overrides=["--scheduler.overnight_window=" + window_around_now(),
                                               "--scheduler.max_concurrent_tests=%d" % max(16, modems * 2),
                                               "--scheduler.test_deadline_seconds=7200"],
                              connect_timeout_seconds=int(delay) + 30, guard_time_ms=1000)
        try:
            # The line time of one test alone (first meter), from test-request to its end.
            t0 = time.monotonic()
            solo = srv.test_request(tm.phone_request(sim.meters[0], sim.modem["numbers"][0]))
            st = wait_all(srv, [solo], 600)[solo]
            line_time = time.monotonic() - t0
            assert st["result"] == "SUCCESS", st
            call_time = (parse_utc(st["connectionEndTime"]) - parse_utc(st["connectionStartTime"])).total_seconds()
            # The batch: every meter, overnight.
            batch = [tm.phone_request(m, sim.modem["numbers"][i], immediate=False) for i, m in enumerate(sim.meters)]
            t0 = time.monotonic()
            r = srv.request("POST", "batch-request", json=batch)
            if r.status != 200:
                raise SystemExit("batch-request failed: %r" % r)
            bid = r.json["batchId"]
            deadline = time.monotonic() + tests * line_time * 2 / modems + 600
            while True:
                b = srv.request("GET", "batch-status?batchId=%d" % bid).json
                if b["completedCount"] == b["totalCount"]:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("batch not done: %d of %d" % (b["completedCount"], b["totalCount"]))
                time.sleep(0.5)
            total = time.monotonic() - t0
            results = wait_all(srv, [x["testId"] for x in b["status"]], 60)
            ok = sum(1 for s in results.values() if s["result"] == "SUCCESS")
            calls = sim.wait_all_hung_up()
            ideal = tests * line_time / modems
            print("tests %d, modems %d, CONNECT delay %.0f s" % (tests, modems, delay))
            print("line time of one test alone: %.1f s (call CONNECT..hang-up %.0f s)" % (line_time, call_time))
            print("batch of %d overnight tests: %.0f s; ideal %d x %.1f / %d = %.0f s; ratio %.3f"
                  % (tests, total, tests, line_time, modems, ideal, total / ideal))
            print("results: %d SUCCESS of %d; modem calls total %d, peak %d, open now %d"
                  % (ok, tests, calls["total"], calls["peak"], calls["now"]))
        finally:
            srv.close()
    finally:
        sim.stop()


if __name__ == "__main__":
    main()

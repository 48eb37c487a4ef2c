"""kill -9 (or SIGTERM) of the server while tests are mid-session, then a restart on the same
database: every test completes exactly once, with the result `mts-sim expect` predicts; the
tests that were running are run again (the simulator sees a second session for their meters),
the others are not."""

import sqlite3
import time
import unittest

from harness import Server, fmt_utc
from test_engine import POLL_LIMIT, START, SimulatedMeters, comparable, predicted, days_before_today, request_for, wait_done

METERS = 4
SLOTS = 2


def rows(db, sql):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


class RecoveryTest(unittest.TestCase):
    def test_kill_9_mid_session_then_restart_completes_every_test_exactly_once(self):
        def kill(srv):
            srv.kill9()
            self.assertEqual(srv.proc.returncode, -9)
        self.interrupt_and_restart(kill, seed=51)

    def test_sigterm_mid_session_then_restart_completes_every_test_exactly_once(self):
        # stop() checks a clean exit (code 0) within its limit while sessions are open.
        self.interrupt_and_restart(lambda srv: srv.stop(), seed=52)

    def interrupt_and_restart(self, interrupt, seed):
        # Paced meters and a one-day survey keep each session several seconds long.
        sim = SimulatedMeters(METERS, seed=seed, start_time=START, faults=["pace_baud=9600"])
        self.addCleanup(sim.stop)
        srv = Server(overrides=["--scheduler.max_concurrent_tests=%d" % SLOTS])
        self.addCleanup(srv.close)
        first_day = days_before_today(3)  # any time and date: see test_engine.START_TIME
        from_time = fmt_utc(time.time() - 60)
        tests = []  # (meter, request, testId)
        for i, meter in enumerate(sim.meters):
            request = request_for(meter, requestReference="recovery-%d" % i, surveyDays=1, surveyDate=first_day)
            tests.append((meter, request, srv.test_request(request)))

        # Kill the server while both slots have a session open at the simulator.
        deadline = time.monotonic() + POLL_LIMIT
        while sim.counters()["sessionsNow"] < SLOTS:
            self.assertLess(time.monotonic(), deadline, "the sessions never ran side by side")
            time.sleep(0.05)
        interrupt(srv)

        # What the database holds at the kill: the interrupted tests are still RUNNING.
        at_kill = dict(rows(srv.db, "SELECT id, state FROM tests"))
        interrupted = {i for i, state in at_kill.items() if state == "RUNNING"}
        self.assertGreaterEqual(len(interrupted), 1, at_kill)
        first_starts = dict(rows(srv.db, "SELECT id, test_start_time FROM tests WHERE state = 'RUNNING'"))
        # The sessions the simulator saw from the killed server, once it has seen them end.
        deadline = time.monotonic() + POLL_LIMIT
        while True:
            before_restart = sim.counters()
            if before_restart["sessionsNow"] == 0:
                break
            self.assertLess(time.monotonic(), deadline, "sessions of the killed server still open")
            time.sleep(0.05)
        sessions_at_kill = [m["sessionsTotal"] for m in before_restart["meters"]]
        # Killed mid-session: a test that had not finished had its session open.
        self.assertTrue(any(sessions_at_kill[i] == 1 and t in interrupted for i, (_, _, t) in enumerate(tests)),
                        (sessions_at_kill, interrupted))

        srv.restart()
        statuses = {test_id: wait_done(srv, test_id) for _, _, test_id in tests}
        page = srv.request("GET", "test-search?fromTime=%s&limit=100" % from_time).json
        srv.stop()
        counters = sim.stop()

        for meter, request, test_id in tests:
            status = statuses[test_id]
            expected = sim.expect(meter, request)
            self.assertEqual(comparable(status), predicted(expected),
                             "test %d" % test_id)
            self.assertEqual(status["result"], "SUCCESS")
            self.assertEqual(status["attempts"], 1)  # the final run connected once
            if test_id in interrupted:
                # The first start survives the crash (the spec: start of the first attempt).
                self.assertEqual(status["testStartTime"], fmt_utc(first_starts[test_id]))

        # Exactly once: one row per test, completed; the interrupted ones were dispatched twice
        # (before and after the kill), the others once.
        stored = rows(srv.db, "SELECT id, state, attempts FROM tests ORDER BY id")
        self.assertEqual([r[0] for r in stored], sorted(t for _, _, t in tests))
        for test_id, state, dispatches in stored:
            self.assertEqual(state, "COMPLETED", test_id)
            self.assertEqual(dispatches, 2 if test_id in interrupted else 1, test_id)
        listed = [r["testId"] for r in page["results"]]
        self.assertEqual(sorted(listed), sorted(t for _, _, t in tests))
        self.assertTrue(all(r["resultSummary"] == "SUCCESS" for r in page["results"]), page)

        # After the restart the simulator saw one more session for every test without a result
        # at the kill (interrupted or still queued), none for the tests already finished.
        for i, ((meter, _, test_id), m) in enumerate(zip(tests, counters["meters"])):
            finished_before = at_kill[test_id] == "COMPLETED"
            self.assertEqual(m["sessionsTotal"], sessions_at_kill[i] + (0 if finished_before else 1),
                             meter["remoteAddress"])
            self.assertEqual(m["sessionsTotal"], 1 if test_id not in interrupted else sessions_at_kill[i] + 1)


if __name__ == "__main__":
    unittest.main()

"""The scheduler seen from outside: a cancelled queued test is never dialled, an immediate test
overtakes queued overnight ones (and a running test is not cancelled), and the capacity limits hold (the simulator counts the
sessions open at once, overall and per meter), with every test completing as `mts-sim expect`
says."""

import unittest

from harness import Server, overnight_window
from harness import wait_until as harness_wait_until
from test_engine import POLL_LIMIT, START, SimulatedMeters, comparable, predicted, request_for, wait_done



def no_survey(meter, **changes):
    """A short test: serial number, clock, status and registers, no load profile."""
    return request_for(meter, surveyDays=0, surveyDate=None, **changes)


def wait_until(what, condition, limit=POLL_LIMIT):
    return harness_wait_until(what, condition, limit)


def started(srv, test_id):
    """The test's status once it has started, else None."""
    status = srv.request("GET", "test-status?testId=%d" % test_id).json
    return status if "testStartTime" in status else None


class SchedulingTest(unittest.TestCase):
    def assert_as_expected(self, sim, meter, request, status):
        expected = sim.expect(meter, request)
        self.assertEqual(comparable(status), predicted(expected),
                         "test %d against %s" % (status["testId"], meter["remoteAddress"]))
        self.assertEqual(status["result"], "SUCCESS")

    def test_a_queued_overnight_test_cancelled_before_its_window_is_never_dialled(self):
        sim = SimulatedMeters(2, seed=41, start_time=START)
        self.addCleanup(sim.stop)
        # The window opens in two hours: overnight tests wait.
        with Server(overrides=["--scheduler.overnight_window=" + overnight_window(120, 180)]) as srv:
            waiting, other = sim.meters
            queued = srv.test_request(no_survey(waiting, immediate=False))
            # The engine is at work meanwhile: an immediate test runs to its end.
            request = no_survey(other)
            self.assert_as_expected(sim, other, request, wait_done(srv, srv.test_request(request)))
            st = srv.request("GET", "test-status?testId=%d" % queued).json
            self.assertEqual(st["resultSummary"], "PENDING")
            self.assertNotIn("testStartTime", st)

            r = srv.request("DELETE", "test-cancel", json={"testId": queued})
            self.assertEqual((r.status, r.json), (200, {"testId": queued}))
            r = srv.request("GET", "test-status?testId=%d" % queued, check=False)
            self.assertEqual(r.status, 400)
            self.assertEqual(r.json["details"], ["testId: no such test"])
            # Cancelling it again: it is unknown now.
            r = srv.request("DELETE", "test-cancel", json={"testId": queued}, check=False)
            self.assertEqual(r.status, 400)
            srv.stop()
        counters = sim.stop()
        self.assertEqual([m["sessionsTotal"] for m in counters["meters"]], [0, 1])

    def test_an_immediate_test_starts_before_queued_overnight_tests(self):
        sim = SimulatedMeters(4, seed=42, start_time=START, faults=["pace_baud=9600"])
        self.addCleanup(sim.stop)
        overrides = ["--scheduler.overnight_window=" + overnight_window(-60, 60),  # open now
                     "--scheduler.max_concurrent_tests=1"]
        with Server(overrides=overrides) as srv:
            # The first overnight test reads a day of load profile too: its session is the
            # longest, so the immediate test surely arrives while it runs.
            night = [(m, no_survey(m, immediate=False)) for m in sim.meters[:3]]
            night[0] = (sim.meters[0], request_for(sim.meters[0], immediate=False, surveyDays=1))
            night_ids = [srv.test_request(rq) for _, rq in night]
            # The first overnight test takes the only slot; the other two queue.
            running = wait_until("the first overnight test starts", lambda: started(srv, night_ids[0]))
            self.assertEqual(running["resultSummary"], "PENDING")  # running tests report PENDING
            self.assertNotIn("attempts", running)  # known once the test has finished
            # A running test cannot be cancelled: 200, and it runs to its end (checked below).
            r = srv.request("DELETE", "test-cancel", json={"testId": night_ids[0]})
            self.assertEqual((r.status, r.json), (200, {"testId": night_ids[0]}))
            now_meter = sim.meters[3]
            now_request = no_survey(now_meter)
            now_id = srv.test_request(now_request)
            first = wait_done(srv, night_ids[0])
            self.assertNotEqual(first["resultSummary"], "PENDING")
            now_status = wait_done(srv, now_id)
            later = [wait_done(srv, i) for i in night_ids[1:]]

            for (meter, request), status in zip(night, [first] + later):
                self.assert_as_expected(sim, meter, request, status)
            self.assert_as_expected(sim, now_meter, now_request, now_status)
            self.assertLessEqual(now_status["testRequestTime"], first["testEndTime"],
                                 "the immediate test was to arrive while the first one ran")
            # One slot: each test starts once the previous one has ended, in this order.
            order = [first, now_status] + later
            for before, after in zip(order, order[1:]):
                self.assertLessEqual(before["testEndTime"], after["testStartTime"],
                                     "test %d started before test %d ended" % (after["testId"], before["testId"]))
                self.assertLess(before["testStartTime"], after["testStartTime"])
            srv.stop()
        counters = sim.stop()
        self.assertEqual(counters["sessionsPeak"], 1)
        self.assertEqual([m["sessionsTotal"] for m in counters["meters"]], [1, 1, 1, 1])

    def test_capacity_limits_hold_and_every_test_completes(self):
        # Two servers at once, each with its own simulator: one limited by
        # max_concurrent_tests, one by max_tcp_sessions. Each gets 6 tests for 3 meters (two
        # per meter, which must never be dialled twice at once) and has 2 slots.
        setups = {"max_concurrent_tests": ["--scheduler.max_concurrent_tests=2", "--scheduler.max_tcp_sessions=100"],
                  "max_tcp_sessions": ["--scheduler.max_concurrent_tests=16", "--scheduler.max_tcp_sessions=2"]}
        limit = 2
        runs = {}
        for seed, (name, overrides) in enumerate(setups.items(), start=43):
            sim = SimulatedMeters(3, seed=seed, start_time=START, faults=["pace_baud=9600"])
            self.addCleanup(sim.stop)
            srv = Server(overrides=overrides)
            self.addCleanup(srv.close)
            requests = [no_survey(m, requestReference="%s-%d" % (name, i))
                        for i in range(2) for m in sim.meters]
            runs[name] = (sim, srv, [(rq, srv.test_request(rq)) for rq in requests])
        for name, (sim, srv, tests) in runs.items():
            for request, test_id in tests:
                meter = next(m for m in sim.meters if m["remoteAddress"] == request["remoteAddress"])
                self.assert_as_expected(sim, meter, request, wait_done(srv, test_id))
            srv.stop()
            counters = sim.stop()
            self.assertEqual(counters["sessionsTotal"], 6, name)
            # The limit was reached (tests did run side by side) and never exceeded.
            self.assertEqual(counters["sessionsPeak"], limit, name)
            for m in counters["meters"]:
                self.assertEqual(m["sessionsTotal"], 2, name)
                self.assertEqual(m["sessionsPeak"], 1, "%s: meter %s dialled twice at once" % (name, m["port"]))


if __name__ == "__main__":
    unittest.main()

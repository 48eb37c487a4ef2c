"""Meter tests really run: the server dispatches IEC62056-21 tests to simulated meters served
by `mts-sim` over TCP, and test-status reports exactly what `mts-sim expect` says a correct
test of that meter must report (everything but the moment-dependent times)."""

import datetime
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import MTS_BIN, Server
from test_sim import MTS_SIM_BIN, free_port_run

POLL_LIMIT = 90.0  # seconds for a test to leave PENDING (a session here takes well under 5 s)

# The moment the simulated meters' clocks are frozen at (`mts-sim serve --freeze-clock`,
# `expect --now`), read once per test process, and the UTC date every survey date is counted
# back from. So the engine tests run at any time and date: a run that crosses midnight, a month
# end or 28 February keeps one "today" for the meters, the requests and the expected readings.
# TODAY is the date one hour before START_TIME: a simulated meter's clock may be up to 2
# minutes slow, and it has an interval only once the interval has ended on its own clock, so
# with meters frozen just after midnight (START_TIME 00:00:30) "yesterday" would still lack its
# last half hour. Every survey range ends at TODAY 00:00 or before, at least an hour before
# the meters' moment and the server's clock, so neither a meter nor the server's clip at the
# moment the test runs ever cuts one short.
START_TIME = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
START = START_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
TODAY = (START_TIME - datetime.timedelta(hours=1)).date()


def days_before_today(days):
    """yyyy-MM-dd of TODAY minus `days`."""
    return (TODAY - datetime.timedelta(days=days)).isoformat()


class SimulatedMeters:
    """`mts-sim serve` with a frozen clock, so `expect` can predict every register value.

    counters() asks the running simulator for its session counters (SIGUSR1); stop() ends it
    and returns its final counters. Both give the JSON object of sim_server::counters_json:
    sessionsNow/Peak/Total overall and per meter (in meter order, under "meters")."""

    COUNTERS_TIMEOUT = 10.0  # seconds for the simulator to print its counters

    def __init__(self, count, seed, start_time, faults=(), meter_type="IEC62056-21", port=None, extra_args=(),
                 expect_args=()):
        port = free_port_run(count) if port is None else port
        args = [MTS_SIM_BIN, "serve", "--type", meter_type, "--count", str(count),
                "--port", str(port), "--seed", str(seed), "--start-time", start_time,
                "--freeze-clock"] + list(extra_args)
        for f in faults:
            args += ["--fault", f]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.meters = []
        for _ in range(count):
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=10)
                raise AssertionError("mts-sim did not start: " + self.proc.stderr.read())
            self.meters.append(json.loads(line))
        self.seed, self.start_time, self.faults = seed, start_time, faults
        self.expect_args = list(expect_args)  # e.g. --meter-types FILE, as for serve
        # stderr carries logs and counter lines; a thread drains it so the pipe never fills.
        self._counter_lines = []
        self._log_lines = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self._cond:
                if line.startswith("{"):
                    self._counter_lines.append(json.loads(line))
                else:
                    self._log_lines.append(line)
                self._cond.notify_all()

    def counters(self, kind="sessionsNow"):
        """The counter object with the key `kind` that SIGUSR1 makes the simulator print (its
        modem, if it serves one, prints a second object, keyed "modemCalls")."""
        with self._cond:
            seen = len(self._counter_lines)
        self.proc.send_signal(signal.SIGUSR1)

        def printed():
            return next((c for c in self._counter_lines[seen:] if kind in c), None)
        with self._cond:
            if not self._cond.wait_for(printed, self.COUNTERS_TIMEOUT):
                raise AssertionError("mts-sim printed no counters within %.0f s" % self.COUNTERS_TIMEOUT)
            return printed()

    def expect(self, meter, request):
        args = [MTS_SIM_BIN, "expect", "--type", meter["meterType"], "--seed", str(self.seed),
                "--serial", meter["serialNumber"], "--clock-offset", str(meter["clockOffsetSeconds"]),
                "--password", meter["password"], "--outstation-address", meter["outstationAddress"],
                "--request", json.dumps(request), "--now", self.start_time]
        for f in self.faults:
            args += ["--fault", f]
        args += self.expect_args
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
        return json.loads(out.stdout)

    def stop(self):
        """Ends the simulator (once; later calls only answer again) and returns its final
        counters."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        self._reader.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        if not self._counter_lines:
            raise AssertionError("mts-sim printed no counters at exit: " + "".join(self._log_lines))
        return self._counter_lines[-1]


def request_for(meter, **changes):
    """An immediate test of `meter` with two survey days from five days before TODAY."""
    body = {"requestReference": "engine", "immediate": True, "meterType": meter["meterType"],
            "remoteAddress": meter["remoteAddress"], "outstationAddress": meter["outstationAddress"],
            "serialNumber": meter["serialNumber"], "password": meter["password"],
            "surveyDays": 2, "surveyDate": days_before_today(5)}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def wait_done(srv, test_id):
    deadline = time.monotonic() + POLL_LIMIT
    while time.monotonic() < deadline:
        st = srv.request("GET", "test-status?testId=%d" % test_id).json
        if st["resultSummary"] != "PENDING":
            return st
        time.sleep(0.2)
    raise AssertionError("test %d still PENDING after %.0f s" % (test_id, POLL_LIMIT))


def wait_all_done(srv, test_ids, limit):
    """Polls test-status until every test of {name: test id} left PENDING or `limit` seconds
    passed; returns {name: status} of those that finished (the others are left out)."""
    statuses = {}
    deadline = time.monotonic() + limit
    pending = dict(test_ids)
    while pending and time.monotonic() < deadline:
        for name, test_id in list(pending.items()):
            st = srv.request("GET", "test-status?testId=%d" % test_id).json
            if st["resultSummary"] != "PENDING":
                statuses[name] = st
                del pending[name]
        time.sleep(0.5)
    return statuses


def comparable(status):
    """The parts of a test-status that `mts-sim expect` predicts."""
    regs = [{k: v for k, v in r.items() if k != "timestamp"} for r in status.get("registerValues", [])]
    return {"result": status["result"], "serialNumber": status["serialNumber"],
            "statusEvents": status.get("statusEvents", []), "registerValues": regs,
            "surveyData": status.get("surveyData", [])}


def predicted(expected):
    """The same parts of what `mts-sim expect` printed (an item it leaves out is empty)."""
    return {k: expected.get(k, []) for k in ("result", "serialNumber", "statusEvents", "registerValues", "surveyData")}


class PredictedCasesTest(unittest.TestCase):
    """Many cases on one server, each a meter of its own (`mts-sim serve`) and one test of it,
    submitted at once in setUpClass so the sessions overlap: a subclass's setUpClass calls
    begin(server), add() per case and wait_cases(); check_expected(name) then compares the whole
    test-status with `mts-sim expect`. A subclass may override sim_args() (e.g. --meter-types)
    and POLL_LIMIT."""

    POLL_LIMIT = 300.0  # seconds for every test to leave PENDING

    @classmethod
    def sim_args(cls):
        """Extra arguments for both `mts-sim serve` and `mts-sim expect`."""
        return []

    @classmethod
    def begin(cls, server):
        cls.server, cls.sims, cls.cases, cls.statuses = server, [], {}, {}

    @classmethod
    def add(cls, name, meter_type, faults=(), seed=1, **changes):
        """One meter with `faults`, and its test request (yesterday's survey unless changed)."""
        sim = SimulatedMeters(1, seed=seed, start_time=START, faults=faults, meter_type=meter_type,
                              extra_args=cls.sim_args(), expect_args=cls.sim_args())
        cls.sims.append(sim)
        meter = sim.meters[0]
        request = request_for(meter, **dict({"surveyDays": 1, "surveyDate": days_before_today(1)}, **changes))
        cls.cases[name] = (sim, meter, request, cls.server.test_request(request))

    @classmethod
    def wait_cases(cls):
        cls.statuses = wait_all_done(cls.server, {name: case[3] for name, case in cls.cases.items()},
                                     cls.POLL_LIMIT)

    @classmethod
    def tearDownClass(cls):
        for sim in cls.sims:
            sim.stop()
        cls.server.close()

    def status(self, name):
        if name not in self.statuses:
            self.fail("test %s still PENDING after %.0f s" % (name, self.POLL_LIMIT))
        return self.statuses[name]

    def check_expected(self, name):
        """The whole test-status equals `mts-sim expect` (result included): (status, expected)."""
        sim, meter, request, test_id = self.cases[name]
        status = self.status(name)
        expected = sim.expect(meter, request)
        self.assertEqual(comparable(status), predicted(expected),
                         "%s: test %d against %s" % (name, test_id, meter["remoteAddress"]))
        return status, expected


class EngineTest(unittest.TestCase):
    START = START  # runs at any time: see START_TIME above

    def run_and_compare(self, sim, srv, meter, **changes):
        request = request_for(meter, **changes)
        test_id = srv.test_request(request)
        status = wait_done(srv, test_id)
        expected = sim.expect(meter, request)
        self.assertEqual(comparable(status), predicted(expected),
                         "test %d against %s" % (test_id, meter["remoteAddress"]))
        return status

    def test_successful_tests_report_exactly_what_the_meter_holds(self):
        sim = SimulatedMeters(3, seed=11, start_time=self.START)
        self.addCleanup(sim.stop)
        with Server(overrides=["--scheduler.retry_delay_seconds=1"]) as srv:
            for meter in sim.meters:
                status = self.run_and_compare(sim, srv, meter)
                self.assertEqual(status["result"], "SUCCESS")
                self.assertEqual(len(status["surveyData"]), 6)
                self.assertEqual(len(status["surveyData"][0]["readings"]), 96)  # 2 days
                for key in ("testStartTime", "testEndTime", "connectionStartTime", "connectionEndTime"):
                    self.assertIn(key, status)
                self.assertRegex(status["meterTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d [+-]\d+s$")

    def test_wrong_password_and_serial_mismatch_are_errors(self):
        sim = SimulatedMeters(2, seed=5, start_time=self.START)
        self.addCleanup(sim.stop)
        with Server(overrides=["--scheduler.retry_delay_seconds=1"]) as srv:
            wrong = sim.meters[0]
            test_id = srv.test_request(request_for(wrong, password="WRONG000"))
            st = wait_done(srv, test_id)
            self.assertTrue(st["result"].startswith("ERROR: "), st)
            self.assertIn("password", st["result"])
            other = sim.meters[1]
            test_id = srv.test_request(request_for(other, serialNumber="99999999"))
            st = wait_done(srv, test_id)
            self.assertEqual(st["result"], "ERROR: Serial number mismatch")
            self.assertIn(other["serialNumber"], st["serialNumber"])

    def test_corrupted_checksums_and_garbage_are_survived(self):
        sim = SimulatedMeters(1, seed=3, start_time=self.START,
                              faults=("corrupt_bcc_every=3", "garbage_before_reply=#?!"))
        self.addCleanup(sim.stop)
        with Server() as srv:
            status = self.run_and_compare(sim, srv, sim.meters[0])
            self.assertEqual(status["result"], "SUCCESS")

    def test_a_refused_connection_is_retried_then_reported(self):
        with Server(overrides=["--scheduler.retry_delay_seconds=1", "--scheduler.max_attempts=2"]) as srv:
            port = free_port_run(1)  # nothing listens there
            meter = {"meterType": "IEC62056-21", "remoteAddress": "127.0.0.1:%d" % port,
                     "outstationAddress": "1", "serialNumber": "1", "password": "x"}
            st = wait_done(srv, srv.test_request(request_for(meter)))
            self.assertTrue(st["result"].startswith("ERROR: "), st)
            self.assertIn("refused", st["result"])


if __name__ == "__main__":
    unittest.main()

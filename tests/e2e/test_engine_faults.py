"""Every fault a simulated meter can show gives its documented result (docs/api.md, test-status
"Results of a test"), with the number of connection attempts the retry policy gives: the
server's test-status (`attempts`) and the simulator's own session counters must agree.

One server for the class (max_attempts 3, retry delay 1 s) runs every case at once, each
against its own `mts-sim` with one meter showing the fault (and one listener that never
accepts, for a connection that never comes up). Transient failures (refused, connect timeout,
silent, line dropped) take all 3 attempts; permanent ones (password, serial number) take 1;
faults a correct client rides out (checksum errors, garbage, gaps, slow lines) give SUCCESS in
1 session. A second class checks the whole-test deadline."""

import datetime
import socket
import unittest

from harness import HOST, Server
from test_engine import START, TODAY, SimulatedMeters, comparable, days_before_today, predicted, request_for, wait_done

MAX_ATTEMPTS = 3
CONNECT_TIMEOUT = 2  # seconds (scheduler.connect_timeout_seconds)


def survey_gap_times():
    """Two gaps inside request_for's survey range. Runs at any time: counted from
    test_engine.TODAY, read once, so the meter's gaps, the request and the check agree even
    when the run crosses midnight."""
    first_day = TODAY - datetime.timedelta(days=5)
    return ["%sT10:00:00Z" % first_day.isoformat(),
            "%sT03:30:00Z" % (first_day + datetime.timedelta(days=1)).isoformat()]


# name -> (faults of the meter, seed, changes to the default request of test_engine.request_for)
CASES = {
    "refused": (["refuse_connection"], 21, {}),
    "silent": (["silent"], 22, {}),
    "drop": (["drop_mid_profile"], 23, {}),
    "drop_no_survey": (["drop_mid_profile"], 23, {"surveyDays": 0, "surveyDate": None}),
    "drop_early": (["drop_after_bytes=3"], 31, {}),
    "password": (["reject_password"], 24, {}),
    "serial": (["reported_serial=55555555"], 25, {}),
    "bcc": (["corrupt_bcc_every=2"], 26, {}),
    "garbage": (["garbage_before_reply=\xff\xfe junk\r\n#?!"], 27, {}),
    "gaps": (["survey_gaps=" + ",".join(survey_gap_times())], 28, {}),
    "events": (["power_failure_every_days=1", "error_register=0x5"], 29, {}),
    # One survey day keeps the paced session short.
    "paced": (["pace_baud=9600"], 30,
              {"surveyDays": 1, "surveyDate": days_before_today(3)}),
}


class EngineFaultTest(unittest.TestCase):
    """All cases run at once on one server (each against its own simulator); each test
    method waits for its case and checks it."""
    START = START  # runs at any time and date: see test_engine.START_TIME

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(overrides=["--scheduler.max_attempts=%d" % MAX_ATTEMPTS,
                                    "--scheduler.retry_delay_seconds=1",
                                    "--scheduler.connect_timeout_seconds=%d" % CONNECT_TIMEOUT])
        cls.addClassCleanup(cls.srv.close)
        # A meter whose connection never comes up: a listener with a full accept queue (one
        # connection it never accepts), so the kernel drops further connection requests.
        cls.black_hole = socket.socket()
        cls.addClassCleanup(cls.black_hole.close)
        cls.black_hole.bind((HOST, 0))
        cls.black_hole.listen(0)
        cls.queue_filler = socket.create_connection(cls.black_hole.getsockname(), timeout=10)
        cls.addClassCleanup(cls.queue_filler.close)
        unreachable = {"meterType": "IEC62056-21", "remoteAddress": "%s:%d" % cls.black_hole.getsockname(),
                       "outstationAddress": "1", "serialNumber": "1", "password": "x"}
        cls.unreachable_id = cls.srv.test_request(request_for(unreachable))
        cls.cases = {}
        for name, (faults, seed, changes) in CASES.items():
            sim = SimulatedMeters(1, seed=seed, start_time=cls.START, faults=faults)
            cls.addClassCleanup(sim.stop)
            request = request_for(sim.meters[0], **changes)
            cls.cases[name] = (sim, request, cls.srv.test_request(request))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def run_against(self, name):
        """The case's test-status once finished, what `mts-sim expect` predicts for it, and
        the meter's session counters once its simulator has stopped."""
        sim, request, test_id = self.cases[name]
        status = wait_done(self.srv, test_id)
        counters = sim.stop()
        return status, sim.expect(sim.meters[0], request), counters["meters"][0]

    def assert_as_expected(self, status, expected):
        self.assertEqual(comparable(status), predicted(expected),
                         "test %d" % status["testId"])

    # ---------------------------------------------------------------- transient: retried

    def test_refused_connection_is_tried_max_attempts_times_then_error(self):
        status, expected, meter = self.run_against("refused")
        # The simulator names the driver's reason; the server says it could not connect.
        self.assertEqual(expected["result"], "ERROR: connection refused")
        self.assertEqual(status["result"], "ERROR: cannot connect: connection refused")
        self.assertEqual(status["attempts"], MAX_ATTEMPTS)
        self.assertEqual(meter["sessionsTotal"], 0)  # the kernel refused every one
        self.assertNotIn("connectionStartTime", status)  # no attempt got a line
        self.assertEqual(status["serialNumber"], status["result"])  # nothing read
        self.assertEqual(status["surveyData"], [])  # requested, not read
        self.assertNotIn("registerValues", status)

    def test_connection_that_never_comes_up_times_out_max_attempts_times_then_error(self):
        status = wait_done(self.srv, self.unreachable_id)
        self.assertEqual(status["result"], "ERROR: cannot connect: connection timed out")
        self.assertEqual(status["attempts"], MAX_ATTEMPTS)
        self.assertNotIn("connectionStartTime", status)

    def test_silent_meter_is_tried_max_attempts_times_then_error(self):
        status, expected, meter = self.run_against("silent")
        self.assert_as_expected(status, expected)
        self.assertEqual(status["result"], "ERROR: no answer to sign-on")
        self.assertEqual(status["attempts"], MAX_ATTEMPTS)
        self.assertEqual(meter["sessionsTotal"], MAX_ATTEMPTS)
        self.assertEqual(meter["sessionsPeak"], 1)
        # The connection times are the last attempt's: it did connect.
        self.assertLessEqual(status["connectionStartTime"], status["connectionEndTime"])
        self.assertLessEqual(status["testStartTime"], status["connectionStartTime"])

    def test_line_dropped_in_the_profile_is_retried_then_partial_success(self):
        status, expected, meter = self.run_against("drop")
        self.assert_as_expected(status, expected)
        self.assertEqual(status["result"], "PARTIAL SUCCESS")
        self.assertEqual(status["attempts"], MAX_ATTEMPTS)
        self.assertEqual(meter["sessionsTotal"], MAX_ATTEMPTS)
        # What the last attempt read before the drop: everything but the survey.
        self.assertEqual(len(status["registerValues"]), 6)
        self.assertEqual(status["surveyData"], [])
        self.assertRegex(status["serialNumber"], r"^\d{8}$")

    def test_line_dropped_in_the_profile_does_not_matter_without_a_survey(self):
        status, expected, meter = self.run_against("drop_no_survey")
        self.assert_as_expected(status, expected)
        self.assertEqual(status["result"], "SUCCESS")
        self.assertEqual(status["attempts"], 1)
        self.assertEqual(meter["sessionsTotal"], 1)

    def test_line_dropped_before_anything_was_read_is_retried_then_error(self):
        sim, request, test_id = self.cases["drop_early"]
        status = wait_done(self.srv, test_id)
        meter = sim.stop()["meters"][0]
        # `mts-sim expect` cannot predict drop_after_bytes: nothing was read on any attempt.
        self.assertEqual(status["result"], "ERROR: line dropped")
        self.assertEqual(status["serialNumber"], "ERROR: line dropped")
        self.assertEqual(status["meterTime"], "ERROR: line dropped")
        self.assertNotIn("registerValues", status)
        self.assertEqual(status["attempts"], MAX_ATTEMPTS)
        self.assertEqual(meter["sessionsTotal"], MAX_ATTEMPTS)

    # ---------------------------------------------------------------- permanent: never retried

    def test_rejected_password_is_permanent(self):
        status, expected, meter = self.run_against("password")
        self.assert_as_expected(status, expected)
        self.assertEqual(status["result"], "ERROR: password rejected")
        self.assertEqual(status["attempts"], 1)
        self.assertEqual(meter["sessionsTotal"], 1)

    def test_meter_reporting_another_serial_number_is_a_permanent_mismatch(self):
        status, expected, meter = self.run_against("serial")
        self.assert_as_expected(status, expected)
        self.assertEqual(status["result"], "ERROR: Serial number mismatch")
        self.assertTrue(status["serialNumber"].startswith("ERROR: Serial number mismatch"), status)
        self.assertIn("55555555", status["serialNumber"])
        # The test reads nothing more once the serial number is wrong.
        for key in ("registerValues", "statusEvents", "meterTime"):
            self.assertNotIn(key, status)
        self.assertEqual(status["surveyData"], [])  # requested, not read
        self.assertEqual(status["attempts"], 1)
        self.assertEqual(meter["sessionsTotal"], 1)

    # ---------------------------------------------------------------- ridden out: SUCCESS

    def assert_full_success(self, status, expected, meter):
        self.assert_as_expected(status, expected)
        self.assertEqual(status["result"], "SUCCESS")
        self.assertEqual(status["attempts"], 1)
        self.assertEqual(meter["sessionsTotal"], 1)
        self.assertEqual(len(status["registerValues"]), 6)
        self.assertEqual(len(status["surveyData"]), 6)

    def test_corrupted_checksums_are_repeated_and_give_success(self):
        status, expected, meter = self.run_against("bcc")
        self.assert_full_success(status, expected, meter)
        self.assertEqual(len(status["surveyData"][0]["readings"]), 96)

    def test_garbage_before_every_reply_gives_success(self):
        status, expected, meter = self.run_against("garbage")
        self.assert_full_success(status, expected, meter)
        self.assertEqual(len(status["surveyData"][0]["readings"]), 96)

    def test_gaps_in_the_survey_are_left_out(self):
        gaps = survey_gap_times()
        status, expected, meter = self.run_against("gaps")
        self.assert_full_success(status, expected, meter)
        for channel in status["surveyData"]:
            self.assertEqual(len(channel["readings"]), 96 - len(gaps), channel["name"])
            stamps = {r["timestamp"] for r in channel["readings"]}
            self.assertFalse(stamps & set(gaps), "a gap has a reading")

    def test_power_failures_and_error_register_become_status_events(self):
        status, expected, meter = self.run_against("events")
        self.assert_full_success(status, expected, meter)
        events = status["statusEvents"]
        self.assertEqual(sorted(e for e in events if "F.F" in e),
                         ["Meter error register F.F bit 0 set", "Meter error register F.F bit 2 set"])
        self.assertTrue(any(e.startswith("Power failure at ") for e in events), events)

    def test_a_meter_on_a_9600_baud_line_gives_success(self):
        status, expected, meter = self.run_against("paced")
        self.assert_full_success(status, expected, meter)
        self.assertEqual(len(status["surveyData"][0]["readings"]), 48)


class DeadlineTest(unittest.TestCase):
    """The whole-test deadline (scheduler.test_deadline_seconds, the least allowed: 10 s; the
    test actor's own deadline is 1 s earlier) ends a test in the middle of an attempt: the
    result is what that attempt read, and no further attempt is made."""
    START = EngineFaultTest.START
    DEADLINE = 10

    def test_the_deadline_ends_a_slow_session_and_a_retrying_test(self):
        slow = SimulatedMeters(1, seed=32, start_time=self.START, faults=["pace_baud=300"])
        self.addCleanup(slow.stop)
        silent = SimulatedMeters(1, seed=33, start_time=self.START, faults=["silent"])
        self.addCleanup(silent.stop)
        overrides = ["--scheduler.test_deadline_seconds=%d" % self.DEADLINE,
                     "--scheduler.max_attempts=100", "--scheduler.retry_delay_seconds=0"]
        with Server(overrides=overrides) as srv:
            slow_request = request_for(slow.meters[0])
            slow_id = srv.test_request(slow_request)
            silent_id = srv.test_request(request_for(silent.meters[0]))
            slow_status = wait_done(srv, slow_id)
            silent_status = wait_done(srv, silent_id)
            srv.stop()
        slow_meter = slow.stop()["meters"][0]
        silent_meter = silent.stop()["meters"][0]

        # At 300 baud two days of data take minutes: the deadline cuts the one session short,
        # and what was read by then is reported.
        self.assertEqual(slow_status["result"], "PARTIAL SUCCESS")
        self.assertEqual(slow_status["attempts"], 1)
        self.assertEqual(slow_meter["sessionsTotal"], 1)
        self.assertEqual(slow_meter["sessionsNow"], 0)
        expected = slow.expect(slow.meters[0], slow_request)
        self.assertEqual(slow_status["serialNumber"], expected["serialNumber"])
        self.assertEqual(slow_status["surveyData"], [])
        got = [{k: v for k, v in r.items() if k != "timestamp"} for r in slow_status.get("registerValues", [])]
        self.assertEqual(got, expected["registerValues"][:len(got)])

        # A silent meter fails each attempt after the driver's 5 s response timeout: the
        # deadline comes during the second attempt, which ends the test with nothing read.
        self.assertEqual(silent_status["result"], "ERROR: test deadline exceeded")
        self.assertEqual(silent_status["serialNumber"], "ERROR: test deadline exceeded")
        self.assertEqual(silent_status["attempts"], 2)
        self.assertEqual(silent_meter["sessionsTotal"], 2)


if __name__ == "__main__":
    unittest.main()

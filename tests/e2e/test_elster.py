"""Elster A1700 / A1140 tests really run over HTTPS: the server dispatches them to simulated
Elster meters served by `mts-sim` over TCP, and test-status reports exactly what `mts-sim
expect` says a correct test of that meter must report (everything but the moment-dependent
times), for a clean meter of each type, every simulator fault, a wrong password, a serial
mismatch, ERR5 (password session timeout) mid-profile, power failures inside the survey range
and a 60-day survey.

Every test request is submitted at once in setUpClass (one server, one `mts-sim` per meter),
so the sessions overlap and the wall time is about that of the longest one: the 60-day
survey, ~900 R1 packets (about 3.5 minutes at the driver's default 200 ms reaction delay, so
the server runs with 20 ms)."""

import unittest

from harness import Server
from test_engine import PredictedCasesTest, days_before_today

POLL_LIMIT = 600.0  # seconds for every test to leave PENDING (generous: the longest takes ~1 min)

# Runs at any time and date: the meters are frozen at test_engine.START and every survey day
# is counted from test_engine.TODAY, both read once, so a run that crosses midnight (or a month
# end) keeps one "yesterday" for the meters, the requests and the checks below.
YESTERDAY = days_before_today(1)


class ElsterTest(PredictedCasesTest):
    POLL_LIMIT = POLL_LIMIT

    @classmethod
    def setUpClass(cls):
        # Short per-type delays keep the 60-day survey (~900 R1 packets) under a minute; the
        # A1140s run with the other option mode and security level (zero operand first).
        cls.begin(Server(overrides=["--scheduler.retry_delay_seconds=1", "--scheduler.max_attempts=2",
                                       "--scheduler.max_concurrent_tests=32",
                                       "--meter_type.ELSTERA1700.reaction_delay_ms=20", "--meter_type.ELSTERA1700.baud_switch_delay_ms=20",
                                       "--meter_type.ELSTERA1140.reaction_delay_ms=20", "--meter_type.ELSTERA1140.baud_switch_delay_ms=20",
                                       "--meter_type.ELSTERA1140.option_mode=1", "--meter_type.ELSTERA1140.security_level=3"]))
        try:
            a1700, a1140 = "ELSTERA1700", "ELSTERA1140"
            cls.add("survey_60_days", a1700, seed=60, surveyDays=60,
                    surveyDate=days_before_today(60))
            cls.add("clean_a1700", a1700, seed=2)
            cls.add("clean_a1140", a1140, seed=3)
            cls.add("wrong_password", a1700, seed=4, password="WRONG000")
            cls.add("serial_mismatch", a1140, seed=5, serialNumber="99999999")
            cls.add("err5_mid_profile", a1700, ("password_timeout_after_reads=12",), seed=6)
            cls.add("power_failure", a1140, ("power_failure_every_days=1",), seed=7)
            cls.add("silent", a1700, ("silent",), seed=8)
            cls.add("refuse_connection", a1140, ("refuse_connection",), seed=9)
            cls.add("drop_mid_profile", a1700, ("drop_mid_profile",), seed=10)
            cls.add("drop_after_bytes", a1140, ("drop_after_bytes=300",), seed=11)
            cls.add("corrupt_bcc", a1700, ("corrupt_bcc_every=3",), seed=12)
            cls.add("garbage", a1140, ("garbage_before_reply=#?!",), seed=13)
            cls.add("reject_password", a1700, ("reject_password",), seed=14)
            cls.add("reported_serial", a1140, ("reported_serial=0000 7654321",), seed=15)
            gap_day = YESTERDAY + "T"
            cls.add("survey_gaps", a1700, ("survey_gaps=%s03:00:00Z,%s03:30:00Z,%s23:30:00Z" %
                                           (gap_day, gap_day, gap_day),), seed=16)
            cls.add("error_register", a1140, ("error_register=0x80000101",), seed=17)
            cls.add("pace_baud", a1700, ("pace_baud=9600",), seed=18)
            cls.add("err5_too_often", a1140, ("password_timeout_after_reads=2",), seed=19)
            cls.wait_cases()
        except BaseException:
            cls.tearDownClass()
            raise

    def test_clean_meters_of_both_types_report_exactly_what_they_hold(self):
        for name in ("clean_a1700", "clean_a1140"):
            status, _ = self.check_expected(name)
            self.assertEqual(status["result"], "SUCCESS")
            names = [r["name"] for r in status["registerValues"]]
            self.assertEqual(names, ["kWh Import", "kWh Export", "kvarh Q1", "kvarh Q2", "kvarh Q3",
                                     "kvarh Q4", "kVAh"])
            self.assertEqual(status["registerValues"][6]["units"], "kVAh")
            self.assertEqual(len(status["surveyData"]), 6)
            self.assertEqual(len(status["surveyData"][0]["readings"]), 48)
            self.assertEqual(status["surveyData"][0]["readings"][0]["timestamp"], YESTERDAY + "T00:00:00Z")
            self.assertEqual(status.get("statusEvents", []), [])
            self.assertRegex(status["meterTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d [+-]\d+s$")

    def test_a_60_day_survey(self):
        status, _ = self.check_expected("survey_60_days")
        self.assertEqual(status["result"], "SUCCESS")
        for channel in status["surveyData"]:
            self.assertEqual(len(channel["readings"]), 60 * 48)

    def test_wrong_password_and_serial_mismatch(self):
        status, _ = self.check_expected("wrong_password")
        self.assertEqual(status["result"], "ERROR: password rejected")
        status, _ = self.check_expected("serial_mismatch")
        self.assertEqual(status["result"], "ERROR: Serial number mismatch")
        self.assertIn(self.cases["serial_mismatch"][1]["serialNumber"], status["serialNumber"])

    def test_err5_mid_profile_is_recovered_by_re_authentication(self):
        status, _ = self.check_expected("err5_mid_profile")
        self.assertEqual(status["result"], "SUCCESS")
        self.assertEqual(len(status["surveyData"][0]["readings"]), 48)
        # More timeouts than the driver re-authenticates: the survey stays unread.
        status, _ = self.check_expected("err5_too_often")
        self.assertEqual(status["result"], "PARTIAL SUCCESS")
        self.assertEqual(status["surveyData"], [])  # unread

    def test_power_failures_inside_the_survey_range_are_status_events(self):
        status, _ = self.check_expected("power_failure")
        self.assertEqual(status["result"], "SUCCESS")
        events = status["statusEvents"]
        self.assertEqual(len(events), 2, events)  # one failure a day: power down, then up
        self.assertRegex(events[0], r"^Power down at " + YESTERDAY + r"T\d\d:\d0:00Z$")
        self.assertRegex(events[1], r"^Power up at " + YESTERDAY + r"T\d\d:\d5:00Z$")
        self.assertEqual(len(status["surveyData"][0]["readings"]), 48)

    def test_faults_give_the_predicted_results(self):
        results = {
            "silent": "ERROR: no answer to sign-on",
            "drop_mid_profile": "PARTIAL SUCCESS",
            "corrupt_bcc": "SUCCESS",
            "garbage": "SUCCESS",
            "reject_password": "ERROR: password rejected",
            "reported_serial": "ERROR: Serial number mismatch",
            "survey_gaps": "SUCCESS",
            "error_register": "SUCCESS",
            "pace_baud": "SUCCESS",
        }
        for name, result in results.items():
            with self.subTest(fault=name):
                status, _ = self.check_expected(name)
                self.assertEqual(status["result"], result)
        self.assertEqual(self.status("drop_mid_profile")["surveyData"], [])  # unread
        # 798 "00000000 7654321": spaces out, leading zeros down to 8 characters
        self.assertIn("the meter reports 07654321", self.status("reported_serial")["serialNumber"])
        gaps = self.status("survey_gaps")
        self.assertEqual(len(gaps["surveyData"][0]["readings"]), 48 - 3)
        self.assertEqual(gaps["statusEvents"], [
            "Power down at %sT03:00:01Z" % YESTERDAY, "Power up at %sT04:00:00Z" % YESTERDAY,
            "Power down at %sT23:30:01Z" % YESTERDAY])
        self.assertEqual(self.status("error_register")["statusEvents"],
                         ["Backup register set corrupt", "Phase A failure", "Meter transient reset"])

    def test_faults_whose_result_expect_cannot_fully_predict(self):
        # refused: the server words the connection failure itself; everything else as expected.
        sim, meter, request, _ = self.cases["refuse_connection"]
        status = self.status("refuse_connection")
        self.assertTrue(status["result"].startswith("ERROR: "), status)
        self.assertIn("refused", status["result"])
        self.assertIn("refused", sim.expect(meter, request)["result"])
        # dropped after 300 bytes: inside the register read; the serial number was read.
        status = self.status("drop_after_bytes")
        self.assertEqual(status["result"], "PARTIAL SUCCESS")
        self.assertEqual(status["serialNumber"], self.cases["drop_after_bytes"][1]["serialNumber"])
        self.assertEqual(status["surveyData"], [])  # unread


if __name__ == "__main__":
    unittest.main()

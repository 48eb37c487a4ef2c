"""DLMS/COSEM tests really run over HTTPS: the server dispatches them to simulated DLMS meters
served by `mts-sim` (over the TCP wrapper, over HDLC on TCP, and through the simulated modem),
and test-status reports exactly what `mts-sim expect` says a correct test of that meter must
report (everything but the moment-dependent times): clean meters of every transport,
referencing and authentication mode, and each simulator fault's documented result
(docs/dlms.md).

The server and the simulators read one configuration file, so both know the configured DLMS
types. Every test request is submitted at once in setUpClass (one server, one `mts-sim` per
meter) so the sessions overlap; the longest is the 10-day survey through small PDUs."""

import unittest

from harness import Server
from test_engine import START, PredictedCasesTest, comparable, days_before_today, predicted, wait_done
from test_modem import SimulatedModem, modem_server, phone_request

POLL_LIMIT = 300.0  # seconds for every test to leave PENDING (the longest takes well under a minute)

# Runs at any time and date: the meters are frozen at test_engine.START and every survey day
# is counted from test_engine.TODAY, both read once per process.
YESTERDAY = days_before_today(1)

TYPES = [
    {"name": "DLMS-HDLC", "driver": "dlms", "transport": "hdlc", "response_timeout_ms": 1000},
    {"name": "DLMS-EVENTS", "driver": "dlms", "event_log_obis": "0.0.99.98.0.255"},
    {"name": "DLMS-MD5", "driver": "dlms", "transport": "hdlc", "authentication": "high-md5"},
    {"name": "DLMS-SHA1", "driver": "dlms", "authentication": "high-sha1"},
    {"name": "DLMS-SHA256", "driver": "dlms", "authentication": "high-sha256"},
    {"name": "DLMS-SN-SHA1", "driver": "dlms", "referencing": "sn", "transport": "hdlc",
     "authentication": "high-sha1"},
]


class DlmsTest(PredictedCasesTest):
    POLL_LIMIT = POLL_LIMIT

    @classmethod
    def sim_args(cls):
        # The simulators read the server's configuration file: both know the DLMS types above.
        return ["--meter-types", cls.server.config_path]

    @classmethod
    def setUpClass(cls):
        cls.begin(Server(config={"scheduler": {"retry_delay_seconds": 1, "max_attempts": 2,
                                               "max_concurrent_tests": 32},
                                 "meter_type": TYPES}))
        try:
            cls.add("clean_wrapper", "DLMS", seed=2)
            cls.add("clean_hdlc", "DLMS-HDLC", seed=3)
            cls.add("clean_sn_lls", "DLMS-SN", seed=4)
            cls.add("hls_md5", "DLMS-MD5", seed=5)
            cls.add("hls_sha1", "DLMS-SHA1", seed=6)
            cls.add("hls_sha256", "DLMS-SHA256", seed=7)
            cls.add("sn_hls_sha1", "DLMS-SN-SHA1", seed=8)
            cls.add("survey_10_days_small_pdu", "DLMS-HDLC", ("max_pdu=128", "max_info=64"), seed=9,
                    surveyDays=10, surveyDate=days_before_today(10))
            cls.add("power_failure_events", "DLMS-EVENTS", ("power_failure_every_days=1",), seed=10)
            cls.add("wrong_password", "DLMS-SN", seed=11, password="WRONG000")
            cls.add("wrong_hdlc_address", "DLMS-HDLC", seed=12, outstationAddress="4321")
            cls.add("serial_mismatch", "DLMS", seed=13, serialNumber="99999999")
            cls.add("silent", "DLMS", ("silent",), seed=14)
            cls.add("reject_association", "DLMS", ("reject_association",), seed=15)
            cls.add("access_error", "DLMS", ("access_error_obis=1.0.7.8.0.255",), seed=16)
            cls.add("block_stop", "DLMS", ("max_pdu=256", "block_stop_after=2"), seed=17)
            cls.add("frame_reject", "DLMS-HDLC", ("frame_reject",), seed=18)
            cls.add("refuse_range", "DLMS", ("refuse_range",), seed=19)
            cls.add("corrupt_fcs", "DLMS-HDLC", ("corrupt_bcc_every=4",), seed=20)
            cls.add("garbage", "DLMS-HDLC", ("garbage_before_reply=#?!",), seed=21)
            cls.add("drop_mid_profile", "DLMS", ("drop_mid_profile",), seed=22)
            cls.add("reported_serial", "DLMS-SN", ("reported_serial=7654321",), seed=23)
            gap_day = YESTERDAY + "T"
            cls.add("survey_gaps", "DLMS-HDLC", ("survey_gaps=%s03:00:00Z,%s03:30:00Z,%s23:30:00Z" %
                                                 (gap_day, gap_day, gap_day),), seed=24)
            cls.add("reject_password_fault", "DLMS-MD5", ("reject_password",), seed=25)
            cls.wait_cases()
        except BaseException:
            cls.tearDownClass()
            raise

    def test_clean_meters_of_every_transport_referencing_and_authentication(self):
        for name in ("clean_wrapper", "clean_hdlc", "clean_sn_lls", "hls_md5", "hls_sha1", "hls_sha256",
                     "sn_hls_sha1"):
            with self.subTest(case=name):
                status, _ = self.check_expected(name)
                self.assertEqual(status["result"], "SUCCESS")
                self.assertEqual([r["name"] for r in status["registerValues"]],
                                 ["kWh Import", "kWh Export", "kvarh Q1", "kvarh Q2", "kvarh Q3", "kvarh Q4"])
                self.assertEqual([r["units"] for r in status["registerValues"]],
                                 ["kWh", "kWh", "kvarh", "kvarh", "kvarh", "kvarh"])
                self.assertEqual(len(status["surveyData"]), 6)
                readings = status["surveyData"][0]["readings"]
                self.assertEqual(len(readings), 48)
                self.assertEqual(readings[0]["timestamp"], YESTERDAY + "T00:00:00Z")
                self.assertEqual(readings[-1]["timestamp"], YESTERDAY + "T23:30:00Z")
                self.assertEqual(status.get("statusEvents", []), [])
                self.assertRegex(status["meterTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d [+-]\d+s$")

    def test_a_10_day_survey_through_small_pdus_and_hdlc_frames(self):
        status, _ = self.check_expected("survey_10_days_small_pdu")
        self.assertEqual(status["result"], "SUCCESS")
        for channel in status["surveyData"]:
            self.assertEqual(len(channel["readings"]), 10 * 48)

    def test_power_failures_are_profile_status_and_event_log_events(self):
        status, _ = self.check_expected("power_failure_events")
        self.assertEqual(status["result"], "SUCCESS")
        events = status["statusEvents"]
        self.assertTrue(any(e.startswith("Power down in interval starting " + YESTERDAY) for e in events), events)
        self.assertTrue(any(e.startswith("Event 1 (power down) at " + YESTERDAY) for e in events), events)
        self.assertTrue(any(e.startswith("Event 2 (power up) at " + YESTERDAY) for e in events), events)

    def test_association_and_address_failures(self):
        self.assertEqual(self.check_expected("wrong_password")[0]["result"],
                         "ERROR: association rejected: authentication failure")
        # HLS: the AARE accepts (authentication required); the meter refuses pass 3.
        self.assertEqual(self.check_expected("reject_password_fault")[0]["result"],
                         "ERROR: authentication failure: read-write denied")
        self.assertTrue(self.check_expected("reject_association")[0]["result"].startswith("ERROR: association rejected: "))
        # A meter stays silent to frames for another HDLC address.
        self.assertEqual(self.check_expected("wrong_hdlc_address")[0]["result"], "ERROR: no answer to link setup")
        self.assertEqual(self.check_expected("silent")[0]["result"], "ERROR: no answer to association")
        status, _ = self.check_expected("serial_mismatch")
        self.assertEqual(status["result"], "ERROR: Serial number mismatch")
        status, _ = self.check_expected("reported_serial")
        self.assertEqual(status["result"], "ERROR: Serial number mismatch")
        self.assertIn("7654321", status["serialNumber"])

    def test_faults_give_the_documented_results(self):
        results = {
            "access_error": "PARTIAL SUCCESS",
            "refuse_range": "SUCCESS",        # read again by entry
            "corrupt_fcs": "SUCCESS",         # lost frames are asked for again
            "garbage": "SUCCESS",
            "survey_gaps": "SUCCESS",
            "drop_mid_profile": "PARTIAL SUCCESS",
            "block_stop": "PARTIAL SUCCESS",
        }
        for name, result in results.items():
            with self.subTest(fault=name):
                self.assertEqual(self.check_expected(name)[0]["result"], result)
        self.assertIn("Not read: register 1.0.7.8.0.255: object undefined",
                      self.status("access_error")["statusEvents"])
        self.assertEqual([r["name"] for r in self.status("access_error")["registerValues"]],
                         ["kWh Import", "kWh Export", "kvarh Q1", "kvarh Q2", "kvarh Q4"])
        self.assertEqual(len(self.status("refuse_range")["surveyData"][0]["readings"]), 48)
        self.assertEqual(len(self.status("survey_gaps")["surveyData"][0]["readings"]), 48 - 3)
        self.assertTrue(self.check_expected("frame_reject")[0]["result"].startswith("ERROR: link error: frame rejected"))


class DlmsModemTest(unittest.TestCase):
    """A DLMS meter through the simulated modem: HDLC over the call whatever the type's
    transport (DLMS's is the wrapper)."""

    def test_dlms_over_a_modem_call_reports_what_expect_predicts(self):
        sim = SimulatedModem(1, seed=31, start_time=START, meter_type="DLMS")
        self.addCleanup(sim.stop)
        with modem_server([sim.gateway()]) as srv:
            meter = sim.meters[0]
            request = phone_request(meter, sim.modem["numbers"][0])
            status = wait_done(srv, srv.test_request(request))
            self.assertEqual(comparable(status), predicted(sim.expect(meter, request)))
            self.assertEqual(status["result"], "SUCCESS")
            self.assertEqual(len(status["surveyData"][0]["readings"]), 48)
        self.assertEqual(sim.wait_all_hung_up()["now"], 0)


if __name__ == "__main__":
    unittest.main()

"""Success paths of every API method (spec + DECISIONS.md), over HTTPS on loopback."""

import datetime
import subprocess
import time
import unittest
import urllib.parse

from harness import (ServerTestCase, MTS_BIN, UTC_TIME_RE, Server, fmt_utc, parse_utc, utc_now, valid_request)


def date_minus(t, days):
    """The UTC date of datetime t minus `days` days, as yyyy-MM-dd."""
    return (t.date() - datetime.timedelta(days=days)).isoformat()


class ApiMethodsTest(ServerTestCase):

    def req(self, *a, **kw):
        return self.srv.request(*a, **kw)

    # ---------------------------------------------------------------- service-status

    def test_service_status_needs_no_token_and_matches_version(self):
        r = self.req("GET", "service-status", token=None)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["serviceVersion"], "0.1.0")
        self.assertEqual(r.json["status"], "OK")
        v = subprocess.run([MTS_BIN, "--version"], stdout=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(v.returncode, 0)
        self.assertEqual(v.stdout.strip(), r.json["serviceVersion"])
        # With a token it answers the same.
        r2 = self.req("GET", "service-status")
        self.assertEqual(r2.status, 200)
        self.assertEqual(r2.json["serviceVersion"], "0.1.0")

    # ---------------------------------------------------------------- test-request / test-status

    def test_test_request_returns_integer_test_id(self):
        r = self.req("POST", "test-request", json=valid_request(requestReference="tid-1"))
        self.assertEqual(r.status, 200)
        self.assertIsInstance(r.json["testId"], int)
        self.assertNotIsInstance(r.json["testId"], bool)
        r2 = self.req("POST", "test-request", json=valid_request(requestReference="tid-2"))
        self.assertEqual(r2.status, 200)
        self.assertNotEqual(r.json["testId"], r2.json["testId"])

    def test_test_status_echoes_every_request_field(self):
        body = {
            "requestReference": "echo-ABC",
            "immediate": True,
            "meterType": "ELSTERA1700",
            "remoteAddress": "+447777000123",
            "comsSettings": "7E1",
            "outstationAddress": "17",
            "serialNumber": "87654321",
            "password": "PW-echo-1",
            "surveyDays": 10,
            "surveyDate": "2019-12-01",
        }
        before = utc_now().replace(microsecond=0)
        tid = self.srv.test_request(body)
        after = utc_now()
        r = self.req("GET", "test-status?testId=%d" % tid)
        self.assertEqual(r.status, 200)
        s = r.json
        self.assertEqual(s["testId"], tid)
        self.assertEqual(s["requestReference"], "echo-ABC")
        self.assertIs(s["immediate"], True)
        self.assertEqual(s["meterType"], "ELSTERA1700")
        self.assertEqual(s["remoteAddress"], "+447777000123")
        self.assertEqual(s["comsSettings"], "7E1")
        self.assertEqual(s["outstationAddress"], "17")
        self.assertEqual(s["serialNumber"], "87654321")
        self.assertEqual(s["password"], "PW-echo-1")
        self.assertEqual(s["surveyDays"], 10)
        self.assertEqual(s["surveyDate"], "2019-12-01")
        self.assertEqual(s["resultSummary"], "PENDING")
        self.assertEqual(s["result"], "PENDING")
        self.assertRegex(s["testRequestTime"], UTC_TIME_RE)
        t = parse_utc(s["testRequestTime"])
        self.assertGreaterEqual(t, before - datetime.timedelta(seconds=1))
        self.assertLessEqual(t, after + datetime.timedelta(seconds=1))
        # Not run yet: no run times, no readings.
        for key in ("testStartTime", "testEndTime", "connectionStartTime", "connectionEndTime",
                    "surveyData", "registerValues", "meterTime"):
            self.assertNotIn(key, s)

    def test_tcp_address_and_other_meter_types_accepted(self):
        # Runs at any hour: the harness's overnight window is closed, so these non-immediate
        # tests are stored and never dialled (no connection, no name lookup).
        for meter, addr in (("ELSTERA1140", "127.1.2.3:4059"), ("IEC62056-21", "[::1]:4059"),
                            ("ELSTERA1700", "meter-7.example.net:10001")):
            tid = self.srv.test_request(valid_request(meterType=meter, remoteAddress=addr,
                                                      requestReference="tcp-" + meter))
            s = self.req("GET", "test-status?testId=%d" % tid).json
            self.assertEqual((s["meterType"], s["remoteAddress"]), (meter, addr))
            self.assertNotIn("comsSettings", s)

    def test_survey_date_defaults_to_request_date_minus_survey_days(self):
        # Runs at any time of day and date: the expected date is counted back from the UTC date
        # the server received the request at (testRequestTime), not from a clock read here,
        # so a request just before midnight, or at a month or year end, is judged the same.
        for days, date in ((3, None), (7, "")):  # an empty surveyDate is the same as a missing one
            tid = self.srv.test_request(valid_request(requestReference="sd-%d" % days,
                                                      surveyDays=days, surveyDate=date))
            s = self.req("GET", "test-status?testId=%d" % tid).json
            self.assertEqual(s["surveyDays"], days)
            self.assertEqual(s["surveyDate"], date_minus(parse_utc(s["testRequestTime"]), days))

    def test_survey_days_missing_means_zero(self):
        tid = self.srv.test_request(valid_request(requestReference="sd-none", surveyDays=None,
                                                  surveyDate=None))
        s = self.req("GET", "test-status?testId=%d" % tid).json
        self.assertEqual(s["surveyDays"], 0)
        self.assertEqual(s["resultSummary"], "PENDING")
        self.assertNotIn("surveyData", s)

    def test_minimal_request_password_still_present(self):
        tid = self.srv.test_request({"meterType": "ELSTERA1700", "remoteAddress": "0123456789"})
        s = self.req("GET", "test-status?testId=%d" % tid).json
        self.assertEqual(s["testId"], tid)
        self.assertIn("password", s)  # mandatory in the spec's response table
        self.assertIs(s.get("immediate", False), False)

    def test_query_parameter_names_are_case_insensitive(self):
        tid = self.srv.test_request(valid_request(requestReference="case-1"))
        for name in ("testId", "testid", "TESTID", "TestID"):
            r = self.req("GET", "test-status?%s=%d" % (name, tid))
            self.assertEqual(r.status, 200, name)
            self.assertEqual(r.json["testId"], tid)
        r = self.req("GET", "test-search?FROMTIME=%s&REQUESTREFERENCE=case-1&Limit=5"
                     % fmt_utc(time.time() - 3600))
        self.assertEqual(r.status, 200)
        self.assertEqual([x["testId"] for x in r.json["results"]], [tid])

    def test_search_values_are_url_decoded(self):
        ref = "A B&C=D+E%/\u00e9"
        tid = self.srv.test_request(valid_request(requestReference=ref))
        self.srv.test_request(valid_request(requestReference="A B"))
        r = self.req("GET", "test-search?fromTime=%s&requestReference=%s&limit=10"
                     % (urllib.parse.quote(fmt_utc(time.time() - 3600)),
                        urllib.parse.quote(ref, safe="")))
        self.assertEqual(r.status, 200)
        self.assertEqual([x["testId"] for x in r.json["results"]], [tid])
        self.assertEqual(r.json["results"][0]["requestReference"], ref)

    def test_largest_batch(self):
        items = [valid_request(requestReference="big-%d" % i, remoteAddress="0777700%04d" % i)
                 for i in range(1000)]  # limits.max_batch_size defaults to 1000
        r = self.req("POST", "batch-request", json=items)
        self.assertEqual(r.status, 200)
        st = self.req("GET", "batch-status?batchId=%d" % r.json["batchId"]).json
        self.assertEqual(st["totalCount"], 1000)
        self.assertEqual(len(st["status"]), 1000)
        self.assertEqual([x["requestReference"] for x in st["status"]],
                         ["big-%d" % i for i in range(1000)])
        r = self.req("POST", "batch-request", json=items + [valid_request()])
        self.assertEqual(r.status, 400)
        self.assertTrue(any("1000" in d for d in r.details), r.details)

    # ---------------------------------------------------------------- test-cancel

    def test_test_cancel_pending_test_with_body(self):
        # Runs at any hour: the harness's overnight window is closed, the test stays pending.
        tid = self.srv.test_request(valid_request(requestReference="cancel-body"))
        r = self.req("DELETE", "test-cancel", json={"testId": tid})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["testId"], tid)
        # Removed: the id is now unknown, which is a 400 (not 404).
        r = self.req("GET", "test-status?testId=%d" % tid)
        self.assertEqual(r.status, 400)
        self.assertTrue(any("testId" in d for d in r.details), r.details)
        # Cancelling it again: unknown as well.
        r = self.req("DELETE", "test-cancel", json={"testId": tid})
        self.assertEqual(r.status, 400)

    def test_test_cancel_with_query_parameter(self):
        tid = self.srv.test_request(valid_request(requestReference="cancel-query"))
        other = self.srv.test_request(valid_request(requestReference="cancel-query-other"))
        r = self.req("DELETE", "test-cancel?testId=%d" % tid)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["testId"], tid)
        self.assertEqual(self.req("GET", "test-status?testId=%d" % tid).status, 400)
        # Only that one went.
        self.assertEqual(self.req("GET", "test-status?testId=%d" % other).status, 200)
        # lower-case name in the query as well
        r = self.req("DELETE", "test-cancel?testid=%d" % other)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["testId"], other)

    def test_test_cancel_unknown_id_is_400(self):
        r = self.req("DELETE", "test-cancel", json={"testId": 987654321})
        self.assertEqual(r.status, 400)

    # ---------------------------------------------------------------- batches

    def test_batch_request_status_and_cancel(self):
        # Runs at any hour: the harness's overnight window is closed for the whole test, so the
        # non-immediate test with a TCP address (b-2) stays pending and can be cancelled too.
        items = [
            valid_request(requestReference="b-0", remoteAddress="07777000000"),
            valid_request(requestReference="b-1", remoteAddress="07777000001",
                          meterType="ELSTERA1140", surveyDays=3, surveyDate="2019-12-02"),
            valid_request(requestReference="b-2", remoteAddress="127.0.0.9:4059",
                          meterType="IEC62056-21"),
        ]
        r = self.req("POST", "batch-request", json=items)
        self.assertEqual(r.status, 200)
        bid = r.json["batchId"]
        self.assertIsInstance(bid, int)

        r = self.req("GET", "batch-status?batchId=%d" % bid)
        self.assertEqual(r.status, 200)
        b = r.json
        self.assertEqual(b["batchId"], bid)
        self.assertEqual(b["totalCount"], 3)
        self.assertEqual(b["completedCount"], 0)
        self.assertEqual(len(b["status"]), 3)
        ids = [x["testId"] for x in b["status"]]
        self.assertEqual(len(set(ids)), 3)
        self.assertEqual([x["requestReference"] for x in b["status"]], ["b-0", "b-1", "b-2"])
        self.assertEqual([x["meterType"] for x in b["status"]],
                         ["ELSTERA1700", "ELSTERA1140", "IEC62056-21"])
        self.assertEqual([x["remoteAddress"] for x in b["status"]],
                         ["07777000000", "07777000001", "127.0.0.9:4059"])
        self.assertEqual([x["resultSummary"] for x in b["status"]], ["PENDING"] * 3)
        # Each member is a normal test.
        s = self.req("GET", "test-status?testId=%d" % ids[1]).json
        self.assertEqual(s["surveyDays"], 3)
        self.assertEqual(s["surveyDate"], "2019-12-02")
        self.assertEqual(s["requestReference"], "b-1")
        # case-insensitive name
        self.assertEqual(self.req("GET", "batch-status?batchid=%d" % bid).status, 200)

        r = self.req("DELETE", "batch-cancel", json={"batchId": bid})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["batchId"], bid)
        self.assertEqual(r.json["cancelledCount"], 3)
        for tid in ids:
            self.assertEqual(self.req("GET", "test-status?testId=%d" % tid).status, 400)

    def test_batch_cancel_with_query_parameter_and_delete_completed(self):
        r = self.req("POST", "batch-request",
                     json=[valid_request(requestReference="bq-%d" % i) for i in range(2)])
        self.assertEqual(r.status, 200)
        bid = r.json["batchId"]
        r = self.req("DELETE", "batch-cancel?batchId=%d&deleteCompleted=true" % bid)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["batchId"], bid)
        self.assertEqual(r.json["cancelledCount"], 2)

    def test_batch_unknown_id_is_400(self):
        self.assertEqual(self.req("GET", "batch-status?batchId=987654321").status, 400)
        self.assertEqual(self.req("DELETE", "batch-cancel", json={"batchId": 987654321}).status, 400)


class MaskedPasswordTest(unittest.TestCase):
    def test_password_masked_when_configured(self):
        with Server(overrides=["--api.mask_passwords=true"]) as srv:
            tid = srv.test_request(valid_request(password="Secret-99"))
            s = srv.request("GET", "test-status?testId=%d" % tid).json
            self.assertEqual(s["password"], "********")
            self.assertNotIn("Secret-99", srv.request("GET", "test-status?testId=%d" % tid).body.decode())
            srv.stop()


class SearchTest(unittest.TestCase):
    """A fresh server holding a known set of tests; default_search_limit=2.

    Runs at any hour and date: the harness's overnight window is closed, so the non-immediate
    test with a TCP address (t3) stays PENDING like the others; the time ranges are counted
    from the clock here in seconds (no calendar arithmetic)."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(overrides=["--limits.default_search_limit=2"])
        cls.addClassCleanup(cls.srv.close)
        cls.t0 = time.time()
        s = cls.srv
        cls.t1 = s.test_request(valid_request(requestReference="R1", meterType="ELSTERA1700",
                                              remoteAddress="07777000001"))
        cls.t2 = s.test_request(valid_request(requestReference="R2", meterType="ELSTERA1140",
                                              remoteAddress="07777000002"))
        cls.t3 = s.test_request(valid_request(requestReference="R1X", meterType="IEC62056-21",
                                              remoteAddress="127.0.0.5:4059"))
        cls.t4 = s.test_request(valid_request(requestReference="R1", meterType="ELSTERA1700",
                                              remoteAddress="+447777000004"))
        r = s.request("POST", "batch-request", json=[
            valid_request(requestReference="B", remoteAddress="07777000005"),
            valid_request(requestReference="B", remoteAddress="07777000006")])
        assert r.status == 200, r
        cls.bid = r.json["batchId"]
        st = s.request("GET", "batch-status?batchId=%d" % cls.bid).json
        cls.t5, cls.t6 = [x["testId"] for x in st["status"]]
        cls.all = [cls.t1, cls.t2, cls.t3, cls.t4, cls.t5, cls.t6]
        cls.from_time = fmt_utc(cls.t0 - 120)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def search(self, query, status=200):
        r = self.srv.request("GET", "test-search?fromTime=%s%s" % (self.from_time, query))
        self.assertEqual(r.status, status, r)
        return r.json

    def ids(self, page):
        return [x["testId"] for x in page["results"]]

    def test_ids_are_in_received_order(self):
        self.assertEqual(self.all, sorted(self.all))

    def test_default_limit_applies(self):
        p = self.search("")
        self.assertEqual(p["totalResultCount"], 6)
        self.assertEqual(p["resultCount"], 2)
        self.assertEqual(p["offset"], 0)
        self.assertEqual(self.ids(p), [self.t1, self.t2])

    def test_summary_objects(self):
        p = self.search("&limit=10")
        self.assertEqual(p["resultCount"], 6)
        by_id = {x["testId"]: x for x in p["results"]}
        x = by_id[self.t3]
        self.assertEqual(x["requestReference"], "R1X")
        self.assertEqual(x["meterType"], "IEC62056-21")
        self.assertEqual(x["remoteAddress"], "127.0.0.5:4059")
        self.assertEqual(x["resultSummary"], "PENDING")
        self.assertRegex(x["receivedTimestamp"], UTC_TIME_RE)
        self.assertNotIn("completedTimestamp", x)
        self.assertNotIn("batchId", x)
        self.assertEqual(by_id[self.t5]["batchId"], self.bid)
        self.assertEqual(by_id[self.t6]["batchId"], self.bid)

    def test_request_reference_matches_exactly(self):
        p = self.search("&requestReference=R1&limit=10")
        self.assertEqual(p["totalResultCount"], 2)
        self.assertEqual(self.ids(p), [self.t1, self.t4])

    def test_meter_type_matches_exactly(self):
        p = self.search("&meterType=ELSTERA1140&limit=10")
        self.assertEqual(self.ids(p), [self.t2])
        p = self.search("&meterType=ELSTERA114&limit=10")
        self.assertEqual(p["totalResultCount"], 0)
        self.assertEqual(p["resultCount"], 0)
        self.assertEqual(p["results"], [])

    def test_remote_address_matches_substring(self):
        p = self.search("&remoteAddress=7777000&limit=10")
        self.assertEqual(self.ids(p), [self.t1, self.t2, self.t4, self.t5, self.t6])
        p = self.search("&remoteAddress=0.0.5:&limit=10")
        self.assertEqual(self.ids(p), [self.t3])
        p = self.search("&remoteAddress=%2B44&limit=10")  # "+44", URL-encoded
        self.assertEqual(self.ids(p), [self.t4])

    def test_status_filter(self):
        self.assertEqual(self.search("&status=PENDING&limit=10")["totalResultCount"], 6)
        self.assertEqual(self.search("&status=ALL&limit=10")["totalResultCount"], 6)
        p = self.search("&status=COMPLETED&limit=10")
        self.assertEqual((p["totalResultCount"], p["resultCount"], p["results"]), (0, 0, []))
        self.search("&status=DONE", status=400)

    def test_paging(self):
        p = self.search("&limit=2&offset=2")
        self.assertEqual((p["totalResultCount"], p["resultCount"], p["offset"]), (6, 2, 2))
        self.assertEqual(self.ids(p), [self.t3, self.t4])
        p = self.search("&limit=4&offset=5")
        self.assertEqual((p["totalResultCount"], p["resultCount"], p["offset"]), (6, 1, 5))
        self.assertEqual(self.ids(p), [self.t6])
        p = self.search("&limit=4&offset=6")
        self.assertEqual((p["totalResultCount"], p["resultCount"], p["results"]), (6, 0, []))

    def test_reverse_order(self):
        p = self.search("&limit=10&reverseOrder=true")
        self.assertEqual(self.ids(p), list(reversed(self.all)))
        p = self.search("&limit=2&offset=1&reverseOrder=TRUE")
        self.assertEqual(self.ids(p), [self.t5, self.t4])
        p = self.search("&limit=10&reverseOrder=false")
        self.assertEqual(self.ids(p), self.all)

    def test_limit_zero_counts_only(self):
        p = self.search("&limit=0")
        self.assertEqual(p["totalResultCount"], 6)
        self.assertEqual(p["resultCount"], 0)
        self.assertEqual(p.get("results", []), [])
        p = self.search("&limit=0&requestReference=R1")
        self.assertEqual(p["totalResultCount"], 2)

    def test_limit_over_maximum_is_400(self):
        r = self.srv.request("GET", "test-search?fromTime=%s&limit=1001" % self.from_time)
        self.assertEqual(r.status, 400)
        self.assertTrue(any("limit" in d and "1000" in d for d in r.details), r.details)
        self.assertEqual(self.search("&limit=1000")["resultCount"], 6)

    def test_range_over_max_search_days_is_400(self):
        start = fmt_utc(time.time() - 367 * 86400)
        r = self.srv.request("GET", "test-search?fromTime=%s" % start)
        self.assertEqual(r.status, 400)
        self.assertTrue(any("366" in d for d in r.details), r.details)
        # Explicit toTime: 366 days exactly is allowed, one second more is not.
        to = time.time()
        ok = self.srv.request("GET", "test-search?fromTime=%s&toTime=%s"
                              % (fmt_utc(to - 366 * 86400), fmt_utc(to)))
        self.assertEqual(ok.status, 200)
        bad = self.srv.request("GET", "test-search?fromTime=%s&toTime=%s"
                               % (fmt_utc(to - 366 * 86400 - 1), fmt_utc(to)))
        self.assertEqual(bad.status, 400)

    def test_time_range_filters_on_received_time(self):
        p = self.search("&toTime=%s" % fmt_utc(self.t0 - 60))
        self.assertEqual(p["totalResultCount"], 0)
        r = self.srv.request("GET", "test-search?fromTime=%s&toTime=%s&limit=10"
                             % (fmt_utc(self.t0 - 60), fmt_utc(time.time() + 60)))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["totalResultCount"], 6)

    def test_from_time_required(self):
        r = self.srv.request("GET", "test-search?limit=1")
        self.assertEqual(r.status, 400)
        self.assertTrue(any("fromTime" in d for d in r.details), r.details)


if __name__ == "__main__":
    unittest.main()

"""Error responses: 400 with every problem listed, 404, 405, 413, 415, and the envelope
(JSON object, Content-Type, no CORS) that every response carries."""

import json
import time
import unittest
import zlib

from harness import (ServerTestCase, JSON_CONTENT_TYPE, Server, check_envelope, fmt_utc, parse_raw_response,
                     valid_request)

SUPPORTED = ("ELSTERA1700", "ELSTERA1140", "IEC62056-21")

KNOWN = {
    "test-request": "POST",
    "batch-request": "POST",
    "test-cancel": "DELETE",
    "batch-cancel": "DELETE",
    "test-status": "GET",
    "test-transcript": "GET",
    "batch-status": "GET",
    "test-search": "GET",
    "service-status": "GET",
}


def detail_for(details, field):
    """The details that name `field`."""
    return [d for d in details if field in d]


class ValidationErrorsTest(ServerTestCase):

    def post(self, body, path="test-request"):
        return self.srv.request("POST", path, json=body)

    def count_reference(self, ref):
        r = self.srv.request("GET", "test-search?fromTime=%s&requestReference=%s&limit=0"
                             % (fmt_utc(time.time() - 3600), ref))
        self.assertEqual(r.status, 200)
        return r.json["totalResultCount"]

    def test_several_problems_reported_at_once(self):
        body = valid_request(remoteAddress="abc", surveyDays=-1)
        body["bogusField"] = 1
        r = self.post(body)
        self.assertEqual(r.status, 400)
        d = r.details
        self.assertGreaterEqual(len(d), 3, d)
        self.assertTrue(detail_for(d, "remoteAddress"), d)
        self.assertTrue(detail_for(d, "bogusField"), d)
        self.assertTrue(detail_for(d, "surveyDays"), d)
        # The remote address message the spec gives.
        self.assertTrue(any("Remote address is not in a recognised format" in x for x in d), d)

    def test_required_fields(self):
        r = self.post({})
        self.assertEqual(r.status, 400)
        self.assertTrue(detail_for(r.details, "meterType"), r.details)
        self.assertTrue(detail_for(r.details, "remoteAddress"), r.details)

    def test_unknown_field_named(self):
        # A misspelt "immediate" must not silently become an overnight test.
        r = self.post(valid_request(immediatly=True))
        self.assertEqual(r.status, 400)
        self.assertTrue(detail_for(r.details, "immediatly"), r.details)

    def test_wrong_types(self):
        r = self.post(valid_request(immediate="true", surveyDays="3", meterType=1700,
                                    password=1234))
        self.assertEqual(r.status, 400)
        for f in ("immediate", "surveyDays", "meterType", "password"):
            self.assertTrue(detail_for(r.details, f), (f, r.details))

    def test_unsupported_meter_type_lists_supported(self):
        r = self.post(valid_request(meterType="ELSTER1700"))
        self.assertEqual(r.status, 400)
        d = detail_for(r.details, "meterType")
        self.assertEqual(len(d), 1, r.details)
        for name in SUPPORTED:
            self.assertIn(name, d[0])
        # Exact spelling only.
        self.assertEqual(self.post(valid_request(meterType="elstera1700")).status, 400)

    def test_bad_remote_addresses(self):
        for addr in ("abc", "", "0777 700 0000", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536",
                     "host:port", "::1:4059", "[::1]", "07777000000;ATH", "+"):
            r = self.post(valid_request(remoteAddress=addr))
            self.assertEqual(r.status, 400, addr)
            self.assertTrue(detail_for(r.details, "remoteAddress"), (addr, r.details))

    def test_coms_settings_with_tcp_address_is_400(self):
        r = self.post(valid_request(remoteAddress="127.0.0.1:4059", comsSettings="7E1"))
        self.assertEqual(r.status, 400)
        self.assertTrue(detail_for(r.details, "comsSettings"), r.details)
        self.assertEqual(self.post(valid_request(comsSettings="8N1")).status, 200)

    def test_bad_coms_settings(self):
        for cs in ("7X1", "9N1", "7E3", "7E", "7E12"):
            r = self.post(valid_request(comsSettings=cs))
            self.assertEqual(r.status, 400, cs)
            self.assertTrue(detail_for(r.details, "comsSettings"), (cs, r.details))

    def test_survey_limits(self):
        r = self.post(valid_request(surveyDays=91))  # max_survey_days defaults to 90
        self.assertEqual(r.status, 400)
        self.assertTrue(any("surveyDays" in d and "90" in d for d in r.details), r.details)
        self.assertEqual(self.post(valid_request(surveyDays=90, surveyDate=None)).status, 200)
        for date in ("2019-13-01", "2019-02-30", "01/12/2019", "2019-12-1", "20191201"):
            r = self.post(valid_request(surveyDate=date))
            self.assertEqual(r.status, 400, date)
            self.assertTrue(detail_for(r.details, "surveyDate"), (date, r.details))

    def test_batch_is_all_or_nothing(self):
        ref = "aon-%d" % int(time.time() * 1000)
        good = valid_request(requestReference=ref)
        bad = valid_request(requestReference=ref, remoteAddress="abc")
        r = self.post([good, bad, good], path="batch-request")
        self.assertEqual(r.status, 400)
        self.assertTrue(r.details)
        for d in r.details:
            self.assertTrue(d.startswith("[1] "), r.details)
        self.assertTrue(any("remoteAddress" in d for d in r.details), r.details)
        self.assertEqual(self.count_reference(ref), 0)
        # Two bad elements: both reported with their own index.
        r = self.post([bad, good, valid_request(requestReference=ref, meterType="X")],
                      path="batch-request")
        self.assertEqual(r.status, 400)
        self.assertTrue(any(d.startswith("[0] ") for d in r.details), r.details)
        self.assertTrue(any(d.startswith("[2] ") for d in r.details), r.details)
        self.assertFalse(any(d.startswith("[1] ") for d in r.details), r.details)
        self.assertEqual(self.count_reference(ref), 0)

    def test_batch_shapes(self):
        self.assertEqual(self.post([], path="batch-request").status, 400)
        self.assertEqual(self.post(valid_request(), path="batch-request").status, 400)
        self.assertEqual(self.post([1], path="batch-request").status, 400)

    def test_batch_size_limit(self):
        with Server(overrides=["--limits.max_batch_size=3"]) as srv:
            ref = "bsz"
            r = srv.request("POST", "batch-request", json=[valid_request(requestReference=ref)] * 4)
            self.assertEqual(r.status, 400)
            self.assertTrue(any("3" in d for d in r.details), r.details)
            r = srv.request("POST", "batch-request", json=[valid_request(requestReference=ref)] * 3)
            self.assertEqual(r.status, 200)
            srv.stop()

    def test_id_parameters(self):
        for q in ("test-status", "test-status?testId=", "test-status?testId=abc",
                  "test-status?testId=0", "test-status?testId=-1", "test-status?testId=1.0",
                  "test-status?testId=99999999999999999999999", "batch-status",
                  "batch-status?batchId=x"):
            r = self.srv.request("GET", q)
            self.assertEqual(r.status, 400, q)
        r = self.srv.request("DELETE", "test-cancel", json={"testId": "1"})
        self.assertEqual(r.status, 400)
        r = self.srv.request("DELETE", "test-cancel", json={})
        self.assertEqual(r.status, 400)
        self.assertTrue(detail_for(r.details, "testId"), r.details)
        r = self.srv.request("DELETE", "test-cancel")  # no body and no query
        self.assertEqual(r.status, 400)

    def test_search_parameter_errors(self):
        f = fmt_utc(time.time() - 60)
        for q in ("fromTime=2024-01-01", "fromTime=%s&limit=-1" % f, "fromTime=%s&limit=x" % f,
                  "fromTime=%s&offset=-1" % f, "fromTime=%s&reverseOrder=yes" % f,
                  "fromTime=%s&status=pending-ish" % f, "fromTime=%s&toTime=yesterday" % f):
            r = self.srv.request("GET", "test-search?" + q)
            self.assertEqual(r.status, 400, q)


class HttpErrorsTest(ServerTestCase):
    overrides = ["--http.max_body_bytes=1024"]

    def test_unknown_url_is_404_with_details(self):
        for path in ("/MTS/nope", "/MTS/", "/MTS", "/", "/test-status", "/MTS/test-status/1",
                     "/MTS/TEST-STATUS", "/mts/test-status", "/MTS/test-statuss"):
            r = self.srv.request("GET", path)
            self.assertEqual(r.status, 404, path)
            self.assertIsNone(r.header("Allow"), path)
        r = self.srv.request("POST", "/MTS/nope", json={})
        self.assertEqual(r.status, 404)

    def test_wrong_verb_is_405_with_allow(self):
        r = self.srv.request("GET", "test-request")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "POST")
        r = self.srv.request("POST", "test-status?testId=1", json={})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "GET")
        for name, verb in KNOWN.items():
            for other in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
                if other == verb:
                    continue
                r = self.srv.request(other, name, body=b"{}" if other in ("POST", "PUT", "PATCH") else None)
                self.assertEqual(r.status, 405, (other, name))
                self.assertEqual(r.header("Allow"), verb, (other, name))

    def test_wrong_verb_without_token_is_still_405(self):
        r = self.srv.request("OPTIONS", "test-request", token=None,
                             headers={"Origin": "https://evil.example",
                                      "Access-Control-Request-Method": "POST"})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "POST")

    def test_no_cors_even_when_asked(self):
        for method, path in (("GET", "service-status"), ("GET", "test-search"),
                             ("POST", "test-request"), ("OPTIONS", "service-status")):
            # check_envelope asserts no Access-Control-* header
            self.srv.request(method, path, headers={"Origin": "https://evil.example"},
                             body=b"{}" if method == "POST" else None)

    def test_body_over_limit_is_413(self):
        body = valid_request(requestReference="x" * 200)
        body["pad"] = "y" * 1000
        r = self.srv.request("POST", "test-request", json=body)
        self.assertEqual(r.status, 413)
        self.assertTrue(any("1024" in d for d in r.details), r.details)
        # Exactly at the limit: read, and judged on its content (the unknown field "pad").
        small = b'{"meterType":"ELSTERA1700","remoteAddress":"07777000000","pad":"'
        small += b"z" * (1024 - len(small) - 2) + b'"}'
        self.assertEqual(len(small), 1024)
        r = self.srv.request("POST", "test-request", body=small)
        self.assertEqual(r.status, 400)
        self.assertTrue(detail_for(r.details, "pad"), r.details)
        self.assertTrue(self.srv.service_ok())

    def test_body_over_limit_without_token(self):
        r = self.srv.request("POST", "test-request", body=b"{" + b" " * 5000 + b"}", token=None)
        self.assertIn(r.status, (401, 413))

    def send_chunked(self, body, chunk=100):
        data = (b"POST /MTS/test-request HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + self.srv.token.encode() + b"\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for i in range(0, len(body), chunk):
            part = body[i:i + chunk]
            data += b"%x\r\n" % len(part) + part + b"\r\n"
        data += b"0\r\n\r\n"
        got, _ = self.srv.raw(data, timeout=10)
        resp = parse_raw_response(got)
        self.assertIsNotNone(resp, got[:300])
        return resp

    def test_chunked_body_is_refused_with_411(self):
        """The size limit holds whatever the framing: chunked bodies (which the HTTP library
        would read without any limit) are refused with 411 Length Required, large or small,
        and nothing is stored (docs/api.md)."""
        for size in (4096, 200):  # over and under the 1 KiB limit
            ref = "chunked-%d-%d" % (size, int(time.time() * 1000))
            body = json.dumps(valid_request(requestReference=ref)).encode()
            body = body[:-1] + b" " * (size - len(body)) + b"}"
            status, headers, payload = self.send_chunked(body)
            self.assertEqual(status, 411, payload)
            self.assertEqual(headers.get("content-type"), JSON_CONTENT_TYPE)
            self.assertIn("Content-Length", json.loads(payload)["details"][0])
            r = self.srv.request("GET", "test-search?fromTime=%s&requestReference=%s&limit=0"
                                 % (fmt_utc(time.time() - 600), ref))
            self.assertEqual(r.json["totalResultCount"], 0, "the chunked request was stored")
        self.assertTrue(self.srv.service_ok())

    def test_compressed_body_cannot_exceed_limit(self):
        """Content-Encoding is no way around the size limit either: a small gzip/deflate body
        that expands beyond it is refused (413), or the coding is refused (415); it is never
        stored. (Otherwise a 1 MiB gzip body expands to about 1 GiB in the server.)"""
        for coding in ("gzip", "deflate"):
            ref = "zip-%s-%d" % (coding, int(time.time() * 1000))
            body = json.dumps(valid_request(requestReference=ref)).encode()
            body = body[:-1] + b" " * (64 * 1024) + b"}"  # 64 KiB of valid JSON, limit 1 KiB
            wbits = 31 if coding == "gzip" else 15
            c = zlib.compressobj(9, zlib.DEFLATED, wbits)
            wire = c.compress(body) + c.flush()
            self.assertLess(len(wire), 1024)
            r = self.srv.request("POST", "test-request", body=wire,
                                 headers={"Content-Encoding": coding})
            self.assertIn(r.status, (413, 415), (coding, r))
            q = self.srv.request("GET", "test-search?fromTime=%s&requestReference=%s&limit=0"
                                 % (fmt_utc(time.time() - 600), ref))
            self.assertEqual(q.json["totalResultCount"], 0, "the %s request was stored" % coding)

    def test_range_header_does_not_break_the_envelope(self):
        """A client (or proxy) asking for a byte range still gets whole JSON objects with the
        API's content type and one of the API's status codes; never a slice of a body."""
        tid = self.srv.test_request(valid_request(requestReference="range"))
        for rng in ("bytes=0-5", "bytes=-3", "bytes=100-200", "bytes=0-1,3-4", "bytes=x"):
            for path, token in (("service-status", None), ("test-status?testId=%d" % tid, True)):
                kw = {} if token else {"token": None}
                r = self.srv.request("GET", path, headers={"Range": rng}, check=False, **kw)
                check_envelope(r, "Range: %s on %s" % (rng, path))
                # A well-formed range is ignored; a malformed Range header is refused by the
                # HTTP library before any handler runs (416, still with the JSON envelope).
                self.assertIn(r.status, (416,) if rng == "bytes=x" else (200,), (rng, path, r))
                if r.status == 200 and path == "service-status":
                    self.assertEqual(r.json["status"], "OK")

    def test_long_uri_and_header(self):
        r = self.srv.request("GET", "test-status?testId=1&x=" + "a" * 10000)
        self.assertIn(r.status, (400, 414))
        r = self.srv.request("GET", "test-status?testId=1", headers={"X-Big": "a" * 10000})
        self.assertEqual(r.status, 400)
        self.assertTrue(self.srv.service_ok())

    def test_unknown_url_without_token_is_404(self):
        r = self.srv.request("GET", "nope", token=None)
        self.assertEqual(r.status, 404)
        self.assertIsNone(r.header("WWW-Authenticate"))

    def test_non_json_content_type_is_415(self):
        for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx", None):
            r = self.srv.request("POST", "test-request", json=valid_request(), content_type=ct)
            self.assertEqual(r.status, 415, ct)
        r = self.srv.request("DELETE", "test-cancel", json={"testId": 1}, content_type="text/plain")
        self.assertEqual(r.status, 415)
        # Parameters and case of the media type do not matter.
        for ct in ("application/json; charset=utf-8", "Application/JSON"):
            r = self.srv.request("POST", "test-request", json=valid_request(), content_type=ct)
            self.assertEqual(r.status, 200, ct)

    def test_every_response_is_a_json_object_with_the_content_type(self):
        # request() checks the envelope on every call; this walks every status we can cause.
        seen = set()
        cases = [
            ("GET", "service-status", None, None),
            ("GET", "test-status?testId=1", None, "x"),
            ("GET", "test-status?testId=999999", None, None),
            ("GET", "nope", None, None),
            ("GET", "test-request", None, None),
            ("POST", "test-request", b"x" * 2000, None),
            ("POST", "test-request", b"{}", None),
        ]
        for method, path, body, token in cases:
            kw = {} if token is None else {"token": token}
            r = self.srv.request(method, path, body=body, **kw)
            self.assertEqual(r.header("Content-Type"), JSON_CONTENT_TYPE)
            seen.add(r.status)
        self.assertEqual(seen, {200, 400, 401, 404, 405, 413})


class PrefixTest(unittest.TestCase):
    def test_configured_prefix(self):
        with Server(overrides=["--http.prefix=/meter/api"]) as srv:
            r = srv.request("GET", "/meter/api/service-status", token=None)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json["status"], "OK")
            r = srv.request("POST", "/meter/api/test-request", json=valid_request())
            self.assertEqual(r.status, 200)
            for path in ("/MTS/service-status", "/meter/service-status", "/service-status",
                         "/meter/api/v2/service-status"):
                self.assertEqual(srv.request("GET", path, token=None).status, 404, path)
            srv.stop()

    def test_empty_prefix_serves_at_root(self):
        with Server(overrides=["--http.prefix="]) as srv:
            self.assertEqual(srv.request("GET", "/service-status", token=None).status, 200)
            self.assertEqual(srv.request("GET", "/MTS/service-status", token=None).status, 404)
            srv.stop()


if __name__ == "__main__":
    unittest.main()

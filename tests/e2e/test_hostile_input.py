"""Hostile input: malformed and oversized JSON, slow clients, plain HTTP, and TLS versions and
suites. After each attack the server must still answer service-status."""

import json
import os
import socket
import ssl
import stat
import time
import unittest
import warnings

from harness import (ServerTestCase, HOST, Server, insecure_context, parse_raw_response, read_response_or_close,
                     read_until_close, valid_request)

READ_TIMEOUT = 2
MARGIN = 3.0


def body_with_raw_value(field, raw):
    """A valid test-request whose `field` is the raw JSON text `raw`."""
    body = valid_request()
    body.pop(field, None)
    text = json.dumps(body)
    return (text[:-1] + ', "%s": %s}' % (field, raw)).encode("utf-8")


def body_with_raw_string_bytes(field, raw_bytes):
    """A valid test-request whose `field` is a JSON string holding raw_bytes verbatim."""
    body = valid_request()
    body.pop(field, None)
    text = json.dumps(body).encode("utf-8")
    return text[:-1] + b', "' + field.encode() + b'": "' + raw_bytes + b'"}'


class HostileBodyTest(ServerTestCase):
    overrides = ["--http.read_timeout_seconds=%d" % READ_TIMEOUT]

    def tearDown(self):
        # Whatever the test sent, the server is alive and answering.
        self.assertTrue(self.srv.running(), "server died:\n" + self.srv.log()[-3000:])
        self.assertTrue(self.srv.service_ok())

    def post(self, body, path="test-request"):
        return self.srv.request("POST", path, body=body)

    def assert_400(self, body, what, path="test-request", field=None):
        r = self.post(body, path)
        self.assertEqual(r.status, 400, (what, r))
        if field:
            self.assertTrue(any(field in d for d in r.details), (what, r.details))
        return r

    def test_malformed_json(self):
        for body in (b"{", b"}", b"{]", b"nul", b"{'meterType': 'ELSTERA1700'}",
                     b'{"meterType" "ELSTERA1700"}', b'{"a":1,}', b"[1,]", b"{} x", b"{}{}",
                     b'{"a":01}', b'{"a":.5}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
                     b'{"a":"\\x41"}', b"\x00", b"   ", b'"just a string"', b"null", b"42", b"true"):
            self.assert_400(body, body)

    def test_truncated_json(self):
        full = json.dumps(valid_request()).encode()
        for cut in (1, len(full) // 3, len(full) // 2, len(full) - 1):
            self.assert_400(full[:cut], cut)

    def test_empty_body_on_post(self):
        r = self.assert_400(b"", "empty")
        self.assertTrue(r.details)
        self.assert_400(b"", "empty batch", path="batch-request")

    def test_top_level_array_for_test_request(self):
        self.assert_400(json.dumps([valid_request()]).encode(), "array")
        self.assert_400(json.dumps(valid_request()).encode(), "object for batch", path="batch-request")

    def test_deep_nesting(self):
        for body in (b"[" * 100000, b"[" * 100000 + b"]" * 100000, b'{"a":' * 100000,
                     b'{"a":' * 100000 + b"1" + b"}" * 100000,
                     body_with_raw_value("requestReference", "[" * 50 + "]" * 50)):
            self.assert_400(body, body[:10])
            self.assert_400(body, body[:10], path="batch-request")

    def test_huge_numbers(self):
        for raw in ("1e400", "-1e400", str(2 ** 64), str(2 ** 63), str(2 ** 53 + 1), "9" * 400,
                    "1.0", "3.5", "-1", "true", '"3"', "[3]"):
            self.assert_400(body_with_raw_value("surveyDays", raw), raw)
        # The same for ids.
        for raw in ("1e400", str(2 ** 64), "9" * 400, "1.0", "0", "-5", str(2 ** 53)):
            r = self.srv.request("DELETE", "test-cancel", body=('{"testId": %s}' % raw).encode())
            self.assertEqual(r.status, 400, raw)

    def test_invalid_utf8(self):
        for raw in (b"\xc0\xaf", b"\xed\xa0\x80", b"\xff", b"\xe2\x82", b"abc\x80def",
                    b"\xf4\x90\x80\x80"):
            self.assert_400(body_with_raw_string_bytes("requestReference", raw), raw)
        # Also in a key.
        self.assert_400(b'{"\xff":1}', "key")

    def test_lone_surrogate_escape(self):
        self.assert_400(body_with_raw_string_bytes("requestReference", b"\\ud800"), "lone surrogate")

    def test_odd_bytes_in_query_strings(self):
        # Invalid UTF-8 and NUL in parameter names and values: a 400 (or an empty result for a
        # filter value), always with a well-formed JSON body (request() checks the envelope).
        for method, q in (("GET", "test-status?%FF=1"), ("GET", "test-status?testId=1&%C0%AF=2"),
                          ("GET", "test-status?testId=%FF"), ("GET", "test-status?testId=1%00"),
                          ("GET", "test-status?a%00b=1"), ("GET", "test-search?fromTime=%FF"),
                          ("DELETE", "test-cancel?%ED%A0%80=1"), ("GET", "batch-status?batchId=%E2%82")):
            r = self.srv.request(method, q)
            self.assertEqual(r.status, 400, q)
        r = self.srv.request("GET", "test-search?fromTime=2020-01-01T00:00:00Z&toTime=2020-02-01T00:00:00Z"
                                    "&requestReference=%FF%00")
        self.assertIn(r.status, (200, 400))

    def test_valid_unicode_round_trips(self):
        ref = "Z\u00fcrich \u20ac \U0001F600"
        r = self.post(json.dumps(valid_request(requestReference=ref), ensure_ascii=False).encode())
        self.assertEqual(r.status, 200)
        s = self.srv.request("GET", "test-status?testId=%d" % r.json["testId"]).json
        self.assertEqual(s["requestReference"], ref)

    def test_duplicate_keys(self):
        text = json.dumps(valid_request())
        self.assert_400((text[:-1] + ', "meterType": "ELSTERA1140"}').encode(), "dup meterType")
        self.assert_400(b'{"testId": 1, "testId": 2}', "dup testId", path="test-request")
        r = self.srv.request("DELETE", "test-cancel", body=b'{"testId": 1, "testId": 1}')
        self.assertEqual(r.status, 400)

    def test_nul_escape_in_string(self):
        self.assert_400(body_with_raw_string_bytes("requestReference", b"ab\\u0000cd"), "NUL",
                        field="requestReference")
        r = self.post(body_with_raw_string_bytes("requestReference", b"ab\\u0000cd"))
        self.assertTrue(any("control" in d for d in r.details), r.details)
        # Other control characters too (raw ones are not even valid JSON).
        self.assert_400(body_with_raw_string_bytes("password", b"a\\u0007b"), "BEL", field="password")
        self.assert_400(body_with_raw_string_bytes("password", b"a\nb"), "raw LF")

    def test_body_over_limit(self):
        with Server(overrides=["--http.max_body_bytes=4096"]) as srv:
            body = json.dumps(valid_request(requestReference="r" * 5000)).encode()
            r = srv.request("POST", "test-request", body=body)
            self.assertEqual(r.status, 413)
            # 1 MiB is refused without trouble as well.
            r = srv.request("POST", "test-request", body=b"[" * (1 << 20))
            self.assertEqual(r.status, 413)
            self.assertTrue(srv.service_ok())
            srv.stop()

    def test_bad_content_length_values(self):
        # All at once (each may take up to the read timeout), on separate connections.
        values = (b"-1", b"abc", b"18446744073709551616", b"99999999999999999999999999", b"+5")
        socks = []
        try:
            for cl in values:
                s = self.srv.tls_socket()
                socks.append(s)
                s.sendall(b"POST /MTS/test-request HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                          + self.srv.token.encode() + b"\r\nContent-Type: application/json\r\n"
                          b"Content-Length: " + cl + b"\r\n\r\n{}")
            deadline = time.monotonic() + READ_TIMEOUT + MARGIN
            for cl, s in zip(values, socks):
                got, elapsed, how = read_response_or_close(s, deadline)
                self.assertNotEqual(how, "timeout", "Content-Length %r: no answer, not closed" % cl)
                resp = parse_raw_response(got)
                if resp is not None:
                    self.assertIn(resp[0], (400, 413), (cl, got[:300]))
        finally:
            for s in socks:
                s.close()

    def test_many_bad_requests_then_good(self):
        for i in range(50):
            self.post(b"{" * (i + 1))
        self.assertEqual(self.post(json.dumps(valid_request()).encode()).status, 200)


class SlowClientTest(ServerTestCase):
    overrides = ["--http.read_timeout_seconds=%d" % READ_TIMEOUT]

    def tearDown(self):
        self.assertTrue(self.srv.running(), "server died:\n" + self.srv.log()[-3000:])
        self.assertTrue(self.srv.service_ok())

    def assert_closed_or_400(self, sock, what):
        """Within read_timeout + margin the server answers 400 or closes the connection."""
        t0 = time.monotonic()
        got, elapsed, how = read_response_or_close(sock, t0 + READ_TIMEOUT + MARGIN)
        self.assertNotEqual(how, "timeout", "%s: neither answered nor closed after %.1f s (got %r)"
                            % (what, elapsed, got[:300]))
        resp = parse_raw_response(got)
        if resp is not None:
            self.assertEqual(resp[0], 400, (what, got[:300]))
            self.assertIn(b'"details"', resp[2])
        else:
            self.assertEqual(how, "closed")
        return elapsed

    def test_incomplete_body(self):
        s = self.srv.tls_socket()
        try:
            s.sendall(b"POST /MTS/test-request HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      + self.srv.token.encode() + b"\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n" + b'{"meterType":')
            # Meanwhile other clients are served promptly.
            t = time.monotonic()
            self.assertTrue(self.srv.service_ok())
            self.assertLess(time.monotonic() - t, 1.5)
            self.assert_closed_or_400(s, "incomplete body")
        finally:
            s.close()

    def test_incomplete_headers(self):
        s = self.srv.tls_socket()
        try:
            s.sendall(b"POST /MTS/test-request HTTP/1.1\r\nHost: x\r\nContent-Ty")
            self.assert_closed_or_400(s, "incomplete headers")
        finally:
            s.close()

    def test_headers_sent_slowly(self):
        """One header line per second: the server may serve it or cut it off, but must not wait
        past its timeouts for a request line that never completes."""
        s = self.srv.tls_socket()
        try:
            s.sendall(b"GET /MTS/service-status HTTP/1.1\r\n")
            for i in range(3):
                time.sleep(0.5)
                try:
                    s.sendall(b"X-Slow-%d: 1\r\n" % i)
                except OSError:
                    break
            self.assert_closed_or_400(s, "stalled after slow headers")
        finally:
            s.close()

    def test_idle_tls_connection_and_stalled_handshake(self):
        # TCP connected, nothing sent: the handshake never starts.
        raw = socket.create_connection((HOST, self.srv.port), 10)
        try:
            t0 = time.monotonic()
            got, closed_after = read_until_close(raw, t0 + READ_TIMEOUT + MARGIN + 5)
            self.assertIsNotNone(closed_after, "silent TCP connection kept open")
        finally:
            raw.close()

    def test_plain_http_to_tls_port(self):
        raw = socket.create_connection((HOST, self.srv.port), 10)
        try:
            raw.sendall(b"GET /MTS/service-status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            t0 = time.monotonic()
            got, closed_after = read_until_close(raw, t0 + READ_TIMEOUT + MARGIN)
            self.assertIsNotNone(closed_after, "plain-HTTP connection kept open")
            self.assertFalse(got.startswith(b"HTTP/1.1 200"), got[:200])
            self.assertNotIn(b"serviceVersion", got)
        finally:
            raw.close()

    def test_many_parallel_slow_connections_do_not_block_service(self):
        socks = []
        try:
            for _ in range(8):
                s = self.srv.tls_socket()
                s.sendall(b"POST /MTS/test-request HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
                socks.append(s)
            t = time.monotonic()
            self.assertTrue(self.srv.service_ok())  # 16 threads, 8 occupied
            self.assertLess(time.monotonic() - t, 1.5)
            time.sleep(READ_TIMEOUT + 1)
        finally:
            for s in socks:
                s.close()


class TlsTest(ServerTestCase):

    def tearDown(self):
        self.assertTrue(self.srv.running(), "server died:\n" + self.srv.log()[-3000:])
        self.assertTrue(self.srv.service_ok())

    def handshake(self, ctx):
        s = socket.create_connection((HOST, self.srv.port), 10)
        try:
            t = ctx.wrap_socket(s, server_hostname=None)
        except BaseException:
            s.close()
            raise
        try:
            return t.version(), t.cipher()
        finally:
            t.close()

    def old_protocol_context(self, version):
        ctx = insecure_context()
        try:
            ctx.set_ciphers("DEFAULT@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # that is the point here
            try:
                ctx.minimum_version = version
                ctx.maximum_version = version
            except (ValueError, ssl.SSLError):
                pass
        return ctx

    def test_tls10_and_tls11_refused(self):
        # If the local OpenSSL cannot even offer these versions, the handshake fails on our
        # side; either way no connection may come up.
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            ctx = self.old_protocol_context(version)
            ok = False
            try:
                self.handshake(ctx)
                ok = True
            except (ssl.SSLError, OSError):
                pass
            self.assertFalse(ok, "%s accepted" % version)
        self.assertTrue(self.srv.service_ok())

    def test_tls12_cbc_suite_refused(self):
        ctx = insecure_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")
        ok = False
        try:
            self.handshake(ctx)
            ok = True
        except (ssl.SSLError, OSError):
            pass
        self.assertFalse(ok, "TLS 1.2 with ECDHE-ECDSA-AES128-SHA accepted")
        for cbc in ("ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"):
            ctx = insecure_context()
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(cbc)
            ok = False
            try:
                self.handshake(ctx)
                ok = True
            except (ssl.SSLError, OSError):
                pass
            self.assertFalse(ok, "%s accepted" % cbc)

    def test_tls12_aead_accepted(self):
        ctx = insecure_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        version, cipher = self.handshake(ctx)
        self.assertEqual(version, "TLSv1.2")
        self.assertTrue("GCM" in cipher[0] or "CHACHA20" in cipher[0], cipher)

    def test_tls13_works(self):
        ctx = insecure_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        version, _ = self.handshake(ctx)
        self.assertEqual(version, "TLSv1.3")
        conn = self.srv.connect(context=ctx)
        try:
            r = self.srv.request("GET", "service-status", token=None, conn=conn)
            self.assertEqual(r.status, 200)
            self.assertEqual(conn.sock.version(), "TLSv1.3")
        finally:
            conn.close()

    def test_generated_key_is_private(self):
        key = os.path.join(self.srv.dir, "key.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertTrue(os.path.exists(self.srv.cert))

    def test_certificate_verifies_for_localhost_only(self):
        conn = self.srv.connect(verify=True)
        try:
            self.assertEqual(self.srv.request("GET", "service-status", token=None, conn=conn).status, 200)
        finally:
            conn.close()
        conn = self.srv.connect(verify=True, server_hostname="mts.example.com")
        try:
            with self.assertRaises(ssl.SSLCertVerificationError):
                self.srv.request("GET", "service-status", token=None, conn=conn)
        finally:
            conn.close()
        # And a client with the system CAs only does not trust it.
        conn = self.srv.connect(context=ssl.create_default_context(), server_hostname="localhost")
        try:
            with self.assertRaises(ssl.SSLCertVerificationError):
                self.srv.request("GET", "service-status", token=None, conn=conn)
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()

"""Authentication (401/403), token life cycle on a running server, and rate limiting (429)."""

import sqlite3
import threading
import time
import unittest

from harness import ServerTestCase, Server, avoid_window_boundary, fmt_utc, valid_request

UNKNOWN_TOKEN = "mts_" + "A" * 43  # well-formed, never issued


class AuthTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.reader = cls.srv.create_token("reader", scope="MTS API read-only")

    def search_path(self):
        return "test-search?fromTime=%s&limit=1" % fmt_utc(time.time() - 600)

    def assert_401(self, r, what):
        self.assertEqual(r.status, 401, what)
        self.assertTrue((r.header("WWW-Authenticate") or "").startswith("Bearer"),
                        (what, r.header("WWW-Authenticate")))
        return r.body

    def test_valid_token_works(self):
        r = self.srv.request("GET", self.search_path())
        self.assertEqual(r.status, 200)
        # The scheme name is case-insensitive.
        r = self.srv.request("GET", self.search_path(), token=None,
                             headers={"Authorization": "bearer " + self.srv.token})
        self.assertEqual(r.status, 200)

    def test_missing_malformed_unknown_all_401_with_identical_bodies(self):
        tok = self.srv.token
        variants = {
            "missing": {"token": None},
            "empty header": {"token": None, "headers": {"Authorization": ""}},
            "scheme only": {"token": None, "headers": {"Authorization": "Bearer"}},
            "basic": {"token": None, "headers": {"Authorization": "Basic " + tok}},
            "no scheme": {"token": None, "headers": {"Authorization": tok}},
            "trailing junk": {"token": None, "headers": {"Authorization": "Bearer " + tok + "x"}},
            "truncated": {"token": tok[:-1]},
            "wrong prefix": {"token": "xyz_" + tok[4:]},
            "not base64url": {"token": tok[:-1] + "!"},
            "garbage": {"token": "abc"},
            "unknown": {"token": UNKNOWN_TOKEN},
            "changed one char": {"token": tok[:-1] + ("A" if tok[-1] != "A" else "B")},
        }
        bodies = {}
        for what, kw in variants.items():
            for method, path, body in (("GET", self.search_path(), None),
                                       ("POST", "test-request", b'{"meterType":"ELSTERA1700"}')):
                r = self.srv.request(method, path, body=body, **kw)
                bodies[(what, method)] = self.assert_401(r, what)
        self.assertEqual(len(set(bodies.values())), 1, bodies)

    def test_token_in_query_string_is_not_accepted(self):
        r = self.srv.request("GET", self.search_path() + "&access_token=" + self.srv.token, token=None)
        self.assert_401(r, "query token")

    def test_two_authorization_headers_refused(self):
        c = self.srv.connect()
        try:
            c.putrequest("GET", self.srv.url(self.search_path()))
            c.putheader("Authorization", "Bearer " + self.srv.token)
            c.putheader("Authorization", "Bearer " + self.srv.token)
            c.endheaders()
            r = c.getresponse()
            r.read()
            self.assertIn(r.status, (400, 401))
        finally:
            c.close()

    def test_every_method_but_service_status_needs_a_token(self):
        for method, path, body in (("POST", "test-request", b"{}"), ("POST", "batch-request", b"[]"),
                                   ("DELETE", "test-cancel", b'{"testId":1}'),
                                   ("DELETE", "batch-cancel", b'{"batchId":1}'),
                                   ("GET", "test-status?testId=1", None),
                                   ("GET", "batch-status?batchId=1", None),
                                   ("GET", self.search_path(), None)):
            self.assert_401(self.srv.request(method, path, body=body, token=None), path)
        self.assertEqual(self.srv.request("GET", "service-status", token=None).status, 200)

    def test_read_only_token(self):
        tid = self.srv.test_request(valid_request(requestReference="ro"))
        r = self.srv.request("POST", "batch-request", json=[valid_request(requestReference="ro")])
        self.assertEqual(r.status, 200)
        bid = r.json["batchId"]
        # Queries succeed.
        for path in ("test-status?testId=%d" % tid, "batch-status?batchId=%d" % bid,
                     self.search_path()):
            r = self.srv.request("GET", path, token=self.reader)
            self.assertEqual(r.status, 200, path)
        # Commands are forbidden, and nothing happens.
        for method, path, body in (("POST", "test-request", valid_request(requestReference="ro")),
                                   ("POST", "batch-request", [valid_request(requestReference="ro")]),
                                   ("DELETE", "test-cancel", {"testId": tid}),
                                   ("DELETE", "batch-cancel", {"batchId": bid})):
            r = self.srv.request(method, path, json=body, token=self.reader)
            self.assertEqual(r.status, 403, path)
            self.assertTrue(r.details)
        self.assertEqual(self.srv.request("DELETE", "test-cancel?testId=%d" % tid,
                                          token=self.reader).status, 403)
        self.assertEqual(self.srv.request("GET", "test-status?testId=%d" % tid).status, 200)
        r = self.srv.request("GET", "test-search?fromTime=%s&requestReference=ro&limit=0"
                             % fmt_utc(time.time() - 600))
        self.assertEqual(r.json["totalResultCount"], 2)

    def test_expired_token_refused_by_running_server(self):
        # Runs at any time and date: the expiry is set 5 s before the clock read here.
        tok = self.srv.create_token("soon-expired", days=1)
        self.assertEqual(self.srv.request("GET", self.search_path(), token=tok).status, 200)
        db = sqlite3.connect(self.srv.db, timeout=10)
        try:
            with db:
                n = db.execute("UPDATE tokens SET expires_time = ? WHERE name = ?",
                               (int(time.time()) - 5, "soon-expired")).rowcount
            self.assertEqual(n, 1)
        finally:
            db.close()
        r = self.srv.request("GET", self.search_path(), token=tok)
        body = self.assert_401(r, "expired")
        r2 = self.srv.request("GET", self.search_path(), token=UNKNOWN_TOKEN)
        self.assertEqual(body, r2.body)  # no observable difference from an unknown token

    def test_deleted_token_refused_on_open_keep_alive_connection(self):
        tok = self.srv.create_token("to-delete")
        conn = self.srv.connect()
        try:
            r = self.srv.request("GET", self.search_path(), token=tok, conn=conn)
            self.assertEqual(r.status, 200)
            sock = conn.sock
            self.assertIsNotNone(sock, "connection was not kept alive")
            self.srv.delete_token("to-delete")
            r = self.srv.request("GET", self.search_path(), token=tok, conn=conn)
            self.assertIs(conn.sock, sock, "the request did not use the same connection")
            body = self.assert_401(r, "deleted")
            r2 = self.srv.request("GET", self.search_path(), token=UNKNOWN_TOKEN)
            self.assertEqual(body, r2.body)
            # The other tokens are unaffected.
            self.assertEqual(self.srv.request("GET", self.search_path(), conn=conn).status, 200)
        finally:
            conn.close()

    def test_verified_tls_connection(self):
        conn = self.srv.connect(verify=True)
        try:
            r = self.srv.request("GET", "service-status", token=None, conn=conn)
            self.assertEqual(r.status, 200)
        finally:
            conn.close()


class RateLimitTest(unittest.TestCase):
    """Runs at any time of day: fixed windows of WINDOW seconds are aligned at multiples of W
    since the epoch (here, the top of each UTC hour), so each test that counts requests in one
    window first waits out the hour if less than a minute of it is left
    (avoid_window_boundary); test_allowed_again_after_retry_after waits for a 2 s boundary."""
    WINDOW = 3600

    def test_429_after_n_requests_with_retry_after(self):
        n = 5
        avoid_window_boundary(self.WINDOW)
        with Server(rate_limit=n, overrides=["--rate_limit.window_seconds=%d" % self.WINDOW]) as srv:
            other = srv.create_token("other")
            path = "test-search?fromTime=%s&limit=0" % fmt_utc(time.time() - 600)
            conn = srv.connect()
            try:
                for i in range(n):
                    self.assertEqual(srv.request("GET", path, conn=conn).status, 200, i)
                t = time.time()
                r = srv.request("GET", path, conn=conn)
                self.assertEqual(r.status, 429)
                self.assertTrue(r.details)
                ra = r.json["retryAfter"]
                self.assertIsInstance(ra, int)
                self.assertNotIsInstance(ra, bool)
                self.assertGreaterEqual(ra, 1)
                self.assertEqual(r.header("Retry-After"), str(ra))
                # Seconds until the fixed window (aligned at multiples of W) ends.
                expected = self.WINDOW - (t % self.WINDOW)
                self.assertLessEqual(abs(ra - expected), 2, (ra, expected))
                # Commands are limited as well, and a rejected request does not reset anything.
                r = srv.request("POST", "test-request", json=valid_request(), conn=conn)
                self.assertEqual(r.status, 429)
                self.assertEqual(r.header("Retry-After"), str(r.json["retryAfter"]))
            finally:
                conn.close()
            # The limit is per token: another token still has its own window.
            self.assertEqual(srv.request("GET", path, token=other).status, 200)
            srv.stop()

    def test_allowed_again_after_retry_after(self):
        n, window = 3, 2
        with Server(rate_limit=n, overrides=["--rate_limit.window_seconds=%d" % window]) as srv:
            path = "test-search?fromTime=%s&limit=0" % fmt_utc(time.time() - 600)
            conn = srv.connect()
            try:
                # Start just after a window boundary so the n requests share one window.
                time.sleep(window - (time.time() % window) + 0.05)
                codes = [srv.request("GET", path, conn=conn).status for _ in range(n + 1)]
                self.assertEqual(codes, [200] * n + [429])
                r = srv.request("GET", path, conn=conn)
                self.assertEqual(r.status, 429)
                ra = r.json["retryAfter"]
                self.assertIn(ra, range(1, window + 1))
                time.sleep(ra)
                self.assertEqual(srv.request("GET", path, conn=conn).status, 200)
            finally:
                conn.close()
            srv.stop()

    def test_limit_exact_under_concurrency(self):
        n, threads, per_thread = 40, 8, 15
        avoid_window_boundary(self.WINDOW)
        with Server(rate_limit=n, threads=16,
                    overrides=["--rate_limit.window_seconds=%d" % self.WINDOW]) as srv:
            path = "test-search?fromTime=%s&limit=0" % fmt_utc(time.time() - 600)
            statuses = []
            errors = []
            lock = threading.Lock()
            start = threading.Barrier(threads)

            def worker():
                conn = srv.connect()
                try:
                    start.wait(10)
                    for _ in range(per_thread):
                        r = srv.request("GET", path, conn=conn)
                        with lock:
                            statuses.append(r.status)
                except Exception as e:  # reported below
                    with lock:
                        errors.append(repr(e))
                finally:
                    conn.close()

            ts = [threading.Thread(target=worker) for _ in range(threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            self.assertFalse(any(t.is_alive() for t in ts), "client threads hung")
            self.assertEqual(errors, [])
            self.assertEqual(len(statuses), threads * per_thread)
            self.assertEqual(statuses.count(200), n)
            self.assertEqual(statuses.count(429), threads * per_thread - n)
            srv.stop()

    def test_requests_without_token_limited_per_ip(self):
        n = 6
        avoid_window_boundary(self.WINDOW)
        with Server(rate_limit=n, overrides=["--rate_limit.window_seconds=%d" % self.WINDOW]) as srv:
            # wait_ready() used one service-status call from this IP; failed authentications
            # count against the IP as well.
            codes = [srv.request("GET", "service-status", token=None).status for _ in range(3)]
            codes += [srv.request("GET", "test-status?testId=1", token=UNKNOWN_TOKEN).status
                      for _ in range(3)]
            self.assertEqual(codes[:5], [200, 200, 200, 401, 401])
            self.assertEqual(codes[5], 429)
            r = srv.request("GET", "service-status", token=None)
            self.assertEqual(r.status, 429)
            self.assertGreaterEqual(r.json["retryAfter"], 1)
            # A valid token has its own window.
            self.assertEqual(srv.request("GET", "test-status?testId=999").status, 400)
            srv.stop()


if __name__ == "__main__":
    unittest.main()

"""The `mts` command line: version, tokens, configuration errors, port conflicts, SIGTERM."""

import datetime
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (MTS_BIN, TOKEN_RE, Server, avoid_window_boundary, fmt_utc, free_port,
                     run_mts, utc_now, valid_request)

LIST_LINE = re.compile(
    r"^(?P<name>\S+)\s+(?P<scope>MTS API(?: read-only)?)\s+(?P<created>\S+Z)\s+"
    r"(?P<expires>\S+Z)(?P<expired> \(expired\))?\s+(?P<used>never|\S+Z)\s*$")


def token_list(db):
    r = run_mts(["token", "list", "--storage.path=" + db])
    if r.returncode != 0:
        raise AssertionError("token list failed: %s" % r.stderr)
    rows = {}
    for line in r.stdout.splitlines()[1:]:
        m = LIST_LINE.match(line)
        if not m:
            raise AssertionError("unparsable token list line %r in:\n%s" % (line, r.stdout))
        rows[m.group("name")] = m.groupdict()
    return r, rows


def db_files(directory):
    return [os.path.join(directory, f) for f in os.listdir(directory)
            if f.startswith("mts.db")]


class CliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mts-e2e-cli-")
        self.db = os.path.join(self.dir, "mts.db")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def create(self, name, days=30, scope=None, extra=()):
        args = ["token", "create", "--name", name, "--days", str(days),
                "--storage.path=" + self.db] + list(extra)
        if scope:
            args += ["--scope", scope]
        return run_mts(args)

    def test_version(self):
        r = run_mts(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^\d+\.\d+\.\d+\n$")
        self.assertEqual(r.stdout.strip(), "0.1.0")

    def test_token_create_prints_only_the_token(self):
        r1 = self.create("first")
        self.assertEqual(r1.returncode, 0, r1.stderr)
        self.assertEqual(r1.stdout.count("\n"), 1, r1.stdout)
        t1 = r1.stdout.rstrip("\n")
        self.assertRegex(t1, TOKEN_RE)
        self.assertNotIn(t1, r1.stderr)
        r2 = self.create("second")
        self.assertEqual(r2.returncode, 0, r2.stderr)
        t2 = r2.stdout.rstrip("\n")
        self.assertRegex(t2, TOKEN_RE)
        self.assertNotEqual(t1, t2)
        # Names are unique.
        r3 = self.create("first")
        self.assertNotEqual(r3.returncode, 0)
        self.assertEqual(r3.stdout, "")
        # The database never holds the token text.
        for path in db_files(self.dir):
            with open(path, "rb") as f:
                data = f.read()
            for t in (t1, t2):
                self.assertNotIn(t.encode(), data, path)
                self.assertNotIn(t[4:].encode(), data, path)

    def test_token_create_argument_errors(self):
        for bad in ({"--days": "0"}, {"--days": "3651"}, {"--days": "x"}, {"--scope": "admin"},
                    {"--name": ""}):
            opts = {"--name": "n", "--days": "5"}
            opts.update(bad)
            args = ["token", "create", "--storage.path=" + self.db]
            for k, v in opts.items():
                args += [k, v]
            r = run_mts(args)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertEqual(r.stdout, "", bad)

    def test_token_list(self):
        # Runs at any time and date: created and expiry times are checked against the clock
        # read here and against each other, in seconds (days * 86400, no calendar).
        before = int(time.time())
        ra = self.create("alpha", days=7)
        rb = self.create("beta", days=30, scope="MTS API read-only")
        after = int(time.time())
        self.assertEqual((ra.returncode, rb.returncode), (0, 0))
        ta, tb = ra.stdout.strip(), rb.stdout.strip()
        r, rows = token_list(self.db)
        header = r.stdout.splitlines()[0]
        for col in ("NAME", "SCOPE", "CREATED", "EXPIRES", "LAST USED"):
            self.assertIn(col, header)
        self.assertEqual(set(rows), {"alpha", "beta"})
        a, b = rows["alpha"], rows["beta"]
        self.assertEqual(a["scope"], "MTS API")
        self.assertEqual(b["scope"], "MTS API read-only")
        for row, days in ((a, 7), (b, 30)):
            created = int(datetime.datetime.strptime(row["created"], "%Y-%m-%dT%H:%M:%SZ")
                          .replace(tzinfo=datetime.timezone.utc).timestamp())
            expires = int(datetime.datetime.strptime(row["expires"], "%Y-%m-%dT%H:%M:%SZ")
                          .replace(tzinfo=datetime.timezone.utc).timestamp())
            self.assertGreaterEqual(created, before - 1)
            self.assertLessEqual(created, after + 1)
            self.assertEqual(expires - created, days * 86400)
            self.assertEqual(row["used"], "never")
            self.assertIsNone(row["expired"])
        for t in (ta, tb):
            self.assertNotIn(t, r.stdout + r.stderr)
            self.assertNotIn(t[4:], r.stdout + r.stderr)

    def test_token_list_shows_last_use(self):
        with Server(data_dir=self.dir) as srv:
            self.assertEqual(srv.request("GET", "test-search?fromTime=%s&limit=0"
                                         % fmt_utc(time.time() - 60)).status, 200)
            deadline = time.monotonic() + 10
            used = "never"
            while time.monotonic() < deadline:
                _, rows = token_list(self.db)
                used = rows["main"]["used"]
                if used != "never":
                    break
                time.sleep(0.2)
            self.assertRegex(used, r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
            t = datetime.datetime.strptime(used, "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc)
            self.assertLess(abs((utc_now() - t).total_seconds()), 120)
            srv.stop()

    def test_token_delete(self):
        self.assertEqual(self.create("gone").returncode, 0)
        r = run_mts(["token", "delete", "gone", "--storage.path=" + self.db])
        self.assertEqual(r.returncode, 0, r.stderr)
        _, rows = token_list(self.db)
        self.assertNotIn("gone", rows)
        r = run_mts(["token", "delete", "gone", "--storage.path=" + self.db])
        self.assertNotEqual(r.returncode, 0)

    def test_secrets_never_stored_or_logged(self):
        password = "MeterPw-7f3a9c"
        password2 = "OtherPw-1b2c3d"
        unknown = "mts_" + "Q" * 43
        with Server(data_dir=self.dir, overrides=["--log.level=trace"]) as srv:
            reader = srv.create_token("reader", scope="MTS API read-only")
            tid = srv.test_request(valid_request(password=password))
            self.assertEqual(srv.request("GET", "test-status?testId=%d" % tid).json["password"], password)
            srv.request("GET", "test-status?testId=%d" % tid, token=reader)
            srv.request("POST", "test-request", json=valid_request(password=password2, remoteAddress="x"))
            srv.request("POST", "test-request", json=valid_request(password=password2), token=reader)
            srv.request("POST", "test-request", json=valid_request(password=password2), token=unknown)
            srv.request("POST", "test-request", body=('{"password":"%s",' % password2).encode())
            srv.request("GET", "test-search?fromTime=%s&requestReference=%s"
                        % (fmt_utc(time.time() - 60), password2))
            srv.request("GET", "test-status?testId=1&token=%s" % srv.token)
            r = srv.request("POST", "batch-request", json=[valid_request(password=password2)])
            self.assertEqual(r.status, 200)
            srv.request("DELETE", "batch-cancel", json={"batchId": r.json["batchId"]})
            srv.stop()
            log = srv.log()
            self.assertIn("listening", log)  # the log is being captured at all
            for secret in (srv.token, srv.token[4:], reader, reader[4:], unknown, password, password2):
                self.assertNotIn(secret, log)
            for path in db_files(self.dir):
                with open(path, "rb") as f:
                    data = f.read()
                for t in (srv.token, reader):
                    self.assertNotIn(t.encode(), data, path)
                    self.assertNotIn(t[4:].encode(), data, path)


class ConfigErrorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mts-e2e-cfg-")
        self.db = os.path.join(self.dir, "mts.db")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def serve_must_fail(self, *args, timeout=10):
        r = run_mts(["serve", "--storage.path=" + self.db, "--http.port=%d" % free_port(),
                     "--edge.enabled=false"] + list(args),
                    timeout=timeout)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        return r

    def test_unknown_key_override(self):
        r = self.serve_must_fail("--http.nope=1")
        self.assertIn("http.nope", r.stderr)
        r = run_mts(["token", "create", "--name", "x", "--days", "1", "--storage.path=" + self.db,
                     "--http.nope=1"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("http.nope", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_unknown_key_in_file(self):
        cfg = os.path.join(self.dir, "mts.toml")
        with open(cfg, "w") as f:
            f.write("[http]\nthreads = 4\nnope = 1\n")
        r = self.serve_must_fail("--config", cfg)
        self.assertIn("http.nope", r.stderr)

    def test_bad_values_name_the_key(self):
        r = self.serve_must_fail("--http.port=0")
        self.assertIn("http.port", r.stderr)
        r = self.serve_must_fail("--http.port=70000")
        self.assertIn("http.port", r.stderr)
        r = self.serve_must_fail("--http.threads=many")
        self.assertIn("http.threads", r.stderr)
        r = self.serve_must_fail("--api.mask_passwords=yes")
        self.assertIn("api.mask_passwords", r.stderr)
        r = self.serve_must_fail("--rate_limit.requests=0")
        self.assertIn("rate_limit.requests", r.stderr)

    def test_config_file_is_used(self):
        with Server(config={"rate_limit": {"requests": 3, "window_seconds": 3600},
                            "limits": {"default_search_limit": 1}},
                    rate_limit=None, start=False) as srv:
            r = srv.mts("config", "get", "rate_limit.requests")
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "3"), r.stderr)
            r = run_mts(["config", "get", "rate_limit.requests", "--config", srv.config_path,
                         "--rate_limit.requests=7"])
            self.assertEqual(r.stdout.strip(), "7")  # an override beats the file
            avoid_window_boundary(3600)  # any hour: 4 requests in one rate-limit window
            srv.start()  # listens on the port written in the file
            path = "test-search?fromTime=%s" % fmt_utc(time.time() - 60)
            srv.test_request(valid_request())
            srv.test_request(valid_request())
            r = srv.request("GET", path)
            self.assertEqual(r.status, 200)
            self.assertEqual((r.json["totalResultCount"], r.json["resultCount"]), (2, 1))
            self.assertEqual(srv.request("GET", path).status, 429)  # 4th request of this token
            srv.stop()


class ProcessTest(unittest.TestCase):
    def test_second_server_on_same_port_fails_fast(self):
        with Server() as first:
            other = tempfile.mkdtemp(prefix="mts-e2e-second-")
            self.addCleanup(shutil.rmtree, other, True)
            t0 = time.monotonic()
            p = subprocess.Popen([MTS_BIN, "serve", "--storage.path=" + os.path.join(other, "mts.db"),
                                  "--http.port=%d" % first.port, "--http.threads=4", "--edge.enabled=false"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            try:
                out, err = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate(timeout=10)
                self.fail("second server still running after 5 s; stderr:\n" + err)
            self.assertLess(time.monotonic() - t0, 5)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(str(first.port), err)
            # The first one keeps answering, every time (no silently shared port).
            for _ in range(10):
                self.assertTrue(first.service_ok())
            first.stop()

    def test_sigterm_exits_cleanly(self):
        with Server() as srv:
            srv.test_request(valid_request())
            t0 = time.monotonic()
            srv.stop()  # asserts exit code 0 within 10 s
            self.assertLess(time.monotonic() - t0, 10)
            self.assertIn("stopped", srv.log())
            # The port is free again, and a restart on the same data works.
            srv.restart()
            self.assertTrue(srv.service_ok())
            srv.stop()

    def test_sigterm_with_idle_keep_alive_connection(self):
        """SIGTERM must not wait for idle keep-alive clients (any client with a connection
        pool has one): the server exits cleanly within the 10 s stop budget however long the
        keep-alive timeout is. The timeout is set to 30 s so that waiting for it cannot pass."""
        with Server(overrides=["--http.keep_alive_timeout_seconds=30"]) as srv:
            conn = srv.connect()
            try:
                self.assertEqual(srv.request("GET", "service-status", token=None, conn=conn).status, 200)
                srv.stop()
            finally:
                conn.close()

    def test_sigterm_with_slow_client_connected(self):
        with Server() as srv:  # read_timeout_seconds 5 (default) < the 10 s stop budget
            s = socket.create_connection(("127.0.0.1", srv.port), 10)
            try:
                s.sendall(b"\x16\x03\x01")  # the start of a TLS record, then nothing
                time.sleep(0.2)
                srv.stop()
            finally:
                s.close()


if __name__ == "__main__":
    unittest.main()

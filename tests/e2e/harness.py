"""End-to-end test harness: runs the real `mts` binary on loopback and talks HTTPS to it.

Python 3 standard library only. Every wait is bounded. Traffic goes to 127.0.0.1 only.

    srv = Server(overrides=["--api.mask_passwords=true"])   # starts, waits for service-status
    r = srv.request("POST", "test-request", json={...})      # default token, fresh connection
    r.status, r.json, r.header("Retry-After")
    srv.stop()                                               # SIGTERM, asserts exit code 0

The binary is taken from $MTS_BIN (CMake sets it), else ../../build/bin/mts.

The overnight window: the product's default (00:00-06:00 UTC) would make a test's outcome depend
on the hour the suite runs at (a non-immediate test is dispatched inside the window). So every
Server is started with a one-minute window about 12 hours away from the moment it starts
(closed_overnight_window(); started at 01:20 UTC, "13:20-13:21"), which no test outlasts.
A test that needs the window open, or a particular window, sets scheduler.overnight_window
itself (overrides or config); then the harness adds nothing.
"""

import datetime
import http.client
import json as jsonlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
MTS_BIN = os.environ.get("MTS_BIN") or os.path.normpath(
    os.path.join(HERE, "..", "..", "build", "bin", "mts"))

HOST = "127.0.0.1"
PREFIX = "/MTS"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
TOKEN_RE = re.compile(r"^mts_[A-Za-z0-9_-]{43}$")
UTC_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

START_TIMEOUT = 20.0   # until service-status answers
STOP_TIMEOUT = 10.0    # after SIGTERM
CLI_TIMEOUT = 30.0     # any one `mts token ...` command
REQUEST_TIMEOUT = 15.0  # socket timeout of client connections

_DEFAULT = object()


# ---------------------------------------------------------------- small helpers

def free_port():
    """A currently unused loopback port (bind port 0, close, use it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def fmt_utc(t):
    """datetime or unix seconds -> YYYY-MM-DDTHH:mm:ssZ."""
    if not isinstance(t, datetime.datetime):
        t = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def overnight_window(from_minutes, to_minutes, now=None):
    """A scheduler.overnight_window value (UTC, "HH:MM-HH:MM", may wrap midnight) from
    now + from_minutes to now + to_minutes, each cut down to its whole minute."""
    now = now or utc_now()
    a = now + datetime.timedelta(minutes=from_minutes)
    b = now + datetime.timedelta(minutes=to_minutes)
    return "%02d:%02d-%02d:%02d" % (a.hour, a.minute, b.hour, b.minute)


def closed_overnight_window(now=None):
    """The harness's default window: one minute, 12 hours from now, so it is closed for the
    whole life of any test whatever the time of day (and the date) the suite runs at."""
    return overnight_window(12 * 60, 12 * 60 + 1, now)


def avoid_window_boundary(window_seconds, margin=60):
    """Fixed windows start at floor(now/W)*W. If fewer than `margin` seconds remain in the
    current window, sleep into the next one, so a test has `margin` seconds in one window."""
    left = window_seconds - (time.time() % window_seconds)
    if left < margin:
        time.sleep(left + 1.0)


def wait_until(what, condition, limit, interval=0.05):
    """condition()'s first true value, polled until `limit` seconds; fails naming `what`."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("%s: not within %.0f s" % (what, limit))


def insecure_context():
    """Client context for the self-signed certificate: no verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in response object: %r" % keys)
    return dict(pairs)


def run_mts(args, timeout=CLI_TIMEOUT, env=None):
    """Runs the binary with args; returns CompletedProcess (text). Never waits unbounded."""
    try:
        return subprocess.run([MTS_BIN] + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, text=True, env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("`mts %s` did not finish within %s s" % (" ".join(args), timeout)) from e


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in received order
        self.body = body        # bytes
        self.json = None
        self.json_error = None
        try:
            self.json = jsonlib.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (ValueError, UnicodeDecodeError) as e:
            self.json_error = e

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_names(self):
        return [k for k, _ in self.headers]

    @property
    def details(self):
        return self.json.get("details") if isinstance(self.json, dict) else None

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:400])


def check_envelope(resp, context=""):
    """What DECISIONS asks of every response: JSON object body, exact Content-Type, no CORS,
    and an error body {"details": [strings...]} for every status other than 200."""
    where = " (%s)" % context if context else ""
    ct = resp.header("Content-Type")
    if ct != JSON_CONTENT_TYPE:
        raise AssertionError("Content-Type %r, expected %r%s: %r" % (ct, JSON_CONTENT_TYPE, where, resp))
    if not isinstance(resp.json, dict):
        raise AssertionError("body is not a JSON object%s: %r (%s)" % (where, resp, resp.json_error))
    cors = [k for k in resp.header_names() if k.lower().startswith("access-control-")]
    if cors:
        raise AssertionError("CORS headers %r sent%s" % (cors, where))
    if resp.status != 200:
        d = resp.json.get("details")
        if not (isinstance(d, list) and d and all(isinstance(x, str) and x for x in d)):
            raise AssertionError("error body without a non-empty details array of strings%s: %r"
                                 % (where, resp))


class _Conn(http.client.HTTPSConnection):
    """HTTPS connection to 127.0.0.1 that can present another name for SNI/verification."""

    def __init__(self, port, context, server_hostname=None, timeout=REQUEST_TIMEOUT):
        super().__init__(HOST, port, context=context, timeout=timeout)
        self._sni = server_hostname

    def connect(self):
        sock = socket.create_connection((HOST, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self._sni)
        except BaseException:
            sock.close()
            raise


def parse_raw_response(data):
    """(status, headers dict lower-case, body bytes) of the first response in data, or None."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = headers.get("content-length")
    if n is not None:
        body = body[:int(n)]
    return status, headers, body


# ---------------------------------------------------------------- the server

class Server:
    """One `mts serve` process with its own temporary data directory.

    overrides: extra "--section.key=value" arguments (later ones win).
    config: dict {section: {key: value}} written as TOML and passed with --config; when given,
            storage.path and http.port go into the file instead of the command line.
    token:  name of a full-scope token created before start (self.token), or None.
    threads / rate_limit: passed as --http.threads / --rate_limit.requests unless None (the
            harness default lifts the rate limit so that tests are not throttled).
    Unless overrides or config set scheduler.overnight_window, the server gets
    closed_overnight_window(): non-immediate tests stay pending whatever the hour.
    """

    def __init__(self, overrides=(), config=None, token="main", threads=16,
                 rate_limit=1000000, start=True, data_dir=None, port=None, edge=False):
        self._own_dir = data_dir is None
        self.dir = data_dir or tempfile.mkdtemp(prefix="mts-e2e-")
        self.db = os.path.join(self.dir, "mts.db")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.log_path = os.path.join(self.dir, "server.log")
        # Without `edge`, clients talk to `mts` directly (the development mode, documented as
        # unsafe on untrusted networks). With it, `mts serve` runs its nginx edge on
        # self.port and listens itself on self.server_port, as the README's command does.
        self.edge = edge
        self.port = port or free_port()
        self.server_port = free_port() if edge else self.port
        self.internal_port = free_port() if edge else None
        self.proc = None
        self._log_file = None
        self.config_path = None
        self.base = ["--http.threads=%d" % threads] if threads else []
        if edge:
            self.base += ["--edge.port=%d" % self.port, "--edge.internal_port=%d" % self.internal_port]
        else:
            self.base.append("--edge.enabled=false")
        if rate_limit is not None:
            self.base.append("--rate_limit.requests=%d" % rate_limit)
        window_given = any(o.startswith("--scheduler.overnight_window=") for o in overrides) or \
            "overnight_window" in (config or {}).get("scheduler", {})
        if not window_given:
            self.base.append("--scheduler.overnight_window=" + closed_overnight_window())
        if config is not None:
            cfg = {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in config.items()}
            cfg.setdefault("storage", {})["path"] = self.db
            cfg.setdefault("http", {})["port"] = self.server_port
            self.config_path = os.path.join(self.dir, "mts.toml")
            with open(self.config_path, "w") as f:
                f.write(to_toml(cfg))
        self.overrides = list(overrides)
        self.prefix = PREFIX
        if config is not None and "prefix" in config.get("http", {}):
            self.prefix = config["http"]["prefix"]
        for o in self.overrides:
            if o.startswith("--http.prefix="):
                self.prefix = o[len("--http.prefix="):]
        self.starts = 0
        try:
            self.token = self.create_token(token) if token else None
            if start:
                self.start()
        except BaseException:
            self.close()
            raise

    # -- command line

    def location_args(self):
        if self.config_path:
            return ["--config", self.config_path]
        return ["--storage.path=" + self.db, "--http.port=%d" % self.server_port]

    def mts(self, *args, timeout=CLI_TIMEOUT):
        """`mts <args> <location>`: a token/config command on this server's database."""
        return run_mts(list(args) + self.location_args(), timeout=timeout)

    def create_token(self, name, days=30, scope=None):
        args = ["token", "create", "--name", name, "--days", str(days)]
        if scope:
            args += ["--scope", scope]
        r = self.mts(*args)
        if r.returncode != 0:
            raise AssertionError("token create failed (%d): %s" % (r.returncode, r.stderr))
        token = r.stdout.strip()
        if not TOKEN_RE.match(token):
            raise AssertionError("token create printed %r" % r.stdout)
        return token

    def delete_token(self, name):
        r = self.mts("token", "delete", name)
        if r.returncode != 0:
            raise AssertionError("token delete failed (%d): %s" % (r.returncode, r.stderr))

    # -- process

    def serve_args(self):
        return [MTS_BIN, "serve"] + self.location_args() + self.base + self.overrides

    def start(self, timeout=START_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.serve_args(), stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=self._log_file)
        self.starts += 1
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mts serve exited with %s before answering:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                r = self.request("GET", "service-status", token=None, check=False, timeout=2)
                if r.status == 200:
                    return
                last = r
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.05)
        self.kill9()
        raise AssertionError("service-status did not answer within %s s (last: %r); log:\n%s"
                             % (timeout, last, self.log()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; fails unless the process exits with code 0 within `timeout`."""
        if not self.running():
            rc = self.proc.returncode if self.proc else None
            raise AssertionError("server not running at stop() (exit code %s); log:\n%s" % (rc, self.log()))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError("server did not exit within %s s of SIGTERM; log:\n%s" % (timeout, self.log()))
        finally:
            self._close_log()
        if rc != 0:
            raise AssertionError("server exited with %d after SIGTERM; log:\n%s" % (rc, self.log()))

    def kill9(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def restart(self):
        """Starts again on the same data directory and port (after stop() or kill9())."""
        return self.start()

    def close(self):
        """Cleanup: kills the process if still running and removes the data directory."""
        self.kill9()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _close_log(self):
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- HTTP

    def connect(self, verify=False, server_hostname=None, context=None, timeout=REQUEST_TIMEOUT):
        """A keep-alive connection. verify=True checks the generated certificate
        (data dir/cert.pem) against the name `localhost`."""
        if context is None:
            if verify:
                context = ssl.create_default_context(cafile=self.cert)
                server_hostname = server_hostname or "localhost"
            else:
                context = insecure_context()
        return _Conn(self.port, context, server_hostname, timeout)

    def url(self, path):
        return path if path.startswith("/") else self.prefix + "/" + path

    def request(self, method, path, body=None, json=_DEFAULT, headers=None, token=_DEFAULT,
                conn=None, check=True, content_type=_DEFAULT, timeout=REQUEST_TIMEOUT):
        """One request. path "test-status?testId=1" is put under the prefix (/MTS by default);
        "/x" is sent as is.
        body: bytes/str sent as given; json: a value serialised as the body.
        token: default self.token; None sends no Authorization header; a string is sent as
        "Bearer <string>". conn: a connection from connect() to reuse (keep-alive).
        check: assert the response envelope (check_envelope)."""
        hdrs = {"Accept": "application/json"}
        if json is not _DEFAULT:
            body = jsonlib.dumps(json)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None:
            hdrs["Content-Type"] = "application/json" if content_type is _DEFAULT else content_type
        if token is _DEFAULT:
            token = self.token
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        if headers:
            hdrs.update(headers)
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        own = conn is None
        c = conn or self.connect(timeout=timeout)
        try:
            c.request(method, self.url(path), body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            resp = Response(r.status, r.reason, r.getheaders(), data)
        finally:
            if own:
                c.close()
        if check:
            check_envelope(resp, "%s %s" % (method, path))
        return resp

    # -- raw sockets

    def tls_socket(self, context=None, timeout=REQUEST_TIMEOUT):
        sock = socket.create_connection((HOST, self.port), timeout)
        try:
            return (context or insecure_context()).wrap_socket(sock, server_hostname=None)
        except BaseException:
            sock.close()
            raise

    def raw(self, data, timeout=10.0):
        """Sends raw bytes over TLS and reads until the server closes or `timeout` passes.
        Returns (bytes received, seconds until close or None if still open)."""
        s = self.tls_socket(timeout=timeout)
        t0 = time.monotonic()
        try:
            s.sendall(data)
            return read_until_close(s, t0 + timeout)
        finally:
            s.close()

    # -- API shortcuts

    def test_request(self, fields, **kw):
        r = self.request("POST", "test-request", json=fields, **kw)
        if r.status != 200:
            raise AssertionError("test-request failed: %r" % r)
        return r.json["testId"]

    def service_ok(self):
        r = self.request("GET", "service-status", token=None)
        return r.status == 200 and r.json.get("status") == "OK"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ServerTestCase(unittest.TestCase):
    """One server for all tests of a class, started with the class's `overrides` and stopped
    (SIGTERM, clean exit checked) after them; killed in any case by the class cleanup."""
    overrides = []

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(overrides=list(cls.overrides))
        cls.addClassCleanup(cls.srv.close)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()


def read_until_close(sock, deadline):
    """Reads until EOF/reset or the monotonic deadline. Returns (data, elapsed or None)."""
    t0 = time.monotonic()
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return b"".join(chunks), None
        except (ssl.SSLError, ConnectionError, OSError):
            return b"".join(chunks), time.monotonic() - t0
        if not chunk:
            return b"".join(chunks), time.monotonic() - t0
        chunks.append(chunk)


def read_response_or_close(sock, deadline):
    """Reads until one complete HTTP response has arrived, the peer closes, or the monotonic
    deadline passes. Returns (data, elapsed seconds, how) with how in "response", "closed",
    "timeout"."""
    t0 = time.monotonic()
    data = b""
    while True:
        resp = parse_raw_response(data)
        if resp is not None:
            n = resp[1].get("content-length")
            if n is None or len(resp[2]) >= int(n):
                return data, time.monotonic() - t0, "response"
        left = deadline - time.monotonic()
        if left <= 0:
            return data, time.monotonic() - t0, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, time.monotonic() - t0, "timeout"
        except (ssl.SSLError, ConnectionError, OSError):
            return data, time.monotonic() - t0, "closed"
        if not chunk:
            return data, time.monotonic() - t0, "closed"
        data += chunk


def to_toml(cfg):
    """{section: {key: value}} as TOML; a section whose value is a list of dicts becomes an
    array of tables ([[meter_type]], [[modem]]), written after the [sections]."""
    out = []

    def keys_of(keys):
        for k, v in keys.items():
            if isinstance(v, bool):
                out.append("%s = %s" % (k, "true" if v else "false"))
            elif isinstance(v, int):
                out.append("%s = %d" % (k, v))
            else:
                out.append("%s = %s" % (k, jsonlib.dumps(str(v))))
        out.append("")
    for section, keys in cfg.items():
        if not isinstance(keys, list):
            out.append("[%s]" % section)
            keys_of(keys)
    for section, tables in cfg.items():
        if isinstance(tables, list):
            for keys in tables:
                out.append("[[%s]]" % section)
                keys_of(keys)
    return "\n".join(out)


def valid_request(**changes):
    """A valid test-request body (modem address); keyword arguments replace or add fields,
    a value of None removes the field."""
    body = {
        "requestReference": "REF",
        "meterType": "ELSTERA1700",
        "remoteAddress": "07777000000",
        "outstationAddress": "1",
        "serialNumber": "12345678",
        "password": "AAAA0000",
        "surveyDays": 10,
        "surveyDate": "2019-12-01",
    }
    for k, v in changes.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return body

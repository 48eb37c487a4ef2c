"""The meter simulator `mts-sim`: serve (JSON lines, sign-on, SIGTERM, SIGUSR1), expect, errors.

The binary is $MTS_SIM_BIN, else `mts-sim` next to $MTS_BIN (see harness.py).
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import HOST, MTS_BIN

MTS_SIM_BIN = os.environ.get("MTS_SIM_BIN") or os.path.join(os.path.dirname(MTS_BIN), "mts-sim")
TIMEOUT = 10.0


def free_port_run(n):
    """A first port such that it and the next n-1 are currently free on loopback."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOST, 0))
        first = s.getsockname()[1]
        s.close()
        if first + n > 65535:
            continue
        ok = True
        for p in range(first, first + n):
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind((HOST, p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return first
    raise AssertionError("no run of %d free ports found" % n)


def run_sim(args):
    return subprocess.run([MTS_SIM_BIN] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT)


def sign_on(port, request=b"/?!\r\n"):
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as s:
        s.sendall(request)
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        return data


class Served:
    """A running `mts-sim serve`; its JSON lines parsed."""

    def __init__(self, args, count):
        self.proc = subprocess.Popen([MTS_SIM_BIN, "serve"] + list(args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.meters = []
        deadline = time.monotonic() + TIMEOUT
        while len(self.meters) < count and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.meters.append(json.loads(line))
        if len(self.meters) != count:
            self.stop()
            raise AssertionError("expected %d meter lines, got %r; stderr: %s"
                                 % (count, self.meters, self.proc.stderr.read()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc, err


class SimTest(unittest.TestCase):
    def test_serve_three_meters(self):
        first = free_port_run(3)
        sim = Served(["--count", "3", "--port", str(first), "--seed", "7", "--type", "IEC62056-21"], 3)
        try:
            ports = set()
            serials = set()
            for i, m in enumerate(sim.meters):
                self.assertEqual(m["meterType"], "IEC62056-21")
                self.assertEqual(m["remoteAddress"], "%s:%d" % (HOST, first + i))
                self.assertEqual(m["outstationAddress"], str(i + 1))
                self.assertRegex(m["serialNumber"], r"^\d{8}$")
                self.assertRegex(m["password"], r"^[0-9A-F]{8}$")
                ports.add(m["port"])
                serials.add(m["serialNumber"])
                self.assertTrue(sign_on(m["port"]).startswith(b"/SIM"))
                addressed = ("/?%s!\r\n" % m["outstationAddress"]).encode()
                self.assertTrue(sign_on(m["port"], addressed).startswith(b"/SIM"))
            self.assertEqual(len(ports), 3)
            self.assertEqual(len(serials), 3)
            # The same seed gives the same meters.
            again = Served(["--count", "3", "--port", "0", "--seed", "7", "--type", "IEC62056-21"], 3)
            again.stop()
            self.assertEqual([m["serialNumber"] for m in again.meters],
                             [m["serialNumber"] for m in sim.meters])
            self.assertEqual([m["password"] for m in again.meters], [m["password"] for m in sim.meters])
            sim.proc.send_signal(signal.SIGUSR1)
            start = time.monotonic()
        finally:
            rc, err = sim.stop()
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(rc, 0, err)
        counters = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        self.assertGreaterEqual(len(counters), 1, err)
        self.assertEqual(counters[-1]["sessionsTotal"], 6)
        self.assertEqual(counters[-1]["sessionsNow"], 0)
        self.assertEqual([m["sessionsTotal"] for m in counters[-1]["meters"]], [2, 2, 2])

    def test_sigint_and_refused_meter(self):
        sim = Served(["--port", "0", "--fault", "refuse_connection"], 1)
        try:
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection((HOST, sim.meters[0]["port"]), timeout=TIMEOUT).close()
            sim.proc.send_signal(signal.SIGINT)
        finally:
            rc, err = sim.stop()
        self.assertEqual(rc, 0, err)

    def test_config_file(self):
        first = free_port_run(3)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "sim.toml")

            def write(text):
                with open(path, "w") as f:
                    f.write(text)

            def assert_refused(text, message):
                write(text)
                r = run_sim(["serve", "--config", path])
                self.assertEqual(r.returncode, 2)
                self.assertIn(message, r.stderr)

            write('seed = 5\n'
                  '[[meter]]\ntype = "IEC62056-21"\nport = %d\nserial = "00000042"\n'
                  'password = ""\noutstation_address = ""\nclock_offset_seconds = 0\n'
                  '[[meter]]\nport = %d\ncount = 2\nsilent = true\n' % (first, first + 1))
            sim = Served(["--config", path], 3)
            try:
                self.assertEqual(sim.meters[0]["serialNumber"], "00000042")
                self.assertEqual(sim.meters[0]["password"], "")
                self.assertEqual(sim.meters[0]["clockOffsetSeconds"], 0)
                self.assertEqual([m["port"] for m in sim.meters], [first, first + 1, first + 2])
                self.assertTrue(sign_on(first).startswith(b"/SIM"))
            finally:
                rc, err = sim.stop()
            self.assertEqual(rc, 0, err)
            assert_refused('[[meter]]\nport = 1\npace_baud = "fast"\n',
                           "meter[0].pace_baud: expected an integer")
            # Elster meters in a file: their identification; a password must have 8 characters.
            write('[[meter]]\ntype = "ELSTERA1140"\nport = %d\npassword = "ABCD1234"\n' % first)
            sim = Served(["--config", path], 1)
            try:
                self.assertEqual(sim.meters[0]["meterType"], "ELSTERA1140")
                self.assertEqual(sign_on(first), b"/GEC5120510070213@000\r\n")
            finally:
                rc, err = sim.stop()
            self.assertEqual(rc, 0, err)
            assert_refused('[[meter]]\ntype = "ELSTERA1700"\nport = 1\npassword = "secret"\n',
                           "meter[0].password: an ELSTERA1700 password has 8 characters")

    def test_expect_is_deterministic(self):
        request = json.dumps({"meterType": "IEC62056-21", "remoteAddress": "127.0.0.1:4001",
                              "serialNumber": "12345678", "password": "AAAA0000",
                              "surveyDays": 2, "surveyDate": "2024-02-28"})
        args = ["expect", "--type", "IEC62056-21", "--seed", "7", "--serial", "12345678",
                "--password", "AAAA0000", "--clock-offset", "-30", "--request", request,
                "--now", "2024-03-01T12:00:00Z"]
        a, b = run_sim(args), run_sim(args)
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.stdout, b.stdout)
        result = json.loads(a.stdout)
        self.assertEqual(result["result"], "SUCCESS")
        self.assertEqual(result["serialNumber"], "12345678")
        self.assertEqual(set(result), {"result", "serialNumber", "statusEvents", "registerValues",
                                       "surveyData"})
        self.assertEqual(len(result["registerValues"]), 6)
        for reg in result["registerValues"]:
            self.assertEqual(set(reg), {"name", "value", "units"})
        self.assertEqual(len(result["surveyData"]), 6)
        self.assertEqual(len(result["surveyData"][0]["readings"]), 96)  # 2 days of half hours
        wrong = run_sim(args[:-2] + ["--now", "2024-03-01T12:00:00Z", "--fault", "reject_password"])
        self.assertEqual(json.loads(wrong.stdout)["result"], "ERROR: password rejected")

    def test_unknown_type_is_a_clear_error(self):
        r = run_sim(["serve", "--type", "NOPE", "--port", "0"])
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown meter type "NOPE"', r.stderr)
        # The product's types are all simulated (the Elster ones since issue 4); a near miss is not.
        r = run_sim(["expect", "--type", "ELSTERA1800", "--seed", "1", "--serial", "1",
                     "--request", "{}", "--now", "2024-03-01T12:00:00Z"])
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown meter type "ELSTERA1800"', r.stderr)
        self.assertEqual(r.stdout, "")
        r = run_sim(["expect", "--type", "ELSTERA1140", "--seed", "1", "--serial", "1",
                     "--request", "{}", "--now", "2024-03-01T12:00:00Z"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["result"], "SUCCESS")
        r = run_sim(["expect", "--type", "ELSTERA1700", "--seed", "1", "--serial", "1",
                     "--password", "secret", "--request", "{}", "--now", "2024-03-01T12:00:00Z"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("8 characters", r.stderr)


if __name__ == "__main__":
    unittest.main()

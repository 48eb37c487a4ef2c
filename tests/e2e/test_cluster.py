"""A head and collector nodes as separate processes on loopback (issue 16, the joining part):
certificates and secrets made with `mts cluster`, collectors joining over mutual TLS, refusals
that say why, a stranger on the cluster port, a collector killed or frozen, a head restart.

Heartbeats are 2 s and a collector is lost after 3 missed ones (6 s), so each wait below is bounded
by a few of those (with room for a loaded machine); no test measures a duration.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import MTS_BIN, Server, free_port, run_mts, wait_until
from test_engine import START, SimulatedMeters, comparable, days_before_today, predicted, request_for, wait_all_done, \
    wait_done
from test_modem import GUARD_MS

HEARTBEAT = ["--cluster.heartbeat_seconds=2", "--cluster.missed_heartbeats=3"]
WAIT = 30.0  # bound of each wait for a log line or a state


def wait_for(what, check):
    return wait_until(what, check, WAIT, interval=0.1)


class Pki:
    """A cluster CA, node certificates and secrets in a temporary directory, made by `mts`."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mts-cluster-")
        self.run("cluster", "ca", "--dir", self.path("ca"))
        self.entries = {}

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run(self, *args):
        r = run_mts(list(args))
        if r.returncode != 0:
            raise AssertionError("mts %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def node(self, name, ca="ca"):
        self.run("cluster", "node-cert", "--ca-dir", self.path(ca), "--name", name, "--out", self.path(ca + "-nodes"))
        return self.path(ca, "cluster-ca.pem"), self.path(ca + "-nodes", name + ".pem"), \
            self.path(ca + "-nodes", name + ".key")

    def secret(self, name):
        out = self.path(name + ".secret")
        r = self.run("cluster", "secret", "--name", name, "--out", out)
        self.entries[name] = r.stdout.strip()
        return out

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Collector:
    def __init__(self, name, head_port, files, secret_file, work_dir, extra=()):
        ca, cert, key = files
        self.log_path = os.path.join(work_dir, "collector-%s-%d.log" % (name, free_port()))
        self.args = [MTS_BIN, "collector", "--collector.name=" + name, "--collector.secret_file=" + secret_file,
                     "--collector.head=127.0.0.1:%d" % head_port, "--collector.reconnect_max_seconds=1",
                     "--cluster.ca_file=" + ca, "--cluster.certificate_file=" + cert,
                     "--cluster.key_file=" + key] + HEARTBEAT + list(extra)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log_file.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)


class ClusterTest(unittest.TestCase):
    def setUp(self):
        self.pki = Pki()
        self.head_files = self.pki.node("head")
        self.a_files = self.pki.node("site-a")
        self.a_secret = self.pki.secret("site-a")
        self.pki.secret("site-b")
        self.cluster_port = free_port()
        ca, cert, key = self.head_files
        self.head = Server(overrides=["--cluster.port=%d" % self.cluster_port, "--cluster.address=127.0.0.1",
                                      "--cluster.ca_file=" + ca, "--cluster.certificate_file=" + cert,
                                      "--cluster.key_file=" + key,
                                      "--cluster.collectors=%s,%s" % (self.pki.entries["site-a"],
                                                                      self.pki.entries["site-b"])] + HEARTBEAT)
        self.collectors = []

    def tearDown(self):
        for c in self.collectors:
            c.stop()
        self.head.close()
        self.pki.close()

    def collector(self, name="site-a", files=None, secret=None):
        c = Collector(name, self.cluster_port, files or self.a_files, secret or self.a_secret, self.pki.dir)
        self.collectors.append(c)
        return c

    def collectors_status(self):
        r = self.head.request("GET", "service-status")
        self.assertEqual(r.status, 200)
        return {c["name"]: c for c in r.json["collectors"]}

    def joined(self, name="site-a"):
        return self.collectors_status()[name]["connected"]

    def head_log_count(self, text):
        return self.head.log().count(text)

    def test_a_collector_joins_and_is_listed_with_its_offer(self):
        status = self.collectors_status()
        self.assertEqual(set(status), {"site-a", "site-b"})
        self.assertEqual(status["site-a"], {"name": "site-a", "connected": False, "reason": "never joined"})
        c = self.collector()
        wait_for("site-a to join", self.joined)
        a = self.collectors_status()["site-a"]
        self.assertEqual(a["tcpSessions"], 100)
        self.assertEqual(a["modems"], [])
        self.assertFalse(self.collectors_status()["site-b"]["connected"])
        self.assertIn("cluster: collector site-a joined: 100 TCP sessions, 0 modem(s)", self.head.log())
        self.assertIn("collector site-a: joined the head at 127.0.0.1:%d" % self.cluster_port, c.log())
        # The secret is in no log.
        with open(self.a_secret) as f:
            secret = f.read().strip()
        self.assertNotIn(secret, self.head.log())
        self.assertNotIn(secret, c.log())
        self.assertEqual(c.stop(), 0)
        wait_for("the head to see it leave", lambda: not self.joined())
        self.assertIn("cluster: collector site-a left: it shut down", self.head.log())

    def test_a_wrong_secret_is_refused_saying_so_on_both_sides(self):
        wrong = self.pki.path("site-b.secret")  # site-b's secret, presented as site-a
        c = self.collector(secret=wrong)
        wait_for("the refusal", lambda: "the head at 127.0.0.1:%d refused it: wrong secret" % self.cluster_port in c.log())
        self.assertIn('cluster: collector "site-a" refused: wrong secret', self.head.log())
        self.assertEqual(self.collectors_status()["site-a"]["reason"], "refused: wrong secret")
        self.assertFalse(self.joined())

    def test_a_stranger_on_the_cluster_port_costs_a_joined_collector_nothing(self):
        self.collector()
        wait_for("site-a to join", self.joined)
        # Plain TCP clients, and a node whose certificate another CA issued (refused at the
        # TLS handshake; it names the possible causes in its own log).
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", self.cluster_port), timeout=5)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.close()
        self.pki.run("cluster", "ca", "--dir", self.pki.path("other"))
        other = self.pki.node("site-a", ca="other")
        intruder = self.collector(files=other)
        wait_for("the intruder's failure",
                 lambda: "collector site-a: cannot reach the head at 127.0.0.1:%d" % self.cluster_port in intruder.log())
        intruder.stop()
        # Longer than the head's timeout for a silent link (3 heartbeats, 6 s): nobody left.
        time.sleep(8)
        self.assertTrue(self.joined())
        self.assertEqual(self.head_log_count("cluster: collector site-a joined"), 1)
        self.assertEqual(self.head_log_count("cluster: collector site-a left"), 0)

    def test_a_collector_killed_or_frozen_is_noticed_and_joins_again(self):
        c = self.collector()
        wait_for("site-a to join", self.joined)
        c.proc.send_signal(signal.SIGSTOP)
        wait_for("the frozen collector to be noticed", lambda: not self.joined())
        self.assertIn("cluster: collector site-a left: its link was lost", self.head.log())
        c.proc.send_signal(signal.SIGCONT)
        wait_for("site-a to join again", self.joined)
        wait_for("the collector to say so", lambda: "joined the head at 127.0.0.1:%d again" % self.cluster_port in c.log())
        self.assertIn("collector site-a: lost the head", c.log())
        c.kill9()
        wait_for("the killed collector to be noticed", lambda: not self.joined())
        self.assertEqual(self.head_log_count("cluster: collector site-a left: its link was lost"), 2)
        # A new process of the same collector joins.
        self.collector()
        wait_for("site-a to join once more", self.joined)

    def test_collectors_join_again_after_a_head_restart(self):
        c = self.collector()
        wait_for("site-a to join", self.joined)
        self.head.stop()
        wait_for("the collector to notice", lambda: "collector site-a: lost the head" in c.log())
        self.head.restart()
        wait_for("site-a to join the new head", self.joined)
        self.assertIn("joined the head at 127.0.0.1:%d again" % self.cluster_port, c.log())


class ClusterDispatchTest(unittest.TestCase):
    """A head that runs no test itself (cluster.head_runs_tests = false) and two collectors, each
    with simulated meters of its own and one with a simulated modem: the tests go where the
    meters are reachable, give the results `mts-sim expect` predicts, and a collector killed
    mid-test leaves its test to the other, with one result and the meter never in two sessions."""

    def setUp(self):
        self.pki = Pki()
        ca, cert, key = self.pki.node("head")
        self.files = {n: self.pki.node(n) for n in ("site-a", "site-b")}
        self.secrets = {n: self.pki.secret(n) for n in ("site-a", "site-b")}
        self.cluster_port = free_port()
        self.head = Server(overrides=["--cluster.port=%d" % self.cluster_port, "--cluster.address=127.0.0.1",
                                      "--cluster.ca_file=" + ca, "--cluster.certificate_file=" + cert,
                                      "--cluster.key_file=" + key, "--cluster.head_runs_tests=false",
                                      "--scheduler.retry_delay_seconds=1",
                                      "--cluster.collectors=%s,%s" % (self.pki.entries["site-a"],
                                                                      self.pki.entries["site-b"])] + HEARTBEAT)
        self.collectors = {}
        self.sims = []

    def tearDown(self):
        for c in self.collectors.values():
            c.stop()
        for sim in self.sims:
            sim.stop()
        self.head.close()
        self.pki.close()

    def sim(self, count, seed, address, extra=(), faults=()):
        sim = SimulatedMeters(count, seed=seed, start_time=START, faults=faults,
                              extra_args=["--address", address] + list(extra))
        self.sims.append(sim)
        return sim

    def collector(self, name, extra=(), modems=()):
        """`mts collector` with a configuration file holding its [[modem]] tables."""
        config = self.pki.path(name + ".toml")
        with open(config, "w") as f:
            f.write("[modems]\ncooldown_seconds = 600\ncommand_timeout_seconds = 2\n"
                    "connect_timeout_seconds = 10\nguard_time_ms = %d\n" % GUARD_MS)
            for m in modems:
                f.write("\n[[modem]]\n")
                for k, v in m.items():
                    f.write("%s = %s\n" % (k, json.dumps(v)))
        c = Collector(name, self.cluster_port, self.files[name], self.secrets[name], self.pki.dir,
                      extra=["--config", config, "--scheduler.retry_delay_seconds=1"] + list(extra))
        self.collectors[name] = c
        return c

    def status(self):
        r = self.head.request("GET", "service-status")
        self.assertEqual(r.status, 200)
        return r.json

    def wait_joined(self, *names):
        wait_for("collectors %s to join" % ", ".join(names),
                 lambda: all(c["connected"] for c in self.status()["collectors"] if c["name"] in names))

    def test_tests_go_to_the_collector_that_reaches_their_meter(self):
        # Each collector has two meters and a modem of its own. Both simulated modems answer
        # the same numbers, so each collector's reach names the one number it is to dial.
        modem_args = ["--modem-port", "0", "--guard-time-ms", str(GUARD_MS), "--connect-delay-ms", "200"]
        near_a = self.sim(2, seed=41, address="127.0.0.2", extra=modem_args)
        modem_a = json.loads(near_a.proc.stdout.readline())["modem"]
        near_b = self.sim(2, seed=42, address="127.0.0.3", extra=modem_args)
        modem_b = json.loads(near_b.proc.stdout.readline())["modem"]
        self.collector("site-a", extra=["--collector.reach_networks=127.0.0.2/32",
                                        "--collector.reach_prefixes=" + modem_a["numbers"][0]],
                       modems=[{"name": "a-gw", "gateway": "127.0.0.2:%d" % modem_a["tcpPort"], "init": ["ATE0"]}])
        self.collector("site-b", extra=["--collector.reach_networks=127.0.0.3/32",
                                        "--collector.reach_prefixes=" + modem_b["numbers"][1]],
                       modems=[{"name": "b-gw", "gateway": "127.0.0.3:%d" % modem_b["tcpPort"], "init": ["ATE0"]}])
        self.wait_joined("site-a", "site-b")

        def case(sim, index, number=None):
            req = request_for(sim.meters[index], surveyDays=1, surveyDate=days_before_today(1))
            if number:
                req["remoteAddress"] = number
            return sim, sim.meters[index], req
        cases = {"a-tcp": case(near_a, 1), "a-phone": case(near_a, 0, modem_a["numbers"][0]),
                 "b-tcp": case(near_b, 0), "b-phone": case(near_b, 1, modem_b["numbers"][1])}
        ids = {name: self.head.test_request(req) for name, (_, _, req) in cases.items()}
        statuses = wait_all_done(self.head, ids, 120)
        self.assertEqual(set(statuses), set(cases))
        for name, (sim, meter, req) in cases.items():
            with self.subTest(case=name):
                self.assertEqual(comparable(statuses[name]), predicted(sim.expect(meter, req)))
        head_log = self.head.log()
        for name, test_id in ids.items():
            node = "site-a" if name.startswith("a") else "site-b"
            self.assertIn("scheduler: test %d started on %s" % (test_id, node), head_log)
        # The modems are listed with their collectors; what each collector runs is shown.
        status = self.status()
        self.assertIn({"name": "a-gw", "collector": "site-a", "state": "free"}, status["modems"])
        self.assertIn({"name": "b-gw", "collector": "site-b", "state": "free"}, status["modems"])
        for c in status["collectors"]:
            self.assertEqual((c["testsRunning"], c["tcpSessionsInUse"]), (0, 0))

    def test_a_collector_killed_mid_test_leaves_it_to_the_other_with_one_result(self):
        # Paced at 1200 baud, a session with a day of survey lasts several seconds.
        slow = self.sim(1, seed=43, address="127.0.0.1", faults=["pace_baud=1200"])
        self.collector("site-a", extra=["--collector.max_tcp_sessions=1"])
        self.collector("site-b", extra=["--collector.max_tcp_sessions=1"])
        self.wait_joined("site-a", "site-b")
        meter = slow.meters[0]
        req = request_for(meter, surveyDays=1, surveyDate=days_before_today(1))
        test_id = self.head.test_request(req)
        wait_for("the session to start", lambda: slow.counters()["sessionsNow"] == 1)
        first = "site-a" if "test %d started on site-a" % test_id in self.head.log() else "site-b"
        other = "site-b" if first == "site-a" else "site-a"
        self.assertIn("scheduler: test %d started on %s" % (test_id, first), self.head.log())
        self.collectors[first].kill9()
        st = wait_done(self.head, test_id)
        self.assertEqual(comparable(st), predicted(slow.expect(meter, req)))
        self.assertEqual(st["attempts"], 2)  # the lost run counts as one
        head_log = self.head.log()
        self.assertIn("scheduler: collector %s lost" % first, head_log)
        self.assertIn("scheduler: test %d started on %s (IEC62056-21 immediate) again, after 1 lost run(s)"
                      % (test_id, other), head_log)
        self.assertEqual(head_log.count("scheduler: test %d started on" % test_id), 2)
        counters = slow.stop()
        self.assertEqual(counters["meters"][0]["sessionsPeak"], 1)  # never two sessions at once
        self.assertEqual(counters["meters"][0]["sessionsTotal"], 2)

    def test_a_frozen_head_its_collector_ends_the_test_and_it_runs_again_once(self):
        # The collector's pings (every 2 s, given up after 6 s) tell it the head is gone; CAF
        # would not, as a frozen peer closes nothing.
        slow = self.sim(1, seed=44, address="127.0.0.1", faults=["pace_baud=1200"])
        c = self.collector("site-a", extra=["--collector.max_tcp_sessions=1"])
        self.wait_joined("site-a")
        meter = slow.meters[0]
        req = request_for(meter, surveyDays=1, surveyDate=days_before_today(1))
        test_id = self.head.test_request(req)
        wait_for("the session to start", lambda: slow.counters()["sessionsNow"] == 1)
        self.head.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for("the collector to give the head up", lambda: "collector site-a: lost the head" in c.log())
            self.assertIn("no answer to a ping within 6000 ms", c.log())
            wait_for("the collector to close the meter's session", lambda: slow.counters()["sessionsNow"] == 0)
        finally:
            self.head.proc.send_signal(signal.SIGCONT)
        st = wait_done(self.head, test_id)
        self.assertEqual(comparable(st), predicted(slow.expect(meter, req)))
        self.assertEqual(st["attempts"], 2)  # the lost run counts as one
        self.assertEqual(self.head.log().count("scheduler: test %d started on site-a" % test_id), 2)
        counters = slow.stop()
        self.assertEqual(counters["meters"][0]["sessionsPeak"], 1)
        self.assertEqual(counters["meters"][0]["sessionsTotal"], 2)


class ClusterCliTest(unittest.TestCase):
    def setUp(self):
        self.pki = Pki()

    def tearDown(self):
        self.pki.close()

    def test_secret_file_and_head_entry(self):
        out = self.pki.path("n1.secret")
        r = self.pki.run("cluster", "secret", "--name", "n1", "--out", out)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)
        with open(out) as f:
            secret = f.read().strip()
        import hashlib
        self.assertEqual(r.stdout.strip(), "n1=" + hashlib.sha256(secret.encode()).hexdigest())
        again = run_mts(["cluster", "secret", "--name", "n1", "--out", out])
        self.assertEqual(again.returncode, 2)
        self.assertIn("not overwritten", again.stderr)

    def test_a_collector_refuses_to_start_on_bad_files(self):
        files = self.pki.node("n1")
        secret = self.pki.secret("n1")
        base = ["collector", "--collector.name=n1", "--collector.head=127.0.0.1:%d" % free_port(),
                "--cluster.ca_file=" + files[0], "--cluster.certificate_file=" + files[1],
                "--cluster.key_file=" + files[2]]
        os.chmod(secret, 0o644)
        r = run_mts(base + ["--collector.secret_file=" + secret])
        self.assertEqual(r.returncode, 2)
        self.assertIn("others may read or write it (mode 0644); chmod 600 it", r.stderr)
        os.chmod(secret, 0o600)
        self.pki.run("cluster", "ca", "--dir", self.pki.path("other"))
        foreign = self.pki.node("n1", ca="other")
        r = run_mts(["collector", "--collector.name=n1", "--collector.head=127.0.0.1:1",
                     "--collector.secret_file=" + secret, "--cluster.ca_file=" + files[0],
                     "--cluster.certificate_file=" + foreign[1], "--cluster.key_file=" + foreign[2]])
        self.assertEqual(r.returncode, 1)
        self.assertIn("was not issued by the cluster CA", r.stdout + r.stderr)

    def test_a_head_refuses_to_start_without_its_cluster_files(self):
        srv = Server(overrides=["--cluster.port=%d" % free_port()], start=False)
        try:
            r = subprocess.run(srv.serve_args(), capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("cluster: a cluster node needs cluster.ca_file, cluster.certificate_file and cluster.key_file",
                          r.stdout + r.stderr)
        finally:
            srv.close()


if __name__ == "__main__":
    unittest.main()

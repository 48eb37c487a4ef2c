"""test-transcript: the per-attempt transcript of the bytes a test exchanged with its meter,
driven end to end (the real server over HTTPS, the real simulator over TCP). A meter that
"does not answer" shows the sign-on sent and nothing received; the password never appears."""

import unittest

from harness import Server
import test_engine
from test_engine import SimulatedMeters, request_for, wait_done
from test_sim import free_port_run

FAST_RETRY = ["--scheduler.retry_delay_seconds=1"]


def events(attempt):
    return [e["event"] for e in attempt["events"]]


class TranscriptTest(unittest.TestCase):
    START = test_engine.START  # runs at any time and date: see test_engine.START_TIME

    def transcript(self, srv, test_id, **kw):
        r = srv.request("GET", "test-transcript?testId=%d" % test_id, **kw)
        self.assertEqual(r.status, 200, r)
        return r

    def test_a_silent_meter_shows_the_sign_on_sent_and_no_answer(self):
        sim = SimulatedMeters(1, seed=21, start_time=self.START, faults=("silent",))
        self.addCleanup(sim.stop)
        meter = sim.meters[0]
        with Server(overrides=FAST_RETRY + ["--scheduler.max_attempts=2"]) as srv:
            test_id = srv.test_request(request_for(meter))
            st = wait_done(srv, test_id)
            self.assertEqual(st["result"], "ERROR: no answer to sign-on")
            r = self.transcript(srv, test_id)
            self.assertEqual(r.json["testId"], test_id)
            attempts = r.json["attempts"]
            self.assertEqual([a["attempt"] for a in attempts], [1, 2])
            for a in attempts:
                self.assertEqual(events(a), ["connecting", "link up", "sent", "timer", "end"], a)
                self.assertEqual(a["events"][0]["detail"], meter["remoteAddress"])
                self.assertEqual(a["events"][2]["data"], "/?%s!<CR><LF>" % meter["outstationAddress"])
                self.assertEqual(a["events"][4]["detail"], "no answer to sign-on")
                self.assertGreaterEqual(a["events"][3]["ms"] - a["events"][2]["ms"], 5000)  # response timeout
                self.assertEqual(a["droppedEvents"], 0)
            self.assertNotIn(meter["password"].encode(), r.body)

    def test_a_good_session_is_recorded_with_the_password_masked(self):
        sim = SimulatedMeters(1, seed=22, start_time=self.START)
        self.addCleanup(sim.stop)
        meter = sim.meters[0]
        with Server(overrides=FAST_RETRY) as srv:
            test_id = srv.test_request(request_for(meter))
            self.assertEqual(wait_done(srv, test_id)["result"], "SUCCESS")
            # A read-only token may read it, like test-status.
            reader = srv.create_token("reader", scope="MTS API read-only")
            r = self.transcript(srv, test_id, token=reader)
            self.assertNotIn(meter["password"].encode(), r.body)
            (attempt,) = r.json["attempts"]
            sent = [e["data"] for e in attempt["events"] if e["event"] == "sent"]
            received = [e["data"] for e in attempt["events"] if e["event"] == "received"]
            self.assertIn("<SOH>P1<STX>(********)<ETX>*", sent)
            self.assertTrue(received and received[0].startswith("/SIM5"), received[:2])
            self.assertEqual(attempt["events"][-1], {"ms": attempt["events"][-1]["ms"], "event": "end"})
            # The bound (default 16384 bytes per attempt) kept the head and dropped the rest of
            # the 2-day load profile's blocks only if it had to: the sum stays within it.
            cost = sum(16 + len(e["event"]) + len(e.get("data", e.get("detail", "")))
                       for e in attempt["events"][:-1])
            self.assertLessEqual(cost, 16384)

            # Parameters as for test-status.
            r = srv.request("GET", "test-transcript?testId=999999")
            self.assertEqual((r.status, r.details), (400, ["testId: no such test"]))
            r = srv.request("GET", "test-transcript")
            self.assertEqual((r.status, r.details), (400, ["testId: required"]))
            r = srv.request("GET", "test-transcript?testId=1&x=2")
            self.assertEqual((r.status, r.details), (400, ["x: unknown parameter"]))
            r = srv.request("GET", "test-transcript?testId=%d" % test_id, token=None)
            self.assertEqual(r.status, 401)
            r = srv.request("POST", "test-transcript?testId=%d" % test_id, json={})
            self.assertEqual((r.status, r.header("Allow")), (405, "GET"))

            # A test that has not run (a modem number stays queued) has no attempts yet.
            pending = srv.test_request(request_for(meter, remoteAddress="07777000000"))
            self.assertEqual(self.transcript(srv, pending).json, {"testId": pending, "attempts": []})

    def test_no_transcripts_when_turned_off(self):
        port = free_port_run(1)  # nothing listens there: refused at once
        meter = {"meterType": "IEC62056-21", "remoteAddress": "127.0.0.1:%d" % port,
                 "outstationAddress": "1", "serialNumber": "1", "password": "x"}
        with Server(overrides=FAST_RETRY + ["--scheduler.max_attempts=1",
                                            "--scheduler.transcript_max_bytes=0"]) as srv:
            test_id = srv.test_request(request_for(meter))
            self.assertIn("refused", wait_done(srv, test_id)["result"])
            self.assertEqual(self.transcript(srv, test_id).json, {"testId": test_id, "attempts": []})
        with Server(overrides=FAST_RETRY + ["--scheduler.max_attempts=1"]) as srv:
            test_id = srv.test_request(request_for(meter))
            wait_done(srv, test_id)
            (attempt,) = self.transcript(srv, test_id).json["attempts"]
            self.assertEqual(events(attempt), ["connecting", "connect failed", "end"])
            self.assertEqual(attempt["events"][2]["detail"], "cannot connect: connection refused")


if __name__ == "__main__":
    unittest.main()

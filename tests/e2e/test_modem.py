"""Dial-up meters end to end: the server dials simulated IEC62056-21 and Elster meters through the
simulated modem of `mts-sim` (a TCP serial gateway and a pseudo-terminal serial port), over
HTTPS, and test-status reports what `mts-sim expect` predicts; dial failures, wrong
comsSettings, a modem that stops answering, more tests than modems and cancellation. The
simulated modem counts calls, so every test also checks that every call was hung up."""

import json
import socket
import threading
import time
import unittest

from harness import Server
import test_engine
from test_engine import SimulatedMeters, comparable, predicted, wait_done

GUARD_MS = 100        # escape guard time, both sides
CONNECT_DELAY_MS = 200
# A whole day before the simulated meters' (frozen) now: 48 half hours.
# Runs at any time and date: counted from test_engine.TODAY, read once.
SURVEY_DATE = test_engine.days_before_today(2)


class SimulatedModem(SimulatedMeters):
    """`mts-sim serve` with meters, a modem on a TCP port and one on a pseudo-terminal."""

    def __init__(self, count, seed, start_time, connect_delay_ms=CONNECT_DELAY_MS, meter_type="IEC62056-21"):
        # The meters' own TCP ports are not used here: free ones.
        super().__init__(count, seed, start_time, meter_type=meter_type, port=0,
                         extra_args=["--modem-port", "0", "--modem-pty",
                                     "--connect-delay-ms", str(connect_delay_ms),
                                     "--guard-time-ms", str(GUARD_MS), "--drop-after-bytes", "40"])
        self.modem = json.loads(self.proc.stdout.readline())["modem"]

    def calls(self):
        """The modem's call counters, asked for with SIGUSR1."""
        return self.counters("modemCalls")["modemCalls"]

    def wait_all_hung_up(self):
        deadline = time.monotonic() + 30
        while True:
            c = self.calls()
            if c["now"] == 0 or time.monotonic() > deadline:
                return c
            time.sleep(0.2)

    def gateway(self, name="gw"):
        return {"name": name, "gateway": "127.0.0.1:%d" % self.modem["tcpPort"], "init": ["ATE0"]}

    def serial(self, name="tty"):
        return {"name": name, "device": self.modem["pty"], "baud": 9600, "init": ["ATE0"]}


def modem_server(modems, overrides=(), **modems_section):
    """A server whose pool holds `modems` ([[modem]] tables)."""
    section = {"cooldown_seconds": 600, "command_timeout_seconds": 2, "connect_timeout_seconds": 10,
               "guard_time_ms": GUARD_MS}
    section.update(modems_section)
    srv = Server(config={"modems": section}, start=False,
                 overrides=["--scheduler.retry_delay_seconds=1"] + list(overrides))
    with open(srv.config_path, "a") as f:
        for m in modems:
            f.write("\n[[modem]]\n")
            for k, v in m.items():
                f.write("%s = %s\n" % (k, json.dumps(v)))
    srv.start()
    return srv


def phone_request(meter, number, **changes):
    body = {"requestReference": "modem", "immediate": True, "meterType": meter["meterType"],
            "remoteAddress": number, "outstationAddress": meter["outstationAddress"],
            "serialNumber": meter["serialNumber"], "password": meter["password"], "surveyDays": 1,
            "surveyDate": SURVEY_DATE}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


class MuteModem:
    """A TCP 'gateway' whose modem reads and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def stop(self):
        self._stop = True
        self.thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


class ModemTest(unittest.TestCase):
    START = test_engine.EngineTest.START

    def sim(self, count=2, **kw):
        sim = SimulatedModem(count, seed=21, start_time=self.START, **kw)
        self.addCleanup(sim.stop)
        return sim

    def check_like_expect(self, sim, srv, meter, number, **changes):
        request = phone_request(meter, number, **changes)
        status = wait_done(srv, srv.test_request(request))
        expected = sim.expect(meter, request)
        self.assertEqual(comparable(status), predicted(expected))
        return status

    def test_success_through_a_tcp_gateway(self):
        sim = self.sim()
        with modem_server([sim.gateway()]) as srv:
            for i, meter in enumerate(sim.meters):
                status = self.check_like_expect(sim, srv, meter, sim.modem["numbers"][i])
                self.assertEqual(status["result"], "SUCCESS")
                self.assertEqual(len(status["surveyData"][0]["readings"]), 48)
                self.assertIn("connectionStartTime", status)
            calls = sim.wait_all_hung_up()
            self.assertEqual(calls["total"], 2)
            self.assertEqual(calls["now"], 0)
            # The meter ends the session after B0; either way no call is left up.
            self.assertEqual(calls["hangup"] + calls["meterClosed"], 2)
            st = srv.request("GET", "service-status", token=None).json
            self.assertEqual(st["status"], "OK")
            self.assertEqual(st["modems"], [{"name": "gw", "state": "free"}])

    def test_success_through_a_serial_port_with_7e1_set_on_the_port(self):
        sim = self.sim()
        with modem_server([sim.serial()]) as srv:
            meter = sim.meters[1]
            status = self.check_like_expect(sim, srv, meter, sim.modem["numbers"][1])
            self.assertEqual(status["result"], "SUCCESS")
            # The same meter with comsSettings given explicitly.
            status = self.check_like_expect(sim, srv, meter, sim.modem["numbers"][1], comsSettings="7E1")
            self.assertEqual(status["result"], "SUCCESS")
            calls = sim.wait_all_hung_up()
            self.assertEqual(calls["total"], 2)

    def test_elster_meters_through_a_tcp_gateway_and_a_serial_port(self):
        # The Elster session opens at 300 Bd and asks for 9600 Bd; over a call the line's speed
        # is the modem's, so the switch is not applied and the session goes on.
        for meter_type in ("ELSTERA1700", "ELSTERA1140"):
            sim = self.sim(count=2, meter_type=meter_type)
            for i, modem in enumerate([sim.gateway(), sim.serial()]):
                with self.subTest(meter_type=meter_type, modem=modem["name"]), modem_server([modem]) as srv:
                    meter = sim.meters[i]
                    status = self.check_like_expect(sim, srv, meter, sim.modem["numbers"][i])
                    self.assertEqual(status["result"], "SUCCESS")
                    self.assertEqual(status["serialNumber"], meter["serialNumber"])
                    self.assertEqual(len(status["surveyData"][0]["readings"]), 48)
                    self.assertTrue(status["registerValues"], status)
                    # The P2 operand is masked in the transcript even with its parity bits
                    # (the gateway call carries 7E1 in software: SOH P 2 STX are <x81>P<xB2><x82>).
                    transcript = srv.request("GET", "test-transcript?testId=%d" % status["testId"]).json
                    sent = [e["data"] for a in transcript["attempts"] for e in a["events"] if e["event"] == "sent"]
                    p2 = [d for d in sent if "P2" in d or "P<xB2>" in d]
                    self.assertTrue(p2, sent)
                    for d in p2:  # ")" is <xA9> with its parity bit
                        self.assertRegex(d, r"\(\*{8}(\)|<xA9>)<ETX>\*$")
                    self.assertNotIn(meter["password"], json.dumps(transcript))
            calls = sim.wait_all_hung_up()
            self.assertEqual(calls["total"], 2)
            self.assertEqual(calls["now"], 0)

    def test_dial_failures_are_reported_and_retried(self):
        sim = self.sim(count=1)
        with modem_server([sim.gateway()], overrides=["--scheduler.max_attempts=2"]) as srv:
            meter = sim.meters[0]
            cases = [(sim.modem["busy"], "ERROR: line busy"),
                     (sim.modem["noAnswer"], "ERROR: no answer"),
                     (sim.modem["noCarrier"], "ERROR: no carrier")]
            for number, result in cases:
                st = wait_done(srv, srv.test_request(phone_request(meter, number)))
                self.assertEqual(st["result"], result)
                self.assertNotIn("connectionStartTime", st)  # no call came up
            # A call dropped mid-session: the call came up, then NO CARRIER, on both attempts.
            st = wait_done(srv, srv.test_request(phone_request(meter, sim.modem["dropNumbers"][0])))
            self.assertEqual(st["result"], "ERROR: line dropped")
            calls = sim.wait_all_hung_up()
            self.assertEqual(calls["dropped"], 2)
            self.assertEqual(calls["total"], 2)
            self.assertIn("dial", srv.log())  # the attempts are logged

    def test_wrong_coms_settings_get_no_answer_and_every_call_is_hung_up(self):
        sim = self.sim(count=1)
        with modem_server([sim.gateway()], overrides=["--scheduler.max_attempts=2"]) as srv:
            meter = sim.meters[0]
            st = wait_done(srv, srv.test_request(phone_request(meter, sim.modem["numbers"][0], comsSettings="8N1")))
            self.assertEqual(st["result"], "ERROR: no answer to sign-on")
            calls = sim.wait_all_hung_up()
            self.assertEqual(calls["total"], 2)
            self.assertEqual(calls["hangup"], 2)  # the escape and ATH after each failed session
            st = wait_done(srv, srv.test_request(phone_request(meter, sim.modem["numbers"][0], comsSettings="8E1")))
            self.assertTrue(st["result"].startswith("ERROR: comsSettings 8E1 cannot be carried"), st)

    def test_a_modem_that_stops_answering_is_taken_out_of_service(self):
        sim = self.sim(count=1)
        mute = MuteModem()
        self.addCleanup(mute.stop)
        dead = {"name": "dead", "gateway": "127.0.0.1:%d" % mute.port}
        with modem_server([dead, sim.gateway("good")], overrides=["--scheduler.max_attempts=1"]) as srv:
            meter = sim.meters[0]
            # The first free modem is the dead one; the test moves on to the good one.
            st = wait_done(srv, srv.test_request(phone_request(meter, sim.modem["numbers"][0])))
            self.assertEqual(st["result"], "SUCCESS")
            modems = {m["name"]: m for m in srv.request("GET", "service-status", token=None).json["modems"]}
            self.assertEqual(modems["dead"]["state"], "out of service")
            self.assertEqual(modems["dead"]["reason"], "modem does not answer AT commands")
            self.assertEqual(modems["good"]["state"], "free")
            self.assertIn("modem dead: out of service", srv.log())

    def test_more_tests_than_modems_all_complete_never_more_calls_than_modems(self):
        sim = self.sim(count=6)
        with modem_server([sim.gateway("a"), sim.gateway("b")]) as srv:
            ids = [srv.test_request(phone_request(m, sim.modem["numbers"][i])) for i, m in enumerate(sim.meters)]
            for test_id in ids:
                self.assertEqual(wait_done(srv, test_id)["result"], "SUCCESS")
            calls = sim.wait_all_hung_up()
            self.assertEqual(calls["total"], 6)
            self.assertLessEqual(calls["peak"], 2)
            self.assertEqual(calls["peak"], 2)  # both modems were used at once

    def test_a_test_waiting_for_a_modem_can_be_cancelled(self):
        sim = self.sim(count=2, connect_delay_ms=1500)
        with modem_server([sim.gateway()]) as srv:
            first = srv.test_request(phone_request(sim.meters[0], sim.modem["numbers"][0]))
            waiting = srv.test_request(phone_request(sim.meters[1], sim.modem["numbers"][1]))
            r = srv.request("DELETE", "test-cancel", json={"testId": waiting})
            self.assertEqual(r.status, 200)
            self.assertEqual(srv.request("GET", "test-status?testId=%d" % waiting).status, 400)
            self.assertEqual(wait_done(srv, first)["result"], "SUCCESS")
            calls = sim.wait_all_hung_up()
            self.assertEqual(calls["total"], 1)  # the cancelled test never dialled


if __name__ == "__main__":
    unittest.main()

"""Meter types are data: a server whose configuration defines two new types on the existing
drivers (an A1700 whose meters keep UTC+60, an IEC 62056-21 type with another response
timeout) runs tests of simulated meters under those names, and test-status shows what the
setting does; meter-types lists them; SIGHUP adds a type without a restart, and a broken file
changes nothing.

The simulator reads the same configuration file (`--meter-types`), so it serves and predicts
meters of the configured types: a meter of A1700-BST keeps its clock at UTC+60 (plus its
drift), as a real meter of that type does."""

import calendar
import os
import signal
import time
import unittest

from harness import Server, parse_utc, to_toml
from test_engine import START, SimulatedMeters, comparable, days_before_today, predicted, request_for, wait_done

# The day before TODAY (test_engine: at least an hour before the meters' frozen moment, so
# that every half hour of it is complete on every meter's clock, whatever the time of day).
YESTERDAY = days_before_today(1)
RELOAD_LIMIT = 20.0  # seconds for a SIGHUP to show in the log and the API

BST_OFFSET_MINUTES = 60
NEW_TYPES = [
    {"name": "A1700-BST", "driver": "elster-a1700", "clock_utc_offset_minutes": BST_OFFSET_MINUTES,
     "reaction_delay_ms": 20, "baud_switch_delay_ms": 20},
    {"name": "IEC-PATIENT", "driver": "iec62056-21", "response_timeout_ms": 1500},
]
BUILT_IN = [("ELSTERA1700", "elster-a1700"), ("ELSTERA1140", "elster-a1140"), ("IEC62056-21", "iec62056-21"),
            ("DLMS", "dlms"), ("DLMS-SN", "dlms")]


def config(meter_types=NEW_TYPES, **sections):
    cfg = {"scheduler": {"retry_delay_seconds": 1, "max_attempts": 2}}
    cfg.update(sections)
    cfg["meter_type"] = list(meter_types)
    return cfg


def listed(srv):
    r = srv.request("GET", "meter-types")
    return [(t["name"], t["driver"]) for t in r.json["meterTypes"]]


def unreachable(meter_type):
    """A request for a meter that is never reached (the test stays queued or fails; only the
    validation matters)."""
    return request_for({"meterType": meter_type, "remoteAddress": "127.0.0.1:9", "outstationAddress": "1",
                        "serialNumber": "1", "password": "AAAA0000"}, immediate=False)


def meter_time(t):
    """A meterTime's time part (it has no Z: the offset follows it)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


class ConfiguredTypesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(config=config())
        cls.sims = []

    @classmethod
    def tearDownClass(cls):
        for sim in cls.sims:
            sim.stop()
        cls.server.close()

    def sim(self, meter_type, seed):
        types = ["--meter-types", self.server.config_path]
        sim = SimulatedMeters(1, seed=seed, start_time=START, meter_type=meter_type, extra_args=types,
                              expect_args=types)
        self.sims.append(sim)
        return sim, sim.meters[0]

    def test_meter_types_lists_the_built_in_and_the_configured_types(self):
        self.assertEqual(listed(self.server),
                         BUILT_IN + [(t["name"], t["driver"]) for t in NEW_TYPES])
        # A query: a read-only token may ask; without a token it is 401; only GET.
        reader = self.server.create_token("reader", scope="MTS API read-only")
        r = self.server.request("GET", "meter-types", token=reader)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.server.request("GET", "meter-types", token=None, check=False).status, 401)
        r = self.server.request("POST", "meter-types", json={}, check=False)
        self.assertEqual((r.status, r.header("Allow")), (405, "GET"))
        r = self.server.request("GET", "meter-types?x=1", check=False)
        self.assertEqual(r.status, 400)
        self.assertEqual(r.details, ["x: unknown parameter"])

    def test_an_a1700_type_with_another_clock_convention(self):
        sim, meter = self.sim("A1700-BST", seed=21)
        self.assertEqual(meter["meterType"], "A1700-BST")
        request = request_for(meter, surveyDays=1, surveyDate=YESTERDAY)
        status = wait_done(self.server, self.server.test_request(request))
        self.assertEqual(status["result"], "SUCCESS")
        self.assertEqual(comparable(status), predicted(sim.expect(meter, request)))
        self.assertEqual(len(status["surveyData"][0]["readings"]), 48)
        self.assertEqual(status["surveyData"][0]["readings"][0]["timestamp"], YESTERDAY + "T00:00:00Z")
        # The meter's clock runs at UTC+60 (frozen at the start time) plus its drift: read as
        # A1700-BST it is converted back to UTC, read as the built-in ELSTERA1700 (UTC) it is not.
        drift = meter["clockOffsetSeconds"]
        started = calendar.timegm(time.strptime(START, "%Y-%m-%dT%H:%M:%SZ"))
        self.assertEqual(status["meterTime"].split(" ")[0], meter_time(started + drift))
        as_builtin = dict(request, meterType="ELSTERA1700", surveyDays=0)
        plain = wait_done(self.server, self.server.test_request(as_builtin))
        self.assertEqual(plain["result"], "SUCCESS")
        self.assertEqual(plain["meterTime"].split(" ")[0], meter_time(started + drift + BST_OFFSET_MINUTES * 60))
        # The offsets (meter minus true time, each at its own reading) differ by the hour, less
        # the seconds between the two readings.
        bst_offset = int(status["meterTime"].split(" ")[1][:-1])
        plain_offset = int(plain["meterTime"].split(" ")[1][:-1])
        elapsed = (parse_utc(plain["connectionStartTime"]) - parse_utc(status["connectionStartTime"])).total_seconds()
        self.assertLessEqual(abs(plain_offset - bst_offset - 3600 + elapsed), 2 * 60)

    def test_an_iec_type_with_another_response_timeout(self):
        sim, meter = self.sim("IEC-PATIENT", seed=22)
        request = request_for(meter)
        status = wait_done(self.server, self.server.test_request(request))
        self.assertEqual(status["result"], "SUCCESS")
        self.assertEqual(status["meterType"], "IEC-PATIENT")
        self.assertEqual(comparable(status), predicted(sim.expect(meter, request)))

    def test_an_unknown_type_is_refused_with_the_list(self):
        r = self.server.request("POST", "test-request", json=unreachable("A1700-GMT"), check=False)
        self.assertEqual(r.status, 400)
        self.assertIn("A1700-BST", r.details[0])
        self.assertIn("IEC-PATIENT", r.details[0])


class ReloadTest(unittest.TestCase):
    def rewrite(self, srv, cfg):
        cfg = dict(cfg)
        cfg.setdefault("storage", {})["path"] = srv.db
        cfg.setdefault("http", {})["port"] = srv.server_port
        with open(srv.config_path, "w") as f:
            f.write(to_toml(cfg))

    def hup_and_wait_for(self, srv, text):
        seen = srv.log().count(text)
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_LIMIT
        while time.monotonic() < deadline:
            if srv.log().count(text) > seen:
                return
            time.sleep(0.1)
        self.fail("no %r in the log %.0f s after SIGHUP:\n%s" % (text, RELOAD_LIMIT, srv.log()))

    def test_sighup_adds_a_type_and_applies_limits_and_ignores_the_edge(self):
        with Server(config=config()) as srv:
            sim = SimulatedMeters(1, seed=23, start_time=START)  # a built-in IEC meter
            self.addCleanup(sim.stop)
            meter = sim.meters[0]
            late = request_for(meter, meterType="IEC-LATE")
            r = srv.request("POST", "test-request", json=late, check=False)
            self.assertEqual(r.status, 400)
            self.assertEqual(srv.request("POST", "batch-request", json=[unreachable("IEC62056-21")] * 3).status, 200)

            added = NEW_TYPES + [{"name": "IEC-LATE", "driver": "iec62056-21", "max_repeats": 1}]
            self.rewrite(srv, config(added, limits={"max_batch_size": 2}, edge={"port": 9999}))
            self.hup_and_wait_for(srv, "SIGHUP: configuration reloaded;")
            log = srv.log()
            self.assertIn("SIGHUP: meter_type.IEC-LATE: (none) -> driver iec62056-21", log)
            self.assertIn("SIGHUP: limits.max_batch_size: 1000 -> 2", log)
            self.assertIn("SIGHUP: edge.port: 8443 -> 9999 ignored: takes a restart", log)
            self.assertEqual(srv.starts, 1)
            self.assertTrue(srv.running())

            self.assertIn(("IEC-LATE", "iec62056-21"), listed(srv))
            status = wait_done(srv, srv.test_request(late))
            self.assertEqual(status["result"], "SUCCESS")
            self.assertEqual(status["meterType"], "IEC-LATE")
            r = srv.request("POST", "batch-request", json=[unreachable("IEC62056-21")] * 3, check=False)
            self.assertEqual(r.status, 400)
            self.assertIn("2", r.details[0])

    def test_sighup_with_a_broken_file_changes_nothing(self):
        with Server(config=config()) as srv:
            before = listed(srv)
            for broken in (config(NEW_TYPES + [{"name": "X", "driver": "modbus"}], limits={"max_batch_size": 2}),
                           config(NEW_TYPES + [NEW_TYPES[0]]),
                           config([{"name": "Y", "driver": "elster-a1700", "clock_utc_offset_minutes": 901}])):
                self.rewrite(srv, broken)
                self.hup_and_wait_for(srv, "SIGHUP: the configuration was not reloaded, the running one stays")
                self.assertTrue(srv.running())
                self.assertEqual(listed(srv), before)
            log = srv.log()
            self.assertIn("meter_type[2].driver: unknown driver \"modbus\"", log)
            self.assertIn("meter_type[2].name: \"A1700-BST\" is defined by another [[meter_type]] table", log)
            self.assertIn("meter_type[0].clock_utc_offset_minutes: 901 is out of range -900..900", log)
            self.assertNotIn("SIGHUP: limits.max_batch_size", log)
            r = srv.request("POST", "batch-request", json=[unreachable("A1700-BST")] * 3)
            self.assertEqual(r.status, 200)
            os.remove(srv.config_path)  # an unreadable file is refused as well
            self.hup_and_wait_for(srv, "SIGHUP: the configuration was not reloaded, the running one stays")
            self.assertEqual(listed(srv), before)


if __name__ == "__main__":
    unittest.main()

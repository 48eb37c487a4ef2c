"""Compact storage and retention, end to end (the real server over HTTPS, the real simulator
over TCP, the database looked at with Python's sqlite3 and zlib).

- Results are stored packed (zlib), and rows stored as text by an older build answer the same,
  byte for byte, before, during and after their conversion.
- Retention deletes completed tests and transcripts past their retention (set by SIGHUP here),
  the batches left empty, and never a pending test; service-status and the log count it.

Times: the rows are aged by whole days relative to the server's own clock (20 and 5 days
against retentions of 10 and 3), so the outcome does not depend on the time of day."""

import datetime
import json
import signal
import sqlite3
import struct
import unittest
import zlib

from harness import Server, fmt_utc, parse_utc, to_toml, utc_now
import test_engine
from test_engine import SimulatedMeters, days_before_today, request_for, wait_done
from test_engine_scheduling import wait_until

WAIT_LIMIT = 60.0  # seconds for a purge pass or a conversion to show
DAY = 86400


def unpack(blob):
    """The text of a packed value (persistence/packed_json.hpp): format 1, length, zlib."""
    assert blob[0] == 1, blob[:1]
    (length,) = struct.unpack("<I", blob[1:5])
    text = zlib.decompress(blob[5:])
    assert len(text) == length
    return text.decode("utf-8")


def wait_for(what, check, srv):
    try:
        return wait_until(what, check, WAIT_LIMIT)
    except AssertionError as e:
        raise AssertionError("%s; log:\n%s" % (e, srv.log())) from None


def storage_status(srv):
    return srv.request("GET", "service-status", token=None).json.get("storage")


class CompactStorageTest(unittest.TestCase):
    START = test_engine.START  # runs at any time: see test_engine.START_TIME

    def answers(self, srv, ids):
        """The exact bytes of every test-status and test-transcript answer."""
        out = {}
        for i in ids:
            for method in ("test-status", "test-transcript"):
                r = srv.request("GET", "%s?testId=%d" % (method, i))
                self.assertEqual(r.status, 200, r)
                out[(method, i)] = r.body
        return out

    def test_old_rows_answer_the_same_before_during_and_after_their_conversion(self):
        sim = SimulatedMeters(2, seed=31, start_time=self.START)
        self.addCleanup(sim.stop)
        # One row per conversion step, so the conversion takes several steps.
        with Server(overrides=["--storage.maintenance_step_rows=1"]) as srv:
            ten_days = request_for(sim.meters[0], surveyDays=10, surveyDate=days_before_today(11))
            ids = [srv.test_request(ten_days), srv.test_request(request_for(sim.meters[1]))]
            for i in ids:
                self.assertEqual(wait_done(srv, i)["result"], "SUCCESS")
            before = self.answers(srv, ids)
            srv.stop()

            # Stored packed: a fraction of the text, which is the readings test-status shows.
            db = sqlite3.connect(srv.db)
            self.addCleanup(db.close)
            rows = db.execute("SELECT id, readings, readings_json FROM tests ORDER BY id").fetchall()
            texts = {}
            for test_id, packed, text in rows:
                self.assertIsNone(text)
                texts[test_id] = unpack(packed)
                status = json.loads(before[("test-status", test_id)])
                self.assertEqual(json.loads(texts[test_id])["surveyData"], status["surveyData"])
            ten_day_text = texts[ids[0]]
            self.assertGreater(len(ten_day_text), 100000)
            self.assertLess(len(rows[0][1]) * 8, len(ten_day_text))
            transcripts = {t: unpack(p) for t, p in
                           db.execute("SELECT test_id, transcript FROM test_transcripts").fetchall()}
            self.assertEqual(set(transcripts), set(ids))

            # The database as a build before the compact encoding left it (schema version 4).
            with db:
                for test_id, text in texts.items():
                    db.execute("UPDATE tests SET readings_json = ?, readings = NULL WHERE id = ?", (text, test_id))
                for test_id, text in transcripts.items():
                    db.execute("UPDATE test_transcripts SET transcript_json = ?, transcript = NULL WHERE test_id = ?",
                               (text, test_id))
            db.execute("ALTER TABLE tests DROP COLUMN readings")
            db.execute("ALTER TABLE test_transcripts DROP COLUMN transcript")
            db.execute("DROP TABLE storage_conversion")
            db.execute("DROP INDEX tests_state_received_time")  # version 6's index
            db.execute("CREATE INDEX tests_state ON tests (state)")
            for trigger in ("tokens_inserted", "tokens_deleted", "tokens_updated"):  # version 7's
                db.execute("DROP TRIGGER %s" % trigger)
            db.execute("DROP TABLE token_changes")
            with db:
                db.execute("DELETE FROM schema_migrations WHERE version >= 5")

            srv.restart()  # migrates to version 7 and converts in the background
            self.assertEqual(self.answers(srv, ids), before)
            wait_for("the conversion", lambda: "conversion to the compact encoding complete" in srv.log(), srv)
            self.assertEqual(self.answers(srv, ids), before)
            self.assertIn("database ready (schema version 7", srv.log())
            self.assertEqual(db.execute("SELECT COUNT(*) FROM tests WHERE readings_json IS NOT NULL "
                                        "OR readings IS NULL").fetchone()[0], 0)
            self.assertEqual(db.execute("SELECT COUNT(*) FROM test_transcripts WHERE transcript IS NULL "
                                        "OR transcript_json <> ''").fetchone()[0], 0)
            for test_id, packed in db.execute("SELECT id, readings FROM tests").fetchall():
                self.assertEqual(unpack(packed), texts[test_id])
            self.assertNotIn("testsToConvert", storage_status(srv))


class RetentionTest(unittest.TestCase):
    START = test_engine.START

    def config(self, srv, completed_days, transcript_days):
        return {"storage": {"path": srv.db, "retain_completed_days": completed_days,
                            "retain_transcripts_days": transcript_days, "purge_interval_seconds": 1},
                "http": {"port": srv.server_port}}

    def test_retention_deletes_what_is_past_it_and_never_a_pending_test(self):
        sim = SimulatedMeters(3, seed=32, start_time=self.START)
        self.addCleanup(sim.stop)
        keep_all = {"storage": {"retain_completed_days": 0, "retain_transcripts_days": 0,
                                "purge_interval_seconds": 1}}
        with Server(config=keep_all) as srv:
            old = srv.test_request(request_for(sim.meters[0]))
            r = srv.request("POST", "batch-request", json=[request_for(sim.meters[1]), request_for(sim.meters[2])])
            batch = r.json["batchId"]
            batch_tests = [s["testId"] for s in srv.request("GET", "batch-status?batchId=%d" % batch).json["status"]]
            for i in [old] + batch_tests:
                self.assertEqual(wait_done(srv, i)["result"], "SUCCESS")
            recent = srv.test_request(request_for(sim.meters[0]))
            self.assertEqual(wait_done(srv, recent)["result"], "SUCCESS")
            pending = srv.test_request(request_for(sim.meters[1], immediate=False))  # the window is closed

            # Age the rows behind the server's back: 20 days, and 5 days for `recent`.
            db = sqlite3.connect(srv.db, timeout=10)
            self.addCleanup(db.close)
            times = ("received_time", "test_start_time", "test_end_time", "connection_start_time",
                     "connection_end_time", "completed_time")
            shift = ", ".join("%s = %s - ?" % (t, t) for t in times)
            with db:
                for test_id in [old, pending] + batch_tests:
                    db.execute("UPDATE tests SET %s WHERE id = ?" % shift, (20 * DAY,) * len(times) + (test_id,))
                db.execute("UPDATE tests SET %s WHERE id = ?" % shift, (5 * DAY,) * len(times) + (recent,))
                db.execute("UPDATE batches SET received_time = received_time - ? WHERE id = ?", (20 * DAY, batch))
            # Retention 0 keeps everything, pass after pass.
            aged = utc_now()
            wait_for("a purge pass after the rows were aged",
                     lambda: parse_utc(storage_status(srv)["lastPurgeTime"]) >= aged + datetime.timedelta(seconds=2), srv)
            self.assertIn("deleted no completed tests (storage.retain_completed_days = 0), 0 empty batches, "
                          "no transcripts (storage.retain_transcripts_days = 0)", srv.log())
            self.assertEqual(storage_status(srv)["purgedTests"], 0)
            self.assertEqual(srv.request("GET", "test-status?testId=%d" % old).status, 200)

            # SIGHUP: completed tests 10 days, transcripts 3 days.
            with open(srv.config_path, "w") as f:
                f.write(to_toml(self.config(srv, 10, 3)))
            srv.proc.send_signal(signal.SIGHUP)
            status = wait_for("the purge", lambda: (storage_status(srv) or {}).get("purgedTests") == 3
                              and storage_status(srv), srv)
            self.assertIn("SIGHUP: storage.retain_completed_days: 0 -> 10", srv.log())
            self.assertEqual((status["purgedTests"], status["purgedTranscripts"], status["purgedBatches"]), (3, 1, 1))
            self.assertGreater(status["databaseBytes"], 0)
            self.assertGreaterEqual(status["freeBytes"], 0)
            self.assertIn("lastPurgeTime", status)
            self.assertIn("storage: purge pass: deleted 3 completed tests older than 10 days, 1 empty batches, "
                          "1 transcripts older than 3 days", srv.log())

            # Purged: unknown to every query, like a cancelled test.
            for test_id in [old] + batch_tests:
                for method in ("test-status", "test-transcript"):
                    r = srv.request("GET", "%s?testId=%d" % (method, test_id))
                    self.assertEqual((r.status, r.details), (400, ["testId: no such test"]))
            r = srv.request("GET", "batch-status?batchId=%d" % batch)
            self.assertEqual((r.status, r.details), (400, ["batchId: no such batch"]))
            found = srv.request("GET", "test-search?fromTime=%s" % fmt_utc(utc_now() - datetime.timedelta(days=30))).json
            self.assertEqual(sorted(t["testId"] for t in found["results"]), [recent, pending])
            # Kept: the recent test without its transcript, and the pending test, however old.
            st = srv.request("GET", "test-status?testId=%d" % recent).json
            self.assertEqual(st["result"], "SUCCESS")
            self.assertTrue(st["surveyData"])
            self.assertEqual(srv.request("GET", "test-transcript?testId=%d" % recent).json,
                             {"testId": recent, "attempts": []})
            self.assertEqual(srv.request("GET", "test-status?testId=%d" % pending).json["resultSummary"], "PENDING")
            self.assertEqual(db.execute("SELECT state FROM tests WHERE id = ?", (pending,)).fetchone()[0], "PENDING")


if __name__ == "__main__":
    unittest.main()

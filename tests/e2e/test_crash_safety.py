"""kill -9 during a stream of test-requests: every acknowledged test survives, exactly once,
and the database stays intact."""

import http.client
import sqlite3
import ssl
import threading
import time
import unittest

from harness import Server, fmt_utc, valid_request

CLIENTS = 4
LOAD_SECONDS = 1.5
ROUNDS = 3


def integrity(db):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()


class CrashSafetyTest(unittest.TestCase):
    def test_acknowledged_tests_survive_kill_9(self):
        srv = Server(overrides=["--limits.max_search_limit=5000"])
        self.addCleanup(srv.close)
        from_time = fmt_utc(time.time() - 120)
        acked = {}  # testId -> requestReference, over all rounds

        for rnd in range(ROUNDS):
            if rnd > 0:
                srv.restart()
            acks, errors = self.load(srv, rnd)
            srv.kill9()
            self.assertEqual(srv.proc.returncode, -9)
            self.assertEqual(errors, [], "unexpected client errors before the kill")
            self.assertGreater(len(acks), 0, "no request acknowledged in round %d" % rnd)
            for tid, ref in acks:
                self.assertNotIn(tid, acked, "testId %d acknowledged twice" % tid)
                acked[tid] = ref
            self.assertEqual(integrity(srv.db), [("ok",)])

            srv.restart()
            # Every acknowledged test is there, as it was requested.
            conn = srv.connect()
            try:
                for tid, ref in acked.items():
                    r = srv.request("GET", "test-status?testId=%d" % tid, conn=conn)
                    self.assertEqual(r.status, 200, "acknowledged test %d lost (round %d)" % (tid, rnd))
                    self.assertEqual(r.json["testId"], tid)
                    self.assertEqual(r.json["requestReference"], ref)
                    self.assertEqual(r.json["resultSummary"], "PENDING")
                rows = self.search_all(srv, conn, from_time)
            finally:
                conn.close()
            ids = [x["testId"] for x in rows]
            self.assertEqual(len(ids), len(set(ids)), "a test listed twice")
            refs = [x.get("requestReference") for x in rows]
            self.assertEqual(len(refs), len(set(refs)), "a request stored twice")
            self.assertTrue(set(acked) <= set(ids), "acknowledged tests missing from search")
            srv.stop()
            self.assertEqual(integrity(srv.db), [("ok",)])

    def search_all(self, srv, conn, from_time):
        rows, offset, total = [], 0, None
        to_time = fmt_utc(time.time() + 60)
        while True:
            r = srv.request("GET", "test-search?fromTime=%s&toTime=%s&limit=5000&offset=%d"
                            % (from_time, to_time, offset), conn=conn)
            self.assertEqual(r.status, 200)
            page = r.json
            if total is None:
                total = page["totalResultCount"]
            self.assertEqual(page["totalResultCount"], total)
            self.assertEqual(page["offset"], offset)
            self.assertEqual(page["resultCount"], len(page["results"]))
            rows += page["results"]
            offset += page["resultCount"]
            if page["resultCount"] == 0 or offset >= total:
                break
        self.assertEqual(len(rows), total)
        return rows

    def load(self, srv, rnd):
        """CLIENTS threads send test-requests as fast as they can; after LOAD_SECONDS the
        server is killed. Returns ([(testId, requestReference)], unexpected errors)."""
        acks, errors = [], []
        lock = threading.Lock()
        killed = threading.Event()

        def client(n):
            conn = srv.connect(timeout=10)
            i = 0
            try:
                while not killed.is_set():
                    ref = "crash-%d-%d-%d" % (rnd, n, i)
                    i += 1
                    try:
                        r = srv.request("POST", "test-request", json=valid_request(requestReference=ref),
                                        conn=conn, check=False)
                    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                        if not killed.is_set():
                            with lock:
                                errors.append(repr(e))
                        return
                    if r.status == 200:
                        with lock:
                            acks.append((r.json["testId"], ref))
                    elif not killed.is_set():
                        with lock:
                            errors.append("status %d: %r" % (r.status, r.body[:200]))
                        return
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(LOAD_SECONDS)
        killed.set()
        srv.kill9()
        for t in threads:
            t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "client threads hung after the kill")
        return acks, errors


if __name__ == "__main__":
    unittest.main()

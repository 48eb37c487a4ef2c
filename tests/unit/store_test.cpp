// Unit tests for persistence/store: schema and migrations, every statement's semantics, and
// the reader/writer split. Each test works in its own temporary directory.
#include "persistence/packed_json.hpp"
#include "persistence/schema.hpp"
#include "persistence/store.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

#include <SQLiteCpp/SQLiteCpp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace mts;

namespace {

// A fresh directory under the system temp directory, removed with everything in it at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("mts_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
            "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  // In a subdirectory that does not exist yet: the writer must create it.
  std::string db() const { return (path / "data" / "mts.db").string(); }
};

constexpr std::int64_t busy_ms = 5000;

test_request simple_request(const std::string& meter_type = "ELSTER_A1700",
                            const std::string& remote_address = "+441234567890") {
  test_request r;
  r.meter_type = meter_type;
  r.remote_address = remote_address;
  return r;
}

test_request full_request() {
  test_request r;
  r.request_reference = std::string("ref-\0-7", 7); // embedded NUL
  r.immediate = true;
  r.meter_type = "LANDIS_ZMD";
  r.remote_address = "+441234567890";
  r.coms_settings = "7E1";
  r.outstation_address = "001";
  r.serial_number = "SN12345";
  r.password = std::string("pa\0ss", 5); // embedded NUL
  r.survey_days = 3;
  r.survey_date = "2019-01-02";
  return r;
}

std::vector<test_id> ids_of(const std::vector<test_record>& v) {
  std::vector<test_id> out;
  for (const auto& r : v) out.push_back(r.id);
  return out;
}

std::string hash_of(unsigned char seed) {
  std::string h(32, '\0');
  for (std::size_t i = 0; i < h.size(); ++i) {
    h[i] = static_cast<char>((i % 3 == 0) ? 0 : static_cast<unsigned char>(seed + i));
  }
  return h;
}

std::int64_t count_rows(const std::string& path, const std::string& sql) {
  SQLite::Database db(path, SQLite::OPEN_READONLY, 5000);
  return db.execAndGet(sql).getInt64();
}

test_outcome outcome_for(test_id id, const std::string& result, unix_seconds end) {
  test_outcome o;
  o.id = id;
  o.result = result;
  o.test_end_time = end;
  return o;
}

search_query all_query(std::int64_t limit = 100) {
  search_query q;
  q.from_time = 0;
  q.to_time = 100000;
  q.limit = limit;
  return q;
}

} // namespace

TEST_CASE("a fresh database is created with the latest schema, WAL and integrity ok", "[store]") {
  temp_dir dir;
  {
    store s(dir.db(), store_mode::read_write, busy_ms);
    CHECK(store::latest_schema_version() == 7);
    CHECK(s.schema_version() == 7);
    CHECK(s.quick_check() == "ok");
    CHECK(fs::exists(dir.path / "data" / "mts.db"));
  }
  SQLite::Database raw(dir.db(), SQLite::OPEN_READONLY);
  CHECK(raw.execAndGet("PRAGMA journal_mode").getString() == "wal");
  CHECK(raw.execAndGet("SELECT COUNT(*) FROM schema_migrations").getInt64() == 7);
  CHECK(raw.execAndGet("SELECT MAX(version) FROM schema_migrations").getInt64() == 7);
  CHECK(raw.tableExists("test_transcripts"));
  CHECK(raw.tableExists("tokens"));
  CHECK(raw.tableExists("batches"));
  CHECK(raw.tableExists("tests"));
  CHECK(raw.execAndGet("PRAGMA auto_vacuum").getInt64() == 2); // incremental
  // Nothing to convert: every row of a new database is written packed.
  CHECK(raw.execAndGet("SELECT COUNT(*) FROM storage_conversion").getInt64() == 0);
}

TEST_CASE("reopening a database keeps its data and does not re-run migrations", "[store]") {
  temp_dir dir;
  {
    store s(dir.db(), store_mode::read_write, busy_ms);
    CHECK(s.insert_test(simple_request(), 1000) == 1);
  }
  {
    store s(dir.db(), store_mode::read_write, busy_ms);
    CHECK(s.schema_version() == 7);
    auto t = s.find_test(1);
    REQUIRE(t);
    CHECK(t->received_time == 1000);
    CHECK(t->request.meter_type == "ELSTER_A1700");
    CHECK(s.insert_test(simple_request(), 1001) == 2);
  }
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM schema_migrations") == 7);
}

TEST_CASE("a version 1 database is migrated: old results keep no connection attempts", "[store]") {
  temp_dir dir;
  fs::create_directories(dir.path / "data");
  {
    // The database as a build with only migration 1 left it, with one completed test.
    SQLite::Database raw(dir.db(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec(schema::bootstrap_sql);
    raw.exec(schema::migrations()[0]);
    raw.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)");
    raw.exec("INSERT INTO tests (received_time, immediate, meter_type, remote_address, survey_days, "
             "state, result, attempts, completed_time) "
             "VALUES (10, 1, 'IEC62056-21', '127.0.0.1:4059', 0, 'COMPLETED', 'SUCCESS', 1, 20)");
  }
  store s(dir.db(), store_mode::read_write, busy_ms);
  CHECK(s.schema_version() == 7);
  auto old = s.find_test(1);
  REQUIRE(old);
  CHECK(old->result == "SUCCESS");
  CHECK(old->attempts == 1);
  CHECK_FALSE(old->connection_attempts.has_value());
  s.insert_test(simple_request(), 30);
  REQUIRE(s.mark_running(2, 40));
  auto o = outcome_for(2, "ERROR: cannot connect: connection refused", 50);
  o.connection_attempts = 3;
  REQUIRE(s.complete_test(o));
  CHECK(s.find_test(2)->connection_attempts == std::optional<std::int64_t>(3));
}

TEST_CASE("a database with a newer schema version is refused", "[store]") {
  temp_dir dir;
  { store s(dir.db(), store_mode::read_write, busy_ms); }
  {
    SQLite::Database raw(dir.db(), SQLite::OPEN_READWRITE);
    raw.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (8, 0)");
  }
  REQUIRE_THROWS_MATCHES(
      store(dir.db(), store_mode::read_write, busy_ms), store_error,
      Catch::Message("database schema version 8 is newer than this build supports (7)"));
  REQUIRE_THROWS_MATCHES(
      store(dir.db(), store_mode::read_only, busy_ms), store_error,
      Catch::Message("database schema version 8 is newer than this build supports (7)"));
}

TEST_CASE("writers racing to create and migrate the same database all succeed", "[store]") {
  temp_dir dir;
  const std::string path = dir.db();
  std::atomic<int> ok{0};
  std::vector<std::string> errors(6);
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      try {
        store s(path, store_mode::read_write, busy_ms);
        if (s.schema_version() == 7) ++ok;
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) CHECK(e == "");
  CHECK(ok == 6);
  CHECK(count_rows(path, "SELECT COUNT(*) FROM schema_migrations") == 7);
}

TEST_CASE("read-only open of a missing file fails with a clear message", "[store]") {
  temp_dir dir;
  const std::string path = (dir.path / "nothing-here.db").string();
  REQUIRE_THROWS_MATCHES(store(path, store_mode::read_only, busy_ms), store_error,
                         Catch::Message("database file " + path +
                                        " does not exist; start the server or run a token "
                                        "command once to create it"));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("read-only open of a database that was never migrated is refused", "[store]") {
  temp_dir dir;
  const std::string path = (dir.path / "empty.db").string();
  { std::ofstream(path).flush(); } // an empty file is a valid, empty SQLite database
  REQUIRE_THROWS_MATCHES(store(path, store_mode::read_only, busy_ms), store_error,
                         Catch::Message("database schema version 0 is older than this build "
                                        "expects (7); start the server once to upgrade it"));
}

TEST_CASE("insert and find round-trip every field, embedded NULs included", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);

  const test_id id = s.insert_test(full_request(), 1546401600);
  CHECK(id == 1);
  auto t = s.find_test(1);
  REQUIRE(t);
  CHECK(t->id == 1);
  CHECK_FALSE(t->batch.has_value());
  CHECK(t->received_time == 1546401600);
  CHECK(t->request.request_reference == std::string("ref-\0-7", 7));
  CHECK(t->request.request_reference->size() == 7);
  CHECK(t->request.immediate == true);
  CHECK(t->request.meter_type == "LANDIS_ZMD");
  CHECK(t->request.remote_address == "+441234567890");
  CHECK(t->request.coms_settings == std::string("7E1"));
  CHECK(t->request.outstation_address == std::string("001"));
  CHECK(t->request.serial_number == std::string("SN12345"));
  CHECK(t->request.password == std::string("pa\0ss", 5));
  CHECK(t->request.password->size() == 5);
  CHECK(t->request.survey_days == 3);
  CHECK(t->request.survey_date == std::string("2019-01-02"));
  CHECK(t->state == test_state::pending);
  CHECK(t->result == "PENDING");
  CHECK(t->attempts == 0);
  CHECK_FALSE(t->test_start_time.has_value());
  CHECK_FALSE(t->test_end_time.has_value());
  CHECK_FALSE(t->connection_start_time.has_value());
  CHECK_FALSE(t->connection_end_time.has_value());
  CHECK_FALSE(t->completed_time.has_value());
  CHECK(t->readings_json == "");

  // Optional fields left out stay absent (NULL, not "").
  CHECK(s.insert_test(simple_request("ELSTER_A1700", "10.0.0.1:4001"), 1546401601) == 2);
  auto m = s.find_test(2);
  REQUIRE(m);
  CHECK_FALSE(m->request.request_reference.has_value());
  CHECK(m->request.immediate == false);
  CHECK(m->request.meter_type == "ELSTER_A1700");
  CHECK(m->request.remote_address == "10.0.0.1:4001");
  CHECK_FALSE(m->request.coms_settings.has_value());
  CHECK_FALSE(m->request.outstation_address.has_value());
  CHECK_FALSE(m->request.serial_number.has_value());
  CHECK_FALSE(m->request.password.has_value());
  CHECK(m->request.survey_days == 0);
  CHECK_FALSE(m->request.survey_date.has_value());

  // An empty optional string is kept as "" (present), distinct from absent.
  test_request e = simple_request();
  e.password = std::string();
  CHECK(s.insert_test(e, 1546401602) == 3);
  auto er = s.find_test(3);
  REQUIRE(er);
  CHECK(er->request.password == std::string());

  CHECK_FALSE(s.find_test(4).has_value());
  CHECK(s.test_exists(1));
  CHECK_FALSE(s.test_exists(4));
}

TEST_CASE("test ids are never reused after a deletion", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  CHECK(s.insert_test(simple_request(), 10) == 1);
  CHECK(s.insert_test(simple_request(), 10) == 2);
  CHECK(s.delete_pending_test(2));
  CHECK(s.insert_test(simple_request(), 11) == 3);
  CHECK_FALSE(s.test_exists(2));
}

TEST_CASE("insert_batch returns the batch id and every test id in request order", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  CHECK(s.insert_test(simple_request(), 500) == 1); // a standalone test before the batch

  std::vector<test_request> reqs{simple_request("A", "+1"), simple_request("B", "+2"),
                                 simple_request("C", "+3")};
  auto [batch, ids] = s.insert_batch(reqs, 600);
  CHECK(batch == 1);
  CHECK(ids == std::vector<test_id>{2, 3, 4});

  auto tests = s.batch_tests(1);
  REQUIRE(tests);
  REQUIRE(tests->size() == 3);
  CHECK(ids_of(*tests) == std::vector<test_id>{2, 3, 4});
  CHECK((*tests)[0].request.meter_type == "A");
  CHECK((*tests)[1].request.meter_type == "B");
  CHECK((*tests)[2].request.meter_type == "C");
  CHECK((*tests)[2].request.remote_address == "+3");
  for (const auto& t : *tests) {
    CHECK(t.batch == batch_id{1});
    CHECK(t.received_time == 600);
    CHECK(t.state == test_state::pending);
  }
  auto lone = s.find_test(1);
  REQUIRE(lone);
  CHECK_FALSE(lone->batch.has_value());

  auto [batch2, ids2] = s.insert_batch({simple_request(), simple_request()}, 700);
  CHECK(batch2 == 2);
  CHECK(ids2 == std::vector<test_id>{5, 6});
  CHECK_FALSE(s.batch_tests(3).has_value());
}

TEST_CASE("a batch is stored in one transaction: a failing element stores nothing", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  CHECK(s.insert_batch({simple_request()}, 100).first == 1);
  {
    // Test-only trigger that makes the insert of one element fail mid-batch.
    SQLite::Database raw(dir.db(), SQLite::OPEN_READWRITE, 5000);
    raw.exec("CREATE TRIGGER boom BEFORE INSERT ON tests WHEN NEW.meter_type = 'BOOM' "
             "BEGIN SELECT RAISE(ABORT, 'boom'); END");
  }
  test_request secret = simple_request();
  secret.password = "s3cret-pw";
  std::vector<test_request> reqs{secret, simple_request(), simple_request("BOOM"),
                                 simple_request()};
  try {
    s.insert_batch(reqs, 200);
    FAIL("insert_batch should have thrown");
  } catch (const store_error& e) {
    const std::string what = e.what();
    CHECK(what == "insert batch: boom");
    CHECK(what.find("s3cret-pw") == std::string::npos);
  }
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM tests") == 1);
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM batches") == 1);
  CHECK_FALSE(s.batch_tests(2).has_value());

  // The store is still usable, and the rolled-back ids were not consumed.
  auto [batch, ids] = s.insert_batch({simple_request(), simple_request()}, 300);
  CHECK(batch == 2);
  CHECK(ids == std::vector<test_id>{2, 3});
}

TEST_CASE("delete_pending_test deletes only a pending test", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  s.insert_test(simple_request(), 10); // 1 pending
  s.insert_test(simple_request(), 10); // 2 running
  s.insert_test(simple_request(), 10); // 3 completed
  REQUIRE(s.mark_running(2, 20));
  REQUIRE(s.mark_running(3, 20));
  REQUIRE(s.complete_test(outcome_for(3, "SUCCESS", 30)));

  CHECK(s.delete_pending_test(1));
  CHECK_FALSE(s.test_exists(1));
  CHECK_FALSE(s.find_test(1).has_value());
  CHECK_FALSE(s.delete_pending_test(1)); // already gone
  CHECK_FALSE(s.delete_pending_test(2));
  CHECK(s.test_exists(2));
  CHECK_FALSE(s.delete_pending_test(3));
  CHECK(s.test_exists(3));
  CHECK_FALSE(s.delete_pending_test(99));
}

TEST_CASE("mark_running keeps the first attempt's start time across recovery", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  s.insert_test(simple_request(), 10);

  CHECK(s.mark_running(1, 1000));
  auto t = s.find_test(1);
  REQUIRE(t);
  CHECK(t->state == test_state::running);
  CHECK(t->attempts == 1);
  CHECK(t->test_start_time == unix_seconds{1000});
  CHECK(t->result == "PENDING");

  CHECK_FALSE(s.mark_running(1, 1500)); // already running
  CHECK(s.find_test(1)->attempts == 1);

  auto q = s.recover_queue(); // the process "restarted" mid-test
  CHECK(ids_of(q) == std::vector<test_id>{1});
  t = s.find_test(1);
  CHECK(t->state == test_state::pending);
  CHECK(t->attempts == 1);
  CHECK(t->test_start_time == unix_seconds{1000});

  CHECK(s.mark_running(1, 2000));
  t = s.find_test(1);
  CHECK(t->state == test_state::running);
  CHECK(t->attempts == 2);
  CHECK(t->test_start_time == unix_seconds{1000});

  REQUIRE(s.complete_test(outcome_for(1, "SUCCESS", 2100)));
  CHECK_FALSE(s.mark_running(1, 3000)); // completed
  CHECK_FALSE(s.mark_running(42, 3000)); // unknown
}

TEST_CASE("complete_test writes a running test exactly once", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  s.insert_test(full_request(), 10);

  test_outcome o;
  o.id = 1;
  o.result = "PARTIAL SUCCESS";
  o.test_end_time = 1200;
  o.connection_start_time = 1010;
  o.connection_end_time = 1190;
  o.readings_json = R"({"serialNumber":"SN12345","meterTime":"2019-01-02T04:00:00Z +0s"})";
  o.connection_attempts = 3;

  CHECK_FALSE(s.complete_test(o)); // still pending
  CHECK_FALSE(s.find_test(1)->connection_attempts.has_value());
  REQUIRE(s.mark_running(1, 1000));
  CHECK(s.complete_test(o));

  auto t = s.find_test(1);
  REQUIRE(t);
  CHECK(t->state == test_state::completed);
  CHECK(t->result == "PARTIAL SUCCESS");
  CHECK(t->attempts == 1);
  CHECK(t->test_start_time == unix_seconds{1000});
  CHECK(t->test_end_time == unix_seconds{1200});
  CHECK(t->connection_start_time == unix_seconds{1010});
  CHECK(t->connection_end_time == unix_seconds{1190});
  CHECK(t->completed_time == unix_seconds{1200});
  CHECK(t->connection_attempts == std::optional<std::int64_t>(3));
  CHECK(t->readings_json ==
        R"({"serialNumber":"SN12345","meterTime":"2019-01-02T04:00:00Z +0s"})");
  CHECK(t->request.password == std::string("pa\0ss", 5));

  test_outcome again = outcome_for(1, "ERROR: late duplicate", 5000);
  CHECK_FALSE(s.complete_test(again));
  t = s.find_test(1);
  CHECK(t->result == "PARTIAL SUCCESS");
  CHECK(t->test_end_time == unix_seconds{1200});

  CHECK_FALSE(s.complete_test(outcome_for(77, "SUCCESS", 1))); // unknown id

  // An outcome without readings or connection times stores them as absent.
  s.insert_test(simple_request(), 20);
  REQUIRE(s.mark_running(2, 2000));
  CHECK(s.complete_test(outcome_for(2, "ERROR: No answer", 2060)));
  auto e = s.find_test(2);
  REQUIRE(e);
  CHECK(e->result == "ERROR: No answer");
  CHECK(e->readings_json == "");
  CHECK_FALSE(e->connection_start_time.has_value());
  CHECK_FALSE(e->connection_end_time.has_value());
  CHECK_FALSE(e->connection_attempts.has_value());
  CHECK(e->completed_time == unix_seconds{2060});
}

TEST_CASE("recover_queue requeues running tests and returns every pending test", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  CHECK(s.recover_queue().empty());

  s.insert_test(simple_request(), 10);    // 1 pending
  s.insert_test(full_request(), 11);      // 2 running
  s.insert_test(simple_request(), 12);    // 3 completed
  s.insert_batch({simple_request(), simple_request()}, 13); // 4 pending, 5 running
  REQUIRE(s.mark_running(2, 100));
  REQUIRE(s.mark_running(3, 100));
  REQUIRE(s.complete_test(outcome_for(3, "SUCCESS", 150)));
  REQUIRE(s.mark_running(5, 200));

  auto q = s.recover_queue();
  CHECK(ids_of(q) == std::vector<test_id>{1, 2, 4, 5});
  for (const auto& item : q) CHECK(item.state == test_state::pending);
  // Full records: the request is there, and the attempt bookkeeping survived.
  const test_record& r2 = q[1];
  CHECK(r2.request.meter_type == "LANDIS_ZMD");
  CHECK(r2.request.password == std::string("pa\0ss", 5));
  CHECK(r2.request.survey_date == std::string("2019-01-02"));
  CHECK(r2.received_time == 11);
  CHECK(r2.attempts == 1);
  CHECK(r2.test_start_time == unix_seconds{100});
  CHECK(r2.readings_json == "");
  CHECK(q[3].batch == batch_id{1});
  CHECK(q[3].test_start_time == unix_seconds{200});

  CHECK(s.find_test(2)->state == test_state::pending);
  CHECK(s.find_test(3)->state == test_state::completed);
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM tests WHERE state = 'RUNNING'") == 0);
}

TEST_CASE("cancel_batch removes pending tests, completed ones on request, never running ones",
          "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  s.insert_test(simple_request(), 5); // 1: standalone, untouched throughout
  auto [b, ids] = s.insert_batch(
      {simple_request(), simple_request(), simple_request(), simple_request()}, 10);
  REQUIRE(b == 1);
  REQUIRE(ids == std::vector<test_id>{2, 3, 4, 5});
  auto [other, other_ids] = s.insert_batch({simple_request()}, 11); // 2: test 6
  REQUIRE(other == 2);
  REQUIRE(other_ids == std::vector<test_id>{6});
  // 2 pending, 3 running, 4 completed, 5 pending
  REQUIRE(s.mark_running(3, 20));
  REQUIRE(s.mark_running(4, 20));
  REQUIRE(s.complete_test(outcome_for(4, "SUCCESS", 30)));

  SECTION("unknown batch") {
    auto r = s.cancel_batch(99, true);
    CHECK_FALSE(r.found);
    CHECK(r.cancelled_count == 0);
    CHECK(r.removed.empty());
  }

  SECTION("pending only, then completed too, then the finished running test") {
    auto r = s.cancel_batch(1, false);
    CHECK(r.found);
    CHECK(r.cancelled_count == 2);
    CHECK(r.removed == std::vector<test_id>{2, 5});
    CHECK(ids_of(*s.batch_tests(1)) == std::vector<test_id>{3, 4});

    r = s.cancel_batch(1, false); // nothing left that may go
    CHECK(r.found);
    CHECK(r.cancelled_count == 0);
    CHECK(r.removed.empty());

    r = s.cancel_batch(1, true);
    CHECK(r.found);
    CHECK(r.cancelled_count == 1);
    CHECK(r.removed == std::vector<test_id>{4});
    CHECK(ids_of(*s.batch_tests(1)) == std::vector<test_id>{3}); // running stays

    REQUIRE(s.complete_test(outcome_for(3, "SUCCESS", 40)));
    r = s.cancel_batch(1, true);
    CHECK(r.cancelled_count == 1);
    CHECK(r.removed == std::vector<test_id>{3});

    // The batch itself remains: known, with no tests (batch-status answers totalCount 0).
    auto left = s.batch_tests(1);
    REQUIRE(left.has_value());
    CHECK(left->empty());
    CHECK(s.cancel_batch(1, true).found);
  }

  SECTION("delete_completed at once") {
    auto r = s.cancel_batch(1, true);
    CHECK(r.found);
    CHECK(r.cancelled_count == 3);
    CHECK(r.removed == std::vector<test_id>{2, 4, 5});
    CHECK(ids_of(*s.batch_tests(1)) == std::vector<test_id>{3});
  }

  // Tests outside the batch are never touched.
  CHECK(s.test_exists(1));
  CHECK(s.test_exists(6));
  CHECK(ids_of(*s.batch_tests(2)) == std::vector<test_id>{6});
}

TEST_CASE("search pages are the same whether read through an index or in id order", "[store]") {
  // One page of many matches is read walking the table in id order, the whole list of few
  // matches through an index (store::search picks the cheaper); paging one test at a time
  // must give exactly the list asked for at once, forwards and backwards, for every filter.
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  for (int i = 0; i < 60; ++i) {
    test_request r;
    r.request_reference = i % 3 == 0 ? std::optional<std::string>("R") : std::nullopt;
    r.meter_type = i % 2 == 0 ? "ELSTERA1700" : "IEC62056-21";
    r.remote_address = "10.0.0." + std::to_string(i % 7) + ":4059";
    s.insert_test(r, 1000 + i * 10);
  }
  for (test_id id = 1; id <= 20; ++id)
    REQUIRE(s.mark_running(id, 5000));
  for (int variant = 0; variant < 6; ++variant) {
    search_query q = all_query(1000);
    q.from_time = 1100;
    q.to_time = 1500;
    if (variant == 1) q.meter_type = "IEC62056-21";
    if (variant == 2) q.request_reference = "R";
    if (variant == 3) q.remote_address = "0.0.3";
    if (variant == 4) q.status = status_filter::pending;
    if (variant == 5) q.status = status_filter::completed;
    for (bool reverse : {false, true}) {
      q.reverse_order = reverse;
      q.limit = 1000;
      q.offset = 0;
      auto all = s.search(q);
      std::vector<test_id> paged;
      q.limit = 1;
      for (q.offset = 0; q.offset < all.total_count + 1; ++q.offset) {
        auto p = s.search(q);
        CHECK(p.total_count == all.total_count);
        for (const auto& r : p.results) paged.push_back(r.id);
      }
      CHECK(paged == ids_of(all.results));
      auto sorted = ids_of(all.results);
      if (reverse) std::reverse(sorted.begin(), sorted.end());
      CHECK(std::is_sorted(sorted.begin(), sorted.end()));
    }
  }
}

TEST_CASE("search filters, counts, pages and orders", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);

  auto req = [](std::optional<std::string> ref, const std::string& type, const std::string& addr) {
    test_request r;
    r.request_reference = std::move(ref);
    r.meter_type = type;
    r.remote_address = addr;
    return r;
  };
  REQUIRE(s.insert_test(req("A", "ELSTER_A1700", "+441234567"), 1000) == 1);
  REQUIRE(s.insert_test(req("B", "LANDIS_ZMD", "10.0.0.1:4001"), 2000) == 2);
  REQUIRE(s.insert_test(req("A", "ELSTER_A1700", "50%_off:80"), 3000) == 3);
  REQUIRE(s.insert_test(req(std::nullopt, "ELSTER_A1700", "a1b:80"), 4000) == 4);
  REQUIRE(s.insert_test(req("A", "LANDIS_ZMD", "+449999"), 5000) == 5);
  REQUIRE(s.mark_running(2, 2100));
  REQUIRE(s.mark_running(3, 3100));
  test_outcome o = outcome_for(3, "SUCCESS", 3200);
  o.readings_json = R"({"serialNumber":"X"})";
  REQUIRE(s.complete_test(o));

  auto run = [&](const search_query& q) { return s.search(q); };

  SECTION("everything") {
    auto p = run(all_query());
    CHECK(p.total_count == 5);
    CHECK(ids_of(p.results) == std::vector<test_id>{1, 2, 3, 4, 5});
    // Summaries carry the state but never the readings.
    CHECK(p.results[2].state == test_state::completed);
    CHECK(p.results[2].result == "SUCCESS");
    CHECK(p.results[2].readings_json == "");
    CHECK(p.results[1].state == test_state::running);
  }
  SECTION("time range is inclusive at both ends") {
    search_query q = all_query();
    q.from_time = 2000;
    q.to_time = 4000;
    auto p = run(q);
    CHECK(p.total_count == 3);
    CHECK(ids_of(p.results) == std::vector<test_id>{2, 3, 4});
    q.from_time = 5001;
    q.to_time = 9000;
    p = run(q);
    CHECK(p.total_count == 0);
    CHECK(p.results.empty());
  }
  SECTION("request reference and meter type match exactly") {
    search_query q = all_query();
    q.request_reference = "A";
    CHECK(ids_of(run(q).results) == std::vector<test_id>{1, 3, 5});
    q.request_reference = "a";
    CHECK(run(q).total_count == 0);
    q = all_query();
    q.meter_type = "LANDIS_ZMD";
    CHECK(ids_of(run(q).results) == std::vector<test_id>{2, 5});
    q.meter_type = "LANDIS";
    CHECK(run(q).total_count == 0);
  }
  SECTION("remote address is a literal substring") {
    search_query q = all_query();
    q.remote_address = "+44";
    CHECK(ids_of(run(q).results) == std::vector<test_id>{1, 5});
    q.remote_address = "%";
    CHECK(ids_of(run(q).results) == std::vector<test_id>{3});
    q.remote_address = "_";
    CHECK(ids_of(run(q).results) == std::vector<test_id>{3});
    q.remote_address = "a_b"; // would match "a1b" as a LIKE pattern
    CHECK(run(q).total_count == 0);
    q.remote_address = "0%_o";
    CHECK(ids_of(run(q).results) == std::vector<test_id>{3});
    q.remote_address = ":80";
    CHECK(ids_of(run(q).results) == std::vector<test_id>{3, 4});
  }
  SECTION("status") {
    search_query q = all_query();
    q.status = status_filter::completed;
    CHECK(ids_of(run(q).results) == std::vector<test_id>{3});
    q.status = status_filter::pending; // queued or running
    CHECK(ids_of(run(q).results) == std::vector<test_id>{1, 2, 4, 5});
    q.request_reference = "A";
    CHECK(ids_of(run(q).results) == std::vector<test_id>{1, 5});
    q.status = status_filter::all;
    CHECK(ids_of(run(q).results) == std::vector<test_id>{1, 3, 5});
  }
  SECTION("paging") {
    search_query q = all_query(2);
    auto p = run(q);
    CHECK(p.total_count == 5);
    CHECK(ids_of(p.results) == std::vector<test_id>{1, 2});
    q.offset = 2;
    CHECK(ids_of(run(q).results) == std::vector<test_id>{3, 4});
    q.offset = 4;
    CHECK(ids_of(run(q).results) == std::vector<test_id>{5});
    q.offset = 10;
    p = run(q);
    CHECK(p.total_count == 5);
    CHECK(p.results.empty());
  }
  SECTION("reverse order") {
    search_query q = all_query(2);
    q.reverse_order = true;
    CHECK(ids_of(run(q).results) == std::vector<test_id>{5, 4});
    q.offset = 2;
    CHECK(ids_of(run(q).results) == std::vector<test_id>{3, 2});
    q.offset = 4;
    CHECK(ids_of(run(q).results) == std::vector<test_id>{1});
  }
  SECTION("limit 0 gives only the count") {
    search_query q = all_query(0);
    q.meter_type = "ELSTER_A1700";
    auto p = run(q);
    CHECK(p.total_count == 3);
    CHECK(p.results.empty());
  }
}

TEST_CASE("tokens: insert, list, find by hash, touch, delete", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  const std::string hz = hash_of(1), ha = hash_of(2), hm = hash_of(3);
  REQUIRE(hz.size() == 32);
  REQUIRE(hz[0] == '\0');

  CHECK(s.insert_token("zeta", token_scope::full, hz, 1000, 2000) == 1);
  CHECK(s.insert_token("alpha", token_scope::read_only, ha, 1100, 2100) == 2);
  CHECK(s.insert_token("mid", token_scope::full, hm, 1200, 2200) == 3);

  auto list = s.list_tokens();
  REQUIRE(list.size() == 3);
  CHECK(list[0].name == "alpha");
  CHECK(list[0].id == 2);
  CHECK(list[0].scope == token_scope::read_only);
  CHECK(list[0].created_time == 1100);
  CHECK(list[0].expires_time == 2100);
  CHECK_FALSE(list[0].last_used_time.has_value());
  CHECK(list[1].name == "mid");
  CHECK(list[2].name == "zeta");
  CHECK(list[2].scope == token_scope::full);

  auto m = s.find_token_by_hash(ha);
  REQUIRE(m);
  CHECK(m->info.id == 2);
  CHECK(m->info.name == "alpha");
  CHECK(m->info.scope == token_scope::read_only);
  CHECK(m->info.created_time == 1100);
  CHECK(m->info.expires_time == 2100);
  CHECK(m->token_hash == ha);
  CHECK(m->token_hash.size() == 32);

  // Compared as 32-byte blobs: a hash differing only after a NUL byte is another hash.
  std::string near = ha;
  near[31] = static_cast<char>(near[31] ^ 0x01);
  CHECK_FALSE(s.find_token_by_hash(near).has_value());
  CHECK_FALSE(s.find_token_by_hash(hash_of(9)).has_value());
  CHECK_FALSE(s.find_token_by_hash("").has_value());

  REQUIRE_THROWS_MATCHES(s.insert_token("alpha", token_scope::full, hash_of(4), 1, 2),
                         store_error, Catch::Message("a token named alpha already exists"));
  REQUIRE_THROWS_WITH(s.insert_token("other", token_scope::full, ha, 1, 2),
                      Catch::StartsWith("insert token: "));
  REQUIRE_THROWS_MATCHES(s.insert_token("short", token_scope::full, "abc", 1, 2), store_error,
                         Catch::Message("insert token: the token hash must be 32 bytes"));
  CHECK(s.list_tokens().size() == 3);

  // The last use as the operator sees it (token list); a token check may remember a row with
  // an older last use (the next test case).
  auto last_used = [&](const std::string& name) {
    for (const auto& t : s.list_tokens())
      if (t.name == name) return t.last_used_time;
    throw std::runtime_error("no token " + name);
  };
  s.touch_token(2, 1500);
  CHECK(last_used("alpha") == unix_seconds{1500});
  s.touch_token(2, 1400); // never moves backwards
  CHECK(last_used("alpha") == unix_seconds{1500});
  s.touch_token(2, 1600);
  CHECK(last_used("alpha") == unix_seconds{1600});
  CHECK_FALSE(last_used("zeta").has_value());

  CHECK(s.delete_token("mid"));
  CHECK_FALSE(s.delete_token("mid"));
  CHECK_FALSE(s.delete_token("nobody"));
  CHECK_FALSE(s.find_token_by_hash(hm).has_value());
  CHECK(s.list_tokens().size() == 2);
  // The deleted token's id is not handed out again.
  CHECK(s.insert_token("mid", token_scope::full, hm, 1300, 2300) == 4);
}

TEST_CASE("a read-only store sees the writer's commits and cannot write", "[store]") {
  temp_dir dir;
  store w(dir.db(), store_mode::read_write, busy_ms);
  store r(dir.db(), store_mode::read_only, busy_ms);
  CHECK(r.schema_version() == 7);

  CHECK_FALSE(r.find_test(1).has_value());
  CHECK_FALSE(r.find_token_by_hash(hash_of(1)).has_value());
  CHECK(r.search(all_query()).total_count == 0);

  w.insert_test(full_request(), 100);
  w.insert_token("t", token_scope::full, hash_of(1), 1, 2);
  auto t = r.find_test(1);
  REQUIRE(t);
  CHECK(t->request.password == std::string("pa\0ss", 5));
  CHECK(r.find_token_by_hash(hash_of(1)).has_value());
  CHECK(r.search(all_query()).total_count == 1);

  REQUIRE(w.mark_running(1, 200));
  CHECK(r.find_test(1)->state == test_state::running);
  w.touch_token(1, 50);
  CHECK(r.list_tokens()[0].last_used_time == unix_seconds{50});
  CHECK(w.delete_token("t"));
  CHECK_FALSE(r.find_token_by_hash(hash_of(1)).has_value());

  REQUIRE_THROWS_WITH(r.insert_test(simple_request(), 1), Catch::StartsWith("insert test: "));
  REQUIRE_THROWS_WITH(r.probe_write(1), Catch::StartsWith("probe write: "));
  w.probe_write(300); // the writer's health probe commits
  w.probe_write(301); // and rewrites its one row
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM service_probe WHERE id = 1 AND written_time = 301") == 1);
  REQUIRE_THROWS_WITH(r.delete_token("t"), Catch::StartsWith("delete token: "));
  CHECK(r.quick_check() == "ok");
}

TEST_CASE("a token row a reader remembers is dropped as soon as any process changes a token", "[store]") {
  temp_dir dir;
  store w(dir.db(), store_mode::read_write, busy_ms);
  store r(dir.db(), store_mode::read_only, busy_ms);
  w.insert_token("t", token_scope::full, hash_of(1), 1, 1000);
  w.insert_token("u", token_scope::full, hash_of(2), 1, 1000);
  REQUIRE(r.find_token_by_hash(hash_of(1)));
  REQUIRE(r.find_token_by_hash(hash_of(2)));

  // Another writer, as `mts token delete` in another process.
  {
    store other(dir.db(), store_mode::read_write, busy_ms);
    CHECK(other.delete_token("t"));
  }
  CHECK_FALSE(r.find_token_by_hash(hash_of(1)).has_value());
  CHECK(r.find_token_by_hash(hash_of(2))->info.name == "u");

  // Plain SQL, as from a maintenance shell: the triggers count it too.
  auto raw_exec = [&](const char* sql) {
    SQLite::Database raw(dir.db(), SQLite::OPEN_READWRITE, 5000);
    raw.exec(sql);
  };
  raw_exec("UPDATE tokens SET expires_time = 5 WHERE name = 'u'");
  CHECK(r.find_token_by_hash(hash_of(2))->info.expires_time == 5);
  raw_exec("UPDATE tokens SET scope = 'MTS API read-only' WHERE name = 'u'");
  CHECK(r.find_token_by_hash(hash_of(2))->info.scope == token_scope::read_only);
  raw_exec("UPDATE tokens SET token_hash = zeroblob(32) WHERE name = 'u'");
  CHECK_FALSE(r.find_token_by_hash(hash_of(2)).has_value());
  w.insert_token("v", token_scope::full, hash_of(3), 1, 1000);
  CHECK(r.find_token_by_hash(hash_of(3))->info.name == "v");

  // A token's last use is no change: one a minute per token would empty every reader's rows.
  const auto changes = count_rows(dir.db(), "SELECT count FROM token_changes");
  CHECK(changes == 7); // two inserts, a delete, three updates, an insert
  w.touch_token(3, 60);
  CHECK(count_rows(dir.db(), "SELECT count FROM token_changes") == changes);

  // More tokens than a reader keeps (256): each is still found, and a deleted one is not.
  auto many = [](int n) {
    std::string h(32, '\x01');
    h[0] = static_cast<char>(n & 0xff);
    h[1] = static_cast<char>(n >> 8);
    h[3] = '\x7f'; // hash_of() has 0 there
    return h;
  };
  for (int i = 0; i < 600; ++i)
    w.insert_token("n" + std::to_string(i), token_scope::full, many(i), 1, 1000);
  for (int round = 0; round < 2; ++round)
    for (int i = 0; i < 600; ++i)
      REQUIRE(r.find_token_by_hash(many(i))->info.name == "n" + std::to_string(i));
  CHECK(w.delete_token("n150"));
  CHECK_FALSE(r.find_token_by_hash(many(150)).has_value());
  CHECK(r.find_token_by_hash(many(151))->info.name == "n151");
}

TEST_CASE("a read-only store opens a database whose writer has closed", "[store]") {
  temp_dir dir;
  {
    store w(dir.db(), store_mode::read_write, busy_ms);
    w.insert_batch({simple_request(), simple_request()}, 100);
  }
  store r(dir.db(), store_mode::read_only, busy_ms);
  auto b = r.batch_tests(1);
  REQUIRE(b);
  CHECK(ids_of(*b) == std::vector<test_id>{1, 2});
  CHECK_FALSE(r.batch_tests(2).has_value());
}

TEST_CASE("transcripts are stored with the outcome and deleted with their test", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  auto [b, ids] = s.insert_batch({simple_request(), simple_request()}, 10);
  REQUIRE(ids == std::vector<test_id>{1, 2});
  CHECK(s.find_transcript(1) == std::optional<std::string>("")); // pending: none yet
  CHECK_FALSE(s.find_transcript(99));                            // unknown test

  auto with_transcript = outcome_for(1, "ERROR: no answer to sign-on", 30);
  with_transcript.transcript_json = R"([{"attempt":1,"events":[]}])";
  CHECK_FALSE(s.complete_test(with_transcript)); // not running: nothing written
  CHECK(s.find_transcript(1) == std::optional<std::string>(""));
  REQUIRE(s.mark_running(1, 20));
  REQUIRE(s.complete_test(with_transcript));
  CHECK(s.find_transcript(1) == std::optional<std::string>(with_transcript.transcript_json));

  REQUIRE(s.mark_running(2, 20));
  REQUIRE(s.complete_test(outcome_for(2, "SUCCESS", 30))); // recorded none
  CHECK(s.find_transcript(2) == std::optional<std::string>(""));

  // A reader sees it too.
  store reader(dir.db(), store_mode::read_only, busy_ms);
  CHECK(reader.find_transcript(1) == std::optional<std::string>(with_transcript.transcript_json));

  REQUIRE(s.cancel_batch(b, true).cancelled_count == 2);
  CHECK_FALSE(s.find_transcript(1));
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM test_transcripts") == 0);
}

TEST_CASE("in_one_transaction: starts and results commit together, or not at all", "[store]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  auto [b, ids] = s.insert_batch({simple_request(), simple_request(), simple_request()}, 10);
  REQUIRE(s.mark_running(1, 20));

  std::vector<bool> got;
  s.in_one_transaction([&] {
    got.push_back(s.mark_running(2, 21));
    got.push_back(s.mark_running(2, 22)); // no longer pending, inside the same transaction
    got.push_back(s.complete_test(outcome_for(1, "SUCCESS", 30)));
    got.push_back(s.complete_test(outcome_for(3, "SUCCESS", 30))); // not running
  });
  CHECK(got == std::vector<bool>{true, false, true, false});
  CHECK(s.find_test(1)->state == test_state::completed);
  CHECK(s.find_test(2)->state == test_state::running);
  CHECK(s.find_test(2)->test_start_time == unix_seconds{21});
  CHECK(s.find_test(3)->state == test_state::pending);

  // A failure part-way rolls back what the group wrote before it.
  CHECK_THROWS_AS(s.in_one_transaction([&] {
    REQUIRE(s.mark_running(3, 40));
    throw store_error("disk on fire");
  }),
                  store_error);
  CHECK(s.find_test(3)->state == test_state::pending);
  // ... and single writes commit on their own again afterwards.
  REQUIRE(s.mark_running(3, 50));
  store reader(dir.db(), store_mode::read_only, busy_ms);
  CHECK(reader.find_test(3)->state == test_state::running);
}

// ---- compact storage (schema version 5) ----

namespace {

// Readings as a driver writes them, `days` of half-hourly values that do not repeat.
std::string readings_text(int days, int seed = 1) {
  std::string s = R"({"serialNumber":"SN)" + std::to_string(seed) + R"(","surveyData":[{"name":"kWh","readings":[)";
  std::uint32_t x = static_cast<std::uint32_t>(seed) * 2654435761u;
  for (int i = 0; i < days * 48; ++i) {
    x = x * 1103515245u + 12345u;
    s += (i ? "," : "") + std::string(R"({"timestamp":")") + std::to_string(1700000000 + i * 1800) +
         R"(","value":)" + std::to_string(x % 100000) + "}";
  }
  return s + "]}]}";
}

// Runs a stored test to completion with these texts.
void complete_with(store& s, test_id id, unix_seconds end, const std::string& readings, const std::string& transcript) {
  REQUIRE(s.mark_running(id, end - 1));
  auto o = outcome_for(id, "SUCCESS", end);
  o.readings_json = readings;
  o.transcript_json = transcript;
  REQUIRE(s.complete_test(o));
}

// Bytes of a column as SQLite stores them (a BLOB's bytes, a TEXT's text).
std::string raw_bytes(const std::string& path, const std::string& sql) {
  SQLite::Database db(path, SQLite::OPEN_READONLY, 5000);
  SQLite::Statement st(db, sql);
  REQUIRE(st.executeStep());
  return st.getColumn(0).getString();
}

// A whole purge pass of one kind: the steps' deletions, in order.
std::vector<std::int64_t> purge_pass(store& s, purge_kind kind, unix_seconds cutoff, std::int64_t limit) {
  std::vector<std::int64_t> deleted;
  purge_step step{kind, cutoff, 0, limit};
  for (;;) {
    const auto r = s.purge(step);
    deleted.push_back(r.deleted);
    REQUIRE(r.deleted <= limit);
    if (r.done)
      return deleted;
    REQUIRE(r.next_after > step.after);
    step.after = r.next_after;
  }
}

} // namespace

TEST_CASE("results are stored packed and served as the same text", "[store][packed]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  const std::string readings = readings_text(10), transcript = R"([{"attempt":1,"events":[{"ms":0}]}])";
  s.insert_test(simple_request(), 10);
  complete_with(s, 1, 30, readings, transcript);

  // On disk: the packed form only, a fraction of the text's size.
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM tests WHERE readings_json IS NULL AND readings IS NOT NULL") == 1);
  const std::string packed = raw_bytes(dir.db(), "SELECT readings FROM tests WHERE id = 1");
  CHECK(packed.size() * 2 < readings.size());
  CHECK(packed_json::unpack(packed) == readings);
  CHECK(packed_json::unpack(raw_bytes(dir.db(), "SELECT transcript FROM test_transcripts WHERE test_id = 1")) ==
        transcript);
  CHECK(raw_bytes(dir.db(), "SELECT transcript_json FROM test_transcripts WHERE test_id = 1").empty());

  // Served as the text it was made from, by the writer and by a reader.
  store reader(dir.db(), store_mode::read_only, busy_ms);
  for (store* st : {&s, &reader}) {
    CHECK(st->find_test(1)->readings_json == readings);
    CHECK(st->find_transcript(1) == std::optional<std::string>(transcript));
  }

  // An outcome its producer packed (the test actor) is stored as given, its text released.
  s.insert_test(simple_request(), 11);
  REQUIRE(s.mark_running(2, 20));
  auto o = outcome_for(2, "SUCCESS", 40);
  o.packed_readings = packed_json::pack(readings_text(2, 7));
  o.packed_transcript = packed_json::pack("[]");
  REQUIRE(s.complete_test(o));
  CHECK(reader.find_test(2)->readings_json == readings_text(2, 7));
  CHECK(reader.find_transcript(2) == std::optional<std::string>("[]"));

  // No readings: NULL in both columns, "" when read.
  s.insert_test(simple_request(), 12);
  complete_with(s, 3, 50, "", "");
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM tests WHERE id = 3 AND readings IS NULL AND readings_json IS NULL") == 1);
  CHECK(reader.find_test(3)->readings_json.empty());
  CHECK(reader.find_transcript(3) == std::optional<std::string>(""));
}

TEST_CASE("a damaged packed value is a storage failure naming the test, never a wrong answer", "[store][packed]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  s.insert_test(simple_request(), 10);
  complete_with(s, 1, 30, readings_text(1), "[]");
  {
    SQLite::Database raw(dir.db(), SQLite::OPEN_READWRITE);
    raw.exec("UPDATE tests SET readings = substr(readings, 1, length(readings) - 3)");
    raw.exec("UPDATE test_transcripts SET transcript = x'09'");
  }
  REQUIRE_THROWS_MATCHES(s.find_test(1), store_error,
                         Catch::Message("the stored readings of test 1 cannot be decoded: length mismatch or truncated stream"));
  REQUIRE_THROWS_MATCHES(s.find_transcript(1), store_error,
                         Catch::Message("the stored transcript of test 1 cannot be decoded: unknown format 9"));
  // Summaries do not read the readings: search and batch-status still work.
  CHECK(s.search(all_query()).total_count == 1);
}

TEST_CASE("a version 4 database is served as before, then converted in steps that survive a restart",
          "[store][packed]") {
  temp_dir dir;
  fs::create_directories(dir.path / "data");
  const std::string r1 = readings_text(3, 1), r2 = readings_text(1, 2), r5 = readings_text(2, 5);
  const std::string t1 = R"([{"attempt":1,"events":[]}])", t4 = R"([{"attempt":2,"events":[]}])";
  {
    // The database as the build before compact storage left it: text columns.
    SQLite::Database raw(dir.db(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec(schema::bootstrap_sql);
    for (int v = 0; v < 4; ++v) {
      raw.exec(schema::migrations()[v]);
      raw.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (" + std::to_string(v + 1) + ", 0)");
    }
    auto add = [&](const char* state, const std::string& readings) {
      SQLite::Statement st(raw, "INSERT INTO tests (received_time, immediate, meter_type, remote_address, survey_days, "
                                "state, result, attempts, completed_time, readings_json) "
                                "VALUES (10, 1, 'IEC62056-21', '127.0.0.1:4059', 1, ?, 'SUCCESS', 1, 20, ?)");
      st.bind(1, state);
      if (readings.empty())
        st.bind(2);
      else
        st.bind(2, readings);
      st.exec();
    };
    add("COMPLETED", r1); // 1: readings and a transcript
    add("COMPLETED", r2); // 2: readings only
    add("PENDING", "");   // 3: not run yet
    add("COMPLETED", ""); // 4: a transcript only (nothing read)
    add("COMPLETED", r5); // 5: readings, deleted while the conversion runs
    SQLite::Statement tr(raw, "INSERT INTO test_transcripts (test_id, transcript_json) VALUES (?, ?)");
    tr.bind(1, 1);
    tr.bind(2, t1);
    tr.exec();
    tr.reset();
    tr.bind(1, 4);
    tr.bind(2, t4);
    tr.exec();
  }
  auto served_as_before = [&](store& s) {
    CHECK(s.find_test(1)->readings_json == r1);
    CHECK(s.find_test(2)->readings_json == r2);
    CHECK(s.find_test(3)->readings_json.empty());
    CHECK(s.find_test(4)->readings_json.empty());
    CHECK(s.find_transcript(1) == std::optional<std::string>(t1));
    CHECK(s.find_transcript(2) == std::optional<std::string>(""));
    CHECK(s.find_transcript(4) == std::optional<std::string>(t4));
  };
  auto pack = [](const store::text_chunk& chunk) {
    std::vector<packed_row> out;
    for (const auto& r : chunk.rows) {
      packed_row p{r.id, std::nullopt, std::nullopt};
      if (r.readings_json)
        p.readings = packed_json::pack(*r.readings_json);
      if (r.transcript_json)
        p.transcript = packed_json::pack(*r.transcript_json);
      out.push_back(std::move(p));
    }
    return out;
  };
  {
    store s(dir.db(), store_mode::read_write, busy_ms);
    CHECK(s.schema_version() == 7);
    CHECK(s.conversion().converted_to == 0);
    CHECK(s.conversion().last_test_id == 5);
    served_as_before(s);
    // First step: tests 1 and 2.
    const auto chunk = s.text_rows(0, 5, 2, 1 << 20);
    CHECK(chunk.end == 2);
    REQUIRE(chunk.rows.size() == 2);
    CHECK(chunk.rows[0].readings_json == std::optional<std::string>(r1));
    CHECK(chunk.rows[0].transcript_json == std::optional<std::string>(t1));
    CHECK(chunk.rows[1].readings_json == std::optional<std::string>(r2));
    CHECK_FALSE(chunk.rows[1].transcript_json);
    const auto after = s.store_packed(pack(chunk), chunk.end);
    CHECK(after.converted_to == 2);
    CHECK_FALSE(after.complete());
    served_as_before(s);
  } // the process stops here (a crash between two steps looks the same: each step is one transaction)
  store s(dir.db(), store_mode::read_write, busy_ms);
  const auto resumed = s.conversion();
  CHECK(resumed.converted_to == 2);
  CHECK(resumed.last_test_id == 5);
  auto chunk = s.text_rows(2, 5, 2, 1 << 20); // tests 3 (nothing to convert) and 4 (a transcript)
  CHECK(chunk.end == 4);
  REQUIRE(chunk.rows.size() == 1);
  CHECK(chunk.rows[0].id == 4);
  CHECK_FALSE(chunk.rows[0].readings_json);
  CHECK(chunk.rows[0].transcript_json == std::optional<std::string>(t4));
  CHECK(s.store_packed(pack(chunk), chunk.end).converted_to == 4);
  // Test 5 is read, then deleted before its step is stored: the step does not bring it back.
  chunk = s.text_rows(4, 5, 2, 1 << 20);
  CHECK(chunk.end == 5);
  REQUIRE(chunk.rows.size() == 1);
  { SQLite::Database(dir.db(), SQLite::OPEN_READWRITE).exec("DELETE FROM tests WHERE id = 5"); }
  CHECK(s.store_packed(pack(chunk), chunk.end).complete());
  CHECK(s.conversion().complete());
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM storage_conversion") == 0);
  CHECK_FALSE(s.find_test(5));

  served_as_before(s);
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM tests WHERE readings_json IS NOT NULL") == 0);
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM tests WHERE readings IS NOT NULL") == 2);
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM test_transcripts WHERE transcript IS NULL OR transcript_json <> ''") == 0);
  // The pending test of the old database completes in the new form.
  complete_with(s, 3, 40, r2, t1);
  CHECK(s.find_test(3)->readings_json == r2);
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM tests WHERE id = 3 AND readings IS NOT NULL") == 1);
  // A database migrated this way cannot give pages back (created without auto_vacuum).
  CHECK_FALSE(s.space().incremental_vacuum);
  // A chunk ends early once its text passes the byte budget (here at the first test).
  {
    store reread(dir.db(), store_mode::read_write, busy_ms);
    SQLite::Database(dir.db(), SQLite::OPEN_READWRITE)
        .exec("UPDATE tests SET readings_json = 'xxxxxxxxxx', readings = NULL WHERE id IN (1, 2)");
    const auto budget = reread.text_rows(0, 4, 3, 5);
    CHECK(budget.end == 1);
    REQUIRE(budget.rows.size() == 1);
    CHECK(budget.rows[0].readings_json == std::optional<std::string>("xxxxxxxxxx"));
    CHECK(reread.text_rows(0, 4, 3, 1000).end == 3);
  }
}

TEST_CASE("purge: completed tests older than the cutoff go, in bounded steps; pending and running ones stay",
          "[store][retention]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  for (int i = 0; i < 8; ++i)
    s.insert_test(simple_request(), 100 + i); // ids 1..8
  complete_with(s, 1, 150, readings_text(1), "");
  complete_with(s, 2, 199, "", "");              // one second before the cutoff: goes
  complete_with(s, 3, 200, "", "");              // at the cutoff: stays
  REQUIRE(s.mark_running(4, 120));               // running since long ago: stays
  complete_with(s, 6, 150, readings_text(1), "[]"); // its transcript goes with it
  complete_with(s, 7, 300, "", "");              // received long ago, completed late: stays
  complete_with(s, 8, 150, "", "");
  // 5 is pending: stays.

  // Steps of 3 rows: (0,3] deletes 1 and 2, (3,6] deletes 6, (6,8] deletes 8.
  CHECK(purge_pass(s, purge_kind::completed_tests, 200, 3) == std::vector<std::int64_t>{2, 1, 1});
  for (test_id gone : {1, 2, 6, 8})
    CHECK_FALSE(s.find_test(gone));
  for (test_id kept : {3, 4, 5, 7})
    CHECK(s.find_test(kept));
  CHECK(s.find_test(4)->state == test_state::running);
  CHECK(s.find_test(5)->state == test_state::pending);
  CHECK(count_rows(dir.db(), "SELECT COUNT(*) FROM test_transcripts") == 0);
  // A purged test is unknown to every query, as a cancelled one is.
  CHECK(s.search(all_query()).total_count == 4);
  CHECK_FALSE(s.find_transcript(6));
  // Nothing left to do: the kept rows are looked at again (3, 4, 5, then 7), nothing deleted.
  CHECK(purge_pass(s, purge_kind::completed_tests, 200, 3) == std::vector<std::int64_t>{0, 0});
  // Nothing received before the cutoff: done at once.
  CHECK(purge_pass(s, purge_kind::completed_tests, 50, 3) == std::vector<std::int64_t>{0});
}

TEST_CASE("purge: transcripts older than their cutoff go, their tests stay", "[store][retention]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  for (int i = 0; i < 4; ++i)
    s.insert_test(simple_request(), 100 + i);
  complete_with(s, 1, 150, readings_text(1), "[1]");
  complete_with(s, 2, 250, readings_text(1), "[2]");
  complete_with(s, 3, 350, readings_text(1), "[3]");
  complete_with(s, 4, 299, "", "");          // no transcript
  // One transcript a step: 1, 2, then 3 (completed after the cutoff), then none up to test 4.
  CHECK(purge_pass(s, purge_kind::transcripts, 300, 1) == std::vector<std::int64_t>{1, 1, 0, 0});
  CHECK(s.find_transcript(1) == std::optional<std::string>(""));
  CHECK(s.find_transcript(2) == std::optional<std::string>(""));
  CHECK(s.find_transcript(3) == std::optional<std::string>("[3]"));
  for (test_id id : {1, 2, 3})
    CHECK(s.find_test(id)->readings_json == readings_text(1));
}

TEST_CASE("purge: batches older than the cutoff with no test left go", "[store][retention]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  const batch_id all_purged = s.insert_batch({simple_request(), simple_request()}, 100).first; // tests 1, 2
  const batch_id one_pending = s.insert_batch({simple_request(), simple_request()}, 101).first; // 3, 4
  const batch_id cancelled = s.insert_batch({simple_request()}, 102).first;                    // 5
  const batch_id young = s.insert_batch({simple_request()}, 300).first;                        // 6
  complete_with(s, 1, 150, "", "");
  complete_with(s, 2, 160, "", "");
  complete_with(s, 3, 150, "", "");
  REQUIRE(s.cancel_batch(cancelled, false).cancelled_count == 1);
  REQUIRE(s.cancel_batch(young, false).cancelled_count == 1);
  CHECK(purge_pass(s, purge_kind::completed_tests, 200, 10) == std::vector<std::int64_t>{3});
  // One batch a step; the walk ends at the first batch received after the cutoff.
  CHECK(purge_pass(s, purge_kind::empty_batches, 200, 1) == std::vector<std::int64_t>{1, 0, 1, 0});
  CHECK_FALSE(s.batch_tests(all_purged));
  CHECK_FALSE(s.batch_tests(cancelled));
  CHECK(ids_of(*s.batch_tests(one_pending)) == std::vector<test_id>{4});
  CHECK(s.batch_tests(young)->empty()); // a cancelled batch younger than the cutoff is still known
}

TEST_CASE("space: a new database gives the pages a purge freed back to the file system", "[store][retention]") {
  temp_dir dir;
  store s(dir.db(), store_mode::read_write, busy_ms);
  const auto empty = s.space();
  CHECK(empty.incremental_vacuum);
  CHECK(empty.page_size > 0);
  for (int i = 1; i <= 40; ++i) {
    s.insert_test(simple_request(), 100);
    complete_with(s, i, 150, readings_text(20, i), "");
  }
  const auto full = s.space();
  CHECK(full.pages > empty.pages + 40); // each result is several pages
  CHECK(purge_pass(s, purge_kind::completed_tests, 200, 100) == std::vector<std::int64_t>{40});
  const auto purged = s.space();
  CHECK(purged.pages == full.pages);
  CHECK(purged.free_pages > 40);
  const auto released = s.release_free_pages(10);
  CHECK(released.free_pages == purged.free_pages - 10);
  CHECK(released.pages == purged.pages - 10);
  const auto all = s.release_free_pages(purged.free_pages);
  CHECK(all.free_pages == 0);
  CHECK(all.pages < full.pages - 40);
}

TEST_CASE("the start-up check runs as configured and names what it found", "[store]") {
  temp_dir dir;
  std::int64_t index_root = 0;
  {
    store s(dir.db(), store_mode::read_write, busy_ms);
    std::vector<test_request> many(2000, simple_request());
    s.insert_batch(many, 100);
  }
  {
    // Closing the last connection checkpoints the WAL into the file.
    SQLite::Database raw(dir.db(), SQLite::OPEN_READONLY);
    index_root = raw.execAndGet("SELECT rootpage FROM sqlite_master WHERE name = 'tests_received_time'").getInt64();
    REQUIRE(index_root > 1);
  }
  for (auto check : {open_check::integrity, open_check::quick, open_check::none})
    CHECK_NOTHROW(store(dir.db(), store_mode::read_write, busy_ms, check));
  {
    // One index page overwritten: its b-tree page type becomes invalid.
    std::fstream file(dir.db(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp((index_root - 1) * 4096);
    const std::string garbage(16, '\xEE');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  REQUIRE_THROWS_WITH(store(dir.db(), store_mode::read_write, busy_ms, open_check::integrity),
                      Catch::StartsWith("database integrity check failed: "));
  REQUIRE_THROWS_WITH(store(dir.db(), store_mode::read_write, busy_ms, open_check::quick),
                      Catch::StartsWith("database quick check failed: "));
  // Unchecked, the damaged file opens; the rows are still readable through the table.
  store unchecked(dir.db(), store_mode::read_write, busy_ms, open_check::none);
  CHECK(unchecked.find_test(2000).has_value());
}

TEST_CASE("a count of tests by status in a time range reads an index only", "[store]") {
  // A count of status=PENDING over a million queued tests must not read every row
  // (schema version 6): the plan names a covering index.
  temp_dir dir;
  { store s(dir.db(), store_mode::read_write, busy_ms); }
  SQLite::Database raw(dir.db(), SQLite::OPEN_READONLY);
  for (const char* states : {"IN ('PENDING', 'RUNNING')", "= 'COMPLETED'"}) {
    SQLite::Statement plan(raw, std::string("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM tests WHERE received_time "
                                            "BETWEEN 0 AND 100 AND state ") + states);
    std::string detail;
    while (plan.executeStep())
      detail += plan.getColumn(3).getString() + "\n";
    INFO(detail);
    CHECK(detail.find("USING COVERING INDEX tests_state_received_time") != std::string::npos);
  }
}

TEST_CASE("reads inside begin_read and end_read see one snapshot", "[store]") {
  temp_dir dir;
  store w(dir.db(), store_mode::read_write, busy_ms);
  store r(dir.db(), store_mode::read_only, busy_ms);
  w.insert_test(simple_request(), 100);
  {
    store::read_scope snapshot(r);
    REQUIRE(r.find_test(1).has_value());
    w.insert_test(simple_request(), 101); // committed while the snapshot is open
    CHECK_FALSE(r.find_test(2).has_value());
    CHECK(r.search(all_query()).total_count == 1);
  }
  // After the scope, every statement is its own transaction again.
  CHECK(r.find_test(2).has_value());
  r.begin_read();
  r.end_read();
  r.end_read(); // ending twice is harmless
  CHECK(r.search(all_query()).total_count == 2);
}

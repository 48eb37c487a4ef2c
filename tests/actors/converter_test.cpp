// The CONVERTER actor on the deterministic scheduler: rows stored as text before the compact
// encoding are converted in steps, answers stay the same throughout, and a conversion cut off
// at any step goes on where it stopped when the server starts again.
#include "actors/converter.hpp"
#include "tests/actors/actor_fixture.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>

using namespace mts;
using namespace mts::testing;

namespace {

struct converter_fixture : actor_fixture {
  std::shared_ptr<storage_stats> stats = std::make_shared<storage_stats>();
  std::vector<test_id> ids;

  // `count` completed tests stored the way a database from before schema version 5 holds them
  // (text columns, and the conversion still to do), every other one with a transcript.
  void old_rows(int count) {
    for (int i = 0; i < count; ++i) {
      ids.push_back(db->insert_test(make_request(true), fake_now));
      REQUIRE(db->mark_running(ids.back(), fake_now));
      test_outcome o;
      o.id = ids.back();
      o.result = "SUCCESS";
      o.test_end_time = fake_now + 10;
      REQUIRE(db->complete_test(o));
    }
    SQLite::Database raw(db_path, SQLite::OPEN_READWRITE);
    for (test_id id : ids) {
      raw.exec("UPDATE tests SET readings_json = '" + readings(id) + "' WHERE id = " + std::to_string(id));
      if (id % 2)
        raw.exec("INSERT INTO test_transcripts (test_id, transcript_json) VALUES (" + std::to_string(id) + ", '" +
                 transcript(id) + "')");
    }
    raw.exec("INSERT INTO storage_conversion (id, converted_to, last_test_id) VALUES (1, 0, " +
             std::to_string(ids.back()) + ")");
  }

  static std::string readings(test_id id) { return R"({"serialNumber":"S)" + std::to_string(id) + R"(","registerValues":[]})"; }
  static std::string transcript(test_id id) { return R"([{"attempt":)" + std::to_string(id) + R"(,"events":[]}])"; }

  converter_actor spawn_converter(std::int64_t step_rows) {
    converter_config c;
    c.step_rows = step_rows;
    return sys.spawn(converter, std::make_shared<store>(db_path, store_mode::read_only, 1000), persist, stats, c);
  }

  // Every test answers what it answered before the conversion.
  void answers_unchanged() {
    for (test_id id : ids) {
      CHECK(inspect->find_test(id)->readings_json == readings(id));
      CHECK(inspect->find_transcript(id) == std::optional<std::string>(id % 2 ? transcript(id) : ""));
    }
  }

  std::int64_t text_rows_left() {
    SQLite::Database raw(db_path, SQLite::OPEN_READONLY);
    return raw.execAndGet("SELECT (SELECT COUNT(*) FROM tests WHERE readings_json IS NOT NULL) + "
                          "(SELECT COUNT(*) FROM test_transcripts WHERE transcript IS NULL)")
      .getInt64();
  }
};

} // namespace

TEST_CASE_METHOD(converter_fixture, "old rows are converted in steps; answers stay the same", "[actors][converter]") {
  old_rows(7);
  CHECK(text_rows_left() == 11);
  answers_unchanged();
  spawn_converter(2);
  sched.run();
  CHECK(text_rows_left() == 0);
  CHECK(inspect->conversion().complete());
  CHECK(stats->get().conversion.complete());
  answers_unchanged();
  // New results are packed as always; nothing more to convert at the next start.
  spawn_converter(2);
  sched.run();
  CHECK(inspect->conversion().complete());
}

TEST_CASE_METHOD(converter_fixture, "a conversion cut off at any step goes on where it stopped", "[actors][converter]") {
  old_rows(9);
  for (int messages_before_crash = 1; messages_before_crash < 12; ++messages_before_crash) {
    // The server stops (or dies) after this many messages of the conversion: the steps
    // committed so far stay, the one in flight is lost whole.
    auto first = spawn_converter(2);
    for (int i = 0; i < messages_before_crash && sched.try_run_once(); ++i) {
    }
    self->send_exit(first, caf::exit_reason::kill);
    sched.run();
    const auto progress = inspect->conversion();
    answers_unchanged();
    if (progress.complete())
      break;
    // Each committed step leaves the database consistent: the rows up to converted_to are
    // packed, the others still text.
    SQLite::Database raw(db_path, SQLite::OPEN_READONLY);
    CHECK(raw.execAndGet("SELECT COUNT(*) FROM tests WHERE id <= " + std::to_string(progress.converted_to) +
                         " AND readings_json IS NOT NULL").getInt64() == 0);
    CHECK(raw.execAndGet("SELECT COUNT(*) FROM tests WHERE id > " + std::to_string(progress.converted_to) +
                         " AND readings IS NOT NULL").getInt64() == 0);
  }
  // The next start finishes it.
  spawn_converter(2);
  sched.run();
  CHECK(text_rows_left() == 0);
  CHECK(inspect->conversion().complete());
  answers_unchanged();
}

// The RETENTION actor on the deterministic scheduler, with a pinned wall clock: what a pass
// deletes (to the second), that it works in steps, that it never touches pending or running
// tests, what it records for service-status, reloads, and giving free pages back.
#include "actors/retention.hpp"
#include "tests/actors/actor_fixture.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>

using namespace mts;
using namespace mts::testing;

namespace {

constexpr unix_seconds day = seconds_per_day;

struct retention_fixture : actor_fixture {
  std::shared_ptr<storage_stats> stats = std::make_shared<storage_stats>();

  retention_config config(std::int64_t completed_days, std::int64_t transcript_days, std::int64_t step_rows = 2) {
    retention_config c;
    c.retain_completed_days = completed_days;
    c.retain_transcripts_days = transcript_days;
    c.interval = std::chrono::seconds(3600);
    c.step_rows = step_rows;
    c.clock = [this] { return fake_now; };
    return c;
  }

  retention_actor spawn_retention(retention_config c) {
    auto hdl = sys.spawn(retention, std::move(c), persist, stats);
    sched.run(); // the first pass runs at once
    return hdl;
  }

  retention_state& state(const retention_actor& hdl) {
    auto ptr = caf::actor_cast<caf::abstract_actor*>(hdl);
    return dynamic_cast<retention_actor::stateful_base<retention_state>&>(*ptr).state;
  }

  // The next pass: the interval's timer fires.
  void next_pass() {
    sched.trigger_timeouts();
    sched.run();
  }

  // A test received at `received` and completed at `completed` (with a transcript), by the writer.
  test_id completed_test(unix_seconds received, unix_seconds completed) {
    const test_id id = db->insert_test(make_request(true), received);
    complete_existing(id, completed);
    return id;
  }

  void complete_existing(test_id id, unix_seconds completed, std::string readings = R"({"serialNumber":"1"})") {
    REQUIRE(db->mark_running(id, completed - 10));
    test_outcome o;
    o.id = id;
    o.result = "SUCCESS";
    o.test_end_time = completed;
    o.readings_json = std::move(readings);
    o.transcript_json = R"([{"attempt":1,"events":[]}])";
    REQUIRE(db->complete_test(o));
  }

  bool has_transcript(test_id id) { return inspect->find_transcript(id).value_or("") != ""; }
};

} // namespace

TEST_CASE_METHOD(retention_fixture, "a pass deletes what is past its retention, to the second, and only that",
                 "[actors][retention]") {
  // Received in id order, as the server receives them.
  const unix_seconds tests_cutoff = fake_now - 10 * day, transcripts_cutoff = fake_now - 2 * day;
  const test_id pending = db->insert_test(make_request(false), fake_now - 100 * day);
  const test_id running = db->insert_test(make_request(true), fake_now - 90 * day);
  REQUIRE(db->mark_running(running, fake_now - 50 * day));
  const test_id gone = completed_test(fake_now - 40 * day, tests_cutoff - 1);
  const test_id at_cutoff = completed_test(fake_now - 40 * day, tests_cutoff); // stays, transcript goes
  auto [emptied, emptied_tests] = db->insert_batch({make_request(true), make_request(true)}, fake_now - 30 * day);
  for (test_id id : emptied_tests)
    complete_existing(id, fake_now - 20 * day);
  auto [kept_batch, kept_tests] = db->insert_batch({make_request(true), make_request(false)}, fake_now - 30 * day);
  complete_existing(kept_tests[0], fake_now - 20 * day);
  const test_id old_transcript = completed_test(fake_now - 5 * day, transcripts_cutoff - 1); // transcript goes
  const test_id young = completed_test(fake_now - 5 * day, transcripts_cutoff);            // all stays

  auto hdl = spawn_retention(config(10, 2, /*step_rows=*/2));

  for (test_id id : {gone, emptied_tests[0], emptied_tests[1], kept_tests[0]})
    CHECK_FALSE(inspect->find_test(id));
  for (test_id id : {at_cutoff, old_transcript, young, pending, running, kept_tests[1]})
    CHECK(inspect->find_test(id));
  CHECK(inspect->find_test(pending)->state == test_state::pending);
  CHECK(inspect->find_test(running)->state == test_state::running);
  CHECK_FALSE(has_transcript(at_cutoff));
  CHECK_FALSE(has_transcript(old_transcript));
  CHECK(has_transcript(young));
  CHECK(inspect->find_test(young)->readings_json == R"({"serialNumber":"1"})");
  CHECK_FALSE(inspect->batch_tests(emptied));
  CHECK(ids_of(*inspect->batch_tests(kept_batch)) == std::vector<test_id>{kept_tests[1]});

  // Counted for service-status and the log.
  auto s = stats->get();
  CHECK(s.purged_tests == 4);
  CHECK(s.purged_transcripts == 2);
  CHECK(s.purged_batches == 1);
  CHECK(s.last_purge == std::optional<unix_seconds>(fake_now));
  REQUIRE(s.space);
  CHECK(s.space->pages > 0);
  // In steps of at most 2 rows: the 10 tests alone take 5 steps.
  CHECK(state(hdl).steps >= 5);
  CHECK(state(hdl).passes == 1);

  // A day later the next pass takes the transcript that has now aged past its retention.
  fake_now += day;
  next_pass();
  CHECK(state(hdl).passes == 2);
  CHECK_FALSE(has_transcript(young));
  CHECK(inspect->find_test(young));
  s = stats->get();
  CHECK(s.purged_transcripts == 3);
  CHECK(s.purged_tests == 5); // at_cutoff is now older than 10 days
  CHECK(s.last_purge == std::optional<unix_seconds>(fake_now));
  self->send_exit(hdl, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(retention_fixture, "retention 0 keeps everything; a reload applies from the next pass",
                 "[actors][retention]") {
  const test_id ancient = completed_test(fake_now - 3000 * day, fake_now - 3000 * day);
  auto hdl = spawn_retention(config(0, 0));
  CHECK(inspect->find_test(ancient));
  CHECK(has_transcript(ancient));
  CHECK(stats->get().purged_tests == 0);
  CHECK(stats->get().space); // measured all the same

  self->send(hdl, reload_atom::value, std::make_shared<const retention_config>(config(0, 365)));
  sched.run();
  CHECK(has_transcript(ancient)); // not before the next pass
  next_pass();
  CHECK_FALSE(has_transcript(ancient));
  CHECK(inspect->find_test(ancient));

  self->send(hdl, reload_atom::value, std::make_shared<const retention_config>(config(365, 0)));
  next_pass();
  CHECK_FALSE(inspect->find_test(ancient));
  CHECK(stats->get().purged_tests == 1);
  CHECK(stats->get().purged_transcripts == 1);
  self->send_exit(hdl, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(retention_fixture, "after a large purge the free pages are given back to the file system",
                 "[actors][retention]") {
  // Results that do not compress to nothing: every value differs.
  for (int i = 0; i < 30; ++i) {
    const test_id id = db->insert_test(make_request(true), fake_now - 100 * day);
    std::string readings = R"({"v":[)";
    for (int k = 0; k < 4000; ++k)
      readings += (k ? "," : "") + std::to_string((k * 7919 + i * 104729) % 1000003);
    complete_existing(id, fake_now - 90 * day, readings + "]}");
  }
  const auto before = db->space();
  auto hdl = spawn_retention(config(30, 0, 10));
  CHECK(stats->get().purged_tests == 30);
  const auto after = *stats->get().space;
  CHECK(after.free_pages == 0);
  CHECK(after.pages < before.pages / 2);
  CHECK(state(hdl).released_pages > 0);
  self->send_exit(hdl, caf::exit_reason::user_shutdown);
  sched.run();
}

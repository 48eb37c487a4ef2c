// The PERSISTENCE and READER actors in isolation on the deterministic scheduler.
#include "persistence/packed_json.hpp"
#include "tests/actors/actor_fixture.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>

using namespace mts;
using namespace mts::testing;

namespace {

// Stands in for the scheduler as the queue sink, and submits tests itself when told to (run),
// so that what the persistence actor tells it and what it answers arrive in one mailbox, in
// the order they were sent. Each line of `log` is "queued <ids>" or "answer <ids>".
caf::behavior sink_probe(caf::event_based_actor* self, std::shared_ptr<std::vector<std::string>> log,
                         persistence_actor persist, std::vector<test_request> singles, std::vector<test_request> batch) {
  auto ids_of = [](const std::vector<test_id>& ids) {
    std::string out;
    for (auto id : ids)
      out += (out.empty() ? "" : " ") + std::to_string(id);
    return out;
  };
  return {
    [log, ids_of](queued_atom, std::vector<queued_test>& tests) {
      std::vector<test_id> ids;
      for (const auto& t : tests)
        ids.push_back(t.id);
      log->push_back("queued " + ids_of(ids));
    },
    [self, log, ids_of, persist, singles, batch](run_atom) {
      for (const auto& req : singles)
        self->request(persist, caf::infinite, insert_atom::value, req, unix_seconds{1'700'000'000})
          .then([log](test_id id) { log->push_back("answer " + std::to_string(id)); });
      self->request(persist, caf::infinite, insert_atom::value, batch, unix_seconds{1'700'000'000})
        .then([log, ids_of](batch_inserted& inserted) { log->push_back("answer " + ids_of(inserted.tests)); });
    },
  };
}

// A queue sink that keeps what it is told, one entry per message.
queue_sink_actor::behavior_type recording_sink(queue_sink_actor::pointer,
                                               std::shared_ptr<std::vector<std::vector<queued_test>>> told) {
  return {[told](queued_atom, std::vector<queued_test>& tests) { told->push_back(std::move(tests)); }};
}

} // namespace

TEST_CASE_METHOD(actor_fixture, "the persistence actor commits before it answers", "[actors][persistence]") {
  auto id = ask<test_id>(persist, insert_atom::value, make_request(true, "ref-1"), fake_now);
  REQUIRE(id);
  // Another connection sees the row as soon as the id is known.
  auto rec = inspect->find_test(*id);
  REQUIRE(rec);
  CHECK(rec->request.request_reference == std::string("ref-1"));
  CHECK(rec->received_time == fake_now);

  auto batch = ask<batch_inserted>(persist, insert_atom::value,
                                   std::vector<test_request>{make_request(true), make_request(false)}, fake_now);
  REQUIRE(batch);
  REQUIRE(batch->tests.size() == 2);
  CHECK(inspect->batch_tests(batch->batch)->size() == 2);
}

TEST_CASE_METHOD(actor_fixture, "a result is written exactly once", "[actors][persistence]") {
  auto id = ask<test_id>(persist, insert_atom::value, make_request(true), fake_now);
  REQUIRE(id);
  auto started = ask<bool>(persist, start_atom::value, *id, fake_now + 1);
  REQUIRE(started);
  CHECK(*started);
  auto again = ask<bool>(persist, start_atom::value, *id, fake_now + 2);
  CHECK_FALSE(*again); // no longer pending

  test_outcome outcome;
  outcome.id = *id;
  outcome.result = "SUCCESS";
  outcome.test_end_time = fake_now + 30;
  auto first = ask<bool>(persist, finish_atom::value, outcome);
  outcome.result = "ERROR: written twice";
  auto second = ask<bool>(persist, finish_atom::value, outcome);
  CHECK(*first);
  CHECK_FALSE(*second);
  CHECK(inspect->find_test(*id)->result == "SUCCESS");
}

TEST_CASE_METHOD(actor_fixture, "a result is stored packed, whether or not its maker packed it", "[actors][persistence]") {
  store rd(db_path, store_mode::read_only, 1000);
  const std::string readings = R"({"serialNumber":"123","registerValues":[]})";
  const std::string transcript = R"([{"attempt":1,"events":[]}])";
  for (bool packed_by_maker : {false, true}) {
    auto id = ask<test_id>(persist, insert_atom::value, make_request(true), fake_now);
    REQUIRE(id);
    REQUIRE(*ask<bool>(persist, start_atom::value, *id, fake_now + 1));
    test_outcome outcome;
    outcome.id = *id;
    outcome.result = "SUCCESS";
    outcome.test_end_time = fake_now + 30;
    outcome.readings_json = readings;
    outcome.transcript_json = transcript;
    if (packed_by_maker)
      packed_json::pack_outcome(outcome);
    REQUIRE(*ask<bool>(persist, finish_atom::value, outcome));
    SQLite::Database raw(db_path, SQLite::OPEN_READONLY);
    CHECK(raw.execAndGet("SELECT readings_json IS NULL AND readings IS NOT NULL FROM tests WHERE id = " +
                         std::to_string(*id)).getInt() == 1);
    CHECK(rd.find_test(*id)->readings_json == readings);
    CHECK(rd.find_transcript(*id) == transcript);
  }
}

TEST_CASE_METHOD(actor_fixture, "readers answer batch queries and report unknown batches as errors", "[actors][reader]") {
  auto rd = sys.spawn(reader, std::make_shared<store>(db_path, store_mode::read_only, 1000));
  sched.run();
  auto batch = ask<batch_inserted>(persist, insert_atom::value, std::vector<test_request>{make_request(true, "x")},
                                   fake_now);
  REQUIRE(batch);
  auto tests = ask<std::vector<test_record>>(rd, get_atom::value, batch_atom::value, batch->batch);
  REQUIRE(tests);
  REQUIRE(tests->size() == 1);
  CHECK(tests->front().request.request_reference == std::optional<std::string>("x"));
  auto no_batch = ask<std::vector<test_record>>(rd, get_atom::value, batch_atom::value, batch_id{42});
  REQUIRE_FALSE(no_batch);
  CHECK(no_batch.error() == make_error(app_errc::unknown_batch));
  self->send_exit(rd, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "test starts and results that queue up are written in one group commit",
                 "[actors][persistence]") {
  std::vector<test_id> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(*ask<test_id>(persist, insert_atom::value, make_request(true), fake_now));
  auto* actor = dynamic_cast<persistence_actor::stateful_pointer<persistence_state>>(
      caf::actor_cast<caf::abstract_actor*>(persist));
  REQUIRE(actor != nullptr);
  const auto commits_before = actor->state.group_commits;

  // Three starts (one of them twice) queue up before the actor runs.
  auto h1 = self->request(persist, caf::infinite, start_atom::value, ids[0], fake_now + 1);
  auto h2 = self->request(persist, caf::infinite, start_atom::value, ids[1], fake_now + 1);
  auto h3 = self->request(persist, caf::infinite, start_atom::value, ids[1], fake_now + 2);
  sched.run();
  std::vector<bool> started;
  for (auto* h : {&h1, &h2, &h3})
    h->receive([&](bool ok) { started.push_back(ok); }, [&](caf::error& err) { FAIL(to_string(err)); });
  CHECK(started == std::vector<bool>{true, true, false});
  CHECK(actor->state.group_commits == commits_before + 1);
  CHECK(inspect->find_test(ids[0])->state == test_state::running);
  CHECK(inspect->find_test(ids[1])->test_start_time == fake_now + 1);

  // Results and a start together: one more commit.
  test_outcome a, b;
  a.id = ids[0];
  a.result = "SUCCESS";
  a.test_end_time = fake_now + 30;
  b = a;
  b.id = ids[1];
  b.result = "ERROR: no answer to sign-on";
  auto f1 = self->request(persist, caf::infinite, finish_atom::value, a);
  auto s3 = self->request(persist, caf::infinite, start_atom::value, ids[2], fake_now + 31);
  auto f2 = self->request(persist, caf::infinite, finish_atom::value, b);
  auto f3 = self->request(persist, caf::infinite, finish_atom::value, a); // written already
  sched.run();
  std::vector<bool> answers;
  for (auto* h : {&f1, &s3, &f2, &f3})
    h->receive([&](bool ok) { answers.push_back(ok); }, [&](caf::error& err) { FAIL(to_string(err)); });
  CHECK(answers == std::vector<bool>{true, true, true, false});
  CHECK(actor->state.group_commits == commits_before + 2);
  CHECK(inspect->find_test(ids[0])->result == "SUCCESS");
  CHECK(inspect->find_test(ids[1])->result == "ERROR: no answer to sign-on");
  CHECK(inspect->find_test(ids[2])->state == test_state::running);
  CHECK(inspect->find_test(ids[3])->state == test_state::pending);
}

TEST_CASE_METHOD(actor_fixture, "a write that fails makes the writer unhealthy until a probe commits again",
                 "[actors][persistence]") {
  const auto stall = std::chrono::seconds(30);
  REQUIRE(writer->check(writer_health::clock::now(), stall).ok);
  {
    // Another connection holds the write lock past the actor's busy timeout (1 s here), so
    // the insert fails the way it would on a locked, read-only or full database.
    SQLite::Database blocker(db_path, SQLite::OPEN_READWRITE);
    blocker.exec("BEGIN EXCLUSIVE");
    auto id = ask<test_id>(persist, insert_atom::value, make_request(true), fake_now);
    REQUIRE_FALSE(id);
    CHECK(id.error() == make_error(app_errc::storage_failure, "insert test"));
    auto verdict = writer->check(writer_health::clock::now(), stall);
    CHECK_FALSE(verdict.ok);
    CHECK(verdict.reason.find("the last database write failed") == 0);
    // A probe while the lock is still held fails too: still not OK.
    self->send(persist, health_atom::value);
    sched.run();
    CHECK_FALSE(writer->check(writer_health::clock::now(), stall).ok);
    blocker.exec("ROLLBACK");
  }
  self->send(persist, health_atom::value);
  sched.run();
  CHECK(writer->check(writer_health::clock::now(), stall).ok);
  CHECK(writer->check(writer_health::clock::now(), stall).reason.empty());
}

TEST_CASE_METHOD(actor_fixture, "new tests that queue up share one commit, answered only after it",
                 "[actors][persistence]") {
  auto* actor = dynamic_cast<persistence_actor::stateful_pointer<persistence_state>>(
      caf::actor_cast<caf::abstract_actor*>(persist));
  REQUIRE(actor != nullptr);
  const auto commits_before = actor->state.group_commits;
  // Five submissions reach the actor before it runs: one transaction, ids in arrival order.
  std::vector<decltype(self->request(persist, caf::infinite, insert_atom::value, test_request{}, unix_seconds{}))> hs;
  for (int i = 0; i < 5; ++i)
    hs.push_back(self->request(persist, caf::infinite, insert_atom::value,
                               make_request(i % 2 == 0, "ref-" + std::to_string(i)), fake_now + i));
  // Nothing is answered before the group's commit: one step delivers the inserts and queues
  // the flush, nothing is in the database yet.
  for (int i = 0; i < 5; ++i)
    sched.run_once();
  CHECK(actor->state.inserts.size() == 5);
  search_query everything;
  everything.to_time = fake_now + 10;
  CHECK(inspect->search(everything).total_count == 0);
  sched.run();
  CHECK(actor->state.group_commits == commits_before + 1);
  std::vector<test_id> ids;
  for (auto& h : hs)
    h.receive([&](test_id id) { ids.push_back(id); }, [&](caf::error& err) { FAIL(to_string(err)); });
  REQUIRE(ids.size() == 5);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0)
      CHECK(ids[i] > ids[i - 1]);
    auto rec = inspect->find_test(ids[i]);
    REQUIRE(rec);
    CHECK(rec->request.request_reference == "ref-" + std::to_string(i));
    CHECK(rec->received_time == fake_now + static_cast<unix_seconds>(i));
  }

  // A batch that arrives while single tests wait writes them first: ids keep arrival order.
  auto single = self->request(persist, caf::infinite, insert_atom::value, make_request(true, "before"), fake_now);
  auto batch = self->request(persist, caf::infinite, insert_atom::value,
                             std::vector<test_request>{make_request(true, "in-batch")}, fake_now);
  sched.run();
  test_id single_id = 0;
  batch_inserted inserted;
  single.receive([&](test_id id) { single_id = id; }, [&](caf::error& err) { FAIL(to_string(err)); });
  batch.receive([&](batch_inserted& b) { inserted = b; }, [&](caf::error& err) { FAIL(to_string(err)); });
  REQUIRE(inserted.tests.size() == 1);
  CHECK(single_id > ids.back());
  CHECK(inserted.tests[0] > single_id);
}

TEST_CASE_METHOD(actor_fixture, "a start can answer the whole record; recovery can answer only keys",
                 "[actors][persistence]") {
  auto req = make_request(true, "full", "0123456");
  req.password = "secret";
  req.serial_number = "12345678";
  req.survey_days = 3;
  req.survey_date = "2023-11-10";
  auto id = ask<test_id>(persist, insert_atom::value, req, fake_now);
  auto other = ask<test_id>(persist, insert_atom::value, make_request(false, "o", "10.1.1.1:9"), fake_now);
  REQUIRE((id && other));
  auto started = ask<started_test>(persist, start_atom::value, get_atom::value, *id, fake_now + 5);
  REQUIRE(started);
  CHECK(started->started);
  const auto& rec = started->record;
  CHECK(rec.id == *id);
  CHECK(rec.state == test_state::running);
  CHECK(rec.attempts == 1);
  CHECK(rec.test_start_time == fake_now + 5);
  CHECK(rec.received_time == fake_now);
  CHECK(rec.request.remote_address == "0123456");
  CHECK(rec.request.password == std::string("secret"));
  CHECK(rec.request.serial_number == std::string("12345678"));
  CHECK(rec.request.survey_days == 3);
  CHECK(rec.request.survey_date == std::string("2023-11-10"));
  auto again = ask<started_test>(persist, start_atom::value, get_atom::value, *id, fake_now + 6);
  REQUIRE(again);
  CHECK_FALSE(again->started); // no longer pending

  // The process dies with the first test running: recovery queues both again, keys only.
  // (No queue sink: this test looks at the keys only.)
  auto keys = ask<std::vector<queued_test>>(persist, recover_atom::value, keys_atom::value, queue_sink_actor{});
  REQUIRE(keys);
  REQUIRE(keys->size() == 2);
  CHECK((*keys)[0].id == *id);
  CHECK((*keys)[0].immediate);
  CHECK((*keys)[0].meter_type == "ELSTERA1700");
  CHECK((*keys)[0].remote_address == "0123456");
  CHECK((*keys)[1].id == *other);
  CHECK_FALSE((*keys)[1].immediate);
  CHECK((*keys)[1].remote_address == "10.1.1.1:9");
  auto back = inspect->find_test(*id);
  CHECK(back->state == test_state::pending);
  CHECK(back->test_start_time == fake_now + 5); // the first start survives
}

TEST_CASE_METHOD(actor_fixture, "new tests reach the queue sink after their commit and before their answer",
                 "[actors][persistence]") {
  // Before any recovery there is no sink: the test is only in the recovery's answer.
  auto early = ask<test_id>(persist, insert_atom::value, make_request(false, "early", "10.0.0.9:1"), fake_now);
  REQUIRE(early);
  auto log = std::make_shared<std::vector<std::string>>();
  auto a = make_request(true, "a", "0111");
  auto b = make_request(false, "b", "10.0.0.2:4059");
  b.meter_type = "IEC62056-21";
  auto probe = sys.spawn(sink_probe, log, persist, std::vector<test_request>{a, b},
                         std::vector<test_request>{make_request(true, "c"), make_request(true, "d")});
  auto keys = ask<std::vector<queued_test>>(persist, recover_atom::value, keys_atom::value,
                                            caf::actor_cast<queue_sink_actor>(probe));
  REQUIRE(keys);
  REQUIRE(keys->size() == 1);
  CHECK(keys->front().id == *early);
  CHECK(log->empty()); // the recovered test is not told again

  self->send(probe, run_atom::value);
  sched.run();
  // The two single tests share one commit (one message), written before the batch; each
  // commit's message comes before any of its answers.
  const std::vector<std::string> expected{"queued 2 3", "answer 2", "answer 3", "queued 4 5", "answer 4 5"};
  CHECK(*log == expected);
  for (test_id id = 2; id <= 5; ++id)
    CHECK(inspect->find_test(id)->state == test_state::pending);
  self->send_exit(probe, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "the queue sink hears each new test's scheduling keys", "[actors][persistence]") {
  auto told_log = std::make_shared<std::vector<std::vector<queued_test>>>();
  const auto& told = *told_log;
  auto sink = sys.spawn(recording_sink, told_log);
  REQUIRE(ask<std::vector<queued_test>>(persist, recover_atom::value, keys_atom::value, sink));
  auto req = make_request(false, "keys", "+441632960001");
  req.meter_type = "IEC62056-21";
  auto id = ask<test_id>(persist, insert_atom::value, req, fake_now);
  REQUIRE(id);
  REQUIRE(told.size() == 1);
  REQUIRE(told[0].size() == 1);
  CHECK(told[0][0].id == *id);
  CHECK_FALSE(told[0][0].immediate);
  CHECK(told[0][0].meter_type == "IEC62056-21");
  CHECK(told[0][0].remote_address == "+441632960001");
  // A failed group commit tells nothing (nothing of it was stored).
  {
    SQLite::Database raw(db_path, SQLite::OPEN_READWRITE);
    raw.exec("CREATE TRIGGER refuse_tests BEFORE INSERT ON tests BEGIN SELECT RAISE(ABORT, 'refused'); END");
  }
  CHECK_FALSE(ask<test_id>(persist, insert_atom::value, make_request(true), fake_now));
  CHECK(told.size() == 1);
  self->send_exit(sink, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "once the queue sink has stopped, new tests are refused and not stored",
                 "[actors][persistence]") {
  auto sink = sys.spawn(recording_sink, std::make_shared<std::vector<std::vector<queued_test>>>());
  REQUIRE(ask<std::vector<queued_test>>(persist, recover_atom::value, keys_atom::value, sink));
  auto before = ask<test_id>(persist, insert_atom::value, make_request(true), fake_now);
  REQUIRE(before);
  self->send_exit(sink, caf::exit_reason::user_shutdown); // as when the scheduler's recovery fails
  sched.run();
  auto refused = ask<test_id>(persist, insert_atom::value, make_request(true), fake_now);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == caf::sec::request_receiver_down);
  auto refused_batch = ask<batch_inserted>(persist, insert_atom::value, std::vector<test_request>{make_request(true)},
                                           fake_now);
  CHECK_FALSE(refused_batch);
  CHECK_FALSE(inspect->find_test(*before + 1)); // nothing stored after the sink stopped
}

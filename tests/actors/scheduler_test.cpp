// The SCHEDULER in isolation: queue order, the overnight window, capacity, cancellation,
// recovery and the test deadline, on CAF's deterministic test coordinator.
#include "tests/actors/actor_fixture.hpp"

#include <catch2/catch.hpp>

using namespace mts;
using namespace mts::testing;

TEST_CASE_METHOD(actor_fixture, "immediate tests run before overnight ones, overnight only in the window",
                 "[actors][scheduler]") {
  auto exec = spawn_executor();
  auto sched_hdl = sys.spawn(scheduler, make_scheduler_config(1), persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto overnight = submit(make_request(false, "night"), fake_now);
  auto first = submit(make_request(true, "a"), fake_now);
  auto second = submit(make_request(true, "b"), fake_now);
  REQUIRE(overnight);
  REQUIRE(first);
  REQUIRE(second);
  auto& ex = executor_state(exec);
  // Capacity 1: only the first immediate test runs (the overnight one was queued before it,
  // but it is 12:00 and immediate tests go first anyway).
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*first});
  CHECK(ex.received[0].state == test_state::running);
  CHECK(inspect->find_test(*first)->state == test_state::running);

  complete(exec, 0, "SUCCESS", fake_now + 10);
  sched.run();
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*first, *second});
  auto done = inspect->find_test(*first);
  CHECK(done->state == test_state::completed);
  CHECK(done->result == "SUCCESS");

  complete(exec, 1, "SUCCESS", fake_now + 20);
  sched.run();
  // Outside the window the overnight test waits.
  CHECK(ex.received.size() == 2);
  CHECK(inspect->find_test(*overnight)->state == test_state::pending);
  auto stats = ask<scheduler_stats>(sched_hdl, stats_atom::value);
  REQUIRE(stats);
  CHECK(stats->queued_overnight == 1);
  CHECK(stats->queued_immediate == 0);
  CHECK(stats->running == 0);

  // The scheduler armed a wake-up for the window; move the wall clock into it and fire it.
  REQUIRE(sched.has_pending_timeout());
  fake_now += 13 * 3600; // 01:00 the next day
  sched.trigger_timeouts();
  sched.run();
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*first, *second, *overnight});
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

// Runs on a pinned wall clock across the turn of a year: 31 December 2026, 12:00 to
// 1 January 2027, 01:00 UTC.
TEST_CASE_METHOD(actor_fixture, "a window that wraps midnight is open on both sides of it, also at a year's end",
                 "[actors][scheduler]") {
  fake_now = *parse_utc("2026-12-31T12:00:00Z");
  auto config = make_scheduler_config();
  config.overnight_window = *parse_daily_window("23:00-01:00");
  auto exec = spawn_executor();
  auto sched_hdl = sys.spawn(scheduler, config, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto& received = executor_state(exec).received;

  // Noon: closed; the scheduler sleeps towards the window.
  auto first = submit(make_request(false, "before"), fake_now);
  REQUIRE(first);
  CHECK(received.empty());
  REQUIRE(sched.has_pending_timeout());

  // 23:59:30 on 31 December: open (the part before midnight).
  fake_now = *parse_utc("2026-12-31T23:59:30Z");
  sched.trigger_timeouts();
  sched.run();
  REQUIRE(ids_of(received) == std::vector<test_id>{*first});
  complete(exec, 0, "SUCCESS", fake_now + 10);
  sched.run();

  // 00:30 on 1 January: still open (the part after midnight); a new test runs at once.
  fake_now = *parse_utc("2027-01-01T00:30:00Z");
  auto second = submit(make_request(false, "after"), fake_now);
  REQUIRE(second);
  REQUIRE(ids_of(received) == std::vector<test_id>{*first, *second});
  complete(exec, 1, "SUCCESS", fake_now + 10);
  sched.run();

  // 01:00: the end is not in the window; the test waits for 23:00.
  fake_now = *parse_utc("2027-01-01T01:00:00Z");
  auto third = submit(make_request(false, "late"), fake_now);
  REQUIRE(third);
  CHECK(received.size() == 2);
  CHECK(inspect->find_test(*third)->state == test_state::pending);
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "an overnight test requested inside the window runs at once", "[actors][scheduler]") {
  fake_now += 15 * 3600; // 03:00 the next day
  auto exec = spawn_executor();
  auto sched_hdl = sys.spawn(scheduler, make_scheduler_config(), persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto id = submit(make_request(false), fake_now);
  REQUIRE(id);
  REQUIRE(ids_of(executor_state(exec).received) == std::vector<test_id>{*id});
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "capacity is never exceeded and freed capacity is reused at once",
                 "[actors][scheduler]") {
  auto exec = spawn_executor();
  auto sched_hdl = sys.spawn(scheduler, make_scheduler_config(2), persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  std::vector<test_request> batch;
  for (int i = 0; i < 5; ++i)
    batch.push_back(make_request(true));
  auto bid = submit_batch(batch, fake_now);
  REQUIRE(bid);
  auto& ex = executor_state(exec);
  REQUIRE(ex.received.size() == 2);
  CHECK(ex.received[0].batch == *bid);
  CHECK(ex.received[0].id < ex.received[1].id);
  complete(exec, 1, "ERROR: no answer", fake_now + 5);
  sched.run();
  REQUIRE(ex.received.size() == 3);
  CHECK(ex.received[2].id > ex.received[1].id);
  auto stats = ask<scheduler_stats>(sched_hdl, stats_atom::value);
  CHECK(stats->running == 2);
  CHECK(stats->queued_immediate == 2);
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "cancellation removes pending tests only", "[actors][scheduler]") {
  auto exec = spawn_executor();
  auto sched_hdl = sys.spawn(scheduler, make_scheduler_config(1), persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto running = submit(make_request(true), fake_now);
  auto waiting = submit(make_request(true), fake_now);
  REQUIRE(running);
  REQUIRE(waiting);
  auto& ex = executor_state(exec);
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*running});

  SECTION("a queued test is removed from the queue and the database") {
    auto res = ask<test_id>(sched_hdl, cancel_atom::value, *waiting);
    REQUIRE(res);
    CHECK(*res == *waiting);
    CHECK_FALSE(inspect->test_exists(*waiting));
    complete(exec, 0, "SUCCESS", fake_now + 1);
    sched.run();
    CHECK(ex.received.size() == 1); // the cancelled test never runs
  }
  SECTION("a running test is left alone and the answer is still positive") {
    auto res = ask<test_id>(sched_hdl, cancel_atom::value, *running);
    REQUIRE(res);
    CHECK(*res == *running);
    CHECK(inspect->find_test(*running)->state == test_state::running);
  }
  SECTION("a completed test is left alone") {
    complete(exec, 0, "SUCCESS", fake_now + 1);
    sched.run();
    auto res = ask<test_id>(sched_hdl, cancel_atom::value, *running);
    REQUIRE(res);
    CHECK(inspect->find_test(*running)->result == "SUCCESS");
  }
  SECTION("an unknown test is an error") {
    auto res = ask<test_id>(sched_hdl, cancel_atom::value, test_id{9999});
    REQUIRE_FALSE(res);
    CHECK(res.error() == make_error(app_errc::unknown_test));
  }
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "batch cancellation removes the batch's queued tests", "[actors][scheduler]") {
  auto exec = spawn_executor();
  auto sched_hdl = sys.spawn(scheduler, make_scheduler_config(1), persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  std::vector<test_request> batch(3, make_request(true));
  auto bid = submit_batch(batch, fake_now);
  REQUIRE(bid);
  auto& ex = executor_state(exec);
  REQUIRE(ex.received.size() == 1); // one running, two queued
  auto count = ask<std::int64_t>(sched_hdl, cancel_atom::value, batch_atom::value, *bid, false);
  REQUIRE(count);
  CHECK(*count == 2);
  auto left = inspect->batch_tests(*bid);
  REQUIRE(left);
  REQUIRE(left->size() == 1);
  CHECK(left->front().id == ex.received[0].id);
  complete(exec, 0, "SUCCESS", fake_now + 1);
  sched.run();
  CHECK(ex.received.size() == 1); // nothing else left to run

  auto unknown = ask<std::int64_t>(sched_hdl, cancel_atom::value, batch_atom::value, batch_id{777}, true);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == make_error(app_errc::unknown_batch));
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "recovery re-queues tests that were running, keeping their first start",
                 "[actors][scheduler]") {
  // A previous process: three tests, the second one started and then the process died.
  auto a = db->insert_test(make_request(true, "a"), fake_now - 100);
  auto b = db->insert_test(make_request(true, "b"), fake_now - 90);
  auto c = db->insert_test(make_request(false, "c"), fake_now - 80);
  REQUIRE(db->mark_running(b, fake_now - 50));

  auto exec = spawn_executor();
  auto sched_hdl = sys.spawn(scheduler, make_scheduler_config(16), persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto& ex = executor_state(exec);
  // Both immediate tests run again, in id order; the overnight one waits for the window.
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{a, b});
  auto restarted = inspect->find_test(b);
  REQUIRE(restarted);
  CHECK(restarted->test_start_time == fake_now - 50); // the first attempt's start survives
  CHECK(restarted->attempts == 2);
  CHECK(ex.received[1].test_start_time == fake_now - 50);
  CHECK(inspect->find_test(c)->state == test_state::pending);

  // Completing each recovered test writes its result exactly once.
  complete(exec, 0, "SUCCESS", fake_now + 1);
  complete(exec, 1, "PARTIAL SUCCESS", fake_now + 2);
  sched.run();
  CHECK(inspect->find_test(a)->result == "SUCCESS");
  CHECK(inspect->find_test(b)->result == "PARTIAL SUCCESS");
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "a test that outlives its deadline ends with an error", "[actors][scheduler]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(1);
  cfg.test_deadline = std::chrono::seconds(60);
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto id = submit(make_request(true), fake_now);
  auto next = submit(make_request(true), fake_now);
  REQUIRE(id);
  REQUIRE(next);
  sched.advance_time(std::chrono::seconds(61));
  sched.run();
  auto rec = inspect->find_test(*id);
  CHECK(rec->state == test_state::completed);
  CHECK(rec->result == "ERROR: test deadline exceeded");
  // Its slot went to the next test.
  CHECK(ids_of(executor_state(exec).received) == std::vector<test_id>{*id, *next});
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "without an executor tests stay pending", "[actors][scheduler]") {
  auto sched_hdl = sys.spawn(scheduler, make_scheduler_config(), persist, executor_actor{});
  sched.run();
  auto id = submit(make_request(true), fake_now);
  REQUIRE(id);
  CHECK(inspect->find_test(*id)->state == test_state::pending);
  // Time passing (into the overnight window and beyond) changes nothing.
  fake_now += 14 * 3600;
  sched.trigger_timeouts();
  sched.run();
  CHECK(inspect->find_test(*id)->state == test_state::pending);
  auto stats = ask<scheduler_stats>(sched_hdl, stats_atom::value);
  CHECK(stats->queued_immediate == 1);
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "never two running tests to the same remote address", "[actors][scheduler]") {
  auto exec = spawn_executor();
  auto sched_hdl = sys.spawn(scheduler, make_scheduler_config(4), persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  const std::string shared = "127.0.0.1:5000";
  auto a = submit(make_request(true, "a", shared), fake_now);
  auto b = submit(make_request(true, "b", shared), fake_now);
  auto c = submit(make_request(true, "c"), fake_now);
  auto d = submit(make_request(true, "d", shared), fake_now);
  REQUIRE((a && b && c && d));
  auto& ex = executor_state(exec);
  // b and d wait for a's address; c (another address) is taken out of order.
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*a, *c});
  CHECK(inspect->find_test(*b)->state == test_state::pending);
  complete(exec, 1, "SUCCESS", fake_now + 1); // c: frees nothing for b
  sched.run();
  CHECK(ex.received.size() == 2);
  complete(exec, 0, "SUCCESS", fake_now + 2); // a: b runs, d still waits (same address)
  sched.run();
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*a, *c, *b});
  complete(exec, 2, "SUCCESS", fake_now + 3);
  sched.run();
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*a, *c, *b, *d});
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "max_tcp_sessions bounds running TCP tests, and modem tests are not counted",
                 "[actors][scheduler]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(10);
  cfg.max_tcp_sessions = 2;
  cfg.modems = modem_list(1); // a modem test needs a modem of the pool (issue 5)
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  std::vector<test_request> batch;
  for (int i = 0; i < 3; ++i)
    batch.push_back(make_request(true));
  batch.push_back(make_request(true, "modem", "07777000001"));
  auto bid = submit_batch(batch, fake_now);
  REQUIRE(bid);
  auto& ex = executor_state(exec);
  REQUIRE(ex.received.size() == 3); // two TCP tests and the modem test
  CHECK(ex.received[0].request.remote_address == batch[0].remote_address);
  CHECK(ex.received[1].request.remote_address == batch[1].remote_address);
  CHECK(ex.received[2].request.remote_address == "07777000001");
  complete(exec, 2, "SUCCESS", fake_now + 1); // the modem test frees no TCP session
  sched.run();
  CHECK(ex.received.size() == 3);
  complete(exec, 0, "SUCCESS", fake_now + 2); // a TCP session is freed and reused at once
  sched.run();
  REQUIRE(ex.received.size() == 4);
  CHECK(ex.received[3].request.remote_address == batch[2].remote_address);
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "tests the executor cannot run stay queued and pending", "[actors][scheduler]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(4);
  cfg.can_run = [](const test_record& rec) { return rec.request.meter_type == "IEC62056-21"; };
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto elster = submit(make_request(true, "elster"), fake_now);
  auto iec_req = make_request(true, "iec");
  iec_req.meter_type = "IEC62056-21";
  auto iec = submit(iec_req, fake_now);
  REQUIRE((elster && iec));
  auto& ex = executor_state(exec);
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*iec});
  complete(exec, 0, "SUCCESS", fake_now + 1);
  sched.run();
  CHECK(ex.received.size() == 1);
  CHECK(inspect->find_test(*elster)->state == test_state::pending);
  auto stats = ask<scheduler_stats>(sched_hdl, stats_atom::value);
  CHECK(stats->queued_immediate == 1);
  CHECK(stats->running == 0);
  // Still cancellable like any queued test.
  auto res = ask<test_id>(sched_hdl, cancel_atom::value, *elster);
  REQUIRE(res);
  CHECK_FALSE(inspect->test_exists(*elster));
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "phone-number tests wait for a free modem; never more calls than modems",
                 "[actors][scheduler][modem]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(10);
  auto board = std::make_shared<modem_board>();
  cfg.modems = modem_list(2);
  cfg.board = board;
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  std::vector<test_request> batch;
  for (int i = 0; i < 4; ++i)
    batch.push_back(make_request(true, "phone", "0777700000" + std::to_string(i)));
  batch.push_back(make_request(true, "tcp")); // not held up by the modems
  REQUIRE(submit_batch(batch, fake_now));
  auto& ex = executor_state(exec);
  REQUIRE(ex.received.size() == 3);
  CHECK(ex.received[0].request.remote_address == "07777000000");
  CHECK(ex.received[1].request.remote_address == "07777000001");
  CHECK(ex.received[2].request.remote_address == batch[4].remote_address);
  // Each running phone test holds its own modem (as published for service-status).
  CHECK(modem_states(*board) ==
        std::vector<std::string>{"modem1 busy " + std::to_string(ex.received[0].id),
                                 "modem2 busy " + std::to_string(ex.received[1].id)});
  complete(exec, 1, "SUCCESS", fake_now + 1); // frees its modem: the next phone test starts
  sched.run();
  REQUIRE(ex.received.size() == 4);
  CHECK(ex.received[3].request.remote_address == "07777000002");
  CHECK(modem_states(*board) ==
        std::vector<std::string>{"modem1 busy " + std::to_string(ex.received[0].id),
                                 "modem2 busy " + std::to_string(ex.received[3].id)});
  complete(exec, 0, "SUCCESS", fake_now + 2);
  sched.run();
  REQUIRE(ex.received.size() == 5);
  CHECK(ex.received[4].request.remote_address == "07777000003");
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "a modem out of service comes back after the cool-down; a test waiting for a modem can be cancelled",
                 "[actors][scheduler][modem]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(10);
  auto board = std::make_shared<modem_board>();
  cfg.modems = modem_list(1);
  cfg.modem_cooldown = std::chrono::seconds(120);
  cfg.board = board;
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto first = submit(make_request(true, "a", "0111"), fake_now);
  REQUIRE(first);
  auto& ex = executor_state(exec);
  REQUIRE(ex.received.size() == 1);
  // What a test actor does when its modem fails.
  self->send(sched_hdl, modem_atom::value, fault_atom::value, *first, std::string("modem does not answer AT commands"));
  sched.run();
  CHECK(modem_states(*board) == std::vector<std::string>{"modem1 out of service"});
  complete(exec, 0, "ERROR: modem does not answer AT commands", fake_now + 1);
  sched.run();
  auto waiting = submit(make_request(true, "b", "0222"), fake_now + 2);
  auto cancelled = submit(make_request(true, "c", "0333"), fake_now + 2);
  REQUIRE((waiting && cancelled));
  CHECK(ex.received.size() == 1); // no modem in service
  REQUIRE(ask<test_id>(sched_hdl, cancel_atom::value, *cancelled));
  CHECK_FALSE(inspect->test_exists(*cancelled));
  // The scheduler wakes when the modem comes back.
  REQUIRE(sched.has_pending_timeout());
  fake_now += 121;
  sched.trigger_timeouts();
  sched.run();
  REQUIRE(ex.received.size() == 2);
  CHECK(ex.received[1].id == *waiting);
  CHECK(modem_states(*board) == std::vector<std::string>{"modem1 busy " + std::to_string(*waiting)});
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "the scheduler is the test actors' modem broker: their modem, another after a fault, none for a test not running",
                 "[actors][scheduler][modem]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(10);
  auto board = std::make_shared<modem_board>();
  cfg.modems = modem_list(3);
  cfg.board = board;
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto a = submit(make_request(true, "a", "0111"), fake_now);
  auto b = submit(make_request(true, "b", "0222"), fake_now);
  REQUIRE((a && b));
  auto& ex = executor_state(exec);
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*a, *b});
  // Each run names the scheduler as the broker to ask.
  REQUIRE(ex.brokers.size() == 2);
  CHECK(ex.brokers[0].address() == sched_hdl.address());
  auto modem_of = [&](test_id id) -> std::string {
    auto grant = ask<modem_grant>(sched_hdl, modem_atom::value, get_atom::value, id);
    REQUIRE(grant);
    return grant->modem ? grant->modem->name : "none";
  };
  // The modem acquired at dispatch, asked for again: the same one.
  CHECK(modem_of(*a) == "modem1");
  CHECK(modem_of(*a) == "modem1");
  CHECK(modem_of(*b) == "modem2");
  // a's modem fails: out of service; a's next attempt gets the free one, then there is none.
  self->send(sched_hdl, modem_atom::value, fault_atom::value, *a, std::string("NO DIALTONE"));
  sched.run();
  CHECK(modem_of(*a) == "modem3");
  self->send(sched_hdl, modem_atom::value, fault_atom::value, *a, std::string("NO DIALTONE"));
  sched.run();
  CHECK(modem_of(*a) == "none");
  CHECK(modem_states(*board, fake_now) ==
        std::vector<std::string>{"modem1 out of service", "modem2 busy " + std::to_string(*b), "modem3 out of service"});
  // A request for a test that is not running (finished, or a stray message) gets nothing, so
  // it can never hold a modem no outcome will release.
  complete(exec, 1, "SUCCESS", fake_now + 1);
  sched.run();
  CHECK(modem_states(*board, fake_now) ==
        std::vector<std::string>{"modem1 out of service", "modem2 free", "modem3 out of service"});
  CHECK(modem_of(*b) == "none");
  CHECK(modem_of(9999) == "none");
  CHECK(modem_states(*board, fake_now)[1] == "modem2 free");
  // A fault reported for a test that holds no modem changes nothing.
  self->send(sched_hdl, modem_atom::value, fault_atom::value, *b, std::string("late"));
  sched.run();
  CHECK(modem_states(*board, fake_now)[1] == "modem2 free");
  // The board shows a cool-down that has passed as over before the pool looks again.
  CHECK(modem_states(*board, fake_now + 300)[0] == "modem1 free");
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "a reload gives the scheduler's pool new modems: a waiting phone test starts on one",
                 "[actors][scheduler][modem][reload]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(10);
  auto board = std::make_shared<modem_board>();
  cfg.modems = modem_list(1);
  cfg.board = board;
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto a = submit(make_request(true, "a", "0111"), fake_now);
  auto b = submit(make_request(true, "b", "0222"), fake_now);
  REQUIRE((a && b));
  auto& ex = executor_state(exec);
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*a});
  auto next = std::make_shared<scheduler_config>(make_scheduler_config(10));
  next->modems = modem_list(2);
  self->send(sched_hdl, reload_atom::value, std::shared_ptr<const scheduler_config>(next));
  sched.run();
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*a, *b});
  CHECK(modem_states(*board, fake_now) ==
        std::vector<std::string>{"modem1 busy " + std::to_string(*a), "modem2 busy " + std::to_string(*b)});
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(actor_fixture, "a reload changes capacity, window and can_run from then on; the clock stays",
                 "[actors][scheduler][reload]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(1);
  cfg.can_run = [](const test_record& rec) { return rec.request.meter_type != "NEW-TYPE"; };
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto a = submit(make_request(true, "a"), fake_now);
  auto b = submit(make_request(true, "b"), fake_now);
  auto newer = make_request(true, "c");
  newer.meter_type = "NEW-TYPE";
  auto c = submit(newer, fake_now);
  auto night = submit(make_request(false, "night"), fake_now);
  REQUIRE((a && b && c && night));
  auto& ex = executor_state(exec);
  REQUIRE(ids_of(ex.received) == std::vector<test_id>{*a});

  // Capacity 3, every type runnable, and a window that holds 12:00: all queued tests start at
  // once, without waiting for a test to end or for a tick.
  auto next = make_scheduler_config(3);
  next.overnight_window = *parse_daily_window("11:00-13:00");
  next.clock = [] { return unix_seconds{0}; }; // ignored: the scheduler keeps its clock
  self->send(sched_hdl, reload_atom::value, std::shared_ptr<const scheduler_config>(
                                               std::make_shared<scheduler_config>(std::move(next))));
  sched.run();
  CHECK(ids_of(ex.received) == std::vector<test_id>{*a, *b, *c});
  CHECK(inspect->find_test(*night)->state == test_state::pending); // capacity 3 is full
  complete(exec, 0, "SUCCESS", fake_now + 10);
  sched.run();
  CHECK(ids_of(ex.received) == std::vector<test_id>{*a, *b, *c, *night});
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

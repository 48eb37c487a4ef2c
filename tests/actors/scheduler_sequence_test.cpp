// The SCHEDULER's decisions on one recorded sequence of events: submits of both kinds, one
// address used again and again, the TCP cap, a modem, a test the executor cannot run, the
// overnight window opening and closing (the injected clock), cancels of queued and running
// tests, a batch and its cancel, and finishes. The expected order of dispatches was worked
// out by hand from the rules in actors/scheduler.hpp, step by step (the comments say why),
// and must hold for any implementation of the scheduler.
#include "tests/actors/actor_fixture.hpp"

#include <catch2/catch.hpp>

using namespace mts;
using namespace mts::testing;

TEST_CASE_METHOD(actor_fixture, "the scheduler's decisions on a recorded sequence of events",
                 "[actors][scheduler][sequence]") {
  auto exec = spawn_executor();
  auto cfg = make_scheduler_config(3); // three tests at once
  cfg.max_tcp_sessions = 2;            // of which two over TCP
  cfg.modems = modem_list(1);          // and one modem
  cfg.can_run = [](const test_record& rec) { return rec.request.meter_type != "NODRIVER"; };
  auto sched_hdl = sys.spawn(scheduler, cfg, persist, caf::actor_cast<executor_actor>(exec));
  sched.run();
  auto& ex = executor_state(exec);

  const std::string A = "10.0.0.1:1001", B = "10.0.0.2:1001", C = "10.0.0.3:1001", D = "10.0.0.4:1001",
                    E = "10.0.0.5:1001", F = "10.0.0.6:1001", G = "10.0.0.7:1001", H = "10.0.0.8:1001";
  std::map<test_id, test_request> submitted;
  auto submit = [&](bool immediate, const std::string& address, const std::string& type = "ELSTERA1700") {
    auto req = make_request(immediate, "ref-" + std::to_string(submitted.size()), address);
    req.meter_type = type;
    req.password = "pw" + std::to_string(submitted.size());
    req.serial_number = "SN" + std::to_string(submitted.size());
    auto id = this->submit(req, fake_now);
    REQUIRE(id);
    submitted.emplace(*id, req);
    return *id;
  };
  auto finish = [&](test_id id) {
    auto got = ids_of(ex.received);
    auto at = std::find(got.begin(), got.end(), id);
    REQUIRE(at != got.end());
    complete(exec, static_cast<std::size_t>(at - got.begin()), "SUCCESS", fake_now);
    sched.run();
  };
  auto stats = [&] {
    auto s = ask<scheduler_stats>(sched_hdl, stats_atom::value);
    REQUIRE(s);
    return std::vector<std::int64_t>{s->queued_immediate, s->queued_overnight, s->running};
  };
  auto tick = [&] {
    self->send(sched_hdl, tick_atom::value);
    sched.run();
  };
  std::vector<test_id> expected;

  // 12:00, the window (00:00-06:00) is closed.
  auto O1 = submit(false, A);                       // overnight: waits for the window
  CHECK(ids_of(ex.received) == expected);
  auto I1 = submit(true, A);                        // runs: A is free
  expected.push_back(I1);
  CHECK(ids_of(ex.received) == expected);
  auto I2 = submit(true, A);                        // A is busy
  auto I3 = submit(true, B);                        // runs: second TCP session
  expected.push_back(I3);
  auto I4 = submit(true, C);                        // TCP cap (2) reached
  auto P1 = submit(true, "0100");                   // runs on the modem: third test
  expected.push_back(P1);
  auto P2 = submit(true, "0200");                   // the modem is busy, and three are running
  auto X1 = submit(true, D, "NODRIVER");            // the executor cannot run it: stays queued
  CHECK(ids_of(ex.received) == expected);
  CHECK(stats() == std::vector<std::int64_t>{4, 1, 3}); // I2 I4 P2 X1 | O1 | I1 I3 P1

  finish(I3);                                       // a TCP session frees: I4 (I2 waits for A)
  expected.push_back(I4);
  CHECK(ids_of(ex.received) == expected);
  REQUIRE(ask<test_id>(sched_hdl, cancel_atom::value, I2)); // queued: removed
  CHECK_FALSE(inspect->test_exists(I2));
  finish(I1);                                       // A frees, but I2 is gone; P2 still needs the modem
  CHECK(ids_of(ex.received) == expected);
  auto I5 = submit(true, A);                        // A free, one TCP session free: runs
  expected.push_back(I5);
  CHECK(ids_of(ex.received) == expected);
  finish(P1);                                       // the modem frees: P2
  expected.push_back(P2);
  CHECK(ids_of(ex.received) == expected);

  fake_now += 13 * 3600;                            // 01:00 the next day: the window is open
  tick();                                           // three running (I4 I5 P2): nothing starts
  CHECK(ids_of(ex.received) == expected);
  auto O2 = submit(false, E);                       // in the window, but three are running
  auto I6 = submit(true, A);                        // A is busy (I5)
  CHECK(ids_of(ex.received) == expected);
  finish(I4);                                       // no immediate test can start (I6: A busy);
  expected.push_back(O2);                           // overnight in order: O1 (A busy), then O2
  CHECK(ids_of(ex.received) == expected);
  finish(I5);                                       // A frees: I6 (immediate) before O1 (overnight)
  expected.push_back(I6);
  CHECK(ids_of(ex.received) == expected);
  CHECK(stats() == std::vector<std::int64_t>{1, 1, 3}); // X1 | O1 | P2 O2 I6

  fake_now += 6 * 3600;                             // 07:00: the window is closed
  auto O3 = submit(false, F);
  finish(I6);                                       // A frees, but O1 is overnight
  CHECK(ids_of(ex.received) == expected);
  auto left = ask<test_id>(sched_hdl, cancel_atom::value, O2); // running: left alone
  REQUIRE(left);
  CHECK(*left == O2);
  CHECK(inspect->find_test(O2)->state == test_state::running);

  std::vector<test_request> batch{make_request(true, "b0", G), make_request(true, "b1", H),
                                  make_request(false, "b2", A)};
  auto bid = submit_batch(batch, fake_now);
  REQUIRE(bid);
  auto batch_ids = ids_of(*inspect->batch_tests(*bid));
  REQUIRE(batch_ids.size() == 3);
  expected.push_back(batch_ids[0]);                 // two running (P2 O2): the first runs, then full
  CHECK(ids_of(ex.received) == expected);
  CHECK(stats() == std::vector<std::int64_t>{2, 3, 3}); // b1 X1 | O1 O3 b2 | P2 O2 b0
  auto removed = ask<std::int64_t>(sched_hdl, cancel_atom::value, batch_atom::value, *bid, false);
  REQUIRE(removed);
  CHECK(*removed == 2);                             // b1 and b2; b0 runs on
  finish(P2);
  finish(O2);
  finish(batch_ids[0]);
  CHECK(ids_of(ex.received) == expected);           // window closed: O1 and O3 wait
  CHECK(stats() == std::vector<std::int64_t>{1, 2, 0});

  fake_now += 18 * 3600;                            // 01:00 the day after
  tick();
  expected.push_back(O1);                           // overnight, in id order; two TCP sessions
  expected.push_back(O3);
  CHECK(ids_of(ex.received) == expected);
  CHECK(stats() == std::vector<std::int64_t>{1, 0, 2});
  CHECK(inspect->find_test(X1)->state == test_state::pending);

  // Every dispatched test carried its whole stored request, and ran once.
  for (const auto& rec : ex.received) {
    CHECK(rec.state == test_state::running);
    CHECK(rec.attempts == 1);
    CHECK(rec.test_start_time.has_value());
    auto it = submitted.find(rec.id);
    if (it == submitted.end())
      continue; // a batch element
    CHECK(rec.request.remote_address == it->second.remote_address);
    CHECK(rec.request.request_reference == it->second.request_reference);
    CHECK(rec.request.password == it->second.password);
    CHECK(rec.request.serial_number == it->second.serial_number);
    CHECK(rec.request.immediate == it->second.immediate);
  }
  self->send_exit(sched_hdl, caf::exit_reason::user_shutdown);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

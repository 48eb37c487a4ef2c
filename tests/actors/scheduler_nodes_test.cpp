// The SCHEDULER with collector nodes (issue 16), on CAF's deterministic test coordinator: mock
// executors stand in for the collectors' executors and join as the registrar would tell the
// scheduler. Dispatch by capacity, reach and modems, the narrow broker a collector gets, and a
// node lost mid-test (its tests run again elsewhere; a late answer from it is discarded). The
// timers (the loss grace) fire when the test triggers them, never by the machine's clock.
#include "tests/actors/actor_fixture.hpp"

#include <catch2/catch.hpp>

using namespace mts;
using namespace mts::testing;

namespace {

struct nodes_fixture : actor_fixture {
  std::shared_ptr<collector_board> board = std::make_shared<collector_board>();
  std::shared_ptr<modem_board> modems = std::make_shared<modem_board>();

  // A head that leaves every test to its collectors (cluster.head_runs_tests = false).
  scheduler_actor spawn_head(std::int64_t max_concurrent = 16) {
    auto c = make_scheduler_config(max_concurrent);
    c.head_runs_tests = false;
    c.collectors = board;
    c.board = modems;
    c.node_loss_grace = std::chrono::seconds(6);
    c.retry_delay = std::chrono::seconds(1);
    c.max_attempts = 2;
    auto hdl = sys.spawn(scheduler, c, persist, caf::actor_cast<executor_actor>(spawn_executor()));
    sched.run();
    return hdl;
  }

  // A collector joins with its offer; answers its (mock) executor.
  mock_executor_actor join(const scheduler_actor& head, const std::string& name, std::int64_t tcp_sessions,
                           const std::string& networks = "", const std::string& prefixes = "",
                           std::vector<modem_settings> node_modems = {}) {
    auto exec = spawn_executor();
    std::string error;
    auto reach = parse_reach(networks, prefixes, &error);
    REQUIRE(reach);
    self->send(head, join_atom::value, node_offer{name, tcp_sessions, std::move(node_modems), std::move(*reach)},
               caf::actor_cast<executor_actor>(exec));
    sched.run();
    return exec;
  }

  // An immediate test to `address`, stored and queued (the scheduler hears of it from the writer).
  test_id submit_to(const std::string& address) {
    auto id = submit(make_request(true, "", address), fake_now);
    REQUIRE(id);
    return *id;
  }

  collector_status usage(const std::string& name) {
    for (const auto& c : board->read())
      if (c.name == name)
        return c;
    FAIL("no collector " << name);
    return {};
  }

  // The registrar's part of the board: these collectors joined.
  void publish_joined(const std::vector<std::string>& names) {
    std::vector<collector_status> list;
    for (const auto& n : names) {
      collector_status c;
      c.name = n;
      c.connected = true;
      list.push_back(c);
    }
    board->publish(list);
  }

  void stop(std::initializer_list<caf::actor> actors) {
    for (const auto& a : actors)
      self->send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }
};

modem_settings modem(const std::string& name) {
  modem_settings m;
  m.name = name;
  m.gateway = "127.0.0.1:4001";
  return m;
}

} // namespace

TEST_CASE_METHOD(nodes_fixture, "tests go to the collector with the most free sessions, and wait when all are full",
                 "[actors][scheduler][nodes]") {
  auto head = spawn_head();
  publish_joined({"a", "b"});
  auto a = join(head, "a", 1);
  auto b = join(head, "b", 2);
  auto t1 = submit_to("10.0.0.1:1");
  auto t2 = submit_to("10.0.0.2:1");
  auto t3 = submit_to("10.0.0.3:1");
  auto t4 = submit_to("10.0.0.4:1");
  // t1: b has 2 free, a 1. t2: a and b 1 each, the first joined wins. t3: b. t4: none free.
  CHECK(ids_of(executor_state(a).received) == std::vector<test_id>{t2});
  CHECK(ids_of(executor_state(b).received) == std::vector<test_id>{t1, t3});
  CHECK(inspect->find_test(t4)->state == test_state::pending);
  CHECK(usage("a").tests_running == 1);
  CHECK(usage("a").tcp_sessions_in_use == 1);
  CHECK(usage("b").tcp_sessions_in_use == 2);
  // A session frees on a: t4 goes there.
  complete(a, 0, "SUCCESS", fake_now + 5);
  sched.run();
  CHECK(ids_of(executor_state(a).received) == std::vector<test_id>{t2, t4});
  CHECK(inspect->find_test(t2)->result == "SUCCESS");
  // The head itself runs nothing (head_runs_tests = false).
  auto stats = ask<scheduler_stats>(head, stats_atom::value);
  REQUIRE(stats);
  CHECK(stats->running == 3);
  stop({caf::actor_cast<caf::actor>(head), caf::actor_cast<caf::actor>(a), caf::actor_cast<caf::actor>(b)});
}

TEST_CASE_METHOD(nodes_fixture, "a test goes only to a collector that reaches its address",
                 "[actors][scheduler][nodes]") {
  auto head = spawn_head();
  auto site1 = join(head, "site1", 10, "10.1.0.0/16");
  auto site2 = join(head, "site2", 10, "10.2.0.0/16");
  auto to_site2 = submit_to("10.2.0.5:4059");
  auto by_name = submit_to("meter.example.net:4059"); // no node reaches a host name by network
  auto to_site1 = submit_to("10.1.0.5:4059");
  CHECK(ids_of(executor_state(site1).received) == std::vector<test_id>{to_site1});
  CHECK(ids_of(executor_state(site2).received) == std::vector<test_id>{to_site2});
  // The unreachable one waits, queued and PENDING, and did not hold back the test after it.
  CHECK(inspect->find_test(by_name)->state == test_state::pending);
  auto stats = ask<scheduler_stats>(head, stats_atom::value);
  REQUIRE(stats);
  CHECK(stats->queued_immediate == 1);
  // A collector that reaches everything joins: the waiting test goes there.
  auto anywhere = join(head, "anywhere", 1);
  CHECK(ids_of(executor_state(anywhere).received) == std::vector<test_id>{by_name});
  // Cancelling a running test is a no-op; a waiting one could have been cancelled (queue tests).
  stop({caf::actor_cast<caf::actor>(head), caf::actor_cast<caf::actor>(site1), caf::actor_cast<caf::actor>(site2),
        caf::actor_cast<caf::actor>(anywhere)});
}

TEST_CASE_METHOD(nodes_fixture, "numbers go to a collector with a free modem that dials them, through a narrow broker",
                 "[actors][scheduler][nodes][modem]") {
  auto head = spawn_head();
  auto uk = join(head, "uk", 0, "", "+44", {modem("uk1")});
  auto fr = join(head, "fr", 0, "", "+33", {modem("fr1")});
  auto first_uk = submit_to("+441632960001");
  auto second_uk = submit_to("+441632960002");
  auto to_fr = submit_to("+33123456789");
  auto& uk_runs = executor_state(uk);
  CHECK(ids_of(uk_runs.received) == std::vector<test_id>{first_uk});
  CHECK(ids_of(executor_state(fr).received) == std::vector<test_id>{to_fr});
  CHECK(inspect->find_test(second_uk)->state == test_state::pending); // uk's one modem is busy
  CHECK(modem_states(*modems, fake_now) ==
        std::vector<std::string>{"uk1 busy " + std::to_string(first_uk), "fr1 busy " + std::to_string(to_fr)});
  auto shown = modems->read(fake_now);
  CHECK(shown[0].collector == "uk");

  // The broker the collector got is not the scheduler: it answers the modem messages only.
  auto broker = uk_runs.brokers.at(0);
  CHECK(broker.address() != head.address());
  auto grant = ask<modem_grant>(broker, modem_atom::value, get_atom::value, first_uk);
  REQUIRE(grant);
  REQUIRE(grant->modem);
  CHECK(grant->modem->name == "uk1");
  // Asked for a test that runs on another node: nothing.
  auto other = ask<modem_grant>(broker, modem_atom::value, get_atom::value, to_fr);
  REQUIRE(other);
  CHECK_FALSE(other->modem);
  auto as_scheduler = ask<test_id>(caf::actor_cast<caf::actor>(broker), cancel_atom::value, first_uk);
  CHECK_FALSE(as_scheduler); // the broker passes on modem requests only

  // The first call ends: the second uk number takes the modem.
  complete(uk, 0, "SUCCESS", fake_now + 60);
  sched.run();
  CHECK(ids_of(uk_runs.received) == std::vector<test_id>{first_uk, second_uk});
  stop({caf::actor_cast<caf::actor>(head), caf::actor_cast<caf::actor>(uk), caf::actor_cast<caf::actor>(fr)});
}

TEST_CASE_METHOD(nodes_fixture, "a collector lost mid-test: the test runs again elsewhere after the grace, once",
                 "[actors][scheduler][nodes]") {
  auto head = spawn_head();
  publish_joined({"a", "b"});
  auto a = join(head, "a", 1);
  auto b = join(head, "b", 1);
  auto test = submit_to("10.0.0.1:1");
  REQUIRE(ids_of(executor_state(a).received) == std::vector<test_id>{test});
  // b is busy with another test, so that a is the only place for the first one.
  auto busy = submit_to("10.0.0.2:1");
  REQUIRE(ids_of(executor_state(b).received) == std::vector<test_id>{busy});

  // The head loses a (as CAF reports a dead link) while a's executor, on the far side, lives on
  // and still answers later.
  caf::anon_send(caf::actor_cast<caf::actor>(head),
                 caf::down_msg{a.address(), caf::make_error(caf::exit_reason::remote_link_unreachable)});
  sched.run();
  CHECK(usage("a").tests_running == 0);
  // During the grace the test keeps its address: a second test to it does not start on b.
  auto same_meter = submit_to("10.0.0.1:1");
  CHECK(inspect->find_test(test)->state == test_state::running);
  complete(b, 0, "SUCCESS", fake_now + 1);
  sched.run();
  CHECK(ids_of(executor_state(b).received) == std::vector<test_id>{busy});
  // The grace is over: the test runs on b, its lost run counted as one attempt.
  REQUIRE(sched.has_pending_timeout());
  sched.trigger_timeouts();
  sched.run();
  REQUIRE(ids_of(executor_state(b).received) == std::vector<test_id>{busy, test});
  CHECK(executor_state(b).attempts_used.at(1) == 1);
  // a's late answer is discarded; b's is the test's one result.
  complete(a, 0, "SUCCESS (late, from the lost node)", fake_now + 20);
  sched.run();
  CHECK(inspect->find_test(test)->state == test_state::running);
  complete(b, 1, "SUCCESS", fake_now + 30);
  sched.run();
  auto done = inspect->find_test(test);
  CHECK(done->state == test_state::completed);
  CHECK(done->result == "SUCCESS");
  // Then the test queued for the same meter runs.
  CHECK(ids_of(executor_state(b).received) == std::vector<test_id>{busy, test, same_meter});
  stop({caf::actor_cast<caf::actor>(head), caf::actor_cast<caf::actor>(a), caf::actor_cast<caf::actor>(b)});
}

TEST_CASE_METHOD(nodes_fixture, "a test whose collector is lost on its last attempt ends as a transient failure",
                 "[actors][scheduler][nodes]") {
  auto head = spawn_head(); // max_attempts 2
  auto a = join(head, "a", 1);
  auto test = submit_to("10.0.0.1:1");
  REQUIRE(ids_of(executor_state(a).received) == std::vector<test_id>{test});
  // a dies (kill -9 on its machine looks the same to the head: its executor goes down).
  self->send_exit(a, caf::exit_reason::kill);
  sched.run();
  auto b = join(head, "b", 1);
  CHECK(executor_state(b).received.empty()); // not before the grace
  sched.trigger_timeouts();
  sched.run();
  REQUIRE(ids_of(executor_state(b).received) == std::vector<test_id>{test});
  CHECK(executor_state(b).attempts_used.at(0) == 1);
  // b is lost too: that was the second of two attempts.
  self->send_exit(b, caf::exit_reason::kill);
  sched.run();
  sched.trigger_timeouts();
  sched.run();
  auto done = inspect->find_test(test);
  REQUIRE(done);
  CHECK(done->state == test_state::completed);
  CHECK(done->result == "ERROR: its collector was lost during the test");
  CHECK(done->connection_attempts == 2);
  stop({caf::actor_cast<caf::actor>(head)});
}

TEST_CASE_METHOD(nodes_fixture, "a collector joining again over the link it had: its tests run again after the grace",
                 "[actors][scheduler][nodes]") {
  // It took the head for lost (its pings went unanswered: the head was frozen, say) and ended
  // its tests, which will never answer; the head still had its link.
  auto head = spawn_head();
  auto a = join(head, "a", 1);
  auto test = submit_to("10.0.0.1:1");
  REQUIRE(ids_of(executor_state(a).received) == std::vector<test_id>{test});
  std::string error;
  self->send(head, join_atom::value, node_offer{"a", 1, {}, *parse_reach("", "", &error)},
             caf::actor_cast<executor_actor>(a));
  sched.run();
  CHECK(executor_state(a).received.size() == 1); // not before the grace
  sched.trigger_timeouts();
  sched.run();
  REQUIRE(ids_of(executor_state(a).received) == std::vector<test_id>{test, test});
  CHECK(executor_state(a).attempts_used.at(1) == 1);
  complete(a, 1, "SUCCESS", fake_now + 30);
  sched.run();
  CHECK(inspect->find_test(test)->result == "SUCCESS");
  stop({caf::actor_cast<caf::actor>(head), caf::actor_cast<caf::actor>(a)});
}

#pragma once
// Deterministic actor tests: CAF's test coordinator runs every actor on the test thread, one
// message at a time, with a fake clock for timers; a fake wall clock drives the overnight
// window. The store is a real SQLite file in a temporary directory.
#include "actors/interfaces.hpp"
#include "actors/persistence.hpp"
#include "actors/scheduler.hpp"
#include "persistence/store.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <filesystem>
#include <random>

namespace mts::testing {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("mts-actor-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// The ids of records, in order (what an executor was given, say).
inline std::vector<test_id> ids_of(const std::vector<test_record>& records) {
  std::vector<test_id> out;
  for (const auto& r : records)
    out.push_back(r.id);
  return out;
}

// The modems as a board shows them: "name state" (and the test a busy one carries).
inline std::vector<std::string> modem_states(const modem_board& board, unix_seconds now = 0) {
  std::vector<std::string> out;
  for (const auto& m : board.read(now))
    out.push_back(m.name + " " + m.state + (m.test ? " " + std::to_string(*m.test) : ""));
  return out;
}

struct testing_config : caf::actor_system_config {
  testing_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.inline-output", true);
  }
};

// An EXECUTOR that records what it is asked to run and answers only when the test says so.
struct mock_executor_state {
  static inline const char* name = "mock_executor";
  std::vector<test_record> received;
  std::vector<modem_broker_actor> brokers; // each run's broker
  std::vector<std::int64_t> attempts_used; // each run's connection attempts already used
  std::vector<caf::typed_response_promise<test_outcome>> open;
  int reloads = 0;
  int closes = 0;
};

// A MODEM BROKER over a pool the test can look into, answering as the scheduler does for a
// running test (the scheduler's own answers are tested in scheduler_test.cpp).
struct pool_broker_state {
  static inline const char* name = "pool_broker";
  std::shared_ptr<modem_pool> pool;
  std::vector<std::string> faults; // "test id: reason", in order
};

inline modem_broker_actor::behavior_type pool_broker(modem_broker_actor::stateful_pointer<pool_broker_state> self,
                                                     std::shared_ptr<modem_pool> pool) {
  self->state.pool = std::move(pool);
  return {
    [self](modem_atom, get_atom, test_id id) -> modem_grant { return {self->state.pool->acquire(id)}; },
    [self](modem_atom, fault_atom, test_id id, const std::string& reason) {
      self->state.faults.push_back(std::to_string(id) + ": " + reason);
      self->state.pool->fault(id, reason);
    },
  };
}

// The test completes a run by telling the mock which one (promises are delivered from inside
// the actor that made them).
using mock_executor_actor = executor_actor::extend<caf::reacts_to<finish_atom, std::size_t, test_outcome>>;

inline caf::result<test_outcome> mock_run(mock_executor_actor::stateful_pointer<mock_executor_state> self,
                                          test_record rec, modem_broker_actor broker, std::int64_t attempts_used) {
  self->state.received.push_back(std::move(rec));
  self->state.brokers.push_back(std::move(broker));
  self->state.attempts_used.push_back(attempts_used);
  auto rp = self->make_response_promise<test_outcome>();
  self->state.open.push_back(rp);
  return rp;
}

inline mock_executor_actor::behavior_type
mock_executor(mock_executor_actor::stateful_pointer<mock_executor_state> self) {
  return {
    [self](run_atom, test_record& rec, modem_broker_actor& broker) -> caf::result<test_outcome> {
      return mock_run(self, std::move(rec), std::move(broker), 0);
    },
    [self](run_atom, test_record& rec, modem_broker_actor& broker,
           std::int64_t attempts_used) -> caf::result<test_outcome> {
      return mock_run(self, std::move(rec), std::move(broker), attempts_used);
    },
    [self](finish_atom, std::size_t index, test_outcome& outcome) {
      self->state.open.at(index).deliver(std::move(outcome));
    },
    [self](reload_atom, const std::shared_ptr<const test_runner_config>&) { self->state.reloads += 1; },
    [self](close_atom) { self->state.closes += 1; },
  };
}

struct actor_fixture {
  temp_dir dir;
  std::string db_path = (dir.path / "mts.db").string();
  std::shared_ptr<store> db = std::make_shared<store>(db_path, store_mode::read_write, 1000);
  // A second connection to look at the database behind the actors' back.
  std::unique_ptr<store> inspect;
  testing_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys, true};
  caf::scheduler::test_coordinator& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  unix_seconds fake_now = 1700000000 - 1700000000 % 86400 + 12 * 3600; // some day, 12:00 UTC
  persistence_actor persist;
  std::shared_ptr<writer_health> writer = std::make_shared<writer_health>();

  actor_fixture() {
    persist = sys.spawn(persistence, db, writer);
    sched.run();
    inspect = std::make_unique<store>(db_path, store_mode::read_only, 1000);
  }

  ~actor_fixture() {
    self->send_exit(persist, caf::exit_reason::user_shutdown);
    sched.run();
  }

  scheduler_config make_scheduler_config(std::int64_t max_concurrent = 16) {
    scheduler_config c;
    c.overnight_window = *parse_daily_window("00:00-06:00");
    c.max_concurrent_tests = max_concurrent;
    c.test_deadline = std::chrono::seconds(600);
    c.clock = [this] { return fake_now; };
    return c;
  }

  // `count` modems (gateways that are never opened here): modem1, modem2, ...
  static std::vector<modem_settings> modem_list(std::size_t count) {
    std::vector<modem_settings> modems;
    for (std::size_t i = 0; i < count; ++i) {
      modem_settings m;
      m.name = "modem" + std::to_string(i + 1);
      m.gateway = "127.0.0.1:" + std::to_string(4001 + i);
      modems.push_back(m);
    }
    return modems;
  }

  // A pool of `count` modems on the fake clock.
  std::shared_ptr<modem_pool> make_pool(std::size_t count, std::chrono::seconds cooldown = std::chrono::seconds(300)) {
    return std::make_shared<modem_pool>(modem_list(count), cooldown, [this] { return fake_now; });
  }

  mock_executor_actor spawn_executor() { return sys.spawn(mock_executor); }

  mock_executor_state& executor_state(const mock_executor_actor& hdl) {
    auto ptr = caf::actor_cast<caf::abstract_actor*>(hdl);
    return dynamic_cast<mock_executor_actor::stateful_base<mock_executor_state>&>(*ptr).state;
  }

  // Lets the mock executor answer its index-th run with the given result.
  void complete(const mock_executor_actor& exec, std::size_t index, const std::string& result, unix_seconds end) {
    test_outcome outcome;
    outcome.id = executor_state(exec).received.at(index).id;
    outcome.result = result;
    outcome.test_end_time = end;
    self->send(exec, finish_atom::value, index, std::move(outcome));
  }

  // Sends a request, runs the system until idle and returns the reply (or the error).
  template <class T, class Handle, class... Ts>
  caf::expected<T> ask(const Handle& dest, Ts&&... xs) {
    auto h = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    sched.run();
    caf::expected<T> out{caf::error{}};
    h.receive([&](T& value) { out = std::move(value); }, [&](caf::error& err) { out = std::move(err); });
    return out;
  }

  // test-request and batch-request as the HTTP layer sends them: to the persistence actor,
  // which tells the scheduler (once one has recovered the queue) after the commit.
  caf::expected<test_id> submit(const test_request& req, unix_seconds received) {
    return ask<test_id>(persist, insert_atom::value, req, received);
  }
  caf::expected<batch_id> submit_batch(const std::vector<test_request>& reqs, unix_seconds received) {
    auto inserted = ask<batch_inserted>(persist, insert_atom::value, reqs, received);
    if (!inserted)
      return inserted.error();
    return inserted->batch;
  }

  // Each request gets its own remote address (the scheduler never runs two tests with the
  // same address at once); pass one to share it.
  int next_port = 4059;
  test_request make_request(bool immediate, std::string reference = "", std::string address = "") {
    test_request r;
    r.meter_type = "ELSTERA1700";
    r.remote_address = address.empty() ? "127.0.0.1:" + std::to_string(next_port++) : address;
    r.immediate = immediate;
    if (!reference.empty())
      r.request_reference = reference;
    return r;
  }
};

} // namespace mts::testing

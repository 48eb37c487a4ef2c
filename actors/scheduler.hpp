#pragma once
// The SCHEDULER actor: owns the queue of pending tests, decides what runs when, and hands
// ready tests to the EXECUTOR.
//
// - Immediate tests run before overnight ones; each kind in the order received (test id).
// - Overnight tests are dispatched only while the overnight window is open.
// - At most max_concurrent_tests run at once; a finished test frees its slot at once.
// - At start-up the queue is recovered from the database: tests that were running when the
//   process died go back to the queue, keeping their first start time.
// - Without an executor (the server before the test engine exists) tests stay queued.
#include "actors/interfaces.hpp"
#include "config/settings.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <set>

namespace mts {

struct scheduler_config {
  daily_window overnight_window;
  std::int64_t max_concurrent_tests = 16;
  std::chrono::seconds test_deadline{1800};
  // The wall clock (UTC); injected so actor tests can move through the overnight window.
  std::function<unix_seconds()> clock;
};

struct scheduler_state {
  static inline const char* name = "scheduler";
  scheduler_config config;
  persistence_actor persistence;
  executor_actor executor; // may be invalid
  std::map<test_id, test_record> immediate; // ordered by id = received order
  std::map<test_id, test_record> overnight;
  std::set<test_id> running; // dispatched: being started, running, or being recorded
  bool tick_armed = false;
};

scheduler_actor::behavior_type scheduler(scheduler_actor::stateful_pointer<scheduler_state> self,
                                         scheduler_config config, persistence_actor persistence,
                                         executor_actor executor);

} // namespace mts

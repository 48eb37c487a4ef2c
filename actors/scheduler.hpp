#pragma once
// The SCHEDULER actor: owns the queue of pending tests, decides what runs when, and hands
// ready tests to the EXECUTOR.
//
// - Immediate tests run before overnight ones; each kind in the order received (test id).
// - Overnight tests are dispatched only while the overnight window is open.
// - At most max_concurrent_tests run at once, of which at most max_tcp_sessions have a TCP
//   (host:port) address; a finished test frees its slot at once.
// - Never two running tests with the same remote address (compared as the exact string the
//   request gave): a queued test whose address is busy is skipped and the next one in order is
//   taken; it runs as soon as the address is free. Order is otherwise kept.
// - A telephone-number test needs a modem: it starts only when the modem pool
//   (actors/modem_pool.hpp, the scheduler's own state) has a free modem in service, which it
//   acquires at dispatch and releases when its outcome is recorded. So there are never more
//   calls than modems, and the other tests wait in order. The test actor asks for its modem
//   by message (modem_broker_actor) for each attempt and reports a modem's fault the same way;
//   a request from a test that is not running gets nothing, so a late or stray one never holds
//   a modem. While modems are out of service the scheduler ticks when the next one comes back.
// - can_run(record) false (the executor has no driver for the meter type yet, or the address
//   needs a modem and none is configured): the test stays queued, PENDING, and is skipped;
//   it runs once a server that can run it picks it up (after an upgrade and restart).
//   can_run is asked once, when the test is queued, and sees only the record's id and the
//   request's immediate flag, meter type and remote address (all it may depend on).
// - At start-up the queue is recovered from the database: tests that were running when the
//   process died go back to the queue, keeping their first start time. Only ids and
//   scheduling keys are loaded.
// - Without an executor (the server before the test engine exists) tests stay queued.
//
// The queue (actors/scheduler_queue.hpp) holds only ids and scheduling keys, and every event
// (submit, cancel, start, end, the window opening, a modem freed) costs O(log n) in its
// length; the full record is read from the database when a test starts (the persistence
// actor's (start, get) reply carries it).
#include "actors/interfaces.hpp"
#include "actors/modem_pool.hpp"
#include "actors/scheduler_queue.hpp"
#include "config/settings.hpp"

#include <chrono>
#include <functional>
#include <memory>

namespace mts {

struct scheduler_config {
  daily_window overnight_window;
  std::int64_t max_concurrent_tests = 16;
  std::int64_t max_tcp_sessions = 1000; // running tests with a host:port address
  // Whether the executor can run a test now; empty means always.
  std::function<bool(const test_record&)> can_run;
  std::chrono::seconds test_deadline{1800};
  // The wall clock (UTC); injected so actor tests can move through the overnight window.
  std::function<unix_seconds()> clock;
  // The modems for telephone-number tests (none: such tests are never started) and how long
  // a faulty one stays out of service. The scheduler builds its pool from these at spawn and
  // reconfigures it on reload.
  std::vector<modem_settings> modems;
  std::chrono::seconds modem_cooldown{300};
  // Where the pool's state is published for service-status; may be null.
  std::shared_ptr<mts::modem_board> board;
};

struct scheduler_state {
  static inline const char* name = "scheduler";
  scheduler_config config;
  persistence_actor persistence;
  executor_actor executor; // may be invalid
  scheduler_queue queue; // queued and running tests: ids and scheduling keys
  std::unique_ptr<modem_pool> modems; // built at spawn
  bool tick_armed = false;
};

scheduler_actor::behavior_type scheduler(scheduler_actor::stateful_pointer<scheduler_state> self,
                                         scheduler_config config, persistence_actor persistence,
                                         executor_actor executor);

} // namespace mts

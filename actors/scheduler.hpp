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
// - NODES (issue 16): tests run on the head itself (its executor, unless head_runs_tests is
//   false) and on the collectors that joined (the registrar tells the scheduler). Each node
//   has its TCP sessions, its modems (in the one pool, tagged with the node) and what it
//   reaches (common/reach.hpp). A test goes to a node that reaches its address and has room:
//   a TCP test to the one with the most free sessions (the first on a tie, the head first),
//   a number to the first with a free modem. A test no node with room reaches waits (the
//   queue's WAITING groups) without holding back the tests behind it. The rules above (order,
//   capacity, one session per address) hold across all nodes: the queue is the head's.
// - A collector's tests ask for modems through that node's NODE BROKER (actors/node_broker.hpp),
//   never through the scheduler's own handle.
// - A collector lost mid-test (its executor goes down: kill -9, a frozen process or a dead
//   network past cluster.missed_heartbeats): each of its running tests keeps its address busy
//   for node_loss_grace (the collector hangs its calls up when it loses the head), then runs
//   again on another node that reaches it, its lost run counted as one connection attempt;
//   when that uses up max_attempts it ends as a transient failure, "ERROR: collector NAME was
//   lost during the test". Every dispatch has a generation: an outcome (or error) of an older
//   dispatch of a test, a late answer from a lost node, is discarded with a log line, so a test
//   has exactly one result. Until a node takes it again the test stays RUNNING.
//
// The queue (actors/scheduler_queue.hpp) holds only ids and scheduling keys, and every event
// (submit, cancel, start, end, the window opening, a modem freed) costs O(log n) in its
// length; the full record is read from the database when a test starts (the persistence
// actor's (start, get) reply carries it).
#include "actors/collector_board.hpp"
#include "actors/interfaces.hpp"
#include "actors/modem_pool.hpp"
#include "actors/scheduler_queue.hpp"
#include "config/settings.hpp"

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>

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
  // Nodes (issue 16): whether the head runs tests itself; how long a lost collector's tests
  // keep their address before they run again elsewhere; the attempts a test has in all and
  // the pause after a failed one (scheduler.max_attempts, retry_delay_seconds); where each
  // collector's usage is published (may be null).
  bool head_runs_tests = true;
  std::chrono::seconds node_loss_grace{0};
  std::int64_t max_attempts = 3;
  std::chrono::seconds retry_delay{60};
  std::shared_ptr<collector_board> collectors;
};

// A node tests run on: the head itself or a joined collector.
struct scheduler_node {
  std::uint64_t id = 0; // modem_pool::head_node for the head; a collector: its join's number
  std::string name;     // "head", or the collector's
  executor_actor executor;
  modem_broker_actor broker; // its tests' modem broker
  std::int64_t tcp_capacity = 0;
  std::int64_t tcp_in_use = 0;
  std::int64_t running = 0;
  reach_rules reach;
};

// A dispatched test: where it runs, and what running it again needs.
struct running_test {
  std::uint64_t node = 0;
  std::uint64_t generation = 0; // its dispatch's: an answer to an older one is late
  bool tcp = false;
  bool lost = false;      // its node was lost: it waits to run again
  bool finishing = false; // its outcome is being recorded
  std::int64_t attempts_lost = 0; // runs lost with their node (one connection attempt each)
  std::optional<test_record> record; // kept while it runs on a collector
};

struct scheduler_state {
  static inline const char* name = "scheduler";
  scheduler_config config;
  persistence_actor persistence;
  executor_actor executor; // may be invalid
  scheduler_queue queue; // queued and running tests: ids and scheduling keys
  std::unique_ptr<modem_pool> modems; // built at spawn
  bool tick_armed = false;
  std::vector<scheduler_node> nodes; // the head first (if it runs tests), then collectors by join
  std::unordered_map<test_id, running_test> running;
  std::deque<test_id> to_run_again; // lost tests whose grace is over, oldest first
  std::uint64_t next_node = 1;
  std::uint64_t next_generation = 1;
};

scheduler_actor::behavior_type scheduler(scheduler_actor::stateful_pointer<scheduler_state> self,
                                         scheduler_config config, persistence_actor persistence,
                                         executor_actor executor);

} // namespace mts

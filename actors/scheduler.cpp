#include "actors/scheduler.hpp"

#include "actors/node_broker.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace mts {
namespace {

using self_ptr = scheduler_actor::stateful_pointer<scheduler_state>;

// Every request to the persistence actor gets this much time; it only waits for SQLite.
constexpr auto storage_timeout = std::chrono::seconds(30);
// Longest sleep between two looks at the overnight window, so a clock change is noticed.
constexpr unix_seconds max_tick_interval = 300;

void dispatch(self_ptr self);

scheduler_node* find_node(self_ptr self, std::uint64_t id) {
  for (auto& n : self->state.nodes)
    if (n.id == id)
      return &n;
  return nullptr;
}

// A node's bit in the queue's reach masks (its place among the nodes; at most 64, which
// cluster.collectors keeps to).
std::uint64_t node_bit(self_ptr self, const scheduler_node& node) {
  auto slot = static_cast<std::size_t>(&node - self->state.nodes.data());
  return slot < 64 ? std::uint64_t{1} << slot : 0;
}

void publish_usage(self_ptr self, const scheduler_node& node) {
  if (node.id != modem_pool::head_node && self->state.config.collectors)
    self->state.config.collectors->set_usage(node.name, node.running, node.tcp_in_use);
}

// The test no longer holds room on its node: its TCP session or modem frees, and tests
// waiting for room there may go.
void vacate(self_ptr self, test_id id) {
  auto& st = self->state;
  auto it = st.running.find(id);
  if (it == st.running.end())
    return;
  if (auto* node = it->second.lost ? nullptr : find_node(self, it->second.node)) {
    node->running -= 1;
    if (it->second.tcp)
      node->tcp_in_use -= 1;
    publish_usage(self, *node);
    st.queue.wake(node_bit(self, *node));
  }
  if (!it->second.tcp)
    st.modems->release(id);
  st.running.erase(it);
}

// The test left the running set (finished, recorded, or never started): its address frees too.
void release(self_ptr self, test_id id) {
  self->state.queue.finish(id);
  vacate(self, id);
}

// Whether an answer for the test's dispatch `generation` is the current one.
bool current(self_ptr self, test_id id, std::uint64_t generation) {
  auto it = self->state.running.find(id);
  return it != self->state.running.end() && it->second.generation == generation && !it->second.lost;
}

// Whether the node can ever take the test (it reaches the address and has the kind of room).
bool can_take(self_ptr self, const scheduler_node& node, const std::string& address, bool tcp) {
  if (tcp ? node.tcp_capacity <= 0 : self->state.modems->count(node.id) == 0)
    return false;
  return node.reach.reaches(address);
}

std::uint64_t reach_mask(self_ptr self, const std::string& address, bool tcp) {
  std::uint64_t mask = 0;
  for (const auto& n : self->state.nodes)
    if (can_take(self, n, address, tcp))
      mask |= node_bit(self, n);
  return mask;
}

// The node to run the test on now: a TCP test on the one with the most free sessions (the
// first on a tie), a number on the first with a free modem; none if no node with room
// reaches it.
scheduler_node* choose_node(self_ptr self, const std::string& address, bool tcp) {
  scheduler_node* best = nullptr;
  for (auto& n : self->state.nodes) {
    if (!can_take(self, n, address, tcp))
      continue;
    if (tcp) {
      const auto room = n.tcp_capacity - n.tcp_in_use;
      if (room > 0 && (!best || room > best->tcp_capacity - best->tcp_in_use))
        best = &n;
    } else if (self->state.modems->available(n.id)) {
      return &n;
    }
  }
  return best;
}

// Takes the room for the test on the node (a TCP session, or the node's modem).
void occupy(self_ptr self, scheduler_node& node, test_id id, bool tcp) {
  auto& entry = self->state.running[id];
  entry.node = node.id;
  entry.generation = self->state.next_generation++;
  entry.tcp = tcp;
  entry.lost = false;
  node.running += 1;
  if (tcp)
    node.tcp_in_use += 1;
  else
    self->state.modems->acquire(id, node.id); // choose_node saw one free on the node
  publish_usage(self, node);
}

// Queues tests known by their keys (recovered, or just committed); can_run is asked here,
// once per test (scheduler.hpp).
void enqueue_all(self_ptr self, std::vector<queued_test>& tests) {
  auto& st = self->state;
  test_record rec; // what can_run sees
  for (auto& q : tests) {
    rec.id = q.id;
    rec.request.immediate = q.immediate;
    rec.request.meter_type = std::move(q.meter_type);
    rec.request.remote_address = std::move(q.remote_address);
    const bool runnable = !st.config.can_run || st.config.can_run(rec);
    st.queue.add(rec.id, rec.request.immediate, rec.request.remote_address, runnable, rec.request.meter_type);
  }
}

bool in_window(self_ptr self) {
  auto& cfg = self->state.config;
  return cfg.overnight_window.contains(seconds_of_day(cfg.clock()));
}

// Wakes the scheduler when the overnight window opens (or after max_tick_interval).
// Also wakes it when a modem out of service comes back while tests are queued.
void arm_tick(self_ptr self) {
  auto& st = self->state;
  if (st.tick_armed || st.nodes.empty())
    return;
  const auto now = st.config.clock();
  std::optional<unix_seconds> wait;
  if (st.queue.queued_overnight() > 0) {
    auto sod = seconds_of_day(now);
    wait = (st.config.overnight_window.start_second - sod + seconds_per_day) % seconds_per_day;
  }
  if (!st.queue.empty()) {
    if (auto back = st.modems->next_return())
      wait = std::min(wait.value_or(*back - now), *back - now);
  }
  if (!wait)
    return;
  *wait = std::clamp<unix_seconds>(*wait, 1, max_tick_interval);
  st.tick_armed = true;
  self->delayed_send(self, std::chrono::seconds(*wait), tick_atom::value);
}

void record_outcome(self_ptr self, test_outcome outcome) {
  auto id = outcome.id;
  self->request(self->state.persistence, storage_timeout, finish_atom::value, std::move(outcome))
    .then(
      [self, id](bool written) {
        if (!written)
          spdlog::warn("scheduler: test {} was no longer running; its outcome was not recorded", id);
        release(self, id);
        dispatch(self);
      },
      [self, id](caf::error& err) {
        // The test stays RUNNING in the database; the next start-up's recovery re-queues it.
        spdlog::error("scheduler: recording the outcome of test {} failed: {}", id, to_string(err));
        release(self, id);
        dispatch(self);
      });
}

void send_run(self_ptr self, test_id id, test_record rec);

// Marks the test RUNNING in the database, which answers its whole record, and hands that to
// the node chosen for it.
void run(self_ptr self, test_id id) {
  auto started = self->state.config.clock();
  self->request(self->state.persistence, storage_timeout, start_atom::value, get_atom::value, id, started)
    .then(
      [self, id](started_test& st) {
        if (!st.started) { // cancelled meanwhile
          release(self, id);
          dispatch(self);
          return;
        }
        send_run(self, id, std::move(st.record));
      },
      [self, id](caf::error& err) {
        // Not started: it is still PENDING in the database, so it goes back into the queue
        // (and stays cancellable); the next dispatch tries again.
        spdlog::error("scheduler: starting test {} failed: {}", id, to_string(err));
        self->state.queue.requeue(id);
        vacate(self, id);
      });
}

// Hands the running test to its node's executor; the answer is taken only if it is for this
// dispatch (a lost node's late one is not).
void send_run(self_ptr self, test_id id, test_record rec) {
  auto& st = self->state;
  auto& entry = st.running[id];
  auto* node = entry.lost ? nullptr : find_node(self, entry.node);
  if (!node) { // its node was lost while the test was being started: it runs again after the grace
    entry.record = std::move(rec);
    dispatch(self);
    return;
  }
  const auto generation = entry.generation;
  spdlog::info("scheduler: test {} started on {} ({} {}){}", id, node ? node->name : "?", rec.request.meter_type,
               rec.request.immediate ? "immediate" : "overnight",
               entry.attempts_lost ? " again, after " + std::to_string(entry.attempts_lost) + " lost run(s)" : "");
  if (node->id != modem_pool::head_node)
    entry.record = rec;
  self->request(node->executor, st.config.test_deadline, run_atom::value, std::move(rec), node->broker,
                entry.attempts_lost)
    .then(
      [self, id, generation](test_outcome& outcome) {
        if (!current(self, id, generation)) {
          spdlog::warn("scheduler: discarded a late outcome of test {} (its node was lost; it was given to "
                       "another)",
                       id);
          return;
        }
        self->state.running[id].finishing = true;
        record_outcome(self, std::move(outcome));
      },
      [self, id, generation](caf::error& err) {
        if (!current(self, id, generation))
          return; // an older dispatch's request ending: the test is another's now
        self->state.running[id].finishing = true;
        test_outcome outcome;
        outcome.id = id;
        outcome.test_end_time = self->state.config.clock();
        outcome.result = err == caf::sec::request_timeout ? "ERROR: test deadline exceeded"
                                                          : "ERROR: test could not be run";
        spdlog::warn("scheduler: test {} failed in the executor: {}", id, to_string(err));
        record_outcome(self, std::move(outcome));
      });
}

// Lost tests whose grace is over run again, oldest first, where there is room.
void run_lost_again(self_ptr self) {
  auto& st = self->state;
  for (std::size_t n = st.to_run_again.size(); n-- > 0;) {
    auto id = st.to_run_again.front();
    st.to_run_again.pop_front();
    auto it = st.running.find(id);
    if (it == st.running.end() || !it->second.lost)
      continue;
    if (!it->second.record) { // still being started when its node was lost
      st.to_run_again.push_back(id);
      continue;
    }
    const auto& address = it->second.record->request.remote_address;
    auto* node = choose_node(self, address, it->second.tcp);
    if (!node) {
      st.to_run_again.push_back(id); // waits for room on a node that reaches it
      continue;
    }
    auto rec = std::move(*it->second.record);
    occupy(self, *node, id, it->second.tcp);
    send_run(self, id, std::move(rec));
  }
}

// A collector's executor went down: its tests wait out the grace, then run again elsewhere.
void node_lost(self_ptr self, const caf::actor_addr& executor, const std::string& why) {
  auto& st = self->state;
  auto node = std::find_if(st.nodes.begin(), st.nodes.end(),
                           [&](const scheduler_node& n) { return n.executor.address() == executor; });
  if (node == st.nodes.end())
    return;
  const auto grace = std::max(st.config.node_loss_grace, st.config.retry_delay);
  std::int64_t lost = 0;
  for (auto& [id, entry] : st.running) {
    if (entry.node != node->id || entry.lost || entry.finishing)
      continue;
    entry.lost = true;
    entry.attempts_lost += 1;
    entry.generation = st.next_generation++; // whatever the lost node still answers is late
    if (!entry.tcp)
      st.modems->release(id);
    self->delayed_send(self, grace, retry_atom::value, id, entry.generation);
    ++lost;
  }
  spdlog::warn("scheduler: collector {} lost ({}) with {} running test(s); they run again elsewhere after {} s",
               node->name, why, lost, grace.count());
  st.modems->remove_node(node->id);
  if (st.config.collectors)
    st.config.collectors->clear_usage(node->name);
  self->unlink_from(node->broker);
  self->send_exit(node->broker, caf::exit_reason::user_shutdown);
  st.nodes.erase(node);
  st.queue.wake_all(); // the nodes' bits moved
  dispatch(self);
}

void dispatch(self_ptr self) {
  auto& st = self->state;
  if (st.nodes.empty())
    return;
  run_lost_again(self);
  while (st.queue.running() < st.config.max_concurrent_tests) {
    const bool tcp_free = std::any_of(st.nodes.begin(), st.nodes.end(),
                                      [](const scheduler_node& n) { return n.tcp_in_use < n.tcp_capacity; });
    const bool modem_free = st.modems->available();
    const bool overnight_open = st.queue.queued_overnight() > 0 && in_window(self);
    auto next = st.queue.next(tcp_free, modem_free, overnight_open);
    if (!next)
      break;
    auto* node = choose_node(self, *next->address, next->tcp);
    if (!node) { // room is on nodes that do not reach it
      st.queue.wait(next->id, reach_mask(self, *next->address, next->tcp));
      continue;
    }
    occupy(self, *node, next->id, next->tcp);
    run(self, next->id);
  }
  arm_tick(self);
}

// Whether the test is running on that node now (not lost with it).
bool runs_on(self_ptr self, test_id id, std::uint64_t node) {
  auto it = self->state.running.find(id);
  return it != self->state.running.end() && it->second.node == node && !it->second.lost;
}

// A test's request for a modem, from its node (the head's own tests, or a collector's through
// its node broker): answered only for a test running there.
modem_grant grant_modem(self_ptr self, test_id id, std::uint64_t node) {
  if (!runs_on(self, id, node)) {
    spdlog::warn("scheduler: test {} asked for a modem but is not running on that node; none given", id);
    return {};
  }
  return {self->state.modems->acquire(id, node)};
}

void modem_fault(self_ptr self, test_id id, const std::string& reason, std::uint64_t node) {
  auto& st = self->state;
  if (!runs_on(self, id, node))
    return;
  st.modems->fault(id, reason);
  if (auto* n = find_node(self, node))
    st.queue.wake(node_bit(self, *n)); // its other modems may take a waiting test
  dispatch(self); // re-arms the tick for the modem's return
}

void node_joined(self_ptr self, node_offer offer, const executor_actor& executor) {
  auto& st = self->state;
  if (!executor)
    return;
  // The same collector joining again while its node is still here (it took the head for lost
  // and ended its tests; the head had not noticed): its node is lost first (nothing otherwise).
  node_lost(self, executor.address(), "it joined again: it had taken the head for lost and ended its tests");
  if (st.nodes.size() >= 64) {
    spdlog::error("scheduler: collector {} joined, but 64 nodes take tests already; it gets none", offer.name);
    return;
  }
  scheduler_node node;
  node.id = st.next_node++;
  node.name = offer.name;
  node.executor = executor;
  node.broker = self->spawn<caf::linked>(node_broker, caf::actor_cast<scheduler_actor>(self), node.id);
  node.tcp_capacity = offer.tcp_sessions;
  node.reach = std::move(offer.reach);
  self->monitor(executor);
  spdlog::info("scheduler: collector {} takes tests: {} TCP session(s), {} modem(s){}{}", node.name,
               node.tcp_capacity, offer.modems.size(), node.reach.networks.empty() ? "" : ", some networks only",
               node.reach.prefixes.empty() ? "" : ", some numbers only");
  st.modems->add_node(node.id, node.name, std::move(offer.modems));
  st.nodes.push_back(std::move(node));
  publish_usage(self, st.nodes.back());
  st.queue.wake_all(); // tests no node reached, or waiting for room, may go there
  dispatch(self);
}

} // namespace

scheduler_actor::behavior_type scheduler(scheduler_actor::stateful_pointer<scheduler_state> self,
                                         scheduler_config config, persistence_actor persistence,
                                         executor_actor executor) {
  auto& st = self->state;
  st.config = std::move(config);
  if (!st.config.clock)
    st.config.clock = now_utc;
  st.persistence = std::move(persistence);
  st.executor = std::move(executor);
  st.modems = std::make_unique<modem_pool>(st.config.modems, st.config.modem_cooldown, st.config.clock,
                                           st.config.board);
  if (st.executor && st.config.head_runs_tests) {
    scheduler_node head;
    head.id = modem_pool::head_node;
    head.name = "head";
    head.executor = st.executor;
    head.broker = caf::actor_cast<modem_broker_actor>(self);
    head.tcp_capacity = st.config.max_tcp_sessions;
    st.nodes.push_back(std::move(head));
  }
  // The collectors' executors are monitored: one going down is a lost node.
  self->set_down_handler([self](caf::down_msg& dm) { node_lost(self, dm.source, to_string(dm.reason)); });

  // Recovery first. The answer holds every test committed until then; the persistence actor
  // tells this actor of every later one (queued_atom), after the answer.
  self->request(st.persistence, storage_timeout, recover_atom::value, keys_atom::value,
                caf::actor_cast<queue_sink_actor>(self))
    .then(
      [self](std::vector<queued_test>& pending) {
        self->state.queue.reserve(pending.size());
        enqueue_all(self, pending);
        auto& queue = self->state.queue;
        spdlog::info("scheduler: recovered {} queued tests ({} immediate, {} overnight)",
                     pending.size(), queue.queued_immediate(), queue.queued_overnight());
        pending = {}; // the keys are in the queue now; give the memory back
        dispatch(self);
      },
      [self](caf::error& err) {
        spdlog::critical("scheduler: recovering the queue failed: {}", to_string(err));
        self->quit(err);
      });

  return {
    [self](queued_atom, std::vector<queued_test>& tests) {
      // New tests, committed (persistence.hpp): this arrives before anyone knows their ids.
      enqueue_all(self, tests);
      dispatch(self);
    },
    [self](cancel_atom, test_id id) -> caf::result<test_id> {
      auto& st = self->state;
      if (st.queue.is_running(id)) // started or finishing: left as it is (DECISIONS.md)
        return id;
      auto rp = self->make_response_promise<test_id>();
      if (st.queue.is_queued(id)) {
        self->request(st.persistence, storage_timeout, delete_atom::value, id)
          .then(
            [self, rp, id](bool deleted) mutable {
              if (deleted) {
                self->state.queue.remove(id);
                spdlog::info("scheduler: test {} cancelled", id);
              }
              rp.deliver(id);
            },
            [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      }
      self->request(st.persistence, storage_timeout, exists_atom::value, id)
        .then(
          [rp, id](bool exists) mutable {
            if (exists)
              rp.deliver(id);
            else
              rp.deliver(make_error(app_errc::unknown_test));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](cancel_atom, batch_atom, batch_id id, bool delete_completed) -> caf::result<std::int64_t> {
      auto rp = self->make_response_promise<std::int64_t>();
      self->request(self->state.persistence, storage_timeout, cancel_atom::value, id, delete_completed)
        .then(
          [self, rp, id](batch_cancel_result& res) mutable {
            if (!res.found) {
              rp.deliver(make_error(app_errc::unknown_batch));
              return;
            }
            for (auto t : res.removed)
              self->state.queue.remove(t);
            spdlog::info("scheduler: batch {} cancelled, {} tests removed", id, res.cancelled_count);
            rp.deliver(res.cancelled_count);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](tick_atom) {
      self->state.tick_armed = false;
      self->state.queue.wake(~std::uint64_t{0}); // a modem may be back in service
      dispatch(self);
    },
    [self](reload_atom, const std::shared_ptr<const scheduler_config>& next) {
      auto& c = self->state.config;
      c.overnight_window = next->overnight_window;
      c.max_concurrent_tests = next->max_concurrent_tests;
      c.max_tcp_sessions = next->max_tcp_sessions;
      if (auto* head = find_node(self, modem_pool::head_node))
        head->tcp_capacity = c.max_tcp_sessions;
      c.max_attempts = next->max_attempts;
      c.retry_delay = next->retry_delay;
      c.test_deadline = next->test_deadline;
      c.can_run = next->can_run;
      for (const auto& note : self->state.modems->reconfigure(next->modems, next->modem_cooldown))
        spdlog::info("scheduler: reload: {}", note);
      // Parked tests may be runnable now (a meter type or modems added). Tests already queued
      // for a type the reload removed are not re-parked: they end as "not supported" when
      // dispatched (docs/operations.md, "Reloading the configuration").
      {
        auto now_runnable = self->state.queue.unpark(
          [&c](test_id id, bool immediate, const std::string& meter_type, const std::string& address) {
            test_record rec; // what can_run sees (scheduler.hpp)
            rec.id = id;
            rec.request.immediate = immediate;
            rec.request.meter_type = meter_type;
            rec.request.remote_address = address;
            return !c.can_run || c.can_run(rec);
          });
        if (now_runnable)
          spdlog::info("scheduler: {} queued tests can run after the reload", now_runnable);
      }
      // More capacity or another window may start tests now; the tick is re-armed for the
      // new window (an earlier arming still fires, harmlessly).
      self->state.tick_armed = false;
      dispatch(self);
    },
    [self](modem_atom, get_atom, test_id id) -> modem_grant { return grant_modem(self, id, modem_pool::head_node); },
    [self](modem_atom, get_atom, test_id id, std::uint64_t node) -> modem_grant {
      return grant_modem(self, id, node);
    },
    [self](modem_atom, fault_atom, test_id id, const std::string& reason) {
      modem_fault(self, id, reason, modem_pool::head_node);
    },
    [self](modem_atom, fault_atom, test_id id, const std::string& reason, std::uint64_t node) {
      modem_fault(self, id, reason, node);
    },
    [self](join_atom, node_offer& offer, executor_actor& executor) { node_joined(self, std::move(offer), executor); },
    [self](retry_atom, test_id id, std::uint64_t generation) {
      auto& st = self->state;
      auto it = st.running.find(id);
      if (it == st.running.end() || !it->second.lost || it->second.generation != generation)
        return;
      if (it->second.attempts_lost >= st.config.max_attempts) {
        test_outcome outcome;
        outcome.id = id;
        outcome.test_end_time = st.config.clock();
        outcome.result = "ERROR: its collector was lost during the test";
        outcome.connection_attempts = it->second.attempts_lost;
        spdlog::warn("scheduler: test {} ends: its collector was lost during each of its {} attempt(s)", id,
                     it->second.attempts_lost);
        it->second.finishing = true;
        record_outcome(self, std::move(outcome));
        return;
      }
      st.to_run_again.push_back(id);
      dispatch(self);
    },
    [self](stats_atom) -> scheduler_stats {
      auto& st = self->state;
      return {st.queue.queued_immediate(), st.queue.queued_overnight(), st.queue.running()};
    },
  };
}

} // namespace mts

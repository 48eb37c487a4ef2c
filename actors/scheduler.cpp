#include "actors/scheduler.hpp"

#include "actors/connection.hpp"

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

bool is_tcp(const std::string& remote_address) { return parse_tcp_address(remote_address).has_value(); }

// The test left the running set (finished, recorded, or never started).
void release(self_ptr self, test_id id) {
  auto& st = self->state;
  st.running.erase(id);
  auto it = st.running_address.find(id);
  if (it == st.running_address.end())
    return;
  st.busy_addresses.erase(it->second);
  if (is_tcp(it->second))
    st.tcp_running -= 1;
  else if (st.config.modems)
    st.config.modems->release(id);
  st.running_address.erase(it);
}

void occupy(self_ptr self, const test_record& rec) {
  auto& st = self->state;
  st.running.insert(rec.id);
  st.running_address.emplace(rec.id, rec.request.remote_address);
  st.busy_addresses.insert(rec.request.remote_address);
  if (is_tcp(rec.request.remote_address))
    st.tcp_running += 1;
  else if (st.config.modems)
    st.config.modems->acquire(rec.id); // startable() saw one free
}

// Whether a queued test may start now (capacity aside from the total).
bool startable(self_ptr self, const test_record& rec) {
  auto& st = self->state;
  if (st.busy_addresses.count(rec.request.remote_address))
    return false;
  if (is_tcp(rec.request.remote_address)) {
    if (st.tcp_running >= st.config.max_tcp_sessions)
      return false;
  } else if (!st.config.modems || !st.config.modems->available()) {
    return false;
  }
  return !st.config.can_run || st.config.can_run(rec);
}

void enqueue(self_ptr self, test_record rec) {
  auto& st = self->state;
  if (st.running.count(rec.id))
    return;
  auto& queue = rec.request.immediate ? st.immediate : st.overnight;
  queue.emplace(rec.id, std::move(rec));
}

bool in_window(self_ptr self) {
  auto& cfg = self->state.config;
  return cfg.overnight_window.contains(seconds_of_day(cfg.clock()));
}

// Wakes the scheduler when the overnight window opens (or after max_tick_interval).
// Also wakes it when a modem out of service comes back while tests are queued.
void arm_tick(self_ptr self) {
  auto& st = self->state;
  if (st.tick_armed || !st.executor)
    return;
  const auto now = st.config.clock();
  std::optional<unix_seconds> wait;
  if (!st.overnight.empty()) {
    auto sod = seconds_of_day(now);
    wait = (st.config.overnight_window.start_second - sod + seconds_per_day) % seconds_per_day;
  }
  if (st.config.modems && !(st.immediate.empty() && st.overnight.empty())) {
    if (auto back = st.config.modems->next_return())
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

void run(self_ptr self, test_record rec) {
  auto id = rec.id;
  auto queued = rec; // for the error path: the success path takes rec
  auto started = self->state.config.clock();
  self->request(self->state.persistence, storage_timeout, start_atom::value, id, started)
    .then(
      [self, rec = std::move(rec), started](bool ok) mutable {
        auto id = rec.id;
        if (!ok) { // cancelled meanwhile
          release(self, id);
          dispatch(self);
          return;
        }
        if (!rec.test_start_time)
          rec.test_start_time = started;
        rec.state = test_state::running;
        rec.attempts += 1;
        spdlog::info("scheduler: test {} started ({} {})", id, rec.request.meter_type,
                     rec.request.immediate ? "immediate" : "overnight");
        auto deadline = self->state.config.test_deadline;
        self->request(self->state.executor, deadline, run_atom::value, std::move(rec))
          .then([self](test_outcome& outcome) { record_outcome(self, std::move(outcome)); },
                [self, id](caf::error& err) {
                  test_outcome outcome;
                  outcome.id = id;
                  outcome.test_end_time = self->state.config.clock();
                  outcome.result = err == caf::sec::request_timeout
                                     ? "ERROR: test deadline exceeded"
                                     : "ERROR: test could not be run";
                  spdlog::warn("scheduler: test {} failed in the executor: {}", id, to_string(err));
                  record_outcome(self, std::move(outcome));
                });
      },
      [self, id, queued = std::move(queued)](caf::error& err) mutable {
        // Not started: it is still PENDING in the database, so it goes back into the queue
        // (and stays cancellable); the next dispatch tries again.
        spdlog::error("scheduler: starting test {} failed: {}", id, to_string(err));
        release(self, id);
        enqueue(self, std::move(queued));
      });
}

// The first startable test of a queue, in order; end() if none.
std::map<test_id, test_record>::iterator first_startable(self_ptr self, std::map<test_id, test_record>& queue) {
  return std::find_if(queue.begin(), queue.end(), [self](const auto& kv) { return startable(self, kv.second); });
}

void dispatch(self_ptr self) {
  auto& st = self->state;
  if (!st.executor)
    return;
  while (static_cast<std::int64_t>(st.running.size()) < st.config.max_concurrent_tests) {
    std::map<test_id, test_record>* queue = &st.immediate;
    auto it = first_startable(self, st.immediate);
    if (it == st.immediate.end() && !st.overnight.empty() && in_window(self)) {
      queue = &st.overnight;
      it = first_startable(self, st.overnight);
    }
    if (it == queue->end())
      break;
    auto node = queue->extract(it);
    occupy(self, node.mapped());
    run(self, std::move(node.mapped()));
  }
  arm_tick(self);
}

void forget(self_ptr self, test_id id) {
  self->state.immediate.erase(id);
  self->state.overnight.erase(id);
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

  // Recovery first: the persistence actor answers in order, so every test inserted later is
  // not in this list (and enqueue ignores duplicates anyway).
  self->request(st.persistence, storage_timeout, recover_atom::value)
    .then(
      [self](std::vector<test_record>& pending) {
        for (auto& rec : pending)
          enqueue(self, std::move(rec));
        spdlog::info("scheduler: recovered {} queued tests ({} immediate, {} overnight)",
                     pending.size(), self->state.immediate.size(), self->state.overnight.size());
        dispatch(self);
      },
      [self](caf::error& err) {
        spdlog::critical("scheduler: recovering the queue failed: {}", to_string(err));
        self->quit(err);
      });

  return {
    [self](submit_atom, test_request& req, unix_seconds received) -> caf::result<test_id> {
      auto rp = self->make_response_promise<test_id>();
      self->request(self->state.persistence, storage_timeout, insert_atom::value, req, received)
        .then(
          [self, rp, req, received](test_id id) mutable {
            test_record rec;
            rec.id = id;
            rec.received_time = received;
            rec.request = std::move(req);
            enqueue(self, std::move(rec));
            rp.deliver(id);
            dispatch(self);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](submit_atom, std::vector<test_request>& reqs,
           unix_seconds received) -> caf::result<batch_id> {
      auto rp = self->make_response_promise<batch_id>();
      self->request(self->state.persistence, storage_timeout, insert_atom::value, reqs, received)
        .then(
          [self, rp, reqs, received](batch_inserted& inserted) mutable {
            for (size_t i = 0; i < inserted.tests.size() && i < reqs.size(); ++i) {
              test_record rec;
              rec.id = inserted.tests[i];
              rec.batch = inserted.batch;
              rec.received_time = received;
              rec.request = std::move(reqs[i]);
              enqueue(self, std::move(rec));
            }
            rp.deliver(inserted.batch);
            dispatch(self);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](cancel_atom, test_id id) -> caf::result<test_id> {
      auto& st = self->state;
      if (st.running.count(id)) // started or finishing: left as it is (DECISIONS.md)
        return id;
      auto rp = self->make_response_promise<test_id>();
      if (st.immediate.count(id) || st.overnight.count(id)) {
        self->request(st.persistence, storage_timeout, delete_atom::value, id)
          .then(
            [self, rp, id](bool deleted) mutable {
              if (deleted) {
                forget(self, id);
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
              forget(self, t);
            spdlog::info("scheduler: batch {} cancelled, {} tests removed", id, res.cancelled_count);
            rp.deliver(res.cancelled_count);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](tick_atom) {
      self->state.tick_armed = false;
      dispatch(self);
    },
    [self](reload_atom, const std::shared_ptr<const scheduler_config>& next) {
      auto& c = self->state.config;
      c.overnight_window = next->overnight_window;
      c.max_concurrent_tests = next->max_concurrent_tests;
      c.max_tcp_sessions = next->max_tcp_sessions;
      c.test_deadline = next->test_deadline;
      c.can_run = next->can_run;
      // More capacity or another window may start tests now; the tick is re-armed for the
      // new window (an earlier arming still fires, harmlessly).
      self->state.tick_armed = false;
      dispatch(self);
    },
    [self](stats_atom) -> scheduler_stats {
      auto& st = self->state;
      return {static_cast<std::int64_t>(st.immediate.size()),
              static_cast<std::int64_t>(st.overnight.size()),
              static_cast<std::int64_t>(st.running.size())};
    },
  };
}

} // namespace mts

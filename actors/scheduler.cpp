#include "actors/scheduler.hpp"

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

// The test left the running set (finished, recorded, or never started): its address, TCP
// session or modem frees.
void release(self_ptr self, test_id id) {
  auto& st = self->state;
  auto tcp = st.queue.finish(id);
  if (tcp && !*tcp)
    st.modems->release(id);
}

// Queues a test by its keys; can_run is asked here, once (scheduler.hpp).
void enqueue(self_ptr self, const test_record& rec) {
  auto& st = self->state;
  const bool runnable = !st.config.can_run || st.config.can_run(rec);
  st.queue.add(rec.id, rec.request.immediate, rec.request.remote_address, runnable, rec.request.meter_type);
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

// Marks the test RUNNING in the database, which answers its whole record, and hands that to
// the executor.
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
        auto& rec = st.record;
        spdlog::info("scheduler: test {} started ({} {})", id, rec.request.meter_type,
                     rec.request.immediate ? "immediate" : "overnight");
        auto deadline = self->state.config.test_deadline;
        self->request(self->state.executor, deadline, run_atom::value, std::move(rec),
                      caf::actor_cast<modem_broker_actor>(self))
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
      [self, id](caf::error& err) {
        // Not started: it is still PENDING in the database, so it goes back into the queue
        // (and stays cancellable); the next dispatch tries again.
        spdlog::error("scheduler: starting test {} failed: {}", id, to_string(err));
        auto& st = self->state;
        auto tcp = st.queue.requeue(id);
        if (tcp && !*tcp)
          st.modems->release(id);
      });
}

void dispatch(self_ptr self) {
  auto& st = self->state;
  if (!st.executor)
    return;
  while (st.queue.running() < st.config.max_concurrent_tests) {
    const bool tcp_free = st.queue.tcp_running() < st.config.max_tcp_sessions;
    const bool modem_free = st.modems->available();
    const bool overnight_open = st.queue.queued_overnight() > 0 && in_window(self);
    auto next = st.queue.next(tcp_free, modem_free, overnight_open);
    if (!next)
      break;
    if (!next->tcp && !st.modems->acquire(next->id)) { // cannot happen: modem_free said one is
      st.queue.requeue(next->id);
      break;
    }
    run(self, next->id);
  }
  arm_tick(self);
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

  // Recovery first: the persistence actor answers in order, so every test inserted later is
  // not in this list (and enqueue ignores duplicates anyway).
  self->request(st.persistence, storage_timeout, recover_atom::value, keys_atom::value)
    .then(
      [self](std::vector<queued_test>& pending) {
        test_record rec; // what can_run sees (scheduler.hpp)
        self->state.queue.reserve(pending.size());
        for (auto& q : pending) {
          rec.id = q.id;
          rec.request.immediate = q.immediate;
          rec.request.meter_type = std::move(q.meter_type);
          rec.request.remote_address = std::move(q.remote_address);
          enqueue(self, rec);
        }
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
    [self](submit_atom, test_request& req, unix_seconds received) -> caf::result<test_id> {
      auto rp = self->make_response_promise<test_id>();
      self->request(self->state.persistence, storage_timeout, insert_atom::value, req, received)
        .then(
          [self, rp, req, received](test_id id) mutable {
            test_record rec;
            rec.id = id;
            rec.received_time = received;
            rec.request = std::move(req);
            enqueue(self, rec);
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
              enqueue(self, rec);
            }
            rp.deliver(inserted.batch);
            dispatch(self);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
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
      dispatch(self);
    },
    [self](reload_atom, const std::shared_ptr<const scheduler_config>& next) {
      auto& c = self->state.config;
      c.overnight_window = next->overnight_window;
      c.max_concurrent_tests = next->max_concurrent_tests;
      c.max_tcp_sessions = next->max_tcp_sessions;
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
    [self](modem_atom, get_atom, test_id id) -> modem_grant {
      auto& st = self->state;
      if (!st.queue.is_running(id)) {
        spdlog::warn("scheduler: test {} asked for a modem but is not running; none given", id);
        return {};
      }
      return {st.modems->acquire(id)};
    },
    [self](modem_atom, fault_atom, test_id id, const std::string& reason) {
      self->state.modems->fault(id, reason);
      dispatch(self); // re-arms the tick for the modem's return
    },
    [self](stats_atom) -> scheduler_stats {
      auto& st = self->state;
      return {st.queue.queued_immediate(), st.queue.queued_overnight(), st.queue.running()};
    },
  };
}

} // namespace mts

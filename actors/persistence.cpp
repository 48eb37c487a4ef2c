#include "actors/persistence.hpp"

#include "persistence/packed_json.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <tuple>
#include <type_traits>

namespace mts {
namespace {

// Runs one store call; a store failure becomes a storage_failure error for the requester and
// a log line for the operator (store errors never carry request values).
template <class F>
auto guarded(const char* what, F&& f) -> caf::result<decltype(f())> {
  try {
    return f();
  } catch (const std::exception& e) {
    spdlog::error("storage: {} failed: {}", what, e.what());
    return make_error(app_errc::storage_failure, what);
  }
}

// A read that may find nothing: `missing` then; failures as in guarded.
template <class F>
auto guarded_find(const char* what, app_errc missing, F&& f)
    -> caf::result<typename std::decay_t<decltype(f())>::value_type> {
  try {
    auto found = f();
    if (!found)
      return make_error(missing);
    return std::move(*found);
  } catch (const std::exception& e) {
    spdlog::error("storage: {} failed: {}", what, e.what());
    return make_error(app_errc::storage_failure, what);
  }
}

using persistence_ptr = persistence_actor::stateful_pointer<persistence_state>;

std::int64_t microseconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t).count();
}

// Runs one write through the store, recording its start and result in the writer's health;
// a change of verdict is logged once (failing, and writable again).
template <class F>
auto recorded_write(writer_health& health, const char* what, F&& f) -> decltype(f()) {
  health.write_started(writer_health::clock::now());
  auto committed = [&] {
    if (health.write_ended(writer_health::clock::now(), true, ""))
      spdlog::info("storage: the database takes writes again ({} succeeded)", what);
  };
  try {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      committed();
    } else {
      auto result = f();
      committed();
      return result;
    }
  } catch (const std::exception& e) {
    if (health.write_ended(writer_health::clock::now(), false, e.what()))
      spdlog::error("storage: the database does not take writes ({}); service-status reports it until a write succeeds", e.what());
    throw;
  }
}

// A write answered to its requester: guarded, and recorded in the writer's health.
template <class F>
auto guarded_write(writer_health& health, const char* what, F&& f) -> caf::result<decltype(f())> {
  return guarded(what, [&] { return recorded_write(health, what, f); });
}

// Called after queueing a new test, a start or a result: the first one queued asks for the flush, which
// takes everything queued by the time it runs.
void request_flush(persistence_ptr self) {
  auto& st = self->state;
  if (st.inserts.size() + st.starts.size() + st.finishes.size() == 1)
    self->send(self, flush_atom::value);
}

// A test's scheduling keys; the request is taken by value so a caller done with it moves it.
queued_test queue_key(test_id id, test_request r) {
  return {id, r.immediate, std::move(r.meter_type), std::move(r.remote_address)};
}

// Tells the queue sink of tests just committed, before anyone is answered (persistence.hpp).
template <class KeyOf>
void tell_sink(persistence_ptr self, std::size_t count, KeyOf&& key_of) {
  auto& sink = self->state.sink;
  if (!sink || count == 0)
    return;
  std::vector<queued_test> keys;
  keys.reserve(count);
  for (std::size_t i = 0; i < count; ++i)
    keys.push_back(key_of(i));
  self->send(sink, queued_atom::value, std::move(keys));
}

// Writes every waiting new test, start and result in one transaction and answers them.
void flush(persistence_ptr self) {
  auto& st = self->state;
  auto inserts = std::move(st.inserts);
  auto starts = std::move(st.starts);
  auto finishes = std::move(st.finishes);
  st.inserts.clear();
  st.starts.clear();
  st.finishes.clear();
  if (inserts.empty() && starts.empty() && finishes.empty())
    return;
  std::vector<test_id> inserted;
  std::vector<bool> started, finished;
  std::vector<test_record> records(starts.size());
  try {
    recorded_write(*st.health, "writing test starts and results", [&] {
      st.db->in_one_transaction([&] {
        for (const auto& n : inserts)
          inserted.push_back(st.db->insert_test(n.request, n.received));
        for (std::size_t i = 0; i < starts.size(); ++i) {
          const auto& s = starts[i];
          started.push_back(st.db->mark_running(s.id, s.at));
          if (started.back() && s.with_record) {
            auto rec = st.db->find_test(s.id); // the row just written, inside the transaction
            if (!rec)
              throw store_error("start test: the test vanished inside its transaction");
            records[i] = std::move(*rec);
          }
        }
        for (const auto& f : finishes)
          finished.push_back(st.db->complete_test(f.outcome));
      });
    });
  } catch (const std::exception& e) {
    spdlog::error("storage: writing {} new test(s), {} test start(s) and {} result(s) failed: {}", inserts.size(),
                  starts.size(), finishes.size(), e.what());
    for (auto& n : inserts)
      n.promise.deliver(make_error(app_errc::storage_failure, "insert test"));
    for (auto& s : starts) {
      if (s.with_record)
        s.record.deliver(make_error(app_errc::storage_failure, "mark test running"));
      else
        s.promise.deliver(make_error(app_errc::storage_failure, "mark test running"));
    }
    for (auto& f : finishes)
      f.promise.deliver(make_error(app_errc::storage_failure, "complete test"));
    return;
  }
  ++st.group_commits;
  tell_sink(self, inserts.size(),
            [&](std::size_t i) { return queue_key(inserted[i], std::move(inserts[i].request)); });
  for (std::size_t i = 0; i < inserts.size(); ++i)
    inserts[i].promise.deliver(test_id{inserted[i]});
  for (std::size_t i = 0; i < starts.size(); ++i) {
    if (starts[i].with_record)
      starts[i].record.deliver(started_test{started[i], std::move(records[i])});
    else
      starts[i].promise.deliver(bool{started[i]});
  }
  for (std::size_t i = 0; i < finishes.size(); ++i)
    finishes[i].promise.deliver(bool{finished[i]});
}

} // namespace

persistence_actor::behavior_type persistence(persistence_actor::stateful_pointer<persistence_state> self,
                                             std::shared_ptr<store> db, std::shared_ptr<writer_health> health) {
  self->state.db = std::move(db);
  self->state.health = std::move(health);
  store* st = self->state.db.get(); // owned by the state, which outlives the behavior
  writer_health* wh = self->state.health.get();
  self->set_down_handler([self](caf::down_msg& dm) {
    if (self->state.sink && dm.source == self->state.sink.address()) {
      const bool shutdown = dm.reason == caf::exit_reason::user_shutdown;
      spdlog::log(shutdown ? spdlog::level::debug : spdlog::level::err,
                  "storage: the scheduler stopped ({}); new tests are refused", to_string(dm.reason));
      self->state.sink_down = true;
    }
  });
  return {
    [self](insert_atom, test_request& req, unix_seconds received) -> caf::result<test_id> {
      if (self->state.sink_down)
        return caf::make_error(caf::sec::request_receiver_down);
      auto rp = self->make_response_promise<test_id>();
      self->state.inserts.push_back({std::move(req), received, rp});
      request_flush(self);
      return rp;
    },
    [self, st, wh](insert_atom, const std::vector<test_request>& reqs,
                   unix_seconds received) -> caf::result<batch_inserted> {
      if (self->state.sink_down)
        return caf::make_error(caf::sec::request_receiver_down);
      flush(self); // the tests submitted before this batch get the lower ids
      return guarded_write(*wh, "insert batch", [&] {
        batch_inserted inserted;
        std::tie(inserted.batch, inserted.tests) = st->insert_batch(reqs, received);
        const auto& ids = inserted.tests;
        tell_sink(self, ids.size(), [&](std::size_t i) { return queue_key(ids[i], reqs[i]); });
        return inserted;
      });
    },
    [st, wh](delete_atom, test_id id) -> caf::result<bool> {
      return guarded_write(*wh, "delete test", [&] { return st->delete_pending_test(id); });
    },
    [st](exists_atom, test_id id) -> caf::result<bool> {
      return guarded("find test", [&] { return st->test_exists(id); });
    },
    [st, wh](cancel_atom, batch_id id, bool delete_completed) -> caf::result<batch_cancel_result> {
      return guarded_write(*wh, "cancel batch", [&] { return st->cancel_batch(id, delete_completed); });
    },
    [self](start_atom, test_id id, unix_seconds at) -> caf::result<bool> {
      auto rp = self->make_response_promise<bool>();
      self->state.starts.push_back({id, at, rp, {}, false});
      request_flush(self);
      return rp;
    },
    [self](start_atom, get_atom, test_id id, unix_seconds at) -> caf::result<started_test> {
      auto rp = self->make_response_promise<started_test>();
      self->state.starts.push_back({id, at, {}, rp, true});
      request_flush(self);
      return rp;
    },
    [self](finish_atom, test_outcome& outcome) -> caf::result<bool> {
      // Only the packed forms wait for the group commit (the test actor packed them; a
      // scheduler-made outcome has no readings): 13 kB a test instead of 160 kB of text.
      packed_json::pack_outcome(outcome);
      outcome.readings_json = std::string();
      outcome.transcript_json = std::string();
      auto rp = self->make_response_promise<bool>();
      self->state.finishes.push_back({std::move(outcome), rp});
      request_flush(self);
      return rp;
    },
    [self](flush_atom) { flush(self); },
    [st, wh](recover_atom) -> caf::result<std::vector<test_record>> {
      return guarded_write(*wh, "recover queue", [&] { return st->recover_queue(); });
    },
    [self, st, wh](recover_atom, keys_atom, queue_sink_actor& sink) -> caf::result<std::vector<queued_test>> {
      auto recovered = guarded_write(*wh, "recover queue", [&] { return st->recover_queue_keys(); });
      if (sink)
        self->monitor(sink);
      self->state.sink = std::move(sink); // every later commit's new tests go to it
      return recovered;
    },
    [st, wh](touch_atom, std::int64_t token, unix_seconds at) {
      try {
        recorded_write(*wh, "recording token use", [&] { st->touch_token(token, at); });
      } catch (const std::exception& e) {
        spdlog::warn("storage: recording token use failed: {}", e.what());
      }
    },
    [st, wh](convert_atom, const std::vector<packed_row>& rows, test_id converted_to)
        -> caf::result<conversion_progress> {
      return guarded_write(*wh, "store converted rows", [&] { return st->store_packed(rows, converted_to); });
    },
    [st, wh](purge_atom, const purge_step& step) -> caf::result<purge_step_result> {
      return guarded_write(*wh, "purge", [&] {
        const auto started = std::chrono::steady_clock::now();
        auto result = st->purge(step);
        result.duration_us = microseconds_since(started);
        return result;
      });
    },
    [st, wh](vacuum_atom, std::int64_t pages) -> caf::result<vacuum_step_result> {
      return guarded_write(*wh, "release free pages", [&] {
        const auto started = std::chrono::steady_clock::now();
        vacuum_step_result result{st->release_free_pages(pages), 0};
        result.duration_us = microseconds_since(started);
        return result;
      });
    },
    [st](space_atom) -> caf::result<storage_space> {
      return guarded("read the database size", [&] { return st->space(); });
    },
    [st, wh](health_atom) {
      try {
        recorded_write(*wh, "probe write", [&] { st->probe_write(now_utc()); });
      } catch (const std::exception& e) {
        spdlog::debug("storage: probe write failed: {}", e.what());
      }
    },
  };
}

reader_actor::behavior_type reader(reader_actor::stateful_pointer<reader_state> self,
                                   std::shared_ptr<store> db) {
  self->state.db = std::move(db);
  return {
    [self](get_atom, batch_atom, batch_id id) -> caf::result<std::vector<test_record>> {
      return guarded_find("batch status", app_errc::unknown_batch, [&] { return self->state.db->batch_tests(id); });
    },
    [self](search_atom, const search_query& q) -> caf::result<search_page> {
      return guarded("search", [&] { return self->state.db->search(q); });
    },
  };
}

} // namespace mts

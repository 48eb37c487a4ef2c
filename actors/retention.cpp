#include "actors/retention.hpp"

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace mts {
namespace {

using self_ptr = retention_actor::stateful_pointer<retention_state>;

constexpr auto storage_timeout = std::chrono::seconds(30);

std::string megabytes(std::int64_t bytes) {
  return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
}

std::int64_t& deleted(retention_state& st, purge_kind kind) {
  return st.deleted[static_cast<std::size_t>(kind)];
}

const char* kind_name(purge_kind kind) {
  static const char* const names[] = {"completed tests", "transcripts", "empty batches"}; // purge_kind's order
  return names[static_cast<std::size_t>(kind)];
}

void next_step(self_ptr self);

// The pass is over (completely, or cut short by a failure): record, log, and arm the next one.
void end_pass(self_ptr self, const std::optional<storage_space>& space, const std::string& failure) {
  auto& st = self->state;
  const auto now = st.config.clock();
  const auto tests = deleted(st, purge_kind::completed_tests);
  const auto transcripts = deleted(st, purge_kind::transcripts);
  const auto batches = deleted(st, purge_kind::empty_batches);
  if (st.stats) {
    if (space)
      st.stats->record_space(*space);
    st.stats->record_pass(tests, transcripts, batches, now);
  }
  const bool first = st.passes++ == 0;
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - st.started).count();
  std::string size = "database size unknown";
  if (space)
    size = fmt::format("database {} ({} free{}), WAL {}", megabytes(space->bytes()), megabytes(space->free_bytes()),
                       st.released_pages > 0 ? ", " + megabytes(st.released_pages * space->page_size) + " given back"
                                             : std::string(),
                       megabytes(space->wal_bytes));
  const auto level = failure.empty() && (tests || transcripts || batches || st.released_pages || first)
                       ? spdlog::level::info
                       : spdlog::level::debug;
  auto older = [](std::int64_t count, const char* what, std::int64_t days, const char* key) {
    return days > 0 ? fmt::format("{} {} older than {} days", count, what, days)
                    : fmt::format("no {} (storage.{} = 0)", what, key);
  };
  spdlog::log(level, "storage: purge pass{}: deleted {}, {} empty batches, {}; {} steps (longest {:.1f} ms, {:.1f} s in all); {}",
              failure.empty() ? "" : " stopped",
              older(tests, "completed tests", st.config.retain_completed_days, "retain_completed_days"), batches,
              older(transcripts, "transcripts", st.config.retain_transcripts_days, "retain_transcripts_days"),
              st.steps, static_cast<double>(st.longest_step_us) / 1000.0, seconds, size);
  if (space && !space->incremental_vacuum && first && space->free_pages * 4 > space->pages)
    spdlog::info("storage: {} of the database are free pages, which new results reuse; this database was created "
                 "before version 5 and cannot give them back while the server runs (docs/operations.md, "
                 "\"Storage\", to compact it once)",
                 megabytes(space->free_bytes()));
  st.running = false;
  self->delayed_send(self, st.config.interval, tick_atom::value);
}

void fail(self_ptr self, const std::string& what, const caf::error& err) {
  spdlog::error("storage: purge pass stopped: {} failed: {}; the next pass in {} s", what, to_string(err),
                self->state.config.interval.count());
  end_pass(self, std::nullopt, what);
}

// Gives free pages back while more than a quarter of the file is free (on a database that can).
void release(self_ptr self, const storage_space& space) {
  auto& st = self->state;
  if (!space.incremental_vacuum || space.free_pages == 0 ||
      (st.released_pages == 0 && space.free_pages * 4 <= space.pages)) {
    end_pass(self, space, "");
    return;
  }
  const auto before = space.free_pages;
  self->request(st.persistence, storage_timeout, vacuum_atom::value, st.config.vacuum_step_pages)
    .then(
      [self, before](vacuum_step_result& r) {
        auto& st = self->state;
        st.released_pages += before - r.space.free_pages;
        ++st.steps;
        st.longest_step_us = std::max(st.longest_step_us, r.duration_us);
        spdlog::debug("storage: gave {} free pages back in {:.1f} ms", before - r.space.free_pages,
                      static_cast<double>(r.duration_us) / 1000.0);
        if (r.space.free_pages >= before) // nothing moved: stop rather than loop
          end_pass(self, r.space, "");
        else
          release(self, r.space);
      },
      [self](caf::error& err) { fail(self, "giving free pages back", err); });
}

void measure(self_ptr self) {
  self->request(self->state.persistence, storage_timeout, space_atom::value)
    .then([self](storage_space& space) { release(self, space); },
          [self](caf::error& err) { fail(self, "reading the database size", err); });
}

void next_step(self_ptr self) {
  auto& st = self->state;
  if (st.phase == st.phases.size()) {
    measure(self);
    return;
  }
  self->request(st.persistence, storage_timeout, purge_atom::value, st.phases[st.phase])
    .then(
      [self](purge_step_result& r) {
        auto& st = self->state;
        auto& step = st.phases[st.phase];
        deleted(st, step.kind) += r.deleted;
        ++st.steps;
        st.longest_step_us = std::max(st.longest_step_us, r.duration_us);
        spdlog::debug("storage: purge step: {} {} deleted after id {} in {:.1f} ms", r.deleted, kind_name(step.kind),
                      step.after, static_cast<double>(r.duration_us) / 1000.0);
        if (r.done)
          ++st.phase;
        else
          step.after = r.next_after;
        next_step(self);
      },
      [self](caf::error& err) { fail(self, "a purge step", err); });
}

void start_pass(self_ptr self) {
  auto& st = self->state;
  if (st.running)
    return;
  st.running = true;
  st.phases.clear();
  st.phase = 0;
  st.deleted = {};
  st.steps = 0;
  st.longest_step_us = 0;
  st.released_pages = 0;
  st.started = std::chrono::steady_clock::now();
  const auto now = st.config.clock();
  const auto step_rows = std::max<std::int64_t>(1, st.config.step_rows);
  // Tests first: their transcripts go with them, so the transcript phase sees only the rest.
  if (st.config.retain_completed_days > 0) {
    const auto cutoff = now - st.config.retain_completed_days * seconds_per_day;
    st.phases.push_back(purge_step{purge_kind::completed_tests, cutoff, 0, step_rows});
    st.phases.push_back(purge_step{purge_kind::empty_batches, cutoff, 0, step_rows});
  }
  if (st.config.retain_transcripts_days > 0)
    st.phases.push_back(
      purge_step{purge_kind::transcripts, now - st.config.retain_transcripts_days * seconds_per_day, 0, step_rows});
  next_step(self);
}

} // namespace

retention_actor::behavior_type retention(retention_actor::stateful_pointer<retention_state> self,
                                         retention_config config, persistence_actor persistence,
                                         std::shared_ptr<storage_stats> stats) {
  self->state.config = std::move(config);
  self->state.persistence = std::move(persistence);
  self->state.stats = std::move(stats);
  self->send(self, tick_atom::value); // the first pass at start-up
  return {
    [self](tick_atom) { start_pass(self); },
    [self](reload_atom, const std::shared_ptr<const retention_config>& next) {
      auto clock = self->state.config.clock; // the clock stays
      self->state.config = *next;
      self->state.config.clock = std::move(clock);
    },
  };
}

} // namespace mts

#include "actors/converter.hpp"

#include "persistence/packed_json.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

namespace mts {
namespace {

using self_ptr = converter_actor::stateful_pointer<converter_state>;
using steady = std::chrono::steady_clock;

constexpr auto storage_timeout = std::chrono::seconds(30);

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

void retry_later(self_ptr self, const std::string& what) {
  spdlog::warn("storage: converting stored results to the compact encoding: {}; trying again in {} s", what,
               self->state.config.retry_delay.count());
  self->delayed_send(self, self->state.config.retry_delay, convert_atom::value);
}

void record(self_ptr self) {
  if (self->state.stats)
    self->state.stats->record_conversion(self->state.progress);
}

// The conversion is complete: the space the text took is now free pages; say how much, and
// what becomes of it, then quit.
void finish(self_ptr self) {
  self->request(self->state.persistence, storage_timeout, space_atom::value)
    .then(
      [self](storage_space& space) {
        if (self->state.stats)
          self->state.stats->record_space(space);
        spdlog::info("storage: database {:.1f} MB, of which {:.1f} MB free pages that new results reuse{}",
                     static_cast<double>(space.bytes()) / 1e6, static_cast<double>(space.free_bytes()) / 1e6,
                     space.incremental_vacuum ? ""
                                              : "; this database cannot give them back to the file system while "
                                                "the server runs (docs/operations.md, \"Storage\", to compact it once)");
        self->quit();
      },
      [self](caf::error&) { self->quit(); });
}

// Reads the progress the first time; false when there is nothing (left) to convert.
bool load(self_ptr self) {
  auto& st = self->state;
  if (st.loaded)
    return true;
  st.progress = st.db->conversion();
  st.loaded = true;
  record(self);
  if (st.progress.complete())
    return false;
  st.first = st.progress.converted_to;
  st.started = st.last_log = steady::now();
  spdlog::info("storage: converting the results stored before the compact encoding, tests {} to {}, in the "
               "background; answers are the same meanwhile",
               st.progress.converted_to + 1, st.progress.last_test_id);
  return true;
}

void step(self_ptr self) {
  auto& st = self->state;
  std::vector<packed_row> rows;
  test_id end = 0;
  try {
    if (!load(self)) {
      self->quit();
      return;
    }
    auto chunk = st.db->text_rows(st.progress.converted_to, st.progress.last_test_id, st.config.step_rows,
                                  st.config.step_bytes);
    end = chunk.end;
    rows.reserve(chunk.rows.size());
    for (auto& r : chunk.rows) {
      packed_row p;
      p.id = r.id;
      if (r.readings_json)
        p.readings = packed_json::pack(*r.readings_json);
      if (r.transcript_json)
        p.transcript = packed_json::pack(*r.transcript_json);
      rows.push_back(std::move(p));
    }
  } catch (const std::exception& e) {
    retry_later(self, std::string("reading failed: ") + e.what());
    return;
  }
  const auto packed = rows.size();
  const auto sent = steady::now();
  self->request(st.persistence, storage_timeout, convert_atom::value, std::move(rows), end)
    .then(
      [self, end, packed, sent](conversion_progress& progress) {
        auto& st = self->state;
        spdlog::debug("storage: conversion step: {} rows up to test {} stored in {:.1f} ms (round trip to the writer)",
                      packed, end, seconds_since(sent) * 1000.0);
        st.progress = progress;
        ++st.steps;
        record(self);
        if (progress.complete()) {
          spdlog::info("storage: conversion to the compact encoding complete (tests {} to {}, {} steps, {:.1f} s)",
                       st.first + 1, end, st.steps, seconds_since(st.started));
          finish(self);
          return;
        }
        if (steady::now() - st.last_log >= st.config.log_every) {
          st.last_log = steady::now();
          spdlog::info("storage: conversion to the compact encoding at test {} of {}", progress.converted_to,
                       progress.last_test_id);
        }
        self->send(self, convert_atom::value);
      },
      [self](caf::error& err) { retry_later(self, "storing a step failed: " + to_string(err)); });
}

} // namespace

converter_actor::behavior_type converter(converter_actor::stateful_pointer<converter_state> self,
                                         std::shared_ptr<store> db, persistence_actor persistence,
                                         std::shared_ptr<storage_stats> stats, converter_config config) {
  auto& st = self->state;
  st.db = std::move(db);
  st.persistence = std::move(persistence);
  st.stats = std::move(stats);
  st.config = config;
  self->send(self, convert_atom::value);
  return {
    [self](convert_atom) { step(self); },
  };
}

} // namespace mts

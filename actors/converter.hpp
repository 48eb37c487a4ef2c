#pragma once
// The CONVERTER actor: converts the readings and transcripts that were stored as text before
// the compact encoding (schema version 5, persistence/packed_json.hpp) to the packed form, in
// the background, one chunk at a time, and quits when none is left. A database created by
// version 5 or later has nothing to convert; the actor then quits at once.
//
// - A step reads the next chunk of tests (storage.maintenance_step_rows of them, or fewer when
//   their text passes step_bytes: an old 10-day result frees ~35 pages of text when it is
//   rewritten, ten times a purged row's) on the actor's own read-only connection, packs their
//   texts on its own thread, and sends the packed rows to the PERSISTENCE actor, which stores
//   them with the progress in one short transaction. The writer is held only for that write;
//   requests that reached it meanwhile go first.
// - Crash-safe: a step and its progress are one transaction, so a conversion interrupted at any
//   point goes on after the next start from its last step; readers take either form at every
//   moment, so API answers are the same before, during and after.
// - A failed step (the database locked or full, ...) is logged and tried again after
//   retry_delay.
// - It blocks on SQLite and on compressing, so the server spawns it detached.
#include "actors/interfaces.hpp"
#include "actors/storage_stats.hpp"
#include "persistence/store.hpp"

#include <chrono>
#include <memory>

namespace mts {

struct converter_config {
  std::int64_t step_rows = 100;          // tests per step, at most
  std::int64_t step_bytes = 4 << 20;     // text per step, at most (a 10-day result is ~142 kB)
  std::chrono::seconds retry_delay{60};  // after a failed step
  std::chrono::seconds log_every{60};    // progress lines while it runs
};

struct converter_state {
  static inline const char* name = "converter";
  std::shared_ptr<store> db; // read-only
  persistence_actor persistence;
  std::shared_ptr<storage_stats> stats;
  converter_config config;
  bool loaded = false; // progress read from the database
  conversion_progress progress;
  test_id first = 0; // converted_to when this run began
  std::int64_t steps = 0;
  std::chrono::steady_clock::time_point started, last_log;
};

// `db` is a read-only store of its own; progress goes to `stats` (may be null).
converter_actor::behavior_type converter(converter_actor::stateful_pointer<converter_state> self,
                                         std::shared_ptr<store> db, persistence_actor persistence,
                                         std::shared_ptr<storage_stats> stats, converter_config config);

} // namespace mts

#pragma once
// The RETENTION actor: deletes what the retention settings no longer keep, in the background,
// in small transactions through the PERSISTENCE actor, and keeps the storage figures
// (actors/storage_stats.hpp) that service-status shows.
//
// A pass, at start-up and then every `interval`:
// 1. transcripts of tests completed more than retain_transcripts_days ago (0: none);
// 2. completed tests completed more than retain_completed_days ago (0: none), their transcripts
//    with them; PENDING and RUNNING tests are never deleted;
// 3. batches received before that cutoff that have no test left;
// 4. when more than a quarter of the database's pages are free (after a large purge, or a
//    shortened retention), and the database was created with auto_vacuum INCREMENTAL, those
//    pages are given back to the file system; otherwise new results reuse them, and the file
//    keeps its size;
// 5. the database's size is measured, recorded and logged with what the pass deleted.
// Each step is one message to the persistence actor and one transaction of at most `step_rows`
// rows (or `vacuum_step_pages` pages); the next step is asked only after the answer, so other
// writes (results, new tests) that reached the writer meanwhile go first, and the writer is
// never held for more than one step. Cutoffs are computed from the injected wall clock once per
// pass. A failed step ends the pass (logged); the next pass comes after the interval.
#include "actors/interfaces.hpp"
#include "actors/storage_stats.hpp"

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace mts {

struct retention_config {
  std::int64_t retain_completed_days = 400; // 0: keep completed tests forever
  std::int64_t retain_transcripts_days = 30; // 0: keep transcripts as long as their tests
  std::chrono::seconds interval{3600};
  std::int64_t step_rows = 100;
  std::int64_t vacuum_step_pages = 128;
  // The wall clock (UTC); injected so tests can pin it.
  std::function<unix_seconds()> clock;
};

struct retention_state {
  static inline const char* name = "retention";
  retention_config config;
  persistence_actor persistence;
  std::shared_ptr<storage_stats> stats;
  std::uint64_t passes = 0; // passes ended (for tests)

  // The pass in progress.
  bool running = false;
  std::vector<purge_step> phases; // what the pass deletes, in order
  std::size_t phase = 0;
  std::array<std::int64_t, 3> deleted{}; // by purge_kind
  std::int64_t steps = 0;
  std::int64_t longest_step_us = 0;
  std::int64_t released_pages = 0;
  std::chrono::steady_clock::time_point started;
};

retention_actor::behavior_type retention(retention_actor::stateful_pointer<retention_state> self,
                                         retention_config config, persistence_actor persistence,
                                         std::shared_ptr<storage_stats> stats);

} // namespace mts

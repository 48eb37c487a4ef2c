#pragma once
// The PERSISTENCE actor (single SQLite writer) and the READER actors (read-only queries).
// Both block on SQLite, so the server spawns them detached; tests spawn them on the
// deterministic scheduler.
#include "actors/interfaces.hpp"
#include "persistence/store.hpp"

#include <memory>

namespace mts {

struct persistence_state {
  static inline const char* name = "persistence";
  std::shared_ptr<store> db;
};

// Takes ownership of an opened read-write store.
persistence_actor::behavior_type persistence(persistence_actor::stateful_pointer<persistence_state> self,
                                             std::shared_ptr<store> db);

struct reader_state {
  static inline const char* name = "reader";
  std::shared_ptr<store> db;
};

// Takes ownership of an opened read-only store.
reader_actor::behavior_type reader(reader_actor::stateful_pointer<reader_state> self,
                                   std::shared_ptr<store> db);

} // namespace mts

#pragma once
// The PERSISTENCE actor (single SQLite writer) and the READER actors (read-only queries).
// Both block on SQLite, so the server spawns them detached; tests spawn them on the
// deterministic scheduler.
//
// Group commit: new tests (insert of one test_request), test starts (start) and results
// (finish) are not written one by one. Each request is kept with its response promise, and
// the first of a group sends the actor a flush
// message, which queues behind every request already in the mailbox; the flush writes all
// that are waiting in one transaction (store::in_one_transaction), then answers each as the
// single write would have. When a thousand tests end at once this is one commit (one fsync)
// instead of a thousand, and 64 clients submitting tests at once share one commit; a lone
// request waits only for that one extra message. A test's id is answered only after the
// commit that contains its row. Should the group's transaction fail, every request in it gets
// storage_failure (nothing of it was written). Other requests (batches, cancels, ...) are
// written at once, so a batch-cancel that arrives while a test's start waits in a group
// deletes the test (it is still pending) and the start then answers false, as for any test
// cancelled before it started. A batch first writes the group waiting before it, so test ids
// still follow the order in which the requests arrived.
//
// New tests come straight from the HTTP threads. Once the scheduler has recovered the queue
// (recover, keys, sink), every commit that stores new tests sends it one message with their
// keys, before any of them is answered. Whoever learns a test's id (to cancel it, say) can
// therefore only reach the scheduler after that message: CAF keeps a mailbox in the order
// messages were enqueued. Tests committed before the recovery are in its answer instead.
// Should the scheduler stop (its recovery failed), new tests are refused from then on, as
// they were when they went through it: stored, they would wait unseen until a restart.
#include "actors/interfaces.hpp"
#include "actors/writer_health.hpp"
#include "persistence/store.hpp"

#include <caf/typed_response_promise.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace mts {

struct persistence_state {
  static inline const char* name = "persistence";
  std::shared_ptr<store> db;
  std::shared_ptr<writer_health> health; // every write's start and result, for service-status

  // Waiting for the next group commit.
  struct pending_start {
    test_id id;
    unix_seconds at;
    caf::typed_response_promise<bool> promise;          // (start, id, at)
    caf::typed_response_promise<started_test> record;   // (start, get, id, at)
    bool with_record = false;
  };
  struct pending_finish {
    test_outcome outcome;
    caf::typed_response_promise<bool> promise;
  };
  struct pending_insert {
    test_request request;
    unix_seconds received;
    caf::typed_response_promise<test_id> promise;
  };
  std::vector<pending_insert> inserts;
  std::vector<pending_start> starts;
  std::vector<pending_finish> finishes;
  queue_sink_actor sink; // the scheduler, once it has recovered the queue; told of new tests
  bool sink_down = false; // the scheduler stopped: new tests are refused, as nothing would queue them
  std::uint64_t group_commits = 0; // transactions written by flushes (for tests)
};

// Takes ownership of an opened read-write store; records every write in `health`.
persistence_actor::behavior_type persistence(persistence_actor::stateful_pointer<persistence_state> self,
                                             std::shared_ptr<store> db, std::shared_ptr<writer_health> health);

struct reader_state {
  static inline const char* name = "reader";
  std::shared_ptr<store> db;
};

// Takes ownership of an opened read-only store.
reader_actor::behavior_type reader(reader_actor::stateful_pointer<reader_state> self,
                                   std::shared_ptr<store> db);

} // namespace mts

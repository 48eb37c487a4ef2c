#pragma once
// The SCHEDULER's queue: what it keeps in memory to decide what runs next, and nothing more.
//
// Every queued test is held as its id and its scheduling keys (immediate or overnight, its
// remote address, whether the executor can run it); the full record stays in the database
// and is read when the test is dispatched (the persistence actor's start reply carries it).
// Every operation costs O(log n) in the number of queued tests (amortised), never a scan:
//
// - Remote addresses are interned: one entry per distinct address, counting the queued and
//   running tests that use it, with whether a test to it is running ("busy") and whether it
//   is a TCP (host:port) address or a telephone number (needs a modem).
// - READY: four ordered maps id -> address, one per class (immediate, overnight) and kind
//   (TCP, modem). The next test of a class is the lowest id at the front of one of its two
//   maps whose kind has capacity; so TCP tests never wait behind modem tests that cannot get
//   a modem, and the other way round.
// - BLOCKED: per busy address, its tests ordered by (class, id). A test found at the front of
//   a ready map whose address is busy moves there (each test at most once per time it was
//   made ready), and a test submitted to a busy address goes there at once. When the address
//   frees, its first blocked test (immediate before overnight, then by id) goes back to ready;
//   the others stay blocked, as none of them may run before that one.
// - PARKED: tests the executor cannot run (can_run false, decided when queued: it depends only
//   on the meter type and the address, which a parked test keeps). They are counted and
//   cancellable, never started; a configuration reload asks again (unpark).
// - WAITING (a head with collectors, issue 16): tests that no node with room reaches now,
//   grouped by the set of nodes that reach them (a bit per node). When a node has room again
//   the first test of each group with that node's bit goes back to ready (each group in
//   (class, id) order, so order within a group is kept); a node joining or leaving changes
//   every group, so then they all go back (a cost of the number waiting, on a rare event).
//   With one node reaching everything (the single machine) no test ever waits here.
// - RUNNING: dispatched tests (being started, running, or being recorded) with their keys, so
//   a test whose start failed can go back into the queue.
//
// The same choice as scanning the whole queue in (class, id) order for the first startable
// test (tests/actors/scheduler_sequence_test.cpp holds it to that).
#include "common/model.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

namespace mts {

class scheduler_queue {
public:
  // Queues a test (ignored if the id is already queued or running). runnable=false parks it,
  // keeping its meter type and address so that unpark() can ask again.
  void add(test_id id, bool immediate, const std::string& remote_address, bool runnable,
           const std::string& meter_type = {});
  // Asks again for every parked test (a reload may have added a meter type or modems) and
  // queues those `runnable` now accepts, in their order. Costs the number of parked tests;
  // returns how many were queued.
  std::size_t unpark(const std::function<bool(test_id id, bool immediate, const std::string& meter_type,
                                              const std::string& remote_address)>& runnable);
  // Room for this many distinct addresses (recovery, before adding them).
  void reserve(std::size_t addresses) { addresses_.reserve(addresses); }
  // Removes a queued test (cancelled); false if it is not queued (running or unknown).
  bool remove(test_id id);

  bool is_queued(test_id id) const;
  bool is_running(test_id id) const;

  struct dispatched {
    test_id id;
    bool tcp; // false: a telephone number, which needs a modem
    const std::string* address; // valid while the test is running or queued
  };
  // Takes the next test to start, if any: immediate tests first, then (overnight_open)
  // overnight ones, each class in id order, skipping tests whose address is busy, TCP tests
  // unless tcp_free, modem tests unless modem_free. The test is then running.
  std::optional<dispatched> next(bool tcp_free, bool modem_free, bool overnight_open);
  // A running test ended (or was never started): its address frees. Returns whether it had a
  // TCP address; nothing if it was not running.
  std::optional<bool> finish(test_id id);
  // A running test could not be started (storage failed): it frees its address and goes back
  // into the queue with its keys. Returns whether it had a TCP address.
  std::optional<bool> requeue(test_id id);
  // The test just taken by next() has no node with room that reaches it: it frees its address
  // and waits, queued, with the set of nodes that reach it (reach_mask, a bit per node; 0:
  // none does) until wake() or wake_all().
  void wait(test_id id, std::uint64_t reach_mask);
  // A node has room again: the first waiting test of each group it reaches goes back to ready.
  void wake(std::uint64_t node_bit);
  // The nodes changed: every waiting test goes back to ready. Returns how many.
  std::size_t wake_all();
  std::int64_t waiting() const { return static_cast<std::int64_t>(waiting_index_.size()); }

  std::int64_t queued_immediate() const { return queued_[0]; }
  std::int64_t queued_overnight() const { return queued_[1]; }
  std::int64_t running() const { return static_cast<std::int64_t>(running_.size()); }
  std::int64_t tcp_running() const { return tcp_running_; }
  bool empty() const { return queued_[0] + queued_[1] == 0; }

private:
  struct address_info {
    std::int32_t refs = 0; // queued (not parked) and running tests with this address
    bool busy = false;     // a test to it is running
    bool tcp = false;
  };
  using address_table = std::unordered_map<std::string, address_info>;
  using address_ref = address_table::value_type*; // nodes are stable across rehashing
  using ready_map = std::map<test_id, address_ref>;
  // Blocked tests of one address by (overnight, id): immediate ones first.
  using blocked_set = std::set<std::pair<bool, test_id>>;
  struct running_entry {
    address_ref address;
    bool overnight;
  };

  address_ref intern(const std::string& address);
  void unref(address_ref a);
  ready_map& ready_of(bool overnight, address_ref a) { return ready_[overnight][a->second.tcp ? 0 : 1]; }
  void make_ready(test_id id, bool overnight, address_ref a);
  void block(test_id id, bool overnight, address_ref a);
  // The address is free: its first blocked test becomes ready.
  void unblock_first(address_ref a);
  std::optional<bool> release(test_id id, bool requeue);

  address_table addresses_;
  ready_map ready_[2][2];                   // [overnight][modem]
  std::map<address_ref, blocked_set> blocked_;
  std::unordered_map<test_id, std::pair<bool, address_ref>> blocked_index_; // id -> (overnight, address)
  struct parked_entry {
    std::string meter_type;
    std::string remote_address;
  };
  std::map<test_id, parked_entry> parked_[2]; // [overnight]
  struct waiting_entry {
    bool overnight;
    address_ref address;
    std::uint64_t mask;
  };
  void unwait(test_id id, const waiting_entry& w); // back to ready (or blocked)
  std::map<std::uint64_t, blocked_set> waiting_; // reach mask -> tests by (overnight, id)
  std::unordered_map<test_id, waiting_entry> waiting_index_;
  std::unordered_map<test_id, running_entry> running_;
  std::int64_t queued_[2] = {0, 0};         // [overnight], parked and blocked included
  std::int64_t tcp_running_ = 0;
  test_id max_id_ = 0; // the highest id ever added
};

} // namespace mts

#pragma once
// The modem pool: which modem carries which test's call, and which modems are out of service.
//
// Decisions:
// - The pool is the SCHEDULER's state, changed by nothing else: the scheduler decides inside
//   its dispatch loop whether a phone-number test can start, and a TEST actor that needs a
//   modem (its first dial-up attempt, or another after a fault) asks the scheduler by message
//   (modem_broker_actor in actors/interfaces.hpp). Before, the pool was a monitor object that
//   the test actors changed too, so a test taking a replacement modem could race the
//   scheduler's check-then-acquire at dispatch. The scheduler alone owning it is also what lets
//   test actors run elsewhere (collectors) later.
// - The scheduler acquires a modem when it dispatches a phone-number test (no free in-service
//   modem: the test stays queued) and releases it when the test's outcome is recorded, so a
//   test keeps its modem across retries and there are never more calls than modems.
// - A modem fault (the AT dialogue's modem_fault, or the modem's link cannot be opened) takes
//   the modem out of service for the cool-down and frees it; the test then acquires another
//   one for its next attempt. Once the cool-down has passed the modem is back in service
//   (noticed on the next use of the pool; the scheduler ticks at next_return()).
// - Modems are handed out in the configured order (the first free one in service).
// - A collector's modems (issue 16) join the pool when it joins, tagged with its node, after
//   the head's own; a test runs on one node and gets modems of that node only. They leave
//   when the node is lost (a call on them is that node's, and ends with it). A reload changes
//   only the head's own modems.
// - service-status reads a modem_board, the copy the pool publishes after every change, so the
//   HTTP threads never wait on the scheduler.
#include "common/model.hpp"
#include "config/settings.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mts {

struct modem_status {
  std::string name;
  std::string collector; // the collector node it hangs off; empty: the head's own
  std::string state; // "free", "busy" or "out of service"
  std::optional<test_id> test;       // busy: the test it carries
  std::string reason;                // out of service: why
  std::optional<unix_seconds> until; // out of service: until when
};

// The pool's state as last published, for readers on other threads (service-status).
class modem_board {
public:
  void publish(std::vector<modem_status> modems);
  // The modems as published, a cool-down that has passed by `now` shown as over ("free").
  std::vector<modem_status> read(unix_seconds now) const;

private:
  mutable std::mutex mutex_;
  std::vector<modem_status> modems_;
};

// Not thread-safe: one owner (the scheduler).
class modem_pool {
public:
  using clock_fn = std::function<unix_seconds()>;
  // clock empty: the system clock (UTC). board: where every change is published (may be null).
  modem_pool(std::vector<modem_settings> modems, std::chrono::seconds cooldown, clock_fn clock = {},
             std::shared_ptr<modem_board> board = {});

  bool empty() const { return modems_.empty(); }

  // Node 0 is the head itself; a collector's node number is its join's.
  static constexpr std::uint64_t head_node = 0;
  // A collector joined (its name, for the board and the logs) / was lost.
  void add_node(std::uint64_t node, const std::string& name, std::vector<modem_settings> modems);
  void remove_node(std::uint64_t node);
  // How many modems the node has (in service or not).
  std::size_t count(std::uint64_t node) const;

  // Whether a modem is free and in service now (on any node / on that node).
  bool available();
  bool available(std::uint64_t node);
  // A free in-service modem of the node for the test; the one it already holds if any;
  // nothing if none.
  std::optional<modem_settings> acquire(test_id test, std::uint64_t node = head_node);
  std::optional<modem_settings> held_by(test_id test) const;
  void release(test_id test);
  // The test's modem failed: out of service for the cool-down (and freed).
  void fault(test_id test, const std::string& reason);
  // A configuration reload: the modems and the cool-down from now on. A modem that is not in a
  // call takes its new settings at once (a changed one is back in service); one in a call
  // keeps its settings until the call's test releases it, and a removed one carrying a call
  // leaves the pool then. New modems join in configuration order. Answers what it did, one
  // line per modem, for the log.
  std::vector<std::string> reconfigure(std::vector<modem_settings> modems, std::chrono::seconds cooldown);

  // When the next out-of-service modem comes back; nothing if none is out.
  std::optional<unix_seconds> next_return();

  std::vector<modem_status> status();

private:
  struct entry {
    modem_settings settings;
    std::optional<test_id> holder;
    std::optional<unix_seconds> out_until;
    std::string reason;
    std::optional<modem_settings> pending; // reload: taken when the call ends
    bool retiring = false;                 // reload: removed when the call ends
    std::uint64_t node = head_node;
    std::string node_name; // a collector's
  };
  bool free(const entry& e) const { return !e.holder && !e.out_until && !e.retiring; }
  void refresh(unix_seconds now); // brings back modems whose cool-down has passed
  void call_ended(std::size_t index); // the holder let go: apply what a reload left pending
  std::vector<modem_status> snapshot() const;
  void publish(); // to the board, if any

  std::vector<entry> modems_;
  std::chrono::seconds cooldown_;
  clock_fn clock_;
  std::shared_ptr<modem_board> board_;
};

} // namespace mts

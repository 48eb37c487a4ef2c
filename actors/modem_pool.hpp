#pragma once
// The modem pool: which modem carries which test's call, and which modems are out of service.
//
// Decisions:
// - A small monitor object (a mutex inside) shared by the SCHEDULER, the TEST actors and the
//   HTTP layer, not an actor: the scheduler must decide synchronously, inside its dispatch
//   loop, whether a phone-number test can start, and a test actor must swap a faulty modem
//   for another without a round trip. Every method is short and never blocks on I/O.
// - The scheduler acquires a modem when it dispatches a phone-number test (no free in-service
//   modem: the test stays queued) and releases it when the test's outcome is recorded, so a
//   test keeps its modem across retries and there are never more calls than modems.
// - A modem fault (the AT dialogue's modem_fault, or the modem's link cannot be opened) takes
//   the modem out of service for the cool-down and frees it; the test then acquires another
//   one for its next attempt. Once the cool-down has passed the modem is back in service
//   (noticed on the next use of the pool; the scheduler ticks at next_return()).
// - Modems are handed out in the configured order (the first free one in service).
#include "common/model.hpp"
#include "config/settings.hpp"

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mts {

class modem_pool {
public:
  using clock_fn = std::function<unix_seconds()>;
  // clock empty: the system clock (UTC).
  modem_pool(std::vector<modem_settings> modems, std::chrono::seconds cooldown, clock_fn clock = {});

  bool empty() const {
    std::lock_guard<std::mutex> lock(m_);
    return modems_.empty();
  }

  // Whether a modem is free and in service now.
  bool available();
  // A free in-service modem for the test; the one it already holds if any; nothing if none.
  std::optional<modem_settings> acquire(test_id test);
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

  struct modem_status {
    std::string name;
    std::string state; // "free", "busy" or "out of service"
    std::optional<test_id> test;          // busy: the test it carries
    std::string reason;                   // out of service: why
    std::optional<unix_seconds> until;    // out of service: until when
  };
  std::vector<modem_status> status();

private:
  struct entry {
    modem_settings settings;
    std::optional<test_id> holder;
    std::optional<unix_seconds> out_until;
    std::string reason;
    std::optional<modem_settings> pending; // reload: taken when the call ends
    bool retiring = false;                 // reload: removed when the call ends
  };
  void refresh(unix_seconds now); // brings back modems whose cool-down has passed
  void call_ended(std::size_t index); // the holder let go: apply what a reload left pending

  std::vector<entry> modems_;
  std::chrono::seconds cooldown_;
  clock_fn clock_;
  mutable std::mutex m_;
};

} // namespace mts

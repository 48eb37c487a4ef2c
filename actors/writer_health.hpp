#pragma once
// Whether the database writer can commit: what service-status reports (docs/operations.md,
// "What service-status checks"). The PERSISTENCE actor records every write it starts and how
// each ended; the HTTP front end reads the verdict without waiting on any actor, so a busy or
// stuck writer, or saturated readers, can never make service-status itself hang.
#include <chrono>
#include <mutex>
#include <optional>
#include <string>

namespace mts {

class writer_health {
public:
  using clock = std::chrono::steady_clock;

  struct verdict {
    bool ok = true;
    std::string reason; // why not OK; empty when OK
  };

  // A write transaction begins / ended (ok, or failed with the store's error text).
  void write_started(clock::time_point now);
  // Returns true when this result changes the verdict (for one log line per change).
  bool write_ended(clock::time_point now, bool ok, const std::string& error);

  // Not OK while the last write failed, or while a write has run for longer than `stall`.
  verdict check(clock::time_point now, clock::duration stall) const;
  // When the writer last finished a write (ok or not); nullopt before the first.
  std::optional<clock::time_point> last_result() const;

private:
  mutable std::mutex mutex_;
  std::optional<clock::time_point> busy_since_;
  std::optional<clock::time_point> last_result_;
  bool failing_ = false;
  std::string error_;
};

} // namespace mts

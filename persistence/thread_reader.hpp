#pragma once
// One read-only connection per thread, opened on the thread's first use. SQLite connections are
// not shared between threads; the HTTP worker threads use theirs for the token check and for
// the point lookups (test-status, test-transcript), which so run without a hop to an actor and
// back. Each object has its own connections: keyed by a serial number that is never reused, so
// a new object never inherits a connection of one that is gone.
#include "persistence/store.hpp"

#include <atomic>
#include <cstdint>
#include <string>

namespace mts {

class thread_reader {
public:
  thread_reader(std::string db_path, std::int64_t busy_timeout_ms);
  thread_reader(const thread_reader&) = delete;
  thread_reader& operator=(const thread_reader&) = delete;

  // The calling thread's connection (throws store_error if it cannot be opened).
  store& local();

private:
  std::string db_path_;
  std::int64_t busy_timeout_ms_;
  std::uint64_t serial_;
  static std::atomic<std::uint64_t> next_serial_;
};

} // namespace mts

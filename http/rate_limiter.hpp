#pragma once
// Fixed-window rate limiting (spec "Rate limiting"): at most `requests` calls per window of
// `window_seconds` per key (a token id, or the client IP for calls without a valid token).
// Windows are aligned to multiples of the window length; a rejected call counts too, so a
// client hammering the server stays limited.
#include "common/time.hpp"

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace mts {

class rate_limiter {
public:
  rate_limiter(std::int64_t requests, std::int64_t window_seconds);

  struct decision {
    bool allowed = true;
    std::int64_t retry_after = 0; // whole seconds until the window resets, >= 1 when refused
  };
  decision hit(const std::string& key, unix_seconds now);
  // New limits from the next call on (a configuration reload); counts of the current windows
  // are kept, so a lower limit applies at once.
  void configure(std::int64_t requests, std::int64_t window_seconds);

private:
  struct window {
    unix_seconds start = 0;
    std::int64_t count = 0;
  };
  std::int64_t requests_;
  std::int64_t window_seconds_;
  std::mutex mutex_;
  std::unordered_map<std::string, window> windows_;
  unix_seconds last_sweep_ = 0;
};

} // namespace mts

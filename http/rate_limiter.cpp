#include "http/rate_limiter.hpp"

namespace mts {

rate_limiter::rate_limiter(std::int64_t requests, std::int64_t window_seconds)
  : requests_(requests), window_seconds_(window_seconds) {}

void rate_limiter::configure(std::int64_t requests, std::int64_t window_seconds) {
  std::lock_guard<std::mutex> guard(mutex_);
  requests_ = requests;
  window_seconds_ = window_seconds;
}

rate_limiter::decision rate_limiter::hit(const std::string& key, unix_seconds now) {
  std::lock_guard<std::mutex> guard(mutex_);
  const unix_seconds start = now - (now % window_seconds_ + window_seconds_) % window_seconds_;
  // Drop counters of past windows once per window, so the map holds only current clients.
  if (start != last_sweep_) {
    for (auto it = windows_.begin(); it != windows_.end();)
      it = it->second.start < start ? windows_.erase(it) : std::next(it);
    last_sweep_ = start;
  }
  auto& w = windows_[key];
  if (w.start != start) {
    w.start = start;
    w.count = 0;
  }
  ++w.count;
  if (w.count <= requests_)
    return {true, 0};
  auto retry = start + window_seconds_ - now;
  return {false, retry < 1 ? 1 : retry};
}

} // namespace mts

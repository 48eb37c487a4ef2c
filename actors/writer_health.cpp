#include "actors/writer_health.hpp"

namespace mts {

void writer_health::write_started(clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  busy_since_ = now;
}

bool writer_health::write_ended(clock::time_point now, bool ok, const std::string& error) {
  std::lock_guard<std::mutex> lock(mutex_);
  busy_since_.reset();
  last_result_ = now;
  bool changed = failing_ == ok;
  failing_ = !ok;
  error_ = ok ? std::string() : error;
  return changed;
}

writer_health::verdict writer_health::check(clock::time_point now, clock::duration stall) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (busy_since_ && now - *busy_since_ > stall)
    return {false, "a database write has not finished for " +
                     std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *busy_since_).count()) +
                     " s"};
  if (failing_)
    return {false, "the last database write failed: " + error_};
  return {};
}

std::optional<writer_health::clock::time_point> writer_health::last_result() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_result_;
}

} // namespace mts

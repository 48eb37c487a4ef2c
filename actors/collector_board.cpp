#include "actors/collector_board.hpp"

namespace mts {

void collector_board::publish(std::vector<collector_status> collectors) {
  std::lock_guard<std::mutex> lock(mutex_);
  collectors_ = std::move(collectors);
}

void collector_board::set_usage(const std::string& name, std::int64_t tests_running,
                                std::int64_t tcp_sessions_in_use) {
  std::lock_guard<std::mutex> lock(mutex_);
  usage_[name] = {tests_running, tcp_sessions_in_use};
}

void collector_board::clear_usage(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  usage_.erase(name);
}

std::vector<collector_status> collector_board::read() const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto out = collectors_;
  for (auto& c : out) {
    auto it = usage_.find(c.name);
    if (c.connected && it != usage_.end()) {
      c.tests_running = it->second.first;
      c.tcp_sessions_in_use = it->second.second;
    }
  }
  return out;
}

} // namespace mts

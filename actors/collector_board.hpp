#pragma once
// The collectors of a head as service-status shows them (issue 16): the registrar publishes
// who is joined, the scheduler what each one runs. HTTP threads read it without waiting on
// either actor.
#include "common/model.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mts {

struct collector_status {
  std::string name;
  bool connected = false;
  std::optional<unix_seconds> since; // connected: when it joined; otherwise when it left
  std::int64_t tcp_sessions = 0;     // what it offered when it last joined
  std::vector<std::string> modems;
  std::string reason; // not connected: why it left or was last refused
  // What the scheduler has given it (connected only).
  std::int64_t tests_running = 0;
  std::int64_t tcp_sessions_in_use = 0;
};

// The collectors as the registrar last published them, for readers on other threads.
class collector_board {
public:
  // The registrar: the collectors accepted, joined or not.
  void publish(std::vector<collector_status> collectors);
  // The scheduler: what a joined collector runs now (cleared when it is lost).
  void set_usage(const std::string& name, std::int64_t tests_running, std::int64_t tcp_sessions_in_use);
  void clear_usage(const std::string& name);
  std::vector<collector_status> read() const;

private:
  mutable std::mutex mutex_;
  std::vector<collector_status> collectors_;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> usage_; // name -> (tests, TCP sessions)
};

} // namespace mts

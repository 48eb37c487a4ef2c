#include "actors/modem_pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mts {

modem_pool::modem_pool(std::vector<modem_settings> modems, std::chrono::seconds cooldown, clock_fn clock)
    : cooldown_(cooldown), clock_(clock ? std::move(clock) : clock_fn(now_utc)) {
  for (auto& m : modems)
    modems_.push_back(entry{std::move(m), std::nullopt, std::nullopt, {}});
}

void modem_pool::refresh(unix_seconds now) {
  for (auto& e : modems_) {
    if (e.out_until && now >= *e.out_until) {
      e.out_until.reset();
      e.reason.clear();
      spdlog::info("modem {}: back in service", e.settings.name);
    }
  }
}

bool modem_pool::available() {
  std::lock_guard<std::mutex> lock(m_);
  refresh(clock_());
  return std::any_of(modems_.begin(), modems_.end(), [](const entry& e) { return !e.holder && !e.out_until; });
}

std::optional<modem_settings> modem_pool::acquire(test_id test) {
  std::lock_guard<std::mutex> lock(m_);
  refresh(clock_());
  for (auto& e : modems_)
    if (e.holder == test)
      return e.settings;
  for (auto& e : modems_) {
    if (!e.holder && !e.out_until) {
      e.holder = test;
      return e.settings;
    }
  }
  return std::nullopt;
}

std::optional<modem_settings> modem_pool::held_by(test_id test) const {
  std::lock_guard<std::mutex> lock(m_);
  for (const auto& e : modems_)
    if (e.holder == test)
      return e.settings;
  return std::nullopt;
}

void modem_pool::release(test_id test) {
  std::lock_guard<std::mutex> lock(m_);
  for (auto& e : modems_)
    if (e.holder == test)
      e.holder.reset();
}

void modem_pool::fault(test_id test, const std::string& reason) {
  std::lock_guard<std::mutex> lock(m_);
  const auto now = clock_();
  for (auto& e : modems_) {
    if (e.holder != test)
      continue;
    e.holder.reset();
    e.out_until = now + cooldown_.count();
    e.reason = reason;
    spdlog::warn("modem {}: out of service for {} s: {} (test {})", e.settings.name, cooldown_.count(), reason, test);
  }
}

std::optional<unix_seconds> modem_pool::next_return() {
  std::lock_guard<std::mutex> lock(m_);
  refresh(clock_());
  std::optional<unix_seconds> next;
  for (const auto& e : modems_)
    if (e.out_until && (!next || *e.out_until < *next))
      next = e.out_until;
  return next;
}

std::vector<modem_pool::modem_status> modem_pool::status() {
  std::lock_guard<std::mutex> lock(m_);
  refresh(clock_());
  std::vector<modem_status> out;
  for (const auto& e : modems_) {
    modem_status s;
    s.name = e.settings.name;
    if (e.out_until) {
      s.state = "out of service";
      s.reason = e.reason;
      s.until = e.out_until;
    } else if (e.holder) {
      s.state = "busy";
      s.test = e.holder;
    } else {
      s.state = "free";
    }
    out.push_back(std::move(s));
  }
  return out;
}

} // namespace mts

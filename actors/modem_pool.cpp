#include "actors/modem_pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mts {

void modem_board::publish(std::vector<modem_status> modems) {
  std::lock_guard<std::mutex> lock(mutex_);
  modems_ = std::move(modems);
}

std::vector<modem_status> modem_board::read(unix_seconds now) const {
  std::vector<modem_status> out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out = modems_;
  }
  for (auto& m : out) {
    if (m.until && now >= *m.until) { // the pool notices on its next use
      m.state = "free";
      m.reason.clear();
      m.until.reset();
    }
  }
  return out;
}

modem_pool::modem_pool(std::vector<modem_settings> modems, std::chrono::seconds cooldown, clock_fn clock,
                       std::shared_ptr<modem_board> board)
    : cooldown_(cooldown), clock_(clock ? std::move(clock) : clock_fn(now_utc)), board_(std::move(board)) {
  for (auto& m : modems)
    modems_.push_back(entry{std::move(m), std::nullopt, std::nullopt, {}, std::nullopt, false, head_node, {}});
  publish();
}

void modem_pool::publish() {
  if (board_)
    board_->publish(snapshot());
}

void modem_pool::refresh(unix_seconds now) {
  bool changed = false;
  for (auto& e : modems_) {
    if (e.out_until && now >= *e.out_until) {
      e.out_until.reset();
      e.reason.clear();
      changed = true;
      spdlog::info("modem {}: back in service", e.settings.name);
    }
  }
  if (changed)
    publish();
}

void modem_pool::call_ended(std::size_t index) {
  auto& e = modems_[index];
  e.holder.reset();
  if (e.pending) {
    e.settings = std::move(*e.pending);
    e.pending.reset();
    spdlog::info("modem {}: the reloaded settings apply now that its call ended", e.settings.name);
  }
  if (e.retiring) {
    spdlog::info("modem {}: removed from the pool now that its call ended", e.settings.name);
    modems_.erase(modems_.begin() + static_cast<std::ptrdiff_t>(index));
  }
}

std::vector<std::string> modem_pool::reconfigure(std::vector<modem_settings> modems, std::chrono::seconds cooldown) {
  std::vector<std::string> notes;
  std::vector<entry> next;
  // The collectors' modems are theirs: set aside, and put back after the head's own.
  std::vector<entry> remote;
  for (auto it = modems_.begin(); it != modems_.end();) {
    if (it->node == head_node) {
      ++it;
      continue;
    }
    remote.push_back(std::move(*it));
    it = modems_.erase(it);
  }
  std::vector<bool> kept(modems_.size(), false);
  for (auto& m : modems) {
    auto it = std::find_if(modems_.begin(), modems_.end(), [&](const entry& e) { return e.settings.name == m.name; });
    if (it == modems_.end()) {
      notes.push_back("modem " + m.name + ": added");
      next.push_back(entry{std::move(m), std::nullopt, std::nullopt, {}, std::nullopt, false, head_node, {}});
      continue;
    }
    kept[static_cast<std::size_t>(it - modems_.begin())] = true;
    entry e = *it;
    e.retiring = false;
    e.pending.reset();
    if (e.settings != m) {
      if (e.holder) {
        notes.push_back("modem " + m.name + ": changed; applies when its call (test " + std::to_string(*e.holder) +
                        ") ends");
        e.pending = std::move(m);
      } else {
        notes.push_back("modem " + m.name + ": changed" + (e.out_until ? " and back in service" : ""));
        e.settings = std::move(m);
        e.out_until.reset();
        e.reason.clear();
      }
    }
    next.push_back(std::move(e));
  }
  for (std::size_t i = 0; i < modems_.size(); ++i) {
    if (kept[i])
      continue;
    if (modems_[i].holder) {
      notes.push_back("modem " + modems_[i].settings.name + ": removed when its call (test " +
                      std::to_string(*modems_[i].holder) + ") ends");
      next.push_back(modems_[i]);
      next.back().retiring = true;
    } else {
      notes.push_back("modem " + modems_[i].settings.name + ": removed");
    }
  }
  modems_ = std::move(next);
  for (auto& e : remote)
    modems_.push_back(std::move(e));
  cooldown_ = cooldown;
  publish();
  return notes;
}

void modem_pool::add_node(std::uint64_t node, const std::string& name, std::vector<modem_settings> modems) {
  for (auto& m : modems) {
    modems_.push_back(entry{std::move(m), std::nullopt, std::nullopt, {}, std::nullopt, false, head_node, {}});
    modems_.back().node = node;
    modems_.back().node_name = name;
  }
  publish();
}

void modem_pool::remove_node(std::uint64_t node) {
  const auto before = modems_.size();
  modems_.erase(std::remove_if(modems_.begin(), modems_.end(), [node](const entry& e) { return e.node == node; }),
                modems_.end());
  if (modems_.size() != before)
    publish();
}

std::size_t modem_pool::count(std::uint64_t node) const {
  return static_cast<std::size_t>(
    std::count_if(modems_.begin(), modems_.end(), [node](const entry& e) { return e.node == node; }));
}

bool modem_pool::available() {
  refresh(clock_());
  return std::any_of(modems_.begin(), modems_.end(), [this](const entry& e) { return free(e); });
}

bool modem_pool::available(std::uint64_t node) {
  refresh(clock_());
  return std::any_of(modems_.begin(), modems_.end(), [&](const entry& e) { return e.node == node && free(e); });
}

std::optional<modem_settings> modem_pool::acquire(test_id test, std::uint64_t node) {
  refresh(clock_());
  for (auto& e : modems_)
    if (e.holder == test)
      return e.settings;
  for (auto& e : modems_) {
    if (e.node == node && free(e)) {
      e.holder = test;
      publish();
      return e.settings;
    }
  }
  return std::nullopt;
}

std::optional<modem_settings> modem_pool::held_by(test_id test) const {
  for (const auto& e : modems_)
    if (e.holder == test)
      return e.settings;
  return std::nullopt;
}

void modem_pool::release(test_id test) {
  bool changed = false;
  for (std::size_t i = modems_.size(); i-- > 0;) {
    if (modems_[i].holder == test) {
      call_ended(i);
      changed = true;
    }
  }
  if (changed)
    publish();
}

void modem_pool::fault(test_id test, const std::string& reason) {
  const auto now = clock_();
  for (std::size_t i = modems_.size(); i-- > 0;) {
    auto& e = modems_[i];
    if (e.holder != test)
      continue;
    e.out_until = now + cooldown_.count();
    e.reason = reason;
    spdlog::warn("modem {}: out of service for {} s: {} (test {})", e.settings.name, cooldown_.count(), reason, test);
    call_ended(i);
    publish();
  }
}

std::optional<unix_seconds> modem_pool::next_return() {
  refresh(clock_());
  std::optional<unix_seconds> next;
  for (const auto& e : modems_)
    if (e.out_until && (!next || *e.out_until < *next))
      next = e.out_until;
  return next;
}

std::vector<modem_status> modem_pool::status() {
  refresh(clock_());
  return snapshot();
}

std::vector<modem_status> modem_pool::snapshot() const {
  std::vector<modem_status> out;
  for (const auto& e : modems_) {
    modem_status s;
    s.name = e.settings.name;
    s.collector = e.node_name;
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

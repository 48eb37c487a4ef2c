#include "actors/scheduler_queue.hpp"

#include "common/tcp_address.hpp"

#include <algorithm>

namespace mts {

scheduler_queue::address_ref scheduler_queue::intern(const std::string& address) {
  auto [it, fresh] = addresses_.try_emplace(address);
  if (fresh)
    it->second.tcp = parse_tcp_address(address).has_value();
  it->second.refs += 1;
  return &*it;
}

void scheduler_queue::unref(address_ref a) {
  if (--a->second.refs == 0)
    addresses_.erase(a->first);
}

void scheduler_queue::make_ready(test_id id, bool overnight, address_ref a) {
  auto& q = ready_of(overnight, a);
  q.emplace_hint(q.end(), id, a); // constant time for the newest test, logarithmic otherwise
}

void scheduler_queue::block(test_id id, bool overnight, address_ref a) {
  blocked_[a].emplace(overnight, id);
  blocked_index_.emplace(id, std::make_pair(overnight, a));
}

void scheduler_queue::unblock_first(address_ref a) {
  auto it = blocked_.find(a);
  if (it == blocked_.end())
    return;
  auto [overnight, id] = *it->second.begin();
  it->second.erase(it->second.begin());
  if (it->second.empty())
    blocked_.erase(it);
  blocked_index_.erase(id);
  make_ready(id, overnight, a);
}

bool scheduler_queue::is_queued(test_id id) const {
  for (const auto& by_kind : ready_)
    for (const auto& q : by_kind)
      if (q.count(id))
        return true;
  return blocked_index_.count(id) || waiting_index_.count(id) || parked_[0].count(id) || parked_[1].count(id);
}

bool scheduler_queue::is_running(test_id id) const { return running_.count(id) != 0; }

void scheduler_queue::add(test_id id, bool immediate, const std::string& remote_address, bool runnable,
                          const std::string& meter_type) {
  // Ids only grow, so an id above every one seen cannot be queued yet (recovery of a million
  // tests skips seven lookups each).
  if (id <= max_id_ && (is_running(id) || is_queued(id)))
    return;
  max_id_ = std::max(max_id_, id);
  const bool overnight = !immediate;
  queued_[overnight] += 1;
  if (!runnable) {
    parked_[overnight].emplace(id, parked_entry{meter_type, remote_address});
    return;
  }
  auto a = intern(remote_address);
  if (a->second.busy)
    block(id, overnight, a);
  else
    make_ready(id, overnight, a);
}

std::size_t scheduler_queue::unpark(
    const std::function<bool(test_id, bool, const std::string&, const std::string&)>& runnable) {
  std::size_t count = 0;
  for (bool overnight : {false, true}) {
    auto& parked = parked_[overnight];
    for (auto it = parked.begin(); it != parked.end();) {
      if (!runnable(it->first, !overnight, it->second.meter_type, it->second.remote_address)) {
        ++it;
        continue;
      }
      auto a = intern(it->second.remote_address);
      if (a->second.busy)
        block(it->first, overnight, a);
      else
        make_ready(it->first, overnight, a);
      it = parked.erase(it);
      ++count;
    }
  }
  return count;
}

bool scheduler_queue::remove(test_id id) {
  for (bool overnight : {false, true}) {
    if (parked_[overnight].erase(id)) {
      queued_[overnight] -= 1;
      return true;
    }
    for (auto& q : ready_[overnight]) {
      auto it = q.find(id);
      if (it == q.end())
        continue;
      auto a = it->second;
      q.erase(it);
      queued_[overnight] -= 1;
      // It may have been the one test of its free address taken out of the blocked ones.
      if (!a->second.busy)
        unblock_first(a);
      unref(a);
      return true;
    }
  }
  if (auto w = waiting_index_.find(id); w != waiting_index_.end()) {
    auto [overnight, a, mask] = w->second;
    auto group = waiting_.find(mask);
    group->second.erase({overnight, id});
    if (group->second.empty())
      waiting_.erase(group);
    waiting_index_.erase(w);
    queued_[overnight] -= 1;
    unref(a);
    return true;
  }
  auto it = blocked_index_.find(id);
  if (it == blocked_index_.end())
    return false;
  auto [overnight, a] = it->second;
  blocked_index_.erase(it);
  auto b = blocked_.find(a);
  b->second.erase({overnight, id});
  if (b->second.empty())
    blocked_.erase(b);
  queued_[overnight] -= 1;
  unref(a);
  return true;
}

std::optional<scheduler_queue::dispatched> scheduler_queue::next(bool tcp_free, bool modem_free,
                                                                 bool overnight_open) {
  for (bool overnight : {false, true}) {
    if (overnight && !overnight_open)
      break;
    ready_map* best = nullptr;
    for (int kind : {0, 1}) {
      if (!(kind == 0 ? tcp_free : modem_free))
        continue;
      auto& q = ready_[overnight][kind];
      // Tests whose address is busy wait in the blocked set until it frees.
      while (!q.empty() && q.begin()->second->second.busy) {
        auto node = q.extract(q.begin());
        block(node.key(), overnight, node.mapped());
      }
      if (!q.empty() && (!best || q.begin()->first < best->begin()->first))
        best = &q;
    }
    if (!best)
      continue;
    auto node = best->extract(best->begin());
    auto a = node.mapped();
    a->second.busy = true;
    if (a->second.tcp)
      tcp_running_ += 1;
    queued_[overnight] -= 1;
    running_.emplace(node.key(), running_entry{a, overnight});
    return dispatched{node.key(), a->second.tcp, &a->first};
  }
  return std::nullopt;
}

std::optional<bool> scheduler_queue::release(test_id id, bool requeue) {
  auto it = running_.find(id);
  if (it == running_.end())
    return std::nullopt;
  auto [a, overnight] = it->second;
  running_.erase(it);
  const bool tcp = a->second.tcp;
  if (tcp)
    tcp_running_ -= 1;
  a->second.busy = false;
  unblock_first(a);
  if (requeue) {
    queued_[overnight] += 1;
    make_ready(id, overnight, a); // keeps its reference to the address
  } else {
    unref(a); // after unblock_first: blocked tests hold references, so a is still there
  }
  return tcp;
}

std::optional<bool> scheduler_queue::finish(test_id id) { return release(id, false); }

std::optional<bool> scheduler_queue::requeue(test_id id) { return release(id, true); }

void scheduler_queue::wait(test_id id, std::uint64_t reach_mask) {
  auto it = running_.find(id);
  if (it == running_.end())
    return;
  auto [a, overnight] = it->second;
  running_.erase(it);
  if (a->second.tcp)
    tcp_running_ -= 1;
  a->second.busy = false;
  queued_[overnight] += 1;
  waiting_[reach_mask].emplace(overnight, id);
  waiting_index_.emplace(id, waiting_entry{overnight, a, reach_mask}); // keeps its reference
  // A test to the same address blocked behind it may go to ready: it has the same reach, so it
  // waits here too once next() takes it.
  unblock_first(a);
}

void scheduler_queue::unwait(test_id id, const waiting_entry& w) {
  if (w.address->second.busy)
    block(id, w.overnight, w.address);
  else
    make_ready(id, w.overnight, w.address);
}

void scheduler_queue::wake(std::uint64_t node_bit) {
  for (auto group = waiting_.begin(); group != waiting_.end();) {
    if (!(group->first & node_bit)) {
      ++group;
      continue;
    }
    auto first = group->second.begin()->second;
    group->second.erase(group->second.begin());
    auto w = waiting_index_.find(first);
    auto entry = w->second;
    waiting_index_.erase(w);
    unwait(first, entry);
    group = group->second.empty() ? waiting_.erase(group) : std::next(group);
  }
}

std::size_t scheduler_queue::wake_all() {
  const auto count = waiting_index_.size();
  for (const auto& [id, w] : waiting_index_)
    unwait(id, w);
  waiting_.clear();
  waiting_index_.clear();
  return count;
}

} // namespace mts

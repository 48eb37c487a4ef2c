#include "actors/registrar.hpp"

#include "actors/cluster_node.hpp"
#include "http/tokens.hpp" // hash_token: SHA-256

#include <caf/all.hpp>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace mts {

namespace {

using self_ptr = registrar_actor::stateful_pointer<registrar_state>;

// A name from the wire, fit for a log line: printable ASCII, at most 64 characters.
std::string printable(const std::string& text) {
  std::string out;
  for (char c : text.substr(0, 64))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return text.size() > 64 ? out + "..." : out;
}

// Why a joined collector's executor went down, for an operator.
std::string describe_loss(const caf::error& reason) {
  if (reason == caf::exit_reason::remote_link_unreachable)
    return "its link was lost (process gone, network down, or silent past cluster.missed_heartbeats)";
  if (reason == caf::exit_reason::user_shutdown || reason == caf::exit_reason::normal)
    return "it shut down";
  return to_string(reason);
}

void publish(self_ptr self) {
  if (self->state.config.board)
    self->state.config.board->publish(self->state.collectors);
}

join_verdict refuse(self_ptr self, const collector_hello& hello, std::string reason) {
  spdlog::warn("cluster: collector \"{}\" refused: {}", printable(hello.name), reason);
  auto& list = self->state.collectors;
  auto it = std::find_if(list.begin(), list.end(), [&](const auto& c) { return c.name == hello.name; });
  if (it != list.end() && !it->connected) {
    it->reason = "refused: " + reason;
    publish(self);
  }
  return {false, std::move(reason)};
}

} // namespace

registrar_actor::behavior_type registrar(registrar_actor::stateful_pointer<registrar_state> self,
                                         registrar_config config) {
  auto& st = self->state;
  st.config = std::move(config);
  if (!st.config.clock)
    st.config.clock = now_utc;
  for (const auto& a : st.config.accepted) {
    collector_status c;
    c.name = a.name;
    c.reason = "never joined";
    st.collectors.push_back(std::move(c));
  }
  publish(self);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto it = st.joined.find(dm.source);
    if (it == st.joined.end())
      return;
    const auto name = it->second;
    st.joined.erase(it);
    for (auto& c : st.collectors) {
      if (c.name != name)
        continue;
      c.connected = false;
      c.since = st.config.clock();
      c.reason = "left: " + describe_loss(dm.reason);
    }
    spdlog::warn("cluster: collector {} left: {}", name, describe_loss(dm.reason));
    publish(self);
  });
  return {
    [self](join_atom, collector_hello& hello, executor_actor& executor) -> join_verdict {
      auto& st = self->state;
      auto accepted = std::find_if(st.config.accepted.begin(), st.config.accepted.end(),
                                   [&](const auto& a) { return a.name == hello.name; });
      if (accepted == st.config.accepted.end())
        return refuse(self, hello, "its name is not in cluster.collectors");
      if (hello.protocol_version != cluster_protocol_version)
        return refuse(self, hello,
                      "it speaks protocol version " + std::to_string(hello.protocol_version) + ", this head " +
                        std::to_string(cluster_protocol_version));
      const auto hash = hash_token(hello.secret);
      if (hash.size() != accepted->secret_sha256.size() ||
          CRYPTO_memcmp(hash.data(), accepted->secret_sha256.data(), hash.size()) != 0)
        return refuse(self, hello, "wrong secret");
      if (!executor)
        return refuse(self, hello, "it named no executor");
      std::string reach_error;
      auto reach = parse_reach(hello.reach_networks, hello.reach_prefixes, &reach_error);
      if (!reach)
        return refuse(self, hello, "its reach is not valid: " + printable(reach_error));
      // The same collector again (the same executor, so the same process: it took the head for
      // lost while the head still had its link, e.g. the head was frozen): it ended its tests
      // before joining again, and the scheduler hears of it as a new join.
      const auto joined = st.joined.find(executor.address());
      const bool again = joined != st.joined.end() && joined->second == hello.name;
      if (!again) {
        for (const auto& [addr, name] : st.joined)
          if (name == hello.name)
            return refuse(self, hello,
                          "a collector of that name is joined already (the head notices a lost one within "
                          "cluster.missed_heartbeats heartbeats)");
        self->monitor(executor);
        st.joined.emplace(executor.address(), hello.name);
      }
      auto& c = *std::find_if(st.collectors.begin(), st.collectors.end(),
                              [&](const auto& x) { return x.name == hello.name; });
      c.connected = true;
      c.since = st.config.clock();
      c.reason.clear();
      c.tcp_sessions = hello.tcp_sessions;
      c.modems.clear();
      for (const auto& m : hello.modems)
        c.modems.push_back(m.name);
      std::string modems;
      for (const auto& m : c.modems)
        modems += (modems.empty() ? "" : ", ") + printable(m);
      spdlog::info("cluster: collector {} joined{}: {} TCP sessions, {} modem(s){}{}", c.name,
                   again ? " again over the link it had (it took the head for lost; its tests run elsewhere)" : "",
                   c.tcp_sessions, c.modems.size(), modems.empty() ? "" : ": ", modems);
      publish(self);
      if (st.config.scheduler)
        self->send(st.config.scheduler, join_atom::value,
                   node_offer{c.name, hello.tcp_sessions, std::move(hello.modems), std::move(*reach)}, executor);
      return {true, {}};
    },
    [](ping_atom) { return true; },
  };
}

} // namespace mts

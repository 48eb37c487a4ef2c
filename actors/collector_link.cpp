#include "actors/collector_link.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace mts {
namespace {

using self_ptr = collector_link_actor::stateful_pointer<collector_link_state>;

std::string head_of(self_ptr self) {
  return self->state.config.head_host + ":" + std::to_string(self->state.config.head_port);
}

void try_again(self_ptr self) {
  auto& st = self->state;
  spdlog::info("collector {}: next try to reach the head in {} s", st.config.hello.name, st.pause.count());
  self->delayed_send(self, st.pause, tick_atom::value);
  st.pause = std::min(st.pause * 2, st.config.reconnect_max);
}

// The head is lost (its link closed, or it did not answer a ping): end the running tests
// first, then join again.
void head_lost(self_ptr self, const std::string& why) {
  auto& st = self->state;
  st.head = nullptr;
  spdlog::warn("collector {}: lost the head at {} ({}); ending its running tests, then joining again",
               st.config.hello.name, head_of(self), why);
  // Before anything else: the head gives those tests to another node.
  self->send(st.config.executor, close_atom::value);
  try_again(self);
}

// Whether the join numbered `join` is the current one (a ping of an earlier join is dropped).
bool still_joined(self_ptr self, std::uint64_t join) {
  return self->state.head && join == self->state.joins;
}

void join(self_ptr self, registrar_actor head) {
  auto& st = self->state;
  self->request(head, st.config.request_timeout, join_atom::value, st.config.hello, st.config.executor)
    .then(
      [self, head](join_verdict& verdict) {
        auto& st = self->state;
        if (!verdict.accepted) {
          spdlog::error("collector {}: the head at {} refused it: {}", st.config.hello.name, head_of(self),
                        verdict.reason);
          try_again(self);
          return;
        }
        st.head = head;
        st.pause = std::chrono::seconds(1);
        self->monitor(head);
        st.joins += 1;
        self->delayed_send(self, st.config.ping_interval, ping_atom::value, st.joins);
        spdlog::info("collector {}: joined the head at {}{}", st.config.hello.name, head_of(self),
                     st.joined_once ? " again" : "");
        st.joined_once = true;
      },
      [self](caf::error& err) {
        spdlog::warn("collector {}: no answer to its join from the head at {}: {}", self->state.config.hello.name,
                     head_of(self), to_string(err));
        try_again(self);
      });
}

void reach(self_ptr self) {
  auto& st = self->state;
  self->request(st.config.network, st.config.request_timeout, caf::connect_atom::value, st.config.head_host,
                st.config.head_port)
    .then(
      [self](const caf::node_id&, caf::strong_actor_ptr& published, const std::set<std::string>& interface) {
        if (!published || !self->system().assignable<registrar_actor>(interface)) {
          spdlog::error("collector {}: {} does not publish an MTS head's registrar (another service, or another "
                        "version of mts)",
                        self->state.config.hello.name, head_of(self));
          try_again(self);
          return;
        }
        join(self, caf::actor_cast<registrar_actor>(published));
      },
      [self](caf::error& err) {
        // CAF reports a TLS handshake the head refused like any failed connect.
        spdlog::warn("collector {}: cannot reach the head at {}: {} (is it up? the same cluster CA, this node's "
                     "certificate valid, the same protocol version?)",
                     self->state.config.hello.name, head_of(self), to_string(err));
        try_again(self);
      });
}

} // namespace

collector_link_actor::behavior_type collector_link(collector_link_actor::stateful_pointer<collector_link_state> self,
                                                   collector_link_config config) {
  self->state.config = std::move(config);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (!st.head || dm.source != st.head.address())
      return;
    head_lost(self, to_string(dm.reason));
  });
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      if (!self->state.head)
        reach(self);
    },
    [self](ping_atom, std::uint64_t join) {
      auto& st = self->state;
      if (!still_joined(self, join))
        return;
      self->request(st.head, st.config.ping_timeout, ping_atom::value)
        .then(
          [self, join](bool) {
            if (still_joined(self, join))
              self->delayed_send(self, self->state.config.ping_interval, ping_atom::value, join);
          },
          [self, join](caf::error& err) {
            if (still_joined(self, join))
              head_lost(self, "no answer to a ping within " +
                                std::to_string(self->state.config.ping_timeout.count()) + " ms: " + to_string(err));
          });
    },
  };
}

} // namespace mts

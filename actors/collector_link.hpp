#pragma once
// The COLLECTOR LINK actor, on a collector node: reaches the head and keeps it (issue 16).
//
// - Collectors dial out (they work from behind NAT and need no open port): the link connects to
//   the head's cluster port through CAF's TLS layer, checks that what is published there is a
//   registrar, and joins with the collector's name, secret, protocol version and offer.
// - Anything short of a join (the head unreachable, the TLS handshake refused, a refusal) is
//   logged with the reason, and tried again after a pause that doubles from 1 s up to
//   collector.reconnect_max_seconds.
// - Once joined it monitors the head's registrar, and pings it every heartbeat: CAF tells a
//   collector of a lost head only when the link closes, and a silent network (a cable pulled)
//   closes nothing for many minutes, while the head takes its tests elsewhere after
//   2 x cluster.heartbeat_seconds x cluster.missed_heartbeats. A ping unanswered within
//   heartbeat x missed_heartbeats counts as a lost head. When the head is lost it first tells
//   the executor to end every running test (their links close, a modem call is hung up), so a
//   meter is never dialled twice at once once the head gives those tests to another node, and
//   then joins again.
// Every request has a timeout: CAF fails no request in flight when a peer node goes down.
#include "actors/interfaces.hpp"

#include <caf/io/middleman_actor.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace mts {

struct collector_link_config {
  collector_hello hello;      // what it joins with
  std::string head_host;
  std::uint16_t head_port = 0;
  std::chrono::seconds reconnect_max{30};
  std::chrono::seconds request_timeout{10}; // connect, and the join's answer
  std::chrono::milliseconds ping_interval{2000}; // cluster.heartbeat_seconds
  std::chrono::milliseconds ping_timeout{6000};  // heartbeat x missed_heartbeats
  executor_actor executor;    // runs the head's tests; told to end them when the head is lost
  caf::io::middleman_actor network; // CAF's TLS layer (the OpenSSL manager's actor)
};

using collector_link_actor = caf::typed_actor<
  // Internal: try to reach the head now.
  caf::reacts_to<tick_atom>,
  // Internal: ping the head now (the join's number, so a ping of an earlier join is dropped).
  caf::reacts_to<ping_atom, std::uint64_t>>;

struct collector_link_state {
  static inline const char* name = "collector_link";
  collector_link_config config;
  registrar_actor head;            // valid while joined
  std::chrono::seconds pause{1};   // before the next try
  bool joined_once = false;
  std::uint64_t joins = 0; // joins so far: the current one's number
};

collector_link_actor::behavior_type collector_link(collector_link_actor::stateful_pointer<collector_link_state> self,
                                                   collector_link_config config);

} // namespace mts

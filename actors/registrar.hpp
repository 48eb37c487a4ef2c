#pragma once
// The REGISTRAR actor, on a head: collector nodes join the cluster through it (issue 16).
//
// - It is what the head publishes on cluster.port (CAF's network layer, mutual TLS on the
//   cluster's own CA: actors/cluster_node.hpp). A TLS peer is only known to hold some
//   certificate of that CA, so each collector is checked again here: its name must be one of
//   cluster.collectors, the SHA-256 of its secret must match (compared in constant time), its
//   protocol version must be this head's, and no live collector of that name may be joined.
// - An accepted collector is monitored: its link closing, its process dying (kill -9) or
//   freezing (no heartbeat for cluster.missed_heartbeats) ends it, with a log line. It joins
//   again by itself (it reconnects with back-off).
// - Every join, refusal and loss is logged at info or warning with the collector's name and the
//   reason; the secret never is. service-status reads the collector_board.
#include "actors/collector_board.hpp"
#include "actors/interfaces.hpp"
#include "config/settings.hpp"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mts {

struct registrar_config {
  std::vector<accepted_collector> accepted;
  std::shared_ptr<collector_board> board; // may be null
  node_registry_actor scheduler;          // told of each accepted collector; may be invalid
  std::function<unix_seconds()> clock;    // empty: the system clock
};

struct registrar_state {
  static inline const char* name = "registrar";
  registrar_config config;
  std::vector<collector_status> collectors; // one per accepted name, in configuration order
  std::map<caf::actor_addr, std::string> joined; // a joined collector's executor -> its name
};

registrar_actor::behavior_type registrar(registrar_actor::stateful_pointer<registrar_state> self,
                                         registrar_config config);

} // namespace mts

#pragma once
// What makes a process a node of a cluster of one head and collectors (issue 16): CAF's
// network layer with mutual TLS on the cluster's own CA, the protocol's identifier, the
// heartbeats that notice a frozen peer, and the wire types. Facts behind each setting:
// docs/architecture.md, "Collectors".
#include <caf/actor_system_config.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace mts {

// Raised whenever a message or its meaning changes; nodes of another version are refused.
constexpr std::int64_t cluster_protocol_version = 2; // 2: the hello says what the collector reaches
// CAF refuses, at its handshake, a peer whose application identifier differs.
std::string cluster_app_identifier();

struct cluster_tls_files {
  std::string ca_file;          // the cluster's CA (mts cluster ca)
  std::string certificate_file; // this node's (mts cluster node-cert)
  std::string key_file;
};

enum class cluster_role {
  head,      // accepts the collectors' connections
  collector, // dials the head
};

// Loads CAF's middleman and OpenSSL manager into cfg: mutual TLS with these files (setting
// them is what makes CAF demand and verify the peer's certificate; without them it would fall
// back to an anonymous suite), the app identifier, no automatic plaintext connections, the
// wire types, and heartbeats every `heartbeat`. The head also drops a peer silent for
// `timeout`; a collector does not, because CAF 0.17 kills a dialled connection whose
// handshake is slower than one heartbeat when it does (it still notices a lost head by the
// head's connection closing and by its own requests' timeouts).
void configure_cluster_node(caf::actor_system_config& cfg, const cluster_tls_files& files, cluster_role role,
                            std::chrono::seconds heartbeat, std::chrono::seconds timeout);

} // namespace mts

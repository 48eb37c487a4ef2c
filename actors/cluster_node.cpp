#include "actors/cluster_node.hpp"

#include "actors/wire_types.hpp"
#include "io/openssl_error_queue.hpp"

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/timespan.hpp>

#include <cstdlib>
#include <vector>

namespace mts {

std::string cluster_app_identifier() { return "mts.cluster.v" + std::to_string(cluster_protocol_version); }

void configure_cluster_node(caf::actor_system_config& cfg, const cluster_tls_files& files, cluster_role role,
                            std::chrono::seconds heartbeat, std::chrono::seconds timeout) {
  // CAF's TLS layer needs OpenSSL's error queue emptied before each call (io/openssl_error_queue.cpp).
  if (!io::openssl_error_queue_guard())
    std::abort();
  cfg.load<caf::io::middleman>();
  cfg.load<caf::openssl::manager>(); // after the middleman, which it needs
  cfg.openssl_cafile = files.ca_file;
  cfg.openssl_certificate = files.certificate_file;
  cfg.openssl_key = files.key_file;
  cfg.set("middleman.app-identifiers", std::vector<std::string>{cluster_app_identifier()});
  cfg.set("middleman.enable-automatic-connections", false); // it would open a plaintext port
  cfg.set("middleman.heartbeat-interval", caf::timespan{heartbeat});
  cfg.set("middleman.connection-timeout",
          caf::timespan{role == cluster_role::head ? std::chrono::nanoseconds(timeout) : std::chrono::nanoseconds(0)});
  add_wire_types(cfg);
}

} // namespace mts

#pragma once
// The edge: Debian's nginx in front of the server (docs/operations.md, "The edge").
//
//   client ──TLS──▶ nginx stream layer (edge.address:edge.port)
//                     per-address and total connection caps, counted from the first byte
//                   ──PROXY protocol, loopback──▶ nginx HTTP layer (127.0.0.1:edge.internal_port)
//                     TLS with the server's certificate and profile, header deadline, header
//                     size limits, body limit, request normalisation, JSON error bodies
//                   ──TLS, loopback, keep-alive──▶ mts (http.address:http.port)
//
// The configuration is generated from the server's own settings, so the two cannot disagree
// on the port, the certificate, the body limit, the prefix or the keep-alive figures.
#include "config/settings.hpp"

#include <atomic>
#include <cstdint>
#include <chrono>
#include <thread>
#include <functional>
#include <string>
#include <sys/types.h>

namespace mts {

struct edge_files {
  std::string dir;       // working directory of nginx: its configuration, pid, logs, temp files
  std::string cert_file; // the server's certificate and key
  std::string key_file;
  std::uint64_t open_files = 0; // the workers' descriptor ceiling (the hard limit); 0: unknown
};

// nginx.conf for these settings.
std::string render_edge_config(const settings& s, const edge_files& files);

// One nginx master process, started and stopped by `mts serve`. It dies with the server
// (PR_SET_PDEATHSIG), so a killed server never leaves an edge answering for it.
class edge_process {
public:
  // `on_unexpected_exit` runs (on the monitoring thread) when nginx exits without stop().
  edge_process(const settings& s, edge_files files, std::function<void(int wait_status)> on_unexpected_exit);
  ~edge_process(); // stops it if still running

  // Writes the configuration, starts nginx and waits (at most `timeout_seconds`) until the
  // edge accepts connections. Throws std::runtime_error naming nginx's exit status otherwise.
  void start(int timeout_seconds = 10);
  // Graceful stop (SIGQUIT: in-flight requests finish), then SIGTERM and SIGKILL after
  // `grace_seconds` each. Safe to call more than once and from any thread.
  void stop(int grace_seconds = 5);
  std::string config_path() const;

private:
  bool wait_exited(std::chrono::milliseconds timeout);

  settings settings_;
  edge_files files_;
  std::function<void(int)> on_unexpected_exit_;
  std::atomic<pid_t> pid_{-1};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> exited_{false};
  std::thread monitor_;
};

// A human-readable description of a wait status ("exit code 1", "signal 9").
std::string describe_wait_status(int status);

} // namespace mts

#pragma once
// The HTTPS front end: cpp-httplib's SSLServer, tuned and hardened (see docs/operations.md),
// routing the API methods to the actors. It owns no business state: a command becomes a typed
// request to the SCHEDULER, a search or a batch-status one to a READER, each with a finite
// timeout; the point lookups by test id (test-status, test-transcript) are read on the
// thread's own read-only connection, as the token is; meter-types is answered from the registry.
#include "actors/interfaces.hpp"
#include "actors/modem_pool.hpp"
#include "actors/registrar.hpp"
#include "actors/storage_stats.hpp"
#include "actors/writer_health.hpp"
#include "config/settings.hpp"
#include "common/client_address.hpp"
#include "http/rate_limiter.hpp"
#include "http/tokens.hpp"
#include "persistence/thread_reader.hpp"

#include <caf/actor_system.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace httplib {
class SSLServer;
struct Request;
struct Response;
} // namespace httplib

namespace mts {

struct api_dependencies {
  caf::actor_system* system = nullptr;
  scheduler_actor scheduler; // cancels
  std::vector<reader_actor> readers; // at least one: searches and batch-status
  token_verifier* tokens = nullptr;
  std::shared_ptr<thread_reader> reads; // the threads' own connections: test-status, test-transcript
  std::shared_ptr<const modem_board> modems; // the scheduler's pool as published; may be null: no "modems" in service-status
  persistence_actor persistence;      // stores new tests (test-request, batch-request); probed by service-status
  std::shared_ptr<writer_health> writer; // the writer's health, read by service-status
  std::shared_ptr<const meter_type_registry> types; // the meter types requests may name
  std::shared_ptr<storage_stats> storage; // the database's size and purges; may be null: no "storage" in service-status
  std::shared_ptr<const collector_board> collectors; // a head's collectors; null: no cluster, no "collectors"
};

// What a configuration reload changes in the HTTP layer while it runs; each call works with
// the values in force when it arrived.
struct api_live_settings {
  limits_settings limits;
  rate_limit_settings rate_limit;
  api_settings api;
  std::shared_ptr<const meter_type_registry> types;
};

class api_server {
public:
  // Loads the certificate and key (throws std::runtime_error naming the file if they do not
  // load) and configures TLS, timeouts, limits and routes. `trusted_proxies` are the
  // addresses whose X-Real-IP / X-Forwarded-For are believed.
  api_server(const settings& config, const std::string& cert_file, const std::string& key_file,
             api_dependencies deps, address_set trusted_proxies);
  // Without TLS and sockets: only respond() is of use (the fuzz harness of the request path).
  api_server(const settings& config, api_dependencies deps, address_set trusted_proxies);
  ~api_server();

  // Answers one parsed request as the server does between the library's parsing and its
  // writing: the framing checks, the routing, authentication, rate limit, validation, the
  // method, and the headers every answer carries. The request path without a socket.
  void respond(const httplib::Request& req, httplib::Response& res);

  // Binds http.address:http.port with SO_REUSEADDR only (a second server on the same port
  // fails here) and listens with http.listen_backlog. Throws std::runtime_error.
  void bind();
  // Serves until stop(); returns false if the server failed.
  bool run();
  // Thread-safe: the limits, rate limits, API behaviour and meter types of `config` and
  // `types` apply from the next call on (SIGHUP). Everything else of `config` is ignored.
  void reconfigure(const settings& config, std::shared_ptr<const meter_type_registry> types);
  // Thread-safe; makes run() return: requests in flight get two seconds to finish, then the
  // remaining (idle keep-alive) connections are shut down.
  void stop();

  struct call; // one API call on its way through a handler

private:
  void handle(const httplib::Request& req, httplib::Response& res);
  void test_request(call& c);
  void batch_request(call& c);
  void test_cancel(call& c);
  void batch_cancel(call& c);
  void test_status(call& c);
  void test_transcript(call& c);
  void batch_status(call& c);
  void test_search(call& c);
  void service_status(call& c);
  void meter_types(call& c);
  std::shared_ptr<const api_live_settings> live() const;
  const reader_actor& next_reader();
  // The address a request is rate-limited and logged under (http.trusted_proxies).
  std::string client_of(const httplib::Request& req) const;

  settings config_; // as started: only what a reload cannot change is read from it
  api_dependencies deps_;
  mutable std::mutex live_mutex_;
  std::shared_ptr<const api_live_settings> live_;
  rate_limiter limiter_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::atomic<int> listen_fd_{-1};
  std::atomic<bool> finished_{false};
  std::atomic<std::size_t> reader_cursor_{0};
  address_set trusted_proxies_;
  std::atomic<std::int64_t> last_probe_ms_{0}; // steady clock, when service-status last probed
};

} // namespace mts

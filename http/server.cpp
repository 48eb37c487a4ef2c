#include "http/server.hpp"

#include "http/codec.hpp"
#include "common/json.hpp"
#include "http/tls.hpp"
#include "http/validation.hpp"
#include "mts/version.hpp"

#include <caf/scoped_actor.hpp>
#include <httplib.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>

namespace mts {

namespace bj = boost::json;

namespace {

enum class method_kind { command, query, open };

struct route {
  const char* name;
  const char* verb;
  method_kind kind;
  void (api_server::*handler)(api_server::call&);
  bool reads_here = false; // reads the test on this thread's connection (test-status, test-transcript)
};

constexpr const char* json_type = "application/json; charset=utf-8";

void send_json(httplib::Response& res, int status, const bj::value& body) {
  res.status = status;
  res.set_content(json::serialize(body), json_type);
}

void send_error(httplib::Response& res, int status, std::vector<std::string> details) {
  send_json(res, status, error_body(details));
}

// What a library-generated error (no handler ran, or the request never parsed) means.
std::string library_error_text(int status) {
  switch (status) {
    case 400: return "malformed HTTP request";
    case 404: return "unknown URL";
    case 413: return "request body too large";
    case 414: return "request URI too long";
    case 416: return "range not satisfiable";
    case 500: return "internal server error";
    case 503: return "service unavailable";
    default: return "request failed";
  }
}

// Media type of a Content-Type value, lower-cased, parameters dropped.
std::string media_type(const std::string& content_type) {
  auto end = content_type.find(';');
  std::string type = content_type.substr(0, end);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
    type.pop_back();
  for (auto& ch : type)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return type;
}

// The path as it may appear in a log line: control characters and backslashes escaped, so a
// crafted URL cannot forge log lines; cut at 200 bytes.
std::string loggable_path(const std::string& path) {
  std::string out;
  for (unsigned char ch : path.substr(0, 200)) {
    if (ch < 0x20 || ch == 0x7f || ch == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  if (path.size() > 200)
    out += "...";
  return out;
}

std::int64_t count_header(const httplib::Request& req, const char* name) {
  return static_cast<std::int64_t>(req.get_header_value_count(name));
}

// The TLS connection this HTTP worker thread serves. The library runs a connection's
// handshake and all of its requests on one pool thread and does not expose the connection to
// handlers, so the handshake callback notes it here. Only read by handlers on the same thread,
// always after their own connection's handshake.
thread_local const SSL* connection_tls = nullptr;

void note_connection(const SSL* ssl, int where, int /*ret*/) {
  if (where & SSL_CB_HANDSHAKE_DONE)
    connection_tls = ssl;
}

// Whether the client has already sent bytes beyond the request being answered (pipelining).
// The library would not look at them until the socket becomes readable again, so they would
// hang until the keep-alive timeout.
bool more_requests_waiting() {
  return connection_tls != nullptr && SSL_pending(connection_tls) > 0;
}

// Marks a response so that the connection is closed once it is written (stop_reading_connection).
void request_close(httplib::Response& res) { res.set_header("Connection", "close"); }
bool close_requested(const httplib::Response& res) { return res.get_header_value("Connection") == "close"; }

// The library closes a connection only when the request asked for it: a "Connection: close"
// set by a handler is sent but not acted on. So once the answer is written (the access logger
// runs right after the last byte), reading is shut down: the keep-alive loop's next read sees
// the end of the stream and closes the connection, and nothing the client sent after this
// request is ever parsed. (Shutting down earlier would make the library refuse to write.)
void stop_reading_connection() {
  if (connection_tls != nullptr) {
    int fd = SSL_get_fd(connection_tls);
    if (fd >= 0)
      ::shutdown(fd, SHUT_RD);
  }
}

// Methods whose body the library reads; any other method's body would stay unread on the
// connection and be taken for the next request.
bool library_reads_body(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE" || method == "PRI";
}

// Called after the headers are read and before the library reads a body. The size limit is
// only applied by the library to Content-Length bodies, and the Debian build inflates gzip
// and brotli bodies before any limit: both would let a small request become a huge one.
//
// Anything that could make this server and a client (or a proxy in between) disagree on
// where a request ends is refused, and the connection is closed after the answer, so no
// unread byte is ever taken for the next request. True when the request was refused.
bool refuse_unframed(const httplib::Request& req, httplib::Response& res) {
  auto refuse = [&](int status, const std::string& detail) {
    request_close(res);
    send_error(res, status, {detail});
    return true;
  };
  const auto lengths = count_header(req, "Content-Length");
  if (lengths > 1)
    return refuse(400, "more than one Content-Length header");
  if (lengths == 1 && req.has_header("Transfer-Encoding"))
    return refuse(400, "both Content-Length and Transfer-Encoding given");
  if (req.has_header("Transfer-Encoding"))
    return refuse(411, "request bodies must be sent with a Content-Length, not chunked");
  const auto length = req.get_header_value("Content-Length");
  if (lengths == 1 && (length.empty() || length.size() > 18 || length.find_first_not_of("0123456789") != std::string::npos))
    return refuse(400, "Content-Length is not a whole number of bytes");
  if (lengths == 1 && !library_reads_body(req.method) && length.find_first_not_of('0') != std::string::npos)
    return refuse(400, "a " + loggable_path(req.method) + " request must not have a body");
  auto encoding = req.get_header_value("Content-Encoding");
  if (req.has_header("Content-Encoding") && media_type(encoding) != "identity")
    return refuse(415, "compressed request bodies are not accepted (Content-Encoding)");
  return false;
}

// Headers every answer carries, set once the handler is done (the library's post-routing step).
void finish_headers(const httplib::Request& req, httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Content-Type-Options", "nosniff");
  // Pipelined requests are refused clearly: this answer is the connection's last, and the
  // client sends the rest again on a new connection (RFC 9112 section 9.3.2).
  if (!close_requested(res) && more_requests_waiting()) {
    spdlog::info("http: {} sent pipelined requests; closing the connection after this answer", req.remote_addr);
    request_close(res);
  }
  if (close_requested(res))
    res.headers.erase("Keep-Alive");
}

} // namespace

// Everything one API call carries through its handler.
struct api_server::call {
  const httplib::Request& req;
  httplib::Response& res;
  unix_seconds now;
  std::shared_ptr<const api_live_settings> live; // limits and meter types in force for this call
  query_params params;
  std::optional<bj::value> body; // parsed JSON body, when one was sent
};

api_server::api_server(const settings& config, api_dependencies deps, address_set trusted_proxies)
  : config_(config),
    deps_(std::move(deps)),
    limiter_(config.rate_limit.requests, config.rate_limit.window_seconds),
    trusted_proxies_(std::move(trusted_proxies)) {
  if (deps_.readers.empty() || !deps_.reads || !deps_.system || !deps_.tokens || !deps_.writer || !deps_.types)
    throw std::logic_error("api_server needs an actor system, readers, the threads' connections, a token verifier, "
                           "the writer's health and the meter types");
  live_ = std::make_shared<const api_live_settings>(
    api_live_settings{config.limits, config.rate_limit, config.api, deps_.types});
}

void api_server::respond(const httplib::Request& req, httplib::Response& res) {
  if (!refuse_unframed(req, res))
    handle(req, res);
  finish_headers(req, res);
}

api_server::api_server(const settings& config, const std::string& cert_file,
                       const std::string& key_file, api_dependencies deps, address_set trusted_proxies)
  : api_server(config, std::move(deps), std::move(trusted_proxies)) {
  server_ = std::make_unique<httplib::SSLServer>(cert_file.c_str(), key_file.c_str());
  if (!server_->is_valid())
    throw std::runtime_error("cannot load the TLS certificate " + cert_file + " with key " + key_file);
  if (!apply_mozilla_intermediate(server_->ssl_context()))
    throw std::runtime_error("OpenSSL refused the TLS settings");
  SSL_CTX_set_info_callback(server_->ssl_context(), note_connection);

  auto& svr = *server_;
  const auto& http = config_.http;
  auto threads = static_cast<std::size_t>(http.threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(static_cast<std::size_t>(http.keep_alive_max_requests));
  svr.set_keep_alive_timeout(http.keep_alive_timeout_seconds);
  svr.set_read_timeout(http.read_timeout_seconds);
  svr.set_write_timeout(http.write_timeout_seconds);
  svr.set_payload_max_length(static_cast<std::size_t>(http.max_body_bytes));
  // SO_REUSEADDR only: the library's default SO_REUSEPORT would let a second server share the
  // port silently. The descriptor is kept to raise the library's fixed backlog of 5.
  svr.set_socket_options([this](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd_ = fd;
  });

  // Runs after the headers are read and before the library reads a body.
  svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    return refuse_unframed(req, res) ? httplib::Server::HandlerResponse::Handled
                                     : httplib::Server::HandlerResponse::Unhandled;
  });

  // Every path reaches handle(), which does the routing ("." would not match a decoded newline).
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); };
  const std::string any_path = R"([\s\S]*)";
  svr.Get(any_path, handler);
  svr.Post(any_path, handler);
  svr.Put(any_path, handler);
  svr.Patch(any_path, handler);
  svr.Delete(any_path, handler);
  svr.Options(any_path, handler);

  // Every response the library generates itself (bad request line, 413, 414, ...) also gets
  // the API's JSON error body.
  svr.set_error_handler(httplib::Server::HandlerWithResponse(
    [this](const httplib::Request&, httplib::Response& res) -> httplib::Server::HandlerResponse {
    if (res.body.empty()) {
      std::string text = library_error_text(res.status);
      if (res.status == 413)
        text = "request body exceeds the limit of " + std::to_string(config_.http.max_body_bytes) + " bytes";
      send_error(res, res.status, {text});
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    try {
      if (ep)
        std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      spdlog::error("http: {} {} failed: {}", loggable_path(req.method), loggable_path(req.path), e.what());
    } catch (...) {
      spdlog::error("http: {} {} failed", loggable_path(req.method), loggable_path(req.path));
    }
    send_error(res, 500, {"internal server error"});
  });
  svr.set_post_routing_handler(finish_headers);
  svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (close_requested(res))
      stop_reading_connection();
    // Path only: query strings may carry references an operator need not see; never headers.
    auto level = res.status >= 500 ? spdlog::level::warn
                 : res.status >= 400 ? spdlog::level::info
                                     : spdlog::level::debug;
    spdlog::log(level, "http: {} {} {} {}", client_of(req), loggable_path(req.method),
                loggable_path(req.path), res.status);
  });
}

api_server::~api_server() = default;

void api_server::bind() {
  if (!server_)
    throw std::logic_error("api_server::bind: made without TLS, for respond() only");
  const auto& http = config_.http;
  errno = 0;
  if (!server_->bind_to_port(http.address, http.port)) {
    int err = errno;
    throw std::runtime_error("cannot listen on " + http.address + ":" + std::to_string(http.port) +
                             (err ? std::string(": ") + std::strerror(err) : std::string()) +
                             " (is another server running on this port?)");
  }
  // The library listens with a backlog of 5, compiled in; bursts of connections would be
  // dropped and retried by the kernel a second later. Listening again raises it.
  int fd = listen_fd_.load();
  if (fd >= 0 && ::listen(fd, static_cast<int>(http.listen_backlog)) != 0)
    spdlog::warn("http: could not raise the listen backlog: {}", std::strerror(errno));
}

bool api_server::run() {
  if (!server_)
    return false;
  bool ok = server_->listen_after_bind();
  finished_ = true;
  return ok;
}

namespace {

// Shuts down every connected TCP socket of this process whose local port is `port`: the
// accepted API connections. Looked up in /proc/self/fd because the library does not expose
// them.
void shut_down_connections(std::uint16_t port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir)
    return;
  int own = dirfd(dir);
  while (auto* entry = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == own)
      continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
      continue;
    std::uint16_t local_port = 0;
    if (local.ss_family == AF_INET)
      local_port = ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    else if (local.ss_family == AF_INET6)
      local_port = ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    if (local_port == port)
      ::shutdown(static_cast<int>(fd), SHUT_RDWR);
  }
  closedir(dir);
}

} // namespace

void api_server::stop() {
  if (!server_)
    return;
  server_->stop();
  // Requests in flight get a grace period to finish. The library's keep-alive loop does not
  // notice the stop, so idle connections would hold shutdown for the whole keep-alive
  // timeout: after the grace period every remaining connection is shut down.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!finished_ && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!finished_)
    shut_down_connections(config_.http.port);
}

std::string api_server::client_of(const httplib::Request& req) const {
  if (trusted_proxies_.empty())
    return req.remote_addr;
  auto values = [&](const char* name) {
    std::vector<std::string> out;
    for (std::size_t i = 0, n = req.get_header_value_count(name); i < n; ++i)
      out.push_back(req.get_header_value(name, i));
    return out;
  };
  return client_address(req.remote_addr, values("X-Real-IP"), values("X-Forwarded-For"), trusted_proxies_);
}

const reader_actor& api_server::next_reader() {
  auto i = reader_cursor_.fetch_add(1, std::memory_order_relaxed);
  return deps_.readers[i % deps_.readers.size()];
}

void api_server::handle(const httplib::Request& req, httplib::Response& res) {
  static const route routes[] = {
    {"test-request", "POST", method_kind::command, &api_server::test_request},
    {"batch-request", "POST", method_kind::command, &api_server::batch_request},
    {"test-cancel", "DELETE", method_kind::command, &api_server::test_cancel},
    {"batch-cancel", "DELETE", method_kind::command, &api_server::batch_cancel},
    {"test-status", "GET", method_kind::query, &api_server::test_status, true},
    {"test-transcript", "GET", method_kind::query, &api_server::test_transcript, true},
    {"batch-status", "GET", method_kind::query, &api_server::batch_status},
    {"test-search", "GET", method_kind::query, &api_server::test_search},
    {"service-status", "GET", method_kind::open, &api_server::service_status},
    {"meter-types", "GET", method_kind::query, &api_server::meter_types},
  };

  // The library would answer a Range header with a slice of our JSON; API answers are always
  // whole. (The request object is the library's own, non-const; only its view here is const.)
  const_cast<httplib::Request&>(req).ranges.clear();

  // 1. Route: 404 only for unknown URLs, 405 (with Allow) for a known URL and another verb.
  const auto& prefix = config_.http.prefix;
  const route* found = nullptr;
  if (req.path.size() > prefix.size() + 1 && req.path.compare(0, prefix.size(), prefix) == 0 &&
      req.path[prefix.size()] == '/') {
    auto name = req.path.substr(prefix.size() + 1);
    for (const auto& r : routes)
      if (name == r.name)
        found = &r;
  }
  if (!found)
    return send_error(res, 404, {"unknown URL: the methods live under " + prefix + "/"});
  const bool head_on_get = req.method == "HEAD" && std::strcmp(found->verb, "GET") == 0;
  if (req.method != found->verb && !head_on_get) {
    res.set_header("Allow", found->verb);
    return send_error(res, 405, {std::string(found->name) + " only accepts " + found->verb});
  }

  // 2. Authenticate, then rate-limit per token (per client IP without a valid token), then
  //    check the scope. A failed authentication still counts against the IP's window.
  call c{req, res, now_utc(), live(), {}, std::nullopt};
  // The token check and the lookup of a method that reads on this thread's connection share
  // one read transaction (store::begin_read); nothing in between waits. Should the database
  // not open here, the token check reports it.
  std::optional<store::read_scope> snapshot;
  if (found->reads_here) {
    try {
      snapshot.emplace(deps_.reads->local());
    } catch (const std::exception&) {
    }
  }
  std::optional<token_info> token;
  bool auth_failed = false;
  if (found->kind != method_kind::open) {
    auto header_count = count_header(req, "Authorization");
    std::string authorization; // owns the text `presented` points into
    std::optional<std::string_view> presented;
    if (header_count == 1) {
      authorization = req.get_header_value("Authorization");
      presented = bearer_token(authorization);
    }
    if (presented) {
      try {
        token = deps_.tokens->verify(*presented, c.now);
      } catch (const std::exception& e) {
        spdlog::error("http: token lookup failed: {}", e.what());
        return send_error(res, 500, {"internal server error"});
      }
    }
    auth_failed = !token;
    if (auth_failed)
      res.set_header("WWW-Authenticate", header_count == 0 ? "Bearer realm=\"MTS\""
                                                           : "Bearer realm=\"MTS\", error=\"invalid_token\"");
  }
  auto limit = limiter_.hit(token ? "token:" + std::to_string(token->id) : "ip:" + client_of(req), c.now);
  if (!limit.allowed) {
    res.set_header("Retry-After", std::to_string(limit.retry_after));
    auto body = error_body({"rate limit of " + std::to_string(c.live->rate_limit.requests) +
                            " requests per " + std::to_string(c.live->rate_limit.window_seconds) +
                            " seconds exceeded"});
    body["retryAfter"] = limit.retry_after;
    return send_json(res, 429, body);
  }
  if (auth_failed)
    return send_error(res, 401, {"a valid access token is required (Authorization: Bearer <token>)"});
  if (found->kind == method_kind::command && token->scope != token_scope::full) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"MTS\", error=\"insufficient_scope\"");
    return send_error(res, 403, {std::string("the token's scope \"") + to_string(token->scope) +
                                 "\" does not allow " + found->name});
  }

  // 3. Query string and body.
  std::vector<std::string> details;
  c.params = fold_query_params(req.params, details);
  if (!details.empty())
    return send_error(res, 400, details);
  if (found->kind == method_kind::command && !req.body.empty()) {
    if (media_type(req.get_header_value("Content-Type")) != "application/json")
      return send_error(res, 415, {"the body must be JSON (Content-Type: application/json)"});
    std::string error;
    c.body = json::parse_strict(req.body, error);
    if (!c.body)
      return send_error(res, 400, {"body: " + error});
  }
  (this->*(found->handler))(c);
}

namespace {

// Each HTTP thread keeps one scoped actor for its requests: creating one per request costs
// more than the request itself.
struct thread_requester {
  caf::actor_system* system = nullptr;
  std::unique_ptr<caf::scoped_actor> self;
};
thread_local thread_requester requester;

void answer_actor_error(const settings& config, httplib::Response& res, const caf::error& err) {
  if (err.category() == app_error_category) {
    switch (static_cast<app_errc>(err.code())) {
      case app_errc::unknown_test: return send_error(res, 400, {"testId: no such test"});
      case app_errc::unknown_batch: return send_error(res, 400, {"batchId: no such batch"});
      case app_errc::storage_failure: break;
    }
    return send_error(res, 500, {"internal server error: storage failed"});
  }
  if (err == caf::sec::request_timeout) {
    spdlog::warn("http: an actor did not answer within {} s", config.http.actor_timeout_seconds);
    res.set_header("Retry-After", "1");
    return send_error(res, 503, {"the server is busy; try again"});
  }
  spdlog::error("http: actor request failed: {}", to_string(err));
  send_error(res, 500, {"internal server error"});
}

// Sends a typed request from this HTTP thread and waits at most http.actor_timeout_seconds.
// The wait is a timed receive on the thread's own mailbox rather than a request timeout, which
// would involve CAF's clock thread in every call. On an error the response is filled and
// nullopt returned.
template <class Result, class Handle, class... Ts>
std::optional<Result> ask(caf::actor_system& sys, const settings& config, httplib::Response& res,
                          const Handle& dest, Ts&&... xs) {
  if (!requester.self || requester.system != &sys) {
    requester.self = std::make_unique<caf::scoped_actor>(sys);
    requester.system = &sys;
  }
  auto& self = *requester.self;
  std::optional<Result> out;
  bool timed_out = false;
  auto handle = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
  caf::blocking_actor::accept_one_cond until_answered;
  self->varargs_receive(
    until_answered, handle.id(), [&](Result& value) { out = std::move(value); },
    [&](caf::error& err) { answer_actor_error(config, res, err); },
    caf::after(std::chrono::seconds(config.http.actor_timeout_seconds)) >> [&] { timed_out = true; });
  if (timed_out) {
    // A late answer would stay in this actor's mailbox forever: start afresh.
    requester.self.reset();
    answer_actor_error(config, res, caf::make_error(caf::sec::request_timeout));
  }
  return out;
}

// For methods that take no query parameters: every one given is named in a 400.
bool no_query_params(api_server::call& c) {
  std::vector<std::string> details;
  for (const auto& p : c.params)
    details.push_back(p.first + ": unknown parameter");
  if (details.empty())
    return true;
  send_error(c.res, 400, details);
  return false;
}

bool require_body(api_server::call& c, const char* what) {
  if (c.body)
    return true;
  send_error(c.res, 400, {std::string("body: ") + what + " required"});
  return false;
}

// A test looked up by id on this thread's own read-only connection: one indexed row, so it
// needs no actor and no timeout of its own beyond SQLite's busy timeout (a reader in WAL mode
// does not wait for the writer). nullopt with the response filled when there is no such test
// or the database cannot be read: the same answers as the actors' errors.
template <class Lookup>
auto look_up_test(const settings& config, thread_reader& reads, httplib::Response& res, const char* what,
                  Lookup&& lookup) -> decltype(lookup(std::declval<store&>())) {
  try {
    auto found = lookup(reads.local());
    if (!found)
      answer_actor_error(config, res, make_error(app_errc::unknown_test));
    return found;
  } catch (const std::exception& e) {
    spdlog::error("storage: {} failed: {}", what, e.what());
    answer_actor_error(config, res, make_error(app_errc::storage_failure));
    return std::nullopt;
  }
}

} // namespace

void api_server::test_request(call& c) {
  if (!no_query_params(c))
    return;
  std::vector<std::string> details;
  if (!require_body(c, "a JSON test request is"))
    return;
  validation_context ctx{c.live->limits, c.live->types->names(), c.now};
  auto request = validate_test_request(*c.body, ctx, details);
  if (!request)
    return send_error(c.res, 400, details);
  // Straight to the writer: the scheduler hears of the test from it, after the commit.
  if (auto id = ask<test_id>(*deps_.system, config_, c.res, deps_.persistence, insert_atom::value,
                             std::move(*request), c.now))
    send_json(c.res, 200, bj::object{{"testId", *id}});
}

void api_server::batch_request(call& c) {
  if (!no_query_params(c))
    return;
  std::vector<std::string> details;
  if (!require_body(c, "a JSON array of test requests is"))
    return;
  validation_context ctx{c.live->limits, c.live->types->names(), c.now};
  auto requests = validate_batch_request(*c.body, ctx, details);
  if (!requests)
    return send_error(c.res, 400, details);
  if (auto inserted = ask<batch_inserted>(*deps_.system, config_, c.res, deps_.persistence, insert_atom::value,
                                          std::move(*requests), c.now))
    send_json(c.res, 200, bj::object{{"batchId", inserted->batch}});
}

void api_server::test_cancel(call& c) {
  std::vector<std::string> details;
  auto id = validate_test_cancel(c.body ? &*c.body : nullptr, c.params, details);
  if (!id)
    return send_error(c.res, 400, details);
  if (auto done = ask<test_id>(*deps_.system, config_, c.res, deps_.scheduler, cancel_atom::value, *id))
    send_json(c.res, 200, bj::object{{"testId", *done}});
}

void api_server::batch_cancel(call& c) {
  std::vector<std::string> details;
  auto request = validate_batch_cancel(c.body ? &*c.body : nullptr, c.params, details);
  if (!request)
    return send_error(c.res, 400, details);
  if (auto count = ask<std::int64_t>(*deps_.system, config_, c.res, deps_.scheduler, cancel_atom::value,
                                     batch_atom::value, request->id, request->delete_completed))
    send_json(c.res, 200, bj::object{{"batchId", request->id}, {"cancelledCount", *count}});
}

void api_server::test_status(call& c) {
  std::vector<std::string> details;
  auto id = validate_id_query(c.params, "testId", details);
  if (!id)
    return send_error(c.res, 400, details);
  if (auto record = look_up_test(config_, *deps_.reads, c.res, "test status", [&](store& db) { return db.find_test(*id); }))
    send_json(c.res, 200, encode_test_status(*record, c.live->api.mask_passwords));
}

void api_server::test_transcript(call& c) {
  std::vector<std::string> details;
  auto id = validate_id_query(c.params, "testId", details);
  if (!id)
    return send_error(c.res, 400, details);
  if (auto text = look_up_test(config_, *deps_.reads, c.res, "test transcript", [&](store& db) { return db.find_transcript(*id); }))
    send_json(c.res, 200, encode_test_transcript(*id, *text));
}

void api_server::batch_status(call& c) {
  std::vector<std::string> details;
  auto id = validate_id_query(c.params, "batchId", details);
  if (!id)
    return send_error(c.res, 400, details);
  auto tests = ask<std::vector<test_record>>(*deps_.system, config_, c.res, next_reader(), get_atom::value,
                                             batch_atom::value, *id);
  if (!tests)
    return;
  bj::array status;
  std::int64_t completed = 0;
  for (const auto& t : *tests) {
    completed += t.state == test_state::completed;
    status.push_back(encode_summary(t, false));
  }
  send_json(c.res, 200,
            bj::object{{"batchId", *id},
                       {"totalCount", static_cast<std::int64_t>(tests->size())},
                       {"completedCount", completed},
                       {"status", std::move(status)}});
}

void api_server::test_search(call& c) {
  std::vector<std::string> details;
  validation_context ctx{c.live->limits, c.live->types->names(), c.now};
  auto query = validate_search(c.params, ctx, details);
  if (!query)
    return send_error(c.res, 400, details);
  auto page = ask<search_page>(*deps_.system, config_, c.res, next_reader(), search_atom::value, *query);
  if (!page)
    return;
  bj::array results;
  for (const auto& t : page->results)
    results.push_back(encode_summary(t, true));
  send_json(c.res, 200,
            bj::object{{"totalResultCount", page->total_count},
                       {"resultCount", static_cast<std::int64_t>(page->results.size())},
                       {"offset", query->offset},
                       {"results", std::move(results)}});
}

void api_server::service_status(call& c) {
  if (!no_query_params(c))
    return;
  // OK only while the writer can commit (docs/operations.md, "What service-status checks"):
  // the verdict of the last write or probe, never waiting on an actor. When that verdict is
  // more than a second old a probe write is sent (at most one a second), so a database that
  // became read-only, full or locked shows within a second or two, and so does its recovery.
  using clock = writer_health::clock;
  const auto now = clock::now();
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  auto last = deps_.writer->last_result();
  auto last_probe = last_probe_ms_.load();
  if ((!last || now - *last > std::chrono::seconds(1)) && now_ms - last_probe >= 1000 &&
      last_probe_ms_.compare_exchange_strong(last_probe, now_ms))
    caf::anon_send(deps_.persistence, health_atom::value);
  auto verdict = deps_.writer->check(now, std::chrono::seconds(config_.storage.write_stall_seconds));
  if (!verdict.ok)
    spdlog::debug("service-status: not OK: {}", verdict.reason);
  bj::object body{{"serviceVersion", mts::version}, {"status", verdict.ok ? "OK" : "DATABASE UNAVAILABLE"}};
  // The dial-up modems and their state (an addition to the specification's two fields).
  auto modem_states = deps_.modems ? deps_.modems->read(c.now) : std::vector<modem_status>{};
  if (!modem_states.empty()) {
    bj::array modems;
    for (const auto& m : modem_states) {
      bj::object o{{"name", m.name}, {"state", m.state}};
      if (!m.collector.empty())
        o["collector"] = m.collector;
      if (m.test)
        o["testId"] = *m.test;
      if (m.until) {
        o["reason"] = m.reason;
        o["until"] = format_utc(*m.until);
      }
      modems.push_back(std::move(o));
    }
    body["modems"] = std::move(modems);
  }
  // A head's collectors (an addition to the specification): each accepted one, joined or not.
  if (deps_.collectors) {
    bj::array list;
    for (const auto& col : deps_.collectors->read()) {
      bj::object o{{"name", col.name}, {"connected", col.connected}};
      if (col.since)
        o["since"] = format_utc(*col.since);
      if (col.connected) {
        o["tcpSessions"] = col.tcp_sessions;
        o["tcpSessionsInUse"] = col.tcp_sessions_in_use;
        o["testsRunning"] = col.tests_running;
        bj::array names;
        for (const auto& m : col.modems)
          names.push_back(bj::value(m));
        o["modems"] = std::move(names);
      } else {
        o["reason"] = col.reason;
      }
      list.push_back(std::move(o));
    }
    body["collectors"] = std::move(list);
  }
  // The storage figures (an addition to the specification): the database's size as the last
  // purge pass measured it, and what the retention purge deleted since the server started.
  if (deps_.storage) {
    const auto stats = deps_.storage->get();
    if (stats.space) {
      bj::object o{{"databaseBytes", stats.space->bytes()},
                   {"freeBytes", stats.space->free_bytes()},
                   {"walBytes", stats.space->wal_bytes},
                   {"purgedTests", stats.purged_tests},
                   {"purgedTranscripts", stats.purged_transcripts},
                   {"purgedBatches", stats.purged_batches}};
      if (stats.last_purge)
        o["lastPurgeTime"] = format_utc(*stats.last_purge);
      if (!stats.conversion.complete())
        o["testsToConvert"] = stats.conversion.last_test_id - stats.conversion.converted_to;
      body["storage"] = std::move(o);
    }
  }
  send_json(c.res, 200, body);
}

void api_server::meter_types(call& c) {
  if (!no_query_params(c))
    return;
  bj::array types;
  for (const auto& t : c.live->types->types())
    types.push_back(bj::object{{"name", t.name}, {"driver", t.driver}});
  send_json(c.res, 200, bj::object{{"meterTypes", std::move(types)}});
}

std::shared_ptr<const api_live_settings> api_server::live() const {
  std::lock_guard<std::mutex> lock(live_mutex_);
  return live_;
}

void api_server::reconfigure(const settings& config, std::shared_ptr<const meter_type_registry> types) {
  auto next = std::make_shared<const api_live_settings>(
    api_live_settings{config.limits, config.rate_limit, config.api, std::move(types)});
  limiter_.configure(config.rate_limit.requests, config.rate_limit.window_seconds);
  std::lock_guard<std::mutex> lock(live_mutex_);
  live_ = std::move(next);
}

} // namespace mts

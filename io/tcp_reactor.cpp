// The epoll reactor. See the header for the threading contract. Everything below the public
// methods runs on the I/O thread, except resolver_loop and the socket setup in listen().
#include "io/tcp_reactor.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mts::io {

namespace {

constexpr std::uint64_t event_fd_tag = 1;
constexpr std::uint64_t timer_fd_tag = 2;
constexpr std::size_t read_chunk = 16 * 1024;
constexpr int reads_per_event = 4;   // then let other sockets have a turn (level-triggered)
constexpr int accepts_per_event = 64;
constexpr int max_iov = 64;
constexpr auto accept_pause = std::chrono::milliseconds(100);

// Linux error texts with a lower-case first letter: "connection refused".
std::string error_text(int err) {
  std::string s = std::strerror(err);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z' && !(s.size() > 1 && s[1] >= 'A' && s[1] <= 'Z'))
    s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

std::string close_reason(int err) {
  if (err == ECONNRESET || err == EPIPE)
    return "connection reset";
  return error_text(err);
}

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

struct socket_address {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// Parses a numeric IPv4 or IPv6 address ("[::1]" and "fe80::1%eth0" accepted). Never blocks.
bool parse_numeric(std::string host, std::uint16_t port, socket_address& out) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  out = socket_address{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.length = sizeof(sockaddr_in);
    return true;
  }
  std::string scope;
  if (auto pct = host.find('%'); pct != std::string::npos) {
    scope = host.substr(pct + 1);
    host.resize(pct);
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    if (!scope.empty()) {
      char* end = nullptr;
      unsigned long n = std::strtoul(scope.c_str(), &end, 10);
      v6->sin6_scope_id = (end && *end == '\0') ? static_cast<std::uint32_t>(n)
                                                : ::if_nametoindex(scope.c_str());
      if (v6->sin6_scope_id == 0)
        return false;
    }
    out.length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::string address_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "?";
}

} // namespace

std::vector<std::string> resolve_with_getaddrinfo(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0)
    return {};
  std::vector<std::string> out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ai->ai_family == AF_INET)
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, buf, sizeof buf);
    else if (ai->ai_family == AF_INET6)
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, buf,
                  sizeof buf);
    else
      continue;
    if (std::find(out.begin(), out.end(), buf) == out.end())
      out.emplace_back(buf);
  }
  ::freeaddrinfo(res);
  return out;
}

// ---- state owned by the I/O thread ----

struct tcp_reactor::timer {
  clock::time_point when;
  std::uint64_t id;
  int kind;
  bool operator>(const timer& o) const { return when > o.when; }
};

namespace {
enum timer_kind { connect_deadline, pace_ready, close_deadline, listener_resume, user_timer };

struct segment {
  std::string data;
  std::size_t offset = 0;
  std::chrono::microseconds per_byte{0}; // 0: unpaced
};
} // namespace

struct tcp_reactor::connection {
  enum class state { resolving, connecting, open, closing };
  connection_id id = 0;
  int fd = -1;
  state st = state::open;
  bool outgoing = false;
  std::shared_ptr<link_handler> handler;
  std::uint32_t interest = 0;  // what epoll currently watches
  bool registered = false;
  bool want_write = false;     // a write hit EAGAIN: wait for EPOLLOUT
  // Connecting.
  std::string host;
  std::uint16_t port = 0;
  std::vector<std::string> addresses;
  std::size_t next_address = 0;
  std::string last_error;
  clock::time_point connect_deadline = clock::time_point::max();
  // Output.
  std::deque<segment> out;
  std::size_t out_bytes = 0;
  clock::time_point line_free{}; // no byte before this, after a paced byte
  bool pace_timer = false;
  bool is_socket = true;             // false: an adopted tty or pipe (read/write, no half-close)
  std::function<void(int)> before_close; // adopted descriptors: runs before close
  bool close_when_connected = false; // close() while connecting with output queued
  bool peer_eof = false;             // closing: the peer has sent its FIN
  bool write_shut = false;           // closing: all output sent and our FIN with it
  clock::time_point close_deadline = clock::time_point::max();
};

struct tcp_reactor::listener {
  listener_id id = 0;
  int fd = -1;
  std::shared_ptr<accept_handler> handler;
  bool paused = false;
};

// ---- public methods (any thread) ----

tcp_reactor::tcp_reactor() : tcp_reactor(options{}) {}

tcp_reactor::tcp_reactor(options opts) : opts_(std::move(opts)) {
  if (!opts_.resolver)
    opts_.resolver = resolve_with_getaddrinfo;
  if (opts_.max_connections == 0)
    opts_.max_connections = 1;
  read_buffer_.resize(read_chunk);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epoll_fd_ < 0 || event_fd_ < 0 || timer_fd_ < 0) {
    int err = errno;
    close_fd(epoll_fd_);
    close_fd(event_fd_);
    close_fd(timer_fd_);
    throw std::system_error(err, std::generic_category(), "tcp_reactor: cannot create epoll");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = event_fd_tag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev);
  ev.data.u64 = timer_fd_tag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &ev);
  io_thread_ = std::thread([this] { run(); });
}

tcp_reactor::~tcp_reactor() {
  stop();
}

void tcp_reactor::stop() {
  std::lock_guard<std::mutex> guard(stop_mutex_);
  if (io_thread_.joinable()) {
    if (std::this_thread::get_id() == io_thread_.get_id())
      throw std::logic_error("tcp_reactor::stop called from the I/O thread");
    enqueue([this] { running_ = false; });
    io_thread_.join();
  }
  {
    std::lock_guard<std::mutex> lock(resolver_mutex_);
    resolver_stop_ = true;
  }
  resolver_cv_.notify_all();
  if (resolver_thread_.joinable())
    resolver_thread_.join();
  std::unordered_map<timer_id, std::function<void()>> pending_timers; // dropped unrun
  {
    std::lock_guard<std::mutex> lock(user_timers_mutex_);
    pending_timers.swap(user_timers_);
  }
  close_fd(epoll_fd_);
  close_fd(event_fd_);
  close_fd(timer_fd_);
}

bool tcp_reactor::enqueue(std::function<void()> fn) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    if (!accepting_commands_)
      return false;
    was_empty = queue_.empty();
    queue_.push_back(std::move(fn));
  }
  if (was_empty) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(event_fd_, &one, sizeof one);
  }
  return true;
}

connection_id tcp_reactor::connect(std::string host, std::uint16_t port,
                                   std::chrono::milliseconds timeout,
                                   std::shared_ptr<link_handler> handler) {
  const connection_id id = next_id_++;
  auto h = handler; // kept here in case the reactor is stopped
  bool queued = enqueue([this, id, host = std::move(host), port, timeout,
                         handler = std::move(handler)]() mutable {
    do_connect(id, std::move(host), port, timeout, std::move(handler));
  });
  if (!queued && h) {
    try {
      h->on_connect_failed(id, "reactor stopped");
    } catch (...) {
    }
  }
  return id;
}

// A descriptor that cannot be adopted is closed (its before_close hook first) and reported.
void tcp_reactor::refuse_adopted(connection_id id, int fd, const std::shared_ptr<link_handler>& h,
                                 const std::function<void(int)>& before_close, const char* reason) {
  if (before_close)
    before_close(fd);
  ::close(fd);
  if (h) {
    try {
      h->on_connect_failed(id, reason);
    } catch (...) {
    }
  }
}

connection_id tcp_reactor::adopt(int fd, std::shared_ptr<link_handler> handler,
                                 std::function<void(int)> before_close) {
  const connection_id id = next_id_++;
  auto h = handler;
  bool queued = enqueue([this, id, fd, handler = std::move(handler), before_close]() mutable {
    do_adopt(id, fd, std::move(handler), std::move(before_close));
  });
  if (!queued)
    refuse_adopted(id, fd, h, before_close, "reactor stopped");
  return id;
}

listener_id tcp_reactor::listen(std::string address, std::uint16_t port,
                                std::shared_ptr<accept_handler> handler) {
  const std::string where = (address.empty() ? "0.0.0.0" : address) + ":" + std::to_string(port);
  socket_address sa;
  if (!parse_numeric(address.empty() ? "0.0.0.0" : address, port, sa))
    throw std::system_error(EINVAL, std::generic_category(),
                            "cannot listen on " + where + ": not a numeric address");
  int fd = ::socket(sa.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::system_error(errno, std::generic_category(), "cannot listen on " + where);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa.storage), sa.length) != 0 ||
      ::listen(fd, opts_.listen_backlog) != 0) {
    int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "cannot listen on " + where);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  std::uint16_t actual = port;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0)
    actual = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  const listener_id id = next_id_++;
  {
    std::lock_guard<std::mutex> lock(ports_mutex_);
    ports_[id] = actual;
  }
  auto l = std::make_unique<listener>();
  l->id = id;
  l->fd = fd;
  l->handler = std::move(handler);
  // The lambda owns the listener until the I/O thread adopts it; if the reactor is stopped
  // first, the lambda is destroyed and so is the socket.
  struct owner {
    std::unique_ptr<listener> l;
    ~owner() {
      if (l)
        close_fd(l->fd);
    }
  };
  auto own = std::make_shared<owner>();
  own->l = std::move(l);
  bool queued = enqueue([this, own] {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = own->l->id;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, own->l->fd, &ev) == 0) {
      auto id = own->l->id;
      listeners_[id] = std::move(own->l);
    }
  });
  if (!queued) {
    std::lock_guard<std::mutex> lock(ports_mutex_);
    ports_.erase(id);
    throw std::system_error(ECANCELED, std::generic_category(),
                            "cannot listen on " + where + ": reactor stopped");
  }
  return id;
}

std::uint16_t tcp_reactor::listening_port(listener_id id) const {
  std::lock_guard<std::mutex> lock(ports_mutex_);
  auto it = ports_.find(id);
  return it == ports_.end() ? 0 : it->second;
}

void tcp_reactor::close_listener(listener_id id) {
  {
    std::lock_guard<std::mutex> lock(ports_mutex_);
    ports_.erase(id);
  }
  enqueue([this, id] {
    auto it = listeners_.find(id);
    if (it == listeners_.end())
      return;
    close_fd(it->second->fd);
    listeners_.erase(it);
  });
}

void tcp_reactor::send(connection_id id, std::string bytes) {
  send_paced(id, std::move(bytes), std::chrono::microseconds(0));
}

void tcp_reactor::send_paced(connection_id id, std::string bytes,
                             std::chrono::microseconds per_byte) {
  if (bytes.empty())
    return;
  enqueue([this, id, bytes = std::move(bytes), per_byte]() mutable {
    do_send(id, std::move(bytes), per_byte);
  });
}

void tcp_reactor::close(connection_id id) {
  enqueue([this, id] { do_close(id, true); });
}

void tcp_reactor::close_now(connection_id id) {
  enqueue([this, id] { do_close(id, false); });
}

void tcp_reactor::post(std::function<void()> fn) {
  enqueue([fn = std::move(fn)] {
    try {
      fn();
    } catch (...) {
    }
  });
}

bool tcp_reactor::wait_for_posted(std::chrono::milliseconds limit) {
  struct marker {
    std::mutex m;
    std::condition_variable cv;
    bool ran = false;
  };
  auto done = std::make_shared<marker>(); // shared: the post may run after a timed-out wait
  post([done] {
    std::lock_guard<std::mutex> lock(done->m);
    done->ran = true;
    done->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(done->m);
  return done->cv.wait_for(lock, limit, [&] { return done->ran; });
}

timer_id tcp_reactor::schedule(std::chrono::microseconds delay, std::function<void()> fn) {
  const timer_id id = next_id_++;
  const auto when = clock::now() + (delay.count() > 0 ? delay : std::chrono::microseconds{0});
  {
    std::lock_guard<std::mutex> lock(user_timers_mutex_);
    user_timers_.emplace(id, std::move(fn));
  }
  if (!enqueue([this, id, when] { add_timer(when, id, user_timer); })) {
    std::lock_guard<std::mutex> lock(user_timers_mutex_);
    user_timers_.erase(id);
  }
  return id;
}

void tcp_reactor::cancel_timer(timer_id id) {
  std::function<void()> dropped; // destroyed outside the lock
  std::lock_guard<std::mutex> lock(user_timers_mutex_);
  if (auto it = user_timers_.find(id); it != user_timers_.end()) {
    dropped = std::move(it->second);
    user_timers_.erase(it);
  }
}

// ---- the I/O thread ----

void tcp_reactor::run() {
  std::vector<epoll_event> events(256);
  while (running_) {
    int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      break; // cannot happen with valid descriptors; shut down rather than spin
    }
    for (int i = 0; i < n && running_; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      if (tag == event_fd_tag) {
        std::uint64_t v;
        [[maybe_unused]] auto r = ::read(event_fd_, &v, sizeof v);
        run_commands();
      } else if (tag == timer_fd_tag) {
        std::uint64_t v;
        [[maybe_unused]] auto r = ::read(timer_fd_, &v, sizeof v);
        armed_ = clock::time_point{};
      } else if (auto c = connections_.find(tag); c != connections_.end()) {
        auto& conn = *c->second;
        if (conn.st == connection::state::connecting)
          on_connect_event(conn, events[i].events);
        else
          on_connection_event(conn, events[i].events);
      } else if (auto l = listeners_.find(tag); l != listeners_.end()) {
        on_listener_event(*l->second);
      }
    }
    if (!running_)
      break;
    run_timers();
    arm_timerfd();
  }
  shutdown_all();
}

void tcp_reactor::run_commands() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    batch.swap(queue_);
  }
  // All of them, even after a stop command: connects then fail with "reactor stopped".
  for (auto& fn : batch)
    fn();
}

void tcp_reactor::shutdown_all() {
  // Refuse new commands, then run the ones already queued in stopping mode (connects fail,
  // everything else acts on connections that are about to be closed anyway).
  std::vector<std::function<void()>> rest;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    accepting_commands_ = false;
    rest.swap(queue_);
  }
  running_ = false;
  for (auto& fn : rest)
    fn();
  for (auto& [id, l] : listeners_)
    close_fd(l->fd);
  listeners_.clear();
  std::vector<connection_id> ids;
  ids.reserve(connections_.size());
  for (auto& [id, c] : connections_)
    ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (auto id : ids)
    finish(id, "reactor stopped");
  // Commands posted by those callbacks were refused by enqueue.
}

void tcp_reactor::add_timer(clock::time_point when, std::uint64_t id, int kind) {
  timers_.push_back(timer{when, id, kind});
  std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
}

void tcp_reactor::arm_timerfd() {
  if (timers_.empty())
    return; // a stale expiry at most wakes us once for nothing
  const auto when = timers_.front().when;
  if (armed_ != clock::time_point{} && armed_ <= when)
    return;
  itimerspec spec{};
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  if (ns <= 0)
    ns = 1;
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  ::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
  armed_ = when;
}

void tcp_reactor::run_timers() {
  const auto now = clock::now();
  while (!timers_.empty() && timers_.front().when <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
    const timer t = timers_.back();
    timers_.pop_back();
    if (t.kind == user_timer) {
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> lock(user_timers_mutex_);
        auto it = user_timers_.find(t.id);
        if (it == user_timers_.end())
          continue; // cancelled
        fn = std::move(it->second);
        user_timers_.erase(it);
      }
      try {
        fn();
      } catch (...) {
      }
      continue;
    }
    if (t.kind == listener_resume) {
      auto l = listeners_.find(t.id);
      if (l != listeners_.end() && l->second->paused) {
        l->second->paused = false;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = t.id;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, l->second->fd, &ev);
      }
      continue;
    }
    auto it = connections_.find(t.id);
    if (it == connections_.end())
      continue;
    connection& c = *it->second;
    switch (t.kind) {
    case connect_deadline:
      if ((c.st == connection::state::resolving || c.st == connection::state::connecting) &&
          c.connect_deadline == t.when)
        finish(c.id, "connection timed out");
      break;
    case pace_ready:
      c.pace_timer = false;
      flush(c);
      break;
    case close_deadline:
      if (c.st == connection::state::closing && c.close_deadline == t.when)
        finish(c.id, "closed");
      break;
    default:
      break;
    }
  }
}

// ---- connecting ----

void tcp_reactor::do_connect(connection_id id, std::string host, std::uint16_t port,
                             std::chrono::milliseconds timeout,
                             std::shared_ptr<link_handler> h) {
  auto fail_now = [&](const std::string& reason) {
    if (!h)
      return;
    try {
      h->on_connect_failed(id, reason);
    } catch (...) {
    }
  };
  if (!running_)
    return fail_now("reactor stopped");
  if (connections_.size() >= opts_.max_connections)
    return fail_now("too many connections");
  auto owned = std::make_unique<connection>();
  connection& c = *owned;
  c.id = id;
  c.outgoing = true;
  c.handler = std::move(h);
  c.host = host;
  c.port = port;
  connections_[id] = std::move(owned);
  if (timeout.count() > 0) {
    c.connect_deadline = clock::now() + timeout;
    add_timer(c.connect_deadline, id, connect_deadline);
  }
  socket_address probe;
  if (parse_numeric(host, port, probe)) {
    c.st = connection::state::connecting;
    c.addresses.push_back(std::move(host));
    try_next_address(c);
    return;
  }
  c.st = connection::state::resolving;
  start_resolver();
  {
    std::lock_guard<std::mutex> lock(resolver_mutex_);
    resolver_queue_.push_back(resolve_job{id, std::move(host)});
  }
  resolver_cv_.notify_one();
}

void tcp_reactor::start_resolver() {
  if (!resolver_thread_.joinable())
    resolver_thread_ = std::thread([this] { resolver_loop(); });
}

void tcp_reactor::resolver_loop() {
  for (;;) {
    resolve_job job;
    {
      std::unique_lock<std::mutex> lock(resolver_mutex_);
      resolver_cv_.wait(lock, [this] { return resolver_stop_ || !resolver_queue_.empty(); });
      if (resolver_stop_)
        return;
      job = std::move(resolver_queue_.front());
      resolver_queue_.pop_front();
    }
    std::vector<std::string> addresses;
    std::string error;
    try {
      addresses = opts_.resolver(job.host);
    } catch (...) {
      addresses.clear();
    }
    if (addresses.empty())
      error = "cannot resolve host " + job.host;
    enqueue([this, id = job.id, addresses = std::move(addresses),
             error = std::move(error)]() mutable {
      on_resolved(id, std::move(addresses), std::move(error));
    });
  }
}

void tcp_reactor::on_resolved(connection_id id, std::vector<std::string> addresses,
                              std::string error) {
  auto it = connections_.find(id);
  if (it == connections_.end() || it->second->st != connection::state::resolving)
    return; // timed out or closed meanwhile
  connection& c = *it->second;
  if (!running_)
    return; // shutdown_all will report it
  if (!error.empty())
    return finish(id, error);
  c.st = connection::state::connecting;
  c.addresses = std::move(addresses);
  c.last_error = "cannot resolve host " + c.host;
  try_next_address(c);
}

// Starts a non-blocking connect to the next address; on immediate failure moves on; when none
// is left, fails the connection with the last error.
void tcp_reactor::try_next_address(connection& c) {
  while (c.next_address < c.addresses.size()) {
    socket_address sa;
    if (!parse_numeric(c.addresses[c.next_address++], c.port, sa)) {
      c.last_error = "cannot resolve host " + c.host;
      continue;
    }
    int fd = ::socket(sa.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      c.last_error = error_text(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&sa.storage), sa.length);
    if (r != 0 && errno != EINPROGRESS) {
      c.last_error = error_text(errno);
      ::close(fd);
      continue;
    }
    c.fd = fd;
    c.registered = false;
    c.interest = 0;
    update_interest(c); // EPOLLOUT while connecting
    if (r == 0)
      on_connect_event(c, EPOLLOUT);
    return;
  }
  finish(c.id, c.last_error.empty() ? "connection failed" : c.last_error);
}

void tcp_reactor::on_connect_event(connection& c, std::uint32_t events) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err == 0 && !(events & EPOLLOUT))
    err = ECONNREFUSED; // hang-up without an error code
  if (err != 0) {
    c.last_error = error_text(err);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    close_fd(c.fd);
    c.registered = false;
    try_next_address(c);
    return;
  }
  on_open(c);
}

// The link is up (a connect completed, or a descriptor was adopted): tell the handler, then
// send what was queued meanwhile.
void tcp_reactor::on_open(connection& c) {
  c.st = connection::state::open;
  c.connect_deadline = clock::time_point::max();
  const auto now_open = ++open_;
  for (auto peak = peak_.load(); now_open > peak && !peak_.compare_exchange_weak(peak, now_open);) {
  }
  ++connected_;
  update_interest(c);
  const connection_id id = c.id;
  auto h = c.handler;
  try {
    if (h)
      h->on_connected(id);
  } catch (const std::exception& e) {
    return finish(id, std::string("handler error: ") + e.what());
  } catch (...) {
    return finish(id, "handler error");
  }
  flush(c); // data queued before the handshake completed
  auto it = connections_.find(id); // flush may have finished it
  if (it != connections_.end() && it->second->close_when_connected)
    do_close(id, true);
}

void tcp_reactor::do_adopt(connection_id id, int fd, std::shared_ptr<link_handler> h,
                           std::function<void(int)> before_close) {
  if (!running_ || connections_.size() >= opts_.max_connections) {
    refuse_adopted(id, fd, h, before_close, running_ ? "too many connections" : "reactor stopped");
    return;
  }
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags >= 0)
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  auto owned = std::make_unique<connection>();
  connection& c = *owned;
  c.id = id;
  c.fd = fd;
  c.is_socket = false;
  c.outgoing = true;
  c.before_close = std::move(before_close);
  c.handler = std::move(h);
  connections_[id] = std::move(owned);
  on_open(c);
}

// ---- listening ----

void tcp_reactor::on_listener_event(listener& l) {
  for (int i = 0; i < accepts_per_event; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED)
        continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of descriptors: the listener stays readable, so stop watching it for a while
        // rather than spin.
        l.paused = true;
        epoll_event ev{};
        ev.data.u64 = l.id;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, l.fd, &ev);
        add_timer(clock::now() + accept_pause, l.id, listener_resume);
      }
      return; // EAGAIN and anything else
    }
    if (connections_.size() >= opts_.max_connections || !l.handler) {
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const connection_id id = next_id_++;
    std::shared_ptr<link_handler> h;
    try {
      h = l.handler->on_accept(id, address_text(peer));
    } catch (...) {
      h = nullptr;
    }
    if (!h) {
      ::close(fd);
      continue;
    }
    auto owned = std::make_unique<connection>();
    connection& c = *owned;
    c.id = id;
    c.fd = fd;
    c.st = connection::state::open;
    c.handler = std::move(h);
    connections_[id] = std::move(owned);
    const auto now_open = ++open_;
    for (auto peak = peak_.load();
         now_open > peak && !peak_.compare_exchange_weak(peak, now_open);) {
    }
    ++accepted_;
    update_interest(c);
  }
}

// ---- open connections ----

void tcp_reactor::update_interest(connection& c) {
  if (c.fd < 0)
    return;
  std::uint32_t want = 0;
  switch (c.st) {
  case connection::state::connecting:
    want = EPOLLOUT;
    break;
  case connection::state::open:
    want = EPOLLIN | (c.want_write ? EPOLLOUT : 0u);
    break;
  case connection::state::closing:
    // Input is still drained (and dropped) so that close() sends a FIN, not a reset that
    // could destroy the output just flushed. Errors and hang-ups are always reported.
    want = (c.peer_eof ? 0u : static_cast<std::uint32_t>(EPOLLIN)) | (c.want_write ? EPOLLOUT : 0u);
    break;
  case connection::state::resolving:
    return;
  }
  if (c.registered && want == c.interest)
    return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = c.id;
  if (::epoll_ctl(epoll_fd_, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev) == 0) {
    c.registered = true;
    c.interest = want;
  }
}

void tcp_reactor::on_connection_event(connection& c, std::uint32_t events) {
  const connection_id id = c.id;
  if ((events & EPOLLERR) && c.is_socket) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      return finish(id, close_reason(err));
  }
  if ((events & EPOLLOUT) && c.want_write) {
    c.want_write = false;
    flush(c);
    auto it = connections_.find(id);
    if (it == connections_.end())
      return;
  }
  if (c.st == connection::state::open && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    for (int i = 0; i < reads_per_event; ++i) {
      ssize_t n = c.is_socket ? ::recv(c.fd, read_buffer_.data(), read_buffer_.size(), 0)
                              : ::read(c.fd, read_buffer_.data(), read_buffer_.size());
      if (n > 0) {
        auto h = c.handler;
        try {
          h->on_data(id, std::string_view(read_buffer_.data(), static_cast<std::size_t>(n)));
        } catch (const std::exception& e) {
          return finish(id, std::string("handler error: ") + e.what());
        } catch (...) {
          return finish(id, "handler error");
        }
        if (static_cast<std::size_t>(n) < read_buffer_.size())
          break;
        continue;
      }
      if (n == 0)
        return finish(id, "closed by peer");
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      return finish(id, close_reason(errno));
    }
  } else if (c.st == connection::state::closing) {
    if ((events & EPOLLIN) && !c.peer_eof) {
      for (int i = 0; i < reads_per_event; ++i) {
        ssize_t n = c.is_socket ? ::recv(c.fd, read_buffer_.data(), read_buffer_.size(), 0)
                                : ::read(c.fd, read_buffer_.data(), read_buffer_.size());
        if (n > 0)
          continue; // dropped: the owner asked to close
        if (n == 0) {
          c.peer_eof = true; // half-closed: stop watching input
          break;
        }
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          break;
        return finish(id, c.write_shut ? "closed" : close_reason(errno));
      }
    }
    if (c.write_shut && c.peer_eof)
      return finish(id, "closed"); // everything sent, and the peer has finished too
    if (events & (EPOLLHUP | EPOLLERR))
      // After our FIN the output is delivered; before it, it cannot be any more.
      return finish(id, c.write_shut ? "closed" : "closed by peer");
    update_interest(c);
  }
}

void tcp_reactor::do_send(connection_id id, std::string bytes, std::chrono::microseconds per_byte) {
  auto it = connections_.find(id);
  if (it == connections_.end())
    return;
  connection& c = *it->second;
  if (c.st == connection::state::closing || c.close_when_connected)
    return;
  if (bytes.size() > opts_.max_send_buffer - std::min(c.out_bytes, opts_.max_send_buffer))
    return finish(id, "send buffer overflow");
  if (per_byte.count() < 0)
    per_byte = std::chrono::microseconds(0);
  c.out_bytes += bytes.size();
  // Unpaced data joins an unpaced tail that has not started going out.
  if (per_byte.count() == 0 && !c.out.empty() && c.out.back().per_byte.count() == 0 &&
      c.out.back().offset == 0 && c.out.size() > 1) {
    c.out.back().data += bytes;
  } else {
    c.out.push_back(segment{std::move(bytes), 0, per_byte});
  }
  if (c.st == connection::state::open && !c.want_write && !c.pace_timer)
    flush(c);
}

// Writes what the socket takes and pacing allows. May finish the connection.
void tcp_reactor::flush(connection& c) {
  if (c.fd < 0 || (c.st != connection::state::open && c.st != connection::state::closing))
    return;
  const connection_id id = c.id;
  while (!c.out.empty()) {
    if (c.want_write || c.pace_timer)
      return;
    const auto now = clock::now();
    if (now < c.line_free) {
      c.pace_timer = true;
      add_timer(c.line_free, id, pace_ready);
      return;
    }
    segment& front = c.out.front();
    ssize_t n;
    if (front.per_byte.count() > 0) {
      n = c.is_socket ? ::send(c.fd, front.data.data() + front.offset, 1, MSG_NOSIGNAL)
                      : ::write(c.fd, front.data.data() + front.offset, 1);
      // The next byte's slot follows this one's, as on a serial line: a late timer wake-up
      // must not stretch every byte after it (the lateness, tens of microseconds, added up
      // to ~4% at 9600 baud). A line idle for over a byte time starts afresh from now.
      if (n == 1)
        c.line_free = (now - c.line_free < front.per_byte ? c.line_free : now) + front.per_byte;
    } else {
      iovec iov[max_iov];
      int count = 0;
      for (auto& s : c.out) {
        if (s.per_byte.count() > 0 || count == max_iov)
          break;
        iov[count].iov_base = s.data.data() + s.offset;
        iov[count].iov_len = s.data.size() - s.offset;
        ++count;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(count);
      n = c.is_socket ? ::sendmsg(c.fd, &msg, MSG_NOSIGNAL) : ::writev(c.fd, iov, count);
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c.want_write = true;
        update_interest(c);
        return;
      }
      return finish(id, close_reason(errno));
    }
    auto left = static_cast<std::size_t>(n);
    c.out_bytes -= left;
    while (left > 0 && !c.out.empty()) {
      segment& s = c.out.front();
      const std::size_t take = std::min(left, s.data.size() - s.offset);
      s.offset += take;
      left -= take;
      if (s.offset == s.data.size())
        c.out.pop_front();
    }
  }
  update_interest(c);
  if (c.st == connection::state::closing)
    output_flushed_while_closing(c);
}

// A graceful close has sent everything. Closing the socket now would answer input still in
// flight with a reset, which can destroy data the peer has not read yet; so the write side is
// shut down (the peer sees our FIN) and input is drained until the peer's FIN (or the close
// deadline), and only then is the socket closed.
void tcp_reactor::output_flushed_while_closing(connection& c) {
  if (c.peer_eof || !c.is_socket) // a tty or pipe has no half-close: its output is written
    return finish(c.id, "closed");
  if (!c.write_shut) {
    ::shutdown(c.fd, SHUT_WR);
    c.write_shut = true;
  }
}

void tcp_reactor::do_close(connection_id id, bool graceful) {
  auto it = connections_.find(id);
  if (it == connections_.end())
    return;
  connection& c = *it->second;
  if (graceful && c.st == connection::state::closing)
    return; // already flushing
  if (graceful && !c.out.empty() &&
      (c.st == connection::state::resolving || c.st == connection::state::connecting)) {
    c.close_when_connected = true; // flush what was queued, then close
    return;
  }
  if (!graceful || c.st != connection::state::open)
    return finish(id, "closed");
  c.st = connection::state::closing;
  if (c.out.empty()) { // nothing to flush: straight to the half-close (see below)
    output_flushed_while_closing(c);
    // A tty or pipe has no half-close: it is finished there, and `c` is gone.
    if (connections_.find(id) == connections_.end())
      return;
  }
  if (opts_.close_timeout.count() > 0) {
    c.close_deadline = clock::now() + opts_.close_timeout;
    add_timer(c.close_deadline, id, close_deadline);
  }
  update_interest(c);
}

// Removes the connection, closes its socket and delivers its terminal callback.
void tcp_reactor::finish(connection_id id, const std::string& reason) {
  auto node = connections_.extract(id);
  if (node.empty())
    return;
  std::unique_ptr<connection> c = std::move(node.mapped());
  const bool was_open =
      c->st == connection::state::open || c->st == connection::state::closing;
  if (c->fd >= 0) {
    if (c->registered)
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    if (c->before_close) {
      try {
        c->before_close(c->fd);
      } catch (...) {
      }
    }
    close_fd(c->fd);
  }
  if (was_open)
    --open_;
  auto h = std::move(c->handler);
  c.reset();
  if (!h)
    return;
  try {
    if (was_open)
      h->on_closed(id, reason);
    else
      h->on_connect_failed(id, reason);
  } catch (...) {
  }
}

} // namespace mts::io

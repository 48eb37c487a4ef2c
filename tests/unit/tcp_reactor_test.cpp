// The epoll reactor over real sockets on 127.0.0.1. Every wait is bounded (condition variables
// with timeouts); nothing sleeps for correctness.
#include "io/fd_limit.hpp"
#include "io/tcp_reactor.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <dirent.h>
#include <fcntl.h>
#include <termios.h>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace mts::io;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;
constexpr auto patience = 5s;

std::size_t count_entries(const char* dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.')
        ++n;
    ::closedir(d);
  }
  return n;
}
std::size_t open_fds() { return count_entries("/proc/self/fd"); }
std::size_t thread_count() { return count_entries("/proc/self/task"); }

// Records every callback; optionally echoes, or reacts through hooks.
struct recorder : link_handler, accept_handler {
  explicit recorder(tcp_reactor* echo_on = nullptr) : echo(echo_on) {}

  std::mutex m;
  std::condition_variable cv;
  tcp_reactor* echo;
  std::vector<connection_id> connected, accepted;
  std::vector<std::string> peers;
  std::map<connection_id, std::string> failed;
  std::map<connection_id, std::string> data;
  std::map<connection_id, steady::time_point> last_data_at;
  std::map<connection_id, std::vector<std::string>> closed;
  std::function<void(connection_id)> connected_hook;
  std::function<void(connection_id, const std::string& all)> data_hook;

  void on_connected(connection_id id) override {
    {
      // Hooks run under the lock, so what they change is seen by wait() without a lost wakeup.
      std::lock_guard<std::mutex> lock(m);
      connected.push_back(id);
      if (connected_hook)
        connected_hook(id);
    }
    cv.notify_all();
  }
  void on_connect_failed(connection_id id, const std::string& reason) override {
    {
      std::lock_guard<std::mutex> lock(m);
      failed[id] = reason;
    }
    cv.notify_all();
  }
  void on_data(connection_id id, std::string_view bytes) override {
    if (echo)
      echo->send(id, std::string(bytes));
    {
      std::lock_guard<std::mutex> lock(m);
      data[id].append(bytes);
      last_data_at[id] = steady::now();
      if (data_hook)
        data_hook(id, data[id]);
    }
    cv.notify_all();
  }
  void on_closed(connection_id id, const std::string& reason) override {
    {
      std::lock_guard<std::mutex> lock(m);
      closed[id].push_back(reason);
    }
    cv.notify_all();
  }
  std::shared_ptr<link_handler> on_accept(connection_id id, const std::string& peer) override {
    {
      std::lock_guard<std::mutex> lock(m);
      accepted.push_back(id);
      peers.push_back(peer);
    }
    cv.notify_all();
    return self.lock();
  }
  std::weak_ptr<recorder> self;

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds limit = patience) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, limit, pred);
  }
};

std::shared_ptr<recorder> make_recorder(tcp_reactor* echo_on = nullptr) {
  auto r = std::make_shared<recorder>(echo_on);
  r->self = r;
  return r;
}

// Waits until everything queued on the reactor before this call has run.
void barrier(tcp_reactor& reactor) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  reactor.post([&] {
    std::lock_guard<std::mutex> lock(m);
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(m);
  REQUIRE(cv.wait_for(lock, patience, [&] { return done; }));
}

// A raw loopback socket bound to a free port; listens with the given backlog if >= 0.
struct raw_socket {
  int fd = -1;
  std::uint16_t port = 0;
  explicit raw_socket(int backlog) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    if (backlog >= 0)
      REQUIRE(::listen(fd, backlog) == 0);
  }
  ~raw_socket() { ::close(fd); }
};

} // namespace

TEST_CASE("echo round trip between a listener and a connect on the same reactor", "[reactor]") {
  const auto fds_before = open_fds();
  {
    tcp_reactor reactor;
    auto server = make_recorder(&reactor);
    auto lid = reactor.listen("127.0.0.1", 0, server);
    const auto port = reactor.listening_port(lid);
    REQUIRE(port != 0);

    auto client = make_recorder();
    auto cid = reactor.connect("127.0.0.1", port, 2000ms, client);
    REQUIRE(client->wait([&] { return client->connected.size() == 1; }));
    CHECK(client->connected[0] == cid);
    reactor.send(cid, "hello, ");
    reactor.send(cid, "meter");
    REQUIRE(client->wait([&] { return client->data[cid] == "hello, meter"; }));
    REQUIRE(server->wait([&] { return server->accepted.size() == 1; }));
    CHECK(server->peers[0].rfind("127.0.0.1:", 0) == 0);
    CHECK(reactor.total_accepted() == 1);
    CHECK(reactor.total_connected() == 1);
    CHECK(reactor.open_connections() == 2);

    // Graceful close on one side: "closed" here, "closed by peer" there, once each.
    reactor.close(cid);
    const auto sid = server->accepted[0];
    REQUIRE(client->wait([&] { return client->closed.count(cid) == 1; }));
    REQUIRE(server->wait([&] { return server->closed.count(sid) == 1; }));
    barrier(reactor);
    CHECK(client->closed[cid] == std::vector<std::string>{"closed"});
    CHECK(server->closed[sid] == std::vector<std::string>{"closed by peer"});
    CHECK(client->failed.empty());
    CHECK(reactor.open_connections() == 0);
    CHECK(reactor.peak_open_connections() == 2);
  }
  CHECK(open_fds() == fds_before);
}

TEST_CASE("a thousand concurrent connections on one I/O thread each", "[reactor][load]") {
  constexpr int n = 1000;
  const auto threads_before = thread_count();
  const auto fds_before = open_fds();
  {
    tcp_reactor server_reactor;
    tcp_reactor client_reactor;
    auto server = make_recorder(&server_reactor);
    auto lid = server_reactor.listen("127.0.0.1", 0, server);
    const auto port = server_reactor.listening_port(lid);

    auto client = make_recorder();
    int done = 0; // under client->m
    client->connected_hook = [&](connection_id id) {
      client_reactor.send(id, "ping " + std::to_string(id));
    };
    client->data_hook = [&](connection_id id, const std::string& all) {
      if (all == "ping " + std::to_string(id))
        ++done;
    };
    std::vector<connection_id> ids;
    for (int i = 0; i < n; ++i)
      ids.push_back(client_reactor.connect("127.0.0.1", port, 10000ms, client));
    REQUIRE(client->wait([&] { return done == n || !client->failed.empty(); }, 30s));
    CHECK(client->failed.empty());
    CHECK(done == n);
    // All open at once, and no thread per connection.
    CHECK(server_reactor.open_connections() == static_cast<std::size_t>(n));
    CHECK(client_reactor.open_connections() == static_cast<std::size_t>(n));
    CHECK(server_reactor.total_accepted() == static_cast<std::uint64_t>(n));
    CHECK(thread_count() <= threads_before + 4);
    for (auto id : ids)
      client_reactor.close(id);
    REQUIRE(server->wait([&] { return server->closed.size() == static_cast<std::size_t>(n); }, 30s));
    REQUIRE(client->wait([&] { return client->closed.size() == static_cast<std::size_t>(n); }));
    CHECK(server_reactor.peak_open_connections() == static_cast<std::size_t>(n));
  }
  CHECK(open_fds() == fds_before);
  CHECK(thread_count() <= threads_before);
}

TEST_CASE("connecting to a port nobody listens on is refused", "[reactor]") {
  raw_socket bound(-1); // bound, so the port stays ours, but not listening
  tcp_reactor reactor;
  auto client = make_recorder();
  auto id = reactor.connect("127.0.0.1", bound.port, 2000ms, client);
  REQUIRE(client->wait([&] { return client->failed.count(id) == 1; }));
  CHECK(client->failed[id] == "connection refused");
  CHECK(client->connected.empty());
  CHECK(client->closed.empty());
}

TEST_CASE("a connect whose handshake never completes times out", "[reactor]") {
  // A listener with backlog 0 that never accepts: once its accept queue holds one connection,
  // Linux drops further SYNs, so the next handshake hangs until the client gives up.
  raw_socket full(0);
  tcp_reactor reactor;
  auto client = make_recorder();
  std::string outcome;
  for (int attempt = 0; attempt < 8 && outcome.empty(); ++attempt) {
    auto id = reactor.connect("127.0.0.1", full.port, 300ms, client);
    REQUIRE(client->wait([&] {
      return client->failed.count(id) == 1 ||
             std::find(client->connected.begin(), client->connected.end(), id) !=
                 client->connected.end();
    }));
    std::lock_guard<std::mutex> lock(client->m);
    if (client->failed.count(id))
      outcome = client->failed[id];
  }
  CHECK(outcome == "connection timed out");
}

TEST_CASE("host names go through the resolver thread, with a deadline", "[reactor]") {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  tcp_reactor::options opts;
  opts.resolver = [&](const std::string& host) -> std::vector<std::string> {
    if (host == "meter.test")
      return {"127.0.0.1"};
    if (host == "stall.test") {
      std::unique_lock<std::mutex> lock(m);
      cv.wait_for(lock, 10s, [&] { return release; });
      return {"127.0.0.1"};
    }
    return {};
  };
  tcp_reactor reactor(opts);
  auto server = make_recorder(&reactor);
  const auto port = reactor.listening_port(reactor.listen("127.0.0.1", 0, server));
  auto client = make_recorder();

  auto ok = reactor.connect("meter.test", port, 2000ms, client);
  auto unknown = reactor.connect("nowhere.test", port, 2000ms, client);
  REQUIRE(client->wait([&] { return client->connected.size() == 1 && client->failed.size() == 1; }));
  CHECK(client->connected[0] == ok);
  CHECK(client->failed[unknown] == "cannot resolve host nowhere.test");

  // The resolver stalls: the connect deadline still fires, on the I/O thread's timer.
  const auto start = steady::now();
  auto stalled = reactor.connect("stall.test", port, 200ms, client);
  REQUIRE(client->wait([&] { return client->failed.count(stalled) == 1; }));
  CHECK(steady::now() - start >= 200ms);
  CHECK(client->failed[stalled] == "connection timed out");
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  // The late resolution is ignored: no second callback for that id.
  barrier(reactor);
  auto after = reactor.connect("meter.test", port, 2000ms, client);
  REQUIRE(client->wait([&] { return client->connected.size() == 2; }));
  CHECK(client->connected[1] == after);
  CHECK(std::count(client->connected.begin(), client->connected.end(), stalled) == 0);
}

TEST_CASE("a peer's close is reported once as closed by peer", "[reactor]") {
  tcp_reactor server_reactor, client_reactor;
  auto server = make_recorder();
  const auto port = server_reactor.listening_port(server_reactor.listen("127.0.0.1", 0, server));
  auto client = make_recorder();
  auto cid = client_reactor.connect("127.0.0.1", port, 2000ms, client);
  REQUIRE(server->wait([&] { return server->accepted.size() == 1; }));
  const auto sid = server->accepted[0];
  server_reactor.send(sid, "bye");
  server_reactor.close(sid);
  REQUIRE(client->wait([&] { return client->closed.count(cid) == 1; }));
  barrier(client_reactor);
  CHECK(client->data[cid] == "bye");
  CHECK(client->closed[cid] == std::vector<std::string>{"closed by peer"});
  REQUIRE(server->wait([&] { return server->closed.count(sid) == 1; }));
  CHECK(server->closed[sid] == std::vector<std::string>{"closed"});
  // Calls on a closed connection are ignored.
  client_reactor.send(cid, "late");
  client_reactor.close(cid);
  barrier(client_reactor);
  CHECK(client->closed[cid].size() == 1);
}

TEST_CASE("a graceful close flushes queued output first", "[reactor]") {
  tcp_reactor server_reactor, client_reactor;
  auto server = make_recorder();
  const auto port = server_reactor.listening_port(server_reactor.listen("127.0.0.1", 0, server));
  auto client = make_recorder();
  auto cid = client_reactor.connect("127.0.0.1", port, 2000ms, client);
  std::string big(600 * 1024, 'x');
  for (std::size_t i = 0; i < big.size(); i += 997)
    big[i] = static_cast<char>('a' + i % 26);
  client_reactor.send(cid, big); // queued before the handshake completes
  client_reactor.close(cid);
  REQUIRE(server->wait([&] { return server->closed.size() == 1; }));
  const auto sid = server->accepted.at(0);
  CHECK(client->connected.size() == 1);
  INFO("server closed: " << server->closed[sid][0] << ", client got " << client->data[cid].size());
  CHECK(server->data[sid].size() == big.size());
  CHECK((server->data[sid] == big)); // no expansion of 600 KiB
  CHECK(server->closed[sid] == std::vector<std::string>{"closed by peer"});
  REQUIRE(client->wait([&] { return client->closed.count(cid) == 1; }));
  CHECK(client->closed[cid] == std::vector<std::string>{"closed"});
}

TEST_CASE("send_paced spaces the bytes and keeps later sends behind them", "[reactor]") {
  tcp_reactor server_reactor, client_reactor;
  auto server = make_recorder();
  const auto port = server_reactor.listening_port(server_reactor.listen("127.0.0.1", 0, server));
  auto client = make_recorder();
  auto cid = client_reactor.connect("127.0.0.1", port, 2000ms, client);
  REQUIRE(client->wait([&] { return client->connected.size() == 1; }));
  REQUIRE(server->wait([&] { return server->accepted.size() == 1; }));
  const auto sid = server->accepted[0];

  std::string paced;
  for (int i = 0; i < 100; ++i)
    paced += static_cast<char>('0' + i % 75);
  const auto start = steady::now();
  client_reactor.send_paced(cid, paced, 1000us);
  client_reactor.send(cid, "|tail");
  REQUIRE(server->wait([&] { return server->data[sid].size() == paced.size() + 5; }));
  const auto elapsed = server->last_data_at[sid] - start;
  CHECK(server->data[sid] == paced + "|tail");
  CHECK(elapsed >= 99ms); // a lower bound only
}

TEST_CASE("exceeding the send buffer limit closes the connection", "[reactor]") {
  raw_socket sink(16); // completes handshakes, never accepts, never reads
  tcp_reactor::options opts;
  opts.max_send_buffer = 64 * 1024;
  tcp_reactor reactor(opts);
  auto client = make_recorder();

  SECTION("one send larger than the limit") {
    auto id = reactor.connect("127.0.0.1", sink.port, 2000ms, client);
    REQUIRE(client->wait([&] { return client->connected.size() == 1; }));
    reactor.send(id, std::string(64 * 1024 + 1, 'z'));
    REQUIRE(client->wait([&] { return client->closed.count(id) == 1; }));
    CHECK(client->closed[id] == std::vector<std::string>{"send buffer overflow"});
  }
  SECTION("a peer that stops reading") {
    auto id = reactor.connect("127.0.0.1", sink.port, 2000ms, client);
    REQUIRE(client->wait([&] { return client->connected.size() == 1; }));
    const std::string chunk(16 * 1024, 'q');
    bool closed = false;
    for (int i = 0; i < 4096 && !closed; ++i) { // at most 64 MiB
      reactor.send(id, chunk);
      if (i % 64 == 63) {
        barrier(reactor);
        std::lock_guard<std::mutex> lock(client->m);
        closed = client->closed.count(id) == 1;
      }
    }
    REQUIRE(client->wait([&] { return client->closed.count(id) == 1; }));
    CHECK(client->closed[id] == std::vector<std::string>{"send buffer overflow"});
  }
  CHECK(reactor.open_connections() == 0);
}

TEST_CASE("listening on a port in use throws, naming the port", "[reactor]") {
  tcp_reactor reactor;
  auto server = make_recorder();
  const auto port = reactor.listening_port(reactor.listen("127.0.0.1", 0, server));
  try {
    reactor.listen("127.0.0.1", port, server);
    FAIL("listen on a port in use did not throw");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == EADDRINUSE);
    CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  }
  CHECK_THROWS_AS(reactor.listen("not-an-address", 0, server), std::system_error);
}

TEST_CASE("the connection limit refuses connects and accepts", "[reactor]") {
  tcp_reactor::options small;
  small.max_connections = 1;
  tcp_reactor server_reactor(small);
  tcp_reactor client_reactor(small);
  auto server = make_recorder();
  const auto port = server_reactor.listening_port(server_reactor.listen("127.0.0.1", 0, server));
  tcp_reactor other_client;
  auto client = make_recorder();

  auto first = client_reactor.connect("127.0.0.1", port, 2000ms, client);
  auto second = client_reactor.connect("127.0.0.1", port, 2000ms, client);
  REQUIRE(client->wait([&] { return client->failed.count(second) == 1; }));
  CHECK(client->failed[second] == "too many connections");
  REQUIRE(server->wait([&] { return server->accepted.size() == 1; }));
  REQUIRE(client->wait([&] { return client->connected.size() == 1; }));
  CHECK(client->connected[0] == first);

  // The server is full: its next accepted socket is closed at once.
  auto refused = make_recorder();
  auto third = other_client.connect("127.0.0.1", port, 2000ms, refused);
  REQUIRE(refused->wait([&] { return refused->closed.count(third) == 1; }));
  CHECK((refused->closed[third][0] == "closed by peer" ||
         refused->closed[third][0] == "connection reset"));
  CHECK(server_reactor.total_accepted() == 1);
}

TEST_CASE("destruction closes every connection and socket", "[reactor]") {
  const auto fds_before = open_fds();
  auto server = make_recorder();
  auto client = make_recorder();
  {
    tcp_reactor reactor;
    const auto port = reactor.listening_port(reactor.listen("127.0.0.1", 0, server));
    for (int i = 0; i < 20; ++i)
      reactor.connect("127.0.0.1", port, 2000ms, client);
    REQUIRE(client->wait([&] { return client->connected.size() == 20; }));
    REQUIRE(server->wait([&] { return server->accepted.size() == 20; }));
    reactor.connect("127.0.0.1", port, 2000ms, client); // may still be connecting
    CHECK(open_fds() > fds_before + 40);
  }
  CHECK(open_fds() == fds_before);
  std::size_t closed = 0, stopped = 0;
  for (auto* r : {server.get(), client.get()})
    for (auto& [id, reasons] : r->closed) {
      CHECK(reasons.size() == 1);
      closed += reasons.size();
      stopped += reasons[0] == "reactor stopped";
    }
  // Every connection got exactly one terminal callback.
  CHECK(closed + client->failed.size() >= 41);
  CHECK(stopped == closed);
}

TEST_CASE("wait_for_posted returns once the I/O thread ran what was posted before", "[reactor]") {
  tcp_reactor reactor;
  std::atomic<bool> ran{false};
  reactor.post([&ran] {
    std::this_thread::sleep_for(50ms); // still running when the wait starts
    ran = true;
  });
  CHECK(reactor.wait_for_posted(10s));
  CHECK(ran);
  reactor.stop();
  // A stopped reactor runs nothing: the wait ends at its limit.
  CHECK_FALSE(reactor.wait_for_posted(20ms));
}

TEST_CASE("after stop, connect fails at once and nothing else happens", "[reactor]") {
  tcp_reactor reactor;
  reactor.stop();
  reactor.stop();
  auto client = make_recorder();
  auto id = reactor.connect("127.0.0.1", 1, 100ms, client);
  CHECK(client->failed[id] == "reactor stopped");
  reactor.send(id, "x");
  reactor.close(id);
  CHECK_THROWS_AS(reactor.listen("127.0.0.1", 0, client), std::system_error);
}

TEST_CASE("the reactor keeps a handler alive until its terminal callback", "[reactor]") {
  tcp_reactor reactor;
  auto server = make_recorder(&reactor);
  const auto port = reactor.listening_port(reactor.listen("127.0.0.1", 0, server));
  auto client = make_recorder();
  std::weak_ptr<recorder> weak = client;
  auto id = reactor.connect("127.0.0.1", port, 2000ms, client);
  REQUIRE(client->wait([&] { return client->connected.size() == 1; }));
  recorder* raw = client.get();
  client.reset(); // the caller lets go; the reactor still holds it
  REQUIRE_FALSE(weak.expired());
  reactor.send(id, "still there");
  REQUIRE(raw->wait([&] { return raw->data[id] == "still there"; }));
  reactor.close_now(id);
  // The reactor drops its reference once on_closed has returned.
  for (int i = 0; i < 100 && !weak.expired(); ++i)
    barrier(reactor);
  CHECK(weak.expired());
}

TEST_CASE("IPv6 loopback literals work when the host has ::1", "[reactor]") {
  tcp_reactor reactor;
  auto server = make_recorder(&reactor);
  listener_id lid = 0;
  try {
    lid = reactor.listen("::1", 0, server);
  } catch (const std::system_error& e) {
    WARN("no IPv6 loopback here, skipped: " << e.what());
    return;
  }
  auto client = make_recorder();
  auto id = reactor.connect("[::1]", reactor.listening_port(lid), 2000ms, client);
  REQUIRE(client->wait([&] { return client->connected.size() == 1 || !client->failed.empty(); }));
  REQUIRE(client->failed.empty());
  reactor.send(id, "v6");
  REQUIRE(client->wait([&] { return client->data[id] == "v6"; }));
  CHECK(server->peers.at(0).rfind("[::1]:", 0) == 0);
}

TEST_CASE("a graceful close drains the peer's input so the output is not reset", "[reactor]") {
  tcp_reactor server_reactor, client_reactor;
  auto server = make_recorder();
  const auto port = server_reactor.listening_port(server_reactor.listen("127.0.0.1", 0, server));
  auto client = make_recorder();
  auto cid = client_reactor.connect("127.0.0.1", port, 2000ms, client);
  REQUIRE(server->wait([&] { return server->accepted.size() == 1; }));
  const auto sid = server->accepted[0];
  server_reactor.send(sid, std::string(512 * 1024, 's')); // still arriving while we close
  REQUIRE(client->wait([&] { return !client->data[cid].empty(); }));
  const std::string big(600 * 1024, 'c');
  client_reactor.send(cid, big);
  client_reactor.close(cid);
  REQUIRE(server->wait([&] { return server->closed.count(sid) == 1; }));
  INFO("server closed: " << server->closed[sid][0] << ", client got " << client->data[cid].size());
  CHECK(server->data[sid].size() == big.size());
  INFO("server closed: " << server->closed[sid][0] << ", client got " << client->data[cid].size());
  CHECK(server->closed[sid][0] != "connection reset");
  REQUIRE(client->wait([&] { return client->closed.count(cid) == 1; }));
  CHECK(client->closed[cid] == std::vector<std::string>{"closed"});
}

TEST_CASE("scheduled timers run on the I/O thread in time order, and cancelled ones never run", "[reactor]") {
  tcp_reactor reactor;
  std::mutex m;
  std::condition_variable cv;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  const auto start = steady::now();
  steady::duration last_at{};
  auto record = [&](int n) {
    return [&, n] {
      std::lock_guard<std::mutex> lock(m);
      order.push_back(n);
      threads.push_back(std::this_thread::get_id());
      last_at = steady::now() - start;
      cv.notify_all();
    };
  };
  reactor.schedule(30ms, record(3));
  const auto cancelled = reactor.schedule(10ms, record(99));
  reactor.schedule(0us, record(1));
  reactor.schedule(15ms, record(2));
  reactor.cancel_timer(cancelled);
  reactor.cancel_timer(cancelled); // twice: ignored
  reactor.cancel_timer(12345);     // unknown: ignored
  // A timer may schedule another and cancel a pending one from the I/O thread.
  timer_id doomed = 0;
  {
    std::lock_guard<std::mutex> lock(m);
    doomed = reactor.schedule(60ms, record(98));
  }
  reactor.schedule(40ms, [&] {
    {
      std::lock_guard<std::mutex> lock(m);
      reactor.cancel_timer(doomed);
    }
    reactor.schedule(5ms, record(4));
    reactor.schedule(0us, [] { throw std::runtime_error("swallowed"); });
  });
  {
    std::unique_lock<std::mutex> lock(m);
    REQUIRE(cv.wait_for(lock, patience, [&] { return order.size() >= 4; }));
  }
  barrier(reactor);
  // Past the doomed timer's deadline: it stays cancelled.
  const auto until = start + 100ms;
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait_until(lock, until, [] { return false; });
    CHECK(order == std::vector<int>{1, 2, 3, 4});
    CHECK(last_at >= 45ms);
    for (auto t : threads)
      CHECK(t != std::this_thread::get_id());
    CHECK(std::all_of(threads.begin(), threads.end(), [&](auto t) { return t == threads[0]; }));
  }
}

TEST_CASE("timers pending at stop are dropped, and a schedule after stop does nothing", "[reactor]") {
  auto flag = std::make_shared<int>(0);
  tcp_reactor reactor;
  reactor.schedule(std::chrono::hours(1), [flag] { ++*flag; });
  barrier(reactor);
  CHECK(flag.use_count() == 2);
  reactor.stop();
  CHECK(flag.use_count() == 1); // the function was destroyed, not run
  CHECK(*flag == 0);
  CHECK(reactor.schedule(0us, [flag] { ++*flag; }) != 0);
  CHECK(flag.use_count() == 1);
}

TEST_CASE("raise_open_file_limit lifts the soft limit to the hard one", "[reactor]") {
  rlimit before{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
  const auto got = raise_open_file_limit();
  rlimit after{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &after) == 0);
  CHECK(got.before == before.rlim_cur);
  CHECK(after.rlim_cur == after.rlim_max);
  CHECK(got.now == after.rlim_cur);
  CHECK(raise_open_file_limit().before == after.rlim_max); // idempotent
}

TEST_CASE("an adopted pseudo-terminal is driven like a connection", "[reactor][pty]") {
  tcp_reactor reactor;
  auto rec = make_recorder();
  int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(master >= 0);
  REQUIRE(::grantpt(master) == 0);
  REQUIRE(::unlockpt(master) == 0);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  REQUIRE(slave >= 0);
  termios raw{};
  REQUIRE(::tcgetattr(slave, &raw) == 0);
  ::cfmakeraw(&raw);
  REQUIRE(::tcsetattr(slave, TCSANOW, &raw) == 0);

  std::atomic<int> closed_fd{-1};
  auto id = reactor.adopt(master, rec, [&](int fd) { closed_fd = fd; });
  REQUIRE(rec->wait([&] { return rec->connected.size() == 1; }));
  REQUIRE(rec->connected[0] == id);

  REQUIRE(::write(slave, "ATZ\r", 4) == 4);
  REQUIRE(rec->wait([&] { return rec->data[id] == "ATZ\r"; }));

  reactor.send(id, "\r\nOK\r\n");
  std::string got;
  const auto until = steady::now() + patience;
  while (got.size() < 6 && steady::now() < until) {
    char buf[16];
    auto n = ::read(slave, buf, sizeof buf);
    if (n > 0)
      got.append(buf, static_cast<std::size_t>(n));
  }
  REQUIRE(got == "\r\nOK\r\n");

  reactor.close(id); // graceful: flushed, then closed (no half-close on a tty)
  REQUIRE(rec->wait([&] { return rec->closed.count(id) == 1; }));
  REQUIRE(rec->closed[id] == std::vector<std::string>{"closed"});
  REQUIRE(closed_fd == master);
  ::close(slave);
}

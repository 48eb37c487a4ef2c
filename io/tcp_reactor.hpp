#pragma once
// A small epoll reactor for TCP links: one I/O thread drives every socket of the process (the
// server's meter links and the simulator's thousand listening ports), so an open session never
// holds a thread.
//
// Threading contract
// ------------------
// * The constructor starts one I/O thread. A second thread, the resolver, is started on the
//   first connect() to a DNS name (getaddrinfo blocks, so it never runs on the I/O thread);
//   IP literals never touch it. No other threads, whatever the number of connections.
// * Every public method is thread-safe and never blocks on I/O: it enqueues a command for the
//   I/O thread and returns. listen() is the exception that proves the rule: it creates, binds
//   and listens on the calling thread (cheap, non-blocking system calls) so that it can throw;
//   only the epoll registration is deferred.
// * Handler callbacks run on the I/O thread, one at a time, so never concurrently for the same
//   connection (nor for different ones). They must be fast and must not block (the usual body
//   is a caf::anon_send). They may call any public method except stop() and the destructor;
//   such calls are queued, so a callback never observes its own calls taking effect before it
//   returns. Callbacks must not throw: an exception escaping on_connected, on_data or on_accept
//   closes that connection ("handler error: <what>"); one escaping a terminal callback is
//   swallowed.
// * Handlers are held by shared_ptr until their connection's terminal callback has returned,
//   so the caller may drop its own reference at any time.
// * Every connection id gets exactly one terminal callback: on_connect_failed for an outgoing
//   connection that never got connected (including close() while connecting and reactor
//   shutdown), otherwise on_closed. on_connected is only called for outgoing connections; an
//   accepted connection is open as soon as on_accept returns a handler.
// * stop() (and the destructor) must not be called from a callback. They deliver the terminal
//   callbacks of all live connections ("reactor stopped") on the I/O thread, close every
//   socket, and join the threads. The join may wait for a getaddrinfo in progress. After
//   stop(), send/close/post are ignored and connect() reports on_connect_failed("reactor
//   stopped") synchronously on the calling thread.
// * Every wait has a deadline: connect() takes a timeout covering resolution and the TCP
//   handshake; a graceful close() that cannot flush within options::close_timeout is forced.
//   Reads have no deadline here: the protocol layer times its own stages.
// * Timers use one timerfd (microsecond resolution); nothing polls or sleeps.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mts::io {

// Connection and listener ids come from one counter, are never reused and are never 0.
using connection_id = std::uint64_t;
using listener_id = std::uint64_t;
// Timer ids come from the same counter (never 0, never reused).
using timer_id = std::uint64_t;

// Receives the events of one connection. All methods run on the I/O thread.
class link_handler {
public:
  virtual ~link_handler() = default;
  // An outgoing connection completed its handshake. Data sent before this is already queued.
  virtual void on_connected(connection_id) {}
  // Terminal: an outgoing connection never got connected. reason is e.g. "connection refused",
  // "connection timed out", "cannot resolve host <host>", "too many connections", "closed".
  virtual void on_connect_failed(connection_id, const std::string& /*reason*/) {}
  // Bytes received. The view is only valid during the call.
  virtual void on_data(connection_id, std::string_view /*bytes*/) {}
  // Terminal: an open connection is gone. reason is "closed by peer", "closed" (by close() or
  // close_now()), "connection reset", "send buffer overflow", "reactor stopped" or an I/O
  // error text.
  virtual void on_closed(connection_id, const std::string& /*reason*/) {}
};

// Decides what to do with each connection a listener accepts. Runs on the I/O thread.
class accept_handler {
public:
  virtual ~accept_handler() = default;
  // peer is "address:port" ("[v6]:port" for IPv6). Return nullptr to refuse (the socket is
  // closed at once and no callback follows for this id).
  virtual std::shared_ptr<link_handler> on_accept(connection_id, const std::string& peer) = 0;
};

// Turns a host name into numeric addresses ("127.0.0.1", "::1"), tried in order. An empty
// result or an exception means "cannot resolve host". Runs on the resolver thread.
using resolver_function = std::function<std::vector<std::string>(const std::string& host)>;

// The default resolver: getaddrinfo, IPv4 and IPv6, in the order the system prefers.
std::vector<std::string> resolve_with_getaddrinfo(const std::string& host);

class tcp_reactor {
public:
  struct options {
    // Live connections (connecting and open, outgoing and accepted). Beyond it connect()
    // fails with "too many connections" and accepted sockets are closed at once.
    std::size_t max_connections = 65536;
    // Unsent bytes per connection; a send() that would exceed it closes the connection with
    // "send buffer overflow".
    std::size_t max_send_buffer = 1024 * 1024;
    // How long a graceful close() may take to flush before the socket is closed anyway.
    std::chrono::milliseconds close_timeout{30000};
    int listen_backlog = 4096;
    // Injectable for tests; empty means resolve_with_getaddrinfo.
    resolver_function resolver;
  };

  tcp_reactor();
  explicit tcp_reactor(options opts);
  ~tcp_reactor();
  tcp_reactor(const tcp_reactor&) = delete;
  tcp_reactor& operator=(const tcp_reactor&) = delete;

  // Starts an outgoing connection. host is an IPv4 or IPv6 literal ("[::1]" accepted) or a DNS
  // name. The timeout covers resolution and handshake; zero or less means none. Exactly one of
  // on_connected / on_connect_failed follows.
  connection_id connect(std::string host, std::uint16_t port, std::chrono::milliseconds timeout,
                        std::shared_ptr<link_handler> handler);

  // Takes over an open descriptor that is not a socket (a serial port, a pseudo-terminal):
  // it is made non-blocking and driven like an open outgoing connection (read/write instead
  // of recv/send), and on_connected follows on the I/O thread. A graceful close flushes the
  // output and then closes (there is no half-close). before_close, if given, runs on the I/O
  // thread just before the descriptor is closed, whatever the reason (a serial port drops
  // DTR there). If the reactor is stopped, the descriptor is closed and on_connect_failed
  // ("reactor stopped") follows synchronously.
  connection_id adopt(int fd, std::shared_ptr<link_handler> handler,
                      std::function<void(int fd)> before_close = {});

  // Listens on a numeric address ("" means 0.0.0.0, "::" means all IPv6 and usually IPv4 too);
  // port 0 picks a free port (see listening_port). Throws std::system_error naming
  // address:port when the socket cannot be bound or listened on.
  listener_id listen(std::string address, std::uint16_t port,
                     std::shared_ptr<accept_handler> handler);
  // The bound port of a listener, 0 when unknown or closed.
  std::uint16_t listening_port(listener_id id) const;
  // Stops accepting; connections already accepted are unaffected.
  void close_listener(listener_id id);

  // Queues bytes for sending. Ignored for unknown or closing connections.
  void send(connection_id id, std::string bytes);
  // Queues bytes written one at a time, one per_byte slot each (9600 baud with 10-bit
  // characters is 1042 us): byte k of a run never leaves before k * per_byte after the first,
  // and a byte sent late (timer latency) does not delay the slots after it, so the average
  // rate is the line's. Later sends, paced or not, go out after these, and not before
  // per_byte after the last paced byte. per_byte <= 0 is a plain send.
  void send_paced(connection_id id, std::string bytes, std::chrono::microseconds per_byte);
  // Graceful: stops delivering input (it is read and dropped), flushes queued output, shuts
  // down the write side (our FIN), keeps draining input until the peer's FIN, then closes
  // (all within options::close_timeout, after which the socket is closed anyway), then the
  // terminal callback with "closed". Closing with unread input would send a reset that can
  // destroy data the peer has not read yet. While still connecting: with output queued,
  // the close waits for the handshake and the flush; without, the connect is abandoned
  // (on_connect_failed "closed").
  void close(connection_id id);
  // Drops queued output and closes at once ("closed").
  void close_now(connection_id id);
  // Runs fn on the I/O thread. Exceptions are swallowed.
  void post(std::function<void()> fn);
  // Waits until the I/O thread has run everything posted before (registrations, closes), at
  // most `limit` (a stopped reactor never runs it): false when the limit passed.
  bool wait_for_posted(std::chrono::milliseconds limit);

  // Runs fn once on the I/O thread, delay (at least) from now, through the reactor's timerfd.
  // Exceptions are swallowed. After stop() nothing is scheduled (an id is still returned) and
  // timers still pending are dropped without running.
  timer_id schedule(std::chrono::microseconds delay, std::function<void()> fn);
  // Once cancel_timer returns, fn will not start (unlike the other methods this takes effect
  // at once, from any thread, callbacks included); if it is running on the I/O thread at that
  // moment, it completes. Unknown, fired or cancelled ids are ignored.
  void cancel_timer(timer_id id);

  // Closes everything and joins the threads (see the contract above). Idempotent.
  void stop();

  // Counters, readable from any thread.
  std::size_t open_connections() const { return open_.load(); }      // established now
  std::size_t peak_open_connections() const { return peak_.load(); }
  std::uint64_t total_accepted() const { return accepted_.load(); }  // kept by on_accept
  std::uint64_t total_connected() const { return connected_.load(); } // outgoing, established

private:
  struct connection;
  struct listener;
  struct timer;
  using clock = std::chrono::steady_clock;

  bool enqueue(std::function<void()> fn);
  void run();
  void run_commands();
  void run_timers();
  void arm_timerfd();
  void add_timer(clock::time_point when, std::uint64_t id, int kind);

  void do_connect(connection_id id, std::string host, std::uint16_t port,
                  std::chrono::milliseconds timeout, std::shared_ptr<link_handler> h);
  void on_resolved(connection_id id, std::vector<std::string> addresses, std::string error);
  void try_next_address(connection& c);
  void on_connect_event(connection& c, std::uint32_t events);
  void on_open(connection& c);
  static void refuse_adopted(connection_id id, int fd, const std::shared_ptr<link_handler>& h,
                             const std::function<void(int)>& before_close, const char* reason);
  void on_connection_event(connection& c, std::uint32_t events);
  void on_listener_event(listener& l);
  void do_adopt(connection_id id, int fd, std::shared_ptr<link_handler> h, std::function<void(int)> before_close);
  void do_send(connection_id id, std::string bytes, std::chrono::microseconds per_byte);
  void do_close(connection_id id, bool graceful);
  void flush(connection& c);
  void output_flushed_while_closing(connection& c);
  void update_interest(connection& c);
  void finish(connection_id id, const std::string& reason);
  void shutdown_all();

  void resolver_loop();
  void start_resolver();

  options opts_;
  int epoll_fd_ = -1;
  int event_fd_ = -1;
  int timer_fd_ = -1;
  std::thread io_thread_;

  // Command queue: any thread -> I/O thread.
  std::mutex queue_mutex_;
  std::vector<std::function<void()>> queue_;
  bool accepting_commands_ = true;

  std::atomic<std::uint64_t> next_id_{16};
  std::atomic<bool> stopped_{false};
  std::mutex stop_mutex_;

  // Owned by the I/O thread.
  bool running_ = true;
  std::unordered_map<connection_id, std::unique_ptr<connection>> connections_;
  std::unordered_map<listener_id, std::unique_ptr<listener>> listeners_;
  std::vector<timer> timers_; // a min-heap

  // Functions of schedule()d timers not yet run or cancelled (any thread, under the mutex).
  std::mutex user_timers_mutex_;
  std::unordered_map<timer_id, std::function<void()>> user_timers_;
  clock::time_point armed_{};
  std::vector<char> read_buffer_;

  // Listener ports, for listening_port().
  mutable std::mutex ports_mutex_;
  std::unordered_map<listener_id, std::uint16_t> ports_;

  // Resolver thread and its queue.
  struct resolve_job {
    connection_id id;
    std::string host;
  };
  std::thread resolver_thread_;
  std::mutex resolver_mutex_;
  std::condition_variable resolver_cv_;
  std::deque<resolve_job> resolver_queue_;
  bool resolver_stop_ = false;

  std::atomic<std::size_t> open_{0};
  std::atomic<std::size_t> peak_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> connected_{0};
};

} // namespace mts::io

#include "sim/server.hpp"

#include "common/json.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <type_traits>
#include <unordered_map>
#include <variant>

namespace mts::sim {

namespace {
class session;
}

drivers::unix_ms meters_clock_ms(const server_options& options, std::chrono::steady_clock::time_point started) {
  using namespace std::chrono;
  if (!options.start_time)
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  const auto base = *options.start_time * 1000;
  if (options.freeze_clock)
    return base;
  return base + duration_cast<milliseconds>(steady_clock::now() - started).count();
}

struct sim_server::shared {
  shared(io::tcp_reactor& r, std::vector<sim_meter> m, server_options o)
      : reactor(r), meters(std::move(m)), options(std::move(o)) {
    options.meter_config.pinned_now.reset();
    counters.per_meter.resize(meters.size());
    counters.traffic.resize(meters.size());
  }

  io::tcp_reactor& reactor;
  const std::vector<sim_meter> meters;
  server_options options;
  std::vector<std::uint16_t> ports;
  std::vector<io::listener_id> listeners;
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  mutable std::mutex m; // guards what follows
  server_counters counters;
  bool stopping = false;
  std::unordered_map<io::connection_id, std::size_t> live; // connection -> meter index

  drivers::unix_ms now_ms() const { return meters_clock_ms(options, started); }

  // The meter's session number (from 1), or nothing when the server is going away (the
  // connection is refused).
  std::optional<std::uint64_t> session_started(std::size_t index, io::connection_id id) {
    std::lock_guard<std::mutex> lock(m);
    if (stopping)
      return std::nullopt;
    live.emplace(id, index);
    for (auto* c : {&counters.overall, &counters.per_meter[index]}) {
      ++c->now;
      ++c->total;
      if (c->now > c->peak)
        c->peak = c->now;
    }
    return counters.per_meter[index].total;
  }
  void session_ended(std::size_t index, io::connection_id id, double duration_ms) {
    std::lock_guard<std::mutex> lock(m);
    if (live.erase(id) == 0)
      return;
    --counters.overall.now;
    --counters.per_meter[index].now;
    counters.traffic[index].last_session_ms = duration_ms;
  }
  void count_received(std::size_t index, int baud, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(m);
    counters.traffic[index].bytes_received[baud] += bytes;
    counters.traffic[index].reads += 1;
  }
  void count_sent(std::size_t index, int baud, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(m);
    counters.traffic[index].bytes_sent[baud] += bytes;
    counters.traffic[index].replies += 1;
  }
};

namespace {

using shared_state = sim_server::shared;

class session : public io::link_handler, public std::enable_shared_from_this<session> {
public:
  session(std::shared_ptr<shared_state> s, std::size_t index, io::connection_id id, std::uint64_t number)
      : s_(std::move(s)), index_(index), id_(id),
        meter_(make_meter_session(s_->meters[index].identity, s_->meters[index].faults, s_->options.meter_config,
                                  number)) {}

  void start() { execute(meter_->on_link_up(s_->now_ms())); }

  void on_data(io::connection_id, std::string_view bytes) override {
    if (closing_)
      return;
    s_->count_received(index_, meter_->line().baud, bytes.size());
    execute(meter_->on_bytes(bytes, s_->now_ms()));
  }

  void on_closed(io::connection_id, const std::string& reason) override {
    cancel_timer();
    if (!meter_->closed())
      (void)meter_->on_link_down(s_->now_ms()); // a closed link: nothing left to do
    closing_ = true;
    const std::chrono::duration<double, std::milli> lasted = std::chrono::steady_clock::now() - accepted_;
    s_->session_ended(index_, id_, lasted.count());
    spdlog::debug("meter {} ({}): session {} ended: {}", index_, s_->meters[index_].identity.serial, id_, reason);
  }

private:
  void cancel_timer() {
    if (timer_ != 0)
      s_->reactor.cancel_timer(timer_);
    timer_ = 0;
  }

  void fire(std::uint64_t meter_timer) {
    timer_ = 0;
    if (!closing_)
      execute(meter_->on_timer(meter_timer, s_->now_ms()));
  }

  std::chrono::microseconds per_byte() const {
    const int pace = s_->meters[index_].faults.pace_baud;
    if (pace <= 0)
      return std::chrono::microseconds{0};
    const int baud = std::max(1, std::min(pace, meter_->line().baud));
    return std::chrono::microseconds{(10 * 1000000 + baud - 1) / baud}; // 10 bits a character
  }

  void execute(const drivers::actions& actions) {
    for (const auto& a : actions) {
      if (closing_)
        return;
      std::visit(
          [&](const auto& act) {
            using T = std::decay_t<decltype(act)>;
            if constexpr (std::is_same_v<T, drivers::send_bytes>) {
              s_->count_sent(index_, meter_->line().baud, act.data.size());
              const auto pace = per_byte();
              if (pace.count() > 0)
                s_->reactor.send_paced(id_, act.data, pace);
              else
                s_->reactor.send(id_, act.data);
            } else if constexpr (std::is_same_v<T, drivers::arm_timer>) {
              cancel_timer();
              std::weak_ptr<session> self = weak_from_this();
              timer_ = s_->reactor.schedule(act.after, [self, id = act.id] {
                if (auto s = self.lock())
                  s->fire(id);
              });
            } else if constexpr (std::is_same_v<T, drivers::cancel_timer>) {
              cancel_timer();
            } else if constexpr (std::is_same_v<T, drivers::change_line>) {
              // Pacing follows meter_->line() at each send.
            } else if constexpr (std::is_same_v<T, drivers::finish>) {
              cancel_timer();
              closing_ = true;
              s_->reactor.close(id_);
            }
          },
          a);
    }
  }

  std::shared_ptr<shared_state> s_;
  std::size_t index_;
  io::connection_id id_;
  std::unique_ptr<meter_session> meter_;
  io::timer_id timer_ = 0;
  bool closing_ = false;
  const std::chrono::steady_clock::time_point accepted_ = std::chrono::steady_clock::now();
};

class acceptor : public io::accept_handler {
public:
  acceptor(std::shared_ptr<shared_state> s, std::size_t index) : s_(std::move(s)), index_(index) {}

  std::shared_ptr<io::link_handler> on_accept(io::connection_id id, const std::string& peer) override {
    const auto number = s_->session_started(index_, id);
    if (!number)
      return nullptr;
    spdlog::debug("meter {} ({}): session {} from {}", index_, s_->meters[index_].identity.serial, id, peer);
    auto sess = std::make_shared<session>(s_, index_, id, *number);
    sess->start();
    return sess;
  }

private:
  std::shared_ptr<shared_state> s_;
  std::size_t index_;
};

} // namespace

sim_server::sim_server(io::tcp_reactor& reactor, std::vector<sim_meter> meters, server_options options)
    : shared_(std::make_shared<shared>(reactor, std::move(meters), std::move(options))) {
  for (const auto& m : shared_->meters)
    check_simulated_driver(m.identity.driver, m.identity.type);
  auto& s = *shared_;
  s.ports.assign(s.meters.size(), 0);
  s.listeners.reserve(s.meters.size());
  try {
    for (std::size_t i = 0; i < s.meters.size(); ++i) {
      const auto id = reactor.listen(s.options.address, s.meters[i].port, std::make_shared<acceptor>(shared_, i));
      s.listeners.push_back(id);
      s.ports[i] = reactor.listening_port(id);
      if (s.meters[i].faults.refuse_connection)
        reactor.close_listener(id);
    }
  } catch (...) {
    for (auto id : s.listeners)
      reactor.close_listener(id);
    throw;
  }
  // Listener registration and closing run on the I/O thread: wait until they have, so a
  // refusing port refuses as soon as the constructor returns (bounded: a stopped reactor
  // never runs it).
  reactor.wait_for_posted(std::chrono::seconds(10));
}

sim_server::~sim_server() {
  std::vector<io::connection_id> open;
  {
    std::lock_guard<std::mutex> lock(shared_->m);
    shared_->stopping = true;
    for (const auto& [id, index] : shared_->live)
      open.push_back(id);
  }
  for (auto id : shared_->listeners)
    shared_->reactor.close_listener(id);
  for (auto id : open)
    shared_->reactor.close_now(id);
}

std::size_t sim_server::size() const { return shared_->meters.size(); }
const sim_meter& sim_server::meter(std::size_t index) const { return shared_->meters.at(index); }
std::uint16_t sim_server::port(std::size_t index) const { return shared_->ports.at(index); }

std::string sim_server::meter_line(std::size_t index) const {
  return meter_json_line(meter(index).identity, shared_->options.address, port(index));
}

server_counters sim_server::counters() const {
  std::lock_guard<std::mutex> lock(shared_->m);
  return shared_->counters;
}

std::string sim_server::counters_json() const {
  const auto c = counters();
  namespace bj = boost::json;
  const auto by_baud = [](const std::map<int, std::uint64_t>& bytes) {
    bj::object o;
    for (const auto& [baud, n] : bytes)
      o[std::to_string(baud)] = n;
    return o;
  };
  bj::array meters;
  for (std::size_t i = 0; i < c.per_meter.size(); ++i) {
    const auto& t = c.traffic[i];
    bj::object m{{"port", port(i)},
                 {"serialNumber", meter(i).identity.serial},
                 {"sessionsNow", c.per_meter[i].now},
                 {"sessionsPeak", c.per_meter[i].peak},
                 {"sessionsTotal", c.per_meter[i].total},
                 {"bytesReceived", by_baud(t.bytes_received)},
                 {"bytesSent", by_baud(t.bytes_sent)},
                 {"reads", t.reads},
                 {"replies", t.replies}};
    if (t.last_session_ms)
      m["lastSessionMs"] = *t.last_session_ms;
    meters.push_back(std::move(m));
  }
  return json::serialize(bj::object{{"sessionsNow", c.overall.now},
                                    {"sessionsPeak", c.overall.peak},
                                    {"sessionsTotal", c.overall.total},
                                    {"meters", std::move(meters)}});
}

} // namespace mts::sim

#include "sim/modem_server.hpp"

#include "common/json.hpp"
#include "sim/meter_session.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <mutex>
#include <system_error>
#include <termios.h>
#include <type_traits>
#include <unistd.h>

namespace mts::sim {

std::string modem_number(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0100%07zu", i + 1);
  return buf;
}

std::string drop_number(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0800%07zu", i + 1);
  return buf;
}

number_plan make_number_plan(std::size_t meter_count) {
  return [meter_count](const std::string& number) {
    dial_target t;
    if (number == busy_number) {
      t.what = dial_target::kind::busy;
    } else if (number == no_answer_number) {
      t.what = dial_target::kind::no_answer;
    } else if (number == no_carrier_number) {
      t.what = dial_target::kind::no_carrier;
    } else if (number.size() == 11 && (number.rfind("0100", 0) == 0 || number.rfind("0800", 0) == 0)) {
      const auto index = std::stoull(number.substr(4));
      if (index >= 1 && index <= meter_count) {
        t.what = dial_target::kind::meter;
        t.meter = static_cast<std::size_t>(index - 1);
        t.drop_mid_call = number[1] == '8';
      }
    }
    return t;
  };
}

number_plan make_number_plan(const std::vector<sim_meter>& meters) {
  std::vector<drivers::line_settings> formats;
  for (const auto& m : meters)
    formats.push_back(m.identity.line.value_or(drivers::line_settings{9600, 7, 'E', 1}));
  return [plan = make_number_plan(meters.size()), formats](const std::string& number) {
    dial_target t = plan(number);
    if (t.what == dial_target::kind::meter) {
      t.format = formats.at(t.meter);
      t.format.baud = 9600; // the call's speed is the modem's
    }
    return t;
  };
}

struct modem_server::shared {
  shared(io::tcp_reactor& r, std::vector<sim_meter> m, server_options mo, modem_server_options o)
      : reactor(r), meters(std::move(m)), meter_options(std::move(mo)), options(std::move(o)),
        plan(make_number_plan(meters)) {
    meter_options.meter_config.pinned_now.reset();
  }
  io::tcp_reactor& reactor;
  const std::vector<sim_meter> meters;
  server_options meter_options;
  modem_server_options options;
  number_plan plan;
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::uint16_t port = 0;
  std::optional<io::listener_id> listener;
  std::string pty_path;
  int pty_slave = -1; // held open by the server (see the header)

  mutable std::mutex m;
  modem_counters counters;
  std::vector<io::connection_id> live;
  bool stopping = false;
  std::vector<std::uint64_t> meter_sessions = std::vector<std::uint64_t>(meters.size(), 0);

  // The modem's own time (guard times, delays): steady, whatever the meters' clock is (it may
  // be frozen).
  drivers::unix_ms modem_ms() const {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now() - started).count() + 1000000;
  }
  drivers::unix_ms now_ms() const { return meters_clock_ms(meter_options, started); }
  // Returns the dialled meter's session number (from 1): it picks the Elster P0 seed.
  std::uint64_t call_started(std::size_t meter) {
    std::lock_guard<std::mutex> lock(m);
    ++counters.now;
    ++counters.total;
    counters.peak = std::max(counters.peak, counters.now);
    return ++meter_sessions.at(meter);
  }
  void call_finished(call_end cause) {
    std::lock_guard<std::mutex> lock(m);
    --counters.now;
    switch (cause) {
    case call_end::hangup: ++counters.hangup; break;
    case call_end::meter_closed: ++counters.meter_closed; break;
    case call_end::dropped: ++counters.dropped; break;
    case call_end::dte_gone: ++counters.link_closed; break;
    }
  }
  bool line_opened(io::connection_id id) {
    std::lock_guard<std::mutex> lock(m);
    if (stopping)
      return false;
    ++counters.lines;
    live.push_back(id);
    return true;
  }
  void line_closed(io::connection_id id) {
    std::lock_guard<std::mutex> lock(m);
    live.erase(std::remove(live.begin(), live.end(), id), live.end());
  }
};

namespace {

using shared_state = modem_server::shared;

// One modem line and, while a call is up, the dialled meter's session. I/O thread only.
class line_session : public io::link_handler, public std::enable_shared_from_this<line_session> {
public:
  line_session(std::shared_ptr<shared_state> s, io::connection_id id)
      : s_(std::move(s)), id_(id), line_(s_->options.modem, s_->plan) {}

  void bind(io::connection_id id) { id_ = id; }

  void on_connected(io::connection_id id) override { id_ = id; }

  void on_data(io::connection_id, std::string_view bytes) override {
    if (closed_)
      return;
    run(line_.on_dte_bytes(bytes, s_->modem_ms()));
  }

  void on_closed(io::connection_id, const std::string& reason) override {
    if (closed_)
      return;
    run(line_.on_dte_gone(s_->modem_ms()));
    closed_ = true;
    cancel(modem_timer_);
    s_->line_closed(id_);
    spdlog::debug("modem line {} closed: {}", id_, reason);
  }
  void on_connect_failed(io::connection_id, const std::string& reason) override {
    spdlog::error("modem line {}: {}", id_, reason);
  }

private:
  void cancel(io::timer_id& t) {
    if (t != 0)
      s_->reactor.cancel_timer(t);
    t = 0;
  }

  void run(const modem_actions& actions) {
    for (const auto& a : actions) {
      if (closed_)
        return;
      std::visit(
          [&](const auto& act) {
            using T = std::decay_t<decltype(act)>;
            if constexpr (std::is_same_v<T, to_dte>) {
              s_->reactor.send(id_, act.bytes);
            } else if constexpr (std::is_same_v<T, start_call>) {
              const auto& m = s_->meters.at(act.meter);
              meter_ = make_meter_session(m.identity, m.faults, s_->meter_options.meter_config,
                                          s_->call_started(act.meter), true);
              spdlog::debug("modem line {}: call to {} connected", id_, line_.dialled());
              run_meter(meter_->on_link_up(s_->now_ms()));
            } else if constexpr (std::is_same_v<T, to_meter>) {
              if (meter_ && !meter_->closed())
                run_meter(meter_->on_bytes(act.characters, s_->now_ms()));
            } else if constexpr (std::is_same_v<T, call_ended>) {
              stop_meter();
              s_->call_finished(act.cause);
              spdlog::debug("modem line {}: call ended ({})", id_, call_end_name(act.cause));
            } else if constexpr (std::is_same_v<T, arm_modem_timer>) {
              cancel(modem_timer_);
              std::weak_ptr<line_session> self = weak_from_this();
              modem_timer_ = s_->reactor.schedule(act.after, [self, id = act.id] {
                if (auto s = self.lock()) {
                  s->modem_timer_ = 0;
                  if (!s->closed_)
                    s->run(s->line_.on_timer(id, s->s_->modem_ms()));
                }
              });
            }
          },
          a);
    }
  }

  void stop_meter() {
    cancel(meter_timer_);
    if (meter_ && !meter_->closed())
      (void)meter_->on_link_down(s_->now_ms());
    meter_.reset();
  }

  void run_meter(const drivers::actions& actions) {
    const auto generation = ++meter_generation_;
    for (const auto& a : actions) {
      if (closed_ || !meter_ || generation != meter_generation_)
        return;
      if (auto* send = std::get_if<drivers::send_bytes>(&a)) {
        run(line_.on_meter_characters(send->data, s_->modem_ms()));
      } else if (auto* arm = std::get_if<drivers::arm_timer>(&a)) {
        cancel(meter_timer_);
        std::weak_ptr<line_session> self = weak_from_this();
        meter_timer_ = s_->reactor.schedule(arm->after, [self, id = arm->id] {
          if (auto s = self.lock()) {
            s->meter_timer_ = 0;
            if (!s->closed_ && s->meter_)
              s->run_meter(s->meter_->on_timer(id, s->s_->now_ms()));
          }
        });
      } else if (std::holds_alternative<drivers::cancel_timer>(a)) {
        cancel(meter_timer_);
      } else if (std::holds_alternative<drivers::finish>(a)) {
        cancel(meter_timer_);
        run(line_.on_meter_closed(s_->modem_ms()));
        meter_.reset();
        return;
      }
      // change_line: the meter's speed is invisible behind the call.
    }
  }

  std::shared_ptr<shared_state> s_;
  io::connection_id id_;
  modem_line line_;
  std::unique_ptr<meter_session> meter_; // the dialled meter, whatever its type
  io::timer_id modem_timer_ = 0;
  io::timer_id meter_timer_ = 0;
  std::uint64_t meter_generation_ = 0;
  bool closed_ = false;
};

class line_acceptor : public io::accept_handler {
public:
  explicit line_acceptor(std::shared_ptr<shared_state> s) : s_(std::move(s)) {}
  std::shared_ptr<io::link_handler> on_accept(io::connection_id id, const std::string& peer) override {
    if (!s_->line_opened(id))
      return nullptr;
    spdlog::debug("modem line {} opened from {}", id, peer);
    return std::make_shared<line_session>(s_, id);
  }

private:
  std::shared_ptr<shared_state> s_;
};

[[noreturn]] void throw_errno(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

} // namespace

modem_server::modem_server(io::tcp_reactor& reactor, std::vector<sim_meter> meters, server_options meter_options,
                           modem_server_options options)
    : shared_(std::make_shared<shared>(reactor, std::move(meters), std::move(meter_options), std::move(options))) {
  auto& s = *shared_;
  if (s.options.tcp_port) {
    s.listener = reactor.listen(s.options.address, *s.options.tcp_port, std::make_shared<line_acceptor>(shared_));
    s.port = reactor.listening_port(*s.listener);
  }
  if (s.options.pty) {
    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
      throw_errno("posix_openpt");
    if (::grantpt(master) != 0 || ::unlockpt(master) != 0) {
      ::close(master);
      throw_errno("grantpt/unlockpt");
    }
    s.pty_path = ::ptsname(master);
    s.pty_slave = ::open(s.pty_path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s.pty_slave < 0) {
      ::close(master);
      throw_errno("open " + s.pty_path);
    }
    termios raw{};
    if (::tcgetattr(s.pty_slave, &raw) == 0) {
      ::cfmakeraw(&raw);
      ::tcsetattr(s.pty_slave, TCSANOW, &raw);
    }
    auto session = std::make_shared<line_session>(shared_, 0);
    const auto id = reactor.adopt(master, session);
    session->bind(id);
    s.line_opened(id);
  }
  // Registrations run on the I/O thread: wait for them (bounded) so the line is usable at once.
  reactor.wait_for_posted(std::chrono::seconds(10));
}

modem_server::~modem_server() {
  std::vector<io::connection_id> open;
  {
    std::lock_guard<std::mutex> lock(shared_->m);
    shared_->stopping = true;
    open = shared_->live;
  }
  if (shared_->listener)
    shared_->reactor.close_listener(*shared_->listener);
  for (auto id : open)
    shared_->reactor.close_now(id);
  if (shared_->pty_slave >= 0)
    ::close(shared_->pty_slave);
}


modem_counters modem_server::counters() const {
  std::lock_guard<std::mutex> lock(shared_->m);
  return shared_->counters;
}

std::string modem_server::json_line() const {
  namespace bj = boost::json;
  bj::array numbers, drops;
  for (std::size_t i = 0; i < shared_->meters.size(); ++i) {
    numbers.push_back(bj::string(modem_number(i)));
    drops.push_back(bj::string(drop_number(i)));
  }
  bj::object modem{{"numbers", std::move(numbers)},
                   {"dropNumbers", std::move(drops)},
                   {"busy", busy_number},
                   {"noAnswer", no_answer_number},
                   {"noCarrier", no_carrier_number}};
  if (shared_->options.tcp_port)
    modem["tcpPort"] = shared_->port;
  if (shared_->options.pty)
    modem["pty"] = shared_->pty_path;
  return json::serialize(bj::object{{"modem", std::move(modem)}});
}

std::string modem_server::counters_json() const {
  const auto c = counters();
  namespace bj = boost::json;
  return json::serialize(bj::object{{"modemCalls", bj::object{{"now", c.now},
                                                               {"peak", c.peak},
                                                               {"total", c.total},
                                                               {"hangup", c.hangup},
                                                               {"meterClosed", c.meter_closed},
                                                               {"dropped", c.dropped},
                                                               {"linkClosed", c.link_closed},
                                                               {"lines", c.lines}}}});
}

} // namespace mts::sim

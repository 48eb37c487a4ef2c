// The simulator's server in-process: simulated meters on one reactor, the product's IEC 62056-21
// driver on a second one, over real loopback TCP. Every wait is bounded.
#include "drivers/elster.hpp"
#include "drivers/iec62056_21.hpp"
#include "sim/elster_meter.hpp"
#include "io/tcp_reactor.hpp"
#include "sim/server.hpp"
#include "sim/sim_config.hpp"

#include "tests/unit/driver_harness.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>
#include <variant>

using namespace mts;
using namespace std::chrono_literals;

namespace {

// A built-in meter type (the registry the simulated meters of these tests are typed from).
const meter_type& builtin(const std::string& name) {
  static const meter_type_registry types;
  return *types.find(name);
}

constexpr unix_seconds start = 1709258400; // 2024-03-01T02:00:00Z

// Runs one driver session over a reactor connection; the driver's timers are reactor timers.
struct client : io::link_handler, std::enable_shared_from_this<client> {
  client(io::tcp_reactor& r, std::unique_ptr<drivers::meter_driver> d) : reactor(r), driver(std::move(d)) {}

  io::tcp_reactor& reactor;
  std::unique_ptr<drivers::meter_driver> driver;
  io::connection_id id = 0;
  io::timer_id timer = 0;
  std::mutex m;
  std::condition_variable cv;
  std::optional<drivers::finish> end;
  std::optional<std::string> connect_failed;
  bool closed = false;

  drivers::unix_ms now() const { return start * 1000; } // the meters' frozen clock

  void on_connected(io::connection_id) override { run(driver->on_link_up(now())); }
  void on_connect_failed(io::connection_id, const std::string& reason) override {
    std::lock_guard<std::mutex> lock(m);
    connect_failed = reason;
    cv.notify_all();
  }
  void on_data(io::connection_id, std::string_view bytes) override { run(driver->on_bytes(bytes, now())); }
  void on_closed(io::connection_id, const std::string&) override {
    run(driver->on_link_down(now()));
    std::lock_guard<std::mutex> lock(m);
    closed = true;
    cv.notify_all();
  }

  void run(const drivers::actions& actions) {
    for (const auto& a : actions) {
      {
        std::lock_guard<std::mutex> lock(m);
        if (end)
          return;
      }
      std::visit(
          [&](const auto& act) {
            using T = std::decay_t<decltype(act)>;
            if constexpr (std::is_same_v<T, drivers::send_bytes>) {
              reactor.send(id, act.data);
            } else if constexpr (std::is_same_v<T, drivers::arm_timer>) {
              reactor.cancel_timer(timer);
              std::weak_ptr<client> self = weak_from_this();
              timer = reactor.schedule(act.after, [self, tid = act.id] {
                if (auto c = self.lock())
                  c->run(c->driver->on_timer(tid, c->now()));
              });
            } else if constexpr (std::is_same_v<T, drivers::cancel_timer>) {
              reactor.cancel_timer(timer);
            } else if constexpr (std::is_same_v<T, drivers::finish>) {
              reactor.cancel_timer(timer);
              reactor.close(id);
              std::lock_guard<std::mutex> lock(m);
              end = act;
              cv.notify_all();
            }
          },
          a);
    }
  }

  bool wait_done(std::chrono::milliseconds limit = 10s) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, limit, [&] { return (end && closed) || connect_failed; });
  }
};

// Short delays and timeouts for loopback tests.
void make_fast(drivers::iec_session_settings& c) {
  c.reaction_delay = 5ms;
  c.baud_switch_delay = 5ms;
  c.response_timeout = 1000ms;
}

drivers::iec62056_21_config fast_driver() {
  drivers::iec62056_21_config c;
  make_fast(c);
  c.fast_reaction_delay = 5ms;
  return c;
}

drivers::elster_config fast_elster(const std::string& type) {
  auto c = type == sim::elster_a1140_type ? drivers::elster_a1140_config() : drivers::elster_a1700_config();
  make_fast(c);
  return c;
}

// What a client asks of meter `id`: its address, password and serial, survey [from, to).
drivers::session_request request_for(const sim::meter_identity& id, unix_seconds from, unix_seconds to) {
  drivers::session_request rq;
  rq.outstation_address = id.outstation_address;
  rq.password = id.password;
  rq.expected_serial = id.serial;
  rq.survey_from = from;
  rq.survey_to = to;
  return rq;
}

std::shared_ptr<client> run_client(io::tcp_reactor& reactor, std::uint16_t port, const drivers::session_request& rq,
                                   std::unique_ptr<drivers::meter_driver> driver = nullptr) {
  auto c = std::make_shared<client>(reactor, driver ? std::move(driver) : drivers::make_iec62056_21_driver(rq, fast_driver()));
  // The id is set on the I/O thread before any callback of the connection can run.
  std::mutex m;
  std::condition_variable cv;
  bool set = false;
  reactor.post([&] {
    c->id = reactor.connect("127.0.0.1", port, 2000ms, c);
    std::lock_guard<std::mutex> lock(m);
    set = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(m);
  REQUIRE(cv.wait_for(lock, 5s, [&] { return set; }));
  return c;
}

void check_equal(const drivers::meter_readings& got, const drivers::meter_readings& want) {
  CHECK(got.serial_number == want.serial_number);
  CHECK(got.meter_time == want.meter_time);
  CHECK(got.meter_time_taken == want.meter_time_taken);
  CHECK(got.status_events == want.status_events);
  REQUIRE(got.registers.has_value() == want.registers.has_value());
  if (want.registers) {
    REQUIRE(got.registers->size() == want.registers->size());
    for (std::size_t i = 0; i < want.registers->size(); ++i) {
      CHECK((*got.registers)[i].name == (*want.registers)[i].name);
      CHECK((*got.registers)[i].value == (*want.registers)[i].value);
      CHECK((*got.registers)[i].units == (*want.registers)[i].units);
      CHECK((*got.registers)[i].timestamp == (*want.registers)[i].timestamp);
    }
  }
  testing::require_equal_survey(got, want);
}

sim::server_options frozen() {
  sim::server_options o;
  o.start_time = start;
  o.freeze_clock = true;
  return o;
}

} // namespace

TEST_CASE("sim server: the IEC driver reads exactly the expected readings over TCP", "[sim_server]") {
  io::tcp_reactor meters_reactor, client_reactor;
  std::vector<sim::sim_meter> meters(2);
  meters[0].identity = sim::generated_identity(builtin(sim::simulated_type), 7, 0);
  meters[1].identity = sim::generated_identity(builtin(sim::simulated_type), 7, 1);
  meters[1].faults.power_failure_every_days = 1;
  meters[1].faults.error_register = 0x5;
  meters[1].faults.corrupt_bcc_every = 3;
  meters[1].faults.garbage_before_reply = "xx";
  meters[1].faults.survey_gaps = {start - 3 * sim::half_hour};
  sim::sim_server server(meters_reactor, meters, frozen());
  REQUIRE(server.size() == 2);

  for (std::size_t i = 0; i < 2; ++i) {
    const auto& id = server.meter(i).identity;
    const auto rq = request_for(id, start - 2 * seconds_per_day, start);
    auto c = run_client(client_reactor, server.port(i), rq);
    REQUIRE(c->wait_done());
    REQUIRE(c->end);
    CHECK(c->end->failure == drivers::failure_kind::none);
    CHECK(c->end->reason.empty());
    const auto want = sim::expected_readings(id, server.meter(i).faults, rq, start);
    REQUIRE(want.survey);
    CHECK(!want.survey->front().readings.empty());
    check_equal(c->driver->readings(), want);
  }
  const auto counters = server.counters();
  CHECK(counters.overall.total == 2);
  // The meter side may see a session's close after the next session began.
  CHECK(counters.overall.peak >= 1);
  CHECK(counters.overall.peak <= 2);
  CHECK(counters.per_meter[0].total == 1);
  CHECK(counters.per_meter[1].total == 1);
  CHECK(server.counters_json().find("\"sessionsTotal\":2") != std::string::npos);
}

TEST_CASE("sim server: Elster meters over TCP: both types, pacing, refusal", "[sim_server][elster]") {
  io::tcp_reactor meters_reactor, client_reactor;
  std::vector<sim::sim_meter> meters(3);
  meters[0].identity = sim::generated_identity(builtin(sim::elster_a1700_type), 9, 0);
  meters[0].faults.power_failure_every_days = 1;
  meters[1].identity = sim::generated_identity(builtin(sim::elster_a1140_type), 9, 1);
  meters[1].faults.pace_baud = 9600;
  meters[1].faults.password_timeout_after_reads = 8; // ~25 reads: 3 re-authentications
  meters[2].identity = sim::generated_identity(builtin(sim::elster_a1700_type), 9, 2);
  meters[2].faults.refuse_connection = true;
  sim::sim_server server(meters_reactor, meters, frozen());
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& id = server.meter(i).identity;
    const auto rq = request_for(id, start - seconds_per_day, start);
    for (int session = 0; session < 2; ++session) { // a new seed each time, the same result
      const auto t0 = std::chrono::steady_clock::now();
      auto c = run_client(client_reactor, server.port(i), rq, drivers::make_elster_driver(rq, fast_elster(id.type)));
      REQUIRE(c->wait_done(20s));
      REQUIRE(c->end);
      CHECK(c->end->failure == drivers::failure_kind::none);
      CHECK(c->end->reason == "");
      const auto want = sim::expected_readings(id, server.meter(i).faults, rq, start);
      REQUIRE(want.survey);
      CHECK(!want.survey->front().readings.empty());
      check_equal(c->driver->readings(), want);
      if (i == 1) // the 21-byte identification alone takes 21 * 33 ms at 300 baud
        CHECK(std::chrono::steady_clock::now() - t0 >= 690ms);
    }
  }
  CHECK(server.counters().per_meter[0].total == 2);
  drivers::session_request rq;
  auto refused = run_client(client_reactor, server.port(2), rq, drivers::make_elster_driver(rq, fast_elster("")));
  REQUIRE(refused->wait_done());
  CHECK(refused->connect_failed);
}

TEST_CASE("sim config: Elster types, passwords and the timeout fault", "[sim_server][elster]") {
  const auto a = sim::generated_identity(builtin(sim::elster_a1140_type), 7, 0);
  CHECK(a.type == "ELSTERA1140");
  CHECK(a.password.size() == 8);
  sim::meter_faults f;
  sim::apply_fault(f, "password_timeout_after_reads=4");
  CHECK(f.password_timeout_after_reads == 4);
  CHECK_THROWS_WITH(sim::apply_fault(f, "password_timeout_after_reads=-1"), Catch::Contains("password_timeout_after_reads"));
  CHECK_THROWS_WITH(sim::check_password(sim::generated_identity(builtin("ELSTERA1700"), 0, 0), "secret"), Catch::Contains("8 characters"));
  CHECK_NOTHROW(sim::check_password(sim::generated_identity(builtin("ELSTERA1700"), 0, 0), ""));
  CHECK_NOTHROW(sim::check_password(sim::generated_identity(builtin("IEC62056-21"), 0, 0), "secret"));

  // 2024-02-29: the whole day before `start`'s, no faults.
  const std::string request = R"({"serialNumber":")" + a.serial + R"(","password":")" + a.password +
                              R"(","surveyDays":1,"surveyDate":"2024-02-29"})";
  const auto json = sim::expected_result_json(a, {}, request, start);
  CHECK(json.rfind(R"({"result":"SUCCESS","serialNumber":")" + a.serial + "\"", 0) == 0);
  CHECK(json.find(R"("name":"kVAh","value":)") != std::string::npos);
  CHECK(json.find(R"("units":"kVAh")") != std::string::npos);
  CHECK(json.find("2024-02-29T23:30:00Z") != std::string::npos);
  CHECK(json.find("2024-03-01T00:00:00Z") == std::string::npos);
  sim::meter_faults status;
  status.error_register = 0x40000000;
  CHECK(sim::expected_result_json(a, status, request, start).find(R"("statusEvents":["Normal register backup used"])") !=
        std::string::npos);
  const std::string short_password = R"({"password":"secret","surveyDays":0})";
  CHECK(sim::expected_result_json(a, {}, short_password, start)
            .rfind(R"({"result":"ERROR: password must be 8 characters")", 0) == 0);
  sim::meter_faults timeouts;
  timeouts.password_timeout_after_reads = 1; // 4 reads at most, the session needs 5 without survey
  const auto cut = sim::expected_result_json(a, timeouts, R"({"password":")" + a.password + R"("})", start);
  CHECK(cut.rfind(R"({"result":"PARTIAL SUCCESS")", 0) == 0);
  CHECK(cut.find("registerValues") != std::string::npos);
  CHECK(cut.find("statusEvents") == std::string::npos); // 724 was the read that met the 4th timeout
  auto wrong = a;
  wrong.password = "secret";
  CHECK_THROWS_WITH(sim::expected_result_json(wrong, {}, request, start), Catch::Contains("8 characters"));
}

TEST_CASE("sim server: refused and silent meters", "[sim_server]") {
  io::tcp_reactor meters_reactor, client_reactor;
  std::vector<sim::sim_meter> meters(2);
  meters[0].identity = sim::generated_identity(builtin(sim::simulated_type), 1, 0);
  meters[0].faults.refuse_connection = true;
  meters[1].identity = sim::generated_identity(builtin(sim::simulated_type), 1, 1);
  meters[1].faults.silent = true;
  sim::sim_server server(meters_reactor, meters, frozen());
  REQUIRE(server.port(0) != 0);

  drivers::session_request rq;
  rq.password = server.meter(0).identity.password;

  // The constructor returns once the refusing listener is closed.
  auto refused = run_client(client_reactor, server.port(0), rq);
  REQUIRE(refused->wait_done());
  CHECK(refused->connect_failed == std::optional<std::string>("connection refused"));
  check_equal(refused->driver->readings(), sim::expected_readings(server.meter(0).identity, server.meter(0).faults, rq, start));

  rq.password = server.meter(1).identity.password;
  auto silent = run_client(client_reactor, server.port(1), rq);
  REQUIRE(silent->wait_done());
  REQUIRE(silent->end);
  CHECK(silent->end->failure == drivers::failure_kind::transient);
  CHECK(silent->end->reason == "no answer to sign-on");
  check_equal(silent->driver->readings(), sim::expected_readings(server.meter(1).identity, server.meter(1).faults, rq, start));
  CHECK(server.counters().per_meter[0].total == 0);
  CHECK(server.counters().per_meter[1].total == 1);
}

TEST_CASE("sim server: paced meters still give the full result, at the line's speed", "[sim_server]") {
  io::tcp_reactor meters_reactor, client_reactor;
  std::vector<sim::sim_meter> meters(1);
  meters[0].identity = sim::generated_identity(builtin(sim::simulated_type), 3, 0);
  meters[0].faults.pace_baud = 9600;
  sim::sim_server server(meters_reactor, meters, frozen());
  drivers::session_request rq;
  rq.password = server.meter(0).identity.password;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = run_client(client_reactor, server.port(0), rq);
  REQUIRE(c->wait_done());
  REQUIRE(c->end);
  CHECK(c->end->failure == drivers::failure_kind::none);
  // The 14-byte identification alone takes 14 * 33 ms at 300 baud.
  CHECK(std::chrono::steady_clock::now() - t0 >= 450ms);
  check_equal(c->driver->readings(), sim::expected_readings(server.meter(0).identity, server.meter(0).faults, rq, start));

  // Traffic by line speed: at 300 baud the meter got the sign-on "/?!\r\n" (5 bytes) and the
  // option select ACK "051\r\n" (6) and sent its identification "/SIM5MTS-SIM\r\n" (14);
  // everything else went at 9600. The session's duration is there once the meter saw the close.
  auto traffic = server.counters().traffic.at(0);
  for (int i = 0; i < 1000 && !traffic.last_session_ms; ++i) {
    std::this_thread::sleep_for(10ms);
    traffic = server.counters().traffic.at(0);
  }
  REQUIRE(traffic.last_session_ms);
  CHECK(*traffic.last_session_ms >= 450.0);
  CHECK(traffic.bytes_received.at(300) == 11);
  CHECK(traffic.bytes_sent.at(300) == 14);
  CHECK(traffic.bytes_received.at(9600) > 0);
  CHECK(traffic.bytes_sent.at(9600) > traffic.bytes_received.at(9600)); // the answers are longer
  CHECK(traffic.bytes_received.size() == 2);
  CHECK(traffic.bytes_sent.size() == 2);
  CHECK(traffic.replies >= 4); // identification, P0, password ACK, answers...
  const auto json = server.counters_json();
  CHECK(json.find(R"("bytesReceived":{"300":11,"9600":)") != std::string::npos);
  CHECK(json.find(R"("bytesSent":{"300":14,"9600":)") != std::string::npos);
  CHECK(json.find(R"("lastSessionMs":)") != std::string::npos);
}

TEST_CASE("sim config: faults from text, identities, expected JSON", "[sim_server]") {
  sim::meter_faults f;
  sim::apply_fault(f, "silent");
  sim::apply_fault(f, "pace_baud=1200");
  sim::apply_fault(f, "error_register=0x10");
  sim::apply_fault(f, "survey_gaps=2024-03-01T00:00:00Z,2024-03-01T00:30:00Z");
  CHECK(f.silent);
  CHECK(f.pace_baud == 1200);
  CHECK(f.error_register == 0x10);
  CHECK(f.survey_gaps.size() == 2);
  CHECK_THROWS_WITH(sim::apply_fault(f, "pace_baud"), Catch::Contains("pace_baud"));
  CHECK_THROWS_WITH(sim::apply_fault(f, "nonsense=1"), Catch::Contains("nonsense: unknown"));
  // Every product type is simulated now (the Elster types since issue 4).
  const meter_type_registry types;
  CHECK(sim::simulated_type_of(types, "ELSTERA1700").driver == "elster-a1700");
  CHECK(sim::simulated_type_of(types, "ELSTERA1140").driver == "elster-a1140");
  CHECK(sim::simulated_type_of(types, "IEC62056-21").driver == "iec62056-21");
  CHECK_THROWS_WITH(sim::simulated_type_of(types, "ELSTERA1800"), "unknown meter type \"ELSTERA1800\"");

  const auto a = sim::generated_identity(builtin(sim::simulated_type), 7, 0);
  const auto b = sim::generated_identity(builtin(sim::simulated_type), 7, 1);
  CHECK(a.serial.size() == 8);
  CHECK(a.serial != b.serial);
  CHECK(a.password.size() == 8);
  CHECK(a.outstation_address == "1");
  CHECK(a.clock_offset_seconds >= -120);
  CHECK(a.clock_offset_seconds <= 120);

  const std::string request = R"({"serialNumber":")" + a.serial + R"(","password":")" + a.password +
                              R"(","surveyDays":1,"surveyDate":"2024-02-29"})";
  const auto json1 = sim::expected_result_json(a, {}, request, start);
  CHECK(json1 == sim::expected_result_json(a, {}, request, start));
  CHECK(json1.rfind(R"({"result":"SUCCESS","serialNumber":")" + a.serial + "\"", 0) == 0);
  CHECK(json1.find("meterTime") == std::string::npos);
  CHECK(json1.find("2024-02-29T23:30:00Z") != std::string::npos);
  // One whole day from 2024-02-29 00:00: nothing of 2024-03-01.
  CHECK(json1.find("2024-03-01T00:00:00Z") == std::string::npos);

  sim::meter_faults reject;
  reject.reject_password = true;
  CHECK(sim::expected_result_json(a, reject, request, start).rfind(R"({"result":"ERROR: password rejected")", 0) == 0);
}

// The AT dialogue (drivers/at_modem.hpp) against hand-written modem transcripts, with a fake
// meter driver inside so that only the decorator's behaviour is under test.
#include "drivers/at_modem.hpp"

#include <catch2/catch.hpp>

using namespace mts::drivers;

namespace {

struct fake_meter : meter_driver {
  std::string received;
  int link_ups = 0, link_downs = 0;
  std::vector<std::uint64_t> timers;
  meter_readings none;
  actions on_link_up(unix_ms) override {
    ++link_ups;
    return {send_bytes{"/?!\r\n"}, arm_timer{std::chrono::milliseconds(1500), 5}};
  }
  actions on_bytes(std::string_view data, unix_ms) override {
    received.append(data);
    if (received.find("END") != std::string::npos)
      return {change_line{line_settings{9600, 7, 'E', 1}}, send_bytes{"B0"}, finish{}};
    return {};
  }
  actions on_timer(std::uint64_t id, unix_ms) override {
    timers.push_back(id);
    return {finish{failure_kind::transient, "no answer to sign-on"}};
  }
  actions on_link_down(unix_ms) override {
    ++link_downs;
    return {finish{failure_kind::transient, "line dropped"}};
  }
  const meter_readings& readings() const override { return none; }
};

std::string sent(const actions& acts) {
  std::string out;
  for (const auto& a : acts)
    if (auto* s = std::get_if<send_bytes>(&a))
      out += s->data;
  return out;
}

std::optional<arm_timer> armed(const actions& acts) {
  std::optional<arm_timer> last;
  for (const auto& a : acts)
    if (auto* t = std::get_if<arm_timer>(&a))
      last = *t;
  return last;
}

std::optional<finish> finished(const actions& acts) {
  for (const auto& a : acts)
    if (auto* f = std::get_if<finish>(&a))
      return *f;
  return std::nullopt;
}

struct dial_fixture {
  fake_meter* meter = nullptr;
  std::unique_ptr<at_modem_driver> modem;
  unix_ms now = 1'700'000'000'000;

  explicit dial_fixture(at_modem_config cfg = default_config()) {
    auto m = std::make_unique<fake_meter>();
    meter = m.get();
    modem = make_at_modem_driver(std::move(m), std::move(cfg));
  }
  static at_modem_config default_config() {
    at_modem_config c;
    c.number = "01234567";
    c.dial_prefix = "9,";
    c.init_strings = {"ATE0", "AT+CBST=7,0,1"};
    c.guard_time = std::chrono::milliseconds(1000);
    c.command_timeout = std::chrono::milliseconds(5000);
    c.connect_timeout = std::chrono::milliseconds(60000);
    c.call_format = line_settings{9600, 7, 'E', 1};
    return c;
  }
  actions expire(const actions& previous) {
    auto t = armed(previous);
    REQUIRE(t);
    now += t->after.count();
    return modem->on_timer(t->id, now);
  }
  actions bytes(std::string_view data) { return modem->on_bytes(data, now); }

  // Up to the ATD command; returns the actions that sent it.
  actions dial() {
    auto a = modem->on_link_up(now);
    REQUIRE(sent(a).empty());
    REQUIRE(armed(a)->after == std::chrono::milliseconds(1000)); // guard before +++
    a = expire(a);
    REQUIRE(sent(a) == "+++");
    REQUIRE(armed(a)->after == std::chrono::milliseconds(2000)); // twice the guard after
    auto b = expire(a);
    REQUIRE(sent(b) == "ATH\r");
    a = bytes("+++ATH\r\r\nOK\r\n"); // echo of what the modem's command line saw, then OK
    REQUIRE(sent(a) == "ATZ\r");
    a = bytes("ATZ\r\r\nOK\r\n");
    REQUIRE(sent(a) == "ATE0\r");
    a = bytes("ATE0\r\r\nOK\r\n");
    REQUIRE(sent(a) == "AT+CBST=7,0,1\r");
    a = bytes("\r\nOK\r\n");
    REQUIRE(sent(a) == "ATD9,01234567\r");
    REQUIRE(armed(a)->after == std::chrono::milliseconds(60000));
    return a;
  }
};

} // namespace

TEST_CASE("at_modem: a dialled call carries the meter session in 7E1 and is hung up with guard times", "[at_modem]") {
  dial_fixture f;
  f.dial();
  auto a = f.bytes("\r\nCONNECT 9600\r\n");
  REQUIRE(f.meter->link_ups == 1);
  REQUIRE(f.modem->call_started() == f.now);
  // "/?!\r\n" with even parity in bit 7: '/' 0x2F has five ones -> 0xAF, CR 0x0D three -> 0x8D.
  REQUIRE(sent(a) == std::string("\xAF\x3F\x21\x8D\x0A"));
  REQUIRE(armed(a)->id == 10); // the inner driver's timer 5, doubled
  // The meter answers in 7E1: 'E' 0x45 (three ones) -> 0xC5, 'N' 0x4E (four) -> 0x4E,
  // 'D' 0x44 (two) -> 0x44.
  a = f.bytes(std::string("\xC5\x4E\x44", 3));
  REQUIRE(f.meter->received == "END");
  REQUIRE(sent(a) == "B0");                       // 'B' 0x42, '0' 0x30: both even already
  REQUIRE_FALSE(finished(a));                     // the hang-up comes first
  REQUIRE(f.modem->dropped_line_changes() == 1);  // the baud switch cannot follow a call
  REQUIRE(armed(a)->after == std::chrono::milliseconds(1000));
  a = f.expire(a);
  REQUIRE(sent(a) == "+++");
  REQUIRE(armed(a)->after == std::chrono::milliseconds(6000)); // guard + command timeout
  a = f.bytes(std::string("\xC5", 1) + "\r\nOK\r\n"); // a late meter byte, then the escape's OK
  REQUIRE(sent(a) == "ATH\r");
  a = f.bytes("\r\nOK\r\n");
  auto fin = finished(a);
  REQUIRE(fin);
  REQUIRE(fin->failure == failure_kind::none);
  REQUIRE_FALSE(f.modem->modem_fault());
}

TEST_CASE("at_modem: CONNECT and the first meter bytes in one read", "[at_modem]") {
  auto cfg = dial_fixture::default_config();
  cfg.call_format = line_settings{9600, 8, 'N', 1};
  dial_fixture f(cfg);
  f.dial();
  auto a = f.bytes("\r\nCONNECT\r\nxxEND");
  REQUIRE(f.meter->link_ups == 1);
  REQUIRE(f.meter->received == "xxEND");
  REQUIRE(sent(a) == "/?!\r\nB0");
}

TEST_CASE("at_modem: dial failures map to results, and the modem's own faults are flagged", "[at_modem]") {
  struct row {
    const char* reply;
    failure_kind kind;
    const char* reason;
    bool fault;
  };
  const row rows[] = {
      {"\r\nBUSY\r\n", failure_kind::transient, "line busy", false},
      {"\r\nNO ANSWER\r\n", failure_kind::transient, "no answer", false},
      {"\r\nNO CARRIER\r\n", failure_kind::transient, "no carrier", false},
      {"7\r", failure_kind::transient, "line busy", false}, // numeric (ATV0) BUSY
      {"\r\nNO DIALTONE\r\n", failure_kind::transient, "modem reports no dial tone", true},
      {"\r\nERROR\r\n", failure_kind::permanent, "modem refused to dial 9,01234567", false},
  };
  for (const auto& r : rows) {
    dial_fixture f;
    f.dial();
    auto a = f.bytes(r.reply);
    auto fin = finished(a);
    INFO(r.reply);
    REQUIRE(fin);
    REQUIRE(fin->failure == r.kind);
    REQUIRE(fin->reason == r.reason);
    REQUIRE(f.modem->modem_fault().has_value() == r.fault);
    REQUIRE(f.meter->link_ups == 0);
  }
}

TEST_CASE("at_modem: silence or ERROR to a command is a modem fault", "[at_modem]") {
  SECTION("silence to the reset") {
    dial_fixture f;
    auto a = f.modem->on_link_up(f.now);
    a = f.expire(f.expire(a));
    REQUIRE(sent(a) == "ATH\r");
    a = f.expire(a);
    REQUIRE(finished(a)->reason == "modem does not answer AT commands");
    REQUIRE(f.modem->modem_fault() == std::string("modem does not answer AT commands"));
  }
  SECTION("ERROR to an init string") {
    dial_fixture f;
    auto a = f.modem->on_link_up(f.now);
    a = f.expire(f.expire(a));
    a = f.bytes("OK\r\n");
    a = f.bytes("OK\r\n");
    REQUIRE(sent(a) == "ATE0\r");
    a = f.bytes("\r\nERROR\r\n");
    REQUIRE(finished(a)->failure == failure_kind::transient);
    REQUIRE(*f.modem->modem_fault() == "modem refused ATE0: ERROR");
  }
  SECTION("the link to the modem goes down while dialling") {
    dial_fixture f;
    f.dial();
    auto a = f.modem->on_link_down(f.now);
    REQUIRE(*f.modem->modem_fault() == "link to the modem lost");
    REQUIRE(sent(a).empty());
  }
}

TEST_CASE("at_modem: no CONNECT in time aborts the dialling and hangs up", "[at_modem]") {
  dial_fixture f;
  auto a = f.expire(f.dial());
  REQUIRE(sent(a) == "\r");
  a = f.bytes("\r\nNO CARRIER\r\n");
  REQUIRE(sent(a) == "ATH\r");
  a = f.bytes("\r\nOK\r\n");
  auto fin = finished(a);
  REQUIRE(fin->failure == failure_kind::transient);
  REQUIRE(fin->reason == "no CONNECT within 60 s");
  REQUIRE_FALSE(f.modem->modem_fault());
}

TEST_CASE("at_modem: a call dropped mid-session ends the meter session and still sends ATH", "[at_modem]") {
  dial_fixture f;
  f.dial();
  f.bytes("\r\nCONNECT 9600\r\n");
  // Meter bytes, then the modem reports the carrier lost (in plain 8-bit), split over reads.
  auto a = f.bytes(std::string("\xC5\x4E", 2) + "\r\nNO CAR");
  REQUIRE(f.meter->link_downs == 0);
  a = f.bytes("RIER\r\n");
  REQUIRE(f.meter->link_downs == 1);
  REQUIRE(sent(a) == "ATH\r"); // no escape: the modem is already in command state
  a = f.bytes("OK\r\n");
  REQUIRE(finished(a)->reason == "line dropped");
  REQUIRE(f.meter->received.substr(0, 2) == "EN");
}

TEST_CASE("at_modem: the inner driver's timer and a parity error", "[at_modem]") {
  dial_fixture f;
  f.dial();
  auto a = f.bytes("\r\nCONNECT 9600\r\n");
  // 'E' without its parity bit (0x45 has three ones: even parity needs bit 7 set).
  f.bytes(std::string("\x45", 1));
  REQUIRE(f.meter->received == std::string(1, '\0'));
  REQUIRE(f.modem->parity_errors() == 1);
  a = f.modem->on_timer(10, f.now + 1500);
  REQUIRE(f.meter->timers == std::vector<std::uint64_t>{5});
  // The meter's failure still hangs up with the escape.
  REQUIRE_FALSE(finished(a));
  a = f.expire(f.expire(a));
  REQUIRE(sent(a) == "ATH\r");
  a = f.bytes("OK\r\n");
  REQUIRE(finished(a)->reason == "no answer to sign-on");
}

TEST_CASE("at_modem: a character format wider than 8 bits is refused before dialling", "[at_modem]") {
  auto cfg = dial_fixture::default_config();
  cfg.call_format = line_settings{9600, 8, 'E', 1};
  dial_fixture f(cfg);
  auto a = f.modem->on_link_up(f.now);
  REQUIRE(sent(a).empty());
  REQUIRE(finished(a)->failure == failure_kind::permanent);
  REQUIRE(finished(a)->reason == "comsSettings 8E1 cannot be carried over an 8-bit link");
}

TEST_CASE("parity codec: 7E1 and 7O1 on an 8-bit link, 8N1 unchanged", "[at_modem]") {
  parity_codec even(line_settings{9600, 7, 'E', 1});
  parity_codec odd(line_settings{9600, 7, 'O', 1});
  parity_codec plain;
  // 'A' 0x41 has two ones, 'C' 0x43 three.
  REQUIRE(even.encode("AC") == std::string("\x41\xC3"));
  REQUIRE(odd.encode("AC") == std::string("\xC1\x43"));
  REQUIRE(plain.encode("\xC1") == "\xC1");
  REQUIRE(even.decode(std::string("\x41\xC3")) == "AC");
  REQUIRE(even.decode(std::string("\xC1")) == std::string(1, '\0'));
  REQUIRE(even.parity_errors() == 1);
  REQUIRE(parse_coms_settings("7e1")->parity == 'E');
  REQUIRE_FALSE(parse_coms_settings("9N1"));
}

TEST_CASE("at_modem: the meter ending the call during the hang-up skips the escape", "[at_modem]") {
  dial_fixture f;
  f.dial();
  f.bytes("\r\nCONNECT 9600\r\n");
  auto a = f.bytes(std::string("\xC5\x4E\x44", 3)); // END: the meter driver finishes
  REQUIRE(sent(a) == "B0");
  a = f.bytes("\r\nNO CARRIER\r\n"); // the meter hung up after B0
  REQUIRE(sent(a) == "ATH\r");
  a = f.bytes("\r\nOK\r\n");
  REQUIRE(finished(a)->failure == failure_kind::none);
}

TEST_CASE("at_modem: cut off by the test deadline, a call or a dialling is still hung up", "[at_modem]") {
  const finish cut{failure_kind::transient, "test deadline exceeded"};
  SECTION("in a call: the escape with guard times and ATH, then the cut-off as the finish") {
    dial_fixture f;
    f.dial();
    f.bytes("\r\nCONNECT 9600\r\n");
    const auto aborted = f.modem->abort(cut, f.now);
    REQUIRE(sent(aborted).empty()); // the guard time before "+++" first
    REQUIRE_FALSE(finished(aborted));
    REQUIRE(armed(aborted)->after == std::chrono::milliseconds(1000));
    REQUIRE(f.modem->call_ended() == f.now);
    f.bytes(std::string("\xC5", 1)); // the meter still talking: no longer for the inner driver
    REQUIRE(f.meter->received.empty());
    auto a = f.expire(aborted);
    REQUIRE(sent(a) == "+++");
    a = f.bytes("\r\nOK\r\n");
    REQUIRE(sent(a) == "ATH\r");
    a = f.bytes("\r\nOK\r\n");
    REQUIRE(finished(a)->reason == "test deadline exceeded");
    REQUIRE(f.meter->link_downs == 0); // the meter session was cut, not told of a drop
  }
  SECTION("while dialling: CR stops it, then ATH") {
    dial_fixture f;
    f.dial();
    auto a = f.modem->abort(cut, f.now);
    REQUIRE(sent(a) == "\r");
    a = f.bytes("\r\nNO CARRIER\r\n");
    REQUIRE(sent(a) == "ATH\r");
    a = f.bytes("\r\nOK\r\n");
    REQUIRE(finished(a)->reason == "test deadline exceeded");
    REQUIRE_FALSE(f.modem->modem_fault());
  }
  SECTION("before a call (the modem's init): finished at once, nothing sent") {
    dial_fixture f;
    f.modem->on_link_up(f.now);
    auto a = f.modem->abort(cut, f.now);
    REQUIRE(sent(a).empty());
    REQUIRE(finished(a)->reason == "test deadline exceeded");
  }
  SECTION("a hang-up already under way goes on and reports the cut-off") {
    dial_fixture f;
    f.dial();
    f.bytes("\r\nCONNECT 9600\r\n");
    auto a = f.bytes(std::string("\xC5\x4E\x44", 3)); // the meter session ends: hang-up
    REQUIRE_FALSE(finished(a));
    REQUIRE(f.modem->abort(cut, f.now).empty());
    a = f.expire(a);
    REQUIRE(sent(a) == "+++");
    a = f.bytes("\r\nOK\r\n");
    a = f.bytes("\r\nOK\r\n");
    REQUIRE(finished(a)->reason == "test deadline exceeded");
  }
  SECTION("the bound on a hang-up covers a stopped dialling and an escape") {
    dial_fixture f;
    REQUIRE(f.modem->longest_hangup() == std::chrono::milliseconds(2 * 1000 + 3 * 5000));
  }
}

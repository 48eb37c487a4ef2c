// IEC 62056-21 mode C driver: scripted meter transcripts. Every byte the meter sends and every
// byte the driver must send is written out by hand here (BCCs included), from the protocol.
#include "drivers/iec62056_21.hpp"

#include "tests/unit/driver_harness.hpp"
#include "tests/unit/iec_transcript.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace {

using namespace mts::drivers;
using namespace std::chrono_literals;

using namespace mts::testing; // tests/unit/driver_harness.hpp, iec_transcript.hpp

// 2019-01-02T04:02:00Z
constexpr unix_ms t0 = 1546401720000;
// 2019-01-01T00:00:00Z
constexpr mts::unix_seconds day = 1546300800;

// ---- what the meter says ----
const std::string ident = "/EMH5\\2LZQJL0014F\r\n";
const std::string p0 = b(SOH "P0" STX "(00000000)" ETX, 0x60);
const std::string serial_ok = b(STX "C.1.0(12345678)" ETX, 0x48);
const std::string serial_other = b(STX "C.1.0(87654321)" ETX, 0x48);
const std::string time_reply = b(STX "0.9.1(040210)" ETX, 0x3D);
const std::string date_reply = b(STX "0.9.2(190102)" ETX, 0x32);
const std::string ff_reply = b(STX "F.F(00000000)" ETX, 0x2C);
const std::string ff5_reply = b(STX "F.F(00000005)" ETX, 0x29);
const std::string r180_reply = b(STX "1.8.0(000758.123*kWh)" ETX, 0x51);
const std::string r280_reply = b(STX "2.8.0(000012.500*kWh)" ETX, 0x5E);
const std::string r280_error = b(STX "2.8.0(ERROR)" ETX, 0x60);
const std::string r580_reply = b(STX "5.8.0(001190.000*kvarh)" ETX, 0x64);
const std::string r680_reply = b(STX "6.8.0(000001.000*kvarh)" ETX, 0x6F);
const std::string r780_reply = b(STX "7.8.0(002000*varh)" ETX, 0x18); // varh: scaled to kvarh
const std::string r880_reply = b(STX "8.8.0(000003.250*kvarh)" ETX, 0x64);
// P.01, 30-minute average powers; timestamps are interval ends.
const std::string profile1 =
    b(STX "P.01(0190101003000)(00)(30)(2)(1.5)(kW)(5.5)(kvar)\r\n"
          "(1.200)(0.400)\r\n"
          "(1.000)(0.200)\r\n" EOT,
      0x44);
const std::string profile2 =
    b(STX "P.01(0190101013000)(80)(30)(2)(1.5)(kW)(5.5)(kvar)\r\n"
          "(2.000)(0.600)\r\n"
          "(3.000)(0.800)\r\n"
          "(4.000)(1.000)\r\n" ETX,
      0x43);

// ---- what the driver says ----
const std::string request = "/?12345678!\r\n";
const std::string option_select = "\x06" "051\r\n";
const std::string p1_secret = b(SOH "P1" STX "(secret)" ETX, 0x77);
const std::string r1_serial = b(SOH "R1" STX "C.1.0()" ETX, 0x21);
const std::string r1_time = b(SOH "R1" STX "0.9.1()" ETX, 0x5B);
const std::string r1_date = b(SOH "R1" STX "0.9.2()" ETX, 0x58);
const std::string r1_ff = b(SOH "R1" STX "F.F()" ETX, 0x4D);
const std::string r1_180 = b(SOH "R1" STX "1.8.0()" ETX, 0x5A);
const std::string r1_280 = b(SOH "R1" STX "2.8.0()" ETX, 0x59);
const std::string r1_580 = b(SOH "R1" STX "5.8.0()" ETX, 0x5E);
const std::string r1_680 = b(SOH "R1" STX "6.8.0()" ETX, 0x5D);
const std::string r1_780 = b(SOH "R1" STX "7.8.0()" ETX, 0x5C);
const std::string r1_880 = b(SOH "R1" STX "8.8.0()" ETX, 0x53);
const std::string r5_profile = b(SOH "R5" STX "P.01(01901010000;01901010200)" ETX, 0x21);

struct session : mts::testing::driver_session<iec62056_21_driver> {
  explicit session(session_request r, iec62056_21_config c = {}) : driver_session(std::move(r), std::move(c), t0) {}

  // Link up to the password accepted and the serial number requested.
  void log_in(const std::string& p1 = p1_secret) {
    sign_on(request, ident, option_select);
    exchange(p0, p1);
    exchange(ack, r1_serial);
  }
};

session_request full_request() {
  session_request r;
  r.outstation_address = "12345678";
  r.password = "secret";
  r.expected_serial = "12345678";
  r.survey_from = day;
  r.survey_to = day + 7200;
  return r;
}

} // namespace

TEST_CASE("IEC 62056-21 full session transcript", "[iec][driver]") {
  session s(full_request());
  auto& d = s.driver;

  // Link up: the request goes out at 300 7E1 after the reaction delay.
  auto id = only_timer(d.on_link_up(s.now), 200ms);
  CHECK(d.on_timer(id + 100, s.tick(10)).empty()); // not the armed timer
  s.timer = send_then_timer(d.on_timer(id, s.tick(190)), "/?12345678!\r\n", 5000ms);

  // The identification arrives in two pieces; the first re-arms the response timeout.
  only_timer(d.on_bytes("/EMH5\\2LZ", s.tick(300)), 5000ms);
  id = only_timer(d.on_bytes("QJL0014F\r\n", s.tick(100)), 200ms);

  // Z = 5: 9600 baud. The option select leaves at 300 baud, then the line switches.
  auto a = d.on_timer(id, s.tick(200));
  REQUIRE(a.size() == 3);
  CHECK(std::get<send_bytes>(a[0]).data == std::string("\x06\x30\x35\x31\x0D\x0A"));
  CHECK(std::get<change_line>(a[1]).settings == line_settings{9600, 7, 'E', 1});
  CHECK(std::get<arm_timer>(a[2]).after == 300ms);
  // The switch delay over, the driver awaits P0.
  only_timer(d.on_timer(std::get<arm_timer>(a[2]).id, s.tick(300)), 5000ms);

  // P0 -> P1 with the password -> ACK.
  s.exchange(std::string(SOH "P0" STX "(00000000)" ETX "\x60"), std::string(SOH "P1" STX "(secret)" ETX "\x77"));
  s.exchange("\x06", std::string(SOH "R1" STX "C.1.0()" ETX "\x21"));
  s.exchange(serial_ok, r1_time);
  s.exchange(time_reply, r1_date);
  const auto time_read_at = (s.now - 200) / 1000; // the answer came 200 ms before this send
  s.exchange(date_reply, r1_ff);
  s.exchange(ff_reply, r1_180);
  s.exchange(r180_reply, r1_280);
  s.exchange(r280_reply, r1_580);
  s.exchange(r580_reply, r1_680);
  s.exchange(r680_reply, r1_780);
  s.exchange(r780_reply, r1_880);
  s.exchange(r880_reply, r5_profile);
  CHECK(r5_profile == std::string(SOH "R5" STX "P.01(01901010000;01901010200)" ETX "!"));

  // The profile comes in a partial block (ACKed) and a final one.
  s.exchange(profile1, ack);
  id = only_timer(d.on_bytes(profile2, s.tick(150)), 200ms);
  finished(d.on_timer(id, s.tick(200)), failure_kind::none, "", true);

  // Finished: every later event is ignored.
  CHECK(d.on_bytes(ack, s.tick(10)).empty());
  CHECK(d.on_timer(id, s.tick(10)).empty());
  CHECK(d.on_link_down(s.tick(10)).empty());

  const auto& r = d.readings();
  CHECK(r.serial_number == "12345678");
  REQUIRE(r.meter_time);
  CHECK(*r.meter_time == 1546401730); // 2019-01-02T04:02:10Z
  REQUIRE(r.meter_time_taken);
  CHECK(*r.meter_time_taken == time_read_at);
  CHECK(*r.meter_time_taken >= t0 / 1000);

  REQUIRE(r.registers);
  const auto& regs = *r.registers;
  REQUIRE(regs.size() == 6);
  const std::vector<std::tuple<std::string, double, std::string>> expected = {
      {"kWh Import", 758.123, "kWh"}, {"kWh Export", 12.5, "kWh"}, {"kvarh Q1", 1190.0, "kvarh"},
      {"kvarh Q2", 1.0, "kvarh"},     {"kvarh Q3", 2.0, "kvarh"},  {"kvarh Q4", 3.25, "kvarh"}};
  for (std::size_t i = 0; i < regs.size(); ++i) {
    CHECK(regs[i].name == std::get<0>(expected[i]));
    CHECK(regs[i].value == Approx(std::get<1>(expected[i])));
    CHECK(regs[i].units == std::get<2>(expected[i]));
    CHECK(regs[i].timestamp >= t0 / 1000);
    CHECK(regs[i].timestamp <= s.now / 1000);
  }

  // F.F = 0 contributes nothing; the profile's 0x80 status is a power failure.
  REQUIRE(r.status_events);
  CHECK(*r.status_events == std::vector<std::string>{"Power failure at 2019-01-01T01:30:00Z"});

  // Half-hourly energies at interval starts, clipped to [00:00, 02:00).
  REQUIRE(r.survey);
  REQUIRE(r.survey->size() == 2);
  const auto& kwh = (*r.survey)[0];
  CHECK(kwh.name == "kWh Import");
  CHECK(kwh.units == "kWh");
  REQUIRE(kwh.readings.size() == 4);
  const double kwh_values[] = {0.6, 0.5, 1.0, 1.5};
  for (int i = 0; i < 4; ++i) {
    CHECK(kwh.readings[i].timestamp == day + 1800 * i);
    CHECK(kwh.readings[i].value == Approx(kwh_values[i]));
  }
  const auto& q1 = (*r.survey)[1];
  CHECK(q1.name == "kvarh Q1");
  CHECK(q1.units == "kvarh");
  REQUIRE(q1.readings.size() == 4);
  const double q1_values[] = {0.2, 0.1, 0.3, 0.4};
  for (int i = 0; i < 4; ++i) {
    CHECK(q1.readings[i].timestamp == day + 1800 * i);
    CHECK(q1.readings[i].value == Approx(q1_values[i]));
  }
}

TEST_CASE("IEC 62056-21 wrong password is permanent", "[iec][driver]") {
  session s(full_request());
  auto& d = s.driver;
  s.sign_on(request, ident, option_select);
  s.exchange(p0, p1_secret);
  // NAK: rejected. Not logged in, so no B0.
  finished(d.on_bytes(nak, s.tick(100)), failure_kind::permanent, "password rejected", false);
  CHECK_FALSE(d.readings().serial_number);
}

TEST_CASE("IEC 62056-21 password error block is permanent", "[iec][driver]") {
  session s(full_request());
  auto& d = s.driver;
  s.sign_on(request, ident, option_select);
  s.exchange(p0, p1_secret);
  // STX (ERR1) ETX BCC: '('^'E'^'R'^'R'^'1'^')'^ETX
  const std::string err1 = b(STX "(ERR1)" ETX, 0x28 ^ 0x45 ^ 0x52 ^ 0x52 ^ 0x31 ^ 0x29 ^ 0x03);
  finished(d.on_bytes(err1, s.tick(100)), failure_kind::permanent, "password rejected", false);
}

TEST_CASE("IEC 62056-21 serial number mismatch stops reading", "[iec][driver]") {
  session s(full_request());
  s.log_in();
  finished(s.driver.on_bytes(serial_other, s.tick(100)), failure_kind::permanent,
           "Serial number mismatch", true);
  const auto& r = s.driver.readings();
  CHECK(r.serial_number == "87654321");
  CHECK_FALSE(r.meter_time);
  CHECK_FALSE(r.registers);
  CHECK(s.driver.on_timer(s.timer, s.tick(5000)).empty()); // no further R1
}

TEST_CASE("IEC 62056-21 no answer to sign-on is transient", "[iec][driver]") {
  session s(full_request());
  auto& d = s.driver;
  auto id = only_timer(d.on_link_up(s.now), 200ms);
  id = send_then_timer(d.on_timer(id, s.tick(200)), request, 5000ms);
  finished(d.on_timer(id, s.tick(5000)), failure_kind::transient, "no answer to sign-on", false);
}

TEST_CASE("IEC 62056-21 timeouts name the stage and sign off once logged in", "[iec][driver]") {
  session s(full_request());
  s.log_in();
  finished(s.driver.on_timer(s.timer, s.tick(5000)), failure_kind::transient,
           "no answer to serial number read", true);

  session t(full_request());
  auto& d = t.driver;
  auto id = only_timer(d.on_link_up(t.now), 200ms);
  send_then_timer(d.on_timer(id, t.tick(200)), request, 5000ms);
  id = only_timer(d.on_bytes(ident, t.tick(400)), 200ms);
  auto a = d.on_timer(id, t.tick(200));
  REQUIRE(a.size() == 3);
  id = only_timer(d.on_timer(std::get<arm_timer>(a[2]).id, t.tick(300)), 5000ms);
  finished(d.on_timer(id, t.tick(5000)), failure_kind::transient, "no answer to option select", false);
}

TEST_CASE("IEC 62056-21 one bad BCC: NAK, repeat, carry on", "[iec][driver]") {
  session s(full_request());
  s.log_in();
  const std::string garbled = b(STX "C.1.0(12345678)" ETX, 0x49);
  s.exchange(garbled, nak);
  s.exchange(serial_ok, r1_time);
  CHECK(s.driver.readings().serial_number == "12345678");
}

TEST_CASE("IEC 62056-21 four bad BCCs: checksum failure", "[iec][driver]") {
  session s(full_request());
  s.log_in();
  const std::string garbled = b(STX "C.1.0(12345678)" ETX, 0x49);
  s.exchange(garbled, nak);
  s.exchange(garbled, nak);
  s.exchange(garbled, nak);
  finished(s.driver.on_bytes(garbled, s.tick(100)), failure_kind::transient, "checksum errors", true);
  CHECK_FALSE(s.driver.readings().serial_number);
}

TEST_CASE("IEC 62056-21 meter NAK makes the driver repeat its command", "[iec][driver]") {
  session s(full_request());
  s.log_in();
  s.exchange(nak, r1_serial);
  s.exchange(serial_ok, r1_time);
}

TEST_CASE("IEC 62056-21 line dropped mid-profile keeps what was read", "[iec][driver]") {
  session s(full_request());
  s.log_in();
  s.exchange(serial_ok, r1_time);
  s.exchange(time_reply, r1_date);
  s.exchange(date_reply, r1_ff);
  s.exchange(ff_reply, r1_180);
  s.exchange(r180_reply, r1_280);
  s.exchange(r280_reply, r1_580);
  s.exchange(r580_reply, r1_680);
  s.exchange(r680_reply, r1_780);
  s.exchange(r780_reply, r1_880);
  s.exchange(r880_reply, r5_profile);
  s.exchange(profile1, ack);
  // Half of the next block, then the line drops: no B0 can go out.
  only_timer(s.driver.on_bytes(profile2.substr(0, 20), s.tick(100)), 5000ms);
  finished(s.driver.on_link_down(s.tick(100)), failure_kind::transient, "line dropped", false);
  const auto& r = s.driver.readings();
  CHECK(r.serial_number == "12345678");
  CHECK(r.meter_time);
  REQUIRE(r.registers);
  CHECK(r.registers->size() == 6);
  CHECK_FALSE(r.survey);
}

TEST_CASE("IEC 62056-21 a register answered (ERROR) is skipped", "[iec][driver]") {
  auto req = full_request();
  req.survey_from.reset();
  req.survey_to.reset();
  session s(req);
  s.log_in();
  s.exchange(serial_ok, r1_time);
  s.exchange(time_reply, r1_date);
  s.exchange(date_reply, r1_ff);
  s.exchange(ff5_reply, r1_180);
  s.exchange(r180_reply, r1_280);
  s.exchange(r280_error, r1_580);
  s.exchange(r580_reply, r1_680);
  s.exchange(r680_reply, r1_780);
  s.exchange(r780_reply, r1_880);
  // No survey requested: B0 after the last register.
  const auto id = only_timer(s.driver.on_bytes(r880_reply, s.tick(100)), 200ms);
  finished(s.driver.on_timer(id, s.tick(200)), failure_kind::none, "", true);
  const auto& r = s.driver.readings();
  REQUIRE(r.registers);
  REQUIRE(r.registers->size() == 5);
  for (const auto& reg : *r.registers)
    CHECK(reg.name != "kWh Export");
  CHECK((*r.registers)[1].name == "kvarh Q1");
  CHECK_FALSE(r.survey);
  // F.F = 5: bits 0 and 2.
  REQUIRE(r.status_events);
  CHECK(*r.status_events == std::vector<std::string>{"Meter error register F.F bit 0 set",
                                                     "Meter error register F.F bit 2 set"});
}

TEST_CASE("IEC 62056-21 baud choice, fast reaction and no password", "[iec][driver]") {
  session_request req;
  iec62056_21_config cfg;
  cfg.max_baud = 4800;
  session s(req, cfg);
  auto& d = s.driver;
  auto id = only_timer(d.on_link_up(s.now), 200ms);
  send_then_timer(d.on_timer(id, s.tick(200)), "/?!\r\n", 5000ms);
  // Lower-case third letter: 20 ms from now on. Z = 6 (19200) capped at 4800 ('4').
  id = only_timer(d.on_bytes("/LGz6ZMD3104407\r\n", s.tick(300)), 20ms);
  auto a = d.on_timer(id, s.tick(20));
  REQUIRE(a.size() == 3);
  CHECK(std::get<send_bytes>(a[0]).data == "\x06" "041\r\n");
  CHECK(std::get<change_line>(a[1]).settings == line_settings{4800, 7, 'E', 1});
  only_timer(d.on_timer(std::get<arm_timer>(a[2]).id, s.tick(300)), 5000ms);
  // No password: empty parentheses.
  s.exchange(p0, b(SOH "P1" STX "()" ETX, 0x61), 20ms);
}

TEST_CASE("IEC 62056-21 mode A/B identification is refused", "[iec][driver]") {
  session s(session_request{});
  auto& d = s.driver;
  auto id = only_timer(d.on_link_up(s.now), 200ms);
  send_then_timer(d.on_timer(id, s.tick(200)), "/?!\r\n", 5000ms);
  finished(d.on_bytes("/ABCE123\r\n", s.tick(300)), failure_kind::permanent,
           "meter does not support mode C", false);
}

TEST_CASE("IEC 62056-21 initial line and factory", "[iec][driver]") {
  CHECK(iec62056_21_initial_line() == line_settings{300, 7, 'E', 1});
  auto d = make_iec62056_21_driver(session_request{}, {});
  REQUIRE(d);
  CHECK(d->on_link_up(0).size() == 1);
}

namespace {
iec62056_21_config serial_and_profile_only() {
  iec62056_21_config cfg;
  cfg.time_address.clear();
  cfg.status_address.clear();
  cfg.registers.clear();
  return cfg;
}
} // namespace

TEST_CASE("IEC 62056-21 profile: 15-minute cumulative and interval energies", "[iec][driver]") {
  session s(full_request(), serial_and_profile_only());
  s.log_in();
  s.exchange(serial_ok, r5_profile);
  // 1.8.0 in kWh is a register snapshot (differences); 2.29.0 in Wh is the interval's energy.
  const std::string profile = b(STX "P.01(0190101001500)(00)(15)(2)(1-0:1.8.0)(kWh)(1-0:2.29.0)(Wh)\r\n"
                                    "(100.0)(100)\r\n"
                                    "(100.5)(200)\r\n"
                                    "(101.0)(300)\r\n"
                                    "(101.25)(400)\r\n"
                                    "(101.5)(500)\r\n" ETX,
                                0x05);
  const auto id = only_timer(s.driver.on_bytes(profile, s.tick(100)), 200ms);
  finished(s.driver.on_timer(id, s.tick(200)), failure_kind::none, "", true);
  const auto& r = s.driver.readings();
  REQUIRE(r.survey);
  REQUIRE(r.survey->size() == 2);
  // Import: 00:00-00:15 has no earlier snapshot and 01:00-01:30 is half covered: only 00:30.
  const auto& imp = (*r.survey)[0];
  CHECK(imp.name == "kWh Import");
  REQUIRE(imp.readings.size() == 1);
  CHECK(imp.readings[0].timestamp == day + 1800);
  CHECK(imp.readings[0].value == Approx(0.75));
  const auto& exp = (*r.survey)[1];
  CHECK(exp.name == "kWh Export");
  CHECK(exp.units == "kWh");
  REQUIRE(exp.readings.size() == 2);
  CHECK(exp.readings[0].timestamp == day);
  CHECK(exp.readings[0].value == Approx(0.3));
  CHECK(exp.readings[1].timestamp == day + 1800);
  CHECK(exp.readings[1].value == Approx(0.7));
  CHECK_FALSE(r.status_events);
}

TEST_CASE("IEC 62056-21 profile answered (ERROR) leaves the survey unread", "[iec][driver]") {
  session s(full_request(), serial_and_profile_only());
  s.log_in();
  s.exchange(serial_ok, r5_profile);
  const auto id = only_timer(s.driver.on_bytes(b(STX "P.01(ERROR)" ETX, 0x25), s.tick(100)), 200ms);
  finished(s.driver.on_timer(id, s.tick(200)), failure_kind::none, "", true);
  CHECK(s.driver.readings().serial_number == "12345678");
  CHECK_FALSE(s.driver.readings().survey);
}

TEST_CASE("IEC 62056-21 garbage before a reply and a bad BCC on P0", "[iec][driver]") {
  session s(full_request());
  auto& d = s.driver;
  auto id = only_timer(d.on_link_up(s.now), 200ms);
  send_then_timer(d.on_timer(id, s.tick(200)), request, 5000ms);
  id = only_timer(d.on_bytes(std::string("\x00\x7f~") + ident, s.tick(400)), 200ms);
  auto a = d.on_timer(id, s.tick(200));
  REQUIRE(a.size() == 3);
  // Noise from the baud switch, then a P0 with a bad BCC while still in the switch delay.
  id = only_timer(d.on_bytes(std::string("\x7f\x7f") + b(SOH "P0" STX "(00000000)" ETX, 0x61), s.tick(250)),
                  200ms);
  send_then_timer(d.on_timer(id, s.tick(200)), nak, 5000ms);
  s.exchange(p0, p1_secret);
}

TEST_CASE("IEC 62056-21 profile headers with an absurd interval or channel count are skipped", "[iec][driver]") {
  // Found by fuzz_iec62056_21_driver: an interval of 6.7e93 minutes was cast to int (undefined
  // behaviour; the event named whatever int came out), and a channel count of 1e11 would
  // have made the driver allocate that many columns.
  session s(full_request(), serial_and_profile_only());
  s.log_in();
  s.exchange(serial_ok, r5_profile);
  std::string body = STX "P.01(0190101001500)(00)(66666666666666666666)(1)(1-0:1.8.0)(kWh)\r\n"
                         "(100.0)\r\n"
                         "P.01(0190101003000)(00)(30)(100000000000)(1-0:1.8.0)(kWh)\r\n"
                         "(100.5)\r\n" ETX;
  unsigned char bcc = 0; // XOR of everything after STX up to and including ETX
  for (std::size_t i = 1; i < body.size(); ++i)
    bcc = static_cast<unsigned char>(bcc ^ static_cast<unsigned char>(body[i]));
  const auto id = only_timer(s.driver.on_bytes(b(body, static_cast<unsigned char>(bcc & 0x7f)), s.tick(100)), 200ms);
  finished(s.driver.on_timer(id, s.tick(200)), failure_kind::none, "", true);
  const auto& r = s.driver.readings();
  REQUIRE(r.status_events);
  CHECK(*r.status_events == std::vector<std::string>{"Load profile interval of 6.66667e+19 minutes not supported",
                                                     "Load profile header announces 100000000000 channels; more than 64 are not supported"});
}

// Elster A1700 / A1140 driver. Two kinds of tests:
// - byte transcripts: every byte the meter sends and every byte the driver must send is
//   written out here (BCCs computed by hand / from the notes), including the real-session
//   fragments quoted in the notes ([S22] A1700, [S23] A1140);
// - a scripted meter (frames built with the framing module, which has its own vectors) for
//   the load profile interpretation, the error replies and the per-type settings, where the
//   expected readings are derived by hand from the contract.
#include "drivers/elster.hpp"
#include "drivers/elster_codec.hpp"
#include "drivers/iec_frames.hpp"

#include "tests/unit/driver_harness.hpp"
#include "tests/unit/iec_transcript.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <string>

namespace {

using namespace mts::drivers;
using namespace std::chrono_literals;

using namespace mts::testing; // tests/unit/driver_harness.hpp, iec_transcript.hpp

// 2019-01-02T04:02:00Z
constexpr unix_ms t0 = 1546401720000;
// 2019-01-01T00:00:00Z
constexpr mts::unix_seconds day = 1546300800;

// ---- what the driver says ----
const std::string request_addr = "/?12345678!\r\n";
const std::string request_none = "/?!\r\n";
const std::string select_mode6 = "\x06" "056\r\n";
const std::string select_mode1 = "\x06" "051\r\n";
const std::string p2_fedc = b(SOH "P2" STX "(BE2C10B158593B3E)" ETX, 0x60);
const std::string p2_zero = b(SOH "P2" STX "(0000000000000000)" ETX, 0x62);
const std::string p2_a1140 = b(SOH "P2" STX "(669A287D6388D770)" ETX, 0x12);
const std::string r1_serial = b(SOH "R1" STX "798001(10)" ETX, 0x65);
const std::string r1_clock = b(SOH "R1" STX "861001(07)" ETX, 0x6A);
const std::string r1_regs1 = b(SOH "R1" STX "507001(40)" ETX, 0x64);
const std::string r1_regs2 = b(SOH "R1" STX "507002(10)" ETX, 0x62);
const std::string r1_status = b(SOH "R1" STX "724001(04)" ETX, 0x67);
const std::string r1_mask = b(SOH "R1" STX "777001(02)" ETX, 0x67);
const std::string r1_period = b(SOH "R1" STX "878001(03)" ETX, 0x66);
const std::string r1_blocks = b(SOH "R1" STX "551001(04)" ETX, 0x67);
const std::string r1_profile1 = b(SOH "R1" STX "550001(40)" ETX, 0x66);
const std::string r1_profile2 = b(SOH "R1" STX "550002(40)" ETX, 0x65);
const std::string w1_551_2days = b(SOH "W1" STX "551001(0200)" ETX, 0x64);

// ---- what the meter says ----
const std::string ident_a1700 = "/GEC5090100100400@000\r\n";
const std::string ident_a1140 = "/GEC5120510070213@000\r\n";
const std::string p0_a1700 = b(SOH "P0" STX "(FD2BA0E29731D230)" ETX, 0x6D);
const std::string p0_a1140 = b(SOH "P0" STX "(FD04BE65D6157FA9)" ETX, 0x1D);
// "0000000005074494" (the [S23] reply)
const std::string serial_reply = b(STX "(30303030303030303035303734343934)" ETX, 0x0D);
// "0000000012345678"
const std::string serial_other = b(STX "(30303030303030303132333435363738)" ETX, 0x0A);
// 2019-01-02 04:02:10 meter time
const std::string clock_reply = b(STX "(10020402010019)" ETX, 0x0E);
// Import 12345678901, Export 1500000, Q1 2000000, Q2 0, Q3 3250000, Q4 1, VA 99999999,
// three customer-defined 5555 (Wh x 10^-3, LE packed BCD).
const std::string registers1 =
    b(STX "(01896745230100000000500100000000000000020000000000000000000000000000250300000000010000000000000099999999000000005555000000000000)" ETX,
      0x01);
const std::string registers2 = b(STX "(55550000000000005555000000000000)" ETX, 0x02);
// bits 26, 14, 2, 1
const std::string status_reply = b(STX "(06400004)" ETX, 0x04);
const std::string mask_reply = b(STX "(0300)" ETX, 0x01); // Import, Export
const std::string period_reply = b(STX "(1E1E01)" ETX, 0x03); // 30, 30, 1
const std::string blocks_reply = b(STX "(00000000)" ETX, 0x02); // 0 blocks of 64: read 1 packet
// E4 2019-01-01T00:00 mask 0003 code 9; 00:00 Import 123 Export 5; 00:30 Import 12345E2
// Export 0; E6 01:10; E5 01:15; 01:00 Import 7 Export 1; 01:30 8, 2; 02:00 9, 3; FF; padding.
const std::string profile_reply =
    b(STX "(E480AD2A5C0003090000123000005000123452000000E6E8BD2A5CE514BF2A5C000000700000100000008000002000000090000030FFFFFFFFFFFFFFFFFFFFFF)" ETX,
      0x08);
const std::string err1 = b(STX "(ERR1)" ETX, 0x76);
const std::string err5 = b(STX "(ERR5)" ETX, 0x72);
const std::string err6 = b(STX "(ERR6)" ETX, 0x71);

struct session : mts::testing::driver_session<elster_driver> {
  session(session_request r, elster_config c) : driver_session(std::move(r), std::move(c), t0) {}

  // The meter answers; after the reaction delay the driver signs off and finishes.
  void last_exchange(const std::string& reply) {
    const auto id = only_timer(driver.on_bytes(reply, tick(150)), 200ms);
    auto a = driver.on_timer(id, tick(200));
    REQUIRE(a.size() == 2);
    CHECK(std::get<send_bytes>(a[0]).data == b0);
    CHECK(std::get<finish>(a[1]).failure == failure_kind::none);
  }

  // The A1700 log-in of the tests: password FEDC0003 with the [S22] seed; ends awaiting 798.
  void log_in_a1700(const std::string& request = request_addr, const std::string& select = select_mode6) {
    sign_on(request, ident_a1700, select);
    exchange(p0_a1700, p2_fedc);
    exchange(ack, r1_serial);
  }

  // The A1700 log-in and the reads before 724 (798, 861, both 507 packets); ends awaiting 724.
  void read_to_status() {
    log_in_a1700();
    exchange(serial_reply, r1_clock);
    exchange(clock_reply, r1_regs1);
    exchange(registers1, r1_regs2);
    exchange(registers2, r1_status);
  }
};

session_request a1700_request() {
  session_request r;
  r.outstation_address = "12345678";
  r.password = "FEDC0003";
  r.expected_serial = "05074494";
  r.survey_from = day;
  r.survey_to = day + 7200;
  return r;
}

session_request no_survey(session_request r) {
  r.survey_from.reset();
  r.survey_to.reset();
  return r;
}

// ---- scripted meter ----
// Answers the driver's commands from a table: R1 "<ID>" (any packet) -> data bytes, split into
// the packets the driver asks for; W1 -> ACK; P2 -> ACK. Records every command's data.
struct scripted_meter {
  std::string ident = "GEC5090100100400@000";
  std::string seed = "FD2BA0E29731D230";
  std::map<std::string, std::string> data;   // ID -> bytes
  std::map<std::string, std::string> errors; // ID -> "(ERRn)" reply to every read/write of it
  std::vector<std::string> commands;         // "P2(..)", "R1798001(10)", "W1551001(0200)"
  std::function<std::optional<std::string>(const std::string&)> override_reply; // first say

  std::string reply(const std::string& sent) {
    iec::frame_parser p;
    p.feed(sent);
    auto m = p.next();
    if (!m)
      return {};
    if (m->kind == iec::message_kind::request)
      return iec::identification_message(ident);
    if (m->kind != iec::message_kind::command)
      return {};
    commands.push_back(m->command + m->text);
    if (override_reply)
      if (auto r = override_reply(m->command + m->text))
        return *r;
    if (m->command == "P2")
      return ack;
    if (m->command == "B0")
      return {};
    const std::string id = m->text.substr(0, 3);
    if (auto e = errors.find(id); e != errors.end())
      return iec::data_message(e->second);
    if (m->command == "W1")
      return ack;
    const auto packet = std::stoul(m->text.substr(3, 3), nullptr, 16);
    const auto length = std::stoul(m->text.substr(7, 2), nullptr, 16);
    std::string bytes = data[id];
    bytes.resize(std::max(bytes.size(), packet * 64), '\xFF');
    return iec::data_message("(" + elster::to_hex(bytes.substr((packet - 1) * 64, length)) + ")");
  }
};

struct run_result {
  meter_readings readings;
  finish end;
  std::vector<std::string> sent;
};

// Runs a whole session against the scripted meter: every armed timer fires at once, every
// reply arrives at once. The seed goes out after the option select's switch delay.
run_result run(scripted_meter& meter, const session_request& request, const elster_config& config) {
  elster_driver driver(request, config);
  run_result out;
  unix_ms now = t0;
  actions a = driver.on_link_up(now);
  for (int steps = 0; steps < 10000; ++steps) {
    std::string reply;
    std::optional<std::uint64_t> timer;
    for (auto& act : a) {
      if (auto* s = std::get_if<send_bytes>(&act)) {
        out.sent.push_back(s->data);
        if (s->data.size() == 6 && s->data[0] == '\x06')
          reply += iec::command_message("P0", "(" + meter.seed + ")"); // after the option select
        else
          reply += meter.reply(s->data);
      } else if (auto* t = std::get_if<arm_timer>(&act)) {
        timer = t->id;
      } else if (auto* f = std::get_if<finish>(&act)) {
        out.end = *f;
        out.readings = driver.readings();
        return out;
      }
    }
    now += 100;
    if (!reply.empty())
      a = driver.on_bytes(reply, now);
    else if (timer)
      a = driver.on_timer(*timer, now);
    else
      FAIL("the driver neither sends, waits nor finishes");
  }
  FAIL("session did not end");
  return out;
}

// A meter with the test data: serial, clock 2019-01-02 04:02:10, registers, status 0,
// channels Import+Export, 30 minutes, and `stream` as the 550 data.
scripted_meter meter_with(const std::string& stream, std::uint16_t mask = 0x0003) {
  scripted_meter m;
  m.data["798"] = "0000000005074494";
  m.data["861"] = *elster::from_hex("10020402010019");
  m.data["507"] = std::string(80, '\0');
  m.data["724"] = std::string(4, '\0');
  m.data["777"] = elster::encode_le_uint(mask, 2);
  m.data["878"] = std::string{30, 30, 1};
  m.data["551"] = elster::encode_le_uint((stream.size() + 1) / 64, 2) + std::string(2, '\0');
  m.data["550"] = stream + "\xFF";
  return m;
}

std::string u32(std::uint32_t v) { return elster::encode_le_uint(v, 4); }
std::string e4(std::uint32_t t, const std::string& mask = std::string("\x00\x03", 2)) {
  return "\xE4" + u32(t) + mask + "\x09";
}
std::string marker(unsigned char kind, std::uint32_t t) { return std::string(1, static_cast<char>(kind)) + u32(t); }
// A data record for two channels; values as 6 BCD nibbles "DDDDDE".
std::string rec2(const std::string& a, const std::string& b_) { return std::string(1, '\0') + *elster::from_hex(a + b_); }

std::vector<std::pair<mts::unix_seconds, double>> series(const survey_channel& c) {
  std::vector<std::pair<mts::unix_seconds, double>> out;
  for (const auto& r : c.readings)
    out.emplace_back(r.timestamp, r.value);
  return out;
}

} // namespace

TEST_CASE("Elster A1700 full session transcript", "[elster][driver]") {
  session s(a1700_request(), elster_a1700_config());
  s.log_in_a1700();
  s.exchange(serial_reply, r1_clock);
  s.exchange(clock_reply, r1_regs1);
  const mts::unix_seconds clock_taken = (s.now - 200) / 1000; // when the 861 reply arrived
  s.exchange(registers1, r1_regs2); // 80 bytes: packets of 0x40 and 0x10
  s.exchange(registers2, r1_status);
  s.exchange(status_reply, r1_mask);
  s.exchange(mask_reply, r1_period);
  s.exchange(period_reply, w1_551_2days); // meter date 2019-01-02, survey from 2019-01-01: 2 days
  s.exchange(ack, r1_blocks);
  s.exchange(blocks_reply, r1_profile1);
  s.last_exchange(profile_reply);

  const auto& r = s.driver.readings();
  CHECK(r.serial_number == std::optional<std::string>("05074494"));
  CHECK(r.meter_time == std::optional<mts::unix_seconds>(t0 / 1000 + 10));
  REQUIRE(r.meter_time_taken);
  CHECK(*r.meter_time_taken == clock_taken);
  REQUIRE(r.registers);
  REQUIRE(r.registers->size() == 7);
  const std::vector<std::pair<std::string, double>> expected_registers = {
      {"kWh Import", 12345.678901}, {"kWh Export", 1.5},   {"kvarh Q1", 2.0},    {"kvarh Q2", 0.0},
      {"kvarh Q3", 3.25},           {"kvarh Q4", 0.000001}, {"kVAh", 99.999999}};
  const std::vector<std::string> units = {"kWh", "kWh", "kvarh", "kvarh", "kvarh", "kvarh", "kVAh"};
  for (std::size_t i = 0; i < 7; ++i) {
    CHECK((*r.registers)[i].name == expected_registers[i].first);
    CHECK((*r.registers)[i].value == expected_registers[i].second);
    CHECK((*r.registers)[i].units == units[i]);
  }
  REQUIRE(r.status_events);
  CHECK(*r.status_events == std::vector<std::string>{"Meter power-down event", "Reverse run",
                                                     "Meter comms write event", "Time synchronisation",
                                                     "Power down at 2019-01-01T01:10:00Z",
                                                     "Power up at 2019-01-01T01:15:00Z"});
  REQUIRE(r.survey);
  REQUIRE(r.survey->size() == 2);
  CHECK((*r.survey)[0].name == "kWh Import");
  CHECK((*r.survey)[0].units == "kWh");
  CHECK((*r.survey)[1].name == "kWh Export");
  // 02:00 is outside [00:00, 02:00).
  CHECK(series((*r.survey)[0]) == std::vector<std::pair<mts::unix_seconds, double>>{
                                      {day, 0.123}, {day + 1800, 1234.5}, {day + 3600, 0.007}, {day + 5400, 0.008}});
  CHECK(series((*r.survey)[1]) == std::vector<std::pair<mts::unix_seconds, double>>{
                                      {day, 0.005}, {day + 1800, 0.0}, {day + 3600, 0.001}, {day + 5400, 0.002}});
}

TEST_CASE("Elster A1700 real session fragment (S22): option select 051, P0 seed -> P2 hash -> R1 798",
          "[elster][driver][trace]") {
  // The real client used the IEC1107-compatible option (mode 1) and security level 2.
  auto config = elster_a1700_config();
  config.option_mode = '1';
  session s(no_survey(a1700_request()), config);
  s.sign_on(request_addr, ident_a1700, select_mode1);
  // Meter: 01 50 30 02 "(FD2BA0E29731D230)" 03 6D; client: 01 50 32 02 "(BE2C10B158593B3E)" 03 60.
  s.exchange(std::string("\x01P0\x02(FD2BA0E29731D230)\x03\x6D"), std::string("\x01P2\x02(BE2C10B158593B3E)\x03\x60"));
  // Meter: ACK; client: 01 52 31 02 "798001(10)" 03 65.
  s.exchange(std::string("\x06"), std::string("\x01R1\x02" "798001(10)\x03\x65"));
}

TEST_CASE("Elster A1140 real session fragment (S23): /GEC5120510070213@000, 056, level 3: P2 zeros, R1 798, "
          "P2 hash before W1",
          "[elster][driver][trace]") {
  // The real client used option mode 6 and security level 3 with password 00000000: the zero
  // operand, reads (798, 795), then the hash just before its first write.
  auto config = elster_a1140_config();
  config.security_level = 3;
  session_request request;
  request.password = "00000000";
  request.survey_from = day;
  request.survey_to = day + 7200;
  session s(request, config);
  s.sign_on(request_none, "/GEC5120510070213@000\r\n", std::string("\x06" "056\r\n"));
  s.exchange(std::string("\x01P0\x02(FD04BE65D6157FA9)\x03\x1D"), std::string("\x01P2\x02(0000000000000000)\x03\x62"));
  s.exchange(std::string("\x06"), std::string("\x01R1\x02" "798001(10)\x03\x65"));
  // Meter: 02 "(30303030303030303035303734343934)" 03 0D -> "0000000005074494".
  s.exchange(std::string("\x02(30303030303030303035303734343934)\x03\x0D"), r1_clock);
  CHECK(s.driver.readings().serial_number == std::optional<std::string>("05074494"));
  // The reads before the profile need no more than the zero operand (A1140: 2 packets of 507).
  s.exchange(clock_reply, r1_regs1);
  s.exchange(registers1, b(SOH "R1" STX "507002(40)" ETX, 0x67));
  s.exchange(registers1, r1_status);
  s.exchange(status_reply, r1_mask);
  s.exchange(mask_reply, r1_period);
  // Before the write: client 01 50 32 02 "(669A287D6388D770)" 03 12, the hash of the trace.
  s.exchange(period_reply, std::string("\x01P2\x02(669A287D6388D770)\x03\x12"));
  // Meter: ACK; client: W1 554 from 2019-01-01T00:00Z to 02:00Z, LE seconds.
  s.exchange(std::string("\x06"), b(SOH "W1" STX "554001(80AD2A5CA0C92A5C)" ETX, 0x65));
}

TEST_CASE("Elster security level 3 without a survey never sends the hash", "[elster][driver]") {
  auto config = elster_a1140_config();
  config.security_level = 3;
  session_request request;
  request.password = "00000000";
  session s(request, config);
  s.sign_on(request_none, ident_a1140, select_mode6);
  s.exchange(p0_a1140, p2_zero);
  s.exchange(ack, r1_serial);
  s.exchange(serial_reply, r1_clock);
  s.exchange(clock_reply, r1_regs1);
  s.exchange(registers1, b(SOH "R1" STX "507002(40)" ETX, 0x67));
  s.exchange(registers1, r1_status);
  s.last_exchange(status_reply);
}

TEST_CASE("Elster security level 3: ERR5 before the write re-authenticates with the zero operand, after it with "
          "the hash",
          "[elster][driver]") {
  auto config = elster_a1140_config();
  config.security_level = 3;
  session_request request;
  request.password = "00000000";
  request.survey_from = day;
  request.survey_to = day + 7200;
  session s(request, config);
  s.sign_on(request_none, ident_a1140, select_mode6);
  s.exchange(p0_a1140, p2_zero);
  s.exchange(ack, r1_serial);
  s.exchange(err5, p2_zero);
  s.exchange(ack, r1_serial); // the read that met ERR5, again
  s.exchange(serial_reply, r1_clock);
  s.exchange(clock_reply, r1_regs1);
  s.exchange(registers1, b(SOH "R1" STX "507002(40)" ETX, 0x67));
  s.exchange(registers1, r1_status);
  s.exchange(status_reply, r1_mask);
  s.exchange(mask_reply, r1_period);
  s.exchange(period_reply, p2_a1140);
  s.exchange(ack, b(SOH "W1" STX "554001(80AD2A5CA0C92A5C)" ETX, 0x65));
  s.exchange(ack, r1_blocks);
  s.exchange(err5, p2_a1140); // write access was granted: the hash again
  s.exchange(ack, r1_blocks);
}

TEST_CASE("Elster sign-on without an address and without a password", "[elster][driver]") {
  session_request request; // no password: 00000000
  session s(request, elster_a1140_config());
  s.sign_on(request_none, ident_a1140, select_mode6);
  s.exchange(p0_a1140, p2_a1140);
  s.exchange(ack, r1_serial);
}

TEST_CASE("Elster password rejected: NAK or ERRn to P2, no sign-off", "[elster][driver]") {
  for (const std::string& reply : {nak, err1, std::string(b0)}) {
    session s(a1700_request(), elster_a1700_config());
    s.sign_on(request_addr, ident_a1700, select_mode6);
    s.exchange(p0_a1700, p2_fedc);
    finished(s.driver.on_bytes(reply, s.tick(100)), failure_kind::permanent, "password rejected", false);
  }
  SECTION("level 3: the zero operand refused") {
    auto config = elster_a1140_config();
    config.security_level = 3;
    session s(session_request{}, config);
    s.sign_on(request_none, ident_a1140, select_mode6);
    s.exchange(p0_a1140, p2_zero);
    finished(s.driver.on_bytes(nak, s.tick(100)), failure_kind::permanent, "password rejected", false);
  }
  SECTION("a password that is not 8 characters") {
    auto request = a1700_request();
    request.password = "secret";
    session s(request, elster_a1700_config());
    s.sign_on(request_addr, ident_a1700, select_mode6);
    finished(s.driver.on_bytes(p0_a1700, s.tick(100)), failure_kind::permanent, "password must be 8 characters",
             false);
  }
}

TEST_CASE("Elster ERR5: re-authenticate with this session's seed and repeat the read", "[elster][driver]") {
  session s(no_survey(a1700_request()), elster_a1700_config());
  s.log_in_a1700();
  s.exchange(serial_reply, r1_clock);
  s.exchange(err5, p2_fedc);
  s.exchange(ack, r1_clock);
  s.exchange(clock_reply, r1_regs1);
  // Again in the middle of a multi-packet read: the same packet is asked again.
  s.exchange(registers1, r1_regs2);
  s.exchange(err5, p2_fedc);
  s.exchange(ack, r1_regs2);
  s.exchange(registers2, r1_status);
  s.last_exchange(status_reply);
  CHECK(s.driver.readings().meter_time == std::optional<mts::unix_seconds>(t0 / 1000 + 10));
  CHECK(s.driver.readings().registers->size() == 7);
}

TEST_CASE("Elster ERR5 more than 3 times in a session: transient failure", "[elster][driver]") {
  session s(no_survey(a1700_request()), elster_a1700_config());
  s.log_in_a1700();
  for (int i = 0; i < 3; ++i) {
    s.exchange(err5, p2_fedc);
    s.exchange(ack, r1_serial);
  }
  finished(s.driver.on_bytes(err5, s.tick(100)), failure_kind::transient, "password session keeps timing out",
           true);
}

TEST_CASE("Elster ERR1 to ERR6 on a read: clear permanent errors, after sign-off", "[elster][driver]") {
  const std::vector<std::pair<int, std::string>> cases = {
      {1, "meter error: ERR1 invalid command reading 861"},
      {2, "meter error: ERR2 invalid data identity reading 861"},
      {3, "meter error: ERR3 invalid packet number reading 861"},
      {4, "meter error: ERR4 meter error 4 reading 861"},
      {6, "meter error: ERR6 general communications error reading 861"}};
  for (const auto& [n, text] : cases) {
    session s(no_survey(a1700_request()), elster_a1700_config());
    s.log_in_a1700();
    s.exchange(serial_reply, r1_clock);
    const std::string reply = n == 6 ? err6 : n == 1 ? err1 : iec::data_message("(ERR" + std::to_string(n) + ")");
    finished(s.driver.on_bytes(reply, s.tick(100)), failure_kind::permanent, text, true);
    CHECK(s.driver.readings().serial_number == std::optional<std::string>("05074494"));
  }
}

TEST_CASE("Elster ERRn to a W1 profile selection names the write", "[elster][driver]") {
  auto meter = meter_with(e4(day));
  meter.errors["551"] = "(ERR2)";
  const auto r = run(meter, a1700_request(), elster_a1700_config());
  CHECK(r.end.failure == failure_kind::permanent);
  CHECK(r.end.reason == "meter error: ERR2 invalid data identity writing 551");
  CHECK(r.sent.back() == b0);
  CHECK(r.readings.registers);
  CHECK_FALSE(r.readings.survey);
}

TEST_CASE("Elster bad BCC: NAK and the meter's repeat, too many: checksum errors", "[elster][driver]") {
  const std::string bad_serial = b(STX "(30303030303030303035303734343934)" ETX, 0x0E);
  session s(no_survey(a1700_request()), elster_a1700_config());
  s.log_in_a1700();
  s.exchange(bad_serial, nak);
  s.exchange(serial_reply, r1_clock);
  CHECK(s.driver.readings().serial_number == std::optional<std::string>("05074494"));
  // Three NAKs per message, then a failure.
  s.exchange(bad_serial, nak);
  s.exchange(bad_serial, nak);
  s.exchange(bad_serial, nak);
  finished(s.driver.on_bytes(bad_serial, s.tick(100)), failure_kind::transient, "checksum errors", true);
}

TEST_CASE("Elster NAK from the meter: the driver repeats its command", "[elster][driver]") {
  session s(no_survey(a1700_request()), elster_a1700_config());
  s.log_in_a1700();
  s.exchange(nak, r1_serial);
  s.exchange(serial_reply, r1_clock);
}

TEST_CASE("Elster serial number mismatch: sign-off, permanent, nothing more read", "[elster][driver]") {
  session s(a1700_request(), elster_a1700_config());
  s.log_in_a1700();
  finished(s.driver.on_bytes(serial_other, s.tick(100)), failure_kind::permanent, "Serial number mismatch", true);
  CHECK(s.driver.readings().serial_number == std::optional<std::string>("12345678"));
  CHECK_FALSE(s.driver.readings().meter_time);
}

TEST_CASE("Elster timeouts name the stage", "[elster][driver]") {
  SECTION("sign-on") {
    session s(a1700_request(), elster_a1700_config());
    auto id = only_timer(s.driver.on_link_up(s.now), 200ms);
    const auto timeout = send_then_timer(s.driver.on_timer(id, s.tick(200)), request_addr, 5000ms);
    finished(s.driver.on_timer(timeout, s.tick(5000)), failure_kind::transient, "no answer to sign-on", false);
  }
  SECTION("option select") {
    session s(a1700_request(), elster_a1700_config());
    s.sign_on(request_addr, ident_a1700, select_mode6);
    finished(s.driver.on_timer(s.timer, s.tick(5000)), failure_kind::transient, "no answer to option select",
             false);
  }
  SECTION("password") {
    session s(a1700_request(), elster_a1700_config());
    s.sign_on(request_addr, ident_a1700, select_mode6);
    s.exchange(p0_a1700, p2_fedc);
    finished(s.driver.on_timer(s.timer, s.tick(5000)), failure_kind::transient, "no answer to password", false);
  }
  SECTION("password, the seed came during the baud switch delay") {
    // The early seed ends the switch delay: the P2 gets one response timeout, as any send.
    session s(a1700_request(), elster_a1700_config());
    auto id = only_timer(s.driver.on_link_up(s.now), 200ms);
    send_then_timer(s.driver.on_timer(id, s.tick(200)), request_addr, 5000ms);
    id = only_timer(s.driver.on_bytes(ident_a1700, s.tick(400)), 200ms);
    auto a = s.driver.on_timer(id, s.tick(200));
    REQUIRE(a.size() == 3);
    CHECK(std::get<arm_timer>(a[2]).after == 300ms);
    id = only_timer(s.driver.on_bytes(p0_a1700, s.tick(100)), 200ms);
    const auto timeout = send_then_timer(s.driver.on_timer(id, s.tick(200)), p2_fedc, 5000ms);
    finished(s.driver.on_timer(timeout, s.tick(5000)), failure_kind::transient, "no answer to password", false);
  }
  SECTION("reads") {
    session s(a1700_request(), elster_a1700_config());
    s.log_in_a1700();
    s.exchange(serial_reply, r1_clock);
    s.exchange(clock_reply, r1_regs1);
    // A partial reply re-arms the response timeout (gap between bytes).
    const auto gap = only_timer(s.driver.on_bytes(registers1.substr(0, 20), s.tick(4000)), 5000ms);
    CHECK_FALSE(s.driver.on_timer(s.timer, s.tick(1000)).size()); // the old timer is stale
    finished(s.driver.on_timer(gap, s.tick(4000)), failure_kind::transient, "no answer to register read", true);
    CHECK(s.driver.readings().meter_time);
  }
  SECTION("load profile") {
    session s(a1700_request(), elster_a1700_config());
    s.read_to_status();
    s.exchange(status_reply, r1_mask);
    finished(s.driver.on_timer(s.timer, s.tick(5000)), failure_kind::transient, "no answer to load profile read",
             true);
  }
  SECTION("configurable") {
    auto config = elster_a1700_config();
    config.response_timeout = 12000ms;
    session s(a1700_request(), config);
    auto id = only_timer(s.driver.on_link_up(s.now), 200ms);
    send_then_timer(s.driver.on_timer(id, s.tick(200)), request_addr, 12000ms);
  }
}

TEST_CASE("Elster line dropped mid-profile keeps what was read, survey unread", "[elster][driver]") {
  session s(a1700_request(), elster_a1700_config());
  s.read_to_status();
  s.exchange(status_reply, r1_mask);
  s.exchange(mask_reply, r1_period);
  s.exchange(period_reply, w1_551_2days);
  s.exchange(ack, r1_blocks);
  s.exchange(b(STX "(01000000)" ETX, 0x03), r1_profile1); // 1 block of 64: read 2 packets
  s.exchange(b(STX "(" + std::string(128, 'F') + ")" ETX, 0x02), r1_profile2);
  finished(s.driver.on_link_down(s.tick(100)), failure_kind::transient, "line dropped", false);
  const auto& r = s.driver.readings();
  CHECK(r.serial_number);
  CHECK(r.meter_time);
  CHECK(r.registers);
  CHECK(r.status_events);
  CHECK_FALSE(r.survey);
  CHECK(s.driver.on_bytes(ack, s.tick(100)).empty()); // finished: everything else is ignored
}

TEST_CASE("Elster without a survey: B0 after 724 ends the session successfully",
          "[elster][driver]") {
  session s(no_survey(a1700_request()), elster_a1700_config());
  s.read_to_status();
  s.last_exchange(status_reply);
  CHECK_FALSE(s.driver.readings().survey);
}

TEST_CASE("Elster A1140 session: 16 registers in two packets, W1 554 by date", "[elster][driver]") {
  auto meter = meter_with(e4(day) + rec2("001230", "000050"));
  meter.ident = "GEC5120510070213@000";
  meter.data["507"] = std::string(128, '\0');
  meter.data["507"].replace(0, 8, elster::encode_le_bcd(2500000, 8)); // Import 2.5 kWh
  auto request = a1700_request();
  request.survey_to = day + 3600;
  const auto r = run(meter, request, elster_a1140_config());
  CHECK(r.end.failure == failure_kind::none);
  const std::vector<std::string> expected = {
      "P2(BE2C10B158593B3E)", "R1798001(10)", "R1861001(07)", "R1507001(40)", "R1507002(40)",
      "R1724001(04)",         "R1777001(02)", "R1878001(03)",
      // from 2019-01-01T00:00 (5C2AAD80), to 01:00 (5C2ABB90), LE
      "W1554001(80AD2A5C90BB2A5C)", "R1551001(04)", "R1550001(40)", "B0"};
  CHECK(meter.commands == expected);
  REQUIRE(r.readings.registers);
  CHECK(r.readings.registers->at(0).value == 2.5);
  REQUIRE(r.readings.survey);
  CHECK(series(r.readings.survey->at(0)) == std::vector<std::pair<mts::unix_seconds, double>>{{day, 0.123}});
}

TEST_CASE("Elster 551 day count: from the meter's date, at least 1", "[elster][driver]") {
  auto meter = meter_with(e4(day));
  auto request = a1700_request();
  request.survey_from = day - 5 * 86400; // 2018-12-27: 7 days up to 2019-01-02
  run(meter, request, elster_a1700_config());
  CHECK(std::find(meter.commands.begin(), meter.commands.end(), "W1551001(0700)") != meter.commands.end());
  // A meter clock behind the survey date: still 1 day.
  auto late = meter_with(e4(day));
  request.survey_from = day + 3 * 86400;
  request.survey_to = day + 4 * 86400;
  run(late, request, elster_a1700_config());
  CHECK(std::find(late.commands.begin(), late.commands.end(), "W1551001(0100)") != late.commands.end());
}

TEST_CASE("Elster 550 stream: every marker, interval clock and events in range", "[elster][driver]") {
  const auto clean = e4(day) + rec2("000010", "000020") + marker(0xE9, day + 1000) + rec2("000030", "000040") +
                     marker(0xEB, day + 3500) + marker(0xED, day + 3550) + rec2("000050", "000060") +
                     marker(0xEA, day + 9000 + 17) + rec2("000070", "000080") +
                     "\xE8" + u32(day + 10800 + 5) + std::string("\x00\x81", 2) + "\x09" + // Import, DST flag
                     std::string(1, '\0') + *elster::from_hex("000090") +                                   // 03:00
                     marker(0xE6, day + 12600 + 600) + marker(0xE5, day + 12600 + 900) +
                     std::string(1, '\0') + *elster::from_hex("000110");                                     // 03:30
  auto meter = meter_with(clean);
  auto request = a1700_request();
  request.survey_to = day + 86400;
  const auto r = run(meter, request, elster_a1700_config());
  CHECK(r.end.failure == failure_kind::none);
  REQUIRE(r.readings.survey);
  CHECK(series(r.readings.survey->at(0)) == std::vector<std::pair<mts::unix_seconds, double>>{
                                                {day, 0.001},
                                                {day + 1800, 0.003},
                                                {day + 3600, 0.005},
                                                {day + 9000, 0.007},
                                                {day + 10800, 0.009},
                                                {day + 12600, 0.011}});
  CHECK(series(r.readings.survey->at(1)) == std::vector<std::pair<mts::unix_seconds, double>>{
                                                {day, 0.002}, {day + 1800, 0.004}, {day + 3600, 0.006},
                                                {day + 9000, 0.008}});
  REQUIRE(r.readings.status_events);
  CHECK(*r.readings.status_events == std::vector<std::string>{
                                         "Forced end of demand at 2019-01-01T00:16:40Z",
                                         "Load profile cleared at 2019-01-01T00:58:20Z",
                                         "Daylight saving change at 2019-01-01T00:59:10Z",
                                         "Time change at 2019-01-01T02:30:17Z",
                                         "Configuration change at 2019-01-01T03:00:05Z",
                                         "Power down at 2019-01-01T03:40:00Z",
                                         "Power up at 2019-01-01T03:45:00Z"});
}

TEST_CASE("Elster 550 stream: E2 stops parsing with an event, readings before kept", "[elster][driver]") {
  const auto stream = e4(day) + rec2("000010", "000020") + "\xE2\x01\x02\x03" + rec2("000030", "000040");
  auto meter = meter_with(stream);
  const auto r = run(meter, a1700_request(), elster_a1700_config());
  CHECK(r.end.failure == failure_kind::none);
  CHECK(series(r.readings.survey->at(0)) == std::vector<std::pair<mts::unix_seconds, double>>{{day, 0.001}});
  REQUIRE(r.readings.status_events);
  REQUIRE_FALSE(r.readings.status_events->empty());
  CHECK(r.readings.status_events->back() == "Unsupported load profile record E2");
}

TEST_CASE("Elster survey clipping: only whole intervals inside the range, events from <= t < to",
          "[elster][driver]") {
  const auto stream = e4(day) + rec2("000010", "000020") + rec2("000030", "000040") + marker(0xE6, day + 3600) +
                      rec2("000050", "000060") + marker(0xE5, day + 5400 + 1) + rec2("000070", "000080");
  auto meter = meter_with(stream);
  auto request = a1700_request();
  request.survey_from = day + 1800;
  request.survey_to = day + 5400;
  const auto r = run(meter, request, elster_a1700_config());
  CHECK(series(r.readings.survey->at(0)) ==
        std::vector<std::pair<mts::unix_seconds, double>>{{day + 1800, 0.003}, {day + 3600, 0.005}});
  CHECK(*r.readings.status_events == std::vector<std::string>{"Power down at 2019-01-01T01:00:00Z"});
}

TEST_CASE("Elster channel mask: 777 chooses the channels, E4 gives the record layout", "[elster][driver]") {
  // 777: Import and Q1 (bits 0, 2); E4 layout: Import, Export, Q1.
  const auto stream = e4(day, std::string("\x00\x07", 2)) + std::string(1, '\0') + *elster::from_hex("000010000020000030");
  auto meter = meter_with(stream, 0x0005);
  const auto r = run(meter, a1700_request(), elster_a1700_config());
  REQUIRE(r.readings.survey);
  REQUIRE(r.readings.survey->size() == 2);
  CHECK(r.readings.survey->at(0).name == "kWh Import");
  CHECK(r.readings.survey->at(1).name == "kvarh Q1");
  CHECK(r.readings.survey->at(1).units == "kvarh");
  CHECK(series(r.readings.survey->at(0)) == std::vector<std::pair<mts::unix_seconds, double>>{{day, 0.001}});
  CHECK(series(r.readings.survey->at(1)) == std::vector<std::pair<mts::unix_seconds, double>>{{day, 0.003}});
  // VA enabled: reported as kVAh.
  auto va = meter_with(e4(day, std::string("\x00\x40", 2)) + std::string(1, '\0') + *elster::from_hex("000043"), 0x0040);
  const auto rv = run(va, a1700_request(), elster_a1700_config());
  REQUIRE(rv.readings.survey->size() == 1);
  CHECK(rv.readings.survey->at(0).name == "kVAh");
  CHECK(series(rv.readings.survey->at(0)) == std::vector<std::pair<mts::unix_seconds, double>>{{day, 4.0}});
}

TEST_CASE("Elster scaling settings: register and profile scale exponents", "[elster][driver]") {
  auto meter = meter_with(e4(day) + rec2("012342", "000050"));
  meter.data["507"].replace(0, 8, elster::encode_le_bcd(2500000, 8));
  auto config = elster_a1700_config();
  config.register_scale_exponent = -9; // 2500000 x 10^-9
  config.profile_scale_exponent = 0;   // Wh reported as they are
  const auto r = run(meter, a1700_request(), config);
  CHECK(r.readings.registers->at(0).value == 0.0025);
  CHECK(series(r.readings.survey->at(0)) == std::vector<std::pair<mts::unix_seconds, double>>{{day, 123400.0}});
  CHECK(series(r.readings.survey->at(1)) == std::vector<std::pair<mts::unix_seconds, double>>{{day, 5.0}});
}

TEST_CASE("Elster clock UTC offset: meterTime, 554 range and profile times shifted", "[elster][driver]") {
  // The meter runs on UTC+1: its 04:02:10 is 03:02:10 UTC; its 01:00 E4 is 00:00 UTC.
  auto meter = meter_with(e4(day + 3600) + rec2("000010", "000020"));
  auto config = elster_a1140_config();
  config.clock_utc_offset_minutes = 60;
  auto request = a1700_request();
  request.survey_to = day + 3600;
  const auto r = run(meter, request, config);
  CHECK(r.readings.meter_time == std::optional<mts::unix_seconds>(t0 / 1000 + 10 - 3600));
  // from 01:00 meter time (5C2ABB90), to 02:00 (5C2AC9A0)
  CHECK(std::find(meter.commands.begin(), meter.commands.end(), "W1554001(90BB2A5CA0C92A5C)") !=
        meter.commands.end());
  CHECK(series(r.readings.survey->at(0)) == std::vector<std::pair<mts::unix_seconds, double>>{{day, 0.001}});
}

TEST_CASE("Elster load profile interval other than 30 minutes: event, no survey", "[elster][driver]") {
  auto meter = meter_with(e4(day));
  meter.data["878"] = std::string{15, 15, 1};
  const auto r = run(meter, a1700_request(), elster_a1700_config());
  CHECK(r.end.failure == failure_kind::none);
  CHECK_FALSE(r.readings.survey);
  CHECK(r.readings.status_events == std::optional<std::vector<std::string>>(
                                        std::vector<std::string>{"Load profile interval of 15 minutes not supported"}));
  CHECK(meter.commands.back() == "B0");
  CHECK(std::find(meter.commands.begin(), meter.commands.end(), "R1551001(04)") == meter.commands.end());
}

TEST_CASE("Elster 724 status zero: an empty event list", "[elster][driver]") {
  auto meter = meter_with(e4(day));
  const auto r = run(meter, no_survey(a1700_request()), elster_a1700_config());
  CHECK(r.readings.status_events == std::optional<std::vector<std::string>>(std::vector<std::string>{}));
}

TEST_CASE("Elster malformed reply: wrong length", "[elster][driver]") {
  session s(no_survey(a1700_request()), elster_a1700_config());
  s.log_in_a1700();
  s.exchange(serial_reply, r1_clock);
  finished(s.driver.on_bytes(b(STX "(100204020100)" ETX, 0x06), s.tick(100)), failure_kind::transient,
           "malformed reply reading 861", true);
}

// The simulated IEC 62056-21 meter: byte-level exchanges written out by hand (BCCs computed
// independently of the code under test), then the client driver against the simulated meter
// in-process, whose readings must equal expected_readings().
#include "drivers/iec62056_21.hpp"
#include "sim/iec_meter.hpp"

#include "tests/unit/driver_harness.hpp"
#include "tests/unit/iec_transcript.hpp"

#include <catch2/catch.hpp>

#include <deque>
#include <string>

namespace {

using namespace mts::sim;
using namespace mts::drivers;
using namespace std::chrono_literals;
using mts::unix_seconds;

using namespace mts::testing; // tests/unit/driver_harness.hpp, iec_transcript.hpp

// 2024-03-10T12:34:56Z
constexpr unix_seconds now_s = 1710074096;
constexpr unix_ms now_ms = now_s * 1000;
// 2024-03-08T00:00:00Z
constexpr unix_seconds day0 = 1709856000;

meter_identity identity() {
  meter_identity id;
  id.serial = "12345678";
  id.outstation_address = "12345678";
  id.password = "secret";
  id.seed = 42;
  return id;
}

iec_meter_config instant() {
  iec_meter_config c;
  c.reaction_delay = 0ms;
  c.pinned_now = now_s;
  return c;
}

// Signed on and logged in, at 9600 baud.
void log_in(iec_meter& m) {
  m.on_link_up(now_ms);
  REQUIRE(sent(m.on_bytes("/?12345678!\r\n", now_ms)) == "/SIM5MTS-SIM\r\n");
  const auto a = m.on_bytes("\x06" "051\r\n", now_ms);
  REQUIRE(line_change(a) == line_settings{9600, 7, 'E', 1});
  REQUIRE(sent(a) == b(SOH "P0" STX "(00000000)" ETX, 0x60));
  REQUIRE(sent(m.on_bytes(b(SOH "P1" STX "(secret)" ETX, 0x77), now_ms)) == ack);
}

} // namespace

TEST_CASE("sim meter: sign-on, identification, P0, password, reads, B0", "[sim][iec]") {
  iec_meter m(identity(), {}, instant());
  CHECK(m.line() == line_settings{300, 7, 'E', 1});
  const auto up = m.on_link_up(now_ms);
  REQUIRE(up.size() == 1);
  CHECK(std::get<arm_timer>(up[0]).after == 30000ms);
  // Another meter's address: silence.
  CHECK(sent(m.on_bytes("/?999!\r\n", now_ms)).empty());
  CHECK(sent(m.on_bytes("/?12345678!\r\n", now_ms)) == "/SIM5MTS-SIM\r\n");
  auto a = m.on_bytes("\x06" "051\r\n", now_ms);
  CHECK(line_change(a) == line_settings{9600, 7, 'E', 1});
  CHECK(m.line().baud == 9600);
  CHECK(sent(a) == b(SOH "P0" STX "(00000000)" ETX, 0x60));
  // Reads before the password: error.
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "C.1.0()" ETX, 0x21), now_ms)) == b(STX "(ERROR)" ETX, 0x5A));
  // Wrong password: NAK, the meter waits for another.
  CHECK(sent(m.on_bytes(b(SOH "P1" STX "(wrong)" ETX, 0x02), now_ms)) == nak);
  CHECK(sent(m.on_bytes(b(SOH "P1" STX "(secret)" ETX, 0x77), now_ms)) == ack);
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "C.1.0()" ETX, 0x21), now_ms)) == b(STX "C.1.0(12345678)" ETX, 0x48));
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "0.9.1()" ETX, 0x5B), now_ms)) == b(STX "0.9.1(123456)" ETX, 0x3D));
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "0.9.2()" ETX, 0x58), now_ms)) == b(STX "0.9.2(240310)" ETX, 0x3D));
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "F.F()" ETX, 0x4D), now_ms)) == b(STX "F.F(00000000)" ETX, 0x2C));
  const auto wh = m.model().register_wh(channel::kwh_import, now_s);
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "1.8.0()" ETX, 0x5A), now_ms)) ==
        framed(STX "1.8.0(" + format_k(wh) + "*kWh)" ETX));
  const auto q1 = m.model().register_wh(channel::kvarh_q1, now_s);
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "5.8.0()" ETX, 0x5E), now_ms)) ==
        framed(STX "5.8.0(" + format_k(q1) + "*kvarh)" ETX));
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "9.9.9()" ETX, 0x5A), now_ms)) == b(STX "(ERROR)" ETX, 0x5A));
  // NAK: the last message again.
  CHECK(sent(m.on_bytes(nak, now_ms)) == b(STX "(ERROR)" ETX, 0x5A));
  // A garbled command: NAK.
  CHECK(sent(m.on_bytes(b(SOH "R1" STX "C.1.0()" ETX, 0x22), now_ms)) == nak);
  a = m.on_bytes(b0, now_ms);
  CHECK(sent(a).empty());
  CHECK(finished(a));
  CHECK(m.closed());
  CHECK(m.on_bytes("/?!\r\n", now_ms).empty());
}

TEST_CASE("sim meter: reaction delay, inactivity timeout", "[sim][iec]") {
  iec_meter_config c;
  c.pinned_now = now_s;
  c.reaction_delay = 200ms;
  c.inactivity_timeout = 10s;
  iec_meter m(identity(), {}, c);
  auto a = m.on_link_up(now_ms);
  const auto t0 = std::get<arm_timer>(a[0]);
  CHECK(t0.after == 10s);
  a = m.on_bytes("/?!\r\n", now_ms); // no address: answered
  REQUIRE(a.size() == 1);
  const auto t1 = std::get<arm_timer>(a[0]);
  CHECK(t1.after == 200ms);
  CHECK(m.on_timer(t0.id, now_ms + 200).empty()); // stale
  a = m.on_timer(t1.id, now_ms + 200);
  REQUIRE(a.size() == 2);
  CHECK(std::get<send_bytes>(a[0]).data == "/SIM5MTS-SIM\r\n");
  const auto t2 = std::get<arm_timer>(a[1]);
  CHECK(t2.after == 10s);
  a = m.on_timer(t2.id, now_ms + 10200);
  CHECK(finished(a));
  CHECK(m.closed());
}

TEST_CASE("sim meter: data readout mode", "[sim][iec]") {
  iec_meter m(identity(), {}, instant());
  m.on_link_up(now_ms);
  m.on_bytes("/?!\r\n", now_ms);
  const auto a = m.on_bytes("\x06" "050\r\n", now_ms);
  const auto text = sent(a);
  REQUIRE(text.size() > 10);
  CHECK(text.substr(0, 23) == STX "C.1.0(12345678)\r\n0.9.1");
  CHECK(text.substr(text.size() - 5) == framed(text.substr(0, text.size() - 1)).substr(text.size() - 5));
  CHECK(text.find("!\r\n" ETX) == text.size() - 5);
  CHECK(m.line().baud == 300); // back to the start
}

TEST_CASE("sim meter: load profile in EOT blocks", "[sim][iec]") {
  iec_meter_config c = instant();
  c.max_block = 200;
  iec_meter m(identity(), {}, c);
  log_in(m);
  // 2024-03-08 00:00 .. 02:00: entries ending 00:00 .. 02:00.
  const auto text = m.profile_text(day0, day0 + 7200, now_s);
  const auto& mm = m.model();
  std::string want = "P.01(0240308000000)(00)(30)(6)(1.29)(kWh)(2.29)(kWh)(5.29)(kvarh)(6.29)(kvarh)"
                     "(7.29)(kvarh)(8.29)(kvarh)\r\n";
  for (unix_seconds s = day0 - 1800; s < day0 + 7200; s += 1800) {
    for (int ch = 0; ch < channel_count; ++ch) {
      const auto wh = mm.interval_wh(static_cast<channel>(ch), s);
      want += "(" + std::to_string(wh / 1000) + "." + std::string(wh % 1000 < 100 ? (wh % 1000 < 10 ? "00" : "0") : "") +
              std::to_string(wh % 1000) + ")";
    }
    want += "\r\n";
  }
  CHECK(text == want);
  std::string got;
  auto a = m.on_bytes(b(SOH "R5" STX "P.01(02403080000;02403080200)" ETX, 0x21), now_ms);
  int blocks = 0;
  while (true) {
    const auto s = sent(a);
    REQUIRE(s.size() >= 3);
    REQUIRE(s.size() <= 203);
    CHECK(s == framed(s.substr(0, s.size() - 1)));
    got += s.substr(1, s.size() - 3);
    ++blocks;
    if (s[s.size() - 2] == '\x03')
      break;
    CHECK(s[s.size() - 2] == '\x04');
    a = m.on_bytes(ack, now_ms);
  }
  CHECK(got == want);
  CHECK(blocks == static_cast<int>((want.size() + 199) / 200));
  // Nothing in range: (ERROR).
  CHECK(sent(m.on_bytes(b(SOH "R5" STX "P.01(03001010000;03001020000)" ETX, 0x20), now_ms)) ==
        b(STX "(ERROR)" ETX, 0x5A));
}

TEST_CASE("sim meter: faults at byte level", "[sim][iec]") {
  SECTION("silent") {
    meter_faults f;
    f.silent = true;
    iec_meter m(identity(), f, instant());
    m.on_link_up(now_ms);
    CHECK(sent(m.on_bytes("/?12345678!\r\n", now_ms)).empty());
  }
  SECTION("garbage before replies, another serial") {
    meter_faults f;
    f.garbage_before_reply = "xx\x7f";
    f.reported_serial = "87654321";
    iec_meter m(identity(), f, instant());
    m.on_link_up(now_ms);
    CHECK(sent(m.on_bytes("/?12345678!\r\n", now_ms)) == "xx\x7f/SIM5MTS-SIM\r\n");
    m.on_bytes("\x06" "051\r\n", now_ms);
    m.on_bytes(b(SOH "P1" STX "(secret)" ETX, 0x77), now_ms);
    CHECK(sent(m.on_bytes(b(SOH "R1" STX "C.1.0()" ETX, 0x21), now_ms)) ==
          "xx\x7f" + b(STX "C.1.0(87654321)" ETX, 0x48));
  }
  SECTION("rejected password") {
    meter_faults f;
    f.reject_password = true;
    iec_meter m(identity(), f, instant());
    m.on_link_up(now_ms);
    m.on_bytes("/?12345678!\r\n", now_ms);
    m.on_bytes("\x06" "051\r\n", now_ms);
    CHECK(sent(m.on_bytes(b(SOH "P1" STX "(secret)" ETX, 0x77), now_ms)) == nak);
  }
  SECTION("every 2nd block corrupted; the repeat is good") {
    meter_faults f;
    f.corrupt_bcc_every = 2;
    f.error_register = 5;
    iec_meter m(identity(), f, instant());
    log_in(m); // P0 was block 1
    CHECK(sent(m.on_bytes(b(SOH "R1" STX "F.F()" ETX, 0x4D), now_ms)) == b(STX "F.F(00000005)" ETX, 0x28));
    CHECK(sent(m.on_bytes(nak, now_ms)) == b(STX "F.F(00000005)" ETX, 0x29));
    CHECK(sent(m.on_bytes(b(SOH "R1" STX "C.1.0()" ETX, 0x21), now_ms)) == b(STX "C.1.0(12345678)" ETX, 0x48));
  }
  SECTION("drop after N bytes") {
    meter_faults f;
    f.drop_after_bytes = 5;
    iec_meter m(identity(), f, instant());
    m.on_link_up(now_ms);
    const auto a = m.on_bytes("/?12345678!\r\n", now_ms);
    CHECK(sent(a) == "/SIM5");
    CHECK(finished(a));
  }
}

// ---- the client driver against the simulated meter, in-process ----
namespace {

using outcome = mts::testing::in_process_outcome;

outcome run_session(const meter_identity& id, const meter_faults& f, const session_request& rq,
                    iec_meter_config mc = {}) {
  mc.pinned_now = now_s;
  iec_meter meter(id, f, mc);
  auto driver = make_iec62056_21_driver(rq);
  return mts::testing::run_in_process(meter, *driver, iec62056_21_initial_line(), now_ms, 100000);
}

session_request full_request() {
  session_request rq;
  rq.outstation_address = "12345678";
  rq.password = "secret";
  rq.expected_serial = "12345678";
  rq.survey_from = day0;
  rq.survey_to = day0 + 2 * 86400;
  return rq;
}

} // namespace

TEST_CASE("driver vs simulated meter: full session equals the expected readings", "[sim][iec][e2e]") {
  auto id = identity();
  id.clock_offset_seconds = 95;
  meter_faults f;
  f.power_failure_every_days = 1;
  f.error_register = 0x4;
  const auto rq = full_request();
  const auto o = run_session(id, f, rq);
  REQUIRE(o.finished);
  CHECK(o.failure == failure_kind::none);
  CHECK(o.reason.empty());
  CHECK(o.lost_sends == 0);
  CHECK(o.driver_naks == 0);
  CHECK(o.partial_blocks >= 3); // ~4.5 KiB of profile in 1 KiB blocks
  const auto want = expected_readings(id, f, rq, now_s);
  REQUIRE(want.survey);
  CHECK((*want.survey)[0].readings.size() == 96);
  REQUIRE(want.status_events);
  CHECK(want.status_events->size() == 3); // F.F bit 2 + a power failure on each day
  require_equal(o.readings, want, o.end);
}

TEST_CASE("driver vs simulated meter: other seeds, no address, no expected serial", "[sim][iec][e2e]") {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    auto id = identity();
    id.seed = seed;
    id.serial = "SIM" + std::to_string(seed);
    id.clock_offset_seconds = -static_cast<std::int64_t>(seed) * 600;
    auto rq = full_request();
    rq.outstation_address.reset();
    rq.expected_serial.reset();
    rq.survey_from = now_s - 86400 - 7;  // unaligned range reaching past now
    rq.survey_to = now_s + 3600;
    const auto o = run_session(id, {}, rq);
    CHECK(o.failure == failure_kind::none);
    require_equal(o.readings, expected_readings(id, {}, rq, now_s), o.end);
  }
}

TEST_CASE("driver vs simulated meter: faults", "[sim][iec][e2e]") {
  const auto id = identity();
  const auto rq = full_request();
  meter_faults f;
  SECTION("wrong password: permanent failure") {
    auto bad = rq;
    bad.password = "guess";
    const auto o = run_session(id, f, bad);
    CHECK(o.failure == failure_kind::permanent);
    CHECK(o.reason == "password rejected");
    require_equal(o.readings, expected_readings(id, f, bad, now_s), o.end);
  }
  SECTION("rejected password fault") {
    f.reject_password = true;
    const auto o = run_session(id, f, rq);
    CHECK(o.failure == failure_kind::permanent);
    CHECK(o.reason == "password rejected");
  }
  SECTION("another serial number") {
    f.reported_serial = "87654321";
    const auto o = run_session(id, f, rq);
    CHECK(o.failure == failure_kind::permanent);
    CHECK(o.reason == "Serial number mismatch");
    CHECK(o.readings.serial_number == std::string("87654321"));
    require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
  }
  SECTION("every 3rd block corrupted: NAK, repeat, success") {
    f.corrupt_bcc_every = 3;
    const auto o = run_session(id, f, rq);
    CHECK(o.failure == failure_kind::none);
    CHECK(o.driver_naks >= 5);
    require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
  }
  SECTION("garbage before every reply") {
    f.garbage_before_reply = "\x7f\x00noise";
    f.garbage_before_reply += '\0';
    const auto o = run_session(id, f, rq);
    CHECK(o.failure == failure_kind::none);
    require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
  }
  SECTION("silent meter: transient timeout") {
    f.silent = true;
    const auto o = run_session(id, f, rq);
    CHECK(o.failure == failure_kind::transient);
    CHECK(o.reason == "no answer to sign-on");
    require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
  }
  SECTION("another outstation address: silence") {
    auto other = rq;
    other.outstation_address = "99";
    const auto o = run_session(id, f, other);
    CHECK(o.failure == failure_kind::transient);
    CHECK(o.reason == "no answer to sign-on");
    CHECK_FALSE(o.readings.serial_number);
  }
  SECTION("line dropped mid-profile: transient, registers kept") {
    f.drop_mid_profile = true;
    const auto o = run_session(id, f, rq);
    CHECK(o.failure == failure_kind::transient);
    CHECK(o.reason == "line dropped");
    const auto want = expected_readings(id, f, rq, now_s);
    REQUIRE(want.registers);
    CHECK_FALSE(want.survey);
    require_equal(o.readings, want, o.end);
  }
  SECTION("line dropped after 300 bytes") {
    f.drop_after_bytes = 300;
    const auto o = run_session(id, f, rq);
    CHECK(o.failure == failure_kind::transient);
    CHECK(o.reason == "line dropped");
    CHECK(o.readings.serial_number == std::string("12345678"));
  }
  SECTION("survey gaps: the missing half hours are absent") {
    f.survey_gaps = {day0 + 3600, day0 + 86400 + 1800, day0 + 86400 + 3600};
    const auto o = run_session(id, f, rq);
    CHECK(o.failure == failure_kind::none);
    const auto want = expected_readings(id, f, rq, now_s);
    require_equal(o.readings, want, o.end);
    REQUIRE(o.readings.survey);
    for (const auto& ch : *o.readings.survey) {
      CHECK(ch.readings.size() == 96 - 3);
      for (const auto& r : ch.readings)
        for (const auto gap : f.survey_gaps)
          CHECK(r.timestamp != gap);
    }
  }
}

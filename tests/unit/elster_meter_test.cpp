// The simulated Elster A1700 / A1140 meter: the encoding pieces against hand-computed bytes,
// byte-level exchanges written out by hand (BCCs computed independently of the code under
// test), then the Elster driver against the simulated meter in-process, byte for byte, whose
// readings must equal expected_readings().
#include "drivers/elster.hpp"
#include "drivers/elster_codec.hpp"
#include "sim/elster_meter.hpp"
#include "sim/sim_config.hpp"

#include "tests/unit/driver_harness.hpp"
#include "tests/unit/iec_transcript.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <string>

namespace {

using namespace mts::sim;
using namespace mts::drivers;
using namespace std::chrono_literals;
using mts::unix_seconds;
namespace sel = mts::sim::elster;     // the simulator's encoders (under test)
namespace codec = mts::drivers::elster; // the shared password hash

using namespace mts::testing; // tests/unit/driver_harness.hpp, iec_transcript.hpp

std::string cmd(const std::string& c, const std::string& data) { return framed("\x01" + c + "\x02" + data + "\x03"); }
std::string data_reply(const std::string& data) { return framed("\x02" + data + "\x03"); }
std::string bytes(std::initializer_list<int> v) {
  std::string out;
  for (int b : v)
    out += static_cast<char>(b);
  return out;
}

// 2024-03-10T12:34:56Z
constexpr unix_seconds now_s = 1710074096;
constexpr unix_ms now_ms = now_s * 1000;
// 2024-03-08T00:00:00Z
constexpr unix_seconds day0 = 1709856000;

meter_identity identity(const char* type = elster_a1700_type) {
  meter_identity id;
  id.type = type;
  id.driver = type == std::string(elster_a1140_type) ? "elster-a1140" : "elster-a1700";
  id.serial = "12345678";
  id.outstation_address = "1";
  id.password = "ABCD1234";
  id.seed = 42;
  return id;
}

elster_meter_config instant(std::uint64_t session = 1) { return instant_meter<elster_meter_config>(now_s, session); }

// Signed on (9600 baud), P0 received; returns the seed.
std::string sign_on(elster_meter& m, const std::string& ident = "/GEC5090100100400@000\r\n") {
  m.on_link_up(now_ms);
  REQUIRE(sent(m.on_bytes("/?1!\r\n", now_ms)) == ident);
  const auto a = m.on_bytes("\x06" "056\r\n", now_ms);
  REQUIRE(m.line().baud == 9600);
  const auto p0 = sent(a);
  REQUIRE(p0.size() == 1 + 2 + 1 + 18 + 1 + 1);
  const std::string seed = p0.substr(5, 16);
  CHECK(p0 == cmd("P0", "(" + seed + ")"));
  CHECK(seed == m.seed_operand());
  return seed;
}
void log_in(elster_meter& m, const std::string& password = "ABCD1234") {
  const auto seed = sign_on(m);
  REQUIRE(sent(m.on_bytes(cmd("P2", "(" + *codec::password_hash(password, seed) + ")"), now_ms)) == ack);
}
std::string hex_of(const std::string& ascii) {
  static const char d[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : ascii) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

} // namespace

TEST_CASE("elster encoding pieces: hand-computed bytes", "[sim][elster]") {
  // 12 345 678 Wh -> raw 12 345 678 000 -> digits 0000012345678000, least significant pair first.
  CHECK(sel::register_bytes(12345678000ull) == bytes({0x00, 0x80, 0x67, 0x45, 0x23, 0x01, 0x00, 0x00}));
  CHECK(sel::register_bytes(0) == std::string(8, '\0'));
  // 2024-03-10 12:34:56: sec min hour day month weekday(0) year-2000.
  CHECK(sel::clock_bytes(now_s) == bytes({0x56, 0x34, 0x12, 0x10, 0x03, 0x00, 0x24}));
  CHECK(sel::serial_bytes("12345678") == "0000000012345678");
  CHECK(sel::serial_bytes("ABCDEFGHIJKLMNOPQR") == "CDEFGHIJKLMNOPQR");
  CHECK(sel::normalised_serial("0000000005074494") == "05074494");
  CHECK(sel::normalised_serial("0000000012345678") == "12345678");
  CHECK(sel::normalised_serial("000000000000SIM1") == "0000SIM1");
  CHECK(sel::normalised_serial("0000 123456789 0") == "1234567890");
  CHECK(sel::le_bytes(0x80000005u, 4) == bytes({0x05, 0x00, 0x00, 0x80}));
  CHECK(sel::hex(bytes({0x00, 0x3F, 0xAB})) == "003FAB");
  CHECK(sel::unhex("003FAB") == bytes({0x00, 0x3F, 0xAB}));
  CHECK_FALSE(sel::unhex("003fab"));
  CHECK_FALSE(sel::unhex("0"));
  // DDDDDE: 734 Wh = 00734 x 10^0 -> 00 73 40; 123 456 = 12345 x 10^1 -> 12 34 51.
  CHECK(sel::profile_value_bytes(734) == bytes({0x00, 0x73, 0x40}));
  CHECK(sel::profile_value_bytes(99999) == bytes({0x99, 0x99, 0x90}));
  CHECK(sel::profile_value_bytes(123456) == bytes({0x12, 0x34, 0x51}));
  CHECK(sel::profile_value_carried(123456) == 123450);
  CHECK(sel::profile_value_carried(734) == 734);
  CHECK(sel::status_events(0x80000005u) ==
        std::vector<std::string>{"Backup register set corrupt", "Meter comms write event", "Meter transient reset"});
  CHECK(sel::status_events(0xF8u).empty()); // bits 3..7 are spare
  CHECK(sel::status_events(0x00000100u) == std::vector<std::string>{"Phase A failure"});
}

TEST_CASE("elster record stream: markers and records by hand", "[sim][elster]") {
  std::vector<sel::profile_item> items;
  items.push_back({sel::new_day, day0, {}});
  items.push_back({0, day0, {734, 0, 220, 0, 0, 73}});
  items.push_back({sel::power_down, day0 + 1800 + 600, {}});
  items.push_back({sel::power_up, day0 + 1800 + 900, {}});
  // day0 = 0x65EA5500 -> 00 55 EA 65; +2400 = 0x65EA5E60; +2700 = 0x65EA5F8C.
  const std::string want = bytes({0xE4, 0x00, 0x55, 0xEA, 0x65, 0x00, 0x3F, 0x09, // new day, mask, 30 min
                                  0x00, 0x00, 0x73, 0x40, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, // status, import, export, Q1
                                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x30,       // Q2, Q3, Q4
                                  0xE6, 0x60, 0x5E, 0xEA, 0x65, 0xE5, 0x8C, 0x5F, 0xEA, 0x65, 0xFF});
  CHECK(sel::encode_profile(items) == want);
}

TEST_CASE("elster profile days: 551 and 554 ranges, clipped to the data and to 4,000 days", "[sim][elster]") {
  // The fuzz harness (fuzz/sim_meters.cpp) keeps its meters in their first 60 days of data,
  // where neither cap is reached; these ranges are checked here. Meter time 2023-11-14
  // 22:13:20: that day starts at 1,699,920,000.
  constexpr unix_seconds t = 1'700'000'000, today = 1'699'920'000, day = 86'400;
  const auto same = [](sel::day_range a, sel::day_range b) { return a.first == b.first && a.last == b.last; };
  CHECK(sel::days_551(0, t).last < sel::days_551(0, t).first); // no days
  CHECK(same(sel::days_551(1, t), {today, today}));
  CHECK(same(sel::days_551(10, t), {today - 9 * day, today}));
  CHECK(same(sel::days_551(4000, t), {today - 3999 * day, today}));
  CHECK(same(sel::days_551(4001, t), {today - 3999 * day, today})); // capped
  CHECK(same(sel::days_551(0xFFFF, t), {today - 3999 * day, today})); // "all"
  // A meter whose data starts 2000-01-01 (946,684,800) and is 10 days old: all it has.
  const unix_seconds young = 946'684'800 + 10 * day + 5 * 3600;
  CHECK(same(sel::days_551(0xFFFF, young), {946'684'800, 946'684'800 + 10 * day}));
  CHECK(same(sel::days_551(30, young), {946'684'800, 946'684'800 + 10 * day}));

  CHECK(sel::days_554(t, t, t).last < sel::days_554(t, t, t).first); // to <= from: no days
  CHECK(same(sel::days_554(today - 2 * day + 7, today - day + 1, t), {today - 2 * day, today - day}));
  CHECK(same(sel::days_554(today - 2 * day, today - day, t), {today - 2 * day, today - 2 * day})); // to exclusive
  CHECK(same(sel::days_554(today - day, t + 10 * day, t), {today - day, today})); // not past the meter's today
  CHECK(same(sel::days_554(0, t, t), {today - 3999 * day, today}));               // the last 4,000 days
  CHECK(same(sel::days_554(0, young, young), {946'684'800, 946'684'800 + 10 * day})); // not before the data
}

TEST_CASE("elster record stream: a day with a gap and a power failure", "[sim][elster]") {
  meter_faults f;
  f.survey_gaps = {day0 + 3600, day0 + 5400};
  f.power_failure_every_days = 1; // one failure every day
  const meter_model model(identity(), f);
  const auto items = sel::profile_items(model, {day0, day0}, now_s);
  REQUIRE(!items.empty());
  CHECK(items.front().marker == sel::new_day);
  CHECK(items.front().time == day0);
  std::size_t records = 0;
  std::vector<std::pair<int, unix_seconds>> markers;
  for (const auto& i : items) {
    if (i.marker == 0) {
      ++records;
      CHECK(i.time != day0 + 3600);
      CHECK(i.time != day0 + 5400);
    } else if (i.marker != sel::new_day) {
      markers.emplace_back(i.marker, i.time);
    }
  }
  CHECK(records == 46);
  unix_seconds failure = 0;
  for (unix_seconds h = day0; h < day0 + 86400; h += 1800)
    if (model.interval_status(h) != 0)
      failure = h;
  REQUIRE(failure != 0);
  std::vector<std::pair<int, unix_seconds>> want = {{0xE6, day0 + 3601}, {0xE5, day0 + 7200}};
  if (failure != day0 + 3600 && failure != day0 + 5400) {
    want.emplace_back(0xE6, failure + 600);
    want.emplace_back(0xE5, failure + 900);
  }
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.second < b.second; });
  CHECK(markers == want);
  // Today up to 12:34:56: the half hours ending by 12:30.
  const auto today = sel::profile_items(meter_model(identity(), {}), {now_s - now_s % 86400, now_s - now_s % 86400}, now_s);
  CHECK(today.size() == 1 + 25);
  CHECK(today.back().time == now_s - now_s % 86400 + 12 * 3600);
}

TEST_CASE("elster meter: sign-on and password", "[sim][elster]") {
  SECTION("A1140 identification; another session, another seed") {
    elster_meter a(identity(elster_a1140_type), {}, instant(1));
    const auto seed1 = sign_on(a, "/GEC5120510070213@000\r\n");
    elster_meter b(identity(elster_a1140_type), {}, instant(2));
    const auto seed2 = sign_on(b, "/GEC5120510070213@000\r\n");
    elster_meter c(identity(elster_a1140_type), {}, instant(1));
    CHECK(seed1 != seed2);
    CHECK(sign_on(c, "/GEC5120510070213@000\r\n") == seed1);
  }
  SECTION("wrong hash NAK, then the right one ACK") {
    elster_meter m(identity(), {}, instant());
    const auto seed = sign_on(m);
    CHECK(sent(m.on_bytes(cmd("P2", "(" + *codec::password_hash("ABCD1235", seed) + ")"), now_ms)) == nak);
    CHECK(sent(m.on_bytes(cmd("R1", "798001(10)"), now_ms)) == data_reply("(ERR5)"));
    CHECK(sent(m.on_bytes(cmd("P2", "(" + *codec::password_hash("ABCD1234", seed) + ")"), now_ms)) == ack);
    // The notes' vector: R1 798001(10) has BCC 0x65.
    CHECK(sent(m.on_bytes(mts::testing::b(SOH "R1" STX "798001(10)" ETX, 0x65), now_ms)) ==
          data_reply("(" + hex_of("0000000012345678") + ")"));
  }
  SECTION("the all-zero operand is accepted") {
    elster_meter m(identity(), {}, instant());
    sign_on(m);
    CHECK(sent(m.on_bytes(cmd("P2", "(0000000000000000)"), now_ms)) == ack);
    CHECK(sent(m.on_bytes(cmd("R1", "724001(04)"), now_ms)) == data_reply("(00000000)"));
  }
  SECTION("reject_password NAKs even the right hash; P1 is NAKed") {
    meter_faults f;
    f.reject_password = true;
    elster_meter m(identity(), f, instant());
    const auto seed = sign_on(m);
    CHECK(sent(m.on_bytes(cmd("P1", "(ABCD1234)"), now_ms)) == nak);
    CHECK(sent(m.on_bytes(cmd("P2", "(" + *codec::password_hash("ABCD1234", seed) + ")"), now_ms)) == nak);
  }
  SECTION("another address: silence; a bad BCC: NAK; B0 closes") {
    elster_meter m(identity(), {}, instant());
    m.on_link_up(now_ms);
    CHECK(sent(m.on_bytes("/?2!\r\n", now_ms)).empty());
    CHECK(sent(m.on_bytes("/?!\r\n", now_ms)) == "/GEC5090100100400@000\r\n");
    const auto seed = sent(m.on_bytes("\x06" "051\r\n", now_ms)).substr(5, 16);
    std::string bad = cmd("P2", "(" + *codec::password_hash("ABCD1234", seed) + ")");
    bad.back() = static_cast<char>(bad.back() ^ 1);
    CHECK(sent(m.on_bytes(bad, now_ms)) == nak);
    const auto a = m.on_bytes(b0, now_ms);
    CHECK(finished(a));
    CHECK(m.closed());
  }
}

TEST_CASE("elster meter: reads, errors, writes", "[sim][elster]") {
  meter_faults f;
  f.error_register = 0x80000005u;
  elster_meter m(identity(), f, instant());
  log_in(m);
  auto ask = [&](const std::string& c, const std::string& d) { return sent(m.on_bytes(cmd(c, d), now_ms)); };
  CHECK(ask("R1", "861001(07)") == data_reply("(56341210030024)"));
  CHECK(ask("R1", "724001(04)") == data_reply("(05000080)"));
  CHECK(ask("R1", "777001(02)") == data_reply("(3F00)"));
  CHECK(ask("R1", "878001(03)") == data_reply("(1E1E01)"));
  // 507: 80 bytes in a packet of 64 and one of 16.
  const auto p1 = ask("R1", "507001(40)");
  REQUIRE(p1.size() == 1 + 2 + 128 + 1 + 1);
  const auto regs = m.model().registers_at(now_s);
  CHECK(p1.substr(2, 16) == sel::hex(sel::register_bytes(static_cast<std::uint64_t>(regs[0]) * 1000)));
  CHECK(p1.substr(2 + 16 * 5, 16) == sel::hex(sel::register_bytes(static_cast<std::uint64_t>(regs[5]) * 1000)));
  CHECK(p1.substr(2 + 16 * 6, 16) ==
        sel::hex(sel::register_bytes(static_cast<std::uint64_t>(m.model().va_register_wh(now_s)) * 1000)));
  CHECK(p1.substr(2 + 16 * 7, 16) == std::string(16, '0'));
  CHECK(ask("R1", "507002(10)") == data_reply("(" + std::string(32, '0') + ")")); // customer-defined
  CHECK(ask("R1", "507002(20)") == data_reply("(ERR3)"));  // beyond 80 bytes
  CHECK(ask("R1", "507003(10)") == data_reply("(ERR3)"));
  CHECK(ask("R1", "798000(10)") == data_reply("(ERR3)"));
  CHECK(ask("R1", "798001(41)") == data_reply("(ERR3)"));  // more than a packet
  CHECK(ask("R1", "999001(10)") == data_reply("(ERR2)"));
  CHECK(ask("R1", "798001(0a)") == data_reply("(ERR1)"));  // hex is upper case
  CHECK(ask("R1", "79800(10)") == data_reply("(ERR1)"));
  CHECK(ask("R2", "798001(10)") == data_reply("(ERR1)"));
  CHECK(ask("W1", "554001(0000000000000000)") == data_reply("(ERR2)")); // A1700: no read by date
  CHECK(ask("W1", "551001(03)") == data_reply("(ERR1)"));
  CHECK(ask("W1", "551001(0100)") == ack); // today
  // Today: E4 + 25 records of 19 bytes + FF = 8 + 475 + 1 = 484 bytes = 7 blocks of 64 (+ 36).
  CHECK(ask("R1", "551001(04)") == data_reply("(07000100)"));
  const auto first = ask("R1", "550001(40)");
  CHECK(first.substr(0, 16) == "\x02(E4" + sel::hex(sel::le_bytes(static_cast<std::uint64_t>(now_s - now_s % 86400), 4)) + "003F");
  const auto last = ask("R1", "550008(40)");
  // Bytes 448..511: 36 stream bytes (the last one FF) then 28 bytes of FF padding.
  CHECK(last.substr(2 + 70, 2) == "FF");
  CHECK(last.substr(2 + 72, 56) == std::string(56, 'F'));
  CHECK(ask("R1", "550009(40)") == data_reply("(ERR3)"));
}

TEST_CASE("elster meter: A1140 read by date, and the password session timeout", "[sim][elster]") {
  meter_faults f;
  f.password_timeout_after_reads = 2;
  elster_meter m(identity(elster_a1140_type), f, instant());
  const auto seed = sign_on(m, "/GEC5120510070213@000\r\n");
  const auto hash = cmd("P2", "(" + *codec::password_hash("ABCD1234", seed) + ")");
  REQUIRE(sent(m.on_bytes(hash, now_ms)) == ack);
  auto ask = [&](const std::string& c, const std::string& d) { return sent(m.on_bytes(cmd(c, d), now_ms)); };
  const auto serial = data_reply("(" + hex_of("0000000012345678") + ")");
  CHECK(ask("R1", "798001(10)") == serial);
  CHECK(ask("R1", "507002(40)").size() == 1 + 2 + 128 + 1 + 1); // A1140: 128 bytes
  CHECK(ask("R1", "798001(10)") == data_reply("(ERR5)"));
  CHECK(ask("R1", "861001(07)") == data_reply("(ERR5)"));
  // Writes are not locked by the timeout; from/to = 2024-03-08T00:00Z and +1 day, LE.
  CHECK(ask("W1", "554001(0055EA6580A6EB65)") == ack);
  // The zero operand opens a new password session too (2 more reads).
  CHECK(sent(m.on_bytes(cmd("P2", "(0000000000000000)"), now_ms)) == ack);
  CHECK(ask("R1", "798001(10)") == serial);
  CHECK(sent(m.on_bytes(hash, now_ms)) == ack);
  // One whole day: E4 + 48 records + FF = 921 bytes = 14 blocks of 64, 3 of 256.
  CHECK(ask("R1", "551001(04)") == data_reply("(0E000300)"));
  CHECK(ask("R1", "550001(40)").substr(0, 12) == "\x02(E40055EA65");
  CHECK(ask("R1", "798001(10)") == data_reply("(ERR5)"));
}

TEST_CASE("elster meter: the zero operand gives read access, only the hash write access", "[sim][elster]") {
  elster_meter m(identity(elster_a1140_type), meter_faults{}, instant());
  const auto seed = sign_on(m, "/GEC5120510070213@000\r\n");
  auto ask = [&](const std::string& c, const std::string& d) { return sent(m.on_bytes(cmd(c, d), now_ms)); };
  CHECK(ask("W1", "554001(0055EA6580A6EB65)") == data_reply("(ERR5)")); // no password session yet
  REQUIRE(ask("P2", "(0000000000000000)") == ack);
  CHECK(ask("R1", "798001(10)") == data_reply("(" + hex_of("0000000012345678") + ")"));
  CHECK(ask("W1", "554001(0055EA6580A6EB65)") == data_reply("(ERR5)"));
  REQUIRE(ask("P2", "(" + *codec::password_hash("ABCD1234", seed) + ")") == ack);
  CHECK(ask("W1", "554001(0055EA6580A6EB65)") == ack);
}

TEST_CASE("elster meter: faults on the wire", "[sim][elster]") {
  SECTION("every 2nd block has a bad BCC, a NAK gets a good repeat") {
    meter_faults f;
    f.corrupt_bcc_every = 2;
    elster_meter m(identity(), f, instant());
    log_in(m); // P0 was block 1
    const auto good = data_reply("(" + hex_of("0000000012345678") + ")");
    auto bad = good;
    bad.back() = static_cast<char>(bad.back() ^ 1);
    CHECK(sent(m.on_bytes(cmd("R1", "798001(10)"), now_ms)) == bad);
    CHECK(sent(m.on_bytes(nak, now_ms)) == good);
  }
  SECTION("garbage before replies, another serial, silence") {
    meter_faults f;
    f.garbage_before_reply = "#?";
    f.reported_serial = "0000 5074494";
    elster_meter m(identity(), f, instant());
    m.on_link_up(now_ms);
    CHECK(sent(m.on_bytes("/?1!\r\n", now_ms)) == "#?/GEC5090100100400@000\r\n");
    const auto seed = sent(m.on_bytes("\x06" "056\r\n", now_ms)).substr(7, 16);
    CHECK(sent(m.on_bytes(cmd("P2", "(" + *codec::password_hash("ABCD1234", seed) + ")"), now_ms)) == "#?" + ack);
    CHECK(sent(m.on_bytes(cmd("R1", "798001(10)"), now_ms)) == "#?" + data_reply("(" + hex_of("00000000 5074494") + ")"));

    meter_faults quiet;
    quiet.silent = true;
    elster_meter s(identity(), quiet, instant());
    s.on_link_up(now_ms);
    CHECK(sent(s.on_bytes("/?1!\r\n", now_ms)).empty());
  }
  SECTION("drop mid-profile: closed after the first 550 packet") {
    meter_faults f;
    f.drop_mid_profile = true;
    elster_meter m(identity(), f, instant());
    log_in(m);
    REQUIRE(sent(m.on_bytes(cmd("W1", "551001(0200)"), now_ms)) == ack);
    const auto a = m.on_bytes(cmd("R1", "550001(40)"), now_ms);
    CHECK(sent(a).size() == 1 + 2 + 128 + 1 + 1);
    CHECK(finished(a));
  }
}

// ---- the Elster driver against the simulated meter, in-process ----
namespace {

using outcome = mts::testing::in_process_outcome;

outcome run_session(const meter_identity& id, const meter_faults& f, const session_request& rq,
                    std::optional<elster_config> config = std::nullopt) {
  elster_meter meter(id, f, [] {
    elster_meter_config c;
    c.pinned_now = now_s;
    c.session_number = 7;
    return c;
  }());
  if (!config)
    config = id.type == std::string(elster_a1140_type) ? elster_a1140_config() : elster_a1700_config();
  auto driver = make_elster_driver(rq, *config);
  return mts::testing::run_in_process(meter, *driver, elster_initial_line(), now_ms, 1000000);
}

session_request full_request() {
  session_request rq;
  rq.outstation_address = "1";
  rq.password = "ABCD1234";
  rq.expected_serial = "12345678";
  rq.survey_from = day0;
  rq.survey_to = day0 + 2 * 86400;
  return rq;
}

const char* const both_types[] = {elster_a1700_type, elster_a1140_type};

} // namespace

TEST_CASE("elster driver vs simulated meter: full session equals the expected readings", "[sim][elster][e2e]") {
  for (const char* type : both_types) {
    INFO(type);
    auto id = identity(type);
    id.clock_offset_seconds = 95;
    meter_faults f;
    f.error_register = 0x00000102u; // Phase A failure, Time synchronisation
    const auto rq = full_request();
    const auto o = run_session(id, f, rq);
    REQUIRE(o.finished);
    CHECK(o.failure == failure_kind::none);
    CHECK(o.reason.empty());
    CHECK(o.lost_sends == 0);
    CHECK(o.driver_naks == 0);
    const auto want = expected_readings(id, f, rq, now_s);
    REQUIRE(want.survey);
    CHECK(want.survey->size() == 6);
    CHECK((*want.survey)[0].readings.size() == 96);
    REQUIRE(want.registers);
    CHECK(want.registers->size() == 7);
    CHECK(want.registers->back().name == "kVAh");
    CHECK(want.status_events == std::vector<std::string>{"Phase A failure", "Time synchronisation"});
    require_equal(o.readings, want, o.end);
  }
}

TEST_CASE("elster driver vs simulated meter: a type whose meters keep UTC+offset", "[sim][elster][e2e]") {
  // Offsets that move the meter's day (and the survey range in meter time) either way; the
  // range ends inside the meter's day so that the 551 day count and the 554 range differ
  // from those of a UTC meter.
  for (const std::int64_t minutes : {60, -300, 840}) {
    for (const char* type : both_types) {
      INFO(type << " at UTC" << (minutes < 0 ? "" : "+") << minutes << " min");
      auto id = identity(type);
      id.utc_offset_minutes = minutes;
      id.clock_offset_seconds = -40;
      auto config = id.type == std::string(elster_a1140_type) ? elster_a1140_config() : elster_a1700_config();
      config.clock_utc_offset_minutes = static_cast<int>(minutes);
      auto rq = full_request();
      rq.survey_from = day0 + 3 * 3600;
      rq.survey_to = now_s;
      const auto o = run_session(id, {}, rq, config);
      CHECK(o.failure == failure_kind::none);
      const auto want = expected_readings(id, {}, rq, now_s);
      // The clock is reported in UTC: the meter's drift alone.
      REQUIRE(want.meter_time);
      CHECK(*want.meter_time == now_s - 40);
      REQUIRE(want.survey);
      CHECK((*want.survey)[0].readings.front().timestamp == day0 + 3 * 3600);
      require_equal(o.readings, want, o.end);
    }
  }
}

TEST_CASE("elster driver vs simulated meter: option mode 1 and security level 3", "[sim][elster][e2e]") {
  for (const char* type : both_types) {
    INFO(type);
    const auto id = identity(type);
    auto config = id.type == std::string(elster_a1140_type) ? elster_a1140_config() : elster_a1700_config();
    config.option_mode = '1';
    config.security_level = 3; // P2(zeros), then P2(hash)
    meter_faults f;
    f.password_timeout_after_reads = 15; // the re-authentication uses the hash, not the zeros
    const auto rq = full_request();
    const auto o = run_session(id, f, rq, config);
    CHECK(o.failure == failure_kind::none);
    CHECK(o.p2_sent >= 3);
    require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
    auto wrong = rq;
    wrong.password = "ABCD1235"; // the zero operand is accepted, the wrong hash is not
    const auto bad = run_session(id, {}, wrong, config);
    CHECK(bad.failure == failure_kind::permanent);
    CHECK(bad.reason == "password rejected");
    CHECK(bad.p2_sent == 2);
  }
}

TEST_CASE("elster driver vs simulated meter: other seeds, no address, ranges up to now", "[sim][elster][e2e]") {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    for (const char* type : both_types) {
      INFO(type << " seed " << seed);
      auto id = identity(type);
      id.seed = seed;
      id.serial = "SIM" + std::to_string(seed);
      id.outstation_address.clear();
      id.clock_offset_seconds = -static_cast<std::int64_t>(seed) * 40;
      auto rq = full_request();
      rq.outstation_address.reset();
      rq.expected_serial.reset();
      rq.survey_from = now_s - 86400 - 7; // unaligned, up to now
      rq.survey_to = now_s;
      const auto o = run_session(id, {}, rq);
      CHECK(o.failure == failure_kind::none);
      CHECK(o.readings.serial_number == "0000" + id.serial); // 798 "000000000000SIM1", 8 characters kept
      require_equal(o.readings, expected_readings(id, {}, rq, now_s), o.end);
    }
  }
}

TEST_CASE("elster driver vs simulated meter: faults", "[sim][elster][e2e]") {
  for (const char* type : both_types) {
    INFO(type);
    const auto id = identity(type);
    const auto rq = full_request();
    meter_faults f;
    SECTION("wrong password: permanent failure") {
      auto bad = rq;
      bad.password = "ABCD1235";
      const auto o = run_session(id, f, bad);
      CHECK(o.failure == failure_kind::permanent);
      CHECK(o.reason == "password rejected");
      CHECK(expected_elster(id, f, bad, now_s).end.reason == o.reason);
      require_equal(o.readings, expected_readings(id, f, bad, now_s), o.end);
    }
    SECTION("rejected password fault") {
      f.reject_password = true;
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::permanent);
      CHECK(o.reason == "password rejected");
      CHECK_FALSE(o.readings.serial_number);
    }
    SECTION("another serial number") {
      f.reported_serial = "87654321";
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::permanent);
      CHECK(o.reason == "Serial number mismatch");
      CHECK(o.readings.serial_number == std::string("87654321"));
      CHECK(expected_elster(id, f, rq, now_s).end.reason == o.reason);
      require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
    }
    SECTION("every 3rd block corrupted: NAK, repeat, success") {
      f.corrupt_bcc_every = 3;
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::none);
      CHECK(o.driver_naks >= 10); // a third of ~40 blocks
      require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
    }
    SECTION("garbage before every reply") {
      f.garbage_before_reply = "\x7f noise";
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::none);
      require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
    }
    SECTION("silent meter: transient timeout") {
      f.silent = true;
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::transient);
      CHECK(o.reason == "no answer to sign-on");
      CHECK(expected_elster(id, f, rq, now_s).end.reason == o.reason);
      require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
    }
    SECTION("line dropped mid-profile: transient, registers kept") {
      f.drop_mid_profile = true;
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::transient);
      CHECK(o.reason == "line dropped");
      const auto want = expected_elster(id, f, rq, now_s);
      CHECK(want.end.reason == "line dropped");
      REQUIRE(want.readings.registers);
      CHECK_FALSE(want.readings.survey);
      require_equal(o.readings, want.readings, o.end);
    }
    SECTION("ERR5 mid-profile: re-authentication, same result") {
      f.password_timeout_after_reads = 20; // the 2-day profile needs ~35 reads
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::none);
      CHECK(o.p2_sent >= 2);
      require_equal(o.readings, expected_readings(id, f, rq, now_s), o.end);
    }
    SECTION("ERR5 too often: the 4th timeout ends the session") {
      f.password_timeout_after_reads = 3; // 12 reads allowed, a 2-day profile needs more
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::transient);
      CHECK(o.reason == "password session keeps timing out");
      CHECK(o.p2_sent == 4);
      const auto want = expected_elster(id, f, rq, now_s);
      CHECK(want.end.reason == o.reason);
      require_equal(o.readings, want.readings, o.end);
    }
    SECTION("power failures and survey gaps become markers, events and missing readings") {
      f.power_failure_every_days = 1;
      f.survey_gaps = {day0 + 3600, day0 + 86400 - 1800, day0 + 86400, day0 + 86400 + 1800};
      const auto o = run_session(id, f, rq);
      CHECK(o.failure == failure_kind::none);
      const auto want = expected_readings(id, f, rq, now_s);
      require_equal(o.readings, want, o.end);
      REQUIRE(o.readings.survey);
      for (const auto& ch : *o.readings.survey)
        CHECK(ch.readings.size() == 96 - 4);
      REQUIRE(o.readings.status_events);
      // Two gap runs (E6 + E5 each) and a power failure on each day, unless it fell into a gap.
      CHECK(o.readings.status_events->size() >= 6);
      const auto& ev = *o.readings.status_events;
      for (const char* e : {"Power down at 2024-03-08T01:00:01Z", "Power up at 2024-03-08T01:30:00Z",
                            "Power down at 2024-03-08T23:30:01Z", "Power up at 2024-03-09T01:00:00Z"})
        CHECK(std::find(ev.begin(), ev.end(), e) != ev.end());
    }
  }
}

// Simulated meter data: determinism, monotonic registers, survey consistency, gaps, events,
// and the expected readings.
#include "sim/meter_data.hpp"

#include <catch2/catch.hpp>

namespace {

using namespace mts::sim;
using mts::unix_seconds;

// 2024-03-10T12:34:56Z
constexpr unix_seconds now = 1710074096;
// 2024-03-08T00:00:00Z
constexpr unix_seconds day0 = 1709856000;

meter_identity identity(std::string serial = "12345678", std::uint64_t seed = 42) {
  meter_identity id;
  id.serial = std::move(serial);
  id.outstation_address = "12345678";
  id.password = "secret";
  id.seed = seed;
  return id;
}

} // namespace

TEST_CASE("sim data: same identity gives the same values, another serial or seed others", "[sim]") {
  const meter_model a(identity(), {}), b(identity(), {});
  const meter_model other_serial(identity("12345679"), {}), other_seed(identity("12345678", 43), {});
  for (unix_seconds t = day0; t < day0 + 86400; t += 1800) {
    for (int c = 0; c < channel_count; ++c) {
      const auto ch = static_cast<channel>(c);
      CHECK(a.interval_wh(ch, t) == b.interval_wh(ch, t));
      CHECK(a.register_wh(ch, t + 17) == b.register_wh(ch, t + 17));
    }
  }
  CHECK(a.registers_at(now) != other_serial.registers_at(now));
  CHECK(a.registers_at(now) != other_seed.registers_at(now));
  // Base values are not trivially related either.
  CHECK(a.register_wh(channel::kwh_import, now) != other_serial.register_wh(channel::kwh_import, now));
}

TEST_CASE("sim data: registers only grow and intervals sum to register differences", "[sim]") {
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    const meter_model m(identity("S" + std::to_string(seed), seed), {});
    for (int c = 0; c < channel_count; ++c) {
      const auto ch = static_cast<channel>(c);
      std::int64_t sum = 0;
      std::int64_t prev = m.register_wh(ch, day0);
      for (unix_seconds t = day0; t < day0 + 3 * 86400; t += 1800) {
        const auto e = m.interval_wh(ch, t);
        CHECK(e >= 0);
        sum += e;
        CHECK(m.register_wh(ch, t + 1800) - m.register_wh(ch, t) == e);
        for (unix_seconds s = t + 300; s <= t + 1800; s += 300) { // within the half hour too
          const auto r = m.register_wh(ch, s);
          CHECK(r >= prev);
          prev = r;
        }
      }
      CHECK(m.register_wh(ch, day0 + 3 * 86400) - m.register_wh(ch, day0) == sum);
    }
  }
}

TEST_CASE("sim data: channel shapes", "[sim]") {
  const meter_model m(identity(), {});
  std::int64_t lo = 1 << 30, hi = 0;
  for (unix_seconds t = day0; t < day0 + 86400; t += 1800) {
    const auto e = m.interval_wh(channel::kwh_import, t);
    lo = std::min(lo, e);
    hi = std::max(hi, e);
    CHECK(m.interval_wh(channel::kvarh_q2, t) == 0);
    CHECK(m.interval_wh(channel::kvarh_q3, t) == 0);
  }
  CHECK(lo >= 50);
  CHECK(hi <= 2200);
  CHECK(hi > 3 * lo); // a daily shape, not a constant
  // Before the data epoch: constant registers, no energy.
  CHECK(m.interval_wh(channel::kwh_import, data_epoch - 1800) == 0);
  CHECK(m.register_wh(channel::kwh_import, 0) == m.register_wh(channel::kwh_import, data_epoch));
}

TEST_CASE("sim data: formatting with 3 decimals", "[sim]") {
  CHECK(format_k(12345678) == "012345.678");
  CHECK(format_k(5) == "000000.005");
  CHECK(format_k(1234567890) == "1234567.890");
  CHECK(half_hour_floor(day0 + 1799) == day0);
  CHECK(half_hour_floor(day0 - 1) == day0 - 1800);
}

TEST_CASE("sim data: survey entries, gaps and power failures", "[sim]") {
  meter_faults f;
  f.survey_gaps = {day0 + 3600, day0 + 5400};
  const meter_model m(identity(), f);
  // Entries END in [from, to] and not after now.
  auto e = m.survey(day0, day0 + 4 * 3600, now);
  REQUIRE(e.size() == 9 - 2);
  CHECK(e.front().start == day0 - 1800);
  CHECK(e[1].start == day0);
  CHECK(e[2].start == day0 + 1800);
  CHECK(e[3].start == day0 + 7200); // 01:00 and 01:30 are gaps
  CHECK(e.back().start == day0 + 4 * 3600 - 1800);
  CHECK(e[1].wh[0] == m.interval_wh(channel::kwh_import, day0));
  CHECK(m.is_gap(day0 + 3600));
  CHECK_FALSE(m.is_gap(day0));
  // Not after the meter's now.
  const auto recent = m.survey(now - 3 * 3600, now + 86400, now);
  REQUIRE(!recent.empty());
  CHECK(recent.back().start + 1800 <= now);
  CHECK(recent.back().start + 3600 > now);

  meter_faults pf;
  pf.power_failure_every_days = 1; // one failure every day
  const meter_model p(identity(), pf);
  int failures = 0;
  for (const auto& x : p.survey(day0, day0 + 2 * 86400 - 1800, now))
    failures += x.status == status_power_failure ? 1 : 0;
  CHECK(failures == 2);
  CHECK(m.interval_status(day0) == 0);
}

TEST_CASE("sim data: expected readings", "[sim]") {
  mts::drivers::session_request rq;
  rq.outstation_address = "12345678";
  rq.password = "secret";
  rq.expected_serial = "12345678";
  rq.survey_from = day0;
  rq.survey_to = day0 + 86400;
  meter_identity id = identity();
  id.clock_offset_seconds = 95;
  meter_faults f;
  f.error_register = 0x5;
  f.survey_gaps = {day0 + 1800};
  const auto r = expected_readings(id, f, rq, now);
  REQUIRE(r.serial_number == std::string("12345678"));
  CHECK(r.meter_time == now + 95);
  CHECK(r.meter_time_taken == now);
  REQUIRE(r.status_events);
  CHECK(*r.status_events == std::vector<std::string>{"Meter error register F.F bit 0 set",
                                                     "Meter error register F.F bit 2 set"});
  REQUIRE(r.registers);
  REQUIRE(r.registers->size() == 6);
  const meter_model m(id, f);
  CHECK((*r.registers)[0].name == "kWh Import");
  CHECK((*r.registers)[0].units == "kWh");
  CHECK((*r.registers)[0].value == static_cast<double>(m.register_wh(channel::kwh_import, now + 95)) / 1000.0);
  CHECK((*r.registers)[5].name == "kvarh Q4");
  REQUIRE(r.survey);
  REQUIRE(r.survey->size() == 6);
  CHECK((*r.survey)[0].readings.size() == 47); // one gap
  CHECK((*r.survey)[0].readings.front().timestamp == day0);
  CHECK((*r.survey)[0].readings[1].timestamp == day0 + 3600);

  SECTION("wrong password: nothing") {
    rq.password = "nope";
    const auto x = expected_readings(id, f, rq, now);
    CHECK_FALSE(x.serial_number);
    CHECK_FALSE(x.registers);
  }
  SECTION("another serial: the serial only") {
    f.reported_serial = "99999999";
    const auto x = expected_readings(id, f, rq, now);
    CHECK(x.serial_number == std::string("99999999"));
    CHECK_FALSE(x.registers);
  }
  SECTION("no survey range: no survey") {
    rq.survey_from.reset();
    CHECK_FALSE(expected_readings(id, f, rq, now).survey);
  }
  SECTION("a range without data: the meter answers (ERROR), survey unread") {
    rq.survey_from = now + 86400;
    rq.survey_to = now + 2 * 86400;
    CHECK_FALSE(expected_readings(id, f, rq, now).survey);
  }
}

#include "sim/meter_data.hpp"


#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mts::sim {
namespace {

std::uint64_t mix(std::uint64_t z) { // splitmix64 finaliser
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

// Domestic import, Wh per half hour at 100% (0:00 .. 23:30).
constexpr std::int64_t import_shape[48] = {
    250, 220, 200, 180, 160, 150, 150, 150, 160, 180, 200, 250,  // 00:00-05:30
    600, 900, 1200, 1000, 800, 600,                              // 06:00-08:30
    450, 420, 400, 400, 420, 450, 500, 480, 450, 420, 400, 420, 450, 500, // 09:00-15:30
    900, 1200, 1500, 1800, 1900, 2000, 1800, 1500, 1200, 900,    // 16:00-20:30
    700, 600, 500, 400, 300, 250};                               // 21:00-23:30

// Solar export, Wh per half hour at 100%: zero at night.
constexpr std::int64_t solar_shape[48] = {
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    50,  150, 300, 450, 600, 700, 800, 850, 900, 900, 850, 800, 700, 600,
    450, 300, 150, 50,  0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0};

constexpr std::uint64_t tag_base = 50, tag_scale = 60, tag_export = 61, tag_failure = 70;

const channel_info channels[channel_count] = {
    {"kWh Import", "kWh", "1.8.0", "1.29"},     {"kWh Export", "kWh", "2.8.0", "2.29"},
    {"kvarh Q1", "kvarh", "5.8.0", "5.29"},     {"kvarh Q2", "kvarh", "6.8.0", "6.29"},
    {"kvarh Q3", "kvarh", "7.8.0", "7.29"},     {"kvarh Q4", "kvarh", "8.8.0", "8.29"}};

std::string trimmed(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos)
    return {};
  const auto b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

} // namespace

const channel_info& info(channel c) { return channels[static_cast<int>(c)]; }
const channel_info& info(int c) { return channels[c]; }

std::string format_k(std::int64_t wh) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%06lld.%03lld", static_cast<long long>(wh / 1000),
                static_cast<long long>(wh % 1000));
  return buf;
}

unix_seconds half_hour_floor(unix_seconds t) { return floor_div(t, half_hour) * half_hour; }

meter_model::meter_model(meter_identity identity, meter_faults faults)
    : identity_(std::move(identity)), faults_(std::move(faults)) {
  key_ = mix(identity_.seed ^ mix(fnv1a(identity_.serial)));
  const std::int64_t scale = 50 + static_cast<std::int64_t>(hash(tag_scale, 0) % 51); // 50..100 %
  const bool exports = hash(tag_export, 0) % 3 == 0;
  for (int i = 0; i < 48; ++i) {
    const std::int64_t imp = import_shape[i] * scale / 100;
    shape_[0][i] = imp;
    shape_[1][i] = exports ? solar_shape[i] * scale / 100 : 0;
    shape_[2][i] = imp * 30 / 100;
    shape_[3][i] = 0;
    shape_[4][i] = 0;
    shape_[5][i] = imp * 10 / 100;
  }
  for (int c = 0; c < channel_count; ++c) {
    prefix_[c][0] = 0;
    for (int i = 0; i < 48; ++i)
      prefix_[c][i + 1] = prefix_[c][i] + shape_[c][i];
    wobble_max_[c] = *std::min_element(shape_[c].begin(), shape_[c].end()) / 4;
    // Base: 1 000 .. 50 000 kWh (zero channels keep a small base too).
    base_[c] = 1000000 + static_cast<std::int64_t>(hash(tag_base + static_cast<std::uint64_t>(c), 0) % 49000000);
  }
}

std::uint64_t meter_model::hash(std::uint64_t a, std::uint64_t b) const {
  return mix(mix(key_ ^ (a * 0xD1B54A32D192ED03ull)) ^ b);
}

const std::string& meter_model::reported_serial() const {
  return faults_.reported_serial ? *faults_.reported_serial : identity_.serial;
}

std::int64_t meter_model::cumulative(int c, std::int64_t k) const {
  if (k < 0)
    k = 0;
  const std::int64_t wm = wobble_max_[c];
  const std::int64_t wobble =
      wm == 0 ? 0
              : static_cast<std::int64_t>(hash(static_cast<std::uint64_t>(c), static_cast<std::uint64_t>(k)) %
                                          static_cast<std::uint64_t>(wm + 1));
  return base_[c] + (k / 48) * prefix_[c][48] + prefix_[c][k % 48] + wobble;
}

std::int64_t meter_model::register_wh(channel ch, unix_seconds t) const {
  const int c = static_cast<int>(ch);
  if (t < data_epoch)
    return cumulative(c, 0);
  const std::int64_t k = (t - data_epoch) / half_hour;
  const std::int64_t into = (t - data_epoch) % half_hour;
  const std::int64_t a = cumulative(c, k), b = cumulative(c, k + 1);
  return a + (b - a) * into / half_hour;
}

std::array<std::int64_t, channel_count> meter_model::registers_at(unix_seconds t) const {
  std::array<std::int64_t, channel_count> out{};
  for (int c = 0; c < channel_count; ++c)
    out[c] = register_wh(static_cast<channel>(c), t);
  return out;
}

std::int64_t meter_model::va_register_wh(unix_seconds t) const {
  const std::int64_t p = register_wh(channel::kwh_import, t);
  const std::int64_t q = register_wh(channel::kvarh_q1, t) + register_wh(channel::kvarh_q4, t);
  const std::uint64_t square = static_cast<std::uint64_t>(p) * static_cast<std::uint64_t>(p) +
                               static_cast<std::uint64_t>(q) * static_cast<std::uint64_t>(q);
  auto r = static_cast<std::uint64_t>(std::sqrt(static_cast<long double>(square)));
  while (r > 0 && r * r > square) // the floating root may be one off either way
    --r;
  while ((r + 1) * (r + 1) <= square)
    ++r;
  return static_cast<std::int64_t>(r);
}

std::int64_t meter_model::interval_wh(channel ch, unix_seconds start) const {
  const int c = static_cast<int>(ch);
  if (start < data_epoch)
    return 0;
  const std::int64_t k = (start - data_epoch) / half_hour;
  return cumulative(c, k + 1) - cumulative(c, k);
}

bool meter_model::is_gap(unix_seconds start) const {
  return std::find(faults_.survey_gaps.begin(), faults_.survey_gaps.end(), start) != faults_.survey_gaps.end();
}

std::uint8_t meter_model::interval_status(unix_seconds start) const {
  if (faults_.power_failure_every_days <= 0 || start < data_epoch)
    return 0;
  const std::int64_t k = (start - data_epoch) / half_hour;
  const std::uint64_t h = hash(tag_failure, static_cast<std::uint64_t>(k / 48));
  if (h % static_cast<std::uint64_t>(faults_.power_failure_every_days) != 0)
    return 0;
  return static_cast<std::int64_t>((h >> 32) % 48) == k % 48 ? status_power_failure : 0;
}

std::vector<profile_entry> meter_model::survey(unix_seconds from, unix_seconds to, unix_seconds meter_now) const {
  std::vector<profile_entry> out;
  unix_seconds end = half_hour_floor(from);
  if (end < from)
    end += half_hour;
  end = std::max(end, data_epoch + half_hour);
  const unix_seconds last = std::min(to, meter_now);
  for (; end <= last; end += half_hour) {
    const unix_seconds start = end - half_hour;
    if (is_gap(start))
      continue;
    profile_entry e;
    e.start = start;
    e.status = interval_status(start);
    for (int c = 0; c < channel_count; ++c)
      e.wh[c] = interval_wh(static_cast<channel>(c), start);
    out.push_back(e);
  }
  return out;
}

drivers::meter_readings expected_iec_readings(const meter_identity& identity, const meter_faults& faults,
                                              const drivers::session_request& request, unix_seconds now) {
  drivers::meter_readings r;
  if (faults.silent || faults.refuse_connection)
    return r;
  const std::string addr = request.outstation_address.value_or("");
  if (!addr.empty() && !identity.outstation_address.empty() && addr != identity.outstation_address)
    return r; // the meter stays silent
  if (faults.reject_password ||
      (!identity.password.empty() && request.password.value_or("") != identity.password))
    return r;
  const meter_model model(identity, faults);
  const std::string serial = trimmed(model.reported_serial());
  r.serial_number = serial;
  if (request.expected_serial && trimmed(*request.expected_serial) != serial)
    return r;
  const unix_seconds meter_now = now + identity.clock_offset_seconds;
  r.meter_time = meter_now;
  r.meter_time_taken = now;
  r.status_events.emplace();
  for (int bit = 0; bit < 32; ++bit)
    if (faults.error_register & (std::uint32_t{1} << bit))
      r.status_events->push_back("Meter error register F.F bit " + std::to_string(bit) + " set");
  r.registers.emplace();
  const auto regs = model.registers_at(meter_now);
  for (int c = 0; c < channel_count; ++c)
    r.registers->push_back(
        drivers::register_value{info(c).name, static_cast<double>(regs[c]) / 1000.0, info(c).units, now});
  if (!request.survey_from || !request.survey_to || *request.survey_from >= *request.survey_to ||
      faults.drop_mid_profile)
    return r;
  const unix_seconds from = *request.survey_from, to = *request.survey_to;
  // The request carries minutes only.
  const auto entries = model.survey(floor_div(from, 60) * 60, floor_div(to, 60) * 60, meter_now);
  if (entries.empty())
    return r; // the meter answers (ERROR): the survey stays unread
  std::vector<drivers::survey_channel> survey;
  for (int c = 0; c < channel_count; ++c)
    survey.push_back(drivers::survey_channel{info(c).name, info(c).units, {}});
  for (const auto& e : entries) {
    const unix_seconds end = e.start + half_hour;
    if ((e.status & status_power_failure) && end >= from && end <= to)
      r.status_events->push_back("Power failure at " + format_utc(end));
    if (e.start < from || e.start >= to)
      continue;
    for (int c = 0; c < channel_count; ++c)
      survey[c].readings.push_back(drivers::survey_reading{e.start, static_cast<double>(e.wh[c]) / 1000.0});
  }
  r.survey = std::move(survey);
  return r;
}

} // namespace mts::sim

#include "sim/elster_meter.hpp"

#include "drivers/elster_codec.hpp"
#include "sim/sim_config.hpp"

#include <algorithm>
#include <cstdio>

namespace mts::sim {

namespace iec = drivers::iec;
using drivers::actions;

bool is_elster_driver(const std::string& driver) { return driver == "elster-a1700" || driver == "elster-a1140"; }

namespace elster {

namespace codec = drivers::elster;

// The wire encodings are the shared codec's (drivers/elster_codec.hpp); these names are what
// the simulator's tests and expect use.

unix_seconds day_floor(unix_seconds t) { return floor_div(t, seconds_per_day) * seconds_per_day; }

std::string identification(const std::string& driver) {
  return driver == "elster-a1140" ? "GEC5120510070213@000" : "GEC5090100100400@000";
}

std::size_t register_count(const std::string& driver) { return driver == "elster-a1140" ? 16 : 10; }

std::string hex(std::string_view bytes) { return codec::to_hex(bytes); }

std::optional<std::string> unhex(std::string_view text) {
  // The meter is stricter than the codec: lower-case hex is malformed (ERR1).
  if (std::any_of(text.begin(), text.end(), [](char c) { return c >= 'a' && c <= 'f'; }))
    return std::nullopt;
  return codec::from_hex(text);
}

std::string register_bytes(std::uint64_t raw) { return codec::encode_le_bcd(raw, 8); }

std::string clock_bytes(unix_seconds t) { return codec::encode_clock(t); }

std::string serial_bytes(const std::string& serial) {
  if (serial.size() >= 16)
    return serial.substr(serial.size() - 16);
  return std::string(16 - serial.size(), '0') + serial;
}

std::string normalised_serial(const std::string& field) { return codec::normalise_serial(field); }

std::string le_bytes(std::uint64_t value, std::size_t count) { return codec::encode_le_uint(value, count); }

const char* status_bit_text(int bit) { return codec::system_status_text(bit); }

std::vector<std::string> status_events(std::uint32_t value) { return codec::system_status_events(value); }

std::string profile_value_bytes(std::int64_t wh) {
  return codec::encode_profile_value(static_cast<std::uint64_t>(std::max<std::int64_t>(wh, 0)));
}

std::int64_t profile_value_carried(std::int64_t wh) {
  // What a reader of the bytes gets back: DDDDD x 10^E.
  const auto v = codec::decode_profile_value(profile_value_bytes(wh));
  std::int64_t carried = v->digits;
  for (int e = 0; e < v->exponent; ++e)
    carried *= 10;
  return carried;
}

day_range days_551(std::int64_t days, unix_seconds meter_now) {
  const unix_seconds today = day_floor(meter_now);
  if (days <= 0)
    return {};
  if (days >= 0xFFFF)
    days = all_days_cap;
  days = std::min(days, all_days_cap);
  return {std::max(today - (days - 1) * seconds_per_day, data_epoch), today};
}

day_range days_554(unix_seconds from, unix_seconds to, unix_seconds meter_now) {
  if (to <= from)
    return {};
  const unix_seconds first = std::max(day_floor(from), data_epoch);
  const unix_seconds last = std::min(day_floor(to - 1), day_floor(meter_now));
  if (last - first >= all_days_cap * seconds_per_day)
    return {last - (all_days_cap - 1) * seconds_per_day, last};
  return {first, last};
}

std::vector<profile_item> profile_items(const meter_model& model, day_range range, unix_seconds meter_now) {
  std::vector<profile_item> out;
  for (unix_seconds day = std::max(range.first, data_epoch); day <= range.last && day <= meter_now;
       day += seconds_per_day) {
    out.push_back(profile_item{new_day, day, {}});
    for (unix_seconds h = day; h < day + seconds_per_day && h + half_hour <= meter_now; h += half_hour) {
      const bool gap_before = model.is_gap(h - half_hour);
      if (model.is_gap(h)) {
        if (!gap_before)
          out.push_back(profile_item{power_down, h + 1, {}});
        continue;
      }
      if (gap_before)
        out.push_back(profile_item{power_up, h, {}});
      if (model.interval_status(h) & status_power_failure) {
        out.push_back(profile_item{power_down, h + 600, {}});
        out.push_back(profile_item{power_up, h + 900, {}});
      }
      profile_item record{0, h, {}};
      for (int c = 0; c < channel_count; ++c)
        record.wh[c] = model.interval_wh(static_cast<channel>(c), h);
      out.push_back(record);
    }
  }
  return out;
}

std::string encode_profile(const std::vector<profile_item>& items) {
  std::string out;
  for (const auto& item : items) {
    const auto time = static_cast<std::uint32_t>(item.time);
    if (item.marker == 0) {
      out += codec::encode_data_record(0, std::vector<std::uint64_t>(item.wh.begin(), item.wh.end()));
    } else if (item.marker == new_day) {
      out += codec::encode_day_marker(codec::record_kind::new_day, time, channel_mask, integration_code);
    } else {
      out += codec::encode_event_marker(static_cast<codec::record_kind>(item.marker), time);
    }
  }
  out += static_cast<char>(end_of_data);
  return out;
}

} // namespace elster

// ---- the meter ----

elster_meter::elster_meter(meter_identity identity, meter_faults faults, elster_meter_config config)
    : framed_meter(std::move(identity), std::move(faults), config) {
  std::uint64_t key = splitmix64(model_.identity().seed);
  for (unsigned char c : model_.identity().serial)
    key = splitmix64(key ^ c);
  const std::uint64_t seed = splitmix64(key + config.session_number);
  char text[17];
  std::snprintf(text, sizeof text, "%016llX", static_cast<unsigned long long>(seed));
  seed_ = text;
}

std::string elster_meter::identification() const { return elster::identification(model_.identity().driver); }

void elster_meter::on_option_select(actions& out, const iec::message& m) {
  using k = iec::message_kind;
  if (m.kind != k::option_select || m.text.size() != 3 || m.text[0] != '0')
    return;
  const auto baud = iec::mode_c_baud(m.text[1]);
  if (!baud || *baud > 9600 || (m.text[2] != '1' && m.text[2] != '6'))
    return;
  expect_option_select(false);
  switch_baud(out, *baud);
  enter_session();
  state_ = state::password;
  reply(out, iec::command_message("P0", "(" + seed_ + ")"), true);
}

void elster_meter::error(actions& out, int n) {
  reply(out, iec::data_message("(ERR" + std::to_string(n) + ")"), true);
}

void elster_meter::on_command(actions& out, const iec::message& m) {
  if (!m.command.empty() && m.command[0] == 'B') {
    close(out);
    return;
  }
  if (m.command == "P2") {
    const auto& pw = model_.identity().password;
    const auto hash = drivers::elster::password_hash(pw, seed_); // nullopt: not 8 characters
    const bool hash_ok = (hash && m.text == "(" + *hash + ")") ||
                         (pw.empty() && m.text.size() == 18 && m.text.front() == '(' && m.text.back() == ')');
    const bool ok = !model_.faults().reject_password && (hash_ok || m.text == "(" + std::string(elster::codec::zero_operand) + ")");
    if (ok) {
      // Either operand opens a password session; the zero operand (security level 3's first
      // P2) gives read access only, the hash also write access.
      state_ = state::ready;
      write_access_ = write_access_ || hash_ok;
      timed_out_ = false;
      reads_since_login_ = 0;
    }
    reply(out, std::string(1, ok ? iec::ack : iec::nak), false);
    return;
  }
  if (m.command == "P1") {
    reply(out, std::string(1, iec::nak), false);
    return;
  }
  if (m.command != "R1" && m.command != "W1") {
    error(out, 1);
    return;
  }
  // ERR5 "data identity locked": no password session, a timed-out one, or a write without the hash.
  if (state_ != state::ready || (timed_out_ && m.command == "R1") || (m.command == "W1" && !write_access_)) {
    error(out, 5);
    return;
  }
  if (m.command == "R1")
    read(out, m.text);
  else
    write(out, m.text);
}

std::optional<std::string> elster_meter::data_of(int id) {
  const auto& driver = model_.identity().driver;
  const unix_seconds t = meter_now();
  switch (id) {
  case 798:
    return elster::serial_bytes(model_.reported_serial());
  case 861:
    return elster::clock_bytes(t);
  case 507: {
    std::string out;
    const auto regs = model_.registers_at(t);
    for (int c = 0; c < channel_count; ++c)
      out += elster::register_bytes(static_cast<std::uint64_t>(regs[c]) * 1000);
    out += elster::register_bytes(static_cast<std::uint64_t>(model_.va_register_wh(t)) * 1000);
    while (out.size() < elster::register_count(driver) * 8)
      out += elster::register_bytes(0); // customer-defined registers
    return out;
  }
  case 724:
    return elster::le_bytes(model_.faults().error_register, 4);
  case 777:
    return elster::le_bytes(elster::channel_mask, 2);
  case 878:
    return std::string{'\x1E', '\x1E', '\x01'};
  case 551:
  case 550:
    if (!profile_)
      select_profile(elster::days_551(1, t));
    if (id == 551)
      return elster::le_bytes(profile_blocks64_, 2) + elster::le_bytes(profile_blocks256_, 2);
    return *profile_;
  default:
    return std::nullopt;
  }
}

void elster_meter::select_profile(elster::day_range range) {
  std::string stream = elster::encode_profile(elster::profile_items(model_, range, meter_now()));
  profile_blocks64_ = stream.size() / 64;
  profile_blocks256_ = stream.size() / 256;
  stream.resize((profile_blocks64_ + 1) * 64, static_cast<char>(elster::end_of_data));
  profile_ = std::move(stream);
}

void elster_meter::read(actions& out, const std::string& text) {
  // <ID 3 digits><packet 3 hex>(<LL 2 hex>)
  auto digits = [&](std::size_t at, std::size_t n) {
    return std::all_of(text.begin() + static_cast<std::ptrdiff_t>(at),
                       text.begin() + static_cast<std::ptrdiff_t>(at + n), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (text.size() != 10 || !digits(0, 3) || text[6] != '(' || text[9] != ')') {
    error(out, 1);
    return;
  }
  const auto packet_text = elster::unhex("0" + text.substr(3, 3));
  const auto length = elster::unhex(text.substr(7, 2));
  if (!packet_text || !length) {
    error(out, 1);
    return;
  }
  const int id = std::stoi(text.substr(0, 3));
  const std::size_t packet = (static_cast<unsigned char>((*packet_text)[0]) << 8) |
                             static_cast<unsigned char>((*packet_text)[1]);
  const std::size_t ll = static_cast<unsigned char>((*length)[0]);
  const std::string* data = nullptr; // the snapshot of this read, not copied per packet
  if (packet == 1 || !snapshots_.count(id)) {
    if (auto fresh = data_of(id))
      data = &(snapshots_[id] = std::move(*fresh));
  } else {
    data = &snapshots_.at(id);
  }
  if (!data) {
    error(out, 2);
    return;
  }
  const std::size_t offset = (packet - 1) * elster::packet_bytes;
  if (packet == 0 || ll == 0 || ll > elster::packet_bytes || offset + ll > data->size()) {
    error(out, 3);
    return;
  }
  if (id == 550 && !profile_packet_sent_ && model_.faults().drop_mid_profile) {
    profile_packet_sent_ = true;
    if (data->size() <= elster::packet_bytes) {
      close(out); // the only packet: the line drops instead
      return;
    }
    close_after_pending_ = true;
  }
  if (id == 550)
    profile_packet_sent_ = true;
  ++reads_since_login_;
  const int limit = model_.faults().password_timeout_after_reads;
  if (limit > 0 && reads_since_login_ >= limit)
    timed_out_ = true;
  reply(out, iec::data_message("(" + elster::hex(data->substr(offset, ll)) + ")"), true);
}

void elster_meter::write(actions& out, const std::string& text) {
  // <ID>001(<hex data>)
  if (text.size() < 8 || text.substr(3, 4) != "001(" || text.back() != ')') {
    error(out, 1);
    return;
  }
  const std::string id = text.substr(0, 3);
  const auto data = elster::unhex(text.substr(7, text.size() - 8));
  const bool a1140 = model_.identity().driver == "elster-a1140";
  if (id != "551" && !(id == "554" && a1140)) {
    error(out, 2);
    return;
  }
  if (!data || data->size() != (id == "551" ? 2U : 8U)) {
    error(out, 1);
    return;
  }
  auto le = [&](std::size_t at, std::size_t n) { return elster::codec::decode_le_uint(data->substr(at, n)); };
  if (id == "551")
    select_profile(elster::days_551(static_cast<std::int64_t>(le(0, 2)), meter_now()));
  else
    select_profile(elster::days_554(static_cast<unix_seconds>(le(0, 4)), static_cast<unix_seconds>(le(4, 4)),
                                    meter_now()));
  snapshots_.erase(550);
  snapshots_.erase(551);
  reply(out, std::string(1, iec::ack), false);
}

// ---- the expected result ----

elster_expectation expected_elster(const meter_identity& identity, const meter_faults& faults,
                                   const drivers::session_request& request, unix_seconds now) {
  using drivers::failure_kind;
  elster_expectation x;
  auto& r = x.readings;
  if (faults.refuse_connection) {
    x.end = {failure_kind::transient, "connection refused"};
    return x;
  }
  const std::string addr = request.outstation_address.value_or("");
  if (faults.silent || (!addr.empty() && !identity.outstation_address.empty() && addr != identity.outstation_address)) {
    x.end = {failure_kind::transient, "no answer to sign-on"};
    return x;
  }
  const std::string password =
      request.password && !request.password->empty() ? *request.password : std::string(elster::codec::default_password);
  if (password.size() != 8) { // the driver sends nothing for it
    x.end = {failure_kind::permanent, "password must be 8 characters"};
    return x;
  }
  if (faults.reject_password || (!identity.password.empty() && password != identity.password)) {
    x.end = {failure_kind::permanent, "password rejected"};
    return x;
  }
  const meter_model model(identity, faults);
  // The R1 replies the session needs, in order; the one that meets the 4th password-session
  // timeout ends it (after N good replies the next gets ERR5; 3 re-authentications at most).
  const int n = faults.password_timeout_after_reads;
  const std::size_t fatal_read = n > 0 ? 4 * static_cast<std::size_t>(n) : static_cast<std::size_t>(-1);
  std::size_t reads = 0;
  auto read_ok = [&](std::size_t packets) {
    reads += packets;
    if (reads > fatal_read) {
      x.end = {failure_kind::transient, "password session keeps timing out"};
      return false;
    }
    return true;
  };
  if (!read_ok(1))
    return x;
  r.serial_number = elster::normalised_serial(elster::serial_bytes(model.reported_serial()));
  if (request.expected_serial) {
    const auto& want = *request.expected_serial; // compared without surrounding blanks
    const auto b = want.find_first_not_of(" \t");
    const auto e = want.find_last_not_of(" \t");
    if ((b == std::string::npos ? std::string() : want.substr(b, e - b + 1)) != *r.serial_number) {
      x.end = {failure_kind::permanent, "Serial number mismatch"};
      return x;
    }
  }
  // The meter keeps its clock at UTC + its type's offset (+ drift); the driver, configured
  // with the same type, converts back by that offset.
  const unix_seconds zone = identity.utc_offset_minutes * 60;
  const unix_seconds meter_now = now + zone + identity.clock_offset_seconds;
  if (!read_ok(1))
    return x;
  r.meter_time = meter_now - zone;
  r.meter_time_taken = now;
  const std::size_t register_packets =
      (elster::register_count(identity.driver) * 8 + elster::packet_bytes - 1) / elster::packet_bytes;
  if (!read_ok(register_packets))
    return x;
  r.registers.emplace();
  const auto regs = model.registers_at(meter_now);
  auto value = [](std::int64_t wh) { return static_cast<double>(wh * 1000) / 1e6; };
  for (int c = 0; c < channel_count; ++c)
    r.registers->push_back(drivers::register_value{info(c).name, value(regs[c]), info(c).units, now});
  r.registers->push_back(drivers::register_value{"kVAh", value(model.va_register_wh(meter_now)), "kVAh", now});
  if (!read_ok(1))
    return x;
  r.status_events = elster::status_events(faults.error_register);
  if (!request.survey_from || !request.survey_to || *request.survey_from >= *request.survey_to)
    return x;
  const unix_seconds from = *request.survey_from, to = *request.survey_to;
  if (!read_ok(3)) // 777, 878, 551
    return x;
  elster::day_range range;
  if (identity.driver == "elster-a1140") {
    range = elster::days_554(from + zone, to + zone, meter_now);
  } else {
    // The driver writes meter date now - date(from) + 1 days.
    const std::int64_t days = (elster::day_floor(meter_now) - elster::day_floor(from + zone)) / seconds_per_day + 1;
    range = elster::days_551(std::max<std::int64_t>(days, 1), meter_now); // at least 1
  }
  const auto items = elster::profile_items(model, range, meter_now);
  const std::size_t packets = elster::encode_profile(items).size() / elster::packet_bytes + 1;
  if (faults.drop_mid_profile) {
    if (read_ok(1))
      x.end = {failure_kind::transient, "line dropped"};
    return x;
  }
  if (!read_ok(packets))
    return x;
  std::vector<drivers::survey_channel> survey;
  for (int c = 0; c < channel_count; ++c)
    survey.push_back(drivers::survey_channel{info(c).name, info(c).units, {}});
  for (const auto& item : items) {
    if (item.marker == elster::power_up || item.marker == elster::power_down) {
      if (item.time - zone >= from && item.time - zone < to)
        r.status_events->push_back(std::string(item.marker == elster::power_up ? "Power up at " : "Power down at ") +
                                   format_utc(item.time - zone));
      continue;
    }
    if (item.marker != 0 || item.time - zone < from || item.time - zone + half_hour > to)
      continue;
    for (int c = 0; c < channel_count; ++c)
      survey[c].readings.push_back(drivers::survey_reading{
          item.time - zone, static_cast<double>(elster::profile_value_carried(item.wh[c])) / 1000.0});
  }
  r.survey = std::move(survey);
  return x;
}

} // namespace mts::sim

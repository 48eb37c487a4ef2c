#include "drivers/elster.hpp"

#include "drivers/elster_codec.hpp"

#include <algorithm>
#include <cstdio>

namespace mts::drivers {
namespace {

// The packet number is 3 hex digits.
constexpr std::size_t max_packets = 0xFFF;

std::string hex_number(std::size_t value, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%0*zX", digits, value);
  return buf;
}

// "(hex)" -> bytes, when the hex is exactly `size` bytes.
std::optional<std::string> parenthesised_bytes(std::string_view text, std::size_t size) {
  if (text.size() != 2 * size + 2 || text.front() != '(' || text.back() != ')')
    return std::nullopt;
  return elster::from_hex(text.substr(1, 2 * size));
}

std::string p2_message(std::string_view operand) { return iec::command_message("P2", "(" + std::string(operand) + ")"); }

} // namespace

elster_config elster_a1700_config() {
  elster_config c;
  c.register_count = 10;
  c.profile_selection = elster_profile_selection::days;
  return c;
}

elster_config elster_a1140_config() {
  elster_config c;
  c.register_count = 16;
  c.profile_selection = elster_profile_selection::by_date;
  return c;
}

elster_driver::elster_driver(session_request request, elster_config config)
    : iec_session_driver(std::move(request), config), config_(std::move(config)) {
  config_.packet_size = std::clamp<std::size_t>(config_.packet_size, 1, 0x40);
}

std::string elster_driver::request_timeout_reason() const {
  switch (plan_[pos_]) {
  case item::serial:
    return "no answer to serial number read";
  case item::clock:
    return "no answer to clock read";
  case item::registers:
    return "no answer to register read";
  case item::status:
    return "no answer to status read";
  default:
    return "no answer to load profile read";
  }
}

void elster_driver::on_message(actions& out, const iec::message& m, unix_ms now) {
  using k = iec::message_kind;
  switch (stage_) {
  case stage::ident:
    if (m.kind == k::identification)
      on_identification(out, m.text);
    return;
  case stage::p0:
    if (is_p0(out, m))
      on_seed(out, m.text);
    return;
  case stage::password:
    on_password_reply(out, m);
    return;
  case stage::request:
    on_request_reply(out, m, now);
    return;
  default:
    return;
  }
}

void elster_driver::on_identification(actions& out, const std::string& id) {
  if (select_option(out, id, config_.option_mode))
    stage_ = stage::p0;
}

void elster_driver::on_seed(actions& out, const std::string& text) {
  const std::string password =
      request_.password && !request_.password->empty() ? *request_.password : std::string(elster::default_password);
  if (password.size() != 8) {
    fail(out, failure_kind::permanent, "password must be 8 characters");
    return;
  }
  const std::string_view seed =
      text.size() == 18 && text.front() == '(' && text.back() == ')' ? std::string_view(text).substr(1, 16) : "";
  const auto hash = elster::password_hash(password, seed);
  if (!hash) {
    fail(out, failure_kind::transient, "malformed password seed");
    return;
  }
  hash_ = *hash;
  repeats_ = 0;
  authenticate(out);
}

// Level 2 logs in with the hash. Level 3 logs in with the zero operand, which gives read
// access, and sends the hash only before the first write, as the real client of the A1140
// trace did (P2 zeros, R1 798 and 795, then P2 hash before W1).
void elster_driver::authenticate(actions& out) {
  stage_ = stage::password;
  hash_sent_ = config_.security_level != 3 || write_access_ || (logged_in_ && is_write());
  schedule(out, p2_message(hash_sent_ ? std::string_view(hash_) : elster::zero_operand));
}

void elster_driver::on_password_reply(actions& out, const iec::message& m) {
  if (m.kind != iec::message_kind::ack) {
    fail(out, failure_kind::permanent, "password rejected");
    return;
  }
  repeats_ = 0;
  write_access_ = write_access_ || hash_sent_;
  if (logged_in_) {
    // A re-authentication after ERR5 or the hash before a write: the request goes (again).
    stage_ = stage::request;
    send_request(out);
    return;
  }
  logged_in_ = true;
  plan_ = {item::serial, item::clock, item::registers, item::status};
  if (request_.survey_from && request_.survey_to && *request_.survey_from < *request_.survey_to)
    plan_.insert(plan_.end(), {item::channels, item::period, item::select, item::blocks, item::profile});
  pos_ = 0;
  start_item(out);
}

// Meter time minus UTC, seconds (the per-type setting).
unix_seconds elster_driver::clock_offset() const {
  return static_cast<unix_seconds>(config_.clock_utc_offset_minutes) * 60;
}

bool elster_driver::is_write() const { return plan_[pos_] == item::select; }

std::string elster_driver::data_id() const {
  switch (plan_[pos_]) {
  case item::serial:
    return "798";
  case item::clock:
    return "861";
  case item::registers:
    return "507";
  case item::status:
    return "724";
  case item::channels:
    return "777";
  case item::period:
    return "878";
  case item::select:
    return config_.profile_selection == elster_profile_selection::days ? "551" : "554";
  case item::blocks:
    return "551";
  case item::profile:
    return "550";
  }
  return {};
}

std::size_t elster_driver::item_size() const {
  switch (plan_[pos_]) {
  case item::serial:
    return 16;
  case item::clock:
    return 7;
  case item::registers:
    return 8 * config_.register_count;
  case item::status:
    return 4;
  case item::channels:
    return 2;
  case item::period:
    return 3;
  case item::select:
    return 0;
  case item::blocks:
    return 4;
  case item::profile:
    return profile_packets_ * config_.packet_size;
  }
  return 0;
}

void elster_driver::start_item(actions& out) {
  if (pos_ >= plan_.size()) {
    sign_off(out);
    return;
  }
  stage_ = stage::request;
  packet_ = 1;
  data_.clear();
  repeats_ = 0;
  send_request(out);
}

void elster_driver::next_item(actions& out) {
  ++pos_;
  start_item(out);
}

void elster_driver::send_request(actions& out) {
  if (is_write() && !write_access_) {
    authenticate(out);
    return;
  }
  if (is_write()) {
    const unix_seconds offset = clock_offset();
    std::string bytes;
    if (config_.profile_selection == elster_profile_selection::days) {
      const auto today = floor_div(meter_clock_, seconds_per_day);
      const auto first = floor_div(*request_.survey_from + offset, seconds_per_day);
      const auto days = std::clamp<std::int64_t>(today - first + 1, 1, 0xFFFF);
      bytes = elster::encode_le_uint(static_cast<std::uint64_t>(days), 2);
    } else {
      bytes = elster::encode_le_uint(static_cast<std::uint32_t>(*request_.survey_from + offset), 4) +
              elster::encode_le_uint(static_cast<std::uint32_t>(*request_.survey_to + offset), 4);
    }
    schedule(out, iec::command_message("W1", data_id() + "001(" + elster::to_hex(bytes) + ")"));
    return;
  }
  const std::size_t wanted = std::min(config_.packet_size, item_size() - data_.size());
  schedule(out, iec::command_message("R1", data_id() + hex_number(packet_, 3) + "(" + hex_number(wanted, 2) + ")"));
}

void elster_driver::on_request_reply(actions& out, const iec::message& m, unix_ms now) {
  using k = iec::message_kind;
  if (nak_or_sign_off(out, m))
    return;
  if (m.kind == k::block) {
    if (const auto n = elster::error_number(m.text)) {
      if (*n == 5) {
        if (reauthentications_ >= config_.max_reauthentications) {
          fail(out, failure_kind::transient, "password session keeps timing out");
          return;
        }
        ++reauthentications_;
        repeats_ = 0;
        authenticate(out);
        return;
      }
      fail(out, failure_kind::permanent,
           "meter error: ERR" + std::to_string(*n) + " " + elster::error_text(*n) +
               (is_write() ? " writing " : " reading ") + data_id());
      return;
    }
  }
  if (is_write()) {
    if (m.kind != k::ack) {
      fail(out, failure_kind::transient, "unexpected answer from meter");
      return;
    }
    repeats_ = 0;
    next_item(out);
    return;
  }
  if (m.kind != k::block) {
    fail(out, failure_kind::transient, "unexpected answer from meter");
    return;
  }
  const std::size_t wanted = std::min(config_.packet_size, item_size() - data_.size());
  const auto bytes = parenthesised_bytes(m.text, wanted);
  if (!bytes) {
    fail(out, failure_kind::transient, "malformed reply reading " + data_id());
    return;
  }
  repeats_ = 0;
  data_ += *bytes;
  if (data_.size() < item_size()) {
    ++packet_;
    send_request(out);
    return;
  }
  item_complete(out, data_, now);
}

void elster_driver::item_complete(actions& out, const std::string& data, unix_ms now) {
  const unix_seconds now_s = now / 1000;
  const unix_seconds offset = clock_offset();
  switch (plan_[pos_]) {
  case item::serial: {
    if (!accept_serial(out, elster::normalise_serial(data)))
      return;
    break;
  }
  case item::clock:
    if (const auto t = elster::decode_clock(data)) {
      meter_clock_ = *t;
      readings_.meter_time = *t - offset;
      readings_.meter_time_taken = now_s;
    } else {
      meter_clock_ = now_s + offset; // unreadable clock: the day count uses the true date
    }
    break;
  case item::registers: {
    readings_.registers.emplace();
    const auto& names = elster::channel_names();
    for (std::size_t i = 0; i < names.size() && i < config_.register_count; ++i)
      if (const auto raw = elster::decode_le_bcd(std::string_view(data).substr(8 * i, 8)))
        readings_.registers->push_back(register_value{
            names[i].name, elster::scale_decimal(*raw, config_.register_scale_exponent), names[i].units, now_s});
    break;
  }
  case item::status: {
    auto events = elster::system_status_events(static_cast<std::uint32_t>(elster::decode_le_uint(data)));
    if (!readings_.status_events)
      readings_.status_events.emplace();
    readings_.status_events->insert(readings_.status_events->begin(), events.begin(), events.end());
    break;
  }
  case item::channels:
    channel_mask_ = static_cast<std::uint16_t>(elster::decode_le_uint(data));
    break;
  case item::period:
    period_minutes_ = static_cast<unsigned char>(data[0]);
    if (period_minutes_ != 30) {
      add_event("Load profile interval of " + std::to_string(period_minutes_) + " minutes not supported");
      pos_ = plan_.size();
      start_item(out);
      return;
    }
    break;
  case item::select:
    break;
  case item::blocks:
    profile_packets_ = static_cast<std::size_t>(elster::decode_le_uint(data.substr(0, 2))) + 1;
    if (profile_packets_ > max_packets) {
      fail(out, failure_kind::permanent, "load profile too large");
      return;
    }
    break;
  case item::profile:
    store_profile();
    break;
  }
  next_item(out);
}

void elster_driver::store_profile() {
  const unix_seconds from = *request_.survey_from, to = *request_.survey_to;
  const unix_seconds offset = clock_offset();
  const unix_seconds period = static_cast<unix_seconds>(period_minutes_) * 60;
  const auto& names = elster::channel_names();

  std::vector<survey_channel> channels;
  std::vector<int> slot(names.size(), -1); // channel -> index in `channels`
  for (std::size_t c = 0; c < names.size(); ++c)
    if (channel_mask_ & (1u << c)) {
      slot[c] = static_cast<int>(channels.size());
      channels.push_back(survey_channel{names[c].name, names[c].units, {}});
    }

  const auto stream = elster::parse_profile_stream(data_, channel_mask_);
  std::uint16_t layout = channel_mask_;
  std::optional<unix_seconds> start; // meter seconds
  for (const auto& r : stream.records) {
    using rk = elster::record_kind;
    if (r.kind == rk::data) {
      if (!start)
        continue;
      const unix_seconds utc = *start - offset;
      *start += period;
      if (utc < from || utc + period > to)
        continue;
      std::size_t k = 0;
      for (int c = 0; c < 16 && k < r.values.size(); ++c) {
        if (!(layout & (1u << c)))
          continue;
        const auto& v = r.values[k++];
        if (c >= static_cast<int>(names.size()) || slot[static_cast<std::size_t>(c)] < 0)
          continue;
        auto& readings = channels[static_cast<std::size_t>(slot[static_cast<std::size_t>(c)])].readings;
        if (!readings.empty() && readings.back().timestamp >= utc)
          continue;
        readings.push_back(
            survey_reading{utc, elster::scale_decimal(v.digits, v.exponent + config_.profile_scale_exponent)});
      }
      continue;
    }
    if (r.kind == rk::new_day || r.kind == rk::configuration_change)
      layout = r.channels;
    if (r.kind == rk::new_day || r.kind == rk::configuration_change || r.kind == rk::power_up ||
        r.kind == rk::time_change)
      start = static_cast<unix_seconds>(r.timestamp) - static_cast<unix_seconds>(r.timestamp) % period;
    if (const char* text = elster::marker_event_text(r.kind)) {
      const unix_seconds t = static_cast<unix_seconds>(r.timestamp) - offset;
      if (t >= from && t < to)
        add_event(std::string(text) + " at " + format_utc(t));
    }
  }
  if (stream.unsupported)
    add_event("Unsupported load profile record E2");
  readings_.survey = std::move(channels);
}

std::unique_ptr<meter_driver> make_elster_driver(const session_request& request, const elster_config& config) {
  return std::make_unique<elster_driver>(request, config);
}

line_settings elster_initial_line() { return line_settings{300, 7, 'E', 1}; }

} // namespace mts::drivers

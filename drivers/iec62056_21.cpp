#include "drivers/iec62056_21.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>

namespace mts::drivers {
namespace {

constexpr unix_seconds half_hour = 1800;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = lower(c);
  return out;
}

// Contents of every "(...)" group of a line, in order.
std::vector<std::string> groups(std::string_view line) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (true) {
    const auto open = line.find('(', at);
    if (open == std::string_view::npos)
      break;
    const auto close = line.find(')', open + 1);
    if (close == std::string_view::npos)
      break;
    out.emplace_back(line.substr(open + 1, close - open - 1));
    at = close + 1;
  }
  return out;
}

std::optional<std::string> first_group(std::string_view text) {
  auto g = groups(text);
  if (g.empty())
    return std::nullopt;
  return g.front();
}

// "(ERROR)", "(ERR1)", "(ER5)"...
bool is_error(std::string_view v) {
  v = trim(v);
  return v.size() >= 2 && lower(v[0]) == 'e' && lower(v[1]) == 'r';
}

// The most channels one profile header may announce; more is taken for a damaged header.
// (VDEW meters record a few; 64 leaves room for any real one.)
constexpr std::size_t max_profile_channels = 64;

// A number from a meter as an event names it: whole numbers in digits, others as %g.
std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return std::to_string(static_cast<long long>(v));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::optional<double> to_number(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+')
    s.remove_prefix(1);
  if (s.empty())
    return std::nullopt;
  double v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size())
    return std::nullopt;
  return v;
}

std::optional<std::uint64_t> to_hex(std::string_view s) {
  s = trim(s);
  if (s.empty())
    return std::nullopt;
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc{} || p != s.data() + s.size())
    return std::nullopt;
  return v;
}

// Digits with ':', '-' and spaces removed; empty if anything else is present.
std::string digits_only(std::string_view s) {
  std::string out;
  for (char c : trim(s)) {
    if (c >= '0' && c <= '9')
      out += c;
    else if (c != ':' && c != '-' && c != ' ')
      return {};
  }
  return out;
}

int two(std::string_view d, std::size_t at) { return (d[at] - '0') * 10 + (d[at + 1] - '0'); }

std::optional<int> hms(std::string_view d) {
  const int h = two(d, 0), m = two(d, 2), s = two(d, 4);
  if (h > 23 || m > 59 || s > 59)
    return std::nullopt;
  return h * 3600 + m * 60 + s;
}

std::optional<unix_seconds> yymmdd(std::string_view d) {
  std::string iso = "20";
  iso += d.substr(0, 2);
  iso += '-';
  iso += d.substr(2, 2);
  iso += '-';
  iso += d.substr(4, 2);
  return parse_date(iso);
}

// 0.9.1: hhmmss, or Zhhmmss with a season digit.
std::optional<int> parse_time_of_day(std::string_view v) {
  auto d = digits_only(v);
  if (d.size() == 7)
    d.erase(0, 1);
  if (d.size() != 6)
    return std::nullopt;
  return hms(d);
}

// 0.9.2: YYMMDD, or ZYYMMDD.
std::optional<unix_seconds> parse_day(std::string_view v) {
  auto d = digits_only(v);
  if (d.size() == 7)
    d.erase(0, 1);
  if (d.size() != 6)
    return std::nullopt;
  return yymmdd(d);
}

// Profile times: ZYYMMDDhhmmss, ZYYMMDDhhmm, YYMMDDhhmmss or YYMMDDhhmm.
std::optional<unix_seconds> parse_profile_time(std::string_view v) {
  auto d = digits_only(v);
  if (d.empty())
    return std::nullopt;
  return iec::parse_vdew_time(d);
}

// "0YYMMDDhhmm" (season flag 0: the meter clock is taken to run in UTC).
std::string profile_time(unix_seconds t) {
  const auto iso = format_utc(t); // 2019-01-01T00:00:00Z
  return "0" + iso.substr(2, 2) + iso.substr(5, 2) + iso.substr(8, 2) + iso.substr(11, 2) +
         iso.substr(14, 2);
}

// A unit of power or energy: factor to the k-unit, quantity ("w", "var", "va"), energy or not.
struct unit_info {
  double factor = 1;
  std::string quantity;
  bool energy = false;
};

std::optional<unit_info> parse_unit(std::string_view u) {
  std::string_view s = trim(u);
  unit_info info;
  if (!s.empty() && s.back() == 'h') {
    info.energy = true;
    s.remove_suffix(1);
  }
  const auto base = [](const std::string& q) { return q == "w" || q == "var" || q == "va"; };
  if (base(lowered(s))) {
    info.factor = 0.001;
    info.quantity = lowered(s);
    return info;
  }
  if (s.size() < 2)
    return std::nullopt;
  if (s.front() == 'M') // mega; lower-case 'm' would be milli, not expected
    info.factor = 1000;
  else if (s.front() == 'k' || s.front() == 'K')
    info.factor = 1;
  else
    return std::nullopt;
  info.quantity = lowered(s.substr(1));
  if (!base(info.quantity))
    return std::nullopt;
  return info;
}

// Factor turning a value in `from` units into `to` units, when both are known and compatible.
std::optional<double> unit_factor(std::string_view from, std::string_view to) {
  if (lowered(trim(from)) == lowered(trim(to)))
    return 1.0;
  auto a = parse_unit(from), b = parse_unit(to);
  if (!a || !b || a->quantity != b->quantity || a->energy != b->energy)
    return std::nullopt;
  return a->factor / b->factor;
}

struct channel_name {
  std::string name;
  std::string units;
  int group_d = -1;
};

// "1.5", "1.5.0", "1-0:1.5.0" -> by OBIS group C.
std::optional<channel_name> map_channel(std::string_view id) {
  id = trim(id);
  if (const auto colon = id.find(':'); colon != std::string_view::npos)
    id.remove_prefix(colon + 1);
  const auto dot = id.find('.');
  const auto c_part = id.substr(0, dot);
  int c = 0, d = -1;
  const auto [p, ec] = std::from_chars(c_part.data(), c_part.data() + c_part.size(), c);
  if (ec != std::errc{} || p != c_part.data() + c_part.size())
    return std::nullopt;
  if (dot != std::string_view::npos) {
    auto rest = id.substr(dot + 1);
    rest = rest.substr(0, rest.find('.'));
    const auto [q, ec2] = std::from_chars(rest.data(), rest.data() + rest.size(), d);
    if (ec2 != std::errc{} || q != rest.data() + rest.size())
      d = -1;
  }
  static const std::map<int, std::pair<const char*, const char*>> names = {
      {1, {"kWh Import", "kWh"}},     {2, {"kWh Export", "kWh"}},     {3, {"kvarh Import", "kvarh"}},
      {4, {"kvarh Export", "kvarh"}}, {5, {"kvarh Q1", "kvarh"}},     {6, {"kvarh Q2", "kvarh"}},
      {7, {"kvarh Q3", "kvarh"}},     {8, {"kvarh Q4", "kvarh"}},     {9, {"kVAh Import", "kVAh"}},
      {10, {"kVAh Export", "kVAh"}}};
  const auto it = names.find(c);
  if (it == names.end())
    return std::nullopt;
  return channel_name{it->second.first, it->second.second, d};
}

struct status_bit {
  std::uint32_t mask;
  const char* text;
};
constexpr status_bit vdew_status[] = {
    {0x80, "Power failure"},          {0x40, "Power restored"},
    {0x20, "Clock set"},              {0x10, "Device reset"},
    {0x08, "Seasonal switch-over"},   {0x04, "Disturbed measurement"},
    {0x02, "Running reserve exhausted"}, {0x01, "Fatal device error"},
    {0x4000, "Load profile cleared"}, {0x2000, "Logbook cleared"},
    {0x0400, "End of error"},         {0x0200, "Begin of error"},
    {0x0100, "Variable set"}};

double round6(double v) { return std::round(v * 1e6) / 1e6; }

} // namespace

iec62056_21_driver::iec62056_21_driver(session_request request, iec62056_21_config config)
    : iec_session_driver(std::move(request), config), config_(std::move(config)) {}

std::string iec62056_21_driver::request_timeout_reason() const {
  switch (plan_[pos_].what) {
  case item::serial:
    return "no answer to serial number read";
  case item::time:
  case item::date:
    return "no answer to clock read";
  case item::status:
    return "no answer to status read";
  case item::reg:
    return "no answer to register read";
  case item::profile:
    return "no answer to load profile read";
  }
  return "no answer";
}

void iec62056_21_driver::on_message(actions& out, const iec::message& m, unix_ms now) {
  using k = iec::message_kind;
  switch (stage_) {
  case stage::ident: {
    if (m.kind != k::identification)
      return;
    const auto& id = m.text;
    // A lower-case third manufacturer letter: the meter reacts fast.
    if (id.size() >= 4 && id[2] >= 'a' && id[2] <= 'z')
      set_reaction_delay(config_.fast_reaction_delay);
    if (select_option(out, id, '1'))
      stage_ = stage::p0;
    return;
  }
  case stage::p0:
    if (is_p0(out, m)) {
      repeats_ = 0;
      stage_ = stage::password;
      schedule(out, iec::command_message("P1", "(" + request_.password.value_or("") + ")"));
    }
    return;
  case stage::password:
    if (m.kind != k::ack) {
      fail(out, failure_kind::permanent, "password rejected");
      return;
    }
    logged_in_ = true;
    repeats_ = 0;
    plan_.clear();
    if (!config_.serial_address.empty())
      plan_.push_back({item::serial, config_.serial_address, 0});
    if (!config_.time_address.empty() && !config_.date_address.empty()) {
      plan_.push_back({item::time, config_.time_address, 0});
      plan_.push_back({item::date, config_.date_address, 0});
    }
    if (!config_.status_address.empty())
      plan_.push_back({item::status, config_.status_address, 0});
    for (std::size_t i = 0; i < config_.registers.size(); ++i)
      plan_.push_back({item::reg, config_.registers[i].address, i});
    if (request_.survey_from && request_.survey_to && *request_.survey_from < *request_.survey_to)
      plan_.push_back({item::profile, config_.profile_address, 0});
    pos_ = 0;
    start_step(out);
    return;
  case stage::request:
    handle_read(out, m, now);
    return;
  default:
    return;
  }
}

void iec62056_21_driver::start_step(actions& out) {
  if (pos_ >= plan_.size()) {
    sign_off(out);
    return;
  }
  const auto& s = plan_[pos_];
  stage_ = stage::request;
  if (s.what == item::profile) {
    profile_text_.clear();
    std::string data = s.address + "(" + profile_time(*request_.survey_from) + ";" +
                       profile_time(*request_.survey_to) +
                       (config_.profile_command == "R6" ? ";8)" : ")");
    schedule(out, iec::command_message(config_.profile_command, data));
  } else {
    schedule(out, iec::command_message("R1", s.address + "()"));
  }
}

void iec62056_21_driver::next_step(actions& out) {
  ++pos_;
  repeats_ = 0;
  start_step(out);
}

void iec62056_21_driver::handle_read(actions& out, const iec::message& m, unix_ms now) {
  using k = iec::message_kind;
  if (nak_or_sign_off(out, m))
    return;
  if (m.kind != k::block) {
    fail(out, failure_kind::transient, "unexpected answer from meter");
    return;
  }
  repeats_ = 0;
  const auto& s = plan_[pos_];
  const unix_seconds now_s = now / 1000;
  if (s.what == item::profile) {
    profile_text_ += m.text;
    if (m.partial) {
      schedule(out, std::string(1, iec::ack));
      return;
    }
    store_profile(profile_text_);
    next_step(out);
    return;
  }
  const auto value = first_group(m.text);
  if (!value || is_error(*value)) {
    next_step(out); // unreadable item: skipped
    return;
  }
  switch (s.what) {
  case item::serial: {
    if (!accept_serial(out, std::string(trim(*value))))
      return;
    break;
  }
  case item::time:
    time_of_day_ = parse_time_of_day(*value);
    time_taken_ = now_s;
    break;
  case item::date:
    if (const auto day = parse_day(*value); day && time_of_day_) {
      readings_.meter_time = *day + *time_of_day_;
      readings_.meter_time_taken = time_taken_;
    }
    break;
  case item::status:
    if (const auto flags = to_hex(*value)) {
      if (!readings_.status_events)
        readings_.status_events.emplace();
      for (int bit = 0; bit < 64; ++bit) {
        const std::uint64_t mask = std::uint64_t{1} << bit;
        if (!(*flags & mask))
          continue;
        std::string text = "Meter error register " + s.address + " bit " + std::to_string(bit) + " set";
        for (const auto& [m32, name] : config_.status_flag_names)
          if (m32 == mask)
            text = name;
        add_event(std::move(text));
      }
    }
    break;
  case item::reg: {
    const auto& reg = config_.registers[s.reg];
    const std::string_view v = *value;
    const auto star = v.find('*');
    const auto number = to_number(v.substr(0, star));
    if (!number)
      break;
    register_value r{reg.name, *number, reg.units, now_s};
    if (star != std::string_view::npos) {
      const auto unit = trim(v.substr(star + 1));
      if (const auto f = unit_factor(unit, reg.units))
        r.value = *number * *f;
      else
        r.units = std::string(unit);
    }
    if (!readings_.registers)
      readings_.registers.emplace();
    readings_.registers->push_back(std::move(r));
    break;
  }
  case item::profile:
    break;
  }
  next_step(out);
}

void iec62056_21_driver::store_profile(const std::string& text) {
  const unix_seconds from = *request_.survey_from, to = *request_.survey_to;
  struct column {
    std::size_t channel = 0;
    double factor = 1;
    bool power = false;
    bool cumulative = false;
  };
  struct bucket {
    double sum = 0;
    unix_seconds covered = 0;
  };
  std::vector<survey_channel> channels;
  std::vector<std::map<unix_seconds, bucket>> buckets;
  std::vector<std::optional<std::pair<unix_seconds, double>>> previous; // cumulative channels
  std::vector<std::optional<column>> columns;
  unix_seconds base = 0, interval = 0;
  std::size_t entry = 0;
  bool header_ok = false, any_header = false;

  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos)
      end = text.size();
    const auto line = trim(std::string_view(text).substr(at, end - at));
    at = end + 1;
    if (line.empty())
      continue;
    const auto g = groups(line);
    if (line.front() != '(') { // a header: P.01(time)(status)(tt)(n)(id)(unit)...
      header_ok = false;
      if (g.size() < 4 || is_error(g[0]))
        continue;
      const auto t = parse_profile_time(g[0]);
      const auto status = to_hex(g[1]);
      const auto tt = to_number(g[2]), n = to_number(g[3]);
      if (!t || !tt || !n || *tt < 1 || *n < 0)
        continue;
      // Both numbers are checked as read, before any conversion: a meter (or a line) can send
      // any digits, and an int or size_t cast of a number beyond its range is undefined.
      if (*tt > 30 || 30 % static_cast<int>(*tt) != 0) {
        add_event("Load profile interval of " + number_text(*tt) + " minutes not supported");
        continue;
      }
      if (*n > static_cast<double>(max_profile_channels)) {
        add_event("Load profile header announces " + number_text(*n) + " channels; more than " +
                  std::to_string(max_profile_channels) + " are not supported");
        continue;
      }
      const int minutes = static_cast<int>(*tt);
      base = *t;
      interval = minutes * 60;
      entry = 0;
      header_ok = any_header = true;
      if (status && *t >= from && *t <= to)
        for (const auto& bit : vdew_status)
          if (*status & bit.mask)
            add_event(std::string(bit.text) + " at " + format_utc(*t));
      columns.clear();
      for (std::size_t i = 0; i < static_cast<std::size_t>(*n); ++i) {
        columns.emplace_back();
        if (4 + 2 * i >= g.size())
          continue;
        const auto name = map_channel(g[4 + 2 * i]);
        if (!name)
          continue;
        const std::string unit_text = 5 + 2 * i < g.size() ? g[5 + 2 * i] : "";
        column c;
        if (const auto u = parse_unit(unit_text)) {
          c.factor = u->factor;
          c.power = !u->energy;
        } else {
          c.power = name->group_d == 4 || name->group_d == 5; // average demand
        }
        c.cumulative = !c.power && name->group_d == 8;
        const auto found = std::find_if(channels.begin(), channels.end(),
                                        [&](const survey_channel& sc) { return sc.name == name->name; });
        c.channel = static_cast<std::size_t>(found - channels.begin());
        if (found == channels.end()) {
          channels.push_back(survey_channel{name->name, name->units, {}});
          buckets.emplace_back();
          previous.emplace_back();
        }
        columns.back() = c;
      }
      continue;
    }
    if (!header_ok)
      continue;
    const unix_seconds stamp = base + static_cast<unix_seconds>(entry++) * interval;
    const unix_seconds start = config_.profile_timestamp_is_interval_end ? stamp - interval : stamp;
    for (std::size_t i = 0; i < columns.size() && i < g.size(); ++i) {
      if (!columns[i])
        continue;
      const auto& c = *columns[i];
      const std::string_view raw = g[i];
      const auto v = to_number(raw.substr(0, raw.find('*')));
      if (!v) {
        previous[c.channel].reset();
        continue;
      }
      double energy = 0;
      if (c.power) {
        energy = *v * c.factor * static_cast<double>(interval) / 3600.0;
      } else if (c.cumulative) {
        const auto prev = previous[c.channel];
        previous[c.channel] = std::make_pair(stamp, *v);
        if (!prev || prev->first != stamp - interval)
          continue;
        energy = (*v - prev->second) * c.factor;
      } else {
        energy = *v * c.factor;
      }
      auto& b = buckets[c.channel][start - ((start % half_hour) + half_hour) % half_hour];
      b.sum += energy;
      b.covered += interval;
    }
  }
  if (!any_header)
    return; // "(ERROR)" or no usable data: the survey stays unread
  for (std::size_t i = 0; i < channels.size(); ++i)
    for (const auto& [t, b] : buckets[i])
      if (b.covered == half_hour && t >= from && t < to)
        channels[i].readings.push_back(survey_reading{t, round6(b.sum)});
  readings_.survey = std::move(channels);
}

std::unique_ptr<meter_driver> make_iec62056_21_driver(const session_request& request,
                                                      const iec62056_21_config& config) {
  return std::make_unique<iec62056_21_driver>(request, config);
}

line_settings iec62056_21_initial_line() { return line_settings{300, 7, 'E', 1}; }

} // namespace mts::drivers

#include "sim/sim_config.hpp"

#include "common/json.hpp"
#include "common/tcp_address.hpp"
#include "drivers/outcome.hpp"
#include "sim/dlms_meter.hpp"
#include "sim/elster_meter.hpp"

#include "common/toml.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

namespace mts::sim {

namespace bj = boost::json;

void check_simulated_driver(const std::string& driver, const std::string& type) {
  if (driver != "iec62056-21" && !is_elster_driver(driver) && !is_dlms_driver(driver))
    throw sim_error("meter type " + type + " (driver " + driver + ") is not simulated yet");
}

const meter_type& simulated_type_of(const meter_type_registry& types, const std::string& type) {
  const auto* t = types.find(type);
  if (!t)
    throw sim_error("unknown meter type \"" + type.substr(0, 64) + "\"");
  check_simulated_driver(t->driver, t->name);
  return *t;
}

void check_predictable(const meter_type& type) {
  for (const auto& [key, standard] : {std::pair<const char*, std::int64_t>{"register_scale_exponent", -6},
                                      std::pair<const char*, std::int64_t>{"profile_scale_exponent", -3}}) {
    auto it = type.settings.find(key);
    if (it != type.settings.end() && std::get<std::int64_t>(it->second) != standard)
      throw sim_error("meter type " + type.name + ": " + key + " " + driver_value_text(it->second) +
                      " cannot be predicted (expect knows the default " + std::to_string(standard) + " only)");
  }
}

void check_password(const meter_identity& identity, const std::string& password) {
  if (is_elster_driver(identity.driver) && !password.empty() && password.size() != 8)
    throw sim_error("an " + identity.type + " password has 8 characters (or none: any is accepted)");
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

meter_identity generated_identity(const meter_type& type, std::uint64_t seed, std::size_t index) {
  meter_identity id;
  id.type = type.name;
  id.driver = type.driver;
  if (auto it = type.settings.find("clock_utc_offset_minutes"); it != type.settings.end())
    id.utc_offset_minutes = std::get<std::int64_t>(it->second);
  id.line = type.initial_line;
  if (is_dlms_driver(type.driver))
    id.dlms = dlms_config_of(type);
  id.seed = seed;
  constexpr std::uint64_t span = 90000000;
  id.serial = std::to_string(10000000 + (splitmix64(seed) % span + index) % span);
  id.outstation_address = std::to_string(index + 1);
  const std::uint64_t h = splitmix64(splitmix64(seed ^ 0x5eed) + index);
  char pw[9];
  std::snprintf(pw, sizeof pw, "%08X", static_cast<unsigned>(h & 0xffffffffULL));
  id.password = pw;
  id.clock_offset_seconds = static_cast<std::int64_t>((h >> 32) % 241) - 120;
  return id;
}

namespace {

template <class T>
std::optional<T> parse_number(std::string_view text) {
  T v{};
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty())
    return std::nullopt;
  return v;
}

enum class fault_kind { flag, integer, text, times };

struct fault_key {
  const char* name;
  fault_kind kind;
};

constexpr fault_key fault_keys[] = {
    {"refuse_connection", fault_kind::flag},   {"silent", fault_kind::flag},
    {"pace_baud", fault_kind::integer},        {"drop_after_bytes", fault_kind::integer},
    {"drop_mid_profile", fault_kind::flag},    {"corrupt_bcc_every", fault_kind::integer},
    {"garbage_before_reply", fault_kind::text}, {"reject_password", fault_kind::flag},
    {"reported_serial", fault_kind::text},     {"survey_gaps", fault_kind::times},
    {"power_failure_every_days", fault_kind::integer}, {"error_register", fault_kind::integer},
    {"password_timeout_after_reads", fault_kind::integer},
    {"reject_association", fault_kind::flag},  {"access_error_obis", fault_kind::text},
    {"block_stop_after", fault_kind::integer}, {"frame_reject", fault_kind::flag},
    {"refuse_range", fault_kind::flag},        {"max_pdu", fault_kind::integer},
    {"max_info", fault_kind::integer}};

const fault_key* find_fault(std::string_view name) {
  for (const auto& k : fault_keys)
    if (name == k.name)
      return &k;
  return nullptr;
}

std::string fault_names() {
  std::string out;
  for (const auto& k : fault_keys)
    out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}

// Sets one fault from typed values; returns a problem text or "".
std::string set_fault(meter_faults& f, std::string_view name, bool flag, std::int64_t number,
                      const std::string& text, std::vector<unix_seconds> times) {
  auto non_negative_int = [&](int& out) -> std::string {
    if (number < 0 || number > std::numeric_limits<int>::max())
      return "must be a whole number from 0 to " + std::to_string(std::numeric_limits<int>::max());
    out = static_cast<int>(number);
    return "";
  };
  if (name == "refuse_connection")
    f.refuse_connection = flag;
  else if (name == "silent")
    f.silent = flag;
  else if (name == "drop_mid_profile")
    f.drop_mid_profile = flag;
  else if (name == "reject_password")
    f.reject_password = flag;
  else if (name == "reject_association")
    f.reject_association = flag;
  else if (name == "frame_reject")
    f.frame_reject = flag;
  else if (name == "refuse_range")
    f.refuse_range = flag;
  else if (name == "block_stop_after")
    return non_negative_int(f.block_stop_after);
  else if (name == "max_pdu") {
    if (number != 0 && (number < 128 || number > 65535))
      return "must be 0 (the meter's default) or from 128 to 65535";
    f.max_pdu = static_cast<int>(number);
  } else if (name == "max_info") {
    if (number != 0 && (number < 16 || number > 2030))
      return "must be 0 (the meter's default) or from 16 to 2030";
    f.max_info = static_cast<int>(number);
  } else if (name == "access_error_obis") {
    if (!text.empty() && !drivers::dlms::parse_obis(text))
      return "must be an OBIS code such as 1.0.1.8.0.255";
    f.access_error_obis = text.empty() ? text : drivers::dlms::obis_text(*drivers::dlms::parse_obis(text));
  }
  else if (name == "pace_baud")
    return non_negative_int(f.pace_baud);
  else if (name == "corrupt_bcc_every")
    return non_negative_int(f.corrupt_bcc_every);
  else if (name == "power_failure_every_days")
    return non_negative_int(f.power_failure_every_days);
  else if (name == "password_timeout_after_reads")
    return non_negative_int(f.password_timeout_after_reads);
  else if (name == "drop_after_bytes") {
    if (number < 0)
      return "must not be negative";
    f.drop_after_bytes = static_cast<std::size_t>(number);
  } else if (name == "error_register") {
    if (number < 0 || number > 0xffffffffLL)
      return "must fit 32 bits";
    f.error_register = static_cast<std::uint32_t>(number);
  } else if (name == "garbage_before_reply") {
    for (char c : text)
      if (c == '/' || c == 0x01 || c == 0x02 || c == 0x06 || c == 0x15)
        return "must not contain '/', SOH, STX, ACK or NAK";
    f.garbage_before_reply = text;
  } else if (name == "reported_serial") {
    f.reported_serial = text;
  } else if (name == "survey_gaps") {
    for (auto t : times)
      if (t % half_hour != 0)
        return "must be half-hour starts";
    f.survey_gaps = std::move(times);
  }
  return "";
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto pos = text.find(sep, start);
    out.emplace_back(text.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos)
      return out;
    start = pos + 1;
  }
}

} // namespace

void apply_fault(meter_faults& faults, std::string_view spec) {
  const auto eq = spec.find('=');
  const std::string name(spec.substr(0, eq));
  const std::optional<std::string> value =
      eq == std::string_view::npos ? std::nullopt : std::optional<std::string>(spec.substr(eq + 1));
  const fault_key* key = find_fault(name);
  if (!key)
    throw sim_error("fault " + name.substr(0, 64) + ": unknown (known: " + fault_names() + ")");
  bool flag = true;
  std::int64_t number = 0;
  std::string text;
  std::vector<unix_seconds> times;
  switch (key->kind) {
  case fault_kind::flag:
    if (value && *value != "true" && *value != "false")
      throw sim_error("fault " + name + ": must be true or false");
    flag = !value || *value == "true";
    break;
  case fault_kind::integer: {
    auto n = value ? parse_number<std::int64_t>(*value) : std::nullopt;
    if (!n)
      throw sim_error("fault " + name + ": needs a whole number (" + name + "=N)");
    number = *n;
    break;
  }
  case fault_kind::text:
    if (!value)
      throw sim_error("fault " + name + ": needs a value (" + name + "=TEXT)");
    text = *value;
    break;
  case fault_kind::times:
    if (!value)
      throw sim_error("fault " + name + ": needs a comma-separated list of YYYY-MM-DDTHH:mm:ssZ");
    for (const auto& part : split(*value, ',')) {
      auto t = parse_utc(part);
      if (!t)
        throw sim_error("fault " + name + ": \"" + part.substr(0, 32) + "\" is not YYYY-MM-DDTHH:mm:ssZ");
      times.push_back(*t);
    }
    break;
  }
  const auto problem = set_fault(faults, name, flag, number, text, std::move(times));
  if (!problem.empty())
    throw sim_error("fault " + name + ": " + problem);
}

// ---- the TOML file ----

namespace {

struct toml_reader {
  std::string where; // "meter[2]." or ""

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw sim_error(where + key + ": " + problem);
  }
  std::string string(const toml::node& n, const std::string& key) const {
    if (auto v = n.value_exact<std::string>())
      return *v;
    fail(key, "expected a string");
  }
  std::int64_t integer(const toml::node& n, const std::string& key) const {
    if (auto v = n.value_exact<std::int64_t>())
      return *v;
    fail(key, "expected an integer");
  }
  bool boolean(const toml::node& n, const std::string& key) const {
    if (auto v = n.value_exact<bool>())
      return *v;
    fail(key, "expected true or false");
  }
  unix_seconds time(const toml::node& n, const std::string& key) const {
    auto t = parse_utc(string(n, key));
    if (!t)
      fail(key, "expected a time YYYY-MM-DDTHH:mm:ssZ (as a string)");
    return *t;
  }
};

} // namespace

sim_config load_config_file(const std::string& path, const meter_type_registry& types) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw sim_error(path + ": cannot be read");
  std::stringstream buffer;
  buffer << in.rdbuf();
  toml::table root;
  try {
    root = toml::parse(buffer.str(), path);
  } catch (const toml::parse_error& e) {
    throw sim_error(path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  sim_config cfg;
  std::uint64_t default_seed = 0;
  const toml::array* meters = nullptr;
  try {
    toml_reader top;
    for (const auto& [k, v] : root) {
      const std::string key(k.str());
      if (key == "address")
        cfg.address = top.string(v, key);
      else if (key == "start_time")
        cfg.start_time = top.time(v, key);
      else if (key == "seed")
        default_seed = static_cast<std::uint64_t>(top.integer(v, key));
      else if (key == "meter") {
        meters = v.as_array();
        if (!meters)
          top.fail(key, "expected [[meter]] tables");
      } else
        top.fail(key, "unknown key (known: address, start_time, seed, [[meter]])");
    }
    if (!meters || meters->empty())
      top.fail("meter", "at least one [[meter]] table is required");
    std::size_t index = 0; // position of the next meter in the file
    for (std::size_t i = 0; i < meters->size(); ++i) {
      toml_reader r{"meter[" + std::to_string(i) + "]."};
      const toml::table* t = (*meters)[i].as_table();
      if (!t)
        toml_reader{"meter[" + std::to_string(i) + "]"}.fail("", "expected a table");
      std::string type = simulated_type;
      std::uint64_t seed = default_seed;
      std::int64_t port = -1, count = 1;
      meter_faults faults;
      std::optional<std::string> serial, outstation, password;
      std::optional<std::int64_t> offset;
      for (const auto& [k, v] : *t) {
        const std::string key(k.str());
        if (key == "type")
          type = r.string(v, key);
        else if (key == "seed")
          seed = static_cast<std::uint64_t>(r.integer(v, key));
        else if (key == "port") {
          port = r.integer(v, key);
          if (port < 0 || port > 65535)
            r.fail(key, "must be from 0 to 65535");
        } else if (key == "count") {
          count = r.integer(v, key);
          if (count < 1 || count > 65535)
            r.fail(key, "must be from 1 to 65535");
        } else if (key == "serial")
          serial = r.string(v, key);
        else if (key == "outstation_address")
          outstation = r.string(v, key);
        else if (key == "password")
          password = r.string(v, key);
        else if (key == "clock_offset_seconds")
          offset = r.integer(v, key);
        else if (const fault_key* f = find_fault(key)) {
          bool flag = false;
          std::int64_t number = 0;
          std::string text;
          std::vector<unix_seconds> times;
          switch (f->kind) {
          case fault_kind::flag: flag = r.boolean(v, key); break;
          case fault_kind::integer: number = r.integer(v, key); break;
          case fault_kind::text: text = r.string(v, key); break;
          case fault_kind::times: {
            const toml::array* a = v.as_array();
            if (!a)
              r.fail(key, "expected an array of YYYY-MM-DDTHH:mm:ssZ strings");
            for (const auto& e : *a)
              times.push_back(r.time(e, key));
            break;
          }
          }
          const auto problem = set_fault(faults, key, flag, number, text, std::move(times));
          if (!problem.empty())
            r.fail(key, problem);
        } else
          r.fail(key, "unknown key");
      }
      const meter_type* resolved = nullptr;
      try {
        resolved = &simulated_type_of(types, type);
      } catch (const sim_error& e) {
        r.fail("type", e.what());
      }
      try {
        check_password(generated_identity(*resolved, seed, index), password.value_or(""));
      } catch (const sim_error& e) {
        r.fail("password", e.what());
      }
      if (port < 0)
        r.fail("port", "required");
      if (count > 1 && port == 0)
        r.fail("port", "must be given (not 0) with count > 1");
      if (port + count - 1 > 65535)
        r.fail("count", "the ports run beyond 65535");
      if (count > 1 && serial)
        r.fail("serial", "only with count = 1 (serials are generated otherwise)");
      for (std::int64_t n = 0; n < count; ++n, ++index) {
        sim_meter m;
        m.identity = generated_identity(*resolved, seed, index);
        if (serial)
          m.identity.serial = *serial;
        if (outstation)
          m.identity.outstation_address = *outstation;
        if (password)
          m.identity.password = *password;
        if (offset)
          m.identity.clock_offset_seconds = *offset;
        m.faults = faults;
        m.port = static_cast<std::uint16_t>(port == 0 ? 0 : port + n);
        cfg.meters.push_back(std::move(m));
      }
    }
  } catch (const sim_error& e) {
    throw sim_error(path + ": " + e.what());
  }
  return cfg;
}

std::string meter_json_line(const meter_identity& id, const std::string& address, std::uint16_t port) {
  const std::string host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
  bj::object o;
  o["meterType"] = id.type;
  o["remoteAddress"] = host + ":" + std::to_string(port);
  o["outstationAddress"] = id.outstation_address;
  o["serialNumber"] = id.serial;
  o["password"] = id.password;
  o["port"] = port;
  o["seed"] = id.seed;
  o["clockOffsetSeconds"] = id.clock_offset_seconds;
  return json::serialize(o);
}

// ---- expect ----

drivers::session_request session_request_from_json(std::string_view request_json, unix_seconds now) {
  std::string error;
  auto parsed = json::parse_strict(request_json, error);
  if (!parsed)
    throw sim_error("request: " + error);
  if (!parsed->is_object())
    throw sim_error("request: must be a JSON object");
  const auto& o = parsed->as_object();
  drivers::session_request rq;
  auto text = [&](const char* key) -> std::optional<std::string> {
    auto it = o.find(key);
    if (it == o.end() || it->value().is_null())
      return std::nullopt;
    if (!it->value().is_string())
      throw sim_error(std::string("request: ") + key + ": must be a string");
    return std::string(it->value().as_string());
  };
  rq.outstation_address = text("outstationAddress");
  rq.password = text("password");
  rq.expected_serial = text("serialNumber");
  // A remoteAddress that is not host:port is a telephone number: a modem call.
  if (auto remote = text("remoteAddress"); remote && !remote->empty())
    rq.over_modem = !parse_tcp_address(*remote);
  std::int64_t days = 0;
  if (auto it = o.find("surveyDays"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_int64() || it->value().as_int64() < 0)
      throw sim_error("request: surveyDays: must be a whole number from 0");
    days = it->value().as_int64();
  }
  if (days > 0) {
    unix_seconds from = (now - seconds_of_day(now)) - days * seconds_per_day;
    if (auto date = text("surveyDate"); date && !date->empty()) {
      auto d = parse_date(*date);
      if (!d)
        throw sim_error("request: surveyDate: must be a date in the form yyyy-MM-dd");
      from = *d;
    }
    rq.survey_from = from;
    rq.survey_to = std::min(from + days * seconds_per_day, now);
  }
  return rq;
}

namespace {

// How an IEC62056-21 session ends (sim_config.hpp "How the session ends").
drivers::finish expected_iec_end(const meter_identity& identity, const meter_faults& faults,
                                 const drivers::session_request& rq) {
  drivers::finish end;
  const std::string addr = rq.outstation_address.value_or("");
  const meter_model model(identity, faults);
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(' ');
    if (b == std::string::npos)
      return std::string();
    return s.substr(b, s.find_last_not_of(' ') - b + 1);
  };
  if (faults.refuse_connection)
    end = {drivers::failure_kind::transient, "connection refused"};
  else if (faults.silent || (!addr.empty() && !identity.outstation_address.empty() &&
                             addr != identity.outstation_address))
    end = {drivers::failure_kind::transient, "no answer to sign-on"};
  else if (faults.reject_password ||
           (!identity.password.empty() && rq.password.value_or("") != identity.password))
    end = {drivers::failure_kind::permanent, "password rejected"};
  else if (rq.expected_serial && trim(*rq.expected_serial) != trim(model.reported_serial()))
    end = {drivers::failure_kind::permanent, "Serial number mismatch"};
  else if (faults.drop_mid_profile && rq.survey_from && rq.survey_to && *rq.survey_from < *rq.survey_to)
    end = {drivers::failure_kind::transient, "line dropped"};
  return end;
}

} // namespace

std::string expected_result_json(const meter_identity& identity, const meter_faults& faults,
                                 std::string_view request_json, unix_seconds now) {
  check_simulated_driver(identity.driver, identity.type);
  check_password(identity, identity.password);
  if (faults.drop_after_bytes)
    throw sim_error("fault drop_after_bytes: its result cannot be predicted");
  const auto rq = session_request_from_json(request_json, now);
  drivers::meter_readings readings;
  drivers::finish end;
  if (is_elster_driver(identity.driver)) {
    auto x = expected_elster(identity, faults, rq, now);
    readings = std::move(x.readings);
    end = std::move(x.end);
  } else if (is_dlms_driver(identity.driver)) {
    auto x = expected_dlms(identity, faults, rq, now);
    readings = std::move(x.readings);
    end = std::move(x.end);
  } else {
    readings = expected_iec_readings(identity, faults, rq, now);
    end = expected_iec_end(identity, faults, rq);
  }
  const auto outcome = drivers::make_outcome(0, rq, readings, end, now);
  std::string error;
  auto parsed = json::parse_strict(outcome.readings_json, error);
  bj::object out;
  out["result"] = outcome.result;
  if (parsed && parsed->is_object()) {
    auto& r = parsed->as_object();
    for (const char* key : {"serialNumber", "statusEvents", "registerValues", "surveyData"}) {
      auto it = r.find(key);
      if (it == r.end())
        continue;
      bj::value v = it->value();
      if (std::string_view(key) == "registerValues" && v.is_array())
        for (auto& reg : v.as_array())
          if (reg.is_object())
            reg.as_object().erase("timestamp");
      out[key] = std::move(v);
    }
  }
  return json::serialize(out);
}


} // namespace mts::sim

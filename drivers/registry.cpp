#include "drivers/registry.hpp"

#include "drivers/char_format.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>

namespace mts {
namespace {

driver_key integer_key(std::string key, std::int64_t def, std::int64_t min, std::int64_t max, std::string doc) {
  driver_key k;
  k.key = std::move(key);
  k.default_value = def;
  k.min = min;
  k.max = max;
  k.doc = std::move(doc);
  return k;
}

driver_key choice_key(std::string key, driver_value def, std::vector<std::string> choices, std::string doc) {
  driver_key k;
  k.key = std::move(key);
  k.default_value = std::move(def);
  k.choices = std::move(choices);
  k.doc = std::move(doc);
  return k;
}

std::string check_char_format(const driver_value& v) {
  const auto* text = std::get_if<std::string>(&v);
  if (!text || text->size() != 3 || !drivers::parse_coms_settings(*text) || (*text)[1] < 'A' || (*text)[1] > 'Z')
    return "must be <data bits 5-8><parity N, E or O><stop bits 1 or 2>, e.g. \"7E1\"";
  return "";
}

// The keys of every IEC 62056-21 framed session (drivers/iec_session.hpp).
std::vector<driver_key> session_keys(const char* baud_switch_doc) {
  return {
      integer_key("response_timeout_ms", 5000, 100, 600000,
                  "Longest wait for a reply's first byte, and between its bytes."),
      integer_key("baud_switch_delay_ms", 300, 0, 10000, baud_switch_doc),
      integer_key("reaction_delay_ms", 200, 0, 10000, "Pause before every message the driver sends."),
      integer_key("max_repeats", 3, 0, 100, "NAKs per message on a bad BCC before the attempt fails."),
  };
}

std::vector<driver_key> elster_keys() {
  std::vector<driver_key> keys = {
      choice_key("option_mode", std::string("6"), {"6", "1"},
                 "Option select mode: \"6\" (Elster mode) or \"1\" (IEC1107-compatible)."),
      integer_key("security_level", 2, 2, 3,
                  "2: P2(hash); 3: P2(0000000000000000) for reads, P2(hash) before the first write."),
      integer_key("clock_utc_offset_minutes", 0, -900, 900,
                  "The meter clock's offset from UTC (meter time = UTC + offset)."),
      integer_key("register_scale_exponent", -6, -12, 12, "Cumulative register (507) value = raw x 10^exponent."),
      integer_key("profile_scale_exponent", -3, -12, 12, "Load profile (550) value = DDDDD x 10^E x 10^exponent."),
  };
  for (auto& k : session_keys("Pause after the option select before awaiting the seed."))
    keys.push_back(std::move(k));
  keys.push_back(integer_key("max_reauthentications", 3, 0, 100,
                             "ERR5 (password session timed out) recoveries per session."));
  return keys;
}

std::vector<driver_key> iec_keys() {
  auto keys = session_keys("Pause after the option select before awaiting the meter at the new speed.");
  keys.insert(keys.begin() + 3,
              integer_key("fast_reaction_delay_ms", 20, 0, 10000,
                          "The same pause for a meter whose identification's third letter is lower case."));
  keys.push_back(integer_key("max_baud", 9600, 300, 19200,
                             "Highest speed accepted at the baud switch (the meter's proposal is capped to it)."));
  return keys;
}

driver_key text_key(std::string key, std::string def, std::string range, std::string (*check)(const driver_value&),
                    std::string doc) {
  driver_key k;
  k.key = std::move(key);
  k.default_value = std::move(def);
  k.range = std::move(range);
  k.check = check;
  k.doc = std::move(doc);
  return k;
}

// The DLMS keys whose text must parse (docs/dlms.md "Per-type settings").
std::optional<std::vector<drivers::dlms::obis>> obis_list(std::string_view text) {
  std::vector<drivers::dlms::obis> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    auto part = text.substr(0, comma);
    while (!part.empty() && part.front() == ' ')
      part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ')
      part.remove_suffix(1);
    const auto code = drivers::dlms::parse_obis(part);
    if (!code)
      return std::nullopt;
    out.push_back(*code);
    if (comma == std::string_view::npos)
      break;
    text.remove_prefix(comma + 1);
    if (text.empty())
      return std::nullopt; // a trailing comma
  }
  return out;
}

std::string check_obis(const driver_value& v) {
  const auto* text = std::get_if<std::string>(&v);
  if (!text || !drivers::dlms::parse_obis(*text))
    return "must be an OBIS code, e.g. \"0.0.96.1.0.255\"";
  return "";
}

std::string check_optional_obis(const driver_value& v) {
  const auto* text = std::get_if<std::string>(&v);
  if (!text || (!text->empty() && !drivers::dlms::parse_obis(*text)))
    return "must be an OBIS code, e.g. \"1.0.99.1.0.255\", or \"\" (none)";
  return "";
}

std::string check_obis_list(const driver_value& v) {
  const auto* text = std::get_if<std::string>(&v);
  if (!text || !obis_list(*text))
    return "must be OBIS codes separated by commas, e.g. \"1.0.1.8.0.255,1.0.2.8.0.255\"";
  return "";
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    if (!std::isxdigit(static_cast<unsigned char>(hex[i])) || !std::isxdigit(static_cast<unsigned char>(hex[i + 1])))
      return std::nullopt;
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

std::string check_system_title(const driver_value& v) {
  const auto* text = std::get_if<std::string>(&v);
  if (!text || text->size() != 16 || !from_hex(*text))
    return "must be 16 hex digits (8 bytes), e.g. \"4D54530000000001\"";
  return "";
}

std::vector<driver_key> dlms_keys() {
  auto size = choice_key("server_address_size", std::int64_t{0}, {"0", "1", "2", "4"},
                         "HDLC server address bytes: 0 the smallest that holds the address, or 1, 2, 4.");
  return {
      choice_key("transport", std::string("wrapper"), {"wrapper", "hdlc"},
                 "Transport for TCP addresses: the IEC 62056-47 wrapper or HDLC frames (a modem call: HDLC)."),
      choice_key("referencing", std::string("ln"), {"ln", "sn"}, "Logical name (GET) or short name (Read) referencing."),
      choice_key("authentication", std::string("none"), {"none", "low", "high-md5", "high-sha1", "high-sha256"},
                 "Association authentication; none with a password in the request is low."),
      integer_key("client_address", 16, 1, 127, "HDLC client address / wrapper client wPort (16: public client)."),
      integer_key("server_logical_address", 1, 0, 16383, "HDLC upper server address / wrapper server wPort."),
      integer_key("server_physical_address", 0, 0, 16383,
                  "HDLC lower server address (0: none); a request's outstationAddress replaces it."),
      std::move(size),
      integer_key("hdlc_max_info_receive", 2030, 32, 2030, "Proposed HDLC max information field, meter to us."),
      integer_key("hdlc_max_info_transmit", 128, 32, 2030, "Proposed HDLC max information field, us to meter."),
      integer_key("max_pdu_size", 65535, 64, 65535, "Client max receive PDU size proposed in the AARQ."),
      text_key("serial_number_obis", "0.0.96.1.0.255", "an OBIS code", check_obis,
               "The serial number object (class 1, attribute 2)."),
      text_key("register_obis", "1.0.1.8.0.255,1.0.2.8.0.255,1.0.5.8.0.255,1.0.6.8.0.255,1.0.7.8.0.255,1.0.8.8.0.255",
               "OBIS codes separated by commas", check_obis_list, "The registers read (class 3), in order."),
      text_key("load_profile_obis", "1.0.99.1.0.255", "an OBIS code or \"\"", check_optional_obis,
               "The load profile (class 7) of the survey; \"\": no survey."),
      text_key("event_log_obis", "", "an OBIS code or \"\"", check_optional_obis,
               "The event log (class 7) read with the survey; \"\": none."),
      choice_key("clock_deviation", std::string("blue-book"), {"blue-book", "inverted", "ignore"},
                 "How the clock's deviation converts local time to UTC (blue-book: UTC = local + deviation)."),
      integer_key("clock_utc_offset_minutes", 0, -900, 900,
                  "Local time's offset from UTC when the meter's deviation is not specified or ignored."),
      choice_key("profile_clock", std::string("end"), {"end", "start"},
                 "Whether a profile row's clock is the end or the start of its interval."),
      text_key("client_system_title", "4D54530000000001", "16 hex digits", check_system_title,
               "The client system title (calling-AP-title) for HLS-SHA256."),
      integer_key("response_timeout_ms", 5000, 100, 600000,
                  "Longest wait for an answer, re-armed by every byte received."),
      integer_key("max_repeats", 3, 0, 100, "HDLC frames sent again after a response timeout."),
  };
}

struct driver_entry {
  std::string name;
  std::vector<driver_key> keys;
  std::vector<std::string> register_names;
};

const std::vector<driver_entry>& drivers_table() {
  static const std::vector<driver_entry> table = [] {
    // The names every energy-register driver reports, in the API's form; the Elster drivers
    // also report the apparent energy register (docs/elster.md).
    const std::vector<std::string> energy = {"kWh Import", "kWh Export", "kvarh Q1", "kvarh Q2", "kvarh Q3", "kvarh Q4"};
    auto elster_names = energy;
    elster_names.push_back("kVAh");
    // DLMS types report the names of their register_obis (computed per type).
    return std::vector<driver_entry>{{"iec62056-21", iec_keys(), energy},
                                     {"elster-a1700", elster_keys(), elster_names},
                                     {"elster-a1140", elster_keys(), elster_names},
                                     {"dlms", dlms_keys(), {}}};
  }();
  return table;
}

const driver_entry* find_driver(std::string_view name) {
  for (const auto& d : drivers_table())
    if (d.name == name)
      return &d;
  return nullptr;
}

const driver_key* find_key(const std::vector<driver_key>& keys, std::string_view key) {
  auto it = std::find_if(keys.begin(), keys.end(), [&](const driver_key& k) { return k.key == key; });
  return it == keys.end() ? nullptr : &*it;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items)
    out += (out.empty() ? "" : ", ") + i;
  return out;
}

void with_session_settings(drivers::iec_session_settings& c, const meter_type& t) {
  c.response_timeout = std::chrono::milliseconds(t.integer("response_timeout_ms"));
  c.baud_switch_delay = std::chrono::milliseconds(t.integer("baud_switch_delay_ms"));
  c.reaction_delay = std::chrono::milliseconds(t.integer("reaction_delay_ms"));
  c.max_repeats = static_cast<int>(t.integer("max_repeats"));
}

} // namespace

const std::vector<std::string>& driver_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& d : drivers_table())
      out.push_back(d.name);
    return out;
  }();
  return names;
}

const std::vector<driver_key>* driver_keys(std::string_view driver) {
  const auto* d = find_driver(driver);
  return d ? &d->keys : nullptr;
}

namespace {

std::vector<driver_key> make_line_keys(std::int64_t baud, const char* format_default) {
  auto format = choice_key("char_format", std::string(format_default), {},
                           "Character format a session starts with: data bits, parity, stop bits.");
  format.range = "<5-8><N|E|O><1|2>, e.g. \"7E1\"";
  format.check = check_char_format;
  return std::vector<driver_key>{
      choice_key("initial_baud", baud, {"300", "600", "1200", "2400", "4800", "9600", "19200"},
                 "Speed a session starts at (the sign-on's speed)."),
      std::move(format)};
}

} // namespace

const std::vector<driver_key>& line_keys() {
  static const std::vector<driver_key> keys = make_line_keys(300, "7E1");
  return keys;
}

const std::vector<driver_key>& line_keys(std::string_view driver) {
  // IEC 62056-21 sessions sign on at 300 baud 7E1; DLMS (HDLC) lines are 9600 8N1.
  static const std::vector<driver_key> dlms = make_line_keys(9600, "8N1");
  return driver == "dlms" ? dlms : line_keys();
}

std::string driver_value_text(const driver_value& value) {
  if (const auto* n = std::get_if<std::int64_t>(&value))
    return std::to_string(*n);
  return std::get<std::string>(value);
}

std::string allowed_text(const driver_key& key) {
  if (!key.range.empty())
    return key.range;
  if (key.choices.empty())
    return std::to_string(key.min) + ".." + std::to_string(key.max);
  const bool text = std::holds_alternative<std::string>(key.default_value);
  std::string out;
  for (std::size_t i = 0; i < key.choices.size(); ++i) {
    out += i == 0 ? "" : i + 1 == key.choices.size() ? " or " : ", ";
    out += text ? "\"" + key.choices[i] + "\"" : key.choices[i];
  }
  return out;
}

std::string check_driver_value(const driver_key& key, const driver_value& value) {
  const bool want_text = std::holds_alternative<std::string>(key.default_value);
  if (want_text != std::holds_alternative<std::string>(value))
    return want_text ? "expected a string" : "expected an integer";
  if (key.check)
    return key.check(value);
  const auto text = driver_value_text(value);
  if (!key.choices.empty()) {
    if (std::find(key.choices.begin(), key.choices.end(), text) == key.choices.end())
      return (want_text ? "\"" + text + "\"" : text) + " is not " + allowed_text(key);
    return "";
  }
  if (!want_text) {
    const auto n = std::get<std::int64_t>(value);
    if (n < key.min || n > key.max)
      return text + " is out of range " + allowed_text(key);
  }
  return "";
}

std::vector<meter_type_definition> builtin_meter_types() {
  std::vector<meter_type_definition> out = {{"ELSTERA1700", "elster-a1700", {}},
                                            {"ELSTERA1140", "elster-a1140", {}},
                                            {"IEC62056-21", "iec62056-21", {}},
                                            {"DLMS", "dlms", {}},
                                            {"DLMS-SN", "dlms", {}}};
  for (auto& t : out) {
    for (const auto& k : line_keys(t.driver))
      t.settings[k.key] = k.default_value;
    for (const auto& k : *driver_keys(t.driver))
      t.settings[k.key] = k.default_value;
  }
  // DLMS-SN: short names over HDLC with a password (docs/dlms.md "Per-type settings").
  auto& sn = out.back().settings;
  sn["transport"] = std::string("hdlc");
  sn["referencing"] = std::string("sn");
  sn["authentication"] = std::string("low");
  return out;
}

std::int64_t meter_type::integer(const std::string& key) const { return std::get<std::int64_t>(settings.at(key)); }

drivers::elster_config elster_config_of(const meter_type& t) {
  auto c = t.driver == "elster-a1140" ? drivers::elster_a1140_config() : drivers::elster_a1700_config();
  c.option_mode = std::get<std::string>(t.settings.at("option_mode")).at(0);
  c.security_level = static_cast<int>(t.integer("security_level"));
  c.clock_utc_offset_minutes = static_cast<int>(t.integer("clock_utc_offset_minutes"));
  c.register_scale_exponent = static_cast<int>(t.integer("register_scale_exponent"));
  c.profile_scale_exponent = static_cast<int>(t.integer("profile_scale_exponent"));
  with_session_settings(c, t);
  c.max_reauthentications = static_cast<int>(t.integer("max_reauthentications"));
  return c;
}

drivers::dlms_config dlms_config_of(const meter_type& t) {
  namespace d = drivers::dlms;
  drivers::dlms_config c;
  const auto text = [&](const char* key) { return std::get<std::string>(t.settings.at(key)); };
  c.transport = text("transport") == "hdlc" ? drivers::dlms_transport::hdlc : drivers::dlms_transport::wrapper;
  c.referencing = text("referencing") == "sn" ? drivers::dlms_referencing::sn : drivers::dlms_referencing::ln;
  c.authentication = d::parse_authentication(text("authentication"));
  c.client_address = static_cast<std::uint16_t>(t.integer("client_address"));
  c.server_logical_address = static_cast<std::uint16_t>(t.integer("server_logical_address"));
  c.server_physical_address = static_cast<std::uint16_t>(t.integer("server_physical_address"));
  c.server_address_size = static_cast<int>(t.integer("server_address_size"));
  c.hdlc_max_info_receive = static_cast<std::uint32_t>(t.integer("hdlc_max_info_receive"));
  c.hdlc_max_info_transmit = static_cast<std::uint32_t>(t.integer("hdlc_max_info_transmit"));
  c.max_pdu_size = static_cast<std::uint16_t>(t.integer("max_pdu_size"));
  c.serial_number_obis = d::parse_obis(text("serial_number_obis")).value_or(c.serial_number_obis);
  c.register_obis = obis_list(text("register_obis")).value_or(std::vector<d::obis>{});
  c.load_profile_obis = d::parse_obis(text("load_profile_obis"));
  c.event_log_obis = d::parse_obis(text("event_log_obis"));
  const auto deviation = text("clock_deviation");
  c.clock_deviation = deviation == "inverted" ? d::deviation_rule::inverted
                      : deviation == "ignore" ? d::deviation_rule::ignore
                                              : d::deviation_rule::blue_book;
  c.clock_utc_offset_minutes = static_cast<int>(t.integer("clock_utc_offset_minutes"));
  c.profile_clock_is_end = text("profile_clock") != "start";
  c.client_system_title = from_hex(text("client_system_title")).value_or(c.client_system_title);
  c.response_timeout = std::chrono::milliseconds(t.integer("response_timeout_ms"));
  c.max_repeats = static_cast<int>(t.integer("max_repeats"));
  return c;
}

drivers::iec62056_21_config iec62056_21_config_of(const meter_type& t) {
  drivers::iec62056_21_config c;
  with_session_settings(c, t);
  c.fast_reaction_delay = std::chrono::milliseconds(t.integer("fast_reaction_delay_ms"));
  c.max_baud = static_cast<int>(t.integer("max_baud"));
  return c;
}

meter_type_registry::meter_type_registry() : meter_type_registry(builtin_meter_types()) {}

meter_type_registry::meter_type_registry(const std::vector<meter_type_definition>& definitions) {
  for (const auto& def : definitions) {
    const std::string where = "meter type \"" + def.name + "\": ";
    if (def.name.empty())
      throw meter_type_error("meter type: name: required, and not empty");
    if (supports(def.name))
      throw meter_type_error(where + "name: defined twice");
    const auto* driver = find_driver(def.driver);
    if (!driver)
      throw meter_type_error(where + "driver: unknown driver \"" + def.driver + "\" (known: " +
                             joined(driver_names()) + ")");
    meter_type t;
    t.name = def.name;
    t.driver = def.driver;
    t.register_names = driver->register_names;
    for (const auto* keys : {&line_keys(def.driver), &driver->keys})
      for (const auto& k : *keys)
        t.settings[k.key] = k.default_value;
    for (const auto& [key, value] : def.settings) {
      const auto* k = find_key(line_keys(def.driver), key);
      if (!k)
        k = find_key(driver->keys, key);
      if (!k)
        throw meter_type_error(where + key + ": not a key of driver " + def.driver);
      if (auto problem = check_driver_value(*k, value); !problem.empty())
        throw meter_type_error(where + key + ": " + problem);
      t.settings[key] = value;
    }
    t.initial_line = *drivers::parse_coms_settings(std::get<std::string>(t.settings.at("char_format")),
                                                   static_cast<int>(t.integer("initial_baud")));
    // Each factory holds its own copy of the configuration: a test keeps what it started with.
    if (def.driver == "dlms") {
      const auto c = dlms_config_of(t);
      t.register_names.clear();
      for (const auto& code : c.register_obis)
        t.register_names.push_back(drivers::dlms_quantity_of(code, 30).name);
      // A fresh random HLS challenge per session (the driver itself has no randomness); an
      // empty one if the generator fails, which the driver refuses for HLS.
      t.make_driver = [c](const drivers::session_request& r) {
        std::string challenge(16, '\0');
        if (RAND_bytes(reinterpret_cast<unsigned char*>(challenge.data()), static_cast<int>(challenge.size())) != 1)
          challenge.clear();
        return drivers::make_dlms_driver(r, c, std::move(challenge));
      };
    } else if (def.driver == "iec62056-21") {
      t.make_driver = [c = iec62056_21_config_of(t)](const drivers::session_request& r) {
        return drivers::make_iec62056_21_driver(r, c);
      };
    } else {
      t.make_driver = [c = elster_config_of(t)](const drivers::session_request& r) {
        return drivers::make_elster_driver(r, c);
      };
    }
    names_.push_back(t.name);
    types_.push_back(std::move(t));
  }
}

const meter_type* meter_type_registry::find(std::string_view name) const {
  auto it = std::find_if(types_.begin(), types_.end(), [&](const meter_type& t) { return t.name == name; });
  return it == types_.end() ? nullptr : &*it;
}

} // namespace mts

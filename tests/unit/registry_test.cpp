// The meter type registry.
#include "drivers/registry.hpp"

#include <catch2/catch.hpp>

#include <variant>

using namespace mts;

TEST_CASE("the built-in registry lists the built-in meter types in their exact spelling", "[registry]") {
  const meter_type_registry types;
  CHECK(types.names() == std::vector<std::string>{"ELSTERA1700", "ELSTERA1140", "IEC62056-21", "DLMS", "DLMS-SN"});
  CHECK(types.supports("IEC62056-21"));
  CHECK_FALSE(types.supports("iec62056-21"));
  CHECK_FALSE(types.supports("ELSTERA1800"));
  CHECK(types.find("nope") == nullptr);
  CHECK(types.find("ELSTERA1700")->driver == "elster-a1700");
  CHECK(types.find("ELSTERA1140")->driver == "elster-a1140");
  CHECK(types.find("IEC62056-21")->driver == "iec62056-21");
  CHECK(types.find("DLMS")->driver == "dlms");
  CHECK(types.find("DLMS-SN")->driver == "dlms");
  CHECK_FALSE(types.supports("dlms"));
}

TEST_CASE("IEC62056-21 has a driver that signs on at 300 baud 7E1", "[registry]") {
  const meter_type_registry types;
  const auto* iec = types.find("IEC62056-21");
  REQUIRE(iec);
  CHECK(iec->initial_line == drivers::line_settings{300, 7, 'E', 1});
  REQUIRE(iec->make_driver);
  drivers::session_request request;
  request.outstation_address = "42";
  auto driver = iec->make_driver(request);
  REQUIRE(driver);
  // The sign-on goes out after the reaction delay: a timer first, then the request bytes.
  auto first = driver->on_link_up(0);
  std::uint64_t timer = 0;
  for (auto& a : first)
    if (auto* t = std::get_if<drivers::arm_timer>(&a))
      timer = t->id;
  std::string sent;
  for (auto& a : first)
    if (auto* s = std::get_if<drivers::send_bytes>(&a))
      sent += s->data;
  if (sent.empty())
    for (auto& a : driver->on_timer(timer, 200))
      if (auto* s = std::get_if<drivers::send_bytes>(&a))
        sent += s->data;
  CHECK(sent == "/?42!\r\n");
}

TEST_CASE("the Elster types have drivers that sign on at 300 baud 7E1 and report kVAh", "[registry]") {
  const meter_type_registry types;
  for (const char* name : {"ELSTERA1700", "ELSTERA1140"}) {
    const auto* t = types.find(name);
    REQUIRE(t);
    CHECK(t->initial_line == drivers::line_settings{300, 7, 'E', 1});
    CHECK(t->register_names == std::vector<std::string>{"kWh Import", "kWh Export", "kvarh Q1", "kvarh Q2",
                                                        "kvarh Q3", "kvarh Q4", "kVAh"});
    REQUIRE(t->make_driver);
    auto driver = t->make_driver(drivers::session_request{});
    REQUIRE(driver);
    auto first = driver->on_link_up(0);
    REQUIRE(first.size() == 1);
    const auto timer = std::get<drivers::arm_timer>(first[0]).id;
    auto second = driver->on_timer(timer, 200);
    REQUIRE_FALSE(second.empty());
    CHECK(std::get<drivers::send_bytes>(second[0]).data == "/?!\r\n");
  }
}

namespace {

// The option select a driver sends after the meter's identification `id` (the A1700's for an
// Elster driver; one proposing 19200 baud, Z = 6, for the IEC driver), and the reaction delay
// it waits before its first message.
std::pair<std::chrono::milliseconds, std::string> option_select(const meter_type& type, const char* id) {
  auto driver = type.make_driver(drivers::session_request{});
  auto up = driver->on_link_up(0);
  const auto reaction = std::get<drivers::arm_timer>(up.at(0));
  driver->on_timer(reaction.id, 100);
  auto armed = driver->on_bytes(id, 200);
  const auto timer = std::get<drivers::arm_timer>(armed.at(0)).id;
  return {reaction.after, std::get<drivers::send_bytes>(driver->on_timer(timer, 300).at(0)).data};
}

std::pair<std::chrono::milliseconds, std::string> elster_option_select(const meter_type& type) {
  return option_select(type, "/GEC5090100100400@000\r\n");
}

std::pair<std::chrono::milliseconds, std::string> iec_option_select(const meter_type& type) {
  return option_select(type, "/ABC6METER\r\n");
}

meter_type_definition definition(std::string name, std::string driver, std::map<std::string, driver_value> settings = {}) {
  return {std::move(name), std::move(driver), std::move(settings)};
}

std::string registry_error(const std::vector<meter_type_definition>& definitions) {
  try {
    meter_type_registry types(definitions);
  } catch (const meter_type_error& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("a type's settings reach its driver; registries are independent values", "[registry]") {
  // Option mode 1 and a 50 ms reaction delay for the A1700: its option select is ACK 0 5 1.
  const meter_type_registry changed({definition("ELSTERA1700", "elster-a1700",
                                                {{"option_mode", std::string("1")}, {"reaction_delay_ms", std::int64_t{50}}}),
                                     definition("ELSTERA1140", "elster-a1140")});
  const meter_type_registry builtin;
  CHECK(elster_option_select(*changed.find("ELSTERA1700")) ==
        std::make_pair(std::chrono::milliseconds(50), std::string("\x06" "051\r\n")));
  CHECK(elster_option_select(*changed.find("ELSTERA1140")) ==
        std::make_pair(std::chrono::milliseconds(200), std::string("\x06" "056\r\n")));
  // The other registry, built before or after, is not affected.
  CHECK(elster_option_select(*builtin.find("ELSTERA1700")).second == std::string("\x06" "056\r\n"));
  CHECK_FALSE(changed.supports("IEC62056-21")); // only what was defined

  // A 40 ms reaction delay and the speed capped at 4800 (Z = 4) for an IEC variant.
  const meter_type_registry iec({definition("IEC-SLOW", "iec62056-21",
                                            {{"reaction_delay_ms", std::int64_t{40}}, {"max_baud", std::int64_t{4800}}})});
  CHECK(iec_option_select(*iec.find("IEC-SLOW")) == std::make_pair(std::chrono::milliseconds(40), std::string("\x06" "041\r\n")));
  CHECK(iec_option_select(*builtin.find("IEC62056-21")) ==
        std::make_pair(std::chrono::milliseconds(200), std::string("\x06" "051\r\n")));
}

TEST_CASE("an added type: its driver, its line and its settings, the rest at the driver's defaults", "[registry]") {
  const meter_type_registry types({definition("A1700-BST", "elster-a1700",
                                              {{"clock_utc_offset_minutes", std::int64_t{60}},
                                               {"initial_baud", std::int64_t{9600}},
                                               {"char_format", std::string("8N1")}})});
  const auto* t = types.find("A1700-BST");
  REQUIRE(t);
  CHECK(t->driver == "elster-a1700");
  CHECK(t->initial_line == drivers::line_settings{9600, 8, 'N', 1});
  const auto c = elster_config_of(*t);
  CHECK(c.clock_utc_offset_minutes == 60);
  CHECK(c.security_level == 2);
  CHECK(c.register_count == 10); // the A1700's 507
  CHECK(c.response_timeout == std::chrono::milliseconds(5000));
  CHECK(t->integer("max_reauthentications") == 3);
  CHECK(elster_config_of(*meter_type_registry({definition("X", "elster-a1140")}).find("X")).register_count == 16);
}

TEST_CASE("the built-in definitions list every key of their driver at its default", "[registry]") {
  // DLMS-SN is the one built-in type that differs from its driver's defaults.
  const std::map<std::string, driver_value> dlms_sn = {{"transport", std::string("hdlc")},
                                                       {"referencing", std::string("sn")},
                                                       {"authentication", std::string("low")}};
  for (const auto& d : builtin_meter_types()) {
    INFO(d.name);
    const auto* keys = driver_keys(d.driver);
    REQUIRE(keys);
    CHECK(d.settings.size() == keys->size() + line_keys(d.driver).size());
    for (const auto* list : {keys, &line_keys(d.driver)})
      for (const auto& k : *list) {
        INFO(k.key);
        const auto differs = d.name == "DLMS-SN" ? dlms_sn.find(k.key) : dlms_sn.end();
        CHECK(d.settings.at(k.key) == (differs == dlms_sn.end() ? k.default_value : differs->second));
        CHECK(check_driver_value(k, d.settings.at(k.key)).empty());
        CHECK(check_driver_value(k, k.default_value).empty());
        CHECK_FALSE(k.doc.empty());
      }
  }
  CHECK(driver_names() == std::vector<std::string>{"iec62056-21", "elster-a1700", "elster-a1140", "dlms"});
  CHECK(driver_keys("modbus") == nullptr);
  // The line defaults are the driver's: IEC 62056-21 signs on at 300 7E1, DLMS lines are 9600 8N1.
  CHECK(std::get<std::int64_t>(line_keys("dlms").at(0).default_value) == 9600);
  CHECK(std::get<std::string>(line_keys("dlms").at(1).default_value) == "8N1");
  CHECK(std::get<std::int64_t>(line_keys("iec62056-21").at(0).default_value) == 300);
  CHECK(std::get<std::string>(line_keys("elster-a1700").at(1).default_value) == "7E1");
}

TEST_CASE("the registry refuses bad definitions, naming the type and the key", "[registry]") {
  CHECK(registry_error({definition("X", "modbus")}) ==
        "meter type \"X\": driver: unknown driver \"modbus\" (known: iec62056-21, elster-a1700, elster-a1140, dlms)");
  CHECK(registry_error({definition("X", "iec62056-21", {{"option_mode", std::string("1")}})}) ==
        "meter type \"X\": option_mode: not a key of driver iec62056-21");
  CHECK(registry_error({definition("X", "elster-a1700", {{"clock_utc_offset_minutes", std::int64_t{901}}})}) ==
        "meter type \"X\": clock_utc_offset_minutes: 901 is out of range -900..900");
  CHECK(registry_error({definition("X", "elster-a1700", {{"option_mode", std::string("7")}})}) ==
        "meter type \"X\": option_mode: \"7\" is not \"6\" or \"1\"");
  CHECK(registry_error({definition("X", "elster-a1700", {{"security_level", std::string("2")}})}) ==
        "meter type \"X\": security_level: expected an integer");
  CHECK(registry_error({definition("X", "elster-a1700", {{"initial_baud", std::int64_t{1234}}})}) ==
        "meter type \"X\": initial_baud: 1234 is not 300, 600, 1200, 2400, 4800, 9600 or 19200");
  for (const char* bad : {"7X1", "9E1", "7E3", "7e1", "7E", ""}) {
    INFO(bad);
    CHECK(registry_error({definition("X", "iec62056-21", {{"char_format", std::string(bad)}})}).rfind(
              "meter type \"X\": char_format: must be", 0) == 0);
  }
  CHECK(registry_error({definition("X", "iec62056-21"), definition("X", "elster-a1700")}) ==
        "meter type \"X\": name: defined twice");
  CHECK(registry_error({definition("", "iec62056-21")}) == "meter type: name: required, and not empty");
  CHECK(registry_error({definition("x", "iec62056-21"), definition("X", "iec62056-21")}).empty()); // exact spelling
}

namespace {

std::string sent_bytes(const drivers::actions& actions) {
  std::string out;
  for (const auto& a : actions)
    if (const auto* s = std::get_if<drivers::send_bytes>(&a))
      out += s->data;
  return out;
}

const drivers::finish* finish_of(const drivers::actions& actions) {
  for (const auto& a : actions)
    if (const auto* f = std::get_if<drivers::finish>(&a))
      return f;
  return nullptr;
}

} // namespace

TEST_CASE("the DLMS types start at 9600 8N1 and name their registers by OBIS code", "[registry][dlms]") {
  const meter_type_registry types;
  const auto* ln = types.find("DLMS");
  const auto* sn = types.find("DLMS-SN");
  REQUIRE(ln);
  REQUIRE(sn);
  for (const auto* t : {ln, sn}) {
    CHECK(t->initial_line == drivers::line_settings{9600, 8, 'N', 1});
    CHECK(t->register_names ==
          std::vector<std::string>{"kWh Import", "kWh Export", "kvarh Q1", "kvarh Q2", "kvarh Q3", "kvarh Q4"});
  }
  const auto c = dlms_config_of(*ln);
  CHECK(c.transport == drivers::dlms_transport::wrapper);
  CHECK(c.referencing == drivers::dlms_referencing::ln);
  CHECK(c.authentication == drivers::dlms::authentication::none);
  CHECK(c.client_address == 16);
  CHECK(c.server_logical_address == 1);
  CHECK(c.server_physical_address == 0);
  CHECK(c.server_address_size == 0);
  CHECK(c.hdlc_max_info_receive == 2030);
  CHECK(c.hdlc_max_info_transmit == 128);
  CHECK(c.max_pdu_size == 65535);
  CHECK(c.serial_number_obis == drivers::dlms::obis{0, 0, 96, 1, 0, 255});
  CHECK(c.clock_obis == drivers::dlms::obis{0, 0, 1, 0, 0, 255});
  CHECK(c.register_obis == std::vector<drivers::dlms::obis>{{1, 0, 1, 8, 0, 255}, {1, 0, 2, 8, 0, 255},
                                                           {1, 0, 5, 8, 0, 255}, {1, 0, 6, 8, 0, 255},
                                                           {1, 0, 7, 8, 0, 255}, {1, 0, 8, 8, 0, 255}});
  CHECK(c.load_profile_obis == drivers::dlms::obis{1, 0, 99, 1, 0, 255});
  CHECK_FALSE(c.event_log_obis.has_value());
  CHECK(c.clock_deviation == drivers::dlms::deviation_rule::blue_book);
  CHECK(c.clock_utc_offset_minutes == 0);
  CHECK(c.profile_clock_is_end);
  CHECK(c.client_system_title == std::string("\x4D\x54\x53\x00\x00\x00\x00\x01", 8));
  CHECK(c.response_timeout == std::chrono::milliseconds(5000));
  CHECK(c.max_repeats == 3);
  const auto s = dlms_config_of(*sn);
  CHECK(s.transport == drivers::dlms_transport::hdlc);
  CHECK(s.referencing == drivers::dlms_referencing::sn);
  CHECK(s.authentication == drivers::dlms::authentication::low);
}

TEST_CASE("an added DLMS type: every key reaches the configuration", "[registry][dlms]") {
  const meter_type_registry types({definition(
      "DLMS-X", "dlms",
      {{"transport", std::string("hdlc")},
       {"referencing", std::string("sn")},
       {"authentication", std::string("high-sha256")},
       {"client_address", std::int64_t{1}},
       {"server_logical_address", std::int64_t{200}},
       {"server_physical_address", std::int64_t{8821}},
       {"server_address_size", std::int64_t{4}},
       {"hdlc_max_info_receive", std::int64_t{1500}},
       {"hdlc_max_info_transmit", std::int64_t{62}},
       {"max_pdu_size", std::int64_t{1200}},
       {"serial_number_obis", std::string("0.0.42.0.0.255")},
       {"register_obis", std::string("1.0.1.8.0.255, 1-0:32.7.0.255,1.0.9.8.0.255")},
       {"load_profile_obis", std::string("")},
       {"event_log_obis", std::string("0.0.99.98.0.255")},
       {"clock_deviation", std::string("inverted")},
       {"clock_utc_offset_minutes", std::int64_t{60}},
       {"profile_clock", std::string("start")},
       {"client_system_title", std::string("0102030405060aFF")},
       {"response_timeout_ms", std::int64_t{700}},
       {"max_repeats", std::int64_t{0}},
       {"initial_baud", std::int64_t{2400}},
       {"char_format", std::string("8E1")}})});
  const auto* t = types.find("DLMS-X");
  REQUIRE(t);
  CHECK(t->initial_line == drivers::line_settings{2400, 8, 'E', 1});
  CHECK(t->register_names == std::vector<std::string>{"kWh Import", "1.0.32.7.0.255", "kVAh"});
  const auto c = dlms_config_of(*t);
  CHECK(c.transport == drivers::dlms_transport::hdlc);
  CHECK(c.referencing == drivers::dlms_referencing::sn);
  CHECK(c.authentication == drivers::dlms::authentication::high_sha256);
  CHECK(c.client_address == 1);
  CHECK(c.server_logical_address == 200);
  CHECK(c.server_physical_address == 8821);
  CHECK(c.server_address_size == 4);
  CHECK(c.hdlc_max_info_receive == 1500);
  CHECK(c.hdlc_max_info_transmit == 62);
  CHECK(c.max_pdu_size == 1200);
  CHECK(c.serial_number_obis == drivers::dlms::obis{0, 0, 42, 0, 0, 255});
  CHECK(c.register_obis ==
        std::vector<drivers::dlms::obis>{{1, 0, 1, 8, 0, 255}, {1, 0, 32, 7, 0, 255}, {1, 0, 9, 8, 0, 255}});
  CHECK_FALSE(c.load_profile_obis.has_value());
  CHECK(c.event_log_obis == drivers::dlms::obis{0, 0, 99, 98, 0, 255});
  CHECK(c.clock_deviation == drivers::dlms::deviation_rule::inverted);
  CHECK(c.clock_utc_offset_minutes == 60);
  CHECK_FALSE(c.profile_clock_is_end);
  CHECK(c.client_system_title == std::string("\x01\x02\x03\x04\x05\x06\x0A\xFF", 8));
  CHECK(c.response_timeout == std::chrono::milliseconds(700));
  CHECK(c.max_repeats == 0);
  // Keys left out take the driver's defaults, the line too.
  const auto d = dlms_config_of(*meter_type_registry({definition("D", "dlms")}).find("D"));
  CHECK(d.transport == drivers::dlms_transport::wrapper);
  CHECK(d.register_obis.size() == 6);
  CHECK(meter_type_registry({definition("D", "dlms")}).find("D")->initial_line == drivers::line_settings{9600, 8, 'N', 1});
  CHECK(meter_type_registry({definition("D", "dlms", {{"register_obis", std::string("")}})}).find("D")->register_names.empty());
}

TEST_CASE("the registry refuses DLMS settings that do not parse", "[registry][dlms]") {
  const auto error = [](const std::string& key, driver_value v) {
    return registry_error({definition("X", "dlms", {{key, std::move(v)}})});
  };
  CHECK(error("serial_number_obis", std::string("0.0.96.1")) ==
        "meter type \"X\": serial_number_obis: must be an OBIS code, e.g. \"0.0.96.1.0.255\"");
  CHECK(error("serial_number_obis", std::string("")).rfind("meter type \"X\": serial_number_obis: must be", 0) == 0);
  for (const char* bad : {"1.0.1.8.0.255,", "1.0.1.8.0.255,,1.0.2.8.0.255", "1.0.1.8.0.256", "kWh"}) {
    INFO(bad);
    CHECK(error("register_obis", std::string(bad)) ==
          "meter type \"X\": register_obis: must be OBIS codes separated by commas, e.g. "
          "\"1.0.1.8.0.255,1.0.2.8.0.255\"");
  }
  CHECK(error("load_profile_obis", std::string("1.0.99")) ==
        "meter type \"X\": load_profile_obis: must be an OBIS code, e.g. \"1.0.99.1.0.255\", or \"\" (none)");
  CHECK(error("event_log_obis", std::string("x")).rfind("meter type \"X\": event_log_obis: must be", 0) == 0);
  for (const char* bad : {"4D545300000000", "4D5453000000000100", "4D5453000000000G", ""}) {
    INFO(bad);
    CHECK(error("client_system_title", std::string(bad)) ==
          "meter type \"X\": client_system_title: must be 16 hex digits (8 bytes), e.g. \"4D54530000000001\"");
  }
  CHECK(error("authentication", std::string("high-gmac")) ==
        "meter type \"X\": authentication: \"high-gmac\" is not \"none\", \"low\", \"high-md5\", \"high-sha1\" or "
        "\"high-sha256\"");
  CHECK(error("server_address_size", std::int64_t{3}) == "meter type \"X\": server_address_size: 3 is not 0, 1, 2 or 4");
  CHECK(error("transport", std::string("udp")) == "meter type \"X\": transport: \"udp\" is not \"wrapper\" or \"hdlc\"");
  CHECK(error("client_address", std::int64_t{128}) == "meter type \"X\": client_address: 128 is out of range 1..127");
  CHECK(error("option_mode", std::string("6")) == "meter type \"X\": option_mode: not a key of driver dlms");
}

TEST_CASE("a DLMS type's driver: the AARQ in the wrapper, a password check, HDLC for modem calls", "[registry][dlms]") {
  const meter_type_registry types;
  // DLMS: the wrapper (client wPort 16, server wPort 1) around the LN AARQ with max PDU 65535.
  auto driver = types.find("DLMS")->make_driver(drivers::session_request{});
  CHECK(sent_bytes(driver->on_link_up(0)) ==
        std::string("\x00\x01\x00\x10\x00\x01\x00\x1F"
                    "\x60\x1D\xA1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x01\xBE\x10\x04\x0E\x01\x00\x00\x00\x06\x5F\x1F"
                    "\x04\x00\x00\x7E\x1F\xFF\xFF",
                    39));
  // DLMS-SN needs a password: nothing is sent.
  auto sn = types.find("DLMS-SN")->make_driver(drivers::session_request{});
  const auto up = sn->on_link_up(0);
  CHECK(sent_bytes(up).empty());
  REQUIRE(finish_of(up));
  CHECK(finish_of(up)->failure == drivers::failure_kind::permanent);
  CHECK(finish_of(up)->reason == "the meter type needs a password (low authentication)");
  // A modem call carries HDLC whatever the transport: the notes' SNRM for 128/128.
  const meter_type_registry small({definition("D", "dlms",
                                               {{"hdlc_max_info_receive", std::int64_t{128}},
                                                {"hdlc_max_info_transmit", std::int64_t{128}}})});
  drivers::session_request call;
  call.over_modem = true;
  CHECK(sent_bytes(small.find("D")->make_driver(call)->on_link_up(0)) ==
        std::string("\x7E\xA0\x07\x03\x21\x93\x0F\x01\x7E", 9));
}

TEST_CASE("a DLMS type with HLS sends a fresh 16-byte challenge in each session's AARQ", "[registry][dlms]") {
  const meter_type_registry types({definition("H", "dlms", {{"authentication", std::string("high-md5")}})});
  drivers::session_request r;
  r.password = "12345678";
  // calling-authentication-value AC 12 80 10 <16 bytes CtoS>
  const std::string marker("\xAC\x12\x80\x10", 4);
  const auto challenge = [&] {
    const auto aarq = sent_bytes(types.find("H")->make_driver(r)->on_link_up(0));
    const auto at = aarq.find(marker);
    REQUIRE(at != std::string::npos);
    REQUIRE(aarq.size() >= at + 4 + 16);
    // the mechanism is MD5 (3)
    CHECK(aarq.find(std::string("\x8B\x07\x60\x85\x74\x05\x08\x02\x03", 9)) != std::string::npos);
    return aarq.substr(at + 4, 16);
  };
  const auto a = challenge(), b = challenge();
  CHECK(a.size() == 16);
  CHECK(a != b); // 2^-128 chance of a false failure
}

// The meter type registry.
#include "drivers/registry.hpp"

#include <catch2/catch.hpp>

#include <variant>

using namespace mts;

TEST_CASE("the built-in registry lists the built-in meter types in their exact spelling", "[registry]") {
  const meter_type_registry types;
  CHECK(types.names() == std::vector<std::string>{"ELSTERA1700", "ELSTERA1140", "IEC62056-21"});
  CHECK(types.supports("IEC62056-21"));
  CHECK_FALSE(types.supports("iec62056-21"));
  CHECK_FALSE(types.supports("ELSTERA1800"));
  CHECK(types.find("nope") == nullptr);
  CHECK(types.find("ELSTERA1700")->driver == "elster-a1700");
  CHECK(types.find("ELSTERA1140")->driver == "elster-a1140");
  CHECK(types.find("IEC62056-21")->driver == "iec62056-21");
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
  for (const auto& d : builtin_meter_types()) {
    INFO(d.name);
    const auto* keys = driver_keys(d.driver);
    REQUIRE(keys);
    CHECK(d.settings.size() == keys->size() + line_keys().size());
    for (const auto* list : {keys, &line_keys()})
      for (const auto& k : *list) {
        INFO(k.key);
        CHECK(d.settings.at(k.key) == k.default_value);
        CHECK(check_driver_value(k, k.default_value).empty());
        CHECK_FALSE(k.doc.empty());
      }
  }
  CHECK(driver_names() == std::vector<std::string>{"iec62056-21", "elster-a1700", "elster-a1140"});
  CHECK(driver_keys("dlms") == nullptr);
}

TEST_CASE("the registry refuses bad definitions, naming the type and the key", "[registry]") {
  CHECK(registry_error({definition("X", "dlms")}) ==
        "meter type \"X\": driver: unknown driver \"dlms\" (known: iec62056-21, elster-a1700, elster-a1140)");
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

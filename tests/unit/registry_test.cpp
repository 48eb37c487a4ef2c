// The meter type registry.
#include "drivers/registry.hpp"
#include "config/settings.hpp"

#include <catch2/catch.hpp>

#include <variant>

using namespace mts;

TEST_CASE("the registry lists the supported meter types in their exact spelling", "[registry]") {
  CHECK(supported_meter_types() == std::vector<std::string>{"ELSTERA1700", "ELSTERA1140", "IEC62056-21"});
  CHECK(is_supported_meter_type("IEC62056-21"));
  CHECK_FALSE(is_supported_meter_type("iec62056-21"));
  CHECK_FALSE(is_supported_meter_type("ELSTERA1800"));
  CHECK(find_meter_type("nope") == nullptr);
}

TEST_CASE("IEC62056-21 has a driver that signs on at 300 baud 7E1", "[registry]") {
  const auto* iec = find_meter_type("IEC62056-21");
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
  for (const char* name : {"ELSTERA1700", "ELSTERA1140"}) {
    const auto* t = find_meter_type(name);
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

TEST_CASE("the Elster per-type settings reach the drivers", "[registry]") {
  // Option mode 1 for the A1700: its option select after the identification is ACK 0 5 1.
  auto s = load_settings(std::nullopt, {"elster_a1700.option_mode=1", "elster_a1700.reaction_delay_ms=50"});
  configure_meter_types(s);
  const auto option_select = [](const char* type) {
    auto driver = find_meter_type(type)->make_driver(drivers::session_request{});
    auto up = driver->on_link_up(0);
    const auto reaction = std::get<drivers::arm_timer>(up.at(0));
    driver->on_timer(reaction.id, 100);
    auto armed = driver->on_bytes("/GEC5090100100400@000\r\n", 200);
    const auto id = std::get<drivers::arm_timer>(armed.at(0)).id;
    return std::make_pair(reaction.after, std::get<drivers::send_bytes>(driver->on_timer(id, 300).at(0)).data);
  };
  CHECK(option_select("ELSTERA1700") == std::make_pair(std::chrono::milliseconds(50), std::string("\x06" "051\r\n")));
  CHECK(option_select("ELSTERA1140") == std::make_pair(std::chrono::milliseconds(200), std::string("\x06" "056\r\n")));
  configure_meter_types(load_settings(std::nullopt, {})); // back to the defaults
  CHECK(option_select("ELSTERA1700").second == std::string("\x06" "056\r\n"));
}

TEST_CASE("the IEC62056-21 settings reach its driver", "[registry]") {
  // A 40 ms reaction delay, and a meter proposing 19200 baud (Z = 6) capped at 4800 (Z = 4).
  auto s = load_settings(std::nullopt, {"iec62056_21.reaction_delay_ms=40", "iec62056_21.max_baud=4800"});
  configure_meter_types(s);
  const auto option_select = [] {
    auto driver = find_meter_type("IEC62056-21")->make_driver(drivers::session_request{});
    auto up = driver->on_link_up(0);
    const auto reaction = std::get<drivers::arm_timer>(up.at(0));
    driver->on_timer(reaction.id, 100);
    auto armed = driver->on_bytes("/ABC6METER\r\n", 200);
    const auto id = std::get<drivers::arm_timer>(armed.at(0)).id;
    return std::make_pair(reaction.after, std::get<drivers::send_bytes>(driver->on_timer(id, 300).at(0)).data);
  };
  CHECK(option_select() == std::make_pair(std::chrono::milliseconds(40), std::string("\x06" "041\r\n")));
  configure_meter_types(load_settings(std::nullopt, {})); // back to the defaults
  CHECK(option_select() == std::make_pair(std::chrono::milliseconds(200), std::string("\x06" "051\r\n")));
}

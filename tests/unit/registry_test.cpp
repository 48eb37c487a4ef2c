// The meter type registry.
#include "drivers/registry.hpp"

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

#pragma once
// A built-in meter type's driver for a fuzzed session request, played by driver_script.
#include "driver_script.hpp"
#include "drivers/registry.hpp"

#include <string>
#include <vector>

namespace mts::fuzzing {

// 2023-11-14 00:00:00 UTC: the day the scripted sessions run on.
inline constexpr unix_seconds script_midnight = 1'699'920'000;

inline void fuzz_meter_type(const std::vector<std::string>& type_names, const std::uint8_t* data, std::size_t size) {
  static const meter_type_registry registry;
  FuzzedDataProvider in(data, size);
  const auto& name = type_names[in.ConsumeIntegralInRange<std::size_t>(0, type_names.size() - 1)];
  const auto* type = registry.find(name);
  FUZZ_CHECK(type != nullptr, "a built-in type is missing");
  auto driver = type->make_driver(fuzzed_session_request(in, script_midnight));
  driver_script(*driver).play(in);
  (void)driver->readings();
}

} // namespace mts::fuzzing

#include "drivers/registry.hpp"

#include <algorithm>

namespace mts {

const std::vector<std::string>& supported_meter_types() {
  static const std::vector<std::string> types = {"ELSTERA1700", "ELSTERA1140", "IEC62056-21"};
  return types;
}

bool is_supported_meter_type(const std::string& meter_type) {
  const auto& types = supported_meter_types();
  return std::find(types.begin(), types.end(), meter_type) != types.end();
}

} // namespace mts

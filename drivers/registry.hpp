#pragma once
// The meter types the product supports: each with its protocol driver, the line settings a
// session starts with, and the register and channel names its driver reports. A type whose
// driver is not built yet is still listed (requests for it are accepted and queued).
#include "drivers/driver.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mts {

struct meter_type_info {
  std::string name; // exact spelling in the API
  drivers::line_settings initial_line;
  // Empty while the type's driver does not exist yet.
  std::function<std::unique_ptr<drivers::meter_driver>(const drivers::session_request&)> make_driver;
  std::vector<std::string> register_names;
};

// Exact spellings, in the order error messages list them.
const std::vector<std::string>& supported_meter_types();

bool is_supported_meter_type(const std::string& meter_type);

// nullptr for an unsupported type.
const meter_type_info* find_meter_type(const std::string& meter_type);

struct settings;
// Applies the operator's per-type settings ([elster_a1700], [elster_a1140]) to the drivers made
// from now on. Call once at start-up, before tests run; without it the documented defaults
// apply.
void configure_meter_types(const settings& s);

} // namespace mts

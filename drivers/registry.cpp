#include "drivers/registry.hpp"

#include "drivers/elster.hpp"
#include "drivers/iec62056_21.hpp"

#include <algorithm>

namespace mts {
namespace {

const std::vector<meter_type_info>& registry() {
  static const std::vector<meter_type_info> types = [] {
    // The names every energy-register driver reports, in the API's form.
    const std::vector<std::string> energy = {"kWh Import", "kWh Export", "kvarh Q1",
                                             "kvarh Q2",   "kvarh Q3",   "kvarh Q4"};
    std::vector<meter_type_info> out;
    // The Elster drivers also report the apparent energy register (docs/elster.md).
    std::vector<std::string> elster_names = energy;
    elster_names.push_back("kVAh");
    out.push_back({"ELSTERA1700", drivers::elster_initial_line(),
                   [](const drivers::session_request& request) {
                     return drivers::make_elster_driver(request, drivers::elster_a1700_config());
                   },
                   elster_names});
    out.push_back({"ELSTERA1140", drivers::elster_initial_line(),
                   [](const drivers::session_request& request) {
                     return drivers::make_elster_driver(request, drivers::elster_a1140_config());
                   },
                   elster_names});
    out.push_back({"IEC62056-21", drivers::iec62056_21_initial_line(),
                   [](const drivers::session_request& request) {
                     return drivers::make_iec62056_21_driver(request, drivers::iec62056_21_config{});
                   },
                   energy});
    return out;
  }();
  return types;
}

} // namespace

const std::vector<std::string>& supported_meter_types() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& t : registry())
      out.push_back(t.name);
    return out;
  }();
  return names;
}

bool is_supported_meter_type(const std::string& meter_type) { return find_meter_type(meter_type) != nullptr; }

const meter_type_info* find_meter_type(const std::string& meter_type) {
  const auto& types = registry();
  auto it = std::find_if(types.begin(), types.end(), [&](const auto& t) { return t.name == meter_type; });
  return it == types.end() ? nullptr : &*it;
}

} // namespace mts

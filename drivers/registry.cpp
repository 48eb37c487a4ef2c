#include "drivers/registry.hpp"

#include "config/settings.hpp"
#include "drivers/elster.hpp"
#include "drivers/iec62056_21.hpp"

#include <algorithm>
#include <mutex>

namespace mts {
namespace {

// The per-type driver settings in force (configure_meter_types), read by the driver factories.
struct driver_configs {
  std::mutex mutex;
  drivers::elster_config a1700 = drivers::elster_a1700_config();
  drivers::elster_config a1140 = drivers::elster_a1140_config();
  drivers::iec62056_21_config iec;
};

driver_configs& configs_in_force() {
  static driver_configs configs;
  return configs;
}

// The session timing every IEC-framed driver takes from its section.
template <class Section>
void with_session_settings(drivers::iec_session_settings& c, const Section& s) {
  c.response_timeout = std::chrono::milliseconds(s.response_timeout_ms);
  c.baud_switch_delay = std::chrono::milliseconds(s.baud_switch_delay_ms);
  c.reaction_delay = std::chrono::milliseconds(s.reaction_delay_ms);
  c.max_repeats = static_cast<int>(s.max_repeats);
}

drivers::iec62056_21_config with_settings(drivers::iec62056_21_config c, const iec62056_21_settings& s) {
  with_session_settings(c, s);
  c.fast_reaction_delay = std::chrono::milliseconds(s.fast_reaction_delay_ms);
  c.max_baud = static_cast<int>(s.max_baud);
  return c;
}

// A driver factory that takes its type's configuration in force when the test starts.
template <class Config>
auto in_force_factory(Config driver_configs::*config,
                      std::unique_ptr<drivers::meter_driver> (*make)(const drivers::session_request&, const Config&)) {
  return [config, make](const drivers::session_request& request) {
    auto& in_force = configs_in_force();
    std::lock_guard<std::mutex> lock(in_force.mutex);
    return make(request, in_force.*config);
  };
}

drivers::elster_config with_settings(drivers::elster_config c, const elster_type_settings& s) {
  c.option_mode = s.option_mode.at(0); // "6" or "1" (checked when loaded)
  c.security_level = static_cast<int>(s.security_level);
  c.clock_utc_offset_minutes = static_cast<int>(s.clock_utc_offset_minutes);
  c.register_scale_exponent = static_cast<int>(s.register_scale_exponent);
  c.profile_scale_exponent = static_cast<int>(s.profile_scale_exponent);
  with_session_settings(c, s);
  c.max_reauthentications = static_cast<int>(s.max_reauthentications);
  return c;
}

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
                   in_force_factory(&driver_configs::a1700, drivers::make_elster_driver), elster_names});
    out.push_back({"ELSTERA1140", drivers::elster_initial_line(),
                   in_force_factory(&driver_configs::a1140, drivers::make_elster_driver), elster_names});
    out.push_back({"IEC62056-21", drivers::iec62056_21_initial_line(),
                   in_force_factory(&driver_configs::iec, drivers::make_iec62056_21_driver), energy});
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

void configure_meter_types(const settings& s) {
  auto& in_force = configs_in_force();
  std::lock_guard<std::mutex> lock(in_force.mutex);
  in_force.a1700 = with_settings(drivers::elster_a1700_config(), s.elster_a1700);
  in_force.a1140 = with_settings(drivers::elster_a1140_config(), s.elster_a1140);
  in_force.iec = with_settings(drivers::iec62056_21_config{}, s.iec62056_21);
}

} // namespace mts

#pragma once
// The meter types a server supports, as data. A meter type is a name (the API's meterType,
// exact spelling), a driver (the protocol state machine it runs), the line a session starts
// on, and the settings of its driver. The built-in types IEC62056-21, ELSTERA1700,
// ELSTERA1140, DLMS and DLMS-SN are definitions like any other (builtin_meter_types()); the configuration's
// [[meter_type]] tables change them and add more (config/settings.hpp).
//
// meter_type_registry is a value: built once from the definitions and handed to whoever needs
// it (validation, the scheduler, the test actors, the simulator). There is no process-wide
// registry; a reload builds a new value and running tests keep the one they started with.
//
// Decisions:
// - Each driver declares its keys once (driver_keys): name, default, allowed values, one line
//   of documentation. Loading, validation, docs tests and the simulator all walk that table.
// - Keys a definition leaves out take the driver's defaults (not another type's values).
// - Every type has the line keys initial_baud and char_format, with its driver's defaults
//   (300 "7E1" for the IEC 62056-21 drivers, 9600 "8N1" for dlms).
#include "drivers/driver.hpp"
#include "drivers/dlms.hpp"
#include "drivers/elster.hpp"
#include "drivers/iec62056_21.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mts {

// A driver setting's value: an integer or a string.
using driver_value = std::variant<std::int64_t, std::string>;

// One key of a driver's settings.
struct driver_key {
  std::string key;
  driver_value default_value;
  std::int64_t min = 0; // integers: the allowed range
  std::int64_t max = 0;
  std::vector<std::string> choices; // when not empty: the allowed values, as text
  std::string doc;                  // one line
  std::string range;                // the allowed values as text when min..max and choices don't say it
  std::string (*check)(const driver_value&) = nullptr; // a further rule: "" or the problem
};

// The drivers, by their configuration names ("iec62056-21", "elster-a1700", "elster-a1140", "dlms").
const std::vector<std::string>& driver_names();
// The keys of a driver (without the line keys); nullptr for an unknown driver.
const std::vector<driver_key>* driver_keys(std::string_view driver);
// The line keys every meter type has: initial_baud and char_format (defaults 300, "7E1").
const std::vector<driver_key>& line_keys();
// The same keys with a driver's own defaults (dlms: 9600, "8N1").
const std::vector<driver_key>& line_keys(std::string_view driver);
// "" when `value` is allowed for `key`, else the problem ("1000 is out of range -900..900").
std::string check_driver_value(const driver_key& key, const driver_value& value);
// The allowed values as text: "-900..900", "\"6\" or \"1\"".
std::string allowed_text(const driver_key& key);
// 42 -> "42", "6" -> "6".
std::string driver_value_text(const driver_value& value);

// A meter type as configured: a [[meter_type]] table.
struct meter_type_definition {
  std::string name;   // meterType, exact spelling
  std::string driver; // one of driver_names()
  // The keys given (line keys and driver keys); the others take their defaults.
  std::map<std::string, driver_value> settings;
  bool operator==(const meter_type_definition& o) const {
    return name == o.name && driver == o.driver && settings == o.settings;
  }
  bool operator!=(const meter_type_definition& o) const { return !(*this == o); }
};

// The built-in types, each with every key of its driver: ELSTERA1700, ELSTERA1140, IEC62056-21,
// DLMS at the defaults, DLMS-SN with transport "hdlc", referencing "sn", authentication "low".
std::vector<meter_type_definition> builtin_meter_types();

// A meter type ready to run.
struct meter_type {
  std::string name;
  std::string driver;
  drivers::line_settings initial_line;
  std::map<std::string, driver_value> settings; // every key of the driver, effective values
  std::vector<std::string> register_names;      // the names its driver reports
  std::function<std::unique_ptr<drivers::meter_driver>(const drivers::session_request&)> make_driver;
  std::int64_t integer(const std::string& key) const; // an integer setting (throws if none)
};

// The driver configurations a type's settings make (also what the simulator predicts with).
drivers::elster_config elster_config_of(const meter_type& type);
drivers::iec62056_21_config iec62056_21_config_of(const meter_type& type);
drivers::dlms_config dlms_config_of(const meter_type& type);

// A definition the registry refuses; what() names the type and the key.
struct meter_type_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

class meter_type_registry {
public:
  // The built-in types.
  meter_type_registry();
  // Throws meter_type_error for an unknown driver or key, a value not allowed, or two types
  // with one name.
  explicit meter_type_registry(const std::vector<meter_type_definition>& definitions);

  // nullptr for an unknown name (names are exact: no case folding).
  const meter_type* find(std::string_view name) const;
  bool supports(std::string_view name) const { return find(name) != nullptr; }
  // The names, in definition order (the order error messages list them).
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<meter_type>& types() const { return types_; }

private:
  std::vector<meter_type> types_;
  std::vector<std::string> names_;
};

} // namespace mts

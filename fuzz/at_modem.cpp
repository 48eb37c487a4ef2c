// The AT modem dialogue (drivers/at_modem.hpp) around the IEC 62056-21 driver, as a state
// machine under fuzzed events (driver_script.hpp), including the test's deadline cutting the
// call off; the call's character format is 8N1 (transparent) or 7E1 (software parity).
#include "driver_of_type.hpp"
#include "drivers/at_modem.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts;
  static const meter_type_registry registry;
  FuzzedDataProvider in(data, size);
  drivers::at_modem_config config;
  config.number = in.ConsumeRandomLengthString(24);
  config.dial_prefix = in.ConsumeBool() ? "9," : "";
  config.init_strings = {"ATE0"};
  if (in.ConsumeBool())
    config.init_strings.push_back("AT+CBST=7,0,1");
  if (in.ConsumeBool())
    config.call_format = drivers::line_settings{9600, 7, 'E', 1};
  auto inner = registry.find("IEC62056-21")->make_driver(fuzzing::fuzzed_session_request(in, fuzzing::script_midnight));
  auto modem = drivers::make_at_modem_driver(std::move(inner), config);
  auto* raw = modem.get();
  fuzzing::driver_script(*modem, [raw](drivers::unix_ms now) {
    return raw->abort(drivers::finish{drivers::failure_kind::transient, "test deadline"}, now);
  }).play(in);
  return 0;
}

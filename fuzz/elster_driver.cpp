// The Elster A1700 and A1140 driver as a state machine under fuzzed events (driver_script.hpp).
#include "driver_of_type.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mts::fuzzing::fuzz_meter_type({"ELSTERA1700", "ELSTERA1140"}, data, size);
  return 0;
}

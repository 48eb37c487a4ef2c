// The IEC 62056-21 mode C driver as a state machine under fuzzed events (driver_script.hpp).
#include "driver_of_type.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mts::fuzzing::fuzz_meter_type({"IEC62056-21"}, data, size);
  return 0;
}

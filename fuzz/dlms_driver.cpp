// The DLMS/COSEM driver as a state machine under fuzzed events (driver_script.hpp): DLMS (LN
// referencing over the TCP wrapper; over HDLC when the session is a modem call) and DLMS-SN
// (SN referencing, HDLC, low-level authentication).
#include "driver_of_type.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mts::fuzzing::fuzz_meter_type({"DLMS", "DLMS-SN"}, data, size);
  return 0;
}

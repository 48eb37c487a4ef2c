// The simulated meters (sim/meter_session.hpp: IEC 62056-21, Elster A1700/A1140, DLMS over
// the wrapper or HDLC) take bytes from whatever connects to mts-sim: each built-in type's
// meter session under fuzzed events (driver_script.hpp). A meter closes a silent connection
// by its inactivity timeout.
#include "driver_script.hpp"
#include "drivers/registry.hpp"
#include "sim/iec_meter.hpp"
#include "sim/meter_session.hpp"
#include "sim/sim_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts;
  static const meter_type_registry registry;
  FuzzedDataProvider in(data, size);
  const auto& types = registry.types();
  const auto& type = types[in.ConsumeIntegralInRange<std::size_t>(0, types.size() - 1)];
  auto identity = sim::generated_identity(type, in.ConsumeIntegral<std::uint8_t>(), 0);
  sim::iec_meter_config config;
  config.pinned_now = 1'700'000'000; // 2023-11-14 22:13:20 UTC
  auto meter = sim::make_meter_session(identity, {}, config, in.ConsumeIntegralInRange<std::uint64_t>(1, 4),
                                       in.ConsumeBool());
  fuzzing::event_script<sim::meter_session>(*meter).play(in);
  return 0;
}

// The simulated meters (sim/meter_session.hpp: IEC 62056-21, Elster A1700/A1140, DLMS over
// the wrapper or HDLC) take bytes from whatever connects to mts-sim: each built-in type's
// meter session under fuzzed events (driver_script.hpp). A meter closes a silent connection
// by its inactivity timeout.
//
// The meters live in their first 60 days of data (true time from 2000-01-01, sim::data_epoch,
// to 60 days after, chosen by the fuzzer): a load-profile read then covers at most 60 days.
// At a later date one "all days" read (Elster 551 FFFF) makes up to 4,000 days of profile, a
// second of work per input under the sanitizers, and such inputs took most of the run
// (docs/testing.md); every branch of the profile code is still reached with 60.
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
  constexpr unix_seconds data_days = 60;
  config.pinned_now = sim::data_epoch + in.ConsumeIntegralInRange<unix_seconds>(0, data_days * 86'400);
  auto meter = sim::make_meter_session(identity, {}, config, in.ConsumeIntegralInRange<std::uint64_t>(1, 4),
                                       in.ConsumeBool());
  fuzzing::event_script<sim::meter_session>(*meter).play(in);
  return 0;
}

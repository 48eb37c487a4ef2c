#pragma once
// One simulated meter's side of one connection, whatever its protocol: the interface the
// serving side (sim/server.*) drives, implemented by sim::iec_meter, sim::elster_meter and
// sim::dlms_meter.
//
// Decisions:
// - Same events and actions as a client driver (drivers/driver.hpp): the link coming up,
//   bytes, the meter's single timer and the link going down, each with the current time;
//   finish means "close the link".
// - The state machine is picked by the identity's type (make_meter_session); the timing
//   settings (reaction delay, inactivity timeout, pinned clock) are common to all types.
// - session_number (counted per meter by the server, from 1) makes what differs between
//   sessions deterministic: the Elster P0 seed, the DLMS HLS challenge. The IEC meter does not
//   use it.
#include "drivers/driver.hpp"
#include "sim/meter_data.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace mts::sim {

struct iec_meter_config;

class meter_session {
public:
  virtual ~meter_session() = default;
  virtual drivers::actions on_link_up(drivers::unix_ms now) = 0;
  virtual drivers::actions on_bytes(std::string_view data, drivers::unix_ms now) = 0;
  virtual drivers::actions on_timer(std::uint64_t id, drivers::unix_ms now) = 0;
  virtual drivers::actions on_link_down(drivers::unix_ms now) = 0;
  // The line the meter is at now (the server paces replies by its baud).
  virtual const drivers::line_settings& line() const = 0;
  virtual bool closed() const = 0;
};

// Queues `bytes` to send, honouring the drop_after_bytes fault: `sent` counts the bytes sent
// this session; when they reach `drop_after`, only the bytes up to it go out and the result
// is true (the caller then closes the link).
bool send_until_drop(drivers::actions& out, std::string bytes, std::size_t& sent,
                     const std::optional<std::size_t>& drop_after);

// The session of a meter speaking identity.driver (a simulated driver: sim/sim_config.hpp
// check_simulated_driver). `config` carries the common timing; the IEC meter also its own
// settings (identification, block size, maximum baud). over_modem: the session is a modem call
// (a DLMS meter then speaks HDLC whatever its type's transport).
std::unique_ptr<meter_session> make_meter_session(const meter_identity& identity, const meter_faults& faults,
                                                  const iec_meter_config& config, std::uint64_t session_number,
                                                  bool over_modem = false);

} // namespace mts::sim

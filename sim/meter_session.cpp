#include "sim/meter_session.hpp"

#include "sim/dlms_meter.hpp"
#include "sim/elster_meter.hpp"
#include "sim/iec_meter.hpp"

namespace mts::sim {

std::unique_ptr<meter_session> make_meter_session(const meter_identity& identity, const meter_faults& faults,
                                                  const iec_meter_config& config, std::uint64_t session_number,
                                                  bool over_modem) {
  if (is_dlms_driver(identity.driver)) {
    dlms_meter_config c;
    static_cast<framed_meter_timing&>(c) = config; // the common timing
    c.session_number = session_number;
    c.over_modem = over_modem;
    return std::make_unique<dlms_meter>(identity, faults, c);
  }
  if (is_elster_driver(identity.driver)) {
    elster_meter_config c;
    static_cast<framed_meter_timing&>(c) = config; // the common timing
    c.session_number = session_number;
    return std::make_unique<elster_meter>(identity, faults, c);
  }
  return std::make_unique<iec_meter>(identity, faults, config);
}

drivers::meter_readings expected_readings(const meter_identity& identity, const meter_faults& faults,
                                          const drivers::session_request& request, unix_seconds now) {
  if (is_elster_driver(identity.driver))
    return expected_elster(identity, faults, request, now).readings;
  if (is_dlms_driver(identity.driver))
    return expected_dlms(identity, faults, request, now).readings;
  return expected_iec_readings(identity, faults, request, now);
}

bool send_until_drop(drivers::actions& out, std::string bytes, std::size_t& sent,
                     const std::optional<std::size_t>& drop_after) {
  const bool drop = drop_after && sent + bytes.size() >= *drop_after;
  if (drop)
    bytes.resize(*drop_after > sent ? *drop_after - sent : 0);
  sent += bytes.size();
  if (!bytes.empty() || !drop)
    out.push_back(drivers::send_bytes{std::move(bytes)});
  return drop;
}

} // namespace mts::sim

#pragma once
// Turns what a driver read into a test's outcome: the result (SUCCESS, PARTIAL SUCCESS or
// ERROR: <details>) and the readings in the API's JSON form (DECISIONS.md "Test outcome").
#include "common/model.hpp"
#include "drivers/driver.hpp"

#include <optional>
#include <string>

namespace mts::drivers {

// "2014-10-31T23:33:32 -203s": the meter's time and its offset from the true time.
std::string format_meter_time(unix_seconds meter_time, unix_seconds true_time);

// The items a test asks for: serial number, meter time, status events, registers, and the
// survey when the request has a survey range. SUCCESS: all were read and the session ended as
// planned. PARTIAL SUCCESS: some were read. ERROR: <reason>: none was read, or the serial
// number did not match (the test then reads nothing more).
// Fields the test asked for but did not get read carry "ERROR: <reason>" where the API allows
// it (serialNumber, meterTime).
test_outcome make_outcome(test_id id, const session_request& request, const meter_readings& readings,
                          const finish& end, unix_seconds test_end_time);

} // namespace mts::drivers

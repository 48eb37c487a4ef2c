#pragma once
// What `mts-sim` serves and predicts: meter identities generated from a seed, fault settings
// from the command line or a TOML file, the JSON line printed per served meter, and the result
// the server's test-status must report for a test request (`mts-sim expect`).
//
// Decisions:
// - Meter types come from a registry (drivers/registry.hpp): the built-in ones, or those of an
//   mts configuration file's [[meter_type]] tables (`--meter-types FILE`). A meter is
//   simulated by its type's driver: iec62056-21 (sim/iec_meter.hpp), elster-a1700 and
//   elster-a1140 (sim/elster_meter.hpp), dlms (sim/dlms_meter.hpp: the identity carries the
//   type's DLMS settings and line). A type of another driver is refused with "meter type
//   X (driver D) is not simulated yet", an unknown name with "unknown meter type X".
// - A meter of a type with clock_utc_offset_minutes M keeps its clock at UTC + M (plus its
//   drift clock_offset_seconds), as a real meter of that type does: a server configured with
//   the same type reports the drift alone as the meterTime offset.
// - expect predicts the type's driver with the type's settings; it refuses a type whose scale
//   exponents are not the defaults (the values would need the driver's own arithmetic).
// - An Elster meter's password has 8 characters (the generated 8 hex digits are; a file's or
//   expect's password of another length is an error); empty accepts any.
// - Generated identity of meter `index` (0-based) for seed S: every meter keeps the seed S;
//   serial = 8 digits, 10000000 + (h(S) + index) mod 90000000 (distinct for up to 90 million
//   meters of one seed); outstation address = index + 1 as text; password = 8 upper-case hex
//   digits of h(S, index); clock offset = h(S, index) mod 241 - 120 seconds. h is splitmix64.
// - Fault names are meter_faults' member names, the same on the command line
//   (`--fault NAME[=VALUE]`) and as [[meter]] keys in the TOML file. Boolean faults take no
//   value on the command line (or =true / =false); survey_gaps takes a comma-separated list of
//   YYYY-MM-DDTHH:mm:ssZ half-hour starts; error_register a number (0x... for hex; the Elster
//   meters answer it as system status 724); password_timeout_after_reads N (Elster only: ERR5
//   after N good reads until the next right P2); DLMS only: reject_association,
//   access_error_obis (an OBIS code, stored as "a.b.c.d.e.f"), block_stop_after N,
//   frame_reject, refuse_range, max_pdu (0 or 128..65535), max_info (0 or 16..2030).
// - TOML file: top-level keys address, start_time, seed (the default for the meters); one
//   [[meter]] table per meter (or per `count` meters on consecutive ports) with type, port,
//   count, seed, serial, outstation_address, password, clock_offset_seconds and the fault
//   keys. Unset identity fields are generated from (seed, position of the meter in the file).
//   Unknown keys and wrong types are errors that name the key ("meter[2].pace_baud: ...").
// - The expected result (expect): the request's survey covers surveyDays whole days from
//   surveyDate 00:00 UTC (surveyDate absent: the UTC date of `now` minus surveyDays), clipped
//   at `now`. How the session ends: refuse_connection -> transient "connection refused";
//   silent, or an outstation address the meter does not answer to -> transient "no answer to
//   sign-on"; reject_password or a wrong password -> permanent "password rejected"; another
//   serial than requested -> permanent "Serial number mismatch"; drop_mid_profile with a
//   survey requested -> transient "line dropped"; otherwise success. Elster meters
//   (sim/elster_meter.hpp expected_elster): a request without a password logs in with
//   "00000000"; the reported serial is 798's normalised text; password_timeout_after_reads N
//   -> transient "password session keeps timing out" when the session's R1 reads exceed 4N
//   (the driver re-authenticates at most 3 times), keeping what was read before; otherwise
//   the timeouts change nothing. DLMS meters (sim/dlms_meter.hpp expected_dlms): the results of
//   docs/dlms.md; a remoteAddress that is not host:port is a modem call (HDLC). These are the
//   driver's
//   own reasons (the server may add retry wording). drop_after_bytes cannot be predicted and
//   is refused by expect. The printed object has result, serialNumber, statusEvents,
//   registerValues (without timestamps) and surveyData, each only when make_outcome gives it;
//   meterTime and the register timestamps depend on the moment the test runs and are left out.
#include "drivers/registry.hpp"
#include "sim/meter_data.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mts::sim {

struct sim_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline constexpr const char* simulated_type = "IEC62056-21";

// The type of that name; throws sim_error when it is unknown or its driver is not simulated.
const meter_type& simulated_type_of(const meter_type_registry& types, const std::string& type);
// Throws sim_error unless meters of `driver` are simulated (`type` names it in the message).
void check_simulated_driver(const std::string& driver, const std::string& type);
// Throws sim_error when expect cannot predict a test of this type (see above).
void check_predictable(const meter_type& type);
// Throws sim_error when `password` cannot be the password of this meter (an Elster password
// has 8 characters; empty means "accepts any").
void check_password(const meter_identity& identity, const std::string& password);

std::uint64_t splitmix64(std::uint64_t x);

meter_identity generated_identity(const meter_type& type, std::uint64_t seed, std::size_t index);

// "NAME" or "NAME=VALUE" (see above). Throws sim_error naming the fault.
void apply_fault(meter_faults& faults, std::string_view spec);

struct sim_meter {
  meter_identity identity;
  meter_faults faults;
  std::uint16_t port = 0; // 0: any free port
};

struct sim_config {
  std::string address = "127.0.0.1";
  std::optional<unix_seconds> start_time;
  std::vector<sim_meter> meters;
};

// Reads a TOML file (see above). Throws sim_error "<path>: <key>: <problem>".
// The meters' types are looked up in `types`.
sim_config load_config_file(const std::string& path, const meter_type_registry& types);

// The JSON line printed for a served meter: meterType, remoteAddress, outstationAddress,
// serialNumber, password (the test-request fields), then port, seed, clockOffsetSeconds.
std::string meter_json_line(const meter_identity& identity, const std::string& address, std::uint16_t port);

// The session request a test request (JSON object text) makes at `now`. Throws sim_error.
drivers::session_request session_request_from_json(std::string_view request_json, unix_seconds now);

// The JSON object test-status must report (see above). Throws sim_error.
std::string expected_result_json(const meter_identity& identity, const meter_faults& faults,
                                 std::string_view request_json, unix_seconds now);

} // namespace mts::sim

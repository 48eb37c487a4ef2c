#pragma once
// The simulated meters' data: a deterministic model of what a meter measured, computed from
// the meter's identity alone (no global random state, no iteration from an epoch), plus the
// fault settings and the readings a correct client must report for a session.
//
// Decisions:
// - Everything is integer watt-hours (var-hours) internally; the wire text and the expected
//   readings both come from the same integers, written with 3 decimals in k-units
//   ("012345.678"), so they agree exactly (a double parsed from "x.yyy" equals wh / 1000.0).
// - Time is the METER's clock (true time + clock_offset_seconds): the meter labels its profile
//   and computes its registers in its own time, as a real meter with a wrong clock does.
// - Data starts at 2000-01-01T00:00:00Z (the "installation"); before it the registers stand
//   at their base value and the profile is empty.
// - Half hour k (counted from the installation) of channel c has the closed form
//     cumulative(k) = base + (k div 48) * day_total + prefix(k mod 48) + wobble(k)
//   where shape(i) (i = half hour of the day) is the channel's daily shape in Wh, prefix(j) is
//   the sum of shape(0..j-1), day_total = prefix(48) and wobble(k) = hash(seed, serial,
//   channel, k) mod (min shape / 4 + 1). The interval energy is defined as cumulative(k+1) -
//   cumulative(k) = shape(k mod 48) + wobble(k+1) - wobble(k) >= 0, so registers only grow
//   and the survey always sums to the register differences. Any value is O(1).
// - Within a half hour the register grows linearly (integer Wh).
// - Channels (register, profile id, units): kWh Import 1.8.0 / 1.29, kWh Export 2.8.0 / 2.29,
//   kvarh Q1..Q4 5.8.0..8.8.0 / 5.29..8.29. Import follows a domestic shape (about 0.06..2.0 kWh a
//   half hour, scaled 50..100% per meter); one meter in three exports (a daytime solar
//   shape, zero at night); Q1 is 30% and Q4 10% of the import shape; Q2 and Q3 stay zero.
// - Power failures (fault setting power_failure_every_days = N): each day whose hash is 0
//   mod N has one failure, flagged (VDEW status 0x80) on the half hour chosen by the hash.
// - Apparent energy (kVAh, Elster register 507 only; not a profile channel, so channel_count and
//   the IEC meter stay at six channels): va(t) = isqrt(import(t)^2 + (Q1(t) + Q4(t))^2), whole
//   Wh, which grows whenever its inputs grow.
// - Gaps (fault setting survey_gaps): listed half-hour starts (meter time) have no profile
//   entry. The registers are unaffected.
#include "drivers/dlms.hpp"
#include "drivers/driver.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mts::sim {

struct meter_identity {
  std::string type = "IEC62056-21"; // the meterType it is served (and tested) as
  // What the meter speaks and how its clock is kept, from its type (sim/sim_config.hpp
  // generated_identity): the driver of the type, and the type's clock_utc_offset_minutes
  // (a meter of a type whose clock runs at UTC+60 keeps its clock at UTC+60, plus its drift).
  std::string driver = "iec62056-21";
  std::int64_t utc_offset_minutes = 0;
  std::string serial;
  std::string outstation_address;
  std::string password; // empty: any password is accepted
  std::uint64_t seed = 0;
  std::int64_t clock_offset_seconds = 0; // meter clock = true time + type's UTC offset + this drift
  // The line the type's sessions start on (the DLMS meter's line; the character format of the
  // meter on a modem call). Absent: 7E1 (IEC 62056-21 and Elster).
  std::optional<drivers::line_settings> line;
  // DLMS meters (driver "dlms"): the type's settings (transport, referencing, authentication,
  // addresses, OBIS codes, clock conventions: sim/dlms_meter.hpp). Absent: the built-in "DLMS".
  std::optional<drivers::dlms_config> dlms;
};

// Faults injected per meter. Pacing and refusing the connection are the I/O layer's job; the
// flags live here so a meter is configured in one place.
struct meter_faults {
  bool refuse_connection = false;   // I/O layer: the connection is refused
  bool silent = false;              // accept and never answer
  int pace_baud = 0;                // I/O layer: bytes leave at this rate (0: at once)
  std::optional<std::size_t> drop_after_bytes; // close once this many bytes were sent
  bool drop_mid_profile = false;    // close after the first load-profile block
  int corrupt_bcc_every = 0;        // every k-th block sent has a wrong BCC (repeats are good)
  std::string garbage_before_reply; // sent before every reply (no '/', SOH, STX, ACK, NAK)
  bool reject_password = false;     // NAK every password
  std::optional<std::string> reported_serial; // answered instead of the real serial
  std::vector<unix_seconds> survey_gaps;      // half-hour starts (meter time) left out
  int power_failure_every_days = 0; // 0: none
  std::uint32_t error_register = 0; // F.F value (hex bit field); Elster: system status 724
  // Elster only: after this many successful R1 replies every R1 answers (ERR5) until the
  // right P2 hash comes again; the count then restarts (0: off).
  int password_timeout_after_reads = 0;
  // DLMS only (sim/dlms_meter.hpp):
  bool reject_association = false;   // AARE rejected-permanent, diagnostic 1, whatever the password
  std::string access_error_obis;     // that object (OBIS text) answers data-access-result 4
  int block_stop_after = 0;          // a block transfer answers no request after its N-th block (0: off)
  bool frame_reject = false;         // HDLC: FRMR in answer to the first I-frame
  bool refuse_range = false;         // the load profile's selective access 1 answers result 3
  int max_pdu = 0;                   // the meter's own max PDU size (0: its default, 1024)
  int max_info = 0;                  // the meter's own HDLC max information field (0: 512)
};

inline constexpr int channel_count = 6;
enum class channel { kwh_import = 0, kwh_export, kvarh_q1, kvarh_q2, kvarh_q3, kvarh_q4 };

struct channel_info {
  const char* name;     // API name, "kWh Import"
  const char* units;    // "kWh" / "kvarh"
  const char* address;  // register OBIS, "1.8.0"
  const char* profile;  // profile column id, "1.29" (interval energy)
};
const channel_info& info(channel c);
const channel_info& info(int c);

inline constexpr unix_seconds data_epoch = 946684800; // 2000-01-01T00:00:00Z
inline constexpr unix_seconds half_hour = 1800;
inline constexpr std::uint8_t status_power_failure = 0x80;

// "012345.678": wh / 1000 with 3 decimals, at least 6 integer digits.
std::string format_k(std::int64_t wh);
// Half-hour start at or before t.
unix_seconds half_hour_floor(unix_seconds t);

struct profile_entry {
  unix_seconds start = 0; // interval start, meter time
  std::uint8_t status = 0;
  std::array<std::int64_t, channel_count> wh{};
};

class meter_model {
public:
  meter_model(meter_identity identity, meter_faults faults);

  const meter_identity& identity() const { return identity_; }
  const meter_faults& faults() const { return faults_; }
  // The serial the meter reports (the fault's, or the identity's).
  const std::string& reported_serial() const;

  // Cumulative register (Wh) at meter time t.
  std::int64_t register_wh(channel c, unix_seconds t) const;
  std::array<std::int64_t, channel_count> registers_at(unix_seconds t) const;
  // Cumulative apparent energy (VAh) at meter time t (see above).
  std::int64_t va_register_wh(unix_seconds t) const;
  // Energy (Wh) of the half hour starting at `start` (meter time, aligned).
  std::int64_t interval_wh(channel c, unix_seconds start) const;
  bool is_gap(unix_seconds start) const;
  std::uint8_t interval_status(unix_seconds start) const;
  // Profile entries whose END lies in [from, to] and is not after meter_now, gaps left out.
  std::vector<profile_entry> survey(unix_seconds from, unix_seconds to, unix_seconds meter_now) const;

private:
  std::int64_t cumulative(int c, std::int64_t k) const; // at the start of half hour k
  std::uint64_t hash(std::uint64_t a, std::uint64_t b) const;

  meter_identity identity_;
  meter_faults faults_;
  std::uint64_t key_ = 0;
  std::array<std::array<std::int64_t, 48>, channel_count> shape_{};
  std::array<std::array<std::int64_t, 49>, channel_count> prefix_{};
  std::array<std::int64_t, channel_count> wobble_max_{};
  std::array<std::int64_t, channel_count> base_{};
};

// What a correct client (the driver of identity.driver, configured as the meter's type) must
// report for `request` at true time `now`, the meter's clock reading `now + UTC offset + drift`.
// Defined with the sessions (sim/meter_session.cpp): it picks expected_iec_readings below, or
// for the Elster types sim/elster_meter.hpp expected_elster, for DLMS sim/dlms_meter.hpp
// expected_dlms.
// Register timestamps and meter_time_taken are `now` (a real session reads them a little
// later: compare those with a tolerance). Faults: silent, refused or rejected password ->
// nothing; serial mismatch -> the serial only; drop_mid_profile -> no survey. drop_after_bytes
// and corrupt_bcc_every are not modelled (corrupted blocks are repeated, so a client that
// handles NAK reports the full result).
drivers::meter_readings expected_readings(const meter_identity& identity, const meter_faults& faults,
                                          const drivers::session_request& request, unix_seconds now);
// The IEC 62056-21 meter's part of expected_readings.
drivers::meter_readings expected_iec_readings(const meter_identity& identity, const meter_faults& faults,
                                              const drivers::session_request& request, unix_seconds now);

} // namespace mts::sim

#pragma once
// IEC 62056-21 mode C driver (meterType "IEC62056-21"): a pure state machine on the
// drivers/driver.hpp framework. Framing lives in drivers/iec_frames.hpp.
//
// Session:
//   link up -> [reaction delay] "/?addr!\r\n" at 300 7E1 -> identification "/XXXZ[\W]..."
//   -> [reaction delay] "ACK 0 Z 1\r\n" at 300 baud, change_line to the chosen baud (7E1),
//      arm the baud switch delay; when it expires, arm the response timeout for P0 (bytes
//      arriving during the switch delay are kept and parsed, line noise is skipped)
//   -> "SOH P0 STX (operand) ETX BCC" -> [reaction delay] "SOH P1 STX (password) ETX BCC"
//      (empty parentheses when the request has no password) -> ACK
//   -> R1 reads, one at a time: serial number, time, date, error/status register, energy
//      registers -> R5 (or R6) load profile when a survey range was requested
//   -> [reaction delay] "SOH B0 ETX BCC" and finish (success).
//
// Decisions (details the protocol leaves open):
// - Every message the driver sends goes out after the reaction delay: the timer is armed and
//   the bytes leave on its expiry (no sleeps). The delay is 200 ms, or 20 ms once the
//   identification's third manufacturer letter is lower case (both configurable).
// - After a send that expects an answer the response timeout is armed; every batch of bytes
//   that does not complete the awaited message re-arms it, so it bounds both the wait for the
//   first byte and the gap between bytes. Its expiry fails the session (transient) with a
//   reason naming the stage: "no answer to sign-on", "no answer to option select",
//   "no answer to password", "no answer to serial number read", "no answer to clock read",
//   "no answer to status read", "no answer to register read", "no answer to load profile read".
// - Baud: the identification's Z character (mode C table '0'..'6') gives the meter's maximum;
//   the driver picks min(meter, config.max_baud) and echoes that character. A Z outside the
//   mode C table (mode A/B meter) is a permanent failure "meter does not support mode C".
// - Password: ACK = accepted. NAK, an error block, a B0 or anything else = permanent failure
//   "password rejected".
// - Bad BCC on a block: NAK is sent and the repeat awaited, up to max_repeats NAKs per
//   message; one more bad block is a transient failure "checksum errors". A NAK from the meter
//   (it got our command garbled) makes the driver resend its last command, counted against the
//   same limit. The count restarts with every good message.
// - Serial number: the OBIS address is config.serial_address ("C.1.0" by default; "0.0.0" is
//   the other common choice). It is compared with expected_serial after trimming spaces, and
//   otherwise exactly; a mismatch keeps the value read and finishes permanent
//   "Serial number mismatch" (B0 is sent, nothing more is read). A serial the meter answers
//   with an error is skipped (no comparison is possible; the test shows PARTIAL SUCCESS).
// - Clock: 0.9.1 = hhmmss and 0.9.2 = YYMMDD (a leading season digit, ZHHMMSS/ZYYMMDD, is
//   dropped; ':' and '-' separators are tolerated). The meter's clock is assumed to run in
//   UTC (the season flag is ignored). meter_time_taken is the time the 0.9.1 answer arrived.
// - Error/status register (config.status_address, "F.F"): its value is a hex bit field. Bit
//   meanings are manufacturer specific, so each set bit becomes the event
//   "Meter error register F.F bit N set" unless config.status_flag_names names it. F.F = 0
//   gives an empty status_events list (read, nothing to report).
// - Registers: config.registers (address, API name, units): 1.8.0 "kWh Import", 2.8.0 "kWh
//   Export", 5.8.0..8.8.0 "kvarh Q1".."kvarh Q4". A value "123.4*Wh"/"*MWh" is scaled to the
//   configured k-unit; an unrelated unit is kept as the meter gave it. An "(ERROR...)" answer
//   skips that register (not fatal). The register timestamp is the time its answer arrived.
// - Load profile: "SOH R5 STX P.01(0YYMMDDhhmm;0YYMMDDhhmm) ETX BCC" for [survey_from,
//   survey_to] (season flag 0; R6 adds ";8" per the VDEW usage). EOT-terminated partial blocks
//   are acknowledged with ACK until the ETX block. The text is parsed as VDEW P.01:
//   header "P.01(ZYYMMDDhhmmss)(SS)(tt)(n)(id1)(unit1)...(idn)(unitn)" followed by one
//   "(v1)...(vn)" line per interval, each tt minutes after the previous one; a new header
//   restarts the time base.
//   * Entry timestamps mark the END of the interval (VDEW convention; configurable).
//     Readings carry the interval START, in UTC.
//   * Channels map by OBIS group C (a "1-0:" prefix is ignored): 1 kWh Import, 2 kWh Export,
//     3 kvarh Import, 4 kvarh Export, 5..8 kvarh Q1..Q4, 9 kVAh Import, 10 kVAh Export;
//     others are ignored.
//   * A power unit (kW, W, kvar, ...) is an interval average: energy = value * tt / 60 h.
//     An energy unit with group D = 8 is a cumulative register snapshot: the interval energy
//     is the difference from the previous entry (the first entry of a run gives none). Any
//     other energy unit is already the interval's energy. W/Wh/MW.. are scaled to k-units.
//   * Intervals shorter than 30 min that divide 30 are summed into half hours; a half hour is
//     reported only when fully covered. Longer or odd intervals are ignored (status event).
//   * Readings are clipped to [survey_from, survey_to).
//   * Header status bits (VDEW) become events "<text> at YYYY-MM-DDTHH:MM:SSZ" (header time):
//     0x80 Power failure, 0x40 Power restored, 0x20 Clock set, 0x10 Device reset,
//     0x08 Seasonal switch-over, 0x04 Disturbed measurement, 0x02 Running reserve exhausted,
//     0x01 Fatal device error, 0x4000 Load profile cleared, 0x2000 Logbook cleared,
//     0x0400 End of error, 0x0200 Begin of error, 0x0100 Variable set.
//   * An "(ERROR)" answer leaves the survey unread (PARTIAL SUCCESS), not a failure.
//   * The survey is stored only once the whole answer arrived (a drop mid-profile keeps the
//     serial, clock and registers read before).
// - Failures after the password was accepted send B0 before finish (except a dropped line).
//   finish() is always the last action; afterwards every event is ignored.
// - Not done: sign-on repeats, the battery wake-up sequence, P2 (secure algorithm) passwords,
//   daylight-saving meters.
#include "drivers/driver.hpp"
#include "drivers/iec_frames.hpp"
#include "drivers/iec_session.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mts::drivers {

struct iec62056_21_register {
  std::string address; // OBIS, e.g. "1.8.0"
  std::string name;    // API name, e.g. "kWh Import"
  std::string units;   // API units, e.g. "kWh"
};

// Timing and limits (response_timeout, baud_switch_delay, reaction_delay, max_repeats,
// max_baud, max_message): iec_session_settings.
struct iec62056_21_config : iec_session_settings {
  std::chrono::milliseconds fast_reaction_delay{20}; // reaction_delay when the 3rd id letter is lower case

  std::string serial_address = "C.1.0";
  std::string time_address = "0.9.1";
  std::string date_address = "0.9.2";
  std::string status_address = "F.F"; // empty: not read
  std::vector<std::pair<std::uint32_t, std::string>> status_flag_names; // bit mask -> text
  std::vector<iec62056_21_register> registers = {
      {"1.8.0", "kWh Import", "kWh"}, {"2.8.0", "kWh Export", "kWh"},
      {"5.8.0", "kvarh Q1", "kvarh"}, {"6.8.0", "kvarh Q2", "kvarh"},
      {"7.8.0", "kvarh Q3", "kvarh"}, {"8.8.0", "kvarh Q4", "kvarh"}};

  std::string profile_address = "P.01";
  std::string profile_command = "R5"; // or "R6"
  bool profile_timestamp_is_interval_end = true;
};

// The session plumbing (reaction delay, timers, baud switch, NAK/repeat, fail/finish) is
// drivers/iec_session.*; this class reads the items.
class iec62056_21_driver : public iec_session_driver {
public:
  iec62056_21_driver(session_request request, iec62056_21_config config);

private:
  enum class item { serial, time, date, status, reg, profile };
  struct step {
    item what;
    std::string address;
    std::size_t reg = 0;
  };

  void on_message(actions& out, const iec::message& m, unix_ms now) override;
  std::string request_timeout_reason() const override;
  void handle_read(actions& out, const iec::message& m, unix_ms now);
  void start_step(actions& out);
  void next_step(actions& out);
  void store_profile(const std::string& text);

  iec62056_21_config config_;

  std::vector<step> plan_;
  std::size_t pos_ = 0;
  std::optional<int> time_of_day_; // seconds, from 0.9.1
  unix_seconds time_taken_ = 0;
  std::string profile_text_;
};

std::unique_ptr<meter_driver> make_iec62056_21_driver(const session_request& request,
                                                      const iec62056_21_config& config = {});

// The line a session starts on: 300 baud 7E1.
line_settings iec62056_21_initial_line();

} // namespace mts::drivers

#pragma once
// The meter side of IEC 62056-21 mode C for the simulator: a pure state machine in the style
// of the drivers (drivers/driver.hpp). It is fed the link coming up, bytes, its timer's
// expiries and the link going down, each with the current time, and answers with actions:
// send_bytes, arm_timer, change_line (the I/O layer paces bytes at line().baud when asked
// to), and finish, which for the meter means "close the link".
//
// Session (data from sim/meter_data.hpp, meter time = now + clock offset, or the pinned now):
//   "/?addr!\r\n" at 300 7E1 -> "/SIM5<id>\r\n" (Z = config.max_baud, '5' = 9600)
//   -> "ACK 0 Z 1|6\r\n": switch to Z's baud, "SOH P0 STX (00000000) ETX BCC"
//      "ACK 0 Z 0\r\n": switch, data readout "STX lines !\r\n ETX BCC", back to 300 baud
//   -> "SOH P1 STX (password) ETX BCC" -> ACK, or NAK (wrong password; the meter stays in
//      the password state: another P1 or B0 may follow, as real meters do)
//   -> R1/R2 "addr()" -> "STX addr(value) ETX BCC", unknown address "STX (ERROR) ETX BCC"
//      R5/R6 "P.01(from;to[;8])" -> the load profile in EOT blocks, each awaiting ACK
//   -> "SOH B0 ETX BCC" -> close.
//
// Decisions:
// - Request address: an empty address is answered (point-to-point use); a non-empty one must
//   equal the identity's outstation address (or the identity has none), else the meter stays
//   silent and keeps waiting for a request.
// - Password: an empty identity password accepts any P1. P2 (secure algorithm) is refused
//   with NAK. Commands before the password is accepted get "(ERROR)".
// - Every reply leaves after config.reaction_delay (the timer is armed, the bytes leave on
//   its expiry; 0 sends at once). Without a pending reply the timer is the inactivity
//   timeout (every batch of bytes re-arms it); its expiry closes the link.
// - A received command with a bad BCC is answered NAK. A NAK received makes the meter resend
//   its last message (always with a good BCC).
// - R1 answers carry the address: "1.8.0(012345.678*kWh)", "0.9.1(hhmmss)",
//   "0.9.2(YYMMDD)", "C.1.0(serial)" (also "0.0.0"), "F.F(XXXXXXXX)" (hex).
// - Load profile (VDEW P.01): entries whose END lies in [from, to] (minutes, meter time) and
//   not after the meter's now. One header line starts each run of entries; a new header
//   follows a gap and surrounds any entry with a status (so the status belongs to exactly
//   one entry):
//     P.01(0YYMMDDhhmmss)(SS)(30)(6)(1.29)(kWh)(2.29)(kWh)(5.29)(kvarh)...(8.29)(kvarh)
//     (0.734)(0.000)(0.220)(0.000)(0.000)(0.073)
//   The header time is the first entry's END (VDEW), SS the VDEW status in hex (80 = power
//   failure). The columns are interval energies (OBIS D = 29, energy units): the client
//   driver takes them as they are, so its half-hour values equal the model's exactly.
//   No entry in range: "(ERROR)". Lines end CR LF; the text is cut into blocks of at most
//   config.max_block bytes.
// - Faults (sim/meter_data.hpp meter_faults): silent (reads, never answers; inactivity still
//   closes), drop_after_bytes (the byte that reaches the count is the last one sent, then
//   close), drop_mid_profile (close after the first profile block, or instead of the only
//   one), corrupt_bcc_every k (every k-th STX/SOH block sent, counted from the session start,
//   gets a wrong BCC; repeats after a NAK are not counted), garbage_before_reply (before
//   every reply), reject_password, reported_serial, survey gaps, power failures,
//   error_register. refuse_connection and pace_baud are for the I/O layer.
#include "drivers/driver.hpp"
#include "drivers/iec_frames.hpp"
#include "sim/framed_meter.hpp"
#include "sim/meter_data.hpp"
#include "sim/meter_session.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace mts::sim {

// Timing (reaction delay, inactivity timeout, pinned clock): framed_meter_timing.
struct iec_meter_config : framed_meter_timing {
  std::size_t max_block = 1024; // data bytes per profile block
  int max_baud = 9600;
  std::string identification; // after '/'; empty: "SIM" Z "MTS-SIM"
};

// The framing plumbing and the transport faults are sim/framed_meter.*.
class iec_meter : public framed_meter {
public:
  iec_meter(meter_identity identity, meter_faults faults, iec_meter_config config = {});

  // The load-profile answer text for [from, to] at meter time meter_now ("(ERROR)" if empty).
  std::string profile_text(unix_seconds from, unix_seconds to, unix_seconds meter_now) const;

private:
  enum class state { password, ready, profile };

  std::string identification() const override { return config_.identification; }
  void on_option_select(drivers::actions& out, const drivers::iec::message& m) override;
  void on_command(drivers::actions& out, const drivers::iec::message& m) override;
  void on_ack(drivers::actions& out) override;
  std::string read_register(const std::string& address) const;
  void start_profile(drivers::actions& out, const std::string& data);
  void send_profile_block(drivers::actions& out);

  iec_meter_config config_;
  state state_ = state::password;
  std::vector<std::string> profile_blocks_; // complete messages
  std::size_t profile_pos_ = 0;
};

} // namespace mts::sim

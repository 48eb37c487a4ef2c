#pragma once
// Elster A1700 / A1140 driver (meterTypes "ELSTERA1700", "ELSTERA1140"): a pure state machine
// on the drivers/driver.hpp framework. Framing and BCC are drivers/iec_frames.*, the Elster
// encodings (password hash, BCD, clock, record stream) drivers/elster_codec.*. The wire
// contract and every decision are in docs/elster.md; the essentials:
//
//   link up -> [reaction delay] "/?addr!\r\n" at 300 7E1 -> identification
//   -> "ACK 0 Z Y\r\n" (Y = option mode '6' or '1'), change_line, baud switch delay
//   -> P0(seed) -> [level 3: P2(0000000000000000) -> ACK] -> P2(hash) -> ACK
//   -> R1 798 serial, 861 clock, 507 registers, 724 status
//   -> [survey] R1 777, R1 878, W1 551 (A1700, days) or W1 554 (A1140, from/to),
//      R1 551 (block count), R1 550 packets 001..blocks64+1 -> B0 and finish.
//
// Decisions (see docs/elster.md for the full list):
// - Every message goes out after the reaction delay (the timer is armed, the bytes leave on
//   its expiry; no sleeps). Every wait for the meter has the response timeout, re-armed by
//   every batch of bytes that does not complete the awaited message.
// - Reads are packetised: at most packet_size (64) bytes per R1 packet, packets 001, 002...
// - (ERR5) to a read or write: P2(hash) again with this session's seed, then the same request
//   again; at most max_reauthentications per session. Any other (ERRn): permanent
//   "meter error: ERRn <text> reading|writing <ID>".
// - Bad BCC: NAK, await the repeat (max_repeats per message). NAK from the meter: resend.
// - UNVERIFIED details are per-type settings in elster_config (clock offset, scales), not
//   guesses in the code.
// - Failures after the password was accepted send B0 before finish (except a dropped line);
//   finish() is always the last action; afterwards every event is ignored.
#include "drivers/driver.hpp"
#include "drivers/iec_frames.hpp"
#include "drivers/iec_session.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mts::drivers {

enum class elster_profile_selection {
  days,   // W1 551 with a day count (A1700)
  by_date // W1 554 with from/to (A1140)
};

// Per-meter-type settings (docs/elster.md "Per-type settings"). Timing and limits
// (response_timeout, baud_switch_delay, reaction_delay, max_repeats, max_baud, max_message):
// iec_session_settings.
struct elster_config : iec_session_settings {
  char option_mode = '6';      // '6' Elster mode, '1' IEC1107-compatible
  int security_level = 2;      // 2: P2(hash); 3: P2(zeros), reads, P2(hash) before the first write
  int clock_utc_offset_minutes = 0;  // meter time = UTC + offset
  int register_scale_exponent = -6;  // 507 raw x 10^exp -> kWh/kvarh/kVAh
  int profile_scale_exponent = -3;   // 550 DDDDD x 10^E x 10^exp -> k-units
  std::size_t register_count = 10;   // 8-byte registers in 507 (A1700 10, A1140 16)
  elster_profile_selection profile_selection = elster_profile_selection::days;
  int max_reauthentications = 3; // ERR5 recoveries per session
  std::size_t packet_size = 64;  // bytes per R1 packet (0x40 at most)
};

elster_config elster_a1700_config();
elster_config elster_a1140_config();

// The session plumbing (reaction delay, timers, baud switch, NAK/repeat, fail/finish) is
// drivers/iec_session.*; this class reads and writes the items.
class elster_driver : public iec_session_driver {
public:
  elster_driver(session_request request, elster_config config);

private:
  // What the session reads or writes, in order.
  enum class item { serial, clock, registers, status, channels, period, select, blocks, profile };

  void on_message(actions& out, const iec::message& m, unix_ms now) override;
  std::string request_timeout_reason() const override;
  void on_identification(actions& out, const std::string& id);
  void on_seed(actions& out, const std::string& text);
  void authenticate(actions& out);
  void on_password_reply(actions& out, const iec::message& m);
  void on_request_reply(actions& out, const iec::message& m, unix_ms now);

  void start_item(actions& out);
  void next_item(actions& out);
  void send_request(actions& out);
  void item_complete(actions& out, const std::string& data, unix_ms now);
  std::string data_id() const;
  std::size_t item_size() const;
  bool is_write() const;
  unix_seconds clock_offset() const;
  void store_profile();

  elster_config config_;

  bool hash_sent_ = false;    // the P2 awaiting its answer carries the hash (not zeros)
  bool write_access_ = false; // the meter accepted the hash: W1 is allowed
  int reauthentications_ = 0;
  std::string hash_;

  std::vector<item> plan_;
  std::size_t pos_ = 0;
  std::size_t packet_ = 1;  // current packet number
  std::string data_;        // bytes of the current item read so far
  std::uint16_t channel_mask_ = 0;
  int period_minutes_ = 0;
  std::size_t profile_packets_ = 0;
  unix_seconds meter_clock_ = 0; // the 861 reading, meter seconds
};

std::unique_ptr<meter_driver> make_elster_driver(const session_request& request, const elster_config& config);

// The line a session starts on: 300 baud 7E1.
line_settings elster_initial_line();

} // namespace mts::drivers

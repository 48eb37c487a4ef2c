#pragma once
// The meter side of the Elster A1700 / A1140 dialogue for the simulator (ELSTER-CONTRACT.md,
// docs/elster.md): a pure state machine like sim::iec_meter, on the same IEC 62056-21 framing
// (drivers/iec_frames.hpp). Data from sim/meter_data.hpp; meter time = now + clock offset (or
// the pinned now).
//
// Session (both types; only the identification and the 507 length differ):
//   "/?addr!\r\n" at 300 7E1 -> "/GEC5090100100400@000\r\n" (A1700) or
//   "/GEC5120510070213@000\r\n" (A1140)
//   -> "ACK 0 Z 6|1\r\n" (Z at most '5'): switch to Z's baud,
//      "SOH P0 STX (<16 hex seed>) ETX BCC", the seed new every session
//   -> "SOH P2 STX (<16 hex>) ETX BCC": ACK when it is hash(password, seed) or 16 zeros,
//      else NAK (the meter stays in the password state)
//   -> "SOH R1 STX <ID 3 digits><packet 3 hex>(<LL 2 hex>) ETX BCC" -> "STX (<2*LL hex>) ETX
//      BCC": the bytes [(packet-1)*0x40, +LL) of the identity's data; errors "STX (ERRn) ETX
//      BCC"; "SOH W1 STX <ID>001(<hex>) ETX BCC" -> ACK or (ERRn)
//   -> "SOH B0 ETX BCC" -> close.
//
// Decisions (where the contract leaves the meter side open):
// - Identities: 798 serial (16 ASCII, right-aligned, zero-padded; a longer text keeps its
//   last 16 characters), 861 clock (7 BCD bytes, weekday 0), 507 registers (A1700 10, A1140
//   16 registers of 8 bytes LE BCD, raw = Wh x 1000: Import, Export, Q1..Q4, kVAh, then zero),
//   724 system status = the error_register fault (LE), 777 channel mask 0x003F (LE), 878
//   30/30/1, 551 (read: LE block counts of the selected profile; write: LE day count),
//   554 (A1140 only, write: from/to LE seconds, meter time), 550 the selected profile.
//   A multi-packet read answers from a snapshot taken at its packet 001 (the registers of
//   one read are of one instant).
// - Errors: unknown identity (or a write to one that is not writable) ERR2; LL outside
//   1..0x40, bytes beyond the data or a packet number 0 ERR3; malformed text (lower-case hex
//   included), write data of the wrong length, or a command other than P2/R1/W1/B0 ERR1;
//   R1/W1 before a P2 was accepted, R1 after the password session timed out, and W1 before
//   the hash was accepted, ERR5 ("data identity locked").
// - Password: the hash is drivers/elster_codec.hpp password_hash (the published algorithm,
//   shared with the driver). An empty identity password accepts any P2 operand; one that is
//   not 8 characters accepts only the zero operand. A wrong P2 after login
//   keeps the login (NAK only). P1 (plain password) is answered NAK (not simulated).
//   The all-zero operand (security level 3's first P2) gives read access only; the hash
//   also write access (as in the A1140 trace, where the client sends it before W1). Either
//   accepted operand ends a password-session timeout (fault password_timeout_after_reads).
// - Profile selection: W1 551 days D selects the last D meter days including today (D = 0:
//   none; FFFF: all, at most elster::all_days_cap days so the 64-byte block count fits 16
//   bits); W1 554 selects the meter days touching [from, to), up to today. Without a
//   selection 551/550 answer today's records. The stream is built when the selection is made
//   (or at the first 551/550 read) and kept for the session.
// - Record stream per meter day (from the data epoch on): E4 at 00:00 (mask 0x003F, code 9),
//   then per COMPLETE half hour (ending at or before meter now) either its record (status 0,
//   six channels DDDDDE), preceded by E5 at its start when the half hour before was a survey
//   gap and by E6 at start+600, E5 at start+900 when it has a power failure; or, for a survey
//   gap, E6 at start+1 when the half hour before was no gap. Ends with FF; 550 is padded with
//   FF to (blocks64 + 1) * 64 bytes, blocks64 = stream bytes / 64.
// - Faults: silent, drop_after_bytes, garbage_before_reply, corrupt_bcc_every (as the IEC
//   meter: every k-th SOH/STX block from the session start; repeats after NAK are good),
//   reject_password (NAK every P2), reported_serial (798), error_register (724), survey_gaps,
//   power_failure_every_days (above), drop_mid_profile (close right after the first 550
//   packet; when the whole selection is one packet, close instead of sending it),
//   password_timeout_after_reads N (after N successful R1 replies every R1 answers ERR5 until
//   a P2 with the right hash; NAK repeats do not count). refuse_connection and pace_baud are
//   the server's.
#include "drivers/driver.hpp"
#include "drivers/iec_frames.hpp"
#include "sim/framed_meter.hpp"
#include "sim/meter_data.hpp"
#include "sim/meter_session.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mts::sim {

inline constexpr const char* elster_a1700_type = "ELSTERA1700";
inline constexpr const char* elster_a1140_type = "ELSTERA1140";
// Whether a meter of this driver ("elster-a1700", "elster-a1140") is an Elster meter.
bool is_elster_driver(const std::string& driver);

// The encoding pieces, public for the tests and for expect.
namespace elster {

inline constexpr std::size_t packet_bytes = 0x40;
inline constexpr std::uint8_t new_day = 0xE4, power_up = 0xE5, power_down = 0xE6, end_of_data = 0xFF;
inline constexpr std::uint16_t channel_mask = 0x003F; // Import, Export, Q1..Q4
inline constexpr std::uint8_t integration_code = 9;   // 30 minutes
inline constexpr std::int64_t all_days_cap = 4000;    // W1 551 FFFF

unix_seconds day_floor(unix_seconds t);               // the meter day's 00:00
std::string identification(const std::string& driver); // without '/' and CR LF
std::size_t register_count(const std::string& driver); // 507: 10 (A1700) or 16 (A1140)

std::string hex(std::string_view bytes);                  // upper case
std::optional<std::string> unhex(std::string_view text);  // upper case only

std::string register_bytes(std::uint64_t raw);  // 8 bytes little-endian packed BCD
std::string clock_bytes(unix_seconds meter_time); // sec min hour day month 0 year-2000, BCD
std::string serial_bytes(const std::string& serial); // 16 bytes
// What a client reports from 798's 16 characters: spaces removed, leading zeros removed down
// to 8 characters.
std::string normalised_serial(const std::string& field);
std::string le_bytes(std::uint64_t value, std::size_t count);
// 724 bit texts (nullptr for bits outside 0xFFFFFF07) and the events of a value, bit 31 first.
const char* status_bit_text(int bit);
std::vector<std::string> status_events(std::uint32_t value);

// A profile value: 6 BCD nibbles DDDDDE, value = DDDDD x 10^E Wh (the smallest E that fits;
// digits below 10^E are dropped).
std::string profile_value_bytes(std::int64_t wh);
std::int64_t profile_value_carried(std::int64_t wh);

struct profile_item {
  std::uint8_t marker = 0; // new_day, power_up, power_down; 0: a data record
  unix_seconds time = 0;   // marker time stamp, or the record's interval start (meter time)
  std::array<std::int64_t, channel_count> wh{}; // record only
};
struct day_range {
  unix_seconds first = 0; // meter day starts; empty when last < first
  unix_seconds last = -1;
};
day_range days_551(std::int64_t days, unix_seconds meter_now);
day_range days_554(unix_seconds from, unix_seconds to, unix_seconds meter_now);
// The recorded items of the days in `range`, complete half hours up to meter_now.
std::vector<profile_item> profile_items(const meter_model& model, day_range range, unix_seconds meter_now);
// The record stream, ending with FF (no padding).
std::string encode_profile(const std::vector<profile_item>& items);

} // namespace elster

// Timing (reaction delay, inactivity timeout, pinned clock): framed_meter_timing.
struct elster_meter_config : framed_meter_timing {
  std::uint64_t session_number = 0; // makes the P0 seed
};

// The framing plumbing and the transport faults are sim/framed_meter.*.
class elster_meter : public framed_meter {
public:
  elster_meter(meter_identity identity, meter_faults faults, elster_meter_config config = {});

  // This session's P0 operand (16 hex characters).
  const std::string& seed_operand() const { return seed_; }

private:
  enum class state { password, ready };

  std::string identification() const override;
  void on_option_select(drivers::actions& out, const drivers::iec::message& m) override;
  void on_command(drivers::actions& out, const drivers::iec::message& m) override;
  void read(drivers::actions& out, const std::string& text);
  void write(drivers::actions& out, const std::string& text);
  void error(drivers::actions& out, int n);
  std::optional<std::string> data_of(int id);
  void select_profile(elster::day_range range);

  state state_ = state::password;
  std::string seed_;
  int reads_since_login_ = 0;
  bool timed_out_ = false;
  bool write_access_ = false; // the hash was accepted (not only the zero operand)
  std::map<int, std::string> snapshots_; // multi-packet reads, taken at packet 001
  std::optional<std::string> profile_;   // the selected stream, padded
  std::size_t profile_blocks64_ = 0, profile_blocks256_ = 0;
  bool profile_packet_sent_ = false;
};

// What the Elster driver (default settings) reports for `request` at true time `now`, and how
// its session ends (the reasons of sim/sim_config.hpp "How the session ends", plus transient
// "password session keeps timing out" when the session needs a 4th re-authentication).
struct elster_expectation {
  drivers::meter_readings readings;
  drivers::finish end;
};
elster_expectation expected_elster(const meter_identity& identity, const meter_faults& faults,
                                   const drivers::session_request& request, unix_seconds now);

} // namespace mts::sim

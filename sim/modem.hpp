#pragma once
// The simulated modem's line: the AT side of a Hayes modem as a pure state machine in the
// style of the drivers (events in, actions out; no I/O, no clock). The serving side
// (sim/modem_server.hpp) bridges a connected call to a simulated meter session.
//
// Behaviour (../shared/notes/meter-protocols.md §4):
// - Command state: characters are echoed (ATE1, the default after ATZ) and collected up to CR;
//   the line is executed from its "AT" (anything before it is ignored, so "+++ATH" works; a
//   line without "AT" is ignored). Commands: Z (reset: echo on, verbose), E0/E1, V0/V1
//   (verbose "\r\nOK\r\n" or numeric "0\r"), H (hang up), O (back online), I (identity),
//   Q X L M &x Sn=v (accepted), +... extended commands such as +CBST (accepted), D<number>
//   (dial: digits and '+' count, punctuation such as ',' 'T' 'P' 'W' is skipped; a trailing
//   ';' asks for a voice call, answered NO CARRIER). Anything else: ERROR.
// - Dialling: the number plan says what the number reaches. A meter: CONNECT 9600 after
//   connect_delay; busy / no answer / no carrier numbers: BUSY / NO ANSWER / NO CARRIER after
//   connect_delay; unknown numbers: NO CARRIER. Any character from the DTE aborts the
//   dialling (NO CARRIER).
// - Online: DTE bytes go to the meter, meter characters to the DTE. "+++" preceded and
//   followed by guard_time without other DTE bytes enters online-command state (OK; the call
//   stays up; ATO returns online, ATH hangs up). Pluses that turn out to be data are passed on.
// - Character format: the call is 8-bit transparent (what the DTE sends, parity bit included,
//   reaches the meter's line as it is); the meter's format (7E1 for IEC 62056-21 and Elster) is checked
//   on every byte it receives: a byte with the wrong parity reaches it as '\0' (so a caller
//   using 8N1 gets no sensible answer), and its characters leave with their parity bit. In
//   command state the modem detects the DTE's format from each "AT" prefix, as Hayes modems
//   do ('A' 0x41 and 'T' 0x54 with or without their parity bits: 7E1, 7O1, else 8N1), and
//   answers (results and echo) in that format.
// - The call ends by ATH, by the meter closing the session (NO CARRIER), by a drop number
//   (NO CARRIER after drop_after_bytes meter characters), or by the DTE link going away.
//   Each end is reported once (call_ended with its cause) for the counters.
#include "drivers/char_format.hpp"
#include "drivers/driver.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mts::sim {

struct modem_config {
  std::chrono::milliseconds connect_delay{2000}; // also the delay of BUSY / NO ANSWER / NO CARRIER
  std::chrono::milliseconds guard_time{1000};    // S12
  std::size_t drop_after_bytes = 64;             // drop numbers: meter characters before the drop
};

struct dial_target {
  enum class kind { meter, busy, no_answer, no_carrier, unknown };
  kind what = kind::unknown;
  std::size_t meter = 0;        // kind::meter: the meter's index
  bool drop_mid_call = false;   // kind::meter: the call drops after drop_after_bytes
  drivers::line_settings format{9600, 7, 'E', 1}; // the meter's character format
};
using number_plan = std::function<dial_target(const std::string& number)>;

enum class call_end { hangup, meter_closed, dropped, dte_gone };
const char* call_end_name(call_end e);

// ---- actions ----
struct to_dte {
  std::string bytes;
};
struct start_call { // the call is up: start a session with this meter
  std::size_t meter = 0;
};
struct to_meter {
  std::string characters;
};
struct call_ended { // stop the meter session (if any) and count the call's end
  call_end cause = call_end::hangup;
};
struct arm_modem_timer { // replaces any earlier arming
  std::chrono::milliseconds after{0};
  std::uint64_t id = 0;
};
using modem_action = std::variant<to_dte, start_call, to_meter, call_ended, arm_modem_timer>;
using modem_actions = std::vector<modem_action>;

class modem_line {
public:
  modem_line(modem_config config, number_plan plan);

  modem_actions on_dte_bytes(std::string_view bytes, drivers::unix_ms now);
  // Characters the meter sent (as the meter's state machine produced them).
  modem_actions on_meter_characters(std::string_view characters, drivers::unix_ms now);
  // The meter closed its session.
  modem_actions on_meter_closed(drivers::unix_ms now);
  modem_actions on_timer(std::uint64_t id, drivers::unix_ms now);
  // The link to the DTE is gone (TCP client closed, DTR dropped).
  modem_actions on_dte_gone(drivers::unix_ms now);

  // The DTE format detected from the last "AT".
  const drivers::line_settings& dte_format() const { return dte_format_; }

  bool in_call() const { return call_up_; }
  const std::string& dialled() const { return dialled_; }

private:
  enum class state { command, dialling, online, online_command };

  void respond(modem_actions& out, const char* verbose, const char* numeric);
  void execute(modem_actions& out, const std::string& line, drivers::unix_ms now);
  void dial(modem_actions& out, const std::string& dial_string);
  void hang_up(modem_actions& out, call_end cause);
  void arm(modem_actions& out, std::chrono::milliseconds after);
  void data_to_meter(modem_actions& out, std::string_view dte_bytes);
  void detect_format(char previous_raw, char raw);
  std::string in_dte_format(std::string_view text) const;

  modem_config config_;
  number_plan plan_;
  state state_ = state::command;
  bool echo_ = true;
  bool verbose_ = true;
  std::string command_line_;
  char previous_raw_ = 0; // the byte before, for the "AT" detection
  std::string dialled_;
  dial_target target_;
  bool call_up_ = false;
  std::size_t meter_bytes_ = 0;
  drivers::line_settings dte_format_{9600, 8, 'N', 1};
  // Escape detection.
  drivers::unix_ms last_dte_byte_ = 0;
  bool any_dte_byte_ = false;
  int pluses_ = 0;
  // The one timer: connect delay while dialling, the guard after "+++" while online.
  std::uint64_t timer_ = 0;
};

} // namespace mts::sim

#pragma once
// Dial-up meters: the Hayes AT dialogue with a modem as a pure state machine in the style of
// drivers/driver.hpp, composed with a meter driver as a decorator. The test runner feeds it
// the events of the link to the MODEM (a serial port or a TCP serial gateway); it dials, then
// passes the call's bytes to the inner meter driver, then hangs up, so the runner treats a
// dial-up meter like any other (actors/test_runner.hpp).
//
// Dialogue (../shared/notes/meter-protocols.md §4):
//   link up -> [guard] "+++" [2 x guard] "ATH\r" (any answer: the modem's state is unknown)
//   -> "ATZ\r" -> OK -> each init string + "\r" -> OK -> "ATD<prefix><number>\r"
//   -> wait for CONNECT (connect_timeout) -> online: the inner driver gets on_link_up and the
//   call's bytes -> when it finishes: [guard] "+++" [guard] "ATH\r" -> OK (or silence for
//   command_timeout) -> finish with the inner driver's result. After the hang-up's "+++" the
//   modem's OK is awaited (guard + command_timeout at most) before ATH, so ATH never races
//   the modem's own guard timer. A NO CARRIER during the hang-up (the meter ended the call,
//   as IEC meters do after B0) skips the rest of the escape: ATH at once.
//
// Decisions:
// - Replies are read as lines (CR and/or LF terminated, verbose or numeric codes 0 1 3 4 6 7 8);
//   echoes of our own command and RING are ignored; each command waits command_timeout for its
//   final result.
// - Results (failure kind for the retry policy; "modem fault" = transient, and modem_fault()
//   says so: the runner takes the modem out of service and retries on another one):
//     BUSY -> transient "line busy"; NO ANSWER -> transient "no answer"; NO CARRIER while
//     dialling -> transient "no carrier"; no CONNECT within connect_timeout -> transient
//     "no CONNECT within N s" (a CR aborts the dialling, then ATH);
//     NO DIALTONE -> modem fault "modem reports no dial tone";
//     ERROR to ATZ or an init string -> modem fault "modem refused <command>";
//     silence to any command -> modem fault "modem does not answer AT commands";
//     the link to the modem lost before the call is up -> modem fault "link to the modem lost";
//     ERROR to ATD -> permanent "modem refused to dial <number>" (the number itself is refused:
//     another modem or attempt would do the same).
// - Online, "NO CARRIER" on a line of its own means the call dropped: the inner driver gets
//   on_link_down (its own reason, "line dropped", is the result). The link going down while
//   online does the same.
// - Hang-up on every path once ATD was sent: escape with guard times and ATH after the inner
//   driver finished (success or failure), after a connect timeout (CR, ATH) and after a call
//   drop (ATH). Before the modem link closes the runner closes it, which drops DTR on a serial
//   port (actors/serial_connection.hpp) and ends the gateway's session.
// - Character format: the call is an 8-bit transparent link; call_format (comsSettings or the
//   meter type's default) is applied in software (drivers/char_format.hpp). A format that does
//   not fit in 8 bits ends at link up with a permanent failure before anything is dialled.
// - Line changes asked for by the inner driver (a baud switch) cannot follow over a data call
//   (the DTE rate is fixed for the call and the speed between the modems is the carrier's);
//   they are dropped and counted (dropped_line_changes()), and logged by the runner.
// - Timers: the decorator and the inner driver share the runner's one timer: inner ids are
//   doubled, the decorator's own ids are odd, so each expiry goes to its owner. The decorator
//   only arms timers while the inner driver is not running.
#include "drivers/char_format.hpp"
#include "drivers/driver.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mts::drivers {

struct at_modem_config {
  std::string number;      // as the request gave it ("+44..." keeps its '+')
  std::string dial_prefix; // put before the number ("9,", "" for none)
  std::vector<std::string> init_strings; // each must answer OK, e.g. "ATE0", "AT+CBST=7,0,1"
  std::chrono::milliseconds command_timeout{5000};
  std::chrono::milliseconds connect_timeout{60000};
  std::chrono::milliseconds guard_time{1000};
  line_settings call_format{9600, 8, 'N', 1};
};

class at_modem_driver : public meter_driver {
public:
  at_modem_driver(std::unique_ptr<meter_driver> inner, at_modem_config config);

  actions on_link_up(unix_ms now) override;
  actions on_bytes(std::string_view data, unix_ms now) override;
  actions on_timer(std::uint64_t id, unix_ms now) override;
  actions on_link_down(unix_ms now) override;
  const meter_readings& readings() const override { return inner_->readings(); }

  // Cuts the attempt off (the test's deadline): a call up or being dialled is hung up as on
  // every other path (escape, guard times, ATH; CR then ATH while dialling), then `result` is
  // the finish; with no call (before or during the modem's reset and init) it finishes at
  // once. A hang-up already under way goes on and reports `result`.
  actions abort(finish result, unix_ms now);
  // The longest a hang-up can take before it finishes (each step bounded by its timer).
  std::chrono::milliseconds longest_hangup() const;

  // Why the attempt failed because of the modem itself; nothing otherwise.
  const std::optional<std::string>& modem_fault() const { return fault_; }
  // When CONNECT arrived and when the call ended (hang-up started or the call dropped).
  std::optional<unix_ms> call_started() const { return call_started_; }
  std::optional<unix_ms> call_ended() const { return call_ended_; }
  std::uint64_t dropped_line_changes() const { return dropped_line_changes_; }
  std::uint64_t parity_errors() const { return codec_.parity_errors(); }

private:
  enum class stage {
    idle,
    reset_guard_before, // silence before the first "+++"
    reset_guard_after,  // silence after it
    reset_hangup,       // "ATH" sent, any answer will do
    command,            // ATZ / init string sent, waiting for OK
    dialling,           // ATD sent, waiting for CONNECT
    abort_dial,         // connect timeout: CR sent, waiting for the modem to give up
    online,
    hangup_guard_before,
    hangup_guard_after,
    hangup,             // "ATH" sent after the call
    done
  };

  void send_command(actions& out, const std::string& command, std::chrono::milliseconds timeout);
  void arm_own(actions& out, std::chrono::milliseconds after);
  void next_command(actions& out, unix_ms now);
  void handle_line(actions& out, const std::string& line, unix_ms now);
  void go_online(actions& out, unix_ms now);
  void feed_inner(actions& out, actions inner, unix_ms now);
  void online_bytes(actions& out, std::string_view data, unix_ms now);
  void start_hangup(actions& out, finish result, bool escape, unix_ms now);
  void abort_dialling(actions& out, finish result);
  void send_ath(actions& out);
  void end(actions& out, finish result);
  void modem_failed(actions& out, std::string reason);

  std::unique_ptr<meter_driver> inner_;
  at_modem_config config_;
  parity_codec codec_;
  stage stage_ = stage::idle;
  std::vector<std::string> commands_; // ATZ and the init strings, in order
  std::size_t next_command_ = 0;
  std::string last_command_;
  std::string line_buffer_;
  std::string online_tail_; // last raw bytes online, to spot "NO CARRIER" across reads
  std::uint64_t own_timer_ = 1;
  std::optional<std::uint64_t> armed_own_;
  finish result_; // the inner driver's finish, reported after the hang-up
  std::optional<std::string> fault_;
  bool call_dropped_ = false; // NO CARRIER online: hang up without the escape
  bool link_gone_ = false;    // the link to the modem is down: nothing more can be sent
  std::optional<unix_ms> call_started_;
  std::optional<unix_ms> call_ended_;
  std::uint64_t dropped_line_changes_ = 0;
};

// Wraps `inner` for a call to config.number.
std::unique_ptr<at_modem_driver> make_at_modem_driver(std::unique_ptr<meter_driver> inner, at_modem_config config);

} // namespace mts::drivers

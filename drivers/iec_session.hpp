#pragma once
// The session plumbing shared by the drivers that speak IEC 62056-21 framing
// (drivers/iec62056_21.*, drivers/elster.*): a base class that owns the frame parser, the one
// timer, the reaction delay before every send, the baud switch, the response timeout,
// NAK/repeat on a bad BCC, and failing or finishing. A derived driver only interprets
// messages (on_message) and names what it waited for when the response timeout expires
// (timeout_reason).
//
// Decisions:
// - Every message goes out after the reaction delay: schedule() arms the timer and the bytes
//   leave on its expiry (no sleeps). After the send the timer is re-armed for the response
//   timeout, for the baud switch delay (change_line first, 7E1 at baud_), or the session
//   finishes successfully (the sign-off B0).
// - The response timeout bounds both the wait for the first byte and the gap between bytes:
//   every batch of bytes that does not complete the awaited message re-arms it. Bytes arriving
//   in the baud switch delay are parsed, but do not re-arm it. Scheduling a send ends the baud
//   switch delay (the awaited message came early).
// - Messages that arrive while a send waits for its reaction delay, or during the sign-off,
//   are dropped (nothing is awaited). Echoes of what the driver sent (a request or an option
//   select on a half-duplex link) are never answers. A message over the size limit fails the
//   session (transient "reply too long").
// - Bad BCC on a block or command: NAK and await the repeat; a NAK from the meter (meter_nak):
//   resend the last command. Both count against max_repeats per message (the derived driver
//   resets repeats_ with every good message); one more is transient "checksum errors".
// - Failures after the password was accepted (logged_in_) send B0 before finish (except a
//   dropped line). finish() is always the last action; afterwards every event is ignored.
#include "drivers/driver.hpp"
#include "drivers/iec_frames.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mts::drivers {

// The timing and limits of the shared plumbing; each driver's config derives from it.
struct iec_session_settings {
  std::chrono::milliseconds response_timeout{5000}; // per reply: first byte / gap between bytes
  std::chrono::milliseconds baud_switch_delay{300}; // after change_line, before awaiting P0
  std::chrono::milliseconds reaction_delay{200};    // before every message the driver sends
  int max_repeats = 3;                              // NAKs per message on a bad BCC
  int max_baud = 9600;
  std::size_t max_message = iec::frame_parser::default_max_message;
};

class iec_session_driver : public meter_driver {
public:
  actions on_link_up(unix_ms now) override;
  actions on_bytes(std::string_view data, unix_ms now) override;
  actions on_timer(std::uint64_t id, unix_ms now) override;
  actions on_link_down(unix_ms now) override;
  const meter_readings& readings() const override { return readings_; }

protected:
  enum class after_send { response, baud_switch, finish_success };
  // What the session awaits (the sign-off and the end are the base's own).
  enum class stage {
    ident,    // the identification
    p0,       // the password operand / seed (after the baud switch)
    password, // the answer to the password
    request   // the answer to the current read or write
  };

  iec_session_driver(session_request request, const iec_session_settings& settings);

  // A complete, well-framed message that is not an echo, while one is awaited.
  virtual void on_message(actions& out, const iec::message& m, unix_ms now) = 0;
  // The failure reason when the response timeout expires in stage::request, naming the item
  // ("no answer to ... read"); the sign-on stages have theirs here.
  virtual std::string request_timeout_reason() const = 0;

  void schedule(actions& out, std::string bytes, after_send then = after_send::response);
  void fail(actions& out, failure_kind kind, std::string reason);
  // Answers an identification: picks min(meter's mode C baud (its 4th character), max_baud)
  // and schedules "ACK 0 Z <mode>" with the baud switch. False (after a permanent failure
  // "meter does not support mode C") when the identification has no mode C baud character.
  bool select_option(actions& out, const std::string& identification, char mode);
  // B0 after the reaction delay, then finish (success).
  void sign_off(actions& out);
  // The answers any request can meet: the meter's NAK (it got the command garbled: resend it)
  // and a sign-off B0/B1 (transient "meter signed off"). True when `m` was one of them.
  bool nak_or_sign_off(actions& out, const iec::message& m);
  // In stage::p0: whether `m` is the meter's P0 (its operand is m.text). A repeated
  // identification is ignored; anything else fails the session ("meter signed off" for B0/B1,
  // else "unexpected answer to option select").
  bool is_p0(actions& out, const iec::message& m);
  // Records the serial number read; when the request expects another (compared without
  // surrounding blanks) fails the session permanently ("Serial number mismatch"): false.
  bool accept_serial(actions& out, std::string serial);
  // Appends a status event to readings_.
  void add_event(std::string text);
  // Changes the reaction delay for every later send.
  void set_reaction_delay(std::chrono::milliseconds delay) { settings_.reaction_delay = delay; }

  session_request request_;
  meter_readings readings_;
  stage stage_ = stage::ident;
  bool logged_in_ = false;
  int repeats_ = 0;
  int baud_ = 300; // the line after the option select

private:
  enum class phase { idle, running, signoff, done };

  void arm(actions& out, std::chrono::milliseconds after);
  void receive(actions& out, const iec::message& m, unix_ms now);
  void bad_block(actions& out);
  std::string timeout_reason() const;
  void meter_nak(actions& out);
  static bool is_sign_off(const iec::message& m);

  iec_session_settings settings_;
  iec::frame_parser parser_;
  phase phase_ = phase::idle;
  bool switching_ = false; // in the baud switch delay
  std::uint64_t timer_id_ = 0;
  std::optional<std::string> pending_; // sent when the reaction delay expires
  after_send then_ = after_send::response;
  std::string last_sent_;
};

} // namespace mts::drivers

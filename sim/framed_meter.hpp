#pragma once
// The meter-side plumbing shared by the simulated meters that speak IEC 62056-21 framing
// (sim::iec_meter, sim::elster_meter): a base class that owns the receive buffer (frame
// parser), the timer (reaction delay / inactivity timeout), the sign-on request, repeat on
// NAK, NAK on a bad BCC, and the transport faults. A derived meter only supplies its
// identification and answers option selects, commands and ACKs.
//
// Decisions:
// - Every reply leaves after reaction_delay (the timer is armed, the bytes leave on its
//   expiry; 0 sends at once). Without a pending reply the timer is the inactivity timeout
//   (every batch of bytes re-arms it); its expiry closes the link.
// - Sign-on: a request "/?addr!" is answered in the request and option phases when the
//   address is empty, or equals the identity's outstation address, or the identity has none;
//   otherwise the meter stays silent. The identification is followed by an option select
//   (handed to the derived meter, which enters the session or goes back to awaiting a
//   request).
// - In the session: NAK received -> resend the last block (good BCC); a command with a bad
//   BCC -> NAK; an ACK -> on_ack; other non-commands and oversize messages are ignored.
// - Faults (sim/meter_data.hpp meter_faults): silent (reads, never answers; inactivity still
//   closes), drop_after_bytes (the byte that reaches the count is the last one sent, then
//   close), corrupt_bcc_every k (every k-th block sent, counted from the session start, gets
//   a wrong BCC; repeats after a NAK are not counted), garbage_before_reply (before every
//   reply). The others are the derived meter's.
// - A reply can carry a line change (line_after_pending_) or a close (close_after_pending_),
//   applied right after its bytes.
#include "drivers/driver.hpp"
#include "drivers/iec_frames.hpp"
#include "sim/meter_data.hpp"
#include "sim/meter_session.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mts::sim {

// The timing common to every simulated meter type.
struct framed_meter_timing {
  std::chrono::milliseconds reaction_delay{20};
  std::chrono::milliseconds inactivity_timeout{30000};
  std::optional<unix_seconds> pinned_now; // true time; absent: the time of each event

  // Meter time: the true time (pinned, or `now` of the last event) plus the identity's
  // clock offset (its type's UTC offset and its drift).
  unix_seconds meter_now(const meter_identity& identity, drivers::unix_ms now) const;
};

class framed_meter : public meter_session {
public:
  drivers::actions on_link_up(drivers::unix_ms now) override;
  drivers::actions on_bytes(std::string_view data, drivers::unix_ms now) override;
  drivers::actions on_timer(std::uint64_t id, drivers::unix_ms now) override;
  drivers::actions on_link_down(drivers::unix_ms now) override;

  const drivers::line_settings& line() const override { return line_; }
  bool closed() const override { return phase_ == phase::closed; }
  const meter_model& model() const { return model_; }

protected:
  framed_meter(meter_identity identity, meter_faults faults, const framed_meter_timing& timing);

  // The identification sent after '/' in answer to a request.
  virtual std::string identification() const = 0;
  // A message after the identification: an option select or anything else.
  virtual void on_option_select(drivers::actions& out, const drivers::iec::message& m) = 0;
  // A well-framed command in the session.
  virtual void on_command(drivers::actions& out, const drivers::iec::message& m) = 0;
  // An ACK in the session.
  virtual void on_ack(drivers::actions&) {}

  // Queue a reply. block: an STX/SOH message (counted for BCC corruption, remembered for NAK).
  void reply(drivers::actions& out, std::string message, bool block);
  void close(drivers::actions& out);
  // Switch the line to `baud` now (the option select was accepted).
  void switch_baud(drivers::actions& out, int baud);
  // After the option select: the session starts, or the meter awaits a request again.
  void enter_session() { phase_ = phase::session; }
  void await_request() { phase_ = phase::request; }
  void expect_option_select(bool on) { parser_.expect_option_select(on); }
  // Meter time: the true time (pinned or of the last event) plus the identity's clock offset.
  unix_seconds meter_now() const;

  meter_model model_;
  bool close_after_pending_ = false;
  std::optional<drivers::line_settings> line_after_pending_;

private:
  enum class phase { idle, request, option, session, closed };

  void flush(drivers::actions& out);
  void emit(drivers::actions& out, std::string bytes);
  void arm(drivers::actions& out, std::chrono::milliseconds after);
  void handle(drivers::actions& out, const drivers::iec::message& m);

  framed_meter_timing timing_;
  drivers::line_settings line_{300, 7, 'E', 1};
  drivers::iec::frame_parser parser_;
  phase phase_ = phase::idle;
  drivers::unix_ms now_ = 0;
  std::uint64_t timer_id_ = 0;
  std::optional<std::string> pending_; // leaves when the reaction delay expires
  std::string last_; // the last block sent, good BCC (resent on NAK)
  std::size_t blocks_ = 0;
  std::size_t sent_ = 0;
};

} // namespace mts::sim

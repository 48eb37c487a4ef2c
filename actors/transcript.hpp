#pragma once
// The per-attempt transcript of a test: what went over the link and what happened to it, kept
// so that an operator can see why a meter "does not answer" (test-transcript, docs/api.md).
//
// Decisions:
// - One transcript per attempt, each bounded by max_bytes (scheduler.transcript_max_bytes):
//   every event costs its text (bytes as rendered, or its detail) plus event_overhead. Once an
//   event would pass the bound it and all later ones are dropped and counted, except the
//   attempt's end, which is always kept: the head of a session (sign-on, identification,
//   password) and how it ended are what explain a failure.
// - Secrets never reach the transcript: bytes are masked before they are stored. Masked are
//   (1) the operand of an IEC 62056-21 password command (SOH "P1"/"P2" STX "(...)" ETX) and
//   its BCC, which would give away the XOR of the password's bytes, and (2) every occurrence
//   of the test's password text, in either direction and in any message. Both become
//   mask_text. Masking works on each message as sent or received; a password split across two
//   reads of the line would only be caught by rule 1 (drivers send each command whole).
// - Bytes are stored as text: printable ASCII as it is, control characters by name (<SOH>,
//   <STX>, <ETX>, <EOT>, <ACK>, <NAK>, <CR>, <LF>, ...) and any other byte as <xHH>.
// - Times are milliseconds since the attempt began (the wall clock the test actor uses).
// - Events: "connecting" (detail: host:port), "link up", "sent", "received", "timer" (a
//   driver timer that expired without making the driver send: a response timeout, the end of
//   the baud switch delay), "link down" (detail: reason), "connect failed" (detail: reason),
//   "end" (detail: the attempt's failure reason, "" on success).
#include "drivers/driver.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mts {

inline constexpr const char* transcript_mask_text = "********";

// Masks the password command's operand and every occurrence of a non-empty secret, matching
// on the 7-bit characters (bytes sent with a software parity bit are masked too).
std::string mask_secrets(std::string_view bytes, const std::vector<std::string>& secrets);

// Printable text of raw bytes (see the decisions above).
std::string printable_bytes(std::string_view bytes);

class attempt_transcript {
public:
  static constexpr std::size_t event_overhead = 16;

  attempt_transcript(std::int64_t attempt, drivers::unix_ms start, std::size_t max_bytes,
                     std::vector<std::string> secrets);

  void sent(drivers::unix_ms now, std::string_view bytes) { data(now, "sent", bytes); }
  void received(drivers::unix_ms now, std::string_view bytes) { data(now, "received", bytes); }
  // Any other event; detail may be empty.
  void event(drivers::unix_ms now, std::string event, std::string detail = {});
  // The attempt's end; always recorded (once), whatever the bound.
  void end(drivers::unix_ms now, std::string reason);

  std::int64_t attempt() const { return attempt_; }
  std::size_t used_bytes() const { return used_; }
  std::size_t dropped_events() const { return dropped_events_; }
  bool ended() const { return ended_; }
  // {"attempt":n,"startTime":"...Z","events":[{"ms":..,"event":..,"data"|"detail":..}...],
  //  "droppedEvents":n}
  boost::json::object to_json() const;

private:
  struct entry {
    drivers::unix_ms ms;
    std::string event;
    std::string text; // "data" for sent/received, else "detail"
    bool is_data;
  };
  void data(drivers::unix_ms now, const char* event, std::string_view bytes);
  bool drop_if_full();
  void add(entry e, bool always);

  std::int64_t attempt_;
  drivers::unix_ms start_;
  std::size_t max_bytes_;
  std::vector<std::string> secrets_;
  std::vector<entry> entries_;
  std::size_t used_ = 0;
  std::size_t dropped_events_ = 0;
  bool full_ = false;
  bool ended_ = false;
};

// The JSON array text of a test's transcripts (empty string when there are none).
std::string transcripts_json(const std::vector<attempt_transcript>& attempts);

} // namespace mts

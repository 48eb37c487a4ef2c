#pragma once
// IEC 62056-21 (mode C) framing, shared by the client driver (drivers/iec62056_21.*) and the
// simulated meter: control characters, the block check character, message builders, the
// mode C baud-rate characters, and an incremental parser for both directions of the line.
//
// Decisions:
// - BCC: XOR of every byte after the opening SOH (or STX when there is no SOH) up to and
//   including the closing ETX/EOT, masked to 7 bits. `bcc()` takes exactly that span.
// - The link strips parity, so bytes arrive as 7-bit characters; the parser masks every byte
//   with 0x7F all the same.
// - The parser is a byte accumulator: feed() appends whatever arrived, next() returns one
//   complete message at a time (or nothing while a message is incomplete). Bytes that cannot
//   start a message ('/', SOH, STX, ACK, NAK) are dropped, so line noise before a reply is
//   skipped. A message (or an unterminated one) longer than the size limit yields one
//   `oversize` message and the buffer is discarded.
// - A single ACK byte and the option-select message `ACK V Z Y CR LF` share their first byte.
//   Only the meter side receives option selects, and only right after its identification, so
//   the meter tells the parser when to expect one (expect_option_select); otherwise an ACK is
//   always a one-byte acknowledgement.
// - A line starting with '/' is a request (`/?addr!`) when it starts with "/?" and ends with
//   '!', otherwise an identification. Both end with CR LF.
#include "common/time.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mts::drivers::iec {

// A VDEW/P.01 time stamp, UTC: "YYMMDDhhmm" or "YYMMDDhhmmss", optionally after a season
// digit; digits only, a real date and time. Shared by the driver and the simulated meter.
std::optional<unix_seconds> parse_vdew_time(std::string_view digits);

inline constexpr char soh = 0x01;
inline constexpr char stx = 0x02;
inline constexpr char etx = 0x03;
inline constexpr char eot = 0x04;
inline constexpr char ack = 0x06;
inline constexpr char nak = 0x15;

// XOR of `body` masked to 7 bits; `body` is what follows SOH/STX up to and including ETX/EOT.
char bcc(std::string_view body);

// "/?" address "!" CR LF (address may be empty).
std::string request_message(std::string_view address);
// "/" identification CR LF (identification = "XXXZ[\W]rest").
std::string identification_message(std::string_view identification);
// ACK V Z Y CR LF, e.g. option_select_message('0', '5', '1').
std::string option_select_message(char protocol, char baud_char, char mode);
// SOH C D STX data ETX|EOT BCC, e.g. command_message("R1", "1.8.0()").
std::string command_message(std::string_view command, std::string_view data, bool partial = false);
// SOH B 0 ETX BCC = 01 42 30 03 71.
std::string break_message();
// STX data ETX|EOT BCC.
std::string data_message(std::string_view data, bool partial = false);

// Mode C/E baud-rate character: '0'..'6' <-> 300..19200.
std::optional<int> mode_c_baud(char z);
std::optional<char> mode_c_baud_char(int baud);

enum class message_kind {
  identification, // text: the identification after '/', without CR LF
  request,        // text: the device address between "/?" and '!'
  option_select,  // text: the three characters V Z Y
  ack,
  nak,
  block,          // STX data ETX|EOT BCC; text: data; partial: ended by EOT
  command,        // SOH C D [STX data] ETX|EOT BCC; command: "P0", "R1", "B0"...; text: data
  oversize        // a message over the size limit; the buffer was discarded
};

struct message {
  message_kind kind = message_kind::ack;
  std::string text;
  std::string command;
  bool partial = false;
  bool bcc_ok = true; // block and command only
  std::string raw;    // every byte of the message as received (7-bit)
};

class frame_parser {
public:
  static constexpr std::size_t default_max_message = 64 * 1024;
  explicit frame_parser(std::size_t max_message = default_max_message) : max_(max_message) {}

  void feed(std::string_view bytes);
  // The next complete message, or nothing until more bytes arrive.
  std::optional<message> next();
  // Meter side: the next ACK starts an option select (ACK V Z Y CR LF).
  void expect_option_select(bool on) { option_select_ = on; }
  void clear() { buf_.clear(); }
  std::size_t buffered() const { return buf_.size(); }

private:
  std::optional<message> take(message_kind kind, std::size_t length);
  std::optional<message> framed(message_kind kind);

  std::string buf_;
  std::size_t max_;
  bool option_select_ = false;
};

} // namespace mts::drivers::iec

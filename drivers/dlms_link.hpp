#pragma once
// DLMS/COSEM lower layers, sans-I/O: HDLC (IEC 62056-46, frame format type 3) and the TCP/UDP
// wrapper (IEC 62056-47). Frame codecs and stream parsers, SNRM/UA parameter negotiation, and
// the link state machines of both sides: the client link the driver (drivers/dlms.*) talks
// APDUs through, and the server link the simulated meter (sim/dlms_meter.*) uses. A link never
// reads a clock or arms a timer: the driver owns the single timer and asks the link to give up.
// Facts and vectors: docs/dlms.md.
//
// Decisions:
// - Frames are found by their flag and length field (not by scanning for 7E), checked by HCS
//   (when an information field is present) and FCS; a frame with a bad check, garbage between
//   frames, and frames addressed to someone else are dropped and counted, never fatal.
// - The client proposes its receive limits in SNRM (max information field receive = the
//   configured value, transmit the configured value, windows 1) and uses the minimum of each
//   pair after the UA; a UA without an information field means the defaults (128, window 1).
// - Window 1 in both directions (every I-frame has P/F set and is acknowledged before the
//   next); a peer that sends several I-frames before polling is still accepted: everything up
//   to the frame with P/F set is taken, then acknowledged once.
// - Segmentation both ways: an APDU longer than the peer's max information field goes out in
//   frames with the segmentation bit on all but the last; each is sent after the peer's RR.
//   Received segments are joined until a frame without the bit; RR with N(R) asks for more.
// - LLC header E6 E6 00 (client to server) / E6 E7 00 (server to client) in the first frame of
//   each APDU only; a missing LLC on receive is tolerated.
// - Sequence numbers: an I-frame whose N(S) is not the expected one is a repeat and is
//   acknowledged again without being taken twice; an N(R) that does not acknowledge what was
//   sent makes the frame be sent again (at most 3 times, then a link error).
// - FRMR, or DM while connected: link error naming it ("frame rejected: invalid control
//   field"). DM or UA to DISC: closed.
// - The wrapper: 8-byte header version 1, source and destination wPort, length; a header
//   with another version or a length above the limit is a link error (the stream cannot be
//   resynchronised).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mts::drivers::dlms {

// CRC-16/X.25 (HCS and FCS): "123456789" -> 0x906E; sent least significant byte first.
std::uint16_t crc16_x25(std::string_view bytes);

// ---- HDLC addresses ----
// A client address (1 byte on the wire: value << 1 | 1). 0x10 public client -> 0x21.
std::string encode_client_address(std::uint8_t client);
// A server address of 1, 2 or 4 bytes: upper = logical device, lower = physical device.
// size 1: upper only; 2: one byte each; 4: two bytes each (7 bits per byte, LSB of the last
// byte set). Values that do not fit the size throw std::invalid_argument.
std::string encode_server_address(std::uint16_t logical, std::uint16_t physical, int size);
struct server_address {
  std::uint16_t logical = 0;
  std::uint16_t physical = 0;
  int size = 1;
};
std::optional<server_address> decode_server_address(std::string_view raw);

// ---- HDLC frames ----
namespace control {
inline constexpr std::uint8_t snrm = 0x93, ua = 0x73, disc = 0x53, dm = 0x1F, frmr = 0x97, ui = 0x13;
inline constexpr std::uint8_t rr(int nr) { return static_cast<std::uint8_t>(0x11 | (nr & 7) << 5); }
inline constexpr std::uint8_t rnr(int nr) { return static_cast<std::uint8_t>(0x15 | (nr & 7) << 5); }
inline constexpr std::uint8_t i_frame(int ns, int nr, bool poll = true) {
  return static_cast<std::uint8_t>((nr & 7) << 5 | (poll ? 0x10 : 0) | (ns & 7) << 1);
}
inline constexpr bool is_i_frame(std::uint8_t c) { return (c & 1) == 0; }
inline constexpr bool is_rr(std::uint8_t c) { return (c & 0x0F) == 0x01; }
inline constexpr bool is_rnr(std::uint8_t c) { return (c & 0x0F) == 0x05; }
inline constexpr int ns(std::uint8_t c) { return c >> 1 & 7; }
inline constexpr int nr(std::uint8_t c) { return c >> 5 & 7; }
inline constexpr bool poll(std::uint8_t c) { return (c & 0x10) != 0; }
} // namespace control

struct hdlc_frame {
  bool segmented = false;
  std::string destination; // raw address bytes
  std::string source;      // raw address bytes
  std::uint8_t control = 0;
  std::string information; // may be empty
};
// 7E A0|A8 len dest src control [HCS info] FCS 7E
std::string encode_frame(const hdlc_frame& f);

// Finds frames in a byte stream (see Decisions). max_frame bounds what is buffered.
class hdlc_frame_parser {
public:
  void feed(std::string_view bytes);
  // The next good frame, or nullopt until more bytes arrive.
  std::optional<hdlc_frame> next();
  std::size_t dropped_bytes() const { return dropped_; } // garbage and bad-check frames
  std::size_t bad_frames() const { return bad_frames_; }
  void clear() {
    buffer_.clear();
    kept_flag_ = false;
  }

private:
  std::string buffer_;
  std::size_t dropped_ = 0;
  std::size_t bad_frames_ = 0;
  // buffer_ starts with the closing flag of the last frame, kept because it may also open
  // the next one (a shared flag); it is not garbage when it does not.
  bool kept_flag_ = false;
};

// SNRM / UA information field: 81 80 <len> 05 <tx> 06 <rx> 07 <window tx> 08 <window rx>,
// values in 1, 2 or 4 bytes (encoded as 1 byte below 256, else 2; windows as 4).
struct hdlc_parameters {
  std::uint32_t max_info_transmit = 128;
  std::uint32_t max_info_receive = 128;
  std::uint32_t window_transmit = 1;
  std::uint32_t window_receive = 1;
};
std::string encode_hdlc_parameters(const hdlc_parameters& p);
// nullopt when malformed; missing TLVs take the defaults.
std::optional<hdlc_parameters> decode_hdlc_parameters(std::string_view information);

// ---- wrapper ----
inline constexpr std::size_t wrapper_header_size = 8;
std::string encode_wrapper(std::uint16_t source_wport, std::uint16_t destination_wport, std::string_view apdu);
struct wrapper_pdu {
  std::uint16_t source = 0;
  std::uint16_t destination = 0;
  std::string apdu;
};

// ---- link state machines ----
// What a link call produced.
struct link_output {
  std::string send;               // bytes to send now (may be empty)
  std::vector<std::string> apdus; // complete APDUs received, in order (LLC removed)
  bool opened = false;            // the link is up (UA to SNRM; wrapper: at open())
  bool closed = false;            // the link was closed (UA or DM to DISC, DISC from the peer)
  std::string error;              // the link failed (the text says why); nothing more to do
};

struct hdlc_settings {
  std::uint8_t client_address = 0x10;
  std::uint16_t server_logical = 1;
  std::uint16_t server_physical = 0;
  int server_address_size = 1;            // 1, 2 or 4
  std::uint32_t max_info_receive = 128;   // what the client proposes to receive
  std::uint32_t max_info_transmit = 128;  // what the client proposes to send
  // Server side only: the most the server accepts / sends whatever the client proposes.
  std::uint32_t server_max_info_receive = 128;
  std::uint32_t server_max_info_transmit = 128;
  std::size_t max_apdu = 65535 + 64; // longest APDU reassembled (more: link error)
};
struct wrapper_settings {
  std::uint16_t client_wport = 0x10;
  std::uint16_t server_wport = 1;
  std::size_t max_apdu = 65535 + 64;
};

class client_link {
public:
  virtual ~client_link() = default;
  // Start: HDLC sends SNRM (with the proposed parameters); the wrapper is open at once.
  virtual link_output open() = 0;
  // Send one APDU (only while open and no other APDU is being sent).
  virtual link_output send_apdu(std::string_view apdu) = 0;
  virtual link_output on_bytes(std::string_view bytes) = 0;
  // The driver's wait for an answer expired: HDLC sends its last frame again (the peer
  // answers a repeated frame by repeating its own last one); the wrapper sends nothing (TCP
  // does not lose bytes). Counted by the driver against its max_repeats.
  virtual link_output repeat_last() = 0;
  // Close: HDLC sends DISC (answer UA or DM -> closed); the wrapper closes at once.
  virtual link_output close() = 0;
  // The negotiated parameters (HDLC after the UA; wrapper: the defaults).
  virtual hdlc_parameters negotiated() const = 0;
  // Bytes dropped (bad frames, garbage, other addresses): for the driver's diagnostics.
  virtual std::size_t dropped_bytes() const = 0;
};
std::unique_ptr<client_link> make_hdlc_client(const hdlc_settings& settings);
std::unique_ptr<client_link> make_wrapper_client(const wrapper_settings& settings);

class server_link {
public:
  virtual ~server_link() = default;
  // Bytes from the client: SNRM -> UA (negotiated), I-frames -> APDUs (+ RR for segments),
  // RR -> the next segment of what is being sent, DISC -> UA and closed. Frames to another
  // server address are ignored (no answer).
  virtual link_output on_bytes(std::string_view bytes) = 0;
  // Send one APDU (segmented as negotiated; the rest follows the client's RRs).
  virtual link_output send_apdu(std::string_view apdu) = 0;
  virtual hdlc_parameters negotiated() const = 0;
};
std::unique_ptr<server_link> make_hdlc_server(const hdlc_settings& settings);
std::unique_ptr<server_link> make_wrapper_server(const wrapper_settings& settings);

} // namespace mts::drivers::dlms

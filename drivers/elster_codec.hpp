#pragma once
// Elster A1700 / A1140 application-layer encodings, shared by the client driver
// (drivers/elster.*) and the simulated meter: the P0/P2 password hash, hex text of binary data,
// little-endian packed BCD registers, the 861 BCD clock, the 724 system status texts, the
// ERRn reply texts, serial number normalisation, and the 550 load profile record stream (both
// directions). The wire contract is /work/ELSTER-CONTRACT.md; docs/elster.md is its product
// form. Framing and BCC are drivers/iec_frames.* (not repeated here).
//
// Decisions:
// - Binary data travels as upper-case hex text; decoding accepts either case and rejects an
//   odd length or a non-hex character (nullopt).
// - Times in this module are "meter seconds": seconds since 1970 read as the meter's own wall
//   clock. Converting to UTC (the per-type clock offset) is the driver's job, not the codec's.
// - Numbers are kept exact: BCD registers decode to integers; a profile value DDDDD x 10^E is
//   kept as its digits and exponent, so the caller scales by a power of ten once (see
//   scale_decimal) and the simulator can predict the same double.
// - The record stream parser never throws: it stops at FF (end), at E2 (unsupported external
//   data block) or when the bytes run out (a record cut short is dropped, `truncated`).
#include "common/time.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mts::drivers::elster {

// ---- password (notes §2.3) ----
// hash(password, seed): x[i] = pw[i] XOR seed[i]; then a running add (x[i] += previous, the
// first "previous" being the XOR'd last byte), mod 256. password: exactly 8 characters;
// seed: 16 hex characters. Result: 16 upper-case hex characters; nullopt for any other input.
std::optional<std::string> password_hash(std::string_view password, std::string_view seed_hex);
// The password a request without one uses.
inline constexpr std::string_view default_password = "00000000";
// The level 3 first operand.
inline constexpr std::string_view zero_operand = "0000000000000000";

// ---- hex text ----
std::string to_hex(std::string_view bytes); // upper case
std::optional<std::string> from_hex(std::string_view hex);

// ---- integers ----
// Little-endian unsigned integer of bytes.size() (<= 8) bytes.
std::uint64_t decode_le_uint(std::string_view bytes);
std::string encode_le_uint(std::uint64_t value, std::size_t size);
// Little-endian packed BCD (reverse the bytes, read the hex digits as decimal); nullopt when a
// nibble is not a decimal digit or more than 8 bytes are given.
std::optional<std::uint64_t> decode_le_bcd(std::string_view bytes);
// value must fit in 2*size decimal digits (higher digits are dropped).
std::string encode_le_bcd(std::uint64_t value, std::size_t size);

// value x 10^exponent as the double nearest to that decimal number (exact integer, then one
// division or multiplication by an exact power of ten).
double scale_decimal(std::uint64_t value, int exponent);

// ---- 861 clock: 7 BCD bytes sec, min, hour, day, month, weekday, year-2000 ----
std::optional<unix_seconds> decode_clock(std::string_view seven_bytes); // meter seconds
std::string encode_clock(unix_seconds meter_seconds);                   // weekday byte 0

// ---- 724 system status ----
inline constexpr std::uint32_t system_status_mask = 0xFFFFFF07u;
// Text of a status bit (0..31); nullptr for a spare bit (3..7).
const char* system_status_text(int bit);
// One text per set bit under the mask, bit 31 first down to bit 0.
std::vector<std::string> system_status_events(std::uint32_t status);

// ---- ERRn replies ----
// "(ERRn)" -> n (1..9); nullopt for anything else.
std::optional<int> error_number(std::string_view reply_text);
// ERR1 "invalid command" ... ERR6 "general communications error"; others "meter error N".
std::string error_text(int n);

// ---- 798 serial ----
// Spaces removed, then leading zeros removed while more than 8 characters remain.
std::string normalise_serial(std::string_view raw);

// ---- channels (777 mask bit order; the seven the API names) ----
inline constexpr int named_channel_count = 7;
struct channel_name {
  const char* name;
  const char* units;
};
// Import, Export, Q1..Q4, VA: "kWh Import"/"kWh", ..., "kVAh"/"kVAh".
const std::array<channel_name, named_channel_count>& channel_names();

// ---- 550 load profile record stream (notes §2.8) ----
enum class record_kind : std::uint8_t {
  data = 0x00, // not a marker: a status byte and the channel values
  external_data = 0xE2,
  new_day = 0xE4,
  power_up = 0xE5,
  power_down = 0xE6,
  configuration_change = 0xE8,
  forced_end_of_demand = 0xE9,
  time_change = 0xEA,
  profile_cleared = 0xEB,
  daylight_saving = 0xED,
  end = 0xFF
};
bool is_marker(std::uint8_t byte);
// "Power up", "Power down", "Configuration change", "Forced end of demand", "Time change",
// "Load profile cleared", "Daylight saving change"; nullptr for new_day, data, end, E2.
const char* marker_event_text(record_kind kind);

// Integration code (low nibble) -> minutes: 1,2,3,4,5,6,10,15,20,30,60; nullopt beyond.
std::optional<int> integration_minutes(std::uint8_t code);
std::optional<std::uint8_t> integration_code(int minutes);

// E4/E8 mask (big-endian on the wire, bit 0x0080 = DST flag) <-> channel bits.
std::uint16_t channels_from_wire_mask(std::uint16_t wire);
std::uint16_t wire_mask_from_channels(std::uint16_t channels);
int channel_count(std::uint16_t channels);

// A profile value DDDDD x 10^E (3 BCD bytes, E the last nibble).
struct profile_value {
  std::uint32_t digits = 0;
  int exponent = 0;
};
std::optional<profile_value> decode_profile_value(std::string_view three_bytes);
// The smallest exponent that fits DDDDD (values over 99999 lose their low digits).
std::string encode_profile_value(std::uint64_t value);

struct profile_record {
  record_kind kind = record_kind::data;
  std::uint32_t timestamp = 0;  // markers: meter seconds
  std::uint16_t channels = 0;   // E4/E8: channel bits
  std::uint8_t code = 0;        // E4/E8: integration code
  std::uint8_t status = 0;      // data: status byte
  std::vector<profile_value> values; // data: one per channel enabled at that point
};

struct profile_stream {
  std::vector<profile_record> records; // excluding the FF end marker
  bool ended = false;       // FF seen
  bool unsupported = false; // stopped at E2
  bool truncated = false;   // bytes ran out inside a record (or before FF)
  bool bad_value = false;   // a data value with a non-BCD digit (its record was dropped)
};
// `channels` is the channel set data records use until the first E4/E8 (normally the 777
// mask; the stream starts with E4 anyway).
profile_stream parse_profile_stream(std::string_view bytes, std::uint16_t channels);

// Builders (simulator side).
std::string encode_day_marker(record_kind kind, std::uint32_t timestamp, std::uint16_t channels,
                              std::uint8_t code); // E4 or E8
std::string encode_event_marker(record_kind kind, std::uint32_t timestamp);
std::string encode_data_record(std::uint8_t status, const std::vector<std::uint64_t>& values);

} // namespace mts::drivers::elster

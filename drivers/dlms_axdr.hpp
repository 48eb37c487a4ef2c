#pragma once
// DLMS/COSEM data encoding (A-XDR, IEC 62056-6-2 / Green Book): the Data CHOICE as a value
// tree, its encoding and decoding, COSEM date-time, OBIS codes and the unit table. Pure
// functions, shared by the client driver (drivers/dlms.*) and the simulated meter
// (sim/dlms_meter.*). Facts and vectors: docs/dlms.md.
//
// Decisions:
// - Decoding is liberal where the standard allows it (every Data tag including compact-array,
//   lengths in 1, 2, 3 or 4 bytes); it is strict about truncation: a Data that runs past the
//   input throws axdr_error naming what was being read, never reads out of bounds.
// - Encoding is strict: lengths in the shortest form, integers in their fixed widths.
// - Nesting is bounded (max_depth) so hostile input cannot exhaust the stack.
#include "common/time.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mts::drivers::dlms {

struct axdr_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Data CHOICE tags.
enum class tag : std::uint8_t {
  null_data = 0,
  array = 1,
  structure = 2,
  boolean = 3,
  bit_string = 4,
  double_long = 5,          // int32
  double_long_unsigned = 6, // uint32
  octet_string = 9,
  visible_string = 10,
  utf8_string = 12,
  bcd = 13,
  integer = 15,       // int8
  long_ = 16,         // int16
  unsigned_ = 17,     // uint8
  long_unsigned = 18, // uint16
  compact_array = 19,
  long64 = 20,
  long64_unsigned = 21,
  enum_ = 22,
  float32 = 23,
  float64 = 24,
  date_time = 25, // 12 bytes
  date = 26,      // 5 bytes
  time = 27,      // 4 bytes
};

inline constexpr int max_depth = 16;

// One Data value.
struct data {
  tag type = tag::null_data;
  std::int64_t int_value = 0;   // boolean (0/1), enum, integer kinds up to long64
  std::uint64_t uint_value = 0; // long64-unsigned; also set for every non-negative integer kind
  double float_value = 0;       // float32, float64
  std::string bytes;            // octet-string, visible/utf8-string, bcd, bit-string (packed,
                                // MSB first), date-time/date/time (raw 12/5/4 bytes)
  std::size_t bit_length = 0;   // bit-string
  std::vector<data> items;      // array, structure (a decoded compact-array becomes an array)

  static data null();
  static data boolean(bool v);
  static data integer8(std::int8_t v);
  static data long16(std::int16_t v);
  static data unsigned8(std::uint8_t v);
  static data long_unsigned16(std::uint16_t v);
  static data double_long32(std::int32_t v);
  static data double_long_unsigned32(std::uint32_t v);
  static data long64(std::int64_t v);
  static data long64_unsigned(std::uint64_t v);
  static data enumerated(std::uint8_t v);
  static data float32(float v);
  static data float64(double v);
  static data octet_string(std::string v);
  static data visible_string(std::string v);
  static data structure(std::vector<data> items);
  static data array(std::vector<data> items);

  bool is_null() const { return type == tag::null_data; }
  // Any integer kind, boolean or enum as an integer (long64-unsigned above INT64_MAX: nullopt).
  std::optional<std::int64_t> integer() const;
  // Any numeric kind (integers, enum, floats) as a double; nullopt otherwise.
  std::optional<double> number() const;
  bool operator==(const data& o) const;
  bool operator!=(const data& o) const { return !(*this == o); }
};

// A-XDR length: < 0x80 one byte, else 0x81 xx, 0x82 xx xx, 0x83.., 0x84...
void encode_length(std::string& out, std::size_t n);
// Reads a length at pos, advancing it. Throws axdr_error when truncated or above 2^31.
std::size_t decode_length(std::string_view in, std::size_t& pos);

std::string encode(const data& d);
void encode_to(std::string& out, const data& d);
// One Data at pos, advancing pos. Throws axdr_error (truncated, unknown tag, too deep).
data decode(std::string_view in, std::size_t& pos);
// The whole input is exactly one Data (trailing bytes: axdr_error).
data decode_all(std::string_view in);

// ---- COSEM date-time (12 octets) ----
struct cosem_datetime {
  int year = 0xFFFF; // 0xFFFF: not specified
  int month = 0xFF;  // 1..12; 0xFD/0xFE daylight-saving end/begin; 0xFF not specified
  int day = 0xFF;    // 1..31; 0xFD/0xFE second-last/last day; 0xFF not specified
  int weekday = 0xFF; // 1 = Monday .. 7; 0xFF not specified
  int hour = 0xFF, minute = 0xFF, second = 0xFF, hundredths = 0xFF;
  std::optional<int> deviation; // minutes; absent = 0x8000 (not specified)
  std::uint8_t clock_status = 0xFF; // 0xFF: not specified
};
inline constexpr std::uint8_t clock_status_invalid = 0x01;
inline constexpr std::uint8_t clock_status_doubtful = 0x02;
inline constexpr std::uint8_t clock_status_different_base = 0x04;
inline constexpr std::uint8_t clock_status_invalid_status = 0x08;
inline constexpr std::uint8_t clock_status_dst = 0x80;

// 12 raw bytes -> fields; nullopt when not 12 bytes.
std::optional<cosem_datetime> parse_datetime(std::string_view twelve);
std::string encode_datetime(const cosem_datetime& dt); // 12 raw bytes
// Accepts an octet-string of 12 bytes or a date-time Data (tag 25).
std::optional<cosem_datetime> datetime_of(const data& d);

// How a meter's deviation field is read (meter-type setting clock_deviation):
// blue_book: UTC = local + deviation (UTC+1 sends -60); inverted: UTC = local - deviation;
// ignore: the deviation is not used.
enum class deviation_rule { blue_book, inverted, ignore };
// The UTC instant of a fully specified date and time (year, month, day, hour, minute, second;
// hundredths ignored). The deviation is applied per `rule`; when it is absent or ignored,
// `fallback_offset_minutes` is the local time's offset from UTC (UTC = local - offset).
// nullopt when a needed field is not specified or out of range.
std::optional<unix_seconds> to_unix(const cosem_datetime& dt, deviation_rule rule, int fallback_offset_minutes);
// Local time fields for a UTC instant at `offset_minutes` from UTC, weekday filled in,
// hundredths 0, clock_status 0. deviation as given (absent: 0x8000 on the wire).
cosem_datetime from_unix(unix_seconds t, int offset_minutes, std::optional<int> deviation);

// ---- OBIS codes ----
using obis = std::array<std::uint8_t, 6>;
// "1.0.1.8.0.255" (six decimal groups, dots), also the display form "1-0:1.8.0.255"
// ("A-B:C.D.E.F", F optional meaning 255). nullopt otherwise.
std::optional<obis> parse_obis(std::string_view text);
std::string obis_text(const obis& code); // "1.0.1.8.0.255"
std::string obis_bytes(const obis& code); // 6 raw bytes

// ---- units (scaler_unit enum, IEC 62056-6-2) ----
// "Wh", "varh", "VAh", "W", "V", "A", "Hz", ...; "" for 255 (count) and unknown codes.
std::string unit_text(int code);

} // namespace mts::drivers::dlms

// DLMS codecs (drivers/dlms_axdr.*, drivers/dlms_apdu.*): every published vector of the notes
// (meter-protocols.md §3.4-3.8, dlms-more.md §1, §2, §4, §6) byte for byte, both directions,
// plus the hostile-input guarantees (truncation at every length, nesting depth). Expected
// bytes are written out from the notes or assembled here field by field, never taken from the
// code under test.
#include "drivers/dlms_apdu.hpp"
#include "drivers/dlms_axdr.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

using namespace mts::drivers::dlms;

namespace {

// "60 1D A1" -> bytes (the notes' notation).
std::string hex(std::string_view text) {
  std::string out;
  int nibbles = 0, value = 0;
  for (char c : text) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else
      continue;
    value = value * 16 + v;
    if (++nibbles == 2) {
      out += static_cast<char>(value);
      nibbles = value = 0;
    }
  }
  if (nibbles != 0) // a typo in a vector (also used before Catch runs: no REQUIRE here)
    throw std::invalid_argument("odd hex digits in a test vector");
  return out;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (!out.empty())
      out += ' ';
    out += digits[b >> 4];
    out += digits[b & 0x0F];
  }
  return out;
}

// Byte strings compare as hex text, so a failure shows where they differ.
#define CHECK_BYTES(actual, expected) CHECK(to_hex(actual) == to_hex(expected))

data raw(tag t, std::string bytes) {
  data d;
  d.type = t;
  d.bytes = std::move(bytes);
  return d;
}

cosem_datetime make_dt(int y, int mo, int d, int wd, int h, int mi, int s, std::optional<int> dev, int status) {
  cosem_datetime dt;
  dt.year = y;
  dt.month = mo;
  dt.day = d;
  dt.weekday = wd;
  dt.hour = h;
  dt.minute = mi;
  dt.second = s;
  dt.hundredths = 0;
  dt.deviation = dev;
  dt.clock_status = static_cast<std::uint8_t>(status);
  return dt;
}

mts::unix_seconds utc(const char* text) {
  const auto t = mts::parse_utc(text);
  REQUIRE(t);
  return *t;
}

// The notes' AARE / AARQ vectors.
const std::string aarq_none = hex("60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 7E 1F 04 B0");
const std::string aarq_lls = hex("60 36 A1 09 06 07 60 85 74 05 08 01 01 8A 02 07 80 8B 07 60 85 74 05 08 02 01 "
                                 "AC 0A 80 08 31 32 33 34 35 36 37 38 "
                                 "BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 7E 1F 04 B0");
const std::string aarq_sn = hex("60 1D A1 09 06 07 60 85 74 05 08 01 02 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 1C 03 20 FF FF");
const std::string aarq_gmac = hex("60 36 A1 09 06 07 60 85 74 05 08 01 01 8A 02 07 80 8B 07 60 85 74 05 08 02 05 "
                                  "AC 0A 80 08 4B 35 36 69 56 61 67 59 "
                                  "BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 7E 1F 04 B0");
const std::string aare_accepted = hex("61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 00 "
                                      "BE 10 04 0E 08 00 06 5F 1F 04 00 00 50 1F 01 F4 00 07");
const std::string aare_gmac = hex("61 42 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 0E "
                                  "88 02 07 80 89 07 60 85 74 05 08 02 05 AA 0A 80 08 50 36 77 52 4A 32 31 46 "
                                  "BE 10 04 0E 08 00 06 5F 1F 04 00 00 50 1F 01 F4 00 07");
const std::string aare_lg_reject = hex("61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 0D");

} // namespace

// ======================================================================================
// A-XDR
// ======================================================================================

TEST_CASE("A-XDR: every Data tag of the notes' table encodes to its bytes and decodes back", "[dlms][codec]") {
  struct sample {
    data value;
    std::string bytes;
  };
  data bits;
  bits.type = tag::bit_string;
  bits.bit_length = 12;
  bits.bytes = hex("AB C0");
  data utf8 = raw(tag::utf8_string, "\xC3\xA9");
  const std::string twelve = hex("07 E3 0C 13 04 02 00 00 00 FF C4 00");
  const std::vector<sample> samples = {
      {data::null(), hex("00")},
      {data::array({data::unsigned8(1), data::unsigned8(2)}), hex("01 02 11 01 11 02")},
      {data::structure({data::long16(-2), data::enumerated(30)}), hex("02 02 10 FF FE 16 1E")},
      {data::boolean(true), hex("03 01")},
      {data::boolean(false), hex("03 00")},
      {bits, hex("04 0C AB C0")},
      {data::double_long32(-2), hex("05 FF FF FF FE")},
      {data::double_long_unsigned32(5009), hex("06 00 00 13 91")},
      {data::double_long_unsigned32(0xFFFFFFFFu), hex("06 FF FF FF FF")},
      {data::octet_string(hex("01 02 03")), hex("09 03 01 02 03")},
      {data::visible_string("ABC"), hex("0A 03 41 42 43")},
      {utf8, hex("0C 02 C3 A9")},
      {raw(tag::bcd, hex("12")), hex("0D 12")},
      {data::integer8(-1), hex("0F FF")},
      {data::long16(-300), hex("10 FE D4")},
      {data::unsigned8(200), hex("11 C8")},
      {data::long_unsigned16(0x1234), hex("12 12 34")},
      {data::long64(-1), hex("14 FF FF FF FF FF FF FF FF")},
      {data::long64(0x0102030405060708), hex("14 01 02 03 04 05 06 07 08")},
      {data::long64_unsigned(0xFFFFFFFFFFFFFFFFull), hex("15 FF FF FF FF FF FF FF FF")},
      {data::enumerated(30), hex("16 1E")},
      {data::float32(1.5f), hex("17 3F C0 00 00")},
      {data::float64(-2.5), hex("18 C0 04 00 00 00 00 00 00")},
      {raw(tag::date_time, twelve), hex("19") + twelve},
      {raw(tag::date, hex("07 E3 0C 13 04")), hex("1A 07 E3 0C 13 04")},
      {raw(tag::time, hex("02 00 00 00")), hex("1B 02 00 00 00")},
  };
  for (const auto& s : samples) {
    INFO("expected " << to_hex(s.bytes));
    CHECK_BYTES(encode(s.value), s.bytes);
    const auto back = decode_all(s.bytes);
    CHECK(back == s.value);
    CHECK(back.type == s.value.type);
  }
  // The decoded numbers carry their values, not just their bytes.
  CHECK(decode_all(hex("05 FF FF FF FE")).integer() == std::optional<std::int64_t>(-2));
  CHECK(decode_all(hex("06 FF FF FF FF")).integer() == std::optional<std::int64_t>(4294967295));
  CHECK(decode_all(hex("10 FE D4")).integer() == std::optional<std::int64_t>(-300));
  CHECK(decode_all(hex("0F FF")).integer() == std::optional<std::int64_t>(-1));
  CHECK(decode_all(hex("17 3F C0 00 00")).number() == std::optional<double>(1.5));
  CHECK(decode_all(hex("18 C0 04 00 00 00 00 00 00")).number() == std::optional<double>(-2.5));
  CHECK(decode_all(hex("15 FF FF FF FF FF FF FF FF")).uint_value == 0xFFFFFFFFFFFFFFFFull);
  CHECK(decode_all(hex("04 0C AB C0")).bit_length == 12);
}

TEST_CASE("A-XDR: integer() and number() by kind", "[dlms][codec]") {
  CHECK(data::boolean(true).integer() == std::optional<std::int64_t>(1));
  CHECK_FALSE(data::boolean(true).number());
  CHECK(data::enumerated(30).integer() == std::optional<std::int64_t>(30));
  CHECK(data::enumerated(30).number() == std::optional<double>(30));
  CHECK(data::long64(std::numeric_limits<std::int64_t>::min()).integer() ==
        std::optional<std::int64_t>(std::numeric_limits<std::int64_t>::min()));
  CHECK(data::long64_unsigned(42).integer() == std::optional<std::int64_t>(42));
  CHECK_FALSE(data::long64_unsigned(0x8000000000000000ull).integer());
  CHECK(data::long64_unsigned(0x8000000000000000ull).number() == std::optional<double>(9223372036854775808.0));
  CHECK(data::double_long_unsigned32(7).uint_value == 7);
  CHECK(data::long16(5).uint_value == 5);
  CHECK_FALSE(data::octet_string("x").integer());
  CHECK_FALSE(data::octet_string("x").number());
  CHECK_FALSE(data::null().number());
  CHECK(data::null().is_null());
  // Equality looks at the type too: the same number in another kind is another value.
  CHECK(data::unsigned8(5) != data::long_unsigned16(5));
  CHECK(data::float64(std::nan("")) == data::float64(std::nan("")));
}

TEST_CASE("A-XDR lengths: 0x7F, 0x80, 1182 and the long forms", "[dlms][codec]") {
  std::string out;
  encode_length(out, 0x7F);
  CHECK_BYTES(out, hex("7F"));
  out.clear();
  encode_length(out, 0x80);
  CHECK_BYTES(out, hex("81 80"));
  out.clear();
  encode_length(out, 1182);
  CHECK_BYTES(out, hex("82 04 9E"));
  out.clear();
  encode_length(out, 0x123456);
  CHECK_BYTES(out, hex("83 12 34 56"));

  for (const auto& [bytes, value] : std::vector<std::pair<std::string, std::size_t>>{
           {hex("7F"), 0x7F}, {hex("81 80"), 0x80}, {hex("82 04 9E"), 1182}, {hex("81 05"), 5},
           {hex("83 01 00 00"), 0x10000}, {hex("84 00 00 01 00"), 256}}) {
    std::size_t pos = 0;
    CHECK(decode_length(bytes, pos) == value);
    CHECK(pos == bytes.size());
  }
  std::size_t pos = 0;
  CHECK_THROWS_AS(decode_length(hex("82 04"), pos), axdr_error);
  pos = 0;
  CHECK_THROWS_AS(decode_length("", pos), axdr_error);
  pos = 0;
  CHECK_THROWS_AS(decode_length(hex("85 00 00 00 00 01"), pos), axdr_error);
  pos = 0;
  CHECK_THROWS_AS(decode_length(hex("80"), pos), axdr_error);
  pos = 0;
  CHECK_THROWS_AS(decode_length(hex("84 80 00 00 01"), pos), axdr_error); // above 2^31

  // A string of 0x80 and one of 1182 bytes carry those lengths.
  const std::string s128(0x80, 'x');
  CHECK_BYTES(encode(data::octet_string(s128)).substr(0, 3), hex("09 81 80"));
  CHECK(decode_all(hex("09 81 80") + s128) == data::octet_string(s128));
  const std::string s1182(1182, 'y');
  CHECK_BYTES(encode(data::octet_string(s1182)).substr(0, 4), hex("09 82 04 9E"));
  CHECK(decode_all(hex("09 82 04 9E") + s1182).bytes == s1182);
  // A long form where the short one would do is accepted on decode.
  CHECK(decode_all(hex("09 81 02 41 42")) == data::octet_string("AB"));
}

TEST_CASE("A-XDR: a nested structure cut at any length throws axdr_error", "[dlms][codec]") {
  const data tree = data::array({
      data::structure({data::octet_string(hex("07 E3 0C 13 04 02 00 00 00 FF C4 00")), data::unsigned8(6),
                       data::double_long_unsigned32(1517), data::long64(-5)}),
      data::structure({data::null(), data::visible_string("abc"), data::float32(2.25f),
                       data::array({data::long16(-1), data::boolean(true)})}),
  });
  const auto bytes = encode(tree);
  REQUIRE(decode_all(bytes) == tree);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK_THROWS_AS(decode_all(std::string_view(bytes).substr(0, n)), axdr_error);
    std::size_t pos = 0;
    CHECK_THROWS_AS(decode(std::string_view(bytes).substr(0, n), pos), axdr_error);
  }
  // One byte more is an error for decode_all, not for decode.
  CHECK_THROWS_AS(decode_all(bytes + '\0'), axdr_error);
  std::size_t pos = 0;
  CHECK(decode(bytes + '\0', pos) == tree);
  CHECK(pos == bytes.size());
}

TEST_CASE("A-XDR: nesting deeper than max_depth throws, a huge count is truncation", "[dlms][codec]") {
  auto nested = [](int levels) {
    std::string s;
    for (int i = 0; i < levels; ++i)
      s += hex("02 01");
    return s + hex("00");
  };
  CHECK_NOTHROW(decode_all(nested(max_depth)));
  CHECK_THROWS_AS(decode_all(nested(max_depth + 1)), axdr_error);
  CHECK_THROWS_AS(decode_all(nested(1000)), axdr_error);
  // 2^31 - 1 elements announced, none present: refused before anything is built.
  CHECK_THROWS_AS(decode_all(hex("01 84 7F FF FF FF 00")), axdr_error);
  // Unknown tags.
  for (const char* t : {"07", "08", "0B", "0E", "1C", "FF"})
    CHECK_THROWS_AS(decode_all(hex(t) + hex("00 00 00 00 00 00 00 00")), axdr_error);
}

TEST_CASE("A-XDR: compact-array by the Green Book rule decodes to an array", "[dlms][codec]") {
  // Tag 0x13, contents-description long-unsigned (0x12), A-XDR length 6, the values untagged.
  CHECK(decode_all(hex("13 12 06 00 01 00 02 00 03")) ==
        data::array({data::long_unsigned16(1), data::long_unsigned16(2), data::long_unsigned16(3)}));
  // Elements structure{long-unsigned, octet-string}: description 02 02 12 09; an octet-string
  // keeps its length inside the packed content.
  CHECK(decode_all(hex("13 02 02 12 09 08 00 05 02 41 42 00 06 00")) ==
        data::array({data::structure({data::long_unsigned16(5), data::octet_string("AB")}),
                     data::structure({data::long_unsigned16(6), data::octet_string("")})}));
  // Elements array of 2 unsigned: description 01 00 02 11.
  CHECK(decode_all(hex("13 01 00 02 11 04 01 02 03 04")) ==
        data::array({data::array({data::unsigned8(1), data::unsigned8(2)}),
                     data::array({data::unsigned8(3), data::unsigned8(4)})}));
  // Empty contents: no elements.
  CHECK(decode_all(hex("13 11 00")) == data::array({}));
  // Encoding a compact_array value writes exactly the first form.
  data compact;
  compact.type = tag::compact_array;
  compact.items = {data::long_unsigned16(1), data::long_unsigned16(2), data::long_unsigned16(3)};
  CHECK_BYTES(encode(compact), hex("13 12 06 00 01 00 02 00 03"));
  compact.items.push_back(data::unsigned8(4)); // another type: not one compact-array
  CHECK_THROWS_AS(encode(compact), axdr_error);
  // Contents cut inside an element, a description cut short, an unknown type, and a
  // description whose elements take no bytes (arrays of arrays of null-data) are errors.
  CHECK_THROWS_AS(decode_all(hex("13 12 05 00 01 00 02 00")), axdr_error);
  CHECK_THROWS_AS(decode_all(hex("13 12 06 00 01 00 02 00")), axdr_error);
  CHECK_THROWS_AS(decode_all(hex("13 01 00")), axdr_error);
  CHECK_THROWS_AS(decode_all(hex("13 07 01 00")), axdr_error);
  CHECK_THROWS_AS(decode_all(hex("13 01 FF FF 01 FF FF 00 01 00")), axdr_error);
  CHECK_THROWS_AS(decode_all(hex("13 00 01 00")), axdr_error);
}

// ======================================================================================
// COSEM date-time, OBIS, units
// ======================================================================================

TEST_CASE("COSEM date-time: the profile's first clock cell, parsed and encoded", "[dlms][codec]") {
  const auto bytes = hex("07 E3 0C 13 04 02 00 00 00 FF C4 00");
  const auto dt = parse_datetime(bytes);
  REQUIRE(dt);
  CHECK(dt->year == 2019);
  CHECK(dt->month == 12);
  CHECK(dt->day == 19);
  CHECK(dt->weekday == 4);
  CHECK(dt->hour == 2);
  CHECK(dt->minute == 0);
  CHECK(dt->second == 0);
  CHECK(dt->hundredths == 0);
  CHECK(dt->deviation == std::optional<int>(-60));
  CHECK(dt->clock_status == 0);
  CHECK_BYTES(encode_datetime(*dt), bytes);
  // Deviation 0x8000 is "not specified"; every other field 0xFF too.
  const auto unspecified = parse_datetime(hex("FF FF FF FF FF FF FF FF FF 80 00 FF"));
  REQUIRE(unspecified);
  CHECK(unspecified->year == 0xFFFF);
  CHECK_FALSE(unspecified->deviation);
  CHECK_BYTES(encode_datetime(cosem_datetime{}), hex("FF FF FF FF FF FF FF FF FF 80 00 FF"));
  CHECK_FALSE(parse_datetime(hex("07 E3 0C 13 04 02 00 00 00 FF C4")));
  // As a Data: an octet-string of 12 bytes or a date-time; nothing else.
  CHECK(datetime_of(data::octet_string(bytes)).has_value());
  CHECK(datetime_of(raw(tag::date_time, bytes)).has_value());
  CHECK_FALSE(datetime_of(data::visible_string(bytes)));
  CHECK_FALSE(datetime_of(data::octet_string("short")));
  CHECK_FALSE(datetime_of(data::null()));
}

TEST_CASE("COSEM date-time to UTC by each deviation rule and the fallback offset", "[dlms][codec]") {
  const auto dt = *parse_datetime(hex("07 E3 0C 13 04 02 00 00 00 FF C4 00")); // 02:00, deviation -60
  // Blue Book: UTC = local + deviation.
  CHECK(to_unix(dt, deviation_rule::blue_book, 0) == std::optional(utc("2019-12-19T01:00:00Z")));
  // Inverted: UTC = local - deviation.
  CHECK(to_unix(dt, deviation_rule::inverted, 0) == std::optional(utc("2019-12-19T03:00:00Z")));
  // Ignored: the fallback offset (UTC = local - offset).
  CHECK(to_unix(dt, deviation_rule::ignore, 0) == std::optional(utc("2019-12-19T02:00:00Z")));
  CHECK(to_unix(dt, deviation_rule::ignore, 60) == std::optional(utc("2019-12-19T01:00:00Z")));
  // Deviation absent: the fallback whatever the rule.
  auto absent = dt;
  absent.deviation.reset();
  for (auto rule : {deviation_rule::blue_book, deviation_rule::inverted, deviation_rule::ignore})
    CHECK(to_unix(absent, rule, 120) == std::optional(utc("2019-12-19T00:00:00Z")));
  CHECK(to_unix(absent, deviation_rule::blue_book, -300) == std::optional(utc("2019-12-19T07:00:00Z")));
  // Hundredths and weekday do not matter.
  auto loose = dt;
  loose.hundredths = 0xFF;
  loose.weekday = 0xFF;
  CHECK(to_unix(loose, deviation_rule::blue_book, 0) == std::optional(utc("2019-12-19T01:00:00Z")));
  // A local time just after midnight lands on the previous UTC day.
  CHECK(to_unix(make_dt(2020, 1, 1, 3, 0, 30, 0, -60, 0), deviation_rule::blue_book, 0) ==
        std::optional(utc("2019-12-31T23:30:00Z")));
}

TEST_CASE("COSEM date-time: unspecified or impossible fields give no instant", "[dlms][codec]") {
  const auto good = make_dt(2028, 2, 29, 2, 12, 34, 56, 0, 0);
  CHECK(to_unix(good, deviation_rule::blue_book, 0) == std::optional(utc("2028-02-29T12:34:56Z")));
  auto with = [&](auto change) {
    auto dt = good;
    change(dt);
    return to_unix(dt, deviation_rule::blue_book, 0);
  };
  CHECK_FALSE(with([](cosem_datetime& d) { d.year = 0xFFFF; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.month = 0xFF; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.month = 0xFE; })); // DST begin: not a month
  CHECK_FALSE(with([](cosem_datetime& d) { d.month = 13; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.day = 0xFF; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.day = 0xFE; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.day = 30; })); // 2028-02-30
  CHECK_FALSE(with([](cosem_datetime& d) { d.year = 2027; })); // 2027-02-29
  CHECK_FALSE(with([](cosem_datetime& d) { d.hour = 0xFF; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.hour = 24; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.minute = 0xFF; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.second = 0xFF; }));
  CHECK_FALSE(with([](cosem_datetime& d) { d.deviation = 0x7FFF; })); // no real offset
  CHECK(with([](cosem_datetime& d) { d.hundredths = 0xFF; }).has_value());
}

TEST_CASE("COSEM date-time from a UTC instant: local fields and weekday", "[dlms][codec]") {
  // 2026-12-07 is a Monday.
  const auto monday = from_unix(utc("2026-12-07T00:00:00Z"), 0, std::nullopt);
  CHECK(monday.year == 2026);
  CHECK(monday.month == 12);
  CHECK(monday.day == 7);
  CHECK(monday.weekday == 1);
  CHECK(monday.hour == 0);
  CHECK(monday.hundredths == 0);
  CHECK(monday.clock_status == 0);
  CHECK_BYTES(encode_datetime(monday), hex("07 EA 0C 07 01 00 00 00 00 80 00 00"));
  // UTC+1 local time, deviation -60 on the wire.
  CHECK_BYTES(encode_datetime(from_unix(utc("2026-12-07T00:00:00Z"), 60, -60)),
              hex("07 EA 0C 07 01 01 00 00 00 FF C4 00"));
  // Leap day, and back again.
  const auto leap = from_unix(utc("2028-02-29T12:34:56Z"), 0, 0);
  CHECK(leap.month == 2);
  CHECK(leap.day == 29);
  CHECK(leap.weekday == 2); // Tuesday
  CHECK(leap.hour == 12);
  CHECK(leap.minute == 34);
  CHECK(leap.second == 56);
  CHECK(to_unix(leap, deviation_rule::blue_book, 0) == std::optional(utc("2028-02-29T12:34:56Z")));
  // A negative offset crossing midnight backwards: 2020-01-01 00:30Z at UTC-1 is Tuesday
  // 2019-12-31 23:30 local.
  const auto nye = from_unix(utc("2020-01-01T00:30:00Z"), -60, 60);
  CHECK(nye.year == 2019);
  CHECK(nye.month == 12);
  CHECK(nye.day == 31);
  CHECK(nye.weekday == 2);
  CHECK(nye.hour == 23);
  CHECK(nye.minute == 30);
  CHECK(to_unix(nye, deviation_rule::blue_book, 0) == std::optional(utc("2020-01-01T00:30:00Z")));
  // Before 1970 too (1969-12-31 was a Wednesday).
  const auto old = from_unix(-1, 0, std::nullopt);
  CHECK(old.year == 1969);
  CHECK(old.day == 31);
  CHECK(old.weekday == 3);
  CHECK(old.second == 59);
}

TEST_CASE("OBIS codes: the dotted and the display forms", "[dlms][codec]") {
  const obis energy{1, 0, 1, 8, 0, 255};
  CHECK(parse_obis("1.0.1.8.0.255") == std::optional(energy));
  CHECK(parse_obis("1-0:1.8.0.255") == std::optional(energy));
  CHECK(parse_obis("1-0:1.8.0") == std::optional(energy));
  CHECK(parse_obis("1-0:1.8.0*255") == std::optional(energy));
  CHECK(parse_obis("0.0.96.1.0.255") == std::optional(obis{0, 0, 96, 1, 0, 255}));
  CHECK(parse_obis("0-0:96.1.0.255") == std::optional(obis{0, 0, 96, 1, 0, 255}));
  for (const char* bad : {"", "1.0.1.8.0", "1.0.1.8.0.256", "1.0.1.8.0.255.1", "a.0.1.8.0.255", "1.0.1..0.255",
                          "1-0:1.8", "1-0:1.8.0.255.1", " 1.0.1.8.0.255", "1.0.1.8.0.255 ", "1-0.1.8.0.255",
                          "1:0-1.8.0.255", "1.0.1.8.0.-1", "1.0.1.8.0.0255", "1-0:1.8.0.", "1.0.1.8.0.255."}) {
    INFO(bad);
    CHECK_FALSE(parse_obis(bad));
  }
  CHECK(obis_text(energy) == "1.0.1.8.0.255");
  CHECK(obis_text(obis{0, 0, 40, 0, 0, 255}) == "0.0.40.0.0.255");
  CHECK_BYTES(obis_bytes(energy), hex("01 00 01 08 00 FF"));
}

TEST_CASE("Units of the scaler_unit enum", "[dlms][codec]") {
  CHECK(unit_text(27) == "W");
  CHECK(unit_text(28) == "VA");
  CHECK(unit_text(29) == "var");
  CHECK(unit_text(30) == "Wh");
  CHECK(unit_text(31) == "VAh");
  CHECK(unit_text(32) == "varh");
  CHECK(unit_text(33) == "A");
  CHECK(unit_text(35) == "V");
  CHECK(unit_text(44) == "Hz");
  CHECK(unit_text(7) == "s");
  CHECK(unit_text(56) == "%");
  CHECK(unit_text(255) == "");
  CHECK(unit_text(0) == "");
  CHECK(unit_text(58) == "");
  CHECK(unit_text(1000) == "");
}

// ======================================================================================
// Association
// ======================================================================================

TEST_CASE("AARQ without authentication: the published vector, both ways", "[dlms][codec]") {
  aarq a;
  a.max_receive_pdu = 1200;
  CHECK_BYTES(encode_aarq(a), aarq_none);
  const auto back = decode_aarq(aarq_none);
  CHECK(back.logical_names);
  CHECK(back.mechanism == authentication::none);
  CHECK(back.calling_authentication.empty());
  CHECK(back.calling_ap_title.empty());
  CHECK(back.proposed_conformance == 0x007E1F);
  CHECK(back.max_receive_pdu == 1200);
  CHECK(back.dlms_version == 6);
}

TEST_CASE("AARQ with LLS password 12345678: the published vector, both ways", "[dlms][codec]") {
  aarq a;
  a.max_receive_pdu = 1200;
  a.mechanism = authentication::low;
  a.calling_authentication = "12345678";
  CHECK_BYTES(encode_aarq(a), aarq_lls);
  const auto back = decode_aarq(aarq_lls);
  CHECK(back.mechanism == authentication::low);
  CHECK(back.calling_authentication == "12345678");
  CHECK(back.max_receive_pdu == 1200);
}

TEST_CASE("AARQ for short names: the real PB1 exchange", "[dlms][codec]") {
  aarq a;
  a.logical_names = false;
  a.proposed_conformance = conformance::sn_client;
  a.max_receive_pdu = 0xFFFF;
  CHECK_BYTES(encode_aarq(a), aarq_sn);
  const auto back = decode_aarq(aarq_sn);
  CHECK_FALSE(back.logical_names);
  CHECK(back.proposed_conformance == 0x1C0320);
  CHECK(back.max_receive_pdu == 0xFFFF);
  // The PB2 form of the conformance (5F 04 00 ..., one byte shorter: lengths 1C, 0F, 0D).
  const auto pb2 = hex("60 1C A1 09 06 07 60 85 74 05 08 01 02 BE 0F 04 0D 01 00 00 00 06 5F 04 00 1C 03 20 FF FF");
  CHECK(decode_aarq(pb2).proposed_conformance == 0x1C0320);
}

TEST_CASE("AARQ HLS-GMAC: mechanism 5 and the calling authentication value", "[dlms][codec]") {
  const auto a = decode_aarq(aarq_gmac);
  CHECK(a.mechanism == authentication::high_gmac);
  CHECK(a.calling_authentication == "K56iVagY");
  CHECK_BYTES(a.calling_authentication, hex("4B 35 36 69 56 61 67 59"));
  CHECK(a.logical_names);
  CHECK_BYTES(encode_aarq(a), aarq_gmac);
  // A calling AP title goes in A6 before the requirements.
  aarq titled = a;
  titled.calling_ap_title = hex("4D 4D 4D 00 00 00 00 01");
  const auto bytes = encode_aarq(titled);
  CHECK(bytes.find(hex("A6 0A 04 08 4D 4D 4D 00 00 00 00 01 8A 02 07 80")) != std::string::npos);
  CHECK(static_cast<unsigned char>(bytes[1]) == bytes.size() - 2);
  CHECK(decode_aarq(bytes).calling_ap_title == titled.calling_ap_title);
}

TEST_CASE("AARE accepted: the published vector, both ways", "[dlms][codec]") {
  const auto e = decode_aare(aare_accepted);
  CHECK(e.result == 0);
  CHECK(e.diagnostic_source == 1);
  CHECK(e.diagnostic == 0);
  CHECK_FALSE(e.mechanism);
  CHECK(e.logical_names);
  CHECK(e.has_initiate_response);
  CHECK(e.dlms_version == 6);
  CHECK(e.negotiated_conformance == 0x00501F);
  CHECK(e.max_receive_pdu == 0x01F4);
  CHECK(e.vaa_name == 0x0007);
  CHECK_FALSE(e.initiate_error);
  CHECK_BYTES(encode_aare(e), aare_accepted);
  CHECK(association_result_text(0) == "accepted");
}

TEST_CASE("AARE HLS-GMAC: accepted with diagnostic 14 and the server's challenge", "[dlms][codec]") {
  const auto e = decode_aare(aare_gmac);
  CHECK(e.result == 0);
  CHECK(e.diagnostic == 14);
  CHECK(association_diagnostic_text(e.diagnostic_source, e.diagnostic) == "authentication required");
  CHECK(e.mechanism == std::optional(authentication::high_gmac));
  CHECK(e.responding_authentication == "P6wRJ21F");
  CHECK(e.has_initiate_response);
  CHECK_BYTES(encode_aare(e), aare_gmac);
}

TEST_CASE("AARE for short names: the PB1 and PB2 conformance forms", "[dlms][codec]") {
  // The PB1 AARE as the notes print it (61 28 ... BE 0F 04 0D 08 00 06 5F 1F 04 00 ...) has
  // one byte more than its lengths announce. With the 5F 1F form the lengths are 29 / 10 / 0E:
  const auto pb1 = hex("61 29 A1 09 06 07 60 85 74 05 08 01 02 A2 03 02 01 00 A3 05 A1 03 02 01 00 "
                       "BE 10 04 0E 08 00 06 5F 1F 04 00 18 02 20 09 60 FA 00");
  const auto e = decode_aare(pb1);
  CHECK_FALSE(e.logical_names);
  CHECK(e.result == 0);
  CHECK(e.negotiated_conformance == 0x180220);
  CHECK((e.negotiated_conformance & conformance::read) != 0);
  CHECK((e.negotiated_conformance & conformance::write) != 0);
  CHECK((e.negotiated_conformance & conformance::multiple_references) != 0);
  CHECK((e.negotiated_conformance & conformance::parameterized_access) != 0);
  CHECK((e.negotiated_conformance & conformance::get) == 0);
  CHECK((conformance::sn_client & conformance::parameterized_access) != 0);
  CHECK((conformance::ln_client & conformance::parameterized_access) == 0);
  CHECK(e.max_receive_pdu == 0x0960);
  CHECK(e.vaa_name == 0xFA00);
  CHECK_BYTES(encode_aare(e), pb1);
  // The PB2 form 5F 04 00 xx xx xx (lengths one less: the notes' 28 / 0F / 0D) means the same.
  const auto pb2 = hex("61 28 A1 09 06 07 60 85 74 05 08 01 02 A2 03 02 01 00 A3 05 A1 03 02 01 00 "
                       "BE 0F 04 0D 08 00 06 5F 04 00 18 02 20 09 60 FA 00");
  const auto e2 = decode_aare(pb2);
  CHECK(e2.negotiated_conformance == 0x180220);
  CHECK(e2.max_receive_pdu == 0x0960);
  CHECK(e2.vaa_name == 0xFA00);
  CHECK_FALSE(e2.logical_names);
  // The notes' literal bytes: lengths that disagree with the content are refused, not read past.
  const auto as_printed = hex("61 28 A1 09 06 07 60 85 74 05 08 01 02 A2 03 02 01 00 A3 05 A1 03 02 01 00 "
                              "BE 0F 04 0D 08 00 06 5F 1F 04 00 18 02 20 09 60 FA 00");
  CHECK_THROWS_AS(decode_aare(as_printed), apdu_error);
}

TEST_CASE("AARE: the real L+G rejection without user-information", "[dlms][codec]") {
  const auto e = decode_aare(aare_lg_reject);
  CHECK(e.result == 1);
  CHECK(e.diagnostic_source == 1);
  CHECK(e.diagnostic == 13);
  CHECK_FALSE(e.has_initiate_response);
  CHECK(association_result_text(e.result) == "rejected permanently");
  CHECK(association_diagnostic_text(e.diagnostic_source, e.diagnostic) == "authentication failure");
  CHECK(association_result_text(2) == "rejected transiently");
  aare reject;
  reject.result = 1;
  reject.diagnostic = 13;
  CHECK_BYTES(encode_aare(reject), aare_lg_reject);
}

TEST_CASE("AARE carrying an InitiateError (DLMS version too low)", "[dlms][codec]") {
  // Rejected (1), no reason given (1), user-information BE 06 04 04 0E 01 06 01.
  const auto bytes = hex("61 1F A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 01 "
                         "BE 06 04 04 0E 01 06 01");
  const auto e = decode_aare(bytes);
  CHECK(e.result == 1);
  CHECK(e.diagnostic == 1);
  CHECK_FALSE(e.has_initiate_response);
  REQUIRE(e.initiate_error);
  CHECK(e.initiate_error->first == 6);
  CHECK(e.initiate_error->second == 1);
  CHECK(initiate_error_text(6, 1) == "DLMS version too low");
  CHECK(association_diagnostic_text(1, 1) == "no reason given");
  CHECK_BYTES(encode_aare(e), bytes);
}

TEST_CASE("AARE/AARQ decoders skip unknown components and accept long-form lengths", "[dlms][codec]") {
  // The accepted AARE with long-form outer and result lengths, a protocol-version (80), an
  // implementation-information (BD) and a responding AP title (A4) added.
  const auto bytes = hex("61 81 3F 80 02 07 80 A1 09 06 07 60 85 74 05 08 01 01 A2 81 03 02 01 00 "
                         "A3 05 A1 03 02 01 00 A4 0A 04 08 4D 4D 4D 00 00 BC 61 4E BD 03 41 42 43 "
                         "BE 10 04 0E 08 00 06 5F 1F 04 00 00 50 1F 01 F4 00 07");
  const auto e = decode_aare(bytes);
  CHECK(e.result == 0);
  CHECK(e.max_receive_pdu == 0x01F4);
  CHECK_BYTES(e.responding_ap_title, hex("4D 4D 4D 00 00 BC 61 4E"));
  // An acse-service-provider diagnostic.
  const auto provider = decode_aare(hex("61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 02 A3 05 A2 03 02 01 02"));
  CHECK(provider.result == 2);
  CHECK(provider.diagnostic_source == 2);
  CHECK(association_diagnostic_text(2, 2) == "no common ACSE version");
  CHECK_BYTES(encode_aare(provider), hex("61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 02 A3 05 A2 03 02 01 02"));
  // AARQ: an unknown context-specific field (A2 called-AP-title) is skipped.
  const auto q = hex("60 23 A1 09 06 07 60 85 74 05 08 01 01 A2 04 06 02 2B 06 "
                     "BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 7E 1F 04 B0");
  CHECK(decode_aarq(q).max_receive_pdu == 1200);
}

TEST_CASE("AARE/AARQ cut at any length, or malformed, throw apdu_error", "[dlms][codec]") {
  for (const auto* v : {&aare_gmac, &aare_accepted, &aare_lg_reject}) {
    for (std::size_t n = 0; n < v->size(); ++n) {
      INFO("AARE prefix " << n);
      CHECK_THROWS_AS(decode_aare(std::string_view(*v).substr(0, n)), apdu_error);
    }
  }
  for (const auto* v : {&aarq_none, &aarq_lls, &aarq_gmac}) {
    for (std::size_t n = 0; n < v->size(); ++n) {
      INFO("AARQ prefix " << n);
      CHECK_THROWS_AS(decode_aarq(std::string_view(*v).substr(0, n)), apdu_error);
    }
  }
  // No result field.
  CHECK_THROWS_WITH(decode_aare(hex("61 0B A1 09 06 07 60 85 74 05 08 01 01")), Catch::Contains("result"));
  // An AARQ is not an AARE.
  CHECK_THROWS_AS(decode_aare(aarq_none), apdu_error);
  // Ciphered application context (08 01 03).
  CHECK_THROWS_WITH(decode_aarq(hex("60 1D A1 09 06 07 60 85 74 05 08 01 03 BE 10 04 0E 01 00 00 00 06 5F 1F 04 "
                                    "00 00 7E 1F 04 B0")),
                    "ciphered APDUs are not supported");
  // Unsupported mechanism 7 (ECDSA).
  CHECK_THROWS_AS(decode_aarq(hex("60 26 A1 09 06 07 60 85 74 05 08 01 01 8B 07 60 85 74 05 08 02 07 "
                                  "BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 7E 1F 04 B0")),
                  apdu_error);
}

TEST_CASE("RLRQ and RLRE", "[dlms][codec]") {
  CHECK_BYTES(encode_rlrq(), hex("62 03 80 01 00"));
  CHECK_BYTES(encode_rlre(), hex("63 03 80 01 00"));
}

TEST_CASE("Authentication names", "[dlms][codec]") {
  CHECK(authentication_name(authentication::none) == "none");
  CHECK(authentication_name(authentication::low) == "low");
  CHECK(authentication_name(authentication::high_md5) == "high-md5");
  CHECK(authentication_name(authentication::high_sha1) == "high-sha1");
  CHECK(authentication_name(authentication::high_sha256) == "high-sha256");
  CHECK(authentication_name(authentication::high_gmac) == "high-gmac");
  for (int i = 0; i <= 6; ++i) {
    const auto a = static_cast<authentication>(i);
    CHECK(parse_authentication(authentication_name(a)) == std::optional(a));
  }
  CHECK_FALSE(parse_authentication("LOW"));
  CHECK_FALSE(parse_authentication("md5"));
  CHECK_FALSE(parse_authentication(""));
}

// ======================================================================================
// GET
// ======================================================================================

TEST_CASE("GET-Request-Normal: the published vectors, both ways", "[dlms][codec]") {
  get_request r;
  r.attribute = {1, {0, 0, 43, 1, 0, 255}, 2};
  const auto v1 = hex("C0 01 C1 00 01 00 00 2B 01 00 FF 02 00");
  CHECK_BYTES(encode_get_request(r), v1);
  const auto d1 = decode_get_request(v1);
  CHECK(d1.type == get_request::kind::normal);
  CHECK(d1.invoke_id == 0xC1);
  CHECK(d1.attribute == r.attribute);
  CHECK_FALSE(d1.access);

  get_request r2;
  r2.attribute = {15, {0, 0, 40, 0, 0, 255}, 1};
  const auto v2 = hex("C0 01 C1 00 0F 00 00 28 00 00 FF 01 00");
  CHECK_BYTES(encode_get_request(r2), v2);
  CHECK(decode_get_request(v2).attribute == r2.attribute);

  CHECK_THROWS_AS(decode_get_request(hex("C0 03 C1 01 00 01 00 00 2B 01 00 FF 02 00")), apdu_error); // with-list
  for (std::size_t n = 0; n < v1.size(); ++n)
    CHECK_THROWS_AS(decode_get_request(std::string_view(v1).substr(0, n)), apdu_error);
}

TEST_CASE("GET-Response-Normal: data 5009 and the error form", "[dlms][codec]") {
  const auto v = hex("C4 01 C1 00 06 00 00 13 91");
  const auto r = decode_get_response(v);
  CHECK(r.type == get_response::kind::normal);
  CHECK(r.invoke_id == 0xC1);
  REQUIRE(r.value);
  CHECK(*r.value == data::double_long_unsigned32(5009));
  CHECK(r.value->integer() == std::optional<std::int64_t>(5009));
  CHECK_FALSE(r.access_error);
  CHECK_BYTES(encode_get_response(r), v);

  for (int dar : {3, 4, 11, 250}) {
    const auto bytes = hex("C4 01 C1 01") + static_cast<char>(dar);
    const auto e = decode_get_response(bytes);
    CHECK_FALSE(e.value);
    CHECK(e.access_error == std::optional(dar));
    CHECK_BYTES(encode_get_response(e), bytes);
  }
  // A Data that does not decode, and bytes after it, name the PDU.
  CHECK_THROWS_WITH(decode_get_response(hex("C4 01 C1 00 06 00 00 13")), Catch::StartsWith("GET-Response"));
  CHECK_THROWS_AS(decode_get_response(hex("C4 01 C1 00 06 00 00 13 91 00")), apdu_error);
  CHECK_THROWS_AS(decode_get_response(hex("C4 01 C1 02 00")), apdu_error);
}

TEST_CASE("GET with block transfer: responses with a data block and GET-Request-Next", "[dlms][codec]") {
  // A Data of 300+ bytes split in two blocks; the parts joined decode to it.
  std::vector<data> rows;
  for (std::uint32_t i = 0; i < 40; ++i)
    rows.push_back(data::structure({data::double_long_unsigned32(i), data::long16(static_cast<std::int16_t>(-i))}));
  const data whole = data::array(rows);
  const auto bytes = encode(whole);
  REQUIRE(bytes.size() > 300);
  const auto part1 = bytes.substr(0, 200), part2 = bytes.substr(200);

  // C4 02 <iid> <last> <block:4> 00 <A-XDR length> <raw>: 200 = 81 C8.
  const auto b1 = hex("C4 02 C1 00 00 00 00 01 00 81 C8") + part1;
  std::string len2;
  encode_length(len2, part2.size());
  const auto b2 = hex("C4 02 C1 01 00 00 00 02 00") + len2 + part2;

  const auto r1 = decode_get_response(b1);
  CHECK(r1.type == get_response::kind::with_block);
  CHECK_FALSE(r1.last_block);
  CHECK(r1.block_number == 1);
  CHECK(r1.raw == part1);
  CHECK_BYTES(encode_get_response(r1), b1);
  const auto r2 = decode_get_response(b2);
  CHECK(r2.last_block);
  CHECK(r2.block_number == 2);
  CHECK_BYTES(encode_get_response(r2), b2);
  CHECK(decode_all(r1.raw + r2.raw) == whole);

  // The block after 1 is asked for with the number just received.
  get_request next;
  next.type = get_request::kind::next;
  next.block_number = 1;
  CHECK_BYTES(encode_get_request(next), hex("C0 02 C1 00 00 00 01"));
  const auto n = decode_get_request(hex("C0 02 C1 00 01 02 03"));
  CHECK(n.type == get_request::kind::next);
  CHECK(n.block_number == 0x00010203);

  // A block refused with a data-access-result.
  const auto refused = decode_get_response(hex("C4 02 C1 01 00 00 00 02 01 0E"));
  CHECK(refused.access_error == std::optional(14));
  CHECK(data_access_result_text(14) == "data block unavailable");
  CHECK_BYTES(encode_get_response(refused), hex("C4 02 C1 01 00 00 00 02 01 0E"));

  for (std::size_t k = 0; k < b1.size(); ++k)
    CHECK_THROWS_AS(decode_get_response(std::string_view(b1).substr(0, k)), apdu_error);
}

TEST_CASE("Selective access by range: the notes' descriptor bytes after the attribute id", "[dlms][codec]") {
  // From 2019-12-19 00:00 to 2019-12-20 00:00, weekday, deviation and status not specified.
  const auto from = make_dt(2019, 12, 19, 0xFF, 0, 0, 0, std::nullopt, 0xFF);
  const auto to = make_dt(2019, 12, 20, 0xFF, 0, 0, 0, std::nullopt, 0xFF);
  get_request r;
  r.attribute = {7, {1, 0, 99, 1, 0, 255}, 2};
  r.access = range_access(from, to);
  const auto expected = hex("C0 01 C1 00 07 01 00 63 01 00 FF 02 01") +
                        hex("01 02 04 02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00") +
                        hex("09 0C 07 E3 0C 13 FF 00 00 00 00 80 00 FF") +
                        hex("09 0C 07 E3 0C 14 FF 00 00 00 00 80 00 FF") + hex("01 00");
  CHECK_BYTES(encode_get_request(r), expected);
  const auto back = decode_get_request(expected);
  REQUIRE(back.access);
  CHECK(back.access->selector == 1);
  CHECK(back.access->parameter == r.access->parameter);
  CHECK(back.attribute == r.attribute);
  // The server side reads the dates out of the parameter.
  const auto& p = back.access->parameter;
  REQUIRE(p.items.size() == 4);
  const auto f = datetime_of(p.items[1]);
  REQUIRE(f);
  CHECK(f->day == 19);
  CHECK_FALSE(f->deviation);
}

TEST_CASE("Selective access by entry: the dlms-more §4.2 GET request", "[dlms][codec]") {
  get_request r;
  r.attribute = {7, {1, 0, 99, 1, 0, 255}, 2};
  r.access = entry_access(1, 48);
  const auto expected = hex("C0 01 C1 00 07 01 00 63 01 00 FF 02 01 02 02 04 06 00 00 00 01 06 00 00 00 30 "
                            "12 00 01 12 00 00");
  CHECK_BYTES(encode_get_request(r), expected);
  const auto back = decode_get_request(expected);
  REQUIRE(back.access);
  CHECK(back.access->selector == 2);
  CHECK(back.access->parameter == data::structure({data::double_long_unsigned32(1), data::double_long_unsigned32(48),
                                                   data::long_unsigned16(1), data::long_unsigned16(0)}));
}

TEST_CASE("Profile buffer from the real response's rows decodes to the expected tree", "[dlms][codec]") {
  // The notes' first row, then rows with a null-data clock cell (values of those rows chosen
  // here: the note elides them).
  const auto row1 = hex("02 04 09 0C 07 E3 0C 13 04 02 00 00 00 FF C4 00 11 06 06 00 00 05 ED 06 00 00 06 54");
  const auto row2 = hex("02 04 00 11 06 06 00 00 05 F0 06 00 00 06 60");
  const auto row3 = hex("02 04 00 11 86 06 00 00 05 F1 06 00 00 06 61");
  const auto buffer = hex("01 03") + row1 + row2 + row3;
  const data expected = data::array({
      data::structure({data::octet_string(hex("07 E3 0C 13 04 02 00 00 00 FF C4 00")), data::unsigned8(6),
                       data::double_long_unsigned32(0x05ED), data::double_long_unsigned32(0x0654)}),
      data::structure({data::null(), data::unsigned8(6), data::double_long_unsigned32(0x05F0),
                       data::double_long_unsigned32(0x0660)}),
      data::structure({data::null(), data::unsigned8(0x86), data::double_long_unsigned32(0x05F1),
                       data::double_long_unsigned32(0x0661)}),
  });
  const auto tree = decode_all(buffer);
  CHECK(tree == expected);
  // Inside a GET-Response.
  const auto r = decode_get_response(hex("C4 01 C1 00") + buffer);
  REQUIRE(r.value);
  CHECK(*r.value == expected);
  // The first clock cell: 2019-12-19 02:00, deviation -60, status 0; the others null.
  const auto clock = datetime_of(tree.items[0].items[0]);
  REQUIRE(clock);
  CHECK(clock->year == 2019);
  CHECK(clock->month == 12);
  CHECK(clock->day == 19);
  CHECK(clock->hour == 2);
  CHECK(clock->minute == 0);
  CHECK(clock->deviation == std::optional<int>(-60));
  CHECK(clock->clock_status == 0);
  CHECK(tree.items[1].items[0].is_null());
  CHECK_FALSE(datetime_of(tree.items[1].items[0]));
  CHECK(tree.items[0].items[2].integer() == std::optional<std::int64_t>(1517));
  // The real header announces 1440 rows (01 82 05 A0); three rows are a truncated buffer.
  CHECK_THROWS_AS(decode_all(hex("01 82 05 A0") + row1 + row2 + row3), axdr_error);
}

// ======================================================================================
// ACTION (HLS pass 3/4)
// ======================================================================================

TEST_CASE("ACTION request and responses: the dlms-more §2.4 vectors", "[dlms][codec]") {
  const auto req = hex("C3 01 C0 00 0F 00 00 28 00 00 FF 01 01 09 11 10 00 00 1A 90 E6 D2 22 1F A2 FD 85 EE D6 1A CC 22");
  action_request a;
  a.invoke_id = 0xC0;
  a.parameter = data::octet_string(hex("10 00 00 1A 90 E6 D2 22 1F A2 FD 85 EE D6 1A CC 22"));
  CHECK_BYTES(encode_action_request(a), req);
  const auto back = decode_action_request(req);
  CHECK(back.invoke_id == 0xC0);
  CHECK(back.class_id == 15);
  CHECK(back.instance == obis{0, 0, 40, 0, 0, 255});
  CHECK(back.method == 1);
  CHECK(back.parameter == a.parameter);

  const auto resp = hex("C7 01 C0 00 01 00 09 11 10 00 00 1A FD E8 85 7B 72 8A 34 99 10 6A A6 65 D1");
  const auto r = decode_action_response(resp);
  CHECK(r.invoke_id == 0xC0);
  CHECK(r.result == 0);
  CHECK(r.value == std::optional(data::octet_string(hex("10 00 00 1A FD E8 85 7B 72 8A 34 99 10 6A A6 65 D1"))));
  CHECK_FALSE(r.access_error);
  CHECK_BYTES(encode_action_response(r), resp);

  const auto ok = decode_action_response(hex("C7 01 C0 00 00"));
  CHECK(ok.result == 0);
  CHECK_FALSE(ok.value);
  CHECK_FALSE(ok.access_error);
  CHECK_BYTES(encode_action_response(ok), hex("C7 01 C0 00 00"));

  const auto err = decode_action_response(hex("C7 01 C0 00 01 01 FA"));
  CHECK(err.access_error == std::optional(250));
  CHECK_FALSE(err.value);
  CHECK(data_access_result_text(*err.access_error) == "other reason");
  CHECK_BYTES(encode_action_response(err), hex("C7 01 C0 00 01 01 FA"));

  // An action refused by its result (3 read-write denied), no return data.
  const auto denied = decode_action_response(hex("C7 01 C1 03 00"));
  CHECK(denied.result == 3);
  CHECK(data_access_result_text(denied.result) == "read-write denied");

  for (std::size_t n = 0; n < resp.size(); ++n)
    CHECK_THROWS_AS(decode_action_response(std::string_view(resp).substr(0, n)), apdu_error);
  for (std::size_t n = 0; n < req.size(); ++n)
    CHECK_THROWS_AS(decode_action_request(std::string_view(req).substr(0, n)), apdu_error);
}

// ======================================================================================
// SN services
// ======================================================================================

TEST_CASE("SN ReadRequest: names, a block number and parameterized access", "[dlms][codec]") {
  variable_access object_list;
  object_list.name = 0xFA08;
  CHECK_BYTES(encode_read_request({object_list}), hex("05 01 02 FA 08"));
  const auto one = decode_read_request(hex("05 01 02 FA 08"));
  REQUIRE(one.size() == 1);
  CHECK(one[0].type == variable_access::kind::name);
  CHECK(one[0].name == 0xFA08);

  variable_access a, b;
  a.name = 0xFD08;
  b.name = 0xFF08;
  CHECK_BYTES(encode_read_request({a, b}), hex("05 02 02 FD 08 02 FF 08"));
  const auto two = decode_read_request(hex("05 02 02 FD 08 02 FF 08"));
  REQUIRE(two.size() == 2);
  CHECK(two[1].name == 0xFF08);

  variable_access next;
  next.type = variable_access::kind::block_number;
  next.block_number = 1;
  CHECK_BYTES(encode_read_request({next}), hex("05 01 05 00 01"));
  const auto blk = decode_read_request(hex("05 01 05 00 01"));
  REQUIRE(blk.size() == 1);
  CHECK(blk[0].type == variable_access::kind::block_number);
  CHECK(blk[0].block_number == 1);

  // Profile with base name 0x3100: buffer at 0x3108, selector 1 with the LN range parameter.
  const auto from = make_dt(2019, 12, 19, 0xFF, 0, 0, 0, std::nullopt, 0xFF);
  const auto to = make_dt(2019, 12, 20, 0xFF, 0, 0, 0, std::nullopt, 0xFF);
  const auto range = range_access(from, to);
  variable_access p;
  p.type = variable_access::kind::parameterized;
  p.name = 0x3108;
  p.selector = range.selector;
  p.parameter = range.parameter;
  const auto expected = hex("05 01 04 31 08 01 02 04 02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00 "
                            "09 0C 07 E3 0C 13 FF 00 00 00 00 80 00 FF 09 0C 07 E3 0C 14 FF 00 00 00 00 80 00 FF 01 00");
  CHECK_BYTES(encode_read_request({p}), expected);
  const auto pd = decode_read_request(expected);
  REQUIRE(pd.size() == 1);
  CHECK(pd[0].type == variable_access::kind::parameterized);
  CHECK(pd[0].name == 0x3108);
  CHECK(pd[0].selector == 1);
  CHECK(pd[0].parameter == range.parameter);

  CHECK_THROWS_AS(decode_read_request(hex("05 01 03 FA 08")), apdu_error); // detailed-access
  CHECK_THROWS_AS(decode_read_request(hex("05 02 02 FA 08")), apdu_error);
}

TEST_CASE("SN ReadResponse: the PB1 object list entries", "[dlms][codec]") {
  const auto entries = hex("02 04 10 00 10 12 27 16 11 03 09 06 00 00 F0 0D 00 FF "
                           "02 04 10 04 10 12 00 03 11 00 09 06 00 00 61 61 00 FF "
                           "02 04 10 2B C0 12 00 08 11 00 09 06 00 00 01 00 00 FF "
                           "02 04 10 C7 38 12 00 14 11 00 09 06 00 00 0D 00 00 FF");
  // The trace's own start announces 293 entries (01 82 01 25): these four alone are truncated.
  CHECK_THROWS_AS(decode_read_response(hex("0C 01 00 01 82 01 25") + entries), apdu_error);
  // With the count set to the four entries given.
  const auto results = decode_read_response(hex("0C 01 00 01 04") + entries);
  REQUIRE(results.size() == 1);
  CHECK(results[0].type == read_result::kind::data);
  const auto& list = results[0].value;
  REQUIRE(list.type == tag::array);
  REQUIRE(list.items.size() == 4);
  struct expect {
    std::uint16_t base_name;
    int class_id, version;
    obis ln;
  };
  const expect want[] = {{0x0010, 10006, 3, {0, 0, 240, 13, 0, 255}},
                         {0x0410, 3, 0, {0, 0, 97, 97, 0, 255}},
                         {0x2BC0, 8, 0, {0, 0, 1, 0, 0, 255}},
                         {0xC738, 20, 0, {0, 0, 13, 0, 0, 255}}};
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& e = list.items[i];
    REQUIRE(e.type == tag::structure);
    REQUIRE(e.items.size() == 4);
    CHECK(e.items[0].type == tag::long_);
    CHECK(static_cast<std::uint16_t>(*e.items[0].integer() & 0xFFFF) == want[i].base_name);
    CHECK(e.items[1].integer() == std::optional<std::int64_t>(want[i].class_id));
    CHECK(e.items[2].integer() == std::optional<std::int64_t>(want[i].version));
    CHECK(e.items[3] == data::octet_string(obis_bytes(want[i].ln)));
  }
  // 0xC738 arrives as a negative long.
  CHECK(list.items[3].items[0].integer() == std::optional<std::int64_t>(-14536));
  // Encoding the same results gives the same bytes.
  CHECK_BYTES(encode_read_response(results), hex("0C 01 00 01 04") + entries);
}

TEST_CASE("SN ReadResponse: several results, an access error and data blocks", "[dlms][codec]") {
  // Register value and scaler_unit read together (dlms-more §1.4 derived form).
  const auto two = hex("0C 02 00 06 00 00 13 91 00 02 02 0F FE 16 1E");
  const auto r = decode_read_response(two);
  REQUIRE(r.size() == 2);
  CHECK(r[0].value == data::double_long_unsigned32(5009));
  CHECK(r[1].value == data::structure({data::integer8(-2), data::enumerated(30)}));
  CHECK(unit_text(static_cast<int>(*r[1].value.items[1].integer())) == "Wh");
  CHECK_BYTES(encode_read_response(r), two);

  const auto denied = decode_read_response(hex("0C 01 01 04"));
  REQUIRE(denied.size() == 1);
  CHECK(denied[0].type == read_result::kind::access_error);
  CHECK(denied[0].access_error == 4);
  CHECK(data_access_result_text(4) == "object undefined");
  CHECK_BYTES(encode_read_response(denied), hex("0C 01 01 04"));

  // Data-block-result: 0C 01 02 <last> <blk:2> <len> <raw>; the parts join to one Data.
  const auto whole = encode(data::array({data::long_unsigned16(1), data::long_unsigned16(2)}));
  const auto b1 = hex("0C 01 02 00 00 01 03") + whole.substr(0, 3);
  const auto b2 = hex("0C 01 02 01 00 02 05") + whole.substr(3);
  const auto r1 = decode_read_response(b1);
  const auto r2 = decode_read_response(b2);
  REQUIRE(r1.size() == 1);
  REQUIRE(r2.size() == 1);
  CHECK(r1[0].type == read_result::kind::data_block);
  CHECK_FALSE(r1[0].last_block);
  CHECK(r1[0].block_number == 1);
  CHECK(r2[0].last_block);
  CHECK(r2[0].block_number == 2);
  CHECK(decode_all(r1[0].raw + r2[0].raw) == data::array({data::long_unsigned16(1), data::long_unsigned16(2)}));
  CHECK_BYTES(encode_read_response(r1), b1);
  CHECK_BYTES(encode_read_response(r2), b2);
  // Block-number choice (03).
  const auto bn = decode_read_response(hex("0C 01 03 00 07"));
  CHECK(bn[0].type == read_result::kind::block_number);
  CHECK(bn[0].block_number == 7);
  CHECK_BYTES(encode_read_response(bn), hex("0C 01 03 00 07"));

  for (std::size_t n = 0; n < two.size(); ++n)
    CHECK_THROWS_AS(decode_read_response(std::string_view(two).substr(0, n)), apdu_error);
  CHECK_THROWS_AS(decode_read_response(hex("0C 01 04 00")), apdu_error);
}

TEST_CASE("SN WriteRequest to reply_to_HLS_authentication, and the answers", "[dlms][codec]") {
  // f(StoC) for HLS-MD5 (dlms-more §2.3), 16 bytes, written to 0xFA58.
  const auto f = hex("53 D4 53 7E 37 DA B4 FF 08 96 29 E2 55 57 AF 9F");
  variable_access method8;
  method8.name = 0xFA58;
  const auto expected = hex("06 01 02 FA 58 01 09 10") + f;
  CHECK_BYTES(encode_write_request({method8}, {data::octet_string(f)}), expected);
  const auto [vars, values] = decode_write_request(expected);
  REQUIRE(vars.size() == 1);
  CHECK(vars[0].name == 0xFA58);
  REQUIRE(values.size() == 1);
  CHECK(values[0] == data::octet_string(f));
  for (std::size_t n = 0; n < expected.size(); ++n)
    CHECK_THROWS_AS(decode_write_request(std::string_view(expected).substr(0, n)), apdu_error);

  // The meter answers with a ReadResponse carrying f(CtoS) ...
  const auto fc = hex("87 0F 56 D7 F2 BA 75 48 2C A4 1B E3 1A 21 63 0B");
  const auto rr = decode_read_response(hex("0C 01 00 09 10") + fc);
  REQUIRE(rr.size() == 1);
  CHECK(rr[0].value == data::octet_string(fc));
  // ... or a WriteResponse.
  const auto ok = decode_write_response(hex("0D 01 00"));
  REQUIRE(ok.size() == 1);
  CHECK(ok[0].success);
  CHECK_BYTES(encode_write_response(ok), hex("0D 01 00"));
  const auto denied = decode_write_response(hex("0D 01 01 03"));
  REQUIRE(denied.size() == 1);
  CHECK_FALSE(denied[0].success);
  CHECK(denied[0].access_error == 3);
  CHECK_BYTES(encode_write_response(denied), hex("0D 01 01 03"));
  CHECK_THROWS_AS(decode_write_response(hex("0D 01 01")), apdu_error);
}

// ======================================================================================
// Errors and texts
// ======================================================================================

TEST_CASE("ExceptionResponse and ConfirmedServiceError", "[dlms][codec]") {
  const auto e = decode_exception_response(hex("D8 01 01"));
  CHECK(e.state_error == 1);
  CHECK(e.service_error == 1);
  CHECK(exception_text(e) == "service not allowed: operation not possible");
  CHECK_BYTES(encode_exception_response(e), hex("D8 01 01"));
  // invocation-counter-error carries the expected counter: tolerated.
  const auto ic = decode_exception_response(hex("D8 02 06 00 00 00 05"));
  CHECK(exception_text(ic) == "service unknown: invocation counter error");
  CHECK_THROWS_AS(decode_exception_response(hex("D8 01")), apdu_error);

  // A decoder expecting its own PDU reports the meter's exception with its text.
  CHECK_THROWS_WITH(decode_get_response(hex("D8 01 01")), Catch::Contains("service not allowed: operation not possible"));
  CHECK_THROWS_WITH(decode_aare(hex("D8 01 01")), Catch::Contains("service not allowed: operation not possible"));

  // Gurux server's answer to an SN request before association: initiate / service / 2.
  const auto c = decode_confirmed_service_error(hex("0E 01 03 02"));
  CHECK(c.service == 1);
  CHECK(c.error_type == 3);
  CHECK(c.value == 2);
  CHECK(confirmed_service_error_text(c) == "initiate refused: service unsupported");
  CHECK_BYTES(encode_confirmed_service_error(c), hex("0E 01 03 02"));
  const auto read_err = decode_confirmed_service_error(hex("0E 05 05 04"));
  CHECK(confirmed_service_error_text(read_err) == "read refused: object unavailable");
  CHECK_THROWS_WITH(decode_read_response(hex("0E 05 05 04")), Catch::Contains("read refused: object unavailable"));
  CHECK_THROWS_AS(decode_confirmed_service_error(hex("0E 05 05")), apdu_error);
}

TEST_CASE("Ciphered APDUs are refused by name", "[dlms][codec]") {
  for (int t : {0xC8, 0xCC, 0xCF, 0xD0, 0xD7, 0xD9, 0xDF})
    CHECK_THROWS_WITH(decode_get_response(std::string(1, static_cast<char>(t)) + hex("01 02 03")),
                      "ciphered APDUs are not supported");
  CHECK_THROWS_WITH(decode_read_response(hex("D5 00")), "ciphered APDUs are not supported");
  CHECK_THROWS_AS(decode_get_response(""), apdu_error);
  CHECK_THROWS_AS(decode_get_response(hex("C5 01 C1 00")), apdu_error); // a SET-Response
}

TEST_CASE("Data-access-result and diagnostic texts", "[dlms][codec]") {
  CHECK(data_access_result_text(4) == "object undefined");
  CHECK(data_access_result_text(3) == "read-write denied");
  CHECK(data_access_result_text(11) == "object unavailable");
  CHECK(data_access_result_text(250) == "other reason");
  CHECK(data_access_result_text(1) == "hardware fault");
  CHECK(data_access_result_text(99) == "data access error 99");
  CHECK(association_diagnostic_text(1, 13) == "authentication failure");
  CHECK(association_diagnostic_text(1, 14) == "authentication required");
  CHECK(association_diagnostic_text(1, 2) == "application context name not supported");
  CHECK(association_diagnostic_text(1, 11) == "authentication mechanism name not recognised");
  CHECK(initiate_error_text(6, 2) == "incompatible conformance");
  CHECK(initiate_error_text(6, 3) == "PDU size too short");
}

// ======================================================================================
// HLS pass 3/4
// ======================================================================================

TEST_CASE("HLS responses: MD5, SHA-1 and SHA-256 values of dlms-more §2.3", "[dlms][codec]") {
  const std::string secret = "12345678";
  const auto stoc = hex("50 36 77 52 4A 32 31 46");
  const auto ctos = hex("4B 35 36 69 56 61 67 59");
  const auto stc = hex("4D 4D 4D 00 00 00 00 01");
  const auto sts = hex("4D 4D 4D 00 00 BC 61 4E");
  // MD5 / SHA-1: hash(challenge || secret); the client answers StoC, the server CtoS.
  CHECK_BYTES(hls_response(authentication::high_md5, secret, stoc), hex("53D4537E37DAB4FF089629E25557AF9F"));
  CHECK_BYTES(hls_response(authentication::high_md5, secret, ctos), hex("870F56D7F2BA75482CA41BE31A21630B"));
  CHECK_BYTES(hls_response(authentication::high_sha1, secret, stoc),
              hex("6DBD949D1B1EFDD6FE5F9EA627877E986E8708CB"));
  // Titles and own challenge do not enter MD5 / SHA-1.
  CHECK(hls_response(authentication::high_md5, secret, stoc, stc, sts, ctos) ==
        hls_response(authentication::high_md5, secret, stoc));
  // SHA-256: client f(StoC) = SHA-256(secret || ST-C || ST-S || StoC || CtoS); the server's
  // f(CtoS) with the roles swapped.
  CHECK_BYTES(hls_response(authentication::high_sha256, secret, stoc, stc, sts, ctos),
              hex("67342BAA6815DA654EEFBB879B6A23DA0D2BB0404ABBB1A738631241A6B96516"));
  CHECK_BYTES(hls_response(authentication::high_sha256, secret, ctos, sts, stc, stoc),
              hex("5DA97807E1B30B5D95A5B48BDA34C4232130F761E57C316CCDEF70322605A90D"));
  for (auto a : {authentication::none, authentication::low, authentication::high, authentication::high_gmac})
    CHECK_THROWS_AS(hls_response(a, secret, stoc), apdu_error);
}

// ======================================================================================
// Hostile input
// ======================================================================================

TEST_CASE("Decoders given mutated vectors either decode or throw their own error", "[dlms][codec]") {
  // Every byte of each vector replaced by boundary values (lengths and counts become huge,
  // tags unknown); anything but success, apdu_error or axdr_error (a crash, bad_alloc,
  // length_error) fails the test.
  const std::vector<std::pair<std::string, int>> vectors = {
      {aarq_lls, 0}, {aarq_gmac, 0}, {aare_gmac, 1}, {aare_accepted, 1},
      {hex("61 1F A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 01 BE 06 04 04 0E 01 06 01"), 1},
      {hex("C4 01 C1 00 01 02 02 04 09 0C 07 E3 0C 13 04 02 00 00 00 FF C4 00 11 06 06 00 00 05 ED 06 00 00 06 54 "
           "02 04 00 11 06 06 00 00 05 F0 13 02 02 12 09 08 00 05 02 41 42 00 06 00"), 2},
      {hex("C4 02 C1 00 00 00 00 01 00 04 01 02 03 04"), 2},
      {hex("C0 01 C1 00 07 01 00 63 01 00 FF 02 01 02 02 04 06 00 00 00 01 06 00 00 00 30 12 00 01 12 00 00"), 3},
      {hex("C7 01 C0 00 01 00 09 11 10 00 00 1A FD E8 85 7B 72 8A 34 99 10 6A A6 65 D1"), 4},
      {hex("C3 01 C0 00 0F 00 00 28 00 00 FF 01 01 09 03 10 00 00"), 5},
      {hex("0C 02 00 06 00 00 13 91 02 00 00 01 03 01 02 03"), 6},
      {hex("05 03 02 FA 08 04 31 08 01 02 01 11 05 05 00 01"), 7},
      {hex("06 01 02 FA 58 01 09 02 AB CD"), 8},
      {hex("0D 02 00 01 03"), 9},
  };
  auto run = [](const std::string& bytes, int which) {
    switch (which) {
    case 0: (void)decode_aarq(bytes); break;
    case 1: (void)decode_aare(bytes); break;
    case 2: (void)decode_get_response(bytes); break;
    case 3: (void)decode_get_request(bytes); break;
    case 4: (void)decode_action_response(bytes); break;
    case 5: (void)decode_action_request(bytes); break;
    case 6: (void)decode_read_response(bytes); break;
    case 7: (void)decode_read_request(bytes); break;
    case 8: (void)decode_write_request(bytes); break;
    case 9: (void)decode_write_response(bytes); break;
    }
  };
  int failures = 0;
  for (const auto& [vector, which] : vectors) {
    REQUIRE_NOTHROW(run(vector, which)); // the unmutated vector is valid
    for (std::size_t i = 0; i < vector.size(); ++i) {
      for (int b : {0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFE, 0xFF}) {
        auto mutated = vector;
        mutated[i] = static_cast<char>(b);
        try {
          run(mutated, which);
        } catch (const apdu_error&) {
        } catch (const axdr_error&) {
        } catch (const std::exception& e) {
          ++failures;
          UNSCOPED_INFO("vector " << which << " byte " << i << " = " << b << ": " << e.what());
        }
      }
    }
  }
  CHECK(failures == 0);
}

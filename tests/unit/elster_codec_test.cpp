// Elster codec: the published hash vectors (notes §2.3), the BCC vectors of the Elster frames
// (notes §1.8) and every encoding, with expected bytes written out by hand.
#include "drivers/elster_codec.hpp"
#include "drivers/iec_frames.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace mts::drivers;
using namespace mts::drivers::elster;

namespace {
std::string bytes(std::initializer_list<int> v) {
  std::string out;
  for (int b : v)
    out += static_cast<char>(b);
  return out;
}
} // namespace

TEST_CASE("Elster password hash reproduces the four published vectors", "[elster][codec]") {
  CHECK(password_hash("FEDC0003", "FD2BA0E29731D230") == std::optional<std::string>("BE2C10B158593B3E"));
  CHECK(password_hash("00000000", "FD04BE65D6157FA9") == std::optional<std::string>("669A287D6388D770"));
  CHECK(password_hash("00000000", "B0A692CB07930FD1") == std::optional<std::string>("61F79994CB6EAD8E"));
  CHECK(password_hash("00000000", "EA864EBC197ED3D3") == std::optional<std::string>("BD73F17DA6F4D7BA"));
  // Lower-case seed text is the same seed.
  CHECK(password_hash("00000000", "ea864ebc197ed3d3") == std::optional<std::string>("BD73F17DA6F4D7BA"));
  // Not 8 characters, or a seed that is not 16 hex digits: no hash.
  CHECK_FALSE(password_hash("0000000", "EA864EBC197ED3D3"));
  CHECK_FALSE(password_hash("000000000", "EA864EBC197ED3D3"));
  CHECK_FALSE(password_hash("00000000", "EA864EBC197ED3D"));
  CHECK_FALSE(password_hash("00000000", "EA864EBC197ED3DX"));
}

TEST_CASE("BCC of the Elster frames quoted in the notes", "[elster][codec]") {
  CHECK(iec::bcc("P0\x02(FD2BA0E29731D230)\x03") == 0x6D);
  CHECK(iec::bcc("P2\x02(BE2C10B158593B3E)\x03") == 0x60);
  CHECK(iec::bcc("R1\x02" "798001(10)\x03") == 0x65);
  CHECK(iec::bcc("P0\x02(FD04BE65D6157FA9)\x03") == 0x1D);
  CHECK(iec::bcc("(30303030303030303035303734343934)\x03") == 0x0D);
  CHECK(iec::break_message() == "\x01\x42\x30\x03\x71");
}

TEST_CASE("Elster hex text and little-endian integers", "[elster][codec]") {
  CHECK(to_hex(bytes({0x00, 0x1F, 0xA0, 0xFF})) == "001FA0FF");
  CHECK(from_hex("001fA0FF") == std::optional<std::string>(bytes({0x00, 0x1F, 0xA0, 0xFF})));
  CHECK_FALSE(from_hex("ABC"));
  CHECK_FALSE(from_hex("0G"));
  CHECK(from_hex("30303030303030303035303734343934") == std::optional<std::string>("0000000005074494"));
  CHECK(decode_le_uint(bytes({0x03, 0x00})) == 3);
  CHECK(decode_le_uint(bytes({0x78, 0x56, 0x34, 0x12})) == 0x12345678u);
  CHECK(encode_le_uint(3, 2) == bytes({0x03, 0x00}));
  CHECK(to_hex(encode_le_uint(0xFFFF, 2)) == "FFFF");
  CHECK(to_hex(encode_le_uint(1546300800, 4)) == "80AD2A5C"); // 2019-01-01T00:00:00Z
}

TEST_CASE("Elster little-endian packed BCD registers", "[elster][codec]") {
  // 12345678901 Wh x 10^-3: bytes reversed are 00 00 00 12 34 56 78 90 ... written LE.
  CHECK(decode_le_bcd(bytes({0x01, 0x89, 0x67, 0x45, 0x23, 0x01, 0x00, 0x00})) ==
        std::optional<std::uint64_t>(12345678901ull));
  CHECK(encode_le_bcd(12345678901ull, 8) == bytes({0x01, 0x89, 0x67, 0x45, 0x23, 0x01, 0x00, 0x00}));
  CHECK(decode_le_bcd(bytes({0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0x99})) ==
        std::optional<std::uint64_t>(9999999999999999ull));
  CHECK_FALSE(decode_le_bcd(bytes({0x0A, 0x00})));
  CHECK_FALSE(decode_le_bcd(bytes({0xA0, 0x00})));
  CHECK(scale_decimal(12345678901ull, -6) == 12345.678901);
  CHECK(scale_decimal(1234, -3) == 1.234);
  CHECK(scale_decimal(12, 2) == 1200.0);
}

TEST_CASE("Elster 861 clock", "[elster][codec]") {
  // 2019-01-02T04:02:10 -> 10 02 04 02 01 00 19
  const auto clock = bytes({0x10, 0x02, 0x04, 0x02, 0x01, 0x00, 0x19});
  CHECK(decode_clock(clock) == std::optional<mts::unix_seconds>(1546401730));
  CHECK(encode_clock(1546401730) == clock);
  // Day and month carry flag bits above their masks (0x3F, 0x1F): ignored.
  CHECK(decode_clock(bytes({0x10, 0x02, 0x04, 0x42, 0x21, 0x03, 0x19})) == std::optional<mts::unix_seconds>(1546401730));
  CHECK(decode_clock(bytes({0x00, 0x00, 0x00, 0x29, 0x02, 0x00, 0x20})) ==
        std::optional<mts::unix_seconds>(1582934400)); // 2020-02-29
  CHECK_FALSE(decode_clock(bytes({0x00, 0x00, 0x00, 0x29, 0x02, 0x00, 0x19}))); // 2019-02-29
  CHECK_FALSE(decode_clock(bytes({0x60, 0x00, 0x00, 0x01, 0x01, 0x00, 0x19})));
  CHECK_FALSE(decode_clock(bytes({0x0A, 0x00, 0x00, 0x01, 0x01, 0x00, 0x19})));
  CHECK_FALSE(decode_clock(bytes({0x00, 0x00, 0x00, 0x01, 0x01, 0x00})));
}

TEST_CASE("Elster 724 system status texts, bit 31 first", "[elster][codec]") {
  CHECK(system_status_events(0).empty());
  CHECK(system_status_events(0x000000F8).empty()); // spare bits 3..7 are masked out
  CHECK(system_status_events(0x80000001) ==
        std::vector<std::string>{"Backup register set corrupt", "Meter transient reset"});
  CHECK(system_status_events(0x04004006) ==
        std::vector<std::string>{"Meter power-down event", "Reverse run", "Meter comms write event",
                                 "Time synchronisation"});
  CHECK(system_status_events(0xFFFFFFFF).size() == 27);
  CHECK(std::string(system_status_text(18)) == "RTC device failure");
  CHECK(std::string(system_status_text(11)) == "Phase A over-current");
}

TEST_CASE("Elster ERRn replies and serial normalisation", "[elster][codec]") {
  CHECK(error_number("(ERR5)") == std::optional<int>(5));
  CHECK_FALSE(error_number("(ERR)"));
  CHECK_FALSE(error_number("(3030)"));
  CHECK(error_text(1) == "invalid command");
  CHECK(error_text(2) == "invalid data identity");
  CHECK(error_text(3) == "invalid packet number");
  CHECK(error_text(4) == "meter error 4");
  CHECK(error_text(5) == "password session timed out");
  CHECK(error_text(6) == "general communications error");
  CHECK(normalise_serial("0000000005074494") == "05074494");
  CHECK(normalise_serial("0000000012345678") == "12345678");
  CHECK(normalise_serial("  000000123456789") == "123456789");
  CHECK(normalise_serial("00000000") == "00000000");
  CHECK(normalise_serial("ABC") == "ABC");
}

TEST_CASE("Elster profile values and markers", "[elster][codec]") {
  CHECK(integration_minutes(9) == std::optional<int>(30));
  CHECK(integration_minutes(0x19) == std::optional<int>(30)); // low nibble only
  CHECK(integration_minutes(10) == std::optional<int>(60));
  CHECK_FALSE(integration_minutes(11));
  CHECK(integration_code(30) == std::optional<std::uint8_t>(9));
  CHECK(channels_from_wire_mask(0x003F) == 0x003F);
  CHECK(channels_from_wire_mask(0x00BF) == 0x003F); // DST flag ignored
  CHECK(channels_from_wire_mask(0x0100) == 0x0080); // channel 7 lives in the high byte
  CHECK(wire_mask_from_channels(0x0080) == 0x0100);
  CHECK(channel_count(0x003F) == 6);
  // 12345 x 10^2 -> 12 34 52
  auto v = decode_profile_value(bytes({0x12, 0x34, 0x52}));
  REQUIRE(v);
  CHECK(v->digits == 12345);
  CHECK(v->exponent == 2);
  CHECK(encode_profile_value(1234) == bytes({0x01, 0x23, 0x40}));
  CHECK(encode_profile_value(1234567) == bytes({0x12, 0x34, 0x52}));
  CHECK_FALSE(decode_profile_value(bytes({0x1A, 0x00, 0x00})));
}

TEST_CASE("Elster 550 record stream parsing", "[elster][codec]") {
  // E4 at 2019-01-01T00:00 (5C2AAD80), mask 00 03 (Import, Export), code 09; a record;
  // E6 and E5; another record; FF; padding.
  const auto stream = bytes({0xE4, 0x80, 0xAD, 0x2A, 0x5C, 0x00, 0x03, 0x09,
                             0x00, 0x00, 0x12, 0x30, 0x00, 0x00, 0x50,
                             0xE6, 0xD8, 0xAF, 0x2A, 0x5C,
                             0xE5, 0x04, 0xB1, 0x2A, 0x5C,
                             0x08, 0x00, 0x45, 0x60, 0x00, 0x00, 0x00,
                             0xFF, 0xFF, 0xFF});
  const auto parsed = parse_profile_stream(stream, 0x3F);
  CHECK(parsed.ended);
  CHECK_FALSE(parsed.truncated);
  CHECK_FALSE(parsed.unsupported);
  REQUIRE(parsed.records.size() == 5);
  CHECK(parsed.records[0].kind == record_kind::new_day);
  CHECK(parsed.records[0].timestamp == 1546300800u);
  CHECK(parsed.records[0].channels == 0x0003);
  CHECK(parsed.records[0].code == 9);
  CHECK(parsed.records[1].kind == record_kind::data);
  REQUIRE(parsed.records[1].values.size() == 2);
  CHECK(parsed.records[1].values[0].digits == 123);
  CHECK(parsed.records[1].values[0].exponent == 0);
  CHECK(parsed.records[1].values[1].digits == 5);
  CHECK(parsed.records[2].kind == record_kind::power_down);
  CHECK(parsed.records[2].timestamp == 1546301400u);
  CHECK(parsed.records[3].kind == record_kind::power_up);
  CHECK(parsed.records[3].timestamp == 1546301700u);
  CHECK(parsed.records[4].status == 0x08);
  CHECK(parsed.records[4].values[0].digits == 456);
  // Built with the encoders, the same bytes.
  std::string built = encode_day_marker(record_kind::new_day, 1546300800u, 0x0003, 9) +
                      encode_data_record(0, {123, 5}) + encode_event_marker(record_kind::power_down, 1546301400u) +
                      encode_event_marker(record_kind::power_up, 1546301700u) + encode_data_record(8, {456, 0}) +
                      "\xFF\xFF\xFF";
  CHECK(built == stream);

  // Cut inside a record: truncated, the complete records kept.
  const auto cut = parse_profile_stream(stream.substr(0, 12), 0x3F);
  CHECK(cut.truncated);
  CHECK_FALSE(cut.ended);
  CHECK(cut.records.size() == 1);
  // E2: stops there.
  const auto e2 = parse_profile_stream(stream.substr(0, 15) + "\xE2\x01\x02", 0x3F);
  CHECK(e2.unsupported);
  CHECK(e2.records.size() == 2);
}

// DLMS/COSEM A-XDR data (drivers/dlms_axdr.hpp): the Data CHOICE decoder on any bytes, and on
// what it accepts, the encoder's output decodes to the same value and encodes to the same
// bytes; the first byte also picks a COSEM date-time check (12 bytes to a UTC instant under
// each deviation rule) or the OBIS text parser.
#include "drivers/dlms_axdr.hpp"
#include "fuzz_check.hpp"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace dlms = mts::drivers::dlms;
  if (size == 0)
    return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      if (in.size() < 12)
        return 0;
      auto dt = dlms::parse_datetime(in.substr(0, 12));
      FUZZ_CHECK(dt.has_value(), "12 bytes are not a date-time");
      FUZZ_CHECK(dlms::encode_datetime(*dt) == in.substr(0, 12), "a date-time does not encode back");
      for (auto rule : {dlms::deviation_rule::blue_book, dlms::deviation_rule::inverted, dlms::deviation_rule::ignore})
        (void)dlms::to_unix(*dt, rule, static_cast<std::int8_t>(in.size() > 12 ? in[12] : 0) * 15);
      return 0;
    }
    case 1: {
      if (auto code = dlms::parse_obis(in))
        FUZZ_CHECK(dlms::parse_obis(dlms::obis_text(*code)) == code, "an OBIS code does not read back");
      return 0;
    }
    default: {
      dlms::data value;
      try {
        value = dlms::decode_all(in);
      } catch (const dlms::axdr_error&) {
        return 0;
      }
      (void)value.integer();
      (void)value.number();
      (void)dlms::datetime_of(value);
      auto bytes = dlms::encode(value);
      auto again = dlms::decode_all(bytes);
      FUZZ_CHECK(again == value, "a decoded value does not survive encoding");
      FUZZ_CHECK(dlms::encode(again) == bytes, "encoding is not stable");
      return 0;
    }
  }
}

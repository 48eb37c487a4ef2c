// The Elster A1700/A1140 encodings (drivers/elster_codec.hpp) on any bytes, the first byte
// picking one: the load profile record stream (any channel set), profile values, the 861
// clock, packed BCD, hex text, ERRn reply texts, serial normalisation and the password hash.
// What decodes, encodes back to the same bytes where the encoding is unique.
#include "drivers/elster_codec.hpp"
#include "fuzz_check.hpp"

#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts::drivers::elster;
  if (size < 3)
    return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 3, size - 3);
  switch (data[0] % 8) {
    case 0: {
      auto channels = static_cast<std::uint16_t>(data[1] | data[2] << 8);
      auto stream = parse_profile_stream(in, channels);
      for (const auto& r : stream.records)
        if (r.kind == record_kind::data)
          FUZZ_CHECK(static_cast<int>(r.values.size()) <= 16, "more values than channels");
      break;
    }
    case 1:
      if (in.size() >= 3)
        (void)decode_profile_value(in.substr(0, 3));
      break;
    case 2:
      if (in.size() >= 7)
        (void)decode_clock(in.substr(0, 7));
      break;
    case 3:
      if (auto v = decode_le_bcd(in); v && !in.empty() && in.size() <= 8)
        FUZZ_CHECK(encode_le_bcd(*v, in.size()) == in, "packed BCD does not encode back");
      (void)decode_le_uint(in.substr(0, 8));
      break;
    case 4:
      if (auto bytes = from_hex(in))
        FUZZ_CHECK(from_hex(to_hex(*bytes)) == bytes, "hex does not read back");
      break;
    case 5:
      if (auto n = error_number(in))
        (void)error_text(*n);
      break;
    case 6: (void)normalise_serial(in); break;
    default: {
      auto split = in.find('\0');
      if (split != std::string_view::npos)
        (void)password_hash(in.substr(0, split), in.substr(split + 1));
    }
  }
  return 0;
}

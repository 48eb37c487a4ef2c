// The character format codec (drivers/char_format.hpp): comsSettings texts, and the software
// parity codec on any bytes in every format an 8-bit link can carry. Decoding gives one
// character per byte; encoding what was decoded without parity errors gives the bytes back.
#include "drivers/char_format.hpp"
#include "fuzz_check.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts::drivers;
  if (size == 0)
    return 0;
  std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto format = parse_coms_settings(in.substr(0, 8), 9600);
  if (format)
    (void)coms_settings_text(*format);
  static const line_settings formats[] = {{9600, 8, 'N', 1}, {9600, 7, 'E', 1}, {9600, 7, 'O', 1},
                                          {9600, 7, 'N', 1}, {9600, 8, 'E', 1}};
  const auto& chosen = formats[data[0] % 5];
  if (parity_codec::unsupported(chosen))
    return 0;
  parity_codec codec(chosen);
  auto characters = codec.decode(in);
  FUZZ_CHECK(characters.size() == in.size(), "decoding changed the length");
  if (codec.parity_errors() == 0 && chosen.data_bits == 7 && chosen.parity != 'N')
    FUZZ_CHECK(codec.encode(characters) == in, "parity encoding does not give the bytes back");
  return 0;
}

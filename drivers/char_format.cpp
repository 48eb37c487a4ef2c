#include "drivers/char_format.hpp"

#include <bitset>

namespace mts::drivers {

std::optional<line_settings> parse_coms_settings(std::string_view text, int baud) {
  if (text.size() != 3 || text[0] < '5' || text[0] > '8' || (text[2] != '1' && text[2] != '2'))
    return std::nullopt;
  char parity = text[1];
  if (parity >= 'a' && parity <= 'z')
    parity = static_cast<char>(parity - 'a' + 'A');
  if (parity != 'N' && parity != 'E' && parity != 'O')
    return std::nullopt;
  return line_settings{baud, text[0] - '0', parity, text[2] - '0'};
}

std::string coms_settings_text(const line_settings& s) {
  return std::to_string(s.data_bits) + s.parity + std::to_string(s.stop_bits);
}

int parity_bit(unsigned value, char parity) {
  const int ones = static_cast<int>(std::bitset<8>(value & 0xFFu).count());
  return parity == 'E' ? (ones & 1) : 1 - (ones & 1);
}

std::optional<std::string> parity_codec::unsupported(const line_settings& format) {
  if (format.parity != 'N' && format.data_bits >= 8)
    return "comsSettings " + coms_settings_text(format) + " cannot be carried over an 8-bit link";
  return std::nullopt;
}

std::string parity_codec::encode(std::string_view characters) const {
  if (transparent())
    return std::string(characters);
  const unsigned mask = (1u << data_bits_) - 1;
  std::string out(characters.size(), '\0');
  for (std::size_t i = 0; i < characters.size(); ++i) {
    unsigned v = static_cast<unsigned char>(characters[i]) & mask;
    if (parity_ != 'N')
      v |= static_cast<unsigned>(parity_bit(v, parity_)) << data_bits_;
    out[i] = static_cast<char>(v);
  }
  return out;
}

std::string parity_codec::decode(std::string_view bytes) {
  if (transparent())
    return std::string(bytes);
  const unsigned mask = (1u << data_bits_) - 1;
  std::string out(bytes.size(), '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const unsigned b = static_cast<unsigned char>(bytes[i]);
    const unsigned v = b & mask;
    if (parity_ != 'N' && static_cast<int>((b >> data_bits_) & 1u) != parity_bit(v, parity_)) {
      ++parity_errors_;
      out[i] = '\0';
      continue;
    }
    out[i] = static_cast<char>(v);
  }
  return out;
}

} // namespace mts::drivers

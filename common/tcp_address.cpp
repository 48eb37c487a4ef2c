#include "common/tcp_address.hpp"

#include <charconv>
#include <string_view>

namespace mts {

std::optional<tcp_address> parse_tcp_address(const std::string& s) {
  std::size_t colon;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':' || close == 1)
      return std::nullopt;
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0 || s.find(':') != colon)
      return std::nullopt;
  }
  auto port_text = std::string_view(s).substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port_text.size() > 5 || port < 1 ||
      port > 65535)
    return std::nullopt;
  return tcp_address{s.substr(0, colon), static_cast<std::uint16_t>(port)};
}

} // namespace mts

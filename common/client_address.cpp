#include "common/client_address.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace mts {
namespace {

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos)
    return "";
  auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto comma = text.find(',', start);
    out.push_back(trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos)
      return out;
    start = comma + 1;
  }
}

// A bare IPv4 or IPv6 address (no port, no brackets) in network order.
bool parse_ip(const std::string& text, int& family, std::uint8_t (&bytes)[16]) {
  std::memset(bytes, 0, sizeof bytes);
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), bytes) == 1) {
    family = AF_INET6;
    return true;
  }
  return false;
}

bool is_ip(const std::string& text) {
  int family = 0;
  std::uint8_t bytes[16];
  return parse_ip(text, family, bytes);
}

} // namespace

std::optional<address_set> address_set::parse(const std::string& text, std::string& error) {
  address_set set;
  if (trim(text).empty())
    return set;
  for (const auto& entry : split_commas(text)) {
    auto slash = entry.find('/');
    std::string ip = entry.substr(0, slash);
    network n{};
    if (!parse_ip(ip, n.family, n.bytes)) {
      error = "\"" + entry + "\" is not an IPv4 or IPv6 address or network (a.b.c.d[/bits], x::y[/bits])";
      return std::nullopt;
    }
    const int max_bits = n.family == AF_INET ? 32 : 128;
    n.prefix_bits = max_bits;
    if (slash != std::string::npos) {
      auto bits = entry.substr(slash + 1);
      if (bits.empty() || bits.size() > 3 || bits.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(bits) > max_bits) {
        error = "\"" + entry + "\" has a prefix length that is not 0.." + std::to_string(max_bits);
        return std::nullopt;
      }
      n.prefix_bits = std::stoi(bits);
    }
    set.networks_.push_back(n);
  }
  return set;
}

void address_set::add(const address_set& other) {
  networks_.insert(networks_.end(), other.networks_.begin(), other.networks_.end());
}

bool address_set::contains(const std::string& address) const {
  int family = 0;
  std::uint8_t bytes[16];
  if (!parse_ip(address, family, bytes))
    return false;
  for (const auto& n : networks_) {
    if (n.family != family)
      continue;
    int full = n.prefix_bits / 8, rest = n.prefix_bits % 8;
    if (std::memcmp(n.bytes, bytes, static_cast<std::size_t>(full)) != 0)
      continue;
    if (rest == 0)
      return true;
    auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
    if ((n.bytes[full] & mask) == (bytes[full] & mask))
      return true;
  }
  return false;
}

std::string client_address(const std::string& peer, const std::vector<std::string>& x_real_ip,
                           const std::vector<std::string>& x_forwarded_for, const address_set& trusted) {
  if (!trusted.contains(peer))
    return peer;
  if (x_real_ip.size() == 1) {
    auto ip = trim(x_real_ip.front());
    return is_ip(ip) ? ip : peer;
  }
  if (!x_real_ip.empty())
    return peer; // two X-Real-IP headers: nothing to believe
  // All X-Forwarded-For headers form one list, in order.
  std::vector<std::string> hops;
  for (const auto& header : x_forwarded_for)
    for (auto& hop : split_commas(header))
      hops.push_back(std::move(hop));
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (!is_ip(*it))
      return peer;
    if (!trusted.contains(*it))
      return *it;
  }
  return peer;
}

} // namespace mts

#pragma once
// The TCP form of an address ("host:port" or "[v6]:port", what validation accepts for a TCP
// remoteAddress): used to connect to meters and to check a modem gateway in the configuration.
#include <cstdint>
#include <optional>
#include <string>

namespace mts {

struct tcp_address {
  std::string host; // as the reactor takes it ("[::1]" keeps its brackets)
  std::uint16_t port = 0;
};

// "host:port" / "[v6]:port" with a port 1..65535; nothing for anything else (telephone numbers).
std::optional<tcp_address> parse_tcp_address(const std::string& remote_address);

} // namespace mts

#pragma once
// The client's real address when a trusted reverse proxy (the edge, docs/operations.md) stands
// in front of the server: X-Real-IP / X-Forwarded-For are believed only when the connection
// itself comes from a configured proxy address, never from anyone else.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mts {

// A list of IPv4/IPv6 addresses and networks ("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8").
class address_set {
public:
  // Parses a comma-separated list; nullopt and `error` naming the bad entry when malformed.
  // An empty (or all-blank) text is the empty set.
  static std::optional<address_set> parse(const std::string& text, std::string& error);

  void add(const address_set& other);
  bool contains(const std::string& address) const; // false for anything that is not an IP
  bool empty() const { return networks_.empty(); }

private:
  struct network {
    int family;                  // AF_INET or AF_INET6
    std::uint8_t bytes[16];      // the address, in network order
    int prefix_bits;
  };
  std::vector<network> networks_;
};

// The address to rate-limit and log a request under. `peer` is the connection's address.
// Only when `peer` is in `trusted`: a single valid X-Real-IP wins; otherwise the right-most
// X-Forwarded-For entry that is not itself a trusted proxy (the hops left of it were written
// by the client and prove nothing). Anything malformed falls back to `peer`.
std::string client_address(const std::string& peer, const std::vector<std::string>& x_real_ip,
                           const std::vector<std::string>& x_forwarded_for, const address_set& trusted);

} // namespace mts

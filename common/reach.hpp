#pragma once
// What meter addresses a node reaches (issue 16): a collector may say which IP networks its
// TCP sessions reach and which telephone-number prefixes its modems dial, when only it can
// reach a site's network or a region's numbers. The scheduler gives a test only to a node that
// reaches its address.
//
// - No networks: every TCP address; no prefixes: every number. Both lists only ever narrow.
// - A network matches an address whose host is an IP literal in it (address_set: IPv4 or
//   IPv6, a.b.c.d[/bits], x::y[/bits]). A host name never matches: resolving it would make the
//   decision depend on the head's resolver, not the collector's; a node that must take host
//   names leaves its networks empty.
// - A prefix matches a number that starts with it as written ("+44" and "0044" differ).
#include "common/client_address.hpp" // address_set

#include <optional>
#include <string>
#include <vector>

namespace mts {

struct reach_rules {
  address_set networks;              // empty: every TCP address
  std::vector<std::string> prefixes; // empty: every telephone number
  // Whether a test to remote_address (host:port, [v6]:port or a number) may run on this node.
  bool reaches(const std::string& remote_address) const;
};

// A telephone-number prefix as a rule: an optional '+' and 1-20 digits.
bool is_number_prefix(const std::string& text);

// The rules from their comma-separated text forms (collector.reach_networks,
// collector.reach_prefixes); nothing, with the first bad entry named in *error, if one is not a
// network or a prefix.
std::optional<reach_rules> parse_reach(const std::string& networks, const std::string& prefixes, std::string* error);

} // namespace mts

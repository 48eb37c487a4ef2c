#include "common/reach.hpp"

#include "common/tcp_address.hpp"

#include <algorithm>
#include <cctype>

namespace mts {

bool is_number_prefix(const std::string& text) {
  const std::string digits = !text.empty() && text[0] == '+' ? text.substr(1) : text;
  return !digits.empty() && digits.size() <= 20 &&
         std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

bool reach_rules::reaches(const std::string& remote_address) const {
  if (auto tcp = parse_tcp_address(remote_address)) {
    if (networks.empty())
      return true;
    std::string host = tcp->host;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    return networks.contains(host);
  }
  return prefixes.empty() || std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) {
           return remote_address.compare(0, p.size(), p) == 0;
         });
}

std::optional<reach_rules> parse_reach(const std::string& networks, const std::string& prefixes, std::string* error) {
  reach_rules rules;
  std::string why;
  auto parsed = address_set::parse(networks, why);
  if (!parsed) {
    if (error)
      *error = why;
    return std::nullopt;
  }
  rules.networks = std::move(*parsed);
  std::size_t at = 0;
  while (at <= prefixes.size()) {
    auto comma = prefixes.find(',', at);
    auto entry = prefixes.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? prefixes.size() + 1 : comma + 1;
    const auto first = entry.find_first_not_of(" \t");
    if (first == std::string::npos) {
      if (prefixes.find_first_not_of(" \t,") == std::string::npos)
        break; // empty: every number
      if (error)
        *error = "an empty entry in the number prefixes";
      return std::nullopt;
    }
    entry = entry.substr(first, entry.find_last_not_of(" \t") - first + 1);
    if (!is_number_prefix(entry)) {
      if (error)
        *error = "\"" + entry.substr(0, 32) + "\" is not a telephone-number prefix (an optional '+' and 1-20 digits)";
      return std::nullopt;
    }
    rules.prefixes.push_back(entry);
  }
  return rules;
}

} // namespace mts

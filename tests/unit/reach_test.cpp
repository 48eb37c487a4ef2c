// What a node reaches (common/reach.hpp): the networks of TCP meters and the number prefixes of
// telephone ones a collector offers the head.
#include "common/reach.hpp"

#include <catch2/catch.hpp>

using namespace mts;

namespace {
reach_rules rules(const std::string& networks, const std::string& prefixes) {
  std::string error;
  auto r = parse_reach(networks, prefixes, &error);
  INFO(error);
  REQUIRE(r);
  return *r;
}
} // namespace

TEST_CASE("reach: no rules reach every address", "[reach]") {
  auto all = rules("", "");
  CHECK(all.reaches("10.0.0.1:4059"));
  CHECK(all.reaches("meter.example.net:4059"));
  CHECK(all.reaches("[2001:db8::1]:4059"));
  CHECK(all.reaches("+441632960000"));
  CHECK(all.reaches("01632960000"));
}

TEST_CASE("reach: networks narrow TCP addresses, prefixes narrow numbers", "[reach]") {
  auto site = rules("10.1.0.0/16, 2001:db8:1::/48, 192.0.2.7", "+4420, 01632");
  CHECK(site.reaches("10.1.255.254:4059"));
  CHECK_FALSE(site.reaches("10.2.0.1:4059"));
  CHECK(site.reaches("192.0.2.7:1"));
  CHECK_FALSE(site.reaches("192.0.2.8:1"));
  CHECK(site.reaches("[2001:db8:1:ffff::5]:4059"));
  CHECK_FALSE(site.reaches("[2001:db8:2::5]:4059"));
  // A host name is never inside a network: the head does not resolve it for the collector.
  CHECK_FALSE(site.reaches("meter.example.net:4059"));
  CHECK(site.reaches("+442079460000"));
  CHECK(site.reaches("01632960000"));
  CHECK_FALSE(site.reaches("00442079460000")); // compared as written
  CHECK_FALSE(site.reaches("+331234567"));

  // Only networks: every number is reached; only prefixes: every TCP address.
  CHECK(rules("10.1.0.0/16", "").reaches("+331234567"));
  CHECK(rules("", "+44").reaches("meter.example.net:4059"));
}

TEST_CASE("reach: a bad entry is refused and named", "[reach]") {
  std::string error;
  CHECK_FALSE(parse_reach("10.1.0.0/33", "", &error));
  CHECK(error.find("10.1.0.0/33") != std::string::npos);
  CHECK_FALSE(parse_reach("meter.example.net", "", &error));
  CHECK(error.find("meter.example.net") != std::string::npos);
  CHECK_FALSE(parse_reach("", "+44, 12a", &error));
  CHECK(error.find("12a") != std::string::npos);
  CHECK_FALSE(parse_reach("", "+44,,01", &error));
  CHECK(error.find("empty") != std::string::npos);
  CHECK_FALSE(parse_reach("", "+", &error));
  CHECK_FALSE(parse_reach("", "123456789012345678901", &error)); // 21 digits
  CHECK(parse_reach("", "12345678901234567890", &error));        // 20
  CHECK(is_number_prefix("+44"));
  CHECK_FALSE(is_number_prefix("44 20"));
}

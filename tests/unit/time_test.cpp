// UTC formatting and parsing (common/time.hpp).
#include "common/time.hpp"

#include <catch2/catch.hpp>

#include <ctime>

using namespace mts;

namespace {

// The C library's answer, for comparison.
std::string libc_utc(unix_seconds t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

} // namespace

TEST_CASE("format_utc: known instants", "[time]") {
  CHECK(format_utc(0) == "1970-01-01T00:00:00Z");
  CHECK(format_utc(-1) == "1969-12-31T23:59:59Z");
  CHECK(format_utc(951782400) == "2000-02-29T00:00:00Z");
  CHECK(format_utc(4107542399) == "2100-02-28T23:59:59Z");
  CHECK(format_utc(4107542400) == "2100-03-01T00:00:00Z"); // 2100 is not a leap year
  CHECK(format_utc(253402300799) == "9999-12-31T23:59:59Z");
  CHECK(format_utc(-62167219200) == "0000-01-01T00:00:00Z");
  CHECK(format_date(1546398000) == "2019-01-02");
}

TEST_CASE("format_utc agrees with gmtime over four centuries and beyond year 9999", "[time]") {
  // A step prime to the day length walks through every time of day and every calendar case.
  int checked = 0;
  for (unix_seconds t = -2208988800; t < 10413792000; t += 999983) { // 1900 .. 2300
    REQUIRE(format_utc(t) == libc_utc(t));
    ++checked;
  }
  CHECK(checked > 12000);
  CHECK(format_utc(253402300800) == "10000-01-01T00:00:00Z");
  CHECK(format_utc(253402300800) == libc_utc(253402300800));
}

TEST_CASE("parse_utc reads back what format_utc writes", "[time]") {
  for (unix_seconds t = 0; t < 4102444800; t += 7777777)
    REQUIRE(parse_utc(format_utc(t)) == t);
  CHECK_FALSE(parse_utc("2019-02-29T00:00:00Z"));
}

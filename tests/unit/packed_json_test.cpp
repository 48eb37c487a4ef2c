// Unit tests for persistence/packed_json: the compact encoding of stored readings and
// transcripts round-trips every text exactly, is compact on survey data, and refuses damage.
#include "persistence/packed_json.hpp"

#include <catch2/catch.hpp>

#include <zlib.h>

#include <string>

using namespace mts;

namespace {

// A survey like a driver writes it: 6 channels x 480 half-hours (10 days), as in test-status.
std::string survey_text(int days) {
  std::string s = R"({"serialNumber":"60822465","surveyData":[)";
  for (int ch = 0; ch < 6; ++ch) {
    s += (ch ? "," : "") + std::string(R"({"name":"channel )") + std::to_string(ch) + R"(","units":"kWh","readings":[)";
    for (int i = 0; i < days * 48; ++i) {
      const int minutes = i * 30;
      char stamp[32];
      std::snprintf(stamp, sizeof stamp, "2026-12-%02dT%02d:%02d:00Z", 1 + minutes / 1440, minutes / 60 % 24, minutes % 60);
      s += (i ? "," : "") + std::string(R"({"timestamp":")") + stamp + R"(","value":)" +
           std::to_string((i * 7919 + ch * 104729) % 5000 / 1000.0).substr(0, 5) + "}";
    }
    s += "]}";
  }
  return s + "]}";
}

std::string flipped(std::string s, std::size_t at) {
  s.at(at) = static_cast<char>(s.at(at) ^ 0x20);
  return s;
}

} // namespace

TEST_CASE("packed_json round-trips texts byte for byte", "[packed_json]") {
  for (const std::string& text : {std::string("{}"), std::string("[]"), std::string(R"({"a":"\u00e9 é €"})"),
                                  std::string("x\0y", 3), survey_text(1), survey_text(10)}) {
    const std::string packed = packed_json::pack(text);
    CHECK(packed != text);
    CHECK(static_cast<unsigned char>(packed.at(0)) == packed_json::format_zlib);
    CHECK(packed_json::unpack(packed) == text);
  }
  CHECK(packed_json::pack("").empty());
  CHECK(packed_json::unpack("").empty());
}

TEST_CASE("packed_json keeps 10 survey days in a fraction of the text", "[packed_json]") {
  const std::string text = survey_text(10);
  REQUIRE(text.size() > 100000);
  const std::string packed = packed_json::pack(text);
  // The issue's goal is 25 kB per test; real readings pack to ~10 kB (docs/benchmarks.md).
  CHECK(packed.size() * 8 < text.size());
  // The header carries the text's length, then a standard zlib stream.
  const std::uint32_t size = static_cast<unsigned char>(packed[1]) | static_cast<unsigned char>(packed[2]) << 8 |
                             static_cast<unsigned char>(packed[3]) << 16 |
                             static_cast<std::uint32_t>(static_cast<unsigned char>(packed[4])) << 24;
  CHECK(size == text.size());
  std::string plain(size, '\0');
  uLongf plain_size = size;
  REQUIRE(uncompress(reinterpret_cast<Bytef*>(plain.data()), &plain_size,
                     reinterpret_cast<const Bytef*>(packed.data() + 5), static_cast<uLong>(packed.size() - 5)) == Z_OK);
  CHECK(plain == text);
}

TEST_CASE("packed_json refuses a damaged value instead of returning wrong text", "[packed_json]") {
  const std::string text = survey_text(2);
  const std::string packed = packed_json::pack(text);
  CHECK_THROWS_MATCHES(packed_json::unpack(text), packed_json::corrupt, Catch::Message("unknown format 123"));
  CHECK_THROWS_MATCHES(packed_json::unpack(std::string("\x02") + packed.substr(1)), packed_json::corrupt,
                       Catch::Message("unknown format 2"));
  CHECK_THROWS_AS(packed_json::unpack(packed.substr(0, 4)), packed_json::corrupt);
  CHECK_THROWS_AS(packed_json::unpack(packed.substr(0, packed.size() - 1)), packed_json::corrupt); // truncated
  CHECK_THROWS_AS(packed_json::unpack(packed + "x"), packed_json::corrupt);                        // trailing bytes
  CHECK_THROWS_AS(packed_json::unpack(flipped(packed, packed.size() - 2)), packed_json::corrupt);  // Adler-32
  CHECK_THROWS_AS(packed_json::unpack(flipped(packed, packed.size() / 2)), packed_json::corrupt);  // stream
  // A length that does not match the stream, either way.
  CHECK_THROWS_AS(packed_json::unpack(flipped(packed, 1)), packed_json::corrupt);
  std::string longer = packed;
  longer[2] = static_cast<char>(longer[2] + 1);
  CHECK_THROWS_AS(packed_json::unpack(longer), packed_json::corrupt);
  std::string zero = packed;
  zero.replace(1, 4, std::string(4, '\0'));
  CHECK_THROWS_MATCHES(packed_json::unpack(zero), packed_json::corrupt, Catch::Message("implausible length 0"));
  std::string huge = packed;
  huge.replace(1, 4, std::string(4, '\xff'));
  CHECK_THROWS_MATCHES(packed_json::unpack(huge), packed_json::corrupt, Catch::Message("implausible length 4294967295"));
}

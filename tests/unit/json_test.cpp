#include "common/json.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

namespace {

using mts::json::parse_strict;
using mts::json::serialize;

// Parses text that must be rejected; returns the error.
std::string rejected(const std::string& text) {
  std::string error;
  auto v = parse_strict(text, error);
  CHECK_FALSE(v.has_value());
  CHECK_FALSE(error.empty());
  return error;
}

boost::json::value accepted(const std::string& text) {
  std::string error;
  auto v = parse_strict(text, error);
  INFO("error: " << error);
  REQUIRE(v.has_value());
  CHECK(error.empty());
  return *v;
}

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

} // namespace

TEST_CASE("parse_strict accepts ordinary JSON and keeps the kinds", "[json]") {
  auto v = accepted(R"( {"a": 1, "b": [true, false, null], "c": "x", "d": 1.5,
                          "e": -7, "f": 18446744073709551615, "g": {"h": {}}} )");
  const auto& o = v.as_object();
  REQUIRE(o.size() == 7);
  CHECK(o.at("a").is_int64());
  CHECK(o.at("a").get_int64() == 1);
  CHECK(o.at("b").as_array().size() == 3);
  CHECK(o.at("b").as_array()[0].as_bool() == true);
  CHECK(o.at("b").as_array()[2].is_null());
  CHECK(o.at("c").as_string() == "x");
  CHECK(o.at("d").is_double());
  CHECK(o.at("d").get_double() == 1.5);
  CHECK(o.at("e").get_int64() == -7);
  CHECK(o.at("f").is_uint64());
  CHECK(o.at("f").get_uint64() == std::numeric_limits<std::uint64_t>::max());
  CHECK(o.at("g").as_object().at("h").as_object().empty());
}

TEST_CASE("parse_strict: integer range and numbers with a fraction or exponent", "[json]") {
  CHECK(accepted("9223372036854775807").get_int64() == std::numeric_limits<std::int64_t>::max());
  CHECK(accepted("-9223372036854775808").get_int64() == std::numeric_limits<std::int64_t>::min());
  // A fraction or an exponent makes a double, even when the value is whole.
  auto one = accepted("1.0");
  CHECK(one.is_double());
  CHECK(one.get_double() == 1.0);
  auto hundred = accepted("1e2");
  CHECK(hundred.is_double());
  CHECK(hundred.get_double() == 100.0);
  // Correctly rounded: the same double as the C++ literal.
  CHECK(accepted("0.1").get_double() == 0.1);
  CHECK(accepted("2.2250738585072014e-308").get_double() == 2.2250738585072014e-308);
  // Underflow is zero, not an error.
  auto tiny = accepted("1e-400");
  CHECK(tiny.is_double());
  CHECK(tiny.get_double() == 0.0);
}

TEST_CASE("parse_strict rejects numbers beyond a double or a 64-bit integer", "[json]") {
  CHECK(rejected("1e400") == "number out of range at byte 0");
  CHECK(rejected("-1e400") == "number out of range at byte 0");
  CHECK(rejected("[1, 1.5e309]") == "number out of range at byte 4");
  CHECK(rejected(R"({"surveyDays": 1e400})") == "number out of range at byte 15");
  // An exponent too long for the parser itself.
  CHECK(rejected("[1e99999999999]") == "number out of range at byte 1");
  // Integers one past the 64-bit ranges would otherwise become inexact doubles.
  CHECK(rejected("18446744073709551616") == "number out of range at byte 0");
  CHECK(rejected("-9223372036854775809") == "number out of range at byte 0");
}

TEST_CASE("parse_strict rejects duplicate keys", "[json]") {
  CHECK(rejected(R"({"testId": 1, "testId": 2})") == "duplicate key \"testId\"");
  // Identical after unescaping.
  CHECK(rejected(R"({"a": 1, "\u0061": 2})") == "duplicate key \"a\"");
  // Nested: in an object inside an array inside an object.
  CHECK(rejected(R"({"x": [1, {"b": 1, "c": 2, "b": 3}]})") == "duplicate key \"b\"");
  CHECK(rejected(R"([{"a": {"z": null, "z": null}}])") == "duplicate key \"z\"");
  // A key that is not plain printable ASCII is not quoted back.
  CHECK(rejected("{\"\\n\": 1, \"\\n\": 2}") == "duplicate key in a JSON object");
  CHECK(rejected("{\"" + std::string(65, 'k') + "\": 1, \"" + std::string(65, 'k') + "\": 2}") ==
        "duplicate key in a JSON object");
}

TEST_CASE("parse_strict allows the same key in different objects", "[json]") {
  auto v = accepted(R"({"a": {"a": 1}, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]})");
  CHECK(v.at("a").at("a").get_int64() == 1);
  CHECK(v.at("b").at("a").get_int64() == 2);
  CHECK(v.at("c").at(1).at("a").get_int64() == 4);
}

TEST_CASE("parse_strict limits nesting to 16 levels", "[json]") {
  REQUIRE(mts::json::max_depth == 16);
  CHECK(accepted(nested_arrays(16)).is_array());
  CHECK(rejected(nested_arrays(17)) == "nesting deeper than 16 levels");
  // Objects count too.
  std::string objects;
  for (int i = 0; i < 17; ++i)
    objects += "{\"k\":";
  objects += "1" + std::string(17, '}');
  CHECK(rejected(objects) == "nesting deeper than 16 levels");
  // Stopped early, without recursion or crash.
  CHECK(rejected(std::string(100000, '[')) == "nesting deeper than 16 levels");
}

TEST_CASE("parse_strict rejects invalid UTF-8", "[json]") {
  // Overlong encoding of '/'.
  CHECK(rejected("\"\xC0\xAF\"") == "invalid UTF-8 at byte 1");
  // UTF-8 encoded surrogate U+D800.
  CHECK(rejected("\"\xED\xA0\x80\"") == "invalid UTF-8 at byte 1");
  // Stray continuation byte, a byte never used in UTF-8, and a truncated sequence.
  CHECK(rejected("{\"k\": \"ab\x80\"}") == "invalid UTF-8 at byte 9");
  CHECK(rejected("[\"\xFF\"]") == "invalid UTF-8 at byte 2");
  CHECK(rejected("\"\xE2\x82\"") == "invalid UTF-8 at byte 1");
  // Above U+10FFFF.
  CHECK(rejected("\"\xF4\x90\x80\x80\"") == "invalid UTF-8 at byte 1");
  // In a key too.
  CHECK(rejected("{\"\xC3\": 1}") == "invalid UTF-8 at byte 2");
  // Well-formed multi-byte characters pass unchanged.
  CHECK(accepted("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"").as_string() ==
        "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST_CASE("parse_strict rejects unpaired UTF-16 surrogate escapes", "[json]") {
  // Boost.JSON 1.81 has no option to replace lone surrogates and rejects them; that is the
  // safe outcome (a lone surrogate cannot be represented in valid UTF-8), and the test pins it.
  for (const char* text : {R"("\ud800")", R"("\udc00")", R"("\ud800x")", R"("\ud800\u0041")",
                           R"({"\ud800": 1})"}) {
    INFO(text);
    const std::string error = rejected(text);
    CHECK(error.find("\\ud800") == std::string::npos);
  }
  // A proper pair is one character, U+1F600.
  CHECK(accepted(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");
}

TEST_CASE("parse_strict rejects empty, truncated, malformed and trailing input", "[json]") {
  CHECK(rejected("") == "empty input: expected a JSON value");
  CHECK(rejected(" \r\n\t") == "empty input: expected a JSON value");
  CHECK(rejected(R"({"a":)") == "incomplete JSON: the input ends inside a value");
  CHECK(rejected("[1, 2") == "incomplete JSON: the input ends inside a value");
  CHECK(rejected("\"abc") == "incomplete JSON: the input ends inside a value");
  CHECK(rejected("tru") == "incomplete JSON: the input ends inside a value");
  CHECK(rejected("[1,]") == "malformed JSON at byte 3");
  CHECK(rejected("{'a': 1}") == "malformed JSON at byte 1");
  CHECK(rejected("[1 /* no comments */]") == "malformed JSON at byte 3");
  CHECK(rejected("{} x") == "unexpected data after the JSON value at byte 3");
  CHECK(rejected("{}{}") == "unexpected data after the JSON value at byte 2");
  CHECK(rejected("[1] [2]") == "unexpected data after the JSON value at byte 4");
  // Trailing whitespace is fine.
  CHECK(accepted("{} \r\n").as_object().empty());
}

TEST_CASE("parse_strict errors do not quote the input", "[json]") {
  for (const char* text : {"{\"password\": \"SECRET\" x}", "[\"SECRET\", SECRET]",
                           "{\"SECRET\": 1} SECRET", "\"SECRET\xC0\""}) {
    INFO(text);
    CHECK(rejected(text).find("SECRET") == std::string::npos);
  }
}

TEST_CASE("serialize writes numbers plainly", "[json]") {
  using boost::json::value;
  CHECK(serialize(value(2.0)) == "2");
  CHECK(serialize(value(1.5)) == "1.5");
  CHECK(serialize(value(-0.25)) == "-0.25");
  CHECK(serialize(value(0.1)) == "0.1");
  CHECK(serialize(value(1e-7)) == "0.0000001");
  CHECK(serialize(value(1e21)) == "1000000000000000000000.0");
  CHECK(serialize(value(758.123)) == "758.123");
  CHECK(serialize(value(std::numeric_limits<double>::infinity())) == "null");
  CHECK(serialize(value(-std::numeric_limits<double>::infinity())) == "null");
  CHECK(serialize(value(std::nan(""))) == "null");
  CHECK(serialize(value(std::int64_t{-9223372036854775807LL - 1})) == "-9223372036854775808");
  CHECK(serialize(value(std::uint64_t{18446744073709551615ULL})) == "18446744073709551615");
  CHECK(serialize(value(std::int64_t{0})) == "0");
}

TEST_CASE("serialize escapes strings", "[json]") {
  using boost::json::value;
  CHECK(serialize(value("a\"b\\c/d")) == R"("a\"b\\c/d")");
  CHECK(serialize(value("\n\r\t\b\f")) == R"("\n\r\t\b\f")");
  CHECK(serialize(value(std::string("\x01\x1f\x00", 3))) == R"("\u0001\u001f\u0000")");
  // UTF-8 passes through unescaped.
  CHECK(serialize(value("\xC3\xA9\xE2\x82\xAC")) == "\"\xC3\xA9\xE2\x82\xAC\"");
  // A byte that is not UTF-8 becomes U+FFFD, so the output stays valid.
  CHECK(serialize(value("a\xFF" "b")) == R"("a\ufffdb")");
}

TEST_CASE("serialize writes compact arrays and objects in insertion order", "[json]") {
  boost::json::object o;
  o["z"] = 1;
  o["a"] = boost::json::array{true, nullptr, "s", 2.5};
  o["m"] = boost::json::object{};
  o["e"] = boost::json::array{};
  CHECK(serialize(o) == R"({"z":1,"a":[true,null,"s",2.5],"m":{},"e":[]})");
}

// Fuzzing finding (fuzz/json.cpp, docs/testing.md): a double that is a whole number beyond the
// integers the parser accepts (1e308, or a meter's register of 1e21) was written as a plain
// integer, which the strict parser then refused ("number out of range"), so the server's own
// output (e.g. a result's readings read back by mts-sim expect) did not parse.
TEST_CASE("serialize writes huge whole doubles so that they parse back as the same double", "[json]") {
  using boost::json::value;
  for (double d : {1e21, -1e21, 1e308, -1e308, 18446744073709551616.0, std::numeric_limits<double>::max()}) {
    INFO(d);
    auto text = serialize(value(d));
    auto v = accepted(text);
    REQUIRE(v.is_double());
    CHECK(v.get_double() == d);
    CHECK(serialize(v) == text);
  }
}

// Fuzzing finding (fuzz/json.cpp, docs/testing.md): negative zero (e.g. -1E-722, which
// underflows) was written as "-0", which reads back as the integer 0 and is then written as
// "0": what was written did not survive a second pass.
TEST_CASE("serialize writes negative zero as 0", "[json]") {
  using boost::json::value;
  CHECK(serialize(value(-0.0)) == "0");
  auto v = accepted("-1E-722");
  CHECK(serialize(v) == "0");
  CHECK(serialize(accepted(serialize(v))) == "0");
}

TEST_CASE("serialize output parses back to the same value", "[json]") {
  const std::string text =
      R"({"testId":12,"value":758.5,"neg":-3,"s":"x\"y","list":[1,2.25,false,null],"o":{"k":"v"}})";
  auto v = accepted(text);
  CHECK(serialize(v) == text);
}

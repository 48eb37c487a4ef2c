#include "common/json.hpp"
#include "http/validation.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace {

using mts::query_params;
using mts::validation_context;
using details_t = std::vector<std::string>;

// 2024-03-15T12:00:00Z.
constexpr mts::unix_seconds now = 1710504000;

mts::limits_settings test_limits() {
  mts::limits_settings l;
  l.max_batch_size = 3;
  l.max_survey_days = 90;
  l.max_search_days = 10;
  l.max_search_limit = 500;
  l.default_search_limit = 50;
  return l;
}

const mts::limits_settings limits = test_limits();
const std::vector<std::string> meter_types = {"ELSTERA1700", "ELSTERA1140", "IEC62056-21"};
const validation_context ctx{limits, meter_types, now};

boost::json::value parse(const std::string& text) {
  std::string error;
  auto v = mts::json::parse_strict(text, error);
  INFO("test JSON: " << error);
  REQUIRE(v.has_value());
  return *v;
}

// A minimal valid request with extra members spliced in: request(R"("surveyDays": 3)").
std::string request(const std::string& extra = "",
                    const std::string& remote = "\"07777000000\"") {
  return R"({"meterType": "ELSTERA1700", "remoteAddress": )" + remote +
         (extra.empty() ? "" : ", " + extra) + "}";
}

std::optional<mts::test_request> validate(const std::string& text, details_t& details) {
  return mts::validate_test_request(parse(text), ctx, details);
}

// The details of a request that must be rejected.
details_t problems(const std::string& text) {
  details_t details;
  auto r = validate(text, details);
  CHECK_FALSE(r.has_value());
  return details;
}

mts::test_request valid(const std::string& text) {
  details_t details;
  auto r = validate(text, details);
  INFO(text);
  for (const auto& d : details)
    INFO(d);
  REQUIRE(r.has_value());
  CHECK(details.empty());
  return *r;
}

const std::string remote_problem = "remoteAddress: Remote address is not in a recognised format";

} // namespace

// ---------------------------------------------------------------- test-request

TEST_CASE("test-request: the minimal request gets the defaults", "[validation]") {
  auto r = valid(request());
  CHECK(r.meter_type == "ELSTERA1700");
  CHECK(r.remote_address == "07777000000");
  CHECK(r.immediate == false);
  CHECK(r.survey_days == 0);
  CHECK_FALSE(r.survey_date.has_value());
  CHECK_FALSE(r.request_reference.has_value());
  CHECK_FALSE(r.coms_settings.has_value());
  CHECK_FALSE(r.outstation_address.has_value());
  CHECK_FALSE(r.serial_number.has_value());
  CHECK_FALSE(r.password.has_value());
}

TEST_CASE("test-request: the specification's sample is accepted field by field", "[validation]") {
  auto r = valid(R"({"requestReference": "ABC", "meterType": "ELSTERA1140",
    "remoteAddress": "07777000000", "outstationAddress": "1", "serialNumber": "12345678",
    "password": "AAAA0000", "surveyDays": 10, "surveyDate": "2019-12-01", "immediate": true,
    "comsSettings": "7E1"})");
  CHECK(r.request_reference == std::optional<std::string>("ABC"));
  CHECK(r.meter_type == "ELSTERA1140");
  CHECK(r.remote_address == "07777000000");
  CHECK(r.outstation_address == std::optional<std::string>("1"));
  CHECK(r.serial_number == std::optional<std::string>("12345678"));
  CHECK(r.password == std::optional<std::string>("AAAA0000"));
  CHECK(r.survey_days == 10);
  CHECK(r.survey_date == std::optional<std::string>("2019-12-01"));
  CHECK(r.immediate == true);
  CHECK(r.coms_settings == std::optional<std::string>("7E1"));
}

TEST_CASE("test-request: every problem is reported at once, in field order", "[validation]") {
  auto d = problems(R"({"meterType": "X", "remoteAddress": "abc", "surveyDays": 1.0,
                        "immediate": "true", "colour": "red"})");
  CHECK(d == details_t{
                 "colour: unknown field",
                 "immediate: must be true or false",
                 "meterType: unsupported meter type \"X\"; supported: ELSTERA1700, ELSTERA1140, "
                 "IEC62056-21",
                 remote_problem,
                 "surveyDays: must be a whole number from 0 to 90",
             });
}

TEST_CASE("test-request: details are appended after existing ones", "[validation]") {
  details_t details{"earlier"};
  auto r = validate(request("\"immediate\": 1"), details);
  CHECK_FALSE(r.has_value());
  CHECK(details == details_t{"earlier", "immediate: must be true or false"});
}

TEST_CASE("test-request: body shape, required fields and nulls", "[validation]") {
  CHECK(problems("[]") == details_t{"body: expected a JSON object"});
  CHECK(problems("\"x\"") == details_t{"body: expected a JSON object"});
  CHECK(problems("{}") == details_t{"meterType: required", "remoteAddress: required"});
  // Null means absent: required fields are then missing...
  CHECK(problems(R"({"meterType": null, "remoteAddress": null})") ==
        details_t{"meterType: required", "remoteAddress: required"});
  // ... and optional ones take their defaults.
  auto r = valid(request(R"("requestReference": null, "immediate": null, "comsSettings": null,
    "outstationAddress": null, "serialNumber": null, "password": null, "surveyDays": null,
    "surveyDate": null)"));
  CHECK(r.immediate == false);
  CHECK(r.survey_days == 0);
  CHECK_FALSE(r.password.has_value());
  CHECK_FALSE(r.request_reference.has_value());
}

TEST_CASE("test-request: unknown fields are named, field names are exact", "[validation]") {
  CHECK(problems(request(R"("immediat": true)")) == details_t{"immediat: unknown field"});
  CHECK(problems(request(R"("MeterType": "ELSTERA1700")")) ==
        details_t{"MeterType: unknown field"});
  // A long or odd name is cut and cleaned before it is quoted.
  CHECK(problems(request("\"" + std::string(70, 'n') + "\": 1")) ==
        details_t{std::string(64, 'n') + "...: unknown field"});
  CHECK(problems(request(R"("a\nb": 1)")) == details_t{"a?b: unknown field"});
}

TEST_CASE("test-request: string fields", "[validation]") {
  for (const char* field : {"requestReference", "outstationAddress", "serialNumber", "password"}) {
    const std::string f = field;
    INFO(f);
    CHECK(problems(request("\"" + f + "\": 5")) == details_t{f + ": must be a string"});
    CHECK(problems(request("\"" + f + "\": true")) == details_t{f + ": must be a string"});
    CHECK(problems(request("\"" + f + "\": [\"a\"]")) == details_t{f + ": must be a string"});
    CHECK(problems(request("\"" + f + "\": \"a\\u0001b\"")) ==
          details_t{f + ": contains control characters"});
    CHECK(problems(request("\"" + f + "\": \"a\\u007fb\"")) ==
          details_t{f + ": contains control characters"});
    CHECK(problems(request("\"" + f + "\": \"a\\tb\"")) ==
          details_t{f + ": contains control characters"});
    CHECK(problems(request("\"" + f + "\": \"" + std::string(257, 'x') + "\"")) ==
          details_t{f + ": longer than 256 bytes"});
    // 256 bytes is the limit; bytes, not characters: 128 two-byte characters fit, 129 do not.
    valid(request("\"" + f + "\": \"" + std::string(256, 'x') + "\""));
    std::string e128, e129;
    for (int i = 0; i < 128; ++i)
      e128 += "\xC3\xA9";
    e129 = e128 + "\xC3\xA9";
    valid(request("\"" + f + "\": \"" + e128 + "\""));
    CHECK(problems(request("\"" + f + "\": \"" + e129 + "\"")) ==
          details_t{f + ": longer than 256 bytes"});
  }
  // An empty reference is kept (it is echoed back as given).
  CHECK(valid(request(R"("requestReference": "")")).request_reference ==
        std::optional<std::string>(""));
  CHECK(valid(request(R"("password": "p w")")).password == std::optional<std::string>("p w"));
}

TEST_CASE("test-request: meterType", "[validation]") {
  for (const auto& t : meter_types)
    CHECK(valid(R"({"meterType": ")" + t + R"(", "remoteAddress": "123"})").meter_type == t);
  const std::string supported = "; supported: ELSTERA1700, ELSTERA1140, IEC62056-21";
  // Exact spelling only.
  CHECK(problems(R"({"meterType": "elstera1700", "remoteAddress": "123"})") ==
        details_t{"meterType: unsupported meter type \"elstera1700\"" + supported});
  CHECK(problems(R"({"meterType": " ELSTERA1700", "remoteAddress": "123"})") ==
        details_t{"meterType: unsupported meter type \" ELSTERA1700\"" + supported});
  CHECK(problems(R"({"meterType": "", "remoteAddress": "123"})") ==
        details_t{"meterType: unsupported meter type \"\"" + supported});
  CHECK(problems(R"({"meterType": 1700, "remoteAddress": "123"})") ==
        details_t{"meterType: must be a string"});
  // The echo is cut to 64 bytes.
  CHECK(problems(R"({"meterType": ")" + std::string(100, 'M') + R"(", "remoteAddress": "123"})") ==
        details_t{"meterType: unsupported meter type \"" + std::string(64, 'M') + "...\"" +
                  supported});
  CHECK(problems(R"({"meterType": ")" + std::string(300, 'M') + R"(", "remoteAddress": "123"})") ==
        details_t{"meterType: longer than 256 bytes"});
  // The list comes from the context.
  const std::vector<std::string> other_types = {"ONLY"};
  const validation_context other{limits, other_types, now};
  details_t d;
  CHECK_FALSE(mts::validate_test_request(parse(request()), other, d).has_value());
  CHECK(d == details_t{"meterType: unsupported meter type \"ELSTERA1700\"; supported: ONLY"});
  d.clear();
  CHECK(mts::validate_test_request(parse(R"({"meterType": "ONLY", "remoteAddress": "123"})"),
                                   other, d)
            .has_value());
}

TEST_CASE("test-request: remoteAddress formats that are accepted", "[validation]") {
  for (const char* address : {
           "07777000000", "+447777000000", "123", "12345678901234567890", // telephone
           "192.168.1.10:4059", "0.0.0.0:1", "255.255.255.255:65535",       // IPv4
           "localhost:4059", "meter-01.example.com:4059", "a:1", "A1.b-2.C3:80",
           "xn--bcher-kva.example:80", "1a.example:80",                          // DNS
           "[::1]:4059", "[2001:db8::1]:65535", "[::ffff:192.0.2.1]:80",          // IPv6
       }) {
    INFO(address);
    CHECK(valid(request("", std::string("\"") + address + "\"")).remote_address == address);
  }
  // A 63-character label and a 253-character name are the limits.
  const std::string label63(63, 'a');
  valid(request("", "\"" + label63 + ".example:80\""));
  std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  REQUIRE(name253.size() == 253);
  valid(request("", "\"" + name253 + ":80\""));
}

TEST_CASE("test-request: remoteAddress formats that are refused", "[validation]") {
  const std::string label63(63, 'a');
  const std::string name254 =
      label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b');
  REQUIRE(name254.size() == 254);
  for (const std::string& address : std::vector<std::string>{
           "", "12", "123456789012345678901", "+", "+12", "++123", "0777 700000", "07777-000000",
           "abc", "host", "host:", ":4059", "host:0", "host:65536", "host:-1", "host:+80",
           "host:80x", "host: 80", "host:123456", "-host:80", "host-:80", "a..b:80", "host.:80",
           ".host:80", "host_name:80", "h st:80", "256.1.1.1:80", "1.2.3:80", "1.2.3.4.5:80",
           "01.2.3.4:80", "07777000000:80", "::1:80", "2001:db8::1:80", "[::1]", "[::1]:",
           "[::1]80", "[zz::1]:80", "[1.2.3.4]:80", "[]:80", "[::1:80",
           std::string(64, 'a') + ".example:80",
           name254 + ":1", // 256 bytes: within the field limit, one over the name limit
       }) {
    INFO(address);
    CHECK(problems(request("", "\"" + address + "\"")) == details_t{remote_problem});
  }
  CHECK(problems(request("", "4059")) == details_t{"remoteAddress: must be a string"});
}

TEST_CASE("test-request: is_telephone_address", "[validation]") {
  CHECK(mts::is_telephone_address("07777000000"));
  CHECK(mts::is_telephone_address("+447777000000"));
  CHECK_FALSE(mts::is_telephone_address("host:80"));
  CHECK_FALSE(mts::is_telephone_address("12"));
  CHECK_FALSE(mts::is_telephone_address("+"));
}

TEST_CASE("test-request: comsSettings", "[validation]") {
  CHECK(valid(request(R"("comsSettings": "7E1")")).coms_settings ==
        std::optional<std::string>("7E1"));
  CHECK(valid(request(R"("comsSettings": "8N2")")).coms_settings ==
        std::optional<std::string>("8N2"));
  CHECK(valid(request(R"("comsSettings": "5O1")")).coms_settings ==
        std::optional<std::string>("5O1"));
  // Lower-case parity is normalised.
  CHECK(valid(request(R"("comsSettings": "8n1")")).coms_settings ==
        std::optional<std::string>("8N1"));
  CHECK(valid(request(R"("comsSettings": "7e1")")).coms_settings ==
        std::optional<std::string>("7E1"));
  // Empty means not given.
  CHECK_FALSE(valid(request(R"("comsSettings": "")")).coms_settings.has_value());
  const std::string format_problem =
      "comsSettings: must be data bits (5-8), parity (N, E or O) and stop bits (1 or 2), e.g. 7E1";
  for (const char* bad : {"9N1", "4N1", "7X1", "7E3", "7E0", "7E", "7E1 ", "E71", "7E11", "7 E1"}) {
    INFO(bad);
    CHECK(problems(request(std::string(R"("comsSettings": ")") + bad + "\"")) ==
          details_t{format_problem});
  }
  CHECK(problems(request(R"("comsSettings": 7)")) == details_t{"comsSettings: must be a string"});
  // Only with a telephone number.
  CHECK(problems(request(R"("comsSettings": "7E1")", "\"meter.example:4059\"")) ==
        details_t{"comsSettings: only applies to telephone (modem) addresses"});
  CHECK(problems(request(R"("comsSettings": "7E1")", "\"[::1]:4059\"")) ==
        details_t{"comsSettings: only applies to telephone (modem) addresses"});
  // With an address that is not valid, only the address is reported.
  CHECK(problems(request(R"("comsSettings": "7E1")", "\"abc\"")) == details_t{remote_problem});
  // Without comsSettings a TCP address is fine.
  CHECK(valid(request("", "\"meter.example:4059\"")).remote_address == "meter.example:4059");
}

TEST_CASE("test-request: immediate", "[validation]") {
  CHECK(valid(request(R"("immediate": true)")).immediate == true);
  CHECK(valid(request(R"("immediate": false)")).immediate == false);
  for (const char* bad : {R"("true")", "1", "0", "[]", "{}"}) {
    INFO(bad);
    CHECK(problems(request(std::string(R"("immediate": )") + bad)) ==
          details_t{"immediate: must be true or false"});
  }
}

TEST_CASE("test-request: surveyDays", "[validation]") {
  CHECK(valid(request(R"("surveyDays": 0)")).survey_days == 0);
  CHECK(valid(request(R"("surveyDays": 90)")).survey_days == 90);
  const details_t range{"surveyDays: must be a whole number from 0 to 90"};
  for (const char* bad : {"91", "-1", "1.0", "1.5", "1e1", R"("5")", "true", "18446744073709551615",
                          "9223372036854775807"}) {
    INFO(bad);
    CHECK(problems(request(std::string(R"("surveyDays": )") + bad)) == range);
  }
}

TEST_CASE("test-request: surveyDate resolution", "[validation]") {
  // Given: kept.
  auto r = valid(request(R"("surveyDays": 3, "surveyDate": "2024-01-31")"));
  CHECK(r.survey_days == 3);
  CHECK(r.survey_date == std::optional<std::string>("2024-01-31"));
  // Missing or empty with surveyDays > 0: the request's UTC date minus surveyDays.
  CHECK(valid(request(R"("surveyDays": 10)")).survey_date == std::optional<std::string>("2024-03-05"));
  CHECK(valid(request(R"("surveyDays": 10, "surveyDate": "")")).survey_date ==
        std::optional<std::string>("2024-03-05"));
  CHECK(valid(request(R"("surveyDays": 15, "surveyDate": null)")).survey_date ==
        std::optional<std::string>("2024-02-29"));
  // surveyDays 0 or missing: the date is ignored.
  CHECK_FALSE(valid(request(R"("surveyDays": 0, "surveyDate": "2024-01-01")")).survey_date);
  CHECK_FALSE(valid(request(R"("surveyDate": "2024-01-01")")).survey_date);
  // Today (UTC) is not in the future; tomorrow is.
  CHECK(valid(request(R"("surveyDays": 1, "surveyDate": "2024-03-15")")).survey_date ==
        std::optional<std::string>("2024-03-15"));
  CHECK(problems(request(R"("surveyDays": 1, "surveyDate": "2024-03-16")")) ==
        details_t{"surveyDate: lies in the future"});
}

// Runs at pinned request times: the last second of a day and the first of the next, at the
// end of a year, of a leap February and of a common one.
TEST_CASE("test-request: surveyDate default and 'in the future' at the edges of days, months and years",
          "[validation]") {
  auto survey_date_at = [](const char* received, const std::string& extra) -> std::optional<std::string> {
    const validation_context at{limits, meter_types, *mts::parse_utc(received)};
    details_t details;
    auto r = mts::validate_test_request(parse(request(extra)), at, details);
    INFO(received << " " << extra);
    for (const auto& d : details)
      INFO(d);
    REQUIRE(r.has_value());
    return r->survey_date;
  };
  auto future_at = [](const char* received, const std::string& extra) {
    const validation_context at{limits, meter_types, *mts::parse_utc(received)};
    details_t details;
    CHECK_FALSE(mts::validate_test_request(parse(request(extra)), at, details).has_value());
    return details;
  };
  using date = std::optional<std::string>;
  // The request's UTC date minus surveyDays, to the second.
  CHECK(survey_date_at("2026-12-31T23:59:59Z", R"("surveyDays": 1)") == date("2026-12-30"));
  CHECK(survey_date_at("2027-01-01T00:00:00Z", R"("surveyDays": 1)") == date("2026-12-31"));
  CHECK(survey_date_at("2027-01-01T00:00:00Z", R"("surveyDays": 31)") == date("2026-12-01"));
  CHECK(survey_date_at("2028-02-29T23:59:59Z", R"("surveyDays": 1)") == date("2028-02-28"));
  CHECK(survey_date_at("2028-03-01T00:00:00Z", R"("surveyDays": 1)") == date("2028-02-29"));
  CHECK(survey_date_at("2027-03-01T00:00:00Z", R"("surveyDays": 1)") == date("2027-02-28"));
  CHECK(survey_date_at("2028-03-01T00:30:00Z", R"("surveyDays": 90)") ==
        date("2027-12-02"));
  // Today is never in the future, even in its last second; tomorrow is, even one second before it.
  CHECK(survey_date_at("2026-12-31T23:59:59Z", R"("surveyDays": 1, "surveyDate": "2026-12-31")") ==
        date("2026-12-31"));
  CHECK(survey_date_at("2028-02-29T00:00:00Z", R"("surveyDays": 1, "surveyDate": "2028-02-29")") ==
        date("2028-02-29"));
  CHECK(future_at("2026-12-31T23:59:59Z", R"("surveyDays": 1, "surveyDate": "2027-01-01")") ==
        details_t{"surveyDate: lies in the future"});
  CHECK(future_at("2028-02-28T23:59:59Z", R"("surveyDays": 1, "surveyDate": "2028-02-29")") ==
        details_t{"surveyDate: lies in the future"});
}

TEST_CASE("test-request: surveyDate format", "[validation]") {
  const details_t format{"surveyDate: must be a date in the form yyyy-MM-dd"};
  for (const char* bad : {"2024-02-30", "2023-02-29", "2024-3-01", "2024-03-1", "01-03-2024",
                          "2024/03/01", "2024-03-01T00:00:00Z", "2024-13-01", "2024-00-10",
                          "yesterday", " 2024-03-01"}) {
    INFO(bad);
    CHECK(problems(request(std::string(R"("surveyDays": 1, "surveyDate": ")") + bad + "\"")) ==
          format);
  }
  CHECK(problems(request(R"("surveyDays": 1, "surveyDate": 20240301)")) ==
        details_t{"surveyDate: must be a string"});
  // A leap day that exists.
  CHECK(valid(request(R"("surveyDays": 1, "surveyDate": "2024-02-29")")).survey_date ==
        std::optional<std::string>("2024-02-29"));
}

// ---------------------------------------------------------------- batch-request

TEST_CASE("batch-request: shape and size", "[validation]") {
  details_t d;
  CHECK_FALSE(mts::validate_batch_request(parse(request()), ctx, d));
  CHECK(d == details_t{"body: expected a JSON array of test requests"});
  d.clear();
  CHECK_FALSE(mts::validate_batch_request(parse("[]"), ctx, d));
  CHECK(d == details_t{"body: a batch holds at least 1 test"});
  // Over the limit: refused before (and without) looking at the elements.
  d.clear();
  CHECK_FALSE(mts::validate_batch_request(parse("[1, 2, 3, 4]"), ctx, d));
  CHECK(d == details_t{"body: a batch holds at most 3 tests"});
}

TEST_CASE("batch-request: valid elements in order", "[validation]") {
  details_t d;
  auto b = mts::validate_batch_request(
      parse("[" + request(R"("requestReference": "first")") + ", " +
            request(R"("requestReference": "second", "surveyDays": 2)", "\"host:1\"") + ", " +
            request() + "]"),
      ctx, d);
  REQUIRE(b.has_value());
  CHECK(d.empty());
  REQUIRE(b->size() == 3);
  CHECK((*b)[0].request_reference == std::optional<std::string>("first"));
  CHECK((*b)[1].request_reference == std::optional<std::string>("second"));
  CHECK((*b)[1].remote_address == "host:1");
  CHECK((*b)[1].survey_date == std::optional<std::string>("2024-03-13"));
  CHECK_FALSE((*b)[2].request_reference.has_value());
}

TEST_CASE("batch-request: one bad element refuses all and details carry the index", "[validation]") {
  details_t d;
  auto b = mts::validate_batch_request(
      parse("[" + request() + ", " + request("", "\"abc\"") + ", 5, " +
            request(R"("x": 1, "surveyDays": -1)") + "]"),
      ctx, d);
  // Four elements exceed the limit of 3: use a context allowing more.
  CHECK_FALSE(b.has_value());
  CHECK(d == details_t{"body: a batch holds at most 3 tests"});

  mts::limits_settings wide = limits;
  wide.max_batch_size = 10;
  const validation_context wide_ctx{wide, meter_types, now};
  d.clear();
  b = mts::validate_batch_request(
      parse("[" + request() + ", " + request("", "\"abc\"") + ", 5, " +
            request(R"("x": 1, "surveyDays": -1)") + "]"),
      wide_ctx, d);
  CHECK_FALSE(b.has_value());
  CHECK(d == details_t{"[1] " + remote_problem, "[2] body: expected a JSON object",
                       "[3] x: unknown field", "[3] surveyDays: must be a whole number from 0 to 90"});
}

// ---------------------------------------------------------------- query parameters

TEST_CASE("fold_query_params folds names and refuses repeats", "[validation]") {
  details_t d;
  auto p = mts::fold_query_params({{"testId", "1"}, {"FromTime", "x"}}, d);
  CHECK(d.empty());
  CHECK(p == query_params{{"testid", "1"}, {"fromtime", "x"}});

  d.clear();
  p = mts::fold_query_params({{"testId", "1"}, {"TESTID", "2"}, {"testid", "3"}, {"a", "b"}}, d);
  // Reported once, by the spelling of the first repeat (multimap order: "TESTID" first).
  CHECK(d == details_t{"testId: given more than once"});

  d.clear();
  mts::fold_query_params({{"limit", "1"}, {"limit", "1"}}, d);
  CHECK(d == details_t{"limit: given more than once"});
}

TEST_CASE("validate_id_query", "[validation]") {
  details_t d;
  CHECK(mts::validate_id_query({{"testid", "12"}}, "testId", d) == std::optional<std::int64_t>(12));
  CHECK(d.empty());
  CHECK(mts::validate_id_query({{"batchid", "9007199254740991"}}, "batchId", d) ==
        std::optional<std::int64_t>(9007199254740991));
  CHECK(d.empty());

  CHECK_FALSE(mts::validate_id_query({}, "testId", d));
  CHECK(d == details_t{"testId: required"});

  const std::string range = "testId: must be a whole number from 1 to 9007199254740991";
  for (const char* bad : {"0", "-1", "+1", "1.0", "12a", "", " 1", "9007199254740992",
                          "99999999999999999999999"}) {
    INFO(bad);
    d.clear();
    CHECK_FALSE(mts::validate_id_query({{"testid", bad}}, "testId", d));
    CHECK(d == details_t{range});
  }
  d.clear();
  CHECK_FALSE(mts::validate_id_query({{"testid", "1"}, {"verbose", "true"}}, "testId", d));
  CHECK(d == details_t{"verbose: unknown parameter"});
  // batchId is not testId.
  d.clear();
  CHECK_FALSE(mts::validate_id_query({{"batchid", "1"}}, "testId", d));
  CHECK(d == details_t{"batchid: unknown parameter", "testId: required"});
}

// ---------------------------------------------------------------- test-cancel, batch-cancel

TEST_CASE("test-cancel: id from the body or the query", "[validation]") {
  details_t d;
  auto body = parse(R"({"testId": 5})");
  CHECK(mts::validate_test_cancel(&body, {}, d) == std::optional<mts::test_id>(5));
  CHECK(mts::validate_test_cancel(nullptr, {{"testid", "7"}}, d) ==
        std::optional<mts::test_id>(7));
  auto empty = parse("{}");
  CHECK(mts::validate_test_cancel(&empty, {{"testid", "8"}}, d) == std::optional<mts::test_id>(8));
  auto null_id = parse(R"({"testId": null})");
  CHECK(mts::validate_test_cancel(&null_id, {{"testid", "9"}}, d) ==
        std::optional<mts::test_id>(9));
  // Both, agreeing.
  CHECK(mts::validate_test_cancel(&body, {{"testid", "5"}}, d) == std::optional<mts::test_id>(5));
  CHECK(d.empty());
}

TEST_CASE("test-cancel: problems", "[validation]") {
  details_t d;
  auto body = parse(R"({"testId": 5})");
  CHECK_FALSE(mts::validate_test_cancel(&body, {{"testid", "6"}}, d));
  CHECK(d == details_t{"testId: differs between body and query string"});

  d.clear();
  CHECK_FALSE(mts::validate_test_cancel(nullptr, {}, d));
  CHECK(d == details_t{"testId: required"});

  d.clear();
  auto empty = parse("{}");
  CHECK_FALSE(mts::validate_test_cancel(&empty, {}, d));
  CHECK(d == details_t{"testId: required"});

  const std::string range = "testId: must be a whole number from 1 to 9007199254740991";
  for (const char* bad : {"0", "-5", "5.0", "\"5\"", "true", "9007199254740992", "1e3"}) {
    INFO(bad);
    d.clear();
    auto v = parse(std::string(R"({"testId": )") + bad + "}");
    CHECK_FALSE(mts::validate_test_cancel(&v, {}, d));
    CHECK(d == details_t{range});
  }
  auto max = parse(R"({"testId": 9007199254740991})");
  d.clear();
  CHECK(mts::validate_test_cancel(&max, {}, d) == std::optional<mts::test_id>(9007199254740991));

  d.clear();
  auto extra = parse(R"({"testId": 1, "force": true})");
  CHECK_FALSE(mts::validate_test_cancel(&extra, {{"why", "x"}}, d));
  CHECK(d == details_t{"force: unknown field", "why: unknown parameter"});

  d.clear();
  auto array = parse("[1]");
  CHECK_FALSE(mts::validate_test_cancel(&array, {{"testid", "1"}}, d));
  CHECK(d == details_t{"body: expected a JSON object"});

  d.clear();
  CHECK_FALSE(mts::validate_test_cancel(nullptr, {{"testid", "abc"}}, d));
  CHECK(d == details_t{range});
}

TEST_CASE("batch-cancel", "[validation]") {
  details_t d;
  auto body = parse(R"({"batchId": 3, "deleteCompleted": true})");
  auto r = mts::validate_batch_cancel(&body, {}, d);
  REQUIRE(r.has_value());
  CHECK(r->id == 3);
  CHECK(r->delete_completed == true);

  auto id_only = parse(R"({"batchId": 4})");
  r = mts::validate_batch_cancel(&id_only, {}, d);
  REQUIRE(r.has_value());
  CHECK(r->id == 4);
  CHECK(r->delete_completed == false);

  r = mts::validate_batch_cancel(nullptr, {{"batchid", "6"}, {"deletecompleted", "TRUE"}}, d);
  REQUIRE(r.has_value());
  CHECK(r->id == 6);
  CHECK(r->delete_completed == true);
  r = mts::validate_batch_cancel(nullptr, {{"batchid", "6"}, {"deletecompleted", "False"}}, d);
  REQUIRE(r.has_value());
  CHECK(r->delete_completed == false);
  // The id in the body, the flag in the query.
  r = mts::validate_batch_cancel(&id_only, {{"deletecompleted", "true"}}, d);
  REQUIRE(r.has_value());
  CHECK(r->id == 4);
  CHECK(r->delete_completed == true);
  CHECK(d.empty());

  CHECK_FALSE(mts::validate_batch_cancel(nullptr, {{"deletecompleted", "yes"}}, d));
  CHECK(d == details_t{"deleteCompleted: must be true or false", "batchId: required"});

  d.clear();
  auto string_flag = parse(R"({"batchId": 3, "deleteCompleted": "true"})");
  CHECK_FALSE(mts::validate_batch_cancel(&string_flag, {}, d));
  CHECK(d == details_t{"deleteCompleted: must be true or false"});

  d.clear();
  CHECK_FALSE(mts::validate_batch_cancel(&body, {{"batchid", "4"}, {"deletecompleted", "false"}}, d));
  CHECK(d == details_t{"batchId: differs between body and query string",
                       "deleteCompleted: differs between body and query string"});

  d.clear();
  auto bad = parse(R"({"batchId": 0, "testId": 1})");
  CHECK_FALSE(mts::validate_batch_cancel(&bad, {{"x", "1"}}, d));
  CHECK(d == details_t{"batchId: must be a whole number from 1 to 9007199254740991",
                       "testId: unknown field", "x: unknown parameter"});
}

// ---------------------------------------------------------------- test-search

namespace {

std::optional<mts::search_query> search(const query_params& p, details_t& d) {
  return mts::validate_search(p, ctx, d);
}

details_t search_problems(const query_params& p) {
  details_t d;
  CHECK_FALSE(search(p, d).has_value());
  return d;
}

// 2024-03-10T00:00:00Z, five and a half days before now.
constexpr mts::unix_seconds march10 = 1710028800;

} // namespace

TEST_CASE("test-search: defaults", "[validation]") {
  details_t d;
  auto q = search({{"fromtime", "2024-03-10T00:00:00Z"}}, d);
  REQUIRE(q.has_value());
  CHECK(d.empty());
  CHECK(q->from_time == march10);
  CHECK(q->to_time == now);
  CHECK(q->limit == 50);
  CHECK(q->offset == 0);
  CHECK(q->status == mts::status_filter::all);
  CHECK(q->reverse_order == false);
  CHECK_FALSE(q->request_reference.has_value());
  CHECK_FALSE(q->meter_type.has_value());
  CHECK_FALSE(q->remote_address.has_value());
}

TEST_CASE("test-search: every parameter", "[validation]") {
  details_t d;
  auto q = search({{"fromtime", "2024-03-10T00:00:00Z"},
                   {"totime", "2024-03-11T06:30:15Z"},
                   {"requestreference", "MPAN 123"},
                   {"metertype", "NOT-IN-REGISTRY"},
                   {"remoteaddress", "0777"},
                   {"status", "completed"},
                   {"limit", "500"},
                   {"offset", "9007199254740991"},
                   {"reverseorder", "TRUE"}},
                  d);
  REQUIRE(q.has_value());
  CHECK(d.empty());
  CHECK(q->from_time == march10);
  CHECK(q->to_time == march10 + 86400 + 6 * 3600 + 30 * 60 + 15);
  CHECK(q->request_reference == std::optional<std::string>("MPAN 123"));
  CHECK(q->meter_type == std::optional<std::string>("NOT-IN-REGISTRY"));
  CHECK(q->remote_address == std::optional<std::string>("0777"));
  CHECK(q->status == mts::status_filter::completed);
  CHECK(q->limit == 500);
  CHECK(q->offset == 9007199254740991);
  CHECK(q->reverse_order == true);

  q = search({{"fromtime", "2024-03-10T00:00:00Z"}, {"status", "Pending"}, {"limit", "0"},
              {"reverseorder", "false"}, {"requestreference", ""}},
             d);
  REQUIRE(q.has_value());
  CHECK(q->status == mts::status_filter::pending);
  CHECK(q->limit == 0);
  CHECK(q->reverse_order == false);
  // An empty filter is no filter.
  CHECK_FALSE(q->request_reference.has_value());
  q = search({{"fromtime", "2024-03-10T00:00:00Z"}, {"status", "ALL"}}, d);
  REQUIRE(q.has_value());
  CHECK(q->status == mts::status_filter::all);
  CHECK(d.empty());
}

TEST_CASE("test-search: fromTime and toTime", "[validation]") {
  CHECK(search_problems({}) == details_t{"fromTime: required"});
  CHECK(search_problems({{"limit", "1"}}) == details_t{"fromTime: required"});
  const std::string format = ": must be a UTC time in the form YYYY-MM-DDTHH:mm:ssZ";
  for (const char* bad : {"2024-03-10", "2024-03-10T00:00:00", "2024-03-10 00:00:00Z",
                          "2024-02-30T00:00:00Z", "2024-03-10T24:00:00Z", "yesterday", ""}) {
    INFO(bad);
    CHECK(search_problems({{"fromtime", bad}}) == details_t{"fromTime" + format});
    CHECK(search_problems({{"fromtime", "2024-03-10T00:00:00Z"}, {"totime", bad}}) ==
          details_t{"toTime" + format});
  }
  CHECK(search_problems({{"fromtime", "2024-03-10T00:00:01Z"}, {"totime", "2024-03-10T00:00:00Z"}}) ==
        details_t{"toTime: must not be before fromTime"});
  // Equal is a one-second range.
  details_t d;
  CHECK(search({{"fromtime", "2024-03-10T00:00:00Z"}, {"totime", "2024-03-10T00:00:00Z"}}, d));
  // toTime defaults to now, so a fromTime after now has nothing to search.
  CHECK(search_problems({{"fromtime", "2024-03-15T12:00:01Z"}}) ==
        details_t{"fromTime: lies in the future"});
  CHECK(search({{"fromtime", "2024-03-15T12:00:00Z"}}, d));
  CHECK(d.empty());
}

TEST_CASE("test-search: the range is at most max_search_days", "[validation]") {
  details_t d;
  // Exactly 10 days.
  CHECK(search({{"fromtime", "2024-03-01T00:00:00Z"}, {"totime", "2024-03-11T00:00:00Z"}}, d));
  CHECK(d.empty());
  CHECK(search_problems({{"fromtime", "2024-03-01T00:00:00Z"}, {"totime", "2024-03-11T00:00:01Z"}}) ==
        details_t{"toTime: the search range may span at most 10 days"});
  // With toTime defaulting to now (2024-03-15T12:00:00Z).
  CHECK(search({{"fromtime", "2024-03-05T12:00:00Z"}}, d));
  CHECK(search_problems({{"fromtime", "2024-03-05T11:59:59Z"}}) ==
        details_t{"toTime: the search range may span at most 10 days"});
}

TEST_CASE("test-search: status, limit, offset, reverseOrder", "[validation]") {
  const std::string from = "2024-03-10T00:00:00Z";
  CHECK(search_problems({{"fromtime", from}, {"status", "DONE"}}) ==
        details_t{"status: must be ALL, COMPLETED or PENDING"});
  CHECK(search_problems({{"fromtime", from}, {"status", ""}}) ==
        details_t{"status: must be ALL, COMPLETED or PENDING"});
  for (const char* bad : {"501", "-1", "1.5", "abc", "", "+5", "99999999999999999999"}) {
    INFO(bad);
    CHECK(search_problems({{"fromtime", from}, {"limit", bad}}) ==
          details_t{"limit: must be a whole number from 0 to 500"});
  }
  for (const char* bad : {"-1", "9007199254740992", "x", "1e3"}) {
    INFO(bad);
    CHECK(search_problems({{"fromtime", from}, {"offset", bad}}) ==
          details_t{"offset: must be a whole number from 0 to 9007199254740991"});
  }
  for (const char* bad : {"1", "yes", "", "truee"}) {
    INFO(bad);
    CHECK(search_problems({{"fromtime", from}, {"reverseorder", bad}}) ==
          details_t{"reverseOrder: must be true or false"});
  }
}

TEST_CASE("test-search: unknown parameters, long values, several problems", "[validation]") {
  const std::string from = "2024-03-10T00:00:00Z";
  CHECK(search_problems({{"fromtime", from}, {"page", "2"}}) ==
        details_t{"page: unknown parameter"});
  CHECK(search_problems({{"fromtime", from}, {"remoteaddress", std::string(257, '1')}}) ==
        details_t{"remoteAddress: longer than 256 bytes"});
  CHECK(search_problems({{"fromtime", from}, {"metertype", "A\x01"}}) ==
        details_t{"meterType: contains control characters"});
  details_t d;
  auto q = search({{"fromtime", from}, {"remoteaddress", std::string(256, '1')}}, d);
  REQUIRE(q.has_value());
  CHECK(q->remote_address == std::optional<std::string>(std::string(256, '1')));
  // Everything at once (query_params is ordered by name).
  CHECK(search_problems({{"totime", "bad"}, {"limit", "1001"}, {"status", "x"}, {"zzz", "1"}}) ==
        details_t{"limit: must be a whole number from 0 to 500",
                  "status: must be ALL, COMPLETED or PENDING",
                  "toTime: must be a UTC time in the form YYYY-MM-DDTHH:mm:ssZ",
                  "zzz: unknown parameter", "fromTime: required"});
}

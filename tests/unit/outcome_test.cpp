// From driver readings to a test's result and readings JSON.
#include "drivers/outcome.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <regex>

using namespace mts;
using namespace mts::drivers;
namespace bj = boost::json;

namespace {

const unix_seconds t0 = 1546398000; // 2019-01-02T03:00:00Z

meter_readings full_readings() {
  meter_readings r;
  r.serial_number = "12345678";
  r.meter_time = t0 + 10;
  r.meter_time_taken = t0;
  r.status_events = std::vector<std::string>{"Lid/terminal cover tamper"};
  r.registers = std::vector<register_value>{{"kWh Import", 758.5, "kWh", t0}};
  r.survey = std::vector<survey_channel>{{"kWh Import", "kWh", {{1546300800, 0.25}, {1546302600, 1.5}}}};
  return r;
}

session_request with_survey() {
  session_request s;
  s.survey_from = 1546300800;
  s.survey_to = 1546387200;
  return s;
}

} // namespace

TEST_CASE("meter time is written with its offset from the true time", "[outcome]") {
  CHECK(format_meter_time(1414798412, 1414798615) == "2014-10-31T23:33:32 -203s");
  CHECK(format_meter_time(1414798412, 1414798402) == "2014-10-31T23:33:32 +10s");
  CHECK(format_meter_time(1414798412, 1414798412) == "2014-10-31T23:33:32 +0s");
}

TEST_CASE("everything read: SUCCESS with every item in the API's form", "[outcome]") {
  auto out = make_outcome(7, with_survey(), full_readings(), finish{}, t0 + 60);
  CHECK(out.id == 7);
  CHECK(out.result == "SUCCESS");
  CHECK(out.test_end_time == t0 + 60);
  auto j = bj::parse(out.readings_json).as_object();
  CHECK(j.at("serialNumber") == "12345678");
  CHECK(j.at("meterTime") == "2019-01-02T03:00:10 +10s");
  CHECK(j.at("statusEvents") == bj::parse(R"(["Lid/terminal cover tamper"])"));
  CHECK(j.at("registerValues") ==
        bj::parse(R"([{"name":"kWh Import","value":758.5,"units":"kWh","timestamp":"2019-01-02T03:00:00Z"}])"));
  CHECK(j.at("surveyData") == bj::parse(R"([{"name":"kWh Import","units":"kWh","readings":[
        {"timestamp":"2019-01-01T00:00:00Z","value":0.25},{"timestamp":"2019-01-01T00:30:00Z","value":1.5}]}])"));
  // Plain numbers on the wire, never exponent notation.
  CHECK_FALSE(std::regex_search(out.readings_json, std::regex("[0-9][eE][-+]?[0-9]")));
  CHECK(out.readings_json.find("\"value\":758.5") != std::string::npos);
}

TEST_CASE("no survey requested: SUCCESS without surveyData", "[outcome]") {
  auto r = full_readings();
  r.survey.reset();
  auto out = make_outcome(1, session_request{}, r, finish{}, t0);
  CHECK(out.result == "SUCCESS");
  CHECK_FALSE(bj::parse(out.readings_json).as_object().contains("surveyData"));
}

TEST_CASE("a failure part-way keeps what was read as PARTIAL SUCCESS", "[outcome]") {
  auto r = full_readings();
  r.survey.reset();
  auto out = make_outcome(1, with_survey(), r, finish{failure_kind::transient, "line dropped"}, t0);
  CHECK(out.result == "PARTIAL SUCCESS");
  auto j = bj::parse(out.readings_json).as_object();
  CHECK(j.at("serialNumber") == "12345678");
  CHECK(j.at("surveyData") == bj::array{});
}

TEST_CASE("nothing read: ERROR with the reason, also in serialNumber and meterTime", "[outcome]") {
  auto out = make_outcome(1, with_survey(), meter_readings{}, finish{failure_kind::transient, "no answer to sign-on"}, t0);
  CHECK(out.result == "ERROR: no answer to sign-on");
  auto j = bj::parse(out.readings_json).as_object();
  CHECK(j.at("serialNumber") == "ERROR: no answer to sign-on");
  CHECK(j.at("meterTime") == "ERROR: no answer to sign-on");
}

TEST_CASE("a serial number mismatch is an ERROR that names what the meter reports", "[outcome]") {
  meter_readings r;
  r.serial_number = "87654321";
  auto out = make_outcome(1, session_request{}, r, finish{failure_kind::permanent, "Serial number mismatch"}, t0);
  CHECK(out.result == "ERROR: Serial number mismatch");
  auto j = bj::parse(out.readings_json).as_object();
  CHECK(j.at("serialNumber") == "ERROR: Serial number mismatch (the meter reports 87654321)");
  CHECK_FALSE(j.contains("meterTime"));
}

TEST_CASE("survey data written as text: escaped names, empty channels, exact values", "[outcome]") {
  auto r = full_readings();
  r.survey = std::vector<survey_channel>{{"kWh \"Import\"", "kWh", {{1546300800, 0.1}, {1546302600, -2.0}}},
                                         {"kvarh Q1", "kvarh", {}}};
  auto out = make_outcome(1, with_survey(), r, finish{}, t0);
  CHECK(out.result == "SUCCESS");
  // The whole text is one JSON object that parses back to these members, surveyData last.
  auto j = bj::parse(out.readings_json).as_object();
  CHECK(j.at("surveyData") == bj::parse(R"([{"name":"kWh \"Import\"","units":"kWh","readings":[
        {"timestamp":"2019-01-01T00:00:00Z","value":0.1},{"timestamp":"2019-01-01T00:30:00Z","value":-2}]},
        {"name":"kvarh Q1","units":"kvarh","readings":[]}])"));
  CHECK(j.at("serialNumber") == "12345678");
  CHECK(j.size() == 5);
  CHECK(out.readings_json.find(R"(,"surveyData":[{"name":"kWh \"Import\"",)") != std::string::npos);
  CHECK(out.readings_json.find(R"("value":0.1},{"timestamp":"2019-01-01T00:30:00Z","value":-2}]})") !=
        std::string::npos);
  CHECK(out.readings_json.back() == '}');
}

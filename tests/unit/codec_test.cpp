#include "http/codec.hpp"
#include "common/json.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

namespace {

using mts::json::serialize;

// 2024-03-15T12:00:00Z.
constexpr mts::unix_seconds noon = 1710504000;

std::set<std::string> keys(const boost::json::object& o) {
  std::set<std::string> out;
  for (const auto& kv : o)
    out.emplace(kv.key());
  return out;
}

mts::test_record pending_record() {
  mts::test_record r;
  r.id = 42;
  r.received_time = noon;
  r.request.meter_type = "ELSTERA1700";
  r.request.remote_address = "07777000000";
  return r;
}

mts::test_record full_record() {
  mts::test_record r = pending_record();
  r.batch = 7;
  r.request.request_reference = "ABC";
  r.request.immediate = true;
  r.request.coms_settings = "7E1";
  r.request.outstation_address = "1";
  r.request.serial_number = "12345678";
  r.request.password = "AAAA0000";
  r.request.survey_days = 1;
  r.request.survey_date = "2024-03-14";
  return r;
}

} // namespace

TEST_CASE("error_body lists the details", "[codec]") {
  CHECK(serialize(mts::error_body({"a: x", "b: \"y\""})) == R"({"details":["a: x","b: \"y\""]})");
  CHECK(serialize(mts::error_body({})) == R"({"details":[]})");
}

TEST_CASE("test-status of a minimal pending test", "[codec]") {
  auto o = mts::encode_test_status(pending_record(), false);
  CHECK(serialize(o) ==
        R"({"testId":42,"meterType":"ELSTERA1700","remoteAddress":"07777000000","password":"",)"
        R"("surveyDays":0,"immediate":false,"resultSummary":"PENDING","result":"PENDING",)"
        R"("testRequestTime":"2024-03-15T12:00:00Z"})");
  // Masking does not turn a missing password into asterisks.
  CHECK(mts::encode_test_status(pending_record(), true).at("password").as_string() == "");
}

TEST_CASE("test-status of a pending test echoes every request field", "[codec]") {
  auto o = mts::encode_test_status(full_record(), false);
  CHECK(serialize(o) ==
        R"({"testId":42,"requestReference":"ABC","meterType":"ELSTERA1700",)"
        R"("remoteAddress":"07777000000","comsSettings":"7E1","outstationAddress":"1",)"
        R"("password":"AAAA0000","surveyDays":1,"surveyDate":"2024-03-14","immediate":true,)"
        R"("resultSummary":"PENDING","result":"PENDING","testRequestTime":"2024-03-15T12:00:00Z",)"
        R"("batchId":7,"serialNumber":"12345678"})");
}

TEST_CASE("test-status masks a given password when asked", "[codec]") {
  CHECK(mts::encode_test_status(full_record(), true).at("password").as_string() == "********");
  CHECK(mts::encode_test_status(full_record(), false).at("password").as_string() == "AAAA0000");
  auto r = full_record();
  r.request.password = "";
  CHECK(mts::encode_test_status(r, true).at("password").as_string() == "");
}

TEST_CASE("test-status of a completed test merges the readings", "[codec]") {
  auto r = full_record();
  r.state = mts::test_state::completed;
  r.result = "SUCCESS";
  r.test_start_time = noon + 60;
  r.test_end_time = noon + 150;
  r.connection_start_time = noon + 61;
  r.connection_end_time = noon + 149;
  r.completed_time = noon + 150;
  r.connection_attempts = 2;
  r.readings_json =
      R"({"serialNumber":"87654321","meterTime":"2024-03-15T12:01:05 -3s",)"
      R"("statusEvents":["Lid/terminal cover tamper"],)"
      R"("registerValues":[{"name":"kWh Import","value":758.5,"units":"kWh",)"
      R"("timestamp":"2024-03-15T12:01:10Z"}],)"
      R"("surveyData":[{"name":"kWh Import","units":"kWh","readings":[)"
      R"({"timestamp":"2024-03-14T00:00:00Z","value":640}]}],"notForClients":1})";
  auto o = mts::encode_test_status(r, true);
  CHECK(serialize(o) ==
        R"({"testId":42,"requestReference":"ABC","meterType":"ELSTERA1700",)"
        R"("remoteAddress":"07777000000","comsSettings":"7E1","outstationAddress":"1",)"
        R"("password":"********","surveyDays":1,"surveyDate":"2024-03-14","immediate":true,)"
        R"("resultSummary":"SUCCESS","result":"SUCCESS","testRequestTime":"2024-03-15T12:00:00Z",)"
        R"("testStartTime":"2024-03-15T12:01:00Z","testEndTime":"2024-03-15T12:02:30Z",)"
        R"("connectionStartTime":"2024-03-15T12:01:01Z","connectionEndTime":"2024-03-15T12:02:29Z",)"
        R"("batchId":7,"attempts":2,"serialNumber":"87654321","meterTime":"2024-03-15T12:01:05 -3s",)"
        R"("statusEvents":["Lid/terminal cover tamper"],)"
        R"("registerValues":[{"name":"kWh Import","value":758.5,"units":"kWh",)"
        R"("timestamp":"2024-03-15T12:01:10Z"}],)"
        R"("surveyData":[{"name":"kWh Import","units":"kWh","readings":[)"
        R"({"timestamp":"2024-03-14T00:00:00Z","value":640}]}]})");
}

TEST_CASE("test-status attempts: only once the test has completed with a known count", "[codec]") {
  auto r = full_record();
  r.connection_attempts = 3;
  r.state = mts::test_state::running; // not yet a fact of the final run
  CHECK_FALSE(mts::encode_test_status(r, false).contains("attempts"));
  r.state = mts::test_state::completed;
  CHECK(mts::encode_test_status(r, false).at("attempts").as_int64() == 3);
  r.connection_attempts = 0; // a test that could not run at all
  CHECK(mts::encode_test_status(r, false).at("attempts").as_int64() == 0);
  r.connection_attempts.reset(); // completed before the count was kept, or no test actor answered
  CHECK_FALSE(mts::encode_test_status(r, false).contains("attempts"));
}

TEST_CASE("test-status serialNumber: requested while pending, read once completed", "[codec]") {
  auto r = full_record();
  r.readings_json = R"({"serialNumber":"ERROR: no answer"})";
  // Not completed: the requested number, whatever the readings say.
  r.state = mts::test_state::running;
  CHECK(mts::encode_test_status(r, false).at("serialNumber").as_string() == "12345678");
  r.state = mts::test_state::completed;
  CHECK(mts::encode_test_status(r, false).at("serialNumber").as_string() == "ERROR: no answer");
  // Completed but nothing read: the requested one; with none requested, no key.
  r.readings_json = R"({"meterTime":"2024-03-15T12:01:05 +0s"})";
  CHECK(mts::encode_test_status(r, false).at("serialNumber").as_string() == "12345678");
  r.request.serial_number.reset();
  CHECK_FALSE(mts::encode_test_status(r, false).contains("serialNumber"));
  // Pending without a requested serial number: no key either.
  CHECK_FALSE(mts::encode_test_status(pending_record(), false).contains("serialNumber"));
}

TEST_CASE("test-status ignores readings that are not a JSON object", "[codec]") {
  auto r = full_record();
  r.state = mts::test_state::completed;
  r.result = "ERROR: no answer";
  for (const char* text : {"", "not json", "[1,2]", R"({"meterTime": )"}) {
    INFO(text);
    r.readings_json = text;
    auto o = mts::encode_test_status(r, false);
    CHECK(o.at("resultSummary").as_string() == "ERROR: no answer");
    CHECK(o.at("serialNumber").as_string() == "12345678");
    CHECK_FALSE(o.contains("meterTime"));
    CHECK_FALSE(o.contains("statusEvents"));
    CHECK_FALSE(o.contains("registerValues"));
    CHECK_FALSE(o.contains("surveyData"));
  }
}

TEST_CASE("status summary for batch-status", "[codec]") {
  auto r = full_record();
  r.completed_time = noon + 150;
  r.result = "PARTIAL SUCCESS";
  CHECK(serialize(mts::encode_summary(r, false)) ==
        R"({"testId":42,"requestReference":"ABC","meterType":"ELSTERA1700",)"
        R"("remoteAddress":"07777000000","resultSummary":"PARTIAL SUCCESS"})");
  auto o = mts::encode_summary(pending_record(), false);
  CHECK(keys(o) == std::set<std::string>{"testId", "meterType", "remoteAddress", "resultSummary"});
}

TEST_CASE("status summary for test-search", "[codec]") {
  auto r = full_record();
  r.completed_time = noon + 150;
  r.result = "SUCCESS";
  CHECK(serialize(mts::encode_summary(r, true)) ==
        R"({"testId":42,"requestReference":"ABC","meterType":"ELSTERA1700",)"
        R"("remoteAddress":"07777000000","resultSummary":"SUCCESS",)"
        R"("receivedTimestamp":"2024-03-15T12:00:00Z","completedTimestamp":"2024-03-15T12:02:30Z",)"
        R"("batchId":7})");
  auto o = mts::encode_summary(pending_record(), true);
  CHECK(keys(o) == std::set<std::string>{"testId", "meterType", "remoteAddress", "resultSummary",
                                         "receivedTimestamp"});
  CHECK(o.at("receivedTimestamp").as_string() == "2024-03-15T12:00:00Z");
}

TEST_CASE("test-transcript body: the stored attempts, or none", "[codec]") {
  CHECK(mts::json::serialize(mts::encode_test_transcript(7, "")) == R"({"testId":7,"attempts":[]})");
  CHECK(mts::json::serialize(mts::encode_test_transcript(7, R"([{"attempt":1,"events":[{"ms":0,"event":"link up"}]}])")) ==
        R"({"testId":7,"attempts":[{"attempt":1,"events":[{"ms":0,"event":"link up"}]}]})");
}

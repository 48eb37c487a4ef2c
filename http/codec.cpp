#include "http/codec.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace mts {
namespace {

namespace bj = boost::json;

// The readings a test produced, as a JSON object; empty when none were stored or the text is
// not an object (it is written by our drivers, so that would be a bug, not a reason to fail
// the whole status query).
bj::object parse_readings(const std::string& text) {
  if (text.empty())
    return {};
  bj::error_code ec;
  bj::value v = bj::parse(text, ec);
  if (ec || !v.is_object())
    return {};
  return std::move(v.get_object());
}

void put_time(bj::object& o, const char* key, const std::optional<unix_seconds>& t) {
  if (t)
    o[key] = format_utc(*t);
}

void put_string(bj::object& o, const char* key, const std::optional<std::string>& s) {
  if (s)
    o[key] = *s;
}

} // namespace

bj::object error_body(const std::vector<std::string>& details) {
  bj::array list;
  list.reserve(details.size());
  for (const auto& d : details)
    list.emplace_back(d);
  bj::object o;
  o["details"] = std::move(list);
  return o;
}

bj::object encode_test_transcript(test_id id, const std::string& transcript_json) {
  bj::value attempts = bj::array{};
  if (!transcript_json.empty()) {
    boost::system::error_code ec;
    auto parsed = bj::parse(transcript_json, ec); // written by the server itself
    if (!ec && parsed.is_array())
      attempts = std::move(parsed);
  }
  return bj::object{{"testId", id}, {"attempts", std::move(attempts)}};
}

bj::object encode_test_status(const test_record& record, bool mask_passwords) {
  const test_request& req = record.request;
  bj::object o;
  o["testId"] = record.id;
  put_string(o, "requestReference", req.request_reference);
  o["meterType"] = req.meter_type;
  o["remoteAddress"] = req.remote_address;
  put_string(o, "comsSettings", req.coms_settings);
  put_string(o, "outstationAddress", req.outstation_address);
  // Mandatory in the spec's table: "" when none was given. Masking hides a value, so an
  // empty password stays "".
  const std::string password = req.password.value_or("");
  o["password"] = mask_passwords && !password.empty() ? std::string("********") : password;
  o["surveyDays"] = req.survey_days;
  put_string(o, "surveyDate", req.survey_date);
  o["immediate"] = req.immediate;
  // The spec's table calls it result, its samples resultSummary: both are sent.
  o["resultSummary"] = record.result;
  o["result"] = record.result;
  o["testRequestTime"] = format_utc(record.received_time);
  put_time(o, "testStartTime", record.test_start_time);
  put_time(o, "testEndTime", record.test_end_time);
  put_time(o, "connectionStartTime", record.connection_start_time);
  put_time(o, "connectionEndTime", record.connection_end_time);
  if (record.batch)
    o["batchId"] = *record.batch;
  if (record.state == test_state::completed && record.connection_attempts)
    o["attempts"] = *record.connection_attempts;

  const bj::object readings = parse_readings(record.readings_json);
  // serialNumber: the requested one until the test has run; then what the meter reported
  // (or "ERROR: ..."), falling back to the requested one when the run stored none.
  const bj::value* read_serial = readings.if_contains("serialNumber");
  if (record.state == test_state::completed && read_serial)
    o["serialNumber"] = *read_serial;
  else
    put_string(o, "serialNumber", req.serial_number);
  for (const char* key : {"meterTime", "statusEvents", "registerValues", "surveyData"})
    if (const bj::value* v = readings.if_contains(key))
      o[key] = *v;
  return o;
}

bj::object encode_summary(const test_record& record, bool for_search) {
  bj::object o;
  o["testId"] = record.id;
  put_string(o, "requestReference", record.request.request_reference);
  o["meterType"] = record.request.meter_type;
  o["remoteAddress"] = record.request.remote_address;
  o["resultSummary"] = record.result;
  if (for_search) {
    o["receivedTimestamp"] = format_utc(record.received_time);
    put_time(o, "completedTimestamp", record.completed_time);
    if (record.batch)
      o["batchId"] = *record.batch;
  }
  return o;
}

} // namespace mts

#include "drivers/outcome.hpp"

#include "common/json.hpp"

#include <boost/json.hpp>

#include <cstdio>

namespace mts::drivers {

namespace bj = boost::json;

std::string format_meter_time(unix_seconds meter_time, unix_seconds true_time) {
  auto text = format_utc(meter_time);
  text.pop_back(); // the API writes this one without the Z, followed by the offset
  auto offset = meter_time - true_time;
  return text + " " + (offset < 0 ? "-" : "+") + std::to_string(offset < 0 ? -offset : offset) + "s";
}

namespace {

// [{"name":..,"units":..,"readings":[{"timestamp":..,"value":..},...]},...] ([] when the
// survey was not read), as json::serialize would write it. Written directly: a survey has
// thousands of readings, and building them as a DOM first was most of a test's CPU time.
std::string survey_json(const meter_readings& r) {
  std::string out = "[";
  if (r.survey) {
    for (const auto& ch : *r.survey) {
      if (out.size() > 1)
        out += ',';
      out += "{\"name\":";
      json::write_string(out, ch.name);
      out += ",\"units\":";
      json::write_string(out, ch.units);
      out += ",\"readings\":[";
      bool first = true;
      for (const auto& reading : ch.readings) {
        out += first ? "{\"timestamp\":\"" : ",{\"timestamp\":\"";
        first = false;
        out += format_utc(reading.timestamp);
        out += "\",\"value\":";
        json::write_double(out, reading.value);
        out += '}';
      }
      out += "]}";
    }
  }
  out += ']';
  return out;
}

} // namespace

test_outcome make_outcome(test_id id, const session_request& request, const meter_readings& r,
                          const finish& end, unix_seconds test_end_time) {
  test_outcome out;
  out.id = id;
  out.test_end_time = test_end_time;
  const bool survey_requested = request.survey_from && request.survey_to;
  const std::string why = end.reason.empty() ? "not read" : end.reason;
  const bool mismatch = end.failure == failure_kind::permanent && end.reason == "Serial number mismatch";

  bj::object readings;
  int wanted = 4 + (survey_requested ? 1 : 0);
  int got = 0;

  if (r.serial_number && !mismatch) {
    readings["serialNumber"] = *r.serial_number;
    ++got;
  } else if (mismatch) {
    readings["serialNumber"] = "ERROR: Serial number mismatch" +
                               (r.serial_number ? " (the meter reports " + *r.serial_number + ")" : std::string());
  } else {
    readings["serialNumber"] = "ERROR: " + why;
  }
  if (r.meter_time && r.meter_time_taken) {
    readings["meterTime"] = format_meter_time(*r.meter_time, *r.meter_time_taken);
    ++got;
  } else if (!mismatch) {
    readings["meterTime"] = "ERROR: " + why;
  }
  if (r.status_events) {
    bj::array events;
    for (const auto& e : *r.status_events)
      events.emplace_back(e);
    // Items read only in part: named where a client looks for what the meter reported.
    for (const auto& f : r.item_failures)
      events.emplace_back("Not read: " + f);
    readings["statusEvents"] = std::move(events);
    ++got;
  }
  if (r.registers) {
    bj::array regs;
    for (const auto& v : *r.registers)
      regs.push_back(bj::object{{"name", v.name}, {"value", v.value}, {"units", v.units},
                                {"timestamp", format_utc(v.timestamp)}});
    readings["registerValues"] = std::move(regs);
    ++got;
  }
  if (survey_requested && r.survey)
    ++got;

  if (mismatch)
    out.result = "ERROR: Serial number mismatch";
  else if (got == wanted && end.failure == failure_kind::none && r.item_failures.empty())
    out.result = "SUCCESS";
  else if (got > 0)
    out.result = "PARTIAL SUCCESS";
  else
    out.result = "ERROR: " + why;
  out.readings_json = json::serialize(readings);
  if (survey_requested) { // the last member: written straight to text (see survey_json)
    out.readings_json.pop_back(); // the object's '}'
    out.readings_json += readings.empty() ? "\"surveyData\":" : ",\"surveyData\":";
    out.readings_json += survey_json(r);
    out.readings_json += '}';
  }
  return out;
}

} // namespace mts::drivers

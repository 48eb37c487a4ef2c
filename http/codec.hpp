#pragma once
// JSON encoders for API responses (the decoders are in validation.hpp).
#include "common/model.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace mts {

// {"details": [...]}
boost::json::object error_body(const std::vector<std::string>& details);

// test-status: every request field echoed (password as "********" when mask_passwords),
// resultSummary and result, the known times, and once run the readings (serialNumber read
// from the meter replaces the requested one; see DECISIONS.md).
boost::json::object encode_test_status(const test_record& record, bool mask_passwords);
// test-transcript: {"testId":N,"attempts":[...]} from the stored array text ([] when empty).
boost::json::object encode_test_transcript(test_id id, const std::string& transcript_json);

// A Status Summary Object. for_search adds receivedTimestamp, completedTimestamp and batchId.
boost::json::object encode_summary(const test_record& record, bool for_search);

} // namespace mts

#pragma once
// Validation of every API input: request bodies and query strings. Each function collects
// every problem it finds (never only the first) as human-readable details of the form
// "<field>: <problem>", and returns a value only when there are none.
#include "common/model.hpp"
#include "config/settings.hpp"

#include <boost/json/value.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mts {

// Longest string accepted in any request field.
constexpr std::size_t max_field_length = 256;

struct validation_context {
  const limits_settings& limits;
  const std::vector<std::string>& meter_types; // supported, exact spelling
  unix_seconds now;                            // when the request was received
};

// Query-string parameters with names folded to lower case (names are case-insensitive).
// A name given twice is reported by fold_query_params.
using query_params = std::map<std::string, std::string>;
query_params fold_query_params(const std::multimap<std::string, std::string>& raw,
                               std::vector<std::string>& details);

// One test-request object. `prefix` goes before every detail ("[3] " for batch elements).
// Rules: see docs/api.md (DECISIONS.md): unknown fields, types, remoteAddress format,
// comsSettings only with telephone numbers, surveyDays range, surveyDate resolution.
std::optional<test_request> validate_test_request(const boost::json::value& body,
                                                  const validation_context& ctx,
                                                  std::vector<std::string>& details,
                                                  const std::string& prefix = "");

// A batch-request array of 1 to limits.max_batch_size objects, all or nothing.
std::optional<std::vector<test_request>> validate_batch_request(const boost::json::value& body,
                                                                const validation_context& ctx,
                                                                std::vector<std::string>& details);

// test-cancel: {"testId": N} in the body (null when there is no body) or testId in the query.
std::optional<test_id> validate_test_cancel(const boost::json::value* body,
                                            const query_params& params,
                                            std::vector<std::string>& details);

struct batch_cancel_request {
  batch_id id = 0;
  bool delete_completed = false;
};
// batch-cancel: {"batchId": N, "deleteCompleted": bool} in the body, or batchId (and
// deleteCompleted) in the query.
std::optional<batch_cancel_request> validate_batch_cancel(const boost::json::value* body,
                                                          const query_params& params,
                                                          std::vector<std::string>& details);

// test-status (?testId=N) and batch-status (?batchId=N): a positive integer id, and no other
// parameter.
std::optional<std::int64_t> validate_id_query(const query_params& params, const std::string& name,
                                              std::vector<std::string>& details);

// test-search.
std::optional<search_query> validate_search(const query_params& params,
                                            const validation_context& ctx,
                                            std::vector<std::string>& details);

// The telephone-number form of remoteAddress (reached through a modem) versus host:port.
bool is_telephone_address(const std::string& remote_address);

} // namespace mts

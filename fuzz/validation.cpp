// Request validation of every API method (http/validation.hpp) as the HTTP layer runs it: the
// query string decoded by the HTTP library and folded (fold_query_params), the body through
// the strict JSON parser, then the method's own checks. The first byte picks the method; the
// rest is "query string NUL body". Every refusal lists at least one problem.
#include "common/json.hpp"
#include "drivers/registry.hpp"
#include "fuzz_check.hpp"
#include "http/validation.hpp"

#include <httplib.h>

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts;
  if (size == 0)
    return 0;
  static const meter_type_registry registry;
  static const limits_settings limits;
  const unix_seconds now = 1'700'000'000; // 2023-11-14 22:13:20 UTC
  const int method = data[0] % 8;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto split = rest.find('\0');
  std::string query = rest.substr(0, split);
  std::string body = split == std::string::npos ? std::string() : rest.substr(split + 1);

  std::vector<std::string> details;
  httplib::Params raw;
  httplib::detail::parse_query_text(query, raw);
  auto params = fold_query_params(raw, details);
  if (!details.empty())
    return 0;
  std::string error;
  auto json = body.empty() ? std::nullopt : json::parse_strict(body, error);
  const boost::json::value* json_body = json ? &*json : nullptr;
  validation_context ctx{limits, registry.names(), now};

  bool accepted = false;
  switch (method) {
    case 0: accepted = json && validate_test_request(*json, ctx, details).has_value(); break;
    case 1: accepted = json && validate_batch_request(*json, ctx, details).has_value(); break;
    case 2: accepted = validate_test_cancel(json_body, params, details).has_value(); break;
    case 3: accepted = validate_batch_cancel(json_body, params, details).has_value(); break;
    case 4: accepted = validate_id_query(params, "testId", details).has_value(); break;
    case 5: accepted = validate_id_query(params, "batchId", details).has_value(); break;
    case 6: accepted = validate_search(params, ctx, details).has_value(); break;
    default: (void)is_telephone_address(query); return 0;
  }
  bool validated = method >= 2 || json;
  FUZZ_CHECK(!validated || accepted != !details.empty(), "a refusal without a problem, or an acceptance with one");
  return 0;
}

// The API's request path as the server runs it between the HTTP library's parsing and its
// writing (api_server::respond, through fuzz/api_rig.hpp): the framing checks, routing,
// authentication headers, rate limit, scope, query string, content type, strict JSON,
// validation, the method on a real database and actors, and the error mapping. (The library's
// own parsing of the bytes on the wire is not ours; the edge stands in front of it.)
//
// Input: a method byte (one of the known verbs, or the next field taken as the verb), then
// NUL-separated fields: path, query string, body, then header name and value pairs. A path not
// starting with '/' is taken under /MTS/. "$TOKEN" and "$READ_ONLY" in a header value stand
// for the rig's two tokens.
//
// Invariants beyond the sanitizers: a status from 200 to 599; every answer is strict JSON, an
// error lists at least one detail; no token sent as "$TOKEN" appears in an answer; every answer says
// Cache-Control: no-store; a 401 says WWW-Authenticate, a 405 Allow, a 429 Retry-After.
#include "api_rig.hpp"
#include "common/json.hpp"
#include "fuzz_check.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace {

std::vector<std::string> split_fields(const std::string& text) {
  std::vector<std::string> out(1);
  for (char c : text) {
    if (c == '\0')
      out.emplace_back();
    else
      out.back() += c;
  }
  return out;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts;
  if (size == 0)
    return 0;
  // One database and actor system for the whole run, never destroyed: at exit the actor
  // system would outlive the library state it needs.
  static rig::api_rig& api = *new rig::api_rig;
  static const char* const verbs[] = {"GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"};
  auto fields = split_fields(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  std::size_t next = 0;
  auto take = [&]() -> std::string { return next < fields.size() ? fields[next++] : std::string(); };

  httplib::Request req;
  const unsigned selector = data[0] % 8;
  req.method = selector < 7 ? verbs[selector] : take();
  req.path = take();
  if (req.path.empty() || req.path[0] != '/')
    req.path = "/MTS/" + req.path;
  const std::string query = take();
  httplib::detail::parse_query_text(query, req.params);
  req.body = take();
  while (next < fields.size()) {
    std::string name = take();
    req.headers.emplace(std::move(name), take());
  }

  auto res = api.respond(req);

  FUZZ_CHECK(res.status >= 200 && res.status <= 599, "a status outside 200..599");
  std::string error;
  auto body = json::parse_strict(res.body, error);
  FUZZ_CHECK(body.has_value(), "an answer that is not strict JSON");
  if (res.status >= 400) {
    const auto* details = body->is_object() ? body->as_object().if_contains("details") : nullptr;
    FUZZ_CHECK(details && details->is_array() && !details->as_array().empty(), "an error without details");
  }
  const std::string input(reinterpret_cast<const char*>(data), size);
  for (const auto* token : {&api.full_token, &api.read_only_token}) {
    // Only a token the request sent outside its text ("$TOKEN") counts: a path or verb that
    // spells a token out (the fuzzer learns it from comparisons) is echoed in an error.
    if (contains(input, *token))
      continue;
    FUZZ_CHECK(!contains(res.body, *token), "a token in an answer's body");
    for (const auto& header : res.headers)
      FUZZ_CHECK(!contains(header.second, *token), "a token in an answer's header");
  }
  FUZZ_CHECK(res.get_header_value("Cache-Control") == "no-store", "an answer without Cache-Control: no-store");
  if (res.status == 401)
    FUZZ_CHECK(res.has_header("WWW-Authenticate"), "a 401 without WWW-Authenticate");
  if (res.status == 405)
    FUZZ_CHECK(res.has_header("Allow"), "a 405 without Allow");
  if (res.status == 429)
    FUZZ_CHECK(res.has_header("Retry-After"), "a 429 without Retry-After");
  return 0;
}

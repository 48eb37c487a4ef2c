#include "http/validation.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string_view>

namespace mts {
namespace {

namespace bj = boost::json;

// Ids are JSON numbers, and JavaScript clients lose precision above 2^53 - 1.
constexpr std::int64_t max_safe_integer = 9007199254740991;

// Input quoted back in a detail is cut to this many bytes.
constexpr std::size_t max_echo_length = 64;

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7F; }

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return is_control(static_cast<unsigned char>(c)); });
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool iequals(std::string_view a, std::string_view b) { return lower(a) == lower(b); }

std::string_view sv(const bj::string& s) { return {s.data(), s.size()}; }

// Input quoted in a detail: at most max_echo_length bytes (cut on a UTF-8 character
// boundary, marked with "..."), control characters shown as '?', so that a detail stays one
// short line whatever the client sent.
std::string echo(std::string_view s) {
  std::string out;
  std::size_t n = s.size();
  bool cut = false;
  if (n > max_echo_length) {
    n = max_echo_length;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
      --n; // s[n] continues a multi-byte character: cut before that character
    cut = true;
  }
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(is_control(static_cast<unsigned char>(s[i])) ? '?' : s[i]);
  if (cut)
    out += "...";
  return out;
}

// A field or parameter name as it appears at the start of a detail.
std::string name_for_detail(std::string_view name) {
  return name.empty() ? std::string("(empty name)") : echo(name);
}

// Decimal digits only (no sign, no spaces), value from 0 to max; nullopt otherwise.
std::optional<std::int64_t> parse_decimal(std::string_view s, std::int64_t max) {
  if (!all_digits(s))
    return std::nullopt;
  std::size_t i = 0;
  while (i + 1 < s.size() && s[i] == '0') // leading zeros do not count towards the length
    ++i;
  if (s.size() - i > 18) // beyond any limit we use, and would overflow below
    return std::nullopt;
  std::int64_t v = 0;
  for (; i < s.size(); ++i)
    v = v * 10 + (s[i] - '0');
  if (v > max)
    return std::nullopt;
  return v;
}

// A positive id given as a JSON integer.
std::optional<std::int64_t> json_id(const bj::value& v) {
  if (!v.is_int64())
    return std::nullopt; // doubles (1.0), strings, bools; uint64 is beyond the range anyway
  const std::int64_t id = v.get_int64();
  if (id < 1 || id > max_safe_integer)
    return std::nullopt;
  return id;
}

std::optional<std::int64_t> query_id(std::string_view s) {
  auto v = parse_decimal(s, max_safe_integer);
  if (v && *v < 1)
    return std::nullopt;
  return v;
}

std::optional<bool> query_bool(std::string_view s) {
  if (iequals(s, "true"))
    return true;
  if (iequals(s, "false"))
    return false;
  return std::nullopt;
}

std::string id_problem(const std::string& name) {
  return name + ": must be a whole number from 1 to " + std::to_string(max_safe_integer);
}

// ---- remoteAddress ----

// 0-255 in decimal, without leading zeros (which some resolvers read as octal).
bool is_ipv4(std::string_view s) {
  int parts = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    const std::string_view part =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty() || part.size() > 3 || !all_digits(part) ||
        (part.size() > 1 && part[0] == '0'))
      return false;
    if (std::stoi(std::string(part)) > 255)
      return false;
    ++parts;
    if (dot == std::string_view::npos)
      break;
    start = dot + 1;
  }
  return parts == 4;
}

// RFC 1123 host name: labels of 1-63 letters, digits and hyphens, not starting or ending
// with a hyphen, at most 253 characters in all.
bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253)
    return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    const std::string_view label =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label)
      if (!is_digit(c) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '-')
        return false;
    if (dot == std::string_view::npos)
      return true;
    start = dot + 1;
  }
}

bool is_host(std::string_view host) {
  // Digits and dots only: meant as an IPv4 address, so it must be a valid one
  // ("999.1.1.1" is not a host name either).
  if (host.find_first_not_of("0123456789.") == std::string_view::npos)
    return is_ipv4(host);
  return is_dns_name(host);
}

bool is_port(std::string_view s) {
  auto v = parse_decimal(s, 65535);
  return s.size() <= 5 && v && *v >= 1;
}

// host:port, a.b.c.d:port or [ipv6]:port.
bool is_tcp_address(std::string_view s) {
  if (!s.empty() && s.front() == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return false;
    const std::string host(s.substr(1, close - 1));
    in6_addr addr{};
    return !host.empty() && inet_pton(AF_INET6, host.c_str(), &addr) == 1 &&
           is_port(s.substr(close + 2));
  }
  const std::size_t colon = s.rfind(':');
  if (colon == std::string_view::npos)
    return false;
  const std::string_view host = s.substr(0, colon);
  // A colon in the host: an IPv6 address without brackets, where the port is ambiguous.
  return host.find(':') == std::string_view::npos && is_host(host) &&
         is_port(s.substr(colon + 1));
}

// ---- test-request fields ----

// Reads the fields of one JSON object, each problem becoming a detail.
class field_reader {
public:
  field_reader(const bj::object& obj, std::vector<std::string>& details, const std::string& prefix)
    : obj_(obj), details_(details), prefix_(prefix) {}

  void problem(const std::string& field, const std::string& text) {
    details_.push_back(prefix_ + field + ": " + text);
  }

  // The field's value; nullptr when absent or null (null means "not given").
  const bj::value* get(const char* name) const {
    const bj::value* v = obj_.if_contains(name);
    return v && !v->is_null() ? v : nullptr;
  }

  // A string field: must be a string, at most max_field_length bytes (a bound on what we
  // store and echo), without control characters (they have no place in any of these values
  // and would corrupt logs and the meter dialogue).
  std::optional<std::string> string(const char* name, bool required) {
    const bj::value* v = get(name);
    if (!v) {
      if (required)
        problem(name, "required");
      return std::nullopt;
    }
    if (!v->is_string()) {
      problem(name, "must be a string");
      return std::nullopt;
    }
    const std::string_view s = sv(v->get_string());
    if (s.size() > max_field_length) {
      problem(name, "longer than " + std::to_string(max_field_length) + " bytes");
      return std::nullopt;
    }
    if (has_control(s)) {
      problem(name, "contains control characters");
      return std::nullopt;
    }
    return std::string(s);
  }

private:
  const bj::object& obj_;
  std::vector<std::string>& details_;
  const std::string& prefix_;
};

const char* const test_request_fields[] = {
    "requestReference", "immediate",    "meterType", "remoteAddress", "comsSettings",
    "outstationAddress", "serialNumber", "password",  "surveyDays",    "surveyDate"};

// <data bits 5-8><parity N/E/O><stop bits 1/2>; parity in either case, stored upper case.
std::optional<std::string> normalize_coms_settings(const std::string& s) {
  if (s.size() != 3 || s[0] < '5' || s[0] > '8' || (s[2] != '1' && s[2] != '2'))
    return std::nullopt;
  char parity = s[1];
  if (parity >= 'a' && parity <= 'z')
    parity = static_cast<char>(parity - 'a' + 'A');
  if (parity != 'N' && parity != 'E' && parity != 'O')
    return std::nullopt;
  return std::string{s[0], parity, s[2]};
}

} // namespace

bool is_telephone_address(const std::string& remote_address) {
  std::string_view s = remote_address;
  if (!s.empty() && s.front() == '+')
    s.remove_prefix(1);
  return s.size() >= 3 && s.size() <= 20 && all_digits(s);
}

query_params fold_query_params(const std::multimap<std::string, std::string>& raw,
                               std::vector<std::string>& details) {
  // Names are case-insensitive (the spec writes both testId and testid); a name given twice
  // is ambiguous, so it is refused rather than one value silently winning.
  query_params out;
  std::set<std::string> reported;
  for (const auto& [name, value] : raw) {
    std::string folded = lower(name);
    if (!out.emplace(folded, value).second && reported.insert(folded).second)
      details.push_back(name_for_detail(name) + ": given more than once");
  }
  return out;
}

std::optional<test_request> validate_test_request(const boost::json::value& body,
                                                  const validation_context& ctx,
                                                  std::vector<std::string>& details,
                                                  const std::string& prefix) {
  const bj::object* obj = body.if_object();
  if (!obj) {
    details.push_back(prefix + "body: expected a JSON object");
    return std::nullopt;
  }
  const std::size_t before = details.size();
  field_reader in(*obj, details, prefix);
  test_request req;

  // Unknown fields are refused: a misspelt "immediate" must not silently become an
  // overnight test.
  for (const auto& kv : *obj) {
    const std::string_view key(kv.key().data(), kv.key().size());
    if (std::none_of(std::begin(test_request_fields), std::end(test_request_fields),
                     [&](const char* f) { return key == f; }))
      in.problem(name_for_detail(key), "unknown field");
  }

  // Free text for the client's own use, echoed back; may be empty.
  req.request_reference = in.string("requestReference", false);

  // JSON booleans only: "false" as a string is truthy in many clients' eyes, so guessing
  // would pick the wrong queue for someone.
  if (const bj::value* v = in.get("immediate")) {
    if (v->is_bool())
      req.immediate = v->get_bool();
    else
      in.problem("immediate", "must be true or false");
  }

  // Exact spelling of a registered driver: anything else could not be run.
  if (auto meter = in.string("meterType", true)) {
    if (std::find(ctx.meter_types.begin(), ctx.meter_types.end(), *meter) ==
        ctx.meter_types.end()) {
      std::string supported;
      for (const auto& t : ctx.meter_types)
        supported += (supported.empty() ? "" : ", ") + t;
      in.problem("meterType",
                 "unsupported meter type \"" + echo(*meter) + "\"; supported: " + supported);
    } else {
      req.meter_type = *meter;
    }
  }

  // A telephone number (dialled through a modem) or host:port (TCP); the form decides the
  // transport, so anything else cannot be connected to.
  bool remote_ok = false;
  if (auto remote = in.string("remoteAddress", true)) {
    if (is_telephone_address(*remote) || is_tcp_address(*remote)) {
      req.remote_address = *remote;
      remote_ok = true;
    } else {
      in.problem("remoteAddress", "Remote address is not in a recognised format");
    }
  }

  // Serial line framing: only a modem link has one. An empty string means "not given".
  if (auto coms = in.string("comsSettings", false); coms && !coms->empty()) {
    if (auto normal = normalize_coms_settings(*coms)) {
      if (remote_ok && !is_telephone_address(req.remote_address))
        in.problem("comsSettings", "only applies to telephone (modem) addresses");
      else
        req.coms_settings = *normal;
    } else {
      in.problem("comsSettings", "must be data bits (5-8), parity (N, E or O) and stop bits "
                                 "(1 or 2), e.g. 7E1");
    }
  }

  // Passed to the meter as given; only the general string rules apply.
  req.outstation_address = in.string("outstationAddress", false);
  req.serial_number = in.string("serialNumber", false);
  req.password = in.string("password", false);

  // A JSON integer (not 1.0, "1" or true): a count of days, bounded so that one request
  // cannot ask a meter for more survey data than the configuration allows.
  bool days_ok = true;
  if (const bj::value* v = in.get("surveyDays")) {
    if (v->is_int64() && v->get_int64() >= 0 && v->get_int64() <= ctx.limits.max_survey_days) {
      req.survey_days = v->get_int64();
    } else {
      days_ok = false;
      in.problem("surveyDays", "must be a whole number from 0 to " +
                                   std::to_string(ctx.limits.max_survey_days));
    }
  }

  // A real calendar date, not in the future (there is no survey data there yet). Checked even
  // when surveyDays is 0 and the date will be ignored: a malformed value is a client bug.
  std::optional<std::string> survey_date;
  if (auto date = in.string("surveyDate", false); date && !date->empty()) {
    if (auto day = parse_date(*date)) {
      const unix_seconds today = ctx.now - ((ctx.now % seconds_per_day) + seconds_per_day) %
                                               seconds_per_day;
      if (*day > today)
        in.problem("surveyDate", "lies in the future");
      else
        survey_date = *date;
    } else {
      in.problem("surveyDate", "must be a date in the form yyyy-MM-dd");
    }
  }

  if (details.size() != before)
    return std::nullopt;

  // Resolution: surveyDays 0 reads no survey, so the date means nothing; a missing date with
  // surveyDays > 0 is that many days before the request's UTC date.
  if (days_ok && req.survey_days > 0)
    req.survey_date = survey_date ? *survey_date
                                  : format_date(ctx.now - req.survey_days * seconds_per_day);
  else
    req.survey_date = std::nullopt;
  return req;
}

std::optional<std::vector<test_request>> validate_batch_request(const boost::json::value& body,
                                                                const validation_context& ctx,
                                                                std::vector<std::string>& details) {
  const bj::array* arr = body.if_array();
  if (!arr) {
    details.push_back("body: expected a JSON array of test requests");
    return std::nullopt;
  }
  if (arr->empty()) {
    details.push_back("body: a batch holds at least 1 test");
    return std::nullopt;
  }
  // Checked before the elements: an oversized batch is refused whole, without spending time
  // (and details) on elements that could never be accepted.
  if (static_cast<std::int64_t>(arr->size()) > ctx.limits.max_batch_size) {
    details.push_back("body: a batch holds at most " + std::to_string(ctx.limits.max_batch_size) +
                      " tests");
    return std::nullopt;
  }
  // All or nothing: every element is checked (so the client sees every problem at once), and
  // one bad element refuses the batch.
  std::vector<test_request> out;
  out.reserve(arr->size());
  bool ok = true;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    auto req = validate_test_request((*arr)[i], ctx, details, "[" + std::to_string(i) + "] ");
    if (req)
      out.push_back(std::move(*req));
    else
      ok = false;
  }
  if (!ok)
    return std::nullopt;
  return out;
}

namespace {

// The id of test-cancel / batch-cancel, from the body or the query string (for clients that
// cannot send a DELETE body); given in both, the two must agree.
struct id_sources {
  std::optional<std::int64_t> body, query;
  bool bad = false; // given but invalid: reported already, so not "required" as well
};

void resolve_id(const id_sources& id, const std::string& name, std::vector<std::string>& details) {
  if (id.bad)
    return;
  if (id.body && id.query && *id.body != *id.query)
    details.push_back(name + ": differs between body and query string");
  else if (!id.body && !id.query)
    details.push_back(name + ": required");
}

} // namespace

std::optional<test_id> validate_test_cancel(const boost::json::value* body,
                                            const query_params& params,
                                            std::vector<std::string>& details) {
  const std::size_t before = details.size();
  id_sources id;
  if (body) {
    if (const bj::object* obj = body->if_object()) {
      for (const auto& kv : *obj) {
        const std::string_view key(kv.key().data(), kv.key().size());
        if (key == "testId") {
          if (kv.value().is_null())
            continue; // null: not given
          if ((id.body = json_id(kv.value())))
            continue;
          id.bad = true;
          details.push_back(id_problem("testId"));
        } else {
          details.push_back(name_for_detail(key) + ": unknown field");
        }
      }
    } else {
      details.push_back("body: expected a JSON object");
    }
  }
  for (const auto& [name, value] : params) {
    if (name == "testid") {
      if (!(id.query = query_id(value))) {
        id.bad = true;
        details.push_back(id_problem("testId"));
      }
    } else {
      details.push_back(name_for_detail(name) + ": unknown parameter");
    }
  }
  resolve_id(id, "testId", details);
  if (details.size() != before)
    return std::nullopt;
  return id.body ? *id.body : *id.query;
}

std::optional<batch_cancel_request> validate_batch_cancel(const boost::json::value* body,
                                                          const query_params& params,
                                                          std::vector<std::string>& details) {
  const std::size_t before = details.size();
  id_sources id;
  std::optional<bool> body_delete, query_delete;
  if (body) {
    if (const bj::object* obj = body->if_object()) {
      for (const auto& kv : *obj) {
        const std::string_view key(kv.key().data(), kv.key().size());
        if (kv.value().is_null() && (key == "batchId" || key == "deleteCompleted"))
          continue; // null: not given
        if (key == "batchId") {
          if (!(id.body = json_id(kv.value()))) {
            id.bad = true;
            details.push_back(id_problem("batchId"));
          }
        } else if (key == "deleteCompleted") {
          if (kv.value().is_bool())
            body_delete = kv.value().get_bool();
          else
            details.push_back("deleteCompleted: must be true or false");
        } else {
          details.push_back(name_for_detail(key) + ": unknown field");
        }
      }
    } else {
      details.push_back("body: expected a JSON object");
    }
  }
  for (const auto& [name, value] : params) {
    if (name == "batchid") {
      if (!(id.query = query_id(value))) {
        id.bad = true;
        details.push_back(id_problem("batchId"));
      }
    } else if (name == "deletecompleted") {
      if (!(query_delete = query_bool(value)))
        details.push_back("deleteCompleted: must be true or false");
    } else {
      details.push_back(name_for_detail(name) + ": unknown parameter");
    }
  }
  resolve_id(id, "batchId", details);
  if (body_delete && query_delete && *body_delete != *query_delete)
    details.push_back("deleteCompleted: differs between body and query string");
  if (details.size() != before)
    return std::nullopt;
  batch_cancel_request out;
  out.id = id.body ? *id.body : *id.query;
  out.delete_completed = body_delete ? *body_delete : query_delete.value_or(false);
  return out;
}

std::optional<std::int64_t> validate_id_query(const query_params& params, const std::string& name,
                                              std::vector<std::string>& details) {
  const std::size_t before = details.size();
  const std::string key = lower(name);
  std::optional<std::int64_t> id;
  bool seen = false;
  for (const auto& [param, value] : params) {
    if (param == key) {
      seen = true;
      if (!(id = query_id(value)))
        details.push_back(id_problem(name));
    } else {
      details.push_back(name_for_detail(param) + ": unknown parameter");
    }
  }
  if (!seen)
    details.push_back(name + ": required");
  if (details.size() != before)
    return std::nullopt;
  return id;
}

std::optional<search_query> validate_search(const query_params& params,
                                            const validation_context& ctx,
                                            std::vector<std::string>& details) {
  static const std::pair<const char*, const char*> known[] = {
      {"fromtime", "fromTime"},   {"totime", "toTime"}, {"requestreference", "requestReference"},
      {"metertype", "meterType"}, {"remoteaddress", "remoteAddress"}, {"status", "status"},
      {"limit", "limit"},         {"offset", "offset"}, {"reverseorder", "reverseOrder"}};

  const std::size_t before = details.size();
  search_query q;
  q.limit = ctx.limits.default_search_limit;
  std::optional<unix_seconds> from, to;
  bool from_bad = false, to_bad = false;

  for (const auto& entry : params) {
    // Named references: a lambda may not capture structured bindings before C++20 (clang).
    const std::string& param = entry.first;
    const std::string& value = entry.second;
    const auto* k = std::find_if(std::begin(known), std::end(known),
                                 [&](const auto& e) { return param == e.first; });
    if (k == std::end(known)) {
      details.push_back(name_for_detail(param) + ": unknown parameter");
      continue;
    }
    const std::string name = k->second;
    const auto problem = [&](const std::string& text) { details.push_back(name + ": " + text); };
    // Every value is bounded and free of control characters before it is looked at.
    if (value.size() > max_field_length) {
      problem("longer than " + std::to_string(max_field_length) + " bytes");
      from_bad |= name == "fromTime";
      to_bad |= name == "toTime";
      continue;
    }
    if (has_control(value)) {
      problem("contains control characters");
      from_bad |= name == "fromTime";
      to_bad |= name == "toTime";
      continue;
    }

    if (name == "fromTime" || name == "toTime") {
      // The API's one time format; the range is on the time a test was received.
      auto t = parse_utc(value);
      if (!t) {
        problem("must be a UTC time in the form YYYY-MM-DDTHH:mm:ssZ");
        (name == "fromTime" ? from_bad : to_bad) = true;
      }
      (name == "fromTime" ? from : to) = t;
    } else if (name == "requestReference" || name == "meterType" || name == "remoteAddress") {
      // Filters; an empty value (an empty form field) means no filter. meterType is not
      // checked against the registry: old tests may name a type no longer supported.
      if (!value.empty())
        (name == "requestReference" ? q.request_reference
         : name == "meterType"      ? q.meter_type
                                    : q.remote_address) = value;
    } else if (name == "status") {
      if (iequals(value, "ALL"))
        q.status = status_filter::all;
      else if (iequals(value, "COMPLETED"))
        q.status = status_filter::completed;
      else if (iequals(value, "PENDING"))
        q.status = status_filter::pending;
      else
        problem("must be ALL, COMPLETED or PENDING");
    } else if (name == "limit") {
      // Bounded so that one page cannot be arbitrarily large; 0 asks for the counts only.
      if (auto v = parse_decimal(value, ctx.limits.max_search_limit))
        q.limit = *v;
      else
        problem("must be a whole number from 0 to " +
                std::to_string(ctx.limits.max_search_limit));
    } else if (name == "offset") {
      // Echoed as a JSON number, so held to the range JSON clients read exactly.
      if (auto v = parse_decimal(value, max_safe_integer))
        q.offset = *v;
      else
        problem("must be a whole number from 0 to " + std::to_string(max_safe_integer));
    } else if (name == "reverseOrder") {
      if (auto v = query_bool(value))
        q.reverse_order = *v;
      else
        problem("must be true or false");
    }
  }

  if (!from && !from_bad)
    details.push_back("fromTime: required");
  if (from && !to_bad) {
    // The range is bounded so that one search cannot scan the whole store.
    const unix_seconds end = to ? *to : ctx.now;
    if (end < *from)
      details.push_back(to ? "toTime: must not be before fromTime"
                           : "fromTime: lies in the future");
    else if (end - *from > ctx.limits.max_search_days * seconds_per_day)
      details.push_back("toTime: the search range may span at most " +
                        std::to_string(ctx.limits.max_search_days) + " days");
  }
  if (details.size() != before)
    return std::nullopt;
  q.from_time = *from;
  q.to_time = to ? *to : ctx.now;
  return q;
}

} // namespace mts

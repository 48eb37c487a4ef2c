#include "common/json.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <new>
#include <set>
#include <system_error>
#include <vector>

namespace mts::json {
namespace {

namespace bj = boost::json;

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when it is not one
// (overlong forms, UTF-16 surrogates D800-DFFF and code points above 10FFFF are not).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100u;
  };
  const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    const unsigned b = byte(k);
    return b >= lo && b <= hi;
  };
  const unsigned c = byte(0);
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    return cont(1) ? 2 : 0;
  if (c == 0xE0)
    return cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
  if (c == 0xED) // excludes the surrogates
    return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c >= 0xE1 && c <= 0xEF)
    return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xF0)
    return cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3)
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4)
    return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// Offset of the first byte that does not start a well-formed UTF-8 sequence, or npos.
std::size_t find_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path.
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0)
      return i;
    i += n;
  }
  return std::string_view::npos;
}

// A key is echoed in an error only when that cannot carry odd bytes back to the client.
bool safe_to_echo(const std::string& key) {
  if (key.size() > 64)
    return false;
  for (char ch : key)
    if (ch < 0x20 || ch > 0x7E || ch == '"' || ch == '\\')
      return false;
  return true;
}

// basic_parser handler: builds the value with a value_stack and enforces what the stock
// parser does not (duplicate keys, exact numbers). The failure reason is kept in `reason`;
// the error code handed back to the parser only stops it.
class strict_handler {
public:
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);

  std::string reason;      // set when the handler rejected the input
  std::size_t number_length = 0; // text length of the rejected number, to report its start

  bj::value release() { return stack_.release(); }

  bool on_document_begin(bj::error_code&) {
    stack_.reset();
    return true;
  }
  bool on_document_end(bj::error_code&) { return true; }

  bool on_array_begin(bj::error_code&) { return true; }
  bool on_array_end(std::size_t n, bj::error_code&) {
    stack_.push_array(n);
    return true;
  }

  bool on_object_begin(bj::error_code&) {
    keys_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t n, bj::error_code&) {
    keys_.pop_back();
    stack_.push_object(n);
    return true;
  }

  bool on_string_part(bj::string_view s, std::size_t, bj::error_code&) {
    stack_.push_chars(s);
    return true;
  }
  bool on_string(bj::string_view s, std::size_t, bj::error_code&) {
    stack_.push_string(s);
    return true;
  }

  // A key may arrive in parts; the whole key is checked against the open object's keys.
  bool on_key_part(bj::string_view s, std::size_t, bj::error_code&) {
    key_.append(s.data(), s.size());
    stack_.push_chars(s);
    return true;
  }
  bool on_key(bj::string_view s, std::size_t, bj::error_code& ec) {
    key_.append(s.data(), s.size());
    if (!keys_.back().insert(key_).second) {
      reason = safe_to_echo(key_) ? "duplicate key \"" + key_ + "\""
                                  : std::string("duplicate key in a JSON object");
      return stop(ec);
    }
    key_.clear();
    stack_.push_key(s);
    return true;
  }

  bool on_number_part(bj::string_view s, bj::error_code&) {
    number_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, bj::string_view, bj::error_code&) {
    number_.clear();
    stack_.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, bj::string_view, bj::error_code&) {
    number_.clear();
    stack_.push_uint64(u);
    return true;
  }
  // Boost.JSON hands over integers beyond 64 bits as (inexact) doubles, and its own decimal
  // conversion is not always correctly rounded: the text is converted again here, and
  // rejected when it is an integer that does not fit or a number beyond a double's range.
  bool on_double(double d, bj::string_view s, bj::error_code& ec) {
    number_.append(s.data(), s.size());
    const std::string text = std::move(number_);
    number_.clear();
    if (text.find_first_of(".eE") == std::string::npos)
      return out_of_range(text, ec);
    double exact = 0;
    const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), exact);
    if (err == std::errc::result_out_of_range) {
      // Underflow (1e-400) is a value of 0 as far as anyone can tell; overflow is an error.
      if (!std::isfinite(d) || std::fabs(d) >= 1)
        return out_of_range(text, ec);
      exact = std::copysign(0.0, d);
    } else if (err != std::errc() || end != text.data() + text.size() || !std::isfinite(exact)) {
      return out_of_range(text, ec);
    }
    stack_.push_double(exact);
    return true;
  }

  bool on_bool(bool b, bj::error_code&) {
    stack_.push_bool(b);
    return true;
  }
  bool on_null(bj::error_code&) {
    stack_.push_null();
    return true;
  }
  // Comments are disabled in the parse options; these only satisfy the interface.
  bool on_comment_part(bj::string_view, bj::error_code&) { return true; }
  bool on_comment(bj::string_view, bj::error_code&) { return true; }

private:
  static bool stop(bj::error_code& ec) {
    ec = bj::make_error_code(bj::error::test_failure);
    return false;
  }
  bool out_of_range(const std::string& text, bj::error_code& ec) {
    reason = "number out of range";
    number_length = text.size();
    return stop(ec);
  }

  bj::value_stack stack_;
  std::vector<std::set<std::string>> keys_; // one per open object
  std::string key_;                         // the key being assembled
  std::string number_;                      // the number being assembled
};

std::string at_byte(const char* what, std::size_t offset) {
  return std::string(what) + " at byte " + std::to_string(offset);
}

bool is_json_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// ---- serializer ----

template <class T> void write_integer(std::string& out, T v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void write_value(std::string& out, const bj::value& v) {
  switch (v.kind()) {
    case bj::kind::null: out += "null"; break;
    case bj::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case bj::kind::int64: write_integer(out, v.get_int64()); break;
    case bj::kind::uint64: write_integer(out, v.get_uint64()); break;
    case bj::kind::double_: write_double(out, v.get_double()); break;
    case bj::kind::string: {
      const auto& s = v.get_string();
      write_string(out, std::string_view(s.data(), s.size()));
      break;
    }
    case bj::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first)
          out.push_back(',');
        first = false;
        write_value(out, e);
      }
      out.push_back(']');
      break;
    }
    case bj::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first)
          out.push_back(',');
        first = false;
        write_string(out, std::string_view(kv.key().data(), kv.key().size()));
        out.push_back(':');
        write_value(out, kv.value());
      }
      out.push_back('}');
      break;
    }
  }
}

} // namespace

std::optional<boost::json::value> parse_strict(std::string_view text, std::string& error) {
  error.clear();
  std::size_t first = 0;
  while (first < text.size() && is_json_whitespace(text[first]))
    ++first;
  if (first == text.size()) {
    error = "empty input: expected a JSON value";
    return std::nullopt;
  }
  // Checked up front, over the whole text, so the message can say what is wrong and where
  // (Boost.JSON reports bad UTF-8 as a plain syntax error).
  if (const auto bad = find_invalid_utf8(text); bad != std::string_view::npos) {
    error = at_byte("invalid UTF-8", bad);
    return std::nullopt;
  }

  bj::parse_options options;
  options.max_depth = max_depth;
  options.allow_comments = false;
  options.allow_trailing_commas = false;
  options.allow_invalid_utf8 = false;

  try {
    bj::basic_parser<strict_handler> parser(options);
    bj::error_code ec;
    // One call with more = false: the parser sees the whole text and fails on a truncated
    // value instead of waiting for more. On failure the count is where parsing stopped.
    const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
    if (ec) {
      strict_handler& h = parser.handler();
      if (!h.reason.empty()) {
        if (h.number_length > 0 && h.number_length <= used)
          error = at_byte(h.reason.c_str(), used - h.number_length);
        else
          error = h.reason;
      } else if (ec == bj::error::too_deep) {
        error = "nesting deeper than " + std::to_string(max_depth) + " levels";
      } else if (ec == bj::error::incomplete) {
        error = "incomplete JSON: the input ends inside a value";
      } else if (ec == bj::error::exponent_overflow) {
        // The parser stops inside the exponent; report where the number starts.
        std::size_t start = used < text.size() ? used : text.size();
        while (start > 0 && std::string_view("0123456789+-.eE").find(text[start - 1]) !=
                                std::string_view::npos)
          --start;
        error = at_byte("number out of range", start);
      } else if (ec == bj::error::illegal_leading_surrogate ||
                 ec == bj::error::illegal_trailing_surrogate ||
                 ec == bj::error::expected_utf16_escape) {
        error = at_byte("invalid \\u escape (unpaired UTF-16 surrogate)", used);
      } else if (ec == bj::error::extra_data) {
        error = at_byte("unexpected data after the JSON value", used);
      } else {
        error = at_byte("malformed JSON", used);
      }
      return std::nullopt;
    }
    if (!parser.done()) {
      error = "incomplete JSON: the input ends inside a value";
      return std::nullopt;
    }
    // The parser stops after the first complete value (and the whitespace after it).
    std::size_t rest = used;
    while (rest < text.size() && is_json_whitespace(text[rest]))
      ++rest;
    if (rest != text.size()) {
      error = at_byte("unexpected data after the JSON value", rest);
      return std::nullopt;
    }
    return parser.handler().release();
  } catch (const std::bad_alloc&) {
    error = "JSON value too large";
  } catch (const std::exception&) {
    error = "malformed JSON";
  }
  return std::nullopt;
}

void write_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // Strings we build are UTF-8; should one not be, its bad bytes become U+FFFD so the
      // response stays valid UTF-8.
      const std::size_t n = utf8_sequence_length(s, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 0xF]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

void write_double(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  // Negative zero as "0": "-0" would read back as the integer 0, which writes as "0".
  if (d == 0)
    d = 0;
  // Fixed notation needs up to ~330 characters (DBL_MAX has 309 digits, the smallest
  // subnormal 324 decimals).
  char buf[400];
  const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  if (r.ec != std::errc()) {
    out += "null"; // cannot happen with this buffer size
    return;
  }
  out.append(buf, r.ptr);
  // A whole number beyond the integers the parser accepts (int64 and uint64) gets a fraction,
  // so that it reads back as the same double instead of being refused as out of range.
  constexpr double integers_end = 18446744073709551616.0;   // 2^64
  constexpr double integers_begin = -9223372036854775808.0; // -2^63
  if ((d >= integers_end || d < integers_begin) && std::find(buf, r.ptr, '.') == r.ptr)
    out += ".0";
}

std::string serialize(const boost::json::value& v) {
  std::string out;
  write_value(out, v);
  return out;
}

} // namespace mts::json

#pragma once
// Strict JSON in and plain JSON out. Parsing never throws: it accepts exactly one UTF-8 JSON
// value, rejects duplicate keys, nesting deeper than max_depth, invalid UTF-8 (and unpaired
// UTF-16 surrogate escapes), numbers beyond a double's range and integers beyond int64/uint64
// (a number with a fraction or exponent is a double, even 1.0). Serialising writes numbers as
// plain integers or decimals (Boost.JSON alone would write 1.5 as 1.5E0).
#include <boost/json/value.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mts::json {

// Deep enough for every request shape (a batch is an array of flat objects: depth 2).
constexpr std::size_t max_depth = 16;

// On failure returns nullopt and sets error to a short human-readable reason, e.g.
// "malformed JSON at byte 17", "duplicate key \"testId\"", "invalid UTF-8 at byte 4",
// "nesting deeper than 16 levels", "number out of range at byte 9". Byte offsets count from 0.
// Errors never quote the input, except a duplicate key that is short printable ASCII.
std::optional<boost::json::value> parse_strict(std::string_view text, std::string& error);

// Compact JSON. Doubles use the shortest decimal that round-trips, never an exponent
// (1.5 -> 1.5, 2.0 -> 2, 1e-7 -> 0.0000001); non-finite doubles become null, -0 becomes 0. A whole double
// beyond the int64/uint64 range gets ".0" (1e21 -> 1000000000000000000000.0), so that what is
// written always parses back, as the same double.
std::string serialize(const boost::json::value& v);

// The serializer's pieces, for writers that stream a large array straight to text instead of
// building a DOM first (drivers/outcome.cpp's survey data); the output is what serialize
// writes for the same value.
void write_string(std::string& out, std::string_view s);
void write_double(std::string& out, double d);

} // namespace mts::json

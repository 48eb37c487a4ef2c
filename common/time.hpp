#pragma once
// UTC time helpers. The whole product keeps times as Unix seconds (UTC) and writes them in the
// API's one format, YYYY-MM-DDTHH:mm:ssZ.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mts {

using unix_seconds = std::int64_t;

unix_seconds now_utc();

// "2019-01-02T04:00:00Z".
std::string format_utc(unix_seconds t);

// "2019-01-02".
std::string format_date(unix_seconds t);

// Strict "YYYY-MM-DDTHH:mm:ssZ" with a real calendar date; nullopt otherwise.
std::optional<unix_seconds> parse_utc(std::string_view text);

// Strict "yyyy-MM-dd" with a real calendar date; the result is that day's 00:00 UTC.
std::optional<unix_seconds> parse_date(std::string_view text);

// Seconds since 00:00 UTC of the day holding t (0 .. 86399).
int seconds_of_day(unix_seconds t);

constexpr unix_seconds seconds_per_day = 86400;

// Calendar arithmetic (proleptic Gregorian), shared by the parsers here, the Elster codec and
// the simulator.
// Days in month m (1..12) of year y.
int days_in_month(int y, int m);
// Days since 1970-01-01 of y-m-d (m 1..12, d 1..days_in_month); negative before 1970.
std::int64_t days_from_civil(int y, int m, int d);
// a / b rounded towards minus infinity (b != 0): the day of a time before 1970 included.
std::int64_t floor_div(std::int64_t a, std::int64_t b);

} // namespace mts

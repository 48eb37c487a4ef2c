#include "common/time.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace mts {
namespace {

bool is_digits(std::string_view s) {
  for (char c : s)
    if (c < '0' || c > '9')
      return false;
  return !s.empty();
}

int to_int(std::string_view s) {
  int v = 0;
  for (char c : s)
    v = v * 10 + (c - '0');
  return v;
}

bool is_leap_year(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

std::optional<std::int64_t> parse_ymd(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-')
    return std::nullopt;
  auto ys = s.substr(0, 4), ms = s.substr(5, 2), ds = s.substr(8, 2);
  if (!is_digits(ys) || !is_digits(ms) || !is_digits(ds))
    return std::nullopt;
  int y = to_int(ys), m = to_int(ms), d = to_int(ds);
  if (y < 1970 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
    return std::nullopt;
  return days_from_civil(y, m, d);
}

} // namespace

int days_in_month(int y, int m) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap_year(y) ? 29 : days[m - 1];
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's formula).
std::int64_t days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    --q;
  return q;
}

unix_seconds now_utc() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

std::string format_utc(unix_seconds t) {
  // Arithmetic rather than gmtime_r + snprintf: a test's outcome formats thousands of survey
  // times, and this is several times faster. Years outside 0000..9999 take the slow path.
  const std::int64_t days = floor_div(t, seconds_per_day);
  const auto sod = static_cast<int>(t - days * seconds_per_day);
  // Civil date of a day number (H. Hinnant's algorithm, the inverse of days_from_civil).
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
  if (y < 0 || y > 9999) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
  }
  std::string out = "0000-00-00T00:00:00Z";
  const auto put2 = [&out](std::size_t at, unsigned v) {
    out[at] = static_cast<char>('0' + v / 10);
    out[at + 1] = static_cast<char>('0' + v % 10);
  };
  put2(0, static_cast<unsigned>(y / 100));
  put2(2, static_cast<unsigned>(y % 100));
  put2(5, m);
  put2(8, d);
  put2(11, static_cast<unsigned>(sod / 3600));
  put2(14, static_cast<unsigned>(sod / 60 % 60));
  put2(17, static_cast<unsigned>(sod % 60));
  return out;
}

std::string format_date(unix_seconds t) { return format_utc(t).substr(0, 10); }

std::optional<unix_seconds> parse_utc(std::string_view s) {
  if (s.size() != 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
    return std::nullopt;
  auto days = parse_ymd(s.substr(0, 10));
  auto hs = s.substr(11, 2), ms = s.substr(14, 2), ss = s.substr(17, 2);
  if (!days || !is_digits(hs) || !is_digits(ms) || !is_digits(ss))
    return std::nullopt;
  int h = to_int(hs), m = to_int(ms), sec = to_int(ss);
  if (h > 23 || m > 59 || sec > 59)
    return std::nullopt;
  return *days * seconds_per_day + h * 3600 + m * 60 + sec;
}

std::optional<unix_seconds> parse_date(std::string_view s) {
  auto days = parse_ymd(s);
  if (!days)
    return std::nullopt;
  return *days * seconds_per_day;
}

int seconds_of_day(unix_seconds t) {
  auto r = t % seconds_per_day;
  if (r < 0)
    r += seconds_per_day;
  return static_cast<int>(r);
}

} // namespace mts

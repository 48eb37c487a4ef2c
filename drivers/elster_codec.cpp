#include "drivers/elster_codec.hpp"

namespace mts::drivers::elster {
namespace {

std::optional<int> hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return std::nullopt;
}

std::uint8_t byte_at(std::string_view s, std::size_t i) { return static_cast<std::uint8_t>(s[i]); }

std::optional<int> bcd_byte(std::uint8_t b) {
  const int hi = b >> 4, lo = b & 0x0F;
  if (hi > 9 || lo > 9)
    return std::nullopt;
  return hi * 10 + lo;
}

char to_bcd_byte(int v) { return static_cast<char>(((v / 10) << 4) | (v % 10)); }

// 10^n as a double: exact up to 10^22, the nearest double beyond.
double pow10(int n) {
  double v = 1;
  for (int i = 0; i < n; ++i)
    v *= 10;
  return v;
}

} // namespace

std::optional<std::string> password_hash(std::string_view password, std::string_view seed_hex) {
  if (password.size() != 8 || seed_hex.size() != 16)
    return std::nullopt;
  const auto seed = from_hex(seed_hex);
  if (!seed)
    return std::nullopt;
  std::uint8_t x[8];
  for (std::size_t i = 0; i < 8; ++i)
    x[i] = static_cast<std::uint8_t>(static_cast<std::uint8_t>(password[i]) ^ byte_at(*seed, i));
  std::uint8_t last = x[7];
  for (auto& v : x) {
    v = static_cast<std::uint8_t>(v + last);
    last = v;
  }
  return to_hex(std::string_view(reinterpret_cast<const char*>(x), 8));
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<std::uint8_t>(c);
    out += digits[b >> 4];
    out += digits[b & 0x0F];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const auto hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (!hi || !lo)
      return std::nullopt;
    out += static_cast<char>((*hi << 4) | *lo);
  }
  return out;
}

std::uint64_t decode_le_uint(std::string_view bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;)
    v = (v << 8) | byte_at(bytes, i);
  return v;
}

std::string encode_le_uint(std::uint64_t value, std::size_t size) {
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += static_cast<char>(value & 0xFF);
    value >>= 8;
  }
  return out;
}

std::optional<std::uint64_t> decode_le_bcd(std::string_view bytes) {
  if (bytes.size() > 8)
    return std::nullopt;
  std::uint64_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) {
    const auto b = bcd_byte(byte_at(bytes, i));
    if (!b)
      return std::nullopt;
    v = v * 100 + static_cast<std::uint64_t>(*b);
  }
  return v;
}

std::string encode_le_bcd(std::uint64_t value, std::size_t size) {
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += to_bcd_byte(static_cast<int>(value % 100));
    value /= 100;
  }
  return out;
}

double scale_decimal(std::uint64_t value, int exponent) {
  const auto v = static_cast<double>(value);
  if (exponent >= 0)
    return v * pow10(exponent);
  return v / pow10(-exponent);
}

std::optional<unix_seconds> decode_clock(std::string_view b) {
  if (b.size() != 7)
    return std::nullopt;
  const auto sec = bcd_byte(byte_at(b, 0)), min = bcd_byte(byte_at(b, 1)), hour = bcd_byte(byte_at(b, 2));
  const auto day = bcd_byte(byte_at(b, 3) & 0x3F), month = bcd_byte(byte_at(b, 4) & 0x1F);
  const auto year = bcd_byte(byte_at(b, 6));
  if (!sec || !min || !hour || !day || !month || !year || *sec > 59 || *min > 59 || *hour > 23 || *month < 1 ||
      *month > 12 || *day < 1 || *day > days_in_month(2000 + *year, *month))
    return std::nullopt;
  const auto days = days_from_civil(2000 + *year, *month, *day);
  return days * seconds_per_day + *hour * 3600 + *min * 60 + *sec;
}

std::string encode_clock(unix_seconds t) {
  const auto iso = format_utc(t); // YYYY-MM-DDTHH:MM:SSZ
  const auto num = [&](std::size_t at, std::size_t n) { return std::stoi(iso.substr(at, n)); };
  std::string out;
  out += to_bcd_byte(num(17, 2));
  out += to_bcd_byte(num(14, 2));
  out += to_bcd_byte(num(11, 2));
  out += to_bcd_byte(num(8, 2));
  out += to_bcd_byte(num(5, 2));
  out += to_bcd_byte(0);
  out += to_bcd_byte(num(0, 4) - 2000);
  return out;
}

const char* system_status_text(int bit) {
  static constexpr const char* texts[32] = {
      "Meter transient reset",       // 0
      "Time synchronisation",        // 1
      "Meter comms write event",     // 2
      nullptr, nullptr, nullptr, nullptr, nullptr, // 3..7 spare
      "Phase A failure",             // 8
      "Phase B failure",             // 9
      "Phase C failure",             // 10
      "Phase A over-current",        // 11
      "Phase B over-current",        // 12
      "Phase C over-current",        // 13
      "Reverse run",                 // 14
      "Meter comms write session",   // 15
      "Module A hot-swap",           // 16
      "Module B hot-swap",           // 17
      "RTC device failure",          // 18
      "RTC not incrementing",        // 19
      "ASIC device failure",         // 20
      "ASIC interrupt B event",      // 21
      "Elapsed battery failure",     // 22
      "Power-up battery failure",    // 23
      "Billing reset",               // 24
      "Last power-down incomplete",  // 25
      "Meter power-down event",      // 26
      "On-board device failure",     // 27
      "On-board transient reset",    // 28
      "On-board battery failure",    // 29
      "Normal register backup used", // 30
      "Backup register set corrupt", // 31
  };
  return bit >= 0 && bit < 32 ? texts[bit] : nullptr;
}

std::vector<std::string> system_status_events(std::uint32_t status) {
  std::vector<std::string> out;
  status &= system_status_mask;
  for (int bit = 31; bit >= 0; --bit)
    if (status & (std::uint32_t{1} << bit))
      if (const char* text = system_status_text(bit))
        out.emplace_back(text);
  return out;
}

std::optional<int> error_number(std::string_view t) {
  if (t.size() == 6 && t.substr(0, 4) == "(ERR" && t[4] >= '0' && t[4] <= '9' && t[5] == ')')
    return t[4] - '0';
  return std::nullopt;
}

std::string error_text(int n) {
  switch (n) {
  case 1:
    return "invalid command";
  case 2:
    return "invalid data identity";
  case 3:
    return "invalid packet number";
  case 4:
    return "meter error 4";
  case 5:
    return "password session timed out";
  case 6:
    return "general communications error";
  default:
    return "meter error " + std::to_string(n);
  }
}

std::string normalise_serial(std::string_view raw) {
  std::string out;
  for (char c : raw)
    if (c != ' ')
      out += c;
  std::size_t zeros = 0;
  while (zeros < out.size() && out[zeros] == '0' && out.size() - zeros > 8)
    ++zeros;
  return out.substr(zeros);
}

const std::array<channel_name, named_channel_count>& channel_names() {
  static const std::array<channel_name, named_channel_count> names = {{{"kWh Import", "kWh"},
                                                                       {"kWh Export", "kWh"},
                                                                       {"kvarh Q1", "kvarh"},
                                                                       {"kvarh Q2", "kvarh"},
                                                                       {"kvarh Q3", "kvarh"},
                                                                       {"kvarh Q4", "kvarh"},
                                                                       {"kVAh", "kVAh"}}};
  return names;
}

bool is_marker(std::uint8_t b) {
  switch (b) {
  case 0xE2:
  case 0xE4:
  case 0xE5:
  case 0xE6:
  case 0xE8:
  case 0xE9:
  case 0xEA:
  case 0xEB:
  case 0xED:
  case 0xFF:
    return true;
  default:
    return false;
  }
}

const char* marker_event_text(record_kind kind) {
  switch (kind) {
  case record_kind::power_up:
    return "Power up";
  case record_kind::power_down:
    return "Power down";
  case record_kind::configuration_change:
    return "Configuration change";
  case record_kind::forced_end_of_demand:
    return "Forced end of demand";
  case record_kind::time_change:
    return "Time change";
  case record_kind::profile_cleared:
    return "Load profile cleared";
  case record_kind::daylight_saving:
    return "Daylight saving change";
  default:
    return nullptr;
  }
}

namespace {
constexpr int integration_table[] = {1, 2, 3, 4, 5, 6, 10, 15, 20, 30, 60};
}

std::optional<int> integration_minutes(std::uint8_t code) {
  const int i = code & 0x0F;
  if (i >= static_cast<int>(std::size(integration_table)))
    return std::nullopt;
  return integration_table[i];
}

std::optional<std::uint8_t> integration_code(int minutes) {
  for (std::size_t i = 0; i < std::size(integration_table); ++i)
    if (integration_table[i] == minutes)
      return static_cast<std::uint8_t>(i);
  return std::nullopt;
}

std::uint16_t channels_from_wire_mask(std::uint16_t m) {
  return static_cast<std::uint16_t>(((m & 0x7F00) >> 1) | (m & 0x7F));
}

std::uint16_t wire_mask_from_channels(std::uint16_t c) {
  return static_cast<std::uint16_t>(((c & 0x3F80) << 1) | (c & 0x7F));
}

int channel_count(std::uint16_t channels) {
  int n = 0;
  for (; channels; channels &= static_cast<std::uint16_t>(channels - 1))
    ++n;
  return n;
}

std::optional<profile_value> decode_profile_value(std::string_view b) {
  if (b.size() != 3)
    return std::nullopt;
  profile_value v;
  for (std::size_t i = 0; i < 3; ++i) {
    const int hi = byte_at(b, i) >> 4, lo = byte_at(b, i) & 0x0F;
    if (hi > 9 || lo > 9)
      return std::nullopt;
    if (i < 2) {
      v.digits = v.digits * 100 + static_cast<std::uint32_t>(hi * 10 + lo);
    } else {
      v.digits = v.digits * 10 + static_cast<std::uint32_t>(hi);
      v.exponent = lo;
    }
  }
  return v;
}

std::string encode_profile_value(std::uint64_t value) {
  int exponent = 0;
  while (value > 99999 && exponent < 9) {
    value /= 10;
    ++exponent;
  }
  const auto d = static_cast<std::uint32_t>(value % 100000);
  std::string out;
  out += static_cast<char>(((d / 10000) << 4) | ((d / 1000) % 10));
  out += static_cast<char>((((d / 100) % 10) << 4) | ((d / 10) % 10));
  out += static_cast<char>(((d % 10) << 4) | static_cast<std::uint32_t>(exponent));
  return out;
}

profile_stream parse_profile_stream(std::string_view bytes, std::uint16_t channels) {
  profile_stream out;
  std::size_t at = 0;
  while (true) {
    if (at >= bytes.size()) {
      out.truncated = true;
      return out;
    }
    const std::uint8_t first = byte_at(bytes, at);
    if (first == 0xFF) {
      out.ended = true;
      return out;
    }
    if (first == 0xE2) {
      out.unsupported = true;
      return out;
    }
    profile_record r;
    if (is_marker(first)) {
      r.kind = static_cast<record_kind>(first);
      const bool day = r.kind == record_kind::new_day || r.kind == record_kind::configuration_change;
      const std::size_t size = day ? 8 : 5;
      if (bytes.size() - at < size) {
        out.truncated = true;
        return out;
      }
      r.timestamp = static_cast<std::uint32_t>(decode_le_uint(bytes.substr(at + 1, 4)));
      if (day) {
        const auto wire = static_cast<std::uint16_t>((byte_at(bytes, at + 5) << 8) | byte_at(bytes, at + 6));
        r.channels = channels_from_wire_mask(wire);
        r.code = byte_at(bytes, at + 7);
        channels = r.channels;
      }
      at += size;
      out.records.push_back(std::move(r));
      continue;
    }
    const std::size_t size = 1 + 3 * static_cast<std::size_t>(channel_count(channels));
    if (bytes.size() - at < size) {
      out.truncated = true;
      return out;
    }
    r.status = first;
    bool ok = true;
    for (std::size_t i = 0; i < size - 1; i += 3) {
      const auto v = decode_profile_value(bytes.substr(at + 1 + i, 3));
      if (!v) {
        ok = false;
        break;
      }
      r.values.push_back(*v);
    }
    at += size;
    if (ok)
      out.records.push_back(std::move(r));
    else
      out.bad_value = true;
  }
}

std::string encode_day_marker(record_kind kind, std::uint32_t timestamp, std::uint16_t channels,
                              std::uint8_t code) {
  std::string out(1, static_cast<char>(kind));
  out += encode_le_uint(timestamp, 4);
  const auto wire = wire_mask_from_channels(channels);
  out += static_cast<char>(wire >> 8);
  out += static_cast<char>(wire & 0xFF);
  out += static_cast<char>(code);
  return out;
}

std::string encode_event_marker(record_kind kind, std::uint32_t timestamp) {
  std::string out(1, static_cast<char>(kind));
  out += encode_le_uint(timestamp, 4);
  return out;
}

std::string encode_data_record(std::uint8_t status, const std::vector<std::uint64_t>& values) {
  std::string out(1, static_cast<char>(status));
  for (auto v : values)
    out += encode_profile_value(v);
  return out;
}

} // namespace mts::drivers::elster

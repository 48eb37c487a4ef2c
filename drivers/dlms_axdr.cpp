// A-XDR Data, COSEM date-time, OBIS codes and units (see dlms_axdr.hpp for the contract).
//
// Decisions (in addition to the header's):
// - bcd is one byte (Green Book: bcd [13] Integer8), kept raw in `bytes`; the notes' table says
//   "var", but no published encoding has a length there, and a length byte read as a value
//   would desynchronise everything after it.
// - compact-array (Green Book: contents-description TypeDescription, then array-contents as an
//   A-XDR octet string of values without tags) decodes to a plain array of its elements. A
//   TypeDescription array is 01 <count:2> <element description>, a structure 02 <count>
//   <descriptions>; inside the packed content an array or structure carries no count (the
//   description has it), variable-length strings keep their length.
// - Encoding a `compact_array` value derives the description from the first element; every
//   element must have that shape (else axdr_error). An empty one is described as null-data.
// - operator== compares what each type carries (two NaN floats are equal, so a decoded tree
//   compares equal to itself).
// - unit_text writes the SI symbols in UTF-8 (°, Ω, m³); codes outside the notes' table and 255
//   (count) are "".
#include "drivers/dlms_axdr.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace mts::drivers::dlms {
namespace {

constexpr std::size_t max_length = std::size_t{1} << 31;

std::uint8_t byte_at(std::string_view s, std::size_t i) { return static_cast<std::uint8_t>(s[i]); }

const char* tag_name(tag t) {
  switch (t) {
  case tag::null_data: return "null-data";
  case tag::array: return "array";
  case tag::structure: return "structure";
  case tag::boolean: return "boolean";
  case tag::bit_string: return "bit-string";
  case tag::double_long: return "double-long";
  case tag::double_long_unsigned: return "double-long-unsigned";
  case tag::octet_string: return "octet-string";
  case tag::visible_string: return "visible-string";
  case tag::utf8_string: return "utf8-string";
  case tag::bcd: return "bcd";
  case tag::integer: return "integer";
  case tag::long_: return "long";
  case tag::unsigned_: return "unsigned";
  case tag::long_unsigned: return "long-unsigned";
  case tag::compact_array: return "compact-array";
  case tag::long64: return "long64";
  case tag::long64_unsigned: return "long64-unsigned";
  case tag::enum_: return "enum";
  case tag::float32: return "float32";
  case tag::float64: return "float64";
  case tag::date_time: return "date-time";
  case tag::date: return "date";
  case tag::time: return "time";
  }
  return "data";
}

bool known_tag(std::uint8_t b) {
  return b <= 6 || b == 9 || b == 10 || (b >= 12 && b <= 13) || (b >= 15 && b <= 27);
}

// Fixed widths of the tags whose value is a fixed number of bytes (0 for null-data); -1 for
// variable or constructed ones.
int fixed_width(tag t) {
  switch (t) {
  case tag::null_data: return 0;
  case tag::boolean:
  case tag::bcd:
  case tag::integer:
  case tag::unsigned_:
  case tag::enum_: return 1;
  case tag::long_:
  case tag::long_unsigned: return 2;
  case tag::double_long:
  case tag::double_long_unsigned:
  case tag::float32: return 4;
  case tag::long64:
  case tag::long64_unsigned:
  case tag::float64: return 8;
  case tag::date_time: return 12;
  case tag::date: return 5;
  case tag::time: return 4;
  default: return -1;
  }
}

bool is_string_kind(tag t) {
  return t == tag::octet_string || t == tag::visible_string || t == tag::utf8_string;
}

void put_be(std::string& out, std::uint64_t v, int width) {
  for (int i = width - 1; i >= 0; --i)
    out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

std::uint64_t get_be(std::string_view in, std::size_t pos, int width) {
  std::uint64_t v = 0;
  for (int i = 0; i < width; ++i)
    v = (v << 8) | byte_at(in, pos + static_cast<std::size_t>(i));
  return v;
}

void need(std::string_view in, std::size_t pos, std::size_t n, const char* what) {
  if (pos > in.size() || in.size() - pos < n)
    throw axdr_error(std::string("A-XDR: truncated ") + what);
}

data make_int(tag t, std::int64_t v) {
  data d;
  d.type = t;
  d.int_value = v;
  d.uint_value = v >= 0 ? static_cast<std::uint64_t>(v) : 0;
  return d;
}

// ---- encoding ----

// The value of a fixed-width kind, without its tag.
void encode_fixed_value(std::string& out, const data& d) {
  switch (d.type) {
  case tag::null_data: return;
  case tag::boolean: out += static_cast<char>(d.int_value != 0 ? 1 : 0); return;
  case tag::integer:
  case tag::unsigned_:
  case tag::enum_: put_be(out, static_cast<std::uint64_t>(d.int_value), 1); return;
  case tag::long_:
  case tag::long_unsigned: put_be(out, static_cast<std::uint64_t>(d.int_value), 2); return;
  case tag::double_long:
  case tag::double_long_unsigned: put_be(out, static_cast<std::uint64_t>(d.int_value), 4); return;
  case tag::long64: put_be(out, static_cast<std::uint64_t>(d.int_value), 8); return;
  case tag::long64_unsigned: put_be(out, d.uint_value, 8); return;
  case tag::float32: {
    const float f = static_cast<float>(d.float_value);
    std::uint32_t bits = 0;
    std::memcpy(&bits, &f, 4);
    put_be(out, bits, 4);
    return;
  }
  case tag::float64: {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &d.float_value, 8);
    put_be(out, bits, 8);
    return;
  }
  case tag::bcd:
  case tag::date_time:
  case tag::date:
  case tag::time: {
    const auto width = static_cast<std::size_t>(fixed_width(d.type));
    if (d.bytes.size() != width)
      throw axdr_error(std::string("A-XDR: ") + tag_name(d.type) + " needs " + std::to_string(width) +
                       " bytes, has " + std::to_string(d.bytes.size()));
    out += d.bytes;
    return;
  }
  default: throw axdr_error(std::string("A-XDR: ") + tag_name(d.type) + " is not a fixed-width type");
  }
}

void encode_bit_string_value(std::string& out, const data& d) {
  if (d.bytes.size() != (d.bit_length + 7) / 8)
    throw axdr_error("A-XDR: bit-string of " + std::to_string(d.bit_length) + " bits needs " +
                     std::to_string((d.bit_length + 7) / 8) + " bytes, has " + std::to_string(d.bytes.size()));
  encode_length(out, d.bit_length);
  out += d.bytes;
}

// The TypeDescription of a compact-array element.
void encode_description(std::string& out, const data& d) {
  out += static_cast<char>(d.type);
  if (d.type == tag::array) {
    if (d.items.size() > 0xFFFF)
      throw axdr_error("A-XDR: compact-array element array longer than 65535");
    put_be(out, d.items.size(), 2);
    if (d.items.empty())
      out += static_cast<char>(tag::null_data);
    else
      encode_description(out, d.items.front());
  } else if (d.type == tag::structure) {
    encode_length(out, d.items.size());
    for (const auto& item : d.items)
      encode_description(out, item);
  } else if (d.type == tag::compact_array) {
    throw axdr_error("A-XDR: a compact-array cannot hold a compact-array");
  }
}

// A value packed inside a compact-array: no tag, no count for arrays and structures.
void encode_packed(std::string& out, const data& d) {
  if (d.type == tag::array || d.type == tag::structure) {
    for (const auto& item : d.items)
      encode_packed(out, item);
  } else if (is_string_kind(d.type)) {
    encode_length(out, d.bytes.size());
    out += d.bytes;
  } else if (d.type == tag::bit_string) {
    encode_bit_string_value(out, d);
  } else {
    encode_fixed_value(out, d);
  }
}

// ---- decoding ----

data decode_at(std::string_view in, std::size_t& pos, int depth);

data decode_fixed_value(tag t, std::string_view in, std::size_t& pos) {
  const int width = fixed_width(t);
  need(in, pos, static_cast<std::size_t>(width), tag_name(t));
  const auto u = get_be(in, pos, width);
  const auto start = pos;
  pos += static_cast<std::size_t>(width);
  switch (t) {
  case tag::null_data: return data::null();
  case tag::boolean: return data::boolean(u != 0);
  case tag::integer: return data::integer8(static_cast<std::int8_t>(u));
  case tag::unsigned_: return data::unsigned8(static_cast<std::uint8_t>(u));
  case tag::enum_: return data::enumerated(static_cast<std::uint8_t>(u));
  case tag::long_: return data::long16(static_cast<std::int16_t>(u));
  case tag::long_unsigned: return data::long_unsigned16(static_cast<std::uint16_t>(u));
  case tag::double_long: return data::double_long32(static_cast<std::int32_t>(u));
  case tag::double_long_unsigned: return data::double_long_unsigned32(static_cast<std::uint32_t>(u));
  case tag::long64: return data::long64(static_cast<std::int64_t>(u));
  case tag::long64_unsigned: return data::long64_unsigned(u);
  case tag::float32: {
    const auto bits = static_cast<std::uint32_t>(u);
    float f = 0;
    std::memcpy(&f, &bits, 4);
    return data::float32(f);
  }
  case tag::float64: {
    double f = 0;
    std::memcpy(&f, &u, 8);
    return data::float64(f);
  }
  default: {
    data d;
    d.type = t;
    d.bytes.assign(in.substr(start, static_cast<std::size_t>(width)));
    return d;
  }
  }
}

data decode_string_value(tag t, std::string_view in, std::size_t& pos) {
  const auto n = decode_length(in, pos);
  need(in, pos, n, tag_name(t));
  data d;
  d.type = t;
  d.bytes.assign(in.substr(pos, n));
  pos += n;
  return d;
}

data decode_bit_string_value(std::string_view in, std::size_t& pos) {
  const auto bits = decode_length(in, pos);
  const auto n = (bits + 7) / 8;
  need(in, pos, n, "bit-string");
  data d;
  d.type = tag::bit_string;
  d.bit_length = bits;
  d.bytes.assign(in.substr(pos, n));
  pos += n;
  return d;
}

// A compact-array TypeDescription.
struct description {
  tag type = tag::null_data;
  std::size_t count = 0;            // array: number of elements
  std::vector<description> members; // array: one (the element); structure: each member
  std::uint64_t min_size = 0;       // fewest content bytes one value takes (capped)
};

constexpr std::uint64_t size_cap = std::uint64_t{1} << 32;

std::uint64_t min_packed_size(tag t) {
  const int w = fixed_width(t);
  return w >= 0 ? static_cast<std::uint64_t>(w) : 1; // strings and bit-strings: a length byte
}

description decode_description(std::string_view in, std::size_t& pos, int depth) {
  if (depth > max_depth)
    throw axdr_error("A-XDR: compact-array description nested deeper than " + std::to_string(max_depth));
  need(in, pos, 1, "compact-array description");
  const auto b = byte_at(in, pos++);
  if (!known_tag(b) || b == static_cast<std::uint8_t>(tag::compact_array))
    throw axdr_error("A-XDR: unknown type " + std::to_string(b) + " in a compact-array description");
  description desc;
  desc.type = static_cast<tag>(b);
  if (desc.type == tag::array) {
    need(in, pos, 2, "compact-array description");
    desc.count = static_cast<std::size_t>(get_be(in, pos, 2));
    pos += 2;
    desc.members.push_back(decode_description(in, pos, depth + 1));
    // Elements that take no content bytes would let a few description bytes demand billions
    // of decoded values (arrays of arrays of null-data).
    if (desc.count > 0 && desc.members.front().min_size == 0)
      throw axdr_error("A-XDR: compact-array element of no size");
    desc.min_size = std::min(size_cap, desc.count * desc.members.front().min_size);
  } else if (desc.type == tag::structure) {
    const auto n = decode_length(in, pos);
    if (n > in.size() - pos)
      throw axdr_error("A-XDR: truncated compact-array description");
    for (std::size_t i = 0; i < n; ++i) {
      desc.members.push_back(decode_description(in, pos, depth + 1));
      desc.min_size = std::min(size_cap, desc.min_size + desc.members.back().min_size);
    }
  } else {
    desc.min_size = min_packed_size(desc.type);
  }
  return desc;
}

data decode_packed(const description& desc, std::string_view in, std::size_t& pos) {
  if (desc.type == tag::array || desc.type == tag::structure) {
    data d;
    d.type = desc.type;
    if (desc.type == tag::array) {
      if (desc.min_size > in.size() - pos)
        throw axdr_error("A-XDR: truncated compact-array contents");
      for (std::size_t i = 0; i < desc.count; ++i)
        d.items.push_back(decode_packed(desc.members.front(), in, pos));
    } else {
      for (const auto& member : desc.members)
        d.items.push_back(decode_packed(member, in, pos));
    }
    return d;
  }
  if (is_string_kind(desc.type))
    return decode_string_value(desc.type, in, pos);
  if (desc.type == tag::bit_string)
    return decode_bit_string_value(in, pos);
  return decode_fixed_value(desc.type, in, pos);
}

data decode_compact_array(std::string_view in, std::size_t& pos, int depth) {
  const auto desc = decode_description(in, pos, depth + 1);
  const auto n = decode_length(in, pos);
  need(in, pos, n, "compact-array contents");
  const auto contents = in.substr(pos, n);
  pos += n;
  data out;
  out.type = tag::array;
  if (!contents.empty() && desc.min_size == 0)
    throw axdr_error("A-XDR: compact-array contents left over after elements of no size");
  std::size_t p = 0;
  while (p < contents.size())
    out.items.push_back(decode_packed(desc, contents, p));
  return out;
}

data decode_at(std::string_view in, std::size_t& pos, int depth) {
  need(in, pos, 1, "data (no tag)");
  const auto b = byte_at(in, pos);
  if (!known_tag(b))
    throw axdr_error("A-XDR: unknown data tag " + std::to_string(b));
  ++pos;
  const auto t = static_cast<tag>(b);
  switch (t) {
  case tag::array:
  case tag::structure: {
    if (depth >= max_depth)
      throw axdr_error("A-XDR: data nested deeper than " + std::to_string(max_depth));
    const auto n = decode_length(in, pos);
    // Every element takes at least its tag byte: a count beyond the input is truncation, found
    // before any memory is reserved for it.
    if (n > in.size() - pos)
      throw axdr_error(std::string("A-XDR: truncated ") + tag_name(t));
    data d;
    d.type = t;
    // Reserved up to a small count only: nested arrays that each claim the rest of the input
    // must not reserve many times the input's size before their elements are read.
    d.items.reserve(std::min<std::size_t>(n, 1024));
    for (std::size_t i = 0; i < n; ++i)
      d.items.push_back(decode_at(in, pos, depth + 1));
    return d;
  }
  case tag::compact_array:
    if (depth >= max_depth)
      throw axdr_error("A-XDR: data nested deeper than " + std::to_string(max_depth));
    return decode_compact_array(in, pos, depth);
  case tag::bit_string: return decode_bit_string_value(in, pos);
  case tag::octet_string:
  case tag::visible_string:
  case tag::utf8_string: return decode_string_value(t, in, pos);
  default: return decode_fixed_value(t, in, pos);
  }
}

// Days since 1970-01-01 -> civil date (proleptic Gregorian), the inverse of days_from_civil.
void civil_from_days(std::int64_t days, int& y, int& m, int& d) {
  // Count in 400-year eras starting 0000-03-01, so the leap day is the last day of a year.
  const std::int64_t z = days + 719468;
  const std::int64_t era = floor_div(z, 146097);
  const std::int64_t doe = z - era * 146097;                                   // 0..146096
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; // 0..399
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);            // 0..365
  const std::int64_t mp = (5 * doy + 2) / 153;                                 // 0 = March
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yoe + era * 400 + (m <= 2 ? 1 : 0));
}

std::optional<int> parse_group(std::string_view s) {
  if (s.empty() || s.size() > 3)
    return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > 255)
    return std::nullopt;
  return v;
}

} // namespace

// ---- data ----

data data::null() { return data{}; }
data data::boolean(bool v) {
  auto d = make_int(tag::boolean, v ? 1 : 0);
  return d;
}
data data::integer8(std::int8_t v) { return make_int(tag::integer, v); }
data data::long16(std::int16_t v) { return make_int(tag::long_, v); }
data data::unsigned8(std::uint8_t v) { return make_int(tag::unsigned_, v); }
data data::long_unsigned16(std::uint16_t v) { return make_int(tag::long_unsigned, v); }
data data::double_long32(std::int32_t v) { return make_int(tag::double_long, v); }
data data::double_long_unsigned32(std::uint32_t v) { return make_int(tag::double_long_unsigned, v); }
data data::long64(std::int64_t v) { return make_int(tag::long64, v); }
data data::long64_unsigned(std::uint64_t v) {
  data d;
  d.type = tag::long64_unsigned;
  d.uint_value = v;
  // int_value only where it is the same number; integer() reports nullopt above INT64_MAX.
  d.int_value = v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ? static_cast<std::int64_t>(v) : 0;
  return d;
}
data data::enumerated(std::uint8_t v) { return make_int(tag::enum_, v); }
data data::float32(float v) {
  data d;
  d.type = tag::float32;
  d.float_value = v;
  return d;
}
data data::float64(double v) {
  data d;
  d.type = tag::float64;
  d.float_value = v;
  return d;
}
data data::octet_string(std::string v) {
  data d;
  d.type = tag::octet_string;
  d.bytes = std::move(v);
  return d;
}
data data::visible_string(std::string v) {
  data d;
  d.type = tag::visible_string;
  d.bytes = std::move(v);
  return d;
}
data data::structure(std::vector<data> items) {
  data d;
  d.type = tag::structure;
  d.items = std::move(items);
  return d;
}
data data::array(std::vector<data> items) {
  data d;
  d.type = tag::array;
  d.items = std::move(items);
  return d;
}

std::optional<std::int64_t> data::integer() const {
  switch (type) {
  case tag::boolean:
  case tag::enum_:
  case tag::integer:
  case tag::long_:
  case tag::unsigned_:
  case tag::long_unsigned:
  case tag::double_long:
  case tag::double_long_unsigned:
  case tag::long64: return int_value;
  case tag::long64_unsigned:
    if (uint_value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return std::nullopt;
    return static_cast<std::int64_t>(uint_value);
  default: return std::nullopt;
  }
}

std::optional<double> data::number() const {
  switch (type) {
  case tag::float32:
  case tag::float64: return float_value;
  case tag::long64_unsigned: return static_cast<double>(uint_value);
  case tag::boolean: return std::nullopt;
  default: {
    const auto i = integer();
    if (!i)
      return std::nullopt;
    return static_cast<double>(*i);
  }
  }
}

bool data::operator==(const data& o) const {
  if (type != o.type)
    return false;
  switch (type) {
  case tag::null_data: return true;
  case tag::array:
  case tag::structure:
  case tag::compact_array: return items == o.items;
  case tag::bit_string: return bit_length == o.bit_length && bytes == o.bytes;
  case tag::octet_string:
  case tag::visible_string:
  case tag::utf8_string:
  case tag::bcd:
  case tag::date_time:
  case tag::date:
  case tag::time: return bytes == o.bytes;
  case tag::float32:
  case tag::float64:
    return float_value == o.float_value || (std::isnan(float_value) && std::isnan(o.float_value));
  case tag::long64_unsigned: return uint_value == o.uint_value;
  default: return int_value == o.int_value;
  }
}

// ---- lengths ----

void encode_length(std::string& out, std::size_t n) {
  if (n < 0x80) {
    out += static_cast<char>(n);
    return;
  }
  int width = 1;
  while (width < 8 && (n >> (8 * width)) != 0)
    ++width;
  out += static_cast<char>(0x80 | width);
  put_be(out, n, width);
}

std::size_t decode_length(std::string_view in, std::size_t& pos) {
  need(in, pos, 1, "length");
  const auto first = byte_at(in, pos);
  if (first < 0x80) {
    ++pos;
    return first;
  }
  const int width = first & 0x7F;
  if (width == 0 || width > 4)
    throw axdr_error("A-XDR: bad length prefix " + std::to_string(first));
  need(in, pos + 1, static_cast<std::size_t>(width), "length");
  const auto n = get_be(in, pos + 1, width);
  if (n > max_length)
    throw axdr_error("A-XDR: length " + std::to_string(n) + " above 2^31");
  pos += 1 + static_cast<std::size_t>(width);
  return static_cast<std::size_t>(n);
}

// ---- Data ----

std::string encode(const data& d) {
  std::string out;
  encode_to(out, d);
  return out;
}

void encode_to(std::string& out, const data& d) {
  switch (d.type) {
  case tag::array:
  case tag::structure:
    out += static_cast<char>(d.type);
    encode_length(out, d.items.size());
    for (const auto& item : d.items)
      encode_to(out, item);
    return;
  case tag::compact_array: {
    out += static_cast<char>(d.type);
    std::string contents;
    if (d.items.empty()) {
      out += static_cast<char>(tag::null_data);
    } else {
      std::string first;
      encode_description(first, d.items.front());
      for (const auto& item : d.items) {
        std::string desc;
        encode_description(desc, item);
        if (desc != first)
          throw axdr_error("A-XDR: compact-array elements differ in type");
        encode_packed(contents, item);
      }
      out += first;
    }
    encode_length(out, contents.size());
    out += contents;
    return;
  }
  case tag::octet_string:
  case tag::visible_string:
  case tag::utf8_string:
    out += static_cast<char>(d.type);
    encode_length(out, d.bytes.size());
    out += d.bytes;
    return;
  case tag::bit_string:
    out += static_cast<char>(d.type);
    encode_bit_string_value(out, d);
    return;
  default:
    out += static_cast<char>(d.type);
    encode_fixed_value(out, d);
    return;
  }
}

data decode(std::string_view in, std::size_t& pos) { return decode_at(in, pos, 0); }

data decode_all(std::string_view in) {
  std::size_t pos = 0;
  auto d = decode(in, pos);
  if (pos != in.size())
    throw axdr_error("A-XDR: " + std::to_string(in.size() - pos) + " bytes after the data");
  return d;
}

// ---- date-time ----

std::optional<cosem_datetime> parse_datetime(std::string_view twelve) {
  if (twelve.size() != 12)
    return std::nullopt;
  cosem_datetime dt;
  dt.year = static_cast<int>(get_be(twelve, 0, 2));
  dt.month = byte_at(twelve, 2);
  dt.day = byte_at(twelve, 3);
  dt.weekday = byte_at(twelve, 4);
  dt.hour = byte_at(twelve, 5);
  dt.minute = byte_at(twelve, 6);
  dt.second = byte_at(twelve, 7);
  dt.hundredths = byte_at(twelve, 8);
  const auto dev = static_cast<std::uint16_t>(get_be(twelve, 9, 2));
  if (dev != 0x8000)
    dt.deviation = static_cast<std::int16_t>(dev);
  dt.clock_status = byte_at(twelve, 11);
  return dt;
}

std::string encode_datetime(const cosem_datetime& dt) {
  std::string out;
  put_be(out, static_cast<std::uint64_t>(dt.year), 2);
  for (int v : {dt.month, dt.day, dt.weekday, dt.hour, dt.minute, dt.second, dt.hundredths})
    out += static_cast<char>(v & 0xFF);
  put_be(out, dt.deviation ? static_cast<std::uint16_t>(static_cast<std::int16_t>(*dt.deviation)) : 0x8000u, 2);
  out += static_cast<char>(dt.clock_status);
  return out;
}

std::optional<cosem_datetime> datetime_of(const data& d) {
  if (d.type != tag::octet_string && d.type != tag::date_time)
    return std::nullopt;
  return parse_datetime(d.bytes);
}

std::optional<unix_seconds> to_unix(const cosem_datetime& dt, deviation_rule rule, int fallback_offset_minutes) {
  if (dt.year < 1 || dt.year > 9999 || dt.month < 1 || dt.month > 12 || dt.day < 1 ||
      dt.day > days_in_month(dt.year, dt.month) || dt.hour < 0 || dt.hour > 23 || dt.minute < 0 ||
      dt.minute > 59 || dt.second < 0 || dt.second > 59)
    return std::nullopt;
  const unix_seconds local = days_from_civil(dt.year, dt.month, dt.day) * seconds_per_day + dt.hour * 3600 +
                             dt.minute * 60 + dt.second;
  // A deviation beyond ±14 h is no real offset: the time cannot be placed.
  if (rule != deviation_rule::ignore && dt.deviation && (*dt.deviation < -840 || *dt.deviation > 840))
    return std::nullopt;
  if (rule == deviation_rule::ignore || !dt.deviation)
    return local - static_cast<unix_seconds>(fallback_offset_minutes) * 60;
  if (rule == deviation_rule::blue_book)
    return local + static_cast<unix_seconds>(*dt.deviation) * 60;
  return local - static_cast<unix_seconds>(*dt.deviation) * 60;
}

cosem_datetime from_unix(unix_seconds t, int offset_minutes, std::optional<int> deviation) {
  const unix_seconds local = t + static_cast<unix_seconds>(offset_minutes) * 60;
  const auto days = floor_div(local, seconds_per_day);
  const auto secs = static_cast<int>(local - days * seconds_per_day);
  cosem_datetime dt;
  civil_from_days(days, dt.year, dt.month, dt.day);
  // 1970-01-01 was a Thursday (4): weekday = (days + 3) mod 7, plus 1, mod taken downwards.
  dt.weekday = static_cast<int>(days + 3 - floor_div(days + 3, 7) * 7) + 1;
  dt.hour = secs / 3600;
  dt.minute = secs / 60 % 60;
  dt.second = secs % 60;
  dt.hundredths = 0;
  dt.deviation = deviation;
  dt.clock_status = 0;
  return dt;
}

// ---- OBIS ----

std::optional<obis> parse_obis(std::string_view text) {
  std::vector<std::string_view> groups;
  const auto dash = text.find('-');
  if (dash != std::string_view::npos) {
    // "A-B:C.D.E[.F]" (also "*F", the IEC 62056-21 spelling of the last separator).
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || colon < dash)
      return std::nullopt;
    groups.push_back(text.substr(0, dash));
    groups.push_back(text.substr(dash + 1, colon - dash - 1));
    std::string_view rest = text.substr(colon + 1);
    while (true) {
      const auto sep = rest.find_first_of(groups.size() == 4 ? ".*" : ".");
      groups.push_back(rest.substr(0, sep));
      if (sep == std::string_view::npos)
        break;
      rest = rest.substr(sep + 1);
    }
    if (groups.size() == 5)
      groups.push_back("255");
  } else {
    std::string_view rest = text;
    while (true) {
      const auto sep = rest.find('.');
      groups.push_back(rest.substr(0, sep));
      if (sep == std::string_view::npos)
        break;
      rest = rest.substr(sep + 1);
    }
  }
  if (groups.size() != 6)
    return std::nullopt;
  obis code{};
  for (std::size_t i = 0; i < 6; ++i) {
    const auto v = parse_group(groups[i]);
    if (!v)
      return std::nullopt;
    code[i] = static_cast<std::uint8_t>(*v);
  }
  return code;
}

std::string obis_text(const obis& code) {
  std::string out;
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (i > 0)
      out += '.';
    out += std::to_string(code[i]);
  }
  return out;
}

std::string obis_bytes(const obis& code) {
  return std::string(reinterpret_cast<const char*>(code.data()), code.size());
}

// ---- units (dlms-more §3.1) ----

std::string unit_text(int code) {
  switch (code) {
  case 1: return "a";
  case 2: return "mo";
  case 3: return "wk";
  case 4: return "d";
  case 5: return "h";
  case 6: return "min";
  case 7: return "s";
  case 8: return "°";
  case 9: return "°C";
  case 10: return "currency";
  case 11: return "m";
  case 12: return "m/s";
  case 13: return "m³";
  case 14: return "m³";
  case 15: return "m³/h";
  case 16: return "m³/h";
  case 17: return "m³/d";
  case 18: return "m³/d";
  case 19: return "l";
  case 20: return "kg";
  case 21: return "N";
  case 22: return "Nm";
  case 23: return "Pa";
  case 24: return "bar";
  case 25: return "J";
  case 26: return "J/h";
  case 27: return "W";
  case 28: return "VA";
  case 29: return "var";
  case 30: return "Wh";
  case 31: return "VAh";
  case 32: return "varh";
  case 33: return "A";
  case 34: return "C";
  case 35: return "V";
  case 36: return "V/m";
  case 37: return "F";
  case 38: return "Ω";
  case 39: return "Ωm²/m";
  case 40: return "Wb";
  case 41: return "T";
  case 42: return "A/m";
  case 43: return "H";
  case 44: return "Hz";
  case 45: return "1/(Wh)";
  case 46: return "1/(varh)";
  case 47: return "1/(VAh)";
  case 48: return "V²h";
  case 49: return "A²h";
  case 50: return "kg/s";
  case 51: return "S";
  case 52: return "K";
  case 53: return "1/(V²h)";
  case 54: return "1/(A²h)";
  case 55: return "1/m³";
  case 56: return "%";
  case 57: return "Ah";
  case 60: return "Wh/m³";
  case 61: return "J/m³";
  case 62: return "mol %";
  case 63: return "g/m³";
  case 64: return "Pa s";
  case 65: return "J/kg";
  case 66: return "g/cm²";
  case 67: return "atm";
  case 70: return "dBm";
  case 71: return "dBµV";
  case 72: return "dB";
  default: return "";
  }
}

} // namespace mts::drivers::dlms

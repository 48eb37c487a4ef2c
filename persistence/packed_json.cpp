#include "persistence/packed_json.hpp"

#include <zlib.h>

#include <cstdint>
#include <limits>

namespace mts::packed_json {
namespace {

constexpr std::size_t header_size = 5;
// The longest text a packed value may claim: far above any survey the limits allow
// (limits.max_survey_days 3660 x 6 channels x 48 readings ~ 60 MB), and a bound on what a
// damaged length field can make a reader allocate.
constexpr std::uint32_t max_text_bytes = 1u << 30;

} // namespace

std::string pack(std::string_view json) {
  if (json.empty())
    return {};
  if (json.size() > std::numeric_limits<std::uint32_t>::max())
    throw std::length_error("packed_json: a text over 4 GiB cannot be packed");
  const auto size = static_cast<std::uint32_t>(json.size());
  uLongf packed_size = compressBound(static_cast<uLong>(json.size()));
  std::string out(header_size + packed_size, '\0');
  out[0] = static_cast<char>(format_zlib);
  for (int i = 0; i < 4; ++i)
    out[1 + i] = static_cast<char>((size >> (8 * i)) & 0xff);
  const int rc = compress2(reinterpret_cast<Bytef*>(out.data() + header_size), &packed_size,
                           reinterpret_cast<const Bytef*>(json.data()), static_cast<uLong>(json.size()), zlib_level);
  if (rc != Z_OK) // only Z_MEM_ERROR is possible with a compressBound buffer
    throw std::bad_alloc();
  out.resize(header_size + packed_size);
  return out;
}

std::string unpack(std::string_view packed) {
  if (packed.empty())
    return {};
  if (static_cast<unsigned char>(packed[0]) != format_zlib)
    throw corrupt("unknown format " + std::to_string(static_cast<unsigned char>(packed[0])));
  if (packed.size() < header_size + 1)
    throw corrupt("truncated header");
  std::uint32_t size = 0;
  for (int i = 0; i < 4; ++i)
    size |= static_cast<std::uint32_t>(static_cast<unsigned char>(packed[1 + i])) << (8 * i);
  if (size == 0 || size > max_text_bytes)
    throw corrupt("implausible length " + std::to_string(size));
  std::string out(size, '\0');
  uLongf out_size = size;
  uLong in_size = static_cast<uLong>(packed.size() - header_size);
  const int rc = uncompress2(reinterpret_cast<Bytef*>(out.data()), &out_size,
                             reinterpret_cast<const Bytef*>(packed.data() + header_size), &in_size);
  if (rc == Z_MEM_ERROR)
    throw std::bad_alloc();
  if (rc != Z_OK)
    throw corrupt(rc == Z_DATA_ERROR ? "damaged zlib stream" : "length mismatch or truncated stream");
  if (out_size != size || in_size != packed.size() - header_size)
    throw corrupt("length mismatch or trailing bytes");
  return out;
}

void pack_outcome(test_outcome& outcome) {
  if (outcome.packed_readings.empty())
    outcome.packed_readings = pack(outcome.readings_json);
  if (outcome.packed_transcript.empty())
    outcome.packed_transcript = pack(outcome.transcript_json);
}

} // namespace mts::packed_json

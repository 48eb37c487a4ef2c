#pragma once
// The compact encoding of the JSON texts stored with a completed test: its readings (~142 kB of
// text for 10 survey days of 6 channels) and its transcript (~17 kB). They are written once,
// read rarely (test-status, test-transcript) and never queried by SQL, so they are stored
// zlib-compressed: 142 kB of readings become ~10 kB, 17 kB of transcript ~3 kB.
//
// Why zlib (RFC 1950, level 6): it is in Debian (zlib1g) and already in the process through
// OpenSSL; its Adler-32 checksum catches a damaged value; decoding 142 kB takes ~0.3 ms. Level
// 6 (the default) gives 10.3 kB for ~3.7 ms of CPU, level 9 9.2 kB for four times the CPU,
// level 1 14 kB. A packed binary form of the survey (delta-coded timestamps, scaled integers)
// would be smaller still but would have to rebuild the drivers' JSON byte for byte, for
// every number format and every field a driver may add: the API answers are the text
// itself, so the text is what is kept.
//
// Format of a packed value (a BLOB):
//   byte 0      format, 0x01 = zlib
//   bytes 1-4   length of the JSON text in bytes, unsigned 32-bit little-endian
//   bytes 5-    the zlib stream (deflate with the Adler-32 of the text)
// The empty text packs to the empty value. A future format takes another first byte; readers
// refuse a format they do not know instead of guessing.
#include "common/model.hpp"

#include <stdexcept>
#include <string>
#include <string_view>

namespace mts::packed_json {

// A packed value that cannot be decoded: unknown format, truncated, checksum or length
// mismatch. what() describes the damage, never the content.
struct corrupt : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr unsigned char format_zlib = 0x01;
constexpr int zlib_level = 6;

// The packed form of `json` ("" for ""). Throws std::length_error beyond 4 GiB.
std::string pack(std::string_view json);

// The text `packed` was made from ("" for ""); throws corrupt when it cannot be decoded.
std::string unpack(std::string_view packed);

// Packs an outcome's readings and transcript into packed_readings / packed_transcript, unless
// they are packed already. The test actor calls it on its own thread when the test ends.
void pack_outcome(test_outcome& outcome);

} // namespace mts::packed_json

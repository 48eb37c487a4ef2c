#pragma once
// Helpers for hand-written IEC 62056-21 byte transcripts: control characters as string
// literals, and a frame with its (hand-computed) BCC byte appended.
#include <string>

#define SOH "\x01"
#define STX "\x02"
#define ETX "\x03"
#define EOT "\x04"

namespace mts::testing {

inline std::string b(std::string s, unsigned char bcc_byte) {
  s += static_cast<char>(bcc_byte);
  return s;
}

inline const std::string ack(1, '\x06');

} // namespace mts::testing

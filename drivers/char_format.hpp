#pragma once
// The character format of a meter line (comsSettings "7E1", "8N1", ...) and the software
// parity codec used when the meter's characters travel over an 8-bit transparent link (a TCP
// serial gateway, a GSM/CSD data call): the head-end adds the parity bit to every character
// it sends and checks and strips it on every character it receives.
//
// Decisions:
// - On an 8-bit link a character of d data bits with parity puts the parity bit at bit d; the
//   stop bits are the link's business. d + parity must fit in 8 bits: 8E1 / 8O1 cannot be
//   carried (software_format reports why).
// - Without parity, bits above d are cleared on send and ignored on receive.
// - A received character whose parity is wrong becomes '\0' (what a POSIX tty with INPCK and
//   neither IGNPAR nor PARMRK delivers): the protocol above sees a corrupted byte, so its own
//   check (BCC, NAK and repeat) deals with it.
#include "drivers/driver.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace mts::drivers {

// "7E1" -> {baud unchanged, 7, 'E', 1}; nothing when malformed (validation normalised it).
std::optional<line_settings> parse_coms_settings(std::string_view text, int baud = 9600);

// "7E1" from the settings (baud not shown).
std::string coms_settings_text(const line_settings& settings);

class parity_codec {
public:
  // Pass-through (8N1).
  parity_codec() = default;
  explicit parity_codec(const line_settings& format) : data_bits_(format.data_bits), parity_(format.parity) {}

  // Why this format cannot travel over an 8-bit link; nothing when it can.
  static std::optional<std::string> unsupported(const line_settings& format);

  // Characters as the meter line carries them (8-bit bytes with the parity bit in place).
  std::string encode(std::string_view characters) const;
  // Bytes from the link as characters; a parity error gives '\0' and is counted.
  std::string decode(std::string_view bytes);

  std::uint64_t parity_errors() const { return parity_errors_; }
  bool transparent() const { return data_bits_ == 8 && parity_ == 'N'; }

private:
  int data_bits_ = 8;
  char parity_ = 'N';
  std::uint64_t parity_errors_ = 0;
};

// The parity bit for `value` (its low data bits) under 'E' or 'O'.
int parity_bit(unsigned value, char parity);

} // namespace mts::drivers

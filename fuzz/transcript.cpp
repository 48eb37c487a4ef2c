// Transcript masking and rendering (actors/transcript.hpp) on bytes from either direction:
// no secret survives masking (in the rendered text or the JSON), rendering is printable ASCII,
// and the transcript stays within its bound. Input: "secret NUL bytes...".
#include "actors/transcript.hpp"
#include "fuzz_check.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts;
  std::string in(reinterpret_cast<const char*>(data), size);
  auto split = in.find('\0');
  if (split == std::string::npos)
    return 0;
  std::string secret = in.substr(0, split);
  std::string bytes = in.substr(split + 1);
  auto masked = mask_secrets(bytes, {secret});
  auto text = printable_bytes(masked);
  for (unsigned char ch : text)
    FUZZ_CHECK(ch >= 0x20 && ch < 0x7f, "rendered text is not printable ASCII");
  // A secret of printable characters other than '<' (which starts a rendered control
  // character) must not be readable in what is stored.
  bool plain = secret.size() >= 4 && secret.find_first_of("<*") == std::string::npos;
  for (unsigned char ch : secret)
    plain = plain && ch >= 0x20 && ch < 0x7f;
  if (plain)
    FUZZ_CHECK(text.find(secret) == std::string::npos, "a secret survived masking");
  attempt_transcript t(1, 1'700'000'000'000, 512, {secret});
  std::size_t half = bytes.size() / 2;
  t.sent(1'700'000'000'010, std::string_view(bytes).substr(0, half));
  t.received(1'700'000'000'020, std::string_view(bytes).substr(half));
  t.end(1'700'000'000'030, "");
  FUZZ_CHECK(t.ended(), "the end was not recorded");
  (void)transcripts_json({t});
  return 0;
}

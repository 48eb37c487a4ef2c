// The IEC 62056-21 incremental frame parser (drivers/iec_frames.hpp) on any bytes in any
// split, on both sides (the meter side expects option selects), with a small size limit so
// oversize handling is reached; and the VDEW date-time digits. Whatever it buffers stays
// within the limit, and every message it returns was made from bytes it was given.
#include "drivers/iec_frames.hpp"
#include "fuzz_check.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts::drivers::iec;
  FuzzedDataProvider in(data, size);
  (void)parse_vdew_time(in.ConsumeRandomLengthString(16));
  const std::size_t limit = in.ConsumeIntegralInRange<std::size_t>(16, 2048);
  frame_parser parser(limit);
  std::size_t fed = 0;
  while (in.remaining_bytes() > 0) {
    parser.expect_option_select(in.ConsumeBool());
    auto chunk = in.ConsumeRandomLengthString(256);
    fed += chunk.size();
    parser.feed(chunk);
    while (auto m = parser.next()) {
      FUZZ_CHECK(m->raw.size() <= fed, "a message longer than its input");
      if (m->kind == message_kind::option_select && m->text.size() == 3)
        (void)mode_c_baud(m->text[1]);
    }
    FUZZ_CHECK(parser.buffered() <= limit + chunk.size(), "the parser buffers beyond its limit");
  }
  return 0;
}

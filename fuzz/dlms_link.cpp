// The DLMS lower layers (drivers/dlms_link.hpp): the HDLC frame parser, the SNRM/UA parameter
// and server address decoders, and the link state machines of both sides (HDLC and the TCP
// wrapper) fed fuzzed bytes between their own calls (open, send an APDU, repeat, close). A
// link never answers with more than a bounded amount, never reassembles an APDU beyond
// max_apdu, and once it reports an error it is not used again (as the driver and meter do).
#include "drivers/dlms_link.hpp"
#include "fuzz_check.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <memory>
#include <string>

namespace {

using namespace mts::drivers::dlms;

constexpr std::size_t max_apdu = 4096;
constexpr std::size_t max_send = 64 * 1024;

// Checks one answer; true when the link may be used again.
bool usable(const link_output& out) {
  FUZZ_CHECK(out.send.size() <= max_send, "a link answer without bound");
  for (const auto& apdu : out.apdus)
    FUZZ_CHECK(apdu.size() <= max_apdu, "an APDU beyond max_apdu");
  return out.error.empty();
}

void play_client(client_link& link, FuzzedDataProvider& in) {
  if (!usable(link.open()))
    return;
  while (in.remaining_bytes() > 0) {
    link_output out;
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: out = link.send_apdu(in.ConsumeRandomLengthString(600)); break;
      case 1: out = link.repeat_last(); break;
      case 2: out = link.close(); break;
      default: out = link.on_bytes(in.ConsumeRandomLengthString(1024));
    }
    if (!usable(out))
      return;
    (void)link.negotiated();
  }
}

void play_server(server_link& link, FuzzedDataProvider& in) {
  while (in.remaining_bytes() > 0) {
    auto out = in.ConsumeIntegralInRange<int>(0, 5) == 0 ? link.send_apdu(in.ConsumeRandomLengthString(600))
                                                           : link.on_bytes(in.ConsumeRandomLengthString(1024));
    if (!usable(out))
      return;
    (void)link.negotiated();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  hdlc_settings hdlc;
  hdlc.max_apdu = max_apdu;
  hdlc.server_address_size = in.PickValueInArray({1, 2, 4});
  wrapper_settings wrapper;
  wrapper.max_apdu = max_apdu;
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: {
      hdlc_frame_parser parser;
      while (in.remaining_bytes() > 0) {
        parser.feed(in.ConsumeRandomLengthString(512));
        while (auto frame = parser.next())
          (void)encode_frame(*frame);
      }
      break;
    }
    case 1: {
      auto text = in.ConsumeRemainingBytesAsString();
      (void)decode_hdlc_parameters(text);
      (void)decode_server_address(text);
      break;
    }
    case 2: play_client(*make_hdlc_client(hdlc), in); break;
    case 3: play_client(*make_wrapper_client(wrapper), in); break;
    case 4: play_server(*make_hdlc_server(hdlc), in); break;
    default: play_server(*make_wrapper_server(wrapper), in); break;
  }
  return 0;
}

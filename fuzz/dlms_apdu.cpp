// Every xDLMS/ACSE PDU decoder (drivers/dlms_apdu.hpp) on any bytes, the first byte picking
// the decoder: meters send AARE, RLRE, GET/ACTION responses, SN read/write responses,
// exception and confirmed-service errors; the simulated meter decodes the requests. A
// malformed PDU may only be refused with apdu_error or axdr_error; the texts of whatever codes
// were decoded are always made.
#include "drivers/dlms_apdu.hpp"
#include "fuzz_check.hpp"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace dlms = mts::drivers::dlms;
  if (size == 0)
    return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 12) {
      case 0: (void)dlms::decode_aarq(in); break;
      case 1: {
        auto a = dlms::decode_aare(in);
        (void)dlms::association_result_text(a.result);
        (void)dlms::association_diagnostic_text(a.diagnostic_source, a.diagnostic);
        if (a.initiate_error)
          (void)dlms::initiate_error_text(a.initiate_error->first, a.initiate_error->second);
        break;
      }
      case 2: (void)dlms::decode_get_request(in); break;
      case 3: {
        auto r = dlms::decode_get_response(in);
        if (r.access_error)
          (void)dlms::data_access_result_text(*r.access_error);
        break;
      }
      case 4: (void)dlms::decode_action_request(in); break;
      case 5: (void)dlms::decode_action_response(in); break;
      case 6: (void)dlms::decode_read_request(in); break;
      case 7: (void)dlms::decode_read_response(in); break;
      case 8: (void)dlms::decode_write_request(in); break;
      case 9: (void)dlms::decode_write_response(in); break;
      case 10: (void)dlms::exception_text(dlms::decode_exception_response(in)); break;
      default: (void)dlms::confirmed_service_error_text(dlms::decode_confirmed_service_error(in)); break;
    }
  } catch (const dlms::apdu_error&) {
  } catch (const dlms::axdr_error&) {
  }
  return 0;
}

// The strict JSON parser (common/json.hpp), the first code every request body reaches. A
// refusal always says why; an accepted value serialises, and what the serializer writes the
// parser accepts again, to the same text.
#include "common/json.hpp"
#include "fuzz_check.hpp"

#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string error;
  auto value = mts::json::parse_strict(std::string_view(reinterpret_cast<const char*>(data), size), error);
  if (!value) {
    FUZZ_CHECK(!error.empty(), "a refusal without a reason");
    return 0;
  }
  auto text = mts::json::serialize(*value);
  std::string again_error;
  auto again = mts::json::parse_strict(text, again_error);
  FUZZ_CHECK(again.has_value(), "the parser refuses what the serializer wrote");
  FUZZ_CHECK(mts::json::serialize(*again) == text, "serialising is not stable");
  return 0;
}

#include "actors/interfaces.hpp"

namespace mts {

caf::error make_error(app_errc code) {
  return {static_cast<std::uint8_t>(code), app_error_category};
}

caf::error make_error(app_errc code, std::string context) {
  return {static_cast<std::uint8_t>(code), app_error_category, caf::make_message(std::move(context))};
}

} // namespace mts

#include "common/model.hpp"

namespace mts {

const char* to_string(test_state s) {
  switch (s) {
    case test_state::pending: return "PENDING";
    case test_state::running: return "RUNNING";
    case test_state::completed: return "COMPLETED";
  }
  return "PENDING";
}

std::optional<test_state> test_state_from_string(const std::string& s) {
  if (s == "PENDING") return test_state::pending;
  if (s == "RUNNING") return test_state::running;
  if (s == "COMPLETED") return test_state::completed;
  return std::nullopt;
}

const char* to_string(token_scope s) {
  return s == token_scope::full ? "MTS API" : "MTS API read-only";
}

std::optional<token_scope> token_scope_from_string(const std::string& s) {
  if (s == "MTS API") return token_scope::full;
  if (s == "MTS API read-only") return token_scope::read_only;
  return std::nullopt;
}

} // namespace mts

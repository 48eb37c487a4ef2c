// What the HTTP layer reads from request headers before any handler: the Authorization
// header's bearer token (http/tokens.hpp) and the client address behind trusted proxies
// (X-Real-IP, X-Forwarded-For; common/client_address.hpp). Input: "authorization NUL peer
// NUL x-real-ip NUL x-forwarded-for NUL trusted networks (comma separated)". The
// address found is always the peer or one the headers named.
#include "common/client_address.hpp"
#include "fuzz_check.hpp"
#include "http/tokens.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace {

std::vector<std::string> fields(const std::uint8_t* data, std::size_t size, std::size_t count) {
  std::vector<std::string> out(count);
  std::size_t i = 0;
  for (std::size_t k = 0; k < size; ++k) {
    if (data[k] == 0 && i + 1 < count)
      ++i;
    else
      out[i] += static_cast<char>(data[k]);
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mts;
  auto f = fields(data, size, 5);
  if (auto token = bearer_token(f[0])) {
    const char* begin = f[0].data();
    FUZZ_CHECK(token->data() >= begin && token->data() + token->size() <= begin + f[0].size(),
               "the token is not inside the header");
  }
  std::string error;
  if (auto trusted = address_set::parse(f[4], error)) {
    // An empty field stands for a header that was not sent.
    std::vector<std::string> real_ip, forwarded_for;
    if (!f[2].empty())
      real_ip.push_back(f[2]);
    if (!f[3].empty())
      forwarded_for.push_back(f[3]);
    auto client = client_address(f[1], real_ip, forwarded_for, *trusted);
    FUZZ_CHECK(client == f[1] || f[2].find(client) != std::string::npos || f[3].find(client) != std::string::npos,
               "a client address that no header gave");
  } else {
    FUZZ_CHECK(!error.empty(), "a refusal without a reason");
  }
  return 0;
}

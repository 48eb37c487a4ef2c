#include "http/tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <memory>
#include <stdexcept>

namespace mts {
namespace {

constexpr char base64url_alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(const unsigned char* data, std::size_t n) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += base64url_alphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0)
    out += base64url_alphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

bool is_base64url_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

} // namespace

std::string generate_token() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    throw std::runtime_error("the random number generator failed");
  auto token = std::string(token_prefix) + base64url(bytes.data(), bytes.size());
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return token;
}

std::string hash_token(std::string_view token) {
  // Fetched once: OpenSSL 3's SHA256() looks the algorithm up on every call, which was most
  // of the cost of hashing a token on every request.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  unsigned int length = 0;
  if (sha256 == nullptr ||
      EVP_Digest(token.data(), token.size(), digest, &length, sha256, nullptr) != 1 ||
      length != sizeof digest)
    throw std::runtime_error("OpenSSL could not compute SHA-256");
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

bool is_token_shaped(std::string_view text) {
  if (text.size() != token_length || text.substr(0, token_prefix.size()) != token_prefix)
    return false;
  for (char c : text.substr(token_prefix.size()))
    if (!is_base64url_char(c))
      return false;
  return true;
}

std::optional<std::string_view> bearer_token(std::string_view value) {
  constexpr std::string_view scheme = "bearer ";
  if (value.size() <= scheme.size())
    return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    char c = value[i];
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
    if (c != scheme[i])
      return std::nullopt;
  }
  auto token = value.substr(scheme.size());
  if (!is_token_shaped(token))
    return std::nullopt;
  return token;
}

token_verifier::token_verifier(std::shared_ptr<thread_reader> reads, used_callback on_used)
  : reads_(std::move(reads)), on_used_(std::move(on_used)) {}

token_verifier::token_verifier(std::string db_path, std::int64_t busy_timeout_ms, used_callback on_used)
  : token_verifier(std::make_shared<thread_reader>(std::move(db_path), busy_timeout_ms), std::move(on_used)) {}

std::optional<token_info> token_verifier::verify(std::string_view token, unix_seconds now) {
  auto hash = hash_token(token);
  auto match = reads_->local().find_token_by_hash(hash);
  if (!match || match->token_hash.size() != hash.size() ||
      CRYPTO_memcmp(match->token_hash.data(), hash.data(), hash.size()) != 0)
    return std::nullopt;
  if (match->info.expires_time <= now)
    return std::nullopt;
  if (on_used_) {
    auto minute = now / 60;
    bool record = false;
    {
      std::lock_guard<std::mutex> guard(used_mutex_);
      auto& last = last_recorded_minute_[match->info.id];
      if (last != minute) {
        last = minute;
        record = true;
      }
    }
    if (record)
      on_used_(match->info.id, now);
  }
  return match->info;
}

} // namespace mts

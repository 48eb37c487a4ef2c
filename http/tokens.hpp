#pragma once
// API access tokens: creation, hashing and verification. A token is "mts_" followed by 256
// random bits in base64url (43 characters). Only its SHA-256 hash is stored; verification
// hashes the presented token, finds the row by hash and compares hashes in constant time.
#include "common/model.hpp"
#include "persistence/thread_reader.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mts {

constexpr std::string_view token_prefix = "mts_";
constexpr std::size_t token_length = 4 + 43;

// A new random token (RAND_bytes); throws std::runtime_error if the RNG fails.
std::string generate_token();

// SHA-256 of the token text, 32 raw bytes.
std::string hash_token(std::string_view token);

// Whether text has the shape of a token (prefix, length, base64url alphabet).
bool is_token_shaped(std::string_view text);

// The token inside an Authorization header value: scheme "Bearer" (any case), one space, the
// token. nullopt for anything else.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// Checks tokens against the database on every request, so a token deleted or expired by the
// `mts token` command stops working at once. Each HTTP thread uses its own read-only
// connection (thread_reader). Use is recorded coarsely through `on_used` (at most once a
// minute per token).
class token_verifier {
public:
  using used_callback = std::function<void(std::int64_t token_id, unix_seconds when)>;
  token_verifier(std::shared_ptr<thread_reader> reads, used_callback on_used);
  // With connections of its own.
  token_verifier(std::string db_path, std::int64_t busy_timeout_ms, used_callback on_used);

  // The token's info if it is known and not expired at `now`; nullopt otherwise. Throws
  // store_error when the database cannot be read.
  std::optional<token_info> verify(std::string_view token, unix_seconds now);

private:
  std::shared_ptr<thread_reader> reads_;
  used_callback on_used_;
  std::mutex used_mutex_;
  std::unordered_map<std::int64_t, unix_seconds> last_recorded_minute_;
};

} // namespace mts

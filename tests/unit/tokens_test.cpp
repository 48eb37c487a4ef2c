// Token creation, hashing, header parsing and verification against a real store.
#include "http/tokens.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <random>
#include <regex>
#include <set>

using namespace mts;

namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

struct temp_db {
  std::filesystem::path dir;
  std::string path;
  temp_db() {
    std::random_device rd;
    dir = std::filesystem::temp_directory_path() / ("mts-token-test-" + std::to_string(rd()) + std::to_string(rd()));
    path = (dir / "mts.db").string();
  }
  ~temp_db() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

} // namespace

TEST_CASE("tokens are 256 random bits in base64url behind a prefix", "[tokens]") {
  std::set<std::string> seen;
  const std::regex shape("^mts_[A-Za-z0-9_-]{43}$");
  for (int i = 0; i < 200; ++i) {
    auto t = generate_token();
    CHECK(std::regex_match(t, shape));
    CHECK(is_token_shaped(t));
    seen.insert(t);
  }
  CHECK(seen.size() == 200);
}

TEST_CASE("the stored hash is SHA-256 of the token text", "[tokens]") {
  // Known answers: SHA-256("abc") and SHA-256("") (FIPS 180-2 examples).
  CHECK(hex(hash_token("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(hash_token("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("Authorization headers are parsed strictly", "[tokens]") {
  const std::string token = "mts_" + std::string(43, 'A');
  CHECK(bearer_token("Bearer " + token) == std::string_view(token));
  CHECK(bearer_token("bearer " + token) == std::string_view(token));
  CHECK(bearer_token("BEARER " + token) == std::string_view(token));
  CHECK_FALSE(bearer_token("Bearer  " + token));       // two spaces
  CHECK_FALSE(bearer_token("Basic " + token));
  CHECK_FALSE(bearer_token("Bearer " + token + " "));  // trailing space
  CHECK_FALSE(bearer_token("Bearer mts_short"));
  CHECK_FALSE(bearer_token("Bearer " + token.substr(0, 46) + "*"));
  CHECK_FALSE(bearer_token("Bearer"));
  CHECK_FALSE(bearer_token(""));
}

TEST_CASE("verification accepts live tokens only and records use once a minute", "[tokens]") {
  temp_db db;
  store writer(db.path, store_mode::read_write, 1000);
  const unix_seconds now = 1700000000;
  auto live = generate_token();
  auto old = generate_token();
  auto live_id = writer.insert_token("live", token_scope::read_only, hash_token(live), now - 10, now + 3600);
  writer.insert_token("old", token_scope::full, hash_token(old), now - 7200, now - 1);

  std::vector<std::pair<std::int64_t, unix_seconds>> used;
  token_verifier verifier(db.path, 1000, [&](std::int64_t id, unix_seconds t) { used.emplace_back(id, t); });

  auto info = verifier.verify(live, now);
  REQUIRE(info);
  CHECK(info->name == "live");
  CHECK(info->scope == token_scope::read_only);
  CHECK_FALSE(verifier.verify(old, now));                 // expired
  CHECK_FALSE(verifier.verify(generate_token(), now));    // unknown
  CHECK_FALSE(verifier.verify(live, now + 3600));         // expires exactly then

  // Use is recorded coarsely: the same minute once, the next minute again.
  verifier.verify(live, now + 1);
  verifier.verify(live, now + 2);
  REQUIRE(used.size() == 1);
  CHECK(used[0] == std::make_pair(live_id, now));
  verifier.verify(live, now + 60 - now % 60 + 1);
  CHECK(used.size() == 2);

  // Deletion takes effect on the next verification (no cache).
  REQUIRE(writer.delete_token("live"));
  CHECK_FALSE(verifier.verify(live, now + 5));
}

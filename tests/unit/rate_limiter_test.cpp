// Fixed-window rate limiting.
#include "http/rate_limiter.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace mts;

TEST_CASE("N calls per window pass, the next is refused with the time to the window's end", "[rate]") {
  rate_limiter limiter(3, 60);
  const unix_seconds start = 1700000040; // a multiple of 60
  CHECK(limiter.hit("a", start).allowed);
  CHECK(limiter.hit("a", start + 10).allowed);
  CHECK(limiter.hit("a", start + 20).allowed);
  auto refused = limiter.hit("a", start + 45);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after == 15);
  // Other keys have their own windows.
  CHECK(limiter.hit("b", start + 45).allowed);
  // The next window starts afresh.
  CHECK(limiter.hit("a", start + 60).allowed);
}

TEST_CASE("retry_after is at least one second", "[rate]") {
  rate_limiter limiter(1, 10);
  CHECK(limiter.hit("k", 1700000000).allowed);
  auto r = limiter.hit("k", 1700000009);
  CHECK_FALSE(r.allowed);
  CHECK(r.retry_after == 1);
}

TEST_CASE("refused calls count, so hammering does not reopen the window early", "[rate]") {
  rate_limiter limiter(2, 100);
  const unix_seconds t = 1700000000;
  limiter.hit("k", t);
  limiter.hit("k", t);
  for (int i = 0; i < 10; ++i)
    CHECK_FALSE(limiter.hit("k", t + 1).allowed);
}

TEST_CASE("concurrent calls never let more than N through in a window", "[rate]") {
  rate_limiter limiter(100, 3600);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        allowed += limiter.hit("shared", 1700000000 - 1700000000 % 3600).allowed;
    });
  for (auto& th : threads)
    th.join();
  CHECK(allowed == 100);
}

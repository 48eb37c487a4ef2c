// The scheduler's queue against a model that states the rules plainly: keep every queued
// test in a list and scan it in (class, id) order for the first one that may start. Random
// operations (seeded, so every run is the same) must give the same choices and counts.
#include "actors/scheduler_queue.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace mts;

namespace {

struct model {
  struct entry {
    bool overnight;
    std::string address;
    bool tcp;
    bool runnable;
  };
  std::map<test_id, entry> queued;  // by id
  std::map<test_id, entry> running; // dispatched

  bool busy(const std::string& address) const {
    return std::any_of(running.begin(), running.end(), [&](const auto& kv) { return kv.second.address == address; });
  }
  std::optional<scheduler_queue::dispatched> next(bool tcp_free, bool modem_free, bool overnight_open) {
    for (bool overnight : {false, true}) {
      if (overnight && !overnight_open)
        break;
      for (auto it = queued.begin(); it != queued.end(); ++it) {
        const auto& e = it->second;
        if (e.overnight != overnight || !e.runnable || busy(e.address) || !(e.tcp ? tcp_free : modem_free))
          continue;
        scheduler_queue::dispatched d{it->first, e.tcp, nullptr};
        running.emplace(*it);
        queued.erase(it);
        return d;
      }
    }
    return std::nullopt;
  }
  std::int64_t count(bool overnight) const {
    return std::count_if(queued.begin(), queued.end(), [&](const auto& kv) { return kv.second.overnight == overnight; });
  }
  std::int64_t tcp_running() const {
    return std::count_if(running.begin(), running.end(), [](const auto& kv) { return kv.second.tcp; });
  }
};

} // namespace

TEST_CASE("the scheduler queue chooses as a scan of the whole queue would", "[scheduler][queue]") {
  const std::vector<std::string> addresses{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "[::1]:7",
                                           "01234", "+4499", "host.example:80"};
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    scheduler_queue q;
    model m;
    test_id next_id = 1;
    std::vector<test_id> known;
    for (int step = 0; step < 3000; ++step) {
      switch (pick(10)) {
        case 0: case 1: case 2: { // submit
          const auto id = next_id++;
          const bool immediate = pick(2) == 0;
          const auto& address = addresses[static_cast<std::size_t>(pick(static_cast<int>(addresses.size())))];
          const bool runnable = pick(10) != 0;
          const bool tcp = address.find(':') != std::string::npos;
          q.add(id, immediate, address, runnable);
          m.queued.emplace(id, model::entry{!immediate, address, tcp, runnable});
          known.push_back(id);
          break;
        }
        case 3: { // cancel (queued, running, or never known)
          const test_id id = known.empty() || pick(5) == 0 ? next_id + 100 : known[static_cast<std::size_t>(pick(static_cast<int>(known.size())))];
          const bool removed = q.remove(id);
          CHECK(removed == (m.queued.erase(id) == 1));
          break;
        }
        case 4: case 5: case 6: { // dispatch
          const bool tcp_free = pick(4) != 0, modem_free = pick(3) != 0, open = pick(2) == 0;
          auto got = q.next(tcp_free, modem_free, open);
          auto want = m.next(tcp_free, modem_free, open);
          REQUIRE(got.has_value() == want.has_value());
          if (got) {
            CHECK(got->id == want->id);
            CHECK(got->tcp == want->tcp);
          }
          break;
        }
        case 7: case 8: case 9: { // a running test ends (or, once in three, goes back to the queue)
          if (m.running.empty()) {
            CHECK_FALSE(q.finish(next_id + 100));
            break;
          }
          auto it = std::next(m.running.begin(), pick(static_cast<int>(m.running.size())));
          const bool back = pick(3) == 0;
          auto tcp = back ? q.requeue(it->first) : q.finish(it->first);
          REQUIRE(tcp);
          CHECK(*tcp == it->second.tcp);
          if (back)
            m.queued.emplace(*it);
          m.running.erase(it);
          break;
        }
      }
      REQUIRE(q.queued_immediate() == m.count(false));
      REQUIRE(q.queued_overnight() == m.count(true));
      REQUIRE(q.running() == static_cast<std::int64_t>(m.running.size()));
      REQUIRE(q.tcp_running() == m.tcp_running());
    }
    for (auto id : known) {
      CHECK(q.is_queued(id) == (m.queued.count(id) == 1));
      CHECK(q.is_running(id) == (m.running.count(id) == 1));
    }
  }
}

TEST_CASE("the scheduler queue: one address, both classes", "[scheduler][queue]") {
  scheduler_queue q;
  q.add(1, false, "10.0.0.1:1", true); // overnight
  q.add(2, true, "10.0.0.1:1", true);  // immediate, same address
  q.add(3, true, "10.0.0.1:1", true);
  // The window open: immediate before overnight, then ids; one at a time for the address.
  auto a = q.next(true, true, true);
  REQUIRE(a);
  CHECK(a->id == 2);
  CHECK_FALSE(q.next(true, true, true));
  q.finish(2);
  auto b = q.next(true, true, true);
  REQUIRE(b);
  CHECK(b->id == 3);
  CHECK(q.remove(1)); // a blocked test can be cancelled
  CHECK_FALSE(q.is_queued(1));
  q.finish(3);
  CHECK_FALSE(q.next(true, true, true));
  CHECK(q.empty());
  // A test the executor cannot run is counted and cancellable, never chosen.
  q.add(4, true, "01234", false);
  CHECK(q.queued_immediate() == 1);
  CHECK_FALSE(q.next(true, true, true));
  CHECK(q.remove(4));
  CHECK(q.empty());
}

TEST_CASE("the scheduler queue: parked tests are asked again on a reload", "[scheduler][queue]") {
  scheduler_queue q;
  q.add(1, true, "01234", false, "ELSTERA1700");      // a modem number, no modems yet
  q.add(2, false, "10.0.0.1:1", false, "NEW-TYPE");   // a type not configured yet
  q.add(3, true, "10.0.0.2:1", true, "IEC62056-21");
  auto first = q.next(true, true, true);
  REQUIRE(first);
  CHECK(first->id == 3);
  CHECK_FALSE(q.next(true, true, true));
  // A reload adds the new type (modems still none): only test 2 is queued again, with its keys.
  std::vector<std::string> asked;
  auto n = q.unpark([&](test_id id, bool immediate, const std::string& type, const std::string& address) {
    asked.push_back(std::to_string(id) + (immediate ? " immediate " : " overnight ") + type + " " + address);
    return type == "NEW-TYPE";
  });
  CHECK(n == 1);
  CHECK(asked == std::vector<std::string>{"1 immediate ELSTERA1700 01234", "2 overnight NEW-TYPE 10.0.0.1:1"});
  CHECK_FALSE(q.next(true, true, false)); // overnight: not while the window is closed
  auto second = q.next(true, true, true);
  REQUIRE(second);
  CHECK(second->id == 2);
  CHECK(q.queued_immediate() == 1); // test 1 stays parked, still counted
  CHECK(q.remove(1));
}

TEST_CASE("the scheduler queue: a test no node with room reaches waits, without holding back the others",
          "[scheduler][queue][nodes]") {
  scheduler_queue q;
  constexpr std::uint64_t node_a = 1, node_b = 2;
  q.add(1, true, "10.1.0.1:1", true); // reached by node a only, which is full
  q.add(2, true, "10.1.0.2:1", true); // the same
  q.add(3, true, "10.2.0.1:1", true); // reached by node b
  q.add(4, true, "10.1.0.1:1", true); // test 1's address
  auto first = q.next(true, true, true);
  REQUIRE(first);
  CHECK(first->id == 1);
  REQUIRE(first->address);
  CHECK(*first->address == "10.1.0.1:1");
  q.wait(1, node_a);
  CHECK(q.is_queued(1));
  CHECK_FALSE(q.is_running(1));
  CHECK(q.waiting() == 1);
  auto second = q.next(true, true, true);
  REQUIRE(second);
  CHECK(second->id == 2);
  q.wait(2, node_a);
  auto third = q.next(true, true, true);
  REQUIRE(third);
  CHECK(third->id == 3); // the waiting ones do not hold it back
  // Test 4 shares test 1's address, which is free while test 1 waits: it is taken, and waits too.
  auto fourth = q.next(true, true, true);
  REQUIRE(fourth);
  CHECK(fourth->id == 4);
  q.wait(4, node_a);
  CHECK_FALSE(q.next(true, true, true));
  CHECK(q.queued_immediate() == 3);

  // Room on node b: nothing of node a's group goes back.
  q.wake(node_b);
  CHECK_FALSE(q.next(true, true, true));
  // Room on node a: the group's first (test 1) goes back, and only it.
  q.wake(node_a);
  auto again = q.next(true, true, true);
  REQUIRE(again);
  CHECK(again->id == 1);
  CHECK_FALSE(q.next(true, true, true));
  CHECK(q.waiting() == 2);

  // A waiting test can be cancelled.
  CHECK(q.remove(2));
  CHECK_FALSE(q.is_queued(2));
  CHECK(q.waiting() == 1);
  // The nodes changed: every waiting test goes back; test 4's address is busy (test 1 runs),
  // so it is blocked behind it and runs once test 1 is finished.
  CHECK(q.wake_all() == 1);
  CHECK_FALSE(q.next(true, true, true));
  q.finish(1);
  auto last = q.next(true, true, true);
  REQUIRE(last);
  CHECK(last->id == 4);
  q.finish(3);
  q.finish(4);
  CHECK(q.empty());
  CHECK(q.waiting() == 0);
}

TEST_CASE("the scheduler queue: waiting tests keep their class and order", "[scheduler][queue][nodes]") {
  scheduler_queue q;
  q.add(1, false, "10.1.0.1:1", true); // overnight
  q.add(2, true, "10.1.0.2:1", true);  // immediate
  q.add(3, true, "10.1.0.3:1", true);
  for (test_id expected : {2, 3, 1}) {
    auto d = q.next(true, true, true);
    REQUIRE(d);
    CHECK(d->id == expected);
    q.wait(d->id, 1);
  }
  CHECK(q.queued_immediate() == 2);
  CHECK(q.queued_overnight() == 1);
  // Woken one at a time: immediate before overnight, then by id.
  for (test_id expected : {2, 3, 1}) {
    q.wake(1);
    auto d = q.next(true, true, true);
    REQUIRE(d);
    CHECK(d->id == expected);
  }
}

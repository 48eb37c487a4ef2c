// The modem pool's reload (SIGHUP): modems not in a call change at once, a modem carrying a
// call keeps its settings until the call ends, removed ones leave when free.
#include "actors/modem_pool.hpp"

#include <catch2/catch.hpp>

using namespace mts;

namespace {

modem_settings gateway_modem(const std::string& name, int port) {
  modem_settings m;
  m.name = name;
  m.gateway = "127.0.0.1:" + std::to_string(port);
  return m;
}

std::vector<std::string> states(modem_pool& pool) {
  std::vector<std::string> out;
  for (const auto& s : pool.status())
    out.push_back(s.name + " " + s.state);
  return out;
}

} // namespace

TEST_CASE("modem pool reload: free modems change at once, busy ones when their call ends", "[modem][reload]") {
  unix_seconds now = 1000;
  modem_pool pool({gateway_modem("a", 4001), gateway_modem("b", 4002), gateway_modem("c", 4003)},
                  std::chrono::seconds(300), [&] { return now; });
  REQUIRE(pool.acquire(7)->name == "a"); // a carries test 7's call
  pool.acquire(8);                       // b carries test 8's
  pool.fault(8, "no dial tone");         // b is out of service
  REQUIRE(states(pool) == std::vector<std::string>{"a busy", "b out of service", "c free"});

  auto a2 = gateway_modem("a", 5001);
  auto b2 = gateway_modem("b", 5002);
  auto notes = pool.reconfigure({b2, a2, gateway_modem("d", 5004)}, std::chrono::seconds(10));
  CHECK(notes == std::vector<std::string>{"modem b: changed and back in service",
                                          "modem a: changed; applies when its call (test 7) ends", "modem d: added",
                                          "modem c: removed"});
  // The configuration's order; a keeps its old gateway while its call lasts.
  CHECK(states(pool) == std::vector<std::string>{"b free", "a busy", "d free"});
  CHECK(pool.held_by(7)->gateway == "127.0.0.1:4001");
  CHECK(pool.acquire(9)->gateway == "127.0.0.1:5002");
  pool.release(7);
  CHECK(pool.acquire(10)->gateway == "127.0.0.1:5001");

  // A removed modem in a call stays until the call ends, and takes no new call meanwhile.
  notes = pool.reconfigure({b2, gateway_modem("d", 5004)}, std::chrono::seconds(10));
  CHECK(notes == std::vector<std::string>{"modem a: removed when its call (test 10) ends"});
  CHECK(states(pool) == std::vector<std::string>{"b busy", "d free", "a busy"});
  pool.fault(10, "no answer to AT");
  CHECK(states(pool) == std::vector<std::string>{"b busy", "d free"});
  // The new cool-down applies to the next fault.
  pool.fault(9, "ERROR to ATZ");
  CHECK(*pool.next_return() == now + 10);
  CHECK_FALSE(pool.empty());
  pool.reconfigure({}, std::chrono::seconds(10));
  CHECK(pool.empty());
}

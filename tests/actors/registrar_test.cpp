// The head's REGISTRAR in isolation, on the test coordinator: which collectors may join (name,
// secret, protocol version, one live collector per name), what service-status will show, and
// a joined collector's loss.
#include "actors/cluster_node.hpp"
#include "actors/registrar.hpp"
#include "http/tokens.hpp"
#include "tests/actors/actor_fixture.hpp"

#include <catch2/catch.hpp>

using namespace mts;
using namespace mts::testing;

// The scheduler's part: what the registrar tells it of each accepted collector. (A named
// namespace and a named function: the sanitizer suite's CAF suppression, docs/testing.md.)
namespace registrar_test {

struct registry_state {
  static inline const char* name = "registry_stand_in";
  std::vector<node_offer> offers;
};

inline node_registry_actor::behavior_type registry_stand_in(node_registry_actor::stateful_pointer<registry_state> self) {
  return {
    [self](join_atom, node_offer& offer, const executor_actor&) { self->state.offers.push_back(std::move(offer)); },
  };
}

} // namespace registrar_test

namespace {

struct registrar_fixture : actor_fixture {
  std::shared_ptr<collector_board> board = std::make_shared<collector_board>();
  registrar_actor reg;
  node_registry_actor registry;

  registrar_fixture() {
    registry = sys.spawn(registrar_test::registry_stand_in);
    registrar_config c;
    c.accepted = {{"site-a", hash_token("secret-of-a")}, {"site-b", hash_token("secret-of-b")}};
    c.board = board;
    c.clock = [this] { return fake_now; };
    c.scheduler = registry;
    reg = sys.spawn(registrar, c);
    sched.run();
  }
  ~registrar_fixture() {
    self->send_exit(reg, caf::exit_reason::user_shutdown);
    self->send_exit(registry, caf::exit_reason::user_shutdown);
    sched.run();
  }

  std::vector<node_offer>& offers() {
    auto ptr = caf::actor_cast<caf::abstract_actor*>(registry);
    return dynamic_cast<node_registry_actor::stateful_base<registrar_test::registry_state>&>(*ptr).state.offers;
  }

  static collector_hello hello(const std::string& name, const std::string& secret) {
    collector_hello h;
    h.name = name;
    h.secret = secret;
    h.protocol_version = cluster_protocol_version;
    h.tcp_sessions = 40;
    h.modems = modem_list(2);
    return h;
  }

  join_verdict join(const collector_hello& h, const executor_actor& exec) {
    auto v = ask<join_verdict>(reg, join_atom::value, h, exec);
    REQUIRE(v);
    return *v;
  }

  collector_status status(const std::string& name) {
    for (auto& c : board->read())
      if (c.name == name)
        return c;
    FAIL("no collector " << name << " on the board");
    return {};
  }
};

} // namespace

TEST_CASE_METHOD(registrar_fixture, "a collector joins with its name, secret and version, and is shown with its offer",
                 "[actors][cluster][registrar]") {
  // Before anyone joins, both accepted collectors are listed as never joined.
  REQUIRE(board->read().size() == 2);
  CHECK_FALSE(status("site-a").connected);
  CHECK(status("site-a").reason == "never joined");

  auto exec_a = caf::actor_cast<executor_actor>(spawn_executor());
  auto v = join(hello("site-a", "secret-of-a"), exec_a);
  CHECK(v.accepted);
  CHECK(v.reason.empty());
  auto a = status("site-a");
  CHECK(a.connected);
  CHECK(a.since == std::optional<unix_seconds>(fake_now));
  CHECK(a.tcp_sessions == 40);
  CHECK(a.modems == std::vector<std::string>{"modem1", "modem2"});
  CHECK_FALSE(status("site-b").connected);
  self->send_exit(exec_a, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(registrar_fixture, "a wrong secret, an unknown name, another version or a second live collector of a name is refused, saying which",
                 "[actors][cluster][registrar]") {
  auto exec = caf::actor_cast<executor_actor>(spawn_executor());
  auto v = join(hello("site-a", "secret-of-b"), exec);
  CHECK_FALSE(v.accepted);
  CHECK(v.reason == "wrong secret");
  CHECK(status("site-a").reason == "refused: wrong secret");
  CHECK_FALSE(status("site-a").connected);

  v = join(hello("site-z", "secret-of-a"), exec);
  CHECK_FALSE(v.accepted);
  CHECK(v.reason == "its name is not in cluster.collectors");
  CHECK(board->read().size() == 2); // an unknown name is not listed

  auto old = hello("site-a", "secret-of-a");
  old.protocol_version = cluster_protocol_version + 1;
  v = join(old, exec);
  CHECK_FALSE(v.accepted);
  CHECK(v.reason == "it speaks protocol version " + std::to_string(cluster_protocol_version + 1) + ", this head " +
                      std::to_string(cluster_protocol_version));

  CHECK(join(hello("site-a", "secret-of-a"), exec).accepted);
  auto other = caf::actor_cast<executor_actor>(spawn_executor());
  v = join(hello("site-a", "secret-of-a"), other);
  CHECK_FALSE(v.accepted);
  CHECK(v.reason.rfind("a collector of that name is joined already", 0) == 0);
  CHECK(status("site-a").connected); // the first one stays
  // The first one itself joining again (it took the head for lost over a link the head still
  // had) is accepted, and the scheduler hears of it again (it then runs its tests elsewhere).
  REQUIRE(offers().size() == 1);
  CHECK(join(hello("site-a", "secret-of-a"), exec).accepted);
  CHECK(offers().size() == 2);
  CHECK(status("site-a").connected);
  for (auto* e : {&exec, &other})
    self->send_exit(*e, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(registrar_fixture, "a joined collector that is lost is shown as gone, and may join again",
                 "[actors][cluster][registrar]") {
  auto first = caf::actor_cast<executor_actor>(spawn_executor());
  REQUIRE(join(hello("site-b", "secret-of-b"), first).accepted);
  fake_now += 30;
  // Its node dies or its link drops: CAF's monitor reports the executor down.
  self->send_exit(first, caf::exit_reason::remote_link_unreachable);
  sched.run();
  auto b = status("site-b");
  CHECK_FALSE(b.connected);
  CHECK(b.since == std::optional<unix_seconds>(fake_now));
  CHECK(b.reason == "left: its link was lost (process gone, network down, or silent past cluster.missed_heartbeats)");
  // Back again (a new process, a new executor).
  auto second = caf::actor_cast<executor_actor>(spawn_executor());
  CHECK(join(hello("site-b", "secret-of-b"), second).accepted);
  CHECK(status("site-b").connected);
  self->send_exit(second, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(registrar_fixture, "an accepted collector's offer and reach go to the scheduler; a bad reach is refused",
                 "[actors][cluster][registrar][nodes]") {
  auto exec_a = caf::actor_cast<executor_actor>(spawn_executor());
  auto bad = hello("site-a", "secret-of-a");
  bad.reach_networks = "10.1.0.0/16, 10.2.0.0/99";
  auto refused = join(bad, exec_a);
  CHECK_FALSE(refused.accepted);
  CHECK(refused.reason.find("10.2.0.0/99") != std::string::npos);
  CHECK(offers().empty());

  auto good = hello("site-a", "secret-of-a");
  good.reach_networks = "10.1.0.0/16";
  good.reach_prefixes = "+44";
  REQUIRE(join(good, exec_a).accepted);
  REQUIRE(offers().size() == 1);
  const auto& offer = offers().front();
  CHECK(offer.name == "site-a");
  CHECK(offer.tcp_sessions == 40);
  CHECK(offer.modems == modem_list(2));
  CHECK(offer.reach.reaches("10.1.2.3:4059"));
  CHECK_FALSE(offer.reach.reaches("10.2.2.3:4059"));
  CHECK(offer.reach.reaches("+441632960000"));
  CHECK_FALSE(offer.reach.reaches("+331234"));
  self->send_exit(exec_a, caf::exit_reason::user_shutdown);
  sched.run();
}

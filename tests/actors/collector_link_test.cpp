// A collector's LINK to its head in isolation, on the test coordinator: CAF's network layer is
// a stand-in that answers connects as each test says, the head's registrar a stand-in that
// accepts or refuses. The pauses between tries are read off the coordinator's clock.
#include "actors/collector_link.hpp"
#include "actors/cluster_node.hpp"
#include "tests/actors/actor_fixture.hpp"

#include <catch2/catch.hpp>

#include <deque>

using namespace mts;
using namespace mts::testing;

// Not in an anonymous namespace: CAF's spawn helper for these stateful stand-ins must have a
// full symbol name, which the sanitizer suite's CAF suppression matches (scripts/ubsan.supp).
namespace link_test {

// What the stand-in network answers to each connect, in order: an actor to hand out (its
// interface as published), or an error when empty.
struct network_state {
  static inline const char* name = "fake_network";
  std::deque<caf::strong_actor_ptr> answers;
  std::set<std::string> interface;
  int connects = 0;
};

caf::io::middleman_actor::behavior_type fake_network(caf::io::middleman_actor::stateful_pointer<network_state> self) {
  using namespace caf;
  return {
    [](publish_atom, uint16_t, strong_actor_ptr&, std::set<std::string>&, std::string&, bool) -> result<uint16_t> {
      return sec::invalid_argument;
    },
    [](open_atom, uint16_t, std::string&, bool) -> result<uint16_t> { return sec::invalid_argument; },
    [self](connect_atom, std::string&, uint16_t) -> result<node_id, strong_actor_ptr, std::set<std::string>> {
      auto& st = self->state;
      st.connects += 1;
      if (st.answers.empty() || !st.answers.front()) {
        if (!st.answers.empty())
          st.answers.pop_front();
        return make_error(sec::cannot_connect_to_node);
      }
      auto hdl = st.answers.front();
      st.answers.pop_front();
      return {node_id{}, hdl, st.interface};
    },
    [](unpublish_atom, const actor_addr&, uint16_t) {},
    [](close_atom, uint16_t) {},
    [](spawn_atom, node_id&, std::string&, message&, std::set<std::string>&) -> result<strong_actor_ptr> {
      return sec::invalid_argument;
    },
    [](get_atom, node_id&) -> result<node_id, std::string, uint16_t> { return sec::invalid_argument; },
  };
}

struct head_state {
  static inline const char* name = "fake_registrar";
  bool accept = true;
  bool answer_pings = true; // false: a head the network no longer reaches
  int pings = 0;
  std::vector<std::string> joins; // names, in order
  std::vector<caf::typed_response_promise<bool>> unanswered;
};

registrar_actor::behavior_type fake_registrar(registrar_actor::stateful_pointer<head_state> self, bool accept) {
  self->state.accept = accept;
  return {
    [self](join_atom, collector_hello& hello, executor_actor&) -> join_verdict {
      self->state.joins.push_back(hello.name);
      if (self->state.accept)
        return {true, {}};
      return {false, "wrong secret"};
    },
    [self](ping_atom) -> caf::result<bool> {
      auto& st = self->state;
      st.pings += 1;
      if (st.answer_pings)
        return true;
      st.unanswered.push_back(self->make_response_promise<bool>());
      return st.unanswered.back();
    },
  };
}

struct link_fixture : actor_fixture {
  caf::io::middleman_actor network = sys.spawn(fake_network);
  mock_executor_actor exec = spawn_executor();

  network_state& net() {
    auto ptr = caf::actor_cast<caf::abstract_actor*>(network);
    return dynamic_cast<caf::io::middleman_actor::stateful_base<network_state>&>(*ptr).state;
  }
  head_state& head_of(const registrar_actor& hdl) {
    auto ptr = caf::actor_cast<caf::abstract_actor*>(hdl);
    return dynamic_cast<registrar_actor::stateful_base<head_state>&>(*ptr).state;
  }

  collector_link_actor start_link(std::chrono::seconds reconnect_max = std::chrono::seconds(8)) {
    net().interface = sys.message_types<registrar_actor>();
    collector_link_config c;
    c.hello.name = "site-a";
    c.hello.secret = "s";
    c.hello.protocol_version = cluster_protocol_version;
    c.head_host = "head.example";
    c.head_port = 7443;
    c.reconnect_max = reconnect_max;
    // Far beyond every pause tested: a request's timeout stays scheduled on the coordinator's
    // clock after its answer, and must not be the timer next_pause() fires.
    c.request_timeout = std::chrono::hours(1);
    c.ping_interval = std::chrono::seconds(2);
    c.ping_timeout = std::chrono::seconds(6);
    c.executor = caf::actor_cast<executor_actor>(exec);
    c.network = network;
    auto link = sys.spawn(collector_link, c);
    sched.run();
    return link;
  }

  // Fires the next timer; answers how far the clock moved.
  std::chrono::milliseconds next_pause() {
    auto before = sched.clock().current_time;
    REQUIRE(sched.trigger_timeout());
    sched.run();
    return std::chrono::duration_cast<std::chrono::milliseconds>(sched.clock().current_time - before);
  }

  void shut(std::initializer_list<caf::actor> actors) {
    for (const auto& a : actors)
      self->send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }
};

} // namespace link_test

using namespace link_test;

TEST_CASE_METHOD(link_fixture, "an unreachable head is tried again after 1, 2, 4 s, up to reconnect_max",
                 "[actors][cluster][link]") {
  auto link = start_link(std::chrono::seconds(5));
  CHECK(net().connects == 1);
  using std::chrono::milliseconds;
  std::vector<milliseconds> pauses;
  for (int i = 0; i < 5; ++i)
    pauses.push_back(next_pause());
  CHECK(pauses == std::vector<milliseconds>{milliseconds(1000), milliseconds(2000), milliseconds(4000),
                                            milliseconds(5000), milliseconds(5000)});
  CHECK(net().connects == 6);
  shut({caf::actor_cast<caf::actor>(link), caf::actor_cast<caf::actor>(network), caf::actor_cast<caf::actor>(exec)});
}

TEST_CASE_METHOD(link_fixture, "a refusal is tried again; an accepted join resets the pause",
                 "[actors][cluster][link]") {
  auto refusing = sys.spawn(fake_registrar, false);
  auto accepting = sys.spawn(fake_registrar, true);
  net().answers = {nullptr, caf::actor_cast<caf::strong_actor_ptr>(refusing),
                   caf::actor_cast<caf::strong_actor_ptr>(accepting)};
  auto link = start_link();
  CHECK(net().connects == 1); // unreachable
  CHECK(next_pause() == std::chrono::seconds(1));
  CHECK(head_of(refusing).joins == std::vector<std::string>{"site-a"});
  CHECK(next_pause() == std::chrono::seconds(2)); // refused: tried again, later
  CHECK(head_of(accepting).joins == std::vector<std::string>{"site-a"});
  // Joined: nothing more is tried, whatever time passes.
  sched.trigger_timeouts();
  sched.run();
  CHECK(net().connects == 3);
  CHECK(executor_state(exec).closes == 0);
  shut({caf::actor_cast<caf::actor>(link), caf::actor_cast<caf::actor>(network), caf::actor_cast<caf::actor>(exec),
        caf::actor_cast<caf::actor>(refusing), caf::actor_cast<caf::actor>(accepting)});
}

TEST_CASE_METHOD(link_fixture, "a lost head ends the collector's running tests before it joins again",
                 "[actors][cluster][link]") {
  auto first = sys.spawn(fake_registrar, true);
  auto second = sys.spawn(fake_registrar, true);
  net().answers = {caf::actor_cast<caf::strong_actor_ptr>(first), caf::actor_cast<caf::strong_actor_ptr>(second)};
  auto link = start_link();
  REQUIRE(head_of(first).joins.size() == 1);
  // The head's node goes away.
  self->send_exit(first, caf::exit_reason::remote_link_unreachable);
  sched.run();
  CHECK(executor_state(exec).closes == 1); // at once, before any new try
  CHECK(net().connects == 1);
  CHECK(next_pause() == std::chrono::seconds(1));
  CHECK(net().connects == 2);
  CHECK(head_of(second).joins == std::vector<std::string>{"site-a"});
  CHECK(executor_state(exec).closes == 1);
  shut({caf::actor_cast<caf::actor>(link), caf::actor_cast<caf::actor>(network), caf::actor_cast<caf::actor>(exec),
        caf::actor_cast<caf::actor>(second)});
}

TEST_CASE_METHOD(link_fixture, "something else published on the head's port is not joined",
                 "[actors][cluster][link]") {
  auto other = sys.spawn(fake_registrar, true);
  auto link = start_link(); // its first connect fails (no answer scripted)
  // Then the port answers with an actor of another interface (another service, another mts).
  net().interface = sys.message_types<executor_actor>();
  net().answers = {caf::actor_cast<caf::strong_actor_ptr>(other)};
  CHECK(next_pause() == std::chrono::seconds(1));
  CHECK(net().connects == 2);
  CHECK(head_of(other).joins.empty());
  CHECK(next_pause() == std::chrono::seconds(2)); // it keeps trying
  CHECK(net().connects == 3);
  shut({caf::actor_cast<caf::actor>(link), caf::actor_cast<caf::actor>(network), caf::actor_cast<caf::actor>(exec),
        caf::actor_cast<caf::actor>(other)});
}

TEST_CASE_METHOD(link_fixture, "a head that stops answering pings is taken for lost: the tests end, then a new join",
                 "[actors][cluster][link]") {
  // A silent network: CAF closes nothing, so only the pings tell. Timers are the coordinator's.
  auto head = sys.spawn(fake_registrar, true);
  net().answers = {caf::actor_cast<caf::strong_actor_ptr>(head), caf::actor_cast<caf::strong_actor_ptr>(head)};
  auto link = start_link();
  REQUIRE(head_of(head).joins.size() == 1);
  // Answered pings every 2 s: nothing happens.
  CHECK(next_pause() == std::chrono::seconds(2));
  CHECK(next_pause() == std::chrono::seconds(2));
  CHECK(head_of(head).pings == 2);
  CHECK(executor_state(exec).closes == 0);
  // The head goes silent: the next ping is sent 2 s later and given up 6 s after that.
  head_of(head).answer_pings = false;
  CHECK(next_pause() == std::chrono::seconds(2));
  CHECK(head_of(head).pings == 3);
  // The timeouts of answered pings stay scheduled and fire harmlessly on the way: count the
  // time until the tests are ended.
  std::chrono::milliseconds silent{0};
  for (int i = 0; i < 10 && executor_state(exec).closes == 0; ++i)
    silent += next_pause();
  CHECK(silent == std::chrono::seconds(6));
  CHECK(executor_state(exec).closes == 1); // the tests end first
  CHECK(net().connects == 1);
  // Then it joins again (here the head answers again).
  head_of(head).answer_pings = true;
  CHECK(next_pause() == std::chrono::seconds(1));
  CHECK(net().connects == 2);
  CHECK(head_of(head).joins.size() == 2);
  shut({caf::actor_cast<caf::actor>(link), caf::actor_cast<caf::actor>(network), caf::actor_cast<caf::actor>(exec),
        caf::actor_cast<caf::actor>(head)});
}

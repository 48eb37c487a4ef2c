#pragma once
// The EXECUTOR: implements executor_actor for the scheduler. Each run request spawns one TEST
// actor (actors/test_runner.hpp), linked to the executor so that shutting the executor down
// ends every running test (and, through their monitors, their connections), and delegates the
// request to it: the test actor answers the scheduler's request directly with the outcome.
// A test actor that dies (an exception) does not take the executor or other tests with it:
// exits of its own test actors are trapped; any other exit message ends the executor. Such a
// test gets no answer; the scheduler's deadline records it as an error.
//
// The executor holds the test actors' configuration, including the connection factory (the
// real one opens TCP links on the reactor; actor tests hand in a fake).
#include "actors/interfaces.hpp"
#include "actors/test_runner.hpp"

#include <caf/actor_addr.hpp>

#include <set>

namespace mts {

struct executor_state {
  static inline const char* name = "executor";
  test_runner_config config;
  std::int64_t spawned = 0; // test actors started, for the logs and tests
  std::set<caf::actor_addr> runners; // live test actors
};

executor_actor::behavior_type executor(executor_actor::stateful_pointer<executor_state> self,
                                       test_runner_config config);

} // namespace mts

#include "actors/executor.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

namespace mts {
namespace {

test_runner_actor spawn_runner(executor_actor::stateful_pointer<executor_state> self) {
  auto runner = self->spawn<caf::linked>(test_runner, self->state.config);
  self->state.spawned += 1;
  self->state.runners.insert(runner.address());
  return runner;
}

} // namespace

executor_actor::behavior_type executor(executor_actor::stateful_pointer<executor_state> self,
                                       test_runner_config config) {
  self->state.config = std::move(config);
  self->set_exit_handler([self](caf::exit_msg& em) {
    auto& runners = self->state.runners;
    if (auto it = runners.find(em.source); it != runners.end()) {
      if (em.reason != caf::exit_reason::normal && em.reason != caf::exit_reason::user_shutdown)
        spdlog::error("executor: a test actor failed: {}", to_string(em.reason));
      runners.erase(it);
      return;
    }
    self->quit(em.reason);
  });
  return {
    [self](run_atom, test_record& rec, modem_broker_actor& broker) -> caf::delegated<test_outcome> {
      return self->delegate(spawn_runner(self), run_atom::value, std::move(rec), std::move(broker));
    },
    [self](run_atom, test_record& rec, modem_broker_actor& broker,
           std::int64_t attempts_used) -> caf::delegated<test_outcome> {
      return self->delegate(spawn_runner(self), run_atom::value, std::move(rec), std::move(broker), attempts_used);
    },
    [self](reload_atom, const std::shared_ptr<const test_runner_config>& next) {
      auto& c = self->state.config;
      c.types = next->types;
      c.max_attempts = next->max_attempts;
      c.retry_delay = next->retry_delay;
      c.connect_timeout = next->connect_timeout;
      c.test_deadline = next->test_deadline;
      c.transcript_max_bytes = next->transcript_max_bytes;
      c.modem_command_timeout = next->modem_command_timeout;
      c.modem_connect_timeout = next->modem_connect_timeout;
      c.modem_guard_time = next->modem_guard_time;
    },
    [self](close_atom) {
      if (!self->state.runners.empty())
        spdlog::warn("executor: ending {} running test(s) at once", self->state.runners.size());
      for (const auto& runner : self->state.runners)
        self->send_exit(runner, caf::exit_reason::user_shutdown);
    },
  };
}

} // namespace mts

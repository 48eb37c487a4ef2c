#include "actors/test_runner.hpp"

#include "drivers/outcome.hpp"
#include "persistence/packed_json.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace mts {
namespace {

using self_ptr = test_runner_actor::stateful_pointer<test_runner_state>;

// Extra time the connect guard gives the reactor's own connect timeout.
constexpr auto connect_guard_grace = std::chrono::seconds(5);
// Extra time the bound on a hang-up after the test deadline gives the modem driver's timers.
constexpr auto hangup_guard_grace = std::chrono::seconds(1);
// Longest wait for the last link to close before the outcome is answered anyway.
constexpr auto close_guard = std::chrono::seconds(5);

drivers::unix_ms now_ms(self_ptr self) { return self->state.config.clock(); }
unix_seconds now_s(self_ptr self) { return now_ms(self) / 1000; }

void start_attempt(self_ptr self, std::int64_t attempt);

// The current attempt's transcript, if transcripts are kept and it has not ended.
attempt_transcript* transcript(self_ptr self) {
  auto& st = self->state;
  if (st.transcripts.empty() || st.transcripts.back().attempt() != st.attempt || st.transcripts.back().ended())
    return nullptr;
  return &st.transcripts.back();
}

void note(self_ptr self, std::string event, std::string detail = {}) {
  if (auto* t = transcript(self))
    t->event(now_ms(self), std::move(event), std::move(detail));
}

// Answers the outcome complete() made, once, and ends the actor.
void answer(self_ptr self) {
  auto& st = self->state;
  if (!st.outcome)
    return;
  st.promise.deliver(std::move(*st.outcome));
  st.outcome.reset();
  self->quit();
}

void complete(self_ptr self) {
  auto& st = self->state;
  if (st.done)
    return;
  st.done = true;
  auto outcome = drivers::make_outcome(st.record.id, st.request, st.last_readings, st.last_finish, now_s(self));
  outcome.connection_start_time = st.connection_start;
  outcome.connection_end_time = st.connection_end;
  outcome.connection_attempts = st.attempt;
  outcome.transcript_json = transcripts_json(st.transcripts);
  // Compressed here, on this actor's thread, not by the one database writer (a thousand tests
  // ending at once would make it compress a thousand results in a row).
  packed_json::pack_outcome(outcome);
  spdlog::info("test {}: {} after {} attempt(s)", st.record.id, outcome.result, st.attempt);
  st.outcome = std::move(outcome);
  // The answer frees the meter's address (and a modem) for the next test, perhaps on another
  // node, so it leaves only once the link is closed: otherwise the meter could see the next
  // session's connection before this one's close. A close is graceful (queued bytes first) and
  // bounded here.
  if (!st.conn || st.conn_ended) {
    answer(self);
    return;
  }
  self->send(st.conn, close_atom::value); // ignored if it is closing already
  self->delayed_send(self, close_guard, deadline_atom::value);
}

// A dial-up attempt's connection times are its call's (not the link to the modem's).
void take_call_times(self_ptr self) {
  auto& st = self->state;
  if (auto started = st.dialer->call_started()) {
    st.connection_start = *started / 1000;
    st.connection_end = st.dialer->call_ended().value_or(now_ms(self)) / 1000;
  }
}

// Dial-up bookkeeping at the end of an attempt: the call's times, and a modem fault taking
// the modem out of service. Returns whether the attempt failed because of the modem.
bool end_dial_up_attempt(self_ptr self, const drivers::finish& end) {
  auto& st = self->state;
  st.connection_start.reset();
  st.connection_end.reset();
  std::optional<std::string> fault;
  if (st.dialer) {
    take_call_times(self);
    if (st.dialer->dropped_line_changes() > 0)
      spdlog::debug("test {}: {} baud switch(es) not possible over the call", st.record.id,
                    st.dialer->dropped_line_changes());
    fault = st.dialer->modem_fault();
  }
  if (!st.link_up)
    fault = end.reason; // the link to the modem did not come up
  if (!fault || !st.modem_name) // no modem_name: none was available, no modem is at fault
    return false;
  // Before the next attempt's request for a modem: messages to one actor keep their order.
  self->send(st.broker, modem_atom::value, fault_atom::value, st.record.id, *fault);
  st.modem_faults += 1;
  return true;
}

// The current attempt ended with `end`: retry or complete.
void end_attempt(self_ptr self, drivers::finish end) {
  auto& st = self->state;
  if (!st.active)
    return;
  if (auto* t = transcript(self))
    t->end(now_ms(self), end.reason);
  st.active = false;
  st.armed_timer.reset();
  if (st.connection_start && !st.connection_end)
    st.connection_end = now_s(self);
  bool modem_fault = false;
  if (st.dial_up)
    modem_fault = end_dial_up_attempt(self, end);
  if (st.driver)
    st.last_readings = st.driver->readings();
  st.driver.reset();
  st.dialer = nullptr;
  st.last_finish = std::move(end);
  if (st.past_deadline) { // the hang-up after the deadline is over: no retry
    complete(self);
    return;
  }
  if (modem_fault && st.attempt - st.modem_faults < st.config.max_attempts) {
    self->send(self, retry_atom::value, st.attempt + 1); // at once, on another modem
    return;
  }
  if (st.last_finish.failure == drivers::failure_kind::transient &&
      st.attempt - st.modem_faults < st.config.max_attempts) {
    spdlog::info("test {}: attempt {} failed ({}); retrying in {} s", st.record.id, st.attempt,
                 st.last_finish.reason, st.config.retry_delay.count() / 1000);
    self->delayed_send(self, st.config.retry_delay, retry_atom::value, st.attempt + 1);
    return;
  }
  complete(self);
}

void execute(self_ptr self, drivers::actions acts) {
  auto& st = self->state;
  for (auto& act : acts) {
    if (!st.active)
      return;
    if (auto* send = std::get_if<drivers::send_bytes>(&act)) {
      if (auto* t = transcript(self))
        t->sent(now_ms(self), send->data);
      self->send(st.conn, send_atom::value, std::move(send->data));
    } else if (auto* arm = std::get_if<drivers::arm_timer>(&act)) {
      st.armed_timer = arm->id;
      self->delayed_send(self, arm->after, timer_atom::value, st.attempt, arm->id);
    } else if (std::holds_alternative<drivers::cancel_timer>(act)) {
      st.armed_timer.reset();
    } else if (std::holds_alternative<drivers::change_line>(act)) {
      // A TCP link has no line settings.
    } else if (auto* fin = std::get_if<drivers::finish>(&act)) {
      if (st.conn)
        self->send(st.conn, close_atom::value);
      end_attempt(self, std::move(*fin));
      return;
    }
  }
}

bool current(self_ptr self, std::uint64_t tag) {
  return self->state.active && static_cast<std::int64_t>(tag) == self->state.attempt;
}

// A dial-up attempt with its modem: the AT decorator around the meter driver, the link to the
// modem.
void dial(self_ptr self, std::int64_t attempt, const modem_settings& modem) {
  auto& st = self->state;
  st.modem_name = modem.name;
  drivers::line_settings format = st.type->initial_line;
  if (st.record.request.coms_settings)
    if (auto parsed = drivers::parse_coms_settings(*st.record.request.coms_settings))
      format = *parsed;
  const bool on_port = !modem.device.empty() && !modem.software_parity;
  drivers::at_modem_config cfg;
  cfg.number = st.record.request.remote_address;
  cfg.dial_prefix = modem.dial_prefix;
  cfg.init_strings = modem.init;
  cfg.command_timeout = st.config.modem_command_timeout;
  cfg.connect_timeout = st.config.modem_connect_timeout;
  cfg.guard_time = st.config.modem_guard_time;
  cfg.call_format = on_port ? drivers::line_settings{format.baud, 8, 'N', 1} : format;
  auto dialer = drivers::make_at_modem_driver(std::move(st.driver), cfg);
  st.dialer = dialer.get();
  st.driver = std::move(dialer);
  const auto port_format = on_port ? format : drivers::line_settings{format.baud, 8, 'N', 1};
  spdlog::info("test {}: attempt {} dials {} on modem {}", st.record.id, attempt, cfg.number, modem.name);
  st.conn_ended = false;
  st.conn = st.config.open_modem_link(self->system(), link_client_actor{self}, static_cast<std::uint64_t>(attempt),
                                      modem, port_format, st.config.connect_timeout);
  self->monitor(st.conn);
  self->delayed_send(self, st.config.connect_timeout + connect_guard_grace, deadline_atom::value, attempt);
}

// A dial-up attempt starts by asking the broker for the test's modem.
void start_dial_up_attempt(self_ptr self, std::int64_t attempt) {
  auto& st = self->state;
  st.modem_name.reset();
  st.conn = nullptr;
  self->request(st.broker, modem_request_timeout, modem_atom::value, get_atom::value, st.record.id)
    .then(
      [self, attempt](modem_grant& grant) {
        if (!current(self, static_cast<std::uint64_t>(attempt))) // the test deadline ended it
          return;
        if (!grant.modem) {
          end_attempt(self, {drivers::failure_kind::transient, "no modem available"});
          return;
        }
        dial(self, attempt, *grant.modem);
      },
      [self, attempt](caf::error& err) {
        if (!current(self, static_cast<std::uint64_t>(attempt)))
          return;
        spdlog::warn("test {}: no answer to its request for a modem: {}", self->state.record.id, to_string(err));
        end_attempt(self, {drivers::failure_kind::transient, "no modem available (the scheduler did not answer)"});
      });
}

void start_attempt(self_ptr self, std::int64_t attempt) {
  auto& st = self->state;
  if (st.done || st.active)
    return;
  st.attempt = attempt;
  st.active = true;
  st.link_up = false;
  st.armed_timer.reset();
  st.connection_start.reset();
  st.connection_end.reset();
  st.last_readings = {};
  st.request = make_session_request(st.record.request, now_s(self));
  st.request.over_modem = st.dial_up;
  st.driver = st.type->make_driver(st.request);
  if (st.config.transcript_max_bytes > 0) {
    std::vector<std::string> secrets;
    if (st.record.request.password && !st.record.request.password->empty())
      secrets.push_back(*st.record.request.password);
    st.transcripts.emplace_back(attempt, now_ms(self), st.config.transcript_max_bytes, std::move(secrets));
  }
  if (st.dial_up) {
    note(self, "dialling", st.record.request.remote_address);
    start_dial_up_attempt(self, attempt);
    return;
  }
  note(self, "connecting", st.target.host + ":" + std::to_string(st.target.port));
  st.conn_ended = false;
  st.conn = st.config.connect(self->system(), link_client_actor{self}, static_cast<std::uint64_t>(attempt),
                              st.target, st.config.connect_timeout);
  self->monitor(st.conn);
  self->delayed_send(self, st.config.connect_timeout + connect_guard_grace, deadline_atom::value, attempt);
}

// Runs the test; a run that continues one lost with its node starts at attempt
// attempts_used + 1, so the attempts of both count against max_attempts.
caf::result<test_outcome> run(self_ptr self, test_record rec, modem_broker_actor broker, std::int64_t attempts_used) {
  auto& st = self->state;
  if (st.started)
    return caf::make_error(caf::sec::invalid_argument, "a test actor runs one test");
  st.started = true;
  st.record = std::move(rec);
  st.broker = std::move(broker);
  st.promise = self->make_response_promise<test_outcome>();
  const bool have_modems = st.broker && st.config.open_modem_link;
  if (auto why = why_not_runnable(st.record.request, st.config.types.get(), have_modems)) {
    st.request = make_session_request(st.record.request, now_s(self));
    st.last_finish = {drivers::failure_kind::permanent, *why};
    complete(self);
    return st.promise;
  }
  st.type = st.config.types->find(st.record.request.meter_type);
  if (auto tcp = parse_tcp_address(st.record.request.remote_address))
    st.target = *tcp;
  else
    st.dial_up = true;
  if (st.config.test_deadline.count() > 0)
    self->delayed_send(self, st.config.test_deadline, deadline_atom::value);
  start_attempt(self, std::max<std::int64_t>(attempts_used, 0) + 1);
  return st.promise;
}

} // namespace

drivers::session_request make_session_request(const test_request& request, unix_seconds now) {
  drivers::session_request out;
  out.outstation_address = request.outstation_address;
  out.password = request.password;
  out.expected_serial = request.serial_number;
  if (request.survey_days > 0 && request.survey_date) {
    if (auto from = parse_date(*request.survey_date)) {
      out.survey_from = *from;
      out.survey_to = std::max(*from, std::min(*from + request.survey_days * seconds_per_day, now));
    }
  }
  return out;
}

std::optional<std::string> why_not_runnable(const test_request& request, const meter_type_registry* types,
                                            bool have_modems) {
  auto type = types ? types->find(request.meter_type) : nullptr;
  if (!type || !type->make_driver)
    return "meter type " + request.meter_type + " is not supported yet";
  if (!have_modems && !parse_tcp_address(request.remote_address))
    return std::string("modem (telephone number) addresses need a modem ([[modem]] in the configuration)");
  return std::nullopt;
}

test_runner_actor::behavior_type test_runner(test_runner_actor::stateful_pointer<test_runner_state> self,
                                             test_runner_config config) {
  self->state.config = std::move(config);
  if (!self->state.config.clock)
    self->state.config.clock = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
    };
  // A connection actor that ends without its terminal event: the line dropped.
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (!st.conn || dm.source != st.conn.address())
      return;
    st.conn_ended = true;
    if (st.done) { // the outcome was waiting for this link to close
      answer(self);
      return;
    }
    if (!st.active)
      return;
    note(self, "link down", "the connection ended");
    if (!st.link_up) {
      end_attempt(self, {drivers::failure_kind::transient, "cannot connect: connection lost"});
    } else {
      st.connection_end = now_s(self);
      execute(self, st.driver->on_link_down(now_ms(self)));
      end_attempt(self, {drivers::failure_kind::transient, "line dropped"});
    }
  });
  // A bug (an exception from a driver or a factory) must not leave the test unanswered: its
  // slot and its meter's address would stay taken until the scheduler's deadline (30 min by
  // default). The test ends at once with a permanent error; the details go to the log only.
  // The connection actor closes its link when it sees this actor end.
  self->set_exception_handler([self](caf::scheduled_actor*, std::exception_ptr& eptr) -> caf::error {
    auto& st = self->state;
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("test {}: internal error in attempt {}: {}", st.record.id, st.attempt, what);
    if (st.started && !st.done) {
      if (st.active && st.connection_start && !st.connection_end)
        st.connection_end = now_s(self);
      st.active = false;
      st.last_finish = {drivers::failure_kind::permanent, "internal error in the test engine (see the server log)"};
      complete(self);
    }
    return caf::none;
  });
  return {
    [self](run_atom, test_record& rec, modem_broker_actor& broker) -> caf::result<test_outcome> {
      return run(self, std::move(rec), std::move(broker), 0);
    },
    [self](run_atom, test_record& rec, modem_broker_actor& broker,
           std::int64_t attempts_used) -> caf::result<test_outcome> {
      return run(self, std::move(rec), std::move(broker), attempts_used);
    },
    [self](link_up_atom, std::uint64_t tag) {
      auto& st = self->state;
      if (!current(self, tag) || st.link_up)
        return;
      st.link_up = true;
      if (!st.dial_up) // a dial-up connection starts at CONNECT (the decorator knows when)
        st.connection_start = now_s(self);
      note(self, "link up");
      execute(self, st.driver->on_link_up(now_ms(self)));
    },
    [self](bytes_atom, std::uint64_t tag, std::string& bytes) {
      if (!current(self, tag) || !self->state.link_up)
        return;
      if (auto* t = transcript(self))
        t->received(now_ms(self), bytes);
      execute(self, self->state.driver->on_bytes(bytes, now_ms(self)));
    },
    [self](link_down_atom, std::uint64_t tag, std::string& reason) {
      auto& st = self->state;
      if (!current(self, tag))
        return;
      note(self, "link down", reason);
      if (!st.link_up) { // closed before it came up
        end_attempt(self, {drivers::failure_kind::transient, "cannot connect: connection closed"});
        return;
      }
      st.connection_end = now_s(self);
      execute(self, st.driver->on_link_down(now_ms(self)));
      // A driver always finishes on link down; make sure the attempt ends anyway.
      end_attempt(self, {drivers::failure_kind::transient, "line dropped"});
    },
    [self](conn_fail_atom, std::uint64_t tag, std::string& reason) {
      auto& st = self->state;
      if (!current(self, tag))
        return;
      note(self, "connect failed", reason);
      if (st.dial_up) { // the link to the modem itself: the modem is at fault
        end_attempt(self, {drivers::failure_kind::transient,
                           "cannot reach modem " + st.modem_name.value_or("?") + ": " + reason});
        return;
      }
      end_attempt(self, {drivers::failure_kind::transient, "cannot connect: " + reason});
    },
    [self](timer_atom, std::int64_t attempt, std::uint64_t id) {
      auto& st = self->state;
      if (!st.active || attempt != st.attempt || st.armed_timer != id)
        return;
      st.armed_timer.reset();
      auto acts = st.driver->on_timer(id, now_ms(self));
      // A timer that makes the driver send was a reaction delay (the send shows it); one that
      // does not is worth seeing (a response timeout, the end of the baud switch delay).
      if (transcript(self) && std::none_of(acts.begin(), acts.end(), [](const auto& a) {
            return std::holds_alternative<drivers::send_bytes>(a);
          }))
        note(self, "timer");
      execute(self, std::move(acts));
    },
    [self](retry_atom, std::int64_t attempt) { start_attempt(self, attempt); },
    [self](deadline_atom, std::int64_t attempt) {
      auto& st = self->state;
      if (!current(self, static_cast<std::uint64_t>(attempt)) || st.link_up)
        return;
      if (st.conn)
        self->send(st.conn, close_atom::value);
      end_attempt(self, {drivers::failure_kind::transient, "cannot connect: connection timed out"});
    },
    [self](deadline_atom) {
      auto& st = self->state;
      if (st.done) { // the close guard: the link did not report its end in time
        answer(self);
        return;
      }
      if (st.active && st.dialer && st.link_up && !st.past_deadline) {
        // A call (or a dialling) is hung up as on every other path, then the test completes
        // with what it read; the hang-up is bounded: this message comes again after it.
        st.past_deadline = true;
        const auto bound = st.dialer->longest_hangup() + hangup_guard_grace;
        execute(self, st.dialer->abort({drivers::failure_kind::transient, "test deadline exceeded"}, now_ms(self)));
        if (!st.done)
          self->delayed_send(self, bound, deadline_atom::value);
        return;
      }
      if (st.active) {
        if (auto* t = transcript(self))
          t->end(now_ms(self), "test deadline exceeded");
        if (st.conn) // none while a dial-up attempt waits for its modem
          self->send(st.conn, close_atom::value); // a serial modem link drops DTR as it closes
        if (st.dialer)
          take_call_times(self);
        if (st.connection_start && !st.connection_end)
          st.connection_end = now_s(self);
        if (st.driver)
          st.last_readings = st.driver->readings();
        st.active = false;
      }
      st.last_finish = {drivers::failure_kind::transient, "test deadline exceeded"};
      complete(self);
    },
  };
}

} // namespace mts

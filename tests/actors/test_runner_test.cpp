// The TEST actor (and the EXECUTOR that spawns it) in isolation, on CAF's deterministic test
// coordinator: a fake connection actor hosts a simulated IEC 62056-21 meter in-process and
// pipes bytes between it and the test actor; timers (driver, meter, retry) are CAF timers
// fired by the coordinator, so a 5 s response timeout or a 60 s retry delay takes no time.
#include "actors/executor.hpp"
#include "actors/test_runner.hpp"
#include "drivers/outcome.hpp"
#include "persistence/packed_json.hpp"
#include "sim/iec_meter.hpp"
#include "sim/modem.hpp"
#include "sim/modem_server.hpp"
#include "tests/actors/actor_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <map>

using namespace mts;
using namespace mts::testing;

namespace {

// What the fake connection of one attempt does.
struct fake_link {
  bool refuse = false;          // the connect fails ("connection refused")
  sim::meter_faults faults;     // otherwise: a meter with these faults answers
  // A close asked for by the test actor takes this long (a slow flush); `closed` is set when
  // the link has ended.
  std::chrono::milliseconds close_delay{0};
  std::shared_ptr<bool> closed = std::make_shared<bool>(false);
};

// The fake connection's interface: the real one's plus the hosted meter's timer.
using fake_connection_actor = connection_actor::extend<caf::reacts_to<timer_atom, std::int64_t, std::uint64_t>>;

struct fake_connection_state {
  static inline const char* name = "fake_connection";
  std::unique_ptr<sim::iec_meter> meter;
  link_client_actor owner;
  std::uint64_t tag = 0;
  std::function<drivers::unix_ms()> clock;
  bool closed = false;
  bool closing = false; // a slow close under way
  fake_link link;
};

using fake_ptr = fake_connection_actor::stateful_pointer<fake_connection_state>;

void fake_close(fake_ptr self, const std::string& reason) {
  if (self->state.closed)
    return;
  self->state.closed = true;
  *self->state.link.closed = true;
  self->send(self->state.owner, link_down_atom::value, self->state.tag, reason);
  self->quit();
}

// The timer id of a slow close (the hosted meter's are small numbers).
constexpr std::uint64_t slow_close_timer = ~std::uint64_t{0};

// Either side ends the link: at once, or after the link's close_delay.
void begin_close(fake_ptr self, const std::string& reason) {
  auto& st = self->state;
  if (st.link.close_delay.count() == 0) {
    fake_close(self, reason);
  } else if (!st.closed && !st.closing) {
    st.closing = true;
    self->delayed_send(self, st.link.close_delay, timer_atom::value, std::int64_t{0}, slow_close_timer);
  }
}

void fake_execute(fake_ptr self, drivers::actions acts) {
  for (auto& act : acts) {
    if (self->state.closed)
      return;
    if (auto* send = std::get_if<drivers::send_bytes>(&act))
      self->send(self->state.owner, bytes_atom::value, self->state.tag, std::move(send->data));
    else if (auto* arm = std::get_if<drivers::arm_timer>(&act))
      self->delayed_send(self, arm->after, timer_atom::value, std::int64_t{0}, arm->id);
    else if (std::holds_alternative<drivers::finish>(act))
      begin_close(self, "closed by peer");
  }
}

fake_connection_actor::behavior_type fake_connection(fake_ptr self, link_client_actor owner, std::uint64_t tag,
                                                     fake_link link, sim::meter_identity identity,
                                                     unix_seconds meter_now,
                                                     std::function<drivers::unix_ms()> clock) {
  auto& st = self->state;
  st.owner = owner;
  st.tag = tag;
  st.clock = clock;
  st.link = link;
  if (link.refuse) {
    st.closed = true;
    self->send(owner, conn_fail_atom::value, tag, std::string("connection refused"));
    self->quit();
  } else {
    sim::iec_meter_config mc;
    mc.reaction_delay = std::chrono::milliseconds(0);
    mc.pinned_now = meter_now;
    st.meter = std::make_unique<sim::iec_meter>(identity, link.faults, mc);
    self->send(owner, link_up_atom::value, tag);
    fake_execute(self, st.meter->on_link_up(clock()));
  }
  return {
    [self](send_atom, std::string& bytes) {
      if (!self->state.closed && !self->state.closing)
        fake_execute(self, self->state.meter->on_bytes(bytes, self->state.clock()));
    },
    [self](close_atom) { begin_close(self, "closed"); },
    [self](timer_atom, std::int64_t, std::uint64_t id) {
      if (id == slow_close_timer)
        fake_close(self, "closed");
      else if (!self->state.closed && !self->state.closing)
        fake_execute(self, self->state.meter->on_timer(id, self->state.clock()));
    },
  };
}

// A simulated modem at the far end of a modem link (sim::modem_line): AT commands, the
// dialling, and calls to a meter that never answers, so a call stays up until it is hung up.
struct modem_log {
  std::string from_dte; // every byte the test actor sent to the modem
  int calls = 0;
  std::vector<sim::call_end> ends;
};

struct fake_modem_state {
  static inline const char* name = "fake_modem";
  std::unique_ptr<sim::modem_line> line;
  link_client_actor owner;
  std::uint64_t tag = 0;
  std::function<drivers::unix_ms()> clock;
  std::shared_ptr<modem_log> log;
  std::optional<std::uint64_t> armed;
  bool closed = false;
};

using fake_modem_ptr = fake_connection_actor::stateful_pointer<fake_modem_state>;

void fake_modem_execute(fake_modem_ptr self, sim::modem_actions acts) {
  auto& st = self->state;
  for (auto& act : acts) {
    if (auto* d = std::get_if<sim::to_dte>(&act))
      self->send(st.owner, bytes_atom::value, st.tag, std::move(d->bytes));
    else if (std::holds_alternative<sim::start_call>(act))
      ++st.log->calls;
    else if (auto* e = std::get_if<sim::call_ended>(&act))
      st.log->ends.push_back(e->cause);
    else if (auto* t = std::get_if<sim::arm_modem_timer>(&act)) {
      st.armed = t->id;
      self->delayed_send(self, t->after, timer_atom::value, std::int64_t{0}, t->id);
    }
  }
}

fake_connection_actor::behavior_type fake_modem(fake_modem_ptr self, link_client_actor owner, std::uint64_t tag,
                                                std::function<drivers::unix_ms()> clock,
                                                std::shared_ptr<modem_log> log) {
  auto& st = self->state;
  sim::modem_config mc;
  mc.connect_delay = std::chrono::milliseconds(100);
  mc.guard_time = std::chrono::milliseconds(50);
  st.line = std::make_unique<sim::modem_line>(mc, sim::make_number_plan(1));
  st.owner = owner;
  st.tag = tag;
  st.clock = std::move(clock);
  st.log = std::move(log);
  self->send(owner, link_up_atom::value, tag);
  return {
    [self](send_atom, std::string& bytes) {
      auto& st = self->state;
      if (st.closed)
        return;
      st.log->from_dte += bytes;
      fake_modem_execute(self, st.line->on_dte_bytes(bytes, st.clock()));
    },
    [self](close_atom) {
      auto& st = self->state;
      if (st.closed)
        return;
      st.closed = true;
      fake_modem_execute(self, st.line->on_dte_gone(st.clock())); // a call still up ends here
      self->send(st.owner, link_down_atom::value, st.tag, std::string("closed"));
      self->quit();
    },
    [self](timer_atom, std::int64_t, std::uint64_t id) {
      auto& st = self->state;
      if (!st.closed && st.armed == id)
        fake_modem_execute(self, st.line->on_timer(id, st.clock()));
    },
  };
}

struct runner_fixture : actor_fixture {
  std::vector<fake_link> links; // per attempt; the last one repeats
  std::vector<std::uint64_t> tags; // one per connection made (= attempts)
  std::vector<tcp_address> targets;
  bool clock_follows_timers = false; // false: the wall clock stands at fake_now
  caf::actor_clock::time_point clock_start = sched.clock().now();
  std::size_t actors_before = sys.registry().running(); // the persistence actor and CAF's own

  sim::meter_identity identity() const {
    sim::meter_identity id;
    id.serial = "12345678";
    id.outstation_address = "12345678";
    id.password = "secret";
    id.seed = 7;
    id.clock_offset_seconds = -203;
    return id;
  }

  drivers::unix_ms wall_ms() {
    drivers::unix_ms ms = fake_now * 1000;
    if (clock_follows_timers)
      ms += std::chrono::duration_cast<std::chrono::milliseconds>(sched.clock().now() - clock_start).count();
    return ms;
  }

  test_runner_config runner_config(std::int64_t max_attempts = 3) {
    test_runner_config c;
    c.types = std::make_shared<const meter_type_registry>();
    c.max_attempts = max_attempts;
    c.retry_delay = std::chrono::seconds(60);
    c.connect_timeout = std::chrono::seconds(20);
    c.test_deadline = std::chrono::seconds(1200);
    c.clock = [this] { return wall_ms(); };
    c.connect = [this](caf::actor_system& sys, link_client_actor owner, std::uint64_t tag, const tcp_address& target,
                       std::chrono::milliseconds) -> connection_actor {
      tags.push_back(tag);
      targets.push_back(target);
      auto link = links.empty() ? fake_link{} : links[std::min(tags.size(), links.size()) - 1];
      return sys.spawn(fake_connection, owner, tag, link, identity(), fake_now, std::function<drivers::unix_ms()>{[this] { return wall_ms(); }});
    };
    return c;
  }

  test_record make_record(test_id id = 42) {
    test_record rec;
    rec.id = id;
    rec.request.meter_type = "IEC62056-21";
    rec.request.remote_address = "127.0.0.1:4059";
    rec.request.outstation_address = "12345678";
    rec.request.serial_number = "12345678";
    rec.request.password = "secret";
    rec.request.survey_days = 3;
    rec.request.survey_date = format_date(fake_now - 2 * 86400);
    rec.state = test_state::running;
    return rec;
  }

  // Runs the system, firing timers in time order, until nothing is left to do.
  void run_to_quiescence() {
    for (int i = 0; i < 100000; ++i) {
      sched.run();
      if (!sched.trigger_timeout())
        break;
    }
    sched.run();
  }

  // attempts_used > 0: the run continues one lost with its collector (the head's request).
  template <class Handle>
  caf::expected<test_outcome> run_test(const Handle& hdl, test_record rec, modem_broker_actor broker = {},
                                       std::int64_t attempts_used = 0) {
    auto h = attempts_used > 0
               ? self->request(hdl, caf::infinite, run_atom::value, std::move(rec), std::move(broker), attempts_used)
               : self->request(hdl, caf::infinite, run_atom::value, std::move(rec), std::move(broker));
    run_to_quiescence();
    caf::expected<test_outcome> out{caf::error{}};
    h.receive([&](test_outcome& o) { out = std::move(o); }, [&](caf::error& err) { out = std::move(err); });
    return out;
  }

  // The outcome a correct run of `rec` against the simulated meter reports at fake_now.
  test_outcome expected_outcome(const test_record& rec, const sim::meter_faults& faults = {}) {
    auto rq = make_session_request(rec.request, fake_now);
    auto want = sim::expected_readings(identity(), faults, rq, fake_now);
    return drivers::make_outcome(rec.id, rq, want, drivers::finish{}, fake_now);
  }
};

} // namespace

TEST_CASE("session request: survey whole days from surveyDate, clipped at the attempt start", "[actors][runner]") {
  test_request r;
  r.outstation_address = "1";
  r.password = "pw";
  r.serial_number = "S1";
  auto noon = *parse_date("2024-03-10") + 12 * 3600;
  auto none = make_session_request(r, noon);
  CHECK(none.outstation_address == std::optional<std::string>("1"));
  CHECK(none.password == std::optional<std::string>("pw"));
  CHECK(none.expected_serial == std::optional<std::string>("S1"));
  CHECK_FALSE(none.survey_from);
  r.survey_days = 2;
  r.survey_date = "2024-03-01";
  auto past = make_session_request(r, noon);
  CHECK(past.survey_from == parse_date("2024-03-01"));
  CHECK(past.survey_to == parse_date("2024-03-03"));
  r.survey_date = "2024-03-09";
  auto clipped = make_session_request(r, noon);
  CHECK(clipped.survey_from == parse_date("2024-03-09"));
  CHECK(clipped.survey_to == std::optional<unix_seconds>(noon));
  r.survey_days = 0;
  CHECK_FALSE(make_session_request(r, noon).survey_from);
}

// Runs at pinned attempt times on both sides of midnight, at a year's end and at 29 February.
TEST_CASE("session request: the clip at the attempt start across midnight, a month's and a year's end",
          "[actors][runner]") {
  test_request r;
  r.survey_days = 2;
  r.survey_date = "2026-12-30";
  // 23:59:30 on the last survey day: clipped 30 s before its end.
  auto late = make_session_request(r, *parse_utc("2026-12-31T23:59:30Z"));
  CHECK(late.survey_from == parse_utc("2026-12-30T00:00:00Z"));
  CHECK(late.survey_to == parse_utc("2026-12-31T23:59:30Z"));
  // 00:00:30 the next year: the two whole days.
  auto next_year = make_session_request(r, *parse_utc("2027-01-01T00:00:30Z"));
  CHECK(next_year.survey_to == parse_utc("2027-01-01T00:00:00Z"));
  // Through a leap day: 28 and 29 February 2028.
  r.survey_date = "2028-02-28";
  CHECK(make_session_request(r, *parse_utc("2028-03-01T00:00:30Z")).survey_to == parse_utc("2028-03-01T00:00:00Z"));
  CHECK(make_session_request(r, *parse_utc("2028-02-29T23:59:30Z")).survey_to == parse_utc("2028-02-29T23:59:30Z"));
  // surveyDate today, just after midnight: 30 s of the day, not an empty or negative range.
  r.survey_days = 1;
  r.survey_date = "2028-02-29";
  auto just_begun = make_session_request(r, *parse_utc("2028-02-29T00:00:30Z"));
  CHECK(just_begun.survey_from == parse_utc("2028-02-29T00:00:00Z"));
  CHECK(just_begun.survey_to == parse_utc("2028-02-29T00:00:30Z"));
}

TEST_CASE("runnable tests: a driver for the type and a host:port address", "[actors][runner]") {
  const meter_type_registry builtin;
  const auto why_not_runnable = [&](const test_request& r) { return mts::why_not_runnable(r, &builtin); };
  test_request r;
  r.meter_type = "IEC62056-21";
  r.remote_address = "127.0.0.1:4059";
  CHECK_FALSE(why_not_runnable(r));
  r.remote_address = "[::1]:4059";
  CHECK_FALSE(why_not_runnable(r));
  r.remote_address = "07777000000";
  CHECK(why_not_runnable(r));
  r.remote_address = "127.0.0.1:4059";
  r.meter_type = "ELSTERA1700";
  CHECK_FALSE(why_not_runnable(r));
  r.meter_type = "ELSTERA1140";
  CHECK_FALSE(why_not_runnable(r));
  r.meter_type = "ELSTERA1800";
  CHECK(why_not_runnable(r));
  // A configured type runs, under its exact name only; without a registry nothing runs.
  const meter_type_registry configured({{"A1700-BST", "elster-a1700", {{"clock_utc_offset_minutes", std::int64_t{60}}}}});
  r.meter_type = "A1700-BST";
  CHECK_FALSE(mts::why_not_runnable(r, &configured));
  CHECK(mts::why_not_runnable(r, &builtin));
  CHECK(mts::why_not_runnable(r, nullptr));
  CHECK(parse_tcp_address("meter.example:10001")->host == "meter.example");
  CHECK(parse_tcp_address("[::1]:7")->host == "[::1]");
  CHECK(parse_tcp_address("127.0.0.1:65535")->port == 65535);
  CHECK_FALSE(parse_tcp_address("127.0.0.1:0"));
  CHECK_FALSE(parse_tcp_address("127.0.0.1:65536"));
  CHECK_FALSE(parse_tcp_address("+447777000123"));
  CHECK_FALSE(parse_tcp_address("::1:80"));
}

TEST_CASE_METHOD(runner_fixture, "a test against a good meter succeeds with the meter's readings",
                 "[actors][runner]") {
  auto runner = sys.spawn(test_runner, runner_config());
  auto rec = make_record();
  auto out = run_test(runner, rec);
  REQUIRE(out);
  auto want = expected_outcome(rec);
  CHECK(want.result == "SUCCESS");
  CHECK(out->id == rec.id);
  CHECK(out->result == "SUCCESS");
  CHECK(out->readings_json == want.readings_json);
  CHECK(out->test_end_time == fake_now);
  CHECK(out->connection_start_time == std::optional<unix_seconds>(fake_now));
  CHECK(out->connection_end_time == std::optional<unix_seconds>(fake_now));
  // Packed for storage by the test actor, so that the database writer does not have to.
  CHECK(packed_json::unpack(out->packed_readings) == want.readings_json);
  CHECK(out->packed_readings.size() * 4 < out->readings_json.size());
  CHECK(packed_json::unpack(out->packed_transcript) == out->transcript_json);
  CHECK(out->connection_attempts == std::optional<std::int64_t>(1));
  REQUIRE(tags.size() == 1);
  CHECK(targets[0].host == "127.0.0.1");
  CHECK(targets[0].port == 4059);
  CHECK(sys.registry().running() == actors_before); // the test actor and its connection have quit
}

TEST_CASE_METHOD(runner_fixture, "the executor runs each test in its own test actor", "[actors][runner]") {
  auto exec = sys.spawn(executor, runner_config());
  auto a = make_record(1);
  auto b = make_record(2);
  b.request.survey_days = 0;
  auto ha = self->request(exec, caf::infinite, run_atom::value, a, modem_broker_actor{});
  auto hb = self->request(exec, caf::infinite, run_atom::value, b, modem_broker_actor{});
  run_to_quiescence();
  std::vector<test_outcome> got;
  for (auto* h : {&ha, &hb})
    h->receive([&](test_outcome& o) { got.push_back(o); }, [&](caf::error& err) { FAIL(to_string(err)); });
  REQUIRE(got.size() == 2);
  CHECK(got[0].id == 1);
  CHECK(got[0].readings_json == expected_outcome(a).readings_json);
  CHECK(got[1].id == 2);
  CHECK(got[1].result == "SUCCESS");
  CHECK(got[1].readings_json == expected_outcome(b).readings_json);
  CHECK(got[1].readings_json.find("surveyData") == std::string::npos);
  CHECK(tags.size() == 2);
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(runner_fixture, "a reload reaches the tests started after it; running tests keep their settings",
                 "[actors][runner][reload]") {
  auto exec = sys.spawn(executor, runner_config());
  // Started before the reload: it runs with the built-in IEC62056-21.
  auto before = make_record(1);
  auto h_before = self->request(exec, caf::infinite, run_atom::value, before, modem_broker_actor{});
  sched.run(); // the test actor is started and connecting; no timer has fired yet
  // The reload replaces the meter types: IEC62056-21 is gone, IEC-NEW (same driver) is new.
  auto next = std::make_shared<test_runner_config>(runner_config());
  next->types = std::make_shared<const meter_type_registry>(
    std::vector<meter_type_definition>{{"IEC-NEW", "iec62056-21", {{"reaction_delay_ms", std::int64_t{50}}}}});
  self->send(exec, reload_atom::value, std::shared_ptr<const test_runner_config>(std::move(next)));
  auto added = make_record(2);
  added.request.meter_type = "IEC-NEW";
  auto removed = make_record(3);
  auto h_added = self->request(exec, caf::infinite, run_atom::value, added, modem_broker_actor{});
  auto h_removed = self->request(exec, caf::infinite, run_atom::value, removed, modem_broker_actor{});
  run_to_quiescence();
  std::map<test_id, test_outcome> got;
  for (auto* h : {&h_before, &h_added, &h_removed})
    h->receive([&](test_outcome& o) { got[o.id] = o; }, [&](caf::error& err) { FAIL(to_string(err)); });
  REQUIRE(got.size() == 3);
  CHECK(got[1].result == "SUCCESS");
  CHECK(got[1].readings_json == expected_outcome(before).readings_json);
  CHECK(got[2].result == "SUCCESS");
  CHECK(got[3].result == "ERROR: meter type IEC62056-21 is not supported yet");
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(runner_fixture, "a silent meter is retried max_attempts times, then ERROR", "[actors][runner]") {
  clock_follows_timers = true;
  fake_link silent;
  silent.faults.silent = true;
  links = {silent};
  auto runner = sys.spawn(test_runner, runner_config(3));
  auto out = run_test(runner, make_record());
  REQUIRE(out);
  CHECK(out->result == "ERROR: no answer to sign-on");
  CHECK(tags == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(out->connection_attempts == std::optional<std::int64_t>(3));
  // Each attempt waits out the driver's 5 s response timeout (after its 200 ms reaction
  // delay), then 60 s pass before the next: the last connection is the third one.
  REQUIRE(out->connection_start_time);
  REQUIRE(out->connection_end_time);
  CHECK(*out->connection_start_time >= fake_now + 2 * 65);
  CHECK(*out->connection_start_time <= fake_now + 2 * 66);
  CHECK(*out->connection_end_time - *out->connection_start_time == 5);
  CHECK(out->test_end_time == *out->connection_end_time);
  CHECK(sys.registry().running() == actors_before);
}

TEST_CASE_METHOD(runner_fixture, "a line dropped in the load profile is retried and the last attempt's readings count",
                 "[actors][runner]") {
  fake_link drop;
  drop.faults.drop_mid_profile = true;
  auto rec = make_record();
  SECTION("dropped every time: PARTIAL SUCCESS with what the last attempt read") {
    links = {drop};
    auto runner = sys.spawn(test_runner, runner_config(3));
    auto out = run_test(runner, rec);
    REQUIRE(out);
    CHECK(out->result == "PARTIAL SUCCESS");
    CHECK(tags == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(out->connection_attempts == std::optional<std::int64_t>(3));
    // Everything but the survey, as the meter model says a dropped session gives.
    CHECK(out->readings_json == expected_outcome(rec, drop.faults).readings_json);
    CHECK(out->readings_json.find(R"("surveyData":[])") != std::string::npos);
  }
  SECTION("dropped once: the retry reads everything, SUCCESS") {
    links = {drop, fake_link{}};
    auto runner = sys.spawn(test_runner, runner_config(3));
    auto out = run_test(runner, rec);
    REQUIRE(out);
    CHECK(out->result == "SUCCESS");
    CHECK(out->connection_attempts == std::optional<std::int64_t>(2));
    CHECK(out->readings_json == expected_outcome(rec).readings_json);
  }
}

TEST_CASE_METHOD(runner_fixture, "a wrong password is permanent: no retry", "[actors][runner]") {
  fake_link bad;
  bad.faults.reject_password = true;
  links = {bad};
  auto runner = sys.spawn(test_runner, runner_config(3));
  auto out = run_test(runner, make_record());
  REQUIRE(out);
  CHECK(out->result == "ERROR: password rejected");
  CHECK(tags.size() == 1);
  CHECK(out->connection_attempts == std::optional<std::int64_t>(1));
}

TEST_CASE_METHOD(runner_fixture, "a serial mismatch is permanent and keeps the serial read", "[actors][runner]") {
  fake_link other;
  other.faults.reported_serial = "87654321";
  links = {other};
  auto runner = sys.spawn(test_runner, runner_config(3));
  auto out = run_test(runner, make_record());
  REQUIRE(out);
  CHECK(out->result == "ERROR: Serial number mismatch");
  CHECK(out->readings_json.find("87654321") != std::string::npos);
  CHECK(tags.size() == 1);
  CHECK(out->connection_attempts == std::optional<std::int64_t>(1));
}

TEST_CASE_METHOD(runner_fixture, "a refused connection is retried and the second attempt succeeds",
                 "[actors][runner]") {
  clock_follows_timers = true;
  fake_link refused;
  refused.refuse = true;
  links = {refused, fake_link{}};
  auto runner = sys.spawn(test_runner, runner_config(3));
  auto out = run_test(runner, make_record());
  REQUIRE(out);
  CHECK(out->result == "SUCCESS");
  CHECK(tags == std::vector<std::uint64_t>{1, 2});
  CHECK(out->connection_attempts == std::optional<std::int64_t>(2));
  // The connection times are the second attempt's, after the 60 s retry delay.
  REQUIRE(out->connection_start_time);
  CHECK(*out->connection_start_time == fake_now + 60);
  REQUIRE(out->connection_end_time);
  CHECK(*out->connection_end_time >= *out->connection_start_time);
  CHECK(out->test_end_time >= *out->connection_end_time);
}

TEST_CASE_METHOD(runner_fixture, "refused on every attempt: ERROR naming the reason, no connection times",
                 "[actors][runner]") {
  fake_link refused;
  refused.refuse = true;
  links = {refused};
  auto runner = sys.spawn(test_runner, runner_config(2));
  auto out = run_test(runner, make_record());
  REQUIRE(out);
  CHECK(out->result == "ERROR: cannot connect: connection refused");
  CHECK(tags.size() == 2);
  CHECK(out->connection_attempts == std::optional<std::int64_t>(2));
  CHECK_FALSE(out->connection_start_time);
  CHECK_FALSE(out->connection_end_time);
}

TEST_CASE_METHOD(runner_fixture, "the outcome is answered only once the link has closed",
                 "[actors][runner][nodes]") {
  // The answer frees the meter for the next test, perhaps on another node: the meter must not
  // see that test's connection before this one's close. The link here takes 3 s (of the test
  // coordinator's clock; the guard is 5 s) to close.
  fake_link slow;
  slow.close_delay = std::chrono::seconds(3);
  links = {slow};
  auto runner = sys.spawn(test_runner, runner_config());
  auto h = self->request(runner, caf::infinite, run_atom::value, make_record(), modem_broker_actor{});
  bool answered_before_closed = false;
  for (int i = 0; i < 100000; ++i) {
    sched.run();
    if (!self->mailbox().empty() && !*slow.closed)
      answered_before_closed = true;
    if (!sched.trigger_timeout())
      break;
  }
  sched.run();
  CHECK(*slow.closed);
  CHECK_FALSE(answered_before_closed);
  caf::expected<test_outcome> out{caf::error{}};
  h.receive([&](test_outcome& o) { out = std::move(o); }, [&](caf::error& err) { out = std::move(err); });
  REQUIRE(out);
  CHECK(out->result == "SUCCESS");
}

TEST_CASE_METHOD(runner_fixture, "a link that never reports its close holds the outcome back for the guard only",
                 "[actors][runner][nodes]") {
  fake_link stuck;
  stuck.close_delay = std::chrono::hours(1); // far beyond the 5 s guard
  links = {stuck};
  auto runner = sys.spawn(test_runner, runner_config());
  auto h = self->request(runner, caf::infinite, run_atom::value, make_record(), modem_broker_actor{});
  for (int i = 0; i < 100000 && self->mailbox().empty(); ++i) {
    sched.run();
    if (self->mailbox().empty() && !sched.trigger_timeout())
      break;
  }
  CHECK_FALSE(*stuck.closed); // answered by the guard, not by the close
  caf::expected<test_outcome> out{caf::error{}};
  h.receive([&](test_outcome& o) { out = std::move(o); }, [&](caf::error& err) { out = std::move(err); });
  REQUIRE(out);
  CHECK(out->result == "SUCCESS");
  run_to_quiescence(); // the stuck link's own timer, so that it ends with the test
}

TEST_CASE_METHOD(runner_fixture, "a run continuing one lost with its collector has only the attempts left",
                 "[actors][runner][nodes]") {
  fake_link refused;
  refused.refuse = true;
  links = {refused};
  auto runner = sys.spawn(test_runner, runner_config(3));
  // Two attempts were counted for runs lost with their node: one is left.
  auto out = run_test(runner, make_record(), {}, 2);
  REQUIRE(out);
  CHECK(out->result == "ERROR: cannot connect: connection refused");
  CHECK(tags.size() == 1);
  CHECK(tags.at(0) == 3); // the attempt's number goes on from the lost ones
  CHECK(out->connection_attempts == std::optional<std::int64_t>(3));
}

TEST_CASE_METHOD(runner_fixture, "a test the executor cannot run ends at once, without a connection",
                 "[actors][runner]") {
  auto runner = sys.spawn(test_runner, runner_config());
  auto rec = make_record();
  rec.request.remote_address = "07777000000";
  auto out = run_test(runner, rec);
  REQUIRE(out);
  CHECK(out->result.rfind("ERROR: modem", 0) == 0);
  CHECK(tags.empty());
  CHECK(out->connection_attempts == std::optional<std::int64_t>(0));
}

TEST_CASE_METHOD(runner_fixture, "the whole-test deadline ends a test between attempts", "[actors][runner]") {
  fake_link silent;
  silent.faults.silent = true;
  links = {silent};
  auto cfg = runner_config(10);
  cfg.test_deadline = std::chrono::seconds(100); // room for two attempts (5 s + 60 s each)
  auto runner = sys.spawn(test_runner, cfg);
  auto out = run_test(runner, make_record());
  REQUIRE(out);
  CHECK(out->result == "ERROR: test deadline exceeded");
  CHECK(tags.size() == 2);
  CHECK(out->connection_attempts == std::optional<std::int64_t>(2));
}

TEST_CASE_METHOD(runner_fixture, "a test actor that throws answers at once and does not take the executor down",
                 "[actors][runner]") {
  auto cfg = runner_config();
  auto real_connect = cfg.connect;
  int calls = 0;
  cfg.connect = [&calls, real_connect](caf::actor_system& sys, link_client_actor owner, std::uint64_t tag,
                                       const tcp_address& target, std::chrono::milliseconds timeout) {
    if (++calls == 1)
      throw std::runtime_error("boom");
    return real_connect(sys, std::move(owner), tag, target, timeout);
  };
  auto exec = sys.spawn(executor, cfg);
  auto h1 = self->request(exec, std::chrono::seconds(30), run_atom::value, make_record(1), modem_broker_actor{});
  run_to_quiescence();
  std::optional<test_outcome> first;
  h1.receive([&](test_outcome& o) { first = std::move(o); }, [&](caf::error&) {});
  // Answered, not left to the scheduler's request timeout: a permanent error, no retry.
  REQUIRE(first);
  CHECK(first->id == 1);
  CHECK(first->result == "ERROR: internal error in the test engine (see the server log)");
  CHECK(calls == 1);
  auto out = run_test(exec, make_record(2));
  REQUIRE(out);
  CHECK(out->result == "SUCCESS");
  self->send_exit(exec, caf::exit_reason::user_shutdown);
  sched.run();
}

// ---- transcripts ----

namespace {

boost::json::array transcript_of(const test_outcome& out) {
  REQUIRE_FALSE(out.transcript_json.empty());
  return boost::json::parse(out.transcript_json).as_array();
}

std::vector<std::string> event_names(const boost::json::value& attempt) {
  std::vector<std::string> names;
  for (const auto& e : attempt.at("events").as_array())
    names.emplace_back(e.at("event").as_string().c_str());
  return names;
}

} // namespace

TEST_CASE_METHOD(runner_fixture, "transcript of a good session: every exchange, the password masked",
                 "[actors][runner][transcript]") {
  auto cfg = runner_config();
  cfg.transcript_max_bytes = 1 << 20;
  auto out = run_test(sys.spawn(test_runner, cfg), make_record());
  REQUIRE(out);
  CHECK(out->result == "SUCCESS");
  const auto attempts = transcript_of(*out);
  REQUIRE(attempts.size() == 1);
  const auto& events = attempts[0].at("events").as_array();
  REQUIRE(events.size() > 10);
  CHECK(events[0] == boost::json::parse(R"({"ms":0,"event":"connecting","detail":"127.0.0.1:4059"})"));
  CHECK(events[1].at("event") == "link up");
  CHECK(events[2] == boost::json::parse(R"({"ms":0,"event":"sent","data":"/?12345678!<CR><LF>"})"));
  CHECK(events[3].at("event") == "received");
  CHECK(events[3].at("data").as_string().starts_with("/SIM5"));
  CHECK(events.back() == boost::json::parse(R"({"ms":0,"event":"end"})"));
  CHECK(attempts[0].at("droppedEvents") == 0);
  bool password_sent = false;
  for (const auto& e : events)
    password_sent |= e.at("event") == "sent" && e.at("data") == "<SOH>P1<STX>(********)<ETX>*";
  CHECK(password_sent);
  CHECK(out->transcript_json.find("secret") == std::string::npos); // the meter's password
}

TEST_CASE_METHOD(runner_fixture, "transcript of a silent meter: the sign-on sent on every attempt, no answer",
                 "[actors][runner][transcript]") {
  clock_follows_timers = true;
  fake_link silent;
  silent.faults.silent = true;
  links = {silent};
  auto cfg = runner_config(2);
  cfg.transcript_max_bytes = 4096;
  auto out = run_test(sys.spawn(test_runner, cfg), make_record());
  REQUIRE(out);
  CHECK(out->result == "ERROR: no answer to sign-on");
  const auto attempts = transcript_of(*out);
  REQUIRE(attempts.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    INFO("attempt " << i + 1);
    CHECK(attempts[i].at("attempt") == static_cast<std::int64_t>(i + 1));
    CHECK(event_names(attempts[i]) ==
          std::vector<std::string>{"connecting", "link up", "sent", "timer", "end"});
    const auto& events = attempts[i].at("events").as_array();
    CHECK(events[2].at("data") == "/?12345678!<CR><LF>");
    CHECK(events[2].at("ms") == 200);  // after the driver's reaction delay
    CHECK(events[3].at("ms") == 5200); // the response timeout
    CHECK(events[4].at("detail") == "no answer to sign-on");
  }
  // The second attempt began after the 60 s retry delay.
  CHECK(attempts[1].at("startTime") != attempts[0].at("startTime"));
}

TEST_CASE_METHOD(runner_fixture, "transcript of refused connections, and none when turned off",
                 "[actors][runner][transcript]") {
  fake_link refused;
  refused.refuse = true;
  links = {refused};
  auto cfg = runner_config(2);
  cfg.transcript_max_bytes = 4096;
  auto out = run_test(sys.spawn(test_runner, cfg), make_record(1));
  REQUIRE(out);
  const auto attempts = transcript_of(*out);
  REQUIRE(attempts.size() == 2);
  CHECK(attempts[1].at("events") == boost::json::parse(R"([
    {"ms":0,"event":"connecting","detail":"127.0.0.1:4059"},
    {"ms":0,"event":"connect failed","detail":"connection refused"},
    {"ms":0,"event":"end","detail":"cannot connect: connection refused"}])"));

  auto off = run_test(sys.spawn(test_runner, runner_config(2)), make_record(2));
  REQUIRE(off);
  CHECK(off->result == out->result);
  CHECK(off->transcript_json.empty());
}

TEST_CASE_METHOD(runner_fixture, "a transcript stays within its bound and keeps how the attempt ended",
                 "[actors][runner][transcript]") {
  auto cfg = runner_config();
  cfg.transcript_max_bytes = 400;
  auto out = run_test(sys.spawn(test_runner, cfg), make_record());
  REQUIRE(out);
  CHECK(out->result == "SUCCESS"); // the bound changes the transcript, not the test
  const auto attempts = transcript_of(*out);
  REQUIRE(attempts.size() == 1);
  CHECK(attempts[0].at("droppedEvents").to_number<std::int64_t>() > 10);
  const auto& events = attempts[0].at("events").as_array();
  CHECK(events.front().at("event") == "connecting");
  CHECK(events.back() == boost::json::parse(R"({"ms":0,"event":"end"})"));
  std::size_t cost = 0;
  for (const auto& e : events) {
    const auto& o = e.as_object();
    cost += attempt_transcript::event_overhead + o.at("event").as_string().size();
    if (auto* d = o.if_contains("data"))
      cost += d->as_string().size();
    if (auto* d = o.if_contains("detail"))
      cost += d->as_string().size();
  }
  CHECK(cost <= 400 + attempt_transcript::event_overhead + 3); // the end is kept beyond it
}

TEST_CASE("runnable tests: a telephone number needs modems", "[actors][runner][modem]") {
  test_request r;
  r.meter_type = "IEC62056-21";
  r.remote_address = "07777000000";
  const meter_type_registry builtin;
  CHECK(why_not_runnable(r, &builtin, false));
  CHECK_FALSE(why_not_runnable(r, &builtin, true));
}

TEST_CASE_METHOD(runner_fixture, "a modem whose link cannot be opened is taken out of service and the test moves on",
                 "[actors][runner][modem]") {
  auto pool = make_pool(2);
  auto broker = sys.spawn(pool_broker, pool);
  auto cfg = runner_config(1); // one attempt: modem faults do not count against it
  std::vector<std::string> opened;
  cfg.open_modem_link = [&](caf::actor_system& sys, link_client_actor owner, std::uint64_t tag,
                            const modem_settings& modem, const drivers::line_settings&,
                            std::chrono::milliseconds) -> connection_actor {
    opened.push_back(modem.name);
    fake_link refused;
    refused.refuse = true;
    return sys.spawn(fake_connection, owner, tag, refused, identity(), fake_now,
                     std::function<drivers::unix_ms()>{[this] { return wall_ms(); }});
  };
  auto rec = make_record();
  rec.request.remote_address = "07777000000";
  REQUIRE(pool->acquire(rec.id)); // what the scheduler does at dispatch
  auto runner = sys.spawn(test_runner, cfg);
  auto out = run_test(runner, rec, broker);
  REQUIRE(out);
  // Both modems were tried, each fault was reported to the broker and took one out of
  // service, then none was left.
  CHECK(opened == std::vector<std::string>{"modem1", "modem2"});
  CHECK(out->result == "ERROR: no modem available");
  auto& faults = dynamic_cast<modem_broker_actor::stateful_base<pool_broker_state>&>(
                   *caf::actor_cast<caf::abstract_actor*>(broker))
                   .state.faults;
  CHECK(faults == std::vector<std::string>{"42: cannot reach modem modem1: connection refused",
                                           "42: cannot reach modem modem2: connection refused"});
  auto status = pool->status();
  REQUIRE(status.size() == 2);
  for (const auto& m : status) {
    CHECK(m.state == "out of service");
    CHECK(m.reason == "cannot reach modem " + m.name + ": connection refused");
    CHECK(m.until == std::optional<unix_seconds>(fake_now + 300));
  }
  CHECK_FALSE(out->connection_start_time);
}

TEST_CASE_METHOD(runner_fixture, "the test deadline during a call hangs it up with the escape and ATH",
                 "[actors][runner][modem]") {
  clock_follows_timers = true; // the modem times its guard periods by the clock
  auto pool = make_pool(1);
  auto broker = sys.spawn(pool_broker, pool);
  auto cfg = runner_config(1);
  cfg.modem_guard_time = std::chrono::milliseconds(50);
  cfg.modem_command_timeout = std::chrono::milliseconds(1000);
  cfg.modem_connect_timeout = std::chrono::milliseconds(5000);
  // The call is up within half a second; the silent meter's sign-on would wait 5 s.
  cfg.test_deadline = std::chrono::seconds(2);
  auto log = std::make_shared<modem_log>();
  cfg.open_modem_link = [&](caf::actor_system& sys, link_client_actor owner, std::uint64_t tag,
                            const modem_settings&, const drivers::line_settings&,
                            std::chrono::milliseconds) -> connection_actor {
    return sys.spawn(fake_modem, owner, tag, std::function<drivers::unix_ms()>{[this] { return wall_ms(); }}, log);
  };
  auto rec = make_record();
  rec.request.remote_address = sim::modem_number(0);
  REQUIRE(pool->acquire(rec.id));
  auto runner = sys.spawn(test_runner, cfg);
  auto out = run_test(runner, rec, broker);
  REQUIRE(out);
  CHECK(out->result == "ERROR: test deadline exceeded");
  CHECK(log->calls == 1);
  // Hung up by the modem command ATH after the escape, not by the link being closed on it.
  CHECK(log->ends == std::vector<sim::call_end>{sim::call_end::hangup});
  const auto escape = log->from_dte.rfind("+++");
  REQUIRE(escape != std::string::npos);
  CHECK(log->from_dte.substr(escape) == "+++ATH\r");
  CHECK(out->connection_start_time);
  CHECK(out->connection_end_time);
  CHECK(out->connection_attempts == 1);
  REQUIRE(pool->status().size() == 1);
  CHECK(pool->status()[0].state == "busy"); // not faulted (the scheduler gives it back at the result)
}

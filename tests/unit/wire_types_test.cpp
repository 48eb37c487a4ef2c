// Every message type that may cross the wire between the head and a collector survives CAF's
// binary serialization, alone and inside a whole message rebuilt by its registered name
// (actors/wire_types.hpp). A field left out of an inspect() would come back empty here.
#include "actors/interfaces.hpp"
#include "actors/wire_types.hpp"

#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <catch2/catch.hpp>

#include <tuple>

using namespace mts;

namespace {

auto fields(const test_request& r) {
  return std::tie(r.request_reference, r.immediate, r.meter_type, r.remote_address, r.coms_settings,
                  r.outstation_address, r.serial_number, r.password, r.survey_days, r.survey_date);
}

auto fields(const test_record& r) {
  return std::tuple_cat(std::tie(r.id, r.batch, r.received_time, r.state, r.result, r.attempts, r.test_start_time,
                                 r.test_end_time, r.connection_start_time, r.connection_end_time, r.completed_time,
                                 r.connection_attempts, r.readings_json),
                        fields(r.request));
}

auto fields(const test_outcome& o) {
  return std::tie(o.id, o.result, o.test_end_time, o.connection_start_time, o.connection_end_time, o.readings_json,
                  o.connection_attempts, o.transcript_json, o.packed_readings, o.packed_transcript);
}

test_request full_request() {
  test_request r;
  r.request_reference = "REF-1";
  r.immediate = true;
  r.meter_type = "ELSTERA1700";
  r.remote_address = "07777000001";
  r.coms_settings = "9600,7,E,1";
  r.outstation_address = "001";
  r.serial_number = "12345678";
  r.password = "AAAA0000";
  r.survey_days = 10;
  r.survey_date = "2026-12-01";
  return r;
}

test_record full_record() {
  test_record r;
  r.id = 4711;
  r.batch = 17;
  r.received_time = 1'800'000'000;
  r.request = full_request();
  r.state = test_state::completed;
  r.result = "PARTIAL SUCCESS";
  r.attempts = 3;
  r.test_start_time = 1'800'000'010;
  r.test_end_time = 1'800'000'090;
  r.connection_start_time = 1'800'000'020;
  r.connection_end_time = 1'800'000'080;
  r.completed_time = 1'800'000'091;
  r.connection_attempts = 2;
  r.readings_json = R"({"serialNumber":"12345678"})";
  return r;
}

test_outcome full_outcome() {
  test_outcome o;
  o.id = 4711;
  o.result = "ERROR: line dropped";
  o.test_end_time = 1'800'000'090;
  o.connection_start_time = 1'800'000'020;
  o.connection_end_time = 1'800'000'080;
  o.readings_json = R"({"meterTime":"2026-12-07T12:00:00Z"})";
  o.connection_attempts = 3;
  o.transcript_json = R"([{"attempt":1,"events":[]}])";
  o.packed_readings = std::string("\x00\x01\xff packed", 10);
  o.packed_transcript = std::string("\x02\x00zz", 4);
  return o;
}

modem_settings full_modem() {
  modem_settings m;
  m.name = "gsm1";
  m.device = "/dev/ttyUSB0";
  m.baud = 19200;
  m.gateway = "10.0.0.5:4001";
  m.init = {"ATE0", "AT+CBST=7,0,1"};
  m.dial_prefix = "9,";
  m.software_parity = true;
  return m;
}

// Any actor with the broker's interface (a named function with a self parameter: see
// scripts/ubsan.supp).
modem_broker_actor::behavior_type idle_broker(modem_broker_actor::pointer) {
  return {[](modem_atom, get_atom, test_id) { return modem_grant{}; },
          [](modem_atom, fault_atom, test_id, const std::string&) {}};
}

struct wire_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  wire_fixture() {
    add_wire_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }

  template <class T>
  T round_trip(const T& in) {
    std::vector<char> buf;
    caf::binary_serializer sink{*sys, buf};
    auto copy = in;
    REQUIRE_FALSE(sink(copy));
    CHECK_FALSE(buf.empty());
    T out{};
    caf::binary_deserializer source{*sys, buf};
    REQUIRE_FALSE(source(out));
    CHECK(source.remaining() == 0);
    return out;
  }
};

} // namespace

TEST_CASE_METHOD(wire_fixture, "every wire type survives a round trip through CAF's binary serializer",
                 "[wire][collector]") {
  SECTION("test_request, every optional field set and none set") {
    auto full = full_request();
    CHECK(fields(round_trip(full)) == fields(full));
    test_request bare;
    bare.meter_type = "IEC62056-21";
    bare.remote_address = "127.0.0.1:4059";
    auto back = round_trip(bare);
    CHECK(fields(back) == fields(bare));
    CHECK_FALSE(back.password);
    CHECK_FALSE(back.request_reference);
  }
  SECTION("test_record in each state") {
    for (auto state : {test_state::pending, test_state::running, test_state::completed}) {
      auto rec = full_record();
      rec.state = state;
      CHECK(fields(round_trip(rec)) == fields(rec));
    }
    test_record bare;
    bare.id = 1;
    CHECK(fields(round_trip(bare)) == fields(bare));
  }
  SECTION("test_outcome, binary packed texts included") {
    auto full = full_outcome();
    CHECK(fields(round_trip(full)) == fields(full));
    test_outcome bare;
    bare.id = 9;
    bare.result = "SUCCESS";
    CHECK(fields(round_trip(bare)) == fields(bare));
  }
  SECTION("modem_settings and modem_grant, with a modem and without") {
    auto modem = full_modem();
    CHECK(round_trip(modem) == modem);
    modem_grant some{full_modem()};
    auto back = round_trip(some);
    REQUIRE(back.modem);
    CHECK(*back.modem == modem);
    CHECK_FALSE(round_trip(modem_grant{}).modem);
  }
  SECTION("collector_hello and join_verdict") {
    collector_hello hello;
    hello.name = "site-north";
    hello.secret = "s3cret";
    hello.protocol_version = 1;
    hello.tcp_sessions = 250;
    hello.modems = {full_modem(), modem_settings{}};
    hello.reach_networks = "10.1.0.0/16, 2001:db8::/32";
    hello.reach_prefixes = "+4420";
    auto back = round_trip(hello);
    CHECK(std::tie(back.name, back.secret, back.protocol_version, back.tcp_sessions, back.modems, back.reach_networks,
                   back.reach_prefixes) == std::tie(hello.name, hello.secret, hello.protocol_version, hello.tcp_sessions,
                                                    hello.modems, hello.reach_networks, hello.reach_prefixes));
    join_verdict refused{false, "wrong secret"};
    auto v = round_trip(refused);
    CHECK_FALSE(v.accepted);
    CHECK(v.reason == "wrong secret");
    CHECK(round_trip(join_verdict{true, {}}).accepted);
  }
}

TEST_CASE_METHOD(wire_fixture, "a test_record with an unknown state is refused when read", "[wire][collector]") {
  auto rec = full_record();
  std::vector<char> buf;
  caf::binary_serializer sink{*sys, buf};
  REQUIRE_FALSE(sink(rec));
  // The state byte follows id (8 bytes), the batch (flag 1 + 8) and received_time (8) and the
  // request: find it by writing the same record with another state and comparing.
  auto other = rec;
  other.state = test_state::pending;
  std::vector<char> other_buf;
  caf::binary_serializer other_sink{*sys, other_buf};
  REQUIRE_FALSE(other_sink(other));
  REQUIRE(buf.size() == other_buf.size());
  std::size_t differing = 0, at = 0;
  for (std::size_t i = 0; i < buf.size(); ++i)
    if (buf[i] != other_buf[i]) {
      ++differing;
      at = i;
    }
  REQUIRE(differing == 1);
  buf[at] = 7;
  test_record out;
  caf::binary_deserializer source{*sys, buf};
  CHECK(source(out));
}

TEST_CASE_METHOD(wire_fixture, "a run request, its answer and the modem messages cross the wire as whole messages",
                 "[wire][collector]") {
  // A broker to name in the run request: any actor with the interface.
  auto broker = sys->spawn(idle_broker);
  auto rebuilt = [&](const caf::message& msg) {
    std::vector<char> buf;
    caf::binary_serializer sink{*sys, buf};
    auto copy = msg;
    REQUIRE_FALSE(sink(copy));
    caf::message out;
    caf::binary_deserializer source{*sys, buf};
    REQUIRE_FALSE(source(out));
    return out;
  };

  auto run = rebuilt(caf::make_message(run_atom::value, full_record(), broker));
  REQUIRE((run.match_elements<run_atom, test_record, modem_broker_actor>()));
  CHECK(fields(run.get_as<test_record>(1)) == fields(full_record()));
  CHECK(run.get_as<modem_broker_actor>(2).address() == broker.address());
  // What the head sends: the run with the connection attempts already used by a lost run.
  auto run_again = rebuilt(caf::make_message(run_atom::value, full_record(), broker, std::int64_t{2}));
  REQUIRE((run_again.match_elements<run_atom, test_record, modem_broker_actor, std::int64_t>()));
  CHECK(run_again.get_as<std::int64_t>(3) == 2);

  auto answer = rebuilt(caf::make_message(full_outcome()));
  REQUIRE(answer.match_elements<test_outcome>());
  CHECK(fields(answer.get_as<test_outcome>(0)) == fields(full_outcome()));

  auto grant = rebuilt(caf::make_message(modem_grant{full_modem()}));
  REQUIRE(grant.match_elements<modem_grant>());
  CHECK(grant.get_as<modem_grant>(0).modem == std::optional<modem_settings>(full_modem()));

  collector_hello hello;
  hello.name = "site-north";
  hello.modems = {full_modem()};
  auto exec = caf::actor_cast<executor_actor>(broker); // any handle: only its address travels
  auto join = rebuilt(caf::make_message(join_atom::value, hello, exec));
  REQUIRE((join.match_elements<join_atom, collector_hello, executor_actor>()));
  CHECK(join.get_as<collector_hello>(1).modems == hello.modems);
  CHECK(join.get_as<executor_actor>(2).address() == broker.address());

  auto fault = rebuilt(caf::make_message(modem_atom::value, fault_atom::value, test_id{4711}, std::string("NO CARRIER")));
  REQUIRE((fault.match_elements<modem_atom, fault_atom, test_id, std::string>()));
  CHECK(fault.get_as<std::string>(3) == "NO CARRIER");
  caf::anon_send_exit(broker, caf::exit_reason::user_shutdown);
}

TEST_CASE("without the registration a node cannot rebuild a run request", "[wire][collector]") {
  // What add_wire_types is for: the receiving node looks the types up by name.
  caf::actor_system_config with_types;
  add_wire_types(with_types);
  caf::actor_system sender{with_types};
  std::vector<char> buf;
  {
    caf::binary_serializer sink{sender, buf};
    auto msg = caf::make_message(run_atom::value, full_record());
    REQUIRE_FALSE(sink(msg));
  }
  caf::actor_system_config without_types;
  caf::actor_system receiver{without_types};
  caf::message out;
  caf::binary_deserializer source{receiver, buf};
  auto err = source(out);
  CHECK((err || !out.match_elements<run_atom, test_record>()));
}

#pragma once
// The message types that may cross the wire between the head and a collector node (issue 16):
// their inspect() overloads, which CAF's serializers use, and their registration by name,
// which a receiving node needs to rebuild them. A type allowed as "unsafe" is silently SKIPPED
// by CAF's serializers (the receiver gets nothing), so the static_asserts below keep every
// wire type inspectable; tests/unit/wire_types_test.cpp round-trips each one.
//
// Names travel as strings: renaming one, or a field's order, is a protocol change.
#include "common/model.hpp"
#include "config/settings.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mts {

// The answer to a test's request for a modem: the one it holds, or a free one in service;
// nothing when none is free (or the test is not running).
struct modem_grant {
  std::optional<modem_settings> modem;
};

// What a collector says when it joins the head: who it is, the protocol it speaks, and what it
// offers. The secret crosses only the cluster's mutual-TLS link, and is never logged.
struct collector_hello {
  std::string name;
  std::string secret;
  std::int64_t protocol_version = 0;
  std::int64_t tcp_sessions = 0;       // TCP meter sessions it can hold at once
  std::vector<modem_settings> modems;  // its modems
  // What it reaches (common/reach.hpp), as collector.reach_networks / reach_prefixes have it;
  // the head parses them (empty: everything).
  std::string reach_networks;
  std::string reach_prefixes;
};

// The head's answer to a join.
struct join_verdict {
  bool accepted = false;
  std::string reason; // refused: why (shown in both nodes' logs)
};

namespace wire {

// CAF 0.17 has no inspect() for std::optional, and a loading inspector needs an lvalue: an
// optional field goes through one of these, as a presence flag and a value.
template <class T>
struct optional_field {
  std::optional<T>* target;
  bool present = false;
  T value{};
};

template <class T>
optional_field<T> field(std::optional<T>& x) {
  return optional_field<T>{&x, x.has_value(), x ? *x : T{}};
}

template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, optional_field<T>& x) {
  return f(x.present, x.value, caf::meta::load_callback([&x]() -> caf::error {
             if (x.present)
               *x.target = std::move(x.value);
             else
               x.target->reset();
             return caf::none;
           }));
}

} // namespace wire

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, test_request& x) {
  auto reference = wire::field(x.request_reference);
  auto coms = wire::field(x.coms_settings);
  auto outstation = wire::field(x.outstation_address);
  auto serial = wire::field(x.serial_number);
  auto password = wire::field(x.password);
  auto survey_date = wire::field(x.survey_date);
  return f(caf::meta::type_name("mts.test_request"), reference, x.immediate, x.meter_type, x.remote_address, coms,
           outstation, serial, password, x.survey_days, survey_date);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, test_record& x) {
  auto batch = wire::field(x.batch);
  auto start = wire::field(x.test_start_time);
  auto end = wire::field(x.test_end_time);
  auto conn_start = wire::field(x.connection_start_time);
  auto conn_end = wire::field(x.connection_end_time);
  auto completed = wire::field(x.completed_time);
  auto conn_attempts = wire::field(x.connection_attempts);
  auto state = static_cast<std::int8_t>(x.state);
  return f(caf::meta::type_name("mts.test_record"), x.id, batch, x.received_time, x.request, state,
           caf::meta::load_callback([&x, &state]() -> caf::error {
             if (state < 0 || state > static_cast<std::int8_t>(test_state::completed))
               return caf::make_error(caf::sec::invalid_argument, "test_record: unknown state");
             x.state = static_cast<test_state>(state);
             return caf::none;
           }),
           x.result, x.attempts, start, end, conn_start, conn_end, completed, conn_attempts, x.readings_json);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, test_outcome& x) {
  auto conn_start = wire::field(x.connection_start_time);
  auto conn_end = wire::field(x.connection_end_time);
  auto conn_attempts = wire::field(x.connection_attempts);
  return f(caf::meta::type_name("mts.test_outcome"), x.id, x.result, x.test_end_time, conn_start, conn_end,
           x.readings_json, conn_attempts, x.transcript_json, x.packed_readings, x.packed_transcript);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, modem_settings& x) {
  return f(caf::meta::type_name("mts.modem_settings"), x.name, x.device, x.baud, x.gateway, x.init, x.dial_prefix,
           x.software_parity);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, modem_grant& x) {
  auto modem = wire::field(x.modem);
  return f(caf::meta::type_name("mts.modem_grant"), modem);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, collector_hello& x) {
  return f(caf::meta::type_name("mts.collector_hello"), x.name, x.secret, x.protocol_version, x.tcp_sessions,
           x.modems, x.reach_networks, x.reach_prefixes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, join_verdict& x) {
  return f(caf::meta::type_name("mts.join_verdict"), x.accepted, x.reason);
}

static_assert(!caf::allowed_unsafe_message_type<collector_hello>::value, "a wire type must be inspectable");
static_assert(!caf::allowed_unsafe_message_type<join_verdict>::value, "a wire type must be inspectable");
static_assert(!caf::allowed_unsafe_message_type<test_request>::value, "a wire type must be inspectable");
static_assert(!caf::allowed_unsafe_message_type<test_record>::value, "a wire type must be inspectable");
static_assert(!caf::allowed_unsafe_message_type<test_outcome>::value, "a wire type must be inspectable");
static_assert(!caf::allowed_unsafe_message_type<modem_settings>::value, "a wire type must be inspectable");
static_assert(!caf::allowed_unsafe_message_type<modem_grant>::value, "a wire type must be inspectable");

// Registers every wire type (and the actor handles that travel in messages) by name.
void add_wire_types(caf::actor_system_config& cfg);

} // namespace mts

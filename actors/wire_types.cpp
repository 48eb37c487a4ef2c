#include "actors/wire_types.hpp"

#include "actors/interfaces.hpp"

namespace mts {

void add_wire_types(caf::actor_system_config& cfg) {
  // Each also registers std::vector<T> under "std::vector<NAME>".
  cfg.add_message_type<test_request>("mts.test_request");
  cfg.add_message_type<test_record>("mts.test_record");
  cfg.add_message_type<test_outcome>("mts.test_outcome");
  cfg.add_message_type<modem_settings>("mts.modem_settings");
  cfg.add_message_type<modem_grant>("mts.modem_grant");
  cfg.add_message_type<collector_hello>("mts.collector_hello");
  cfg.add_message_type<join_verdict>("mts.join_verdict");
  cfg.add_message_type<modem_broker_actor>("mts.modem_broker_actor");
  cfg.add_message_type<executor_actor>("mts.executor_actor");
  cfg.add_message_type<registrar_actor>("mts.registrar_actor");
}

} // namespace mts

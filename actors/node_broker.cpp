#include "actors/node_broker.hpp"

#include <caf/all.hpp>

namespace mts {

modem_broker_actor::behavior_type node_broker(modem_broker_actor::pointer self, scheduler_actor scheduler,
                                              std::uint64_t node) {
  return {
    [self, scheduler, node](modem_atom, get_atom, test_id id) -> caf::delegated<modem_grant> {
      return self->delegate(scheduler, modem_atom::value, get_atom::value, id, node);
    },
    [self, scheduler, node](modem_atom, fault_atom, test_id id, std::string& reason) {
      self->send(scheduler, modem_atom::value, fault_atom::value, id, std::move(reason), node);
    },
  };
}

} // namespace mts

#pragma once
// A NODE BROKER, on the head: what a collector's tests get as their modem broker (issue 16).
//
// The scheduler spawns one per joined collector and names it in the run requests it sends
// there. It forwards a test's modem request or fault to the scheduler with the node's number,
// so the scheduler answers only for a test running on that node. The collector thus never
// holds the scheduler's own handle: a handle to a remote actor can be cast to any interface
// and sent anything, and this one understands only the two modem messages. It ends when the
// node is lost or the scheduler ends (it is linked to the scheduler).
#include "actors/interfaces.hpp"

#include <cstdint>

namespace mts {

modem_broker_actor::behavior_type node_broker(modem_broker_actor::pointer self, scheduler_actor scheduler,
                                              std::uint64_t node);

} // namespace mts

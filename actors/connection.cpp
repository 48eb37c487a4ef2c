#include "actors/connection.hpp"

#include "io/tcp_reactor.hpp"

#include <caf/all.hpp>


namespace mts {

void link_forwarding_handler::on_connected(io::connection_id) { caf::anon_send(actor_, link_up_atom::value, tag_); }
void link_forwarding_handler::on_connect_failed(io::connection_id, const std::string& reason) {
  caf::anon_send(actor_, conn_fail_atom::value, tag_, reason);
}
void link_forwarding_handler::on_data(io::connection_id, std::string_view bytes) {
  caf::anon_send(actor_, bytes_atom::value, tag_, software_ ? software_->decode(bytes) : std::string(bytes));
}
void link_forwarding_handler::on_closed(io::connection_id, const std::string& reason) {
  caf::anon_send(actor_, link_down_atom::value, tag_, reason);
}

tcp_connection_actor::behavior_type
tcp_connection(tcp_connection_actor::stateful_pointer<tcp_connection_state> self, io::tcp_reactor* reactor,
               link_client_actor owner, std::uint64_t tag, tcp_address target,
               std::chrono::milliseconds connect_timeout) {
  start_link_actor(self, reactor, owner);
  auto handler = std::make_shared<link_forwarding_handler>(tcp_connection_actor{self}, tag);
  self->state.conn = reactor->connect(target.host, target.port, connect_timeout, std::move(handler));
  // Ends the link whenever the actor ends without its terminal event (owner gone, killed).
  self->attach_functor([reactor, conn = self->state.conn] { reactor->close_now(conn); });
  return link_actor_behavior(self);
}

connection_factory make_tcp_connection_factory(io::tcp_reactor* reactor) {
  return [reactor](caf::actor_system& sys, link_client_actor owner, std::uint64_t tag, const tcp_address& target,
                   std::chrono::milliseconds connect_timeout) -> connection_actor {
    return sys.spawn(tcp_connection, reactor, std::move(owner), tag, target, connect_timeout);
  };
}

} // namespace mts

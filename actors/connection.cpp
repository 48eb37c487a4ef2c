#include "actors/connection.hpp"

#include "io/tcp_reactor.hpp"

#include <caf/all.hpp>

#include <charconv>

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

std::optional<tcp_address> parse_tcp_address(const std::string& s) {
  std::size_t colon;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':' || close == 1)
      return std::nullopt;
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0 || s.find(':') != colon)
      return std::nullopt;
  }
  auto port_text = std::string_view(s).substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port_text.size() > 5 || port < 1 ||
      port > 65535)
    return std::nullopt;
  return tcp_address{s.substr(0, colon), static_cast<std::uint16_t>(port)};
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

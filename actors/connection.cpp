#include "actors/connection.hpp"

#include "io/tcp_reactor.hpp"

#include <caf/all.hpp>

#include <charconv>

namespace mts {
namespace {

// Runs on the reactor's I/O thread: only posts the event to the actor.
class forwarding_handler : public io::link_handler {
public:
  forwarding_handler(tcp_connection_actor actor, std::uint64_t tag) : actor_(std::move(actor)), tag_(tag) {}
  void on_connected(io::connection_id) override { caf::anon_send(actor_, link_up_atom::value, tag_); }
  void on_connect_failed(io::connection_id, const std::string& reason) override {
    caf::anon_send(actor_, conn_fail_atom::value, tag_, reason);
  }
  void on_data(io::connection_id, std::string_view bytes) override {
    caf::anon_send(actor_, bytes_atom::value, tag_, std::string(bytes));
  }
  void on_closed(io::connection_id, const std::string& reason) override {
    caf::anon_send(actor_, link_down_atom::value, tag_, reason);
  }

private:
  tcp_connection_actor actor_;
  std::uint64_t tag_;
};

} // namespace

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
  auto& st = self->state;
  st.reactor = reactor;
  st.owner = owner;
  self->monitor(owner);
  self->set_down_handler([self](caf::down_msg&) {
    if (!self->state.closing)
      self->quit();
  });
  auto handler = std::make_shared<forwarding_handler>(tcp_connection_actor{self}, tag);
  st.conn = reactor->connect(target.host, target.port, connect_timeout, std::move(handler));
  // Ends the link whenever the actor ends without its terminal event (owner gone, killed).
  self->attach_functor([reactor, conn = st.conn] { reactor->close_now(conn); });
  auto forward_terminal = [self](auto atom, std::uint64_t t, std::string& reason) {
    self->state.ended = true;
    self->send(self->state.owner, atom, t, std::move(reason));
    self->quit();
  };
  return {
    [self](send_atom, std::string& bytes) {
      if (!self->state.ended)
        self->state.reactor->send(self->state.conn, std::move(bytes));
    },
    [self](close_atom) {
      if (!self->state.ended && !self->state.closing) {
        self->state.closing = true;
        self->state.reactor->close(self->state.conn);
      }
    },
    [self](link_up_atom, std::uint64_t t) { self->send(self->state.owner, link_up_atom::value, t); },
    [self](bytes_atom, std::uint64_t t, std::string& bytes) {
      self->send(self->state.owner, bytes_atom::value, t, std::move(bytes));
    },
    [forward_terminal](link_down_atom, std::uint64_t t, std::string& reason) {
      forward_terminal(link_down_atom::value, t, reason);
    },
    [forward_terminal](conn_fail_atom, std::uint64_t t, std::string& reason) {
      forward_terminal(conn_fail_atom::value, t, reason);
    },
  };
}

connection_factory make_tcp_connection_factory(io::tcp_reactor* reactor) {
  return [reactor](caf::actor_system& sys, link_client_actor owner, std::uint64_t tag, const tcp_address& target,
                   std::chrono::milliseconds connect_timeout) -> connection_actor {
    return sys.spawn(tcp_connection, reactor, std::move(owner), tag, target, connect_timeout);
  };
}

} // namespace mts

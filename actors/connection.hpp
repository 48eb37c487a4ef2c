#pragma once
// The CONNECTION actor for TCP: one per link, on the shared epoll reactor (io/tcp_reactor.hpp),
// so an open link holds no thread.
//
// - On spawn it asks the reactor to connect (host, port, connect timeout). The reactor's
//   callbacks run on the I/O thread and do nothing but caf::anon_send the event to this actor,
//   which forwards it to its owner (a link_client_actor) with the owner's tag.
// - send/close from the owner become reactor send/close (close is graceful: queued bytes are
//   flushed, bounded by the reactor's close timeout). Bytes sent while connecting are queued
//   by the reactor and leave once the link is up.
// - After the terminal event (link_down or conn_fail) has been forwarded the actor quits.
// - If its owner dies (the actor monitors it) after asking for a graceful close, the actor
//   waits for the close to complete (bounded by the reactor's close timeout) so the last
//   bytes still leave; otherwise, and whenever it is killed, the reactor connection is closed
//   at once and no event follows.
// - The reactor must outlive every connection actor's terminal callback: main stops it after
//   the actors have exited and before the actor system is destroyed.
//
// Addresses: parse_tcp_address (common/tcp_address.hpp) gives the parts of "host:port" or
// "[v6]:port", or nothing for a telephone number.
#include "actors/interfaces.hpp"
#include "common/tcp_address.hpp"
#include "drivers/char_format.hpp"
#include "io/tcp_reactor.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace mts {


// The connection actor's full interface: the owner's commands plus the reactor's events
// (sent by its callbacks, forwarded unchanged to the owner).
using tcp_connection_actor = connection_actor::extend_with<link_client_actor>;

struct tcp_connection_state {
  static inline const char* name = "tcp_connection";
  io::tcp_reactor* reactor = nullptr;
  std::uint64_t conn = 0; // the reactor's connection id (0: none, e.g. a device that did not open)
  link_client_actor owner;
  bool ended = false;   // the terminal event arrived
  bool closing = false; // the owner asked for a graceful close
  // The character format made in software on this link (a serial device that does not keep
  // it: actors/serial_connection.hpp); nothing on TCP links.
  std::optional<drivers::parity_codec> software;
};

// What every link actor (TCP, serial) shares. The reactor's callbacks, on the I/O thread, only
// post the event to the actor (decoding a software character format on the way).
class link_forwarding_handler : public io::link_handler {
public:
  link_forwarding_handler(tcp_connection_actor actor, std::uint64_t tag,
                          std::optional<drivers::parity_codec> software = std::nullopt)
      : actor_(std::move(actor)), tag_(tag), software_(std::move(software)) {}
  void on_connected(io::connection_id) override;
  void on_connect_failed(io::connection_id, const std::string& reason) override;
  void on_data(io::connection_id, std::string_view bytes) override;
  void on_closed(io::connection_id, const std::string& reason) override;

private:
  tcp_connection_actor actor_;
  std::uint64_t tag_;
  std::optional<drivers::parity_codec> software_;
};

// The start every link actor shares: its reactor and owner, and the owner monitored (its death
// ends the actor unless a graceful close is under way).
template <class State>
void start_link_actor(tcp_connection_actor::stateful_pointer<State> self, io::tcp_reactor* reactor,
                      link_client_actor owner) {
  auto& st = self->state;
  st.reactor = reactor;
  st.owner = owner;
  self->monitor(owner);
  self->set_down_handler([self](caf::down_msg&) {
    if (!self->state.closing)
      self->quit();
  });
}

// The behaviour every link actor shares: the owner's commands to the reactor (encoding a
// software character format), the reactor's events to the owner; a terminal event ends it.
template <class State>
tcp_connection_actor::behavior_type link_actor_behavior(tcp_connection_actor::stateful_pointer<State> self) {
  auto forward_terminal = [self](auto atom, std::uint64_t t, std::string& reason) {
    self->state.ended = true;
    self->send(self->state.owner, atom, t, std::move(reason));
    self->quit();
  };
  return {
    [self](send_atom, std::string& bytes) {
      auto& st = self->state;
      if (!st.ended && st.conn != 0)
        st.reactor->send(st.conn, st.software ? st.software->encode(bytes) : std::move(bytes));
    },
    [self](close_atom) {
      auto& st = self->state;
      if (!st.ended && !st.closing && st.conn != 0) {
        st.closing = true;
        st.reactor->close(st.conn);
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

tcp_connection_actor::behavior_type
tcp_connection(tcp_connection_actor::stateful_pointer<tcp_connection_state> self, io::tcp_reactor* reactor,
               link_client_actor owner, std::uint64_t tag, tcp_address target,
               std::chrono::milliseconds connect_timeout);

// How a TEST actor gets a link: spawn a connection to `target` whose events go to `owner`
// with `tag`. The real one spawns tcp_connection; actor tests hand in a fake.
using connection_factory = std::function<connection_actor(caf::actor_system& sys, link_client_actor owner,
                                                          std::uint64_t tag, const tcp_address& target,
                                                          std::chrono::milliseconds connect_timeout)>;

// The factory of the server: tcp_connection actors on `reactor` (which must outlive them).
connection_factory make_tcp_connection_factory(io::tcp_reactor* reactor);

} // namespace mts

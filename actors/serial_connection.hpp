#pragma once
// Links to MODEMS: the CONNECTION actor for a serial device, and the factory that opens the
// link to a modem of the pool (a serial device, or a TCP serial gateway through the ordinary
// tcp_connection).
//
// Serial device decisions:
// - Opened non-blocking without becoming the controlling terminal, set raw (no echo, no line
//   editing, no CR/LF translation, no flow control) at the modem's baud with the character
//   format asked for (CS5..CS8, PARENB/PARODD with INPCK: a parity error reads as '\0';
//   CSTOPB), CLOCAL|CREAD|HUPCL; then DTR is raised. A device that cannot be opened or set is
//   conn_fail "cannot open <device>: <reason>".
// - The settings are read back: a device that does not keep the character format (a
//   pseudo-terminal, which Linux keeps at CS8 without parity; a USB adapter without 7-bit
//   support) gets it in software on this link instead (drivers/char_format.hpp: parity added
//   to every byte sent, checked and stripped on every byte received), and the log says so.
// - The descriptor is driven by the reactor's one I/O thread (io::tcp_reactor::adopt): a serial
//   session holds no thread. Just before the descriptor is closed, whatever the reason, DTR is
//   dropped (TIOCMBIC; HUPCL drops it again on close), so the modem hangs up on every path.
//   On a pseudo-terminal, which has no modem lines, that is a harmless error.
// - Otherwise the actor behaves as tcp_connection (actors/connection.hpp): events forwarded to
//   the owner with its tag, a graceful close flushes first, the owner's death closes at once.
#include "actors/connection.hpp"
#include "config/settings.hpp"
#include "drivers/char_format.hpp"
#include "drivers/driver.hpp"

#include <optional>
#include <string>

namespace mts {

// Sets an open tty raw at `baud` with `format`; the problem, or nothing.
std::optional<std::string> configure_serial_port(int fd, std::int64_t baud, const drivers::line_settings& format);

// Whether the open tty kept `format` (its CSIZE and parity bits).
bool port_keeps_format(int fd, const drivers::line_settings& format);

using serial_connection_actor = tcp_connection_actor;

struct serial_connection_state : tcp_connection_state {
  static inline const char* name = "serial_connection"; // `software`: the format the port did not keep
};

serial_connection_actor::behavior_type
serial_connection(serial_connection_actor::stateful_pointer<serial_connection_state> self, io::tcp_reactor* reactor,
                  link_client_actor owner, std::uint64_t tag, std::string device, std::int64_t baud,
                  drivers::line_settings format);

// How a TEST actor opens the link to its modem: `port_format` is the character format to set on
// a serial port (ignored for a gateway).
using modem_link_factory = std::function<connection_actor(
  caf::actor_system& sys, link_client_actor owner, std::uint64_t tag, const modem_settings& modem,
  const drivers::line_settings& port_format, std::chrono::milliseconds connect_timeout)>;

// Serial devices on `reactor`; gateways through `tcp` (which must be valid for gateways).
modem_link_factory make_modem_link_factory(io::tcp_reactor* reactor, connection_factory tcp);

} // namespace mts

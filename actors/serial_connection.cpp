#include "actors/serial_connection.hpp"

#include "io/tcp_reactor.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

namespace mts {
namespace {

std::optional<speed_t> speed_of(std::int64_t baud) {
  switch (baud) {
  case 300: return B300;
  case 600: return B600;
  case 1200: return B1200;
  case 2400: return B2400;
  case 4800: return B4800;
  case 9600: return B9600;
  case 19200: return B19200;
  case 38400: return B38400;
  case 57600: return B57600;
  case 115200: return B115200;
  default: return std::nullopt;
  }
}

// The termios bits of a character format (CSIZE and the parity bits).
tcflag_t size_flags(const drivers::line_settings& f) {
  return f.data_bits == 5 ? CS5 : f.data_bits == 6 ? CS6 : f.data_bits == 7 ? CS7 : CS8;
}
tcflag_t parity_flags(const drivers::line_settings& f) {
  return f.parity == 'N' ? 0 : f.parity == 'O' ? (PARENB | PARODD) : PARENB;
}

void drop_dtr(int fd) {
  int dtr = TIOCM_DTR;
  (void)::ioctl(fd, TIOCMBIC, &dtr); // fails harmlessly on a pseudo-terminal
}

} // namespace

std::optional<std::string> configure_serial_port(int fd, std::int64_t baud, const drivers::line_settings& format) {
  const auto speed = speed_of(baud);
  if (!speed)
    return "unsupported speed " + std::to_string(baud);
  termios t{};
  if (::tcgetattr(fd, &t) != 0)
    return std::strerror(errno);
  ::cfmakeraw(&t);
  t.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
  t.c_cflag |= size_flags(format) | parity_flags(format);
  if (format.parity != 'N') {
    t.c_iflag |= INPCK;
    t.c_iflag &= ~static_cast<tcflag_t>(IGNPAR | PARMRK);
  }
  if (format.stop_bits == 2)
    t.c_cflag |= CSTOPB;
  t.c_cflag |= CLOCAL | CREAD | HUPCL;
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  ::cfsetispeed(&t, *speed);
  ::cfsetospeed(&t, *speed);
  if (::tcsetattr(fd, TCSANOW, &t) != 0) {
    // A device that cannot take the format at all (Linux refuses CS7 on a pseudo-terminal
    // with EINVAL once nothing else would change): 8 bits, no parity; the caller sees with
    // port_keeps_format that the format must be made in software.
    if (errno != EINVAL || (format.data_bits == 8 && format.parity == 'N'))
      return std::strerror(errno);
    t.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB | PARODD);
    t.c_cflag |= CS8;
    t.c_iflag &= ~static_cast<tcflag_t>(INPCK);
    if (::tcsetattr(fd, TCSANOW, &t) != 0)
      return std::strerror(errno);
  }
  ::tcflush(fd, TCIOFLUSH);
  int dtr = TIOCM_DTR;
  (void)::ioctl(fd, TIOCMBIS, &dtr);
  return std::nullopt;
}

bool port_keeps_format(int fd, const drivers::line_settings& format) {
  termios t{};
  if (::tcgetattr(fd, &t) != 0)
    return false;
  return (t.c_cflag & CSIZE) == size_flags(format) && (t.c_cflag & (PARENB | PARODD)) == parity_flags(format);
}

serial_connection_actor::behavior_type
serial_connection(serial_connection_actor::stateful_pointer<serial_connection_state> self, io::tcp_reactor* reactor,
                  link_client_actor owner, std::uint64_t tag, std::string device, std::int64_t baud,
                  drivers::line_settings format) {
  start_link_actor(self, reactor, owner);
  auto& st = self->state;
  const int fd = ::open(device.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  std::optional<std::string> problem;
  if (fd < 0)
    problem = std::strerror(errno);
  else if ((problem = configure_serial_port(fd, baud, format)))
    ::close(fd);
  if (problem) {
    // Reported like a refused connection: through the actor itself, so the order is kept.
    caf::anon_send(serial_connection_actor{self}, conn_fail_atom::value, tag,
                   "cannot open " + device + ": " + *problem);
  } else {
    if (!port_keeps_format(fd, format) && !drivers::parity_codec(format).transparent()) {
      spdlog::info("{} does not keep {} (a pseudo-terminal?): the character format is made in software",
                   device, drivers::coms_settings_text(format));
      st.software.emplace(format);
    }
    auto handler = std::make_shared<link_forwarding_handler>(serial_connection_actor{self}, tag, st.software);
    st.conn = reactor->adopt(fd, std::move(handler), drop_dtr);
    self->attach_functor([reactor, conn = st.conn] { reactor->close_now(conn); });
  }
  return link_actor_behavior(self);
}

modem_link_factory make_modem_link_factory(io::tcp_reactor* reactor, connection_factory tcp) {
  return [reactor, tcp = std::move(tcp)](caf::actor_system& sys, link_client_actor owner, std::uint64_t tag,
                                         const modem_settings& modem, const drivers::line_settings& port_format,
                                         std::chrono::milliseconds connect_timeout) -> connection_actor {
    if (!modem.device.empty())
      return sys.spawn(serial_connection, reactor, std::move(owner), tag, modem.device, modem.baud, port_format);
    tcp_address target;
    if (auto parsed = parse_tcp_address(modem.gateway))
      target = *parsed;
    return tcp(sys, std::move(owner), tag, target, connect_timeout);
  };
}

} // namespace mts

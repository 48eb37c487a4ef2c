// The serial port settings of actors/serial_connection.hpp on a real pseudo-terminal: raw mode,
// the speed, and the read-back that tells whether the port kept the character format.
#include "actors/serial_connection.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

using namespace mts;

namespace {

struct pty_pair {
  int master = -1;
  int slave = -1;
  pty_pair() {
    master = ::posix_openpt(O_RDWR | O_NOCTTY);
    REQUIRE(master >= 0);
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_NONBLOCK);
    REQUIRE(slave >= 0);
  }
  ~pty_pair() {
    ::close(slave);
    ::close(master);
  }
};

} // namespace

TEST_CASE("serial port: raw at the speed, 8N1 kept", "[serial]") {
  pty_pair p;
  const drivers::line_settings n81{9600, 8, 'N', 1};
  REQUIRE_FALSE(configure_serial_port(p.slave, 19200, n81));
  termios t{};
  REQUIRE(::tcgetattr(p.slave, &t) == 0);
  CHECK(::cfgetospeed(&t) == B19200);
  CHECK((t.c_lflag & (ICANON | ECHO)) == 0); // raw: no line editing, no echo
  CHECK((t.c_oflag & OPOST) == 0);           // no CR/LF translation
  CHECK((t.c_cflag & (CLOCAL | CREAD | HUPCL)) == (CLOCAL | CREAD | HUPCL));
  CHECK(port_keeps_format(p.slave, n81));
  CHECK(configure_serial_port(p.slave, 1234, n81) == std::string("unsupported speed 1234"));
}

TEST_CASE("serial port: a pseudo-terminal does not keep 7E1, every time it is opened", "[serial]") {
  pty_pair p;
  const drivers::line_settings e71{9600, 7, 'E', 1};
  // Linux keeps a pseudo-terminal at CS8 without parity; the second attempt is refused with
  // EINVAL (nothing would change), which must not be an error either.
  for (int i = 0; i < 2; ++i) {
    INFO("attempt " << i);
    REQUIRE_FALSE(configure_serial_port(p.slave, 9600, e71));
    CHECK_FALSE(port_keeps_format(p.slave, e71));
  }
}

// IEC 62056-21 framing: byte-exact vectors from the protocol notes (§1.8) and the parser.
#include "drivers/iec_frames.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace {

using namespace mts::drivers::iec;

// A string with embedded control bytes; string literals glued so "\x03" "C" stays two bytes.
#define SOH "\x01"
#define STX "\x02"
#define ETX "\x03"
#define EOT "\x04"

std::string bytes(std::string s, unsigned char bcc_byte) {
  s += static_cast<char>(bcc_byte);
  return s;
}

std::vector<message> drain(frame_parser& p) {
  std::vector<message> out;
  while (auto m = p.next())
    out.push_back(*m);
  return out;
}

} // namespace

TEST_CASE("IEC BCC matches the verified vectors of the notes", "[iec][frames]") {
  // BCC spans everything after SOH (or STX) up to and including ETX.
  CHECK(bcc("P0" STX "(FD2BA0E29731D230)" ETX) == 0x6D);
  CHECK(bcc("P2" STX "(BE2C10B158593B3E)" ETX) == 0x60);
  CHECK(bcc("R1" STX "798001(10)" ETX) == 0x65);
  CHECK(bcc("P0" STX "(FD04BE65D6157FA9)" ETX) == 0x1D);
  CHECK(bcc("(30303030303030303035303734343934)" ETX) == 0x0D);
  CHECK(bcc("B0" ETX) == 0x71);
}

TEST_CASE("IEC BCC is 7-bit", "[iec][frames]") {
  CHECK(bcc(std::string("\x80\x01", 2)) == 0x01);
  CHECK(bcc("") == 0);
}

TEST_CASE("IEC message builders are byte exact", "[iec][frames]") {
  CHECK(command_message("P0", "(FD2BA0E29731D230)") == SOH "P0" STX "(FD2BA0E29731D230)" ETX "m");
  CHECK(command_message("P2", "(BE2C10B158593B3E)") ==
        bytes(SOH "P2" STX "(BE2C10B158593B3E)" ETX, 0x60));
  CHECK(command_message("R1", "798001(10)") == SOH "R1" STX "798001(10)" ETX "e");
  CHECK(command_message("P0", "(FD04BE65D6157FA9)") ==
        bytes(SOH "P0" STX "(FD04BE65D6157FA9)" ETX, 0x1D));
  CHECK(data_message("(30303030303030303035303734343934)") ==
        bytes(STX "(30303030303030303035303734343934)" ETX, 0x0D));
  CHECK(break_message() == std::string("\x01\x42\x30\x03\x71"));
  // Partial blocks end with EOT, which enters the BCC instead of ETX (ETX ^ EOT = 0x07).
  CHECK(data_message("(30303030303030303035303734343934)", true) ==
        bytes(STX "(30303030303030303035303734343934)" EOT, 0x0D ^ 0x07));
  CHECK(request_message("") == "/?!\r\n");
  CHECK(request_message("12345678") == "/?12345678!\r\n");
  CHECK(option_select_message('0', '5', '1') == std::string("\x06" "051\r\n"));
  CHECK(identification_message("EMH5\\2LZQJL0014F") == "/EMH5\\2LZQJL0014F\r\n");
}

TEST_CASE("IEC mode C baud characters", "[iec][frames]") {
  CHECK(mode_c_baud('0') == 300);
  CHECK(mode_c_baud('5') == 9600);
  CHECK(mode_c_baud('6') == 19200);
  CHECK_FALSE(mode_c_baud('7'));
  CHECK_FALSE(mode_c_baud('E')); // mode B
  CHECK(mode_c_baud_char(4800) == '4');
  CHECK_FALSE(mode_c_baud_char(4000));
}

TEST_CASE("IEC parser assembles messages split across calls", "[iec][frames]") {
  frame_parser p;
  p.feed("/EMH5\\2LZ");
  CHECK_FALSE(p.next());
  p.feed("QJL0014F\r");
  CHECK_FALSE(p.next());
  p.feed("\n" STX "C.1.0(1234");
  auto m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::identification);
  CHECK(m->text == "EMH5\\2LZQJL0014F");
  CHECK_FALSE(p.next());
  p.feed("5678)" ETX);
  CHECK_FALSE(p.next()); // the BCC has not arrived
  p.feed("\x48");
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::block);
  CHECK(m->text == "C.1.0(12345678)");
  CHECK(m->bcc_ok);
  CHECK_FALSE(m->partial);
  CHECK(m->raw == STX "C.1.0(12345678)" ETX "\x48");
  CHECK(p.buffered() == 0);
}

TEST_CASE("IEC parser: commands, ACK, NAK, partial blocks", "[iec][frames]") {
  frame_parser p;
  p.feed(SOH "P0" STX "(FD2BA0E29731D230)" ETX "m" "\x06\x15");
  p.feed(SOH "B0" ETX "q");
  p.feed(bytes(STX "(3030)" EOT, 0x05));
  auto all = drain(p);
  REQUIRE(all.size() == 5);
  CHECK(all[0].kind == message_kind::command);
  CHECK(all[0].command == "P0");
  CHECK(all[0].text == "(FD2BA0E29731D230)");
  CHECK(all[0].bcc_ok);
  CHECK(all[1].kind == message_kind::ack);
  CHECK(all[2].kind == message_kind::nak);
  CHECK(all[3].kind == message_kind::command);
  CHECK(all[3].command == "B0");
  CHECK(all[3].text.empty());
  CHECK(all[3].bcc_ok);
  CHECK(all[4].kind == message_kind::block);
  CHECK(all[4].partial);
  CHECK(all[4].text == "(3030)");
  // "(3030)" EOT: '(' ^ ')' ^ '3'^'0'^'3'^'0' ^ EOT = 0x28 ^ 0x29 ^ 0x04 = 0x05.
  CHECK(all[4].raw.back() == 0x05);
  CHECK(all[4].bcc_ok);
}

TEST_CASE("IEC parser skips garbage before a reply and masks parity", "[iec][frames]") {
  frame_parser p;
  p.feed(std::string("\x00\xff junk\r\n", 8));
  CHECK_FALSE(p.next());
  CHECK(p.buffered() == 0);
  // An identification whose bytes still carry a parity bit.
  std::string id = "/EMH5XYZ\r\n";
  id[1] = static_cast<char>('E' | 0x80);
  p.feed("noise" + id);
  auto m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::identification);
  CHECK(m->text == "EMH5XYZ");
}

TEST_CASE("IEC parser reports a bad BCC", "[iec][frames]") {
  frame_parser p;
  p.feed(STX "C.1.0(12345678)" ETX "\x49");
  auto m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::block);
  CHECK_FALSE(m->bcc_ok);
  CHECK(m->text == "C.1.0(12345678)");
  p.feed(SOH "B0" ETX "r");
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::command);
  CHECK_FALSE(m->bcc_ok);
}

TEST_CASE("IEC parser limits the message size", "[iec][frames]") {
  frame_parser p(32);
  p.feed(STX + std::string(40, 'x'));
  auto m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::oversize);
  CHECK(p.buffered() == 0);
  // A complete block over the limit is refused too; the stream then carries on.
  p.feed(STX + std::string(31, 'y') + ETX + "\x01" + "\x15");
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::oversize);
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::nak);
  // An identification line that never ends.
  p.feed("/" + std::string(40, 'z'));
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::oversize);
  // Within the limit all is well.
  p.feed(STX "(1)" ETX);
  p.feed(std::string(1, static_cast<char>('(' ^ '1' ^ ')' ^ 0x03)));
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::block);
  CHECK(m->bcc_ok);
}

TEST_CASE("IEC parser, meter side: request and option select", "[iec][frames]") {
  frame_parser p;
  p.feed("/?12345678!\r\n");
  auto m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::request);
  CHECK(m->text == "12345678");
  p.feed("/?!\r\n");
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::request);
  CHECK(m->text.empty());

  p.expect_option_select(true);
  p.feed("\x06" "05");
  CHECK_FALSE(p.next()); // incomplete option select
  p.feed("1\r\n");
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::option_select);
  CHECK(m->text == "051");
  // After one option select an ACK is a plain acknowledgement again.
  p.feed("\x06");
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::ack);
  // Without the expectation, ACK then digits is an ACK and the digits are dropped.
  p.feed("\x06" "051\r\n");
  m = p.next();
  REQUIRE(m);
  CHECK(m->kind == message_kind::ack);
  CHECK_FALSE(p.next());
}

// DLMS lower layers (drivers/dlms_link.*): the HDLC and wrapper codecs against the published
// vectors (notes meter-protocols §3.2-3.3, dlms-more §7), the frame parser on hostile streams,
// the client link replaying the PB1/PB2 traces, and a client and a server link end to end
// through an in-memory pump. Frames the tests feed in are built here with an independently
// written CRC (reference_crc), never by the code under test.
#include "drivers/dlms_link.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace mts::drivers::dlms;

namespace {

// "7E A0 07" -> bytes (spaces and line breaks ignored).
std::string unhex(std::string_view text) {
  auto digit = [](char c) { return c <= '9' ? c - '0' : (c & ~0x20) - 'A' + 10; };
  std::string out;
  int high = -1;
  for (char c : text) {
    if (c == ' ' || c == '\n')
      continue;
    if (high < 0) {
      high = digit(c);
    } else {
      out += static_cast<char>(high << 4 | digit(c));
      high = -1;
    }
  }
  if (high >= 0)
    throw std::invalid_argument("odd hex text"); // also used before Catch runs (constants)
  return out;
}
// Bytes -> "7E A0 07", so a failed CHECK prints something readable.
std::string hex(std::string_view bytes) {
  static const char d[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty())
      out += ' ';
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}
std::string norm(std::string_view text) { return hex(unhex(text)); }

// CRC-16/X.25 computed the other way round: MSB-first CCITT over bit-reversed bytes, the
// result reversed back, so the frames built here do not trust crc16_x25.
std::uint16_t reference_crc(std::string_view bytes) {
  auto reverse = [](unsigned v, int bits) {
    unsigned r = 0;
    for (int i = 0; i < bits; ++i)
      r |= (v >> i & 1u) << (bits - 1 - i);
    return r;
  };
  unsigned crc = 0xFFFF;
  for (unsigned char c : bytes) {
    crc ^= reverse(c, 8) << 8;
    for (int i = 0; i < 8; ++i)
      crc = (crc & 0x8000 ? crc << 1 ^ 0x1021 : crc << 1) & 0xFFFF;
  }
  return static_cast<std::uint16_t>(reverse(crc, 16) ^ 0xFFFF);
}

std::string lsb_first(std::uint16_t v) { return {static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)}; }

// A frame built by hand: flag, format, addresses, control, [HCS, info], FCS, flag.
std::string make_frame(std::string_view dest_hex, std::string_view src_hex, int control_byte,
                       std::string_view info = {}, bool segmented = false) {
  const std::string dest = unhex(dest_hex), src = unhex(src_hex);
  const std::size_t length = 2 + dest.size() + src.size() + 1 + (info.empty() ? 0 : 2 + info.size()) + 2;
  std::string body{static_cast<char>(0xA0 | (segmented ? 8 : 0) | length >> 8), static_cast<char>(length & 0xFF)};
  body += dest + src;
  body += static_cast<char>(control_byte);
  if (!info.empty()) {
    body += lsb_first(reference_crc(body));
    body += info;
  }
  body += lsb_first(reference_crc(body));
  return "\x7E" + body + "\x7E";
}

const std::string llc_c = unhex("E6 E6 00"), llc_s = unhex("E6 E7 00");

// The vectors of the notes, as published.
const char* const snrm_16_to_1 = "7E A0 07 03 21 93 0F 01 7E";
const char* const snrm_to_1_17 = "7E A0 0A 00 02 00 23 21 93 18 71 7E";
const char* const pb2_snrm = "7E A0 23 00 02 88 EB 41 93 19 32 81 80 14 05 02 05 DC 06 02 05 DC 07 04 00 00 00 01 "
                             "08 04 00 00 00 01 A9 0D 7E";
const char* const pb2_ua = "7E A0 21 41 00 02 88 EB 73 B8 BB 81 80 12 05 01 F8 06 01 3E 07 04 00 00 00 01 08 04 00 "
                           "00 00 01 48 0E 7E";
const char* const ua_params_3_2 = "81 80 14 05 02 00 80 06 02 00 80 07 04 00 00 00 01 08 04 00 00 00 01";
const char* const pb1_ua_params = "81 80 12 05 01 80 06 01 3E 07 04 00 00 00 01 08 04 00 00 00 01";
const char* const pb1_read = "7E A0 11 03 21 32 B7 3D E6 E6 00 05 01 02 FA 08 18 9E 7E";
const char* const pb1_segment1 =
    "7E A8 5B 21 03 52 88 68 E6 E7 00 0C 01 00 01 82 01 25 02 04 10 00 10 12 27 16 11 03"
    " 09 06 00 00 F0 0D 00 FF 02 04 10 00 E8 12 27 12 11 07 09 06 00 00 F0 00 00 FF 02 04"
    " 10 01 50 12 27 60 11 04 09 06 00 00 F0 0F FF FF 02 04 10 04 10 12 00 03 11 00 09 06"
    " 00 00 61 61 00 FF 4E F7 7E";
const char* const pb1_rr2 = "7E A0 07 03 21 51 11 E4 7E";
const char* const pb1_segment2 =
    "7E A8 51 21 03 54 10 D1 02 04 10 48 A0 12 00 03 11 00 09 06 00 00 60 F0 0C FF 02 04"
    " 10 2B C0 12 00 08 11 00 09 06 00 00 01 00 00 FF 02 04 10 C7 38 12 00 14 11 00 09 06"
    " 00 00 0D 00 00 FF 02 04 10 C8 00 12 00 0B 11 00 09 06 00 00 0B 00 00 FF 74 C6 7E";
// PB1 SN association (dlms-more §1.4), to bring the link to N(S)=1 N(R)=1 by a real exchange.
const char* const pb1_aarq = "60 1D A1 09 06 07 60 85 74 05 08 01 02 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 1C 03 20 FF FF";
const char* const pb1_aare = "61 28 A1 09 06 07 60 85 74 05 08 01 02 A2 03 02 01 00 A3 05 A1 03 02 01 00 BE 0F 04 0D "
                             "08 00 06 5F 1F 04 00 18 02 20 09 60 FA 00";

// The information field of a whole frame without HCS (format, 1-byte addresses, control).
std::string info_of(const std::string& frame) { return frame.substr(8, frame.size() - 8 - 3); }

std::vector<hdlc_frame> parse_all(std::string_view bytes) {
  hdlc_frame_parser p;
  p.feed(bytes);
  std::vector<hdlc_frame> out;
  while (auto f = p.next())
    out.push_back(*f);
  return out;
}

std::string pattern(std::size_t n, int seed) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i)
    s += static_cast<char>((i * 7 + seed) & 0xFF);
  return s;
}

// A client and a server link joined in memory. The server's application answers every APDU
// with `respond(apdu)`. Every frame passing is recorded; drop_server / drop_client pick frames
// (by their index among that side's frames) that get lost on the way.
struct pump {
  std::unique_ptr<client_link> client;
  std::unique_ptr<server_link> server;
  std::function<std::string(const std::string&)> respond = [](const std::string& a) { return "re:" + a; };
  std::vector<std::string> at_server, at_client; // APDUs delivered
  std::vector<hdlc_frame> client_frames, server_frames;
  std::vector<std::size_t> drop_server, drop_client;
  bool client_opened = false, client_closed = false, server_opened = false, server_closed = false;
  std::string client_error, server_error;
  std::size_t max_frames_per_output = 0; // window 1: never more than one frame at a time

  bool lost(std::vector<hdlc_frame>& record, const std::vector<std::size_t>& drops, const std::string& bytes) {
    const auto frames = parse_all(bytes);
    max_frames_per_output = std::max(max_frames_per_output, frames.size());
    bool drop = false;
    for (const auto& f : frames) {
      drop = drop || std::find(drops.begin(), drops.end(), record.size()) != drops.end();
      record.push_back(f);
    }
    return drop;
  }

  // Runs until neither side has anything to send.
  void run(const link_output& from_client) {
    absorb_client(from_client);
    std::string c2s = from_client.send, s2c;
    for (int steps = 0; !c2s.empty() || !s2c.empty(); ++steps) {
      REQUIRE(steps < 10000); // a link that never settles fails instead of hanging
      if (!c2s.empty()) {
        const bool drop = lost(client_frames, drop_client, c2s);
        const std::string bytes = std::move(c2s);
        c2s.clear();
        if (!drop) {
          auto o = server->on_bytes(bytes);
          s2c += absorb_server(o);
        }
      }
      if (!s2c.empty()) {
        const bool drop = lost(server_frames, drop_server, s2c);
        const std::string bytes = std::move(s2c);
        s2c.clear();
        if (!drop) {
          auto o = client->on_bytes(bytes);
          absorb_client(o);
          c2s += o.send;
        }
      }
    }
  }
  void absorb_client(const link_output& o) {
    client_opened = client_opened || o.opened;
    client_closed = client_closed || o.closed;
    if (!o.error.empty())
      client_error = o.error;
    at_client.insert(at_client.end(), o.apdus.begin(), o.apdus.end());
  }
  std::string absorb_server(const link_output& o) {
    server_opened = server_opened || o.opened;
    server_closed = server_closed || o.closed;
    if (!o.error.empty())
      server_error = o.error;
    std::string send = o.send;
    for (const auto& apdu : o.apdus) {
      at_server.push_back(apdu);
      const auto reply = server->send_apdu(respond(apdu));
      REQUIRE(reply.error.empty());
      send += reply.send;
    }
    return send;
  }
};

hdlc_settings settings_with(std::uint32_t client_rx, std::uint32_t client_tx, std::uint32_t server_rx,
                            std::uint32_t server_tx) {
  hdlc_settings s;
  s.max_info_receive = client_rx;
  s.max_info_transmit = client_tx;
  s.server_max_info_receive = server_rx;
  s.server_max_info_transmit = server_tx;
  return s;
}

pump hdlc_pump(const hdlc_settings& s) {
  pump p;
  p.client = make_hdlc_client(s);
  p.server = make_hdlc_server(s);
  return p;
}

} // namespace

TEST_CASE("DLMS CRC-16/X.25: the check value and the published frames", "[dlms][link]") {
  CHECK(crc16_x25("123456789") == 0x906E);
  CHECK(reference_crc("123456789") == 0x906E); // the test's own CRC agrees
  // SNRM 7E A0 07 03 21 93 | 0F 01 | 7E: FCS over format..control, least significant byte first.
  CHECK(crc16_x25(unhex("A0 07 03 21 93")) == 0x010F);
  // PB1 read: HCS B7 3D over A0 11 03 21 32, FCS 18 9E over everything up to the information end.
  CHECK(crc16_x25(unhex("A0 11 03 21 32")) == 0x3DB7);
  CHECK(crc16_x25(unhex("A0 11 03 21 32 B7 3D E6 E6 00 05 01 02 FA 08")) == 0x9E18);
}

TEST_CASE("DLMS HDLC addresses: client, 1/2/4-byte server, limits", "[dlms][link]") {
  CHECK(hex(encode_client_address(16)) == "21");
  CHECK(hex(encode_client_address(1)) == "03");
  CHECK(hex(encode_client_address(32)) == "41");
  CHECK_THROWS_AS(encode_client_address(128), std::invalid_argument);

  CHECK(hex(encode_server_address(1, 0, 1)) == "03");
  CHECK(hex(encode_server_address(1, 17, 2)) == "02 23");
  CHECK(hex(encode_server_address(1, 17, 4)) == "00 02 00 23");
  CHECK(hex(encode_server_address(1, 8821, 4)) == "00 02 88 EB");
  CHECK(hex(encode_server_address(0x3FFF, 0x3FFF, 4)) == "FE FE FE FF");
  CHECK_THROWS_AS(encode_server_address(128, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(encode_server_address(1, 1, 1), std::invalid_argument);
  CHECK_THROWS_AS(encode_server_address(1, 128, 2), std::invalid_argument);
  CHECK_THROWS_AS(encode_server_address(1, 0x4000, 4), std::invalid_argument);
  CHECK_THROWS_AS(encode_server_address(1, 1, 3), std::invalid_argument);

  const auto four = decode_server_address(unhex("00 02 88 EB"));
  REQUIRE(four);
  CHECK(four->logical == 1);
  CHECK(four->physical == 8821);
  CHECK(four->size == 4);
  const auto two = decode_server_address(unhex("02 23"));
  REQUIRE(two);
  CHECK((two->logical == 1 && two->physical == 17 && two->size == 2));
  const auto one = decode_server_address(unhex("03"));
  REQUIRE(one);
  CHECK((one->logical == 1 && one->physical == 0 && one->size == 1));
  CHECK_FALSE(decode_server_address(""));
  CHECK_FALSE(decode_server_address(unhex("02")));          // no end bit
  CHECK_FALSE(decode_server_address(unhex("03 23")));       // end bit before the last byte
  CHECK_FALSE(decode_server_address(unhex("00 02 23")));    // 3 bytes
  CHECK_FALSE(decode_server_address(unhex("00 02 00 00 23"))); // 5 bytes
}

TEST_CASE("DLMS HDLC frames encode byte-exact to the published vectors", "[dlms][link]") {
  const auto c16 = encode_client_address(16), s1 = encode_server_address(1, 0, 1);
  CHECK(hex(encode_frame({false, s1, c16, control::snrm, ""})) == norm(snrm_16_to_1));
  CHECK(hex(encode_frame({false, encode_server_address(1, 17, 4), c16, control::snrm, ""})) == norm(snrm_to_1_17));
  CHECK(hex(encode_frame({false, encode_server_address(1, 8821, 4), encode_client_address(32), control::snrm,
                          encode_hdlc_parameters({1500, 1500, 1, 1})})) == norm(pb2_snrm));
  CHECK(hex(encode_frame({false, encode_client_address(32), encode_server_address(1, 8821, 4), control::ua,
                          encode_hdlc_parameters({248, 62, 1, 1})})) == norm(pb2_ua));
  CHECK(hex(encode_frame({false, s1, c16, control::i_frame(1, 1), unhex("E6 E6 00 05 01 02 FA 08")})) ==
        norm(pb1_read));
  CHECK(hex(encode_frame({false, s1, c16, control::rr(2), ""})) == norm(pb1_rr2));
  // The segmented server frames: bit 11 of the format (A8), control I N(R)=2 N(S)=1 and 2.
  CHECK(hex(encode_frame({true, c16, s1, control::i_frame(1, 2), info_of(unhex(pb1_segment1))})) ==
        norm(pb1_segment1));
  CHECK(hex(encode_frame({true, c16, s1, control::i_frame(2, 2), info_of(unhex(pb1_segment2))})) ==
        norm(pb1_segment2));
  // Control bytes of the notes (P/F set).
  CHECK(control::i_frame(1, 1) == 0x32);
  CHECK(control::rr(2) == 0x51);
  CHECK(control::i_frame(1, 2) == 0x52);
  // The 11-bit length field bounds a frame.
  CHECK_NOTHROW(encode_frame({false, s1, c16, 0x10, std::string(2047 - 9, 'x')}));
  CHECK_THROWS(encode_frame({false, s1, c16, 0x10, std::string(2047 - 8, 'x')}));
}

TEST_CASE("DLMS HDLC parameters: the SNRM/UA information fields", "[dlms][link]") {
  // Lengths in 1 byte below 256, else 2; windows in 4 (PB2, PB1).
  CHECK(hex(encode_hdlc_parameters({1500, 1500, 1, 1})) ==
        norm("81 80 14 05 02 05 DC 06 02 05 DC 07 04 00 00 00 01 08 04 00 00 00 01"));
  CHECK(hex(encode_hdlc_parameters({248, 62, 1, 1})) ==
        norm("81 80 12 05 01 F8 06 01 3E 07 04 00 00 00 01 08 04 00 00 00 01"));
  CHECK(hex(encode_hdlc_parameters({128, 62, 1, 1})) == norm(pb1_ua_params));

  // §3.2's UA block writes 128 in 2 bytes: values of any size are read.
  const auto defaults = decode_hdlc_parameters(unhex(ua_params_3_2));
  REQUIRE(defaults);
  CHECK(defaults->max_info_transmit == 128);
  CHECK(defaults->max_info_receive == 128);
  CHECK(defaults->window_transmit == 1);
  CHECK(defaults->window_receive == 1);
  const auto pb2 = decode_hdlc_parameters(unhex("81 80 12 05 01 F8 06 01 3E 07 04 00 00 00 01 08 04 00 00 00 01"));
  REQUIRE(pb2);
  CHECK(pb2->max_info_transmit == 248);
  CHECK(pb2->max_info_receive == 62);
  const auto big = decode_hdlc_parameters(unhex("81 80 06 05 04 00 01 00 00"));
  REQUIRE(big);
  CHECK(big->max_info_transmit == 65536);
  CHECK(big->max_info_receive == 128); // missing: the default
  const auto none = decode_hdlc_parameters("");
  REQUIRE(none);
  CHECK(none->max_info_receive == 128);
  const auto unknown = decode_hdlc_parameters(unhex("81 80 07 09 01 05 06 02 01 00"));
  REQUIRE(unknown); // an unknown parameter is skipped
  CHECK(unknown->max_info_receive == 256);

  CHECK_FALSE(decode_hdlc_parameters(unhex("82 80 03 05 01 80")));       // format id
  CHECK_FALSE(decode_hdlc_parameters(unhex("81 81 03 05 01 80")));       // group id
  CHECK_FALSE(decode_hdlc_parameters(unhex("81 80 05 05 01 80")));       // group longer than the field
  CHECK_FALSE(decode_hdlc_parameters(unhex("81 80 03 05 02 80")));       // value cut short
  CHECK_FALSE(decode_hdlc_parameters(unhex("81 80 03 05 00 80")));       // 0-byte value
  CHECK_FALSE(decode_hdlc_parameters(unhex("81 80 06 05 05 00 00 00 80"))); // 5-byte value
  CHECK_FALSE(decode_hdlc_parameters(unhex("81 80 03 06 01 00")));       // zero size limit
  CHECK_FALSE(decode_hdlc_parameters(unhex("81 80")));
}

TEST_CASE("DLMS HDLC parser finds the published frames, whole or a byte at a time", "[dlms][link]") {
  const std::string stream = unhex(pb1_read) + unhex(pb1_segment1) + unhex(pb1_rr2) + unhex(pb1_segment2);
  SECTION("all in one call") {
    const auto frames = parse_all(stream);
    REQUIRE(frames.size() == 4);
    CHECK(hex(frames[0].destination) == "03");
    CHECK(hex(frames[0].source) == "21");
    CHECK(frames[0].control == 0x32);
    CHECK(frames[0].information == unhex("E6 E6 00 05 01 02 FA 08"));
    CHECK_FALSE(frames[0].segmented);
    CHECK(frames[1].segmented);
    CHECK(frames[1].control == 0x52);
    CHECK(frames[1].information == info_of(unhex(pb1_segment1)));
    CHECK(frames[2].control == 0x51);
    CHECK(frames[2].information.empty());
    CHECK(frames[3].segmented);
    CHECK(frames[3].information.substr(0, 4) == unhex("02 04 10 48"));
  }
  SECTION("one byte at a time") {
    hdlc_frame_parser p;
    std::vector<hdlc_frame> frames;
    for (char c : stream) {
      p.feed(std::string_view(&c, 1));
      while (auto f = p.next())
        frames.push_back(*f);
    }
    REQUIRE(frames.size() == 4);
    CHECK(frames[1].information == info_of(unhex(pb1_segment1)));
    CHECK(frames[3].control == 0x54);
    CHECK(p.dropped_bytes() == 0);
    CHECK(p.bad_frames() == 0);
  }
  SECTION("4-byte addresses") {
    const auto frames = parse_all(unhex(pb2_snrm) + unhex(pb2_ua));
    REQUIRE(frames.size() == 2);
    CHECK(hex(frames[0].destination) == "00 02 88 EB");
    CHECK(hex(frames[0].source) == "41");
    CHECK(frames[0].control == control::snrm);
    CHECK(hex(frames[1].destination) == "41");
    CHECK(hex(frames[1].source) == "00 02 88 EB");
    CHECK(frames[1].information == unhex("81 80 12 05 01 F8 06 01 3E 07 04 00 00 00 01 08 04 00 00 00 01"));
  }
}

TEST_CASE("DLMS HDLC parser drops garbage and bad frames and counts them", "[dlms][link]") {
  const std::string a = unhex(snrm_16_to_1), b = unhex(pb1_read);
  SECTION("garbage before and between frames, with flags and format-like bytes in it") {
    const std::string g1 = unhex("00 FF 7E 12"), g2 = unhex("7E A0 FF 33 7E 55");
    hdlc_frame_parser p;
    p.feed(g1 + a + g2 + b);
    auto f1 = p.next(), f2 = p.next();
    REQUIRE(f1);
    REQUIRE(f2);
    CHECK(f1->control == 0x93);
    CHECK(f2->control == 0x32);
    CHECK_FALSE(p.next());
    CHECK(p.dropped_bytes() == g1.size() + g2.size());
  }
  SECTION("a bad FCS drops that frame only") {
    std::string bad = b;
    bad[bad.size() - 2] ^= 0x01;
    hdlc_frame_parser p;
    p.feed(bad + a);
    auto f = p.next();
    REQUIRE(f);
    CHECK(f->control == 0x93);
    CHECK(p.bad_frames() == 1);
    CHECK(p.dropped_bytes() == b.size() - 1); // its closing flag could have opened the next frame
  }
  SECTION("a bad HCS drops that frame without waiting for its length") {
    std::string bad = b;
    bad[6] ^= 0x01; // HCS low byte
    bad = bad.substr(0, 9); // the rest of it never comes
    hdlc_frame_parser p;
    p.feed(bad + a);
    auto f = p.next();
    REQUIRE(f);
    CHECK(f->control == 0x93);
    CHECK(p.bad_frames() == 1);
  }
  SECTION("information containing 7E and a shared flag between two frames") {
    const std::string x = make_frame("03", "21", 0x10, unhex("E6 E6 00 7E 7E A0 7E"));
    const std::string y = make_frame("03", "21", 0x32, unhex("E6 E6 00 01"));
    const auto frames = parse_all(x + y.substr(1)); // y opened by x's closing flag
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].information == unhex("E6 E6 00 7E 7E A0 7E"));
    CHECK(frames[1].information == unhex("E6 E6 00 01"));
  }
  SECTION("a 3-byte address is no frame") {
    const std::string three = make_frame("00 02 23", "21", 0x93);
    hdlc_frame_parser p;
    p.feed(three + a);
    auto f = p.next();
    REQUIRE(f);
    CHECK(hex(f->destination) == "03");
    CHECK_FALSE(p.next());
    CHECK(p.dropped_bytes() == three.size() - 1); // its closing flag is a flag before a's
  }
  SECTION("two frames in one call, idle flags around them") {
    hdlc_frame_parser p;
    p.feed("\x7E\x7E" + a + "\x7E" + b + "\x7E");
    CHECK(p.next());
    CHECK(p.next());
    CHECK_FALSE(p.next());
    CHECK(p.dropped_bytes() == 0);
  }
}

TEST_CASE("DLMS HDLC client: the PB2 SNRM and UA, then 62-byte frames out and 248 in", "[dlms][link]") {
  hdlc_settings s;
  s.client_address = 32;
  s.server_logical = 1;
  s.server_physical = 8821;
  s.server_address_size = 4;
  s.max_info_receive = 1500;
  s.max_info_transmit = 1500;
  auto link = make_hdlc_client(s);
  CHECK(hex(link->open().send) == norm(pb2_snrm));
  const auto up = link->on_bytes(unhex(pb2_ua));
  CHECK(up.opened);
  CHECK(up.error.empty());
  CHECK(link->negotiated().max_info_transmit == 62);
  CHECK(link->negotiated().max_info_receive == 248);
  CHECK(link->negotiated().window_transmit == 1);

  // 100 bytes + LLC: a first frame of 62 (segmented), the rest after the server's RR.
  const std::string apdu = pattern(100, 1);
  const auto first = parse_all(link->send_apdu(apdu).send);
  REQUIRE(first.size() == 1);
  CHECK(first[0].information.size() == 62);
  CHECK(first[0].segmented);
  CHECK(first[0].control == control::i_frame(0, 0));
  CHECK(first[0].information == llc_c + apdu.substr(0, 59));
  const auto second = parse_all(link->on_bytes(make_frame("41", "00 02 88 EB", control::rr(1))).send);
  REQUIRE(second.size() == 1);
  CHECK(second[0].information == apdu.substr(59));
  CHECK_FALSE(second[0].segmented);
  CHECK(second[0].control == control::i_frame(1, 0));

  // The meter's answer in one frame of 248 bytes is taken.
  const std::string answer = pattern(245, 3);
  const auto in = link->on_bytes(make_frame("41", "00 02 88 EB", control::i_frame(0, 2), llc_s + answer));
  CHECK(in.error.empty());
  REQUIRE(in.apdus.size() == 1);
  CHECK(in.apdus[0] == answer);
  CHECK(in.send.empty()); // an unsegmented answer is acknowledged by the next request
}

TEST_CASE("DLMS HDLC client: the PB1 exchange and its segmented response", "[dlms][link]") {
  auto link = make_hdlc_client(hdlc_settings{}); // client 16 -> server 1, 128/128
  CHECK(hex(link->open().send) == norm(snrm_16_to_1)); // defaults: no information field
  REQUIRE(link->on_bytes(make_frame("21", "03", 0x73, unhex(pb1_ua_params))).opened);
  CHECK(link->negotiated().max_info_transmit == 62);
  CHECK(link->negotiated().max_info_receive == 128);

  // The association brings both sequence numbers to 1.
  CHECK(hex(link->send_apdu(unhex(pb1_aarq)).send) == hex(make_frame("03", "21", 0x10, llc_c + unhex(pb1_aarq))));
  const auto aare = link->on_bytes(make_frame("21", "03", 0x30, llc_s + unhex(pb1_aare)));
  REQUIRE(aare.apdus.size() == 1);
  CHECK(aare.apdus[0] == unhex(pb1_aare));

  CHECK(hex(link->send_apdu(unhex("05 01 02 FA 08")).send) == norm(pb1_read));
  const auto s1 = link->on_bytes(unhex(pb1_segment1));
  CHECK(hex(s1.send) == norm(pb1_rr2));
  CHECK(s1.apdus.empty());
  const auto repeated = link->on_bytes(unhex(pb1_segment1)); // our RR was lost: the meter repeats
  CHECK(hex(repeated.send) == norm(pb1_rr2));                // the same RR, the segment not taken twice
  CHECK(repeated.apdus.empty());
  const auto s2 = link->on_bytes(unhex(pb1_segment2));
  CHECK(hex(s2.send) == hex(make_frame("03", "21", 0x71))); // RR N(R)=3
  CHECK(s2.apdus.empty());
  const std::string tail = unhex("02 04 10 C8 08 12 00 0B 11 00 09 06 00 00 0B 00 01 FF");
  const auto s3 = link->on_bytes(make_frame("21", "03", 0x56, tail)); // I N(R)=2 N(S)=3, last
  CHECK(s3.send.empty());
  REQUIRE(s3.apdus.size() == 1);
  const std::string joined = s3.apdus[0];
  CHECK(hex(joined.substr(0, 11)) == "0C 01 00 01 82 01 25 02 04 10 00");
  CHECK(joined == info_of(unhex(pb1_segment1)).substr(3) + info_of(unhex(pb1_segment2)) + tail);
  CHECK(link->dropped_bytes() == 0);
}

TEST_CASE("DLMS HDLC client: I-frames before the poll are taken and acknowledged once", "[dlms][link]") {
  auto link = make_hdlc_client(hdlc_settings{});
  link->open();
  REQUIRE(link->on_bytes(make_frame("21", "03", 0x73)).opened);
  REQUIRE(link->send_apdu("q").error.empty());
  const auto burst = link->on_bytes(make_frame("21", "03", control::i_frame(0, 1, false), llc_s + "ab", true) +
                                    make_frame("21", "03", control::i_frame(1, 1, true), "cd", true));
  CHECK(hex(burst.send) == hex(make_frame("03", "21", control::rr(2)))); // one RR, after the polled frame
  CHECK(burst.apdus.empty());
  const auto last = link->on_bytes(make_frame("21", "03", control::i_frame(2, 1), "ef"));
  CHECK(last.apdus == std::vector<std::string>{"abcdef"});
  // The next request carries N(S)=1 and acknowledges all three with N(R)=3.
  CHECK(parse_all(link->send_apdu("n").send).at(0).control == control::i_frame(1, 3));
}

TEST_CASE("DLMS HDLC server: answers the PB2 SNRM with the PB2 UA", "[dlms][link]") {
  hdlc_settings s;
  s.server_physical = 8821;
  s.server_address_size = 4;
  s.server_max_info_transmit = 248;
  s.server_max_info_receive = 62;
  auto server = make_hdlc_server(s);
  const auto ua = server->on_bytes(unhex(pb2_snrm));
  CHECK(ua.opened);
  CHECK(hex(ua.send) == norm(pb2_ua));
  CHECK(server->negotiated().max_info_transmit == 248);
  CHECK(server->negotiated().max_info_receive == 62);

  // A default SNRM (no information field) still gets a UA with one: the minimum of each pair.
  auto other = make_hdlc_server(settings_with(128, 128, 2030, 2030));
  const auto frames = parse_all(other->on_bytes(unhex(snrm_16_to_1)).send);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].control == control::ua);
  CHECK(hex(frames[0].information) == norm("81 80 12 05 01 80 06 01 80 07 04 00 00 00 01 08 04 00 00 00 01"));
}

TEST_CASE("DLMS HDLC end to end: the minimum of each limit wins", "[dlms][link]") {
  auto p = hdlc_pump(settings_with(1000, 500, 300, 700));
  p.run(p.client->open());
  CHECK(p.client_opened);
  CHECK(p.server_opened);
  CHECK(p.client->negotiated().max_info_transmit == 300);
  CHECK(p.client->negotiated().max_info_receive == 700);
  CHECK(p.server->negotiated().max_info_transmit == 700);
  CHECK(p.server->negotiated().max_info_receive == 300);

  p.run(p.client->send_apdu(pattern(2000, 5)));
  REQUIRE(p.at_server.size() == 1);
  CHECK(p.at_server[0] == pattern(2000, 5));
  REQUIRE(p.at_client.size() == 1);
  CHECK(p.at_client[0] == "re:" + pattern(2000, 5));
  for (const auto& f : p.client_frames)
    CHECK(f.information.size() <= 300);
  for (const auto& f : p.server_frames)
    CHECK(f.information.size() <= 700);
}

TEST_CASE("DLMS HDLC end to end: 5000-byte APDUs both ways in 128-byte frames, window 1", "[dlms][link]") {
  auto p = hdlc_pump(settings_with(128, 128, 128, 128));
  p.respond = [](const std::string& a) { return std::string(a.rbegin(), a.rend()); };
  p.run(p.client->open());
  REQUIRE(p.client_opened);
  const std::string request = pattern(5000, 9);
  const std::size_t before_c = p.client_frames.size(), before_s = p.server_frames.size();
  p.run(p.client->send_apdu(request));
  REQUIRE(p.at_server.size() == 1);
  CHECK(p.at_server[0] == request);
  REQUIRE(p.at_client.size() == 1);
  CHECK(p.at_client[0] == std::string(request.rbegin(), request.rend()));
  CHECK(p.max_frames_per_output == 1);
  CHECK(p.client_error.empty());

  // 5003 bytes with the LLC: 39 full frames and one of 11, each way.
  std::vector<hdlc_frame> client_i, server_i;
  int client_rr = 0, server_rr = 0;
  for (std::size_t i = before_c; i < p.client_frames.size(); ++i) {
    if (control::is_i_frame(p.client_frames[i].control))
      client_i.push_back(p.client_frames[i]);
    else if (control::is_rr(p.client_frames[i].control))
      ++client_rr;
  }
  for (std::size_t i = before_s; i < p.server_frames.size(); ++i) {
    if (control::is_i_frame(p.server_frames[i].control))
      server_i.push_back(p.server_frames[i]);
    else if (control::is_rr(p.server_frames[i].control))
      ++server_rr;
  }
  REQUIRE(client_i.size() == 40);
  REQUIRE(server_i.size() == 40);
  CHECK(server_rr == 39); // one RR per segment of the request
  CHECK(client_rr == 39); // and of the response
  for (std::size_t i = 0; i < 40; ++i) {
    CHECK(client_i[i].information.size() == (i < 39 ? 128u : 11u));
    CHECK(server_i[i].information.size() == (i < 39 ? 128u : 11u));
    CHECK(client_i[i].segmented == (i < 39));
    CHECK(server_i[i].segmented == (i < 39));
    CHECK(control::ns(client_i[i].control) == static_cast<int>(i % 8));
    CHECK(control::poll(client_i[i].control));
  }
  CHECK(client_i[0].information.substr(0, 3) == llc_c);
  CHECK(client_i[1].information.substr(0, 3) == request.substr(125, 3)); // no LLC after the first
  CHECK(server_i[0].information.substr(0, 3) == llc_s);

  // A second exchange continues the sequence numbers.
  p.run(p.client->send_apdu("again"));
  REQUIRE(p.at_client.size() == 2);
  CHECK(p.at_client[1] == "niaga");
}

TEST_CASE("DLMS HDLC end to end: DISC, UA, closed", "[dlms][link]") {
  auto p = hdlc_pump(hdlc_settings{});
  p.run(p.client->open());
  p.run(p.client->close());
  CHECK(p.client_frames.back().control == control::disc);
  CHECK(p.server_frames.back().control == control::ua);
  CHECK(p.client_closed);
  CHECK(p.server_closed);
  // The server is in disconnected mode now: an I-frame gets DM.
  const auto dm = parse_all(p.server->on_bytes(make_frame("03", "21", 0x10, llc_c + "x")).send);
  REQUIRE(dm.size() == 1);
  CHECK(dm[0].control == control::dm);
  CHECK(hex(dm[0].destination) == "21");
}

TEST_CASE("DLMS HDLC end to end: a lost frame is recovered by repeat_last, each APDU once", "[dlms][link]") {
  auto p = hdlc_pump(settings_with(128, 128, 128, 128));
  const std::string long_request = pattern(300, 2); // 3 frames
  p.respond = [](const std::string& a) { return a.size() > 100 ? pattern(400, 4) : "ok:" + a; };

  SECTION("the UA") {
    p.drop_server = {0};
    p.run(p.client->open());
    CHECK_FALSE(p.client_opened);
    p.run(p.client->repeat_last());
    CHECK(p.client_opened);
    p.run(p.client->send_apdu("a"));
    CHECK(p.at_client == std::vector<std::string>{"ok:a"});
  }
  SECTION("a whole answer") {
    p.run(p.client->open());
    p.drop_server = {p.server_frames.size()};
    p.run(p.client->send_apdu("a"));
    CHECK(p.at_server.size() == 1);
    CHECK(p.at_client.empty());
    p.run(p.client->repeat_last()); // the I-frame again: a repeat for the server
    CHECK(p.at_server.size() == 1);
    CHECK(p.at_client == std::vector<std::string>{"ok:a"});
    p.run(p.client->send_apdu("b"));
    CHECK(p.at_server == std::vector<std::string>{"a", "b"});
    CHECK(p.at_client == std::vector<std::string>{"ok:a", "ok:b"});
  }
  SECTION("a middle and the last segment of a segmented answer, and an RR of the request") {
    p.run(p.client->open());
    const auto base = p.server_frames.size();
    // Server frames: RR(1), RR(2) lost, RR(2) again, answer segment 1, segment 2 lost, segment 2
    // again, segment 3, segment 4 (the last) lost, segment 4 again.
    p.drop_server = {base + 1, base + 4, base + 7};
    p.run(p.client->send_apdu(long_request));
    int repeats = 0;
    while (p.at_client.empty() && repeats < 10) {
      p.run(p.client->repeat_last());
      ++repeats;
    }
    CHECK(repeats == 3);
    CHECK(p.at_server == std::vector<std::string>{long_request});
    CHECK(p.at_client == std::vector<std::string>{pattern(400, 4)});
    p.run(p.client->send_apdu("c"));
    CHECK(p.at_client.size() == 2);
    CHECK(p.at_server.size() == 2);
  }
  SECTION("the client's RR") {
    p.run(p.client->open());
    p.run(p.client->send_apdu("x")); // moves both sequences off zero
    const auto base = p.client_frames.size();
    p.drop_client = {base + 3}; // request in 3 frames, then its first RR
    p.run(p.client->send_apdu(long_request));
    CHECK(p.at_client.size() == 1);
    p.run(p.client->repeat_last());
    CHECK(p.at_client.size() == 2);
    CHECK(p.at_client[1] == pattern(400, 4));
    CHECK(p.at_server.size() == 2);
  }
  CHECK(p.client_error.empty());
  CHECK(p.server_error.empty());
}

TEST_CASE("DLMS HDLC server: repeats of SNRM, I-frame and RR get the last answer again", "[dlms][link]") {
  auto server = make_hdlc_server(settings_with(128, 128, 128, 128));
  const std::string snrm = unhex(snrm_16_to_1);
  const auto ua = server->on_bytes(snrm);
  REQUIRE(ua.opened);
  const auto ua_again = server->on_bytes(snrm);
  CHECK(ua_again.send == ua.send);
  CHECK_FALSE(ua_again.opened); // the same link, its UA was lost

  const std::string request = make_frame("03", "21", control::i_frame(0, 0), llc_c + "req");
  const auto in = server->on_bytes(request);
  REQUIRE(in.apdus == std::vector<std::string>{"req"});
  const auto answer = server->send_apdu(pattern(200, 1)); // two segments
  const auto seg1 = parse_all(answer.send);
  REQUIRE(seg1.size() == 1);
  CHECK(seg1[0].segmented);
  const auto again = server->on_bytes(request); // the client missed the first segment
  CHECK(again.apdus.empty());
  CHECK(again.send == answer.send);
  const std::string rr1 = make_frame("03", "21", control::rr(1));
  const auto seg2 = server->on_bytes(rr1);
  REQUIRE(parse_all(seg2.send).size() == 1);
  CHECK_FALSE(parse_all(seg2.send)[0].segmented);
  CHECK(server->on_bytes(rr1).send == seg2.send); // the same RR: the last segment again
  // A repeat that comes before the application answered: nothing to repeat yet, not taken twice.
  const std::string next = make_frame("03", "21", control::i_frame(1, 2), llc_c + "second");
  CHECK(server->on_bytes(next).apdus == std::vector<std::string>{"second"});
  const auto early = server->on_bytes(next);
  CHECK(early.send.empty());
  CHECK(early.apdus.empty());
  const auto reply = server->send_apdu("r");
  CHECK(server->on_bytes(next).send == reply.send);

  // An SNRM after traffic is a new link: opened again, sequence numbers from 0.
  const auto reopened = server->on_bytes(snrm);
  CHECK(reopened.opened);
  CHECK(server->on_bytes(request).apdus == std::vector<std::string>{"req"});
}

TEST_CASE("DLMS HDLC addresses: frames for someone else are ignored", "[dlms][link]") {
  SECTION("the server stays silent to another server address") {
    hdlc_settings s;
    s.server_physical = 17;
    s.server_address_size = 4;
    auto server = make_hdlc_server(s);
    const auto to_18 = server->on_bytes(encode_frame({false, encode_server_address(1, 18, 4), "\x21", control::snrm, ""}));
    CHECK(to_18.send.empty());
    CHECK_FALSE(to_18.opened);
    CHECK(server->on_bytes(encode_frame({false, "\x02\x23", "\x21", control::snrm, ""})).send.empty()); // 2-byte form
    const auto to_17 = server->on_bytes(unhex(snrm_to_1_17));
    CHECK(to_17.opened);
    CHECK_FALSE(to_17.send.empty());
  }
  SECTION("the client drops frames for another client or from another server, and counts them") {
    auto link = make_hdlc_client(hdlc_settings{});
    link->open();
    const std::string other_client = make_frame("23", "03", 0x73), other_server = make_frame("21", "05", 0x73);
    const auto o = link->on_bytes(other_client + other_server);
    CHECK_FALSE(o.opened);
    CHECK(link->dropped_bytes() == other_client.size() + other_server.size());
    CHECK(link->on_bytes("\x01\x02" + make_frame("21", "03", 0x73)).opened); // garbage counted too
    CHECK(link->dropped_bytes() == other_client.size() + other_server.size() + 2);
  }
}

TEST_CASE("DLMS HDLC client: FRMR, DM, DISC answers and errors", "[dlms][link]") {
  auto connected = [] {
    auto link = make_hdlc_client(hdlc_settings{});
    link->open();
    REQUIRE(link->on_bytes(make_frame("21", "03", 0x73)).opened);
    return link;
  };
  SECTION("FRMR names the reason bits") {
    CHECK(connected()->on_bytes(make_frame("21", "03", 0x97, unhex("10 00 01"))).error ==
          "frame rejected: invalid control field");
    CHECK(connected()->on_bytes(make_frame("21", "03", 0x97, unhex("10 00 02"))).error ==
          "frame rejected: invalid frame or state");
    CHECK(connected()->on_bytes(make_frame("21", "03", 0x97, unhex("10 00 04"))).error ==
          "frame rejected: information field too long");
    CHECK(connected()->on_bytes(make_frame("21", "03", 0x97, unhex("10 00 0C"))).error ==
          "frame rejected: information field too long, invalid N(R)");
    CHECK(connected()->on_bytes(make_frame("21", "03", 0x97)).error == "frame rejected: reason not given");
  }
  SECTION("DM while connected; DM to SNRM") {
    CHECK(connected()->on_bytes(make_frame("21", "03", 0x1F)).error == "disconnected mode");
    auto link = make_hdlc_client(hdlc_settings{});
    link->open();
    CHECK(link->on_bytes(make_frame("21", "03", 0x1F)).error == "disconnected mode");
  }
  SECTION("DM or UA to DISC: closed") {
    auto a = connected();
    CHECK(parse_all(a->close().send).at(0).control == control::disc);
    const auto by_dm = a->on_bytes(make_frame("21", "03", 0x1F));
    CHECK(by_dm.closed);
    CHECK(by_dm.error.empty());
    auto b = connected();
    b->close();
    CHECK(b->on_bytes(make_frame("21", "03", 0x73)).closed);
  }
  SECTION("DISC from the meter: UA and closed") {
    const auto o = connected()->on_bytes(make_frame("21", "03", 0x53));
    CHECK(o.closed);
    REQUIRE(parse_all(o.send).size() == 1);
    CHECK(parse_all(o.send)[0].control == control::ua);
  }
  SECTION("an APDU longer than max_apdu, sent or received") {
    hdlc_settings s;
    s.max_apdu = 150;
    auto link = make_hdlc_client(s);
    link->open();
    link->on_bytes(make_frame("21", "03", 0x73));
    CHECK_FALSE(link->send_apdu(std::string(151, 'x')).error.empty());
    auto rx = make_hdlc_client(s);
    rx->open();
    rx->on_bytes(make_frame("21", "03", 0x73));
    REQUIRE(rx->send_apdu("q").error.empty());
    const auto first = rx->on_bytes(make_frame("21", "03", control::i_frame(0, 1), llc_s + std::string(100, 'a'), true));
    CHECK(first.error.empty());
    const auto second = rx->on_bytes(make_frame("21", "03", control::i_frame(1, 1), std::string(51, 'b')));
    CHECK(second.apdus.empty());
    CHECK(second.error.find("longer than the limit of 150") != std::string::npos);
  }
  SECTION("an N(R) that does not take our frame: sent again three times, then an error") {
    auto link = connected();
    const std::string sent = link->send_apdu(std::string(200, 'z')).send; // first of two segments
    const std::string wrong_rr = make_frame("21", "03", control::rr(0));
    for (int i = 0; i < 3; ++i)
      CHECK(link->on_bytes(wrong_rr).send == sent);
    CHECK(link->on_bytes(wrong_rr).error == "frame not acknowledged after 3 repeats");
  }
  SECTION("an oversize information field gets FRMR from the server, which the client names") {
    auto server = make_hdlc_server(settings_with(128, 128, 128, 128));
    server->on_bytes(unhex(snrm_16_to_1));
    const auto frmr = parse_all(server->on_bytes(make_frame("03", "21", 0x10, std::string(129, 'y'))).send);
    REQUIRE(frmr.size() == 1);
    CHECK(frmr[0].control == control::frmr);
    REQUIRE(frmr[0].information.size() == 3);
    CHECK(frmr[0].information[0] == 0x10);
    CHECK(frmr[0].information[2] == 0x04);
    CHECK(connected()->on_bytes(encode_frame(frmr[0])).error == "frame rejected: information field too long");
  }
}

TEST_CASE("DLMS wrapper: headers both ways, byte at a time, addresses and errors", "[dlms][link]") {
  CHECK(hex(encode_wrapper(0x10, 1, unhex("C0 01 C1"))) == "00 01 00 10 00 01 00 03 C0 01 C1");
  wrapper_settings s; // client wPort 16, server wPort 1
  auto client = make_wrapper_client(s);
  auto server = make_wrapper_server(s);
  const auto up = client->open();
  CHECK(up.opened);
  CHECK(up.send.empty());
  const std::string request = pattern(300, 6);
  const auto out = client->send_apdu(request);
  CHECK(hex(out.send.substr(0, 8)) == "00 01 00 10 00 01 01 2C");
  CHECK(out.send.substr(8) == request);

  std::vector<std::string> got;
  for (char c : out.send) {
    const auto o = server->on_bytes(std::string_view(&c, 1));
    got.insert(got.end(), o.apdus.begin(), o.apdus.end());
  }
  CHECK(got == std::vector<std::string>{request});
  const auto reply = server->send_apdu("answer");
  CHECK(hex(reply.send.substr(0, 8)) == "00 01 00 01 00 10 00 06");
  // Two PDUs in one call, one for another client wPort in between.
  const auto back = client->on_bytes(reply.send + encode_wrapper(1, 0x11, "xyz") + reply.send);
  CHECK(back.apdus == std::vector<std::string>{"answer", "answer"});
  CHECK(client->dropped_bytes() == 8 + 3);
  CHECK(client->repeat_last().send.empty());
  CHECK(client->negotiated().max_info_receive == 128);
  CHECK(server->on_bytes(encode_wrapper(0x10, 2, "for wPort 2")).apdus.empty());

  SECTION("a version other than 1 is a link error") {
    CHECK(client->on_bytes(unhex("00 02 00 01 00 10 00 01 00")).error == "wrapper version 2");
    CHECK(server->on_bytes(unhex("01 01 00 10 00 01 00 01 00")).error == "wrapper version 257");
  }
  SECTION("a length above the limit is a link error, and so is sending one") {
    wrapper_settings small;
    small.max_apdu = 10;
    auto c = make_wrapper_client(small);
    c->open();
    CHECK(c->on_bytes(unhex("00 01 00 01 00 10 00 0B")).error == "wrapper length 11 above the limit of 10");
    auto c2 = make_wrapper_client(small);
    c2->open();
    CHECK_FALSE(c2->send_apdu(std::string(11, 'x')).error.empty());
    CHECK(c2->close().closed);
  }
}

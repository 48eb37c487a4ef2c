// The simulated DLMS/COSEM meter: its pieces, its replies byte for byte where the notes publish
// vectors (UA parameters, AARE accepted LN and SN, the L+G rejection, GET responses built by
// hand with an independent CRC), then the DLMS driver against the meter in-process for every
// transport, referencing and authentication, with small PDUs and information fields, and each
// fault: the readings must equal expected_readings() and the results the texts of docs/dlms.md.
#include "drivers/dlms.hpp"
#include "drivers/registry.hpp"
#include "io/tcp_reactor.hpp"
#include "sim/dlms_meter.hpp"
#include "sim/iec_meter.hpp"
#include "sim/meter_session.hpp"
#include "sim/modem_server.hpp"
#include "sim/server.hpp"
#include "sim/sim_config.hpp"

#include "tests/unit/driver_harness.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>

namespace {

using namespace mts::sim;
using namespace mts::drivers;
using namespace std::chrono_literals;
using mts::unix_seconds;
using namespace mts::testing;
namespace dl = mts::drivers::dlms;

// 2024-03-10T12:34:56Z (a Sunday)
constexpr unix_seconds now_s = 1710074096;
constexpr unix_ms now_ms = now_s * 1000;
// 2024-03-08T00:00:00Z
constexpr unix_seconds day0 = 1709856000;

std::string bytes(std::initializer_list<int> v) {
  std::string out;
  for (int b : v)
    out += static_cast<char>(b);
  return out;
}
std::string hex(const std::string& text) { // "61 29 A1" -> bytes
  std::string out;
  for (std::size_t i = 0; i + 1 < text.size() + 1; ++i) {
    if (text[i] == ' ')
      continue;
    out += static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16));
    ++i;
  }
  return out;
}
std::string be(std::uint64_t v, int n) {
  std::string out;
  for (int i = n - 1; i >= 0; --i)
    out += static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// CRC-16/X.25 written out here, independently of drivers/dlms_link.cpp.
std::uint16_t x25(const std::string& data) {
  std::uint16_t crc = 0xFFFF;
  for (unsigned char c : data) {
    crc ^= c;
    for (int i = 0; i < 8; ++i)
      crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0x8408) : static_cast<std::uint16_t>(crc >> 1);
  }
  return static_cast<std::uint16_t>(~crc);
}
std::string le16(std::uint16_t v) { return bytes({v & 0xFF, v >> 8}); }
// An HDLC frame by hand: 7E, format A0/A8 + length, addresses, control, [HCS, info], FCS, 7E.
std::string frame(const std::string& dest, const std::string& src, int control, const std::string& info = "",
                  bool segmented = false) {
  const std::size_t length = 2 + dest.size() + src.size() + 1 + (info.empty() ? 0 : 2 + info.size()) + 2;
  std::string body = bytes({(segmented ? 0xA8 : 0xA0) | static_cast<int>(length >> 8), static_cast<int>(length & 0xFF)}) +
                     dest + src + static_cast<char>(control);
  if (!info.empty())
    body += le16(x25(body)) + info;
  body += le16(x25(body));
  return "\x7E" + body + "\x7E";
}
std::string wrapped(int source, int destination, const std::string& apdu) {
  return bytes({0, 1}) + be(static_cast<std::uint64_t>(source), 2) + be(static_cast<std::uint64_t>(destination), 2) +
         be(apdu.size(), 2) + apdu;
}

const mts::meter_type_registry& registry() {
  static const mts::meter_type_registry types;
  return types;
}

meter_identity identity(const char* type = "DLMS") {
  auto id = generated_identity(*registry().find(type), 42, 0);
  id.serial = "12345678";
  id.outstation_address = "1";
  id.password = "ABCD1234";
  id.clock_offset_seconds = 0;
  return id;
}

dlms_meter_config instant(std::uint64_t session = 1) { return instant_meter<dlms_meter_config>(now_s, session); }

// Published vectors (meter-protocols.md §3.4, dlms-more.md §1.4, §6).
const std::string aarq_ln = hex("60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 7E 1F 04 B0");
const std::string aare_ln = hex("61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 00 BE 10 04 0E 08 00 06 "
                                "5F 1F 04 00 00 50 1F 01 F4 00 07");
const std::string aarq_lls = hex("60 36 A1 09 06 07 60 85 74 05 08 01 01 8A 02 07 80 8B 07 60 85 74 05 08 02 01 AC 0A 80 08 "
                                 "31 32 33 34 35 36 37 38 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 7E 1F 04 B0");
const std::string aare_lls_rejected = hex("61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 0D");
const std::string aarq_sn = hex("60 1D A1 09 06 07 60 85 74 05 08 01 02 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 1C 03 20 FF FF");
// The SN AARE of dlms-more.md §1.4 as printed says BE 0F 04 0D (61 28) but carries 14 bytes of
// InitiateResponse (08 00 06 5F 1F 04 00 18 02 20 09 60 FA 00): its content with the lengths
// that content has.
const std::string aare_sn = hex("61 29 A1 09 06 07 60 85 74 05 08 01 02 A2 03 02 01 00 A3 05 A1 03 02 01 00 BE 10 04 0E 08 00 06 "
                                "5F 1F 04 00 18 02 20 09 60 FA 00");

// A wrapper session's reply APDU to one request APDU (client wPort 16, server wPort 1).
struct wrapper_client {
  dlms_meter& meter;
  std::string ask(const std::string& apdu, int destination = 1) {
    const auto reply = sent(meter.on_bytes(wrapped(16, destination, apdu), now_ms));
    if (reply.empty())
      return reply;
    REQUIRE(reply.size() >= 8);
    CHECK(reply.substr(0, 8) == bytes({0, 1}) + be(static_cast<std::uint64_t>(destination), 2) + bytes({0, 16}) +
                                    be(reply.size() - 8, 2));
    return reply.substr(8);
  }
};

std::string get(int class_id, const dl::obis& ln, int attribute, const std::string& access = "\x00") {
  return bytes({0xC0, 0x01, 0xC1}) + be(static_cast<std::uint64_t>(class_id), 2) + dl::obis_bytes(ln) +
         static_cast<char>(attribute) + (access == std::string("\x00") ? std::string(1, '\0') : access);
}
std::string datetime(int y, int mo, int d, int wd, int h, int mi, int s, int deviation, int status) {
  return be(static_cast<std::uint64_t>(y), 2) + bytes({mo, d, wd, h, mi, s, 0}) +
         be(static_cast<std::uint16_t>(deviation), 2) + static_cast<char>(status);
}
std::string not_specified_datetime(int y, int mo, int d, int h, int mi) {
  return be(static_cast<std::uint64_t>(y), 2) + bytes({mo, d, 0xFF, h, mi, 0, 0, 0x80, 0x00, 0xFF});
}
// Selective access 1 on the clock column, all columns (meter-protocols.md §3.8).
std::string range(const std::string& from, const std::string& to) {
  return hex("01 01 02 04 02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00") + "\x09\x0C" + from + "\x09\x0C" + to +
         hex("01 00");
}

} // namespace

TEST_CASE("dlms meter pieces: objects, base names, block sizes, challenge", "[dlms][sim]") {
  // The independent CRC against the notes' published checks.
  CHECK(x25("123456789") == 0x906E);
  CHECK(frame(bytes({0x03}), bytes({0x21}), 0x93) == hex("7E A0 07 03 21 93 0F 01 7E"));

  const auto cfg = dlms_settings_of(identity("DLMS-SN"));
  const auto list = cosem::objects(cfg);
  REQUIRE(list.size() == 20); // association, serial, clock, 7 registers, 6 interval values, 2 data, 2 profiles
  CHECK(list[0].base_name == 0xFA00);
  CHECK(list[0].class_id == 12);
  CHECK(list[1].ln == dl::obis{0, 0, 96, 1, 0, 255});
  CHECK(list[1].base_name == 0x1000);
  CHECK(list[2].base_name == 0x1080);
  const auto ln_list = cosem::objects(dlms_settings_of(identity()));
  CHECK(ln_list[0].class_id == 15);

  // LN: C4 02 C1 last block(4) 00 len raw; 128 -> 9 + 1 length byte -> 118 raw bytes.
  CHECK(cosem::block_capacity(128, true) == 118);
  CHECK(cosem::block_capacity(128, false) == 121);
  CHECK(cosem::block_capacity(200, true) == 189); // 2 length bytes (81 xx)
  CHECK(cosem::block_capacity(1024, true) == 1012); // 3 length bytes (82 xx xx)

  const auto id = identity();
  CHECK(cosem::server_challenge(id, 1).size() == 16);
  CHECK(cosem::server_challenge(id, 1) == cosem::server_challenge(id, 1));
  CHECK(cosem::server_challenge(id, 1) != cosem::server_challenge(id, 2));
  CHECK(cosem::server_system_title(id).substr(0, 3) == "SIM");
  CHECK(cosem::server_system_title(id).size() == 8);
}

TEST_CASE("dlms meter: LN over the wrapper, byte for byte", "[dlms][sim]") {
  auto id = identity();
  id.utc_offset_minutes = 60;
  id.dlms->clock_utc_offset_minutes = 60;
  meter_faults f;
  f.max_pdu = 500; // the published AARE's max PDU 01 F4
  dlms_meter m(id, f, instant());
  m.on_link_up(now_ms);
  wrapper_client c{m};

  // Before the association: service not allowed, operation not possible.
  CHECK(c.ask(get(1, {0, 0, 96, 1, 0, 255}, 2)) == hex("D8 01 01"));
  CHECK(c.ask(aarq_ln) == aare_ln);
  // Serial number: octet-string of the ASCII serial.
  CHECK(c.ask(get(1, {0, 0, 96, 1, 0, 255}, 2)) == hex("C4 01 C1 00 09 08") + "12345678");
  // Logical name.
  CHECK(c.ask(get(1, {0, 0, 96, 1, 0, 255}, 1)) == hex("C4 01 C1 00 09 06 00 00 60 01 00 FF"));
  // An object it does not have: object undefined; another class: class inconsistent.
  CHECK(c.ask(get(3, {1, 0, 3, 8, 0, 255}, 2)) == hex("C4 01 C1 01 04"));
  CHECK(c.ask(get(4, {1, 0, 1, 8, 0, 255}, 2)) == hex("C4 01 C1 01 09"));
  // Clock: 13:34:56 local (UTC+60: deviation -60 = FF C4), Sunday, status 0.
  CHECK(c.ask(get(8, {0, 0, 1, 0, 0, 255}, 2)) ==
        hex("C4 01 C1 00 09 0C") + datetime(2024, 3, 10, 7, 13, 34, 56, -60, 0));
  // Registers: value in Wh at the meter's time, scaler_unit {0, Wh} / {0, varh}.
  const meter_model model(id, f);
  const auto wh = model.register_wh(channel::kwh_import, now_s + 3600);
  CHECK(c.ask(get(3, {1, 0, 1, 8, 0, 255}, 2)) == hex("C4 01 C1 00 06") + be(static_cast<std::uint64_t>(wh), 4));
  CHECK(c.ask(get(3, {1, 0, 1, 8, 0, 255}, 3)) == hex("C4 01 C1 00 02 02 0F 00 16 1E"));
  CHECK(c.ask(get(3, {1, 0, 8, 8, 0, 255}, 3)) == hex("C4 01 C1 00 02 02 0F 00 16 20"));
  // Interval values in tenths: {-1, Wh}.
  CHECK(c.ask(get(3, {1, 0, 1, 29, 0, 255}, 3)) == hex("C4 01 C1 00 02 02 0F FF 16 1E"));
  // Profile: capture period 1800, the clock column first.
  CHECK(c.ask(get(7, {1, 0, 99, 1, 0, 255}, 4)) == hex("C4 01 C1 00 06 00 00 07 08"));
  const auto columns = c.ask(get(7, {1, 0, 99, 1, 0, 255}, 3));
  CHECK(columns.substr(0, 6 + 18) == hex("C4 01 C1 00 01 08 02 04 12 00 08 09 06 00 00 01 00 00 FF 0F 02 12 00 00"));
  CHECK(columns.find(hex("02 04 12 00 03 09 06 01 00 08 1D 00 FF 0F 02 12 00 00")) != std::string::npos);
  // A GET-Request-With-List is not supported.
  CHECK(c.ask(hex("C0 03 C1 01 00 01 00 00 60 01 00 FF 02 00")) == hex("D8 02 02"));
  // Another wPort: this meter does not answer.
  CHECK(c.ask(get(1, {0, 0, 96, 1, 0, 255}, 2), 9).empty());
  // Release.
  CHECK(c.ask(hex("62 03 80 01 00")) == hex("63 03 80 01 00"));
  CHECK(c.ask(get(1, {0, 0, 96, 1, 0, 255}, 2)) == hex("D8 01 01"));
}

TEST_CASE("dlms meter: the wPort decides, before anything is answered", "[dlms][sim]") {
  auto id = identity();
  id.outstation_address = "5";
  {
    dlms_meter m(id, {}, instant());
    m.on_link_up(now_ms);
    CHECK(sent(m.on_bytes(wrapped(16, 7, aarq_ln), now_ms)).empty());
    CHECK(sent(m.on_bytes(wrapped(16, 5, aarq_ln), now_ms)).empty()); // the connection stays ignored
  }
  for (int port : {5, 1}) { // its address, or the type's logical device
    dlms_meter m(id, {}, instant());
    m.on_link_up(now_ms);
    CHECK(wrapper_client{m}.ask(aarq_ln, port).substr(0, 2) == hex("61 29"));
  }
}

TEST_CASE("dlms meter: HDLC SNRM/UA and the SN association byte for byte", "[dlms][sim]") {
  auto id = identity("DLMS-SN");
  id.outstation_address = ""; // answers a frame without a lower address
  id.dlms->authentication.reset();
  meter_faults f;
  f.max_pdu = 2400; // the published SN AARE's 09 60
  dlms_meter m(id, f, instant());
  m.on_link_up(now_ms);
  const std::string server = bytes({0x03}), client = bytes({0x21});
  // SNRM without parameters (the notes' vector): UA with the defaults 128/128, windows 1.
  const auto ua = sent(m.on_bytes(hex("7E A0 07 03 21 93 0F 01 7E"), now_ms));
  CHECK(ua == frame(client, server, 0x73, hex("81 80 12 05 01 80 06 01 80 07 04 00 00 00 01 08 04 00 00 00 01")));
  // AARQ in I(0,0): AARE in I(N(S)=0, N(R)=1) after the LLC E6 E7 00.
  const auto aare = sent(m.on_bytes(frame(server, client, 0x10, hex("E6 E6 00") + aarq_sn), now_ms));
  CHECK(aare == frame(client, server, 0x30, hex("E6 E7 00") + aare_sn));
  // The object list's short name FA08; the serial number at 0x1000 + 8.
  const auto serial = sent(m.on_bytes(frame(server, client, 0x32, hex("E6 E6 00 05 01 02 10 08")), now_ms));
  CHECK(serial == frame(client, server, 0x52, hex("E6 E7 00 0C 01 00 09 08") + "12345678"));
  // An unknown short name: data-access-error 4.
  const auto unknown = sent(m.on_bytes(frame(server, client, 0x54, hex("E6 E6 00 05 01 02 77 70")), now_ms));
  CHECK(unknown == frame(client, server, 0x74, hex("E6 E7 00 0C 01 01 04")));
  // A frame for another server address is not answered.
  CHECK(sent(m.on_bytes(frame(bytes({0x05}), client, 0x76, hex("E6 E6 00 05 01 02 10 08")), now_ms)).empty());
  // DISC -> UA, then the meter closes.
  const auto disc = m.on_bytes(frame(server, client, 0x53), now_ms);
  CHECK(sent(disc) == frame(client, server, 0x73));
  CHECK(finished(disc));
  CHECK(m.closed());
}

TEST_CASE("dlms meter: LLS, the password and the published rejection", "[dlms][sim]") {
  auto id = identity();
  { // A wrong password: rejected permanently, authentication failure (the L+G AARE).
    dlms_meter m(id, {}, instant());
    m.on_link_up(now_ms);
    CHECK(wrapper_client{m}.ask(aarq_lls) == aare_lls_rejected);
  }
  id.password = "12345678";
  {
    dlms_meter m(id, {}, instant());
    m.on_link_up(now_ms);
    wrapper_client c{m};
    const auto aare = c.ask(aarq_lls);
    CHECK(aare.find(hex("A2 03 02 01 00")) != std::string::npos);
    CHECK(c.ask(get(1, {0, 0, 96, 1, 0, 255}, 2)) == hex("C4 01 C1 00 09 08") + "12345678");
  }
  { // reject_password: even the right one.
    meter_faults f;
    f.reject_password = true;
    dlms_meter m(id, f, instant());
    m.on_link_up(now_ms);
    CHECK(wrapper_client{m}.ask(aarq_lls) == aare_lls_rejected);
  }
  { // reject_association: rejected permanently, no reason given.
    meter_faults f;
    f.reject_association = true;
    dlms_meter m(id, f, instant());
    m.on_link_up(now_ms);
    CHECK(wrapper_client{m}.ask(aarq_lls) == hex("61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 01"));
  }
  { // An SN AARQ to an LN meter: application context name not supported.
    dlms_meter m(id, {}, instant());
    m.on_link_up(now_ms);
    CHECK(wrapper_client{m}.ask(aarq_sn) == hex("61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 02"));
  }
}

TEST_CASE("dlms meter: the load profile by range and by entry", "[dlms][sim]") {
  auto id = identity();
  meter_faults f;
  f.power_failure_every_days = 1;
  f.survey_gaps = {day0 + 86400 + 5 * 1800};
  dlms_meter m(id, f, instant());
  m.on_link_up(now_ms);
  wrapper_client c{m};
  REQUIRE(c.ask(aarq_ln) == aare_ln.substr(0, aare_ln.size() - 4) + hex("04 00 00 07"));
  const meter_model model(id, f);
  const dl::obis profile{1, 0, 99, 1, 0, 255};

  // [2024-03-09 00:00, 06:00] local (= UTC for this type): the rows ending 00:00 .. 06:00, gap at 02:30.
  const auto reply = c.ask(get(7, profile, 2, range(not_specified_datetime(2024, 3, 9, 0, 0), not_specified_datetime(2024, 3, 9, 6, 0))));
  REQUIRE(reply.substr(0, 4) == hex("C4 01 C1 00"));
  const auto rows = dl::decode_all(reply.substr(4));
  REQUIRE(rows.type == dl::tag::array);
  REQUIRE(rows.items.size() == 12); // 13 interval ends, one a gap
  const unix_seconds day1 = day0 + 86400;
  std::vector<unix_seconds> starts;
  for (unix_seconds s = day1 - 1800; s <= day1 + 6 * 3600 - 1800; s += 1800)
    if (s != day1 + 5 * 1800)
      starts.push_back(s);
  for (std::size_t i = 0; i < rows.items.size(); ++i) {
    const auto& row = rows.items[i].items;
    REQUIRE(row.size() == 8);
    const unix_seconds start = starts[i];
    // The clock: END of the interval, null when it directly follows the previous row.
    if (i == 0 || start != starts[i - 1] + 1800) {
      const auto dt = dl::datetime_of(row[0]);
      REQUIRE(dt);
      CHECK(dl::to_unix(*dt, dl::deviation_rule::blue_book, 0) == start + 1800);
      CHECK(dt->deviation == 0);
    } else {
      CHECK(row[0].is_null());
    }
    CHECK(row[1].integer() == model.interval_status(start));
    for (int ch = 0; ch < channel_count; ++ch)
      CHECK(row[2 + ch].integer() == model.interval_wh(static_cast<channel>(ch), start) * 10);
  }
  CHECK(rows.items[6].items[0].type == dl::tag::octet_string); // after the gap: a clock again

  // Entries in use and by entry: the last two entries, columns 1..2 (clock, status).
  const auto in_use = cosem::profile_starts(model, now_s).size();
  CHECK(c.ask(get(7, profile, 7)) == hex("C4 01 C1 00 06") + be(in_use, 4));
  const auto by_entry = c.ask(get(7, profile, 2, hex("01 02 02 04 06") + be(in_use - 1, 4) + "\x06" + be(in_use, 4) + hex("12 00 01 12 00 02")));
  const auto last2 = dl::decode_all(by_entry.substr(4));
  REQUIRE(last2.items.size() == 2);
  REQUIRE(last2.items[0].items.size() == 2);
  const unix_seconds newest_start = mts::floor_div(now_s, 1800) * 1800 - 1800;
  CHECK(dl::to_unix(*dl::datetime_of(last2.items[0].items[0]), dl::deviation_rule::blue_book, 0) == newest_start);
  CHECK(last2.items[1].items[0].is_null());
  CHECK(last2.items[1].items[1].integer() == model.interval_status(newest_start));

  // refuse_range: read-write denied for a range; by entry still answers.
  meter_faults refusing = f;
  refusing.refuse_range = true;
  dlms_meter r(id, refusing, instant());
  r.on_link_up(now_ms);
  wrapper_client rc{r};
  rc.ask(aarq_ln);
  CHECK(rc.ask(get(7, profile, 2, range(not_specified_datetime(2024, 3, 9, 0, 0), not_specified_datetime(2024, 3, 9, 6, 0)))) ==
        hex("C4 01 C1 01 03"));
}

TEST_CASE("dlms meter: event log rows around each power failure", "[dlms][sim]") {
  auto id = identity();
  meter_faults f;
  f.power_failure_every_days = 1;
  const meter_model model(id, f);
  const auto log = cosem::events(model, now_s);
  REQUIRE(log.size() >= 4);
  // Independently: every power-failure interval gives down at +600 s and up at +900 s.
  std::vector<cosem::event_row> want;
  for (unix_seconds s = now_s - 3 * 86400; s + 900 <= now_s; s += 1800)
    if (model.interval_status(mts::floor_div(s, 1800) * 1800) & 0x80) {
      const unix_seconds start = mts::floor_div(s, 1800) * 1800;
      want.push_back({start + 600, 1});
      want.push_back({start + 900, 2});
    }
  REQUIRE(want.size() >= 4);
  const auto tail = std::vector<cosem::event_row>(log.end() - static_cast<std::ptrdiff_t>(want.size()), log.end());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(tail[i].time == want[i].time);
    CHECK(tail[i].code == want[i].code);
  }
}

TEST_CASE("dlms meter: block transfer and its faults", "[dlms][sim]") {
  auto id = identity();
  const dl::obis profile{1, 0, 99, 1, 0, 255};
  const auto ask_range = range(not_specified_datetime(2024, 3, 9, 0, 0), not_specified_datetime(2024, 3, 10, 0, 0));
  // The whole reply from a meter with a large PDU.
  std::string whole;
  {
    meter_faults f;
    f.max_pdu = 65535;
    dlms_meter m(id, f, instant());
    m.on_link_up(now_ms);
    wrapper_client c{m};
    c.ask(aarq_ln.substr(0, aarq_ln.size() - 2) + hex("FF FF")); // the client takes 65535 too
    const auto reply = c.ask(get(7, profile, 2, ask_range));
    REQUIRE(reply.substr(0, 4) == hex("C4 01 C1 00"));
    whole = reply.substr(4);
    REQUIRE(whole.size() > 1000);
  }
  meter_faults f;
  f.max_pdu = 128;
  dlms_meter m(id, f, instant());
  m.on_link_up(now_ms);
  wrapper_client c{m};
  const auto aare = c.ask(aarq_ln);
  CHECK(aare.substr(aare.size() - 4) == hex("00 80 00 07")); // its max receive PDU
  std::string joined;
  auto reply = c.ask(get(7, profile, 2, ask_range));
  for (std::uint32_t block = 1;; ++block) {
    REQUIRE(reply.size() <= 128);
    REQUIRE(reply.substr(0, 3) == hex("C4 02 C1"));
    CHECK(reply.substr(4, 4) == be(block, 4));
    REQUIRE(reply[8] == 0);
    std::size_t pos = 9;
    const auto n = dl::decode_length(reply, pos);
    REQUIRE(pos + n == reply.size());
    joined += reply.substr(pos);
    if (reply[3] == 1)
      break;
    CHECK(n == 118);
    if (block == 3) // the client missed block 3: asked for again, the same bytes
      CHECK(c.ask(hex("C0 02 C1") + be(2, 4)) == reply);
    reply = c.ask(hex("C0 02 C1") + be(block, 4));
  }
  CHECK(joined == whole);
  // A block number out of turn: block number invalid.
  CHECK(c.ask(hex("C0 02 C1") + be(77, 4)) == hex("C4 02 C1 01 00 00 00 4D 01 13"));

  // block_stop_after 2: the third block never comes.
  meter_faults stop = f;
  stop.block_stop_after = 2;
  dlms_meter s(id, stop, instant());
  s.on_link_up(now_ms);
  wrapper_client sc{s};
  sc.ask(aarq_ln);
  CHECK(sc.ask(get(7, profile, 2, ask_range)).substr(0, 8) == hex("C4 02 C1 00 00 00 00 01"));
  CHECK(sc.ask(hex("C0 02 C1") + be(1, 4)).substr(0, 8) == hex("C4 02 C1 00 00 00 00 02"));
  CHECK(sc.ask(hex("C0 02 C1") + be(2, 4)).empty());

  // drop_mid_profile: the first block goes out, then the line drops.
  meter_faults drop = f;
  drop.drop_mid_profile = true;
  dlms_meter d(id, drop, instant());
  d.on_link_up(now_ms);
  d.on_bytes(wrapped(16, 1, aarq_ln), now_ms);
  const auto a = d.on_bytes(wrapped(16, 1, get(7, profile, 2, ask_range)), now_ms);
  CHECK(sent(a).substr(8, 8) == hex("C4 02 C1 00 00 00 00 01"));
  CHECK(finished(a));
}

TEST_CASE("dlms meter: HDLC faults on the wire", "[dlms][sim]") {
  auto id = identity("DLMS-SN");
  id.outstation_address = "";
  const std::string server = bytes({0x03}), client = bytes({0x21});
  const std::string snrm = hex("7E A0 07 03 21 93 0F 01 7E");
  { // frame_reject: FRMR (invalid control field) to the first I-frame.
    meter_faults f;
    f.frame_reject = true;
    dlms_meter m(id, f, instant());
    m.on_link_up(now_ms);
    m.on_bytes(snrm, now_ms);
    const auto i0 = frame(server, client, 0x10, hex("E6 E6 00") + aarq_sn);
    CHECK(sent(m.on_bytes(i0, now_ms)) == frame(client, server, 0x97, bytes({0x10, 0x00, 0x01})));
  }
  { // corrupt_bcc_every 1: every new frame has a wrong FCS, the same frame again is good.
    meter_faults f;
    f.corrupt_bcc_every = 1;
    dlms_meter m(id, f, instant());
    m.on_link_up(now_ms);
    const auto bad = sent(m.on_bytes(snrm, now_ms));
    const auto good = frame(client, server, 0x73, hex("81 80 12 05 01 80 06 01 80 07 04 00 00 00 01 08 04 00 00 00 01"));
    REQUIRE(bad.size() == good.size());
    CHECK(bad != good);
    CHECK(bad.substr(0, bad.size() - 3) == good.substr(0, good.size() - 3));
    CHECK(sent(m.on_bytes(snrm, now_ms)) == good);
  }
  { // garbage before every reply; silent answers nothing.
    meter_faults f;
    f.garbage_before_reply = "xyz";
    dlms_meter m(id, f, instant());
    m.on_link_up(now_ms);
    CHECK(sent(m.on_bytes(snrm, now_ms)).substr(0, 4) == "xyz\x7E");
    meter_faults quiet;
    quiet.silent = true;
    dlms_meter q(id, quiet, instant());
    q.on_link_up(now_ms);
    CHECK(sent(q.on_bytes(snrm, now_ms)).empty());
  }
  { // The physical address: frames to another lower address are not answered.
    auto addressed = identity("DLMS-SN");
    addressed.outstation_address = "17";
    dlms_meter m(addressed, {}, instant());
    m.on_link_up(now_ms);
    CHECK(sent(m.on_bytes(frame(bytes({0x00, 0x02, 0x00, 0x25}), client, 0x93), now_ms)).empty()); // lower 18
    // The notes' SNRM to upper 1, lower 17.
    const auto ua = sent(m.on_bytes(hex("7E A0 0A 00 02 00 23 21 93 18 71 7E"), now_ms));
    CHECK(ua.substr(0, 9) == hex("7E A0 21 21 00 02 00 23 73"));
  }
}

// ---- the DLMS driver against the meter, in-process ----

namespace {

struct scenario {
  meter_identity id = identity();
  meter_faults faults;
  session_request rq;
  std::uint64_t session = 1;
};

session_request survey_request(const meter_identity& id, int days = 2) {
  session_request rq;
  rq.outstation_address = id.outstation_address;
  rq.password = id.password;
  rq.expected_serial = id.serial;
  rq.survey_from = day0 + (2 - days) * 86400;
  rq.survey_to = now_s; // clipped at now
  return rq;
}

struct result {
  in_process_outcome got;
  dlms_expectation want;
};

result run(const scenario& s) {
  auto mc = instant(s.session);
  mc.over_modem = s.rq.over_modem;
  dlms_meter meter(s.id, s.faults, mc);
  const auto cfg = dlms_settings_of(s.id);
  auto driver = make_dlms_driver(s.rq, cfg, std::string("\x11\x22\x33\x44\x55\x66\x77\x88\x99\xAA\xBB\xCC\xDD\xEE\xFF\x01", 16));
  result r{run_in_process(meter, *driver, dlms_initial_line(), now_ms, 200000), expected_dlms(s.id, s.faults, s.rq, now_s)};
  REQUIRE(r.got.finished);
  CHECK(r.got.failure == r.want.end.failure);
  CHECK(r.got.reason == r.want.end.reason);
  require_equal(r.got.readings, r.want.readings, r.got.end);
  CHECK(r.got.readings.item_failures == r.want.readings.item_failures);
  // expected_readings picks the DLMS prediction.
  const auto picked = expected_readings(s.id, s.faults, s.rq, now_s);
  CHECK(picked.item_failures == r.want.readings.item_failures);
  require_equal_survey(picked, r.want.readings);
  return r;
}

void full_success(const result& r, bool with_events = false) {
  CHECK(r.got.failure == failure_kind::none);
  CHECK(r.got.readings.item_failures.empty());
  REQUIRE(r.got.readings.serial_number);
  CHECK(*r.got.readings.serial_number == "12345678");
  REQUIRE(r.got.readings.registers);
  CHECK(r.got.readings.registers->size() == 6);
  REQUIRE(r.got.readings.survey);
  REQUIRE(r.got.readings.survey->size() == 6);
  CHECK((*r.got.readings.survey)[0].name == "kWh Import");
  CHECK((*r.got.readings.survey)[5].name == "kvarh Q4");
  CHECK((*r.got.readings.survey)[0].readings.size() > 60);
  if (with_events) {
    REQUIRE(r.got.readings.status_events);
    CHECK(!r.got.readings.status_events->empty());
  }
}

} // namespace

TEST_CASE("dlms driver vs simulated meter: LN over the wrapper", "[dlms][sim][e2e]") {
  scenario s;
  s.faults.power_failure_every_days = 1;
  s.faults.survey_gaps = {day0 + 86400 + 20 * 1800};
  s.rq = survey_request(s.id);
  const auto r = run(s);
  full_success(r, true);
  // The values by hand: the first reading of kWh Import is that half hour's energy in kWh.
  const meter_model model(s.id, s.faults);
  const auto& first = (*r.got.readings.survey)[0].readings[0];
  CHECK(first.timestamp == day0);
  CHECK(first.value == static_cast<double>(model.interval_wh(channel::kwh_import, day0)) / 1000.0);
  CHECK((*r.got.readings.registers)[0].value ==
        static_cast<double>(model.register_wh(channel::kwh_import, now_s)) / 1000.0);
  CHECK((*r.got.readings.registers)[0].units == "kWh");
  CHECK((*r.got.readings.registers)[2].name == "kvarh Q1");
  CHECK(r.got.readings.meter_time == now_s);
  const auto& events = *r.got.readings.status_events;
  CHECK(std::all_of(events.begin(), events.end(),
                    [](const std::string& e) { return e.rfind("Power down in interval starting 2024-03-", 0) == 0; }));
}

TEST_CASE("dlms driver vs simulated meter: LN over HDLC, SN with LLS, a modem call", "[dlms][sim][e2e]") {
  SECTION("LN, HDLC, outstation address 1") {
    scenario s;
    s.id.dlms->transport = dlms_transport::hdlc;
    s.rq = survey_request(s.id);
    full_success(run(s));
  }
  SECTION("SN, HDLC, LLS (DLMS-SN)") {
    scenario s;
    s.id = identity("DLMS-SN");
    s.faults.power_failure_every_days = 2;
    s.rq = survey_request(s.id);
    full_success(run(s));
  }
  SECTION("a modem call: HDLC whatever the type's transport") {
    scenario s;
    s.rq = survey_request(s.id);
    s.rq.over_modem = true;
    full_success(run(s));
  }
  SECTION("no outstation address in the request") {
    scenario s;
    s.id.dlms->transport = dlms_transport::hdlc;
    s.rq = survey_request(s.id);
    s.rq.outstation_address.reset();
    full_success(run(s));
  }
}

TEST_CASE("dlms driver vs simulated meter: HLS mechanisms", "[dlms][sim][e2e]") {
  for (auto mech : {dl::authentication::high_md5, dl::authentication::high_sha1, dl::authentication::high_sha256}) {
    for (auto referencing : {dlms_referencing::ln, dlms_referencing::sn}) {
      CAPTURE(dl::authentication_name(mech), referencing == dlms_referencing::ln);
      scenario s;
      s.id.dlms->authentication = mech;
      s.id.dlms->referencing = referencing;
      s.id.dlms->transport = referencing == dlms_referencing::sn ? dlms_transport::hdlc : dlms_transport::wrapper;
      s.session = 7;
      s.rq = survey_request(s.id, 1);
      full_success(run(s));
      // A wrong secret: pass 3 refused.
      s.rq.password = "WRONG123";
      const auto r = run(s);
      CHECK(r.got.failure == failure_kind::permanent);
      CHECK(r.got.reason == "authentication failure: read-write denied");
    }
  }
}

TEST_CASE("dlms driver vs simulated meter: block transfer and segmentation", "[dlms][sim][e2e]") {
  for (auto referencing : {dlms_referencing::ln, dlms_referencing::sn}) {
    for (auto transport : {dlms_transport::hdlc, dlms_transport::wrapper}) {
      CAPTURE(referencing == dlms_referencing::ln, transport == dlms_transport::hdlc);
      scenario s;
      s.id.dlms->referencing = referencing;
      s.id.dlms->transport = transport;
      s.id.dlms->event_log_obis = dl::obis{0, 0, 99, 98, 0, 255};
      s.faults.max_pdu = 128;
      s.faults.max_info = 32;
      s.faults.power_failure_every_days = 1;
      s.rq = survey_request(s.id);
      full_success(run(s), true);
    }
  }
}

TEST_CASE("dlms driver vs simulated meter: the type's clock conventions and the event log", "[dlms][sim][e2e]") {
  SECTION("UTC+60, blue book, drift -50 s, the event log") {
    scenario s;
    s.id.utc_offset_minutes = 60;
    s.id.dlms->clock_utc_offset_minutes = 60;
    s.id.clock_offset_seconds = -50;
    s.id.dlms->event_log_obis = dl::obis{0, 0, 99, 98, 0, 255};
    s.faults.power_failure_every_days = 1;
    s.rq = survey_request(s.id);
    const auto r = run(s);
    full_success(r, true);
    CHECK(r.got.readings.meter_time == now_s - 50);
    const auto& events = *r.got.readings.status_events;
    CHECK(std::any_of(events.begin(), events.end(),
                      [](const std::string& e) { return e.rfind("Event 1 (power down) at 2024-03-", 0) == 0; }));
    CHECK(std::any_of(events.begin(), events.end(),
                      [](const std::string& e) { return e.rfind("Event 2 (power up) at 2024-03-", 0) == 0; }));
  }
  SECTION("inverted deviation") {
    scenario s;
    s.id.utc_offset_minutes = -120;
    s.id.dlms->clock_utc_offset_minutes = -120;
    s.id.dlms->clock_deviation = dl::deviation_rule::inverted;
    s.rq = survey_request(s.id);
    full_success(run(s));
  }
  SECTION("a type without a load profile: an empty survey, the event log still read") {
    scenario s;
    s.id.dlms->load_profile_obis.reset();
    s.id.dlms->event_log_obis = dl::obis{0, 0, 99, 98, 0, 255};
    s.faults.power_failure_every_days = 1;
    s.rq = survey_request(s.id);
    const auto r = run(s);
    CHECK(r.got.failure == failure_kind::none);
    REQUIRE(r.got.readings.survey);
    CHECK(r.got.readings.survey->empty());
    REQUIRE(r.got.readings.status_events);
    CHECK(r.got.readings.status_events->size() >= 4); // two days of power downs and ups
  }
  SECTION("deviation ignored, rows stamped at the start") {
    scenario s;
    s.id.utc_offset_minutes = 30;
    s.id.dlms->clock_utc_offset_minutes = 30;
    s.id.dlms->clock_deviation = dl::deviation_rule::ignore;
    s.id.dlms->profile_clock_is_end = false;
    s.rq = survey_request(s.id);
    full_success(run(s));
  }
}

TEST_CASE("dlms driver vs simulated meter: faults and their results", "[dlms][sim][e2e]") {
  scenario s;
  s.rq = survey_request(s.id);
  auto hdlc = s;
  hdlc.id.dlms->transport = dlms_transport::hdlc;

  auto ends = [](scenario sc, failure_kind kind, const std::string& reason) {
    const auto r = run(sc);
    CHECK(r.got.failure == kind);
    CHECK(r.got.reason == reason);
    return r;
  };
  SECTION("silent") {
    s.faults.silent = true;
    ends(s, failure_kind::transient, "no answer to association");
    hdlc.faults.silent = true;
    ends(hdlc, failure_kind::transient, "no answer to link setup");
  }
  SECTION("another address") {
    hdlc.rq.outstation_address = "2";
    ends(hdlc, failure_kind::transient, "no answer to link setup");
    s.rq.outstation_address = "2";
    ends(s, failure_kind::transient, "no answer to association");
  }
  SECTION("association and password") {
    s.faults.reject_association = true;
    ends(s, failure_kind::permanent, "association rejected: no reason given");
    s.faults = {};
    s.rq.password = "WRONG";
    ends(s, failure_kind::permanent, "association rejected: authentication failure");
    s.rq.password = s.id.password;
    s.faults.reject_password = true;
    ends(s, failure_kind::permanent, "association rejected: authentication failure");
  }
  SECTION("serial") {
    s.faults.reported_serial = "87654321";
    const auto r = ends(s, failure_kind::permanent, "Serial number mismatch");
    CHECK(r.got.readings.serial_number == "87654321");
    CHECK(!r.got.readings.registers);
  }
  SECTION("an object that answers object undefined") {
    s.faults.access_error_obis = "1.0.7.8.0.255";
    const auto r = ends(s, failure_kind::none, "");
    REQUIRE(r.got.readings.item_failures.size() == 1);
    CHECK(r.got.readings.item_failures[0] == "register 1.0.7.8.0.255: object undefined");
    CHECK(r.got.readings.registers->size() == 5);
    for (const auto& [code, item] : {std::pair<const char*, const char*>{"0.0.96.1.0.255", "serial number"},
                                     {"0.0.1.0.0.255", "clock"}, {"0.0.99.98.0.255", "event log"}}) {
      auto other = s;
      other.id.dlms->event_log_obis = dl::obis{0, 0, 99, 98, 0, 255};
      other.faults.access_error_obis = code;
      const auto o = ends(other, failure_kind::none, "");
      CHECK(o.got.readings.item_failures == std::vector<std::string>{std::string(item) + ": object undefined"});
    }
    auto sn = scenario{};
    sn.id = identity("DLMS-SN");
    sn.rq = survey_request(sn.id);
    sn.faults.access_error_obis = "0.0.40.0.0.255"; // the SN object list cannot be read
    ends(sn, failure_kind::permanent, "object list not read: object undefined");
    s.faults.access_error_obis = "1.0.99.1.0.255";
    const auto p = ends(s, failure_kind::none, "");
    REQUIRE(p.got.readings.item_failures.size() == 1);
    CHECK(p.got.readings.item_failures[0] == "load profile: object undefined");
  }
  SECTION("block transfer that stops; drop mid profile") {
    s.faults.max_pdu = 128;
    s.faults.block_stop_after = 3;
    const auto r = ends(s, failure_kind::transient, "no answer to load profile read");
    CHECK(r.got.readings.registers->size() == 6);
    hdlc.faults.max_pdu = 128;
    hdlc.faults.block_stop_after = 3; // over HDLC the driver's repeats go unanswered too
    ends(hdlc, failure_kind::transient, "no answer to load profile read");
    hdlc.faults.block_stop_after = 0;
    hdlc.faults.drop_mid_profile = true; // the line drops in the middle of the first block's frames
    ends(hdlc, failure_kind::transient, "line dropped");
    s.faults.block_stop_after = 0;
    s.faults.drop_mid_profile = true;
    const auto d = ends(s, failure_kind::transient, "line dropped");
    CHECK(d.got.readings.registers->size() == 6);
    CHECK(!d.got.readings.survey);
  }
  SECTION("frame reject") {
    hdlc.faults.frame_reject = true;
    ends(hdlc, failure_kind::transient, "link error: frame rejected: invalid control field");
  }
  SECTION("range reads refused: by entry, the same survey") {
    s.faults.refuse_range = true;
    s.faults.survey_gaps = {day0 + 3 * 1800};
    full_success(run(s));
  }
  SECTION("garbage over the wrapper breaks its stream") {
    s.faults.garbage_before_reply = "noise"; // 'n' 'o' read as the version: 0x6E6F
    ends(s, failure_kind::transient, "link error: wrapper version 28271");
  }
  SECTION("a register the meter does not have: LN object undefined, SN not in the object list") {
    s.id.dlms->register_obis.push_back(dl::obis{1, 0, 3, 8, 0, 255});
    const auto r = ends(s, failure_kind::none, "");
    CHECK(r.got.readings.item_failures == std::vector<std::string>{"register 1.0.3.8.0.255: object undefined"});
    auto sn = scenario{};
    sn.id = identity("DLMS-SN");
    sn.id.dlms->register_obis.push_back(dl::obis{1, 0, 3, 8, 0, 255});
    sn.rq = survey_request(sn.id);
    const auto q = ends(sn, failure_kind::none, "");
    CHECK(q.got.readings.item_failures ==
          std::vector<std::string>{"register 1.0.3.8.0.255: not in the meter's object list"});
    CHECK(q.got.readings.registers->size() == 6);
  }
  SECTION("corrupt frames and garbage over HDLC are repeated / skipped") {
    // The driver sends again at most 3 times in a row without a frame from the meter (a segment
    // that arrives resets the count): one corrupt frame in 3 loses about five frames of every
    // 1024-byte reply in 64-byte frames, and still the whole result arrives.
    hdlc.faults.corrupt_bcc_every = 3;
    hdlc.faults.garbage_before_reply = "noise";
    hdlc.faults.max_info = 64;
    full_success(run(hdlc));
  }
}

TEST_CASE("dlms sim config: types, faults and expect", "[dlms][sim]") {
  const auto& type = *registry().find("DLMS-SN");
  CHECK_NOTHROW(check_simulated_driver("dlms", "DLMS"));
  const auto id = generated_identity(type, 7, 3);
  REQUIRE(id.dlms);
  CHECK(id.dlms->referencing == dlms_referencing::sn);
  REQUIRE(id.line);
  CHECK(*id.line == line_settings{9600, 8, 'N', 1});

  meter_faults f;
  apply_fault(f, "reject_association");
  apply_fault(f, "access_error_obis=1-0:1.8.0.255");
  apply_fault(f, "block_stop_after=4");
  apply_fault(f, "frame_reject");
  apply_fault(f, "refuse_range=true");
  apply_fault(f, "max_pdu=256");
  apply_fault(f, "max_info=64");
  CHECK(f.reject_association);
  CHECK(f.access_error_obis == "1.0.1.8.0.255");
  CHECK(f.block_stop_after == 4);
  CHECK(f.frame_reject);
  CHECK(f.refuse_range);
  CHECK(f.max_pdu == 256);
  CHECK(f.max_info == 64);
  CHECK_THROWS_WITH(apply_fault(f, "access_error_obis=1.2.3"), Catch::Contains("OBIS"));
  CHECK_THROWS_WITH(apply_fault(f, "max_pdu=20"), Catch::Contains("128 to 65535"));

  // The TOML file takes the same keys.
  std::random_device rd;
  const auto path = std::filesystem::temp_directory_path() / ("mts-dlms-sim-" + std::to_string(rd()) + ".toml");
  {
    std::ofstream out(path);
    out << "seed = 3\n[[meter]]\ntype = \"DLMS-SN\"\nport = 0\nreject_association = true\n"
           "access_error_obis = \"0.0.1.0.0.255\"\nblock_stop_after = 2\nframe_reject = true\n"
           "refuse_range = true\nmax_pdu = 300\nmax_info = 40\n";
  }
  const auto file = load_config_file(path.string(), registry());
  std::filesystem::remove(path);
  REQUIRE(file.meters.size() == 1);
  const auto& loaded = file.meters[0];
  CHECK(loaded.identity.driver == "dlms");
  REQUIRE(loaded.identity.dlms);
  CHECK(loaded.identity.dlms->transport == dlms_transport::hdlc);
  CHECK(loaded.faults.reject_association);
  CHECK(loaded.faults.access_error_obis == "0.0.1.0.0.255");
  CHECK(loaded.faults.block_stop_after == 2);
  CHECK(loaded.faults.frame_reject);
  CHECK(loaded.faults.refuse_range);
  CHECK(loaded.faults.max_pdu == 300);
  CHECK(loaded.faults.max_info == 40);

  // expect: an object the meter answers "object undefined" for ends PARTIAL SUCCESS, named.
  auto ln = generated_identity(*registry().find("DLMS"), 7, 0);
  meter_faults g;
  g.access_error_obis = "1.0.2.8.0.255";
  const std::string request = R"({"meterType":"DLMS","remoteAddress":"127.0.0.1:4059","outstationAddress":"1",)"
                              R"("password":")" + ln.password + R"("})";
  const auto json = expected_result_json(ln, g, request, now_s);
  CHECK(json.find(R"("result":"PARTIAL SUCCESS")") != std::string::npos);
  CHECK(json.find("Not read: register 1.0.2.8.0.255: object undefined") != std::string::npos);
  // A telephone number is a modem call: HDLC, so a silent meter fails at the link setup.
  meter_faults quiet;
  quiet.silent = true;
  const std::string dialled = R"({"meterType":"DLMS","remoteAddress":"01000000001","outstationAddress":"1"})";
  CHECK(expected_result_json(ln, quiet, dialled, now_s).find("no answer to link setup") != std::string::npos);
  CHECK(expected_result_json(ln, quiet, request, now_s).find("no answer to association") != std::string::npos);
}

TEST_CASE("dlms meter through make_meter_session: chosen by the driver, HDLC on a call", "[dlms][sim]") {
  auto id = identity();
  iec_meter_config c;
  c.reaction_delay = 0ms;
  c.pinned_now = now_s;
  auto tcp = make_meter_session(id, {}, c, 1);
  tcp->on_link_up(now_ms);
  CHECK(tcp->line() == line_settings{9600, 8, 'N', 1});
  CHECK(sent(tcp->on_bytes(wrapped(16, 1, aarq_ln), now_ms)).substr(8, 2) == hex("61 29"));
  auto call = make_meter_session(id, {}, c, 1, true);
  call->on_link_up(now_ms);
  CHECK(sent(call->on_bytes(wrapped(16, 1, aarq_ln), now_ms)).empty()); // the wrapper is not spoken on a call
  CHECK(sent(call->on_bytes(hex("7E A0 07 03 21 93 0F 01 7E"), now_ms)).substr(0, 6) == hex("7E A0 1E 21 03 73")); // UA
}

TEST_CASE("dlms meter: a modem call's number plan gives the DLMS meter its 8N1 line", "[dlms][sim]") {
  std::vector<sim_meter> meters(2);
  meters[0].identity = generated_identity(*registry().find("IEC62056-21"), 1, 0);
  meters[1].identity = generated_identity(*registry().find("DLMS"), 1, 1);
  const auto plan = make_number_plan(meters);
  CHECK(plan(modem_number(0)).format == line_settings{9600, 7, 'E', 1});
  const auto dlms = plan(drop_number(1));
  CHECK(dlms.what == dial_target::kind::meter);
  CHECK(dlms.drop_mid_call);
  CHECK(dlms.format == line_settings{9600, 8, 'N', 1});
}

namespace {

// The DLMS driver on a reactor connection to a sim_server meter (loopback TCP).
struct tcp_client : mts::io::link_handler, std::enable_shared_from_this<tcp_client> {
  tcp_client(mts::io::tcp_reactor& r, std::unique_ptr<meter_driver> d) : reactor(r), driver(std::move(d)) {}
  mts::io::tcp_reactor& reactor;
  std::unique_ptr<meter_driver> driver;
  mts::io::connection_id id = 0;
  mts::io::timer_id timer = 0;
  std::mutex m;
  std::condition_variable cv;
  std::optional<finish> end;
  bool closed = false;

  void on_connected(mts::io::connection_id) override { run(driver->on_link_up(now_ms)); }
  void on_connect_failed(mts::io::connection_id, const std::string& reason) override {
    std::lock_guard<std::mutex> lock(m);
    end = finish{failure_kind::transient, reason};
    closed = true;
    cv.notify_all();
  }
  void on_data(mts::io::connection_id, std::string_view bytes) override { run(driver->on_bytes(bytes, now_ms)); }
  void on_closed(mts::io::connection_id, const std::string&) override {
    run(driver->on_link_down(now_ms));
    std::lock_guard<std::mutex> lock(m);
    closed = true;
    cv.notify_all();
  }
  void run(const actions& acts) {
    for (const auto& a : acts) {
      if (const auto* s = std::get_if<send_bytes>(&a)) {
        reactor.send(id, s->data);
      } else if (const auto* t = std::get_if<arm_timer>(&a)) {
        reactor.cancel_timer(timer);
        std::weak_ptr<tcp_client> self = weak_from_this();
        timer = reactor.schedule(t->after, [self, tid = t->id] {
          if (auto c = self.lock())
            c->run(c->driver->on_timer(tid, now_ms));
        });
      } else if (std::holds_alternative<cancel_timer>(a)) {
        reactor.cancel_timer(timer);
      } else if (const auto* f = std::get_if<finish>(&a)) {
        reactor.cancel_timer(timer);
        reactor.close(id);
        std::lock_guard<std::mutex> lock(m);
        end = *f;
        cv.notify_all();
        return;
      }
    }
  }
};

} // namespace

TEST_CASE("dlms meter served by sim_server: the driver over loopback TCP reads the expected readings",
          "[dlms][sim][sim_server]") {
  mts::io::tcp_reactor meters_reactor, client_reactor;
  std::vector<sim_meter> meters(2);
  meters[0].identity = generated_identity(*registry().find("DLMS"), 5, 0);
  meters[1].identity = generated_identity(*registry().find("DLMS-SN"), 5, 1);
  meters[1].faults.max_pdu = 256;
  meters[1].faults.max_info = 64;
  server_options options;
  options.start_time = now_s;
  options.freeze_clock = true;
  options.meter_config.reaction_delay = 1ms;
  sim_server server(meters_reactor, meters, options);
  for (std::size_t i = 0; i < meters.size(); ++i) {
    CAPTURE(i);
    const auto& id = server.meter(i).identity;
    session_request rq;
    rq.outstation_address = id.outstation_address;
    rq.password = id.password;
    rq.expected_serial = id.serial;
    rq.survey_from = day0;
    rq.survey_to = now_s;
    const auto cfg = dlms_settings_of(id); // the default 5 s response timeout: nothing here waits for it
    auto c = std::make_shared<tcp_client>(client_reactor, make_dlms_driver(rq, cfg, std::string(16, '\x5A')));
    client_reactor.post([&, c] { c->id = client_reactor.connect("127.0.0.1", server.port(i), 2000ms, c); });
    {
      std::unique_lock<std::mutex> lock(c->m);
      REQUIRE(c->cv.wait_for(lock, 60s, [&] { return c->end && c->closed; }));
    }
    CHECK(c->end->failure == failure_kind::none);
    CHECK(c->end->reason.empty());
    const auto want = expected_readings(id, server.meter(i).faults, rq, now_s);
    const auto& got = c->driver->readings();
    CHECK(got.serial_number == want.serial_number);
    CHECK(got.meter_time == want.meter_time);
    CHECK(got.status_events == want.status_events);
    REQUIRE(got.registers);
    REQUIRE(want.registers);
    REQUIRE(got.registers->size() == want.registers->size());
    for (std::size_t r = 0; r < want.registers->size(); ++r)
      CHECK((*got.registers)[r].value == (*want.registers)[r].value);
    require_equal_survey(got, want);
  }
}

// The per-attempt transcript (actors/transcript.hpp): masking, rendering and the bound.
#include "actors/transcript.hpp"
#include "drivers/char_format.hpp"
#include "drivers/iec_frames.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using namespace mts;
namespace iec = mts::drivers::iec;
namespace bj = boost::json;

TEST_CASE("masking: the password command's operand and BCC", "[transcript]") {
  // SOH P1 STX (AAAA0000) ETX BCC, as the driver sends it.
  const auto p1 = iec::command_message("P1", "(AAAA0000)");
  const auto masked = mask_secrets(p1, {});
  CHECK(masked == std::string("\x01P1\x02(********)\x03*"));
  CHECK(masked.find("AAAA0000") == std::string::npos);
  // P2 (the secure algorithm's operand) too, and also with no password known to the runner.
  CHECK(mask_secrets(iec::command_message("P2", "(0123ABCD)"), {}) == std::string("\x01P2\x02(********)\x03*"));
  // An empty operand has nothing to hide (its BCC is masked all the same).
  CHECK(mask_secrets(iec::command_message("P1", "()"), {}) == std::string("\x01P1\x02()\x03*"));
  // Other commands are left alone.
  const auto r1 = iec::command_message("R1", "1.8.0()");
  CHECK(mask_secrets(r1, {}) == r1);
}

TEST_CASE("masking: every occurrence of the password text, either direction", "[transcript]") {
  CHECK(mask_secrets("x secret y secretsecret", {"secret"}) == "x ******** y ****************");
  CHECK(mask_secrets("no password here", {"secret"}) == "no password here");
  CHECK(mask_secrets("abc", {""}) == "abc");                     // no password: nothing masked
  CHECK(mask_secrets("a**b", {"**"}) == "a********b");          // a secret inside the mask text
  // A password inside another command (a meter echoing it) is masked by its text.
  const auto echo = iec::command_message("R1", "(hunter22)");
  CHECK(mask_secrets(echo, {"hunter22"}).find("hunter22") == std::string::npos);
}

TEST_CASE("masking: bytes that carry a parity bit (7E1 in software over a modem call)", "[transcript]") {
  const mts::drivers::parity_codec e71({9600, 7, 'E', 1});
  // SOH (0x01) and '2' (0x32) have an odd number of ones: on the wire they are 0x81 and 0xB2.
  const auto p2 = e71.encode(iec::command_message("P2", "(0AB34C5A1DE1A8F2)"));
  REQUIRE(p2.substr(0, 3) == "\x81P\xB2");
  const auto masked = mask_secrets(p2, {});
  CHECK(masked == e71.encode("\x01P2\x02(") + "********" + e71.encode(")\x03") + "*");
  // The plain password text with parity bits, e.g. echoed inside another message.
  const auto echo = e71.encode(iec::command_message("R1", "(AB12CD34)"));
  const auto masked_echo = mask_secrets(echo, {"AB12CD34"});
  CHECK(masked_echo == e71.encode("\x01R1\x02(") + "********" + e71.encode(")\x03") + echo.back());
}

TEST_CASE("bytes are rendered with control characters by name", "[transcript]") {
  CHECK(printable_bytes(iec::request_message("1")) == "/?1!<CR><LF>");
  CHECK(printable_bytes(iec::option_select_message('0', '5', '1')) == "<ACK>051<CR><LF>");
  CHECK(printable_bytes(std::string("\x01" "B0\x03q", 5)) == "<SOH>B0<ETX>q");
  CHECK(printable_bytes(std::string("\x15\x04\x7f\xff", 4)) == "<NAK><EOT><x7F><xFF>");
}

TEST_CASE("an attempt's transcript: events in order, times from the attempt's start", "[transcript]") {
  attempt_transcript t(2, 1000500, 4096, {"pw12"});
  t.event(1000500, "connecting", "127.0.0.1:4059");
  t.event(1000510, "link up");
  t.sent(1000710, iec::request_message(""));
  t.received(1001200, "/SIM5MTS-SIM\r\n");
  t.sent(1001400, iec::command_message("P1", "(pw12)"));
  t.event(1006400, "timer");
  t.end(1006400, "no answer to password");
  t.end(1006500, "ignored: ends once");
  const auto j = t.to_json();
  CHECK(j.at("attempt") == 2);
  CHECK(j.at("startTime") == "1970-01-01T00:16:40Z");
  CHECK(j.at("droppedEvents") == 0);
  CHECK(j.at("events") == bj::parse(R"([
    {"ms":0,"event":"connecting","detail":"127.0.0.1:4059"},
    {"ms":10,"event":"link up"},
    {"ms":210,"event":"sent","data":"/?!<CR><LF>"},
    {"ms":700,"event":"received","data":"/SIM5MTS-SIM<CR><LF>"},
    {"ms":900,"event":"sent","data":"<SOH>P1<STX>(********)<ETX>*"},
    {"ms":5900,"event":"timer"},
    {"ms":5900,"event":"end","detail":"no answer to password"}])"));
  CHECK(bj::serialize(j).find("pw12") == std::string::npos);
}

TEST_CASE("the bound drops later events but keeps the end", "[transcript]") {
  const std::string block(100, 'x');
  // Room for the first event (100 + 8 + 16) and the second, not the third.
  attempt_transcript t(1, 0, 2 * (100 + 8 + 16) + 10, {});
  t.received(1, block);
  t.received(2, block);
  t.received(3, block);
  t.event(4, "link down", "closed by peer"); // dropped too: the transcript is full
  t.end(5, "line dropped");
  CHECK(t.dropped_events() == 2);
  const auto j = t.to_json();
  CHECK(j.at("droppedEvents") == 2);
  const auto& events = j.at("events").as_array();
  REQUIRE(events.size() == 3);
  CHECK(events[0].at("ms") == 1);
  CHECK(events[1].at("ms") == 2);
  CHECK(events[2] == bj::parse(R"({"ms":5,"event":"end","detail":"line dropped"})"));
  CHECK(t.used_bytes() <= 2 * (100 + 8 + 16) + 10 + 16 + 3 + 12); // the end's own cost on top

  std::vector<attempt_transcript> all;
  CHECK(transcripts_json(all).empty());
  all.push_back(t);
  CHECK(bj::parse(transcripts_json(all)).as_array().size() == 1);
}

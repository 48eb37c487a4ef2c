#pragma once
// The simulated modem served by `mts-sim serve --modem-port P` / `--modem-pty`: every TCP
// connection to the port is one modem line (a TCP serial gateway with a modem behind it), and
// the pseudo-terminal is one more (a modem on a serial port). Each line runs a sim::modem_line
// (sim/modem.hpp); a connected call runs a fresh session of the dialled meter, whatever its
// type (sim/meter_session.hpp), in-process, all on the reactor's I/O thread. A baud switch the
// meter makes during a call is invisible to the caller: the call's speed is the modem's.
//
// Number plan (printed in the modem's JSON line):
//   meter i (0-based) "0100" + 7 digits of i+1 (01000000001, ...); the same meter with the
//   call dropped after modem_config::drop_after_bytes meter characters: "0800" + the same 7
//   digits; BUSY 07000000007, NO ANSWER 07000000008, NO CARRIER 07000000003; anything else
//   NO CARRIER. A meter's line has its type's character format (7E1 for IEC 62056-21 and
//   Elster, 8N1 for DLMS); a DLMS meter speaks HDLC on a call whatever its type's transport.
//
// The pseudo-terminal: the server holds the slave side open itself (so the line survives the
// client opening and closing the device between calls, as a real serial port does). Linux
// keeps a pseudo-terminal at CS8 without parity whatever the client sets, so the client's
// character format is what its bytes carry (the modem detects it from "AT"). A
// pseudo-terminal has no DTR: a client closing the device is not seen, only its ATH is.
//
// Counters: calls open now, the peak and the total, and how calls ended (hangup by ATH or ATZ,
// meterClosed, dropped, linkClosed), for the tests that check that every call is hung up.
#include "io/tcp_reactor.hpp"
#include "sim/modem.hpp"
#include "sim/server.hpp"
#include "sim/sim_config.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mts::sim {

struct modem_server_options {
  std::string address = "127.0.0.1";
  std::optional<std::uint16_t> tcp_port; // 0: a free port
  bool pty = false;
  modem_config modem;
};

struct modem_counters {
  std::uint64_t now = 0, peak = 0, total = 0;
  std::uint64_t hangup = 0, meter_closed = 0, dropped = 0, link_closed = 0;
  std::uint64_t lines = 0; // modem lines opened (TCP connections and the pty)
};

std::string modem_number(std::size_t meter_index);
std::string drop_number(std::size_t meter_index);
inline const char* busy_number = "07000000007";
inline const char* no_answer_number = "07000000008";
inline const char* no_carrier_number = "07000000003";

// The number plan above for `meter_count` meters (every meter 7E1).
number_plan make_number_plan(std::size_t meter_count);
// The same for these meters, each with its character format (identity.line: DLMS meters 8N1).
number_plan make_number_plan(const std::vector<sim_meter>& meters);

class modem_server {
public:
  // Throws std::system_error when the port cannot be bound or the pty cannot be made. Not to be
  // called on the reactor's I/O thread. The reactor must outlive the server.
  modem_server(io::tcp_reactor& reactor, std::vector<sim_meter> meters, server_options meter_options,
               modem_server_options options);
  ~modem_server();
  modem_server(const modem_server&) = delete;
  modem_server& operator=(const modem_server&) = delete;

  // {"modem":{"tcpPort":..,"pty":"..","numbers":[..],"dropNumbers":[..],"busy":..,
  //  "noAnswer":..,"noCarrier":..}}
  std::string json_line() const;
  modem_counters counters() const; // any thread
  // {"modemCalls":{"now","peak","total","hangup","meterClosed","dropped","linkClosed","lines"}}
  std::string counters_json() const;

  struct shared;

private:
  std::shared_ptr<shared> shared_;
};

} // namespace mts::sim

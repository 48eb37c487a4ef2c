#pragma once
// The driver framework: every meter protocol is a pure state machine ("sans-I/O"). A driver
// never opens a socket, starts a thread, sleeps or reads a clock. It is fed events (link up,
// bytes received, its timer expired, link down), each with the current time, and answers with
// actions (send bytes, arm its timer, change the line settings, finish). The same driver thus
// runs over TCP, a modem, or a byte-transcript test.
#include "common/time.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mts::drivers {

// Milliseconds since the Unix epoch (UTC): the time a driver is told with every event.
using unix_ms = std::int64_t;

// Character format and speed of the line.
struct line_settings {
  int baud = 300;
  int data_bits = 7;
  char parity = 'E'; // 'N', 'E' or 'O'
  int stop_bits = 1;
  bool operator==(const line_settings& o) const {
    return baud == o.baud && data_bits == o.data_bits && parity == o.parity && stop_bits == o.stop_bits;
  }
};

// ---- actions ----
struct send_bytes {
  std::string data;
};
// A driver has one timer: arming it replaces any earlier arming. The id comes back with the
// expiry, so a driver can ignore an expiry it no longer waits for.
struct arm_timer {
  std::chrono::milliseconds after{0};
  std::uint64_t id = 0;
};
struct cancel_timer {};
// Switch the line (after the bytes sent before it have left). A link that cannot switch
// (a TCP socket) ignores the speed and reports nothing.
struct change_line {
  line_settings settings;
};
// Whether a failure is worth another attempt (retry policy).
enum class failure_kind { none, transient, permanent };
struct finish {
  failure_kind failure = failure_kind::none; // none: the session ended as planned
  std::string reason;                        // for "ERROR: <reason>"; empty on success
};
using action = std::variant<send_bytes, arm_timer, cancel_timer, change_line, finish>;
using actions = std::vector<action>;

// ---- what a session read, item by item (a failure part-way keeps what was read) ----
struct register_value {
  std::string name;  // e.g. "kWh Import"
  double value = 0;
  std::string units; // e.g. "kWh"
  unix_seconds timestamp = 0;
};
struct survey_reading {
  unix_seconds timestamp = 0; // start of the interval, UTC
  double value = 0;
};
struct survey_channel {
  std::string name;
  std::string units;
  std::vector<survey_reading> readings; // in time order
};
struct meter_readings {
  std::optional<std::string> serial_number;
  std::optional<unix_seconds> meter_time;       // what the meter's clock said
  std::optional<unix_seconds> meter_time_taken; // the true time when it was read
  std::optional<std::vector<std::string>> status_events;
  std::optional<std::vector<register_value>> registers;
  std::optional<std::vector<survey_channel>> survey;
  // Items the session could not read although it went on (e.g. a DLMS object the meter does
  // not have: "register 1.0.7.8.0.255: object undefined"). Not empty: PARTIAL SUCCESS at best.
  std::vector<std::string> item_failures;
};

// What a test asks of a meter.
struct session_request {
  std::optional<std::string> outstation_address;
  std::optional<std::string> password;
  std::optional<std::string> expected_serial; // mismatch: permanent failure, nothing more read
  // Survey range [from, to) in UTC; no survey when absent.
  std::optional<unix_seconds> survey_from;
  std::optional<unix_seconds> survey_to;
  // The link is a modem call (a DLMS session then always carries HDLC).
  bool over_modem = false;
};

class meter_driver {
public:
  virtual ~meter_driver() = default;
  // The link is up (TCP connected, or the modem reported CONNECT).
  virtual actions on_link_up(unix_ms now) = 0;
  virtual actions on_bytes(std::string_view data, unix_ms now) = 0;
  virtual actions on_timer(std::uint64_t id, unix_ms now) = 0;
  // The link went down without the driver asking; the driver finishes (transient failure).
  virtual actions on_link_down(unix_ms now) = 0;
  // Everything read so far.
  virtual const meter_readings& readings() const = 0;
};

} // namespace mts::drivers

#pragma once
// The TEST actor: one per running test. It owns the test from dispatch to outcome, including
// retries, and answers the executor's (delegated) run request with the test_outcome; the
// scheduler writes that outcome through the persistence actor (exactly once: the store only
// completes a RUNNING test). The actor quits once it has answered.
//
// One attempt:
//   - the meter type's driver (drivers/registry.hpp) is made with a session_request built from
//     the record: outstation address, password, expected serial, and the survey range
//     [surveyDate 00:00 UTC, + surveyDays whole days) clipped at the attempt's start time (no
//     survey when surveyDays is 0);
//   - a connection is spawned through the injected connection_factory (tagged with the
//     attempt number; events of an earlier attempt's link are ignored) and monitored;
//   - link events and timer expiries are fed to the driver, each with the injected clock's
//     time; its actions are executed: send_bytes -> connection send, arm_timer -> delayed_send
//     to self with (attempt, timer id) (an expiry whose id is no longer the armed one is
//     ignored: there is no cancel in CAF 0.17), cancel_timer -> forget the armed id,
//     change_line -> ignored (a TCP link has no line settings), finish -> close the connection
//     and end the attempt.
//   - connect failed -> transient failure "cannot connect: <reason>". A connection actor that
//     ends without its terminal event counts as a dropped line. Guard: if the link is neither
//     up nor failed connect_timeout + 5 s after the attempt began, the attempt fails
//     "cannot connect: connection timed out" (the reactor's own timeout should fire first).
//
// Retry policy: a transient failure starts the next attempt after retry_delay, up to
// max_attempts attempts in all; a permanent failure or success ends the test at once.
// Whole-test deadline: when test_deadline passes the open link is closed and the test ends
// with what the current (or last) attempt read: PARTIAL SUCCESS if that is anything, else
// "ERROR: test deadline exceeded" (drivers::make_outcome). The executor sets it a little
// below the scheduler's request timeout so this outcome, with its partial readings, is the
// one recorded.
//
// Transcript (actors/transcript.hpp): with transcript_max_bytes > 0 each attempt records its
// link events, the bytes both ways (password masked), the driver timers that expired without
// a send, and how it ended; the outcome carries them all as transcript_json.
//
// Outcome (decisions):
//   - result and readings come from the LAST attempt only (drivers::make_outcome): an earlier
//     attempt's partial readings are dropped, so the readings, connection times and result
//     always describe one session;
//   - connection_start_time = when the last attempt's link came up, connection_end_time = when
//     that attempt ended (driver finished, line dropped, deadline); both absent when the last
//     attempt never connected;
//   - connection_attempts = the attempts this run made (0 when it could not run at all, e.g.
//     a modem address); test-status shows it as `attempts`;
//   - test_end_time = when the outcome is made. testStartTime (first attempt) is recorded by
//     the scheduler when it marks the test running;
//   - tests this actor cannot run (meter type without a driver, a telephone number without a
//     modem pool) end at once with a permanent ERROR naming the reason; the scheduler's
//     can_run keeps such tests queued so they normally never get here.
//
// Dial-up meters (a telephone-number address; see drivers/at_modem.hpp and
// actors/modem_pool.hpp):
//   - each attempt asks the run request's modem broker (the scheduler, which owns the pool)
//     for its modem: the one the test holds (acquired at dispatch), or after a modem fault
//     another free one; none free, or no answer within modem_request_timeout: the attempt
//     fails transiently "no modem available" and is retried as usual. The link to the modem
//     is opened through the injected modem_link_factory and the meter driver is wrapped in the
//     AT decorator;
//   - the character format of the call is comsSettings, else the meter type's initial line
//     format: on a serial device (without software_parity) it is set on the port, otherwise the
//     decorator makes it in software;
//   - a modem fault (the decorator's modem_fault, or the link to the modem failing to open) is
//     reported to the broker, which takes the modem out of service for the cool-down, and the
//     next attempt starts at once on another modem; such attempts do not count against
//     max_attempts;
//   - connection_start/end_time are the call's (CONNECT to hang-up), not the modem link's;
//   - the whole-test deadline closes the modem link, which drops DTR on a serial port.
#include "actors/serial_connection.hpp"
#include "drivers/at_modem.hpp"
#include "actors/connection.hpp"
#include "actors/interfaces.hpp"
#include "actors/transcript.hpp"
#include "drivers/driver.hpp"
#include "drivers/registry.hpp"

#include <caf/typed_response_promise.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace mts {

// How long a test actor waits for the broker's answer to a modem request (the scheduler
// answers from memory; this bounds a lost or stalled one).
constexpr std::chrono::seconds modem_request_timeout{10};

struct test_runner_config {
  // The meter types this test may run (a test keeps the registry it started with, whatever a
  // reload does meanwhile). Null: no type can be run.
  std::shared_ptr<const meter_type_registry> types;
  std::int64_t max_attempts = 3;
  std::chrono::milliseconds retry_delay{60000};
  std::chrono::milliseconds connect_timeout{20000};
  std::chrono::milliseconds test_deadline{1800000}; // zero or less: none
  connection_factory connect;
  // Bound of each attempt's transcript (scheduler.transcript_max_bytes); 0: none recorded.
  std::size_t transcript_max_bytes = 0;
  // Dial-up meters: how to open the link to a modem (empty: telephone numbers cannot be run),
  // and the AT dialogue's timings. The modems themselves come from the broker the run
  // request names (the scheduler).
  modem_link_factory open_modem_link;
  std::chrono::milliseconds modem_command_timeout{5000};
  std::chrono::milliseconds modem_connect_timeout{60000};
  std::chrono::milliseconds modem_guard_time{1000};
  // The wall clock, milliseconds since the epoch (UTC); injected so actor tests are
  // deterministic. Empty: the system clock.
  std::function<drivers::unix_ms()> clock;
};

// The session a test asks of its meter at the time `now` (the attempt's start).
drivers::session_request make_session_request(const test_request& request, unix_seconds now);

// Why a test cannot be run by this executor yet; nothing when it can. A telephone number can
// be run when the server has modems.
std::optional<std::string> why_not_runnable(const test_request& request, const meter_type_registry* types,
                                            bool have_modems = false);

struct test_runner_state {
  static inline const char* name = "test_runner";
  test_runner_config config;
  test_record record;
  caf::typed_response_promise<test_outcome> promise;
  bool started = false;
  bool done = false;
  // The outcome waits until the last link has closed (test_runner.cpp, complete()).
  std::optional<test_outcome> outcome;
  bool conn_ended = false; // the current connection actor has ended (its socket is closed)
  const meter_type* type = nullptr; // in config.types
  tcp_address target;

  // The current attempt (1-based; 0 before the first).
  std::int64_t attempt = 0;
  bool active = false; // an attempt is in progress (not between attempts)
  bool link_up = false;
  std::unique_ptr<drivers::meter_driver> driver;
  connection_actor conn;
  std::optional<std::uint64_t> armed_timer;
  drivers::session_request request;
  std::optional<unix_seconds> connection_start;
  std::optional<unix_seconds> connection_end;

  // Dial-up: who hands out modems, the attempt's decorator (owned by driver), and faults
  // seen so far.
  bool dial_up = false;
  modem_broker_actor broker;
  drivers::at_modem_driver* dialer = nullptr;
  std::optional<std::string> modem_name;
  std::int64_t modem_faults = 0;
  bool past_deadline = false; // the test deadline passed while a call was hung up

  // How the last finished attempt ended, and what it read.
  drivers::finish last_finish;
  drivers::meter_readings last_readings;

  std::vector<attempt_transcript> transcripts; // one per attempt, when enabled
};

test_runner_actor::behavior_type test_runner(test_runner_actor::stateful_pointer<test_runner_state> self,
                                             test_runner_config config);

} // namespace mts

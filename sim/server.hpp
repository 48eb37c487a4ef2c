#pragma once
// The simulator's serving side: meters listening on TCP ports of one io::tcp_reactor, each
// accepted connection a fresh meter session (sim/meter_session.hpp: sim::iec_meter,
// sim::elster_meter or sim::dlms_meter by the meter's type) whose actions the I/O thread
// executes.
//
// Decisions:
// - Everything of a session (its state machine, its timer) runs on the reactor's I/O thread:
//   no locks but the counters'.
// - refuse_connection: the port is bound and listened on (so a busy port is still an error
//   and port 0 still picks a port), then the listener is closed at once: connecting gets
//   "connection refused" from the kernel, as with a meter that is not there.
// - pace_baud B > 0: replies leave byte by byte at 10 bits a character at min(B, the baud the
//   meter's line is at when the bytes are sent), so the 300-baud sign-on stays at 300 and the
//   data at the switched speed (at most B). change_line needs nothing more.
// - finish closes gracefully (queued output is flushed first). The link going down feeds
//   on_link_down to the meter (its actions are dropped).
// - The meters' clock: the system clock, or with options::start_time that instant plus the
//   time since the server was made (freeze_clock: the instant itself, always).
// - Counters: sessions open now, the peak and the total, overall and per meter; per meter also
//   the bytes received and sent, keyed by the meter's line baud at that moment (so a benchmark
//   can work out the time the bytes need on a real line), the reads (on_data calls) and the
//   replies (send actions), and the duration of the last session that ended (accept to close).
#include "io/tcp_reactor.hpp"
#include "sim/iec_meter.hpp"
#include "sim/meter_session.hpp"
#include "sim/sim_config.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mts::sim {

struct server_options {
  std::string address = "127.0.0.1";
  std::optional<unix_seconds> start_time;
  bool freeze_clock = false;
  // Timing of every meter session (and the IEC meter's own settings); pinned_now is ignored:
  // see start_time.
  iec_meter_config meter_config;
};

// The meters' clock, ms since the epoch: the system clock, or from options.start_time (frozen
// there, or running since `started`).
drivers::unix_ms meters_clock_ms(const server_options& options, std::chrono::steady_clock::time_point started);

struct session_counters {
  std::uint64_t now = 0;
  std::uint64_t peak = 0;
  std::uint64_t total = 0;
};

// Traffic of one meter's sessions, summed over them.
struct traffic_counters {
  std::map<int, std::uint64_t> bytes_received; // line baud -> bytes
  std::map<int, std::uint64_t> bytes_sent;     // line baud -> bytes
  std::uint64_t reads = 0;                     // batches of bytes received
  std::uint64_t replies = 0;                   // sends (one per reply the meter makes)
  std::optional<double> last_session_ms;       // the last session that ended, accept to close
};

struct server_counters {
  session_counters overall;
  std::vector<session_counters> per_meter; // in meter order
  std::vector<traffic_counters> traffic;    // in meter order
};

class sim_server {
public:
  // Listens on every meter's port (port 0: a free one). Throws std::system_error naming
  // address:port when one cannot be bound (the ports bound before are closed again), and
  // sim_error for a type that is not simulated. The reactor must outlive the server. Not to
  // be called on the reactor's I/O thread: it waits (at most 10 s) until the listeners are
  // registered and the refusing ones closed.
  sim_server(io::tcp_reactor& reactor, std::vector<sim_meter> meters, server_options options = {});
  // Stops listening and closes the open sessions at once.
  ~sim_server();
  sim_server(const sim_server&) = delete;
  sim_server& operator=(const sim_server&) = delete;

  std::size_t size() const;
  const sim_meter& meter(std::size_t index) const;
  // The bound port (also for a refusing meter, whose port is closed again).
  std::uint16_t port(std::size_t index) const;
  // The meter's JSON line (sim::meter_json_line).
  std::string meter_line(std::size_t index) const;

  server_counters counters() const; // any thread
  // {"sessionsNow":..,"sessionsPeak":..,"sessionsTotal":..,"meters":[{"port","serialNumber",
  //  "sessionsNow","sessionsPeak","sessionsTotal","bytesReceived":{"<baud>":n...},
  //  "bytesSent":{...},"reads","replies"[,"lastSessionMs"]}...]}
  std::string counters_json() const;

  struct shared; // the state sessions share (public for the implementation's helpers)

private:
  std::shared_ptr<shared> shared_;
};

} // namespace mts::sim

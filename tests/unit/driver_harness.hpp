#pragma once
// Test helpers shared by the driver and simulated-meter unit tests (IEC 62056-21 and Elster):
// - checks of a driver's actions in byte transcripts (only_timer, send_then_timer, finished)
//   and a scripted-meter session (driver_session: the clock, exchanges, sign-on);
// - reading a meter's actions (sent, finished, line_change) and an independent BCC (framed);
// - a client driver against a simulated meter in-process (run_in_process): both sides' bytes
//   go straight to the other while their lines agree (else they are lost and counted), the
//   earliest due timer fires when nothing is in flight, the driver is told link down when the
//   meter closes; and the whole-result comparison with the expected readings (require_equal).
#include "drivers/driver.hpp"
#include "sim/meter_session.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace mts::testing {

using namespace std::chrono_literals;

inline const std::string nak(1, '\x15');
inline const std::string b0 = "\x01\x42\x30\x03\x71";

// A simulated meter's configuration (any of the *_meter_config, all framed_meter_timing) that
// answers at once, its clock pinned at `now`, as session `session` of the meter.
template <class Config>
Config instant_meter(unix_seconds now, std::uint64_t session = 1) {
  Config c;
  c.reaction_delay = std::chrono::milliseconds(0);
  c.pinned_now = now;
  c.session_number = session;
  return c;
}

// ---- driver actions ----
inline std::uint64_t only_timer(const drivers::actions& a, std::chrono::milliseconds after) {
  REQUIRE(a.size() == 1);
  const auto* t = std::get_if<drivers::arm_timer>(&a[0]);
  REQUIRE(t);
  CHECK(t->after == after);
  return t->id;
}

inline std::uint64_t send_then_timer(const drivers::actions& a, const std::string& bytes,
                                     std::chrono::milliseconds after) {
  REQUIRE(a.size() == 2);
  const auto* s = std::get_if<drivers::send_bytes>(&a[0]);
  REQUIRE(s);
  CHECK(s->data == bytes);
  const auto* t = std::get_if<drivers::arm_timer>(&a[1]);
  REQUIRE(t);
  CHECK(t->after == after);
  return t->id;
}

// The session ends: [B0,] finish(kind, reason).
inline void finished(const drivers::actions& a, drivers::failure_kind kind, const std::string& reason,
                     bool sign_off) {
  REQUIRE(a.size() == (sign_off ? 2u : 1u));
  if (sign_off) {
    const auto* s = std::get_if<drivers::send_bytes>(&a[0]);
    REQUIRE(s);
    CHECK(s->data == b0);
  }
  const auto* f = std::get_if<drivers::finish>(&a.back());
  REQUIRE(f);
  CHECK(f->failure == kind);
  CHECK(f->reason == reason);
}

// A driver fed by a scripted meter: 150 ms after each send the meter's answer arrives.
template <class Driver>
struct driver_session {
  Driver driver;
  drivers::unix_ms now;
  std::uint64_t timer = 0; // the timer the driver armed last

  template <class Config>
  driver_session(drivers::session_request r, Config c, drivers::unix_ms start)
      : driver(std::move(r), std::move(c)), now(start) {}

  drivers::unix_ms tick(drivers::unix_ms ms) { return now += ms; }

  // The meter answers; after the reaction delay the driver sends `next` and awaits an answer.
  void exchange(const std::string& reply, const std::string& next, std::chrono::milliseconds reaction = 200ms) {
    const auto id = only_timer(driver.on_bytes(reply, tick(150)), reaction);
    timer = send_then_timer(driver.on_timer(id, tick(reaction.count())), next, 5000ms);
  }

  // Link up, sign-on and option select (to 9600 baud); ends awaiting the password operand.
  void sign_on(const std::string& request, const std::string& ident, const std::string& select) {
    auto id = only_timer(driver.on_link_up(now), 200ms);
    timer = send_then_timer(driver.on_timer(id, tick(200)), request, 5000ms);
    id = only_timer(driver.on_bytes(ident, tick(400)), 200ms);
    auto a = driver.on_timer(id, tick(200));
    REQUIRE(a.size() == 3);
    CHECK(std::get<drivers::send_bytes>(a[0]).data == select);
    CHECK(std::get<drivers::change_line>(a[1]).settings == drivers::line_settings{9600, 7, 'E', 1});
    CHECK(std::get<drivers::arm_timer>(a[2]).after == 300ms);
    timer = only_timer(driver.on_timer(std::get<drivers::arm_timer>(a[2]).id, tick(300)), 5000ms);
  }
};

// ---- meter actions ----
// Independent BCC for frames whose text depends on the data model: XOR of everything after
// the first byte, 7 bits.
inline std::string framed(const std::string& without_bcc) {
  unsigned char x = 0;
  for (std::size_t i = 1; i < without_bcc.size(); ++i)
    x ^= static_cast<unsigned char>(without_bcc[i]);
  return without_bcc + static_cast<char>(x & 0x7F);
}

inline std::string sent(const drivers::actions& a) {
  std::string out;
  for (const auto& x : a)
    if (const auto* s = std::get_if<drivers::send_bytes>(&x))
      out += s->data;
  return out;
}
inline bool finished(const drivers::actions& a) {
  for (const auto& x : a)
    if (std::holds_alternative<drivers::finish>(x))
      return true;
  return false;
}
inline std::optional<drivers::line_settings> line_change(const drivers::actions& a) {
  for (const auto& x : a)
    if (const auto* c = std::get_if<drivers::change_line>(&x))
      return c->settings;
  return std::nullopt;
}

// ---- a driver against a simulated meter, in-process ----
struct in_process_outcome {
  drivers::meter_readings readings;
  drivers::failure_kind failure = drivers::failure_kind::none;
  std::string reason;
  bool finished = false;
  drivers::unix_ms end = 0;
  int lost_sends = 0;     // bytes sent while the two sides' lines differed
  int driver_naks = 0;    // repeat requests from the driver
  int p2_sent = 0;        // P2 password messages from the driver
  int partial_blocks = 0; // EOT blocks from the meter
};

// Runs until the driver finishes, nothing is left to happen, or max_steps events were fed.
inline in_process_outcome run_in_process(sim::meter_session& meter, drivers::meter_driver& driver,
                                         drivers::line_settings driver_line, drivers::unix_ms start,
                                         int max_steps) {
  using namespace drivers;
  struct timer_slot {
    std::optional<unix_ms> due;
    std::uint64_t id = 0;
  };
  struct side {
    line_settings line;
    timer_slot timer;
    std::deque<std::string> inbox; // bytes on their way to this side
  };
  in_process_outcome o;
  unix_ms t = start;
  side d{driver_line, {}, {}}, m{meter.line(), {}, {}};
  bool meter_closed = false, link_down_told = false;

  // Bytes reach the peer only while both lines agree.
  const auto apply = [&](const actions& acts, side& self, side& peer, auto&& on_send, auto&& on_finish) {
    for (const auto& a : acts) {
      if (const auto* s = std::get_if<send_bytes>(&a)) {
        on_send(s->data);
        if (self.line == peer.line)
          peer.inbox.push_back(s->data);
        else
          ++o.lost_sends;
      } else if (const auto* c = std::get_if<change_line>(&a)) {
        self.line = c->settings;
      } else if (const auto* at = std::get_if<arm_timer>(&a)) {
        self.timer = {t + at->after.count(), at->id};
      } else if (std::holds_alternative<cancel_timer>(a)) {
        self.timer.due.reset();
      } else if (const auto* fin = std::get_if<finish>(&a)) {
        on_finish(*fin);
      }
    }
  };
  const auto driver_actions = [&](const actions& acts) {
    apply(
        acts, d, m,
        [&](const std::string& data) {
          o.driver_naks += data == "\x15" ? 1 : 0;
          o.p2_sent += data.rfind("\x01P2", 0) == 0 ? 1 : 0;
        },
        [&](const finish& fin) {
          o.finished = true;
          o.failure = fin.failure;
          o.reason = fin.reason;
        });
  };
  const auto meter_actions = [&](const actions& acts) {
    apply(
        acts, m, d,
        [&](const std::string& data) {
          o.partial_blocks += data.size() >= 2 && data[data.size() - 2] == '\x04' ? 1 : 0;
        },
        [&](const finish&) { meter_closed = true; });
  };

  meter_actions(meter.on_link_up(t));
  driver_actions(driver.on_link_up(t));
  for (int steps = 0; !o.finished && steps < max_steps; ++steps) {
    if (!m.inbox.empty()) {
      auto data = std::move(m.inbox.front());
      m.inbox.pop_front();
      if (!meter_closed)
        meter_actions(meter.on_bytes(data, t));
    } else if (!d.inbox.empty()) {
      auto data = std::move(d.inbox.front());
      d.inbox.pop_front();
      driver_actions(driver.on_bytes(data, t));
    } else if (meter_closed && !link_down_told) {
      link_down_told = true;
      driver_actions(driver.on_link_down(t));
    } else {
      const bool dd = d.timer.due.has_value(), md = m.timer.due.has_value() && !meter_closed;
      if (!dd && !md)
        break; // stuck
      if (dd && (!md || *d.timer.due <= *m.timer.due)) {
        t = std::max(t, *d.timer.due);
        d.timer.due.reset();
        driver_actions(driver.on_timer(d.timer.id, t));
      } else {
        t = std::max(t, *m.timer.due);
        m.timer.due.reset();
        meter_actions(meter.on_timer(m.timer.id, t));
      }
    }
  }
  o.readings = driver.readings();
  o.end = t;
  return o;
}

// The survey, channel by channel and reading by reading, exactly.
inline void require_equal_survey(const drivers::meter_readings& got, const drivers::meter_readings& want) {
  REQUIRE(got.survey.has_value() == want.survey.has_value());
  if (want.survey) {
    REQUIRE(got.survey->size() == want.survey->size());
    for (std::size_t i = 0; i < want.survey->size(); ++i) {
      const auto &g = (*got.survey)[i], &w = (*want.survey)[i];
      CHECK(g.name == w.name);
      CHECK(g.units == w.units);
      REQUIRE(g.readings.size() == w.readings.size());
      for (std::size_t j = 0; j < w.readings.size(); ++j) {
        CHECK(g.readings[j].timestamp == w.readings[j].timestamp);
        CHECK(g.readings[j].value == w.readings[j].value);
      }
    }
  }
}

// Whole-result comparison; times the driver takes from its own clock (register timestamps,
// meter_time_taken) must fall within the session (which ended at `end`).
inline void require_equal(const drivers::meter_readings& got, const drivers::meter_readings& want,
                          drivers::unix_ms end) {
  const unix_seconds last = end / 1000 + 1;
  CHECK(got.serial_number == want.serial_number);
  CHECK(got.meter_time == want.meter_time);
  REQUIRE(got.meter_time_taken.has_value() == want.meter_time_taken.has_value());
  if (want.meter_time_taken) {
    CHECK(*got.meter_time_taken >= *want.meter_time_taken);
    CHECK(*got.meter_time_taken <= last);
  }
  CHECK(got.status_events == want.status_events);
  REQUIRE(got.registers.has_value() == want.registers.has_value());
  if (want.registers) {
    REQUIRE(got.registers->size() == want.registers->size());
    for (std::size_t i = 0; i < want.registers->size(); ++i) {
      const auto &g = (*got.registers)[i], &w = (*want.registers)[i];
      CHECK(g.name == w.name);
      CHECK(g.value == w.value);
      CHECK(g.units == w.units);
      CHECK(g.timestamp >= w.timestamp);
      CHECK(g.timestamp <= last);
    }
  }
  require_equal_survey(got, want);
}

} // namespace mts::testing

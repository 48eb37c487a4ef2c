#pragma once
// Drives a meter driver (a sans-I/O state machine) with a sequence of events the fuzzer
// chooses, the way the test runner feeds it: link up, then bytes (any content, any split),
// expiries of the timer it armed (and of timers it did not arm, which it must ignore), link
// down, with the clock moving forward by chosen steps. Checked on every answer:
// - nothing after finish, and a failure always has a reason;
// - output is bounded: no single answer sends more than max_send_per_event bytes;
// - timers and line changes are sane;
// - link down always finishes a driver's session;
// and once the input runs out the line goes silent: the driver must finish through its own
// timers within max_silent_expiries expiries (it never waits forever).
#include "drivers/driver.hpp"
#include "fuzz_check.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>

namespace mts::fuzzing {

inline constexpr std::size_t max_send_per_event = 64 * 1024;
inline constexpr int max_silent_expiries = 1000;
inline constexpr std::chrono::milliseconds max_timer{std::chrono::hours(24)};

// A session request from the fuzzer's bytes: any password, address and serial, and a survey
// of up to 10 whole days (the range validation allows for a test is about as long).
inline drivers::session_request fuzzed_session_request(FuzzedDataProvider& in, unix_seconds midnight) {
  drivers::session_request r;
  if (in.ConsumeBool())
    r.outstation_address = in.ConsumeRandomLengthString(32);
  if (in.ConsumeBool())
    r.password = in.ConsumeRandomLengthString(32);
  if (in.ConsumeBool())
    r.expected_serial = in.ConsumeRandomLengthString(32);
  if (in.ConsumeBool()) {
    auto days_back = in.ConsumeIntegralInRange<int>(1, 10);
    auto days = in.ConsumeIntegralInRange<int>(1, days_back);
    r.survey_from = midnight - days_back * 86400;
    r.survey_to = *r.survey_from + days * 86400;
  }
  r.over_modem = in.ConsumeBool();
  return r;
}

// Machine: drivers::meter_driver, or the simulated meters' sim::meter_session (the same
// events and actions; finish there means the meter closes the link).
template <class Machine>
class event_script {
public:
  // `cut_off`, when given, is a further event: the test's deadline cuts the session off.
  explicit event_script(Machine& driver, std::function<drivers::actions(drivers::unix_ms)> cut_off = nullptr)
      : driver_(driver), cut_off_(std::move(cut_off)) {}

  void play(FuzzedDataProvider& in) {
    apply(driver_.on_link_up(now_));
    while (!finished_ && in.remaining_bytes() > 0) {
      now_ += in.ConsumeIntegralInRange<int>(0, 3000);
      switch (in.ConsumeIntegralInRange<int>(0, 9)) {
        case 0: // the armed timer expires
          if (armed_) {
            now_ += armed_->after.count();
            auto id = armed_->id;
            armed_.reset();
            apply(driver_.on_timer(id, now_));
          }
          break;
        case 1: // an expiry the driver no longer waits for (a stale or foreign id)
          apply(driver_.on_timer(in.ConsumeIntegral<std::uint64_t>(), now_));
          break;
        case 2:
          apply(driver_.on_link_down(now_));
          // A driver reports the failure; a simulated meter's session just ends with the link.
          if constexpr (std::is_same_v<Machine, drivers::meter_driver>)
            FUZZ_CHECK(finished_, "link down did not finish the session");
          finished_ = true;
          break;
        case 3:
          if (cut_off_)
            apply(cut_off_(now_));
          break;
        default: {
          auto bytes = in.ConsumeRandomLengthString(1024);
          apply(driver_.on_bytes(bytes, now_));
        }
      }
    }
    for (int i = 0; !finished_ && i < max_silent_expiries; ++i) {
      FUZZ_CHECK(armed_.has_value(), "the driver waits on a silent line without a timer");
      now_ += armed_->after.count();
      auto id = armed_->id;
      armed_.reset();
      apply(driver_.on_timer(id, now_));
    }
    FUZZ_CHECK(finished_, "the driver did not finish on a silent line");
  }

private:
  void apply(const drivers::actions& answer) {
    std::size_t sent = 0;
    for (const auto& a : answer) {
      FUZZ_CHECK(!finished_, "an action after finish");
      if (const auto* s = std::get_if<drivers::send_bytes>(&a)) {
        sent += s->data.size();
      } else if (const auto* t = std::get_if<drivers::arm_timer>(&a)) {
        FUZZ_CHECK(t->after.count() >= 0 && t->after <= max_timer, "a timer out of range");
        armed_ = *t;
      } else if (std::holds_alternative<drivers::cancel_timer>(a)) {
        armed_.reset();
      } else if (const auto* c = std::get_if<drivers::change_line>(&a)) {
        const auto& l = c->settings;
        FUZZ_CHECK(l.baud > 0 && l.data_bits >= 5 && l.data_bits <= 8 && l.stop_bits >= 1 && l.stop_bits <= 2 &&
                     (l.parity == 'N' || l.parity == 'E' || l.parity == 'O'),
                   "an impossible line setting");
      } else if (const auto* f = std::get_if<drivers::finish>(&a)) {
        FUZZ_CHECK(f->failure == drivers::failure_kind::none || !f->reason.empty(), "a failure without a reason");
        finished_ = true;
      }
    }
    FUZZ_CHECK(sent <= max_send_per_event, "unbounded output in one answer");
  }

  Machine& driver_;
  std::function<drivers::actions(drivers::unix_ms)> cut_off_;
  drivers::unix_ms now_ = 1'700'000'000'000; // 2023-11-14 22:13:20 UTC
  std::optional<drivers::arm_timer> armed_;
  bool finished_ = false;
};

using driver_script = event_script<drivers::meter_driver>;

} // namespace mts::fuzzing

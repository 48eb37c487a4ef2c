// The simulated modem (sim/modem.hpp): its AT side on hand-written transcripts, and the whole
// dial-up chain in-process on a virtual clock: IEC driver inside the AT decorator
// (drivers/at_modem.hpp) <-> simulated modem line <-> simulated IEC meter.
#include "drivers/at_modem.hpp"
#include "drivers/elster.hpp"
#include "drivers/iec62056_21.hpp"
#include "sim/iec_meter.hpp"
#include "sim/meter_session.hpp"
#include "sim/modem.hpp"
#include "sim/modem_server.hpp"
#include "sim/sim_config.hpp"

#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <map>

using namespace mts;
using namespace std::chrono_literals;

namespace {

std::string dte_text(const sim::modem_actions& acts) {
  std::string out;
  for (const auto& a : acts)
    if (auto* t = std::get_if<sim::to_dte>(&a))
      out += t->bytes;
  return out;
}

template <class T>
const T* find(const sim::modem_actions& acts) {
  for (const auto& a : acts)
    if (auto* t = std::get_if<T>(&a))
      return t;
  return nullptr;
}

sim::modem_config fast() {
  sim::modem_config c;
  c.connect_delay = 100ms;
  c.guard_time = 50ms;
  c.drop_after_bytes = 40;
  return c;
}

} // namespace

TEST_CASE("sim modem: commands, echo, numeric codes and dial results", "[sim_modem]") {
  sim::modem_line line(fast(), sim::make_number_plan(2));
  drivers::unix_ms now = 1000;
  REQUIRE(dte_text(line.on_dte_bytes("ATZ\r", now)) == "ATZ\r\r\nOK\r\n");
  REQUIRE(dte_text(line.on_dte_bytes("AT", now)) == "AT"); // echo as typed
  REQUIRE(dte_text(line.on_dte_bytes("E0V0\r", now)) == "E0V0\r0\r");
  REQUIRE(dte_text(line.on_dte_bytes("ATQ0&D2S0=0+CBST=7,0,1\r", now)) == "0\r");
  REQUIRE(dte_text(line.on_dte_bytes("ATJ\r", now)) == "4\r"); // unknown command: ERROR
  REQUIRE(dte_text(line.on_dte_bytes("hello\r", now)).empty()); // no "AT": ignored
  REQUIRE(dte_text(line.on_dte_bytes("ATV1\r", now)) == "\r\nOK\r\n");

  auto a = line.on_dte_bytes("ATD07000000007\r", now);
  auto* t = find<sim::arm_modem_timer>(a);
  REQUIRE(t);
  REQUIRE(t->after == 100ms);
  REQUIRE(dte_text(line.on_timer(t->id, now + 100)) == "\r\nBUSY\r\n");
  a = line.on_dte_bytes("ATD 0700-0000-008\r", now); // punctuation is skipped
  REQUIRE(dte_text(line.on_timer(find<sim::arm_modem_timer>(a)->id, now)) == "\r\nNO ANSWER\r\n");
  a = line.on_dte_bytes("ATD07000000003\r", now);
  REQUIRE(dte_text(line.on_timer(find<sim::arm_modem_timer>(a)->id, now)) == "\r\nNO CARRIER\r\n");
  a = line.on_dte_bytes("ATD05555\r", now); // not in the plan
  REQUIRE(dte_text(line.on_timer(find<sim::arm_modem_timer>(a)->id, now)) == "\r\nNO CARRIER\r\n");
  // A character while dialling aborts.
  a = line.on_dte_bytes("ATD01000000001\r", now);
  const auto dial_timer = find<sim::arm_modem_timer>(a)->id;
  REQUIRE(dte_text(line.on_dte_bytes("\r", now)) == "\r\nNO CARRIER\r\n");
  REQUIRE(line.on_timer(dial_timer, now + 100).empty());
  REQUIRE_FALSE(line.in_call());
}

TEST_CASE("sim modem: the DTE's character format is detected from AT and answered in", "[sim_modem]") {
  sim::modem_line line(fast(), sim::make_number_plan(1));
  // "ATE0\r" in 7E1: 'T' 0x54 has three ones -> 0xD4, 'E' 0x45 three -> 0xC5, '0' 0x30 two,
  // CR 0x0D three -> 0x8D.
  auto a = line.on_dte_bytes(std::string("\x41\xD4\xC5\x30\x8D"), 0);
  REQUIRE(line.dte_format().parity == 'E');
  // The echo as received, then CR LF O K CR LF in 7E1: 'O' 0x4F five ones -> 0xCF, 'K' 0x4B
  // four -> 0x4B, LF 0x0A two -> 0x0A.
  REQUIRE(dte_text(a) == std::string("\x41\xD4\xC5\x30\x8D") + std::string("\x8D\x0A\xCF\x4B\x8D\x0A"));
  a = line.on_dte_bytes("ATV1\r", 0); // plain again: 8N1
  REQUIRE(line.dte_format().parity == 'N');
  REQUIRE(dte_text(a) == "\r\nOK\r\n");
}

TEST_CASE("sim modem: a call, the escape with guard times, ATO, ATH", "[sim_modem]") {
  sim::modem_line line(fast(), sim::make_number_plan(2));
  drivers::unix_ms now = 1000;
  line.on_dte_bytes("ATE0\r", now);
  auto a = line.on_dte_bytes("ATD01000000002\r", now);
  a = line.on_timer(find<sim::arm_modem_timer>(a)->id, now += 100);
  REQUIRE(dte_text(a) == "\r\nCONNECT 9600\r\n");
  REQUIRE(find<sim::start_call>(a)->meter == 1);
  REQUIRE(line.in_call());
  // Data reaches the meter parity-checked: 'A' 0x41 is even already, 'C' 0x43 needs bit 7.
  a = line.on_dte_bytes(std::string("\x41\xC3\x43", 3), now += 10);
  REQUIRE(find<sim::to_meter>(a)->characters == std::string("AC\0", 3));
  // Meter characters leave with their parity bit.
  REQUIRE(dte_text(line.on_meter_characters("AC", now)) == std::string("\x41\xC3"));
  // "+++" too soon after data is data.
  a = line.on_dte_bytes("+++", now += 10);
  REQUIRE(find<sim::to_meter>(a)->characters == "+++");
  // After the guard time the pluses are held until it is clear what they are.
  a = line.on_dte_bytes("++", now += 60);
  REQUIRE(find<sim::to_meter>(a) == nullptr);
  a = line.on_dte_bytes("x", now += 10);
  REQUIRE(find<sim::to_meter>(a)->characters == "++x");
  // After the guard time it is an escape; a byte inside the second guard cancels it.
  a = line.on_dte_bytes("+++", now += 60);
  auto* t = find<sim::arm_modem_timer>(a);
  REQUIRE(t);
  REQUIRE(dte_text(line.on_timer(t->id, now += 50)) == "\r\nOK\r\n");
  REQUIRE(line.in_call()); // online-command state: the call stays up
  REQUIRE(line.on_meter_characters("lost", now).empty());
  REQUIRE(dte_text(line.on_dte_bytes("ATO\r", now)) == "\r\nCONNECT 9600\r\n");
  a = line.on_dte_bytes("+++", now += 60);
  line.on_timer(find<sim::arm_modem_timer>(a)->id, now += 50);
  a = line.on_dte_bytes("ATH\r", now);
  REQUIRE(find<sim::call_ended>(a)->cause == sim::call_end::hangup);
  REQUIRE(dte_text(a) == "\r\nOK\r\n");
  REQUIRE_FALSE(line.in_call());
}

TEST_CASE("sim modem: drop numbers, the meter closing and the DTE going away end the call", "[sim_modem]") {
  drivers::unix_ms now = 1000;
  auto connect = [&](sim::modem_line& line, const std::string& number) {
    auto a = line.on_dte_bytes("ATE0D" + number + "\r", now);
    line.on_timer(find<sim::arm_modem_timer>(a)->id, now);
  };
  sim::modem_line dropper(fast(), sim::make_number_plan(1));
  connect(dropper, sim::drop_number(0));
  REQUIRE(dropper.in_call());
  auto a = dropper.on_meter_characters(std::string(30, 'A'), now);
  REQUIRE(find<sim::call_ended>(a) == nullptr);
  a = dropper.on_meter_characters(std::string(30, 'A'), now);
  REQUIRE(find<sim::call_ended>(a)->cause == sim::call_end::dropped);
  REQUIRE(dte_text(a) == std::string(10, 'A') + "\r\nNO CARRIER\r\n"); // 40 characters in all

  sim::modem_line closer(fast(), sim::make_number_plan(1));
  connect(closer, sim::modem_number(0));
  a = closer.on_meter_closed(now);
  REQUIRE(find<sim::call_ended>(a)->cause == sim::call_end::meter_closed);
  REQUIRE(dte_text(a) == "\r\nNO CARRIER\r\n");

  sim::modem_line gone(fast(), sim::make_number_plan(1));
  connect(gone, sim::modem_number(0));
  a = gone.on_dte_gone(now);
  REQUIRE(find<sim::call_ended>(a)->cause == sim::call_end::dte_gone);
  REQUIRE(gone.on_dte_gone(now).empty()); // reported once
}

namespace {

// The dial-up chain on a virtual clock. Bytes are delivered at once; time advances to the
// earliest armed timer.
struct chain {
  std::unique_ptr<drivers::at_modem_driver> driver;
  sim::modem_line modem;
  std::unique_ptr<sim::meter_session> meter;
  std::uint64_t calls = 0;
  sim::meter_identity identity;
  sim::meter_faults faults;
  drivers::unix_ms now = 1'700'000'000'000;
  std::deque<std::function<void()>> work;
  struct timer {
    drivers::unix_ms at;
    std::uint64_t id;
  };
  std::optional<timer> driver_timer, modem_timer, meter_timer;
  std::optional<drivers::finish> result;

  // The port's own format (a serial port at 7E1): every byte the driver sends and receives,
  // AT commands included, goes through it.
  drivers::parity_codec port;

  chain(drivers::line_settings call_format, drivers::line_settings port_format, std::string number,
        const std::string& meter_type = "IEC62056-21")
      : modem(fast(), sim::make_number_plan(1)), port(port_format) {
    identity = sim::generated_identity(*meter_type_registry{}.find(meter_type), 42, 0);
    drivers::session_request req;
    req.outstation_address = identity.outstation_address;
    req.password = identity.password;
    req.expected_serial = identity.serial;
    drivers::iec62056_21_config iec;
    iec.reaction_delay = 20ms;
    drivers::at_modem_config cfg;
    cfg.number = std::move(number);
    cfg.init_strings = {"ATE0"};
    cfg.guard_time = 50ms;
    cfg.command_timeout = 1000ms;
    cfg.connect_timeout = 5000ms;
    cfg.call_format = call_format;
    std::unique_ptr<drivers::meter_driver> meter_driver;
    if (meter_type == "IEC62056-21") {
      meter_driver = drivers::make_iec62056_21_driver(req, iec);
    } else {
      auto elster = meter_type == "ELSTERA1700" ? drivers::elster_a1700_config() : drivers::elster_a1140_config();
      elster.reaction_delay = 20ms;
      meter_driver = drivers::make_elster_driver(req, elster);
    }
    driver = drivers::make_at_modem_driver(std::move(meter_driver), cfg);
  }

  void driver_actions(drivers::actions acts) {
    for (auto& a : acts) {
      if (result)
        return;
      if (auto* s = std::get_if<drivers::send_bytes>(&a))
        work.push_back([this, d = port.encode(s->data)] { modem_actions(modem.on_dte_bytes(d, now)); });
      else if (auto* t = std::get_if<drivers::arm_timer>(&a))
        driver_timer = timer{now + t->after.count(), t->id};
      else if (std::holds_alternative<drivers::cancel_timer>(a))
        driver_timer.reset();
      else if (auto* f = std::get_if<drivers::finish>(&a))
        result = *f;
    }
  }
  void modem_actions(sim::modem_actions acts) {
    for (auto& a : acts) {
      if (auto* d = std::get_if<sim::to_dte>(&a))
        work.push_back([this, b = d->bytes] { if (!result) driver_actions(driver->on_bytes(port.decode(b), now)); });
      else if (std::get_if<sim::start_call>(&a)) {
        meter = sim::make_meter_session(identity, faults, sim::iec_meter_config{}, ++calls);
        meter_actions(meter->on_link_up(now));
      } else if (auto* m = std::get_if<sim::to_meter>(&a)) {
        work.push_back([this, c = m->characters] { if (meter) meter_actions(meter->on_bytes(c, now)); });
      } else if (std::get_if<sim::call_ended>(&a)) {
        meter.reset();
        meter_timer.reset();
      } else if (auto* t = std::get_if<sim::arm_modem_timer>(&a)) {
        modem_timer = timer{now + t->after.count(), t->id};
      }
    }
  }
  void meter_actions(drivers::actions acts) {
    for (auto& a : acts) {
      if (!meter)
        return;
      if (auto* s = std::get_if<drivers::send_bytes>(&a))
        work.push_back([this, d = s->data] { modem_actions(modem.on_meter_characters(d, now)); });
      else if (auto* t = std::get_if<drivers::arm_timer>(&a))
        meter_timer = timer{now + t->after.count(), t->id};
      else if (std::holds_alternative<drivers::cancel_timer>(a))
        meter_timer.reset();
      else if (std::holds_alternative<drivers::finish>(a)) {
        meter_timer.reset();
        work.push_back([this] { modem_actions(modem.on_meter_closed(now)); });
        return;
      }
    }
  }

  drivers::finish run() {
    driver_actions(driver->on_link_up(now));
    for (int steps = 0; steps < 100000 && !result; ++steps) {
      if (!work.empty()) {
        auto w = std::move(work.front());
        work.pop_front();
        w();
        continue;
      }
      std::optional<timer>* next = nullptr;
      for (auto* t : {&driver_timer, &modem_timer, &meter_timer})
        if (*t && (!next || (*t)->at < (*next)->at))
          next = t;
      if (!next)
        break;
      auto fired = **next;
      next->reset();
      now = std::max(now, fired.at);
      if (next == &driver_timer)
        driver_actions(driver->on_timer(fired.id, now));
      else if (next == &modem_timer)
        modem_actions(modem.on_timer(fired.id, now));
      else if (meter)
        meter_actions(meter->on_timer(fired.id, now));
    }
    REQUIRE(result);
    return *result;
  }
};

const drivers::line_settings e71{9600, 7, 'E', 1};
const drivers::line_settings n81{9600, 8, 'N', 1};

} // namespace

TEST_CASE("dial-up chain: the IEC driver reads a simulated meter through the simulated modem", "[sim_modem]") {
  SECTION("7E1 in software over a transparent line") {
    chain c(e71, n81, sim::modem_number(0));
    auto fin = c.run();
    REQUIRE(fin.failure == drivers::failure_kind::none);
    REQUIRE(c.driver->readings().serial_number == c.identity.serial);
    REQUIRE(c.driver->readings().registers->size() == 6);
    REQUIRE_FALSE(c.modem.in_call()); // hung up by the escape and ATH
    REQUIRE(c.driver->parity_errors() == 0);
  }
  SECTION("7E1 on the serial port, AT commands included: the modem detects it from AT") {
    chain c(n81, e71, sim::modem_number(0));
    REQUIRE(c.run().failure == drivers::failure_kind::none);
    REQUIRE_FALSE(c.modem.in_call());
    REQUIRE(c.modem.dte_format().parity == 'E');
    REQUIRE(c.port.parity_errors() == 0); // the modem's answers came in 7E1 too
  }
  SECTION("8N1 against a 7E1 meter: the meter never understands the sign-on") {
    chain c(n81, n81, sim::modem_number(0));
    auto fin = c.run();
    REQUIRE(fin.failure == drivers::failure_kind::transient);
    REQUIRE(fin.reason == "no answer to sign-on");
    REQUIRE_FALSE(c.modem.in_call());
  }
  SECTION("a call dropped mid-session") {
    chain c(e71, n81, sim::drop_number(0));
    auto fin = c.run();
    REQUIRE(fin.failure == drivers::failure_kind::transient);
    REQUIRE(fin.reason == "line dropped");
    REQUIRE_FALSE(c.modem.in_call());
  }
  SECTION("busy") {
    chain c(e71, n81, sim::busy_number);
    auto fin = c.run();
    REQUIRE(fin.reason == "line busy");
    REQUIRE_FALSE(c.driver->modem_fault());
  }
}

TEST_CASE("dial-up chain: the Elster drivers read simulated Elster meters through the simulated modem", "[sim_modem]") {
  // The Elster session asks for 9600 Bd after the sign-on; over a call the speed is the
  // modem's, so the driver goes on without a switch and the meter's own switch is invisible.
  for (const std::string type : {"ELSTERA1700", "ELSTERA1140"}) {
    DYNAMIC_SECTION(type << ", 7E1 in software over a transparent line") {
      chain c(e71, n81, sim::modem_number(0), type);
      auto fin = c.run();
      REQUIRE(fin.failure == drivers::failure_kind::none);
      REQUIRE(c.driver->readings().serial_number == c.identity.serial);
      REQUIRE(c.driver->readings().registers);
      REQUIRE_FALSE(c.driver->readings().registers->empty());
      REQUIRE_FALSE(c.modem.in_call());
      REQUIRE(c.driver->parity_errors() == 0);
    }
    DYNAMIC_SECTION(type << ", 7E1 on the serial port") {
      chain c(n81, e71, sim::modem_number(0), type);
      REQUIRE(c.run().failure == drivers::failure_kind::none);
      REQUIRE(c.driver->readings().serial_number == c.identity.serial);
      REQUIRE_FALSE(c.modem.in_call());
      REQUIRE(c.port.parity_errors() == 0);
    }
  }
}

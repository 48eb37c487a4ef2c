// Writes the seed corpora of the driver and simulated-meter harnesses: each built-in type's
// driver against its simulated meter in-process (as the unit tests run them), with every event
// each side saw recorded in the input layout its harness reads (driver_script.hpp through
// FuzzedDataProvider). Run by hand after a change of the drivers or of that layout:
//
//   build-fuzz/bin/write_seeds fuzz/corpus
//
// FuzzedDataProvider takes strings from the front of the input (a backslash followed by any
// other byte ends one) and integers from the back, the first one from the last byte.
#include "drivers/registry.hpp"
#include "sim/iec_meter.hpp"
#include "sim/meter_session.hpp"
#include "sim/sim_config.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace mts;
using drivers::unix_ms;

// An input as FuzzedDataProvider will read it.
class provider_input {
public:
  // A value in [0, range] taken by ConsumeIntegralInRange with that range (or ConsumeBool: 1).
  void integer(std::uint64_t value, std::uint64_t range) {
    std::vector<std::uint8_t> bytes;
    for (int offset = 0; offset < 64 && (range >> offset) > 0; offset += 8)
      bytes.push_back(0);
    for (auto i = bytes.size(); i-- > 0; value >>= 8)
      bytes[i] = static_cast<std::uint8_t>(value & 0xFF);
    back_.insert(back_.end(), bytes.begin(), bytes.end());
  }
  void boolean(bool b) { integer(b ? 1 : 0, 255); }
  void string(const std::string& s) {
    for (char c : s) {
      front_ += c;
      if (c == '\\')
        front_ += '\\';
    }
    front_ += "\\ ";
  }
  std::string bytes() const { return front_ + std::string(back_.rbegin(), back_.rend()); }

private:
  std::string front_;
  std::vector<std::uint8_t> back_;
};

// The driver_script opcodes (ConsumeIntegralInRange<int>(0, 9)).
constexpr int op_timer = 0, op_bytes = 4;

struct recorded_session {
  provider_input driver;
  provider_input meter;
};

void step(provider_input& in, unix_ms delta, int op) {
  in.integer(static_cast<std::uint64_t>(std::clamp<unix_ms>(delta, 0, 3000)), 3000);
  in.integer(static_cast<std::uint64_t>(op), 9);
}

// Bytes arriving, in events of at most the 1024 bytes driver_script takes at once.
void record_bytes(provider_input& in, unix_ms delta, const std::string& bytes) {
  for (std::size_t at = 0; at < bytes.size(); at += 1024, delta = 0) {
    step(in, delta, op_bytes);
    in.string(bytes.substr(at, 1024));
  }
}

// Runs driver and meter against each other until the driver finishes, recording each side's
// events after both inputs' headers.
void pump(drivers::meter_driver& driver, sim::meter_session& meter, recorded_session& rec) {
  struct side {
    std::optional<unix_ms> due;
    std::uint64_t id = 0;
    unix_ms armed_at = 0;
    std::deque<std::string> inbox;
    unix_ms last_event = 0;
  };
  unix_ms now = 1'700'000'000'000;
  side d, m;
  d.last_event = m.last_event = now;
  bool done = false, meter_closed = false;
  auto apply = [&](const drivers::actions& actions, side& self, side& peer, bool is_driver) {
    for (const auto& a : actions) {
      if (const auto* s = std::get_if<drivers::send_bytes>(&a))
        peer.inbox.push_back(s->data);
      else if (const auto* t = std::get_if<drivers::arm_timer>(&a)) {
        self.due = now + t->after.count();
        self.id = t->id;
        self.armed_at = now;
      } else if (std::holds_alternative<drivers::cancel_timer>(a))
        self.due.reset();
      else if (std::holds_alternative<drivers::finish>(a))
        (is_driver ? done : meter_closed) = true;
    }
  };
  apply(driver.on_link_up(now), d, m, true);
  apply(meter.on_link_up(now), m, d, false);
  for (int steps = 0; !done && steps < 100000; ++steps) {
    if (!m.inbox.empty() && !meter_closed) {
      record_bytes(rec.meter, now - m.last_event, m.inbox.front());
      m.last_event = now;
      auto bytes = m.inbox.front();
      m.inbox.pop_front();
      apply(meter.on_bytes(bytes, now), m, d, false);
    } else if (!d.inbox.empty()) {
      record_bytes(rec.driver, now - d.last_event, d.inbox.front());
      d.last_event = now;
      auto bytes = d.inbox.front();
      d.inbox.pop_front();
      apply(driver.on_bytes(bytes, now), d, m, true);
    } else if (meter_closed) {
      apply(driver.on_link_down(now), d, m, true);
    } else {
      bool driver_first = d.due && (!m.due || *d.due <= *m.due);
      side& s = driver_first ? d : m;
      if (!s.due)
        break;
      now = std::max(now, *s.due);
      s.due.reset();
      // driver_script adds the armed delay itself; the step before it is the time between.
      auto& in = driver_first ? rec.driver : rec.meter;
      step(in, s.armed_at - s.last_event, op_timer);
      s.last_event = now;
      if (driver_first)
        apply(driver.on_timer(s.id, now), d, m, true);
      else
        apply(meter.on_timer(s.id, now), m, d, false);
    }
  }
}

void write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: write_seeds CORPUS_DIR\n";
    return 2;
  }
  const std::filesystem::path corpus = argv[1];
  const meter_type_registry registry;
  const unix_seconds midnight = 1'699'920'000; // script_midnight
  struct harness {
    const char* name;
    std::vector<std::string> types;
  };
  const harness harnesses[] = {{"iec62056_21_driver", {"IEC62056-21"}},
                               {"elster_driver", {"ELSTERA1700", "ELSTERA1140"}},
                               {"dlms_driver", {"DLMS", "DLMS-SN"}}};
  for (const auto& h : harnesses) {
    for (std::size_t t = 0; t < h.types.size(); ++t) {
      const auto* type = registry.find(h.types[t]);
      std::size_t type_index = 0;
      while (registry.types()[type_index].name != type->name)
        ++type_index;
      for (int variant = 0; variant < 4; ++variant) {
        bool survey = variant & 1, over_modem = variant & 2;
        auto identity = sim::generated_identity(*type, 7, 0);
        sim::iec_meter_config config;
        config.pinned_now = 1'700'000'000;
        recorded_session rec;
        // fuzz_meter_type's header: the type, then fuzzed_session_request.
        if (h.types.size() > 1)
          rec.driver.integer(t, h.types.size() - 1);
        drivers::session_request r;
        r.outstation_address = identity.outstation_address;
        r.password = identity.password;
        r.expected_serial = identity.serial;
        rec.driver.boolean(true);
        rec.driver.string(*r.outstation_address);
        rec.driver.boolean(true);
        rec.driver.string(*r.password);
        rec.driver.boolean(true);
        rec.driver.string(*r.expected_serial);
        rec.driver.boolean(survey);
        if (survey) {
          r.survey_from = midnight - 2 * 86400;
          r.survey_to = midnight - 86400;
          rec.driver.integer(2 - 1, 9);
          rec.driver.integer(1 - 1, 1);
        }
        r.over_modem = over_modem;
        rec.driver.boolean(over_modem);
        // sim_meters' header: the type, the identity seed, the session number, over_modem.
        rec.meter.integer(type_index, registry.types().size() - 1);
        rec.meter.integer(7, 255);
        rec.meter.integer(0, 3);
        rec.meter.boolean(over_modem);
        auto driver = type->make_driver(r);
        auto meter = sim::make_meter_session(identity, {}, config, 1, over_modem);
        pump(*driver, *meter, rec);
        auto stem = type->name + (survey ? "-survey" : "") + (over_modem ? "-modem" : "");
        write(corpus / h.name, stem, rec.driver.bytes());
        write(corpus / "sim_meters", stem, rec.meter.bytes());
      }
    }
  }
  return 0;
}

// `mts-sim`: the meter simulator.
//   mts-sim serve --type T --count N --port FIRST --seed S [--address A] [--start-time TIME
//                 [--freeze-clock]] [--clock-offset SECONDS] [--no-outstation-address]
//                 [--fault NAME[=VALUE] ...] [--verbose]
//   mts-sim serve --config FILE [--start-time TIME] [--freeze-clock] [--fault ...] [--verbose]
//   either form with a simulated modem (sim/modem_server.hpp): [--modem-port PORT] [--modem-pty]
//                 [--connect-delay-ms MS] [--guard-time-ms MS] [--drop-after-bytes N]
//   mts-sim expect --type T --seed S --serial X [--clock-offset SECONDS] [--password P]
//                  [--outstation-address A] [--fault ...] --request JSON --now TIME
//   both take [--meter-types FILE]: an mts configuration file whose [[meter_type]] tables
//   define the types (as the server that tests the meters has them); without it the
//   built-in types.
// serve prints one JSON line per meter on stdout (sim::meter_json_line), then with a modem one
// {"modem":...} line (numbers, port, pty path), then logs on stderr;
// it runs until SIGTERM or SIGINT (exit 0) and prints its session counters as one JSON line on
// stderr on SIGUSR1 and at exit. expect prints the JSON object the server's test-status must
// report (sim/sim_config.hpp). Errors: a message on stderr and exit status 2.
#include "config/settings.hpp"
#include "io/fd_limit.hpp"
#include "io/tcp_reactor.hpp"
#include "sim/modem_server.hpp"
#include "sim/server.hpp"
#include "sim/sim_config.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <pthread.h>

namespace {

using namespace mts;

unix_seconds time_option(const std::string& name, const std::string& text) {
  auto t = parse_utc(text);
  if (!t)
    throw sim::sim_error(name + ": must be YYYY-MM-DDTHH:mm:ssZ");
  return *t;
}

struct serve_args {
  std::string type = sim::simulated_type;
  std::size_t count = 1;
  int port = -1;
  std::uint64_t seed = 0;
  std::optional<std::string> address;
  std::string start_time;
  bool freeze_clock = false;
  std::optional<std::int64_t> clock_offset;
  bool no_outstation_address = false;
  std::vector<std::string> faults;
  std::string config_file;
  std::string meter_types_file;
  bool verbose = false;
  // The simulated modem.
  std::optional<int> modem_port;
  bool modem_pty = false;
  std::int64_t connect_delay_ms = 2000;
  std::int64_t guard_time_ms = 1000;
  std::size_t drop_after_bytes = 64;
};

void print_line(const std::string& line, std::FILE* to) {
  std::fputs(line.c_str(), to);
  std::fputc('\n', to);
  std::fflush(to);
}

// The meter types of an mts configuration file, or the built-in ones.
meter_type_registry meter_types(const std::string& file) {
  if (file.empty())
    return meter_type_registry{};
  try {
    return meter_type_registry(load_settings(file, {}).meter_types);
  } catch (const config_error& e) {
    throw sim::sim_error(std::string("--meter-types: ") + e.what());
  }
}

int serve(const serve_args& a, bool type_given, bool count_given) {
  auto logger = spdlog::stderr_color_mt("mts-sim");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(a.verbose ? spdlog::level::debug : spdlog::level::info);

  // Every meter listens on its own socket and each session is another one: a thousand
  // meters need more than the usual soft limit of 1024 descriptors (io/fd_limit.hpp).
  const auto files = io::raise_open_file_limit();
  if (files.now != files.before)
    spdlog::info("open file limit raised from {} to {}", files.before, files.now);

  const auto types = meter_types(a.meter_types_file);
  sim::sim_config cfg;
  if (!a.config_file.empty()) {
    if (type_given || count_given || a.port >= 0)
      throw sim::sim_error("--config: the meters come from the file (no --type, --count or --port)");
    cfg = sim::load_config_file(a.config_file, types);
  } else {
    const auto& type = sim::simulated_type_of(types, a.type);
    if (a.port < 0)
      throw sim::sim_error("--port: required (the first meter's port; 0 picks free ports)");
    if (a.count < 1 || (a.port > 0 && a.port + a.count - 1 > 65535))
      throw sim::sim_error("--count: the ports run beyond 65535");
    for (std::size_t i = 0; i < a.count; ++i) {
      sim::sim_meter m;
      m.identity = sim::generated_identity(type, a.seed, i);
      m.port = static_cast<std::uint16_t>(a.port == 0 ? 0 : a.port + static_cast<int>(i));
      cfg.meters.push_back(std::move(m));
    }
  }
  for (auto& m : cfg.meters) {
    for (const auto& f : a.faults)
      sim::apply_fault(m.faults, f);
    if (a.clock_offset)
      m.identity.clock_offset_seconds = *a.clock_offset;
    if (a.no_outstation_address)
      m.identity.outstation_address.clear();
  }
  sim::server_options opts;
  if (a.address)
    cfg.address = *a.address;
  opts.address = cfg.address;
  opts.start_time = cfg.start_time;
  if (!a.start_time.empty())
    opts.start_time = time_option("--start-time", a.start_time);
  if (a.freeze_clock && !opts.start_time)
    throw sim::sim_error("--freeze-clock: needs a start time");
  opts.freeze_clock = a.freeze_clock;

  // The signals are taken by sigwait below; every thread started from here inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  io::tcp_reactor reactor;
  std::optional<sim::sim_server> server;
  std::optional<sim::modem_server> modem;
  try {
    const bool with_modem = a.modem_port || a.modem_pty;
    // The modem server holds its own copy of the meters (it dials them); only then is one made.
    server.emplace(reactor, with_modem ? cfg.meters : std::move(cfg.meters), opts);
    if (with_modem) {
      sim::modem_server_options mo;
      mo.address = opts.address;
      if (a.modem_port)
        mo.tcp_port = static_cast<std::uint16_t>(*a.modem_port);
      mo.pty = a.modem_pty;
      mo.modem.connect_delay = std::chrono::milliseconds(a.connect_delay_ms);
      mo.modem.guard_time = std::chrono::milliseconds(a.guard_time_ms);
      mo.modem.drop_after_bytes = a.drop_after_bytes;
      modem.emplace(reactor, std::move(cfg.meters), opts, mo);
    }
  } catch (const std::system_error& e) {
    throw sim::sim_error(e.what());
  }
  for (std::size_t i = 0; i < server->size(); ++i)
    print_line(server->meter_line(i), stdout);
  if (modem)
    print_line(modem->json_line(), stdout);
  spdlog::info("serving {} meter(s) on {}{}", server->size(), opts.address,
               opts.start_time ? ", clock from " + format_utc(*opts.start_time) +
                                     (opts.freeze_clock ? " (frozen)" : "")
                               : std::string());

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0)
      continue;
    if (sig == SIGUSR1) {
      print_line(server->counters_json(), stderr);
      if (modem)
        print_line(modem->counters_json(), stderr);
      continue;
    }
    spdlog::info("signal {}: stopping", sig);
    break;
  }
  const auto final_counters = server->counters_json();
  const auto final_modem = modem ? modem->counters_json() : std::string();
  modem.reset();
  server.reset();
  reactor.stop();
  print_line(final_counters, stderr);
  if (!final_modem.empty())
    print_line(final_modem, stderr);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mts-sim: simulated electricity meters for the MTS server"};
  app.require_subcommand(1, 1);

  serve_args s;
  auto* serve_cmd = app.add_subcommand("serve", "serve simulated meters on TCP ports");
  auto* type_opt = serve_cmd->add_option("--type", s.type, "meter type (IEC62056-21, ELSTERA1700, ELSTERA1140, DLMS, DLMS-SN)");
  auto* count_opt = serve_cmd->add_option("--count", s.count, "number of meters")->check(CLI::Range(1, 65535));
  serve_cmd->add_option("--port", s.port, "first meter's port (0: free ports)")->check(CLI::Range(0, 65535));
  serve_cmd->add_option("--seed", s.seed, "seed of the generated identities and data");
  serve_cmd->add_option("--address", s.address, "numeric address to listen on (default 127.0.0.1)");
  serve_cmd->add_option("--start-time", s.start_time,
                        "pin the meters' now: their clock runs from this YYYY-MM-DDTHH:mm:ssZ");
  serve_cmd->add_flag("--freeze-clock", s.freeze_clock, "keep the meters' clock at --start-time");
  serve_cmd->add_option("--clock-offset", s.clock_offset, "every meter's clock offset in seconds");
  serve_cmd->add_flag("--no-outstation-address", s.no_outstation_address,
                      "meters without an outstation address (they answer any)");
  serve_cmd->add_option("--fault", s.faults, "NAME[=VALUE], applied to every meter (repeatable)");
  serve_cmd->add_option("--config", s.config_file, "TOML file with [[meter]] tables");
  serve_cmd->add_option("--meter-types", s.meter_types_file, "mts configuration file defining the meter types");
  serve_cmd->add_flag("--verbose", s.verbose, "log every session");
  serve_cmd->add_option("--modem-port", s.modem_port, "serve a simulated modem on this TCP port (0: free)")
    ->check(CLI::Range(0, 65535));
  serve_cmd->add_flag("--modem-pty", s.modem_pty, "serve a simulated modem on a pseudo-terminal");
  serve_cmd->add_option("--connect-delay-ms", s.connect_delay_ms, "modem: dialling to CONNECT (and to BUSY ...)")
    ->check(CLI::Range(0, 600000));
  serve_cmd->add_option("--guard-time-ms", s.guard_time_ms, "modem: escape guard time")->check(CLI::Range(0, 10000));
  serve_cmd->add_option("--drop-after-bytes", s.drop_after_bytes, "modem: meter characters before a drop number's call drops");

  std::string type = sim::simulated_type, serial, password, outstation, request, now_text;
  std::uint64_t seed = 0;
  std::int64_t clock_offset = 0;
  std::vector<std::string> faults;
  std::string expect_types_file;
  auto* expect_cmd = app.add_subcommand("expect", "print the result test-status must report");
  expect_cmd->add_option("--type", type, "meter type (IEC62056-21, ELSTERA1700, ELSTERA1140, DLMS, DLMS-SN)");
  expect_cmd->add_option("--seed", seed, "the meter's seed")->required();
  expect_cmd->add_option("--serial", serial, "the meter's serial number")->required();
  expect_cmd->add_option("--clock-offset", clock_offset, "the meter's clock offset in seconds");
  expect_cmd->add_option("--password", password, "the meter's password (default: accepts any)");
  expect_cmd->add_option("--outstation-address", outstation, "the meter's address (default: answers any)");
  expect_cmd->add_option("--fault", faults, "NAME[=VALUE] (repeatable)");
  expect_cmd->add_option("--request", request, "the test request (JSON object)")->required();
  expect_cmd->add_option("--now", now_text, "when the test runs, YYYY-MM-DDTHH:mm:ssZ")->required();
  expect_cmd->add_option("--meter-types", expect_types_file, "mts configuration file defining the meter types");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*serve_cmd)
      return serve(s, type_opt->count() > 0, count_opt->count() > 0);
    const auto types = meter_types(expect_types_file);
    const auto& resolved = sim::simulated_type_of(types, type);
    sim::check_predictable(resolved);
    auto id = sim::generated_identity(resolved, seed, 0);
    id.serial = serial;
    id.password = password;
    id.outstation_address = outstation;
    id.clock_offset_seconds = clock_offset;
    sim::meter_faults f;
    for (const auto& spec : faults)
      sim::apply_fault(f, spec);
    print_line(sim::expected_result_json(id, f, request, time_option("--now", now_text)), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mts-sim: " << e.what() << std::endl;
    return 2;
  }
}

// `mts`: the server and its administration commands.
//   mts serve [--config FILE] [--section.key=value ...]
//   mts token create --name NAME --days N [--scope "MTS API" | --scope "MTS API read-only"]
//   mts token list | mts token delete NAME
//   mts config get KEY | mts config list
//   mts collector [--config FILE] [--section.key=value ...]
//   mts cluster ca | node-cert | secret
//   mts --version
// CLI11 (Debian libcli11-dev) parses the command line: subcommands, help and errors come for
// free; the --section.key=value overrides are the arguments it leaves over.
#include "actors/cluster_node.hpp"
#include "actors/collector_link.hpp"
#include "actors/connection.hpp"
#include "actors/executor.hpp"
#include "actors/converter.hpp"
#include "actors/persistence.hpp"
#include "actors/registrar.hpp"
#include "actors/retention.hpp"
#include "actors/scheduler.hpp"
#include "actors/serial_connection.hpp"
#include "config/settings.hpp"
#include "drivers/registry.hpp"
#include "http/edge.hpp"
#include "http/server.hpp"
#include "http/tls.hpp"
#include "http/tokens.hpp"
#include "io/fd_limit.hpp"
#include "io/tcp_reactor.hpp"
#include "mts/version.hpp"
#include "persistence/store.hpp"

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <sqlite3.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <functional>
#include <iostream>
#include <thread>

namespace {

using namespace mts;

// The "--section.key=value" arguments CLI11 left over; anything else is an error.
std::vector<std::string> overrides_from(const std::vector<std::string>& rest) {
  std::vector<std::string> out;
  for (const auto& arg : rest) {
    if (arg.size() > 2 && arg.compare(0, 2, "--") == 0 && arg.find('.') != std::string::npos &&
        arg.find('=') != std::string::npos)
      out.push_back(arg.substr(2));
    else
      throw config_error("unexpected argument \"" + arg.substr(0, 64) +
                         "\" (configuration overrides are written --section.key=value)");
  }
  return out;
}

void setup_logging(const settings& s) {
  auto logger = spdlog::stderr_color_mt("mts");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(s.log.level));
}

// storage.startup_check, validated with the settings.
open_check startup_check_of(const settings& s) {
  if (s.storage.startup_check == "integrity")
    return open_check::integrity;
  return s.storage.startup_check == "none" ? open_check::none : open_check::quick;
}

std::string storage_dir(const settings& s) {
  auto dir = std::filesystem::path(s.storage.path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// How long a missing peer takes to count as lost: CAF's heartbeat check of a connection, and
// a collector's unanswered ping to the head.
std::chrono::seconds loss_detection_time(const settings& s) {
  return std::chrono::seconds(s.cluster.heartbeat_seconds * s.cluster.missed_heartbeats);
}

// The scheduler's settings that a reload may change (is_reloadable), from `s`.
scheduler_config scheduler_settings(const settings& s, const std::shared_ptr<const meter_type_registry>& types,
                                    const std::shared_ptr<modem_board>& board) {
  scheduler_config c;
  c.overnight_window = *parse_daily_window(s.scheduler.overnight_window);
  c.max_concurrent_tests = s.scheduler.max_concurrent_tests;
  c.test_deadline = std::chrono::seconds(s.scheduler.test_deadline_seconds);
  c.max_tcp_sessions = s.scheduler.max_tcp_sessions;
  // Tests this server cannot run yet (no driver for the meter type, a modem number without
  // modems) stay queued and PENDING; a later version (or configuration) runs them.
  // A head with collectors may get modems when one joins: its numbers wait for that.
  const bool have_modems = !s.modem.empty() || (s.cluster.port != 0 && !s.cluster.collectors.empty());
  c.can_run = [types, have_modems](const test_record& rec) {
    return !why_not_runnable(rec.request, types.get(), have_modems);
  };
  // The modems for telephone-number tests ([[modem]] tables); the scheduler hands them out.
  c.modems = s.modem;
  c.modem_cooldown = std::chrono::seconds(s.modems.cooldown_seconds);
  c.board = board;
  // Nodes (issue 16): a lost collector's tests keep their address for twice the time the head
  // takes to notice. A collector notices a lost head within a heartbeat plus that time (its
  // unanswered ping, actors/collector_link.hpp) and then ends its tests, so it has hung up
  // before another node dials the meter.
  c.head_runs_tests = s.cluster.port == 0 || s.cluster.head_runs_tests;
  c.node_loss_grace = 2 * loss_detection_time(s);
  c.max_attempts = s.scheduler.max_attempts;
  c.retry_delay = std::chrono::seconds(s.scheduler.retry_delay_seconds);
  return c;
}

// The test actors' settings that a reload may change, from `s`, into `c`.
void runner_settings(test_runner_config& c, const settings& s, std::shared_ptr<const meter_type_registry> types) {
  c.types = std::move(types);
  c.max_attempts = s.scheduler.max_attempts;
  c.retry_delay = std::chrono::seconds(s.scheduler.retry_delay_seconds);
  c.connect_timeout = std::chrono::seconds(s.scheduler.connect_timeout_seconds);
  c.transcript_max_bytes = static_cast<std::size_t>(s.scheduler.transcript_max_bytes);
  // A little below the scheduler's deadline, so the test actor's own outcome (with what it
  // read) arrives before the scheduler gives up on it.
  const std::chrono::milliseconds deadline = std::chrono::seconds(s.scheduler.test_deadline_seconds);
  c.test_deadline = deadline - std::min<std::chrono::milliseconds>(std::chrono::seconds(10), deadline / 10);
  c.modem_command_timeout = std::chrono::seconds(s.modems.command_timeout_seconds);
  c.modem_connect_timeout = std::chrono::seconds(s.modems.connect_timeout_seconds);
  c.modem_guard_time = std::chrono::milliseconds(s.modems.guard_time_ms);
}

// The retention actor's settings (all of them change on SIGHUP), from `s`.
retention_config retention_settings(const settings& s) {
  retention_config c;
  c.retain_completed_days = s.storage.retain_completed_days;
  c.retain_transcripts_days = s.storage.retain_transcripts_days;
  c.interval = std::chrono::seconds(s.storage.purge_interval_seconds);
  c.step_rows = s.storage.maintenance_step_rows;
  c.clock = [] { return now_utc(); };
  return c;
}

// The meter types of `s` as a registry, with a log line each.
std::shared_ptr<const meter_type_registry> meter_types_of(const settings& s) {
  auto types = std::make_shared<const meter_type_registry>(s.meter_types);
  for (const auto& t : types->types())
    spdlog::info("meter type {}: driver {}", t.name, t.driver);
  return types;
}

// The test engine of a head or a collector: the reactor every meter link lives on (one I/O
// thread; stopped once every actor has exited, since connection actors close their links as
// they end, and before the actor system is destroyed, so its last callbacks still reach a
// live system), and the executor with the test actors' settings from `s`.
struct test_engine {
  std::unique_ptr<io::tcp_reactor> reactor;
  executor_actor executor;
};

test_engine start_test_engine(caf::actor_system& sys, const settings& s,
                              std::shared_ptr<const meter_type_registry> types) {
  for (const auto& m : s.modem)
    spdlog::info("modem {}: {}", m.name, m.device.empty() ? "gateway " + m.gateway : "device " + m.device);
  test_engine engine;
  engine.reactor = std::make_unique<io::tcp_reactor>();
  test_runner_config runner_cfg;
  runner_settings(runner_cfg, s, std::move(types));
  runner_cfg.connect = make_tcp_connection_factory(engine.reactor.get());
  runner_cfg.open_modem_link = make_modem_link_factory(engine.reactor.get(), runner_cfg.connect);
  engine.executor = sys.spawn(executor, runner_cfg);
  return engine;
}

// Makes cfg a cluster node in `role` with this node's [cluster] files and heartbeats.
void configure_cluster(caf::actor_system_config& cfg, const settings& s, cluster_role role) {
  const auto heartbeat = std::chrono::seconds(s.cluster.heartbeat_seconds);
  configure_cluster_node(cfg, {s.cluster.ca_file, s.cluster.certificate_file, s.cluster.key_file}, role, heartbeat,
                         loss_detection_time(s));
}

// Why this node's cluster files cannot serve (checked at start: CAF reads them only at the
// first connection); nothing when they can.
std::optional<std::string> cluster_files_problem(const settings& s) {
  if (s.cluster.ca_file.empty() || s.cluster.certificate_file.empty() || s.cluster.key_file.empty())
    return std::string("a cluster node needs cluster.ca_file, cluster.certificate_file and cluster.key_file");
  return check_node_certificate(s.cluster.ca_file, s.cluster.certificate_file, s.cluster.key_file);
}

// `reload` loads the configuration again (the same file and overrides), for SIGHUP.
int serve(const settings& s, const std::function<settings()>& reload) {
  setup_logging(s);
  // Signals are taken by a dedicated sigwait thread; every thread started later inherits the
  // mask, so no handler runs on an arbitrary thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP); // reload the configuration (docs/operations.md)
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  spdlog::info("mts {} starting; database {}", mts::version, s.storage.path);
  // Each running test holds a socket: a thousand of them need more than the usual soft
  // limit of 1024 descriptors (io/fd_limit.hpp).
  const auto files = io::raise_open_file_limit();
  spdlog::info("open file limit {}{}", files.now,
               files.now != files.before ? " (raised from " + std::to_string(files.before) + ")" : "");
  std::shared_ptr<store> writer;
  try {
    const auto opening = std::chrono::steady_clock::now();
    writer = std::make_shared<store>(s.storage.path, store_mode::read_write, s.storage.busy_timeout_ms,
                                     startup_check_of(s));
    spdlog::info("database ready (schema version {}, storage.startup_check {}: ok, {} ms)", writer->schema_version(),
                 s.storage.startup_check,
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - opening).count());
  } catch (const std::exception& e) {
    spdlog::critical("cannot open the database: {}", e.what());
    return 1;
  }

  std::string cert_file = s.tls.cert_file, key_file = s.tls.key_file;
  try {
    if (cert_file.empty()) {
      auto generated = ensure_self_signed_certificate(storage_dir(s));
      cert_file = generated.cert_file;
      key_file = generated.key_file;
      if (generated.generated)
        spdlog::info("created a self-signed certificate {}", cert_file);
    }
    spdlog::info("TLS certificate {} SHA-256 fingerprint {}", cert_file, certificate_fingerprint(cert_file));
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }

  caf::actor_system_config cfg;
  add_wire_types(cfg); // the same types by name as a node of a cluster (actors/wire_types.hpp)
  const bool head = s.cluster.port != 0;
  if (head) {
    if (auto why = cluster_files_problem(s)) {
      spdlog::critical("cluster: {}", *why);
      return 1;
    }
    configure_cluster(cfg, s, cluster_role::head);
  }
  caf::actor_system sys{cfg};
  auto writer_state = std::make_shared<writer_health>();
  auto persistence_hdl = sys.spawn<caf::detached>(persistence, writer, writer_state);
  writer.reset();
  std::vector<reader_actor> readers;
  auto storage = std::make_shared<storage_stats>(); // the size and what was purged, for service-status
  converter_actor converter_hdl;
  try {
    for (std::int64_t i = 0; i < s.storage.reader_count; ++i)
      readers.push_back(sys.spawn<caf::detached>(
        reader, std::make_shared<store>(s.storage.path, store_mode::read_only, s.storage.busy_timeout_ms)));
    // Rows stored before the compact encoding are converted in the background (it quits at
    // once when there are none).
    converter_config conversion;
    conversion.step_rows = s.storage.maintenance_step_rows;
    converter_hdl = sys.spawn<caf::detached>(
      converter, std::make_shared<store>(s.storage.path, store_mode::read_only, s.storage.busy_timeout_ms),
      persistence_hdl, storage, conversion);
  } catch (const std::exception& e) {
    spdlog::critical("cannot open a read-only database connection: {}", e.what());
    for (auto& r : readers)
      caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(persistence_hdl, caf::exit_reason::user_shutdown);
    return 1;
  }
  spdlog::info("storage: retention: completed tests {}, transcripts {}; purge every {} s in steps of {} rows",
               s.storage.retain_completed_days ? std::to_string(s.storage.retain_completed_days) + " days" : "forever",
               s.storage.retain_transcripts_days ? std::to_string(s.storage.retain_transcripts_days) + " days"
                                                 : "as long as their tests",
               s.storage.purge_interval_seconds, s.storage.maintenance_step_rows);
  auto retention_hdl = sys.spawn(retention, retention_settings(s), persistence_hdl, storage);
  // The meter types, built once from the configuration and handed to whoever needs them.
  auto types = meter_types_of(s);
  // The modem pool is the scheduler's; service-status reads what it publishes here.
  auto modems = std::make_shared<modem_board>();
  // A head's collectors: the registrar publishes who is joined, the scheduler what they run.
  auto collectors = head ? std::make_shared<collector_board>() : nullptr;
  auto sched_cfg = scheduler_settings(s, types, modems);
  sched_cfg.collectors = collectors;
  auto engine = start_test_engine(sys, s, types);
  auto& reactor = engine.reactor;
  auto executor_hdl = engine.executor;
  auto scheduler_hdl = sys.spawn(scheduler, sched_cfg, persistence_hdl, executor_hdl);

  // Each HTTP thread's own read-only connection: the token check and the lookups by test id.
  auto thread_reads = std::make_shared<thread_reader>(s.storage.path, s.storage.busy_timeout_ms);
  token_verifier tokens(thread_reads,
                        [persistence_hdl](std::int64_t id, unix_seconds when) {
                          caf::anon_send(persistence_hdl, touch_atom::value, id, when);
                        });
  // A head: collectors join through the registrar, published on the cluster port.
  registrar_actor registrar_hdl;
  std::string accepted_names; // for the log line once the port is open
  if (head) {
    registrar_config rc;
    rc.accepted = accepted_collectors(s.cluster.collectors);
    for (const auto& c : rc.accepted)
      accepted_names += (accepted_names.empty() ? "" : ", ") + c.name;
    rc.board = collectors;
    rc.scheduler = scheduler_hdl;
    registrar_hdl = sys.spawn(registrar, std::move(rc));
  }
  auto shutdown_actors = [&] {
    if (registrar_hdl)
      caf::anon_send_exit(registrar_hdl, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(scheduler_hdl, caf::exit_reason::user_shutdown);
    // A purge or conversion step in flight is finished by the persistence actor (one
    // transaction); the next start goes on from there.
    caf::anon_send_exit(retention_hdl, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(converter_hdl, caf::exit_reason::user_shutdown);
    // Running tests end with the executor (they are linked to it); they stay RUNNING in the
    // database and the next start-up's recovery runs them again.
    caf::anon_send_exit(executor_hdl, caf::exit_reason::user_shutdown);
    for (auto& r : readers)
      caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(persistence_hdl, caf::exit_reason::user_shutdown);
    sys.await_all_actors_done();
    reactor->stop();
  };

  // The edge (when enabled) is the clients' only way in; the server itself then trusts the
  // client address the edge reports, and only from the edge's loopback connections.
  std::string error;
  auto trusted = address_set::parse(s.http.trusted_proxies, error); // validated with the settings
  if (s.edge.enabled)
    trusted->add(*address_set::parse("127.0.0.1", error));

  std::atomic<int> rc{0};
  {
    std::unique_ptr<api_server> server;
    try {
      server = std::make_unique<api_server>(
        s, cert_file, key_file,
        api_dependencies{&sys, scheduler_hdl, readers, &tokens, thread_reads, modems, persistence_hdl, writer_state, types, storage,
                         collectors},
        *trusted);
      server->bind();
    } catch (const std::exception& e) {
      spdlog::critical("{}", e.what());
      shutdown_actors();
      return 1;
    }
    if (head) {
      auto port = caf::openssl::publish(registrar_hdl, static_cast<std::uint16_t>(s.cluster.port),
                                        s.cluster.address.c_str(), true);
      if (!port) {
        spdlog::critical("cluster: cannot listen on {}:{}: {}", s.cluster.address, s.cluster.port,
                         to_string(port.error()));
        server.reset();
        shutdown_actors();
        return 1;
      }
      spdlog::info("cluster: head; collectors join on {}:{} over mutual TLS (cluster CA {}); accepted: {}",
                   s.cluster.address, *port, s.cluster.ca_file,
                   accepted_names.empty() ? "none (cluster.collectors is empty)" : accepted_names);
    }
    std::unique_ptr<edge_process> edge;
    // SIGHUP: load the file again and apply what can change while running (is_reloadable);
    // a file that does not load changes nothing.
    settings in_force = s;
    auto reload_configuration = [&] {
      settings next;
      try {
        next = reload();
      } catch (const std::exception& e) {
        spdlog::error("SIGHUP: the configuration was not reloaded, the running one stays: {}", e.what());
        return;
      }
      const auto changes = compare_settings(in_force, next);
      if (changes.empty()) {
        spdlog::info("SIGHUP: configuration reloaded, nothing changed");
        return;
      }
      for (const auto& c : changes)
        spdlog::log(c.live ? spdlog::level::info : spdlog::level::warn, "SIGHUP: {}: {} -> {}{}", c.key, c.old_value,
                    c.new_value, c.live ? "" : " ignored: takes a restart");
      in_force = reloaded_settings(in_force, next);
      spdlog::set_level(spdlog::level::from_str(in_force.log.level));
      auto next_types = meter_types_of(in_force);
      server->reconfigure(in_force, next_types);
      auto next_runner = std::make_shared<test_runner_config>();
      runner_settings(*next_runner, in_force, next_types);
      caf::anon_send(executor_hdl, reload_atom::value, std::shared_ptr<const test_runner_config>(std::move(next_runner)));
      caf::anon_send(scheduler_hdl, reload_atom::value,
                     std::make_shared<const scheduler_config>(scheduler_settings(in_force, next_types, modems)));
      caf::anon_send(retention_hdl, reload_atom::value,
                     std::make_shared<const retention_config>(retention_settings(in_force)));
      spdlog::info("SIGHUP: configuration reloaded; running tests finish with the settings they started with");
    };
    std::thread signal_thread([&] {
      int sig = 0;
      while (sigwait(&signals, &sig) == 0 && sig == SIGHUP)
        reload_configuration();
      if (sig != 0)
        spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      // The edge first: its requests in flight still reach the server while it drains.
      if (edge)
        edge->stop();
      server->stop();
    });
    auto native_signal_thread = signal_thread.native_handle();
    if (s.edge.enabled) {
      edge = std::make_unique<edge_process>(
        s,
        edge_files{std::filesystem::absolute(storage_dir(s) + "/edge").string(),
                   std::filesystem::absolute(cert_file).string(), std::filesystem::absolute(key_file).string()},
        [&rc, native_signal_thread](int) {
          rc = 1;
          pthread_kill(native_signal_thread, SIGTERM);
        });
      try {
        edge->start(); // from the main thread: the edge's parent-death signal follows this thread
      } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        rc = 1;
        pthread_kill(native_signal_thread, SIGTERM);
        signal_thread.join();
        server.reset();
        shutdown_actors();
        return 1;
      }
    } else {
      spdlog::warn("edge.enabled is false: clients reach the server directly, without the edge's limits; "
                   "do not expose it to untrusted networks (docs/operations.md)");
    }
    spdlog::info("listening on https://{}:{}{}/ ({} HTTP threads){}", s.http.address, s.http.port,
                 s.http.prefix, s.http.threads, s.edge.enabled ? ", behind the edge" : "");
    if (!server->run()) {
      spdlog::error("the HTTP server stopped with an error");
      rc = 1;
    }
    // Wake the signal thread if the server ended on its own.
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
  }
  shutdown_actors();
  spdlog::info("stopped");
  return rc.load();
}

// collector.secret_file's secret; a file others may read or write is refused, like ssh keys.
std::string read_secret_file(const std::string& path) {
  struct stat st{};
  if (path.empty())
    throw config_error("collector.secret_file: required (mts cluster secret writes one)");
  if (::stat(path.c_str(), &st) != 0)
    throw config_error("collector.secret_file " + path + ": " + std::strerror(errno));
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw config_error("collector.secret_file " + path + ": others may read or write it (mode " + mode +
                       "); chmod 600 it");
  }
  std::ifstream in(path, std::ios::binary);
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' || secret.back() == ' '))
    secret.pop_back();
  if (secret.empty() || secret.size() > 1024)
    throw config_error("collector.secret_file " + path + ": holds no secret (1 to 1024 bytes)");
  return secret;
}

// `mts collector`: a node that runs tests for a head (docs/operations.md, "Collectors").
int collect(const settings& s) {
  setup_logging(s);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (!is_node_name(s.collector.name))
    throw config_error("collector.name: required; 1 to 64 letters, digits, '-', '.' or '_'");
  auto head = parse_tcp_address(s.collector.head);
  if (!head)
    throw config_error("collector.head: required, host:port of the head's cluster.port");
  const auto secret = read_secret_file(s.collector.secret_file);
  if (auto why = cluster_files_problem(s)) {
    spdlog::critical("collector {}: {}", s.collector.name, *why);
    return 1;
  }
  spdlog::info("mts {} collector {} starting; head {}", mts::version, s.collector.name, s.collector.head);
  const auto files = io::raise_open_file_limit();
  spdlog::info("open file limit {}", files.now);

  caf::actor_system_config cfg;
  configure_cluster(cfg, s, cluster_role::collector);
  caf::actor_system sys{cfg};
  auto engine = start_test_engine(sys, s, meter_types_of(s));
  auto& reactor = engine.reactor;
  auto executor_hdl = engine.executor;

  collector_link_config link_cfg;
  link_cfg.hello = {s.collector.name, secret,       cluster_protocol_version, s.collector.max_tcp_sessions,
                    s.modem,          s.collector.reach_networks, s.collector.reach_prefixes};
  link_cfg.head_host = head->host;
  link_cfg.head_port = head->port;
  link_cfg.reconnect_max = std::chrono::seconds(s.collector.reconnect_max_seconds);
  link_cfg.executor = executor_hdl;
  link_cfg.network = sys.openssl_manager().actor_handle();
  link_cfg.ping_interval = std::chrono::seconds(s.cluster.heartbeat_seconds);
  link_cfg.ping_timeout = loss_detection_time(s);
  auto link_hdl = sys.spawn(collector_link, std::move(link_cfg));

  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      spdlog::warn("SIGHUP: a collector does not reload its configuration; restart it");
      continue;
    }
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    break;
  }
  caf::anon_send_exit(link_hdl, caf::exit_reason::user_shutdown);
  caf::anon_send(executor_hdl, close_atom::value); // running tests end; their links close
  caf::anon_send_exit(executor_hdl, caf::exit_reason::user_shutdown);
  sys.await_all_actors_done();
  reactor->stop();
  spdlog::info("stopped");
  return 0;
}

// `mts cluster secret`: a collector's secret, into a new file (mode 0600), and the head's entry.
int cluster_secret(const std::string& name, const std::string& out) {
  if (!is_node_name(name))
    throw config_error("--name: 1 to 64 letters, digits, '-', '.' or '_', not starting with '-' or '.'");
  const auto secret = generate_token(); // 256 random bits, base64url
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    throw config_error("--out " + out + ": " + std::strerror(errno) + (errno == EEXIST ? " (not overwritten)" : ""));
  const auto text = secret + "\n";
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written)
    throw config_error("--out " + out + ": cannot write the secret");
  const auto hash = hash_token(secret);
  std::string hex;
  char byte[3];
  for (unsigned char c : hash) {
    std::snprintf(byte, sizeof byte, "%02x", c);
    hex += byte;
  }
  std::cerr << "secret of collector " << name << " written to " << out
            << " (mode 0600): its collector.secret_file. Add this entry to the head's cluster.collectors:\n";
  std::cout << name << "=" << hex << std::endl;
  return 0;
}

int token_create(const settings& s, const std::string& name, std::int64_t days, const std::string& scope_text) {
  auto scope = token_scope_from_string(scope_text);
  if (!scope)
    throw config_error("--scope must be \"MTS API\" or \"MTS API read-only\"");
  if (days < 1 || days > 3650)
    throw config_error("--days must be a whole number from 1 to 3650");
  if (name.empty() || name.size() > 64)
    throw config_error("--name must be 1 to 64 characters");
  for (unsigned char ch : name)
    if (ch < 0x20 || ch == 0x7f)
      throw config_error("--name must not contain control characters");
  store db(s.storage.path, store_mode::read_write, s.storage.busy_timeout_ms, startup_check_of(s));
  auto token = generate_token();
  auto now = now_utc();
  db.insert_token(name, *scope, hash_token(token), now, now + days * seconds_per_day);
  std::cout << token << std::endl;
  std::cerr << "created token \"" << name << "\" (" << to_string(*scope) << "), expires "
            << format_utc(now + days * seconds_per_day) << "; it is shown only this once\n";
  return 0;
}

int token_list(const settings& s) {
  store db(s.storage.path, store_mode::read_write, s.storage.busy_timeout_ms, startup_check_of(s));
  auto tokens = db.list_tokens();
  auto now = now_utc();
  std::printf("%-24s %-18s %-20s %-20s %s\n", "NAME", "SCOPE", "CREATED", "EXPIRES", "LAST USED");
  for (const auto& t : tokens)
    std::printf("%-24s %-18s %-20s %-20s %s\n", t.name.c_str(), to_string(t.scope),
                format_utc(t.created_time).c_str(),
                (format_utc(t.expires_time) + (t.expires_time <= now ? " (expired)" : "")).c_str(),
                t.last_used_time ? format_utc(*t.last_used_time).c_str() : "never");
  return 0;
}

int token_delete(const settings& s, const std::string& name) {
  store db(s.storage.path, store_mode::read_write, s.storage.busy_timeout_ms, startup_check_of(s));
  if (!db.delete_token(name)) {
    std::cerr << "mts: no token named \"" << name.substr(0, 64) << "\"\n";
    return 1;
  }
  std::cerr << "deleted token \"" << name << "\"; it is refused from the next request on\n";
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  // The database holds meter passwords and the data directory a private key: whatever this
  // process creates is for its own user only.
  umask(077);
  // SQLite's memory statistics (sqlite3_memory_used, which nothing here reads) take one
  // process-wide mutex on every allocation; the HTTP threads' own connections then queue on
  // it (a test-status profile showed it in 3 % of the server's CPU). Must precede SQLite's
  // initialization, so it comes first.
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  CLI::App app{"MTS server: remote electricity meter tests over an HTTPS API"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "print the version and exit");

  std::optional<std::string> config_file;
  auto add_config = [&](CLI::App* sub) {
    sub->add_option("--config", config_file, "TOML configuration file (docs/configuration.md)");
    sub->allow_extras();
  };
  auto* serve_cmd = app.add_subcommand("serve", "run the server");
  add_config(serve_cmd);

  auto* token_cmd = app.add_subcommand("token", "manage API access tokens");
  token_cmd->require_subcommand(1);
  std::string token_name, scope = "MTS API";
  std::int64_t days = 0;
  auto* create_cmd = token_cmd->add_subcommand("create", "create a token and print it once");
  add_config(create_cmd);
  create_cmd->add_option("--name", token_name, "unique name of the token")->required();
  create_cmd->add_option("--days", days, "days until the token expires (1-3650)")->required();
  create_cmd->add_option("--scope", scope, "\"MTS API\" (default) or \"MTS API read-only\"");
  auto* list_cmd = token_cmd->add_subcommand("list", "list tokens (never the tokens themselves)");
  add_config(list_cmd);
  auto* delete_cmd = token_cmd->add_subcommand("delete", "revoke a token");
  add_config(delete_cmd);
  delete_cmd->add_option("name", token_name, "name of the token")->required();

  auto* config_cmd = app.add_subcommand("config", "inspect the effective configuration");
  config_cmd->require_subcommand(1);
  std::string key;
  auto* get_cmd = config_cmd->add_subcommand("get", "print one key's effective value");
  add_config(get_cmd);
  get_cmd->add_option("key", key, "section.key")->required();
  auto* list_settings_cmd = config_cmd->add_subcommand("list", "print every key with its effective value");
  add_config(list_settings_cmd);
  auto* edge_cmd = config_cmd->add_subcommand("edge", "print the nginx configuration `mts serve` writes for the edge");
  add_config(edge_cmd);

  // The certificates of a cluster of a head and collectors (docs/operations.md, "Cluster
  // certificates"); no configuration file is read.
  auto* cluster_cmd = app.add_subcommand("cluster", "make the certificates of a head-and-collectors cluster");
  cluster_cmd->require_subcommand(1);
  std::string ca_dir, node_name, out_dir;
  long cert_days = 0;
  auto* ca_cmd = cluster_cmd->add_subcommand("ca", "create the cluster's own CA: DIR/cluster-ca.pem and .key");
  ca_cmd->add_option("--dir", ca_dir, "directory for the CA's files (keep the key offline)")->required();
  ca_cmd->add_option("--days", cert_days, "validity in days (default 3650)")->default_val(3650);
  auto* node_cert_cmd = cluster_cmd->add_subcommand("node-cert", "create a node's certificate, signed by the CA");
  node_cert_cmd->add_option("--ca-dir", ca_dir, "directory of cluster-ca.pem and cluster-ca.key")->required();
  node_cert_cmd->add_option("--name", node_name, "the node's name (the head's, or a collector's)")->required();
  node_cert_cmd->add_option("--out", out_dir, "directory for NAME.pem and NAME.key")->required();
  node_cert_cmd->add_option("--days", cert_days, "validity in days (default 825)")->default_val(825);
  std::string secret_out;
  auto* secret_cmd = cluster_cmd->add_subcommand("secret", "create a collector's secret file and print the head's entry");
  secret_cmd->add_option("--name", node_name, "the collector's name")->required();
  secret_cmd->add_option("--out", secret_out, "new file for the secret (mode 0600)")->required();
  auto* collector_cmd = app.add_subcommand("collector", "run a collector node for a head (docs/operations.md)");
  add_config(collector_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (show_version) {
    std::cout << mts::version << std::endl;
    return 0;
  }
  try {
    auto load = [&](CLI::App* sub) { return load_settings(config_file, overrides_from(sub->remaining())); };
    if (serve_cmd->parsed())
      return serve(load(serve_cmd), [&] { return load(serve_cmd); });
    if (collector_cmd->parsed())
      return collect(load(collector_cmd));
    if (secret_cmd->parsed())
      return cluster_secret(node_name, secret_out);
    if (create_cmd->parsed())
      return token_create(load(create_cmd), token_name, days, scope);
    if (list_cmd->parsed())
      return token_list(load(list_cmd));
    if (delete_cmd->parsed())
      return token_delete(load(delete_cmd), token_name);
    if (list_settings_cmd->parsed()) {
      auto effective = load(list_settings_cmd);
      for (const auto& d : describe_settings())
        std::cout << d.key << " = " << setting_value(effective, d.key) << "    # " << d.doc << "\n";
      for (const auto& t : effective.meter_types) {
        std::cout << "meter_type." << t.name << ".driver = " << t.driver << "\n";
        for (const auto& [k, v] : t.settings)
          std::cout << "meter_type." << t.name << "." << k << " = " << driver_value_text(v) << "\n";
      }
      return 0;
    }
    if (edge_cmd->parsed()) {
      auto effective = load(edge_cmd);
      const auto dir = storage_dir(effective);
      std::cout << render_edge_config(effective,
                                      edge_files{std::filesystem::absolute(dir + "/edge").string(),
                                                 effective.tls.cert_file.empty()
                                                   ? std::filesystem::absolute(dir + "/cert.pem").string()
                                                   : effective.tls.cert_file,
                                                 effective.tls.key_file.empty()
                                                   ? std::filesystem::absolute(dir + "/key.pem").string()
                                                   : effective.tls.key_file});
      return 0;
    }
    if (get_cmd->parsed()) {
      std::cout << setting_value(load(get_cmd), key) << std::endl;
      return 0;
    }
    if (ca_cmd->parsed()) {
      auto made = create_cluster_ca(ca_dir, cert_days);
      std::cout << "CA certificate " << made.cert_file << " (SHA-256 " << certificate_fingerprint(made.cert_file)
                << ")\nCA key " << made.key_file << " (mode 0600: it signs every node; keep it off the nodes)"
                << std::endl;
      return 0;
    }
    if (node_cert_cmd->parsed()) {
      auto made = create_node_certificate(ca_dir, node_name, out_dir, cert_days);
      std::cout << "node " << node_name << ": certificate " << made.cert_file << " (SHA-256 "
                << certificate_fingerprint(made.cert_file) << "), key " << made.key_file << " (mode 0600)" << std::endl;
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "mts: " << e.what() << std::endl;
    return 2;
  }
  std::cout << app.help() << std::endl;
  return 0;
}

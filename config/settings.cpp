#include "config/settings.hpp"

#include "common/tcp_address.hpp"
#include "common/client_address.hpp"
#include "common/reach.hpp"
#include "common/toml.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <iterator>
#include <string_view>
#include <system_error>
#include <tuple>
#include <unistd.h>
#include <variant>

namespace mts {
namespace {

// ---------------------------------------------------------------------------------------------
// The key table. Every key is declared once here; loading, overrides, setting_value,
// validation and describe_settings all walk it.

using field_ptr = std::variant<std::string*, std::int64_t*, std::uint16_t*, bool*>;

// The member `Member` of the section `Section` of a settings object.
template <auto Section, auto Member>
field_ptr field(settings& s) {
  return &(s.*Section.*Member);
}

// An extra rule beyond the integer range; returns the problem, or "" when the value is fine.
using check_fn = std::string (*)(const settings&);

struct key_descriptor {
  const char* key;                // "section.key"
  field_ptr (*get)(settings&);    // the member it sets
  std::int64_t min;               // integers only: the allowed range
  std::int64_t max;
  const char* range;              // the allowed values as text; nullptr: "min..max"
  check_fn check;                 // may be nullptr
  const char* doc;                // one line
};

constexpr std::int64_t mebibyte = 1024 * 1024;

key_descriptor integer(const char* key, field_ptr (*get)(settings&), std::int64_t min,
                       std::int64_t max, const char* doc, const char* range = nullptr,
                       check_fn check = nullptr) {
  return {key, get, min, max, range, check, doc};
}

key_descriptor text(const char* key, field_ptr (*get)(settings&), const char* range,
                    check_fn check, const char* doc) {
  return {key, get, 0, 0, range, check, doc};
}

key_descriptor boolean(const char* key, field_ptr (*get)(settings&), const char* doc) {
  return {key, get, 0, 0, "true or false", nullptr, doc};
}

// --- the extra rules ---

std::string check_address(const settings& s) {
  if (s.http.address.empty())
    return "must not be empty";
  // Behind the edge, clients must not be able to reach the server around it.
  std::string error;
  auto loopback = address_set::parse("127.0.0.0/8, ::1", error);
  if (s.edge.enabled && s.http.address != "localhost" && !loopback->contains(s.http.address))
    return "must be a loopback address (127.0.0.1, ::1) while edge.enabled is true, so that clients "
           "reach the server only through the edge";
  return "";
}

std::string check_prefix(const settings& s) {
  const std::string& p = s.http.prefix;
  const char* rule = "must be empty, or start with '/', not end with '/', have no empty segment "
                     "(\"//\") and use only A-Z a-z 0-9 / _ . -";
  if (p.empty()) return "";
  if (p.front() != '/' || p.back() == '/' || p.find("//") != std::string::npos) return rule;
  for (char c : p) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '.' || c == '-';
    if (!ok) return rule;
  }
  return "";
}

std::string check_cert_file(const settings& s) {
  if (s.tls.cert_file.empty() && !s.tls.key_file.empty())
    return "must be set when tls.key_file is set (set both or neither)";
  return "";
}

std::string check_key_file(const settings& s) {
  if (s.tls.key_file.empty() && !s.tls.cert_file.empty())
    return "must be set when tls.cert_file is set (set both or neither)";
  return "";
}

std::string check_storage_path(const settings& s) {
  return s.storage.path.empty() ? "must not be empty" : "";
}

std::string check_default_search_limit(const settings& s) {
  if (s.limits.default_search_limit > s.limits.max_search_limit)
    return std::to_string(s.limits.default_search_limit) +
           " is out of range 1..limits.max_search_limit (" +
           std::to_string(s.limits.max_search_limit) + ")";
  return "";
}

std::string check_overnight_window(const settings& s) {
  auto w = parse_daily_window(s.scheduler.overnight_window);
  if (!w) return "must be HH:MM-HH:MM with times 00:00..23:59, e.g. 00:00-06:00";
  if (w->start_second == w->end_second)
    return "start and end are equal, which would make the window empty; use two different "
           "times HH:MM-HH:MM";
  return "";
}

std::string check_trusted_proxies(const settings& s) {
  std::string error;
  return address_set::parse(s.http.trusted_proxies, error) ? "" : error;
}

std::string check_edge_address(const settings& s) {
  return s.edge.address.empty() ? "must not be empty" : "";
}

std::string check_edge_ports(const settings& s) {
  if (!s.edge.enabled)
    return "";
  if (s.edge.internal_port == s.edge.port || s.edge.internal_port == s.http.port)
    return "must differ from edge.port and http.port";
  return "";
}

std::string check_edge_per_address(const settings& s) {
  if (s.edge.max_connections_per_address > s.edge.max_connections)
    return std::to_string(s.edge.max_connections_per_address) + " is out of range 1..edge.max_connections (" +
           std::to_string(s.edge.max_connections) + ")";
  return "";
}

std::string check_edge_header_bytes(const settings& s) {
  if (s.edge.max_header_bytes < s.edge.max_header_line_bytes)
    return std::to_string(s.edge.max_header_bytes) + " is smaller than edge.max_header_line_bytes (" +
           std::to_string(s.edge.max_header_line_bytes) + ")";
  return "";
}

const char* const log_levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};

std::string check_log_level(const settings& s) {
  for (const char* level : log_levels)
    if (s.log.level == level) return "";
  return "must be one of trace, debug, info, warn, error, critical, off";
}

std::string check_startup_check(const settings& s) {
  if (s.storage.startup_check == "integrity" || s.storage.startup_check == "quick" || s.storage.startup_check == "none")
    return "";
  return "must be one of integrity, quick, none";
}

std::string check_reach_networks(const settings& s) {
  std::string error;
  return parse_reach(s.collector.reach_networks, "", &error) ? std::string{} : error;
}

std::string check_reach_prefixes(const settings& s) {
  std::string error;
  return parse_reach("", s.collector.reach_prefixes, &error) ? std::string{} : error;
}

std::string check_cluster_collectors(const settings& s) {
  std::string error;
  accepted_collectors(s.cluster.collectors, &error);
  return error;
}

std::string check_collector_head(const settings& s) {
  if (s.collector.head.empty() || parse_tcp_address(s.collector.head))
    return "";
  return "must be host:port";
}

using S = settings;

const key_descriptor keys[] = {
    text("http.address", field<&S::http, &http_settings::address>, "a non-empty address",
         check_address, "Address the HTTPS listener binds to."),
    integer("http.port", field<&S::http, &http_settings::port>, 1, 65535,
            "TCP port of the HTTPS listener."),
    text("http.prefix", field<&S::http, &http_settings::prefix>,
         "empty, or /segment[/segment...] of A-Z a-z 0-9 _ . - (no trailing /)", check_prefix,
         "URL prefix of every API method."),
    integer("http.threads", field<&S::http, &http_settings::threads>, 1, 4096,
            "HTTP worker threads = maximum concurrent connections."),
    integer("http.max_body_bytes", field<&S::http, &http_settings::max_body_bytes>, 64,
            64 * mebibyte, "Largest request body; larger bodies get 413."),
    integer("http.read_timeout_seconds", field<&S::http, &http_settings::read_timeout_seconds>,
            1, 3600, "Timeout of each socket read."),
    integer("http.write_timeout_seconds", field<&S::http, &http_settings::write_timeout_seconds>,
            1, 3600, "Timeout of each socket write."),
    integer("http.keep_alive_timeout_seconds",
            field<&S::http, &http_settings::keep_alive_timeout_seconds>, 1, 3600,
            "How long an idle keep-alive connection stays open."),
    integer("http.keep_alive_max_requests",
            field<&S::http, &http_settings::keep_alive_max_requests>, 1, 1000000,
            "Requests served on one keep-alive connection before it is closed."),
    integer("http.listen_backlog", field<&S::http, &http_settings::listen_backlog>, 16, 65535,
            "Backlog of the listening socket."),
    integer("http.actor_timeout_seconds", field<&S::http, &http_settings::actor_timeout_seconds>,
            1, 300, "Longest an HTTP request waits for the server's actors, then 503."),
    text("http.trusted_proxies", field<&S::http, &http_settings::trusted_proxies>,
         "comma-separated IPv4/IPv6 addresses or networks (a.b.c.d[/bits], x::y[/bits]), or empty",
         check_trusted_proxies,
         "Proxies whose X-Real-IP / X-Forwarded-For name the client (rate limits, logs)."),

    boolean("edge.enabled", field<&S::edge, &edge_settings::enabled>,
            "Run the nginx edge in front of the server (needed on untrusted networks)."),
    text("edge.address", field<&S::edge, &edge_settings::address>, "a non-empty address",
         check_edge_address, "Address the edge binds to: where clients connect."),
    integer("edge.port", field<&S::edge, &edge_settings::port>, 1, 65535,
            "TCP port of the edge (HTTPS, for clients)."),
    integer("edge.internal_port", field<&S::edge, &edge_settings::internal_port>, 1, 65535,
            "Loopback port between the edge's connection layer and its HTTP layer.",
            nullptr, check_edge_ports),
    text("edge.nginx", field<&S::edge, &edge_settings::nginx>, "a path", nullptr,
         "The nginx program the edge runs (Debian: nginx-light)."),
    text("edge.stream_module", field<&S::edge, &edge_settings::stream_module>, "a path", nullptr,
         "nginx's stream module (Debian: libnginx-mod-stream)."),
    integer("edge.max_connections", field<&S::edge, &edge_settings::max_connections>, 16, 1000000,
            "Most client connections the edge holds at once; more are closed at once."),
    integer("edge.max_connections_per_address",
            field<&S::edge, &edge_settings::max_connections_per_address>, 1, 1000000,
            "Most connections one client address may hold; more are closed at once.",
            "1..edge.max_connections", check_edge_per_address),
    integer("edge.header_timeout_seconds", field<&S::edge, &edge_settings::header_timeout_seconds>, 1,
            600, "Deadline for the TLS handshake and for a whole request header."),
    integer("edge.body_timeout_seconds", field<&S::edge, &edge_settings::body_timeout_seconds>, 1, 600,
            "Longest pause between two reads of a request body."),
    integer("edge.max_header_line_bytes", field<&S::edge, &edge_settings::max_header_line_bytes>,
            1024, 65536, "Longest request line or header line; longer gets 431 (414 for the line)."),
    integer("edge.max_header_bytes", field<&S::edge, &edge_settings::max_header_bytes>, 1024,
            1048576, "Most bytes of all request headers together (at least edge.max_header_line_bytes); more gets 431.",
            nullptr, check_edge_header_bytes),

    text("tls.cert_file", field<&S::tls, &tls_settings::cert_file>,
         "a PEM file, or empty together with tls.key_file", check_cert_file,
         "Server certificate (PEM); empty: self-signed, generated next to storage.path."),
    text("tls.key_file", field<&S::tls, &tls_settings::key_file>,
         "a PEM file, or empty together with tls.cert_file", check_key_file,
         "Private key of the certificate (PEM); empty: generated with the certificate."),

    text("storage.path", field<&S::storage, &storage_settings::path>, "a non-empty path",
         check_storage_path, "SQLite database file; its directory holds a generated certificate."),
    integer("storage.busy_timeout_ms", field<&S::storage, &storage_settings::busy_timeout_ms>, 0,
            600000, "How long SQLite waits for a lock before failing."),
    integer("storage.reader_count", field<&S::storage, &storage_settings::reader_count>, 1, 64,
            "Read-only database connections (reader actors) serving searches and batch-status."),
    integer("storage.write_stall_seconds", field<&S::storage, &storage_settings::write_stall_seconds>, 1,
            3600, "A database write running longer makes service-status report not OK."),
    text("storage.startup_check", field<&S::storage, &storage_settings::startup_check>,
         "integrity, quick or none", check_startup_check,
         "What the server checks of the database file when it starts: integrity (PRAGMA integrity_check), quick (PRAGMA quick_check) or none."),
    integer("storage.retain_completed_days", field<&S::storage, &storage_settings::retain_completed_days>, 0,
            36500, "Completed tests are deleted this many days after they completed; 0 keeps them forever."),
    integer("storage.retain_transcripts_days", field<&S::storage, &storage_settings::retain_transcripts_days>, 0,
            36500, "Transcripts are deleted this many days after their test completed; 0 keeps them as long as the test."),
    integer("storage.purge_interval_seconds", field<&S::storage, &storage_settings::purge_interval_seconds>, 1,
            86400, "How often the retention purge looks for what to delete."),
    integer("storage.maintenance_step_rows", field<&S::storage, &storage_settings::maintenance_step_rows>, 1,
            100000, "Rows one purge or conversion step handles in one transaction."),

    integer("rate_limit.requests", field<&S::rate_limit, &rate_limit_settings::requests>, 1,
            1000000, "Requests allowed per token (or client IP) per window; then 429."),
    integer("rate_limit.window_seconds",
            field<&S::rate_limit, &rate_limit_settings::window_seconds>, 1, 86400,
            "Length of the fixed rate-limit window."),

    integer("limits.max_batch_size", field<&S::limits, &limits_settings::max_batch_size>, 1,
            100000, "Most items in one batch request."),
    integer("limits.max_survey_days", field<&S::limits, &limits_settings::max_survey_days>, 1,
            3660, "Longest survey period in days."),
    integer("limits.max_search_days", field<&S::limits, &limits_settings::max_search_days>, 1,
            3660, "Longest search period in days."),
    integer("limits.max_search_limit", field<&S::limits, &limits_settings::max_search_limit>, 1,
            100000, "Largest page size a search may ask for."),
    integer("limits.default_search_limit",
            field<&S::limits, &limits_settings::default_search_limit>, 1, 100000,
            "Page size of a search that asks for none.", "1..limits.max_search_limit",
            check_default_search_limit),

    text("scheduler.overnight_window", field<&S::scheduler, &scheduler_settings::overnight_window>,
         "HH:MM-HH:MM, times 00:00..23:59, start != end", check_overnight_window,
         "Daily window (UTC) for overnight tests; may wrap midnight."),
    integer("scheduler.max_concurrent_tests",
            field<&S::scheduler, &scheduler_settings::max_concurrent_tests>, 1, 100000,
            "Most tests running at the same time."),
    integer("scheduler.test_deadline_seconds",
            field<&S::scheduler, &scheduler_settings::test_deadline_seconds>, 10, 86400,
            "Deadline of a whole test."),
    integer("scheduler.max_tcp_sessions", field<&S::scheduler, &scheduler_settings::max_tcp_sessions>,
            1, 100000, "Most tests with a TCP (host:port) address running at the same time."),
    integer("scheduler.max_attempts", field<&S::scheduler, &scheduler_settings::max_attempts>, 1, 100,
            "Attempts a test makes in all when attempts fail transiently."),
    integer("scheduler.retry_delay_seconds",
            field<&S::scheduler, &scheduler_settings::retry_delay_seconds>, 0, 86400,
            "Wait between a transiently failed attempt and the next."),
    integer("scheduler.connect_timeout_seconds",
            field<&S::scheduler, &scheduler_settings::connect_timeout_seconds>, 1, 600,
            "Longest wait for a TCP connection to a meter to open."),
    integer("scheduler.transcript_max_bytes",
            field<&S::scheduler, &scheduler_settings::transcript_max_bytes>, 0, 1048576,
            "Bound of each attempt's transcript (test-transcript); 0: none are kept."),

    integer("modems.cooldown_seconds", field<&S::modems, &modems_settings::cooldown_seconds>, 1, 86400,
            "How long a modem that failed (no answer to AT commands, no dial tone) stays out of service."),
    integer("modems.command_timeout_seconds",
            field<&S::modems, &modems_settings::command_timeout_seconds>, 1, 120,
            "Longest wait for a modem's answer to an AT command."),
    integer("modems.connect_timeout_seconds",
            field<&S::modems, &modems_settings::connect_timeout_seconds>, 5, 600,
            "Longest wait from dialling to CONNECT."),
    integer("modems.guard_time_ms", field<&S::modems, &modems_settings::guard_time_ms>, 0, 10000,
            "Silence before and after the \"+++\" escape that precedes a hang-up."),

    boolean("api.mask_passwords", field<&S::api, &api_settings::mask_passwords>,
            "Test status shows \"********\" instead of the meter password."),

    text("log.level", field<&S::log, &log_settings::level>,
         "trace, debug, info, warn, error, critical or off", check_log_level,
         "Least severe log level written."),

    integer("cluster.port", field<&S::cluster, &cluster_settings::port>, 0, 65535,
            "Head: TCP port collectors connect to over mutual TLS; 0: no cluster."),
    text("cluster.address", field<&S::cluster, &cluster_settings::address>, "an address", nullptr,
         "Head: address the cluster port binds to."),
    text("cluster.ca_file", field<&S::cluster, &cluster_settings::ca_file>, "a PEM file", nullptr,
         "The cluster's own CA certificate (mts cluster ca), on every node."),
    text("cluster.certificate_file", field<&S::cluster, &cluster_settings::certificate_file>, "a PEM file",
         nullptr, "This node's certificate (mts cluster node-cert)."),
    text("cluster.key_file", field<&S::cluster, &cluster_settings::key_file>, "a PEM file", nullptr,
         "This node's private key."),
    integer("cluster.heartbeat_seconds", field<&S::cluster, &cluster_settings::heartbeat_seconds>, 1, 60,
            "Heartbeat between head and collectors."),
    integer("cluster.missed_heartbeats", field<&S::cluster, &cluster_settings::missed_heartbeats>, 2, 100,
            "Head: a collector silent for this many heartbeats is taken for lost."),
    text("cluster.collectors", field<&S::cluster, &cluster_settings::collectors>,
         "comma-separated name=SHA-256 hex (mts cluster secret prints it)", check_cluster_collectors,
         "Head: the collectors accepted, each with the hash of its secret."),
    boolean("cluster.head_runs_tests", field<&S::cluster, &cluster_settings::head_runs_tests>,
            "Head: also run tests itself, next to its collectors."),
    text("collector.name", field<&S::collector, &collector_settings::name>, "a node name", nullptr,
         "Collector: its name, as the head's cluster.collectors has it."),
    text("collector.secret_file", field<&S::collector, &collector_settings::secret_file>, "a file", nullptr,
         "Collector: the file holding its secret (mode 0600)."),
    text("collector.head", field<&S::collector, &collector_settings::head>, "host:port", check_collector_head,
         "Collector: the head's cluster port."),
    integer("collector.max_tcp_sessions", field<&S::collector, &collector_settings::max_tcp_sessions>, 0, 100000,
            "Collector: TCP meter sessions it offers the head."),
    integer("collector.reconnect_max_seconds",
            field<&S::collector, &collector_settings::reconnect_max_seconds>, 1, 3600,
            "Collector: longest pause between two tries to reach the head."),
    text("collector.reach_networks", field<&S::collector, &collector_settings::reach_networks>,
         "comma-separated IP addresses or networks (a.b.c.d[/bits], x::y[/bits])", check_reach_networks,
         "Collector: the TCP meters it reaches; empty: all."),
    text("collector.reach_prefixes", field<&S::collector, &collector_settings::reach_prefixes>,
         "comma-separated number prefixes (an optional '+' and digits)", check_reach_prefixes,
         "Collector: the telephone numbers its modems dial; empty: all."),
};

// ---------------------------------------------------------------------------------------------
// Helpers.

const key_descriptor* find_key(std::string_view key) {
  for (const auto& k : keys)
    if (key == k.key) return &k;
  return nullptr;
}

bool known_section(std::string_view section) {
  for (const auto& k : keys) {
    std::string_view name = k.key;
    if (name.substr(0, name.find('.')) == section) return true;
  }
  return false;
}

// Text from the configuration or the command line, safe to put in a message: at most 64
// characters, control characters replaced.
std::string shorten(std::string_view text) {
  constexpr std::size_t limit = 64;
  std::string out;
  for (char c : text.substr(0, limit))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (text.size() > limit) out += "...";
  return out;
}

const char* type_name(const field_ptr& f) {
  if (std::holds_alternative<std::string*>(f)) return "string";
  if (std::holds_alternative<bool*>(f)) return "boolean";
  return "integer";
}

bool is_integer(const field_ptr& f) {
  return std::holds_alternative<std::int64_t*>(f) || std::holds_alternative<std::uint16_t*>(f);
}

std::string range_text(const key_descriptor& k) {
  if (k.range) return k.range;
  return std::to_string(k.min) + ".." + std::to_string(k.max);
}

std::string out_of_range(std::int64_t value, const key_descriptor& k) {
  return std::to_string(value) + " is out of range " + range_text(k);
}

// Stores an integer; "" or the problem (a value the member's type cannot hold).
std::string store_integer(const field_ptr& f, std::int64_t value, const key_descriptor& k) {
  if (auto p = std::get_if<std::int64_t*>(&f)) {
    **p = value;
  } else if (auto p16 = std::get_if<std::uint16_t*>(&f)) {
    if (value < 0 || value > 65535) return out_of_range(value, k);
    **p16 = static_cast<std::uint16_t>(value);
  }
  return "";
}

std::string value_text(const field_ptr& f) {
  if (auto p = std::get_if<std::string*>(&f)) return **p;
  if (auto p = std::get_if<std::int64_t*>(&f)) return std::to_string(**p);
  if (auto p = std::get_if<std::uint16_t*>(&f)) return std::to_string(**p);
  return *std::get<bool*>(f) ? "true" : "false";
}

const char* toml_type_name(toml::node_type t) {
  switch (t) {
  case toml::node_type::table: return "a table";
  case toml::node_type::array: return "an array";
  case toml::node_type::string: return "a string";
  case toml::node_type::integer: return "an integer";
  case toml::node_type::floating_point: return "a floating-point number";
  case toml::node_type::boolean: return "a boolean";
  case toml::node_type::date: return "a date";
  case toml::node_type::time: return "a time";
  case toml::node_type::date_time: return "a date-time";
  case toml::node_type::none: break;
  }
  return "nothing";
}

std::string read_file(const std::string& path) {
  auto fail = [&](int error) {
    return config_error("cannot read configuration file " + path + ": " +
                        std::generic_category().message(error));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail(errno);
  std::string content;
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      content.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      int error = errno;
      ::close(fd);
      throw fail(error);
    }
  }
  ::close(fd);
  return content;
}

// A problem found in the file, kept so that the first one in file order is reported.
struct file_problem {
  std::uint32_t line;
  std::uint32_t column;
  std::string message; // "section.key: problem"
};

file_problem problem_at(const toml::source_region& where, std::string message) {
  return {where.begin.line, where.begin.column, std::move(message)};
}

// Applies one value from the file; returns the problem, or "".
std::string apply_toml_value(const key_descriptor& k, settings& s, const toml::node& value) {
  field_ptr f = k.get(s);
  auto wrong_type = [&](const char* expected) {
    return std::string("expected ") + expected + ", got " + toml_type_name(value.type());
  };
  if (auto p = std::get_if<std::string*>(&f)) {
    auto v = value.as_string();
    if (!v) return wrong_type("a string");
    **p = v->get();
    return "";
  }
  if (auto p = std::get_if<bool*>(&f)) {
    auto v = value.as_boolean();
    if (!v) return wrong_type("a boolean");
    **p = v->get();
    return "";
  }
  auto v = value.as_integer();
  if (!v) return wrong_type("an integer");
  return store_integer(f, v->get(), k);
}

// ---- [[modem]] tables ----

const char* const modem_keys[][3] = {
    {"name", "string", "Unique name of the modem, shown in service-status and the logs (required)."},
    {"device", "string", "Serial device of a modem on a serial port, e.g. /dev/ttyUSB0 (this or gateway)."},
    {"baud", "integer", "Speed of the serial port (device only), e.g. 9600."},
    {"gateway", "string", "host:port of a TCP serial gateway with the modem behind it (this or device)."},
    {"init", "array of strings", "Init strings sent after ATZ, each must answer OK, e.g. [\"ATE0\"]."},
    {"dial_prefix", "string", "Put before every number dialled, e.g. \"9,\"."},
    {"software_parity", "boolean",
     "Device only: carry the call's character format in software (a GSM modem moving 8 bits)."},
};

void apply_modems(const toml::key& key, const toml::node& node, settings& s, std::vector<file_problem>& problems) {
  auto* array = node.as_array();
  if (!array || !array->is_array_of_tables()) {
    problems.push_back(problem_at(key.source(), "modem: must be [[modem]] tables"));
    return;
  }
  std::size_t index = 0;
  for (auto&& element : *array) {
    const auto& table = *element.as_table();
    modem_settings m;
    const std::string where = "modem[" + std::to_string(index++) + "]";
    auto fail = [&](const toml::source_region& at, const std::string& problem) {
      problems.push_back(problem_at(at, where + "." + problem));
    };
    bool ok = true;
    for (auto&& [key, value] : table) {
      // Named references: a lambda may not capture structured bindings before C++20 (clang).
      const auto& k = key;
      auto& v = value;
      const std::string name(k.str());
      auto text = [&](std::string& out) {
        if (auto str = v.as_string())
          out = str->get();
        else {
          fail(k.source(), name + ": expected a string, got " + toml_type_name(v.type()));
          ok = false;
        }
      };
      if (name == "name") {
        text(m.name);
      } else if (name == "device") {
        text(m.device);
      } else if (name == "gateway") {
        text(m.gateway);
      } else if (name == "dial_prefix") {
        text(m.dial_prefix);
      } else if (name == "baud") {
        auto n = v.as_integer();
        const auto& speeds = serial_speeds();
        if (!n || std::find(speeds.begin(), speeds.end(), n->get()) == speeds.end()) {
          fail(k.source(), "baud: must be one of 300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200");
          ok = false;
        } else {
          m.baud = n->get();
        }
      } else if (name == "software_parity") {
        if (auto b = v.as_boolean())
          m.software_parity = b->get();
        else {
          fail(k.source(), "software_parity: expected a boolean, got " + std::string(toml_type_name(v.type())));
          ok = false;
        }
      } else if (name == "init") {
        auto* list = v.as_array();
        if (!list || !list->is_homogeneous(toml::node_type::string)) {
          fail(k.source(), "init: expected an array of strings");
          ok = false;
        } else {
          for (auto&& item : *list)
            m.init.push_back(item.as_string()->get());
        }
      } else {
        fail(k.source(), shorten(name) + ": unknown modem key");
        ok = false;
      }
    }
    if (!ok)
      continue;
    const auto& at = table.source();
    if (m.name.empty())
      fail(at, "name: required, and not empty");
    else if (std::any_of(s.modem.begin(), s.modem.end(), [&](const auto& o) { return o.name == m.name; }))
      fail(at, "name: \"" + shorten(m.name) + "\" is used by another modem");
    else if (m.device.empty() == m.gateway.empty())
      fail(at, "device, gateway: set exactly one of them");
    else if (!m.gateway.empty() && !parse_tcp_address(m.gateway))
      fail(at, "gateway: must be host:port with a port 1..65535");
    else
      s.modem.push_back(std::move(m));
  }
}

// ---- [[meter_type]] tables ----

// The sections the [[meter_type]] tables replaced, and the built-in type each configured.
const char* const replaced_sections[][2] = {
    {"elster_a1700", "ELSTERA1700"}, {"elster_a1140", "ELSTERA1140"}, {"iec62056_21", "IEC62056-21"}};

const char* replaced_type(std::string_view section) {
  for (const auto& r : replaced_sections)
    if (section == r[0])
      return r[1];
  return nullptr;
}

std::string replaced_message(std::string_view section, const char* type) {
  return shorten(section) + ": this section was replaced by [[meter_type]] tables; set its keys in the "
         "[[meter_type]] table with name = \"" + type + "\" (docs/configuration.md, \"Meter types\")";
}

// The key of a meter type's driver (or a line key); nullptr when it has none of that name.
const driver_key* meter_type_key(const std::string& driver, std::string_view key) {
  for (const auto* keys : {&line_keys(driver), driver_keys(driver)}) {
    if (!keys)
      continue;
    for (const auto& k : *keys)
      if (k.key == key)
        return &k;
  }
  return nullptr;
}

std::string key_names(const std::string& driver) {
  std::string out;
  for (const auto* keys : {&line_keys(driver), driver_keys(driver)})
    for (const auto& k : *keys)
      out += (out.empty() ? "" : ", ") + k.key;
  return out;
}

// Every key of the definition's driver that it does not set, at its default.
void fill_defaults(meter_type_definition& t) {
  for (const auto* keys : {&line_keys(t.driver), driver_keys(t.driver)})
    for (const auto& k : *keys)
      t.settings.emplace(k.key, k.default_value);
}

void apply_meter_types(const toml::key& key, const toml::node& node, settings& s, std::vector<file_problem>& problems) {
  auto* array = node.as_array();
  if (!array || !array->is_array_of_tables()) {
    problems.push_back(problem_at(key.source(), "meter_type: must be [[meter_type]] tables"));
    return;
  }
  std::vector<std::string> defined; // names defined by this file so far
  std::size_t index = 0;
  for (auto&& element : *array) {
    const auto& table = *element.as_table();
    const std::string where = "meter_type[" + std::to_string(index++) + "]";
    bool ok = true;
    auto fail = [&](const toml::source_region& at, const std::string& problem) {
      problems.push_back(problem_at(at, where + "." + problem));
      ok = false;
    };
    meter_type_definition t;
    for (const char* required : {"name", "driver"}) {
      const auto* v = table.get(required);
      if (!v) {
        fail(table.source(), std::string(required) + ": required");
      } else if (auto str = v->as_string()) {
        (required == std::string("name") ? t.name : t.driver) = str->get();
      } else {
        fail(v->source(), std::string(required) + ": expected a string, got " + toml_type_name(v->type()));
      }
    }
    if (!ok)
      continue;
    if (t.name.empty()) {
      fail(table.source(), "name: must not be empty");
      continue;
    }
    if (!driver_keys(t.driver)) {
      std::string known;
      for (const auto& d : driver_names())
        known += (known.empty() ? "" : ", ") + d;
      fail(table.get("driver")->source(),
           "driver: unknown driver \"" + shorten(t.driver) + "\" (known: " + known + ")");
      continue;
    }
    for (auto&& [k, v] : table) {
      const std::string name(k.str());
      if (name == "name" || name == "driver")
        continue;
      const driver_key* dk = meter_type_key(t.driver, name);
      if (!dk) {
        fail(k.source(), shorten(name) + ": not a key of driver " + t.driver + " (its keys: " + key_names(t.driver) + ")");
        continue;
      }
      const bool text = std::holds_alternative<std::string>(dk->default_value);
      if (text ? !v.is_string() : !v.is_integer()) {
        fail(k.source(), name + ": expected " + (text ? "a string" : "an integer") + ", got " + toml_type_name(v.type()));
        continue;
      }
      driver_value value;
      if (text)
        value = v.as_string()->get();
      else
        value = v.as_integer()->get();
      if (auto problem = check_driver_value(*dk, value); !problem.empty()) {
        fail(k.source(), name + ": " + problem);
        continue;
      }
      t.settings[name] = std::move(value);
    }
    if (!ok)
      continue;
    if (std::find(defined.begin(), defined.end(), t.name) != defined.end()) {
      fail(table.get("name")->source(), "name: \"" + shorten(t.name) + "\" is defined by another [[meter_type]] table");
      continue;
    }
    defined.push_back(t.name);
    fill_defaults(t);
    // A built-in name changes the built-in type; any other name adds a type.
    auto it = std::find_if(s.meter_types.begin(), s.meter_types.end(), [&](const auto& o) { return o.name == t.name; });
    if (it != s.meter_types.end())
      *it = std::move(t);
    else
      s.meter_types.push_back(std::move(t));
  }
}

// "meter_type.<name>.<key>": the definition and the key; throws config_error naming the override.
std::pair<meter_type_definition*, const driver_key*> meter_type_override(settings& s, std::string_view name) {
  const auto dot = name.rfind('.');
  const std::string type(name.substr(11, dot == std::string_view::npos || dot < 11 ? 0 : dot - 11));
  auto it = std::find_if(s.meter_types.begin(), s.meter_types.end(), [&](const auto& t) { return t.name == type; });
  if (dot == std::string_view::npos || dot < 11 || it == s.meter_types.end())
    throw config_error("unknown configuration key \"" + shorten(name) +
                       "\": a meter type's key is meter_type.<name>.<key> with the name of a defined type");
  const driver_key* k = meter_type_key(it->driver, name.substr(dot + 1));
  if (!k)
    throw config_error("unknown configuration key \"" + shorten(name) + "\": not a key of driver " + it->driver +
                       " (its keys: " + key_names(it->driver) + ")");
  return {&*it, k};
}

void apply_meter_type_override(settings& s, std::string_view name, std::string_view value) {
  auto [type, k] = meter_type_override(s, name);
  driver_value v = std::string(value);
  if (std::holds_alternative<std::int64_t>(k->default_value)) {
    std::int64_t number = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (value.empty() || error != std::errc() || end != value.data() + value.size())
      throw config_error(shorten(name) + ": \"" + shorten(value) + "\" is not a decimal integer (command-line override)");
    v = number;
  }
  if (auto problem = check_driver_value(*k, v); !problem.empty())
    throw config_error(shorten(name) + ": " + problem + " (command-line override)");
  type->settings[k->key] = std::move(v);
}

void apply_file(const std::string& path, settings& s, std::vector<std::string>& origin) {
  std::string content = read_file(path);
  toml::table root;
  try {
    root = toml::parse(content, path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw config_error(path + ":" + std::to_string(where.line) + ":" +
                       std::to_string(where.column) + ": " + std::string(e.description()));
  }

  std::vector<file_problem> problems;
  for (auto&& [section_key, section_node] : root) {
    std::string section(section_key.str());
    if (section == "modem") {
      apply_modems(section_key, section_node, s, problems);
      continue;
    }
    if (section == "meter_type") {
      apply_meter_types(section_key, section_node, s, problems);
      continue;
    }
    if (const char* type = replaced_type(section)) {
      problems.push_back(problem_at(section_key.source(), replaced_message(section, type)));
      continue;
    }
    auto* table = section_node.as_table();
    if (!table) {
      problems.push_back(problem_at(section_key.source(),
                                    shorten(section) + ": key outside a [section] table"));
      continue;
    }
    if (!known_section(section)) {
      problems.push_back(
          problem_at(section_key.source(), shorten(section) + ": unknown configuration section"));
      continue;
    }
    for (auto&& [key, value] : *table) {
      std::string name = section + "." + std::string(key.str());
      const key_descriptor* k = find_key(name);
      if (!k) {
        const char* what = value.is_table() ? ": unknown configuration key (nested tables are "
                                              "not allowed)"
                                            : ": unknown configuration key";
        problems.push_back(problem_at(key.source(), shorten(name) + what));
        continue;
      }
      std::string problem = apply_toml_value(*k, s, value);
      if (!problem.empty()) {
        problems.push_back(problem_at(key.source(), name + ": " + problem));
        continue;
      }
      origin[static_cast<std::size_t>(k - keys)] =
          path + ":" + std::to_string(key.source().begin.line);
    }
  }
  if (problems.empty()) return;
  const auto& first = *std::min_element(
      problems.begin(), problems.end(), [](const file_problem& a, const file_problem& b) {
        return std::tie(a.line, a.column) < std::tie(b.line, b.column);
      });
  throw config_error(path + ":" + std::to_string(first.line) + ": " + first.message);
}

void apply_override(const std::string& text, settings& s, std::vector<std::string>& origin) {
  auto eq = text.find('=');
  if (eq == std::string::npos)
    throw config_error("invalid configuration override \"" + shorten(text) +
                       "\": expected section.key=value");
  std::string_view name = std::string_view(text).substr(0, eq);
  std::string_view value = std::string_view(text).substr(eq + 1);
  if (name.substr(0, 11) == "meter_type.") {
    apply_meter_type_override(s, name, value);
    return;
  }
  if (const char* type = replaced_type(name.substr(0, name.find('.'))))
    throw config_error("configuration key \"" + shorten(name) + "\" was replaced: write meter_type." + type + "." +
                       shorten(name.substr(name.find('.') + 1)) + "=VALUE (docs/configuration.md, \"Meter types\")");
  const key_descriptor* k = find_key(name);
  if (!k) throw config_error("unknown configuration key \"" + shorten(name) + "\"");
  auto fail = [&](const std::string& problem) {
    return config_error(std::string(k->key) + ": " + problem + " (command-line override)");
  };

  field_ptr f = k->get(s);
  if (auto p = std::get_if<std::string*>(&f)) {
    **p = std::string(value);
  } else if (auto p = std::get_if<bool*>(&f)) {
    if (value == "true") **p = true;
    else if (value == "false") **p = false;
    else throw fail("\"" + shorten(value) + "\" is not true or false");
  } else {
    std::int64_t number = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (value.empty() || error != std::errc() || end != value.data() + value.size())
      throw fail("\"" + shorten(value) + "\" is not a decimal integer in range " +
                 range_text(*k));
    std::string problem = store_integer(f, number, *k);
    if (!problem.empty()) throw fail(problem);
  }
  origin[static_cast<std::size_t>(k - keys)].clear();
}

void validate(settings& s, const std::vector<std::string>& origin) {
  for (const auto& k : keys) {
    const std::string& from = origin[static_cast<std::size_t>(&k - keys)];
    auto fail = [&](const std::string& problem) {
      return config_error((from.empty() ? "" : from + ": ") + k.key + ": " + problem);
    };
    field_ptr f = k.get(s);
    if (is_integer(f)) {
      std::int64_t value = std::holds_alternative<std::int64_t*>(f)
                               ? *std::get<std::int64_t*>(f)
                               : *std::get<std::uint16_t*>(f);
      if (value < k.min || value > k.max) throw fail(out_of_range(value, k));
    }
    if (k.check) {
      std::string problem = k.check(s);
      if (!problem.empty()) throw fail(problem);
    }
  }
}

} // namespace

bool is_node_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name.front() == '-' || name.front() == '.')
    return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'))
      return false;
  return true;
}

std::vector<accepted_collector> accepted_collectors(const std::string& text, std::string* error) {
  std::vector<accepted_collector> out;
  auto fail = [&](const std::string& why) {
    if (error)
      *error = why;
    return std::vector<accepted_collector>{};
  };
  std::size_t at = 0;
  while (at <= text.size()) {
    auto comma = text.find(',', at);
    auto entry = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? text.size() + 1 : comma + 1;
    auto first = entry.find_first_not_of(" \t"), last = entry.find_last_not_of(" \t");
    if (first == std::string::npos) {
      if (text.find_first_not_of(" \t,") == std::string::npos)
        break; // empty: no collectors
      return fail("an empty entry; expected name=SHA-256 hex");
    }
    entry = entry.substr(first, last - first + 1);
    auto eq = entry.find('=');
    if (eq == std::string::npos)
      return fail("\"" + shorten(entry) + "\": expected name=SHA-256 hex");
    accepted_collector c;
    c.name = entry.substr(0, eq);
    auto hex = entry.substr(eq + 1);
    if (!is_node_name(c.name))
      return fail("\"" + shorten(c.name) + "\": a name is 1 to 64 letters, digits, '-', '.' or '_'");
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
      return fail(c.name + ": the secret's SHA-256 must be 64 hex digits");
    for (std::size_t i = 0; i < 64; i += 2)
      c.secret_sha256.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    if (std::any_of(out.begin(), out.end(), [&](const auto& o) { return o.name == c.name; }))
      return fail(c.name + ": named twice");
    // The scheduler keeps a bit per node (the head and each collector) in a 64-bit mask.
    if (out.size() == 63)
      return fail("more than 63 collectors");
    out.push_back(std::move(c));
  }
  return out;
}

settings load_settings(const std::optional<std::string>& file,
                       const std::vector<std::string>& overrides) {
  settings s;
  // Where each key's value came from: "FILE:LINE", or empty for defaults and overrides.
  std::vector<std::string> origin(std::size(keys));
  if (file) apply_file(*file, s, origin);
  for (const auto& o : overrides) apply_override(o, s, origin);
  validate(s, origin);
  try {
    meter_type_registry check(s.meter_types); // what the file and overrides checked one by one, as a whole
  } catch (const meter_type_error& e) {
    throw config_error(e.what());
  }
  return s;
}

std::string setting_value(const settings& s, const std::string& key) {
  if (key.rfind("meter_type.", 0) == 0) {
    // The lookup only hands out pointers; nothing is written through them here.
    auto [type, k] = meter_type_override(const_cast<settings&>(s), key);
    return driver_value_text(type->settings.at(k->key));
  }
  const key_descriptor* k = find_key(key);
  if (!k) throw config_error("unknown configuration key \"" + shorten(key) + "\"");
  // The accessor only hands out a pointer; nothing is written through it here.
  return value_text(k->get(const_cast<settings&>(s)));
}

std::vector<setting_description> describe_settings() {
  settings defaults;
  std::vector<setting_description> out;
  for (const auto& k : keys) {
    field_ptr f = k.get(defaults);
    out.push_back({k.key, type_name(f), value_text(f), range_text(k), k.doc});
  }
  return out;
}

bool is_reloadable(const std::string& key) {
  for (const char* live : {"rate_limit.", "limits.", "scheduler.", "modems.", "api.", "log."})
    if (key.rfind(live, 0) == 0)
      return true;
  for (const char* live : {"storage.retain_completed_days", "storage.retain_transcripts_days",
                           "storage.purge_interval_seconds", "storage.maintenance_step_rows"})
    if (key == live)
      return true;
  return false;
}

std::vector<setting_change> compare_settings(const settings& running, const settings& next) {
  std::vector<setting_change> out;
  for (const auto& d : describe_settings()) {
    auto before = setting_value(running, d.key), after = setting_value(next, d.key);
    if (before != after)
      out.push_back({d.key, std::move(before), std::move(after), is_reloadable(d.key)});
  }
  auto find = [](const settings& s, const std::string& name) -> const meter_type_definition* {
    for (const auto& t : s.meter_types)
      if (t.name == name)
        return &t;
    return nullptr;
  };
  for (const auto& t : running.meter_types) {
    const auto* n = find(next, t.name);
    if (!n) {
      out.push_back({"meter_type." + t.name, "driver " + t.driver, "(none)", true});
    } else if (n->driver != t.driver) {
      out.push_back({"meter_type." + t.name + ".driver", t.driver, n->driver, true});
    } else {
      for (const auto& [key, value] : n->settings) {
        auto it = t.settings.find(key);
        if (it == t.settings.end() || it->second != value)
          out.push_back({"meter_type." + t.name + "." + key,
                         it == t.settings.end() ? "(none)" : driver_value_text(it->second), driver_value_text(value),
                         true});
      }
    }
  }
  for (const auto& t : next.meter_types)
    if (!find(running, t.name))
      out.push_back({"meter_type." + t.name, "(none)", "driver " + t.driver, true});
  auto modems = [](const settings& s) {
    std::string out;
    for (const auto& m : s.modem) {
      out += (out.empty() ? "" : "; ") + m.name + " " + (m.device.empty() ? "gateway " + m.gateway : m.device) +
             " baud " + std::to_string(m.baud) + " prefix " + m.dial_prefix + (m.software_parity ? " software parity" : "");
      for (const auto& i : m.init)
        out += " " + i;
    }
    return out.empty() ? std::string("(none)") : out;
  };
  if (auto before = modems(running), after = modems(next); before != after)
    out.push_back({"modem", std::move(before), std::move(after), true});
  return out;
}

settings reloaded_settings(const settings& running, const settings& next) {
  settings out = running;
  out.rate_limit = next.rate_limit;
  out.limits = next.limits;
  out.scheduler = next.scheduler;
  out.api = next.api;
  out.log = next.log;
  out.modems = next.modems;
  out.modem = next.modem;
  out.meter_types = next.meter_types;
  out.storage.retain_completed_days = next.storage.retain_completed_days;
  out.storage.retain_transcripts_days = next.storage.retain_transcripts_days;
  out.storage.purge_interval_seconds = next.storage.purge_interval_seconds;
  out.storage.maintenance_step_rows = next.storage.maintenance_step_rows;
  return out;
}

std::vector<setting_description> describe_modem_keys() {
  std::vector<setting_description> out;
  for (const auto& k : modem_keys)
    out.push_back({k[0], k[1], "", "", k[2]});
  return out;
}

const std::vector<std::int64_t>& serial_speeds() {
  static const std::vector<std::int64_t> speeds = {300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200};
  return speeds;
}

bool daily_window::contains(int second_of_day) const {
  if (start_second == end_second) return false;
  if (start_second < end_second)
    return second_of_day >= start_second && second_of_day < end_second;
  return second_of_day >= start_second || second_of_day < end_second;
}

std::optional<daily_window> parse_daily_window(const std::string& text) {
  // Exactly "HH:MM-HH:MM".
  if (text.size() != 11 || text[2] != ':' || text[5] != '-' || text[8] != ':') return std::nullopt;
  auto digits = [&](std::size_t at) -> int {
    char a = text[at], b = text[at + 1];
    if (a < '0' || a > '9' || b < '0' || b > '9') return -1;
    return (a - '0') * 10 + (b - '0');
  };
  auto time_at = [&](std::size_t at) -> int {
    int hours = digits(at), minutes = digits(at + 3);
    if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) return -1;
    return hours * 3600 + minutes * 60;
  };
  int start = time_at(0), end = time_at(6);
  if (start < 0 || end < 0) return std::nullopt;
  return daily_window{start, end};
}

} // namespace mts

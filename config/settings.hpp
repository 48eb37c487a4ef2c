#pragma once
// The server's configuration: one struct per section, every key with its embedded default.
// docs/configuration.md and config/mts.example.toml describe each key; keep all three in step.
#include "drivers/registry.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mts {

struct http_settings {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8444;           // behind the edge by default; clients use edge.port
  std::string prefix = "/MTS";
  std::int64_t threads = 128;
  std::int64_t max_body_bytes = 1048576;
  std::int64_t read_timeout_seconds = 5;
  std::int64_t write_timeout_seconds = 5;
  std::int64_t keep_alive_timeout_seconds = 10; // also bounds how long shutdown waits for idle connections
  std::int64_t keep_alive_max_requests = 10000;
  std::int64_t listen_backlog = 1024;
  std::int64_t actor_timeout_seconds = 10; // longest an HTTP thread waits for an actor's reply
  // Addresses and networks whose X-Real-IP / X-Forwarded-For are believed ("127.0.0.1, ::1");
  // with edge.enabled the edge's own address (loopback) is trusted as well.
  std::string trusted_proxies;
};

// The edge: Debian's nginx in front of the server, terminating the clients' TLS with the same
// profile and certificate, with limits and deadlines the server cannot enforce itself
// (docs/operations.md, "The edge"). `mts serve` writes its configuration and supervises it.
struct edge_settings {
  bool enabled = true;
  std::string address = "127.0.0.1";  // where clients connect
  std::uint16_t port = 8443;
  std::uint16_t internal_port = 8442; // loopback, between the edge's connection and HTTP layers
  std::string nginx = "/usr/sbin/nginx";
  std::string stream_module = "/usr/lib/nginx/modules/ngx_stream_module.so";
  std::int64_t max_connections = 6144;
  std::int64_t max_connections_per_address = 4096;
  std::int64_t header_timeout_seconds = 10; // the whole request header (and the TLS handshake)
  std::int64_t body_timeout_seconds = 10;   // between two reads of a body
  std::int64_t max_header_line_bytes = 8192;
  std::int64_t max_header_bytes = 32768;
};

struct tls_settings {
  std::string cert_file; // empty: generated in the storage directory on first start
  std::string key_file;
};

struct storage_settings {
  std::string path = "data/mts.db";
  std::int64_t busy_timeout_ms = 5000;
  std::int64_t reader_count = 2; // read-only connections (reader actors) serving searches and batch-status
  std::int64_t write_stall_seconds = 15; // a write running longer makes service-status not OK
  std::string startup_check = "quick"; // integrity, quick or none (persistence/store.hpp, open_check)
  // Retention (actors/retention.hpp); these four change on SIGHUP.
  std::int64_t retain_completed_days = 400; // 0: keep completed tests forever
  std::int64_t retain_transcripts_days = 30; // 0: keep transcripts as long as their tests
  std::int64_t purge_interval_seconds = 3600;
  std::int64_t maintenance_step_rows = 100; // rows a purge or conversion step handles in one transaction
};

struct rate_limit_settings {
  std::int64_t requests = 600;
  std::int64_t window_seconds = 60;
};

struct limits_settings {
  std::int64_t max_batch_size = 1000;
  std::int64_t max_survey_days = 90;
  std::int64_t max_search_days = 366;
  std::int64_t max_search_limit = 1000;
  std::int64_t default_search_limit = 100;
};

struct scheduler_settings {
  std::string overnight_window = "00:00-06:00"; // UTC, may wrap midnight
  std::int64_t max_concurrent_tests = 16;
  std::int64_t test_deadline_seconds = 1800;
  std::int64_t max_tcp_sessions = 1000;
  std::int64_t max_attempts = 3;
  std::int64_t retry_delay_seconds = 60;
  std::int64_t connect_timeout_seconds = 20;
  std::int64_t transcript_max_bytes = 16384; // per attempt; 0: no transcripts
};

// The modem pool (dial-up meters): settings shared by every modem.
struct modems_settings {
  std::int64_t cooldown_seconds = 300;        // out of service after a modem fault
  std::int64_t command_timeout_seconds = 5;   // each AT command's answer
  std::int64_t connect_timeout_seconds = 60;  // ATD to CONNECT
  std::int64_t guard_time_ms = 1000;          // silence around the "+++" escape
};

// One modem of the pool: a [[modem]] table. Exactly one of device and gateway is set.
struct modem_settings {
  std::string name;          // unique; shown in service-status and the logs
  std::string device;        // serial device path ("/dev/ttyUSB0")
  std::int64_t baud = 9600;  // serial device only: the port's speed
  std::string gateway;       // TCP serial gateway "host:port"
  std::vector<std::string> init; // init strings, each must answer OK ("ATE0", "AT+CBST=7,0,1")
  std::string dial_prefix;   // put before every number ("9,")
  // Serial device only: carry the call's character format in software (a GSM modem that moves
  // 8 data bits transparently) instead of setting it on the port. A gateway always does.
  bool software_parity = false;
  bool operator==(const modem_settings& o) const {
    return name == o.name && device == o.device && baud == o.baud && gateway == o.gateway && init == o.init &&
           dial_prefix == o.dial_prefix && software_parity == o.software_parity;
  }
  bool operator!=(const modem_settings& o) const { return !(*this == o); }
};

// A head's side of a cluster: where collectors connect, the TLS files of the cluster, the
// collectors it accepts (docs/operations.md, "Collectors").
struct cluster_settings {
  std::int64_t port = 0;          // 0: no cluster (the single-machine install)
  std::string address = "0.0.0.0";
  std::string ca_file;            // the cluster's CA (mts cluster ca)
  std::string certificate_file;   // this node's certificate and key (mts cluster node-cert)
  std::string key_file;
  std::int64_t heartbeat_seconds = 2;
  std::int64_t missed_heartbeats = 3; // the head drops a collector silent this many heartbeats
  // The collectors accepted: "name=SHA-256 of its secret in hex", comma-separated.
  std::string collectors;
  // Head: whether it also runs tests itself (its own [[modem]] tables and
  // scheduler.max_tcp_sessions) next to its collectors; false leaves all tests to them.
  bool head_runs_tests = true;
};

// A collector node's own settings (`mts collector`).
struct collector_settings {
  std::string name;          // as the head's cluster.collectors names it
  std::string secret_file;   // the file holding its secret (mts cluster secret), mode 0600
  std::string head;          // host:port of the head's cluster.port
  std::int64_t max_tcp_sessions = 100; // TCP meter sessions it offers the head
  std::int64_t reconnect_max_seconds = 30; // longest pause between two tries to reach the head
  // What it reaches (common/reach.hpp), comma-separated; empty: everything.
  std::string reach_networks; // IP networks of TCP meters
  std::string reach_prefixes; // telephone-number prefixes its modems dial
};

// A cluster node's name (a certificate's CN, a collector's name): 1-64 of [A-Za-z0-9._-], not
// starting with '-' or '.'.
bool is_node_name(const std::string& name);

// A collector the head accepts: its name and the SHA-256 of its secret (32 bytes).
struct accepted_collector {
  std::string name;
  std::string secret_sha256;
};
// cluster.collectors parsed; an error names the first bad entry (the settings checked it).
std::vector<accepted_collector> accepted_collectors(const std::string& text, std::string* error = nullptr);

struct api_settings {
  bool mask_passwords = false;
};

struct log_settings {
  std::string level = "info"; // trace, debug, info, warn, error, critical, off
};

struct settings {
  http_settings http;
  edge_settings edge;
  tls_settings tls;
  storage_settings storage;
  rate_limit_settings rate_limit;
  limits_settings limits;
  scheduler_settings scheduler;
  modems_settings modems;
  std::vector<modem_settings> modem; // the [[modem]] tables, in file order
  api_settings api;
  cluster_settings cluster;
  collector_settings collector;
  // The meter types: the built-in ones, changed and added to by the [[meter_type]] tables, in
  // that order. Every definition lists every key of its driver (defaults filled in).
  std::vector<meter_type_definition> meter_types = builtin_meter_types();
  log_settings log;
};

// A configuration problem; what() names the key (and the file) it is about.
struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Loads the embedded defaults, then the TOML file (if given), then the overrides, each of the
// form "section.key=value" (the leading "--" already removed). Unknown keys, values of the
// wrong type or out of range, and a missing or malformed file throw config_error.
settings load_settings(const std::optional<std::string>& file,
                       const std::vector<std::string>& overrides);

// The effective value of one key as text (for `mts config get KEY`); throws config_error for
// an unknown key. A meter type's key is "meter_type.<name>.<key>".
std::string setting_value(const settings& s, const std::string& key);

// One configuration key as documented: for `mts config list`, and for the tests that keep the
// example file and docs/configuration.md in step with the key table.
struct setting_description {
  std::string key;           // "section.key"
  std::string type;          // "string", "integer" or "boolean"
  std::string default_value; // as setting_value() prints it
  std::string range;         // the allowed values, e.g. "1..65535"
  std::string doc;           // one line
};
// Every key, in the order of the sections and members above.
std::vector<setting_description> describe_settings();

// ---- reloading while running (SIGHUP) ----

// One difference between the running configuration and a newly loaded one.
struct setting_change {
  std::string key;       // "scheduler.max_concurrent_tests", "meter_type.A1700-BST", "modem"
  std::string old_value; // "(none)" for a meter type that is added
  std::string new_value; // "(none)" for a meter type that is removed
  bool live = false;     // applied while running; false: ignored until a restart
};
// What changes from `running` to `next`, in key order (sections, then meter types, then the
// modems). Live: rate_limit.*, limits.*, scheduler.*, modems.*, api.*, log.*, the retention keys
// storage.retain_completed_days, storage.retain_transcripts_days, storage.purge_interval_seconds
// and storage.maintenance_step_rows, the [[modem]] tables (a modem in a call takes its change
// when the call ends) and the meter types. Everything else (http.*, edge.*, tls.*, the other
// storage.* keys) needs a restart.
std::vector<setting_change> compare_settings(const settings& running, const settings& next);
// Whether a key of describe_settings() can change while the server runs.
bool is_reloadable(const std::string& key);
// The configuration in force after a reload: the live parts of `next`, the rest of `running`.
settings reloaded_settings(const settings& running, const settings& next);

// The [[modem]] keys as documented (for the tests that keep the docs in step).
std::vector<setting_description> describe_modem_keys();

// The serial speeds a [[modem]] baud may take.
const std::vector<std::int64_t>& serial_speeds();

// "HH:MM-HH:MM" -> start and end as seconds of the day; nullopt when malformed.
struct daily_window {
  int start_second = 0;
  int end_second = 0;
  // Whether a second of the day lies inside [start, end), wrapping midnight when end < start.
  // start == end means the window is empty.
  bool contains(int second_of_day) const;
};
std::optional<daily_window> parse_daily_window(const std::string& text);

} // namespace mts

#include "config/settings.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#ifndef MTS_SOURCE_DIR
#define MTS_SOURCE_DIR "."
#endif

namespace {

using mts::config_error;
using mts::load_settings;
using mts::settings;

const std::string example_file = std::string(MTS_SOURCE_DIR) + "/config/mts.example.toml";
const std::string docs_file = std::string(MTS_SOURCE_DIR) + "/docs/configuration.md";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A configuration file with the given content, removed again at the end of the test.
struct temp_config {
  std::string path;
  explicit temp_config(const std::string& content) {
    char name[] = "/tmp/mts_config_test_XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::close(fd);
  }
  ~temp_config() { std::remove(path.c_str()); }
  temp_config(const temp_config&) = delete;
  temp_config& operator=(const temp_config&) = delete;
};

// Every field, compared one by one.
bool same(const settings& a, const settings& b) {
  return a.http.address == b.http.address && a.http.port == b.http.port &&
         a.http.prefix == b.http.prefix && a.http.threads == b.http.threads &&
         a.http.max_body_bytes == b.http.max_body_bytes &&
         a.http.read_timeout_seconds == b.http.read_timeout_seconds &&
         a.http.write_timeout_seconds == b.http.write_timeout_seconds &&
         a.http.keep_alive_timeout_seconds == b.http.keep_alive_timeout_seconds &&
         a.http.keep_alive_max_requests == b.http.keep_alive_max_requests &&
         a.http.listen_backlog == b.http.listen_backlog &&
         a.http.actor_timeout_seconds == b.http.actor_timeout_seconds &&
         a.tls.cert_file == b.tls.cert_file && a.tls.key_file == b.tls.key_file &&
         a.storage.path == b.storage.path &&
         a.storage.busy_timeout_ms == b.storage.busy_timeout_ms &&
         a.storage.reader_count == b.storage.reader_count &&
         a.storage.startup_check == b.storage.startup_check &&
         a.storage.retain_completed_days == b.storage.retain_completed_days &&
         a.storage.retain_transcripts_days == b.storage.retain_transcripts_days &&
         a.storage.purge_interval_seconds == b.storage.purge_interval_seconds &&
         a.storage.maintenance_step_rows == b.storage.maintenance_step_rows &&
         a.rate_limit.requests == b.rate_limit.requests &&
         a.rate_limit.window_seconds == b.rate_limit.window_seconds &&
         a.limits.max_batch_size == b.limits.max_batch_size &&
         a.limits.max_survey_days == b.limits.max_survey_days &&
         a.limits.max_search_days == b.limits.max_search_days &&
         a.limits.max_search_limit == b.limits.max_search_limit &&
         a.limits.default_search_limit == b.limits.default_search_limit &&
         a.scheduler.overnight_window == b.scheduler.overnight_window &&
         a.scheduler.max_concurrent_tests == b.scheduler.max_concurrent_tests &&
         a.scheduler.test_deadline_seconds == b.scheduler.test_deadline_seconds &&
         a.api.mask_passwords == b.api.mask_passwords && a.log.level == b.log.level &&
         a.meter_types == b.meter_types;
}

// The message of the config_error that loading throws ("" when it loads).
std::string load_error(const std::optional<std::string>& file,
                       const std::vector<std::string>& overrides) {
  try {
    load_settings(file, overrides);
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

std::string override_error(const std::string& override_text) {
  return load_error(std::nullopt, {override_text});
}

std::string file_error(const std::string& content) {
  temp_config f(content);
  std::string message = load_error(f.path, {});
  // Every file problem starts with the file's name.
  if (!message.empty()) CHECK(message.rfind(f.path + ":", 0) == 0);
  return message;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("config: defaults without a file or overrides", "[config]") {
  CHECK(same(load_settings(std::nullopt, {}), settings{}));
}

TEST_CASE("config: the example file loads to exactly the defaults", "[config]") {
  settings s = load_settings(example_file, {});
  CHECK(same(s, settings{}));
  for (const auto& d : mts::describe_settings())
    CHECK(mts::setting_value(s, d.key) == d.default_value);
}

TEST_CASE("config: the example file and the docs mention every key", "[config]") {
  std::string example = read_text(example_file);
  std::string docs = read_text(docs_file);
  for (const auto& d : mts::describe_settings()) {
    INFO(d.key);
    std::string section = d.key.substr(0, d.key.find('.'));
    std::string name = d.key.substr(d.key.find('.') + 1);
    CHECK(has(example, "[" + section + "]"));
    CHECK(has(example, "\n" + name + " = "));
    CHECK(has(docs, "`" + d.key + "`"));
  }
}

TEST_CASE("config: the example file and the docs describe every meter type key, once per driver", "[config][meter_type]") {
  std::string example = read_text(example_file);
  std::string docs = read_text(docs_file);
  // The built-in types are the example's [[meter_type]] tables, every key at its default.
  CHECK(load_settings(example_file, {}).meter_types == mts::builtin_meter_types());
  for (const auto& d : mts::builtin_meter_types())
    CHECK(has(example, "\nname = \"" + d.name + "\"\ndriver = \"" + d.driver + "\"\n"));
  for (const char* common : {"name", "driver"})
    CHECK(has(docs, "| `" + std::string(common) + "` |"));
  for (const auto& k : mts::line_keys()) {
    INFO(k.key);
    CHECK(has(docs, "| `" + k.key + "` |"));
    CHECK(has(example, "\n" + k.key + " = "));
  }
  for (const auto& driver : mts::driver_names()) {
    INFO(driver);
    CHECK(has(docs, "`" + driver + "`"));
    for (const auto& k : *mts::driver_keys(driver)) {
      INFO(k.key);
      CHECK(has(docs, "| `" + k.key + "` |"));
      CHECK((has(example, "\n" + k.key + " = " + mts::driver_value_text(k.default_value)) ||
             has(example, "\n" + k.key + " = \"" + mts::driver_value_text(k.default_value) + "\"")));
    }
  }
}

TEST_CASE("config: the key table", "[config]") {
  auto keys = mts::describe_settings();
  CHECK(keys.size() == 72); // 56, then [cluster] (9) and [collector] (7)
  for (const auto& d : keys) {
    INFO(d.key);
    CHECK(d.key.find('.') != std::string::npos);
    CHECK((d.type == "string" || d.type == "integer" || d.type == "boolean"));
    CHECK(!d.range.empty());
    CHECK(!d.doc.empty());
  }
  CHECK(keys.front().key == "http.address");
  CHECK(keys.back().key == "collector.reach_prefixes");
}

TEST_CASE("config: the file sets values and overrides beat it", "[config]") {
  temp_config f("[http]\nport = 9000\nprefix = \"/api/v1\"\n"
                "[api]\nmask_passwords = true\n"
                "[log]\nlevel = \"debug\"\n");
  settings s = load_settings(f.path, {});
  CHECK(s.http.port == 9000);
  CHECK(s.http.prefix == "/api/v1");
  CHECK(s.api.mask_passwords);
  CHECK(s.log.level == "debug");
  CHECK(s.http.threads == settings{}.http.threads);

  s = load_settings(f.path, {"http.port=9100", "api.mask_passwords=false", "http.prefix=",
                             "log.level=warn", "log.level=error"});
  CHECK(s.http.port == 9100);
  CHECK(!s.api.mask_passwords);
  CHECK(s.http.prefix.empty());
  CHECK(s.log.level == "error"); // the last override wins
  CHECK(load_settings(std::nullopt, {"tls.cert_file=a=b.pem", "tls.key_file=k.pem"})
            .tls.cert_file == "a=b.pem"); // split at the first '='
}

TEST_CASE("config: unknown keys", "[config]") {
  CHECK(has(file_error("[http]\nport = 9000\nbogus = 1\n"), ":3: http.bogus: unknown"));
  CHECK(has(file_error("\n[nosuch]\nport = 1\n"), ":2: nosuch: unknown configuration section"));
  CHECK(has(file_error("port = 1\n"), ":1: port: key outside a [section] table"));
  CHECK(has(file_error("[http]\n[http.extra]\nx = 1\n"), ":2: http.extra: unknown"));
  CHECK(has(file_error("[[http]]\nport = 1\n"), "http: key outside a [section] table"));
  // The first problem in file order is reported.
  CHECK(has(file_error("[log]\nzzz = 1\n[api]\naaa = 1\n"), ":2: log.zzz: unknown"));

  CHECK(override_error("http.bogus=1") == "unknown configuration key \"http.bogus\"");
  CHECK(override_error("nosuch.port=1") == "unknown configuration key \"nosuch.port\"");
  std::string long_key(500, 'k');
  std::string message = override_error(long_key + "=1");
  CHECK(has(message, "unknown configuration key \"" + std::string(64, 'k')));
  CHECK(!has(message, std::string(65, 'k')));
  CHECK(has(override_error("http.port"), "\"http.port\""));
  CHECK(has(override_error("http.port"), "section.key=value"));
  CHECK_THROWS_AS(mts::setting_value(settings{}, "http.bogus"), config_error);
}

TEST_CASE("config: values of the wrong type", "[config]") {
  CHECK(has(file_error("[http]\n\nport = \"8443\"\n"),
            ":3: http.port: expected an integer, got a string"));
  CHECK(has(file_error("[http]\nthreads = 1.5\n"), ":2: http.threads: expected an integer"));
  CHECK(has(file_error("[api]\nmask_passwords = 1\n"),
            ":2: api.mask_passwords: expected a boolean, got an integer"));
  CHECK(has(file_error("[log]\nlevel = true\n"), ":2: log.level: expected a string"));
  CHECK(has(file_error("[log]\nlevel = [\"info\"]\n"), ":2: log.level: expected a string, got an array"));
  CHECK(has(file_error("[http]\nport = { a = 1 }\n"), ":2: http.port: expected an integer, got a table"));

  CHECK(has(override_error("http.port=abc"), "http.port: \"abc\" is not a decimal integer"));
  CHECK(has(override_error("http.threads=12x"), "http.threads:"));
  CHECK(has(override_error("http.threads="), "http.threads:"));
  CHECK(has(override_error("http.threads=0x10"), "http.threads:"));
  CHECK(has(override_error("http.threads=99999999999999999999999"), "http.threads:"));
  CHECK(has(override_error("api.mask_passwords=yes"), "api.mask_passwords: \"yes\" is not true or false"));
  CHECK(has(override_error("api.mask_passwords=True"), "api.mask_passwords:"));
}

TEST_CASE("config: malformed and missing files", "[config]") {
  std::string message = file_error("[http]\nport = = 1\n");
  CHECK(has(message, ":2:"));
  message = load_error(std::string("/nonexistent/mts.toml"), {});
  CHECK(message == "cannot read configuration file /nonexistent/mts.toml: No such file or directory");
  message = load_error(std::string("/tmp"), {});
  CHECK(has(message, "cannot read configuration file /tmp: "));
}

TEST_CASE("config: every integer range error names the key and the range", "[config]") {
  for (const auto& d : mts::describe_settings()) {
    if (d.type != "integer") continue;
    auto dots = d.range.find("..");
    REQUIRE(dots != std::string::npos);
    std::string max_text = d.range.substr(dots + 2);
    if (max_text.find_first_not_of("0123456789") != std::string::npos) continue; // dynamic
    long long min = std::stoll(d.range.substr(0, dots));
    long long max = std::stoll(max_text);
    INFO(d.key);
    for (long long bad : {min - 1, max + 1}) {
      std::string message = override_error(d.key + "=" + std::to_string(bad));
      CHECK(has(message, d.key + ": "));
      CHECK(has(message, d.range));
    }
    // The bounds themselves are allowed (a small default_search_limit keeps
    // limits.max_search_limit=1 valid, and the edge's related keys are moved out of the way
    // of each other's bounds; the key under test comes last and wins).
    for (long long good : {min, max})
      CHECK(load_error(std::nullopt, {"limits.default_search_limit=1", "edge.max_connections_per_address=1",
                                      "edge.max_header_line_bytes=1024", "edge.max_header_bytes=1048576",
                                      d.key + "=" + std::to_string(good)})
                .empty());
  }
  // A few spelled out.
  CHECK(has(override_error("http.port=0"), "http.port: 0 is out of range 1..65535"));
  CHECK(has(override_error("http.port=70000"), "http.port: 70000 is out of range 1..65535"));
  CHECK(has(override_error("http.max_body_bytes=63"), "http.max_body_bytes: 63 is out of range 64..67108864"));
  CHECK(has(override_error("scheduler.test_deadline_seconds=9"), "10..86400"));
  // The file's line is named for a value from the file.
  CHECK(has(file_error("[storage]\n\nreader_count = 65\n"),
            ":3: storage.reader_count: 65 is out of range 1..64"));
  CHECK(has(file_error("[http]\nport = 70000\n"), ":2: http.port: 70000 is out of range 1..65535"));
}

TEST_CASE("config: the retention keys, and that they change on SIGHUP", "[config][retention]") {
  auto s = load_settings(std::nullopt, {});
  CHECK(s.storage.retain_completed_days == 400);
  CHECK(s.storage.retain_transcripts_days == 30);
  CHECK(s.storage.purge_interval_seconds == 3600);
  CHECK(s.storage.maintenance_step_rows == 100);
  // 0 keeps forever; a transcript retention longer than the tests' is allowed (a transcript
  // goes with its test in any case).
  CHECK(load_error(std::nullopt, {"storage.retain_completed_days=0", "storage.retain_transcripts_days=0"}).empty());
  CHECK(load_error(std::nullopt, {"storage.retain_completed_days=7"}).empty());
  CHECK(has(override_error("storage.retain_completed_days=-1"), "storage.retain_completed_days: -1 is out of range 0..36500"));
  CHECK(has(override_error("storage.maintenance_step_rows=0"), "storage.maintenance_step_rows: 0 is out of range 1..100000"));
  auto next = s;
  next.storage.retain_completed_days = 30;
  next.storage.retain_transcripts_days = 7;
  next.storage.purge_interval_seconds = 60;
  next.storage.maintenance_step_rows = 50;
  next.storage.reader_count = 8; // takes a restart
  std::vector<std::string> live, fixed;
  for (const auto& c : mts::compare_settings(s, next))
    (c.live ? live : fixed).push_back(c.key);
  CHECK(live == std::vector<std::string>{"storage.retain_completed_days", "storage.retain_transcripts_days",
                                         "storage.purge_interval_seconds", "storage.maintenance_step_rows"});
  CHECK(fixed == std::vector<std::string>{"storage.reader_count"});
  auto in_force = mts::reloaded_settings(s, next);
  CHECK(in_force.storage.retain_completed_days == 30);
  CHECK(in_force.storage.retain_transcripts_days == 7);
  CHECK(in_force.storage.purge_interval_seconds == 60);
  CHECK(in_force.storage.maintenance_step_rows == 50);
  CHECK(in_force.storage.reader_count == 2);
}

TEST_CASE("config: default_search_limit is bounded by max_search_limit", "[config]") {
  std::string message = override_error("limits.default_search_limit=1001");
  CHECK(has(message, "limits.default_search_limit: 1001 is out of range 1..limits.max_search_limit"));
  CHECK(has(override_error("limits.default_search_limit=0"), "limits.default_search_limit:"));
  CHECK(load_error(std::nullopt, {"limits.max_search_limit=50", "limits.default_search_limit=50"})
            .empty());
  CHECK(has(load_error(std::nullopt, {"limits.max_search_limit=50"}),
            "limits.default_search_limit: 100 is out of range"));
}

TEST_CASE("config: string rules", "[config]") {
  for (const char* good : {"", "/MTS", "/a/b-c_d.e", "/x1"})
    CHECK(override_error(std::string("http.prefix=") + good).empty());
  for (const char* bad : {"/", "MTS", "/MTS/", "/a//b", "/a b", "/a?b", "/ä"}) {
    INFO(bad);
    CHECK(has(override_error(std::string("http.prefix=") + bad), "http.prefix: must be empty"));
  }
  CHECK(has(override_error("storage.path="), "storage.path: must not be empty"));
  CHECK(has(override_error("http.address="), "http.address: must not be empty"));
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"})
    CHECK(override_error(std::string("log.level=") + level).empty());
  CHECK(has(override_error("log.level=verbose"),
            "log.level: must be one of trace, debug, info, warn, error, critical, off"));
  CHECK(has(override_error("log.level=INFO"), "log.level:"));
  for (const char* check : {"integrity", "quick", "none"})
    CHECK(override_error(std::string("storage.startup_check=") + check).empty());
  CHECK(has(override_error("storage.startup_check=full"),
            "storage.startup_check: must be one of integrity, quick, none"));
}

TEST_CASE("config: tls certificate and key are set both or neither", "[config]") {
  CHECK(load_error(std::nullopt, {}).empty());
  CHECK(load_error(std::nullopt, {"tls.cert_file=c.pem", "tls.key_file=k.pem"}).empty());
  CHECK(has(override_error("tls.cert_file=c.pem"), "tls.key_file: must be set when tls.cert_file is set"));
  CHECK(has(override_error("tls.key_file=k.pem"), "tls.cert_file: must be set when tls.key_file is set"));
}

TEST_CASE("config: overnight window", "[config]") {
  auto w = mts::parse_daily_window("22:00-06:00");
  REQUIRE(w);
  CHECK(w->start_second == 22 * 3600);
  CHECK(w->end_second == 6 * 3600);
  CHECK(w->contains(23 * 3600));
  CHECK(w->contains(22 * 3600));
  CHECK(w->contains(0));
  CHECK(w->contains(5 * 3600 + 59 * 60));
  CHECK(w->contains(6 * 3600 - 1));
  CHECK(!w->contains(6 * 3600));
  CHECK(!w->contains(21 * 3600 + 59 * 60));
  CHECK(!w->contains(12 * 3600));

  auto day = mts::parse_daily_window("00:00-06:00");
  REQUIRE(day);
  CHECK(day->contains(0));
  CHECK(day->contains(6 * 3600 - 1));
  CHECK(!day->contains(6 * 3600));
  CHECK(!day->contains(86399));

  auto late = mts::parse_daily_window("23:59-00:00");
  REQUIRE(late);
  CHECK(late->contains(86399));
  CHECK(!late->contains(0));

  auto empty = mts::parse_daily_window("05:00-05:00");
  REQUIRE(empty);
  CHECK(!empty->contains(5 * 3600));
  CHECK(!empty->contains(0));

  for (const char* bad : {"", "22:00", "22:00-6:00", "24:00-06:00", "22:60-06:00", "22:00-06:0x",
                          "22:00 06:00", "22:00-06:00 ", "2200-0600xx", "-1:00-06:00"}) {
    INFO(bad);
    CHECK(!mts::parse_daily_window(bad));
  }

  CHECK(load_error(std::nullopt, {"scheduler.overnight_window=22:00-06:00"}).empty());
  CHECK(has(override_error("scheduler.overnight_window=22:00"),
            "scheduler.overnight_window: must be HH:MM-HH:MM"));
  CHECK(has(override_error("scheduler.overnight_window=05:00-05:00"),
            "scheduler.overnight_window: start and end are equal"));
}

TEST_CASE("config: setting_value", "[config]") {
  settings s;
  CHECK(mts::setting_value(s, "http.port") == "8444");
  CHECK(mts::setting_value(s, "edge.port") == "8443");
  CHECK(mts::setting_value(s, "edge.enabled") == "true");
  CHECK(mts::setting_value(s, "http.prefix") == "/MTS");
  CHECK(mts::setting_value(s, "tls.cert_file").empty());
  CHECK(mts::setting_value(s, "api.mask_passwords") == "false");
  CHECK(mts::setting_value(s, "http.max_body_bytes") == "1048576");
  CHECK(mts::setting_value(s, "scheduler.overnight_window") == "00:00-06:00");
  s = load_settings(std::nullopt, {"api.mask_passwords=true", "storage.busy_timeout_ms=0",
                                   "storage.path=/var/lib/mts/db.sqlite"});
  CHECK(mts::setting_value(s, "api.mask_passwords") == "true");
  CHECK(mts::setting_value(s, "storage.busy_timeout_ms") == "0");
  CHECK(mts::setting_value(s, "storage.path") == "/var/lib/mts/db.sqlite");
}

TEST_CASE("config: scheduler.transcript_max_bytes, 0 turns transcripts off", "[config]") {
  CHECK(mts::load_settings(std::nullopt, {}).scheduler.transcript_max_bytes == 16384);
  CHECK(mts::load_settings(std::nullopt, {"scheduler.transcript_max_bytes=0"}).scheduler.transcript_max_bytes == 0);
  CHECK(mts::load_settings(std::nullopt, {"scheduler.transcript_max_bytes=1048576"}).scheduler.transcript_max_bytes ==
        1048576);
  CHECK_THROWS_WITH(mts::load_settings(std::nullopt, {"scheduler.transcript_max_bytes=1048577"}),
                    Catch::Contains("scheduler.transcript_max_bytes"));
  CHECK_THROWS_WITH(mts::load_settings(std::nullopt, {"scheduler.transcript_max_bytes=-1"}),
                    Catch::Contains("scheduler.transcript_max_bytes"));
}

TEST_CASE("config: [[modem]] tables", "[config][modem]") {
  temp_config f("[modems]\ncooldown_seconds = 7\n"
                "[[modem]]\nname = \"gsm1\"\ndevice = \"/dev/ttyUSB0\"\nbaud = 19200\nsoftware_parity = true\n"
                "init = [\"ATE0\", \"AT+CBST=7,0,1\"]\n"
                "[[modem]]\nname = \"gw\"\ngateway = \"127.0.0.1:4001\"\ndial_prefix = \"9,\"\n");
  settings s = load_settings(f.path, {});
  CHECK(s.modems.cooldown_seconds == 7);
  REQUIRE(s.modem.size() == 2);
  CHECK(s.modem[0].name == "gsm1");
  CHECK(s.modem[0].device == "/dev/ttyUSB0");
  CHECK(s.modem[0].baud == 19200);
  CHECK(s.modem[0].software_parity);
  CHECK(s.modem[0].init == std::vector<std::string>{"ATE0", "AT+CBST=7,0,1"});
  CHECK(s.modem[1].gateway == "127.0.0.1:4001");
  CHECK(s.modem[1].dial_prefix == "9,");
  CHECK(s.modem[1].baud == 9600);

  CHECK(has(file_error("[[modem]]\nname = \"a\"\n"), "modem[0].device, gateway: set exactly one"));
  CHECK(has(file_error("[[modem]]\nname = \"a\"\ndevice = \"/dev/x\"\ngateway = \"h:1\"\n"), "set exactly one"));
  CHECK(has(file_error("[[modem]]\ndevice = \"/dev/x\"\n"), "modem[0].name: required"));
  CHECK(has(file_error("[[modem]]\nname = \"a\"\ngateway = \"nohost\"\n"), "modem[0].gateway: must be host:port"));
  CHECK(has(file_error("[[modem]]\nname = \"a\"\ndevice = \"/d\"\nbaud = 1234\n"), "modem[0].baud: must be one of"));
  CHECK(has(file_error("[[modem]]\nname = \"a\"\ndevice = \"/d\"\nspeed = 1\n"), ":4: modem[0].speed: unknown modem key"));
  CHECK(has(file_error("[[modem]]\nname = \"a\"\ndevice = \"/d\"\ninit = \"ATE0\"\n"), "init: expected an array of strings"));
  CHECK(has(file_error("[[modem]]\nname = \"a\"\ndevice = \"/d\"\n[[modem]]\nname = \"a\"\ndevice = \"/e\"\n"),
            "modem[1].name: \"a\" is used by another modem"));
  CHECK(has(file_error("[modem]\nname = \"a\"\n"), "modem: must be [[modem]] tables"));
}

TEST_CASE("config: the docs describe every [[modem]] key", "[config][modem]") {
  std::string docs = read_text(docs_file);
  std::string example = read_text(example_file);
  for (const auto& d : mts::describe_modem_keys()) {
    INFO(d.key);
    CHECK(has(docs, "| `" + d.key + "` |"));
    CHECK(has(example, "# " + d.key + " = "));
  }
}

TEST_CASE("config: the edge and trusted proxies", "[config]") {
  CHECK(load_error(std::nullopt, {"http.trusted_proxies=10.0.0.1, 192.0.2.0/24, ::1, fd00::/8"}).empty());
  CHECK(has(override_error("http.trusted_proxies=10.0.0.1, nope"),
            "http.trusted_proxies: \"nope\" is not an IPv4 or IPv6 address or network"));
  CHECK(has(override_error("http.trusted_proxies=10.0.0.0/33"),
            "http.trusted_proxies: \"10.0.0.0/33\" has a prefix length that is not 0..32"));
  // Behind the edge the server's own listener stays on loopback; without it, anything goes.
  CHECK(has(override_error("http.address=0.0.0.0"), "http.address: must be a loopback address"));
  CHECK(load_error(std::nullopt, {"http.address=0.0.0.0", "edge.enabled=false"}).empty());
  CHECK(load_error(std::nullopt, {"http.address=127.0.0.2"}).empty());
  CHECK(has(override_error("edge.internal_port=8444"), "edge.internal_port: must differ from edge.port and http.port"));
  CHECK(has(override_error("edge.max_connections_per_address=7000"),
            "edge.max_connections_per_address: 7000 is out of range 1..edge.max_connections (6144)"));
  CHECK(has(override_error("edge.max_header_bytes=4096"),
            "edge.max_header_bytes: 4096 is smaller than edge.max_header_line_bytes (8192)"));
  CHECK(has(override_error("edge.header_timeout_seconds=0"), "edge.header_timeout_seconds"));
}

TEST_CASE("config: [[meter_type]] tables add types and change built-in ones", "[config][meter_type]") {
  temp_config f("[log]\nlevel = \"warn\"\n"
                "[[meter_type]]\nname = \"A1700-BST\"\ndriver = \"elster-a1700\"\nclock_utc_offset_minutes = 60\n"
                "[[meter_type]]\nname = \"IEC62056-21\"\ndriver = \"iec62056-21\"\nresponse_timeout_ms = 800\n"
                "[[meter_type]]\nname = \"IEC-GSM\"\ndriver = \"iec62056-21\"\nchar_format = \"8N1\"\ninitial_baud = 9600\n");
  settings s = load_settings(f.path, {});
  std::vector<std::string> names;
  for (const auto& t : s.meter_types)
    names.push_back(t.name);
  // The built-in ones first (one of them changed), then the added ones in file order.
  CHECK(names == std::vector<std::string>{"ELSTERA1700", "ELSTERA1140", "IEC62056-21", "DLMS", "DLMS-SN", "A1700-BST", "IEC-GSM"});
  const mts::meter_type_registry types(s.meter_types);
  CHECK(types.find("A1700-BST")->integer("clock_utc_offset_minutes") == 60);
  CHECK(types.find("A1700-BST")->integer("reaction_delay_ms") == 200); // the driver's default
  CHECK(types.find("IEC62056-21")->integer("response_timeout_ms") == 800);
  CHECK(types.find("IEC62056-21")->integer("max_baud") == 9600);
  CHECK(types.find("IEC-GSM")->initial_line == mts::drivers::line_settings{9600, 8, 'N', 1});
  CHECK(types.find("ELSTERA1700")->integer("clock_utc_offset_minutes") == 0);
  CHECK(mts::setting_value(s, "meter_type.A1700-BST.clock_utc_offset_minutes") == "60");
  CHECK(mts::setting_value(s, "meter_type.IEC-GSM.char_format") == "8N1");
  CHECK_THROWS_AS(mts::setting_value(s, "meter_type.NOPE.max_baud"), config_error);

  // Overrides: meter_type.<name>.<key>, the last '.' splits name and key.
  s = load_settings(f.path, {"meter_type.A1700-BST.clock_utc_offset_minutes=-30", "meter_type.ELSTERA1140.option_mode=1"});
  CHECK(mts::setting_value(s, "meter_type.A1700-BST.clock_utc_offset_minutes") == "-30");
  CHECK(mts::setting_value(s, "meter_type.ELSTERA1140.option_mode") == "1");
  CHECK(has(override_error("meter_type.ELSTERA1700.clock_utc_offset_minutes=901"),
            "meter_type.ELSTERA1700.clock_utc_offset_minutes: 901 is out of range -900..900 (command-line override)"));
  CHECK(has(override_error("meter_type.ELSTERA1700.security_level=high"), "is not a decimal integer"));
  CHECK(has(override_error("meter_type.ELSTERA1700.max_baud=1200"), "not a key of driver elster-a1700"));
  CHECK(has(override_error("meter_type.A1700-BST.max_repeats=1"), "unknown configuration key \"meter_type.A1700-BST.max_repeats\""));
  CHECK(has(override_error("meter_type.max_repeats=1"), "unknown configuration key"));
}

TEST_CASE("config: a dlms [[meter_type]] takes the dlms line defaults (9600 8N1)", "[config][meter_type]") {
  temp_config f("[[meter_type]]\nname = \"D2\"\ndriver = \"dlms\"\nreferencing = \"sn\"\n"
                "[[meter_type]]\nname = \"D3\"\ndriver = \"dlms\"\nchar_format = \"7E1\"\n");
  const mts::meter_type_registry types(load_settings(f.path, {}).meter_types);
  CHECK(types.find("D2")->initial_line == mts::drivers::line_settings{9600, 8, 'N', 1});
  CHECK(types.find("D3")->initial_line == mts::drivers::line_settings{9600, 7, 'E', 1});
  CHECK(types.find("DLMS")->initial_line == mts::drivers::line_settings{9600, 8, 'N', 1});
  CHECK(mts::dlms_config_of(*types.find("D2")).referencing == mts::drivers::dlms_referencing::sn);
}

TEST_CASE("config: bad [[meter_type]] tables name the table, the key and the line", "[config][meter_type]") {
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\ndriver = \"modbus\"\n"),
            ":3: meter_type[0].driver: unknown driver \"modbus\" (known: iec62056-21, elster-a1700, elster-a1140, dlms)"));
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\ndriver = \"dlms\"\nregister_obis = \"1.0.1.8.0\"\n"),
            ":4: meter_type[0].register_obis: must be OBIS codes separated by commas"));
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\ndriver = \"elster-a1700\"\n\nfast_reaction_delay_ms = 5\n"),
            ":5: meter_type[0].fast_reaction_delay_ms: not a key of driver elster-a1700 (its keys: initial_baud, char_format, option_mode"));
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\ndriver = \"elster-a1700\"\n[[meter_type]]\nname = \"Y\"\n"
                       "driver = \"elster-a1140\"\nclock_utc_offset_minutes = 1000\n"),
            ":7: meter_type[1].clock_utc_offset_minutes: 1000 is out of range -900..900"));
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\ndriver = \"iec62056-21\"\nmax_baud = \"fast\"\n"),
            ":4: meter_type[0].max_baud: expected an integer, got a string"));
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\ndriver = \"elster-a1700\"\noption_mode = 6\n"),
            ":4: meter_type[0].option_mode: expected a string, got an integer"));
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\ndriver = \"iec62056-21\"\nchar_format = \"7E3\"\n"),
            ":4: meter_type[0].char_format: must be"));
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\ndriver = \"iec62056-21\"\n[[meter_type]]\nname = \"X\"\ndriver = \"elster-a1700\"\n"),
            ":5: meter_type[1].name: \"X\" is defined by another [[meter_type]] table"));
  CHECK(has(file_error("[[meter_type]]\ndriver = \"iec62056-21\"\n"), "meter_type[0].name: required"));
  CHECK(has(file_error("[[meter_type]]\nname = \"X\"\n"), "meter_type[0].driver: required"));
  CHECK(has(file_error("[[meter_type]]\nname = \"\"\ndriver = \"iec62056-21\"\n"), "meter_type[0].name: must not be empty"));
  CHECK(has(file_error("[meter_type]\nname = \"X\"\n"), "meter_type: must be [[meter_type]] tables"));
}

TEST_CASE("config: the replaced per-type sections name what replaces them", "[config][meter_type]") {
  CHECK(has(file_error("[log]\nlevel = \"info\"\n[elster_a1700]\nreaction_delay_ms = 20\n"),
            ":3: elster_a1700: this section was replaced by [[meter_type]] tables; set its keys in the "
            "[[meter_type]] table with name = \"ELSTERA1700\""));
  CHECK(has(file_error("[elster_a1140]\n"), "name = \"ELSTERA1140\""));
  CHECK(has(file_error("[iec62056_21]\nmax_baud = 4800\n"), "name = \"IEC62056-21\""));
  CHECK(has(override_error("elster_a1700.reaction_delay_ms=20"),
            "configuration key \"elster_a1700.reaction_delay_ms\" was replaced: write "
            "meter_type.ELSTERA1700.reaction_delay_ms=VALUE"));
  CHECK(has(override_error("iec62056_21.max_baud=4800"), "meter_type.IEC62056-21.max_baud=VALUE"));
}

TEST_CASE("config: what a reload changes, applies and ignores", "[config][reload]") {
  const settings running = load_settings(std::nullopt, {});
  temp_config f("[scheduler]\nmax_concurrent_tests = 4\n[edge]\nport = 9443\n[modems]\ncooldown_seconds = 5\n"
                "guard_time_ms = 500\n[log]\nlevel = \"debug\"\n"
                "[[modem]]\nname = \"m1\"\ngateway = \"127.0.0.1:4001\"\n"
                "[[meter_type]]\nname = \"A1700-BST\"\ndriver = \"elster-a1700\"\nclock_utc_offset_minutes = 60\n"
                "[[meter_type]]\nname = \"ELSTERA1140\"\ndriver = \"elster-a1140\"\noption_mode = \"1\"\n");
  const settings next = load_settings(f.path, {});
  std::vector<std::string> lines;
  for (const auto& c : mts::compare_settings(running, next))
    lines.push_back(c.key + ": " + c.old_value + " -> " + c.new_value + (c.live ? "" : " (restart)"));
  CHECK(lines == std::vector<std::string>{
                     "edge.port: 8443 -> 9443 (restart)",
                     "scheduler.max_concurrent_tests: 16 -> 4",
                     "modems.cooldown_seconds: 300 -> 5",
                     "modems.guard_time_ms: 1000 -> 500",
                     "log.level: info -> debug",
                     "meter_type.ELSTERA1140.option_mode: 6 -> 1",
                     "meter_type.A1700-BST: (none) -> driver elster-a1700",
                     "modem: (none) -> m1 gateway 127.0.0.1:4001 baud 9600 prefix ",
                 });
  const settings in_force = mts::reloaded_settings(running, next);
  CHECK(in_force.scheduler.max_concurrent_tests == 4);
  CHECK(in_force.modems.guard_time_ms == 500);
  CHECK(in_force.log.level == "debug");
  CHECK(in_force.meter_types == next.meter_types);
  CHECK(in_force.edge.port == 8443);             // needs a restart
  CHECK(in_force.modems.cooldown_seconds == 5);
  CHECK(in_force.modem == next.modem);
  // What was ignored is still reported by the next reload; what was applied is not.
  std::vector<std::string> again;
  for (const auto& c : mts::compare_settings(in_force, next))
    again.push_back(c.key);
  CHECK(again == std::vector<std::string>{"edge.port"});
  CHECK(mts::compare_settings(running, running).empty());
  // A removed type is reported as such.
  auto fewer = next;
  fewer.meter_types.pop_back();
  auto removed = mts::compare_settings(next, fewer);
  REQUIRE(removed.size() == 1);
  CHECK(removed[0].key == "meter_type.A1700-BST");
  CHECK(removed[0].new_value == "(none)");
  for (const char* live : {"rate_limit.requests", "limits.max_batch_size", "scheduler.overnight_window", "api.mask_passwords",
                           "log.level", "modems.command_timeout_seconds", "modems.cooldown_seconds"})
    CHECK(mts::is_reloadable(live));
  for (const char* fixed : {"http.port", "http.threads", "tls.cert_file", "storage.path", "edge.enabled"})
    CHECK_FALSE(mts::is_reloadable(fixed));
}

TEST_CASE("config: the collectors a head accepts, and a collector's head", "[config][cluster]") {
  const std::string a(64, 'a'), b = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
  std::string error;
  auto list = mts::accepted_collectors(" site-a=" + a + " ,site_b.2=" + b, &error);
  CHECK(error.empty());
  REQUIRE(list.size() == 2);
  CHECK(list[0].name == "site-a");
  CHECK(list[0].secret_sha256 == std::string(32, '\xaa'));
  CHECK(list[1].name == "site_b.2");
  CHECK(list[1].secret_sha256.substr(0, 4) == std::string("\x00\x11\x22\x33", 4));
  CHECK(mts::accepted_collectors("", &error).empty());
  CHECK(error.empty());
  // Each bad entry is named.
  CHECK(has(override_error("cluster.collectors=site-a"), "cluster.collectors: \"site-a\": expected name=SHA-256 hex"));
  CHECK(has(override_error("cluster.collectors=site-a=abc"), "site-a: the secret's SHA-256 must be 64 hex digits"));
  CHECK(has(override_error("cluster.collectors=bad name=" + a), "a name is 1 to 64 letters"));
  CHECK(has(override_error("cluster.collectors=x=" + a + ",x=" + b), "x: named twice"));
  CHECK(has(override_error("cluster.collectors=x=" + a + ",,y=" + b), "an empty entry"));
  CHECK(has(override_error("collector.head=head.example"), "collector.head: must be host:port"));
  CHECK(override_error("collector.head=head.example:7000").empty());
}

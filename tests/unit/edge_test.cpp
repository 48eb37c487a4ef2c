// The edge's building blocks without processes or sockets: which client address a request is
// counted under, the writer's health verdict, and the nginx configuration generated from the
// server's settings (the e2e tests run the real nginx with it: tests/e2e/test_edge.py).
#include "actors/writer_health.hpp"
#include "common/client_address.hpp"
#include "config/settings.hpp"
#include "http/edge.hpp"

#include <catch2/catch.hpp>

using namespace mts;

namespace {

address_set networks(const std::string& text) {
  std::string error;
  auto set = address_set::parse(text, error);
  REQUIRE(set);
  return *set;
}

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

} // namespace

TEST_CASE("address_set: addresses and networks, v4 and v6", "[edge]") {
  auto set = networks("127.0.0.1, 10.1.0.0/16, 192.0.2.128/25, ::1, fd00::/8");
  CHECK(set.contains("127.0.0.1"));
  CHECK_FALSE(set.contains("127.0.0.2"));
  CHECK(set.contains("10.1.255.7"));
  CHECK_FALSE(set.contains("10.2.0.1"));
  CHECK(set.contains("192.0.2.200"));
  CHECK_FALSE(set.contains("192.0.2.127"));
  CHECK(set.contains("::1"));
  CHECK(set.contains("fd12:3456::9"));
  CHECK_FALSE(set.contains("fe80::1"));
  CHECK_FALSE(set.contains("not an address"));
  CHECK_FALSE(set.contains("10.1.0.1:80"));
  CHECK(networks("").empty());
  CHECK(networks("0.0.0.0/0").contains("203.0.113.9"));
  std::string error;
  CHECK_FALSE(address_set::parse("10.0.0.1,", error));
  CHECK(error == "\"\" is not an IPv4 or IPv6 address or network (a.b.c.d[/bits], x::y[/bits])");
  CHECK_FALSE(address_set::parse("::1/129", error));
  CHECK(error == "\"::1/129\" has a prefix length that is not 0..128");
}

TEST_CASE("client_address: forwarding headers count only from trusted proxies", "[edge]") {
  auto trusted = networks("127.0.0.1, 10.0.0.0/8");
  // From an untrusted peer the headers are ignored: a client cannot pick its own rate-limit key.
  CHECK(client_address("203.0.113.5", {"198.51.100.1"}, {"198.51.100.2"}, trusted) == "203.0.113.5");
  CHECK(client_address("127.0.0.1", {"198.51.100.1"}, {"198.51.100.2"}, trusted) == "198.51.100.1");
  CHECK(client_address("127.0.0.1", {" 2001:db8::7 "}, {}, trusted) == "2001:db8::7");
  // X-Forwarded-For: the right-most hop that is not a trusted proxy; what the client wrote
  // to the left of it proves nothing.
  CHECK(client_address("127.0.0.1", {}, {"1.2.3.4, 198.51.100.9, 10.0.0.3"}, trusted) == "198.51.100.9");
  CHECK(client_address("127.0.0.1", {}, {"1.2.3.4", "198.51.100.9"}, trusted) == "198.51.100.9");
  // Malformed or ambiguous: the connection's own address.
  CHECK(client_address("127.0.0.1", {"evil"}, {}, trusted) == "127.0.0.1");
  CHECK(client_address("127.0.0.1", {"1.1.1.1", "2.2.2.2"}, {}, trusted) == "127.0.0.1");
  CHECK(client_address("127.0.0.1", {}, {"1.2.3.4, junk"}, trusted) == "127.0.0.1");
  CHECK(client_address("127.0.0.1", {}, {}, trusted) == "127.0.0.1");
  CHECK(client_address("127.0.0.1", {}, {"10.0.0.2"}, trusted) == "127.0.0.1");
  CHECK(client_address("127.0.0.1", {"198.51.100.1"}, {}, networks("")) == "127.0.0.1");
}

TEST_CASE("writer_health: failures, recovery and stalled writes", "[edge]") {
  using clock = writer_health::clock;
  const clock::time_point t0{};
  const auto stall = std::chrono::seconds(15);
  writer_health h;
  CHECK(h.check(t0, stall).ok);
  CHECK_FALSE(h.last_result());
  h.write_started(t0);
  CHECK(h.check(t0 + std::chrono::seconds(15), stall).ok);
  auto stuck = h.check(t0 + std::chrono::seconds(16), stall);
  CHECK_FALSE(stuck.ok);
  CHECK(stuck.reason == "a database write has not finished for 16 s");
  CHECK(h.write_ended(t0 + std::chrono::seconds(17), false, "attempt to write a readonly database"));
  auto failed = h.check(t0 + std::chrono::seconds(17), stall);
  CHECK_FALSE(failed.ok);
  CHECK(failed.reason == "the last database write failed: attempt to write a readonly database");
  CHECK_FALSE(h.write_ended(t0 + std::chrono::seconds(18), false, "database or disk is full")); // no change
  CHECK(h.write_ended(t0 + std::chrono::seconds(19), true, "")); // recovered: a change
  CHECK(h.check(t0 + std::chrono::seconds(19), stall).ok);
  CHECK(*h.last_result() == t0 + std::chrono::seconds(19));
}

TEST_CASE("edge configuration: generated from the server's settings", "[edge]") {
  settings s;
  s.edge.port = 9443;
  s.edge.internal_port = 9442;
  s.edge.max_connections = 2000;
  s.edge.max_connections_per_address = 300;
  s.edge.header_timeout_seconds = 7;
  s.edge.body_timeout_seconds = 9;
  s.edge.max_header_line_bytes = 4096;
  s.edge.max_header_bytes = 10000;
  s.http.port = 9444;
  s.http.max_body_bytes = 5000;
  s.http.keep_alive_timeout_seconds = 12;
  auto conf = render_edge_config(s, edge_files{"/srv/mts/edge", "/srv/mts/cert.pem", "/srv/mts/key.pem", 20000});
  CHECK(mentions(conf, "listen 127.0.0.1:9443 backlog=1024;"));
  CHECK(mentions(conf, "limit_conn mts_per_address 300;"));
  CHECK(mentions(conf, "limit_conn mts_total 2000;"));
  CHECK(mentions(conf, "proxy_pass 127.0.0.1:9442;"));
  CHECK(mentions(conf, "listen 127.0.0.1:9442 ssl proxy_protocol"));
  CHECK(mentions(conf, "set_real_ip_from 127.0.0.1;"));
  CHECK(mentions(conf, "server 127.0.0.1:9444;"));
  CHECK(mentions(conf, "ssl_certificate /srv/mts/cert.pem;"));
  CHECK(mentions(conf, "ssl_certificate_key /srv/mts/key.pem;"));
  CHECK(mentions(conf, "ssl_protocols TLSv1.2 TLSv1.3;"));
  CHECK(mentions(conf, "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:"));
  CHECK_FALSE(mentions(conf, "CBC"));
  CHECK(mentions(conf, "client_header_timeout 7s;"));
  CHECK(mentions(conf, "client_body_timeout 9s;"));
  CHECK(mentions(conf, "large_client_header_buffers 3 4096;")); // ceil(10000 / 4096)
  CHECK(mentions(conf, "client_max_body_size 5000;"));
  CHECK(mentions(conf, "keepalive_timeout 12s;"));
  CHECK(mentions(conf, "worker_connections 8256;")); // 4 x 2000 + 256, within 20000 files
  CHECK(mentions(conf, "worker_rlimit_nofile 20000;"));
  // The client's own forwarding headers are overwritten, never passed on.
  CHECK(mentions(conf, "proxy_set_header X-Forwarded-For $remote_addr;"));
  CHECK(mentions(conf, "proxy_set_header X-Real-IP $remote_addr;"));
  CHECK(mentions(conf, "error_page 494 =431 @error494;"));
  CHECK(mentions(conf, "return 413 '{\"details\":[\"request body exceeds the limit of 5000 bytes\"]}';"));
  CHECK(mentions(conf, "pid /srv/mts/edge/nginx.pid;"));
  // A descriptor ceiling below what the caps need bounds the worker's connections.
  auto tight = render_edge_config(s, edge_files{"/e", "/c", "/k", 4000});
  CHECK(mentions(tight, "worker_connections 3744;"));
}

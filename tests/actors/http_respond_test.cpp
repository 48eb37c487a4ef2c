// The request path without sockets (api_server::respond), on the rig the fuzz harness uses
// (fuzz/api_rig.hpp): a real database, reader and persistence actors, a scheduler stand-in.
// The end-to-end tests cover the same answers over HTTPS; these pin the socket-free entry the
// fuzzer drives, so that it stays the server's own path.
#include "fuzz/api_rig.hpp"

#include "common/json.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

namespace {

using mts::rig::api_rig;

httplib::Request request(const std::string& method, const std::string& path,
                         std::initializer_list<std::pair<std::string, std::string>> headers = {},
                         const std::string& query = "", const std::string& body = "") {
  httplib::Request req;
  req.method = method;
  req.path = path;
  httplib::detail::parse_query_text(query, req.params);
  for (const auto& h : headers)
    req.headers.emplace(h.first, h.second);
  req.body = body;
  return req;
}

boost::json::value json_of(const httplib::Response& res) {
  std::string error;
  auto v = mts::json::parse_strict(res.body, error);
  INFO(res.body);
  REQUIRE(v.has_value());
  return *v;
}

std::string first_detail(const httplib::Response& res) {
  auto v = json_of(res);
  return std::string(v.at("details").as_array().at(0).as_string());
}

} // namespace

TEST_CASE("respond: a test-status with a token reads the stored test", "[http][respond]") {
  api_rig rig;
  auto res = rig.respond(request("GET", "/MTS/test-status", {{"Authorization", "Bearer $TOKEN"}}, "testId=2"));
  CHECK(res.status == 200);
  CHECK(res.get_header_value("Cache-Control") == "no-store");
  CHECK(res.get_header_value("X-Content-Type-Options") == "nosniff");
  auto v = json_of(res);
  CHECK(v.at("testId").as_int64() == 2);
  CHECK(v.at("resultSummary").as_string() == "SUCCESS");
  CHECK(v.at("serialNumber").as_string() == "12345678");

  res = rig.respond(request("GET", "/MTS/test-status", {{"Authorization", "Bearer $READ_ONLY"}}, "testId=99"));
  CHECK(res.status == 400);
  CHECK(first_detail(res) == "testId: no such test");

  res = rig.respond(request("GET", "/MTS/test-transcript", {{"Authorization", "Bearer $TOKEN"}}, "testId=2"));
  CHECK(res.status == 200);
  CHECK(json_of(res).at("attempts").as_array().size() == 1);
}

TEST_CASE("respond: authentication, scope and verbs", "[http][respond]") {
  api_rig rig;
  auto res = rig.respond(request("GET", "/MTS/test-status", {}, "testId=1"));
  CHECK(res.status == 401);
  CHECK(res.get_header_value("WWW-Authenticate") == "Bearer realm=\"MTS\"");
  res = rig.respond(request("GET", "/MTS/test-status", {{"Authorization", "Bearer mts_not-a-token"}}, "testId=1"));
  CHECK(res.status == 401);
  res = rig.respond(request("POST", "/MTS/test-request",
                            {{"Authorization", "Bearer $READ_ONLY"}, {"Content-Type", "application/json"}}, "",
                            R"({"meterType":"IEC62056-21","remoteAddress":"127.0.0.1:4059"})"));
  CHECK(res.status == 403);
  res = rig.respond(request("POST", "/MTS/test-status", {{"Authorization", "Bearer $TOKEN"}}));
  CHECK(res.status == 405);
  CHECK(res.get_header_value("Allow") == "GET");
  res = rig.respond(request("GET", "/elsewhere"));
  CHECK(res.status == 404);
}

TEST_CASE("respond: new tests reach the writer, cancels the scheduler, and errors map to statuses",
          "[http][respond]") {
  api_rig rig;
  auto res = rig.respond(request("POST", "/MTS/test-request",
                                 {{"Authorization", "Bearer $TOKEN"}, {"Content-Type", "application/json"}}, "",
                                 R"({"meterType":"IEC62056-21","remoteAddress":"127.0.0.1:4059","immediate":true})"));
  CHECK(res.status == 200);
  CHECK(json_of(res).at("testId").as_int64() == 4); // the rig's database held tests 1 to 3
  res = rig.respond(request("GET", "/MTS/test-status", {{"Authorization", "Bearer $TOKEN"}}, "testId=4"));
  REQUIRE(res.status == 200);
  CHECK(json_of(res).at("result").as_string() == "PENDING");
  CHECK(json_of(res).at("remoteAddress").as_string() == "127.0.0.1:4059");
  // The scheduler (a stand-in here) is told of the new test by the writer, on the actors'
  // threads: waited for, at most 10 s, however slow the machine.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (rig.tests_told() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(rig.tests_told() == 1);
  res = rig.respond(request("DELETE", "/MTS/test-cancel", {{"Authorization", "Bearer $TOKEN"}}, "testId=7"));
  CHECK(res.status == 400);
  CHECK(first_detail(res) == "testId: no such test");
  res = rig.respond(request("DELETE", "/MTS/test-cancel", {{"Authorization", "Bearer $TOKEN"}}, "testId=8"));
  CHECK(res.status == 200);
  CHECK(json_of(res).at("testId").as_int64() == 8);
}

TEST_CASE("respond: the framing checks refuse and close before any handler", "[http][respond]") {
  api_rig rig;
  auto res = rig.respond(request("GET", "/MTS/test-status",
                                 {{"Authorization", "Bearer $TOKEN"}, {"Content-Length", "3"}, {"Content-Length", "3"}},
                                 "testId=2"));
  CHECK(res.status == 400);
  CHECK(first_detail(res) == "more than one Content-Length header");
  CHECK(res.get_header_value("Connection") == "close");
  res = rig.respond(request("GET", "/MTS/test-status", {{"Authorization", "Bearer $TOKEN"}, {"Content-Length", "5"}},
                            "testId=2"));
  CHECK(res.status == 400);
  CHECK(first_detail(res) == "a GET request must not have a body");
  res = rig.respond(request("GET", "/MTS/service-status"));
  CHECK(res.status == 200);
  CHECK(res.get_header_value("Connection") == "");
}

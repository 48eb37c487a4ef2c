// The cluster's own CA and its nodes' certificates (`mts cluster ca`, `mts cluster node-cert`):
// checked with the openssl command (an implementation other than our own code) and with
// check_node_certificate, which a node runs at start-up.
#include "config/settings.hpp"
#include "http/tls.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

using namespace mts;

namespace {

struct cert_dir {
  std::filesystem::path path;
  cert_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("mts-cluster-certs-" + std::to_string(rd()) + std::to_string(rd()));
  }
  ~cert_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& sub) const { return (path / sub).string(); }
};

// Output and exit status of a shell command.
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p))
    out += buf;
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

mode_t mode_of(const std::string& file) {
  struct stat st{};
  REQUIRE(stat(file.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

} // namespace

TEST_CASE("a cluster CA signs node certificates that openssl verifies for TLS client and server use",
          "[tls][cluster]") {
  cert_dir dir;
  auto ca = create_cluster_ca(dir / "ca", 3650);
  CHECK(ca.cert_file == dir / "ca/cluster-ca.pem");
  CHECK(mode_of(ca.key_file) == 0600);
  auto head = create_node_certificate(dir / "ca", "head-1", dir / "head", 825);
  CHECK(head.cert_file == dir / "head/head-1.pem");
  CHECK(mode_of(head.key_file) == 0600);

  // The CA is a CA; the node certificate is not, carries its name, and verifies for both ends.
  auto [ca_rc, ca_text] = run("openssl x509 -noout -text -in " + ca.cert_file);
  REQUIRE(ca_rc == 0);
  CHECK(ca_text.find("CA:TRUE, pathlen:0") != std::string::npos);
  CHECK(ca_text.find("Certificate Sign") != std::string::npos);
  auto [node_rc, node_text] = run("openssl x509 -noout -text -in " + head.cert_file);
  REQUIRE(node_rc == 0);
  CHECK(node_text.find("CN = head-1") != std::string::npos);
  CHECK(node_text.find("DNS:head-1") != std::string::npos);
  CHECK(node_text.find("CA:FALSE") != std::string::npos);
  CHECK(node_text.find("TLS Web Server Authentication, TLS Web Client Authentication") != std::string::npos);
  for (const char* purpose : {"sslclient", "sslserver"}) {
    auto [rc, out] = run("openssl verify -purpose " + std::string(purpose) + " -CAfile " + ca.cert_file + " " +
                         head.cert_file);
    INFO(out);
    CHECK(rc == 0);
  }
  // The key belongs to the certificate.
  auto [k1, cert_pub] = run("openssl x509 -noout -pubkey -in " + head.cert_file);
  auto [k2, key_pub] = run("openssl pkey -pubout -in " + head.key_file);
  CHECK(cert_pub == key_pub);
  CHECK_FALSE(check_node_certificate(ca.cert_file, head.cert_file, head.key_file));
}

TEST_CASE("a node certificate of another cluster's CA, a wrong key or a missing file is named at start-up",
          "[tls][cluster]") {
  cert_dir dir;
  auto ours = create_cluster_ca(dir / "ours", 3650);
  create_cluster_ca(dir / "theirs", 3650);
  auto good = create_node_certificate(dir / "ours", "collector-a", dir / "nodes", 30);
  auto foreign = create_node_certificate(dir / "theirs", "collector-b", dir / "nodes", 30);

  auto [rc, out] = run("openssl verify -CAfile " + ours.cert_file + " " + foreign.cert_file);
  CHECK(rc != 0); // openssl agrees that our CA did not issue it
  auto why = check_node_certificate(ours.cert_file, foreign.cert_file, foreign.key_file);
  REQUIRE(why);
  CHECK(why->find("was not issued by the cluster CA") != std::string::npos);

  why = check_node_certificate(ours.cert_file, good.cert_file, foreign.key_file);
  REQUIRE(why);
  CHECK(*why == foreign.key_file + " is not the key of " + good.cert_file);

  why = check_node_certificate(ours.cert_file, dir / "nodes/absent.pem", good.key_file);
  REQUIRE(why);
  CHECK(why->find("absent.pem") != std::string::npos);
}

TEST_CASE("cluster certificates: nothing is overwritten, names and validity are checked", "[tls][cluster]") {
  cert_dir dir;
  auto ca = create_cluster_ca(dir / "ca", 10);
  const auto before = std::filesystem::last_write_time(ca.key_file);
  CHECK_THROWS_WITH(create_cluster_ca(dir / "ca", 10), Catch::Contains("exists already"));
  CHECK(std::filesystem::last_write_time(ca.key_file) == before);
  create_node_certificate(dir / "ca", "n1", dir / "out", 10);
  CHECK_THROWS_WITH(create_node_certificate(dir / "ca", "n1", dir / "out", 10), Catch::Contains("exists already"));

  for (const char* bad : {"", "-lead", ".hidden", "with space", "slash/name", "semi;colon"})
    CHECK_THROWS_WITH(create_node_certificate(dir / "ca", bad, dir / "out", 10), Catch::Contains("node name"));
  CHECK(is_node_name("site-7.bank_2"));
  CHECK_FALSE(is_node_name(std::string(65, 'a')));
  CHECK_THROWS_WITH(create_node_certificate(dir / "ca", "n2", dir / "out", 0), Catch::Contains("validity"));
  CHECK_THROWS_WITH(create_cluster_ca(dir / "ca2", 0), Catch::Contains("validity"));
  CHECK_THROWS_WITH(create_node_certificate(dir / "nowhere", "n3", dir / "out", 10), Catch::Contains("cluster-ca.pem"));
}

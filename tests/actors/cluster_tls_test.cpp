// Two nodes in one process, over loopback TLS as configure_cluster_node sets it up: a typed
// actor published by the "head" is reached by a "collector" whose certificate the cluster's
// CA issued, and a test_record crosses the wire and back whole; a node with a certificate of
// another CA, or of another protocol version, is refused. Real sockets and threads: every
// wait has a timeout (none is a measurement).
#include "actors/cluster_node.hpp"
#include "actors/interfaces.hpp"
#include "http/tls.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

using namespace mts;

namespace {

using echo_actor = caf::typed_actor<caf::replies_to<get_atom, test_record>::with<test_record>>;

echo_actor::behavior_type echo(echo_actor::pointer) { // a self parameter: see scripts/ubsan.supp
  return {[](get_atom, test_record& rec) {
    rec.result = "echoed";
    return rec;
  }};
}

struct cluster_dir {
  std::filesystem::path path;
  cluster_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("mts-cluster-tls-" + std::to_string(rd()) + std::to_string(rd()));
    create_cluster_ca((path / "ca").string(), 30);
    create_cluster_ca((path / "other-ca").string(), 30);
    for (const char* node : {"head", "collector-a"})
      create_node_certificate((path / "ca").string(), node, (path / "nodes").string(), 30);
    create_node_certificate((path / "other-ca").string(), "intruder", (path / "nodes").string(), 30);
  }
  ~cluster_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  cluster_tls_files files(const std::string& node, const std::string& ca = "ca") const {
    return {(path / ca / "cluster-ca.pem").string(), (path / "nodes" / (node + ".pem")).string(),
            (path / "nodes" / (node + ".key")).string()};
  }
};

struct node_config : caf::actor_system_config {
  node_config(const cluster_tls_files& files, cluster_role role) {
    configure_cluster_node(*this, files, role, std::chrono::seconds(1), std::chrono::seconds(3));
    set("scheduler.max-threads", 2);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

// Connects without blocking forever: the OpenSSL manager's connect, bounded by a timeout.
caf::expected<echo_actor> connect(caf::actor_system& sys, std::uint16_t port) {
  caf::scoped_actor self{sys};
  caf::expected<echo_actor> out{caf::error{}};
  self->request(sys.openssl_manager().actor_handle(), std::chrono::seconds(10), caf::connect_atom::value,
                std::string("127.0.0.1"), port)
    .receive(
      [&](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
        if (ptr)
          out = caf::actor_cast<echo_actor>(ptr);
        else
          out = caf::make_error(caf::sec::no_actor_published_at_port);
      },
      [&](caf::error& err) { out = std::move(err); });
  return out;
}

} // namespace

TEST_CASE("cluster nodes talk over mutual TLS; another CA's certificate or another version is refused",
          "[actors][cluster][tls]") {
  cluster_dir dir;
  node_config head_cfg{dir.files("head"), cluster_role::head};
  caf::actor_system head{head_cfg};
  auto published = head.spawn(echo);
  auto port = caf::openssl::publish(published, 0, "127.0.0.1");
  REQUIRE(port);

  SECTION("a collector of the cluster reaches the published actor; a test_record goes and comes back whole") {
    node_config cfg{dir.files("collector-a"), cluster_role::collector};
    caf::actor_system collector{cfg};
    auto remote = connect(collector, *port);
    REQUIRE(remote);
    test_record rec;
    rec.id = 77;
    rec.request.password = "secret-password";
    rec.request.remote_address = "07777000001";
    rec.connection_attempts = 2;
    caf::scoped_actor self{collector};
    std::optional<test_record> back;
    self->request(*remote, std::chrono::seconds(10), get_atom::value, rec)
      .receive([&](test_record& r) { back = std::move(r); }, [&](caf::error& err) { FAIL(to_string(err)); });
    REQUIRE(back);
    CHECK(back->id == 77);
    CHECK(back->result == "echoed");
    CHECK(back->request.password == std::optional<std::string>("secret-password"));
    CHECK(back->request.remote_address == "07777000001");
    CHECK(back->connection_attempts == std::optional<std::int64_t>(2));
  }
  SECTION("a stranger's connection that never completes the handshake does not cost a joined node its link") {
    node_config cfg{dir.files("collector-a"), cluster_role::collector};
    caf::actor_system collector{cfg};
    auto remote = connect(collector, *port);
    REQUIRE(remote);
    caf::scoped_actor self{collector};
    self->monitor(*remote);
    // Plain TCP connections that open and close (a port scan, a client of another protocol).
    for (int i = 0; i < 3; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      REQUIRE(fd >= 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(*port);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      ::close(fd);
    }
    // Longer than the head's connection timeout (3 heartbeats of 1 s): the link must hold.
    bool lost = false;
    self->receive([&](caf::down_msg&) { lost = true; }, caf::after(std::chrono::seconds(5)) >> [] {});
    CHECK_FALSE(lost);
    test_record rec;
    rec.id = 5;
    bool answered = false;
    self->request(*remote, std::chrono::seconds(10), get_atom::value, rec)
      .receive([&](test_record&) { answered = true; }, [&](caf::error& err) { FAIL(to_string(err)); });
    CHECK(answered);
  }
  SECTION("a node whose certificate another CA issued is refused at the handshake") {
    node_config cfg{dir.files("intruder", "other-ca"), cluster_role::collector};
    caf::actor_system intruder{cfg};
    CHECK_FALSE(connect(intruder, *port));
  }
  SECTION("a node of another protocol version is refused at the handshake") {
    node_config cfg{dir.files("collector-a"), cluster_role::collector};
    cfg.set("middleman.app-identifiers", std::vector<std::string>{"mts.cluster.v0"});
    caf::actor_system old{cfg};
    CHECK_FALSE(connect(old, *port));
  }
  caf::anon_send_exit(published, caf::exit_reason::user_shutdown);
}

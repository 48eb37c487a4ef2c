// The real CONNECTION actor on the real reactor, driven by a TEST actor, against a simulated
// IEC 62056-21 meter served on a loopback listener; and a refused connection. Real threads and
// sockets (127.0.0.1 only), every wait bounded.
#include "actors/connection.hpp"
#include "actors/executor.hpp"
#include "actors/test_runner.hpp"
#include "io/tcp_reactor.hpp"
#include "sim/iec_meter.hpp"

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include <mutex>

using namespace mts;

namespace {

drivers::unix_ms wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

// One accepted connection: a simulated meter answering at once (no reaction delay, so it
// needs no timers; its inactivity timer is not run: the client always closes).
class meter_link : public io::link_handler {
public:
  meter_link(io::tcp_reactor* reactor, io::connection_id id, sim::meter_identity identity)
      : reactor_(reactor), id_(id), meter_(std::move(identity), {}, config()) {
    execute(meter_.on_link_up(wall_ms()));
  }
  void on_data(io::connection_id, std::string_view bytes) override { execute(meter_.on_bytes(bytes, wall_ms())); }

private:
  static sim::iec_meter_config config() {
    sim::iec_meter_config c;
    c.reaction_delay = std::chrono::milliseconds(0);
    return c;
  }
  void execute(const drivers::actions& acts) {
    for (const auto& act : acts) {
      if (auto* send = std::get_if<drivers::send_bytes>(&act))
        reactor_->send(id_, send->data);
      else if (std::holds_alternative<drivers::finish>(act))
        reactor_->close(id_);
    }
  }
  io::tcp_reactor* reactor_;
  io::connection_id id_;
  sim::iec_meter meter_;
};

class meter_server : public io::accept_handler {
public:
  meter_server(io::tcp_reactor* reactor, sim::meter_identity identity) : reactor_(reactor), identity_(std::move(identity)) {}
  std::shared_ptr<io::link_handler> on_accept(io::connection_id id, const std::string&) override {
    return std::make_shared<meter_link>(reactor_, id, identity_);
  }

private:
  io::tcp_reactor* reactor_;
  sim::meter_identity identity_;
};

sim::meter_identity identity() {
  sim::meter_identity id;
  id.serial = "87650001";
  id.password = "pw";
  id.seed = 3;
  return id;
}

test_record record(const std::string& address) {
  test_record rec;
  rec.id = 7;
  rec.request.meter_type = "IEC62056-21";
  rec.request.remote_address = address;
  rec.request.serial_number = "87650001";
  rec.request.password = "pw";
  rec.state = test_state::running;
  return rec;
}

test_runner_config config(io::tcp_reactor* reactor) {
  test_runner_config c;
  c.types = std::make_shared<const meter_type_registry>();
  c.max_attempts = 2;
  c.retry_delay = std::chrono::milliseconds(10);
  c.connect_timeout = std::chrono::seconds(5);
  c.test_deadline = std::chrono::seconds(30);
  c.connect = make_tcp_connection_factory(reactor);
  return c;
}

} // namespace

TEST_CASE("real connection actor: a test over loopback TCP against a simulated meter", "[actors][connection]") {
  auto reactor = std::make_unique<io::tcp_reactor>();
  auto listener = reactor->listen("127.0.0.1", 0, std::make_shared<meter_server>(reactor.get(), identity()));
  auto port = reactor->listening_port(listener);
  REQUIRE(port != 0);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto exec = sys.spawn(executor, config(reactor.get()));
    auto before = wall_ms() / 1000;
    std::optional<test_outcome> out;
    std::string error;
    self->request(exec, std::chrono::seconds(30), run_atom::value, record("127.0.0.1:" + std::to_string(port)), modem_broker_actor{})
      .receive([&](test_outcome& o) { out = std::move(o); }, [&](caf::error& err) { error = to_string(err); });
    INFO(error);
    REQUIRE(out);
    auto after = wall_ms() / 1000;
    CHECK(out->result == "SUCCESS");
    CHECK(out->readings_json.find("87650001") != std::string::npos);
    REQUIRE(out->connection_start_time);
    REQUIRE(out->connection_end_time);
    CHECK(*out->connection_start_time >= before);
    CHECK(*out->connection_end_time >= *out->connection_start_time);
    CHECK(out->test_end_time <= after);

    // A port nobody listens on: refused on both attempts.
    auto closed = reactor->listen("127.0.0.1", 0, std::make_shared<meter_server>(reactor.get(), identity()));
    auto closed_port = reactor->listening_port(closed);
    reactor->close_listener(closed);
    out.reset();
    self->request(exec, std::chrono::seconds(30), run_atom::value, record("127.0.0.1:" + std::to_string(closed_port)), modem_broker_actor{})
      .receive([&](test_outcome& o) { out = std::move(o); }, [&](caf::error& err) { error = to_string(err); });
    REQUIRE(out);
    CHECK(out->result == "ERROR: cannot connect: connection refused");
    CHECK_FALSE(out->connection_start_time);
    self->send_exit(exec, caf::exit_reason::user_shutdown);
  }
  sys.await_all_actors_done();
  reactor->stop();
}

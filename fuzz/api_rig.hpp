#pragma once
// The API's request path without sockets (api_server::respond), on a real database and real
// reader and persistence actors, with a scheduler stand-in that answers at once. Shared by the
// fuzz harness fuzz/http_request.cpp and the unit test tests/actors/http_respond_test.cpp.
//
// The database (in a fresh temporary directory) holds a full-scope and a read-only token and
// three tests: 1 pending with a password, 2 completed with readings and a transcript, 3
// running. "$TOKEN" and "$READ_ONLY" in a header value stand for the two tokens, which are
// random: a fuzzer could never guess them.
#include "actors/persistence.hpp"
#include "actors/storage_stats.hpp"
#include "actors/writer_health.hpp"
#include "drivers/registry.hpp"
#include "http/server.hpp"
#include "http/tokens.hpp"
#include "persistence/store.hpp"
#include "persistence/thread_reader.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

namespace mts::rig {

// Answers like the scheduler without queueing anything: cancel of an even id succeeds and of
// an odd one is unknown, a batch cancel is unknown for odd ids. It counts the new tests the
// persistence actor tells it of (`told`).
inline scheduler_actor::behavior_type scheduler_stand_in(scheduler_actor::pointer,
                                                         std::shared_ptr<std::atomic<std::int64_t>> told) {
  return {
    [told](queued_atom, std::vector<queued_test>& tests) { *told += static_cast<std::int64_t>(tests.size()); },
    [](cancel_atom, test_id id) -> caf::result<test_id> {
      if (id % 2 == 1)
        return make_error(app_errc::unknown_test);
      return id;
    },
    [](cancel_atom, batch_atom, batch_id id, bool) -> caf::result<std::int64_t> {
      if (id % 2 == 1)
        return make_error(app_errc::unknown_batch);
      return std::int64_t{0};
    },
    [](tick_atom) {},
    [](reload_atom, std::shared_ptr<const scheduler_config>) {},
    [](stats_atom) { return scheduler_stats{}; },
    [](modem_atom, get_atom, test_id) { return modem_grant{}; },
    [](modem_atom, fault_atom, test_id, const std::string&) {},
    [](modem_atom, get_atom, test_id, std::uint64_t) { return modem_grant{}; },
    [](modem_atom, fault_atom, test_id, const std::string&, std::uint64_t) {},
    [](join_atom, const node_offer&, const executor_actor&) {},
    [](retry_atom, test_id, std::uint64_t) {},
  };
}

class api_rig {
public:
  api_rig() : system_(config_) {
    char pattern[] = "/tmp/mts-api-rig.XXXXXX";
    if (!mkdtemp(pattern))
      std::abort();
    dir_ = pattern;
    const std::string db = dir_ + "/mts.db";
    {
      store s(db, store_mode::read_write, 5000);
      full_token = generate_token();
      read_only_token = generate_token();
      s.insert_token("full", token_scope::full, hash_token(full_token), 0, 4'000'000'000);
      s.insert_token("read", token_scope::read_only, hash_token(read_only_token), 0, 4'000'000'000);
      test_request pending;
      pending.meter_type = "IEC62056-21";
      pending.remote_address = "127.0.0.1:4059";
      pending.password = "meter-secret";
      pending.survey_days = 1;
      s.insert_test(pending, 1'700'000'000);
      s.insert_test(pending, 1'700'000'001);
      s.insert_test(pending, 1'700'000'002);
      s.mark_running(2, 1'700'000'010);
      test_outcome done;
      done.id = 2;
      done.result = "SUCCESS";
      done.test_end_time = 1'700'000'020;
      done.readings_json = R"({"serialNumber":"12345678","registerValues":[]})";
      done.transcript_json = R"([{"attempt":1,"events":[]}])";
      s.complete_test(done);
    }
    settings config;
    config.storage.path = db;
    config.rate_limit.requests = 1'000'000'000; // the limiter's clock is the wall clock: kept out of the way
    auto health = std::make_shared<writer_health>();
    auto reads = std::make_shared<thread_reader>(db, 5000);
    tokens_ = std::make_unique<token_verifier>(reads, nullptr);
    api_dependencies deps;
    deps.system = &system_;
    deps.scheduler = system_.spawn(scheduler_stand_in, told_);
    deps.readers.push_back(system_.spawn<caf::detached>(reader, std::make_shared<store>(db, store_mode::read_only, 5000)));
    deps.tokens = tokens_.get();
    deps.reads = reads;
    deps.persistence = system_.spawn<caf::detached>(persistence, std::make_shared<store>(db, store_mode::read_write, 5000),
                                                    health);
    deps.writer = health;
    deps.types = std::make_shared<const meter_type_registry>();
    deps.storage = std::make_shared<storage_stats>();
    actors_ = {caf::actor_cast<caf::actor>(deps.scheduler), caf::actor_cast<caf::actor>(deps.readers.front()),
               caf::actor_cast<caf::actor>(deps.persistence)};
    // The stand-in takes the scheduler's place as the one told of new tests, as at start-up;
    // test 3 is marked running only then, since the recovery puts running tests back.
    {
      caf::scoped_actor self{system_};
      bool recovered = false;
      self->request(deps.persistence, caf::infinite, recover_atom::value, keys_atom::value,
                    caf::actor_cast<queue_sink_actor>(deps.scheduler))
        .receive([&](std::vector<queued_test>&) { recovered = true; }, [](caf::error&) {});
      if (!recovered)
        std::abort();
      store s(db, store_mode::read_write, 5000);
      s.mark_running(3, 1'700'000'030);
    }
    server_ = std::make_unique<api_server>(config, deps, address_set{});
    worker_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mutex_);
      for (;;) {
        changed_.wait(lock, [&] { return stopping_ || job_; });
        if (stopping_)
          return;
        job_();
        job_ = nullptr;
        changed_.notify_all();
      }
    });
  }

  ~api_rig() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    worker_.join();
    server_.reset();
    for (const auto& actor : actors_)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    // system_ is destroyed last and waits for the actors.
  }

  api_rig(const api_rig&) = delete;
  api_rig& operator=(const api_rig&) = delete;

  // The answer to one request, as respond() leaves it. It runs on the rig's own thread, as on
  // an HTTP worker thread: the server keeps a requesting actor and a database connection per
  // thread, and that thread ends (and with it both) before the actor system does.
  httplib::Response respond(httplib::Request req) {
    for (auto& header : req.headers) {
      replace_all(header.second, "$TOKEN", full_token);
      replace_all(header.second, "$READ_ONLY", read_only_token);
    }
    if (req.remote_addr.empty())
      req.remote_addr = "127.0.0.1";
    httplib::Response res;
    std::unique_lock<std::mutex> lock(mutex_);
    job_ = [&] { server_->respond(req, res); };
    changed_.notify_all();
    changed_.wait(lock, [&] { return !job_; });
    return res;
  }

  std::string full_token;
  std::string read_only_token;

  // How many new tests the persistence actor has told the scheduler stand-in of so far.
  std::int64_t tests_told() const { return told_->load(); }

private:
  static void replace_all(std::string& text, const std::string& from, const std::string& to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
      text.replace(at, from.size(), to);
  }

  caf::actor_system_config config_;
  caf::actor_system system_;
  std::string dir_;
  std::vector<caf::actor> actors_;
  std::shared_ptr<std::atomic<std::int64_t>> told_ = std::make_shared<std::atomic<std::int64_t>>(0);
  std::unique_ptr<token_verifier> tokens_;
  std::unique_ptr<api_server> server_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::function<void()> job_; // the request the worker runs; empty once answered
  bool stopping_ = false;
  std::thread worker_;
};

} // namespace mts::rig

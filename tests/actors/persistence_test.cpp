// The PERSISTENCE and READER actors in isolation on the deterministic scheduler.
#include "tests/actors/actor_fixture.hpp"

#include <catch2/catch.hpp>

using namespace mts;
using namespace mts::testing;

TEST_CASE_METHOD(actor_fixture, "the persistence actor commits before it answers", "[actors][persistence]") {
  auto id = ask<test_id>(persist, insert_atom::value, make_request(true, "ref-1"), fake_now);
  REQUIRE(id);
  // Another connection sees the row as soon as the id is known.
  auto rec = inspect->find_test(*id);
  REQUIRE(rec);
  CHECK(rec->request.request_reference == std::string("ref-1"));
  CHECK(rec->received_time == fake_now);

  auto batch = ask<batch_inserted>(persist, insert_atom::value,
                                   std::vector<test_request>{make_request(true), make_request(false)}, fake_now);
  REQUIRE(batch);
  REQUIRE(batch->tests.size() == 2);
  CHECK(inspect->batch_tests(batch->batch)->size() == 2);
}

TEST_CASE_METHOD(actor_fixture, "a result is written exactly once", "[actors][persistence]") {
  auto id = ask<test_id>(persist, insert_atom::value, make_request(true), fake_now);
  REQUIRE(id);
  auto started = ask<bool>(persist, start_atom::value, *id, fake_now + 1);
  REQUIRE(started);
  CHECK(*started);
  auto again = ask<bool>(persist, start_atom::value, *id, fake_now + 2);
  CHECK_FALSE(*again); // no longer pending

  test_outcome outcome;
  outcome.id = *id;
  outcome.result = "SUCCESS";
  outcome.test_end_time = fake_now + 30;
  auto first = ask<bool>(persist, finish_atom::value, outcome);
  outcome.result = "ERROR: written twice";
  auto second = ask<bool>(persist, finish_atom::value, outcome);
  CHECK(*first);
  CHECK_FALSE(*second);
  CHECK(inspect->find_test(*id)->result == "SUCCESS");
}

TEST_CASE_METHOD(actor_fixture, "readers answer queries and report unknown ids as errors", "[actors][reader]") {
  auto rd = sys.spawn(reader, std::make_shared<store>(db_path, store_mode::read_only, 1000));
  sched.run();
  auto id = ask<test_id>(persist, insert_atom::value, make_request(true, "x"), fake_now);
  REQUIRE(id);
  auto rec = ask<test_record>(rd, get_atom::value, *id);
  REQUIRE(rec);
  CHECK(rec->id == *id);
  auto missing = ask<test_record>(rd, get_atom::value, *id + 100);
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == make_error(app_errc::unknown_test));
  auto no_batch = ask<std::vector<test_record>>(rd, get_atom::value, batch_atom::value, batch_id{42});
  REQUIRE_FALSE(no_batch);
  CHECK(no_batch.error() == make_error(app_errc::unknown_batch));
  auto healthy = ask<bool>(rd, health_atom::value);
  REQUIRE(healthy);
  CHECK(*healthy);
  self->send_exit(rd, caf::exit_reason::user_shutdown);
  sched.run();
}

#pragma once
// Every typed actor interface of the server, its atoms and its error codes, in one place.
// The types a message between the head and a collector may carry are inspectable
// (actors/wire_types.hpp); the rest never leave the process and travel as unsafe
// (unserialised) message types instead of carrying inspect() boilerplate.
#include "actors/wire_types.hpp"
#include "common/model.hpp"
#include "common/reach.hpp"
#include "config/settings.hpp" // modem_settings

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mts {

struct scheduler_config;   // actors/scheduler.hpp
struct test_runner_config; // actors/test_runner.hpp
struct retention_config;   // actors/retention.hpp

// ---- atoms (at most 10 characters, letters, digits and '_') ----
using insert_atom = caf::atom_constant<caf::atom("insert")>;
using delete_atom = caf::atom_constant<caf::atom("delete")>;
using exists_atom = caf::atom_constant<caf::atom("exists")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using finish_atom = caf::atom_constant<caf::atom("finish")>;
using recover_atom = caf::atom_constant<caf::atom("recover")>;
using touch_atom = caf::atom_constant<caf::atom("touch")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using batch_atom = caf::atom_constant<caf::atom("batch")>;
using search_atom = caf::atom_constant<caf::atom("search")>;
using health_atom = caf::atom_constant<caf::atom("health")>;
using queued_atom = caf::atom_constant<caf::atom("queued")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using run_atom = caf::atom_constant<caf::atom("run")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using send_atom = caf::atom_constant<caf::atom("send")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using link_up_atom = caf::atom_constant<caf::atom("link_up")>;
using bytes_atom = caf::atom_constant<caf::atom("bytes")>;
using link_down_atom = caf::atom_constant<caf::atom("link_down")>;
using conn_fail_atom = caf::atom_constant<caf::atom("conn_fail")>;
using timer_atom = caf::atom_constant<caf::atom("timer")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using keys_atom = caf::atom_constant<caf::atom("keys")>;
using reload_atom = caf::atom_constant<caf::atom("reload")>;
using convert_atom = caf::atom_constant<caf::atom("convert")>;
using purge_atom = caf::atom_constant<caf::atom("purge")>;
using vacuum_atom = caf::atom_constant<caf::atom("vacuum")>;
using space_atom = caf::atom_constant<caf::atom("space")>;
using modem_atom = caf::atom_constant<caf::atom("modem")>;
using fault_atom = caf::atom_constant<caf::atom("fault")>;
using join_atom = caf::atom_constant<caf::atom("join")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;

// ---- errors the actors answer with ----
enum class app_errc : std::uint8_t {
  unknown_test = 1,    // no test with that id (HTTP 400)
  unknown_batch,       // no batch with that id (HTTP 400)
  storage_failure,     // SQLite failed (HTTP 500; details logged, not sent)
};
caf::error make_error(app_errc code);
caf::error make_error(app_errc code, std::string context);
inline const caf::atom_value app_error_category = caf::atom("mts");

// ---- message payloads beyond the model ----
struct batch_inserted {
  batch_id batch = 0;
  std::vector<test_id> tests;
};

// The answer to a start that fetches the record: started=false if the test was no longer
// pending (record then empty); otherwise the whole record as it is now RUNNING.
struct started_test {
  bool started = false;
  test_record record;
};

// A joined collector as the scheduler sees it: what it offers, its secret left out.
struct node_offer {
  std::string name;
  std::int64_t tcp_sessions = 0;
  std::vector<modem_settings> modems;
  reach_rules reach;
};

struct scheduler_stats {
  std::int64_t queued_immediate = 0;
  std::int64_t queued_overnight = 0;
  std::int64_t running = 0;
};

// ---- interfaces ----

// Where the persistence actor reports new tests once they are committed: the scheduler.
using queue_sink_actor = caf::typed_actor<
  // Tests just stored (one message per commit), in id order: queue them.
  caf::reacts_to<queued_atom, std::vector<queued_test>>>;

// The PERSISTENCE actor: the server's only writer to SQLite. Every reply is sent after the
// change is committed. New tests, test starts and results are group-committed
// (actors/persistence.hpp).
using persistence_actor = caf::typed_actor<
  // test-request: store one test; answers its id. The queue sink hears of it first.
  caf::replies_to<insert_atom, test_request, unix_seconds>::with<test_id>,
  // batch-request: store a batch in one transaction; answers the batch id and test ids in
  // request order. The queue sink hears of them first.
  caf::replies_to<insert_atom, std::vector<test_request>, unix_seconds>::with<batch_inserted>,
  // Delete a test if it is still pending; answers whether it was deleted.
  caf::replies_to<delete_atom, test_id>::with<bool>,
  // Whether a test exists in any state.
  caf::replies_to<exists_atom, test_id>::with<bool>,
  // batch-cancel: delete pending (and, if asked, completed) tests of a batch.
  caf::replies_to<cancel_atom, batch_id, bool>::with<batch_cancel_result>,
  // Mark a pending test running at the given time; answers false if it is no longer pending.
  caf::replies_to<start_atom, test_id, unix_seconds>::with<bool>,
  // The same, answering the whole record once it is RUNNING (what the scheduler dispatches).
  caf::replies_to<start_atom, get_atom, test_id, unix_seconds>::with<started_test>,
  // Record a running test's outcome, exactly once; answers whether it was written.
  caf::replies_to<finish_atom, test_outcome>::with<bool>,
  // Start-up recovery: running tests back to pending; answers the whole pending queue.
  caf::replies_to<recover_atom>::with<std::vector<test_record>>,
  // The same recovery, answering only the queued tests' ids and scheduling keys, in id order;
  // from then on every new test is told to the sink after its commit and before its answer.
  caf::replies_to<recover_atom, keys_atom, queue_sink_actor>::with<std::vector<queued_test>>,
  // Note that a token was used (sent at most once a minute per token).
  caf::reacts_to<touch_atom, std::int64_t, unix_seconds>,
  // Probe: commit one tiny write, recording the result in the writer's health
  // (service-status sends it when the last verdict is older than a second).
  caf::reacts_to<health_atom>,
  // Compact storage: store one converted chunk, the rows packed, the conversion done up to the
  // id; answers the progress after it (actors/converter.hpp).
  caf::replies_to<convert_atom, std::vector<packed_row>, test_id>::with<conversion_progress>,
  // Retention: one purge step in one transaction (actors/retention.hpp); the answer says how long
  // it held the writer.
  caf::replies_to<purge_atom, purge_step>::with<purge_step_result>,
  // Give at most this many free pages back to the file system; answers the size after it.
  caf::replies_to<vacuum_atom, std::int64_t>::with<vacuum_step_result>,
  // The database's size.
  caf::replies_to<space_atom>::with<storage_space>,
  // Internal (the actor sends it to itself): commit the test starts and results waiting.
  caf::reacts_to<flush_atom>>;

// A READER actor: answers queries on its own read-only connection. The server runs a few.
// The queries that may read many rows. (A test by id, for test-status and test-transcript, is
// read on the HTTP thread's own connection: persistence/thread_reader.hpp.)
using reader_actor = caf::typed_actor<
  // batch-status: the batch's tests as summaries (error unknown_batch).
  caf::replies_to<get_atom, batch_atom, batch_id>::with<std::vector<test_record>>,
  // test-search.
  caf::replies_to<search_atom, search_query>::with<search_page>>;

// The CONVERTER converts rows stored before the compact encoding, one step at a time, in the
// background (actors/converter.hpp).
using converter_actor = caf::typed_actor<
  // Internal (it sends it to itself): convert the next chunk.
  caf::reacts_to<convert_atom>>;

// The RETENTION actor purges what is older than the retention settings, in steps, and keeps
// the storage figures service-status shows (actors/retention.hpp).
using retention_actor = caf::typed_actor<
  // Run a purge pass now, unless one is running (its own timer sends it every interval).
  caf::reacts_to<tick_atom>,
  // A configuration reload: the retention periods, interval and step size from the next pass on.
  caf::reacts_to<reload_atom, std::shared_ptr<const retention_config>>>;

// The MODEM BROKER hands out the modems of the pool, which it owns (actors/modem_pool.hpp):
// the scheduler. A test actor asks it for a modem for each dial-up attempt and reports faults.
using modem_broker_actor = caf::typed_actor<
  // The running test needs a modem: the one it holds, else a free one in service (it then
  // holds it until its outcome is recorded); nothing if none is free.
  caf::replies_to<modem_atom, get_atom, test_id>::with<modem_grant>,
  // The test's modem failed (the reason): out of service for the cool-down, and freed.
  caf::reacts_to<modem_atom, fault_atom, test_id, std::string>>;

// The EXECUTOR runs one test to its end (all attempts) and answers the outcome. It spawns one
// TEST actor per run and delegates the request to it (actors/executor.hpp).
using executor_actor = caf::typed_actor<
  // Run the test (all attempts) with modems from the broker, and answer its outcome; the
  // scheduler records it.
  caf::replies_to<run_atom, test_record, modem_broker_actor>::with<test_outcome>,
  // The same for a test whose earlier run was lost with its collector after this many
  // connection attempts: its attempts count on from there (the scheduler runs it again).
  caf::replies_to<run_atom, test_record, modem_broker_actor, std::int64_t>::with<test_outcome>,
  // A configuration reload: tests started from now on get these settings (meter types,
  // attempts, timeouts); the connection factory and the modems stay. Running tests keep theirs.
  caf::reacts_to<reload_atom, std::shared_ptr<const test_runner_config>>,
  // End every running test at once (a collector that lost its head, before it reconnects):
  // each test actor quits and its link closes, which hangs up a modem call; no outcome is
  // answered.
  caf::reacts_to<close_atom>>;

// The REGISTRAR on the head: collector nodes join the cluster through it (actors/registrar.hpp).
using registrar_actor = caf::typed_actor<
  // A collector joins with its offer and its executor (which will run tests for the head);
  // answers whether it was accepted and, if not, why.
  caf::replies_to<join_atom, collector_hello, executor_actor>::with<join_verdict>,
  // A joined collector's liveness check (every heartbeat): answers true at once. A collector
  // whose pings go unanswered takes the head for lost, as CAF would not tell it.
  caf::replies_to<ping_atom>::with<bool>>;

// The OWNER side of a link: what a CONNECTION actor tells the actor that opened it. Every
// event carries the tag the owner gave the connection (the attempt number), so an owner can
// drop events of a link it has already given up.
using link_client_actor = caf::typed_actor<
  // The link is up (TCP handshake done): bytes can flow.
  caf::reacts_to<link_up_atom, std::uint64_t>,
  // Bytes received, in order.
  caf::reacts_to<bytes_atom, std::uint64_t, std::string>,
  // Terminal: an open link is gone (closed by us or the peer, reset, ...); the reason says which.
  caf::reacts_to<link_down_atom, std::uint64_t, std::string>,
  // Terminal: the link never came up (refused, timed out, cannot resolve, ...).
  caf::reacts_to<conn_fail_atom, std::uint64_t, std::string>>;

// A CONNECTION actor: one link (actors/connection.hpp). It moves bytes and knows nothing of
// meter protocols. Its owner is a link_client_actor; it quits after the terminal event.
using connection_actor = caf::typed_actor<
  // Queue bytes for sending; bytes sent while the link is still connecting leave once it is up.
  caf::reacts_to<send_atom, std::string>,
  // Close the link gracefully (queued bytes are flushed first); link_down follows.
  caf::reacts_to<close_atom>>;

// A TEST actor: owns one test from dispatch to outcome, including retries
// (actors/test_runner.hpp). The executor delegates run requests to it.
using test_runner_actor = link_client_actor::extend<
  // Run the test (all attempts) with modems from the broker, and answer its outcome; the actor
  // quits afterwards.
  caf::replies_to<run_atom, test_record, modem_broker_actor>::with<test_outcome>,
  // The same, continuing after this many connection attempts (executor_actor).
  caf::replies_to<run_atom, test_record, modem_broker_actor, std::int64_t>::with<test_outcome>,
  // The driver's timer expired: (attempt, timer id); stale ones are ignored.
  caf::reacts_to<timer_atom, std::int64_t, std::uint64_t>,
  // The retry delay is over: start attempt number n.
  caf::reacts_to<retry_atom, std::int64_t>,
  // The connection of attempt n did not come up in time (guard beyond the reactor's own).
  caf::reacts_to<deadline_atom, std::int64_t>,
  // The whole-test deadline passed.
  caf::reacts_to<deadline_atom>>;

// What the registrar tells the scheduler (the scheduler implements it).
using node_registry_actor = caf::typed_actor<
  // A collector joined: the scheduler monitors its executor, adds its capacity and modems, and
  // gives it tests it reaches until it is lost.
  caf::reacts_to<join_atom, node_offer, executor_actor>>;

// The SCHEDULER owns the queue and the modem pool, and decides what runs when; it is the
// test actors' modem broker (the head's own directly, a collector's through that node's
// NODE BROKER, actors/node_broker.hpp). New tests do not pass through it: the HTTP threads
// give them to the persistence actor, which tells the scheduler after the commit
// (queue_sink_actor).
using scheduler_actor = modem_broker_actor::extend_with<node_registry_actor>::extend_with<queue_sink_actor>::extend<
  // A collector's test asks for its modem (modem_broker_actor), through its node's broker,
  // which adds the node's number: answered only for a test running on that node.
  caf::replies_to<modem_atom, get_atom, test_id, std::uint64_t>::with<modem_grant>,
  // A collector's test reports its modem's fault, the same way.
  caf::reacts_to<modem_atom, fault_atom, test_id, std::string, std::uint64_t>,
  // Internal: the test, taken from a lost node, may run again (its dispatch generation).
  caf::reacts_to<retry_atom, test_id, std::uint64_t>,
  // test-cancel: remove the test if it has not started; answers its id (error unknown_test).
  caf::replies_to<cancel_atom, test_id>::with<test_id>,
  // batch-cancel: answers how many tests were removed (error unknown_batch).
  caf::replies_to<cancel_atom, batch_atom, batch_id, bool>::with<std::int64_t>,
  // Re-evaluate the queue (the overnight window may have opened).
  caf::reacts_to<tick_atom>,
  // A configuration reload: the window, capacities, deadline, can_run and the modems apply
  // from now on (running tests keep their deadline; a modem in a call keeps its settings until
  // the call ends); the clock stays.
  caf::reacts_to<reload_atom, std::shared_ptr<const scheduler_config>>,
  // Queue sizes for service-status and the logs.
  caf::replies_to<stats_atom>::with<scheduler_stats>>;

} // namespace mts

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::search_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::search_page)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::batch_cancel_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::batch_inserted)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::scheduler_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::node_offer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::started_test)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mts::queued_test>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<const mts::scheduler_config>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<const mts::test_runner_config>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<const mts::retention_config>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mts::packed_row>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::conversion_progress)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::purge_step)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::purge_step_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::storage_space)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mts::vacuum_step_result)

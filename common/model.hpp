#pragma once
// The domain model shared by the HTTP layer, the actors and the store. Plain structs: the
// actors pass them in messages, the store maps them to rows, the codecs map them to JSON.
#include "common/time.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mts {

using test_id = std::int64_t;
using batch_id = std::int64_t;

// A validated test-request (one element of a batch-request). surveyDate is already resolved:
// when surveyDays > 0 it always holds the first survey day.
struct test_request {
  std::optional<std::string> request_reference;
  bool immediate = false;
  std::string meter_type;
  std::string remote_address;
  std::optional<std::string> coms_settings;
  std::optional<std::string> outstation_address;
  std::optional<std::string> serial_number;
  std::optional<std::string> password;
  std::int64_t survey_days = 0;
  std::optional<std::string> survey_date; // yyyy-MM-dd
};

// Where a test is in its life. Running tests still report resultSummary PENDING.
enum class test_state { pending, running, completed };

const char* to_string(test_state s);
std::optional<test_state> test_state_from_string(const std::string& s);

// What one run of a test produced: written once, when the test ends.
struct test_outcome {
  test_id id = 0;
  std::string result; // "SUCCESS", "PARTIAL SUCCESS" or "ERROR: <details>"
  unix_seconds test_end_time = 0;
  std::optional<unix_seconds> connection_start_time;
  std::optional<unix_seconds> connection_end_time;
  // JSON object text with what the meter gave: serialNumber, meterTime, statusEvents,
  // registerValues, surveyData (each only when read). Empty when nothing was read.
  std::string readings_json;
  // Connection attempts of the run that produced this outcome (the test actor's; a run starts
  // again at 1 after a restart). Nothing when no test actor answered (executor failure).
  std::optional<std::int64_t> connection_attempts;
  // JSON array text of the attempts' transcripts (actors/transcript.hpp); empty when none
  // were recorded (scheduler.transcript_max_bytes = 0, or the test never ran).
  std::string transcript_json;
  // The two texts above in the form the store keeps (persistence/packed_json.hpp), when the
  // outcome's producer packed them (the test actor does, on its own thread, so that the one
  // database writer does not spend its time compressing). Empty: the store packs the text.
  std::string packed_readings;
  std::string packed_transcript;
};

// A stored test as test-status, batch-status and test-search see it.
struct test_record {
  test_id id = 0;
  std::optional<batch_id> batch;
  unix_seconds received_time = 0;
  test_request request;
  test_state state = test_state::pending;
  std::string result = "PENDING";
  std::int64_t attempts = 0; // dispatches (runs started), restarts included
  std::optional<unix_seconds> test_start_time;
  std::optional<unix_seconds> test_end_time;
  std::optional<unix_seconds> connection_start_time;
  std::optional<unix_seconds> connection_end_time;
  std::optional<unix_seconds> completed_time;
  std::optional<std::int64_t> connection_attempts; // see test_outcome; once completed
  std::string readings_json; // see test_outcome; not loaded for summaries
};

enum class status_filter { all, completed, pending };

// A validated test-search.
struct search_query {
  unix_seconds from_time = 0;
  unix_seconds to_time = 0; // inclusive
  std::optional<std::string> request_reference; // exact
  std::optional<std::string> meter_type;        // exact
  std::optional<std::string> remote_address;    // substring
  status_filter status = status_filter::all;
  std::int64_t limit = 0;
  std::int64_t offset = 0;
  bool reverse_order = false;
};

struct search_page {
  std::int64_t total_count = 0;
  std::vector<test_record> results; // summaries: readings_json is empty
};

// A queued test as the scheduler keeps it: its id and scheduling keys, not the request
// (start-up recovery loads only these; the full record is read when the test starts).
struct queued_test {
  test_id id = 0;
  bool immediate = false;
  std::string meter_type;     // for can_run
  std::string remote_address; // exclusivity per address, TCP or modem
};

// What batch-cancel did.
struct batch_cancel_result {
  bool found = false;
  std::int64_t cancelled_count = 0;
  std::vector<test_id> removed; // ids deleted, so the scheduler can drop them from its queue
};

// ---- storage maintenance (persistence/store.hpp; actors/retention.hpp, actors/converter.hpp) ----

// What one purge step deletes (store::purge_step).
enum class purge_kind { completed_tests, transcripts, empty_batches };

// One purge step: the next `limit` rows after `after`, of those received before `cutoff`.
struct purge_step {
  purge_kind kind = purge_kind::completed_tests;
  unix_seconds cutoff = 0;
  std::int64_t after = 0;
  std::int64_t limit = 1;
};

struct purge_step_result {
  std::int64_t deleted = 0;
  std::int64_t next_after = 0; // where the next step of the pass starts
  bool done = false;           // the pass has looked at every row received before the cutoff
  std::int64_t duration_us = 0; // how long the step held the writer (its transaction)
};

// The database's size.
struct storage_space {
  std::int64_t page_size = 0;
  std::int64_t pages = 0;      // the database in pages (the file's size once checkpointed)
  std::int64_t free_pages = 0; // of those, free: reused by new rows
  std::int64_t wal_bytes = 0;  // the write-ahead log file
  bool incremental_vacuum = false; // free pages can be given back to the file system
  std::int64_t bytes() const { return pages * page_size; }
  std::int64_t free_bytes() const { return free_pages * page_size; }
};

// What one step giving free pages back did: the size after it, and how long it held the writer.
struct vacuum_step_result {
  storage_space space;
  std::int64_t duration_us = 0;
};

// How far the conversion of rows from before the compact encoding has come (schema version 5).
struct conversion_progress {
  test_id converted_to = 0; // tests with id <= this are converted
  test_id last_test_id = 0; // the last test that may hold text; 0: there is none
  bool complete() const { return converted_to >= last_test_id; }
};

// One converted row: its readings and transcript packed (persistence/packed_json.hpp), each
// only when it was stored as text.
struct packed_row {
  test_id id = 0;
  std::optional<std::string> readings;
  std::optional<std::string> transcript;
};

enum class token_scope { full, read_only };

const char* to_string(token_scope s); // "MTS API" / "MTS API read-only"
std::optional<token_scope> token_scope_from_string(const std::string& s);

struct token_info {
  std::int64_t id = 0;
  std::string name;
  token_scope scope = token_scope::full;
  unix_seconds created_time = 0;
  unix_seconds expires_time = 0;
  std::optional<unix_seconds> last_used_time;
};

} // namespace mts

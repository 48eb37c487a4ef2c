#pragma once
// The SQLite store: schema, migrations and every statement the product runs. A store object
// owns one connection and is used from one thread at a time. The server's only writer is the
// persistence actor's store; queries run on read-only stores; the `mts token` commands open a
// writer store of their own in another process and rely on SQLite's locking (busy timeout).
#include "common/model.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace mts {

// A storage failure; what() says what failed, never a value from a request.
struct store_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class store_mode { read_write, read_only };

// What a read-write open checks after its migrations (storage.startup_check). integrity: PRAGMA
// integrity_check, which also compares every index with its table (its time grows with the
// whole file: about 3 s for 200 MB here). quick: PRAGMA quick_check, the same without that
// comparison (about a quarter of the time). none: no check.
enum class open_check { integrity, quick, none };

class store {
public:
  // read_write: creates the file and its directory if needed, sets WAL, synchronous=FULL,
  // foreign_keys=ON, the busy timeout, applies pending migrations in one transaction each, and
  // runs the `check` (throws store_error if it does not answer "ok").
  // read_only: opens an existing database read-only with the same busy timeout.
  store(const std::string& path, store_mode mode, std::int64_t busy_timeout_ms,
        open_check check = open_check::integrity);
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // The schema version after migrations (the highest migration applied).
  int schema_version();
  // The version this build's migrations bring the schema to.
  static int latest_schema_version();
  // "ok" or the first problem PRAGMA quick_check reports.
  std::string quick_check();

  // ---- tests (writer) ----
  // Inserts one test in its own transaction (state PENDING); returns its id once committed.
  // Inside in_one_transaction it joins that transaction (committed with the group).
  test_id insert_test(const test_request& request, unix_seconds received_time);
  // Inserts a batch and all its tests in one transaction; returns the batch id and the test
  // ids in request order.
  std::pair<batch_id, std::vector<test_id>> insert_batch(const std::vector<test_request>& requests,
                                                         unix_seconds received_time);
  // Deletes a test only if it is still PENDING (not running, not completed). True if deleted.
  bool delete_pending_test(test_id id);
  // Whether a test with this id exists (any state).
  bool test_exists(test_id id);
  // batch-cancel: deletes the batch's PENDING tests, and its COMPLETED ones too when
  // delete_completed; RUNNING tests are never touched. found=false for an unknown batch.
  batch_cancel_result cancel_batch(batch_id id, bool delete_completed);
  // Marks a test RUNNING, increments attempts and sets test_start_time if it is not set yet
  // (the first attempt's start survives restarts). False if the test is not PENDING.
  bool mark_running(test_id id, unix_seconds start_time);
  // Writes a finished test: state COMPLETED, result, end and connection times, readings,
  // connection attempts, completed_time = outcome.test_end_time, and its transcript when it
  // has one. Only a RUNNING test is written (exactly once); false otherwise.
  bool complete_test(const test_outcome& outcome);
  // Group commit: runs fn in one write transaction; insert_test, mark_running and complete_test called
  // from fn join it instead of committing each on its own, so a burst of them costs one
  // commit (one fsync) instead of one each. If fn throws, all it wrote is rolled back and the
  // exception propagates.
  void in_one_transaction(const std::function<void()>& fn);
  // Start-up recovery: every RUNNING test goes back to PENDING (keeping test_start_time and
  // attempts); returns all PENDING tests in id order.
  std::vector<test_record> recover_queue(); // full requests; readings_json empty
  // The same recovery, reading only what the scheduler keeps of each queued test.
  std::vector<queued_test> recover_queue_keys();

  // ---- tests (queries; any mode) ----
  std::optional<test_record> find_test(test_id id);                 // with readings_json
  std::optional<std::vector<test_record>> batch_tests(batch_id id); // summaries, id order
  // test-transcript: the stored transcript JSON array text ("" when the test has none: not
  // finished, or transcripts off); nothing for an unknown test.
  std::optional<std::string> find_transcript(test_id id);
  search_page search(const search_query& query);                    // summaries

  // ---- tokens ----
  // Stores a token's SHA-256 hash (32 bytes) with its metadata; throws store_error if the
  // name is taken. Returns the new token's id.
  std::int64_t insert_token(const std::string& name, token_scope scope,
                            const std::string& token_hash, unix_seconds created_time,
                            unix_seconds expires_time);
  std::vector<token_info> list_tokens();
  // Deletes by name; false when there is no such token.
  bool delete_token(const std::string& name);
  // Looks up a token by its hash; the caller compares the returned hash in constant time.
  // A found row is remembered on this connection until a token changes (any insert, delete or
  // change other than the last use, by any process: schema version 7), so that the check on
  // every request costs one read of a one-row table; info.last_used_time may then be older
  // than the row's.
  struct token_match {
    token_info info;
    std::string token_hash;
  };
  std::optional<token_match> find_token_by_hash(const std::string& token_hash);
  void touch_token(std::int64_t id, unix_seconds last_used_time);

  // Commits one tiny write (the service_probe row): throws store_error when the database
  // cannot take a write (read-only, full, locked past the busy timeout, ...).
  void probe_write(unix_seconds now);

  // ---- compact storage: converting rows from before schema version 5 ----
  // Readings and transcripts are stored packed (persistence/packed_json.hpp). Rows written
  // before are converted in small steps (actors/converter.hpp); readers accept both forms.
  // How far the conversion has come (complete() when there is nothing, or nothing left, to do).
  conversion_progress conversion();
  // The next chunk to convert: the tests after `after`, at most `limit` of them, up to `up_to`,
  // ending early once the readings read pass `max_bytes` of text (at least one test). `rows`
  // are those of the chunk whose readings or transcript are still stored as text, with those
  // texts (one read transaction); the chunk covers ids (after, end].
  struct text_row {
    test_id id = 0;
    std::optional<std::string> readings_json;
    std::optional<std::string> transcript_json;
  };
  struct text_chunk {
    std::vector<text_row> rows;
    test_id end = 0;
  };
  text_chunk text_rows(test_id after, test_id up_to, std::int64_t limit, std::int64_t max_bytes);
  // Writer: stores the packed forms of rows read by text_rows (each only if that row still
  // holds text: one deleted or converted meanwhile is left alone) and records the conversion as
  // done up to `converted_to`, in one transaction; answers the progress after it.
  conversion_progress store_packed(const std::vector<packed_row>& rows, test_id converted_to);

  // ---- retention (writer) ----
  // One step of a purge, in one transaction: looks at the next `step.limit` rows after
  // `step.after` (in id order) among those received before `step.cutoff`, and deletes those the
  // kind says:
  // - completed_tests: COMPLETED tests with completed_time < cutoff (their transcripts go with
  //   them); PENDING and RUNNING tests are never deleted, whatever their age;
  // - transcripts: transcripts of tests with completed_time < cutoff (the tests stay);
  // - empty_batches: batches received before cutoff that have no test left.
  // A pass starts at after = 0 and goes on from next_after until done.
  purge_step_result purge(const purge_step& step);

  // ---- space ----
  storage_space space();
  // Writer: gives at most `pages` free pages back to the file system in one transaction
  // (PRAGMA incremental_vacuum; nothing on a database without auto_vacuum INCREMENTAL).
  // Answers the space after it.
  storage_space release_free_pages(std::int64_t pages);

  // ---- several reads, one snapshot ----
  // Begins a read transaction (BEGIN DEFERRED) that the statements run on this connection join
  // until end_read() (COMMIT). Several lookups then see one snapshot and cost one start and end
  // of a WAL read transaction instead of one each: in a test-status, the token check and the
  // test, those two were a quarter of the request's CPU. Nothing may wait in between: an open
  // read transaction keeps the WAL from being checkpointed past it.
  void begin_read();
  void end_read() noexcept;

  // Holds a read transaction for a scope (begin_read/end_read).
  class read_scope {
  public:
    explicit read_scope(store& s) : s_(s) { s_.begin_read(); }
    ~read_scope() { s_.end_read(); }
    read_scope(const read_scope&) = delete;
    read_scope& operator=(const read_scope&) = delete;

  private:
    store& s_;
  };

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace mts

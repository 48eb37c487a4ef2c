#include "persistence/schema.hpp"

namespace mts::schema {

const char* const bootstrap_sql =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "  version    INTEGER PRIMARY KEY,"
    "  applied_at INTEGER NOT NULL"
    ")";

namespace {

// Version 1: tokens, batches, tests.
//
// Ids of tokens, batches and tests use AUTOINCREMENT so an id is never handed out again after
// its row is deleted: a cancelled test's id must stay unknown (DECISIONS "test-cancel"), and a
// deleted token's id must not be inherited by a new token (caches and rate limits key on it).
//
// Batches: batch-cancel deletes tests, not the batch, so batch-status of a fully cancelled batch
// still finds the batch and answers totalCount 0 (an unknown batch is a 400, a known empty one
// is not). (Since retention, actors/retention.hpp, a batch left without tests is deleted once
// it is older than storage.retain_completed_days.) tests.batch_id uses
// ON DELETE SET NULL only so that removing a batch row by hand (maintenance) cannot fail or
// silently delete tests; the tests then simply stop belonging to a batch.
const char* const migration_1 = R"SQL(
CREATE TABLE tokens (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  name           TEXT    NOT NULL UNIQUE,
  scope          TEXT    NOT NULL CHECK (scope IN ('MTS API', 'MTS API read-only')),
  token_hash     BLOB    NOT NULL UNIQUE,
  created_time   INTEGER NOT NULL,
  expires_time   INTEGER NOT NULL,
  last_used_time INTEGER
);

CREATE TABLE batches (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  received_time INTEGER NOT NULL
);

CREATE TABLE tests (
  id                    INTEGER PRIMARY KEY AUTOINCREMENT,
  batch_id              INTEGER REFERENCES batches(id) ON DELETE SET NULL,
  received_time         INTEGER NOT NULL,
  request_reference     TEXT,
  immediate             INTEGER NOT NULL CHECK (immediate IN (0, 1)),
  meter_type            TEXT    NOT NULL,
  remote_address        TEXT    NOT NULL,
  coms_settings         TEXT,
  outstation_address    TEXT,
  serial_number         TEXT,
  password              TEXT,
  survey_days           INTEGER NOT NULL,
  survey_date           TEXT,
  state                 TEXT    NOT NULL CHECK (state IN ('PENDING', 'RUNNING', 'COMPLETED')),
  result                TEXT    NOT NULL DEFAULT 'PENDING',
  attempts              INTEGER NOT NULL DEFAULT 0,
  test_start_time       INTEGER,
  test_end_time         INTEGER,
  connection_start_time INTEGER,
  connection_end_time   INTEGER,
  completed_time        INTEGER,
  readings_json         TEXT
);

CREATE INDEX tests_received_time ON tests (received_time);
CREATE INDEX tests_batch_id ON tests (batch_id);
CREATE INDEX tests_state ON tests (state);
CREATE INDEX tests_meter_type_received_time ON tests (meter_type, received_time);
CREATE INDEX tests_request_reference_received_time ON tests (request_reference, received_time);
)SQL";

// Version 2: tests.connection_attempts, the connection attempts of the run that produced the
// result (test-status `attempts`). NULL until the test completes, and for tests completed
// before this version (the number was not kept then). tests.attempts keeps counting
// dispatches (runs started, a restart's included).
const char* const migration_2 = R"SQL(
ALTER TABLE tests ADD COLUMN connection_attempts INTEGER;
)SQL";

// Transcripts (test-transcript): one row per completed test that recorded any, the JSON array
// of its attempts' transcripts (actors/transcript.hpp). A table of its own, not a column of
// tests: most queries never want it, and deleting a test deletes its transcript (cascade).
// Version 3 (a version is its place in all_migrations).
const char* const migration_transcripts = R"SQL(
CREATE TABLE test_transcripts (
  test_id         INTEGER PRIMARY KEY REFERENCES tests(id) ON DELETE CASCADE,
  transcript_json TEXT NOT NULL
);
)SQL";

// The writer's health probe (service-status, docs/operations.md): one row, rewritten by a
// small committed transaction, so "the writer can commit" is tested by committing.
// Version 4.
const char* const migration_service_probe = R"SQL(
CREATE TABLE service_probe (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  written_time INTEGER NOT NULL
);
)SQL";

// Version 5: compact storage (persistence/packed_json.hpp). Readings and transcripts are
// written packed into new BLOB columns; the text columns stay for the rows written before, and
// are emptied as those rows are converted in the background in small steps (actors/converter.hpp),
// so this migration itself only adds columns and one row and takes milliseconds on any
// database. Readers accept either form at every moment:
// - tests.readings: the packed readings; NULL with tests.readings_json NULL: none were read;
//   NULL with readings_json set: a row from before version 5, not converted yet.
// - test_transcripts.transcript: the packed transcript; NULL: transcript_json holds the text
//   (before version 5). A converted or new row keeps transcript_json '' (it is NOT NULL).
// - storage_conversion: the conversion's progress, committed with each step, so that a
//   conversion interrupted at any point (crash, power cut, restart) goes on from its last step.
//   One row while rows up to last_test_id may hold text: tests with id <= converted_to are
//   converted. No row: nothing to convert (a database created at this version or later).
const char* const migration_packed = R"SQL(
ALTER TABLE tests ADD COLUMN readings BLOB;
ALTER TABLE test_transcripts ADD COLUMN transcript BLOB;
CREATE TABLE storage_conversion (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  converted_to INTEGER NOT NULL,
  last_test_id INTEGER NOT NULL
);
INSERT INTO storage_conversion (id, converted_to, last_test_id)
  SELECT 1, 0, m FROM (SELECT MAX(id) AS m FROM tests) WHERE m IS NOT NULL;
)SQL";

// Version 6: test-search by status counts from an index alone. The matches of
// `status=PENDING` (or COMPLETED) in a time range were counted through tests_state, reading
// every matching row for its received_time (189 ms for a million pending tests); with
// (state, received_time) the count walks index entries only. It replaces tests_state, whose
// uses (the scheduler's recovery, retention) it serves as well. Building it reads the table
// once (about a second per million tests).
const char* const migration_state_time = R"SQL(
CREATE INDEX tests_state_received_time ON tests (state, received_time);
DROP INDEX tests_state;
)SQL";

// Version 7: a count of the changes to the tokens, kept by triggers whoever writes (the server,
// an `mts token` command, a maintenance shell). A reader remembers the token rows it has
// looked up for as long as the count has not moved (store::find_token_by_hash): every request
// checks a token, tokens change rarely, and a deleted token must stop working at once, also
// when another process deleted it. Only a token's last use (last_used_time) changes nothing.
const char* const migration_token_changes = R"SQL(
CREATE TABLE token_changes (
  id    INTEGER PRIMARY KEY CHECK (id = 1),
  count INTEGER NOT NULL
);
INSERT INTO token_changes (id, count) VALUES (1, 0);
CREATE TRIGGER tokens_inserted AFTER INSERT ON tokens
  BEGIN UPDATE token_changes SET count = count + 1; END;
CREATE TRIGGER tokens_deleted AFTER DELETE ON tokens
  BEGIN UPDATE token_changes SET count = count + 1; END;
CREATE TRIGGER tokens_updated AFTER UPDATE OF id, name, scope, token_hash, created_time, expires_time ON tokens
  BEGIN UPDATE token_changes SET count = count + 1; END;
)SQL";

const char* const all_migrations[] = {
    migration_1,
    migration_2,
    migration_transcripts,
    migration_service_probe,
    migration_packed,
    migration_state_time,
    migration_token_changes,
};

} // namespace

const char* const* migrations() { return all_migrations; }

std::size_t migration_count() { return sizeof(all_migrations) / sizeof(all_migrations[0]); }

} // namespace mts::schema

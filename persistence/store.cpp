#include "persistence/store.hpp"

#include "persistence/packed_json.hpp"
#include "persistence/schema.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

namespace mts {

namespace {

// ---- error wrapping ----
// Every public operation runs inside guarded(): an SQLite::Exception becomes a store_error
// naming the operation. SQLite's messages name tables and columns, never bound values, so no
// request value (a password, say) can reach the message.
template <class F>
auto guarded(std::string_view operation, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const SQLite::Exception& e) {
    throw store_error(std::string(operation) + ": " + e.what());
  }
}

// Runs f again while SQLite reports the database busy or locked, for at most timeout_ms.
template <class F>
auto retry_while_busy(std::int64_t timeout_ms, F&& f) -> decltype(f()) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    try {
      return f();
    } catch (const SQLite::Exception& e) {
      const int code = e.getErrorCode() & 0xff;
      if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || std::chrono::steady_clock::now() >= deadline)
        throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

// ---- binding and reading ----
void bind_text(SQLite::Statement& st, int index, const std::string& value) {
  st.bind(index, value); // sqlite3_bind_text with the explicit length: embedded NULs survive
}

void bind_opt_text(SQLite::Statement& st, int index, const std::optional<std::string>& value) {
  if (value) {
    st.bind(index, *value);
  } else {
    st.bind(index);
  }
}

void bind_int(SQLite::Statement& st, int index, std::int64_t value) {
  st.bind(index, static_cast<std::int64_t>(value));
}

void bind_opt_int(SQLite::Statement& st, int index, const std::optional<std::int64_t>& value) {
  if (value) {
    st.bind(index, static_cast<std::int64_t>(*value));
  } else {
    st.bind(index);
  }
}

void bind_blob(SQLite::Statement& st, int index, const std::string& bytes) {
  st.bind(index, static_cast<const void*>(bytes.data()), static_cast<int>(bytes.size()));
}

// Text or blob column as bytes, with the stored length (never strlen). NULL reads as "".
std::string column_bytes(const SQLite::Column& c) {
  const void* data = c.getBlob(); // for TEXT this is the text itself; call before getBytes()
  const int size = c.getBytes();
  if (data == nullptr || size <= 0) return std::string();
  return std::string(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

std::optional<std::string> column_opt_text(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return column_bytes(c);
}

std::optional<std::int64_t> column_opt_int(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getInt64();
}

// Resets a (cached) statement and clears its bindings when it is taken into use and again
// when the use ends, even by an exception. Resetting at the end matters: a statement left
// mid-result keeps its read transaction open, and a read-only store would then keep seeing an
// old snapshot. Clearing matters because the insert statement's bindings hold passwords.
class statement_use {
public:
  explicit statement_use(SQLite::Statement& st) : st_(st) { clean(); }
  ~statement_use() { clean(); }
  statement_use(const statement_use&) = delete;
  statement_use& operator=(const statement_use&) = delete;
  SQLite::Statement& operator*() const { return st_; }
  SQLite::Statement* operator->() const { return &st_; }

private:
  void clean() noexcept {
    st_.tryReset();
    try {
      st_.clearBindings();
    } catch (...) {
      // sqlite3_clear_bindings cannot fail on a valid statement; nothing to do if it did.
    }
  }
  SQLite::Statement& st_;
};

// ---- test rows ----
// Columns of a test summary, in the order read_test_row() expects; the full record adds the
// readings in both stored forms, readings_json (text, rows from before schema version 5 not
// converted yet) and readings (packed), as the last two columns.
#define MTS_TEST_SUMMARY_COLUMNS                                                              \
  "id, batch_id, received_time, request_reference, immediate, meter_type, remote_address, "   \
  "coms_settings, outstation_address, serial_number, password, survey_days, survey_date, "    \
  "state, result, attempts, test_start_time, test_end_time, connection_start_time, "          \
  "connection_end_time, completed_time, connection_attempts"
constexpr int summary_column_count = 22;

// A JSON text stored either as text (a row from before schema version 5 that the background
// conversion has not reached yet) or packed (persistence/packed_json.hpp); the packed form wins
// when both are set. A packed value that does not decode is a storage failure naming the test,
// never a wrong answer.
std::string stored_text(const SQLite::Column& text, const SQLite::Column& packed, const char* what, test_id id) {
  if (packed.isNull())
    return column_bytes(text);
  try {
    return packed_json::unpack(column_bytes(packed));
  } catch (const packed_json::corrupt& e) {
    throw store_error(std::string("the stored ") + what + " of test " + std::to_string(id) +
                      " cannot be decoded: " + e.what());
  }
}

test_record read_test_row(SQLite::Statement& st, bool with_readings) {
  test_record r;
  r.id = st.getColumn(0).getInt64();
  r.batch = column_opt_int(st.getColumn(1));
  r.received_time = st.getColumn(2).getInt64();
  r.request.request_reference = column_opt_text(st.getColumn(3));
  r.request.immediate = st.getColumn(4).getInt64() != 0;
  r.request.meter_type = column_bytes(st.getColumn(5));
  r.request.remote_address = column_bytes(st.getColumn(6));
  r.request.coms_settings = column_opt_text(st.getColumn(7));
  r.request.outstation_address = column_opt_text(st.getColumn(8));
  r.request.serial_number = column_opt_text(st.getColumn(9));
  r.request.password = column_opt_text(st.getColumn(10));
  r.request.survey_days = st.getColumn(11).getInt64();
  r.request.survey_date = column_opt_text(st.getColumn(12));
  const std::string state = column_bytes(st.getColumn(13));
  const auto parsed = test_state_from_string(state);
  if (!parsed) throw store_error("read test: unknown state in the database");
  r.state = *parsed;
  r.result = column_bytes(st.getColumn(14));
  r.attempts = st.getColumn(15).getInt64();
  r.test_start_time = column_opt_int(st.getColumn(16));
  r.test_end_time = column_opt_int(st.getColumn(17));
  r.connection_start_time = column_opt_int(st.getColumn(18));
  r.connection_end_time = column_opt_int(st.getColumn(19));
  r.completed_time = column_opt_int(st.getColumn(20));
  r.connection_attempts = column_opt_int(st.getColumn(21));
  if (with_readings)
    r.readings_json = stored_text(st.getColumn(summary_column_count), st.getColumn(summary_column_count + 1),
                                  "readings", r.id);
  return r;
}

// ---- token rows ----
constexpr const char* token_columns =
    "id, name, scope, created_time, expires_time, last_used_time";

token_info read_token_row(SQLite::Statement& st) {
  token_info t;
  t.id = st.getColumn(0).getInt64();
  t.name = column_bytes(st.getColumn(1));
  const auto scope = token_scope_from_string(column_bytes(st.getColumn(2)));
  if (!scope) throw store_error("read token: unknown scope in the database");
  t.scope = *scope;
  t.created_time = st.getColumn(3).getInt64();
  t.expires_time = st.getColumn(4).getInt64();
  t.last_used_time = column_opt_int(st.getColumn(5));
  return t;
}

constexpr std::size_t token_hash_size = 32;

std::string schema_too_new(int found) {
  return "database schema version " + std::to_string(found) +
         " is newer than this build supports (" + std::to_string(store::latest_schema_version()) +
         ")";
}

} // namespace

struct store::impl {
  // Declared first so it is destroyed last: the statements below must be finalized before
  // the connection closes.
  SQLite::Database db;
  store_mode mode;
  bool grouping = false; // inside in_one_transaction: writes join its transaction

  std::unique_ptr<SQLite::Statement> insert_test_st;
  std::unique_ptr<SQLite::Statement> find_test_st;
  std::unique_ptr<SQLite::Statement> find_token_st;
  std::unique_ptr<SQLite::Statement> touch_token_st;
  std::unique_ptr<SQLite::Statement> mark_running_st;
  std::unique_ptr<SQLite::Statement> complete_test_st;
  std::unique_ptr<SQLite::Statement> insert_transcript_st;
  std::unique_ptr<SQLite::Statement> begin_read_st;
  std::unique_ptr<SQLite::Statement> end_read_st;
  std::unique_ptr<SQLite::Statement> token_changes_st;

  // The token rows this connection has looked up, by hash, while token_changes.count was
  // token_count (schema.cpp, version 7). Bounded: cleared when it would pass max_known_tokens.
  std::unordered_map<std::string, token_match> known_tokens;
  std::int64_t token_count = -1;
  static constexpr std::size_t max_known_tokens = 256;

  impl(const std::string& path, store_mode m, int flags, std::int64_t busy_timeout_ms)
      : db(path, flags, clamp_timeout(busy_timeout_ms)), mode(m) {}

  static int clamp_timeout(std::int64_t ms) {
    if (ms < 0) return 0;
    if (ms > 0x7fffffff) return 0x7fffffff;
    return static_cast<int>(ms);
  }

  SQLite::Statement& cached(std::unique_ptr<SQLite::Statement>& slot, const char* sql) {
    if (!slot) slot = std::make_unique<SQLite::Statement>(db, sql);
    return *slot;
  }

  // Highest applied migration; 0 for a database that has none (or no schema_migrations).
  int read_version() {
    if (!db.tableExists("schema_migrations")) return 0;
    SQLite::Statement st(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    st.executeStep();
    const std::int64_t v = st.getColumn(0).getInt64();
    return v > 0x7fffffff ? 0x7fffffff : static_cast<int>(v);
  }

  // Applies the migrations this database lacks. Another process (the `mts token` CLI, or a
  // second server by mistake) may be doing the same at the same moment, so every step takes
  // the write lock first (BEGIN IMMEDIATE) and only then reads the version it starts from.
  void migrate() {
    const int latest = store::latest_schema_version();
    {
      const int v = read_version(); // cheap pre-check without the write lock
      if (v > latest) throw store_error(schema_too_new(v));
      if (v == latest) return;
    }
    for (;;) {
      SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
      db.exec(schema::bootstrap_sql);
      const int v = read_version();
      if (v > latest) throw store_error(schema_too_new(v));
      if (v == latest) {
        tx.commit();
        return;
      }
      db.exec(schema::migrations()[v]);
      SQLite::Statement rec(db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
      rec.bind(1, static_cast<std::int64_t>(v + 1));
      rec.bind(2, static_cast<std::int64_t>(now_utc()));
      rec.exec();
      tx.commit();
    }
  }

  void check_integrity(open_check check) {
    if (check == open_check::none) return;
    const bool quick = check == open_check::quick;
    const std::string what = quick ? "database quick check" : "database integrity check";
    SQLite::Statement st(db, quick ? "PRAGMA quick_check" : "PRAGMA integrity_check");
    if (!st.executeStep()) throw store_error(what + " returned nothing");
    const std::string first = column_bytes(st.getColumn(0));
    if (first != "ok") throw store_error(what + " failed: " + first);
  }

  // One INSERT of a test row (used inside the caller's transaction).
  test_id insert_test_row(const test_request& r, std::optional<batch_id> batch,
                          unix_seconds received_time) {
    statement_use st(cached(insert_test_st,
                            "INSERT INTO tests (batch_id, received_time, request_reference, "
                            "immediate, meter_type, remote_address, coms_settings, "
                            "outstation_address, serial_number, password, survey_days, "
                            "survey_date, state, result, attempts) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', 'PENDING', 0)"));
    bind_opt_int(*st, 1, batch);
    bind_int(*st, 2, received_time);
    bind_opt_text(*st, 3, r.request_reference);
    bind_int(*st, 4, r.immediate ? 1 : 0);
    bind_text(*st, 5, r.meter_type);
    bind_text(*st, 6, r.remote_address);
    bind_opt_text(*st, 7, r.coms_settings);
    bind_opt_text(*st, 8, r.outstation_address);
    bind_opt_text(*st, 9, r.serial_number);
    bind_opt_text(*st, 10, r.password);
    bind_int(*st, 11, r.survey_days);
    bind_opt_text(*st, 12, r.survey_date);
    st->exec();
    return db.getLastInsertRowid();
  }

  bool batch_exists(batch_id id) {
    SQLite::Statement st(db, "SELECT 1 FROM batches WHERE id = ?");
    st.bind(1, static_cast<std::int64_t>(id));
    return st.executeStep();
  }
};

// The write transaction of one store call: its own, or, inside in_one_transaction, none (the
// group's transaction commits everything at once).
class write_transaction {
public:
  write_transaction(SQLite::Database& db, bool grouping) {
    if (!grouping)
      tx_.emplace(db, SQLite::TransactionBehavior::IMMEDIATE);
  }
  void commit() {
    if (tx_)
      tx_->commit();
  }

private:
  std::optional<SQLite::Transaction> tx_;
};

store::store(const std::string& path, store_mode mode, std::int64_t busy_timeout_ms, open_check check) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  if (mode == store_mode::read_only) {
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      throw store_error("database file " + path +
                        " does not exist; start the server or run a token command once to "
                        "create it");
    }
    impl_ = guarded("open database " + path, [&] {
      return std::make_unique<impl>(path, mode, SQLite::OPEN_READONLY | SQLite::OPEN_NOMUTEX, busy_timeout_ms);
    });
  } else {
    if (p.has_parent_path()) {
      std::error_code ec;
      fs::create_directories(p.parent_path(), ec);
      if (ec) {
        throw store_error("create directory " + p.parent_path().string() + ": " + ec.message());
      }
    }
    impl_ = guarded("open database " + path, [&] {
      return std::make_unique<impl>(path, mode, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE,
                                    busy_timeout_ms);
    });
  }

  guarded("open database " + path, [&] {
    SQLite::Database& db = impl_->db;
    db.exec("PRAGMA foreign_keys=ON");
    if (mode == store_mode::read_write) {
      // Two processes creating the same database at once (the server and a `mts token`
      // command) can make the switch to WAL fail with SQLITE_BUSY without SQLite's busy
      // handler ever running (its deadlock rule), so that step is retried here, within the
      // same busy timeout.
      // Before the first table exists this makes a new database able to give freed pages
      // back to the file system in steps (store::release_free_pages); on a database created
      // before, it changes nothing (that takes a VACUUM: docs/operations.md, "Storage").
      db.exec("PRAGMA auto_vacuum=INCREMENTAL");
      const std::string journal = retry_while_busy(busy_timeout_ms, [&] {
        return db.execAndGet("PRAGMA journal_mode=WAL").getString();
      });
      if (journal != "wal") {
        throw store_error("could not switch database " + path + " to WAL mode (journal_mode is " +
                          journal + ")");
      }
      db.exec("PRAGMA synchronous=FULL");
      // Debian builds SQLite with secure_delete on: every page a delete frees would be
      // overwritten with zeros, which doubles what a retention purge writes. FAST still zeroes
      // the deleted rows on the pages the delete changes anyway (the request's fields, a meter
      // password among them); freed pages (the packed readings) are overwritten by new rows or
      // given back to the file system by the incremental vacuum.
      db.exec("PRAGMA secure_delete=FAST");
      retry_while_busy(busy_timeout_ms, [&] { impl_->migrate(); });
      impl_->check_integrity(check);
    } else {
      // A reader cannot migrate: it refuses a schema it does not know, newer or older.
      const int v = impl_->read_version();
      const int latest = latest_schema_version();
      if (v > latest) throw store_error(schema_too_new(v));
      if (v < latest) {
        throw store_error("database schema version " + std::to_string(v) +
                          " is older than this build expects (" + std::to_string(latest) +
                          "); start the server once to upgrade it");
      }
    }
  });
}

store::~store() = default;

int store::latest_schema_version() { return static_cast<int>(schema::migration_count()); }

int store::schema_version() {
  return guarded("read schema version", [&] { return impl_->read_version(); });
}

std::string store::quick_check() {
  return guarded("quick check", [&] {
    SQLite::Statement st(impl_->db, "PRAGMA quick_check");
    if (!st.executeStep()) return std::string("quick_check returned nothing");
    return column_bytes(st.getColumn(0));
  });
}

// ---- tests (writer) ----

test_id store::insert_test(const test_request& request, unix_seconds received_time) {
  return guarded("insert test", [&] {
    write_transaction tx(impl_->db, impl_->grouping);
    const test_id id = impl_->insert_test_row(request, std::nullopt, received_time);
    tx.commit();
    return id;
  });
}

std::pair<batch_id, std::vector<test_id>>
store::insert_batch(const std::vector<test_request>& requests, unix_seconds received_time) {
  return guarded("insert batch", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement ins(impl_->db, "INSERT INTO batches (received_time) VALUES (?)");
    ins.bind(1, static_cast<std::int64_t>(received_time));
    ins.exec();
    const batch_id batch = impl_->db.getLastInsertRowid();
    std::vector<test_id> ids;
    ids.reserve(requests.size());
    for (const auto& r : requests) ids.push_back(impl_->insert_test_row(r, batch, received_time));
    tx.commit();
    return std::make_pair(batch, std::move(ids));
  });
}

bool store::delete_pending_test(test_id id) {
  return guarded("delete pending test", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement st(impl_->db, "DELETE FROM tests WHERE id = ? AND state = 'PENDING'");
    st.bind(1, static_cast<std::int64_t>(id));
    const int changed = st.exec();
    tx.commit();
    return changed == 1;
  });
}

bool store::test_exists(test_id id) {
  return guarded("find test", [&] {
    SQLite::Statement st(impl_->db, "SELECT 1 FROM tests WHERE id = ?");
    st.bind(1, static_cast<std::int64_t>(id));
    return st.executeStep();
  });
}

batch_cancel_result store::cancel_batch(batch_id id, bool delete_completed) {
  return guarded("cancel batch", [&] {
    batch_cancel_result out;
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    if (!impl_->batch_exists(id)) {
      tx.commit();
      return out;
    }
    out.found = true;
    // The same predicate selects and deletes, inside one write transaction, so the ids
    // reported are exactly the rows deleted. RUNNING never matches.
    const char* predicate =
        " WHERE batch_id = ?1 AND (state = 'PENDING' OR (?2 <> 0 AND state = 'COMPLETED'))";
    SQLite::Statement sel(impl_->db, std::string("SELECT id FROM tests") + predicate +
                                         " ORDER BY id");
    sel.bind(1, static_cast<std::int64_t>(id));
    sel.bind(2, delete_completed ? 1 : 0);
    while (sel.executeStep()) out.removed.push_back(sel.getColumn(0).getInt64());
    SQLite::Statement del(impl_->db, std::string("DELETE FROM tests") + predicate);
    del.bind(1, static_cast<std::int64_t>(id));
    del.bind(2, delete_completed ? 1 : 0);
    const int deleted = del.exec();
    if (static_cast<std::size_t>(deleted) != out.removed.size()) {
      throw store_error("cancel batch: deleted row count does not match the selected tests");
    }
    out.cancelled_count = deleted;
    tx.commit();
    return out;
  });
}

bool store::mark_running(test_id id, unix_seconds start_time) {
  return guarded("mark test running", [&] {
    write_transaction tx(impl_->db, impl_->grouping);
    int changed = 0;
    {
      statement_use st(impl_->cached(impl_->mark_running_st,
                                     "UPDATE tests SET state = 'RUNNING', attempts = attempts + 1, "
                                     "test_start_time = COALESCE(test_start_time, ?) "
                                     "WHERE id = ? AND state = 'PENDING'"));
      bind_int(*st, 1, start_time);
      bind_int(*st, 2, id);
      changed = st->exec();
    }
    tx.commit();
    return changed == 1;
  });
}

bool store::complete_test(const test_outcome& outcome) {
  return guarded("complete test", [&] {
    write_transaction tx(impl_->db, impl_->grouping);
    int changed = 0;
    {
      statement_use st(impl_->cached(
          impl_->complete_test_st,
          "UPDATE tests SET state = 'COMPLETED', result = ?, test_end_time = ?, "
          "connection_start_time = ?, connection_end_time = ?, completed_time = ?, "
          "readings = ?, readings_json = NULL, connection_attempts = ? WHERE id = ? AND state = 'RUNNING'"));
      bind_text(*st, 1, outcome.result);
      bind_int(*st, 2, outcome.test_end_time);
      bind_opt_int(*st, 3, outcome.connection_start_time);
      bind_opt_int(*st, 4, outcome.connection_end_time);
      bind_int(*st, 5, outcome.test_end_time);
      // Packed by the test actor already (test_outcome::packed_readings), else here.
      const std::string readings =
          outcome.packed_readings.empty() ? packed_json::pack(outcome.readings_json) : outcome.packed_readings;
      if (readings.empty()) {
        st->bind(6);
      } else {
        bind_blob(*st, 6, readings);
      }
      bind_opt_int(*st, 7, outcome.connection_attempts);
      bind_int(*st, 8, outcome.id);
      changed = st->exec();
    }
    const std::string transcript = changed != 1 || !outcome.packed_transcript.empty()
                                       ? outcome.packed_transcript
                                       : packed_json::pack(outcome.transcript_json);
    if (changed == 1 && !transcript.empty()) {
      statement_use st(impl_->cached(impl_->insert_transcript_st,
                                     "INSERT OR REPLACE INTO test_transcripts (test_id, transcript_json, transcript) "
                                     "VALUES (?, '', ?)"));
      bind_int(*st, 1, outcome.id);
      bind_blob(*st, 2, transcript);
      st->exec();
    }
    tx.commit();
    return changed == 1;
  });
}

std::vector<test_record> store::recover_queue() {
  return guarded("recover queue", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    impl_->db.exec("UPDATE tests SET state = 'PENDING' WHERE state = 'RUNNING'");
    SQLite::Statement st(impl_->db, "SELECT " MTS_TEST_SUMMARY_COLUMNS
                                    " FROM tests WHERE state = 'PENDING' ORDER BY id");
    std::vector<test_record> out;
    while (st.executeStep()) out.push_back(read_test_row(st, false));
    tx.commit();
    return out;
  });
}

std::vector<queued_test> store::recover_queue_keys() {
  return guarded("recover queue", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    impl_->db.exec("UPDATE tests SET state = 'PENDING' WHERE state = 'RUNNING'");
    std::vector<queued_test> out;
    out.reserve(static_cast<std::size_t>(
        impl_->db.execAndGet("SELECT COUNT(*) FROM tests WHERE state = 'PENDING'").getInt64()));
    SQLite::Statement st(impl_->db, "SELECT id, immediate, meter_type, remote_address "
                                    "FROM tests WHERE state = 'PENDING' ORDER BY id");
    while (st.executeStep()) {
      queued_test q;
      q.id = st.getColumn(0).getInt64();
      q.immediate = st.getColumn(1).getInt64() != 0;
      q.meter_type = column_bytes(st.getColumn(2));
      q.remote_address = column_bytes(st.getColumn(3));
      out.push_back(std::move(q));
    }
    tx.commit();
    return out;
  });
}

// ---- tests (queries) ----

std::optional<test_record> store::find_test(test_id id) {
  return guarded("find test", [&]() -> std::optional<test_record> {
    statement_use st(impl_->cached(impl_->find_test_st, "SELECT " MTS_TEST_SUMMARY_COLUMNS
                                                        ", readings_json, readings FROM tests WHERE id = ?"));
    bind_int(*st, 1, id);
    if (!st->executeStep()) return std::nullopt;
    return read_test_row(*st, true);
  });
}

void store::begin_read() {
  guarded("begin read", [&] {
    statement_use st(impl_->cached(impl_->begin_read_st, "BEGIN DEFERRED"));
    st->exec();
  });
}

void store::end_read() noexcept {
  try {
    if (!sqlite3_get_autocommit(impl_->db.getHandle())) {
      statement_use st(impl_->cached(impl_->end_read_st, "COMMIT"));
      st->exec();
    }
  } catch (...) {
    // Ending a read transaction changes nothing; should it fail, the next BEGIN reports it.
  }
}

void store::in_one_transaction(const std::function<void()>& fn) {
  guarded("write group", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    impl_->grouping = true;
    try {
      fn();
    } catch (...) {
      impl_->grouping = false;
      throw; // tx rolls back
    }
    impl_->grouping = false;
    tx.commit();
  });
}

std::optional<std::string> store::find_transcript(test_id id) {
  return guarded("find transcript", [&]() -> std::optional<std::string> {
    SQLite::Statement st(impl_->db, "SELECT tr.transcript_json, tr.transcript "
                                    "FROM tests t LEFT JOIN test_transcripts tr ON tr.test_id = t.id WHERE t.id = ?");
    bind_int(st, 1, id);
    if (!st.executeStep()) return std::nullopt;
    return stored_text(st.getColumn(0), st.getColumn(1), "transcript", id);
  });
}

std::optional<std::vector<test_record>> store::batch_tests(batch_id id) {
  return guarded("read batch", [&]() -> std::optional<std::vector<test_record>> {
    // One read transaction so the batch check and its tests come from the same snapshot.
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::DEFERRED);
    if (!impl_->batch_exists(id)) return std::nullopt;
    SQLite::Statement st(impl_->db, "SELECT " MTS_TEST_SUMMARY_COLUMNS
                                    " FROM tests WHERE batch_id = ? ORDER BY id");
    st.bind(1, static_cast<std::int64_t>(id));
    std::vector<test_record> out;
    while (st.executeStep()) out.push_back(read_test_row(st, false));
    tx.commit();
    return out;
  });
}

search_page store::search(const search_query& q) {
  return guarded("search tests", [&] {
    // by_id: the same filters with every indexed column behind a unary + (which keeps SQLite
    // from using its index), so the page is read walking the table in id order.
    auto filters = [&](bool by_id) {
      const std::string p = by_id ? "+" : "";
      std::string where = " WHERE " + p + "received_time BETWEEN ? AND ?";
      if (q.request_reference) where += " AND " + p + "request_reference = ?";
      if (q.meter_type) where += " AND " + p + "meter_type = ?";
      // instr() is a plain substring test: '%' and '_' in the filter are literal characters.
      if (q.remote_address) where += " AND instr(remote_address, ?) > 0";
      switch (q.status) {
        case status_filter::all: break;
        case status_filter::completed: where += " AND " + p + "state = 'COMPLETED'"; break;
        case status_filter::pending: where += " AND " + p + "state IN ('PENDING', 'RUNNING')"; break;
      }
      return where;
    };
    const std::string where = filters(false);
    auto bind_filters = [&](SQLite::Statement& st) {
      int i = 1;
      bind_int(st, i++, q.from_time);
      bind_int(st, i++, q.to_time);
      if (q.request_reference) bind_text(st, i++, *q.request_reference);
      if (q.meter_type) bind_text(st, i++, *q.meter_type);
      if (q.remote_address) bind_text(st, i++, *q.remote_address);
      return i;
    };

    search_page page;
    // Count and page from one snapshot (the caller's, inside begin_read).
    std::optional<SQLite::Transaction> tx;
    if (sqlite3_get_autocommit(impl_->db.getHandle()))
      tx.emplace(impl_->db, SQLite::TransactionBehavior::DEFERRED);
    {
      SQLite::Statement count(impl_->db, "SELECT COUNT(*) FROM tests" + where);
      bind_filters(count);
      count.executeStep();
      page.total_count = count.getColumn(0).getInt64();
    }
    if (q.limit > 0 && page.total_count > 0 && q.offset < page.total_count) {
      // Two ways to the page. Through an index on a filter: every match is read and sorted by
      // id (the cost grows with the matches: 0.6 s for a million). Walking the table in id
      // order: about (offset + limit) * rows / matches rows are read before the page is full
      // (rows estimated from the id span, two B-tree lookups). The cheaper one is taken, so a
      // first page over a million matches reads a hundred rows, and a deep offset costs the
      // rows it skips (docs/api.md, test-search).
      // Separate MIN and MAX: each alone is one B-tree lookup, together they scan the table.
      const std::int64_t span = impl_->db.execAndGet("SELECT MAX(id) FROM tests").getInt64() -
                                impl_->db.execAndGet("SELECT MIN(id) FROM tests").getInt64() + 1;
      const double walked = static_cast<double>(std::max<std::int64_t>(q.offset, 0) + q.limit) *
                            static_cast<double>(span) /
                            static_cast<double>(page.total_count);
      const bool by_id = walked < static_cast<double>(page.total_count);
      SQLite::Statement st(impl_->db, "SELECT " MTS_TEST_SUMMARY_COLUMNS " FROM tests" + filters(by_id) +
                                          (q.reverse_order ? " ORDER BY id DESC" : " ORDER BY id ASC") +
                                          " LIMIT ? OFFSET ?");
      int i = bind_filters(st);
      bind_int(st, i++, q.limit);
      bind_int(st, i++, q.offset > 0 ? q.offset : 0);
      while (st.executeStep()) page.results.push_back(read_test_row(st, false));
    }
    if (tx) tx->commit();
    return page;
  });
}

// ---- tokens ----

std::int64_t store::insert_token(const std::string& name, token_scope scope,
                                 const std::string& token_hash, unix_seconds created_time,
                                 unix_seconds expires_time) {
  if (token_hash.size() != token_hash_size) {
    throw store_error("insert token: the token hash must be " + std::to_string(token_hash_size) +
                      " bytes");
  }
  return guarded("insert token", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    {
      SQLite::Statement exists(impl_->db, "SELECT 1 FROM tokens WHERE name = ?");
      bind_text(exists, 1, name);
      if (exists.executeStep()) throw store_error("a token named " + name + " already exists");
    }
    SQLite::Statement st(impl_->db,
                         "INSERT INTO tokens (name, scope, token_hash, created_time, expires_time) "
                         "VALUES (?, ?, ?, ?, ?)");
    bind_text(st, 1, name);
    st.bind(2, to_string(scope));
    bind_blob(st, 3, token_hash);
    bind_int(st, 4, created_time);
    bind_int(st, 5, expires_time);
    st.exec();
    const std::int64_t id = impl_->db.getLastInsertRowid();
    tx.commit();
    return id;
  });
}

std::vector<token_info> store::list_tokens() {
  return guarded("list tokens", [&] {
    SQLite::Statement st(impl_->db,
                         std::string("SELECT ") + token_columns + " FROM tokens ORDER BY name");
    std::vector<token_info> out;
    while (st.executeStep()) out.push_back(read_token_row(st));
    return out;
  });
}

bool store::delete_token(const std::string& name) {
  return guarded("delete token", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement st(impl_->db, "DELETE FROM tokens WHERE name = ?");
    bind_text(st, 1, name);
    const int changed = st.exec();
    tx.commit();
    return changed == 1;
  });
}

std::optional<store::token_match> store::find_token_by_hash(const std::string& token_hash) {
  return guarded("find token", [&]() -> std::optional<token_match> {
    // The count is read before the row: a change committed in between moves it, so a row
    // remembered here is never used after a change that could have touched it.
    std::int64_t count = 0;
    {
      statement_use changes(impl_->cached(impl_->token_changes_st, "SELECT count FROM token_changes"));
      if (!changes->executeStep()) throw store_error("find token: the token_changes row is missing");
      count = changes->getColumn(0).getInt64();
    }
    if (count != impl_->token_count) {
      impl_->known_tokens.clear();
      impl_->token_count = count;
    }
    if (auto known = impl_->known_tokens.find(token_hash); known != impl_->known_tokens.end())
      return known->second;
    statement_use st(impl_->cached(
        impl_->find_token_st,
        "SELECT id, name, scope, created_time, expires_time, last_used_time, token_hash "
        "FROM tokens WHERE token_hash = ?"));
    bind_blob(*st, 1, token_hash);
    if (!st->executeStep()) return std::nullopt;
    token_match m;
    m.info = read_token_row(*st);
    m.token_hash = column_bytes(st->getColumn(6));
    if (impl_->known_tokens.size() >= impl::max_known_tokens)
      impl_->known_tokens.clear();
    impl_->known_tokens.emplace(token_hash, m);
    return m;
  });
}

void store::touch_token(std::int64_t id, unix_seconds last_used_time) {
  guarded("touch token", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    {
      // Never moves last_used_time backwards (a clock step back, or callers racing).
      statement_use st(impl_->cached(
          impl_->touch_token_st,
          "UPDATE tokens SET last_used_time = ?1 "
          "WHERE id = ?2 AND (last_used_time IS NULL OR last_used_time < ?1)"));
      bind_int(*st, 1, last_used_time);
      bind_int(*st, 2, id);
      st->exec();
    }
    tx.commit();
  });
}

void store::probe_write(unix_seconds now) {
  guarded("probe write", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement st(impl_->db,
                         "INSERT INTO service_probe (id, written_time) VALUES (1, ?1) "
                         "ON CONFLICT (id) DO UPDATE SET written_time = excluded.written_time");
    bind_int(st, 1, now);
    st.exec();
    tx.commit();
  });
}

// ---- compact storage: the conversion of rows from before schema version 5 ----

namespace {

conversion_progress read_conversion(SQLite::Database& db) {
  SQLite::Statement st(db, "SELECT converted_to, last_test_id FROM storage_conversion WHERE id = 1");
  if (!st.executeStep())
    return {};
  return conversion_progress{st.getColumn(0).getInt64(), st.getColumn(1).getInt64()};
}

} // namespace

conversion_progress store::conversion() {
  return guarded("read the conversion progress", [&] { return read_conversion(impl_->db); });
}

store::text_chunk store::text_rows(test_id after, test_id up_to, std::int64_t limit, std::int64_t max_bytes) {
  return guarded("read rows to convert", [&] {
    text_chunk out;
    out.end = up_to;
    // The chunk's tests and its transcripts from one snapshot.
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::DEFERRED);
    std::int64_t seen = 0, bytes = 0;
    {
      SQLite::Statement st(impl_->db, "SELECT id, CASE WHEN readings IS NULL THEN readings_json END FROM tests "
                                      "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?");
      bind_int(st, 1, after);
      bind_int(st, 2, up_to);
      bind_int(st, 3, limit);
      while (st.executeStep()) {
        ++seen;
        const test_id id = st.getColumn(0).getInt64();
        if (auto text = column_opt_text(st.getColumn(1))) {
          bytes += static_cast<std::int64_t>(text->size());
          out.rows.push_back(text_row{id, std::move(text), std::nullopt});
        }
        if (seen == limit || bytes >= max_bytes) {
          out.end = id;
          break;
        }
      }
    }
    SQLite::Statement st(impl_->db, "SELECT test_id, transcript_json FROM test_transcripts "
                                    "WHERE test_id > ? AND test_id <= ? AND transcript IS NULL ORDER BY test_id");
    bind_int(st, 1, after);
    bind_int(st, 2, out.end);
    std::vector<text_row> merged;
    merged.reserve(out.rows.size());
    std::size_t next = 0; // both lists are in id order
    while (st.executeStep()) {
      const test_id id = st.getColumn(0).getInt64();
      while (next < out.rows.size() && out.rows[next].id < id)
        merged.push_back(std::move(out.rows[next++]));
      if (next < out.rows.size() && out.rows[next].id == id) {
        merged.push_back(std::move(out.rows[next++]));
      } else {
        merged.push_back(text_row{id, std::nullopt, std::nullopt});
      }
      merged.back().transcript_json = column_bytes(st.getColumn(1));
    }
    while (next < out.rows.size())
      merged.push_back(std::move(out.rows[next++]));
    out.rows = std::move(merged);
    tx.commit();
    return out;
  });
}

conversion_progress store::store_packed(const std::vector<packed_row>& rows, test_id converted_to) {
  return guarded("store converted rows", [&] {
    SQLite::Transaction tx(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement readings(impl_->db, "UPDATE tests SET readings = ?, readings_json = NULL "
                                          "WHERE id = ? AND readings IS NULL AND readings_json IS NOT NULL");
    SQLite::Statement transcript(impl_->db, "UPDATE test_transcripts SET transcript = ?, transcript_json = '' "
                                            "WHERE test_id = ? AND transcript IS NULL");
    for (const auto& r : rows) {
      if (r.readings) {
        statement_use st(readings);
        bind_blob(*st, 1, *r.readings);
        bind_int(*st, 2, r.id);
        st->exec();
      }
      if (r.transcript) {
        statement_use st(transcript);
        bind_blob(*st, 1, *r.transcript);
        bind_int(*st, 2, r.id);
        st->exec();
      }
    }
    SQLite::Statement progress(impl_->db,
                               "UPDATE storage_conversion SET converted_to = MAX(converted_to, ?) WHERE id = 1");
    bind_int(progress, 1, converted_to);
    progress.exec();
    impl_->db.exec("DELETE FROM storage_conversion WHERE id = 1 AND converted_to >= last_test_id");
    const auto out = read_conversion(impl_->db);
    tx.commit();
    return out;
  });
}

// ---- retention ----

namespace {

// The id of the test received last before `cutoff` (tests are received in id order, so a
// purge looks no further); nothing when no test is that old. One walk down the received_time
// index.
std::optional<test_id> last_received_before(SQLite::Database& db, unix_seconds cutoff) {
  SQLite::Statement st(db, "SELECT id FROM tests WHERE received_time < ? ORDER BY received_time DESC, id DESC LIMIT 1");
  bind_int(st, 1, cutoff);
  if (!st.executeStep())
    return std::nullopt;
  return st.getColumn(0).getInt64();
}

// The end of a chunk of at most `limit` rows of `table` (by `key`) after `after` and up to
// `bound`: the limit-th such row, else `bound`.
std::int64_t chunk_end(SQLite::Database& db, const char* table, const char* key, std::int64_t after,
                       std::int64_t bound, std::int64_t limit) {
  SQLite::Statement st(db, std::string("SELECT ") + key + " FROM " + table + " WHERE " + key + " > ? AND " + key +
                               " <= ? ORDER BY " + key + " LIMIT 1 OFFSET ?");
  bind_int(st, 1, after);
  bind_int(st, 2, bound);
  bind_int(st, 3, limit - 1);
  return st.executeStep() ? st.getColumn(0).getInt64() : bound;
}

} // namespace

purge_step_result store::purge(const purge_step& step) {
  const purge_kind kind = step.kind;
  const unix_seconds cutoff = step.cutoff;
  const std::int64_t after = step.after, limit = step.limit;
  if (limit < 1)
    throw store_error("purge: a step must cover at least one row");
  return guarded("purge", [&] {
    SQLite::Database& db = impl_->db;
    purge_step_result out;
    out.next_after = after;
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    std::optional<SQLite::Statement> del;
    if (kind == purge_kind::empty_batches) {
      // Batches have no index on their time; they are received in id order too, so the walk
      // stops at the first one received at or after the cutoff.
      SQLite::Statement walk(db, "SELECT id, received_time FROM batches WHERE id > ? ORDER BY id LIMIT ?");
      bind_int(walk, 1, after);
      bind_int(walk, 2, limit);
      std::int64_t seen = 0;
      out.done = true;
      while (walk.executeStep()) {
        if (walk.getColumn(1).getInt64() >= cutoff)
          break;
        out.next_after = walk.getColumn(0).getInt64();
        out.done = ++seen < limit;
      }
      del.emplace(db, "DELETE FROM batches WHERE id > ?1 AND id <= ?2 AND received_time < ?3 "
                      "AND NOT EXISTS (SELECT 1 FROM tests WHERE tests.batch_id = batches.id)");
    } else {
      const auto bound = last_received_before(db, cutoff);
      if (!bound || *bound <= after) {
        out.done = true;
        tx.commit();
        return out;
      }
      if (kind == purge_kind::completed_tests) {
        out.next_after = chunk_end(db, "tests", "id", after, *bound, limit);
        // The state test is what keeps pending and running tests, whatever their age.
        del.emplace(db, "DELETE FROM tests WHERE id > ?1 AND id <= ?2 AND state = 'COMPLETED' "
                        "AND completed_time < ?3");
      } else {
        out.next_after = chunk_end(db, "test_transcripts", "test_id", after, *bound, limit);
        del.emplace(db, "DELETE FROM test_transcripts WHERE test_id > ?1 AND test_id <= ?2 "
                        "AND (SELECT completed_time FROM tests WHERE tests.id = test_transcripts.test_id) < ?3");
      }
      out.done = out.next_after >= *bound;
    }
    bind_int(*del, 1, after);
    bind_int(*del, 2, out.next_after);
    bind_int(*del, 3, cutoff);
    out.deleted = del->exec();
    tx.commit();
    return out;
  });
}

// ---- space ----

storage_space store::space() {
  return guarded("read the database size", [&] {
    SQLite::Database& db = impl_->db;
    storage_space out;
    out.page_size = db.execAndGet("PRAGMA page_size").getInt64();
    out.pages = db.execAndGet("PRAGMA page_count").getInt64();
    out.free_pages = db.execAndGet("PRAGMA freelist_count").getInt64();
    out.incremental_vacuum = db.execAndGet("PRAGMA auto_vacuum").getInt64() == 2;
    std::error_code ec;
    const auto wal = std::filesystem::file_size(db.getFilename() + "-wal", ec);
    out.wal_bytes = ec ? 0 : static_cast<std::int64_t>(wal);
    return out;
  });
}

storage_space store::release_free_pages(std::int64_t pages) {
  guarded("release free pages", [&] {
    if (pages > 0 && impl_->db.execAndGet("PRAGMA auto_vacuum").getInt64() == 2)
      impl_->db.exec("PRAGMA incremental_vacuum(" + std::to_string(pages) + ")");
  });
  return space();
}

} // namespace mts

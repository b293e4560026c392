// A thin owner of one SQLite connection, with Status errors that name the database file.
//
// One SqliteDb is used from one thread at a time (SQLite's own serialized mode is not relied on).
// Statements are owned by the caller and must not outlive their SqliteDb.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace instrumeter {

class SqliteDb;

// A prepared statement. Bind* calls record the first error; Step reports it.
class SqliteStatement {
 public:
  SqliteStatement(SqliteStatement&& other) noexcept;
  SqliteStatement& operator=(SqliteStatement&& other) noexcept;
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement();

  // Parameters are 1-based, as in SQLite.
  SqliteStatement& Bind(int index, int64_t value);
  SqliteStatement& Bind(int index, double value);
  SqliteStatement& Bind(int index, std::string_view text);
  SqliteStatement& BindBlob(int index, std::string_view bytes);
  SqliteStatement& BindNull(int index);

  // true: a row is ready to read; false: the statement is done.
  Result<bool> Step();
  // Steps until done, for statements that return no rows.
  Status Run();
  // Clears bindings and rewinds, ready for the next Bind/Step round.
  void Reset();

  // Columns are 0-based.
  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;
  std::string Blob(int column) const;
  bool IsNull(int column) const;

 private:
  friend class SqliteDb;
  SqliteStatement(SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void NoteBindError(int rc, int index);

  SqliteDb* db_;
  sqlite3_stmt* stmt_;
  Status bind_status_;
};

class SqliteDb {
 public:
  struct Options {
    bool read_only = false;
    bool create = true;
    std::string journal_mode = "WAL";  // WAL | DELETE
    std::string synchronous = "FULL";  // FULL | NORMAL | OFF
    int busy_timeout_ms = 5000;
    // PRAGMA locking_mode=EXCLUSIVE before the first read: no other connection can open the
    // database while this one is open, and in WAL mode the WAL index lives in heap memory
    // instead of the mmap'd -shm file (whose pages the kernel writes back again and again).
    bool exclusive_locking = false;
  };

  static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path, const Options& options);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements that return no rows.
  Status Exec(const std::string& sql);
  Result<SqliteStatement> Prepare(const std::string& sql);
  // The first column of the first row `sql` returns, as an integer; nullopt when it returns no
  // row. For counters and pragmas.
  Result<std::optional<int64_t>> QueryInt(const std::string& sql);
  int64_t LastInsertRowId() const;
  int Changes() const;
  const std::string& path() const { return path_; }

  // Converts an SQLite result code into a Status naming this database and `what`.
  Status Error(int rc, const std::string& what) const;

 private:
  SqliteDb(sqlite3* db, std::string path, int busy_timeout_ms)
      : db_(db), path_(std::move(path)), busy_timeout_ms_(busy_timeout_ms) {}
  Status SetJournalMode(const std::string& mode);
  // SQLite's busy handler: tries again every millisecond until busy_timeout_ms has passed.
  static int OnBusy(void* self, int tries);
  friend class SqliteProgress;

  sqlite3* db_;
  std::string path_;
  int busy_timeout_ms_;
  std::chrono::steady_clock::time_point busy_since_;  // of the wait in progress
};

// While it lives, `tick` is called about every `period` (and not before the first has passed)
// during the statements of `db`, so that one that runs for minutes can say it is still going.
// SQLite's progress handler, which checks the clock every 10,000 virtual machine steps.
class SqliteProgress {
 public:
  SqliteProgress(SqliteDb* db, std::chrono::milliseconds period, std::function<void()> tick);
  ~SqliteProgress();
  SqliteProgress(const SqliteProgress&) = delete;
  SqliteProgress& operator=(const SqliteProgress&) = delete;

 private:
  static int OnStep(void* self);

  SqliteDb* db_;
  std::chrono::milliseconds period_;
  std::function<void()> tick_;
  std::chrono::steady_clock::time_point next_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back on destruction unless committed.
class SqliteTransaction {
 public:
  static Result<SqliteTransaction> Begin(SqliteDb* db);
  // BEGIN (deferred): the reads that follow see one snapshot, and no write lock is taken until
  // something is written.
  static Result<SqliteTransaction> BeginRead(SqliteDb* db);
  SqliteTransaction(SqliteTransaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  ~SqliteTransaction();

  Status Commit();

 private:
  explicit SqliteTransaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_;
};

}  // namespace instrumeter

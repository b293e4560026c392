#include "common/sqlite_db.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

namespace instrumeter {

SqliteStatement::SqliteStatement(SqliteStatement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), bind_status_(std::move(other.bind_status_)) {
  other.stmt_ = nullptr;
}

SqliteStatement& SqliteStatement::operator=(SqliteStatement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = other.stmt_;
    bind_status_ = std::move(other.bind_status_);
    other.stmt_ = nullptr;
  }
  return *this;
}

SqliteStatement::~SqliteStatement() { sqlite3_finalize(stmt_); }

void SqliteStatement::NoteBindError(int rc, int index) {
  if (rc != SQLITE_OK && bind_status_.ok())
    bind_status_ = db_->Error(rc, "bind parameter " + std::to_string(index));
}

SqliteStatement& SqliteStatement::Bind(int index, int64_t value) {
  NoteBindError(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}

SqliteStatement& SqliteStatement::Bind(int index, double value) {
  NoteBindError(sqlite3_bind_double(stmt_, index, value), index);
  return *this;
}

SqliteStatement& SqliteStatement::Bind(int index, std::string_view text) {
  NoteBindError(
      sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT),
      index);
  return *this;
}

SqliteStatement& SqliteStatement::BindBlob(int index, std::string_view bytes) {
  // A zero-length blob must still be a blob, not NULL: pass a non-null pointer.
  static const char kEmpty = 0;
  NoteBindError(sqlite3_bind_blob(stmt_, index, bytes.empty() ? &kEmpty : bytes.data(),
                                  static_cast<int>(bytes.size()), SQLITE_TRANSIENT),
                index);
  return *this;
}

SqliteStatement& SqliteStatement::BindNull(int index) {
  NoteBindError(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

Result<bool> SqliteStatement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error(rc, std::string("step '") + sqlite3_sql(stmt_) + "'");
}

Status SqliteStatement::Run() {
  while (true) {
    Result<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
  }
}

void SqliteStatement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_status_ = Status::Ok();
}

int64_t SqliteStatement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }
double SqliteStatement::Double(int column) const { return sqlite3_column_double(stmt_, column); }
bool SqliteStatement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string SqliteStatement::Text(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string SqliteStatement::Blob(int column) const {
  const void* p = sqlite3_column_blob(stmt_, column);
  if (p == nullptr) return {};
  return std::string(static_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path, const Options& options) {
  int flags = options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  flags |= SQLITE_OPEN_NOMUTEX;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return Status::IoError("cannot open database " + path + ": " + msg);
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw, path, options.busy_timeout_ms));
  sqlite3_extended_result_codes(raw, 1);
  // Not sqlite3_busy_timeout: SQLite's own handler sleeps 1, 2, 5, 10 ... up to 100 ms between
  // tries, so a writer kept waiting by a 20 ms transaction of another connection waited 33 ms,
  // and by one of 60 ms, 78 ms. The hub's ingest commits stalled so behind its verification
  // passes (docs/performance.md, "Capacity").
  sqlite3_busy_handler(raw, &SqliteDb::OnBusy, db.get());
  if (!options.read_only) {
    if (options.exclusive_locking)
      INSTRUMETER_RETURN_IF_ERROR(db->Exec("PRAGMA locking_mode=EXCLUSIVE"));
    INSTRUMETER_RETURN_IF_ERROR(db->SetJournalMode(options.journal_mode));
    INSTRUMETER_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=" + options.synchronous));
  }
  return db;
}

int SqliteDb::OnBusy(void* self, int tries) {
  auto* db = static_cast<SqliteDb*>(self);
  const auto now = std::chrono::steady_clock::now();
  if (tries == 0) db->busy_since_ = now;
  if (now - db->busy_since_ >= std::chrono::milliseconds(db->busy_timeout_ms_)) return 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return 1;
}

Status SqliteDb::SetJournalMode(const std::string& mode) {
  // Switching the journal mode needs an exclusive lock and SQLite does not wait for it through
  // the busy handler, so a CLI command opening the database while the hub creates it would fail
  // at once. Skip the switch when it is already done (the usual case), retry it otherwise.
  std::string have;
  {  // the statement must be finalised before the switch: it holds a read transaction
    auto current = Prepare("PRAGMA journal_mode");
    if (!current.ok()) return current.status();
    auto row = current->Step();
    if (!row.ok()) return row.status();
    if (*row) have = current->Text(0);
  }
  std::transform(have.begin(), have.end(), have.begin(), ::tolower);
  std::string want = mode;
  std::transform(want.begin(), want.end(), want.begin(), ::tolower);
  if (have == want) return Status::Ok();
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms_);
  while (true) {
    Status st = Exec("PRAGMA journal_mode=" + mode);
    if (st.code() != Status::Code::kUnavailable || std::chrono::steady_clock::now() >= deadline)
      return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

Status SqliteDb::Exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string what = "exec '" + sql.substr(0, 80) + "'";
  if (err != nullptr) sqlite3_free(err);
  return Error(rc, what);
}

Result<SqliteStatement> SqliteDb::Prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "prepare '" + sql + "'");
  return SqliteStatement(this, stmt);
}

Result<std::optional<int64_t>> SqliteDb::QueryInt(const std::string& sql) {
  Result<SqliteStatement> s = Prepare(sql);
  if (!s.ok()) return s.status();
  Result<bool> row = s->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<int64_t>();
  return std::optional<int64_t>(s->Int(0));
}

int64_t SqliteDb::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
int SqliteDb::Changes() const { return sqlite3_changes(db_); }

Status SqliteDb::Error(int rc, const std::string& what) const {
  std::string msg = "database " + path_ + ": " + what + ": " + sqlite3_errmsg(db_);
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return Status::ResourceExhausted(msg);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
      return Status::IoError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(msg);
    case SQLITE_CONSTRAINT:
      return Status::AlreadyExists(msg);
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
      return Status::Internal(msg);
    default:
      return Status::IoError(msg);
  }
}

SqliteProgress::SqliteProgress(SqliteDb* db, std::chrono::milliseconds period,
                               std::function<void()> tick)
    : db_(db),
      period_(period),
      tick_(std::move(tick)),
      next_(std::chrono::steady_clock::now() + period) {
  // About a millisecond of work between checks of the clock.
  sqlite3_progress_handler(db_->db_, 10'000, &SqliteProgress::OnStep, this);
}

SqliteProgress::~SqliteProgress() { sqlite3_progress_handler(db_->db_, 0, nullptr, nullptr); }

int SqliteProgress::OnStep(void* self) {
  auto* progress = static_cast<SqliteProgress*>(self);
  const auto now = std::chrono::steady_clock::now();
  if (now >= progress->next_) {
    progress->next_ = now + progress->period_;
    progress->tick_();
  }
  return 0;  // go on
}

Result<SqliteTransaction> SqliteTransaction::Begin(SqliteDb* db) {
  INSTRUMETER_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE"));
  return SqliteTransaction(db);
}

Result<SqliteTransaction> SqliteTransaction::BeginRead(SqliteDb* db) {
  INSTRUMETER_RETURN_IF_ERROR(db->Exec("BEGIN"));
  return SqliteTransaction(db);
}

SqliteTransaction::~SqliteTransaction() {
  if (db_ != nullptr) (void)db_->Exec("ROLLBACK");
}

Status SqliteTransaction::Commit() {
  Status st = db_->Exec("COMMIT");
  if (st.ok()) db_ = nullptr;  // on failure the destructor rolls back
  return st;
}

}  // namespace instrumeter

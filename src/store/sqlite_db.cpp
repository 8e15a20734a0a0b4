// RAII over the SQLite C API; see sqlite_db.h.
#include "sqlite_db.h"

#include <limits>

#include "fewrec/core/error.h"

namespace fewrec::store::detail {

void throw_sqlite(sqlite3* db, int rc, const std::string& path, std::string_view what) {
  const int primary = rc & 0xFF;
  const std::string detail = db != nullptr && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string message =
      fmt::format("sqlite store `{}`: {} failed: {} (sqlite error {})", path, what, detail, rc);
  switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      FEWREC_THROW(kUnavailable, "{}; another connection holds the database lock (raise busy_timeout_ms?)",
                   message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      FEWREC_THROW(kCorrupt, "{}", message);
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      FEWREC_THROW(kInvalidArgument, "{}", message);
    case SQLITE_MISUSE:
    case SQLITE_INTERNAL:
      FEWREC_THROW(kInternal, "{}", message);
    default:
      FEWREC_THROW(kIo, "{}", message);
  }
}

// ---------------------------------------------------------------------- Stmt

Stmt::Stmt(sqlite3* db, const std::string& path, std::string_view sql, bool persistent)
    : db_(db), path_(path), sql_(sql) {
  FEWREC_ASSERT(sql.size() < static_cast<size_t>(std::numeric_limits<int>::max()));
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                    persistent ? SQLITE_PREPARE_PERSISTENT : 0, &s_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s_);
    s_ = nullptr;
    throw_sqlite(db, rc, path, fmt::format("preparing `{}`", sql_));
  }
}

Stmt::~Stmt() { sqlite3_finalize(s_); }

void Stmt::bind(int i, int64_t v) {
  const int rc = sqlite3_bind_int64(s_, i, v);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, path_, fmt::format("binding ?{} of `{}`", i, sql_));
}

void Stmt::bind(int i, double v) {
  const int rc = sqlite3_bind_double(s_, i, v);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, path_, fmt::format("binding ?{} of `{}`", i, sql_));
}

void Stmt::bind_text(int i, std::string_view v) {
  // SQLITE_TRANSIENT: SQLite copies; callers' buffers may change before step().
  // An empty view may have no data pointer, which SQLite would store as NULL.
  const int rc = sqlite3_bind_text64(s_, i, v.data() ? v.data() : "", v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, path_, fmt::format("binding ?{} of `{}`", i, sql_));
}

void Stmt::bind_blob(int i, std::string_view v) {
  // Static: blobs are bound right before a step() in the same scope.
  const int rc = sqlite3_bind_blob64(s_, i, v.data() ? v.data() : "", v.size(), SQLITE_STATIC);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, path_, fmt::format("binding ?{} of `{}`", i, sql_));
}

bool Stmt::step() {
  const int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw_sqlite(db_, rc, path_, fmt::format("running `{}`", sql_));
}

void Stmt::run() {
  while (step()) {
  }
}

void Stmt::reset() noexcept {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

std::string_view Stmt::col_text(int c) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
  const int n = sqlite3_column_bytes(s_, c);
  return p == nullptr ? std::string_view() : std::string_view(p, static_cast<size_t>(n));
}

std::string_view Stmt::col_blob(int c) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
  const int n = sqlite3_column_bytes(s_, c);
  return p == nullptr ? std::string_view() : std::string_view(p, static_cast<size_t>(n));
}

// ------------------------------------------------------------------------ Db

Db::Db(const std::string& path, int flags, int busy_timeout_ms) : path_(path) {
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    const int primary = rc & 0xFF;
    FEWREC_CHECK(primary != SQLITE_CANTOPEN, kIo, "sqlite store `{}`: cannot open the file: {}", path,
                 message);
    FEWREC_THROW(kIo, "sqlite store `{}`: opening failed: {} (sqlite error {})", path, message, rc);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, busy_timeout_ms);
}

Db::~Db() {
  cache_.clear();  // finalize statements before closing
  sqlite3_close(db_);
}

void Db::exec(const char* sql, std::string_view what) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  sqlite3_free(error);  // sqlite3_errmsg() still holds the message
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, path_, what);
}

Stmt& Db::cached(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) it = cache_.emplace(sql, std::make_unique<Stmt>(db_, path_, sql, true)).first;
  return *it->second;
}

int64_t Db::query_int(const char* sql) {
  auto s = prepare(sql);
  FEWREC_CHECK(s->step(), kIo, "sqlite store `{}`: `{}` returned no row", path_, sql);
  return s->col_int(0);
}

std::string Db::query_text(const char* sql) {
  auto s = prepare(sql);
  FEWREC_CHECK(s->step(), kIo, "sqlite store `{}`: `{}` returned no row", path_, sql);
  return std::string(s->col_text(0));
}

// --------------------------------------------------------------- Transaction

Transaction::Transaction(Db& db, bool immediate) : db_(db) {
  db_.exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED", "starting a transaction");
}

Transaction::~Transaction() {
  if (open_ && db_.in_transaction()) sqlite3_exec(db_.raw(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  open_ = false;
  try {
    db_.exec("COMMIT", "committing");
  } catch (...) {
    // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY):
    // roll back so the connection is usable again.
    if (db_.in_transaction()) sqlite3_exec(db_.raw(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace fewrec::store::detail

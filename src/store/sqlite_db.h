// Thin RAII layer over the SQLite C API for the store: one connection (Db)
// with a cache of prepared statements, statements (Stmt), transactions.
// Every SQLite error becomes a fewrec::Error naming the database file and
// the operation. A Db is used by one thread at a time (the callers lock).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace fewrec::store::detail {

// Throws the fewrec::Error matching SQLite result `rc` (busy -> kUnavailable,
// corrupt / not a database -> kCorrupt, constraint / too big ->
// kInvalidArgument, otherwise kIo).
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const std::string& path, std::string_view what);

class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& path, std::string_view sql, bool persistent);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Parameters count from 1, as in SQL (?1, ?2, ...).
  void bind(int i, int64_t v);
  void bind(int i, double v);
  void bind_text(int i, std::string_view v);
  void bind_blob(int i, std::string_view v);
  // Runs to the next row: true when a row is available, false when done.
  bool step();
  // Steps a statement that returns no rows (or ignores them).
  void run();
  // Back to the start, parameters cleared. Never throws.
  void reset() noexcept;

  // Columns count from 0.
  int64_t col_int(int c) const { return sqlite3_column_int64(s_, c); }
  double col_double(int c) const { return sqlite3_column_double(s_, c); }
  std::string_view col_text(int c) const;
  std::string_view col_blob(int c) const;
  bool col_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }

 private:
  sqlite3_stmt* s_ = nullptr;
  sqlite3* db_;
  const std::string& path_;
  std::string sql_;
};

// Resets a statement when leaving the scope (also on exceptions).
class Use {
 public:
  explicit Use(Stmt& s) : s_(s) {}
  ~Use() { s_.reset(); }
  Stmt* operator->() { return &s_; }
  Stmt& operator*() { return s_; }

 private:
  Stmt& s_;
};

class Db {
 public:
  // flags: SQLITE_OPEN_* (SQLITE_OPEN_NOMUTEX is added).
  Db(const std::string& path, int flags, int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements without results.
  void exec(const char* sql, std::string_view what);
  // A one-shot statement (schema inspection, pragmas).
  std::unique_ptr<Stmt> prepare(std::string_view sql) { return std::make_unique<Stmt>(db_, path_, sql, false); }
  // The statement for `sql`, prepared once per connection. `sql` must be a
  // string with static storage (the cache is keyed by its address).
  Stmt& cached(const char* sql);
  // Single integer result of a query ("PRAGMA user_version").
  int64_t query_int(const char* sql);
  std::string query_text(const char* sql);

  int64_t changes() const { return sqlite3_changes64(db_); }
  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }
  const std::string& path() const { return path_; }
  sqlite3* raw() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  std::unordered_map<const char*, std::unique_ptr<Stmt>> cache_;
};

// BEGIN (IMMEDIATE for writers, DEFERRED for a read snapshot); rolled back
// when destroyed without commit().
class Transaction {
 public:
  Transaction(Db& db, bool immediate);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Db& db_;
  bool open_ = true;
};

}  // namespace fewrec::store::detail

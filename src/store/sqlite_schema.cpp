// Schema versions of the SQLite store. The version lives in PRAGMA
// user_version and the file is marked by PRAGMA application_id. A migration
// is appended here (never edited once released) and kSqliteSchemaVersion
// raised; opening an older store applies the missing ones in one transaction.
//
// Tables: users and items have an autoincrement `seq` (insertion order,
// paging cursor, never reused) and the external `id`; feedback refers to them
// by seq (small rows, cascading deletes). The feedback identity
// (user, item, type, timestamp) is a unique index whose leading
// (user_seq, timestamp) also serves a user's history in time order.
#include "sqlite_schema.h"

#include <string>
#include <vector>

#include "fewrec/core/error.h"
#include "fewrec/store/store.h"

namespace fewrec::store::detail {

namespace {

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, "users, items, feedback, models", R"sql(
CREATE TABLE users (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  attributes TEXT NOT NULL DEFAULT '{}',
  updated_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE items (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  categories TEXT NOT NULL DEFAULT '[]',
  features TEXT NOT NULL DEFAULT '{}',
  text TEXT NOT NULL DEFAULT '',
  timestamp INTEGER NOT NULL DEFAULT 0,
  hidden INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE feedback (
  user_seq INTEGER NOT NULL REFERENCES users(seq) ON DELETE CASCADE,
  item_seq INTEGER NOT NULL REFERENCES items(seq) ON DELETE CASCADE,
  type TEXT NOT NULL,
  value REAL NOT NULL,
  timestamp INTEGER NOT NULL
);
CREATE UNIQUE INDEX feedback_identity ON feedback(user_seq, timestamp, item_seq, type);
CREATE INDEX feedback_time ON feedback(timestamp);
CREATE INDEX feedback_item ON feedback(item_seq);
CREATE TABLE models (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  metadata TEXT NOT NULL,
  size INTEGER NOT NULL,
  bytes BLOB NOT NULL,
  UNIQUE (name, version)
);
)sql"},
    {2, "user labels, item tags", R"sql(
ALTER TABLE users ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE items ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
)sql"},
};

static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSqliteSchemaVersion,
              "one migration per schema version");

std::vector<std::string> table_names(Db& db) {
  std::vector<std::string> names;
  auto s = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name");
  while (s->step()) names.emplace_back(s->col_text(0));
  return names;
}

// Throws unless the database is a fewrec store this build can open, or empty.
// Returns its schema version (0 = empty).
int check_identity(Db& db) {
  // Reading the schema first also finds a damaged first page.
  const std::vector<std::string> tables = table_names(db);
  const int64_t app_id = db.query_int("PRAGMA application_id");
  const int64_t version = db.query_int("PRAGMA user_version");
  if (app_id != kSqliteApplicationId) {
    if (app_id == 0 && version == 0 && tables.empty()) return 0;  // a new, empty database
    std::string listed;
    for (size_t i = 0; i < tables.size() && i < 8; ++i) listed += (i ? ", " : "") + tables[i];
    if (tables.size() > 8) listed += ", ...";
    FEWREC_THROW(kCorrupt,
                 "sqlite store `{}`: an SQLite database of another application, not a fewrec store "
                 "(application_id {:#x}, expected {:#x}; tables: {})",
                 db.path(), app_id, kSqliteApplicationId, listed.empty() ? "none" : listed);
  }
  FEWREC_CHECK(version <= kSqliteSchemaVersion, kUnavailable,
               "sqlite store `{}` has schema version {}, newer than the versions this fewrec "
               "knows (1 to {}): open it with a newer fewrec",
               db.path(), version, kSqliteSchemaVersion);
  FEWREC_CHECK(version >= 1, kCorrupt,
               "sqlite store `{}`: invalid schema version {} (expected 1 to {})", db.path(), version,
               kSqliteSchemaVersion);
  return static_cast<int>(version);
}

}  // namespace

int prepare_schema(Db& db) {
  // Read-only checks first: a foreign database is left untouched.
  const int found = check_identity(db);

  const std::string mode = db.query_text("PRAGMA journal_mode = WAL");
  FEWREC_CHECK(mode == "wal", kIo,
               "sqlite store `{}`: cannot switch to WAL journaling (journal_mode is `{}`); is the "
               "file on a file system without shared memory support?",
               db.path(), mode);
  if (found == kSqliteSchemaVersion) return found;

  Transaction tx(db, /*immediate=*/true);
  // Another process may have migrated between the check and the lock.
  const int current = check_identity(db);
  for (const Migration& m : kMigrations) {
    if (m.version <= current) continue;
    db.exec(m.sql, fmt::format("schema migration to version {} ({})", m.version, m.description));
  }
  db.exec(fmt::format("PRAGMA user_version = {}; PRAGMA application_id = {}", kSqliteSchemaVersion,
                      kSqliteApplicationId)
              .c_str(),
          "recording the schema version");
  tx.commit();
  return found;
}

}  // namespace fewrec::store::detail

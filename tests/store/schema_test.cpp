// SQLite store files: schema versions and migrations, files that are not
// fewrec stores, damaged rows.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/store/store.h"

namespace fewrec::store {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("fewrec_schema_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

template <class Fn>
std::string error_of(Fn&& fn, ErrorCode code) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected fewrec::Error";
  return "";
}

// Raw SQL on a database file, as another program (or an old fewrec) would.
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

int64_t raw_int(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
  const int64_t v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

std::string raw_text(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
  const auto* p = sqlite3_column_text(s, 0);
  std::string v = p ? reinterpret_cast<const char*>(p) : "";
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// The schema fewrec 0.1 (schema version 1) created, written by hand: the
// fixture of an old store to migrate.
constexpr const char* kVersion1 = R"sql(
CREATE TABLE users (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
  attributes TEXT NOT NULL DEFAULT '{}', updated_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE items (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
  categories TEXT NOT NULL DEFAULT '[]', features TEXT NOT NULL DEFAULT '{}',
  text TEXT NOT NULL DEFAULT '', timestamp INTEGER NOT NULL DEFAULT 0,
  hidden INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE feedback (
  user_seq INTEGER NOT NULL REFERENCES users(seq) ON DELETE CASCADE,
  item_seq INTEGER NOT NULL REFERENCES items(seq) ON DELETE CASCADE,
  type TEXT NOT NULL, value REAL NOT NULL, timestamp INTEGER NOT NULL);
CREATE UNIQUE INDEX feedback_identity ON feedback(user_seq, timestamp, item_seq, type);
CREATE INDEX feedback_time ON feedback(timestamp);
CREATE INDEX feedback_item ON feedback(item_seq);
CREATE TABLE models (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
  version INTEGER NOT NULL, created_at INTEGER NOT NULL, metadata TEXT NOT NULL,
  size INTEGER NOT NULL, bytes BLOB NOT NULL, UNIQUE (name, version));
INSERT INTO users(id, attributes, updated_at) VALUES ('alice', '{"age":"30-39"}', 1000);
INSERT INTO items(id, categories, features, text, timestamp, hidden, updated_at)
  VALUES ('book', '["fiction"]', '{"lang":"en"}', 'A book', 50, 1, 1001);
INSERT INTO feedback VALUES (1, 1, 'read', 4.5, 77);
INSERT INTO models(name, version, created_at, metadata, size, bytes) VALUES ('als', 1, 5, '{}', 3, x'010203');
PRAGMA application_id = 1178949458;
PRAGMA user_version = 1;
)sql";

TEST(SqliteSchema, NewStoreIsMarkedAndUsesWal) {
  TempDir dir;
  const std::string path = dir.file("new.db");
  { auto s = open_sqlite_store(path); }
  EXPECT_EQ(raw_int(path, "PRAGMA user_version"), kSqliteSchemaVersion);
  EXPECT_EQ(raw_int(path, "PRAGMA application_id"), kSqliteApplicationId);
  EXPECT_EQ(raw_text(path, "PRAGMA journal_mode"), "wal");  // persistent in the file
  EXPECT_EQ(kSqliteApplicationId, 1178949458);              // the value in the fixture above
}

TEST(SqliteSchema, MigratesVersion1AndKeepsTheData) {
  TempDir dir;
  const std::string path = dir.file("v1.db");
  raw_exec(path, kVersion1);
  ASSERT_EQ(raw_int(path, "PRAGMA user_version"), 1);
  {
    auto s = open_sqlite_store(path);
    EXPECT_EQ(s->stats()["schema_version_at_open"], 1);
    const auto alice = s->get_user("alice");
    ASSERT_TRUE(alice.has_value());
    EXPECT_EQ(*alice, (UserRecord{.id = "alice", .attributes = {{"age", "30-39"}}, .labels = {}, .updated_at = 1000}));
    const auto book = s->get_item("book");
    ASSERT_TRUE(book.has_value());
    EXPECT_EQ(*book, (ItemRecord{.id = "book",
                                 .categories = {"fiction"},
                                 .tags = {},
                                 .features = {{"lang", "en"}},
                                 .text = "A book",
                                 .timestamp = 50,
                                 .hidden = true,
                                 .updated_at = 1001}));
    const auto hist = s->feedback_of_user("alice");
    ASSERT_EQ(hist.size(), 1u);
    EXPECT_EQ(hist[0], (FeedbackRecord{"alice", "book", "read", 4.5f, 77}));
    EXPECT_EQ(s->latest_model("als")->bytes, "\x01\x02\x03");
    // The version-2 columns work on migrated rows.
    UserRecord a = *alice;
    a.labels = {"early-adopter"};
    s->upsert_user(a);
    EXPECT_EQ(*s->get_user("alice"), a);
  }
  EXPECT_EQ(raw_int(path, "PRAGMA user_version"), kSqliteSchemaVersion);
  // Opening again does not migrate twice.
  auto s = open_sqlite_store(path);
  EXPECT_EQ(s->stats()["schema_version_at_open"], kSqliteSchemaVersion);
  EXPECT_EQ(s->get_user("alice")->labels, std::vector<std::string>{"early-adopter"});
}

TEST(SqliteSchema, FailedMigrationLeavesTheOldVersion) {
  TempDir dir;
  const std::string path = dir.file("v1-broken.db");
  raw_exec(path, kVersion1);
  // A column the version-2 migration adds already exists: the migration fails.
  raw_exec(path, "ALTER TABLE items ADD COLUMN tags TEXT");
  const std::string msg = error_of([&] { open_sqlite_store(path); }, ErrorCode::kIo);
  EXPECT_THAT(msg, HasSubstr("schema migration to version 2 (user labels, item tags) failed"));
  EXPECT_THAT(msg, HasSubstr("duplicate column name: tags"));
  // Rolled back as a whole: still version 1, users.labels not added.
  EXPECT_EQ(raw_int(path, "PRAGMA user_version"), 1);
  EXPECT_EQ(raw_int(path, "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'labels'"), 0);
}

TEST(SqliteSchema, NewerVersionIsAnErrorNamingBothVersions) {
  TempDir dir;
  const std::string path = dir.file("future.db");
  { auto s = open_sqlite_store(path); }
  raw_exec(path, "PRAGMA user_version = 9");
  const std::string msg = error_of([&] { open_sqlite_store(path); }, ErrorCode::kUnavailable);
  EXPECT_THAT(msg, HasSubstr("has schema version 9, newer than the versions this fewrec knows (1 to " +
                             std::to_string(kSqliteSchemaVersion) + ")"));
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_EQ(raw_int(path, "PRAGMA user_version"), 9);  // untouched
}

TEST(SqliteSchema, GarbageFileIsNotAStore) {
  TempDir dir;
  const std::string path = dir.file("garbage.db");
  std::string bytes = "this is a CSV file, not a database\nuser,item\n";
  bytes.resize(4096, 'x');
  write_file(path, bytes);
  const std::string msg = error_of([&] { open_sqlite_store(path); }, ErrorCode::kCorrupt);
  EXPECT_THAT(msg, HasSubstr("is not a fewrec store: not an SQLite database"));
  EXPECT_THAT(msg, HasSubstr("start with `this is a CSV file"));
  // Untouched.
  std::ifstream in(path, std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(back, bytes);

  write_file(path, "SQL");  // shorter than a header
  EXPECT_THAT(error_of([&] { open_sqlite_store(path); }, ErrorCode::kCorrupt),
              HasSubstr("not an SQLite database (its 3 bytes start with `SQL`"));
}

TEST(SqliteSchema, DamagedSqliteFileIsCorrupt) {
  TempDir dir;
  const std::string path = dir.file("damaged.db");
  {
    auto s = open_sqlite_store(path);
    s->upsert_user(UserRecord{.id = "u"});
  }
  // Keep the header, destroy the rest of page 1 (the schema).
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(100);
  const std::string junk(3000, '\x5a');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  f.close();
  const std::string msg = error_of([&] { open_sqlite_store(path); }, ErrorCode::kCorrupt);
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("malformed"));
}

TEST(SqliteSchema, SqliteDatabaseOfAnotherApplicationIsLeftAlone) {
  TempDir dir;
  const std::string path = dir.file("other.db");
  raw_exec(path, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5)");
  const std::string msg = error_of([&] { open_sqlite_store(path); }, ErrorCode::kCorrupt);
  EXPECT_THAT(msg, HasSubstr("an SQLite database of another application, not a fewrec store"));
  EXPECT_THAT(msg, HasSubstr("application_id 0x0, expected 0x46455752; tables: invoices"));
  EXPECT_EQ(raw_text(path, "PRAGMA journal_mode"), "delete");  // not switched to WAL
  EXPECT_EQ(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'users'"), 0);
}

TEST(SqliteSchema, EmptyFileBecomesAStore) {
  TempDir dir;
  const std::string path = dir.file("empty.db");
  write_file(path, "");
  auto s = open_sqlite_store(path);
  s->upsert_user(UserRecord{.id = "u"});
  EXPECT_EQ(s->count_users(), 1);
}

TEST(SqliteSchema, PathErrors) {
  TempDir dir;
  EXPECT_THAT(error_of([&] { open_sqlite_store(dir.file("none.db"), {.create_if_missing = false}); },
                       ErrorCode::kNotFound),
              HasSubstr("none.db` does not exist (create_if_missing is off)"));
  EXPECT_THAT(error_of([&] { open_sqlite_store(dir.file("no/such/dir/s.db")); }, ErrorCode::kNotFound),
              HasSubstr("the directory `" + dir.file("no/such/dir") + "` does not exist"));
  fs::create_directories(dir.file("adir"));
  EXPECT_THAT(error_of([&] { open_sqlite_store(dir.file("adir")); }, ErrorCode::kInvalidArgument),
              HasSubstr("is a directory; expected a database file"));
  EXPECT_THAT(error_of([&] { open_sqlite_store(":memory:"); }, ErrorCode::kInvalidArgument),
              HasSubstr("expected a file path"));
  EXPECT_THAT(error_of([&] { open_sqlite_store(""); }, ErrorCode::kInvalidArgument),
              HasSubstr("the database path is empty"));
  EXPECT_THAT(error_of([&] { open_sqlite_store(dir.file("s.db"), {.busy_timeout_ms = -1}); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("busy_timeout_ms must be >= 0, got -1"));
}

TEST(SqliteOptionsConfig, ReadsKeysAndRejectsBadValues) {
  auto config = core::Config::from_toml_string(
      "[store]\nsynchronous = \"normal\"\nunknown_ids = \"reject\"\nbusy_timeout_ms = 250\ncache_mib = 4\n");
  const SqliteOptions o = SqliteOptions::from_config(config);
  EXPECT_FALSE(o.synchronous_full);
  EXPECT_EQ(o.unknown_ids, UnknownIds::kReject);
  EXPECT_EQ(o.busy_timeout_ms, 250);
  EXPECT_EQ(o.cache_mib, 4);
  EXPECT_EQ(o.max_idle_readers, SqliteOptions{}.max_idle_readers);
  EXPECT_TRUE(o.create_if_missing);

  auto bad = core::Config::from_toml_string("[store]\nsynchronous = \"off\"\n");
  EXPECT_THAT(error_of([&] { SqliteOptions::from_config(bad); }, ErrorCode::kInvalidArgument),
              HasSubstr("config key `store.synchronous`: expected `full` or `normal`, got `off`"));
  auto negative = core::Config::from_toml_string("[store]\nmax_idle_readers = 0\n");
  EXPECT_THAT(error_of([&] { SqliteOptions::from_config(negative); }, ErrorCode::kInvalidArgument),
              HasSubstr("config key `store.max_idle_readers`: expected an integer from 1"));
}

TEST(SqliteSchema, DamagedRowIsReportedWithItsId) {
  TempDir dir;
  const std::string path = dir.file("rows.db");
  {
    auto s = open_sqlite_store(path);
    s->upsert_user(UserRecord{.id = "bob", .attributes = {{"a", "b"}}});
    s->upsert_item(ItemRecord{.id = "pen"});
  }
  raw_exec(path, "UPDATE users SET attributes = '{not json' WHERE id = 'bob';"
                 "UPDATE items SET categories = '{\"a\":1}' WHERE id = 'pen'");
  auto s = open_sqlite_store(path);
  EXPECT_THAT(error_of([&] { s->get_user("bob"); }, ErrorCode::kCorrupt),
              HasSubstr("user `bob`: column `attributes` holds invalid JSON `{not json`"));
  EXPECT_THAT(error_of([&] { s->get_item("pen"); }, ErrorCode::kCorrupt),
              HasSubstr("item `pen`: column `categories` is not a JSON array"));
  // The failed reads left the pooled connections usable.
  EXPECT_EQ(s->count_users(), 1);
}

TEST(SqliteSchema, WriteLockHeldByAnotherProcessTimesOut) {
  TempDir dir;
  const std::string path = dir.file("locked.db");
  auto s = open_sqlite_store(path, {.busy_timeout_ms = 50});
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const std::string msg = error_of([&] { s->upsert_user(UserRecord{.id = "u"}); }, ErrorCode::kUnavailable);
  EXPECT_THAT(msg, HasSubstr("database is locked"));
  EXPECT_THAT(msg, HasSubstr("busy_timeout_ms"));
  // Reads still work under WAL while the other writer holds the lock.
  EXPECT_EQ(s->count_users(), 0);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  s->upsert_user(UserRecord{.id = "u"});
  EXPECT_EQ(s->count_users(), 1);
}

}  // namespace
}  // namespace fewrec::store

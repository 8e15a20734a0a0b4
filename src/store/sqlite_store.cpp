// The SQLite store: one mutex-guarded write connection and a pool of
// read-only connections over a WAL database (see store.h for the model).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/store/store.h"
#include "sqlite_db.h"
#include "sqlite_schema.h"

namespace fewrec::store {

namespace {

namespace fs = std::filesystem;
using detail::Db;
using detail::Stmt;
using detail::Transaction;
using detail::Use;

// ----------------------------------------------------------------- statements
// Cached per connection, keyed by address: keep them as named arrays.

constexpr char kUpsertUser[] =
    "INSERT INTO users(id, attributes, labels, updated_at) VALUES(?1, ?2, ?3, ?4) "
    "ON CONFLICT(id) DO UPDATE SET attributes = excluded.attributes, labels = excluded.labels, "
    "updated_at = excluded.updated_at";
constexpr char kGetUser[] = "SELECT seq, id, attributes, labels, updated_at FROM users WHERE id = ?1";
constexpr char kDeleteUser[] = "DELETE FROM users WHERE id = ?1";
constexpr char kListUsers[] =
    "SELECT seq, id, attributes, labels, updated_at FROM users WHERE seq > ?1 ORDER BY seq LIMIT ?2";
constexpr char kScanUsers[] = "SELECT seq, id, attributes, labels, updated_at FROM users ORDER BY seq";
constexpr char kCountUsers[] = "SELECT count(*) FROM users";
constexpr char kUserSeq[] = "SELECT seq FROM users WHERE id = ?1";
constexpr char kAddUser[] = "INSERT INTO users(id) VALUES(?1)";

constexpr char kUpsertItem[] =
    "INSERT INTO items(id, categories, tags, features, text, timestamp, hidden, updated_at) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
    "ON CONFLICT(id) DO UPDATE SET categories = excluded.categories, tags = excluded.tags, "
    "features = excluded.features, text = excluded.text, timestamp = excluded.timestamp, "
    "hidden = excluded.hidden, updated_at = excluded.updated_at";
#define FEWREC_ITEM_COLUMNS "seq, id, categories, tags, features, text, timestamp, hidden, updated_at"
constexpr char kGetItem[] = "SELECT " FEWREC_ITEM_COLUMNS " FROM items WHERE id = ?1";
constexpr char kDeleteItem[] = "DELETE FROM items WHERE id = ?1";
constexpr char kListItems[] =
    "SELECT " FEWREC_ITEM_COLUMNS " FROM items WHERE seq > ?1 ORDER BY seq LIMIT ?2";
constexpr char kScanItems[] = "SELECT " FEWREC_ITEM_COLUMNS " FROM items ORDER BY seq";
#undef FEWREC_ITEM_COLUMNS
constexpr char kCountItems[] = "SELECT count(*) FROM items";
constexpr char kItemSeq[] = "SELECT seq FROM items WHERE id = ?1";
constexpr char kAddItem[] = "INSERT INTO items(id) VALUES(?1)";

constexpr char kInsertFeedback[] =
    "INSERT INTO feedback(user_seq, item_seq, type, value, timestamp) VALUES(?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT DO NOTHING";
constexpr char kUserFeedbackNewest[] =
    "SELECT i.id, f.type, f.value, f.timestamp FROM feedback f JOIN items i ON i.seq = f.item_seq "
    "WHERE f.user_seq = ?1 AND (?2 = '' OR f.type = ?2) "
    "ORDER BY f.timestamp DESC, f.rowid DESC LIMIT ?3";
constexpr char kUserFeedbackOldest[] =
    "SELECT i.id, f.type, f.value, f.timestamp FROM feedback f JOIN items i ON i.seq = f.item_seq "
    "WHERE f.user_seq = ?1 AND (?2 = '' OR f.type = ?2) "
    "ORDER BY f.timestamp, f.rowid LIMIT ?3";
// CROSS JOIN keeps feedback as the outer loop, read in feedback_time order.
constexpr char kScanFeedback[] =
    "SELECT u.id, i.id, f.type, f.value, f.timestamp "
    "FROM feedback f CROSS JOIN users u CROSS JOIN items i "
    "WHERE u.seq = f.user_seq AND i.seq = f.item_seq AND f.timestamp >= ?1 "
    "ORDER BY f.timestamp, f.rowid";
constexpr char kCountFeedback[] = "SELECT count(*) FROM feedback";

constexpr char kNextModelVersion[] = "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = ?1";
constexpr char kInsertModel[] =
    "INSERT INTO models(name, version, created_at, metadata, size, bytes) VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
constexpr char kLatestModel[] =
    "SELECT name, version, created_at, metadata, size, bytes FROM models WHERE name = ?1 "
    "ORDER BY version DESC LIMIT 1";
constexpr char kGetModel[] =
    "SELECT name, version, created_at, metadata, size, bytes FROM models WHERE name = ?1 AND version = ?2";
constexpr char kListModels[] =
    "SELECT name, version, created_at, metadata, size FROM models WHERE ?1 = '' OR name = ?1 "
    "ORDER BY name, version DESC";
constexpr char kPruneModels[] =
    "DELETE FROM models WHERE name = ?1 AND version NOT IN "
    "(SELECT version FROM models WHERE name = ?1 ORDER BY version DESC LIMIT ?2)";
constexpr char kCountModels[] = "SELECT count(*) FROM models";

// ----------------------------------------------------------------- encoding

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string encode(const std::map<std::string, std::string>& values) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : values) j[k] = v;
  return j.dump();
}

std::string encode(const std::vector<std::string>& values) { return nlohmann::json(values).dump(); }

// Decoders name the row and column when the stored JSON is not what the
// store writes (a damaged or hand-edited database).
struct Where {
  const std::string& path;
  const char* table;
  std::string_view id;
  const char* column;
};

[[noreturn]] void bad_column(const Where& w, std::string_view problem) {
  FEWREC_THROW(kCorrupt, "sqlite store `{}`: {} `{}`: column `{}` {}", w.path, w.table,
               core::excerpt(w.id), w.column, problem);
}

nlohmann::json parse_json(const Where& w, std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) bad_column(w, fmt::format("holds invalid JSON `{}`", core::excerpt(text)));
  return j;
}

void decode(const Where& w, std::string_view text, std::map<std::string, std::string>& out) {
  out.clear();
  const nlohmann::json j = parse_json(w, text);
  if (!j.is_object()) bad_column(w, "is not a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) bad_column(w, fmt::format("has a non-string value for `{}`", k));
    out.emplace(k, v.get<std::string>());
  }
}

void decode(const Where& w, std::string_view text, std::vector<std::string>& out) {
  out.clear();
  const nlohmann::json j = parse_json(w, text);
  if (!j.is_array()) bad_column(w, "is not a JSON array");
  for (const auto& v : j) {
    if (!v.is_string()) bad_column(w, "has a non-string element");
    out.push_back(v.get<std::string>());
  }
}

// Row readers; the column order is the one of the SELECTs above.
void read_user(const std::string& path, const Stmt& s, UserRecord& u) {
  u.id.assign(s.col_text(1));
  decode(Where{path, "user", u.id, "attributes"}, s.col_text(2), u.attributes);
  decode(Where{path, "user", u.id, "labels"}, s.col_text(3), u.labels);
  u.updated_at = s.col_int(4);
}

void read_item(const std::string& path, const Stmt& s, ItemRecord& it) {
  it.id.assign(s.col_text(1));
  decode(Where{path, "item", it.id, "categories"}, s.col_text(2), it.categories);
  decode(Where{path, "item", it.id, "tags"}, s.col_text(3), it.tags);
  decode(Where{path, "item", it.id, "features"}, s.col_text(4), it.features);
  it.text.assign(s.col_text(5));
  it.timestamp = s.col_int(6);
  it.hidden = s.col_int(7) != 0;
  it.updated_at = s.col_int(8);
}

ModelInfo read_model_info(const std::string& path, const Stmt& s) {
  ModelInfo info;
  info.name.assign(s.col_text(0));
  info.version = s.col_int(1);
  info.created_at = s.col_int(2);
  const Where w{path, "model", info.name, "metadata"};
  info.metadata = parse_json(w, s.col_text(3));
  info.size = s.col_int(4);
  return info;
}

void check_limit(int64_t limit, std::string_view what) {
  FEWREC_CHECK(limit > 0, kInvalidArgument, "{}: page limit must be positive, got {}", what, limit);
}

// ---------------------------------------------------------------- the store

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, const SqliteOptions& options) : path_(std::move(path)), options_(options) {
    writer_ = std::make_unique<Db>(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                   options_.busy_timeout_ms);
    // Per-connection settings, outside transactions (foreign_keys is a no-op inside one).
    writer_->exec(fmt::format("PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; PRAGMA cache_size = {}",
                              options_.synchronous_full ? "FULL" : "NORMAL",
                              -1024 * static_cast<int64_t>(options_.cache_mib))
                      .c_str(),
                  "configuring the connection");
    schema_found_ = detail::prepare_schema(*writer_);
  }

  // ------------------------------------------------------------------ users

  void upsert_users(std::span<const UserRecord> users) override {
    for (const auto& u : users) validate_user(u);
    if (users.empty()) return;
    const int64_t now = now_seconds();
    std::lock_guard lock(write_mu_);
    Transaction tx(*writer_, true);
    Stmt& stmt = writer_->cached(kUpsertUser);
    for (const auto& u : users) {
      Use s(stmt);
      s->bind_text(1, u.id);
      s->bind_text(2, encode(u.attributes));
      s->bind_text(3, encode(u.labels));
      s->bind(4, u.updated_at != 0 ? u.updated_at : now);
      s->run();
    }
    tx.commit();
  }

  std::optional<UserRecord> get_user(std::string_view id) const override {
    Reader r = reader();
    return get_user_on(*r, id);
  }

  std::vector<std::optional<UserRecord>> get_users(std::span<const std::string> ids) const override {
    std::vector<std::optional<UserRecord>> out;
    out.reserve(ids.size());
    Reader r = reader();
    Transaction tx(*r, false);  // one snapshot for the batch
    for (const auto& id : ids) out.push_back(get_user_on(*r, id));
    tx.commit();
    return out;
  }

  int64_t delete_users(std::span<const std::string> ids) override {
    return delete_rows(kDeleteUser, ids);
  }

  Page<UserRecord> list_users(int64_t cursor, int64_t limit) const override {
    check_limit(limit, "list_users");
    Page<UserRecord> page;
    Reader r = reader();
    Use s(r->cached(kListUsers));
    s->bind(1, cursor);
    s->bind(2, limit);
    while (s->step()) {
      read_user(path_, *s, page.records.emplace_back());
      page.next_cursor = s->col_int(0);
    }
    if (static_cast<int64_t>(page.records.size()) < limit) page.next_cursor = 0;
    return page;
  }

  int64_t count_users() const override { return count(kCountUsers); }

  // ------------------------------------------------------------------ items

  void upsert_items(std::span<const ItemRecord> items) override {
    for (const auto& it : items) validate_item(it);
    if (items.empty()) return;
    const int64_t now = now_seconds();
    std::lock_guard lock(write_mu_);
    Transaction tx(*writer_, true);
    Stmt& stmt = writer_->cached(kUpsertItem);
    for (const auto& it : items) {
      Use s(stmt);
      s->bind_text(1, it.id);
      s->bind_text(2, encode(it.categories));
      s->bind_text(3, encode(it.tags));
      s->bind_text(4, encode(it.features));
      s->bind_text(5, it.text);
      s->bind(6, it.timestamp);
      s->bind(7, static_cast<int64_t>(it.hidden ? 1 : 0));
      s->bind(8, it.updated_at != 0 ? it.updated_at : now);
      s->run();
    }
    tx.commit();
  }

  std::optional<ItemRecord> get_item(std::string_view id) const override {
    Reader r = reader();
    return get_item_on(*r, id);
  }

  std::vector<std::optional<ItemRecord>> get_items(std::span<const std::string> ids) const override {
    std::vector<std::optional<ItemRecord>> out;
    out.reserve(ids.size());
    Reader r = reader();
    Transaction tx(*r, false);
    for (const auto& id : ids) out.push_back(get_item_on(*r, id));
    tx.commit();
    return out;
  }

  int64_t delete_items(std::span<const std::string> ids) override {
    return delete_rows(kDeleteItem, ids);
  }

  Page<ItemRecord> list_items(int64_t cursor, int64_t limit) const override {
    check_limit(limit, "list_items");
    Page<ItemRecord> page;
    Reader r = reader();
    Use s(r->cached(kListItems));
    s->bind(1, cursor);
    s->bind(2, limit);
    while (s->step()) {
      read_item(path_, *s, page.records.emplace_back());
      page.next_cursor = s->col_int(0);
    }
    if (static_cast<int64_t>(page.records.size()) < limit) page.next_cursor = 0;
    return page;
  }

  int64_t count_items() const override { return count(kCountItems); }

  // --------------------------------------------------------------- feedback

  std::vector<int64_t> insert_feedback_groups(
      std::span<const std::span<const FeedbackRecord>> batches) override {
    for (const auto& b : batches) validate_feedback(b);
    std::vector<int64_t> fresh(batches.size(), 0);
    size_t total = 0;
    for (const auto& b : batches) total += b.size();
    if (total == 0) return fresh;

    std::lock_guard lock(write_mu_);
    Transaction tx(*writer_, true);
    // id -> seq of the rows seen in this transaction.
    std::unordered_map<std::string_view, int64_t> users, items;
    Stmt& insert = writer_->cached(kInsertFeedback);
    for (size_t b = 0; b < batches.size(); ++b) {
      const auto& batch = batches[b];
      for (size_t i = 0; i < batch.size(); ++i) {
        const FeedbackRecord& e = batch[i];
        const int64_t u = seq_of(users, kUserSeq, kAddUser, e.user, "user", i);
        const int64_t it = seq_of(items, kItemSeq, kAddItem, e.item, "item", i);
        Use s(insert);
        s->bind(1, u);
        s->bind(2, it);
        s->bind_text(3, e.type);
        s->bind(4, static_cast<double>(e.value));
        s->bind(5, e.timestamp);
        s->run();
        fresh[b] += writer_->changes();
      }
    }
    tx.commit();
    return fresh;
  }

  std::vector<FeedbackRecord> feedback_of_user(std::string_view user,
                                               const FeedbackQuery& query) const override {
    FEWREC_CHECK(query.limit == -1 || query.limit > 0, kInvalidArgument,
                 "feedback_of_user: limit must be -1 (all) or positive, got {}", query.limit);
    std::vector<FeedbackRecord> out;
    Reader r = reader();
    Transaction tx(*r, false);
    int64_t seq = 0;
    {
      Use s(r->cached(kUserSeq));
      s->bind_text(1, user);
      if (!s->step()) return out;
      seq = s->col_int(0);
    }
    Use s(r->cached(query.newest_first ? kUserFeedbackNewest : kUserFeedbackOldest));
    s->bind(1, seq);
    s->bind_text(2, query.type);
    s->bind(3, query.limit);
    while (s->step()) {
      FeedbackRecord& e = out.emplace_back();
      e.user.assign(user);
      e.item.assign(s->col_text(0));
      e.type.assign(s->col_text(1));
      e.value = static_cast<float>(s->col_double(2));
      e.timestamp = s->col_int(3);
    }
    tx.commit();
    return out;
  }

  int64_t count_feedback() const override { return count(kCountFeedback); }

  void scan(const StoreScan& cb) const override {
    Reader r = reader();
    Transaction tx(*r, false);
    if (cb.user) {
      Use s(r->cached(kScanUsers));
      UserRecord u;
      while (s->step()) {
        read_user(path_, *s, u);
        cb.user(u);
      }
    }
    if (cb.item) {
      Use s(r->cached(kScanItems));
      ItemRecord it;
      while (s->step()) {
        read_item(path_, *s, it);
        cb.item(it);
      }
    }
    if (cb.feedback) {
      Use s(r->cached(kScanFeedback));
      s->bind(1, cb.feedback_since);
      FeedbackRecord e;
      while (s->step()) {
        e.user.assign(s->col_text(0));
        e.item.assign(s->col_text(1));
        e.type.assign(s->col_text(2));
        e.value = static_cast<float>(s->col_double(3));
        e.timestamp = s->col_int(4);
        cb.feedback(e);
      }
    }
    tx.commit();
  }

  // ----------------------------------------------------------------- models

  ModelInfo save_model(const std::string& name, std::string_view bytes,
                       const nlohmann::json& metadata) override {
    validate_model_name(name);
    std::string meta;
    try {
      meta = metadata.dump();
    } catch (const nlohmann::json::exception& e) {
      FEWREC_THROW(kInvalidArgument, "model `{}`: metadata cannot be stored as JSON: {}", name, e.what());
    }
    ModelInfo info;
    info.name = name;
    info.created_at = now_seconds();
    info.size = static_cast<int64_t>(bytes.size());
    info.metadata = metadata;
    std::lock_guard lock(write_mu_);
    const int64_t max_bytes = sqlite3_limit(writer_->raw(), SQLITE_LIMIT_LENGTH, -1);
    FEWREC_CHECK(info.size <= max_bytes, kInvalidArgument,
                 "model `{}`: {} bytes exceed the SQLite store's limit of {} bytes per artifact", name,
                 info.size, max_bytes);
    Transaction tx(*writer_, true);
    {
      Use s(writer_->cached(kNextModelVersion));
      s->bind_text(1, name);
      FEWREC_ASSERT(s->step());
      info.version = s->col_int(0);
    }
    {
      Use s(writer_->cached(kInsertModel));
      s->bind_text(1, name);
      s->bind(2, info.version);
      s->bind(3, info.created_at);
      s->bind_text(4, meta);
      s->bind(5, info.size);
      s->bind_blob(6, bytes);
      s->run();
    }
    tx.commit();
    return info;
  }

  std::optional<ModelArtifact> latest_model(const std::string& name) const override {
    Reader r = reader();
    Use s(r->cached(kLatestModel));
    s->bind_text(1, name);
    return read_model(*s);
  }

  std::optional<ModelArtifact> get_model(const std::string& name, int64_t version) const override {
    Reader r = reader();
    Use s(r->cached(kGetModel));
    s->bind_text(1, name);
    s->bind(2, version);
    return read_model(*s);
  }

  std::vector<ModelInfo> list_models(const std::string& name) const override {
    std::vector<ModelInfo> out;
    Reader r = reader();
    Use s(r->cached(kListModels));
    s->bind_text(1, name);
    while (s->step()) out.push_back(read_model_info(path_, *s));
    return out;
  }

  int64_t prune_models(const std::string& name, int64_t keep) override {
    FEWREC_CHECK(keep >= 0, kInvalidArgument, "prune_models `{}`: keep must be >= 0, got {}", name, keep);
    std::lock_guard lock(write_mu_);
    Transaction tx(*writer_, true);
    Use s(writer_->cached(kPruneModels));
    s->bind_text(1, name);
    s->bind(2, keep);
    s->run();
    const int64_t n = writer_->changes();
    tx.commit();
    return n;
  }

  // ------------------------------------------------------------------ admin

  std::string describe() const override { return "sqlite:" + path_; }

  nlohmann::json stats() const override {
    nlohmann::json j;
    j["backend"] = "sqlite";
    j["path"] = path_;
    j["schema_version"] = kSqliteSchemaVersion;
    j["schema_version_at_open"] = schema_found_;
    Reader r = reader();
    Transaction tx(*r, false);
    j["users"] = r->query_int(kCountUsers);
    j["items"] = r->query_int(kCountItems);
    j["feedback"] = r->query_int(kCountFeedback);
    j["models"] = r->query_int(kCountModels);
    tx.commit();
    std::error_code ec;
    const auto size = fs::file_size(path_, ec);
    j["file_bytes"] = ec ? -1 : static_cast<int64_t>(size);
    const auto wal = fs::file_size(path_ + "-wal", ec);
    j["wal_bytes"] = ec ? 0 : static_cast<int64_t>(wal);
    return j;
  }

 private:
  // A read connection borrowed from the pool for one call.
  class Reader {
   public:
    Reader(const SqliteStore& store, std::unique_ptr<Db> db) : store_(store), db_(std::move(db)) {}
    ~Reader() { store_.release(std::move(db_)); }
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    Db* operator->() { return db_.get(); }
    Db& operator*() { return *db_; }

   private:
    const SqliteStore& store_;
    std::unique_ptr<Db> db_;
  };

  Reader reader() const {
    {
      std::lock_guard lock(pool_mu_);
      if (!idle_.empty()) {
        std::unique_ptr<Db> db = std::move(idle_.back());
        idle_.pop_back();
        return Reader(*this, std::move(db));
      }
    }
    auto db = std::make_unique<Db>(path_, SQLITE_OPEN_READONLY, options_.busy_timeout_ms);
    db->exec(fmt::format("PRAGMA cache_size = {}", -1024 * static_cast<int64_t>(options_.cache_mib)).c_str(),
             "configuring a read connection");
    return Reader(*this, std::move(db));
  }

  void release(std::unique_ptr<Db> db) const noexcept {
    if (!db) return;
    // A read that threw may have left its snapshot open.
    if (db->in_transaction()) sqlite3_exec(db->raw(), "ROLLBACK", nullptr, nullptr, nullptr);
    std::lock_guard lock(pool_mu_);
    if (static_cast<int>(idle_.size()) < options_.max_idle_readers) idle_.push_back(std::move(db));
  }

  std::optional<UserRecord> get_user_on(Db& db, std::string_view id) const {
    Use s(db.cached(kGetUser));
    s->bind_text(1, id);
    if (!s->step()) return std::nullopt;
    UserRecord u;
    read_user(path_, *s, u);
    return u;
  }

  std::optional<ItemRecord> get_item_on(Db& db, std::string_view id) const {
    Use s(db.cached(kGetItem));
    s->bind_text(1, id);
    if (!s->step()) return std::nullopt;
    ItemRecord it;
    read_item(path_, *s, it);
    return it;
  }

  std::optional<ModelArtifact> read_model(Stmt& s) const {
    if (!s.step()) return std::nullopt;
    ModelArtifact m;
    m.info = read_model_info(path_, s);
    m.bytes.assign(s.col_blob(5));
    FEWREC_CHECK(static_cast<int64_t>(m.bytes.size()) == m.info.size, kCorrupt,
                 "sqlite store `{}`: model `{}` version {} has {} bytes, its record says {}", path_,
                 m.info.name, m.info.version, m.bytes.size(), m.info.size);
    return m;
  }

  int64_t delete_rows(const char* sql, std::span<const std::string> ids) {
    if (ids.empty()) return 0;
    std::lock_guard lock(write_mu_);
    Transaction tx(*writer_, true);
    int64_t n = 0;
    Stmt& stmt = writer_->cached(sql);
    for (const auto& id : ids) {
      Use s(stmt);
      s->bind_text(1, id);
      s->run();
      n += writer_->changes();
    }
    tx.commit();
    return n;
  }

  int64_t count(const char* sql) const {
    Reader r = reader();
    Use s(r->cached(sql));
    FEWREC_ASSERT(s->step());
    return s->col_int(0);
  }

  // Seq of user / item `id` on the write connection, created when missing and
  // unknown ids are allowed. `seen` caches the ids of this transaction.
  int64_t seq_of(std::unordered_map<std::string_view, int64_t>& seen, const char* find_sql,
                 const char* add_sql, const std::string& id, const char* kind, size_t position) {
    if (auto it = seen.find(id); it != seen.end()) return it->second;
    int64_t seq = 0;
    bool found = false;
    {
      Use s(writer_->cached(find_sql));
      s->bind_text(1, id);
      if (s->step()) {
        seq = s->col_int(0);
        found = true;
      }
    }
    if (!found) {
      FEWREC_CHECK(options_.unknown_ids == UnknownIds::kCreate, kNotFound,
                   "feedback {}: unknown {} `{}` (this store rejects feedback for {}s it does not "
                   "have: insert the {} first, or open the store with unknown_ids = create)",
                   position, kind, id, kind, kind);
      Use s(writer_->cached(add_sql));
      s->bind_text(1, id);
      s->run();
      seq = writer_->last_insert_rowid();
    }
    seen.emplace(id, seq);
    return seq;
  }

  std::string path_;
  SqliteOptions options_;
  int schema_found_ = 0;
  std::mutex write_mu_;
  std::unique_ptr<Db> writer_;
  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<Db>> idle_;
};

void check_options(const std::string& path, const SqliteOptions& o) {
  FEWREC_CHECK(o.busy_timeout_ms >= 0, kInvalidArgument,
               "sqlite store `{}`: busy_timeout_ms must be >= 0, got {}", path, o.busy_timeout_ms);
  FEWREC_CHECK(o.max_idle_readers >= 1, kInvalidArgument,
               "sqlite store `{}`: max_idle_readers must be >= 1, got {}", path, o.max_idle_readers);
  FEWREC_CHECK(o.cache_mib >= 1, kInvalidArgument, "sqlite store `{}`: cache_mib must be >= 1, got {}",
               path, o.cache_mib);
}

// A non-empty file must start with the SQLite header; checked before SQLite
// sees the file so the error says what the file is not.
void check_file(const std::string& path, const SqliteOptions& o) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st)) {
    FEWREC_CHECK(!fs::is_directory(st), kInvalidArgument,
                 "sqlite store `{}` is a directory; expected a database file", path);
    const auto size = fs::file_size(path, ec);
    FEWREC_CHECK(!ec, kIo, "sqlite store `{}`: cannot read the file size: {}", path, ec.message());
    if (size == 0) return;  // created but never written: a new store
    std::ifstream in(path, std::ios::binary);
    FEWREC_CHECK(in, kIo, "sqlite store `{}`: cannot open the file for reading", path);
    char start[48] = {};
    in.read(start, sizeof(start));
    const std::string_view got(start, static_cast<size_t>(in.gcount()));
    constexpr std::string_view kHeader("SQLite format 3\0", 16);
    FEWREC_CHECK(got.substr(0, kHeader.size()) == kHeader, kCorrupt,
                 "sqlite store `{}` is not a fewrec store: not an SQLite database (its {} bytes "
                 "start with `{}`, expected the header `SQLite format 3`)",
                 path, size, core::excerpt(got, 40));
    return;
  }
  FEWREC_CHECK(o.create_if_missing, kNotFound,
               "sqlite store `{}` does not exist (create_if_missing is off)", path);
  const fs::path parent = fs::path(path).parent_path();
  FEWREC_CHECK(parent.empty() || fs::is_directory(parent, ec), kNotFound,
               "sqlite store `{}`: the directory `{}` does not exist", path, parent.string());
}

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path, const SqliteOptions& options) {
  FEWREC_CHECK(!path.empty(), kInvalidArgument, "sqlite store: the database path is empty");
  FEWREC_CHECK(path != ":memory:" && !core::starts_with(path, "file:"), kInvalidArgument,
               "sqlite store `{}`: expected a file path (in-memory and URI databases cannot use WAL "
               "across connections)",
               path);
  check_options(path, options);
  check_file(path, options);
  return std::make_unique<SqliteStore>(path, options);
}

}  // namespace fewrec::store

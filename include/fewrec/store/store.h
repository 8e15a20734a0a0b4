// Store: durable users, items, feedback and model artifacts under the
// recommendation service. `Store` is the interface (a server database can
// implement it later); open_sqlite_store() gives the embedded SQLite one.
//
// Every method is thread-safe. A write method returns after its transaction
// committed: with the SQLite store's default synchronous=FULL the write then
// survives a process crash and a power loss. Batches are one transaction
// (all or nothing). Reads see every write that returned before they started.
//
// Feedback for a user or an item the store does not know: by default the row
// is created on the fly with empty attributes and updated_at = 0 (as Gorse
// does); with UnknownIds::kReject the whole batch fails with kNotFound.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/store/records.h"

namespace fewrec::core {
class Config;
}

namespace fewrec::store {

// Callbacks of Store::scan(); a null callback skips that record kind. The
// record passed is reused between calls: copy what you keep.
struct StoreScan {
  std::function<void(const UserRecord&)> user;          // insertion order
  std::function<void(const ItemRecord&)> item;          // insertion order
  std::function<void(const FeedbackRecord&)> feedback;  // time order, ties in insertion order
  int64_t feedback_since = std::numeric_limits<int64_t>::min();  // only events at or after this time
};

class Store {
 public:
  virtual ~Store() = default;

  // --- users. Upsert replaces every field of an existing user (keeping its
  // place in the insertion order and its feedback); a batch is one
  // transaction and a repeated id in it ends with its last record.
  virtual void upsert_users(std::span<const UserRecord> users) = 0;
  void upsert_user(const UserRecord& user) { upsert_users({&user, 1}); }
  virtual std::optional<UserRecord> get_user(std::string_view id) const = 0;
  // One entry per id, in the same order (nullopt: unknown).
  virtual std::vector<std::optional<UserRecord>> get_users(std::span<const std::string> ids) const = 0;
  // Deletes the users and all their feedback; returns how many existed.
  virtual int64_t delete_users(std::span<const std::string> ids) = 0;
  bool delete_user(const std::string& id) { return delete_users({&id, 1}) > 0; }
  // `limit` users after `cursor` (0 = from the start), in insertion order.
  virtual Page<UserRecord> list_users(int64_t cursor, int64_t limit) const = 0;
  virtual int64_t count_users() const = 0;

  // --- items, as users. Deleting an item deletes its feedback.
  virtual void upsert_items(std::span<const ItemRecord> items) = 0;
  void upsert_item(const ItemRecord& item) { upsert_items({&item, 1}); }
  virtual std::optional<ItemRecord> get_item(std::string_view id) const = 0;
  virtual std::vector<std::optional<ItemRecord>> get_items(std::span<const std::string> ids) const = 0;
  virtual int64_t delete_items(std::span<const std::string> ids) = 0;
  bool delete_item(const std::string& id) { return delete_items({&id, 1}) > 0; }
  virtual Page<ItemRecord> list_items(int64_t cursor, int64_t limit) const = 0;
  virtual int64_t count_items() const = 0;

  // --- feedback. Inserts the events in one transaction and returns how many
  // were new (an event whose identity is already stored is skipped).
  int64_t insert_feedback(std::span<const FeedbackRecord> events);
  // Several batches in one transaction (group commit): one count of new
  // events per batch. If it throws, nothing was written.
  virtual std::vector<int64_t> insert_feedback_groups(
      std::span<const std::span<const FeedbackRecord>> batches) = 0;
  // A user's events; empty for an unknown user.
  virtual std::vector<FeedbackRecord> feedback_of_user(std::string_view user,
                                                       const FeedbackQuery& query = {}) const = 0;
  virtual int64_t count_feedback() const = 0;
  // Streams every event in time order (one read snapshot).
  void for_each_feedback(const std::function<void(const FeedbackRecord&)>& fn,
                         int64_t since = std::numeric_limits<int64_t>::min()) const;

  // Users, then items, then feedback, all from one consistent snapshot: what
  // the service reads at start-up and what to_dataset() exports. Exceptions
  // thrown by a callback stop the scan and reach the caller.
  virtual void scan(const StoreScan& callbacks) const = 0;

  // --- model artifacts (bytes + metadata). save_model() stores the next
  // version of `name` and returns its info.
  virtual ModelInfo save_model(const std::string& name, std::string_view bytes,
                               const nlohmann::json& metadata = nlohmann::json::object()) = 0;
  virtual std::optional<ModelArtifact> latest_model(const std::string& name) const = 0;
  virtual std::optional<ModelArtifact> get_model(const std::string& name, int64_t version) const = 0;
  // Every version of `name` ("" = of every name), by name then newest first;
  // without the bytes.
  virtual std::vector<ModelInfo> list_models(const std::string& name = "") const = 0;
  // Deletes all but the newest `keep` versions of `name`; returns how many went.
  virtual int64_t prune_models(const std::string& name, int64_t keep) = 0;

  // Where the data lives ("sqlite:/srv/fewrec.db") and counts, for logs and
  // the admin API.
  virtual std::string describe() const = 0;
  virtual nlohmann::json stats() const = 0;
};

// --------------------------------------------------------------------- SQLite

// The schema version this build writes (PRAGMA user_version). Opening a store
// migrates older versions in one transaction; a newer one is an error.
//   1: users, items, feedback, models
//   2: user labels, item tags
inline constexpr int kSqliteSchemaVersion = 2;
// PRAGMA application_id of fewrec stores ("FEWR").
inline constexpr int32_t kSqliteApplicationId = 0x46455752;

enum class UnknownIds {
  kCreate,  // feedback creates a missing user / item row with empty fields
  kReject,  // feedback naming a missing user / item fails with kNotFound
};

struct SqliteOptions {
  // Create the file (and the schema) when it does not exist.
  bool create_if_missing = true;
  // How long a write waits for another process holding the write lock before
  // it fails with kUnavailable. >= 0.
  int busy_timeout_ms = 5000;
  // FULL: an acknowledged write survives power loss (one fsync per commit).
  // NORMAL: survives a crash of the process, may lose the last commits on
  // power loss; much faster without group commit.
  bool synchronous_full = true;
  UnknownIds unknown_ids = UnknownIds::kCreate;
  // Read connections kept open for reuse; more are opened while more threads
  // read at once, and closed again when they are not needed. >= 1.
  int max_idle_readers = 8;
  // Page cache per connection (the writer and each reader), in MiB; grows
  // only as pages are read. >= 1.
  int cache_mib = 32;

  // Fills the options from the config keys store.create_if_missing,
  // store.busy_timeout_ms, store.synchronous (full | normal),
  // store.unknown_ids (create | reject), store.max_idle_readers and
  // store.cache_mib; a bad value is kInvalidArgument naming the key.
  static SqliteOptions from_config(core::Config& config);
};

// Concurrency model: one write connection guarded by a mutex (SQLite allows
// one writer at a time anyway; each write method holds it for one
// BEGIN IMMEDIATE ... COMMIT), and a pool of read-only connections, one per
// concurrent reader, which WAL lets run in parallel with the writer. Use a
// FeedbackWriter to merge concurrent feedback writes into one commit.
//
// Opening checks that `path` is a fewrec store (SQLite header and application
// id), turns on WAL, and applies the pending schema migrations. Errors:
// kNotFound (missing file and !create_if_missing, missing directory),
// kCorrupt (not SQLite, or SQLite of another application), kUnavailable (a
// schema newer than this build), kIo.
std::unique_ptr<Store> open_sqlite_store(const std::string& path, const SqliteOptions& options = {});

}  // namespace fewrec::store

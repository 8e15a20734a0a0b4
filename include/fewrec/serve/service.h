// Service: the recommendation service, independent of any transport.
//
// It owns the durable store (users, items, feedback), an in-memory view of
// it (every user's recent feedback, the item table, online popularity) and
// the served model with its top-k index. The HTTP layer (http.h) maps
// requests onto these methods; tests call them directly.
//
// Online behaviour:
//   - insert_feedback() returns after the events are durable in the store
//     (group commit through a FeedbackWriter), then updates the user's
//     context at once: the next recommendation adapts the model to the new
//     history (fold-in, sequence encoding, meta-learned steps: whatever the
//     model's adapt() does). No retraining is needed.
//   - Each event counts with the weight of its type (serve.feedback_weights);
//     a type weighing <= 0 (e.g. dislike = -1) keeps the item out of the
//     user's history and out of their recommendations.
//   - upsert_items() makes new items recommendable at once for models with
//     add_items() (content-based ones); for others they are served by the
//     popularity fallback until the next reload().
//   - A user with no usable history gets the popularity list (online counts
//     of weighted feedback); so does everyone while no model is trained.
//   - reload() retrains the configured model on the store's current data (or
//     re-reads the model file) in the background of the caller and swaps it
//     in; requests keep being served by the old one meanwhile.
//
// Errors are fewrec::Error: kInvalidArgument (bad request), kNotFound
// (unknown user / item), kUnavailable (closed, reload already running).
// Every method is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/core/monitor.h"
#include "fewrec/retrieval/index.h"
#include "fewrec/store/feedback_writer.h"
#include "fewrec/store/records.h"
#include "fewrec/store/store.h"

namespace fewrec::core {
class Config;
}

namespace fewrec::serve {

enum class IndexKind {
  kAuto,   // exact for models with item vectors, none for the others
  kExact,  // ExactIndex over the item vectors (models with vectors only)
  kHnsw,   // HnswIndex over the item vectors (models with vectors only)
  kNone,   // always score_all() + partial sort
};

struct ServiceOptions {
  // SQLite file of the store (created when missing).
  std::string store_path = "fewrec.db";
  store::SqliteOptions store;
  // Model spec trained on the store's data at start and on reload
  // ("itemknn", "als:factors=64", ...). Ignored when model_file is set.
  std::string model = "itemknn";
  // A model artifact (`fewrec train -o`) to serve instead; reload re-reads it.
  std::string model_file;
  // Train (or load) at start; else serve popularity until the first reload.
  bool train_on_start = true;
  // Threads for training at start / reload (0 = all cores).
  int train_threads = 0;
  uint64_t seed = 42;
  // LibTorch intra-op threads per request (the HTTP pool runs requests in parallel).
  int compute_threads = 1;
  IndexKind index = IndexKind::kAuto;
  retrieval::HnswOptions hnsw;
  // Weight of each event type's feedback; others get default_feedback_weight.
  std::map<std::string, float> feedback_weights;
  float default_feedback_weight = 1.0f;
  // Most recent positive events of a user that form their context.
  int max_history = 200;
  int default_k = 10;
  int max_k = 1000;
  // Recommendation lists kept for repeated requests (0 = none). An entry is
  // used only while the user, the items and the model are unchanged, so a
  // cached answer equals a fresh one.
  int64_t cache_size = 100000;
  // Reasons: at most this many contributing items per recommendation, chosen
  // among the user's this-many most recent items.
  int reason_items = 3;
  int reason_history = 20;
  store::FeedbackWriterOptions writer;

  // Reads serve.* and store.* keys; errors name the key.
  static ServiceOptions from_config(core::Config& config);
  float weight_of(const std::string& type) const;
};

struct RecommendOptions {
  int k = 0;                         // 0 = the service's default_k
  bool exclude_seen = true;          // leave out items in the user's history
  std::vector<std::string> exclude;  // item ids never returned (unknown ids ignored)
  std::string category;              // only items with this category ("" = any)
  bool reasons = false;              // explain each recommendation
};

struct Recommendation {
  std::string item;
  float score = 0.0f;
  // With RecommendOptions::reasons: the history items that raised this
  // item's score most (largest first), or "popular" for the fallback.
  std::vector<std::string> because;
  std::string reason;  // short text
};

struct RecommendResult {
  std::vector<Recommendation> items;
  // "model" (the served model ranked them), "popularity" (fallback), or
  // "model+popularity" (the model's list was topped up).
  std::string source;
  std::string model;  // the served model's spec ("" when none)
};

// One event of an anonymous context.
struct ContextEvent {
  std::string item;
  std::string type;  // "" = weight 1
  float value = 1.0f;
};

struct FeedbackResult {
  int64_t received = 0;
  int64_t inserted = 0;  // new events (repeats of stored events are skipped)
};

struct ServiceStats {
  int64_t users = 0, items = 0, feedback = 0;
  std::string model;          // spec of the served model ("" = none)
  int64_t model_version = 0;  // how many models were swapped in
  int32_t model_items = 0;
  std::string index;          // "exact", "hnsw", "none"
  double index_recall = -1;   // recall@10 of HNSW against exact (-1 = not measured)
  double last_train_seconds = 0;
  bool reloading = false;
  int64_t cache_hits = 0, cache_misses = 0;
  std::string last_reload_error;
  nlohmann::json to_json() const;
};

class Service {
 public:
  // Opens the store, loads its users / items / feedback into memory and
  // trains (or loads) the model when train_on_start. Progress to `monitor`.
  static std::unique_ptr<Service> open(const ServiceOptions& options, core::Monitor& monitor);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // --- users / items (store + memory). Upserting a known id replaces it.
  void upsert_users(std::span<const store::UserRecord> users);
  store::UserRecord get_user(const std::string& id) const;  // kNotFound
  int64_t delete_users(std::span<const std::string> ids);   // how many existed
  void upsert_items(std::span<const store::ItemRecord> items);
  store::ItemRecord get_item(const std::string& id) const;  // kNotFound
  int64_t delete_items(std::span<const std::string> ids);

  // --- feedback: durable, then visible to the next recommendation.
  FeedbackResult insert_feedback(std::span<const store::FeedbackRecord> events);
  // Newest first; kNotFound for an unknown user.
  std::vector<store::FeedbackRecord> user_feedback(const std::string& user, int64_t limit) const;

  // --- recommendations. kNotFound for an unknown user / item.
  RecommendResult recommend(const std::string& user, const RecommendOptions& options) const;
  // For a visitor the service does not store: their events in the request
  // (unknown item ids are an error naming them) and optional attributes.
  RecommendResult recommend_context(std::span<const ContextEvent> events,
                                    const std::map<std::string, std::string>& attributes,
                                    const RecommendOptions& options) const;
  // Items liked together with `item` (the model adapted to a one-item history).
  RecommendResult similar_items(const std::string& item, const RecommendOptions& options) const;

  // Retrains / reloads the model and swaps it in; returns the new stats.
  // kUnavailable while another reload runs.
  ServiceStats reload(core::Monitor& monitor);

  ServiceStats stats() const;
  const ServiceOptions& options() const { return options_; }
  store::Store& store() { return *store_; }

  // Commits queued feedback and closes the writer (later writes: kUnavailable).
  void close();

 private:
  struct State;
  struct Snapshot;
  struct Query;
  explicit Service(ServiceOptions options);
  RecommendResult run(Query& query, const RecommendOptions& options, const std::shared_ptr<Snapshot>& snap) const;
  ServiceOptions options_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::FeedbackWriter> writer_;
  std::unique_ptr<State> state_;
};

}  // namespace fewrec::serve

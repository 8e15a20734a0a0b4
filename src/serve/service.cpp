// Service: store + in-memory view + served model; see service.h.
#include "fewrec/serve/service.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "fewrec/core/artifact.h"
#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/context.h"
#include "fewrec/models/model.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "fewrec/store/dataset_export.h"

namespace fewrec::serve {

namespace {

using Clock = std::chrono::steady_clock;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A reader-writer lock that lets a waiting writer go first, so a stream of
// overlapping recommendation requests cannot starve feedback writes.
class RwLock {
 public:
  RwLock() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~RwLock() { pthread_rwlock_destroy(&lock_); }
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;
  void lock() { pthread_rwlock_wrlock(&lock_); }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { pthread_rwlock_rdlock(&lock_); }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  pthread_rwlock_t lock_;
};

IndexKind parse_index(const std::string& s) {
  if (s == "auto") return IndexKind::kAuto;
  if (s == "exact") return IndexKind::kExact;
  if (s == "hnsw") return IndexKind::kHnsw;
  if (s == "none") return IndexKind::kNone;
  FEWREC_THROW(kInvalidArgument, "config key `serve.index`: expected auto, exact, hnsw or none, got `{}`", s);
}

// Identity of a stored event in memory: (item, type, timestamp).
struct EventKey {
  int32_t item;
  uint16_t type;
  int64_t timestamp;
  bool operator==(const EventKey&) const = default;
};
struct EventKeyHash {
  size_t operator()(const EventKey& k) const {
    uint64_t h = static_cast<uint64_t>(k.timestamp) * 0x9E3779B97F4A7C15ull;
    h ^= (static_cast<uint64_t>(static_cast<uint32_t>(k.item)) << 16 | k.type) + 0x632BE59BD9B4E019ull + (h << 6) +
         (h >> 2);
    return static_cast<size_t>(h);
  }
};

// Recommendation lists by (user, request options), each stamped with what it
// was computed from: the user's version, the item/catalogue version, the
// served model's version and, for lists with popular items, the popularity
// version. A lookup whose stamps differ is a miss, so a hit returns exactly
// what a fresh computation would. Sharded to keep lock hold times short.
class RecommendationCache {
 public:
  struct Stamp {
    uint64_t user = 0, items = 0, model = 0, popularity = 0;
    bool operator==(const Stamp&) const = default;
  };
  explicit RecommendationCache(int64_t capacity) : per_shard_(static_cast<size_t>(capacity / kShards + 1)) {}

  std::optional<RecommendResult> find(const std::string& key, const Stamp& now) {
    Shard& sh = shard(key);
    std::lock_guard lock(sh.mu);
    auto it = sh.map.find(key);
    if (it == sh.map.end() || !(it->second.stamp.user == now.user && it->second.stamp.items == now.items &&
                                it->second.stamp.model == now.model &&
                                (!it->second.uses_popularity || it->second.stamp.popularity == now.popularity))) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    hits_.fetch_add(1, std::memory_order_relaxed);
    return it->second.result;
  }

  void put(const std::string& key, const Stamp& stamp, const RecommendResult& result) {
    Shard& sh = shard(key);
    std::lock_guard lock(sh.mu);
    auto it = sh.map.find(key);
    if (it == sh.map.end()) {
      if (sh.map.size() >= per_shard_) sh.map.erase(sh.map.begin());  // evict an arbitrary entry
      it = sh.map.emplace(key, Entry{}).first;
    }
    it->second.stamp = stamp;
    it->second.uses_popularity = result.source != "model";
    it->second.result = result;
  }

  int64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  int64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kShards = 16;
  struct Entry {
    Stamp stamp;
    bool uses_popularity = false;
    RecommendResult result;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry> map;
  };
  Shard& shard(const std::string& key) { return shards_[std::hash<std::string>{}(key) % kShards]; }
  size_t per_shard_;
  std::array<Shard, kShards> shards_;
  std::atomic<int64_t> hits_{0}, misses_{0};
};

// The cache key of a user's request: every option that changes the list.
std::string cache_key(const std::string& user, const RecommendOptions& ro) {
  std::string key = user;
  key += '\x1f';
  key += std::to_string(ro.k);
  key += ro.exclude_seen ? 's' : '-';
  key += ro.reasons ? 'r' : '-';
  key += ro.category;
  for (const auto& e : ro.exclude) {
    key += '\x1f';
    key += e;
  }
  return key;
}

}  // namespace

// ----------------------------------------------------------------- options

float ServiceOptions::weight_of(const std::string& type) const {
  auto it = feedback_weights.find(type);
  return it == feedback_weights.end() ? default_feedback_weight : it->second;
}

ServiceOptions ServiceOptions::from_config(core::Config& c) {
  ServiceOptions o;
  o.store_path = c.get_string("store.path", o.store_path, "SQLite file of the service's store (created when missing)");
  o.store = store::SqliteOptions::from_config(c);
  o.model = c.get_string("serve.model", o.model,
                         "model spec the service trains on the store's data at start and on reload");
  o.model_file = c.get_string("serve.model_file", "",
                              "model artifact (fewrec train -o) to serve instead of training; reload re-reads it");
  o.train_on_start = c.get_bool("serve.train_on_start", o.train_on_start,
                                "train / load the model at start (else popularity until the first reload)");
  o.train_threads = static_cast<int>(c.get_int("serve.train_threads", 0, "threads for training (0 = all cores)"));
  o.seed = static_cast<uint64_t>(c.get_int("serve.seed", 42, "seed of training and of the HNSW graph"));
  o.compute_threads = static_cast<int>(
      c.get_int("serve.compute_threads", 1, "LibTorch intra-op threads per request (requests run in parallel)"));
  o.index = parse_index(c.get_string("serve.index", "auto",
                                     "top-k retrieval: auto (exact for models with item vectors), exact, hnsw, none"));
  o.hnsw.m = static_cast<int>(c.get_int("serve.hnsw_m", o.hnsw.m, "HNSW graph degree"));
  o.hnsw.ef_construction =
      static_cast<int>(c.get_int("serve.hnsw_ef_construction", o.hnsw.ef_construction, "HNSW build beam width"));
  o.hnsw.ef = static_cast<int>(c.get_int("serve.hnsw_ef", o.hnsw.ef, "HNSW search beam width (recall vs speed)"));
  for (const auto& [type, value] : c.section("serve.feedback_weights")) {
    auto w = core::parse_float(value);
    FEWREC_CHECK(w.has_value() && std::isfinite(*w), kInvalidArgument,
                 "config key `serve.feedback_weights.{}`: expected a number, got `{}`", type, value);
    o.feedback_weights[type] = *w;
  }
  o.default_feedback_weight = static_cast<float>(c.get_double(
      "serve.default_feedback_weight", 1.0,
      "weight of feedback types not listed in serve.feedback_weights.<type> (<= 0: a negative signal)"));
  o.max_history = static_cast<int>(c.get_int("serve.max_history", o.max_history,
                                             "most recent positive events of a user used as their context"));
  o.default_k = static_cast<int>(c.get_int("serve.default_k", o.default_k, "recommendations when k is not given"));
  o.max_k = static_cast<int>(c.get_int("serve.max_k", o.max_k, "largest k a request may ask for"));
  o.reason_items = static_cast<int>(c.get_int("serve.reason_items", o.reason_items,
                                              "history items named in a recommendation's reason"));
  o.reason_history = static_cast<int>(c.get_int("serve.reason_history", o.reason_history,
                                                "most recent history items tried when explaining"));
  o.cache_size = c.get_int("serve.cache_size", o.cache_size,
                            "recommendation lists kept per (user, request); a changed user, item or model "
                            "invalidates them (0 = no cache)");
  o.writer.linger = std::chrono::microseconds(c.get_int(
      "serve.feedback_linger_us", 0, "wait this long for more feedback before a group commit (microseconds)"));
  auto positive = [](int64_t v, const char* key) {
    FEWREC_CHECK(v >= 1, kInvalidArgument, "config key `{}` must be >= 1, got {}", key, v);
  };
  positive(o.max_history, "serve.max_history");
  positive(o.default_k, "serve.default_k");
  positive(o.max_k, "serve.max_k");
  positive(o.hnsw.m, "serve.hnsw_m");
  positive(o.hnsw.ef, "serve.hnsw_ef");
  positive(o.hnsw.ef_construction, "serve.hnsw_ef_construction");
  positive(o.compute_threads, "serve.compute_threads");
  FEWREC_CHECK(o.reason_items >= 0 && o.reason_history >= 0, kInvalidArgument,
               "config keys `serve.reason_items` and `serve.reason_history` must be >= 0");
  FEWREC_CHECK(o.cache_size >= 0, kInvalidArgument, "config key `serve.cache_size` must be >= 0, got {}",
               o.cache_size);
  FEWREC_CHECK(o.writer.linger.count() >= 0, kInvalidArgument, "config key `serve.feedback_linger_us` must be >= 0");
  FEWREC_CHECK(std::isfinite(o.default_feedback_weight), kInvalidArgument,
               "config key `serve.default_feedback_weight` must be a finite number");
  o.hnsw.seed = o.seed;
  return o;
}

nlohmann::json ServiceStats::to_json() const {
  nlohmann::json j{{"users", users},
                   {"items", items},
                   {"feedback", feedback},
                   {"model", model},
                   {"model_version", model_version},
                   {"model_items", model_items},
                   {"index", index},
                   {"last_train_seconds", last_train_seconds},
                   {"reloading", reloading},
                   {"cache_hits", cache_hits},
                   {"cache_misses", cache_misses}};
  if (index_recall >= 0) j["index_recall_at_10"] = index_recall;
  if (!last_reload_error.empty()) j["last_reload_error"] = last_reload_error;
  return j;
}

// ------------------------------------------------------------------- state

struct Service::Snapshot {
  std::unique_ptr<models::Model> model;
  std::string spec;
  int64_t version = 0;
  uint64_t seq = 0;  // events with a sequence number <= seq were in the training data
  std::unordered_map<std::string, data::UserIndex> users;  // the model's users
  std::vector<std::string> model_item_ids;                 // model index -> id
  // Service item <-> model item (-1: none). Grows with add_items.
  std::vector<int32_t> model_of_item;
  std::vector<int32_t> item_of_model;
  bool can_add_items = true;
  std::unique_ptr<retrieval::ExactIndex> exact;
  std::unique_ptr<retrieval::HnswIndex> hnsw;
  int32_t indexed = 0;  // model items covered by the index; later ones are scored directly
  double recall = -1;
  double train_seconds = 0;
  mutable RwLock mu;  // shared: scoring; exclusive: add_items
};

struct Service::State {
  struct ItemSlot {
    std::string id;
    std::vector<std::string> categories;
    bool hidden = false;
    bool deleted = false;
  };
  struct Ev {
    int32_t item;
    uint16_t type;
    int64_t timestamp;
    float value;
  };
  struct UserSlot {
    std::map<std::string, std::string> attributes;
    std::vector<std::string> labels;
    std::vector<Ev> events;  // time order
    std::unordered_set<EventKey, EventKeyHash> keys;
    uint64_t last_seq = 0;
    uint64_t version = 0;  // changes (from `changes`) whenever the user's events or attributes do
  };

  mutable RwLock mu;
  std::vector<ItemSlot> items;
  std::unordered_map<std::string, int32_t> item_index;
  std::unordered_map<std::string, std::set<int32_t>> categories;
  std::vector<int32_t> blocked;  // hidden or deleted items, sorted
  std::unordered_map<std::string, UserSlot> users;
  std::vector<std::string> types;
  std::vector<float> type_weight;
  std::unordered_map<std::string, uint16_t> type_index;
  std::vector<double> popularity;  // weighted positive feedback per item
  uint64_t seq = 0;
  int64_t feedback = 0;
  // Versions for the recommendation cache: bumped after a change is complete.
  uint64_t changes = 0;                       // source of user versions (under mu)
  std::atomic<uint64_t> items_version{0};     // items, categories, hidden / deleted, model items
  std::atomic<uint64_t> popularity_version{0};
  std::unique_ptr<RecommendationCache> cache;  // null: no cache

  // Snapshot pointer (swapped by reload).
  mutable std::mutex snap_mu;
  std::shared_ptr<Snapshot> snapshot;
  std::atomic<bool> reloading{false};
  std::string last_reload_error;  // under snap_mu
  int64_t versions = 0;           // under snap_mu

  std::shared_ptr<Snapshot> current() const {
    std::lock_guard lock(snap_mu);
    return snapshot;
  }

  uint16_t type_of(const std::string& name, const ServiceOptions& o) {
    auto it = type_index.find(name);
    if (it != type_index.end()) return it->second;
    FEWREC_CHECK(types.size() < 65535, kInvalidArgument, "too many feedback types (65535 at most)");
    const auto t = static_cast<uint16_t>(types.size());
    types.push_back(name);
    type_weight.push_back(o.weight_of(name));
    type_index.emplace(name, t);
    return t;
  }

  int32_t item_of(const std::string& id) {
    auto it = item_index.find(id);
    if (it != item_index.end()) return it->second;
    const auto i = static_cast<int32_t>(items.size());
    items.push_back(ItemSlot{id, {}, false, false});
    item_index.emplace(id, i);
    popularity.push_back(0.0);
    return i;
  }

  void set_item(int32_t i, const store::ItemRecord& rec) {
    auto& slot = items[static_cast<size_t>(i)];
    for (const auto& c : slot.categories) {
      auto it = categories.find(c);
      if (it != categories.end()) it->second.erase(i);
    }
    slot.categories = rec.categories;
    for (const auto& c : slot.categories) categories[c].insert(i);
    const bool was_blocked = slot.hidden || slot.deleted;
    slot.hidden = rec.hidden;
    slot.deleted = false;
    if (was_blocked != slot.hidden) rebuild_blocked();
  }

  void rebuild_blocked() {
    blocked.clear();
    for (size_t i = 0; i < items.size(); ++i)
      if (items[i].hidden || items[i].deleted) blocked.push_back(static_cast<int32_t>(i));
  }

  // Adds an event unless its identity is already there; true when added.
  bool add_event(UserSlot& u, int32_t item, uint16_t type, int64_t ts, float value) {
    if (!u.keys.insert(EventKey{item, type, ts}).second) return false;
    Ev ev{item, type, ts, value};
    if (u.events.empty() || u.events.back().timestamp <= ts) {
      u.events.push_back(ev);
    } else {
      auto pos = std::upper_bound(u.events.begin(), u.events.end(), ts,
                                  [](int64_t t, const Ev& e) { return t < e.timestamp; });
      u.events.insert(pos, ev);
    }
    const float w = type_weight[type];
    if (w > 0) {
      popularity[static_cast<size_t>(item)] += w;
      popularity_version.fetch_add(1, std::memory_order_release);
    }
    u.last_seq = ++seq;
    u.version = ++changes;
    ++feedback;
    return true;
  }
};

// ------------------------------------------------------------- open / load

Service::Service(ServiceOptions options) : options_(std::move(options)), state_(std::make_unique<State>()) {}

Service::~Service() {
  try {
    close();
  } catch (...) {
  }
}

std::unique_ptr<Service> Service::open(const ServiceOptions& options, core::Monitor& monitor) {
  std::unique_ptr<Service> svc(new Service(options));
  models::set_compute_threads(options.compute_threads);
  svc->store_ = store::open_sqlite_store(options.store_path, options.store);
  svc->writer_ = std::make_unique<store::FeedbackWriter>(*svc->store_, options.writer);
  State& st = *svc->state_;
  if (options.cache_size > 0) st.cache = std::make_unique<RecommendationCache>(options.cache_size);
  const auto t0 = Clock::now();
  store::StoreScan scan;
  scan.user = [&](const store::UserRecord& u) {
    auto& slot = st.users[u.id];
    slot.attributes = u.attributes;
    slot.labels = u.labels;
  };
  scan.item = [&](const store::ItemRecord& it) { st.set_item(st.item_of(it.id), it); };
  scan.feedback = [&](const store::FeedbackRecord& e) {
    st.add_event(st.users[e.user], st.item_of(e.item), st.type_of(e.type, svc->options_), e.timestamp, e.value);
  };
  svc->store_->scan(scan);
  st.rebuild_blocked();
  monitor.info(fmt::format("store {}: {} users, {} items, {} feedback events loaded in {:.2f} s",
                           svc->store_->describe(), st.users.size(), st.items.size(), st.feedback,
                           std::chrono::duration<double>(Clock::now() - t0).count()));
  // A bad model spec is the configuration's error: fail now.
  if (options.model_file.empty()) models::model_registry().create(models::ModelSpec::parse(options.model));
  if (options.train_on_start) {
    try {
      svc->reload(monitor);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kInvalidArgument && !options.model_file.empty()) throw;
      if (e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kCorrupt) throw;
      monitor.info(fmt::format("no model yet ({}); serving popularity until a reload succeeds", e.message()));
    }
  }
  return svc;
}

void Service::close() {
  if (writer_) writer_->close();
}

// ------------------------------------------------------------------ reload

ServiceStats Service::reload(core::Monitor& monitor) {
  State& st = *state_;
  bool expected = false;
  FEWREC_CHECK(st.reloading.compare_exchange_strong(expected, true), kUnavailable,
               "a reload is already running; try again when it has finished");
  struct Reset {
    std::atomic<bool>& flag;
    ~Reset() { flag = false; }
  } reset{st.reloading};
  try {
    auto snap = std::make_shared<Snapshot>();
    {
      std::shared_lock lock(st.mu);
      snap->seq = st.seq;
    }
    const auto t0 = Clock::now();
    std::vector<std::string> user_ids;
    if (!options_.model_file.empty()) {
      auto loaded = models::load_model(options_.model_file);
      snap->model = std::move(loaded.model);
      snap->model_item_ids = std::move(loaded.item_ids);
      user_ids = std::move(loaded.user_ids);
    } else {
      store::DatasetExportOptions eo;
      eo.hidden = store::HiddenItems::kKeep;
      eo.default_weight = std::max(0.0f, options_.default_feedback_weight);
      for (const auto& [type, w] : options_.feedback_weights) {
        if (w > 0)
          eo.type_weights[type] = w;
        else
          eo.exclude_types.push_back(type);
      }
      if (options_.default_feedback_weight <= 0) {
        // Only the listed positive types train the model.
        for (const auto& [type, w] : options_.feedback_weights)
          if (w > 0) eo.types.push_back(type);
        FEWREC_CHECK(!eo.types.empty(), kInvalidArgument,
                     "no feedback type has a positive weight (serve.feedback_weights, "
                     "serve.default_feedback_weight): nothing to train on");
      }
      data::Dataset ds = store::to_dataset(*store_, eo, nullptr, &monitor);
      FEWREC_CHECK(ds.num_interactions() > 0, kUnavailable, "the store holds no usable feedback to train on");
      auto model = models::model_registry().create(models::ModelSpec::parse(options_.model));
      models::TrainOptions to;
      to.threads = options_.train_threads;
      to.seed = options_.seed;
      monitor.info(fmt::format("training {} on {} users, {} items, {} events", options_.model, ds.num_users(),
                               ds.num_items(), ds.num_interactions()));
      model->fit(ds, to, monitor);
      models::set_compute_threads(options_.compute_threads);
      snap->model = std::move(model);
      snap->model_item_ids = ds.items().ids();
      user_ids = ds.users().ids();
    }
    snap->train_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    snap->spec = snap->model->spec().to_string();
    const int32_t n = snap->model->num_items();
    FEWREC_CHECK(n == static_cast<int32_t>(snap->model_item_ids.size()), kCorrupt,
                 "the model scores {} items but its catalogue names {}", n, snap->model_item_ids.size());
    for (size_t u = 0; u < user_ids.size(); ++u) snap->users.emplace(user_ids[u], static_cast<data::UserIndex>(u));

    // Index over the item vectors.
    const int32_t dim = snap->model->vector_dim();
    IndexKind kind = options_.index;
    if (kind == IndexKind::kAuto) kind = dim > 0 ? IndexKind::kExact : IndexKind::kNone;
    if (kind != IndexKind::kNone) {
      FEWREC_CHECK(dim > 0, kInvalidArgument,
                   "serve.index = {}: model `{}` has no item vectors; use serve.index = auto or none",
                   kind == IndexKind::kExact ? "exact" : "hnsw", snap->model->name());
      auto vecs = snap->model->item_vectors();
      snap->exact = std::make_unique<retrieval::ExactIndex>(vecs, dim);
      if (kind == IndexKind::kHnsw) {
        const auto th = Clock::now();
        snap->hnsw = std::make_unique<retrieval::HnswIndex>(vecs, dim, options_.hnsw);
        // Recall@10 against exact on up to 200 item vectors as queries.
        core::Rng rng(options_.seed);
        const int32_t q = std::min<int32_t>(200, n);
        std::vector<float> queries;
        queries.reserve(static_cast<size_t>(q) * dim);
        for (int32_t i = 0; i < q; ++i) {
          const auto row = static_cast<size_t>(core::uniform_index(rng, static_cast<uint64_t>(n))) * dim;
          queries.insert(queries.end(), vecs.begin() + row, vecs.begin() + row + dim);
        }
        snap->recall = retrieval::recall_at_k(*snap->exact, *snap->hnsw, queries, std::min(10, n), 0);
        monitor.info(fmt::format("HNSW index over {} items built in {:.2f} s, recall@10 against exact {:.3f} (ef {})",
                                 n, std::chrono::duration<double>(Clock::now() - th).count(), snap->recall,
                                 options_.hnsw.ef));
      }
      snap->indexed = n;
    }

    // Swap in, aligning the model's items with the service's.
    std::unique_lock lock(st.mu);
    for (const auto& id : snap->model_item_ids) st.item_of(id);  // model items the store does not hold yet
    st.rebuild_blocked();
    snap->model_of_item.assign(st.items.size(), -1);
    snap->item_of_model.assign(static_cast<size_t>(n), -1);
    for (int32_t m = 0; m < n; ++m) {
      const int32_t s = st.item_index.at(snap->model_item_ids[static_cast<size_t>(m)]);
      snap->model_of_item[static_cast<size_t>(s)] = m;
      snap->item_of_model[static_cast<size_t>(m)] = s;
    }
    std::lock_guard g(st.snap_mu);
    snap->version = ++st.versions;
    st.snapshot = std::move(snap);
    st.items_version.fetch_add(1, std::memory_order_release);
    st.last_reload_error.clear();
  } catch (const Error& e) {
    std::lock_guard g(st.snap_mu);
    st.last_reload_error = e.message();
    throw;
  }
  monitor.info(fmt::format("serving {} (version {})", st.current()->spec, st.current()->version));
  return stats();
}

ServiceStats Service::stats() const {
  const State& st = *state_;
  ServiceStats s;
  {
    std::shared_lock lock(st.mu);
    s.users = static_cast<int64_t>(st.users.size());
    s.items = static_cast<int64_t>(st.items.size());
    s.feedback = st.feedback;
  }
  auto snap = st.current();
  if (snap) {
    std::shared_lock lock(snap->mu);
    s.model = snap->spec;
    s.model_version = snap->version;
    s.model_items = snap->model->num_items();
    s.index = snap->hnsw ? "hnsw" : snap->exact ? "exact" : "none";
    s.index_recall = snap->recall;
    s.last_train_seconds = snap->train_seconds;
  } else {
    s.index = "none";
  }
  s.reloading = st.reloading;
  if (st.cache) {
    s.cache_hits = st.cache->hits();
    s.cache_misses = st.cache->misses();
  }
  std::lock_guard g(st.snap_mu);
  s.last_reload_error = st.last_reload_error;
  return s;
}

// ------------------------------------------------------------ users, items

void Service::upsert_users(std::span<const store::UserRecord> users) {
  store_->upsert_users(users);
  State& st = *state_;
  std::unique_lock lock(st.mu);
  for (const auto& u : users) {
    auto& slot = st.users[u.id];
    slot.attributes = u.attributes;
    slot.labels = u.labels;
    slot.version = ++st.changes;
  }
}

store::UserRecord Service::get_user(const std::string& id) const {
  auto u = store_->get_user(id);
  FEWREC_CHECK(u.has_value(), kNotFound, "unknown user `{}`", id);
  return *u;
}

int64_t Service::delete_users(std::span<const std::string> ids) {
  const int64_t n = store_->delete_users(ids);
  State& st = *state_;
  std::unique_lock lock(st.mu);
  for (const auto& id : ids) {
    auto it = st.users.find(id);
    if (it == st.users.end()) continue;
    for (const auto& e : it->second.events) {
      const float w = st.type_weight[e.type];
      if (w > 0) st.popularity[static_cast<size_t>(e.item)] -= w;
    }
    st.feedback -= static_cast<int64_t>(it->second.events.size());
    st.users.erase(it);
  }
  st.popularity_version.fetch_add(1, std::memory_order_release);
  return n;
}

void Service::upsert_items(std::span<const store::ItemRecord> items) {
  store_->upsert_items(items);
  State& st = *state_;
  std::vector<std::pair<int32_t, const store::ItemRecord*>> fresh;  // items the model may need to add
  {
    std::unique_lock lock(st.mu);
    for (const auto& it : items) {
      const bool existed = st.item_index.contains(it.id);
      const int32_t i = st.item_of(it.id);
      const bool was_deleted = st.items[static_cast<size_t>(i)].deleted;
      st.set_item(i, it);
      if (!existed || was_deleted) fresh.emplace_back(i, &it);
    }
    st.items_version.fetch_add(1, std::memory_order_release);
  }
  struct BumpAfter {  // the model's new items count only once they are in
    std::atomic<uint64_t>& v;
    ~BumpAfter() { v.fetch_add(1, std::memory_order_release); }
  } bump{st.items_version};
  auto snap = st.current();
  if (!snap || fresh.empty()) return;
  std::unique_lock lock(snap->mu);
  std::vector<std::pair<int32_t, const store::ItemRecord*>> add;
  for (const auto& f : fresh) {
    const auto s = static_cast<size_t>(f.first);
    if (s >= snap->model_of_item.size()) snap->model_of_item.resize(s + 1, -1);
    if (snap->model_of_item[s] < 0) add.push_back(f);
  }
  if (add.empty() || !snap->can_add_items) return;
  // A catalogue of the model's items (rows left empty: add_items reads the
  // new rows only) followed by the new ones.
  auto cat = std::make_shared<data::Catalogue>();
  const int32_t first = snap->model->num_items();
  cat->items.reserve(static_cast<size_t>(first) + add.size());
  for (const auto& id : snap->model_item_ids) cat->items.add(id);
  data::FeatureTableBuilder fb;
  store::DatasetExportOptions eo;
  eo.hidden = store::HiddenItems::kKeep;
  for (const auto& [s, rec] : add) store::export_item_row(fb, cat->items.add(rec->id), *rec, eo);
  cat->item_features = std::move(fb).build(cat->items.size());
  try {
    snap->model->add_items(*cat, first);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUnavailable) throw;
    snap->can_add_items = false;  // served by the popularity fallback until a reload
    return;
  }
  for (const auto& [s, rec] : add) {
    const auto m = static_cast<int32_t>(snap->model_item_ids.size());
    snap->model_item_ids.push_back(rec->id);
    snap->item_of_model.push_back(s);
    snap->model_of_item[static_cast<size_t>(s)] = m;
  }
}

store::ItemRecord Service::get_item(const std::string& id) const {
  auto it = store_->get_item(id);
  FEWREC_CHECK(it.has_value(), kNotFound, "unknown item `{}`", id);
  return *it;
}

int64_t Service::delete_items(std::span<const std::string> ids) {
  const int64_t n = store_->delete_items(ids);
  State& st = *state_;
  std::unique_lock lock(st.mu);
  std::unordered_set<int32_t> gone;
  for (const auto& id : ids) {
    auto it = st.item_index.find(id);
    if (it == st.item_index.end()) continue;
    auto& slot = st.items[static_cast<size_t>(it->second)];
    if (slot.deleted) continue;
    store::ItemRecord empty;
    st.set_item(it->second, empty);
    slot.deleted = true;
    st.popularity[static_cast<size_t>(it->second)] = 0;
    gone.insert(it->second);
  }
  st.items_version.fetch_add(1, std::memory_order_release);
  st.popularity_version.fetch_add(1, std::memory_order_release);
  if (gone.empty()) return n;
  st.rebuild_blocked();
  // The store deleted the items' feedback: so does the view.
  for (auto& [uid, u] : st.users) {
    auto keep = std::remove_if(u.events.begin(), u.events.end(), [&](const State::Ev& e) {
      if (!gone.contains(e.item)) return false;
      u.keys.erase(EventKey{e.item, e.type, e.timestamp});
      --st.feedback;
      return true;
    });
    if (keep != u.events.end()) u.version = ++st.changes;
    u.events.erase(keep, u.events.end());
  }
  return n;
}

// ----------------------------------------------------------------- feedback

FeedbackResult Service::insert_feedback(std::span<const store::FeedbackRecord> events) {
  FeedbackResult r;
  r.received = static_cast<int64_t>(events.size());
  if (events.empty()) return r;
  FEWREC_CHECK(writer_ != nullptr, kUnavailable, "the service is closed");
  r.inserted = writer_->write(events);  // durable from here on
  State& st = *state_;
  std::unique_lock lock(st.mu);
  for (const auto& e : events) {
    const int32_t item = st.item_of(e.item);
    st.add_event(st.users[e.user], item, st.type_of(e.type, options_), e.timestamp, e.value);
  }
  return r;
}

std::vector<store::FeedbackRecord> Service::user_feedback(const std::string& user, int64_t limit) const {
  {
    std::shared_lock lock(state_->mu);
    FEWREC_CHECK(state_->users.contains(user), kNotFound, "unknown user `{}`", user);
  }
  store::FeedbackQuery q;
  q.limit = limit;
  return store_->feedback_of_user(user, q);
}

// ---------------------------------------------------------- recommendations

// What a recommendation needs from the in-memory view, copied under its lock.
struct Service::Query {
  std::vector<int32_t> history;  // service items with positive weight, time order
  std::vector<float> weights, values;
  std::vector<int64_t> timestamps;  // 0 = unknown (anonymous contexts)
  std::vector<int32_t> exclude;  // service items
  std::optional<data::UserIndex> model_user;
  data::UserFeatures features;
  int32_t similar_to = -1;  // similar_items(): the item
};

RecommendResult Service::recommend(const std::string& user, const RecommendOptions& ro) const {
  const State& st = *state_;
  Query q;
  RecommendationCache::Stamp stamp;
  std::string key;
  // Versions are read before the data, so a change racing with this request
  // leaves an entry that is already stale, never a stale entry marked fresh.
  stamp.items = st.items_version.load(std::memory_order_acquire);
  stamp.popularity = st.popularity_version.load(std::memory_order_acquire);
  auto snap = st.current();
  stamp.model = snap ? static_cast<uint64_t>(snap->version) : 0;
  {
    std::shared_lock lock(st.mu);
    auto it = st.users.find(user);
    FEWREC_CHECK(it != st.users.end(), kNotFound, "unknown user `{}`", user);
    const auto& u = it->second;
    if (st.cache) {
      stamp.user = u.version;
      key = cache_key(user, ro);
      if (auto hit = st.cache->find(key, stamp)) return std::move(*hit);
    }
    for (const auto& [k, v] : u.attributes) q.features.categorical[k] = v;
    if (!u.labels.empty()) q.features.tags["labels"] = u.labels;
    for (const auto& e : u.events) {
      const float w = st.type_weight[e.type];
      if (w > 0) {
        q.history.push_back(e.item);
        q.weights.push_back(w);
        q.values.push_back(e.value);
        q.timestamps.push_back(e.timestamp);
      }
      if (ro.exclude_seen || w <= 0) q.exclude.push_back(e.item);
    }
    if (snap && u.last_seq <= snap->seq) {
      auto mu = snap->users.find(user);
      if (mu != snap->users.end()) q.model_user = mu->second;
    }
  }
  auto res = run(q, ro, snap);
  if (st.cache) st.cache->put(key, stamp, res);
  return res;
}

RecommendResult Service::recommend_context(std::span<const ContextEvent> events,
                                           const std::map<std::string, std::string>& attributes,
                                           const RecommendOptions& ro) const {
  const State& st = *state_;
  Query q;
  for (const auto& [k, v] : attributes) q.features.categorical[k] = v;
  auto snap = st.current();
  {
    std::shared_lock lock(st.mu);
    std::vector<std::string> unknown;
    for (const auto& e : events) {
      auto it = st.item_index.find(e.item);
      if (it == st.item_index.end() || st.items[static_cast<size_t>(it->second)].deleted) {
        if (unknown.size() < 5) unknown.push_back(e.item);
        continue;
      }
      FEWREC_CHECK(std::isfinite(e.value), kInvalidArgument, "event of item `{}`: value is not finite", e.item);
      const float w = e.type.empty() ? 1.0f : options_.weight_of(e.type);
      if (w > 0) {
        q.history.push_back(it->second);
        q.weights.push_back(w);
        q.values.push_back(e.value);
      }
      if (ro.exclude_seen || w <= 0) q.exclude.push_back(it->second);
    }
    FEWREC_CHECK(unknown.empty(), kNotFound, "unknown item{} `{}` in the context", unknown.size() > 1 ? "s" : "",
                 fmt::join(unknown, "`, `"));
  }
  return run(q, ro, snap);
}

RecommendResult Service::similar_items(const std::string& item, const RecommendOptions& ro) const {
  const State& st = *state_;
  Query q;
  auto snap = st.current();
  {
    std::shared_lock lock(st.mu);
    auto it = st.item_index.find(item);
    FEWREC_CHECK(it != st.item_index.end() && !st.items[static_cast<size_t>(it->second)].deleted, kNotFound,
                 "unknown item `{}`", item);
    q.history.push_back(it->second);
    q.weights.push_back(1.0f);
    q.values.push_back(1.0f);
    q.exclude.push_back(it->second);
    q.similar_to = it->second;
  }
  return run(q, ro, snap);
}

RecommendResult Service::run(Query& q, const RecommendOptions& ro, const std::shared_ptr<Snapshot>& snap) const {
  const State& st = *state_;
  const int k = ro.k == 0 ? options_.default_k : ro.k;
  FEWREC_CHECK(k >= 1 && k <= options_.max_k, kInvalidArgument, "k must be between 1 and {}, got {}", options_.max_k,
               ro.k);
  std::optional<std::vector<int32_t>> allowed;  // category filter (service items, sorted)
  {
    std::shared_lock lock(st.mu);
    for (const auto& id : ro.exclude) {
      auto it = st.item_index.find(id);
      if (it != st.item_index.end()) q.exclude.push_back(it->second);
    }
    q.exclude.insert(q.exclude.end(), st.blocked.begin(), st.blocked.end());
    if (!ro.category.empty()) {
      auto it = st.categories.find(ro.category);
      allowed.emplace();
      if (it != st.categories.end()) allowed->assign(it->second.begin(), it->second.end());
    }
  }
  std::sort(q.exclude.begin(), q.exclude.end());
  q.exclude.erase(std::unique(q.exclude.begin(), q.exclude.end()), q.exclude.end());
  auto excluded = [&](int32_t s) { return std::binary_search(q.exclude.begin(), q.exclude.end(), s); };

  RecommendResult res;
  std::vector<std::pair<int32_t, float>> hits;            // service item, score
  std::vector<std::vector<int32_t>> because;               // per hit: service items
  if (snap) {
    std::shared_lock lock(snap->mu);
    const models::Model& model = *snap->model;
    res.model = snap->spec;
    const auto n_model = model.num_items();
    auto model_item = [&](int32_t s) {
      return static_cast<size_t>(s) < snap->model_of_item.size() ? snap->model_of_item[static_cast<size_t>(s)] : -1;
    };
    data::UserContext ctx;
    ctx.user = q.model_user;
    ctx.features = q.features;
    std::vector<int32_t> ctx_items;  // service items of ctx.history
    const size_t first = q.history.size() > static_cast<size_t>(options_.max_history)
                             ? q.history.size() - static_cast<size_t>(options_.max_history)
                             : 0;
    for (size_t i = first; i < q.history.size(); ++i) {
      const int32_t m = model_item(q.history[i]);
      if (m < 0) continue;
      data::Event ev;
      ev.item = m;
      // The event's time when known (time-aware models read it; 0 = unknown,
      // as for anonymous contexts). The history is in time order either way.
      ev.timestamp = i < q.timestamps.size() ? q.timestamps[i] : 0;
      ev.value = q.values[i];
      ev.weight = q.weights[i];
      ctx.history.push_back(ev);
      ctx_items.push_back(q.history[i]);
    }
    if (!ctx.history.empty() || ctx.user.has_value()) {
      std::vector<int32_t> mex;  // excluded model items, sorted
      for (int32_t s : q.exclude)
        if (int32_t m = model_item(s); m >= 0) mex.push_back(m);
      std::sort(mex.begin(), mex.end());
      auto state = model.adapt(ctx);
      std::vector<std::pair<int32_t, float>> mh;  // model item, score
      if (allowed) {
        std::vector<data::ItemIndex> cand;
        for (int32_t s : *allowed)
          if (int32_t m = model_item(s); m >= 0 && !excluded(s)) cand.push_back(m);
        std::vector<float> sc(cand.size());
        model.score(*state, cand, sc);
        for (size_t i = 0; i < cand.size(); ++i) mh.emplace_back(cand[i], sc[i]);
      } else if (snap->exact) {
        const auto uv = model.user_vector(*state);
        const int32_t dim = model.vector_dim();
        auto found = snap->hnsw ? snap->hnsw->search(uv, k, mex) : snap->exact->search(uv, k, mex);
        mh.assign(found.begin(), found.end());
        const auto vecs = model.item_vectors();
        for (int32_t m = snap->indexed; m < n_model; ++m) {  // items added after the index was built
          if (std::binary_search(mex.begin(), mex.end(), m)) continue;
          const float* v = vecs.data() + static_cast<size_t>(m) * dim;
          mh.emplace_back(m, std::inner_product(uv.begin(), uv.end(), v, 0.0f));
        }
      } else {
        std::vector<float> sc(static_cast<size_t>(n_model));
        model.score_all(*state, sc);
        for (int32_t m : models::top_k(sc, k, mex)) mh.emplace_back(m, sc[static_cast<size_t>(m)]);
      }
      const auto cmp = [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); };
      const size_t keep = std::min(mh.size(), static_cast<size_t>(k));
      std::partial_sort(mh.begin(), mh.begin() + static_cast<std::ptrdiff_t>(keep), mh.end(), cmp);
      mh.resize(keep);
      for (const auto& [m, score] : mh) {
        const int32_t s = snap->item_of_model[static_cast<size_t>(m)];
        if (s < 0 || !std::isfinite(score) || excluded(s)) continue;
        hits.emplace_back(s, score);
      }
      res.source = "model";
      because.assign(hits.size(), {});
      // Reasons: how much each recent history item raises each result (the
      // score with the item minus the score without it).
      if (ro.reasons && options_.reason_items > 0 && !hits.empty() && !ctx.history.empty()) {
        std::vector<data::ItemIndex> cand;
        for (const auto& h : hits) cand.push_back(model_item(h.first));
        data::UserContext base_ctx = ctx;
        base_ctx.user.reset();
        std::vector<float> base(cand.size()), without(cand.size());
        model.score(*model.adapt(base_ctx), cand, base);
        std::vector<int32_t> tried;
        std::vector<std::vector<std::pair<float, int32_t>>> contrib(cand.size());
        for (size_t i = ctx.history.size(); i-- > 0 && static_cast<int>(tried.size()) < options_.reason_history;) {
          const int32_t h = ctx.history[i].item;
          if (std::find(tried.begin(), tried.end(), h) != tried.end()) continue;
          tried.push_back(h);
          data::UserContext c = base_ctx;
          std::erase_if(c.history, [&](const data::Event& e) { return e.item == h; });
          model.score(*model.adapt(c), cand, without);
          for (size_t j = 0; j < cand.size(); ++j)
            if (base[j] - without[j] > 1e-6f) contrib[j].emplace_back(base[j] - without[j], ctx_items[i]);
        }
        for (size_t j = 0; j < cand.size(); ++j) {
          auto& c = contrib[j];
          std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
          for (size_t r = 0; r < c.size() && static_cast<int>(r) < options_.reason_items; ++r)
            because[j].push_back(c[r].second);
        }
      }
    }
  }

  // Top up (or replace) with the most popular items, newest first on ties.
  std::vector<bool> popular(hits.size(), false);
  if (static_cast<int>(hits.size()) < k) {
    std::shared_lock lock(st.mu);
    std::vector<int32_t> cand;
    auto taken = [&](int32_t s) {
      return std::any_of(hits.begin(), hits.end(), [&](const auto& h) { return h.first == s; });
    };
    if (allowed) {
      for (int32_t s : *allowed)
        if (!excluded(s) && !taken(s)) cand.push_back(s);
    } else {
      for (int32_t s = 0; s < static_cast<int32_t>(st.items.size()); ++s)
        if (!excluded(s) && !taken(s)) cand.push_back(s);
    }
    const size_t need = std::min(cand.size(), static_cast<size_t>(k) - hits.size());
    std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(need), cand.end(),
                      [&](int32_t a, int32_t b) {
                        const double pa = st.popularity[static_cast<size_t>(a)], pb = st.popularity[static_cast<size_t>(b)];
                        return pa > pb || (pa == pb && a > b);
                      });
    for (size_t i = 0; i < need; ++i) {
      hits.emplace_back(cand[i], static_cast<float>(st.popularity[static_cast<size_t>(cand[i])]));
      popular.push_back(true);
      because.emplace_back();
    }
    if (need > 0) res.source = res.source.empty() ? "popularity" : "model+popularity";
  }
  if (res.source.empty()) res.source = snap ? "model" : "popularity";

  std::shared_lock lock(st.mu);
  res.items.reserve(hits.size());
  for (size_t i = 0; i < hits.size(); ++i) {
    Recommendation r;
    r.item = st.items[static_cast<size_t>(hits[i].first)].id;
    r.score = hits[i].second;
    if (ro.reasons) {
      for (int32_t s : because[i]) r.because.push_back(st.items[static_cast<size_t>(s)].id);
      if (popular[i])
        r.reason = "popular";
      else if (q.similar_to >= 0)
        r.reason = fmt::format("often liked with {}", st.items[static_cast<size_t>(q.similar_to)].id);
      else if (!r.because.empty())
        r.reason = fmt::format("because of {}", fmt::join(r.because, ", "));
      else
        r.reason = "matches the profile";
    }
    res.items.push_back(std::move(r));
  }
  return res;
}

}  // namespace fewrec::serve

// meta_ranker: a ranker for users with few interactions, meta-trained on
// cold-start tasks simulated from the warm users.
//
// A new user's first events are mostly popular items, so the question at
// small N is when to trust the user's few signals over the crowd's. The model
// answers it by learning from tasks built from the training users exactly
// like the cold-user protocol builds its tests: support = a user's first N
// events by time, query = their later items, the whole catalogue ranked. A
// (context, candidate j) pair is described by ten signals:
//   0 log(1 + popularity of j)
//   1 log(1 + events on j in the `window` seconds before the context's last
//     event): what was popular when the user arrived
//   2 sum over support items s of cosine(s, j) on co-occurrence counts
//   3 the largest of those cosines
//   4 mean over s of P(j | s) = co(s, j) / count(s) (association confidence)
//   5 cosine between j's TF-IDF content vector and the mean of the support's
//     (title words, genres, tags: the `content` model's vectors)
//   6 signed log(1 + days between j's first event and the context's last event)
//   7 log(1 + N)
//   8 1 when the context's events carry timestamps
//   9 log(1 + users whose first event on j came at position >= N of their
//     history): what users go on to like after their first N events (early
//     events are often the items a sign-up flow shows first)
//  10 content-predicted popularity: the similarity-weighted mean of
//     log(1 + popularity) over j's 20 nearest items by content
//  11 the largest content cosine between j and one support item
// The score is a weighted sum of the standardised signals, with one weight
// vector per support-size bucket (N = 0, 1-2, 3-5, 6-10, 11+ by default), so
// the trust in the user's own events can grow with N. Each bucket's weights
// are found by coordinate ascent on the mean NDCG@10 of its simulated tasks
// (the metric itself, not a surrogate), starting from popularity alone.
// Items without any interaction (cold items) have none of the count signals
// and get their own weight vector, fitted the same way on simulated
// cold-item tasks: the newest `cold_fraction` of the items is treated as new
// (their counts hidden), and each user's hidden items are ranked among all
// hidden items from the user's other items, starting from content alone
// (and staying there unless cold_rounds > 0), plus a new-item prior: the
// users per day the item's content predicts, learned on the newest trained
// items, with its weight fitted on the same tasks (see fit_prior). In a list mixing warm and cold
// items, a cold item ranks below the typical warm item (see score_all_items).
// While a task is built, every count is taken without the task user's own
// events (leave-one-user-out), so its signals look like those of a real new
// user, whose events are in no count. Signals 1 and 6 read the context's
// timestamps (<= 0: unknown; later than the training data: clamped to its
// last event).

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <fmt/ranges.h>

#include "builtin.h"
#include "common.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/threads.h"
#include "hybrid_features.h"
#include "meta_ranker.h"

namespace fewrec::models {

namespace {

constexpr const char* kName = "meta_ranker";
constexpr int kF = kMetaRankerSignals;  // signals per (context, candidate)
constexpr int64_t kNoTime = INT64_MIN;

struct MetaRankerOptions {
  int tasks = 750;
  int rounds = 8;
  int cold_rounds = 0;
  int min_query = 5;
  std::vector<int> buckets = {1, 3, 6, 11};
  int neighbours = 1000;
  double cold_fraction = 0.2;
  bool cold_newest = true;
  double prior_fraction = 0.35;
  bool prior_rate = true;
  int64_t window = 30 * 86400;
  bool content = true;
  int signal = -1;
  hybrid::ColumnSelection item_features;

  static MetaRankerOptions read(DocumentedOptions& o) {
    MetaRankerOptions p;
    p.tasks = static_cast<int>(
        o.get_int("tasks", p.tasks, "simulated cold-start tasks per support-size bucket", 1, 1000000));
    p.rounds = static_cast<int>(o.get_int("rounds", p.rounds, "coordinate-ascent passes over the weights", 0, 1000));
    p.cold_rounds = static_cast<int>(o.get_int(
        "cold_rounds", p.cold_rounds,
        "coordinate-ascent passes for the cold-item weights over every signal (0 = content plus the new-item "
        "prior: on ML-100K weights over every signal did not transfer from the simulated tasks to new items)",
        0, 1000));
    p.min_query = static_cast<int>(o.get_int(
        "min_query", p.min_query, "a simulated task needs at least this many later items (its query)", 1, 1000000));
    const std::string b = o.get_string(
        "buckets", "1+3+6+11",
        "support sizes where a new weight vector starts, joined by + (default: N = 0, 1-2, 3-5, 6-10, 11+)");
    p.buckets.clear();
    for (const auto& part : core::split(b, '+')) {
      auto v = core::parse_int(part);
      FEWREC_CHECK(v.has_value() && *v >= 1 && *v <= 1000000 && (p.buckets.empty() || *v > p.buckets.back()),
                   kInvalidArgument,
                   "model `meta_ranker`: option `buckets` must be increasing support sizes >= 1 joined by +, got `{}`",
                   core::excerpt(b));
      p.buckets.push_back(static_cast<int>(*v));
    }
    p.neighbours = static_cast<int>(
        o.get_int("neighbours", p.neighbours, "co-occurring items kept per item (the most frequent)", 1, INT32_MAX));
    p.cold_fraction = o.get_double("cold_fraction", p.cold_fraction,
                                   "share of the items treated as new in the simulated cold-item tasks (0 = no cold "
                                   "weights: cold items are scored like warm ones)",
                                   0.0, 0.9);
    p.cold_newest = o.get_choice("cold_items", "newest", {"newest", "random"},
                                 "which items the simulated cold-item tasks hide: the newest by first event (new "
                                 "items are new: recent titles, current topics) or random ones") == "newest";
    p.prior_fraction = o.get_double(
        "prior_fraction", p.prior_fraction,
        "new-item prior: share of the newest trained items whose popularity it learns to predict from content "
        "(cold_items=random: every trained item; 0 = no prior; its weight against content is fitted on the "
        "simulated cold-item tasks)",
        0.0, 1.0);
    p.prior_rate = o.get_choice("prior_target", "rate", {"rate", "count"},
                                "what the new-item prior predicts: rate = log(1 + users per day since the item's "
                                "first event), count = log(1 + users)") == "rate";
    p.window = o.get_int("window", p.window,
                         "seconds before the context's last event whose events count as recent popularity", 1,
                         INT64_MAX);
    p.signal = static_cast<int>(o.get_int(
        "signal", p.signal, "diagnostic: rank by this one signal (0-11, see the model's description) instead of the learned weights; -1 = learned", -1,
        kF - 1));
    p.content = o.get_bool("content", p.content, "use the TF-IDF content signal (needs item features)");
    p.item_features = hybrid::ColumnSelection::parse(
        o.get_string("item_features", "all", "item feature columns of the content signal: all, none, or names joined by +"),
        "model `meta_ranker`: option `item_features`");
    return p;
  }
  int bucket_of(int n) const {
    return static_cast<int>(std::upper_bound(buckets.begin(), buckets.end(), n) - buckets.begin());
  }
};

class MetaState final : public UserState {
 public:
  std::vector<float> scores;  // per item
};

// What the signals of one context need.
struct Task {
  std::vector<ItemIndex> support;  // distinct, in first-seen order
  int n_events = 0;                // N: events of the context
  int64_t t = kNoTime;             // last event's time (clamped), kNoTime = unknown
  std::vector<float> profile;      // content: mean TF-IDF vector of the support (empty: no content)
  // Training only: per item the task user's event time (kNoTime = none), so
  // counts leave the user out.
  const std::vector<int64_t>* own = nullptr;
  const std::vector<int32_t>* own_pos = nullptr;  // per item: the user's first position on it
  // Simulated cold-item tasks: items whose interactions are hidden.
  const std::vector<uint8_t>* cold = nullptr;
  // Test hook: every signal by lookups, none from the per-item caches.
  bool lookups = false;
};

class MetaRankerModel final : public Model {
 public:
  MetaRankerModel(ModelSpec spec, MetaRankerOptions options) : Model(std::move(spec)), o_(std::move(options)) {
    if (spec_.options.count("item_features")) spec_.options["item_features"] = o_.item_features.to_string();
  }

  void fit(const data::Dataset& train, const TrainOptions& train_options, core::Monitor& monitor) override {
    const int32_t n = train.num_items();
    FEWREC_CHECK(train.num_interactions() > 0, kInvalidArgument, "model `{}`: the training data has no interactions",
                 name());
    build_counts(train);
    build_content(train.catalogue());
    monitor.info(fmt::format("meta_ranker: {} items, {} co-occurrence pairs, content signal {}", n,
                             nb_item_.size(), space_.empty() ? "off" : fmt::format("{} features", space_.size())));
    meta_train(train, train_options, monitor);
    refresh_derived(0);
  }

  // ------------------------------------------------------ new-item prior
  // What a brand-new item's content says about how many users it will find:
  // a ridge regression from the item's TF-IDF row to log(1 + users per day
  // since its first event) (prior_target=count: log(1 + users)), fitted on
  // the newest `prior_fraction` of the items with interactions (hidden ones
  // excluded). The newest items are the ones like the next new item: recent
  // titles, while old favourites are popular for reasons no new item shares
  // (on ML-100K, a count prior learned on every item ranks the newest items
  // at NDCG@10 0.02, one learned on the newest third at 0.09). The rate
  // compares items seen for a week with items seen for years (ML-latest-small
  // spans 22 years; there the count prior did not transfer).
  // Returns the weights (bias last) and, in `scale`, the mean and standard
  // deviation of its predictions over the items it was fitted on, so that
  // priors of different fits are standardised alike.
  std::vector<float> fit_prior(const std::vector<uint8_t>* hidden, uint64_t seed, float scale[2]) const {
    std::vector<float> w(static_cast<size_t>(space_.size()) + 1, 0.0f);
    scale[0] = 0.0f;
    scale[1] = 1.0f;
    if (space_.empty() || o_.prior_fraction <= 0) return w;
    std::vector<ItemIndex> fit;
    for (int32_t j = 0; j < num_items(); ++j)
      if (count_[static_cast<size_t>(j)] > 0 && (hidden == nullptr || !(*hidden)[static_cast<size_t>(j)]))
        fit.push_back(j);
    if (fit.empty()) return w;
    if (o_.cold_newest) {  // new items are like the newest ones; random new items like any item
      std::stable_sort(fit.begin(), fit.end(), [&](ItemIndex a, ItemIndex b) {
        return first_event(a) > first_event(b);
      });
      fit.resize(static_cast<size_t>(
          std::max<int64_t>(1, std::llround(o_.prior_fraction * static_cast<double>(fit.size())))));
    }
    const bool rate = o_.prior_rate;
    int64_t last = kNoTime;
    for (ItemIndex j : fit) last = std::max(last, t_val_[static_cast<size_t>(t_off_[static_cast<size_t>(j) + 1] - 1)]);
    std::vector<float> target(static_cast<size_t>(num_items()), 0.0f);
    for (ItemIndex j : fit) {
      double y = std::log1p(static_cast<double>(count_[static_cast<size_t>(j)]));
      if (rate)  // users per day since the item's first event (1 + days)
        y = std::log1p(static_cast<double>(count_[static_cast<size_t>(j)]) /
                       (static_cast<double>(last - first_event(j)) / 86400.0 + 1.0));
      target[static_cast<size_t>(j)] = static_cast<float>(y);
    }
    double bias = 0;
    for (ItemIndex j : fit) bias += target[static_cast<size_t>(j)];
    w.back() = static_cast<float>(bias / static_cast<double>(fit.size()));
    // SGD on the squared error with an L2 pull on the touched weights; the
    // rows are L2-normalised, so a fixed step is stable.
    constexpr int kEpochs = 30;
    constexpr float kLr = 0.05f, kL2 = 1e-3f;
    core::Rng rng(seed);
    std::vector<ItemIndex> order = fit;
    for (int e = 0; e < kEpochs; ++e) {
      std::shuffle(order.begin(), order.end(), rng);
      for (ItemIndex j : order) {
        const float g = prior_of(w, j) - target[static_cast<size_t>(j)];
        for (int64_t r = bag_off_[static_cast<size_t>(j)]; r < bag_off_[static_cast<size_t>(j) + 1]; ++r) {
          float& wf = w[static_cast<size_t>(bag_id_[static_cast<size_t>(r)])];
          wf -= kLr * (g * bag_w_[static_cast<size_t>(r)] + kL2 * wf);
        }
      }
    }
    double sum = 0, sq = 0;
    for (ItemIndex j : fit) {
      const double y = prior_of(w, j);
      sum += y;
      sq += y * y;
    }
    const double m = sum / static_cast<double>(fit.size()), v = sq / static_cast<double>(fit.size()) - m * m;
    scale[0] = static_cast<float>(m);
    scale[1] = static_cast<float>(v > 1e-12 ? std::sqrt(v) : 1.0);
    return w;
  }

  float prior_of(const std::vector<float>& w, ItemIndex j) const {
    float y = w.back();
    for (int64_t r = bag_off_[static_cast<size_t>(j)]; r < bag_off_[static_cast<size_t>(j) + 1]; ++r)
      y += w[static_cast<size_t>(bag_id_[static_cast<size_t>(r)])] * bag_w_[static_cast<size_t>(r)];
    return y;
  }

  // The item's first event time (kNoTime: none).
  int64_t first_event(ItemIndex j) const {
    const auto b = t_off_[static_cast<size_t>(j)];
    return b < t_off_[static_cast<size_t>(j) + 1] ? t_val_[static_cast<size_t>(b)] : kNoTime;
  }

  // What requests need per item and no request changes, from item `first`
  // on, computed once (fit, load, add_items) instead of per request:
  // prior_z_, each item's standardised prior under the model's own fit (0
  // without one), the item's signals 0 and 10 as a request sees them (no
  // hidden items, no task user to leave out).
  void refresh_derived(int32_t first) {
    prior_z_.resize(static_cast<size_t>(first));
    log_count_.resize(static_cast<size_t>(first));
    neighbour_pop_.resize(static_cast<size_t>(first));
    const Task request;
    for (int32_t j = first; j < num_items(); ++j) {
      prior_z_.push_back(prior_w_.empty() || space_.empty()
                             ? 0.0f
                             : (prior_of(prior_w_, j) - prior_scale_[0]) / prior_scale_[1]);
      log_count_.push_back(std::log1p(count_seen(request, j)));
      neighbour_pop_.push_back(neighbour_popularity(request, j));
    }
  }

  // Feature -> (item, weight) postings of every item's content row, items
  // ascending (fit and add_items through build_content_neighbours, load).
  void build_postings() {
    post_off_.assign(space_.empty() ? 0 : static_cast<size_t>(space_.size()) + 1, 0);
    post_item_.assign(bag_id_.size(), 0);
    post_w_.assign(bag_id_.size(), 0.0f);
    if (space_.empty()) return;
    for (int32_t f : bag_id_) ++post_off_[static_cast<size_t>(f) + 1];
    for (size_t f = 1; f < post_off_.size(); ++f) post_off_[f] += post_off_[f - 1];
    std::vector<int64_t> next(post_off_.begin(), post_off_.end() - 1);
    for (int32_t j = 0; j + 1 < static_cast<int32_t>(bag_off_.size()); ++j)
      for (int64_t r = bag_off_[static_cast<size_t>(j)]; r < bag_off_[static_cast<size_t>(j) + 1]; ++r) {
        const auto q = static_cast<size_t>(next[static_cast<size_t>(bag_id_[static_cast<size_t>(r)])]++);
        post_item_[q] = j;
        post_w_[q] = bag_w_[static_cast<size_t>(r)];
      }
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    auto state = std::make_unique<MetaState>();
    state->seen = history_item_set(context, num_items(), name());
    Task task = task_of(context);
    state->scores.assign(static_cast<size_t>(num_items()), 0.0f);
    score_all_items(task, state->scores);
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    const auto& s = dynamic_cast<const MetaState&>(state).scores;
    for (size_t k = 0; k < items.size(); ++k) {
      if (items[k] < 0 || items[k] >= num_items()) throw_item_out_of_range(name(), items[k], num_items());
      out[k] = s[static_cast<size_t>(items[k])];
    }
  }

  void score_all(const UserState& state, std::span<float> out) const override {
    const auto& s = dynamic_cast<const MetaState&>(state).scores;
    FEWREC_CHECK(out.size() == s.size(), kInvalidArgument,
                 "model `{}`: score_all needs an output of {} scores (one per item), got {}", name(), s.size(),
                 out.size());
    std::copy(s.begin(), s.end(), out.begin());
  }

  int32_t num_items() const override { return static_cast<int32_t>(count_.size()); }

  // New items: no interaction yet, content from their features.
  void add_items(const data::Catalogue& catalogue, ItemIndex first_new_item) override {
    const int32_t total = check_new_items(name(), catalogue, num_items(), first_new_item);
    for (int32_t i = num_items(); i < total; ++i) {
      count_.push_back(0.0f);
      nb_off_.push_back(nb_off_.back());
      t_off_.push_back(t_off_.back());
      if (!space_.empty()) {
        std::vector<int32_t> f;
        space_.encode_row(catalogue.item_features, i, f);
        add_bag(f);
      }
    }
    if (!space_.empty()) build_content_neighbours(static_cast<int32_t>(cn_off_.size()) - 1);
    refresh_derived(static_cast<int32_t>(prior_z_.size()));
  }

  void save(core::ArtifactWriter& w, const std::string& p) const override {
    w.put_array<float>(p + "count", count_);
    w.put_array<int64_t>(p + "nb_off", nb_off_);
    w.put_array<int32_t>(p + "nb_item", nb_item_);
    w.put_array<float>(p + "nb_count", nb_count_);
    w.put_array<int64_t>(p + "t_off", t_off_);
    w.put_array<int64_t>(p + "t_val", t_val_);
    w.put_array<int32_t>(p + "p_val", p_val_);
    w.put_i64(p + "t_max", t_max_);
    w.put_i64(p + "has_content", space_.empty() ? 0 : 1);
    if (!space_.empty()) {
      space_.save(w, p + "space/");
      w.put_array<float>(p + "idf", idf_);
      w.put_array<int64_t>(p + "bag_off", bag_off_);
      w.put_array<int32_t>(p + "bag_id", bag_id_);
      w.put_array<float>(p + "bag_w", bag_w_);
    }
    w.put_array<float>(p + "weights", weights_);
    w.put_array<float>(p + "calib", calib_);
    w.put_array<int64_t>(p + "cn_off", cn_off_);
    w.put_array<int32_t>(p + "cn_item", cn_item_);
    w.put_array<float>(p + "cn_sim", cn_sim_);
    w.put_array<float>(p + "mean", mean_);
    w.put_array<float>(p + "std", std_);
    w.put_array<float>(p + "prior_w", prior_w_);
    w.put_array<float>(p + "prior_scale", std::vector<float>{prior_scale_[0], prior_scale_[1], prior_weight_});
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& r, const std::string& p) {
    DocumentedOptions o(spec);
    auto options = MetaRankerOptions::read(o);
    o.check_all_used();
    auto m = std::make_unique<MetaRankerModel>(spec, options);
    m->count_ = r.get_array<float>(p + "count");
    const size_t n = m->count_.size();
    m->nb_off_ = r.get_array<int64_t>(p + "nb_off", n + 1);
    m->nb_item_ = r.get_array<int32_t>(p + "nb_item");
    m->nb_count_ = r.get_array<float>(p + "nb_count", m->nb_item_.size());
    m->t_off_ = r.get_array<int64_t>(p + "t_off", n + 1);
    m->t_val_ = r.get_array<int64_t>(p + "t_val");
    m->p_val_ = r.get_array<int32_t>(p + "p_val", m->t_val_.size());
    m->t_max_ = r.get_i64(p + "t_max");
    auto bad = [&](const char* what) {
      FEWREC_THROW(kCorrupt, "artifact {}: model `meta_ranker`: {} are inconsistent", r.origin(), what);
    };
    auto check_offsets = [&](const std::vector<int64_t>& off, size_t size, const char* what) {
      if (off.empty() || off.front() != 0 || off.back() != static_cast<int64_t>(size) ||
          !std::is_sorted(off.begin(), off.end()))
        bad(what);
    };
    check_offsets(m->nb_off_, m->nb_item_.size(), "co-occurrence offsets");
    check_offsets(m->t_off_, m->t_val_.size(), "event time offsets");
    for (int32_t j : m->nb_item_)
      if (j < 0 || static_cast<size_t>(j) >= n) bad("co-occurring items");
    if (r.get_i64(p + "has_content") != 0) {
      m->space_ = hybrid::FeatureSpace::load(r, p + "space/");
      m->idf_ = r.get_array<float>(p + "idf", static_cast<size_t>(m->space_.size()));
      m->bag_off_ = r.get_array<int64_t>(p + "bag_off", n + 1);
      m->bag_id_ = r.get_array<int32_t>(p + "bag_id");
      m->bag_w_ = r.get_array<float>(p + "bag_w", m->bag_id_.size());
      check_offsets(m->bag_off_, m->bag_id_.size(), "content offsets");
      for (int32_t f : m->bag_id_)
        if (f < 0 || f >= m->space_.size()) bad("content features");
    }
    m->weights_ = r.get_array<float>(p + "weights", (options.buckets.size() + 2) * kF);
    m->calib_ = r.get_array<float>(p + "calib", (options.buckets.size() + 2) * 2);
    m->cn_off_ = r.get_array<int64_t>(p + "cn_off");
    m->cn_item_ = r.get_array<int32_t>(p + "cn_item");
    m->cn_sim_ = r.get_array<float>(p + "cn_sim", m->cn_item_.size());
    if (!m->cn_off_.empty()) {
      if (m->cn_off_.size() != n + 1) bad("content neighbour offsets");
      check_offsets(m->cn_off_, m->cn_item_.size(), "content neighbour offsets");
      for (int32_t j : m->cn_item_)
        if (j < 0 || static_cast<size_t>(j) >= n) bad("content neighbours");
    }
    m->mean_ = r.get_array<float>(p + "mean", kF);
    m->std_ = r.get_array<float>(p + "std", kF);
    // The new-item prior (absent from artifacts written before it existed: no prior).
    if (r.has(p + "prior_w")) {
      m->prior_w_ = r.get_array<float>(p + "prior_w");
      if (!m->prior_w_.empty() && m->prior_w_.size() != static_cast<size_t>(m->space_.size()) + 1)
        bad("new-item prior weights");
      const auto sc = r.get_array<float>(p + "prior_scale", 3);
      m->prior_scale_[0] = sc[0];
      m->prior_scale_[1] = sc[1];
      m->prior_weight_ = sc[2];
      if (!(sc[1] > 0) || !std::isfinite(sc[0]) || !std::isfinite(sc[2])) bad("new-item prior scale");
    }
    for (const auto* v : {&m->weights_, &m->calib_, &m->mean_, &m->std_, &m->prior_w_})
      for (float x : *v)
        if (!std::isfinite(x)) bad("weights");
    for (float x : m->std_)
      if (x <= 0) bad("signal scales");
    for (size_t i = 1; i < m->calib_.size(); i += 2)
      if (m->calib_[i] <= 0) bad("score scales");
    m->build_postings();
    m->refresh_derived(0);
    return m;
  }

  nlohmann::json summary() const override {
    nlohmann::json w = nlohmann::json::array();
    for (size_t b = 0; b * kF < weights_.size(); ++b)
      w.push_back(std::vector<float>(weights_.begin() + static_cast<std::ptrdiff_t>(b * kF),
                                     weights_.begin() + static_cast<std::ptrdiff_t>((b + 1) * kF)));
    return {{"items", num_items()},
            {"co_occurrence_pairs", nb_item_.size()},
            {"content_features", space_.size()},
            {"signals", {"popularity", "recent popularity", "cosine sum", "cosine max", "confidence", "content",
                         "age", "log N", "timed", "later popularity", "content-predicted popularity",
                         "best content match"}},
            {"weights_per_bucket_then_cold", w},
            {"new_item_prior_weight", prior_weight_},
            {"train_ndcg_per_bucket", train_ndcg_}};
  }

  // Test hooks (meta_ranker.h).
  std::vector<float> task_signals(const data::Dataset& train, UserIndex u, int n_support) {
    std::vector<int64_t> own(static_cast<size_t>(num_items()), kNoTime);
    mark(train, u, own, true);
    const Task task = prefix_task(train, u, n_support, own);
    std::vector<float> x(static_cast<size_t>(num_items()) * kF);
    for (int32_t j = 0; j < num_items(); ++j) signals(task, j, nullptr, x.data() + static_cast<size_t>(j) * kF);
    mark(train, u, own, false);
    return x;
  }
  std::vector<float> context_signals(const data::UserContext& context) const {
    Task task = task_of(context);
    task.lookups = true;
    std::vector<float> x(static_cast<size_t>(num_items()) * kF);
    for (int32_t j = 0; j < num_items(); ++j) signals(task, j, nullptr, x.data() + static_cast<size_t>(j) * kF);
    return x;
  }

 private:
  // ---------------------------------------------------------------- counts
  void build_counts(const data::Dataset& train) {
    const int32_t n = train.num_items(), nu = train.num_users();
    const auto off = train.user_offsets();
    const auto items = train.item_column();
    const auto times = train.timestamp_column();
    // Distinct items per user, and users per item (transpose).
    std::vector<std::vector<ItemIndex>> user_items(static_cast<size_t>(nu));
    std::vector<std::vector<int32_t>> item_users(static_cast<size_t>(n));
    count_.assign(static_cast<size_t>(n), 0.0f);
    std::vector<std::vector<int64_t>> item_times(static_cast<size_t>(n));
    t_max_ = kNoTime;
    for (int32_t u = 0; u < nu; ++u) {
      auto& mine = user_items[static_cast<size_t>(u)];
      for (int64_t r = off[static_cast<size_t>(u)]; r < off[static_cast<size_t>(u) + 1]; ++r) {
        mine.push_back(items[static_cast<size_t>(r)]);
        t_max_ = std::max(t_max_, times[static_cast<size_t>(r)]);
      }
      std::sort(mine.begin(), mine.end());
      mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
      for (ItemIndex i : mine) {
        item_users[static_cast<size_t>(i)].push_back(u);
        count_[static_cast<size_t>(i)] += 1.0f;
      }
    }
    // Per item: each user's first event on it, its time and its position.
    std::vector<std::vector<int32_t>> item_pos(static_cast<size_t>(n));
    {
      std::vector<int64_t> first(static_cast<size_t>(n), kNoTime);
      std::vector<int32_t> first_pos(static_cast<size_t>(n), -1);
      for (int32_t u = 0; u < nu; ++u) {
        for (int64_t r = off[static_cast<size_t>(u)]; r < off[static_cast<size_t>(u) + 1]; ++r) {
          const auto i = static_cast<size_t>(items[static_cast<size_t>(r)]);
          if (first_pos[i] < 0) first_pos[i] = static_cast<int32_t>(r - off[static_cast<size_t>(u)]);
          if (first[i] == kNoTime || times[static_cast<size_t>(r)] < first[i]) first[i] = times[static_cast<size_t>(r)];
        }
        for (ItemIndex i : user_items[static_cast<size_t>(u)]) {
          item_times[static_cast<size_t>(i)].push_back(first[static_cast<size_t>(i)]);
          item_pos[static_cast<size_t>(i)].push_back(first_pos[static_cast<size_t>(i)]);
          first[static_cast<size_t>(i)] = kNoTime;
          first_pos[static_cast<size_t>(i)] = -1;
        }
      }
    }
    t_off_.assign(1, 0);
    t_val_.clear();
    p_val_.clear();
    for (size_t i = 0; i < item_times.size(); ++i) {
      std::sort(item_times[i].begin(), item_times[i].end());
      std::sort(item_pos[i].begin(), item_pos[i].end());
      t_val_.insert(t_val_.end(), item_times[i].begin(), item_times[i].end());
      p_val_.insert(p_val_.end(), item_pos[i].begin(), item_pos[i].end());
      t_off_.push_back(static_cast<int64_t>(t_val_.size()));
    }
    // Co-occurrence rows: for item i, co(i, j) = users with both; the most
    // frequent `neighbours` kept, sorted by j for lookups.
    nb_off_.assign(1, 0);
    nb_item_.clear();
    nb_count_.clear();
    std::vector<float> acc(static_cast<size_t>(n), 0.0f);
    std::vector<ItemIndex> touched;
    std::vector<std::pair<float, ItemIndex>> row;
    for (int32_t i = 0; i < n; ++i) {
      touched.clear();
      for (int32_t u : item_users[static_cast<size_t>(i)])
        for (ItemIndex j : user_items[static_cast<size_t>(u)]) {
          if (j == i) continue;
          if (acc[static_cast<size_t>(j)] == 0.0f) touched.push_back(j);
          acc[static_cast<size_t>(j)] += 1.0f;
        }
      row.clear();
      for (ItemIndex j : touched) {
        row.emplace_back(acc[static_cast<size_t>(j)], j);
        acc[static_cast<size_t>(j)] = 0.0f;
      }
      if (row.size() > static_cast<size_t>(o_.neighbours)) {
        std::nth_element(row.begin(), row.begin() + o_.neighbours, row.end(),
                         [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
        row.resize(static_cast<size_t>(o_.neighbours));
      }
      std::sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
      for (const auto& [c, j] : row) {
        nb_item_.push_back(j);
        nb_count_.push_back(c);
      }
      nb_off_.push_back(static_cast<int64_t>(nb_item_.size()));
    }
  }

  // --------------------------------------------------------------- content
  void build_content(const data::Catalogue& cat) {
    space_ = hybrid::FeatureSpace{};
    cn_off_.clear();
    cn_item_.clear();
    cn_sim_.clear();
    bag_off_.assign(1, 0);
    bag_id_.clear();
    bag_w_.clear();
    if (!o_.content || cat.item_features.columns().empty()) return;
    std::vector<int32_t> rows(static_cast<size_t>(cat.items.size()));
    std::iota(rows.begin(), rows.end(), 0);
    hybrid::VocabularyOptions vocab;  // as the `content` model: every value, every word
    vocab.min_df = 1;
    vocab.max_vocab = 0;
    space_ = hybrid::FeatureSpace::build(cat.item_features, rows, o_.item_features, vocab, "item", name());
    if (space_.empty()) return;
    std::vector<std::vector<int32_t>> bags(rows.size());
    std::vector<int64_t> df(static_cast<size_t>(space_.size()), 0);
    for (size_t i = 0; i < rows.size(); ++i) {
      space_.encode_row(cat.item_features, static_cast<int32_t>(i), bags[i]);
      for (int32_t f : bags[i]) ++df[static_cast<size_t>(f)];
    }
    idf_.resize(df.size());
    const double nd = static_cast<double>(rows.size());
    for (size_t f = 0; f < df.size(); ++f)
      idf_[f] = static_cast<float>(std::log((nd + 1.0) / (static_cast<double>(df[f]) + 1.0)) + 1.0);
    for (const auto& b : bags) add_bag(b);
    build_content_neighbours(0);
  }

  // Rows from `first` on: each item's kContentNeighbours most similar items
  // by content cosine (itself excluded). Features shared by more than
  // kMaxDf items are skipped here (they say little and cost the most).
  static constexpr int kContentNeighbours = 20;
  static constexpr int64_t kMaxDf = 2000;
  void build_content_neighbours(int32_t first) {
    const int32_t n = static_cast<int32_t>(bag_off_.size()) - 1;
    if (space_.empty()) return;
    if (first == 0) cn_off_.assign(1, 0), cn_item_.clear(), cn_sim_.clear();
    build_postings();
    std::vector<float> acc(static_cast<size_t>(n), 0.0f);
    std::vector<int32_t> touched;
    std::vector<std::pair<float, int32_t>> row;
    for (int32_t j = first; j < n; ++j) {
      touched.clear();
      for (int64_t r = bag_off_[static_cast<size_t>(j)]; r < bag_off_[static_cast<size_t>(j) + 1]; ++r) {
        const auto f = static_cast<size_t>(bag_id_[static_cast<size_t>(r)]);
        if (post_off_[f + 1] - post_off_[f] > kMaxDf) continue;
        const float wj = bag_w_[static_cast<size_t>(r)];
        for (int64_t q = post_off_[f]; q < post_off_[f + 1]; ++q) {
          const int32_t k = post_item_[static_cast<size_t>(q)];
          const float wk = post_w_[static_cast<size_t>(q)];
          if (k == j) continue;
          if (acc[static_cast<size_t>(k)] == 0.0f) touched.push_back(k);
          acc[static_cast<size_t>(k)] += wj * wk;
        }
      }
      row.clear();
      for (int32_t k : touched) {
        if (acc[static_cast<size_t>(k)] > 0) row.emplace_back(acc[static_cast<size_t>(k)], k);
        acc[static_cast<size_t>(k)] = 0.0f;
      }
      const auto keep = std::min<size_t>(row.size(), kContentNeighbours);
      std::partial_sort(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(keep), row.end(),
                        [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      for (size_t r = 0; r < keep; ++r) {
        cn_item_.push_back(row[r].second);
        cn_sim_.push_back(row[r].first);
      }
      cn_off_.push_back(static_cast<int64_t>(cn_item_.size()));
    }
  }

  // Appends an item's content row: idf weights, L2-normalised.
  void add_bag(const std::vector<int32_t>& f) {
    double norm = 0;
    for (int32_t x : f) {
      const float w = static_cast<size_t>(x) < idf_.size() ? idf_[static_cast<size_t>(x)] : 1.0f;
      norm += static_cast<double>(w) * w;
    }
    const float inv = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.0f;
    for (int32_t x : f) {
      bag_id_.push_back(x);
      bag_w_.push_back((static_cast<size_t>(x) < idf_.size() ? idf_[static_cast<size_t>(x)] : 1.0f) * inv);
    }
    bag_off_.push_back(static_cast<int64_t>(bag_id_.size()));
  }

  float content_dot(const std::vector<float>& profile, ItemIndex j) const {
    float s = 0.0f;
    for (int64_t r = bag_off_[static_cast<size_t>(j)]; r < bag_off_[static_cast<size_t>(j) + 1]; ++r)
      s += profile[static_cast<size_t>(bag_id_[static_cast<size_t>(r)])] * bag_w_[static_cast<size_t>(r)];
    return s;
  }

  // ------------------------------------------------------------------ tasks
  Task task_of(const data::UserContext& context) const {
    Task task;
    int64_t t = kNoTime;
    for (const auto& e : context.history) {
      if (e.item < 0 || e.item >= num_items()) throw_item_out_of_range(name(), e.item, num_items());
      if (std::find(task.support.begin(), task.support.end(), e.item) == task.support.end())
        task.support.push_back(e.item);
      if (e.timestamp > 0) t = std::max(t, e.timestamp);
    }
    task.n_events = static_cast<int>(context.history.size());
    task.t = t == kNoTime ? kNoTime : std::min(t, t_max_);
    fill_profile(task);
    return task;
  }

  // The simulated task of training user u whose support is their first
  // n_support events; `own` must hold u's items (mark()).
  Task prefix_task(const data::Dataset& train, UserIndex u, int n_support, const std::vector<int64_t>& own) const {
    Task task;
    const auto b0 = train.user_offsets()[static_cast<size_t>(u)];
    for (int64_t r = b0; r < b0 + n_support; ++r) {
      const ItemIndex i = train.item_column()[static_cast<size_t>(r)];
      if (std::find(task.support.begin(), task.support.end(), i) == task.support.end()) task.support.push_back(i);
      const int64_t ts = train.timestamp_column()[static_cast<size_t>(r)];
      if (ts > 0) task.t = std::max(task.t, ts);
    }
    task.n_events = n_support;
    fill_profile(task);
    task.own = &own;
    task.own_pos = &own_pos_;
    return task;
  }

  void fill_profile(Task& task) const {
    if (space_.empty() || task.support.empty()) return;
    task.profile.assign(static_cast<size_t>(space_.size()), 0.0f);
    const float w = 1.0f / static_cast<float>(task.support.size());
    for (ItemIndex s : task.support)
      for (int64_t r = bag_off_[static_cast<size_t>(s)]; r < bag_off_[static_cast<size_t>(s) + 1]; ++r)
        task.profile[static_cast<size_t>(bag_id_[static_cast<size_t>(r)])] += w * bag_w_[static_cast<size_t>(r)];
  }

  // co(s, j) from s's kept row (0 when j is not in it).
  float co(ItemIndex s, ItemIndex j) const {
    const auto b = nb_item_.begin() + nb_off_[static_cast<size_t>(s)];
    const auto e = nb_item_.begin() + nb_off_[static_cast<size_t>(s) + 1];
    const auto it = std::lower_bound(b, e, j);
    return it != e && *it == j ? nb_count_[static_cast<size_t>(it - nb_item_.begin())] : 0.0f;
  }

  // Events on j in (t - window, t], without `own` (the task user's time on j).
  float recent(ItemIndex j, int64_t t, int64_t own) const {
    const auto b = t_val_.begin() + t_off_[static_cast<size_t>(j)];
    const auto e = t_val_.begin() + t_off_[static_cast<size_t>(j) + 1];
    const auto lo = std::upper_bound(b, e, t - o_.window), hi = std::upper_bound(b, e, t);
    float c = static_cast<float>(hi - lo);
    if (own != kNoTime && own > t - o_.window && own <= t) c -= 1.0f;
    return std::max(0.0f, c);
  }

  // First event on j without the task user's own.
  int64_t first_time(ItemIndex j, int64_t own) const {
    const int64_t b = t_off_[static_cast<size_t>(j)], e = t_off_[static_cast<size_t>(j) + 1];
    if (b == e) return kNoTime;
    if (own != kNoTime && t_val_[static_cast<size_t>(b)] == own) return b + 1 < e ? t_val_[static_cast<size_t>(b) + 1] : kNoTime;
    return t_val_[static_cast<size_t>(b)];
  }

  // Count of j as a task sees it: 0 when hidden (simulated cold), without
  // the task user's own event.
  float count_seen(const Task& task, ItemIndex j) const {
    if (task.cold && (*task.cold)[static_cast<size_t>(j)]) return 0.0f;
    const int64_t own = task.own ? (*task.own)[static_cast<size_t>(j)] : kNoTime;
    return std::max(0.0f, count_[static_cast<size_t>(j)] - (own != kNoTime ? 1.0f : 0.0f));
  }

  // Cosine of the content vectors of two items (rows sorted by feature).
  float content_cos(ItemIndex a, ItemIndex b) const {
    int64_t i = bag_off_[static_cast<size_t>(a)], ie = bag_off_[static_cast<size_t>(a) + 1];
    int64_t k = bag_off_[static_cast<size_t>(b)], ke = bag_off_[static_cast<size_t>(b) + 1];
    float s = 0.0f;
    while (i < ie && k < ke) {
      const int32_t fi = bag_id_[static_cast<size_t>(i)], fk = bag_id_[static_cast<size_t>(k)];
      if (fi == fk) s += bag_w_[static_cast<size_t>(i++)] * bag_w_[static_cast<size_t>(k++)];
      else if (fi < fk) ++i;
      else ++k;
    }
    return s;
  }

  // The signals of candidate j; knn = {sum, max, confidence, best content
  // cosine} when already accumulated (score_all), else computed by lookups.
  void signals(const Task& task, ItemIndex j, const float* knn, float* x) const {
    const bool hidden = task.cold && (*task.cold)[static_cast<size_t>(j)];
    const int64_t own = task.own && !hidden ? (*task.own)[static_cast<size_t>(j)] : kNoTime;
    const bool request = task.cold == nullptr && task.own == nullptr && !task.lookups;  // cached values apply
    const float pop = count_seen(task, j);
    x[0] = request ? log_count_[static_cast<size_t>(j)] : std::log1p(pop);
    const bool timed = task.t != kNoTime;
    x[1] = timed && !hidden ? std::log1p(recent(j, task.t, own)) : 0.0f;
    if (knn) {
      x[2] = knn[0];
      x[3] = knn[1];
      x[4] = knn[2];
    } else {
      float sum = 0, mx = 0, conf = 0;
      for (ItemIndex s : task.support) {
        const bool mine = task.own != nullptr;  // training: s is the user's, so counts drop the user
        float c = hidden ? 0.0f : co(s, j) - (mine && own != kNoTime ? 1.0f : 0.0f);
        const float ns = count_[static_cast<size_t>(s)] - (mine ? 1.0f : 0.0f);
        if (c <= 0 || ns <= 0 || pop <= 0) continue;
        const float sim = c / std::sqrt(ns * pop);
        sum += sim;
        mx = std::max(mx, sim);
        conf += c / ns;
      }
      x[2] = sum;
      x[3] = mx;
      x[4] = task.support.empty() ? 0.0f : conf / static_cast<float>(task.support.size());
    }
    x[5] = task.profile.empty() ? 0.0f : content_dot(task.profile, j);
    const int64_t first = timed && !hidden ? first_time(j, own) : kNoTime;
    if (first != kNoTime) {
      const double days = static_cast<double>(task.t - first) / 86400.0;
      x[6] = static_cast<float>(std::copysign(std::log1p(std::abs(days)), days));
    } else {
      x[6] = 0.0f;
    }
    x[7] = std::log1p(static_cast<float>(task.n_events));
    x[8] = timed ? 1.0f : 0.0f;
    if (hidden) {
      x[9] = 0.0f;
    } else {
      const auto b = p_val_.begin() + t_off_[static_cast<size_t>(j)];
      const auto e = p_val_.begin() + t_off_[static_cast<size_t>(j) + 1];
      float later = static_cast<float>(e - std::lower_bound(b, e, task.n_events));
      if (own != kNoTime && (*task.own_pos)[static_cast<size_t>(j)] >= task.n_events) later -= 1.0f;
      x[9] = std::log1p(std::max(0.0f, later));
    }
    // Content-predicted popularity and the best single content match.
    x[10] = request ? neighbour_pop_[static_cast<size_t>(j)] : neighbour_popularity(task, j);
    if (knn) {
      x[11] = knn[3];
    } else {
      float best = 0.0f;
      if (!space_.empty())
        for (ItemIndex s : task.support) best = std::max(best, content_cos(j, s));
      x[11] = best;
    }
  }

  // Signal 10: the similarity-weighted mean log count of j's content
  // neighbours, as the task sees the counts.
  float neighbour_popularity(const Task& task, ItemIndex j) const {
    float num = 0.0f, den = 0.0f;
    if (!cn_off_.empty())
      for (int64_t r = cn_off_[static_cast<size_t>(j)]; r < cn_off_[static_cast<size_t>(j) + 1]; ++r) {
        const float sim = cn_sim_[static_cast<size_t>(r)];
        num += sim * std::log1p(count_seen(task, cn_item_[static_cast<size_t>(r)]));
        den += sim;
      }
    return den > 0 ? num / den : 0.0f;
  }

  // Scores every item for a (non-training) task.
  void score_all_items(const Task& task, std::vector<float>& out) const {
    const int32_t n = num_items();
    // Co-occurrence signals by walking the support's rows once.
    constexpr size_t kK = 4;
    std::vector<float> knn(static_cast<size_t>(n) * kK, 0.0f);
    for (ItemIndex s : task.support) {
      const float ns = count_[static_cast<size_t>(s)];
      if (ns <= 0) continue;
      for (int64_t r = nb_off_[static_cast<size_t>(s)]; r < nb_off_[static_cast<size_t>(s) + 1]; ++r) {
        const ItemIndex j = nb_item_[static_cast<size_t>(r)];
        const float c = nb_count_[static_cast<size_t>(r)], pop = count_[static_cast<size_t>(j)];
        if (c <= 0 || pop <= 0) continue;
        const float sim = c / std::sqrt(ns * pop);
        float* k = knn.data() + static_cast<size_t>(j) * kK;
        k[0] += sim;
        k[1] = std::max(k[1], sim);
        k[2] += c / ns;
      }
    }
    // Best content cosine with a support item, through the feature postings:
    // only items sharing a feature with the support are touched (the sums
    // run in feature order, as content_cos's).
    if (!space_.empty()) {
      std::vector<float> acc(static_cast<size_t>(n), 0.0f);
      std::vector<int32_t> touched;
      for (ItemIndex s : task.support) {
        for (int64_t r = bag_off_[static_cast<size_t>(s)]; r < bag_off_[static_cast<size_t>(s) + 1]; ++r) {
          const auto f = static_cast<size_t>(bag_id_[static_cast<size_t>(r)]);
          const float ws = bag_w_[static_cast<size_t>(r)];
          for (int64_t q = post_off_[f]; q < post_off_[f + 1]; ++q) {
            const auto j = static_cast<size_t>(post_item_[static_cast<size_t>(q)]);
            if (acc[j] == 0.0f) touched.push_back(static_cast<int32_t>(j));
            acc[j] += post_w_[static_cast<size_t>(q)] * ws;
          }
        }
        for (int32_t j : touched) {
          float& best = knn[static_cast<size_t>(j) * kK + 3];
          best = std::max(best, acc[static_cast<size_t>(j)]);
          acc[static_cast<size_t>(j)] = 0.0f;
        }
        touched.clear();
      }
    }
    const float inv = task.support.empty() ? 0.0f : 1.0f / static_cast<float>(task.support.size());
    const int b = o_.bucket_of(task.n_events);
    const float* w = weights_.data() + static_cast<size_t>(b) * kF;
    const float* wc = weights_.data() + static_cast<size_t>(cold_bucket()) * kF;
    const bool cold_weights = o_.cold_fraction > 0;
    // Cold score -> warm scale: its z-score under the cold distribution,
    // squashed into (mean - 1.5 std, mean - 0.5 std) of this bucket's warm
    // scores: in a mixed list a cold item ranks below the typical warm item
    // (nothing is known of it but its content), and cold items keep their
    // order among themselves.
    const float cm = calib_[2 * static_cast<size_t>(cold_bucket())], cs = calib_[2 * static_cast<size_t>(cold_bucket()) + 1];
    const float wm = calib_[2 * static_cast<size_t>(b)], ws = calib_[2 * static_cast<size_t>(b) + 1];
    float x[kF];
    for (int32_t j = 0; j < n; ++j) {
      float* k = knn.data() + static_cast<size_t>(j) * kK;
      k[2] *= inv;
      signals(task, j, k, x);
      if (o_.signal >= 0)
        out[static_cast<size_t>(j)] = x[o_.signal];
      else if (cold_weights && count_[static_cast<size_t>(j)] <= 0)
        out[static_cast<size_t>(j)] =
            wm - ws + 0.5f * ws * std::tanh((combine(x, wc) + prior_weight_ * prior_z_[static_cast<size_t>(j)] - cm) / cs);
      else
        out[static_cast<size_t>(j)] = combine(x, w);
    }
  }

  int cold_bucket() const { return static_cast<int>(o_.buckets.size()) + 1; }

  // Weighted sum of the standardised signals.
  float combine(const float* x, const float* w) const {
    float y = 0.0f;
    for (int f = 0; f < kF; ++f)
      y += w[f] * (x[f] - mean_[static_cast<size_t>(f)]) / std_[static_cast<size_t>(f)];
    return y;
  }

  // Marks (on) or clears (off) the user's items: own[i] = time and
  // own_pos_[i] = position of their first event on i.
  void mark(const data::Dataset& train, int32_t u, std::vector<int64_t>& own, bool on) {
    const auto off = train.user_offsets();
    const auto items = train.item_column();
    const auto times = train.timestamp_column();
    own_pos_.resize(own.size(), -1);
    for (int64_t r = off[static_cast<size_t>(u)]; r < off[static_cast<size_t>(u) + 1]; ++r) {
      const auto i = static_cast<size_t>(items[static_cast<size_t>(r)]);
      if (!on) {
        own[i] = kNoTime;
        own_pos_[i] = -1;
        continue;
      }
      if (own_pos_[i] < 0) own_pos_[i] = static_cast<int32_t>(r - off[static_cast<size_t>(u)]);
      if (own[i] == kNoTime || times[static_cast<size_t>(r)] < own[i]) own[i] = times[static_cast<size_t>(r)];
    }
  }

  // A simulated task: the signals of its candidates (row-major
  // [candidates x kF]) and the query items.
  struct SimTask {
    std::vector<float> x;
    std::vector<ItemIndex> candidates;  // empty: every item
    std::vector<ItemIndex> query;       // distinct, not in the support
    std::vector<ItemIndex> support;     // excluded from the ranking
    std::vector<uint8_t> relevant;      // per row: in the query
    const std::vector<float>* extra = nullptr;  // cold-item tasks: per row, the standardised new-item prior
    void finish() {
      const size_t rows = x.size() / kF;
      relevant.assign(rows, 0);
      for (size_t r = 0; r < rows; ++r) {
        const ItemIndex item = candidates.empty() ? static_cast<ItemIndex>(r) : candidates[r];
        relevant[r] = std::binary_search(query.begin(), query.end(), item) ? 1 : 0;
      }
    }
  };

  // Per task, the score of every row under weights w (support rows -inf).
  static void base_scores(const std::vector<SimTask>& tasks, const float* w, std::vector<std::vector<float>>& base) {
    base.resize(tasks.size());
    for (size_t i = 0; i < tasks.size(); ++i) {
      const auto& t = tasks[i];
      const size_t rows = t.x.size() / kF;
      auto& b = base[i];
      b.resize(rows);
      for (size_t j = 0; j < rows; ++j) {
        const float* x = t.x.data() + j * kF;
        float y = 0.0f;
        for (int f = 0; f < kF; ++f) y += w[f] * x[f];
        b[j] = y;
      }
      if (t.candidates.empty())
        for (ItemIndex sI : t.support) b[static_cast<size_t>(sI)] = -std::numeric_limits<float>::infinity();
    }
  }

  // Mean NDCG@10 of `tasks` when signal f's weight (f = -1: the tasks'
  // `extra` row values) moves by `delta` from the weights behind `base`
  // (delta 0: those weights). One pass per task keeps
  // the ten best rows; ties put relevant rows last (as the evaluator does),
  // so weights cannot win by the tie order.
  static double ndcg(const std::vector<SimTask>& tasks, const std::vector<std::vector<float>>& base, int f,
                     float delta) {
    constexpr size_t kTop = 10;
    double total = 0;
    std::pair<float, int32_t> best[kTop + 1];
    for (size_t i = 0; i < tasks.size(); ++i) {
      const auto& t = tasks[i];
      const auto& b = base[i];
      auto worse = [&](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& c) {
        if (a.first != c.first) return a.first < c.first;
        const uint8_t ra = t.relevant[static_cast<size_t>(a.second)], rc = t.relevant[static_cast<size_t>(c.second)];
        return ra != rc ? ra > rc : a.second > c.second;
      };
      size_t filled = 0;
      for (size_t j = 0; j < b.size(); ++j) {
        const float v = f >= 0 ? t.x[j * kF + static_cast<size_t>(f)] : (*t.extra)[j];
        const std::pair<float, int32_t> cand{b[j] + delta * v, static_cast<int32_t>(j)};
        if (filled == kTop && !worse(best[kTop - 1], cand)) continue;
        size_t pos = filled < kTop ? filled++ : kTop - 1;  // insertion into the sorted buffer
        while (pos > 0 && worse(best[pos - 1], cand)) {
          best[pos] = best[pos - 1];
          --pos;
        }
        best[pos] = cand;
      }
      double dcg = 0, ideal = 0;
      for (size_t r = 0; r < filled; ++r) {
        if (best[r].first == -std::numeric_limits<float>::infinity()) break;
        if (t.relevant[static_cast<size_t>(best[r].second)]) dcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
      }
      for (size_t r = 0; r < std::min(kTop, t.query.size()); ++r) ideal += 1.0 / std::log2(static_cast<double>(r) + 2.0);
      total += ideal > 0 ? dcg / ideal : 0.0;
    }
    return tasks.empty() ? 0.0 : total / static_cast<double>(tasks.size());
  }

  // Builds the simulated tasks of every bucket, standardises the signals and
  // fits each bucket's weights by coordinate ascent on NDCG@10.
  void meta_train(const data::Dataset& train, const TrainOptions& options, core::Monitor& monitor) {
    const int32_t n = num_items();
    const int nb = static_cast<int>(o_.buckets.size()) + 1;
    mean_.assign(kF, 0.0f);
    std_.assign(kF, 1.0f);
    weights_.assign(static_cast<size_t>(nb + 1) * kF, 0.0f);
    for (int b = 0; b < nb; ++b) weights_[static_cast<size_t>(b) * kF] = 1.0f;  // popularity alone
    weights_[static_cast<size_t>(nb) * kF + 5] = 1.0f;                          // cold items: content alone
    calib_.assign(static_cast<size_t>(nb + 1) * 2, 1.0f);
    for (size_t i = 0; i < calib_.size(); i += 2) calib_[i] = 0.0f;
    train_ndcg_.assign(static_cast<size_t>(nb + 1), 0.0);
    const auto off = train.user_offsets();
    const auto items = train.item_column();
    const auto times = train.timestamp_column();
    core::Rng rng(core::derive_seed(options.seed, 0x6d657461));
    prior_w_ = fit_prior(nullptr, core::derive_seed(options.seed, 0x7072696f), prior_scale_);
    prior_weight_ = 0.0f;
    std::vector<float> cold_prior;  // per hidden item of the cold-item tasks: its standardised prior
    // Tasks per bucket, bounded so their signals stay within ~256 MB.
    const int64_t budget = (int64_t{256} << 20) / (static_cast<int64_t>(n) * kF * 4 * nb);
    const int per_bucket = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(o_.tasks, budget)));
    std::vector<std::vector<SimTask>> tasks(static_cast<size_t>(nb + 1));
    std::vector<int64_t> own(static_cast<size_t>(n), kNoTime);
    std::vector<int32_t> users(static_cast<size_t>(train.num_users()));
    std::iota(users.begin(), users.end(), 0);
    for (int b = 0; b < nb; ++b) {
      const int lo = b == 0 ? 0 : o_.buckets[static_cast<size_t>(b) - 1];
      const int hi = b + 1 < nb ? o_.buckets[static_cast<size_t>(b)] - 1 : std::max(lo, 2 * lo);
      std::shuffle(users.begin(), users.end(), rng);
      for (int32_t u : users) {
        if (static_cast<int>(tasks[static_cast<size_t>(b)].size()) >= per_bucket) break;
        const int64_t len = off[static_cast<size_t>(u) + 1] - off[static_cast<size_t>(u)];
        const int n_sup = lo + static_cast<int>(core::uniform_index(rng, static_cast<uint64_t>(hi - lo + 1)));
        if (len < n_sup + o_.min_query) continue;
        mark(train, u, own, true);
        const int64_t b0 = off[static_cast<size_t>(u)];
        const Task task = prefix_task(train, u, n_sup, own);
        SimTask st;
        for (int64_t r = b0 + n_sup; r < b0 + len; ++r) st.query.push_back(items[static_cast<size_t>(r)]);
        std::sort(st.query.begin(), st.query.end());
        st.query.erase(std::unique(st.query.begin(), st.query.end()), st.query.end());
        std::erase_if(st.query, [&](ItemIndex i) {
          return std::find(task.support.begin(), task.support.end(), i) != task.support.end();
        });
        st.support = task.support;
        st.x.resize(static_cast<size_t>(n) * kF);
        for (int32_t j = 0; j < n; ++j) signals(task, j, nullptr, st.x.data() + static_cast<size_t>(j) * kF);
        mark(train, u, own, false);
        st.finish();
        if (!st.query.empty()) tasks[static_cast<size_t>(b)].push_back(std::move(st));
      }
    }
    // Simulated cold-item tasks: a random share of the items with
    // interactions is hidden; a user's hidden items are ranked among all
    // hidden items from the user's other items.
    if (o_.cold_fraction > 0) {
      std::vector<ItemIndex> warm;
      for (int32_t j = 0; j < n; ++j)
        if (count_[static_cast<size_t>(j)] > 0) warm.push_back(j);
      std::shuffle(warm.begin(), warm.end(), rng);
      if (o_.cold_newest)  // newest first event first
        std::stable_sort(warm.begin(), warm.end(), [&](ItemIndex a, ItemIndex b) {
          return first_event(a) > first_event(b);
        });
      warm.resize(static_cast<size_t>(std::llround(o_.cold_fraction * static_cast<double>(warm.size()))));
      std::sort(warm.begin(), warm.end());
      std::vector<uint8_t> hidden(static_cast<size_t>(n), 0);
      for (ItemIndex j : warm) hidden[static_cast<size_t>(j)] = 1;
      if (!prior_w_.empty() && !space_.empty() && o_.prior_fraction > 0) {
        // The prior as a new item would see it: fitted without the hidden items.
        float scale[2];
        const auto w = fit_prior(&hidden, core::derive_seed(options.seed, 0x70726970), scale);
        for (ItemIndex j : warm) cold_prior.push_back((prior_of(w, j) - scale[0]) / scale[1]);
      }
      std::shuffle(users.begin(), users.end(), rng);
      auto& ct = tasks[static_cast<size_t>(nb)];
      const int64_t cold_budget = (int64_t{64} << 20) / std::max<int64_t>(1, static_cast<int64_t>(warm.size()) * kF * 4);
      const int max_cold = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(o_.tasks, cold_budget)));
      for (int32_t u : users) {
        if (warm.empty() || static_cast<int>(ct.size()) >= max_cold) break;
        const int64_t b0 = off[static_cast<size_t>(u)], b1 = off[static_cast<size_t>(u) + 1];
        Task task;
        SimTask st;
        for (int64_t r = b0; r < b1; ++r) {
          const ItemIndex i = items[static_cast<size_t>(r)];
          if (hidden[static_cast<size_t>(i)]) {
            st.query.push_back(i);
          } else if (std::find(task.support.begin(), task.support.end(), i) == task.support.end()) {
            task.support.push_back(i);
            if (times[static_cast<size_t>(r)] > 0) task.t = std::max(task.t, times[static_cast<size_t>(r)]);
          }
        }
        if (st.query.empty() || task.support.empty()) continue;
        task.n_events = static_cast<int>(task.support.size());
        mark(train, u, own, true);
        fill_profile(task);
        task.own = &own;
        task.own_pos = &own_pos_;
        task.cold = &hidden;
        std::sort(st.query.begin(), st.query.end());
        st.query.erase(std::unique(st.query.begin(), st.query.end()), st.query.end());
        st.candidates = warm;
        if (!cold_prior.empty()) st.extra = &cold_prior;
        st.x.resize(warm.size() * kF);
        for (size_t c = 0; c < warm.size(); ++c) signals(task, warm[c], nullptr, st.x.data() + c * kF);
        mark(train, u, own, false);
        st.finish();
        ct.push_back(std::move(st));
      }
    }
    // Standardisation over every task's signals.
    {
      std::vector<double> sum(kF, 0.0), sq(kF, 0.0);
      double cnt = 0;
      for (const auto& bt : tasks)
        for (const auto& t : bt)
          for (size_t r = 0; r < t.x.size(); r += kF) {
            for (int f = 0; f < kF; ++f) {
              sum[static_cast<size_t>(f)] += t.x[r + static_cast<size_t>(f)];
              sq[static_cast<size_t>(f)] += static_cast<double>(t.x[r + static_cast<size_t>(f)]) * t.x[r + static_cast<size_t>(f)];
            }
            cnt += 1;
          }
      for (int f = 0; f < kF; ++f) {
        const double m = cnt > 0 ? sum[static_cast<size_t>(f)] / cnt : 0.0;
        const double v = cnt > 0 ? sq[static_cast<size_t>(f)] / cnt - m * m : 1.0;
        mean_[static_cast<size_t>(f)] = static_cast<float>(m);
        std_[static_cast<size_t>(f)] = static_cast<float>(v > 1e-12 ? std::sqrt(v) : 1.0);
      }
      for (auto& bt : tasks)
        for (auto& t : bt)
          for (size_t r = 0; r < t.x.size(); r += kF)
            for (int f = 0; f < kF; ++f)
              t.x[r + static_cast<size_t>(f)] = (t.x[r + static_cast<size_t>(f)] - mean_[static_cast<size_t>(f)]) / std_[static_cast<size_t>(f)];
    }
    // Coordinate ascent per bucket, in parallel over buckets.
    const std::vector<float> steps = {-2.0f, -1.0f, -0.5f, -0.25f, -0.1f, -0.05f, 0.05f, 0.1f, 0.25f, 0.5f, 1.0f, 2.0f};
    std::vector<double> start(static_cast<size_t>(nb + 1));
    core::parallel_for(0, nb + 1, options.threads, [&](int64_t b0, int64_t b1, int) {
      std::vector<std::vector<float>> base;
      for (int64_t b = b0; b < b1; ++b) {
        const auto& bt = tasks[static_cast<size_t>(b)];
        float* w = weights_.data() + static_cast<size_t>(b) * kF;
        base_scores(bt, w, base);
        double best = ndcg(bt, base, 0, 0.0f);
        start[static_cast<size_t>(b)] = best;
        const int rounds = b == nb ? o_.cold_rounds : o_.rounds;
        for (int round = 0; round < rounds && !bt.empty(); ++round) {
          bool improved = false;
          for (int f = 0; f < kF; ++f) {
            float best_step = 0.0f;
            for (float st : steps) {
              const double v = ndcg(bt, base, f, st);
              if (v > best + 1e-9) {
                best = v;
                best_step = st;
              }
            }
            if (best_step != 0.0f) {
              w[f] += best_step;
              improved = true;
              base_scores(bt, w, base);
            }
          }
          if (!improved) break;
        }
        train_ndcg_[static_cast<size_t>(b)] = best;
        // Score distribution on the bucket's tasks (support items left out),
        // for mapping cold scores onto the warm scale.
        double sum = 0, sq = 0, cnt = 0;
        for (const auto& t : bt) {
          std::vector<uint8_t> skip;
          if (t.candidates.empty()) {
            skip.assign(t.x.size() / kF, 0);
            for (ItemIndex sI : t.support) skip[static_cast<size_t>(sI)] = 1;
          }
          for (size_t r = 0; r * kF < t.x.size(); ++r) {
            if (!skip.empty() && skip[r]) continue;
            double y = 0;
            for (int f = 0; f < kF; ++f) y += w[f] * t.x[r * kF + static_cast<size_t>(f)];
            sum += y;
            sq += y * y;
            cnt += 1;
          }
        }
        if (cnt > 0) {
          const double m = sum / cnt, v = sq / cnt - m * m;
          calib_[2 * static_cast<size_t>(b)] = static_cast<float>(m);
          calib_[2 * static_cast<size_t>(b) + 1] = static_cast<float>(v > 1e-12 ? std::sqrt(v) : 1.0);
        }
      }
    }, 1);
    // The new-item prior's weight in a cold item's score: a grid on the
    // simulated cold-item tasks (a tie keeps the smaller weight, so 0 when
    // the prior does not help), then the cold score scale again.
    auto& ct = tasks[static_cast<size_t>(nb)];
    double without_prior = train_ndcg_[static_cast<size_t>(nb)];
    if (!ct.empty() && !cold_prior.empty()) {
      std::vector<std::vector<float>> base;
      base_scores(ct, weights_.data() + static_cast<size_t>(nb) * kF, base);
      double best = ndcg(ct, base, -1, 0.0f);
      without_prior = best;
      for (float beta : {0.05f, 0.1f, 0.2f, 0.3f, 0.5f, 0.75f, 1.0f, 1.5f, 2.0f, 3.0f}) {
        const double v = ndcg(ct, base, -1, beta);
        if (v > best + 1e-9) {
          best = v;
          prior_weight_ = beta;
        }
      }
      train_ndcg_[static_cast<size_t>(nb)] = best;
      double sum = 0, sq = 0, cnt = 0;
      for (size_t i = 0; i < ct.size(); ++i)
        for (size_t r = 0; r < base[i].size(); ++r) {
          const double y = base[i][r] + prior_weight_ * cold_prior[r];
          sum += y;
          sq += y * y;
          cnt += 1;
        }
      const double m = sum / cnt, v = sq / cnt - m * m;
      calib_[2 * static_cast<size_t>(nb)] = static_cast<float>(m);
      calib_[2 * static_cast<size_t>(nb) + 1] = static_cast<float>(v > 1e-12 ? std::sqrt(v) : 1.0);
    }
    monitor.info(fmt::format("meta_ranker: cold items: {} simulated tasks, NDCG@10 {:.4f} (content alone {:.4f}, "
                             "without the new-item prior {:.4f}); weights [{:.2f}], prior weight {:.2f}, score scale "
                             "{:.3f} +- {:.3f}",
                             ct.size(), train_ndcg_[static_cast<size_t>(nb)], start[static_cast<size_t>(nb)],
                             without_prior,
                             fmt::join(weights_.begin() + static_cast<std::ptrdiff_t>(nb) * kF, weights_.end(), ", "),
                             prior_weight_, calib_[2 * static_cast<size_t>(nb)], calib_[2 * static_cast<size_t>(nb) + 1]));
    for (int b = 0; b < nb; ++b) {
      const int lo = b == 0 ? 0 : o_.buckets[static_cast<size_t>(b) - 1];
      const std::string range = b + 1 < nb ? (o_.buckets[static_cast<size_t>(b)] - 1 == lo
                                                  ? std::to_string(lo)
                                                  : fmt::format("{}-{}", lo, o_.buckets[static_cast<size_t>(b)] - 1))
                                           : fmt::format("{}+", lo);
      monitor.info(fmt::format("meta_ranker: N = {}: {} simulated tasks, NDCG@10 {:.4f} (popularity alone {:.4f})",
                               range, tasks[static_cast<size_t>(b)].size(), train_ndcg_[static_cast<size_t>(b)],
                               start[static_cast<size_t>(b)]));
    }
  }

  MetaRankerOptions o_;
  std::vector<float> count_;        // users per item
  std::vector<int64_t> nb_off_;     // co-occurrence rows (CSR, sorted by item)
  std::vector<int32_t> nb_item_;
  std::vector<float> nb_count_;
  std::vector<int64_t> t_off_;      // per item: sorted first-event times of its users
  std::vector<int64_t> t_val_;
  std::vector<int32_t> p_val_;      // per item (offsets t_off_): sorted positions of those events in the users' histories
  int64_t t_max_ = kNoTime;
  hybrid::FeatureSpace space_;      // content (empty: no content signal)
  std::vector<float> idf_;          // per content feature
  std::vector<int64_t> bag_off_{0};
  std::vector<int32_t> bag_id_;
  std::vector<float> bag_w_;
  std::vector<int64_t> cn_off_;     // content neighbours (CSR; empty: none)
  std::vector<int32_t> cn_item_;
  std::vector<float> cn_sim_;
  std::vector<float> weights_;      // [(buckets + 1) x kF] over standardised signals; the last: cold items
  std::vector<float> calib_;        // per weight vector: mean and std of its scores on its simulated tasks
  std::vector<float> mean_, std_;   // standardisation of the signals
  std::vector<double> train_ndcg_;  // per bucket, on its simulated tasks
  std::vector<int32_t> own_pos_;    // training scratch
  std::vector<float> prior_w_;      // new-item prior: weights over the content features, bias last (empty: none)
  float prior_scale_[2] = {0.0f, 1.0f};  // mean and std of its predictions on the items it was fitted on
  float prior_weight_ = 0.0f;       // weight of the standardised prior in a cold item's score
  std::vector<float> prior_z_;      // per item: its standardised prior (derived from the above, not saved)
  std::vector<float> log_count_, neighbour_pop_;  // per item: signals 0 and 10 of a request (derived)
  std::vector<int64_t> post_off_;   // content postings: feature -> items (derived)
  std::vector<int32_t> post_item_;
  std::vector<float> post_w_;
};

std::unique_ptr<Model> create_meta_ranker(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = MetaRankerOptions::read(o);
  o.check_all_used();
  return std::make_unique<MetaRankerModel>(spec, options);
}

}  // namespace

std::vector<float> meta_ranker_task_signals(Model& model, const data::Dataset& train, data::UserIndex user,
                                            int n_support) {
  auto* m = dynamic_cast<MetaRankerModel*>(&model);
  FEWREC_CHECK(m != nullptr, kInvalidArgument, "meta_ranker_task_signals: model `{}` is not a meta_ranker", model.name());
  FEWREC_CHECK(user >= 0 && user < train.num_users() && n_support >= 0 && n_support <= train.history_size(user),
               kInvalidArgument, "meta_ranker_task_signals: bad user {} or support size {}", user, n_support);
  return m->task_signals(train, user, n_support);
}

std::vector<float> meta_ranker_context_signals(const Model& model, const data::UserContext& context) {
  const auto* m = dynamic_cast<const MetaRankerModel*>(&model);
  FEWREC_CHECK(m != nullptr, kInvalidArgument, "meta_ranker_context_signals: model `{}` is not a meta_ranker",
               model.name());
  return m->context_signals(context);
}

void register_meta_ranker(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{kName, {}});
  MetaRankerOptions::read(docs);
  registry.add(ModelInfo{
      .name = kName,
      .description = "few-shot ranker meta-trained on cold-start tasks simulated from the warm users: weights over "
                     "popularity (overall and when the user arrived), co-occurrence with the user's first items, "
                     "content similarity, item age and N, fitted per support size on the tasks' NDCG@10, learn when "
                     "to trust a new user's few events; new items are scored by content similarity plus a new-item "
                     "prior (the popularity their content predicts, learned on the newest items)",
      .options = docs.docs(),
      .create = create_meta_ranker,
      .load = MetaRankerModel::load,
  });
}

}  // namespace fewrec::models

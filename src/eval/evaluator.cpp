// Evaluation of a model on a split: full ranking (default) or sampled
// negatives, averaged over users (full) or (user, test item) pairs (sampled).
// Full ranking can be restricted to a candidate set (options.candidate_items;
// the cold-item protocol ranks among the split's held-out items): the ranking,
// the relevant items and the AUC pairs are then all taken inside that set.
//
// Ties. A model that gives equal scores must not gain from it, so ties are
// resolved against the relevant items everywhere a rank is computed:
//   - full ranking: among equal scores, non-relevant items are ranked before
//     relevant ones (then by lower item index), so a constant scorer gets no
//     hits from the item order of the catalogue;
//   - sampled: rank of the test item = #negatives with a higher score +
//     #negatives with an equal score.
// AUC follows its definition in metrics.h: tied (relevant, non-relevant)
// pairs count 1/2. NaN scores rank below every number.
//
// Determinism: every case draws its negatives from its own stream
// (core::derive_seed(options.seed, case index)) and results are summed in
// case order, so the numbers do not depend on the thread count.
#include "fewrec/eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/strings.h"
#include "fewrec/core/threads.h"
#include "fewrec/data/context.h"
#include "fewrec/data/sampler.h"
#include "fewrec/eval/metrics.h"

namespace fewrec::eval {

namespace {

using data::ItemIndex;

const std::vector<std::string>& candidate_kinds() {
  static const std::vector<std::string> kinds = {"full", "sampled", "cold_items"};
  return kinds;
}

const std::vector<std::string>& sampler_kinds() {
  static const std::vector<std::string> kinds = {"uniform", "popularity"};
  return kinds;
}

std::string hint(const std::string& word, const std::vector<std::string>& valid) {
  std::string close = core::closest_match(word, valid);
  return close.empty() ? std::string() : fmt::format(" (did you mean `{}`?)", close);
}

// Per-K metric names (every ranking metric except "auc").
bool is_per_k_metric(const std::string& name) {
  const auto& names = ranking_metric_names();
  return name != "auc" && std::find(names.begin(), names.end(), name) != names.end();
}

void validate(const EvalOptions& o) {
  FEWREC_CHECK(!o.ks.empty(), kInvalidArgument, "eval.k: at least one cut-off K is needed");
  for (int k : o.ks)
    FEWREC_CHECK(k > 0, kInvalidArgument, "eval.k: cut-offs must be positive, got {}", k);
  for (const auto& m : o.metrics) {
    if (m == "auc") continue;  // accepted: same as auc = true
    if (!is_per_k_metric(m))
      FEWREC_THROW(kInvalidArgument, "eval.metrics: unknown metric `{}`{}; valid: {}", m,
                   hint(m, ranking_metric_names()), core::join(ranking_metric_names(), ", "));
  }
  if (std::find(candidate_kinds().begin(), candidate_kinds().end(), o.candidates) ==
      candidate_kinds().end())
    FEWREC_THROW(kInvalidArgument, "eval.candidates: unknown value `{}`{}; valid: {}", o.candidates,
                 hint(o.candidates, candidate_kinds()), core::join(candidate_kinds(), ", "));
  if (std::find(sampler_kinds().begin(), sampler_kinds().end(), o.negative_sampler) ==
      sampler_kinds().end())
    FEWREC_THROW(kInvalidArgument, "eval.negative_sampler: unknown value `{}`{}; valid: {}",
                 o.negative_sampler, hint(o.negative_sampler, sampler_kinds()),
                 core::join(sampler_kinds(), ", "));
  FEWREC_CHECK(o.candidates != "sampled" || o.candidate_items.empty(), kInvalidArgument,
               "eval.candidates=sampled ranks against sampled negatives; a candidate item set ({} items) "
               "applies to full ranking only",
               o.candidate_items.size());
  FEWREC_CHECK(o.num_negatives > 0, kInvalidArgument,
               "eval.num_negatives must be positive, got {}", o.num_negatives);
  for (size_t i = 0; i < o.history_buckets.size(); ++i) {
    FEWREC_CHECK(o.history_buckets[i] > 0, kInvalidArgument,
                 "eval.history_buckets: edges must be positive, got {}", o.history_buckets[i]);
    FEWREC_CHECK(i == 0 || o.history_buckets[i] > o.history_buckets[i - 1], kInvalidArgument,
                 "eval.history_buckets: edges must be increasing, got {} after {}",
                 o.history_buckets[i], o.history_buckets[i - 1]);
  }
}

int to_int(int64_t v, std::string_view key) {
  FEWREC_CHECK(v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max(),
               kInvalidArgument, "{}: value {} out of range", key, v);
  return static_cast<int>(v);
}

std::vector<ItemIndex> set_union(std::span<const ItemIndex> a, std::span<const ItemIndex> b) {
  std::vector<ItemIndex> out;
  out.reserve(a.size() + b.size());
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::vector<ItemIndex> set_difference(std::span<const ItemIndex> a, std::span<const ItemIndex> b) {
  std::vector<ItemIndex> out;
  out.reserve(a.size());
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::vector<ItemIndex> set_intersection(std::span<const ItemIndex> a, std::span<const ItemIndex> b) {
  std::vector<ItemIndex> out;
  out.reserve(std::min(a.size(), b.size()));
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::vector<ItemIndex> sorted_unique(std::vector<ItemIndex> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Items of `user` in `ds`, tolerating an empty (default-constructed) dataset.
std::vector<ItemIndex> items_of(const data::Dataset& ds, data::UserIndex user) {
  if (ds.num_interactions() == 0 || user < 0 || user >= ds.num_users()) return {};
  return ds.item_set(user);
}

std::string history_bucket(size_t size, const std::vector<int>& edges) {
  if (size == 0) return "history:0";
  int64_t lo = 1;
  for (int e : edges) {
    if (static_cast<int64_t>(size) <= e)
      return lo == e ? fmt::format("history:{}", e) : fmt::format("history:{}-{}", lo, e);
    lo = static_cast<int64_t>(e) + 1;
  }
  return fmt::format("history:{}+", lo);
}

float score_key(float s) {
  return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s;
}

// Metric slots: "m@k" for every K and per-K metric, then "auc".
struct Slots {
  std::vector<std::string> names;
  std::vector<std::pair<std::string, int>> per_k;  // (metric, K) of slot i
  bool auc = false;
  int max_k = 0;
  explicit Slots(const EvalOptions& o) {
    std::vector<std::string> metrics;
    for (const auto& m : o.metrics)
      if (m != "auc" && std::find(metrics.begin(), metrics.end(), m) == metrics.end())
        metrics.push_back(m);
    std::vector<int> ks = o.ks;
    std::sort(ks.begin(), ks.end());
    ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
    for (int k : ks)
      for (const auto& m : metrics) {
        names.push_back(fmt::format("{}@{}", m, k));
        per_k.emplace_back(m, k);
      }
    auc = o.auc || std::find(o.metrics.begin(), o.metrics.end(), "auc") != o.metrics.end();
    if (auc) names.push_back("auc");
    max_k = ks.back();
  }
  size_t size() const { return names.size(); }

  // Adds the per-K metrics of one ranking (hits of the top max_k) to out.
  void add_ranking(std::span<const uint8_t> hits, int64_t num_relevant, double* out) const {
    for (size_t i = 0; i < per_k.size(); ++i) {
      const auto& [m, k] = per_k[i];
      double v = 0;
      if (m == "hr") v = hit_rate_at_k(hits, k);
      else if (m == "recall") v = recall_at_k(hits, num_relevant, k);
      else if (m == "precision") v = precision_at_k(hits, k);
      else if (m == "ndcg") v = ndcg_at_k(hits, num_relevant, k);
      else if (m == "mrr") v = mrr_at_k(hits, k);
      else if (m == "map") v = map_at_k(hits, num_relevant, k);
      out[i] += v;
    }
  }
};

// Per-worker buffers, reused across the cases a worker handles.
struct Workspace {
  std::vector<float> scores;
  std::vector<ItemIndex> candidates;
  std::vector<uint8_t> relevant;  // flag per item
  std::vector<float> negative_scores;
  std::vector<uint8_t> hits;
  std::vector<ItemIndex> items;
};

struct CaseOutcome {
  std::vector<double> sums;  // per slot, summed over the case's units
  int64_t units = 0;         // 1 (full) or number of (user, item) pairs (sampled); 0 = skipped
};

void check_items(std::span<const ItemIndex> items, int32_t n, const char* what) {
  for (ItemIndex i : items)
    FEWREC_CHECK(i >= 0 && i < n, kInvalidArgument,
                 "evaluation case has {} item {} outside the model's catalogue ({} items)", what, i,
                 n);
}

// Ranks `pool` (every item when empty) minus `exclude`; `relevant` must lie in it.
void eval_full(const models::Model& model, const models::UserState& state,
               std::span<const ItemIndex> relevant, std::span<const ItemIndex> exclude,
               std::span<const ItemIndex> pool, const Slots& slots, Workspace& ws,
               CaseOutcome& out) {
  const int32_t n = model.num_items();
  ws.scores.resize(static_cast<size_t>(n));
  model.score_all(state, ws.scores);
  ws.relevant.resize(static_cast<size_t>(n), 0);
  for (ItemIndex r : relevant) ws.relevant[r] = 1;

  ws.candidates.clear();
  if (pool.empty()) {
    size_t e = 0;
    for (ItemIndex i = 0; i < n; ++i) {
      while (e < exclude.size() && exclude[e] < i) ++e;
      if (e < exclude.size() && exclude[e] == i) continue;
      ws.candidates.push_back(i);
    }
  } else {
    std::set_difference(pool.begin(), pool.end(), exclude.begin(), exclude.end(),
                        std::back_inserter(ws.candidates));
  }
  const float* sc = ws.scores.data();
  const uint8_t* rel = ws.relevant.data();
  // Better-first order; ties go against relevant items (pessimistic), then lower index.
  auto better = [sc, rel](ItemIndex a, ItemIndex b) {
    const float sa = score_key(sc[a]), sb = score_key(sc[b]);
    if (sa != sb) return sa > sb;
    if (rel[a] != rel[b]) return rel[a] < rel[b];
    return a < b;
  };
  const size_t top = std::min(ws.candidates.size(), static_cast<size_t>(slots.max_k));
  std::partial_sort(ws.candidates.begin(), ws.candidates.begin() + static_cast<ptrdiff_t>(top),
                    ws.candidates.end(), better);
  ws.hits.assign(top, 0);
  for (size_t i = 0; i < top; ++i) ws.hits[i] = rel[ws.candidates[i]];
  slots.add_ranking(ws.hits, static_cast<int64_t>(relevant.size()), out.sums.data());

  if (slots.auc) {
    ws.negative_scores.clear();
    for (ItemIndex c : ws.candidates)
      if (!rel[c]) ws.negative_scores.push_back(score_key(sc[c]));
    std::sort(ws.negative_scores.begin(), ws.negative_scores.end());
    const double nneg = static_cast<double>(ws.negative_scores.size());
    double auc = 0;
    if (nneg > 0) {
      double correct = 0;
      for (ItemIndex r : relevant) {
        const float s = score_key(sc[r]);
        auto lo = std::lower_bound(ws.negative_scores.begin(), ws.negative_scores.end(), s);
        auto hi = std::upper_bound(lo, ws.negative_scores.end(), s);
        correct += static_cast<double>(lo - ws.negative_scores.begin()) +
                   0.5 * static_cast<double>(hi - lo);
      }
      auc = correct / (nneg * static_cast<double>(relevant.size()));
    }
    out.sums.back() += auc;
  }
  for (ItemIndex r : relevant) ws.relevant[r] = 0;
  out.units = 1;
}

void eval_sampled(const models::Model& model, const models::UserState& state,
                  std::span<const ItemIndex> relevant, std::span<const ItemIndex> forbidden,
                  const data::NegativeSampler& sampler, int num_negatives, core::Rng& rng,
                  const Slots& slots, Workspace& ws, CaseOutcome& out) {
  for (ItemIndex target : relevant) {
    auto negatives = sampler.sample_distinct(forbidden, num_negatives, rng);
    ws.items.clear();
    ws.items.push_back(target);
    ws.items.insert(ws.items.end(), negatives.begin(), negatives.end());
    check_items(ws.items, model.num_items(), "negative");
    ws.scores.resize(ws.items.size());
    model.score(state, ws.items, std::span<float>(ws.scores.data(), ws.items.size()));
    const float st = score_key(ws.scores[0]);
    int64_t greater = 0, ties = 0;
    for (size_t j = 1; j < ws.items.size(); ++j) {
      const float s = score_key(ws.scores[j]);
      if (s > st) ++greater;
      else if (s == st) ++ties;
    }
    const int64_t rank = greater + ties;  // ties count against the test item
    ws.hits.assign(static_cast<size_t>(slots.max_k), 0);
    if (rank < slots.max_k) ws.hits[static_cast<size_t>(rank)] = 1;
    slots.add_ranking(ws.hits, 1, out.sums.data());
    if (slots.auc) {
      const double nneg = static_cast<double>(negatives.size());
      out.sums.back() +=
          nneg > 0 ? (nneg - static_cast<double>(greater) - 0.5 * static_cast<double>(ties)) / nneg
                   : 0.0;
    }
    ++out.units;
  }
}

struct Accumulator {
  std::vector<double> sums;
  int64_t units = 0;
  int64_t users = 0;
  void add(const CaseOutcome& c) {
    if (sums.empty()) sums.assign(c.sums.size(), 0.0);
    for (size_t i = 0; i < sums.size(); ++i) sums[i] += c.sums[i];
    units += c.units;
    users += 1;
  }
  std::map<std::string, double> means(const Slots& slots) const {
    std::map<std::string, double> m;
    for (size_t i = 0; i < slots.size(); ++i)
      m[slots.names[i]] = units > 0 ? sums[i] / static_cast<double>(units) : 0.0;
    return m;
  }
};

std::string format_number(const nlohmann::json& v) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) return fmt::format("{}", v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

double json_number(const nlohmann::json& j, const char* key, double def) {
  if (j.is_object() && j.contains(key) && j[key].is_number()) return j[key].get<double>();
  return def;
}

// "random split 0.8 (seed 42)" from a split description.
std::string split_summary(const nlohmann::json& s) {
  if (!s.is_object() || !s.contains("kind")) return "";
  const std::string kind = format_number(s["kind"]);
  std::string seed = s.contains("seed") ? fmt::format(" (seed {})", format_number(s["seed"])) : "";
  if (kind == "cold_users") {
    std::string text = "cold_users split";
    if (s.contains("cold_user_fraction"))
      text += fmt::format(" {} of users", format_number(s["cold_user_fraction"]));
    if (s.contains("shots")) text += fmt::format(", {}-shot", format_number(s["shots"]));
    return text + seed;
  }
  if (kind == "cold_items") {
    std::string text = "cold_items split";
    if (s.contains("cold_item_fraction"))
      text += fmt::format(" {} of items", format_number(s["cold_item_fraction"]));
    if (s.contains("cold_items") && s["cold_items"].is_string())
      text += fmt::format(" ({})", s["cold_items"].get<std::string>());
    return text + seed;
  }
  if (kind == "leave_one_out") {
    bool valid = s.contains("loo_valid") && s["loo_valid"].is_boolean() && s["loo_valid"].get<bool>();
    return std::string("leave_one_out split") + (valid ? " (+valid)" : "") + seed;
  }
  std::string text = kind + " split";
  if (s.contains("train_fraction")) text += " " + format_number(s["train_fraction"]);
  if (json_number(s, "valid_fraction", 0) > 0)
    text += fmt::format(" (valid {})", format_number(s["valid_fraction"]));
  return text + seed;
}

std::string ks_text(const nlohmann::json& ks) {
  std::vector<std::string> parts;
  if (ks.is_array())
    for (const auto& k : ks) parts.push_back(format_number(k));
  return core::join(parts, ",");
}

// One-line protocol summary for tables.
std::string protocol_line(const nlohmann::json& p) {
  std::vector<std::string> parts;
  if (p.contains("split")) {
    std::string s = split_summary(p["split"]);
    if (!s.empty()) parts.push_back(s);
  }
  const std::string exclusions = p.value("exclusions", std::string("none"));
  const std::string candidates = p.value("candidates", std::string("full"));
  const std::string excl = exclusions == "none" ? "nothing excluded" : exclusions + " excluded";
  if (candidates == "sampled") {
    parts.push_back(fmt::format("sampled: each test item vs {} {} negatives the user never "
                                "interacted with, ties count against it",
                                p.value("num_negatives", 0),
                                p.value("negative_sampler", std::string("uniform"))));
  } else if (p.contains("num_candidates")) {
    parts.push_back(fmt::format("ranking among the {} {} items (of {}), {}", p.value("num_candidates", 0),
                                candidates == "cold_items" ? "held-out" : "candidate",
                                p.value("num_items", 0), excl));
  } else {
    parts.push_back(fmt::format("full ranking over {} items, {}", p.value("num_items", 0), excl));
  }
  std::string users = fmt::format("{} users", p.value("users", 0));
  if (p.contains("pairs")) users += fmt::format(" ({} pairs)", p.value("pairs", 0));
  parts.push_back(users);
  if (p.contains("ks")) parts.push_back("K=" + ks_text(p["ks"]));
  return "protocol: " + core::join(parts, " | ");
}

std::string pad_right(const std::string& s, size_t w) {
  return s.size() >= w ? s : s + std::string(w - s.size(), ' ');
}
std::string pad_left(const std::string& s, size_t w) {
  return s.size() >= w ? s : std::string(w - s.size(), ' ') + s;
}

}  // namespace

// ---- options -------------------------------------------------------------

EvalOptions EvalOptions::from_config(core::Config& config) {
  EvalOptions o;
  std::vector<int64_t> ks_def(o.ks.begin(), o.ks.end());
  o.ks.clear();
  for (int64_t k : config.get_int_list("eval.k", ks_def, "ranking cut-off K (an int or a list)"))
    o.ks.push_back(to_int(k, "eval.k"));
  o.metrics = config.get_list(
      "eval.metrics", o.metrics,
      "ranking metrics: " + core::join(ranking_metric_names(), ", ") + " (auc has no K)");
  o.auc = config.get_bool("eval.auc", o.auc, "also compute AUC over the full ranking (slower)");
  o.candidates = config.get_string("eval.candidates", o.candidates,
                                   "candidates: full (every item), sampled (test item vs "
                                   "sampled negatives) or cold_items (rank among the split's "
                                   "held-out items; needs split.kind=cold_items)");
  o.num_negatives = to_int(config.get_int("eval.num_negatives", o.num_negatives,
                                          "sampled candidates: negatives per test item"),
                           "eval.num_negatives");
  o.negative_sampler = config.get_string("eval.negative_sampler", o.negative_sampler,
                                         "sampled candidates: uniform or popularity negatives");
  o.exclude_train = config.get_bool("eval.exclude_train", o.exclude_train,
                                    "exclude the user's train/valid/support items from the ranking");
  o.groups = config.get_bool("eval.groups", o.groups,
                             "report metrics by history length and user kind");
  std::vector<int64_t> b_def(o.history_buckets.begin(), o.history_buckets.end());
  o.history_buckets.clear();
  for (int64_t b : config.get_int_list("eval.history_buckets", b_def,
                                       "history-length bucket edges for the group breakdown"))
    o.history_buckets.push_back(to_int(b, "eval.history_buckets"));
  o.threads = to_int(config.get_int("eval.threads", o.threads, "evaluation threads (0 = all cores)"),
                     "eval.threads");
  o.seed = static_cast<uint64_t>(
      config.get_int("eval.seed", static_cast<int64_t>(o.seed), "seed of the negative sampling"));
  validate(o);
  return o;
}

// ---- cases ---------------------------------------------------------------

std::vector<EvalCase> make_cases(const data::Split& split, bool exclude_train) {
  std::vector<EvalCase> cases;
  const data::Dataset& test = split.test;
  if (test.num_interactions() == 0) return cases;
  const auto kind = split.options.kind;
  for (data::UserIndex u = 0; u < test.num_users(); ++u) {
    if (test.history_size(u) == 0) continue;
    EvalCase c;
    std::vector<ItemIndex> known;  // items the context already holds
    if (kind == data::SplitKind::kColdUsers) {
      // A new user: only the revealed support rows and the feature row.
      if (split.support.num_interactions() > 0 && u < split.support.num_users()) {
        c.context = data::context_from_dataset(split.support, u, /*known=*/false);
      } else {
        c.context.features = data::user_features_of(test.catalogue(), u);
      }
      known = items_of(split.support, u);
      // Hidden rows (a fixed query): known to the user, not to the model.
      if (split.hidden.num_interactions() > 0) known = set_union(known, items_of(split.hidden, u));
      c.group = "cold_user";
    } else {
      c.context = data::context_from_dataset(split.train, u, /*known=*/true);
      known = set_union(items_of(split.train, u), items_of(split.valid, u));
      if (kind == data::SplitKind::kColdItems) c.group = "cold_items";
    }
    if (exclude_train) c.exclude = std::move(known);
    // An excluded item cannot be ranked, so it does not count as relevant.
    c.relevant = set_difference(test.item_set(u), c.exclude);
    if (c.relevant.empty()) continue;
    cases.push_back(std::move(c));
  }
  return cases;
}

// ---- evaluate ------------------------------------------------------------

EvalResult evaluate(const models::Model& model, const std::vector<EvalCase>& cases,
                    const data::Dataset& train, const EvalOptions& options,
                    core::Monitor& monitor) {
  validate(options);
  const auto t0 = std::chrono::steady_clock::now();
  const Slots slots(options);
  const bool sampled = options.candidates == "sampled";
  const int32_t n = model.num_items();
  // Full ranking among these items only (empty = every item).
  const std::vector<ItemIndex> pool = sorted_unique(options.candidate_items);
  const bool restricted = !pool.empty();
  FEWREC_CHECK(options.candidates != "cold_items" || restricted, kInvalidArgument,
               "eval.candidates=cold_items needs the held-out items as candidate_items "
               "(evaluate_split takes them from a split.kind=cold_items split)");
  for (ItemIndex i : pool)
    FEWREC_CHECK(i >= 0 && i < n, kInvalidArgument,
                 "candidate item {} is outside the model's catalogue ({} items)", i, n);
  std::optional<data::NegativeSampler> sampler;
  if (sampled) sampler.emplace(train, data::parse_negative_kind(options.negative_sampler));

  const int threads = core::resolve_threads(options.threads);
  std::vector<Workspace> workspaces(static_cast<size_t>(threads));
  std::vector<CaseOutcome> outcomes(cases.size());
  {
    core::ProgressScope progress(monitor, "evaluate", static_cast<int64_t>(cases.size()));
    core::parallel_for(
        0, static_cast<int64_t>(cases.size()), threads,
        [&](int64_t begin, int64_t end, int worker) {
          Workspace& ws = workspaces[static_cast<size_t>(worker)];
          for (int64_t ci = begin; ci < end; ++ci) {
            const EvalCase& c = cases[static_cast<size_t>(ci)];
            CaseOutcome& out = outcomes[static_cast<size_t>(ci)];
            out.sums.assign(slots.size(), 0.0);
            const std::vector<ItemIndex> relevant = sorted_unique(c.relevant);
            const std::vector<ItemIndex> exclude = sorted_unique(c.exclude);
            // Relevant items that are excluded cannot be ranked: not counted.
            std::vector<ItemIndex> targets =
                options.exclude_train ? set_difference(relevant, exclude) : relevant;
            // Nor can relevant items outside the candidate set.
            if (restricted && !targets.empty()) {
              check_items(targets, n, "relevant");
              targets = set_intersection(targets, pool);
            }
            if (targets.empty()) {
              progress.advance();
              continue;
            }
            check_items(targets, n, "relevant");
            check_items(exclude, n, "excluded");
            auto state = model.adapt(c.context);
            if (sampled) {
              core::Rng rng(core::derive_seed(options.seed, static_cast<uint64_t>(ci)));
              // Negatives are never relevant or known to the user (excluded
              // items and the context's history, even with exclude_train off).
              const auto forbidden = set_union(set_union(relevant, exclude),
                                               sorted_unique(c.context.history_items()));
              eval_sampled(model, *state, targets, forbidden, *sampler, options.num_negatives,
                           rng, slots, ws, out);
            } else {
              const std::span<const ItemIndex> excl =
                  options.exclude_train ? std::span<const ItemIndex>(exclude)
                                        : std::span<const ItemIndex>();
              eval_full(model, *state, targets, excl, pool, slots, ws, out);
            }
            progress.advance();
          }
        },
        /*grain=*/8);
  }

  // Aggregate in case order (deterministic whatever the thread count).
  Accumulator total;
  std::map<std::string, Accumulator> groups;
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const CaseOutcome& o = outcomes[ci];
    if (o.units == 0) continue;
    total.add(o);
    if (!options.groups) continue;
    if (!options.history_buckets.empty())
      groups[history_bucket(cases[ci].context.history.size(), options.history_buckets)].add(o);
    if (!cases[ci].group.empty()) groups[cases[ci].group].add(o);
  }

  EvalResult r;
  r.num_users = total.users;
  r.metrics = total.means(slots);
  for (const auto& [name, acc] : groups) {
    auto m = acc.means(slots);
    m["users"] = static_cast<double>(acc.users);
    if (sampled) m["pairs"] = static_cast<double>(acc.units);
    r.groups[name] = std::move(m);
  }
  nlohmann::json p;
  p["candidates"] = options.candidates;
  if (sampled) {
    p["num_negatives"] = options.num_negatives;
    p["negative_sampler"] = options.negative_sampler;
    p["negatives_exclude"] = "the user's test items, context history and excluded items";
    p["ties"] = "count against the test item: rank = #negatives scored higher + #negatives tied";
    p["averaging"] = "(user, test item) pairs";
    p["pairs"] = total.units;
  } else {
    p["num_items"] = n;
    if (restricted) {
      p["num_candidates"] = pool.size();
      p["candidate_items"] = options.candidates == "cold_items"
                                 ? "the split's held-out (cold) items only"
                                 : "a given subset of the catalogue only";
    }
    p["ties"] = "non-relevant items rank first among equal scores (pessimistic)";
    p["averaging"] = "users";
  }
  p["exclusions"] = options.exclude_train ? "context items" : "none";
  std::vector<int> ks = options.ks;
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  p["ks"] = ks;
  std::vector<std::string> metric_names;
  for (const auto& [m, k] : slots.per_k)
    if (std::find(metric_names.begin(), metric_names.end(), m) == metric_names.end())
      metric_names.push_back(m);
  if (slots.auc) metric_names.push_back("auc");
  p["metrics"] = metric_names;
  if (slots.auc) p["auc_ties"] = "tied pairs count 1/2";
  p["users"] = total.users;
  r.protocol = std::move(p);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

EvalResult evaluate_split(const models::Model& model, const data::Split& split,
                          const EvalOptions& options, core::Monitor& monitor) {
  EvalOptions eval_options = options;
  if (options.candidates == "cold_items") {
    if (split.cold_items.empty()) {
      if (split.options.kind != data::SplitKind::kColdItems)
        FEWREC_THROW(kInvalidArgument,
                     "eval.candidates=cold_items needs split.kind=cold_items (split.kind={} holds out "
                     "no items)",
                     data::split_kind_name(split.options.kind));
      FEWREC_THROW(kInvalidArgument,
                   "eval.candidates=cold_items: the cold_items split holds out no items (no "
                   "interactions?)");
    }
    eval_options.candidate_items = split.cold_items;
  }
  auto cases = make_cases(split, options.exclude_train);
  auto r = evaluate(model, cases, split.train, eval_options, monitor);
  nlohmann::json desc = split.describe();
  if (!desc.is_object()) desc = nlohmann::json::object();
  // Make sure the description names the options the protocol line needs.
  nlohmann::json opts = split.options.to_json();
  if (opts.is_object())
    for (auto it = opts.begin(); it != opts.end(); ++it)
      if (!desc.contains(it.key())) desc[it.key()] = it.value();
  if (!desc.contains("kind")) desc["kind"] = data::split_kind_name(split.options.kind);
  r.protocol["split"] = std::move(desc);
  if (options.exclude_train) {
    if (split.options.kind == data::SplitKind::kColdUsers)
      r.protocol["exclusions"] = split.hidden.num_interactions() > 0 ? "support and hidden items" : "support items";
    else if (split.valid.num_interactions() > 0)
      r.protocol["exclusions"] = "train+valid items";
    else
      r.protocol["exclusions"] = "train items";
  }
  return r;
}

// ---- output --------------------------------------------------------------

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j;
  j["protocol"] = protocol;
  j["metrics"] = metrics;
  j["groups"] = nlohmann::json::object();
  for (const auto& [name, m] : groups) j["groups"][name] = m;
  j["users"] = num_users;
  j["seconds"] = seconds;
  return j;
}

std::string EvalResult::table(const std::string& title) const {
  std::string out;
  if (!title.empty()) out += "== " + title + " ==\n";
  out += protocol_line(protocol) + "\n";
  // Rows: metrics; columns: K (auc has a single value).
  std::vector<int> ks;
  std::vector<std::string> rows;
  bool has_auc = false;
  for (const auto& [name, v] : metrics) {
    auto at = name.find('@');
    if (at == std::string::npos) {
      if (name == "auc") has_auc = true;
      continue;
    }
    auto k = core::parse_int(std::string_view(name).substr(at + 1));
    if (k && std::find(ks.begin(), ks.end(), *k) == ks.end()) ks.push_back(static_cast<int>(*k));
    std::string m = name.substr(0, at);
    if (std::find(rows.begin(), rows.end(), m) == rows.end()) rows.push_back(m);
  }
  std::sort(ks.begin(), ks.end());
  // Keep the canonical metric order.
  std::vector<std::string> ordered;
  for (const auto& m : ranking_metric_names())
    if (std::find(rows.begin(), rows.end(), m) != rows.end()) ordered.push_back(m);
  if (has_auc) ordered.push_back("auc");
  size_t w0 = 9;
  for (const auto& m : ordered) w0 = std::max(w0, m.size());
  const size_t w = 8;
  out += pad_right("metric", w0);
  if (ks.empty() && has_auc) out += pad_left("value", w + 2);
  for (int k : ks) out += pad_left(fmt::format("@{}", k), w + 2);
  out += "\n";
  for (const auto& m : ordered) {
    out += pad_right(m, w0);
    if (m == "auc") {
      out += pad_left(fmt::format("{:.4f}", metrics.at("auc")), w + 2);
    } else {
      for (int k : ks) {
        auto it = metrics.find(fmt::format("{}@{}", m, k));
        out += pad_left(it == metrics.end() ? "-" : fmt::format("{:.4f}", it->second), w + 2);
      }
    }
    out += "\n";
  }
  return out;
}

std::string comparison_table(const std::vector<std::pair<std::string, EvalResult>>& results,
                             const std::vector<std::string>& columns) {
  std::string out;
  // The protocol line once when every result shares it, else one per model below.
  std::vector<std::string> lines;
  for (const auto& [name, r] : results) lines.push_back(protocol_line(r.protocol));
  const bool same = std::all_of(lines.begin(), lines.end(),
                                [&](const std::string& l) { return l == lines.front(); });
  if (!lines.empty() && same) out += lines.front() + "\n";

  size_t w0 = 5;
  for (const auto& [name, r] : results) w0 = std::max(w0, name.size());
  std::vector<size_t> widths;
  for (const auto& c : columns) widths.push_back(std::max<size_t>(c.size(), 6));
  out += pad_right("model", w0);
  for (size_t i = 0; i < columns.size(); ++i) out += "  " + pad_left(columns[i], widths[i]);
  out += "\n";
  for (const auto& [name, r] : results) {
    out += pad_right(name, w0);
    for (size_t i = 0; i < columns.size(); ++i) {
      std::string cell = "-";
      if (auto it = r.metrics.find(columns[i]); it != r.metrics.end())
        cell = fmt::format("{:.4f}", it->second);
      else if (columns[i] == "users")
        cell = std::to_string(r.num_users);
      else if (columns[i] == "seconds")
        cell = fmt::format("{:.2f}", r.seconds);
      out += "  " + pad_left(cell, widths[i]);
    }
    out += "\n";
  }
  if (!same)
    for (size_t i = 0; i < results.size(); ++i)
      out += results[i].first + ": " + lines[i] + "\n";
  return out;
}

}  // namespace fewrec::eval

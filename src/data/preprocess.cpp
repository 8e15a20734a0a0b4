#include "fewrec/data/preprocess.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"

namespace fewrec::data {

namespace {

DedupeKeep parse_dedupe_keep(std::string_view name) {
  if (name == "last") return DedupeKeep::kLast;
  if (name == "first") return DedupeKeep::kFirst;
  if (name == "max") return DedupeKeep::kMax;
  if (name == "sum") return DedupeKeep::kSum;
  FEWREC_THROW(kInvalidArgument, "unknown dedupe policy `{}` for data.dedupe_keep; valid: last, first, max, sum",
               name);
}

int check_min_count(int64_t v, std::string_view key) {
  FEWREC_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), kInvalidArgument,
               "{} must be >= 0, got {}", key, v);
  return static_cast<int>(v);
}

}  // namespace

Dataset dedupe(const Dataset& ds, DedupeKeep keep) {
  const auto offsets = ds.user_offsets();
  const auto items = ds.item_column();
  const auto values = ds.value_column();

  // For each (user, item) group pick a representative row (its position in
  // CSR order); kSum also replaces the value.
  std::vector<int64_t> reps;
  std::vector<float> sums;  // kSum: value per representative
  std::vector<int64_t> pos;
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    const int64_t b = offsets[u], e = offsets[u + 1];
    if (e == b) continue;
    pos.resize(static_cast<size_t>(e - b));
    std::iota(pos.begin(), pos.end(), b);
    // Stable by position inside an item: positions are time-ordered (ties in input order).
    std::stable_sort(pos.begin(), pos.end(), [&](int64_t x, int64_t y) { return items[x] < items[y]; });
    for (size_t g = 0; g < pos.size();) {
      size_t h = g;
      while (h < pos.size() && items[pos[h]] == items[pos[g]]) ++h;
      int64_t rep = pos[g];
      float sum = 0;
      switch (keep) {
        case DedupeKeep::kFirst: rep = pos[g]; break;
        case DedupeKeep::kLast: rep = pos[h - 1]; break;
        case DedupeKeep::kMax:
          // Largest value; among equal values the latest row.
          for (size_t k = g; k < h; ++k)
            if (values[pos[k]] >= values[rep]) rep = pos[k];
          break;
        case DedupeKeep::kSum:
          rep = pos[h - 1];
          for (size_t k = g; k < h; ++k) sum += values[pos[k]];
          break;
      }
      reps.push_back(rep);
      if (keep == DedupeKeep::kSum) sums.push_back(sum);
      g = h;
    }
  }
  // Emit in CSR order so that timestamp ties keep their relative order.
  std::vector<size_t> order(reps.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return reps[a] < reps[b]; });
  std::vector<Interaction> out;
  out.reserve(reps.size());
  for (size_t k : order) {
    Interaction r = ds.row(reps[k]);
    if (keep == DedupeKeep::kSum) r.value = sums[k];
    out.push_back(r);
  }
  return Dataset(ds.catalogue_ptr(), std::move(out), ds.name());
}

Dataset to_implicit(const Dataset& ds, float threshold) {
  if (std::isnan(threshold)) return ds.filter([](const Interaction&) { return true; });
  return ds.filter([threshold](const Interaction& r) { return r.value >= threshold; });
}

Dataset k_core(const Dataset& ds, int min_user, int min_item) {
  FEWREC_CHECK(min_user >= 0 && min_item >= 0, kInvalidArgument,
               "k-core thresholds must be >= 0, got users {} / items {}", min_user, min_item);
  const int64_t n = ds.num_interactions();
  const auto nu = static_cast<size_t>(ds.num_users());
  const auto ni = static_cast<size_t>(ds.num_items());
  const auto offsets = ds.user_offsets();
  const auto items = ds.item_column();

  std::vector<int64_t> ucount(nu, 0), icount(ni, 0);
  for (size_t u = 0; u < nu; ++u) ucount[u] = offsets[u + 1] - offsets[u];
  for (auto it : items) ++icount[static_cast<size_t>(it)];
  // Rows of each item (CSC positions).
  std::vector<int64_t> ioff(ni + 1, 0);
  for (auto it : items) ++ioff[static_cast<size_t>(it) + 1];
  for (size_t i = 0; i < ni; ++i) ioff[i + 1] += ioff[i];
  std::vector<int64_t> irows(static_cast<size_t>(n));
  {
    std::vector<int64_t> cur(ioff.begin(), ioff.end() - 1);
    for (int64_t r = 0; r < n; ++r) irows[static_cast<size_t>(cur[static_cast<size_t>(items[r])]++)] = r;
  }
  std::vector<UserIndex> row_user(static_cast<size_t>(n));
  for (size_t u = 0; u < nu; ++u)
    for (int64_t r = offsets[u]; r < offsets[u + 1]; ++r) row_user[static_cast<size_t>(r)] = static_cast<UserIndex>(u);

  std::vector<char> alive(static_cast<size_t>(n), 1);
  std::vector<char> user_dead(nu, 0), item_dead(ni, 0);
  // Queue of entities to drop: users encoded as u, items as nu + i.
  std::vector<size_t> queue;
  for (size_t u = 0; u < nu; ++u)
    if (ucount[u] > 0 && ucount[u] < min_user) { user_dead[u] = 1; queue.push_back(u); }
  for (size_t i = 0; i < ni; ++i)
    if (icount[i] > 0 && icount[i] < min_item) { item_dead[i] = 1; queue.push_back(nu + i); }
  while (!queue.empty()) {
    size_t x = queue.back();
    queue.pop_back();
    if (x < nu) {
      for (int64_t r = offsets[x]; r < offsets[x + 1]; ++r) {
        if (!alive[static_cast<size_t>(r)]) continue;
        alive[static_cast<size_t>(r)] = 0;
        auto i = static_cast<size_t>(items[r]);
        if (--icount[i] < min_item && !item_dead[i]) { item_dead[i] = 1; queue.push_back(nu + i); }
      }
      ucount[x] = 0;
    } else {
      size_t i = x - nu;
      for (int64_t k = ioff[i]; k < ioff[i + 1]; ++k) {
        auto r = static_cast<size_t>(irows[static_cast<size_t>(k)]);
        if (!alive[r]) continue;
        alive[r] = 0;
        auto u = static_cast<size_t>(row_user[r]);
        if (--ucount[u] < min_user && !user_dead[u]) { user_dead[u] = 1; queue.push_back(u); }
      }
      icount[i] = 0;
    }
  }
  std::vector<Interaction> out;
  for (int64_t r = 0; r < n; ++r)
    if (alive[static_cast<size_t>(r)]) out.push_back(Interaction{row_user[static_cast<size_t>(r)], items[r],
                                                                 ds.timestamp_column()[r], ds.value_column()[r],
                                                                 ds.event_column()[r], ds.weight_column()[r]});
  return Dataset(ds.catalogue_ptr(), std::move(out), ds.name());
}

Dataset compact(const Dataset& ds) {
  const auto& cat = ds.catalogue();
  std::vector<int32_t> user_map(static_cast<size_t>(ds.num_users()), -1);
  std::vector<int32_t> item_map(static_cast<size_t>(ds.num_items()), -1);
  std::vector<int32_t> kept_users, kept_items;
  auto c = std::make_shared<Catalogue>();
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    if (ds.history_size(u) == 0) continue;
    user_map[static_cast<size_t>(u)] = c->users.add(cat.users.id(u));
    kept_users.push_back(u);
  }
  const auto counts = ds.item_counts();
  for (ItemIndex i = 0; i < ds.num_items(); ++i) {
    if (counts[static_cast<size_t>(i)] == 0) continue;
    item_map[static_cast<size_t>(i)] = c->items.add(cat.items.id(i));
    kept_items.push_back(i);
  }
  c->event_types = cat.event_types;
  c->user_features = cat.user_features.select_rows(kept_users);
  c->item_features = cat.item_features.select_rows(kept_items);
  std::vector<Interaction> rows = ds.rows();
  for (auto& r : rows) {
    r.user = user_map[static_cast<size_t>(r.user)];
    r.item = item_map[static_cast<size_t>(r.item)];
  }
  return Dataset(std::move(c), std::move(rows), ds.name());
}

PreprocessOptions PreprocessOptions::from_config(core::Config& config) {
  PreprocessOptions o;
  o.dedupe = config.get_bool("data.dedupe", true, "keep one interaction per (user, item)");
  o.dedupe_keep = config.get_string("data.dedupe_keep", "last",
                                    "which duplicate to keep: last | first | max | sum");
  parse_dedupe_keep(o.dedupe_keep);  // validate early
  const bool present = config.has("data.positive_threshold");
  o.positive_threshold = config.get_double(
      "data.positive_threshold", 0.0,
      "keep interactions with value >= this (implicit feedback); absent = keep every row");
  o.has_threshold = present && !std::isnan(o.positive_threshold);
  o.labels = config.get_string("data.labels", "threshold",
                               "which pairs are positives: threshold (data.positive_threshold) | model (the "
                               "label model, data.label_model.*)");
  o.label_model = LabelModelOptions::from_config(config);
  // Contradictions are judged on values, not on presence: a saved model's
  // effective config lists every key with its default.
  if (o.labels == "model") {
    if (o.has_threshold && o.positive_threshold != 0.0)
      FEWREC_THROW(kInvalidArgument,
                   "config key `data.positive_threshold` contradicts `data.labels = \"model\"` (the label model "
                   "decides the positives); remove one of them");
    if (config.has("data.dedupe") && !o.dedupe)
      FEWREC_THROW(kInvalidArgument,
                   "config key `data.dedupe = false` contradicts `data.labels = \"model\"` (the label model keeps "
                   "one row per (user, item) pair); remove one of them");
    if (o.label_model.target.empty())
      FEWREC_THROW(kInvalidArgument,
                   "`data.labels = \"model\"` needs `data.label_model.target` (event:NAME | NAME:value>=T | "
                   "value>=T)");
  } else if (o.labels == "threshold") {
    const LabelModelOptions def;
    const std::pair<const char*, bool> changed[] = {
        {"data.label_model.target", !o.label_model.target.empty()},
        {"data.label_model.threshold", o.label_model.threshold != def.threshold},
        {"data.label_model.l2", o.label_model.l2 != def.l2},
        {"data.label_model.trust_observed", o.label_model.trust_observed != def.trust_observed}};
    for (const auto& [key, set] : changed)
      if (set)
        FEWREC_THROW(kInvalidArgument,
                     "config key `{}` is set but `data.labels = \"threshold\"`; set data.labels = \"model\" to "
                     "use the label model",
                     key);
  } else {
    FEWREC_THROW(kInvalidArgument, "config key `data.labels`: unknown value `{}`; expected threshold or model",
                 o.labels);
  }
  o.min_user_interactions = check_min_count(
      config.get_int("data.min_user_interactions", 0, "k-core: drop users with fewer interactions (0 = off)"),
      "data.min_user_interactions");
  o.min_item_interactions = check_min_count(
      config.get_int("data.min_item_interactions", 0, "k-core: drop items with fewer interactions (0 = off)"),
      "data.min_item_interactions");
  return o;
}

Dataset preprocess(const Dataset& ds, const PreprocessOptions& options, LabelReport* labels) {
  const DedupeKeep keep = parse_dedupe_keep(options.dedupe_keep);
  FEWREC_CHECK(options.min_user_interactions >= 0 && options.min_item_interactions >= 0,
               kInvalidArgument, "k-core thresholds must be >= 0, got users {} / items {}",
               options.min_user_interactions, options.min_item_interactions);
  Dataset out;
  if (options.labels == "model") {
    out = apply_label_model(ds, options.label_model, keep, labels);
  } else {
    FEWREC_CHECK(options.labels == "threshold", kInvalidArgument,
                 "unknown data.labels `{}`; expected threshold or model", options.labels);
    out = options.dedupe ? dedupe(ds, keep) : ds;
    if (options.has_threshold && !std::isnan(options.positive_threshold))
      out = to_implicit(out, static_cast<float>(options.positive_threshold));
  }
  if (options.min_user_interactions > 0 || options.min_item_interactions > 0)
    out = k_core(out, options.min_user_interactions, options.min_item_interactions);
  return out;
}

}  // namespace fewrec::data

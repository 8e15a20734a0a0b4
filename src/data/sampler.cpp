#include "fewrec/data/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "fewrec/core/error.h"

namespace fewrec::data {

namespace {

// Distinct excluded items inside [0, n) (exclude is sorted ascending).
int64_t count_excluded(std::span<const ItemIndex> exclude, int32_t n) {
  int64_t c = 0;
  for (size_t k = 0; k < exclude.size(); ++k) {
    if (exclude[k] < 0 || exclude[k] >= n) continue;
    if (k > 0 && exclude[k] == exclude[k - 1]) continue;
    ++c;
  }
  return c;
}

bool excluded(std::span<const ItemIndex> exclude, ItemIndex i) {
  return std::binary_search(exclude.begin(), exclude.end(), i);
}

// Above this share of the catalogue (or of the popularity mass) excluded,
// rejection sampling is replaced by enumerating the admissible items.
constexpr double kEnumerateShare = 0.9;
// Safety bound on rejected draws before enumerating anyway.
constexpr int kMaxRejections = 256;

}  // namespace

NegativeKind parse_negative_kind(std::string_view name) {
  if (name == "uniform") return NegativeKind::kUniform;
  if (name == "popularity") return NegativeKind::kPopularity;
  FEWREC_THROW(kInvalidArgument, "unknown negative sampler `{}`; valid: uniform, popularity", name);
}

NegativeSampler::NegativeSampler(const Dataset& train, NegativeKind kind)
    : kind_(kind), num_items_(train.num_items()) {
  if (kind_ != NegativeKind::kPopularity || num_items_ == 0) return;
  const auto n = static_cast<size_t>(num_items_);
  const auto counts = train.item_counts();
  // cdf_[i] = total weight of items 0..i (count + 1 smoothing).
  cdf_.resize(n);
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    total += static_cast<double>(counts[i]) + 1.0;
    cdf_[i] = total;
  }
  // Vose's alias method.
  prob_.assign(n, 0.0);
  alias_.assign(n, 0);
  std::vector<double> scaled(n);
  std::vector<int32_t> small, large;
  for (size_t i = 0; i < n; ++i) {
    scaled[i] = (static_cast<double>(counts[i]) + 1.0) * static_cast<double>(n) / total;
    (scaled[i] < 1.0 ? small : large).push_back(static_cast<int32_t>(i));
  }
  while (!small.empty() && !large.empty()) {
    int32_t s = small.back(), l = large.back();
    small.pop_back();
    prob_[static_cast<size_t>(s)] = scaled[static_cast<size_t>(s)];
    alias_[static_cast<size_t>(s)] = l;
    scaled[static_cast<size_t>(l)] -= 1.0 - scaled[static_cast<size_t>(s)];
    if (scaled[static_cast<size_t>(l)] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  for (auto i : large) { prob_[static_cast<size_t>(i)] = 1.0; alias_[static_cast<size_t>(i)] = i; }
  for (auto i : small) { prob_[static_cast<size_t>(i)] = 1.0; alias_[static_cast<size_t>(i)] = i; }
}

ItemIndex NegativeSampler::draw(core::Rng& rng) const {
  auto i = static_cast<ItemIndex>(core::uniform_index(rng, static_cast<uint64_t>(num_items_)));
  if (kind_ == NegativeKind::kUniform) return i;
  return core::uniform01(rng) < prob_[static_cast<size_t>(i)] ? i : alias_[static_cast<size_t>(i)];
}

ItemIndex NegativeSampler::sample(std::span<const ItemIndex> exclude, core::Rng& rng) const {
  const int64_t n_excluded = count_excluded(exclude, num_items_);
  FEWREC_CHECK(n_excluded < num_items_, kInvalidArgument,
               "cannot sample a negative item: all {} items are excluded", num_items_);
  auto weight = [&](ItemIndex i) {
    auto k = static_cast<size_t>(i);
    return k == 0 ? cdf_[0] : cdf_[k] - cdf_[k - 1];
  };
  bool enumerate = static_cast<double>(n_excluded) >= kEnumerateShare * num_items_;
  if (!enumerate && kind_ == NegativeKind::kPopularity) {
    double mass = 0;
    for (size_t k = 0; k < exclude.size(); ++k)
      if (exclude[k] >= 0 && exclude[k] < num_items_ && (k == 0 || exclude[k] != exclude[k - 1]))
        mass += weight(exclude[k]);
    enumerate = mass >= kEnumerateShare * cdf_.back();
  }
  if (!enumerate) {
    for (int t = 0; t < kMaxRejections; ++t) {
      ItemIndex i = draw(rng);
      if (!excluded(exclude, i)) return i;
    }
  }
  // Enumerate the admissible items and draw among them.
  std::vector<ItemIndex> items;
  items.reserve(static_cast<size_t>(num_items_ - n_excluded));
  for (ItemIndex i = 0; i < num_items_; ++i)
    if (!excluded(exclude, i)) items.push_back(i);
  if (kind_ == NegativeKind::kUniform)
    return items[static_cast<size_t>(core::uniform_index(rng, items.size()))];
  double total = 0;
  for (auto i : items) total += weight(i);
  double x = core::uniform01(rng) * total;
  for (auto i : items) {
    x -= weight(i);
    if (x < 0) return i;
  }
  return items.back();
}

std::vector<ItemIndex> NegativeSampler::sample_distinct(std::span<const ItemIndex> exclude, int n,
                                                        core::Rng& rng) const {
  FEWREC_CHECK(n >= 0, kInvalidArgument, "number of negatives must be >= 0, got {}", n);
  const int64_t n_excluded = count_excluded(exclude, num_items_);
  const int64_t admissible = num_items_ - n_excluded;
  std::vector<ItemIndex> out;
  if (n == 0 || admissible == 0) return out;
  auto weight = [&](ItemIndex i) {
    auto k = static_cast<size_t>(i);
    return k == 0 ? cdf_[0] : cdf_[k] - cdf_[k - 1];
  };
  if (admissible <= n) {
    for (ItemIndex i = 0; i < num_items_; ++i)
      if (!excluded(exclude, i)) out.push_back(i);
    return out;
  }
  // Rejection while exclude + picks stay a small share of the catalogue.
  bool enumerate = static_cast<double>(n_excluded + n) >= kEnumerateShare * num_items_;
  if (!enumerate && kind_ == NegativeKind::kPopularity) {
    double mass = 0;
    for (size_t k = 0; k < exclude.size(); ++k)
      if (exclude[k] >= 0 && exclude[k] < num_items_ && (k == 0 || exclude[k] != exclude[k - 1]))
        mass += weight(exclude[k]);
    enumerate = mass >= kEnumerateShare * cdf_.back();
  }
  if (!enumerate) {
    std::unordered_set<ItemIndex> chosen;
    chosen.reserve(static_cast<size_t>(n) * 2);
    int64_t budget = static_cast<int64_t>(n) * 32 + kMaxRejections;
    while (static_cast<int>(out.size()) < n && budget-- > 0) {
      ItemIndex i = draw(rng);
      if (excluded(exclude, i) || !chosen.insert(i).second) continue;
      out.push_back(i);
    }
    if (static_cast<int>(out.size()) == n) {
      std::sort(out.begin(), out.end());
      return out;
    }
    out.clear();
  }
  // Enumerate the admissible items.
  std::vector<ItemIndex> items;
  items.reserve(static_cast<size_t>(admissible));
  for (ItemIndex i = 0; i < num_items_; ++i)
    if (!excluded(exclude, i)) items.push_back(i);
  if (kind_ == NegativeKind::kUniform) {
    // Partial Fisher-Yates.
    for (size_t k = 0; k < static_cast<size_t>(n); ++k) {
      auto j = k + static_cast<size_t>(core::uniform_index(rng, items.size() - k));
      std::swap(items[k], items[j]);
    }
    items.resize(static_cast<size_t>(n));
  } else {
    // Efraimidis-Spirakis: the n largest log(u) / w are a weighted sample
    // without replacement (the same law as successive draws).
    std::vector<std::pair<double, ItemIndex>> keys;
    keys.reserve(items.size());
    for (auto i : items) keys.emplace_back(std::log(core::uniform01(rng)) / weight(i), i);
    std::nth_element(keys.begin(), keys.begin() + n, keys.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    items.clear();
    for (int k = 0; k < n; ++k) items.push_back(keys[static_cast<size_t>(k)].second);
  }
  std::sort(items.begin(), items.end());
  return items;
}

}  // namespace fewrec::data

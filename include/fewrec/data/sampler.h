// Negative samplers: uniform or popularity-proportional over items, excluding
// the items a user interacted with.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fewrec/core/rng.h"
#include "fewrec/data/dataset.h"

namespace fewrec::data {

enum class NegativeKind { kUniform, kPopularity };
NegativeKind parse_negative_kind(std::string_view name);  // "uniform" | "popularity"

class NegativeSampler {
 public:
  // Popularity weights come from item counts in `train` (+1 smoothing so every
  // item can be drawn).
  NegativeSampler(const Dataset& train, NegativeKind kind);

  // One item not in `exclude` (sorted ascending). Throws kInvalidArgument when
  // every item is excluded.
  ItemIndex sample(std::span<const ItemIndex> exclude, core::Rng& rng) const;
  // n distinct items not in `exclude` (sorted); fewer only if the catalogue
  // has fewer than n admissible items.
  std::vector<ItemIndex> sample_distinct(std::span<const ItemIndex> exclude, int n,
                                         core::Rng& rng) const;
  NegativeKind kind() const { return kind_; }

 private:
  ItemIndex draw(core::Rng& rng) const;
  NegativeKind kind_;
  int32_t num_items_;
  std::vector<double> cdf_;  // popularity
  std::vector<int32_t> alias_;
  std::vector<double> prob_;
};

}  // namespace fewrec::data

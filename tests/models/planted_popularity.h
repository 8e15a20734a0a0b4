// The planted-popularity world of the meta-embedding tests (hybrid,
// two_tower): whether a generator learns which new items will draw many
// users, and does not learn it from features only one item has.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "fewrec/core/rng.h"
#include "fewrec/data/context.h"
#include "fewrec/data/dataset.h"
#include "text_world.h"

namespace fewrec::models::testing {

struct PlantedPopularityWorld {
  data::Dataset full;
  data::Dataset train;
  std::vector<ItemIndex> cold;  // held out: no training interaction
};

// The planted world of the meta_popularity tests: the newest items of kind
// "hot" draw many users and those of kind "mild" few, while among the old
// items it is the other way round, so that over all items the kind says
// nothing about popularity (the trained model alone ranks the held-out mild
// items higher). Half of the newest items are held out. With `codes`, every
// item also has a categorical `code` of its own.
inline PlantedPopularityWorld planted_popularity_world(bool codes) {
  constexpr int kUsers = 600, kItems = 240, kOld = 120;
  data::DatasetBuilder b;
  for (int u = 0; u < kUsers; ++u) b.user("u" + std::to_string(u));
  const char* genres[] = {"a", "b", "c", "d"};
  std::vector<double> weight(kItems);
  for (int i = 0; i < kItems; ++i) {
    const ItemIndex it = b.item("i" + std::to_string(i));
    const bool hot = i % 2 == 0, old = i < kOld;
    b.item_features().set_categorical(it, "kind", hot ? "hot" : "mild");
    b.item_features().add_tag(it, "genres", genres[(i / 2) % 4]);
    if (codes) b.item_features().set_categorical(it, "code", "c" + std::to_string(i));
    weight[static_cast<size_t>(i)] = hot != old ? 8.0 : 1.0;
  }
  core::Rng rng(3);
  std::vector<double> cum;
  auto draw = [&](int lo, int hi) {  // an item of [lo, hi) by weight
    cum.clear();
    double total = 0;
    for (int i = lo; i < hi; ++i) cum.push_back(total += weight[static_cast<size_t>(i)]);
    return lo + static_cast<int>(std::upper_bound(cum.begin(), cum.end(), core::uniform01(rng) * total) - cum.begin());
  };
  for (int u = 0; u < kUsers; ++u)
    for (int k = 0; k < 12; ++k) {
      const bool old = k < 6;  // old items early in time, new ones late
      const int i = old ? draw(0, kOld) : draw(kOld, kItems);
      b.add(u, i, (old ? 1000 : 100000) + k * 10 + u, 5.0f);
    }
  PlantedPopularityWorld w;
  w.full = std::move(b).build("planted-popularity");
  for (ItemIndex i = kOld; i < kItems; i += 4) w.cold.push_back(i);
  for (ItemIndex i = kOld + 1; i < kItems; i += 4) w.cold.push_back(i);
  std::sort(w.cold.begin(), w.cold.end());
  w.train = w.full.filter([&](const data::Interaction& r) {
    return !std::binary_search(w.cold.begin(), w.cold.end(), r.item);
  });
  return w;
}

// Options that meta-train a generator on this world's newest half (hybrid,
// two_tower).
constexpr const char* kPlantedMeta = ",meta_emb=true,meta_recent=0.5,meta_items=8,meta_lr=0.01";

// Mean over the first 50 users of the AUC of the held-out hot items against
// the held-out mild ones.
inline double hot_above_mild(const Model& m, const PlantedPopularityWorld& w) {
  std::vector<ItemIndex> hot, mild;
  for (ItemIndex c : w.cold) (c % 2 == 0 ? hot : mild).push_back(c);
  double total = 0;
  for (UserIndex u = 0; u < 50; ++u) total += auc(scores_of(m, data::context_from_dataset(w.train, u)), hot, mild);
  return total / 50;
}

}  // namespace fewrec::models::testing

// random: the chance-level baseline. Its scores are uniform, differ between
// users, ignore the planted preferences, repeat for the same user and seed
// and survive save / load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "test_util.h"

namespace fewrec::models {
namespace {

using ::testing::HasSubstr;
using testing::error_of;
using testing::make_dataset;
using testing::new_user;
using testing::TempDir;

constexpr int kUsers = 200, kItems = 300;

// Users like the first 60 items nine times as often as the rest: any score
// that depends on the item alone, or on the user's history, finds them.
data::Dataset planted() {
  core::Rng rng(11);
  std::vector<std::pair<int, int>> rows;
  for (int u = 0; u < kUsers; ++u)
    for (int i = 0; i < kItems; ++i)
      if (core::uniform01(rng) < (i < 60 ? 0.18 : 0.02)) rows.emplace_back(u, i);
  return make_dataset(kUsers, kItems, rows);
}

std::unique_ptr<Model> fitted(const data::Dataset& ds, uint64_t seed = 42) {
  auto m = model_registry().create(ModelSpec::parse("random"));
  TrainOptions o;
  o.seed = seed;
  m->fit(ds, o, core::null_monitor());
  return m;
}

std::vector<float> all_scores(const Model& m, const data::UserContext& ctx) {
  std::vector<float> out(static_cast<size_t>(m.num_items()));
  m.score_all(*m.adapt(ctx), out);
  return out;
}

TEST(Random, ScoresAreUniformAndIgnoreThePlantedPreferences) {
  const auto ds = planted();
  auto m = fitted(ds);
  // Over every user, the share of (liked, not liked) pairs ordered right:
  // 0.5 up to noise, where the item or the history would move it far off.
  double right = 0, pairs = 0, sum = 0, n = 0;
  for (UserIndex u = 0; u < kUsers; ++u) {
    const auto ctx = data::context_from_dataset(ds, u);
    const auto s = all_scores(*m, ctx);
    std::set<ItemIndex> liked;
    for (const auto& e : ctx.history) liked.insert(e.item);
    for (ItemIndex i = 0; i < kItems; ++i) {
      EXPECT_GE(s[i], 0.0f);
      EXPECT_LT(s[i], 1.0f);
      sum += s[i];
      ++n;
      if (!liked.count(i)) continue;
      for (ItemIndex j = 0; j < kItems; ++j)
        if (!liked.count(j)) {
          right += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
          ++pairs;
        }
    }
  }
  EXPECT_NEAR(right / pairs, 0.5, 0.02);
  EXPECT_NEAR(sum / n, 0.5, 0.01);
}

TEST(Random, EachUserGetsItsOwnOrderTheSameEveryTime) {
  const auto ds = planted();
  auto m = fitted(ds);
  const auto a = all_scores(*m, data::context_from_dataset(ds, 0));
  EXPECT_EQ(all_scores(*m, data::context_from_dataset(ds, 0)), a);
  EXPECT_NE(all_scores(*m, data::context_from_dataset(ds, 1)), a);
  // Another seed, another order.
  EXPECT_NE(all_scores(*fitted(ds, 43), data::context_from_dataset(ds, 0)), a);
  // A new user is keyed by its history.
  const auto fresh = all_scores(*m, new_user({3, 4}));
  EXPECT_EQ(all_scores(*m, new_user({3, 4})), fresh);
  EXPECT_NE(all_scores(*m, new_user({3, 5})), fresh);
  EXPECT_NE(fresh, a);
  // The history is excluded from recommendations as for every model.
  for (const auto& [item, score] : recommend(*m, new_user({3, 4}), kItems)) {
    EXPECT_NE(item, 3);
    EXPECT_NE(item, 4);
  }
}

TEST(Random, SaveLoadAndAddedItems) {
  TempDir dir;
  const auto ds = planted();
  auto m = fitted(ds, 7);
  save_model(dir / "r.fwr", *m, ds.catalogue(), nlohmann::json::object());
  auto loaded = load_model(dir / "r.fwr");
  const auto ctx = data::context_from_dataset(ds, 5);
  EXPECT_EQ(all_scores(*loaded.model, ctx), all_scores(*m, ctx));

  data::Catalogue bigger;
  for (int i = 0; i < kItems + 3; ++i) bigger.items.add("i" + std::to_string(i));
  m->add_items(bigger, kItems);
  ASSERT_EQ(m->num_items(), kItems + 3);
  const auto grown = all_scores(*m, ctx);
  const auto before = all_scores(*loaded.model, ctx);
  // The old items keep their scores; the new ones draw like them.
  EXPECT_EQ(std::vector<float>(grown.begin(), grown.begin() + kItems), before);
  EXPECT_THAT(error_of([&] { m->add_items(bigger, 2); }, ErrorCode::kInvalidArgument),
              HasSubstr("new items must start at index 303"));
  EXPECT_THAT(error_of([&] { m->adapt(new_user({400})); }, ErrorCode::kInvalidArgument),
              HasSubstr("history item index 400 is outside the catalogue"));
}

TEST(Random, LoadRejectsABadItemCount) {
  const auto& info = model_registry().get("random");
  core::ArtifactWriter w("model");
  w.put_i64("m/items", -3);
  w.put_i64("m/seed", 1);
  auto reader = core::ArtifactReader::from_bytes(w.to_bytes(), "model", "test.fwr");
  EXPECT_EQ(error_of([&] { info.load(ModelSpec::parse("random"), reader, "m/"); }, ErrorCode::kCorrupt),
            "artifact test.fwr: section `m/items` holds -3, expected an item count in [0, 2147483647]");
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("random:k=3")); }, ErrorCode::kInvalidArgument),
              HasSubstr("k"));
}

}  // namespace
}  // namespace fewrec::models

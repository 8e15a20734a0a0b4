#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fewrec/core/monitor.h"
#include "fewrec/models/registry.h"
#include "test_util.h"

namespace fewrec::models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::error_of;
using testing::make_dataset;
using testing::new_user;

// Counts: i0 1, i1 3, i2 2, i3 0, i4 3.
data::Dataset counts_dataset() {
  return make_dataset(3, 5, {{0, 1}, {1, 1}, {2, 1}, {0, 2}, {1, 2}, {0, 4}, {1, 4}, {2, 4}, {2, 0}},
                      {1, 1, 1, 5, 5, 1, 1, 1, 2});
}

std::unique_ptr<Model> fitted(const std::string& spec, const data::Dataset& ds) {
  auto m = model_registry().create(ModelSpec::parse(spec));
  m->fit(ds, TrainOptions{}, core::null_monitor());
  return m;
}

TEST(Popularity, ScoresAreInteractionCounts) {
  auto ds = counts_dataset();
  auto m = fitted("popularity", ds);
  ASSERT_EQ(m->num_items(), 5);
  auto state = m->adapt(new_user({}));
  std::vector<float> all(5);
  m->score_all(*state, all);
  EXPECT_THAT(all, ElementsAre(1, 3, 2, 0, 3));
  std::vector<ItemIndex> some{4, 0};
  std::vector<float> out(2);
  m->score(*state, some, out);
  EXPECT_THAT(out, ElementsAre(3, 1));
}

TEST(Popularity, RanksByCountTiesByIndexAndExcludesSeen) {
  auto ds = counts_dataset();
  auto m = fitted("popularity", ds);
  auto recs = recommend(*m, new_user({}), 5);
  std::vector<ItemIndex> items;
  for (auto& [i, s] : recs) items.push_back(i);
  EXPECT_THAT(items, ElementsAre(1, 4, 2, 0, 3));

  // A known user: its history (i0, i1, i4 for u2) is excluded.
  auto known = data::context_from_dataset(ds, 2);
  recs = recommend(*m, known, 5);
  items.clear();
  for (auto& [i, s] : recs) items.push_back(i);
  EXPECT_THAT(items, ElementsAre(2, 3));
  EXPECT_THAT(m->adapt(known)->seen, ElementsAre(0, 1, 4));
}

TEST(Popularity, WeightingByValue) {
  auto ds = counts_dataset();
  auto m = fitted("popularity:weighting=value", ds);
  auto state = m->adapt(new_user({}));
  std::vector<float> all(5);
  m->score_all(*state, all);
  EXPECT_THAT(all, ElementsAre(2, 3, 10, 0, 3));
}

TEST(Popularity, HistoryOutsideTheCatalogueIsAnError) {
  auto ds = counts_dataset();
  auto m = fitted("popularity", ds);
  EXPECT_EQ(error_of([&] { m->adapt(new_user({2, 5})); }, ErrorCode::kInvalidArgument),
            "model `popularity`: history item index 5 is outside the catalogue (5 items)");
  auto state = m->adapt(new_user({}));
  std::vector<ItemIndex> bad{7};
  std::vector<float> out(1);
  EXPECT_THAT(error_of([&] { m->score(*state, bad, out); }, ErrorCode::kInvalidArgument),
              HasSubstr("item index 7 is outside the catalogue"));
}

TEST(Popularity, AddedItemsScoreZero) {
  auto ds = counts_dataset();
  auto m = fitted("popularity", ds);
  data::Catalogue bigger;
  for (int i = 0; i < 7; ++i) bigger.items.add("i" + std::to_string(i));
  m->add_items(bigger, 5);
  ASSERT_EQ(m->num_items(), 7);
  auto state = m->adapt(new_user({6}));
  std::vector<float> all(7);
  m->score_all(*state, all);
  EXPECT_THAT(all, ElementsAre(1, 3, 2, 0, 3, 0, 0));
  EXPECT_THAT(error_of([&] { m->add_items(bigger, 3); }, ErrorCode::kInvalidArgument),
              HasSubstr("new items must start at index 7"));
}

}  // namespace
}  // namespace fewrec::models

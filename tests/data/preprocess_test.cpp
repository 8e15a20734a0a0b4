#include "fewrec/data/preprocess.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"

namespace fewrec::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// (user id, item id) pairs of a dataset, for readable assertions.
std::set<std::pair<std::string, std::string>> pairs(const Dataset& ds) {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& r : ds.rows()) out.emplace(ds.users().id(r.user), ds.items().id(r.item));
  return out;
}

// u0: item x three times (t=1 v=3, t=3 v=5, t=2 v=4), item y twice at t=5
// (v=1 then v=2, a tie kept in input order); u1: x once.
Dataset duplicates() {
  DatasetBuilder b;
  auto u0 = b.user("u0"), u1 = b.user("u1");
  auto x = b.item("x"), y = b.item("y");
  auto buy = b.event_type("buy");
  b.add(u0, x, 1, 3.0f, 0, 0.1f);
  b.add(u0, y, 5, 1.0f, 0, 0.2f);
  b.add(u0, x, 3, 5.0f, buy, 0.3f);
  b.add(u0, y, 5, 2.0f, 0, 0.4f);
  b.add(u0, x, 2, 4.0f, 0, 0.5f);
  b.add(u1, x, 7, 2.0f, 0, 0.6f);
  return std::move(b).build("dups");
}

struct Row {
  ItemIndex item;
  int64_t t;
  float v;
  float w;
  bool operator==(const Row&) const = default;
};
std::vector<Row> user_rows(const Dataset& ds, UserIndex u) {
  std::vector<Row> out;
  auto h = ds.history(u);
  for (size_t i = 0; i < h.size(); ++i) out.push_back({h.items[i], h.timestamps[i], h.values[i], h.weights[i]});
  return out;
}

TEST(Dedupe, KeepLast) {
  Dataset ds = dedupe(duplicates(), DedupeKeep::kLast);
  EXPECT_EQ(ds.num_interactions(), 3);
  EXPECT_EQ(ds.name(), "dups");
  EXPECT_THAT(user_rows(ds, 0), ElementsAre(Row{0, 3, 5.0f, 0.3f}, Row{1, 5, 2.0f, 0.4f}));
  EXPECT_EQ(ds.history(0).events[0], 1);  // the whole row is kept
  EXPECT_THAT(user_rows(ds, 1), ElementsAre(Row{0, 7, 2.0f, 0.6f}));
}

TEST(Dedupe, KeepFirst) {
  Dataset ds = dedupe(duplicates(), DedupeKeep::kFirst);
  EXPECT_THAT(user_rows(ds, 0), ElementsAre(Row{0, 1, 3.0f, 0.1f}, Row{1, 5, 1.0f, 0.2f}));
}

TEST(Dedupe, KeepMax) {
  Dataset ds = dedupe(duplicates(), DedupeKeep::kMax);
  EXPECT_THAT(user_rows(ds, 0), ElementsAre(Row{0, 3, 5.0f, 0.3f}, Row{1, 5, 2.0f, 0.4f}));
}

TEST(Dedupe, KeepSumAtLatestTime) {
  Dataset ds = dedupe(duplicates(), DedupeKeep::kSum);
  auto rows = user_rows(ds, 0);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].item, 0);
  EXPECT_EQ(rows[0].t, 3);
  EXPECT_FLOAT_EQ(rows[0].v, 12.0f);
  EXPECT_EQ(rows[1].item, 1);
  EXPECT_EQ(rows[1].t, 5);
  EXPECT_FLOAT_EQ(rows[1].v, 3.0f);
}

TEST(Dedupe, MaxPrefersTheLatestAmongEqualValues) {
  DatasetBuilder b;
  auto u = b.user("u");
  auto x = b.item("x");
  b.add(u, x, 1, 5.0f, 0, 0.1f);
  b.add(u, x, 2, 5.0f, 0, 0.2f);
  b.add(u, x, 3, 1.0f, 0, 0.3f);
  Dataset ds = dedupe(std::move(b).build(), DedupeKeep::kMax);
  EXPECT_THAT(user_rows(ds, 0), ElementsAre(Row{0, 2, 5.0f, 0.2f}));
}

TEST(ToImplicit, KeepsRowsAtOrAboveThreshold) {
  Dataset src = duplicates();
  Dataset ds = to_implicit(src, 4.0f);
  EXPECT_EQ(ds.num_interactions(), 2);
  for (auto v : ds.value_column()) EXPECT_GE(v, 4.0f);
  EXPECT_EQ(ds.catalogue_ptr(), src.catalogue_ptr());
  EXPECT_EQ(to_implicit(src, std::numeric_limits<float>::quiet_NaN()).num_interactions(), 6);
}

// A hand-built example where one pass is not enough: removing H (1 row)
// leaves item u with 1 row, removing u leaves G with 1 row; removing w
// (1 row) leaves C with 1 row; D and z go together.
Dataset cascade() {
  DatasetBuilder b;
  auto add = [&](const char* u, const char* i) { b.add(b.user(u), b.item(i), 0, 1.0f); };
  add("A", "x"); add("A", "y");
  add("B", "x"); add("B", "y");
  add("C", "x"); add("C", "w");
  add("D", "z");
  add("G", "y"); add("G", "u");
  add("H", "u");
  return std::move(b).build();
}

TEST(KCore, ReachesTheFixpoint) {
  Dataset src = cascade();
  Dataset ds = k_core(src, 2, 2);
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs(ds), (std::set<P>{{"A", "x"}, {"A", "y"}, {"B", "x"}, {"B", "y"}}));
  // Index spaces unchanged.
  EXPECT_EQ(ds.num_users(), src.num_users());
  EXPECT_EQ(ds.num_items(), src.num_items());
  EXPECT_EQ(ds.catalogue_ptr(), src.catalogue_ptr());
  // The result satisfies both thresholds.
  for (UserIndex u = 0; u < ds.num_users(); ++u)
    EXPECT_TRUE(ds.history_size(u) == 0 || ds.history_size(u) >= 2);
  for (auto c : ds.item_counts()) EXPECT_TRUE(c == 0 || c >= 2);
}

TEST(KCore, UserOnlyAndItemOnlyThresholds) {
  Dataset src = cascade();
  using P = std::pair<std::string, std::string>;
  // Users only: D and H go; items are not filtered.
  auto users_only = pairs(k_core(src, 2, 0));
  EXPECT_EQ(users_only.size(), 8u);
  EXPECT_FALSE(users_only.count(P{"D", "z"}));
  EXPECT_FALSE(users_only.count(P{"H", "u"}));
  // Items only: w and z go (1 row each); u has 2 rows and stays.
  auto items_only = pairs(k_core(src, 0, 2));
  EXPECT_EQ(items_only.size(), 8u);
  EXPECT_TRUE(items_only.count(P{"H", "u"}));
  EXPECT_FALSE(items_only.count(P{"C", "w"}));
  EXPECT_EQ(k_core(src, 0, 0).num_interactions(), src.num_interactions());
  // Everything can go.
  EXPECT_EQ(k_core(src, 3, 3).num_interactions(), 0);
}

TEST(Compact, ReindexesActiveEntitiesAndCarriesFeatures) {
  DatasetBuilder b;
  auto a = b.user("a");
  auto bb = b.user("b");  // no interactions
  auto c = b.user("c");
  auto x = b.item("x");
  auto y = b.item("y");  // no interactions
  auto z = b.item("z");
  b.add(a, z, 2, 1.0f);
  b.add(c, x, 1, 2.0f);
  b.add(c, z, 3, 3.0f);
  b.user_features().set_categorical(bb, "g", "M");
  b.user_features().set_categorical(c, "g", "F");
  b.item_features().set_text(y, "title", "Y");
  b.item_features().set_text(z, "title", "Z");
  Dataset src = std::move(b).build("src");
  Dataset ds = compact(src);
  EXPECT_NE(ds.catalogue_ptr(), src.catalogue_ptr());
  EXPECT_THAT(ds.users().ids(), ElementsAre("a", "c"));
  EXPECT_THAT(ds.items().ids(), ElementsAre("x", "z"));
  EXPECT_EQ(ds.num_interactions(), 3);
  EXPECT_EQ(ds.name(), "src");
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs(ds), (std::set<P>{{"a", "z"}, {"c", "x"}, {"c", "z"}}));
  const auto& g = ds.user_features().column("g");
  ASSERT_EQ(ds.user_features().rows(), 2);
  EXPECT_EQ(g.codes[0], -1);
  EXPECT_EQ(g.vocab.id(g.codes[1]), "F");
  EXPECT_THAT(ds.item_features().column("title").texts, ElementsAre("", "Z"));
  EXPECT_THAT(ds.event_types().ids(), ElementsAre("default"));
}

TEST(PreprocessOptions, DefaultsFromAnEmptyConfig) {
  core::Config config;
  auto o = PreprocessOptions::from_config(config);
  EXPECT_TRUE(o.dedupe);
  EXPECT_EQ(o.dedupe_keep, "last");
  EXPECT_FALSE(o.has_threshold);
  EXPECT_EQ(o.min_user_interactions, 0);
  EXPECT_EQ(o.min_item_interactions, 0);
  auto eff = config.effective();
  EXPECT_TRUE(eff.contains("data.dedupe"));
  EXPECT_TRUE(eff.contains("data.min_item_interactions"));
}

TEST(PreprocessOptions, ReadsEveryKey) {
  core::Config config;
  config.set("data.dedupe=false");
  config.set("data.dedupe_keep=max");
  config.set("data.positive_threshold=4");
  config.set("data.min_user_interactions=2");
  config.set("data.min_item_interactions=3");
  auto o = PreprocessOptions::from_config(config);
  EXPECT_FALSE(o.dedupe);
  EXPECT_EQ(o.dedupe_keep, "max");
  EXPECT_TRUE(o.has_threshold);
  EXPECT_DOUBLE_EQ(o.positive_threshold, 4.0);
  EXPECT_EQ(o.min_user_interactions, 2);
  EXPECT_EQ(o.min_item_interactions, 3);
  EXPECT_NO_THROW(config.check_all_used());
}

TEST(PreprocessOptions, Errors) {
  core::Config bad_keep;
  bad_keep.set("data.dedupe_keep=latest");
  try {
    PreprocessOptions::from_config(bad_keep);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.message(), HasSubstr("`latest`"));
    EXPECT_THAT(e.message(), HasSubstr("last, first, max, sum"));
  }
  core::Config negative;
  negative.set("data.min_user_interactions=-1");
  try {
    PreprocessOptions::from_config(negative);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("data.min_user_interactions"));
  }
}

TEST(Preprocess, DedupeThenThresholdThenKCore) {
  Dataset src = duplicates();
  PreprocessOptions o;  // dedupe (last) only
  Dataset d = preprocess(src, o);
  EXPECT_EQ(d.num_interactions(), 3);

  o.has_threshold = true;
  o.positive_threshold = 2.0;  // last values: u0/x 5, u0/y 2, u1/x 2 -> all kept
  EXPECT_EQ(preprocess(src, o).num_interactions(), 3);
  o.positive_threshold = 3.0;  // u0/x only
  Dataset t = preprocess(src, o);
  ASSERT_EQ(t.num_interactions(), 1);
  EXPECT_EQ(t.value_column()[0], 5.0f);

  o.positive_threshold = 2.0;
  o.min_user_interactions = 2;  // u1 has one row
  Dataset k = preprocess(src, o);
  EXPECT_EQ(k.num_interactions(), 2);
  EXPECT_EQ(k.history_size(1), 0);

  PreprocessOptions none;
  none.dedupe = false;
  EXPECT_EQ(preprocess(src, none).num_interactions(), src.num_interactions());
  none.dedupe_keep = "bogus";
  EXPECT_THROW(preprocess(src, none), Error);
}

}  // namespace
}  // namespace fewrec::data

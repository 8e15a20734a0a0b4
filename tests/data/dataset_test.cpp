#include "fewrec/data/dataset.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fewrec/core/error.h"
#include "fewrec/data/context.h"

namespace fewrec::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(IdMap, AddFindAndIds) {
  IdMap m;
  EXPECT_EQ(m.add("b"), 0);
  EXPECT_EQ(m.add("a"), 1);
  EXPECT_EQ(m.add("b"), 0);
  EXPECT_EQ(m.size(), 2);
  EXPECT_EQ(m.find("a"), 1);
  EXPECT_EQ(m.find("zz"), -1);
  EXPECT_EQ(m.id(0), "b");
  EXPECT_THAT(m.ids(), ElementsAre("b", "a"));
  IdMap copy = m;  // copies stay consistent
  EXPECT_EQ(copy.add("c"), 2);
  EXPECT_EQ(copy.find("b"), 0);
  EXPECT_EQ(m.size(), 2);
}

// Users u0..u2, items i0..i3; rows deliberately out of order, with ties.
Dataset small_dataset() {
  DatasetBuilder b;
  auto u0 = b.user("u0"), u1 = b.user("u1"), u2 = b.user("u2");
  auto i0 = b.item("i0"), i1 = b.item("i1"), i2 = b.item("i2"), i3 = b.item("i3");
  auto click = b.event_type("click");
  b.add(u1, i2, 30, 4.0f);
  b.add(u0, i1, 20, 5.0f);
  b.add(u1, i0, 10, 3.0f, click);
  b.add(u0, i0, 20, 1.0f);  // ties with (u0, i1, 20): stays after it
  b.add(u0, i3, 5, 2.0f, 0, 0.5f);
  b.add(u1, i1, 30, 4.0f);  // ties with (u1, i2, 30)
  (void)u2;
  (void)i3;
  return std::move(b).build("small");
}

TEST(Dataset, CsrIsSortedByUserThenTimeWithStableTies) {
  Dataset ds = small_dataset();
  EXPECT_EQ(ds.name(), "small");
  EXPECT_EQ(ds.num_users(), 3);
  EXPECT_EQ(ds.num_items(), 4);
  EXPECT_EQ(ds.num_interactions(), 6);
  EXPECT_THAT(std::vector<int64_t>(ds.user_offsets().begin(), ds.user_offsets().end()),
              ElementsAre(0, 3, 6, 6));
  EXPECT_THAT(std::vector<ItemIndex>(ds.item_column().begin(), ds.item_column().end()),
              ElementsAre(3, 1, 0, 0, 2, 1));
  EXPECT_THAT(std::vector<int64_t>(ds.timestamp_column().begin(), ds.timestamp_column().end()),
              ElementsAre(5, 20, 20, 10, 30, 30));
  EXPECT_THAT(std::vector<float>(ds.value_column().begin(), ds.value_column().end()),
              ElementsAre(2, 5, 1, 3, 4, 4));
  EXPECT_EQ(ds.event_column()[3], 1);
  EXPECT_EQ(ds.weight_column()[0], 0.5f);

  auto h = ds.history(1);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h.items[0], 0);
  EXPECT_EQ(h.timestamps[2], 30);
  EXPECT_TRUE(ds.history(2).empty());
  EXPECT_EQ(ds.history_size(0), 3);

  EXPECT_EQ(ds.user_of_row(0), 0);
  EXPECT_EQ(ds.user_of_row(2), 0);
  EXPECT_EQ(ds.user_of_row(3), 1);
  EXPECT_EQ(ds.user_of_row(5), 1);
  Interaction r = ds.row(4);
  EXPECT_EQ(r.user, 1);
  EXPECT_EQ(r.item, 2);
  EXPECT_EQ(r.timestamp, 30);

  auto rows = ds.rows();
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[2].item, 0);
  EXPECT_EQ(rows[2].user, 0);
}

TEST(Dataset, EmptyUsersInTheMiddleAndUserOfRow) {
  auto cat = std::make_shared<Catalogue>();
  for (auto id : {"a", "b", "c", "d"}) cat->users.add(id);
  cat->items.add("x");
  cat->event_types.add("default");
  Dataset ds(cat, {{3, 0, 1}, {0, 0, 2}, {3, 0, 0}});
  EXPECT_THAT(std::vector<int64_t>(ds.user_offsets().begin(), ds.user_offsets().end()),
              ElementsAre(0, 1, 1, 1, 3));
  EXPECT_EQ(ds.user_of_row(0), 0);
  EXPECT_EQ(ds.user_of_row(1), 3);
  EXPECT_EQ(ds.user_of_row(2), 3);
  EXPECT_EQ(ds.timestamp_column()[1], 0);  // sorted by time inside user 3
  EXPECT_EQ(ds.num_active_users(), 2);
}

TEST(Dataset, RejectsIndicesOutsideTheCatalogue) {
  auto cat = std::make_shared<Catalogue>();
  cat->users.add("a");
  cat->items.add("x");
  cat->event_types.add("default");
  try {
    Dataset(cat, {{0, 1, 0}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.message(), HasSubstr("item index 1"));
  }
  EXPECT_THROW(Dataset(cat, {{1, 0, 0}}), Error);
  EXPECT_THROW(Dataset(cat, {{-1, 0, 0}}), Error);
  Interaction bad_event{0, 0, 0, 1.0f, 3, 1.0f};
  EXPECT_THROW(Dataset(cat, {bad_event}), Error);
}

TEST(Dataset, EmptyDataset) {
  Dataset ds;
  EXPECT_EQ(ds.num_users(), 0);
  EXPECT_EQ(ds.num_items(), 0);
  EXPECT_EQ(ds.num_interactions(), 0);
  EXPECT_EQ(ds.user_offsets().size(), 1u);
  EXPECT_TRUE(ds.rows().empty());
  auto s = ds.stats();
  EXPECT_EQ(s["interactions"], 0);
  EXPECT_EQ(s["density"], 0.0);
}

TEST(Dataset, CountsItemSetAndFilter) {
  Dataset ds = small_dataset();
  EXPECT_THAT(ds.item_counts(), ElementsAre(2, 2, 1, 1));
  EXPECT_EQ(ds.num_active_users(), 2);
  EXPECT_EQ(ds.num_active_items(), 4);
  EXPECT_THAT(ds.item_set(0), ElementsAre(0, 1, 3));
  EXPECT_TRUE(ds.item_set(2).empty());

  Dataset f = ds.filter([](const Interaction& r) { return r.value >= 3; }, "filtered");
  EXPECT_EQ(f.name(), "filtered");
  EXPECT_EQ(f.num_interactions(), 4);
  EXPECT_EQ(f.catalogue_ptr(), ds.catalogue_ptr());  // same index space
  EXPECT_EQ(f.num_active_items(), 3);
  EXPECT_EQ(ds.filter([](const Interaction&) { return true; }).name(), "small");
}

TEST(DatasetBuilder, RegistersDefaultEventTypeFirst) {
  DatasetBuilder b;
  EXPECT_EQ(b.event_type("default"), 0);
  EXPECT_EQ(b.event_type("click"), 1);
  EXPECT_EQ(b.event_type("buy"), 2);
  EXPECT_EQ(b.event_type("click"), 1);
  Dataset ds = std::move(b).build();
  EXPECT_THAT(ds.event_types().ids(), ElementsAre("default", "click", "buy"));
}

TEST(FeatureTable, BuilderPadsEveryColumnToTheRowCount) {
  DatasetBuilder b;
  auto u0 = b.user("u0");
  auto u1 = b.user("u1");
  auto u2 = b.user("u2");
  auto i0 = b.item("i0");
  b.item("i1");
  b.item("i2");
  b.add(u0, i0, 1, 1);
  b.user_features().set_categorical(u1, "gender", "F");
  b.user_features().set_numeric(u0, "age", 31);
  b.user_features().add_tag(u1, "likes", "jazz");
  b.user_features().add_tag(u1, "likes", "rock");
  b.user_features().add_tag(u1, "likes", "jazz");  // once per row
  b.item_features().set_text(i0, "title", "Paper Kites");
  (void)u2;
  Dataset ds = std::move(b).build();

  const auto& uf = ds.user_features();
  EXPECT_EQ(uf.rows(), 3);
  const auto& gender = uf.column("gender");
  EXPECT_EQ(gender.kind, FeatureKind::kCategorical);
  EXPECT_THAT(gender.codes, ElementsAre(-1, 0, -1));
  EXPECT_EQ(gender.vocab.id(0), "F");
  const auto& age = uf.column("age");
  ASSERT_EQ(age.numbers.size(), 3u);
  EXPECT_EQ(age.numbers[0], 31.0f);
  EXPECT_TRUE(std::isnan(age.numbers[1]));
  EXPECT_TRUE(std::isnan(age.numbers[2]));
  const auto& likes = uf.column("likes");
  EXPECT_THAT(likes.offsets, ElementsAre(0, 0, 2, 2));
  ASSERT_EQ(likes.tags_of(1).size(), 2u);
  EXPECT_EQ(likes.vocab.id(likes.tags_of(1)[1]), "rock");
  EXPECT_TRUE(likes.tags_of(2).empty());

  const auto& title = ds.item_features().column("title");
  EXPECT_EQ(ds.item_features().rows(), 3);
  EXPECT_THAT(title.texts, ElementsAre("Paper Kites", "", ""));
  EXPECT_EQ(ds.item_features().find("genre"), nullptr);
}

TEST(FeatureTable, KindMismatchAndMissingColumnErrors) {
  FeatureTableBuilder b;
  b.set_numeric(0, "age", 3);
  try {
    b.set_categorical(1, "age", "old");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.message(), HasSubstr("`age` is numeric"));
  }
  FeatureTable t = std::move(b).build(2);
  try {
    t.column("agee");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_THAT(e.message(), HasSubstr("`agee`"));
    EXPECT_THAT(e.message(), HasSubstr("age"));
  }
  FeatureTableBuilder too_many;
  too_many.set_numeric(5, "x", 1);
  EXPECT_THROW(std::move(too_many).build(3), Error);
}

TEST(FeatureTable, SelectRowsKeepsVocabularies) {
  FeatureTableBuilder b;
  b.set_categorical(0, "c", "a");
  b.set_categorical(2, "c", "b");
  b.add_tag(2, "t", "x");
  b.set_text(1, "s", "one");
  FeatureTable t = std::move(b).build(3);
  std::vector<int32_t> pick = {2, 1};
  FeatureTable s = t.select_rows(pick);
  EXPECT_EQ(s.rows(), 2);
  EXPECT_THAT(s.column("c").codes, ElementsAre(1, -1));
  EXPECT_EQ(s.column("c").vocab.id(1), "b");
  EXPECT_THAT(s.column("t").offsets, ElementsAre(0, 1, 1));
  EXPECT_THAT(s.column("s").texts, ElementsAre("", "one"));
}

TEST(Dataset, StatsReportCountsQuantilesHistogramAndFeatures) {
  DatasetBuilder b;
  // 4 users with history lengths 1, 2, 3, 4; user u4 has none.
  int t = 0;
  for (int u = 0; u < 4; ++u) {
    auto ui = b.user(fmt::format("u{}", u));
    for (int k = 0; k <= u; ++k) b.add(ui, b.item(fmt::format("i{}", k)), 100 + t++, k % 2 ? 5.0f : 1.0f);
  }
  auto u4 = b.user("u4");
  b.item_features().set_text(0, "title", "A");
  b.user_features().set_categorical(u4, "g", "M");
  Dataset ds = std::move(b).build("st");
  auto s = ds.stats();
  EXPECT_EQ(s["users"], 5);
  EXPECT_EQ(s["items"], 4);
  EXPECT_EQ(s["active_users"], 4);
  EXPECT_EQ(s["active_items"], 4);
  EXPECT_EQ(s["interactions"], 10);
  EXPECT_DOUBLE_EQ(s["density"].get<double>(), 10.0 / 20.0);
  EXPECT_EQ(s["history_length"]["min"], 1);
  EXPECT_DOUBLE_EQ(s["history_length"]["median"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(s["history_length"]["mean"].get<double>(), 2.5);
  EXPECT_EQ(s["history_length"]["p90"], 4);
  EXPECT_EQ(s["history_length"]["max"], 4);
  EXPECT_EQ(s["value"]["min"], 1.0);
  EXPECT_EQ(s["value"]["max"], 5.0);
  ASSERT_TRUE(s["value"].contains("histogram"));
  ASSERT_EQ(s["value"]["histogram"].size(), 2u);
  EXPECT_EQ(s["value"]["histogram"][0]["value"], 1.0);
  EXPECT_EQ(s["value"]["histogram"][0]["count"], 6);
  EXPECT_EQ(s["value"]["histogram"][1]["count"], 4);
  EXPECT_EQ(s["time"]["min"], 100);
  EXPECT_EQ(s["time"]["max"], 109);
  ASSERT_EQ(s["event_types"].size(), 1u);
  EXPECT_EQ(s["event_types"][0]["name"], "default");
  EXPECT_EQ(s["event_types"][0]["count"], 10);
  ASSERT_EQ(s["item_features"].size(), 1u);
  EXPECT_EQ(s["item_features"][0]["kind"], "text");
  EXPECT_DOUBLE_EQ(s["item_features"][0]["coverage"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(s["user_features"][0]["coverage"].get<double>(), 0.2);
}

TEST(Dataset, StatsHasNoHistogramForContinuousValues) {
  DatasetBuilder b;
  auto u = b.user("u");
  for (int k = 0; k < 50; ++k) b.add(u, b.item(fmt::format("i{}", k)), k, 0.1f * static_cast<float>(k));
  auto s = std::move(b).build().stats();
  EXPECT_FALSE(s["value"].contains("histogram"));
}

TEST(Context, FromDatasetCarriesHistoryAndFeatures) {
  DatasetBuilder b;
  auto u0 = b.user("u0");
  auto i0 = b.item("i0"), i1 = b.item("i1");
  b.add(u0, i1, 20, 3.0f);
  b.add(u0, i0, 10, 4.0f);
  b.user_features().set_categorical(u0, "gender", "F");
  b.user_features().set_numeric(u0, "age", 20);
  b.user_features().add_tag(u0, "likes", "jazz");
  b.user_features().set_text(u0, "bio", "hi");
  auto u1 = b.user("u1");
  Dataset ds = std::move(b).build();

  UserContext ctx = context_from_dataset(ds, u0);
  ASSERT_TRUE(ctx.user.has_value());
  EXPECT_EQ(*ctx.user, u0);
  ASSERT_EQ(ctx.history.size(), 2u);
  EXPECT_EQ(ctx.history[0].item, i0);
  EXPECT_EQ(ctx.history[0].timestamp, 10);
  EXPECT_EQ(ctx.history[1].value, 3.0f);
  EXPECT_THAT(ctx.history_items(), ElementsAre(i0, i1));
  EXPECT_EQ(ctx.features.categorical.at("gender"), "F");
  EXPECT_EQ(ctx.features.numeric.at("age"), 20.0f);
  EXPECT_THAT(ctx.features.tags.at("likes"), ElementsAre("jazz"));
  EXPECT_EQ(ctx.features.text.at("bio"), "hi");

  UserContext anon = context_from_dataset(ds, u0, /*known=*/false);
  EXPECT_FALSE(anon.user.has_value());
  EXPECT_EQ(anon.history.size(), 2u);

  UserContext empty = context_from_dataset(ds, u1);
  EXPECT_TRUE(empty.history.empty());
  EXPECT_TRUE(empty.features.empty());  // missing values are left out
  EXPECT_THROW(context_from_dataset(ds, 7), Error);
}

}  // namespace
}  // namespace fewrec::data

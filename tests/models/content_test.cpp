// content: TF-IDF cosine baseline for cold items and new users.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "test_util.h"
#include "text_world.h"

namespace fewrec::models {
namespace {

using ::testing::HasSubstr;
using namespace testing;  // test_util.h, text_world.h

TEST(Content, RanksColdItemsBySharedWordsAndNotWithoutThem) {
  // Titles share their topic's words between trained and cold items: the
  // cosine finds the user's topic among the cold items.
  const auto shared = text_world(/*disjoint_words=*/false);
  EXPECT_GT(cold_auc(*fitted("content", shared.train), shared), 0.7);
  // Cold titles with words no other item has: no signal.
  const auto disjoint = text_world(/*disjoint_words=*/true);
  EXPECT_NEAR(cold_auc(*fitted("content", disjoint.train), disjoint), 0.5, 0.03);
}

TEST(Content, ScoresAreCosinesOfTfIdfVectors) {
  // Items 0 and 1 share a rare word, 0 and 2 a word every item has.
  data::DatasetBuilder b;
  b.user("u");
  int k = 0;
  for (const char* t : {"rare common", "rare common", "other common", "more common"}) {
    const auto i = b.item("i" + std::to_string(k++));
    b.item_features().set_text(i, "title", t);
  }
  b.add(0, 0, 1, 1.0f);
  const auto ds = std::move(b).build("tiny");
  auto m = fitted("content", ds);
  const auto s = scores_of(*m, new_user({0}));
  EXPECT_NEAR(s[0], 1.0f, 1e-6);   // itself
  EXPECT_NEAR(s[1], 1.0f, 1e-6);   // same words
  EXPECT_GT(s[1], s[2]);           // a rare shared word counts more than a common one
  EXPECT_NEAR(s[2], s[3], 1e-6);
  EXPECT_GT(s[2], 0.0f);
  // No history: every score 0.
  for (float x : scores_of(*m, new_user({}))) EXPECT_EQ(x, 0.0f);
}

TEST(Content, SaveLoadAndAddedItems) {
  TempDir dir;
  const auto w = text_world(false);
  auto m = fitted("content", w.train);
  save_model(dir / "c.fwr", *m, w.train.catalogue(), nlohmann::json::object());
  auto loaded = load_model(dir / "c.fwr");
  EXPECT_EQ(scores_of(*loaded.model, new_user({1, 2})), scores_of(*m, new_user({1, 2})));
  const auto g = grown(w, nullptr);
  m->add_items(g.catalogue(), w.full.num_items());
  loaded.model->add_items(g.catalogue(), w.full.num_items());
  const auto s = scores_of(*m, new_user({1, 2}));
  EXPECT_EQ(scores_of(*loaded.model, new_user({1, 2})), s);
  EXPECT_EQ(m->num_items(), g.num_items());
  // add_items' preconditions: the next index, and no smaller catalogue.
  EXPECT_THAT(error_of([&] { m->add_items(g.catalogue(), 3); }, ErrorCode::kInvalidArgument),
              HasSubstr("new items must start at index " + std::to_string(g.num_items()) + " (the model's item count), got 3"));
  EXPECT_THAT(error_of([&] { m->add_items(w.train.catalogue(), g.num_items()); }, ErrorCode::kInvalidArgument),
              HasSubstr(fmt::format("the catalogue has {} items, fewer than the model's {}", w.train.num_items(),
                                    g.num_items())));
}

TEST(Content, NeedsItemFeatures) {
  const auto bare = make_dataset(5, 4, {{0, 1}, {1, 2}});
  EXPECT_THAT(error_of([&] { fitted("content", bare); }, ErrorCode::kInvalidArgument), HasSubstr("no item feature"));
}

}  // namespace
}  // namespace fewrec::models

// meta_ranker: leave-one-user-out signals against a model trained without
// the user (oracle), N = 0 is popularity, save / load, new items, errors.
// Its quality on planted cold users is in tests/eval/quality_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "../../src/models/meta_ranker.h"
#include "fewrec/core/monitor.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "test_util.h"

namespace fewrec::models {
namespace {

using namespace testing;  // NOLINT
using ::testing::HasSubstr;

data::Dataset world(int users = 300, int items = 120, uint64_t seed = 7) {
  data::SyntheticOptions s;
  s.num_users = users;
  s.num_items = items;
  s.mean_interactions = 25;
  s.seed = seed;
  return data::make_synthetic(s);
}

std::unique_ptr<Model> train(const data::Dataset& ds, const std::string& spec) {
  auto m = model_registry().create(ModelSpec::parse(spec));
  TrainOptions t;
  t.seed = 3;
  t.threads = 2;
  m->fit(ds, t, core::null_monitor());
  return m;
}

// Oracle: the signals of a simulated task of user u (counts taken without u)
// equal the signals a model trained on the data without u computes for u's
// first events as a brand-new user.
TEST(MetaRanker, LeaveOneUserOutSignalsEqualAModelTrainedWithoutTheUser) {
  const auto ds = world();
  auto full = train(ds, "meta_ranker:rounds=0");
  int checked = 0;
  for (data::UserIndex u : {3, 17, 101}) {
    const auto without = ds.filter([&](const data::Interaction& r) { return r.user != u; });
    auto other = train(without, "meta_ranker:rounds=0");
    for (int n : {0, 1, 4}) {
      ASSERT_LT(n, ds.history_size(u));
      const auto got = meta_ranker_task_signals(*full, ds, u, n);
      auto ctx = data::context_from_dataset(ds, u, /*known=*/false);
      ctx.history.resize(static_cast<size_t>(n));
      const auto want = meta_ranker_context_signals(*other, ctx);
      ASSERT_EQ(got.size(), want.size());
      for (size_t k = 0; k < got.size(); ++k) {
        // Signal 6 (age) clamps to the training data's last event, which
        // can move when u is removed; the others are exact.
        ASSERT_NEAR(got[k], want[k], 1e-5f) << "user " << u << " N " << n << " item "
                                            << k / kMetaRankerSignals << " signal " << k % kMetaRankerSignals;
      }
      checked += static_cast<int>(got.size());
    }
  }
  EXPECT_GT(checked, 1000);
  // And a task of the full model without the leave-one-out would differ
  // (the test can fail): u's own later items gain popularity.
  const auto plain = meta_ranker_context_signals(*full, data::context_from_dataset(ds, 3, false));
  const auto loo = meta_ranker_task_signals(*full, ds, 3, static_cast<int>(ds.history_size(3)));
  EXPECT_NE(plain, loo);
}

// Oracle: a request's signals, accumulated over the support's co-occurrence
// rows and content postings and read from the per-item caches (score_all;
// `signal=K` outputs signal K raw), equal the signals computed one item at
// a time by lookups.
TEST(MetaRanker, RequestSignalsEqualTheSignalsByLookups) {
  const auto ds = world();
  for (int k = 0; k < kMetaRankerSignals; ++k) {
    auto m = train(ds, "meta_ranker:rounds=0,tasks=5,signal=" + std::to_string(k));
    for (data::UserIndex u : {4, 40}) {
      auto ctx = data::context_from_dataset(ds, u, /*known=*/false);
      ctx.history.resize(std::min<size_t>(ctx.history.size(), 6));
      std::vector<float> got(static_cast<size_t>(m->num_items()));
      m->score_all(*m->adapt(ctx), got);
      const auto want = meta_ranker_context_signals(*m, ctx);
      bool nonzero = false;
      for (size_t j = 0; j < got.size(); ++j) {
        ASSERT_FLOAT_EQ(got[j], want[j * kMetaRankerSignals + static_cast<size_t>(k)])
            << "signal " << k << " user " << u << " item " << j;
        nonzero |= got[j] != 0.0f;
      }
      if (k != 1 && k != 6 && k != 8) EXPECT_TRUE(nonzero) << "signal " << k << " is zero everywhere: checks nothing";
    }
  }
}

// With no event there is nothing to trust but the crowd: the list is the
// popularity list.
TEST(MetaRanker, EmptyContextRanksLikePopularity) {
  const auto ds = world();
  auto meta = train(ds, "meta_ranker");
  auto pop = train(ds, "popularity");
  const auto a = recommend(*meta, data::UserContext{}, 10);
  const auto b = recommend(*pop, data::UserContext{}, 10);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].first, b[i].first) << "rank " << i;
}

TEST(MetaRanker, SaveLoadGivesIdenticalScoresAndNewItemsScoreFromContent) {
  const auto ds = world();
  auto meta = train(ds, "meta_ranker:tasks=50,rounds=2");
  TempDir dir;
  const auto path = dir / "meta.fwr";
  save_model(path, *meta, ds.catalogue(), nlohmann::json::object());
  auto loaded = load_model(path);
  auto ctx = data::context_from_dataset(ds, 5, false);
  std::vector<float> s1(static_cast<size_t>(meta->num_items())), s2(s1.size());
  meta->score_all(*meta->adapt(ctx), s1);
  loaded.model->score_all(*loaded.model->adapt(ctx), s2);
  EXPECT_EQ(s1, s2);
  // A new item with the title and genres of the context's first item.
  auto cat = std::make_shared<data::Catalogue>(ds.catalogue());
  const auto first = ctx.history.front().item;
  const auto new_item = cat->items.add("brand-new");
  data::FeatureTableBuilder fb;
  fb.set_text(new_item, "title", ds.item_features().column("title").texts[static_cast<size_t>(first)]);
  cat->item_features = std::move(fb).build(cat->items.size());
  loaded.model->add_items(*cat, new_item);
  EXPECT_EQ(loaded.model->num_items(), ds.num_items() + 1);
  std::vector<float> s3(static_cast<size_t>(loaded.model->num_items()));
  loaded.model->score_all(*loaded.model->adapt(ctx), s3);
  for (float v : s3) EXPECT_TRUE(std::isfinite(v));
  const auto c = meta_ranker_context_signals(*loaded.model, ctx);
  EXPECT_GT(c[static_cast<size_t>(new_item) * kMetaRankerSignals + 5], 0.0f) << "content signal of the new item";
  EXPECT_EQ(c[static_cast<size_t>(new_item) * kMetaRankerSignals + 0], 0.0f) << "no interaction yet";
}

TEST(MetaRanker, BadOptionsAreClearErrors) {
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("meta_ranker:buckets=3+2")); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("option `buckets` must be increasing"));
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("meta_ranker:signal=12")); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("signal"));
  const auto ds = world(50, 40);
  auto meta = train(ds, "meta_ranker:tasks=5,rounds=1");
  EXPECT_THAT(error_of([&] { meta->adapt(new_user({40})); }, ErrorCode::kInvalidArgument), HasSubstr("outside"));
}

}  // namespace
}  // namespace fewrec::models

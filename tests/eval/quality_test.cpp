// Quality: trained models on synthetic data with planted structure, evaluated
// by the full-ranking protocol. Item-KNN must beat popularity by a clear
// margin, for warm users and for cold users adapting from a 5-shot support set.
//
// Measured (NDCG@10, full ranking, 1000 users x 500 items; data seeds 7/8/9 x
// split seeds 42/43 — the tests use data 7, split 42):
//   warm, random 0.8:  popularity 0.166-0.202, itemknn 0.275-0.302
//                      (ratio 1.49-1.72, +0.099..+0.127)    -> assert >= 1.4x and +0.06
//   cold users 5-shot: popularity 0.356-0.410
//                      itemknn (defaults, alpha 0.5)  0.386-0.454 (ratio 1.06-1.15)
//                      itemknn:alpha=0.8              0.416-0.487 (ratio 1.15-1.21,
//                      +0.060..+0.081)                    -> assert >= 1.08x and +0.025
// A broken itemknn that ranked by popularity would have ratio 1.0 and fail both.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/data/split.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/eval/evaluator.h"
#include "fewrec/eval/metrics.h"
#include "fewrec/models/registry.h"

namespace fewrec::eval {
namespace {

struct Quality {
  double ndcg = 0;
  double hr = 0;
  int64_t users = 0;
};

// Trains `spec` on the split's train part and evaluates it (candidates:
// full ranking, or cold_items); `summary` receives the model's summary.
Quality run(const data::Split& split, const std::string& spec, const std::string& candidates = "full",
            nlohmann::json* summary = nullptr) {
  auto model = models::model_registry().create(models::ModelSpec::parse(spec));
  models::TrainOptions t;
  t.seed = 42;
  t.threads = 2;
  model->fit(split.train, t, core::null_monitor());
  EvalOptions o;
  o.ks = {10};
  o.candidates = candidates;
  o.threads = 2;
  auto r = evaluate_split(*model, split, o);
  std::printf("%s\n", r.table(spec).c_str());
  if (summary) *summary = model->summary();
  return {r.metrics.at("ndcg@10"), r.metrics.at("hr@10"), r.num_users};
}

data::Dataset synthetic() {
  data::SyntheticOptions s;
  s.num_users = 1000;
  s.num_items = 500;
  s.seed = 7;
  return data::make_synthetic(s);
}

// 20% of the users held out, support = their first 5 events.
data::Split five_shot_split(int min_history = 0) {
  data::SplitOptions so;
  so.kind = data::SplitKind::kColdUsers;
  so.cold_user_fraction = 0.2;
  so.shots = 5;
  so.min_history = min_history;
  so.seed = 42;
  return data::make_split(synthetic(), so);
}

TEST(Quality, ItemKnnBeatsPopularityOnWarmUsers) {
  auto ds = synthetic();
  data::SplitOptions so;
  so.kind = data::SplitKind::kRandom;
  so.train_fraction = 0.8;
  so.seed = 42;
  auto split = data::make_split(ds, so);
  auto pop = run(split, "popularity");
  auto knn = run(split, "itemknn");
  std::printf("warm: popularity ndcg@10 %.4f hr@10 %.4f | itemknn ndcg@10 %.4f hr@10 %.4f\n",
              pop.ndcg, pop.hr, knn.ndcg, knn.hr);
  EXPECT_EQ(pop.users, knn.users);
  EXPECT_GT(knn.users, 900);
  EXPECT_GT(pop.ndcg, 0.0);
  EXPECT_GE(knn.ndcg, 1.4 * pop.ndcg);
  EXPECT_GE(knn.ndcg, pop.ndcg + 0.06);
}

TEST(Quality, ItemKnnBeatsPopularityOnFiveShotColdUsers) {
  auto split = five_shot_split();
  auto pop = run(split, "popularity");
  // Cold users are new users: itemknn scores from the 5 support items only.
  // alpha 0.8 (asymmetric cosine) leans towards popular neighbours, which
  // pays off for the long query sets of 5-shot users.
  auto knn = run(split, "itemknn:alpha=0.8");
  std::printf("cold 5-shot: popularity ndcg@10 %.4f hr@10 %.4f | itemknn ndcg@10 %.4f hr@10 %.4f\n",
              pop.ndcg, pop.hr, knn.ndcg, knn.hr);
  EXPECT_GT(knn.users, 150);
  EXPECT_GT(pop.ndcg, 0.0);
  EXPECT_EQ(pop.users, knn.users);
  EXPECT_GE(knn.ndcg, 1.08 * pop.ndcg);
  EXPECT_GE(knn.ndcg, pop.ndcg + 0.025);
}

// meta_ranker on the same 5-shot cold users: its weights, fitted on cold-start
// tasks simulated from the training users, must trust the support. Measured
// (data seeds 7 / 8, users with >= 11 events): popularity 0.359 / 0.315,
// meta_ranker 0.612 / 0.515, itemknn:alpha=0.8 0.611 / 0.528.
TEST(Quality, MetaRankerBeatsPopularityOnFiveShotColdUsers) {
  auto split = five_shot_split(11);
  auto pop = run(split, "popularity");
  auto meta = run(split, "meta_ranker");
  std::printf("cold 5-shot: popularity ndcg@10 %.4f | meta_ranker ndcg@10 %.4f\n", pop.ndcg, meta.ndcg);
  EXPECT_GT(meta.users, 100);
  EXPECT_EQ(pop.users, meta.users);
  EXPECT_GE(meta.ndcg, 1.3 * pop.ndcg);
  EXPECT_GE(meta.ndcg, pop.ndcg + 0.1);
}

// Planted new items: items arrive one after another (item i first seen at
// time ~100 i). Each has a genre (users prefer one of four) and a `kind`.
// Among the old items `flop` ones draw 8x the users of `hit` ones (tastes
// change); from item 150 on, `hit` items draw 8x the users of `flop` ones, so
// a user's history says little about the kind and only what is popular
// lately does. The newest 20% are
// held out and ranked among themselves. Content alone knows the genre;
// meta_ranker's new-item prior, learned on the newest trained items, also
// knows that a new hit will be popular.
data::Dataset planted_new_items() {
  data::DatasetBuilder b;
  constexpr int kItems = 400, kUsers = 600;
  core::Rng rng(11);
  std::vector<int> genre(kItems), hit(kItems);
  for (int i = 0; i < kItems; ++i) {
    b.item("i" + std::to_string(i));
    genre[static_cast<size_t>(i)] = static_cast<int>(core::uniform_index(rng, 4));
    hit[static_cast<size_t>(i)] = core::uniform_index(rng, 2) == 0 ? 1 : 0;
    b.item_features().add_tag(i, "genres", "g" + std::to_string(genre[static_cast<size_t>(i)]));
    b.item_features().set_categorical(i, "kind", hit[static_cast<size_t>(i)] ? "hit" : "flop");
  }
  std::vector<double> weight(kItems);
  for (int u = 0; u < kUsers; ++u) {
    b.user("u" + std::to_string(u));
    const int likes = static_cast<int>(core::uniform_index(rng, 4));
    double total = 0;
    for (int i = 0; i < kItems; ++i) {
      double w = genre[static_cast<size_t>(i)] == likes ? 3.0 : 1.0;
      if ((i >= 150) == (hit[static_cast<size_t>(i)] == 1)) w *= 8.0;
      weight[static_cast<size_t>(i)] = w;
      total += w;
    }
    std::vector<char> taken(kItems, 0);
    for (int e = 0; e < 25; ++e) {
      double x = core::uniform01(rng) * total;
      int i = 0;
      while (i + 1 < kItems && x >= weight[static_cast<size_t>(i)]) x -= weight[static_cast<size_t>(i++)];
      if (taken[static_cast<size_t>(i)]) continue;
      taken[static_cast<size_t>(i)] = 1;
      b.add(u, i, int64_t{100} * i + static_cast<int64_t>(core::uniform_index(rng, 100)) + 1, 1.0f);
    }
  }
  return std::move(b).build("planted new items");
}

double cold_item_ndcg(const data::Split& split, const std::string& spec, double* prior_weight = nullptr) {
  nlohmann::json summary;
  const Quality q = run(split, spec, "cold_items", &summary);
  EXPECT_GT(q.users, 300);
  if (prior_weight) *prior_weight = summary.at("new_item_prior_weight").get<double>();
  return q.ndcg;
}

// Measured (NDCG@10, data seeds 11 / 12 / 13; the test uses 11): content
// 0.108 / 0.072 / 0.044, meta_ranker without the prior the same (cold items
// are scored by content alone), with it 0.159 / 0.112 / 0.086 (prior weight
// 0.75 at seed 11) -> assert >= 1.3x and +0.03 over both.
TEST(Quality, MetaRankerNewItemPriorLearnsWhichNewItemsWillBePopular) {
  data::SplitOptions so;
  so.kind = data::SplitKind::kColdItems;
  so.cold_item_fraction = 0.2;
  const auto split = data::make_split(planted_new_items(), so);
  const double content = cold_item_ndcg(split, "content");
  const double off = cold_item_ndcg(split, "meta_ranker:tasks=200,prior_fraction=0");
  double weight = 0;
  const double on = cold_item_ndcg(split, "meta_ranker:tasks=200", &weight);
  EXPECT_GT(weight, 0.0);
  EXPECT_GE(on, 1.3 * content);
  EXPECT_GE(on, content + 0.03);
  EXPECT_GE(on, 1.3 * off);
  EXPECT_GE(on, off + 0.03);
}

// The evaluator against an independent path: models::recommend (adapt +
// score_all + top_k excluding the context's items) and the metric functions.
// They differ only where ties straddle the top-10 cut (the evaluator ranks
// tied relevant items last, top_k by index), which is rare with itemknn.
TEST(Quality, EvaluatorAgreesWithRecommend) {
  auto ds = synthetic();
  data::SplitOptions so;
  so.kind = data::SplitKind::kRandom;
  so.seed = 42;
  auto split = data::make_split(ds, so);
  auto model = models::model_registry().create(models::ModelSpec::parse("itemknn"));
  model->fit(split.train, models::TrainOptions{}, core::null_monitor());
  EvalOptions o;
  o.ks = {10};
  auto r = evaluate_split(*model, split, o);
  auto cases = make_cases(split);
  ASSERT_EQ(static_cast<int64_t>(cases.size()), r.num_users);
  double ndcg = 0, recall = 0;
  for (const auto& c : cases) {
    auto top = models::recommend(*model, c.context, 10, /*exclude_seen=*/true);
    std::vector<uint8_t> hits;
    for (const auto& [item, score] : top)
      hits.push_back(std::binary_search(c.relevant.begin(), c.relevant.end(), item));
    ndcg += ndcg_at_k(hits, static_cast<int64_t>(c.relevant.size()), 10);
    recall += recall_at_k(hits, static_cast<int64_t>(c.relevant.size()), 10);
  }
  ndcg /= static_cast<double>(cases.size());
  recall /= static_cast<double>(cases.size());
  EXPECT_NEAR(r.metrics.at("ndcg@10"), ndcg, 2e-3);
  EXPECT_NEAR(r.metrics.at("recall@10"), recall, 2e-3);
  EXPECT_LE(r.metrics.at("ndcg@10"), ndcg + 1e-12);  // pessimistic ties never help
}

}  // namespace
}  // namespace fewrec::eval

// Evaluator on tiny hand-built splits with fake models of fixed scores:
// exact expected metrics (oracle), exclusions, sampled protocol, groups,
// determinism across thread counts, config errors.
#include "fewrec/eval/evaluator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"
#include "fewrec/data/context.h"
#include "fewrec/eval/metrics.h"

namespace fewrec::eval {
namespace {

using data::ItemIndex;
using data::UserIndex;
using ::testing::HasSubstr;

constexpr double kTol = 1e-9;
double disc(int i) { return 1.0 / std::log2(i + 2.0); }

// ---- fake models -----------------------------------------------------------

class FakeState : public models::UserState {
 public:
  std::optional<UserIndex> user;
  std::vector<ItemIndex> history;
};

// Same fixed score vector for every user.
class FixedModel : public models::Model {
 public:
  explicit FixedModel(std::vector<float> scores)
      : Model(models::ModelSpec{"fixed", {}}), scores_(std::move(scores)) {}
  void fit(const data::Dataset&, const models::TrainOptions&, core::Monitor&) override {}
  std::unique_ptr<models::UserState> adapt(const data::UserContext& c) const override {
    auto s = std::make_unique<FakeState>();
    s->user = c.user;
    s->history = c.history_items();
    return s;
  }
  void score(const models::UserState& state, std::span<const ItemIndex> items,
             std::span<float> out) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto& s = static_cast<const FakeState&>(state);
      calls_.push_back({s.user.value_or(-1), std::vector<ItemIndex>(items.begin(), items.end())});
    }
    for (size_t i = 0; i < items.size(); ++i) out[i] = scores_[static_cast<size_t>(items[i])];
  }
  int32_t num_items() const override { return static_cast<int32_t>(scores_.size()); }
  void save(core::ArtifactWriter&, const std::string&) const override {}

  struct Call {
    UserIndex user;
    std::vector<ItemIndex> items;
  };
  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::vector<float> scores_;
  mutable std::mutex mu_;
  mutable std::vector<Call> calls_;
};

// Pseudo-random score per (user or history, item): deterministic, non-trivial.
class HashModel : public models::Model {
 public:
  explicit HashModel(int32_t n) : Model(models::ModelSpec{"hash", {}}), n_(n) {}
  void fit(const data::Dataset&, const models::TrainOptions&, core::Monitor&) override {}
  std::unique_ptr<models::UserState> adapt(const data::UserContext& c) const override {
    auto s = std::make_unique<FakeState>();
    s->user = c.user;
    s->history = c.history_items();
    return s;
  }
  void score(const models::UserState& state, std::span<const ItemIndex> items,
             std::span<float> out) const override {
    const auto& s = static_cast<const FakeState&>(state);
    uint64_t key = static_cast<uint64_t>(s.user.value_or(-1) + 7);
    for (auto h : s.history) key = key * 31 + static_cast<uint64_t>(h);
    for (size_t i = 0; i < items.size(); ++i) {
      // Coarse scores (16 levels) so ties occur too.
      out[i] = static_cast<float>(core::derive_seed(key, static_cast<uint64_t>(items[i])) % 16);
    }
  }
  int32_t num_items() const override { return n_; }
  void save(core::ArtifactWriter&, const std::string&) const override {}

 private:
  int32_t n_;
};

class ThrowingModel : public HashModel {
 public:
  using HashModel::HashModel;
  std::unique_ptr<models::UserState> adapt(const data::UserContext& c) const override {
    if (c.user && *c.user == 2) FEWREC_THROW(kInvalidArgument, "boom for user 2");
    return HashModel::adapt(c);
  }
};

// ---- tiny split ------------------------------------------------------------
//
// 6 items, global scores s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4] (item 0 best).
//   u0: train {0}        test {2, 4}
//   u1: train {1, 3}     test {0, 1}   (item 1 seen in train: not relevant)
//   u2: train {0, 1, 2}  test {5}
//   u3: train {3}        no test       (skipped)
struct Rows {
  std::vector<data::Interaction> train, valid, test, support, hidden;
};

data::Split build_split(const Rows& rows, data::SplitKind kind, int num_users, int num_items,
                        bool features = false) {
  data::DatasetBuilder b;
  for (int u = 0; u < num_users; ++u) b.user("u" + std::to_string(u));
  for (int i = 0; i < num_items; ++i) b.item("i" + std::to_string(i));
  if (features)
    for (int u = 0; u < num_users; ++u)
      b.user_features().set_categorical(u, "age", u % 2 ? "old" : "young");
  auto all = std::move(b).build("tiny");
  auto cat = all.catalogue_ptr();
  data::Split s;
  s.options.kind = kind;
  s.train = data::Dataset(cat, rows.train, "train");
  s.valid = data::Dataset(cat, rows.valid, "valid");
  s.test = data::Dataset(cat, rows.test, "test");
  s.support = data::Dataset(cat, rows.support, "support");
  s.hidden = data::Dataset(cat, rows.hidden, "hidden");
  return s;
}

data::Interaction row(UserIndex u, ItemIndex i, int64_t t) { return {u, i, t, 1.0f, 0, 1.0f}; }

data::Split tiny_split() {
  Rows r;
  r.train = {row(0, 0, 1), row(1, 1, 1), row(1, 3, 2), row(2, 0, 1), row(2, 1, 2), row(2, 2, 3),
             row(3, 3, 1)};
  r.test = {row(0, 2, 2), row(0, 4, 3), row(1, 0, 3), row(1, 1, 4), row(2, 5, 4)};
  return build_split(r, data::SplitKind::kRandom, 4, 6);
}

std::vector<float> tiny_scores() { return {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f}; }

EvalOptions k2_options(int threads = 1) {
  EvalOptions o;
  o.ks = {2};
  o.auc = true;
  o.threads = threads;
  return o;
}

// ---- make_cases ----------------------------------------------------------

TEST(MakeCases, WarmUsers) {
  auto split = tiny_split();
  auto cases = make_cases(split);
  ASSERT_EQ(cases.size(), 3u);  // u3 has no test rows
  EXPECT_EQ(cases[0].context.user, std::optional<UserIndex>(0));
  EXPECT_THAT(cases[0].context.history_items(), ::testing::ElementsAre(0));
  EXPECT_THAT(cases[0].relevant, ::testing::ElementsAre(2, 4));
  EXPECT_THAT(cases[0].exclude, ::testing::ElementsAre(0));
  // u1: item 1 is in train, so it is excluded and not relevant.
  EXPECT_THAT(cases[1].relevant, ::testing::ElementsAre(0));
  EXPECT_THAT(cases[1].exclude, ::testing::ElementsAre(1, 3));
  EXPECT_THAT(cases[2].relevant, ::testing::ElementsAre(5));
  EXPECT_THAT(cases[2].exclude, ::testing::ElementsAre(0, 1, 2));
  EXPECT_EQ(cases[2].group, "");

  // Without exclusion every test item is relevant and nothing is excluded.
  auto open = make_cases(split, /*exclude_train=*/false);
  ASSERT_EQ(open.size(), 3u);
  EXPECT_THAT(open[1].relevant, ::testing::ElementsAre(0, 1));
  EXPECT_TRUE(open[1].exclude.empty());
}

TEST(MakeCases, ValidItemsAreExcluded) {
  Rows r;
  r.train = {row(0, 0, 1)};
  r.valid = {row(0, 1, 2)};
  r.test = {row(0, 2, 3), row(0, 1, 4)};
  auto split = build_split(r, data::SplitKind::kRandom, 1, 4);
  auto cases = make_cases(split);
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_THAT(cases[0].exclude, ::testing::ElementsAre(0, 1));
  EXPECT_THAT(cases[0].relevant, ::testing::ElementsAre(2));
  EXPECT_THAT(cases[0].context.history_items(), ::testing::ElementsAre(0));  // train only
}

TEST(MakeCases, ColdUsersAreNewUsersWithSupportAndFeatures) {
  Rows r;
  r.train = {row(1, 0, 1), row(1, 1, 2), row(1, 2, 3)};
  r.support = {row(0, 3, 1), row(0, 1, 2)};
  r.test = {row(0, 2, 3), row(0, 4, 4), row(0, 1, 5)};
  auto split = build_split(r, data::SplitKind::kColdUsers, 2, 6, /*features=*/true);
  split.cold_users = {0};
  auto cases = make_cases(split);
  ASSERT_EQ(cases.size(), 1u);
  const auto& c = cases[0];
  EXPECT_FALSE(c.context.user.has_value());  // a new user: no learned parameters
  EXPECT_THAT(c.context.history_items(), ::testing::ElementsAre(3, 1));  // time order
  EXPECT_EQ(c.context.features.categorical.at("age"), "young");
  EXPECT_THAT(c.exclude, ::testing::ElementsAre(1, 3));
  EXPECT_THAT(c.relevant, ::testing::ElementsAre(2, 4));
  EXPECT_EQ(c.group, "cold_user");
}

TEST(MakeCases, HiddenRowsOfAFixedQueryAreNeitherRevealedNorRanked) {
  Rows r;
  r.train = {row(1, 0, 1), row(1, 1, 2), row(1, 2, 3)};
  r.support = {row(0, 3, 1)};
  r.hidden = {row(0, 1, 2), row(0, 5, 3)};
  r.test = {row(0, 2, 4), row(0, 4, 5), row(0, 5, 6)};
  auto split = build_split(r, data::SplitKind::kColdUsers, 2, 6, /*features=*/true);
  split.cold_users = {0};
  auto cases = make_cases(split);
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_THAT(cases[0].context.history_items(), ::testing::ElementsAre(3));  // the support only
  EXPECT_THAT(cases[0].exclude, ::testing::ElementsAre(1, 3, 5));
  EXPECT_THAT(cases[0].relevant, ::testing::ElementsAre(2, 4));  // 5 was hidden: not ranked
}

TEST(MakeCases, ZeroShotColdUserHasFeaturesOnly) {
  Rows r;
  r.train = {row(1, 0, 1)};
  r.test = {row(0, 2, 3)};
  auto split = build_split(r, data::SplitKind::kColdUsers, 2, 4, /*features=*/true);
  split.cold_users = {0};
  auto cases = make_cases(split);
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_FALSE(cases[0].context.user.has_value());
  EXPECT_TRUE(cases[0].context.history.empty());
  EXPECT_EQ(cases[0].context.features.categorical.at("age"), "young");
  EXPECT_TRUE(cases[0].exclude.empty());
}

TEST(MakeCases, ColdItemsGroup) {
  Rows r;
  r.train = {row(0, 0, 1), row(1, 1, 1)};
  r.test = {row(0, 3, 2), row(1, 3, 2)};
  auto split = build_split(r, data::SplitKind::kColdItems, 3, 4);
  split.cold_items = {3};
  auto cases = make_cases(split);
  ASSERT_EQ(cases.size(), 2u);
  for (const auto& c : cases) {
    EXPECT_EQ(c.group, "cold_items");
    EXPECT_TRUE(c.context.user.has_value());
    EXPECT_THAT(c.relevant, ::testing::ElementsAre(3));
  }
}

// ---- full ranking oracle -------------------------------------------------

TEST(Evaluate, FullRankingOracle) {
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  auto r = evaluate_split(model, split, k2_options());
  // u0: candidates 1,2,3,4,5 (0 excluded) -> ranking 1,2,... hits@2 [0,1], R=2
  //     HR 1, P 1/2, R 1/2, NDCG (1/log2 3)/(1 + 1/log2 3) = 0.386853, MRR 1/2, MAP (1/2)(1/2)
  // u1: candidates 0,2,4,5 -> hits@2 [1,0], R=1: HR 1, P 1/2, R 1, NDCG 1, MRR 1, MAP 1
  // u2: candidates 3,4,5 -> hits@2 [0,0], R=1: all 0
  const double ndcg0 = disc(1) / (disc(0) + disc(1));
  EXPECT_EQ(r.num_users, 3);
  EXPECT_NEAR(r.metrics.at("hr@2"), 2.0 / 3, kTol);
  EXPECT_NEAR(r.metrics.at("precision@2"), (0.5 + 0.5 + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("recall@2"), (0.5 + 1 + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("ndcg@2"), (ndcg0 + 1 + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("ndcg@2"), 0.462284, 1e-6);
  EXPECT_NEAR(r.metrics.at("mrr@2"), (0.5 + 1 + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("map@2"), (0.25 + 1 + 0) / 3, kTol);
  // AUC (ties 1/2, none here):
  // u0: negatives 1,3,5 (.8,.6,.4); item 2 (.7) beats 3,5; item 4 (.5) beats 5 -> 3/6
  // u1: item 0 beats 2,4,5 -> 1;  u2: item 5 (.4) beats neither 3 nor 4 -> 0
  EXPECT_NEAR(r.metrics.at("auc"), (0.5 + 1 + 0) / 3, kTol);
  EXPECT_EQ(r.metrics.size(), 7u);  // 6 metrics @2 + auc

  EXPECT_EQ(r.protocol["candidates"], "full");
  EXPECT_EQ(r.protocol["num_items"], 6);
  EXPECT_EQ(r.protocol["exclusions"], "train items");
  EXPECT_EQ(r.protocol["users"], 3);
  EXPECT_EQ(r.protocol["ks"], nlohmann::json::array({2}));
  EXPECT_EQ(r.protocol["split"]["kind"], "random");
}

TEST(Evaluate, SeveralCutoffs) {
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  EvalOptions o;
  o.ks = {4, 1};
  o.metrics = {"ndcg", "hr"};
  auto r = evaluate_split(model, split, o);
  EXPECT_EQ(r.metrics.size(), 4u);
  // @1: only u1 has its relevant item first -> HR 1/3, NDCG 1/3
  EXPECT_NEAR(r.metrics.at("hr@1"), 1.0 / 3, kTol);
  EXPECT_NEAR(r.metrics.at("ndcg@1"), 1.0 / 3, kTol);
  // @4: u0 hits [0,1,0,1], R=2: DCG 1/log2 3 + 1/log2 5, IDCG 1 + 1/log2 3
  //     u1 hits [1,...] -> 1;  u2 ranking 3,4,5 -> hits [0,0,1], R=1: 1/log2 4 = 0.5
  const double u0 = (disc(1) + disc(3)) / (disc(0) + disc(1));
  EXPECT_NEAR(r.metrics.at("ndcg@4"), (u0 + 1 + 0.5) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("hr@4"), 1.0, kTol);
}

TEST(Evaluate, TrainItemsAreExcludedFromTheRanking) {
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  auto with = evaluate_split(model, split, k2_options());
  EvalOptions o = k2_options();
  o.exclude_train = false;
  auto without = evaluate_split(model, split, o);
  // Without exclusion u0's ranking starts with its train item 0, then 1: no hit @2;
  // u1 ranks 0 (relevant) and 1 (relevant again: seen in train and test) -> hits [1,1], R=2;
  // u2 ranks 0,1 (both train items, not relevant) -> 0.
  EXPECT_NEAR(without.metrics.at("hr@2"), 1.0 / 3, kTol);
  EXPECT_NEAR(without.metrics.at("recall@2"), 1.0 / 3, kTol);
  EXPECT_NEAR(with.metrics.at("hr@2"), 2.0 / 3, kTol);
  EXPECT_EQ(without.protocol["exclusions"], "none");

  // A model that scores exactly the train items highest gets no credit for them.
  std::vector<float> s(6, 0.0f);
  s[0] = 10;  // u0 and u2 train item
  s[1] = 9;   // u1 and u2 train item
  s[3] = 8;   // u1 train item
  s[2] = 1;
  s[5] = 0.5f;
  FixedModel cheat(s);
  auto c = evaluate_split(cheat, split, k2_options());
  // u0: candidates 1,2,3,4,5 -> 1(9),3(8),2(1),5,4 -> hits@2 [0,0]
  // u1: candidates 0,2,4,5 -> 0(10) first -> hit; u2: 3(8),5(.5) -> hit at rank 1
  EXPECT_NEAR(c.metrics.at("hr@2"), 2.0 / 3, kTol);
  EXPECT_NEAR(c.metrics.at("mrr@2"), (0 + 1 + 0.5) / 3, kTol);
}

TEST(Evaluate, TiesCountAgainstRelevantItems) {
  auto split = tiny_split();
  FixedModel constant(std::vector<float>(6, 1.0f));
  EvalOptions o = k2_options();
  o.ks = {2, 5};
  auto r = evaluate_split(constant, split, o);
  // Everything tied: relevant items are placed after every non-relevant candidate.
  EXPECT_EQ(r.metrics.at("hr@2"), 0.0);
  // u0: 5 candidates, 2 relevant at ranks 3,4 -> hits@5 [0,0,0,1,1]
  // u1: 4 candidates, relevant at rank 3;  u2: 3 candidates, relevant at rank 2
  EXPECT_NEAR(r.metrics.at("hr@5"), 1.0, kTol);
  EXPECT_NEAR(r.metrics.at("mrr@5"), (0.25 + 0.25 + 1.0 / 3) / 3, kTol);
  // AUC counts ties 1/2.
  EXPECT_NEAR(r.metrics.at("auc"), 0.5, kTol);
}

TEST(Evaluate, NanScoresRankLast) {
  auto split = tiny_split();
  auto s = tiny_scores();
  s[1] = std::nanf("");
  FixedModel model(s);
  auto r = evaluate_split(model, split, k2_options());
  // u0: 2(.7),3,4 -> hit at rank 0
  EXPECT_GT(r.metrics.at("mrr@2"), 0.5);
}

// ---- sampled protocol ------------------------------------------------------

TEST(Evaluate, SampledOracleWhenEveryNegativeIsDrawn) {
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  EvalOptions o = k2_options();
  o.candidates = "sampled";
  o.num_negatives = 3;  // every admissible item for u0/u1; u2 has only 2
  auto r = evaluate_split(model, split, o);
  // pairs: u0-2: negatives {1,3,5}, 1 scores higher -> rank 1
  //        u0-4: negatives {1,3,5}, 1 and 3 higher -> rank 2
  //        u1-0: negatives {2,4,5} -> rank 0
  //        u2-5: negatives {3,4}, both higher -> rank 2
  EXPECT_EQ(r.num_users, 3);
  EXPECT_EQ(r.protocol["pairs"], 4);
  EXPECT_NEAR(r.metrics.at("hr@2"), 2.0 / 4, kTol);
  EXPECT_NEAR(r.metrics.at("ndcg@2"), (disc(1) + 0 + 1 + 0) / 4, kTol);
  EXPECT_NEAR(r.metrics.at("mrr@2"), (0.5 + 0 + 1 + 0) / 4, kTol);
  EXPECT_NEAR(r.metrics.at("recall@2"), 2.0 / 4, kTol);  // R = 1 per pair
  EXPECT_NEAR(r.metrics.at("precision@2"), (0.5 + 0.5) / 4, kTol);
  // AUC per pair: 2/3, 1/3, 1, 0
  EXPECT_NEAR(r.metrics.at("auc"), (2.0 / 3 + 1.0 / 3 + 1 + 0) / 4, kTol);
  EXPECT_EQ(r.protocol["candidates"], "sampled");
  EXPECT_EQ(r.protocol["num_negatives"], 3);
  EXPECT_EQ(r.protocol["negative_sampler"], "uniform");
  EXPECT_THAT(r.table(), HasSubstr("sampled: each test item vs 3 uniform negatives"));
}

TEST(Evaluate, SampledTiesCountAgainstTheTestItem) {
  auto split = tiny_split();
  FixedModel constant(std::vector<float>(6, 1.0f));
  EvalOptions o = k2_options();
  o.candidates = "sampled";
  o.num_negatives = 2;
  auto r = evaluate_split(constant, split, o);
  // Every target ties with its 2 negatives -> rank 2 -> no hit @2; AUC 1/2.
  EXPECT_EQ(r.metrics.at("hr@2"), 0.0);
  EXPECT_NEAR(r.metrics.at("auc"), 0.5, kTol);
}

// A larger random split for sampling and thread tests.
data::Split random_split(int users, int items, uint64_t seed, data::SplitKind kind) {
  core::Rng rng(seed);
  Rows r;
  for (int u = 0; u < users; ++u) {
    int n = 3 + static_cast<int>(core::uniform_index(rng, 25));
    std::set<ItemIndex> seen;
    for (int j = 0; j < n; ++j) {
      ItemIndex i = static_cast<ItemIndex>(core::uniform_index(rng, static_cast<uint64_t>(items)));
      if (!seen.insert(i).second) continue;
      auto x = row(u, i, j);
      double p = core::uniform01(rng);
      if (kind == data::SplitKind::kColdUsers && u % 4 == 0)
        (j < 3 ? r.support : r.test).push_back(x);
      else if (kind == data::SplitKind::kColdUsers)
        r.train.push_back(x);
      else if (p < 0.7) r.train.push_back(x);
      else if (p < 0.8) r.valid.push_back(x);
      else r.test.push_back(x);
    }
  }
  auto s = build_split(r, kind, users, items);
  if (kind == data::SplitKind::kColdUsers)
    for (int u = 0; u < users; u += 4) s.cold_users.push_back(u);
  return s;
}

TEST(Evaluate, SampledNegativesAreNeverRelevantOrExcluded) {
  for (auto sampler : {"uniform", "popularity"}) {
    auto split = random_split(60, 80, 3, data::SplitKind::kRandom);
    FixedModel model(std::vector<float>(80, 0.0f));
    EvalOptions o;
    o.candidates = "sampled";
    o.num_negatives = 20;
    o.negative_sampler = sampler;
    o.threads = 2;
    auto r = evaluate_split(model, split, o);
    ASSERT_GT(r.num_users, 10);
    auto calls = model.calls();
    ASSERT_EQ(static_cast<int64_t>(calls.size()), r.protocol["pairs"].get<int64_t>());
    for (const auto& call : calls) {
      const UserIndex u = call.user;
      ASSERT_GE(u, 0);
      std::set<ItemIndex> relevant, known;
      for (auto i : split.test.item_set(u)) relevant.insert(i);
      for (auto i : split.train.item_set(u)) known.insert(i);
      for (auto i : split.valid.item_set(u)) known.insert(i);
      ASSERT_FALSE(call.items.empty());
      EXPECT_TRUE(relevant.count(call.items[0])) << "target is a test item";
      EXPECT_FALSE(known.count(call.items[0])) << "an excluded item is never a target";
      std::set<ItemIndex> negs(call.items.begin() + 1, call.items.end());
      EXPECT_EQ(negs.size(), call.items.size() - 1) << "negatives are distinct";
      EXPECT_EQ(static_cast<int>(negs.size()), 20);
      for (auto n : negs) {
        EXPECT_FALSE(relevant.count(n)) << sampler << ": negative " << n << " is relevant";
        EXPECT_FALSE(known.count(n)) << sampler << ": negative " << n << " is a known item";
      }
    }
  }
}

TEST(Evaluate, SampledNegativesAvoidTheHistoryEvenWithoutExclusion) {
  auto split = random_split(60, 80, 4, data::SplitKind::kRandom);
  FixedModel model(std::vector<float>(80, 0.0f));
  EvalOptions o;
  o.candidates = "sampled";
  o.num_negatives = 30;
  o.exclude_train = false;
  evaluate_split(model, split, o);
  auto calls = model.calls();
  ASSERT_FALSE(calls.empty());
  for (const auto& call : calls) {
    auto train = split.train.item_set(call.user);
    auto test = split.test.item_set(call.user);
    for (size_t j = 1; j < call.items.size(); ++j) {
      EXPECT_FALSE(std::binary_search(train.begin(), train.end(), call.items[j]));
      EXPECT_FALSE(std::binary_search(test.begin(), test.end(), call.items[j]));
    }
  }
}

TEST(Evaluate, SampledIsDeterministicAcrossThreadCounts) {
  auto split = random_split(200, 120, 11, data::SplitKind::kRandom);
  HashModel model(120);
  EvalOptions o;
  o.ks = {5, 10};
  o.auc = true;
  o.candidates = "sampled";
  o.num_negatives = 30;
  o.threads = 1;
  auto one = evaluate_split(model, split, o);
  o.threads = 2;
  auto two = evaluate_split(model, split, o);
  o.threads = 5;
  auto five = evaluate_split(model, split, o);
  EXPECT_EQ(one.metrics, two.metrics);
  EXPECT_EQ(one.metrics, five.metrics);
  EXPECT_EQ(one.groups, two.groups);
  EXPECT_EQ(one.num_users, two.num_users);
  EXPECT_GT(one.metrics.at("hr@10"), 0.0);
  EXPECT_LT(one.metrics.at("hr@10"), 1.0);
  // Another seed draws other negatives.
  o.seed = 43;
  auto other = evaluate_split(model, split, o);
  EXPECT_NE(one.metrics, other.metrics);
  EXPECT_EQ(one.protocol["pairs"], other.protocol["pairs"]);
}

TEST(Evaluate, FullIsDeterministicAcrossThreadCounts) {
  auto split = random_split(200, 120, 5, data::SplitKind::kRandom);
  HashModel model(120);
  EvalOptions o;
  o.ks = {5, 20};
  o.auc = true;
  o.threads = 1;
  auto one = evaluate_split(model, split, o);
  o.threads = 2;
  auto two = evaluate_split(model, split, o);
  EXPECT_EQ(one.metrics, two.metrics);
  EXPECT_EQ(one.groups, two.groups);
}

TEST(Evaluate, WorkerExceptionsReachTheCaller) {
  auto split = random_split(40, 30, 5, data::SplitKind::kRandom);
  ThrowingModel model(30);
  EvalOptions o;
  o.threads = 2;
  try {
    evaluate_split(model, split, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("boom for user 2"));
  }
}

TEST(Evaluate, RelevantItemOutsideTheModelIsAnError) {
  auto split = tiny_split();
  FixedModel small(std::vector<float>(4, 0.0f));  // items 4, 5 unknown to the model
  try {
    evaluate_split(small, split, k2_options());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.message(), HasSubstr("outside the model's catalogue"));
  }
}

// ---- groups ------------------------------------------------------------------

TEST(Evaluate, HistoryGroups) {
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  EvalOptions o = k2_options();
  o.history_buckets = {1, 2};
  auto r = evaluate_split(model, split, o);
  // u0 history 1, u1 history 2, u2 history 3.
  ASSERT_EQ(r.groups.size(), 3u);
  EXPECT_EQ(r.groups.at("history:1").at("users"), 1);
  EXPECT_NEAR(r.groups.at("history:1").at("ndcg@2"), disc(1) / (disc(0) + disc(1)), kTol);
  EXPECT_NEAR(r.groups.at("history:2").at("ndcg@2"), 1.0, kTol);
  EXPECT_NEAR(r.groups.at("history:3+").at("ndcg@2"), 0.0, kTol);

  o.history_buckets = {5, 20, 50};  // default edges: everyone in 1-5
  auto d = evaluate_split(model, split, o);
  ASSERT_EQ(d.groups.size(), 1u);
  EXPECT_EQ(d.groups.at("history:1-5").at("users"), 3);
  EXPECT_NEAR(d.groups.at("history:1-5").at("ndcg@2"), d.metrics.at("ndcg@2"), kTol);

  o.groups = false;
  EXPECT_TRUE(evaluate_split(model, split, o).groups.empty());
}

TEST(Evaluate, ColdUserSplit) {
  auto split = random_split(80, 50, 9, data::SplitKind::kColdUsers);
  FixedModel model(std::vector<float>(50, 0.0f));
  EvalOptions o;
  auto r = evaluate_split(model, split, o);
  int64_t with_test = 0;
  for (auto u : split.cold_users) with_test += split.test.history_size(u) > 0;
  ASSERT_GT(with_test, 10);
  EXPECT_EQ(r.num_users, with_test);
  EXPECT_EQ(r.protocol["exclusions"], "support items");
  ASSERT_TRUE(r.groups.count("cold_user"));
  EXPECT_EQ(r.groups.at("cold_user").at("users"), with_test);
  EXPECT_EQ(r.groups.at("history:1-5").at("users"), with_test);  // <= 3-shot support
  for (const auto& call : model.calls()) EXPECT_EQ(call.user, -1) << "cold users are new users";
  EXPECT_THAT(r.table(), HasSubstr("support items excluded"));
}

// ---- cold-item candidates ------------------------------------------------------
//
// 8 items; items {1, 4, 6, 7} are held out (cold), the rest are warm.
// scores: [0.9, 0.5, 0.8, 0.7, 0.3, 0.6, 0.4, 0.2]
//   -> the cold items rank 1 (.5), 6 (.4), 4 (.3), 7 (.2) among themselves,
//      and the warm items 0, 2, 3, 5 (.9, .8, .7, .6) score above all of them.
//   u0: train {0, 2}  test {6}
//   u1: train {3}     test {1, 7}
//   u2: train {0, 5}  test {4}
//   u3: train {2}     no test (skipped)
data::Split tiny_cold_item_split() {
  Rows r;
  r.train = {row(0, 0, 1), row(0, 2, 2), row(1, 3, 1), row(2, 0, 1), row(2, 5, 2), row(3, 2, 1)};
  r.test = {row(0, 6, 5), row(1, 1, 5), row(1, 7, 6), row(2, 4, 5)};
  auto s = build_split(r, data::SplitKind::kColdItems, 4, 8);
  s.cold_items = {1, 4, 6, 7};
  return s;
}

std::vector<float> tiny_cold_scores() { return {0.9f, 0.5f, 0.8f, 0.7f, 0.3f, 0.6f, 0.4f, 0.2f}; }

EvalOptions cold_k2_options(int threads = 1) {
  EvalOptions o = k2_options(threads);
  o.candidates = "cold_items";
  return o;
}

TEST(Evaluate, ColdItemCandidatesOracle) {
  auto split = tiny_cold_item_split();
  FixedModel model(tiny_cold_scores());
  auto r = evaluate_split(model, split, cold_k2_options());
  // Every user ranks the 4 cold items (no train item is cold): 1, 6, 4, 7.
  // u0: R=1 {6}     hits@2 [0,1]: HR 1, P 1/2, R 1,   NDCG 1/log2 3,        MRR 1/2, MAP 1/2
  //     AUC: 6 (.4) vs negatives 1, 4, 7 (.5, .3, .2) -> 2/3
  // u1: R=2 {1, 7}  hits@2 [1,0]: HR 1, P 1/2, R 1/2, NDCG 1/(1 + 1/log2 3), MRR 1,   MAP 1/2
  //     AUC: 1 beats 6, 4; 7 beats neither -> 2/4
  // u2: R=1 {4}     hits@2 [0,0]: all 0;  AUC: 4 (.3) beats 7 only of 1, 6, 7 -> 1/3
  EXPECT_EQ(r.num_users, 3);
  EXPECT_NEAR(r.metrics.at("hr@2"), 2.0 / 3, kTol);
  EXPECT_NEAR(r.metrics.at("precision@2"), (0.5 + 0.5 + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("recall@2"), (1 + 0.5 + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("ndcg@2"), (disc(1) + 1 / (disc(0) + disc(1)) + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("mrr@2"), (0.5 + 1 + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("map@2"), (0.5 + 0.5 + 0) / 3, kTol);
  EXPECT_NEAR(r.metrics.at("auc"), (2.0 / 3 + 0.5 + 1.0 / 3) / 3, kTol);
  EXPECT_EQ(r.metrics.size(), 7u);
  ASSERT_TRUE(r.groups.count("cold_items"));
  EXPECT_EQ(r.groups.at("cold_items").at("users"), 3);

  EXPECT_EQ(r.protocol["candidates"], "cold_items");
  EXPECT_EQ(r.protocol["num_candidates"], 4);
  EXPECT_EQ(r.protocol["num_items"], 8);
  EXPECT_EQ(r.protocol["exclusions"], "train items");
  EXPECT_EQ(r.protocol["split"]["kind"], "cold_items");
  EXPECT_THAT(r.protocol["candidate_items"].get<std::string>(), HasSubstr("held-out"));
  EXPECT_THAT(r.table(), HasSubstr("protocol: cold_items split 0.2 of items (newest) (seed 42) | ranking "
                                   "among the 4 held-out items (of 8), train items excluded | 3 users | K=2"));
  // The restriction matters: over the whole catalogue the warm items crowd the
  // top 2 (u0: 3, 5; u1: 0, 2; u2: 2, 3) and the AUC pairs include them.
  EvalOptions full = k2_options();
  auto f = evaluate_split(model, split, full);
  EXPECT_NEAR(f.metrics.at("hr@2"), 0.0, kTol);
  // u0: 6 beats 4, 7 of 1, 3, 4, 5, 7 -> 2/5; u1: 1 beats 6, 4 and 7 nothing of
  // 0, 2, 4, 5, 6 -> 2/10; u2: 4 beats 7 of 1, 2, 3, 6, 7 -> 1/5.
  EXPECT_NEAR(f.metrics.at("auc"), (0.4 + 0.2 + 0.2) / 3, kTol);
  EXPECT_FALSE(f.protocol.contains("num_candidates"));
  EXPECT_THAT(f.table(), HasSubstr("full ranking over 8 items"));

  // Only cold items are scored against each other: same numbers with every
  // warm item's score changed.
  auto warm_changed = tiny_cold_scores();
  for (int i : {0, 2, 3, 5}) warm_changed[static_cast<size_t>(i)] = 0.45f + 0.01f * static_cast<float>(i);
  FixedModel other(warm_changed);
  auto r2 = evaluate_split(other, split, cold_k2_options());
  EXPECT_EQ(r2.metrics, r.metrics);
}

TEST(Evaluate, ColdItemCandidatesKeepExclusionsAndTies) {
  // Built directly: candidate set {1, 4, 6, 7}; the excluded item 1 (as if
  // the user had seen it) leaves {4, 6, 7}; relevant items outside the set do
  // not count, and a user with none inside is skipped.
  std::vector<EvalCase> cases(3);
  cases[0].relevant = {3, 6};  // 3 is not a candidate
  cases[0].exclude = {0, 1};
  cases[1].relevant = {4, 7};
  cases[2].relevant = {0, 2};  // no candidate: skipped
  for (auto& c : cases) c.context.user = 0;
  EvalOptions o = k2_options();
  o.candidate_items = {7, 1, 6, 4, 6};  // sorted and de-duplicated by evaluate
  FixedModel model(tiny_cold_scores());
  auto r = evaluate(model, cases, data::Dataset(), o);
  EXPECT_EQ(r.num_users, 2);
  // case 0: ranks 6 (.4), 4 (.3), 7 (.2) -> hit at rank 0, R=1: HR 1, NDCG 1, AUC 1.
  // case 1: ranks 1 (.5), 6 (.4), 4, 7 -> hits@2 [0,0]; AUC: 4 and 7 beat neither 1 nor 6 -> 0.
  EXPECT_NEAR(r.metrics.at("hr@2"), 0.5, kTol);
  EXPECT_NEAR(r.metrics.at("ndcg@2"), 0.5, kTol);
  EXPECT_NEAR(r.metrics.at("auc"), (1 + 0) / 2.0, kTol);
  EXPECT_EQ(r.protocol["candidates"], "full");
  EXPECT_EQ(r.protocol["num_candidates"], 4);
  EXPECT_THAT(r.table(), HasSubstr("ranking among the 4 candidate items (of 8)"));

  std::vector<float> flat(8, 0.5f);
  FixedModel constant(flat);
  auto t = evaluate(constant, cases, data::Dataset(), o);
  // All tied: relevant items go last. case 0: 6 after 4, 7 -> rank 2, no hit;
  // case 1: 4, 7 after 1, 6 -> no hit. AUC 1/2 each.
  EXPECT_NEAR(t.metrics.at("hr@2"), 0.0, kTol);
  EXPECT_NEAR(t.metrics.at("auc"), 0.5, kTol);
}

// Brute force: 0-based positions of the relevant items when `candidates` are
// sorted by score, ties against relevant items.
std::vector<int64_t> brute_positions(const std::vector<float>& s, const std::vector<ItemIndex>& candidates,
                                     const std::set<ItemIndex>& relevant) {
  std::vector<int64_t> pos;
  for (ItemIndex r : relevant) {
    int64_t p = 0;
    for (ItemIndex c : candidates) {
      if (c == r) continue;
      if (relevant.count(c)) p += s[c] > s[r] || (s[c] == s[r] && c < r);
      else p += s[c] >= s[r];
    }
    pos.push_back(p);
  }
  return pos;
}

TEST(Evaluate, ColdItemCandidatesMatchBruteForceOnAMadeSplit) {
  data::DatasetBuilder b;
  for (int u = 0; u < 120; ++u) b.user("u" + std::to_string(u));
  for (int i = 0; i < 60; ++i) b.item("i" + std::to_string(i));
  core::Rng rng(5);
  for (int u = 0; u < 120; ++u)
    for (int j = 0; j < 12; ++j)
      b.add(u, static_cast<ItemIndex>(core::uniform_index(rng, 60)),
            static_cast<int64_t>(core::uniform_index(rng, 1000)), 1.0f);
  auto ds = std::move(b).build("random");
  data::SplitOptions so;
  so.kind = data::SplitKind::kColdItems;
  so.cold_item_fraction = 0.25;
  auto split = data::make_split(ds, so);
  ASSERT_EQ(split.cold_items.size(), 15u);
  HashModel model(60);
  EvalOptions o;
  o.ks = {5};
  o.metrics = {"hr", "ndcg"};
  o.auc = true;
  o.candidates = "cold_items";
  o.threads = 2;
  auto r = evaluate_split(model, split, o);

  double hr = 0, ndcg = 0, auc = 0;
  int64_t users = 0;
  for (UserIndex u = 0; u < split.test.num_users(); ++u) {
    if (split.test.history_size(u) == 0) continue;
    auto ctx = data::context_from_dataset(split.train, u, true);
    auto state = model.adapt(ctx);
    std::vector<float> s(60);
    model.score_all(*state, s);
    const auto train_items = ctx.history_items();
    std::vector<ItemIndex> candidates;
    for (ItemIndex c : split.cold_items)
      if (std::find(train_items.begin(), train_items.end(), c) == train_items.end()) candidates.push_back(c);
    auto test_items = split.test.item_set(u);
    std::set<ItemIndex> relevant(test_items.begin(), test_items.end());
    for (ItemIndex i : relevant) ASSERT_TRUE(std::binary_search(split.cold_items.begin(), split.cold_items.end(), i));
    auto pos = brute_positions(s, candidates, relevant);
    const auto R = static_cast<int64_t>(relevant.size());
    double dcg = 0, idcg = 0, correct = 0;
    bool hit = false;
    for (int64_t p : pos)
      if (p < 5) {
        hit = true;
        dcg += disc(static_cast<int>(p));
      }
    for (int i = 0; i < std::min<int64_t>(R, 5); ++i) idcg += disc(i);
    for (ItemIndex rel : relevant)
      for (ItemIndex c : candidates)
        if (!relevant.count(c)) correct += s[rel] > s[c] ? 1.0 : s[rel] == s[c] ? 0.5 : 0.0;
    const double pairs = static_cast<double>(R) * static_cast<double>(candidates.size() - relevant.size());
    hr += hit;
    ndcg += dcg / idcg;
    auc += pairs > 0 ? correct / pairs : 0.0;
    ++users;
  }
  ASSERT_GT(users, 50);
  EXPECT_EQ(r.num_users, users);
  EXPECT_NEAR(r.metrics.at("hr@5"), hr / users, 1e-12);
  EXPECT_NEAR(r.metrics.at("ndcg@5"), ndcg / users, 1e-12);
  EXPECT_NEAR(r.metrics.at("auc"), auc / users, 1e-12);
  EXPECT_EQ(r.protocol["num_candidates"], 15);
  EXPECT_THAT(r.table(), HasSubstr("ranking among the 15 held-out items (of 60)"));
  // Ranking among 15 items is easier than among 60.
  o.candidates = "full";
  EXPECT_GT(r.metrics.at("hr@5"), evaluate_split(model, split, o).metrics.at("hr@5"));
}

// The message of the kInvalidArgument fewrec::Error `fn` throws.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.message();
  }
  ADD_FAILURE() << "expected fewrec::Error";
  return "";
}

TEST(Evaluate, ColdItemCandidatesNeedHeldOutItems) {
  FixedModel model(tiny_scores());
  EvalOptions o = k2_options();
  o.candidates = "cold_items";
  // A split without held-out items.
  EXPECT_EQ(error_of([&] { evaluate_split(model, tiny_split(), o); }),
            "eval.candidates=cold_items needs split.kind=cold_items (split.kind=random holds out no items)");
  // A cold_items split that held out nothing.
  auto empty = build_split(Rows{}, data::SplitKind::kColdItems, 2, 6);
  EXPECT_THAT(error_of([&] { evaluate_split(model, empty, o); }), HasSubstr("holds out no items"));
  // evaluate() itself needs the candidate items.
  auto cases = make_cases(tiny_split());
  EXPECT_THAT(error_of([&] { evaluate(model, cases, data::Dataset(), o); }),
              HasSubstr("eval.candidates=cold_items needs the held-out items"));
  // A candidate outside the model, or a candidate set with sampled negatives.
  EvalOptions bad = k2_options();
  bad.candidate_items = {1, 6};
  EXPECT_EQ(error_of([&] { evaluate(model, cases, data::Dataset(), bad); }),
            "candidate item 6 is outside the model's catalogue (6 items)");
  bad.candidate_items = {1, 2};
  bad.candidates = "sampled";
  EXPECT_THAT(error_of([&] { evaluate(model, cases, data::Dataset(), bad); }),
              HasSubstr("applies to full ranking only"));
}

// ---- output ------------------------------------------------------------------

TEST(Evaluate, JsonAndTable) {
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  auto r = evaluate_split(model, split, k2_options());
  auto j = r.to_json();
  for (auto key : {"protocol", "metrics", "groups", "users", "seconds"}) EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["users"], 3);
  EXPECT_NEAR(j["metrics"]["hr@2"].get<double>(), 2.0 / 3, kTol);
  EXPECT_GE(j["seconds"].get<double>(), 0.0);

  const std::string t = r.table("fixed");
  EXPECT_THAT(t, HasSubstr("== fixed =="));
  EXPECT_THAT(t, HasSubstr("protocol: random split 0.8 (seed 42) | full ranking over 6 items, "
                           "train items excluded | 3 users | K=2"));
  EXPECT_THAT(t, HasSubstr("ndcg"));
  EXPECT_THAT(t, HasSubstr("0.4623"));
  EXPECT_THAT(t, HasSubstr("auc"));
}

TEST(Evaluate, ComparisonTable) {
  auto split = tiny_split();
  FixedModel a(tiny_scores());
  FixedModel b(std::vector<float>(6, 1.0f));
  std::vector<std::pair<std::string, EvalResult>> results = {
      {"fixed", evaluate_split(a, split, k2_options())},
      {"constant", evaluate_split(b, split, k2_options())}};
  auto t = comparison_table(results, {"ndcg@2", "hr@2", "ndcg@99"});
  EXPECT_THAT(t, HasSubstr("protocol: random split 0.8"));
  EXPECT_THAT(t, HasSubstr("model"));
  EXPECT_THAT(t, HasSubstr("ndcg@99"));
  // One row per model, values aligned under the columns, "-" when missing.
  std::vector<std::string> lines;
  for (size_t p = 0, q; (q = t.find('\n', p)) != std::string::npos; p = q + 1)
    lines.push_back(t.substr(p, q - p));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_THAT(lines[2], ::testing::StartsWith("fixed"));
  EXPECT_THAT(lines[2], HasSubstr("0.4623"));
  EXPECT_THAT(lines[2], HasSubstr("0.6667"));
  EXPECT_THAT(lines[2], ::testing::EndsWith("-"));
  EXPECT_THAT(lines[3], ::testing::StartsWith("constant"));
  EXPECT_EQ(lines[2].size(), lines[3].size());
  EXPECT_EQ(lines[1].size(), lines[2].size());
}

TEST(Evaluate, ProgressIsReported) {
  struct Recorder : core::Monitor {
    std::mutex mu;
    std::string task;
    int64_t total = -1;
    void done(std::string_view t, int64_t n, double) override {
      std::lock_guard<std::mutex> lock(mu);
      task = t;
      total = n;
    }
  } rec;
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  evaluate_split(model, split, k2_options(), rec);
  EXPECT_EQ(rec.task, "evaluate");
  EXPECT_EQ(rec.total, 3);
}

// ---- config ------------------------------------------------------------------

std::string config_error(const std::vector<std::string>& sets) {
  core::Config c;
  for (const auto& s : sets) c.set(s);
  try {
    EvalOptions::from_config(c);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.message();
  }
  return "";
}

TEST(EvalOptions, Defaults) {
  core::Config c;
  auto o = EvalOptions::from_config(c);
  EXPECT_EQ(o.ks, std::vector<int>{10});
  EXPECT_EQ(o.candidates, "full");
  EXPECT_EQ(o.num_negatives, 100);
  EXPECT_TRUE(o.exclude_train);
  EXPECT_EQ(o.history_buckets, (std::vector<int>{5, 20, 50}));
  EXPECT_EQ(o.seed, 42u);
  // Every key carries a doc string.
  for (auto key : {"eval.k", "eval.metrics", "eval.auc", "eval.candidates", "eval.num_negatives",
                   "eval.negative_sampler", "eval.exclude_train", "eval.groups",
                   "eval.history_buckets", "eval.threads", "eval.seed"}) {
    ASSERT_TRUE(c.docs().count(key)) << key;
    EXPECT_FALSE(c.docs().at(key).second.empty()) << key;
  }
}

TEST(EvalOptions, ReadsEveryKey) {
  core::Config c;
  c.set("eval.k=[5, 20]");
  c.set("eval.metrics=[\"ndcg\", \"hr\"]");
  c.set("eval.auc=true");
  c.set("eval.candidates=sampled");
  c.set("eval.num_negatives=50");
  c.set("eval.negative_sampler=popularity");
  c.set("eval.exclude_train=false");
  c.set("eval.groups=false");
  c.set("eval.history_buckets=[2, 10]");
  c.set("eval.threads=3");
  c.set("eval.seed=7");
  auto o = EvalOptions::from_config(c);
  EXPECT_NO_THROW(c.check_all_used());
  EXPECT_EQ(o.ks, (std::vector<int>{5, 20}));
  EXPECT_EQ(o.metrics, (std::vector<std::string>{"ndcg", "hr"}));
  EXPECT_TRUE(o.auc);
  EXPECT_EQ(o.candidates, "sampled");
  EXPECT_EQ(o.num_negatives, 50);
  EXPECT_EQ(o.negative_sampler, "popularity");
  EXPECT_FALSE(o.exclude_train);
  EXPECT_FALSE(o.groups);
  EXPECT_EQ(o.history_buckets, (std::vector<int>{2, 10}));
  EXPECT_EQ(o.threads, 3);
  EXPECT_EQ(o.seed, 7u);
}

TEST(EvalOptions, KAcceptsIntOrList) {
  core::Config a;
  a.set("eval.k=20");
  EXPECT_EQ(EvalOptions::from_config(a).ks, std::vector<int>{20});
  core::Config b;
  b.set("eval.k=1,5,10");
  EXPECT_EQ(EvalOptions::from_config(b).ks, (std::vector<int>{1, 5, 10}));
}

TEST(EvalOptions, Errors) {
  auto m = config_error({"eval.candidates=fulll"});
  EXPECT_THAT(m, HasSubstr("eval.candidates"));
  EXPECT_THAT(m, HasSubstr("`fulll`"));
  EXPECT_THAT(m, HasSubstr("valid: full, sampled, cold_items"));

  m = config_error({"eval.metrics=[\"ndgc\", \"hr\"]"});
  EXPECT_THAT(m, HasSubstr("unknown metric `ndgc`"));
  EXPECT_THAT(m, HasSubstr("valid: hr, recall, precision, ndcg, mrr, map, auc"));

  m = config_error({"eval.negative_sampler=zipf"});
  EXPECT_THAT(m, HasSubstr("eval.negative_sampler"));
  EXPECT_THAT(m, HasSubstr("valid: uniform, popularity"));

  EXPECT_THAT(config_error({"eval.k=0"}), HasSubstr("eval.k: cut-offs must be positive"));
  EXPECT_THAT(config_error({"eval.k=[]"}), HasSubstr("eval.k"));
  EXPECT_THAT(config_error({"eval.k=ten"}), HasSubstr("eval.k"));
  EXPECT_THAT(config_error({"eval.num_negatives=0"}), HasSubstr("eval.num_negatives"));
  EXPECT_THAT(config_error({"eval.history_buckets=[20, 5]"}), HasSubstr("increasing"));

  // The same checks guard evaluate() itself.
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  EvalOptions o;
  o.candidates = "everything";
  EXPECT_THROW(evaluate_split(model, split, o), Error);
}

TEST(EvalOptions, ColdItemCandidates) {
  core::Config c;
  c.set("eval.candidates=cold_items");
  auto o = EvalOptions::from_config(c);
  EXPECT_EQ(o.candidates, "cold_items");
  EXPECT_TRUE(o.candidate_items.empty());  // filled from the split by evaluate_split
  EXPECT_THAT(c.docs().at("eval.candidates").second, HasSubstr("cold_items"));
  EXPECT_THAT(config_error({"eval.candidates=cold_item"}), HasSubstr("did you mean `cold_items`?"));
}

TEST(EvalOptions, AucInMetricsList) {
  core::Config c;
  c.set("eval.metrics=[\"ndcg\", \"auc\"]");
  auto o = EvalOptions::from_config(c);
  auto split = tiny_split();
  FixedModel model(tiny_scores());
  o.ks = {2};
  auto r = evaluate_split(model, split, o);
  EXPECT_EQ(r.metrics.size(), 2u);
  EXPECT_TRUE(r.metrics.count("ndcg@2"));
  EXPECT_NEAR(r.metrics.at("auc"), 0.5, kTol);
}

}  // namespace
}  // namespace fewrec::eval

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "fewrec/core/monitor.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/models/registry.h"
#include "test_util.h"

namespace fewrec::models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::error_of;
using testing::make_dataset;
using testing::new_user;

std::unique_ptr<Model> fitted(const std::string& spec, const data::Dataset& ds, int threads = 0) {
  auto m = model_registry().create(ModelSpec::parse(spec));
  TrainOptions opts;
  opts.threads = threads;
  m->fit(ds, opts, core::null_monitor());
  return m;
}

std::vector<float> scores_for(const Model& m, const std::vector<ItemIndex>& history) {
  auto state = m.adapt(new_user(history));
  std::vector<float> out(static_cast<size_t>(m.num_items()));
  m.score_all(*state, out);
  return out;
}

// Brute force: dense binary matrix, sim[h][j] = c_hj / (n_h^a * n_j^(1-a) + shrink), 0 on the diagonal.
std::vector<std::vector<double>> dense_similarity(int users, int items, const std::vector<std::pair<int, int>>& rows,
                                                  double shrink, double alpha) {
  std::vector<std::vector<int>> x(users, std::vector<int>(items, 0));
  for (auto [u, i] : rows) x[u][i] = 1;
  std::vector<std::vector<double>> sim(items, std::vector<double>(items, 0.0));
  for (int h = 0; h < items; ++h)
    for (int j = 0; j < items; ++j) {
      if (h == j) continue;
      double c = 0, nh = 0, nj = 0;
      for (int u = 0; u < users; ++u) {
        c += x[u][h] * x[u][j];
        nh += x[u][h];
        nj += x[u][j];
      }
      if (c > 0) sim[h][j] = c / (std::pow(nh, alpha) * std::pow(nj, 1 - alpha) + shrink);
    }
  return sim;
}

struct OracleCase {
  std::string spec;
  double shrink;
  double alpha;
};

TEST(ItemKnn, MatchesBruteForceSimilarityWhenKeepingAllNeighbours) {
  const int users = 40, items = 25;
  auto rows = testing::random_rows(users, items, 0.25, 11);
  auto ds = make_dataset(users, items, rows);
  for (const auto& c : {OracleCase{"itemknn:k=1000,shrink=0", 0.0, 0.5},
                        OracleCase{"itemknn:k=1000,shrink=3.5", 3.5, 0.5},
                        OracleCase{"itemknn:k=1000,shrink=1,alpha=0.8", 1.0, 0.8}}) {
    SCOPED_TRACE(c.spec);
    auto m = fitted(c.spec, ds);
    auto sim = dense_similarity(users, items, rows, c.shrink, c.alpha);
    // One history item h: score(j) = sim(h, j).
    for (ItemIndex h = 0; h < items; ++h) {
      auto s = scores_for(*m, {h});
      for (int j = 0; j < items; ++j) EXPECT_NEAR(s[j], sim[h][j], 1e-5) << "h=" << h << " j=" << j;
    }
    // Several history items (one repeated): the sum over distinct items.
    std::vector<ItemIndex> hist{3, 7, 3, 19};
    auto s = scores_for(*m, hist);
    for (int j = 0; j < items; ++j)
      EXPECT_NEAR(s[j], sim[3][j] + sim[7][j] + sim[19][j], 1e-5) << "j=" << j;
  }
}

TEST(ItemKnn, NormalizeDividesByTheNeighbourhoodTotal) {
  const int users = 30, items = 15;
  auto rows = testing::random_rows(users, items, 0.3, 17);
  auto ds = make_dataset(users, items, rows);
  auto m = fitted("itemknn:k=1000,shrink=1,normalize=true", ds);
  auto sim = dense_similarity(users, items, rows, 1.0, 0.5);
  for (ItemIndex h = 0; h < items; ++h) {
    auto s = scores_for(*m, {h});
    for (int j = 0; j < items; ++j) {
      double total = 0;
      for (int g = 0; g < items; ++g) total += sim[g][j];
      EXPECT_NEAR(s[j], total > 0 ? sim[h][j] / total : 0.0, 1e-5) << "h=" << h << " j=" << j;
    }
  }
}

TEST(ItemKnn, TopKTruncationKeepsEachItemsLargestNeighbours) {
  const int users = 50, items = 30, k = 4;
  auto rows = testing::random_rows(users, items, 0.3, 5);
  auto ds = make_dataset(users, items, rows);
  // No popularity prior: a history scores exactly its neighbours' similarities.
  auto m = fitted("itemknn:k=4,shrink=2,popularity_prior=0", ds);
  auto sim = dense_similarity(users, items, rows, 2.0, 0.5);
  // Each target item j keeps the k items h with the largest sim(h, j)
  // (ties by lower index): history {h} scores j iff h is one of them.
  std::vector<std::vector<float>> by_history(items);
  for (ItemIndex h = 0; h < items; ++h) by_history[h] = scores_for(*m, {h});
  for (int j = 0; j < items; ++j) {
    std::vector<int> order;
    for (int h = 0; h < items; ++h)
      if (h != j && sim[h][j] > 0) order.push_back(h);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return static_cast<float>(sim[a][j]) > static_cast<float>(sim[b][j]); });
    std::set<int> kept(order.begin(), order.begin() + std::min<size_t>(k, order.size()));
    int nonzero = 0;
    for (int h = 0; h < items; ++h) {
      const double expected = kept.count(h) ? sim[h][j] : 0.0;
      EXPECT_NEAR(by_history[h][j], expected, 1e-5) << "h=" << h << " j=" << j;
      nonzero += by_history[h][j] != 0.0f;
    }
    EXPECT_LE(nonzero, k);
  }
}

TEST(ItemKnn, ThreadCountDoesNotChangeTheModel) {
  auto rows = testing::random_rows(80, 60, 0.2, 9);
  auto ds = make_dataset(80, 60, rows);
  auto one = fitted("itemknn:k=7", ds, 1);
  auto many = fitted("itemknn:k=7", ds, 4);
  for (ItemIndex h = 0; h < 60; h += 3) EXPECT_EQ(scores_for(*one, {h, (h * 7) % 60}), scores_for(*many, {h, (h * 7) % 60}));
}

// Two groups of items that co-occur only inside the group.
data::Dataset two_groups() {
  std::vector<std::pair<int, int>> rows;
  for (int u = 0; u < 10; ++u)
    for (int i = 0; i < 5; ++i)
      if ((u + i) % 4 != 0) rows.emplace_back(u, i);  // group A: items 0..4
  for (int u = 10; u < 20; ++u)
    for (int i = 5; i < 10; ++i)
      if ((u + i) % 3 != 0) rows.emplace_back(u, i);  // group B: items 5..9
  return make_dataset(20, 10, rows);
}

TEST(ItemKnn, NewUserGetsCoOccurringItems) {
  auto ds = two_groups();
  auto m = fitted("itemknn", ds);
  auto ctx = new_user({1, 2});
  ASSERT_FALSE(ctx.user.has_value());
  auto recs = recommend(*m, ctx, 3);
  ASSERT_EQ(recs.size(), 3u);
  for (auto& [item, score] : recs) {
    EXPECT_LT(item, 5) << "group B item recommended from a group A history";
    EXPECT_NE(item, 1);
    EXPECT_NE(item, 2);
    EXPECT_GT(score, 0.0f);
  }
  auto b = recommend(*m, new_user({7}), 4);
  for (auto& [item, score] : b) EXPECT_GE(item, 5);
}

TEST(ItemKnn, KnownUserScoresLikeTheSameHistoryAsANewUser) {
  auto ds = two_groups();
  auto m = fitted("itemknn", ds);
  auto known = data::context_from_dataset(ds, 3, true);
  auto unknown = data::context_from_dataset(ds, 3, false);
  auto a = m->adapt(known), b = m->adapt(unknown);
  std::vector<float> sa(10), sb(10);
  m->score_all(*a, sa);
  m->score_all(*b, sb);
  EXPECT_EQ(sa, sb);
  EXPECT_EQ(a->seen, ds.item_set(3));
}

TEST(ItemKnn, EmptyHistoryScoresZeroAndItemsWithoutUsersHaveNoNeighbours) {
  // Item 3 has no interactions.
  auto ds = make_dataset(3, 4, {{0, 0}, {0, 1}, {1, 1}, {1, 2}, {2, 0}, {2, 2}});
  auto m = fitted("itemknn:popularity_prior=0", ds);
  EXPECT_THAT(scores_for(*m, {}), ElementsAre(0, 0, 0, 0));
  EXPECT_THAT(scores_for(*m, {3}), ElementsAre(0, 0, 0, 0));
  auto s = scores_for(*m, {0});
  EXPECT_EQ(s[0], 0.0f);
  EXPECT_GT(s[1], 0.0f);
  EXPECT_EQ(s[3], 0.0f);
}

// Item popularity as the model counts it: distinct users per item.
std::vector<int> user_counts(const std::vector<std::pair<int, int>>& rows, int items) {
  std::set<std::pair<int, int>> distinct(rows.begin(), rows.end());
  std::vector<int> n(static_cast<size_t>(items), 0);
  for (const auto& row : distinct) ++n[static_cast<size_t>(row.second)];
  return n;
}

TEST(ItemKnn, EmptyHistoryIsRankedByPopularity) {
  // Distinct users per item: i0 3, i1 2 (user 0 twice), i2 4, i3 0, i4 1.
  const std::vector<std::pair<int, int>> rows{{0, 0}, {1, 0}, {2, 0}, {0, 1}, {0, 1}, {3, 1},
                                              {0, 2}, {1, 2}, {2, 2}, {3, 2}, {1, 4}};
  auto ds = make_dataset(4, 5, rows);
  auto m = fitted("itemknn", ds);
  // An empty history scores the default prior 1e-6 * count / max count, and nothing else.
  auto s = scores_for(*m, {});
  const auto n = user_counts(rows, 5);
  ASSERT_EQ(n, (std::vector<int>{3, 2, 4, 0, 1}));
  for (int i = 0; i < 5; ++i) EXPECT_FLOAT_EQ(s[i], static_cast<float>(1e-6 * n[i] / 4.0)) << "item " << i;
  EXPECT_EQ(s[3], 0.0f);
  std::vector<ItemIndex> top;
  for (auto& [item, score] : recommend(*m, new_user({}), 5)) top.push_back(item);
  EXPECT_THAT(top, ElementsAre(2, 0, 1, 4, 3));
  // The popularity model (it counts rows, so drop the duplicate) agrees.
  auto distinct = make_dataset(4, 5, {{0, 0}, {1, 0}, {2, 0}, {0, 1}, {3, 1}, {0, 2}, {1, 2}, {2, 2}, {3, 2}, {1, 4}});
  std::vector<ItemIndex> knn_top, pop_top;
  for (auto& [item, score] : recommend(*fitted("itemknn", distinct), new_user({}), 5)) knn_top.push_back(item);
  for (auto& [item, score] : recommend(*fitted("popularity", distinct), new_user({}), 5)) pop_top.push_back(item);
  EXPECT_EQ(knn_top, pop_top);
  // Without the prior every item ties at zero.
  EXPECT_THAT(scores_for(*fitted("itemknn:popularity_prior=0", ds), {}), ElementsAre(0, 0, 0, 0, 0));
}

TEST(ItemKnn, DefaultPriorOnlyReordersExactTies) {
  // Item counts n = {4, 1, 4, 1, 1, 5, 3}. With shrink=0 and history {0}
  // (n_0 = 4), sim(0, j) = c_0j / (2 sqrt(n_j)):
  //   j=1: 1/2, j=2: 2/4 (tie with 1, more popular), j=3: 1/2 (tie, as popular as 1),
  //   j=4, j=5: 0 (tie, 5 more popular), j=6: 3/(2 sqrt 3) (alone).
  const std::vector<std::pair<int, int>> rows{
      {0, 0}, {0, 1}, {0, 6},  // user 0
      {1, 0}, {1, 2}, {1, 6},  // user 1
      {2, 0}, {2, 2}, {2, 6},  // user 2
      {3, 0}, {3, 3},          // user 3
      {4, 2}, {4, 5},          // user 4
      {5, 2}, {5, 5},          // user 5
      {6, 4}, {6, 5},          // user 6
      {7, 5}, {8, 5},          // users 7, 8
  };
  auto ds = make_dataset(9, 7, rows);
  const auto n = user_counts(rows, 7);
  ASSERT_EQ(n, (std::vector<int>{4, 1, 4, 1, 1, 5, 3}));
  auto plain = fitted("itemknn:shrink=0,popularity_prior=0", ds);
  auto with_prior = fitted("itemknn:shrink=0", ds);

  auto a = scores_for(*plain, {0});
  EXPECT_THAT(a, ElementsAre(0.0f, 0.5f, 0.5f, 0.5f, 0.0f, 0.0f, static_cast<float>(3 / (2 * std::sqrt(3.0)))));
  auto top = [](const Model& m, const std::vector<ItemIndex>& history) {
    std::vector<ItemIndex> items;
    for (auto& [item, score] : recommend(m, new_user(history), 10)) items.push_back(item);
    return items;
  };
  // Ties go to the lower index without the prior, to the more popular item with it.
  EXPECT_THAT(top(*plain, {0}), ElementsAre(6, 1, 2, 3, 4, 5));
  EXPECT_THAT(top(*with_prior, {0}), ElementsAre(6, 2, 1, 3, 5, 4));

  // In general, for any history: every score moves by its prior only, pairs
  // ordered without the prior keep their order, exact ties are broken by
  // popularity and equally popular items stay tied.
  for (const auto& history : std::vector<std::vector<ItemIndex>>{{}, {0}, {2}, {5}, {0, 5}, {1, 3, 4}, {6, 2}}) {
    SCOPED_TRACE(::testing::PrintToString(history));
    auto p = scores_for(*plain, history);
    auto q = scores_for(*with_prior, history);
    for (int i = 0; i < 7; ++i)
      EXPECT_NEAR(q[i] - p[i], 1e-6 * n[i] / 5.0, 3e-7) << "item " << i;  // within float rounding
    for (int i = 0; i < 7; ++i)
      for (int j = 0; j < 7; ++j) {
        if (p[i] > p[j]) EXPECT_GT(q[i], q[j]) << i << " vs " << j;
        if (p[i] == p[j] && n[i] > n[j]) EXPECT_GT(q[i], q[j]) << i << " vs " << j;
        if (p[i] == p[j] && n[i] == n[j]) EXPECT_EQ(q[i], q[j]) << i << " vs " << j;
      }
  }
}

TEST(ItemKnn, LargePriorRanksByPopularity) {
  // Item i is used by users 0..i: counts 1..8, all distinct, and every pair
  // co-occurs. With prior 10 one step of popularity is worth 10/8 = 1.25,
  // more than any history of two items can add (each sim < 0.6 with shrink 5).
  std::vector<std::pair<int, int>> rows;
  for (int i = 0; i < 8; ++i)
    for (int u = 0; u <= i; ++u) rows.emplace_back(u, i);
  auto ds = make_dataset(8, 8, rows);
  auto knn = fitted("itemknn:popularity_prior=10", ds);
  auto pop = fitted("popularity", ds);
  auto plain = fitted("itemknn:popularity_prior=0", ds);
  auto top = [](const Model& m, const std::vector<ItemIndex>& history) {
    std::vector<ItemIndex> items;
    for (auto& [item, score] : recommend(m, new_user(history), 8)) items.push_back(item);
    return items;
  };
  bool differs_without_prior = false;
  for (const auto& history : std::vector<std::vector<ItemIndex>>{{}, {0}, {3}, {7}, {0, 1}, {2, 6}, {6, 7}}) {
    SCOPED_TRACE(::testing::PrintToString(history));
    EXPECT_EQ(top(*knn, history), top(*pop, history));
    differs_without_prior |= top(*plain, history) != top(*pop, history);
  }
  // The example is not trivial: plain item-KNN ranks differently.
  EXPECT_TRUE(differs_without_prior);
}

TEST(ItemKnn, ScoreMatchesScoreAllAndChecksItsInputs) {
  auto ds = two_groups();
  auto m = fitted("itemknn", ds);
  auto state = m->adapt(new_user({0, 6}));
  std::vector<float> all(10);
  m->score_all(*state, all);
  std::vector<ItemIndex> items{9, 0, 4};
  std::vector<float> out(3);
  m->score(*state, items, out);
  EXPECT_EQ(out[0], all[9]);
  EXPECT_EQ(out[1], all[0]);
  EXPECT_EQ(out[2], all[4]);
  std::vector<float> short_out(2);
  EXPECT_THAT(error_of([&] { m->score(*state, items, short_out); }, ErrorCode::kInvalidArgument),
              HasSubstr("got 3 items but an output of 2 scores"));
  std::vector<ItemIndex> bad{10};
  std::vector<float> one(1);
  EXPECT_THAT(error_of([&] { m->score(*state, bad, one); }, ErrorCode::kInvalidArgument),
              HasSubstr("item index 10 is outside the catalogue (10 items)"));
  EXPECT_EQ(error_of([&] { m->adapt(new_user({-1})); }, ErrorCode::kInvalidArgument),
            "model `itemknn`: history item index -1 is outside the catalogue (10 items)");
  UserState foreign;
  EXPECT_THAT(error_of([&] { m->score_all(foreign, all); }, ErrorCode::kInvalidArgument),
              HasSubstr("not made by this model's adapt()"));
}

TEST(ItemKnn, CannotAddItemsFromContent) {
  auto ds = two_groups();
  auto m = fitted("itemknn", ds);
  EXPECT_EQ(error_of([&] { m->add_items(ds.catalogue(), 10); }, ErrorCode::kUnavailable),
            "model `itemknn` cannot add items from content");
}

TEST(ItemKnn, ReportsProgress) {
  struct Recorder final : core::Monitor {
    void info(std::string_view m) override { infos.emplace_back(m); }
    void done(std::string_view task, int64_t total, double) override { tasks.emplace_back(task), totals.push_back(total); }
    std::vector<std::string> infos, tasks;
    std::vector<int64_t> totals;
  } rec;
  auto ds = two_groups();
  auto m = model_registry().create(ModelSpec::parse("itemknn"));
  m->fit(ds, TrainOptions{}, rec);
  ASSERT_FALSE(rec.infos.empty());
  EXPECT_THAT(rec.infos[0], HasSubstr("itemknn: 10 items"));
  ASSERT_EQ(rec.tasks.size(), 1u);
  EXPECT_EQ(rec.totals[0], 10);
  EXPECT_EQ(m->summary()["items"], 10);
}

// Quality floor on synthetic data with planted structure: item-KNN beats
// popularity on held-out last interactions (leave-last-out, HR@10).
class ItemKnnQuality : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ItemKnnQuality, BeatsPopularityOnSyntheticData) {
  data::SyntheticOptions so;
  so.num_users = 1000;
  so.num_items = 300;
  so.seed = GetParam();
  auto full = data::make_synthetic(so);
  // Hold out each user's last interaction.
  std::vector<std::pair<UserIndex, ItemIndex>> held;
  std::vector<int64_t> last_row(full.num_users(), -1);
  for (UserIndex u = 0; u < full.num_users(); ++u)
    if (full.history_size(u) >= 2) last_row[u] = full.user_offsets()[u + 1] - 1;
  std::vector<data::Interaction> train_rows;
  for (UserIndex u = 0; u < full.num_users(); ++u)
    for (int64_t r = full.user_offsets()[u]; r < full.user_offsets()[u + 1]; ++r) {
      if (r == last_row[u]) held.emplace_back(u, full.item_column()[r]);
      else train_rows.push_back(full.row(r));
    }
  data::Dataset train(full.catalogue_ptr(), std::move(train_rows), "train");
  auto hit_rate = [&](const Model& m) {
    int hits = 0, n = 0;
    for (auto [u, item] : held) {
      auto ctx = data::context_from_dataset(train, u);
      auto seen = m.adapt(ctx)->seen;
      if (std::binary_search(seen.begin(), seen.end(), item)) continue;  // repeat: not rankable
      ++n;
      for (auto& [i, s] : recommend(m, ctx, 10)) hits += i == item;
    }
    return static_cast<double>(hits) / std::max(1, n);
  };
  const double pop = hit_rate(*fitted("popularity", train));
  const double knn = hit_rate(*fitted("itemknn", train));
  RecordProperty("hr10_popularity", std::to_string(pop));
  RecordProperty("hr10_itemknn", std::to_string(knn));
  EXPECT_GT(knn, pop * 1.15) << "itemknn HR@10 " << knn << " vs popularity " << pop;
}

INSTANTIATE_TEST_SUITE_P(Seeds, ItemKnnQuality, ::testing::Values(3, 4, 5));

}  // namespace
}  // namespace fewrec::models

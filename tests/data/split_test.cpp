#include "fewrec/data/split.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"

namespace fewrec::data {
namespace {

using ::testing::HasSubstr;

// 60 users with 1..20 rows each over 40 items; timestamps in [0, 500) so
// some ties occur; rows added in a shuffled order.
Dataset make_data(uint64_t seed = 7) {
  core::Rng rng(seed);
  DatasetBuilder b;
  for (int i = 0; i < 40; ++i) b.item(fmt::format("i{}", i));
  std::vector<Interaction> rows;
  for (int u = 0; u < 60; ++u) {
    auto ui = b.user(fmt::format("u{}", u));
    int n = 1 + static_cast<int>(core::uniform_index(rng, 20));
    for (int k = 0; k < n; ++k)
      rows.push_back({ui, static_cast<ItemIndex>(core::uniform_index(rng, 40)),
                      static_cast<int64_t>(core::uniform_index(rng, 500)),
                      static_cast<float>(1 + core::uniform_index(rng, 5))});
  }
  for (size_t i = rows.size(); i > 1; --i) std::swap(rows[i - 1], rows[core::uniform_index(rng, i)]);
  for (const auto& r : rows) b.add(r.user, r.item, r.timestamp, r.value);
  return std::move(b).build("synthetic");
}

using Key = std::tuple<UserIndex, ItemIndex, int64_t, float>;
std::multiset<Key> keys(const Dataset& ds) {
  std::multiset<Key> out;
  for (const auto& r : ds.rows()) out.emplace(r.user, r.item, r.timestamp, r.value);
  return out;
}

// The parts partition the source rows exactly (as multisets).
void expect_partition(const Dataset& ds, const Split& s) {
  EXPECT_EQ(s.train.num_interactions() + s.valid.num_interactions() + s.test.num_interactions() +
                s.support.num_interactions() + s.hidden.num_interactions(),
            ds.num_interactions());
  std::multiset<Key> all;
  for (const Dataset* part : {&s.train, &s.valid, &s.test, &s.support, &s.hidden}) {
    EXPECT_EQ(part->catalogue_ptr(), ds.catalogue_ptr());
    auto k = keys(*part);
    all.insert(k.begin(), k.end());
  }
  EXPECT_EQ(all, keys(ds));
}

SplitOptions opts(SplitKind kind, uint64_t seed = 42) {
  SplitOptions o;
  o.kind = kind;
  o.seed = seed;
  return o;
}

TEST(SplitKind, NamesRoundTrip) {
  for (auto k : {SplitKind::kRandom, SplitKind::kRandomUser, SplitKind::kTemporal,
                 SplitKind::kLeaveOneOut, SplitKind::kColdUsers, SplitKind::kColdItems})
    EXPECT_EQ(parse_split_kind(split_kind_name(k)), k);
  EXPECT_STREQ(split_kind_name(SplitKind::kLeaveOneOut), "leave_one_out");
}

TEST(SplitKind, UnknownNameListsTheValidOnes) {
  try {
    parse_split_kind("temporl");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.message(), HasSubstr("`temporl`"));
    EXPECT_THAT(e.message(),
                HasSubstr("random, random_user, temporal, leave_one_out, cold_users, cold_items"));
    EXPECT_THAT(e.message(), HasSubstr("did you mean `temporal`"));
  }
}

TEST(SplitOptions, FractionValidation) {
  Dataset ds = make_data();
  for (double bad : {0.0, -0.1, 1.5}) {
    SplitOptions o = opts(SplitKind::kRandom);
    o.train_fraction = bad;
    try {
      make_split(ds, o);
      FAIL() << "expected an error for " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_THAT(e.message(), HasSubstr("split.train_fraction must be in (0, 1]"));
    }
  }
  SplitOptions o = opts(SplitKind::kRandom);
  o.train_fraction = 0.8;
  o.valid_fraction = 0.3;
  EXPECT_THROW(make_split(ds, o), Error);
  o.valid_fraction = 0.2;
  EXPECT_NO_THROW(make_split(ds, o));
  o = opts(SplitKind::kColdUsers);
  o.cold_user_fraction = 0;
  EXPECT_THROW(make_split(ds, o), Error);
}

TEST(SplitOptions, FromConfigReadsEveryKey) {
  core::Config c;
  c.set("split.kind=cold_users");
  c.set("split.train_fraction=0.7");
  c.set("split.valid_fraction=0.1");
  c.set("split.seed=9");
  c.set("split.loo_valid=true");
  c.set("split.cold_user_fraction=0.3");
  c.set("split.shots=3");
  c.set("split.min_history=8");
  c.set("split.cold_item_fraction=0.25");
  c.set("split.cold_items=random");
  auto o = SplitOptions::from_config(c);
  EXPECT_EQ(o.kind, SplitKind::kColdUsers);
  EXPECT_DOUBLE_EQ(o.train_fraction, 0.7);
  EXPECT_DOUBLE_EQ(o.valid_fraction, 0.1);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_TRUE(o.loo_valid);
  EXPECT_DOUBLE_EQ(o.cold_user_fraction, 0.3);
  EXPECT_EQ(o.shots, 3);
  EXPECT_EQ(o.min_history, 8);
  EXPECT_DOUBLE_EQ(o.cold_item_fraction, 0.25);
  EXPECT_FALSE(o.cold_items_newest);
  EXPECT_NO_THROW(c.check_all_used());

  core::Config defaults;
  auto d = SplitOptions::from_config(defaults);
  EXPECT_EQ(d.kind, SplitKind::kRandom);
  EXPECT_DOUBLE_EQ(d.train_fraction, 0.8);
  EXPECT_EQ(d.seed, 42u);
  EXPECT_TRUE(d.cold_items_newest);
}

TEST(SplitOptions, FromConfigErrors) {
  core::Config kind;
  kind.set("split.kind=loo");
  try {
    SplitOptions::from_config(kind);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("valid kinds: random, random_user"));
  }
  core::Config frac;
  frac.set("split.train_fraction=1.2");
  try {
    SplitOptions::from_config(frac);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("split.train_fraction must be in (0, 1], got 1.2"));
  }
  core::Config cold;
  cold.set("split.cold_items=oldest");
  try {
    SplitOptions::from_config(cold);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("`newest` or `random`"));
  }
}

TEST(RandomSplit, ExactSizesPartitionAndDeterminism) {
  Dataset ds = make_data();
  const int64_t n = ds.num_interactions();
  SplitOptions o = opts(SplitKind::kRandom, 1);
  o.train_fraction = 0.8;
  o.valid_fraction = 0.1;
  Split s = make_split(ds, o);
  expect_partition(ds, s);
  EXPECT_EQ(s.train.num_interactions(), std::llround(0.8 * static_cast<double>(n)));
  EXPECT_EQ(s.valid.num_interactions(), std::llround(0.1 * static_cast<double>(n)));
  EXPECT_EQ(s.train.name(), "synthetic/train");

  Split again = make_split(ds, o);
  EXPECT_EQ(keys(again.train), keys(s.train));
  EXPECT_EQ(keys(again.valid), keys(s.valid));
  EXPECT_EQ(keys(again.test), keys(s.test));
  o.seed = 2;
  EXPECT_NE(keys(make_split(ds, o).train), keys(s.train));

  SplitOptions all = opts(SplitKind::kRandom);
  all.train_fraction = 1.0;
  Split everything = make_split(ds, all);
  EXPECT_EQ(everything.train.num_interactions(), n);
  EXPECT_EQ(everything.test.num_interactions(), 0);
}

TEST(RandomUserSplit, EveryUserKeepsTrainAndTest) {
  Dataset ds = make_data();
  SplitOptions o = opts(SplitKind::kRandomUser, 3);
  o.train_fraction = 0.7;
  o.valid_fraction = 0.1;
  Split s = make_split(ds, o);
  expect_partition(ds, s);
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    const int64_t n = ds.history_size(u);
    if (n == 1) {
      EXPECT_EQ(s.train.history_size(u), 1);
      continue;
    }
    EXPECT_GE(s.train.history_size(u), 1) << u;
    EXPECT_GE(s.test.history_size(u), 1) << u;
    const int64_t expect_train =
        std::clamp<int64_t>(std::llround(0.7 * static_cast<double>(n)), 1, n - 1);
    EXPECT_EQ(s.train.history_size(u), expect_train) << u;
  }
  EXPECT_GT(s.valid.num_interactions(), 0);
  EXPECT_EQ(keys(make_split(ds, o).test), keys(s.test));
  o.seed = 4;
  EXPECT_NE(keys(make_split(ds, o).test), keys(s.test));
}

TEST(TemporalSplit, EveryTrainRowIsOlderThanEveryTestRow) {
  Dataset ds = make_data();
  SplitOptions o = opts(SplitKind::kTemporal);
  o.train_fraction = 0.7;
  o.valid_fraction = 0.15;
  Split s = make_split(ds, o);
  expect_partition(ds, s);
  auto max_ts = [](const Dataset& d) {
    auto t = d.timestamp_column();
    return *std::max_element(t.begin(), t.end());
  };
  auto min_ts = [](const Dataset& d) {
    auto t = d.timestamp_column();
    return *std::min_element(t.begin(), t.end());
  };
  ASSERT_GT(s.train.num_interactions(), 0);
  ASSERT_GT(s.valid.num_interactions(), 0);
  ASSERT_GT(s.test.num_interactions(), 0);
  EXPECT_LT(max_ts(s.train), min_ts(s.valid));
  EXPECT_LT(max_ts(s.valid), min_ts(s.test));
  // Close to the requested fractions (ties at the cut only move a few rows).
  const double n = static_cast<double>(ds.num_interactions());
  EXPECT_NEAR(static_cast<double>(s.train.num_interactions()) / n, 0.7, 0.03);
  EXPECT_NEAR(static_cast<double>(s.valid.num_interactions()) / n, 0.15, 0.03);
  auto d = s.describe();
  EXPECT_EQ(d["kind"], "temporal");
  EXPECT_EQ(d["train_time_max"], max_ts(s.train));
}

TEST(LeaveOneOutSplit, HoldsOutTheLatestRows) {
  Dataset ds = make_data();
  Split s = make_split(ds, opts(SplitKind::kLeaveOneOut));
  expect_partition(ds, s);
  EXPECT_EQ(s.valid.num_interactions(), 0);
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    auto h = ds.history(u);
    if (h.size() < 2) {
      EXPECT_EQ(s.test.history_size(u), 0);
      continue;
    }
    ASSERT_EQ(s.test.history_size(u), 1);
    auto t = s.test.history(u);
    EXPECT_EQ(t.items[0], h.items[h.size() - 1]);
    EXPECT_EQ(t.timestamps[0], *std::max_element(h.timestamps.begin(), h.timestamps.end()));
    EXPECT_EQ(s.train.history_size(u), static_cast<int64_t>(h.size()) - 1);
  }

  SplitOptions with_valid = opts(SplitKind::kLeaveOneOut);
  with_valid.loo_valid = true;
  Split v = make_split(ds, with_valid);
  expect_partition(ds, v);
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    auto h = ds.history(u);
    if (h.size() < 3) {
      EXPECT_EQ(v.train.history_size(u), static_cast<int64_t>(h.size()));
      continue;
    }
    ASSERT_EQ(v.valid.history_size(u), 1);
    EXPECT_EQ(v.valid.history(u).items[0], h.items[h.size() - 2]);
    EXPECT_EQ(v.test.history(u).items[0], h.items[h.size() - 1]);
  }
}

TEST(LeaveOneOutSplit, LastByTimeNotByInputOrder) {
  DatasetBuilder b;
  auto u = b.user("u");
  auto a = b.item("a"), c = b.item("c"), d = b.item("d");
  b.add(u, c, 300, 1);  // latest, added first
  b.add(u, a, 100, 1);
  b.add(u, d, 200, 1);
  Dataset ds = std::move(b).build();
  SplitOptions o = opts(SplitKind::kLeaveOneOut);
  o.valid_fraction = 0.1;  // valid_fraction > 0 also enables the valid row
  Split s = make_split(ds, o);
  ASSERT_EQ(s.test.num_interactions(), 1);
  EXPECT_EQ(s.test.item_column()[0], c);
  ASSERT_EQ(s.valid.num_interactions(), 1);
  EXPECT_EQ(s.valid.item_column()[0], d);
  EXPECT_EQ(s.train.item_column()[0], a);
}

TEST(ColdUserSplit, SupportIsTheFirstShotsAndHeldOutUsersAreAbsentFromTrain) {
  Dataset ds = make_data();
  SplitOptions o = opts(SplitKind::kColdUsers, 5);
  o.shots = 3;
  o.cold_user_fraction = 0.25;
  Split s = make_split(ds, o);
  expect_partition(ds, s);
  ASSERT_TRUE(std::is_sorted(s.cold_users.begin(), s.cold_users.end()));
  int64_t eligible = 0;
  for (UserIndex u = 0; u < ds.num_users(); ++u) eligible += ds.history_size(u) >= 4;
  EXPECT_EQ(static_cast<int64_t>(s.cold_users.size()), std::llround(0.25 * static_cast<double>(eligible)));
  std::set<UserIndex> cold(s.cold_users.begin(), s.cold_users.end());
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    auto h = ds.history(u);
    if (!cold.count(u)) {
      EXPECT_EQ(s.train.history_size(u), static_cast<int64_t>(h.size()));
      EXPECT_EQ(s.support.history_size(u), 0);
      EXPECT_EQ(s.test.history_size(u), 0);
      continue;
    }
    EXPECT_GE(h.size(), 4u);
    EXPECT_EQ(s.train.history_size(u), 0) << "held-out user " << u << " leaked into train";
    auto sup = s.support.history(u);
    ASSERT_EQ(sup.size(), 3u);
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(sup.items[k], h.items[k]);
      EXPECT_EQ(sup.timestamps[k], h.timestamps[k]);
    }
    auto q = s.test.history(u);
    EXPECT_EQ(q.size(), h.size() - 3);
    EXPECT_LE(sup.timestamps[2], q.timestamps[0]);
  }
  EXPECT_EQ(s.describe()["cold_users"], s.cold_users.size());
  EXPECT_EQ(s.describe()["support_rows"], s.support.num_interactions());

  EXPECT_EQ(make_split(ds, o).cold_users, s.cold_users);
  o.seed = 6;
  EXPECT_NE(make_split(ds, o).cold_users, s.cold_users);
}

TEST(ColdUserSplit, ShotCurveKeepsTheSameUsers) {
  Dataset ds = make_data();
  SplitOptions o = opts(SplitKind::kColdUsers, 11);
  o.shots = 5;
  o.min_history = 10;
  Split base = make_split(ds, o);
  for (UserIndex u : base.cold_users) EXPECT_GE(ds.history_size(u), 10);
  for (int shots : {0, 1, 3, 20}) {
    Split s = make_cold_user_split(ds, o, shots);
    expect_partition(ds, s);
    EXPECT_EQ(s.cold_users, base.cold_users) << shots;
    EXPECT_EQ(s.options.shots, shots);
    for (UserIndex u : s.cold_users) {
      const int64_t n = ds.history_size(u);
      EXPECT_EQ(s.support.history_size(u), std::min<int64_t>(shots, n));
      EXPECT_EQ(s.test.history_size(u), std::max<int64_t>(n - shots, 0));
      EXPECT_EQ(s.train.history_size(u), 0);
    }
  }
}

TEST(ColdUserSplit, FixedQueryIsTheSameForEveryShotAndHidesTheRowsBetween) {
  Dataset ds = make_data();
  SplitOptions o = opts(SplitKind::kColdUsers, 11);
  o.min_history = 8;
  o.query_from = 5;
  std::vector<Dataset> queries;
  for (int shots : {0, 2, 5}) {
    Split s = make_cold_user_split(ds, o, shots);
    expect_partition(ds, s);
    ASSERT_FALSE(s.cold_users.empty());
    for (UserIndex u : s.cold_users) {
      auto h = ds.history(u);
      auto sup = s.support.history(u), hid = s.hidden.history(u), q = s.test.history(u);
      ASSERT_EQ(sup.size(), static_cast<size_t>(shots));
      ASSERT_EQ(hid.size(), static_cast<size_t>(5 - shots));
      ASSERT_EQ(q.size(), h.size() - 5);
      for (size_t k = 0; k < hid.size(); ++k) EXPECT_EQ(hid.items[k], h.items[static_cast<size_t>(shots) + k]);
      for (size_t k = 0; k < q.size(); ++k) EXPECT_EQ(q.items[k], h.items[5 + k]);
    }
    EXPECT_EQ(s.describe()["query_from"], 5);
    if (shots < 5) EXPECT_EQ(s.describe()["hidden_rows"], s.hidden.num_interactions());
    queries.push_back(std::move(s.test));
  }
  for (const auto& q : queries) EXPECT_EQ(keys(q), keys(queries[0]));

  // A query that would overlap the support is refused.
  try {
    make_cold_user_split(ds, o, 6);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("split.query_from (5) must be 0 or >= the support size N (6)"));
  }
}

std::vector<int64_t> first_seen(const Dataset& ds) {
  std::vector<int64_t> out(static_cast<size_t>(ds.num_items()), std::numeric_limits<int64_t>::max());
  for (const auto& r : ds.rows()) out[static_cast<size_t>(r.item)] = std::min(out[static_cast<size_t>(r.item)], r.timestamp);
  return out;
}

TEST(ColdItemSplit, NewestItemsAreHeldOutOfTrain) {
  Dataset ds = make_data();
  SplitOptions o = opts(SplitKind::kColdItems);
  o.cold_item_fraction = 0.2;
  Split s = make_split(ds, o);
  expect_partition(ds, s);
  const auto active = ds.num_active_items();
  EXPECT_EQ(static_cast<int64_t>(s.cold_items.size()), std::llround(0.2 * active));
  ASSERT_TRUE(std::is_sorted(s.cold_items.begin(), s.cold_items.end()));
  std::set<ItemIndex> cold(s.cold_items.begin(), s.cold_items.end());
  auto seen = first_seen(ds);
  int64_t oldest_cold = std::numeric_limits<int64_t>::max();
  for (auto i : s.cold_items) oldest_cold = std::min(oldest_cold, seen[static_cast<size_t>(i)]);
  const auto counts = ds.item_counts();
  for (ItemIndex i = 0; i < ds.num_items(); ++i) {
    if (cold.count(i) || counts[static_cast<size_t>(i)] == 0) continue;
    EXPECT_LE(seen[static_cast<size_t>(i)], oldest_cold) << i;
  }
  for (auto it : s.train.item_column()) EXPECT_FALSE(cold.count(it));
  for (auto it : s.test.item_column()) EXPECT_TRUE(cold.count(it));
  EXPECT_EQ(s.test.num_interactions(),
            std::count_if(ds.item_column().begin(), ds.item_column().end(),
                          [&](ItemIndex i) { return cold.count(i) > 0; }));
}

TEST(ColdItemSplit, RandomChoiceDependsOnTheSeed) {
  Dataset ds = make_data();
  SplitOptions o = opts(SplitKind::kColdItems, 1);
  o.cold_items_newest = false;
  o.cold_item_fraction = 0.3;
  Split s = make_split(ds, o);
  expect_partition(ds, s);
  EXPECT_EQ(make_split(ds, o).cold_items, s.cold_items);
  o.seed = 2;
  EXPECT_NE(make_split(ds, o).cold_items, s.cold_items);
  for (auto it : s.train.item_column())
    EXPECT_FALSE(std::binary_search(s.cold_items.begin(), s.cold_items.end(), it));
}

TEST(Split, DescribeReportsOptionsAndSizes) {
  Dataset ds = make_data();
  SplitOptions o = opts(SplitKind::kRandom, 5);
  Split s = make_split(ds, o);
  auto d = s.describe();
  EXPECT_EQ(d["kind"], "random");
  EXPECT_EQ(d["seed"], 5);
  EXPECT_DOUBLE_EQ(d["train_fraction"].get<double>(), 0.8);
  EXPECT_EQ(d["train_rows"], s.train.num_interactions());
  EXPECT_EQ(d["test_rows"], s.test.num_interactions());
  EXPECT_EQ(d["valid_rows"], 0);
}

}  // namespace
}  // namespace fewrec::data

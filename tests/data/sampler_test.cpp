#include "fewrec/data/sampler.h"

#include <algorithm>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fewrec/core/error.h"

namespace fewrec::data {
namespace {

using ::testing::HasSubstr;

// `num_items` items; item i has counts[i] interactions (spread over users).
Dataset with_counts(const std::vector<int>& counts) {
  DatasetBuilder b;
  for (size_t i = 0; i < counts.size(); ++i) b.item(fmt::format("i{}", i));
  for (size_t i = 0; i < counts.size(); ++i)
    for (int k = 0; k < counts[i]; ++k)
      b.add(b.user(fmt::format("u{}", k)), static_cast<ItemIndex>(i), static_cast<int64_t>(i), 1.0f);
  return std::move(b).build();
}

Dataset uniform_items(int n) { return with_counts(std::vector<int>(static_cast<size_t>(n), 1)); }

// Every k-th item excluded, as a sorted list.
std::vector<ItemIndex> exclude_range(int n, int count, uint64_t seed) {
  std::vector<ItemIndex> all(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  core::Rng rng(seed);
  for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[core::uniform_index(rng, i)]);
  all.resize(static_cast<size_t>(count));
  std::sort(all.begin(), all.end());
  return all;
}

// Pearson chi-square of observed counts against expected probabilities.
double chi_square(const std::vector<int64_t>& observed, const std::vector<double>& p, int64_t draws) {
  double chi = 0;
  for (size_t i = 0; i < observed.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(observed[i], 0) << "item " << i << " has probability 0";
      continue;
    }
    double e = p[i] * static_cast<double>(draws);
    double d = static_cast<double>(observed[i]) - e;
    chi += d * d / e;
  }
  return chi;
}

TEST(NegativeKind, Parse) {
  EXPECT_EQ(parse_negative_kind("uniform"), NegativeKind::kUniform);
  EXPECT_EQ(parse_negative_kind("popularity"), NegativeKind::kPopularity);
  try {
    parse_negative_kind("popular");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.message(), HasSubstr("uniform, popularity"));
  }
}

TEST(NegativeSampler, NeverReturnsExcludedItems) {
  const int n = 50;
  Dataset ds = with_counts([] {
    std::vector<int> c(50);
    for (int i = 0; i < 50; ++i) c[static_cast<size_t>(i)] = i % 7;
    return c;
  }());
  for (auto kind : {NegativeKind::kUniform, NegativeKind::kPopularity}) {
    NegativeSampler sampler(ds, kind);
    EXPECT_EQ(sampler.kind(), kind);
    core::Rng rng(3);
    // 0%, 20%, 88% (rejection), 92% and 98% (enumeration) of the catalogue.
    for (int count : {0, 10, 44, 46, 49}) {
      auto exclude = exclude_range(n, count, static_cast<uint64_t>(count));
      std::set<ItemIndex> seen;
      for (int t = 0; t < 3000; ++t) {
        ItemIndex i = sampler.sample(exclude, rng);
        ASSERT_GE(i, 0);
        ASSERT_LT(i, n);
        ASSERT_FALSE(std::binary_search(exclude.begin(), exclude.end(), i)) << count;
        seen.insert(i);
      }
      EXPECT_EQ(static_cast<int>(seen.size()), n - count) << "every admissible item is drawn";
    }
  }
}

TEST(NegativeSampler, AllExcludedIsAnError) {
  Dataset ds = uniform_items(5);
  NegativeSampler sampler(ds, NegativeKind::kUniform);
  core::Rng rng(1);
  std::vector<ItemIndex> all = {0, 1, 2, 3, 4};
  try {
    sampler.sample(all, rng);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.message(), HasSubstr("all 5 items are excluded"));
  }
  EXPECT_TRUE(sampler.sample_distinct(all, 3, rng).empty());
}

TEST(NegativeSampler, UniformFrequenciesAreFlat) {
  Dataset ds = uniform_items(20);
  NegativeSampler sampler(ds, NegativeKind::kUniform);
  core::Rng rng(11);
  std::vector<ItemIndex> exclude = {2, 3, 17};
  const int64_t draws = 100000;
  std::vector<int64_t> observed(20, 0);
  for (int64_t t = 0; t < draws; ++t) ++observed[static_cast<size_t>(sampler.sample(exclude, rng))];
  std::vector<double> p(20, 1.0 / 17);
  for (auto e : exclude) p[static_cast<size_t>(e)] = 0;
  // 16 degrees of freedom: P(chi2 > 39.3) = 0.001.
  EXPECT_LT(chi_square(observed, p, draws), 39.3);
}

TEST(NegativeSampler, PopularityFrequenciesFollowCountsPlusOne) {
  std::vector<int> counts = {0, 1, 2, 4, 8, 16, 32, 64, 0, 3};
  Dataset ds = with_counts(counts);
  NegativeSampler sampler(ds, NegativeKind::kPopularity);
  auto expected = [&](const std::vector<ItemIndex>& exclude) {
    std::vector<double> p(counts.size());
    double total = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      if (std::binary_search(exclude.begin(), exclude.end(), static_cast<ItemIndex>(i))) continue;
      p[i] = counts[i] + 1.0;
      total += p[i];
    }
    for (auto& x : p) x /= total;
    return p;
  };
  const int64_t draws = 200000;
  // No exclusion (alias draws), a light exclusion (rejection) and one that
  // removes > 90% of the mass (enumeration).
  for (const std::vector<ItemIndex>& exclude :
       {std::vector<ItemIndex>{}, std::vector<ItemIndex>{1, 4}, std::vector<ItemIndex>{3, 4, 5, 6, 7}}) {
    core::Rng rng(2024);
    std::vector<int64_t> observed(counts.size(), 0);
    for (int64_t t = 0; t < draws; ++t) ++observed[static_cast<size_t>(sampler.sample(exclude, rng))];
    auto p = expected(exclude);
    // <= 9 degrees of freedom: P(chi2 > 27.9) = 0.001.
    EXPECT_LT(chi_square(observed, p, draws), 27.9) << "exclude size " << exclude.size();
  }
  // The popular item clearly dominates the unpopular ones.
  core::Rng rng(5);
  int64_t top = 0, zero = 0;
  for (int t = 0; t < 10000; ++t) {
    auto i = sampler.sample({}, rng);
    top += i == 7;
    zero += i == 0;
  }
  EXPECT_GT(top, 20 * zero);
}

TEST(NegativeSampler, SampleDistinct) {
  const int n = 100;
  std::vector<int> counts(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) counts[static_cast<size_t>(i)] = (i * 37) % 11;
  Dataset ds = with_counts(counts);
  for (auto kind : {NegativeKind::kUniform, NegativeKind::kPopularity}) {
    NegativeSampler sampler(ds, kind);
    // Small exclusion + few picks (rejection) and heavy exclusion (enumeration).
    for (auto [excluded, want] : {std::pair{10, 5}, std::pair{60, 30}, std::pair{85, 10}}) {
      auto exclude = exclude_range(n, excluded, 99);
      core::Rng rng(17);
      auto got = sampler.sample_distinct(exclude, want, rng);
      ASSERT_EQ(static_cast<int>(got.size()), want);
      EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
      EXPECT_EQ(std::adjacent_find(got.begin(), got.end()), got.end()) << "duplicates";
      for (auto i : got) {
        EXPECT_GE(i, 0);
        EXPECT_LT(i, n);
        EXPECT_FALSE(std::binary_search(exclude.begin(), exclude.end(), i));
      }
      core::Rng again(17);
      EXPECT_EQ(sampler.sample_distinct(exclude, want, again), got) << "deterministic under a seed";
    }
    // Fewer admissible items than asked: all of them.
    auto exclude = exclude_range(n, 97, 1);
    core::Rng rng(2);
    auto got = sampler.sample_distinct(exclude, 10, rng);
    ASSERT_EQ(got.size(), 3u);
    for (auto i : got) EXPECT_FALSE(std::binary_search(exclude.begin(), exclude.end(), i));
    EXPECT_TRUE(sampler.sample_distinct(exclude, 0, rng).empty());
    EXPECT_THROW(sampler.sample_distinct(exclude, -1, rng), Error);
  }
}

TEST(NegativeSampler, SampleDistinctPopularityFavoursPopularItems) {
  std::vector<int> counts(40, 0);
  counts[3] = 200;
  counts[30] = 200;
  Dataset ds = with_counts(counts);
  NegativeSampler sampler(ds, NegativeKind::kPopularity);
  core::Rng rng(8);
  int hits3 = 0, hits30 = 0, hits_other = 0;
  for (int t = 0; t < 500; ++t) {
    auto got = sampler.sample_distinct({}, 3, rng);
    ASSERT_EQ(got.size(), 3u);
    hits3 += std::binary_search(got.begin(), got.end(), 3);
    hits30 += std::binary_search(got.begin(), got.end(), 30);
    hits_other += std::binary_search(got.begin(), got.end(), 10);
  }
  EXPECT_GT(hits3, 400);
  EXPECT_GT(hits30, 400);
  EXPECT_LT(hits_other, 100);
}

}  // namespace
}  // namespace fewrec::data

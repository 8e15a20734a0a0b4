// Retrieval: the exact index against a brute-force sort, exclusions, the HNSW
// index's recall against the exact one, errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "fewrec/core/error.h"
#include "fewrec/retrieval/index.h"

namespace fewrec::retrieval {
namespace {

using ::testing::HasSubstr;

std::vector<float> random_vectors(int n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n) * dim);
  for (auto& x : v) x = g(rng);
  return v;
}

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected fewrec::Error";
  return "";
}

std::vector<Hit> brute_force(const std::vector<float>& v, int dim, std::span<const float> q, int k,
                             const std::vector<int32_t>& exclude = {}) {
  std::vector<Hit> all;
  const int n = static_cast<int>(v.size()) / dim;
  for (int i = 0; i < n; ++i) {
    if (std::binary_search(exclude.begin(), exclude.end(), i)) continue;
    double s = 0;
    for (int j = 0; j < dim; ++j) s += static_cast<double>(v[static_cast<size_t>(i) * dim + j]) * q[j];
    all.emplace_back(i, static_cast<float>(s));
  }
  std::stable_sort(all.begin(), all.end(), [](const Hit& a, const Hit& b) { return a.second > b.second; });
  all.resize(std::min<size_t>(all.size(), static_cast<size_t>(k)));
  return all;
}

TEST(ExactIndex, EqualsABruteForceSortWithAndWithoutExclusions) {
  const int n = 3000, dim = 24;
  const auto v = random_vectors(n, dim, 1);
  const auto queries = random_vectors(20, dim, 2);
  ExactIndex index(v, dim);
  EXPECT_EQ(index.size(), n);
  const std::vector<int32_t> exclude = {0, 5, 17, 300, 2999};
  for (int q = 0; q < 20; ++q) {
    const std::span<const float> query(queries.data() + q * dim, dim);
    for (const auto& ex : {std::vector<int32_t>{}, exclude}) {
      const auto got = index.search(query, 10, ex);
      const auto want = brute_force(v, dim, query, 10, ex);
      ASSERT_EQ(got.size(), want.size());
      for (size_t r = 0; r < got.size(); ++r) {
        EXPECT_EQ(got[r].first, want[r].first) << "query " << q << " rank " << r;
        EXPECT_NEAR(got[r].second, want[r].second, 1e-4);
      }
      for (const auto& h : got) EXPECT_FALSE(std::binary_search(ex.begin(), ex.end(), h.first));
    }
  }
  // The batch search gives the same lists on several threads.
  const auto batch = index.search_batch(queries, 10, 2);
  ASSERT_EQ(batch.size(), 20u);
  for (int q = 0; q < 20; ++q)
    EXPECT_EQ(batch[static_cast<size_t>(q)], index.search(std::span<const float>(queries.data() + q * dim, dim), 10));
}

TEST(ExactIndex, AnyDimensionAndRowCountMatchesBruteForce) {
  // Dimensions with and without a multiple of 8 / 16 and row counts with
  // tails exercise every path of the vectorised kernels.
  for (int dim : {1, 5, 8, 16, 37, 64}) {
    for (int n : {1, 7, 9, 300, 517}) {
      const auto v = random_vectors(n, dim, static_cast<uint32_t>(dim * 1000 + n));
      const auto q = random_vectors(1, dim, 99);
      ExactIndex index(v, dim);
      const std::vector<int32_t> ex = {0, n / 2};
      const auto got = index.search(q, 12, ex);
      const auto want = brute_force(v, dim, q, 12, ex);
      ASSERT_EQ(got.size(), want.size()) << dim << " x " << n;
      for (size_t r = 0; r < got.size(); ++r) {
        EXPECT_NEAR(got[r].second, want[r].second, 1e-4) << dim << " x " << n << " rank " << r;
        if (r + 1 < got.size() && std::abs(want[r].second - want[r + 1].second) > 1e-3)
          EXPECT_EQ(got[r].first, want[r].first) << dim << " x " << n << " rank " << r;
      }
    }
  }
}

// Oracle: the half-precision screening returns exactly the float32 lists,
// including on rows that half precision cannot tell apart (copies of a row,
// copies nudged by less than a half-precision step) and under exclusions.
TEST(ExactIndex, HalfPrecisionScreeningGivesTheFloat32ListsBitForBit) {
  const int n = 9003, dim = 32;  // > 1 MB of float rows; 9003 leaves a tail
  auto v = random_vectors(n, dim, 5);
  std::mt19937 rng(6);
  for (int i = 0; i < 2000; ++i) {  // near-duplicates of a few "hub" rows
    const int src = static_cast<int>(rng() % 50), dst = 50 + static_cast<int>(rng() % (n - 50));
    for (int j = 0; j < dim; ++j) {
      float x = v[static_cast<size_t>(src) * dim + j];
      if (i % 3 == 1) x = std::nextafter(x, 10.0f);
      if (i % 3 == 2) x *= 1.0f + 1e-4f;
      v[static_cast<size_t>(dst) * dim + j] = x;
    }
  }
  ExactIndex screened(v, dim), plain(v, dim, false);
  EXPECT_FALSE(plain.half_screening());
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    EXPECT_TRUE(screened.half_screening());
  auto queries = random_vectors(40, dim, 7);
  for (int j = 0; j < dim; ++j) queries[static_cast<size_t>(j)] = v[static_cast<size_t>(3) * dim + j];  // a hub itself
  std::vector<int32_t> exclude;
  for (int i = 0; i < n; i += 7) exclude.push_back(i);
  for (int q = 0; q < 40; ++q) {
    const std::span<const float> query(queries.data() + q * dim, dim);
    for (int k : {1, 10, 100}) {
      EXPECT_EQ(screened.search(query, k), plain.search(query, k)) << "query " << q << " k " << k;
      EXPECT_EQ(screened.search(query, k, exclude), plain.search(query, k, exclude)) << "query " << q << " k " << k;
    }
  }
  // Values half precision cannot hold: float32 only, still right.
  auto big = v;
  big[0] = 1e6f;
  ExactIndex wide(big, dim);
  EXPECT_FALSE(wide.half_screening());
  const std::span<const float> q0(queries.data(), dim);
  EXPECT_EQ(wide.search(q0, 10), ExactIndex(big, dim, false).search(q0, 10));
}

TEST(ExactIndex, TiesGoToTheLowerIndexAndKBeyondTheSizeReturnsAll) {
  const std::vector<float> v = {1, 0, 1, 0, 0, 1, 1, 0};  // items 0, 1, 3 tie on query (1, 0)
  ExactIndex index(v, 2);
  const std::vector<float> q = {1, 0};
  const auto hits = index.search(q, 10);
  ASSERT_EQ(hits.size(), 4u);
  EXPECT_EQ(hits[0].first, 0);
  EXPECT_EQ(hits[1].first, 1);
  EXPECT_EQ(hits[2].first, 3);
  EXPECT_EQ(hits[3].first, 2);
}

TEST(HnswIndex, RecallAgainstExactIsHighAndGrowsWithEf) {
  const int n = 5000, dim = 32;
  const auto v = random_vectors(n, dim, 3);
  const auto queries = random_vectors(200, dim, 4);
  ExactIndex exact(v, dim);
  HnswOptions o;
  o.ef = 10;
  o.threads = 2;
  HnswIndex approx(v, dim, o);
  EXPECT_EQ(approx.size(), n);
  const double low = recall_at_k(exact, approx, queries, 10);
  approx.set_ef(200);
  const double high = recall_at_k(exact, approx, queries, 10);
  EXPECT_GT(high, 0.95);
  EXPECT_GE(high, low);
  // Exclusions never come back; the scores are inner products.
  const std::vector<int32_t> exclude = {1, 2, 3};
  const std::span<const float> q(queries.data(), dim);
  const auto hits = approx.search(q, 10, exclude);
  ASSERT_EQ(hits.size(), 10u);
  const auto want = brute_force(v, dim, q, 1, {});
  for (const auto& h : hits) {
    EXPECT_FALSE(std::binary_search(exclude.begin(), exclude.end(), h.first));
    double s = 0;
    for (int j = 0; j < dim; ++j) s += static_cast<double>(v[static_cast<size_t>(h.first) * dim + j]) * q[j];
    EXPECT_NEAR(h.second, s, 1e-3);
  }
  EXPECT_TRUE(std::is_sorted(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.second > b.second; }));
}

TEST(Retrieval, BadShapesAndArgumentsAreClearErrors) {
  const std::vector<float> v(10, 1.0f);
  EXPECT_THAT(error_of([&] { ExactIndex(v, 3); }), HasSubstr("not a whole number of vectors of dimension 3"));
  EXPECT_THAT(error_of([&] { ExactIndex(v, 0); }), HasSubstr("dimension must be at least 1"));
  ExactIndex index(v, 5);
  const std::vector<float> q(4, 1.0f), q5(5, 1.0f);
  EXPECT_THAT(error_of([&] { index.search(q, 3); }), HasSubstr("the query has 4 values, the index dimension is 5"));
  EXPECT_THAT(error_of([&] { index.search(q5, 0); }), HasSubstr("k must be at least 1"));
  HnswOptions o;
  o.m = 1;
  EXPECT_THAT(error_of([&] { HnswIndex(v, 5, o); }), HasSubstr("m must be in [2, 1024]"));
  HnswIndex h(v, 5);
  EXPECT_THAT(error_of([&] { h.set_ef(0); }), HasSubstr("ef must be at least 1"));
  EXPECT_EQ(h.search(q5, 5).size(), 2u);
}

}  // namespace
}  // namespace fewrec::retrieval

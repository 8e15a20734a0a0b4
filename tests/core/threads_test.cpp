#include "fewrec/core/threads.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"

namespace fewrec::core {
namespace {

TEST(Threads, ResolveThreads) {
  EXPECT_EQ(resolve_threads(3), 3);
  EXPECT_EQ(resolve_threads(1), 1);
  EXPECT_GE(resolve_threads(0), 1);
  EXPECT_GE(resolve_threads(-4), 1);
  EXPECT_EQ(resolve_threads(0), resolve_threads(-1));
}

TEST(Threads, ParallelForCoversEveryIndexOnce) {
  std::vector<std::atomic_int> hits(10'000);
  std::mutex mu;
  std::set<int> workers;
  parallel_for(0, 10'000, 4, [&](int64_t b, int64_t e, int w) {
    EXPECT_LT(b, e);
    for (int64_t i = b; i < e; ++i) hits[i]++;
    std::lock_guard<std::mutex> lock(mu);
    workers.insert(w);
  }, 16);
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;
  for (int w : workers) {
    EXPECT_GE(w, 0);
    EXPECT_LT(w, 4);
  }
}

TEST(Threads, ParallelForEmptyAndSingleChunk) {
  int calls = 0;
  parallel_for(5, 5, 4, [&](int64_t, int64_t, int) { ++calls; });
  parallel_for(5, 3, 4, [&](int64_t, int64_t, int) { ++calls; });
  EXPECT_EQ(calls, 0);
  parallel_for(0, 10, 8, [&](int64_t b, int64_t e, int w) {
    ++calls;
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 10);
    EXPECT_EQ(w, 0);
  }, 64);
  EXPECT_EQ(calls, 1);
}

TEST(Threads, ParallelForRethrowsWorkerErrorInCaller) {
  std::atomic_int64_t processed{0};
  try {
    parallel_for(0, 100'000, 4, [&](int64_t b, int64_t e, int) {
      if (b <= 5000 && 5000 < e) FEWREC_THROW(kInvalidArgument, "bad row {}", 5000);
      processed += e - b;
    }, 10);
    FAIL() << "expected fewrec::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "bad row 5000");
  }
  // Workers stop early once one failed.
  EXPECT_LT(processed.load(), 100'000);
}

TEST(Threads, ParallelForRethrowsNonFewrecExceptions) {
  EXPECT_THROW(parallel_for(0, 1000, 3, [](int64_t b, int64_t, int) {
                 if (b >= 500) throw std::out_of_range("boom");
               }, 1),
               std::out_of_range);
}

TEST(Threads, ParallelForRethrowsOnSingleThreadPath) {
  EXPECT_THROW(parallel_for(0, 10, 1, [](int64_t, int64_t, int) { throw std::runtime_error("x"); }),
               std::runtime_error);
}

TEST(Rng, DeriveSeedIsStableAndDistinct) {
  EXPECT_EQ(derive_seed(42, 0), derive_seed(42, 0));
  EXPECT_NE(derive_seed(42, 0), derive_seed(42, 1));
  EXPECT_NE(derive_seed(42, 0), derive_seed(43, 0));
}

TEST(Rng, UniformIndexInRange) {
  Rng rng(7);
  std::vector<int> counts(5);
  for (int i = 0; i < 50'000; ++i) {
    const uint64_t x = uniform_index(rng, 5);
    ASSERT_LT(x, 5u);
    counts[x]++;
  }
  for (int c : counts) EXPECT_NEAR(c, 10'000, 500);
}

TEST(Rng, Normal01MomentsAndDeterminism) {
  Rng rng(123);
  const int n = 200'000;
  double sum = 0, sq = 0;
  for (int i = 0; i < n; ++i) {
    const double x = normal01(rng);
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sq += x * x;
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(sq / n - mean * mean, 1.0, 0.02);

  Rng a(5), b(5);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(normal01(a), normal01(b));
}

}  // namespace
}  // namespace fewrec::core

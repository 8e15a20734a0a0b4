// Metrics against hand-computed cases; the arithmetic is written out.
#include "fewrec/eval/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "fewrec/core/error.h"

namespace fewrec::eval {
namespace {

using Hits = std::vector<uint8_t>;
constexpr double kTol = 1e-9;

// 1/log2(i + 2) for 0-based rank i.
double disc(int i) { return 1.0 / std::log2(i + 2.0); }

TEST(Metrics, MixedHitsFullCutoff) {
  // hits [0,1,0,1], R = 3, K = 4.
  const Hits h = {0, 1, 0, 1};
  EXPECT_NEAR(hit_rate_at_k(h, 4), 1.0, kTol);  // a hit at rank 1
  EXPECT_NEAR(precision_at_k(h, 4), 2.0 / 4, kTol);  // 2 hits / K=4
  EXPECT_NEAR(recall_at_k(h, 3, 4), 2.0 / 3, kTol);  // 2 hits / R=3
  // DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606
  // IDCG (min(R,K) = 3) = 1/log2(2) + 1/log2(3) + 1/log2(4) = 1 + 0.630930 + 0.5 = 2.130930
  // NDCG = 1.061606 / 2.130930 = 0.498189
  const double dcg = 1 / std::log2(3.0) + 1 / std::log2(5.0);
  const double idcg = 1 + 1 / std::log2(3.0) + 0.5;
  EXPECT_NEAR(ndcg_at_k(h, 3, 4), dcg / idcg, kTol);
  EXPECT_NEAR(ndcg_at_k(h, 3, 4), 0.498189, 1e-6);
  EXPECT_NEAR(mrr_at_k(h, 4), 1.0 / 2, kTol);  // first hit at 1-based rank 2
  // MAP = (1 / min(3, 4)) * (P@2 + P@4) = (1/3) * (1/2 + 2/4) = 1/3
  EXPECT_NEAR(map_at_k(h, 3, 4), 1.0 / 3, kTol);
}

TEST(Metrics, MixedHitsCutAtTwo) {
  // Same ranking cut at K = 2: only [0,1] counts.
  const Hits h = {0, 1, 0, 1};
  EXPECT_NEAR(hit_rate_at_k(h, 2), 1.0, kTol);
  EXPECT_NEAR(precision_at_k(h, 2), 1.0 / 2, kTol);
  EXPECT_NEAR(recall_at_k(h, 3, 2), 1.0 / 3, kTol);
  // DCG = 1/log2(3) = 0.630930; IDCG (min(3,2) = 2) = 1 + 0.630930; NDCG = 0.386853
  EXPECT_NEAR(ndcg_at_k(h, 3, 2), disc(1) / (disc(0) + disc(1)), kTol);
  EXPECT_NEAR(ndcg_at_k(h, 3, 2), 0.386853, 1e-6);
  EXPECT_NEAR(mrr_at_k(h, 2), 0.5, kTol);
  // MAP = (1/2) * P@2 = (1/2) * (1/2) = 1/4
  EXPECT_NEAR(map_at_k(h, 3, 2), 0.25, kTol);
  // K = 1: hits [0] -> everything 0.
  EXPECT_EQ(hit_rate_at_k(h, 1), 0.0);
  EXPECT_EQ(ndcg_at_k(h, 3, 1), 0.0);
  EXPECT_EQ(mrr_at_k(h, 1), 0.0);
  EXPECT_EQ(map_at_k(h, 3, 1), 0.0);
}

TEST(Metrics, NoHits) {
  const Hits h = {0, 0, 0};
  EXPECT_EQ(hit_rate_at_k(h, 3), 0.0);
  EXPECT_EQ(precision_at_k(h, 3), 0.0);
  EXPECT_EQ(recall_at_k(h, 2, 3), 0.0);
  EXPECT_EQ(ndcg_at_k(h, 2, 3), 0.0);
  EXPECT_EQ(mrr_at_k(h, 3), 0.0);
  EXPECT_EQ(map_at_k(h, 2, 3), 0.0);
}

TEST(Metrics, PerfectRanking) {
  // All R = 3 relevant items on top: DCG = IDCG, every precision@i = 1.
  const Hits h = {1, 1, 1};
  EXPECT_NEAR(ndcg_at_k(h, 3, 3), 1.0, kTol);
  EXPECT_NEAR(map_at_k(h, 3, 3), 1.0, kTol);  // (1/3)(1 + 1 + 1)
  EXPECT_NEAR(recall_at_k(h, 3, 3), 1.0, kTol);
  EXPECT_NEAR(precision_at_k(h, 3), 1.0, kTol);
  EXPECT_NEAR(mrr_at_k(h, 3), 1.0, kTol);
}

TEST(Metrics, FewerRankedThanK) {
  // Only one item ranked, K = 10, R = 1: precision still divides by K.
  const Hits h = {1};
  EXPECT_NEAR(precision_at_k(h, 10), 0.1, kTol);
  EXPECT_NEAR(ndcg_at_k(h, 1, 10), 1.0, kTol);  // IDCG over min(R, K) = 1 position
  EXPECT_NEAR(map_at_k(h, 1, 10), 1.0, kTol);
}

TEST(Metrics, MoreRelevantThanK) {
  // hits [1,1], R = 5, K = 2: recall 2/5; NDCG and MAP normalise by min(R,K) = 2.
  const Hits h = {1, 1};
  EXPECT_NEAR(recall_at_k(h, 5, 2), 0.4, kTol);
  EXPECT_NEAR(ndcg_at_k(h, 5, 2), 1.0, kTol);
  EXPECT_NEAR(map_at_k(h, 5, 2), 1.0, kTol);  // (1/2)(1/1 + 2/2)
  // hits [0,1,1], R = 5, K = 3:
  // DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3) + 1/log2(4)
  // MAP = (1/3)(1/2 + 2/3) = 0.388889
  const Hits g = {0, 1, 1};
  EXPECT_NEAR(ndcg_at_k(g, 5, 3), (disc(1) + disc(2)) / (disc(0) + disc(1) + disc(2)), kTol);
  EXPECT_NEAR(map_at_k(g, 5, 3), (0.5 + 2.0 / 3) / 3, kTol);
}

TEST(Metrics, UndefinedIsZeroAndBadKThrows) {
  const Hits h = {1, 0};
  EXPECT_EQ(recall_at_k(h, 0, 2), 0.0);
  EXPECT_EQ(ndcg_at_k(h, 0, 2), 0.0);
  EXPECT_EQ(map_at_k(h, 0, 2), 0.0);
  EXPECT_EQ(hit_rate_at_k(Hits{}, 5), 0.0);
  EXPECT_THROW(hit_rate_at_k(h, 0), Error);
  EXPECT_THROW(ndcg_at_k(h, 1, -1), Error);
}

TEST(Metrics, AucFromRanks) {
  // 4 candidates, relevant at ranks 0 and 2, non-relevant at 1 and 3.
  // Pairs: (0,1) ok, (0,3) ok, (2,1) wrong, (2,3) ok -> 3/4.
  std::vector<int64_t> r = {2, 0};  // order does not matter
  EXPECT_NEAR(auc_from_ranks(r, 4), 0.75, kTol);
  // All relevant on top -> 1; at the bottom -> 0.
  EXPECT_NEAR(auc_from_ranks(std::vector<int64_t>{0, 1}, 5), 1.0, kTol);
  EXPECT_NEAR(auc_from_ranks(std::vector<int64_t>{3, 4}, 5), 0.0, kTol);
  // One relevant at rank 1 of 5: above 3 of 4 negatives.
  EXPECT_NEAR(auc_from_ranks(std::vector<int64_t>{1}, 5), 0.75, kTol);
  // No pairs: undefined -> 0.
  EXPECT_EQ(auc_from_ranks(std::vector<int64_t>{}, 5), 0.0);
  EXPECT_EQ(auc_from_ranks(std::vector<int64_t>{0, 1}, 2), 0.0);
  EXPECT_THROW(auc_from_ranks(std::vector<int64_t>{5}, 5), Error);
}

TEST(Metrics, LabelMetricsHandComputed) {
  // p = [0.9, 0.2, 0.6, 0.4], y = [1, 0, 0, 1], threshold 0.5 -> pred [1, 0, 1, 0]
  // TP = 1 (0.9), TN = 1 (0.2), FP = 1 (0.6), FN = 1 (0.4)
  // accuracy = 2/4, precision = 1/2, recall = 1/2, F1 = 1/2
  // log-loss = -(ln 0.9 + ln 0.8 + ln 0.4 + ln 0.4) / 4
  //          = (0.105361 + 0.223144 + 0.916291 + 0.916291) / 4 = 0.540272
  std::vector<float> p = {0.9f, 0.2f, 0.6f, 0.4f};
  std::vector<uint8_t> y = {1, 0, 0, 1};
  auto m = label_metrics(p, y);
  EXPECT_EQ(m.count, 4);
  EXPECT_NEAR(m.accuracy, 0.5, kTol);
  EXPECT_NEAR(m.precision, 0.5, kTol);
  EXPECT_NEAR(m.recall, 0.5, kTol);
  EXPECT_NEAR(m.f1, 0.5, kTol);
  EXPECT_NEAR(m.log_loss, 0.540272, 1e-5);

  // Threshold 0.3 -> pred [1, 0, 1, 1]: TP 2, FP 1, FN 0, TN 1
  // precision 2/3, recall 1, F1 = 2 * (2/3) / (5/3) = 0.8, accuracy 3/4
  auto t = label_metrics(p, y, 0.3);
  EXPECT_NEAR(t.precision, 2.0 / 3, 1e-9);
  EXPECT_NEAR(t.recall, 1.0, 1e-9);
  EXPECT_NEAR(t.f1, 0.8, 1e-9);
  EXPECT_NEAR(t.accuracy, 0.75, 1e-9);
}

TEST(Metrics, LabelMetricsClippingAndUndefined) {
  // p = 0 for a positive and 1 for a negative: each term is -ln(1e-7) = 16.118096.
  std::vector<float> p = {0.0f, 1.0f};
  std::vector<uint8_t> y = {1, 0};
  auto m = label_metrics(p, y);
  EXPECT_TRUE(std::isfinite(m.log_loss));
  EXPECT_NEAR(m.log_loss, -std::log(1e-7), 1e-4);
  // pred [0, 1]: TP 0, FP 1, FN 1 -> precision 0, recall 0, F1 0 (no division by zero)
  EXPECT_EQ(m.precision, 0.0);
  EXPECT_EQ(m.recall, 0.0);
  EXPECT_EQ(m.f1, 0.0);
  EXPECT_EQ(m.accuracy, 0.0);

  // No positive prediction and no positive label: precision/recall undefined -> 0.
  auto n = label_metrics(std::vector<float>{0.1f, 0.2f}, std::vector<uint8_t>{0, 0});
  EXPECT_EQ(n.precision, 0.0);
  EXPECT_EQ(n.recall, 0.0);
  EXPECT_EQ(n.f1, 0.0);
  EXPECT_NEAR(n.accuracy, 1.0, kTol);

  auto e = label_metrics(std::vector<float>{}, std::vector<uint8_t>{});
  EXPECT_EQ(e.count, 0);
  EXPECT_EQ(e.log_loss, 0.0);
  EXPECT_THROW(label_metrics(std::vector<float>{0.5f}, std::vector<uint8_t>{}), Error);
}

TEST(Metrics, Names) {
  EXPECT_THAT(ranking_metric_names(),
              ::testing::ElementsAre("hr", "recall", "precision", "ndcg", "mrr", "map", "auc"));
}

}  // namespace
}  // namespace fewrec::eval

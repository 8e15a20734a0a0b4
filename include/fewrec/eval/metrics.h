// Ranking and label metrics. Definitions (binary relevance) — also in README:
//   hits: hit[i] = 1 when the item at rank i (0-based) of the top-K is relevant
//   R = number of relevant items for the user (> 0)
//   HR@K        = 1 if any hit in the top K else 0
//   Precision@K = hits in top K / K
//   Recall@K    = hits in top K / R
//   NDCG@K      = DCG / IDCG, DCG = sum_i hit[i] / log2(i + 2),
//                 IDCG = sum_{i < min(R, K)} 1 / log2(i + 2)
//   MRR@K       = 1 / (rank of the first hit, 1-based), 0 if none in top K
//   MAP@K       = (1 / min(R, K)) * sum_i hit[i] * precision@(i+1)
//   AUC         = fraction of (relevant, non-relevant) candidate pairs where
//                 the relevant item is ranked higher (ties count 1/2)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace fewrec::eval {

double hit_rate_at_k(std::span<const uint8_t> hits, int k);
double precision_at_k(std::span<const uint8_t> hits, int k);
double recall_at_k(std::span<const uint8_t> hits, int64_t num_relevant, int k);
double ndcg_at_k(std::span<const uint8_t> hits, int64_t num_relevant, int k);
double mrr_at_k(std::span<const uint8_t> hits, int k);
double map_at_k(std::span<const uint8_t> hits, int64_t num_relevant, int k);
// AUC from the 0-based ranks of the relevant items among `num_candidates`
// candidates (relevant included). Ties must be resolved by the caller.
double auc_from_ranks(std::span<const int64_t> relevant_ranks, int64_t num_candidates);

// Label prediction: probabilities in [0, 1], labels 0/1.
struct LabelMetrics {
  double accuracy = 0, precision = 0, recall = 0, f1 = 0, log_loss = 0;
  int64_t count = 0;
};
LabelMetrics label_metrics(std::span<const float> probabilities, std::span<const uint8_t> labels,
                           double threshold = 0.5);

// Names of ranking metrics: "hr", "recall", "precision", "ndcg", "mrr", "map", "auc".
const std::vector<std::string>& ranking_metric_names();

}  // namespace fewrec::eval

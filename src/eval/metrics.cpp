#include "fewrec/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fewrec/core/error.h"

namespace fewrec::eval {

namespace {

// Number of leading entries of `hits` that fall inside the top K.
size_t cut(std::span<const uint8_t> hits, int k) {
  FEWREC_CHECK(k > 0, kInvalidArgument, "metric cut-off K must be positive, got {}", k);
  return std::min(hits.size(), static_cast<size_t>(k));
}

double count_hits(std::span<const uint8_t> hits, size_t n) {
  double c = 0;
  for (size_t i = 0; i < n; ++i) c += hits[i] ? 1.0 : 0.0;
  return c;
}

}  // namespace

double hit_rate_at_k(std::span<const uint8_t> hits, int k) {
  const size_t n = cut(hits, k);
  for (size_t i = 0; i < n; ++i)
    if (hits[i]) return 1.0;
  return 0.0;
}

double precision_at_k(std::span<const uint8_t> hits, int k) {
  const size_t n = cut(hits, k);
  // Divided by K even when fewer than K items were ranked.
  return count_hits(hits, n) / static_cast<double>(k);
}

double recall_at_k(std::span<const uint8_t> hits, int64_t num_relevant, int k) {
  const size_t n = cut(hits, k);
  if (num_relevant <= 0) return 0.0;
  return count_hits(hits, n) / static_cast<double>(num_relevant);
}

double ndcg_at_k(std::span<const uint8_t> hits, int64_t num_relevant, int k) {
  const size_t n = cut(hits, k);
  if (num_relevant <= 0) return 0.0;
  double dcg = 0;
  for (size_t i = 0; i < n; ++i)
    if (hits[i]) dcg += 1.0 / std::log2(static_cast<double>(i) + 2.0);
  const int64_t ideal = std::min<int64_t>(num_relevant, k);
  double idcg = 0;
  for (int64_t i = 0; i < ideal; ++i) idcg += 1.0 / std::log2(static_cast<double>(i) + 2.0);
  return dcg / idcg;
}

double mrr_at_k(std::span<const uint8_t> hits, int k) {
  const size_t n = cut(hits, k);
  for (size_t i = 0; i < n; ++i)
    if (hits[i]) return 1.0 / static_cast<double>(i + 1);
  return 0.0;
}

double map_at_k(std::span<const uint8_t> hits, int64_t num_relevant, int k) {
  const size_t n = cut(hits, k);
  if (num_relevant <= 0) return 0.0;
  double sum = 0, found = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!hits[i]) continue;
    found += 1;
    sum += found / static_cast<double>(i + 1);  // precision@(i+1)
  }
  return sum / static_cast<double>(std::min<int64_t>(num_relevant, k));
}

double auc_from_ranks(std::span<const int64_t> relevant_ranks, int64_t num_candidates) {
  const auto num_rel = static_cast<int64_t>(relevant_ranks.size());
  const int64_t num_neg = num_candidates - num_rel;
  // No (relevant, non-relevant) pair: undefined, reported as 0.
  if (num_rel == 0 || num_neg <= 0) return 0.0;
  std::vector<int64_t> ranks(relevant_ranks.begin(), relevant_ranks.end());
  std::sort(ranks.begin(), ranks.end());
  double correct = 0;
  for (int64_t j = 0; j < num_rel; ++j) {
    const int64_t r = ranks[static_cast<size_t>(j)];
    FEWREC_CHECK(r >= 0 && r < num_candidates, kInvalidArgument,
                 "relevant rank {} outside [0, {})", r, num_candidates);
    if (j > 0) FEWREC_CHECK(r != ranks[static_cast<size_t>(j - 1)], kInvalidArgument,
                            "duplicate relevant rank {}", r);
    // Non-relevant candidates ranked above this one: r - j (j relevant ones precede it).
    const int64_t above = r - j;
    correct += static_cast<double>(num_neg - above);
  }
  return correct / (static_cast<double>(num_rel) * static_cast<double>(num_neg));
}

LabelMetrics label_metrics(std::span<const float> probabilities, std::span<const uint8_t> labels,
                           double threshold) {
  FEWREC_CHECK(probabilities.size() == labels.size(), kInvalidArgument,
               "label_metrics: {} probabilities but {} labels", probabilities.size(), labels.size());
  constexpr double kEps = 1e-7;
  LabelMetrics m;
  m.count = static_cast<int64_t>(labels.size());
  if (m.count == 0) return m;
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;
  double loss = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double p = std::clamp(static_cast<double>(probabilities[i]), kEps, 1.0 - kEps);
    const bool y = labels[i] != 0;
    const bool pred = static_cast<double>(probabilities[i]) >= threshold;
    loss -= y ? std::log(p) : std::log(1.0 - p);
    if (pred && y) ++tp;
    else if (pred && !y) ++fp;
    else if (!pred && y) ++fn;
    else ++tn;
  }
  const double n = static_cast<double>(m.count);
  m.accuracy = static_cast<double>(tp + tn) / n;
  m.precision = tp + fp > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0.0;
  m.recall = tp + fn > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0.0;
  m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
  m.log_loss = loss / n;
  return m;
}

const std::vector<std::string>& ranking_metric_names() {
  static const std::vector<std::string> names = {"hr",  "recall", "precision", "ndcg",
                                                 "mrr", "map",    "auc"};
  return names;
}

}  // namespace fewrec::eval

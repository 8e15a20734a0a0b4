// Training loop of the hybrid model (internal to the models layer): WARP or
// BPR over (user, positive item) pairs on feature-sum representations, with
// Adagrad or Adadelta, Hogwild-parallel over the pairs (LightFM's algorithm).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fewrec/core/monitor.h"

namespace fewrec::models::hybrid {

// Sparse rows entity -> (feature, weight): the feature matrix of LightFM.
struct FeatureRows {
  std::vector<int64_t> offsets{0};
  std::vector<int32_t> features;
  std::vector<float> weights;

  int32_t rows() const { return static_cast<int32_t>(offsets.size() - 1); }
  void add_row(std::span<const int32_t> row_features, float weight) {
    for (int32_t f : row_features) {
      features.push_back(f);
      weights.push_back(weight);
    }
    offsets.push_back(static_cast<int64_t>(features.size()));
  }
};

// Embeddings and biases of a feature space: vectors [count x dim], bias [count]
// (bias empty when the side has none: users).
struct Embeddings {
  int32_t dim = 0;
  std::vector<float> vectors;
  std::vector<float> bias;
  int32_t count() const { return dim > 0 ? static_cast<int32_t>(vectors.size() / static_cast<size_t>(dim)) : 0; }
  float* row(int32_t f) { return vectors.data() + static_cast<size_t>(f) * static_cast<size_t>(dim); }
  const float* row(int32_t f) const { return vectors.data() + static_cast<size_t>(f) * static_cast<size_t>(dim); }
};

// out = sum_f w_f * vectors[f] over row r (without its first `skip`
// features); returns sum_f w_f * bias[f] (0 without biases).
float represent(const FeatureRows& rows, int32_t r, const Embeddings& e, float* out, int skip = 0);

// The items' fixed text vectors t_i (dense), already scaled by the model's
// text weight, and their learned projection P: item i adds P t_i to its
// representation and t_i . b to its bias. `projection` holds P transposed:
// one row of `dim` factors (and one bias) per text dimension.
struct ItemText {
  int32_t dim = 0;             // text dimension (0: no text part)
  std::vector<float> vectors;  // [items x dim]
  const float* row(int32_t i) const { return vectors.data() + static_cast<size_t>(i) * static_cast<size_t>(dim); }
};

// out += P t (zero entries of t skipped); returns t . b.
float add_text(const float* t, int32_t text_dim, const Embeddings& projection, float* out);

struct TrainerOptions {
  bool warp = true;  // else BPR
  int64_t epochs = 30;
  double learning_rate = 0.05;
  bool adadelta = false;    // else Adagrad
  double rho = 0.95;        // Adadelta decay
  double epsilon = 1e-6;    // Adadelta epsilon
  double item_alpha = 0.0;  // L2 on the item-side parameters touched by a step
  double user_alpha = 0.0;
  int64_t max_sampled = 10;  // WARP: negatives tried per positive
  // Chance that a step leaves out the items' identity features (the first
  // feature of every item row when item_rows_have_ids), so that the content
  // features learn to carry an item alone, as they must for cold items.
  double item_id_dropout = 0.0;
  bool item_rows_have_ids = false;
  // Pairs whose text projection gradients a thread sums before one optimizer
  // step on the (shared) projection.
  int64_t text_batch = 16;
  int threads = 1;
  uint64_t seed = 42;
  std::string model = "hybrid";  // for messages
};

struct TrainResult {
  std::vector<double> epoch_loss;  // mean WARP-weighted / BPR log-loss per pair
};

// Trains `users` and `items` in place on the positives: user u's items are
// positives[positive_offsets[u], positive_offsets[u+1]) (sorted, unique).
// Negatives are drawn uniformly from `candidates` (every item when empty).
// A parameter turning non-finite is kInvalidArgument (lower the learning rate).
// `text` (dim 0: none) adds P t_i to the items; `projection` (text.dim rows,
// with biases) is trained with them: one step per (positive, negative) pair
// on the gradient through t_j - t_i, as P is shared by both items.
TrainResult train(const FeatureRows& user_rows, const FeatureRows& item_rows,
                  std::span<const int64_t> positive_offsets, std::span<const int32_t> positives,
                  std::span<const int32_t> candidates, Embeddings& users, Embeddings& items,
                  const ItemText& text, Embeddings& projection, const TrainerOptions& options,
                  core::Monitor& monitor);

}  // namespace fewrec::models::hybrid

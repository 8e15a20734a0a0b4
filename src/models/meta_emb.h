// Meta-embeddings for new item ids (MetaEmb-style, Pan et al. 2019) for the
// factorisation models without LibTorch (hybrid). A new item has content
// but no trained id embedding; a generator turns the item's content vector
// c (its representation from features and text alone) into the missing id
// part e = W c + a and id bias beta = g . c + g0. It is meta-trained on the
// trained items, each item a task: a cold set A and a warm set B of its
// users, scored with the model's fixed user vectors p_u against sampled
// negative items j that are new items too (their content plus their
// generated part: a new item competes with other new items, and a shift
// common to all cannot lower the loss). BPR: -log sigmoid(z), z = p_u . (x_i
// - x_j) + b_i - b_j, x = c + e, b = cb + beta. The meta-loss
//     alpha L_A(e) + (1 - alpha) L_B(e - warm_lr * grad_e sum_A)
// asks the generated embedding to rank well at once and after one
// gradient step on a few users (the warm-up step moves e_i only). Its
// gradient is exact, second order through the warm-up step: for BPR the
// Hessian of sum_A in e_i is sum_A s(1 - s) p p^T, applied as
// d - warm_lr sum_A s(1 - s)(p . d) p (and with the opposite sign in e_j).
// The generator starts at zero: content alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fewrec::models::metaemb {

// The generator's parameters in one flat vector: W (d x d, row-major), a
// (d), g (d), g0.
struct Generator {
  int32_t dim = 0;
  std::vector<float> theta;

  static Generator zeros(int32_t d);
  static size_t size_for(int32_t d) {
    return static_cast<size_t>(d) * static_cast<size_t>(d) + 2 * static_cast<size_t>(d) + 1;
  }
  bool empty() const { return dim == 0; }
  // e (dim) and beta for content vector c.
  void apply(const float* c, float* e, float* beta) const;
};

// One item's task: its content vector and bias, and per row of each set
// the user's vector and the negative item's content vector and bias.
struct ItemTask {
  const float* content = nullptr;  // dim
  float content_bias = 0.0f;
  std::vector<const float*> users_a, users_b;
  std::vector<const float*> negatives_a, negatives_b;
  std::vector<float> negative_bias_a, negative_bias_b;
  // The task's weight in the meta-loss. Each set's loss is a mean over its
  // rows, so an item drawing many users counts as much as one drawing two
  // unless its weight says otherwise (meta_popularity: its share of the draws).
  double weight = 1.0;
};

struct MetaOptions {
  double alpha = 0.5;    // weight of the cold loss
  double warm_lr = 0.1;  // step of the simulated warm-up update
};

// The meta-loss of one task times its weight; when `grad` is given, adds the
// gradient of that in the generator's parameters to it (same layout as theta).
double meta_loss(const Generator& gen, const ItemTask& task, const MetaOptions& o, std::vector<double>* grad);

// Adam on the flat parameters.
class Adam {
 public:
  Adam(size_t n, double lr) : lr_(lr), m_(n, 0.0), v_(n, 0.0) {}
  void step(std::vector<float>& theta, const std::vector<double>& grad);

 private:
  double lr_;
  int64_t t_ = 0;
  std::vector<double> m_, v_;
};

}  // namespace fewrec::models::metaemb

// The MAML core of the melu model (internal to the models layer): the
// decision layers as explicit tensors, their local update on a support set
// and the meta-loss on the query set, first or second order.
//
// Decision layers: logits = W3 relu(W2 relu(W1 x + b1) + b2) + b3, the
// weights a flat list {W1, b1, W2, b2, W3, b3}. A local update is `steps`
// gradient steps of size `lr` on the support set's binary cross-entropy.
// Second order keeps the graph of the inner gradients
// (torch::autograd::grad with create_graph), so the meta-gradient flows
// through them into the shared weights and into the inputs x (the
// embeddings); first order treats the inner gradients as constants.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace fewrec::models::melu {

using Weights = std::vector<torch::Tensor>;

inline torch::Tensor decide(const Weights& w, const torch::Tensor& x) {
  auto h = torch::relu(torch::addmm(w[1], x, w[0].t()));
  h = torch::relu(torch::addmm(w[3], h, w[2].t()));
  return torch::addmm(w[5], h, w[4].t()).squeeze(1);
}

inline torch::Tensor task_loss(const Weights& w, const torch::Tensor& x, const torch::Tensor& y) {
  return torch::nn::functional::binary_cross_entropy_with_logits(decide(w, x), y);
}

// `w` must require grad (or depend on tensors that do) when steps > 0.
inline Weights local_update(const Weights& w, const torch::Tensor& xs, const torch::Tensor& ys, double lr, int steps,
                            bool second_order) {
  Weights cur = w;
  if (xs.size(0) == 0 || steps <= 0 || lr == 0.0) return cur;
  for (int s = 0; s < steps; ++s) {
    auto loss = task_loss(cur, xs, ys);
    auto grads = torch::autograd::grad({loss}, cur, /*grad_outputs=*/{}, /*retain_graph=*/true,
                                       /*create_graph=*/second_order);
    Weights next;
    next.reserve(cur.size());
    for (size_t k = 0; k < cur.size(); ++k)
      next.push_back(cur[k] - lr * (second_order ? grads[k] : grads[k].detach()));
    cur = std::move(next);
  }
  return cur;
}

inline torch::Tensor meta_loss(const Weights& w, const torch::Tensor& xs, const torch::Tensor& ys,
                               const torch::Tensor& xq, const torch::Tensor& yq, double lr, int steps,
                               bool second_order) {
  return task_loss(local_update(w, xs, ys, lr, steps, second_order), xq, yq);
}

}  // namespace fewrec::models::melu

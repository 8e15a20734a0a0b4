// Few-shot fine-tuning of a trained LibTorch module: which parameters move
// (full, head only, bias only, or a low-rank adapter while the base stays
// frozen and shared), a small learning rate with linear warm-up, an L2 pull
// towards the pretrained weights, and early stopping on a held-out slice of
// the support set that keeps the best weights.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "fewrec/train/train.h"

namespace fewrec::train {

// y = W x + b + scale * B (A x): W, b frozen (those of `base`), A [rank x in]
// and B [out x rank] trained; B starts at zero, so the adapter starts as the
// identity change.
struct LowRankLinearImpl : torch::nn::Module {
  LowRankLinearImpl(torch::nn::Linear base, int64_t rank, double scale = 1.0);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear base{nullptr};
  torch::Tensor a, b;
  double scale;
};
TORCH_MODULE(LowRankLinear);

struct FineTuneOptions {
  std::string mode = "full";          // full | head | bias | lowrank
  std::vector<std::string> head;      // mode=head: parameter name prefixes that form the head
  double lr = 1e-3;
  std::string optimizer = "adam";
  int64_t steps = 50;                 // optimizer steps at most
  int64_t warmup_steps = 5;
  double l2_to_pretrained = 0.0;      // lambda * sum ||theta - theta0||^2 over the trained parameters
  int64_t eval_every = 5;             // steps between held-out evaluations (0 = never: no early stopping)
  int64_t patience = 3;               // evaluations without a new best before stopping
};

// The parameters `mode` trains: full = all; head = those whose name starts
// with one of `head`; bias = those whose name ends with "bias"; lowrank =
// the `a`/`b` of every LowRankLinear. Every other parameter gets
// requires_grad(false). kInvalidArgument for an unknown mode or a selection
// that is empty (naming the mode and, for head, the prefixes).
std::vector<torch::Tensor> select_trainable(torch::nn::Module& module, const FineTuneOptions& options);

struct FineTuneResult {
  int64_t steps = 0;
  double best_metric = 0.0;   // held-out metric of the kept weights (when evaluated)
  int64_t best_step = 0;
  std::vector<double> losses;
};

// Runs the fine-tuning: `loss()` returns the training loss on the support
// part (a scalar to minimise), `metric()` the held-out metric (higher is
// better). Parameters outside the selection are never modified.
FineTuneResult fine_tune(torch::nn::Module& module, const FineTuneOptions& options,
                         const std::function<torch::Tensor()>& loss, const std::function<double()>& metric);

}  // namespace fewrec::train

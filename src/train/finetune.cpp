#include "fewrec/train/finetune.h"

#include <cmath>

#include <fmt/format.h>
#include <torch/nn/init.h>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::train {

LowRankLinearImpl::LowRankLinearImpl(torch::nn::Linear base_, int64_t rank, double scale_) : scale(scale_) {
  FEWREC_CHECK(rank >= 1, kInvalidArgument, "low-rank adapter: rank must be at least 1, got {}", rank);
  base = register_module("base", std::move(base_));
  const int64_t out = base->weight.size(0), in = base->weight.size(1);
  a = register_parameter("a", torch::randn({rank, in}) / std::sqrt(static_cast<double>(in)));
  b = register_parameter("b", torch::zeros({out, rank}));
}

torch::Tensor LowRankLinearImpl::forward(const torch::Tensor& x) {
  return base->forward(x) + scale * torch::matmul(torch::matmul(x, a.t()), b.t());
}

std::vector<torch::Tensor> select_trainable(torch::nn::Module& module, const FineTuneOptions& options) {
  std::vector<torch::Tensor> chosen;
  const auto& mode = options.mode;
  if (mode == "lowrank") {
    auto take = [&](torch::nn::Module& m) {
      if (auto* lr = m.as<LowRankLinearImpl>()) {
        chosen.push_back(lr->a);
        chosen.push_back(lr->b);
      }
    };
    take(module);  // (modules() cannot return a top-level module that is not in a shared_ptr)
    for (const auto& m : module.modules(/*include_self=*/false)) take(*m);
  } else if (mode == "full" || mode == "head" || mode == "bias") {
    for (const auto& p : module.named_parameters(/*recurse=*/true)) {
      const std::string& name = p.key();
      bool take = mode == "full";
      if (mode == "bias") take = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
      if (mode == "head")
        for (const auto& prefix : options.head) take = take || name.rfind(prefix, 0) == 0;
      if (take) chosen.push_back(p.value());
    }
  } else {
    FEWREC_THROW(kInvalidArgument, "fine-tuning: unknown mode `{}`; known: full, head, bias, lowrank", mode);
  }
  FEWREC_CHECK(!chosen.empty(), kInvalidArgument, "fine-tuning: mode `{}` selects no parameter{}", mode,
               mode == "head" ? fmt::format(" (head prefixes: {})", core::join(options.head, ", "))
               : mode == "lowrank" ? std::string(" (the module has no LowRankLinear)")
                                   : std::string());
  for (auto& p : module.parameters(/*recurse=*/true)) p.set_requires_grad(false);
  for (auto& p : chosen) p.set_requires_grad(true);
  return chosen;
}

FineTuneResult fine_tune(torch::nn::Module& module, const FineTuneOptions& options,
                         const std::function<torch::Tensor()>& loss, const std::function<double()>& metric) {
  FEWREC_CHECK(options.lr > 0 && std::isfinite(options.lr), kInvalidArgument,
               "fine-tuning: lr must be a positive number, got {}", options.lr);
  FEWREC_CHECK(options.steps >= 0, kInvalidArgument, "fine-tuning: steps must be >= 0, got {}", options.steps);
  FEWREC_CHECK(options.l2_to_pretrained >= 0, kInvalidArgument, "fine-tuning: l2_to_pretrained must be >= 0, got {}",
               options.l2_to_pretrained);
  auto params = select_trainable(module, options);
  std::vector<torch::Tensor> pretrained;
  for (const auto& p : params) pretrained.push_back(p.detach().clone());
  OptimizerOptions oo;
  oo.name = options.optimizer;
  oo.lr = options.lr;
  auto optimizer = make_optimizer(params, oo);
  ScheduleOptions sched;
  sched.warmup_steps = options.warmup_steps;

  FineTuneResult result;
  const bool evaluate = options.eval_every > 0 && static_cast<bool>(metric);
  EarlyStopping stopping(options.patience);
  module.train();
  if (evaluate) {
    // The pretrained weights are a candidate too: fine-tuning that only hurts is undone.
    module.eval();
    stopping.update(metric(), module, 0);
    module.train();
  }
  for (int64_t step = 0; step < options.steps; ++step) {
    set_learning_rate(*optimizer, scheduled_lr(options.lr, step, sched));
    optimizer->zero_grad();
    auto l = loss();
    if (options.l2_to_pretrained > 0)
      for (size_t k = 0; k < params.size(); ++k)
        l = l + options.l2_to_pretrained * (params[k] - pretrained[k]).pow(2).sum();
    l.backward();
    optimizer->step();
    result.losses.push_back(l.item<double>());
    result.steps = step + 1;
    if (evaluate && (step + 1) % options.eval_every == 0) {
      module.eval();
      stopping.update(metric(), module, step + 1);
      module.train();
      if (stopping.should_stop()) break;
    }
  }
  module.eval();
  if (evaluate && stopping.has_best()) {
    stopping.restore(module);
    result.best_metric = stopping.best();
    result.best_step = stopping.best_epoch();
  }
  for (auto& p : module.parameters(/*recurse=*/true)) p.set_requires_grad(true);
  return result;
}

}  // namespace fewrec::train

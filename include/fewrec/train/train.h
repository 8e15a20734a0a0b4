// The training loop pieces shared by fewrec's LibTorch models: optimizers,
// learning-rate schedules (linear warm-up, then cosine or step decay),
// gradient clipping, early stopping that keeps the best weights, checkpoints
// with resume, and progress with loss, rate and ETA.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"

namespace fewrec::train {

// LibTorch intra-op threads = `threads`, and one BLAS thread per worker
// (OpenBLAS's own pool would otherwise fight LibTorch's for the cores).
void set_threads(int threads);

struct OptimizerOptions {
  std::string name = "adam";  // adam | adamw | adagrad | sgd
  double lr = 1e-3;
  double weight_decay = 0.0;  // L2 (adam, adagrad, sgd) or decoupled (adamw)
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double momentum = 0.0;      // sgd
};

// kInvalidArgument for an unknown name (listing the known ones).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> parameters,
                                                        const OptimizerOptions& options);
// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

struct ScheduleOptions {
  int64_t warmup_steps = 0;     // linear warm-up from 0 to the base rate
  std::string decay = "none";   // none | cosine | step
  int64_t total_steps = 0;      // cosine: steps until the minimum
  double min_ratio = 0.0;       // cosine: final rate / base rate
  int64_t step_size = 1000;     // step: multiply by gamma every step_size steps
  double gamma = 0.5;
};

// Learning rate at `step` (0-based) for base rate `base`.
double scheduled_lr(double base, int64_t step, const ScheduleOptions& s);

// Early stopping on a validation metric (higher is better): remembers the
// best value and a copy of the module's parameters and buffers at it.
class EarlyStopping {
 public:
  explicit EarlyStopping(int64_t patience) : patience_(patience) {}
  // Returns true when `metric` is a new best (the weights are copied).
  bool update(double metric, const torch::nn::Module& module, int64_t epoch);
  bool should_stop() const { return patience_ > 0 && bad_rounds_ >= patience_; }
  bool has_best() const { return !best_.empty(); }
  double best() const { return best_metric_; }
  int64_t best_epoch() const { return best_epoch_; }
  // Copies the best weights back into `module`.
  void restore(torch::nn::Module& module) const;

 private:
  int64_t patience_;
  int64_t bad_rounds_ = 0;
  double best_metric_ = -1e300;
  int64_t best_epoch_ = -1;
  std::vector<torch::Tensor> best_;
};

// Checkpoint: module parameters and buffers, optimizer state and the
// number of finished epochs, written atomically (temp file + rename).
void save_checkpoint(const std::string& path, const torch::nn::Module& module,
                     const torch::optim::Optimizer& optimizer, int64_t epochs_done);
// Restores a checkpoint written by save_checkpoint for the same module
// shape; returns the epochs done. Errors name the file.
int64_t load_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::Optimizer& optimizer);

// Reports "epoch 3/40: loss 0.512, 2150 seq/s, ETA 1m02s" through the monitor.
class EpochReporter {
 public:
  EpochReporter(core::Monitor& monitor, std::string task, int64_t epochs);
  void epoch_done(int64_t epoch, double loss, int64_t examples, const std::string& extra = "");

 private:
  core::Monitor& monitor_;
  std::string task_;
  int64_t epochs_;
  std::chrono::steady_clock::time_point start_, last_;
};

// Copies every parameter and buffer of `module` into one flat list (for
// artifacts): names and tensors in registration order.
std::vector<std::pair<std::string, torch::Tensor>> named_state(const torch::nn::Module& module);

// Artifact sections "<prefix>param/<name>" (float32) of every parameter and
// buffer of `module`.
void save_params(core::ArtifactWriter& writer, const std::string& prefix, const torch::nn::Module& module);
// Reads them back into a module of the same shape: a missing section, a size
// that the module's shape does not give or a non-finite value is kCorrupt
// naming the artifact, `what` (e.g. "model `sasrec`") and the parameter.
void load_params(const core::ArtifactReader& reader, const std::string& prefix, torch::nn::Module& module,
                 const std::string& what);

}  // namespace fewrec::train

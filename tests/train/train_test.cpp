// The training-loop pieces: schedules, optimizers, early stopping, checkpoints.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <torch/nn/modules/linear.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "fewrec/core/error.h"
#include "fewrec/train/train.h"

namespace fewrec::train {
namespace {

using ::testing::HasSubstr;

template <class Fn>
std::string error_of(Fn&& fn, ErrorCode code) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected fewrec::Error";
  return "";
}

struct Tiny : torch::nn::Module {
  Tiny() { fc = register_module("fc", torch::nn::Linear(3, 2)); }
  torch::Tensor forward(const torch::Tensor& x) { return fc->forward(x); }
  torch::nn::Linear fc{nullptr};
};

std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("fewrec-train-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

TEST(Schedule, WarmupThenCosineAndStep) {
  ScheduleOptions s;
  EXPECT_DOUBLE_EQ(scheduled_lr(0.1, 0, s), 0.1);
  EXPECT_DOUBLE_EQ(scheduled_lr(0.1, 12345, s), 0.1);
  s.warmup_steps = 10;
  // Linear warm-up reaches the base rate at the end of the warm-up.
  EXPECT_LT(scheduled_lr(0.1, 0, s), 0.02);
  EXPECT_NEAR(scheduled_lr(0.1, 4, s), 0.05, 0.011);
  EXPECT_NEAR(scheduled_lr(0.1, 10, s), 0.1, 1e-12);
  for (int i = 1; i < 10; ++i) EXPECT_GT(scheduled_lr(0.1, i, s), scheduled_lr(0.1, i - 1, s));

  s.decay = "cosine";
  s.total_steps = 110;
  s.min_ratio = 0.1;
  EXPECT_NEAR(scheduled_lr(0.1, 10, s), 0.1, 1e-9);
  EXPECT_NEAR(scheduled_lr(0.1, 60, s), 0.1 * (0.1 + 0.9 * 0.5), 2e-3);  // half way
  EXPECT_NEAR(scheduled_lr(0.1, 110, s), 0.01, 1e-9);
  EXPECT_NEAR(scheduled_lr(0.1, 1000, s), 0.01, 1e-9);  // stays at the minimum
  for (int i = 11; i <= 110; ++i) EXPECT_LE(scheduled_lr(0.1, i, s), scheduled_lr(0.1, i - 1, s) + 1e-15);

  ScheduleOptions st;
  st.decay = "step";
  st.step_size = 5;
  st.gamma = 0.5;
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 4, st), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 5, st), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 12, st), 0.25);
}

TEST(Optimizer, EveryKnownNameMinimisesAQuadraticAndUnknownNamesAreErrors) {
  for (std::string name : {"adam", "adamw", "adagrad", "sgd"}) {
    torch::manual_seed(1);
    auto w = torch::full({4}, 3.0).requires_grad_(true);
    OptimizerOptions o;
    o.name = name;
    o.lr = name == "sgd" ? 0.1 : 0.3;
    auto opt = make_optimizer({w}, o);
    double first = 0;
    for (int step = 0; step < 100; ++step) {
      opt->zero_grad();
      auto loss = (w * w).sum();
      if (step == 0) first = loss.item<double>();
      loss.backward();
      opt->step();
    }
    EXPECT_LT((w * w).sum().item<double>(), first * 0.05) << name;
  }
  OptimizerOptions bad;
  bad.name = "lion";
  auto w = torch::zeros({1}).requires_grad_(true);
  EXPECT_THAT(error_of([&] { make_optimizer({w}, bad); }, ErrorCode::kInvalidArgument),
              ::testing::AllOf(HasSubstr("lion"), HasSubstr("adamw")));
}

TEST(Optimizer, SetLearningRateChangesTheStep) {
  auto w = torch::zeros({1}).requires_grad_(true);
  OptimizerOptions o;
  o.name = "sgd";
  o.lr = 1.0;
  auto opt = make_optimizer({w}, o);
  set_learning_rate(*opt, 0.25);
  opt->zero_grad();
  (w * 2.0).sum().backward();  // gradient 2
  opt->step();
  EXPECT_NEAR(w.item<double>(), -0.5, 1e-7);
}

TEST(EarlyStopping, KeepsTheBestWeightsAndStopsAfterPatience) {
  Tiny m;
  EarlyStopping es(2);
  EXPECT_FALSE(es.has_best());
  torch::NoGradGuard ng;
  m.fc->weight.fill_(1.0);
  EXPECT_TRUE(es.update(0.5, m, 0));
  m.fc->weight.fill_(2.0);
  EXPECT_FALSE(es.update(0.4, m, 1));
  EXPECT_FALSE(es.should_stop());
  m.fc->weight.fill_(3.0);
  EXPECT_FALSE(es.update(0.5, m, 2));  // ties are not improvements
  EXPECT_TRUE(es.should_stop());
  EXPECT_EQ(es.best_epoch(), 0);
  EXPECT_DOUBLE_EQ(es.best(), 0.5);
  es.restore(m);
  EXPECT_TRUE(torch::all(m.fc->weight == 1.0).item<bool>());
  EarlyStopping never(0);
  for (int e = 0; e < 10; ++e) never.update(-e, m, e);
  EXPECT_FALSE(never.should_stop());
}

TEST(Checkpoint, RoundTripRestoresWeightsOptimizerStateAndEpochs) {
  torch::manual_seed(3);
  Tiny a;
  OptimizerOptions o;
  auto opt_a = make_optimizer(a.parameters(), o);
  auto x = torch::randn({5, 3});
  for (int i = 0; i < 3; ++i) {
    opt_a->zero_grad();
    a.forward(x).pow(2).sum().backward();
    opt_a->step();
  }
  auto path = temp_path("ok.ckpt");
  save_checkpoint(path, a, *opt_a, 3);

  torch::manual_seed(99);
  Tiny b;
  auto opt_b = make_optimizer(b.parameters(), o);
  EXPECT_EQ(load_checkpoint(path, b, *opt_b), 3);
  EXPECT_TRUE(torch::equal(a.fc->weight, b.fc->weight));
  EXPECT_TRUE(torch::equal(a.fc->bias, b.fc->bias));
  // Same optimizer state: one more identical step gives identical weights.
  opt_a->zero_grad();
  a.forward(x).pow(2).sum().backward();
  opt_a->step();
  opt_b->zero_grad();
  b.forward(x).pow(2).sum().backward();
  opt_b->step();
  EXPECT_TRUE(torch::allclose(a.fc->weight, b.fc->weight, 0, 0));
}

TEST(Checkpoint, MissingCorruptAndMismatchedFilesAreClearErrors) {
  Tiny a;
  OptimizerOptions o;
  auto opt = make_optimizer(a.parameters(), o);
  auto missing = temp_path("missing.ckpt");
  std::filesystem::remove(missing);
  EXPECT_THAT(error_of([&] { load_checkpoint(missing, a, *opt); }, ErrorCode::kNotFound), HasSubstr(missing));

  auto garbage = temp_path("garbage.ckpt");
  std::ofstream(garbage) << "this is not a checkpoint";
  EXPECT_THAT(error_of([&] { load_checkpoint(garbage, a, *opt); }, ErrorCode::kCorrupt), HasSubstr(garbage));

  struct Wider : torch::nn::Module {
    Wider() { fc = register_module("fc", torch::nn::Linear(4, 2)); }
    torch::nn::Linear fc{nullptr};
  } w;
  auto opt_w = make_optimizer(w.parameters(), o);
  auto path = temp_path("wider.ckpt");
  save_checkpoint(path, w, *opt_w, 1);
  EXPECT_THAT(error_of([&] { load_checkpoint(path, a, *opt); }, ErrorCode::kCorrupt),
              ::testing::AllOf(HasSubstr(path), HasSubstr("fc.weight")));
}

}  // namespace
}  // namespace fewrec::train

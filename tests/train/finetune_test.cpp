// Fine-tuning: each mode changes only the parameters it declares, the L2
// pull keeps weights near the pretrained ones, early stopping on a held-out
// slice keeps the best (possibly the pretrained) weights, errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/linear.h>

#include "fewrec/core/error.h"
#include "fewrec/train/finetune.h"

namespace fewrec::train {
namespace {

using ::testing::HasSubstr;

struct Net : torch::nn::Module {
  explicit Net(bool adapter) {
    torch::manual_seed(1);
    body = register_module("body", torch::nn::Linear(4, 8));
    torch::nn::Linear h(8, 1);
    if (adapter) lowrank = register_module("head", LowRankLinear(h, 2));
    else head = register_module("head", h);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto z = torch::relu(body->forward(x));
    return lowrank ? lowrank->forward(z) : head->forward(z);
  }
  torch::nn::Linear body{nullptr}, head{nullptr};
  LowRankLinear lowrank{nullptr};
};

struct Data {
  torch::Tensor x, y;
};
Data task(double slope, int n, uint64_t seed) {
  torch::manual_seed(seed);
  Data d;
  d.x = torch::randn({n, 4});
  d.y = slope * d.x.sum(1, true) + 0.5;
  return d;
}

std::map<std::string, torch::Tensor> snapshot(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

std::vector<std::string> changed(const torch::nn::Module& m, const std::map<std::string, torch::Tensor>& before) {
  std::vector<std::string> out;
  for (const auto& p : m.named_parameters())
    if (!torch::equal(p.value(), before.at(p.key()))) out.push_back(p.key());
  return out;
}

FineTuneOptions opts(const std::string& mode) {
  FineTuneOptions o;
  o.mode = mode;
  o.lr = 0.05;
  o.steps = 30;
  o.warmup_steps = 3;
  o.eval_every = 0;
  return o;
}

double mse(Net& net, const Data& d) {
  torch::NoGradGuard ng;
  return torch::nn::functional::mse_loss(net.forward(d.x), d.y).item<double>();
}

TEST(FineTune, EachModeChangesOnlyItsParameters) {
  const auto support = task(-1.0, 16, 2);
  struct Case {
    std::string mode;
    bool adapter;
    std::vector<std::string> expect;
  };
  for (const auto& c : std::vector<Case>{{"full", false, {"body.bias", "body.weight", "head.bias", "head.weight"}},
                                         {"head", false, {"head.bias", "head.weight"}},
                                         {"bias", false, {"body.bias", "head.bias"}},
                                         {"lowrank", true, {"head.a", "head.b"}}}) {
    SCOPED_TRACE(c.mode);
    Net net(c.adapter);
    auto o = opts(c.mode);
    o.head = {"head."};
    const auto before = snapshot(net);
    const double loss_before = mse(net, support);
    const auto r = fine_tune(net, o, [&] { return torch::nn::functional::mse_loss(net.forward(support.x), support.y); },
                             nullptr);
    EXPECT_EQ(r.steps, 30);
    auto got = changed(net, before);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, c.expect);
    EXPECT_LT(mse(net, support), loss_before);
    // Every parameter is trainable again afterwards.
    for (const auto& p : net.parameters()) EXPECT_TRUE(p.requires_grad());
  }
}

TEST(FineTune, L2PullKeepsTheWeightsNearThePretrainedOnes) {
  const auto support = task(-1.0, 16, 3);
  auto distance = [&](double lambda) {
    Net net(false);
    const auto before = snapshot(net);
    auto o = opts("full");
    o.l2_to_pretrained = lambda;
    fine_tune(net, o, [&] { return torch::nn::functional::mse_loss(net.forward(support.x), support.y); }, nullptr);
    double d = 0;
    for (const auto& p : net.named_parameters()) d += (p.value() - before.at(p.key())).pow(2).sum().item<double>();
    return d;
  };
  const double free = distance(0.0), pulled = distance(100.0);
  EXPECT_GT(free, 0.0);
  EXPECT_LT(pulled, 0.1 * free);
}

TEST(FineTune, EarlyStoppingKeepsTheBestWeightsEvenThePretrainedOnes) {
  const auto support = task(-1.0, 16, 4);
  const auto same = task(-1.0, 16, 5), other = task(+3.0, 16, 6);
  // Held-out slice from the support's task: training helps, a later step is kept.
  {
    Net net(false);
    auto o = opts("full");
    o.eval_every = 5;
    o.patience = 2;
    const auto r = fine_tune(
        net, o, [&] { return torch::nn::functional::mse_loss(net.forward(support.x), support.y); },
        [&] { return -mse(net, same); });
    EXPECT_GT(r.best_step, 0);
    EXPECT_NEAR(-mse(net, same), r.best_metric, 1e-9);
  }
  // Held-out slice from a task the support does not represent: every step
  // hurts, the pretrained weights are kept bit for bit.
  {
    Net net(false);
    const auto before = snapshot(net);
    auto o = opts("full");
    o.eval_every = 1;
    o.patience = 2;
    auto pre = Net(false);  // identical pretrained weights (same seed)
    const double pretrained_metric = -mse(pre, other);
    const auto r = fine_tune(
        net, o, [&] { return torch::nn::functional::mse_loss(net.forward(support.x), support.y); },
        [&] { return -mse(net, other); });
    EXPECT_EQ(r.best_step, 0);
    EXPECT_TRUE(changed(net, before).empty());
    EXPECT_DOUBLE_EQ(r.best_metric, pretrained_metric);
    EXPECT_LT(r.steps, 30);  // stopped early
  }
}

TEST(FineTune, BadModesAndSelectionsAreClearErrors) {
  Net net(false);
  auto o = opts("prefix");
  auto msg = [&](FineTuneOptions fo) -> std::string {
    try {
      select_trainable(net, fo);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return e.what();
    }
    ADD_FAILURE() << "expected an error";
    return "";
  };
  EXPECT_THAT(msg(o), HasSubstr("unknown mode `prefix`; known: full, head, bias, lowrank"));
  o.mode = "head";
  o.head = {"tail."};
  EXPECT_THAT(msg(o), HasSubstr("head prefixes: tail."));
  o.mode = "lowrank";
  EXPECT_THAT(msg(o), HasSubstr("no LowRankLinear"));
}

}  // namespace
}  // namespace fewrec::train

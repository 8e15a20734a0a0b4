// The meta-embedding generator of the factorisation models (meta_emb.h):
// its exact meta-gradient (second order through the warm-up step) against
// central finite differences, a task's weight, and the zero generator is
// content alone.
#include <gtest/gtest.h>

#include <cmath>

#include "../../src/models/meta_emb.h"
#include "fewrec/core/rng.h"

namespace fewrec::models::metaemb {
namespace {

struct World {
  int32_t d = 3;
  std::vector<std::vector<float>> users, items;
  std::vector<float> bias;
  ItemTask task;
};

World world(uint64_t seed, int rows_a, int rows_b) {
  World w;
  core::Rng rng(seed);
  auto normal = [&] { return static_cast<float>(core::uniform01(rng) * 2.0 - 1.0); };
  w.users.resize(static_cast<size_t>(rows_a + rows_b));
  for (auto& u : w.users)
    for (int k = 0; k < w.d; ++k) u.push_back(normal());
  w.items.resize(static_cast<size_t>(1 + rows_a + rows_b));
  for (auto& v : w.items) {
    for (int k = 0; k < w.d; ++k) v.push_back(normal());
    w.bias.push_back(0.3f * normal());
  }
  w.task.content = w.items[0].data();
  w.task.content_bias = w.bias[0];
  for (int r = 0; r < rows_a + rows_b; ++r) {
    const bool a = r < rows_a;
    (a ? w.task.users_a : w.task.users_b).push_back(w.users[static_cast<size_t>(r)].data());
    (a ? w.task.negatives_a : w.task.negatives_b).push_back(w.items[static_cast<size_t>(r) + 1].data());
    (a ? w.task.negative_bias_a : w.task.negative_bias_b).push_back(w.bias[static_cast<size_t>(r) + 1]);
  }
  return w;
}

Generator random_generator(int32_t d, uint64_t seed) {
  Generator g = Generator::zeros(d);
  core::Rng rng(seed);
  for (float& x : g.theta) x = static_cast<float>(core::uniform01(rng) - 0.5);
  return g;
}

void check_gradient(const MetaOptions& o, uint64_t seed, double weight = 1.0) {
  World w = world(seed, 3, 4);
  w.task.weight = weight;
  Generator g = random_generator(w.d, seed + 1);
  std::vector<double> grad(g.theta.size(), 0.0);
  meta_loss(g, w.task, o, &grad);
  // Central differences in float parameters: step 1e-2, the loss in double.
  double worst = 0;
  for (size_t p = 0; p < g.theta.size(); ++p) {
    const float keep = g.theta[p];
    constexpr float h = 1e-2f;
    g.theta[p] = keep + h;
    const double up = meta_loss(g, w.task, o, nullptr);
    g.theta[p] = keep - h;
    const double down = meta_loss(g, w.task, o, nullptr);
    g.theta[p] = keep;
    const double numeric = (up - down) / (2.0 * h);
    EXPECT_NEAR(grad[p], numeric, 2e-4 + 1e-3 * std::abs(numeric)) << "parameter " << p;
    worst = std::max(worst, std::abs(grad[p]));
  }
  EXPECT_GT(worst, 1e-3) << "a gradient this small checks nothing";
}

TEST(MetaEmb, MetaGradientMatchesFiniteDifferences) {
  MetaOptions o;
  o.alpha = 0.4;
  o.warm_lr = 0.5;
  check_gradient(o, 7);
  check_gradient(o, 8);
}

TEST(MetaEmb, ColdLossAloneAndNoWarmUpStepGradientsMatchFiniteDifferences) {
  MetaOptions cold;
  cold.alpha = 1.0;
  check_gradient(cold, 9);
  MetaOptions no_step;
  no_step.alpha = 0.3;
  no_step.warm_lr = 0.0;
  check_gradient(no_step, 10);
}

// A task's weight (meta_popularity: its share of the draws) scales its loss
// and every part of its gradient, the second-order one included.
TEST(MetaEmb, TaskWeightScalesTheLossAndItsGradient) {
  MetaOptions o;
  o.alpha = 0.4;
  o.warm_lr = 0.5;
  check_gradient(o, 13, 2.5);
  World w = world(14, 3, 4);
  const Generator g = random_generator(w.d, 15);
  std::vector<double> one(g.theta.size(), 0.0), weighted(g.theta.size(), 0.0);
  const double l1 = meta_loss(g, w.task, o, &one);
  w.task.weight = 3.0;
  const double l3 = meta_loss(g, w.task, o, &weighted);
  EXPECT_NEAR(l3, 3.0 * l1, 1e-12 * std::abs(l1));
  for (size_t p = 0; p < one.size(); ++p) EXPECT_NEAR(weighted[p], 3.0 * one[p], 1e-9) << "parameter " << p;
}

// Dropping the second-order term (the Hessian through the warm-up step)
// changes the gradient: the test above can fail.
TEST(MetaEmb, WarmUpStepMattersToTheGradient) {
  const World w = world(11, 3, 4);
  const Generator g = random_generator(w.d, 12);
  MetaOptions with, without;
  with.alpha = without.alpha = 0.4;
  with.warm_lr = 0.5;
  without.warm_lr = 0.0;
  std::vector<double> a(g.theta.size(), 0.0), b(g.theta.size(), 0.0);
  const double la = meta_loss(g, w.task, with, &a), lb = meta_loss(g, w.task, without, &b);
  EXPECT_NE(la, lb);
  double diff = 0;
  for (size_t p = 0; p < a.size(); ++p) diff = std::max(diff, std::abs(a[p] - b[p]));
  EXPECT_GT(diff, 1e-3);
}

TEST(MetaEmb, ZeroGeneratorIsContentAlone) {
  const Generator g = Generator::zeros(4);
  const float c[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  float e[4], beta = 1.0f;
  g.apply(c, e, &beta);
  for (float x : e) EXPECT_EQ(x, 0.0f);
  EXPECT_EQ(beta, 0.0f);
}

}  // namespace
}  // namespace fewrec::models::metaemb

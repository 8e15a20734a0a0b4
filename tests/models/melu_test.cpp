// melu: the MAML core (second-order meta-gradient against finite
// differences, first = second order at inner rate 0), adapt() never touching
// the shared model, few-shot quality on planted data, save / load, errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "../../src/models/melu_core.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "test_util.h"
#include "text_world.h"

namespace fewrec::models {
namespace {

using ::testing::HasSubstr;
using namespace testing;  // test_util.h, text_world.h

// A tiny decision MLP and task in double precision.
struct TinyTask {
  melu::Weights w;
  torch::Tensor xs, ys, xq, yq;
};

TinyTask tiny_task(uint64_t seed) {
  torch::manual_seed(seed);
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  TinyTask t;
  t.w = {torch::randn({5, 4}, opts), torch::randn({5}, opts) * 0.1, torch::randn({3, 5}, opts),
         torch::randn({3}, opts) * 0.1, torch::randn({1, 3}, opts), torch::randn({1}, opts) * 0.1};
  for (auto& x : t.w) x.requires_grad_(true);
  t.xs = torch::randn({6, 4}, opts);
  t.ys = torch::tensor({1.0, 0.0, 1.0, 1.0, 0.0, 0.0}, opts);
  t.xq = torch::randn({5, 4}, opts);
  t.yq = torch::tensor({0.0, 1.0, 1.0, 0.0, 1.0}, opts);
  return t;
}

TEST(MeluCore, SecondOrderMetaGradientMatchesFiniteDifferences) {
  auto t = tiny_task(3);
  const double lr = 0.7;
  const int steps = 2;
  auto loss = melu::meta_loss(t.w, t.xs, t.ys, t.xq, t.yq, lr, steps, /*second_order=*/true);
  auto grads = torch::autograd::grad({loss}, t.w);
  // Central differences on every coordinate of every weight.
  const double eps = 1e-6;
  double worst = 0.0;
  for (size_t k = 0; k < t.w.size(); ++k) {
    auto flat = t.w[k].detach().clone().view({-1});
    auto g = grads[k].contiguous().view({-1});
    for (int64_t j = 0; j < flat.numel(); ++j) {
      auto value_at = [&](double delta) {
        melu::Weights w2;
        for (size_t m = 0; m < t.w.size(); ++m) {
          auto c = t.w[m].detach().clone();
          if (m == k) c.view({-1})[j] += delta;
          w2.push_back(c.requires_grad_(true));
        }
        return melu::meta_loss(w2, t.xs, t.ys, t.xq, t.yq, lr, steps, true).item<double>();
      };
      const double fd = (value_at(eps) - value_at(-eps)) / (2 * eps);
      worst = std::max(worst, std::abs(fd - g[j].item<double>()));
    }
  }
  EXPECT_LT(worst, 1e-6);
  // The first-order gradient differs (the second-order terms are not zero here).
  auto fo = torch::autograd::grad({melu::meta_loss(t.w, t.xs, t.ys, t.xq, t.yq, lr, steps, false)}, t.w);
  double diff = 0.0;
  for (size_t k = 0; k < fo.size(); ++k) diff = std::max(diff, (fo[k] - grads[k]).abs().max().item<double>());
  EXPECT_GT(diff, 1e-3);
}

TEST(MeluCore, FirstAndSecondOrderAgreeWhenTheInnerRateIsZero) {
  auto t = tiny_task(5);
  auto so = torch::autograd::grad({melu::meta_loss(t.w, t.xs, t.ys, t.xq, t.yq, 0.0, 3, true)}, t.w);
  auto fo = torch::autograd::grad({melu::meta_loss(t.w, t.xs, t.ys, t.xq, t.yq, 0.0, 3, false)}, t.w);
  for (size_t k = 0; k < so.size(); ++k) EXPECT_TRUE(torch::equal(so[k], fo[k])) << k;
}

TEST(MeluCore, LocalUpdateLowersTheSupportLoss) {
  auto t = tiny_task(7);
  const double before = melu::task_loss(t.w, t.xs, t.ys).item<double>();
  auto w = melu::local_update(t.w, t.xs, t.ys, 0.3, 5, false);
  EXPECT_LT(melu::task_loss(w, t.xs, t.ys).item<double>(), before);
}

std::string bytes_of(const Model& m, const data::Catalogue& cat, const TempDir& dir) {
  save_model(dir / "m.fwr", m, cat, nlohmann::json::object(), pinned_creation());
  return file_bytes(dir / "m.fwr");
}

constexpr const char* kFast = "melu:dim=16,hidden1=32,hidden2=16,epochs=8,tasks=16,threads=1";
std::string spec(const std::string& options) { return std::string(kFast) + (options.empty() ? "" : "," + options); }

TEST(Melu, AdaptNeverModifiesTheSharedModel) {
  TempDir dir;
  const auto w = text_world(/*disjoint_words=*/false);
  auto m = fitted(std::string(kFast), w.train);
  const std::string before = bytes_of(*m, w.train.catalogue(), dir);
  const auto s0 = scores_of(*m, new_user({1, 2, 3, 4}));
  for (UserIndex u = 0; u < 20; ++u) (void)m->adapt(data::context_from_dataset(w.train, u));
  EXPECT_EQ(bytes_of(*m, w.train.catalogue(), dir), before);
  // And adapt is deterministic.
  EXPECT_EQ(scores_of(*m, new_user({1, 2, 3, 4})), s0);
}

TEST(Melu, FewShotAdaptationFindsTheUsersTopic) {
  const auto w = text_world(/*disjoint_words=*/false);
  for (const std::string order : {"first_order=false,local_lr=0.5,local_steps=3", "first_order=true,local_lr=0.5,local_steps=3"}) {
    auto m = fitted("melu:dim=16,hidden1=32,hidden2=16,epochs=20,tasks=16,threads=1," + order, w.train);
    // Users are new: their first 5 items reveal their topic; the rest of
    // that topic should rank above the other topics' items.
    double with = 0, without = 0;
    int users = 0;
    for (UserIndex u = 0; u < w.full.num_users(); u += 7) {
      const auto h = w.full.history(u);
      if (h.size() < 8) continue;
      const int32_t topic = w.truth.user_main_topic[static_cast<size_t>(u)];
      std::vector<ItemIndex> pos, neg;
      for (ItemIndex i = 0; i < w.full.num_items(); ++i)
        (w.truth.item_topic[static_cast<size_t>(i)] == topic ? pos : neg).push_back(i);
      std::vector<ItemIndex> support(h.items.begin(), h.items.begin() + 5);
      with += auc(scores_of(*m, new_user(support)), pos, neg);
      without += auc(scores_of(*m, new_user({})), pos, neg);
      ++users;
    }
    with /= users;
    without /= users;
    EXPECT_GT(with, 0.7) << order;
    EXPECT_GT(with, without + 0.1) << order;
  }
}

TEST(Melu, SaveLoadRoundTripGivesIdenticalScores) {
  TempDir dir;
  const auto w = text_world(/*disjoint_words=*/false);
  auto m = fitted(spec("text_encoder=hashing,text_options=dim=32"), w.train);
  save_model(dir / "m.fwr", *m, w.train.catalogue(), nlohmann::json::object());
  auto loaded = load_model(dir / "m.fwr");
  for (const auto& ctx : {data::context_from_dataset(w.full, 3), new_user({5, 6}), new_user({})})
    EXPECT_EQ(scores_of(*loaded.model, ctx), scores_of(*m, ctx));
  const auto g = grown(w, nullptr);
  m->add_items(g.catalogue(), w.full.num_items());
  loaded.model->add_items(g.catalogue(), w.full.num_items());
  EXPECT_EQ(scores_of(*loaded.model, new_user({5, 6})), scores_of(*m, new_user({5, 6})));
  save_model(dir / "g.fwr", *m, g.catalogue(), nlohmann::json::object());
  auto again = load_model(dir / "g.fwr");
  // Equal up to rounding: the new items' embeddings were computed in a batch of their own.
  const auto a = scores_of(*again.model, new_user({5, 6})), b = scores_of(*m, new_user({5, 6}));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << i;
}

TEST(Melu, BadOptionsAreClearErrors) {
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("melu:local_steps=-1")); }, ErrorCode::kInvalidArgument),
              HasSubstr("local_steps"));
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("melu:first_order=maybe")); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("first_order"));
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("melu:lr=1")); }, ErrorCode::kInvalidArgument),
              HasSubstr("lr"));
}

}  // namespace
}  // namespace fewrec::models

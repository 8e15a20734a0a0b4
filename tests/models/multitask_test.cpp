// multitask: both architectures train, per-task held-out metrics, a data-rich
// rating task helps a label-poor like task, new users from their context
// without touching the shared model, save / load, add_items, errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <numeric>

#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "test_util.h"
#include "text_world.h"

namespace fewrec::models {
namespace {

using ::testing::HasSubstr;
using namespace testing;  // test_util.h, text_world.h

constexpr const char* kFast = "multitask:dim=16,hidden=32,tower=16,epochs=8,batch_size=128,learning_rate=0.01,threads=1";
// kFast with `options` ("key=value,...") set on top.
ModelSpec spec(const std::string& options) {
  ModelSpec s = ModelSpec::parse(kFast);
  if (!options.empty())
    for (auto& [k, v] : ModelSpec::parse("multitask:" + options).options) s.options[k] = v;
  return s;
}

// Planted ratings: users and items have latent factors (k = 4); an item's
// genre (tag column "genres") is its largest factor; every user rates
// `per_user` items drawn uniformly, rating = round(3 + 1.2 a + 0.4 noise) in
// 1..5, a = u.v / sqrt(k) (about N(0, 1)): about 12% of the ratings are 5s.
struct Planted {
  data::Dataset ds;
  std::vector<int> genre;
};
Planted planted(int users, int items, int per_user, uint64_t seed) {
  constexpr int k = 4;
  core::Rng rng(seed);
  std::vector<double> uf(static_cast<size_t>(users * k)), vf(static_cast<size_t>(items * k));
  for (auto& x : uf) x = core::normal01(rng);
  for (auto& x : vf) x = core::normal01(rng);
  Planted p;
  data::DatasetBuilder b;
  for (int u = 0; u < users; ++u) b.user("u" + std::to_string(u));
  for (int i = 0; i < items; ++i) {
    b.item("i" + std::to_string(i));
    const auto* v = &vf[static_cast<size_t>(i * k)];
    const int g = static_cast<int>(std::max_element(v, v + k) - v);
    p.genre.push_back(g);
    b.item_features().add_tag(i, "genres", "g" + std::to_string(g));
  }
  std::vector<int> order(static_cast<size_t>(items));
  int64_t t = 0;
  for (int u = 0; u < users; ++u) {
    std::iota(order.begin(), order.end(), 0);
    for (int j = 0; j < per_user; ++j) {
      std::swap(order[static_cast<size_t>(j)], order[static_cast<size_t>(j) + core::uniform_index(rng, static_cast<uint64_t>(items - j))]);
      const int i = order[static_cast<size_t>(j)];
      double a = 0;
      for (int d = 0; d < k; ++d) a += uf[static_cast<size_t>(u * k + d)] * vf[static_cast<size_t>(i * k + d)];
      a /= std::sqrt(static_cast<double>(k));
      const double r = std::clamp(std::round(3 + 1.2 * a + 0.4 * core::normal01(rng)), 1.0, 5.0);
      b.add(u, i, t++, static_cast<float>(r));
    }
  }
  p.ds = std::move(b).build("planted");
  return p;
}

double held_out(const Model& m, const std::string& task, const std::string& metric) {
  const auto s = m.summary();
  EXPECT_TRUE(s.contains("holdout")) << s.dump();
  const auto& v = s["holdout"][task][metric];
  EXPECT_TRUE(v.is_number()) << task << " " << metric << ": " << s["holdout"].dump();
  return v.is_number() ? v.get<double>() : std::nan("");
}

TEST(MultiTask, BothArchitecturesTrainAndReportPerTaskMetrics) {
  const auto w = planted(300, 150, 25, 1);
  for (const std::string arch : {"shared_bottom", "mmoe"}) {
    auto m = fitted(spec("arch=" + arch), w.ds);
    const auto s = m->summary();
    const auto loss = s["epoch_loss"].get<std::vector<double>>();
    ASSERT_EQ(loss.size(), 8u);
    const double like = held_out(*m, "like", "auc"), rmse = held_out(*m, "rating", "rmse"),
                 category = held_out(*m, "category", "auc");
    std::printf("%s: loss %.4f -> %.4f; held-out like auc %.4f log-loss %.4f, rating rmse %.4f, category auc %.4f\n",
                arch.c_str(), loss.front(), loss.back(), like, held_out(*m, "like", "log_loss"), rmse, category);
    EXPECT_LT(loss.back(), 0.85 * loss.front()) << arch;
    EXPECT_GT(like, 0.7) << arch;
    EXPECT_GT(category, 0.9) << arch;  // the label is a function of the history the model reads
    // The ratings' deviation is about 1.3: a model that learned nothing would have about that.
    EXPECT_LT(rmse, 1.1) << arch;
    EXPECT_EQ(s["arch"], arch);
    EXPECT_EQ(s["holdout_by_epoch"].size(), 8u);
  }
}

// The like task alone sees few positives (5s are ~12% of the ratings); the
// rating task sees every value. Shared layers carry the rating's structure to
// the like head. Held-out like AUC (10% of the pairs + one unobserved item
// each), planted seeds 1-5:
//   shared_bottom  like only 0.673-0.757, like+rating 0.762-0.892 (gain +0.067..+0.136)
//   mmoe           like only 0.680-0.743, like+rating 0.792-0.886 (gain +0.093..+0.143)
// The test (seed 2: +0.136 / +0.143) asserts a gain of at least 0.04 for both.
// MMoE vs shared bottom is within the seed spread here, so it is not asserted.
TEST(MultiTask, ARatingTaskHelpsALabelPoorLikeTask) {
  const auto w = planted(300, 150, 20, 2);
  const std::string common = "like_threshold=5,epochs=10,";
  double single[2], multi[2];
  int k = 0;
  for (const std::string arch : {"shared_bottom", "mmoe"}) {
    auto like_only = fitted(spec(common + "arch=" + arch + ",tasks=like"), w.ds);
    auto with_rating = fitted(spec(common + "arch=" + arch + ",tasks=like+rating"), w.ds);
    single[k] = held_out(*like_only, "like", "auc");
    multi[k] = held_out(*with_rating, "like", "auc");
    std::printf("%s: held-out like auc: like only %.4f, like+rating %.4f (rating rmse %.4f)\n", arch.c_str(), single[k],
                multi[k], held_out(*with_rating, "rating", "rmse"));
    ++k;
  }
  for (int a = 0; a < 2; ++a) EXPECT_GT(multi[a], single[a] + 0.04) << (a ? "mmoe" : "shared_bottom");
}

TEST(MultiTask, NewUsersAreServedFromTheirContextWithoutTouchingTheModel) {
  TempDir dir;
  const auto w = planted(300, 150, 25, 3);
  auto m = fitted(spec("arch=mmoe,history_values=true"), w.ds);
  save_model(dir / "before.fwr", *m, w.ds.catalogue(), nlohmann::json::object(), pinned_creation());
  // A new user who rated genre-0 items 5: genre-0 items rank above the others.
  std::vector<ItemIndex> g0, rest;
  for (ItemIndex i = 0; i < w.ds.num_items(); ++i) (w.genre[static_cast<size_t>(i)] == 0 ? g0 : rest).push_back(i);
  ASSERT_GE(g0.size(), 10u);
  data::UserContext ctx;
  for (int j = 0; j < 5; ++j) ctx.history.push_back(data::Event{g0[static_cast<size_t>(j)], j, 5.0f, 0, 1.0f});
  const auto s = scores_of(*m, ctx);
  const double a = auc(s, std::vector<ItemIndex>(g0.begin() + 5, g0.end()), rest);
  std::printf("new user with 5 genre-0 items: genre-0 vs other items auc %.4f\n", a);
  EXPECT_GT(a, 0.6);
  // Known and new users, many times: the shared model is bit-identical.
  for (UserIndex u = 0; u < 20; ++u) {
    scores_of(*m, data::context_from_dataset(w.ds, u));
    scores_of(*m, data::context_from_dataset(w.ds, u, /*known=*/false));
  }
  scores_of(*m, new_user({}));
  save_model(dir / "after.fwr", *m, w.ds.catalogue(), nlohmann::json::object(), pinned_creation());
  EXPECT_EQ(file_bytes(dir / "before.fwr"), file_bytes(dir / "after.fwr"));
  // A known user keeps their id embedding: it differs from the same history as a new user.
  EXPECT_NE(scores_of(*m, data::context_from_dataset(w.ds, 4)),
            scores_of(*m, data::context_from_dataset(w.ds, 4, /*known=*/false)));
  EXPECT_THAT(error_of([&] { m->adapt(new_user({w.ds.num_items() + 5})); }, ErrorCode::kInvalidArgument),
              HasSubstr("outside"));
}

TEST(MultiTask, SaveLoadRoundTripGivesIdenticalScores) {
  TempDir dir;
  {
    // Every task, user attributes, genres, titles, year buckets.
    const auto ds = data::make_synthetic(small_world());
    auto m = fitted(spec("epochs=2,arch=mmoe,history_values=true"), ds);
    save_model(dir / "s.fwr", *m, ds.catalogue(), nlohmann::json::object());
    auto loaded = load_model(dir / "s.fwr");
    EXPECT_EQ(loaded.model->summary()["holdout"], m->summary()["holdout"]);
    for (UserIndex u : {0, 5, 9}) {
      EXPECT_EQ(scores_of(*loaded.model, data::context_from_dataset(ds, u)), scores_of(*m, data::context_from_dataset(ds, u)));
      EXPECT_EQ(scores_of(*loaded.model, data::context_from_dataset(ds, u, false)),
                scores_of(*m, data::context_from_dataset(ds, u, false)));
    }
  }
  const auto w = text_world(/*disjoint_words=*/false);  // titles only: no category
  auto m = fitted(spec("epochs=3,tasks=like+rating,weights=1+0.5"), w.train);
  save_model(dir / "m.fwr", *m, w.train.catalogue(), nlohmann::json::object());
  auto loaded = load_model(dir / "m.fwr");
  EXPECT_EQ(loaded.model->spec().to_string(), m->spec().to_string());
  EXPECT_EQ(loaded.model->summary()["holdout"], m->summary()["holdout"]);
  std::vector<data::UserContext> contexts;
  for (UserIndex u : {1, 2, 7}) contexts.push_back(data::context_from_dataset(w.full, u));
  contexts.push_back(new_user({3, 4, 9}));
  for (const auto& ctx : contexts) EXPECT_EQ(scores_of(*loaded.model, ctx), scores_of(*m, ctx));
  // score() of a few items agrees with score_all().
  auto state = m->adapt(contexts[0]);
  std::vector<ItemIndex> some{5, 0, 17};
  std::vector<float> out(3);
  m->score(*state, some, out);
  const auto all = scores_of(*m, contexts[0]);
  for (size_t k = 0; k < some.size(); ++k) EXPECT_NEAR(out[k], all[static_cast<size_t>(some[k])], 1e-5);
  // New items from content, on both.
  const auto g = grown(w, nullptr);
  m->add_items(g.catalogue(), w.full.num_items());
  loaded.model->add_items(g.catalogue(), w.full.num_items());
  ASSERT_EQ(m->num_items(), g.num_items());
  for (const auto& ctx : contexts) EXPECT_EQ(scores_of(*loaded.model, ctx), scores_of(*m, ctx));
  EXPECT_THAT(error_of([&] { m->add_items(g.catalogue(), 3); }, ErrorCode::kInvalidArgument), HasSubstr("start at"));
  EXPECT_THAT(error_of([&] { m->add_items(w.train.catalogue(), g.num_items()); }, ErrorCode::kInvalidArgument),
              HasSubstr("fewer than the model's"));
}

TEST(MultiTask, SameSeedSameModel) {
  const auto w = planted(200, 100, 15, 4);
  auto a = fitted(spec("epochs=2"), w.ds), b = fitted(spec("epochs=2"), w.ds);
  EXPECT_EQ(scores_of(*a, data::context_from_dataset(w.ds, 3)), scores_of(*b, data::context_from_dataset(w.ds, 3)));
  EXPECT_EQ(a->summary()["holdout"], b->summary()["holdout"]);
}

TEST(MultiTask, BadOptionsAndMissingTaskDataAreClearErrors) {
  auto create = [](const std::string& s) { model_registry().create(ModelSpec::parse(s)); };
  EXPECT_EQ(error_of([&] { create("multitask:tasks=like+clicks"); }, ErrorCode::kInvalidArgument),
            "model `multitask`: option `tasks`: unknown task `clicks`; known: like, rating, category");
  EXPECT_THAT(error_of([&] { create("multitask:tasks=like+like"); }, ErrorCode::kInvalidArgument),
              HasSubstr("names `like` twice"));
  EXPECT_EQ(error_of([&] { create("multitask:tasks=like+rating,weights=1+0.5+0.5"); }, ErrorCode::kInvalidArgument),
            "model `multitask`: option `weights` has 3 values but `tasks` (like+rating) has 2 tasks");
  EXPECT_THAT(error_of([&] { create("multitask:weights=1+x+1"); }, ErrorCode::kInvalidArgument),
              HasSubstr("`x` is not a loss weight"));
  EXPECT_THAT(error_of([&] { create("multitask:tasks=like,weights=0"); }, ErrorCode::kInvalidArgument),
              HasSubstr("every task weight is 0"));
  EXPECT_EQ(error_of([&] { create("multitask:arch=moe"); }, ErrorCode::kInvalidArgument),
            "model `multitask`: option `arch` must be one of shared_bottom, mmoe, got `moe`");
  EXPECT_THAT(error_of([&] { create("multitask:experts=0"); }, ErrorCode::kInvalidArgument), HasSubstr("experts"));

  // Data a task needs is absent: values all 1 (implicit feedback), no item category.
  const auto implicit = make_dataset(20, 10, random_rows(20, 10, 0.4, 5));
  EXPECT_THAT(error_of([&] { fitted(spec("tasks=like+rating"), implicit); }, ErrorCode::kInvalidArgument),
              HasSubstr("task `like`: no training interaction has a value >= like_threshold (4)"));
  const auto msg = error_of([&] { fitted(spec("tasks=rating"), implicit); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("task `rating`: every training interaction has the value 1"));
  EXPECT_THAT(msg, HasSubstr("data.positive_threshold"));
  EXPECT_THAT(error_of([&] { fitted(spec("tasks=like+category,like_threshold=1"), implicit); }, ErrorCode::kInvalidArgument),
              HasSubstr("task `category` needs an item tag or categorical column"));
  const auto w = planted(30, 20, 5, 6);
  EXPECT_THAT(error_of([&] { fitted(spec("category_column=year"), w.ds); }, ErrorCode::kInvalidArgument),
              HasSubstr("`year` is not an item tag or categorical column; item columns: genres"));
  // Implicit data with like_threshold=1: like alone trains (observed vs sampled unobserved).
  auto m = fitted(spec("tasks=like,like_threshold=1,epochs=1"), implicit);
  EXPECT_TRUE(m->summary()["holdout"].contains("like"));
}

}  // namespace
}  // namespace fewrec::models

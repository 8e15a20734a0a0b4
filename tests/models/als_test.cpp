#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <numeric>
#include <set>

#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "../../src/models/factor_model.h"  // trained user / item factors
#include "test_util.h"

namespace fewrec::models {
namespace {

using ::testing::HasSubstr;
using testing::error_of;
using testing::file_bytes;
using testing::make_dataset;
using testing::new_user;
using testing::TempDir;

// Records every metric("loss", ...) a model reports.
class LossRecorder final : public core::Monitor {
 public:
  void metric(std::string_view name, double value, int64_t step) override {
    if (name == "loss") {
      losses.push_back(value);
      steps.push_back(step);
    }
  }
  std::vector<double> losses;
  std::vector<int64_t> steps;
};

std::unique_ptr<Model> fitted(const std::string& spec, const data::Dataset& ds, int threads = 1,
                              core::Monitor& monitor = core::null_monitor()) {
  auto m = model_registry().create(ModelSpec::parse(spec));
  TrainOptions opts;
  opts.threads = threads;
  opts.seed = 5;
  m->fit(ds, opts, monitor);
  return m;
}

std::vector<float> scores_of(const Model& m, const data::UserContext& context) {
  auto state = m.adapt(context);
  std::vector<float> out(static_cast<size_t>(m.num_items()));
  m.score_all(*state, out);
  return out;
}

double cosine(std::span<const float> a, std::span<const float> b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

data::Dataset small_synthetic(int32_t users = 300, int32_t items = 200, uint64_t seed = 3,
                              data::SyntheticTruth* truth = nullptr) {
  data::SyntheticOptions o;
  o.num_users = users;
  o.num_items = items;
  o.mean_interactions = 25;
  o.seed = seed;
  return data::make_synthetic(o, truth);
}

const FactorModel& factors_of(const Model& m) {
  const auto* f = dynamic_cast<const FactorModel*>(&m);
  EXPECT_NE(f, nullptr);
  return *f;
}

// The objective computed densely over every (user, item) pair.
double dense_objective(const FactorModel& m, const data::Dataset& ds, double alpha, double reg) {
  const int32_t k = m.dim();
  std::vector<double> r(static_cast<size_t>(ds.num_users()) * ds.num_items(), 0.0);
  for (UserIndex u = 0; u < ds.num_users(); ++u)
    for (ItemIndex i : ds.history(u).items) r[static_cast<size_t>(u) * ds.num_items() + i] += 1.0;
  double loss = 0.0;
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    auto x = m.user_factors(u);
    for (ItemIndex i = 0; i < ds.num_items(); ++i) {
      auto y = m.item_factors(i);
      double s = 0;
      for (int32_t j = 0; j < k; ++j) s += static_cast<double>(x[j]) * y[j];
      const double rui = r[static_cast<size_t>(u) * ds.num_items() + i];
      const double p = rui > 0 ? 1.0 : 0.0;
      loss += (1.0 + alpha * rui) * (p - s) * (p - s);
    }
  }
  double norms = 0;
  for (float v : m.user_factor_matrix()) norms += static_cast<double>(v) * v;
  for (float v : m.item_factor_matrix()) norms += static_cast<double>(v) * v;
  return loss + reg * norms;
}

TEST(Als, IsRegisteredWithDocumentedOptions) {
  const auto& info = model_registry().get("als");
  std::set<std::string> keys;
  for (const auto& o : info.options) {
    keys.insert(o.key);
    EXPECT_FALSE(o.doc.empty()) << o.key;
  }
  for (const char* k : {"factors", "regularization", "alpha", "iterations", "cg_steps", "solver", "use_values",
                        "init_scale"})
    EXPECT_TRUE(keys.count(k)) << k;
}

TEST(Als, LossDecreasesEveryIterationAndMatchesTheDenseObjective) {
  auto ds = small_synthetic();
  for (std::string solver : {"cg", "cholesky"}) {
    SCOPED_TRACE(solver);
    LossRecorder rec;
    auto m = fitted("als:factors=16,iterations=12,regularization=5,alpha=4,solver=" + solver, ds, 1, rec);
    ASSERT_EQ(rec.losses.size(), 12u);
    for (size_t t = 0; t < rec.losses.size(); ++t) {
      EXPECT_EQ(rec.steps[t], static_cast<int64_t>(t + 1));
      EXPECT_TRUE(std::isfinite(rec.losses[t]));
      if (t > 0) {
        EXPECT_LT(rec.losses[t], rec.losses[t - 1]) << "iteration " << t + 1;
      }
    }
    const double dense = dense_objective(factors_of(*m), ds, 4.0, 5.0);
    EXPECT_NEAR(rec.losses.back(), dense, 1e-4 * dense);
    EXPECT_EQ(m->summary()["loss"].size(), 12u);
  }
}

// The loss of iteration t is summed while iteration t + 1 runs (and that of
// the last one by a pass of its own): each reported loss is still the
// objective of the factors as they were after that iteration.
TEST(Als, EveryReportedLossIsTheObjectiveAfterThatIteration) {
  auto ds = small_synthetic();
  for (std::string solver : {"cg", "cholesky"}) {
    SCOPED_TRACE(solver);
    const std::string spec = "als:factors=16,regularization=5,alpha=4,solver=" + solver;
    LossRecorder rec;
    auto m = fitted(spec + ",iterations=6", ds, 1, rec);
    ASSERT_EQ(rec.losses.size(), 6u);
    for (int t : {1, 2, 5}) {
      SCOPED_TRACE(t);
      // Training is deterministic: a t-iteration fit has the factors of iteration t.
      auto shorter = fitted(spec + ",iterations=" + std::to_string(t), ds);
      const double dense = dense_objective(factors_of(*shorter), ds, 4.0, 5.0);
      EXPECT_NEAR(rec.losses[static_cast<size_t>(t - 1)], dense, 1e-4 * dense);
    }
    EXPECT_NEAR(rec.losses.back(), dense_objective(factors_of(*m), ds, 4.0, 5.0), 1e-4 * rec.losses.back());
  }
}

// The vector kernels work in blocks of 4 pairs, 8 and 16 floats and panels
// of 64: factor counts that are not multiples of those take their remainder
// paths. Conjugate gradient with as many steps as factors solves each
// half-step as exactly as Cholesky does, and the loss is the dense objective.
TEST(Als, AnyFactorCountTrainsLikeTheExactSolver) {
  auto ds = small_synthetic(200, 150, 4);
  for (int factors : {1, 3, 13, 24, 40, 72}) {
    SCOPED_TRACE(factors);
    const std::string common =
        "als:iterations=3,regularization=5,alpha=4,factors=" + std::to_string(factors);
    LossRecorder cg_loss;
    auto cg = fitted(common + ",solver=cg,cg_steps=" + std::to_string(factors + 10), ds, 1, cg_loss);
    auto exact = fitted(common + ",solver=cholesky", ds);
    const double dense = dense_objective(factors_of(*cg), ds, 4.0, 5.0);
    EXPECT_NEAR(cg_loss.losses.back(), dense, 1e-4 * dense);
    double worst = 1.0;
    for (UserIndex u = 0; u < ds.num_users(); u += 11) {
      auto context = data::context_from_dataset(ds, u);
      worst = std::min(worst, cosine(scores_of(*cg, context), scores_of(*exact, context)));
    }
    EXPECT_GT(worst, 0.999);
  }
}

TEST(Als, CholeskyAndConjugateGradientAgreeAfterConvergence) {
  auto ds = small_synthetic(200, 150, 4);
  const std::string common = "als:factors=8,iterations=40,regularization=5,alpha=4";
  LossRecorder cg_loss, exact_loss;
  auto cg = fitted(common + ",solver=cg,cg_steps=3", ds, 1, cg_loss);
  auto exact = fitted(common + ",solver=cholesky", ds, 1, exact_loss);
  EXPECT_NEAR(cg_loss.losses.back(), exact_loss.losses.back(), 2e-3 * exact_loss.losses.back());
  // Same starting point, same optimum: the predicted score matrices agree.
  double worst = 1.0;
  for (UserIndex u = 0; u < ds.num_users(); u += 7) {
    auto context = data::context_from_dataset(ds, u);
    worst = std::min(worst, cosine(scores_of(*cg, context), scores_of(*exact, context)));
  }
  EXPECT_GT(worst, 0.99);
}

TEST(Als, FoldInOfATrainingUserReproducesTheTrainedVector) {
  auto ds = small_synthetic();
  auto m = fitted("als:factors=16,iterations=25,regularization=5,alpha=4,solver=cholesky", ds);
  const auto& f = factors_of(*m);
  for (UserIndex u = 0; u < ds.num_users(); u += 13) {
    SCOPED_TRACE(u);
    for (bool known : {false, true}) {
      auto context = data::context_from_dataset(ds, u, known);
      auto state = m->adapt(context);
      const auto v = m->user_vector(*state);
      EXPECT_GT(cosine(v, f.user_factors(u)), 0.99);
      // Scores follow: the trained vector's top items are the fold-in's.
      std::vector<float> from_fold_in = scores_of(*m, context), trained(static_cast<size_t>(m->num_items()));
      for (ItemIndex i = 0; i < m->num_items(); ++i) {
        auto y = f.item_factors(i);
        trained[static_cast<size_t>(i)] = std::inner_product(y.begin(), y.end(), f.user_factors(u).begin(), 0.0f);
      }
      EXPECT_GT(cosine(from_fold_in, trained), 0.99);
      auto top_fold = top_k(from_fold_in, 10, state->seen), top_trained = top_k(trained, 10, state->seen);
      std::set<ItemIndex> a(top_fold.begin(), top_fold.end());
      int common = 0;
      for (ItemIndex i : top_trained) common += a.count(i);
      EXPECT_GE(common, 8);
    }
  }
}

TEST(Als, CgFoldInIsCloseToTheExactOne) {
  auto ds = small_synthetic();
  auto exact = fitted("als:factors=16,iterations=10", ds);
  auto cg = fitted("als:factors=16,iterations=10,fold_in=cg,fold_in_cg_steps=16", ds);
  for (UserIndex u = 0; u < 50; u += 7) {
    auto context = data::context_from_dataset(ds, u, false);
    EXPECT_GT(cosine(exact->user_vector(*exact->adapt(context)), cg->user_vector(*cg->adapt(context))), 0.999);
  }
}

TEST(Als, NewUserWithItemsOfOneTopicGetsThatTopic) {
  data::SyntheticTruth truth;
  auto ds = small_synthetic(1000, 400, 9, &truth);
  auto m = fitted("als", ds, 2);
  const auto counts = ds.item_counts();
  for (int32_t topic : {0, 3, 5}) {
    SCOPED_TRACE(topic);
    // The five most popular items of the topic.
    std::vector<ItemIndex> items;
    for (ItemIndex i = 0; i < ds.num_items(); ++i)
      if (truth.item_topic[static_cast<size_t>(i)] == topic) items.push_back(i);
    ASSERT_GE(items.size(), 5u);
    std::sort(items.begin(), items.end(), [&](ItemIndex a, ItemIndex b) { return counts[a] > counts[b]; });
    items.resize(5);
    auto recs = recommend(*m, new_user(items), 10);
    ASSERT_EQ(recs.size(), 10u);
    int same = 0;
    for (auto [item, score] : recs) {
      same += truth.item_topic[static_cast<size_t>(item)] == topic;
      EXPECT_TRUE(std::find(items.begin(), items.end(), item) == items.end());
    }
    EXPECT_GE(same, 6);
  }
}

TEST(Als, EmptyHistoryGetsTheMeanTrainedUserVector) {
  auto ds = small_synthetic();
  auto m = fitted("als:factors=16,iterations=5", ds);
  const auto& f = factors_of(*m);
  std::vector<double> mean(16, 0.0);
  int users = 0;
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    if (ds.history_size(u) == 0) continue;
    ++users;
    for (int j = 0; j < 16; ++j) mean[static_cast<size_t>(j)] += f.user_factors(u)[static_cast<size_t>(j)];
  }
  auto v = m->user_vector(*m->adapt(new_user({})));
  for (int j = 0; j < 16; ++j) EXPECT_NEAR(v[static_cast<size_t>(j)], mean[static_cast<size_t>(j)] / users, 1e-5);
  // Which ranks popular items first.
  const auto counts = ds.item_counts();
  auto s = scores_of(*m, new_user({}));
  auto top = top_k(s, 10);
  double top_mean = 0;
  for (ItemIndex i : top) top_mean += static_cast<double>(counts[static_cast<size_t>(i)]);
  const double all_mean = static_cast<double>(ds.num_interactions()) / ds.num_items();
  EXPECT_GT(top_mean / 10, 2 * all_mean);
}

TEST(Als, DuplicateInteractionsAddUpLikeValues) {
  // user 0 has item 1 twice; with use_values the same pair appears once with value 2.
  std::vector<std::pair<int, int>> dup{{0, 1}, {0, 1}, {0, 2}, {1, 2}, {1, 3}, {2, 0}, {2, 3}, {3, 1}, {3, 4}};
  std::vector<std::pair<int, int>> once{{0, 1}, {0, 2}, {1, 2}, {1, 3}, {2, 0}, {2, 3}, {3, 1}, {3, 4}};
  std::vector<float> values{2, 1, 1, 1, 1, 1, 1, 1};
  auto a = fitted("als:factors=4,iterations=5,regularization=0.1", make_dataset(4, 5, dup));
  auto b = fitted("als:factors=4,iterations=5,regularization=0.1,use_values=true", make_dataset(4, 5, once, values));
  auto c = fitted("als:factors=4,iterations=5,regularization=0.1", make_dataset(4, 5, once));
  EXPECT_EQ(factors_of(*a).user_factor_matrix(), factors_of(*b).user_factor_matrix());
  EXPECT_EQ(factors_of(*a).item_factor_matrix(), factors_of(*b).item_factor_matrix());
  EXPECT_NE(factors_of(*a).item_factor_matrix(), factors_of(*c).item_factor_matrix());
}

TEST(Als, SaveLoadRoundTripGivesIdenticalScores) {
  TempDir dir;
  auto ds = small_synthetic();
  for (std::string spec : {"als:factors=12,iterations=4", "als:factors=8,iterations=3,solver=cholesky,fold_in=cg"}) {
    SCOPED_TRACE(spec);
    auto m = fitted(spec, ds);
    const auto path = dir / "als.fwr";
    save_model(path, *m, ds.catalogue(), nlohmann::json::object());
    auto loaded = load_model(path);
    ASSERT_EQ(loaded.model->name(), "als");
    ASSERT_EQ(loaded.model->num_items(), m->num_items());
    for (const auto& context : {new_user({}), new_user({1, 2, 3}), data::context_from_dataset(ds, 7),
                                data::context_from_dataset(ds, 42, false)})
      EXPECT_EQ(scores_of(*loaded.model, context), scores_of(*m, context));
    EXPECT_EQ(factors_of(*loaded.model).user_factor_matrix(), factors_of(*m).user_factor_matrix());
  }
}

void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(Als, CorruptArtifactsAreRejectedOrStillUsable) {
  TempDir dir;
  auto ds = make_dataset(6, 5, {{0, 0}, {0, 1}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 0}, {5, 4}});
  const auto path = dir / "als.fwr";
  save_model(path, *fitted("als:factors=2,iterations=2", ds), ds.catalogue(), nlohmann::json::object());
  const std::string bytes = file_bytes(path);
  // Truncated: always corrupt.
  for (size_t len = 0; len < bytes.size(); len += std::max<size_t>(1, bytes.size() / 50)) {
    write_bytes(path, bytes.substr(0, len));
    error_of([&] { load_model(path); }, ErrorCode::kCorrupt);
  }
  // Any byte changed behind a valid checksum (the spec's factor count, a
  // shape, a factor turned NaN, ...): rejected with the path, or loads into a
  // model that works.
  int loaded = 0, rejected = 0;
  for (size_t at = 0; at + 8 < bytes.size(); ++at) {
    std::string copy = bytes;
    copy[at] = static_cast<char>(static_cast<unsigned char>(copy[at]) ^ 0xFF);
    const uint64_t h = core::fnv1a64(copy.data(), copy.size() - 8);
    for (int i = 0; i < 8; ++i) copy[copy.size() - 8 + i] = static_cast<char>((h >> (8 * i)) & 0xFF);
    write_bytes(path, copy);
    try {
      auto m = load_model(path);
      auto s = scores_of(*m.model, new_user({0, 1}));
      for (float v : s) EXPECT_TRUE(std::isfinite(v)) << "byte " << at;
      ++loaded;
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ErrorCode::kCorrupt || e.code() == ErrorCode::kNotFound) << e.what();
      EXPECT_THAT(e.message(), HasSubstr(path.string())) << "byte " << at;
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded, 0);
}

TEST(Als, OneAndTwoThreadsGiveIdenticalFactors) {
  // More rows than one parallel chunk and one Gram block (4096 rows).
  auto ds = small_synthetic(5000, 300, 8);
  for (std::string spec : {"als:factors=8,iterations=3", "als:factors=8,iterations=2,solver=cholesky"}) {
    SCOPED_TRACE(spec);
    LossRecorder l1, l2;
    auto one = fitted(spec, ds, 1, l1);
    auto two = fitted(spec, ds, 2, l2);
    EXPECT_EQ(factors_of(*one).user_factor_matrix(), factors_of(*two).user_factor_matrix());
    EXPECT_EQ(factors_of(*one).item_factor_matrix(), factors_of(*two).item_factor_matrix());
    EXPECT_EQ(l1.losses, l2.losses);
  }
}

// Hit rate at 10 on held-out items: the last 20% of each user's history.
double hit_rate(const Model& m, const data::Dataset& train, const std::vector<std::vector<ItemIndex>>& held_out) {
  int users = 0, hits = 0;
  for (UserIndex u = 0; u < train.num_users(); ++u) {
    if (held_out[static_cast<size_t>(u)].empty()) continue;
    ++users;
    auto recs = recommend(m, data::context_from_dataset(train, u), 10);
    for (auto [item, score] : recs)
      if (std::count(held_out[static_cast<size_t>(u)].begin(), held_out[static_cast<size_t>(u)].end(), item)) {
        ++hits;
        break;
      }
  }
  return static_cast<double>(hits) / users;
}

TEST(Als, BeatsPopularityOnHeldOutItems) {
  auto full = small_synthetic(1000, 400, 11);
  std::vector<std::vector<ItemIndex>> held_out(static_cast<size_t>(full.num_users()));
  std::set<std::pair<UserIndex, ItemIndex>> test_pairs;
  core::Rng rng(17);
  for (UserIndex u = 0; u < full.num_users(); ++u)
    for (ItemIndex i : full.item_set(u))
      if (core::uniform01(rng) < 0.2) {
        held_out[static_cast<size_t>(u)].push_back(i);
        test_pairs.insert({u, i});
      }
  auto train = full.filter([&](const data::Interaction& r) { return !test_pairs.count({r.user, r.item}); });
  auto als = fitted("als", train, 2);
  auto popularity = fitted("popularity", train);
  const double hr_als = hit_rate(*als, train, held_out), hr_pop = hit_rate(*popularity, train, held_out);
  RecordProperty("hr_als", std::to_string(hr_als));
  RecordProperty("hr_popularity", std::to_string(hr_pop));
  EXPECT_GT(hr_als, hr_pop + 0.1) << "als " << hr_als << " popularity " << hr_pop;
}

TEST(Als, BadOptionsAreClearErrors) {
  const auto& reg = model_registry();
  auto msg = error_of([&] { reg.create(ModelSpec::parse("als:factors=0")); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("factors"));
  EXPECT_THAT(msg, HasSubstr("0"));
  msg = error_of([&] { reg.create(ModelSpec::parse("als:regularization=-1")); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("regularization"));
  msg = error_of([&] { reg.create(ModelSpec::parse("als:factor=8")); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("factor"));
  EXPECT_THAT(msg, HasSubstr("factors"));  // the known options are listed
  msg = error_of([&] { reg.create(ModelSpec::parse("als:solver=lu")); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("cg, cholesky"));
  msg = error_of([&] { reg.create(ModelSpec::parse("als:init_scale=0")); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("init_scale"));
  msg = error_of([&] { reg.create(ModelSpec::parse("als:alpha=abc")); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("alpha"));
}

TEST(Als, BadContextsAreClearErrors) {
  auto untrained = model_registry().create(ModelSpec::parse("als"));
  auto msg = error_of([&] { untrained->adapt(new_user({})); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("not trained"));
  auto ds = small_synthetic(50, 30, 2);
  auto m = fitted("als:factors=4,iterations=2", ds);
  msg = error_of([&] { m->adapt(new_user({1, 30})); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("30"));
}

TEST(Als, UsersAndItemsWithoutInteractionsGetZeroVectors) {
  // user 3 and item 4 have no interactions.
  auto ds = make_dataset(4, 5, {{0, 0}, {0, 1}, {1, 1}, {1, 2}, {2, 0}, {2, 3}});
  auto m = fitted("als:factors=4,iterations=3", ds);
  const auto& f = factors_of(*m);
  for (float v : f.user_factors(3)) EXPECT_EQ(v, 0.0f);
  for (float v : f.item_factors(4)) EXPECT_EQ(v, 0.0f);
  for (float v : f.user_factors(0)) EXPECT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace fewrec::models

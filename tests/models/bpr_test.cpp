// BPR-MF: the per-sample gradient against central differences, training
// behaviour, save / load, fold-in of new users and a quality floor on planted
// synthetic data.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "../../src/models/bpr_internal.h"
#include "../../src/models/factor_model.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/data/split.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "test_util.h"

namespace fewrec::models {
namespace {

using ::testing::HasSubstr;
using testing::error_of;
using testing::make_dataset;
using testing::new_user;

std::unique_ptr<Model> fitted(const std::string& spec, const data::Dataset& ds, int threads = 1,
                              uint64_t seed = 42, core::Monitor& monitor = core::null_monitor()) {
  auto m = model_registry().create(ModelSpec::parse(spec));
  TrainOptions opts;
  opts.threads = threads;
  opts.seed = seed;
  m->fit(ds, opts, monitor);
  return m;
}

std::vector<float> scores_of(const Model& m, const data::UserContext& ctx) {
  auto state = m.adapt(ctx);
  std::vector<float> out(static_cast<size_t>(m.num_items()));
  m.score_all(*state, out);
  return out;
}

std::vector<double> random_vector(core::Rng& rng, int n, double scale) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = scale * core::normal01(rng);
  return v;
}

// ---- Kernels ------------------------------------------------------------------

// The analytic gradient of -ln sigma(x_ui - x_uj) + L2 against central
// differences of the loss, for every parameter (factors and biases).
TEST(BprKernel, GradientMatchesCentralDifferences) {
  core::Rng rng(3);
  for (bool bias : {true, false}) {
    for (int dim : {1, 7, 19}) {
      SCOPED_TRACE(::testing::Message() << "dim " << dim << " bias " << bias);
      const bpr::StepParams params{0.05, 0.03, 0.02};
      auto u = random_vector(rng, dim, 0.5), p = random_vector(rng, dim, 0.5), n = random_vector(rng, dim, 0.5);
      double bp = 0.3, bn = -0.2;
      auto loss = [&] { return bpr::sample_loss(u.data(), p.data(), n.data(), bias ? &bp : nullptr, bias ? &bn : nullptr, dim, params); };
      auto g = bpr::sample_gradient(u.data(), p.data(), n.data(), bias ? &bp : nullptr, bias ? &bn : nullptr, dim, params);
      const double h = 1e-5;
      auto check = [&](double& theta, double analytic, const char* what, int k) {
        const double saved = theta;
        theta = saved + h;
        const double up = loss();
        theta = saved - h;
        const double down = loss();
        theta = saved;
        const double numeric = (up - down) / (2 * h);
        const double rel = std::abs(numeric - analytic) / std::max({std::abs(numeric), std::abs(analytic), 1e-6});
        EXPECT_LT(rel, 1e-3) << what << "[" << k << "] numeric " << numeric << " analytic " << analytic;
      };
      for (int k = 0; k < dim; ++k) {
        check(u[k], g.user[k], "user", k);
        check(p[k], g.pos[k], "pos", k);
        check(n[k], g.neg[k], "neg", k);
      }
      if (bias) {
        check(bp, g.bias_pos, "bias_pos", 0);
        check(bn, g.bias_neg, "bias_neg", 0);
      }
    }
  }
}

// The training kernels take exactly theta -= lr * gradient (double
// reference), and the vectorised float kernel agrees with it.
TEST(BprKernel, SgdStepsFollowTheGradient) {
  core::Rng rng(5);
  const bpr::StepParams params{0.07, 0.02, 0.05};
  for (int dim : {3, 8, 21, 64}) {
    SCOPED_TRACE(::testing::Message() << "dim " << dim);
    auto u = random_vector(rng, dim, 0.4), p = random_vector(rng, dim, 0.4), n = random_vector(rng, dim, 0.4);
    double bp = 0.1, bn = 0.4;
    auto g = bpr::sample_gradient(u.data(), p.data(), n.data(), &bp, &bn, dim, params);
    double x_expected = bp - bn;
    for (int k = 0; k < dim; ++k) x_expected += u[k] * (p[k] - n[k]);

    // double reference
    auto u2 = u, p2 = p, n2 = n;
    double bp2 = bp, bn2 = bn;
    EXPECT_NEAR(bpr::sgd_step(u2.data(), p2.data(), n2.data(), &bp2, &bn2, dim, params), x_expected, 1e-12);
    for (int k = 0; k < dim; ++k) {
      EXPECT_NEAR(u2[k], u[k] - params.learning_rate * g.user[k], 1e-12);
      EXPECT_NEAR(p2[k], p[k] - params.learning_rate * g.pos[k], 1e-12);
      EXPECT_NEAR(n2[k], n[k] - params.learning_rate * g.neg[k], 1e-12);
    }
    EXPECT_NEAR(bp2, bp - params.learning_rate * g.bias_pos, 1e-12);
    EXPECT_NEAR(bn2, bn - params.learning_rate * g.bias_neg, 1e-12);

    // float kernels: the one training uses on this CPU, and the portable one
    for (auto kernel : {&bpr::sgd_step, &bpr::sgd_step_portable}) {
      SCOPED_TRACE(kernel == &bpr::sgd_step_portable ? "portable" : bpr::kernel_name());
      std::vector<float> uf(u.begin(), u.end()), pf(p.begin(), p.end()), nf(n.begin(), n.end());
      float bpf = static_cast<float>(bp), bnf = static_cast<float>(bn);
      EXPECT_NEAR(kernel(uf.data(), pf.data(), nf.data(), &bpf, &bnf, dim, params), x_expected, 1e-5);
      for (int k = 0; k < dim; ++k) {
        EXPECT_NEAR(uf[k], u2[k], 1e-5);
        EXPECT_NEAR(pf[k], p2[k], 1e-5);
        EXPECT_NEAR(nf[k], n2[k], 1e-5);
      }
      EXPECT_NEAR(bpf, bp2, 1e-5);
      EXPECT_NEAR(bnf, bn2, 1e-5);
    }

    // fold-in with a zero prior: the same user update, items untouched
    std::vector<float> uff(u.begin(), u.end());
    const std::vector<float> pff(p.begin(), p.end()), nff(n.begin(), n.end()), zero(static_cast<size_t>(dim), 0.0f);
    bpr::fold_in_step(uff.data(), zero.data(), pff.data(), nff.data(), static_cast<float>(bp), static_cast<float>(bn),
                      dim, params);
    for (int k = 0; k < dim; ++k) EXPECT_NEAR(uff[k], u2[k], 1e-5);
    // with a prior the L2 term pulls towards it: user -= lr * (-z (p - n) + reg (user - prior))
    const std::vector<float> prior(pff.begin(), pff.end());
    std::vector<float> up(u.begin(), u.end());
    bpr::fold_in_step(up.data(), prior.data(), pff.data(), nff.data(), static_cast<float>(bp), static_cast<float>(bn),
                      dim, params);
    const double z = 1.0 / (1.0 + std::exp(x_expected));
    for (int k = 0; k < dim; ++k)
      EXPECT_NEAR(up[k], u[k] - params.learning_rate * (-z * (p[k] - n[k]) + params.regularization * (u[k] - p[k])),
                  1e-5);

    // without biases the float kernels ignore them
    std::vector<float> u3(u.begin(), u.end()), p3(p.begin(), p.end()), n3(n.begin(), n.end());
    EXPECT_NEAR(bpr::sgd_step(u3.data(), p3.data(), n3.data(), nullptr, nullptr, dim, params),
                x_expected - (bp - bn), 1e-5);
  }
}

// The negative check's filter never says "no" for a training pair, and says
// "maybe" for few of the others.
TEST(BprKernel, MembershipFilterHasNoFalseNegativesAndFewFalsePositives) {
  const int64_t pairs = 50000;
  bpr::MembershipFilter filter(pairs);
  core::Rng rng(17);
  std::set<std::pair<int32_t, int32_t>> inserted;
  while (static_cast<int64_t>(inserted.size()) < pairs) {
    const auto u = static_cast<int32_t>(core::uniform_index(rng, 3000));
    const auto i = static_cast<int32_t>(core::uniform_index(rng, 5000));
    if (inserted.emplace(u, i).second) filter.insert(u, i);
  }
  for (const auto& [u, i] : inserted) ASSERT_TRUE(filter.maybe_contains(u, i)) << u << " " << i;
  int false_positives = 0, absent = 0;
  for (int r = 0; r < 100000; ++r) {
    const auto u = static_cast<int32_t>(core::uniform_index(rng, 3000));
    const auto i = static_cast<int32_t>(core::uniform_index(rng, 5000));
    if (inserted.count({u, i})) continue;
    ++absent;
    false_positives += filter.maybe_contains(u, i);
  }
  EXPECT_LT(static_cast<double>(false_positives) / absent, 0.03);
}

// ---- Training -----------------------------------------------------------------

data::Dataset synthetic(data::SyntheticTruth* truth = nullptr, int users = 600, int items = 300) {
  data::SyntheticOptions o;
  o.num_users = users;
  o.num_items = items;
  o.mean_interactions = 30;
  o.seed = 11;
  return data::make_synthetic(o, truth);
}

class RecordingMonitor final : public core::Monitor {
 public:
  void metric(std::string_view name, double value, int64_t step) override {
    series[std::string(name)].push_back(value);
  }
  std::map<std::string, std::vector<double>> series;
};

TEST(Bpr, TrainingLossDecreasesAndSampleAccuracyRises) {
  auto ds = synthetic();
  RecordingMonitor monitor;
  auto m = fitted("bpr:factors=16,epochs=20", ds, 1, 42, monitor);
  const auto& loss = monitor.series.at("bpr_loss");
  const auto& acc = monitor.series.at("bpr_accuracy");
  ASSERT_EQ(loss.size(), 20u);
  ASSERT_EQ(acc.size(), 20u);
  EXPECT_LT(loss.front(), std::log(2.0) + 1e-3);  // near-zero initial factors: ln 2 at the start
  EXPECT_GT(loss.front(), 0.5);
  EXPECT_LT(loss.back(), 0.7 * loss.front());
  for (size_t e = 5; e < loss.size(); ++e) EXPECT_LT(loss[e], loss[e - 5]) << "epoch " << e + 1;
  EXPECT_GT(acc.back(), 0.8);
  EXPECT_GT(acc.back(), acc.front());
  EXPECT_EQ(m->summary()["epochs"], 20);
}

TEST(Bpr, OneThreadIsDeterministicUnderTheSeed) {
  auto ds = synthetic();
  auto a = fitted("bpr:factors=8,epochs=5", ds, 1, 7);
  auto b = fitted("bpr:factors=8,epochs=5", ds, 1, 7);
  auto c = fitted("bpr:factors=8,epochs=5", ds, 1, 8);
  const auto& fa = dynamic_cast<const FactorModel&>(*a);
  const auto& fb = dynamic_cast<const FactorModel&>(*b);
  const auto& fc = dynamic_cast<const FactorModel&>(*c);
  EXPECT_EQ(fa.item_factor_matrix(), fb.item_factor_matrix());
  EXPECT_EQ(fa.user_factor_matrix(), fb.user_factor_matrix());
  EXPECT_EQ(fa.item_bias(), fb.item_bias());
  EXPECT_NE(fa.item_factor_matrix(), fc.item_factor_matrix());
  auto ctx = new_user({1, 5, 9});
  EXPECT_EQ(scores_of(*a, ctx), scores_of(*b, ctx));
}

using testing::InfoMonitor;

TEST(Bpr, SeveralThreadsTrainAsWell) {
  auto ds = synthetic(nullptr, 4000, 500);  // > 2 x 32k distinct pairs: one shard per thread
  InfoMonitor info;
  RecordingMonitor one, two;
  fitted("bpr:factors=16,epochs=10", ds, 1, 42, one);
  auto m = fitted("bpr:factors=16,epochs=10", ds, 2, 42, two);
  EXPECT_NEAR(two.series.at("bpr_loss").back(), one.series.at("bpr_loss").back(), 0.05);
  m->fit(ds, TrainOptions{.threads = 2}, info);
  ASSERT_FALSE(info.lines.empty());
  EXPECT_THAT(info.lines.front(), ::testing::EndsWith(", 2 threads"));
  // Small data trains on one thread whatever was asked.
  info.lines.clear();
  m->fit(synthetic(), TrainOptions{.threads = 2}, info);
  EXPECT_THAT(info.lines.front(), ::testing::EndsWith(", 1 thread"));
}

TEST(Bpr, ItemsWithoutInteractionsRankLast) {
  // Items 4 and 5 never occur: they start at zero and are only ever negatives.
  auto ds = make_dataset(4, 6, {{0, 0}, {0, 1}, {1, 1}, {1, 2}, {2, 2}, {2, 3}, {3, 0}, {3, 3}});
  auto m = fitted("bpr:factors=4,epochs=200", ds);
  const auto& f = dynamic_cast<const FactorModel&>(*m);
  for (ItemIndex i = 0; i < 4; ++i) {
    EXPECT_GT(f.item_bias()[i], f.item_bias()[4]);
    EXPECT_GT(f.item_bias()[i], f.item_bias()[5]);
  }
  auto recs = recommend(*m, new_user({}), 6);
  ASSERT_EQ(recs.size(), 6u);
  std::set<ItemIndex> last{recs[4].first, recs[5].first};
  EXPECT_EQ(last, (std::set<ItemIndex>{4, 5}));
}

TEST(Bpr, ZeroEpochsOrNoInteractionsStillGivesAUsableModel) {
  auto empty = make_dataset(3, 4, {});
  auto m = fitted("bpr:factors=4", empty);
  EXPECT_EQ(m->num_items(), 4);
  auto s = scores_of(*m, new_user({1}));
  EXPECT_EQ(s.size(), 4u);
  for (float v : s) EXPECT_TRUE(std::isfinite(v));
  auto ds = synthetic();
  auto z = fitted("bpr:factors=4,epochs=0", ds);
  for (float v : scores_of(*z, new_user({1, 2}))) EXPECT_TRUE(std::isfinite(v));
}

TEST(Bpr, AUserWithEveryItemIsSkippedNotStuck) {
  // u0 holds every item: no negative exists for its samples.
  std::vector<std::pair<int, int>> rows;
  for (int i = 0; i < 6; ++i) rows.emplace_back(0, i);
  rows.emplace_back(1, 2);
  rows.emplace_back(2, 4);
  auto ds = make_dataset(3, 6, rows);
  auto m = fitted("bpr:factors=4,epochs=5", ds);
  EXPECT_GT(m->summary()["skipped_samples_last_epoch"].get<int64_t>(), 0);
  for (float v : scores_of(*m, data::context_from_dataset(ds, 0))) EXPECT_TRUE(std::isfinite(v));
  // Its fold-in has nothing to contrast with either.
  auto all = new_user({0, 1, 2, 3, 4, 5});
  EXPECT_EQ(m->adapt(all)->seen.size(), 6u);
}

TEST(Bpr, DivergenceIsAClearError) {
  auto ds = synthetic();
  EXPECT_THAT(error_of([&] { fitted("bpr:factors=8,epochs=50,learning_rate=90,init_std=3", ds); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("lower learning_rate"));
}

// ---- adapt() ------------------------------------------------------------------

TEST(Bpr, KnownUserWithTheTrainingHistoryGetsTheTrainedVector) {
  auto ds = synthetic();
  auto m = fitted("bpr:factors=8,epochs=5", ds);
  const auto& f = dynamic_cast<const FactorModel&>(*m);
  for (UserIndex u : {0, 17, 250}) {
    auto ctx = data::context_from_dataset(ds, u);
    auto state = m->adapt(ctx);
    auto v = m->user_vector(*state);
    ASSERT_EQ(v.size(), 9u);  // factors + the bias column
    auto trained = f.user_factors(u);
    EXPECT_TRUE(std::equal(trained.begin(), trained.end(), v.begin())) << "user " << u;
    EXPECT_EQ(v.back(), 1.0f);
    EXPECT_EQ(state->seen, ds.item_set(u));

    // The same history in another order (and repeated) is the same history.
    auto shuffled = ctx;
    std::reverse(shuffled.history.begin(), shuffled.history.end());
    shuffled.history.push_back(shuffled.history.front());
    EXPECT_EQ(m->user_vector(*m->adapt(shuffled)), v);

    // A changed history is folded in from the trained vector.
    auto more = ctx;
    ItemIndex extra = 0;
    while (std::binary_search(state->seen.begin(), state->seen.end(), extra)) ++extra;
    more.history.push_back(data::Event{extra, 1 << 30, 1.0f, 0, 1.0f});
    EXPECT_NE(m->user_vector(*m->adapt(more)), v);
  }
}

TEST(Bpr, FoldInIsDeterministic) {
  auto ds = synthetic();
  auto m = fitted("bpr:factors=64,epochs=3", ds);
  std::vector<ItemIndex> history{3, 14, 15, 92, 65, 35, 89, 79, 32, 38};
  auto a = m->user_vector(*m->adapt(new_user(history)));
  auto b = m->user_vector(*m->adapt(new_user(history)));
  EXPECT_EQ(a, b);
  std::reverse(history.begin(), history.end());
  EXPECT_EQ(m->user_vector(*m->adapt(new_user(history))), a);
  // Another history gives another vector.
  history.pop_back();
  EXPECT_NE(m->user_vector(*m->adapt(new_user(history))), a);
}

TEST(Bpr, EmptyHistoryRanksPopularItemsHigh) {
  auto ds = synthetic();
  auto m = fitted("bpr:factors=16,epochs=20", ds);
  auto counts = ds.item_counts();
  std::vector<ItemIndex> by_count(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) by_count[i] = static_cast<ItemIndex>(i);
  std::stable_sort(by_count.begin(), by_count.end(), [&](ItemIndex a, ItemIndex b) { return counts[a] > counts[b]; });
  std::set<ItemIndex> popular(by_count.begin(), by_count.begin() + 30);  // top 10%
  auto recs = recommend(*m, new_user({}), 10);
  int hits = 0;
  for (auto& [i, s] : recs) hits += popular.count(i) > 0;
  EXPECT_GE(hits, 7);
  // A known user without training interactions is served the same way.
  auto sparse = make_dataset(3, 4, {{0, 1}, {0, 2}, {2, 1}});
  auto small = fitted("bpr:factors=4,epochs=50", sparse);
  data::UserContext known;
  known.user = 1;
  EXPECT_EQ(small->user_vector(*small->adapt(known)), small->user_vector(*small->adapt(new_user({}))));
}

TEST(Bpr, FoldInOfANewUserRecommendsTheirTopic) {
  data::SyntheticTruth truth;
  auto ds = synthetic(&truth);
  auto m = fitted("bpr", ds);
  const int topics = *std::max_element(truth.item_topic.begin(), truth.item_topic.end()) + 1;
  int total_hits = 0, total = 0;
  for (int topic = 0; topic < topics; ++topic) {
    std::vector<ItemIndex> history;
    for (ItemIndex i = 0; i < ds.num_items() && history.size() < 10; ++i)
      if (truth.item_topic[static_cast<size_t>(i)] == topic) history.push_back(i);
    ASSERT_EQ(history.size(), 10u);
    auto recs = recommend(*m, new_user(history), 10);
    int hits = 0;
    for (auto& [i, s] : recs) hits += truth.item_topic[static_cast<size_t>(i)] == topic;
    EXPECT_GE(hits, 6) << "topic " << topic;
    total_hits += hits;
    total += 10;
  }
  EXPECT_GE(total_hits, 0.8 * total);
}

// ---- Quality floor ----------------------------------------------------------

// HR@10 on a random 80/20 split: share of test users with a test item among
// their top 10 (training items excluded).
double hit_rate(const Model& m, const data::Split& split) {
  int users = 0, hits = 0;
  for (UserIndex u = 0; u < split.test.num_users(); ++u) {
    auto truth = split.test.item_set(u);
    if (truth.empty()) continue;
    ++users;
    for (auto& [item, score] : recommend(m, data::context_from_dataset(split.train, u), 10))
      if (std::binary_search(truth.begin(), truth.end(), item)) {
        ++hits;
        break;
      }
  }
  return users > 0 ? static_cast<double>(hits) / users : 0.0;
}

TEST(Bpr, BeatsPopularityClearlyOnPlantedData) {
  auto ds = synthetic(nullptr, 1000, 500);
  data::SplitOptions so;
  so.seed = 42;
  auto split = data::make_split(ds, so);
  const double pop = hit_rate(*fitted("popularity", split.train), split);
  const double bpr = hit_rate(*fitted("bpr", split.train), split);
  RecordProperty("hr10_popularity", std::to_string(pop));
  RecordProperty("hr10_bpr", std::to_string(bpr));
  EXPECT_GT(bpr, pop + 0.1) << "popularity " << pop << " bpr " << bpr;
  EXPECT_GT(bpr, 1.25 * pop) << "popularity " << pop << " bpr " << bpr;
}

// ---- Save / load ------------------------------------------------------------

TEST(Bpr, SaveLoadRoundTripGivesIdenticalScores) {
  testing::TempDir dir;
  auto ds = synthetic();
  for (const std::string spec : {"bpr:factors=12,epochs=5", "bpr:bias=false,factors=9,epochs=5"}) {
    SCOPED_TRACE(spec);
    auto m = fitted(spec, ds);
    const auto path = dir / "bpr.fwr";
    save_model(path, *m, ds.catalogue(), {{"model.name", "bpr"}});
    auto loaded = load_model(path);
    ASSERT_NE(loaded.model, nullptr);
    EXPECT_EQ(loaded.model->spec().to_string(), m->spec().to_string());
    EXPECT_EQ(loaded.model->vector_dim(), m->vector_dim());
    for (UserIndex u : {0, 5, 99}) {
      auto known = data::context_from_dataset(ds, u);
      EXPECT_EQ(scores_of(*loaded.model, known), scores_of(*m, known));
    }
    EXPECT_EQ(scores_of(*loaded.model, new_user({2, 4, 8})), scores_of(*m, new_user({2, 4, 8})));
    EXPECT_EQ(scores_of(*loaded.model, new_user({})), scores_of(*m, new_user({})));
    auto items_a = loaded.model->item_vectors();
    auto items_b = m->item_vectors();
    EXPECT_TRUE(std::equal(items_a.begin(), items_a.end(), items_b.begin(), items_b.end()));
  }
}

TEST(Bpr, CorruptHistorySectionsAreRejected) {
  auto ds = make_dataset(3, 4, {{0, 1}, {1, 2}, {2, 3}});
  auto m = fitted("bpr:factors=4,epochs=3", ds);
  const auto& f = dynamic_cast<const FactorModel&>(*m);
  const auto& info = model_registry().get("bpr");
  // The sections save() writes, with the history sections given here.
  auto reload = [&](const std::vector<int64_t>& sizes, const std::vector<int64_t>& hashes) {
    core::ArtifactWriter w("model");
    w.put_array<int64_t>("model/shape", std::vector<int64_t>{3, 4, 4, 1});
    w.put_array<float>("model/user_factors", f.user_factor_matrix());
    w.put_array<float>("model/item_factors", f.item_factor_matrix());
    w.put_array<float>("model/item_bias", f.item_bias());
    w.put_array<int64_t>("model/user_history_size", sizes);
    w.put_array<int64_t>("model/user_history_hash", hashes);
    auto reader = core::ArtifactReader::from_bytes(w.to_bytes(), "model", "test.fwr");
    return info.load(m->spec(), reader, "model/");
  };
  EXPECT_NE(reload({1, 1, 1}, {0, 0, 0}), nullptr);
  EXPECT_THAT(error_of([&] { reload({1, 1}, {0, 0, 0}); }, ErrorCode::kCorrupt),
              HasSubstr("section `model/user_history_size` has 2 values, expected 3"));
  EXPECT_THAT(error_of([&] { reload({1, -1, 1}, {0, 0, 0}); }, ErrorCode::kCorrupt),
              HasSubstr("artifact test.fwr: section `model/user_history_size` holds -1"));
  EXPECT_THAT(error_of([&] { reload({1, 1, 1}, {0}); }, ErrorCode::kCorrupt),
              HasSubstr("user_history_hash"));
}

// ---- Options ------------------------------------------------------------------

TEST(Bpr, OptionsAreListedWithTheirDefaults) {
  const auto& info = model_registry().get("bpr");
  std::map<std::string, std::string> defaults;
  for (const auto& o : info.options) defaults[o.key] = o.default_value;
  EXPECT_EQ(defaults.at("factors"), "64");
  EXPECT_EQ(defaults.at("bias"), "true");
  EXPECT_EQ(defaults.at("negatives"), "uniform");
  EXPECT_TRUE(defaults.count("learning_rate"));
  EXPECT_TRUE(defaults.count("regularization"));
  EXPECT_TRUE(defaults.count("epochs"));
  EXPECT_TRUE(defaults.count("fold_in_steps"));
}

TEST(Bpr, BadOptionsAreClearErrors) {
  auto create = [](const std::string& spec) { return model_registry().create(ModelSpec::parse(spec)); };
  EXPECT_THAT(error_of([&] { create("bpr:factors=0"); }, ErrorCode::kInvalidArgument),
              HasSubstr("model `bpr`: option `factors` must be in [1, 4096], got 0"));
  EXPECT_THAT(error_of([&] { create("bpr:learning_rate=0"); }, ErrorCode::kInvalidArgument),
              HasSubstr("model `bpr`: option `learning_rate` must be > 0, got 0"));
  EXPECT_THAT(error_of([&] { create("bpr:learning_rate=-0.1"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `learning_rate` must be in [0, 100]"));
  EXPECT_THAT(error_of([&] { create("bpr:learning_rate=fast"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `learning_rate` expects a number, got `fast`"));
  EXPECT_THAT(error_of([&] { create("bpr:regularization=nan"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `regularization`"));
  EXPECT_THAT(error_of([&] { create("bpr:epochs=-1"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `epochs` must be in [0, 1000000], got -1"));
  EXPECT_THAT(error_of([&] { create("bpr:negatives=hard"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `negatives` must be one of uniform, popularity, got `hard`"));
  EXPECT_THAT(error_of([&] { create("bpr:bias=maybe"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `bias` expects true or false"));
  auto unknown = error_of([&] { create("bpr:factor=8"); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(unknown, HasSubstr("`factor`"));
  EXPECT_THAT(unknown, HasSubstr("did you mean `factors`?"));
}

TEST(Bpr, BadInputsAreClearErrors) {
  auto ds = make_dataset(3, 4, {{0, 1}, {1, 2}, {2, 3}});
  auto m = fitted("bpr:factors=4,epochs=3", ds);
  EXPECT_THAT(error_of([&] { m->adapt(new_user({7})); }, ErrorCode::kInvalidArgument),
              HasSubstr("history item index 7 is outside the catalogue (4 items)"));
  auto state = m->adapt(new_user({1}));
  std::vector<ItemIndex> items{0, 9};
  std::vector<float> out(2);
  EXPECT_THAT(error_of([&] { m->score(*state, items, out); }, ErrorCode::kInvalidArgument),
              HasSubstr("item index 9"));
  // An untrained model has no items: an empty history is served (nothing to
  // score), an item is outside the catalogue.
  auto untrained = model_registry().create(ModelSpec::parse("bpr:factors=4"));
  EXPECT_EQ(untrained->num_items(), 0);
  EXPECT_TRUE(untrained->adapt(new_user({}))->seen.empty());
  EXPECT_THAT(error_of([&] { untrained->adapt(new_user({0})); }, ErrorCode::kInvalidArgument),
              HasSubstr("outside the catalogue (0 items)"));
  UserState foreign;
  std::vector<float> all(4);
  EXPECT_THAT(error_of([&] { m->score_all(foreign, all); }, ErrorCode::kInvalidArgument),
              HasSubstr("not made by this model's adapt()"));
}

}  // namespace
}  // namespace fewrec::models

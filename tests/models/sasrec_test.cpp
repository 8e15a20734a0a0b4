// SASRec: learns planted sequential transitions (beats popularity and a
// non-sequential model under leave-one-out), every loss trains, length
// grouping leaves the loss unchanged, save / load, new users, bad options.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

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
using testing::new_user;

class LossMonitor final : public core::Monitor {
 public:
  void metric(std::string_view name, double value, int64_t step) override {
    if (name == "sasrec/loss") losses.push_back(value);
  }
  void info(std::string_view message) override { infos.emplace_back(message); }
  std::vector<double> losses;
  std::vector<std::string> infos;
};

std::unique_ptr<Model> fitted(const std::string& spec, const data::Dataset& ds, core::Monitor& monitor,
                              uint64_t seed = 42, const data::Dataset* valid = nullptr) {
  auto m = model_registry().create(ModelSpec::parse(spec));
  TrainOptions opts;
  opts.threads = 1;
  opts.seed = seed;
  opts.valid = valid;
  m->fit(ds, opts, monitor);
  return m;
}

std::unique_ptr<Model> fitted(const std::string& spec, const data::Dataset& ds) {
  return fitted(spec, ds, core::null_monitor());
}

std::vector<float> scores_of(const Model& m, const data::UserContext& ctx) {
  auto state = m.adapt(ctx);
  std::vector<float> out(static_cast<size_t>(m.num_items()));
  m.score_all(*state, out);
  return out;
}

// Sequential synthetic data: the next item is often the planted successor.
data::Dataset sequential_data(int users = 800, int items = 300) {
  data::SyntheticOptions o;
  o.num_users = users;
  o.num_items = items;
  o.mean_interactions = 30;
  o.sequential_prob = 0.6;
  o.seed = 5;
  return data::make_synthetic(o);
}

// HR@10 of the held-out (last) item, full ranking, training items excluded.
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

const std::string kSmall = "sasrec:maxlen=30,hidden=32,epochs=25,dropout=0.1,learning_rate=0.005";

TEST(SasRec, LearnsPlantedTransitionsBetterThanPopularityAndItemKnn) {
  auto ds = sequential_data();
  data::SplitOptions so;
  so.kind = data::SplitKind::kLeaveOneOut;
  auto split = data::make_split(ds, so);
  const double pop = hit_rate(*fitted("popularity", split.train), split);
  const double knn = hit_rate(*fitted("itemknn", split.train), split);
  for (const std::string loss : {"bce", "softmax"}) {
    const double sas = hit_rate(*fitted(kSmall + ",loss=" + loss, split.train), split);
    RecordProperty("hr10_sasrec_" + loss, std::to_string(sas));
    EXPECT_GT(sas, pop + 0.15) << loss << ": popularity " << pop << " sasrec " << sas;
    EXPECT_GT(sas, knn + 0.05) << loss << ": itemknn " << knn << " sasrec " << sas;
  }
}

TEST(SasRec, EveryLossLowersTheTrainingLoss) {
  auto ds = sequential_data(300, 120);
  for (const std::string loss : {"bce", "sampled_softmax", "sampled_softmax,sampler=popularity", "softmax"}) {
    SCOPED_TRACE(loss);
    LossMonitor mon;
    fitted("sasrec:maxlen=20,hidden=16,epochs=15,dropout=0,negatives=32,learning_rate=0.01,loss=" + loss, ds, mon);
    ASSERT_EQ(mon.losses.size(), 15u);
    for (double l : mon.losses) EXPECT_TRUE(std::isfinite(l));
    EXPECT_LT(mon.losses.back(), 0.9 * mon.losses.front()) << ::testing::PrintToString(mon.losses);
  }
}

// Cutting a batch into length groups only removes padding: without dropout
// and sampling (softmax loss) training gives the same model. (Plain SGD:
// Adam would blow float rounding in near-zero gradients up to lr-sized steps.)
TEST(SasRec, LengthGroupsDoNotChangeTheResult) {
  auto ds = sequential_data(200, 80);
  const std::string base = "sasrec:maxlen=25,hidden=16,epochs=2,dropout=0,loss=softmax,batch_size=64,optimizer=sgd,learning_rate=0.5";
  auto one = fitted(base + ",length_groups=1", ds);
  auto many = fitted(base + ",length_groups=8", ds);
  auto a = one->item_vectors(), b = many->item_vectors();
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0.0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, static_cast<double>(std::abs(a[i] - b[i])));
  EXPECT_LT(max_diff, 2e-4);
}

TEST(SasRec, NewUsersAreEncodedFromTheirHistory) {
  auto ds = sequential_data(300, 120);
  auto m = fitted("sasrec:maxlen=20,hidden=16,epochs=3", ds);
  auto a = scores_of(*m, new_user({1, 2, 3}));
  auto b = scores_of(*m, new_user({50, 60, 70}));
  EXPECT_NE(a, b);
  // Order matters for a sequence model.
  EXPECT_NE(scores_of(*m, new_user({3, 2, 1})), a);
  // No history: the items' training popularity.
  const auto counts = ds.item_counts();
  const auto empty = scores_of(*m, new_user({}));
  for (size_t i = 0; i < empty.size(); ++i) EXPECT_EQ(empty[i], static_cast<float>(counts[i]));
  // Histories longer than maxlen keep their last maxlen items.
  std::vector<data::ItemIndex> longer;
  for (int i = 0; i < 40; ++i) longer.push_back(i);
  std::vector<data::ItemIndex> tail(longer.end() - 20, longer.end());
  EXPECT_EQ(scores_of(*m, new_user(longer)), scores_of(*m, new_user(tail)));
  EXPECT_THAT(error_of([&] { m->adapt(new_user({120})); }, ErrorCode::kInvalidArgument), HasSubstr("outside the catalogue"));
  EXPECT_EQ(m->vector_dim(), 16);
  EXPECT_EQ(m->item_vectors().size(), static_cast<size_t>(120 * 16));
  // score == dot(user_vector, item vector)
  auto state = m->adapt(new_user({4, 5}));
  auto uv = m->user_vector(*state);
  std::vector<float> s(static_cast<size_t>(m->num_items()));
  m->score_all(*state, s);
  double dot = 0;
  for (int j = 0; j < 16; ++j) dot += uv[static_cast<size_t>(j)] * m->item_vectors()[static_cast<size_t>(7 * 16 + j)];
  EXPECT_NEAR(s[7], dot, 1e-4);
}

TEST(SasRec, SaveLoadRoundTripGivesIdenticalScores) {
  testing::TempDir dir;
  auto ds = sequential_data(200, 80);
  auto m = fitted("sasrec:maxlen=20,hidden=16,heads=2,epochs=2", ds);
  const auto path = dir / "sasrec.fwr";
  save_model(path, *m, ds.catalogue(), {{"model.name", "sasrec"}});
  auto loaded = load_model(path);
  for (UserIndex u : {0, 7, 99})
    EXPECT_EQ(scores_of(*loaded.model, data::context_from_dataset(ds, u)), scores_of(*m, data::context_from_dataset(ds, u)));
  EXPECT_EQ(scores_of(*loaded.model, new_user({3, 9})), scores_of(*m, new_user({3, 9})));
}

TEST(SasRec, ValidationKeepsTheBestEpochAndCheckpointsResume) {
  auto ds = sequential_data(300, 120);
  data::SplitOptions so;
  so.kind = data::SplitKind::kLeaveOneOut;
  so.loo_valid = true;
  auto split = data::make_split(ds, so);
  LossMonitor mon;
  fitted("sasrec:maxlen=20,hidden=16,epochs=6,eval_every=2,patience=5", split.train, mon, 42, &split.valid);
  auto kept = std::count_if(mon.infos.begin(), mon.infos.end(),
                            [](const std::string& s) { return s.find("kept the weights of epoch") != std::string::npos; });
  EXPECT_EQ(kept, 1);

  testing::TempDir dir;
  const std::string ckpt = (dir / "ckpt.pt").string();
  LossMonitor first, second;
  fitted("sasrec:maxlen=20,hidden=16,epochs=2,checkpoint=" + ckpt, ds, first);
  EXPECT_EQ(first.losses.size(), 2u);
  fitted("sasrec:maxlen=20,hidden=16,epochs=4,checkpoint=" + ckpt, ds, second);
  EXPECT_EQ(second.losses.size(), 2u);  // epochs 3 and 4 only
  EXPECT_TRUE(std::any_of(second.infos.begin(), second.infos.end(),
                          [](const std::string& s) { return s.find("resumed from") != std::string::npos; }));
  // A checkpoint of another shape is a clear error.
  EXPECT_THAT(error_of([&] { fitted("sasrec:maxlen=20,hidden=8,epochs=5,checkpoint=" + ckpt, ds); }, ErrorCode::kCorrupt),
              HasSubstr("ckpt.pt"));
}

TEST(SasRec, BadOptionsAreClearErrors) {
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("sasrec:hidden=10,heads=3")); }, ErrorCode::kInvalidArgument),
              HasSubstr("heads (3) must divide hidden (10)"));
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("sasrec:loss=hinge")); }, ErrorCode::kInvalidArgument), HasSubstr("loss"));
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("sasrec:maxln=5")); }, ErrorCode::kInvalidArgument), HasSubstr("maxln"));
}

}  // namespace
}  // namespace fewrec::models

#include "fewrec/data/labels.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"
#include "fewrec/data/preprocess.h"
#include "fewrec/data/synthetic.h"

namespace fewrec::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// F1 of the positive class and mean log-loss (probabilities clipped to
// [1e-7, 1 - 1e-7]), the definitions of eval::label_metrics; test_data does
// not link the eval layer.
struct Scores {
  double f1 = 0, log_loss = 0;
};
Scores score(const std::vector<double>& p, const std::vector<uint8_t>& predicted, const std::vector<uint8_t>& y) {
  int64_t tp = 0, fp = 0, fn = 0;
  double loss = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double q = std::clamp(p[i], 1e-7, 1 - 1e-7);
    loss -= y[i] ? std::log(q) : std::log(1 - q);
    tp += predicted[i] && y[i];
    fp += predicted[i] && !y[i];
    fn += !predicted[i] && y[i];
  }
  Scores s;
  const double precision = tp + fp ? double(tp) / double(tp + fp) : 0.0;
  const double recall = tp + fn ? double(tp) / double(tp + fn) : 0.0;
  s.f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
  s.log_loss = loss / double(y.size());
  return s;
}

// Views, purchases and ratings of two users, written by hand:
//   u0: a viewed 3x with long dwell and bought; b viewed once briefly;
//       c viewed 3x, long dwell, not bought
//   u1: a viewed once, bought; b viewed 4x, bought; d viewed once, briefly
Dataset shop() {
  DatasetBuilder b;
  auto u0 = b.user("u0"), u1 = b.user("u1");
  auto a = b.item("a"), bb = b.item("b"), c = b.item("c"), d = b.item("d");
  auto view = b.event_type("view"), buy = b.event_type("purchase");
  b.add(u0, a, 1, 1, view, 120);
  b.add(u0, a, 2, 1, view, 90);
  b.add(u0, a, 3, 1, view, 200);
  b.add(u0, a, 4, 1, buy, 1);
  b.add(u0, bb, 5, 1, view, 3);
  b.add(u0, c, 6, 1, view, 150);
  b.add(u0, c, 7, 1, view, 160);
  b.add(u0, c, 8, 1, view, 170);
  b.add(u1, a, 1, 1, view, 40);
  b.add(u1, a, 2, 1, buy, 1);
  b.add(u1, bb, 3, 1, view, 60);
  b.add(u1, bb, 4, 1, view, 70);
  b.add(u1, bb, 5, 1, view, 80);
  b.add(u1, bb, 6, 1, view, 90);
  b.add(u1, bb, 7, 1, buy, 1);
  b.add(u1, d, 8, 1, view, 2);
  return std::move(b).build("shop");
}

// Behaviour with planted structure: synthetic ratings drive views (count,
// completion, dwell) and 30% of the pairs also carry their rating.
struct Planted {
  Dataset rated, behaviour;
};
const Planted& planted() {
  static const Planted p = [] {
    SyntheticOptions o;
    o.num_users = 500;
    o.num_items = 300;
    o.mean_interactions = 30;
    o.seed = 11;
    Planted out;
    out.rated = make_synthetic(o);
    out.behaviour = make_behaviour_events(out.rated, 0.3, 5);
    return out;
  }();
  return p;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

// ---------------------------------------------------------------- (a) the fit

TEST(LabelFit, RecoversPlantedLogisticWeights) {
  const std::vector<double> planted_w = {-0.5, 1.5, -1.0, 0.5};  // bias, w1..w3
  const size_t n = 20000, cols = 3;
  core::Rng rng(123);
  std::vector<double> x(n * cols);
  std::vector<uint8_t> y(n);
  for (size_t i = 0; i < n; ++i) {
    double z = planted_w[0];
    for (size_t c = 0; c < cols; ++c) {
      x[i * cols + c] = core::normal01(rng);
      z += planted_w[c + 1] * x[i * cols + c];
    }
    y[i] = core::uniform01(rng) < sigmoid(z) ? 1 : 0;
  }
  auto fit = fit_logistic(x, cols, y, 0.0);
  ASSERT_TRUE(fit.converged);
  ASSERT_EQ(fit.weights.size(), 4u);
  std::printf("planted -0.5 1.5 -1.0 0.5, recovered %.3f %.3f %.3f %.3f in %d Newton steps\n", fit.weights[0],
              fit.weights[1], fit.weights[2], fit.weights[3], fit.iterations);
  for (size_t c = 0; c < 4; ++c) EXPECT_NEAR(fit.weights[c], planted_w[c], 0.08) << "weight " << c;

  // A strong L2 penalty shrinks the weights (the bias is not penalised).
  auto shrunk = fit_logistic(x, cols, y, 5000.0);
  for (size_t c = 1; c < 4; ++c) EXPECT_LT(std::abs(shrunk.weights[c]), std::abs(fit.weights[c]) * 0.8);
}

TEST(LabelFit, IsDeterministic) {
  const auto& p = planted();
  auto table = build_pair_table(p.behaviour, LabelTarget::parse("rating:value>=4"));
  LabelModelOptions o;
  o.target = "rating:value>=4";
  auto a = LabelModel::fit(table, o).predict(table);
  auto b = LabelModel::fit(table, o).predict(table);
  EXPECT_EQ(a, b);
}

// predict() is the fitted model: at the optimum of the penalised log-loss the
// gradient vanishes, sum_i (p_i - y_i) x_if + l2 w_f = 0 for every feature f
// (no penalty on the bias: the mean probability equals the positive rate).
TEST(LabelFit, PredictionsSatisfyTheOptimalityConditions) {
  const auto& p = planted();
  const auto table = build_pair_table(p.behaviour, LabelTarget::parse("rating:value>=4"));
  LabelModelOptions o;
  o.target = "rating:value>=4";
  o.l2 = 10.0;
  const auto model = LabelModel::fit(table, o);
  const auto prob = model.predict(table);
  const auto& features = model.features();
  std::vector<double> grad(features.size(), 0.0);
  double n = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    if (!table.labelled[i]) continue;
    n += 1;
    const double r = prob[i] - table.labels[i];
    grad[0] += r;
    for (size_t f = 1; f < features.size(); ++f) {
      double v = table.signal(i, table.column(features[f].signal));
      if (features[f].log1p) v = std::log1p(std::max(0.0, v));
      grad[f] += r * (v - features[f].mean) / features[f].scale;
    }
  }
  for (size_t f = 1; f < features.size(); ++f) grad[f] += o.l2 * features[f].weight;
  // float probabilities: ~1e-7 relative error per term.
  for (size_t f = 0; f < features.size(); ++f) EXPECT_NEAR(grad[f] / n, 0.0, 1e-5) << features[f].name;
}

// ---------------------------------------------------------------- pairs and targets

TEST(LabelPairs, SignalsOfAHandWrittenShop) {
  auto table = build_pair_table(shop(), LabelTarget::parse("event:purchase"));
  ASSERT_EQ(table.size(), 6u);  // (u0: a, b, c), (u1: a, b, d)
  // The purchase events are the target: not a feature.
  EXPECT_EQ(table.column("count:purchase"), -1);
  const int views = table.column("count:view"), dwell = table.column("weight_sum");
  ASSERT_GE(views, 0);
  ASSERT_GE(dwell, 0);
  EXPECT_EQ(table.column("events"), -1);  // one event type left: same as count:view
  EXPECT_EQ(table.signal(0, views), 3);
  EXPECT_EQ(table.signal(0, dwell), 410);
  EXPECT_EQ(table.signal(4, views), 4);
  EXPECT_EQ(std::vector<uint8_t>(table.labels.begin(), table.labels.end()),
            (std::vector<uint8_t>{1, 0, 0, 1, 1, 0}));
  // Every pair is labelled; only the purchases are observations.
  EXPECT_EQ(table.num_labelled(), 6);
  EXPECT_EQ(std::vector<uint8_t>(table.observed.begin(), table.observed.end()),
            (std::vector<uint8_t>{1, 0, 0, 1, 1, 0}));
  EXPECT_EQ(table.last_timestamps[0], 4);
}

TEST(LabelPairs, ValueTargetLabelsOnlyRatedPairsAndUserCentresValues) {
  DatasetBuilder b;
  auto u = b.user("u");
  auto x = b.item("x"), y = b.item("y"), z = b.item("z");
  auto view = b.event_type("view"), rating = b.event_type("rating");
  b.add(u, x, 1, 0.9f, view, 10);
  b.add(u, x, 2, 5, rating, 1);
  b.add(u, y, 3, 0.3f, view, 10);
  b.add(u, y, 4, 2, rating, 1);
  b.add(u, z, 5, 0.6f, view, 10);
  auto table = build_pair_table(std::move(b).build(), LabelTarget::parse("rating:value>=4"));
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(std::vector<uint8_t>(table.labelled.begin(), table.labelled.end()), (std::vector<uint8_t>{1, 1, 0}));
  EXPECT_EQ(table.labels[0], 1);
  EXPECT_EQ(table.labels[1], 0);
  const int centred = table.column("value_centred");
  ASSERT_GE(centred, 0);
  EXPECT_NEAR(table.signal(0, centred), 0.9 - 0.6, 1e-6);  // the user's mean view value is 0.6
  EXPECT_NEAR(table.signal(1, centred), 0.3 - 0.6, 1e-6);

  // value>=T without an event type: the value is the target, not a feature.
  auto all = build_pair_table(shop(), LabelTarget::parse("value>=1"));
  EXPECT_EQ(all.column("value_last"), -1);
  EXPECT_GE(all.column("count:purchase"), 0);
}

// ---------------------------------------------------------------- (b) quality

TEST(LabelModelQuality, BeatsAFixedThresholdOnOneSignal) {
  const auto& p = planted();
  const auto table = build_pair_table(p.behaviour, LabelTarget::parse("rating:value>=4"));
  // Held-out: 30% of the labelled (rated) pairs, seeded.
  core::Rng rng(99);
  std::vector<uint8_t> train(table.size(), 0);
  std::vector<size_t> test;
  for (size_t i = 0; i < table.size(); ++i) {
    if (!table.labelled[i]) continue;
    if (core::uniform01(rng) < 0.3) test.push_back(i);
    else train[i] = 1;
  }
  ASSERT_GT(test.size(), 1000u);
  LabelModelOptions o;
  o.target = "rating:value>=4";
  const auto model = LabelModel::fit(table, o, train);
  const auto prob = model.predict(table);

  std::vector<uint8_t> y;
  std::vector<double> pm;
  std::vector<uint8_t> lm;
  for (size_t i : test) {
    y.push_back(table.labels[i]);
    pm.push_back(prob[i]);
    lm.push_back(prob[i] >= 0.5);
  }
  const Scores label_model = score(pm, lm, y);

  // Baseline: the best fixed threshold on one signal (views or total dwell),
  // chosen for F1 on the training pairs; its probability is the training
  // positive rate on each side of the threshold (calibrated, for log-loss).
  Scores best_baseline{0, 1e9};
  std::string best_name;
  for (const char* name : {"count:view", "weight_sum", "value_last"}) {
    const int col = table.column(name);
    ASSERT_GE(col, 0) << name;
    std::set<double> cuts;
    for (size_t i = 0; i < table.size(); ++i)
      if (train[i]) cuts.insert(table.signal(i, col));
    std::vector<double> cut_list(cuts.begin(), cuts.end());
    // At most ~200 candidate cuts (quantiles of the training values).
    std::vector<double> candidates;
    for (size_t k = 0; k < cut_list.size(); k += std::max<size_t>(1, cut_list.size() / 200))
      candidates.push_back(cut_list[k]);
    double best_f1 = -1, best_cut = 0, rate_hi = 0, rate_lo = 0;
    for (double cut : candidates) {
      int64_t tp = 0, fp = 0, fn = 0, n_hi = 0, n_lo = 0, pos_lo = 0;
      for (size_t i = 0; i < table.size(); ++i) {
        if (!train[i]) continue;
        const bool pred = table.signal(i, col) >= cut;
        const bool pos = table.labels[i];
        tp += pred && pos;
        fp += pred && !pos;
        fn += !pred && pos;
        n_hi += pred;
        n_lo += !pred;
        pos_lo += !pred && pos;
      }
      const double f1 = tp ? 2.0 * tp / (2.0 * tp + fp + fn) : 0.0;
      if (f1 > best_f1) {
        best_f1 = f1;
        best_cut = cut;
        rate_hi = n_hi ? double(tp) / double(n_hi) : 0.5;
        rate_lo = n_lo ? double(pos_lo) / double(n_lo) : 0.5;
      }
    }
    std::vector<double> pb;
    std::vector<uint8_t> lb;
    for (size_t i : test) {
      const bool pred = table.signal(i, col) >= best_cut;
      lb.push_back(pred);
      pb.push_back(pred ? rate_hi : rate_lo);
    }
    const Scores s = score(pb, lb, y);
    std::printf("baseline %-11s >= %-8.3g  held-out F1 %.3f  log-loss %.3f\n", name, best_cut, s.f1, s.log_loss);
    if (s.f1 > best_baseline.f1) best_name = name;
    best_baseline.f1 = std::max(best_baseline.f1, s.f1);
    best_baseline.log_loss = std::min(best_baseline.log_loss, s.log_loss);
  }
  std::printf("label model (%lld train pairs)   held-out F1 %.3f  log-loss %.3f on %zu pairs\n",
              static_cast<long long>(model.train_pairs()), label_model.f1, label_model.log_loss, test.size());
  for (const auto& f : model.features()) std::printf("  weight %-20s %+.3f\n", f.name.c_str(), f.weight);
  // Stated margins: +0.03 F1 over the best single-signal threshold (the
  // positive rate is ~0.56, so "all positive" already has F1 ~0.72), and
  // 0.10 nats lower log-loss than the best calibrated one.
  EXPECT_GE(label_model.f1, best_baseline.f1 + 0.03) << "best baseline: " << best_name;
  EXPECT_LE(label_model.log_loss, best_baseline.log_loss - 0.10);

  // Longer total dwell and a higher completion mean liking (planted).
  for (const auto& f : model.features())
    if (f.name == "log1p(weight_sum)" || f.name == "value_last") EXPECT_GT(f.weight, 0) << f.name;
}

TEST(LabelModelQuality, ValueTargetOnFullyRatedDataEqualsTheThreshold) {
  // Every pair rated, target value>=4, observed labels trusted: the label
  // model keeps exactly the pairs data.positive_threshold = 4 keeps.
  const auto& rated = planted().rated;
  PreprocessOptions threshold;
  threshold.has_threshold = true;
  threshold.positive_threshold = 4;
  PreprocessOptions model;
  model.labels = "model";
  model.label_model.target = "value>=4";
  const auto a = preprocess(rated, threshold);
  LabelReport report;
  const auto b = preprocess(rated, model, &report);
  ASSERT_EQ(a.num_interactions(), b.num_interactions());
  EXPECT_EQ(std::vector<ItemIndex>(a.item_column().begin(), a.item_column().end()),
            std::vector<ItemIndex>(b.item_column().begin(), b.item_column().end()));
  for (float w : b.weight_column()) EXPECT_EQ(w, 1.0f);
  EXPECT_EQ(report.kept, b.num_interactions());
  EXPECT_EQ(report.labelled, report.pairs);
}

// ---------------------------------------------------------------- wiring

TEST(LabelPreprocess, ModelKeepsOneRowPerPositivePairWithConfidenceAsWeight) {
  const auto& p = planted();
  PreprocessOptions o;
  o.labels = "model";
  o.label_model.target = "rating:value>=4";
  LabelReport report;
  const auto out = preprocess(p.behaviour, o, &report);
  EXPECT_GT(report.pairs, 0);
  EXPECT_EQ(report.kept, out.num_interactions());
  EXPECT_LT(out.num_interactions(), report.pairs);
  std::set<std::pair<UserIndex, ItemIndex>> seen;
  int64_t model_rows = 0;
  for (const auto& r : out.rows()) {
    EXPECT_TRUE(seen.emplace(r.user, r.item).second) << "pair kept twice";
    EXPECT_GE(r.weight, 0.5f);
    EXPECT_LE(r.weight, 1.0f);
    model_rows += r.weight < 1.0f;
  }
  EXPECT_GT(model_rows, 0);  // unrated pairs labelled by the model
  EXPECT_EQ(report.model["target"], "rating:value>=4");
}

TEST(LabelPreprocess, ShopPurchasesAreObservedPositives) {
  PreprocessOptions o;
  o.labels = "model";
  o.label_model.target = "event:purchase";
  o.label_model.l2 = 0.1;
  const auto ds = shop();
  const auto out = preprocess(ds, o);
  std::set<std::pair<std::string, std::string>> kept;
  for (const auto& r : out.rows()) kept.emplace(ds.users().id(r.user), ds.items().id(r.item));
  // The three purchased pairs are kept with confidence 1; u0's `c` (three long
  // views) looks like a purchase; the brief single views do not.
  EXPECT_TRUE(kept.count({"u0", "a"}));
  EXPECT_TRUE(kept.count({"u1", "a"}));
  EXPECT_TRUE(kept.count({"u1", "b"}));
  EXPECT_TRUE(kept.count({"u0", "c"}));
  EXPECT_FALSE(kept.count({"u0", "b"}));
  EXPECT_FALSE(kept.count({"u1", "d"}));
}

// ---------------------------------------------------------------- (c) errors

TEST(LabelErrors, TargetsThatCannotWork) {
  const auto ds = shop();
  auto fit = [&](const std::string& target) {
    return error_of([&] {
      LabelModelOptions o;
      o.target = target;
      LabelModel::fit(build_pair_table(ds, LabelTarget::parse(target)), o);
    });
  };
  auto unknown = fit("event:purchse");
  EXPECT_THAT(unknown, HasSubstr("unknown event type `purchse`"));
  EXPECT_THAT(unknown, HasSubstr("did you mean `purchase`"));
  EXPECT_THAT(unknown, HasSubstr("the data has: view, purchase"));
  EXPECT_THAT(fit("value>=2"), HasSubstr("no positive example among 6 labelled pairs"));
  EXPECT_THAT(fit("value>=0.5"), HasSubstr("no negative example among 6 labelled pairs"));
  EXPECT_THAT(fit("purchase:value>=2"), HasSubstr("no positive example among 3 labelled pairs"));
}

TEST(LabelErrors, MalformedTargets) {
  auto parse = [](const std::string& t) { return error_of([&] { LabelTarget::parse(t); }); };
  EXPECT_THAT(parse("rating>4"), HasSubstr("data.label_model.target`: cannot parse `rating>4`; expected `event:NAME`"));
  EXPECT_THAT(parse("event:"), HasSubstr("`event:` names no event type"));
  EXPECT_THAT(parse("rating:value>=good"), HasSubstr("expected a number after `value>=`, got `good`"));
  EXPECT_THAT(parse("ratingvalue>=4"), HasSubstr("cannot parse `ratingvalue>=4`"));
  EXPECT_THAT(parse(""), HasSubstr("`data.label_model.target` is empty"));
  EXPECT_EQ(parse("rating:value>=4.5"), "(no error)");
  auto t = LabelTarget::parse(" rating : value>=4.5");
  EXPECT_EQ(t.event, "rating");
  EXPECT_EQ(t.threshold, 4.5);
}

TEST(LabelErrors, ConfigKeysNameTheKeyAndWhatWasExpected) {
  auto read = [](const std::string& toml) {
    return error_of([&] {
      auto c = core::Config::from_toml_string(toml);
      PreprocessOptions::from_config(c);
    });
  };
  EXPECT_THAT(read("[data]\nlabels = \"modle\"\n"),
              HasSubstr("config key `data.labels`: unknown value `modle`; expected threshold or model"));
  EXPECT_THAT(read("[data]\nlabels = \"model\"\npositive_threshold = 4\n[data.label_model]\ntarget = \"value>=4\"\n"),
              HasSubstr("`data.positive_threshold` contradicts `data.labels = \"model\"`"));
  EXPECT_THAT(read("[data]\nlabels = \"model\"\ndedupe = false\n[data.label_model]\ntarget = \"value>=4\"\n"),
              HasSubstr("`data.dedupe = false` contradicts"));
  EXPECT_THAT(read("[data]\nlabels = \"model\"\n"), HasSubstr("needs `data.label_model.target`"));
  EXPECT_THAT(read("[data.label_model]\ntarget = \"value>=4\"\n"),
              HasSubstr("config key `data.label_model.target` is set but `data.labels = \"threshold\"`"));
  EXPECT_THAT(read("[data]\nlabels = \"model\"\n[data.label_model]\ntarget = \"value=>4\"\n"),
              HasSubstr("cannot parse `value=>4`"));
  EXPECT_THAT(read("[data]\nlabels = \"model\"\n[data.label_model]\ntarget = \"value>=4\"\nthreshold = 1.5\n"),
              HasSubstr("`data.label_model.threshold` must be in (0, 1), got 1.5"));
  EXPECT_THAT(read("[data.label_model]\nl2 = 3.0\n"),
              HasSubstr("config key `data.label_model.l2` is set but `data.labels = \"threshold\"`"));
  // A saved model's effective config lists every key with its default: no contradiction.
  EXPECT_EQ(read("[data]\npositive_threshold = 4.0\n[data.label_model]\ntarget = \"\"\nthreshold = 0.5\n"
                 "l2 = 1.0\ntrust_observed = true\n"),
            "(no error)");
  EXPECT_EQ(read("[data]\nlabels = \"model\"\npositive_threshold = 0.0\ndedupe = true\n"
                 "[data.label_model]\ntarget = \"value>=4\"\n"),
            "(no error)");
  // Absent keys: today's behaviour.
  auto c = core::Config::from_toml_string("[data]\npositive_threshold = 4\n");
  auto o = PreprocessOptions::from_config(c);
  EXPECT_EQ(o.labels, "threshold");
  EXPECT_TRUE(o.has_threshold);
  EXPECT_NO_THROW(c.check_all_used());
}

// ---------------------------------------------------------------- (d) save / load

TEST(LabelSaveLoad, RoundTripGivesIdenticalProbabilities) {
  const auto& p = planted();
  const auto table = build_pair_table(p.behaviour, LabelTarget::parse("rating:value>=4"));
  LabelModelOptions o;
  o.target = "rating:value>=4";
  o.threshold = 0.4;
  const auto model = LabelModel::fit(table, o);
  const fs::path path = fs::temp_directory_path() / ("fewrec_label_model_" + std::to_string(getpid()) + ".json");
  model.save(path);
  const auto loaded = LabelModel::load(path);
  EXPECT_EQ(loaded.predict(table), model.predict(table));
  EXPECT_EQ(loaded.confidence(table), model.confidence(table));
  EXPECT_EQ(loaded.to_json(), model.to_json());
  EXPECT_EQ(loaded.options().threshold, 0.4);
  // Named features: inspectable.
  std::vector<std::string> names;
  for (const auto& f : loaded.features()) names.push_back(f.name);
  EXPECT_THAT(names, ::testing::ElementsAre("bias", "log1p(count:view)", "value_max", "value_last",
                                            "value_centred", "log1p(weight_sum)"));

  // Corrupt files are clear errors.
  for (const char* field : {"weight", "scale"}) {
    auto j = model.to_json();
    j["features"][1][field] = field == std::string("scale") ? nlohmann::json(0.0) : nlohmann::json("x");
    EXPECT_THAT(error_of([&] { LabelModel::from_json(j, "m.json"); }),
                HasSubstr("`m.json` is not a valid label model")) << field;
  }
  EXPECT_THAT(error_of([&] { LabelModel::from_json(nlohmann::json{{"format", 1}}, "m.json"); }),
              HasSubstr("format is not `fewrec-label-model`"));
  {
    std::ofstream(path) << "{\"format\": \"fewrec-label-model\", \"version\": 1}";
  }
  auto err = error_of([&] { LabelModel::load(path); });
  EXPECT_THAT(err, HasSubstr("is not a valid label model"));
  {
    std::ofstream(path) << "not json";
  }
  EXPECT_THAT(error_of([&] { LabelModel::load(path); }), HasSubstr("not JSON"));
  fs::remove(path);
  EXPECT_THAT(error_of([&] { LabelModel::load(path); }), HasSubstr("cannot open label model"));
}

}  // namespace
}  // namespace fewrec::data

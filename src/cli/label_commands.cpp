// fewrec labels: fit the label model on the configured data, show its weights
// and held-out label metrics next to a fixed-threshold baseline.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "commands.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/labels.h"
#include "fewrec/eval/metrics.h"
#include "pipeline.h"

namespace fewrec::cli {

namespace {

struct LabelFlags {
  CommonFlags common;
  std::string out;
  std::string save;
} g_labels;

// labels.* keys: the command's own (the model's are data.label_model.*).
struct LabelCommandOptions {
  double holdout = 0.2;
  uint64_t seed = 42;
  std::string baseline = "events>=2";
  std::string baseline_signal;
  double baseline_threshold = 2;
};

LabelCommandOptions read_label_options(core::Config& config) {
  LabelCommandOptions o;
  o.holdout = config.get_double("labels.holdout", o.holdout,
                                "fewrec labels: fraction of the labelled pairs held out for the metrics");
  FEWREC_CHECK(o.holdout > 0 && o.holdout < 1, kInvalidArgument,
               "config key `labels.holdout` must be in (0, 1), got {}", o.holdout);
  o.seed = static_cast<uint64_t>(config.get_int("labels.seed", 42, "fewrec labels: seed of the held-out draw"));
  o.baseline = config.get_string(
      "labels.baseline", o.baseline,
      "fewrec labels: fixed-threshold baseline SIGNAL>=T on one raw pair signal (events, count:TYPE, value_max, "
      "value_last, value_centred, weight_sum)");
  const auto ge = o.baseline.find(">=");
  std::optional<double> t;
  if (ge != std::string::npos) t = core::parse_double(std::string_view(o.baseline).substr(ge + 2));
  if (ge == std::string::npos || !t || core::trim(o.baseline.substr(0, ge)).empty())
    FEWREC_THROW(kInvalidArgument, "config key `labels.baseline`: cannot parse `{}`; expected SIGNAL>=NUMBER, e.g. "
                 "events>=2 or weight_sum>=60",
                 o.baseline);
  o.baseline_signal = std::string(core::trim(o.baseline.substr(0, ge)));
  o.baseline_threshold = *t;
  return o;
}

// The baseline's signal per pair; `events` is the sum of the counts when the
// table has one event type left (and so no `events` column).
std::vector<double> baseline_signal(const data::PairTable& table, const std::string& name) {
  std::vector<double> out(table.size(), 0.0);
  if (int c = table.column(name); c >= 0) {
    for (size_t i = 0; i < table.size(); ++i) out[i] = table.signal(i, c);
    return out;
  }
  if (name == "events") {
    for (size_t c = 0; c < table.signal_names.size(); ++c)
      if (table.signal_names[c].rfind("count:", 0) == 0)
        for (size_t i = 0; i < table.size(); ++i) out[i] += table.signal(i, static_cast<int>(c));
    return out;
  }
  FEWREC_THROW(kInvalidArgument, "config key `labels.baseline`: unknown signal `{}`; the pairs have: events, {}",
               name, core::join(table.signal_names, ", "));
}

nlohmann::json metrics_json(const eval::LabelMetrics& m) {
  return {{"accuracy", m.accuracy}, {"precision", m.precision}, {"recall", m.recall},
          {"f1", m.f1},             {"log_loss", m.log_loss},   {"count", m.count}};
}

int cmd_labels() {
  core::Config base;
  base.set("data.labels", std::string("model"));
  auto config = build_config(g_labels.common, std::move(base));
  auto opts = read_run_options(config, false);
  auto lopts = read_label_options(config);
  config.check_all_used();
  if (opts.preprocess.labels != "model")
    FEWREC_THROW(kInvalidArgument, "fewrec labels fits the label model: `data.labels` must be \"model\", got \"{}\"",
                 opts.preprocess.labels);
  const auto& mopts = opts.preprocess.label_model;
  core::StderrMonitor monitor(g_labels.common.quiet);
  nlohmann::json info;
  const auto raw = load_raw_data(opts, monitor, &info);
  const auto target = data::LabelTarget::parse(mopts.target);
  const auto table = data::build_pair_table(raw, target);
  const auto signal = baseline_signal(table, lopts.baseline_signal);

  // Held-out labelled pairs (seeded), the rest trains.
  core::Rng rng(lopts.seed);
  std::vector<uint8_t> train(table.size(), 0);
  std::vector<size_t> test;
  int64_t labelled = 0, positives = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    if (!table.labelled[i]) continue;
    ++labelled;
    positives += table.labels[i];
    if (core::uniform01(rng) < lopts.holdout) test.push_back(i);
    else train[i] = 1;
  }
  FEWREC_CHECK(!test.empty(), kInvalidArgument,
               "fewrec labels: no labelled pair was held out ({} labelled pairs, labels.holdout = {})", labelled,
               lopts.holdout);
  const auto held_model = data::LabelModel::fit(table, mopts, train);
  const auto held_p = held_model.predict(table);

  // Baseline: signal >= T; its probability for log-loss is the training
  // positive rate on each side of the threshold.
  int64_t n_hi = 0, pos_hi = 0, n_lo = 0, pos_lo = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    if (!train[i]) continue;
    const bool hi = signal[i] >= lopts.baseline_threshold;
    (hi ? n_hi : n_lo) += 1;
    (hi ? pos_hi : pos_lo) += table.labels[i];
  }
  const double rate_hi = n_hi ? double(pos_hi) / double(n_hi) : 0.5;
  const double rate_lo = n_lo ? double(pos_lo) / double(n_lo) : 0.5;
  std::vector<float> p_model, p_rule, p_cal;
  std::vector<uint8_t> y;
  for (size_t i : test) {
    y.push_back(table.labels[i]);
    p_model.push_back(held_p[i]);
    const bool hi = signal[i] >= lopts.baseline_threshold;
    p_rule.push_back(hi ? 1.0f : 0.0f);
    p_cal.push_back(static_cast<float>(hi ? rate_hi : rate_lo));
  }
  const auto m_model = eval::label_metrics(p_model, y, mopts.threshold);
  auto m_base = eval::label_metrics(p_rule, y, 0.5);
  m_base.log_loss = eval::label_metrics(p_cal, y, 0.5).log_loss;

  // The model every pair is labelled with: fitted on all labelled pairs.
  const auto model = data::LabelModel::fit(table, mopts);
  const auto prob = model.predict(table);
  const auto conf = model.confidence(table);
  int64_t kept = 0, trusted = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    kept += conf[i] >= mopts.threshold;
    trusted += mopts.trust_observed && table.observed[i];
  }

  std::printf("label model: target %s; %zu pairs, %lld labelled (%.1f%% positive)\n", mopts.target.c_str(),
              table.size(), static_cast<long long>(labelled),
              labelled ? 100.0 * double(positives) / double(labelled) : 0.0);
  std::printf("weights (standardised features, fitted on all %lld labelled pairs in %d Newton steps, l2 %g):\n",
              static_cast<long long>(model.train_pairs()), model.iterations(), mopts.l2);
  std::printf("  %-24s %9s %10s %10s\n", "feature", "weight", "mean", "scale");
  for (const auto& f : model.features()) {
    if (f.signal.empty()) std::printf("  %-24s %+9.4f\n", f.name.c_str(), f.weight);
    else std::printf("  %-24s %+9.4f %10.4g %10.4g\n", f.name.c_str(), f.weight, f.mean, f.scale);
  }
  std::printf("held-out: %zu of the labelled pairs (labels.holdout %g, seed %llu); model fitted on the other %lld\n",
              test.size(), lopts.holdout, static_cast<unsigned long long>(lopts.seed),
              static_cast<long long>(held_model.train_pairs()));
  std::printf("  %-28s %9s %9s %9s %9s %9s\n", "", "accuracy", "precision", "recall", "F1", "log-loss");
  auto row = [](const std::string& name, const eval::LabelMetrics& m) {
    std::printf("  %-28s %9.4f %9.4f %9.4f %9.4f %9.4f\n", name.c_str(), m.accuracy, m.precision, m.recall, m.f1,
                m.log_loss);
  };
  row(fmt::format("label model (p >= {:g})", mopts.threshold), m_model);
  row("baseline " + lopts.baseline, m_base);
  std::printf("  (baseline log-loss: its training positive rate on each side of the threshold)\n");
  std::printf("labels: %lld of %zu pairs positive (p >= %g)%s\n", static_cast<long long>(kept), table.size(),
              mopts.threshold,
              mopts.trust_observed ? fmt::format("; {} observed labels override p", trusted).c_str() : "");

  if (!g_labels.save.empty()) {
    model.save(g_labels.save);
    std::printf("saved the label model to %s\n", g_labels.save.c_str());
  }
  if (!g_labels.out.empty()) {
    std::ofstream out(g_labels.out);
    if (!out) FEWREC_THROW(kIo, "cannot write `{}`: {}", g_labels.out, std::strerror(errno));
    out << "user,item,timestamp,label,confidence,probability,observed\n";
    for (size_t i = 0; i < table.size(); ++i)
      out << csv_field(raw.users().id(table.users[i])) << ',' << csv_field(raw.items().id(table.items[i])) << ','
          << table.last_timestamps[i] << ',' << (conf[i] >= mopts.threshold ? 1 : 0) << ',' << conf[i] << ','
          << prob[i] << ',' << (table.observed[i] ? 1 : 0) << '\n';
    out.close();
    if (!out) FEWREC_THROW(kIo, "write failed for `{}`", g_labels.out);
    std::printf("wrote %zu labelled pairs to %s\n", table.size(), g_labels.out.c_str());
  }

  nlohmann::json result{{"data", info},
                        {"target", mopts.target},
                        {"pairs", table.size()},
                        {"labelled_pairs", labelled},
                        {"labelled_positive", positives},
                        {"positive_pairs", kept},
                        {"model", model.to_json()},
                        {"heldout",
                         {{"fraction", lopts.holdout},
                          {"seed", lopts.seed},
                          {"label_model", metrics_json(m_model)},
                          {"baseline", metrics_json(m_base)},
                          {"baseline_rule", lopts.baseline}}},
                        {"config", config.effective()}};
  write_json(g_labels.common.json_out, result);
  return 0;
}

}  // namespace

void probe_label_options(core::Config& config) { read_label_options(config); }

void register_label_commands(CLI::App& app) {
  auto& f = g_labels;
  auto* labels = app.add_subcommand(
      "labels", "fit the label model (data.label_model.*): its weights and held-out label metrics vs a fixed threshold");
  add_common(labels, f.common);
  labels->add_option("-o,--out", f.out, "write every pair with its label and confidence (CSV)");
  labels->add_option("--save", f.save, "write the fitted label model (JSON, named features)");
  set_handler(labels, cmd_labels);
}

}  // namespace fewrec::cli

#include "commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/context.h"
#include "fewrec/eval/evaluator.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "pipeline.h"

namespace fewrec::cli {

namespace {

namespace fs = std::filesystem;

struct Flags {
  CommonFlags common;
  std::string out;
  std::string model_path;
  std::string user;
  std::string items;
  int k = 10;
  bool evaluate_after = false;
  bool markdown = false;
};

Flags g_flags;

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  for (auto part : core::split(text, ',')) {
    auto t = core::trim(part);
    if (!t.empty()) out.emplace_back(t);
  }
  return out;
}
std::map<const CLI::App*, std::function<int()>> g_handlers;

std::string item_label(const data::Catalogue& cat, data::ItemIndex item, size_t width = 60) {
  std::string label = cat.items.id(item);
  if (const auto* col = cat.item_features.find("title");
      col && col->kind == data::FeatureKind::kText && item < static_cast<int32_t>(col->texts.size()) &&
      !col->texts[item].empty()) {
    label += "  " + col->texts[item];
  }
  if (const auto* col = cat.item_features.find("genres");
      col && col->kind == data::FeatureKind::kTags && item + 1 < static_cast<int32_t>(col->offsets.size())) {
    std::vector<std::string> g;
    for (int32_t t : col->tags_of(item)) g.push_back(col->vocab.id(t));
    if (!g.empty()) label += "  [" + core::join(g, "|") + "]";
  }
  if (label.size() > width) label = label.substr(0, width - 3) + "...";
  return label;
}

void print_recommendations(const data::Catalogue& cat,
                           const std::vector<std::pair<data::ItemIndex, float>>& recs) {
  int rank = 1;
  for (const auto& [item, score] : recs) {
    std::printf("  %2d. %-62s %8.4f\n", rank++, item_label(cat, item).c_str(), score);
  }
}

nlohmann::json recs_json(const data::Catalogue& cat,
                         const std::vector<std::pair<data::ItemIndex, float>>& recs) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& [item, score] : recs) {
    nlohmann::json r{{"item", cat.items.id(item)}, {"score", score}};
    if (const auto* col = cat.item_features.find("title");
        col && col->kind == data::FeatureKind::kText && !col->texts[item].empty())
      r["title"] = col->texts[item];
    arr.push_back(r);
  }
  return arr;
}

// ---- fewrec models -------------------------------------------------------

int cmd_models() {
  if (g_flags.markdown) {
    for (const auto* info : models::model_registry().list()) {
      std::printf("#### `%s`\n\n%s\n\n", info->name.c_str(), info->description.c_str());
      if (info->options.empty()) {
        std::printf("No options.\n\n");
        continue;
      }
      std::printf("| option | default | meaning |\n|---|---|---|\n");
      for (const auto& o : info->options)
        std::printf("| `model.%s` | `%s` | %s |\n", o.key.c_str(), md_cell(o.default_value).c_str(),
                    md_cell(o.doc).c_str());
      std::printf("\n");
    }
    return 0;
  }
  for (const auto* info : models::model_registry().list()) {
    std::printf("%-12s %s\n", info->name.c_str(), info->description.c_str());
    for (const auto& o : info->options)
      std::printf("    %-14s default %-8s %s\n", o.key.c_str(), o.default_value.c_str(), o.doc.c_str());
  }
  return 0;
}

// ---- fewrec config -------------------------------------------------------

int cmd_config() {
  // Read every component's options on a config with placeholders so every
  // getter records its key, default and doc.
  core::Config probe;
  probe.set("data.format", std::string("csv"));
  probe.set("data.path", std::string("<path>"));
  read_run_options(probe, true);
  probe_text_options(probe);
  probe_label_options(probe);
#ifdef FEWREC_HAVE_SERVE
  probe_serve_options(probe);
#endif
  probe.erase("data.format");
  const auto& docs = probe.docs();
  if (g_flags.markdown) {
    std::printf("| key | default | meaning |\n|---|---|---|\n");
    for (const auto& [key, d] : docs)
      std::printf("| `%s` | `%s` | %s |\n", key.c_str(), md_cell(d.first).c_str(), md_cell(d.second).c_str());
  } else {
    std::string section;
    for (const auto& [key, d] : docs) {
      std::string sec = key.substr(0, key.find('.'));
      if (sec != section) {
        std::printf("[%s]\n", sec.c_str());
        section = sec;
      }
      std::printf("  %-34s = %-12s # %s\n", key.c_str(), d.first.c_str(), d.second.c_str());
    }
  }
  return 0;
}

// ---- fewrec data stats / split ------------------------------------------

int cmd_data_stats() {
  auto config = build_config(g_flags.common);
  auto opts = read_run_options(config, false);
  config.check_all_used();
  core::StderrMonitor monitor(g_flags.common.quiet);
  nlohmann::json info;
  auto ds = load_data(opts, monitor, &info);
  auto stats = ds.stats();
  stats["source"] = info;
  std::printf("%s\n", stats.dump(2).c_str());
  write_json(g_flags.common.json_out, stats);
  return 0;
}

void write_rows_csv(const fs::path& path, const data::Dataset& ds) {
  std::ofstream out(path);
  if (!out) FEWREC_THROW(kIo, "cannot write `{}`: {}", path.string(), std::strerror(errno));
  out << "user,item,value,timestamp,event,weight\n";
  for (data::UserIndex u = 0; u < ds.num_users(); ++u) {
    auto h = ds.history(u);
    for (size_t i = 0; i < h.size(); ++i) {
      out << csv_field(ds.users().id(u)) << ',' << csv_field(ds.items().id(h.items[i])) << ',' << h.values[i]
          << ',' << h.timestamps[i] << ',' << csv_field(ds.event_types().id(h.events[i])) << ','
          << h.weights[i] << '\n';
    }
  }
  if (!out) FEWREC_THROW(kIo, "write failed for `{}`", path.string());
}

int cmd_data_split() {
  if (g_flags.out.empty()) FEWREC_THROW(kInvalidArgument, "fewrec data split needs --out DIR");
  auto config = build_config(g_flags.common);
  auto opts = read_run_options(config, false);
  config.check_all_used();
  core::StderrMonitor monitor(g_flags.common.quiet);
  auto ds = load_data(opts, monitor);
  auto split = split_data(ds, opts);
  fs::path dir(g_flags.out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) FEWREC_THROW(kIo, "cannot create `{}`: {}", dir.string(), ec.message());
  write_rows_csv(dir / "train.csv", split.train);
  write_rows_csv(dir / "test.csv", split.test);
  if (split.valid.num_interactions() > 0) write_rows_csv(dir / "valid.csv", split.valid);
  if (split.support.num_interactions() > 0) write_rows_csv(dir / "support.csv", split.support);
  auto desc = split.describe();
  write_json((dir / "split.json").string(), desc);
  std::printf("%s\n", desc.dump(2).c_str());
  std::printf("wrote %s/{train,test%s%s}.csv and split.json\n", dir.string().c_str(),
              split.valid.num_interactions() > 0 ? ",valid" : "",
              split.support.num_interactions() > 0 ? ",support" : "");
  return 0;
}

// ---- fewrec train --------------------------------------------------------

nlohmann::json train_meta(const data::Split& split, double seconds) {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return {{"fewrec_version", kVersion},
          {"created", buf},
          {"train_interactions", split.train.num_interactions()},
          {"train_seconds", seconds},
          {"split", split.describe()}};
}

// The tail of train and finetune: the --json record (plus `extra`), after
// evaluating the saved model on the test part with --evaluate.
int finish_training(const models::Model& model, const data::Split& split, const RunOptions& opts,
                    core::Monitor& monitor, double seconds, nlohmann::json extra) {
  nlohmann::json out{{"model", model.spec().to_string()},
                     {"path", g_flags.out},
                     {"train_seconds", seconds},
                     {"summary", model.summary()}};
  if (extra.is_object()) out.update(extra);
  if (g_flags.evaluate_after && split.test.num_interactions() > 0) {
    auto result = eval::evaluate_split(model, split, opts.eval, monitor);
    std::printf("%s", result.table(model.spec().to_string()).c_str());
    out["evaluation"] = result.to_json();
  }
  write_json(g_flags.common.json_out, out);
  return 0;
}

int cmd_train() {
  if (g_flags.out.empty()) FEWREC_THROW(kInvalidArgument, "fewrec train needs --out FILE (the model artifact to write)");
  auto config = build_config(g_flags.common);
  auto opts = read_run_options(config, true);
  config.check_all_used();
  if (opts.models.size() != 1)
    FEWREC_THROW(kInvalidArgument, "fewrec train trains one model; model.name lists {}",
                 opts.models.size());
  core::StderrMonitor monitor(g_flags.common.quiet);
  auto ds = load_data(opts, monitor);
  auto split = split_data(ds, opts);
  double seconds = 0;
  auto model = train_model(opts.models[0], split, opts, monitor, &seconds);
  models::save_model(g_flags.out, *model, ds.catalogue(), config.effective(), train_meta(split, seconds));
  std::printf("saved %s to %s (trained in %s)\n", model->spec().to_string().c_str(),
              g_flags.out.c_str(), core::format_duration(seconds).c_str());
  return finish_training(*model, split, opts, monitor, seconds, {});
}

// ---- fewrec finetune -----------------------------------------------------

int cmd_finetune() {
  if (g_flags.model_path.empty())
    FEWREC_THROW(kInvalidArgument, "fewrec finetune needs --from FILE (the pretrained model artifact)");
  if (g_flags.out.empty()) FEWREC_THROW(kInvalidArgument, "fewrec finetune needs --out FILE (the model artifact to write)");
  auto loaded = models::load_model(g_flags.model_path);
  if (!loaded.model->supports_finetune())
    FEWREC_THROW(kInvalidArgument, "model `{}` ({}) cannot be fine-tuned; fewrec finetune supports: {}",
                 g_flags.model_path, loaded.spec.name, [] {
                   std::vector<std::string> names;
                   for (const auto* info : models::model_registry().list())
                     if (models::model_registry().create(models::ModelSpec::parse(info->name))->supports_finetune())
                       names.push_back(info->name);
                   return core::join(names, ", ");
                 }());
  // The data (data.*, split.*) is the new one; the model is the pretrained
  // one's spec unless model.name says otherwise (the same model, other options).
  auto config = build_config(g_flags.common);
  if (!config.has("model.name")) {
    config.set("model.name", loaded.spec.name);
    for (const auto& [key, value] : loaded.spec.options) {
      const std::string k = "model." + loaded.spec.name + "." + key;
      if (!config.has(k)) config.set(k, value);
    }
  }
  auto opts = read_run_options(config, true);
  config.check_all_used();
  if (opts.models.size() != 1 || opts.models[0].name != loaded.spec.name)
    FEWREC_THROW(kInvalidArgument, "fewrec finetune: model.name must be the pretrained model's `{}`, got `{}`",
                 loaded.spec.name, config.get_string("model.name", ""));
  core::StderrMonitor monitor(g_flags.common.quiet);
  auto ds = load_data(opts, monitor);
  auto split = split_data(ds, opts);
  auto ft = opts.finetune;
  ft.model = loaded.model.get();
  ft.item_ids = &loaded.item_ids;
  opts.train.finetune = &ft;
  double seconds = 0;
  auto model = train_model(opts.models[0], split, opts, monitor, &seconds);
  auto meta = train_meta(split, seconds);
  meta["finetuned_from"] = g_flags.model_path;
  models::save_model(g_flags.out, *model, ds.catalogue(), config.effective(), meta);
  std::printf("fine-tuned %s from %s (%s mode) and saved it to %s (in %s)\n", model->spec().to_string().c_str(),
              g_flags.model_path.c_str(), ft.mode.c_str(), g_flags.out.c_str(),
              core::format_duration(seconds).c_str());
  return finish_training(*model, split, opts, monitor, seconds, {{"from", g_flags.model_path}});
}

// ---- fewrec evaluate -----------------------------------------------------

int cmd_evaluate() {
  core::Config base;
  models::LoadedModel loaded;
  if (!g_flags.model_path.empty()) {
    loaded = models::load_model(g_flags.model_path);
    base = config_from_json(loaded.config);
  }
  auto config = build_config(g_flags.common, std::move(base));
  auto opts = read_run_options(config, true);
  config.check_all_used();
  core::StderrMonitor monitor(g_flags.common.quiet);
  nlohmann::json info;
  auto ds = load_data(opts, monitor, &info);
  auto split = split_data(ds, opts);
  if (split.test.num_interactions() == 0)
    FEWREC_THROW(kInvalidArgument, "the split has no test interactions (split.kind = none?)");

  std::vector<std::pair<std::string, eval::EvalResult>> results;
  nlohmann::json models_json = nlohmann::json::array();
  if (loaded.model) {
    if (loaded.item_ids != ds.items().ids())
      FEWREC_THROW(kInvalidArgument,
                   "model `{}` was trained on a different item catalogue ({} items) than the data "
                   "loaded now ({} items); evaluate with the data and split it was trained on",
                   g_flags.model_path, loaded.item_ids.size(), ds.num_items());
    auto r = eval::evaluate_split(*loaded.model, split, opts.eval, monitor);
    results.emplace_back(loaded.spec.to_string(), std::move(r));
  } else {
    for (const auto& spec : opts.models) {
      double seconds = 0;
      auto model = train_model(spec, split, opts, monitor, &seconds);
      auto r = eval::evaluate_split(*model, split, opts.eval, monitor);
      r.protocol["train_seconds"] = seconds;
      results.emplace_back(spec.to_string(), std::move(r));
    }
  }
  for (const auto& [name, r] : results) std::printf("%s\n", r.table(name).c_str());
  if (results.size() > 1) {
    std::vector<std::string> cols;
    for (int k : opts.eval.ks)
      for (const auto& m : opts.eval.metrics) cols.push_back(fmt::format("{}@{}", m, k));
    std::printf("%s\n", eval::comparison_table(results, cols).c_str());
  }
  nlohmann::json out;
  if (results.size() == 1) {
    out = results[0].second.to_json();
    out["model"] = results[0].first;
  } else {
    out["protocol"] = results[0].second.to_json()["protocol"];
    out["results"] = nlohmann::json::array();
    for (const auto& [name, r] : results) {
      auto j = r.to_json();
      j["model"] = name;
      out["results"].push_back(j);
    }
  }
  out["data"] = info;
  out["config"] = config.effective();
  write_json(g_flags.common.json_out, out);
  return 0;
}

// ---- fewrec recommend ----------------------------------------------------

int cmd_recommend() {
  if (g_flags.model_path.empty()) FEWREC_THROW(kInvalidArgument, "fewrec recommend needs --model FILE");
  if (g_flags.user.empty() == g_flags.items.empty())
    FEWREC_THROW(kInvalidArgument,
                 "fewrec recommend needs exactly one of --user ID (a known user) or --items ID,ID,... "
                 "(a new user's history)");
  if (g_flags.k <= 0) FEWREC_THROW(kInvalidArgument, "-k must be positive, got {}", g_flags.k);
  auto loaded = models::load_model(g_flags.model_path);
  auto config = build_config(g_flags.common, config_from_json(loaded.config));
  auto opts = read_run_options(config, true);
  config.check_all_used();
  core::StderrMonitor monitor(true);
  // The data gives the known user's history and the item titles.
  auto ds = load_data(opts, monitor);
  if (loaded.item_ids != ds.items().ids())
    FEWREC_THROW(kInvalidArgument, "model `{}` was trained on a different item catalogue than the data in its config",
                 g_flags.model_path);
  auto split = split_data(ds, opts);
  data::UserContext ctx;
  nlohmann::json out;
  if (!g_flags.user.empty()) {
    int32_t u = ds.users().find(g_flags.user);
    if (u < 0) FEWREC_THROW(kNotFound, "unknown user `{}` ({} users; for a new user pass --items)",
                            g_flags.user, ds.num_users());
    ctx = data::context_from_dataset(split.train, u, true);
    out["user"] = g_flags.user;
  } else {
    auto items = resolve_items(ds.items(), split_list(g_flags.items));
    for (auto it : items) ctx.history.push_back(data::Event{it, 0, 1.0f, 0, 1.0f});
    out["history"] = split_list(g_flags.items);
  }
  auto recs = models::recommend(*loaded.model, ctx, g_flags.k, true);
  std::printf("history (%zu items):\n", ctx.history.size());
  size_t shown = 0;
  for (size_t i = ctx.history.size() > 10 ? ctx.history.size() - 10 : 0; i < ctx.history.size(); ++i, ++shown)
    std::printf("   - %s\n", item_label(ds.catalogue(), ctx.history[i].item).c_str());
  std::printf("top %d by %s:\n", g_flags.k, loaded.spec.to_string().c_str());
  print_recommendations(ds.catalogue(), recs);
  out["model"] = loaded.spec.to_string();
  out["recommendations"] = recs_json(ds.catalogue(), recs);
  write_json(g_flags.common.json_out, out);
  return 0;
}

// ---- fewrec demo ---------------------------------------------------------

int cmd_demo() {
  core::Config base;
  base.set("data.format", std::string("synthetic"));
  base.set("model.name", std::vector<std::string>{"popularity", "itemknn", "als", "bpr", "hybrid", "meta_ranker"});
  base.set("model.meta_ranker.tasks", int64_t{300});  // fewer simulated tasks: a quicker demo
  base.set("eval.k", std::vector<std::string>{"10", "20"});
  auto config = build_config(g_flags.common, std::move(base));
  auto opts = read_run_options(config, true);
  config.check_all_used();
  core::StderrMonitor monitor(g_flags.common.quiet);
  auto t0 = std::chrono::steady_clock::now();

  std::printf("== fewrec demo: built-in synthetic data ==\n");
  nlohmann::json info;
  auto ds = load_data(opts, monitor, &info);
  std::printf("%d users, %d items, %lld interactions (planted topics, titles, user attributes)\n\n",
              ds.num_users(), ds.num_items(), static_cast<long long>(ds.num_interactions()));

  // 1. Warm users: the configured split, every model, full ranking.
  auto split = split_data(ds, opts);
  std::vector<std::pair<std::string, eval::EvalResult>> results;
  std::vector<std::unique_ptr<models::Model>> trained;
  for (const auto& spec : opts.models) {
    auto model = train_model(spec, split, opts, monitor);
    results.emplace_back(spec.to_string(), eval::evaluate_split(*model, split, opts.eval, monitor));
    trained.push_back(std::move(model));
  }
  std::vector<std::string> cols;
  for (int k : opts.eval.ks)
    for (const auto& m : {"ndcg", "hr", "recall", "precision"}) cols.push_back(fmt::format("{}@{}", m, k));
  std::printf("-- warm users --\n");
  std::printf("%s\n", eval::comparison_table(results, cols).c_str());

  // 2. Cold users, N-shot: held-out users reveal their first N interactions.
  data::SplitOptions cold = opts.split;
  cold.kind = data::SplitKind::kColdUsers;
  std::printf("-- cold users: N-shot curve (20%% of users held out; support = first N events; NDCG@10, full ranking) --\n");
  std::printf("  %-12s", "model");
  std::vector<int> shots;
  for (auto n : opts.shots) if (n >= 0 && n <= 10) shots.push_back(static_cast<int>(n));
  for (int n : shots) std::printf("  N=%-5d", n);
  std::printf("\n");
  std::vector<std::vector<double>> curve(opts.models.size());
  for (size_t n_i = 0; n_i < shots.size(); ++n_i) {
    cold.min_history = shots.back() + 1;
    auto s = data::make_cold_user_split(ds, cold, shots[n_i]);
    for (size_t m = 0; m < opts.models.size(); ++m) {
      core::NullMonitor quiet;
      auto model = train_model(opts.models[m], s, opts, quiet);
      auto r = eval::evaluate_split(*model, s, opts.eval, quiet);
      curve[m].push_back(r.metrics.count("ndcg@10") ? r.metrics.at("ndcg@10") : NAN);
    }
  }
  for (size_t m = 0; m < opts.models.size(); ++m) {
    std::printf("  %-12s", opts.models[m].name.c_str());
    for (double v : curve[m]) std::printf("  %-7.4f", v);
    std::printf("\n");
  }

  // 3. A brand-new user with three interactions, all from one topic.
  std::printf("\n-- a new user with 3 interactions --\n");
  const auto& cat = ds.catalogue();
  const auto* topic = cat.item_features.find("topic");
  auto counts = split.train.item_counts();
  std::vector<data::ItemIndex> picks;
  if (topic && topic->kind == data::FeatureKind::kCategorical) {
    int32_t want = topic->codes.empty() ? -1 : topic->codes[0];
    // The three most popular items of the first item's topic except the very top ones.
    std::vector<data::ItemIndex> same;
    for (data::ItemIndex i = 0; i < ds.num_items(); ++i)
      if (topic->codes[i] == want) same.push_back(i);
    std::sort(same.begin(), same.end(), [&](auto a, auto b) { return counts[a] > counts[b]; });
    for (size_t i = 2; i < same.size() && picks.size() < 3; i += 2) picks.push_back(same[i]);
  }
  for (data::ItemIndex i = 0; picks.size() < 3 && i < ds.num_items(); ++i) picks.push_back(i);
  data::UserContext ctx;  // in time order; timestamps unknown (0)
  for (size_t i = 0; i < picks.size(); ++i) ctx.history.push_back(data::Event{picks[i], 0, 1.0f, 0, 1.0f});
  std::printf("history:\n");
  for (auto it : picks) std::printf("   - %s\n", item_label(cat, it).c_str());
  for (size_t m = 0; m < trained.size(); ++m) {
    std::printf("top 10 by %s:\n", trained[m]->spec().to_string().c_str());
    print_recommendations(cat, models::recommend(*trained[m], ctx, 10, true));
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\ndemo finished in %s. Next: README.md (`fewrec evaluate` on MovieLens).\n",
              core::format_duration(secs).c_str());
  nlohmann::json out{{"data", info}, {"results", nlohmann::json::array()}};
  for (const auto& [name, r] : results) {
    auto j = r.to_json();
    j["model"] = name;
    out["results"].push_back(j);
  }
  write_json(g_flags.common.json_out, out);
  return 0;
}

// ---- fewrec fewshot ------------------------------------------------------

struct CurveStats {
  std::vector<std::vector<double>> runs;  // per seed: values per point
};

nlohmann::json mean_std(const std::vector<std::vector<double>>& runs) {
  nlohmann::json mean = nlohmann::json::array(), sd = nlohmann::json::array();
  if (runs.empty()) return {{"mean", mean}, {"std", sd}};
  for (size_t p = 0; p < runs[0].size(); ++p) {
    double m = 0;
    for (const auto& r : runs) m += r[p];
    m /= static_cast<double>(runs.size());
    double v = 0;
    for (const auto& r : runs) v += (r[p] - m) * (r[p] - m);
    v = runs.size() > 1 ? v / static_cast<double>(runs.size() - 1) : 0.0;
    mean.push_back(m);
    sd.push_back(std::sqrt(v));
  }
  return {{"mean", mean}, {"std", sd}};
}

std::string fmt_cell(const nlohmann::json& ms, size_t p, bool with_std) {
  double m = ms["mean"][p];
  if (!with_std) return fmt::format("{:.4f}", m);
  return fmt::format("{:.4f}±{:.3f}", m, ms["std"][p].get<double>());
}

int cmd_fewshot() {
  core::Config base;
  base.set("model.name", std::vector<std::string>{"popularity", "itemknn", "als", "bpr", "hybrid"});
  auto config = build_config(g_flags.common, std::move(base));
  auto opts = read_run_options(config, true);
  bool do_users = opts.fewshot_cold_users;
  bool do_items = opts.fewshot_cold_items;
  auto seeds = opts.fewshot_seeds;
  config.check_all_used();
  if (seeds.empty()) seeds.push_back(static_cast<int64_t>(opts.split.seed));
  std::vector<int> shots;
  for (auto n : opts.shots) {
    if (n < 0) FEWREC_THROW(kInvalidArgument, "eval.shots must be >= 0, got {}", n);
    shots.push_back(static_cast<int>(n));
  }
  if (shots.empty()) FEWREC_THROW(kInvalidArgument, "eval.shots is empty");
  std::sort(shots.begin(), shots.end());
  shots.erase(std::unique(shots.begin(), shots.end()), shots.end());
  core::StderrMonitor monitor(g_flags.common.quiet);
  nlohmann::json info;
  auto ds = load_data(opts, monitor, &info);
  eval::EvalOptions eopts = opts.eval;
  for (int k : {10, 20})
    if (std::find(eopts.ks.begin(), eopts.ks.end(), k) == eopts.ks.end()) eopts.ks.push_back(k);
  std::sort(eopts.ks.begin(), eopts.ks.end());
  const std::vector<std::string> metrics = {"ndcg@10", "hr@10", "recall@20"};
  const bool with_std = seeds.size() > 1;
  nlohmann::json out{{"data", info}, {"seeds", seeds}, {"models", nlohmann::json::array()}};
  for (const auto& m : opts.models) out["models"].push_back(m.to_string());

  if (do_users) {
    data::SplitOptions cold = opts.split;
    cold.kind = data::SplitKind::kColdUsers;
    if (cold.min_history == 0) cold.min_history = shots.back() + 1;
    if (opts.fewshot_fixed_query) cold.query_from = shots.back();
    // model -> metric -> runs
    std::map<std::string, std::map<std::string, std::vector<std::vector<double>>>> runs;
    nlohmann::json protocol;
    for (int64_t seed : seeds) {
      cold.seed = static_cast<uint64_t>(seed);
      auto base_split = data::make_cold_user_split(ds, cold, shots.front());
      for (const auto& spec : opts.models) {
        auto model = train_model(spec, base_split, opts, monitor);
        std::map<std::string, std::vector<double>> row;
        for (int n : shots) {
          auto s = data::make_cold_user_split(ds, cold, n);
          auto r = eval::evaluate_split(*model, s, eopts, monitor);
          for (const auto& m : metrics) row[m].push_back(r.metrics.count(m) ? r.metrics.at(m) : NAN);
          if (protocol.is_null() || n == shots.front()) {
            protocol = r.protocol;
            protocol["split"]["shots"] = shots;
          }
        }
        for (const auto& m : metrics) runs[spec.to_string()][m].push_back(row[m]);
      }
    }
    nlohmann::json cu{{"protocol", protocol}, {"shots", shots}, {"models", nlohmann::json::object()}};
    const std::string query =
        cold.query_from > 0
            ? fmt::format("query = their interactions from number {} on (the same for every N; the ones between the "
                          "support and the query hidden)",
                          cold.query_from + 1)
            : std::string("query = the rest");
    std::printf("== cold users, N-shot: %.0f%% of users with >= %d interactions held out; support = their first N "
                "interactions by time, %s; full ranking excluding the support%s; %zu seed%s ==\n",
                cold.cold_user_fraction * 100, cold.min_history, query.c_str(),
                cold.query_from > 0 ? " and the hidden items" : "", seeds.size(), seeds.size() > 1 ? "s" : "");
    for (const auto& m : metrics) {
      std::printf("%s\n  %-28s", m.c_str(), "model");
      for (int n : shots) std::printf(" %*s", with_std ? 14 : 8, fmt::format("N={}", n).c_str());
      std::printf("\n");
      for (const auto& spec : opts.models) {
        auto ms = mean_std(runs[spec.to_string()][m]);
        cu["models"][spec.to_string()][m] = ms;
        std::printf("  %-28s", spec.to_string().c_str());
        for (size_t p = 0; p < shots.size(); ++p)
          std::printf(" %*s", with_std ? 14 : 8, fmt_cell(ms, p, with_std).c_str());
        std::printf("\n");
      }
    }
    out["cold_users"] = cu;
  }

  if (do_items) {
    data::SplitOptions cold = opts.split;
    cold.kind = data::SplitKind::kColdItems;
    eval::EvalOptions iopts = eopts;
    iopts.candidates = "cold_items";
    iopts.auc = true;
    std::vector<std::string> imetrics = {"auc", "ndcg@10", "hr@10", "recall@20"};
    std::map<std::string, std::map<std::string, std::vector<std::vector<double>>>> runs;
    nlohmann::json protocol;
    // The newest items make the same split for every seed: there the seeds
    // vary training instead (seed s trains with train.seed = s), so that the
    // spread says how far training alone moves the numbers.
    const bool seeds_train = cold.cold_items_newest && seeds.size() > 1;
    RunOptions run = opts;
    for (int64_t seed : seeds) {
      cold.seed = static_cast<uint64_t>(seed);
      if (seeds_train) run.train.seed = static_cast<uint64_t>(seed);
      auto split = data::make_split(ds, cold);
      for (const auto& spec : opts.models) {
        auto model = train_model(spec, split, run, monitor);
        auto r = eval::evaluate_split(*model, split, iopts, monitor);
        protocol = r.protocol;
        for (const auto& m : imetrics)
          runs[spec.to_string()][m].push_back({r.metrics.count(m) ? r.metrics.at(m) : NAN});
      }
    }
    nlohmann::json ci{{"protocol", protocol}, {"models", nlohmann::json::object()}};
    ci["seeds_vary"] = seeds_train ? "train.seed (the split is the same for every seed)" : "the split";
    std::printf("\n== cold items: %.0f%% of items (%s) held out of training; each user's held-out items ranked among "
                "the held-out items from content only; %zu seed%s%s ==\n",
                cold.cold_item_fraction * 100, cold.cold_items_newest ? "newest" : "random", seeds.size(),
                seeds.size() > 1 ? "s" : "",
                seeds_train ? " (the same split: seed s trains with train.seed = s)" : "");
    std::printf("  %-28s", "model");
    for (const auto& m : imetrics) std::printf(" %*s", with_std ? 14 : 10, m.c_str());
    std::printf("\n");
    for (const auto& spec : opts.models) {
      std::printf("  %-28s", spec.to_string().c_str());
      for (const auto& m : imetrics) {
        auto ms = mean_std(runs[spec.to_string()][m]);
        ci["models"][spec.to_string()][m] = ms;
        std::printf(" %*s", with_std ? 14 : 10, fmt_cell(ms, 0, with_std).c_str());
      }
      std::printf("\n");
    }
    out["cold_items"] = ci;
  }
  out["peak_rss_bytes"] = core::peak_rss_bytes();
  std::printf("\npeak RSS %.1f MB\n", static_cast<double>(core::peak_rss_bytes()) / 1e6);
  out["config"] = config.effective();
  write_json(g_flags.common.json_out, out);
  return 0;
}

}  // namespace

void add_common(CLI::App* cmd, CommonFlags& f, bool with_json) {
  cmd->add_option("-c,--config", f.config_files, "TOML config file(s), applied in order");
  cmd->add_option("-s,--set", f.sets, "override a config key: --set section.key=value (repeatable)")
      ->allow_extra_args(false);
  if (with_json) cmd->add_option("--json", f.json_out, "also write the result as JSON to this file");
  cmd->add_flag("-q,--quiet", f.quiet, "no progress output on stderr");
}

core::Config build_config(const CommonFlags& f, core::Config base) {
  core::Config config = std::move(base);
  for (const auto& file : f.config_files) config.merge(core::Config::from_toml_file(file));
  for (const auto& s : f.sets) config.set(s);
  return config;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  fs::path p(path);
  if (p.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
  }
  std::ofstream out(p);
  if (!out) FEWREC_THROW(kIo, "cannot write `{}`: {}", path, std::strerror(errno));
  out << j.dump(2) << "\n";
  out.close();
  if (!out) FEWREC_THROW(kIo, "cannot write `{}`: {}", path, std::strerror(errno));
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// Markdown table cells: a literal '|' would end the cell.
std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

void set_handler(const CLI::App* cmd, std::function<int()> handler) { g_handlers[cmd] = std::move(handler); }

void register_commands(CLI::App& app) {
  auto& f = g_flags;
  auto* models_cmd = app.add_subcommand("models", "list the registered models and their options");
  g_handlers[models_cmd] = cmd_models;
  models_cmd->add_flag("--markdown", f.markdown, "print Markdown tables");

  auto* config_cmd = app.add_subcommand("config", "list every config key with its default and meaning");
  config_cmd->add_flag("--markdown", f.markdown, "print a Markdown table");
  g_handlers[config_cmd] = cmd_config;

  auto* data_cmd = app.add_subcommand("data", "inspect and split datasets");
  data_cmd->require_subcommand(1);
  auto* stats = data_cmd->add_subcommand("stats", "load the configured data and print statistics");
  add_common(stats, f.common);
  g_handlers[stats] = cmd_data_stats;
  auto* split = data_cmd->add_subcommand("split", "split the configured data and write CSV files");
  add_common(split, f.common, false);
  split->add_option("-o,--out", f.out, "output directory")->required();
  g_handlers[split] = cmd_data_split;

  auto* train = app.add_subcommand("train", "train a model on the train part of the split and save it");
  add_common(train, f.common);
  train->add_option("-o,--out", f.out, "model artifact to write (e.g. model.fwr)")->required();
  train->add_flag("--evaluate", f.evaluate_after, "evaluate on the test part afterwards");
  g_handlers[train] = cmd_train;

  auto* finetune = app.add_subcommand(
      "finetune",
      "fine-tune a trained model on new data (a new item set or domain): start from its weights, train the "
      "finetune.mode parameters at a small rate, save the result");
  add_common(finetune, f.common);
  finetune->add_option("--from", f.model_path, "the pretrained model artifact")->required();
  finetune->add_option("-o,--out", f.out, "model artifact to write")->required();
  finetune->add_flag("--evaluate", f.evaluate_after, "evaluate on the test part afterwards");
  g_handlers[finetune] = cmd_finetune;

  auto* evaluate = app.add_subcommand(
      "evaluate", "train (or load with --model) and evaluate on the test part of the split");
  add_common(evaluate, f.common);
  evaluate->add_option("-m,--model", f.model_path, "evaluate a saved model (its data/split config is reused)");
  g_handlers[evaluate] = cmd_evaluate;

  auto* recommend = app.add_subcommand("recommend", "top-k items for a known user or a new user's history");
  add_common(recommend, f.common);
  recommend->add_option("-m,--model", f.model_path, "model artifact")->required();
  recommend->add_option("-u,--user", f.user, "external id of a known user");
  recommend->add_option("-i,--items", f.items, "comma-separated item ids: a new user's history");
  recommend->add_option("-k", f.k, "number of recommendations")->capture_default_str();
  g_handlers[recommend] = cmd_recommend;

  auto* fewshot = app.add_subcommand(
      "fewshot", "cold-user N-shot curves and the cold-item protocol for every model in model.name");
  add_common(fewshot, f.common);
  g_handlers[fewshot] = cmd_fewshot;

  auto* demo = app.add_subcommand("demo", "end-to-end run on the built-in synthetic data");
  add_common(demo, f.common);
  g_handlers[demo] = cmd_demo;

  register_label_commands(app);
  register_text_commands(app);
#ifdef FEWREC_HAVE_SERVE
  register_serve_commands(app);
#endif
}

int run_selected(CLI::App& app) {
  // The deepest parsed subcommand with a handler.
  const CLI::App* cur = &app;
  std::function<int()> handler;
  while (true) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    if (auto it = g_handlers.find(cur); it != g_handlers.end()) handler = it->second;
  }
  if (!handler) FEWREC_THROW(kInvalidArgument, "no command given; see fewrec --help");
  return handler();
}

}  // namespace fewrec::cli

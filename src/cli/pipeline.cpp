#include "pipeline.h"

#include <chrono>
#include <cmath>
#include <set>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/models/registry.h"

namespace fewrec::cli {

namespace {

const std::vector<std::string>& data_formats() {
  static const std::vector<std::string> formats = {
      "synthetic", "movielens-100k", "movielens-1m", "movielens-latest", "csv", "tsv", "jsonl"};
  return formats;
}

std::vector<models::ModelSpec> model_specs_from_config(core::Config& config) {
  std::vector<std::string> names = config.get_list(
      "model.name", {"itemknn"},
      "model to train (see `fewrec models`); a comma-separated list compares several");
  if (names.empty()) FEWREC_THROW(kInvalidArgument, "config key `model.name` is empty");
  auto options = config.section("model");
  options.erase("name");
  std::set<std::string> name_set(names.begin(), names.end());
  std::vector<models::ModelSpec> specs;
  for (const auto& name : names) {
    models::ModelSpec spec;
    spec.name = std::string(core::trim(name));
    models::model_registry().get(spec.name);  // unknown name -> error listing the known ones
    specs.push_back(std::move(spec));
  }
  for (const auto& [key, value] : options) {
    auto dot = key.find('.');
    if (dot != std::string::npos) {
      // model.<name>.<option>
      std::string owner = key.substr(0, dot);
      if (!name_set.count(owner))
        FEWREC_THROW(kInvalidArgument,
                     "config key `model.{}`: `{}` is not one of the models in model.name ({})", key,
                     owner, core::join(names, ", "));
      for (auto& spec : specs)
        if (spec.name == owner) spec.options[key.substr(dot + 1)] = value;
    } else {
      for (auto& spec : specs) spec.options[key] = value;
    }
  }
  // Validate options now (unknown option -> error listing known ones).
  for (const auto& spec : specs) models::model_registry().create(spec);
  return specs;
}

}  // namespace

RunOptions read_run_options(core::Config& config, bool need_model) {
  RunOptions o;
  o.data_format = config.get_string(
      "data.format", "synthetic",
      "synthetic | movielens-100k | movielens-1m | movielens-latest | csv | tsv | jsonl");
  bool known = false;
  for (const auto& f : data_formats()) known = known || f == o.data_format;
  if (!known)
    FEWREC_THROW(kInvalidArgument, "config key `data.format`: unknown format `{}`; known: {}",
                 o.data_format, core::join(data_formats(), ", "));
  o.synthetic = data::SyntheticOptions::from_config(config);
  if (o.data_format != "synthetic") {
    o.read = data::ReadOptions::from_config(config);
    // Re-read so the documented default is the CLI's (synthetic), not the reader's.
    config.get_string("data.format", "synthetic",
                      "synthetic | movielens-100k | movielens-1m | movielens-latest | csv | tsv | jsonl");
  }
  o.preprocess = data::PreprocessOptions::from_config(config);

  std::string kind = config.get_string(
      "split.kind", "random",
      "random | random_user | temporal | leave_one_out | cold_users | cold_items | none");
  if (kind == "none") {
    o.split_none = true;
    config.erase("split.kind");
    o.split = data::SplitOptions::from_config(config);  // mark the other split keys as read
    config.set("split.kind", std::string("none"));
    config.get_string("split.kind", "random");
  } else {
    o.split = data::SplitOptions::from_config(config);
  }
  o.train.threads = static_cast<int>(config.get_int("train.threads", 0, "worker threads (0 = all cores)"));
  o.train.seed = static_cast<uint64_t>(config.get_int("train.seed", 42, "training seed"));
  o.eval = eval::EvalOptions::from_config(config);
  o.shots = config.get_int_list("eval.shots", {0, 1, 3, 5, 10, 20},
                                "support-set sizes N of the cold-user N-shot curve (fewrec fewshot / demo)");
  o.fewshot_cold_users = config.get_bool("fewshot.cold_users", true, "fewrec fewshot: run the cold-user N-shot protocol");
  o.fewshot_cold_items = config.get_bool("fewshot.cold_items", true, "fewrec fewshot: run the cold-item protocol");
  o.fewshot_seeds = config.get_int_list(
      "fewshot.seeds", {},
      "fewrec fewshot: split seeds to average over (default: split.seed); mean and spread reported. With "
      "split.cold_items=newest the cold-item split is the same for every seed, so there seed s trains with "
      "train.seed = s instead");
  const std::string query = config.get_string(
      "fewshot.query", "rest",
      "fewrec fewshot: the cold users' query: rest (everything after the N support interactions, so it changes with "
      "N) | fixed (everything after the largest N of eval.shots, the same for every N; the interactions between "
      "the support and the query are hidden: neither revealed nor scored, and excluded from the ranking)");
  FEWREC_CHECK(query == "rest" || query == "fixed", kInvalidArgument,
               "config key `fewshot.query`: expected rest or fixed, got `{}`", query);
  o.fewshot_fixed_query = query == "fixed";
  auto& ft = o.finetune;
  ft.mode = config.get_string("finetune.mode", ft.mode,
                              "fewrec finetune: which parameters move: full (all), head (the towers' MLP layers and "
                              "the bias head; embeddings frozen), bias (every bias), lowrank (a low-rank adapter on "
                              "each MLP layer, merged into it at the end; the rest frozen)");
  if (ft.mode != "full" && ft.mode != "head" && ft.mode != "bias" && ft.mode != "lowrank")
    FEWREC_THROW(kInvalidArgument, "config key `finetune.mode`: expected full, head, bias or lowrank, got `{}`", ft.mode);
  ft.lr = config.get_double("finetune.lr", ft.lr, "fewrec finetune: learning rate (after the warm-up)");
  ft.epochs = config.get_int("finetune.epochs", ft.epochs, "fewrec finetune: passes over the new data at most");
  ft.warmup_steps = config.get_int("finetune.warmup_steps", ft.warmup_steps,
                                   "fewrec finetune: steps of linear learning-rate warm-up from 0");
  ft.l2 = config.get_double("finetune.l2", ft.l2,
                            "fewrec finetune: L2 pull towards the pretrained weights (lambda * sum of squared "
                            "differences over the trained parameters)");
  ft.rank = config.get_int("finetune.rank", ft.rank, "fewrec finetune: finetune.mode=lowrank: adapter rank");
  ft.patience = config.get_int("finetune.patience", ft.patience,
                               "fewrec finetune: with a validation part (split.valid_fraction > 0): epochs "
                               "without a better validation recall@20 before stopping; the best epoch is kept");
  if (!(ft.lr > 0) || !std::isfinite(ft.lr))
    FEWREC_THROW(kInvalidArgument, "config key `finetune.lr`: expected a positive number, got {}", ft.lr);
  if (ft.epochs < 1) FEWREC_THROW(kInvalidArgument, "config key `finetune.epochs`: expected at least 1, got {}", ft.epochs);
  if (ft.warmup_steps < 0)
    FEWREC_THROW(kInvalidArgument, "config key `finetune.warmup_steps`: expected 0 or more, got {}", ft.warmup_steps);
  if (!(ft.l2 >= 0)) FEWREC_THROW(kInvalidArgument, "config key `finetune.l2`: expected 0 or more, got {}", ft.l2);
  if (ft.rank < 1) FEWREC_THROW(kInvalidArgument, "config key `finetune.rank`: expected at least 1, got {}", ft.rank);
  if (ft.patience < 1)
    FEWREC_THROW(kInvalidArgument, "config key `finetune.patience`: expected at least 1, got {}", ft.patience);
  if (need_model) o.models = model_specs_from_config(config);
  return o;
}

data::Dataset load_raw_data(const RunOptions& options, core::Monitor& monitor, nlohmann::json* info) {
  data::Dataset ds;
  nlohmann::json src;
  src["format"] = options.data_format;
  if (options.data_format == "synthetic") {
    const auto& s = options.synthetic;
    monitor.info(fmt::format("generating synthetic data: {} users, {} items, {} topics (seed {})",
                             s.num_users, s.num_items, s.num_topics, s.seed));
    ds = data::make_synthetic(s);
    src["users"] = s.num_users;
    src["items"] = s.num_items;
    src["seed"] = s.seed;
  } else {
    data::ReadReport report;
    ds = data::read_dataset(options.read, &report, &monitor);
    src["path"] = options.read.path.string();
    src["read"] = report.to_json();
    if (report.bad_lines > 0) {
      monitor.info(fmt::format("skipped {} bad lines (skip_bad_lines); first: {}", report.bad_lines,
                               report.first_errors.empty() ? "" : report.first_errors.front()));
    }
  }
  src["raw_interactions"] = ds.num_interactions();
  if (info) *info = src;
  return ds;
}

data::Dataset load_data(const RunOptions& options, core::Monitor& monitor, nlohmann::json* info) {
  nlohmann::json src;
  data::Dataset ds = load_raw_data(options, monitor, &src);
  const bool label_model = options.preprocess.labels == "model";
  if (label_model) monitor.info(fmt::format("fitting the label model (target {})", options.preprocess.label_model.target));
  data::LabelReport labels;
  ds = data::preprocess(ds, options.preprocess, &labels);
  src["interactions"] = ds.num_interactions();
  if (options.preprocess.has_threshold) src["positive_threshold"] = options.preprocess.positive_threshold;
  if (label_model) {
    src["labels"] = {{"target", options.preprocess.label_model.target},
                     {"pairs", labels.pairs},
                     {"labelled_pairs", labels.labelled},
                     {"positive_pairs", labels.kept}};
    monitor.info(fmt::format("label model: {} of {} pairs positive ({} labelled by the target)", labels.kept,
                             labels.pairs, labels.labelled));
  }
  if (ds.num_interactions() == 0)
    FEWREC_THROW(kInvalidArgument, "no interactions left after preprocessing (check data.positive_threshold, "
                 "data.labels and the k-core settings)");
  if (info) *info = src;
  return ds;
}

data::Split split_data(const data::Dataset& ds, const RunOptions& options) {
  if (options.split_none) {
    data::Split s;
    s.train = ds;
    s.valid = ds.filter([](const data::Interaction&) { return false; });
    s.test = s.valid;
    s.support = s.valid;
    s.options = options.split;
    return s;
  }
  return data::make_split(ds, options.split);
}

std::unique_ptr<models::Model> train_model(const models::ModelSpec& spec, const data::Split& split,
                                           const RunOptions& options, core::Monitor& monitor,
                                           double* seconds) {
  auto model = models::model_registry().create(spec);
  models::TrainOptions topts = options.train;
  if (split.valid.num_interactions() > 0) topts.valid = &split.valid;
  monitor.info(fmt::format("training {} on {} interactions ({} users, {} items)", spec.to_string(),
                           split.train.num_interactions(), split.train.num_active_users(),
                           split.train.num_active_items()));
  auto t0 = std::chrono::steady_clock::now();
  model->fit(split.train, topts, monitor);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  monitor.info(fmt::format("trained {} in {}", spec.name, core::format_duration(s)));
  if (seconds) *seconds = s;
  return model;
}

core::Config config_from_json(const nlohmann::json& flat) {
  core::Config c;
  if (!flat.is_object()) return c;
  for (const auto& [key, v] : flat.items()) {
    if (v.is_boolean()) c.set(key, v.get<bool>());
    else if (v.is_number_integer()) c.set(key, v.get<int64_t>());
    else if (v.is_number()) c.set(key, v.get<double>());
    else if (v.is_string()) c.set(key, v.get<std::string>());
    else if (v.is_array()) {
      std::vector<std::string> items;
      for (const auto& e : v) items.push_back(e.is_string() ? e.get<std::string>() : e.dump());
      c.set(key, items);
    }
  }
  return c;
}

std::vector<data::ItemIndex> resolve_items(const data::IdMap& items,
                                           const std::vector<std::string>& ids) {
  std::vector<data::ItemIndex> out;
  std::vector<std::string> unknown;
  for (const auto& raw : ids) {
    auto id = std::string(core::trim(raw));
    if (id.empty()) continue;
    int32_t idx = items.find(id);
    if (idx < 0) unknown.push_back(id);
    else out.push_back(idx);
  }
  if (!unknown.empty())
    FEWREC_THROW(kNotFound, "unknown item id{} {} (the catalogue has {} items, e.g. `{}`)",
                 unknown.size() > 1 ? "s" : "", core::join(unknown, ", "), items.size(),
                 items.size() > 0 ? items.id(0) : "");
  return out;
}

}  // namespace fewrec::cli

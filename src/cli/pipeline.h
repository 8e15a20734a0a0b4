// The steps every CLI command shares: options from config, data loading,
// splitting, model construction. Private to the fewrec binary.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/core/config.h"
#include "fewrec/core/monitor.h"
#include "fewrec/data/dataset.h"
#include "fewrec/data/preprocess.h"
#include "fewrec/data/readers.h"
#include "fewrec/data/split.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/eval/evaluator.h"
#include "fewrec/models/model.h"

namespace fewrec::cli {

// Every option of every component, read from one Config up front so that an
// unknown key is reported before any work starts.
struct RunOptions {
  std::string data_format;              // synthetic | movielens-100k | ... | csv | tsv | jsonl
  data::ReadOptions read;               // when data_format != synthetic
  data::SyntheticOptions synthetic;
  data::PreprocessOptions preprocess;
  bool split_none = false;              // split.kind = none: train on everything
  data::SplitOptions split;
  std::vector<models::ModelSpec> models;  // model.name may list several
  models::TrainOptions train;
  eval::EvalOptions eval;
  std::vector<int64_t> shots;           // fewshot curve (eval.shots)
  bool fewshot_cold_users = true;       // fewshot.cold_users
  bool fewshot_cold_items = true;       // fewshot.cold_items
  std::vector<int64_t> fewshot_seeds;   // fewshot.seeds
  bool fewshot_fixed_query = false;     // fewshot.query = fixed
  models::FineTuneFrom finetune;        // finetune.* (fewrec finetune; model and item_ids set there)
};

// Reads all sections; `need_model` false skips model.* (data commands).
RunOptions read_run_options(core::Config& config, bool need_model = true);

// Loads (or generates) the dataset and applies preprocessing. `info`
// receives a description of the source (format, path, rows, bad lines).
data::Dataset load_data(const RunOptions& options, core::Monitor& monitor,
                        nlohmann::json* info = nullptr);

// Loads (or generates) the dataset without any preprocessing (raw events:
// what the label model reads).
data::Dataset load_raw_data(const RunOptions& options, core::Monitor& monitor,
                            nlohmann::json* info = nullptr);

// Splits according to options (split.kind = none -> train = everything,
// test empty).
data::Split split_data(const data::Dataset& ds, const RunOptions& options);

// Builds and trains one model.
std::unique_ptr<models::Model> train_model(const models::ModelSpec& spec,
                                           const data::Split& split, const RunOptions& options,
                                           core::Monitor& monitor, double* seconds = nullptr);

// Config from a flat JSON object (an artifact's effective config).
core::Config config_from_json(const nlohmann::json& flat);

// Resolves external item ids; unknown ids are an error naming them.
std::vector<data::ItemIndex> resolve_items(const data::IdMap& items,
                                           const std::vector<std::string>& ids);

}  // namespace fewrec::cli

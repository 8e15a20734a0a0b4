// Evaluation of a model on a split.
//
// Default protocol: full ranking over every item of the catalogue, excluding
// the user's training (and validation) items, relevant = the user's test items.
// Sampled protocol (only when asked): each relevant item is ranked against
// `num_negatives` sampled items the user never interacted with (uniform or
// popularity), per test item as in the SASRec paper; metrics are averaged over
// (user, test item) pairs in that case.
// Cold-item protocol (candidates = "cold_items", with a cold_items split): the
// ranking is restricted to the split's held-out items, so each user's test
// (held-out) items compete only with the other held-out items — "hold out 20%
// of items, rank them for the users who interacted with them, from content".
// Exclusions still apply (train items are never held out anyway); AUC counts
// pairs among the candidates only.
// Metrics are averaged over users with at least one test item.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/core/monitor.h"
#include "fewrec/data/split.h"
#include "fewrec/models/model.h"

namespace fewrec::core {
class Config;
}

namespace fewrec::eval {

struct EvalOptions {
  std::vector<int> ks = {10};                 // cut-offs
  std::vector<std::string> metrics = {"hr", "recall", "precision", "ndcg", "mrr", "map"};
  bool auc = false;                           // full AUC (slower)
  std::string candidates = "full";            // full | sampled | cold_items
  // Full ranking (and cold_items) among these items only: sorted, unique; empty
  // = every item of the catalogue. Relevant items outside them cannot be ranked
  // and do not count. evaluate_split() fills it from split.cold_items when
  // candidates == "cold_items"; not allowed with sampled.
  std::vector<data::ItemIndex> candidate_items;
  int num_negatives = 100;                    // sampled
  std::string negative_sampler = "uniform";   // uniform | popularity
  bool exclude_train = true;                  // exclude train/valid/support items from ranking
  bool groups = true;                         // breakdown by history length / user kind
  std::vector<int> history_buckets = {5, 20, 50};  // history-length bucket edges
  int threads = 0;
  uint64_t seed = 42;
  // Reads eval.k (int or list), eval.metrics, eval.auc, eval.candidates,
  // eval.num_negatives, eval.negative_sampler, eval.exclude_train,
  // eval.groups, eval.history_buckets, eval.threads, eval.seed.
  static EvalOptions from_config(core::Config& config);
};

struct EvalResult {
  nlohmann::json protocol;                 // split, candidates, exclusions, K, users
  std::map<std::string, double> metrics;   // "ndcg@10" -> value
  int64_t num_users = 0;                   // users evaluated
  // group name ("history:1-5", "history:6-20", "cold_items", ...) -> metrics (+ "users")
  std::map<std::string, std::map<std::string, double>> groups;
  double seconds = 0;
  nlohmann::json to_json() const;          // {"protocol":..,"metrics":..,"groups":..,"users":..}
  // Short human-readable block: protocol line + metric table.
  std::string table(const std::string& title = "") const;
};

// One evaluation case: a user's context and the items that count as relevant.
struct EvalCase {
  data::UserContext context;
  std::vector<data::ItemIndex> relevant;  // sorted, unique
  std::vector<data::ItemIndex> exclude;   // sorted, unique (not ranked)
  std::string group;                      // optional extra group label ("cold_user")
};

// Builds the cases of a split: test users with their train history as the
// context (support set for cold_users, as a new user), relevant = test items,
// exclude = train + valid (+ support) items.
std::vector<EvalCase> make_cases(const data::Split& split, bool exclude_train = true);

// Evaluates `model` on `cases` (multithreaded over users). `train` supplies
// popularity for the popularity sampler and the item universe.
EvalResult evaluate(const models::Model& model, const std::vector<EvalCase>& cases,
                    const data::Dataset& train, const EvalOptions& options,
                    core::Monitor& monitor = core::null_monitor());

// make_cases + evaluate + protocol description from the split. With
// candidates == "cold_items" the candidate items are the split's cold_items
// (kInvalidArgument when the split holds out no items, i.e. is not a
// cold_items split).
EvalResult evaluate_split(const models::Model& model, const data::Split& split,
                          const EvalOptions& options,
                          core::Monitor& monitor = core::null_monitor());

// Renders several results side by side: one row per model.
std::string comparison_table(const std::vector<std::pair<std::string, EvalResult>>& results,
                             const std::vector<std::string>& columns);

}  // namespace fewrec::eval

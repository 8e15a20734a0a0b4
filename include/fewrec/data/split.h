// Splits: deterministic under a seed; every part shares the source catalogue.
//
//   random         per interaction: each row to train / valid / test by ratio
//   random_user    per user: each user's rows shuffled, ratio applied per user
//                  (every user with >= 2 rows keeps >= 1 train and >= 1 test row)
//   temporal       global time cut: rows before the train_fraction time
//                  quantile to train, then valid, then test
//   leave_one_out  per user by time: last row to test, the one before to valid
//                  (when valid_fraction > 0 or loo_valid), the rest train;
//                  users with < 3 rows (< 2 without valid) stay in train only
//   cold_users     a random fraction of users (with >= min_history rows) is
//                  held out; for each, the first `shots` rows by time form the
//                  support set, the rest the query (test) set; train holds the
//                  other users only. With query_from = Q > 0 the query is the
//                  rows after the first Q, the same for every N <= Q; the rows
//                  between the support and the query are hidden (neither
//                  revealed nor scored, and excluded from the ranking)
//   cold_items     a fraction of items (newest by first interaction, or random)
//                  is removed from train; test holds their interactions;
//                  train keeps every other row
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/data/dataset.h"

namespace fewrec::core {
class Config;
}

namespace fewrec::data {

enum class SplitKind { kRandom, kRandomUser, kTemporal, kLeaveOneOut, kColdUsers, kColdItems };
SplitKind parse_split_kind(std::string_view name);  // error lists the valid names
const char* split_kind_name(SplitKind kind);

struct SplitOptions {
  SplitKind kind = SplitKind::kRandom;
  double train_fraction = 0.8;
  double valid_fraction = 0.0;   // random / random_user / temporal: taken out of the non-train part
  bool loo_valid = false;        // leave_one_out: also hold out the second-to-last row
  uint64_t seed = 42;
  // cold_users
  double cold_user_fraction = 0.2;
  int shots = 5;                 // support-set size N
  int min_history = 0;           // candidate cold users need >= this many rows (0 = shots + 1)
  int query_from = 0;            // the query is the user's rows after the first query_from (0 = after the support)
  // cold_items
  double cold_item_fraction = 0.2;
  bool cold_items_newest = true; // newest by first interaction, else random
  // Reads split.kind, split.train_fraction, split.valid_fraction, split.seed,
  // split.loo_valid, split.cold_user_fraction, split.shots, split.min_history, split.query_from,
  // split.cold_item_fraction, split.cold_items (newest|random).
  static SplitOptions from_config(core::Config& config);
  nlohmann::json to_json() const;
};

struct Split {
  Dataset train;
  Dataset valid;    // may be empty
  Dataset test;     // query set for cold_users
  Dataset support;  // cold_users only: the revealed first N rows per held-out user
  Dataset hidden;   // cold_users with query_from: rows between the support and the query
  std::vector<UserIndex> cold_users;  // sorted
  std::vector<ItemIndex> cold_items;  // sorted
  SplitOptions options;
  // {"kind": ..., "seed": ..., "train_fraction": ..., "train_rows": ..., ...}
  nlohmann::json describe() const;
};

Split make_split(const Dataset& ds, const SplitOptions& options);

// For the N-shot curve: same held-out users (chosen with options.seed among
// users with >= min_history rows), support = first `shots` rows, query = the
// rest (from row options.query_from on when it is > 0; the rows between are
// hidden). Users with no query rows are left out of test.
Split make_cold_user_split(const Dataset& ds, const SplitOptions& options, int shots);

}  // namespace fewrec::data

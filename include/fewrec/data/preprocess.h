// Preprocessing: dedupe, implicit conversion, k-core filtering.
// All return new datasets over the same catalogue (index spaces unchanged);
// `compact` is the one step that re-indexes.
#pragma once

#include <string>

#include "fewrec/data/dataset.h"

namespace fewrec::core {
class Config;
}

namespace fewrec::data {

enum class DedupeKeep { kLast, kFirst, kMax, kSum };
// Keeps one row per (user, item): the last / first by time, the max value, or
// the sum of values (latest timestamp).
Dataset dedupe(const Dataset& ds, DedupeKeep keep = DedupeKeep::kLast);

// Keeps rows with value >= threshold (the positives); values unchanged.
Dataset to_implicit(const Dataset& ds, float threshold);

// Repeatedly drops users with < min_user and items with < min_item
// interactions until both hold (entities keep their indices).
Dataset k_core(const Dataset& ds, int min_user, int min_item);

// Re-indexes users and items that have at least one interaction (feature rows
// carried along). Changes the catalogue.
Dataset compact(const Dataset& ds);

struct PreprocessOptions {
  bool dedupe = true;
  std::string dedupe_keep = "last";  // last | first | max | sum
  double positive_threshold = 0;     // 0 / NaN = keep every row
  bool has_threshold = false;
  int min_user_interactions = 0;     // k-core (0 = off)
  int min_item_interactions = 0;
  static PreprocessOptions from_config(core::Config& config);  // data.dedupe, data.positive_threshold, data.min_user_interactions, ...
};

Dataset preprocess(const Dataset& ds, const PreprocessOptions& options);

}  // namespace fewrec::data

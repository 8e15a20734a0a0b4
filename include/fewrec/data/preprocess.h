// Preprocessing: dedupe, implicit conversion (a fixed threshold or the label
// model), k-core filtering.
// All return new datasets over the same catalogue (index spaces unchanged);
// `compact` is the one step that re-indexes.
#pragma once

#include <string>

#include "fewrec/data/dataset.h"
#include "fewrec/data/labels.h"

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
  // Which pairs are positives: "threshold" (data.positive_threshold, the
  // default) or "model" (the label model replaces dedupe + threshold: one row
  // per pair it labels positive, weight = confidence).
  std::string labels = "threshold";
  LabelModelOptions label_model;     // data.label_model.*
  int min_user_interactions = 0;     // k-core (0 = off)
  int min_item_interactions = 0;
  // data.dedupe, data.positive_threshold, data.labels, data.label_model.*,
  // data.min_user_interactions, ...; contradictory keys are errors.
  static PreprocessOptions from_config(core::Config& config);
};

// `labels` receives what the label model did when options.labels = "model".
Dataset preprocess(const Dataset& ds, const PreprocessOptions& options, LabelReport* labels = nullptr);

}  // namespace fewrec::data

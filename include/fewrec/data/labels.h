// The label model: logistic regression that turns raw behaviour signals of a
// (user, item) pair — event counts, repeats, values, weights ("dwell") — into
// a training label and a confidence, instead of a fixed value threshold.
//
// Supervision comes from a *target* (data.label_model.target) that says which
// pairs have a known label:
//   "event:NAME"            every pair is labelled: positive when it has an
//                           event of type NAME; events of type NAME are left
//                           out of the features. A pair with the event is an
//                           observed positive; its absence is a training
//                           negative only (not an observation).
//   "NAME:value>=T"         pairs with an event of type NAME are labelled:
//                           positive when that type's latest value >= T;
//                           events of type NAME are left out of the features.
//   "value>=T"              every pair is labelled by its latest value; the
//                           value signals are left out of the features.
// The model learns P(positive | the pair's other signals) on the labelled
// pairs and then gives every pair a probability p. Label = p >= threshold,
// confidence = p; with trust_observed an observed label overrides p (1 / 0).
//
// Signals of a pair (raw, from its non-target events):
//   events          number of events (only when > 1 event type is left)
//   count:TYPE      number of events of each type present in the data
//   value_max, value_last, value_centred (latest value minus the user's mean
//                   value over their non-target events)
//   weight_sum      sum of the events' weights (dwell-like strength)
// Model features: log1p of the counts and of max(0, weight_sum), the value
// signals as they are; each standardised on the training pairs; plus a bias.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/data/dataset.h"

namespace fewrec::core {
class Config;
}

namespace fewrec::data {

enum class DedupeKeep;

struct LabelTarget {
  enum class Kind { kEvent, kValue };
  Kind kind = Kind::kEvent;
  std::string event;     // kEvent: the event type; kValue: the rated type ("" = every event)
  double threshold = 0;  // kValue
  std::string text;      // as written
  // Errors name data.label_model.target and the accepted forms.
  static LabelTarget parse(std::string_view text);
};

struct LabelModelOptions {
  std::string target;          // see LabelTarget; required to fit
  double threshold = 0.5;      // label = p >= threshold
  double l2 = 1.0;             // L2 penalty on the (standardised) weights, bias not penalised
  bool trust_observed = true;  // an observed label overrides the model's p
  int max_iterations = 100;    // Newton steps
  // Reads data.label_model.target, .threshold, .l2, .trust_observed.
  static LabelModelOptions from_config(core::Config& config);
  void validate() const;
};

// One row per (user, item) pair of a dataset, in CSR order (users ascending,
// items ascending inside a user).
struct PairTable {
  std::vector<UserIndex> users;
  std::vector<ItemIndex> items;
  std::vector<int64_t> last_timestamps;
  std::vector<std::string> signal_names;  // raw signal columns
  std::vector<double> signals;            // [size(), signal_names.size()] row-major
  std::vector<uint8_t> labelled;          // the target gives this pair a training label
  std::vector<uint8_t> labels;            // that label (0 / 1) when labelled
  std::vector<uint8_t> observed;          // the label is an observation (see trust_observed)
  size_t size() const { return users.size(); }
  // Column of a raw signal; -1 when absent.
  int column(std::string_view name) const;
  double signal(size_t pair, int column) const { return signals[pair * signal_names.size() + static_cast<size_t>(column)]; }
  int64_t num_labelled() const;
};

// Builds the pairs and their signals. Throws kInvalidArgument naming the
// target when its event type is not in the data (listing the types present).
PairTable build_pair_table(const Dataset& ds, const LabelTarget& target);

// L2-regularised logistic regression by Newton's method with step halving:
// minimises sum_i logloss(y_i, sigmoid(b + x_i . w)) + l2 / 2 * |w|^2.
// `x` is [rows, cols] row-major without a bias column. Returns b followed by
// w (size cols + 1). Deterministic.
struct LogisticFit {
  std::vector<double> weights;  // bias first
  int iterations = 0;
  bool converged = false;
};
LogisticFit fit_logistic(std::span<const double> x, size_t cols, std::span<const uint8_t> y, double l2,
                         int max_iterations = 100);

class LabelModel {
 public:
  struct Feature {
    std::string name;       // e.g. "log1p(count:view)"
    std::string signal;     // raw signal it reads ("" for the bias)
    bool log1p = false;     // log1p(max(0, signal))
    double mean = 0;        // standardisation on the training pairs
    double scale = 1;
    double weight = 0;      // on the standardised feature
  };

  // Fits on the labelled pairs (all of them, or those with train_mask[i] != 0).
  // Throws when the labelled pairs lack a positive or a negative example.
  static LabelModel fit(const PairTable& pairs, const LabelModelOptions& options,
                        std::span<const uint8_t> train_mask = {});

  // P(positive | signals) per pair. Signals the model knows but the table
  // lacks (an event type absent from the data) count as 0.
  std::vector<float> predict(const PairTable& pairs) const;
  // The confidence used for labelling: predict(), with observed labels
  // overriding it when options().trust_observed.
  std::vector<float> confidence(const PairTable& pairs) const;

  const std::vector<Feature>& features() const { return features_; }
  const LabelModelOptions& options() const { return options_; }
  int iterations() const { return iterations_; }
  int64_t train_pairs() const { return train_pairs_; }
  int64_t train_positives() const { return train_positives_; }

  // JSON with the named features and their weights (inspectable).
  nlohmann::json to_json() const;
  // Throws kCorrupt naming `origin` when the document is not a label model.
  static LabelModel from_json(const nlohmann::json& j, std::string_view origin = "<json>");
  void save(const std::filesystem::path& path) const;
  static LabelModel load(const std::filesystem::path& path);

 private:
  LabelModelOptions options_;
  std::vector<Feature> features_;  // bias first
  int iterations_ = 0;
  int64_t train_pairs_ = 0;
  int64_t train_positives_ = 0;
};

// What apply_label_model did (for `fewrec data stats` and logs).
struct LabelReport {
  int64_t pairs = 0, labelled = 0, kept = 0;
  nlohmann::json model;  // LabelModel::to_json()
};

// Fits the label model on `raw` (events not deduplicated) and keeps one row
// per pair it labels positive: the row `keep` picks (as dedupe does) with
// weight = confidence.
Dataset apply_label_model(const Dataset& raw, const LabelModelOptions& options, DedupeKeep keep,
                          LabelReport* report = nullptr);

}  // namespace fewrec::data

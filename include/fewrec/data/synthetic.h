// Synthetic data with planted structure — the built-in sample for `make demo`
// and the data of quality tests.
//
// Planted: items belong to latent topics and carry factor vectors near their
// topic's centre; item titles are made of real English words of that topic
// (so pretrained word vectors help); users have factor vectors mixing a few
// topics, and categorical attributes (age group, region, occupation) that are
// drawn conditionally on their main topic; interactions are drawn by softmax
// affinity with popularity bias; timestamps increase with drift in topic
// taste; with probability `sequential_prob` the next item is the planted
// successor of the previous one (sequential transitions).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "fewrec/data/dataset.h"

namespace fewrec::core {
class Config;
}

namespace fewrec::data {

struct SyntheticOptions {
  int32_t num_users = 1000;
  int32_t num_items = 500;
  int32_t num_topics = 8;          // at most the size of the built-in topic word list
  int32_t dim = 8;                 // latent factor dimension
  double mean_interactions = 40;   // per user (geometric-ish spread, >= min_interactions)
  int32_t min_interactions = 5;
  double popularity_skew = 0.8;    // Zipf exponent of item popularity bias
  double noise = 0.3;              // item factor spread around the topic centre
  double sequential_prob = 0.25;   // chance the next item is the planted successor
  double drift = 0.2;              // taste drift over a user's timeline
  double temperature = 0.5;        // softmax temperature of affinities
  bool ratings = true;             // values are 1..5 ratings correlated with affinity
  bool behaviour = false;          // events are views (+ some ratings): make_behaviour_events
  double rated_fraction = 0.3;     // behaviour: share of pairs that also carry their rating
  uint64_t seed = 7;
  // Reads data.synthetic.users, .items, .topics, .dim, .mean_interactions, .seed, ...
  static SyntheticOptions from_config(core::Config& config);
};

// Users "u0".."u{n-1}", items "i0".. ; user features: categorical "age",
// "region", "occupation"; item features: text "title", tags "genres" (topic
// name), categorical "topic", numeric "year".
Dataset make_synthetic(const SyntheticOptions& options);

// Raw behaviour driven by the ratings of `rated` (values 1..5): the label
// model's planted structure. Each row (user, item, rating r) becomes
//   views: 1 + Poisson(exp(-0.4 + 0.45 (r - 3) + a_u)) events of type "view",
//          5 minutes apart, value = completion sigmoid(0.5 (r - 3) + N(0, 1))
//          in (0, 1), weight = dwell seconds exp(3.2 + 0.3 (r - 3) + b_u + 0.9 N(0, 1));
//   with probability rated_fraction, a "rating" event with value r after them.
// a_u ~ N(0, 0.5) (how much a user re-watches) and b_u ~ N(0, 0.4) (how long
// they dwell) are per-user habits unrelated to taste. Liking is r >= 4.
// Same catalogue plus the event types "view" and "rating".
Dataset make_behaviour_events(const Dataset& rated, double rated_fraction, uint64_t seed);

// The planted ground truth, for quality tests and diagnostics. Topics index
// synthetic_topics(); row-major factor matrices.
struct SyntheticTruth {
  std::vector<float> centres;                 // [num_topics, dim] topic centres
  std::vector<int32_t> item_topic;            // per item
  std::vector<int32_t> item_secondary_topic;  // per item, -1 when none
  std::vector<float> item_factors;            // [num_items, dim]
  std::vector<float> item_bias;               // log-Zipf popularity bias per item
  std::vector<ItemIndex> item_successor;      // planted successor per item (same topic)
  std::vector<int32_t> user_main_topic;       // per user
  std::vector<int32_t> user_drift_topic;      // topic the user's taste drifts toward
  std::vector<float> user_factors;            // [num_users, dim], before drift
};
// Same data as make_synthetic(options); fills `truth` when not null.
Dataset make_synthetic(const SyntheticOptions& options, SyntheticTruth* truth);

// The topic word lists used for titles (topic name -> words).
const std::vector<std::pair<std::string, std::vector<std::string>>>& synthetic_topics();
// The general words titles may also use ("the", "night", "story", ...).
const std::vector<std::string>& synthetic_general_words();

}  // namespace fewrec::data

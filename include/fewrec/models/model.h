// Model: the interface every recommender implements.
//
// Every recommendation starts from a UserContext. adapt() turns it into a
// UserState (fold-in, a few gradient steps, a sequence encoding — whatever
// the model needs), and score()/score_all() rank items for that state. A
// model never fails on an unknown user: it works from the history.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/core/monitor.h"
#include "fewrec/data/context.h"
#include "fewrec/data/dataset.h"

namespace fewrec::core {
class ArtifactWriter;
class ArtifactReader;
}  // namespace fewrec::core

namespace fewrec::models {

using data::ItemIndex;
using data::UserIndex;

// Name + options, as a round-tripping string "itemknn:k=100,shrink=10".
struct ModelSpec {
  std::string name;
  std::map<std::string, std::string> options;
  std::string to_string() const;
  static ModelSpec parse(std::string_view text);  // errors name the bad part
};

class Model;

// Fine-tuning a pretrained model on new data (`fewrec finetune`): fit()
// starts from `model`'s weights instead of a fresh initialisation (item rows
// matched by external id, feature rows by feature name; items and features
// the pretrained model lacks start from content / their initial values) and
// trains only the parameters `mode` selects, at a small learning rate with a
// linear warm-up and an optional L2 pull towards the pretrained weights;
// with a validation set it stops early and keeps the best epoch (the
// pretrained weights are a candidate too). Models that support it say so in
// supports_finetune().
struct FineTuneFrom {
  const Model* model = nullptr;                        // the pretrained model (same model name)
  const std::vector<std::string>* item_ids = nullptr;  // its items' external ids by index
  std::string mode = "full";                           // full | head | bias | lowrank
  double lr = 2e-4;
  int64_t epochs = 5;
  int64_t warmup_steps = 20;
  double l2 = 0.0;                                     // lambda * sum ||theta - theta0||^2
  int64_t rank = 8;                                    // lowrank: adapter rank
  int64_t patience = 2;                                // epochs without a better validation metric
};

struct TrainOptions {
  int threads = 0;            // 0 = all cores
  uint64_t seed = 42;
  const data::Dataset* valid = nullptr;  // optional validation set (early stopping)
  const FineTuneFrom* finetune = nullptr;  // fit() fine-tunes this pretrained model instead (supports_finetune())
};

// Per-user state produced by adapt(). Models subclass it.
class UserState {
 public:
  virtual ~UserState() = default;
  // Items the context already holds (sorted, unique): excluded from
  // recommendations by default.
  std::vector<ItemIndex> seen;
};

class Model {
 public:
  virtual ~Model() = default;

  const ModelSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }

  // Trains on `train` (its catalogue defines the item index space).
  virtual void fit(const data::Dataset& train, const TrainOptions& options,
                   core::Monitor& monitor) = 0;

  // Few-shot step: state for a (known or new) user from their context.
  // Items outside [0, num_items()) in the history are an error (kInvalidArgument).
  virtual std::unique_ptr<UserState> adapt(const data::UserContext& context) const = 0;

  // out[i] = score of items[i] for `state`. Higher is better.
  // items.size() == out.size().
  virtual void score(const UserState& state, std::span<const ItemIndex> items,
                     std::span<float> out) const = 0;

  // out[i] = score of item i, out.size() == num_items(). Default calls score().
  virtual void score_all(const UserState& state, std::span<float> out) const;

  // Number of items the model can score.
  virtual int32_t num_items() const = 0;

  // Makes new items (appended to the catalogue, indices >= num_items())
  // recommendable from their content. Default: kUnavailable.
  virtual void add_items(const data::Catalogue& catalogue, ItemIndex first_new_item);

  // Factorised models: item vectors [num_items x dim] row-major and a user
  // vector such that score = dot(user, item). dim 0 when unsupported.
  virtual int32_t vector_dim() const { return 0; }
  virtual std::span<const float> item_vectors() const { return {}; }
  virtual std::vector<float> user_vector(const UserState& state) const { return {}; }

  // Model-specific sections (names prefixed by the caller). The static
  // loader registered with the model reads them back.
  virtual void save(core::ArtifactWriter& writer, const std::string& prefix) const = 0;

  // Short human-readable summary after training.
  virtual nlohmann::json summary() const { return nlohmann::json::object(); }
  // Whether fit() honours TrainOptions::finetune (fewrec finetune).
  virtual bool supports_finetune() const { return false; }

 protected:
  explicit Model(ModelSpec spec) : spec_(std::move(spec)) {}
  ModelSpec spec_;
};

// Top-k of `scores` excluding `exclude` (sorted) -> item indices, best first;
// ties broken by lower index. Uses partial sort.
std::vector<ItemIndex> top_k(std::span<const float> scores, int k,
                             std::span<const ItemIndex> exclude = {});

// Intra-op threads of the LibTorch models (and one BLAS thread each): a
// service answering many requests at once wants 1. Process-wide.
void set_compute_threads(int threads);

// Convenience: adapt + score_all + top_k (excluding state.seen when exclude_seen).
std::vector<std::pair<ItemIndex, float>> recommend(const Model& model,
                                                   const data::UserContext& context, int k,
                                                   bool exclude_seen = true);

}  // namespace fewrec::models

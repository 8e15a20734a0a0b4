// The content side of the LibTorch models that embed items from their
// features and pretrained text (two_tower, melu); internal to the models
// layer. It holds, for every item of the catalogue: whether it had training
// interactions (its id embedding is trained), its feature indices (vocabulary
// from the trained items only: a value no trained item has would keep a
// random embedding) and its fixed text vector; it grows with add_items and
// is saved with the model.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "feature_bags.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/data/dataset.h"
#include "hybrid_features.h"
#include "hybrid_text.h"

namespace fewrec::models {

class ItemContent {
 public:
  ItemContent() = default;
  ItemContent(hybrid::ColumnSelection features, hybrid::VocabularyOptions vocab, hybrid::TextSourceOptions text,
              std::string model)
      : features_(std::move(features)), vocab_(vocab), text_options_(std::move(text)), model_(std::move(model)) {}

  // Every item of `train`'s catalogue; `known` from its interactions.
  // Returns the trained items (ascending). kInvalidArgument when no item has
  // an interaction or a text vector is not finite.
  std::vector<data::ItemIndex> build(const data::Dataset& train, core::Monitor& monitor);
  // Appends the catalogue's items [size(), catalogue size): features, text
  // (same encoder identity as at build, else kInvalidArgument), not known.
  void add_items(const data::Catalogue& catalogue);

  int32_t size() const { return static_cast<int32_t>(known_.size()); }
  bool known(data::ItemIndex i) const { return known_[static_cast<size_t>(i)] != 0; }
  const hybrid::FeatureSpace& space() const { return space_; }
  int64_t text_dim() const { return text_dim_; }
  nlohmann::json describe() const;

  // Inputs of the items `ids`: id_keep [n] (1 for known items, times
  // `keep_extra[k]` when given), feature bags (flat, starts) and text rows
  // [n, text_dim] (undefined when there is no text). Features flagged in
  // `left_out` (when given) are left out of the bags.
  struct Inputs {
    at::Tensor ids, id_keep, flat, starts, text;
  };
  Inputs inputs(const std::vector<int64_t>& ids, std::span<const float> keep_extra = {},
                const std::vector<uint8_t>* left_out = nullptr) const;
  // Per feature: 1 when exactly one known item has it. Such a feature was
  // trained on that item's interactions alone, so it acts as the item's id;
  // a new item has no such feature (the vocabulary comes from the known
  // items). A known item standing for a new one leaves them out.
  std::vector<uint8_t> features_of_one_known_item() const;

  // Sections "<prefix>known", "item_bag_offsets", "item_bag_ids", "text_dim",
  // "text_identity", "text", "item_space/...".
  void save(core::ArtifactWriter& writer, const std::string& prefix) const;
  // kCorrupt naming the artifact and the model on any inconsistency.
  void load(const core::ArtifactReader& reader, const std::string& prefix, int32_t num_items);

 private:
  hybrid::ColumnSelection features_;
  hybrid::VocabularyOptions vocab_;
  hybrid::TextSourceOptions text_options_;
  std::string model_;
  hybrid::FeatureSpace space_;
  Bags bags_;
  std::vector<uint8_t> known_;
  int64_t text_dim_ = 0;
  std::string text_identity_;
  at::Tensor text_;  // [size, text_dim]
  std::unique_ptr<hybrid::ItemTextSource> source_;
  nlohmann::json text_info_;
};

// Feature bags of every user of a catalogue under `space`.
Bags user_bags(const hybrid::FeatureSpace& space, const data::Catalogue& catalogue);

}  // namespace fewrec::models

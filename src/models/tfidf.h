// TF-IDF vectors of items over their features (hybrid_features.h: title
// words, genres, tags, categorical values, numeric buckets; each counted once
// per item): idf = ln((n + 1) / (df + 1)) + 1 over the whole catalogue (no
// interaction is needed to describe an item), L2-normalised per item. The
// `content` baseline scores with them. A user profile is the mean vector of
// the user's history items (dense over the features). Internal to the
// models layer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fewrec/core/artifact.h"
#include "fewrec/data/dataset.h"
#include "hybrid_features.h"

namespace fewrec::models {

class TfidfItems {
 public:
  // Vocabulary, idf and vectors of every catalogue item; kInvalidArgument
  // when the selected columns hold no feature (`model` names the model).
  void build(const data::Catalogue& cat, const hybrid::ColumnSelection& columns,
             const hybrid::VocabularyOptions& vocab, const std::string& model);
  // Vectors of catalogue items first.. (new items; the vocabulary and idf
  // stay: a feature no earlier item had is dropped). first == rows().
  void add_items(const data::Catalogue& cat, int32_t first);

  int32_t rows() const { return static_cast<int32_t>(offsets_.size()) - 1; }
  int32_t features() const { return space_.size(); }

  // The mean vector of `items` (empty: zeros).
  std::vector<float> profile(const std::vector<int32_t>& items) const;
  float dot(const std::vector<float>& profile, int32_t item) const;

  // Sections "<prefix>space/", "offsets", "ids", "idf".
  void save(core::ArtifactWriter& writer, const std::string& prefix) const;
  // kCorrupt naming the artifact on any inconsistency.
  void load(const core::ArtifactReader& reader, const std::string& prefix, const std::string& model);

 private:
  void encode(const data::Catalogue& cat, int32_t first);
  void weigh(int32_t first);  // weights_ of the items >= first
  // profile (size features()) += w * the item's vector.
  void accumulate(int32_t item, float w, std::vector<float>& profile) const;

  hybrid::FeatureSpace space_;
  std::vector<int64_t> offsets_{0};  // CSR over items
  std::vector<int64_t> ids_;         // feature indices
  std::vector<float> idf_;           // per feature
  std::vector<float> weights_;       // per entry: idf / the item's norm
};

}  // namespace fewrec::models

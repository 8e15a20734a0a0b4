// TF-IDF vectors of items (tfidf.h).
#include "tfidf.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "fewrec/core/error.h"

namespace fewrec::models {

void TfidfItems::build(const data::Catalogue& cat, const hybrid::ColumnSelection& columns,
                       const hybrid::VocabularyOptions& vocab, const std::string& model) {
  std::vector<int32_t> all(static_cast<size_t>(cat.items.size()));
  std::iota(all.begin(), all.end(), 0);
  space_ = hybrid::FeatureSpace::build(cat.item_features, all, columns, vocab, "item", model);
  FEWREC_CHECK(!space_.empty(), kInvalidArgument, "model `{}`: no item feature was found (item_features = {})",
               model, columns.to_string());
  offsets_.assign(1, 0);
  ids_.clear();
  encode(cat, 0);
  std::vector<int64_t> df(static_cast<size_t>(space_.size()), 0);
  for (int64_t f : ids_) ++df[static_cast<size_t>(f)];
  const double n = static_cast<double>(rows());
  idf_.resize(df.size());
  for (size_t f = 0; f < df.size(); ++f)
    idf_[f] = static_cast<float>(std::log((n + 1.0) / (static_cast<double>(df[f]) + 1.0)) + 1.0);
  weigh(0);
}

void TfidfItems::add_items(const data::Catalogue& cat, int32_t first) {
  FEWREC_ASSERT(first == rows());
  encode(cat, first);
  weigh(first);
}

void TfidfItems::encode(const data::Catalogue& cat, int32_t first) {
  std::vector<int32_t> f;
  for (int32_t i = first; i < cat.items.size(); ++i) {
    f.clear();
    space_.encode_row(cat.item_features, i, f);
    ids_.insert(ids_.end(), f.begin(), f.end());
    offsets_.push_back(static_cast<int64_t>(ids_.size()));
  }
}

void TfidfItems::weigh(int32_t first) {
  weights_.resize(ids_.size());
  for (int32_t i = first; i < rows(); ++i) {
    const int64_t lo = offsets_[static_cast<size_t>(i)], hi = offsets_[static_cast<size_t>(i) + 1];
    double norm = 0.0;
    for (int64_t r = lo; r < hi; ++r) {
      const float w = idf_[static_cast<size_t>(ids_[static_cast<size_t>(r)])];
      weights_[static_cast<size_t>(r)] = w;
      norm += static_cast<double>(w) * w;
    }
    const float inv = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.0f;
    for (int64_t r = lo; r < hi; ++r) weights_[static_cast<size_t>(r)] *= inv;
  }
}

void TfidfItems::accumulate(int32_t item, float w, std::vector<float>& profile) const {
  for (int64_t r = offsets_[static_cast<size_t>(item)]; r < offsets_[static_cast<size_t>(item) + 1]; ++r)
    profile[static_cast<size_t>(ids_[static_cast<size_t>(r)])] += w * weights_[static_cast<size_t>(r)];
}

std::vector<float> TfidfItems::profile(const std::vector<int32_t>& items) const {
  std::vector<float> p(static_cast<size_t>(features()), 0.0f);
  if (items.empty()) return p;
  const float w = 1.0f / static_cast<float>(items.size());
  for (int32_t i : items) accumulate(i, w, p);
  return p;
}

float TfidfItems::dot(const std::vector<float>& profile, int32_t item) const {
  float s = 0.0f;
  for (int64_t r = offsets_[static_cast<size_t>(item)]; r < offsets_[static_cast<size_t>(item) + 1]; ++r)
    s += profile[static_cast<size_t>(ids_[static_cast<size_t>(r)])] * weights_[static_cast<size_t>(r)];
  return s;
}

void TfidfItems::save(core::ArtifactWriter& writer, const std::string& prefix) const {
  space_.save(writer, prefix + "space/");
  writer.put_array<int64_t>(prefix + "offsets", offsets_);
  writer.put_array<int64_t>(prefix + "ids", ids_);
  writer.put_array<float>(prefix + "idf", idf_);
}

void TfidfItems::load(const core::ArtifactReader& reader, const std::string& prefix, const std::string& model) {
  space_ = hybrid::FeatureSpace::load(reader, prefix + "space/");
  offsets_ = reader.get_array<int64_t>(prefix + "offsets");
  ids_ = reader.get_array<int64_t>(prefix + "ids");
  idf_ = reader.get_array<float>(prefix + "idf", static_cast<size_t>(space_.size()));
  if (offsets_.empty() || offsets_.front() != 0 || offsets_.back() != static_cast<int64_t>(ids_.size()) ||
      !std::is_sorted(offsets_.begin(), offsets_.end()))
    FEWREC_THROW(kCorrupt, "artifact {}: model `{}`: item feature offsets are inconsistent", reader.origin(), model);
  for (int64_t f : ids_)
    if (f < 0 || f >= space_.size())
      FEWREC_THROW(kCorrupt, "artifact {}: model `{}`: a feature index is out of range", reader.origin(), model);
  for (float x : idf_)
    if (!std::isfinite(x))
      FEWREC_THROW(kCorrupt, "artifact {}: model `{}`: an idf weight is not finite", reader.origin(), model);
  weigh(0);
}

}  // namespace fewrec::models

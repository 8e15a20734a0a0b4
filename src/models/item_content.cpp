#include "item_content.h"

#include <algorithm>
#include <cmath>

#include "fewrec/core/error.h"

namespace fewrec::models {

namespace {

at::Tensor matrix_tensor(text::Matrix& m) {
  return at::from_blob(m.data.data(), {m.rows, m.cols}, at::kFloat).clone();
}

}  // namespace

std::vector<data::ItemIndex> ItemContent::build(const data::Dataset& train, core::Monitor& monitor) {
  const auto& cat = train.catalogue();
  const int32_t n = train.num_items();
  known_.assign(static_cast<size_t>(n), 0);
  for (data::ItemIndex i : train.item_column()) known_[static_cast<size_t>(i)] = 1;
  std::vector<data::ItemIndex> trained;
  for (data::ItemIndex i = 0; i < n; ++i)
    if (known_[static_cast<size_t>(i)]) trained.push_back(i);
  FEWREC_CHECK(!trained.empty(), kInvalidArgument, "model `{}`: the training data has no interaction", model_);
  std::vector<int32_t> rows(trained.begin(), trained.end());
  space_ = hybrid::FeatureSpace::build(cat.item_features, rows, features_, vocab_, "item", model_);
  bags_ = Bags{};
  std::vector<int32_t> f;
  for (data::ItemIndex i = 0; i < n; ++i) {
    f.clear();
    space_.encode_row(cat.item_features, i, f);
    bags_.add(f);
  }
  text_dim_ = 0;
  text_ = at::Tensor();
  text_identity_.clear();
  text_info_ = nullptr;
  if (text_options_.enabled()) {
    source_ = std::make_unique<hybrid::ItemTextSource>(text_options_, model_);
    text::Matrix m = source_->vectors(cat, 0, monitor);
    for (float v : m.data)
      FEWREC_CHECK(std::isfinite(v), kInvalidArgument, "model `{}`: the items' text vectors hold a non-finite value",
                   model_);
    text_dim_ = m.cols;
    text_identity_ = source_->identity();
    text_ = matrix_tensor(m);
    text_info_ = source_->describe();
  }
  return trained;
}

void ItemContent::add_items(const data::Catalogue& catalogue) {
  const int32_t first = size(), total = catalogue.items.size();
  if (total <= first) return;
  at::Tensor new_text;
  if (text_dim_ > 0) {
    // A loaded model opens its encoder (or vector file) on first use.
    if (!source_) source_ = std::make_unique<hybrid::ItemTextSource>(text_options_, model_);
    text::Matrix m = source_->vectors(catalogue, first, core::null_monitor());
    FEWREC_CHECK(m.cols == text_dim_ && source_->identity() == text_identity_, kInvalidArgument,
                 "model `{}`: the new items' text vectors ({}, dimension {}) are not those the model was trained on "
                 "({}, dimension {})",
                 model_, source_->identity(), m.cols, text_identity_, text_dim_);
    for (float v : m.data)
      FEWREC_CHECK(std::isfinite(v), kInvalidArgument,
                   "model `{}`: the new items' text vectors hold a non-finite value", model_);
    new_text = matrix_tensor(m);
  }
  std::vector<int32_t> f;
  for (data::ItemIndex i = first; i < total; ++i) {
    f.clear();
    space_.encode_row(catalogue.item_features, i, f);
    bags_.add(f);
  }
  if (new_text.defined()) text_ = at::cat({text_, new_text}, 0);
  known_.resize(static_cast<size_t>(total), 0);
}

nlohmann::json ItemContent::describe() const {
  nlohmann::json j{{"features", space_.describe()}};
  if (!text_info_.is_null()) j["text"] = text_info_;
  return j;
}

ItemContent::Inputs ItemContent::inputs(const std::vector<int64_t>& ids, std::span<const float> keep_extra,
                                        const std::vector<uint8_t>* left_out) const {
  std::vector<float> keep(ids.size());
  for (size_t k = 0; k < ids.size(); ++k)
    keep[k] = (known_[static_cast<size_t>(ids[k])] ? 1.0f : 0.0f) * (keep_extra.empty() ? 1.0f : keep_extra[k]);
  std::vector<int64_t> flat, starts;
  bags_.gather(ids, flat, starts);
  if (left_out != nullptr) {
    size_t kept = 0, row = 0;
    for (size_t k = 0; k < flat.size(); ++k) {
      while (row < starts.size() && static_cast<size_t>(starts[row]) == k) starts[row++] = static_cast<int64_t>(kept);
      if (!(*left_out)[static_cast<size_t>(flat[k])]) flat[kept++] = flat[k];
    }
    for (; row < starts.size(); ++row) starts[row] = static_cast<int64_t>(kept);
    flat.resize(kept);
  }
  Inputs in;
  in.ids = long_tensor(ids);
  in.id_keep = at::from_blob(keep.data(), {static_cast<int64_t>(keep.size())}, at::kFloat).clone();
  in.flat = long_tensor(flat);
  in.starts = long_tensor(starts);
  if (text_.defined()) in.text = text_.index_select(0, in.ids);
  return in;
}

std::vector<uint8_t> ItemContent::features_of_one_known_item() const {
  const auto n = static_cast<size_t>(space_.size());
  std::vector<int32_t> count(n, 0);
  std::vector<int64_t> last(n, -1);
  for (int64_t r = 0; r < bags_.rows(); ++r) {
    if (!known(static_cast<data::ItemIndex>(r))) continue;
    for (int64_t a = bags_.offsets[static_cast<size_t>(r)]; a < bags_.offsets[static_cast<size_t>(r) + 1]; ++a) {
      const auto f = static_cast<size_t>(bags_.ids[static_cast<size_t>(a)]);
      if (last[f] != r) last[f] = r, ++count[f];  // twice in one bag counts once
    }
  }
  std::vector<uint8_t> own(n);
  for (size_t f = 0; f < n; ++f) own[f] = count[f] == 1;
  return own;
}

void ItemContent::save(core::ArtifactWriter& writer, const std::string& prefix) const {
  writer.put_array<uint8_t>(prefix + "known", known_);
  writer.put_array<int64_t>(prefix + "item_bag_offsets", bags_.offsets);
  writer.put_array<int64_t>(prefix + "item_bag_ids", bags_.ids);
  writer.put_i64(prefix + "text_dim", text_dim_);
  writer.put_string(prefix + "text_identity", text_identity_);
  if (text_dim_ > 0) {
    auto t = text_.contiguous();
    writer.put_array<float>(prefix + "text", std::span<const float>(t.data_ptr<float>(), static_cast<size_t>(t.numel())));
  }
  space_.save(writer, prefix + "item_space/");
}

void ItemContent::load(const core::ArtifactReader& reader, const std::string& prefix, int32_t num_items) {
  auto bad = [&](const std::string& what) {
    FEWREC_THROW(kCorrupt, "artifact {}: model `{}`: {}", reader.origin(), model_, what);
  };
  known_ = reader.get_array<uint8_t>(prefix + "known", static_cast<size_t>(num_items));
  if (std::none_of(known_.begin(), known_.end(), [](uint8_t k) { return k != 0; })) bad("no trained item");
  bags_.offsets = reader.get_array<int64_t>(prefix + "item_bag_offsets", static_cast<size_t>(num_items) + 1);
  bags_.ids = reader.get_array<int64_t>(prefix + "item_bag_ids");
  space_ = hybrid::FeatureSpace::load(reader, prefix + "item_space/");
  const auto& off = bags_.offsets;
  if (off.front() != 0 || off.back() != static_cast<int64_t>(bags_.ids.size()) || !std::is_sorted(off.begin(), off.end()))
    bad("item feature offsets are inconsistent");
  for (int64_t id : bags_.ids)
    if (id < 0 || id >= space_.size()) bad("an item feature index is out of range");
  const auto td = reader.get_array<int64_t>(prefix + "text_dim");
  if (td.size() != 1 || td[0] < 0 || td[0] > (1 << 20)) bad("`text_dim` is not a valid dimension");
  text_dim_ = td[0];
  if ((text_dim_ > 0) != text_options_.enabled()) bad("the text vectors do not match the model's text options");
  text_identity_ = reader.get_string(prefix + "text_identity");
  text_ = at::Tensor();
  if (text_dim_ > 0) {
    auto t = reader.get_array<float>(prefix + "text", static_cast<size_t>(num_items) * static_cast<size_t>(text_dim_));
    for (float v : t)
      if (!std::isfinite(v)) bad("a text vector holds a non-finite value");
    text_ = at::from_blob(t.data(), {num_items, text_dim_}, at::kFloat).clone();
  }
}

Bags user_bags(const hybrid::FeatureSpace& space, const data::Catalogue& catalogue) {
  Bags bags;
  std::vector<int32_t> f;
  for (int32_t u = 0; u < catalogue.users.size(); ++u) {
    f.clear();
    space.encode_row(catalogue.user_features, u, f);
    bags.add(f);
  }
  return bags;
}

}  // namespace fewrec::models

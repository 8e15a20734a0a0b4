#include "factor_model.h"

#include <cmath>

namespace fewrec::models {

namespace {

inline float dot(const float* a, const float* b, int32_t n) {
  float s = 0.0f;
  for (int32_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

}  // namespace

void FactorModel::allocate(int32_t num_users, int32_t num_items) {
  FEWREC_CHECK(dim_ > 0, kInvalidArgument, "model `{}`: factors must be positive, got {}", name(), dim_);
  num_users_ = num_users;
  num_items_ = num_items;
  user_factors_.assign(static_cast<size_t>(num_users) * dim_, 0.0f);
  item_factors_.assign(static_cast<size_t>(num_items) * dim_, 0.0f);
  item_bias_.assign(use_bias_ ? static_cast<size_t>(num_items) : 0, 0.0f);
  item_vectors_.clear();
}

std::span<const float> FactorModel::user_factors(UserIndex user) const {
  FEWREC_CHECK(user >= 0 && user < num_users_, kInvalidArgument,
               "model `{}`: user index {} outside the {} training users", name(), user, num_users_);
  return {user_factors_.data() + static_cast<size_t>(user) * dim_, static_cast<size_t>(dim_)};
}

std::span<const float> FactorModel::item_factors(ItemIndex item) const {
  FEWREC_CHECK(item >= 0 && item < num_items_, kInvalidArgument,
               "model `{}`: item index {} outside the {} items", name(), item, num_items_);
  return {item_factors_.data() + static_cast<size_t>(item) * dim_, static_cast<size_t>(dim_)};
}

std::unique_ptr<UserState> FactorModel::make_state(std::vector<float> vector,
                                                   const data::UserContext& context) const {
  FEWREC_ASSERT(vector.size() == static_cast<size_t>(dim_));
  auto state = std::make_unique<FactorState>();
  state->seen = history_item_set(context, num_items_, name());
  state->vector = std::move(vector);
  return state;
}

const std::vector<float>& FactorModel::state_vector(const UserState& state) const {
  const auto* s = dynamic_cast<const FactorState*>(&state);
  FEWREC_CHECK(s != nullptr && s->vector.size() == static_cast<size_t>(dim_), kInvalidArgument,
               "model `{}`: the user state was not made by this model's adapt()", name());
  return s->vector;
}

void FactorModel::score(const UserState& state, std::span<const ItemIndex> items,
                        std::span<float> out) const {
  check_score_buffers(name(), items.size(), out.size());
  const auto& u = state_vector(state);
  for (size_t i = 0; i < items.size(); ++i) {
    const ItemIndex it = items[i];
    if (it < 0 || it >= num_items_) throw_item_out_of_range(name(), it, num_items_);
    float s = dot(u.data(), item_factors_.data() + static_cast<size_t>(it) * dim_, dim_);
    if (use_bias_) s += item_bias_[static_cast<size_t>(it)];
    out[i] = s;
  }
}

void FactorModel::score_all(const UserState& state, std::span<float> out) const {
  const auto& u = state_vector(state);
  FEWREC_CHECK(out.size() == static_cast<size_t>(num_items_), kInvalidArgument,
               "model `{}`: score_all needs an output of {} scores (one per item), got {}", name(),
               num_items_, out.size());
  const float* f = item_factors_.data();
  for (int32_t i = 0; i < num_items_; ++i, f += dim_) {
    float s = dot(u.data(), f, dim_);
    if (use_bias_) s += item_bias_[static_cast<size_t>(i)];
    out[static_cast<size_t>(i)] = s;
  }
}

void FactorModel::refresh_item_vectors() {
  if (!use_bias_) {
    item_vectors_.clear();
    return;
  }
  const int32_t vd = dim_ + 1;
  item_vectors_.assign(static_cast<size_t>(num_items_) * vd, 0.0f);
  for (int32_t i = 0; i < num_items_; ++i) {
    std::copy_n(item_factors_.data() + static_cast<size_t>(i) * dim_, dim_,
                item_vectors_.data() + static_cast<size_t>(i) * vd);
    item_vectors_[static_cast<size_t>(i) * vd + dim_] = item_bias_[static_cast<size_t>(i)];
  }
}

std::span<const float> FactorModel::item_vectors() const {
  if (!use_bias_) return item_factors_;
  return item_vectors_;
}

std::vector<float> FactorModel::user_vector(const UserState& state) const {
  std::vector<float> v = state_vector(state);
  if (use_bias_) v.push_back(1.0f);
  return v;
}

void FactorModel::save_factors(core::ArtifactWriter& writer, const std::string& prefix) const {
  std::vector<int64_t> shape{num_users_, num_items_, dim_, use_bias_ ? 1 : 0};
  writer.put_array<int64_t>(prefix + "shape", shape);
  writer.put_array<float>(prefix + "user_factors", user_factors_);
  writer.put_array<float>(prefix + "item_factors", item_factors_);
  if (use_bias_) writer.put_array<float>(prefix + "item_bias", item_bias_);
}

void FactorModel::load_factors(const core::ArtifactReader& reader, const std::string& prefix) {
  const std::string& origin = reader.origin();
  auto shape = reader.get_array<int64_t>(prefix + "shape", 4);
  if (shape[0] < 0 || shape[0] > INT32_MAX || shape[1] < 0 || shape[1] > INT32_MAX || shape[2] != dim_ ||
      shape[3] != (use_bias_ ? 1 : 0))
    FEWREC_THROW(kCorrupt,
                 "artifact {}: section `{}shape` = [{}, {}, {}, {}] does not match the model ({} factors, bias {})",
                 origin, prefix, shape[0], shape[1], shape[2], shape[3], dim_, use_bias_);
  num_users_ = static_cast<int32_t>(shape[0]);
  num_items_ = static_cast<int32_t>(shape[1]);
  user_factors_ = reader.get_array<float>(prefix + "user_factors", static_cast<size_t>(num_users_) * dim_);
  item_factors_ = reader.get_array<float>(prefix + "item_factors", static_cast<size_t>(num_items_) * dim_);
  if (use_bias_) item_bias_ = reader.get_array<float>(prefix + "item_bias", static_cast<size_t>(num_items_));
  for (const auto* v : {&user_factors_, &item_factors_, &item_bias_})
    for (float x : *v)
      if (!std::isfinite(x))
        FEWREC_THROW(kCorrupt, "artifact {}: factor sections under `{}` hold a non-finite value", origin, prefix);
  refresh_item_vectors();
}

}  // namespace fewrec::models

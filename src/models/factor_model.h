// FactorModel: shared base of factorisation models (ALS, BPR, hybrid).
//
// score(u, i) = dot(user_vector(u), item_factors[i]) (+ item_bias[i] when the
// model has biases). Item factors are [num_items x dim] row-major float32.
// For retrieval, vector_dim() / item_vectors() expose the item factors with
// the bias appended as one extra column (user vectors get a constant 1 there),
// so a plain inner-product index reproduces score() exactly.
//
// Subclasses implement fit() and adapt() (fold-in); the base provides scoring,
// the retrieval vectors and save / load of the factor matrices with checks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common.h"
#include "fewrec/core/artifact.h"
#include "fewrec/models/model.h"

namespace fewrec::models {

class FactorState final : public UserState {
 public:
  std::vector<float> vector;  // size dim (no bias column)
};

class FactorModel : public Model {
 public:
  void score(const UserState& state, std::span<const ItemIndex> items,
             std::span<float> out) const override;
  void score_all(const UserState& state, std::span<float> out) const override;
  int32_t num_items() const override { return num_items_; }

  int32_t vector_dim() const override { return dim_ + (use_bias_ ? 1 : 0); }
  std::span<const float> item_vectors() const override;
  std::vector<float> user_vector(const UserState& state) const override;

  int32_t dim() const { return dim_; }
  int32_t num_users() const { return num_users_; }
  // Trained vector of a known user (size dim).
  std::span<const float> user_factors(UserIndex user) const;
  std::span<const float> item_factors(ItemIndex item) const;
  const std::vector<float>& item_factor_matrix() const { return item_factors_; }
  const std::vector<float>& user_factor_matrix() const { return user_factors_; }
  const std::vector<float>& item_bias() const { return item_bias_; }

 protected:
  FactorModel(ModelSpec spec, int32_t dim, bool use_bias)
      : Model(std::move(spec)), dim_(dim), use_bias_(use_bias) {}

  // Sizes the matrices (zeros) for a catalogue.
  void allocate(int32_t num_users, int32_t num_items);
  // A state holding `vector` (size dim) and the context's seen items.
  std::unique_ptr<UserState> make_state(std::vector<float> vector,
                                        const data::UserContext& context) const;
  // The state's vector; kInvalidArgument when the state is not a FactorState
  // of this dimension.
  const std::vector<float>& state_vector(const UserState& state) const;
  // Rebuilds the retrieval matrix after the factors changed (call at the end
  // of fit / load / add_items).
  void refresh_item_vectors();

  // Sections "<prefix>user_factors", "item_factors", "item_bias" (if any)
  // plus "shape" = [num_users, num_items, dim, use_bias].
  void save_factors(core::ArtifactWriter& writer, const std::string& prefix) const;
  void load_factors(const core::ArtifactReader& reader, const std::string& prefix);

  int32_t dim_;
  bool use_bias_;
  int32_t num_users_ = 0;
  int32_t num_items_ = 0;
  std::vector<float> user_factors_;  // [num_users x dim]
  std::vector<float> item_factors_;  // [num_items x dim]
  std::vector<float> item_bias_;     // [num_items] when use_bias_
  std::vector<float> item_vectors_;  // [num_items x vector_dim()] retrieval copy (bias appended)
};

}  // namespace fewrec::models

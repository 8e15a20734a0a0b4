// Per-row lists of feature indices (CSR) and small LibTorch helpers shared
// by the LibTorch models that embed item / user features (two_tower, melu).
// Internal to the models layer.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <span>
#include <vector>

namespace fewrec::models {

// Lists of feature indices per row, CSR.
struct Bags {
  std::vector<int64_t> offsets{0};
  std::vector<int64_t> ids;
  void add(const std::vector<int32_t>& f) {
    ids.insert(ids.end(), f.begin(), f.end());
    offsets.push_back(static_cast<int64_t>(ids.size()));
  }
  int64_t rows() const { return static_cast<int64_t>(offsets.size()) - 1; }
  // Flat ids and start offsets of rows `rows` (for EmbeddingBag).
  void gather(std::span<const int64_t> rows, std::vector<int64_t>& flat, std::vector<int64_t>& starts) const {
    flat.clear();
    starts.clear();
    for (int64_t r : rows) {
      starts.push_back(static_cast<int64_t>(flat.size()));
      if (r >= 0 && r < this->rows())
        flat.insert(flat.end(), ids.begin() + offsets[static_cast<size_t>(r)],
                    ids.begin() + offsets[static_cast<size_t>(r) + 1]);
    }
  }
};

inline at::Tensor long_tensor(const std::vector<int64_t>& v) {
  return at::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())}, at::kLong).clone();
}


}  // namespace fewrec::models

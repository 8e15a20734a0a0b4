// Top-k retrieval over item vectors by inner product: an exact index
// (blocked dot products, partial sort, queries in parallel) and an HNSW
// index (hnswlib, inner-product space, ef tunable), with the recall of the
// approximate index against the exact one.
//
// Vectors are [n x dim] row-major float32, row i = item i. Scores are inner
// products; results are best first, ties broken by the lower item index
// (exact). Excluded items (a sorted list) never appear.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace fewrec::retrieval {

using Hit = std::pair<int32_t, float>;  // item, score

class ExactIndex {
 public:
  // Copies the vectors. kInvalidArgument when dim < 1 or vectors.size() is
  // not a multiple of dim.
  //
  // On CPUs with AVX2 / F16C, large indexes also keep a half-precision copy:
  // a search screens rows with it (half the memory traffic) and rescores in
  // float32 every row whose score could reach the top k, using a bound on the
  // rounding error. Results are the float32 results, bit for bit.
  // `half_screening` false: float32 only.
  ExactIndex(std::span<const float> vectors, int32_t dim, bool half_screening = true);

  int32_t size() const { return n_; }
  bool half_screening() const { return !half_.empty(); }
  int32_t dim() const { return dim_; }
  // kInvalidArgument when query.size() != dim or k < 1; `exclude` sorted.
  std::vector<Hit> search(std::span<const float> query, int k, std::span<const int32_t> exclude = {}) const;
  // One result list per query row ([m x dim]); `threads` 0 = all cores.
  std::vector<std::vector<Hit>> search_batch(std::span<const float> queries, int k, int threads = 0) const;

 private:
  std::vector<Hit> search_half(std::span<const float> query, int k, std::span<const int32_t> exclude) const;
  int32_t n_ = 0, dim_ = 0;
  std::vector<float> vectors_;
  // Half-precision screening copy (empty: not used) and, per block of rows,
  // the largest ||x - half(x)|| and the largest ||x||.
  std::vector<uint16_t> half_;
  std::vector<float> block_error_, block_norm_;
};

struct HnswOptions {
  int m = 16;                  // graph degree
  int ef_construction = 200;   // build-time beam width
  int ef = 64;                 // search beam width (at least k is used)
  uint64_t seed = 42;
  int threads = 0;             // build threads (0 = all cores)
};

class HnswIndex {
 public:
  // Builds the graph over the vectors (inner product). kInvalidArgument on
  // bad shapes or options.
  HnswIndex(std::span<const float> vectors, int32_t dim, const HnswOptions& options = {});
  ~HnswIndex();
  HnswIndex(HnswIndex&&) noexcept;
  HnswIndex& operator=(HnswIndex&&) noexcept;

  int32_t size() const;
  int32_t dim() const;
  // Not to be called while searches run.
  void set_ef(int ef);
  int ef() const;
  // Approximate top-k; excluded items are skipped (the search asks for k +
  // |exclude| candidates). Thread-safe.
  std::vector<Hit> search(std::span<const float> query, int k, std::span<const int32_t> exclude = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Mean over the query rows of |approx top-k ∩ exact top-k| / k.
double recall_at_k(const ExactIndex& exact, const HnswIndex& approx, std::span<const float> queries, int k,
                   int threads = 0);

}  // namespace fewrec::retrieval

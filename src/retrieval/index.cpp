#include "fewrec/retrieval/index.h"

#include <Eigen/Core>
#include <hnswlib/hnswlib.h>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "fewrec/core/error.h"
#include "fewrec/core/threads.h"

namespace fewrec::retrieval {

namespace {

int32_t rows_of(std::span<const float> vectors, int32_t dim, const char* what) {
  FEWREC_CHECK(dim >= 1, kInvalidArgument, "{}: dimension must be at least 1, got {}", what, dim);
  FEWREC_CHECK(vectors.size() % static_cast<size_t>(dim) == 0, kInvalidArgument,
               "{}: {} values are not a whole number of vectors of dimension {}", what, vectors.size(), dim);
  const size_t n = vectors.size() / static_cast<size_t>(dim);
  FEWREC_CHECK(n <= static_cast<size_t>(INT32_MAX), kInvalidArgument, "{}: {} vectors are too many", what, n);
  return static_cast<int32_t>(n);
}

void check_query(std::span<const float> query, int32_t dim, int k, const char* what) {
  FEWREC_CHECK(query.size() == static_cast<size_t>(dim), kInvalidArgument,
               "{}: the query has {} values, the index dimension is {}", what, query.size(), dim);
  FEWREC_CHECK(k >= 1, kInvalidArgument, "{}: k must be at least 1, got {}", what, k);
}

bool better(const Hit& a, const Hit& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); }

bool excluded(std::span<const int32_t> exclude, int32_t item) {
  return !exclude.empty() && std::binary_search(exclude.begin(), exclude.end(), item);
}

// out[i] = dot(rows[i], q) for n rows of dim floats. The AVX2 / FMA kernel
// is chosen at run time when the CPU has it (about 2x Eigen's SSE code);
// results may differ from the portable path in the last bits.
// One row's dot product (the tail of a block).
__attribute__((target("avx2,fma"))) float dot_avx2(const float* r, const float* q, int32_t dim) {
  __m256 a0 = _mm256_setzero_ps();
  int32_t j = 0;
  for (; j + 8 <= dim; j += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r + j), _mm256_loadu_ps(q + j), a0);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  float sum = _mm_cvtss_f32(h);
  for (; j < dim; ++j) sum += r[j] * q[j];
  return sum;
}

// The eight horizontal sums of acc[0..7], as one vector: an hadd tree whose
// lanes end up as [s0 s1 s2 s3 | s4 s5 s6 s7] halves (low / high 128 bits
// of each accumulator) to combine.
__attribute__((target("avx2"))) inline __m256 sum8(const __m256* acc) {
  const __m256 h01 = _mm256_hadd_ps(acc[0], acc[1]), h23 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 h45 = _mm256_hadd_ps(acc[4], acc[5]), h67 = _mm256_hadd_ps(acc[6], acc[7]);
  const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
  const __m256 lo = _mm256_permute2f128_ps(h0123, h4567, 0x20);
  const __m256 hi = _mm256_permute2f128_ps(h0123, h4567, 0x31);
  return _mm256_add_ps(lo, hi);
}

// Eight rows at a time: eight independent accumulators (no dependency
// chain stalls), then one transposing reduction gives the eight sums.
__attribute__((target("avx2,fma"))) void block_scores_avx2(const float* rows, int32_t n, int32_t dim, const float* q,
                                                            float* out) {
  const auto d = static_cast<size_t>(dim);
  int32_t i = 0;
  if (dim % 8 == 0) {
    for (; i + 8 <= n; i += 8) {
      const float* r = rows + static_cast<size_t>(i) * d;
      __m256 acc[8];
      for (int t = 0; t < 8; ++t) acc[t] = _mm256_setzero_ps();
      for (int32_t j = 0; j < dim; j += 8) {
        const __m256 qv = _mm256_loadu_ps(q + j);
        for (int t = 0; t < 8; ++t) acc[t] = _mm256_fmadd_ps(_mm256_loadu_ps(r + t * d + j), qv, acc[t]);
      }
      _mm256_storeu_ps(out + i, sum8(acc));
    }
  }
  for (; i < n; ++i) out[i] = dot_avx2(rows + static_cast<size_t>(i) * d, q, dim);
}

// Positions i < n with scores[i] >= worst, ascending; returns how many.
__attribute__((target("avx2"))) int32_t candidates_avx2(const float* scores, int32_t n, float worst, int32_t* out) {
  int32_t c = 0, i = 0;
  const __m256 w = _mm256_set1_ps(worst);
  for (; i + 8 <= n; i += 8) {
    auto mask = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(scores + i), w, _CMP_GE_OQ)));
    while (mask != 0) {
      out[c++] = i + __builtin_ctz(mask);
      mask &= mask - 1;
    }
  }
  for (; i < n; ++i)
    if (scores[i] >= worst) out[c++] = i;
  return c;
}

int32_t candidates(const float* scores, int32_t n, float worst, int32_t* out) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return candidates_avx2(scores, n, worst, out);
  int32_t c = 0;
  for (int32_t i = 0; i < n; ++i)
    if (scores[i] >= worst) out[c++] = i;
  return c;
}

// The 8-row kernel over half-precision rows (converted with F16C).
__attribute__((target("avx2,fma,f16c"))) void block_scores_half(const uint16_t* rows, int32_t n, int32_t dim,
                                                                const float* q, float* out) {
  const auto d = static_cast<size_t>(dim);
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint16_t* r = rows + static_cast<size_t>(i) * d;
    __m256 acc[8];
    for (int t = 0; t < 8; ++t) acc[t] = _mm256_setzero_ps();
    for (int32_t j = 0; j < dim; j += 8) {
      const __m256 qv = _mm256_loadu_ps(q + j);
      for (int t = 0; t < 8; ++t) {
        const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r + t * d + j)));
        acc[t] = _mm256_fmadd_ps(x, qv, acc[t]);
      }
    }
    _mm256_storeu_ps(out + i, sum8(acc));
  }
  for (; i < n; ++i) {
    const uint16_t* r = rows + static_cast<size_t>(i) * d;
    __m256 a = _mm256_setzero_ps();
    for (int32_t j = 0; j < dim; j += 8)
      a = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r + j))),
                          _mm256_loadu_ps(q + j), a);
    alignas(32) float l[8];
    _mm256_store_ps(l, a);
    out[i] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
}

// Rounds n floats to half precision (nearest even) and back.
__attribute__((target("avx2,f16c"))) void to_half(const float* x, size_t n, uint16_t* h, float* back) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i v = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), v);
    _mm256_storeu_ps(back + i, _mm256_cvtph_ps(v));
  }
  for (; i < n; ++i) {
    h[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
    back[i] = _cvtsh_ss(h[i]);
  }
}

bool have_avx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2;
}

void block_scores(const float* rows, int32_t n, int32_t dim, const float* q, float* out) {
  const bool avx2 = have_avx2();
  if (avx2) {
    block_scores_avx2(rows, n, dim, q, out);
    return;
  }
  using Rows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const Rows> block(rows, n, dim);
  const Eigen::Map<const Eigen::VectorXf> qv(q, dim);
  Eigen::Map<Eigen::VectorXf>(out, n).noalias() = block * qv;
}

// The best k hits seen so far: a min-heap with the worst on top, and the
// score a new hit must reach (-inf until k hits are in).
struct TopK {
  explicit TopK(int k) : k(static_cast<size_t>(k)) { heap.reserve(this->k + 1); }
  static bool worse_on_top(const Hit& a, const Hit& b) { return better(a, b); }
  void push(const Hit& h) {
    if (heap.size() < k) {
      heap.push_back(h);
      std::push_heap(heap.begin(), heap.end(), worse_on_top);
      if (heap.size() == k) worst = heap.front().second;
    } else if (better(h, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), worse_on_top);
      heap.back() = h;
      std::push_heap(heap.begin(), heap.end(), worse_on_top);
      worst = heap.front().second;
    }
  }
  std::vector<Hit> sorted() && {
    std::sort(heap.begin(), heap.end(), better);
    return std::move(heap);
  }
  size_t k;
  std::vector<Hit> heap;
  float worst = -std::numeric_limits<float>::infinity();
};

}  // namespace

constexpr int32_t kBlock = 256;  // rows scored at a time

ExactIndex::ExactIndex(std::span<const float> vectors, int32_t dim, bool half_screening)
    : n_(rows_of(vectors, dim, "exact index")), dim_(dim), vectors_(vectors.begin(), vectors.end()) {
  if (!half_screening) return;
  // Worth it once the float rows outgrow the caches close to a core; needs
  // whole 8-float groups and values half precision can hold.
  static const bool f16c = have_avx2() && __builtin_cpu_supports("f16c");
  if (!f16c || dim % 8 != 0 || vectors_.size() * sizeof(float) < (size_t{1} << 20)) return;
  for (float v : vectors_)
    if (!std::isfinite(v) || std::abs(v) > 60000.0f) return;
  const auto d = static_cast<size_t>(dim);
  half_.resize(vectors_.size());
  std::vector<float> back(d);
  const int32_t blocks = (n_ + kBlock - 1) / kBlock;
  block_error_.assign(static_cast<size_t>(blocks), 0.0f);
  block_norm_.assign(static_cast<size_t>(blocks), 0.0f);
  for (int32_t i = 0; i < n_; ++i) {
    const float* x = vectors_.data() + static_cast<size_t>(i) * d;
    to_half(x, d, half_.data() + static_cast<size_t>(i) * d, back.data());
    double err = 0, norm = 0;
    for (size_t j = 0; j < d; ++j) {
      err += (static_cast<double>(x[j]) - back[j]) * (static_cast<double>(x[j]) - back[j]);
      norm += static_cast<double>(x[j]) * x[j];
    }
    auto& e = block_error_[static_cast<size_t>(i / kBlock)];
    auto& m = block_norm_[static_cast<size_t>(i / kBlock)];
    e = std::max(e, static_cast<float>(std::sqrt(err)));
    m = std::max(m, static_cast<float>(std::sqrt(norm)));
  }
}

std::vector<Hit> ExactIndex::search(std::span<const float> query, int k, std::span<const int32_t> exclude) const {
  check_query(query, dim_, k, "exact index");
  if (!half_.empty()) return search_half(query, k, exclude);
  // Scores in blocks of rows (cache-friendly), a bounded min-heap of the best k.
  TopK top(k);
  float scores[kBlock];
  int32_t cand[kBlock];
  const size_t d = static_cast<size_t>(dim_);
  size_t next_ex = 0;  // walks the sorted exclusions alongside the rows
  for (int32_t b0 = 0; b0 < n_; b0 += kBlock) {
    const int32_t b1 = std::min(n_, b0 + kBlock);
    block_scores(vectors_.data() + static_cast<size_t>(b0) * d, b1 - b0, dim_, query.data(), scores);
    const int32_t nc = candidates(scores, b1 - b0, top.worst, cand);
    for (int32_t c = 0; c < nc; ++c) {
      const int32_t i = b0 + cand[c];
      const float sc = scores[cand[c]];
      if (sc < top.worst) continue;  // the bar rose inside this block
      while (next_ex < exclude.size() && exclude[next_ex] < i) ++next_ex;
      if (next_ex < exclude.size() && exclude[next_ex] == i) continue;
      top.push(Hit{i, sc});
    }
  }
  return std::move(top).sorted();
}

// Screens each block with the half-precision rows. With e the block's
// largest ||x - half(x)||, m its largest ||x|| and g a bound on the relative
// rounding of a float dot product of this length, |exact - screened| <=
// ||q|| (e + 2 g m); a row is rescored in float32 (by the same kernel and
// row grouping as search(), so scores are identical) unless its screened
// score is below the current k-th best by more than that.
std::vector<Hit> ExactIndex::search_half(std::span<const float> query, int k, std::span<const int32_t> exclude) const {
  TopK top(k);
  float approx[kBlock], group[8];
  int32_t cand[kBlock];
  int32_t group_start = -1;
  const size_t d = static_cast<size_t>(dim_);
  double qn = 0;
  for (float v : query) qn += static_cast<double>(v) * v;
  const float qnorm = static_cast<float>(std::sqrt(qn));
  const float gamma = 2.0f * static_cast<float>(dim_ + 8) * std::numeric_limits<float>::epsilon();
  size_t next_ex = 0;
  for (int32_t b0 = 0; b0 < n_; b0 += kBlock) {
    const int32_t b1 = std::min(n_, b0 + kBlock);
    const auto blk = static_cast<size_t>(b0 / kBlock);
    block_scores_half(half_.data() + static_cast<size_t>(b0) * d, b1 - b0, dim_, query.data(), approx);
    // Bound, padded by 1% and an absolute epsilon against its own rounding.
    const float slack = 1.01f * qnorm * (block_error_[blk] + 2.0f * gamma * block_norm_[blk]) + 1e-30f;
    const int32_t nc = candidates(approx, b1 - b0, top.worst - slack, cand);
    for (int32_t c = 0; c < nc; ++c) {
      const int32_t i = b0 + cand[c];
      if (approx[cand[c]] < top.worst - slack) continue;  // the bar rose inside this block
      while (next_ex < exclude.size() && exclude[next_ex] < i) ++next_ex;
      if (next_ex < exclude.size() && exclude[next_ex] == i) continue;
      // The float32 score, computed exactly as search() computes it.
      float sc;
      const int32_t g = i - (i - b0) % 8;
      if (g + 8 <= b1) {
        if (g != group_start) {
          block_scores(vectors_.data() + static_cast<size_t>(g) * d, 8, dim_, query.data(), group);
          group_start = g;
        }
        sc = group[i - g];
      } else {
        block_scores(vectors_.data() + static_cast<size_t>(i) * d, 1, dim_, query.data(), &sc);
      }
      if (sc < top.worst) continue;
      top.push(Hit{i, sc});
    }
  }
  return std::move(top).sorted();
}

std::vector<std::vector<Hit>> ExactIndex::search_batch(std::span<const float> queries, int k, int threads) const {
  const int32_t m = rows_of(queries, dim_, "exact index: queries");
  std::vector<std::vector<Hit>> out(static_cast<size_t>(m));
  core::parallel_for(0, m, threads, [&](int64_t b, int64_t e, int) {
    for (int64_t q = b; q < e; ++q)
      out[static_cast<size_t>(q)] = search(queries.subspan(static_cast<size_t>(q) * dim_, dim_), k);
  }, 8);
  return out;
}

struct HnswIndex::Impl {
  Impl(int32_t dim, size_t n, const HnswOptions& o)
      : space(static_cast<size_t>(dim)),
        graph(&space, std::max<size_t>(1, n), static_cast<size_t>(o.m), static_cast<size_t>(o.ef_construction), o.seed) {}
  hnswlib::InnerProductSpace space;
  hnswlib::HierarchicalNSW<float> graph;
  int32_t n = 0, dim = 0;
  int ef = 64;
};

HnswIndex::HnswIndex(std::span<const float> vectors, int32_t dim, const HnswOptions& options) {
  const int32_t n = rows_of(vectors, dim, "hnsw index");
  FEWREC_CHECK(options.m >= 2 && options.m <= 1024, kInvalidArgument, "hnsw index: m must be in [2, 1024], got {}",
               options.m);
  FEWREC_CHECK(options.ef_construction >= 1, kInvalidArgument, "hnsw index: ef_construction must be at least 1, got {}",
               options.ef_construction);
  FEWREC_CHECK(options.ef >= 1, kInvalidArgument, "hnsw index: ef must be at least 1, got {}", options.ef);
  impl_ = std::make_unique<Impl>(dim, static_cast<size_t>(n), options);
  impl_->n = n;
  impl_->dim = dim;
  impl_->ef = options.ef;
  impl_->graph.setEf(static_cast<size_t>(options.ef));
  if (n == 0) return;
  // The first point alone (the graph's entry), then the rest in parallel
  // (hnswlib locks per node).
  impl_->graph.addPoint(vectors.data(), 0);
  core::parallel_for(1, n, options.threads, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i)
      impl_->graph.addPoint(vectors.data() + static_cast<size_t>(i) * static_cast<size_t>(dim),
                            static_cast<hnswlib::labeltype>(i));
  }, 256);
}

HnswIndex::~HnswIndex() = default;
HnswIndex::HnswIndex(HnswIndex&&) noexcept = default;
HnswIndex& HnswIndex::operator=(HnswIndex&&) noexcept = default;

int32_t HnswIndex::size() const { return impl_->n; }
int32_t HnswIndex::dim() const { return impl_->dim; }
int HnswIndex::ef() const { return impl_->ef; }
void HnswIndex::set_ef(int ef) {
  FEWREC_CHECK(ef >= 1, kInvalidArgument, "hnsw index: ef must be at least 1, got {}", ef);
  impl_->ef = ef;
  impl_->graph.setEf(static_cast<size_t>(ef));
}

std::vector<Hit> HnswIndex::search(std::span<const float> query, int k, std::span<const int32_t> exclude) const {
  check_query(query, impl_->dim, k, "hnsw index");
  if (impl_->n == 0) return {};
  const size_t want = std::min<size_t>(static_cast<size_t>(impl_->n), static_cast<size_t>(k) + exclude.size());
  // hnswlib searches with a beam of max(ef, want).
  auto found = impl_->graph.searchKnn(query.data(), want);
  std::vector<Hit> hits;
  hits.reserve(found.size());
  while (!found.empty()) {
    const auto [dist, label] = found.top();
    found.pop();
    const auto item = static_cast<int32_t>(label);
    if (!excluded(exclude, item)) hits.emplace_back(item, 1.0f - dist);  // inner-product space: dist = 1 - dot
  }
  std::sort(hits.begin(), hits.end(), better);
  if (hits.size() > static_cast<size_t>(k)) hits.resize(static_cast<size_t>(k));
  return hits;
}

double recall_at_k(const ExactIndex& exact, const HnswIndex& approx, std::span<const float> queries, int k,
                   int threads) {
  FEWREC_CHECK(exact.dim() == approx.dim(), kInvalidArgument,
               "recall: the exact index has dimension {}, the approximate one {}", exact.dim(), approx.dim());
  const int32_t m = rows_of(queries, exact.dim(), "recall: queries");
  if (m == 0) return 0.0;
  std::vector<double> per(static_cast<size_t>(m), 0.0);
  core::parallel_for(0, m, threads, [&](int64_t b, int64_t e, int) {
    for (int64_t q = b; q < e; ++q) {
      const auto query = queries.subspan(static_cast<size_t>(q) * exact.dim(), exact.dim());
      auto truth = exact.search(query, k);
      const auto got = approx.search(query, k);
      std::vector<int32_t> t, g;
      for (const auto& h : truth) t.push_back(h.first);
      for (const auto& h : got) g.push_back(h.first);
      std::sort(t.begin(), t.end());
      std::sort(g.begin(), g.end());
      std::vector<int32_t> both;
      std::set_intersection(t.begin(), t.end(), g.begin(), g.end(), std::back_inserter(both));
      per[static_cast<size_t>(q)] = t.empty() ? 1.0 : static_cast<double>(both.size()) / static_cast<double>(t.size());
    }
  }, 4);
  double sum = 0.0;
  for (double p : per) sum += p;
  return sum / static_cast<double>(m);
}

}  // namespace fewrec::retrieval

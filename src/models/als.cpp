// als: matrix factorisation for implicit feedback by alternating least
// squares (Hu, Koren & Volinsky 2008), solved with conjugate gradient like
// the `implicit` library's CPU ALS (Takács et al. 2011).
//
// Every (user, item) pair has a preference p_ui (1 when the user interacted
// with the item, else 0) and a confidence c_ui = 1 + alpha * r_ui, where r_ui
// is the number of interactions of the pair (or the sum of their values with
// use_values=true; 0 for unobserved pairs). The model minimises
//
//   sum over all (u, i) of c_ui (p_ui - x_u . y_i)^2 + regularization (|X|^2 + |Y|^2)
//
// by fixing the items and solving every user exactly or approximately, then
// the other way round. A user's normal equations are
//
//   (Y^T Y + regularization I + Y_u^T (C_u - I) Y_u) x_u = Y_u^T C_u 1,
//
// with Y^T Y computed once per half-iteration, so a user's solve touches only
// the user's items. solver=cg runs `cg_steps` conjugate-gradient steps
// warm-started from the previous vector (the matrix is never formed);
// solver=cholesky forms it and solves exactly (Eigen LLT).
//
// adapt() folds a context's history in: the same user solve (exact by
// default) against the fixed item factors, so a new user gets a vector from
// a few interactions and a known user's context reproduces their trained
// vector. Known users are folded in too rather than served their stored
// vector: the context is what counts (it may hold feedback newer than the
// training data), and on ml-100k both rank the same (NDCG@10 0.3201 vs
// 0.3200). An empty history gets the mean of the trained user vectors, which
// scores items much like popularity does.
//
// Note on `implicit`: its confidence is alpha * r_ui (no 1 +), so its
// alpha = a corresponds to alpha = a - 1 here for binary data; its
// regularization and ours are the same (unscaled) quantity.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "builtin.h"
#include "common.h"
#include "factor_model.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/threads.h"

// The hot loops are plain C++ written so the compiler vectorises them; on
// x86-64 Linux they are also compiled for AVX2 + FMA and picked at load time
// (function multi-versioning), so the binary still runs on any x86-64.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(FEWREC_NO_TARGET_CLONES)
#define FEWREC_ALS_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FEWREC_ALS_KERNEL
#endif

namespace fewrec::models {

namespace {

struct AlsOptions {
  int64_t factors = 64;
  // Defaults: the best pair of a grid over regularization 1..200 x alpha 1..19
  // on ml-100k (rating >= 4, random 80/20 split, seed 42): NDCG@10 0.320
  // (seeds 1-3: 0.335, 0.325, 0.331). Good pairs lie on a narrow ridge
  // regularization = 5 (1 + alpha) + 10 there; off it quality drops fast.
  double regularization = 35.0;
  double alpha = 4.0;
  int64_t iterations = 15;
  int64_t cg_steps = 3;
  std::string solver = "cg";
  bool use_values = false;
  double init_scale = 0.01;
  std::string fold_in = "cholesky";
  int64_t fold_in_cg_steps = 8;

  static AlsOptions read(DocumentedOptions& o) {
    AlsOptions p;
    p.factors = o.get_int("factors", p.factors, "dimension of the user and item vectors", 1, 4096);
    p.regularization = o.get_double(
        "regularization", p.regularization,
        "L2 weight on all user and item vectors, not scaled by the number of interactions (same as implicit's); "
        "35 with alpha 4 was best on ml-100k (NDCG@10 0.320, rating >= 4, random 80/20); retune the pair "
        "together (on ml-100k good pairs lie near regularization = 5 * (1 + alpha) + 10)",
        0.0);
    p.alpha = o.get_double("alpha", p.alpha,
                           "confidence of an observed pair is 1 + alpha * r (r = interaction count, or value sum "
                           "with use_values); implicit's alpha a is alpha = a - 1 here",
                           0.0);
    p.iterations = o.get_int("iterations", p.iterations, "alternating passes (users, then items)", 1, 100000);
    p.cg_steps = o.get_int("cg_steps", p.cg_steps,
                           "conjugate-gradient steps per user / item and pass, warm-started (solver=cg)", 1, 4096);
    p.solver = o.get_choice("solver", p.solver, {"cg", "cholesky"},
                            "cg: a few warm-started CG steps per solve (fast); cholesky: exact solves (same "
                            "quality at the default cg_steps; on ml-100k 5x slower at 64 factors, 9x at 128)");
    p.use_values = o.get_bool("use_values", p.use_values,
                              "r = sum of the interaction values (e.g. ratings) instead of the interaction count; "
                              "pairs whose sum is <= 0 are left out");
    p.init_scale = o.get_double("init_scale", p.init_scale,
                                "vectors start uniform in [0, init_scale) (seeded by train.seed)", 0.0);
    p.fold_in = o.get_choice("fold_in", p.fold_in, {"cholesky", "cg"},
                             "how adapt() computes a user vector from a history: exact solve, or "
                             "fold_in_cg_steps CG steps from zero");
    p.fold_in_cg_steps = o.get_int("fold_in_cg_steps", p.fold_in_cg_steps, "CG steps of fold_in=cg", 1, 4096);
    if (!(p.init_scale > 0.0))
      FEWREC_THROW(kInvalidArgument, "model `als`: option `init_scale` must be > 0, got {}", p.init_scale);
    return p;
  }
};

// One side of the confidence matrix in CSR: row -> (column, w = c - 1 =
// alpha * r), duplicates merged, columns increasing.
struct ConfidenceMatrix {
  std::vector<int64_t> offsets;  // rows + 1
  std::vector<int32_t> index;
  std::vector<float> weight;
  int64_t rows() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t nnz() const { return static_cast<int64_t>(index.size()); }
};

// Merges a list of (item, r) pairs in place: sorted by item, duplicates
// summed, pairs with r <= 0 (or not finite) dropped. Returns the new size.
size_t merge_pairs(std::pair<int32_t, float>* pairs, size_t n) {
  std::sort(pairs, pairs + n);  // by item, then value: a deterministic summation order
  size_t out = 0;
  for (size_t a = 0; a < n;) {
    size_t b = a;
    float r = 0.0f;
    for (; b < n && pairs[b].first == pairs[a].first; ++b) r += pairs[b].second;
    if (r > 0.0f && std::isfinite(r)) pairs[out++] = {pairs[a].first, r};
    a = b;
  }
  return out;
}

ConfidenceMatrix user_matrix(const data::Dataset& train, bool use_values, float alpha, int threads) {
  const int32_t users = train.num_users();
  const auto offsets = train.user_offsets();
  const auto items = train.item_column();
  const auto values = train.value_column();
  std::vector<std::pair<int32_t, float>> pairs(items.size());
  std::vector<int64_t> counts(static_cast<size_t>(users), 0);
  core::parallel_for(0, users, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t u = begin; u < end; ++u) {
      const auto lo = static_cast<size_t>(offsets[static_cast<size_t>(u)]);
      const auto hi = static_cast<size_t>(offsets[static_cast<size_t>(u) + 1]);
      for (size_t e = lo; e < hi; ++e) pairs[e] = {items[e], use_values ? values[e] : 1.0f};
      counts[static_cast<size_t>(u)] = static_cast<int64_t>(merge_pairs(pairs.data() + lo, hi - lo));
    }
  }, 256);
  ConfidenceMatrix m;
  m.offsets.assign(static_cast<size_t>(users) + 1, 0);
  for (size_t u = 0; u < static_cast<size_t>(users); ++u) m.offsets[u + 1] = m.offsets[u] + counts[u];
  m.index.resize(static_cast<size_t>(m.offsets.back()));
  m.weight.resize(static_cast<size_t>(m.offsets.back()));
  core::parallel_for(0, users, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t u = begin; u < end; ++u) {
      const auto from = static_cast<size_t>(offsets[static_cast<size_t>(u)]);
      const auto to = static_cast<size_t>(m.offsets[static_cast<size_t>(u)]);
      for (int64_t j = 0; j < counts[static_cast<size_t>(u)]; ++j) {
        m.index[to + static_cast<size_t>(j)] = pairs[from + static_cast<size_t>(j)].first;
        m.weight[to + static_cast<size_t>(j)] = alpha * pairs[from + static_cast<size_t>(j)].second;
      }
    }
  }, 256);
  return m;
}

ConfidenceMatrix transpose(const ConfidenceMatrix& m, int32_t columns) {
  ConfidenceMatrix t;
  t.offsets.assign(static_cast<size_t>(columns) + 1, 0);
  for (int32_t c : m.index) ++t.offsets[static_cast<size_t>(c) + 1];
  for (size_t c = 0; c < static_cast<size_t>(columns); ++c) t.offsets[c + 1] += t.offsets[c];
  t.index.resize(m.index.size());
  t.weight.resize(m.weight.size());
  std::vector<int64_t> fill(t.offsets.begin(), t.offsets.end() - 1);
  for (int64_t r = 0; r < m.rows(); ++r)
    for (int64_t e = m.offsets[static_cast<size_t>(r)]; e < m.offsets[static_cast<size_t>(r) + 1]; ++e) {
      const auto at = static_cast<size_t>(fill[static_cast<size_t>(m.index[static_cast<size_t>(e)])]++);
      t.index[at] = static_cast<int32_t>(r);
      t.weight[at] = m.weight[static_cast<size_t>(e)];
    }
  return t;
}

// ---- vector kernels ----
//
// Inlined into the multi-versioned loops below, by force: a helper that GCC
// leaves out of line is compiled for the baseline target only, and the AVX2
// clone then calls SSE code without FMA. (Compiling them for fixed dimensions
// 32 / 64 / 128 made them 1.2-2.5x slower: the fully unrolled loops spill
// registers.)
#define FEWREC_ALS_INLINE [[gnu::always_inline]] inline

// Eight-lane vectors (GCC / Clang vector extension; two SSE registers in the
// baseline build, one AVX register in the AVX2 clone). The helpers that take
// or return one are always inlined, so no call passes one by value; the
// pragma silences GCC's note that such a call's ABI would depend on AVX.
#pragma GCC diagnostic ignored "-Wpsabi"
using Lanes8 = float __attribute__((vector_size(32)));
using Lanes4 = float __attribute__((vector_size(16)));

FEWREC_ALS_INLINE Lanes8 load8(const float* p) {
  Lanes8 v;
  __builtin_memcpy(&v, p, sizeof(Lanes8));
  return v;
}

FEWREC_ALS_INLINE void store8(float* p, Lanes8 v) { __builtin_memcpy(p, &v, sizeof(Lanes8)); }

// Storage aligned to a cache line. The kernels load 32-byte vectors from rows
// of the factor matrices, the Gram matrix and the CG vectors; std::vector only
// guarantees 16-byte alignment, and then every other load straddles two cache
// lines, which costs about twice as much (the CG passes ran up to 1.4x slower).
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}  // NOLINT: implicit, as allocators are
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  friend bool operator==(const CacheLineAllocator&, const CacheLineAllocator&) { return true; }
};
using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

// Two sets of eight partial sums, reduced in a fixed order: vectorised
// without reassociation, so the result depends on neither alignment nor threads.
FEWREC_ALS_INLINE float dot(const float* a, const float* b, int n) {
  Lanes8 s0 = {}, s1 = {};
  int k = 0;
  for (; k + 16 <= n; k += 16) {
    s0 += load8(a + k) * load8(b + k);
    s1 += load8(a + k + 8) * load8(b + k + 8);
  }
  if (k + 8 <= n) {
    s0 += load8(a + k) * load8(b + k);
    k += 8;
  }
  s0 += s1;
  float sum = ((s0[0] + s0[4]) + (s0[2] + s0[6])) + ((s0[1] + s0[5]) + (s0[3] + s0[7]));
  for (; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

// The lane sums of four vectors at once, each added in the order dot() uses.
FEWREC_ALS_INLINE Lanes4 reduce4(Lanes8 a, Lanes8 b, Lanes8 c, Lanes8 d) {
  // [a0+a4, a1+a5, a2+a6, a3+a7, b0+b4, ..., b3+b7], the same for c, d
  const Lanes8 ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) +
                    __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
  const Lanes8 cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 8, 9, 10, 11) +
                    __builtin_shufflevector(c, d, 4, 5, 6, 7, 12, 13, 14, 15);
  // [(a0+a4)+(a2+a6), (a1+a5)+(a3+a7), the same for c, then b, then d]
  const Lanes8 q = __builtin_shufflevector(ab, cd, 0, 1, 8, 9, 4, 5, 12, 13) +
                   __builtin_shufflevector(ab, cd, 2, 3, 10, 11, 6, 7, 14, 15);
  return __builtin_shufflevector(q, q, 0, 4, 2, 6) + __builtin_shufflevector(q, q, 1, 5, 3, 7);
}

// {dot(y0, v, n), ..., dot(y3, v, n)}, bit for bit, as eight interleaved
// chains (one dot product alone is two chains of dependent adds and leaves
// the floating-point units idle), loading v once for the four. Meanwhile it
// prefetches rows f0..f3, one cache line of each per 16 floats of its own.
FEWREC_ALS_INLINE Lanes4 dot4(const float* y0, const float* y1, const float* y2, const float* y3, const float* v,
                              int n, const float* f0, const float* f1, const float* f2, const float* f3) {
  Lanes8 a0 = {}, a1 = {}, b0 = {}, b1 = {}, c0 = {}, c1 = {}, d0 = {}, d1 = {};
  int k = 0;
  for (; k + 16 <= n; k += 16) {
    __builtin_prefetch(f0 + k);
    __builtin_prefetch(f1 + k);
    __builtin_prefetch(f2 + k);
    __builtin_prefetch(f3 + k);
    const Lanes8 v0 = load8(v + k), v1 = load8(v + k + 8);
    a0 += load8(y0 + k) * v0;
    a1 += load8(y0 + k + 8) * v1;
    b0 += load8(y1 + k) * v0;
    b1 += load8(y1 + k + 8) * v1;
    c0 += load8(y2 + k) * v0;
    c1 += load8(y2 + k + 8) * v1;
    d0 += load8(y3 + k) * v0;
    d1 += load8(y3 + k + 8) * v1;
  }
  if (k + 8 <= n) {
    const Lanes8 v0 = load8(v + k);
    a0 += load8(y0 + k) * v0;
    b0 += load8(y1 + k) * v0;
    c0 += load8(y2 + k) * v0;
    d0 += load8(y3 + k) * v0;
    k += 8;
  }
  Lanes4 s = reduce4(a0 + a1, b0 + b1, c0 + c1, d0 + d1);
  if (k < n) {
    float s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    for (; k < n; ++k) {
      s0 += y0[k] * v[k];
      s1 += y1[k] * v[k];
      s2 += y2[k] * v[k];
      s3 += y3[k] * v[k];
    }
    s = Lanes4{s0, s1, s2, s3};
  }
  return s;
}

FEWREC_ALS_INLINE void axpy(float a, const float* __restrict x, float* __restrict y, int n) {
  for (int k = 0; k < n; ++k) y[k] += a * x[k];
}

// out += a[0] y0 + ... + a[3] y3, added row after row as four axpy() calls
// would, in one pass over out.
FEWREC_ALS_INLINE void axpy4(Lanes4 a, const float* y0, const float* y1, const float* y2, const float* y3,
                             float* __restrict out, int n) {
  const float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    Lanes8 o = load8(out + k);
    o += a0 * load8(y0 + k);
    o += a1 * load8(y1 + k);
    o += a2 * load8(y2 + k);
    o += a3 * load8(y3 + k);
    store8(out + k, o);
  }
  for (; k < n; ++k) {
    float o = out[k];
    o += a0 * y0[k];
    o += a1 * y1[k];
    o += a2 * y2[k];
    o += a3 * y3[k];
    out[k] = o;
  }
}

// out[i, i + 8 C) of out = G v for a symmetric k x k matrix G: the sum over
// j of v_j times row j of G (== column j), with C accumulators in registers.
template <int C>
FEWREC_ALS_INLINE void matvec_panel(const float* __restrict g, const float* __restrict v, float* __restrict out,
                                    int k, int i) {
  Lanes8 o[C] = {};
  const float* row = g + i;
  for (int j = 0; j < k; ++j, row += k) {
    const float vj = v[j];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) o[c] += vj * load8(row + 8 * c);
  }
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) store8(out + i + 8 * c, o[c]);
}

// out = G v for a symmetric k x k matrix, in panels of 64 outputs: eight
// independent chains of adds per panel, G read once, out written once.
FEWREC_ALS_INLINE void symmetric_matvec(const float* __restrict g, const float* __restrict v, float* __restrict out,
                                        int k) {
  int i = 0;
  for (; i + 64 <= k; i += 64) matvec_panel<8>(g, v, out, k, i);
  switch ((k - i) / 8) {
    case 7: matvec_panel<7>(g, v, out, k, i); break;
    case 6: matvec_panel<6>(g, v, out, k, i); break;
    case 5: matvec_panel<5>(g, v, out, k, i); break;
    case 4: matvec_panel<4>(g, v, out, k, i); break;
    case 3: matvec_panel<3>(g, v, out, k, i); break;
    case 2: matvec_panel<2>(g, v, out, k, i); break;
    case 1: matvec_panel<1>(g, v, out, k, i); break;
    default: break;
  }
  for (i += (k - i) / 8 * 8; i < k; ++i) {
    float o = 0.0f;
    for (int j = 0; j < k; ++j) o += v[j] * g[static_cast<size_t>(j) * k + i];
    out[i] = o;
  }
}

// Asks Linux to back a large factor matrix with 2 MB pages: solves read
// random rows of it, and with 4 kB pages nearly every row is a TLB miss.
// Best effort (no-op elsewhere, errors ignored).
void advise_huge_pages(float* data, size_t size) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t end = begin + size * sizeof(float);
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = end & ~(kHuge - 1);
  if (hi <= lo) return;
  void* start = reinterpret_cast<void*>(lo);
  if (::madvise(start, hi - lo, MADV_HUGEPAGE) != 0) return;
#if defined(MADV_COLLAPSE)
  ::madvise(start, hi - lo, MADV_COLLAPSE);  // the pages exist already: collapse them now
#endif
#else
  (void)data;
  (void)size;
#endif
}

// The per-row problem of one half-iteration: solve rows of `factors` against
// the fixed `other` factors.
struct HalfStep {
  const float* gram = nullptr;  // [k x k] other^T other + regularization I, symmetric
  const float* other = nullptr;
  const int64_t* offsets = nullptr;
  const int32_t* index = nullptr;
  const float* weight = nullptr;
  float* factors = nullptr;
  int k = 0;
  // When set, row_loss[row] receives the row's observed part of the loss
  // (see observed_loss) with its vector as it was *before* the solve: with
  // solver=cg it comes nearly free with the first pass over the row's pairs.
  double* row_loss = nullptr;
};

// The rows a solve reads are scattered over a factor matrix that may be
// larger than the caches: each block of four pairs prefetches the rows of
// the pairs `kPrefetchDistance` ahead.
constexpr int64_t kPrefetchDistance = 8;

// For each pair e in [lo, hi) of a row, with y_e its `other` vector:
// s = y_e . v, then out += coef(e, s) y_e (out == nullptr: s only). Four
// pairs at a time: their dot products are independent (dot4), and out is
// read and written once per four pairs.
template <class Coef>
FEWREC_ALS_INLINE void for_pairs(const HalfStep& h, int64_t lo, int64_t hi, const float* v, float* __restrict out,
                                 Coef&& coef) {
  const int k = h.k;
  const float* other = h.other;
  const int32_t* index = h.index;
  const auto row = [&](int64_t e) { return other + static_cast<size_t>(index[e]) * k; };
  const auto ahead = [&](int64_t e) { return row(std::min(e + kPrefetchDistance, hi - 1)); };
  int64_t e = lo;
  for (; e + 4 <= hi; e += 4) {
    const float *y0 = row(e), *y1 = row(e + 1), *y2 = row(e + 2), *y3 = row(e + 3);
    const Lanes4 s = dot4(y0, y1, y2, y3, v, k, ahead(e), ahead(e + 1), ahead(e + 2), ahead(e + 3));
    const Lanes4 a = {coef(e, s[0]), coef(e + 1, s[1]), coef(e + 2, s[2]), coef(e + 3, s[3])};
    if (out) axpy4(a, y0, y1, y2, y3, out, k);
  }
  for (; e < hi; ++e) {  // the last n % 4 pairs (prefetched by the blocks before)
    const float* y = row(e);
    const float a = coef(e, dot(y, v, k));
    if (out) axpy(a, y, out, k);
  }
}

// One observed pair's part of the loss: c (1 - s)^2 - s^2, s = x . y.
FEWREC_ALS_INLINE double pair_loss(float weight, float dot_xy) {
  const double s = dot_xy;
  const double c = 1.0 + static_cast<double>(weight);
  return c * (1.0 - s) * (1.0 - s) - s * s;
}

// Sum of pair_loss over the row's observed pairs: the observed part of the
// loss once sum_u x_u^T Y^T Y x_u is added.
FEWREC_ALS_INLINE double observed_loss(const HalfStep& h, int64_t row) {
  const float* x = h.factors + static_cast<size_t>(row) * h.k;
  double sum = 0.0;
  for_pairs(h, h.offsets[row], h.offsets[row + 1], x, nullptr, [&](int64_t e, float s) {
    sum += pair_loss(h.weight[e], s);
    return 0.0f;
  });
  return sum;
}

constexpr float kResidualTolerance = 1e-20f;  // as implicit's float CG

// `steps` CG steps on one row with interactions, warm-started from x. When
// `loss` is set, it receives observed_loss() of x as given (before the steps).
FEWREC_ALS_INLINE void cg_row(const HalfStep& h, int64_t lo, int64_t hi, int steps, float* __restrict x,
                              float* __restrict r, float* __restrict p, float* __restrict ap, double* loss) {
  const int k = h.k;
  const float* weight = h.weight;
  // r = b - A x = sum_i c_i y_i - G x - sum_i w_i (y_i . x) y_i
  symmetric_matvec(h.gram, x, r, k);
  for (int j = 0; j < k; ++j) r[j] = -r[j];
  double sum = 0.0;
  for_pairs(h, lo, hi, x, r, [&](int64_t e, float s) {
    const float w = weight[e];
    if (loss) sum += pair_loss(w, s);
    return 1.0f + w - w * s;
  });
  if (loss) *loss = sum;
  std::copy_n(r, k, p);
  float rs_old = dot(r, r, k);
  if (rs_old < kResidualTolerance) return;
  for (int it = 0; it < steps; ++it) {
    // ap = A p without forming A
    symmetric_matvec(h.gram, p, ap, k);
    for_pairs(h, lo, hi, p, ap, [&](int64_t e, float s) { return weight[e] * s; });
    const float pap = dot(p, ap, k);
    if (!(pap > 0.0f)) return;  // only with regularization 0 and a singular system
    const float step = rs_old / pap;
    axpy(step, p, x, k);
    axpy(-step, ap, r, k);
    const float rs_new = dot(r, r, k);
    if (rs_new < kResidualTolerance) return;
    const float beta = rs_new / rs_old;
    for (int j = 0; j < k; ++j) p[j] = r[j] + beta * p[j];
    rs_old = rs_new;
  }
}

// Conjugate gradient on rows [begin, end), warm-started from their current
// vectors; `scratch` holds 3 * k floats. Rows without interactions get zero.
FEWREC_ALS_KERNEL
void cg_rows(const HalfStep& h, int64_t begin, int64_t end, int steps, float* scratch) {
  const int k = h.k;
  for (int64_t row = begin; row < end; ++row) {
    float* x = h.factors + static_cast<size_t>(row) * k;
    double* loss = h.row_loss ? h.row_loss + row : nullptr;
    const int64_t lo = h.offsets[row], hi = h.offsets[row + 1];
    if (lo == hi) {
      std::fill_n(x, k, 0.0f);
      if (loss) *loss = 0.0;
    } else {
      cg_row(h, lo, hi, steps, x, scratch, scratch + k, scratch + 2 * k, loss);
    }
  }
}

// observed_loss of rows [begin, end) into h.row_loss.
FEWREC_ALS_KERNEL
void observed_loss_rows(const HalfStep& h, int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) h.row_loss[row] = observed_loss(h, row);
}

using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;
using VectorF = Eigen::Matrix<float, Eigen::Dynamic, 1>;

// Exact solve of one row's normal equations (also used by fold-in).
class ExactSolver {
 public:
  explicit ExactSolver(int k) : a_(k, k), block_(k, kBlock), b_(k), llt_(k) {}

  // x = (G + sum w_i y_i y_i^T)^-1 sum (1 + w_i) y_i over the n pairs.
  void solve(const MatrixF& gram, const float* other, const int32_t* index, const float* weight, int64_t n,
             float* x) {
    const auto k = gram.rows();
    a_ = gram;
    b_.setZero();
    for (int64_t start = 0; start < n; start += kBlock) {
      const int64_t m = std::min<int64_t>(kBlock, n - start);
      for (int64_t j = 0; j < m; ++j) {
        Eigen::Map<const VectorF> y(other + static_cast<size_t>(index[start + j]) * k, k);
        const float w = weight[start + j];
        block_.col(j) = std::sqrt(w) * y;
        b_ += (1.0f + w) * y;
      }
      a_.selfadjointView<Eigen::Lower>().rankUpdate(block_.leftCols(m));
    }
    Eigen::Map<VectorF> out(x, k);
    llt_.compute(a_);
    if (llt_.info() == Eigen::Success) {
      out = llt_.solve(b_);
    } else {  // singular (regularization 0): least-squares-ish fallback
      out = a_.selfadjointView<Eigen::Lower>().ldlt().solve(b_);
    }
  }

 private:
  static constexpr int64_t kBlock = 128;
  MatrixF a_;
  MatrixF block_;
  VectorF b_;
  Eigen::LLT<MatrixF, Eigen::Lower> llt_;
};

// Adds the lower triangle (j <= i) of rows^T rows, for m rows of a row-major
// [m x k] matrix, to g (row-major k x k; entries above the diagonal may be
// touched too). Tiles of 4 x 16 entries held in registers, over chunks of
// rows that stay in the L1 cache; each entry sums its rows in order.
FEWREC_ALS_KERNEL
void add_lower_gram(const float* rows, int64_t m, int k, float* g) {
  constexpr int64_t kChunk = 64;
  const auto entry = [&](int i, int j, int64_t r0, int64_t r1) {
    float sum = g[static_cast<size_t>(i) * k + j];
    for (int64_t r = r0; r < r1; ++r) sum += rows[r * k + i] * rows[r * k + j];
    g[static_cast<size_t>(i) * k + j] = sum;
  };
  for (int64_t r0 = 0; r0 < m; r0 += kChunk) {
    const int64_t r1 = std::min(m, r0 + kChunk);
    int i = 0;
    for (; i + 4 <= k; i += 4) {
      int j = 0;
      for (; j + 16 <= k && j <= i + 3; j += 16) {
        float* out = g + static_cast<size_t>(i) * k + j;
        Lanes8 a0 = load8(out), a1 = load8(out + 8), b0 = load8(out + k), b1 = load8(out + k + 8);
        Lanes8 c0 = load8(out + 2 * k), c1 = load8(out + 2 * k + 8), d0 = load8(out + 3 * k),
               d1 = load8(out + 3 * k + 8);
        for (int64_t r = r0; r < r1; ++r) {
          const float* y = rows + r * k;
          const Lanes8 y0 = load8(y + j), y1 = load8(y + j + 8);
          a0 += y[i] * y0;
          a1 += y[i] * y1;
          b0 += y[i + 1] * y0;
          b1 += y[i + 1] * y1;
          c0 += y[i + 2] * y0;
          c1 += y[i + 2] * y1;
          d0 += y[i + 3] * y0;
          d1 += y[i + 3] * y1;
        }
        store8(out, a0);
        store8(out + 8, a1);
        store8(out + k, b0);
        store8(out + k + 8, b1);
        store8(out + 2 * k, c0);
        store8(out + 2 * k + 8, c1);
        store8(out + 3 * k, d0);
        store8(out + 3 * k + 8, d1);
      }
      for (int q = 0; q < 4; ++q)
        for (int jj = j; jj <= i + q; ++jj) entry(i + q, jj, r0, r1);
    }
    for (; i < k; ++i)
      for (int j = 0; j <= i; ++j) entry(i, j, r0, r1);
  }
}

// rows^T rows of a row-major [n x k] matrix, in blocks of rows (their size
// depends on n only) summed in block order: the result does not depend on the
// number of threads. At most 256 partial k x k sums are held.
MatrixF gram_matrix(const float* rows, int64_t n, int k, int threads) {
  const int64_t block_rows = std::max<int64_t>(4096, (n + 255) / 256);
  const int64_t blocks = (n + block_rows - 1) / block_rows;
  std::vector<AlignedFloats> partial(static_cast<size_t>(blocks));
  core::parallel_for(0, blocks, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t lo = b * block_rows, m = std::min(block_rows, n - lo);
      AlignedFloats& g = partial[static_cast<size_t>(b)];
      g.assign(static_cast<size_t>(k) * k, 0.0f);
      add_lower_gram(rows + static_cast<size_t>(lo) * k, m, k, g.data());
    }
  }, 1);
  MatrixF g = MatrixF::Zero(k, k);
  for (const auto& p : partial)
    for (int i = 0; i < k; ++i)
      for (int j = 0; j <= i; ++j) g(i, j) += p[static_cast<size_t>(i) * k + j];
  g.triangularView<Eigen::StrictlyUpper>() = g.transpose();
  return g;
}

class AlsModel final : public FactorModel {
 public:
  AlsModel(ModelSpec spec, AlsOptions options)
      : FactorModel(std::move(spec), static_cast<int32_t>(options.factors), /*use_bias=*/false),
        options_(std::move(options)) {}

  void fit(const data::Dataset& train, const TrainOptions& train_options, core::Monitor& monitor) override {
    const int threads = core::resolve_threads(train_options.threads);
    const int k = dim_;
    const auto alpha = static_cast<float>(options_.alpha);
    const auto reg = static_cast<float>(options_.regularization);

    ConfidenceMatrix by_user = user_matrix(train, options_.use_values, alpha, threads);
    ConfidenceMatrix by_item = transpose(by_user, train.num_items());
    const int32_t num_users = train.num_users(), num_items = train.num_items();
    monitor.info(fmt::format("als: {} users, {} items, {} distinct pairs, {} factors, {} solver, {} threads",
                             num_users, num_items, by_user.nnz(), k,
                             options_.solver == "cg" ? fmt::format("cg ({} steps)", options_.cg_steps)
                                                     : std::string("cholesky"),
                             threads));

    // Trained in cache-line-aligned arrays (see CacheLineAllocator), copied
    // into the model at the end.
    AlignedFloats user_factors(static_cast<size_t>(num_users) * k), item_factors(static_cast<size_t>(num_items) * k);
    advise_huge_pages(user_factors.data(), user_factors.size());
    advise_huge_pages(item_factors.data(), item_factors.size());
    core::Rng rng_users(core::derive_seed(train_options.seed, 0));
    core::Rng rng_items(core::derive_seed(train_options.seed, 1));
    for (float& v : user_factors) v = static_cast<float>(core::uniform01(rng_users) * options_.init_scale);
    for (float& v : item_factors) v = static_cast<float>(core::uniform01(rng_items) * options_.init_scale);

    struct Scratch {
      AlignedFloats cg;
      std::unique_ptr<ExactSolver> exact;
    };
    std::vector<Scratch> scratch(static_cast<size_t>(threads));
    for (auto& s : scratch) {
      s.cg.assign(static_cast<size_t>(3 * k), 0.0f);
      if (options_.solver == "cholesky") s.exact = std::make_unique<ExactSolver>(k);
    }
    const int steps = static_cast<int>(options_.cg_steps);
    const int64_t total_rows = static_cast<int64_t>(num_users) + num_items;
    core::ProgressScope progress(monitor, "als", options_.iterations * total_rows);

    // One half-iteration: solve every row of `h.factors` against the fixed
    // side, whose Gram matrix (+ regularization) is `gram`.
    AlignedFloats gram_copy(static_cast<size_t>(k) * k);
    auto solve_side = [&](HalfStep h, const MatrixF& gram, int64_t rows) {
      std::copy_n(gram.data(), gram_copy.size(), gram_copy.data());
      h.gram = gram_copy.data();
      core::parallel_for(0, rows, threads, [&](int64_t begin, int64_t end, int worker) {
        Scratch& s = scratch[static_cast<size_t>(worker)];
        if (s.exact) {
          if (h.row_loss) observed_loss_rows(h, begin, end);  // before the solves, as cg_rows does
          for (int64_t row = begin; row < end; ++row) {
            const int64_t lo = h.offsets[row], n = h.offsets[row + 1] - lo;
            float* x = h.factors + static_cast<size_t>(row) * k;
            if (n == 0)
              std::fill_n(x, k, 0.0f);
            else
              s.exact->solve(gram, h.other, h.index + lo, h.weight + lo, n, x);
          }
        } else {
          cg_rows(h, begin, end, steps, s.cg.data());
        }
        progress.advance(end - begin);
      }, 32);
    };
    auto with_reg = [&](MatrixF g) {
      g.diagonal().array() += reg;
      return g;
    };

    losses_.clear();
    iteration_seconds_.clear();
    // Loss = sum_u x_u^T (Y^T Y) x_u + sum_observed [c (1 - s)^2 - s^2] + reg (|X|^2 + |Y|^2),
    // with sum_u x_u^T (Y^T Y) x_u = <X^T X, Y^T Y>. The observed part of
    // iteration t's loss is summed per user by the user half-step of
    // iteration t + 1, in its first pass over the pairs (the user vectors
    // are still those of iteration t); that of the last iteration by a pass
    // of its own.
    std::vector<double> row_loss(static_cast<size_t>(num_users));
    auto record_loss = [&](int64_t iteration, const MatrixF& user_gram, const MatrixF& item_gram) {
      double loss = 0.0;
      for (double v : row_loss) loss += v;
      loss += (user_gram.cast<double>().array() * item_gram.cast<double>().array()).sum();
      loss += options_.regularization *
              (static_cast<double>(user_gram.trace()) + static_cast<double>(item_gram.trace()));
      losses_.push_back(loss);
      monitor.metric("loss", loss, iteration);
    };
    MatrixF item_gram = gram_matrix(item_factors.data(), num_items, k, threads);
    MatrixF user_gram;
    for (int64_t it = 0; it < options_.iterations; ++it) {
      const auto start = std::chrono::steady_clock::now();
      HalfStep users{nullptr, item_factors.data(), by_user.offsets.data(), by_user.index.data(),
                     by_user.weight.data(), user_factors.data(), k, it > 0 ? row_loss.data() : nullptr};
      solve_side(users, with_reg(item_gram), num_users);
      if (it > 0) record_loss(it, user_gram, item_gram);
      user_gram = gram_matrix(user_factors.data(), num_users, k, threads);
      HalfStep items{nullptr, user_factors.data(), by_item.offsets.data(), by_item.index.data(),
                     by_item.weight.data(), item_factors.data(), k};
      solve_side(items, with_reg(user_gram), num_items);
      item_gram = gram_matrix(item_factors.data(), num_items, k, threads);
      if (it + 1 == options_.iterations) {
        users.row_loss = row_loss.data();
        core::parallel_for(0, num_users, threads,
                           [&](int64_t begin, int64_t end, int) { observed_loss_rows(users, begin, end); }, 32);
        record_loss(it + 1, user_gram, item_gram);
      }
      iteration_seconds_.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    progress.finish();
    distinct_pairs_ = by_user.nnz();
    by_user = {};  // lower the peak memory of the copies below
    by_item = {};
    allocate(num_users, num_items);
    std::copy(user_factors.begin(), user_factors.end(), user_factors_.begin());
    AlignedFloats().swap(user_factors);
    std::copy(item_factors.begin(), item_factors.end(), item_factors_.begin());
    AlignedFloats().swap(item_factors);
    finish(item_gram);
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    FEWREC_CHECK(static_cast<size_t>(gram_.rows()) == static_cast<size_t>(dim_), kInvalidArgument,
                 "model `{}` is not trained: call fit() or load it first", name());
    std::vector<float> x(static_cast<size_t>(dim_), 0.0f);
    fold_in_user(context, x);
    return make_state(std::move(x), context);
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override {
    save_factors(writer, prefix);
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader,
                                     const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = AlsOptions::read(o);
    o.check_all_used();
    auto model = std::make_unique<AlsModel>(spec, options);
    model->load_factors(reader, prefix);
    model->finish(gram_matrix(model->item_factors_.data(), model->num_items_, model->dim_, 0));
    return model;
  }

  nlohmann::json summary() const override {
    nlohmann::json j = {{"users", num_users_},
                        {"items", num_items_},
                        {"factors", dim_},
                        {"solver", options_.solver},
                        {"regularization", options_.regularization},
                        {"alpha", options_.alpha},
                        {"iterations", options_.iterations}};
    if (!losses_.empty()) {
      std::vector<double> sorted = iteration_seconds_;
      std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2),
                       sorted.end());
      j["distinct_pairs"] = distinct_pairs_;
      j["loss"] = losses_;
      j["iteration_seconds"] = iteration_seconds_;
      j["median_iteration_seconds"] = sorted[sorted.size() / 2];
    }
    return j;
  }

 private:
  // After fit / load: the fold-in system matrix Y^T Y + reg I and the mean
  // vector of the users who have one (the empty-history fallback).
  void finish(const MatrixF& item_gram) {
    gram_ = item_gram;
    gram_.diagonal().array() += static_cast<float>(options_.regularization);
    std::vector<double> sum(static_cast<size_t>(dim_), 0.0);
    int64_t count = 0;
    for (int32_t u = 0; u < num_users_; ++u) {
      const float* x = user_factors_.data() + static_cast<size_t>(u) * dim_;
      if (std::all_of(x, x + dim_, [](float v) { return v == 0.0f; })) continue;
      for (int32_t j = 0; j < dim_; ++j) sum[static_cast<size_t>(j)] += x[j];
      ++count;
    }
    mean_user_.assign(static_cast<size_t>(dim_), 0.0f);
    if (count > 0)
      for (int32_t j = 0; j < dim_; ++j)
        mean_user_[static_cast<size_t>(j)] = static_cast<float>(sum[static_cast<size_t>(j)] / count);
    refresh_item_vectors();
  }

  void fold_in_user(const data::UserContext& context, std::vector<float>& x) const {
    std::vector<std::pair<int32_t, float>> pairs;
    pairs.reserve(context.history.size());
    for (const auto& e : context.history) {
      if (e.item < 0 || e.item >= num_items_) throw_item_out_of_range(name(), e.item, num_items_);
      pairs.emplace_back(e.item, options_.use_values ? e.value : 1.0f);
    }
    pairs.resize(merge_pairs(pairs.data(), pairs.size()));
    if (pairs.empty()) {
      x = mean_user_;
      return;
    }
    const auto alpha = static_cast<float>(options_.alpha);
    std::vector<int32_t> index(pairs.size());
    std::vector<float> weight(pairs.size());
    for (size_t j = 0; j < pairs.size(); ++j) {
      index[j] = pairs[j].first;
      weight[j] = alpha * pairs[j].second;
    }
    if (options_.fold_in == "cholesky") {
      ExactSolver solver(dim_);
      solver.solve(gram_, item_factors_.data(), index.data(), weight.data(), static_cast<int64_t>(pairs.size()),
                   x.data());
    } else {
      const int64_t offsets[2] = {0, static_cast<int64_t>(pairs.size())};
      HalfStep h{gram_.data(), item_factors_.data(), offsets, index.data(), weight.data(), x.data(), dim_};
      std::fill(x.begin(), x.end(), 0.0f);
      std::vector<float> scratch(static_cast<size_t>(3 * dim_));
      cg_rows(h, 0, 1, static_cast<int>(options_.fold_in_cg_steps), scratch.data());
    }
  }

  AlsOptions options_;
  MatrixF gram_;                  // item_factors^T item_factors + regularization I
  std::vector<float> mean_user_;  // adapt() of an empty history
  std::vector<double> losses_;
  std::vector<double> iteration_seconds_;
  int64_t distinct_pairs_ = 0;
};

std::unique_ptr<Model> create_als(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = AlsOptions::read(o);
  o.check_all_used();
  return std::make_unique<AlsModel>(spec, options);
}

}  // namespace

void register_als(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{"als", {}});
  AlsOptions::read(docs);
  registry.add(ModelInfo{
      .name = "als",
      .description = "implicit-feedback matrix factorisation (ALS, conjugate gradient); folds new users in from "
                     "their history",
      .options = docs.docs(),
      .create = create_als,
      .load = AlsModel::load,
  });
}

}  // namespace fewrec::models

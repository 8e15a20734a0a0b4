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
// Inlined into the multi-versioned loops below. (Compiling them for fixed
// dimensions 32 / 64 / 128 made them 1.2-2.5x slower: the fully unrolled
// loops spill registers.)

// Eight-lane vectors (GCC / Clang vector extension; two SSE registers in the
// baseline build, one AVX register in the AVX2 clone). Only used as locals so
// no function passes one by value.
using Lanes8 = float __attribute__((vector_size(32)));

// Two sets of eight partial sums, reduced in a fixed order: vectorised
// without reassociation, so the result depends on neither alignment nor threads.
inline float dot(const float* a, const float* b, int n) {
  Lanes8 s0 = {}, s1 = {}, x0, y0, x1, y1;
  int k = 0;
  for (; k + 16 <= n; k += 16) {
    __builtin_memcpy(&x0, a + k, sizeof(Lanes8));
    __builtin_memcpy(&y0, b + k, sizeof(Lanes8));
    __builtin_memcpy(&x1, a + k + 8, sizeof(Lanes8));
    __builtin_memcpy(&y1, b + k + 8, sizeof(Lanes8));
    s0 += x0 * y0;
    s1 += x1 * y1;
  }
  if (k + 8 <= n) {
    __builtin_memcpy(&x0, a + k, sizeof(Lanes8));
    __builtin_memcpy(&y0, b + k, sizeof(Lanes8));
    s0 += x0 * y0;
    k += 8;
  }
  s0 += s1;
  float sum = ((s0[0] + s0[4]) + (s0[2] + s0[6])) + ((s0[1] + s0[5]) + (s0[3] + s0[7]));
  for (; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

inline void axpy(float a, const float* __restrict x, float* __restrict y, int n) {
  for (int k = 0; k < n; ++k) y[k] += a * x[k];
}

// out = G v for a symmetric k x k matrix (row j == column j): a sum of
// scaled rows, four at a time.
inline void symmetric_matvec(const float* __restrict g, const float* __restrict v, float* __restrict out,
                             int k) {
  std::fill_n(out, k, 0.0f);
  int j = 0;
  for (; j + 4 <= k; j += 4) {
    const float* g0 = g + static_cast<size_t>(j) * k;
    const float* g1 = g0 + k;
    const float* g2 = g1 + k;
    const float* g3 = g2 + k;
    const float v0 = v[j], v1 = v[j + 1], v2 = v[j + 2], v3 = v[j + 3];
    for (int i = 0; i < k; ++i) out[i] += v0 * g0[i] + v1 * g1[i] + v2 * g2[i] + v3 * g3[i];
  }
  for (; j < k; ++j) axpy(v[j], g + static_cast<size_t>(j) * k, out, k);
}

// The rows a solve reads are scattered over a factor matrix that is usually
// larger than the caches: fetch the row `kPrefetchDistance` pairs ahead.
constexpr int64_t kPrefetchDistance = 8;

inline void prefetch_row(const float* row, int k) {
  for (int j = 0; j < k; j += 16) __builtin_prefetch(row + j);
}

// Asks Linux to back a large factor matrix with 2 MB pages: solves read
// random rows of it, and with 4 kB pages nearly every row is a TLB miss.
// Best effort (no-op elsewhere, errors ignored).
void advise_huge_pages(std::vector<float>& v) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(v.data());
  const uintptr_t end = begin + v.size() * sizeof(float);
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = end & ~(kHuge - 1);
  if (hi <= lo) return;
  void* start = reinterpret_cast<void*>(lo);
  if (::madvise(start, hi - lo, MADV_HUGEPAGE) != 0) return;
#if defined(MADV_COLLAPSE)
  ::madvise(start, hi - lo, MADV_COLLAPSE);  // the pages exist already: collapse them now
#endif
#else
  (void)v;
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
  // after its solve (see observed_loss), while its pairs are still in cache.
  double* row_loss = nullptr;
};

constexpr float kResidualTolerance = 1e-20f;  // as implicit's float CG

// Sum over the row's observed pairs of c (1 - s)^2 - s^2, s = x . y: the
// observed part of the loss once sum_u x_u^T Y^T Y x_u is added.
[[gnu::always_inline]] inline double observed_loss(const HalfStep& h, int64_t row) {
  const int k = h.k;
  const float* x = h.factors + static_cast<size_t>(row) * k;
  double sum = 0.0;
  const int64_t lo = h.offsets[row], hi = h.offsets[row + 1];
  for (int64_t e = lo; e < hi; ++e) {
    if (e + kPrefetchDistance < hi)
      prefetch_row(h.other + static_cast<size_t>(h.index[e + kPrefetchDistance]) * k, k);
    const double s = dot(x, h.other + static_cast<size_t>(h.index[e]) * k, k);
    const double c = 1.0 + static_cast<double>(h.weight[e]);
    sum += c * (1.0 - s) * (1.0 - s) - s * s;
  }
  return sum;
}

// `steps` CG steps on one row with interactions, warm-started from x.
[[gnu::always_inline]] inline void cg_row(const HalfStep& h, int64_t lo, int64_t hi, int steps, float* __restrict x,
                                           float* __restrict r, float* __restrict p, float* __restrict ap) {
  const int k = h.k;
  // r = b - A x = sum_i c_i y_i - G x - sum_i w_i (y_i . x) y_i
  symmetric_matvec(h.gram, x, r, k);
  for (int j = 0; j < k; ++j) r[j] = -r[j];
  for (int64_t e = lo; e < hi; ++e) {
    if (e + kPrefetchDistance < hi)
      prefetch_row(h.other + static_cast<size_t>(h.index[e + kPrefetchDistance]) * k, k);
    const float* y = h.other + static_cast<size_t>(h.index[e]) * k;
    const float w = h.weight[e];
    axpy(1.0f + w - w * dot(y, x, k), y, r, k);
  }
  std::copy_n(r, k, p);
  float rs_old = dot(r, r, k);
  if (rs_old < kResidualTolerance) return;
  for (int it = 0; it < steps; ++it) {
    // ap = A p without forming A
    symmetric_matvec(h.gram, p, ap, k);
    for (int64_t e = lo; e < hi; ++e) {
      if (e + kPrefetchDistance < hi)
        prefetch_row(h.other + static_cast<size_t>(h.index[e + kPrefetchDistance]) * k, k);
      const float* y = h.other + static_cast<size_t>(h.index[e]) * k;
      axpy(h.weight[e] * dot(y, p, k), y, ap, k);
    }
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
    const int64_t lo = h.offsets[row], hi = h.offsets[row + 1];
    if (lo == hi)
      std::fill_n(x, k, 0.0f);
    else
      cg_row(h, lo, hi, steps, x, scratch, scratch + k, scratch + 2 * k);
    if (h.row_loss) h.row_loss[row] = observed_loss(h, row);
  }
}

// observed_loss of rows [begin, end) into h.row_loss (after exact solves).
FEWREC_ALS_KERNEL
void observed_loss_rows(const HalfStep& h, int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) h.row_loss[row] = observed_loss(h, row);
}

using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;
using VectorF = Eigen::Matrix<float, Eigen::Dynamic, 1>;
using RowsF = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

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

// rows^T rows of a row-major [n x k] matrix, in blocks of rows (their size
// depends on n only) summed in block order: the result does not depend on the
// number of threads. At most 256 partial k x k sums are held.
MatrixF gram_matrix(const std::vector<float>& rows, int64_t n, int k, int threads) {
  const int64_t block_rows = std::max<int64_t>(4096, (n + 255) / 256);
  const int64_t blocks = (n + block_rows - 1) / block_rows;
  std::vector<MatrixF> partial(static_cast<size_t>(blocks));
  core::parallel_for(0, blocks, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t lo = b * block_rows, m = std::min(block_rows, n - lo);
      RowsF block(rows.data() + static_cast<size_t>(lo) * k, m, k);
      MatrixF& g = partial[static_cast<size_t>(b)];
      g.setZero(k, k);
      g.selfadjointView<Eigen::Lower>().rankUpdate(block.transpose());
    }
  }, 1);
  MatrixF g = MatrixF::Zero(k, k);
  for (const auto& p : partial) g += p;
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

    const ConfidenceMatrix by_user = user_matrix(train, options_.use_values, alpha, threads);
    const ConfidenceMatrix by_item = transpose(by_user, train.num_items());
    allocate(train.num_users(), train.num_items());
    advise_huge_pages(user_factors_);
    advise_huge_pages(item_factors_);
    monitor.info(fmt::format("als: {} users, {} items, {} distinct pairs, {} factors, {} solver, {} threads",
                             num_users_, num_items_, by_user.nnz(), k,
                             options_.solver == "cg" ? fmt::format("cg ({} steps)", options_.cg_steps)
                                                     : std::string("cholesky"),
                             threads));

    core::Rng rng_users(core::derive_seed(train_options.seed, 0));
    core::Rng rng_items(core::derive_seed(train_options.seed, 1));
    for (float& v : user_factors_) v = static_cast<float>(core::uniform01(rng_users) * options_.init_scale);
    for (float& v : item_factors_) v = static_cast<float>(core::uniform01(rng_items) * options_.init_scale);

    struct Scratch {
      std::vector<float> cg;
      std::unique_ptr<ExactSolver> exact;
    };
    std::vector<Scratch> scratch(static_cast<size_t>(threads));
    for (auto& s : scratch) {
      s.cg.assign(static_cast<size_t>(3 * k), 0.0f);
      if (options_.solver == "cholesky") s.exact = std::make_unique<ExactSolver>(k);
    }
    const int steps = static_cast<int>(options_.cg_steps);
    const int64_t total_rows = static_cast<int64_t>(num_users_) + num_items_;
    core::ProgressScope progress(monitor, "als", options_.iterations * total_rows);

    // One half-iteration: solve every row of `h.factors` against the fixed side.
    auto solve_side = [&](HalfStep h, const MatrixF& gram, int64_t rows) {
      h.gram = gram.data();
      core::parallel_for(0, rows, threads, [&](int64_t begin, int64_t end, int worker) {
        Scratch& s = scratch[static_cast<size_t>(worker)];
        if (s.exact) {
          for (int64_t row = begin; row < end; ++row) {
            const int64_t lo = h.offsets[row], n = h.offsets[row + 1] - lo;
            float* x = h.factors + static_cast<size_t>(row) * k;
            if (n == 0)
              std::fill_n(x, k, 0.0f);
            else
              s.exact->solve(gram, h.other, h.index + lo, h.weight + lo, n, x);
          }
          if (h.row_loss) observed_loss_rows(h, begin, end);
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
    // The observed part of the loss, per item, from the item half-step (the
    // last one of an iteration).
    std::vector<double> row_loss(static_cast<size_t>(num_items_));
    MatrixF item_gram = gram_matrix(item_factors_, num_items_, k, threads);
    for (int64_t it = 0; it < options_.iterations; ++it) {
      const auto start = std::chrono::steady_clock::now();
      HalfStep users{nullptr, item_factors_.data(), by_user.offsets.data(), by_user.index.data(),
                     by_user.weight.data(), user_factors_.data(), k};
      solve_side(users, with_reg(item_gram), num_users_);
      const MatrixF user_gram = gram_matrix(user_factors_, num_users_, k, threads);
      HalfStep items{nullptr, user_factors_.data(), by_item.offsets.data(), by_item.index.data(),
                     by_item.weight.data(), item_factors_.data(), k, row_loss.data()};
      solve_side(items, with_reg(user_gram), num_items_);
      item_gram = gram_matrix(item_factors_, num_items_, k, threads);

      // Loss = sum_u x_u^T (Y^T Y) x_u + sum_observed [c (1 - s)^2 - s^2] + reg (|X|^2 + |Y|^2),
      // with sum_u x_u^T (Y^T Y) x_u = <X^T X, Y^T Y>.
      double loss = 0.0;
      for (double v : row_loss) loss += v;
      loss += (user_gram.cast<double>().array() * item_gram.cast<double>().array()).sum();
      loss += options_.regularization *
              (static_cast<double>(user_gram.trace()) + static_cast<double>(item_gram.trace()));
      iteration_seconds_.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      losses_.push_back(loss);
      monitor.metric("loss", loss, it + 1);
    }
    progress.finish();
    distinct_pairs_ = by_user.nnz();
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
    model->finish(gram_matrix(model->item_factors_, model->num_items_, model->dim_, 0));
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

// bpr: BPR-MF, matrix factorisation trained with Bayesian Personalized
// Ranking (Rendle et al. 2009), like the `implicit` library's BPR.
//
// Each epoch draws as many samples as there are distinct (user, item) pairs:
// a positive (u, i) uniformly from the training pairs and a negative j not in
// u's items (uniformly from the catalogue, or from the item column — i.e. by
// popularity — with `negatives=popularity`, drawn again while j is one of u's
// items), and takes one SGD step on
//
//   -ln sigma(x_ui - x_uj) + L2,   x_ui = <w_u, h_i> + b_i
//
// (objective and gradients: bpr_internal.h). Threads update the shared factors
// without locks (Hogwild): the samples of an epoch are cut into one shard per
// thread, each with its own random stream (core::derive_seed of the seed, the
// epoch and the shard). With one thread training is deterministic under the
// seed; with several the result depends on the thread count and the
// interleaving. Small data (fewer than kMinSamplesPerShard samples per thread)
// uses fewer shards.
//
// Speed: the step is vectorised (8-wide AVX2 + FMA when the CPU has them,
// picked at run time, else 4-wide SSE), each shard draws its samples a few
// steps ahead and prefetches their rows, and "is j one of u's items?" is
// first asked of a Bloom filter over the training pairs (2 bytes per pair),
// so the binary search over u's items runs only for the few "maybe"s.
// Training memory besides the factors: the sorted distinct items per user
// and each pair's user (8 bytes per pair) plus the filter, freed after fit.
//
// adapt() (few-shot): a new user is folded in with `fold_in_steps` epochs of
// SGD over the context's distinct items, each against a sampled negative,
// item factors frozen, starting from the mean trained user vector; the random
// stream is derived from the history, so the same context always gives the
// same vector. A known user whose context holds exactly the distinct items
// they had in training gets their trained vector; a known user whose history
// differs (new events since training) is folded in the same way, starting
// from their trained vector. An empty history gives the mean user vector, so
// items rank by bias (popularity) plus the average taste.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>

#include "bpr_internal.h"
#include "builtin.h"
#include "common.h"
#include "factor_model.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/threads.h"

namespace fewrec::models {

// ---- Kernels ----------------------------------------------------------------

namespace bpr {

namespace {

// Vector types of the GCC / Clang vector extension: 4 floats (SSE, every
// x86-64 CPU) and 8 floats (AVX). The kernels are templates over the width,
// inlined into one function per instruction set; the values never cross a
// non-inlined call, so GCC's ABI note about 32-byte vectors does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float Float4 __attribute__((vector_size(16)));
typedef float Float8 __attribute__((vector_size(32)));
template <class V>
constexpr int32_t kWidth = static_cast<int32_t>(sizeof(V) / sizeof(float));

#define FEWREC_BPR_INLINE [[gnu::always_inline]] inline

template <class V>
FEWREC_BPR_INLINE V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
FEWREC_BPR_INLINE void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}
template <class V>
FEWREC_BPR_INLINE float horizontal_sum(const V& v) {
  float s = 0;
  for (int32_t i = 0; i < kWidth<V>; ++i) s += v[i];
  return s;
}

// <user, pos - neg>, two accumulators.
template <class V>
FEWREC_BPR_INLINE float score_difference(const float* user, const float* pos, const float* neg, int32_t dim) {
  constexpr int32_t w = kWidth<V>;
  V a{}, b{};
  int32_t k = 0;
  for (; k + 2 * w <= dim; k += 2 * w) {
    a += load<V>(user + k) * (load<V>(pos + k) - load<V>(neg + k));
    b += load<V>(user + k + w) * (load<V>(pos + k + w) - load<V>(neg + k + w));
  }
  for (; k + w <= dim; k += w) a += load<V>(user + k) * (load<V>(pos + k) - load<V>(neg + k));
  float x = horizontal_sum<V>(a + b);
  for (; k < dim; ++k) x += user[k] * (pos[k] - neg[k]);
  return x;
}

// StepParams in float, as the kernels use them.
struct FloatParams {
  float learning_rate, decay, bias_decay;  // decay = 1 - lr * reg
  explicit FloatParams(const StepParams& p)
      : learning_rate(static_cast<float>(p.learning_rate)),
        decay(static_cast<float>(1.0 - p.learning_rate * p.regularization)),
        bias_decay(static_cast<float>(1.0 - p.learning_rate * p.bias_regularization)) {}
};

// The SGD step; returns x. With `loss`, also stores -ln sigma(x) there (from
// the same exponential as the step size).
template <class V>
FEWREC_BPR_INLINE float step(float* user, float* pos, float* neg, float* bias_pos, float* bias_neg, int32_t dim,
                             const FloatParams& params, float* loss) {
  constexpr int32_t w = kWidth<V>;
  float x = score_difference<V>(user, pos, neg, dim);
  if (bias_pos != nullptr) x += *bias_pos - *bias_neg;
  // z = sigma(-x) and -ln sigma(x) = ln(1 + e^-|x|) + max(-x, 0), from e = e^-|x|.
  const float e = std::exp(-std::fabs(x));
  const float z = x >= 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);
  if (loss != nullptr) *loss = std::log(1.0f + e) + std::max(-x, 0.0f);  // logf: faster than log1pf
  const float s = params.learning_rate * z, d = params.decay;
  const V step_v = V{} + s, decay_v = V{} + d;
  int32_t k = 0;
  for (; k + w <= dim; k += w) {
    const V u = load<V>(user + k), p = load<V>(pos + k), n = load<V>(neg + k);
    store<V>(user + k, u * decay_v + step_v * (p - n));
    store<V>(pos + k, p * decay_v + step_v * u);
    store<V>(neg + k, n * decay_v - step_v * u);
  }
  for (; k < dim; ++k) {
    const float u = user[k], p = pos[k], n = neg[k];
    user[k] = u * d + s * (p - n);
    pos[k] = p * d + s * u;
    neg[k] = n * d - s * u;
  }
  if (bias_pos != nullptr) {
    *bias_pos = *bias_pos * params.bias_decay + s;
    *bias_neg = *bias_neg * params.bias_decay - s;
  }
  return x;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FEWREC_BPR_AVX2 1
bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#define FEWREC_BPR_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define FEWREC_BPR_AVX2 0
bool cpu_has_avx2() { return false; }
#endif

float step_portable(float* user, float* pos, float* neg, float* bias_pos, float* bias_neg, int32_t dim,
                    const FloatParams& params) {
  return step<Float4>(user, pos, neg, bias_pos, bias_neg, dim, params, nullptr);
}

#if FEWREC_BPR_AVX2
FEWREC_BPR_TARGET_AVX2 float step_avx2(float* user, float* pos, float* neg, float* bias_pos, float* bias_neg,
                                       int32_t dim, const FloatParams& params) {
  return step<Float8>(user, pos, neg, bias_pos, bias_neg, dim, params, nullptr);
}
#endif

}  // namespace

const char* kernel_name() { return cpu_has_avx2() ? "avx2" : "sse"; }

float sgd_step(float* user, float* pos, float* neg, float* bias_pos, float* bias_neg, int32_t dim,
               const StepParams& params) {
#if FEWREC_BPR_AVX2
  if (cpu_has_avx2()) return step_avx2(user, pos, neg, bias_pos, bias_neg, dim, FloatParams(params));
#endif
  return step_portable(user, pos, neg, bias_pos, bias_neg, dim, FloatParams(params));
}

float sgd_step_portable(float* user, float* pos, float* neg, float* bias_pos, float* bias_neg, int32_t dim,
                        const StepParams& params) {
  return step_portable(user, pos, neg, bias_pos, bias_neg, dim, FloatParams(params));
}

double sgd_step(double* user, double* pos, double* neg, double* bias_pos, double* bias_neg, int32_t dim,
                const StepParams& params) {
  double x = 0;
  for (int32_t k = 0; k < dim; ++k) x += user[k] * (pos[k] - neg[k]);
  if (bias_pos != nullptr) x += *bias_pos - *bias_neg;
  const double z = 1.0 / (1.0 + std::exp(x));
  const double lr = params.learning_rate, reg = params.regularization;
  for (int32_t k = 0; k < dim; ++k) {
    const double u = user[k], p = pos[k], n = neg[k];
    user[k] = u - lr * (-z * (p - n) + reg * u);
    pos[k] = p - lr * (-z * u + reg * p);
    neg[k] = n - lr * (z * u + reg * n);
  }
  if (bias_pos != nullptr) {
    *bias_pos -= lr * (-z + params.bias_regularization * *bias_pos);
    *bias_neg -= lr * (z + params.bias_regularization * *bias_neg);
  }
  return x;
}

float fold_in_step(float* user, const float* prior, const float* pos, const float* neg, float bias_pos,
                   float bias_neg, int32_t dim, const StepParams& params) {
  const float x = score_difference<Float4>(user, pos, neg, dim) + bias_pos - bias_neg;
  const float lr = static_cast<float>(params.learning_rate);
  const float s = lr / (1.0f + std::exp(x));  // lr * sigma(-x)
  const float shrink = lr * static_cast<float>(params.regularization);
  const Float4 step_v = Float4{} + s, shrink_v = Float4{} + shrink;
  int32_t k = 0;
  for (; k + 4 <= dim; k += 4) {
    const Float4 u = load<Float4>(user + k);
    store<Float4>(user + k, u - shrink_v * (u - load<Float4>(prior + k)) +
                                step_v * (load<Float4>(pos + k) - load<Float4>(neg + k)));
  }
  for (; k < dim; ++k) user[k] = user[k] - shrink * (user[k] - prior[k]) + s * (pos[k] - neg[k]);
  return x;
}

// ---- One shard of an epoch ----------------------------------------------------

namespace {

// What a shard reads and writes (the factors are shared between shards).
struct ShardInput {
  float* users;
  float* items;
  float* bias;  // null without biases
  const int64_t* offsets;
  const ItemIndex* user_items;  // sorted per user
  const UserIndex* row_user;
  const MembershipFilter* filter;
  uint64_t pairs;
  int32_t num_items;
  int32_t dim;
  bool popularity;
  int64_t samples;
  uint64_t seed;
  StepParams params;
};

struct alignas(64) ShardStats {
  double loss = 0;
  int64_t correct = 0;
  int64_t samples = 0;
  int64_t skipped = 0;
};

// Negative draws per sample before the sample is skipped (a user who holds
// almost every item).
constexpr int kMaxNegativeTries = 64;

FEWREC_BPR_INLINE void prefetch_row(const float* row, int32_t dim) {
  for (int32_t k = 0; k < dim; k += 16) __builtin_prefetch(row + k, 1);
}

// A sample on its way through the pipeline of run_shard.
struct Pending {
  uint64_t row;   // the drawn interaction: (user, positive)
  ItemIndex neg;  // the drawn negative candidate
  UserIndex user;
  ItemIndex pos;
  const uint64_t* filter_block;  // where (user, neg) would be in the filter
};

// `in.samples` SGD samples, software-pipelined: a sample is drawn kAhead
// steps before its update (its interaction row prefetched), resolved to
// (user, positive, negative) kResolve steps before (the factor rows and the
// filter block prefetched), so the random reads of large data sets overlap
// with the arithmetic of earlier samples. The negative check asks the
// membership filter first and runs the binary search over the user's items
// only when the filter says "maybe" (the true positives and ~1% more); a
// candidate that is one of the user's items is drawn again.
template <class V>
FEWREC_BPR_INLINE ShardStats run_shard(const ShardInput& in) {
  constexpr int64_t kRing = 8, kAhead = 8, kResolve = 4;
  core::Rng rng(in.seed);
  ShardStats stats;
  const FloatParams params(in.params);
  const auto dim = static_cast<size_t>(in.dim);
  const int64_t total = in.samples;
  auto draw_negative = [&]() -> ItemIndex {
    return in.popularity ? in.user_items[core::uniform_index(rng, in.pairs)]
                         : static_cast<ItemIndex>(core::uniform_index(rng, static_cast<uint64_t>(in.num_items)));
  };
  auto is_positive = [&](UserIndex u, ItemIndex j) {
    return std::binary_search(in.user_items + in.offsets[u], in.user_items + in.offsets[u + 1], j);
  };
  Pending ring[kRing];
  auto draw = [&](int64_t s) {
    Pending& p = ring[s % kRing];
    p.row = core::uniform_index(rng, in.pairs);
    p.neg = draw_negative();
    __builtin_prefetch(in.row_user + p.row);
    __builtin_prefetch(in.user_items + p.row);
  };
  auto resolve = [&](int64_t s) {
    Pending& p = ring[s % kRing];
    p.user = in.row_user[p.row];
    p.pos = in.user_items[p.row];
    p.filter_block = in.filter->block(p.user, p.neg);
    __builtin_prefetch(p.filter_block);
    prefetch_row(in.users + static_cast<size_t>(p.user) * dim, in.dim);
    prefetch_row(in.items + static_cast<size_t>(p.pos) * dim, in.dim);
    prefetch_row(in.items + static_cast<size_t>(p.neg) * dim, in.dim);
    if (in.bias != nullptr) {
      __builtin_prefetch(in.bias + p.pos, 1);
      __builtin_prefetch(in.bias + p.neg, 1);
    }
  };
  for (int64_t s = 0; s < std::min(kAhead, total); ++s) draw(s);
  for (int64_t s = 0; s < std::min(kResolve, total); ++s) resolve(s);
  for (int64_t s = 0; s < total; ++s) {
    const Pending cur = ring[s % kRing];  // resolved; its slot is reused by draw(s + kAhead)
    if (s + kAhead < total) draw(s + kAhead);
    if (s + kResolve < total) resolve(s + kResolve);
    ItemIndex neg = cur.neg;
    if (MembershipFilter::maybe_in_block(cur.filter_block, cur.user, neg) && is_positive(cur.user, neg)) {
      neg = -1;
      for (int t = 1; t < kMaxNegativeTries; ++t) {
        const ItemIndex c = draw_negative();
        if (!in.filter->maybe_contains(cur.user, c) || !is_positive(cur.user, c)) {
          neg = c;
          break;
        }
      }
      if (neg < 0) {
        ++stats.skipped;
        continue;
      }
    }
    float loss;
    const float x = step<V>(in.users + static_cast<size_t>(cur.user) * dim,
                            in.items + static_cast<size_t>(cur.pos) * dim, in.items + static_cast<size_t>(neg) * dim,
                            in.bias ? in.bias + cur.pos : nullptr, in.bias ? in.bias + neg : nullptr, in.dim, params,
                            &loss);
    stats.loss += loss;
    stats.correct += x > 0;
    ++stats.samples;
  }
  return stats;
}

ShardStats run_shard_portable(const ShardInput& in) { return run_shard<Float4>(in); }
#if FEWREC_BPR_AVX2
FEWREC_BPR_TARGET_AVX2 ShardStats run_shard_avx2(const ShardInput& in) { return run_shard<Float8>(in); }
#endif

// One shard of samples with the widest kernel the CPU has.
ShardStats run_samples(const ShardInput& in) {
#if FEWREC_BPR_AVX2
  if (cpu_has_avx2()) return run_shard_avx2(in);
#endif
  return run_shard_portable(in);
}

}  // namespace

}  // namespace bpr

// ---- Model ------------------------------------------------------------------

namespace {

// Fewer samples per epoch than this per thread: fewer shards (threads). An
// epoch of 32k samples takes a few milliseconds, about what starting and
// joining the threads of an epoch costs when the cores are busy, so data of
// ml-100k's size trains on one thread (and deterministically).
constexpr int64_t kMinSamplesPerShard = 32768;
// Stream of the fold-in random numbers (mixed with the history's hash).
constexpr uint64_t kFoldInSeed = 0x6270722d666f6c64ULL;  // "bpr-fold"

struct BprOptions {
  int64_t factors = 64;
  double learning_rate = 0.05;
  double learning_rate_decay = 0.9;
  double regularization = 0.01;
  double bias_regularization = 0.1;
  int64_t epochs = 100;
  bool bias = true;
  double init_std = 0.01;
  std::string negatives = "uniform";
  int64_t fold_in_steps = 50;
  double fold_in_learning_rate = 0.05;
  double fold_in_regularization = 0.01;

  static BprOptions read(DocumentedOptions& o) {
    BprOptions p;
    p.factors = o.get_int("factors", p.factors, "latent factors per user and item", 1, 4096);
    p.learning_rate = o.get_double("learning_rate", p.learning_rate, "SGD step size (> 0)", 0.0, 100.0);
    p.learning_rate_decay = o.get_double(
        "learning_rate_decay", p.learning_rate_decay,
        "linear decay over the epochs: the last epoch steps with learning_rate * (1 - learning_rate_decay)", 0.0,
        1.0);
    p.regularization = o.get_double("regularization", p.regularization,
                                    "L2 weight on the user and item factors of each sample", 0.0, 100.0);
    p.bias_regularization = o.get_double("bias_regularization", p.bias_regularization,
                                         "L2 weight on the item biases of each sample", 0.0, 100.0);
    p.epochs = o.get_int("epochs", p.epochs,
                         "passes over the data (implicit's `iterations`); each draws one sample per "
                         "distinct user-item pair",
                         0, 1000000);
    p.bias = o.get_bool("bias", p.bias, "learn an item bias (popularity) next to the factors");
    p.init_std = o.get_double("init_std", p.init_std,
                              "standard deviation of the normal initial factors", 0.0, 10.0);
    p.negatives = o.get_choice("negatives", p.negatives, {"uniform", "popularity"},
                               "how negatives are drawn: uniform over the catalogue, or by popularity "
                               "(a random training interaction's item, as implicit does); items of the "
                               "user are drawn again");
    p.fold_in_steps = o.get_int("fold_in_steps", p.fold_in_steps,
                                "adapt(): SGD epochs over a new user's history (item factors frozen)", 0,
                                100000);
    p.fold_in_learning_rate = o.get_double("fold_in_learning_rate", p.fold_in_learning_rate,
                                           "adapt(): SGD step size of the fold-in (> 0)", 0.0, 100.0);
    p.fold_in_regularization = o.get_double("fold_in_regularization", p.fold_in_regularization,
                                            "adapt(): L2 weight pulling the folded-in vector towards where it started (the mean user, or the "
                                            "user's trained vector)", 0.0, 100.0);
    auto positive = [](const char* key, double v) {
      if (!(v > 0)) FEWREC_THROW(kInvalidArgument, "model `bpr`: option `{}` must be > 0, got {}", key, v);
    };
    positive("learning_rate", p.learning_rate);
    positive("fold_in_learning_rate", p.fold_in_learning_rate);
    return p;
  }
};

// Hash of a sorted, de-duplicated item list (identifies a user's history).
uint64_t item_set_hash(std::span<const ItemIndex> items) {
  return core::fnv1a64(items.data(), items.size_bytes());
}

class BprModel final : public FactorModel {
 public:
  BprModel(ModelSpec spec, BprOptions options)
      : FactorModel(std::move(spec), static_cast<int32_t>(options.factors), options.bias),
        options_(options),
        mean_user_(static_cast<size_t>(options.factors), 0.0f) {}

  void fit(const data::Dataset& train, const TrainOptions& train_options, core::Monitor& monitor) override {
    const auto start = std::chrono::steady_clock::now();
    allocate(train.num_users(), train.num_items());
    build_user_items(train);
    const int64_t nnz = static_cast<int64_t>(items_.size());
    const int threads = core::resolve_threads(train_options.threads);
    const int shards = static_cast<int>(std::clamp<int64_t>(nnz / kMinSamplesPerShard, 1, threads));
    monitor.info(fmt::format("bpr: {} users, {} items, {} distinct interactions, {} factors, {} epochs, {} thread{}",
                             num_users_, num_items_, nnz, dim_, options_.epochs, shards, shards == 1 ? "" : "s"));
    initialise(train_options.seed, threads);
    bpr::MembershipFilter filter(nnz);
    core::parallel_for(0, num_users_, threads, [&](int64_t begin, int64_t end, int) {
      for (int64_t u = begin; u < end; ++u)
        for (int64_t r = offsets_[static_cast<size_t>(u)]; r < offsets_[static_cast<size_t>(u) + 1]; ++r)
          filter.insert(static_cast<UserIndex>(u), items_[static_cast<size_t>(r)]);
    }, 256);

    bpr::StepParams params{options_.learning_rate, options_.regularization, options_.bias_regularization};
    std::vector<bpr::ShardStats> stats(static_cast<size_t>(shards));
    core::ProgressScope progress(monitor, "bpr epochs", options_.epochs);
    epochs_run_ = 0;
    epoch_seconds_.clear();
    distinct_pairs_ = nnz;
    for (int64_t epoch = 0; epoch < options_.epochs && nnz > 0; ++epoch) {
      const auto epoch_start = std::chrono::steady_clock::now();
      const uint64_t epoch_seed = core::derive_seed(train_options.seed, static_cast<uint64_t>(epoch) + 1);
      const double progress_fraction =
          options_.epochs > 1 ? static_cast<double>(epoch) / static_cast<double>(options_.epochs - 1) : 0.0;
      params.learning_rate = options_.learning_rate * (1.0 - options_.learning_rate_decay * progress_fraction);
      core::parallel_for(
          0, shards, shards,
          [&](int64_t begin, int64_t end, int) {
            for (int64_t s = begin; s < end; ++s) {
              const int64_t count = nnz / shards + (s < nnz % shards ? 1 : 0);
              const bpr::ShardInput input{user_factors_.data(),
                                          item_factors_.data(),
                                          use_bias_ ? item_bias_.data() : nullptr,
                                          offsets_.data(),
                                          items_.data(),
                                          row_user_.data(),
                                          &filter,
                                          static_cast<uint64_t>(nnz),
                                          num_items_,
                                          dim_,
                                          options_.negatives == "popularity",
                                          count,
                                          core::derive_seed(epoch_seed, static_cast<uint64_t>(s)),
                                          params};
              stats[static_cast<size_t>(s)] = bpr::run_samples(input);
            }
          },
          /*grain=*/1);
      bpr::ShardStats total;
      for (const auto& s : stats) {
        total.loss += s.loss;
        total.correct += s.correct;
        total.samples += s.samples;
        total.skipped += s.skipped;
      }
      last_loss_ = total.samples > 0 ? total.loss / static_cast<double>(total.samples) : 0.0;
      last_accuracy_ = total.samples > 0 ? static_cast<double>(total.correct) / static_cast<double>(total.samples)
                                         : 0.0;
      last_skipped_ = total.skipped;
      if (!std::isfinite(last_loss_))
        FEWREC_THROW(kInvalidArgument,
                     "model `bpr`: training diverged in epoch {} (loss {}); lower learning_rate (now {})",
                     epoch + 1, last_loss_, options_.learning_rate);
      epoch_seconds_.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count());
      monitor.metric("bpr_loss", last_loss_, epoch + 1);
      monitor.metric("bpr_accuracy", last_accuracy_, epoch + 1);
      ++epochs_run_;
      progress.advance(1);
    }
    progress.finish();
    // The sampling structures are only needed while training.
    std::vector<int64_t>().swap(offsets_);
    std::vector<ItemIndex>().swap(items_);
    std::vector<UserIndex>().swap(row_user_);
    refresh_item_vectors();
    compute_mean_user();
    train_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    std::vector<ItemIndex> items = history_item_set(context, num_items_, name());
    std::vector<float> vector;
    if (context.user && *context.user >= 0 && *context.user < num_users_ &&
        user_history_size_[static_cast<size_t>(*context.user)] > 0) {
      const auto u = static_cast<size_t>(*context.user);
      auto trained = user_factors(*context.user);
      vector.assign(trained.begin(), trained.end());
      if (static_cast<int64_t>(items.size()) == user_history_size_[u] &&
          item_set_hash(items) == static_cast<uint64_t>(user_history_hash_[u]))
        return make_state(std::move(vector), context);
    } else {
      vector = mean_user_;
    }
    fold_in(vector, items);
    return make_state(std::move(vector), context);
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override {
    save_factors(writer, prefix);
    writer.put_array<int64_t>(prefix + "user_history_size", user_history_size_);
    writer.put_array<int64_t>(prefix + "user_history_hash", user_history_hash_);
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader,
                                     const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = BprOptions::read(o);
    o.check_all_used();
    auto model = std::make_unique<BprModel>(spec, options);
    model->load_factors(reader, prefix);
    const auto users = static_cast<size_t>(model->num_users_);
    model->user_history_size_ = reader.get_array<int64_t>(prefix + "user_history_size", users);
    model->user_history_hash_ = reader.get_array<int64_t>(prefix + "user_history_hash", users);
    for (int64_t n : model->user_history_size_)
      if (n < 0 || n > model->num_items_)
        FEWREC_THROW(kCorrupt, "artifact {}: section `{}user_history_size` holds {} (outside [0, {}])",
                     reader.origin(), prefix, n, model->num_items_);
    model->compute_mean_user();
    return model;
  }

  nlohmann::json summary() const override {
    nlohmann::json j{{"users", num_users_},
                     {"items", num_items_},
                     {"factors", dim_},
                     {"bias", use_bias_},
                     {"negatives", options_.negatives},
                     {"kernel", bpr::kernel_name()},
                     {"learning_rate", options_.learning_rate},
                     {"regularization", options_.regularization}};
    if (epochs_run_ > 0) {
      j["epochs"] = epochs_run_;
      j["distinct_pairs"] = distinct_pairs_;
      j["epoch_seconds"] = epoch_seconds_;
      j["final_loss"] = last_loss_;
      j["final_sample_accuracy"] = last_accuracy_;
      j["skipped_samples_last_epoch"] = last_skipped_;
      j["train_seconds"] = train_seconds_;
    }
    return j;
  }

 private:
  // Sorted distinct items per user (CSR), the user of every row, and each
  // user's history size and hash.
  void build_user_items(const data::Dataset& train) {
    offsets_.assign(static_cast<size_t>(num_users_) + 1, 0);
    items_.clear();
    items_.reserve(static_cast<size_t>(train.num_interactions()));
    user_history_size_.assign(static_cast<size_t>(num_users_), 0);
    user_history_hash_.assign(static_cast<size_t>(num_users_), 0);
    for (UserIndex u = 0; u < num_users_; ++u) {
      auto h = train.history(u);
      const auto begin = static_cast<std::ptrdiff_t>(items_.size());
      items_.insert(items_.end(), h.items.begin(), h.items.end());
      std::sort(items_.begin() + begin, items_.end());
      items_.erase(std::unique(items_.begin() + begin, items_.end()), items_.end());
      offsets_[static_cast<size_t>(u) + 1] = static_cast<int64_t>(items_.size());
      std::span<const ItemIndex> set(items_.data() + begin, items_.size() - static_cast<size_t>(begin));
      user_history_size_[static_cast<size_t>(u)] = static_cast<int64_t>(set.size());
      user_history_hash_[static_cast<size_t>(u)] = static_cast<int64_t>(item_set_hash(set));
    }
    items_.shrink_to_fit();
    row_user_.resize(items_.size());
    for (UserIndex u = 0; u < num_users_; ++u)
      std::fill(row_user_.begin() + offsets_[static_cast<size_t>(u)],
                row_user_.begin() + offsets_[static_cast<size_t>(u) + 1], u);
  }

  // N(0, init_std) for users and items with interactions, zeros for the
  // others (they get no positive updates). One random stream per row, so the
  // result does not depend on the threads.
  void initialise(uint64_t seed, int threads) {
    std::vector<char> item_seen(static_cast<size_t>(num_items_), 0);
    for (ItemIndex i : items_) item_seen[static_cast<size_t>(i)] = 1;
    const uint64_t user_seed = core::derive_seed(seed, 0x75736572), item_seed = core::derive_seed(seed, 0x6974656d);
    auto fill = [&](std::vector<float>& m, int64_t rows, uint64_t stream_seed, auto active) {
      core::parallel_for(0, rows, threads, [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          float* row = m.data() + static_cast<size_t>(r) * dim_;
          if (!active(r)) {
            std::fill_n(row, dim_, 0.0f);
            continue;
          }
          core::Rng rng(core::derive_seed(stream_seed, static_cast<uint64_t>(r)));
          for (int32_t k = 0; k < dim_; ++k) row[k] = static_cast<float>(options_.init_std * core::normal01(rng));
        }
      }, 256);
    };
    fill(user_factors_, num_users_, user_seed,
         [&](int64_t u) { return user_history_size_[static_cast<size_t>(u)] > 0; });
    fill(item_factors_, num_items_, item_seed, [&](int64_t i) { return item_seen[static_cast<size_t>(i)] != 0; });
    std::fill(item_bias_.begin(), item_bias_.end(), 0.0f);
  }

  // One user's sorted items.
  std::span<const ItemIndex> user_items(UserIndex u) const {
    const int64_t b = offsets_[static_cast<size_t>(u)], e = offsets_[static_cast<size_t>(u) + 1];
    return {items_.data() + b, static_cast<size_t>(e - b)};
  }

  void compute_mean_user() {
    mean_user_.assign(static_cast<size_t>(dim_), 0.0f);
    std::vector<double> sum(static_cast<size_t>(dim_), 0.0);
    int64_t n = 0;
    for (UserIndex u = 0; u < num_users_; ++u) {
      if (user_history_size_[static_cast<size_t>(u)] == 0) continue;
      const float* row = user_factors_.data() + static_cast<size_t>(u) * dim_;
      for (int32_t k = 0; k < dim_; ++k) sum[static_cast<size_t>(k)] += row[k];
      ++n;
    }
    if (n > 0)
      for (int32_t k = 0; k < dim_; ++k)
        mean_user_[static_cast<size_t>(k)] = static_cast<float>(sum[static_cast<size_t>(k)] / static_cast<double>(n));
  }

  // fold_in_steps epochs over `items` (sorted, distinct), each item against a
  // uniformly drawn negative outside `items`; only `vector` changes.
  void fold_in(std::vector<float>& vector, std::span<const ItemIndex> items) const {
    if (items.empty() || options_.fold_in_steps == 0 || static_cast<int32_t>(items.size()) >= num_items_) return;
    core::Rng rng(core::derive_seed(kFoldInSeed, item_set_hash(items)));
    const bpr::StepParams params{options_.fold_in_learning_rate, options_.fold_in_regularization, 0.0};
    const std::vector<float> prior = vector;
    const float* f = item_factors_.data();
    for (int64_t step = 0; step < options_.fold_in_steps; ++step) {
      for (ItemIndex pos : items) {
        ItemIndex neg;
        do {
          neg = static_cast<ItemIndex>(core::uniform_index(rng, static_cast<uint64_t>(num_items_)));
        } while (std::binary_search(items.begin(), items.end(), neg));
        bpr::fold_in_step(vector.data(), prior.data(), f + static_cast<size_t>(pos) * dim_,
                          f + static_cast<size_t>(neg) * dim_, use_bias_ ? item_bias_[static_cast<size_t>(pos)] : 0.0f,
                          use_bias_ ? item_bias_[static_cast<size_t>(neg)] : 0.0f, dim_, params);
      }
    }
  }

  BprOptions options_;
  // Per training user: number of distinct items and their hash (adapt()
  // recognises an unchanged history by them). Saved.
  std::vector<int64_t> user_history_size_;
  std::vector<int64_t> user_history_hash_;
  std::vector<float> mean_user_;  // mean trained vector of the users with a history
  // Training only: sorted distinct items per user (CSR) and each row's user.
  std::vector<int64_t> offsets_;
  std::vector<ItemIndex> items_;
  std::vector<UserIndex> row_user_;
  // Last training run.
  int64_t epochs_run_ = 0;
  double last_loss_ = 0, last_accuracy_ = 0, train_seconds_ = 0;
  int64_t last_skipped_ = 0;
  int64_t distinct_pairs_ = 0;
  std::vector<double> epoch_seconds_;  // wall time of each epoch (sampling, steps, loss)
};

std::unique_ptr<Model> create_bpr(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = BprOptions::read(o);
  o.check_all_used();
  return std::make_unique<BprModel>(spec, options);
}

}  // namespace

void register_bpr(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{"bpr", {}});
  BprOptions::read(docs);
  registry.add(ModelInfo{
      .name = "bpr",
      .description = "BPR-MF: matrix factorisation trained by SGD on a pairwise ranking loss (Hogwild threads); "
                     "folds in new users",
      .options = docs.docs(),
      .create = create_bpr,
      .load = BprModel::load,
  });
}

}  // namespace fewrec::models

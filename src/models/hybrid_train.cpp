// WARP / BPR training of the hybrid model, as in LightFM (Kula 2015):
//
// For each (user u, positive item i), in a fresh random order every epoch:
//   WARP  draw items j uniformly (skipping u's positives; every draw counts as a
//         trial) until one violates the margin, s(u,j) > s(u,i) - 1, or
//         max_sampled trials were made; on a violation after t trials take a
//         gradient step on L * (s(u,j) - s(u,i)), L = ln(max(1, floor((N-1)/t)))
//         capped at 10 (N = number of candidate negatives): the estimated rank of i.
//   BPR   one uniform negative j, a step on -ln sigmoid(s(u,i) - s(u,j)).
// s(u,i) = p_u . q_i + b_i with p_u = sum_f w_f U_f over u's features and
// q_i, b_i the same over i's. Every feature row touched gets an Adagrad step
// (per-parameter accumulators starting at 1, as LightFM) or an Adadelta step;
// L2 (item_alpha / user_alpha) is added to the gradient of the rows touched.
//
// Text part: an item's representation also holds P t_i (its fixed text
// vector through the learned projection P) and its bias t_i . b. P and b are
// shared by the two items of a step, so they get one step on their gradient
// l * (t_j - t_i) (x) p_u (dimensions where t_j and t_i agree are skipped),
// with the same optimizer and item_alpha.
//
// Hogwild: threads update the shared embeddings without locks, as LightFM
// does (collisions are rare and harmless for SGD). With one thread the run is
// deterministic for a seed: the order comes from derive_seed(seed, epoch) and
// the negatives of a chunk of pairs from derive_seed(., chunk start). The
// model asks for one thread on small data (hybrid.cpp, kMinPairsPerThread).
#include "hybrid_train.h"

#include <fmt/format.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <numeric>

#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/threads.h"

namespace fewrec::models::hybrid {

namespace {

constexpr double kMaxWarpLoss = 10.0;  // LightFM's MAX_LOSS
constexpr int kBprTries = 10;          // BPR: draws to find a non-positive item
constexpr uint64_t kOrderStream = 0x6f72646572ULL;
constexpr uint64_t kNegativeStream = 0x6e6567ULL;

inline float dot(const float* a, const float* b, int32_t n) {
  float s = 0.0f;
  for (int32_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

// a . b over n floats; the SSE path sums in four lanes (so its rounding
// differs from dot()'s; only the text part uses it).
inline float dot_fast(const float* a, const float* b, int32_t n) {
  int32_t k = 0;
  float s = 0.0f;
#if defined(__SSE2__)
  __m128 acc0 = _mm_setzero_ps(), acc1 = _mm_setzero_ps();
  for (; k + 8 <= n; k += 8) {
    acc0 = _mm_add_ps(acc0, _mm_mul_ps(_mm_loadu_ps(a + k), _mm_loadu_ps(b + k)));
    acc1 = _mm_add_ps(acc1, _mm_mul_ps(_mm_loadu_ps(a + k + 4), _mm_loadu_ps(b + k + 4)));
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, _mm_add_ps(acc0, acc1));
  s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
  for (; k < n; ++k) s += a[k] * b[k];
  return s;
}

// Adagrad step on a parameter row x[0, n): grad = g * direction + alpha * x,
// gs += grad^2, x -= lr * grad / sqrt(gs). The SSE path computes exactly
// what the scalar one does (same operations, same order), four at a time.
inline void adagrad_row(float* x, float* gs, const float* direction, float g, float alpha, float lr, int32_t n) {
  int32_t k = 0;
#if defined(__SSE2__)
  const __m128 vg = _mm_set1_ps(g), va = _mm_set1_ps(alpha), vlr = _mm_set1_ps(lr);
  for (; k + 4 <= n; k += 4) {
    const __m128 xv = _mm_loadu_ps(x + k);
    const __m128 grad = _mm_add_ps(_mm_mul_ps(vg, _mm_loadu_ps(direction + k)), _mm_mul_ps(va, xv));
    const __m128 acc = _mm_add_ps(_mm_loadu_ps(gs + k), _mm_mul_ps(grad, grad));
    _mm_storeu_ps(gs + k, acc);
    _mm_storeu_ps(x + k, _mm_sub_ps(xv, _mm_div_ps(_mm_mul_ps(vlr, grad), _mm_sqrt_ps(acc))));
  }
#endif
  for (; k < n; ++k) {
    const float grad = g * direction[k] + alpha * x[k];
    gs[k] += grad * grad;
    x[k] -= lr * grad / std::sqrt(gs[k]);
  }
}

// adagrad_row with 1/sqrt(gs) from the SSE reciprocal square root refined
// by one Newton step (relative error about 1e-7 instead of exact rounding):
// the text projection's rows take one step per training pair, where the exact
// sqrt and division would dominate the cost of training.
inline void adagrad_row_fast(float* x, float* gs, const float* direction, float g, float alpha, float lr,
                             int32_t n) {
  int32_t k = 0;
#if defined(__SSE2__)
  const __m128 vg = _mm_set1_ps(g), va = _mm_set1_ps(alpha), vlr = _mm_set1_ps(lr);
  const __m128 half = _mm_set1_ps(0.5f), three_halves = _mm_set1_ps(1.5f);
  for (; k + 4 <= n; k += 4) {
    const __m128 xv = _mm_loadu_ps(x + k);
    const __m128 grad = _mm_add_ps(_mm_mul_ps(vg, _mm_loadu_ps(direction + k)), _mm_mul_ps(va, xv));
    const __m128 acc = _mm_add_ps(_mm_loadu_ps(gs + k), _mm_mul_ps(grad, grad));
    _mm_storeu_ps(gs + k, acc);
    __m128 y = _mm_rsqrt_ps(acc);  // acc >= 1 (Adagrad starts at 1)
    y = _mm_mul_ps(y, _mm_sub_ps(three_halves, _mm_mul_ps(_mm_mul_ps(half, acc), _mm_mul_ps(y, y))));
    _mm_storeu_ps(x + k, _mm_sub_ps(xv, _mm_mul_ps(_mm_mul_ps(vlr, grad), y)));
  }
#endif
  for (; k < n; ++k) {
    const float grad = g * direction[k] + alpha * x[k];
    gs[k] += grad * grad;
    x[k] -= lr * grad / std::sqrt(gs[k]);
  }
}

// Optimizer state of one feature space: accumulators shaped like the parameters.
struct Slots {
  std::vector<float> grad_sq;   // Adagrad: sum of g^2 (from 1); Adadelta: running E[g^2]
  std::vector<float> delta_sq;  // Adadelta: running E[dx^2]
  std::vector<float> bias_grad_sq;
  std::vector<float> bias_delta_sq;

  void init(const Embeddings& e, bool adadelta) {
    const float start = adadelta ? 0.0f : 1.0f;
    grad_sq.assign(e.vectors.size(), start);
    bias_grad_sq.assign(e.bias.size(), start);
    if (adadelta) {
      delta_sq.assign(e.vectors.size(), 0.0f);
      bias_delta_sq.assign(e.bias.size(), 0.0f);
    }
  }
};

// Per-thread state: scratch vectors and the projection gradient summed since
// the last step on P.
struct Worker {
  std::vector<float> scratch;         // p, qi, qj, diff (dim each), r (text dim)
  std::vector<float> text_grad;       // [text dim x dim]
  std::vector<float> text_bias_grad;  // [text dim]
  std::vector<int32_t> touched;       // text dimensions with a gradient
  std::vector<uint8_t> is_touched;
  int64_t steps = 0;                  // pairs summed into text_grad
};

class Trainer {
 public:
  Trainer(const FeatureRows& user_rows, const FeatureRows& item_rows, std::span<const int64_t> positive_offsets,
          std::span<const int32_t> positives, std::span<const int32_t> candidates, Embeddings& users,
          Embeddings& items, const ItemText& text, Embeddings& projection, const TrainerOptions& o)
      : user_rows_(user_rows),
        item_rows_(item_rows),
        offsets_(positive_offsets),
        positives_(positives),
        candidates_(candidates),
        users_(users),
        items_(items),
        text_(text),
        projection_(projection),
        o_(o),
        dim_(items.dim),
        lr_(static_cast<float>(o.learning_rate)),
        rho_(static_cast<float>(o.rho)),
        eps_(static_cast<float>(o.epsilon)),
        drop_ids_(o.item_rows_have_ids ? o.item_id_dropout : 0.0) {
    user_slots_.init(users, o.adadelta);
    item_slots_.init(items, o.adadelta);
    if (text_.dim > 0) projection_slots_.init(projection_, o.adadelta);
  }

  // Loss summed over the pairs [begin, end) of `order`.
  double run_chunk(std::span<const int64_t> order, std::span<const int32_t> pair_user, int64_t begin, int64_t end,
                   uint64_t seed, Worker& worker) {
    core::Rng rng(core::derive_seed(seed, static_cast<uint64_t>(begin)));
    std::vector<float>& scratch = worker.scratch;
    scratch.resize(static_cast<size_t>(dim_) * 4 + static_cast<size_t>(text_.dim));
    if (text_.dim > 0 && worker.text_grad.empty()) {
      worker.text_grad.assign(static_cast<size_t>(text_.dim) * static_cast<size_t>(dim_), 0.0f);
      worker.text_bias_grad.assign(static_cast<size_t>(text_.dim), 0.0f);
      worker.is_touched.assign(static_cast<size_t>(text_.dim), 0);
    }
    float* p = scratch.data();
    float* qi = p + dim_;
    float* qj = qi + dim_;
    float* diff = qj + dim_;
    float* r = diff + dim_;  // text: P^T p + b, so that item j's text part scores t_j . r
    const auto n_items = static_cast<uint64_t>(candidates_.empty() ? item_rows_.rows() : candidates_.size());
    double loss = 0.0;
    for (int64_t k = begin; k < end; ++k) {
      const int64_t pair = order[static_cast<size_t>(k)];
      const int32_t u = pair_user[static_cast<size_t>(pair)];
      const int32_t i = positives_[static_cast<size_t>(pair)];
      represent(user_rows_, u, users_, p);
      for (int32_t a = 0; a < text_.dim; ++a)
        r[a] = dot_fast(projection_.row(a), p, dim_) + projection_.bias[static_cast<size_t>(a)];
      const int skip = drop_ids_ > 0.0 && core::uniform01(rng) < drop_ids_ ? 1 : 0;
      const float si = score(i, skip, p, r, qi);
      if (o_.warp) {
        for (int64_t t = 1; t <= o_.max_sampled; ++t) {
          const int32_t j = draw(rng, n_items);
          if (is_positive(u, j)) continue;
          const float sj = score(j, skip, p, r, qj);
          if (sj > si - 1.0f) {
            const double rank = std::floor(static_cast<double>(n_items - 1) / static_cast<double>(t));
            const double l = std::min(kMaxWarpLoss, std::log(std::max(1.0, rank)));
            step(u, i, j, static_cast<float>(l), p, qi, qj, diff, skip, worker);
            loss += l;
            break;
          }
        }
      } else {
        int32_t j = -1;
        for (int t = 0; t < kBprTries && j < 0; ++t) {
          const int32_t c = draw(rng, n_items);
          if (!is_positive(u, c)) j = c;
        }
        if (j < 0) continue;  // the user likes (almost) everything
        const float sj = score(j, skip, p, r, qj);
        const double x = static_cast<double>(si) - sj;
        // -ln sigmoid(x) and its weight sigmoid(-x), computed stably.
        loss += x > 0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x));
        const double w = 1.0 / (1.0 + std::exp(x));
        step(u, i, j, static_cast<float>(w), p, qi, qj, diff, skip, worker);
      }
    }
    if (text_.dim > 0) flush_text(worker);
    return loss;
  }

  // Non-finite parameter -> the name of its side, else nullptr.
  const char* non_finite() const {
    for (float x : items_.vectors)
      if (!std::isfinite(x)) return "item";
    for (float x : items_.bias)
      if (!std::isfinite(x)) return "item";
    for (float x : users_.vectors)
      if (!std::isfinite(x)) return "user";
    for (float x : projection_.vectors)
      if (!std::isfinite(x)) return "text projection";
    for (float x : projection_.bias)
      if (!std::isfinite(x)) return "text projection";
    return nullptr;
  }

 private:
  // Score of item i for the user representation p: q = the item's feature
  // part (without its first `skip` features), plus its text part through
  // r = P^T p + b (cheaper than forming P t_i for every sampled negative).
  float score(int32_t i, int skip, const float* p, const float* r, float* q) const {
    const float b = represent(item_rows_, i, items_, q, skip);  // fills q before the dot product
    float s = b + dot(p, q, dim_);
    if (text_.dim > 0) s += dot_fast(text_.row(i), r, text_.dim);
    return s;
  }

  int32_t draw(core::Rng& rng, uint64_t n) const {
    const auto k = static_cast<size_t>(core::uniform_index(rng, n));
    return candidates_.empty() ? static_cast<int32_t>(k) : candidates_[k];
  }

  bool is_positive(int32_t u, int32_t j) const {
    const auto b = positives_.begin() + offsets_[static_cast<size_t>(u)];
    const auto e = positives_.begin() + offsets_[static_cast<size_t>(u) + 1];
    return std::binary_search(b, e, j);
  }

  // Descent step on l * (s(u,j) - s(u,i)) from the representations p, qi, qj
  // computed before the step (item rows without their first `skip` features;
  // the text parts are added to the difference here, before P moves).
  void step(int32_t u, int32_t i, int32_t j, float l, const float* p, const float* qi, const float* qj, float* diff,
            int skip, Worker& worker) {
    for (int32_t k = 0; k < dim_; ++k) diff[k] = qj[k] - qi[k];
    if (text_.dim > 0) {
      // diff += P (t_j - t_i); the projection's gradient l (t_j - t_i) (x) p
      // is summed in the worker (see flush_text).
      const float* ti = text_.row(i);
      const float* tj = text_.row(j);
      for (int32_t a = 0; a < text_.dim; ++a) {
        const float c = tj[a] - ti[a];
        if (c == 0.0f) continue;
        const float* v = projection_.row(a);
        for (int32_t k = 0; k < dim_; ++k) diff[k] += c * v[k];
        const float g = l * c;
        float* gr = worker.text_grad.data() + static_cast<size_t>(a) * static_cast<size_t>(dim_);
        for (int32_t k = 0; k < dim_; ++k) gr[k] += g * p[k];
        worker.text_bias_grad[static_cast<size_t>(a)] += g;
        if (!worker.is_touched[static_cast<size_t>(a)]) {
          worker.is_touched[static_cast<size_t>(a)] = 1;
          worker.touched.push_back(a);
        }
      }
    }
    update_rows(item_rows_, i, skip, -l, p, items_, item_slots_, static_cast<float>(o_.item_alpha));
    update_rows(item_rows_, j, skip, l, p, items_, item_slots_, static_cast<float>(o_.item_alpha));
    update_rows(user_rows_, u, 0, l, diff, users_, user_slots_, static_cast<float>(o_.user_alpha));
    if (text_.dim > 0 && ++worker.steps >= o_.text_batch) flush_text(worker);
  }

  // One optimizer step on the projection rows with a summed gradient G
  // (+ L2 item_alpha P), then the sums restart.
  void flush_text(Worker& w) {
    const auto alpha = static_cast<float>(o_.item_alpha);
    for (int32_t k : w.touched) {
      const size_t base = static_cast<size_t>(k) * static_cast<size_t>(dim_);
      float* x = projection_.vectors.data() + base;
      float* gs = projection_slots_.grad_sq.data() + base;
      float* gr = w.text_grad.data() + base;
      float& b = projection_.bias[static_cast<size_t>(k)];
      float& gb = w.text_bias_grad[static_cast<size_t>(k)];
      if (!o_.adadelta) {
        adagrad_row_fast(x, gs, gr, 1.0f, alpha, lr_, dim_);
        float& bg = projection_slots_.bias_grad_sq[static_cast<size_t>(k)];
        bg += gb * gb;
        b -= lr_ * gb / std::sqrt(bg);
      } else {
        float* ds = projection_slots_.delta_sq.data() + base;
        for (int32_t m = 0; m < dim_; ++m) adadelta(x[m], gs[m], ds[m], gr[m] + alpha * x[m]);
        adadelta(b, projection_slots_.bias_grad_sq[static_cast<size_t>(k)],
                 projection_slots_.bias_delta_sq[static_cast<size_t>(k)], gb);
      }
      std::fill_n(gr, dim_, 0.0f);
      gb = 0.0f;
      w.is_touched[static_cast<size_t>(k)] = 0;
    }
    w.touched.clear();
    w.steps = 0;
  }

  // Every feature f (weight w) of row r but the first `skip`: gradient
  // scale * w * direction (+ L2), bias gradient scale * w.
  void update_rows(const FeatureRows& rows, int32_t r, int skip, float scale, const float* direction, Embeddings& e,
                   Slots& s, float alpha) {
    const int64_t end = rows.offsets[static_cast<size_t>(r) + 1];
    for (int64_t a = std::min(end, rows.offsets[static_cast<size_t>(r)] + skip); a < end; ++a) {
      const int32_t f = rows.features[static_cast<size_t>(a)];
      const float g = scale * rows.weights[static_cast<size_t>(a)];
      const size_t base = static_cast<size_t>(f) * static_cast<size_t>(dim_);
      float* x = e.vectors.data() + base;
      float* gs = s.grad_sq.data() + base;
      if (!o_.adadelta) {
        adagrad_row(x, gs, direction, g, alpha, lr_, dim_);
        if (!e.bias.empty()) {
          float& bg = s.bias_grad_sq[static_cast<size_t>(f)];
          bg += g * g;
          e.bias[static_cast<size_t>(f)] -= lr_ * g / std::sqrt(bg);
        }
      } else {
        float* ds = s.delta_sq.data() + base;
        for (int32_t k = 0; k < dim_; ++k) {
          const float grad = g * direction[k] + alpha * x[k];
          adadelta(x[k], gs[k], ds[k], grad);
        }
        if (!e.bias.empty())
          adadelta(e.bias[static_cast<size_t>(f)], s.bias_grad_sq[static_cast<size_t>(f)],
                   s.bias_delta_sq[static_cast<size_t>(f)], g);
      }
    }
  }

  void adadelta(float& x, float& gs, float& ds, float grad) const {
    gs = rho_ * gs + (1.0f - rho_) * grad * grad;
    const float delta = std::sqrt(ds + eps_) / std::sqrt(gs + eps_) * grad;
    ds = rho_ * ds + (1.0f - rho_) * delta * delta;
    x -= delta;
  }

  const FeatureRows& user_rows_;
  const FeatureRows& item_rows_;
  std::span<const int64_t> offsets_;
  std::span<const int32_t> positives_;
  std::span<const int32_t> candidates_;
  Embeddings& users_;
  Embeddings& items_;
  const ItemText& text_;
  Embeddings& projection_;
  const TrainerOptions& o_;
  int32_t dim_;
  float lr_, rho_, eps_;
  double drop_ids_;
  Slots user_slots_, item_slots_, projection_slots_;
};

}  // namespace

float add_text(const float* t, int32_t text_dim, const Embeddings& projection, float* out) {
  const int32_t d = projection.dim;
  float bias = 0.0f;
  for (int32_t k = 0; k < text_dim; ++k) {
    const float w = t[k];
    if (w == 0.0f) continue;
    const float* v = projection.row(k);
    for (int32_t m = 0; m < d; ++m) out[m] += w * v[m];
    bias += w * projection.bias[static_cast<size_t>(k)];
  }
  return bias;
}

float represent(const FeatureRows& rows, int32_t r, const Embeddings& e, float* out, int skip) {
  const int32_t d = e.dim;
  std::fill(out, out + d, 0.0f);
  float bias = 0.0f;
  const int64_t end = rows.offsets[static_cast<size_t>(r) + 1];
  for (int64_t a = std::min(end, rows.offsets[static_cast<size_t>(r)] + skip); a < end; ++a) {
    const int32_t f = rows.features[static_cast<size_t>(a)];
    const float w = rows.weights[static_cast<size_t>(a)];
    const float* v = e.row(f);
    for (int32_t k = 0; k < d; ++k) out[k] += w * v[k];
    if (!e.bias.empty()) bias += w * e.bias[static_cast<size_t>(f)];
  }
  return bias;
}

TrainResult train(const FeatureRows& user_rows, const FeatureRows& item_rows,
                  std::span<const int64_t> positive_offsets, std::span<const int32_t> positives,
                  std::span<const int32_t> candidates, Embeddings& users, Embeddings& items,
                  const ItemText& text, Embeddings& projection, const TrainerOptions& options,
                  core::Monitor& monitor) {
  FEWREC_ASSERT(users.dim == items.dim && users.dim > 0);
  FEWREC_ASSERT(text.dim == 0 || (projection.dim == items.dim && projection.count() == text.dim &&
                                  projection.bias.size() == static_cast<size_t>(text.dim) &&
                                  text.vectors.size() == static_cast<size_t>(item_rows.rows()) *
                                                             static_cast<size_t>(text.dim)));
  FEWREC_ASSERT(positive_offsets.size() == static_cast<size_t>(user_rows.rows()) + 1);
  TrainResult result;
  const auto n_pairs = static_cast<int64_t>(positives.size());
  if (n_pairs == 0 || item_rows.rows() == 0) return result;

  std::vector<int32_t> pair_user(static_cast<size_t>(n_pairs));
  for (int32_t u = 0; u < user_rows.rows(); ++u)
    std::fill(pair_user.begin() + positive_offsets[static_cast<size_t>(u)],
              pair_user.begin() + positive_offsets[static_cast<size_t>(u) + 1], u);

  Trainer trainer(user_rows, item_rows, positive_offsets, positives, candidates, users, items, text, projection,
                  options);
  const int threads = core::resolve_threads(options.threads);
  std::vector<Worker> workers(static_cast<size_t>(threads));
  std::vector<double> worker_loss(static_cast<size_t>(threads));
  std::vector<int64_t> order(static_cast<size_t>(n_pairs));
  std::iota(order.begin(), order.end(), int64_t{0});
  constexpr int64_t kGrain = 2048;

  core::ProgressScope progress(monitor, fmt::format("{} training", options.model), options.epochs * n_pairs);
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    core::Rng order_rng(
        core::derive_seed(core::derive_seed(options.seed, kOrderStream), static_cast<uint64_t>(epoch)));
    for (size_t k = order.size(); k > 1; --k) std::swap(order[k - 1], order[core::uniform_index(order_rng, k)]);
    const uint64_t negative_seed =
        core::derive_seed(core::derive_seed(options.seed, kNegativeStream), static_cast<uint64_t>(epoch));
    std::fill(worker_loss.begin(), worker_loss.end(), 0.0);
    core::parallel_for(
        0, n_pairs, threads,
        [&](int64_t begin, int64_t end, int worker) {
          worker_loss[static_cast<size_t>(worker)] +=
              trainer.run_chunk(order, pair_user, begin, end, negative_seed, workers[static_cast<size_t>(worker)]);
          progress.advance(end - begin);
        },
        kGrain);
    const double loss = std::accumulate(worker_loss.begin(), worker_loss.end(), 0.0) / static_cast<double>(n_pairs);
    if (const char* side = trainer.non_finite(); side != nullptr || !std::isfinite(loss))
      FEWREC_THROW(kInvalidArgument,
                   "model `{}`: training diverged at epoch {} ({} parameters became non-finite); lower "
                   "learning_rate (now {})",
                   options.model, epoch + 1, side != nullptr ? side : "loss", options.learning_rate);
    result.epoch_loss.push_back(loss);
    monitor.metric(options.warp ? "warp_loss" : "bpr_loss", loss, epoch + 1);
  }
  return result;
}

}  // namespace fewrec::models::hybrid

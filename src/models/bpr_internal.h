// BPR-MF per-sample objective and SGD kernels (internal to the models layer;
// exposed for the gradient tests).
//
// For a user u, a positive item p and a sampled negative n:
//
//   x    = <w_u, h_p - h_n> + b_p - b_n           (biases only with use_bias)
//   loss = -ln sigma(x)
//          + reg/2 * (|w_u|^2 + |h_p|^2 + |h_n|^2) + bias_reg/2 * (b_p^2 + b_n^2)
//
// and with z = 1 - sigma(x) = sigma(-x):
//
//   d loss / d w_u = -z (h_p - h_n) + reg w_u
//   d loss / d h_p = -z w_u + reg h_p          d loss / d b_p = -z + bias_reg b_p
//   d loss / d h_n =  z w_u + reg h_n          d loss / d b_n =  z + bias_reg b_n
//
// sgd_step() applies theta -= lr * gradient to all of them at once (every
// gradient uses the values before the step), like Rendle et al. (2009) and
// the `implicit` library.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fewrec/core/rng.h"

namespace fewrec::models::bpr {

struct StepParams {
  double learning_rate = 0.05;
  double regularization = 0.01;       // user and item factors
  double bias_regularization = 0.01;  // item biases
};

// The per-sample objective above in double precision. bias_pos / bias_neg
// may be null (no biases).
template <class T>
double sample_loss(const T* user, const T* pos, const T* neg, const T* bias_pos, const T* bias_neg,
                   int32_t dim, const StepParams& params) {
  double x = 0, norms = 0;
  for (int32_t k = 0; k < dim; ++k) {
    x += static_cast<double>(user[k]) * (static_cast<double>(pos[k]) - static_cast<double>(neg[k]));
    norms += static_cast<double>(user[k]) * user[k] + static_cast<double>(pos[k]) * pos[k] +
             static_cast<double>(neg[k]) * neg[k];
  }
  double bias_norms = 0;
  if (bias_pos != nullptr) {
    x += static_cast<double>(*bias_pos) - static_cast<double>(*bias_neg);
    bias_norms = static_cast<double>(*bias_pos) * *bias_pos + static_cast<double>(*bias_neg) * *bias_neg;
  }
  // -ln sigma(x) = ln(1 + e^-x), computed without overflow.
  const double nll = x > 0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x));
  return nll + 0.5 * params.regularization * norms + 0.5 * params.bias_regularization * bias_norms;
}

// Analytic gradient of sample_loss (double precision).
struct Gradient {
  std::vector<double> user, pos, neg;
  double bias_pos = 0, bias_neg = 0;
};

template <class T>
Gradient sample_gradient(const T* user, const T* pos, const T* neg, const T* bias_pos, const T* bias_neg,
                         int32_t dim, const StepParams& params) {
  double x = 0;
  for (int32_t k = 0; k < dim; ++k)
    x += static_cast<double>(user[k]) * (static_cast<double>(pos[k]) - static_cast<double>(neg[k]));
  if (bias_pos != nullptr) x += static_cast<double>(*bias_pos) - static_cast<double>(*bias_neg);
  const double z = 1.0 / (1.0 + std::exp(x));
  const double reg = params.regularization;
  Gradient g;
  g.user.resize(static_cast<size_t>(dim));
  g.pos.resize(static_cast<size_t>(dim));
  g.neg.resize(static_cast<size_t>(dim));
  for (int32_t k = 0; k < dim; ++k) {
    const auto i = static_cast<size_t>(k);
    g.user[i] = -z * (static_cast<double>(pos[k]) - neg[k]) + reg * user[k];
    g.pos[i] = -z * user[k] + reg * pos[k];
    g.neg[i] = z * user[k] + reg * neg[k];
  }
  if (bias_pos != nullptr) {
    g.bias_pos = -z + params.bias_regularization * *bias_pos;
    g.bias_neg = z + params.bias_regularization * *bias_neg;
  }
  return g;
}

// The training kernel: one SGD step on (user, pos, neg[, biases]) in place.
// Returns x (the score difference) before the step. The float version is the
// vectorised one used in training (AVX2 + FMA when the CPU has them, chosen at
// run time; kernel_name() says which); sgd_step_portable is the SSE version
// every x86-64 CPU runs; the double one is the plain reference.
float sgd_step(float* user, float* pos, float* neg, float* bias_pos, float* bias_neg, int32_t dim,
               const StepParams& params);
float sgd_step_portable(float* user, float* pos, float* neg, float* bias_pos, float* bias_neg, int32_t dim,
                        const StepParams& params);
const char* kernel_name();  // "avx2" or "sse"
double sgd_step(double* user, double* pos, double* neg, double* bias_pos, double* bias_neg, int32_t dim,
                const StepParams& params);

// Fold-in kernel: the same step on the user vector only (items frozen), with
// the L2 term pulling the user towards `prior` instead of zero:
//   user -= lr * (-z (pos - neg) + regularization * (user - prior)).
// Returns x before the step.
float fold_in_step(float* user, const float* prior, const float* pos, const float* neg, float bias_pos,
                   float bias_neg, int32_t dim, const StepParams& params);

// Blocked Bloom filter over the training (user, item) pairs: a cheap,
// prefetchable first answer to "is j one of u's items?". "No" is exact;
// "maybe" is confirmed by a binary search over the user's sorted items.
// 16 bits per pair, 3 bits per pair inside one 64-byte block: ~1% of the
// absent pairs answer "maybe".
class MembershipFilter {
 public:
  static constexpr int kWordsPerBlock = 8;  // 512 bits, one cache line

  explicit MembershipFilter(int64_t pairs)
      : blocks_(static_cast<uint64_t>(std::clamp<int64_t>((pairs * 16 + 511) / 512, 1, UINT32_MAX))),
        words_(static_cast<size_t>(blocks_) * kWordsPerBlock, 0) {}

  const uint64_t* block(int32_t user, int32_t item) const {
    const uint64_t h = hash(user, item);
    return words_.data() + static_cast<size_t>(((h >> 32) * blocks_) >> 32) * kWordsPerBlock;
  }
  static bool maybe_in_block(const uint64_t* block, int32_t user, int32_t item) {
    const uint64_t h = hash(user, item);
    bool all = true;
    for (int k = 0; k < 3; ++k) {
      const auto bit = static_cast<uint32_t>(h >> (9 * k)) & 511u;
      all = all && ((block[bit >> 6] >> (bit & 63)) & 1u);
    }
    return all;
  }
  bool maybe_contains(int32_t user, int32_t item) const {
    return maybe_in_block(block(user, item), user, item);
  }
  // Thread-safe (atomic OR).
  void insert(int32_t user, int32_t item) {
    const uint64_t h = hash(user, item);
    uint64_t* b = words_.data() + static_cast<size_t>(((h >> 32) * blocks_) >> 32) * kWordsPerBlock;
    for (int k = 0; k < 3; ++k) {
      const auto bit = static_cast<uint32_t>(h >> (9 * k)) & 511u;
      std::atomic_ref<uint64_t>(b[bit >> 6]).fetch_or(uint64_t{1} << (bit & 63), std::memory_order_relaxed);
    }
  }
 private:
  static uint64_t hash(int32_t user, int32_t item) {
    return core::derive_seed(0x62707266696c7472ULL,  // "bprfiltr"
                             (static_cast<uint64_t>(static_cast<uint32_t>(user)) << 32) | static_cast<uint32_t>(item));
  }
  uint64_t blocks_;  // < 2^32 (the block index is ((h >> 32) * blocks_) >> 32)
  std::vector<uint64_t> words_;
};

}  // namespace fewrec::models::bpr

// Deterministic random numbers: every component takes a seed; independent
// streams are derived with derive_seed so results do not depend on threads.
#pragma once

#include <cstdint>
#include <random>

namespace fewrec::core {

using Rng = std::mt19937_64;

// SplitMix64 mix of (seed, stream): stable across platforms and releases.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Uniform integer in [0, n) without std::uniform_int_distribution's
// implementation-defined algorithm (reproducible across standard libraries).
inline uint64_t uniform_index(Rng& rng, uint64_t n) {
  // Lemire's multiply-shift with rejection.
  uint64_t x = rng();
  __uint128_t m = static_cast<__uint128_t>(x) * n;
  uint64_t l = static_cast<uint64_t>(m);
  if (l < n) {
    uint64_t t = (0 - n) % n;
    while (l < t) {
      x = rng();
      m = static_cast<__uint128_t>(x) * n;
      l = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

// Uniform double in [0, 1).
inline double uniform01(Rng& rng) { return (rng() >> 11) * 0x1.0p-53; }

// Standard normal via Box-Muller (reproducible across standard libraries).
double normal01(Rng& rng);

}  // namespace fewrec::core

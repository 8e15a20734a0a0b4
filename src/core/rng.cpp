#include "fewrec/core/rng.h"

#include <cmath>
#include <numbers>

namespace fewrec::core {

double normal01(Rng& rng) {
  // Box-Muller with both uniforms drawn through uniform01 (fixed algorithm, so
  // the stream is identical on every standard library). u1 is in (0, 1] so the
  // log is finite; the second (sine) variate is dropped to keep the function
  // stateless.
  const double u1 = 1.0 - uniform01(rng);
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace fewrec::core

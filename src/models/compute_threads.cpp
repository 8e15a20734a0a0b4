// set_compute_threads(): the LibTorch / BLAS thread budget of the models.
#include "fewrec/models/model.h"
#include "fewrec/train/train.h"

namespace fewrec::models {

void set_compute_threads(int threads) { train::set_threads(threads); }

}  // namespace fewrec::models

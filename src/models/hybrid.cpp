// Placeholder until the hybrid model lands: registers nothing.
#include "builtin.h"

namespace fewrec::models {

void register_hybrid(ModelRegistry&) {}

}  // namespace fewrec::models

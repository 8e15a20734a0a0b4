// Placeholder until the bpr model lands: registers nothing.
#include "builtin.h"

namespace fewrec::models {

void register_bpr(ModelRegistry&) {}

}  // namespace fewrec::models

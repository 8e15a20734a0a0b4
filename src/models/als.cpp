// Placeholder until the als model lands: registers nothing.
#include "builtin.h"

namespace fewrec::models {

void register_als(ModelRegistry&) {}

}  // namespace fewrec::models

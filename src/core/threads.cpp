#include "fewrec/core/threads.h"

#include <sched.h>

namespace fewrec::core {

namespace {

// Threads this process may run on: the CPU affinity mask (respects taskset and
// container cpusets), else std::thread::hardware_concurrency(), else 1.
int available_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

}  // namespace

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  return std::max(1, available_threads());
}

}  // namespace fewrec::core

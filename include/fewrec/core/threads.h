// Threads: resolve a `threads` option and run loops in parallel, carrying the
// first worker exception back to the caller (no exception escapes a thread).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace fewrec::core {

// 0 or negative -> all hardware threads; never less than 1.
int resolve_threads(int requested);

// Calls fn(begin, end, worker) on contiguous chunks of [begin, end) using up
// to `threads` threads (dynamic scheduling in chunks of `grain`). The first
// exception thrown by any worker is rethrown here after all workers joined.
template <class Fn>
void parallel_for(int64_t begin, int64_t end, int threads, Fn&& fn, int64_t grain = 64) {
  if (end <= begin) return;
  threads = resolve_threads(threads);
  const int64_t n = end - begin;
  grain = std::max<int64_t>(1, grain);
  const int64_t chunks = (n + grain - 1) / grain;
  const int workers = static_cast<int>(std::min<int64_t>(threads, chunks));
  if (workers <= 1) {
    fn(begin, end, 0);
    return;
  }
  std::atomic_int64_t next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  std::atomic_bool failed{false};
  auto work = [&](int worker) {
    try {
      while (!failed.load(std::memory_order_relaxed)) {
        int64_t c = next.fetch_add(1);
        if (c >= chunks) break;
        int64_t b = begin + c * grain;
        int64_t e = std::min(end, b + grain);
        fn(b, e, worker);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> pool;
  try {
    pool.reserve(workers - 1);
    for (int w = 1; w < workers; ++w) pool.emplace_back(work, w);
  } catch (...) {  // could not start a thread: stop the started ones, then report
    failed = true;
    for (auto& t : pool) t.join();
    throw;
  }
  work(0);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace fewrec::core

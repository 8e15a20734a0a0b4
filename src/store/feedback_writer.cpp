// Group commit of feedback; see feedback_writer.h.
#include "fewrec/store/feedback_writer.h"

#include <exception>
#include <vector>

#include "fewrec/core/error.h"

namespace fewrec::store {

// One write() call waiting for its commit; lives on the caller's stack.
struct FeedbackWriter::Request {
  std::span<const FeedbackRecord> events;
  int64_t fresh = 0;
  std::exception_ptr error;
  bool done = false;
};

FeedbackWriter::FeedbackWriter(Store& store, FeedbackWriterOptions options)
    : store_(store), options_(options) {
  FEWREC_CHECK(options_.max_group_events >= 1, kInvalidArgument,
               "feedback writer: max_group_events must be >= 1, got {}", options_.max_group_events);
  FEWREC_CHECK(options_.max_queued_events >= 1, kInvalidArgument,
               "feedback writer: max_queued_events must be >= 1, got {}", options_.max_queued_events);
  FEWREC_CHECK(options_.linger.count() >= 0, kInvalidArgument,
               "feedback writer: linger must be >= 0 microseconds, got {}", options_.linger.count());
  thread_ = std::thread([this] { run(); });
}

FeedbackWriter::~FeedbackWriter() { close(); }

int64_t FeedbackWriter::write(std::span<const FeedbackRecord> events) {
  validate_feedback(events);
  Request r;
  r.events = events;
  const auto n = static_cast<int64_t>(events.size());
  {
    std::unique_lock lock(mu_);
    FEWREC_CHECK(!closing_, kUnavailable, "feedback writer is closed; {} events not stored", n);
    if (n == 0) return 0;
    // Back-pressure; a batch larger than the whole queue still goes in alone.
    space_cv_.wait(lock, [&] {
      return closing_ || queued_events_ == 0 || queued_events_ + n <= options_.max_queued_events;
    });
    FEWREC_CHECK(!closing_, kUnavailable, "feedback writer is closed; {} events not stored", n);
    queue_.push_back(&r);
    queued_events_ += n;
    work_cv_.notify_one();
    done_cv_.wait(lock, [&] { return r.done; });
  }
  if (r.error) std::rethrow_exception(r.error);
  return r.fresh;
}

void FeedbackWriter::close() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  work_cv_.notify_all();
  space_cv_.notify_all();
  std::lock_guard join(join_mu_);
  if (thread_.joinable()) thread_.join();
}

FeedbackWriterStats FeedbackWriter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void FeedbackWriter::run() {
  std::vector<Request*> group;
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
    if (queue_.empty()) break;  // closing and drained
    if (options_.linger.count() > 0 && !closing_) {
      work_cv_.wait_for(lock, options_.linger,
                        [&] { return closing_ || queued_events_ >= options_.max_group_events; });
    }
    // Take queued batches up to max_group_events (always at least one).
    group.clear();
    int64_t taken = 0;
    while (!queue_.empty()) {
      const auto n = static_cast<int64_t>(queue_.front()->events.size());
      if (!group.empty() && taken + n > options_.max_group_events) break;
      group.push_back(queue_.front());
      queue_.pop_front();
      taken += n;
    }
    queued_events_ -= taken;
    space_cv_.notify_all();

    lock.unlock();
    commit(group);
    lock.lock();

    for (Request* r : group) {
      stats_.batches += 1;
      stats_.events += static_cast<int64_t>(r->events.size());
      if (r->error) stats_.failed_batches += 1;
      else stats_.new_events += r->fresh;
      r->done = true;  // the caller may return (and free r) once it sees this
    }
    done_cv_.notify_all();
  }
}

// Stores the group in one transaction; when that fails, each batch on its
// own so only the batches that fail get an error. Never throws.
void FeedbackWriter::commit(std::vector<Request*>& group) {
  int64_t commits = 0;
  bool stored = false;
  if (group.size() > 1) {
    try {
      std::vector<std::span<const FeedbackRecord>> batches;
      batches.reserve(group.size());
      for (const Request* r : group) batches.push_back(r->events);
      ++commits;
      const std::vector<int64_t> fresh = store_.insert_feedback_groups(batches);
      for (size_t i = 0; i < group.size(); ++i) group[i]->fresh = fresh[i];
      stored = true;
    } catch (...) {
      // Nothing of the group was written: fall through to one by one.
    }
  }
  if (!stored) {
    for (Request* r : group) {
      try {
        ++commits;
        r->fresh = store_.insert_feedback(r->events);
      } catch (...) {
        r->error = std::current_exception();
      }
    }
  }
  std::lock_guard lock(mu_);
  stats_.commits += commits;
}

}  // namespace fewrec::store

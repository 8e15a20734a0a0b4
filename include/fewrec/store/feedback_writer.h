// FeedbackWriter: group commit of feedback from many threads.
//
// Each durable commit costs one fsync (about 1.5 ms on a cloud disk), so one
// transaction per request caps a service at a few hundred events/s. Here
// request threads call write(); one writer thread takes every batch queued
// while the previous commit was running and stores them all in one
// transaction (Store::insert_feedback_groups), then wakes their callers.
// write() returns only after its events are committed, so an acknowledged
// event is as durable as the store makes it; throughput grows with the
// number of concurrent callers instead of being capped by the fsync rate.
//
// A group that fails (for example a batch naming an unknown user while the
// store rejects unknown ids) is retried batch by batch, so one bad batch fails
// its own caller only. close() (and the destructor) commits everything
// queued, then stops; write() after close() throws kUnavailable.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <thread>

#include "fewrec/store/records.h"
#include "fewrec/store/store.h"

namespace fewrec::store {

struct FeedbackWriterOptions {
  // Most events merged into one transaction (a larger batch is never split). >= 1.
  int64_t max_group_events = 50000;
  // write() waits while more events than this are queued (back-pressure). >= 1.
  int64_t max_queued_events = 1000000;
  // After the first queued batch, wait up to this long for more before
  // committing (0: commit at once; concurrent callers still group up while
  // the previous commit is running). >= 0.
  std::chrono::microseconds linger{0};
};

struct FeedbackWriterStats {
  int64_t commits = 0;     // transactions (group commits and retries)
  int64_t batches = 0;     // write() calls served
  int64_t events = 0;      // events received
  int64_t new_events = 0;  // events that were not stored before
  int64_t failed_batches = 0;
};

class FeedbackWriter {
 public:
  // `store` must outlive the writer.
  explicit FeedbackWriter(Store& store, FeedbackWriterOptions options = {});
  ~FeedbackWriter();
  FeedbackWriter(const FeedbackWriter&) = delete;
  FeedbackWriter& operator=(const FeedbackWriter&) = delete;

  // Stores `events` (validated here, on the caller's thread) and returns how
  // many were new, after their transaction committed. Thread-safe. Throws the
  // store's error when the batch could not be stored.
  int64_t write(std::span<const FeedbackRecord> events);

  // Commits everything queued and stops the writer thread. Idempotent.
  void close();

  FeedbackWriterStats stats() const;

 private:
  struct Request;
  void run();
  void commit(std::vector<Request*>& group);

  Store& store_;
  FeedbackWriterOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // writer thread: work queued or closing
  std::condition_variable done_cv_;   // callers: a group finished
  std::condition_variable space_cv_;  // callers: the queue shrank
  std::deque<Request*> queue_;
  int64_t queued_events_ = 0;
  bool closing_ = false;
  FeedbackWriterStats stats_;
  std::mutex join_mu_;  // close() from several threads joins once
  std::thread thread_;
};

}  // namespace fewrec::store

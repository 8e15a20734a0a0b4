// Monitor: how long-running library code reports progress without printing.
//
// Library code calls the Monitor; the CLI passes a StderrMonitor (a bar with
// rate and ETA on a terminal, a plain line every few seconds otherwise), tests
// pass a NullMonitor. Use ProgressScope for loops.
#pragma once

#include <chrono>
#include <cstdint>
#include <atomic>
#include <mutex>
#include <string>
#include <string_view>

namespace fewrec::core {

class Monitor {
 public:
  virtual ~Monitor() = default;
  // A free-form status line ("itemknn: 1682 items, 100 neighbours").
  virtual void info(std::string_view message) {}
  // Progress of a named task; total <= 0 means unknown. May be called often;
  // implementations throttle. Thread-safe.
  virtual void progress(std::string_view task, int64_t done, int64_t total) {}
  // Called once when a task completes.
  virtual void done(std::string_view task, int64_t total, double seconds) {}
  // A scalar to record (training curves): e.g. ("loss", 0.31, epoch).
  virtual void metric(std::string_view name, double value, int64_t step) {}
};

class NullMonitor final : public Monitor {};

// Shared default for callers that do not care.
Monitor& null_monitor();

class StderrMonitor final : public Monitor {
 public:
  // interactive: draw a bar with \r (true when stderr is a TTY by default).
  // quiet: print nothing except info().
  explicit StderrMonitor(bool quiet = false);
  StderrMonitor(bool quiet, bool interactive);
  void info(std::string_view message) override;
  void progress(std::string_view task, int64_t done, int64_t total) override;
  void done(std::string_view task, int64_t total, double seconds) override;
  void metric(std::string_view name, double value, int64_t step) override;

 private:
  bool quiet_;
  bool interactive_;
  std::mutex mu_;
  std::string task_;
  std::chrono::steady_clock::time_point task_start_;
  std::chrono::steady_clock::time_point last_print_;
  bool bar_open_ = false;
};

// RAII progress reporting for one task: advance() from any thread.
class ProgressScope {
 public:
  ProgressScope(Monitor& monitor, std::string task, int64_t total);
  ~ProgressScope();
  void advance(int64_t n = 1);
  void finish();  // idempotent; called by the destructor

 private:
  Monitor& monitor_;
  std::string task_;
  int64_t total_;
  std::atomic_int64_t done_{0};
  std::chrono::steady_clock::time_point start_;
  std::atomic_int64_t last_report_ns_{0};
  bool finished_ = false;
  // Exceptions in flight at construction: the destructor does not report a
  // task as done while an exception thrown inside the scope unwinds it.
  int uncaught_at_start_ = 0;
};

}  // namespace fewrec::core

#include "fewrec/core/monitor.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include <fmt/format.h>

#include "fewrec/core/strings.h"

namespace fewrec::core {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kInteractiveInterval = std::chrono::milliseconds(100);  // ~10 redraws/s
constexpr auto kPlainInterval = std::chrono::seconds(5);
constexpr int64_t kScopeIntervalNs = 100'000'000;  // ProgressScope -> Monitor at most 10/s
constexpr int kBarWidth = 24;
constexpr const char* kClearLine = "\r\x1b[K";

void write_stderr(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stderr);
  std::fflush(stderr);
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// "45% (4.5k/10.0k), 1.2k/s, ETA 3.0s" pieces shared by the bar and plain lines.
struct ProgressText {
  std::string rate;  // "1.2k/s" or "" when unknown
  std::string eta;   // "3.0s" or "?"
  double fraction = -1;
};

ProgressText describe(int64_t done, int64_t total, double elapsed) {
  ProgressText t;
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  if (rate > 0) t.rate = format_count(rate) + "/s";
  if (total > 0) {
    t.fraction = std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
    t.eta = rate > 0 ? format_duration(static_cast<double>(std::max<int64_t>(0, total - done)) / rate)
                     : std::string("?");
  }
  return t;
}

}  // namespace

Monitor& null_monitor() {
  static NullMonitor monitor;
  return monitor;
}

StderrMonitor::StderrMonitor(bool quiet) : StderrMonitor(quiet, ::isatty(2) == 1) {}

StderrMonitor::StderrMonitor(bool quiet, bool interactive) : quiet_(quiet), interactive_(interactive) {}

void StderrMonitor::info(std::string_view message) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  if (bar_open_) {
    out += kClearLine;
    bar_open_ = false;
    last_print_ = {};  // redraw the bar on the next progress call
  }
  out += message;
  out += '\n';
  write_stderr(out);
}

void StderrMonitor::progress(std::string_view task, int64_t done, int64_t total) {
  if (quiet_) return;
  // Progress is advisory: when another thread is printing, skip this update.
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  const auto now = Clock::now();
  if (task != task_) {
    task_ = std::string(task);
    task_start_ = now;
    // A plain log gets its first line after one interval; a bar draws at once.
    last_print_ = interactive_ ? Clock::time_point{} : now;
  }
  const bool complete = total > 0 && done >= total;
  if (interactive_) {
    if (now - last_print_ < kInteractiveInterval && !complete) return;
  } else {
    if (now - last_print_ < kPlainInterval) return;
  }
  last_print_ = now;
  const double elapsed = seconds_between(task_start_, now);
  const ProgressText t = describe(done, total, elapsed);
  std::string line;
  if (interactive_) {
    line = fmt::format("{}{}", kClearLine, task_);
    if (total > 0) {
      const int filled = static_cast<int>(t.fraction * kBarWidth);
      std::string bar(kBarWidth, ' ');
      std::fill_n(bar.begin(), filled, '=');
      if (filled < kBarWidth) bar[filled] = '>';
      line += fmt::format(" [{}] {:3.0f}% {}/{}", bar, t.fraction * 100.0, format_count(done),
                          format_count(total));
      if (!t.rate.empty()) line += fmt::format(" {}", t.rate);
      line += fmt::format(" ETA {}", t.eta);
    } else {
      line += fmt::format(" {}", format_count(done));
      if (!t.rate.empty()) line += fmt::format(" {}", t.rate);
      line += fmt::format(" {}", format_duration(elapsed));
    }
    bar_open_ = true;
  } else {
    if (total > 0) {
      line = fmt::format("{}: {:.0f}% ({}/{})", task_, t.fraction * 100.0, format_count(done),
                         format_count(total));
      if (!t.rate.empty()) line += fmt::format(", {}", t.rate);
      line += fmt::format(", ETA {}", t.eta);
    } else {
      line = fmt::format("{}: {} done", task_, format_count(done));
      if (!t.rate.empty()) line += fmt::format(", {}", t.rate);
      line += fmt::format(", elapsed {}", format_duration(elapsed));
    }
    line += '\n';
  }
  write_stderr(line);
}

void StderrMonitor::done(std::string_view task, int64_t total, double seconds) {
  if (quiet_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  if (bar_open_) {
    out += kClearLine;
    bar_open_ = false;
  }
  out += fmt::format("{}: done, {} in {}", task, format_count(static_cast<double>(total)),
                     format_duration(seconds));
  if (seconds > 0 && total > 0) out += fmt::format(" ({}/s)", format_count(total / seconds));
  out += '\n';
  write_stderr(out);
  if (task == task_) task_.clear();
}

void StderrMonitor::metric(std::string_view name, double value, int64_t step) {
  if (quiet_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  if (bar_open_) {
    out += kClearLine;
    bar_open_ = false;
    last_print_ = {};
  }
  out += fmt::format("{} = {:.6g} (step {})\n", name, value, step);
  write_stderr(out);
}

// ---------------------------------------------------------------------------

ProgressScope::ProgressScope(Monitor& monitor, std::string task, int64_t total)
    : monitor_(monitor),
      task_(std::move(task)),
      total_(total),
      start_(Clock::now()),
      uncaught_at_start_(std::uncaught_exceptions()) {
  monitor_.progress(task_, 0, total_);
}

ProgressScope::~ProgressScope() {
  if (std::uncaught_exceptions() > uncaught_at_start_) return;  // the task failed
  try {
    finish();
  } catch (...) {
    // A monitor must not turn a finished task into a crash.
  }
}

void ProgressScope::advance(int64_t n) {
  const int64_t done = done_.fetch_add(n, std::memory_order_relaxed) + n;
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
  int64_t last = last_report_ns_.load(std::memory_order_relaxed);
  if (now_ns - last < kScopeIntervalNs) return;
  // One thread wins the slot; the others skip this report.
  if (!last_report_ns_.compare_exchange_strong(last, now_ns, std::memory_order_relaxed)) return;
  monitor_.progress(task_, done, total_);
}

void ProgressScope::finish() {
  if (finished_) return;
  finished_ = true;
  monitor_.done(task_, done_.load(), seconds_between(start_, Clock::now()));
}

}  // namespace fewrec::core

#include "fewrec/core/monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

namespace fewrec::core {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

class RecordingMonitor : public Monitor {
 public:
  void progress(std::string_view task, int64_t done, int64_t total) override {
    std::lock_guard<std::mutex> lock(mu);
    progress_calls.push_back({std::string(task), done, total});
  }
  void done(std::string_view task, int64_t total, double seconds) override {
    std::lock_guard<std::mutex> lock(mu);
    done_calls.push_back({std::string(task), total, 0});
    done_seconds = seconds;
  }
  struct Call {
    std::string task;
    int64_t done, total;
  };
  std::mutex mu;
  std::vector<Call> progress_calls, done_calls;
  double done_seconds = -1;
};

size_t count(const std::string& s, std::string_view what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(StderrMonitor, PlainModePrintsOnlyFinalLineForShortTasks) {
  StderrMonitor m(/*quiet=*/false, /*interactive=*/false);
  testing::internal::CaptureStderr();
  for (int i = 0; i <= 100; ++i) m.progress("load", i, 100);
  m.done("load", 100, 2.0);
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "load: done, 100 in 2.0s (50/s)\n");
}

TEST(StderrMonitor, InteractiveDrawsBarWithPercentRateAndEta) {
  StderrMonitor m(false, true);
  testing::internal::CaptureStderr();
  m.progress("fit", 45, 100);
  const std::string out = testing::internal::GetCapturedStderr();
  // First call of a task: no time has passed, so no rate and no ETA yet.
  EXPECT_EQ(out, "\r\x1b[Kfit [==========>             ]  45% 45/100 ETA ?");
  EXPECT_EQ(out.find('\n'), std::string::npos);  // the bar stays on its line
}

TEST(StderrMonitor, InteractiveUnknownTotalShowsCount) {
  StderrMonitor m(false, true);
  testing::internal::CaptureStderr();
  m.progress("scan", 1500, 0);
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, StartsWith("\r\x1b[Kscan 1.5k "));
  EXPECT_THAT(out, Not(HasSubstr("%")));
}

TEST(StderrMonitor, InteractiveThrottlesRedraws) {
  StderrMonitor m(false, true);
  testing::internal::CaptureStderr();
  for (int i = 0; i < 1000; ++i) m.progress("fit", i, 1000);  // well under 100 ms
  m.progress("fit", 1000, 1000);                             // completion always draws
  m.done("fit", 1000, 1.0);
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_LE(count(out, "fit ["), 3u);
  EXPECT_GE(count(out, "fit ["), 2u);
  EXPECT_THAT(out, HasSubstr("[========================] 100% 1.0k/1.0k"));
  EXPECT_THAT(out, HasSubstr("\r\x1b[Kfit: done, 1.0k in 1.0s (1.0k/s)\n"));
}

TEST(StderrMonitor, InfoClosesTheBarAndQuietPrintsOnlyInfo) {
  {
    StderrMonitor m(false, true);
    testing::internal::CaptureStderr();
    m.progress("fit", 1, 10);
    m.info("hello");
    const std::string out = testing::internal::GetCapturedStderr();
    EXPECT_THAT(out, HasSubstr("\r\x1b[Khello\n"));
  }
  {
    StderrMonitor m(/*quiet=*/true, true);
    testing::internal::CaptureStderr();
    m.progress("fit", 1, 10);
    m.metric("loss", 0.5, 1);
    m.done("fit", 10, 1.0);
    m.info("only this");
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "only this\n");
  }
}

TEST(StderrMonitor, Metric) {
  StderrMonitor m(false, false);
  testing::internal::CaptureStderr();
  m.metric("loss", 0.3125, 7);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "loss = 0.3125 (step 7)\n");
}

TEST(StderrMonitor, ConcurrentProgressIsSafe) {
  StderrMonitor m(false, true);
  testing::internal::CaptureStderr();
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) m.progress("p", i, 10000);
    });
  for (auto& t : ts) t.join();
  m.done("p", 10000, 0.5);
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, HasSubstr("p: done, 10.0k in 0.5s"));
}

TEST(ProgressScope, ReportsDoneOnceWithCount) {
  RecordingMonitor m;
  {
    ProgressScope scope(m, "epoch", 50);
    for (int i = 0; i < 50; ++i) scope.advance();
    scope.finish();
    scope.finish();  // idempotent
  }
  ASSERT_EQ(m.done_calls.size(), 1u);
  EXPECT_EQ(m.done_calls[0].task, "epoch");
  EXPECT_EQ(m.done_calls[0].done, 50);
  EXPECT_GE(m.done_seconds, 0.0);
  ASSERT_FALSE(m.progress_calls.empty());
  EXPECT_EQ(m.progress_calls[0].done, 0);  // initial report
  EXPECT_EQ(m.progress_calls[0].total, 50);
}

TEST(ProgressScope, AdvanceIsThreadSafeAndThrottled) {
  RecordingMonitor m;
  {
    ProgressScope scope(m, "users", 4 * 100000);
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 100000; ++i) scope.advance();
      });
    for (auto& t : ts) t.join();
  }
  ASSERT_EQ(m.done_calls.size(), 1u);
  EXPECT_EQ(m.done_calls[0].done, 400000);
  // 400k advances, but the monitor hears about them at most ~10 times a second.
  EXPECT_LT(m.progress_calls.size(), 1000u);
  for (const auto& c : m.progress_calls) EXPECT_LE(c.done, 400000);
}

TEST(ProgressScope, NoDoneWhenUnwindingFromAnError) {
  RecordingMonitor m;
  try {
    ProgressScope scope(m, "fit", 10);
    scope.advance(3);
    throw std::runtime_error("failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(m.done_calls.empty());
}

TEST(NullMonitor, IsShared) {
  EXPECT_EQ(&null_monitor(), &null_monitor());
  ProgressScope scope(null_monitor(), "x", 3);
  scope.advance(3);
}

}  // namespace
}  // namespace fewrec::core

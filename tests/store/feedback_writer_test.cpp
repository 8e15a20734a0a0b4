// FeedbackWriter: concurrent group commit loses and duplicates nothing,
// isolates bad batches, drains on close, and every acknowledged event
// survives a SIGKILL of the writing process.
#include "fewrec/store/feedback_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "fewrec/core/error.h"
#include "fewrec/store/store.h"

namespace fewrec::store {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Identity = std::tuple<std::string, std::string, std::string, int64_t>;

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("fewrec_writer_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

Identity identity(const FeedbackRecord& e) { return {e.user, e.item, e.type, e.timestamp}; }

// Stored events by identity, with how often each identity occurs.
std::map<Identity, std::pair<FeedbackRecord, int>> stored(const Store& s) {
  std::map<Identity, std::pair<FeedbackRecord, int>> out;
  s.for_each_feedback([&](const FeedbackRecord& e) {
    auto& slot = out[identity(e)];
    slot.first = e;
    slot.second += 1;
  });
  return out;
}

TEST(FeedbackWriter, EightThreadsLoseNothingAndDuplicateNothing) {
  TempDir dir;
  auto store = open_sqlite_store(dir.file("w.db"));
  FeedbackWriter writer(*store);
  constexpr int kThreads = 8, kBatches = 60;
  // Events come from a small universe so that threads send the same
  // identities; the value is a function of the identity.
  auto event = [](std::mt19937& rng) {
    const int u = static_cast<int>(rng() % 20), i = static_cast<int>(rng() % 40);
    const int64_t ts = static_cast<int64_t>(rng() % 8);
    const std::string type = rng() % 3 == 0 ? "like" : "click";
    return FeedbackRecord{"u" + std::to_string(u), "i" + std::to_string(i), type,
                          static_cast<float>(u * 1000 + i + ts), ts};
  };
  std::vector<std::vector<std::vector<FeedbackRecord>>> sent(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    std::mt19937 rng(100 + t);
    for (int b = 0; b < kBatches; ++b) {
      auto& batch = sent[t].emplace_back();
      const int n = 1 + static_cast<int>(rng() % 6);
      for (int k = 0; k < n; ++k) batch.push_back(event(rng));
    }
  }
  std::atomic<int64_t> fresh{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (const auto& batch : sent[t]) fresh += writer.write(batch);
    });
  for (auto& th : threads) th.join();

  std::set<Identity> expected;
  int64_t total = 0;
  for (const auto& per_thread : sent)
    for (const auto& batch : per_thread)
      for (const auto& e : batch) {
        expected.insert(identity(e));
        ++total;
      }
  ASSERT_LT(static_cast<int64_t>(expected.size()), total) << "the test needs duplicate identities";
  EXPECT_EQ(fresh.load(), static_cast<int64_t>(expected.size()));  // each counted new exactly once
  const auto got = stored(*store);
  EXPECT_EQ(static_cast<int64_t>(got.size()), static_cast<int64_t>(expected.size()));
  for (const auto& id : expected) {
    auto it = got.find(id);
    ASSERT_NE(it, got.end()) << "lost " << std::get<0>(id) << " " << std::get<1>(id);
    EXPECT_EQ(it->second.second, 1);
    const float want = static_cast<float>(std::stoi(std::get<0>(id).substr(1)) * 1000 +
                                          std::stoi(std::get<1>(id).substr(1)) + std::get<3>(id));
    EXPECT_EQ(it->second.first.value, want);
  }
  const FeedbackWriterStats st = writer.stats();
  EXPECT_EQ(st.batches, kThreads * kBatches);
  EXPECT_EQ(st.events, total);
  EXPECT_EQ(st.new_events, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(st.failed_batches, 0);
  EXPECT_GE(st.commits, 1);
  EXPECT_LE(st.commits, st.batches);
}

TEST(FeedbackWriter, ABadBatchFailsOnlyItsOwnCaller) {
  TempDir dir;
  SqliteOptions o;
  o.unknown_ids = UnknownIds::kReject;
  auto store = open_sqlite_store(dir.file("w.db"), o);
  for (int u = 0; u < 6; ++u) store->upsert_user(UserRecord{.id = "u" + std::to_string(u)});
  store->upsert_item(ItemRecord{.id = "i"});
  // Linger so that the batches are likely merged into one group (the
  // outcome must be the same either way).
  FeedbackWriter writer(*store, {.linger = std::chrono::milliseconds(30)});
  std::vector<int64_t> results(6, -1);
  std::vector<std::string> errors(6);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&, t] {
      const std::string u = t == 3 ? "stranger" : "u" + std::to_string(t);
      std::vector<FeedbackRecord> batch = {{"u" + std::to_string(t), "i", "click", 1, 1}, {u, "i", "click", 1, 2}};
      try {
        results[t] = writer.write(batch);
      } catch (const Error& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 6; ++t) {
    if (t == 3) {
      EXPECT_EQ(results[t], -1);
      EXPECT_THAT(errors[t], HasSubstr("feedback 1: unknown user `stranger`"));
    } else {
      EXPECT_EQ(results[t], 2) << errors[t];
    }
  }
  EXPECT_EQ(store->count_feedback(), 10);  // all but the bad batch (atomic: its valid event too)
  EXPECT_TRUE(store->feedback_of_user("u3").empty());
  EXPECT_EQ(writer.stats().failed_batches, 1);

  // Invalid events are refused on the caller's thread with their position.
  std::vector<FeedbackRecord> invalid = {{"u0", "i", "click", 1, 1}, {"u0", "", "click", 1, 1}};
  try {
    writer.write(invalid);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.what(), HasSubstr("feedback 1 (user `u0`): item id `` is empty"));
  }
}

TEST(FeedbackWriter, CloseDrainsAndThenRefuses) {
  TempDir dir;
  auto store = open_sqlite_store(dir.file("w.db"));
  auto writer = std::make_unique<FeedbackWriter>(*store);
  std::vector<std::thread> threads;
  std::atomic<int64_t> acked{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::vector<FeedbackRecord> b = {{"u" + std::to_string(t), "i" + std::to_string(i), "click", 1, i}};
        acked += writer->write(b);
      }
    });
  for (auto& th : threads) th.join();
  writer->close();
  writer->close();  // idempotent
  EXPECT_EQ(acked.load(), 100);
  EXPECT_EQ(store->count_feedback(), 100);
  std::vector<FeedbackRecord> late = {{"u", "i", "click", 1, 1}};
  try {
    writer->write(late);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_THAT(e.what(), HasSubstr("feedback writer is closed; 1 events not stored"));
  }
  writer.reset();  // destructor after close()
  EXPECT_EQ(store->count_feedback(), 100);
}

TEST(FeedbackWriter, SmallQueueAppliesBackPressureWithoutLosingEvents) {
  TempDir dir;
  auto store = open_sqlite_store(dir.file("w.db"), {.synchronous_full = false});
  FeedbackWriter writer(*store, {.max_group_events = 3, .max_queued_events = 4});
  std::vector<std::thread> threads;
  for (int t = 0; t < 5; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::vector<FeedbackRecord> b;
        for (int k = 0; k < 1 + (i % 5); ++k)  // batches up to 5 > the queue bound
          b.push_back({"u" + std::to_string(t), "i" + std::to_string(k), "click", 1, i});
        writer.write(b);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(store->count_feedback(), 5 * (4 * (1 + 2 + 3 + 4 + 5)));
  TempDir dir2;
  auto s2 = open_sqlite_store(dir2.file("x.db"));
  try {
    FeedbackWriter bad(*s2, {.max_group_events = 0});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("max_group_events must be >= 1, got 0"));
  }
}

// ------------------------------------------------------------------ crash

// Batch `b` of the crash test: 1 to 5 events with identities unique to it.
std::vector<FeedbackRecord> crash_batch(int64_t b) {
  std::vector<FeedbackRecord> out;
  const int n = 1 + static_cast<int>(b % 5);
  for (int k = 0; k < n; ++k)
    out.push_back({"u" + std::to_string(b % 11), "i" + std::to_string(b) + "-" + std::to_string(k), "click",
                   static_cast<float>(k), b * 10 + k});
  return out;
}

// Child: writes batches from 4 threads through a FeedbackWriter forever and
// reports each acknowledged batch id on `fd`. Never returns.
[[noreturn]] void crash_child(const std::string& path, int fd) {
  try {
    auto store = open_sqlite_store(path);
    FeedbackWriter writer(*store);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int64_t b = t;; b += 4) {
          const auto batch = crash_batch(b);
          writer.write(batch);
          const auto id = static_cast<uint32_t>(b);
          if (::write(fd, &id, sizeof(id)) != sizeof(id)) _exit(4);
        }
      });
    for (auto& th : threads) th.join();
  } catch (...) {
    _exit(3);
  }
  _exit(0);
}

TEST(FeedbackWriter, AcknowledgedEventsSurviveSigkill) {
  TempDir dir;
  const std::string path = dir.file("crash.db");
  { auto s = open_sqlite_store(path); }  // schema created before the race
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(path, fds[1]);
  }
  close(fds[1]);

  std::set<uint32_t> acked;
  std::string buffer;
  char chunk[4096];
  bool killed = false;
  for (;;) {
    const ssize_t n = read(fds[0], chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child is gone
    buffer.append(chunk, static_cast<size_t>(n));
    while (buffer.size() >= 4) {
      uint32_t id;
      std::memcpy(&id, buffer.data(), 4);
      acked.insert(id);
      buffer.erase(0, 4);
    }
    if (!killed && acked.size() >= 400) {
      kill(pid, SIGKILL);  // mid-stream: writes and commits are in flight
      killed = true;
    }
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(killed) << "the child stopped early (exit status " << WEXITSTATUS(status) << ") after "
                      << acked.size() << " batches";
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(buffer.empty()) << "a torn acknowledgement";

  auto store = open_sqlite_store(path);  // recovers the WAL
  const auto got = stored(*store);
  for (uint32_t b : acked)
    for (const auto& e : crash_batch(b)) {
      auto it = got.find(identity(e));
      ASSERT_NE(it, got.end()) << "acknowledged batch " << b << " lost event " << e.item;
      EXPECT_EQ(it->second.second, 1);
      EXPECT_EQ(it->second.first, e);
    }
  // Nothing else: every stored event belongs to a batch that is complete
  // (batches are atomic), acknowledged or committed just before the kill.
  std::map<int64_t, int> per_batch;
  for (const auto& [id, slot] : got) {
    EXPECT_EQ(slot.second, 1);
    per_batch[slot.first.timestamp / 10] += 1;
  }
  const uint32_t max_acked = *acked.rbegin();
  for (const auto& [b, n] : per_batch) {
    EXPECT_EQ(n, static_cast<int>(crash_batch(b).size())) << "batch " << b << " is partial";
    EXPECT_LE(b, static_cast<int64_t>(max_acked) + 64) << "a batch the child never sent";
  }
  EXPECT_GE(per_batch.size(), acked.size());
}

}  // namespace
}  // namespace fewrec::store

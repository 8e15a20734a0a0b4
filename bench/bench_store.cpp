// bench_store: speed of the SQLite store under the service's load.
//
//   bench_store [--out out/bench_store.json] [--quick] [--seconds S]
//               [--scan-rows N] [--tmp DIR] [--keep]
//
// Cases (synchronous=FULL, so every acknowledged write is durable):
//   fsync_probe     latency of write + fdatasync on the bench's directory
//   direct          insert_feedback() from 1 thread, batch 1 (no group commit)
//   group_commit    FeedbackWriter with 1, 4, 16 concurrent writers and
//                   batches of 1 and 100 events: acknowledged events/s,
//                   commits, events per commit, write() latency p50 / p99
//   upsert          single-row user upserts/s (1 thread), and item upserts/s
//   scan            full feedback scan (time order) rows/s, and to_dataset(),
//                   for events inserted in time order and in random order
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/store/dataset_export.h"
#include "fewrec/store/feedback_writer.h"
#include "fewrec/store/store.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using fewrec::store::FeedbackRecord;

namespace {

struct Args {
  std::string out = "out/bench_store.json";
  double seconds = 4.0;      // per timed case
  int64_t scan_rows = 2000000;
  fs::path tmp;
  bool keep = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  bool quick = false;
  CLI::App app{"Speed of the SQLite store under the service's load, written as JSON.", "bench_store"};
  app.add_option("--out", a.out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", quick, "1 s per case and 200,000 scanned rows (unless given)");
  auto* seconds = app.add_option("--seconds", a.seconds, "seconds per timed case")
                      ->check(CLI::Range(0.01, 86400.0))
                      ->capture_default_str();
  auto* rows = app.add_option("--scan-rows", a.scan_rows, "rows of the scan case")
                   ->check(CLI::Range(int64_t{1}, int64_t{10000000000}))
                   ->capture_default_str();
  app.add_option("--tmp", a.tmp, "folder for the store (default: a temporary one)");
  app.add_flag("--keep", a.keep, "keep that folder");
  fewrec::bench::parse_command_line(app, argc, argv);
  if (quick && seconds->count() == 0) a.seconds = 1.0;
  if (quick && rows->count() == 0) a.scan_rows = 200000;
  return a;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

void remove_db(const fs::path& p) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(p.string() + suffix, ec);
}

// Median latency of append + fdatasync on a file in `dir`.
double fsync_probe_ms(const fs::path& dir) {
  const fs::path p = dir / "fsync_probe";
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  std::vector<double> ms;
  const std::string block(4096, 'x');
  for (int i = 0; i < 100; ++i) {
    const auto t0 = Clock::now();
    if (::write(fd, block.data(), block.size()) < 0 || ::fdatasync(fd) != 0) break;
    ms.push_back(since(t0) * 1e3);
  }
  ::close(fd);
  fs::remove(p);
  return percentile(ms, 0.5);
}

// Events of writer `w`: unique identities (user per writer, counter as time).
void fill_batch(std::vector<FeedbackRecord>& batch, int w, int64_t& counter, int size) {
  batch.clear();
  for (int k = 0; k < size; ++k, ++counter)
    batch.push_back({"user" + std::to_string(w), "item" + std::to_string(counter % 5000), "click", 1.0f, counter});
}

nlohmann::json bench_direct(const fs::path& dir, double seconds) {
  const fs::path db = dir / "direct.db";
  remove_db(db);
  auto store = fewrec::store::open_sqlite_store(db.string());
  std::vector<FeedbackRecord> batch;
  int64_t counter = 0, events = 0;
  const auto t0 = Clock::now();
  while (since(t0) < seconds) {
    fill_batch(batch, 0, counter, 1);
    events += store->insert_feedback(batch);
  }
  const double s = since(t0);
  store.reset();
  remove_db(db);
  return {{"case", "direct"}, {"writers", 1}, {"batch", 1}, {"events", events}, {"seconds", s},
          {"events_per_s", static_cast<double>(events) / s}};
}

nlohmann::json bench_group(const fs::path& dir, int writers, int batch_size, double seconds) {
  const fs::path db = dir / "group.db";
  remove_db(db);
  auto store = fewrec::store::open_sqlite_store(db.string());
  fewrec::store::FeedbackWriter writer(*store);
  std::atomic<int64_t> events{0};
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latency(static_cast<size_t>(writers));
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      std::vector<FeedbackRecord> batch;
      int64_t counter = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        fill_batch(batch, w, counter, batch_size);
        const auto t = Clock::now();
        events += writer.write(batch);
        latency[static_cast<size_t>(w)].push_back(since(t) * 1e3);
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : threads) th.join();
  const double s = since(t0);
  writer.close();
  const auto st = writer.stats();
  std::vector<double> all;
  for (const auto& l : latency) all.insert(all.end(), l.begin(), l.end());
  const int64_t stored = store->count_feedback();
  store.reset();
  remove_db(db);
  return {{"case", "group_commit"},
          {"writers", writers},
          {"batch", batch_size},
          {"events", events.load()},
          {"stored", stored},
          {"seconds", s},
          {"events_per_s", static_cast<double>(events.load()) / s},
          {"commits", st.commits},
          {"events_per_commit", st.commits ? static_cast<double>(st.events) / static_cast<double>(st.commits) : 0.0},
          {"write_ms_p50", percentile(all, 0.5)},
          {"write_ms_p99", percentile(all, 0.99)}};
}

nlohmann::json bench_upserts(const fs::path& dir, double seconds) {
  const fs::path db = dir / "upsert.db";
  remove_db(db);
  auto store = fewrec::store::open_sqlite_store(db.string());
  nlohmann::json out = nlohmann::json::array();
  {
    int64_t n = 0;
    const auto t0 = Clock::now();
    while (since(t0) < seconds) {
      fewrec::store::UserRecord u{.id = "user" + std::to_string(n % 2000)};
      u.attributes = {{"gender", n % 2 ? "f" : "m"}, {"age", std::to_string(18 + n % 50)}};
      store->upsert_user(u);
      ++n;
    }
    const double s = since(t0);
    out.push_back({{"case", "upsert_user"}, {"rows", n}, {"seconds", s}, {"rows_per_s", static_cast<double>(n) / s}});
  }
  {
    int64_t n = 0;
    const auto t0 = Clock::now();
    while (since(t0) < seconds) {
      fewrec::store::ItemRecord it{.id = "item" + std::to_string(n % 2000)};
      it.categories = {"books"};
      it.text = "A title of some length for item " + std::to_string(n);
      it.features = {{"brand", "acme"}};
      store->upsert_item(it);
      ++n;
    }
    const double s = since(t0);
    out.push_back({{"case", "upsert_item"}, {"rows", n}, {"seconds", s}, {"rows_per_s", static_cast<double>(n) / s}});
  }
  store.reset();
  remove_db(db);
  return out;
}

// Loads `rows` events (in batches of 10000) and scans them. Time-ordered
// events arrive like a live service's (increasing timestamps with jitter);
// random-ordered ones like an unsorted bulk import.
nlohmann::json bench_scan(const fs::path& dir, int64_t rows, bool random_times) {
  const fs::path db = dir / "scan.db";
  remove_db(db);
  auto store = fewrec::store::open_sqlite_store(db.string());
  const int64_t users = std::max<int64_t>(100, rows / 100), items = std::max<int64_t>(100, rows / 200);
  std::vector<FeedbackRecord> batch;
  batch.reserve(10000);
  uint64_t x = 88172645463325252ULL;  // xorshift: random users / items / times
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  const auto t_load = Clock::now();
  int64_t inserted = 0;
  for (int64_t i = 0; i < rows;) {
    batch.clear();
    for (; i < rows && batch.size() < 10000; ++i)
      batch.push_back({"user" + std::to_string(next() % users), "item" + std::to_string(next() % items),
                       next() % 4 ? "click" : "buy", static_cast<float>(next() % 5 + 1),
                       random_times ? static_cast<int64_t>(1600000000 + next() % 100000000)
                                    : 1600000000 + i * 10 + static_cast<int64_t>(next() % 100)});
    inserted += store->insert_feedback(batch);
  }
  const double load_s = since(t_load);
  const auto file_bytes = static_cast<int64_t>(fs::file_size(db)) +
                          (fs::exists(db.string() + "-wal") ? static_cast<int64_t>(fs::file_size(db.string() + "-wal")) : 0);

  int64_t scanned = 0, checksum = 0;
  const auto t_scan = Clock::now();
  store->for_each_feedback([&](const FeedbackRecord& e) {
    ++scanned;
    checksum += e.timestamp + static_cast<int64_t>(e.user.size());
  });
  const double scan_s = since(t_scan);

  const auto t_export = Clock::now();
  const auto ds = fewrec::store::to_dataset(*store);
  const double export_s = since(t_export);

  store.reset();
  remove_db(db);
  return {{"case", "scan"},
          {"order", random_times ? "random" : "time"},
          {"rows", scanned},
          {"inserted", inserted},
          {"users", users},
          {"items", items},
          {"db_bytes", file_bytes},
          {"load_seconds", load_s},
          {"load_rows_per_s", static_cast<double>(inserted) / load_s},
          {"scan_seconds", scan_s},
          {"scan_rows_per_s", static_cast<double>(scanned) / scan_s},
          {"to_dataset_seconds", export_s},
          {"to_dataset_rows_per_s", static_cast<double>(ds.num_interactions()) / export_s},
          {"checksum", checksum}};
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  const fs::path dir = args.tmp.empty()
                           ? fs::temp_directory_path() / ("fewrec_bench_store_" + std::to_string(::getpid()))
                           : args.tmp;
  nlohmann::json out;
  int status = 0;
  try {
    fs::create_directories(dir);
    out["bench"] = "store";
    out["quick"] = args.seconds < 4.0;
    out["seconds_per_case"] = args.seconds;
    out["hardware_threads"] = std::thread::hardware_concurrency();
    out["synchronous"] = "FULL";
    const double probe = fsync_probe_ms(dir);
    out["fsync_probe_ms_p50"] = probe;
    std::printf("fsync probe (append 4 KiB + fdatasync): %.3f ms\n", probe);

    nlohmann::json cases = nlohmann::json::array();
    auto show = [&](const nlohmann::json& j) {
      std::printf("%-13s writers=%-3d batch=%-4d %10.0f events/s", j["case"].get<std::string>().c_str(),
                  j["writers"].get<int>(), j["batch"].get<int>(), j["events_per_s"].get<double>());
      if (j.contains("events_per_commit"))
        std::printf("  %7.1f events/commit  write p50 %.2f ms p99 %.2f ms", j["events_per_commit"].get<double>(),
                    j["write_ms_p50"].get<double>(), j["write_ms_p99"].get<double>());
      std::printf("\n");
      std::fflush(stdout);
      cases.push_back(j);
    };
    show(bench_direct(dir, args.seconds));
    for (int batch : {1, 100})
      for (int writers : {1, 4, 16}) {
        const auto j = bench_group(dir, writers, batch, args.seconds);
        if (j["stored"] != j["events"]) {
          std::fprintf(stderr, "bench_store: %s stored %lld of %lld acknowledged events\n", j.dump().c_str(),
                       static_cast<long long>(j["stored"].get<int64_t>()),
                       static_cast<long long>(j["events"].get<int64_t>()));
          status = 1;
        }
        show(j);
      }
    for (const auto& j : bench_upserts(dir, args.seconds)) {
      std::printf("%-13s %10.0f rows/s (single-row, durable)\n", j["case"].get<std::string>().c_str(),
                  j["rows_per_s"].get<double>());
      cases.push_back(j);
    }
    for (bool random_times : {false, true}) {
      const auto scan = bench_scan(dir, args.scan_rows, random_times);
      std::printf("scan (%s order) %lld rows: load %.0f rows/s (batches of 10000), scan %.0f rows/s, "
                  "to_dataset %.0f rows/s, %.1f MB on disk\n",
                  random_times ? "random" : "time", static_cast<long long>(scan["rows"].get<int64_t>()),
                  scan["load_rows_per_s"].get<double>(), scan["scan_rows_per_s"].get<double>(),
                  scan["to_dataset_rows_per_s"].get<double>(),
                  static_cast<double>(scan["db_bytes"].get<int64_t>()) / 1e6);
      std::fflush(stdout);
      cases.push_back(scan);
    }
    out["cases"] = cases;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_store: %s\n", e.what());
    status = 1;
  }
  if (!args.keep && args.tmp.empty()) {  // a --tmp directory is the user's: only our files went
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  if (!args.out.empty()) {
    const fs::path outp(args.out);
    if (outp.has_parent_path()) fs::create_directories(outp.parent_path());
    std::ofstream f(outp);
    f << out.dump(2) << "\n";
    std::printf("wrote %s\n", args.out.c_str());
  }
  return status;
}

// bench_readers: reading speed and memory of the csv reader on synthetic
// numeric files `user,item,rating,timestamp`.
//
//   bench_readers [--out out/bench_readers.json] [--rows 1000000,10000000]
//                 [--tmp DIR] [--keep]
//
// For each size: writes the file into a temp dir, reads it with
// read_dataset (format csv), and reports rows, seconds, rows/s (total and
// for the parse phase alone), peak RSS during the read, and the ratio of the
// peak RSS growth to the estimated size of the dataset's columnar arrays.
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/dataset.h"
#include "fewrec/data/readers.h"

namespace fs = std::filesystem;

using namespace fewrec::bench;

namespace {

struct Args {
  std::string out = "out/bench_readers.json";
  std::vector<int64_t> rows = {1000000, 10000000};
  fs::path tmp;
  bool keep = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  bool quick = false;
  CLI::App app{"Reading speed and memory of the csv reader on synthetic files, written as JSON.", "bench_readers"};
  app.add_option("--out", a.out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", quick, "only 1,000,000 rows (unless --rows is given)");
  auto* rows = app.add_option("--rows", a.rows, "row counts of the generated files")
                   ->delimiter(',')
                   ->check(CLI::Range(int64_t{1}, int64_t{10000000000}))
                   ->capture_default_str();
  app.add_option("--tmp", a.tmp, "folder for the generated files (default: a temporary one)");
  app.add_flag("--keep", a.keep, "keep the generated files");
  parse_command_line(app, argc, argv);
  if (quick && rows->count() == 0) a.rows = {1000000};
  return a;
}

// Writes `rows` lines of `user,item,rating,timestamp` with integer ids in
// random order (users ~ rows/150, items ~ rows/300, like MovieLens).
int64_t write_csv(const fs::path& path, int64_t rows, int64_t users, int64_t items) {
  std::ofstream out(path, std::ios::binary);
  std::mt19937_64 rng(12345);
  std::string buf;
  buf.reserve(1 << 20);
  buf += "user,item,rating,timestamp\n";
  int64_t bytes = 0;
  char num[32];
  auto put = [&](int64_t v) {
    auto r = std::to_chars(num, num + sizeof num, v);
    buf.append(num, r.ptr);
  };
  static const char* kRatings[] = {"0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"};
  for (int64_t i = 0; i < rows; ++i) {
    put(static_cast<int64_t>(rng() % static_cast<uint64_t>(users)) + 1);
    buf += ',';
    put(static_cast<int64_t>(rng() % static_cast<uint64_t>(items)) + 1);
    buf += ',';
    buf += kRatings[rng() % 10];
    buf += ',';
    put(946684800 + static_cast<int64_t>(rng() % 700000000));
    buf += '\n';
    if (buf.size() > (1 << 20) - 64) {
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      bytes += static_cast<int64_t>(buf.size());
      buf.clear();
    }
  }
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  bytes += static_cast<int64_t>(buf.size());
  if (!out) throw std::runtime_error("cannot write " + path.string());
  return bytes;
}

// Records how long the reader's phases took.
// Records how long the reader's phases took (wall clock, and the process CPU
// time when each phase ended).
struct PhaseMonitor final : fewrec::core::Monitor {
  double parse_seconds = 0, build_seconds = 0;
  double parse_cpu_end = 0;
  int64_t parse_peak_rss = 0;  // peak RSS when parsing ended (before the dataset build)
  void done(std::string_view task, int64_t, double seconds) override {
    if (task == "build dataset") {
      build_seconds += seconds;
    } else if (task.substr(0, 5) == "read ") {
      parse_seconds += seconds;
      parse_cpu_end = cpu_seconds();
      parse_peak_rss = fewrec::core::peak_rss_bytes();
    }
  }
};

// Estimated bytes of the dataset's own arrays: the CSR interaction columns,
// the offsets, and the id maps (string + hash node + bucket per id).
int64_t ids_bytes(const fewrec::data::IdMap& ids) {
  int64_t total = 0;
  for (const auto& s : ids.ids()) total += 32 + 64 + 8 + (s.size() > 15 ? static_cast<int64_t>(s.size()) + 1 : 0);
  return total;
}

int64_t columnar_bytes(const fewrec::data::Dataset& ds) {
  const int64_t n = ds.num_interactions();
  const int64_t per_row = sizeof(fewrec::data::ItemIndex) + sizeof(int64_t) + sizeof(float) +
                          sizeof(fewrec::data::EventType) + sizeof(float);
  return n * per_row + (ds.num_users() + 1) * static_cast<int64_t>(sizeof(int64_t)) +
         ids_bytes(ds.users()) + ids_bytes(ds.items());
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  fs::path dir = args.tmp.empty() ? fs::temp_directory_path() /
                                        ("fewrec_bench_readers_" + std::to_string(::getpid()))
                                  : args.tmp;
  fs::create_directories(dir);
  nlohmann::json results = nlohmann::json::array();
  int status = 0;
  std::printf("%12s %9s %8s %8s %11s %13s %14s %8s %12s %12s %6s\n", "rows", "file_MB", "seconds",
              "cpu_s", "rows/s", "parse_rows/s", "parse_rows/cpu", "build_s", "peak_rss_MB",
              "columnar_MB", "ratio");
  try {
    for (int64_t rows : args.rows) {
      const int64_t users = std::max<int64_t>(100, rows / 150);
      const int64_t items = std::max<int64_t>(100, rows / 300);
      const fs::path file = dir / ("ratings_" + std::to_string(rows) + ".csv");
      const int64_t file_bytes = write_csv(file, rows, users, items);

      fewrec::data::ReadOptions o;
      o.format = "csv";
      o.path = file;
      o.value_column = "rating";
      o.timestamp_column = "timestamp";
      PhaseMonitor monitor;
      const bool reset = reset_peak_rss();
      const int64_t baseline = current_rss_bytes();
      const double cpu0 = cpu_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      fewrec::data::Dataset ds = fewrec::data::read_dataset(o, nullptr, &monitor);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double cpu = cpu_seconds() - cpu0;
      const int64_t peak = fewrec::core::peak_rss_bytes();
      const int64_t columnar = columnar_bytes(ds);
      const double ratio = static_cast<double>(peak - baseline) / static_cast<double>(columnar);
      if (ds.num_interactions() != rows) {
        std::fprintf(stderr, "bench_readers: read %lld rows, expected %lld\n",
                     static_cast<long long>(ds.num_interactions()), static_cast<long long>(rows));
        status = 1;
      }
      nlohmann::json r = {
          {"rows", ds.num_interactions()},
          {"users", ds.num_users()},
          {"items", ds.num_items()},
          {"file_bytes", file_bytes},
          {"seconds", seconds},
          {"rows_per_s", static_cast<double>(rows) / seconds},
          {"cpu_seconds", cpu},
          {"parse_cpu_seconds", monitor.parse_cpu_end - cpu0},
          {"parse_seconds", monitor.parse_seconds},
          {"parse_rows_per_s", monitor.parse_seconds > 0 ? static_cast<double>(rows) / monitor.parse_seconds : 0.0},
          {"parse_rows_per_cpu_s", static_cast<double>(rows) / (monitor.parse_cpu_end - cpu0)},
          {"build_seconds", monitor.build_seconds},
          {"peak_rss_bytes", peak},
          {"baseline_rss_bytes", baseline},
          {"parse_peak_rss_bytes", monitor.parse_peak_rss},
          {"parse_rss_ratio", static_cast<double>(monitor.parse_peak_rss - baseline) / static_cast<double>(columnar)},
          {"peak_rss_reset", reset},
          {"columnar_bytes", columnar},
          {"rss_ratio", ratio},
      };
      std::printf("%12lld %9.1f %8.3f %8.3f %11.0f %13.0f %14.0f %8.3f %12.1f %12.1f %6.2f\n",
                  static_cast<long long>(rows), file_bytes / 1e6, seconds, cpu, rows / seconds,
                  r["parse_rows_per_s"].get<double>(), r["parse_rows_per_cpu_s"].get<double>(),
                  monitor.build_seconds, peak / 1e6, columnar / 1e6, ratio);
      std::fflush(stdout);
      results.push_back(std::move(r));
      if (!args.keep) fs::remove(file);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_readers: %s\n", e.what());
    status = 1;
  }
  if (!args.keep && args.tmp.empty()) fs::remove_all(dir);

  nlohmann::json doc = {
      {"bench", "readers"},
      {"format", "csv user,item,rating,timestamp (integer ids, random order)"},
      {"threads", 1},
      {"hardware_threads", static_cast<int>(std::thread::hardware_concurrency())},
      {"rss_ratio_definition",
       "(peak RSS during the read - RSS before) / columnar_bytes; parse_rss_ratio: the same at the "
       "end of parsing, before Dataset construction"},
      {"columnar_bytes_definition",
       "interactions * 22 B (item, timestamp, value, event, weight) + user offsets + id maps "
       "(~104 B per id)"},
      {"results", results},
  };
  const fs::path out(args.out);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  std::ofstream f(out);
  f << doc.dump(2) << "\n";
  if (!f) {
    std::fprintf(stderr, "bench_readers: cannot write %s\n", args.out.c_str());
    return 1;
  }
  std::printf("wrote %s\n", args.out.c_str());
  return status;
}

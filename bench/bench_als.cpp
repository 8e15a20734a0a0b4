// bench_als: training speed and memory of the ALS model.
//
//   bench_als [--out out/bench_als.json] [--quick] [--ml100k DIR] [--datasets NAME,...]
//             [--factors 64,128] [--threads 1,2]
//
// Seconds per ALS iteration (median and fastest over the iterations of one
// fit, training loss included: the model sums it during the next iteration's
// first pass over the pairs, the last iteration's with a pass of its own;
// also the fit's CPU seconds per iteration, which a busy machine disturbs
// less) and peak RSS, at 64 and 128 factors with 1 and 2 threads, on:
//   ml-100k        all 100k ratings, and its 80% random training split
//                  (seed 42, what `fewrec evaluate` trains on); read from
//                  --ml100k, $FEWREC_ML100K, ../shared/data/ml-100k or
//                  ../../shared/data/ml-100k; skipped with a message if absent
//   synthetic-1M   1M interactions, 10k users, 20k items
//   synthetic-20M  20M interactions, 200k users, 200k items (not with --quick)
// Synthetic interactions: users Zipf(0.5), items Zipf(0.9) (duplicates
// possible, merged by the model as in real logs). Prints a table and writes JSON.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/dataset.h"
#include "fewrec/data/readers.h"
#include "fewrec/data/split.h"
#include "fewrec/models/registry.h"

namespace fs = std::filesystem;
using namespace fewrec;

using namespace fewrec::bench;

namespace {

struct Args {
  std::string out = "out/bench_als.json";
  bool quick = false;
  std::string ml100k;
  std::vector<std::string> datasets;  // empty = all
  std::vector<int> factors = {64, 128};
  std::vector<int> threads = {1, 2};
  bool wanted(const std::string& name) const {
    return datasets.empty() || std::find(datasets.begin(), datasets.end(), name) != datasets.end();
  }
};

Args parse_args(int argc, char** argv) {
  Args a;
  CLI::App app{"Training speed and memory of the ALS model, written as JSON.", "bench_als"};
  app.add_option("--out", a.out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", a.quick, "smaller data, for a smoke run");
  app.add_option("--ml100k", a.ml100k, "ML-100K folder (default: $FEWREC_ML100K or ../shared/data/ml-100k)");
  app.add_option("--datasets", a.datasets, "data sets to run (default: all)")->delimiter(',');
  app.add_option("--factors", a.factors, "factor counts")->delimiter(',')->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--threads", a.threads, "thread counts")->delimiter(',')->check(CLI::Range(1, 1024))->capture_default_str();
  parse_command_line(app, argc, argv);
  return a;
}

// Draws indices in [0, n) with probability proportional to (i + 1)^-exponent.
class Zipf {
 public:
  Zipf(int64_t n, double exponent) : cdf_(static_cast<size_t>(n)) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i)
      cdf_[static_cast<size_t>(i)] = sum += std::pow(static_cast<double>(i + 1), -exponent);
    for (auto& v : cdf_) v /= sum;
  }
  int32_t operator()(core::Rng& rng) const {
    const double u = core::uniform01(rng);
    const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
    return static_cast<int32_t>(std::min<size_t>(static_cast<size_t>(it - cdf_.begin()), cdf_.size() - 1));
  }

 private:
  std::vector<double> cdf_;
};

data::Dataset synthetic(int64_t interactions, int32_t users, int32_t items, uint64_t seed) {
  data::DatasetBuilder b;
  for (int32_t u = 0; u < users; ++u) b.user("u" + std::to_string(u));
  for (int32_t i = 0; i < items; ++i) b.item("i" + std::to_string(i));
  // Scatter popularity ranks over the index space (the CSR order of a real
  // catalogue does not follow popularity).
  std::vector<int32_t> user_of_rank(static_cast<size_t>(users)), item_of_rank(static_cast<size_t>(items));
  core::Rng rng(seed);
  for (int32_t i = 0; i < users; ++i) user_of_rank[static_cast<size_t>(i)] = i;
  for (int32_t i = 0; i < items; ++i) item_of_rank[static_cast<size_t>(i)] = i;
  for (int32_t i = users - 1; i > 0; --i)
    std::swap(user_of_rank[static_cast<size_t>(i)],
              user_of_rank[core::uniform_index(rng, static_cast<uint64_t>(i) + 1)]);
  for (int32_t i = items - 1; i > 0; --i)
    std::swap(item_of_rank[static_cast<size_t>(i)],
              item_of_rank[core::uniform_index(rng, static_cast<uint64_t>(i) + 1)]);
  const Zipf user_dist(users, 0.5), item_dist(items, 0.9);
  b.reserve(static_cast<size_t>(interactions));
  for (int64_t r = 0; r < interactions; ++r)
    b.add(user_of_rank[static_cast<size_t>(user_dist(rng))], item_of_rank[static_cast<size_t>(item_dist(rng))], r,
          1.0f);
  return std::move(b).build("synthetic");
}

struct Case {
  std::string name;
  data::Dataset data;
  int64_t iterations;
};

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse_args(argc, argv);
  nlohmann::json results = nlohmann::json::array();
  const std::string load_start = load_average();
  std::printf("bench_als: %u hardware threads, load average at start %s%s\n", std::thread::hardware_concurrency(),
              load_start.c_str(), args.quick ? " (--quick)" : "");
  std::printf("%-16s %7s %7s %9s %7s %7s %5s %9s %9s %9s %8s %11s %9s\n", "dataset", "users", "items", "pairs",
              "factors", "threads", "iters", "s/iter", "min_s/it", "cpu_s/it", "fit_s", "peak_rss_MB", "growth_MB");

  auto run_case = [&](const Case& c) {
    if (!args.wanted(c.name)) return;
    for (int factors : args.factors)
      for (int threads : args.threads) {
        const std::string spec =
            "als:factors=" + std::to_string(factors) + ",iterations=" + std::to_string(c.iterations);
        auto model = models::model_registry().create(models::ModelSpec::parse(spec));
        models::TrainOptions opts;
        opts.threads = threads;
        const bool reset = reset_peak_rss();
        const int64_t baseline = current_rss_bytes();
        const auto t0 = std::chrono::steady_clock::now();
        const double cpu0 = cpu_seconds();
        model->fit(c.data, opts, core::null_monitor());
        const double fit_cpu_seconds = cpu_seconds() - cpu0;
        const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const int64_t peak = core::peak_rss_bytes();
        const auto summary = model->summary();
        const auto seconds = summary.at("iteration_seconds").get<std::vector<double>>();
        const double per_iteration = median(seconds);
        const double fastest = *std::min_element(seconds.begin(), seconds.end());
        const double cpu_per_iteration = fit_cpu_seconds / static_cast<double>(c.iterations);
        std::printf("%-16s %7d %7d %9lld %7d %7d %5lld %9.4f %9.4f %9.4f %8.2f %11.1f %9s\n", c.name.c_str(),
                    c.data.num_users(), c.data.num_items(),
                    static_cast<long long>(summary.at("distinct_pairs").get<int64_t>()), factors, threads,
                    static_cast<long long>(c.iterations), per_iteration, fastest, cpu_per_iteration, fit_seconds,
                    peak / 1e6,
                    reset ? std::to_string(static_cast<int64_t>((peak - baseline) / 1e6)).c_str() : "n/a");
        std::fflush(stdout);
        results.push_back({{"dataset", c.name},
                           {"users", c.data.num_users()},
                           {"items", c.data.num_items()},
                           {"interactions", c.data.num_interactions()},
                           {"distinct_pairs", summary.at("distinct_pairs")},
                           {"factors", factors},
                           {"threads", threads},
                           {"iterations", c.iterations},
                           {"seconds_per_iteration", per_iteration},
                           {"min_seconds_per_iteration", fastest},
                           {"cpu_seconds_per_iteration", cpu_per_iteration},
                           {"iteration_seconds", seconds},
                           {"fit_seconds", fit_seconds},
                           {"fit_cpu_seconds", fit_cpu_seconds},
                           {"peak_rss_bytes", peak},
                           {"peak_rss_reset", reset},
                           {"rss_before_fit_bytes", baseline},
                           {"final_loss", summary.at("loss").back()},
                           {"load_average", load_average()}});
      }
  };

  const std::string ml = find_ml100k(args.ml100k);
  if (!args.wanted("ml-100k") && !args.wanted("ml-100k-train80")) {
  } else if (ml.empty()) {
    std::printf("ml-100k: not found (set FEWREC_ML100K or --ml100k, or run from the repo root), skipped\n");
  } else {
    data::ReadOptions ro;
    ro.format = "movielens-100k";
    ro.path = ml;
    data::Dataset full = data::read_dataset(ro);
    data::SplitOptions so;
    so.train_fraction = 0.8;
    so.seed = 42;
    data::Dataset train = data::make_split(full, so).train;
    run_case({"ml-100k", std::move(full), args.quick ? 10 : 15});
    run_case({"ml-100k-train80", std::move(train), args.quick ? 10 : 15});
  }
  if (args.wanted("synthetic-1M"))
    run_case({"synthetic-1M", synthetic(1000000, 10000, 20000, 1), args.quick ? 4 : 6});
  if (!args.quick && args.wanted("synthetic-20M"))
    run_case({"synthetic-20M", synthetic(20000000, 200000, 200000, 2), 3});

  const std::string load_end = load_average();
  std::printf("load average at end %s\n", load_end.c_str());
  nlohmann::json out = {{"benchmark", "als"},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"load_average_start", load_start},
                        {"load_average_end", load_end},
                        {"quick", args.quick},
                        {"note",
                         "seconds_per_iteration: median over the iterations of one fit (min_: fastest), both "
                         "half-steps, the Gram matrices and the training loss included (summed during the next "
                         "iteration's first pass over the pairs; the last iteration makes a pass of its own); "
                         "cpu_seconds_per_iteration: "
                         "process CPU time of the whole fit / iterations; default options (cg, 3 steps)"},
                        {"results", results}};
  const fs::path out_path(args.out);
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  std::ofstream f(out_path);
  if (!f) throw std::runtime_error("cannot write " + args.out);
  f << out.dump(2) << "\n";
  std::printf("wrote %s\n", args.out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_als: " << e.what() << "\n";
  return 1;
}

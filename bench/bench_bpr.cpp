// bench_bpr: training speed and memory of the BPR-MF model, and the latency
// of its fold-in (adapt() for a new user).
//
//   bench_bpr [--out out/bench_bpr.json] [--quick] [--ml100k DIR]
//
// Seconds per epoch (median over the epochs of one fit; sampling, SGD steps
// and the loss included) and peak RSS, at 64 and 128 factors with 1 and 2
// threads, on:
//   ml-100k-pos4-train80  ratings >= 4, 80% random split (seed 42): what
//                         `fewrec evaluate --set data.positive_threshold=4`
//                         trains on (44.3k pairs); read from --ml100k,
//                         $FEWREC_ML100K, ../shared/data/ml-100k or
//                         ../../shared/data/ml-100k; skipped if absent
//   ml-100k               all 100k ratings
//   synthetic-1M          1M interactions, 10k users, 20k items
//   synthetic-20M         20M interactions, 200k users, 200k items (not with --quick)
// Synthetic interactions: users Zipf(0.5), items Zipf(0.9) (duplicates
// possible, merged by the model), as in bench_als. Fold-in: median adapt()
// time for random 10-item histories of new users on the first data set.
// Prints a table and writes JSON.
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
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/context.h"
#include "fewrec/data/dataset.h"
#include "fewrec/data/readers.h"
#include "fewrec/data/split.h"
#include "fewrec/models/registry.h"

namespace fs = std::filesystem;
using namespace fewrec;

using namespace fewrec::bench;

namespace {

struct Args {
  std::string out = "out/bench_bpr.json";
  bool quick = false;
  std::string ml100k;
};

Args parse_args(int argc, char** argv) {
  Args a;
  CLI::App app{"Training speed and memory of the BPR-MF model and its fold-in latency, written as JSON.", "bench_bpr"};
  app.add_option("--out", a.out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", a.quick, "smaller data, for a smoke run");
  app.add_option("--ml100k", a.ml100k, "ML-100K folder (default: $FEWREC_ML100K or ../shared/data/ml-100k)");
  parse_command_line(app, argc, argv);
  return a;
}

// Indices in [0, n) with probability proportional to (i + 1)^-exponent.
class Zipf {
 public:
  Zipf(int64_t n, double exponent) : cdf_(static_cast<size_t>(n)) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) cdf_[static_cast<size_t>(i)] = sum += std::pow(static_cast<double>(i + 1), -exponent);
    for (auto& v : cdf_) v /= sum;
  }
  int32_t operator()(core::Rng& rng) const {
    const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), core::uniform01(rng));
    return static_cast<int32_t>(std::min<size_t>(static_cast<size_t>(it - cdf_.begin()), cdf_.size() - 1));
  }

 private:
  std::vector<double> cdf_;
};

// Power-law interactions; popularity ranks scattered over the index space.
data::Dataset synthetic(int64_t interactions, int32_t users, int32_t items, uint64_t seed) {
  auto catalogue = std::make_shared<data::Catalogue>();
  catalogue->users.reserve(static_cast<size_t>(users));
  catalogue->items.reserve(static_cast<size_t>(items));
  for (int32_t u = 0; u < users; ++u) catalogue->users.add("u" + std::to_string(u));
  for (int32_t i = 0; i < items; ++i) catalogue->items.add("i" + std::to_string(i));
  core::Rng rng(seed);
  auto shuffled = [&](int32_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
    for (int32_t i = n - 1; i > 0; --i)
      std::swap(v[static_cast<size_t>(i)], v[core::uniform_index(rng, static_cast<uint64_t>(i) + 1)]);
    return v;
  };
  const auto user_of_rank = shuffled(users), item_of_rank = shuffled(items);
  const Zipf user_dist(users, 0.5), item_dist(items, 0.9);
  data::InteractionColumns c;
  c.reserve(static_cast<size_t>(interactions));
  for (int64_t r = 0; r < interactions; ++r)
    c.push_back({user_of_rank[static_cast<size_t>(user_dist(rng))], item_of_rank[static_cast<size_t>(item_dist(rng))],
                 r, 1.0f, 0, 1.0f});
  return data::Dataset::from_columns(std::move(catalogue), std::move(c), "synthetic");
}

struct Case {
  std::string name;
  data::Dataset data;
  int64_t epochs;
};

// Median seconds of adapt() for `n` random new users with 10 distinct items.
double fold_in_seconds(const models::Model& model, int n) {
  core::Rng rng(99);
  std::vector<double> times;
  for (int r = 0; r < n; ++r) {
    data::UserContext ctx;
    for (int k = 0; k < 10; ++k)
      ctx.history.push_back(
          data::Event{static_cast<data::ItemIndex>(core::uniform_index(rng, static_cast<uint64_t>(model.num_items()))),
                      k, 1.0f, 0, 1.0f});
    const auto t0 = std::chrono::steady_clock::now();
    auto state = model.adapt(ctx);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(times);
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse_args(argc, argv);
  nlohmann::json results = nlohmann::json::array();
  nlohmann::json fold_in = nlohmann::json::array();
  const std::string load_start = load_average();
  std::printf("bench_bpr: %u hardware threads, load average at start %s%s\n", std::thread::hardware_concurrency(),
              load_start.c_str(), args.quick ? " (--quick)" : "");
  std::printf("%-22s %8s %7s %10s %8s %7s %6s %10s %12s %9s %12s %10s\n", "dataset", "users", "items", "pairs",
              "factors", "threads", "epochs", "s/epoch", "samples/s", "fit_s", "peak_rss_MB", "growth_MB");

  bool first_case = true;
  auto run_case = [&](const Case& c) {
    for (int factors : {64, 128})
      for (int threads : {1, 2}) {
        const std::string spec = "bpr:factors=" + std::to_string(factors) + ",epochs=" + std::to_string(c.epochs);
        auto model = models::model_registry().create(models::ModelSpec::parse(spec));
        models::TrainOptions opts;
        opts.threads = threads;
        const bool reset = reset_peak_rss();
        const int64_t baseline = current_rss_bytes();
        const auto t0 = std::chrono::steady_clock::now();
        model->fit(c.data, opts, core::null_monitor());
        const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const int64_t peak = core::peak_rss_bytes();
        const auto summary = model->summary();
        const auto seconds = summary.at("epoch_seconds").get<std::vector<double>>();
        const double per_epoch = median(seconds);
        const auto pairs = summary.at("distinct_pairs").get<int64_t>();
        std::printf("%-22s %8d %7d %10lld %8d %7d %6lld %10.4f %12.3g %9.2f %12.1f %10s\n", c.name.c_str(),
                    c.data.num_users(), c.data.num_items(), static_cast<long long>(pairs), factors, threads,
                    static_cast<long long>(c.epochs), per_epoch, static_cast<double>(pairs) / per_epoch, fit_seconds,
                    peak / 1e6, reset ? std::to_string(static_cast<int64_t>((peak - baseline) / 1e6)).c_str() : "n/a");
        std::fflush(stdout);
        results.push_back({{"dataset", c.name},
                           {"users", c.data.num_users()},
                           {"items", c.data.num_items()},
                           {"interactions", c.data.num_interactions()},
                           {"distinct_pairs", pairs},
                           {"factors", factors},
                           {"threads", threads},
                           {"epochs", c.epochs},
                           {"seconds_per_epoch", per_epoch},
                           {"samples_per_second", static_cast<double>(pairs) / per_epoch},
                           {"epoch_seconds", seconds},
                           {"fit_seconds", fit_seconds},
                           {"peak_rss_bytes", peak},
                           {"peak_rss_reset", reset},
                           {"rss_before_fit_bytes", baseline},
                           {"final_loss", summary.at("final_loss")},
                           {"final_sample_accuracy", summary.at("final_sample_accuracy")},
                           {"kernel", summary.at("kernel")},
                           {"load_average", load_average()}});
        if (first_case && threads == 1) {
          const double s = fold_in_seconds(*model, 500);
          fold_in.push_back({{"dataset", c.name}, {"factors", factors}, {"history", 10}, {"median_seconds", s}});
        }
      }
    first_case = false;
  };

  const std::string ml = find_ml100k(args.ml100k);
  if (ml.empty()) {
    std::printf("ml-100k: not found (set FEWREC_ML100K or --ml100k, or run from the repo root), skipped\n");
  } else {
    data::ReadOptions ro;
    ro.format = "movielens-100k";
    ro.path = ml;
    data::Dataset full = data::read_dataset(ro);
    data::SplitOptions so;
    so.train_fraction = 0.8;
    so.seed = 42;
    data::Dataset positive = full.filter([](const data::Interaction& r) { return r.value >= 4; });
    data::Dataset train = data::make_split(positive, so).train;
    run_case({"ml-100k-pos4-train80", std::move(train), args.quick ? 10 : 30});
    run_case({"ml-100k", std::move(full), args.quick ? 10 : 30});
  }
  run_case({"synthetic-1M", synthetic(1000000, 10000, 20000, 1), args.quick ? 3 : 5});
  if (!args.quick) run_case({"synthetic-20M", synthetic(20000000, 200000, 200000, 2), 3});

  for (const auto& f : fold_in)
    std::printf("fold-in (adapt) of a new user with a 10-item history, %s, %d factors: %.1f us (median of 500)\n",
                f.at("dataset").get<std::string>().c_str(), f.at("factors").get<int>(),
                f.at("median_seconds").get<double>() * 1e6);
  const std::string load_end = load_average();
  std::printf("load average at end %s\n", load_end.c_str());
  nlohmann::json out = {{"benchmark", "bpr"},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"load_average_start", load_start},
                        {"load_average_end", load_end},
                        {"quick", args.quick},
                        {"note", "seconds_per_epoch: median over the epochs of one fit; one epoch draws one sample "
                                 "per distinct user-item pair (sampling, SGD step and loss included); default "
                                 "options otherwise (uniform negatives, item bias)"},
                        {"results", results},
                        {"fold_in", fold_in}};
  const fs::path out_path(args.out);
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  std::ofstream f(out_path);
  if (!f) throw std::runtime_error("cannot write " + args.out);
  f << out.dump(2) << "\n";
  std::printf("wrote %s\n", args.out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_bpr: " << e.what() << "\n";
  return 1;
}

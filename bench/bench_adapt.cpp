// bench_adapt: latency of one recommendation for a new user, in process
// (no HTTP): adapt(UserContext) on the user's first N events, score every
// item, top 10 (models::recommend), one request at a time on one thread.
//
//   bench_adapt [--out out/bench_adapt.json] [--quick] [--ml100k DIR]
//               [--models NAME,...] [--shots N] [--requests R]
//
// Datasets:
//   ml-100k        ratings >= 4; 20% of the users with > N positives held out
//                  (split seed 1), the models trained on the others; each
//                  request is a held-out user's first N positives. Read from
//                  --ml100k, $FEWREC_ML100K, ../shared/data/ml-100k or
//                  ../../shared/data/ml-100k; skipped with a message if absent
//   synthetic-20k  the built-in synthetic generator (titles, genres, user
//                  attributes) with 20,000 items and 5,000 users, same split
//                  (not with --quick)
// Models (default popularity, itemknn, hybrid, meta_ranker, melu): trained
// with their defaults on 2 threads; compute threads are then set to 1, as in
// the service. Reported per model and dataset: training seconds and the
// request latency p50 / p99 / mean in milliseconds, and requests/s. The
// first 20 requests warm up and are not timed. Prints a table and writes JSON.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/context.h"
#include "fewrec/data/preprocess.h"
#include "fewrec/data/readers.h"
#include "fewrec/data/split.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/models/model.h"
#include "fewrec/models/registry.h"

using namespace fewrec;
using namespace fewrec::bench;

namespace {

struct Args {
  std::string out = "out/bench_adapt.json";
  bool quick = false;
  std::string ml100k;
  std::vector<std::string> models = {"popularity", "itemknn", "hybrid", "meta_ranker", "melu"};
  int shots = 5;
  int requests = 1000;
};

Args parse_args(int argc, char** argv) {
  Args a;
  CLI::App app{"Per-request latency of a new user's top 10 (adapt + score), written as JSON.", "bench_adapt"};
  app.add_option("--out", a.out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", a.quick, "fewer requests and items, for a smoke run");
  app.add_option("--ml100k", a.ml100k, "ML-100K folder (default: $FEWREC_ML100K or ../shared/data/ml-100k)");
  app.add_option("--models", a.models, "models to measure")->delimiter(',')->capture_default_str();
  app.add_option("--shots", a.shots, "events of each new user")->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--requests", a.requests, "requests per model and data set")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  parse_command_line(app, argc, argv);
  return a;
}

struct Case {
  std::string name;
  data::Split split;
  std::vector<data::UserContext> requests;
};

Case make_case(std::string name, const data::Dataset& ds, int shots) {
  data::SplitOptions o;
  o.kind = data::SplitKind::kColdUsers;
  o.seed = 1;
  o.shots = shots;
  Case c{std::move(name), data::make_split(ds, o), {}};
  for (data::UserIndex u : c.split.cold_users)
    if (c.split.support.history_size(u) > 0)
      c.requests.push_back(data::context_from_dataset(c.split.support, u, /*known=*/false));
  return c;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto k = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse_args(argc, argv);
  std::printf("bench_adapt: %u hardware threads, load average at start %s%s; N = %d, %d requests per model\n",
              std::thread::hardware_concurrency(), load_average().c_str(), args.quick ? " (--quick)" : "",
              args.shots, args.requests);
  std::vector<Case> cases;
  const std::string dir = find_ml100k(args.ml100k);
  if (dir.empty()) {
    std::printf("ml-100k: not found (--ml100k DIR or $FEWREC_ML100K); skipped\n");
  } else {
    data::ReadOptions ro;
    ro.format = "movielens-100k";
    ro.path = dir;
    cases.push_back(make_case("ml-100k", data::to_implicit(data::read_dataset(ro), 4.0f), args.shots));
  }
  if (!args.quick) {
    data::SyntheticOptions so;
    so.num_items = 20000;
    so.num_users = 5000;
    so.mean_interactions = 60;
    cases.push_back(make_case("synthetic-20k", data::make_synthetic(so), args.shots));
  }

  std::printf("%-14s %-12s %6s %6s %9s %8s %8s %8s %9s\n", "dataset", "model", "items", "reqs", "train_s", "p50_ms",
              "p99_ms", "mean_ms", "req/s");
  nlohmann::json results = nlohmann::json::array();
  for (const auto& c : cases) {
    if (c.requests.empty()) continue;
    for (const auto& name : args.models) {
      auto model = models::model_registry().create(models::ModelSpec::parse(name));
      models::TrainOptions to;
      to.threads = 2;
      models::set_compute_threads(2);
      const auto t0 = std::chrono::steady_clock::now();
      model->fit(c.split.train, to, core::null_monitor());
      const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      models::set_compute_threads(1);
      std::vector<double> ms;
      size_t checksum = 0;
      for (int r = 0; r < args.requests + 20; ++r) {
        const auto& ctx = c.requests[static_cast<size_t>(r) % c.requests.size()];
        const auto s = std::chrono::steady_clock::now();
        auto top = models::recommend(*model, ctx, 10, true);
        const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count();
        checksum += top.empty() ? 0 : static_cast<size_t>(top[0].first);
        if (r >= 20) ms.push_back(dt);
      }
      double mean = 0;
      for (double v : ms) mean += v;
      mean /= static_cast<double>(ms.size());
      const double p50 = percentile(ms, 0.5), p99 = percentile(ms, 0.99);
      std::printf("%-14s %-12s %6d %6zu %9.2f %8.3f %8.3f %8.3f %9.0f\n", c.name.c_str(), name.c_str(),
                  c.split.train.num_items(), ms.size(), train_s, p50, p99, mean, 1000.0 / mean);
      std::fflush(stdout);
      results.push_back({{"dataset", c.name},
                         {"model", name},
                         {"items", c.split.train.num_items()},
                         {"shots", args.shots},
                         {"requests", ms.size()},
                         {"train_seconds", train_s},
                         {"p50_ms", p50},
                         {"p99_ms", p99},
                         {"mean_ms", mean},
                         {"requests_per_second", 1000.0 / mean},
                         {"checksum", checksum}});
    }
  }
  nlohmann::json out{{"bench", "bench_adapt"},
                     {"hardware_threads", std::thread::hardware_concurrency()},
                     {"load_average_end", load_average()},
                     {"results", results}};
  write_text_file(args.out, out.dump(2) + "\n");
  std::printf("wrote %s\n", args.out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_adapt: error: %s\n", e.what());
  return 1;
}

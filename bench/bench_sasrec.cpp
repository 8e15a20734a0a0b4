// bench_sasrec: training speed (and optionally quality) of SASRec.
//
//   bench_sasrec [--out out/bench_sasrec.json] [--quick] [--ml100k DIR]
//                [--threads 1,2] [--epochs N] [--loss bce] [--quality]
//
// The setting of the SASRec paper's reference implementation on ml-100k:
// maxlen 200, hidden 50, 2 blocks, 1 head, dropout 0.2, Adam lr 1e-3,
// batch 128, BCE with one negative per position; trained on the
// leave-one-out training split (every user's history minus the last item).
// Reports seconds per epoch (median over the epochs of one fit) and training
// sequences per second, per thread count. With --quality it trains 40 epochs
// on 2 threads (or the last --threads value) and evaluates the paper's
// protocol: the held-out item against 100 uniform negatives the user never
// interacted with, HR@10 and NDCG@10. Without ml-100k (not found in --ml100k,
// $FEWREC_ML100K, ../shared/data/ml-100k) it runs on a synthetic set of the
// same shape (943 users, 1682 items, ~100k events, Zipf items).
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
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/dataset.h"
#include "fewrec/data/readers.h"
#include "fewrec/data/split.h"
#include "fewrec/eval/evaluator.h"
#include "fewrec/models/registry.h"

namespace fs = std::filesystem;
using namespace fewrec;

using namespace fewrec::bench;

namespace {

struct Args {
  std::string out = "out/bench_sasrec.json";
  bool quick = false;
  bool quality = false;
  std::string ml100k;
  std::string loss = "bce";
  int epochs = 0;  // 0 = 5 (2 with --quick)
  std::vector<int> threads = {1, 2};
};

Args parse_args(int argc, char** argv) {
  Args a;
  CLI::App app{"Training speed (and, with --quality, ranking quality) of SASRec, written as JSON.", "bench_sasrec"};
  app.add_option("--out", a.out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", a.quick, "smaller data and 2 epochs, for a smoke run");
  app.add_flag("--quality", a.quality, "also train to convergence and report ranking quality");
  app.add_option("--ml100k", a.ml100k, "ML-100K folder (default: $FEWREC_ML100K or ../shared/data/ml-100k)");
  app.add_option("--loss", a.loss, "SASRec loss")->capture_default_str();
  app.add_option("--epochs", a.epochs, "epochs (default: 5, 2 with --quick)")->check(CLI::Range(1, 100000));
  app.add_option("--threads", a.threads, "thread counts")->delimiter(',')->check(CLI::Range(1, 1024))->capture_default_str();
  parse_command_line(app, argc, argv);
  if (a.threads.empty()) {
    std::cerr << "bench_sasrec: --threads needs at least one value\n";
    std::exit(2);
  }
  return a;
}

// ml-100k's shape: 943 users with >= 20 events each, 1682 items, 100k events;
// items drawn Zipf(0.9), timestamps increasing.
data::Dataset synthetic_like_ml100k(uint64_t seed) {
  const int32_t users = 943, items = 1682;
  data::DatasetBuilder b;
  for (int32_t u = 0; u < users; ++u) b.user("u" + std::to_string(u));
  for (int32_t i = 0; i < items; ++i) b.item("i" + std::to_string(i));
  std::vector<double> cdf(static_cast<size_t>(items));
  double sum = 0;
  for (int32_t i = 0; i < items; ++i) cdf[static_cast<size_t>(i)] = sum += std::pow(i + 1.0, -0.9);
  for (auto& v : cdf) v /= sum;
  core::Rng rng(seed);
  int64_t t = 0;
  for (int32_t u = 0; u < users; ++u) {
    const int64_t n = 20 + static_cast<int64_t>(core::uniform_index(rng, 172));  // mean ~106
    for (int64_t k = 0; k < n; ++k) {
      const auto it = std::upper_bound(cdf.begin(), cdf.end(), core::uniform01(rng));
      const auto item = static_cast<int32_t>(std::min<size_t>(static_cast<size_t>(it - cdf.begin()), cdf.size() - 1));
      b.add(u, item, ++t, 1.0f);
    }
  }
  return std::move(b).build("synthetic-ml100k-shape");
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse_args(argc, argv);
  const int epochs = args.epochs > 0 ? args.epochs : (args.quick ? 2 : 5);
  const std::string load_start = load_average();
  std::printf("bench_sasrec: %u hardware threads, load average at start %s%s\n", std::thread::hardware_concurrency(),
              load_start.c_str(), args.quick ? " (--quick)" : "");

  const std::string ml = find_ml100k(args.ml100k);
  data::Dataset full;
  std::string dataset_name;
  if (ml.empty()) {
    std::printf("ml-100k not found (set FEWREC_ML100K or --ml100k); using a synthetic set of its shape\n");
    full = synthetic_like_ml100k(7);
    dataset_name = "synthetic-ml100k-shape";
  } else {
    data::ReadOptions ro;
    ro.format = "movielens-100k";
    ro.path = ml;
    full = data::read_dataset(ro);
    dataset_name = "ml-100k";
  }
  data::SplitOptions so;
  so.kind = data::SplitKind::kLeaveOneOut;
  so.seed = 42;
  const data::Split split = data::make_split(full, so);
  const int64_t sequences = split.train.num_users();
  int64_t positions = 0;  // training target positions per epoch (capped by maxlen 200)
  for (data::UserIndex u = 0; u < split.train.num_users(); ++u)
    positions += std::min<int64_t>(200, std::max<int64_t>(0, split.train.history_size(u) - 1));

  const std::string base = "sasrec:maxlen=200,hidden=50,blocks=2,heads=1,dropout=0.2,learning_rate=0.001,batch_size=128,loss=" +
                           args.loss;
  std::printf("%-24s %7s %7s %10s %10s %10s %12s %10s\n", "dataset", "threads", "epochs", "s/epoch", "min_s/ep",
              "cpu_s/ep", "sequences/s", "targets/s");
  nlohmann::json results = nlohmann::json::array();
  for (int threads : args.threads) {
    auto model = models::model_registry().create(models::ModelSpec::parse(base + ",epochs=" + std::to_string(epochs)));
    models::TrainOptions opts;
    opts.threads = threads;
    const double cpu0 = cpu_seconds();
    model->fit(split.train, opts, core::null_monitor());
    const double cpu_per_epoch = (cpu_seconds() - cpu0) / epochs;
    const auto summary = model->summary();
    const double median = summary.at("median_epoch_seconds").get<double>();
    const auto all = summary.at("epoch_seconds").get<std::vector<double>>();
    const double fastest = *std::min_element(all.begin(), all.end());
    std::printf("%-24s %7d %7d %10.3f %10.3f %10.3f %12.0f %10.0f\n", dataset_name.c_str(), threads, epochs, median,
                fastest, cpu_per_epoch, static_cast<double>(sequences) / median,
                static_cast<double>(positions) / median);
    std::fflush(stdout);
    results.push_back({{"dataset", dataset_name},
                       {"threads", threads},
                       {"epochs", epochs},
                       {"loss", args.loss},
                       {"seconds_per_epoch", median},
                       {"min_seconds_per_epoch", fastest},
                       {"cpu_seconds_per_epoch", cpu_per_epoch},
                       {"epoch_seconds", all},
                       {"sequences_per_second", static_cast<double>(sequences) / median},
                       {"target_positions_per_second", static_cast<double>(positions) / median},
                       {"load_average", load_average()}});
  }

  nlohmann::json quality;
  if (args.quality) {
    const int threads = args.threads.back();
    auto model = models::model_registry().create(models::ModelSpec::parse(base + ",epochs=40"));
    models::TrainOptions opts;
    opts.threads = threads;
    const auto t0 = std::chrono::steady_clock::now();
    model->fit(split.train, opts, core::null_monitor());
    const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    eval::EvalOptions eo;
    eo.candidates = "sampled";
    eo.num_negatives = 100;
    eo.metrics = {"hr", "ndcg"};
    eo.groups = false;
    const auto r = eval::evaluate_split(*model, split, eo);
    std::printf("quality after 40 epochs (%d threads, fit %.1f s): HR@10 %.4f, NDCG@10 %.4f (%s)\n", threads,
                fit_seconds, r.metrics.at("hr@10"), r.metrics.at("ndcg@10"),
                "held-out item vs 100 uniform negatives");
    quality = {{"epochs", 40},
               {"threads", threads},
               {"fit_seconds", fit_seconds},
               {"hr@10", r.metrics.at("hr@10")},
               {"ndcg@10", r.metrics.at("ndcg@10")},
               {"protocol", r.protocol}};
  }

  const std::string load_end = load_average();
  std::printf("load average at end %s\n", load_end.c_str());
  nlohmann::json out = {{"benchmark", "sasrec"},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"load_average_start", load_start},
                        {"load_average_end", load_end},
                        {"quick", args.quick},
                        {"setting", base},
                        {"sequences_per_epoch", sequences},
                        {"target_positions_per_epoch", positions},
                        {"note",
                         "seconds_per_epoch: median over the epochs of one fit (batch assembly, negative sampling, "
                         "forward, backward and Adam step); reference PyTorch implementation: ~4.7 s per epoch on "
                         "this kind of machine"},
                        {"results", results}};
  if (!quality.is_null()) out["quality"] = quality;
  const fs::path out_path(args.out);
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  std::ofstream f(out_path);
  if (!f) throw std::runtime_error("cannot write " + args.out);
  f << out.dump(2) << "\n";
  std::printf("wrote %s\n", args.out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_sasrec: " << e.what() << "\n";
  return 1;
}

// bench_retrieval: exact top-k against HNSW (hnswlib) over random item
// vectors: build seconds, queries/s on one thread, recall@10 of HNSW
// against the exact index at several ef.
//
//   bench_retrieval [--out out/bench_retrieval.json] [--quick] [--items N] [--dim D]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "fewrec/retrieval/index.h"

using namespace fewrec;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) try {
  std::string out = "out/bench_retrieval.json";
  bool quick = false;
  int items = 100000, dim = 64;
  CLI::App app{"Exact top-k against HNSW over random vectors: build time, queries/s, recall@10, written as JSON.",
               "bench_retrieval"};
  app.add_option("--out", out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", quick, "at most 20,000 items and 200 queries");
  app.add_option("--items", items, "indexed vectors")->check(CLI::Range(1, 100000000))->capture_default_str();
  app.add_option("--dim", dim, "vector dimension")->check(CLI::Range(1, 100000))->capture_default_str();
  bench::parse_command_line(app, argc, argv);
  if (quick) items = std::min(items, 20000);
  const int nq = quick ? 200 : 1000, k = 10;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(items) * dim), q(static_cast<size_t>(nq) * dim);
  for (auto& x : v) x = g(rng);
  for (auto& x : q) x = g(rng);

  auto seconds = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  retrieval::ExactIndex exact(v, dim);
  auto t0 = Clock::now();
  for (int i = 0; i < nq; ++i) (void)exact.search(std::span<const float>(q.data() + static_cast<size_t>(i) * dim, dim), k);
  const double exact_qps = nq / seconds(t0);
  retrieval::HnswOptions o;
  t0 = Clock::now();
  retrieval::HnswIndex hnsw(v, dim, o);
  const double build = seconds(t0);
  std::printf("bench_retrieval: %d items x %d dims, %d queries, k=%d\n", items, dim, nq, k);
  std::printf("exact: %.0f queries/s (1 thread)\nhnsw build (M=%d, ef_construction=%d, all cores): %.2f s\n", exact_qps,
              o.m, o.ef_construction, build);
  nlohmann::json runs = nlohmann::json::array();
  for (int ef : {16, 64, 256}) {
    hnsw.set_ef(ef);
    t0 = Clock::now();
    for (int i = 0; i < nq; ++i) (void)hnsw.search(std::span<const float>(q.data() + static_cast<size_t>(i) * dim, dim), k);
    const double qps = nq / seconds(t0);
    const double recall = retrieval::recall_at_k(exact, hnsw, q, k);
    std::printf("hnsw ef=%-4d %9.0f queries/s (1 thread)  recall@10 %.4f\n", ef, qps, recall);
    runs.push_back({{"ef", ef}, {"queries_per_second", qps}, {"recall_at_10", recall}});
  }
  nlohmann::json j = {{"benchmark", "retrieval"}, {"items", items}, {"dim", dim}, {"queries", nq}, {"k", k},
                      {"exact_queries_per_second", exact_qps}, {"hnsw_build_seconds", build}, {"hnsw", runs}};
  const std::filesystem::path p(out);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << j.dump(2) << "\n";
  std::printf("wrote %s\n", out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_retrieval: " << e.what() << "\n";
  return 1;
}

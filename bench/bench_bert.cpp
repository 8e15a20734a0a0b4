// bench_bert: encoding throughput of the BERT encoder on a MiniLM-L6-shaped
// random model (hidden 384, 6 layers, 12 heads, intermediate 1536, vocab
// 30522, F32 safetensors written to a temp directory), next to a plain
// LibTorch matmul of the same shapes measured in the same run.
//
//   bench_bert [--out out/bench_bert.json] [--quick]
//
// For 1 and 2 threads, batch 32 and texts of exactly 12, 32 and 64 tokens
// (incl. [CLS]/[SEP]): sentences/s and tokens/s of BertEncoder::encode()
// (tokenisation included) and the GFLOP/s it achieves by
// BertConfig::forward_flops. The matmul baseline runs the four linear layers
// of one encoder layer (QKV 384->1152, output 384->384, FFN 384->1536 and
// 1536->384, bias added) on [32 x len, 384] activations, threaded as the
// encoder is (one single-threaded BLAS stream per thread). The target:
// encoder GFLOP/s >= 60% of the matmul rate. Prints a table and writes JSON
// (with the load average before and after: other processes skew the numbers).
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "fewrec/text/bert.h"

namespace fs = std::filesystem;
using namespace fewrec;

namespace {

struct Args {
  std::string out = "out/bench_bert.json";
  bool quick = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  CLI::App app{"Encoding throughput of the BERT encoder on a MiniLM-shaped random model, written as JSON.", "bench_bert"};
  app.add_option("--out", a.out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", a.quick, "fewer texts, for a smoke run");
  fewrec::bench::parse_command_line(app, argc, argv);
  return a;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr int64_t kVocab = 30522, kHidden = 384, kLayers = 6, kHeads = 12, kInter = 1536, kMaxPos = 512;

// config.json, vocab.txt ([PAD] [UNK] [CLS] [SEP] [MASK] w0 w1 ...) and
// random F32 weights (N(0, 0.05); LayerNorm weight 1, bias 0).
void write_model(const fs::path& dir) {
  fs::create_directories(dir);
  nlohmann::json cfg = {{"model_type", "bert"},
                        {"hidden_act", "gelu"},
                        {"vocab_size", kVocab},
                        {"hidden_size", kHidden},
                        {"num_hidden_layers", kLayers},
                        {"num_attention_heads", kHeads},
                        {"intermediate_size", kInter},
                        {"max_position_embeddings", kMaxPos},
                        {"type_vocab_size", 2},
                        {"layer_norm_eps", 1e-12}};
  std::ofstream(dir / "config.json") << cfg.dump(2);
  {
    std::ofstream v(dir / "vocab.txt");
    v << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    for (int64_t i = 5; i < kVocab; ++i) v << "w" << (i - 5) << "\n";
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"embeddings.word_embeddings.weight", {kVocab, kHidden}},
      {"embeddings.position_embeddings.weight", {kMaxPos, kHidden}},
      {"embeddings.token_type_embeddings.weight", {2, kHidden}},
      {"embeddings.LayerNorm.weight", {kHidden}},
      {"embeddings.LayerNorm.bias", {kHidden}}};
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    for (const char* n : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
      shapes.push_back({p + n + ".weight", {kHidden, kHidden}});
      shapes.push_back({p + n + ".bias", {kHidden}});
    }
    shapes.push_back({p + "intermediate.dense.weight", {kInter, kHidden}});
    shapes.push_back({p + "intermediate.dense.bias", {kInter}});
    shapes.push_back({p + "output.dense.weight", {kHidden, kInter}});
    shapes.push_back({p + "output.dense.bias", {kHidden}});
    for (const char* n : {"attention.output.LayerNorm", "output.LayerNorm"}) {
      shapes.push_back({p + n + ".weight", {kHidden}});
      shapes.push_back({p + n + ".bias", {kHidden}});
    }
  }
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + n * 4}}};
    offset += static_cast<uint64_t>(n) * 4;
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  const uint64_t hn = h.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((hn >> (8 * i)) & 0xFF));
  out << h;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> buf;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    buf.resize(static_cast<size_t>(n));
    const bool ln = name.find("LayerNorm") != std::string::npos;
    const bool ln_weight = ln && name.ends_with(".weight");
    for (auto& x : buf) x = ln ? (ln_weight ? 1.0f : 0.0f) : normal(rng);
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size() * 4));
  }
}

// Texts of exactly `tokens` ids with [CLS]/[SEP]: tokens - 2 vocabulary words.
std::vector<std::string> make_texts(int64_t n, int64_t tokens, std::mt19937& rng) {
  std::uniform_int_distribution<int64_t> word(0, kVocab - 6);
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) {
    std::string s;
    for (int64_t j = 0; j < tokens - 2; ++j) s += (j ? " w" : "w") + std::to_string(word(rng));
    out.push_back(std::move(s));
  }
  return out;
}

// The 1-minute load average (other processes share the 2 cores).
double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

void set_threads(int torch_threads, int blas_threads) {
  at::set_num_threads(torch_threads);
  using Set = void (*)(int);
  if (auto* f = reinterpret_cast<Set>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(blas_threads);
}

// GFLOP/s of the four linear layers of one encoder layer on [rows, 384]
// activations, one single-threaded stream per thread.
double matmul_gflops(int threads, int64_t rows, double min_seconds) {
  set_threads(1, 1);
  const double flops_per_rep = 2.0 * rows * kHidden * (3 * kHidden + kHidden + 2.0 * kInter);
  std::vector<double> rates(static_cast<size_t>(threads));
  auto run = [&](int t) {
    c10::InferenceMode guard;
    at::manual_seed(t);
    at::Tensor x = at::randn({rows, kHidden}), h = at::randn({rows, kInter});
    at::Tensor wqkv = at::randn({3 * kHidden, kHidden}), bqkv = at::randn({3 * kHidden});
    at::Tensor wo = at::randn({kHidden, kHidden}), bo = at::randn({kHidden});
    at::Tensor wi = at::randn({kInter, kHidden}), bi = at::randn({kInter});
    at::Tensor w2 = at::randn({kHidden, kInter}), b2 = at::randn({kHidden});
    auto rep = [&] {
      at::linear(x, wqkv, bqkv);
      at::linear(x, wo, bo);
      at::linear(x, wi, bi);
      at::linear(h, w2, b2);
    };
    rep();  // warm up
    int64_t reps = 0;
    const double t0 = now();
    double t1 = t0;
    while (t1 - t0 < min_seconds) {
      rep();
      ++reps;
      t1 = now();
    }
    rates[static_cast<size_t>(t)] = flops_per_rep * static_cast<double>(reps) / (t1 - t0) / 1e9;
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(run, t);
  run(0);
  for (auto& p : pool) p.join();
  double total = 0;
  for (double r : rates) total += r;
  return total;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse_args(argc, argv);
  const fs::path dir = fs::temp_directory_path() / ("fewrec_bench_bert_" + std::to_string(getpid()));
  std::printf("bench_bert: writing a random MiniLM-L6-shaped model to %s%s\n", dir.c_str(),
              args.quick ? " (--quick)" : "");
  write_model(dir);
  const int64_t batch = 32;
  const int64_t n_texts = args.quick ? 64 : 256;  // per measurement
  const double min_seconds = args.quick ? 0.5 : 2.0;
  nlohmann::json results = nlohmann::json::array();
  std::mt19937 rng(7);
  const double load_before = load_average();
  std::printf("%-7s %-7s %-6s %12s %12s %10s %14s %8s\n", "threads", "tokens", "batch", "sentences/s", "tokens/s",
              "GFLOP/s", "matmul GFLOP/s", "ratio");
  for (int threads : {1, 2}) {
    text::BertOptions o;
    o.dir = dir;
    o.max_length = 128;
    o.batch_size = batch;
    o.threads = threads;
    text::BertEncoder enc(o);
    for (int64_t tokens : {int64_t{12}, int64_t{32}, int64_t{64}}) {
      const auto texts = make_texts(n_texts, tokens, rng);
      if (static_cast<int64_t>(enc.tokenize(texts[0]).size()) != tokens) {
        std::fprintf(stderr, "bench_bert: a text gave %zu tokens, expected %ld\n", enc.tokenize(texts[0]).size(),
                     static_cast<long>(tokens));
        return 1;
      }
      enc.encode(std::span<const std::string>(texts.data(), static_cast<size_t>(std::min<int64_t>(n_texts, 2 * batch))));  // warm up
      int64_t encoded = 0;
      const double t0 = now();
      double t1 = t0;
      do {
        const auto m = enc.encode(texts);
        encoded += m.rows;
        t1 = now();
      } while (t1 - t0 < min_seconds);
      const double secs = t1 - t0;
      const double sps = static_cast<double>(encoded) / secs;
      const double gflops = enc.config().forward_flops(encoded, tokens) / secs / 1e9;
      const double mm = matmul_gflops(threads, batch * tokens, min_seconds / 2);
      std::printf("%-7d %-7ld %-6ld %12.1f %12.0f %10.1f %14.1f %8.2f\n", threads, static_cast<long>(tokens),
                  static_cast<long>(batch), sps, sps * static_cast<double>(tokens), gflops, mm, gflops / mm);
      std::fflush(stdout);
      results.push_back({{"threads", threads},
                         {"tokens_per_text", tokens},
                         {"batch", batch},
                         {"texts", encoded},
                         {"seconds", secs},
                         {"sentences_per_s", sps},
                         {"tokens_per_s", sps * static_cast<double>(tokens)},
                         {"gflops", gflops},
                         {"matmul_gflops", mm},
                         {"ratio_to_matmul", gflops / mm}});
    }
  }
  fs::remove_all(dir);
  nlohmann::json out = {{"bench", "bert"},
                        {"quick", args.quick},
                        {"model",
                         {{"hidden", kHidden},
                          {"layers", kLayers},
                          {"heads", kHeads},
                          {"intermediate", kInter},
                          {"vocab", kVocab},
                          {"weights", "F32, random"}}},
                        {"target_ratio_to_matmul", 0.6},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"load_average_before", load_before},
                        {"load_average_after", load_average()},
                        {"results", results}};
  const fs::path out_path(args.out);
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  std::ofstream(out_path) << out.dump(2) << "\n";
  std::printf("wrote %s\n", args.out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_bert: %s\n", e.what());
  return 1;
}

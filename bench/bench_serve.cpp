// bench_serve: load test of `fewrec serve` with wrk over loopback.
//
//   bench_serve [--out out/bench_serve.json] [--quick] [--seconds S]
//               [--connections C] [--tmp DIR] [--keep]
//
// For each catalogue (10k items; 100k items unless --quick) a store is
// filled with synthetic users and feedback (5,000 users x 20 events), and
// `fewrec serve` is started on it with ALS (64 factors) behind an exact or
// an HNSW index. wrk (Debian package `wrk`, 2 threads, C connections, keep-
// alive) then measures, in the same server run:
//   health       GET /health: the ceiling of the HTTP stack
//   recommend    GET /recommend/<random known user>?k=10, with
//                serve.cache_size=0 (every request adapts the model and
//                searches the index) and, under "cached", with the default
//                recommendation cache (a separate server run: users repeat,
//                so after the first pass most lists come from the cache)
//   feedback     POST /feedback with 100 events per request, and with 1
// Reported: requests/s, p50 / p99 latency (wrk --latency), events/s for
// feedback (acknowledged durably: synchronous=FULL, group commit), and the
// recommend / health ratio. Targets (2 cores): recommend on 10k items >= 50%
// of /health with p99 < 20 ms; >= 5,000 feedback events/s with batching.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "fewrec/store/store.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kKey = "bench-key";

struct Args {
  std::string out = "out/bench_serve.json";
  double seconds = 10;
  int connections = 16;
  bool quick = false;
  fs::path tmp;
  bool keep = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  CLI::App app{"Load test of `fewrec serve` with wrk over loopback, written as JSON.",
               "bench_serve"};
  app.add_option("--out", a.out, "JSON output file")->capture_default_str();
  app.add_flag("--quick", a.quick, "3 s per case (unless --seconds is given)");
  auto* seconds = app.add_option("--seconds", a.seconds, "seconds per timed case")
                      ->check(CLI::Range(0.01, 86400.0))
                      ->capture_default_str();
  app.add_option("--connections", a.connections, "concurrent client connections")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--tmp", a.tmp, "folder for the server's store (default: a temporary one)");
  app.add_flag("--keep", a.keep, "keep that folder");
  fewrec::bench::parse_command_line(app, argc, argv);
  if (a.quick && seconds->count() == 0) a.seconds = 3;
  if (a.tmp.empty()) a.tmp = fs::temp_directory_path() / ("fewrec-bench-serve-" + std::to_string(::getpid()));
  return a;
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

void fill_store(const fs::path& path, int items, int users, int per_user) {
  fewrec::store::SqliteOptions so;
  so.synchronous_full = false;  // set-up only
  auto st = fewrec::store::open_sqlite_store(path.string(), so);
  std::vector<fewrec::store::ItemRecord> recs(static_cast<size_t>(items));
  for (int i = 0; i < items; ++i) {
    recs[static_cast<size_t>(i)].id = "i" + std::to_string(i);
    recs[static_cast<size_t>(i)].categories = {"c" + std::to_string(i % 20)};
  }
  st->upsert_items(recs);
  std::mt19937_64 rng(42);
  // Zipf-like popularity: item = floor(items * u^3).
  std::uniform_real_distribution<double> u01(0, 1);
  std::vector<fewrec::store::FeedbackRecord> fb;
  fb.reserve(static_cast<size_t>(users) * per_user);
  for (int u = 0; u < users; ++u)
    for (int j = 0; j < per_user; ++j) {
      const double x = u01(rng);
      const int item = std::min(items - 1, static_cast<int>(items * x * x * x));
      fb.push_back({"u" + std::to_string(u), "i" + std::to_string(item), "click", 1.0f, 1000 + j});
    }
  st->insert_feedback(fb);
}

struct Server {
  pid_t pid = -1;
  int port = 0;
  fs::path log;
};

Server start_server(const fs::path& store, const fs::path& log, const std::string& index, int threads, bool cache) {
  Server s;
  s.log = log;
  std::vector<std::string> args = {FEWREC_BINARY, "serve", "--set", "store.path=" + store.string(), "--set",
                                    "serve.port=0", "--set", std::string("serve.api_key=") + kKey, "--set",
                                    "serve.model=als:factors=64,fold_in=cg", "--set", "serve.index=" + index, "--set",
                                    "serve.threads=" + std::to_string(threads), "--set", "serve.hnsw_ef=64", "--set",
                                    std::string("serve.cache_size=") + (cache ? "100000" : "0")};
  s.pid = ::fork();
  if (s.pid == 0) {
    if (!std::freopen(log.c_str(), "w", stderr)) std::_Exit(126);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::_Exit(127);
  }
  const std::regex re("listening on [0-9.]+:([0-9]+)");
  for (int i = 0; i < 6000 && s.port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    std::smatch m;
    const std::string text = ss.str();
    if (std::regex_search(text, m, re)) s.port = std::stoi(m[1]);
    if (::waitpid(s.pid, nullptr, WNOHANG) == s.pid) {
      std::cerr << "bench_serve: the server exited:\n" << text;
      std::exit(1);
    }
  }
  if (s.port == 0) {
    std::cerr << "bench_serve: the server did not start (see " << log << ")\n";
    std::exit(1);
  }
  return s;
}

void stop_server(Server& s) {
  ::kill(s.pid, SIGTERM);
  ::waitpid(s.pid, nullptr, 0);
}

double to_ms(const std::string& v) {
  std::smatch m;
  static const std::regex re("([0-9.]+)(us|ms|s)");
  if (!std::regex_match(v, m, re)) return -1;
  const double x = std::stod(m[1]);
  return m[2] == "us" ? x / 1e3 : m[2] == "ms" ? x : x * 1e3;
}

// Runs wrk with a Lua script; parses requests/s, p50, p99 and errors.
json wrk(const Args& a, int port, const fs::path& script, const std::string& path) {
  const std::string cmd = "wrk -t2 -c" + std::to_string(a.connections) + " -d" +
                          std::to_string(static_cast<int>(a.seconds)) + "s --latency -s " + script.string() +
                          " http://127.0.0.1:" + std::to_string(port) + path + " 2>&1";
  const std::string out = run_capture(cmd);
  json r;
  std::smatch m;
  if (std::regex_search(out, m, std::regex("Requests/sec:\\s+([0-9.]+)"))) r["requests_per_s"] = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex("\\n\\s+50%\\s+([0-9.]+[mu]?s)"))) r["p50_ms"] = to_ms(m[1]);
  if (std::regex_search(out, m, std::regex("\\n\\s+99%\\s+([0-9.]+[mu]?s)"))) r["p99_ms"] = to_ms(m[1]);
  if (std::regex_search(out, m, std::regex("Non-2xx or 3xx responses: ([0-9]+)"))) r["non_2xx"] = std::stoll(m[1]);
  if (std::regex_search(out, m, std::regex("Socket errors: (.*)"))) r["socket_errors"] = m[1].str();
  if (!r.contains("requests_per_s")) {
    std::cerr << "bench_serve: cannot parse wrk's output:\n" << out;
    r["wrk_output"] = out;
  }
  return r;
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  if (run_capture("command -v wrk").empty()) {
    std::cerr << "bench_serve: wrk is not installed (Debian package `wrk`; scripts/install-deps installs it)\n";
    return 1;
  }
  fs::create_directories(a.tmp);
  const int users = 5000, per_user = 20;
  std::vector<int> sizes = {10000};
  if (!a.quick) sizes.push_back(100000);

  const fs::path health = a.tmp / "health.lua", rec = a.tmp / "recommend.lua", fb100 = a.tmp / "feedback100.lua",
                 fb1 = a.tmp / "feedback1.lua";
  write_file(health, "request = function() return wrk.format('GET', '/health') end\n");
  write_file(rec, "math.randomseed(7)\nrequest = function()\n  return wrk.format('GET', '/recommend/u' .. "
                  "math.random(0, " + std::to_string(users - 1) + ") .. '?k=10')\nend\n");
  auto feedback_script = [&](int batch, int items) {
    return "local n = 0\nlocal tid = 0\nlocal next_tid = 0\n"
           "setup = function(thread) thread:set('tid', next_tid); next_tid = next_tid + 1 end\n"
           "request = function()\n  n = n + 1\n  local parts = {}\n  for j = 1, " + std::to_string(batch) +
           " do\n    parts[j] = string.format('{\"user\":\"u%d\",\"item\":\"i%d\",\"type\":\"click\",\"timestamp\":%d}', "
           "math.random(0, " + std::to_string(users - 1) + "), math.random(0, " + std::to_string(items - 1) +
           "), 1000000000 + tid * 100000000000 + n * 1000 + j)\n  end\n"
           "  return wrk.format('POST', '/feedback', {['Content-Type'] = 'application/json', ['X-API-Key'] = '" +
           kKey + "'}, '[' .. table.concat(parts, ',') .. ']')\nend\n";
  };

  json results = json::array();
  for (int items : sizes) {
    const fs::path store = a.tmp / ("store-" + std::to_string(items) + ".db");
    fs::remove(store);
    const auto t0 = std::chrono::steady_clock::now();
    fill_store(store, items, users, per_user);
    std::fprintf(stderr, "== %d items: store filled in %.1f s\n", items,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    for (const std::string index : {"exact", "hnsw"}) {
      // First the recommendation cache on (serve.cache_size, the default):
      // users repeat, so after the first pass most answers come from it. Then
      // a server without it, where every request runs the model and the index.
      json cached;
      {
        Server s = start_server(store, a.tmp / ("server-" + std::to_string(items) + "-" + index + "-cache.log"), index,
                                a.connections + 4, true);
        cached["health"] = wrk(a, s.port, health, "/health");
        cached["recommend"] = wrk(a, s.port, rec, "/recommend");
        stop_server(s);
      }
      Server s = start_server(store, a.tmp / ("server-" + std::to_string(items) + "-" + index + ".log"), index,
                              a.connections + 4, false);
      json r{{"items", items}, {"users", users}, {"events", users * per_user}, {"index", index},
             {"model", "als:factors=64,fold_in=cg"}, {"connections", a.connections}, {"seconds", a.seconds}};
      r["health"] = wrk(a, s.port, health, "/health");
      r["recommend"] = wrk(a, s.port, rec, "/recommend");  // serve.cache_size=0: every request computed
      if (r["health"].contains("requests_per_s") && r["recommend"].contains("requests_per_s"))
        r["recommend_vs_health"] =
            r["recommend"]["requests_per_s"].get<double>() / r["health"]["requests_per_s"].get<double>();
      r["cached"] = cached;
      if (cached["health"].contains("requests_per_s") && cached["recommend"].contains("requests_per_s"))
        r["cached"]["recommend_vs_health"] =
            cached["recommend"]["requests_per_s"].get<double>() / cached["health"]["requests_per_s"].get<double>();
      if (index == "exact") {  // feedback does not depend on the index
        write_file(fb100, feedback_script(100, items));
        write_file(fb1, feedback_script(1, items));
        r["feedback_batch100"] = wrk(a, s.port, fb100, "/feedback");
        r["feedback_batch1"] = wrk(a, s.port, fb1, "/feedback");
        for (const char* k : {"feedback_batch100", "feedback_batch1"})
          if (r[k].contains("requests_per_s"))
            r[k]["events_per_s"] = r[k]["requests_per_s"].get<double>() * (std::string(k) == "feedback_batch100" ? 100 : 1);
      }
      stop_server(s);
      std::ifstream in(s.log);
      std::string line;
      while (std::getline(in, line))
        if (line.find("HNSW index") != std::string::npos) r["hnsw_build"] = line;
      std::fprintf(stderr, "%s\n", r.dump(2).c_str());
      results.push_back(r);
    }
  }
  json report{{"bench", "bench_serve"},
              {"machine", {{"cores", std::thread::hardware_concurrency()}, {"load_average", fewrec::bench::load_average()}}},
              {"wrk", "2 threads, keep-alive, loopback; server and wrk share the machine"},
              {"results", results}};
  fs::path out(a.out);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  std::ofstream(out) << report.dump(2) << "\n";
  std::printf("bench_serve: wrote %s\n", a.out.c_str());
  if (!a.keep) fs::remove_all(a.tmp);
  return 0;
}

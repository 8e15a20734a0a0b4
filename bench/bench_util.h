// Helpers shared by the benchmarks: the command line (CLI11), process CPU
// time, RSS, load average, the ML-100K folder, medians, writing the JSON.
#pragma once

#include <sys/resource.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fewrec::bench {

// CPU seconds of this process (all threads).
inline double cpu_seconds() {
  rusage r{};
  ::getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e-6;
}

// Resets the kernel's peak-RSS counter (VmHWM) so each measured step is on
// its own. Returns false when the kernel does not support it.
inline bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

inline int64_t current_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:")) return std::atoll(line.c_str() + 6) * 1024;
  return 0;
}

// "1.02 0.87 0.55": 1, 5 and 15 minutes.
inline std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// The ML-100K folder: `given`, $FEWREC_ML100K, ../shared/data/ml-100k or
// ../../shared/data/ml-100k (the first holding u.data); "" when none.
inline std::string find_ml100k(const std::string& given) {
  std::vector<std::string> candidates;
  if (!given.empty()) candidates.push_back(given);
  if (const char* env = std::getenv("FEWREC_ML100K")) candidates.emplace_back(env);
  candidates.emplace_back("../shared/data/ml-100k");
  candidates.emplace_back("../../shared/data/ml-100k");
  for (const auto& c : candidates)
    if (std::filesystem::exists(std::filesystem::path(c) / "u.data")) return c;
  return "";
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Parses the command line with `app`. On --help, prints the help and exits 0;
// on a bad argument, prints what is wrong and exits non-zero.
inline void parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
}

// Writes `text` to `path`, creating its folder; throws on failure.
inline void write_text_file(const std::string& path, const std::string& text) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p);
  f << text;
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace fewrec::bench

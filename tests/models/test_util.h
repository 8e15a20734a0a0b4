// Helpers shared by the models tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/data/context.h"
#include "fewrec/data/dataset.h"

namespace fewrec::models::testing {

// Keeps every info() line a model reports.
class InfoMonitor final : public core::Monitor {
 public:
  void info(std::string_view message) override { lines.emplace_back(message); }
  // Every line, joined by newlines.
  std::string text() const {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }
  std::vector<std::string> lines;
};

// The message of the fewrec::Error `fn` throws; fails the test when it throws
// nothing, another type, or another code.
template <class Fn>
std::string error_of(Fn&& fn, ErrorCode code) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected fewrec::Error";
  return "";
}

// Users "u0".., items "i0".. (all of them in the catalogue, even without
// interactions); rows (user, item) get increasing timestamps.
inline data::Dataset make_dataset(int32_t users, int32_t items, const std::vector<std::pair<int, int>>& rows,
                                  const std::vector<float>& values = {}) {
  data::DatasetBuilder b;
  for (int32_t u = 0; u < users; ++u) b.user("u" + std::to_string(u));
  for (int32_t i = 0; i < items; ++i) b.item("i" + std::to_string(i));
  for (size_t r = 0; r < rows.size(); ++r)
    b.add(rows[r].first, rows[r].second, static_cast<int64_t>(r), values.empty() ? 1.0f : values[r]);
  return std::move(b).build("test");
}

// A random binary user-item matrix as rows (density `p`), with some
// duplicated rows (the models must treat the matrix as binary).
inline std::vector<std::pair<int, int>> random_rows(int users, int items, double p, uint64_t seed) {
  core::Rng rng(seed);
  std::vector<std::pair<int, int>> rows;
  for (int u = 0; u < users; ++u)
    for (int i = 0; i < items; ++i)
      if (core::uniform01(rng) < p) {
        rows.emplace_back(u, i);
        if (core::uniform01(rng) < 0.1) rows.emplace_back(u, i);
      }
  return rows;
}

// A new user's context (no user index) from item indices.
inline data::UserContext new_user(const std::vector<data::ItemIndex>& items) {
  data::UserContext ctx;
  int64_t t = 0;
  for (auto i : items) ctx.history.push_back(data::Event{i, t++, 1.0f, 0, 1.0f});
  return ctx;
}

// The bytes of a file (empty when it cannot be read).
inline std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Artifact meta with a fixed creation time (save_model's 5th argument; the
// 4th is the config): two saves of the same model are then byte-identical,
// where the wall-clock stamp differs across a second boundary.
inline const nlohmann::json& pinned_creation() {
  static const nlohmann::json meta = {{"created", "2026-01-01T00:00:00Z"}};
  return meta;
}

// A fresh directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("fewrec-models-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path path_;
};

}  // namespace fewrec::models::testing

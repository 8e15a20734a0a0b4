// Shared by the serve tests: a temporary directory and a small world with
// planted structure. Items a0..a19 ("alpha" titles, category "A") and
// b0..b19 ("beta", "B"); 30 users like only A items, 10 only B items, so the
// popularity list is all A while a user who clicked B items should get B.
#pragma once

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "fewrec/serve/service.h"
#include "fewrec/store/records.h"

namespace fewrec::serve::testing {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("fewrec-serve-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline std::string item_a(int i) { return "a" + std::to_string(i); }
inline std::string item_b(int i) { return "b" + std::to_string(i); }
inline bool is_a(const std::string& id) { return !id.empty() && id[0] == 'a'; }
inline bool is_b(const std::string& id) { return !id.empty() && id[0] == 'b'; }

inline std::vector<store::ItemRecord> world_items() {
  std::vector<store::ItemRecord> items;
  for (int i = 0; i < 20; ++i) {
    store::ItemRecord a;
    a.id = item_a(i);
    a.categories = {"A"};
    a.text = "alpha story number " + std::to_string(i);
    items.push_back(a);
    store::ItemRecord b;
    b.id = item_b(i);
    b.categories = {"B"};
    b.text = "beta tale number " + std::to_string(i);
    items.push_back(b);
  }
  return items;
}

// User uA<k> (k < 30) clicks 8 A items, uB<k> (k < 10) 8 B items; A items
// with low index are the most popular.
inline std::vector<store::FeedbackRecord> world_feedback() {
  std::vector<store::FeedbackRecord> events;
  int64_t t = 1000;
  for (int u = 0; u < 30; ++u)
    for (int j = 0; j < 8; ++j)
      events.push_back({"uA" + std::to_string(u), item_a((u + j * j) % 12), "click", 1.0f, t++});
  for (int u = 0; u < 10; ++u)
    for (int j = 0; j < 8; ++j)
      events.push_back({"uB" + std::to_string(u), item_b((u * 3 + j) % 20), "click", 1.0f, t++});
  return events;
}

inline ServiceOptions test_options(const std::string& store_path, const std::string& model = "itemknn") {
  ServiceOptions o;
  o.store_path = store_path;
  o.store.synchronous_full = false;  // tests do not need power-loss durability
  o.model = model;
  o.train_threads = 1;
  o.feedback_weights = {{"click", 1.0f}, {"like", 2.0f}, {"dislike", -1.0f}};
  return o;
}

}  // namespace fewrec::serve::testing

// The `fewrec serve` process: restart persistence, SIGTERM, and SIGKILL in
// the middle of a feedback stream (every acknowledged event survives, none
// is stored twice).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "fewrec/serve/json_io.h"
#include "fewrec/store/store.h"
#include "serve_test_util.h"

namespace fewrec::serve {
namespace {

using namespace testing;  // NOLINT
using nlohmann::json;

constexpr const char* kKey = "proc-key";

// A `fewrec serve` child process.
class ServerProcess {
 public:
  ServerProcess(const TempDir& dir, const std::string& name) : log_(dir.file(name + ".log")) {
    const std::string store = "store.path=" + dir.file("store.db");
    std::vector<std::string> args = {FEWREC_BINARY, "serve",       "--set", store,
                                      "--set",       "serve.port=0", "--set", std::string("serve.api_key=") + kKey,
                                      "--set",       "serve.threads=8", "--set", "serve.train_threads=1",
                                      "--set",       "serve.feedback_weights.click=1"};
    pid_ = ::fork();
    if (pid_ == 0) {
      std::FILE* f = std::freopen(log_.c_str(), "w", stderr);
      (void)f;
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
    // Wait for "listening on 127.0.0.1:<port>".
    const std::regex re("listening on [0-9.]+:([0-9]+)");
    for (int i = 0; i < 1200 && port_ == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::smatch m;
      const std::string text = log();
      if (std::regex_search(text, m, re)) port_ = std::stoi(m[1]);
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Sends `sig` and returns the exit status (-1 when it did not exit normally).
  int signal_and_wait(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

httplib::Headers key() { return {{"X-API-Key", kKey}}; }

std::vector<std::string> rec_ids(httplib::Client& c, const std::string& user) {
  auto r = c.Get(("/recommend/" + user + "?k=10").c_str());
  EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
  std::vector<std::string> out;
  if (!r || r->status != 200) return out;
  const json j = json::parse(r->body);
  for (const auto& x : j["items"]) out.push_back(x["id"].get<std::string>());
  if (out.empty()) ADD_FAILURE() << "no recommendations: " << r->body;
  return out;
}

TEST(ServeProcess, EverythingIsStillThereAfterARestart) {
  TempDir dir;
  std::vector<std::string> before_nu, pop;
  {
    ServerProcess p(dir, "first");
    ASSERT_GT(p.port(), 0) << p.log();
    httplib::Client c("127.0.0.1", p.port());
    json items = json::array();
    for (const auto& it : world_items()) items.push_back(to_json(it));
    ASSERT_EQ(c.Post("/items", key(), items.dump(), "application/json")->status, 200);
    json fb = json::array();
    for (const auto& e : world_feedback()) fb.push_back(to_json(e));
    ASSERT_EQ(c.Post("/feedback", key(), fb.dump(), "application/json")->status, 200);
    auto rl = c.Post("/admin/reload?wait=true", key(), "", "application/json");
    ASSERT_EQ(rl->status, 200) << rl->body;
    ASSERT_EQ(c.Post("/users", key(), R"({"id": "nu"})", "application/json")->status, 200);
    pop = rec_ids(c, "nu");
    auto f = c.Post("/feedback", key(),
                    R"([{"user": "nu", "item": "b1", "type": "click", "timestamp": 1},
                        {"user": "nu", "item": "b2", "type": "click", "timestamp": 2},
                        {"user": "nu", "item": "b3", "type": "click", "timestamp": 3}])",
                    "application/json");
    ASSERT_EQ(f->status, 200);
    before_nu = rec_ids(c, "nu");
    EXPECT_NE(before_nu, pop) << "a new user with 3 events gets more than the popularity list";
    int b = 0;
    for (const auto& id : before_nu) b += is_b(id);
    EXPECT_GE(b, 8);
    EXPECT_EQ(p.signal_and_wait(SIGTERM), 0) << p.log();
    EXPECT_NE(p.log().find("SIGTERM: draining"), std::string::npos);
  }
  ServerProcess p(dir, "second");
  ASSERT_GT(p.port(), 0) << p.log();
  httplib::Client c("127.0.0.1", p.port());
  auto st = json::parse(c.Get("/stats")->body);
  EXPECT_EQ(st["users"], 41);
  EXPECT_EQ(st["items"], 40);
  EXPECT_EQ(st["feedback"], 323);
  EXPECT_EQ(st["model"], "itemknn");  // trained again at start from the store
  auto fb = json::parse(c.Get("/users/nu/feedback")->body)["feedback"];
  EXPECT_EQ(fb.size(), 3u);
  EXPECT_EQ(rec_ids(c, "nu"), before_nu);
  EXPECT_EQ(c.Get("/items/b7")->status, 200);
  EXPECT_EQ(p.signal_and_wait(SIGINT), 0);
}

TEST(ServeProcess, AcknowledgedFeedbackSurvivesSigkill) {
  TempDir dir;
  using Identity = std::tuple<std::string, std::string, std::string, int64_t>;
  std::mutex mu;
  std::vector<Identity> acked;
  std::atomic<int64_t> sent{0};
  std::atomic<bool> killed{false};
  {
    ServerProcess p(dir, "stream");
    ASSERT_GT(p.port(), 0) << p.log();
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&, t] {
        httplib::Client c("127.0.0.1", p.port());
        c.set_connection_timeout(2);
        c.set_read_timeout(5);
        for (int batch = 0; batch < 100000 && !killed; ++batch) {
          json events = json::array();
          std::vector<Identity> ids;
          for (int j = 0; j < 20; ++j) {
            const int64_t ts = static_cast<int64_t>(batch) * 100 + j;
            const std::string user = "s" + std::to_string(t), item = "i" + std::to_string((batch + j) % 50);
            events.push_back({{"user", user}, {"item", item}, {"type", "click"}, {"timestamp", ts}});
            ids.emplace_back(user, item, "click", ts);
          }
          sent += 20;
          auto r = c.Post("/feedback", key(), events.dump(), "application/json");
          if (!r) break;  // the server is gone
          if (r->status != 200) break;
          std::lock_guard lock(mu);
          acked.insert(acked.end(), ids.begin(), ids.end());
        }
      });
    }
    // Kill once a good part of the stream was acknowledged.
    for (int i = 0; i < 6000; ++i) {
      {
        std::lock_guard lock(mu);
        if (acked.size() >= 2000) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(p.signal_and_wait(SIGKILL), -1);
    killed = true;
    for (auto& c : clients) c.join();
  }
  ASSERT_GE(acked.size(), 2000u);
  // Reopen the store as the next server would.
  auto st = store::open_sqlite_store(dir.file("store.db"));
  std::set<Identity> stored;
  int64_t rows = 0;
  st->for_each_feedback([&](const store::FeedbackRecord& e) {
    stored.emplace(e.user, e.item, e.type, e.timestamp);
    ++rows;
  });
  EXPECT_EQ(static_cast<size_t>(rows), stored.size()) << "an event was stored twice";
  EXPECT_LE(rows, sent.load());
  size_t missing = 0;
  for (const auto& id : acked) missing += !stored.contains(id);
  EXPECT_EQ(missing, 0u) << "acknowledged events lost, of " << acked.size();
  std::printf("sent %lld, acknowledged %zu, stored %lld\n", static_cast<long long>(sent.load()), acked.size(),
              static_cast<long long>(rows));
}

}  // namespace
}  // namespace fewrec::serve

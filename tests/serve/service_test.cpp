// Service: online feedback, fallbacks, filters, reasons, new items, restart.
#include "fewrec/serve/service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <thread>
#include <tuple>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "serve_test_util.h"

namespace fewrec::serve {
namespace {

using namespace testing;  // NOLINT

std::vector<std::string> ids_of(const RecommendResult& r) {
  std::vector<std::string> out;
  for (const auto& x : r.items) out.push_back(x.item);
  return out;
}

int count_if_b(const RecommendResult& r) {
  return static_cast<int>(std::count_if(r.items.begin(), r.items.end(), [](const auto& x) { return is_b(x.item); }));
}

std::unique_ptr<Service> world_service(const TempDir& dir, const std::string& model = "itemknn") {
  auto svc = Service::open(test_options(dir.file("store.db"), model), core::null_monitor());
  svc->upsert_items(world_items());
  auto fb = world_feedback();
  svc->insert_feedback(fb);
  svc->reload(core::null_monitor());
  return svc;
}

template <class Fn>
std::string error_of(Fn&& fn, ErrorCode* code = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (code) *code = e.code();
    return e.message();
  }
  return "";
}

TEST(Service, EmptyStoreServesPopularityAndUnknownUserIsNotFound) {
  TempDir dir;
  auto svc = Service::open(test_options(dir.file("s.db")), core::null_monitor());
  EXPECT_EQ(svc->stats().model, "");
  ErrorCode code{};
  EXPECT_NE(error_of([&] { svc->recommend("nobody", {}); }, &code).find("unknown user `nobody`"), std::string::npos);
  EXPECT_EQ(code, ErrorCode::kNotFound);
  std::vector<store::FeedbackRecord> fb = {{"u1", "x", "click", 1, 1}, {"u2", "x", "click", 1, 2},
                                           {"u2", "y", "click", 1, 3}};
  svc->insert_feedback(fb);
  auto r = svc->recommend("u1", {});
  EXPECT_EQ(r.source, "popularity");
  ASSERT_EQ(r.items.size(), 1u);  // x is seen
  EXPECT_EQ(r.items[0].item, "y");
}

TEST(Service, NewUserWithThreeEventsGetsPersonalResultsAtOnce) {
  TempDir dir;
  auto svc = world_service(dir);
  EXPECT_EQ(svc->stats().model, "itemknn");
  // A user with no feedback gets the popularity list: all A.
  svc->upsert_users(std::vector<store::UserRecord>{{"fresh", {}, {}, 0}});
  auto pop = svc->recommend("fresh", {});
  EXPECT_EQ(pop.source, "popularity");
  EXPECT_EQ(count_if_b(pop), 0);
  // Three clicks on B items, no retraining: the next list is B and differs.
  std::vector<store::FeedbackRecord> fb = {
      {"fresh", "b1", "click", 1, 10}, {"fresh", "b2", "click", 1, 11}, {"fresh", "b3", "click", 1, 12}};
  auto ins = svc->insert_feedback(fb);
  EXPECT_EQ(ins.inserted, 3);
  auto r = svc->recommend("fresh", {});
  EXPECT_EQ(r.source, "model");
  EXPECT_NE(ids_of(r), ids_of(pop));
  EXPECT_GE(count_if_b(r), 8) << "expected mostly B items";
  for (const auto& x : r.items) EXPECT_TRUE(x.item != "b1" && x.item != "b2" && x.item != "b3");  // seen
  // A user the model never saw, created by feedback only.
  std::vector<store::FeedbackRecord> fb2 = {{"brand-new", "a1", "click", 1, 1}};
  svc->insert_feedback(fb2);
  EXPECT_EQ(count_if_b(svc->recommend("brand-new", {})), 0);
}

TEST(Service, KnownUserFilterExcludeAndSeen) {
  TempDir dir;
  auto svc = world_service(dir);
  auto r = svc->recommend("uB0", {});
  EXPECT_GE(count_if_b(r), 8);
  RecommendOptions o;
  o.category = "A";
  o.k = 5;
  auto ra = svc->recommend("uB0", o);
  ASSERT_EQ(ra.items.size(), 5u);
  for (const auto& x : ra.items) EXPECT_TRUE(is_a(x.item)) << x.item;
  RecommendOptions ex;
  ex.exclude = {r.items[0].item, "no-such-item"};
  auto rx = svc->recommend("uB0", ex);
  for (const auto& x : rx.items) EXPECT_NE(x.item, r.items[0].item);
  // exclude_seen=false lets the user's own items back in.
  RecommendOptions all;
  all.exclude_seen = false;
  all.k = 40;
  auto own = svc->user_feedback("uB0", -1);
  auto ra2 = ids_of(svc->recommend("uB0", all));
  EXPECT_NE(std::find(ra2.begin(), ra2.end(), own[0].item), ra2.end());
  auto rs = ids_of(svc->recommend("uB0", RecommendOptions{40, true, {}, "", false}));
  EXPECT_EQ(std::find(rs.begin(), rs.end(), own[0].item), rs.end());
  // k out of range.
  ErrorCode code{};
  EXPECT_NE(error_of([&] { svc->recommend("uB0", RecommendOptions{5000, true, {}, "", false}); }, &code)
                .find("k must be between 1 and 1000"),
            std::string::npos);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
}

TEST(Service, NegativeFeedbackTypeExcludesTheItem) {
  TempDir dir;
  auto svc = world_service(dir);
  std::vector<store::FeedbackRecord> fb = {
      {"neg", "b1", "click", 1, 1}, {"neg", "b2", "click", 1, 2}, {"neg", "b4", "dislike", 1, 3}};
  svc->insert_feedback(fb);
  RecommendOptions o;
  o.k = 40;
  o.exclude_seen = false;
  auto ids = ids_of(svc->recommend("neg", o));
  EXPECT_EQ(std::find(ids.begin(), ids.end(), "b4"), ids.end()) << "a disliked item is never recommended";
  EXPECT_NE(std::find(ids.begin(), ids.end(), "b1"), ids.end());
}

TEST(Service, ReasonsNameTheHistoryItemsThatContributed) {
  TempDir dir;
  auto svc = world_service(dir);
  std::vector<store::FeedbackRecord> fb = {
      {"mixed", "a0", "click", 1, 1}, {"mixed", "b1", "click", 1, 2}, {"mixed", "b2", "click", 1, 3}};
  svc->insert_feedback(fb);
  RecommendOptions o;
  o.reasons = true;
  auto r = svc->recommend("mixed", o);
  ASSERT_FALSE(r.items.empty());
  int checked = 0;
  for (const auto& x : r.items) {
    if (x.because.empty()) continue;
    ++checked;
    // A B item is explained by B history items, an A item by a0.
    for (const auto& h : x.because) EXPECT_EQ(is_b(h), is_b(x.item)) << x.item << " because " << h;
    EXPECT_NE(x.reason.find("because of"), std::string::npos);
  }
  EXPECT_GE(checked, 5);
  auto sim = svc->similar_items("b5", o);
  ASSERT_FALSE(sim.items.empty());
  EXPECT_GE(count_if_b(sim), 8);
  for (const auto& x : sim.items) EXPECT_NE(x.item, "b5");
  EXPECT_NE(error_of([&] { svc->similar_items("zzz", {}); }).find("unknown item `zzz`"), std::string::npos);
}

TEST(Service, AnonymousContext) {
  TempDir dir;
  auto svc = world_service(dir);
  std::vector<ContextEvent> ev = {{"b7", "click", 1}, {"b8", "", 1}};
  auto r = svc->recommend_context(ev, {}, {});
  EXPECT_EQ(r.source, "model");
  EXPECT_GE(count_if_b(r), 8);
  std::vector<ContextEvent> bad = {{"b7", "", 1}, {"nope", "", 1}};
  ErrorCode code{};
  EXPECT_NE(error_of([&] { svc->recommend_context(bad, {}, {}); }, &code).find("unknown item `nope`"),
            std::string::npos);
  EXPECT_EQ(code, ErrorCode::kNotFound);
  // An empty context: popularity.
  EXPECT_EQ(svc->recommend_context({}, {}, {}).source, "popularity");
}

TEST(Service, NewItemWithContentIsRecommendableAtOnce) {
  TempDir dir;
  auto svc = world_service(dir, "content");
  store::ItemRecord fresh;
  fresh.id = "b-new";
  fresh.categories = {"B"};
  fresh.text = "beta tale number 7 and 8";
  svc->upsert_items(std::vector<store::ItemRecord>{fresh});
  EXPECT_EQ(svc->stats().model_items, 41);
  RecommendOptions o;
  o.k = 40;
  auto ids = ids_of(svc->recommend("uB0", o));
  auto pos = std::find(ids.begin(), ids.end(), "b-new");
  ASSERT_NE(pos, ids.end());
  EXPECT_LT(pos - ids.begin(), 15) << "the new B item ranks among the B items";
  // With a model without add_items (itemknn) the item only reaches the popularity top-up.
  TempDir dir2;
  auto knn = world_service(dir2, "itemknn");
  knn->upsert_items(std::vector<store::ItemRecord>{fresh});
  EXPECT_EQ(knn->stats().model_items, 40);
  EXPECT_EQ(knn->stats().items, 41);
}

TEST(Service, HiddenAndDeletedItemsAreNeverRecommended) {
  TempDir dir;
  auto svc = world_service(dir);
  auto before = svc->recommend("uB0", {});
  const std::string top = before.items[0].item, second = before.items[1].item;
  auto rec = svc->get_item(top);
  rec.hidden = true;
  svc->upsert_items(std::vector<store::ItemRecord>{rec});
  std::vector<std::string> del = {second};
  EXPECT_EQ(svc->delete_items(del), 1);
  RecommendOptions o;
  o.k = 40;
  auto ids = ids_of(svc->recommend("uB0", o));
  EXPECT_EQ(std::find(ids.begin(), ids.end(), top), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), second), ids.end());
  EXPECT_THROW(svc->get_item(second), Error);
}

TEST(Service, EverythingSurvivesARestart) {
  TempDir dir;
  std::vector<std::string> before;
  {
    auto svc = world_service(dir);
    std::vector<store::FeedbackRecord> fb = {{"late", "b1", "click", 1, 5}, {"late", "b9", "like", 1, 6}};
    svc->insert_feedback(fb);
    svc->upsert_users(std::vector<store::UserRecord>{{"late", {{"country", "fr"}}, {"vip"}, 0}});
    before = ids_of(svc->recommend("late", {}));
    svc->close();
  }
  auto svc = Service::open(test_options(dir.file("store.db")), core::null_monitor());
  auto st = svc->stats();
  EXPECT_EQ(st.items, 40);
  EXPECT_EQ(st.users, 41);
  EXPECT_EQ(st.feedback, 30 * 8 + 10 * 8 + 2);
  EXPECT_EQ(st.model, "itemknn");
  EXPECT_EQ(svc->get_user("late").attributes.at("country"), "fr");
  EXPECT_EQ(ids_of(svc->recommend("late", {})), before);
  // Re-sending the same events (a client retry) stores nothing twice.
  std::vector<store::FeedbackRecord> again = {{"late", "b1", "click", 1, 5}};
  EXPECT_EQ(svc->insert_feedback(again).inserted, 0);
  EXPECT_EQ(svc->stats().feedback, st.feedback);
}

TEST(Service, VectorModelWithHnswIndexMatchesExact) {
  TempDir dir, dir2;
  auto o = test_options(dir.file("s.db"), "als:factors=8,iterations=15,regularization=1");
  o.index = IndexKind::kHnsw;
  o.hnsw.ef = 200;
  auto svc = Service::open(o, core::null_monitor());
  svc->upsert_items(world_items());
  auto fb = world_feedback();
  svc->insert_feedback(fb);
  svc->reload(core::null_monitor());
  auto st = svc->stats();
  EXPECT_EQ(st.index, "hnsw");
  EXPECT_GE(st.index_recall, 0.9);
  auto o2 = o;
  o2.store_path = dir2.file("s.db");
  o2.index = IndexKind::kNone;
  auto exact = Service::open(o2, core::null_monitor());
  exact->upsert_items(world_items());
  exact->insert_feedback(fb);
  exact->reload(core::null_monitor());
  EXPECT_EQ(exact->stats().index, "none");
  for (const char* u : {"uA3", "uB2"}) {
    auto a = ids_of(svc->recommend(u, {})), b = ids_of(exact->recommend(u, {}));
    int common = 0;
    for (const auto& x : a) common += std::find(b.begin(), b.end(), x) != b.end();
    EXPECT_GE(common, 9) << u;
  }
  // A new user folds in.
  std::vector<store::FeedbackRecord> nf = {{"n", "b1", "click", 1, 1}, {"n", "b2", "click", 1, 2}};
  svc->insert_feedback(nf);
  auto rn = svc->recommend("n", {});
  EXPECT_EQ(rn.source, "model");
  EXPECT_GE(count_if_b(rn), 7);
}

TEST(Service, ConcurrentFeedbackAndRecommendations) {
  TempDir dir;
  auto svc = world_service(dir);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        try {
          std::vector<store::FeedbackRecord> fb = {
              {"c" + std::to_string(t), item_b(i % 20), "click", 1, static_cast<int64_t>(i)}};
          svc->insert_feedback(fb);
          svc->recommend("c" + std::to_string(t), {});
          svc->recommend("uA1", {});
        } catch (...) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(svc->stats().feedback, 30 * 8 + 10 * 8 + 4 * 50);
}

TEST(Service, OptionsFromConfig) {
  auto c = core::Config::from_toml_string(R"(
[serve]
model = "als"
index = "hnsw"
hnsw_ef = 32
[serve.feedback_weights]
like = 1.0
dislike = -1
)");
  auto o = ServiceOptions::from_config(c);
  c.check_all_used();
  EXPECT_EQ(o.model, "als");
  EXPECT_EQ(o.index, IndexKind::kHnsw);
  EXPECT_EQ(o.hnsw.ef, 32);
  EXPECT_FLOAT_EQ(o.weight_of("dislike"), -1.0f);
  EXPECT_FLOAT_EQ(o.weight_of("other"), 1.0f);
  auto bad = core::Config::from_toml_string("[serve]\nindex = \"fast\"\n");
  EXPECT_NE(error_of([&] { ServiceOptions::from_config(bad); }).find("serve.index"), std::string::npos);
  auto bad2 = core::Config::from_toml_string("[serve.feedback_weights]\nlike = \"much\"\n");
  EXPECT_NE(error_of([&] { ServiceOptions::from_config(bad2); }).find("serve.feedback_weights.like"),
            std::string::npos);
}

// Oracle: a service with the recommendation cache and one without, driven by
// the same random mix of requests and changes (feedback, user attributes,
// hidden / deleted / new items, reloads), answer every request identically.
TEST(Service, CachedAnswersEqualFreshOnes) {
  for (const std::string model : {"itemknn", "content", "meta_ranker:tasks=20,rounds=1"}) {
    SCOPED_TRACE(model);
    TempDir dir;
    auto open = [&](const std::string& name, int64_t cache) {
      auto o = test_options(dir.file(name), model);
      o.cache_size = cache;
      auto svc = Service::open(o, core::null_monitor());
      svc->upsert_items(world_items());
      auto fb = world_feedback();
      svc->insert_feedback(fb);
      svc->reload(core::null_monitor());
      return svc;
    };
    auto cached = open("cached.db", 64);  // small: evictions happen too
    auto fresh = open("fresh.db", 0);
    std::mt19937 rng(11);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    auto user = [&]() {
      const int u = pick(44);
      return u < 30 ? "uA" + std::to_string(u) : u < 40 ? "uB" + std::to_string(u - 30) : "new" + std::to_string(u - 40);
    };
    auto item = [&]() { return pick(2) ? item_a(pick(20)) : item_b(pick(20)); };
    int64_t t = 100000;
    int compared = 0;
    std::vector<std::pair<std::string, RecommendOptions>> recent;
    for (int step = 0; step < 600; ++step) {
      const int op = pick(100);
      if (op < 80) {  // a request, often repeated
        RecommendOptions o;
        std::string u;
        if (!recent.empty() && pick(3) != 0) {  // repeat a recent request
          std::tie(u, o) = recent[static_cast<size_t>(pick(static_cast<int>(recent.size())))];
        } else {
          o.k = 1 + pick(3) * 5;
          o.exclude_seen = pick(4) != 0;
          if (pick(5) == 0) o.category = pick(2) ? "A" : "B";
          if (pick(6) == 0) o.exclude = {item(), "no-such-item"};
          o.reasons = pick(8) == 0;
          u = user();
          recent.emplace_back(u, o);
          if (recent.size() > 6) recent.erase(recent.begin());
        }
        ErrorCode c1{}, c2{};
        RecommendResult r1, r2;
        const auto e1 = error_of([&] { r1 = cached->recommend(u, o); }, &c1);
        const auto e2 = error_of([&] { r2 = fresh->recommend(u, o); }, &c2);
        ASSERT_EQ(e1, e2) << "step " << step;
        ASSERT_EQ(r1.source, r2.source) << "step " << step;
        ASSERT_EQ(r1.items.size(), r2.items.size()) << "step " << step;
        for (size_t i = 0; i < r1.items.size(); ++i) {
          ASSERT_EQ(r1.items[i].item, r2.items[i].item) << "step " << step << " rank " << i;
          ASSERT_EQ(r1.items[i].score, r2.items[i].score) << "step " << step << " rank " << i;
          ASSERT_EQ(r1.items[i].reason, r2.items[i].reason) << "step " << step << " rank " << i;
        }
        ++compared;
      } else if (op < 90) {  // feedback, sometimes negative
        // Often to a user whose list is cached.
        const std::string u = !recent.empty() && pick(2) ? recent[static_cast<size_t>(pick(static_cast<int>(recent.size())))].first : user();
        std::vector<store::FeedbackRecord> fb = {{u, item(), pick(5) ? "click" : "dislike", 1.0f, t++}};
        cached->insert_feedback(fb);
        fresh->insert_feedback(fb);
      } else if (op < 92) {
        std::vector<store::UserRecord> us = {{user(), {{"country", pick(2) ? "fr" : "de"}}, {}, 0}};
        cached->upsert_users(us);
        fresh->upsert_users(us);
      } else if (op < 95) {  // hide / show an item or add a new one
        store::ItemRecord rec;
        rec.id = pick(3) ? item() : "n" + std::to_string(step);
        rec.categories = {pick(2) ? "A" : "B"};
        rec.text = "beta tale number " + std::to_string(pick(20));
        rec.hidden = pick(3) == 0;
        std::vector<store::ItemRecord> items = {rec};
        cached->upsert_items(items);
        fresh->upsert_items(items);
      } else if (op < 97) {
        std::vector<std::string> ids = {item()};
        cached->delete_items(ids);
        fresh->delete_items(ids);
      } else if (op < 98) {
        std::vector<std::string> ids = {user()};
        cached->delete_users(ids);
        fresh->delete_users(ids);
      } else {
        cached->reload(core::null_monitor());
        fresh->reload(core::null_monitor());
      }
    }
    EXPECT_GT(compared, 400);
    const auto st = cached->stats();
    EXPECT_GT(st.cache_hits, 20) << "repeated requests are served from the cache";
    EXPECT_GT(st.cache_misses, 50);
    EXPECT_EQ(fresh->stats().cache_hits, 0);
  }
}

}  // namespace
}  // namespace fewrec::serve

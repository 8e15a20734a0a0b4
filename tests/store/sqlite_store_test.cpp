// SQLite store: record round-trips, upserts, deletes, paging, feedback
// identity, reopening, models, validation errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "fewrec/core/error.h"
#include "fewrec/store/store.h"

namespace fewrec::store {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("fewrec_store_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

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

UserRecord user(const std::string& id, int64_t updated = 1700000000) {
  UserRecord u;
  u.id = id;
  u.attributes = {{"gender", "f"}, {"country", "fr"}, {"note", "quote \" and \\ and é"}};
  u.labels = {"premium", "likes:jazz"};
  u.updated_at = updated;
  return u;
}

ItemRecord item(const std::string& id, int64_t updated = 1700000000) {
  ItemRecord it;
  it.id = id;
  it.categories = {"books", "sci-fi"};
  it.tags = {"classic"};
  it.features = {{"author", "Le Guin"}, {"year", "1969"}};
  it.text = "The Left Hand of Darkness\nA novel";
  it.timestamp = 1600000000;
  it.hidden = false;
  it.updated_at = updated;
  return it;
}

FeedbackRecord fb(std::string u, std::string i, std::string type, float value, int64_t ts) {
  return FeedbackRecord{std::move(u), std::move(i), std::move(type), value, ts};
}

std::vector<FeedbackRecord> all_feedback(const Store& s) {
  std::vector<FeedbackRecord> out;
  s.for_each_feedback([&](const FeedbackRecord& e) { out.push_back(e); });
  return out;
}

TEST(SqliteStore, UserRoundTripAndUpsertOverwrites) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  EXPECT_FALSE(s->get_user("u1").has_value());
  const UserRecord u1 = user("u1");
  s->upsert_user(u1);
  ASSERT_TRUE(s->get_user("u1").has_value());
  EXPECT_EQ(*s->get_user("u1"), u1);

  UserRecord changed;
  changed.id = "u1";
  changed.attributes = {{"gender", "m"}};
  changed.updated_at = 1700000100;
  s->upsert_user(changed);
  EXPECT_EQ(*s->get_user("u1"), changed);  // every field replaced, labels gone
  EXPECT_EQ(s->count_users(), 1);

  // updated_at 0 stamps the current time.
  UserRecord now;
  now.id = "u2";
  const auto before = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  s->upsert_user(now);
  const int64_t stamped = s->get_user("u2")->updated_at;
  EXPECT_GE(stamped, before);
  EXPECT_LE(stamped, before + 60);
}

TEST(SqliteStore, ItemRoundTripAndUpsertOverwrites) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  ItemRecord a = item("a");
  ItemRecord b = item("b");
  b.hidden = true;
  b.categories.clear();
  b.features.clear();
  b.text.clear();
  b.timestamp = -5;
  s->upsert_items(std::vector<ItemRecord>{a, b});
  EXPECT_EQ(*s->get_item("a"), a);
  EXPECT_EQ(*s->get_item("b"), b);
  a.text = "new title";
  a.hidden = true;
  a.tags = {};
  s->upsert_item(a);
  EXPECT_EQ(*s->get_item("a"), a);
  EXPECT_EQ(s->count_items(), 2);

  const std::vector<std::string> ids = {"b", "zzz", "a"};
  const auto got = s->get_items(ids);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(*got[0], b);
  EXPECT_FALSE(got[1].has_value());
  EXPECT_EQ(*got[2], a);
}

TEST(SqliteStore, BatchUpsertIsOneTransactionAndLastRecordWins) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  std::vector<UserRecord> batch = {user("a"), user("b"), user("a", 1700000999)};
  batch[2].labels = {"second"};
  s->upsert_users(batch);
  EXPECT_EQ(s->count_users(), 2);
  EXPECT_EQ(*s->get_user("a"), batch[2]);

  // A bad record anywhere in a batch: nothing of the batch is written.
  std::vector<UserRecord> bad = {user("c"), user("")};
  const std::string msg = error_of([&] { s->upsert_users(bad); }, ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("user id `` is empty"));
  EXPECT_FALSE(s->get_user("c").has_value());
  const auto got = s->get_users(std::vector<std::string>{"b", "c"});
  EXPECT_TRUE(got[0].has_value());
  EXPECT_FALSE(got[1].has_value());
}

TEST(SqliteStore, ListPagesInInsertionOrderAcrossUpdatesAndDeletes) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  std::vector<std::string> expected;
  std::mt19937 rng(7);
  for (int i = 0; i < 53; ++i) {
    // Ids out of lexicographic order: the order must be insertion order.
    const std::string id = "user-" + std::to_string(rng() % 100000) + "-" + std::to_string(i);
    s->upsert_user(user(id));
    expected.push_back(id);
  }
  s->upsert_user(user(expected[10], 42));  // an update keeps the position
  ASSERT_TRUE(s->delete_user(expected[20]));
  expected.erase(expected.begin() + 20);

  std::vector<std::string> seen;
  int64_t cursor = 0;
  int pages = 0;
  do {
    const Page<UserRecord> page = s->list_users(cursor, 10);
    for (const auto& u : page.records) seen.push_back(u.id);
    cursor = page.next_cursor;
    ++pages;
    ASSERT_LT(pages, 100);
  } while (cursor != 0);
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(pages, 6);  // 52 users in pages of 10
  EXPECT_EQ(s->count_users(), 52);

  // Items page the same way; an exact multiple of the limit ends with an empty page.
  for (int i = 0; i < 4; ++i) s->upsert_item(item("i" + std::to_string(3 - i)));
  Page<ItemRecord> p1 = s->list_items(0, 2);
  ASSERT_EQ(p1.records.size(), 2u);
  EXPECT_EQ(p1.records[0].id, "i3");
  Page<ItemRecord> p2 = s->list_items(p1.next_cursor, 2);
  ASSERT_EQ(p2.records.size(), 2u);
  EXPECT_EQ(p2.records[1].id, "i0");
  Page<ItemRecord> p3 = s->list_items(p2.next_cursor, 2);
  EXPECT_TRUE(p3.records.empty());
  EXPECT_EQ(p3.next_cursor, 0);

  EXPECT_THAT(error_of([&] { s->list_users(0, 0); }, ErrorCode::kInvalidArgument),
              HasSubstr("list_users: page limit must be positive, got 0"));
}

TEST(SqliteStore, FeedbackIsIdempotentOnItsIdentity) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  const std::vector<FeedbackRecord> batch = {
      fb("u1", "i1", "click", 1, 100), fb("u1", "i1", "like", 1, 100),   // other type
      fb("u1", "i1", "click", 1, 101),                                     // other time
      fb("u1", "i2", "click", 1, 100), fb("u2", "i1", "click", 1, 100),   // other item / user
      fb("u1", "i1", "click", 5, 100),                                     // same identity
  };
  EXPECT_EQ(s->insert_feedback(batch), 5);
  EXPECT_EQ(s->insert_feedback(batch), 0);
  EXPECT_EQ(s->count_feedback(), 5);
  std::vector<FeedbackRecord> more = {fb("u1", "i1", "click", 9, 100), fb("u3", "i3", "buy", 2.5f, 7)};
  EXPECT_EQ(s->insert_feedback(more), 1);
  EXPECT_EQ(s->count_feedback(), 6);
  // The first stored value stays.
  const auto hist = s->feedback_of_user("u1", FeedbackQuery{.limit = -1, .newest_first = false, .type = "click"});
  ASSERT_EQ(hist.size(), 3u);
  EXPECT_EQ(hist[0], fb("u1", "i1", "click", 1, 100));
  EXPECT_EQ(hist[1], fb("u1", "i2", "click", 1, 100));
  EXPECT_EQ(hist[2], fb("u1", "i1", "click", 1, 101));
  EXPECT_EQ(s->insert_feedback(std::vector<FeedbackRecord>{}), 0);
}

TEST(SqliteStore, FeedbackCreatesUnknownUsersAndItemsByDefault) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  s->upsert_user(user("known"));
  EXPECT_EQ(s->insert_feedback(std::vector<FeedbackRecord>{fb("known", "new-item", "click", 1, 1),
                                                           fb("new-user", "new-item", "click", 1, 2)}),
            2);
  const auto u = s->get_user("new-user");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(*u, UserRecord{.id = "new-user"});  // empty fields, updated_at 0
  const auto it = s->get_item("new-item");
  ASSERT_TRUE(it.has_value());
  EXPECT_EQ(*it, ItemRecord{.id = "new-item"});
  EXPECT_EQ(*s->get_user("known"), user("known"));  // untouched
  // A later upsert fills the implicit row and keeps its feedback.
  s->upsert_item(item("new-item"));
  EXPECT_EQ(s->feedback_of_user("new-user").size(), 1u);
}

TEST(SqliteStore, FeedbackForUnknownIdsCanBeRejected) {
  TempDir dir;
  SqliteOptions o;
  o.unknown_ids = UnknownIds::kReject;
  auto s = open_sqlite_store(dir.file("s.db"), o);
  s->upsert_user(user("u1"));
  s->upsert_item(item("i1"));
  const std::vector<FeedbackRecord> batch = {fb("u1", "i1", "click", 1, 1), fb("u1", "ghost", "click", 1, 2)};
  const std::string msg = error_of([&] { s->insert_feedback(batch); }, ErrorCode::kNotFound);
  EXPECT_THAT(msg, HasSubstr("feedback 1: unknown item `ghost`"));
  EXPECT_THAT(msg, HasSubstr("unknown_ids = create"));
  EXPECT_EQ(s->count_feedback(), 0);  // the valid event of the batch was rolled back too
  EXPECT_FALSE(s->get_item("ghost").has_value());
  EXPECT_THAT(error_of([&] { s->insert_feedback(std::vector{fb("nobody", "i1", "click", 1, 1)}); },
                       ErrorCode::kNotFound),
              HasSubstr("feedback 0: unknown user `nobody`"));
  EXPECT_EQ(s->insert_feedback(std::vector{fb("u1", "i1", "click", 1, 1)}), 1);
}

TEST(SqliteStore, InvalidFeedbackIsRejectedWithItsPosition) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  auto msg = [&](FeedbackRecord e) {
    std::vector<FeedbackRecord> batch = {fb("u", "i", "click", 1, 1), e};
    return error_of([&] { s->insert_feedback(batch); }, ErrorCode::kInvalidArgument);
  };
  EXPECT_THAT(msg(fb("", "i", "click", 1, 1)), HasSubstr("feedback 1: user id `` is empty"));
  EXPECT_THAT(msg(fb("u", "", "click", 1, 1)), HasSubstr("feedback 1 (user `u`): item id `` is empty"));
  EXPECT_THAT(msg(fb("u", "i", "", 1, 1)), HasSubstr("event type `` is empty"));
  EXPECT_THAT(msg(fb("u", "i", "click", std::nanf(""), 1)), HasSubstr("value nan is not a finite number"));
  EXPECT_THAT(msg(fb("u", "i\x01", "click", 1, 1)), HasSubstr("contains the control character \\x01"));
  EXPECT_THAT(msg(fb(std::string(2000, 'x'), "i", "click", 1, 1)), HasSubstr("has 2000 bytes (at most 1024)"));
  EXPECT_THAT(msg(fb("u\xff", "i", "click", 1, 1)), HasSubstr("is not valid UTF-8"));
  EXPECT_EQ(s->count_feedback(), 0);
  EXPECT_EQ(s->count_users(), 0);

  ItemRecord bad = item("x");
  bad.categories.push_back("");
  EXPECT_THAT(error_of([&] { s->upsert_item(bad); }, ErrorCode::kInvalidArgument),
              HasSubstr("item `x`: category 2 is empty"));
  bad = item("x");
  bad.features["k"] = "\xc3";
  EXPECT_THAT(error_of([&] { s->upsert_item(bad); }, ErrorCode::kInvalidArgument),
              HasSubstr("item `x`: feature `k` is not valid UTF-8"));
  UserRecord ub = user("y");
  ub.attributes[""] = "v";
  EXPECT_THAT(error_of([&] { s->upsert_user(ub); }, ErrorCode::kInvalidArgument),
              HasSubstr("user `y`: attribute key is empty"));
}

TEST(SqliteStore, FeedbackOfUserOrderLimitAndType) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  std::vector<FeedbackRecord> events;
  std::mt19937 rng(11);
  for (int i = 0; i < 40; ++i)
    events.push_back(fb(i % 3 == 0 ? "other" : "me", "i" + std::to_string(i), i % 2 ? "click" : "buy",
                        static_cast<float>(i), static_cast<int64_t>(rng() % 1000)));
  s->insert_feedback(events);
  // Oracle: my events sorted by time (ties by insertion order).
  std::vector<FeedbackRecord> mine;
  for (const auto& e : events)
    if (e.user == "me") mine.push_back(e);
  std::stable_sort(mine.begin(), mine.end(),
                   [](const auto& a, const auto& b) { return a.timestamp < b.timestamp; });
  EXPECT_EQ(s->feedback_of_user("me", {.limit = -1, .newest_first = false}), mine);
  std::vector<FeedbackRecord> newest(mine.rbegin(), mine.rbegin() + 5);
  EXPECT_EQ(s->feedback_of_user("me", {.limit = 5, .newest_first = true}), newest);
  std::vector<FeedbackRecord> buys;
  for (const auto& e : mine)
    if (e.type == "buy") buys.push_back(e);
  EXPECT_EQ(s->feedback_of_user("me", {.limit = -1, .newest_first = false, .type = "buy"}), buys);
  EXPECT_TRUE(s->feedback_of_user("nobody").empty());
  EXPECT_THAT(error_of([&] { s->feedback_of_user("me", {.limit = 0}); }, ErrorCode::kInvalidArgument),
              HasSubstr("limit must be -1 (all) or positive, got 0"));
}

TEST(SqliteStore, ScanReadsEverythingInOrder) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  s->upsert_users(std::vector<UserRecord>{user("b"), user("a")});
  s->upsert_items(std::vector<ItemRecord>{item("y"), item("x")});
  std::vector<FeedbackRecord> events;
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i)
    events.push_back(fb("u" + std::to_string(rng() % 10), "i" + std::to_string(rng() % 30), "click",
                        static_cast<float>(i), static_cast<int64_t>(rng() % 50)));
  const int64_t fresh = s->insert_feedback(events);
  // Oracle: first occurrence of each identity, stable-sorted by time.
  std::vector<FeedbackRecord> expected;
  std::set<std::tuple<std::string, std::string, int64_t>> ids;
  for (const auto& e : events)
    if (ids.emplace(e.user, e.item, e.timestamp).second) expected.push_back(e);
  EXPECT_EQ(fresh, static_cast<int64_t>(expected.size()));
  std::stable_sort(expected.begin(), expected.end(),
                   [](const auto& a, const auto& b) { return a.timestamp < b.timestamp; });
  EXPECT_EQ(all_feedback(*s), expected);

  std::vector<FeedbackRecord> late;
  for (const auto& e : expected)
    if (e.timestamp >= 25) late.push_back(e);
  std::vector<FeedbackRecord> got;
  s->for_each_feedback([&](const FeedbackRecord& e) { got.push_back(e); }, 25);
  EXPECT_EQ(got, late);

  std::vector<std::string> users, items;
  StoreScan scan;
  scan.user = [&](const UserRecord& u) { users.push_back(u.id); };
  scan.item = [&](const ItemRecord& i) { items.push_back(i.id); };
  s->scan(scan);
  ASSERT_GE(users.size(), 2u);
  EXPECT_EQ(users[0], "b");
  EXPECT_EQ(users[1], "a");
  EXPECT_EQ(static_cast<int64_t>(users.size()), s->count_users());
  EXPECT_EQ(items[0], "y");
  EXPECT_EQ(static_cast<int64_t>(items.size()), s->count_items());

  // A callback's exception reaches the caller; the store stays usable.
  int calls = 0;
  EXPECT_THROW(s->for_each_feedback([&](const FeedbackRecord&) {
    if (++calls == 3) throw std::runtime_error("stop");
  }),
               std::runtime_error);
  EXPECT_EQ(all_feedback(*s).size(), expected.size());
}

TEST(SqliteStore, DeletingUsersAndItemsCascadesToFeedback) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  s->insert_feedback(std::vector{fb("u1", "i1", "click", 1, 1), fb("u1", "i2", "click", 1, 2),
                                 fb("u2", "i1", "click", 1, 3), fb("u2", "i2", "click", 1, 4),
                                 fb("u3", "i3", "click", 1, 5)});
  EXPECT_TRUE(s->delete_user("u1"));
  EXPECT_FALSE(s->delete_user("u1"));
  EXPECT_EQ(s->count_feedback(), 3);
  EXPECT_TRUE(s->feedback_of_user("u1").empty());
  EXPECT_EQ(s->delete_items(std::vector<std::string>{"i2", "nope", "i3"}), 2);
  EXPECT_EQ(all_feedback(*s), (std::vector{fb("u2", "i1", "click", 1, 3)}));
  EXPECT_EQ(s->count_items(), 1);
  EXPECT_EQ(s->count_users(), 2);  // u3 keeps its row without feedback
  // Reinserting the deleted user starts clean.
  s->insert_feedback(std::vector{fb("u1", "i1", "click", 1, 9)});
  EXPECT_EQ(s->feedback_of_user("u1").size(), 1u);
}

TEST(SqliteStore, EverythingSurvivesCloseAndReopen) {
  TempDir dir;
  const std::string path = dir.file("s.db");
  std::vector<FeedbackRecord> events;
  for (int i = 0; i < 100; ++i)
    events.push_back(fb("u" + std::to_string(i % 7), "i" + std::to_string(i % 13), "view", 0.5f * i, i));
  {
    auto s = open_sqlite_store(path);
    s->upsert_users(std::vector<UserRecord>{user("u0"), user("zz")});
    s->upsert_item(item("i0"));
    s->insert_feedback(events);
    s->save_model("als", "bytes-v1", {{"epochs", 3}});
  }
  EXPECT_FALSE(fs::exists(path + "-wal") && fs::file_size(path + "-wal") > 0)
      << "the last connection's close checkpoints the WAL";
  auto s = open_sqlite_store(path);
  EXPECT_EQ(*s->get_user("u0"), user("u0"));
  EXPECT_EQ(*s->get_user("zz"), user("zz"));
  EXPECT_EQ(*s->get_item("i0"), item("i0"));
  EXPECT_EQ(s->count_users(), 8);
  EXPECT_EQ(s->count_items(), 13);
  EXPECT_EQ(all_feedback(*s), events);  // already in time order
  ASSERT_TRUE(s->latest_model("als").has_value());
  EXPECT_EQ(s->latest_model("als")->bytes, "bytes-v1");
  EXPECT_EQ(s->stats()["feedback"], 100);
  EXPECT_EQ(s->stats()["schema_version_at_open"], kSqliteSchemaVersion);
  EXPECT_EQ(s->describe(), "sqlite:" + path);
}

TEST(SqliteStore, TwoStoresOnOneFileSeeEachOthersWrites) {
  TempDir dir;
  const std::string path = dir.file("s.db");
  auto a = open_sqlite_store(path);
  auto b = open_sqlite_store(path);
  a->upsert_user(user("from-a"));
  EXPECT_EQ(*b->get_user("from-a"), user("from-a"));
  EXPECT_EQ(b->insert_feedback(std::vector{fb("from-a", "i", "click", 1, 1)}), 1);
  EXPECT_EQ(a->feedback_of_user("from-a").size(), 1u);
}

TEST(SqliteStore, ModelsAreVersionedPerName) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"));
  EXPECT_FALSE(s->latest_model("als").has_value());
  std::string blob(100000, '\0');
  std::mt19937 rng(5);
  for (auto& c : blob) c = static_cast<char>(rng());
  const ModelInfo v1 = s->save_model("als", blob, {{"ndcg", 0.31}, {"spec", "als:factors=64"}});
  EXPECT_EQ(v1.version, 1);
  EXPECT_EQ(v1.size, 100000);
  const ModelInfo v2 = s->save_model("als", "second");
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(s->save_model("bpr", std::string_view()).version, 1);  // empty, no data pointer
  EXPECT_EQ(s->latest_model("bpr")->bytes, "");

  const auto latest = s->latest_model("als");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->info.version, 2);
  EXPECT_EQ(latest->bytes, "second");
  const auto first = s->get_model("als", 1);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->bytes, blob);  // binary-safe, NULs included
  EXPECT_EQ(first->info.metadata["spec"], "als:factors=64");
  EXPECT_FALSE(s->get_model("als", 3).has_value());

  const auto all = s->list_models();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].name, "als");
  EXPECT_EQ(all[0].version, 2);
  EXPECT_EQ(all[1].version, 1);
  EXPECT_EQ(all[2].name, "bpr");
  EXPECT_EQ(s->list_models("bpr").size(), 1u);

  s->save_model("als", "third");
  EXPECT_EQ(s->prune_models("als", 1), 2);
  ASSERT_EQ(s->list_models("als").size(), 1u);
  EXPECT_EQ(s->list_models("als")[0].version, 3);
  EXPECT_EQ(s->save_model("als", "fourth").version, 4);  // versions keep counting
  EXPECT_EQ(s->prune_models("bpr", 0), 1);

  EXPECT_THAT(error_of([&] { s->save_model("", "x"); }, ErrorCode::kInvalidArgument),
              HasSubstr("model name `` is empty"));
  EXPECT_THAT(error_of([&] { s->save_model("m", "x", std::string("\xff")); }, ErrorCode::kInvalidArgument),
              HasSubstr("model `m`: metadata cannot be stored as JSON"));
}

TEST(SqliteStore, ConcurrentReadersAndWritersDoNotInterfere) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("s.db"), SqliteOptions{.synchronous_full = false});
  constexpr int kThreads = 4, kPerThread = 50;
  std::vector<std::thread> threads;
  std::atomic<int> read_errors{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        s->upsert_user(user(id));
        s->insert_feedback(std::vector{fb(id, "item", "click", 1, i)});
        const auto back = s->get_user(id);  // read-your-writes across connections
        if (!back || s->feedback_of_user(id).size() != 1) read_errors++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_EQ(s->count_users(), kThreads * kPerThread);
  EXPECT_EQ(s->count_feedback(), kThreads * kPerThread);
}

}  // namespace
}  // namespace fewrec::store

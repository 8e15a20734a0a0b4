// to_dataset: the exported Dataset matches what was inserted.
#include "fewrec/store/dataset_export.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "fewrec/core/error.h"
#include "fewrec/store/store.h"

namespace fewrec::store {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("fewrec_export_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
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
  }
  ADD_FAILURE() << "expected fewrec::Error";
  return "";
}

// A seeded store and everything that was put into it.
struct Fixture {
  TempDir dir;
  std::unique_ptr<Store> store;
  std::vector<UserRecord> users;
  std::vector<ItemRecord> items;
  std::vector<FeedbackRecord> feedback;  // as inserted (identities unique)

  Fixture() {
    store = open_sqlite_store(dir.file("d.db"), {.synchronous_full = false});
    std::mt19937 rng(2024);
    const char* genders[] = {"f", "m", "x"};
    for (int u = 0; u < 30; ++u) {
      UserRecord r{.id = "user" + std::to_string(29 - u)};
      r.attributes["gender"] = genders[rng() % 3];
      if (u % 4 == 0) r.attributes["country"] = u % 8 ? "fr" : "de";
      if (u % 5 == 0) r.labels = {"premium"};
      users.push_back(r);
    }
    const char* cats[] = {"books", "music", "film", "games"};
    for (int i = 0; i < 50; ++i) {
      ItemRecord r{.id = "item" + std::to_string(i)};
      r.categories = {cats[i % 4]};
      if (i % 7 == 0) r.categories.push_back(cats[(i + 1) % 4]);
      if (i % 3 == 0) r.tags = {"new"};
      r.features["brand"] = "b" + std::to_string(i % 5);
      r.features["price"] = i % 9 == 0 ? "" : std::to_string(i) + ".5";
      r.text = i % 6 == 0 ? "" : "Title of item " + std::to_string(i);
      r.hidden = i % 10 == 9;
      r.timestamp = 1000 + i;
      items.push_back(r);
    }
    store->upsert_users(users);
    store->upsert_items(items);
    std::set<std::tuple<int, int, int, int64_t>> seen;
    const char* types[] = {"click", "like", "buy"};
    while (feedback.size() < 600) {
      // Items 40..49 get no feedback: they must still be in the dataset.
      const int u = static_cast<int>(rng() % 30), i = static_cast<int>(rng() % 40), t = static_cast<int>(rng() % 3);
      const int64_t ts = static_cast<int64_t>(rng() % 500);
      if (!seen.emplace(u, i, t, ts).second) continue;
      feedback.push_back({"user" + std::to_string(u), "item" + std::to_string(i), types[t],
                          static_cast<float>(rng() % 5 + 1), ts});
    }
    store->insert_feedback(feedback);
  }
};

// (user, item, type, ts, value, weight) rows of a dataset, by external ids.
using Row = std::tuple<std::string, std::string, std::string, int64_t, float, float>;
std::multiset<Row> rows_of(const data::Dataset& ds) {
  std::multiset<Row> out;
  for (const auto& r : ds.rows())
    out.emplace(ds.users().id(r.user), ds.items().id(r.item), ds.event_types().id(r.event), r.timestamp,
                r.value, r.weight);
  return out;
}

TEST(DatasetExport, MatchesWhatWasInserted) {
  Fixture f;
  DatasetExportOptions o;
  o.name = "shop";
  o.type_weights = {{"buy", 3.0f}, {"like", 2.0f}};
  o.default_weight = 0.5f;
  o.hidden = HiddenItems::kFeature;
  o.numeric_item_features = {"price"};
  DatasetExportReport rep;
  const data::Dataset ds = to_dataset(*f.store, o, &rep);

  EXPECT_EQ(ds.name(), "shop");
  // Users and items in insertion order, including those without feedback.
  ASSERT_EQ(ds.num_users(), 30);
  for (int u = 0; u < 30; ++u) EXPECT_EQ(ds.users().id(u), f.users[u].id);
  ASSERT_EQ(ds.num_items(), 50);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(ds.items().id(i), f.items[i].id);
  EXPECT_EQ(rep.users, 30);
  EXPECT_EQ(rep.items, 50);
  EXPECT_EQ(rep.interactions, 600);
  EXPECT_EQ(rep.feedback_dropped, 0);

  std::multiset<Row> expected;
  for (const auto& e : f.feedback) {
    const float w = e.type == "buy" ? 3.0f : e.type == "like" ? 2.0f : 0.5f;
    expected.emplace(e.user, e.item, e.type, e.timestamp, e.value, w);
  }
  EXPECT_EQ(rows_of(ds), expected);
  // Time-sorted inside each user.
  for (data::UserIndex u = 0; u < ds.num_users(); ++u) {
    const auto h = ds.history(u);
    EXPECT_TRUE(std::is_sorted(h.timestamps.begin(), h.timestamps.end()));
  }

  // User features.
  const auto& gender = ds.user_features().column("gender");
  EXPECT_EQ(gender.kind, data::FeatureKind::kCategorical);
  const auto& country = ds.user_features().column("country");
  const auto& labels = ds.user_features().column("labels");
  EXPECT_EQ(labels.kind, data::FeatureKind::kTags);
  for (int u = 0; u < 30; ++u) {
    EXPECT_EQ(gender.vocab.id(gender.codes[u]), f.users[u].attributes.at("gender"));
    const auto c = f.users[u].attributes.find("country");
    if (c == f.users[u].attributes.end()) EXPECT_EQ(country.codes[u], -1);
    else EXPECT_EQ(country.vocab.id(country.codes[u]), c->second);
    EXPECT_EQ(labels.tags_of(u).size(), f.users[u].labels.size());
  }

  // Item features.
  const auto& cats = ds.item_features().column("categories");
  const auto& tags = ds.item_features().column("tags");
  const auto& title = ds.item_features().column("title");
  const auto& brand = ds.item_features().column("brand");
  const auto& price = ds.item_features().column("price");
  const auto& hidden = ds.item_features().column("hidden");
  EXPECT_EQ(cats.kind, data::FeatureKind::kTags);
  EXPECT_EQ(title.kind, data::FeatureKind::kText);
  EXPECT_EQ(price.kind, data::FeatureKind::kNumeric);
  for (int i = 0; i < 50; ++i) {
    const ItemRecord& r = f.items[i];
    std::vector<std::string> got_cats;
    for (int32_t c : cats.tags_of(i)) got_cats.push_back(cats.vocab.id(c));
    EXPECT_EQ(got_cats, r.categories);
    EXPECT_EQ(tags.tags_of(i).size(), r.tags.size());
    EXPECT_EQ(title.texts[i], r.text);
    EXPECT_EQ(brand.vocab.id(brand.codes[i]), r.features.at("brand"));
    if (r.features.at("price").empty()) EXPECT_TRUE(std::isnan(price.numbers[i]));
    else EXPECT_FLOAT_EQ(price.numbers[i], std::stof(r.features.at("price")));
    EXPECT_EQ(hidden.vocab.id(hidden.codes[i]), r.hidden ? "true" : "false");
  }
  // Event types by name ("default" is the builder's type 0).
  std::set<std::string> names(ds.event_types().ids().begin(), ds.event_types().ids().end());
  EXPECT_EQ(names, (std::set<std::string>{"default", "click", "like", "buy"}));
}

TEST(DatasetExport, HiddenItemsDroppedByDefault) {
  Fixture f;
  DatasetExportReport rep;
  const data::Dataset ds = to_dataset(*f.store, {}, &rep);
  EXPECT_EQ(ds.num_items(), 45);  // items 9, 19, 29, 39, 49 are hidden
  EXPECT_EQ(ds.items().find("item9"), -1);
  EXPECT_EQ(ds.item_features().find("hidden"), nullptr);
  EXPECT_EQ(rep.hidden_items_dropped, 5);
  int64_t on_hidden = 0;
  std::multiset<Row> expected;
  for (const auto& e : f.feedback) {
    if (std::stoi(e.item.substr(4)) % 10 == 9) {
      ++on_hidden;
      continue;
    }
    expected.emplace(e.user, e.item, e.type, e.timestamp, e.value, 1.0f);
  }
  ASSERT_GT(on_hidden, 0);
  EXPECT_EQ(rep.feedback_dropped, on_hidden);
  EXPECT_EQ(rows_of(ds), expected);
  // Price stays categorical unless listed as numeric.
  EXPECT_EQ(ds.item_features().column("price").kind, data::FeatureKind::kCategorical);
}

TEST(DatasetExport, TypeAndTimeFilters) {
  Fixture f;
  DatasetExportOptions o;
  o.types = {"buy"};
  o.since = 250;
  o.hidden = HiddenItems::kKeep;
  o.text_column = "";
  const data::Dataset ds = to_dataset(*f.store, o);
  std::multiset<Row> expected;
  for (const auto& e : f.feedback)
    if (e.type == "buy" && e.timestamp >= 250) expected.emplace(e.user, e.item, e.type, e.timestamp, e.value, 1.0f);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(rows_of(ds), expected);
  EXPECT_EQ(ds.num_items(), 50);
  EXPECT_EQ(ds.item_features().find("title"), nullptr);
  EXPECT_EQ(ds.item_features().find("hidden"), nullptr);
}

TEST(DatasetExport, CollidingNamesAndBadOptionsAreErrors) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("c.db"), {.synchronous_full = false});
  s->upsert_item(ItemRecord{.id = "pen", .features = {{"categories", "x"}}});
  EXPECT_THAT(error_of([&] { to_dataset(*s); }, ErrorCode::kInvalidArgument),
              HasSubstr("item `pen` has a feature named `categories`, which is the column of the item's categories"));
  s->upsert_item(ItemRecord{.id = "pen", .features = {{"title", "x"}}});
  EXPECT_THAT(error_of([&] { to_dataset(*s); }, ErrorCode::kInvalidArgument),
              HasSubstr("feature named `title`, which is the column of the item's text"));
  EXPECT_NO_THROW(to_dataset(*s, {.text_column = "text"}));
  s->upsert_item(ItemRecord{.id = "pen", .features = {{"price", "cheap"}}});
  EXPECT_THAT(error_of([&] { to_dataset(*s, {.numeric_item_features = {"price"}}); }, ErrorCode::kInvalidArgument),
              HasSubstr("item `pen`: feature `price` = `cheap` is not a number"));
  s->upsert_user(UserRecord{.id = "u", .attributes = {{"labels", "x"}}});
  EXPECT_THAT(error_of([&] { to_dataset(*s); }, ErrorCode::kInvalidArgument),
              HasSubstr("user `u` has an attribute named `labels`"));
  EXPECT_THAT(error_of([&] { to_dataset(*s, {.type_weights = {{"click", -1.0f}}}); }, ErrorCode::kInvalidArgument),
              HasSubstr("the weight of type `click` must be a finite number >= 0, got -1"));
}

TEST(DatasetExport, ReportsProgressToTheMonitor) {
  Fixture f;
  struct Recorder final : core::Monitor {
    int64_t total = -1, done_total = -1;
    void progress(std::string_view, int64_t, int64_t t) override { total = t; }
    void done(std::string_view task, int64_t n, double) override {
      if (task == "export feedback") done_total = n;
    }
  } monitor;
  to_dataset(*f.store, {}, nullptr, &monitor);
  EXPECT_EQ(monitor.done_total, 600);
}

TEST(DatasetExport, EmptyStoreGivesEmptyDataset) {
  TempDir dir;
  auto s = open_sqlite_store(dir.file("e.db"));
  const data::Dataset ds = to_dataset(*s);
  EXPECT_EQ(ds.num_users(), 0);
  EXPECT_EQ(ds.num_items(), 0);
  EXPECT_EQ(ds.num_interactions(), 0);
}

}  // namespace
}  // namespace fewrec::store

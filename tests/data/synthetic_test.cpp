#include "fewrec/data/synthetic.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <unordered_set>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"

namespace fewrec::data {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string w;
  while (in >> w) {
    std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return std::tolower(c); });
    out.push_back(w);
  }
  return out;
}

// Topic index of every item, read from the dataset's "topic" column.
std::vector<int32_t> item_topics(const Dataset& d) {
  const auto& topics = synthetic_topics();
  const FeatureColumn& col = d.item_features().column("topic");
  std::vector<int32_t> out(static_cast<size_t>(d.num_items()), -1);
  for (int32_t i = 0; i < d.num_items(); ++i) {
    const std::string& name = col.vocab.id(col.codes[static_cast<size_t>(i)]);
    for (size_t t = 0; t < topics.size(); ++t)
      if (topics[t].first == name) out[static_cast<size_t>(i)] = static_cast<int32_t>(t);
  }
  return out;
}

// Most frequent item topic of each user's history (-1 for empty histories).
std::vector<int32_t> dominant_topics(const Dataset& d, int32_t num_topics) {
  const std::vector<int32_t> topic = item_topics(d);
  std::vector<int32_t> out(static_cast<size_t>(d.num_users()), -1);
  for (UserIndex u = 0; u < d.num_users(); ++u) {
    std::vector<int> count(static_cast<size_t>(num_topics), 0);
    for (ItemIndex i : d.history(u).items)
      ++count[static_cast<size_t>(topic[static_cast<size_t>(i)])];
    if (d.history_size(u) > 0)
      out[static_cast<size_t>(u)] =
          static_cast<int32_t>(std::max_element(count.begin(), count.end()) - count.begin());
  }
  return out;
}

// Accuracy of predicting `label` from `feature` with the majority label of
// each feature value, and of always predicting the overall majority label.
std::pair<double, double> predictability(const std::vector<int32_t>& feature,
                                         const std::vector<int32_t>& label) {
  std::map<int32_t, std::map<int32_t, int>> by_value;
  std::map<int32_t, int> overall;
  int n = 0;
  for (size_t k = 0; k < label.size(); ++k) {
    if (label[k] < 0) continue;
    ++by_value[feature[k]][label[k]];
    ++overall[label[k]];
    ++n;
  }
  int correct = 0;
  for (const auto& [value, counts] : by_value) {
    int best = 0;
    for (const auto& [l, c] : counts) best = std::max(best, c);
    correct += best;
  }
  int majority = 0;
  for (const auto& [l, c] : overall) majority = std::max(majority, c);
  return {static_cast<double>(correct) / n, static_cast<double>(majority) / n};
}

double top_decile_share(const Dataset& d) {
  std::vector<int64_t> counts = d.item_counts();
  std::sort(counts.rbegin(), counts.rend());
  const size_t top = std::max<size_t>(1, counts.size() / 10);
  const int64_t head = std::accumulate(
      counts.begin(), counts.begin() + static_cast<std::ptrdiff_t>(top), int64_t{0});
  return static_cast<double>(head) / static_cast<double>(d.num_interactions());
}

// Fraction of consecutive pairs in a history where the second item is the
// planted successor of the first.
double successor_rate(const Dataset& d, const SyntheticTruth& truth) {
  int64_t transitions = 0, hits = 0;
  for (UserIndex u = 0; u < d.num_users(); ++u) {
    auto items = d.history(u).items;
    for (size_t k = 1; k < items.size(); ++k) {
      ++transitions;
      hits += truth.item_successor[static_cast<size_t>(items[k - 1])] == items[k];
    }
  }
  return static_cast<double>(hits) / static_cast<double>(transitions);
}

TEST(SyntheticTopics, ListsAreCommonDistinctWords) {
  const auto& topics = synthetic_topics();
  ASSERT_GE(topics.size(), 12u);
  std::set<std::string> names, all_words;
  for (const auto& [name, words] : topics) {
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_GE(words.size(), 18u) << name;
    for (const std::string& w : words) {
      EXPECT_FALSE(w.empty());
      EXPECT_TRUE(std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
          << w;
      EXPECT_TRUE(all_words.insert(w).second)
          << "word `" << w << "` appears twice (topic " << name << ")";
    }
  }
  for (const std::string& w : synthetic_general_words()) {
    EXPECT_TRUE(all_words.insert(w).second) << "general word `" << w << "` is also a topic word";
  }
  EXPECT_GE(synthetic_general_words().size(), 10u);

  // Every word must be common English: a whole word of the uncased BERT
  // vocabulary (whose words GloVe 6B covers too).
  const std::filesystem::path vocab_path =
      std::filesystem::path(FEWREC_SHARED_DIR) / "reference" / "bert-vocab.txt";
  if (!std::filesystem::exists(vocab_path)) GTEST_SKIP() << "no " << vocab_path;
  std::ifstream in(vocab_path);
  std::unordered_set<std::string> vocab;
  for (std::string line; std::getline(in, line);) vocab.insert(line);
  ASSERT_GT(vocab.size(), 20000u);
  for (const std::string& w : all_words)
    EXPECT_TRUE(vocab.count(w)) << "`" << w << "` is not a common word";
}

TEST(SyntheticOptions, FromConfigReadsEveryKeyWithDocs) {
  core::Config config;
  config.set("data.synthetic.users=50");
  config.set("data.synthetic.items=40");
  config.set("data.synthetic.topics=4");
  config.set("data.synthetic.dim=6");
  config.set("data.synthetic.mean_interactions=12.5");
  config.set("data.synthetic.min_interactions=3");
  config.set("data.synthetic.popularity_skew=1.1");
  config.set("data.synthetic.noise=0.2");
  config.set("data.synthetic.sequential_prob=0.4");
  config.set("data.synthetic.drift=0.1");
  config.set("data.synthetic.temperature=0.7");
  config.set("data.synthetic.ratings=false");
  config.set("data.synthetic.seed=99");
  SyntheticOptions o = SyntheticOptions::from_config(config);
  EXPECT_EQ(o.num_users, 50);
  EXPECT_EQ(o.num_items, 40);
  EXPECT_EQ(o.num_topics, 4);
  EXPECT_EQ(o.dim, 6);
  EXPECT_DOUBLE_EQ(o.mean_interactions, 12.5);
  EXPECT_EQ(o.min_interactions, 3);
  EXPECT_DOUBLE_EQ(o.popularity_skew, 1.1);
  EXPECT_DOUBLE_EQ(o.noise, 0.2);
  EXPECT_DOUBLE_EQ(o.sequential_prob, 0.4);
  EXPECT_DOUBLE_EQ(o.drift, 0.1);
  EXPECT_DOUBLE_EQ(o.temperature, 0.7);
  EXPECT_FALSE(o.ratings);
  EXPECT_EQ(o.seed, 99u);
  EXPECT_NO_THROW(config.check_all_used());
  for (const char* key :
       {"users", "items", "topics", "dim", "mean_interactions", "min_interactions",
        "popularity_skew", "noise", "sequential_prob", "drift", "temperature", "ratings", "seed"}) {
    auto it = config.docs().find(std::string("data.synthetic.") + key);
    ASSERT_NE(it, config.docs().end()) << key;
    EXPECT_FALSE(it->second.second.empty()) << key << " has no doc";
  }
}

TEST(SyntheticOptions, FromConfigDefaultsMatchTheStruct) {
  core::Config config;
  SyntheticOptions o = SyntheticOptions::from_config(config), d;
  EXPECT_EQ(o.num_users, d.num_users);
  EXPECT_EQ(o.num_items, d.num_items);
  EXPECT_EQ(o.num_topics, d.num_topics);
  EXPECT_EQ(o.seed, d.seed);
  EXPECT_DOUBLE_EQ(o.sequential_prob, d.sequential_prob);
  EXPECT_EQ(o.ratings, d.ratings);
}

TEST(SyntheticOptions, InvalidOptionsAreErrorsNamingTheKey) {
  auto expect_error = [](SyntheticOptions o, const std::string& key) {
    try {
      make_synthetic(o);
      ADD_FAILURE() << "no error for " << key;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_THAT(e.message(), HasSubstr(key));
    }
  };
  SyntheticOptions o;
  o.num_topics = 0;
  expect_error(o, "data.synthetic.topics");
  o.num_topics = static_cast<int32_t>(synthetic_topics().size()) + 1;
  expect_error(o, "data.synthetic.topics");
  o = {};
  o.num_users = 0;
  expect_error(o, "data.synthetic.users");
  o = {};
  o.temperature = 0;
  expect_error(o, "data.synthetic.temperature");
  o = {};
  o.sequential_prob = 1.5;
  expect_error(o, "data.synthetic.sequential_prob");
  o = {};
  o.num_items = 10;
  o.min_interactions = 11;
  expect_error(o, "data.synthetic.min_interactions");
  o = {};
  o.drift = -0.1;
  expect_error(o, "data.synthetic.drift");

  core::Config config;
  config.set("data.synthetic.users=10000000000");
  EXPECT_THROW(SyntheticOptions::from_config(config), Error);
}

TEST(Synthetic, SameSeedSameDataOtherSeedOtherData) {
  SyntheticOptions o;
  o.num_users = 300;
  o.num_items = 200;
  const Dataset a = make_synthetic(o), b = make_synthetic(o);
  ASSERT_EQ(a.num_interactions(), b.num_interactions());
  EXPECT_TRUE(std::ranges::equal(a.user_offsets(), b.user_offsets()));
  EXPECT_TRUE(std::ranges::equal(a.item_column(), b.item_column()));
  EXPECT_TRUE(std::ranges::equal(a.timestamp_column(), b.timestamp_column()));
  EXPECT_TRUE(std::ranges::equal(a.value_column(), b.value_column()));
  EXPECT_EQ(a.item_features().column("title").texts, b.item_features().column("title").texts);
  EXPECT_EQ(a.user_features().column("occupation").codes,
            b.user_features().column("occupation").codes);

  o.seed = 8;
  const Dataset c = make_synthetic(o);
  EXPECT_FALSE(a.num_interactions() == c.num_interactions() &&
               std::ranges::equal(a.item_column(), c.item_column()));
  EXPECT_NE(a.item_features().column("title").texts, c.item_features().column("title").texts);
  EXPECT_NE(a.user_features().column("region").codes, c.user_features().column("region").codes);
}

// Users are generated from per-user streams, so a user's history does not
// depend on how many users there are nor on the threads that made it (more
// than 2048 users run in parallel).
TEST(Synthetic, UserHistoriesDoNotDependOnTheNumberOfUsers) {
  SyntheticOptions o;
  o.num_users = 300;
  const Dataset small = make_synthetic(o);
  o.num_users = 5000;
  const Dataset large = make_synthetic(o);
  ASSERT_EQ(large.num_users(), 5000);
  for (UserIndex u = 0; u < small.num_users(); ++u) {
    ASSERT_TRUE(std::ranges::equal(small.history(u).items, large.history(u).items)) << u;
    ASSERT_TRUE(std::ranges::equal(small.history(u).timestamps, large.history(u).timestamps)) << u;
  }
  EXPECT_EQ(small.item_features().column("title").texts,
            large.item_features().column("title").texts);
}

TEST(Synthetic, SizesIdsAndFeatureColumns) {
  SyntheticOptions o;  // defaults: 1000 users x 500 items
  const Dataset d = make_synthetic(o);
  EXPECT_EQ(d.name(), "synthetic");
  ASSERT_EQ(d.num_users(), 1000);
  ASSERT_EQ(d.num_items(), 500);
  EXPECT_EQ(d.users().id(0), "u0");
  EXPECT_EQ(d.users().id(999), "u999");
  EXPECT_EQ(d.items().id(0), "i0");
  EXPECT_EQ(d.items().id(499), "i499");
  EXPECT_EQ(d.num_active_users(), 1000);

  const FeatureTable& uf = d.user_features();
  EXPECT_EQ(uf.rows(), 1000);
  for (const char* name : {"age", "region", "occupation"}) {
    const FeatureColumn& c = uf.column(name);
    EXPECT_EQ(c.kind, FeatureKind::kCategorical) << name;
    EXPECT_GE(c.vocab.size(), 5) << name;
    EXPECT_TRUE(std::ranges::none_of(c.codes, [](int32_t x) { return x < 0; })) << name;
  }
  const FeatureTable& itf = d.item_features();
  EXPECT_EQ(itf.rows(), 500);
  EXPECT_EQ(itf.column("title").kind, FeatureKind::kText);
  EXPECT_EQ(itf.column("genres").kind, FeatureKind::kTags);
  EXPECT_EQ(itf.column("topic").kind, FeatureKind::kCategorical);
  EXPECT_EQ(itf.column("year").kind, FeatureKind::kNumeric);
  EXPECT_EQ(itf.column("topic").vocab.size(), o.num_topics);
  const FeatureColumn& genres = itf.column("genres");
  const FeatureColumn& topic = itf.column("topic");
  int secondary = 0;
  for (int32_t i = 0; i < 500; ++i) {
    auto tags = genres.tags_of(i);
    ASSERT_GE(tags.size(), 1u);
    ASSERT_LE(tags.size(), 2u);
    secondary += tags.size() == 2;
    EXPECT_EQ(genres.vocab.id(tags[0]), topic.vocab.id(topic.codes[static_cast<size_t>(i)]));
    const float year = itf.column("year").numbers[static_cast<size_t>(i)];
    EXPECT_GE(year, 1950);
    EXPECT_LE(year, 2023);
  }
  EXPECT_GT(secondary, 50);  // about a quarter of the items
  EXPECT_LT(secondary, 200);
}

TEST(Synthetic, HistoryLengthsRespectMinimumAndMean) {
  SyntheticOptions o;
  o.num_users = 2000;
  o.num_items = 400;
  o.min_interactions = 7;
  o.mean_interactions = 30;
  const Dataset d = make_synthetic(o);
  int64_t longest = 0;
  for (UserIndex u = 0; u < d.num_users(); ++u) {
    EXPECT_GE(d.history_size(u), 7) << "user " << u;
    longest = std::max(longest, d.history_size(u));
  }
  const double mean = static_cast<double>(d.num_interactions()) / d.num_users();
  EXPECT_NEAR(mean, 30, 3);
  EXPECT_GT(longest, 60);  // a long tail of heavy users
  EXPECT_LE(longest, 400);

  // Mean below the minimum: everyone has exactly the minimum; the length is
  // capped at the catalogue size.
  o.num_users = 50;
  o.num_items = 20;
  o.min_interactions = 20;
  o.mean_interactions = 5;
  const Dataset all = make_synthetic(o);
  for (UserIndex u = 0; u < all.num_users(); ++u) EXPECT_EQ(all.history_size(u), 20);
}

TEST(Synthetic, NoRepeatedItemsAndTimestampsIncrease) {
  SyntheticOptions o;
  o.num_items = 120;  // small catalogue: users exhaust their favourite items
  o.mean_interactions = 60;
  o.sequential_prob = 0.5;
  const Dataset d = make_synthetic(o);
  for (UserIndex u = 0; u < d.num_users(); ++u) {
    UserHistory h = d.history(u);
    std::set<ItemIndex> distinct(h.items.begin(), h.items.end());
    EXPECT_EQ(distinct.size(), h.size()) << "user " << u;
    for (size_t k = 1; k < h.size(); ++k)
      EXPECT_LE(h.timestamps[k - 1], h.timestamps[k]) << "user " << u;
  }
  // Users start at different times across a window of years.
  std::vector<int64_t> first;
  for (UserIndex u = 0; u < d.num_users(); ++u) first.push_back(d.history(u).timestamps[0]);
  auto [lo, hi] = std::minmax_element(first.begin(), first.end());
  EXPECT_GT(*hi - *lo, 365LL * 86400);
}

TEST(Synthetic, UsersPreferTheirMainTopic) {
  SyntheticOptions o;
  o.num_users = 1000;
  o.num_items = 500;
  SyntheticTruth truth;
  const Dataset d = make_synthetic(o, &truth);
  ASSERT_EQ(truth.user_main_topic.size(), 1000u);
  ASSERT_EQ(truth.item_topic, item_topics(d));  // the truth matches the published column

  auto main_share = [](const Dataset& data, const SyntheticTruth& t) {
    int64_t hits = 0;
    for (UserIndex u = 0; u < data.num_users(); ++u)
      for (ItemIndex i : data.history(u).items)
        hits += t.item_topic[static_cast<size_t>(i)] == t.user_main_topic[static_cast<size_t>(u)];
    return static_cast<double>(hits) / static_cast<double>(data.num_interactions());
  };
  const double chance = 1.0 / o.num_topics;
  EXPECT_GT(main_share(d, truth), 3 * chance);

  // Control: at a very high temperature the preference all but vanishes, so
  // the measure above does detect missing structure.
  o.temperature = 100;
  SyntheticTruth flat_truth;
  const Dataset flat = make_synthetic(o, &flat_truth);
  EXPECT_LT(main_share(flat, flat_truth), 1.5 * chance);
}

TEST(Synthetic, UserAttributesPredictTheirTopics) {
  SyntheticOptions o;
  o.num_users = 2000;
  o.num_items = 400;
  const Dataset d = make_synthetic(o);
  const std::vector<int32_t> dominant = dominant_topics(d, o.num_topics);
  for (const char* attribute : {"occupation", "region"}) {
    const std::vector<int32_t>& codes = d.user_features().column(attribute).codes;
    auto [accuracy, baseline] = predictability(codes, dominant);
    EXPECT_GT(accuracy, 0.35) << attribute;
    EXPECT_GT(accuracy, 2.5 * baseline) << attribute;

    // Control: the same attribute values dealt to other users predict nothing.
    std::vector<int32_t> shuffled = codes;
    std::rotate(shuffled.begin(), shuffled.begin() + 1, shuffled.end());
    auto [control, control_baseline] = predictability(shuffled, dominant);
    EXPECT_LT(control, 1.6 * control_baseline) << attribute;
  }
  // Not deterministic either: a topic's users do not all share one value.
  const std::vector<int32_t>& occupation = d.user_features().column("occupation").codes;
  auto [accuracy, baseline] = predictability(occupation, dominant);
  EXPECT_LT(accuracy, 0.95);
}

TEST(Synthetic, SuccessorTransitionsAppearAtTheirRate) {
  for (double p : {0.0, 0.25, 0.6}) {
    SyntheticOptions o;
    o.num_users = 800;
    o.num_items = 600;
    o.sequential_prob = p;
    SyntheticTruth truth;
    const Dataset d = make_synthetic(o, &truth);
    const double rate = successor_rate(d, truth);
    if (p == 0)
      EXPECT_LT(rate, 0.02);
    else
      EXPECT_NEAR(rate, p, 0.05 + 0.1 * p) << "sequential_prob " << p;
  }
}

TEST(Synthetic, SuccessorsFormCyclesInsideTopics) {
  SyntheticOptions o;
  SyntheticTruth truth;
  make_synthetic(o, &truth);
  const auto n = static_cast<size_t>(o.num_items);
  ASSERT_EQ(truth.item_successor.size(), n);
  std::vector<int> indegree(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const auto s = static_cast<size_t>(truth.item_successor[i]);
    ASSERT_LT(s, n);
    EXPECT_EQ(truth.item_topic[s], truth.item_topic[i]);
    EXPECT_NE(s, i);  // every topic has many items
    ++indegree[s];
  }
  EXPECT_TRUE(std::ranges::all_of(indegree, [](int k) { return k == 1; }));  // a permutation
}

TEST(Synthetic, PopularitySkewMakesALongTail) {
  SyntheticOptions o;
  o.num_users = 2000;
  o.num_items = 1000;
  o.popularity_skew = 1.0;
  SyntheticTruth truth;
  const Dataset skewed = make_synthetic(o, &truth);
  o.popularity_skew = 0;
  const Dataset flat = make_synthetic(o);
  const double skewed_share = top_decile_share(skewed), flat_share = top_decile_share(flat);
  EXPECT_GT(skewed_share, 0.3);
  EXPECT_GT(skewed_share, flat_share + 0.15);

  // The head is the planted head: the items with the highest bias are used
  // far more often than those with the lowest.
  std::vector<ItemIndex> by_bias(static_cast<size_t>(o.num_items));
  std::iota(by_bias.begin(), by_bias.end(), 0);
  std::sort(by_bias.begin(), by_bias.end(), [&](ItemIndex a, ItemIndex b) {
    return truth.item_bias[static_cast<size_t>(a)] > truth.item_bias[static_cast<size_t>(b)];
  });
  const std::vector<int64_t> counts = skewed.item_counts();
  int64_t head = 0, tail = 0;
  for (size_t k = 0; k < 100; ++k) {
    head += counts[static_cast<size_t>(by_bias[k])];
    tail += counts[static_cast<size_t>(by_bias[by_bias.size() - 1 - k])];
  }
  // (Not the full 1:40 bias ratio: users take an item at most once, so the
  // head saturates.)
  EXPECT_GT(head, 5 * tail);

  // Control: without skew the same measure finds no head.
  std::vector<int64_t> flat_counts = flat.item_counts();
  int64_t flat_head = 0, flat_tail = 0;
  for (size_t k = 0; k < 100; ++k) {
    flat_head += flat_counts[static_cast<size_t>(by_bias[k])];
    flat_tail += flat_counts[static_cast<size_t>(by_bias[by_bias.size() - 1 - k])];
  }
  EXPECT_LT(flat_head, 1.5 * flat_tail);
}

TEST(Synthetic, TitlesUseTopicWords) {
  SyntheticOptions o;
  o.num_topics = static_cast<int32_t>(synthetic_topics().size());
  o.num_items = 2000;
  o.num_users = 10;
  SyntheticTruth truth;
  const Dataset d = make_synthetic(o, &truth);
  const auto& topics = synthetic_topics();
  std::set<std::string> general(synthetic_general_words().begin(), synthetic_general_words().end());
  const auto& titles = d.item_features().column("title").texts;
  int64_t words = 0, own_topic = 0, general_count = 0;
  std::set<std::string> distinct_titles;
  for (int32_t i = 0; i < d.num_items(); ++i) {
    const auto w = words_of(titles[static_cast<size_t>(i)]);
    ASSERT_GE(w.size(), 2u) << titles[static_cast<size_t>(i)];
    ASSERT_LE(w.size(), 5u) << titles[static_cast<size_t>(i)];
    distinct_titles.insert(titles[static_cast<size_t>(i)]);
    const auto& main_words =
        topics[static_cast<size_t>(truth.item_topic[static_cast<size_t>(i)])].second;
    const int32_t second = truth.item_secondary_topic[static_cast<size_t>(i)];
    int from_topic = 0;
    for (const std::string& x : w) {
      ++words;
      const bool in_main = std::ranges::find(main_words, x) != main_words.end();
      const bool in_second =
          second >= 0 && std::ranges::find(topics[static_cast<size_t>(second)].second, x) !=
                             topics[static_cast<size_t>(second)].second.end();
      const bool in_general = general.count(x) > 0;
      EXPECT_TRUE(in_main || in_second || in_general)
          << "title `" << titles[static_cast<size_t>(i)] << "` has `" << x << "`";
      own_topic += in_main || in_second;
      from_topic += in_main || in_second;
      general_count += in_general;
    }
    EXPECT_GE(from_topic, 1) << titles[static_cast<size_t>(i)];
  }
  EXPECT_NEAR(static_cast<double>(own_topic) / words, 0.8, 0.07);
  EXPECT_GT(general_count, 0);
  EXPECT_GT(distinct_titles.size(), 1800u);
}

TEST(Synthetic, RatingsFollowAffinity) {
  SyntheticOptions o;
  o.drift = 0;
  SyntheticTruth truth;
  const Dataset d = make_synthetic(o, &truth);
  std::map<float, int64_t> histogram;
  std::vector<std::pair<double, float>> affinity_rating;
  for (UserIndex u = 0; u < d.num_users(); ++u) {
    UserHistory h = d.history(u);
    for (size_t k = 0; k < h.size(); ++k) {
      histogram[h.values[k]]++;
      double a = 0;
      for (int32_t j = 0; j < o.dim; ++j)
        a += truth.user_factors[static_cast<size_t>(u) * o.dim + j] *
             truth.item_factors[static_cast<size_t>(h.items[k]) * o.dim + j];
      affinity_rating.emplace_back(a, h.values[k]);
    }
  }
  ASSERT_EQ(histogram.size(), 5u);
  EXPECT_EQ(histogram.begin()->first, 1.0f);
  EXPECT_EQ(histogram.rbegin()->first, 5.0f);
  for (const auto& [value, count] : histogram) EXPECT_GT(count, d.num_interactions() / 25) << value;
  std::sort(affinity_rating.begin(), affinity_rating.end());
  const size_t half = affinity_rating.size() / 2;
  double low = 0, high = 0;
  for (size_t k = 0; k < half; ++k) low += affinity_rating[k].second;
  for (size_t k = half; k < affinity_rating.size(); ++k) high += affinity_rating[k].second;
  EXPECT_GT(high / (affinity_rating.size() - half) - low / half, 0.8);

  o.ratings = false;
  const Dataset implicit = make_synthetic(o);
  EXPECT_TRUE(std::ranges::all_of(implicit.value_column(), [](float v) { return v == 1.0f; }));
}

TEST(Synthetic, TasteDriftsTowardTheDriftTopic) {
  auto drift_gain = [](double drift) {
    SyntheticOptions o;
    o.num_users = 1500;
    o.num_items = 2000;  // large enough that users do not run out of favourites
    o.mean_interactions = 60;
    o.drift = drift;
    o.sequential_prob = 0;
    SyntheticTruth truth;
    const Dataset d = make_synthetic(o, &truth);
    int64_t early = 0, late = 0, early_n = 0, late_n = 0;
    for (UserIndex u = 0; u < d.num_users(); ++u) {
      auto items = d.history(u).items;
      const size_t q = items.size() / 4;
      for (size_t k = 0; k < items.size(); ++k) {
        const bool hit = truth.item_topic[static_cast<size_t>(items[k])] ==
                         truth.user_drift_topic[static_cast<size_t>(u)];
        if (k < q) early += hit, ++early_n;
        if (k >= items.size() - q) late += hit, ++late_n;
      }
    }
    return static_cast<double>(late) / late_n - static_cast<double>(early) / early_n;
  };
  // Without drift the share still moves a little (users exhaust their
  // favourite items and spread out); drift must add clearly more.
  const double with_drift = drift_gain(0.6), without = drift_gain(0.0);
  EXPECT_LT(std::abs(without), 0.05);
  EXPECT_GT(with_drift, without + 0.06);
}

// Oracle: the first item of each history follows the exact softmax
// p(i) ∝ exp(u . v_i / T + bias_i) computed by brute force, much more closely
// than the topic-level proposal the sampler starts from.
TEST(Synthetic, FirstChoicesFollowTheExactSoftmax) {
  SyntheticOptions o;
  o.num_users = 20000;
  o.num_items = 300;
  o.min_interactions = 1;
  o.mean_interactions = 1;
  o.drift = 0;
  o.sequential_prob = 0;
  SyntheticTruth truth;
  const Dataset d = make_synthetic(o, &truth);
  const int32_t dim = o.dim, items = o.num_items;
  std::vector<double> expected(static_cast<size_t>(items)), proposal(static_cast<size_t>(items)),
      observed(static_cast<size_t>(items));
  std::vector<double> lp(static_cast<size_t>(items)), lq(static_cast<size_t>(items));
  for (UserIndex u = 0; u < d.num_users(); ++u) {
    ASSERT_EQ(d.history_size(u), 1);
    observed[static_cast<size_t>(d.history(u).items[0])] += 1;
    const float* uf = truth.user_factors.data() + static_cast<size_t>(u) * dim;
    double mp = -1e300, mq = -1e300;
    for (int32_t i = 0; i < items; ++i) {
      const float* v = truth.item_factors.data() + static_cast<size_t>(i) * dim;
      const float* c = truth.centres.data() +
                       static_cast<size_t>(truth.item_topic[static_cast<size_t>(i)]) * dim;
      double uv = 0, uc = 0;
      for (int32_t k = 0; k < dim; ++k) uv += uf[k] * v[k], uc += uf[k] * c[k];
      lp[static_cast<size_t>(i)] = uv / o.temperature + truth.item_bias[static_cast<size_t>(i)];
      lq[static_cast<size_t>(i)] = uc / o.temperature + truth.item_bias[static_cast<size_t>(i)];
      mp = std::max(mp, lp[static_cast<size_t>(i)]);
      mq = std::max(mq, lq[static_cast<size_t>(i)]);
    }
    double zp = 0, zq = 0;
    for (int32_t i = 0; i < items; ++i) {
      zp += std::exp(lp[static_cast<size_t>(i)] - mp);
      zq += std::exp(lq[static_cast<size_t>(i)] - mq);
    }
    for (int32_t i = 0; i < items; ++i) {
      expected[static_cast<size_t>(i)] += std::exp(lp[static_cast<size_t>(i)] - mp) / zp;
      proposal[static_cast<size_t>(i)] += std::exp(lq[static_cast<size_t>(i)] - mq) / zq;
    }
  }
  auto total_variation = [&](const std::vector<double>& a, const std::vector<double>& b) {
    double tv = 0;
    for (size_t i = 0; i < a.size(); ++i) tv += std::abs(a[i] - b[i]);
    return tv / 2 / o.num_users;
  };
  const double tv_sampler = total_variation(observed, expected);
  const double tv_proposal = total_variation(proposal, expected);
  EXPECT_LT(tv_sampler, 0.09);  // multinomial noise alone is about 0.04
  EXPECT_LT(tv_sampler, 0.5 * tv_proposal);
}

TEST(Synthetic, SmallAndDegenerateShapesWork) {
  SyntheticOptions o;
  o.num_users = 3;
  o.num_items = 2;  // fewer items than topics: some topics are empty
  o.num_topics = 5;
  o.min_interactions = 2;
  o.mean_interactions = 10;
  const Dataset d = make_synthetic(o);
  for (UserIndex u = 0; u < 3; ++u) EXPECT_EQ(d.history_size(u), 2);

  o = {};
  o.num_topics = 1;
  o.dim = 1;
  o.num_users = 20;
  o.num_items = 30;
  o.noise = 0;
  EXPECT_EQ(make_synthetic(o).num_users(), 20);

  o = {};
  o.num_users = 5;
  o.min_interactions = 0;
  o.mean_interactions = 0;
  EXPECT_EQ(make_synthetic(o).num_interactions(), 0);
}

}  // namespace
}  // namespace fewrec::data

// ModelSpec, top_k, recommend, the Model defaults and the registry.

#include "fewrec/models/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "fewrec/core/strings.h"
#include "fewrec/models/registry.h"
#include "test_util.h"

namespace fewrec::models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::error_of;

// ---- ModelSpec ------------------------------------------------------------

TEST(ModelSpec, ParsesNameOnly) {
  auto spec = ModelSpec::parse("itemknn");
  EXPECT_EQ(spec.name, "itemknn");
  EXPECT_TRUE(spec.options.empty());
  EXPECT_EQ(spec.to_string(), "itemknn");
}

TEST(ModelSpec, ParsesOptionsAndTrimsBlanks) {
  auto spec = ModelSpec::parse("  itemknn : shrink = 10 , k=50 ");
  EXPECT_EQ(spec.name, "itemknn");
  EXPECT_EQ(spec.options, (std::map<std::string, std::string>{{"k", "50"}, {"shrink", "10"}}));
}

TEST(ModelSpec, ToStringSortsOptionsSoItRoundTrips) {
  ModelSpec spec{"itemknn", {{"shrink", "10"}, {"k", "100"}, {"alpha", "0.5"}}};
  EXPECT_EQ(spec.to_string(), "itemknn:alpha=0.5,k=100,shrink=10");
  for (std::string text : {"itemknn:shrink=10,k=100,alpha=0.5", "popularity", "a:x=1", "itemknn:k=100,shrink=10"}) {
    auto once = ModelSpec::parse(text);
    auto twice = ModelSpec::parse(once.to_string());
    EXPECT_EQ(twice.name, once.name);
    EXPECT_EQ(twice.options, once.options);
    EXPECT_EQ(twice.to_string(), once.to_string());
  }
  EXPECT_EQ(ModelSpec::parse("itemknn:shrink=10,k=100").to_string(), "itemknn:k=100,shrink=10");
}

TEST(ModelSpec, EmptyValueIsKept) {
  auto spec = ModelSpec::parse("m:x=");
  EXPECT_EQ(spec.options.at("x"), "");
  EXPECT_EQ(spec.to_string(), "m:x=");
}

TEST(ModelSpec, ParseErrorsNameTheBadPart) {
  EXPECT_THAT(error_of([] { ModelSpec::parse(""); }, ErrorCode::kInvalidArgument),
              HasSubstr("missing model name"));
  EXPECT_THAT(error_of([] { ModelSpec::parse(":k=1"); }, ErrorCode::kInvalidArgument),
              HasSubstr("model spec `:k=1`: missing model name"));
  EXPECT_THAT(error_of([] { ModelSpec::parse("itemknn:k"); }, ErrorCode::kInvalidArgument),
              HasSubstr("expected key=value, got `k`"));
  EXPECT_THAT(error_of([] { ModelSpec::parse("itemknn:=5"); }, ErrorCode::kInvalidArgument),
              HasSubstr("missing option name"));
  EXPECT_THAT(error_of([] { ModelSpec::parse("itemknn:k=1,,shrink=2"); }, ErrorCode::kInvalidArgument),
              HasSubstr("empty option"));
  EXPECT_THAT(error_of([] { ModelSpec::parse("itemknn:k=1,k=2"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `k` given twice"));
  EXPECT_THAT(error_of([] { ModelSpec::parse("itemknn:"); }, ErrorCode::kInvalidArgument),
              HasSubstr("expected key=value options after `:`"));
  EXPECT_THAT(error_of([] { ModelSpec::parse("item knn"); }, ErrorCode::kInvalidArgument),
              HasSubstr("bad model name `item knn`"));
  EXPECT_THAT(error_of([] { ModelSpec::parse("k=1"); }, ErrorCode::kInvalidArgument),
              HasSubstr("bad model name `k=1`"));
}

// ---- top_k ----------------------------------------------------------------

TEST(TopK, BestFirst) {
  std::vector<float> s{0.1f, 0.9f, 0.5f, 0.7f, 0.3f};
  EXPECT_THAT(top_k(s, 3), ElementsAre(1, 3, 2));
  EXPECT_THAT(top_k(s, 1), ElementsAre(1));
}

TEST(TopK, KLargerThanCatalogueReturnsAllSorted) {
  std::vector<float> s{0.1f, 0.9f, 0.5f};
  EXPECT_THAT(top_k(s, 10), ElementsAre(1, 2, 0));
}

TEST(TopK, NonPositiveKOrNoScoresGivesNothing) {
  std::vector<float> s{0.1f, 0.9f};
  EXPECT_TRUE(top_k(s, 0).empty());
  EXPECT_TRUE(top_k(s, -3).empty());
  EXPECT_TRUE(top_k({}, 5).empty());
}

TEST(TopK, TiesBrokenByLowerIndex) {
  std::vector<float> s{1.0f, 2.0f, 1.0f, 2.0f, 1.0f, 0.0f};
  EXPECT_THAT(top_k(s, 4), ElementsAre(1, 3, 0, 2));
  std::vector<float> flat(100, 0.5f);
  auto top = top_k(flat, 5);
  EXPECT_THAT(top, ElementsAre(0, 1, 2, 3, 4));
}

TEST(TopK, ExcludesSortedAndUnsortedLists) {
  std::vector<float> s{0.1f, 0.9f, 0.5f, 0.7f, 0.3f};
  std::vector<ItemIndex> ex{1, 3};
  EXPECT_THAT(top_k(s, 3, ex), ElementsAre(2, 4, 0));
  std::vector<ItemIndex> unsorted{3, 1};
  EXPECT_THAT(top_k(s, 3, unsorted), ElementsAre(2, 4, 0));
  std::vector<ItemIndex> everything{0, 1, 2, 3, 4};
  EXPECT_TRUE(top_k(s, 3, everything).empty());
  // Exclusions outside the catalogue and duplicates are harmless.
  std::vector<ItemIndex> odd{-4, 1, 1, 99};
  EXPECT_THAT(top_k(s, 2, odd), ElementsAre(3, 2));
}

TEST(TopK, NaNIsNeverRankedInfinitiesAre) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> s{nan, 0.5f, nan, -inf, inf, nan};
  EXPECT_THAT(top_k(s, 10), ElementsAre(4, 1, 3));
  std::vector<float> all_nan(4, nan);
  EXPECT_TRUE(top_k(all_nan, 2).empty());
}

TEST(TopK, MatchesAFullSortOnRandomScores) {
  core::Rng rng(3);
  std::vector<float> s(500);
  for (auto& x : s) x = static_cast<float>(core::uniform_index(rng, 50));  // many ties
  std::vector<ItemIndex> ex;
  for (ItemIndex i = 0; i < 500; i += 7) ex.push_back(i);
  std::vector<ItemIndex> expected;
  for (ItemIndex i = 0; i < 500; ++i)
    if (i % 7 != 0) expected.push_back(i);
  std::stable_sort(expected.begin(), expected.end(), [&](ItemIndex a, ItemIndex b) { return s[a] > s[b]; });
  expected.resize(37);
  EXPECT_EQ(top_k(s, 37, ex), expected);
}

// ---- Model defaults and recommend() ----------------------------------------

// Scores item i as i * weight; only score() is implemented.
class LinearModel final : public Model {
 public:
  explicit LinearModel(int32_t n) : Model(ModelSpec{"linear", {}}), n_(n) {}
  void fit(const data::Dataset&, const TrainOptions&, core::Monitor&) override {}
  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    auto s = std::make_unique<UserState>();
    s->seen = context.history_items();
    std::sort(s->seen.begin(), s->seen.end());
    return s;
  }
  void score(const UserState&, std::span<const ItemIndex> items, std::span<float> out) const override {
    ++score_calls;
    for (size_t i = 0; i < items.size(); ++i) out[i] = static_cast<float>(items[i]);
  }
  int32_t num_items() const override { return n_; }
  void save(core::ArtifactWriter&, const std::string&) const override {}
  mutable int score_calls = 0;

 private:
  int32_t n_;
};

TEST(Model, DefaultScoreAllCallsScoreOnEveryItem) {
  LinearModel m(6);
  UserState state;
  std::vector<float> out(6, -1.0f);
  m.score_all(state, out);
  EXPECT_THAT(out, ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_EQ(m.score_calls, 1);
  std::vector<float> wrong(5);
  EXPECT_THAT(error_of([&] { m.score_all(state, wrong); }, ErrorCode::kInvalidArgument),
              HasSubstr("needs an output of 6 scores"));
}

TEST(Model, DefaultAddItemsIsUnavailable) {
  LinearModel m(3);
  data::Catalogue cat;
  EXPECT_EQ(error_of([&] { m.add_items(cat, 3); }, ErrorCode::kUnavailable),
            "model `linear` cannot add items from content");
}

TEST(Model, RecommendExcludesSeenAndReturnsScores) {
  LinearModel m(6);
  auto ctx = testing::new_user({5, 3});
  auto recs = recommend(m, ctx, 3);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0], (std::pair<ItemIndex, float>{4, 4.0f}));
  EXPECT_EQ(recs[1], (std::pair<ItemIndex, float>{2, 2.0f}));
  EXPECT_EQ(recs[2], (std::pair<ItemIndex, float>{1, 1.0f}));
  auto with_seen = recommend(m, ctx, 2, /*exclude_seen=*/false);
  EXPECT_EQ(with_seen[0].first, 5);
  EXPECT_EQ(with_seen[1].first, 4);
}

// ---- Registry ---------------------------------------------------------------

// The built-in models, sorted, as error messages list them ("als, bpr, ...").
// Derived from the registry so the tests hold whichever models are built in.
std::string known_models() {
  std::vector<std::string> names;
  for (const auto* info : model_registry().list()) names.push_back(info->name);
  return core::join(names, ", ");
}

TEST(Registry, BuiltinsAreRegisteredOnceAndListedByName) {
  auto& r = model_registry();
  EXPECT_EQ(&r, &model_registry());
  std::vector<std::string> names;
  for (const auto* info : r.list()) names.push_back(info->name);
  // Sorted by name, each once; the two foundation models always among them.
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  EXPECT_THAT(names, ::testing::IsSupersetOf({"itemknn", "popularity"}));
  for (const auto* info : r.list()) {
    EXPECT_FALSE(info->description.empty()) << info->name;
    EXPECT_EQ(info->description.find('\n'), std::string::npos) << info->name;
    // Every model but the chance-level baseline has options to document.
    EXPECT_EQ(info->options.empty(), info->name == "random") << info->name;
    for (const auto& o : info->options) {
      EXPECT_FALSE(o.key.empty());
      // An empty default is legitimate (a path option that is off by default).
      EXPECT_FALSE(o.doc.empty()) << info->name << "." << o.key;
    }
  }
  EXPECT_TRUE(r.contains("itemknn"));
  EXPECT_FALSE(r.contains("sasrek"));
}

TEST(Registry, OptionDocsShowTheDefaults) {
  const auto& info = model_registry().get("itemknn");
  std::map<std::string, std::string> defaults;
  for (const auto& o : info.options) defaults[o.key] = o.default_value;
  EXPECT_EQ(defaults.at("k"), "100");
  EXPECT_EQ(defaults.at("shrink"), "5");
  EXPECT_EQ(defaults.at("alpha"), "0.5");
  EXPECT_EQ(defaults.at("normalize"), "false");
  EXPECT_EQ(defaults.at("popularity_prior"), "1e-06");
  const auto& pop = model_registry().get("popularity");
  ASSERT_EQ(pop.options.size(), 1u);
  EXPECT_EQ(pop.options[0].key, "weighting");
  EXPECT_EQ(pop.options[0].default_value, "count");
}

TEST(Registry, UnknownModelListsTheKnownOnes) {
  // A name far from every registered one: no suggestion.
  EXPECT_EQ(error_of([] { model_registry().get("zzzzzzzz"); }, ErrorCode::kNotFound),
            "unknown model `zzzzzzzz`; known: " + known_models());
  EXPECT_EQ(error_of([] { model_registry().create(ModelSpec{"zzzzzzzz", {}}); }, ErrorCode::kNotFound),
            "unknown model `zzzzzzzz`; known: " + known_models());
}

TEST(Registry, UnknownModelSuggestsACloseName) {
  EXPECT_EQ(error_of([] { model_registry().get("itemkn"); }, ErrorCode::kNotFound),
            "unknown model `itemkn`; known: " + known_models() + "; did you mean `itemknn`?");
  EXPECT_EQ(error_of([] { model_registry().get("popularty"); }, ErrorCode::kNotFound),
            "unknown model `popularty`; known: " + known_models() + "; did you mean `popularity`?");
}

TEST(Registry, UnknownOptionListsTheKnownOnes) {
  auto msg = error_of([] { model_registry().create(ModelSpec::parse("itemknn:kk=5")); },
                      ErrorCode::kInvalidArgument);
  EXPECT_THAT(msg, HasSubstr("model `itemknn`"));
  EXPECT_THAT(msg, HasSubstr("`kk`"));
  EXPECT_THAT(msg, HasSubstr("did you mean `k`?"));
  EXPECT_THAT(msg, HasSubstr("known options: alpha, k, normalize, popularity_prior, shrink"));
}

TEST(Registry, BadOptionValuesAreErrors) {
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("itemknn:k=x")); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("option `k` expects an integer, got `x`"));
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("itemknn:k=0")); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("option `k` must be"));
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("itemknn:alpha=1.5")); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("option `alpha` must be in [0, 1]"));
  EXPECT_THAT(error_of([] { model_registry().create(ModelSpec::parse("itemknn:shrink=-1")); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("option `shrink` must be >= 0"));
  EXPECT_EQ(error_of([] { model_registry().create(ModelSpec::parse("popularity:weighting=clicks")); },
                     ErrorCode::kInvalidArgument),
            "model `popularity`: option `weighting` must be one of count, value, weight, got `clicks`");
}

TEST(Registry, CreateKeepsTheSpec) {
  auto m = model_registry().create(ModelSpec::parse("itemknn:shrink=10,k=20"));
  EXPECT_EQ(m->name(), "itemknn");
  EXPECT_EQ(m->spec().to_string(), "itemknn:k=20,shrink=10");
}

TEST(Registry, DuplicateRegistrationIsAnInternalError) {
  ModelRegistry r;
  register_builtin_models(r);
  EXPECT_EQ(r.list().size(), model_registry().list().size());
  EXPECT_THAT(error_of([&] { register_builtin_models(r); }, ErrorCode::kInternal),
              HasSubstr("registered twice"));
  ModelRegistry empty;
  EXPECT_EQ(error_of([&] { empty.get("itemknn"); }, ErrorCode::kNotFound),
            "unknown model `itemknn`; known: none");
}

}  // namespace
}  // namespace fewrec::models

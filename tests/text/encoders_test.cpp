// hashing and glove encoders, the encoder registry and the embedding cache.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/text/cache.h"
#include "fewrec/text/encoder.h"
#include "fewrec/text/glove.h"

namespace fs = std::filesystem;
using namespace fewrec;
using ::testing::HasSubstr;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("fewrec_text_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

double dot(const float* a, const float* b, int64_t d) {
  double s = 0;
  for (int64_t j = 0; j < d; ++j) s += static_cast<double>(a[j]) * b[j];
  return s;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// Tiny "GloVe": two topics of 4 words each, + noise words, rank = order.
std::shared_ptr<const text::GloveVectors> tiny_glove() {
  std::vector<std::string> words = {"the", "a", "of", "king", "queen", "prince", "royal",
                                    "pasta", "pizza", "cheese", "bread"};
  const int64_t d = 8;
  std::vector<float> v(words.size() * d, 0.0f);
  core::Rng rng(3);
  for (size_t i = 0; i < words.size(); ++i) {
    for (int64_t j = 0; j < d; ++j) v[i * d + j] = static_cast<float>(0.1 * (core::uniform01(rng) - 0.5));
    v[i * d + 7] += 1.0f;                   // every word shares a common direction (as in real GloVe)
    if (i < 3) v[i * d + 6] += 0.5f;        // function words
    else if (i < 7) v[i * d + 0] += 1.0f;   // royalty
    else v[i * d + 1] += 1.0f;              // food
  }
  return std::make_shared<const text::GloveVectors>(words, v, d, "tiny");
}

}  // namespace

TEST(SimpleWords, LowercasesAndSplits) {
  EXPECT_THAT(text::simple_words("Hello, World! It's 2024 -- café's"),
              ::testing::ElementsAre("hello", "world", "it's", "2024", "café's"));
  EXPECT_TRUE(text::simple_words("").empty());
  EXPECT_TRUE(text::simple_words(" ,.; ").empty());
  EXPECT_THAT(text::simple_words("'quoted'"), ::testing::ElementsAre("quoted"));
}

TEST(Hashing, DeterministicNormalisedAndSimilarForSharedWords) {
  auto enc = text::encoder_registry().create("hashing", {{"dim", "64"}});
  ASSERT_EQ(enc->dim(), 64);
  std::vector<std::string> texts = {"space rocket launch", "rocket launch space", "chocolate cake recipe", ""};
  auto m = enc->encode(texts);
  ASSERT_EQ(m.rows, 4);
  ASSERT_EQ(m.cols, 64);
  EXPECT_NEAR(dot(m.row(0), m.row(0), 64), 1.0, 1e-5);
  EXPECT_NEAR(dot(m.row(3), m.row(3), 64), 0.0, 1e-12);  // empty text stays zero
  // Same words (other order): unigrams equal, bigrams differ.
  EXPECT_GT(dot(m.row(0), m.row(1), 64), 0.4);
  EXPECT_LT(std::abs(dot(m.row(0), m.row(2), 64)), 0.4);
  auto again = enc->encode(texts);
  EXPECT_EQ(m.data, again.data);
  auto other = text::encoder_registry().create("hashing", {{"dim", "64"}, {"seed", "1"}});
  EXPECT_NE(other->identity(), enc->identity());
  EXPECT_NE(other->encode(texts).data, m.data);
  EXPECT_EQ(enc->coverage().texts, 8);
  EXPECT_EQ(enc->coverage().empty_texts, 2);
}

TEST(Registry, UnknownEncoderAndOptionAreClearErrors) {
  EXPECT_THAT(error_of([] { text::encoder_registry().create("hashng", {}); }),
              AllOf(HasSubstr("unknown text encoder `hashng`"), HasSubstr("hashing"), HasSubstr("did you mean")));
  EXPECT_THAT(error_of([] { text::encoder_registry().create("hashing", {{"dims", "3"}}); }), HasSubstr("dims"));
  EXPECT_THAT(error_of([] { text::encoder_registry().create("hashing", {{"dim", "x"}}); }), HasSubstr("dim"));
  std::vector<std::string> names;
  for (const auto* info : text::encoder_registry().list()) names.push_back(info->name);
  EXPECT_THAT(names, ::testing::Contains("glove"));
  EXPECT_THAT(names, ::testing::Contains("hashing"));
}

TEST(Glove, NeighboursFollowTopics) {
  auto g = tiny_glove();
  auto nb = g->neighbours("king", 3);
  ASSERT_EQ(nb.size(), 3u);
  for (const auto& [w, s] : nb) EXPECT_THAT(std::vector<std::string>({"queen", "prince", "royal"}), ::testing::Contains(w));
  EXPECT_THAT(error_of([&] { g->neighbours("nope", 3); }), HasSubstr("`nope` is not in the GloVe vocabulary"));
}

TEST(Glove, SifSentenceVectorsSeparateTopicsAndIgnoreFunctionWords) {
  auto g = tiny_glove();
  auto enc = text::make_glove_encoder(g, {});
  std::vector<std::string> texts = {"The King and the Queen", "royal prince", "pizza with cheese", "the a of",
                                    "unknownword"};
  auto m = enc->encode(texts);
  ASSERT_EQ(m.cols, 8);
  EXPECT_NEAR(dot(m.row(0), m.row(0), 8), 1.0, 1e-5);
  EXPECT_GT(dot(m.row(0), m.row(1), 8), 0.8);  // same topic
  EXPECT_LT(dot(m.row(0), m.row(2), 8), 0.3);  // other topic
  EXPECT_NEAR(dot(m.row(4), m.row(4), 8), 0.0, 1e-12);  // nothing known: zero
  const auto c = enc->coverage();
  EXPECT_EQ(c.texts, 5);
  EXPECT_EQ(c.empty_texts, 1);
  EXPECT_EQ(c.tokens, 5 + 2 + 3 + 3 + 1);
  EXPECT_EQ(c.known_tokens, 4 + 2 + 2 + 3 + 0);  // "and", "with", "unknownword" unknown
  // Without SIF weighting and component removal the function words dominate.
  auto plain = text::make_glove_encoder(g, {{"sif_a", "0"}, {"remove_pc", "false"}});
  auto p = plain->encode(texts);
  EXPECT_GT(dot(p.row(0), p.row(3), 8), dot(m.row(0), m.row(3), 8));
}

TEST(Glove, ConvertRoundTripAndBadInput) {
  const auto dir = temp_dir("glove");
  {
    std::ofstream f(dir / "v.json");
    f << R"({"precision":8,"l2NormIndex":3,"wordIndex":4,"size":3,"dimensions":3,"words":["the","king","queen"],)"
      << R"("vectors":{"king":[1,0,0.5,1.1,1],"the":[0,1,0,1,0],"queen":[0.9,0.1,0.5,1.0,2]},"unkVector":[0,0,0,-1]})";
  }
  core::NullMonitor quiet;
  ASSERT_EQ(text::convert_glove_json(dir / "v.json", dir / "v.fwr", quiet), 3);
  auto g = text::GloveVectors::load(dir / "v.fwr");
  ASSERT_EQ(g->size(), 3);
  ASSERT_EQ(g->dim(), 3);
  EXPECT_EQ(g->find("king"), 1);
  EXPECT_FLOAT_EQ(g->vector(1)[2], 0.5f);
  EXPECT_FLOAT_EQ(g->vector(2)[0], 0.9f);
  EXPECT_EQ(g->neighbours("king", 1).at(0).first, "queen");

  auto write = [&](const std::string& body) {
    std::ofstream f(dir / "bad.json");
    f << body;
  };
  write(R"({"size":2,"dimensions":2,"vectors":{"a":[1,2,3,0],"b":[1,2]}})");
  EXPECT_THAT(error_of([&] { text::convert_glove_json(dir / "bad.json", dir / "bad.fwr", quiet); }),
              AllOf(HasSubstr("bad.json"), HasSubstr("vector of `b` has 2 numbers, expected 4")));
  write(R"({"size":2,"dimensions":2,"vectors":{"a":[1,2,3,0],"b":[1,2,3,0]}})");
  EXPECT_THAT(error_of([&] { text::convert_glove_json(dir / "bad.json", dir / "bad.fwr", quiet); }),
              HasSubstr("index 0 appears twice"));
  write(R"({"size":2,"dimensions":2,"vectors":{"a":[1,2,3,0], )");
  EXPECT_THAT(error_of([&] { text::convert_glove_json(dir / "bad.json", dir / "bad.fwr", quiet); }),
              HasSubstr("invalid JSON"));
  EXPECT_THAT(error_of([&] { text::GloveVectors::load(dir / "missing.fwr"); }),
              AllOf(HasSubstr("missing.fwr"), HasSubstr("scripts/fetch-glove")));
  // A damaged artifact is caught by its checksum.
  {
    std::fstream f(dir / "v.fwr", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(60);
    f.put('\x7f');
  }
  fs::copy_file(dir / "v.fwr", dir / "v2.fwr");
  EXPECT_THAT(error_of([&] { text::GloveVectors::load(dir / "v2.fwr"); }), HasSubstr("v2.fwr"));
  fs::remove_all(dir);
}

// With the real vectors in the cache (scripts/fetch-glove), the classic
// analogies hold; skipped otherwise.
TEST(Glove, RealVectorsKingIsNearQueen) {
  const auto path = text::default_glove_path();
  if (!fs::exists(path)) GTEST_SKIP() << "GloVe vectors not fetched (" << path << "); run scripts/fetch-glove";
  auto g = text::GloveVectors::load(path);
  EXPECT_EQ(g->size(), 341479);
  EXPECT_EQ(g->dim(), 100);
  std::vector<std::string> near;
  for (const auto& [w, s] : g->neighbours("king", 10)) near.push_back(w);
  EXPECT_THAT(near, ::testing::Contains("queen"));
  EXPECT_THAT(near, ::testing::Contains("prince"));
}

TEST(EmbeddingCache, HitsAfterFirstEncodeSurvivesReopenAndTornTail) {
  const auto dir = temp_dir("cache");
  auto enc = text::encoder_registry().create("hashing", {{"dim", "16"}});
  core::NullMonitor quiet;
  std::vector<std::string> texts = {"alpha beta", "gamma", "alpha beta", "delta"};
  text::Matrix first;
  fs::path file;
  {
    text::EmbeddingCache cache(dir, *enc);
    first = cache.encode(texts, quiet, 2);
    EXPECT_EQ(cache.hits(), 0);
    EXPECT_EQ(cache.misses(), 4);
    EXPECT_EQ(cache.size(), 3);  // duplicates encoded once
    EXPECT_EQ(first.data, enc->encode(texts).data);
    file = cache.file();
  }
  {
    text::EmbeddingCache cache(dir, *enc);
    EXPECT_EQ(cache.size(), 3);
    auto again = cache.encode(texts, quiet);
    EXPECT_EQ(cache.hits(), 4);
    EXPECT_EQ(again.data, first.data);
  }
  // A torn last record (crash mid-append) is dropped, the rest is kept.
  fs::resize_file(file, fs::file_size(file) - 5);
  {
    text::EmbeddingCache cache(dir, *enc);
    EXPECT_EQ(cache.size(), 2);
    auto again = cache.encode(texts, quiet);
    EXPECT_EQ(again.data, first.data);
    EXPECT_EQ(cache.misses(), 1);
  }
  // Another encoder gets its own file.
  auto other = text::encoder_registry().create("hashing", {{"dim", "8"}});
  text::EmbeddingCache cache2(dir, *other);
  EXPECT_NE(cache2.file(), file);
  EXPECT_EQ(cache2.size(), 0);
  fs::remove_all(dir);
}

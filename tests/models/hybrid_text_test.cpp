// hybrid with pretrained item text vectors (text_encoder / item_vectors):
// cold items whose only content is a text, items added with a title,
// save / load, vector files against in-process encoding, option syntax and
// errors. The encoders are `hashing` and a tiny in-memory GloVe whose topic
// words share a direction, so no test depends on downloaded vectors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../../src/models/hybrid_text.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/models/model_io.h"
#include "fewrec/models/registry.h"
#include "fewrec/text/encoder.h"
#include "fewrec/text/glove.h"
#include "fewrec/text/item_text.h"
#include "test_util.h"
#include "text_world.h"

namespace fewrec::models {
namespace {

using ::testing::HasSubstr;
using testing::error_of;
using namespace testing;  // text_world.h

constexpr const char* kFast = "hybrid:factors=32,epochs=15";
std::string spec(const std::string& options) { return std::string(kFast) + "," + options; }

// ---- cold items from a text ------------------------------------------------------

TEST(HybridText, ColdItemsWithUnseenWordsAreRankedThroughPretrainedVectors) {
  register_test_glove();
  const auto w = text_world(/*disjoint_words=*/true);
  const double words = cold_auc(*fitted(spec("item_features=all"), w.train), w);
  const double glove = cold_auc(*fitted(spec(std::string("item_features=none,") + kTestGlove), w.train), w);
  const double both = cold_auc(*fitted(spec(std::string("item_features=all,") + kTestGlove), w.train), w);
  // No trained title holds a cold item's words: their word features are
  // zeroed and every cold item ties.
  EXPECT_NEAR(words, 0.5, 1e-9);
  EXPECT_GT(glove, 0.74);  // 0.79: the topic's direction carries over to unseen words
  EXPECT_GT(glove, words + 0.2);
  EXPECT_GT(both, words + 0.2);
}

TEST(HybridText, PretrainedVectorsAndMetaEmbeddingsBeatTheContentBaselineOnNewWords) {
  // The cold-item protocol's plain content baseline (TF-IDF cosine to the
  // user's items) needs shared words: on new words it is at chance, where
  // pretrained vectors carry the topic, with or without meta-embeddings.
  register_test_glove();
  const auto w = text_world(/*disjoint_words=*/true);
  const double content = cold_auc(*fitted("content", w.train), w);
  const double glove = cold_auc(*fitted(spec(std::string("item_features=all,min_df=1,") + kTestGlove), w.train), w);
  const double meta =
      cold_auc(*fitted(spec(std::string("item_features=all,min_df=1,meta_emb=true,") + kTestGlove), w.train), w);
  EXPECT_NEAR(content, 0.5, 1e-9);  // no cold title shares a word with a trained one
  EXPECT_GT(glove, content + 0.2);   // 0.79
  EXPECT_GT(meta, content + 0.2);    // 0.79
  // With shared words, content links the items; the models learn which
  // topics each user likes and beat it.
  const auto shared = text_world(/*disjoint_words=*/false);
  const double content_shared = cold_auc(*fitted("content", shared.train), shared);
  const double meta_shared = cold_auc(*fitted(spec("min_df=1,meta_emb=true"), shared.train), shared);
  EXPECT_GT(content_shared, 0.65);                 // 0.74
  EXPECT_GT(meta_shared, content_shared + 0.02);   // 0.78
}

TEST(HybridText, HashedTextAloneCarriesColdItems) {
  // Shared words, no other content: the hashing encoder's vectors through
  // the projection against ids alone (cold items all score 0).
  const auto w = text_world(/*disjoint_words=*/false);
  const double ids_only = cold_auc(*fitted(spec("item_features=none"), w.train), w);
  // Word bigrams of random titles are noise; few buckets collide words.
  const std::string hashing = "item_features=none,text_encoder=hashing,text_options=dim=512;bigrams=false";
  const double hashed = cold_auc(*fitted(spec(hashing), w.train), w);
  EXPECT_NEAR(ids_only, 0.5, 1e-9);
  EXPECT_GT(hashed, 0.7);  // 0.77 (word features: 0.78)
  // Several threads (Hogwild, the projection summed per thread) train as well.
  const double two_threads = cold_auc(*fitted(spec(hashing), w.train, /*threads=*/2), w);
  EXPECT_GT(two_threads, 0.7);
}

TEST(HybridText, ProjectionStepPerPairAndOtherOptimizersAlsoLearn) {
  register_test_glove();
  const auto w = text_world(/*disjoint_words=*/true);
  for (const std::string extra : {"text_batch=1", "optimizer=adadelta", "loss=bpr", "text_weight=3,ids=false"}) {
    const double a = cold_auc(*fitted(spec(std::string("item_features=none,") + kTestGlove + "," + extra), w.train), w);
    EXPECT_GT(a, 0.72) << extra;  // 0.79-0.80
  }
}

// ---- add_items ---------------------------------------------------------------------

TEST(HybridText, AddedItemsWithOnlyATitleGetTheirTopicsScores) {
  register_test_glove();
  const auto w = text_world(/*disjoint_words=*/true);
  auto m = fitted(spec(std::string("item_features=all,") + kTestGlove), w.train);
  const int32_t n = w.full.num_items();
  const auto before = scores_of(*m, data::context_from_dataset(w.train, 3));
  std::vector<int32_t> topic;
  const auto g = grown(w, &topic);
  m->add_items(g.catalogue(), n);
  ASSERT_EQ(m->num_items(), g.num_items());
  const auto after = scores_of(*m, data::context_from_dataset(w.train, 3));
  EXPECT_EQ(std::vector<float>(after.begin(), after.begin() + n), before);  // old items unchanged
  double total = 0;
  for (UserIndex u = 0; u < w.full.num_users(); ++u) {
    std::vector<ItemIndex> pos, neg;
    for (size_t k = 0; k < topic.size(); ++k)
      (topic[k] == w.truth.user_main_topic[static_cast<size_t>(u)] ? pos : neg).push_back(n + static_cast<ItemIndex>(k));
    const auto s = scores_of(*m, data::context_from_dataset(w.train, u));
    for (size_t k = 0; k < topic.size(); ++k) ASSERT_TRUE(std::isfinite(s[static_cast<size_t>(n) + k]));
    total += auc(s, pos, neg);
  }
  EXPECT_GT(total / w.full.num_users(), 0.85);  // about 0.95, from words no trained item has

  // Without text the same items have no known word: they all tie.
  auto plain = fitted(spec("item_features=all"), w.train);
  plain->add_items(g.catalogue(), n);
  const auto s = scores_of(*plain, data::context_from_dataset(w.train, 3));
  for (size_t k = 1; k < topic.size(); ++k) EXPECT_EQ(s[static_cast<size_t>(n) + k], s[static_cast<size_t>(n)]);
}

// ---- save / load, vector files ---------------------------------------------------------

TEST(HybridText, SaveLoadRoundTripKeepsTheTextPartAndAddsItemsAlike) {
  testing::TempDir dir;
  const auto w = text_world(/*disjoint_words=*/false);
  // Encoder options with commas (as a config file gives them) are saved with `;`.
  ModelSpec s = ModelSpec::parse("hybrid:factors=16,epochs=3,text_encoder=hashing,text_fields=title");
  s.options["text_options"] = "dim=64, bigrams=false";
  auto m = fitted(s, w.train);
  EXPECT_EQ(m->spec().to_string(),
            "hybrid:epochs=3,factors=16,text_encoder=hashing,text_fields=title,text_options=bigrams=false;dim=64");
  EXPECT_EQ(m->summary()["text"]["dim"], 64);
  EXPECT_EQ(m->summary()["text"]["items_with_text"], w.full.num_items());
  save_model(dir / "h.fwr", *m, w.train.catalogue(), nlohmann::json::object());
  auto loaded = load_model(dir / "h.fwr");
  EXPECT_EQ(loaded.model->spec().to_string(), m->spec().to_string());
  EXPECT_EQ(loaded.model->summary(), m->summary());
  std::vector<data::UserContext> contexts;
  for (UserIndex u : {1, 2, 7}) contexts.push_back(data::context_from_dataset(w.full, u));
  contexts.push_back(testing::new_user({3, 4, 9}));
  for (const auto& ctx : contexts) EXPECT_EQ(scores_of(*loaded.model, ctx), scores_of(*m, ctx));
  // The loaded model builds its encoder when items are added.
  const auto g = grown(w, nullptr);
  m->add_items(g.catalogue(), w.full.num_items());
  loaded.model->add_items(g.catalogue(), w.full.num_items());
  for (const auto& ctx : contexts) {
    const auto a = scores_of(*loaded.model, ctx);
    EXPECT_EQ(a, scores_of(*m, ctx));
    // The new items' text part is not zero.
    EXPECT_TRUE(std::any_of(a.begin() + w.full.num_items(), a.end(), [](float x) { return x != 0.0f; }));
  }
  // And saving the grown model keeps the new items' text vectors.
  save_model(dir / "g.fwr", *loaded.model, g.catalogue(), nlohmann::json::object());
  auto again = load_model(dir / "g.fwr");
  for (const auto& ctx : contexts) EXPECT_EQ(scores_of(*again.model, ctx), scores_of(*m, ctx));
}

// Writes the hashing vectors of `ds`'s first `items` items (all when < 0) under `options`.
void write_vectors(const std::filesystem::path& path, const data::Catalogue& cat,
                   const std::map<std::string, std::string>& options, int32_t items = -1) {
  auto encoder = text::encoder_registry().create("hashing", options);
  auto texts = text::item_texts(cat, {});
  if (items >= 0) texts.resize(static_cast<size_t>(items));
  text::ItemVectors v;
  v.ids.assign(cat.items.ids().begin(), cat.items.ids().begin() + static_cast<std::ptrdiff_t>(texts.size()));
  v.vectors = encoder->encode(texts);
  v.encoder = encoder->identity();
  text::save_item_vectors(v, path);
}

TEST(HybridText, VectorFileGivesTheModelOfInProcessEncoding) {
  testing::TempDir dir;
  const auto w = text_world(/*disjoint_words=*/false);
  const std::string file = (dir / "v.fwr").string();
  write_vectors(file, w.full.catalogue(), {{"dim", "64"}});
  auto encoded = fitted("hybrid:factors=16,epochs=3,text_encoder=hashing,text_options=dim=64", w.train);
  auto from_file = fitted("hybrid:factors=16,epochs=3,item_vectors=" + file, w.train);
  EXPECT_EQ(from_file->summary()["text"]["items_missing_from_file"], 0);
  const auto ctx = data::context_from_dataset(w.train, 5);
  EXPECT_EQ(scores_of(*from_file, ctx), scores_of(*encoded, ctx));

  // New items the file lacks get no text part; re-encoded, they match.
  const auto g = grown(w, nullptr);
  const int32_t n = w.full.num_items();
  {
    auto copy = fitted("hybrid:factors=16,epochs=3,item_features=none,item_vectors=" + file, w.train);
    copy->add_items(g.catalogue(), n);
    const auto s = scores_of(*copy, ctx);
    for (ItemIndex i = n; i < g.num_items(); ++i) EXPECT_EQ(s[static_cast<size_t>(i)], 0.0f);
  }
  write_vectors(file, g.catalogue(), {{"dim", "64"}});
  encoded->add_items(g.catalogue(), n);
  from_file->add_items(g.catalogue(), n);
  EXPECT_EQ(scores_of(*from_file, ctx), scores_of(*encoded, ctx));

  // A file from another encoder does not fit the learned projection.
  auto other = fitted("hybrid:factors=16,epochs=3,item_vectors=" + file, w.train);
  write_vectors(file, g.catalogue(), {{"dim", "64"}, {"seed", "1"}});
  EXPECT_THAT(error_of([&] { other->add_items(g.catalogue(), n); }, ErrorCode::kInvalidArgument),
              HasSubstr("the new items' text vectors come from `hashing:dim=64;bigrams=true;normalize=true;seed=1`, "
                        "but the model was trained on vectors from `hashing:dim=64;bigrams=true;normalize=true;seed=0`"));
  write_vectors(file, g.catalogue(), {{"dim", "32"}});
  EXPECT_THAT(error_of([&] { other->add_items(g.catalogue(), n); }, ErrorCode::kInvalidArgument),
              HasSubstr("the new items' text vectors have dimension 32, but the model was trained on vectors of "
                        "dimension 64"));
  EXPECT_EQ(other->num_items(), n);  // a failed add_items changes nothing
}

TEST(HybridText, LoadRejectsInconsistentTextSections) {
  const auto w = text_world(/*disjoint_words=*/false);
  auto m = fitted("hybrid:factors=8,epochs=1,text_encoder=hashing,text_options=dim=16", w.train);
  core::ArtifactWriter good("model");
  m->save(good, "m/");
  const auto& info = model_registry().get("hybrid");
  auto load = [&](const core::ArtifactWriter& writer) {
    auto reader = core::ArtifactReader::from_bytes(writer.to_bytes(), "model", "test.fwr");
    return info.load(m->spec(), reader, "m/");
  };
  EXPECT_NE(load(good), nullptr);
  // The artifact with section `name` replaced by what `put` writes (or dropped).
  auto with = [&](const std::string& name, auto put) {
    auto reader = core::ArtifactReader::from_bytes(good.to_bytes(), "model", "test.fwr");
    core::ArtifactWriter out("model");
    for (const auto& s : reader.names()) {
      if (s == name) {
        put(out);
      } else if (s.ends_with("columns") || s.ends_with("info")) {
        out.put_json(s, reader.get_json(s));
      } else if (s.ends_with("values")) {
        out.put_strings(s, reader.get_strings(s));
      } else if (s.ends_with("shape") || s.ends_with("train_hash")) {
        out.put_array<int64_t>(s, reader.get_array<int64_t>(s));
      } else if (s.ends_with("fold_in_prior")) {
        out.put_f64(s, reader.get_f64(s));
      } else {
        out.put_array<float>(s, reader.get_array<float>(s));
      }
    }
    return out;
  };
  auto error_with = [&](const std::string& name, auto put) {
    return error_of([&] { load(with(name, put)); }, ErrorCode::kCorrupt);
  };
  using W = core::ArtifactWriter;
  EXPECT_THAT(error_with("m/text_vectors", [](W& w) { w.put_array<float>("m/text_vectors", std::vector<float>{1}); }),
              HasSubstr("section `m/text_vectors` has 1 values, expected"));
  EXPECT_THAT(error_of([&] { load(with("m/text_projection_bias", [](W&) {})); }, ErrorCode::kNotFound),
              HasSubstr("missing section `m/text_projection_bias`"));
  EXPECT_THAT(error_with("m/text_info", [](W& w) { w.put_json("m/text_info", {{"dim", -3}, {"identity", "x"}}); }),
              HasSubstr("section `m/text_info` must be an object with a positive `dim`"));
  auto projection = core::ArtifactReader::from_bytes(good.to_bytes(), "model").get_array<float>("m/text_projection");
  projection[3] = std::nanf("");
  EXPECT_THAT(error_with("m/text_projection", [&](W& w) { w.put_array<float>("m/text_projection", projection); }),
              HasSubstr("non-finite"));
}

// ---- options and errors --------------------------------------------------------------------

TEST(HybridText, EncoderOptionsRoundTripThroughTheSpec) {
  using hybrid::encoder_options_to_string;
  using hybrid::parse_encoder_options;
  const auto o = parse_encoder_options(" dim = 128 ; bigrams=false,seed=3;", "opt");
  EXPECT_EQ(o, (std::map<std::string, std::string>{{"bigrams", "false"}, {"dim", "128"}, {"seed", "3"}}));
  EXPECT_EQ(encoder_options_to_string(o, "opt"), "bigrams=false;dim=128;seed=3");
  EXPECT_TRUE(parse_encoder_options("", "opt").empty());
  EXPECT_THAT(error_of([] { parse_encoder_options("dim", "opt"); }, ErrorCode::kInvalidArgument),
              HasSubstr("opt: expected key=value pairs separated by `;`"));
  EXPECT_THAT(error_of([] { parse_encoder_options("dim=1;dim=2", "opt"); }, ErrorCode::kInvalidArgument),
              HasSubstr("encoder option `dim` given twice"));
  EXPECT_THAT(error_of([] { encoder_options_to_string({{"path", "a;b"}}, "opt"); }, ErrorCode::kInvalidArgument),
              HasSubstr("holds `,` or `;`"));
  // The canonical spec parses back to itself.
  auto m = model_registry().create(ModelSpec::parse("hybrid:text_encoder=hashing,text_options=seed=1;dim=8"));
  EXPECT_EQ(m->spec().to_string(), "hybrid:text_encoder=hashing,text_options=dim=8;seed=1");
  EXPECT_EQ(ModelSpec::parse(m->spec().to_string()).options, m->spec().options);
}

TEST(HybridText, BadTextOptionsGiveClearErrors) {
  auto create = [](const std::string& spec) { model_registry().create(ModelSpec::parse(spec)); };
  EXPECT_THAT(error_of([&] { create("hybrid:text_encoder=glov"); }, ErrorCode::kInvalidArgument),
              HasSubstr("model `hybrid`: option `text_encoder`: unknown text encoder `glov`; known: none, "));
  EXPECT_THAT(error_of([&] { create("hybrid:text_encoder=hashing,text_options=dims=8"); }, ErrorCode::kInvalidArgument),
              HasSubstr("text encoder `hashing` has no option `dims`; its options: dim, bigrams, normalize, seed"));
  EXPECT_THAT(error_of([&] { create("hybrid:text_options=dim=8"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `text_options` needs a `text_encoder`"));
  EXPECT_THAT(error_of([&] { create("hybrid:text_fields=title"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `text_fields` needs a `text_encoder`"));
  EXPECT_THAT(error_of([&] { create("hybrid:text_encoder=hashing,item_vectors=v.fwr"); }, ErrorCode::kInvalidArgument),
              HasSubstr("give either `text_encoder`"));
  EXPECT_THAT(error_of([&] { create("hybrid:text_encoder=hashing,text_fields=none"); }, ErrorCode::kInvalidArgument),
              HasSubstr("option `text_fields` is none"));
  EXPECT_THAT(error_of([&] { create("hybrid:text_encoder=hashing,text_weight=0"); }, ErrorCode::kInvalidArgument),
              HasSubstr("text_weight"));

  // Errors that need the data or files come from fit().
  const auto ds = data::make_synthetic(small_world());
  const std::string missing = (std::filesystem::temp_directory_path() / "fewrec-no-such-vectors.fwr").string();
  EXPECT_THAT(error_of([&] { fitted("hybrid:epochs=1,item_vectors=" + missing, ds); }, ErrorCode::kNotFound),
              HasSubstr("model `hybrid`: option `item_vectors`: "));
  EXPECT_THAT(error_of([&] { fitted("hybrid:epochs=1,item_vectors=" + missing, ds); }, ErrorCode::kNotFound),
              HasSubstr(missing));
  EXPECT_THAT(error_of([&] { fitted("hybrid:epochs=1,text_encoder=glove,text_options=path=" + missing, ds); },
                       ErrorCode::kNotFound),
              HasSubstr(missing));
  EXPECT_THAT(error_of([&] { fitted("hybrid:epochs=1,text_encoder=hashing,text_fields=title+plot", ds); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("option `text_fields` names column `plot`, which the item features do not have; item "
                        "feature columns: title (text), genres (tags), topic (categorical), year (numeric)"));
  EXPECT_THAT(error_of([&] { fitted("hybrid:epochs=1,text_encoder=hashing,text_fields=year", ds); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("names numeric column `year`, which has no text"));
  EXPECT_THAT(error_of([&] { fitted("hybrid:epochs=1,text_encoder=hashing,text_options=dim=0", ds); },
                       ErrorCode::kInvalidArgument),
              HasSubstr("dim"));
  // No text anywhere: an error rather than a model that silently ignores the option.
  auto bare = testing::make_dataset(30, 20, testing::random_rows(30, 20, 0.3, 3));
  EXPECT_THAT(error_of([&] { fitted("hybrid:epochs=1,text_encoder=hashing", bare); }, ErrorCode::kInvalidArgument),
              HasSubstr("no item got a non-zero text vector from text encoder `hashing`"));
}

}  // namespace
}  // namespace fewrec::models

#include "fewrec/models/model_io.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <limits>
#include <set>

#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/strings.h"
#include "test_util.h"

namespace fewrec::models {
namespace {

using ::testing::HasSubstr;
using testing::error_of;
using testing::file_bytes;
using testing::make_dataset;
using testing::new_user;
using testing::pinned_creation;
using testing::TempDir;

data::Dataset sample_dataset() {
  return make_dataset(30, 20, testing::random_rows(30, 20, 0.3, 21));
}

std::unique_ptr<Model> fitted(const std::string& spec, const data::Dataset& ds) {
  auto m = model_registry().create(ModelSpec::parse(spec));
  m->fit(ds, TrainOptions{}, core::null_monitor());
  return m;
}

std::vector<std::vector<float>> all_scores(const Model& m) {
  std::vector<std::vector<float>> out;
  for (ItemIndex h = 0; h < m.num_items(); ++h) {
    auto state = m.adapt(new_user({h, (h + 5) % m.num_items()}));
    std::vector<float> s(static_cast<size_t>(m.num_items()));
    m.score_all(*state, s);
    out.push_back(std::move(s));
  }
  return out;
}

void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(ModelIo, RoundTripGivesIdenticalScores) {
  TempDir dir;
  auto ds = sample_dataset();
  for (std::string spec : {"itemknn:k=5,shrink=2", "itemknn", "popularity", "popularity:weighting=value"}) {
    SCOPED_TRACE(spec);
    auto m = fitted(spec, ds);
    const auto path = dir / "model.fwr";
    nlohmann::json config{{"model.name", "itemknn"}, {"split.seed", 42}};
    save_model(path, *m, ds.catalogue(), config, {{"fewrec_version", "test"}});
    auto loaded = load_model(path);
    ASSERT_NE(loaded.model, nullptr);
    EXPECT_EQ(loaded.spec.to_string(), m->spec().to_string());
    EXPECT_EQ(loaded.model->spec().to_string(), m->spec().to_string());
    EXPECT_EQ(loaded.config, config);
    EXPECT_EQ(loaded.meta["fewrec_version"], "test");
    EXPECT_EQ(loaded.meta["num_items"], 20);
    EXPECT_TRUE(loaded.meta.contains("created"));
    EXPECT_EQ(loaded.user_ids, ds.users().ids());
    EXPECT_EQ(loaded.item_ids, ds.items().ids());
    EXPECT_EQ(loaded.model->num_items(), m->num_items());
    EXPECT_EQ(all_scores(*loaded.model), all_scores(*m));
    EXPECT_EQ(loaded.model->summary(), m->summary());
  }
}

// A creation time given in the meta is kept (tests that compare two saves
// byte for byte pin it there); without one, the save is stamped.
TEST(ModelIo, GivenCreationTimeIsKeptAndTwoSavesAreIdentical) {
  TempDir dir;
  auto ds = sample_dataset();
  auto m = fitted("itemknn", ds);
  const nlohmann::json& meta = pinned_creation();
  save_model(dir / "a.fwr", *m, ds.catalogue(), nlohmann::json::object(), meta);
  save_model(dir / "b.fwr", *m, ds.catalogue(), nlohmann::json::object(), meta);
  EXPECT_EQ(load_model(dir / "a.fwr").meta["created"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(file_bytes(dir / "a.fwr"), file_bytes(dir / "b.fwr"));
  // Given as the config instead, it does not reach the meta.
  save_model(dir / "c.fwr", *m, ds.catalogue(), meta);
  EXPECT_NE(load_model(dir / "c.fwr").meta["created"], "2026-01-01T00:00:00Z");
}

TEST(ModelIo, SaveRejectsAMismatchedCatalogue) {
  TempDir dir;
  auto ds = sample_dataset();
  auto m = fitted("popularity", ds);
  auto other = make_dataset(3, 4, {{0, 1}});
  EXPECT_THAT(error_of([&] { save_model(dir / "m.fwr", *m, other.catalogue(), {}); }, ErrorCode::kInvalidArgument),
              HasSubstr("it scores 20 items but the catalogue has 4"));
  EXPECT_FALSE(std::filesystem::exists(dir / "m.fwr"));
}

TEST(ModelIo, MissingFileIsNotFound) {
  TempDir dir;
  EXPECT_THAT(error_of([&] { load_model(dir / "nope.fwr"); }, ErrorCode::kNotFound),
              HasSubstr("nope.fwr"));
}

TEST(ModelIo, TruncatedFileIsCorruptAtEveryLength) {
  TempDir dir;
  auto ds = sample_dataset();
  const auto good = dir / "good.fwr";
  save_model(good, *fitted("itemknn:k=3", ds), ds.catalogue(), {});
  const std::string bytes = file_bytes(good);
  const auto bad = dir / "bad.fwr";
  const size_t step = std::max<size_t>(1, bytes.size() / 200);
  for (size_t len = 0; len < bytes.size(); len += step) {
    write_bytes(bad, bytes.substr(0, len));
    auto msg = error_of([&] { load_model(bad); }, ErrorCode::kCorrupt);
    EXPECT_THAT(msg, HasSubstr(bad.string())) << "length " << len;
  }
}

TEST(ModelIo, FlippedByteIsCorrupt) {
  TempDir dir;
  auto ds = sample_dataset();
  const auto path = dir / "m.fwr";
  save_model(path, *fitted("itemknn", ds), ds.catalogue(), {});
  std::string bytes = file_bytes(path);
  for (size_t at : {size_t{3}, size_t{20}, bytes.size() / 2, bytes.size() - 20, bytes.size() - 1}) {
    std::string copy = bytes;
    copy[at] = static_cast<char>(copy[at] ^ 0x5A);
    write_bytes(path, copy);
    auto msg = error_of([&] { load_model(path); }, ErrorCode::kCorrupt);
    EXPECT_THAT(msg, HasSubstr(path.string())) << "byte " << at;
  }
}

// Hand-built artifacts with a valid container but bad contents.
struct Parts {
  std::string kind = "model";
  std::string spec = "itemknn:k=2";
  std::vector<std::string> users{"u0", "u1"};
  std::vector<std::string> items{"i0", "i1", "i2"};
  std::vector<int64_t> offsets{0, 1, 2, 3};
  std::vector<int32_t> neighbors{1, 2, 0};
  std::vector<float> similarities{0.5f, 0.25f, 1.0f};
  std::vector<float> prior{0.125f, 0.0f, 0.0625f};  // popularity prior per item
  std::set<std::string> skip;

  void write(const std::filesystem::path& path) const {
    core::ArtifactWriter w(kind);
    auto want = [&](const char* name) { return !skip.count(name); };
    if (want("spec")) w.put_string("spec", spec);
    if (want("config")) w.put_json("config", nlohmann::json::object());
    if (want("meta")) w.put_json("meta", nlohmann::json::object());
    if (want("catalogue/users")) w.put_strings("catalogue/users", users);
    if (want("catalogue/items")) w.put_strings("catalogue/items", items);
    if (want("model/offsets")) w.put_array<int64_t>("model/offsets", offsets);
    if (want("model/neighbors")) w.put_array<int32_t>("model/neighbors", neighbors);
    if (want("model/similarities")) w.put_array<float>("model/similarities", similarities);
    if (want("model/prior")) w.put_array<float>("model/prior", prior);
    w.save(path);
  }
};

TEST(ModelIo, HandBuiltArtifactLoads) {
  TempDir dir;
  Parts p;
  p.write(dir / "m.fwr");
  auto loaded = load_model(dir / "m.fwr");
  // Item 0's row: item 1 with 0.5; every item starts from its prior.
  auto state = loaded.model->adapt(new_user({0}));
  std::vector<float> s(3);
  loaded.model->score_all(*state, s);
  EXPECT_EQ(s, (std::vector<float>{0.125f, 0.5f, 0.0625f}));
  // An empty history scores the prior alone.
  state = loaded.model->adapt(new_user({}));
  loaded.model->score_all(*state, s);
  EXPECT_EQ(s, (std::vector<float>{0.125f, 0.0f, 0.0625f}));
}

std::string load_error(const Parts& p, ErrorCode code = ErrorCode::kCorrupt) {
  TempDir dir;
  const auto path = dir / "m.fwr";
  p.write(path);
  auto msg = error_of([&] { load_model(path); }, code);
  EXPECT_THAT(msg, HasSubstr(path.string()));
  return msg;
}

TEST(ModelIo, WrongKindIsCorrupt) {
  Parts p;
  p.kind = "split";
  EXPECT_THAT(load_error(p), HasSubstr("holds a `split`, expected a `model`"));
}

TEST(ModelIo, MissingSectionsAreCorrupt) {
  for (std::string name : {"spec", "config", "meta", "catalogue/users", "catalogue/items"}) {
    Parts p;
    p.skip.insert(name);
    EXPECT_THAT(load_error(p), HasSubstr("missing section `" + name + "`"));
  }
  for (std::string name : {"model/offsets", "model/neighbors", "model/similarities", "model/prior"}) {
    Parts p;
    p.skip.insert(name);
    EXPECT_THAT(load_error(p), HasSubstr("missing section `" + name + "`"));
  }
  Parts pop;
  pop.spec = "popularity";
  EXPECT_THAT(load_error(pop), HasSubstr("missing section `model/scores`"));
}

TEST(ModelIo, UnknownModelNameIsNotFound) {
  Parts p;
  p.spec = "sasrek:layers=2";
  std::vector<std::string> names;
  for (const auto* info : model_registry().list()) names.push_back(info->name);
  EXPECT_THAT(load_error(p, ErrorCode::kNotFound),
              HasSubstr("holds unknown model `sasrek` (made by a newer or different build?); known: " +
                        core::join(names, ", ")));
}

TEST(ModelIo, BadSpecIsCorrupt) {
  Parts p;
  p.spec = "itemknn:k";
  EXPECT_THAT(load_error(p), HasSubstr("bad model spec"));
  p.spec = "itemknn:kk=3";
  EXPECT_THAT(load_error(p), HasSubstr("unknown option `kk`"));
  p.spec = "";
  EXPECT_THAT(load_error(p), HasSubstr("missing model name"));
}

TEST(ModelIo, MisSizedSectionsAreCorrupt) {
  {
    Parts p;
    p.neighbors = {1, 2};
    EXPECT_THAT(load_error(p), HasSubstr("section `model/neighbors` has 2 values, expected 3"));
  }
  {
    Parts p;
    p.similarities = {0.5f};
    EXPECT_THAT(load_error(p), HasSubstr("section `model/similarities` has 1 values, expected 3"));
  }
  {
    Parts p;
    p.prior = {0.5f, 0.5f};  // one per item, not per neighbour
    EXPECT_THAT(load_error(p), HasSubstr("section `model/prior` has 2 values, expected 3"));
    p.prior = {0.5f, 0.5f, 0.5f, 0.5f};
    EXPECT_THAT(load_error(p), HasSubstr("section `model/prior` has 4 values, expected 3"));
    p.prior = {};
    EXPECT_THAT(load_error(p), HasSubstr("section `model/prior` has 0 values, expected 3"));
  }
  {
    Parts p;
    p.items = {"i0", "i1"};  // catalogue of 2, model of 3
    EXPECT_THAT(load_error(p), HasSubstr("scores 3 items but the artifact's catalogue lists 2"));
  }
  {
    Parts p;
    p.offsets = {};
    EXPECT_THAT(load_error(p), HasSubstr("`model/offsets`"));
  }
  {
    Parts p;
    p.offsets = {0, 2, 1, 3};
    EXPECT_THAT(load_error(p), HasSubstr("`model/offsets` decreases at item 1"));
  }
  {
    Parts p;
    p.offsets = {1, 1, 2, 3};
    EXPECT_THAT(load_error(p), HasSubstr("does not start at 0"));
  }
  {
    Parts p;
    p.offsets = {0, 1, 2, 1000000000000};
    EXPECT_THAT(load_error(p), HasSubstr("expected 1000000000000"));
  }
}

TEST(ModelIo, BadValuesAreCorrupt) {
  {
    Parts p;
    p.neighbors = {1, 7, 0};
    EXPECT_THAT(load_error(p), HasSubstr("holds item 7 outside the 3 items"));
  }
  {
    Parts p;
    p.similarities = {0.5f, std::numeric_limits<float>::quiet_NaN(), 1.0f};
    EXPECT_THAT(load_error(p), HasSubstr("section `model/similarities` holds a non-finite value"));
  }
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    Parts p;
    p.prior = {0.0f, bad, 0.0f};
    EXPECT_THAT(load_error(p), HasSubstr("section `model/prior` holds a non-finite value")) << bad;
  }
}

// Every single-byte change behind a valid checksum (as a buggy writer or a
// deliberate edit would make) either loads or fails with a fewrec::Error.
TEST(ModelIo, ByteChangesBehindAValidChecksumNeverCrash) {
  TempDir dir;
  const auto path = dir / "m.fwr";
  Parts{}.write(path);
  const std::string bytes = file_bytes(path);
  ASSERT_GT(bytes.size(), 8u);
  int loaded = 0, rejected = 0;
  for (size_t at = 0; at + 8 < bytes.size(); ++at) {
    for (unsigned char delta : {0x01, 0x80, 0xFF}) {
      std::string copy = bytes;
      copy[at] = static_cast<char>(static_cast<unsigned char>(copy[at]) ^ delta);
      const uint64_t h = core::fnv1a64(copy.data(), copy.size() - 8);
      for (int i = 0; i < 8; ++i) copy[copy.size() - 8 + i] = static_cast<char>((h >> (8 * i)) & 0xFF);
      write_bytes(path, copy);
      try {
        auto m = load_model(path);
        // Whatever loaded must be usable.
        auto state = m.model->adapt(new_user({0}));
        std::vector<float> s(static_cast<size_t>(m.model->num_items()));
        m.model->score_all(*state, s);
        ++loaded;
      } catch (const Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::kCorrupt || e.code() == ErrorCode::kNotFound)
            << "byte " << at << ": " << e.what();
        EXPECT_THAT(e.message(), HasSubstr(path.string())) << "byte " << at;
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded, 0);  // e.g. a changed similarity or id still loads
}

TEST(ModelIo, WrongSectionTypeIsCorrupt) {
  TempDir dir;
  core::ArtifactWriter w("model");
  w.put_string("spec", "popularity");
  w.put_json("config", nlohmann::json::object());
  w.put_json("meta", nlohmann::json::object());
  w.put_strings("catalogue/users", {"u0"});
  w.put_strings("catalogue/items", {"i0", "i1"});
  w.put_array<double>("model/scores", std::vector<double>{1.0, 2.0});
  const auto path = dir / "m.fwr";
  w.save(path);
  auto msg = error_of([&] { load_model(path); }, ErrorCode::kCorrupt);
  EXPECT_THAT(msg, HasSubstr(path.string()));
  EXPECT_THAT(msg, HasSubstr("model/scores"));
}

}  // namespace
}  // namespace fewrec::models

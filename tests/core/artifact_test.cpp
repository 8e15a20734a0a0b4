#include "fewrec/core/artifact.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fewrec/core/rng.h"

namespace fewrec::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <class Fn>
std::string error_of(Fn&& fn, ErrorCode code = ErrorCode::kCorrupt) {
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

ArtifactWriter sample_writer() {
  ArtifactWriter w("model");
  w.put_string("spec", "itemknn:k=50");
  w.put_json("config", nlohmann::json{{"model.name", "itemknn"}, {"seed", 42}});
  w.put_array<float>("item_vectors", std::vector<float>{0.5f, -1.25f, 3.0f, 4.0f});
  w.put_array<int32_t>("ids", std::vector<int32_t>{7, 8, 9});
  w.put_array<uint8_t>("flags", std::vector<uint8_t>{1, 0, 1});
  w.put_array<uint16_t>("small", std::vector<uint16_t>{65535});
  w.put_array<double>("empty", std::vector<double>{});
  w.put_i64("n_items", 1682);
  w.put_f64("alpha", 0.25);
  w.put_strings("vocab", {"the", "", "matrix", std::string("a\0b", 3)});
  return w;
}

// Rewrites the trailing checksum so tests can reach the checks behind it.
std::string fix_checksum(std::string bytes) {
  if (bytes.size() < 8) return bytes;
  const uint64_t h = fnv1a64(bytes.data(), bytes.size() - 8);
  for (int i = 0; i < 8; ++i) bytes[bytes.size() - 8 + i] = static_cast<char>((h >> (8 * i)) & 0xFF);
  return bytes;
}

// Little-endian header helpers for hand-built files.
void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
std::string with_checksum(std::string s) {
  put_u64(s, fnv1a64(s.data(), s.size()));
  return s;
}
std::string header(uint32_t version, std::string_view kind, uint64_t count) {
  std::string s(kArtifactMagic, 8);
  put_u32(s, version);
  put_u32(s, static_cast<uint32_t>(kind.size()));
  s += kind;
  put_u64(s, count);
  return s;
}

TEST(Artifact, Fnv1a64KnownValues) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ULL);
}

TEST(Artifact, RoundTripsEverySectionType) {
  const auto r = ArtifactReader::from_bytes(sample_writer().to_bytes(), "model", "test");
  EXPECT_EQ(r.kind(), "model");
  EXPECT_EQ(r.version(), kArtifactFormatVersion);
  EXPECT_EQ(r.origin(), "test");
  EXPECT_EQ(r.get_string("spec"), "itemknn:k=50");
  EXPECT_EQ(r.get_json("config")["seed"], 42);
  EXPECT_THAT(r.get_array<float>("item_vectors"), ElementsAre(0.5f, -1.25f, 3.0f, 4.0f));
  EXPECT_THAT(r.get_array<int32_t>("ids", 3), ElementsAre(7, 8, 9));
  EXPECT_THAT(r.get_array<uint8_t>("flags"), ElementsAre(1, 0, 1));
  EXPECT_THAT(r.get_array<uint16_t>("small"), ElementsAre(65535));
  EXPECT_TRUE(r.get_array<double>("empty").empty());
  EXPECT_EQ(r.get_i64("n_items"), 1682);
  EXPECT_EQ(r.get_f64("alpha"), 0.25);
  EXPECT_THAT(r.get_strings("vocab"), ElementsAre("the", "", "matrix", std::string("a\0b", 3)));
  EXPECT_TRUE(r.has("spec"));
  EXPECT_FALSE(r.has("nope"));
  EXPECT_THAT(r.names(), ElementsAre("alpha", "config", "empty", "flags", "ids", "item_vectors", "n_items",
                                     "small", "spec", "vocab"));
}

TEST(Artifact, LayoutMatchesTheDocumentedFormat) {
  ArtifactWriter w("split");
  w.put_string("s", "hi");
  const std::string bytes = w.to_bytes();
  std::string expected = header(1, "split", 1);
  put_u32(expected, 1);
  expected += "s";
  expected.push_back(static_cast<char>(SectionType::kString));
  put_u64(expected, 2);
  expected += "hi";
  EXPECT_EQ(bytes, with_checksum(expected));
}

TEST(Artifact, WriterRejectsDuplicateSection) {
  ArtifactWriter w("model");
  w.put_i64("n", 1);
  EXPECT_EQ(error_of([&] { w.put_i64("n", 2); }, ErrorCode::kInvalidArgument),
            "artifact (model): section `n` written twice");
}

TEST(Artifact, JsonThatCannotBeSerialisedIsAnError) {
  ArtifactWriter w("model");
  EXPECT_THAT(error_of([&] { w.put_json("ids", nlohmann::json{{"id", "Am\xe9lie"}}); }, ErrorCode::kInvalidArgument),
              HasSubstr("artifact (model): section `ids` cannot be written as JSON: "));
}

TEST(Artifact, EmptyAndBadMagic) {
  EXPECT_EQ(error_of([] { ArtifactReader::from_bytes("", "model", "m.fwr"); }),
            "artifact m.fwr: not a fewrec artifact (the file is empty)");
  EXPECT_EQ(error_of([] { ArtifactReader::from_bytes("FEWREC", "model", "m.fwr"); }),
            "artifact m.fwr: not a fewrec artifact (bad magic number)");
  std::string bytes = sample_writer().to_bytes();
  bytes[0] = 'X';
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(bytes, "model", "m.fwr"); }),
            "artifact m.fwr: not a fewrec artifact (bad magic number)");
  EXPECT_EQ(error_of([] { ArtifactReader::from_bytes("{\"json\": true}", "model", "m.fwr"); }),
            "artifact m.fwr: not a fewrec artifact (bad magic number)");
}

TEST(Artifact, UnsupportedVersion) {
  const std::string bytes = with_checksum(header(7, "model", 0));
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(bytes, "model", "m.fwr"); }),
            "artifact m.fwr: unsupported format version 7 (this build supports version 1)");
}

TEST(Artifact, WrongKind) {
  ArtifactWriter w("split");
  w.put_i64("n", 1);
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(w.to_bytes(), "model", "s.fwr"); }),
            "artifact s.fwr: holds a `split`, expected a `model`");
  // An empty expected kind accepts any kind (inspection tools).
  EXPECT_EQ(ArtifactReader::from_bytes(w.to_bytes(), "").kind(), "split");
}

TEST(Artifact, ChecksumMismatch) {
  std::string bytes = sample_writer().to_bytes();
  const size_t pos = bytes.find("itemknn:k=50");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos] = 'I';
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(bytes, "model", "m.fwr"); }),
            "artifact m.fwr: checksum mismatch: file is corrupt or truncated");
  std::string bad_sum = sample_writer().to_bytes();
  bad_sum.back() ^= 1;
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(bad_sum, "model", "m.fwr"); }),
            "artifact m.fwr: checksum mismatch: file is corrupt or truncated");
}

TEST(Artifact, TruncationAtEveryLength) {
  const std::string bytes = sample_writer().to_bytes();
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string msg = error_of([&] { ArtifactReader::from_bytes(bytes.substr(0, n), "model", "t"); });
    if (n >= 8) {
      EXPECT_TRUE(msg.find("truncated") != std::string::npos ||
                  msg.find("cannot fit") != std::string::npos)
          << "length " << n << ": " << msg;
    }
  }
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(bytes.substr(0, bytes.size() - 3), "model", "t"); }),
            "artifact t: checksum mismatch: file is corrupt or truncated (missing checksum)");
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(bytes.substr(0, 10), "model", "t"); }),
            "artifact t: truncated: format version needs 4 bytes but only 2 remain");
}

TEST(Artifact, TrailingBytes) {
  const std::string bytes = sample_writer().to_bytes() + "xyz";
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(bytes, "model", "t"); }),
            "artifact t: 3 unexpected trailing bytes after the checksum");
}

TEST(Artifact, HugeLengthsDoNotOverflow) {
  // Section count far beyond the file.
  EXPECT_EQ(error_of([] {
              ArtifactReader::from_bytes(with_checksum(header(1, "model", UINT64_MAX)), "model", "t");
            }),
            "artifact t: section count 18446744073709551615 cannot fit in the remaining 8 bytes");
  // Payload length of 2^64-1 must not wrap around the bounds check.
  std::string s = header(1, "model", 1);
  put_u32(s, 1);
  s += "x";
  s.push_back(static_cast<char>(SectionType::kBytes));
  put_u64(s, UINT64_MAX);
  s += "payload";
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(with_checksum(s), "model", "t"); }),
            "artifact t: truncated: payload of section `x` needs 18446744073709551615 bytes but only 15 "
            "remain");
  // Kind length of 2^32-1.
  std::string k(kArtifactMagic, 8);
  put_u32(k, 1);
  put_u32(k, UINT32_MAX);
  EXPECT_THAT(error_of([&] { ArtifactReader::from_bytes(with_checksum(k), "model", "t"); }),
              HasSubstr("truncated: kind needs 4294967295 bytes"));
}

TEST(Artifact, DuplicateSectionAndUnknownType) {
  std::string s = header(1, "model", 2);
  for (int i = 0; i < 2; ++i) {
    put_u32(s, 1);
    s += "a";
    s.push_back(static_cast<char>(SectionType::kString));
    put_u64(s, 0);
  }
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(with_checksum(s), "model", "t"); }),
            "artifact t: duplicate section `a`");
  std::string u = header(1, "model", 1);
  put_u32(u, 1);
  u += "a";
  u.push_back(static_cast<char>(99));
  put_u64(u, 0);
  EXPECT_EQ(error_of([&] { ArtifactReader::from_bytes(with_checksum(u), "model", "t"); }),
            "artifact t: section `a` has unknown type tag 99");
}

TEST(Artifact, SectionTypeAndPresenceErrors) {
  const auto r = ArtifactReader::from_bytes(sample_writer().to_bytes(), "model", "m.fwr");
  EXPECT_EQ(error_of([&] { r.get_string("missing"); }, ErrorCode::kNotFound),
            "artifact m.fwr: missing section `missing`");
  EXPECT_EQ(error_of([&] { r.get_array<float>("ids"); }), "artifact m.fwr: section `ids` has type i32, expected f32");
  EXPECT_EQ(error_of([&] { r.get_i64("alpha"); }), "artifact m.fwr: section `alpha` has type f64, expected i64");
  EXPECT_EQ(error_of([&] { r.get_json("spec"); }), "artifact m.fwr: section `spec` has type string, expected json");
  EXPECT_EQ(error_of([&] { r.get_array<int32_t>("ids", 4); }),
            "artifact m.fwr: section `ids` has 3 values, expected 4");
  EXPECT_EQ(error_of([&] { r.get_strings("spec"); }),
            "artifact m.fwr: section `spec` has type string, expected bytes");
}

TEST(Artifact, MalformedPayloadsBehindAValidChecksum) {
  std::string s = header(1, "model", 3);
  auto section = [&](std::string_view name, SectionType t, std::string_view payload) {
    put_u32(s, static_cast<uint32_t>(name.size()));
    s += name;
    s.push_back(static_cast<char>(t));
    put_u64(s, payload.size());
    s += payload;
  };
  section("arr", SectionType::kF32, "12345");  // not a multiple of 4
  section("js", SectionType::kJson, "{not json");
  std::string strs;
  put_u32(strs, 2);
  put_u32(strs, 100);
  strs += "short";
  section("strs", SectionType::kBytes, strs);
  const auto r = ArtifactReader::from_bytes(with_checksum(s), "model", "t");
  EXPECT_EQ(error_of([&] { r.get_array<float>("arr"); }),
            "artifact t: section `arr` has 5 bytes, not a multiple of 4");
  EXPECT_EQ(error_of([&] { r.get_json("js"); }), "artifact t: section `js` is not valid JSON");
  EXPECT_EQ(error_of([&] { r.get_strings("strs"); }),
            "artifact t: truncated in section `strs`: string #0 needs 100 bytes but only 5 remain");
}

// Every getter on every section; errors must be fewrec::Error.
void read_everything(const ArtifactReader& r) {
  auto attempt = [](auto&& fn) {
    try {
      fn();
    } catch (const Error&) {
    }
  };
  for (const std::string& name : r.names()) {
    attempt([&] { r.get_string(name); });
    attempt([&] { r.get_json(name); });
    attempt([&] { r.get_strings(name); });
    attempt([&] { r.get_array<float>(name); });
    attempt([&] { r.get_array<double>(name); });
    attempt([&] { r.get_array<int32_t>(name); });
    attempt([&] { r.get_array<int64_t>(name); });
    attempt([&] { r.get_array<uint8_t>(name); });
    attempt([&] { r.get_array<uint16_t>(name); });
    attempt([&] { r.get_i64(name); });
    attempt([&] { r.get_f64(name); });
  }
}

TEST(Artifact, RandomCorruptionNeverCrashes) {
  const std::string valid = sample_writer().to_bytes();
  Rng rng(20240601);
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes = valid;
    const uint64_t mode = uniform_index(rng, 4);
    if (mode == 0 || mode == 2) {  // flip 1-8 random bytes
      const uint64_t flips = 1 + uniform_index(rng, 8);
      for (uint64_t f = 0; f < flips; ++f)
        bytes[uniform_index(rng, bytes.size())] ^= static_cast<char>(1 + uniform_index(rng, 255));
    } else if (mode == 1) {  // truncate
      bytes.resize(uniform_index(rng, bytes.size()));
    } else {  // flip, then truncate or append garbage
      bytes[uniform_index(rng, bytes.size())] ^= static_cast<char>(1 + uniform_index(rng, 255));
      if (uniform_index(rng, 2) == 0) bytes.resize(uniform_index(rng, bytes.size() + 1));
      else bytes.append(static_cast<size_t>(1 + uniform_index(rng, 16)), '\x7f');
    }
    // Half the time repair the checksum so the structure and the getters
    // behind it are exercised, not only the checksum check.
    if (uniform_index(rng, 2) == 0) bytes = fix_checksum(bytes);
    try {
      const auto r = ArtifactReader::from_bytes(bytes, "model", "fuzz");
      ++accepted;
      read_everything(r);
    } catch (const Error& e) {
      ++rejected;
      EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << e.what();
    } catch (const std::exception& e) {
      FAIL() << "iteration " << iter << ": non-fewrec exception: " << e.what();
    }
  }
  EXPECT_GT(rejected, 1000);
  EXPECT_EQ(accepted + rejected, 2000);
}

class ArtifactFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fewrec_artifact_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(ArtifactFileTest, SaveAndOpen) {
  const auto path = dir_ / "model.fwr";
  sample_writer().save(path);
  // Only the final file remains: the temporary was renamed over it.
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) files.push_back(e.path().filename());
  EXPECT_THAT(files, ElementsAre("model.fwr"));
  const auto r = ArtifactReader::open(path, "model");
  EXPECT_EQ(r.origin(), path.string());
  EXPECT_EQ(r.get_i64("n_items"), 1682);
  // Overwriting replaces the content.
  ArtifactWriter w("model");
  w.put_i64("n_items", 5);
  w.save(path);
  EXPECT_EQ(ArtifactReader::open(path, "model").get_i64("n_items"), 5);
}

TEST_F(ArtifactFileTest, OpenErrorsNamePath) {
  const auto missing = dir_ / "missing.fwr";
  EXPECT_EQ(error_of([&] { ArtifactReader::open(missing, "model"); }, ErrorCode::kNotFound),
            fmt::format("cannot open artifact `{}`: No such file or directory", missing.string()));
  EXPECT_EQ(error_of([&] { ArtifactReader::open(dir_, "model"); }, ErrorCode::kIo),
            fmt::format("cannot read artifact `{}`: Is a directory", dir_.string()));
  const auto corrupt = dir_ / "corrupt.fwr";
  std::string bytes = sample_writer().to_bytes();
  bytes.resize(bytes.size() / 2);
  std::ofstream(corrupt, std::ios::binary) << bytes;
  EXPECT_THAT(error_of([&] { ArtifactReader::open(corrupt, "model"); }),
              HasSubstr(fmt::format("artifact {}: truncated", corrupt.string())));
}

TEST_F(ArtifactFileTest, SaveIntoMissingDirectoryNamesPath) {
  const auto path = dir_ / "no" / "such" / "model.fwr";
  EXPECT_THAT(error_of([&] { sample_writer().save(path); }, ErrorCode::kIo),
              HasSubstr(fmt::format("cannot write artifact `{}` (open `{}.tmp.", path.string(), path.string())));
  EXPECT_THAT(error_of([&] { sample_writer().save(path); }, ErrorCode::kIo),
              HasSubstr("No such file or directory"));
}

}  // namespace
}  // namespace fewrec::core

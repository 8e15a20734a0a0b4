// safetensors reader: values round-trip for every float dtype, sharded
// checkpoints, a clear error for each kind of corruption, and a seeded fuzz
// (truncation at every length, flipped bytes, random headers) that must only
// ever produce fewrec::Error.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fewrec/core/error.h"
#include "fewrec/text/safetensors.h"

namespace fs = std::filesystem;
using namespace fewrec;
using fewrec::text::SafetensorsCheckpoint;
using fewrec::text::SafetensorsFile;
using ::testing::HasSubstr;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("fewrec_st_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

struct Tensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::string with_length(const std::string& header) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header;
}

// A writer independent of the reader under test.
std::string build(const std::vector<Tensor>& tensors, bool metadata = true) {
  nlohmann::json h = nlohmann::json::object();
  if (metadata) h["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string header = h.dump();
  while (header.size() % 8) header += ' ';
  return with_length(header) + data;
}

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
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

template <class F>
ErrorCode code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

std::vector<Tensor> sample_tensors() {
  std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f};
  // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), -0, inf.
  std::vector<uint16_t> b = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00};
  // BF16: 1, -3, 0.5.
  std::vector<uint16_t> c = {0x3f80, 0xc040, 0x3f00};
  std::vector<int64_t> d = {1, 2, 3};
  return {{"a.weight", "F32", {2, 3}, raw(a)},
          {"b.half", "F16", {6}, raw(b)},
          {"c.bf16", "BF16", {3, 1}, raw(c)},
          {"d.ids", "I64", {3}, raw(d)},
          {"e.empty", "F32", {0, 4}, ""}};
}

}  // namespace

TEST(Safetensors, ReadsEveryFloatDtypeAndListsTensors) {
  auto dir = temp_dir("read");
  write(dir / "m.safetensors", build(sample_tensors()));
  SafetensorsFile f(dir / "m.safetensors");
  ASSERT_EQ(f.tensors().size(), 5u);  // __metadata__ is not a tensor
  EXPECT_EQ(f.tensors()[0].name, "a.weight");
  EXPECT_EQ(f.at("a.weight").shape_string(), "[2, 3]");
  EXPECT_EQ(f.read_f32("a.weight"), (std::vector<float>{1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f}));
  auto h = f.read_f32("b.half");
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(h[4], 0.0f);
  EXPECT_TRUE(std::signbit(h[4]));
  EXPECT_TRUE(std::isinf(h[5]));
  EXPECT_EQ(f.read_f32("c.bf16"), (std::vector<float>{1.0f, -3.0f, 0.5f}));
  EXPECT_TRUE(f.read_f32("e.empty").empty());
  EXPECT_EQ(f.at("d.ids").nbytes(), 24u);
  // Integer tensors are recognised but not readable as float.
  EXPECT_EQ(code_of([&] { f.read_f32("d.ids"); }), ErrorCode::kUnavailable);
  EXPECT_THAT(error_of([&] { f.read_f32("d.ids"); }), HasSubstr("tensor `d.ids` has dtype I64"));
  EXPECT_THAT(error_of([&] { f.at("nope"); }), HasSubstr("has no tensor `nope`"));
  EXPECT_EQ(f.fingerprint().size(), 16u);
}

TEST(Safetensors, HalfConversionMatchesEveryBitPattern) {
  // Oracle: value = (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const float got = text::half_to_float(static_cast<uint16_t>(bits));
    const int s = bits >> 15, e = (bits >> 10) & 31, m = bits & 1023;
    if (e == 31) {
      if (m == 0) {
        ASSERT_TRUE(std::isinf(got) && std::signbit(got) == (s == 1)) << bits;
      } else {
        ASSERT_TRUE(std::isnan(got)) << bits;
      }
      continue;
    }
    const double mag = e == 0 ? std::ldexp(m / 1024.0, -14) : std::ldexp(1.0 + m / 1024.0, e - 15);
    ASSERT_EQ(got, static_cast<float>(s ? -mag : mag)) << bits;
  }
}

TEST(Safetensors, CheckpointFromDirectoryAndShards) {
  auto dir = temp_dir("shards");
  auto ts = sample_tensors();
  write(dir / "model-00001-of-00002.safetensors", build({ts[0], ts[1]}));
  write(dir / "model-00002-of-00002.safetensors", build({ts[2]}, false));
  nlohmann::json index = {{"metadata", {{"total_size", 42}}},
                          {"weight_map",
                           {{"a.weight", "model-00001-of-00002.safetensors"},
                            {"b.half", "model-00001-of-00002.safetensors"},
                            {"c.bf16", "model-00002-of-00002.safetensors"}}}};
  write(dir / "model.safetensors.index.json", index.dump());
  auto c = SafetensorsCheckpoint::open(dir);
  EXPECT_EQ(c.files().size(), 2u);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a.weight", "b.half", "c.bf16"}));
  EXPECT_EQ(c.read_f32("c.bf16"), (std::vector<float>{1.0f, -3.0f, 0.5f}));
  EXPECT_EQ(c.info("a.weight").numel(), 6);
  const std::string fp = c.fingerprint();
  EXPECT_THAT(error_of([&] { c.info("zzz"); }), HasSubstr("has no tensor `zzz`"));

  // Changing one byte of a shard's data changes the fingerprint.
  std::string shard2 = read(dir / "model-00002-of-00002.safetensors");
  shard2.back() ^= 1;
  write(dir / "model-00002-of-00002.safetensors", shard2);
  EXPECT_NE(SafetensorsCheckpoint::open(dir).fingerprint(), fp);

  // A single model.safetensors is preferred over the index.
  write(dir / "model.safetensors", build({ts[0]}));
  EXPECT_EQ(SafetensorsCheckpoint::open(dir).names(), (std::vector<std::string>{"a.weight"}));
  fs::remove(dir / "model.safetensors");

  // Index errors: tensor missing from its shard, missing shard, path escape, bad JSON.
  index["weight_map"]["x.missing"] = "model-00002-of-00002.safetensors";
  write(dir / "model.safetensors.index.json", index.dump());
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(dir); }),
              HasSubstr("maps tensor `x.missing` to `" + (dir / "model-00002-of-00002.safetensors").string() +
                        "`, which does not contain it"));
  index["weight_map"].erase("x.missing");
  index["weight_map"]["c.bf16"] = "model-00003-of-00002.safetensors";
  write(dir / "model.safetensors.index.json", index.dump());
  EXPECT_EQ(code_of([&] { SafetensorsCheckpoint::open(dir); }), ErrorCode::kNotFound);
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(dir); }), HasSubstr("model-00003-of-00002.safetensors"));
  index["weight_map"]["c.bf16"] = "../evil.safetensors";
  write(dir / "model.safetensors.index.json", index.dump());
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(dir); }), HasSubstr("not a file name inside"));
  write(dir / "model.safetensors.index.json", R"({"weight_map": {"a.weight": 3}})");
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(dir); }), HasSubstr("must map to a file name"));
  write(dir / "model.safetensors.index.json", R"({"weight_map": {})");
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(dir); }), HasSubstr("is not valid JSON"));
  write(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(dir); }), HasSubstr("missing object `weight_map`"));

  fs::remove(dir / "model.safetensors.index.json");
  EXPECT_THAT(error_of([&] { SafetensorsCheckpoint::open(dir); }),
              HasSubstr("no model.safetensors or model.safetensors.index.json in"));
}

TEST(Safetensors, EachCorruptionIsAClearError) {
  auto dir = temp_dir("corrupt");
  const fs::path p = dir / "bad.safetensors";
  const std::string file = "`" + p.string() + "`";
  auto open_error = [&](const std::string& bytes) {
    write(p, bytes);
    std::string e = error_of([&] { SafetensorsFile f(p); });
    EXPECT_THAT(e, HasSubstr(file));
    EXPECT_EQ(code_of([&] { SafetensorsFile f(p); }), ErrorCode::kCorrupt) << e;
    return e;
  };
  auto header = [](const std::string& json, size_t data = 0) { return with_length(json) + std::string(data, '\0'); };

  EXPECT_THAT(open_error(""), HasSubstr("truncated: 0 bytes"));
  EXPECT_THAT(open_error("abc"), HasSubstr("truncated: 3 bytes"));
  {
    std::string huge(8, '\0');
    huge[4] = 1;  // 2^32
    EXPECT_THAT(open_error(huge + "{}"), HasSubstr("exceeds the limit"));
  }
  EXPECT_THAT(open_error(with_length("{\"a\":1}").substr(0, 12)), HasSubstr("header length 7 but only 4 bytes follow"));
  EXPECT_THAT(open_error(header("[1, 2]")), HasSubstr("header must be a JSON object, got array"));
  EXPECT_THAT(open_error(header("{\"a\": ")), HasSubstr("header is not valid JSON"));
  EXPECT_THAT(open_error(header(R"({"w": 3})")), HasSubstr("tensor `w`: entry must be an object"));
  EXPECT_THAT(open_error(header(R"({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}})", 4)),
              HasSubstr("tensor `w`: unknown dtype `Q7` (known: BOOL"));
  EXPECT_THAT(open_error(header(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4)),
              HasSubstr("tensor `w`: missing string `dtype`"));
  EXPECT_THAT(open_error(header(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4)),
              HasSubstr("tensor `w`: shape entries must be non-negative integers, got -1"));
  EXPECT_THAT(open_error(header(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4)),
              HasSubstr("non-negative integers"));
  EXPECT_THAT(open_error(header(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4)),
              HasSubstr("tensor `w`: missing array `shape`"));
  EXPECT_THAT(open_error(header(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4)),
              HasSubstr("tensor `w`: `data_offsets` must be two non-negative integers"));
  EXPECT_THAT(open_error(header(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4)),
              HasSubstr("end before they begin"));
  EXPECT_THAT(open_error(header(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 24)),
              HasSubstr("tensor `w`: shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] span 20"));
  EXPECT_THAT(open_error(header(R"({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}})", 6)),
              HasSubstr("tensor `w`: data_offsets [0, 8] reach beyond the data area of 6 bytes"));
  EXPECT_THAT(
      open_error(header(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})")),
      HasSubstr("tensor `w`: shape [4294967296, 4294967296] is too large"));
  EXPECT_THAT(open_error(header(R"({"u": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                    "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                12)),
              HasSubstr("tensor `v` (bytes [4, 12)) overlaps tensor `u` (bytes [0, 8))"));
  // Metadata of any shape is ignored; an empty tensor list is a valid file.
  write(p, header(R"({"__metadata__": {"x": [1, 2]}})"));
  EXPECT_TRUE(SafetensorsFile(p).tensors().empty());
  // Missing file / directory.
  EXPECT_EQ(code_of([&] { SafetensorsFile f(dir / "absent.safetensors"); }), ErrorCode::kNotFound);
  EXPECT_EQ(code_of([&] { SafetensorsFile f(dir); }), ErrorCode::kInvalidArgument);
}

// Opening must throw fewrec::Error or succeed, and a successful open must
// give readable tensors inside the file. Anything else (a crash, another
// exception type, ASan report) fails the test.
namespace {
int open_and_read(const fs::path& p) {
  try {
    SafetensorsFile f(p);
    for (const auto& t : f.tensors()) {
      const auto b = f.bytes(t);
      EXPECT_LE(t.nbytes(), f.file_size());
      volatile uint8_t sink = 0;
      for (auto x : b) sink = sink ^ static_cast<uint8_t>(x);
      (void)sink;
      try {
        auto v = f.read_f32(t.name);
        EXPECT_EQ(static_cast<int64_t>(v.size()), t.numel());
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
      }
    }
    (void)f.fingerprint();
    return 1;
  } catch (const Error& e) {
    EXPECT_NE(e.code(), ErrorCode::kInternal) << e.what();
    return 0;
  }
}
}  // namespace

TEST(Safetensors, FuzzTruncationFlipsAndGarbageNeverCrash) {
  auto dir = temp_dir("fuzz");
  const fs::path p = dir / "f.safetensors";
  const std::string good = build(sample_tensors());
  write(p, good);
  ASSERT_EQ(open_and_read(p), 1);

  // Truncation at every length: always an error (the last tensor ends at the end).
  for (size_t len = 0; len < good.size(); ++len) {
    write(p, good.substr(0, len));
    ASSERT_EQ(open_and_read(p), 0) << "truncated at " << len;
  }

  std::mt19937_64 rng(20240611);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(static_cast<uint8_t>(good[i])) << (8 * i);
  int opened = 0;
  // Random byte flips in the length prefix and the header (the data area is free-form).
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      const size_t at = rng() % (8 + header_len);
      if (rng() % 2)
        bad[at] = static_cast<char>(rng() & 0xff);
      else
        bad[at] ^= static_cast<char>(1u << (rng() % 8));
    }
    write(p, bad);
    opened += open_and_read(p);
  }
  // Digits in the JSON: numbers that change sizes and offsets.
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bad = good;
    std::vector<size_t> digits;
    for (size_t i = 8; i < 8 + header_len; ++i)
      if (bad[i] >= '0' && bad[i] <= '9') digits.push_back(i);
    bad[digits[rng() % digits.size()]] = static_cast<char>('0' + rng() % 10);
    if (rng() % 4 == 0) bad.resize(rng() % bad.size() + 1);
    write(p, bad);
    opened += open_and_read(p);
  }
  // Random headers made of JSON-ish tokens, with random data areas.
  const std::vector<std::string> tokens = {
      "{", "}", "[", "]", ",", ":", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"F32\"", "\"F16\"", "\"BF16\"",
      "\"I64\"", "\"__metadata__\"", "\"w\"", "\"v\"", "0", "1", "4", "8", "-1", "1e308", "18446744073709551615",
      "null", "true", "\"\\u0000\"", "\"\xff\"", " "};
  for (int trial = 0; trial < 3000; ++trial) {
    std::string h;
    const int n = static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) h += tokens[rng() % tokens.size()];
    std::string data(rng() % 32, '\x01');
    write(p, with_length(h) + data);
    opened += open_and_read(p);
  }
  // Well-formed headers with random numbers.
  for (int trial = 0; trial < 3000; ++trial) {
    nlohmann::json h = nlohmann::json::object();
    const int n = static_cast<int>(rng() % 4);
    for (int k = 0; k < n; ++k) {
      std::vector<int64_t> shape;
      for (int r = static_cast<int>(rng() % 3); r > 0; --r) shape.push_back(static_cast<int64_t>(rng() % 5));
      const uint64_t b = rng() % 40, e = rng() % 40;
      const char* dt[] = {"F32", "F16", "BF16", "I8", "F64", "U64"};
      h["t" + std::to_string(k)] = {{"dtype", dt[rng() % 6]}, {"shape", shape}, {"data_offsets", {b, e}}};
    }
    write(p, with_length(h.dump()) + std::string(rng() % 40, '\x02'));
    opened += open_and_read(p);
  }
  // Some mutants must still be valid (flips in whitespace padding, equal digits, empty headers).
  EXPECT_GT(opened, 0);
  RecordProperty("mutants_opened", opened);
}

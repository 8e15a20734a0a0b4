// BERT encoder: golden outputs of the independent reference
// (../shared/reference/minibert_ref.py via scripts/gen-bert-fixtures) for tiny
// random models stored as F32, F16, BF16, sharded and with `bert.` prefixed,
// gamma/beta names: token ids, mean / CLS pooled vectors (normalised or not)
// within 1e-4 per dimension when run in padded, length-sorted batches on 1 and
// 2 threads, and the token-level hidden states of one padded batch. Bad model
// directories give errors naming the file and the tensor. With
// FEWREC_MINILM_DIR set to a real all-MiniLM-L6-v2 directory, our outputs are
// compared with the published ones (skipped otherwise).
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fewrec/core/error.h"
#include "fewrec/text/bert.h"
#include "fewrec/text/encoder.h"
#include "fewrec/text/safetensors.h"

namespace fs = std::filesystem;
using namespace fewrec;
using text::BertEncoder;
using text::BertOptions;
using text::BertPooling;
using text::Matrix;
using ::testing::AllOf;
using ::testing::HasSubstr;

namespace {

const fs::path kBertDir = fs::path(FEWREC_FIXTURES_DIR) / "text" / "bert";

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in) << p;
  return nlohmann::json::parse(in);
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

// Largest |a - b| over a matrix and the expected rows; sizes must agree.
double max_diff(const Matrix& got, const nlohmann::json& expected) {
  EXPECT_EQ(got.rows, static_cast<int64_t>(expected.size()));
  double worst = 0;
  for (int64_t r = 0; r < std::min<int64_t>(got.rows, static_cast<int64_t>(expected.size())); ++r) {
    const auto& row = expected[static_cast<size_t>(r)];
    EXPECT_EQ(got.cols, static_cast<int64_t>(row.size()));
    for (int64_t c = 0; c < std::min<int64_t>(got.cols, static_cast<int64_t>(row.size())); ++c)
      worst = std::max(worst, std::abs(static_cast<double>(got.row(r)[c]) - row[static_cast<size_t>(c)].get<double>()));
  }
  return worst;
}

BertOptions options_for(const fs::path& dir, int64_t max_length, BertPooling pooling, bool normalize, int threads,
                        int64_t batch) {
  BertOptions o;
  o.dir = dir;
  o.max_length = max_length;
  o.pooling = pooling;
  o.normalize = normalize;
  o.threads = threads;
  o.batch_size = batch;
  return o;
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("fewrec_bert_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A copy of the f32 fixture whose weights pass through `edit` (name -> raw
// tensor) before being written back as one safetensors file.
struct RawTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

fs::path edited_copy(const std::string& name, const std::function<void(std::map<std::string, RawTensor>&)>& edit) {
  const fs::path src = kBertDir / "f32", d = temp_dir(name);
  for (const char* f : {"config.json", "vocab.txt"}) fs::copy_file(src / f, d / f);
  text::SafetensorsFile in(src / "model.safetensors");
  std::map<std::string, RawTensor> tensors;
  for (const auto& info : in.tensors()) {
    auto b = in.bytes(info);
    tensors[info.name] = {text::dtype_name(info.dtype), info.shape,
                          std::string(reinterpret_cast<const char*>(b.data()), b.size())};
  }
  edit(tensors);
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [n, t] : tensors) {
    header[n] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  std::ofstream out(d / "model.safetensors", std::ios::binary);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xFF));
  out << h << data;
  return d;
}

void rewrite_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto cfg = read_json(dir / "config.json");
  edit(cfg);
  std::ofstream(dir / "config.json") << cfg.dump(2);
}

}  // namespace

class BertGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(BertGolden, PooledVectorsMatchReference) {
  const fs::path dir = kBertDir / GetParam();
  const auto golden = read_json(dir / "golden.json");
  ASSERT_GE(golden["cases"].size(), 2u);
  for (const auto& c : golden["cases"]) {
    const int64_t L = c["max_length"];
    const auto sentences = c["sentences"].get<std::vector<std::string>>();
    ASSERT_GE(sentences.size(), 5u);
    struct Variant {
      BertPooling pooling;
      bool normalize;
      const char* key;
    };
    for (const Variant v : {Variant{BertPooling::kMean, false, "mean"}, Variant{BertPooling::kMean, true, "mean_normalized"},
                            Variant{BertPooling::kCls, false, "cls"}, Variant{BertPooling::kCls, true, "cls_normalized"}}) {
      // batch 3 of 8 texts: several padded batches; 2 threads run them in parallel.
      for (auto [threads, batch] : {std::pair{1, 3}, std::pair{2, 3}, std::pair{1, 32}}) {
        BertEncoder enc(options_for(dir, L, v.pooling, v.normalize, threads, batch));
        const Matrix got = enc.encode(sentences);
        EXPECT_LT(max_diff(got, c[v.key]), 1e-4)
            << GetParam() << " max_length " << L << " " << v.key << " threads " << threads << " batch " << batch;
      }
    }
    // The encoder's tokenizer gives the reference ids.
    BertEncoder enc(options_for(dir, L, BertPooling::kMean, false, 1, 32));
    for (size_t i = 0; i < sentences.size(); ++i)
      EXPECT_EQ(enc.tokenize(sentences[i]), c["ids"][i].get<std::vector<int32_t>>()) << sentences[i];
    // encode_ids equals encode on the same ids.
    const Matrix by_ids = enc.encode_ids(c["ids"].get<std::vector<std::vector<int32_t>>>());
    EXPECT_LT(max_diff(by_ids, c["mean"]), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BertGolden, ::testing::Values("f32", "f16", "bf16", "sharded", "prefixed"));

TEST(Bert, HiddenStatesMatchReferenceInOnePaddedBatch) {
  const fs::path dir = kBertDir / "f32";
  const auto golden = read_json(dir / "golden.json");
  BertEncoder enc(options_for(dir, 0, BertPooling::kMean, false, 2, 32));
  int checked = 0;
  for (const auto& c : golden["cases"]) {
    ASSERT_TRUE(c.contains("hidden"));
    const auto ids = c["ids"].get<std::vector<std::vector<int32_t>>>();
    const auto hs = enc.hidden_states(ids);
    ASSERT_EQ(hs.size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_LT(max_diff(hs[i], c["hidden"][i]), 1e-4) << "case max_length " << c["max_length"] << " sequence " << i;
      ++checked;
    }
    // Alone (no padding) the shortest sequence gives the same states.
    size_t shortest = 0;
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i].size() < ids[shortest].size()) shortest = i;
    EXPECT_LT(max_diff(enc.hidden_states({ids[shortest]})[0], c["hidden"][shortest]), 1e-4);
  }
  EXPECT_GE(checked, 10);
}

TEST(Bert, DefaultMaxLengthAndIdentity) {
  const fs::path dir = kBertDir / "f32";
  BertEncoder enc(options_for(dir, 0, BertPooling::kMean, true, 1, 32));
  EXPECT_EQ(enc.max_length(), 40);  // min(128, max_position_embeddings 40)
  EXPECT_EQ(enc.dim(), 16);
  EXPECT_EQ(enc.checksum().size(), 16u);
  EXPECT_EQ(enc.identity(), "bert:model=f32;sha=" + enc.checksum() + ";pooling=mean;normalize=1;max_len=40");
  // Same weights in another dtype: another checksum.
  BertEncoder f16(options_for(kBertDir / "f16", 0, BertPooling::kMean, true, 1, 32));
  EXPECT_NE(f16.checksum(), enc.checksum());
  // Long texts are truncated to max_length with [SEP] last.
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "the cat ";
  const auto ids = enc.tokenize(long_text);
  ASSERT_EQ(ids.size(), 40u);
  EXPECT_EQ(ids.back(), 5);  // [SEP] in the fixture vocabulary
  EXPECT_EQ(ids.front(), 4);  // [CLS]
  // Empty input, and coverage counts.
  EXPECT_EQ(enc.encode({}).rows, 0);
  const std::vector<std::string> texts = {"the cat", "zzzz qqq", ""};
  const Matrix m = enc.encode(texts);
  EXPECT_EQ(m.rows, 3);
  for (int64_t r = 0; r < 3; ++r) {
    double n = 0;
    for (int64_t c = 0; c < m.cols; ++c) n += m.row(r)[c] * m.row(r)[c];
    EXPECT_NEAR(n, 1.0, 1e-5);
  }
  const auto cov = enc.coverage();
  EXPECT_EQ(cov.texts, 3);
  EXPECT_EQ(cov.tokens, 4);  // the, cat, zzzz, qqq
  EXPECT_EQ(cov.known_tokens, 4);  // zzzz and qqq split into single letters of the fixture vocabulary
  EXPECT_EQ(cov.empty_texts, 1);
}

TEST(Bert, ConcurrentEncodeCallsAgree) {
  const fs::path dir = kBertDir / "f32";
  const auto golden = read_json(dir / "golden.json");
  const auto& c = golden["cases"][0];
  const auto sentences = c["sentences"].get<std::vector<std::string>>();
  BertEncoder enc(options_for(dir, c["max_length"].get<int64_t>(), BertPooling::kMean, true, 2, 2));
  std::vector<double> worst(4, 1.0);
  std::vector<std::thread> pool;
  for (size_t t = 0; t < worst.size(); ++t)
    pool.emplace_back([&, t] {
      double w = 0;
      for (int rep = 0; rep < 5; ++rep) w = std::max(w, max_diff(enc.encode(sentences), c["mean_normalized"]));
      worst[t] = w;
    });
  for (auto& th : pool) th.join();
  for (double w : worst) EXPECT_LT(w, 1e-4);
  EXPECT_EQ(enc.coverage().texts, static_cast<int64_t>(4 * 5 * sentences.size()));
}

TEST(Bert, RegistryBuildsTheEncoder) {
  auto& reg = text::encoder_registry();
  ASSERT_TRUE(reg.contains("bert"));
  const auto golden = read_json(kBertDir / "f32" / "golden.json");
  const auto& c = golden["cases"][0];
  auto enc = reg.create("bert", {{"model", (kBertDir / "f32").string()},
                                 {"pooling", "cls"},
                                 {"normalize", "false"},
                                 {"max_length", std::to_string(c["max_length"].get<int>())},
                                 {"batch_size", "2"},
                                 {"threads", "2"}});
  EXPECT_EQ(enc->dim(), 16);
  EXPECT_LT(max_diff(enc->encode(c["sentences"].get<std::vector<std::string>>()), c["cls"]), 1e-4);
  EXPECT_THAT(enc->identity(), HasSubstr("pooling=cls;normalize=0"));
  EXPECT_THAT(error_of([&] { reg.create("bert", {}); }), HasSubstr("option `model`"));
  EXPECT_THAT(error_of([&] { reg.create("bert", {{"model", (kBertDir / "f32").string()}, {"pooling", "max"}}); }),
              AllOf(HasSubstr("pooling"), HasSubstr("mean, cls")));
  EXPECT_THAT(error_of([&] { reg.create("bert", {{"model", (kBertDir / "f32").string()}, {"max_len", "3"}}); }),
              HasSubstr("max_len"));
}

TEST(Bert, BadModelDirectoriesGiveClearErrors) {
  const fs::path f32 = kBertDir / "f32";
  auto open = [](const fs::path& d, int64_t max_length = 0) {
    return error_of([&] { BertEncoder enc(options_for(d, max_length, BertPooling::kMean, true, 1, 32)); });
  };
  EXPECT_THAT(open(kBertDir / "nope"), AllOf(HasSubstr("nope"), HasSubstr("not found")));
  EXPECT_THAT(open(f32, 41), AllOf(HasSubstr("max_length"), HasSubstr("[2, 40]")));
  EXPECT_THAT(open(f32, 1), HasSubstr("max_length"));

  // Missing files.
  {
    const fs::path d = temp_dir("nofiles");
    fs::copy_file(f32 / "config.json", d / "config.json");
    EXPECT_THAT(open(d), AllOf(HasSubstr("vocab.txt"), HasSubstr("not found")));
    fs::copy_file(f32 / "vocab.txt", d / "vocab.txt");
    EXPECT_THAT(open(d), HasSubstr("model.safetensors"));
    fs::remove(d / "config.json");
    EXPECT_THAT(open(d), AllOf(HasSubstr("config.json"), HasSubstr("not found")));
    fs::remove_all(d);
  }
  // A missing tensor names the tensor and the file.
  {
    const fs::path d = edited_copy("missing", [](auto& t) { t.erase("encoder.layer.1.output.dense.weight"); });
    EXPECT_THAT(open(d), AllOf(HasSubstr("`encoder.layer.1.output.dense.weight`"), HasSubstr("not found"),
                               HasSubstr("model.safetensors")));
    fs::remove_all(d);
  }
  // A tensor whose shape disagrees with config.json.
  {
    const fs::path d = edited_copy("shape", [](auto& t) {
      auto& b = t.at("encoder.layer.0.intermediate.dense.bias");
      b.shape = {16};
      b.bytes.resize(16 * 4);
    });
    EXPECT_THAT(open(d), AllOf(HasSubstr("`encoder.layer.0.intermediate.dense.bias`"), HasSubstr("shape [16]"),
                               HasSubstr("[32]"), HasSubstr("config.json"), HasSubstr("model.safetensors")));
    // config.json changed instead: the embeddings disagree first.
    rewrite_config(d, [](auto& cfg) { cfg["hidden_size"] = 20; });
    EXPECT_THAT(open(d), AllOf(HasSubstr("`embeddings.word_embeddings.weight`"), HasSubstr("[107, 16]"),
                               HasSubstr("[107, 20]")));
    fs::remove_all(d);
  }
  // Non-finite weights.
  {
    const fs::path d = edited_copy("nan", [](auto& t) {
      const float nan = std::nanf("");
      std::memcpy(t.at("embeddings.LayerNorm.bias").bytes.data() + 8, &nan, 4);
    });
    EXPECT_THAT(open(d), AllOf(HasSubstr("`embeddings.LayerNorm.bias`"), HasSubstr("non-finite"), HasSubstr("element 2")));
    fs::remove_all(d);
  }
  // Unsupported dtype.
  {
    const fs::path d = edited_copy("dtype", [](auto& t) {
      auto& b = t.at("embeddings.LayerNorm.bias");
      b.dtype = "I32";
    });
    EXPECT_THAT(open(d), HasSubstr("embeddings.LayerNorm.bias"));
    fs::remove_all(d);
  }
  // Vocabulary size against config.json / the embeddings.
  {
    const fs::path d = edited_copy("vocab", [](auto&) {});
    std::ofstream(d / "vocab.txt", std::ios::app) << "extra\n";
    EXPECT_THAT(open(d), AllOf(HasSubstr("vocab.txt"), HasSubstr("108 tokens"), HasSubstr("vocab_size 107")));
    fs::remove_all(d);
  }
  // Missing config key.
  {
    const fs::path d = edited_copy("config", [](auto&) {});
    rewrite_config(d, [](auto& cfg) { cfg.erase("num_attention_heads"); });
    EXPECT_THAT(open(d), AllOf(HasSubstr("config.json"), HasSubstr("num_attention_heads")));
    fs::remove_all(d);
  }
  // tokenizer_config.json: do_lower_case false keeps "The" (not in the
  // lower-case fixture vocabulary: [UNK] = 3); invalid JSON is an error.
  {
    const fs::path d = edited_copy("tokcfg", [](auto&) {});
    BertEncoder lower(options_for(d, 0, BertPooling::kMean, true, 1, 32));
    EXPECT_EQ(lower.tokenize("The"), (std::vector<int32_t>{4, 80, 5}));  // [CLS] the [SEP]
    std::ofstream(d / "tokenizer_config.json") << R"({"do_lower_case": false})";
    BertEncoder cased(options_for(d, 0, BertPooling::kMean, true, 1, 32));
    EXPECT_EQ(cased.tokenize("The"), (std::vector<int32_t>{4, 3, 5}));
    std::ofstream(d / "tokenizer_config.json") << "{oops";
    EXPECT_THAT(open(d), AllOf(HasSubstr("tokenizer_config.json"), HasSubstr("not valid JSON")));
    fs::remove_all(d);
  }
  // Truncated weights.
  {
    const fs::path d = edited_copy("truncated", [](auto&) {});
    fs::resize_file(d / "model.safetensors", fs::file_size(d / "model.safetensors") - 100);
    EXPECT_THAT(open(d), HasSubstr("model.safetensors"));
    fs::resize_file(d / "model.safetensors", 5);
    EXPECT_THAT(open(d), HasSubstr("model.safetensors"));
    fs::remove_all(d);
  }
  // Bad ids through the id interfaces.
  BertEncoder enc(options_for(f32, 0, BertPooling::kMean, true, 1, 32));
  EXPECT_THAT(error_of([&] { enc.encode_ids({{4, 107, 5}}); }), AllOf(HasSubstr("107"), HasSubstr("[0, 107)")));
  EXPECT_THAT(error_of([&] { enc.hidden_states({{}}); }), HasSubstr("1 to 40"));
  EXPECT_THAT(error_of([&] { enc.hidden_states({std::vector<int32_t>(41, 7)}); }), HasSubstr("41 tokens"));
}

// The published all-MiniLM-L6-v2 outputs (text-embeddings-inference snapshots
// and the values in ../shared/reference/README.md) when the real model is given.
TEST(Bert, MiniLmMatchesPublishedOutputs) {
  const char* env = std::getenv("FEWREC_MINILM_DIR");
  if (!env || !*env) GTEST_SKIP() << "set FEWREC_MINILM_DIR to an all-MiniLM-L6-v2 directory to run this test";
  const fs::path snaps = fs::path(FEWREC_SHARED_DIR) / "reference" / "minilm-reference";
  if (!fs::is_directory(snaps)) GTEST_SKIP() << "no " << snaps;
  auto numbers = [](const fs::path& p) {
    std::ifstream in(p);
    std::string line;
    std::vector<double> v;
    int dashes = 0;
    static const std::regex num(R"(^[\s-]*-\s+(-?[0-9.]+(e-?[0-9]+)?)\s*$)");
    while (std::getline(in, line)) {
      if (line == "---") {
        ++dashes;
        continue;
      }
      std::smatch m;
      if (dashes >= 2 && std::regex_match(line, m, num)) v.push_back(std::stod(m[1]));
    }
    return v;
  };
  BertEncoder norm(options_for(env, 0, BertPooling::kMean, true, 0, 32));
  BertEncoder raw(options_for(env, 0, BertPooling::kMean, false, 0, 32));
  const auto ids = raw.tokenize("What is Deep Learning?");
  ASSERT_EQ(ids.size(), 7u);
  const auto hidden = numbers(snaps / "test_bert__bert_single_raw.snap");
  ASSERT_EQ(hidden.size(), 7u * 384u);
  const auto hs = raw.hidden_states({ids})[0];
  double worst = 0;
  for (size_t i = 0; i < hidden.size(); ++i) worst = std::max(worst, std::abs(hs.data[i] - hidden[i]));
  EXPECT_LT(worst, 1e-3);
  const auto mean = numbers(snaps / "test_bert__bert_single.snap");
  ASSERT_EQ(mean.size(), 384u);
  const Matrix m = raw.encode(std::vector<std::string>{"What is Deep Learning?"});
  worst = 0;
  for (size_t i = 0; i < mean.size(); ++i) worst = std::max(worst, std::abs(m.data[i] - mean[i]));
  EXPECT_LT(worst, 1e-3);
  const Matrix n = norm.encode(std::vector<std::string>{"hello world", "What is Deep Learning?"});
  const double hello[] = {-0.0344773, 0.0310232, 0.0067350, 0.0261090, -0.0393620};
  const double deep[] = {-0.077906, -0.033310, 0.019750, 0.007239, -0.015543};
  for (int j = 0; j < 5; ++j) {
    EXPECT_NEAR(n.row(0)[j], hello[j], 1e-3);
    EXPECT_NEAR(n.row(1)[j], deep[j], 1e-3);
  }
}

// BertEncoder on LibTorch (ATen only; no autograd, no torch::nn).
#include "fewrec/text/bert.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/core/threads.h"
#include "fewrec/text/safetensors.h"
#include "fewrec/text/wordpiece.h"
#include "options.h"

namespace fewrec::text {

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p, const char* what) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) FEWREC_THROW(kNotFound, "BERT {} `{}` not found", what, p.string());
  std::ifstream in(p, std::ios::binary);
  if (!in) FEWREC_THROW(kIo, "cannot open BERT {} `{}`", what, p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Process-wide LibTorch and OpenBLAS thread counts, set for a scope and
// restored after. OpenBLAS is found at run time so other BLAS builds link.
class ThreadScope {
 public:
  ThreadScope(int torch_threads, int blas_threads) {
    using Get = int (*)();
    set_blas_ = reinterpret_cast<Set>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    auto get_blas = reinterpret_cast<Get>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    torch_before_ = at::get_num_threads();
    blas_before_ = get_blas ? get_blas() : 0;
    if (torch_before_ != torch_threads) at::set_num_threads(torch_threads);
    if (set_blas_) set_blas_(blas_threads);
  }
  ~ThreadScope() {
    if (at::get_num_threads() != torch_before_) at::set_num_threads(torch_before_);
    if (set_blas_ && blas_before_ > 0) set_blas_(blas_before_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  using Set = void (*)(int);
  Set set_blas_ = nullptr;
  int torch_before_ = 1, blas_before_ = 0;
};

struct Layer {
  at::Tensor qkv_w, qkv_b;         // [3H, H], [3H]: query, key, value stacked
  at::Tensor out_w, out_b;         // [H, H], [H]
  at::Tensor ln1_w, ln1_b;         // attention output LayerNorm
  at::Tensor inter_w, inter_b;     // [I, H], [I]
  at::Tensor ffn_out_w, ffn_out_b; // [H, I], [H]
  at::Tensor ln2_w, ln2_b;         // output LayerNorm
};

struct Weights {
  at::Tensor word, position, token_type, emb_ln_w, emb_ln_b;
  std::vector<Layer> layers;
};

// Loads every tensor the forward needs, checking names and shapes.
class WeightLoader {
 public:
  WeightLoader(const fs::path& dir, const BertConfig& c, const SafetensorsCheckpoint& ckpt)
      : dir_(dir), config_path_(dir / "config.json"), c_(c), ckpt_(ckpt) {
    // Canonical names: without a `bert.` prefix, LayerNorm weight/bias.
    for (const auto& name : ckpt.names()) {
      std::string n = name;
      if (n.starts_with("bert.")) n = n.substr(5);
      for (auto [from, to] : {std::pair{"LayerNorm.gamma", "LayerNorm.weight"}, {"LayerNorm.beta", "LayerNorm.bias"}})
        if (auto pos = n.find(from); pos != std::string::npos) n.replace(pos, std::string_view(from).size(), to);
      // A prefixed and an unprefixed copy: prefer the unprefixed one.
      if (!canonical_.count(n) || name == n) canonical_[n] = name;
    }
  }

  at::Tensor get(const std::string& name, std::vector<int64_t> shape) const {
    auto it = canonical_.find(name);
    if (it == canonical_.end())
      FEWREC_THROW(kNotFound, "BERT model `{}`: tensor `{}` (or `bert.{}`) not found in `{}`", dir_.string(), name,
                   name, ckpt_.source().string());
    const SafetensorInfo& info = ckpt_.info(it->second);
    if (info.shape != shape) {
      SafetensorInfo expected;
      expected.shape = shape;
      FEWREC_THROW(kInvalidArgument, "BERT model `{}`: tensor `{}` in `{}` has shape {}, but `{}` implies {}",
                   dir_.string(), it->second, ckpt_.file_of(it->second).path().string(), info.shape_string(),
                   config_path_.string(), expected.shape_string());
    }
    at::Tensor t = at::empty(shape, at::kFloat);
    ckpt_.read_f32(it->second, std::span<float>(t.data_ptr<float>(), static_cast<size_t>(t.numel())));
    const float* v = t.data_ptr<float>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i)
      if (!std::isfinite(v[i]))
        FEWREC_THROW(kCorrupt, "BERT model `{}`: tensor `{}` in `{}` holds a non-finite value at element {}",
                     dir_.string(), it->second, ckpt_.file_of(it->second).path().string(), i);
    return t;
  }

  Weights load() const {
    const int64_t H = c_.hidden_size, I = c_.intermediate_size;
    Weights w;
    w.word = get("embeddings.word_embeddings.weight", {c_.vocab_size, H});
    w.position = get("embeddings.position_embeddings.weight", {c_.max_position_embeddings, H});
    w.token_type = get("embeddings.token_type_embeddings.weight", {c_.type_vocab_size, H});
    w.emb_ln_w = get("embeddings.LayerNorm.weight", {H});
    w.emb_ln_b = get("embeddings.LayerNorm.bias", {H});
    for (int64_t i = 0; i < c_.num_hidden_layers; ++i) {
      const std::string p = "encoder.layer." + std::to_string(i) + ".";
      Layer l;
      l.qkv_w = at::cat({get(p + "attention.self.query.weight", {H, H}), get(p + "attention.self.key.weight", {H, H}),
                         get(p + "attention.self.value.weight", {H, H})});
      l.qkv_b = at::cat({get(p + "attention.self.query.bias", {H}), get(p + "attention.self.key.bias", {H}),
                         get(p + "attention.self.value.bias", {H})});
      l.out_w = get(p + "attention.output.dense.weight", {H, H});
      l.out_b = get(p + "attention.output.dense.bias", {H});
      l.ln1_w = get(p + "attention.output.LayerNorm.weight", {H});
      l.ln1_b = get(p + "attention.output.LayerNorm.bias", {H});
      l.inter_w = get(p + "intermediate.dense.weight", {I, H});
      l.inter_b = get(p + "intermediate.dense.bias", {I});
      l.ffn_out_w = get(p + "output.dense.weight", {H, I});
      l.ffn_out_b = get(p + "output.dense.bias", {H});
      l.ln2_w = get(p + "output.LayerNorm.weight", {H});
      l.ln2_b = get(p + "output.LayerNorm.bias", {H});
      w.layers.push_back(std::move(l));
    }
    return w;
  }

 private:
  fs::path dir_, config_path_;
  const BertConfig& c_;
  const SafetensorsCheckpoint& ckpt_;
  std::map<std::string, std::string> canonical_;
};

// Weights shared by encoders of the same unchanged directory.
std::shared_ptr<const Weights> shared_weights(const std::string& key, const std::function<Weights()>& load) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<const Weights>> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end())
    if (auto w = it->second.lock()) return w;
  auto w = std::make_shared<const Weights>(load());
  cache[key] = w;
  return w;
}

std::string hex16(uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace

struct BertEncoder::Impl {
  BertOptions options;
  BertConfig config;
  int64_t max_length = 0;
  std::string checksum;
  std::unique_ptr<WordPieceTokenizer> tokenizer;
  int32_t cls_id = 0, sep_id = 0;
  std::shared_ptr<const Weights> weights;
  mutable std::mutex coverage_mu;
  mutable Coverage coverage;

  // Last hidden states [B, T, H] of a padded batch (ids [B, T], lengths).
  at::Tensor forward(const at::Tensor& ids, const std::vector<int64_t>& lengths) const {
    const Weights& w = *weights;
    const int64_t B = ids.size(0), T = ids.size(1), H = config.hidden_size;
    const int64_t nh = config.num_attention_heads, dh = H / nh;
    const double eps = config.layer_norm_eps;
    at::Tensor x = w.word.index_select(0, ids.reshape({-1})).view({B, T, H});
    x.add_(w.position.narrow(0, 0, T).unsqueeze(0)).add_(w.token_type[0]);
    x = at::layer_norm(x, {H}, w.emb_ln_w, w.emb_ln_b, eps);
    // Additive attention mask [B, 1, 1, T]: 0 for tokens, lowest float for padding.
    at::Tensor mask;
    bool padded = false;
    for (int64_t l : lengths) padded |= l < T;
    if (padded) {
      mask = at::zeros({B, 1, 1, T}, at::kFloat);
      auto* m = mask.data_ptr<float>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = lengths[static_cast<size_t>(b)]; t < T; ++t) m[b * T + t] = std::numeric_limits<float>::lowest();
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
    for (const Layer& l : w.layers) {
      at::Tensor qkv = at::linear(x, l.qkv_w, l.qkv_b).view({B, T, 3, nh, dh}).permute({2, 0, 3, 1, 4});
      at::Tensor q = qkv[0].mul(scale), k = qkv[1], v = qkv[2];  // [B, nh, T, dh]
      at::Tensor scores = at::matmul(q, k.transpose(-1, -2));   // [B, nh, T, T]
      if (padded) scores.add_(mask);
      at::Tensor ctx = at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({B, T, H});
      x = at::layer_norm(at::linear(ctx, l.out_w, l.out_b).add_(x), {H}, l.ln1_w, l.ln1_b, eps);
      at::Tensor h = at::gelu(at::linear(x, l.inter_w, l.inter_b));  // exact erf GELU
      x = at::layer_norm(at::linear(h, l.ffn_out_w, l.ffn_out_b).add_(x), {H}, l.ln2_w, l.ln2_b, eps);
    }
    return x;
  }

  // Pooled (and normalised) vectors of one padded batch into out rows.
  void encode_batch(const std::vector<const std::vector<int32_t>*>& seqs, const std::vector<int64_t>& rows,
                    Matrix& out) const {
    const int64_t B = static_cast<int64_t>(seqs.size()), H = config.hidden_size;
    int64_t T = 0;
    std::vector<int64_t> lengths;
    for (const auto* s : seqs) {
      lengths.push_back(static_cast<int64_t>(s->size()));
      T = std::max(T, lengths.back());
    }
    at::Tensor ids = at::zeros({B, T}, at::kLong);
    auto* p = ids.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b)
      for (size_t t = 0; t < seqs[static_cast<size_t>(b)]->size(); ++t) p[b * T + static_cast<int64_t>(t)] = (*seqs[static_cast<size_t>(b)])[t];
    at::Tensor hs = forward(ids, lengths);
    at::Tensor pooled;
    if (options.pooling == BertPooling::kCls) {
      pooled = hs.select(1, 0);
    } else {
      at::Tensor len = at::empty({B, 1}, at::kFloat);
      at::Tensor m = at::zeros({B, T, 1}, at::kFloat);
      for (int64_t b = 0; b < B; ++b) {
        len.data_ptr<float>()[b] = static_cast<float>(lengths[static_cast<size_t>(b)]);
        m.narrow(0, b, 1).narrow(1, 0, lengths[static_cast<size_t>(b)]).fill_(1.0f);
      }
      pooled = hs.mul(m).sum(1).div(len);
    }
    if (options.normalize) pooled = pooled.div(pooled.norm(2, {1}, true).clamp_min(1e-12));
    pooled = pooled.contiguous();
    const float* src = pooled.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) std::copy_n(src + b * H, H, out.row(rows[static_cast<size_t>(b)]));
  }

  Matrix encode_all(const std::vector<std::vector<int32_t>>& ids) const {
    Matrix out;
    out.rows = static_cast<int64_t>(ids.size());
    out.cols = config.hidden_size;
    out.data.assign(static_cast<size_t>(out.rows * out.cols), 0.0f);
    if (ids.empty()) return out;
    // Sorted by length (longest first) so each batch pads little.
    std::vector<int64_t> order(ids.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return ids[static_cast<size_t>(a)].size() > ids[static_cast<size_t>(b)].size();
    });
    const int threads = core::resolve_threads(options.threads);
    const int64_t n = out.rows;
    // Every thread gets work when there are fewer than threads x batch_size texts.
    const int64_t per_thread = (n + threads - 1) / threads;
    const int64_t batch = std::max<int64_t>(1, std::min(options.batch_size, per_thread));
    const int64_t batches = (n + batch - 1) / batch;
    ThreadScope scope(1, 1);
    core::parallel_for(
        0, batches, threads,
        [&](int64_t b0, int64_t b1, int) {
          c10::InferenceMode guard;
          for (int64_t bi = b0; bi < b1; ++bi) {
            std::vector<const std::vector<int32_t>*> seqs;
            std::vector<int64_t> rows;
            for (int64_t i = bi * batch; i < std::min(n, (bi + 1) * batch); ++i) {
              rows.push_back(order[static_cast<size_t>(i)]);
              seqs.push_back(&ids[static_cast<size_t>(rows.back())]);
            }
            encode_batch(seqs, rows, out);
          }
        },
        1);
    return out;
  }

  void check_ids(const std::vector<std::vector<int32_t>>& ids) const {
    for (size_t i = 0; i < ids.size(); ++i) {
      const auto& s = ids[i];
      FEWREC_CHECK(!s.empty() && static_cast<int64_t>(s.size()) <= config.max_position_embeddings, kInvalidArgument,
                   "BERT: sequence {} has {} tokens, expected 1 to {} (max_position_embeddings)", i, s.size(),
                   config.max_position_embeddings);
      for (int32_t id : s)
        FEWREC_CHECK(id >= 0 && id < config.vocab_size, kInvalidArgument,
                     "BERT: sequence {} holds token id {}, outside the vocabulary [0, {})", i, id, config.vocab_size);
    }
  }
};

BertEncoder::BertEncoder(const BertOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  const fs::path& dir = options.dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) FEWREC_THROW(kNotFound, "BERT model directory `{}` not found", dir.string());
  FEWREC_CHECK(options.batch_size >= 1, kInvalidArgument, "BERT batch_size must be >= 1, got {}", options.batch_size);
  m.config = BertConfig::read(dir / "config.json");
  const BertConfig& c = m.config;
  m.max_length = options.max_length == 0 ? std::min<int64_t>(128, c.max_position_embeddings) : options.max_length;
  FEWREC_CHECK(m.max_length >= 2 && m.max_length <= c.max_position_embeddings, kInvalidArgument,
               "BERT max_length must be in [2, {}] (max_position_embeddings of `{}`), got {}",
               c.max_position_embeddings, (dir / "config.json").string(), m.max_length);

  // Tokenizer: lower-casing unless tokenizer_config.json says otherwise.
  WordPieceOptions wo;
  if (fs::is_regular_file(dir / "tokenizer_config.json", ec)) {
    try {
      auto tc = nlohmann::json::parse(read_file(dir / "tokenizer_config.json", "tokenizer config"));
      if (tc.is_object() && tc.contains("do_lower_case") && tc["do_lower_case"].is_boolean())
        wo.lower_case = tc["do_lower_case"].get<bool>();
    } catch (const nlohmann::json::exception& e) {
      FEWREC_THROW(kCorrupt, "BERT tokenizer config `{}` is not valid JSON: {}",
                   (dir / "tokenizer_config.json").string(), core::excerpt(e.what(), 200));
    }
  }
  const fs::path vocab_path = dir / "vocab.txt";
  m.tokenizer = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::load(vocab_path, wo));
  if (m.tokenizer->vocab_size() != c.vocab_size)
    FEWREC_THROW(kInvalidArgument, "BERT vocabulary `{}` has {} tokens, but `{}` says vocab_size {}",
                 vocab_path.string(), m.tokenizer->vocab_size(), (dir / "config.json").string(), c.vocab_size);
  m.cls_id = m.tokenizer->id("[CLS]");
  m.sep_id = m.tokenizer->id("[SEP]");

  auto ckpt = SafetensorsCheckpoint::open(dir);
  const std::string config_text = read_file(dir / "config.json", "config");
  const std::string vocab_text = read_file(vocab_path, "vocabulary");
  m.checksum = hex16(fnv1a64(ckpt.fingerprint(), fnv1a64(vocab_text, fnv1a64(config_text))));
  const std::string key = fs::weakly_canonical(dir, ec).string() + "|" + m.checksum;
  m.weights = shared_weights(key, [&] { return WeightLoader(dir, c, ckpt).load(); });
}

BertEncoder::~BertEncoder() = default;

int64_t BertEncoder::dim() const { return impl_->config.hidden_size; }
const BertConfig& BertEncoder::config() const { return impl_->config; }
const BertOptions& BertEncoder::options() const { return impl_->options; }
int64_t BertEncoder::max_length() const { return impl_->max_length; }
const std::string& BertEncoder::checksum() const { return impl_->checksum; }

std::string BertEncoder::identity() const {
  const auto& o = impl_->options;
  fs::path name = o.dir.filename();
  if (name.empty()) name = o.dir.parent_path().filename();
  return fmt::format("bert:model={};sha={};pooling={};normalize={};max_len={}", name.string(), impl_->checksum,
                     o.pooling == BertPooling::kCls ? "cls" : "mean", o.normalize ? 1 : 0, impl_->max_length);
}

std::vector<int32_t> BertEncoder::tokenize(std::string_view text) const {
  std::vector<int32_t> ids{impl_->cls_id};
  impl_->tokenizer->encode(text, ids);
  if (static_cast<int64_t>(ids.size()) > impl_->max_length - 1) ids.resize(static_cast<size_t>(impl_->max_length - 1));
  ids.push_back(impl_->sep_id);
  return ids;
}

Matrix BertEncoder::encode(std::span<const std::string> texts) const {
  std::vector<std::vector<int32_t>> ids(texts.size());
  Coverage cov;
  for (size_t i = 0; i < texts.size(); ++i) {
    WordPieceStats stats;
    auto& s = ids[i];
    s.push_back(impl_->cls_id);
    impl_->tokenizer->encode(texts[i], s, &stats);
    if (static_cast<int64_t>(s.size()) > impl_->max_length - 1) s.resize(static_cast<size_t>(impl_->max_length - 1));
    s.push_back(impl_->sep_id);
    cov.tokens += stats.words;
    cov.known_tokens += stats.words - stats.unknown_words;
    ++cov.texts;
    cov.empty_texts += stats.words == stats.unknown_words;
  }
  Matrix out = impl_->encode_all(ids);
  std::lock_guard<std::mutex> lock(impl_->coverage_mu);
  impl_->coverage.tokens += cov.tokens;
  impl_->coverage.known_tokens += cov.known_tokens;
  impl_->coverage.texts += cov.texts;
  impl_->coverage.empty_texts += cov.empty_texts;
  return out;
}

Coverage BertEncoder::coverage() const {
  std::lock_guard<std::mutex> lock(impl_->coverage_mu);
  return impl_->coverage;
}

Matrix BertEncoder::encode_ids(const std::vector<std::vector<int32_t>>& ids) const {
  impl_->check_ids(ids);
  return impl_->encode_all(ids);
}

std::vector<Matrix> BertEncoder::hidden_states(const std::vector<std::vector<int32_t>>& ids) const {
  impl_->check_ids(ids);
  std::vector<Matrix> out;
  if (ids.empty()) return out;
  const int threads = core::resolve_threads(impl_->options.threads);
  ThreadScope scope(threads, threads);
  c10::InferenceMode guard;
  const int64_t B = static_cast<int64_t>(ids.size()), H = impl_->config.hidden_size;
  int64_t T = 0;
  std::vector<int64_t> lengths;
  for (const auto& s : ids) {
    lengths.push_back(static_cast<int64_t>(s.size()));
    T = std::max(T, lengths.back());
  }
  at::Tensor t = at::zeros({B, T}, at::kLong);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < lengths[static_cast<size_t>(b)]; ++j)
      t.data_ptr<int64_t>()[b * T + j] = ids[static_cast<size_t>(b)][static_cast<size_t>(j)];
  at::Tensor hs = impl_->forward(t, lengths).contiguous();
  for (int64_t b = 0; b < B; ++b) {
    Matrix m;
    m.rows = lengths[static_cast<size_t>(b)];
    m.cols = H;
    const float* src = hs.data_ptr<float>() + b * T * H;
    m.data.assign(src, src + m.rows * H);
    out.push_back(std::move(m));
  }
  return out;
}

namespace {

BertOptions read_bert_options(EncoderOptions& o) {
  BertOptions b;
  b.dir = o.get_string("model", "", "HuggingFace model directory (config.json, vocab.txt, *.safetensors)");
  b.pooling = o.get_choice("pooling", "mean", {"mean", "cls"}, "mean of the token vectors, or the [CLS] vector") ==
                      "cls"
                  ? BertPooling::kCls
                  : BertPooling::kMean;
  b.normalize = o.get_bool("normalize", true, "L2-normalise the sentence vectors");
  b.max_length = o.get_int("max_length", 0, "tokens per text incl. [CLS]/[SEP]; 0 = min(128, the model's maximum)", 0,
                           int64_t{1} << 20);
  b.batch_size = o.get_int("batch_size", 32, "texts per forward pass", 1, 1 << 16);
  b.threads = static_cast<int>(o.get_int("threads", 0, "threads (0 = all cores)", 0, 1024));
  return b;
}

}  // namespace

void register_bert_encoder(EncoderRegistry& registry) {
  EncoderOptions probe({}, "bert");
  read_bert_options(probe);
  registry.add({"bert",
                "BERT-family sentence encoder from a HuggingFace directory (e.g. all-MiniLM-L6-v2) on LibTorch",
                probe.docs(), [](const std::map<std::string, std::string>& options) -> std::unique_ptr<TextEncoder> {
                  EncoderOptions o(options, "bert");
                  auto b = read_bert_options(o);
                  o.check_all_used();
                  if (b.dir.empty())
                    FEWREC_THROW(kInvalidArgument,
                                 "text encoder `bert`: option `model` (a HuggingFace model directory) is required, "
                                 "e.g. --set text.model=path/to/all-MiniLM-L6-v2");
                  return std::make_unique<BertEncoder>(b);
                }});
}

}  // namespace fewrec::text

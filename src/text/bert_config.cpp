// BertConfig: reading and checking a HuggingFace config.json (no LibTorch).
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/text/bert.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace fewrec::text {

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 24;  // sanity bound on every size in the config

int64_t positive_int(const json& cfg, const fs::path& path, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end())
    FEWREC_THROW(kInvalidArgument, "BERT config `{}`: missing key `{}`", path.string(), key);
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > kMaxDim)
    FEWREC_THROW(kInvalidArgument, "BERT config `{}`: key `{}` must be an integer in [1, {}], got {}", path.string(),
                 key, kMaxDim, core::excerpt(it->dump()));
  return it->get<int64_t>();
}

std::string optional_string(const json& cfg, const fs::path& path, const char* key, const std::string& def) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return def;
  if (!it->is_string())
    FEWREC_THROW(kInvalidArgument, "BERT config `{}`: key `{}` must be a string, got {}", path.string(), key,
                 core::excerpt(it->dump()));
  return it->get<std::string>();
}

}  // namespace

BertConfig BertConfig::read(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) FEWREC_THROW(kNotFound, "BERT config `{}` not found", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) FEWREC_THROW(kIo, "cannot open BERT config `{}`", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  json cfg;
  try {
    cfg = json::parse(ss.str());
  } catch (const json::exception& e) {
    FEWREC_THROW(kCorrupt, "BERT config `{}` is not valid JSON: {}", path.string(), core::excerpt(e.what(), 200));
  }
  if (!cfg.is_object()) FEWREC_THROW(kCorrupt, "BERT config `{}` must be a JSON object", path.string());

  BertConfig c;
  c.vocab_size = positive_int(cfg, path, "vocab_size");
  c.hidden_size = positive_int(cfg, path, "hidden_size");
  c.num_hidden_layers = positive_int(cfg, path, "num_hidden_layers");
  c.num_attention_heads = positive_int(cfg, path, "num_attention_heads");
  c.intermediate_size = positive_int(cfg, path, "intermediate_size");
  c.max_position_embeddings = positive_int(cfg, path, "max_position_embeddings");
  c.type_vocab_size = positive_int(cfg, path, "type_vocab_size");
  if (auto it = cfg.find("layer_norm_eps"); it != cfg.end()) {
    if (!it->is_number() || !(it->get<double>() > 0.0) || it->get<double>() > 1.0)
      FEWREC_THROW(kInvalidArgument, "BERT config `{}`: key `layer_norm_eps` must be a number in (0, 1], got {}",
                   path.string(), core::excerpt(it->dump()));
    c.layer_norm_eps = it->get<double>();
  }
  if (c.hidden_size % c.num_attention_heads != 0)
    FEWREC_THROW(kInvalidArgument,
                 "BERT config `{}`: hidden_size {} is not a multiple of num_attention_heads {}", path.string(),
                 c.hidden_size, c.num_attention_heads);
  const std::string act = optional_string(cfg, path, "hidden_act", "gelu");
  if (act != "gelu")
    FEWREC_THROW(kInvalidArgument,
                 "BERT config `{}`: hidden_act `{}` is not supported (only `gelu`, the exact erf GELU)", path.string(),
                 core::excerpt(act));
  const std::string pos = optional_string(cfg, path, "position_embedding_type", "absolute");
  if (pos != "absolute")
    FEWREC_THROW(kInvalidArgument, "BERT config `{}`: position_embedding_type `{}` is not supported (only `absolute`)",
                 path.string(), core::excerpt(pos));
  const std::string type = optional_string(cfg, path, "model_type", "bert");
  if (type != "bert")
    FEWREC_THROW(kInvalidArgument, "BERT config `{}`: model_type `{}` is not supported (only `bert`)", path.string(),
                 core::excerpt(type));
  return c;
}

double BertConfig::forward_flops(int64_t batch, int64_t seq_len) const {
  const double n = static_cast<double>(batch) * static_cast<double>(seq_len);
  const double h = static_cast<double>(hidden_size), i = static_cast<double>(intermediate_size);
  const double per_layer = 2.0 * n * h * (3.0 * h)  // fused Q, K, V projection
                           + 2.0 * n * h * h         // attention output projection
                           + 2.0 * 2.0 * n * h * i   // feed-forward in and out
                           + 2.0 * 2.0 * n * static_cast<double>(seq_len) * h;  // Q K^T and P V over all heads
  return per_layer * static_cast<double>(num_hidden_layers);
}

}  // namespace fewrec::text

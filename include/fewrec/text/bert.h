// bert: a BERT-family sentence encoder (e.g. all-MiniLM-L6-v2) loaded from a
// HuggingFace directory: config.json, vocab.txt and model.safetensors (or
// model.safetensors.index.json with shards). Weights may be stored as F32,
// F16 or BF16 (computed in F32), with or without the `bert.` prefix and with
// LayerNorm `weight/bias` or `gamma/beta`; pooler and MLM-head tensors are
// ignored.
//
// Forward: word + position + token-type(0) embeddings, LayerNorm, then
// post-LN encoder layers (masked self-attention, exact erf GELU), then masked
// mean pooling (or the [CLS] vector) and optional L2 normalisation. Texts are
// tokenised with WordPiece, truncated to max_length, sorted by length and run
// in padded batches of batch_size. Runs on LibTorch; this header stays free of
// it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fewrec/text/encoder.h"

namespace fewrec::text {

struct BertConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 0;
  double layer_norm_eps = 1e-12;  // HuggingFace's default when absent

  // Reads and checks a config.json: kNotFound if missing, kCorrupt if not
  // JSON, kInvalidArgument naming the file and key for a missing or bad key,
  // an activation other than exact `gelu` or an unsupported model type.
  static BertConfig read(const std::filesystem::path& config_json);
  // Multiply-adds x 2 of the matrix products of one forward over `batch`
  // sequences of `seq_len` tokens (projections, FFN, attention scores and
  // context).
  double forward_flops(int64_t batch, int64_t seq_len) const;
};

enum class BertPooling { kMean, kCls };

struct BertOptions {
  std::filesystem::path dir;               // the model directory
  BertPooling pooling = BertPooling::kMean;
  bool normalize = true;                   // L2-normalise the pooled vectors
  int64_t max_length = 0;                  // tokens incl. [CLS]/[SEP]; 0 = min(128, max_position_embeddings)
  int64_t batch_size = 32;                 // texts per forward
  // Threads during encode; 0 = all cores. Batches run in parallel, one per
  // thread with single-threaded BLAS (a single batch is split so that every
  // thread has work); hidden_states() uses multi-threaded BLAS instead.
  // LibTorch's and OpenBLAS's process-wide thread counts are set for the
  // call and restored after.
  int threads = 0;
};

class BertEncoder final : public TextEncoder {
 public:
  // Loads and validates the model (errors name the file and the tensor:
  // missing tensors, shapes that disagree with config.json, vocab.txt size
  // against the embeddings, corrupt weights). Weights are shared between
  // encoders loaded from the same unchanged directory.
  explicit BertEncoder(const BertOptions& options);
  ~BertEncoder() override;

  int64_t dim() const override;
  // "bert:model=<dir name>;sha=<config+vocab+weights checksum>;pooling=mean;normalize=1;max_len=128"
  std::string identity() const override;
  // [texts.size() x hidden_size]; thread-safe.
  Matrix encode(std::span<const std::string> texts) const override;
  Coverage coverage() const override;

  const BertConfig& config() const;
  const BertOptions& options() const;
  int64_t max_length() const;          // effective
  const std::string& checksum() const;  // of config.json, vocab.txt and the weights

  // Token ids as encode() uses them: [CLS] pieces [SEP], truncated to max_length.
  std::vector<int32_t> tokenize(std::string_view text) const;
  // Pooled vectors of id sequences, batched as encode() batches texts.
  Matrix encode_ids(const std::vector<std::vector<int32_t>>& ids) const;
  // Last hidden states [len_i x hidden_size] of each sequence, run as ONE
  // padded batch in the given order (to test padding). Ids must be in
  // [0, vocab_size) and 1 <= len <= max_position_embeddings (kInvalidArgument).
  std::vector<Matrix> hidden_states(const std::vector<std::vector<int32_t>>& ids) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fewrec::text

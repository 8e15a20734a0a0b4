// TextEncoder: turns texts into fixed-size vectors. Implementations:
// hashing (no weights), glove (static word vectors, SIF pooling), bert
// (a HuggingFace BERT-family directory on LibTorch). This header stays free of
// LibTorch so models and the CLI can use encoders without including it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace fewrec::text {

// Row-major [rows x cols] float matrix.
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data;
  float* row(int64_t r) { return data.data() + r * cols; }
  const float* row(int64_t r) const { return data.data() + r * cols; }
};

// Vocabulary coverage of the last encode() call (encoders with a vocabulary).
struct Coverage {
  int64_t tokens = 0;        // word tokens seen
  int64_t known_tokens = 0;  // found in the vocabulary (not [UNK] / not out of vocabulary)
  int64_t texts = 0;
  int64_t empty_texts = 0;   // texts with no known token (their vector is zero)
};

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual int64_t dim() const = 0;
  // Identity for cache keys: name, weights checksum and every option that
  // changes the output, e.g. "bert:dir=...;sha=...;pooling=mean;normalize=1;max_len=128".
  virtual std::string identity() const = 0;
  // Encodes a batch: [texts.size() x dim()]. Empty texts give defined
  // vectors (zero for bag-of-words encoders). Thread-safe (const).
  virtual Matrix encode(std::span<const std::string> texts) const = 0;
  // Coverage counted over every encode() since construction (may be zero
  // for encoders without a vocabulary).
  virtual Coverage coverage() const { return {}; }
};

// Lower-cased word tokens of a UTF-8 text for bag-of-words encoders: runs of
// ASCII letters and digits and any non-ASCII bytes (kept as they are, so
// "café" stays one word); apostrophes inside a word are kept ("don't").
// ASCII letters are lower-cased; everything else separates words.
std::vector<std::string> simple_words(std::string_view text);

struct EncoderOptionDoc {
  std::string key;
  std::string default_value;
  std::string doc;
};

struct EncoderInfo {
  std::string name;
  std::string description;  // one line
  std::vector<EncoderOptionDoc> options;
  // Builds the encoder from string options (validated: an unknown option is
  // an error listing the known ones). May read files (weights, vectors).
  std::function<std::unique_ptr<TextEncoder>(const std::map<std::string, std::string>&)> create;
};

class EncoderRegistry {
 public:
  void add(EncoderInfo info);  // duplicate name -> kInternal
  // kNotFound: "unknown text encoder `brt`; known: bert, glove, hashing"
  const EncoderInfo& get(std::string_view name) const;
  bool contains(std::string_view name) const;
  std::vector<const EncoderInfo*> list() const;  // sorted by name
  std::unique_ptr<TextEncoder> create(std::string_view name,
                                      const std::map<std::string, std::string>& options) const;

 private:
  std::vector<EncoderInfo> infos_;
};

// The process-wide registry with the built-in encoders registered.
EncoderRegistry& encoder_registry();

// Registration hooks, one per built-in encoder (defined in its source file).
void register_hashing_encoder(EncoderRegistry& registry);
void register_glove_encoder(EncoderRegistry& registry);
void register_bert_encoder(EncoderRegistry& registry);

}  // namespace fewrec::text

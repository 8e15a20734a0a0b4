// On-disk embedding cache: vectors keyed by (encoder identity, text hash).
// One append-only file per encoder identity under `dir`; each record carries
// a checksum, so a torn write (crash) only loses that record: the file is
// cut back to its last good record on open.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "fewrec/core/monitor.h"
#include "fewrec/text/encoder.h"

namespace fewrec::text {

class EmbeddingCache {
 public:
  // Opens (or creates) the cache file of `encoder` in `dir`. A file whose
  // header names another identity or dimension is an error (kCorrupt).
  EmbeddingCache(const std::filesystem::path& dir, const TextEncoder& encoder);

  // Vectors of `texts` ([n x dim]): cached ones are read, the others encoded
  // in batches of `batch` (progress on `monitor`) and appended to the file.
  Matrix encode(std::span<const std::string> texts, core::Monitor& monitor, int64_t batch = 256);

  const std::filesystem::path& file() const { return file_; }
  int64_t size() const { return static_cast<int64_t>(index_.size()); }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  struct Key {
    uint64_t a = 0, b = 0;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return static_cast<size_t>(k.a ^ (k.b * 0x9e3779b97f4a7c15ull)); }
  };
  static Key key_of(std::string_view text);
  void append(const std::vector<Key>& keys, const Matrix& vectors);

  const TextEncoder& encoder_;
  std::filesystem::path file_;
  int64_t dim_ = 0;
  std::vector<float> vectors_;
  std::unordered_map<Key, int64_t, KeyHash> index_;  // -> row in vectors_
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace fewrec::text

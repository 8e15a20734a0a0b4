#include "fewrec/text/cache.h"

#include <cstdio>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "fewrec/core/error.h"
#include "options.h"

namespace fewrec::text {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'F', 'W', 'E', 'M', 'B', '0', '0', '1'};

uint64_t checksum(const char* data, size_t n) { return fnv1a64(std::string_view(data, n)); }

}  // namespace

EmbeddingCache::Key EmbeddingCache::key_of(std::string_view text) {
  return {fnv1a64(text), fnv1a64(text, 0x84222325cbf29ce4ull) ^ text.size()};
}

EmbeddingCache::EmbeddingCache(const fs::path& dir, const TextEncoder& encoder) : encoder_(encoder) {
  const std::string identity = encoder.identity();
  dim_ = encoder.dim();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) FEWREC_THROW(kIo, "embedding cache: cannot create `{}`: {}", dir.string(), ec.message());
  file_ = dir / fmt::format("{:016x}.emb", fnv1a64(identity));

  // Header: magic | u32 identity length | identity | u64 dim.
  std::string header(kMagic, 8);
  const auto id_len = static_cast<uint32_t>(identity.size());
  header.append(reinterpret_cast<const char*>(&id_len), 4);
  header += identity;
  const auto dim = static_cast<uint64_t>(dim_);
  header.append(reinterpret_cast<const char*>(&dim), 8);

  std::string bytes;
  if (fs::exists(file_)) {
    std::ifstream in(file_, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  if (bytes.size() < header.size()) {
    // New (or torn before its header was complete): start over.
    std::ofstream out(file_, std::ios::binary | std::ios::trunc);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    if (!out) FEWREC_THROW(kIo, "embedding cache: cannot write `{}`", file_.string());
    return;
  }
  if (bytes.compare(0, header.size(), header) != 0)
    FEWREC_THROW(kCorrupt, "embedding cache `{}`: header does not match encoder `{}` (dim {}); delete the file",
                 file_.string(), identity, dim_);
  const size_t record = 16 + static_cast<size_t>(dim_) * 4 + 8;
  size_t pos = header.size();
  while (pos + record <= bytes.size()) {
    uint64_t sum;
    std::memcpy(&sum, bytes.data() + pos + record - 8, 8);
    if (sum != checksum(bytes.data() + pos, record - 8)) break;
    Key k;
    std::memcpy(&k.a, bytes.data() + pos, 8);
    std::memcpy(&k.b, bytes.data() + pos + 8, 8);
    const size_t row = vectors_.size() / static_cast<size_t>(dim_);
    vectors_.resize(vectors_.size() + static_cast<size_t>(dim_));
    std::memcpy(vectors_.data() + row * static_cast<size_t>(dim_), bytes.data() + pos + 16,
                static_cast<size_t>(dim_) * 4);
    index_[k] = static_cast<int64_t>(row);
    pos += record;
  }
  if (pos != bytes.size()) fs::resize_file(file_, pos);  // drop a torn or damaged tail
}

void EmbeddingCache::append(const std::vector<Key>& keys, const Matrix& m) {
  std::string out;
  const size_t record = 16 + static_cast<size_t>(dim_) * 4 + 8;
  out.reserve(keys.size() * record);
  for (size_t i = 0; i < keys.size(); ++i) {
    const size_t start = out.size();
    out.append(reinterpret_cast<const char*>(&keys[i].a), 8);
    out.append(reinterpret_cast<const char*>(&keys[i].b), 8);
    out.append(reinterpret_cast<const char*>(m.row(static_cast<int64_t>(i))), static_cast<size_t>(dim_) * 4);
    const uint64_t sum = checksum(out.data() + start, record - 8);
    out.append(reinterpret_cast<const char*>(&sum), 8);
  }
  std::FILE* f = std::fopen(file_.c_str(), "ab");
  if (!f) FEWREC_THROW(kIo, "embedding cache: cannot append to `{}`", file_.string());
  const size_t written = std::fwrite(out.data(), 1, out.size(), f);
  const bool ok = std::fclose(f) == 0 && written == out.size();
  if (!ok) FEWREC_THROW(kIo, "embedding cache: write to `{}` failed", file_.string());
}

Matrix EmbeddingCache::encode(std::span<const std::string> texts, core::Monitor& monitor, int64_t batch) {
  FEWREC_CHECK(batch > 0, kInvalidArgument, "embedding cache: batch must be positive, got {}", batch);
  Matrix result{static_cast<int64_t>(texts.size()), dim_, {}};
  result.data.assign(static_cast<size_t>(result.rows * dim_), 0.0f);
  // Misses, de-duplicated: text -> first position.
  std::vector<size_t> todo;
  std::unordered_map<Key, std::vector<size_t>, KeyHash> pending;
  for (size_t i = 0; i < texts.size(); ++i) {
    const Key k = key_of(texts[i]);
    if (auto it = index_.find(k); it != index_.end()) {
      std::memcpy(result.row(static_cast<int64_t>(i)), vectors_.data() + it->second * dim_,
                  static_cast<size_t>(dim_) * 4);
      ++hits_;
      continue;
    }
    auto [it, fresh] = pending.try_emplace(k);
    if (fresh) todo.push_back(i);
    it->second.push_back(i);
  }
  for (size_t start = 0; start < todo.size(); start += static_cast<size_t>(batch)) {
    const size_t end = std::min(todo.size(), start + static_cast<size_t>(batch));
    std::vector<std::string> chunk;
    std::vector<Key> keys;
    for (size_t j = start; j < end; ++j) {
      chunk.push_back(texts[todo[j]]);
      keys.push_back(key_of(texts[todo[j]]));
    }
    Matrix m = encoder_.encode(chunk);
    FEWREC_CHECK(m.rows == static_cast<int64_t>(chunk.size()) && m.cols == dim_, kInternal,
                 "encoder returned [{} x {}] for {} texts of dim {}", m.rows, m.cols, chunk.size(), dim_);
    append(keys, m);
    for (size_t j = 0; j < chunk.size(); ++j) {
      const size_t row = vectors_.size() / static_cast<size_t>(dim_);
      vectors_.insert(vectors_.end(), m.row(static_cast<int64_t>(j)), m.row(static_cast<int64_t>(j)) + dim_);
      index_[keys[j]] = static_cast<int64_t>(row);
      for (size_t pos : pending[keys[j]]) {
        std::memcpy(result.row(static_cast<int64_t>(pos)), m.row(static_cast<int64_t>(j)), static_cast<size_t>(dim_) * 4);
        ++misses_;
      }
    }
    monitor.progress("encode", static_cast<int64_t>(end), static_cast<int64_t>(todo.size()));
  }
  return result;
}

}  // namespace fewrec::text

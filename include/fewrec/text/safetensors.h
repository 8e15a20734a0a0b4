// safetensors reader: memory-mapped, validated on open, no LibTorch.
//
// Format: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {...}}, then the data area; offsets are relative to the
// start of the data area. Every file is untrusted input: the header length is
// bounded (<= 100 MB and <= the file size), each tensor's byte size must equal
// product(shape) x dtype size, offsets must lie inside the data area and
// tensors must not overlap. Any violation is a kCorrupt error naming the file
// and the tensor. `__metadata__` is ignored.
//
// Sharded checkpoints (model.safetensors.index.json: {"weight_map":
// {"tensor": "shard-file"}}) open as one SafetensorsCheckpoint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fewrec::text {

// Every dtype of the safetensors format. Reading as float supports F32, F16,
// BF16 and F64; the others are recognised (so their sizes validate) but
// rejected with a clear error when read as float.
enum class SafetensorsDType { kBool, kU8, kI8, kF8E4M3, kF8E5M2, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

const char* dtype_name(SafetensorsDType dtype);  // "F32", "BF16", ...
size_t dtype_size(SafetensorsDType dtype);       // bytes per element

struct SafetensorInfo {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data area
  uint64_t end = 0;
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
  std::string shape_string() const;  // "[30522, 384]"
};

// One .safetensors file, memory-mapped read-only for its lifetime.
class SafetensorsFile {
 public:
  // kNotFound (missing file), kIo (cannot open / map), kCorrupt (validation).
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  uint64_t header_size() const { return header_size_; }
  // Sorted by name.
  const std::vector<SafetensorInfo>& tensors() const { return tensors_; }
  const SafetensorInfo* find(std::string_view name) const;  // nullptr if absent
  const SafetensorInfo& at(std::string_view name) const;    // kNotFound naming the file
  // The raw little-endian bytes of a tensor (inside the mapping).
  std::span<const std::byte> bytes(const SafetensorInfo& info) const;
  // Converts to float32 into `out` (size numel()); kUnavailable for dtypes
  // other than F32 / F16 / BF16 / F64.
  void read_f32(const SafetensorInfo& info, std::span<float> out) const;
  std::vector<float> read_f32(std::string_view name) const;
  // Cheap content checksum: size, the whole header and sampled data bytes
  // (all bytes for files up to 16 MB). 16 hex digits.
  std::string fingerprint() const;

 private:
  std::filesystem::path path_;
  const std::byte* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t header_size_ = 0;
  std::vector<SafetensorInfo> tensors_;
};

// A whole checkpoint: a single file, or the shards of an index.json.
class SafetensorsCheckpoint {
 public:
  // `path` is a .safetensors file, a *.index.json, or a directory holding
  // model.safetensors (preferred) or model.safetensors.index.json.
  static SafetensorsCheckpoint open(const std::filesystem::path& path);

  // What the checkpoint was opened from (the file or the index).
  const std::filesystem::path& source() const { return source_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(std::string_view name) const;
  const SafetensorInfo* find(std::string_view name) const;
  // kNotFound naming the checkpoint and the tensor.
  const SafetensorInfo& info(std::string_view name) const;
  const SafetensorsFile& file_of(std::string_view name) const;
  std::vector<float> read_f32(std::string_view name) const;
  void read_f32(std::string_view name, std::span<float> out) const;
  // Fingerprints of every file combined (16 hex digits).
  std::string fingerprint() const;
  // Bytes of all files.
  uint64_t total_size() const;

 private:
  struct Entry {
    const SafetensorsFile* file;
    const SafetensorInfo* info;
  };
  std::filesystem::path source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry, std::less<>> index_;
};

// IEEE half / bfloat16 bits to float (exact).
float half_to_float(uint16_t bits);
float bfloat16_to_float(uint16_t bits);

}  // namespace fewrec::text

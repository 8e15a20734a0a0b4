// Artifacts: the versioned binary container for trained models and other
// saved state. Artifacts are untrusted input: every read is bounds-checked.
//
// Layout (little-endian):
//   magic "FEWRECAF" (8 bytes) | format version u32 | kind (u32 len + bytes)
//   | section count u64
//   | per section: name (u32 len + bytes), type tag u8, payload length u64, payload
//   | checksum u64 (FNV-1a 64 over every byte before it)
// Writes go to a temporary file which is fsync'ed and renamed over the target,
// so a crash never leaves a half-written artifact under the final name.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/core/error.h"

namespace fewrec::core {

inline constexpr char kArtifactMagic[8] = {'F', 'E', 'W', 'R', 'E', 'C', 'A', 'F'};
inline constexpr uint32_t kArtifactFormatVersion = 1;

enum class SectionType : uint8_t {
  kBytes = 0,
  kString = 1,
  kJson = 2,
  kI32 = 3,
  kI64 = 4,
  kF32 = 5,
  kF64 = 6,
  kU8 = 7,
  kU16 = 8,
};

template <class T>
constexpr SectionType section_type_of() {
  if constexpr (std::is_same_v<T, int32_t>) return SectionType::kI32;
  else if constexpr (std::is_same_v<T, int64_t>) return SectionType::kI64;
  else if constexpr (std::is_same_v<T, float>) return SectionType::kF32;
  else if constexpr (std::is_same_v<T, double>) return SectionType::kF64;
  else if constexpr (std::is_same_v<T, uint8_t>) return SectionType::kU8;
  else if constexpr (std::is_same_v<T, uint16_t>) return SectionType::kU16;
  else static_assert(sizeof(T) == 0, "unsupported artifact array type");
}

class ArtifactWriter {
 public:
  // `kind` says what the artifact holds ("model", "split"); checked on read.
  explicit ArtifactWriter(std::string kind);

  void put_string(const std::string& name, std::string_view value);
  void put_json(const std::string& name, const nlohmann::json& value);
  template <class T>
  void put_array(const std::string& name, std::span<const T> values) {
    put_raw(name, section_type_of<T>(), values.data(), values.size_bytes());
  }
  template <class T>
  void put_array(const std::string& name, const std::vector<T>& values) {
    put_array<T>(name, std::span<const T>(values));
  }
  void put_i64(const std::string& name, int64_t v) { put_array<int64_t>(name, std::span<const int64_t>(&v, 1)); }
  void put_f64(const std::string& name, double v) { put_array<double>(name, std::span<const double>(&v, 1)); }
  // Strings as one section (u32 count, then u32 len + bytes each).
  void put_strings(const std::string& name, const std::vector<std::string>& values);

  // Serialises to bytes (for tests) or to a file (atomic rename + fsync).
  std::string to_bytes() const;
  void save(const std::filesystem::path& path) const;

 private:
  void put_raw(const std::string& name, SectionType type, const void* data, size_t bytes);
  std::string kind_;
  std::vector<std::pair<std::string, std::pair<SectionType, std::string>>> sections_;
};

class ArtifactReader {
 public:
  // Validates magic, version, kind, section table and checksum; any mismatch
  // is kCorrupt naming `origin` and what was wrong.
  static ArtifactReader from_bytes(std::string bytes, std::string_view expected_kind,
                                   std::string origin = "<memory>");
  static ArtifactReader open(const std::filesystem::path& path, std::string_view expected_kind);

  const std::string& kind() const { return kind_; }
  uint32_t version() const { return version_; }
  const std::string& origin() const { return origin_; }
  bool has(std::string_view name) const;
  std::vector<std::string> names() const;

  std::string get_string(std::string_view name) const;
  nlohmann::json get_json(std::string_view name) const;
  template <class T>
  std::vector<T> get_array(std::string_view name) const {
    const auto& [type, payload] = section(name, section_type_of<T>());
    if (payload.size() % sizeof(T) != 0)
      FEWREC_THROW(kCorrupt, "artifact {}: section `{}` has {} bytes, not a multiple of {}", origin_,
                   name, payload.size(), sizeof(T));
    std::vector<T> out(payload.size() / sizeof(T));
    if (!out.empty()) std::memcpy(out.data(), payload.data(), payload.size());
    return out;
  }
  // Same, but also checks the element count.
  template <class T>
  std::vector<T> get_array(std::string_view name, size_t expected_size) const {
    auto out = get_array<T>(name);
    if (out.size() != expected_size)
      FEWREC_THROW(kCorrupt, "artifact {}: section `{}` has {} values, expected {}", origin_, name,
                   out.size(), expected_size);
    return out;
  }
  int64_t get_i64(std::string_view name) const;
  double get_f64(std::string_view name) const;
  std::vector<std::string> get_strings(std::string_view name) const;

 private:
  const std::pair<SectionType, std::string>& section(std::string_view name, SectionType type) const;
  std::string kind_;
  uint32_t version_ = 0;
  std::string origin_;
  std::map<std::string, std::pair<SectionType, std::string>, std::less<>> sections_;
};

// FNV-1a 64-bit.
uint64_t fnv1a64(const void* data, size_t bytes, uint64_t seed = 0xcbf29ce484222325ULL);

}  // namespace fewrec::core

#include "fewrec/text/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

static_assert(std::endian::native == std::endian::little, "the safetensors reader assumes a little-endian host");

namespace fs = std::filesystem;
using nlohmann::json;

namespace fewrec::text {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;    // 100 MB, as the reference implementation
constexpr uint64_t kMaxIndexBytes = 100ull << 20;
constexpr uint64_t kFullHashBytes = 16ull << 20;      // files up to 16 MB are hashed completely
constexpr uint64_t kSampleBytes = 4096;
constexpr uint64_t kSamples = 512;

struct DTypeName {
  const char* name;
  SafetensorsDType dtype;
  size_t size;
};

constexpr DTypeName kDTypes[] = {
    {"BOOL", SafetensorsDType::kBool, 1},       {"U8", SafetensorsDType::kU8, 1},
    {"I8", SafetensorsDType::kI8, 1},           {"F8_E4M3", SafetensorsDType::kF8E4M3, 1},
    {"F8_E5M2", SafetensorsDType::kF8E5M2, 1},  {"I16", SafetensorsDType::kI16, 2},
    {"U16", SafetensorsDType::kU16, 2},         {"F16", SafetensorsDType::kF16, 2},
    {"BF16", SafetensorsDType::kBF16, 2},       {"I32", SafetensorsDType::kI32, 4},
    {"U32", SafetensorsDType::kU32, 4},         {"F32", SafetensorsDType::kF32, 4},
    {"F64", SafetensorsDType::kF64, 8},         {"I64", SafetensorsDType::kI64, 8},
    {"U64", SafetensorsDType::kU64, 8},
};

bool parse_dtype(std::string_view s, SafetensorsDType& out) {
  for (const auto& d : kDTypes)
    if (s == d.name) {
      out = d.dtype;
      return true;
    }
  return false;
}

std::string known_dtypes() {
  std::vector<std::string> names;
  for (const auto& d : kDTypes) names.emplace_back(d.name);
  return core::join(names, ", ");
}

// A small 64-bit hash over bytes (multiply-xorshift on 8-byte words); not
// cryptographic, only to notice that weights changed.
class Hasher {
 public:
  void update(const std::byte* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      mix(w);
    }
    uint64_t tail = 0;
    if (i < n) {
      std::memcpy(&tail, p + i, n - i);
      mix(tail ^ (static_cast<uint64_t>(n - i) << 56));
    }
  }
  void update(uint64_t v) { mix(v); }
  uint64_t digest() const {
    uint64_t h = h_;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
  }

 private:
  void mix(uint64_t w) {
    h_ ^= w * 0x9e3779b97f4a7c15ull;
    h_ = std::rotl(h_, 27) * 0x94d049bb133111ebull + 0x2545f4914f6cdd1dull;
  }
  uint64_t h_ = 0x6a09e667f3bcc909ull;
};

std::string quoted(const fs::path& p) { return fmt::format("`{}`", p.string()); }

// Strips nlohmann's "[json.exception.parse_error.101] " prefix.
std::string json_message(const std::exception& e) {
  std::string m = e.what();
  if (m.rfind("[json.exception.", 0) == 0) {
    if (auto pos = m.find("] "); pos != std::string::npos) m = m.substr(pos + 2);
  }
  return core::excerpt(m, 200);
}

std::string shape_of(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A non-negative integer JSON value that fits uint64 (no floats, no negatives).
bool as_u64(const json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const auto i = v.get<int64_t>();
    if (i < 0) return false;
    out = static_cast<uint64_t>(i);
    return true;
  }
  return false;
}

}  // namespace

const char* dtype_name(SafetensorsDType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

size_t dtype_size(SafetensorsDType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

int64_t SafetensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string SafetensorInfo::shape_string() const { return shape_of(shape); }

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {
    // Subnormal half: normalise the mantissa.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

float bfloat16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

// ---------------------------------------------------------------- file

SafetensorsFile::SafetensorsFile(const fs::path& path) : path_(path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) FEWREC_THROW(kNotFound, "safetensors file {} not found", quoted(path));
  if (!fs::is_regular_file(status))
    FEWREC_THROW(kInvalidArgument, "safetensors file {} is not a regular file", quoted(path));

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) FEWREC_THROW(kIo, "cannot open safetensors file {}: {}", quoted(path), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    FEWREC_THROW(kIo, "cannot stat safetensors file {}: {}", quoted(path), std::strerror(err));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    FEWREC_THROW(kCorrupt, "safetensors file {} is truncated: {} bytes, less than the 8-byte header length",
                 quoted(path), size_);
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (m == MAP_FAILED) FEWREC_THROW(kIo, "cannot map safetensors file {}: {}", quoted(path), std::strerror(map_err));
  map_ = static_cast<const std::byte*>(m);

  try {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(map_[i]);
    header_size_ = n;
    if (n > kMaxHeaderBytes)
      FEWREC_THROW(kCorrupt, "safetensors file {}: header length {} exceeds the limit of {} bytes", quoted(path), n,
                   kMaxHeaderBytes);
    if (n > size_ - 8)
      FEWREC_THROW(kCorrupt, "safetensors file {} is truncated: header length {} but only {} bytes follow",
                   quoted(path), n, size_ - 8);
    if (n < 2) FEWREC_THROW(kCorrupt, "safetensors file {}: header length {} is too small for a JSON object", quoted(path), n);
    const uint64_t data_size = size_ - 8 - n;

    json header;
    try {
      const auto* begin = reinterpret_cast<const char*>(map_ + 8);
      header = json::parse(begin, begin + n);
    } catch (const json::exception& e) {
      FEWREC_THROW(kCorrupt, "safetensors file {}: header is not valid JSON: {}", quoted(path), json_message(e));
    }
    if (!header.is_object())
      FEWREC_THROW(kCorrupt, "safetensors file {}: header must be a JSON object, got {}", quoted(path),
                   header.type_name());

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") continue;
      const std::string where = fmt::format("safetensors file {}: tensor `{}`", quoted(path), core::excerpt(name));
      if (!entry.is_object()) FEWREC_THROW(kCorrupt, "{}: entry must be an object, got {}", where, entry.type_name());
      SafetensorInfo info;
      info.name = name;

      auto dt = entry.find("dtype");
      if (dt == entry.end() || !dt->is_string()) FEWREC_THROW(kCorrupt, "{}: missing string `dtype`", where);
      const auto& dts = dt->get_ref<const std::string&>();
      if (!parse_dtype(dts, info.dtype))
        FEWREC_THROW(kCorrupt, "{}: unknown dtype `{}` (known: {})", where, core::excerpt(dts), known_dtypes());

      auto sh = entry.find("shape");
      if (sh == entry.end() || !sh->is_array()) FEWREC_THROW(kCorrupt, "{}: missing array `shape`", where);
      uint64_t numel = 1;
      bool overflow = false;
      for (const auto& d : *sh) {
        uint64_t v = 0;
        if (!as_u64(d, v) || v > static_cast<uint64_t>(INT64_MAX))
          FEWREC_THROW(kCorrupt, "{}: shape entries must be non-negative integers, got {}", where,
                       core::excerpt(d.dump()));
        info.shape.push_back(static_cast<int64_t>(v));
        if (__builtin_mul_overflow(numel, v, &numel)) overflow = true;
      }
      uint64_t expected = 0;
      if (overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(info.dtype)), &expected))
        FEWREC_THROW(kCorrupt, "{}: shape {} is too large", where, shape_of(info.shape));

      auto off = entry.find("data_offsets");
      if (off == entry.end() || !off->is_array() || off->size() != 2 || !as_u64((*off)[0], info.begin) ||
          !as_u64((*off)[1], info.end))
        FEWREC_THROW(kCorrupt, "{}: `data_offsets` must be two non-negative integers [begin, end]", where);
      if (info.begin > info.end)
        FEWREC_THROW(kCorrupt, "{}: data_offsets [{}, {}] end before they begin", where, info.begin, info.end);
      if (info.end > data_size)
        FEWREC_THROW(kCorrupt, "{}: data_offsets [{}, {}] reach beyond the data area of {} bytes (file truncated?)",
                     where, info.begin, info.end, data_size);
      if (info.end - info.begin != expected)
        FEWREC_THROW(kCorrupt, "{}: shape {} of {} needs {} bytes but data_offsets [{}, {}] span {}", where,
                     shape_of(info.shape), dtype_name(info.dtype), expected, info.begin, info.end,
                     info.end - info.begin);
      tensors_.push_back(std::move(info));
    }

    // No two tensors may share bytes.
    std::vector<const SafetensorInfo*> by_offset;
    for (const auto& t : tensors_)
      if (t.end > t.begin) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const SafetensorInfo* a, const SafetensorInfo* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    for (size_t i = 1; i < by_offset.size(); ++i)
      if (by_offset[i]->begin < by_offset[i - 1]->end)
        FEWREC_THROW(kCorrupt, "safetensors file {}: tensor `{}` (bytes [{}, {})) overlaps tensor `{}` (bytes [{}, {}))",
                     quoted(path), core::excerpt(by_offset[i]->name), by_offset[i]->begin, by_offset[i]->end,
                     core::excerpt(by_offset[i - 1]->name), by_offset[i - 1]->begin, by_offset[i - 1]->end);
    std::sort(tensors_.begin(), tensors_.end(),
              [](const SafetensorInfo& a, const SafetensorInfo& b) { return a.name < b.name; });
  } catch (...) {
    ::munmap(const_cast<std::byte*>(map_), size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<std::byte*>(map_), size_);
}

const SafetensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const SafetensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const SafetensorInfo& SafetensorsFile::at(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  FEWREC_THROW(kNotFound, "safetensors file {} has no tensor `{}`", quoted(path_), core::excerpt(name));
}

std::span<const std::byte> SafetensorsFile::bytes(const SafetensorInfo& info) const {
  FEWREC_ASSERT(info.end >= info.begin && info.end <= size_ - 8 - header_size_);
  return {map_ + 8 + header_size_ + info.begin, static_cast<size_t>(info.end - info.begin)};
}

void SafetensorsFile::read_f32(const SafetensorInfo& info, std::span<float> out) const {
  const auto n = static_cast<size_t>(info.numel());
  FEWREC_ASSERT(out.size() == n);
  const auto b = bytes(info);
  const std::byte* p = b.data();
  switch (info.dtype) {
    case SafetensorsDType::kF32:
      if (n) std::memcpy(out.data(), p, n * 4);
      return;
    case SafetensorsDType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = half_to_float(v);
      }
      return;
    case SafetensorsDType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = bfloat16_to_float(v);
      }
      return;
    case SafetensorsDType::kF64:
      for (size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        out[i] = static_cast<float>(v);
      }
      return;
    default:
      FEWREC_THROW(kUnavailable,
                   "safetensors file {}: tensor `{}` has dtype {}; only F32, F16, BF16 and F64 can be read as float",
                   quoted(path_), core::excerpt(info.name), dtype_name(info.dtype));
  }
}

std::vector<float> SafetensorsFile::read_f32(std::string_view name) const {
  const auto& info = at(name);
  std::vector<float> out(static_cast<size_t>(info.numel()));
  read_f32(info, out);
  return out;
}

std::string SafetensorsFile::fingerprint() const {
  Hasher h;
  h.update(size_);
  if (size_ <= kFullHashBytes) {
    h.update(map_, size_);
  } else {
    h.update(map_, 8 + header_size_);
    const uint64_t data_begin = 8 + header_size_;
    const uint64_t data_size = size_ - data_begin;
    for (uint64_t s = 0; s < kSamples; ++s) {
      // Evenly spaced samples; the last one ends at the end of the file.
      const uint64_t span = data_size > kSampleBytes ? data_size - kSampleBytes : 0;
      const uint64_t at = data_begin + span * s / (kSamples - 1);
      h.update(map_ + at, static_cast<size_t>(std::min(kSampleBytes, size_ - at)));
    }
  }
  return fmt::format("{:016x}", h.digest());
}

// ---------------------------------------------------------------- checkpoint

namespace {

std::string read_small_file(const fs::path& path, uint64_t limit, const char* what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) FEWREC_THROW(kNotFound, "{} {} not found", what, quoted(path));
  const auto size = fs::file_size(path, ec);
  if (ec) FEWREC_THROW(kIo, "cannot read {} {}: {}", what, quoted(path), ec.message());
  if (size > limit) FEWREC_THROW(kCorrupt, "{} {} is too large ({} bytes; limit {})", what, quoted(path), size, limit);
  std::ifstream in(path, std::ios::binary);
  if (!in) FEWREC_THROW(kIo, "cannot open {} {}", what, quoted(path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const fs::path& path) {
  SafetensorsCheckpoint c;
  std::error_code ec;
  fs::path p = path;
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "model.safetensors", ec)) {
      p = p / "model.safetensors";
    } else if (fs::exists(p / "model.safetensors.index.json", ec)) {
      p = p / "model.safetensors.index.json";
    } else {
      FEWREC_THROW(kNotFound, "no model.safetensors or model.safetensors.index.json in {}", quoted(path));
    }
  }
  c.source_ = p;
  const std::string fname = p.filename().string();
  if (fname.size() >= 5 && fname.compare(fname.size() - 5, 5, ".json") == 0) {
    const std::string text = read_small_file(p, kMaxIndexBytes, "safetensors index");
    json index;
    try {
      index = json::parse(text);
    } catch (const json::exception& e) {
      FEWREC_THROW(kCorrupt, "safetensors index {} is not valid JSON: {}", quoted(p), json_message(e));
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      FEWREC_THROW(kCorrupt, "safetensors index {}: missing object `weight_map`", quoted(p));
    const json& map = index["weight_map"];
    if (map.empty()) FEWREC_THROW(kCorrupt, "safetensors index {}: `weight_map` is empty", quoted(p));
    std::map<std::string, std::string> tensor_to_shard;
    std::set<std::string> shards;
    for (const auto& [name, shard] : map.items()) {
      if (!shard.is_string())
        FEWREC_THROW(kCorrupt, "safetensors index {}: tensor `{}` must map to a file name, got {}", quoted(p),
                     core::excerpt(name), shard.type_name());
      const auto& s = shard.get_ref<const std::string&>();
      const fs::path sp(s);
      bool bad = s.empty() || sp.is_absolute();
      for (const auto& part : sp)
        if (part == "..") bad = true;
      if (bad)
        FEWREC_THROW(kCorrupt, "safetensors index {}: tensor `{}` maps to `{}`, which is not a file name inside {}",
                     quoted(p), core::excerpt(name), core::excerpt(s), quoted(p.parent_path()));
      tensor_to_shard[name] = s;
      shards.insert(s);
    }
    std::map<std::string, const SafetensorsFile*> opened;
    for (const auto& s : shards) {
      c.files_.push_back(std::make_unique<SafetensorsFile>(p.parent_path() / s));
      opened[s] = c.files_.back().get();
    }
    for (const auto& [name, s] : tensor_to_shard) {
      const SafetensorsFile* f = opened.at(s);
      const SafetensorInfo* info = f->find(name);
      if (!info)
        FEWREC_THROW(kCorrupt, "safetensors index {} maps tensor `{}` to {}, which does not contain it", quoted(p),
                     core::excerpt(name), quoted(f->path()));
      c.index_.emplace(name, Entry{f, info});
    }
  } else {
    c.files_.push_back(std::make_unique<SafetensorsFile>(p));
    for (const auto& t : c.files_.back()->tensors()) c.index_.emplace(t.name, Entry{c.files_.back().get(), &t});
  }
  return c;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, e] : index_) out.push_back(name);
  return out;
}

bool SafetensorsCheckpoint::contains(std::string_view name) const { return index_.find(name) != index_.end(); }

const SafetensorInfo* SafetensorsCheckpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.info;
}

const SafetensorInfo& SafetensorsCheckpoint::info(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    FEWREC_THROW(kNotFound, "checkpoint {} has no tensor `{}`", quoted(source_), core::excerpt(name));
  return *it->second.info;
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    FEWREC_THROW(kNotFound, "checkpoint {} has no tensor `{}`", quoted(source_), core::excerpt(name));
  return *it->second.file;
}

void SafetensorsCheckpoint::read_f32(std::string_view name, std::span<float> out) const {
  file_of(name).read_f32(info(name), out);
}

std::vector<float> SafetensorsCheckpoint::read_f32(std::string_view name) const {
  std::vector<float> out(static_cast<size_t>(info(name).numel()));
  read_f32(name, out);
  return out;
}

std::string SafetensorsCheckpoint::fingerprint() const {
  Hasher h;
  for (const auto& f : files_) {
    const std::string fp = f->fingerprint();
    h.update(reinterpret_cast<const std::byte*>(fp.data()), fp.size());
  }
  return fmt::format("{:016x}", h.digest());
}

uint64_t SafetensorsCheckpoint::total_size() const {
  uint64_t n = 0;
  for (const auto& f : files_) n += f->file_size();
  return n;
}

}  // namespace fewrec::text

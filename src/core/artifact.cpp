#include "fewrec/core/artifact.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "fewrec/core/strings.h"

namespace fewrec::core {

static_assert(std::endian::native == std::endian::little,
              "artifact arrays are stored little-endian; add byte swapping for big-endian hosts");

namespace {

const char* section_type_name(SectionType t) {
  switch (t) {
    case SectionType::kBytes: return "bytes";
    case SectionType::kString: return "string";
    case SectionType::kJson: return "json";
    case SectionType::kI32: return "i32";
    case SectionType::kI64: return "i64";
    case SectionType::kF32: return "f32";
    case SectionType::kF64: return "f64";
    case SectionType::kU8: return "u8";
    case SectionType::kU16: return "u16";
  }
  return "unknown";
}

constexpr uint8_t kMaxSectionType = static_cast<uint8_t>(SectionType::kU16);

template <class T>
void append_le(std::string& out, T v) {
  static_assert(std::is_unsigned_v<T>);
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void append_u32_len(std::string& out, size_t n, std::string_view what) {
  if (n > std::numeric_limits<uint32_t>::max())
    FEWREC_THROW(kInvalidArgument, "artifact: {} is too long ({} bytes, at most 4 GiB)", what, n);
  append_le<uint32_t>(out, static_cast<uint32_t>(n));
}

// Bounds-checked little-endian reader over untrusted bytes. Every read checks
// the remaining length first; lengths are compared against what is left, never
// added to the position before the check (no overflow).
class Cursor {
 public:
  Cursor(std::string_view bytes, const std::string& origin, std::string_view context)
      : bytes_(bytes), origin_(origin), context_(context) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }

  template <class T>
  T read(std::string_view what, int64_t index = -1) {
    need(sizeof(T), what, index);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      v |= static_cast<T>(static_cast<unsigned char>(bytes_[pos_ + i])) << (8 * i);
    pos_ += sizeof(T);
    return v;
  }

  std::string_view take(uint64_t n, std::string_view what, int64_t index = -1) {
    need(n, what, index);
    std::string_view out = bytes_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return out;
  }

  // `index` >= 0 is appended to `what` ("string #3") so callers in hot loops
  // need not format a message per read.
  void need(uint64_t n, std::string_view what, int64_t index = -1) const {
    if (n > remaining())
      FEWREC_THROW(kCorrupt, "artifact {}: truncated{}: {}{} needs {} bytes but only {} remain", origin_,
                   context_, what, index >= 0 ? fmt::format(" #{}", index) : std::string(), n,
                   remaining());
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
  const std::string& origin_;
  std::string_view context_;
};

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

// ---------------------------------------------------------------------------
// Writer

ArtifactWriter::ArtifactWriter(std::string kind) : kind_(std::move(kind)) {}

void ArtifactWriter::put_raw(const std::string& name, SectionType type, const void* data, size_t bytes) {
  for (const auto& s : sections_)
    if (s.first == name)
      FEWREC_THROW(kInvalidArgument, "artifact ({}): section `{}` written twice", kind_, name);
  std::string payload;
  if (bytes > 0) payload.assign(static_cast<const char*>(data), bytes);
  sections_.emplace_back(name, std::make_pair(type, std::move(payload)));
}

void ArtifactWriter::put_string(const std::string& name, std::string_view value) {
  put_raw(name, SectionType::kString, value.data(), value.size());
}

void ArtifactWriter::put_json(const std::string& name, const nlohmann::json& value) {
  std::string text;
  try {
    text = value.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a string that is not UTF-8
    FEWREC_THROW(kInvalidArgument, "artifact ({}): section `{}` cannot be written as JSON: {}", kind_, name,
                 e.what());
  }
  put_raw(name, SectionType::kJson, text.data(), text.size());
}

void ArtifactWriter::put_strings(const std::string& name, const std::vector<std::string>& values) {
  std::string payload;
  append_u32_len(payload, values.size(), fmt::format("string list `{}`", name));
  for (const std::string& v : values) {
    append_u32_len(payload, v.size(), fmt::format("a string in `{}`", name));
    payload += v;
  }
  put_raw(name, SectionType::kBytes, payload.data(), payload.size());
}

std::string ArtifactWriter::to_bytes() const {
  std::string out(kArtifactMagic, sizeof(kArtifactMagic));
  append_le<uint32_t>(out, kArtifactFormatVersion);
  append_u32_len(out, kind_.size(), "kind");
  out += kind_;
  append_le<uint64_t>(out, sections_.size());
  for (const auto& [name, section] : sections_) {
    append_u32_len(out, name.size(), "section name");
    out += name;
    out.push_back(static_cast<char>(section.first));
    append_le<uint64_t>(out, section.second.size());
    out += section.second;
  }
  append_le<uint64_t>(out, fnv1a64(out.data(), out.size()));
  return out;
}

void ArtifactWriter::save(const std::filesystem::path& path) const {
  const std::string bytes = to_bytes();
  const std::string target = path.string();
  const std::string tmp = target + ".tmp." + std::to_string(::getpid());

  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    FEWREC_THROW(kIo, "cannot write artifact `{}` (open `{}`): {}", target, tmp, errno_text(errno));
  auto fail = [&](const char* step) {
    const int err = errno;
    if (f) std::fclose(f);
    ::unlink(tmp.c_str());
    FEWREC_THROW(kIo, "cannot write artifact `{}` ({} `{}`): {}", target, step, tmp, errno_text(err));
  };
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) fail("write");
  if (std::fflush(f) != 0) fail("flush");
  if (::fsync(::fileno(f)) != 0) fail("fsync");
  const int rc = std::fclose(f);
  f = nullptr;
  if (rc != 0) fail("close");
  if (::rename(tmp.c_str(), target.c_str()) != 0) fail("rename");

  // Make the rename itself durable.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    FEWREC_THROW(kIo, "cannot sync directory `{}` of artifact `{}`: {}", dir.string(), target,
                 errno_text(errno));
  const int src = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (src != 0 && err != EINVAL)  // some filesystems cannot fsync a directory
    FEWREC_THROW(kIo, "cannot sync directory `{}` of artifact `{}`: {}", dir.string(), target,
                 errno_text(err));
}

// ---------------------------------------------------------------------------
// Reader

ArtifactReader ArtifactReader::from_bytes(std::string bytes, std::string_view expected_kind,
                                          std::string origin) {
  ArtifactReader r;
  r.origin_ = std::move(origin);
  const std::string& o = r.origin_;
  const std::string_view all(bytes);

  if (all.size() < sizeof(kArtifactMagic) ||
      std::memcmp(all.data(), kArtifactMagic, sizeof(kArtifactMagic)) != 0) {
    if (all.empty()) FEWREC_THROW(kCorrupt, "artifact {}: not a fewrec artifact (the file is empty)", o);
    FEWREC_THROW(kCorrupt, "artifact {}: not a fewrec artifact (bad magic number)", o);
  }
  Cursor c(all, o, "");
  c.take(sizeof(kArtifactMagic), "magic");
  r.version_ = c.read<uint32_t>("format version");
  if (r.version_ != kArtifactFormatVersion)
    FEWREC_THROW(kCorrupt, "artifact {}: unsupported format version {} (this build supports version {})",
                 o, r.version_, kArtifactFormatVersion);

  const uint32_t kind_len = c.read<uint32_t>("kind length");
  r.kind_ = std::string(c.take(kind_len, "kind"));

  const uint64_t count = c.read<uint64_t>("section count");
  // Each section takes at least 4 (name length) + 1 (type) + 8 (payload length) bytes.
  constexpr uint64_t kMinSection = 4 + 1 + 8;
  if (count > c.remaining() / kMinSection)
    FEWREC_THROW(kCorrupt, "artifact {}: section count {} cannot fit in the remaining {} bytes", o, count,
                 c.remaining());
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t name_len = c.read<uint32_t>(fmt::format("name length of section #{}", i));
    std::string name(c.take(name_len, fmt::format("name of section #{}", i)));
    const uint8_t tag = c.read<uint8_t>(fmt::format("type of section `{}`", excerpt(name)));
    if (tag > kMaxSectionType)
      FEWREC_THROW(kCorrupt, "artifact {}: section `{}` has unknown type tag {}", o, excerpt(name), tag);
    const uint64_t len = c.read<uint64_t>(fmt::format("payload length of section `{}`", excerpt(name)));
    std::string payload(c.take(len, fmt::format("payload of section `{}`", excerpt(name))));
    if (r.sections_.count(name))
      FEWREC_THROW(kCorrupt, "artifact {}: duplicate section `{}`", o, excerpt(name));
    r.sections_.emplace(std::move(name), std::make_pair(static_cast<SectionType>(tag), std::move(payload)));
  }

  const size_t body_end = c.pos();
  if (c.remaining() < sizeof(uint64_t))
    FEWREC_THROW(kCorrupt, "artifact {}: checksum mismatch: file is corrupt or truncated "
                 "(missing checksum)", o);
  const uint64_t stored = c.read<uint64_t>("checksum");
  if (c.remaining() != 0)
    FEWREC_THROW(kCorrupt, "artifact {}: {} unexpected trailing bytes after the checksum", o, c.remaining());
  if (stored != fnv1a64(all.data(), body_end))
    FEWREC_THROW(kCorrupt, "artifact {}: checksum mismatch: file is corrupt or truncated", o);

  if (!expected_kind.empty() && r.kind_ != expected_kind)
    FEWREC_THROW(kCorrupt, "artifact {}: holds a `{}`, expected a `{}`", o, excerpt(r.kind_), expected_kind);
  return r;
}

ArtifactReader ArtifactReader::open(const std::filesystem::path& path, std::string_view expected_kind) {
  const std::string p = path.string();
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) {
    const int err = errno;
    if (err == ENOENT) FEWREC_THROW(kNotFound, "cannot open artifact `{}`: {}", p, errno_text(err));
    FEWREC_THROW(kIo, "cannot open artifact `{}`: {}", p, errno_text(err));
  }
  std::string bytes;
  struct stat st {};
  if (::fstat(::fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    std::fclose(f);
    FEWREC_THROW(kIo, "cannot read artifact `{}`: {}", p, errno_text(EISDIR));
  }
  if (st.st_size > 0) bytes.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  while (true) {
    const size_t n = std::fread(buf, 1, sizeof(buf), f);
    bytes.append(buf, n);
    if (n < sizeof(buf)) break;
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) FEWREC_THROW(kIo, "cannot read artifact `{}`: {}", p, errno_text(err));
  return from_bytes(std::move(bytes), expected_kind, p);
}

bool ArtifactReader::has(std::string_view name) const { return sections_.find(name) != sections_.end(); }

std::vector<std::string> ArtifactReader::names() const {
  std::vector<std::string> out;
  for (const auto& [name, s] : sections_) out.push_back(name);
  return out;
}

const std::pair<SectionType, std::string>& ArtifactReader::section(std::string_view name,
                                                                   SectionType type) const {
  auto it = sections_.find(name);
  if (it == sections_.end())
    FEWREC_THROW(kNotFound, "artifact {}: missing section `{}`", origin_, name);
  if (it->second.first != type)
    FEWREC_THROW(kCorrupt, "artifact {}: section `{}` has type {}, expected {}", origin_, name,
                 section_type_name(it->second.first), section_type_name(type));
  return it->second;
}

std::string ArtifactReader::get_string(std::string_view name) const {
  return section(name, SectionType::kString).second;
}

nlohmann::json ArtifactReader::get_json(std::string_view name) const {
  const std::string& payload = section(name, SectionType::kJson).second;
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    FEWREC_THROW(kCorrupt, "artifact {}: section `{}` is not valid JSON", origin_, name);
  return j;
}

int64_t ArtifactReader::get_i64(std::string_view name) const { return get_array<int64_t>(name, 1)[0]; }

double ArtifactReader::get_f64(std::string_view name) const { return get_array<double>(name, 1)[0]; }

std::vector<std::string> ArtifactReader::get_strings(std::string_view name) const {
  const std::string& payload = section(name, SectionType::kBytes).second;
  const std::string context = fmt::format(" in section `{}`", name);
  Cursor c(payload, origin_, context);
  const uint32_t count = c.read<uint32_t>("string count");
  if (count > c.remaining() / 4)
    FEWREC_THROW(kCorrupt, "artifact {}: section `{}` claims {} strings but has only {} bytes", origin_,
                 name, count, c.remaining());
  std::vector<std::string> out;
  out.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t len = c.read<uint32_t>("length of string", i);
    out.emplace_back(c.take(len, "string", i));
  }
  if (c.remaining() != 0)
    FEWREC_THROW(kCorrupt, "artifact {}: section `{}` has {} unexpected trailing bytes", origin_, name,
                 c.remaining());
  return out;
}

}  // namespace fewrec::core

// Building blocks of the readers: buffered lines, fields, numbers, encodings,
// bad-line bookkeeping and the numeric id cache. See readers_internal.h.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "readers_internal.h"

namespace fewrec::data {

// ------------------------------------------------------------ public CSV

std::vector<std::string> split_csv_line(std::string_view line, char separator) {
  std::vector<std::string_view> views;
  std::string scratch, error;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!detail::split_fields(line, separator, true, views, scratch, error))
    FEWREC_THROW(kInvalidArgument, "{}", error);
  return {views.begin(), views.end()};
}

namespace detail {

// ---------------------------------------------------------------- files

void throw_open_error(const std::string& display, int err) {
  if (err == ENOENT || err == ENOTDIR)
    FEWREC_THROW(kNotFound, "cannot open `{}`: {}", display, std::strerror(err));
  FEWREC_THROW(kIo, "cannot open `{}`: {}", display, std::strerror(err));
}

LineReader::LineReader(const std::filesystem::path& path, std::string display, size_t buffer_size)
    : display_(display.empty() ? path.string() : std::move(display)) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw_open_error(display_, errno);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw_open_error(display_, err);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd_);
    FEWREC_THROW(kIo, "cannot open `{}`: Is a directory (expected a file)", display_);
  }
  file_size_ = static_cast<int64_t>(st.st_size);
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  // Small files get a buffer of their size: no 4 MB allocation per side file.
  cap_ = std::max<size_t>(4096, std::min<size_t>(buffer_size, static_cast<size_t>(file_size_) + 1));
  buf_.reset(new char[cap_]);
}

LineReader::~LineReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool all_ascii(const char* p, size_t n) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t a, b, c, d;
    std::memcpy(&a, p + i, 8);
    std::memcpy(&b, p + i + 8, 8);
    std::memcpy(&c, p + i + 16, 8);
    std::memcpy(&d, p + i + 24, 8);
    acc |= a | b | c | d;
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t a;
    std::memcpy(&a, p + i, 8);
    acc |= a;
  }
  uint8_t tail = 0;
  for (; i < n; ++i) tail |= static_cast<uint8_t>(p[i]);
  return ((acc & 0x8080808080808080ull) | (tail & 0x80u)) == 0;
}

// Moves the unread tail to the front and reads more. False at end of file
// with nothing left.
bool LineReader::refill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == cap_) {  // one line longer than the buffer: grow
    const size_t cap = cap_ * 2;
    std::unique_ptr<char[]> grown(new char[cap]);
    std::memcpy(grown.get(), buf_.get(), end_);
    buf_ = std::move(grown);
    cap_ = cap;
  }
  const size_t before = end_;
  while (end_ < cap_) {
    const ssize_t got = ::read(fd_, buf_.get() + end_, cap_ - end_);
    if (got < 0) {
      if (errno == EINTR) continue;
      FEWREC_THROW(kIo, "cannot read `{}`: {}", display_, std::strerror(errno));
    }
    if (got == 0) {
      eof_ = true;
      break;
    }
    end_ += static_cast<size_t>(got);
  }
  if (progress_ != nullptr && end_ > before) progress_->advance(static_cast<int64_t>(end_ - before));
  if (first_) {
    first_ = false;
    if (end_ >= 3 && std::memcmp(buf_.get(), "\xEF\xBB\xBF", 3) == 0) begin_ = 3;
  }
  ascii_ = all_ascii(buf_.get() + begin_, end_ - begin_);
  return end_ > begin_ || !eof_;
}

bool LineReader::next(std::string_view& line) {
  for (;;) {
    const char* start = buf_.get() + begin_;
    const size_t avail = end_ - begin_;
    const void* nl = avail ? std::memchr(start, '\n', avail) : nullptr;
    if (nl != nullptr) {
      size_t len = static_cast<size_t>(static_cast<const char*>(nl) - start);
      begin_ += len + 1;
      consumed_ += static_cast<int64_t>(len + 1);
      if (len > 0 && start[len - 1] == '\r') --len;
      line = std::string_view(start, len);
      ++line_no_;
      return true;
    }
    if (eof_) {
      if (avail == 0) return false;
      size_t len = avail;
      begin_ = end_;
      consumed_ += static_cast<int64_t>(len);
      if (start[len - 1] == '\r') --len;
      line = std::string_view(start, len);
      ++line_no_;
      return true;
    }
    if (!refill() && end_ == begin_) return false;
  }
}

// ------------------------------------------------------------- encoding

Encoding parse_encoding(std::string_view name) {
  const std::string n = core::to_lower(core::trim(name));
  if (n == "utf-8" || n == "utf8") return Encoding::kUtf8;
  if (n == "latin-1" || n == "latin1" || n == "iso-8859-1" || n == "iso8859-1") return Encoding::kLatin1;
  if (n == "auto") return Encoding::kAuto;
  FEWREC_THROW(kInvalidArgument, "unknown encoding `{}` (valid: utf-8, latin-1, auto)", name);
}

bool decode_line(std::string_view line, bool ascii, Encoding enc, std::string& scratch,
                 std::string_view& out, std::string& error) {
  if (ascii || all_ascii(line.data(), line.size())) {
    out = line;
    return true;
  }
  switch (enc) {
    case Encoding::kUtf8:
      if (core::is_valid_utf8(line)) {
        out = line;
        return true;
      }
      error = "invalid UTF-8 (set data.encoding=latin-1 for Latin-1 files)";
      return false;
    case Encoding::kAuto:
      if (core::is_valid_utf8(line)) {
        out = line;
        return true;
      }
      [[fallthrough]];
    case Encoding::kLatin1:
      scratch = core::latin1_to_utf8(line);
      out = scratch;
      return true;
  }
  out = line;
  return true;
}

// --------------------------------------------------------------- fields

bool split_fields(std::string_view line, char sep, bool quotes, std::vector<std::string_view>& fields,
                  std::string& scratch, std::string& error) {
  fields.clear();
  const char* p = line.data();
  const char* const end = p + line.size();
  bool scratch_ready = false;
  for (;;) {
    if (quotes && p < end && *p == '"') {
      if (!scratch_ready) {
        scratch.clear();
        scratch.reserve(line.size());  // unescaped text never exceeds the line: views stay valid
        scratch_ready = true;
      }
      const size_t start = scratch.size();
      ++p;
      bool closed = false;
      while (p < end) {
        const char* q = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(end - p)));
        if (q == nullptr) break;
        scratch.append(p, static_cast<size_t>(q - p));
        if (q + 1 < end && q[1] == '"') {  // doubled quote
          scratch.push_back('"');
          p = q + 2;
          continue;
        }
        p = q + 1;
        closed = true;
        break;
      }
      if (!closed) {
        error = "unterminated quoted field (a quoted field may not span lines)";
        return false;
      }
      // Lenient: text after the closing quote up to the separator is kept.
      const char* s = static_cast<const char*>(std::memchr(p, sep, static_cast<size_t>(end - p)));
      const char* stop = s ? s : end;
      scratch.append(p, static_cast<size_t>(stop - p));
      fields.emplace_back(scratch.data() + start, scratch.size() - start);
      if (s == nullptr) return true;
      p = s + 1;
      continue;
    }
    // Unquoted field: fields are short, a byte loop beats memchr calls.
    const char* s = p;
    while (s < end && *s != sep) ++s;
    fields.emplace_back(p, static_cast<size_t>(s - p));
    if (s == end) return true;
    p = s + 1;
  }
}

void split_fields(std::string_view line, std::string_view sep, std::vector<std::string_view>& fields) {
  fields.clear();
  size_t pos = 0;
  for (;;) {
    const size_t at = line.find(sep, pos);
    if (at == std::string_view::npos) {
      fields.push_back(line.substr(pos));
      return;
    }
    fields.push_back(line.substr(pos, at - pos));
    pos = at + sep.size();
  }
}

std::string quote_separator(std::string_view sep) {
  if (sep == "\t") return "'\\t'";
  if (sep == " ") return "' '";
  return fmt::format("'{}'", sep);
}

std::string separator_hint(std::string_view line, std::string_view sep) {
  std::string hint = " — is the separator right?";
  static constexpr std::string_view kCandidates[] = {",", "\t", ";", "|", "::"};
  for (std::string_view c : kCandidates) {
    if (!sep.empty() &&
        (c == sep || sep.find(c) != std::string_view::npos || c.find(sep) != std::string_view::npos))
      continue;
    if (line.find(c) != std::string_view::npos) {
      hint += fmt::format(" (the line contains {})", quote_separator(c));
      break;
    }
  }
  return hint;
}

// -------------------------------------------------------------- numbers

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_int64(std::string_view s, int64_t& out) {
  if (!s.empty() && (s.front() == ' ' || s.back() == ' ' || s.front() == '\t' || s.back() == '\t'))
    s = trim_blanks(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_float32(std::string_view s, float& out) {
  if (!s.empty() && (s.front() == ' ' || s.back() == ' ' || s.front() == '\t' || s.back() == '\t'))
    s = trim_blanks(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(out);
}

namespace {

bool take_digits(std::string_view& s, size_t n, int& out) {
  if (s.size() < n) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  s.remove_prefix(n);
  return true;
}

bool take_char(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool parse_iso8601(std::string_view s, int64_t& out) {
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!take_digits(s, 4, y) || !take_char(s, '-') || !take_digits(s, 2, mo) || !take_char(s, '-') ||
      !take_digits(s, 2, d))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return false;
  int64_t offset = 0;
  if (!s.empty()) {
    if (s.front() != 'T' && s.front() != ' ') return false;
    s.remove_prefix(1);
    if (!take_digits(s, 2, h) || !take_char(s, ':') || !take_digits(s, 2, mi)) return false;
    if (take_char(s, ':')) {
      if (!take_digits(s, 2, sec)) return false;
      if (take_char(s, '.') || take_char(s, ',')) {
        size_t n = 0;
        while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
        if (n == 0) return false;
        s.remove_prefix(n);
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return false;
    if (take_char(s, 'Z')) {
    } else if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
      const int sign = s.front() == '-' ? -1 : 1;
      s.remove_prefix(1);
      int oh, om = 0;
      if (!take_digits(s, 2, oh)) return false;
      take_char(s, ':');
      if (!s.empty() && !take_digits(s, 2, om)) return false;
      offset = sign * (oh * 3600 + om * 60);
    }
    if (!s.empty()) return false;
  }
  out = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 +
        mi * 60 + sec - offset;
  return true;
}

}  // namespace

bool parse_timestamp(std::string_view s, int64_t& out) {
  s = trim_blanks(s);
  if (s.empty()) return false;
  if (parse_int64(s, out)) return true;
  double d;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), d);
  if (r.ec == std::errc() && r.ptr == s.data() + s.size()) {
    if (!std::isfinite(d) || std::fabs(d) > 9.0e18) return false;
    out = static_cast<int64_t>(std::llround(d));
    return true;
  }
  return parse_iso8601(s, out);
}

int parse_title_year(std::string_view title) {
  // The last "(dddd" followed by ')' or a dash (en dash or '-') wins.
  title = trim_blanks(title);
  size_t pos = title.size();
  while (pos > 0) {
    const size_t open = title.rfind('(', pos - 1);
    if (open == std::string_view::npos) break;
    std::string_view rest = title.substr(open + 1);
    int year;
    if (take_digits(rest, 4, year) && !rest.empty() &&
        (rest.front() == ')' || rest.front() == '-' || rest.substr(0, 3) == "\xE2\x80\x93") &&
        year >= 1800 && year <= 2200)
      return year;
    if (open == 0) break;
    pos = open;
  }
  return 0;
}

int parse_date_year(std::string_view date) {
  date = trim_blanks(date);
  if (date.size() < 4) return 0;
  std::string_view tail = date.substr(date.size() - 4);
  int year;
  if (take_digits(tail, 4, year) && year >= 1800 && year <= 2200) return year;
  return 0;
}

// ------------------------------------------------------------ bad lines

ReadContext::ReadContext(const ReadOptions& options, ReadReport* report, core::Monitor* monitor)
    : options_(options),
      report_(report != nullptr ? report : &local_report_),
      monitor_(monitor != nullptr ? monitor : &core::null_monitor()) {
  *report_ = ReadReport{};
}

void ReadContext::bad_line(const std::string& file, int64_t line, std::string_view what) {
  std::string message = fmt::format("{}:{}: {}", file, line, what);
  if (!options_.skip_bad_lines) throw Error(ErrorCode::kInvalidArgument, message, __FILE__, __LINE__);
  ++report_->bad_lines;
  if (report_->first_errors.size() < 10) report_->first_errors.push_back(std::move(message));
}

void ReadContext::finish(int64_t rows) {
  report_->rows = rows;
  if (report_->bad_lines > 0)
    monitor_->info(fmt::format("skipped {} bad line{} (first: {})", report_->bad_lines,
                               report_->bad_lines == 1 ? "" : "s", report_->first_errors.front()));
}

// ---------------------------------------------------------- id mapping

bool IdIndex::canonical_int(std::string_view s, int64_t& out) {
  const size_t n = s.size();
  if (n == 0 || n > 18 || (s[0] == '0' && n > 1)) return false;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned d = static_cast<unsigned char>(s[i]) - '0';
    if (d > 9) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

namespace {
inline size_t hash_key(int64_t key, size_t mask) {
  uint64_t x = static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull;
  return static_cast<size_t>(x >> 32 ^ x) & mask;
}
// The dense array may cover ids up to this bound: a few entries per id seen,
// so sparse ids (hashes, phone numbers) never allocate a huge array.
inline size_t dense_bound(size_t ids) { return std::max<size_t>(size_t{1} << 16, ids * 4 + 1024); }
}  // namespace

int32_t IdIndex::find_hashed(int64_t key) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash_key(key, mask);; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.key == key) return s.value;
    if (s.key < 0) return -1;
  }
}

void IdIndex::insert_hashed(int64_t key, int32_t index) {
  if ((hashed_ + 1) * 2 > slots_.size()) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
    hashed_ = 0;
    for (const Slot& s : old)
      if (s.key >= 0) insert_hashed(s.key, s.value);
  }
  const size_t mask = slots_.size() - 1;
  size_t i = hash_key(key, mask);
  while (slots_[i].key >= 0) i = (i + 1) & mask;
  slots_[i] = Slot{key, index};
  ++hashed_;
}

void IdIndex::insert(int64_t key, int32_t index) {
  ++numeric_;
  const auto k = static_cast<uint64_t>(key);
  if (k < dense_bound(numeric_)) {
    // Grow the dense array (doubling) and move hashed ids it now covers.
    size_t size = std::max<size_t>(dense_.size() * 2, 1024);
    while (size <= k) size *= 2;
    size = std::min(size, dense_bound(numeric_));
    dense_.resize(std::max<size_t>(size, k + 1), -1);
    if (hashed_ > 0) {
      std::vector<Slot> old = std::move(slots_);
      slots_.assign(old.size(), Slot{});
      hashed_ = 0;
      for (const Slot& s : old) {
        if (s.key < 0) continue;
        if (static_cast<uint64_t>(s.key) < dense_.size()) dense_[static_cast<size_t>(s.key)] = s.value;
        else insert_hashed(s.key, s.value);
      }
    }
    dense_[k] = index;
    return;
  }
  insert_hashed(key, index);
}

int32_t IdIndex::find(std::string_view id) const {
  int64_t key;
  if (canonical_int(id, key)) {
    if (static_cast<uint64_t>(key) < dense_.size()) return dense_[static_cast<size_t>(key)];
    return find_hashed(key);
  }
  auto it = strings_.find(id);
  return it == strings_.end() ? -1 : it->second;
}

// ------------------------------------------------------- column mapping

std::string list_columns(const std::vector<std::string>& header) {
  std::string out;
  for (const auto& h : header) {
    if (!out.empty()) out += ", ";
    out += core::excerpt(h, 40);
  }
  return out;
}

bool resolve_column(std::string_view spec, const std::vector<std::string>& header, bool has_header,
                    Column& out, std::string& error) {
  out = Column{};
  if (spec.empty()) return true;
  if (has_header) {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == spec) {
        out = Column{static_cast<int>(i), std::string(spec)};
        return true;
      }
    // Case-insensitive when unambiguous ("UserId" for "userid").
    int found = -1, matches = 0;
    const std::string lower = core::to_lower(spec);
    for (size_t i = 0; i < header.size(); ++i)
      if (core::to_lower(header[i]) == lower) {
        found = static_cast<int>(i);
        ++matches;
      }
    if (matches == 1) {
      out = Column{found, header[static_cast<size_t>(found)]};
      return true;
    }
  }
  int64_t index;
  if (IdIndex::canonical_int(spec, index)) {
    if (has_header && index >= static_cast<int64_t>(header.size())) {
      error = fmt::format("column index {} is out of range (the header has {} columns: {})", index,
                          header.size(), list_columns(header));
      return false;
    }
    if (index > 100000) {
      error = fmt::format("column index {} is out of range", index);
      return false;
    }
    out = Column{static_cast<int>(index), std::string(spec)};
    return true;
  }
  if (has_header) {
    error = fmt::format("missing column `{}` in header (columns: {})", spec, list_columns(header));
    return false;
  }
  error = fmt::format(
      "column `{}` is not an index: without a header (data.header=false) columns are 0-based "
      "indices such as \"0\"",
      spec);
  return false;
}

}  // namespace detail
}  // namespace fewrec::data

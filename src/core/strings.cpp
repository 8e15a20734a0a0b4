#include "fewrec/core/strings.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

namespace fewrec::core {

namespace {

constexpr std::string_view kBlanks = " \t\r\n\f\v";

// Strips one leading '+' (std::from_chars rejects it) when a digit or '.' follows.
std::string_view strip_plus(std::string_view s) {
  if (s.size() >= 2 && s[0] == '+' && s[1] != '-' && s[1] != '+') return s.substr(1);
  return s;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return 0;  // continuation byte, overlong 2-byte lead (C0/C1) or > U+10FFFF lead
  }
  if (s.size() - i < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;  // overlong / surrogate
  if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return len;
}

}  // namespace

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(kBlanks);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(kBlanks);
  return s.substr(b, e - b + 1);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::vector<std::string_view> split(std::string_view s, std::string_view sep) {
  if (sep.empty()) return {s};
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + sep.size();
  }
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.starts_with(prefix); }

std::optional<int64_t> parse_int(std::string_view s) {
  s = strip_plus(trim(s));
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

template <class T>
static std::optional<T> parse_floating(std::string_view s) {
  s = strip_plus(trim(s));
  if (s.empty()) return std::nullopt;
  T v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  if (!std::isfinite(v)) return std::nullopt;  // "inf" / "nan" are not numbers in our inputs
  return v;
}

std::optional<double> parse_double(std::string_view s) { return parse_floating<double>(s); }
std::optional<float> parse_float(std::string_view s) { return parse_floating<float>(s); }

std::optional<bool> parse_bool(std::string_view s) {
  const std::string v = to_lower(trim(s));
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return std::nullopt;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t len = utf8_sequence_length(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out.push_back(ch);
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

std::string excerpt(std::string_view s, size_t max) {
  constexpr std::string_view kEllipsis = "...";
  const size_t keep = max >= kEllipsis.size() ? max - kEllipsis.size() : max;
  std::string out;
  size_t cut = 0;  // output length at the last piece boundary that leaves room for "..."
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t consumed = 1;
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02x}", c);
    else if (c < 0x80) out.push_back(s[i]);
    else if (size_t len = utf8_sequence_length(s, i); len > 0) {
      out.append(s.substr(i, len));
      consumed = len;
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
    if (out.size() > max) {
      out.resize(cut);
      if (max >= kEllipsis.size()) out += kEllipsis;
      return out;
    }
    if (out.size() <= keep) cut = out.size();
    i += consumed;
  }
  return out;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 10) return fmt::format("{:.1f}s", seconds);
  auto total = static_cast<int64_t>(std::llround(seconds));
  if (total < 60) return fmt::format("{}s", total);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  total = (total + 30) / 60;  // minutes
  return fmt::format("{}h{:02}m", total / 60, total % 60);
}

std::string format_count(double n) {
  if (!std::isfinite(n)) return "?";
  const char* sign = n < 0 ? "-" : "";
  double a = std::fabs(n);
  if (a < 999.95) {
    if (a == std::floor(a)) return fmt::format("{}{:.0f}", sign, a);
    return fmt::format("{}{:.1f}", sign, a);
  }
  static constexpr const char* kUnits[] = {"k", "M", "G", "T", "P"};
  for (const char* unit : kUnits) {
    a /= 1000.0;
    if (a < 999.95) return fmt::format("{}{:.1f}{}", sign, a, unit);
  }
  return fmt::format("{}{:.1f}E", sign, a / 1000.0);
}

int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("VmHWM:")) continue;
    std::string_view rest = trim(std::string_view(line).substr(6));
    const size_t space = rest.find(' ');
    const auto kb = parse_int(rest.substr(0, space));
    if (!kb) return 0;
    const std::string_view unit = space == std::string_view::npos ? "" : trim(rest.substr(space));
    if (unit == "kB" || unit.empty()) return *kb * 1024;
    if (unit == "mB" || unit == "MB") return *kb * 1024 * 1024;
    return 0;
  }
  return 0;
}

}  // namespace fewrec::core

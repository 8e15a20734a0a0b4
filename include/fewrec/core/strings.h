// Small string helpers shared by readers and the CLI.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fewrec::core {

std::string_view trim(std::string_view s);
// Splits on a single-character separator; keeps empty fields.
std::vector<std::string_view> split(std::string_view s, char sep);
// Splits on a multi-character separator ("::").
std::vector<std::string_view> split(std::string_view s, std::string_view sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string to_lower(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);

// Strict numeric parsing (std::from_chars): the whole field must be a number
// (surrounding blanks allowed). nullopt on failure.
std::optional<int64_t> parse_int(std::string_view s);
std::optional<double> parse_double(std::string_view s);
std::optional<float> parse_float(std::string_view s);
std::optional<bool> parse_bool(std::string_view s);  // true/false/1/0/yes/no/on/off

// Is `s` valid UTF-8?
bool is_valid_utf8(std::string_view s);
// Latin-1 bytes to UTF-8.
std::string latin1_to_utf8(std::string_view s);
// Printable excerpt for error messages: at most `max` bytes, control characters escaped.
std::string excerpt(std::string_view s, size_t max = 80);

// Human-readable durations and counts for progress lines.
std::string format_duration(double seconds);
std::string format_count(double n);

// Peak resident set size of this process in bytes (0 if unknown).
int64_t peak_rss_bytes();

}  // namespace fewrec::core

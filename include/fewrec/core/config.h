// Config: TOML files plus `--set section.key=value` overrides.
//
// Keys are flat dotted paths ("data.path", "model.factors"). Components read
// their keys through typed getters that take the default and a one-line doc;
// every read is recorded, so after all components have read their options
// `check_all_used()` turns any key nobody asked for into an error naming it
// (typos never pass silently), and `effective()` lists every key with the
// value actually used — saved inside artifacts and printed with results.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace fewrec::core {

using ConfigValue = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;

// Renders a value the way it would be written after `--set key=`.
std::string config_value_to_string(const ConfigValue& v);

class Config {
 public:
  Config() = default;

  // Parses a TOML document; nested tables become dotted keys. `origin` names
  // the file in error messages.
  static Config from_toml_string(std::string_view text, std::string_view origin = "<string>");
  static Config from_toml_file(const std::filesystem::path& path);

  // Applies "section.key=value". The value is parsed as a TOML scalar or array
  // when it is one (1, 0.5, true, "x", [1, 2]); otherwise it is a bare string.
  void set(std::string_view assignment);
  void set(std::string key, ConfigValue value);
  // Applies every key of `other` over this one.
  void merge(const Config& other);

  bool has(std::string_view key) const;
  void erase(std::string_view key);

  // Typed getters. Record the key as used and its effective value.
  // A present value of the wrong type is an error naming the key.
  std::string get_string(std::string_view key, std::string_view def, std::string_view doc = "");
  int64_t get_int(std::string_view key, int64_t def, std::string_view doc = "");
  double get_double(std::string_view key, double def, std::string_view doc = "");
  bool get_bool(std::string_view key, bool def, std::string_view doc = "");
  // Accepts a TOML array of strings/numbers or a comma-separated string.
  std::vector<std::string> get_list(std::string_view key, const std::vector<std::string>& def,
                                    std::string_view doc = "");
  std::vector<int64_t> get_int_list(std::string_view key, const std::vector<int64_t>& def,
                                    std::string_view doc = "");
  // Required string: error "missing config key `k` (doc)" when absent.
  std::string require_string(std::string_view key, std::string_view doc = "");

  // All keys below "prefix." (without the prefix), e.g. the options of a model.
  // Marks them used; values rendered as strings.
  std::map<std::string, std::string> section(std::string_view prefix);

  // Throws kInvalidArgument naming every key never read ("unknown config key
  // `split.sed`"), with the closest known key as a hint when there is one.
  void check_all_used() const;

  // Every key read so far with the value used (default or given).
  nlohmann::json effective() const;
  // Every key present (given), as a flat JSON object.
  nlohmann::json given() const;
  // Docs recorded by the getters: key -> (default rendered, doc).
  const std::map<std::string, std::pair<std::string, std::string>>& docs() const { return docs_; }

 private:
  void note(std::string_view key, const ConfigValue& used, const std::string& def, std::string_view doc);
  std::map<std::string, ConfigValue, std::less<>> values_;
  std::map<std::string, std::string, std::less<>> origins_;  // key -> where it came from
  mutable std::map<std::string, ConfigValue, std::less<>> used_;
  std::map<std::string, std::pair<std::string, std::string>> docs_;
};

// Parses "k=v,k2=v2" option strings (model specs, index specs).
std::map<std::string, std::string> parse_kv_list(std::string_view text, std::string_view what);

// Typed option parsing for string option maps (model options); errors name
// the option and the owner ("model `itemknn`: option `k` expects an integer, got `x`").
class OptionReader {
 public:
  OptionReader(std::map<std::string, std::string> options, std::string owner);
  std::string get_string(const std::string& key, const std::string& def, std::string_view doc = "");
  int64_t get_int(const std::string& key, int64_t def, std::string_view doc = "",
                  std::optional<int64_t> min = std::nullopt, std::optional<int64_t> max = std::nullopt);
  double get_double(const std::string& key, double def, std::string_view doc = "",
                    std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
  bool get_bool(const std::string& key, bool def, std::string_view doc = "");
  // Error listing unknown options and the known ones.
  void check_all_used() const;
  // The effective options (every key read, with the value used).
  const std::map<std::string, std::string>& effective() const { return effective_; }

 private:
  std::map<std::string, std::string> options_;
  std::string owner_;
  std::map<std::string, std::string> effective_;
};

// Levenshtein-closest candidate, or "" when nothing is close.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace fewrec::core

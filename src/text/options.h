// Option parsing for text encoders (internal to the text layer): each
// encoder declares its options once, in a read function that both parses a
// map and lists the options with defaults and docs for the registry.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/text/encoder.h"

namespace fewrec::text {

class EncoderOptions {
 public:
  EncoderOptions(const std::map<std::string, std::string>& options, const std::string& encoder)
      : reader_(options, fmt::format("text encoder `{}`", encoder)), encoder_(encoder) {}

  int64_t get_int(const std::string& key, int64_t def, std::string_view doc,
                  std::optional<int64_t> min = std::nullopt, std::optional<int64_t> max = std::nullopt) {
    docs_.push_back({key, std::to_string(def), std::string(doc)});
    return reader_.get_int(key, def, doc, min, max);
  }
  double get_double(const std::string& key, double def, std::string_view doc,
                    std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt) {
    docs_.push_back({key, fmt::format("{}", def), std::string(doc)});
    return reader_.get_double(key, def, doc, min, max);
  }
  bool get_bool(const std::string& key, bool def, std::string_view doc) {
    docs_.push_back({key, def ? "true" : "false", std::string(doc)});
    return reader_.get_bool(key, def, doc);
  }
  std::string get_string(const std::string& key, const std::string& def, std::string_view doc) {
    docs_.push_back({key, def, std::string(doc)});
    return reader_.get_string(key, def, doc);
  }
  std::string get_choice(const std::string& key, const std::string& def, const std::vector<std::string>& choices,
                         std::string_view doc) {
    docs_.push_back({key, def, std::string(doc)});
    std::string v = reader_.get_string(key, def, doc);
    if (std::find(choices.begin(), choices.end(), v) == choices.end())
      FEWREC_THROW(kInvalidArgument, "text encoder `{}`: option `{}` must be one of {}, got `{}`", encoder_, key,
                   core::join(choices, ", "), core::excerpt(v));
    return v;
  }
  void check_all_used() const { reader_.check_all_used(); }
  const std::vector<EncoderOptionDoc>& docs() const { return docs_; }

 private:
  core::OptionReader reader_;
  std::string encoder_;
  std::vector<EncoderOptionDoc> docs_;
};


// 64-bit FNV-1a.
inline uint64_t fnv1a64(std::string_view s, uint64_t seed = 1469598103934665603ull) {
  uint64_t h = seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace fewrec::text

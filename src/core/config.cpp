#include "fewrec/core/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::core {

namespace {

constexpr std::string_view kSetOrigin = "--set";

std::string render_double(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  std::string s = fmt::format("{}", d);  // shortest round-trip form
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string quote_toml(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7F) out += fmt::format("\\u{:04X}", c);
        else out.push_back(ch);
    }
  }
  out += '"';
  return out;
}

const char* type_name(const ConfigValue& v) {
  switch (v.index()) {
    case 0: return "a boolean";
    case 1: return "an integer";
    case 2: return "a float";
    case 3: return "a string";
    default: return "a list";
  }
}

// Renders a scalar TOML node as the string stored in a list.
std::string scalar_to_string(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return node.as_string()->get();
    case toml::node_type::integer: return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point: return render_double(node.as_floating_point()->get());
    case toml::node_type::boolean: return node.as_boolean()->get() ? "true" : "false";
    default: {
      std::ostringstream os;
      if (auto* d = node.as_date()) os << d->get();
      else if (auto* t = node.as_time()) os << t->get();
      else if (auto* dt = node.as_date_time()) os << dt->get();
      return os.str();
    }
  }
}

using Values = std::map<std::string, ConfigValue, std::less<>>;

// Converts one TOML node at `key` into values (tables recurse into dotted keys).
void flatten_node(const toml::node& node, const std::string& key, std::string_view origin,
                  Values& out) {
  switch (node.type()) {
    case toml::node_type::table:
      for (auto&& [k, v] : *node.as_table()) {
        const std::string sub = key.empty() ? std::string(k.str()) : key + "." + std::string(k.str());
        flatten_node(v, sub, origin, out);
      }
      return;
    case toml::node_type::array: {
      std::vector<std::string> items;
      for (const toml::node& item : *node.as_array()) {
        if (item.is_table() || item.is_array())
          FEWREC_THROW(kInvalidArgument,
                       "config key `{}` (from {}): arrays of tables or of arrays are not supported; "
                       "use an array of strings or numbers",
                       key, origin);
        items.push_back(scalar_to_string(item));
      }
      out[key] = std::move(items);
      return;
    }
    case toml::node_type::string: out[key] = node.as_string()->get(); return;
    case toml::node_type::integer: out[key] = node.as_integer()->get(); return;
    case toml::node_type::floating_point: out[key] = node.as_floating_point()->get(); return;
    case toml::node_type::boolean: out[key] = node.as_boolean()->get(); return;
    default: out[key] = scalar_to_string(node); return;  // dates and times stay strings
  }
}

// Parses `text` as one TOML value (scalar, array or inline table); nullopt
// when it is not one. Values below an inline table get dotted sub-keys.
std::optional<toml::table> parse_toml_value(std::string_view text) {
  const std::string doc = "v = " + std::string(text);
  try {
    toml::table tbl = toml::parse(doc);
    if (tbl.size() != 1 || !tbl.contains("v")) return std::nullopt;
    return tbl;
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  for (std::string_view part : split(s, ','))
    if (auto t = trim(part); !t.empty()) out.emplace_back(t);
  return out;
}

bool valid_key(std::string_view key) {
  if (key.empty()) return false;
  for (std::string_view part : split(key, '.')) {
    if (part.empty()) return false;
    for (char c : part)
      if (c == ' ' || c == '\t' || c == '=' || c == '"' || c == '\'' || c == '[' || c == ']')
        return false;
  }
  return true;
}

size_t levenshtein(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

nlohmann::json to_json(const ConfigValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

std::string render_int_list(const std::vector<int64_t>& v) {
  std::vector<std::string> parts;
  for (int64_t x : v) parts.push_back(std::to_string(x));
  return config_value_to_string(ConfigValue(parts));
}

}  // namespace

std::string config_value_to_string(const ConfigValue& v) {
  struct Render {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return render_double(d); }
    std::string operator()(const std::string& s) const {
      // Bare when `--set key=<s>` would read it back as this same string.
      if (s.empty() || s != trim(s)) return quote_toml(s);
      return parse_toml_value(s) ? quote_toml(s) : s;
    }
    std::string operator()(const std::vector<std::string>& items) const {
      std::string out = "[";
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        const bool number = parse_int(items[i]) || parse_double(items[i]);
        const bool boolean = items[i] == "true" || items[i] == "false";
        out += (number || boolean) ? items[i] : quote_toml(items[i]);
      }
      return out + "]";
    }
  };
  return std::visit(Render{}, v);
}

// ---------------------------------------------------------------------------
// Config

Config Config::from_toml_string(std::string_view text, std::string_view origin) {
  toml::table tbl;
  try {
    tbl = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& pos = e.source().begin;
    FEWREC_THROW(kInvalidArgument, "config {}:{}:{}: {}", origin, pos.line, pos.column, e.description());
  }
  Config cfg;
  Values values;
  flatten_node(tbl, "", origin, values);
  for (auto& [k, v] : values) {
    cfg.origins_[k] = std::string(origin);
    cfg.values_[k] = std::move(v);
  }
  return cfg;
}

Config Config::from_toml_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    FEWREC_THROW(kNotFound, "config file `{}` not found", path.string());
  if (std::filesystem::is_directory(path, ec))
    FEWREC_THROW(kIo, "cannot read config file `{}`: {}", path.string(), std::strerror(EISDIR));
  std::ifstream in(path, std::ios::binary);
  if (!in) FEWREC_THROW(kIo, "cannot open config file `{}`: {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) FEWREC_THROW(kIo, "cannot read config file `{}`: {}", path.string(), std::strerror(errno));
  return from_toml_string(ss.str(), path.string());
}

void Config::set(std::string_view assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos)
    FEWREC_THROW(kInvalidArgument, "--set expects section.key=value, got `{}`", excerpt(assignment));
  const std::string key(trim(assignment.substr(0, eq)));
  if (!valid_key(key))
    FEWREC_THROW(kInvalidArgument, "--set expects section.key=value, got `{}`: `{}` is not a valid key",
                 excerpt(assignment), excerpt(key));
  const std::string_view text = trim(assignment.substr(eq + 1));
  auto parsed = parse_toml_value(text);
  if (!parsed) {
    set(key, ConfigValue(std::string(text)));
    return;
  }
  // An inline table ({a = 1}) expands to dotted keys below `key`.
  Values values;
  flatten_node(*parsed->get("v"), key, kSetOrigin, values);
  for (auto& [k, v] : values) set(k, std::move(v));
}

void Config::set(std::string key, ConfigValue value) {
  origins_[key] = std::string(kSetOrigin);
  values_[std::move(key)] = std::move(value);
}

void Config::merge(const Config& other) {
  for (const auto& [k, v] : other.values_) {
    values_[k] = v;
    auto it = other.origins_.find(k);
    origins_[k] = it != other.origins_.end() ? it->second : std::string(kSetOrigin);
  }
}

bool Config::has(std::string_view key) const { return values_.find(key) != values_.end(); }

void Config::erase(std::string_view key) {
  if (auto it = values_.find(key); it != values_.end()) values_.erase(it);
  if (auto it = origins_.find(key); it != origins_.end()) origins_.erase(it);
}

void Config::note(std::string_view key, const ConfigValue& used, const std::string& def,
                  std::string_view doc) {
  used_[std::string(key)] = used;
  docs_[std::string(key)] = {def, std::string(doc)};
}

namespace {

[[noreturn]] void type_error(std::string_view key, std::string_view origin, std::string_view expected,
                             const ConfigValue& got) {
  FEWREC_THROW(kInvalidArgument, "config key `{}` (from {}) expects {}, got {} `{}`", key, origin,
               expected, type_name(got), config_value_to_string(got));
}

}  // namespace

std::string Config::get_string(std::string_view key, std::string_view def, std::string_view doc) {
  std::string out(def);
  if (auto it = values_.find(key); it != values_.end()) {
    const ConfigValue& v = it->second;
    if (auto* s = std::get_if<std::string>(&v)) out = *s;
    else if (std::holds_alternative<std::vector<std::string>>(v))
      type_error(key, origins_.at(it->first), "a string", v);
    else out = config_value_to_string(v);  // a number or boolean where text is expected
  }
  note(key, out, config_value_to_string(std::string(def)), doc);
  return out;
}

int64_t Config::get_int(std::string_view key, int64_t def, std::string_view doc) {
  int64_t out = def;
  if (auto it = values_.find(key); it != values_.end()) {
    if (auto* i = std::get_if<int64_t>(&it->second)) out = *i;
    else type_error(key, origins_.at(it->first), "an integer", it->second);
  }
  note(key, out, std::to_string(def), doc);
  return out;
}

double Config::get_double(std::string_view key, double def, std::string_view doc) {
  double out = def;
  if (auto it = values_.find(key); it != values_.end()) {
    if (auto* d = std::get_if<double>(&it->second)) out = *d;
    else if (auto* i = std::get_if<int64_t>(&it->second)) out = static_cast<double>(*i);
    else type_error(key, origins_.at(it->first), "a number", it->second);
  }
  note(key, out, render_double(def), doc);
  return out;
}

bool Config::get_bool(std::string_view key, bool def, std::string_view doc) {
  bool out = def;
  if (auto it = values_.find(key); it != values_.end()) {
    if (auto* b = std::get_if<bool>(&it->second)) out = *b;
    else type_error(key, origins_.at(it->first), "a boolean (true or false)", it->second);
  }
  note(key, out, def ? "true" : "false", doc);
  return out;
}

std::vector<std::string> Config::get_list(std::string_view key, const std::vector<std::string>& def,
                                          std::string_view doc) {
  std::vector<std::string> out = def;
  if (auto it = values_.find(key); it != values_.end()) {
    const ConfigValue& v = it->second;
    if (auto* l = std::get_if<std::vector<std::string>>(&v)) out = *l;
    else if (auto* s = std::get_if<std::string>(&v)) out = split_list(*s);
    else out = {config_value_to_string(v)};  // a single number or boolean is a one-element list
  }
  note(key, out, config_value_to_string(def), doc);
  return out;
}

std::vector<int64_t> Config::get_int_list(std::string_view key, const std::vector<int64_t>& def,
                                          std::string_view doc) {
  std::vector<int64_t> out = def;
  if (auto it = values_.find(key); it != values_.end()) {
    const ConfigValue& v = it->second;
    std::vector<std::string> items;
    if (auto* l = std::get_if<std::vector<std::string>>(&v)) items = *l;
    else if (auto* s = std::get_if<std::string>(&v)) items = split_list(*s);
    else if (auto* i = std::get_if<int64_t>(&v)) items = {std::to_string(*i)};
    else type_error(key, origins_.at(it->first), "a list of integers", v);
    out.clear();
    for (const std::string& item : items) {
      auto x = parse_int(item);
      if (!x)
        FEWREC_THROW(kInvalidArgument,
                     "config key `{}` (from {}) expects a list of integers, but `{}` is not an integer",
                     key, origins_.at(it->first), excerpt(item));
      out.push_back(*x);
    }
  }
  std::vector<std::string> rendered;
  for (int64_t x : out) rendered.push_back(std::to_string(x));
  note(key, rendered, render_int_list(def), doc);
  return out;
}

std::string Config::require_string(std::string_view key, std::string_view doc) {
  if (!has(key)) {
    if (doc.empty()) FEWREC_THROW(kInvalidArgument, "missing config key `{}`", key);
    FEWREC_THROW(kInvalidArgument, "missing config key `{}` ({})", key, doc);
  }
  return get_string(key, "", doc);
}

std::map<std::string, std::string> Config::section(std::string_view prefix) {
  std::string p(prefix);
  if (!p.empty() && p.back() != '.') p += '.';
  std::map<std::string, std::string> out;
  for (auto it = values_.lower_bound(p); it != values_.end() && it->first.starts_with(p); ++it) {
    const ConfigValue& v = it->second;
    std::string text;
    if (auto* s = std::get_if<std::string>(&v)) text = *s;
    else if (auto* l = std::get_if<std::vector<std::string>>(&v)) text = join(*l, ",");
    else text = config_value_to_string(v);
    out[it->first.substr(p.size())] = text;
    used_[it->first] = v;
  }
  return out;
}

void Config::check_all_used() const {
  std::vector<std::string> known;
  for (const auto& [k, v] : used_) known.push_back(k);
  for (const auto& [k, d] : docs_)
    if (used_.find(k) == used_.end()) known.push_back(k);
  std::vector<std::string> problems;
  for (const auto& [k, v] : values_) {
    if (used_.find(k) != used_.end()) continue;
    auto origin = origins_.find(k);
    std::string msg = fmt::format("unknown config key `{}` (from {})", k,
                                  origin != origins_.end() ? origin->second : std::string(kSetOrigin));
    if (std::string hint = closest_match(k, known); !hint.empty())
      msg += fmt::format(", did you mean `{}`?", hint);
    problems.push_back(std::move(msg));
  }
  if (!problems.empty()) FEWREC_THROW(kInvalidArgument, "{}", join(problems, "; "));
}

nlohmann::json Config::effective() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : used_) out[k] = to_json(v);
  return out;
}

nlohmann::json Config::given() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : values_) out[k] = to_json(v);
  return out;
}

// ---------------------------------------------------------------------------
// Option strings

std::map<std::string, std::string> parse_kv_list(std::string_view text, std::string_view what) {
  std::map<std::string, std::string> out;
  if (trim(text).empty()) return out;
  for (std::string_view item : split(text, ',')) {
    item = trim(item);
    if (item.empty())
      FEWREC_THROW(kInvalidArgument, "{}: empty option in `{}`; expected key=value[,key=value...]", what,
                   excerpt(text));
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      FEWREC_THROW(kInvalidArgument, "{}: expected key=value, got `{}`", what, excerpt(item));
    std::string key(trim(item.substr(0, eq)));
    if (key.empty())
      FEWREC_THROW(kInvalidArgument, "{}: missing option name before `=` in `{}`", what, excerpt(item));
    std::string value(trim(item.substr(eq + 1)));
    if (out.count(key)) FEWREC_THROW(kInvalidArgument, "{}: option `{}` given twice", what, key);
    out.emplace(std::move(key), std::move(value));
  }
  return out;
}

OptionReader::OptionReader(std::map<std::string, std::string> options, std::string owner)
    : options_(std::move(options)), owner_(std::move(owner)) {}

std::string OptionReader::get_string(const std::string& key, const std::string& def, std::string_view doc) {
  auto it = options_.find(key);
  std::string out = it != options_.end() ? it->second : def;
  effective_[key] = out;
  return out;
}

namespace {

template <class T>
std::string range_text(std::optional<T> min, std::optional<T> max) {
  if (min && max) return fmt::format("in [{}, {}]", *min, *max);
  if (min) return fmt::format(">= {}", *min);
  return fmt::format("<= {}", *max);
}

}  // namespace

int64_t OptionReader::get_int(const std::string& key, int64_t def, std::string_view doc,
                              std::optional<int64_t> min, std::optional<int64_t> max) {
  int64_t out = def;
  if (auto it = options_.find(key); it != options_.end()) {
    auto v = parse_int(it->second);
    if (!v)
      FEWREC_THROW(kInvalidArgument, "{}: option `{}` expects an integer, got `{}`", owner_, key,
                   excerpt(it->second));
    out = *v;
  }
  if ((min && out < *min) || (max && out > *max))
    FEWREC_THROW(kInvalidArgument, "{}: option `{}` must be {}, got {}", owner_, key, range_text(min, max),
                 out);
  effective_[key] = std::to_string(out);
  return out;
}

double OptionReader::get_double(const std::string& key, double def, std::string_view doc,
                                std::optional<double> min, std::optional<double> max) {
  double out = def;
  if (auto it = options_.find(key); it != options_.end()) {
    auto v = parse_double(it->second);
    if (!v)
      FEWREC_THROW(kInvalidArgument, "{}: option `{}` expects a number, got `{}`", owner_, key,
                   excerpt(it->second));
    out = *v;
  }
  if ((min && !(out >= *min)) || (max && !(out <= *max)))
    FEWREC_THROW(kInvalidArgument, "{}: option `{}` must be {}, got {}", owner_, key, range_text(min, max),
                 out);
  effective_[key] = fmt::format("{}", out);
  return out;
}

bool OptionReader::get_bool(const std::string& key, bool def, std::string_view doc) {
  bool out = def;
  if (auto it = options_.find(key); it != options_.end()) {
    auto v = parse_bool(it->second);
    if (!v)
      FEWREC_THROW(kInvalidArgument, "{}: option `{}` expects true or false, got `{}`", owner_, key,
                   excerpt(it->second));
    out = *v;
  }
  effective_[key] = out ? "true" : "false";
  return out;
}

void OptionReader::check_all_used() const {
  std::vector<std::string> known;
  for (const auto& [k, v] : effective_) known.push_back(k);
  std::vector<std::string> unknown;
  for (const auto& [k, v] : options_) {
    if (effective_.count(k)) continue;
    std::string item = fmt::format("`{}`", k);
    if (std::string hint = closest_match(k, known); !hint.empty())
      item += fmt::format(" (did you mean `{}`?)", hint);
    unknown.push_back(std::move(item));
  }
  if (unknown.empty()) return;
  FEWREC_THROW(kInvalidArgument, "{}: unknown option{} {}; known options: {}", owner_,
               unknown.size() > 1 ? "s" : "", join(unknown, ", "),
               known.empty() ? std::string("none") : join(known, ", "));
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  std::string best;
  size_t best_dist = limit + 1;
  for (const std::string& c : candidates) {
    // Cheap lower bound before the quadratic distance.
    const size_t len_gap = c.size() > word.size() ? c.size() - word.size() : word.size() - c.size();
    if (len_gap >= best_dist) continue;
    const size_t d = levenshtein(word, c);
    if (d < best_dist) {
      best_dist = d;
      best = c;
    }
  }
  return best;
}

}  // namespace fewrec::core

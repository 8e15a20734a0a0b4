#include "hybrid_features.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::models::hybrid {

namespace {

bool is_separator(char c) {
  return c == ',' || c == '+' || c == '|' || c == ';' || c == ' ' || c == '\t';
}

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

const data::FeatureKind kKinds[] = {data::FeatureKind::kCategorical, data::FeatureKind::kNumeric,
                                    data::FeatureKind::kTags, data::FeatureKind::kText};

std::string format_edge(float v) {
  return fmt::format("{:g}", v);
}

std::string bucket_label(const std::string& column, const std::vector<float>& edges, size_t b) {
  if (edges.empty()) return fmt::format("{} (any value)", column);
  if (b == 0) return fmt::format("{} < {}", column, format_edge(edges.front()));
  if (b == edges.size()) return fmt::format("{} >= {}", column, format_edge(edges.back()));
  return fmt::format("{} in [{}, {})", column, format_edge(edges[b - 1]), format_edge(edges[b]));
}

// Quantile edges of `values` (finite, any order) for `buckets` buckets:
// distinct, sorted, each above the minimum (no empty first bucket).
std::vector<float> quantile_edges(std::vector<float> values, int64_t buckets) {
  std::vector<float> edges;
  if (values.empty() || buckets <= 1) return edges;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  for (int64_t k = 1; k < buckets; ++k) {
    const float e =
        values[static_cast<size_t>(static_cast<double>(k) * static_cast<double>(n) / static_cast<double>(buckets))];
    if (e > values.front() && (edges.empty() || e > edges.back())) edges.push_back(e);
  }
  return edges;
}

// Keeps the values with document frequency >= min_df (and, for text, the
// max_vocab most frequent), in order of first appearance in `order`.
std::vector<std::string> keep_frequent(const std::vector<std::string>& order,
                                       const std::unordered_map<std::string, int64_t>& df, int64_t min_df,
                                       int64_t max_vocab) {
  std::vector<std::string> kept;
  for (const auto& v : order)
    if (df.at(v) >= min_df) kept.push_back(v);
  if (max_vocab > 0 && kept.size() > static_cast<size_t>(max_vocab)) {
    std::vector<std::string> by_df = kept;
    std::stable_sort(by_df.begin(), by_df.end(),
                     [&](const std::string& a, const std::string& b) { return df.at(a) > df.at(b); });
    by_df.resize(static_cast<size_t>(max_vocab));
    std::unordered_map<std::string, int64_t> chosen;
    for (const auto& v : by_df) chosen.emplace(v, 0);
    std::vector<std::string> out;
    for (const auto& v : kept)
      if (chosen.count(v)) out.push_back(v);
    kept = std::move(out);
  }
  return kept;
}

}  // namespace

// ---------------------------------------------------------------------------
// ColumnSelection

ColumnSelection ColumnSelection::parse(std::string_view text, std::string_view what) {
  const std::string_view t = core::trim(text);
  ColumnSelection s;
  if (t == "all") return s;
  s.all = false;
  if (t == "none") return s;
  size_t pos = 0;
  while (pos <= t.size()) {
    size_t end = pos;
    while (end < t.size() && !is_separator(t[end])) ++end;
    if (end > pos) {
      std::string name(t.substr(pos, end - pos));
      if (name == "all" || name == "none")
        FEWREC_THROW(kInvalidArgument, "{}: `{}` cannot be combined with column names in `{}`", what, name,
                     core::excerpt(text));
      if (std::find(s.names.begin(), s.names.end(), name) == s.names.end()) s.names.push_back(std::move(name));
    }
    pos = end + 1;
  }
  if (s.names.empty())
    FEWREC_THROW(kInvalidArgument,
                 "{}: expected `all`, `none` or feature column names separated by `+` or `,`, got `{}`", what,
                 core::excerpt(text));
  return s;
}

std::string ColumnSelection::to_string() const {
  if (all) return "all";
  if (names.empty()) return "none";
  return core::join(names, "+");
}

// ---------------------------------------------------------------------------
// Tokenizer

std::vector<std::string> tokenize(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !is_word_byte(static_cast<unsigned char>(text[i]))) ++i;
    const size_t begin = i;
    while (i < text.size() && is_word_byte(static_cast<unsigned char>(text[i]))) ++i;
    if (i - begin >= 2) out.push_back(core::to_lower(text.substr(begin, i - begin)));
  }
  return out;
}

// ---------------------------------------------------------------------------
// FeatureSpace

FeatureSpace FeatureSpace::build(const data::FeatureTable& table, std::span<const int32_t> rows,
                                 const ColumnSelection& selection, const VocabularyOptions& options,
                                 std::string_view side, std::string_view model) {
  std::vector<const data::FeatureColumn*> chosen;
  if (selection.all) {
    for (const auto& c : table.columns())
      if (c.kind != data::FeatureKind::kNumeric || options.numeric_buckets > 0) chosen.push_back(&c);
  } else {
    for (const auto& name : selection.names) {
      const auto* c = table.find(name);
      if (c == nullptr) {
        std::vector<std::string> present;
        for (const auto& col : table.columns()) present.push_back(col.name);
        FEWREC_THROW(kInvalidArgument,
                     "model `{}`: option `{}_features` names column `{}`, which the {} "
                     "features do not have; {} feature columns: {}",
                     model, side, core::excerpt(name), side, side,
                     present.empty() ? std::string("(none)") : core::join(present, ", "));
      }
      FEWREC_CHECK(c->kind != data::FeatureKind::kNumeric || options.numeric_buckets > 0, kInvalidArgument,
                   "model `{}`: option `{}_features` names numeric column `{}` but numeric_buckets is 0", model,
                   side, name);
      chosen.push_back(c);
    }
  }
  std::vector<int32_t> present_rows;
  for (int32_t r : rows)
    if (r >= 0 && r < table.rows()) present_rows.push_back(r);

  FeatureSpace space;
  for (const auto* c : chosen) {
    Column col;
    col.name = c->name;
    col.kind = c->kind;
    switch (c->kind) {
      case data::FeatureKind::kCategorical:
      case data::FeatureKind::kTags: {
        std::vector<int64_t> df(static_cast<size_t>(c->vocab.size()), 0);
        for (int32_t r : present_rows) {
          if (c->kind == data::FeatureKind::kCategorical) {
            const int32_t code = c->codes[static_cast<size_t>(r)];
            if (code >= 0) ++df[static_cast<size_t>(code)];
          } else {
            auto tags = c->tags_of(r);
            std::vector<int32_t> distinct(tags.begin(), tags.end());
            std::sort(distinct.begin(), distinct.end());
            distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
            for (int32_t t : distinct) ++df[static_cast<size_t>(t)];
          }
        }
        for (int32_t v = 0; v < c->vocab.size(); ++v)
          if (df[static_cast<size_t>(v)] >= options.min_df && df[static_cast<size_t>(v)] > 0)
            col.values.push_back(c->vocab.id(v));
        break;
      }
      case data::FeatureKind::kText: {
        std::unordered_map<std::string, int64_t> df;
        std::vector<std::string> order;
        for (int32_t r : present_rows) {
          auto tokens = tokenize(c->texts[static_cast<size_t>(r)]);
          std::sort(tokens.begin(), tokens.end());
          tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
          for (auto& t : tokens) {
            auto [it, inserted] = df.emplace(t, 0);
            if (inserted) order.push_back(t);
            ++it->second;
          }
        }
        col.values = keep_frequent(order, df, std::max<int64_t>(options.min_df, 1), options.max_vocab);
        break;
      }
      case data::FeatureKind::kNumeric: {
        std::vector<float> values;
        for (int32_t r : present_rows) {
          const float v = c->numbers[static_cast<size_t>(r)];
          if (std::isfinite(v)) values.push_back(v);
        }
        if (values.empty()) break;
        col.edges = quantile_edges(std::move(values), options.numeric_buckets);
        for (size_t b = 0; b <= col.edges.size(); ++b) col.values.push_back(bucket_label(col.name, col.edges, b));
        break;
      }
    }
    if (!col.values.empty()) space.columns_.push_back(std::move(col));
  }
  space.finish();
  return space;
}

void FeatureSpace::finish() {
  int64_t offset = 0;
  for (auto& c : columns_) {
    FEWREC_CHECK(offset + static_cast<int64_t>(c.values.size()) < INT32_MAX, kInvalidArgument,
                 "feature vocabulary too large ({} features)", offset + static_cast<int64_t>(c.values.size()));
    c.offset = static_cast<int32_t>(offset);
    c.index.clear();
    if (c.kind != data::FeatureKind::kNumeric)
      for (size_t v = 0; v < c.values.size(); ++v) c.index.emplace(c.values[v], static_cast<int32_t>(v));
    offset += static_cast<int64_t>(c.values.size());
  }
  size_ = static_cast<int32_t>(offset);
}

int32_t FeatureSpace::bucket_of(const Column& c, float value) const {
  return static_cast<int32_t>(std::upper_bound(c.edges.begin(), c.edges.end(), value) - c.edges.begin());
}

void FeatureSpace::encode_row(const data::FeatureTable& table, int32_t row, std::vector<int32_t>& out) const {
  if (row >= 0 && row < table.rows()) {
    const auto r = static_cast<size_t>(row);
    for (const auto& c : columns_) {
      const auto* tc = table.find(c.name);
      if (tc == nullptr || tc->kind != c.kind) continue;
      auto add = [&](const std::string& value) {
        auto it = c.index.find(value);
        if (it != c.index.end()) out.push_back(c.offset + it->second);
      };
      switch (c.kind) {
        case data::FeatureKind::kCategorical:
          if (tc->codes[r] >= 0) add(tc->vocab.id(tc->codes[r]));
          break;
        case data::FeatureKind::kTags:
          for (int32_t t : tc->tags_of(row)) add(tc->vocab.id(t));
          break;
        case data::FeatureKind::kText:
          for (const auto& t : tokenize(tc->texts[r])) add(t);
          break;
        case data::FeatureKind::kNumeric:
          if (std::isfinite(tc->numbers[r])) out.push_back(c.offset + bucket_of(c, tc->numbers[r]));
          break;
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

void FeatureSpace::encode(const data::UserFeatures& features, std::vector<int32_t>& out) const {
  for (const auto& c : columns_) {
    auto add = [&](const std::string& value) {
      auto it = c.index.find(value);
      if (it != c.index.end()) out.push_back(c.offset + it->second);
    };
    switch (c.kind) {
      case data::FeatureKind::kCategorical:
        if (auto it = features.categorical.find(c.name); it != features.categorical.end()) add(it->second);
        break;
      case data::FeatureKind::kTags:
        if (auto it = features.tags.find(c.name); it != features.tags.end())
          for (const auto& t : it->second) add(t);
        break;
      case data::FeatureKind::kText:
        if (auto it = features.text.find(c.name); it != features.text.end())
          for (const auto& t : tokenize(it->second)) add(t);
        break;
      case data::FeatureKind::kNumeric:
        if (auto it = features.numeric.find(c.name); it != features.numeric.end() && std::isfinite(it->second))
          out.push_back(c.offset + bucket_of(c, it->second));
        break;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

std::string FeatureSpace::feature_name(int32_t feature) const {
  for (const auto& c : columns_) {
    if (feature < c.offset || feature >= c.offset + static_cast<int32_t>(c.values.size())) continue;
    const std::string& v = c.values[static_cast<size_t>(feature - c.offset)];
    switch (c.kind) {
      case data::FeatureKind::kText: return c.name + ":" + v;
      case data::FeatureKind::kNumeric: return v;
      default: return c.name + "=" + v;
    }
  }
  return fmt::format("feature {}", feature);
}

nlohmann::json FeatureSpace::describe() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& c : columns_)
    out[c.name] = {{"kind", data::feature_kind_name(c.kind)}, {"features", c.values.size()}};
  return out;
}

void FeatureSpace::save(core::ArtifactWriter& writer, const std::string& prefix) const {
  nlohmann::json cols = nlohmann::json::array();
  std::vector<std::string> values;
  for (const auto& c : columns_) {
    nlohmann::json j = {{"name", c.name}, {"kind", data::feature_kind_name(c.kind)}, {"values", c.values.size()}};
    if (c.kind == data::FeatureKind::kNumeric) {
      nlohmann::json e = nlohmann::json::array();
      for (float x : c.edges) e.push_back(static_cast<double>(x));
      j["edges"] = std::move(e);
    }
    cols.push_back(std::move(j));
    values.insert(values.end(), c.values.begin(), c.values.end());
  }
  writer.put_json(prefix + "columns", cols);
  writer.put_strings(prefix + "values", values);
}

FeatureSpace FeatureSpace::load(const core::ArtifactReader& reader, const std::string& prefix) {
  const std::string& origin = reader.origin();
  auto bad = [&](const std::string& what) {
    FEWREC_THROW(kCorrupt, "artifact {}: section `{}columns`: {}", origin, prefix, what);
  };
  const nlohmann::json cols = reader.get_json(prefix + "columns");
  const std::vector<std::string> values = reader.get_strings(prefix + "values");
  if (!cols.is_array()) bad("expected an array of columns");
  FeatureSpace space;
  size_t next = 0;
  for (const auto& j : cols) {
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("kind") ||
        !j["kind"].is_string() || !j.contains("values") || !j["values"].is_number_unsigned())
      bad("a column lacks its name, kind or value count");
    Column c;
    c.name = j["name"].get<std::string>();
    const std::string kind = j["kind"].get<std::string>();
    bool known = false;
    for (auto k : kKinds)
      if (kind == data::feature_kind_name(k)) {
        c.kind = k;
        known = true;
      }
    if (!known) bad(fmt::format("column `{}` has unknown kind `{}`", core::excerpt(c.name), core::excerpt(kind)));
    const auto count = j["values"].get<uint64_t>();
    if (count > values.size() - next)
      bad(fmt::format("column `{}` claims {} values but section `{}values` has {} left", core::excerpt(c.name),
                      count, prefix, values.size() - next));
    c.values.assign(values.begin() + static_cast<std::ptrdiff_t>(next),
                    values.begin() + static_cast<std::ptrdiff_t>(next + count));
    next += count;
    if (c.kind == data::FeatureKind::kNumeric) {
      if (!j.contains("edges") || !j["edges"].is_array())
        bad(fmt::format("numeric column `{}` lacks its edges", c.name));
      for (const auto& e : j["edges"]) {
        if (!e.is_number()) bad(fmt::format("numeric column `{}` has a non-numeric edge", c.name));
        const auto x = static_cast<float>(e.get<double>());
        if (!std::isfinite(x) || (!c.edges.empty() && x <= c.edges.back()))
          bad(fmt::format("numeric column `{}` has edges that are not finite and increasing", c.name));
        c.edges.push_back(x);
      }
      if (c.values.size() != c.edges.size() + 1)
        bad(fmt::format("numeric column `{}` has {} buckets for {} edges", c.name, c.values.size(),
                        c.edges.size()));
    } else {
      std::vector<std::string> sorted = c.values;
      std::sort(sorted.begin(), sorted.end());
      if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
        bad(fmt::format("column `{}` lists a value twice", core::excerpt(c.name)));
    }
    for (const auto& other : space.columns_)
      if (other.name == c.name) bad(fmt::format("column `{}` appears twice", core::excerpt(c.name)));
    space.columns_.push_back(std::move(c));
  }
  if (next != values.size())
    bad(fmt::format("the columns hold {} values but section `{}values` has {}", next, prefix, values.size()));
  try {
    space.finish();
  } catch (const Error& e) {
    bad(e.message());
  }
  return space;
}

}  // namespace fewrec::models::hybrid

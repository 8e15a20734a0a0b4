#include "fewrec/text/item_text.h"

#include <unordered_map>

#include <fmt/format.h>

#include "fewrec/core/artifact.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::text {

std::vector<std::string> item_texts(const data::Catalogue& catalogue, const std::vector<std::string>& fields) {
  const auto& table = catalogue.item_features;
  std::vector<const data::FeatureColumn*> cols;
  if (fields.empty()) {
    for (const auto& c : table.columns())
      if (c.kind == data::FeatureKind::kText) cols.push_back(&c);
    for (const auto& c : table.columns())
      if (c.kind == data::FeatureKind::kTags) cols.push_back(&c);
  } else {
    for (const auto& f : fields) cols.push_back(&table.column(f));  // kNotFound lists the columns
  }
  const int32_t n = catalogue.items.size();
  std::vector<std::string> out(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    std::string& text = out[static_cast<size_t>(i)];
    if (i >= table.rows()) continue;
    for (const auto* c : cols) {
      std::string part;
      switch (c->kind) {
        case data::FeatureKind::kText:
          part = c->texts[static_cast<size_t>(i)];
          break;
        case data::FeatureKind::kTags:
          for (int32_t t : c->tags_of(i)) {
            if (!part.empty()) part += ", ";
            part += c->vocab.id(t);
          }
          break;
        case data::FeatureKind::kCategorical:
          if (int32_t code = c->codes[static_cast<size_t>(i)]; code >= 0) part = c->vocab.id(code);
          break;
        case data::FeatureKind::kNumeric:
          break;  // numbers are not text
      }
      if (part.empty()) continue;
      if (!text.empty()) text += ". ";
      text += part;
    }
  }
  return out;
}

void save_item_vectors(const ItemVectors& v, const std::filesystem::path& path) {
  FEWREC_CHECK(static_cast<int64_t>(v.ids.size()) == v.vectors.rows, kInvalidArgument,
               "item vectors: {} ids for {} rows", v.ids.size(), v.vectors.rows);
  core::ArtifactWriter w("item_vectors");
  w.put_json("vectors/meta", {{"dim", v.vectors.cols}, {"rows", v.vectors.rows}, {"encoder", v.encoder},
                              {"info", v.meta}});
  w.put_strings("vectors/ids", v.ids);
  w.put_array<float>("vectors/data", v.vectors.data);
  w.save(path);
}

ItemVectors load_item_vectors(const std::filesystem::path& path) {
  auto r = core::ArtifactReader::open(path, "item_vectors");
  const auto meta = r.get_json("vectors/meta");
  ItemVectors v;
  v.ids = r.get_strings("vectors/ids");
  v.vectors.rows = static_cast<int64_t>(v.ids.size());
  v.vectors.cols = meta.value("dim", int64_t{0});
  v.vectors.data = r.get_array<float>("vectors/data");
  v.encoder = meta.value("encoder", std::string());
  v.meta = meta.value("info", nlohmann::json::object());
  if (v.vectors.cols <= 0 || v.vectors.data.size() != static_cast<size_t>(v.vectors.rows * v.vectors.cols))
    FEWREC_THROW(kCorrupt, "item vectors `{}`: {} floats for {} ids x dim {}", path.string(), v.vectors.data.size(),
                 v.vectors.rows, v.vectors.cols);
  return v;
}

Matrix align_item_vectors(const ItemVectors& v, const data::IdMap& items, int64_t* missing) {
  std::unordered_map<std::string_view, int64_t> row_of;
  row_of.reserve(v.ids.size());
  for (size_t i = 0; i < v.ids.size(); ++i) row_of.emplace(v.ids[i], static_cast<int64_t>(i));
  Matrix m{items.size(), v.vectors.cols, {}};
  m.data.assign(static_cast<size_t>(m.rows * m.cols), 0.0f);
  int64_t miss = 0;
  for (int32_t i = 0; i < items.size(); ++i) {
    auto it = row_of.find(items.id(i));
    if (it == row_of.end()) {
      ++miss;
      continue;
    }
    std::copy_n(v.vectors.row(it->second), m.cols, m.row(i));
  }
  if (missing) *missing = miss;
  return m;
}

}  // namespace fewrec::text

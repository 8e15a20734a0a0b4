#include "hybrid_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/text/item_text.h"

namespace fewrec::models::hybrid {

namespace {

constexpr int64_t kBatch = 256;  // texts per encoder call

std::string item_columns(const data::FeatureTable& table) {
  std::vector<std::string> names;
  for (const auto& c : table.columns())
    names.push_back(fmt::format("{} ({})", c.name, data::feature_kind_name(c.kind)));
  return names.empty() ? std::string("(none)") : core::join(names, ", ");
}

}  // namespace

std::map<std::string, std::string> parse_encoder_options(std::string_view text, std::string_view what) {
  std::map<std::string, std::string> out;
  const std::string_view t = core::trim(text);
  size_t pos = 0;
  while (pos < t.size()) {
    size_t end = pos;
    while (end < t.size() && t[end] != ';' && t[end] != ',') ++end;
    const std::string_view item = core::trim(t.substr(pos, end - pos));
    pos = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    FEWREC_CHECK(eq != std::string_view::npos, kInvalidArgument,
                 "{}: expected key=value pairs separated by `;` (e.g. dim=128;bigrams=false), got `{}`", what,
                 core::excerpt(item));
    std::string key(core::trim(item.substr(0, eq)));
    FEWREC_CHECK(!key.empty(), kInvalidArgument, "{}: missing option name before `=` in `{}`", what,
                 core::excerpt(item));
    FEWREC_CHECK(!out.count(key), kInvalidArgument, "{}: encoder option `{}` given twice", what, key);
    out.emplace(std::move(key), std::string(core::trim(item.substr(eq + 1))));
  }
  return out;
}

std::string encoder_options_to_string(const std::map<std::string, std::string>& options, std::string_view what) {
  std::vector<std::string> parts;
  for (const auto& [key, value] : options) {
    FEWREC_CHECK(value.find_first_of(",;") == std::string::npos, kInvalidArgument,
                 "{}: the value of encoder option `{}` (`{}`) holds `,` or `;`, which a model spec cannot carry",
                 what, key, core::excerpt(value));
    parts.push_back(key + "=" + value);
  }
  return core::join(parts, ";");
}

void check_text_options(const TextSourceOptions& o, std::string_view model) {
  if (o.encoder != "none") {
    const auto& registry = text::encoder_registry();
    if (!registry.contains(o.encoder)) {
      std::vector<std::string> known{"none"};
      for (const auto* info : registry.list()) known.push_back(info->name);
      FEWREC_THROW(kInvalidArgument, "model `{}`: option `text_encoder`: unknown text encoder `{}`; known: {}",
                   model, core::excerpt(o.encoder), core::join(known, ", "));
    }
    const auto& info = registry.get(o.encoder);
    for (const auto& [key, value] : o.encoder_options) {
      const bool known = std::any_of(info.options.begin(), info.options.end(),
                                     [&](const text::EncoderOptionDoc& d) { return d.key == key; });
      if (!known) {
        std::vector<std::string> keys;
        for (const auto& d : info.options) keys.push_back(d.key);
        FEWREC_THROW(kInvalidArgument,
                     "model `{}`: option `text_options`: text encoder `{}` has no option `{}`; its options: {}",
                     model, o.encoder, core::excerpt(key), keys.empty() ? std::string("(none)") : core::join(keys, ", "));
      }
    }
  }
  FEWREC_CHECK(o.encoder == "none" || o.item_vectors.empty(), kInvalidArgument,
               "model `{}`: give either `text_encoder` (encode the item texts) or `item_vectors` (read them from a "
               "file written by `fewrec encode`), not both",
               model);
  FEWREC_CHECK(o.encoder != "none" || o.encoder_options.empty(), kInvalidArgument,
               "model `{}`: option `text_options` needs a `text_encoder` (now none)", model);
  FEWREC_CHECK(o.encoder != "none" || o.fields.all, kInvalidArgument,
               "model `{}`: option `text_fields` needs a `text_encoder` (the fields of a vector file were fixed "
               "when it was encoded)",
               model);
  FEWREC_CHECK(o.fields.all || !o.fields.names.empty(), kInvalidArgument,
               "model `{}`: option `text_fields` is none: no text to encode (use text_encoder=none)", model);
  FEWREC_CHECK(o.item_vectors.find(',') == std::string::npos, kInvalidArgument,
               "model `{}`: option `item_vectors`: the path `{}` holds a `,`, which a model spec cannot carry",
               model, core::excerpt(o.item_vectors));
}

ItemTextSource::ItemTextSource(TextSourceOptions options, std::string model)
    : o_(std::move(options)), model_(std::move(model)) {}

void ItemTextSource::check_fields(const data::FeatureTable& table) const {
  if (o_.fields.all) return;
  for (const auto& name : o_.fields.names) {
    const auto* c = table.find(name);
    FEWREC_CHECK(c != nullptr, kInvalidArgument,
                 "model `{}`: option `text_fields` names column `{}`, which the item features do not have; item "
                 "feature columns: {}",
                 model_, core::excerpt(name), item_columns(table));
    FEWREC_CHECK(c->kind != data::FeatureKind::kNumeric, kInvalidArgument,
                 "model `{}`: option `text_fields` names numeric column `{}`, which has no text; item feature "
                 "columns: {}",
                 model_, name, item_columns(table));
  }
}

text::Matrix ItemTextSource::vectors(const data::Catalogue& catalogue, int32_t first, core::Monitor& monitor,
                                     int64_t* missing) {
  const int32_t total = catalogue.items.size();
  FEWREC_ASSERT(first >= 0 && first <= total);
  const auto n = static_cast<int64_t>(total - first);
  if (missing) *missing = 0;

  if (!o_.item_vectors.empty()) {
    text::ItemVectors file;
    try {
      file = text::load_item_vectors(o_.item_vectors);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("model `{}`: option `item_vectors`: {}", model_, e.message()), __FILE__,
                  __LINE__);
    }
    data::IdMap items;
    items.reserve(static_cast<size_t>(n));
    for (int32_t i = first; i < total; ++i) items.add(catalogue.items.id(i));
    text::Matrix m = text::align_item_vectors(file, items, missing);
    identity_ = file.encoder;
    dim_ = m.cols;
    return m;
  }

  FEWREC_ASSERT(o_.encoder != "none");
  check_fields(catalogue.item_features);
  if (!encoder_) {
    encoder_ = text::encoder_registry().create(o_.encoder, o_.encoder_options);
    identity_ = encoder_->identity();
    dim_ = encoder_->dim();
  }
  std::vector<std::string> texts = text::item_texts(catalogue, o_.fields.all ? std::vector<std::string>{} : o_.fields.names);
  texts.erase(texts.begin(), texts.begin() + first);
  text::Matrix m{n, dim_, {}};
  m.data.reserve(static_cast<size_t>(n * dim_));
  core::ProgressScope progress(monitor, fmt::format("{} text encoding ({})", model_, o_.encoder), n);
  for (int64_t start = 0; start < n; start += kBatch) {
    const int64_t end = std::min(n, start + kBatch);
    const auto batch =
        encoder_->encode(std::span<const std::string>(texts.data() + start, static_cast<size_t>(end - start)));
    FEWREC_CHECK(batch.rows == end - start && batch.cols == dim_, kInternal,
                 "text encoder `{}` returned a [{} x {}] batch for {} texts of dimension {}", o_.encoder, batch.rows,
                 batch.cols, end - start, dim_);
    m.data.insert(m.data.end(), batch.data.begin(), batch.data.end());
    progress.advance(end - start);
  }
  return m;
}

nlohmann::json ItemTextSource::describe() const {
  nlohmann::json j = {{"identity", identity_}, {"dim", dim_}};
  if (!o_.item_vectors.empty()) {
    j["source"] = "file";
    j["item_vectors"] = o_.item_vectors;
  } else {
    j["source"] = "encoder";
    j["encoder"] = o_.encoder;
    j["fields"] = o_.fields.to_string();
    if (encoder_) {
      const auto c = encoder_->coverage();
      if (c.tokens > 0) j["token_coverage"] = static_cast<double>(c.known_tokens) / static_cast<double>(c.tokens);
    }
  }
  return j;
}

}  // namespace fewrec::models::hybrid

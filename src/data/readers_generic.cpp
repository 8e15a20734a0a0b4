// Generic readers: csv / tsv with a column mapping, jsonl, and the optional
// item side file (csv / tsv with a header, or jsonl).
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <span>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "readers_internal.h"

namespace fewrec::data::detail {

namespace {

constexpr std::string_view kDefaultTextColumns[] = {"title", "name", "description", "text",
                                                    "summary", "overview", "plot"};
constexpr std::string_view kDefaultTagColumns[] = {"genres", "tags", "categories", "keywords"};

bool is_blank(std::string_view line) {
  for (char c : line)
    if (c != ' ' && c != '\t') return false;
  return true;
}

std::string dataset_name(const std::filesystem::path& path) {
  auto p = path;
  if (p.has_filename()) return p.stem().string();
  return p.parent_path().filename().string();
}

bool has_extension(const std::filesystem::path& path, std::initializer_list<std::string_view> exts) {
  const std::string ext = core::to_lower(path.extension().string());
  for (auto e : exts)
    if (ext == e) return true;
  return false;
}

// Separator of the item side file: its extension when it says so (.tsv,
// .csv), else the one of the interactions file.
char separator_for(const ReadOptions& o, const std::filesystem::path& path) {
  if (has_extension(path, {".tsv", ".tab"})) return '\t';
  if (o.format == "tsv") return has_extension(path, {".csv"}) ? ',' : '\t';
  return o.separator;
}

enum class ColumnRole { kId, kText, kTags, kCategorical };

// Roles of the item side-file columns: configured lists, else default names.
std::vector<ColumnRole> item_column_roles(const ReadOptions& o, const std::vector<std::string>& names,
                                          size_t id_index, const std::string& display,
                                          int64_t header_line) {
  std::vector<ColumnRole> roles(names.size(), ColumnRole::kCategorical);
  auto mark = [&](const std::vector<std::string>& wanted, ColumnRole role) {
    for (const auto& w : wanted) {
      auto it = std::find(names.begin(), names.end(), w);
      if (it == names.end())
        FEWREC_THROW(kInvalidArgument, "{}:{}: missing column `{}` in header (columns: {})",
                     display, header_line, w, list_columns(names));
      roles[static_cast<size_t>(it - names.begin())] = role;
    }
  };
  auto mark_defaults = [&](std::span<const std::string_view> defaults, ColumnRole role) {
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string lower = core::to_lower(names[i]);
      for (auto d : defaults)
        if (lower == d && roles[i] == ColumnRole::kCategorical) roles[i] = role;
    }
  };
  if (o.item_text_columns.empty()) mark_defaults(kDefaultTextColumns, ColumnRole::kText);
  else mark(o.item_text_columns, ColumnRole::kText);
  if (o.item_tag_columns.empty()) mark_defaults(kDefaultTagColumns, ColumnRole::kTags);
  else mark(o.item_tag_columns, ColumnRole::kTags);
  roles[id_index] = ColumnRole::kId;
  return roles;
}

void add_tags(FeatureTableBuilder& features, int32_t row, const std::string& column,
              std::string_view value, char sep) {
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t at = value.find(sep, pos);
    if (at == std::string_view::npos) at = value.size();
    const std::string_view tag = trim_blanks(value.substr(pos, at - pos));
    if (!tag.empty()) features.add_tag(row, column, tag);
    pos = at + 1;
  }
}

// Item side file with a header: id column + feature columns. Items not seen
// in the interactions are added (cold items known only by their content).
void read_items_delimited(ReadContext& ctx, const std::filesystem::path& path,
                          DatasetBuilder& builder, IdIndex& items) {
  const ReadOptions& o = ctx.options();
  LineReader reader(path);
  const std::string& display = reader.display();
  ctx.add_file(display);
  core::ProgressScope progress(ctx.monitor(), "read " + path.filename().string(), reader.file_size());
  reader.set_progress(&progress);
  const Encoding enc = parse_encoding(o.encoding);
  const char sep = separator_for(o, path);
  const bool quotes = sep != '\t';
  std::vector<std::string_view> fields;
  std::string scratch, decoded, error;
  std::string_view line, text;

  bool any = false;
  while (reader.next(line))
    if (!is_blank(line)) {
      any = true;
      break;
    }
  FEWREC_CHECK(any, kInvalidArgument, "{}: file is empty (expected a header and item rows)", display);
  const int64_t header_line = reader.line_number();
  if (!decode_line(line, reader.ascii(), enc, decoded, text, error))
    FEWREC_THROW(kInvalidArgument, "{}:{}: {}", display, header_line, error);
  if (!split_fields(text, sep, quotes, fields, scratch, error))
    FEWREC_THROW(kInvalidArgument, "{}:{}: header: {}", display, header_line, error);
  std::vector<std::string> names;
  for (auto h : fields) names.emplace_back(trim_blanks(h));
  Column id_col;
  if (!resolve_column(o.items_id_column, names, true, id_col, error)) {
    if (names.size() == 1) error += separator_hint(text, std::string(1, sep));
    FEWREC_THROW(kInvalidArgument, "{}:{}: {}", display, header_line, error);
  }
  const auto roles = item_column_roles(o, names, static_cast<size_t>(id_col.index), display, header_line);
  const auto add_item = [&](std::string_view id) { return builder.item(id); };
  auto& features = builder.item_features();

  int64_t rows = 0;
  while (reader.next(line)) {
    if (line.empty() || is_blank(line)) continue;
    auto bad = [&](std::string_view what) { ctx.bad_line(display, reader.line_number(), what); };
    if (!decode_line(line, reader.ascii(), enc, decoded, text, error)) {
      bad(error);
      continue;
    }
    if (!split_fields(text, sep, quotes, fields, scratch, error)) {
      bad(error);
      continue;
    }
    if (fields.size() != names.size()) {
      bad(fmt::format("expected {} fields separated by {}, got {}{}", names.size(),
                      quote_separator(std::string(1, sep)), fields.size(),
                      fields.size() == 1 ? separator_hint(text, std::string(1, sep)) : ""));
      continue;
    }
    const std::string_view id = trim_blanks(fields[static_cast<size_t>(id_col.index)]);
    if (id.empty()) {
      bad(fmt::format("column `{}`: empty id", id_col.label));
      continue;
    }
    const int32_t row = items.get(id, add_item);
    for (size_t c = 0; c < names.size(); ++c) {
      const std::string_view v = trim_blanks(fields[c]);
      if (v.empty()) continue;
      switch (roles[c]) {
        case ColumnRole::kId: break;
        case ColumnRole::kText: features.set_text(row, names[c], std::string(v)); break;
        case ColumnRole::kTags: add_tags(features, row, names[c], v, o.tag_separator); break;
        case ColumnRole::kCategorical: features.set_categorical(row, names[c], v); break;
      }
    }
    ++rows;
  }
  FEWREC_CHECK(rows > 0 || ctx.bad_lines() > 0, kInvalidArgument,
               "{}: no item rows after the header (line {})", display, header_line);
}

std::string json_error_text(const std::exception& e) {
  std::string_view what = e.what();
  if (!what.empty() && what.front() == '[') {  // "[json.exception.parse_error.101] parse error ..."
    const size_t close = what.find("] ");
    if (close != std::string_view::npos) what.remove_prefix(close + 2);
  }
  return std::string(what);
}

std::string json_type(const nlohmann::json& v) { return v.type_name(); }

std::string json_fields(const nlohmann::json& obj) {
  std::string out;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!out.empty()) out += ", ";
    out += it.key();
  }
  return out.empty() ? "none" : out;
}

// Reads one JSONL line into `obj`; false (reported) when it is not an object.
bool parse_json_line(ReadContext& ctx, const std::string& display, int64_t line_no,
                     std::string_view text, nlohmann::json& obj) {
  try {
    obj = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    ctx.bad_line(display, line_no, "invalid JSON: " + json_error_text(e));
    return false;
  }
  if (!obj.is_object()) {
    ctx.bad_line(display, line_no, fmt::format("expected a JSON object, got {}", json_type(obj)));
    return false;
  }
  return true;
}

// Id field: a string or an integer number.
bool json_id(const nlohmann::json& obj, const std::string& name, std::string& out,
             std::string& error) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    error = fmt::format("missing field `{}` (fields: {})", name, json_fields(obj));
    return false;
  }
  if (it->is_string()) out = it->get<std::string>();
  else if (it->is_number_integer() || it->is_number_unsigned()) out = it->dump();
  else if (it->is_number_float()) {
    const double d = it->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15)
      out = std::to_string(static_cast<int64_t>(d));
    else out = it->dump();
  } else {
    error = fmt::format("field `{}`: expected a string or number id, got {}", name, json_type(*it));
    return false;
  }
  out = std::string(trim_blanks(out));
  if (out.empty()) {
    error = fmt::format("field `{}`: empty id", name);
    return false;
  }
  return true;
}

bool json_float(const nlohmann::json& obj, const std::string& name, float& out, std::string& error) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    error = fmt::format("missing field `{}` (fields: {})", name, json_fields(obj));
    return false;
  }
  if (it->is_number()) {
    const double d = it->get<double>();
    out = static_cast<float>(d);
    if (std::isfinite(out)) return true;
  } else if (it->is_string() && parse_float32(it->get_ref<const std::string&>(), out)) {
    return true;
  }
  error = fmt::format("field `{}`: expected a number, got {}", name,
                      core::excerpt(it->dump(), 40));
  return false;
}

bool json_timestamp(const nlohmann::json& obj, const std::string& name, int64_t& out,
                    std::string& error) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    error = fmt::format("missing field `{}` (fields: {})", name, json_fields(obj));
    return false;
  }
  if (it->is_number_integer()) {
    out = it->get<int64_t>();
    return true;
  }
  if (it->is_number()) {
    const double d = it->get<double>();
    if (std::isfinite(d) && std::fabs(d) < 9e18) {
      out = static_cast<int64_t>(std::llround(d));
      return true;
    }
  } else if (it->is_string() && parse_timestamp(it->get_ref<const std::string&>(), out)) {
    return true;
  }
  error = fmt::format("field `{}`: expected a unix time or an ISO-8601 date, got {}", name,
                      core::excerpt(it->dump(), 40));
  return false;
}

void read_items_jsonl(ReadContext& ctx, const std::filesystem::path& path, DatasetBuilder& builder,
                      IdIndex& items) {
  const ReadOptions& o = ctx.options();
  LineReader reader(path);
  const std::string& display = reader.display();
  ctx.add_file(display);
  const Encoding enc = parse_encoding(o.encoding);
  std::set<std::string, std::less<>> text_cols(o.item_text_columns.begin(), o.item_text_columns.end());
  std::set<std::string, std::less<>> tag_cols(o.item_tag_columns.begin(), o.item_tag_columns.end());
  if (o.item_text_columns.empty()) text_cols.insert(std::begin(kDefaultTextColumns), std::end(kDefaultTextColumns));
  if (o.item_tag_columns.empty()) tag_cols.insert(std::begin(kDefaultTagColumns), std::end(kDefaultTagColumns));
  const auto add_item = [&](std::string_view id) { return builder.item(id); };
  auto& features = builder.item_features();
  std::string decoded, error, id;
  std::string_view line, text;
  nlohmann::json obj;
  int64_t rows = 0;
  bool any = false;
  while (reader.next(line)) {
    if (line.empty() || is_blank(line)) continue;
    any = true;
    const int64_t ln = reader.line_number();
    if (!decode_line(line, reader.ascii(), enc, decoded, text, error)) {
      ctx.bad_line(display, ln, error);
      continue;
    }
    if (!parse_json_line(ctx, display, ln, text, obj)) continue;
    if (!json_id(obj, o.items_id_column, id, error)) {
      ctx.bad_line(display, ln, error);
      continue;
    }
    const int32_t row = items.get(id, add_item);
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      const std::string& key = it.key();
      if (key == o.items_id_column || it->is_null()) continue;
      const auto& v = *it;
      if (tag_cols.count(key)) {
        if (v.is_array()) {
          for (const auto& t : v)
            if (t.is_string()) {
              const auto tag = trim_blanks(t.get_ref<const std::string&>());
              if (!tag.empty()) features.add_tag(row, key, tag);
            } else if (t.is_number()) {
              features.add_tag(row, key, t.dump());
            }
        } else if (v.is_string()) {
          add_tags(features, row, key, v.get_ref<const std::string&>(), o.tag_separator);
        }
      } else if (text_cols.count(key)) {
        if (v.is_string()) features.set_text(row, key, v.get<std::string>());
      } else if (v.is_number()) {
        features.set_numeric(row, key, v.get<float>());
      } else if (v.is_string()) {
        const auto s = trim_blanks(v.get_ref<const std::string&>());
        if (!s.empty()) features.set_categorical(row, key, s);
      } else if (v.is_boolean()) {
        features.set_categorical(row, key, v.get<bool>() ? "true" : "false");
      } else if (v.is_array()) {
        for (const auto& t : v)
          if (t.is_string()) features.add_tag(row, key, t.get_ref<const std::string&>());
      }
    }
    ++rows;
  }
  FEWREC_CHECK(any, kInvalidArgument, "{}: file is empty (expected one JSON object per line)", display);
}

void read_items_file(ReadContext& ctx, DatasetBuilder& builder, IdIndex& items) {
  const auto& path = ctx.options().items_path;
  if (has_extension(path, {".jsonl", ".json", ".ndjson"})) read_items_jsonl(ctx, path, builder, items);
  else read_items_delimited(ctx, path, builder, items);
}

}  // namespace

Dataset read_delimited(const ReadOptions& options, ReadReport* report, core::Monitor* monitor) {
  ReadContext ctx(options, report, monitor);
  FEWREC_CHECK(!options.path.empty(), kInvalidArgument,
               "no input file: set data.path to the {} file to read", options.format);
  InteractionFile f;
  f.path = options.path;
  const char sep = options.format == "tsv" ? '\t' : options.separator;
  f.sep = std::string(1, sep);
  f.quotes = sep != '\t';  // TSV fields are never quoted
  f.has_header = options.has_header;
  f.user = options.user_column;
  f.item = options.item_column;
  f.value = options.value_column;
  f.timestamp = options.timestamp_column;
  f.event = options.event_column;
  f.weight = options.weight_column;
  f.encoding = parse_encoding(options.encoding);
  DatasetBuilder builder;
  IdIndex users, items;
  read_interactions(ctx, f, builder, users, items);
  if (!options.items_path.empty()) read_items_file(ctx, builder, items);
  return build_dataset(ctx, std::move(builder), dataset_name(options.path));
}

Dataset read_jsonl(const ReadOptions& options, ReadReport* report, core::Monitor* monitor) {
  ReadContext ctx(options, report, monitor);
  const ReadOptions& o = options;
  FEWREC_CHECK(!o.path.empty(), kInvalidArgument, "no input file: set data.path to the jsonl file to read");
  FEWREC_CHECK(o.max_rows != 0, kInvalidArgument,
               "max_rows: expected -1 (all) or a positive count, got 0");
  FEWREC_CHECK(!o.user_column.empty() && !o.item_column.empty(), kInvalidArgument,
               "{}: the user and item fields must be set (data.user_column, data.item_column)",
               o.path.string());
  LineReader reader(o.path);
  const std::string& display = reader.display();
  ctx.add_file(display);
  core::ProgressScope progress(ctx.monitor(), "read " + o.path.filename().string(), reader.file_size());
  reader.set_progress(&progress);
  const Encoding enc = parse_encoding(o.encoding);

  DatasetBuilder builder;
  IdIndex users, items;
  const auto add_user = [&](std::string_view id) { return builder.user(id); };
  const auto add_item = [&](std::string_view id) { return builder.item(id); };
  std::map<std::string, EventType, std::less<>> events;
  std::string decoded, error, uid, iid;
  std::string_view line, text;
  nlohmann::json obj;
  int64_t rows = 0, data_lines = 0;
  while (reader.next(line)) {
    if (line.empty() || is_blank(line)) continue;
    ++data_lines;
    const int64_t ln = reader.line_number();
    auto bad = [&](std::string_view what) { ctx.bad_line(display, ln, what); };
    if (!decode_line(line, reader.ascii(), enc, decoded, text, error)) {
      bad(error);
      continue;
    }
    if (!parse_json_line(ctx, display, ln, text, obj)) continue;
    if (!json_id(obj, o.user_column, uid, error) || !json_id(obj, o.item_column, iid, error)) {
      bad(error);
      continue;
    }
    float value = 1.0f, weight = 1.0f;
    int64_t ts = static_cast<int64_t>(builder.size());
    EventType event = 0;
    if (!o.value_column.empty() && !json_float(obj, o.value_column, value, error)) {
      bad(error);
      continue;
    }
    if (!o.timestamp_column.empty() && !json_timestamp(obj, o.timestamp_column, ts, error)) {
      bad(error);
      continue;
    }
    if (!o.weight_column.empty() && !json_float(obj, o.weight_column, weight, error)) {
      bad(error);
      continue;
    }
    if (!o.event_column.empty()) {
      auto it = obj.find(o.event_column);
      if (it != obj.end() && !it->is_null()) {
        std::string name;
        if (it->is_string()) name = std::string(trim_blanks(it->get_ref<const std::string&>()));
        else if (it->is_number()) name = it->dump();
        else {
          bad(fmt::format("field `{}`: expected an event type name, got {}", o.event_column,
                          json_type(*it)));
          continue;
        }
        if (!name.empty()) {
          auto e = events.find(name);
          if (e == events.end()) e = events.emplace(name, builder.event_type(name)).first;
          event = e->second;
        }
      }
    }
    builder.add(users.get(uid, add_user), items.get(iid, add_item), ts, value, event, weight);
    if (++rows == o.max_rows) break;
  }
  if (rows == 0) {
    if (data_lines == 0)
      FEWREC_THROW(kInvalidArgument, "{}: file is empty (expected one JSON object per line)", display);
    FEWREC_THROW(kInvalidArgument, "{}: no valid data rows ({} bad line{} skipped; first: {})",
                 display, ctx.bad_lines(), ctx.bad_lines() == 1 ? "" : "s",
                 ctx.report().first_errors.empty() ? "" : ctx.report().first_errors.front());
  }
  progress.finish();
  if (!o.items_path.empty()) read_items_file(ctx, builder, items);
  return build_dataset(ctx, std::move(builder), dataset_name(o.path));
}

}  // namespace fewrec::data::detail

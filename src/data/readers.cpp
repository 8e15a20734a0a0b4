// Readers: options from the config, dispatch on the format, and the shared
// interactions loop used by every delimited format (csv, tsv, u.data,
// ratings.dat, ratings.csv).
#include "fewrec/data/readers.h"

#include <algorithm>
#include <string_view>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/strings.h"
#include "readers_internal.h"

namespace fewrec::data {

namespace {

constexpr std::string_view kFormats[] = {"movielens-100k", "movielens-1m", "movielens-latest",
                                         "csv",            "tsv",          "jsonl"};

std::string valid_formats() {
  std::string out;
  for (auto f : kFormats) {
    if (!out.empty()) out += ", ";
    out += f;
  }
  return out;
}

[[noreturn]] void throw_unknown_format(std::string_view format) {
  std::vector<std::string> names(std::begin(kFormats), std::end(kFormats));
  std::string hint = core::closest_match(format, names);
  if (hint.empty() && core::starts_with(format, "ml-")) {
    const std::string guess = "movielens-" + std::string(format.substr(3));
    for (const auto& n : names)
      if (core::starts_with(guess, n) || core::starts_with(n, guess)) hint = n;
  }
  FEWREC_THROW(kInvalidArgument, "unknown data format `{}` (valid: {}){}", format, valid_formats(),
               hint.empty() ? "" : fmt::format("; did you mean `{}`?", hint));
}

// "\t", "\\t", "tab" -> '\t'; otherwise exactly one character.
char parse_separator(const std::string& key, const std::string& text) {
  if (text == "\t" || text == "\\t" || text == "tab") return '\t';
  if (text == "space") return ' ';
  FEWREC_CHECK(text.size() == 1, kInvalidArgument,
               "config key `{}`: expected one character (or \"\\t\" / \"tab\"), got `{}`", key,
               text);
  return text[0];
}

}  // namespace

ReadOptions ReadOptions::from_config(core::Config& config) {
  ReadOptions o;
  o.format = config.get_string(
      "data.format", o.format,
      "input format: movielens-100k, movielens-1m, movielens-latest, csv, tsv, jsonl");
  if (std::find(std::begin(kFormats), std::end(kFormats), o.format) == std::end(kFormats))
    throw_unknown_format(o.format);
  o.path = config.require_string(
      "data.path", "input file (csv, tsv, jsonl) or folder (movielens-*) to read");
  const bool tsv = o.format == "tsv";
  const std::string sep = config.get_string(
      "data.separator", tsv ? "\\t" : ",",
      "field separator of csv files, one character or \"\\t\" (tsv always uses a tab)");
  o.separator = tsv ? '\t' : parse_separator("data.separator", sep);
  o.has_header = config.get_bool(
      "data.header", o.has_header,
      "csv/tsv: the first line names the columns (else columns are 0-based indices)");
  o.user_column = config.get_string("data.user_column", o.user_column,
                                    "column (or JSON field) holding the user id");
  o.item_column = config.get_string("data.item_column", o.item_column,
                                    "column (or JSON field) holding the item id");
  o.value_column = config.get_string("data.value_column", o.value_column,
                                     "column with the rating / strength (empty: every value is 1)");
  o.timestamp_column = config.get_string(
      "data.timestamp_column", o.timestamp_column,
      "column with unix seconds or an ISO-8601 date (empty: the row order)");
  o.event_column = config.get_string("data.event_column", o.event_column,
                                     "column with the event type name (empty: one type)");
  o.weight_column = config.get_string("data.weight_column", o.weight_column,
                                      "column with a per-interaction weight (empty: 1)");
  o.items_path = config.get_string("data.items_path", "",
                                   "optional item side file (csv/tsv with a header, or jsonl)");
  o.items_id_column = config.get_string("data.items_id_column", o.items_id_column,
                                        "item id column of the item side file");
  o.item_text_columns = config.get_list(
      "data.item_text_columns", o.item_text_columns,
      "item side-file columns read as text (empty: title/name/description/text if present)");
  o.item_tag_columns = config.get_list(
      "data.item_tag_columns", o.item_tag_columns,
      "item side-file columns split into tags (empty: genres/tags/categories if present)");
  o.tag_separator = parse_separator(
      "data.tag_separator",
      config.get_string("data.tag_separator", std::string(1, o.tag_separator),
                        "separator inside tag columns"));
  o.encoding = config.get_string("data.encoding", o.encoding,
                                 "input encoding: utf-8 (validated) or latin-1 (converted)");
  switch (detail::parse_encoding(o.encoding)) {
    case detail::Encoding::kUtf8: o.encoding = "utf-8"; break;
    case detail::Encoding::kLatin1: o.encoding = "latin-1"; break;
    case detail::Encoding::kAuto: o.encoding = "auto"; break;
  }
  o.skip_bad_lines = config.get_bool(
      "data.skip_bad_lines", o.skip_bad_lines,
      "skip malformed lines (counted, first 10 reported) instead of failing");
  o.max_rows = config.get_int("data.max_rows", o.max_rows,
                              "stop after this many interactions (-1: read all)");
  FEWREC_CHECK(o.max_rows == -1 || o.max_rows > 0, kInvalidArgument,
               "config key `data.max_rows`: expected -1 (all) or a positive count, got {}",
               o.max_rows);
  return o;
}

nlohmann::json ReadReport::to_json() const {
  return nlohmann::json{{"rows", rows},
                        {"bad_lines", bad_lines},
                        {"first_errors", first_errors},
                        {"files", files}};
}

Dataset read_dataset(const ReadOptions& options, ReadReport* report, core::Monitor* monitor) {
  const std::string& f = options.format;
  if (f == "movielens-100k") return detail::read_movielens_100k(options, report, monitor);
  if (f == "movielens-1m") return detail::read_movielens_1m(options, report, monitor);
  if (f == "movielens-latest") return detail::read_movielens_latest(options, report, monitor);
  if (f == "csv" || f == "tsv") return detail::read_delimited(options, report, monitor);
  if (f == "jsonl") return detail::read_jsonl(options, report, monitor);
  throw_unknown_format(f);
}

Dataset read_movielens_100k(const ReadOptions& options, ReadReport* report) {
  return detail::read_movielens_100k(options, report, nullptr);
}
Dataset read_movielens_1m(const ReadOptions& options, ReadReport* report) {
  return detail::read_movielens_1m(options, report, nullptr);
}
Dataset read_movielens_latest(const ReadOptions& options, ReadReport* report) {
  return detail::read_movielens_latest(options, report, nullptr);
}
Dataset read_delimited(const ReadOptions& options, ReadReport* report) {
  return detail::read_delimited(options, report, nullptr);
}
Dataset read_jsonl(const ReadOptions& options, ReadReport* report) {
  return detail::read_jsonl(options, report, nullptr);
}

namespace detail {

namespace {

bool is_blank(std::string_view line) {
  for (char c : line)
    if (c != ' ' && c != '\t') return false;
  return true;
}

struct EventHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace

int64_t read_interactions(ReadContext& ctx, const InteractionFile& f, DatasetBuilder& builder,
                          IdIndex& users, IdIndex& items) {
  const ReadOptions& opt = ctx.options();
  FEWREC_CHECK(opt.max_rows != 0, kInvalidArgument,
               "max_rows: expected -1 (all) or a positive count, got 0");
  FEWREC_ASSERT(!f.sep.empty());
  LineReader reader(f.path, f.display);
  const std::string& display = reader.display();
  ctx.add_file(display);
  core::ProgressScope progress(ctx.monitor(), "read " + f.path.filename().string(),
                               reader.file_size());
  reader.set_progress(&progress);

  const bool single = f.sep.size() == 1;
  const char sep = f.sep[0];
  const std::string sep_shown = quote_separator(f.sep);
  std::vector<std::string_view> fields;
  fields.reserve(16);
  std::string scratch, decoded, error;

  auto split = [&](std::string_view text) -> bool {
    if (single) return split_fields(text, sep, f.quotes, fields, scratch, error);
    split_fields(text, std::string_view(f.sep), fields);
    return true;
  };

  // Header.
  std::vector<std::string> header;
  std::string_view line;
  bool any_line = false;
  int64_t header_line = 0;
  if (f.has_header) {
    while (reader.next(line)) {
      if (!is_blank(line)) {
        any_line = true;
        break;
      }
    }
    FEWREC_CHECK(any_line, kInvalidArgument, "{}: file is empty (expected a header and data rows)",
                 display);
    header_line = reader.line_number();
    std::string_view text;
    if (!decode_line(line, reader.ascii(), f.encoding, decoded, text, error))
      FEWREC_THROW(kInvalidArgument, "{}:{}: {}", display, header_line, error);
    if (!split(text)) FEWREC_THROW(kInvalidArgument, "{}:{}: header: {}", display, header_line, error);
    header.reserve(fields.size());
    for (auto h : fields) header.emplace_back(trim_blanks(h));
  }
  const std::string header_text = header.size() == 1 ? header.front() : std::string();

  // Columns.
  Column cu, ci, cv, ct, ce, cw;
  auto resolve = [&](const std::string& spec, const std::string& label, Column& col) {
    if (!resolve_column(spec, header, f.has_header, col, error)) {
      if (f.has_header) {
        if (header.size() == 1) error += separator_hint(header_text, f.sep);
        FEWREC_THROW(kInvalidArgument, "{}:{}: {}", display, header_line, error);
      }
      FEWREC_THROW(kInvalidArgument, "{}: {}", display, error);
    }
    if (!f.has_header && !label.empty()) col.label = label;
  };
  FEWREC_CHECK(!f.user.empty() && !f.item.empty(), kInvalidArgument,
               "{}: the user and item columns must be set (data.user_column, data.item_column)",
               display);
  resolve(f.user, f.user_label, cu);
  resolve(f.item, f.item_label, ci);
  resolve(f.value, f.value_label, cv);
  resolve(f.timestamp, f.timestamp_label, ct);
  resolve(f.event, f.event_label, ce);
  resolve(f.weight, f.weight_label, cw);
  const size_t needed =
      static_cast<size_t>(std::max({cu.index, ci.index, cv.index, ct.index, ce.index, cw.index}) + 1);
  const size_t exact = f.has_header ? header.size() : static_cast<size_t>(std::max(0, f.exact_fields));
  if (exact > 0 && needed > exact)
    FEWREC_THROW(kInvalidArgument, "{}: column index {} is out of range ({} fields per line)",
                 display, needed - 1, exact);

  std::unordered_map<std::string, EventType, EventHash, std::equal_to<>> event_cache;
  const auto add_user = [&](std::string_view id) { return builder.user(id); };
  const auto add_item = [&](std::string_view id) { return builder.item(id); };

  int64_t rows = 0;
  int64_t data_lines = 0;
  bool reserved = false;
  const int64_t max_rows = opt.max_rows;

  auto bad = [&](std::string_view what) { ctx.bad_line(display, reader.line_number(), what); };
  auto number_error = [&](const Column& c, std::string_view field, std::string_view expected) {
    bad(fmt::format("column `{}`: expected {}, got `{}`", c.label, expected,
                    core::excerpt(trim_blanks(field), 40)));
  };
  auto id_of = [&](const Column& c, std::string_view& id) -> bool {
    id = fields[static_cast<size_t>(c.index)];
    if (!id.empty() && (id.front() == ' ' || id.back() == ' ' || id.front() == '\t' ||
                        id.back() == '\t'))
      id = trim_blanks(id);
    if (id.empty()) {
      bad(fmt::format("column `{}`: empty id", c.label));
      return false;
    }
    return true;
  };

  while (reader.next(line)) {
    if (line.empty() || ((line.front() == ' ' || line.front() == '\t') && is_blank(line))) continue;
    any_line = true;
    ++data_lines;
    if (!reserved && (data_lines == 1024 || reader.bytes_consumed() > (1 << 20))) {
      // Estimate the row count from the bytes per line so far; reserved but
      // untouched capacity costs address space, not memory.
      reserved = true;
      const double per_line = static_cast<double>(reader.bytes_consumed()) /
                              static_cast<double>(reader.line_number());
      int64_t estimate = static_cast<int64_t>(static_cast<double>(reader.file_size()) / per_line * 1.1) + 1024;
      if (max_rows > 0) estimate = std::min(estimate, max_rows);
      builder.reserve(builder.size() + static_cast<size_t>(estimate));
    }
    std::string_view text = line;
    if (!reader.ascii() && !decode_line(line, false, f.encoding, decoded, text, error)) {
      bad(error);
      continue;
    }
    if (!split(text)) {
      bad(error);
      continue;
    }
    const size_t got = fields.size();
    if (exact > 0 ? got != exact : got < needed) {
      bad(fmt::format("expected {}{} fields separated by {}, got {}{}", exact > 0 ? "" : "at least ",
                      exact > 0 ? exact : needed, sep_shown, got,
                      got == 1 ? separator_hint(text, f.sep) : std::string()));
      continue;
    }
    std::string_view uid, iid;
    if (!id_of(cu, uid) || !id_of(ci, iid)) continue;
    float value = 1.0f;
    if (cv.index >= 0) {
      const std::string_view s = fields[static_cast<size_t>(cv.index)];
      if (!parse_float32(s, value)) {
        number_error(cv, s, "a number");
        continue;
      }
    }
    int64_t ts = builder.size();  // row order when there is no timestamp column
    if (ct.index >= 0) {
      const std::string_view s = fields[static_cast<size_t>(ct.index)];
      if (!parse_timestamp(s, ts)) {
        number_error(ct, s, "a unix time or an ISO-8601 date");
        continue;
      }
    }
    EventType event = 0;
    if (ce.index >= 0) {
      const std::string_view name = trim_blanks(fields[static_cast<size_t>(ce.index)]);
      if (!name.empty()) {
        auto it = event_cache.find(name);
        if (it == event_cache.end())
          it = event_cache.emplace(std::string(name), builder.event_type(name)).first;
        event = it->second;
      }
    }
    float weight = 1.0f;
    if (cw.index >= 0) {
      const std::string_view s = fields[static_cast<size_t>(cw.index)];
      if (!parse_float32(s, weight)) {
        number_error(cw, s, "a number");
        continue;
      }
    }
    // Ids are mapped only once the whole line is valid: a bad line adds no id.
    const UserIndex u = users.get(uid, add_user);
    const ItemIndex i = items.get(iid, add_item);
    builder.add(u, i, ts, value, event, weight);
    if (++rows == max_rows) break;
  }

  if (rows == 0) {
    if (!any_line)
      FEWREC_THROW(kInvalidArgument, "{}: file is empty (expected {}data rows)", display,
                   f.has_header ? "a header and " : "");
    if (data_lines == 0)
      FEWREC_THROW(kInvalidArgument, "{}: no data rows after the header (line {})", display,
                   header_line);
    FEWREC_THROW(kInvalidArgument, "{}: no valid data rows ({} bad line{} skipped; first: {})",
                 display, ctx.bad_lines(), ctx.bad_lines() == 1 ? "" : "s",
                 ctx.report().first_errors.empty() ? "" : ctx.report().first_errors.front());
  }
  progress.finish();
  return rows;
}

Dataset build_dataset(ReadContext& ctx, DatasetBuilder&& builder, std::string name) {
  const auto rows = static_cast<int64_t>(builder.size());
  core::ProgressScope scope(ctx.monitor(), "build dataset", rows);
  Dataset ds = std::move(builder).build(std::move(name));
  scope.advance(rows);
  scope.finish();
  ctx.finish(ds.num_interactions());
  return ds;
}

}  // namespace detail
}  // namespace fewrec::data

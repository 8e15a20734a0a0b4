// Readers: MovieLens 100K / 1M / latest(-small) and generic CSV / TSV / JSONL.
//
// Every error names the file, the line (1-based) and what was expected:
//   "ratings.csv:17: expected 4 fields separated by ',', got 3"
//   "u.data:5: column `rating`: expected a number, got `abc`"
// With skip_bad_lines the reader counts bad lines and keeps the first few
// messages in the ReadReport instead of throwing. An empty file (no data
// rows) is always an error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/data/dataset.h"

namespace fewrec::core {
class Config;
class Monitor;
}  // namespace fewrec::core

namespace fewrec::data {

// Formats: "movielens-100k", "movielens-1m", "movielens-latest", "csv",
// "tsv", "jsonl". For MovieLens `path` is the directory holding the files.
struct ReadOptions {
  std::string format = "csv";
  std::filesystem::path path;
  // Generic formats: column mapping. For csv/tsv a column is a header name
  // (when has_header) or a 0-based index written as a number ("0").
  char separator = ',';  // csv default ','; tsv forces '\t'
  bool has_header = true;
  std::string user_column = "user";
  std::string item_column = "item";
  std::string value_column;      // optional ("" = every value 1)
  std::string timestamp_column;  // optional ("" = row order)
  std::string event_column;      // optional event type names
  std::string weight_column;     // optional
  // Optional item side file (csv/tsv with header, or .jsonl): item id column +
  // feature columns. Text columns become kText, `item_tag_columns` are split on
  // `tag_separator` into kTags, other columns become categorical (JSON numbers:
  // numeric). Empty lists mean: columns named title/name/description/text/
  // summary/overview/plot are text, genres/tags/categories/keywords are tags.
  std::filesystem::path items_path;
  std::string items_id_column = "item";
  std::vector<std::string> item_text_columns;
  std::vector<std::string> item_tag_columns;
  char tag_separator = '|';
  // Encoding of the input: "utf-8" (validated; invalid bytes are an error
  // naming the line) or "latin-1" (converted). MovieLens 100K / 1M side files
  // are Latin-1 by definition.
  std::string encoding = "utf-8";
  bool skip_bad_lines = false;
  int64_t max_rows = -1;  // stop after this many interactions (-1 = all)

  // Reads keys data.format, data.path, data.separator, data.header,
  // data.user_column, ... (see README) from the config.
  static ReadOptions from_config(core::Config& config);
};

struct ReadReport {
  int64_t rows = 0;          // interactions read
  int64_t bad_lines = 0;     // skipped (only with skip_bad_lines)
  std::vector<std::string> first_errors;  // up to 10 messages
  std::vector<std::string> files;         // files read
  nlohmann::json to_json() const;
};

// Dispatches on options.format.
Dataset read_dataset(const ReadOptions& options, ReadReport* report = nullptr,
                     core::Monitor* monitor = nullptr);

// Format-specific entry points (same error conventions).
//  100K: u.data (user \t item \t rating \t timestamp), u.item (Latin-1, '|':
//        id|title|date|video date|url|19 genre flags), u.user (id|age|gender|occupation|zip).
//  1M:   ratings.dat, movies.dat, users.dat ('::'-separated, Latin-1).
//  latest: ratings.csv, movies.csv (quoted CSV, genres '|'), tags.csv (optional).
// Item features produced: text "title", tags "genres", numeric "year" when
// present; user features: categorical "gender", "occupation", "zip", "age"
// (age bucket: "Under 18", "18-24", ..., "56+") and numeric "age_years" (the
// age for 100K, the bucket's lower bound for 1M); latest: tags "tags" from
// tags.csv (case-folded). The catalogue holds the users and items that have
// ratings; side files only add features to them (the generic items file, by
// contrast, adds its items: cold items known by content). The 100K / 1M side
// files are read as UTF-8 when valid, else converted from Latin-1.
Dataset read_movielens_100k(const ReadOptions& options, ReadReport* report = nullptr);
Dataset read_movielens_1m(const ReadOptions& options, ReadReport* report = nullptr);
Dataset read_movielens_latest(const ReadOptions& options, ReadReport* report = nullptr);
Dataset read_delimited(const ReadOptions& options, ReadReport* report = nullptr);
Dataset read_jsonl(const ReadOptions& options, ReadReport* report = nullptr);

// Splits one line of RFC-4180 CSV (quotes, doubled quotes). Throws
// kInvalidArgument "unterminated quoted field" for a broken line. A quoted
// field may not span lines in our readers (documented limitation).
std::vector<std::string> split_csv_line(std::string_view line, char separator);

}  // namespace fewrec::data

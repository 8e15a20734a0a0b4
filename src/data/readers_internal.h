// Private building blocks of the readers (not installed, not public API):
// a buffered line reader, field splitting, strict number parsing, encoding
// handling, bad-line bookkeeping and a fast numeric-id cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fewrec/core/monitor.h"
#include "fewrec/data/dataset.h"
#include "fewrec/data/readers.h"

namespace fewrec::data::detail {

// ---------------------------------------------------------------- files

// Reads a file line by line through a large buffer (the whole file is never
// held in memory). Lines come without their terminator ("\n" or "\r\n"); a
// UTF-8 byte-order mark at the start is dropped.
class LineReader {
 public:
  // Throws kNotFound ("cannot open `path`: No such file or directory") or kIo.
  // `display` names the file in messages (the path as given by default).
  explicit LineReader(const std::filesystem::path& path, std::string display = "",
                      size_t buffer_size = size_t{4} << 20);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Next line; false at the end of the file.
  bool next(std::string_view& line);
  // 1-based number of the line last returned by next().
  int64_t line_number() const { return line_no_; }
  // True when every byte of the buffered window holding the current line is
  // ASCII (lets callers skip UTF-8 validation on the fast path).
  bool ascii() const { return ascii_; }
  int64_t file_size() const { return file_size_; }
  int64_t bytes_consumed() const { return consumed_; }
  const std::string& display() const { return display_; }
  // Advances `progress` by the bytes read (optional).
  void set_progress(core::ProgressScope* progress) { progress_ = progress; }

 private:
  bool refill();
  int fd_ = -1;
  std::string display_;
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t begin_ = 0;  // start of unread data
  size_t end_ = 0;    // end of valid data
  bool eof_ = false;
  bool ascii_ = true;
  bool first_ = true;
  int64_t line_no_ = 0;
  int64_t file_size_ = 0;
  int64_t consumed_ = 0;
  core::ProgressScope* progress_ = nullptr;
};

// "cannot open `path`: <strerror>" as kNotFound (missing) or kIo.
[[noreturn]] void throw_open_error(const std::string& display, int err);

// ------------------------------------------------------------- encoding

enum class Encoding { kUtf8, kLatin1, kAuto };  // kAuto: UTF-8 when valid, else Latin-1
Encoding parse_encoding(std::string_view name);  // throws listing the valid names

// Sets `out` to the line as UTF-8 (a view of `line` or of `scratch`); false
// with a message in `error` when the line is not valid UTF-8 under kUtf8.
bool decode_line(std::string_view line, bool ascii, Encoding enc, std::string& scratch,
                 std::string_view& out, std::string& error);

bool all_ascii(const char* p, size_t n);

// --------------------------------------------------------------- fields

// Splits on `sep`; when `quotes`, fields starting with '"' are RFC-4180 quoted
// (doubled quotes unescape into `scratch`). Views point into `line` or
// `scratch`. False (with `error`) on an unterminated quoted field.
bool split_fields(std::string_view line, char sep, bool quotes, std::vector<std::string_view>& fields,
                  std::string& scratch, std::string& error);
// Splits on a multi-character separator ("::").
void split_fields(std::string_view line, std::string_view sep, std::vector<std::string_view>& fields);

// '\t' -> "'\t'", "::" -> "'::'"
std::string quote_separator(std::string_view sep);
// " — is the separator right?" plus a hint naming a separator the line contains.
std::string separator_hint(std::string_view line, std::string_view sep);

// -------------------------------------------------------------- numbers

std::string_view trim_blanks(std::string_view s);
bool parse_int64(std::string_view s, int64_t& out);
bool parse_float32(std::string_view s, float& out);  // finite only
// Unix seconds as an integer, a decimal number, or an ISO-8601 date / date-time
// ("2020-01-31", "2020-01-31T12:00:00Z", "2020-01-31 12:00:00+02:00").
bool parse_timestamp(std::string_view s, int64_t& out);
// Year from a MovieLens title "Heat (1995)" / "Babylon 5 (1994–1998)" or a
// date "01-Jan-1995"; 0 when none.
int parse_title_year(std::string_view title);
int parse_date_year(std::string_view date);

// ------------------------------------------------------------ bad lines

// Shared per-read state: options, report, bad-line policy.
class ReadContext {
 public:
  ReadContext(const ReadOptions& options, ReadReport* report, core::Monitor* monitor);
  const ReadOptions& options() const { return options_; }
  ReadReport& report() { return *report_; }
  core::Monitor& monitor() { return *monitor_; }
  // "file:line: what" — throws kInvalidArgument, or (skip_bad_lines) counts
  // it and keeps the first 10 messages.
  void bad_line(const std::string& file, int64_t line, std::string_view what);
  int64_t bad_lines() const { return report_->bad_lines; }
  void add_file(const std::string& display) { report_->files.push_back(display); }
  // Called once at the end: sets report.rows and reports skipped lines.
  void finish(int64_t rows);

 private:
  const ReadOptions& options_;
  ReadReport local_report_;
  ReadReport* report_;
  core::Monitor* monitor_;
};

// ---------------------------------------------------------- id mapping

// External id -> dense index with a fast path for canonical decimal ids
// ("0", "17", not "017" / "+1"): they are looked up as int64 in an
// open-addressing table before touching the string IdMap. Other ids go to the
// IdMap (and, when `track_strings`, to a local table so find() sees them).
class IdIndex {
 public:
  explicit IdIndex(bool track_strings = false) : track_strings_(track_strings) {}
  // Index of `id`, adding it through `add(id)` when new.
  template <class Add>
  int32_t get(std::string_view id, Add&& add) {
    int64_t key;
    if (canonical_int(id, key)) {
      if (static_cast<uint64_t>(key) < dense_.size()) {  // small ids: direct index
        int32_t& slot = dense_[static_cast<size_t>(key)];
        if (slot < 0) {
          slot = add(id);
          ++numeric_;
        }
        return slot;
      }
      const int32_t found = find_hashed(key);
      if (found >= 0) return found;
      const int32_t index = add(id);
      insert(key, index);
      return index;
    }
    if (track_strings_) {
      auto it = strings_.find(id);
      if (it != strings_.end()) return it->second;
      const int32_t index = add(id);
      strings_.emplace(std::string(id), index);
      return index;
    }
    return add(id);
  }
  // -1 when never added (string ids only visible when track_strings).
  int32_t find(std::string_view id) const;
  static bool canonical_int(std::string_view s, int64_t& out);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Slot {
    int64_t key = -1;  // -1 = empty
    int32_t value = -1;
  };
  int32_t find_hashed(int64_t key) const;
  // Adds a new numeric id: into the dense array when it is small compared
  // with the number of ids seen (growing it), else into the hash table.
  void insert(int64_t key, int32_t index);
  void insert_hashed(int64_t key, int32_t index);
  bool track_strings_;
  std::vector<int32_t> dense_;  // id -> index for ids < dense_.size(), -1 = absent
  std::vector<Slot> slots_;     // open addressing, linear probing, load <= 1/2
  size_t hashed_ = 0;
  size_t numeric_ = 0;          // numeric ids in dense_ + slots_
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> strings_;
};

// ------------------------------------------------------- column mapping

// A resolved column of a delimited file.
struct Column {
  int index = -1;     // -1 = not used
  std::string label;  // for messages: "rating", "userId", "2"
};

// Resolves `spec` (a header name or a 0-based index) against `header`
// (empty when the file has none). Returns the column or an error message.
bool resolve_column(std::string_view spec, const std::vector<std::string>& header, bool has_header,
                    Column& out, std::string& error);
std::string list_columns(const std::vector<std::string>& header);

// ------------------------------------------------------ interactions

// How to read one interactions file.
struct InteractionFile {
  std::filesystem::path path;
  std::string display;          // name in messages
  std::string sep;              // one char, or "::"
  bool quotes = true;           // RFC-4180 quoting (one-char separators only)
  bool has_header = true;
  int exact_fields = 0;         // >0: every line must have this many fields (headerless)
  std::string user, item, value, timestamp, event, weight;  // column specs ("" = unused)
  // Labels for headerless files (messages say `rating`, not `2`).
  std::string user_label, item_label, value_label, timestamp_label, event_label, weight_label;
  Encoding encoding = Encoding::kUtf8;
  bool track_string_ids = false;
};

// Reads interactions into `builder`, mapping ids through `users` / `items`.
// Returns the number of rows added.
int64_t read_interactions(ReadContext& ctx, const InteractionFile& file, DatasetBuilder& builder,
                          IdIndex& users, IdIndex& items);

// Builds the dataset, reporting the "build dataset" task on the monitor.
Dataset build_dataset(ReadContext& ctx, DatasetBuilder&& builder, std::string name);

// Internal entry points taking a monitor.
Dataset read_movielens_100k(const ReadOptions& options, ReadReport* report, core::Monitor* monitor);
Dataset read_movielens_1m(const ReadOptions& options, ReadReport* report, core::Monitor* monitor);
Dataset read_movielens_latest(const ReadOptions& options, ReadReport* report, core::Monitor* monitor);
Dataset read_delimited(const ReadOptions& options, ReadReport* report, core::Monitor* monitor);
Dataset read_jsonl(const ReadOptions& options, ReadReport* report, core::Monitor* monitor);

}  // namespace fewrec::data::detail

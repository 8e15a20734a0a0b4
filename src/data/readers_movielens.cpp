// MovieLens readers: 100K (u.data, u.item, u.user, u.genre), 1M (ratings.dat,
// movies.dat, users.dat) and latest / latest-small (ratings.csv, movies.csv,
// tags.csv).
//
// The catalogue holds the users and items that have ratings (the published
// dataset statistics); side files only add features to them. The 100K and 1M
// side files are Latin-1; they are read as UTF-8 when a line is valid UTF-8
// (copies converted by hand) and converted from Latin-1 otherwise.
#include <algorithm>
#include <array>
#include <system_error>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "readers_internal.h"

namespace fewrec::data::detail {

namespace fs = std::filesystem;

namespace {

constexpr std::array<std::string_view, 19> kGenres100k = {
    "unknown", "Action",  "Adventure", "Animation", "Children's", "Comedy",  "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi",  "Thriller",  "War",       "Western"};

// ML-1M occupation codes (README of ml-1m).
constexpr std::array<std::string_view, 21> kOccupations1m = {
    "other",           "academic/educator",   "artist",           "clerical/admin",
    "college/grad student", "customer service", "doctor/health care", "executive/managerial",
    "farmer",          "homemaker",           "K-12 student",     "lawyer",
    "programmer",      "retired",             "sales/marketing",  "scientist",
    "self-employed",   "technician/engineer", "tradesman/craftsman", "unemployed",
    "writer"};

// Age buckets shared by 100K (from the age in years) and 1M (given as codes).
const char* age_bucket(int64_t age) {
  if (age < 18) return "Under 18";
  if (age < 25) return "18-24";
  if (age < 35) return "25-34";
  if (age < 45) return "35-44";
  if (age < 50) return "45-49";
  if (age < 56) return "50-55";
  return "56+";
}

bool is_blank(std::string_view line) {
  for (char c : line)
    if (c != ' ' && c != '\t') return false;
  return true;
}

// The folder of a MovieLens dataset. A path to its main file is accepted too.
fs::path movielens_dir(const ReadOptions& o, std::string_view format, std::string_view main_file,
                       std::string_view files) {
  FEWREC_CHECK(!o.path.empty(), kInvalidArgument,
               "{}: no input folder: set data.path to the folder holding {}", format, files);
  std::error_code ec;
  const auto st = fs::status(o.path, ec);
  if (!fs::exists(st))
    FEWREC_THROW(kNotFound, "cannot open `{}`: No such file or directory (expected the {} folder holding {})",
                 o.path.string(), format, files);
  if (fs::is_directory(st)) return o.path;
  if (o.path.filename() == main_file) {
    const auto parent = o.path.parent_path();
    return parent.empty() ? fs::path(".") : parent;
  }
  FEWREC_THROW(kInvalidArgument, "{}: data.path `{}` is a file; expected the folder holding {}",
               format, o.path.string(), files);
}

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// When the main file is missing but the folder holds another MovieLens
// variant, say which format it looks like.
void check_main_file(const fs::path& dir, std::string_view main_file, std::string_view format) {
  const fs::path main = dir / main_file;
  if (file_exists(main)) return;
  static constexpr std::pair<std::string_view, std::string_view> kVariants[] = {
      {"u.data", "movielens-100k"}, {"ratings.dat", "movielens-1m"}, {"ratings.csv", "movielens-latest"}};
  for (const auto& [file, fmt_name] : kVariants)
    if (fmt_name != format && file_exists(dir / file))
      FEWREC_THROW(kNotFound,
                   "cannot open `{}`: No such file or directory (the folder holds {}: is "
                   "data.format={} meant?)",
                   main.string(), file, fmt_name);
}

// A side file: headerless with a fixed field count, or with a header whose
// named columns are looked up (fields are passed in `columns` order).
struct SideFile {
  fs::path path;
  std::string sep;
  bool quotes = false;
  Encoding encoding = Encoding::kAuto;
  bool has_header = false;
  std::vector<std::string> columns;  // header mode: required column names
  size_t exact_fields = 0;           // headerless: fields per line
};

// Calls fn(fields, bad) for each record; in header mode `fields` holds the
// requested columns in order. Returns the number of records.
template <class Fn>
int64_t for_each_record(ReadContext& ctx, const SideFile& f, Fn&& fn) {
  LineReader reader(f.path);
  const std::string& display = reader.display();
  ctx.add_file(display);
  core::ProgressScope progress(ctx.monitor(), "read " + f.path.filename().string(), reader.file_size());
  reader.set_progress(&progress);
  const bool single = f.sep.size() == 1;
  std::vector<std::string_view> fields, picked;
  std::string scratch, decoded, error;
  std::string_view line, text;
  auto split = [&](std::string_view t) -> bool {
    if (single) return split_fields(t, f.sep[0], f.quotes, fields, scratch, error);
    split_fields(t, std::string_view(f.sep), fields);
    return true;
  };

  bool any = false;
  std::vector<size_t> index;
  size_t exact = f.exact_fields;
  if (f.has_header) {
    while (reader.next(line))
      if (!is_blank(line)) {
        any = true;
        break;
      }
    FEWREC_CHECK(any, kInvalidArgument, "{}: file is empty (expected a header and data rows)", display);
    const int64_t hl = reader.line_number();
    if (!decode_line(line, reader.ascii(), f.encoding, decoded, text, error))
      FEWREC_THROW(kInvalidArgument, "{}:{}: {}", display, hl, error);
    if (!split(text)) FEWREC_THROW(kInvalidArgument, "{}:{}: header: {}", display, hl, error);
    std::vector<std::string> names;
    for (auto h : fields) names.emplace_back(trim_blanks(h));
    for (const auto& want : f.columns) {
      Column c;
      if (!resolve_column(want, names, true, c, error)) {
        if (names.size() == 1) error += separator_hint(text, f.sep);
        FEWREC_THROW(kInvalidArgument, "{}:{}: {}", display, hl, error);
      }
      index.push_back(static_cast<size_t>(c.index));
    }
    exact = names.size();
  }

  int64_t records = 0;
  while (reader.next(line)) {
    if (line.empty() || is_blank(line)) continue;
    any = true;
    const int64_t ln = reader.line_number();
    auto bad = [&](std::string_view what) { ctx.bad_line(display, ln, what); };
    if (!decode_line(line, reader.ascii(), f.encoding, decoded, text, error)) {
      bad(error);
      continue;
    }
    if (!split(text)) {
      bad(error);
      continue;
    }
    if (fields.size() != exact) {
      bad(fmt::format("expected {} fields separated by {}, got {}{}", exact, quote_separator(f.sep),
                      fields.size(), fields.size() == 1 ? separator_hint(text, f.sep) : ""));
      continue;
    }
    if (f.has_header) {
      picked.clear();
      for (size_t i : index) picked.push_back(fields[i]);
      fn(picked, bad);
    } else {
      fn(fields, bad);
    }
    ++records;
  }
  FEWREC_CHECK(any, kInvalidArgument, "{}: file is empty (expected data rows)", display);
  progress.finish();
  return records;
}

// u.genre: "name|index" lines; the genre names in flag order.
std::vector<std::string> read_genres_100k(ReadContext& ctx, const fs::path& path) {
  std::vector<std::pair<int64_t, std::string>> entries;
  SideFile f{path, "|", false, Encoding::kAuto, false, {}, 2};
  for_each_record(ctx, f, [&](const std::vector<std::string_view>& v, auto& bad) {
    int64_t index;
    if (!parse_int64(v[1], index) || index < 0 || index > 1000) {
      bad(fmt::format("column `index`: expected a genre number, got `{}`", core::excerpt(v[1], 40)));
      return;
    }
    entries.emplace_back(index, std::string(trim_blanks(v[0])));
  });
  std::sort(entries.begin(), entries.end());
  std::vector<std::string> names;
  for (auto& [i, name] : entries) {
    FEWREC_CHECK(i == static_cast<int64_t>(names.size()), kInvalidArgument,
                 "{}: genre numbers must run 0, 1, 2, ... without gaps (missing {})",
                 path.string(), names.size());
    names.push_back(std::move(name));
  }
  return names;
}

void set_year(FeatureTableBuilder& features, int32_t row, int year) {
  if (year > 0) features.set_numeric(row, "year", static_cast<float>(year));
}

void add_genre_list(FeatureTableBuilder& features, int32_t row, std::string_view genres) {
  size_t pos = 0;
  while (pos <= genres.size()) {
    size_t at = genres.find('|', pos);
    if (at == std::string_view::npos) at = genres.size();
    const auto g = trim_blanks(genres.substr(pos, at - pos));
    if (!g.empty() && g != "(no genres listed)") features.add_tag(row, "genres", g);
    pos = at + 1;
  }
}

void set_title(FeatureTableBuilder& features, int32_t row, std::string_view title) {
  title = trim_blanks(title);
  if (!title.empty()) features.set_text(row, "title", std::string(title));
}

std::string dir_name(const fs::path& dir) {
  auto name = dir.filename().string();
  if (name.empty()) name = dir.parent_path().filename().string();
  return name.empty() ? std::string("movielens") : name;
}

}  // namespace

Dataset read_movielens_100k(const ReadOptions& options, ReadReport* report, core::Monitor* monitor) {
  ReadContext ctx(options, report, monitor);
  const fs::path dir = movielens_dir(options, "movielens-100k", "u.data", "u.data (and optionally u.item, u.user)");
  DatasetBuilder builder;
  IdIndex users(true), items(true);

  InteractionFile f;
  check_main_file(dir, "u.data", "movielens-100k");
  f.path = dir / "u.data";
  f.sep = "\t";
  f.quotes = false;
  f.has_header = false;
  f.exact_fields = 4;
  f.user = "0", f.item = "1", f.value = "2", f.timestamp = "3";
  f.user_label = "user", f.item_label = "item", f.value_label = "rating", f.timestamp_label = "timestamp";
  f.encoding = parse_encoding(options.encoding);
  read_interactions(ctx, f, builder, users, items);

  const fs::path genre_path = dir / "u.genre";
  std::vector<std::string> genres = file_exists(genre_path)
                                        ? read_genres_100k(ctx, genre_path)
                                        : std::vector<std::string>(kGenres100k.begin(), kGenres100k.end());
  auto& item_features = builder.item_features();
  const fs::path item_path = dir / "u.item";
  if (file_exists(item_path)) {
    SideFile s{item_path, "|", false, Encoding::kAuto, false, {}, 5 + genres.size()};
    for_each_record(ctx, s, [&](const std::vector<std::string_view>& v, auto& bad) {
      for (size_t g = 0; g < genres.size(); ++g) {
        const auto flag = trim_blanks(v[5 + g]);
        if (flag != "0" && flag != "1") {
          bad(fmt::format("column `{}`: expected a genre flag 0 or 1, got `{}`", genres[g],
                          core::excerpt(flag, 40)));
          return;
        }
      }
      const int32_t row = items.find(trim_blanks(v[0]));
      if (row < 0) return;  // an item without ratings
      set_title(item_features, row, v[1]);
      int year = parse_title_year(v[1]);
      if (year == 0) year = parse_date_year(v[2]);
      set_year(item_features, row, year);
      for (size_t g = 0; g < genres.size(); ++g)
        if (trim_blanks(v[5 + g]) == "1") item_features.add_tag(row, "genres", genres[g]);
    });
  }
  const fs::path user_path = dir / "u.user";
  if (file_exists(user_path)) {
    auto& user_features = builder.user_features();
    SideFile s{user_path, "|", false, Encoding::kAuto, false, {}, 5};
    for_each_record(ctx, s, [&](const std::vector<std::string_view>& v, auto& bad) {
      int64_t age;
      if (!parse_int64(v[1], age) || age < 0 || age > 200) {
        bad(fmt::format("column `age`: expected an age in years, got `{}`", core::excerpt(v[1], 40)));
        return;
      }
      const int32_t row = users.find(trim_blanks(v[0]));
      if (row < 0) return;
      user_features.set_numeric(row, "age_years", static_cast<float>(age));
      user_features.set_categorical(row, "age", age_bucket(age));
      user_features.set_categorical(row, "gender", trim_blanks(v[2]));
      user_features.set_categorical(row, "occupation", trim_blanks(v[3]));
      user_features.set_categorical(row, "zip", trim_blanks(v[4]));
    });
  }
  return build_dataset(ctx, std::move(builder), dir_name(dir));
}

Dataset read_movielens_1m(const ReadOptions& options, ReadReport* report, core::Monitor* monitor) {
  ReadContext ctx(options, report, monitor);
  const fs::path dir = movielens_dir(options, "movielens-1m", "ratings.dat",
                                     "ratings.dat (and optionally movies.dat, users.dat)");
  DatasetBuilder builder;
  IdIndex users(true), items(true);

  InteractionFile f;
  check_main_file(dir, "ratings.dat", "movielens-1m");
  f.path = dir / "ratings.dat";
  f.sep = "::";
  f.quotes = false;
  f.has_header = false;
  f.exact_fields = 4;
  f.user = "0", f.item = "1", f.value = "2", f.timestamp = "3";
  f.user_label = "UserID", f.item_label = "MovieID", f.value_label = "Rating", f.timestamp_label = "Timestamp";
  f.encoding = parse_encoding(options.encoding);
  read_interactions(ctx, f, builder, users, items);

  const fs::path movie_path = dir / "movies.dat";
  if (file_exists(movie_path)) {
    auto& features = builder.item_features();
    SideFile s{movie_path, "::", false, Encoding::kAuto, false, {}, 3};
    for_each_record(ctx, s, [&](const std::vector<std::string_view>& v, auto&) {
      const int32_t row = items.find(trim_blanks(v[0]));
      if (row < 0) return;
      set_title(features, row, v[1]);
      set_year(features, row, parse_title_year(v[1]));
      add_genre_list(features, row, v[2]);
    });
  }
  const fs::path user_path = dir / "users.dat";
  if (file_exists(user_path)) {
    auto& features = builder.user_features();
    SideFile s{user_path, "::", false, Encoding::kAuto, false, {}, 5};
    for_each_record(ctx, s, [&](const std::vector<std::string_view>& v, auto& bad) {
      int64_t age, occupation;
      if (!parse_int64(v[2], age) ||
          (age != 1 && age != 18 && age != 25 && age != 35 && age != 45 && age != 50 && age != 56)) {
        bad(fmt::format("column `Age`: expected an age group 1, 18, 25, 35, 45, 50 or 56, got `{}`",
                        core::excerpt(v[2], 40)));
        return;
      }
      if (!parse_int64(v[3], occupation) || occupation < 0 ||
          occupation >= static_cast<int64_t>(kOccupations1m.size())) {
        bad(fmt::format("column `Occupation`: expected an occupation code 0-20, got `{}`",
                        core::excerpt(v[3], 40)));
        return;
      }
      const int32_t row = users.find(trim_blanks(v[0]));
      if (row < 0) return;
      features.set_categorical(row, "gender", trim_blanks(v[1]));
      features.set_categorical(row, "age", age_bucket(age));
      // The lower bound of the age group (1 = under 18): 1M has no exact ages.
      features.set_numeric(row, "age_years", static_cast<float>(age));
      features.set_categorical(row, "occupation", kOccupations1m[static_cast<size_t>(occupation)]);
      features.set_categorical(row, "zip", trim_blanks(v[4]));
    });
  }
  return build_dataset(ctx, std::move(builder), dir_name(dir));
}

Dataset read_movielens_latest(const ReadOptions& options, ReadReport* report, core::Monitor* monitor) {
  ReadContext ctx(options, report, monitor);
  const fs::path dir = movielens_dir(options, "movielens-latest", "ratings.csv",
                                     "ratings.csv (and optionally movies.csv, tags.csv)");
  const Encoding enc = parse_encoding(options.encoding);
  DatasetBuilder builder;
  IdIndex users(true), items(true);

  InteractionFile f;
  check_main_file(dir, "ratings.csv", "movielens-latest");
  f.path = dir / "ratings.csv";
  f.sep = ",";
  f.quotes = true;
  f.has_header = true;
  f.user = "userId", f.item = "movieId", f.value = "rating", f.timestamp = "timestamp";
  f.encoding = enc;
  read_interactions(ctx, f, builder, users, items);

  auto& features = builder.item_features();
  const fs::path movie_path = dir / "movies.csv";
  if (file_exists(movie_path)) {
    SideFile s{movie_path, ",", true, enc, true, {"movieId", "title", "genres"}, 0};
    for_each_record(ctx, s, [&](const std::vector<std::string_view>& v, auto&) {
      const int32_t row = items.find(trim_blanks(v[0]));
      if (row < 0) return;
      set_title(features, row, v[1]);
      set_year(features, row, parse_title_year(v[1]));
      add_genre_list(features, row, v[2]);
    });
  }
  const fs::path tag_path = dir / "tags.csv";
  if (file_exists(tag_path)) {
    SideFile s{tag_path, ",", true, enc, true, {"movieId", "tag"}, 0};
    for_each_record(ctx, s, [&](const std::vector<std::string_view>& v, auto&) {
      const int32_t row = items.find(trim_blanks(v[0]));
      if (row < 0) return;
      // Free-text tags from users: case-folded so "Funny" and "funny" are one tag.
      const std::string tag = core::to_lower(trim_blanks(v[1]));
      if (!tag.empty()) features.add_tag(row, "tags", tag);
    });
  }
  return build_dataset(ctx, std::move(builder), dir_name(dir));
}

}  // namespace fewrec::data::detail

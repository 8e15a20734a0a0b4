// Readers: MovieLens 100K / 1M / latest, generic csv / tsv / jsonl, the
// config mapping, and one error-path test per bad input kind per reader.
// Fixtures are tiny files written into a temp dir (no MovieLens data is ever
// copied into the repository); the real datasets are read from
// ../shared/data when present.
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/data/dataset.h"
#include "fewrec/data/readers.h"

namespace fs = std::filesystem;
using fewrec::Error;
using fewrec::ErrorCode;
using namespace fewrec::data;
using ::testing::HasSubstr;

namespace {

class ReadersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("fewrec_readers_") + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path write(const std::string& name, const std::string& bytes) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << bytes;
    return p;
  }
  ReadOptions opts(const std::string& format, const fs::path& path) {
    ReadOptions o;
    o.format = format;
    o.path = path;
    return o;
  }
  fs::path dir_;
};

// Runs `fn`, expects a fewrec::Error and returns it (message + code).
struct Caught {
  bool thrown = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};
Caught catch_error(const std::function<void()>& fn) {
  Caught c;
  try {
    fn();
  } catch (const Error& e) {
    c.thrown = true;
    c.code = e.code();
    c.message = e.message();
  }
  return c;
}

#define EXPECT_READ_ERROR(expr, code_, substr)                        \
  do {                                                                \
    const Caught caught_ = catch_error([&] { (void)(expr); });        \
    ASSERT_TRUE(caught_.thrown) << "no error thrown, expected: " << (substr); \
    EXPECT_EQ(caught_.code, ErrorCode::code_) << caught_.message;     \
    EXPECT_THAT(caught_.message, HasSubstr(substr));                  \
  } while (0)

int32_t item_index(const Dataset& ds, std::string_view id) { return ds.items().find(id); }
int32_t user_index(const Dataset& ds, std::string_view id) { return ds.users().find(id); }

std::string text_of(const FeatureTable& t, std::string_view col, int32_t row) {
  return t.column(col).texts.at(static_cast<size_t>(row));
}
std::string category_of(const FeatureTable& t, std::string_view col, int32_t row) {
  const auto& c = t.column(col);
  const int32_t code = c.codes.at(static_cast<size_t>(row));
  return code < 0 ? std::string("<missing>") : c.vocab.id(code);
}
float number_of(const FeatureTable& t, std::string_view col, int32_t row) {
  return t.column(col).numbers.at(static_cast<size_t>(row));
}
std::vector<std::string> tags_of(const FeatureTable& t, std::string_view col, int32_t row) {
  const auto& c = t.column(col);
  std::vector<std::string> out;
  for (int32_t code : c.tags_of(row)) out.push_back(c.vocab.id(code));
  std::sort(out.begin(), out.end());
  return out;
}

// 19 genre flags with the given positions set.
std::string flags(std::initializer_list<int> on, int n = 19) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    if (i) out += '|';
    out += std::find(on.begin(), on.end(), i) != on.end() ? '1' : '0';
  }
  return out;
}

// ------------------------------------------------------------ fixtures

const char* kUData =
    "1\t10\t4\t900000049\n"
    "1\t20\t3\t900000050\n"
    "2\t10\t5\t900000051\n"
    "3\t30\t1\t900000052\n"
    "2\t30\t2\t900000040\n";

void write_100k(ReadersTest* t, const std::function<fs::path(const std::string&, const std::string&)>& w,
                bool side_files = true) {
  w("ml/u.data", kUData);
  if (!side_files) return;
  // Latin-1 'é' (0xE9) in a title, as in the real u.item.
  w("ml/u.item", "10|Ch\xE9rie, La (1995)|01-Jan-1995||http://x?Ch%E9rie|" + flags({8, 12}) + "\n" +
                     "20|Paper Kites (1995)|01-Jan-1995||http://x|" + flags({3, 4, 5}) + "\n" +
                     "30|unknown||||" + flags({0}) + "\n" +
                     "40|Never Rated (1990)|01-Jan-1990||http://x|" + flags({1}) + "\n");
  w("ml/u.user",
    "1|24|M|technician|85711\n"
    "2|53|F|other|94043\n"
    "3|17|M|student|T8H1N\n"
    "9|30|F|writer|00000\n");
}

}  // namespace

// ====================================================== MovieLens 100K

TEST_F(ReadersTest, MovieLens100kReadsRatingsAndLatin1Items) {
  write_100k(this, [&](auto& n, auto& b) { return write(n, b); });
  ReadReport report;
  Dataset ds = read_movielens_100k(opts("movielens-100k", dir_ / "ml"), &report);
  EXPECT_EQ(ds.num_interactions(), 5);
  EXPECT_EQ(ds.num_users(), 3);
  EXPECT_EQ(ds.num_items(), 3);  // item 40 has no rating: not in the catalogue
  EXPECT_EQ(report.rows, 5);
  EXPECT_EQ(report.bad_lines, 0);
  EXPECT_EQ(report.files.size(), 3u);

  // History of user 2 is time-sorted: item 30 (t=...940) before item 10.
  const auto h = ds.history(user_index(ds, "2"));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.items[0], item_index(ds, "30"));
  EXPECT_EQ(h.values[0], 2.0f);
  EXPECT_EQ(h.timestamps[0], 900000040);
  EXPECT_EQ(h.items[1], item_index(ds, "10"));
  EXPECT_EQ(h.values[1], 5.0f);

  const auto& items = ds.item_features();
  const int32_t miserables = item_index(ds, "10");
  EXPECT_EQ(text_of(items, "title", miserables), "Ch\xC3\xA9rie, La (1995)");  // UTF-8 now
  EXPECT_EQ(number_of(items, "year", miserables), 1995.0f);
  EXPECT_EQ(tags_of(items, "genres", miserables), (std::vector<std::string>{"Drama", "Musical"}));
  EXPECT_EQ(tags_of(items, "genres", item_index(ds, "20")),
            (std::vector<std::string>{"Animation", "Children's", "Comedy"}));
  const int32_t unknown = item_index(ds, "30");
  EXPECT_EQ(text_of(items, "title", unknown), "unknown");
  EXPECT_TRUE(std::isnan(number_of(items, "year", unknown)));
  EXPECT_EQ(items.column("genres").kind, FeatureKind::kTags);
  EXPECT_EQ(items.column("title").kind, FeatureKind::kText);
  EXPECT_EQ(items.column("year").kind, FeatureKind::kNumeric);

  const auto& users = ds.user_features();
  const int32_t u3 = user_index(ds, "3");
  EXPECT_EQ(category_of(users, "gender", u3), "M");
  EXPECT_EQ(category_of(users, "occupation", u3), "student");
  EXPECT_EQ(category_of(users, "zip", u3), "T8H1N");
  EXPECT_EQ(category_of(users, "age", u3), "Under 18");
  EXPECT_EQ(number_of(users, "age_years", u3), 17.0f);
  EXPECT_EQ(category_of(users, "age", user_index(ds, "2")), "50-55");
  EXPECT_EQ(user_index(ds, "9"), -1);  // a user without ratings
}

TEST_F(ReadersTest, MovieLens100kSideFilesAreOptional) {
  write_100k(this, [&](auto& n, auto& b) { return write(n, b); }, false);
  Dataset ds = read_dataset(opts("movielens-100k", dir_ / "ml"));
  EXPECT_EQ(ds.num_interactions(), 5);
  EXPECT_TRUE(ds.item_features().columns().empty());
  EXPECT_TRUE(ds.user_features().columns().empty());
  // A path to u.data itself is accepted too.
  EXPECT_EQ(read_dataset(opts("movielens-100k", dir_ / "ml" / "u.data")).num_interactions(), 5);
}

TEST_F(ReadersTest, MovieLens100kGenreNamesComeFromUGenre) {
  write("ml/u.data", kUData);
  write("ml/u.genre", "Alpha|0\nBeta|1\nGamma|2\n\n");
  write("ml/u.item", "10|A (1990)|||x|1|0|1\n20|B|02-Mar-1984||x|0|1|0\n30|C (2001)|||x|0|0|0\n");
  Dataset ds = read_dataset(opts("movielens-100k", dir_ / "ml"));
  const auto& items = ds.item_features();
  EXPECT_EQ(tags_of(items, "genres", item_index(ds, "10")), (std::vector<std::string>{"Alpha", "Gamma"}));
  EXPECT_EQ(tags_of(items, "genres", item_index(ds, "20")), (std::vector<std::string>{"Beta"}));
  EXPECT_EQ(number_of(items, "year", item_index(ds, "20")), 1984.0f);  // from the release date
}

TEST_F(ReadersTest, MovieLens100kErrors) {
  const auto path = dir_ / "ml";
  auto read = [&] { return read_dataset(opts("movielens-100k", path)); };
  // Malformed line.
  write("ml/u.data", "1\t10\t4\t900000049\n1\t20\t3\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "u.data:2: expected 4 fields separated by '\\t', got 3");
  // Non-numeric rating.
  write("ml/u.data", "1\t10\t4\t900000049\n1\t20\t3\t900000050\n1\t30\tabc\t900000050\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "u.data:3: column `rating`: expected a number, got `abc`");
  // Bad timestamp.
  write("ml/u.data", "1\t10\t4\tyesterday\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "u.data:1: column `timestamp`: expected a unix time");
  // Empty file.
  write("ml/u.data", "");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "u.data: file is empty (expected data rows)");
  // Wrong separator.
  write("ml/u.data", "1,10,4,900000049\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "u.data:1: expected 4 fields separated by '\\t', got 1 — is the separator right? "
                    "(the line contains ',')");
  // Wrong encoding.
  write("ml/u.data", "1\t10\t4\t900000049\n1\t2\xE9\t4\t900000049\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "u.data:2: invalid UTF-8 (set data.encoding=latin-1 for Latin-1 files)");
  // Bad genre flag in u.item.
  write("ml/u.data", kUData);
  write("ml/u.item", "10|A (1990)|||x|" + flags({}) + "\n20|B (1990)|||x|0|2|" + flags({}, 17) + "\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "u.item:2: column `Action`: expected a genre flag 0 or 1, got `2`");
  // u.item with the wrong number of fields.
  write("ml/u.item", "10|A (1990)|||x|0|1\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "u.item:1: expected 24 fields separated by '|', got 7");
  fs::remove(dir_ / "ml/u.item");
  // Bad age in u.user.
  write("ml/u.user", "1|24|M|technician|85711\n2|old|F|other|94043\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "u.user:2: column `age`: expected an age in years, got `old`");
  fs::remove(dir_ / "ml/u.user");
  // Unreadable path.
  fs::remove(dir_ / "ml/u.data");
  EXPECT_READ_ERROR(read(), kNotFound, "cannot open `" + (path / "u.data").string() + "`: No such file or directory");
  write("latest/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,1\n");
  EXPECT_READ_ERROR(read_dataset(opts("movielens-100k", dir_ / "latest")), kNotFound,
                    "(the folder holds ratings.csv: is data.format=movielens-latest meant?)");
  EXPECT_READ_ERROR(read_dataset(opts("movielens-100k", dir_ / "nowhere")), kNotFound,
                    "cannot open `" + (dir_ / "nowhere").string() + "`: No such file or directory");
}

TEST_F(ReadersTest, MovieLens100kSkipBadLinesCounts) {
  write("ml/u.data", "1\t10\t4\t900000049\nbroken\n2\t10\tx\t1\n3\t30\t1\t900000052\n\n");
  ReadOptions o = opts("movielens-100k", dir_ / "ml");
  o.skip_bad_lines = true;
  ReadReport report;
  Dataset ds = read_dataset(o, &report);
  EXPECT_EQ(ds.num_interactions(), 2);
  EXPECT_EQ(ds.num_users(), 2);  // the bad lines added no ids
  EXPECT_EQ(report.rows, 2);
  EXPECT_EQ(report.bad_lines, 2);
  ASSERT_EQ(report.first_errors.size(), 2u);
  EXPECT_THAT(report.first_errors[0], HasSubstr("u.data:2: expected 4 fields"));
  EXPECT_THAT(report.first_errors[1], HasSubstr("u.data:3: column `rating`"));
  const auto j = report.to_json();
  EXPECT_EQ(j["bad_lines"], 2);
  EXPECT_EQ(j["rows"], 2);
}

// ======================================================== MovieLens 1M

TEST_F(ReadersTest, MovieLens1mReadsAllFiles) {
  write("ml1m/ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n");
  write("ml1m/movies.dat",
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::Caf\xE9 Society (1995)::Comedy|Romance\n"
        "5::Never Rated (1995)::Comedy\n");
  write("ml1m/users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n");
  ReadReport report;
  Dataset ds = read_dataset(opts("movielens-1m", dir_ / "ml1m"), &report);
  EXPECT_EQ(ds.num_interactions(), 3);
  EXPECT_EQ(ds.num_users(), 2);
  EXPECT_EQ(ds.num_items(), 2);
  EXPECT_EQ(report.files.size(), 3u);
  const auto& items = ds.item_features();
  const int32_t cafe = item_index(ds, "661");
  EXPECT_EQ(text_of(items, "title", cafe), "Caf\xC3\xA9 Society (1995)");
  EXPECT_EQ(number_of(items, "year", cafe), 1995.0f);
  EXPECT_EQ(tags_of(items, "genres", cafe), (std::vector<std::string>{"Comedy", "Romance"}));
  const auto& users = ds.user_features();
  const int32_t u1 = user_index(ds, "1");
  EXPECT_EQ(category_of(users, "gender", u1), "F");
  EXPECT_EQ(category_of(users, "age", u1), "Under 18");
  EXPECT_EQ(number_of(users, "age_years", u1), 1.0f);
  EXPECT_EQ(category_of(users, "occupation", u1), "K-12 student");
  EXPECT_EQ(category_of(users, "occupation", user_index(ds, "2")), "self-employed");
  EXPECT_EQ(category_of(users, "age", user_index(ds, "2")), "56+");
  EXPECT_EQ(category_of(users, "zip", u1), "48067");
}

TEST_F(ReadersTest, MovieLens1mErrors) {
  auto read = [&] { return read_dataset(opts("movielens-1m", dir_ / "ml1m")); };
  write("ml1m/ratings.dat", "1::1193::5::978300760\n1::661::3\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "ratings.dat:2: expected 4 fields separated by '::', got 3");
  write("ml1m/ratings.dat", "1::1193::five::978300760\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "ratings.dat:1: column `Rating`: expected a number, got `five`");
  write("ml1m/ratings.dat", "\n\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "ratings.dat: file is empty");
  write("ml1m/ratings.dat", "1\t1193\t5\t978300760\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "ratings.dat:1: expected 4 fields separated by '::', got 1 — is the separator right? "
                    "(the line contains '\\t')");
  write("ml1m/ratings.dat", "1::1193::5::978300760\n\xFF::1::5::978300760\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "ratings.dat:2: invalid UTF-8");
  write("ml1m/ratings.dat", "1::1193::5::978300760\n");
  write("ml1m/users.dat", "1::F::1::10::48067\n1::F::33::10::48067\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "users.dat:2: column `Age`: expected an age group");
  write("ml1m/users.dat", "1::F::1::99::48067\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "users.dat:1: column `Occupation`: expected an occupation code");
  write("ml1m/users.dat", "1::F::1::10\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "users.dat:1: expected 5 fields separated by '::', got 4");
  fs::remove(dir_ / "ml1m/users.dat");
  fs::remove(dir_ / "ml1m/ratings.dat");
  EXPECT_READ_ERROR(read(), kNotFound, "ratings.dat`: No such file or directory");
  // A file where a folder is expected.
  const auto file = write("some.dat", "x");
  EXPECT_READ_ERROR(read_dataset(opts("movielens-1m", file)), kInvalidArgument,
                    "is a file; expected the folder holding ratings.dat");
}

TEST_F(ReadersTest, MovieLens1mSkipBadLines) {
  write("ml1m/ratings.dat", "1::1193::5::978300760\n1::661\n2::1::x::1\n2::1193::4::978298413\n");
  write("ml1m/users.dat", "1::F::1::10::48067\n2::M::7::16::70072\n");
  ReadOptions o = opts("movielens-1m", dir_ / "ml1m");
  o.skip_bad_lines = true;
  ReadReport report;
  Dataset ds = read_dataset(o, &report);
  EXPECT_EQ(ds.num_interactions(), 2);
  EXPECT_EQ(report.bad_lines, 3);  // two in ratings.dat, one in users.dat
  EXPECT_THAT(report.first_errors.back(), HasSubstr("users.dat:2:"));
}

// ==================================================== MovieLens latest

namespace {
void write_latest(const std::function<fs::path(const std::string&, const std::string&)>& w) {
  // CRLF line ends, like the real ratings.csv.
  w("latest/ratings.csv",
    "userId,movieId,rating,timestamp\r\n"
    "1,1,4.0,970000003\r\n"
    "1,3,4.5,969999947\r\n"
    "2,3,0.5,1500000094\r\n"
    "2,5,5.0,1500000095\r\n"
    "3,6,3.0,1500000096\r\n");
  w("latest/movies.csv",
    "movieId,title,genres\n"
    "1,Paper Kites (1995),Adventure|Animation\n"
    "3,\"Harbour Mayor, The \"\"Director's Cut\"\" (1995)\",Comedy|Drama\n"
    "4,Never Rated (2000),(no genres listed)\n"
    "5,\"\xC3\x89lodie (Grand voyage d'\xC3\x89lodie Marin, Le) (2001)\",Comedy|Romance\n"
    "6,Orbit 9,(no genres listed)\n");
  w("latest/tags.csv",
    "userId,movieId,tag,timestamp\n"
    "2,1,Funny,1\n"
    "3,1,funny,2\n"
    "2,3,\"politics, US\",3\n"
    "2,99,orphan,4\n");
}
}  // namespace

TEST_F(ReadersTest, MovieLensLatestReadsQuotedCsv) {
  write_latest([&](auto& n, auto& b) { return write(n, b); });
  ReadReport report;
  Dataset ds = read_dataset(opts("movielens-latest", dir_ / "latest"), &report);
  EXPECT_EQ(ds.num_interactions(), 5);
  EXPECT_EQ(ds.num_users(), 3);
  EXPECT_EQ(ds.num_items(), 4);
  EXPECT_EQ(report.files.size(), 3u);
  const auto h = ds.history(user_index(ds, "1"));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.items[0], item_index(ds, "3"));  // earlier timestamp first
  EXPECT_EQ(h.values[0], 4.5f);
  EXPECT_EQ(h.timestamps[1], 970000003);
  const auto& items = ds.item_features();
  const int32_t pres = item_index(ds, "3");
  EXPECT_EQ(text_of(items, "title", pres), "Harbour Mayor, The \"Director's Cut\" (1995)");
  EXPECT_EQ(number_of(items, "year", pres), 1995.0f);
  EXPECT_EQ(tags_of(items, "genres", pres), (std::vector<std::string>{"Comedy", "Drama"}));
  EXPECT_EQ(text_of(items, "title", item_index(ds, "5")),
            "\xC3\x89lodie (Grand voyage d'\xC3\x89lodie Marin, Le) (2001)");
  EXPECT_EQ(number_of(items, "year", item_index(ds, "5")), 2001.0f);
  const int32_t babylon = item_index(ds, "6");
  EXPECT_TRUE(std::isnan(number_of(items, "year", babylon)));
  EXPECT_TRUE(tags_of(items, "genres", babylon).empty());  // "(no genres listed)"
  EXPECT_EQ(tags_of(items, "tags", item_index(ds, "1")), (std::vector<std::string>{"funny"}));
  EXPECT_EQ(tags_of(items, "tags", pres), (std::vector<std::string>{"politics, us"}));
}

TEST_F(ReadersTest, MovieLensLatestErrors) {
  write_latest([&](auto& n, auto& b) { return write(n, b); });
  auto read = [&] { return read_dataset(opts("movielens-latest", dir_ / "latest")); };
  write("latest/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,970000003\n1,3,4.5\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "ratings.csv:3: expected 4 fields separated by ',', got 3");
  write("latest/ratings.csv", "userId,movieId,score,timestamp\n1,1,4.0,970000003\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "ratings.csv:1: missing column `rating` in header (columns: userId, movieId, score, timestamp)");
  write("latest/ratings.csv", "userId,movieId,rating,timestamp\n1,1,good,970000003\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "ratings.csv:2: column `rating`: expected a number, got `good`");
  write("latest/ratings.csv", "");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "ratings.csv: file is empty (expected a header and data rows)");
  write("latest/ratings.csv", "userId,movieId,rating,timestamp\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "ratings.csv: no data rows after the header (line 1)");
  // A TSV read as CSV: the header names one column.
  write("latest/ratings.csv", "userId\tmovieId\trating\ttimestamp\n1\t1\t4.0\t970000003\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "— is the separator right? (the line contains '\\t')");
  // Right header, TSV rows.
  write("latest/ratings.csv", "userId,movieId,rating,timestamp\n1\t1\t4.0\t970000003\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "ratings.csv:2: expected 4 fields separated by ',', got 1 — is the separator right?");
  write("latest/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,970000003\n");
  // Invalid UTF-8 in movies.csv (a Latin-1 byte).
  write("latest/movies.csv", "movieId,title,genres\n1,Paper Kites (1995),Comedy\n1,Caf\xE9 (1995),Drama\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "movies.csv:3: invalid UTF-8 (set data.encoding=latin-1 for Latin-1 files)");
  // A quoted field that never ends.
  write("latest/movies.csv", "movieId,title,genres\n1,\"Paper Kites (1995),Comedy\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "movies.csv:2: unterminated quoted field");
  write("latest/movies.csv", "movieId,name,genres\n1,Paper Kites (1995),Comedy\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "movies.csv:1: missing column `title` in header");
  fs::remove(dir_ / "latest/movies.csv");
  write("latest/tags.csv", "userId,movieId,tag,timestamp\n1,1\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "tags.csv:2: expected 4 fields separated by ',', got 2");
  fs::remove(dir_ / "latest/tags.csv");
  EXPECT_EQ(read().num_interactions(), 1);  // side files optional
  fs::remove(dir_ / "latest/ratings.csv");
  EXPECT_READ_ERROR(read(), kNotFound, "latest/ratings.csv`: No such file or directory");
}

TEST_F(ReadersTest, MovieLensLatestLatin1WhenAsked) {
  write("latest/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,970000003\n");
  write("latest/movies.csv", "movieId,title,genres\n1,Caf\xE9 (1995),Drama\n");
  ReadOptions o = opts("movielens-latest", dir_ / "latest");
  o.encoding = "latin-1";
  Dataset ds = read_dataset(o);
  EXPECT_EQ(text_of(ds.item_features(), "title", 0), "Caf\xC3\xA9 (1995)");
}

// ========================================================= generic csv

TEST_F(ReadersTest, CsvColumnMappingByName) {
  const auto p = write("events.csv",
                       "ts,who,what,score,kind,w\n"
                       "2020-01-02T00:00:00Z,alice,i1,4.5,click,2\n"
                       "2020-01-01,alice,\"i,2\",3,buy,0.5\n"
                       "1577836800,bob,i1,1,click,1\n");
  ReadOptions o = opts("csv", p);
  o.user_column = "who";
  o.item_column = "what";
  o.value_column = "score";
  o.timestamp_column = "ts";
  o.event_column = "kind";
  o.weight_column = "w";
  Dataset ds = read_dataset(o);
  EXPECT_EQ(ds.num_interactions(), 3);
  EXPECT_EQ(ds.num_users(), 2);
  EXPECT_EQ(ds.num_items(), 2);
  EXPECT_GE(item_index(ds, "i,2"), 0);  // a quoted id with a comma
  const auto h = ds.history(user_index(ds, "alice"));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.timestamps[0], 1577836800);  // 2020-01-01
  EXPECT_EQ(h.timestamps[1], 1577923200);  // 2020-01-02
  EXPECT_EQ(ds.event_types().id(h.events[0]), "buy");
  EXPECT_EQ(ds.event_types().id(h.events[1]), "click");
  EXPECT_EQ(h.weights[0], 0.5f);
  EXPECT_EQ(h.values[1], 4.5f);
}

TEST_F(ReadersTest, CsvColumnsByIndexWithoutHeader) {
  const auto p = write("x.txt", "7;a;2.5\n007;b;1\n7;b;3\n");
  ReadOptions o = opts("csv", p);
  o.separator = ';';
  o.has_header = false;
  o.user_column = "0";
  o.item_column = "1";
  o.value_column = "2";
  Dataset ds = read_dataset(o);
  EXPECT_EQ(ds.num_interactions(), 3);
  EXPECT_EQ(ds.num_users(), 2);  // "7" and "007" are different ids
  const auto h = ds.history(user_index(ds, "7"));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.timestamps[0], 0);  // row order without a timestamp column
  EXPECT_EQ(h.timestamps[1], 2);
  EXPECT_EQ(h.values[0], 2.5f);
  // Values default to 1 without a value column.
  o.value_column = "";
  EXPECT_EQ(read_dataset(o).history(0).values[0], 1.0f);
}

TEST_F(ReadersTest, TsvFormatAndMaxRows) {
  const auto p = write("x.tsv", "user\titem\n1\t2\n1\t3\n2\t3\n3\t4\n");
  ReadOptions o = opts("tsv", p);
  o.separator = ',';  // tsv forces a tab
  o.max_rows = 2;
  ReadReport report;
  Dataset ds = read_dataset(o, &report);
  EXPECT_EQ(ds.num_interactions(), 2);
  EXPECT_EQ(ds.num_users(), 1);
  EXPECT_EQ(report.rows, 2);
}

TEST_F(ReadersTest, CsvByteOrderMarkIsDropped) {
  const auto p = write("bom.csv", "\xEF\xBB\xBFuser,item\n1,2\n");
  EXPECT_EQ(read_dataset(opts("csv", p)).num_interactions(), 1);
}

TEST_F(ReadersTest, NumericIdsSmallLargeAndMigrated) {
  // 70000 starts in the hash table (the dense array is small at first) and
  // moves into the dense array once 1..20000 made it grow; 9000000000 stays
  // hashed. Both must keep their index.
  std::string text = "user,item\n70000,a\n9000000000,a\n";
  for (int i = 1; i <= 20000; ++i) text += std::to_string(i) + ",a\n";
  text += "70000,b\n9000000000,b\n0,c\n";
  const auto p = write("ids.csv", text);
  Dataset ds = read_dataset(opts("csv", p));
  EXPECT_EQ(ds.num_users(), 20003);
  EXPECT_EQ(ds.history_size(user_index(ds, "70000")), 2);
  EXPECT_EQ(ds.history_size(user_index(ds, "9000000000")), 2);
  EXPECT_EQ(ds.history_size(user_index(ds, "0")), 1);
  EXPECT_EQ(ds.users().id(0), "70000");
}

TEST_F(ReadersTest, CsvWithItemSideFile) {
  const auto p = write("r.csv", "user,item\nu1,10\nu1,20\nu2,10\n");
  const auto items = write("items.csv",
                           "item,title,genres,brand\n"
                           "10,\"Red Shoes, size 9\",shoes|red,Acme\n"
                           "20,Blue Hat,hats,\n"
                           "30,Brand New Thing,new,Acme\n");
  ReadOptions o = opts("csv", p);
  o.items_path = items;
  ReadReport report;
  Dataset ds = read_dataset(o, &report);
  EXPECT_EQ(ds.num_items(), 3);  // item 30 only in the side file: a cold item
  EXPECT_EQ(ds.num_active_items(), 2);
  EXPECT_EQ(report.files.size(), 2u);
  const auto& f = ds.item_features();
  EXPECT_EQ(f.column("title").kind, FeatureKind::kText);
  EXPECT_EQ(f.column("genres").kind, FeatureKind::kTags);
  EXPECT_EQ(f.column("brand").kind, FeatureKind::kCategorical);
  EXPECT_EQ(text_of(f, "title", item_index(ds, "10")), "Red Shoes, size 9");
  EXPECT_EQ(tags_of(f, "genres", item_index(ds, "10")), (std::vector<std::string>{"red", "shoes"}));
  EXPECT_EQ(category_of(f, "brand", item_index(ds, "20")), "<missing>");
  EXPECT_EQ(category_of(f, "brand", item_index(ds, "30")), "Acme");

  // Explicit column roles.
  o.item_text_columns = {"brand"};
  o.item_tag_columns = {"title"};
  o.tag_separator = ',';
  Dataset ds2 = read_dataset(o);
  EXPECT_EQ(ds2.item_features().column("brand").kind, FeatureKind::kText);
  EXPECT_EQ(tags_of(ds2.item_features(), "title", item_index(ds2, "10")),
            (std::vector<std::string>{"Red Shoes", "size 9"}));
  o.item_tag_columns = {"colour"};
  EXPECT_READ_ERROR(read_dataset(o), kInvalidArgument,
                    "items.csv:1: missing column `colour` in header (columns: item, title, genres, brand)");
}

TEST_F(ReadersTest, CsvErrors) {
  ReadOptions o = opts("csv", dir_ / "x.csv");
  o.value_column = "rating";
  o.timestamp_column = "ts";
  auto read = [&] { return read_dataset(o); };
  write("x.csv", "user,item,rating,ts\n1,2,3,4\n1,2,3\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv:3: expected 4 fields separated by ',', got 3");
  write("x.csv", "a,b,c\n1,2,3\n");
  o.user_column = "a", o.item_column = "b";
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv:1: missing column `rating` in header (columns: a, b, c)");
  o.user_column = "user", o.item_column = "item";
  write("x.csv", "user,item,rating,ts\n1,2,abc,4\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv:2: column `rating`: expected a number, got `abc`");
  write("x.csv", "user,item,rating,ts\n1,2,nan,4\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv:2: column `rating`: expected a number, got `nan`");
  write("x.csv", "user,item,rating,ts\n1,,3,4\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv:2: column `item`: empty id");
  write("x.csv", "");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv: file is empty (expected a header and data rows)");
  write("x.csv", "user,item,rating,ts\n\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv: no data rows after the header (line 1)");
  // A TSV read as CSV without a header.
  o.has_header = false;
  o.user_column = "0", o.item_column = "1", o.value_column = "2", o.timestamp_column = "3";
  write("x.csv", "1\t2\t3\t4\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "x.csv:1: expected at least 4 fields separated by ',', got 1 — is the separator right?");
  o.user_column = "user";
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv: column `user` is not an index");
  o.has_header = true;
  o.user_column = "user", o.item_column = "item", o.value_column = "rating", o.timestamp_column = "ts";
  // Invalid UTF-8, and the same bytes read as Latin-1.
  write("x.csv", "user,item,rating,ts\n1,2,3,4\nJos\xE9,2,3,4\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "x.csv:3: invalid UTF-8 (set data.encoding=latin-1 for Latin-1 files)");
  o.encoding = "latin-1";
  EXPECT_GE(read().users().find("Jos\xC3\xA9"), 0);
  o.encoding = "utf-8";
  write("x.csv", "user,item,rating,ts\n1,\"2,3,4\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.csv:2: unterminated quoted field");
  write("x.csv", "user,item,rating,ts\n1,2,3,later\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument,
                    "x.csv:2: column `ts`: expected a unix time or an ISO-8601 date, got `later`");
  // Unreadable paths.
  o.path = dir_ / "missing.csv";
  EXPECT_READ_ERROR(read(), kNotFound,
                    "cannot open `" + (dir_ / "missing.csv").string() + "`: No such file or directory");
  o.path = dir_;
  EXPECT_READ_ERROR(read(), kIo, "Is a directory");
  o.path = dir_ / "x.csv";
  o.items_path = dir_ / "no_items.csv";
  write("x.csv", "user,item,rating,ts\n1,2,3,4\n");
  EXPECT_READ_ERROR(read(), kNotFound, "no_items.csv`: No such file or directory");
}

TEST_F(ReadersTest, CsvSkipBadLinesKeepsFirstTen) {
  std::string text = "user,item,rating\n";
  for (int i = 0; i < 15; ++i) text += "1,2,bad\n";
  text += "1,2,3\n2,2,4\n";
  const auto p = write("x.csv", text);
  ReadOptions o = opts("csv", p);
  o.value_column = "rating";
  o.skip_bad_lines = true;
  ReadReport report;
  Dataset ds = read_dataset(o, &report);
  EXPECT_EQ(ds.num_interactions(), 2);
  EXPECT_EQ(report.bad_lines, 15);
  ASSERT_EQ(report.first_errors.size(), 10u);
  EXPECT_THAT(report.first_errors[0], HasSubstr("x.csv:2: column `rating`: expected a number, got `bad`"));
  EXPECT_THAT(report.first_errors[9], HasSubstr("x.csv:11:"));
  // Only bad lines: still an error, saying how many were skipped.
  write("x.csv", "user,item,rating\n1,2,x\n");
  EXPECT_READ_ERROR(read_dataset(o), kInvalidArgument, "x.csv: no valid data rows (1 bad line skipped");
}

TEST_F(ReadersTest, CommittedFixtures) {
  const fs::path fixtures = fs::path(FEWREC_FIXTURES_DIR) / "readers";
  ReadOptions o = opts("csv", fixtures / "interactions.csv");
  o.value_column = "rating";
  o.timestamp_column = "timestamp";
  o.items_path = fixtures / "items.csv";
  Dataset ds = read_dataset(o);
  EXPECT_EQ(ds.num_interactions(), 8);
  EXPECT_EQ(ds.num_users(), 3);
  EXPECT_EQ(ds.num_items(), 5);
  EXPECT_EQ(text_of(ds.item_features(), "title", item_index(ds, "101")), "The Quiet Garden, Vol. 1");

  ReadOptions j = opts("jsonl", fixtures / "events.jsonl");
  j.value_column = "rating";
  j.timestamp_column = "time";
  j.event_column = "event";
  Dataset dj = read_dataset(j);
  EXPECT_EQ(dj.num_interactions(), 4);
  EXPECT_EQ(dj.num_users(), 2);
}

// =============================================================== jsonl

TEST_F(ReadersTest, JsonlReadsStringAndNumberIds) {
  const auto p = write("x.jsonl",
                       "{\"user\": \"alice\", \"item\": 10, \"rating\": 4.5, \"time\": 100, \"event\": \"view\"}\n"
                       "\n"
                       "{\"user\": 7, \"item\": \"10\", \"rating\": 3, \"time\": \"2020-01-01\", \"event\": \"buy\"}\n"
                       "{\"item\": 11, \"user\": \"alice\", \"rating\": \"2\", \"time\": 50.0, \"w\": 0.5}\n");
  const auto items = write("items.jsonl",
                           "{\"item\": 10, \"title\": \"A Song\", \"genres\": [\"pop\", \"rock\"], \"price\": 9.5, \"label\": \"X\"}\n"
                           "{\"item\": \"12\", \"title\": \"Cold Item\", \"genres\": \"jazz|blues\"}\n");
  ReadOptions o = opts("jsonl", p);
  o.value_column = "rating";
  o.timestamp_column = "time";
  o.event_column = "event";
  o.items_path = items;
  Dataset ds = read_dataset(o);
  EXPECT_EQ(ds.num_interactions(), 3);
  EXPECT_EQ(ds.num_users(), 2);
  EXPECT_EQ(ds.num_items(), 3);
  const auto h = ds.history(user_index(ds, "alice"));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.items[0], item_index(ds, "11"));
  EXPECT_EQ(h.timestamps[0], 50);
  EXPECT_EQ(h.values[0], 2.0f);
  EXPECT_EQ(h.events[0], 0);  // no event field: the default type
  EXPECT_EQ(ds.event_types().id(h.events[1]), "view");
  EXPECT_EQ(ds.history(user_index(ds, "7")).timestamps[0], 1577836800);
  const auto& f = ds.item_features();
  EXPECT_EQ(text_of(f, "title", item_index(ds, "12")), "Cold Item");
  EXPECT_EQ(tags_of(f, "genres", item_index(ds, "10")), (std::vector<std::string>{"pop", "rock"}));
  EXPECT_EQ(tags_of(f, "genres", item_index(ds, "12")), (std::vector<std::string>{"blues", "jazz"}));
  EXPECT_EQ(number_of(f, "price", item_index(ds, "10")), 9.5f);
  EXPECT_EQ(category_of(f, "label", item_index(ds, "10")), "X");
}

TEST_F(ReadersTest, JsonlErrors) {
  ReadOptions o = opts("jsonl", dir_ / "x.jsonl");
  o.value_column = "rating";
  auto read = [&] { return read_dataset(o); };
  write("x.jsonl", "{\"user\": 1, \"item\": 2, \"rating\": 3}\n{\"user\": 1, \"item\": 2, \"rating\": 3\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.jsonl:2: invalid JSON: ");
  write("x.jsonl", "{\"user\": 1, \"item\": 2, \"rating\": 3}\n[1, 2, 3]\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.jsonl:2: expected a JSON object, got array");
  write("x.jsonl", "{\"user\": 1, \"item\": 2, \"rating\": 3}\n\n{\"user\": 1, \"item\": 2}\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.jsonl:3: missing field `rating` (fields: item, user)");
  write("x.jsonl", "{\"user\": 1, \"item\": 2, \"rating\": \"abc\"}\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.jsonl:1: field `rating`: expected a number, got \"abc\"");
  write("x.jsonl", "{\"user\": [1], \"item\": 2, \"rating\": 1}\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.jsonl:1: field `user`: expected a string or number id, got array");
  write("x.jsonl", "");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.jsonl: file is empty (expected one JSON object per line)");
  write("x.jsonl", "{\"user\": \"Jos\xE9\", \"item\": 2, \"rating\": 1}\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.jsonl:1: invalid UTF-8 (set data.encoding=latin-1");
  o.timestamp_column = "t";
  write("x.jsonl", "{\"user\": 1, \"item\": 2, \"rating\": 1, \"t\": true}\n");
  EXPECT_READ_ERROR(read(), kInvalidArgument, "x.jsonl:1: field `t`: expected a unix time");
  o.path = dir_ / "nope.jsonl";
  EXPECT_READ_ERROR(read(), kNotFound, "nope.jsonl`: No such file or directory");
}

TEST_F(ReadersTest, JsonlSkipBadLines) {
  const auto p = write("x.jsonl", "{\"user\": 1, \"item\": 2}\nnot json\n{\"user\": 2}\n{\"user\": 3, \"item\": 2}\n");
  ReadOptions o = opts("jsonl", p);
  o.skip_bad_lines = true;
  ReadReport report;
  Dataset ds = read_dataset(o, &report);
  EXPECT_EQ(ds.num_interactions(), 2);
  EXPECT_EQ(report.bad_lines, 2);
  EXPECT_THAT(report.first_errors[1], HasSubstr("x.jsonl:3: missing field `item`"));
}

// ====================================================== misc / config

TEST(SplitCsvLine, QuotesAndEmptyFields) {
  EXPECT_EQ(split_csv_line("a,\"b,c\",,\"d \"\"e\"\"\"", ','),
            (std::vector<std::string>{"a", "b,c", "", "d \"e\""}));
  EXPECT_EQ(split_csv_line("", ','), (std::vector<std::string>{""}));
  EXPECT_EQ(split_csv_line("a;b\r", ';'), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(split_csv_line("\"\"", ','), (std::vector<std::string>{""}));
  EXPECT_EQ(split_csv_line("a,", ','), (std::vector<std::string>{"a", ""}));
  EXPECT_READ_ERROR(split_csv_line("a,\"b", ','), kInvalidArgument, "unterminated quoted field");
}

TEST(ReadOptionsTest, FromConfigReadsEveryKey) {
  fewrec::core::Config config;
  config.set("data.format", std::string("tsv"));
  config.set("data.path", std::string("/tmp/x.tsv"));
  config.set("data.header", false);
  config.set("data.user_column", std::string("0"));
  config.set("data.item_column", std::string("1"));
  config.set("data.value_column", std::string("2"));
  config.set("data.items_path", std::string("/tmp/items.tsv"));
  config.set("data.item_text_columns", std::vector<std::string>{"title", "plot"});
  config.set("data.tag_separator", std::string(";"));
  config.set("data.encoding", std::string("Latin1"));
  config.set("data.skip_bad_lines", true);
  config.set("data.max_rows", int64_t{1000});
  const ReadOptions o = ReadOptions::from_config(config);
  EXPECT_EQ(o.format, "tsv");
  EXPECT_EQ(o.path, fs::path("/tmp/x.tsv"));
  EXPECT_EQ(o.separator, '\t');
  EXPECT_FALSE(o.has_header);
  EXPECT_EQ(o.value_column, "2");
  EXPECT_EQ(o.items_path, fs::path("/tmp/items.tsv"));
  EXPECT_EQ(o.item_text_columns, (std::vector<std::string>{"title", "plot"}));
  EXPECT_EQ(o.tag_separator, ';');
  EXPECT_EQ(o.encoding, "latin-1");
  EXPECT_TRUE(o.skip_bad_lines);
  EXPECT_EQ(o.max_rows, 1000);
  EXPECT_NO_THROW(config.check_all_used());
  // Every key is documented, set or not.
  for (const char* key : {"data.format", "data.path", "data.separator", "data.header", "data.user_column",
                          "data.item_column", "data.value_column", "data.timestamp_column",
                          "data.event_column", "data.weight_column", "data.items_path",
                          "data.items_id_column", "data.item_text_columns", "data.item_tag_columns",
                          "data.tag_separator", "data.encoding", "data.skip_bad_lines", "data.max_rows"}) {
    ASSERT_TRUE(config.docs().count(key)) << key;
    EXPECT_FALSE(config.docs().at(key).second.empty()) << key;
  }
}

TEST(ReadOptionsTest, FromConfigErrors) {
  fewrec::core::Config config;
  config.set("data.path", std::string("x"));
  config.set("data.format", std::string("parquet"));
  EXPECT_READ_ERROR(ReadOptions::from_config(config), kInvalidArgument,
                    "unknown data format `parquet` (valid: movielens-100k, movielens-1m, "
                    "movielens-latest, csv, tsv, jsonl)");
  config.set("data.format", std::string("ml-100k"));
  EXPECT_READ_ERROR(ReadOptions::from_config(config), kInvalidArgument, "did you mean `movielens-100k`?");
  config.set("data.format", std::string("csv"));
  config.set("data.separator", std::string("::"));
  EXPECT_READ_ERROR(ReadOptions::from_config(config), kInvalidArgument, "data.separator");
  config.set("data.separator", std::string("\\t"));
  EXPECT_EQ(ReadOptions::from_config(config).separator, '\t');
  config.set("data.encoding", std::string("ebcdic"));
  EXPECT_READ_ERROR(ReadOptions::from_config(config), kInvalidArgument,
                    "unknown encoding `ebcdic` (valid: utf-8, latin-1");
  fewrec::core::Config empty;
  EXPECT_READ_ERROR(ReadOptions::from_config(empty), kInvalidArgument, "data.path");
  ReadOptions o;
  o.format = "xml";
  EXPECT_READ_ERROR(read_dataset(o), kInvalidArgument, "unknown data format `xml`");
}

namespace {
struct RecordingMonitor : fewrec::core::Monitor {
  std::vector<std::string> done_tasks;
  int64_t progress_calls = 0;
  void progress(std::string_view, int64_t, int64_t) override { ++progress_calls; }
  void done(std::string_view task, int64_t, double) override { done_tasks.emplace_back(task); }
};
}  // namespace

TEST_F(ReadersTest, ReportsProgressToTheMonitor) {
  const auto p = write("x.csv", "user,item\n1,2\n2,3\n");
  RecordingMonitor monitor;
  read_dataset(opts("csv", p), nullptr, &monitor);
  EXPECT_NE(std::find(monitor.done_tasks.begin(), monitor.done_tasks.end(), "read x.csv"),
            monitor.done_tasks.end());
  EXPECT_NE(std::find(monitor.done_tasks.begin(), monitor.done_tasks.end(), "build dataset"),
            monitor.done_tasks.end());
}

TEST_F(ReadersTest, LongLinesAndManyRowsCrossBufferBoundaries) {
  // More than one 4 MB buffer, with a few very long lines in between.
  std::string text = "user,item,rating,title\n";
  const std::string long_title(5 << 20, 'x');
  for (int i = 0; i < 300000; ++i) {
    text += std::to_string(i % 1000) + "," + std::to_string(i % 777) + ",4.5,";
    text += (i % 100000 == 5) ? long_title : std::string("t");
    text += "\n";
  }
  const auto p = write("big.csv", text);
  ReadOptions o = opts("csv", p);
  o.value_column = "rating";
  Dataset ds = read_dataset(o);
  EXPECT_EQ(ds.num_interactions(), 300000);
  EXPECT_EQ(ds.num_users(), 1000);
  EXPECT_EQ(ds.num_items(), 777);
  // Without a trailing newline, the last line still counts.
  write("t.csv", "user,item\n1,2\n3,4");
  EXPECT_EQ(read_dataset(opts("csv", dir_ / "t.csv")).num_interactions(), 2);
}

// Never crash on any input: random bytes give a dataset or a fewrec::Error.
TEST_F(ReadersTest, RandomInputsNeverCrash) {
  std::mt19937 rng(42);
  const std::string alphabet = "0123456789,;\t|:\"\n\r abc{}[]-.e\xE9\xC3\xA9\xFF";
  auto random_text = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  const char* formats[] = {"csv", "tsv", "jsonl", "movielens-100k", "movielens-1m", "movielens-latest"};
  for (int round = 0; round < 60; ++round) {
    for (const char* format : formats) {
      const std::string f = format;
      ReadOptions o;
      o.format = f;
      o.skip_bad_lines = round % 2 == 0;
      o.value_column = round % 3 == 0 ? "2" : "";
      o.has_header = round % 4 != 0;
      if (!o.has_header) o.user_column = "0", o.item_column = "1";
      const size_t n = rng() % 400;
      if (f == "movielens-100k") {
        write("ml/u.data", random_text(n));
        write("ml/u.item", random_text(n));
        write("ml/u.user", random_text(n));
        o.path = dir_ / "ml";
      } else if (f == "movielens-1m") {
        write("ml1m/ratings.dat", random_text(n));
        write("ml1m/movies.dat", random_text(n));
        o.path = dir_ / "ml1m";
      } else if (f == "movielens-latest") {
        write("mll/ratings.csv", "userId,movieId,rating,timestamp\n" + random_text(n));
        write("mll/movies.csv", random_text(n));
        o.path = dir_ / "mll";
      } else {
        o.path = write("r." + f, random_text(n));
      }
      try {
        Dataset ds = read_dataset(o);
        EXPECT_GT(ds.num_interactions(), 0);
      } catch (const Error&) {
      }
    }
  }
}

// ========================================================= real data

TEST(RealData, MovieLens100k) {
  const fs::path dir = fs::path(FEWREC_SHARED_DIR) / "data" / "ml-100k";
  if (!fs::exists(dir / "u.data")) GTEST_SKIP() << "MovieLens 100K not found at " << dir << " (optional)";
  ReadOptions o;
  o.format = "movielens-100k";
  o.path = dir;
  ReadReport report;
  Dataset ds = read_dataset(o, &report);
  EXPECT_EQ(ds.num_interactions(), 100000);
  EXPECT_EQ(ds.num_users(), 943);
  EXPECT_EQ(ds.num_items(), 1682);
  EXPECT_EQ(report.bad_lines, 0);
  std::array<int64_t, 6> counts{};
  for (float v : ds.value_column()) ++counts[static_cast<size_t>(v)];
  EXPECT_EQ(counts, (std::array<int64_t, 6>{0, 6110, 11370, 27145, 34174, 21201}));
  const auto& items = ds.item_features();
  EXPECT_EQ(text_of(items, "title", item_index(ds, "543")), "Mis\xC3\xA9rables, Les (1995)");
  EXPECT_EQ(tags_of(items, "genres", item_index(ds, "1")),
            (std::vector<std::string>{"Animation", "Children's", "Comedy"}));
  EXPECT_EQ(category_of(ds.user_features(), "occupation", user_index(ds, "1")), "technician");
}

TEST(RealData, MovieLensLatestSmall) {
  const fs::path dir = fs::path(FEWREC_SHARED_DIR) / "data" / "ml-latest-small";
  if (!fs::exists(dir / "ratings.csv"))
    GTEST_SKIP() << "MovieLens latest-small not found at " << dir << " (optional)";
  ReadOptions o;
  o.format = "movielens-latest";
  o.path = dir;
  ReadReport report;
  Dataset ds = read_dataset(o, &report);
  EXPECT_EQ(ds.num_interactions(), 100836);
  EXPECT_EQ(ds.num_users(), 610);
  EXPECT_EQ(ds.num_items(), 9724);
  EXPECT_EQ(report.bad_lines, 0);
  const auto& items = ds.item_features();
  EXPECT_EQ(text_of(items, "title", item_index(ds, "11")), "American President, The (1995)");
  EXPECT_EQ(number_of(items, "year", item_index(ds, "1")), 1995.0f);
  EXPECT_FALSE(tags_of(items, "tags", item_index(ds, "60756")).empty());
}

// WordPiece tokenizer: on the real BERT uncased vocabulary our basic tokens
// and ids equal the reference tokenizer's (../shared/reference/minibert_ref.py,
// fixtures from scripts/gen-wordpiece-fixtures) on a corpus of tricky strings,
// and our Unicode tables agree with Python's on every specially treated code
// point (sweep.json). Plus the WordPiece rules on a small vocabulary, vocab
// file parsing, invalid UTF-8 and the error messages.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fewrec/core/error.h"
#include "fewrec/text/wordpiece.h"

namespace fs = std::filesystem;
using namespace fewrec;
using text::WordPieceTokenizer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

const fs::path kDir = fs::path(FEWREC_FIXTURES_DIR) / "text" / "wordpiece";

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in) << p;
  return nlohmann::json::parse(in);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

const WordPieceTokenizer& bert_vocab() {
  static const WordPieceTokenizer t = WordPieceTokenizer::load(kDir / "bert-vocab.txt");
  return t;
}

WordPieceTokenizer small_vocab(text::WordPieceOptions o = {}) {
  return WordPieceTokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "a", "##b", "##bc", "run",
                             "##ning", ",", "x", "é", "##é"},
                            o, "small");
}

}  // namespace

TEST(WordPiece, RealVocabularyLoads) {
  const auto& t = bert_vocab();
  EXPECT_EQ(t.vocab_size(), 30522);
  EXPECT_EQ(t.find("[PAD]"), 0);
  EXPECT_EQ(t.unk_id(), 100);
  EXPECT_EQ(t.find("[CLS]"), 101);
  EXPECT_EQ(t.find("[SEP]"), 102);
  EXPECT_EQ(t.token(7592), "hello");
  EXPECT_EQ(t.find("no such token"), -1);
}

TEST(WordPiece, CorpusMatchesReferenceIds) {
  const auto j = read_json(kDir / "corpus.json");
  const auto& t = bert_vocab();
  const int32_t cls = t.id("[CLS]"), sep = t.id("[SEP]");
  ASSERT_GE(j["cases"].size(), 50u);
  int64_t unk_cases = 0, long_cases = 0;
  for (const auto& c : j["cases"]) {
    const std::string textv = c["text"];
    EXPECT_EQ(text::bert_basic_tokenize(textv), c["basic"].get<std::vector<std::string>>()) << textv;
    std::vector<int32_t> ids{cls};
    text::WordPieceStats stats;
    t.encode(textv, ids, &stats);
    ids.push_back(sep);
    const auto expected = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(ids, expected) << textv;
    EXPECT_EQ(stats.words, static_cast<int64_t>(c["basic"].size())) << textv;
    const auto unk = std::count(expected.begin(), expected.end(), t.unk_id());
    EXPECT_EQ(stats.unknown_words, unk) << textv;
    unk_cases += unk > 0;
    long_cases += textv.size() > 100;
  }
  EXPECT_GT(unk_cases, 3);  // the corpus exercises [UNK]
  EXPECT_GT(long_cases, 3);
}

TEST(WordPiece, UnicodeSweepMatchesReference) {
  const auto j = read_json(kDir / "sweep.json");
  ASSERT_GT(j["characters"].get<int>(), 5000);
  int64_t mismatches = 0;
  for (const auto& c : j["cases"]) {
    const std::string textv = c["text"];
    const auto got = text::bert_basic_tokenize(textv);
    const auto expected = c["basic"].get<std::vector<std::string>>();
    if (got != expected && ++mismatches <= 10) ADD_FAILURE() << "basic tokens differ for: " << textv;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(WordPiece, GreedyLongestMatchFirst) {
  const auto t = small_vocab();
  EXPECT_THAT(t.wordpiece("unaffable"), ElementsAre("un", "##aff", "##able"));
  EXPECT_THAT(t.wordpiece("abc"), ElementsAre("a", "##bc"));  // longest piece first, not ##b
  EXPECT_THAT(t.wordpiece("abb"), ElementsAre("a", "##b", "##b"));
  EXPECT_THAT(t.wordpiece("unaffablex"), ElementsAre("[UNK]"));  // an unmatched rest makes the whole word [UNK]
  EXPECT_THAT(t.wordpiece("éé"), ElementsAre("é", "##é"));      // pieces are code points, not bytes
  // Words, punctuation and [UNK] counting.
  text::WordPieceStats stats;
  EXPECT_THAT(t.encode("Running, UNAFFABLE zzz", &stats), ElementsAre(10, 11, 12, 4, 5, 6, 1));
  EXPECT_EQ(stats.words, 4);
  EXPECT_EQ(stats.unknown_words, 1);
}

TEST(WordPiece, MaxCharsPerWord) {
  text::WordPieceOptions o;
  o.max_chars_per_word = 4;
  o.lower_case = false;  // keep the accents
  const auto t = small_vocab(o);
  EXPECT_THAT(t.encode("abbb"), ElementsAre(7, 8, 8, 8));
  EXPECT_THAT(t.encode("abbbb"), ElementsAre(1));
  EXPECT_THAT(t.encode("éééé ééééé"), ElementsAre(14, 15, 15, 15, 1));  // counted in code points
}

TEST(WordPiece, CasedModeKeepsCaseAndAccents) {
  EXPECT_THAT(text::bert_basic_tokenize("Héllo, WORLD", false), ElementsAre("Héllo", ",", "WORLD"));
  EXPECT_THAT(text::bert_basic_tokenize("Héllo, WORLD", true), ElementsAre("hello", ",", "world"));
}

TEST(WordPiece, InvalidUtf8IsDroppedNeverCrashes) {
  EXPECT_THAT(text::bert_basic_tokenize("ab\xff" "cd \xc3"), ElementsAre("abcd"));
  EXPECT_THAT(text::bert_basic_tokenize("\xed\xa0\x80x \xf4\x90\x80\x80y \xc0\xafz"), ElementsAre("x", "y", "z"));
  // Random bytes: any output, but no crash and valid ids.
  std::mt19937 rng(7);
  const auto& t = bert_vocab();
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 40, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng());
    for (int32_t id : t.encode(s)) ASSERT_TRUE(id >= 0 && id < t.vocab_size());
  }
}

TEST(WordPiece, VocabularyFileParsing) {
  const fs::path d = fs::temp_directory_path() / ("fewrec_wp_" + std::to_string(getpid()));
  fs::create_directories(d);
  {
    std::ofstream(d / "crlf.txt", std::ios::binary) << "[UNK]\r\nhello\r\nworld\rlast";
    std::ofstream(d / "dup.txt", std::ios::binary) << "[UNK]\nhello\nhello\n";
    std::ofstream(d / "empty.txt", std::ios::binary) << "";
    std::ofstream(d / "nounk.txt", std::ios::binary) << "hello\nworld\n";
  }
  const auto crlf = WordPieceTokenizer::load(d / "crlf.txt");
  EXPECT_EQ(crlf.vocab_size(), 4);
  EXPECT_EQ(crlf.find("world"), 2);
  EXPECT_EQ(crlf.find("last"), 3);
  const auto dup = WordPieceTokenizer::load(d / "dup.txt");
  EXPECT_EQ(dup.vocab_size(), 3);
  EXPECT_EQ(dup.find("hello"), 2);  // the last line wins, as in the reference's dict

  EXPECT_THAT(error_of([&] { WordPieceTokenizer::load(d / "missing.txt"); }),
              AllOf(HasSubstr("missing.txt"), HasSubstr("not found")));
  EXPECT_THAT(error_of([&] { WordPieceTokenizer::load(d / "empty.txt"); }),
              AllOf(HasSubstr("empty.txt"), HasSubstr("empty")));
  EXPECT_THAT(error_of([&] { WordPieceTokenizer::load(d / "nounk.txt"); }),
              AllOf(HasSubstr("nounk.txt"), HasSubstr("no unknown token `[UNK]`")));
  EXPECT_THAT(error_of([&] { bert_vocab().id("[NOPE]"); }), AllOf(HasSubstr("bert-vocab.txt"), HasSubstr("[NOPE]")));
  EXPECT_THAT(error_of([&] { bert_vocab().token(30522); }), HasSubstr("30522"));
  fs::remove_all(d);
}

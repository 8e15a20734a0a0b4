// WordPiece tokenizer with BERT's BasicTokenizer rules, matching the reference
// tokenizer (../shared/reference/minibert_ref.py, itself HuggingFace's
// BertTokenizer for uncased models) id for id:
//
//  1. clean: NUL, U+FFFD and every character of a category C* (control,
//     format, unassigned, private use) except tab / newline / CR are dropped;
//     invalid UTF-8 bytes are dropped the same way. Whitespace (tab, newline,
//     CR, space, Zs, and the line / paragraph separators) separates words.
//  2. CJK ideographs become words of their own.
//  3. lower-casing (if enabled): full Unicode lower-casing with the Greek final
//     sigma rule (as Python's str.lower()), then NFD, then combining marks
//     (category Mn) are removed: "Héllo" -> "hello".
//  4. punctuation (ASCII 33-47, 58-64, 91-96, 123-126 and categories P*)
//     splits words and is a word of its own.
//  5. each word becomes the greedy longest-match-first WordPiece pieces
//     ("##" marks continuations); a word longer than max_chars_per_word code
//     points or with an unmatched remainder becomes [UNK] as a whole.
//
// The Unicode tables come from Python's unicodedata (Unicode 14.0) through
// scripts/gen-wordpiece-tables. No LibTorch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fewrec::text {

struct WordPieceOptions {
  bool lower_case = true;             // lower-case, NFD and strip accents
  int64_t max_chars_per_word = 100;   // longer words become [UNK]
  std::string unk_token = "[UNK]";
};

// Counts over encode() calls: words after basic tokenisation, and how many of
// them became [UNK].
struct WordPieceStats {
  int64_t words = 0;
  int64_t unknown_words = 0;
};

// BasicTokenizer rules 1-4 alone: the words of a UTF-8 text (UTF-8 out).
std::vector<std::string> bert_basic_tokenize(std::string_view text, bool lower_case = true);

class WordPieceTokenizer {
 public:
  // Reads a vocab.txt: one token per line (\n, \r\n or \r), the id is the line
  // number; a repeated token keeps its last id (as the reference's dict).
  // kNotFound (missing file), kIo, kCorrupt (empty), kInvalidArgument (no
  // unk_token in the vocabulary); messages name the file.
  static WordPieceTokenizer load(const std::filesystem::path& vocab_txt, const WordPieceOptions& options = {});
  // From tokens in id order; `source` names them in errors.
  WordPieceTokenizer(std::vector<std::string> tokens, const WordPieceOptions& options = {},
                     std::string source = "vocabulary");
  ~WordPieceTokenizer();
  WordPieceTokenizer(WordPieceTokenizer&&) noexcept;
  WordPieceTokenizer& operator=(WordPieceTokenizer&&) noexcept;

  const WordPieceOptions& options() const;
  int64_t vocab_size() const;  // lines of vocab.txt
  // Id of a token, -1 if absent.
  int32_t find(std::string_view token) const;
  // Id of a token; kInvalidArgument naming the vocabulary if absent.
  int32_t id(std::string_view token) const;
  const std::string& token(int32_t id) const;  // id in [0, vocab_size)
  int32_t unk_id() const;

  // WordPiece ids of a text (no [CLS]/[SEP]); appends to `out`. Thread-safe.
  void encode(std::string_view text, std::vector<int32_t>& out, WordPieceStats* stats = nullptr) const;
  std::vector<int32_t> encode(std::string_view text, WordPieceStats* stats = nullptr) const;
  // Pieces of one basic word (UTF-8), e.g. "running" -> "run", "##ning".
  std::vector<std::string> wordpiece(std::string_view word) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fewrec::text

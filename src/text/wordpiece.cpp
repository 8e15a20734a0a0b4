#include "fewrec/text/wordpiece.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::text {

namespace fs = std::filesystem;

namespace {

struct CharRun {
  uint32_t first;
  uint8_t flags;
};
struct LowerEntry {
  uint32_t cp;
  uint32_t lower[3];
};
struct DecompEntry {
  uint32_t cp;
  uint32_t offset;
  uint32_t length;
};
struct CombiningRun {
  uint32_t first;
  uint32_t last;
  uint8_t ccc;
};

#include "wordpiece_tables.inc"

constexpr uint32_t kReplacement = 0xFFFD;
constexpr uint32_t kCapitalSigma = 0x3A3, kSmallSigma = 0x3C3, kFinalSigma = 0x3C2;
constexpr uint32_t kHangulFirst = 0xAC00, kHangulLast = 0xD7A3;

const std::array<uint8_t, 128>& ascii_flags();

uint8_t char_flags(uint32_t cp) {
  if (cp < 128) return ascii_flags()[cp];
  if (cp > 0x10FFFF) return kDrop;
  auto it = std::upper_bound(std::begin(kCharRanges), std::end(kCharRanges), cp,
                             [](uint32_t c, const CharRun& r) { return c < r.first; });
  return std::prev(it)->flags;
}

const std::array<uint8_t, 128>& ascii_flags() {
  static const std::array<uint8_t, 128> table = [] {
    std::array<uint8_t, 128> t{};
    for (uint32_t c = 0; c < 128; ++c) {
      auto it = std::upper_bound(std::begin(kCharRanges), std::end(kCharRanges), c,
                                 [](uint32_t x, const CharRun& r) { return x < r.first; });
      t[c] = std::prev(it)->flags;
    }
    return t;
  }();
  return table;
}

bool is_cjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

uint8_t combining_class(uint32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::upper_bound(std::begin(kCombiningClass), std::end(kCombiningClass), cp,
                             [](uint32_t c, const CombiningRun& r) { return c < r.first; });
  if (it == std::begin(kCombiningClass)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

// Decodes UTF-8; every byte of an invalid sequence becomes U+FFFD.
void decode_utf8(std::string_view s, std::vector<uint32_t>& out) {
  out.clear();
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b = p[i];
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    int len = 0;
    uint32_t cp = 0, min = 0;
    if ((b & 0xE0) == 0xC0) len = 2, cp = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0) len = 3, cp = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0) len = 4, cp = b & 0x07, min = 0x10000;
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) {
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<size_t>(len);
  }
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Python's str.lower() of a word, including the final-sigma context.
void lower_word(const std::vector<uint32_t>& in, std::vector<uint32_t>& out) {
  out.clear();
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    const uint32_t cp = in[i];
    if (cp < 128) {
      out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
      continue;
    }
    if (cp == kCapitalSigma) {
      // Final iff preceded by a cased letter and not followed by one
      // (case-ignorable characters skipped both ways).
      size_t j = i;
      while (j > 0 && (char_flags(in[j - 1]) & kCaseIgnorable)) --j;
      bool final_sigma = j > 0 && (char_flags(in[j - 1]) & kCased);
      if (final_sigma) {
        size_t k = i + 1;
        while (k < n && (char_flags(in[k]) & kCaseIgnorable)) ++k;
        final_sigma = k == n || !(char_flags(in[k]) & kCased);
      }
      out.push_back(final_sigma ? kFinalSigma : kSmallSigma);
      continue;
    }
    auto it = std::lower_bound(std::begin(kLower), std::end(kLower), cp,
                               [](const LowerEntry& e, uint32_t c) { return e.cp < c; });
    if (it != std::end(kLower) && it->cp == cp) {
      for (uint32_t l : it->lower)
        if (l != 0) out.push_back(l);
    } else {
      out.push_back(cp);
    }
  }
}

// NFD: full canonical decomposition, then canonical ordering of marks.
void nfd(const std::vector<uint32_t>& in, std::vector<uint32_t>& out) {
  out.clear();
  for (uint32_t cp : in) {
    if (cp < 0xC0) {
      out.push_back(cp);
    } else if (cp >= kHangulFirst && cp <= kHangulLast) {
      const uint32_t s = cp - kHangulFirst;
      out.push_back(0x1100 + s / (21 * 28));
      out.push_back(0x1161 + (s % (21 * 28)) / 28);
      if (s % 28 != 0) out.push_back(0x11A7 + s % 28);
    } else {
      auto it = std::lower_bound(std::begin(kDecomp), std::end(kDecomp), cp,
                                 [](const DecompEntry& e, uint32_t c) { return e.cp < c; });
      if (it != std::end(kDecomp) && it->cp == cp)
        out.insert(out.end(), kDecompPool + it->offset, kDecompPool + it->offset + it->length);
      else
        out.push_back(cp);
    }
  }
  // Stable sort of each run of non-starters by combining class (runs are short).
  const size_t n = out.size();
  for (size_t i = 0; i < n;) {
    if (combining_class(out[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && combining_class(out[j]) != 0) ++j;
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(i), out.begin() + static_cast<std::ptrdiff_t>(j),
                     [](uint32_t a, uint32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
}

// Calls emit(code points of one basic word) for each word of `text`.
template <class Emit>
void basic_words(std::string_view text, bool lower_case, Emit&& emit) {
  std::vector<uint32_t> cps, word, lowered, decomposed, piece;
  decode_utf8(text, cps);
  auto finish_word = [&]() {
    if (word.empty()) return;
    const std::vector<uint32_t>* w = &word;
    if (lower_case) {
      lower_word(word, lowered);
      nfd(lowered, decomposed);
      decomposed.erase(std::remove_if(decomposed.begin(), decomposed.end(),
                                      [](uint32_t c) { return c >= 0x300 && (char_flags(c) & kMark); }),
                       decomposed.end());
      w = &decomposed;
    }
    piece.clear();
    for (uint32_t c : *w) {
      if (char_flags(c) & kPunct) {
        if (!piece.empty()) emit(piece);
        piece.assign(1, c);
        emit(piece);
        piece.clear();
      } else {
        piece.push_back(c);
      }
    }
    if (!piece.empty()) emit(piece);
    word.clear();
  };
  for (uint32_t cp : cps) {
    const uint8_t f = char_flags(cp);
    if (f & kDrop) continue;
    if (f & kSpace) {
      finish_word();
    } else if (is_cjk(cp)) {
      finish_word();
      word.push_back(cp);
      finish_word();
    } else {
      word.push_back(cp);
    }
  }
  finish_word();
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace

std::vector<std::string> bert_basic_tokenize(std::string_view text, bool lower_case) {
  std::vector<std::string> out;
  basic_words(text, lower_case, [&](const std::vector<uint32_t>& w) {
    std::string s;
    for (uint32_t c : w) append_utf8(c, s);
    out.push_back(std::move(s));
  });
  return out;
}

struct WordPieceTokenizer::Impl {
  WordPieceOptions options;
  std::string source;
  std::vector<std::string> tokens;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids;
  int32_t unk = -1;
  size_t max_piece_chars = 0;  // longest token in code points, without "##"

  // Appends the pieces of one word (code points) to `out`; false if [UNK].
  bool pieces(const std::vector<uint32_t>& word, std::vector<int32_t>& out) const {
    if (static_cast<int64_t>(word.size()) > options.max_chars_per_word) return false;
    std::string utf8;
    std::vector<size_t> offsets;  // byte offset of each code point, plus the end
    offsets.reserve(word.size() + 1);
    for (uint32_t c : word) {
      offsets.push_back(utf8.size());
      append_utf8(c, utf8);
    }
    offsets.push_back(utf8.size());
    const size_t n = word.size();
    const size_t first = out.size();
    std::string candidate;
    for (size_t start = 0; start < n;) {
      size_t end = std::min(n, start + max_piece_chars);
      int32_t found = -1;
      for (; end > start; --end) {
        candidate.assign(start == 0 ? "" : "##");
        candidate.append(utf8, offsets[start], offsets[end] - offsets[start]);
        if (auto it = ids.find(std::string_view(candidate)); it != ids.end()) {
          found = it->second;
          break;
        }
      }
      if (found < 0) {
        out.resize(first);
        return false;
      }
      out.push_back(found);
      start = end;
    }
    return true;
  }
};

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> tokens, const WordPieceOptions& options,
                                       std::string source)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->source = std::move(source);
  if (tokens.empty()) FEWREC_THROW(kCorrupt, "WordPiece vocabulary `{}` is empty", impl_->source);
  if (tokens.size() > static_cast<size_t>(INT32_MAX))
    FEWREC_THROW(kCorrupt, "WordPiece vocabulary `{}` has {} tokens, more than {}", impl_->source, tokens.size(),
                 INT32_MAX);
  if (options.max_chars_per_word < 1)
    FEWREC_THROW(kInvalidArgument, "WordPiece max_chars_per_word must be >= 1, got {}", options.max_chars_per_word);
  impl_->tokens = std::move(tokens);
  impl_->ids.reserve(impl_->tokens.size());
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < impl_->tokens.size(); ++i) {
    const std::string& t = impl_->tokens[i];
    impl_->ids[t] = static_cast<int32_t>(i);  // a repeated token keeps its last id
    std::string_view body = t;
    if (body.starts_with("##")) body.remove_prefix(2);
    decode_utf8(body, cps);
    impl_->max_piece_chars = std::max(impl_->max_piece_chars, cps.size());
  }
  impl_->max_piece_chars = std::max<size_t>(impl_->max_piece_chars, 1);
  impl_->unk = find(options.unk_token);
  if (impl_->unk < 0)
    FEWREC_THROW(kInvalidArgument, "WordPiece vocabulary `{}` has no unknown token `{}`", impl_->source,
                 core::excerpt(options.unk_token));
}

WordPieceTokenizer WordPieceTokenizer::load(const fs::path& path, const WordPieceOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) FEWREC_THROW(kNotFound, "WordPiece vocabulary `{}` not found", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) FEWREC_THROW(kIo, "cannot open WordPiece vocabulary `{}`", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) FEWREC_THROW(kIo, "cannot read WordPiece vocabulary `{}`", path.string());
  const std::string text = ss.str();
  // Lines end at \n, \r\n or \r (Python's universal newlines).
  std::vector<std::string> tokens;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' || text[i] == '\r') {
      tokens.emplace_back(text, start, i - start);
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < text.size()) tokens.emplace_back(text, start, text.size() - start);
  return WordPieceTokenizer(std::move(tokens), options, path.string());
}

WordPieceTokenizer::~WordPieceTokenizer() = default;
WordPieceTokenizer::WordPieceTokenizer(WordPieceTokenizer&&) noexcept = default;
WordPieceTokenizer& WordPieceTokenizer::operator=(WordPieceTokenizer&&) noexcept = default;

const WordPieceOptions& WordPieceTokenizer::options() const { return impl_->options; }
int64_t WordPieceTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->tokens.size()); }
int32_t WordPieceTokenizer::unk_id() const { return impl_->unk; }

int32_t WordPieceTokenizer::find(std::string_view token) const {
  auto it = impl_->ids.find(token);
  return it == impl_->ids.end() ? -1 : it->second;
}

int32_t WordPieceTokenizer::id(std::string_view token) const {
  const int32_t i = find(token);
  if (i < 0)
    FEWREC_THROW(kInvalidArgument, "WordPiece vocabulary `{}` has no token `{}`", impl_->source,
                 core::excerpt(token));
  return i;
}

const std::string& WordPieceTokenizer::token(int32_t id) const {
  FEWREC_CHECK(id >= 0 && id < vocab_size(), kInvalidArgument, "token id {} is outside the vocabulary `{}` [0, {})",
               id, impl_->source, vocab_size());
  return impl_->tokens[static_cast<size_t>(id)];
}

void WordPieceTokenizer::encode(std::string_view text, std::vector<int32_t>& out, WordPieceStats* stats) const {
  basic_words(text, impl_->options.lower_case, [&](const std::vector<uint32_t>& w) {
    const bool known = impl_->pieces(w, out);
    if (!known) out.push_back(impl_->unk);
    if (stats) {
      ++stats->words;
      if (!known) ++stats->unknown_words;
    }
  });
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, WordPieceStats* stats) const {
  std::vector<int32_t> out;
  encode(text, out, stats);
  return out;
}

std::vector<std::string> WordPieceTokenizer::wordpiece(std::string_view word) const {
  std::vector<uint32_t> cps;
  decode_utf8(word, cps);
  std::vector<int32_t> ids;
  if (!impl_->pieces(cps, ids)) return {impl_->options.unk_token};
  std::vector<std::string> out;
  for (int32_t i : ids) out.push_back(impl_->tokens[static_cast<size_t>(i)]);
  return out;
}

}  // namespace fewrec::text

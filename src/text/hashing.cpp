// hashing: feature-hashed bag of words and word bigrams. No weights, always
// available (tests, fallback). Each token adds +-1 (a second hash picks the
// sign) to the bucket its hash picks; the result is L2-normalised. Texts
// sharing words get similar vectors; there is no notion of synonyms.
#include <cmath>
#include <mutex>

#include "fewrec/text/encoder.h"
#include "options.h"

namespace fewrec::text {

std::vector<std::string> simple_words(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  auto flush = [&] {
    // Strip apostrophes at the edges ('quoted' words).
    size_t b = 0, e = cur.size();
    while (b < e && cur[b] == '\'') ++b;
    while (e > b && cur[e - 1] == '\'') --e;
    if (e > b) words.emplace_back(cur.substr(b, e - b));
    cur.clear();
  };
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) {
      cur.push_back(ch);
    } else if (c >= 'A' && c <= 'Z') {
      cur.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if (c == '\'' && !cur.empty()) {
      cur.push_back(ch);
    } else if (!cur.empty()) {
      flush();
    }
  }
  if (!cur.empty()) flush();
  return words;
}

namespace {

struct HashingOptions {
  int64_t dim = 256;
  bool bigrams = true;
  bool normalize = true;
  int64_t seed = 0;
};

HashingOptions read_options(EncoderOptions& o) {
  HashingOptions p;
  p.dim = o.get_int("dim", p.dim, "number of hash buckets (the vector dimension)", 1, 1 << 20);
  p.bigrams = o.get_bool("bigrams", p.bigrams, "also hash pairs of consecutive words");
  p.normalize = o.get_bool("normalize", p.normalize, "L2-normalise each vector (an empty text stays zero)");
  p.seed = o.get_int("seed", p.seed, "hash seed (different seeds give independent hashings)", 0);
  return p;
}

class HashingEncoder final : public TextEncoder {
 public:
  explicit HashingEncoder(HashingOptions o) : o_(o) {}
  int64_t dim() const override { return o_.dim; }
  std::string identity() const override {
    return fmt::format("hashing:dim={};bigrams={};normalize={};seed={}", o_.dim, o_.bigrams, o_.normalize, o_.seed);
  }
  Matrix encode(std::span<const std::string> texts) const override {
    Matrix m{static_cast<int64_t>(texts.size()), o_.dim, {}};
    m.data.assign(static_cast<size_t>(m.rows * m.cols), 0.0f);
    const uint64_t seed = 1469598103934665603ull ^ (static_cast<uint64_t>(o_.seed) * 0x9e3779b97f4a7c15ull);
    int64_t tokens = 0, empty = 0;
    for (size_t t = 0; t < texts.size(); ++t) {
      float* row = m.row(static_cast<int64_t>(t));
      const auto words = simple_words(texts[t]);
      auto add = [&](std::string_view token) {
        const uint64_t h = fnv1a64(token, seed);
        const uint64_t bucket = (h >> 1) % static_cast<uint64_t>(o_.dim);
        row[bucket] += (h & 1) ? 1.0f : -1.0f;
      };
      for (size_t i = 0; i < words.size(); ++i) {
        add(words[i]);
        if (o_.bigrams && i + 1 < words.size()) add(words[i] + ' ' + words[i + 1]);
      }
      tokens += static_cast<int64_t>(words.size());
      if (words.empty()) ++empty;
      if (o_.normalize) {
        double norm = 0.0;
        for (int64_t j = 0; j < o_.dim; ++j) norm += static_cast<double>(row[j]) * row[j];
        if (norm > 0.0) {
          const auto inv = static_cast<float>(1.0 / std::sqrt(norm));
          for (int64_t j = 0; j < o_.dim; ++j) row[j] *= inv;
        }
      }
    }
    std::lock_guard lock(mu_);
    coverage_.texts += static_cast<int64_t>(texts.size());
    coverage_.tokens += tokens;
    coverage_.known_tokens += tokens;  // every word hashes somewhere
    coverage_.empty_texts += empty;
    return m;
  }
  Coverage coverage() const override {
    std::lock_guard lock(mu_);
    return coverage_;
  }

 private:
  HashingOptions o_;
  mutable std::mutex mu_;
  mutable Coverage coverage_;
};

}  // namespace

void register_hashing_encoder(EncoderRegistry& registry) {
  EncoderOptions probe({}, "hashing");
  read_options(probe);
  registry.add({"hashing", "feature-hashed bag of words and bigrams (no weights; tests and fallback)", probe.docs(),
                [](const std::map<std::string, std::string>& options) -> std::unique_ptr<TextEncoder> {
                  EncoderOptions o(options, "hashing");
                  auto p = read_options(o);
                  o.check_all_used();
                  return std::make_unique<HashingEncoder>(p);
                }});
}

}  // namespace fewrec::text

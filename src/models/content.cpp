// content: the plain content baseline of the cold-item protocols. An item is
// the TF-IDF vector of its features (title words, genres, tags, categorical
// values, numeric buckets: hybrid_features.h; each counted once per item),
// L2-normalised; a user is the mean of the vectors of the items in their
// history; the score is the cosine between the two. It needs no interaction
// to score an item, so cold items and new users work from the start; it
// learns nothing from co-occurrence.

#include <algorithm>
#include <cmath>
#include <numeric>

#include "builtin.h"
#include "common.h"
#include "feature_bags.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "hybrid_features.h"

namespace fewrec::models {

namespace {

constexpr const char* kName = "content";

struct ContentOptions {
  hybrid::ColumnSelection item_features;
  hybrid::VocabularyOptions vocab;

  static ContentOptions read(DocumentedOptions& o) {
    ContentOptions p;
    p.item_features = hybrid::ColumnSelection::parse(
        o.get_string("item_features", "all", "item feature columns: all, none, or names joined by +"),
        "model `content`: option `item_features`");
    p.vocab.min_df = o.get_int("min_df", 1, "feature values seen in fewer items are dropped", 1, INT32_MAX);
    p.vocab.max_vocab = o.get_int("max_vocab", 0, "per text column: keep the most frequent words (0 = all)", 0,
                                  INT32_MAX);
    return p;
  }
};

class ContentState final : public UserState {
 public:
  std::vector<float> profile;  // dense over the features
};

class ContentModel final : public Model {
 public:
  ContentModel(ModelSpec spec, ContentOptions options) : Model(std::move(spec)), o_(std::move(options)) {
    if (spec_.options.count("item_features")) spec_.options["item_features"] = o_.item_features.to_string();
  }

  void fit(const data::Dataset& train, const TrainOptions&, core::Monitor& monitor) override {
    const auto& cat = train.catalogue();
    std::vector<int32_t> rows(static_cast<size_t>(train.num_items()));
    std::iota(rows.begin(), rows.end(), 0);
    // Vocabulary and document frequencies over the whole catalogue: no
    // interaction is needed to describe an item.
    space_ = hybrid::FeatureSpace::build(cat.item_features, rows, o_.item_features, o_.vocab, "item", name());
    FEWREC_CHECK(!space_.empty(), kInvalidArgument,
                 "model `{}`: no item feature was found (item_features = {})", name(), o_.item_features.to_string());
    bags_ = Bags{};
    encode(cat, 0);
    std::vector<int64_t> df(static_cast<size_t>(space_.size()), 0);
    for (int64_t f : bags_.ids) ++df[static_cast<size_t>(f)];
    const double n = static_cast<double>(bags_.rows());
    idf_.resize(df.size());
    for (size_t f = 0; f < df.size(); ++f)
      idf_[f] = static_cast<float>(std::log((n + 1.0) / (static_cast<double>(df[f]) + 1.0)) + 1.0);
    weigh(0);
    monitor.info(fmt::format("content: {} items, {} features", bags_.rows(), space_.size()));
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    auto state = std::make_unique<ContentState>();
    state->seen = history_item_set(context, num_items(), name());
    state->profile.assign(static_cast<size_t>(space_.size()), 0.0f);
    if (context.history.empty()) return state;
    const float w = 1.0f / static_cast<float>(context.history.size());
    for (const auto& e : context.history)
      for (int64_t r = bags_.offsets[static_cast<size_t>(e.item)]; r < bags_.offsets[static_cast<size_t>(e.item) + 1]; ++r)
        state->profile[static_cast<size_t>(bags_.ids[static_cast<size_t>(r)])] += w * weights_[static_cast<size_t>(r)];
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    const auto& p = dynamic_cast<const ContentState&>(state).profile;
    for (size_t k = 0; k < items.size(); ++k) {
      if (items[k] < 0 || items[k] >= num_items()) throw_item_out_of_range(name(), items[k], num_items());
      out[k] = dot(p, items[k]);
    }
  }

  int32_t num_items() const override { return static_cast<int32_t>(bags_.rows()); }

  void add_items(const data::Catalogue& catalogue, ItemIndex first_new_item) override {
    FEWREC_CHECK(first_new_item == num_items(), kInvalidArgument,
                 "model `{}`: new items must start at index {} (the model's item count), got {}", name(), num_items(),
                 first_new_item);
    const int32_t first = num_items();
    encode(catalogue, first);
    weigh(first);
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override {
    space_.save(writer, prefix + "space/");
    writer.put_array<int64_t>(prefix + "offsets", bags_.offsets);
    writer.put_array<int64_t>(prefix + "ids", bags_.ids);
    writer.put_array<float>(prefix + "idf", idf_);
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader, const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = ContentOptions::read(o);
    o.check_all_used();
    auto m = std::make_unique<ContentModel>(spec, options);
    m->space_ = hybrid::FeatureSpace::load(reader, prefix + "space/");
    m->bags_.offsets = reader.get_array<int64_t>(prefix + "offsets");
    m->bags_.ids = reader.get_array<int64_t>(prefix + "ids");
    m->idf_ = reader.get_array<float>(prefix + "idf", static_cast<size_t>(m->space_.size()));
    const auto& off = m->bags_.offsets;
    if (off.empty() || off.front() != 0 || off.back() != static_cast<int64_t>(m->bags_.ids.size()) ||
        !std::is_sorted(off.begin(), off.end()))
      FEWREC_THROW(kCorrupt, "artifact {}: model `content`: item feature offsets are inconsistent", reader.origin());
    for (int64_t f : m->bags_.ids)
      if (f < 0 || f >= m->space_.size())
        FEWREC_THROW(kCorrupt, "artifact {}: model `content`: a feature index is out of range", reader.origin());
    m->weigh(0);
    return m;
  }

  nlohmann::json summary() const override {
    return {{"items", num_items()}, {"features", space_.size()}};
  }

 private:
  void encode(const data::Catalogue& cat, int32_t first) {
    std::vector<int32_t> f;
    for (int32_t i = first; i < cat.items.size(); ++i) {
      f.clear();
      space_.encode_row(cat.item_features, i, f);
      bags_.add(f);
    }
  }
  // weights_ of the rows of items >= first: idf, L2-normalised per item.
  void weigh(int32_t first) {
    weights_.resize(bags_.ids.size());
    for (int32_t i = first; i < num_items(); ++i) {
      const int64_t lo = bags_.offsets[static_cast<size_t>(i)], hi = bags_.offsets[static_cast<size_t>(i) + 1];
      double norm = 0.0;
      for (int64_t r = lo; r < hi; ++r) {
        const float w = idf_[static_cast<size_t>(bags_.ids[static_cast<size_t>(r)])];
        weights_[static_cast<size_t>(r)] = w;
        norm += static_cast<double>(w) * w;
      }
      const float inv = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.0f;
      for (int64_t r = lo; r < hi; ++r) weights_[static_cast<size_t>(r)] *= inv;
    }
  }
  float dot(const std::vector<float>& profile, ItemIndex i) const {
    float s = 0.0f;
    for (int64_t r = bags_.offsets[static_cast<size_t>(i)]; r < bags_.offsets[static_cast<size_t>(i) + 1]; ++r)
      s += profile[static_cast<size_t>(bags_.ids[static_cast<size_t>(r)])] * weights_[static_cast<size_t>(r)];
    return s;
  }

  ContentOptions o_;
  hybrid::FeatureSpace space_;
  Bags bags_;                  // feature indices per item
  std::vector<float> idf_;     // per feature
  std::vector<float> weights_;  // per bag entry: idf / item norm
};

std::unique_ptr<Model> create_content(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = ContentOptions::read(o);
  o.check_all_used();
  return std::make_unique<ContentModel>(spec, options);
}

}  // namespace

void register_content(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{kName, {}});
  ContentOptions::read(docs);
  registry.add(ModelInfo{
      .name = kName,
      .description = "content baseline: cosine between an item's TF-IDF feature vector (title words, genres, tags, "
                     "attributes) and the mean of the user's history items; no training on interactions",
      .options = docs.docs(),
      .create = create_content,
      .load = ContentModel::load,
  });
}

}  // namespace fewrec::models

// content: the plain content baseline of the cold-item protocols. An item is
// the TF-IDF vector of its features (title words, genres, tags, categorical
// values, numeric buckets: hybrid_features.h; each counted once per item),
// L2-normalised; a user is the mean of the vectors of the items in their
// history; the score is the cosine between the two. It needs no interaction
// to score an item, so cold items and new users work from the start; it
// learns nothing from co-occurrence.

#include "builtin.h"
#include "common.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "hybrid_features.h"
#include "tfidf.h"

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
    tfidf_.build(train.catalogue(), o_.item_features, o_.vocab, name());
    monitor.info(fmt::format("content: {} items, {} features", tfidf_.rows(), tfidf_.features()));
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    auto state = std::make_unique<ContentState>();
    state->seen = history_item_set(context, num_items(), name());
    std::vector<int32_t> history;
    for (const auto& e : context.history) history.push_back(e.item);
    state->profile = tfidf_.profile(history);
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    const auto& p = dynamic_cast<const ContentState&>(state).profile;
    for (size_t k = 0; k < items.size(); ++k) {
      if (items[k] < 0 || items[k] >= num_items()) throw_item_out_of_range(name(), items[k], num_items());
      out[k] = tfidf_.dot(p, items[k]);
    }
  }

  int32_t num_items() const override { return tfidf_.rows(); }

  void add_items(const data::Catalogue& catalogue, ItemIndex first_new_item) override {
    check_new_items(name(), catalogue, num_items(), first_new_item);
    tfidf_.add_items(catalogue, first_new_item);
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override { tfidf_.save(writer, prefix); }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader, const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = ContentOptions::read(o);
    o.check_all_used();
    auto m = std::make_unique<ContentModel>(spec, options);
    m->tfidf_.load(reader, prefix, kName);
    return m;
  }

  nlohmann::json summary() const override {
    return {{"items", num_items()}, {"features", tfidf_.features()}};
  }

 private:
  ContentOptions o_;
  TfidfItems tfidf_;
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

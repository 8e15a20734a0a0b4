// popularity: every user gets the items most interacted with in training.
// The baseline every other model has to beat.

#include <cmath>

#include "builtin.h"
#include "common.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"

namespace fewrec::models {

namespace {

struct PopularityOptions {
  std::string weighting = "count";

  static PopularityOptions read(DocumentedOptions& o) {
    PopularityOptions p;
    p.weighting = o.get_choice("weighting", p.weighting, {"count", "value", "weight"},
                               "what an interaction adds to its item: count (1), value (rating), weight");
    return p;
  }
};

class PopularityModel final : public Model {
 public:
  PopularityModel(ModelSpec spec, PopularityOptions options)
      : Model(std::move(spec)), options_(std::move(options)) {}

  void fit(const data::Dataset& train, const TrainOptions& train_options, core::Monitor& monitor) override {
    std::vector<double> sums(static_cast<size_t>(train.num_items()), 0.0);
    const auto items = train.item_column();
    const auto values = train.value_column();
    const auto weights = train.weight_column();
    for (size_t r = 0; r < items.size(); ++r) {
      double add = 1.0;
      if (options_.weighting == "value") add = values[r];
      else if (options_.weighting == "weight") add = weights[r];
      sums[static_cast<size_t>(items[r])] += add;
    }
    scores_.assign(sums.begin(), sums.end());
    monitor.info(fmt::format("popularity: {} items, {} interactions", scores_.size(), items.size()));
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    auto state = std::make_unique<UserState>();
    state->seen = history_item_set(context, num_items(), name());
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    const int32_t n = num_items();
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i] < 0 || items[i] >= n) throw_item_out_of_range(name(), items[i], n);
      out[i] = scores_[static_cast<size_t>(items[i])];
    }
  }

  void score_all(const UserState& state, std::span<float> out) const override {
    FEWREC_CHECK(out.size() == scores_.size(), kInvalidArgument,
                 "model `{}`: score_all needs an output of {} scores (one per item), got {}", name(),
                 scores_.size(), out.size());
    std::copy(scores_.begin(), scores_.end(), out.begin());
  }

  int32_t num_items() const override { return static_cast<int32_t>(scores_.size()); }

  // New items have no interactions yet: they score 0.
  void add_items(const data::Catalogue& catalogue, ItemIndex first_new_item) override {
    scores_.resize(static_cast<size_t>(check_new_items(name(), catalogue, num_items(), first_new_item)), 0.0f);
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override {
    writer.put_array<float>(prefix + "scores", scores_);
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader,
                                     const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = PopularityOptions::read(o);
    o.check_all_used();
    auto model = std::make_unique<PopularityModel>(spec, options);
    model->scores_ = reader.get_array<float>(prefix + "scores");
    if (model->scores_.size() > static_cast<size_t>(INT32_MAX))
      FEWREC_THROW(kCorrupt, "artifact {}: section `{}scores` has too many items ({})", reader.origin(), prefix,
                   model->scores_.size());
    for (size_t i = 0; i < model->scores_.size(); ++i)
      if (!std::isfinite(model->scores_[i]))
        FEWREC_THROW(kCorrupt, "artifact {}: section `{}scores` holds a non-finite score at item {}",
                     reader.origin(), prefix, i);
    return model;
  }

  nlohmann::json summary() const override {
    double total = 0;
    int64_t nonzero = 0;
    for (float s : scores_) {
      total += s;
      nonzero += s != 0.0f;
    }
    return {{"items", scores_.size()}, {"items_with_interactions", nonzero}, {"total", total},
            {"weighting", options_.weighting}};
  }

 private:
  PopularityOptions options_;
  std::vector<float> scores_;  // per item
};

std::unique_ptr<Model> create_popularity(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = PopularityOptions::read(o);
  o.check_all_used();
  return std::make_unique<PopularityModel>(spec, options);
}

}  // namespace

void register_popularity(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{"popularity", {}});
  PopularityOptions::read(docs);
  registry.add(ModelInfo{
      .name = "popularity",
      .description = "most interacted-with items in training, the same for everyone (baseline)",
      .options = docs.docs(),
      .create = create_popularity,
      .load = PopularityModel::load,
  });
}

}  // namespace fewrec::models

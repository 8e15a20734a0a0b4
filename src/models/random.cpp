// random: every item gets a uniform random score, drawn again per user. The
// chance level every model has to beat (AUC 0.5 on average). Deterministic:
// a score is a hash of (train.seed, the user, the item), so the same user
// gets the same list from a saved model; a new user is keyed by its history.

#include <cstdint>

#include "builtin.h"
#include "common.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"

namespace fewrec::models {

namespace {

// Streams of derive_seed, so known users, new users and items never share keys.
constexpr uint64_t kKnownUser = 0x6b6e6f776eULL;
constexpr uint64_t kNewUser = 0x6e6577ULL;

struct RandomState final : UserState {
  uint64_t key = 0;
};

class RandomModel final : public Model {
 public:
  explicit RandomModel(ModelSpec spec) : Model(std::move(spec)) {}

  void fit(const data::Dataset& train, const TrainOptions& train_options, core::Monitor& monitor) override {
    seed_ = train_options.seed;
    num_items_ = train.num_items();
    monitor.info(fmt::format("random: {} items, seed {}", num_items_, seed_));
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    auto state = std::make_unique<RandomState>();
    state->seen = history_item_set(context, num_items_, name());
    if (context.user) {
      state->key = core::derive_seed(core::derive_seed(seed_, kKnownUser), static_cast<uint64_t>(*context.user));
    } else {
      uint64_t k = core::derive_seed(seed_, kNewUser);
      for (const auto& e : context.history) k = core::derive_seed(k, static_cast<uint64_t>(e.item));
      state->key = k;
    }
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    const uint64_t key = static_cast<const RandomState&>(state).key;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i] < 0 || items[i] >= num_items_) throw_item_out_of_range(name(), items[i], num_items_);
      out[i] = draw(key, items[i]);
    }
  }

  int32_t num_items() const override { return num_items_; }

  // New items draw like the others: nothing to learn.
  void add_items(const data::Catalogue& catalogue, ItemIndex first_new_item) override {
    num_items_ = check_new_items(name(), catalogue, num_items_, first_new_item);
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override {
    writer.put_i64(prefix + "items", num_items_);
    writer.put_i64(prefix + "seed", static_cast<int64_t>(seed_));
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader,
                                     const std::string& prefix) {
    DocumentedOptions o(spec);
    o.check_all_used();
    auto model = std::make_unique<RandomModel>(spec);
    const int64_t items = reader.get_i64(prefix + "items");
    if (items < 0 || items > INT32_MAX)
      FEWREC_THROW(kCorrupt, "artifact {}: section `{}items` holds {}, expected an item count in [0, {}]",
                   reader.origin(), prefix, items, INT32_MAX);
    model->num_items_ = static_cast<int32_t>(items);
    model->seed_ = static_cast<uint64_t>(reader.get_i64(prefix + "seed"));
    return model;
  }

  nlohmann::json summary() const override { return {{"items", num_items_}, {"seed", seed_}}; }

 private:
  // Uniform in [0, 1) from the top 24 bits: exact in a float.
  static float draw(uint64_t key, ItemIndex item) {
    return static_cast<float>(core::derive_seed(key, static_cast<uint64_t>(item)) >> 40) * 0x1.0p-24f;
  }

  uint64_t seed_ = 0;
  int32_t num_items_ = 0;
};

std::unique_ptr<Model> create_random(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  o.check_all_used();
  return std::make_unique<RandomModel>(spec);
}

}  // namespace

void register_random(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{"random", {}});
  registry.add(ModelInfo{
      .name = "random",
      .description = "uniform random scores per user, seeded by train.seed (the chance-level baseline)",
      .options = docs.docs(),
      .create = create_random,
      .load = RandomModel::load,
  });
}

}  // namespace fewrec::models

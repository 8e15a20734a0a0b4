// melu: MeLU-style meta-learned recommender (Lee et al., 2019) on LibTorch.
//
// A user is the mean embedding of their attributes (hybrid_features.h:
// categorical values, tags, numeric buckets), an item the mean embedding of
// its features plus, optionally, a learned projection of its pretrained text
// vector and an id embedding (trained items only; MeLU itself has none). The
// decision layers, an MLP over [user, item], give the logit of "the user
// likes the item" (melu_core.h).
//
// Meta-training (MAML over user tasks): a task is a training user; its
// support set is the user's first k positives by time (k drawn from
// 0..max_support, as a new user reveals them) plus as many uniform
// negatives, its query set up to `query` later positives plus as many
// negatives. The decision layers take `local_steps` gradient steps of size
// `local_lr` on the support set (the local update touches the decision
// layers only, as in MeLU), the query loss of the updated layers is the
// meta-loss, and Adam updates every shared weight (embeddings and decision
// layers) on the mean meta-loss of `tasks` tasks. `first_order` drops the
// second-order terms. Tasks are built lazily from the CSR of the training
// data: nothing is materialised beyond one meta-batch.
//
// adapt() runs the same local update on the context's history (negatives
// drawn with a seed from the history, so it is deterministic) on a copy of
// the decision layers: the shared model is never modified.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "builtin.h"
#include "common.h"
#include "feature_bags.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/strings.h"
#include "fewrec/core/threads.h"
#include "fewrec/train/train.h"
#include "hybrid_features.h"
#include "hybrid_text.h"
#include "item_content.h"
#include "melu_core.h"

namespace fewrec::models {

namespace {

constexpr const char* kName = "melu";

struct MeluOptions {
  int64_t dim = 32;
  int64_t hidden1 = 64;
  int64_t hidden2 = 64;
  bool ids = true;
  double local_lr = 0.2;
  int64_t local_steps = 2;
  bool first_order = true;
  int64_t max_support = 20;
  int64_t query = 10;
  int64_t tasks = 32;
  int64_t epochs = 30;
  hybrid::ColumnSelection item_features;
  hybrid::ColumnSelection user_features;
  hybrid::VocabularyOptions vocab;
  hybrid::TextSourceOptions text;
  train::OptimizerOptions optimizer;
  int64_t threads = 0;

  static MeluOptions read(DocumentedOptions& o) {
    MeluOptions p;
    p.dim = o.get_int("dim", p.dim, "embedding size of users and items", 1, 4096);
    p.hidden1 = o.get_int("hidden1", p.hidden1, "width of the first decision layer", 1, 65536);
    p.hidden2 = o.get_int("hidden2", p.hidden2, "width of the second decision layer", 1, 65536);
    p.ids = o.get_bool("ids", p.ids, "item id embeddings for trained items (MeLU itself uses attributes only)");
    p.local_lr = o.get_double("local_lr", p.local_lr, "step size of the local (per-user) update", 0.0, 100.0);
    p.local_steps = o.get_int("local_steps", p.local_steps, "gradient steps of the local update", 0, 100);
    p.first_order = o.get_bool("first_order", p.first_order,
                               "first-order MAML: the inner gradients are constants (cheaper, and better on ML-100K cold users); false = "
                               "second order through torch::autograd::grad(create_graph)");
    p.max_support = o.get_int("max_support", p.max_support,
                              "largest simulated support set: a task reveals the user's first k positives, k drawn "
                              "from 0..max_support",
                              0, 100000);
    p.query = o.get_int("query", p.query, "query positives per task (plus as many negatives)", 1, 100000);
    p.tasks = o.get_int("tasks", p.tasks, "tasks (users) per meta-update", 1, 100000);
    p.epochs = o.get_int("epochs", p.epochs, "passes over the training users", 1, 100000);
    p.item_features = hybrid::ColumnSelection::parse(
        o.get_string("item_features", "all", "item feature columns: all, none, or names joined by +"),
        "model `melu`: option `item_features`");
    p.user_features = hybrid::ColumnSelection::parse(
        o.get_string("user_features", "all", "user feature columns: all, none, or names joined by +"),
        "model `melu`: option `user_features`");
    p.vocab.min_df = o.get_int("min_df", p.vocab.min_df, "feature values seen in fewer rows are dropped", 1, INT32_MAX);
    p.text.encoder = o.get_string("text_encoder", p.text.encoder,
                                  "pretrained item text vectors (none, hashing, glove, bert) projected into the item "
                                  "embedding");
    p.text.encoder_options = hybrid::parse_encoder_options(
        o.get_string("text_options", "", "options of the text encoder as key=value pairs joined by `;`"),
        "model `melu`: option `text_options`");
    p.text.item_vectors = o.get_string("item_vectors", p.text.item_vectors,
                                       "instead of text_encoder: a vector file written by `fewrec encode`");
    p.optimizer.name = o.get_choice("optimizer", "adam", {"adam", "adamw", "adagrad", "sgd"}, "global (meta) optimizer");
    p.optimizer.lr = o.get_double("learning_rate", 5e-3, "global (meta) learning rate", 0.0);
    p.threads = o.get_int("threads", p.threads, "LibTorch intra-op threads (0 = train.threads, else all cores)", 0,
                          1024);
    hybrid::check_text_options(p.text, kName);
    return p;
  }
};

ModelSpec canonical_spec(ModelSpec spec, const MeluOptions& o) {
  if (spec.options.count("item_features")) spec.options["item_features"] = o.item_features.to_string();
  if (spec.options.count("user_features")) spec.options["user_features"] = o.user_features.to_string();
  if (spec.options.count("text_options"))
    spec.options["text_options"] =
        hybrid::encoder_options_to_string(o.text.encoder_options, "model `melu`: option `text_options`");
  return spec;
}

struct NetImpl : torch::nn::Module {
  NetImpl(int64_t num_items, int64_t item_feats, int64_t user_feats, int64_t text_dim, const MeluOptions& o)
      : dim(o.dim) {
    if (o.ids) id_emb = register_module("id_emb", torch::nn::Embedding(num_items, o.dim));
    if (item_feats > 0)
      item_feat = register_module(
          "item_feat", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(item_feats, o.dim).mode(torch::kMean)));
    if (user_feats > 0)
      user_feat = register_module(
          "user_feat", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(user_feats, o.dim).mode(torch::kMean)));
    if (text_dim > 0)
      text_proj = register_module("text_proj", torch::nn::Linear(torch::nn::LinearOptions(text_dim, o.dim).bias(false)));
    torch::nn::Linear l1(2 * o.dim, o.hidden1), l2(o.hidden1, o.hidden2), l3(o.hidden2, 1);
    decision = {register_parameter("w1", l1->weight.detach().clone()), register_parameter("b1", l1->bias.detach().clone()),
                register_parameter("w2", l2->weight.detach().clone()), register_parameter("b2", l2->bias.detach().clone()),
                register_parameter("w3", l3->weight.detach().clone()), register_parameter("b3", l3->bias.detach().clone())};
    torch::NoGradGuard ng;
    for (auto& p : named_parameters(true))
      if (p.key().find("emb") != std::string::npos || p.key().find("feat") != std::string::npos)
        p.value().normal_(0.0, 0.1);
  }

  torch::Tensor items(const torch::Tensor& ids, const torch::Tensor& id_keep, const torch::Tensor& flat,
                      const torch::Tensor& starts, const torch::Tensor& text) {
    auto x = torch::zeros({ids.size(0), dim});
    if (id_emb) x = x + id_emb(ids) * id_keep.unsqueeze(1);
    if (item_feat && flat.numel() > 0) x = x + item_feat(flat, starts);
    if (text_proj && text.defined()) x = x + text_proj(text);
    return x;
  }
  torch::Tensor items(const ItemContent::Inputs& in) {
    // Items added after training have no id row: clamp (their id_keep is 0).
    auto ids = id_emb ? in.ids.clamp_max(id_emb->weight.size(0) - 1) : in.ids;
    return items(ids, in.id_keep, in.flat, in.starts, in.text);
  }
  torch::Tensor users(const torch::Tensor& flat, const torch::Tensor& starts, int64_t n) {
    if (user_feat && flat.numel() > 0) return user_feat(flat, starts);
    return torch::zeros({n, dim});
  }

  int64_t dim;
  torch::nn::Embedding id_emb{nullptr};
  torch::nn::EmbeddingBag item_feat{nullptr}, user_feat{nullptr};
  torch::nn::Linear text_proj{nullptr};
  melu::Weights decision;
};
TORCH_MODULE(Net);

class MeluState final : public UserState {
 public:
  torch::Tensor user;      // [1, dim]
  melu::Weights weights;   // adapted decision layers (detached)
};

class MeluModel final : public Model {
 public:
  MeluModel(ModelSpec spec, MeluOptions options) : Model(canonical_spec(std::move(spec), options)), o_(std::move(options)) {}

  void fit(const data::Dataset& train, const TrainOptions& topts, core::Monitor& monitor) override {
    const int threads = o_.threads > 0 ? static_cast<int>(o_.threads) : core::resolve_threads(topts.threads);
    train::set_threads(threads);
    torch::manual_seed(topts.seed);
    const auto& cat = train.catalogue();
    num_items_ = train.num_items();
    const int32_t n_users = train.num_users();
    const auto offsets = train.user_offsets();
    const auto items = train.item_column();

    content_ = ItemContent(o_.item_features, o_.vocab, o_.text, name());
    trained_ = content_.build(train, monitor);
    std::vector<int32_t> all_users(static_cast<size_t>(n_users));
    std::iota(all_users.begin(), all_users.end(), 0);
    user_space_ = hybrid::FeatureSpace::build(cat.user_features, all_users, o_.user_features, o_.vocab, "user", name());
    const Bags ubags = user_bags(user_space_, cat);
    FEWREC_CHECK(o_.ids || !content_.space().empty() || content_.text_dim() > 0, kInvalidArgument,
                 "model `{}`: items have no representation: ids=false, no item feature and no text vectors", name());
    id_rows_ = num_items_;
    net_ = Net(id_rows_, content_.space().size(), user_space_.size(), content_.text_dim(), o_);
    auto optimizer = train::make_optimizer(net_->parameters(), o_.optimizer);

    std::vector<data::UserIndex> users;
    for (data::UserIndex u = 0; u < n_users; ++u)
      if (offsets[u + 1] - offsets[u] >= 2) users.push_back(u);
    FEWREC_CHECK(!users.empty(), kInvalidArgument, "model `{}`: no user has two or more training interactions",
                 name());
    std::vector<std::vector<ItemIndex>> sets(static_cast<size_t>(n_users));
    for (auto u : users) sets[static_cast<size_t>(u)] = train.item_set(u);
    monitor.info(fmt::format("{}: {} tasks (users), {} items ({} trained), {} item / {} user features, text dim {}, "
                             "{} order, {} epochs, {} threads",
                             name(), users.size(), num_items_, trained_.size(), content_.space().size(), user_space_.size(),
                             content_.text_dim(), o_.first_order ? "first" : "second", o_.epochs, threads));

    core::Rng rng(core::derive_seed(topts.seed, 29));
    train::EpochReporter reporter(monitor, name(), o_.epochs);
    auto negative = [&](data::UserIndex u) {
      const auto& set = sets[static_cast<size_t>(u)];
      for (int tries = 0; tries < 64; ++tries) {
        const ItemIndex i = trained_[core::uniform_index(rng, trained_.size())];
        if (!std::binary_search(set.begin(), set.end(), i)) return i;
      }
      return trained_[core::uniform_index(rng, trained_.size())];
    };
    epoch_seconds_.clear();
    for (int64_t epoch = 0; epoch < o_.epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<data::UserIndex> order = users;
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[core::uniform_index(rng, i)]);
      double loss_sum = 0.0;
      int64_t steps = 0;
      for (size_t start = 0; start < order.size(); start += static_cast<size_t>(o_.tasks)) {
        const size_t end = std::min(order.size(), start + static_cast<size_t>(o_.tasks));
        // The meta-batch's rows: per task, support then query, items and labels.
        std::vector<int64_t> row_items, row_task;
        std::vector<float> labels;
        std::vector<std::pair<int64_t, int64_t>> support, query;  // row ranges per task
        std::vector<int64_t> task_users;
        for (size_t t = start; t < end; ++t) {
          const auto u = order[t];
          const int64_t lo = offsets[u], n = offsets[u + 1] - lo;
          const int64_t k = static_cast<int64_t>(
              core::uniform_index(rng, static_cast<uint64_t>(std::min(o_.max_support, n - 1) + 1)));
          const int64_t task = static_cast<int64_t>(task_users.size());
          task_users.push_back(u);
          auto add = [&](ItemIndex i, float y) {
            row_items.push_back(i);
            row_task.push_back(task);
            labels.push_back(y);
          };
          const int64_t s0 = static_cast<int64_t>(row_items.size());
          for (int64_t j = 0; j < k; ++j) add(items[static_cast<size_t>(lo + j)], 1.0f);
          for (int64_t j = 0; j < k; ++j) add(negative(u), 0.0f);
          support.emplace_back(s0, static_cast<int64_t>(row_items.size()));
          const int64_t q0 = static_cast<int64_t>(row_items.size());
          const int64_t later = n - k;
          const int64_t nq = std::min(o_.query, later);
          for (int64_t j = 0; j < nq; ++j)
            add(items[static_cast<size_t>(lo + k + static_cast<int64_t>(core::uniform_index(rng, static_cast<uint64_t>(later))))], 1.0f);
          for (int64_t j = 0; j < nq; ++j) add(negative(u), 0.0f);
          query.emplace_back(q0, static_cast<int64_t>(row_items.size()));
        }
        const int64_t R = static_cast<int64_t>(row_items.size());
        auto xi = net_->items(content_.inputs(row_items));
        std::vector<int64_t> uflat, ustarts;
        ubags.gather(task_users, uflat, ustarts);
        auto xu = net_->users(long_tensor(uflat), long_tensor(ustarts), static_cast<int64_t>(task_users.size()));
        auto x = torch::cat({xu.index_select(0, long_tensor(row_task)), xi}, 1);
        auto y = torch::from_blob(labels.data(), {R}, torch::kFloat).clone();
        torch::Tensor meta = torch::zeros({});
        for (size_t t = 0; t < task_users.size(); ++t) {
          const auto [s0, s1] = support[t];
          const auto [q0, q1] = query[t];
          meta = meta + melu::meta_loss(net_->decision, x.slice(0, s0, s1), y.slice(0, s0, s1), x.slice(0, q0, q1),
                                        y.slice(0, q0, q1), o_.local_lr, static_cast<int>(o_.local_steps),
                                        !o_.first_order);
        }
        meta = meta / static_cast<double>(task_users.size());
        optimizer->zero_grad();
        meta.backward();
        optimizer->step();
        loss_sum += meta.item<double>();
        ++steps;
      }
      epoch_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      reporter.epoch_done(epoch + 1, loss_sum / static_cast<double>(std::max<int64_t>(1, steps)),
                          static_cast<int64_t>(users.size()));
    }
    refresh_items(0);
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    FEWREC_CHECK(net_, kInvalidArgument, "model `{}` is not trained", name());
    auto state = std::make_unique<MeluState>();
    state->seen = history_item_set(context, num_items(), name());
    std::vector<int32_t> uf;
    user_space_.encode(context.features, uf);
    std::vector<int64_t> uflat(uf.begin(), uf.end()), ustarts{0};
    {
      torch::NoGradGuard ng;
      state->user = net_->users(long_tensor(uflat), long_tensor(ustarts), 1).detach();
    }
    // Support: the history's items (positives) and as many negatives, drawn
    // with a seed from the history.
    std::vector<int64_t> rows;
    std::vector<float> labels;
    for (const auto& e : context.history) {
      rows.push_back(e.item);
      labels.push_back(1.0f);
    }
    const size_t positives = rows.size();
    if (positives > 0 && o_.local_steps > 0 && o_.local_lr > 0) {
      const auto& seen = state->seen;
      core::Rng rng(core::fnv1a64(seen.data(), seen.size() * sizeof(ItemIndex)));
      for (size_t k = 0; k < positives; ++k) {
        ItemIndex i = trained_[core::uniform_index(rng, trained_.size())];
        for (int tries = 0; tries < 64 && std::binary_search(seen.begin(), seen.end(), i); ++tries)
          i = trained_[core::uniform_index(rng, trained_.size())];
        rows.push_back(i);
        labels.push_back(0.0f);
      }
      auto xi = item_matrix_.index_select(0, long_tensor(rows));
      auto x = torch::cat({state->user.expand({xi.size(0), -1}), xi}, 1);
      auto y = torch::from_blob(labels.data(), {static_cast<int64_t>(labels.size())}, torch::kFloat).clone();
      melu::Weights w;
      for (const auto& p : net_->decision) w.push_back(p.detach().clone().requires_grad_(true));
      auto adapted = melu::local_update(w, x, y, o_.local_lr, static_cast<int>(o_.local_steps), /*second_order=*/false);
      for (auto& t : adapted) state->weights.push_back(t.detach());
    } else {
      for (const auto& p : net_->decision) state->weights.push_back(p.detach());
    }
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    std::vector<int64_t> rows;
    for (ItemIndex i : items) {
      if (i < 0 || i >= num_items_) throw_item_out_of_range(name(), i, num_items_);
      rows.push_back(i);
    }
    const auto& s = dynamic_cast<const MeluState&>(state);
    torch::NoGradGuard ng;
    auto xi = item_matrix_.index_select(0, long_tensor(rows));
    auto logits = melu::decide(s.weights, torch::cat({s.user.expand({xi.size(0), -1}), xi}, 1)).contiguous();
    std::copy(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel(), out.begin());
  }

  void score_all(const UserState& state, std::span<float> out) const override {
    FEWREC_CHECK(out.size() == static_cast<size_t>(num_items_), kInvalidArgument,
                 "model `{}`: score_all needs {} scores, got {}", name(), num_items_, out.size());
    const auto& s = dynamic_cast<const MeluState&>(state);
    torch::NoGradGuard ng;
    auto logits =
        melu::decide(s.weights, torch::cat({s.user.expand({num_items_, -1}), item_matrix_}, 1)).contiguous();
    std::copy(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel(), out.begin());
  }

  int32_t num_items() const override { return num_items_; }

  void add_items(const data::Catalogue& catalogue, ItemIndex first_new_item) override {
    FEWREC_CHECK(net_, kInvalidArgument, "model `{}` is not trained", name());
    const int32_t total = check_new_items(name(), catalogue, num_items_, first_new_item);
    if (total == num_items_) return;
    content_.add_items(catalogue);
    const int32_t first = num_items_;
    num_items_ = total;
    refresh_items(first);
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override {
    FEWREC_CHECK(net_, kInvalidArgument, "model `{}` is not trained", name());
    writer.put_i64(prefix + "num_items", num_items_);
    writer.put_i64(prefix + "id_rows", id_rows_);
    content_.save(writer, prefix);
    user_space_.save(writer, prefix + "user_space/");
    train::save_params(writer, prefix, *net_);
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader, const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = MeluOptions::read(o);
    o.check_all_used();
    auto m = std::make_unique<MeluModel>(spec, options);
    auto bad = [&](const std::string& what) {
      FEWREC_THROW(kCorrupt, "artifact {}: model `melu`: {}", reader.origin(), what);
    };
    auto one = [&](const std::string& key, int64_t lo, int64_t hi) {
      const auto v = reader.get_array<int64_t>(prefix + key);
      if (v.size() != 1 || v[0] < lo || v[0] > hi) bad("`" + key + "` is out of range");
      return v[0];
    };
    m->num_items_ = static_cast<int32_t>(one("num_items", 1, INT32_MAX));
    m->id_rows_ = static_cast<int32_t>(one("id_rows", 1, m->num_items_));
    m->content_ = ItemContent(options.item_features, options.vocab, options.text, kName);
    m->content_.load(reader, prefix, m->num_items_);
    for (ItemIndex i = 0; i < m->num_items_; ++i)
      if (m->content_.known(i)) m->trained_.push_back(i);
    m->user_space_ = hybrid::FeatureSpace::load(reader, prefix + "user_space/");
    m->net_ = Net(m->id_rows_, m->content_.space().size(), m->user_space_.size(), m->content_.text_dim(), options);
    train::load_params(reader, prefix, *m->net_, "model `melu`");
    m->refresh_items(0);
    return m;
  }

  nlohmann::json summary() const override {
    nlohmann::json j{{"items", num_items_}, {"dim", o_.dim}, {"order", o_.first_order ? "first" : "second"}};
    if (!epoch_seconds_.empty()) {
      auto s = epoch_seconds_;
      std::sort(s.begin(), s.end());
      j["median_epoch_seconds"] = s[s.size() / 2];
    }
    return j;
  }

 private:
  // item_matrix_ rows [first, num_items) from the items' ids and content.
  void refresh_items(int32_t first) {
    torch::NoGradGuard ng;
    std::vector<int64_t> ids(static_cast<size_t>(num_items_ - first));
    std::iota(ids.begin(), ids.end(), int64_t{first});
    auto x = net_->items(content_.inputs(ids)).detach();
    item_matrix_ = first == 0 ? x : torch::cat({item_matrix_.narrow(0, 0, first), x}, 0);
  }

  MeluOptions o_;
  int32_t num_items_ = 0;
  int32_t id_rows_ = 0;  // id embeddings: the items at fit
  ItemContent content_;
  std::vector<ItemIndex> trained_;
  hybrid::FeatureSpace user_space_;
  mutable Net net_{nullptr};
  torch::Tensor item_matrix_;  // [num_items, dim], inference
  std::vector<double> epoch_seconds_;
};

std::unique_ptr<Model> create_melu(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = MeluOptions::read(o);
  o.check_all_used();
  return std::make_unique<MeluModel>(spec, options);
}

}  // namespace

void register_melu(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{kName, {}});
  MeluOptions::read(docs);
  registry.add(ModelInfo{
      .name = kName,
      .description = "MeLU: MLP over user attributes and item content, meta-trained with MAML (first or second "
                     "order) on cold-start tasks; adapt() runs the local update on the context (LibTorch)",
      .options = docs.docs(),
      .create = create_melu,
      .load = MeluModel::load,
  });
}

}  // namespace fewrec::models

// multitask: several prediction tasks over the same (user, item) features,
// shared-bottom or MMoE (Ma et al., 2018), on LibTorch.
//
// Input of a (user, item) pair. The user vector u is the sum of
//   - the user's id embedding (known users; dropped with probability
//     `user_id_dropout` in training, so the model learns to do without it),
//   - the mean of a history embedding of the last `history` items of the
//     user's history (training pairs: the user's other items) and, with
//     `history_values`, their mean weighted by the standardised values
//     (what the user rated high or low, not only what they saw),
//   - the mean embedding of the user's features (hybrid_features.h);
// the item vector v is the sum of the item's id embedding (trained items only,
// dropped with probability `item_id_dropout`), the mean embedding of its
// features (genres, tags, title words, ...) and a learned projection of its
// pretrained text vector (item_content.h). The network reads [u, v, u * v].
// arch=shared_bottom: a shared MLP, then one tower (MLP, one output) per
// task. arch=mmoe: `experts` expert MLPs and, per task, a softmax gate over
// the experts on the same input; the task's tower reads the gated mixture.
//
// Tasks (`tasks`, joined by +; loss = sum of weight * task loss):
//   like      binary: an observed pair with value >= like_threshold is 1, an
//             observed pair below it 0, and `negatives` items the user never
//             touched, drawn uniformly from the trained items per observed
//             pair, are 0 (binary cross-entropy);
//   rating    regression of the value on the observed pairs (MSE on the
//             value standardised by the training mean and deviation);
//   category  binary "category interest": 1 when one of the item's categories
//             (values of `category_column`, e.g. genres) is carried by at
//             least `category_share` of the user's other training items, on
//             the observed pairs and the sampled negatives.
// A seeded `holdout` fraction of the training pairs is left out of training;
// after every epoch the model reports, on those pairs (plus one sampled
// negative each for the binary tasks): like AUC and log-loss, rating RMSE (in
// the data's units), category AUC. They are logged and in summary().
//
// score() ranks by the like head's logit (the first task's output when
// `like` is not a task). adapt(): a known user (context.user) keeps their id
// embedding; a new user's id part is zero and their vector comes from the
// history in the context and their features: what the id dropout trains
// for. adapt() only reads the model. add_items(): new items from content.
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/optimizer.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
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

namespace fewrec::models {

namespace {

constexpr const char* kName = "multitask";

enum class Task { kLike, kRating, kCategory };
const std::vector<std::string> kTaskNames = {"like", "rating", "category"};
const std::string& task_name(Task t) { return kTaskNames[static_cast<size_t>(t)]; }

std::vector<Task> parse_tasks(const std::string& text) {
  if (core::trim(text).empty())
    FEWREC_THROW(kInvalidArgument, "model `{}`: option `tasks` is empty; known tasks: {}", kName, core::join(kTaskNames, ", "));
  std::vector<Task> tasks;
  for (const auto& part : core::split(text, '+')) {
    const std::string name(core::trim(part));
    auto it = std::find(kTaskNames.begin(), kTaskNames.end(), name);
    if (it == kTaskNames.end())
      FEWREC_THROW(kInvalidArgument, "model `{}`: option `tasks`: unknown task `{}`; known: {}", kName,
                   core::excerpt(name), core::join(kTaskNames, ", "));
    const Task t = static_cast<Task>(it - kTaskNames.begin());
    if (std::find(tasks.begin(), tasks.end(), t) != tasks.end())
      FEWREC_THROW(kInvalidArgument, "model `{}`: option `tasks` names `{}` twice", kName, name);
    tasks.push_back(t);
  }
  return tasks;
}

std::vector<double> parse_weights(const std::string& text, const std::vector<Task>& tasks, const std::string& tasks_text) {
  if (text.empty()) return std::vector<double>(tasks.size(), 1.0);
  std::vector<double> w;
  for (const auto& part : core::split(text, '+')) {
    const std::string s(core::trim(part));
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < 0)
      FEWREC_THROW(kInvalidArgument, "model `{}`: option `weights`: `{}` is not a loss weight >= 0", kName,
                   core::excerpt(s));
    w.push_back(v);
  }
  if (w.size() != tasks.size())
    FEWREC_THROW(kInvalidArgument, "model `{}`: option `weights` has {} values but `tasks` ({}) has {} tasks", kName,
                 w.size(), tasks_text, tasks.size());
  if (std::all_of(w.begin(), w.end(), [](double x) { return x == 0.0; }))
    FEWREC_THROW(kInvalidArgument, "model `{}`: option `weights`: every task weight is 0", kName);
  return w;
}

struct MultiTaskOptions {
  std::string arch = "shared_bottom";
  std::string tasks_text = "like+rating+category";
  std::vector<Task> tasks;
  std::vector<double> weights;
  double like_threshold = 4.0;
  std::string category_column = "auto";
  double category_share = 0.25;
  int64_t dim = 32;
  int64_t hidden = 64;
  int64_t tower = 32;
  int64_t experts = 4;
  int64_t history = 50;
  bool history_values = false;
  double user_id_dropout = 0.3;
  double item_id_dropout = 0.1;
  int64_t negatives = 1;
  double holdout = 0.1;
  int64_t epochs = 10;
  int64_t batch_size = 256;
  hybrid::ColumnSelection item_features;
  hybrid::ColumnSelection user_features;
  hybrid::VocabularyOptions vocab;
  hybrid::TextSourceOptions text;
  train::OptimizerOptions optimizer;
  int64_t threads = 0;

  static MultiTaskOptions read(DocumentedOptions& o) {
    MultiTaskOptions p;
    p.arch = o.get_choice("arch", p.arch, {"shared_bottom", "mmoe"},
                          "shared_bottom: one shared MLP, then a tower per task; mmoe: `experts` expert MLPs mixed "
                          "by a softmax gate per task");
    p.tasks_text = o.get_string("tasks", p.tasks_text,
                                "tasks joined by +: like (value >= like_threshold vs lower values and sampled "
                                "unobserved items), rating (MSE on observed values), category (an item category "
                                "carried by >= category_share of the user's other items)");
    p.tasks = parse_tasks(p.tasks_text);
    p.weights = parse_weights(o.get_string("weights", "", "loss weight per task joined by +, in the order of `tasks` "
                                                          "(empty = 1 each)"),
                              p.tasks, p.tasks_text);
    p.like_threshold = o.get_double("like_threshold", p.like_threshold,
                                    "like: an observed pair is a like when its value is >= this");
    p.category_column = o.get_string("category_column", p.category_column,
                                     "category: the item tag or categorical column holding the categories (auto = "
                                     "the first tag column, else the first categorical one)");
    p.category_share = o.get_double("category_share", p.category_share,
                                    "category: share of the user's other items that must carry one of the item's "
                                    "categories for a positive label",
                                    1e-6, 1.0);
    p.dim = o.get_int("dim", p.dim, "size of the user and item vectors", 1, 4096);
    p.hidden = o.get_int("hidden", p.hidden, "width of the shared bottom MLP / of each expert", 1, 65536);
    p.tower = o.get_int("tower", p.tower, "hidden width of each task's tower", 1, 65536);
    p.experts = o.get_int("experts", p.experts, "arch=mmoe: number of experts", 1, 256);
    p.history = o.get_int("history", p.history, "the user vector pools the last `history` items of the history", 1,
                          100000);
    p.history_values = o.get_bool(
        "history_values", p.history_values,
        "the user vector also pools the history weighted by the standardised values (ratings), so a context's ratings "
        "say what the user liked and disliked; contexts must then carry values on the training scale (an item sent "
        "with value 1, as `fewrec recommend --items` does, reads as a 1-star rating)");
    p.user_id_dropout = o.get_double("user_id_dropout", p.user_id_dropout,
                                     "probability of dropping the user id embedding in a training pair (teaches the "
                                     "model to stand on history and features, all a new user has)",
                                     0.0, 1.0);
    p.item_id_dropout = o.get_double("item_id_dropout", p.item_id_dropout,
                                     "probability of dropping the item id embedding in a training step (cold items "
                                     "have content only)",
                                     0.0, 1.0);
    p.negatives = o.get_int("negatives", p.negatives,
                            "like and category: unobserved items sampled per observed pair (label 0 for like)", 0, 1000);
    p.holdout = o.get_double("holdout", p.holdout,
                             "share of the training pairs held out (seeded by train.seed) for the per-task metrics; 0 = "
                             "none",
                             0.0, 0.9);
    p.epochs = o.get_int("epochs", p.epochs, "passes over the training pairs", 1, 100000);
    p.batch_size = o.get_int("batch_size", p.batch_size, "observed pairs per step (plus their negatives)", 1, 1 << 20);
    p.item_features = hybrid::ColumnSelection::parse(
        o.get_string("item_features", "all", "item feature columns: all, none, or names joined by +"),
        "model `multitask`: option `item_features`");
    p.user_features = hybrid::ColumnSelection::parse(
        o.get_string("user_features", "all", "user feature columns: all, none, or names joined by +"),
        "model `multitask`: option `user_features`");
    p.vocab.min_df = o.get_int("min_df", p.vocab.min_df, "feature values seen in fewer rows are dropped", 1, INT32_MAX);
    p.text.encoder = o.get_string("text_encoder", p.text.encoder,
                                  "pretrained item text vectors (none, hashing, glove, bert) projected into the item "
                                  "vector");
    p.text.encoder_options = hybrid::parse_encoder_options(
        o.get_string("text_options", "", "options of the text encoder as key=value pairs joined by `;`"),
        "model `multitask`: option `text_options`");
    p.text.item_vectors = o.get_string("item_vectors", p.text.item_vectors,
                                       "instead of text_encoder: a vector file written by `fewrec encode`");
    p.optimizer.name = o.get_choice("optimizer", "adam", {"adam", "adamw", "adagrad", "sgd"}, "optimizer");
    p.optimizer.lr = o.get_double("learning_rate", 2e-3, "base learning rate", 0.0);
    p.optimizer.weight_decay = o.get_double("weight_decay", 0.0, "weight decay on every parameter", 0.0);
    p.threads = o.get_int("threads", p.threads, "LibTorch intra-op threads (0 = train.threads, else all cores)", 0,
                          1024);
    hybrid::check_text_options(p.text, kName);
    return p;
  }

  int index_of(Task t) const {
    auto it = std::find(tasks.begin(), tasks.end(), t);
    return it == tasks.end() ? -1 : static_cast<int>(it - tasks.begin());
  }
};

ModelSpec canonical_spec(ModelSpec spec, const MultiTaskOptions& o) {
  if (spec.options.count("item_features")) spec.options["item_features"] = o.item_features.to_string();
  if (spec.options.count("user_features")) spec.options["user_features"] = o.user_features.to_string();
  if (spec.options.count("text_options"))
    spec.options["text_options"] =
        hybrid::encoder_options_to_string(o.text.encoder_options, "model `multitask`: option `text_options`");
  return spec;
}

torch::nn::Sequential mlp(int64_t in, int64_t hidden) {
  return torch::nn::Sequential(torch::nn::Linear(in, hidden), torch::nn::ReLU(), torch::nn::Linear(hidden, hidden),
                               torch::nn::ReLU());
}

struct NetImpl : torch::nn::Module {
  NetImpl(int64_t users, int64_t items, int64_t item_feats, int64_t user_feats, int64_t text_dim,
          const MultiTaskOptions& o)
      : dim(o.dim), mmoe(o.arch == "mmoe") {
    user_id = register_module("user_id", torch::nn::Embedding(users, o.dim));
    hist = register_module("hist",
                           torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(items, o.dim).mode(torch::kMean)));
    if (o.history_values)
      hist_value = register_module(
          "hist_value", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(items, o.dim).mode(torch::kSum)));
    item_id = register_module("item_id", torch::nn::Embedding(items, o.dim));
    if (item_feats > 0)
      item_feat = register_module(
          "item_feat", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(item_feats, o.dim).mode(torch::kMean)));
    if (user_feats > 0)
      user_feat = register_module(
          "user_feat", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(user_feats, o.dim).mode(torch::kMean)));
    if (text_dim > 0)
      text_proj = register_module("text_proj", torch::nn::Linear(torch::nn::LinearOptions(text_dim, o.dim).bias(false)));
    const int64_t in = 3 * o.dim;
    if (mmoe) {
      for (int64_t e = 0; e < o.experts; ++e) experts.push_back(register_module("expert" + std::to_string(e), mlp(in, o.hidden)));
      for (size_t t = 0; t < o.tasks.size(); ++t)
        gates.push_back(register_module("gate" + std::to_string(t), torch::nn::Linear(in, o.experts)));
    } else {
      bottom = register_module("bottom", mlp(in, o.hidden));
    }
    for (size_t t = 0; t < o.tasks.size(); ++t)
      towers.push_back(register_module(
          "tower" + std::to_string(t),
          torch::nn::Sequential(torch::nn::Linear(o.hidden, o.tower), torch::nn::ReLU(), torch::nn::Linear(o.tower, 1))));
    torch::NoGradGuard ng;
    for (auto& p : named_parameters(true))
      if (p.key().find("_id") != std::string::npos || p.key().find("feat") != std::string::npos ||
          p.key().rfind("hist", 0) == 0)
        p.value().normal_(0.0, 0.05);
  }

  // User vectors [R, dim]: id part times `keep` [R], history bags (with
  // per-item weights: standardised value / bag size), feature bags.
  torch::Tensor users(const torch::Tensor& ids, const torch::Tensor& keep, const torch::Tensor& hflat,
                      const torch::Tensor& hstarts, const torch::Tensor& hweights, const torch::Tensor& uflat,
                      const torch::Tensor& ustarts) {
    auto x = user_id(ids) * keep.unsqueeze(1);
    if (hflat.numel() > 0) x = x + hist(hflat, hstarts);
    if (hist_value && hflat.numel() > 0) x = x + hist_value(hflat, hstarts, hweights);
    if (user_feat && uflat.numel() > 0) x = x + user_feat(uflat, ustarts);
    return x;
  }
  torch::Tensor items(const ItemContent::Inputs& in) {
    // Items added after training have no id row: clamp (their id_keep is 0).
    auto ids = in.ids.clamp_max(item_id->weight.size(0) - 1);
    auto x = item_id(ids) * in.id_keep.unsqueeze(1);
    if (item_feat && in.flat.numel() > 0) x = x + item_feat(in.flat, in.starts);
    if (text_proj && in.text.defined()) x = x + text_proj(in.text);
    return x;
  }
  // Outputs [R, T] (one column per task), or [R, 1] of task `only` when >= 0.
  torch::Tensor heads(const torch::Tensor& u, const torch::Tensor& v, int only = -1) {
    auto x = torch::cat({u, v, u * v}, 1);
    std::vector<torch::Tensor> out;
    torch::Tensor shared, stacked;
    if (mmoe) {
      std::vector<torch::Tensor> ex;
      for (auto& e : experts) ex.push_back(e->forward(x));
      stacked = torch::stack(ex, 1);  // [R, E, hidden]
    } else {
      shared = bottom->forward(x);
    }
    for (size_t t = 0; t < towers.size(); ++t) {
      if (only >= 0 && static_cast<int>(t) != only) continue;
      torch::Tensor h = shared;
      if (mmoe) h = (torch::softmax(gates[t]->forward(x), 1).unsqueeze(2) * stacked).sum(1);
      out.push_back(towers[t]->forward(h));
    }
    return torch::cat(out, 1);
  }

  int64_t dim;
  bool mmoe;
  torch::nn::Embedding user_id{nullptr}, item_id{nullptr};
  torch::nn::EmbeddingBag hist{nullptr}, hist_value{nullptr}, item_feat{nullptr}, user_feat{nullptr};
  torch::nn::Linear text_proj{nullptr};
  torch::nn::Sequential bottom{nullptr};
  std::vector<torch::nn::Sequential> experts, towers;
  std::vector<torch::nn::Linear> gates;
};
TORCH_MODULE(Net);

class MultiTaskState final : public UserState {
 public:
  torch::Tensor user;  // [1, dim]
};

torch::Tensor float_tensor(const std::vector<float>& v) {
  return torch::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kFloat).clone();
}

// AUC of `scores` against binary `labels` (ties count one half); NaN when a
// class is empty.
double binary_auc(const std::vector<float>& scores, const std::vector<float>& labels) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double pos = 0, neg = 0, rank_sum = 0;
  for (size_t s = 0; s < order.size();) {
    size_t e = s;
    while (e < order.size() && scores[order[e]] == scores[order[s]]) ++e;
    const double mid = 0.5 * static_cast<double>(s + e - 1) + 1.0;  // mean 1-based rank of the tie group
    for (size_t k = s; k < e; ++k)
      if (labels[order[k]] > 0.5f) {
        rank_sum += mid;
        ++pos;
      }
    s = e;
  }
  neg = static_cast<double>(scores.size()) - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

class MultiTaskModel final : public Model {
 public:
  MultiTaskModel(ModelSpec spec, MultiTaskOptions options)
      : Model(canonical_spec(std::move(spec), options)), o_(std::move(options)) {
    score_task_ = std::max(0, o_.index_of(Task::kLike));
  }

  void fit(const data::Dataset& train, const TrainOptions& topts, core::Monitor& monitor) override {
    const int threads = o_.threads > 0 ? static_cast<int>(o_.threads) : core::resolve_threads(topts.threads);
    train::set_threads(threads);
    torch::manual_seed(topts.seed);
    const auto& cat = train.catalogue();
    core::Rng rng(core::derive_seed(topts.seed, 37));

    // Held-out pairs (seeded), the rest trains.
    std::vector<uint8_t> held(static_cast<size_t>(train.num_interactions()), 0);
    int64_t n_held = 0;
    if (o_.holdout > 0)
      for (auto& h : held) n_held += (h = core::uniform01(rng) < o_.holdout ? 1 : 0);
    int64_t row = -1;
    const data::Dataset fit_ds = train.filter([&](const data::Interaction&) { return !held[static_cast<size_t>(++row)]; });
    std::vector<data::Interaction> held_rows;
    for (int64_t r = 0; r < train.num_interactions(); ++r)
      if (held[static_cast<size_t>(r)]) held_rows.push_back(train.row(r));
    FEWREC_CHECK(fit_ds.num_interactions() > 0, kInvalidArgument, "model `{}`: no training pair left after the holdout",
                 name());

    num_items_ = train.num_items();
    user_rows_ = train.num_users();
    const auto offsets = fit_ds.user_offsets();
    const auto items = fit_ds.item_column();
    const auto values = fit_ds.value_column();
    check_task_data(values, monitor);
    content_ = ItemContent(o_.item_features, o_.vocab, o_.text, name());
    trained_ = content_.build(fit_ds, monitor);
    std::vector<int32_t> all_users(static_cast<size_t>(user_rows_));
    std::iota(all_users.begin(), all_users.end(), 0);
    user_space_ = hybrid::FeatureSpace::build(cat.user_features, all_users, o_.user_features, o_.vocab, "user", name());
    const Bags ubags = user_bags(user_space_, cat);
    if (o_.index_of(Task::kCategory) >= 0) build_categories(fit_ds);
    // Every item a user touched (held-out ones too): never a negative.
    std::vector<std::vector<ItemIndex>> sets(static_cast<size_t>(user_rows_));
    for (UserIndex u = 0; u < user_rows_; ++u) sets[static_cast<size_t>(u)] = train.item_set(u);
    auto negative = [&](UserIndex u, core::Rng& g) {
      const auto& set = sets[static_cast<size_t>(u)];
      ItemIndex i = trained_[core::uniform_index(g, trained_.size())];
      for (int tries = 0; tries < 64 && std::binary_search(set.begin(), set.end(), i); ++tries)
        i = trained_[core::uniform_index(g, trained_.size())];
      return i;
    };

    id_rows_ = num_items_;
    net_ = Net(user_rows_, id_rows_, content_.space().size(), user_space_.size(), content_.text_dim(), o_);
    auto optimizer = train::make_optimizer(net_->parameters(), o_.optimizer);
    const int64_t T = static_cast<int64_t>(o_.tasks.size());
    const int like = o_.index_of(Task::kLike), rating = o_.index_of(Task::kRating),
              category = o_.index_of(Task::kCategory);

    // Examples: observed rows of fit_ds (row >= 0) and negatives (row -1).
    struct Example {
      UserIndex user;
      ItemIndex item;
      int64_t row;  // fit_ds row; kHeldOut for a held-out pair, kNegative for a sampled negative
      float value;
    };
    constexpr int64_t kHeldOut = -1, kNegative = -2;
    // The held-out examples: each held-out pair plus one negative (fixed).
    std::vector<Example> held_ex;
    {
      core::Rng hr(core::derive_seed(topts.seed, 38));
      for (const auto& r : held_rows) {
        held_ex.push_back({r.user, r.item, kHeldOut, r.value});
        held_ex.push_back({r.user, negative(r.user, hr), kNegative, 0.0f});
      }
    }
    std::vector<int64_t> hflat, hstarts, uflat, ustarts, uids, iids;
    std::vector<float> ukeep, ikeep, hweights;
    // Batch inputs of `ex`; training: ids dropped at random.
    auto forward = [&](const std::vector<Example>& ex, bool training) {
      hflat.clear();
      hstarts.clear();
      hweights.clear();
      uids.clear();
      iids.clear();
      ukeep.clear();
      ikeep.clear();
      std::vector<int64_t> urows;
      for (const auto& e : ex) {
        uids.push_back(e.user);
        urows.push_back(e.user);
        iids.push_back(e.item);
        ukeep.push_back(training && core::uniform01(rng) < o_.user_id_dropout ? 0.0f : 1.0f);
        ikeep.push_back(training && core::uniform01(rng) < o_.item_id_dropout ? 0.0f : 1.0f);
        hstarts.push_back(static_cast<int64_t>(hflat.size()));
        int64_t c = 0;
        for (int64_t q = offsets[e.user + 1] - 1; q >= offsets[e.user] && c < o_.history; --q) {
          if (q == e.row) continue;
          hflat.push_back(items[static_cast<size_t>(q)]);
          hweights.push_back(standardised(values[static_cast<size_t>(q)]));
          ++c;
        }
        for (int64_t k = hstarts.back(); k < static_cast<int64_t>(hweights.size()); ++k)
          hweights[static_cast<size_t>(k)] /= static_cast<float>(c);
      }
      ubags.gather(urows, uflat, ustarts);
      auto u = net_->users(long_tensor(uids), float_tensor(ukeep), long_tensor(hflat), long_tensor(hstarts),
                           float_tensor(hweights), long_tensor(uflat), long_tensor(ustarts));
      auto v = net_->items(content_.inputs(iids, ikeep));
      return net_->heads(u, v);  // [R, T]
    };
    // Labels of `ex` per task ([R] each) and the observed mask.
    auto labels = [&](const std::vector<Example>& ex, std::vector<std::vector<float>>& y, std::vector<float>& observed) {
      y.assign(static_cast<size_t>(T), {});
      observed.clear();
      for (const auto& e : ex) {
        const bool obs = e.row != kNegative;
        observed.push_back(obs ? 1.0f : 0.0f);
        if (like >= 0) y[static_cast<size_t>(like)].push_back(obs && e.value >= o_.like_threshold ? 1.0f : 0.0f);
        if (rating >= 0)
          y[static_cast<size_t>(rating)].push_back(obs ? static_cast<float>((e.value - rating_mean_) / rating_std_) : 0.0f);
        if (category >= 0)
          y[static_cast<size_t>(category)].push_back(category_label(e.user, e.item, e.row >= 0) ? 1.0f : 0.0f);
      }
    };

    monitor.info(fmt::format("{}: arch {}, tasks {} (weights {}), {} training pairs, {} held out, {} items ({} trained), "
                             "{} item features, {} user features, {} epochs, {} threads",
                             name(), o_.arch, o_.tasks_text, weights_text(), fit_ds.num_interactions(), held_rows.size(),
                             num_items_, trained_.size(), content_.space().size(), user_space_.size(), o_.epochs,
                             threads));
    train::EpochReporter reporter(monitor, name(), o_.epochs);
    std::vector<int64_t> order(static_cast<size_t>(fit_ds.num_interactions()));
    std::iota(order.begin(), order.end(), int64_t{0});
    epoch_loss_.clear();
    epoch_seconds_.clear();
    metrics_by_epoch_ = nlohmann::json::array();
    std::vector<Example> batch;
    std::vector<std::vector<float>> y;
    std::vector<float> observed;
    for (int64_t epoch = 0; epoch < o_.epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      net_->train();
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[core::uniform_index(rng, i)]);
      double loss_sum = 0.0;
      std::vector<double> task_sum(static_cast<size_t>(T), 0.0);
      int64_t steps = 0;
      for (size_t start = 0; start < order.size(); start += static_cast<size_t>(o_.batch_size)) {
        const size_t end = std::min(order.size(), start + static_cast<size_t>(o_.batch_size));
        batch.clear();
        for (size_t k = start; k < end; ++k) {
          const int64_t r = order[k];
          const UserIndex u = fit_ds.user_of_row(r);
          batch.push_back({u, items[static_cast<size_t>(r)], r, values[static_cast<size_t>(r)]});
        }
        const size_t observed_rows = batch.size();
        for (size_t k = 0; k < observed_rows; ++k)
          for (int64_t n = 0; n < o_.negatives; ++n) batch.push_back({batch[k].user, negative(batch[k].user, rng), kNegative, 0.0f});
        auto out = forward(batch, true);
        labels(batch, y, observed);
        auto obs_t = float_tensor(observed);
        torch::Tensor loss = torch::zeros({});
        for (int64_t t = 0; t < T; ++t) {
          auto pred = out.select(1, t);
          auto target = float_tensor(y[static_cast<size_t>(t)]);
          torch::Tensor l;
          if (o_.tasks[static_cast<size_t>(t)] == Task::kRating)
            l = ((pred - target).pow(2) * obs_t).sum() / obs_t.sum().clamp_min(1.0);
          else
            l = torch::nn::functional::binary_cross_entropy_with_logits(pred, target);
          task_sum[static_cast<size_t>(t)] += l.item<double>();
          loss = loss + o_.weights[static_cast<size_t>(t)] * l;
        }
        optimizer->zero_grad();
        loss.backward();
        optimizer->step();
        loss_sum += loss.item<double>();
        ++steps;
      }
      net_->eval();
      const double mean_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, steps));
      epoch_loss_.push_back(mean_loss);
      task_loss_ = nlohmann::json::object();
      for (int64_t t = 0; t < T; ++t)
        task_loss_[task_name(o_.tasks[static_cast<size_t>(t)])] =
            task_sum[static_cast<size_t>(t)] / static_cast<double>(std::max<int64_t>(1, steps));
      epoch_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      std::string extra;
      if (!held_ex.empty()) {
        torch::Tensor out;
        {
          torch::NoGradGuard ng;
          std::vector<torch::Tensor> parts;
          const size_t chunk = 8192;
          for (size_t s = 0; s < held_ex.size(); s += chunk) {
            std::vector<Example> part(held_ex.begin() + static_cast<std::ptrdiff_t>(s),
                                      held_ex.begin() + static_cast<std::ptrdiff_t>(std::min(held_ex.size(), s + chunk)));
            parts.push_back(forward(part, false));
          }
          out = torch::cat(parts, 0).contiguous();
        }
        labels(held_ex, y, observed);
        metrics_ = holdout_metrics(out, y, observed);
        metrics_["pairs"] = held_rows.size();
        metrics_by_epoch_.push_back(metrics_);
        extra = metrics_text(metrics_);
        for (const auto& [task, m] : metrics_.items())
          if (m.is_object())
            for (const auto& [k, v] : m.items())
              if (v.is_number() && k != "positive_rate")
                monitor.metric(name() + "/" + task + "_" + k, v.get<double>(), epoch + 1);
      }
      reporter.epoch_done(epoch + 1, mean_loss, static_cast<int64_t>(order.size()), extra);
    }
    net_->eval();
    refresh_items(0);
    info_ = {{"training_pairs", fit_ds.num_interactions()},
             {"trained_items", trained_.size()},
             {"item_content", content_.describe()},
             {"user_features", user_space_.describe()}};
    if (category >= 0) info_["category_column"] = category_column_;
    if (!metrics_.is_null()) monitor.info(fmt::format("{}: held-out {}", name(), metrics_text(metrics_)));
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    FEWREC_CHECK(net_, kInvalidArgument, "model `{}` is not trained", name());
    auto state = std::make_unique<MultiTaskState>();
    state->seen = history_item_set(context, num_items(), name());
    std::vector<int64_t> hist;
    std::vector<float> weights;
    for (auto it = context.history.rbegin(); it != context.history.rend() && static_cast<int64_t>(hist.size()) < o_.history;
         ++it)
      if (it->item < id_rows_ && content_.known(it->item)) {
        hist.push_back(it->item);
        weights.push_back(standardised(it->value));
      }
    for (float& w : weights) w /= static_cast<float>(weights.size());
    std::vector<int32_t> uf;
    user_space_.encode(context.features, uf);
    std::vector<int64_t> uflat(uf.begin(), uf.end());
    const bool known = context.user.has_value() && *context.user >= 0 && *context.user < user_rows_;
    c10::InferenceMode guard;
    state->user = net_->users(long_tensor({known ? int64_t{*context.user} : int64_t{0}}),
                              torch::full({1}, known ? 1.0f : 0.0f), long_tensor(hist), long_tensor({0}),
                              float_tensor(weights), long_tensor(uflat), long_tensor({0}))
                      .clone();
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    std::vector<int64_t> rows;
    for (ItemIndex i : items) {
      if (i < 0 || i >= num_items_) throw_item_out_of_range(name(), i, num_items_);
      rows.push_back(i);
    }
    if (rows.empty()) return;
    const auto& s = dynamic_cast<const MultiTaskState&>(state);
    c10::InferenceMode guard;
    auto v = item_matrix_.index_select(0, long_tensor(rows));
    auto logits = net_->heads(s.user.expand({v.size(0), -1}), v, score_task_).contiguous();
    std::copy(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel(), out.begin());
  }

  void score_all(const UserState& state, std::span<float> out) const override {
    FEWREC_CHECK(out.size() == static_cast<size_t>(num_items_), kInvalidArgument,
                 "model `{}`: score_all needs {} scores, got {}", name(), num_items_, out.size());
    const auto& s = dynamic_cast<const MultiTaskState&>(state);
    c10::InferenceMode guard;
    auto logits = net_->heads(s.user.expand({num_items_, -1}), item_matrix_, score_task_).contiguous();
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
    writer.put_i64(prefix + "user_rows", user_rows_);
    writer.put_f64(prefix + "value_mean", rating_mean_);
    writer.put_f64(prefix + "value_std", rating_std_);
    writer.put_json(prefix + "summary", summary());
    content_.save(writer, prefix);
    user_space_.save(writer, prefix + "user_space/");
    train::save_params(writer, prefix, *net_);
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader, const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = MultiTaskOptions::read(o);
    o.check_all_used();
    auto m = std::make_unique<MultiTaskModel>(spec, options);
    auto bad = [&](const std::string& what) {
      FEWREC_THROW(kCorrupt, "artifact {}: model `multitask`: {}", reader.origin(), what);
    };
    auto one = [&](const std::string& key, int64_t lo, int64_t hi) {
      const auto v = reader.get_array<int64_t>(prefix + key);
      if (v.size() != 1 || v[0] < lo || v[0] > hi) bad("`" + key + "` is out of range");
      return v[0];
    };
    auto real = [&](const std::string& key) {
      const auto v = reader.get_array<double>(prefix + key);
      if (v.size() != 1 || !std::isfinite(v[0])) bad("`" + key + "` is not a finite number");
      return v[0];
    };
    m->num_items_ = static_cast<int32_t>(one("num_items", 1, INT32_MAX));
    m->id_rows_ = static_cast<int32_t>(one("id_rows", 1, m->num_items_));
    m->user_rows_ = static_cast<int32_t>(one("user_rows", 1, INT32_MAX));
    m->rating_mean_ = real("value_mean");
    m->rating_std_ = real("value_std");
    if (!(m->rating_std_ > 0)) bad("`value_std` is not positive");
    m->loaded_summary_ = reader.get_json(prefix + "summary");
    m->content_ = ItemContent(options.item_features, options.vocab, options.text, kName);
    m->content_.load(reader, prefix, m->num_items_);
    for (ItemIndex i = 0; i < m->num_items_; ++i)
      if (m->content_.known(i)) m->trained_.push_back(i);
    m->user_space_ = hybrid::FeatureSpace::load(reader, prefix + "user_space/");
    m->net_ = Net(m->user_rows_, m->id_rows_, m->content_.space().size(), m->user_space_.size(),
                  m->content_.text_dim(), options);
    train::load_params(reader, prefix, *m->net_, "model `multitask`");
    m->net_->eval();
    m->refresh_items(0);
    return m;
  }

  nlohmann::json summary() const override {
    if (epoch_loss_.empty() && loaded_summary_.is_object()) {
      auto j = loaded_summary_;
      j["items"] = num_items_;
      return j;
    }
    nlohmann::json j = info_.is_null() ? nlohmann::json::object() : info_;
    j["items"] = num_items_;
    j["arch"] = o_.arch;
    j["tasks"] = o_.tasks_text;
    j["weights"] = o_.weights;
    j["scored_by"] = task_name(o_.tasks[static_cast<size_t>(score_task_)]);
    j["epoch_loss"] = epoch_loss_;
    if (!task_loss_.is_null()) j["task_loss"] = task_loss_;
    if (!metrics_.is_null()) {
      j["holdout"] = metrics_;
      j["holdout_by_epoch"] = metrics_by_epoch_;
    }
    if (!epoch_seconds_.empty()) {
      auto s = epoch_seconds_;
      std::sort(s.begin(), s.end());
      j["median_epoch_seconds"] = s[s.size() / 2];
    }
    return j;
  }

 private:
  // (value - mean) / deviation of the training values; 0 when not finite.
  float standardised(float v) const {
    return std::isfinite(v) ? static_cast<float>((v - rating_mean_) / rating_std_) : 0.0f;
  }

  std::string weights_text() const {
    std::vector<std::string> w;
    for (double x : o_.weights) w.push_back(fmt::format("{}", x));
    return core::join(w, "+");
  }

  // Each task needs its data: clear errors naming the task.
  void check_task_data(std::span<const float> values, core::Monitor& monitor) {
    rating_mean_ = 0.0;
    rating_std_ = 1.0;
    const bool like = o_.index_of(Task::kLike) >= 0, rating = o_.index_of(Task::kRating) >= 0;
    double sum = 0, sq = 0, lo = 1e300, hi = -1e300;
    int64_t likes = 0;
    for (float v : values) {
      if (!like && !rating && !std::isfinite(v)) continue;
      FEWREC_CHECK(std::isfinite(v), kInvalidArgument,
                   "model `{}`: task `{}` needs a finite value on every interaction, got {}", name(),
                   like ? "like" : "rating", v);
      sum += v;
      sq += static_cast<double>(v) * v;
      lo = std::min(lo, static_cast<double>(v));
      hi = std::max(hi, static_cast<double>(v));
      likes += v >= o_.like_threshold;
    }
    const double n = static_cast<double>(values.size());
    // Standardisation of the values (rating targets, history weights).
    if (n > 0 && hi > lo) {
      rating_mean_ = sum / n;
      rating_std_ = std::sqrt(std::max(1e-12, sq / n - rating_mean_ * rating_mean_));
    } else if (n > 0 && hi >= lo) {
      rating_mean_ = lo;  // one value: every weight is 0
    }
    const std::string filtered =
        "was the data filtered by data.positive_threshold? multitask needs the raw values: train it without "
        "data.positive_threshold";
    if (like) {
      FEWREC_CHECK(likes > 0, kInvalidArgument,
                   "model `{}`: task `like`: no training interaction has a value >= like_threshold ({}); values range "
                   "from {} to {}",
                   name(), o_.like_threshold, lo, hi);
      if (likes == static_cast<int64_t>(values.size()))
        monitor.info(fmt::format("{}: task `like`: every training interaction has a value >= {} ({}): likes are "
                                 "learned against sampled unobserved items only",
                                 name(), o_.like_threshold, filtered));
    }
    if (rating) {
      FEWREC_CHECK(hi > lo, kInvalidArgument,
                   "model `{}`: task `rating`: every training interaction has the value {}: there is no rating to "
                   "regress ({}; or drop `rating` from `tasks`)",
                   name(), lo, filtered);
      if (lo >= o_.like_threshold)
        monitor.info(fmt::format("{}: task `rating`: every value is >= {} ({})", name(), o_.like_threshold, filtered));
    }
  }

  // item_cats_ (categories of every catalogue item) and user_cats_ (per
  // user, sorted (category, count) over the training rows).
  void build_categories(const data::Dataset& ds) {
    const auto& table = ds.catalogue().item_features;
    const data::FeatureColumn* col = nullptr;
    if (o_.category_column == "auto") {
      for (const auto& c : table.columns())
        if (c.kind == data::FeatureKind::kTags) {
          col = &c;
          break;
        }
      if (!col)
        for (const auto& c : table.columns())
          if (c.kind == data::FeatureKind::kCategorical) {
            col = &c;
            break;
          }
      FEWREC_CHECK(col, kInvalidArgument,
                   "model `{}`: task `category` needs an item tag or categorical column (e.g. genres), and the items "
                   "have none; drop `category` from `tasks`",
                   name());
    } else {
      col = table.find(o_.category_column);
      std::vector<std::string> present;
      for (const auto& c : table.columns()) present.push_back(c.name);
      FEWREC_CHECK(col && (col->kind == data::FeatureKind::kTags || col->kind == data::FeatureKind::kCategorical),
                   kInvalidArgument,
                   "model `{}`: task `category`: option `category_column`: `{}` is not an item tag or categorical "
                   "column; item columns: {}",
                   name(), core::excerpt(o_.category_column), present.empty() ? "none" : core::join(present, ", "));
    }
    category_column_ = col->name;
    item_cats_ = Bags{};
    for (ItemIndex i = 0; i < ds.num_items(); ++i) {
      std::vector<int32_t> c;
      if (i < table.rows()) {
        if (col->kind == data::FeatureKind::kTags) {
          for (int32_t t : col->tags_of(i)) c.push_back(t);
        } else if (col->codes[static_cast<size_t>(i)] >= 0) {
          c.push_back(col->codes[static_cast<size_t>(i)]);
        }
      }
      std::sort(c.begin(), c.end());
      c.erase(std::unique(c.begin(), c.end()), c.end());
      item_cats_.add(c);
    }
    user_cats_.assign(static_cast<size_t>(ds.num_users()), {});
    user_rows_count_.assign(static_cast<size_t>(ds.num_users()), 0);
    const auto offsets = ds.user_offsets();
    const auto items = ds.item_column();
    for (UserIndex u = 0; u < ds.num_users(); ++u) {
      std::vector<int32_t> all;
      for (int64_t r = offsets[u]; r < offsets[u + 1]; ++r) {
        const auto i = static_cast<size_t>(items[static_cast<size_t>(r)]);
        all.insert(all.end(), item_cats_.ids.begin() + item_cats_.offsets[i], item_cats_.ids.begin() + item_cats_.offsets[i + 1]);
      }
      std::sort(all.begin(), all.end());
      auto& out = user_cats_[static_cast<size_t>(u)];
      for (size_t s = 0; s < all.size();) {
        size_t e = s;
        while (e < all.size() && all[e] == all[s]) ++e;
        out.emplace_back(all[s], static_cast<int32_t>(e - s));
        s = e;
      }
      user_rows_count_[static_cast<size_t>(u)] = offsets[u + 1] - offsets[u];
    }
  }

  // 1 when one of `item`'s categories is carried by >= category_share of the
  // user's other training items (`own`: the pair is one of those rows).
  bool category_label(UserIndex u, ItemIndex item, bool own) const {
    const double n = static_cast<double>(user_rows_count_[static_cast<size_t>(u)] - (own ? 1 : 0));
    if (n <= 0) return false;
    const auto& cats = user_cats_[static_cast<size_t>(u)];
    const auto i = static_cast<size_t>(item);
    for (int64_t k = item_cats_.offsets[i]; k < item_cats_.offsets[i + 1]; ++k) {
      const int32_t c = static_cast<int32_t>(item_cats_.ids[static_cast<size_t>(k)]);
      auto it = std::lower_bound(cats.begin(), cats.end(), std::make_pair(c, int32_t{0}));
      if (it == cats.end() || it->first != c) continue;
      if (static_cast<double>(it->second - (own ? 1 : 0)) >= o_.category_share * n) return true;
    }
    return false;
  }

  // Per-task metrics of the held-out examples: out [R, T], labels per task,
  // observed mask (negatives count for like and category only).
  nlohmann::json holdout_metrics(const torch::Tensor& out, const std::vector<std::vector<float>>& y,
                                 const std::vector<float>& observed) const {
    nlohmann::json j = nlohmann::json::object();
    const int64_t R = out.size(0);
    for (size_t t = 0; t < o_.tasks.size(); ++t) {
      auto col = out.select(1, static_cast<int64_t>(t)).contiguous();
      std::vector<float> pred(col.data_ptr<float>(), col.data_ptr<float>() + R);
      const auto& lab = y[t];
      nlohmann::json m;
      if (o_.tasks[t] == Task::kRating) {
        double se = 0;
        int64_t n = 0;
        for (int64_t r = 0; r < R; ++r)
          if (observed[static_cast<size_t>(r)] > 0) {
            const double d = (pred[static_cast<size_t>(r)] - lab[static_cast<size_t>(r)]) * rating_std_;
            se += d * d;
            ++n;
          }
        m["rmse"] = finite_or_null(n > 0 ? std::sqrt(se / static_cast<double>(n)) : NAN);
      } else {
        m["auc"] = finite_or_null(binary_auc(pred, lab));
        double ll = 0, pos = 0;
        for (int64_t r = 0; r < R; ++r) {
          const double p = std::clamp(1.0 / (1.0 + std::exp(-static_cast<double>(pred[static_cast<size_t>(r)]))), 1e-7,
                                      1.0 - 1e-7);
          const bool yes = lab[static_cast<size_t>(r)] > 0.5f;
          ll -= yes ? std::log(p) : std::log(1.0 - p);
          pos += yes;
        }
        if (o_.tasks[t] == Task::kLike) m["log_loss"] = finite_or_null(R > 0 ? ll / static_cast<double>(R) : NAN);
        m["positive_rate"] = R > 0 ? pos / static_cast<double>(R) : 0.0;
      }
      j[task_name(o_.tasks[t])] = m;
    }
    return j;
  }

  static std::string metrics_text(const nlohmann::json& m) {
    std::vector<std::string> parts;
    auto num = [](const nlohmann::json& v) { return v.is_number() ? fmt::format("{:.4f}", v.get<double>()) : std::string("n/a"); };
    if (m.contains("like")) parts.push_back("like auc " + num(m["like"]["auc"]) + " log-loss " + num(m["like"]["log_loss"]));
    if (m.contains("rating")) parts.push_back("rating rmse " + num(m["rating"]["rmse"]));
    if (m.contains("category")) parts.push_back("category auc " + num(m["category"]["auc"]));
    return core::join(parts, ", ");
  }

  // item_matrix_ rows [first, num_items) from the items' ids and content.
  void refresh_items(int32_t first) {
    c10::InferenceMode guard;
    std::vector<int64_t> ids(static_cast<size_t>(num_items_ - first));
    std::iota(ids.begin(), ids.end(), int64_t{first});
    auto x = net_->items(content_.inputs(ids));
    item_matrix_ = first == 0 ? x.clone() : torch::cat({item_matrix_.narrow(0, 0, first), x}, 0);
  }

  MultiTaskOptions o_;
  int score_task_ = 0;
  int32_t num_items_ = 0;
  int32_t id_rows_ = 0;    // item id embeddings: the items at fit
  int32_t user_rows_ = 0;  // user id embeddings: the users at fit
  double rating_mean_ = 0.0, rating_std_ = 1.0;
  ItemContent content_;
  std::vector<ItemIndex> trained_;
  hybrid::FeatureSpace user_space_;
  std::string category_column_;
  Bags item_cats_;
  std::vector<std::vector<std::pair<int32_t, int32_t>>> user_cats_;
  std::vector<int64_t> user_rows_count_;
  mutable Net net_{nullptr};
  torch::Tensor item_matrix_;  // [num_items, dim], inference
  std::vector<double> epoch_loss_, epoch_seconds_;
  nlohmann::json task_loss_, metrics_, metrics_by_epoch_, info_, loaded_summary_;
};

std::unique_ptr<Model> create_multitask(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = MultiTaskOptions::read(o);
  o.check_all_used();
  return std::make_unique<MultiTaskModel>(spec, options);
}

}  // namespace

void register_multitask(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{kName, {}});
  MultiTaskOptions::read(docs);
  registry.add(ModelInfo{
      .name = kName,
      .description = "multi-task: like / rating / category-interest heads over user (id, history, attributes) and "
                     "item (id, features, text) vectors, shared-bottom or MMoE, per-task loss weights and held-out "
                     "per-task metrics (LibTorch)",
      .options = docs.docs(),
      .create = create_multitask,
      .load = MultiTaskModel::load,
  });
}

}  // namespace fewrec::models

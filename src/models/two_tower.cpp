// two_tower: a user tower and an item tower trained with a sampled softmax,
// on LibTorch.
//
// Item tower. An item's input vector is the sum of
//   - its id embedding (only for items with training interactions; during
//     training it is dropped with probability `id_dropout`, so the tower
//     learns to stand on content alone, which is all a cold item has),
//   - the mean embedding of its features (categorical values, tags, title
//     words, numeric buckets: hybrid_features.h),
//   - W t, t its fixed pretrained text vector (`text_encoder` or a vector file
//     of `fewrec encode`: hybrid_text.h) and W a learned projection;
// the tower's output is x + MLP(x), L2-normalised, and a bias b = w . x
// (popularity, from the id or from content) is added to the score.
// User tower. The mean input vector of the last `history` items of the user's
// history, concatenated with the mean embedding of the user's features, goes
// through an MLP (plus the history mean as residual), L2-normalised. A user
// has no id embedding: known and new users are both represented by what
// their context holds, so adapt() is exact for new users.
//
// Training pairs are the (user, item) interactions; the context of a pair is
// the user's other items (the last `history` of them). The loss is a softmax
// over the batch's target items (in-batch negatives) plus `negatives` items
// drawn uniformly from the trained items, on cosine / temperature, with the
// log-Q correction (each candidate's logit minus the log of its expected
// count among the candidates: popularity for in-batch items) and accidental
// hits (a candidate equal to the row's target) masked.
//
// Scores are dot products of the normalised vectors, so retrieval can use the
// item vectors; add_items() runs the item tower on new items' content.
#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/optimizer.h>
#include <torch/csrc/autograd/autograd.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "builtin.h"
#include "common.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/threads.h"
#include "fewrec/train/finetune.h"
#include "fewrec/train/train.h"
#include "feature_bags.h"
#include "hybrid_features.h"
#include "hybrid_text.h"
#include "item_content.h"

namespace fewrec::models {

namespace {

constexpr const char* kName = "two_tower";

struct TwoTowerOptions {
  int64_t dim = 64;
  int64_t hidden = 128;
  int64_t history = 50;
  std::string context = "others";
  int64_t max_support = 20;
  int64_t epochs = 20;
  int64_t batch_size = 256;
  int64_t negatives = 256;
  double temperature = 0.05;
  bool normalize_user = true;
  bool logq = true;
  bool ids = true;
  double id_dropout = 0.3;
  hybrid::ColumnSelection item_features;
  hybrid::ColumnSelection user_features;
  hybrid::VocabularyOptions vocab;
  hybrid::TextSourceOptions text;
  train::OptimizerOptions optimizer;
  int64_t threads = 0;
  std::string adapt_mode = "none";
  int64_t adapt_steps = 10;
  double adapt_lr = 1e-3;
  double adapt_l2 = 0.1;
  int64_t adapt_rank = 4;
  bool adapt_early_stop = true;
  bool meta_emb = false;
  int64_t meta_epochs = 30;
  int64_t meta_items = 128;
  int64_t meta_shots = 4;
  double meta_alpha = 0.5;
  double meta_warm_lr = 0.1;
  double meta_lr = 1e-3;
  double meta_recent = 1.0;
  bool meta_popularity = true;

  static TwoTowerOptions read(DocumentedOptions& o) {
    TwoTowerOptions p;
    p.dim = o.get_int("dim", p.dim, "output size of both towers", 1, 4096);
    p.hidden = o.get_int("hidden", p.hidden, "hidden width of the towers' MLPs", 1, 65536);
    p.history = o.get_int("history", p.history, "the user tower reads the last `history` items of the context", 1,
                          100000);
    p.context = o.get_choice(
        "context", p.context, {"others", "prefix"},
        "training context of a (user, item) pair: others = the user's other items (the last `history` of them); "
        "prefix = the user's first k items by time, k drawn uniformly from 0..min(position, max_support): "
        "cold-start tasks simulated from the warm users, so the towers learn what a few first events are worth");
    p.max_support = o.get_int("max_support", p.max_support, "context=prefix: largest simulated support set", 0,
                              100000);
    p.epochs = o.get_int("epochs", p.epochs, "passes over the training interactions", 1, 100000);
    p.batch_size = o.get_int("batch_size", p.batch_size, "interactions per step (also the in-batch negatives)", 1,
                             1 << 20);
    p.negatives = o.get_int("negatives", p.negatives,
                            "extra negatives per step, drawn uniformly from the trained items (0 = in-batch only)", 0,
                            1 << 20);
    p.temperature = o.get_double("temperature", p.temperature, "softmax temperature: the user-item dot products are divided by it", 1e-4, 100.0);
    p.normalize_user = o.get_bool("normalize_user", p.normalize_user,
                                  "L2-normalise the user vector too (cosine scores); false lets its length say how "
                                  "much the context outweighs the items' biases");
    p.logq = o.get_bool("logq", p.logq,
                        "log-Q correction: subtract from each candidate's logit the log of its expected count among "
                        "the candidates (in-batch items are drawn by popularity)");
    p.ids = o.get_bool("ids", p.ids, "item id embeddings (items with training interactions only)");
    p.id_dropout = o.get_double("id_dropout", p.id_dropout,
                                "probability of dropping an item's id embedding in a training step (teaches the item "
                                "tower to work from content alone, as for cold items)",
                                0.0, 1.0);
    p.item_features = hybrid::ColumnSelection::parse(
        o.get_string("item_features", "all", "item feature columns: all, none, or names joined by +"),
        "model `two_tower`: option `item_features`");
    p.user_features = hybrid::ColumnSelection::parse(
        o.get_string("user_features", "all", "user feature columns: all, none, or names joined by +"),
        "model `two_tower`: option `user_features`");
    p.vocab.min_df = o.get_int("min_df", p.vocab.min_df, "feature values seen in fewer rows are dropped", 1, INT32_MAX);
    p.vocab.max_vocab = o.get_int("max_vocab", p.vocab.max_vocab,
                                  "per text column: keep the most frequent words (0 = all)", 0, INT32_MAX);
    p.text.encoder = o.get_string("text_encoder", p.text.encoder,
                                  "pretrained item text vectors: none, or a text encoder (hashing, glove, bert; see "
                                  "`fewrec encoders`) run on the items' texts at fit and on new items in add_items");
    p.text.encoder_options = hybrid::parse_encoder_options(
        o.get_string("text_options", "",
                     "options of the text encoder as key=value pairs joined by `;` (e.g. dim=512;ngrams=2)"),
        "model `two_tower`: option `text_options`");
    p.text.fields = hybrid::ColumnSelection::parse(
        o.get_string("text_fields", "all",
                     "item columns whose texts are encoded, joined by + (all: every text column, then every tag "
                     "column)"),
        "model `two_tower`: option `text_fields`");
    p.text.item_vectors = o.get_string("item_vectors", p.text.item_vectors,
                                       "instead of text_encoder: a vector file written by `fewrec encode`");
    p.optimizer.name = o.get_choice("optimizer", "adam", {"adam", "adamw", "adagrad", "sgd"}, "optimizer");
    p.optimizer.lr = o.get_double("learning_rate", 2e-3, "base learning rate", 0.0);
    p.optimizer.weight_decay = o.get_double("weight_decay", 0.0, "weight decay on every parameter", 0.0);
    p.adapt_mode = o.get_choice(
        "adapt_mode", p.adapt_mode, {"none", "user_head", "user_tower", "user_bias", "user_lowrank"},
        "per-user fine-tuning in adapt() (train/finetune.h) on a copy of the model: the user's history as "
        "leave-one-out tasks (the others predict each one) trains the user MLP's last layer (user_head, head "
        "only), the whole user tower (user_tower, full), only the user MLP's biases (user_bias) or a low-rank "
        "adapter on both user MLP layers while their weights stay frozen and shared (user_lowrank, rank "
        "adapt_rank); the item side stays shared; none = the tower's output as is");
    p.adapt_steps = o.get_int("adapt_steps", p.adapt_steps, "adapt_mode: optimizer steps per user at most", 1, 10000);
    p.adapt_lr = o.get_double("adapt_lr", p.adapt_lr, "adapt_mode: learning rate (Adam, 2 warm-up steps)", 1e-8, 10.0);
    p.adapt_l2 = o.get_double("adapt_l2", p.adapt_l2, "adapt_mode: L2 pull towards the shared weights", 0.0, 1e9);
    p.adapt_rank = o.get_int("adapt_rank", p.adapt_rank, "adapt_mode=user_lowrank: rank of the adapters", 1, 4096);
    p.adapt_early_stop = o.get_bool(
        "adapt_early_stop", p.adapt_early_stop,
        "adapt_mode: with 4 or more history items, hold the newest one out of the fine-tuning, check its "
        "log-likelihood after every step and keep the best weights (the shared ones included; patience 3)");
    p.meta_emb = o.get_bool(
        "meta_emb", p.meta_emb,
        "meta-embeddings for new items (MetaEmb-style): after training, a generator from an item's content "
        "(features, text vector) to an id embedding is meta-trained with the rest of the model frozen, so that "
        "items without a trained id embedding (held-out or added items) get a generated one that ranks well at "
        "once (cold loss on a few of a trained item's users) and after one gradient step on them (warm loss on "
        "others)");
    p.meta_epochs = o.get_int("meta_epochs", p.meta_epochs, "meta_emb: passes over the trained items", 0, 100000);
    p.meta_items = o.get_int("meta_items", p.meta_items,
                             "meta_emb: items per meta-batch (each item's generated vector competes with the others')",
                             2, 1 << 20);
    p.meta_shots = o.get_int("meta_shots", p.meta_shots,
                             "meta_emb: users per item in the cold batch and in the warm batch", 1, 1000);
    p.meta_alpha = o.get_double("meta_alpha", p.meta_alpha,
                                "meta_emb: weight of the cold loss (1 - it: the loss after the warm-up step)", 0.0, 1.0);
    p.meta_warm_lr = o.get_double("meta_warm_lr", p.meta_warm_lr,
                                  "meta_emb: step size of the simulated warm-up update of a generated embedding", 0.0,
                                  1e6);
    p.meta_lr = o.get_double("meta_lr", p.meta_lr, "meta_emb: learning rate of the generator (Adam)", 1e-8, 10.0);
    p.meta_recent = o.get_double("meta_recent", p.meta_recent,
                                 "meta_emb: the generator learns from this share of the trained items, the newest by "
                                 "first event (new items are like the newest ones)",
                                 1e-6, 1.0);
    p.meta_popularity = o.get_bool(
        "meta_popularity", p.meta_popularity,
        "meta_emb: draw each item's users in proportion to its popularity (meta_shots per item on average), so "
        "the generator also learns which new items will draw many users; false = meta_shots per item, as in "
        "MetaEmb");
    p.threads = o.get_int("threads", p.threads, "LibTorch intra-op threads (0 = train.threads, else all cores)", 0,
                          1024);
    hybrid::check_text_options(p.text, kName);
    return p;
  }
};

ModelSpec canonical_spec(ModelSpec spec, const TwoTowerOptions& o) {
  if (spec.options.count("item_features")) spec.options["item_features"] = o.item_features.to_string();
  if (spec.options.count("user_features")) spec.options["user_features"] = o.user_features.to_string();
  if (spec.options.count("text_fields")) spec.options["text_fields"] = o.text.fields.to_string();
  if (spec.options.count("text_options"))
    spec.options["text_options"] =
        hybrid::encoder_options_to_string(o.text.encoder_options, "model `two_tower`: option `text_options`");
  return spec;
}

struct NetImpl : torch::nn::Module {
  NetImpl(int64_t num_items, int64_t item_feats, int64_t user_feats, int64_t text_dim, const TwoTowerOptions& o)
      : dim(o.dim), normalize_user(o.normalize_user) {
    if (o.ids) id_emb = register_module("id_emb", torch::nn::Embedding(num_items, o.dim));
    if (item_feats > 0)
      item_feat = register_module(
          "item_feat", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(item_feats, o.dim).mode(torch::kMean)));
    if (user_feats > 0)
      user_feat = register_module(
          "user_feat", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(user_feats, o.dim).mode(torch::kMean)));
    if (text_dim > 0)
      text_proj = register_module("text_proj", torch::nn::Linear(torch::nn::LinearOptions(text_dim, o.dim).bias(false)));
    bias_head = register_module("bias_head", torch::nn::Linear(o.dim, 1));

    item_mlp = register_module("item_mlp", torch::nn::Sequential(torch::nn::Linear(o.dim, o.hidden), torch::nn::ReLU(),
                                                                  torch::nn::Linear(o.hidden, o.dim)));
    user_mlp = register_module("user_mlp", torch::nn::Sequential(torch::nn::Linear(2 * o.dim + 1, o.hidden),
                                                                  torch::nn::ReLU(), torch::nn::Linear(o.hidden, o.dim)));
    torch::NoGradGuard ng;
    for (auto& p : named_parameters(true))
      if (p.key().find("emb") != std::string::npos || p.key().find("feat") != std::string::npos)
        p.value().normal_(0.0, 0.05);
    // Last, so the other modules' initial weights do not depend on meta_emb.
    if (o.meta_emb) {
      meta_gen = register_module("meta_gen", torch::nn::Sequential(torch::nn::Linear(o.dim, o.hidden), torch::nn::ReLU(),
                                                                    torch::nn::Linear(o.hidden, o.dim)));
      // It starts as the zero embedding: a new item is its content, as without it.
      meta_gen->ptr<torch::nn::LinearImpl>(2)->weight.zero_();
      meta_gen->ptr<torch::nn::LinearImpl>(2)->bias.zero_();
    }
  }

  // Input vectors [U, dim] of items `ids`: id part times `id_keep` [U] (0/1),
  // feature bags (flat, starts), text rows [U, text_dim] (undefined = none).
  torch::Tensor item_input(const torch::Tensor& ids, const torch::Tensor& id_keep, const torch::Tensor& flat,
                           const torch::Tensor& starts, const torch::Tensor& text) {
    auto x = torch::zeros({ids.size(0), dim});
    if (id_emb) x = x + id_emb(ids) * id_keep.unsqueeze(1);
    if (item_feat && flat.numel() > 0) x = x + item_feat(flat, starts);
    if (text_proj && text.defined()) x = x + text_proj(text);
    // An item without its id embedding gets the generated one (meta_emb).
    if (meta_gen && gen_on) x = x + meta_gen->forward(content(ids.size(0), flat, starts, text)) * (1.0 - id_keep).unsqueeze(1);
    return x;
  }
  // The content part of the input: feature bags and text.
  torch::Tensor content(int64_t n, const torch::Tensor& flat, const torch::Tensor& starts, const torch::Tensor& text) {
    auto c = torch::zeros({n, dim});
    if (item_feat && flat.numel() > 0) c = c + item_feat(flat, starts);
    if (text_proj && text.defined()) c = c + text_proj(text);
    return c;
  }
  torch::Tensor item_input(const ItemContent::Inputs& in) {
    // Items added after training have no id row: clamp (their id_keep is 0).
    auto ids = id_emb ? in.ids.clamp_max(id_emb->weight.size(0) - 1) : in.ids;
    return item_input(ids, in.id_keep, in.flat, in.starts, in.text);
  }
  torch::Tensor item_out(const torch::Tensor& x) {
    return torch::nn::functional::normalize(x + item_mlp->forward(x),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  }
  // An item's additive score (popularity, from id and content) [U].
  torch::Tensor item_bias(const torch::Tensor& x) { return bias_head->forward(x).squeeze(1); }
  // pooled [B, dim] history mean; user feature bags; n [B, 1] the number
  // of context items (the MLP sees log(1 + n): how far to trust them).
  torch::Tensor user_out(const torch::Tensor& pooled, const torch::Tensor& flat, const torch::Tensor& starts,
                         const torch::Tensor& n) {
    torch::Tensor f = torch::zeros_like(pooled);
    if (user_feat && flat.numel() > 0) f = user_feat(flat, starts);
    auto h = pooled + user_mlp->forward(torch::cat({pooled, f, torch::log1p(n)}, 1));
    if (!normalize_user) return h;
    return torch::nn::functional::normalize(h, torch::nn::functional::NormalizeFuncOptions().dim(1));
  }

  int64_t dim;
  bool normalize_user;
  torch::nn::Embedding id_emb{nullptr};
  torch::nn::EmbeddingBag item_feat{nullptr}, user_feat{nullptr};
  torch::nn::Linear text_proj{nullptr}, bias_head{nullptr};
  torch::nn::Sequential item_mlp{nullptr}, user_mlp{nullptr};
  torch::nn::Sequential meta_gen{nullptr};
  bool gen_on = false;  // meta_gen enters item_input (once meta-trained)
};
TORCH_MODULE(Net);

class TwoTowerState final : public UserState {
 public:
  std::vector<float> vector;
};

class TwoTowerModel final : public Model {
 public:
  TwoTowerModel(ModelSpec spec, TwoTowerOptions options)
      : Model(canonical_spec(std::move(spec), options)), o_(std::move(options)) {}

  void fit(const data::Dataset& train, const TrainOptions& topts, core::Monitor& monitor) override {
    const int threads = o_.threads > 0 ? static_cast<int>(o_.threads) : core::resolve_threads(topts.threads);
    train::set_threads(threads);
    torch::manual_seed(topts.seed);
    const auto& cat = train.catalogue();
    num_items_ = train.num_items();
    const int32_t n_users = train.num_users();

    // Trained items, popularity.
    const auto offsets = train.user_offsets();
    const auto items = train.item_column();
    std::vector<int64_t> count(static_cast<size_t>(num_items_), 0);
    for (ItemIndex i : items) ++count[static_cast<size_t>(i)];
    content_ = ItemContent(o_.item_features, o_.vocab, o_.text, name());
    const std::vector<ItemIndex> trained = content_.build(train, monitor);
    std::vector<int32_t> all_users(static_cast<size_t>(n_users));
    std::iota(all_users.begin(), all_users.end(), 0);
    user_space_ = hybrid::FeatureSpace::build(cat.user_features, all_users, o_.user_features, o_.vocab, "user", name());
    const Bags ubags = user_bags(user_space_, cat);
    FEWREC_CHECK(o_.ids || !content_.space().empty() || content_.text_dim() > 0, kInvalidArgument,
                 "model `{}`: items have no representation: ids=false, no item feature and no text vectors", name());

    id_rows_ = num_items_;
    net_ = Net(id_rows_, content_.space().size(), user_space_.size(), content_.text_dim(), o_);
    // Fine-tuning: the pretrained weights, the trained subset, its schedule.
    const FineTuneFrom* ft = topts.finetune;
    std::vector<torch::Tensor> params = net_->parameters();
    std::vector<torch::Tensor> pretrained;
    train::OptimizerOptions oopts = o_.optimizer;
    int64_t epochs = o_.epochs;
    if (ft) {
      init_from_pretrained(*ft, train.catalogue(), monitor);
      if (ft->mode == "lowrank") add_adapters(ft->rank);
      train::FineTuneOptions fo;
      fo.mode = ft->mode;
      fo.head = {"item_mlp.", "user_mlp.", "bias_head."};
      params = train::select_trainable(*net_, fo);  // the others: requires_grad(false) until the end of fit
      for (const auto& p : params) pretrained.push_back(p.detach().clone());
      oopts.lr = ft->lr;
      epochs = ft->epochs;
      monitor.info(fmt::format("{}: fine-tuning ({} mode): {} of {} parameters trained, lr {}, {} warm-up steps, "
                               "L2 pull {}, {} epochs at most{}",
                               name(), ft->mode, count_numel(params), count_numel(net_->parameters()), ft->lr,
                               ft->warmup_steps, ft->l2, ft->epochs,
                               topts.valid ? fmt::format(", early stopping on the validation set (patience {})",
                                                         ft->patience)
                                           : std::string()));
    }
    auto optimizer = train::make_optimizer(params, oopts);
    train::ScheduleOptions schedule;
    if (ft) schedule.warmup_steps = ft->warmup_steps;
    train::EarlyStopping stopping(ft ? ft->patience : 0);
    const bool validate = ft && topts.valid && topts.valid->num_interactions() > 0;
    if (validate) stopping.update(validation_recall(train, *topts.valid), *net_, 0);
    int64_t global_step = 0;

    // Training pairs: every interaction row of a user with at least 2 rows
    // (a context must remain); the row's user by offsets.
    std::vector<int64_t> pairs;
    std::vector<data::UserIndex> pair_user;
    const bool prefix = o_.context == "prefix";
    for (data::UserIndex u = 0; u < n_users; ++u)
      if (offsets[u + 1] - offsets[u] >= (prefix ? 1 : 2))
        for (int64_t r = offsets[u]; r < offsets[u + 1]; ++r) {
          pairs.push_back(r);
          pair_user.push_back(u);
        }
    FEWREC_CHECK(!pairs.empty(), kInvalidArgument, "model `{}`: no training pair (users need two or more interactions, one with context=prefix)",
                 name());
    const double total = static_cast<double>(items.size());
    monitor.info(fmt::format("{}: {} pairs, {} items ({} trained), {} item features, {} user features, text dim {}, "
                             "{} epochs, {} threads",
                             name(), pairs.size(), num_items_, trained.size(), content_.space().size(), user_space_.size(),
                             content_.text_dim(), o_.epochs, threads));

    core::Rng rng(core::derive_seed(topts.seed, 23));
    train::EpochReporter reporter(monitor, name(), epochs);
    std::vector<size_t> order(pairs.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::vector<int32_t> local(static_cast<size_t>(num_items_), -1);
    std::vector<int64_t> uniq, ctx, uflat, ustarts, targets_local, neg_local, rows;
    std::vector<float> ctx_mask, keep, bias;
    epoch_seconds_.clear();
    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      net_->train();
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[core::uniform_index(rng, i)]);
      double loss_sum = 0.0;
      int64_t steps = 0;
      for (size_t start = 0; start < order.size(); start += static_cast<size_t>(o_.batch_size)) {
        const size_t end = std::min(order.size(), start + static_cast<size_t>(o_.batch_size));
        const int64_t B = static_cast<int64_t>(end - start);
        uniq.clear();
        auto local_of = [&](ItemIndex i) {
          auto& l = local[static_cast<size_t>(i)];
          if (l < 0) {
            l = static_cast<int32_t>(uniq.size());
            uniq.push_back(i);
          }
          return static_cast<int64_t>(l);
        };
        // Targets, then contexts.
        targets_local.assign(static_cast<size_t>(B), 0);
        std::vector<ItemIndex> target_item(static_cast<size_t>(B));
        for (int64_t b = 0; b < B; ++b) {
          const int64_t r = pairs[order[start + static_cast<size_t>(b)]];
          target_item[static_cast<size_t>(b)] = items[static_cast<size_t>(r)];
          targets_local[static_cast<size_t>(b)] = local_of(items[static_cast<size_t>(r)]);
        }
        const int64_t H = o_.history;
        ctx.assign(static_cast<size_t>(B * H), -1);
        ctx_mask.assign(static_cast<size_t>(B * H), 0.0f);
        rows.clear();
        for (int64_t b = 0; b < B; ++b) {
          const size_t p = order[start + static_cast<size_t>(b)];
          const int64_t r = pairs[p];
          const data::UserIndex u = pair_user[p];
          rows.push_back(u);
          int64_t c = 0;
          int64_t hi = offsets[u + 1];  // context rows: [offsets[u], hi) minus r, newest first
          if (prefix) {
            const int64_t j = r - offsets[u];
            hi = offsets[u] + static_cast<int64_t>(
                                  core::uniform_index(rng, static_cast<uint64_t>(std::min(j, o_.max_support) + 1)));
          }
          for (int64_t q = hi - 1; q >= offsets[u] && c < H; --q) {
            if (q == r) continue;
            ctx[static_cast<size_t>(b * H + c)] = local_of(items[static_cast<size_t>(q)]);
            ctx_mask[static_cast<size_t>(b * H + c)] = 1.0f;
            ++c;
          }
        }
        const int64_t S = o_.negatives;
        neg_local.clear();
        std::vector<ItemIndex> neg_item;
        for (int64_t s = 0; s < S; ++s) {
          const ItemIndex i = trained[core::uniform_index(rng, trained.size())];
          neg_item.push_back(i);
          neg_local.push_back(local_of(i));
        }
        const int64_t U = static_cast<int64_t>(uniq.size());
        for (auto& c : ctx)
          if (c < 0) c = U;  // padding row
        // Item inputs of the batch's unique items.
        keep.resize(static_cast<size_t>(U));
        for (auto& k : keep) k = core::uniform01(rng) >= o_.id_dropout ? 1.0f : 0.0f;
        auto x = net_->item_input(content_.inputs(uniq, keep));
        auto xp = torch::cat({x, torch::zeros({1, o_.dim})}, 0);
        auto ctx_t = torch::from_blob(ctx.data(), {B, H}, torch::kLong).clone();
        auto mask_t = torch::from_blob(ctx_mask.data(), {B, H, 1}, torch::kFloat).clone();
        auto pooled = (xp.index_select(0, ctx_t.view({-1})).view({B, H, o_.dim}) * mask_t).sum(1) /
                      mask_t.sum(1).clamp_min(1.0);
        ubags.gather(rows, uflat, ustarts);
        auto uvec = net_->user_out(pooled, long_tensor(uflat), long_tensor(ustarts), mask_t.sum(1));  // [B, dim]
        // Candidates: the batch's targets, then the sampled negatives.
        std::vector<int64_t> cand = targets_local;
        cand.insert(cand.end(), neg_local.begin(), neg_local.end());
        auto xc = x.index_select(0, long_tensor(cand));
        auto v = net_->item_out(xc);  // [B + S, dim]
        auto logits = torch::mm(uvec, v.t()) / o_.temperature + net_->item_bias(xc).unsqueeze(0);
        // Log-Q and accidental hits.
        bias.assign(static_cast<size_t>(B + S), 0.0f);
        if (o_.logq) {
          // Expected count of an item among the candidates: B draws by
          // popularity (the targets) plus S uniform draws over the trained items.
          const double uniform = static_cast<double>(S) / static_cast<double>(trained.size());
          auto expected = [&](ItemIndex i) {
            return static_cast<float>(std::log(static_cast<double>(B) * static_cast<double>(count[static_cast<size_t>(i)]) / total + uniform));
          };
          for (int64_t c = 0; c < B; ++c) bias[static_cast<size_t>(c)] = expected(target_item[static_cast<size_t>(c)]);
          for (int64_t s = 0; s < S; ++s) bias[static_cast<size_t>(B + s)] = expected(neg_item[static_cast<size_t>(s)]);
        }
        std::vector<ItemIndex> cand_item = target_item;
        cand_item.insert(cand_item.end(), neg_item.begin(), neg_item.end());
        std::vector<uint8_t> hit(static_cast<size_t>(B * (B + S)), 0);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t c = 0; c < B + S; ++c)
            hit[static_cast<size_t>(b * (B + S) + c)] =
                c != b && cand_item[static_cast<size_t>(c)] == target_item[static_cast<size_t>(b)];
        logits = logits - torch::from_blob(bias.data(), {1, B + S}, torch::kFloat).clone();
        logits = logits.masked_fill(torch::from_blob(hit.data(), {B, B + S}, torch::kUInt8).clone().to(torch::kBool),
                                    -1e9);
        auto loss = torch::nn::functional::cross_entropy(logits, torch::arange(B, torch::kLong));
        if (ft && ft->l2 > 0)
          for (size_t k = 0; k < params.size(); ++k) loss = loss + ft->l2 * (params[k] - pretrained[k]).pow(2).sum();
        if (ft) train::set_learning_rate(*optimizer, train::scheduled_lr(ft->lr, global_step, schedule));
        optimizer->zero_grad();
        loss.backward();
        optimizer->step();
        ++global_step;
        loss_sum += loss.item<double>();
        ++steps;
        for (int64_t i : uniq) local[static_cast<size_t>(i)] = -1;
      }
      epoch_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      reporter.epoch_done(epoch + 1, loss_sum / static_cast<double>(std::max<int64_t>(1, steps)),
                          static_cast<int64_t>(pairs.size()));
      if (validate) {
        const double recall = validation_recall(train, *topts.valid);
        monitor.info(fmt::format("{}: epoch {}: validation recall@20 {:.4f}", name(), epoch + 1, recall));
        stopping.update(recall, *net_, epoch + 1);
        if (stopping.should_stop()) break;
      }
    }
    net_->eval();
    if (validate && stopping.has_best()) {
      stopping.restore(*net_);
      monitor.info(fmt::format("{}: fine-tuning kept epoch {} (validation recall@20 {:.4f}; epoch 0 = the pretrained "
                               "weights)",
                               name(), stopping.best_epoch(), stopping.best()));
      finetune_info_ = {{"best_epoch", stopping.best_epoch()}, {"validation_recall_at_20", stopping.best()}};
    }
    if (ft && ft->mode == "lowrank") merge_adapters();
    for (auto& p : net_->parameters()) p.set_requires_grad(true);
    if (o_.meta_emb) meta_train_generator(train, ubags, topts.seed, monitor);
    refresh_item_vectors(0);
    info_ = {{"pairs", pairs.size()},
             {"trained_items", trained.size()},
             {"item_content", content_.describe()},
             {"user_features", user_space_.describe()}};
    if (!meta_info_.is_null()) info_["meta_emb"] = meta_info_;
    if (ft) {
      finetune_info_["mode"] = ft->mode;
      finetune_info_["matched"] = matched_info_;
      info_["finetune"] = finetune_info_;
    }
  }

  bool supports_finetune() const override { return true; }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    FEWREC_CHECK(net_, kInvalidArgument, "model `{}` is not trained", name());
    auto state = std::make_unique<TwoTowerState>();
    state->seen = history_item_set(context, num_items(), name());
    // The last `history` distinct-or-not items, newest first.
    std::vector<int64_t> ids;
    for (auto it = context.history.rbegin(); it != context.history.rend() && static_cast<int64_t>(ids.size()) < o_.history;
         ++it)
      ids.push_back(it->item);
    std::vector<int32_t> uf;
    user_space_.encode(context.features, uf);
    std::vector<int64_t> uflat(uf.begin(), uf.end()), ustarts{0};
    if (o_.adapt_mode != "none" && ids.size() >= 2) {
      state->vector = fine_tuned_user(ids, uflat);
      return state;
    }
    c10::InferenceMode guard;
    torch::Tensor pooled = torch::zeros({1, o_.dim});
    if (!ids.empty()) {
      auto x = item_inputs(ids);
      pooled = x.mean(0, /*keepdim=*/true);
    }
    auto u = net_->user_out(pooled, long_tensor(uflat), long_tensor(ustarts),
                            torch::full({1, 1}, static_cast<float>(ids.size())))
                 .contiguous();
    state->vector.assign(u.data_ptr<float>(), u.data_ptr<float>() + o_.dim);
    for (float& x : state->vector) x = static_cast<float>(x / o_.temperature);
    state->vector.push_back(1.0f);  // times the item's bias
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    const auto& v = dynamic_cast<const TwoTowerState&>(state).vector;
    const int32_t n = num_items();
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i] < 0 || items[i] >= n) throw_item_out_of_range(name(), items[i], n);
      out[i] = dot(item_vectors_.data() + static_cast<size_t>(items[i]) * width(), v.data());
    }
  }

  void score_all(const UserState& state, std::span<float> out) const override {
    FEWREC_CHECK(out.size() == static_cast<size_t>(num_items()), kInvalidArgument,
                 "model `{}`: score_all needs {} scores, got {}", name(), num_items(), out.size());
    const auto& v = dynamic_cast<const TwoTowerState&>(state).vector;
    for (size_t i = 0; i < out.size(); ++i) out[i] = dot(item_vectors_.data() + i * width(), v.data());
  }

  int32_t num_items() const override { return num_items_; }
  // The towers' dim plus one: the item's bias (the user's last component is 1).
  int32_t vector_dim() const override { return static_cast<int32_t>(width()); }
  std::span<const float> item_vectors() const override { return item_vectors_; }
  std::vector<float> user_vector(const UserState& state) const override {
    return dynamic_cast<const TwoTowerState&>(state).vector;
  }

  void add_items(const data::Catalogue& catalogue, ItemIndex first_new_item) override {
    FEWREC_CHECK(net_, kInvalidArgument, "model `{}` is not trained", name());
    const int32_t total = check_new_items(name(), catalogue, num_items_, first_new_item);
    if (total == num_items_) return;
    content_.add_items(catalogue);
    const int32_t first = num_items_;
    num_items_ = total;
    refresh_item_vectors(first);
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
    auto options = TwoTowerOptions::read(o);
    o.check_all_used();
    auto m = std::make_unique<TwoTowerModel>(spec, options);
    auto bad = [&](const std::string& what) {
      FEWREC_THROW(kCorrupt, "artifact {}: model `two_tower`: {}", reader.origin(), what);
    };
    const auto n = reader.get_array<int64_t>(prefix + "num_items");
    if (n.size() != 1 || n[0] < 1 || n[0] > INT32_MAX) bad("`num_items` is not a valid item count");
    m->num_items_ = static_cast<int32_t>(n[0]);
    const auto rows = reader.get_array<int64_t>(prefix + "id_rows");
    if (rows.size() != 1 || rows[0] < 1 || rows[0] > m->num_items_) bad("`id_rows` is not a valid row count");
    m->id_rows_ = static_cast<int32_t>(rows[0]);
    m->content_ = ItemContent(options.item_features, options.vocab, options.text, kName);
    m->content_.load(reader, prefix, m->num_items_);
    m->user_space_ = hybrid::FeatureSpace::load(reader, prefix + "user_space/");
    m->net_ = Net(m->id_rows_, m->content_.space().size(), m->user_space_.size(), m->content_.text_dim(), options);
    train::load_params(reader, prefix, *m->net_, "model `two_tower`");
    m->net_->gen_on = options.meta_emb;
    m->net_->eval();
    m->refresh_item_vectors(0);
    return m;
  }

  nlohmann::json summary() const override {
    nlohmann::json j = info_.is_null() ? nlohmann::json::object() : info_;
    j["items"] = num_items_;
    j["dim"] = o_.dim;
    if (!epoch_seconds_.empty()) {
      auto s = epoch_seconds_;
      std::sort(s.begin(), s.end());
      j["median_epoch_seconds"] = s[s.size() / 2];
    }
    return j;
  }

 private:
  static float dot(const float* a, const float* b, int64_t n) {
    float s = 0.0f;
    for (int64_t k = 0; k < n; ++k) s += a[k] * b[k];
    return s;
  }
  size_t width() const { return static_cast<size_t>(o_.dim) + 1; }
  float dot(const float* a, const float* b) const { return dot(a, b, static_cast<int64_t>(width())); }

  // adapt_mode: fine-tunes a copy of the user tower on the history as
  // leave-one-out tasks (pooled others -> the one left out, softmax over the
  // catalogue with the other history items masked; item vectors fixed) and
  // returns the user vector of the whole history, [u / temperature, 1].
  // `ids` is newest first; with adapt_early_stop and 4+ items the newest one
  // is the held-out slice that picks the best step (step 0 included).
  std::vector<float> fine_tuned_user(const std::vector<int64_t>& ids, const std::vector<int64_t>& uflat) const {
    // A copy of the shared model (the shared one is never modified).
    Net copy(id_rows_, content_.space().size(), user_space_.size(), content_.text_dim(), o_);
    {
      torch::NoGradGuard ng;
      auto src = net_->named_parameters(true);
      for (auto& p : copy->named_parameters(true)) p.value().copy_(src[p.key()]);
    }
    copy->gen_on = net_->gen_on;
    if (o_.adapt_mode == "user_lowrank") {
      // Both user MLP layers get an adapter y = W x + b + B A x (B = 0 at
      // first); W and b stay frozen. A is drawn from a fixed stream so a
      // context always gets the same vector.
      core::Rng rng(core::derive_seed(0x10a5, 7));
      auto wrap = [&](size_t at) {
        train::LowRankLinear lr(torch::nn::Linear(copy->user_mlp->ptr<torch::nn::LinearImpl>(at)), o_.adapt_rank);
        torch::NoGradGuard ng;
        auto acc = lr->a.accessor<float, 2>();
        const double sd = 1.0 / std::sqrt(static_cast<double>(lr->a.size(1)));
        for (int64_t r = 0; r < lr->a.size(0); ++r)
          for (int64_t c = 0; c < lr->a.size(1); ++c) acc[r][c] = static_cast<float>(sd * core::normal01(rng));
        return lr;
      };
      torch::nn::Sequential adapted(wrap(0), torch::nn::ReLU(), wrap(2));
      copy->user_mlp = copy->replace_module("user_mlp", adapted);
    }
    copy->eval();
    const int64_t n = static_cast<int64_t>(ids.size());
    const bool hold_out = o_.adapt_early_stop && n >= 4;
    const int64_t first = hold_out ? 1 : 0, m = n - first;  // the fine-tuning slice: ids[first..n)
    torch::Tensor x;
    {
      torch::NoGradGuard ng;
      x = copy->item_input(content_.inputs(ids)).detach();  // [n, dim]
    }
    const size_t w = width();
    auto items = torch::from_blob(const_cast<float*>(item_vectors_.data()),
                                  {num_items_, static_cast<int64_t>(w)}, torch::kFloat);
    auto v = items.narrow(1, 0, o_.dim), bias = items.select(1, o_.dim);
    auto xt = x.narrow(0, first, m);
    auto ids_t = long_tensor(std::vector<int64_t>(ids.begin() + first, ids.end()));
    // Pooled context of each left-out item: the mean of the others.
    auto pooled = (xt.sum(0, true) - xt) / static_cast<double>(m - 1);
    std::vector<int64_t> flat, starts;
    for (int64_t j = 0; j < m; ++j) {
      starts.push_back(static_cast<int64_t>(flat.size()));
      flat.insert(flat.end(), uflat.begin(), uflat.end());
    }
    auto flat_t = long_tensor(flat), starts_t = long_tensor(starts), ustart = long_tensor(std::vector<int64_t>{0});
    auto counts = torch::full({m, 1}, static_cast<float>(m - 1));
    // Mask: the other history items are not candidates for a row.
    auto mask = torch::zeros({m, num_items_});
    mask.index_put_({torch::arange(m).unsqueeze(1).expand({m, m}), ids_t.unsqueeze(0).expand({m, m})},
                    torch::full({m, m}, -1e9));
    mask.index_put_({torch::arange(m), ids_t}, torch::zeros({m}));
    train::FineTuneOptions fo;
    if (o_.adapt_mode == "user_head") {
      fo.mode = "head";
      fo.head = {"user_mlp.2."};
    } else if (o_.adapt_mode == "user_tower") {
      fo.mode = "head";  // the whole user side: the user MLP and the user feature embeddings
      fo.head = {"user_mlp.", "user_feat."};
    } else if (o_.adapt_mode == "user_bias") {
      fo.mode = "head";  // the biases of the user MLP (the item side's do not enter the user vector)
      fo.head = {"user_mlp.0.bias", "user_mlp.2.bias"};
    } else {
      fo.mode = "lowrank";
    }
    fo.lr = o_.adapt_lr;
    fo.steps = o_.adapt_steps;
    fo.warmup_steps = 2;
    fo.l2_to_pretrained = o_.adapt_l2;
    fo.eval_every = hold_out ? 1 : 0;
    fo.patience = 3;
    std::function<double()> metric;
    if (hold_out) {
      auto val_mask = torch::zeros({1, num_items_});
      val_mask.index_put_({torch::zeros({m}, torch::kLong), ids_t}, torch::full({m}, -1e9));
      const int64_t target = ids[0];
      metric = [&, val_mask, target] {
        torch::NoGradGuard ng;
        auto u = copy->user_out(xt.mean(0, true), long_tensor(uflat), ustart, torch::full({1, 1}, static_cast<float>(m)));
        auto logits = torch::mm(u, v.t()) / o_.temperature + bias.unsqueeze(0) + val_mask;
        return torch::log_softmax(logits, 1)[0][target].item<double>();
      };
    }
    train::fine_tune(
        *copy, fo,
        [&] {
          auto u = copy->user_out(pooled, flat_t, starts_t, counts);
          auto logits = torch::mm(u, v.t()) / o_.temperature + bias.unsqueeze(0) + mask;
          return torch::nn::functional::cross_entropy(logits, ids_t);
        },
        metric);
    torch::NoGradGuard ng;
    auto u = copy->user_out(x.mean(0, true), long_tensor(uflat), ustart, torch::full({1, 1}, static_cast<float>(n)))
                 .contiguous();
    std::vector<float> out(u.data_ptr<float>(), u.data_ptr<float>() + o_.dim);
    for (float& f : out) f = static_cast<float>(f / o_.temperature);
    out.push_back(1.0f);
    return out;
  }

  static int64_t count_numel(const std::vector<torch::Tensor>& ts) {
    int64_t n = 0;
    for (const auto& t : ts) n += t.numel();
    return n;
  }

  // Fine-tuning: copies the pretrained model's weights into the fresh net_:
  // id rows by external item id (items it does not have start at zero, i.e.
  // from their content), feature rows by feature name, every other
  // parameter when its shape matches (it must: same dim and hidden).
  void init_from_pretrained(const FineTuneFrom& ft, const data::Catalogue& cat, core::Monitor& monitor) {
    const auto* base = dynamic_cast<const TwoTowerModel*>(ft.model);
    FEWREC_CHECK(base && base->net_, kInvalidArgument,
                 "model `{}`: can only fine-tune a trained `two_tower` model, got `{}`", name(),
                 ft.model ? ft.model->name() : std::string("nothing"));
    FEWREC_CHECK(ft.item_ids && static_cast<int32_t>(ft.item_ids->size()) == base->num_items_, kInvalidArgument,
                 "model `{}`: fine-tuning needs the pretrained model's item ids ({} items)", name(), base->num_items_);
    FEWREC_CHECK(base->o_.dim == o_.dim && base->o_.hidden == o_.hidden, kInvalidArgument,
                 "model `{}`: the pretrained model has dim {} and hidden {}, this one {} and {}: they must match",
                 name(), base->o_.dim, base->o_.hidden, o_.dim, o_.hidden);
    torch::NoGradGuard ng;
    auto src = base->net_->named_parameters(true);
    // Feature rows by name.
    auto map_rows = [&](const hybrid::FeatureSpace& to, const hybrid::FeatureSpace& from, torch::Tensor dst,
                        const torch::Tensor& srcw) {
      std::unordered_map<std::string, int32_t> index;
      for (int32_t f = 0; f < from.size(); ++f) index.emplace(from.feature_name(f), f);
      int64_t hit = 0;
      for (int32_t f = 0; f < to.size(); ++f)
        if (auto it = index.find(to.feature_name(f)); it != index.end()) {
          dst[f].copy_(srcw[it->second]);
          ++hit;
        }
      return hit;
    };
    int64_t items = 0, item_feats = 0, user_feats = 0;
    for (auto& p : net_->named_parameters(true)) {
      const std::string& key = p.key();
      if (key == "id_emb.weight") {
        std::unordered_map<std::string, int32_t> index;
        for (int32_t j = 0; j < base->id_rows_; ++j) index.emplace((*ft.item_ids)[static_cast<size_t>(j)], j);
        p.value().zero_();
        const auto& w = src[key];
        for (int32_t i = 0; i < id_rows_; ++i)
          if (auto it = index.find(cat.items.id(i)); it != index.end()) {
            p.value()[i].copy_(w[it->second]);
            ++items;
          }
      } else if (key == "item_feat.weight" && src.contains(key)) {
        item_feats = map_rows(content_.space(), base->content_.space(), p.value(), src[key]);
      } else if (key == "user_feat.weight" && src.contains(key)) {
        user_feats = map_rows(user_space_, base->user_space_, p.value(), src[key]);
      } else if (src.contains(key) && src[key].sizes() == p.value().sizes()) {
        p.value().copy_(src[key]);
      }
    }
    matched_info_ = {{"items", items},
                     {"items_total", id_rows_},
                     {"item_features", item_feats},
                     {"item_features_total", content_.space().size()},
                     {"user_features", user_feats},
                     {"user_features_total", user_space_.size()}};
    monitor.info(fmt::format("{}: from the pretrained model: {} of {} item ids, {} of {} item features, {} of {} user "
                             "features",
                             name(), items, id_rows_, item_feats, content_.space().size(), user_feats,
                             user_space_.size()));
  }

  // lowrank fine-tuning: every Linear of both towers' MLPs gets an adapter
  // (train/finetune.h); merge_adapters() folds them back in (W += B A) so the
  // saved model has its usual shape.
  void add_adapters(int64_t rank) {
    auto wrap = [&](torch::nn::Sequential& seq, const std::string& name) {
      torch::nn::Sequential adapted(train::LowRankLinear(torch::nn::Linear(seq->ptr<torch::nn::LinearImpl>(0)), rank),
                                    torch::nn::ReLU(),
                                    train::LowRankLinear(torch::nn::Linear(seq->ptr<torch::nn::LinearImpl>(2)), rank));
      seq = net_->replace_module(name, adapted);
    };
    wrap(net_->item_mlp, "item_mlp");
    wrap(net_->user_mlp, "user_mlp");
  }
  void merge_adapters() {
    torch::NoGradGuard ng;
    auto unwrap = [&](torch::nn::Sequential& seq, const std::string& name) {
      auto merged = [&](size_t at) {
        auto lr = seq->ptr<train::LowRankLinearImpl>(at);
        lr->base->weight.add_(torch::mm(lr->b, lr->a) * lr->scale);
        return lr->base;
      };
      torch::nn::Sequential plain(merged(0), torch::nn::ReLU(), merged(2));
      seq = net_->replace_module(name, plain);
    };
    unwrap(net_->item_mlp, "item_mlp");
    unwrap(net_->user_mlp, "user_mlp");
  }

  // Fine-tuning's early-stopping metric: mean recall@20 of the validation
  // items of (at most 1000) users, ranked over the catalogue from their
  // training history (seen items excluded).
  double validation_recall(const data::Dataset& train, const data::Dataset& valid) {
    net_->eval();
    refresh_item_vectors(0);
    double total = 0;
    int64_t users = 0;
    std::vector<float> scores(static_cast<size_t>(num_items_));
    for (data::UserIndex u = 0; u < valid.num_users() && users < 1000; ++u) {
      const auto truth = valid.item_set(u);
      if (truth.empty() || u >= train.num_users()) continue;
      auto state = adapt(data::context_from_dataset(train, u));
      score_all(*state, scores);
      for (ItemIndex i : state->seen) scores[static_cast<size_t>(i)] = -std::numeric_limits<float>::infinity();
      std::vector<int32_t> order(scores.size());
      std::iota(order.begin(), order.end(), 0);
      const size_t k = std::min<size_t>(20, order.size());
      std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                        [&](int32_t a, int32_t b) { return scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)]; });
      int64_t hits = 0;
      for (size_t r = 0; r < k; ++r) hits += std::binary_search(truth.begin(), truth.end(), order[r]);
      total += static_cast<double>(hits) / static_cast<double>(std::min<size_t>(k, truth.size()));
      ++users;
    }
    net_->train();
    return users ? total / static_cast<double>(users) : 0.0;
  }

  // meta_emb: meta-trains net_->meta_gen with everything else frozen. A
  // meta-batch is `meta_items` trained items; for each, two disjoint sets
  // of at most `meta_shots` of its training rows: the cold set A and the
  // warm set B. The user side of a row is the user's other items (the
  // frozen tower, real id embeddings). The items' inputs are their content
  // plus the generated embedding e; the loss of a set is the softmax over
  // the meta-batch's items (a new item competes with other new items).
  // Loss = alpha L_A(e) + (1 - alpha) L_B(e - warm_lr * dL_A/de): good at
  // once, and after one update on a few users.
  void meta_train_generator(const data::Dataset& train, const Bags& ubags, uint64_t seed, core::Monitor& monitor) {
    const auto offsets = train.user_offsets();
    const auto items = train.item_column();
    std::vector<std::vector<int64_t>> rows_of(static_cast<size_t>(num_items_));
    for (data::UserIndex u = 0; u < train.num_users(); ++u)
      if (offsets[u + 1] - offsets[u] >= 2)  // a context must remain
        for (int64_t r = offsets[u]; r < offsets[u + 1]; ++r) rows_of[static_cast<size_t>(items[static_cast<size_t>(r)])].push_back(r);
    std::vector<int64_t> eligible;
    for (int32_t i = 0; i < num_items_; ++i)
      if (rows_of[static_cast<size_t>(i)].size() >= 2) eligible.push_back(i);
    keep_newest_items(train, eligible, o_.meta_recent, 4);
    double mean_rows = 0;
    for (int64_t i : eligible) mean_rows += static_cast<double>(rows_of[static_cast<size_t>(i)].size());
    mean_rows /= static_cast<double>(std::max<size_t>(1, eligible.size()));
    if (eligible.size() < 2) {
      monitor.info(fmt::format("{}: meta_emb: fewer than 2 items with 2+ users; the generator stays untrained", name()));
      net_->gen_on = true;
      return;
    }
    // A tenth of the items (at least 2 when there are 4+) validate: after
    // each epoch their cold loss decides which generator is kept; epoch 0 =
    // the zero generator, i.e. content alone.
    core::Rng rng(core::derive_seed(seed, 29));
    for (size_t i = eligible.size(); i > 1; --i) std::swap(eligible[i - 1], eligible[core::uniform_index(rng, i)]);
    std::vector<int64_t> held;
    if (eligible.size() >= 4) {
      const size_t nh = std::max<size_t>(2, std::min<size_t>(eligible.size() / 10, static_cast<size_t>(o_.meta_items)));
      held.assign(eligible.end() - static_cast<std::ptrdiff_t>(nh), eligible.end());
      eligible.resize(eligible.size() - nh);
    }
    std::vector<data::UserIndex> user_of_row(items.size());
    for (data::UserIndex u = 0; u < train.num_users(); ++u)
      for (int64_t r = offsets[u]; r < offsets[u + 1]; ++r) user_of_row[static_cast<size_t>(r)] = u;
    // Frozen inputs of every item (real ids), for the users' contexts.
    torch::Tensor x_all;
    {
      torch::NoGradGuard ng;
      std::vector<int64_t> all(static_cast<size_t>(num_items_));
      std::iota(all.begin(), all.end(), int64_t{0});
      x_all = torch::cat({item_inputs(all), torch::zeros({1, o_.dim})}, 0);  // + a padding row
    }
    for (auto& p : net_->parameters(true)) p.set_requires_grad(false);
    std::vector<torch::Tensor> gen_params = net_->meta_gen->parameters(true);
    for (auto& p : gen_params) p.set_requires_grad(true);
    train::OptimizerOptions oo;
    oo.name = "adam";
    oo.lr = o_.meta_lr;
    auto optimizer = train::make_optimizer(gen_params, oo);
    const int64_t H = o_.history, K = o_.meta_shots;
    std::vector<int64_t> ctx, uflat, ustarts, urows, target, batch;
    std::vector<float> cmask, nctx;
    // User vectors (frozen) of training rows `rs`: the row's user's other
    // items, newest first, at most `history`.
    auto user_vectors = [&](const std::vector<int64_t>& rs) {
      torch::NoGradGuard ng;
      const int64_t R = static_cast<int64_t>(rs.size());
      ctx.assign(static_cast<size_t>(R * H), num_items_);
      cmask.assign(static_cast<size_t>(R * H), 0.0f);
      nctx.assign(static_cast<size_t>(R), 0.0f);
      urows.clear();
      for (int64_t k = 0; k < R; ++k) {
        const int64_t r = rs[static_cast<size_t>(k)];
        const data::UserIndex u = user_of_row[static_cast<size_t>(r)];
        urows.push_back(u);
        int64_t c = 0;
        for (int64_t q = offsets[u + 1] - 1; q >= offsets[u] && c < H; --q) {
          if (q == r) continue;
          ctx[static_cast<size_t>(k * H + c)] = items[static_cast<size_t>(q)];
          cmask[static_cast<size_t>(k * H + c)] = 1.0f;
          ++c;
        }
        nctx[static_cast<size_t>(k)] = static_cast<float>(c);
      }
      auto ctx_t = long_tensor(ctx).view({R, H});
      auto mask_t = torch::from_blob(cmask.data(), {R, H, 1}, torch::kFloat).clone();
      auto pooled = (x_all.index_select(0, ctx_t.view({-1})).view({R, H, o_.dim}) * mask_t).sum(1) /
                    mask_t.sum(1).clamp_min(1.0);
      ubags.gather(urows, uflat, ustarts);
      return net_->user_out(pooled, long_tensor(uflat), long_tensor(ustarts),
                            torch::from_blob(nctx.data(), {R, 1}, torch::kFloat).clone());
    };
    const int64_t I = std::min<int64_t>(o_.meta_items, static_cast<int64_t>(eligible.size()));
    // A trained item stands for a new one: the features no other trained
    // item has act as its id, and a new item has none; they are left out.
    const std::vector<uint8_t> own = content_.features_of_one_known_item();
    const auto own_count = std::count(own.begin(), own.end(), uint8_t{1});
    // The meta-loss of a batch of items; `r` draws each item's two sets.
    auto batch_loss = [&](const std::vector<int64_t>& batch_items, core::Rng& r) {
      const int64_t n = static_cast<int64_t>(batch_items.size());
      std::vector<int64_t> rows_a, rows_b, tgt_a, tgt_b;
      for (int64_t j = 0; j < n; ++j) {
        auto rs = rows_of[static_cast<size_t>(batch_items[static_cast<size_t>(j)])];  // a copy to shuffle
        const auto avail = static_cast<int64_t>(rs.size());
        const int64_t take = meta_task_draws(avail, K, mean_rows, o_.meta_popularity);
        for (int64_t t = 0; t < take; ++t)
          std::swap(rs[static_cast<size_t>(t)],
                    rs[static_cast<size_t>(t) + core::uniform_index(r, rs.size() - static_cast<size_t>(t))]);
        const int64_t na = (take + 1) / 2;
        for (int64_t t = 0; t < take; ++t) {
          (t < na ? rows_a : rows_b).push_back(rs[static_cast<size_t>(t)]);
          (t < na ? tgt_a : tgt_b).push_back(j);
        }
      }
      auto ua = user_vectors(rows_a), ub = user_vectors(rows_b);
      const auto in = content_.inputs(batch_items, std::vector<float>(static_cast<size_t>(n), 0.0f), &own);
      torch::Tensor c;
      {
        torch::NoGradGuard ng;
        c = net_->content(n, in.flat, in.starts, in.text);
      }
      auto e = net_->meta_gen->forward(c);
      auto set_loss = [&](const torch::Tensor& u, const torch::Tensor& emb, const std::vector<int64_t>& tgt) {
        auto x = c + emb;
        auto logits = torch::mm(u, net_->item_out(x).t()) / o_.temperature + net_->item_bias(x).unsqueeze(0);
        return torch::nn::functional::cross_entropy(logits, long_tensor(tgt));
      };
      auto la = set_loss(ua, e, tgt_a);
      torch::Tensor loss = o_.meta_alpha * la;
      if (o_.meta_alpha < 1.0) {
        // The warm-up step: each item's embedding moves along the gradient
        // of its own cold rows (the sum over rows, not the mean).
        auto g = torch::autograd::grad({la * static_cast<double>(rows_a.size())}, {e}, {}, /*retain_graph=*/true,
                                       /*create_graph=*/true)[0];
        loss = loss + (1.0 - o_.meta_alpha) * set_loss(ub, e - o_.meta_warm_lr * g, tgt_b);
      }
      return loss;
    };
    // Validation: the held-out items in batches of `meta_items`, the same
    // draws every time; higher is better.
    auto validation = [&] {
      core::Rng r(core::derive_seed(seed, 31));
      double total = 0;
      int64_t batches = 0;
      for (size_t s0 = 0; s0 < held.size(); s0 += static_cast<size_t>(I)) {
        std::vector<int64_t> b(held.begin() + static_cast<std::ptrdiff_t>(s0),
                               held.begin() + static_cast<std::ptrdiff_t>(std::min(held.size(), s0 + static_cast<size_t>(I))));
        if (b.size() < 2) break;
        total += batch_loss(b, r).item<double>();
        ++batches;
      }
      return batches ? -total / static_cast<double>(batches) : 0.0;
    };
    train::EarlyStopping stopping(5);
    const bool validate = held.size() >= 2;
    if (validate) stopping.update(validation(), *net_->meta_gen, 0);
    train::EpochReporter reporter(monitor, name() + " meta_emb", o_.meta_epochs);
    for (int64_t epoch = 0; epoch < o_.meta_epochs; ++epoch) {
      for (size_t i = eligible.size(); i > 1; --i) std::swap(eligible[i - 1], eligible[core::uniform_index(rng, i)]);
      double loss_sum = 0.0;
      int64_t steps = 0;
      for (size_t start = 0; start < eligible.size(); start += static_cast<size_t>(I)) {
        const size_t end = std::min(eligible.size(), start + static_cast<size_t>(I));
        if (end - start < 2) break;
        batch.assign(eligible.begin() + static_cast<std::ptrdiff_t>(start), eligible.begin() + static_cast<std::ptrdiff_t>(end));
        auto loss = batch_loss(batch, rng);
        optimizer->zero_grad();
        loss.backward();
        optimizer->step();
        loss_sum += loss.item<double>();
        ++steps;
      }
      reporter.epoch_done(epoch + 1, loss_sum / static_cast<double>(std::max<int64_t>(1, steps)),
                          static_cast<int64_t>(eligible.size()));
      if (validate) {
        const double v = validation();
        monitor.info(fmt::format("{}: meta_emb epoch {}: validation meta-loss {:.4f}", name(), epoch + 1, -v));
        stopping.update(v, *net_->meta_gen, epoch + 1);
        if (stopping.should_stop()) break;
      }
    }
    if (validate && stopping.has_best()) {
      stopping.restore(*net_->meta_gen);
      monitor.info(fmt::format("{}: meta_emb kept epoch {} (validation meta-loss {:.4f}; epoch 0 = no generator)",
                               name(), stopping.best_epoch(), -stopping.best()));
      meta_info_ = {{"best_epoch", stopping.best_epoch()}, {"validation_meta_loss", -stopping.best()},
                    {"train_items", eligible.size()}, {"validation_items", held.size()},
                    {"own_features_left_out", own_count}};
    } else {
      meta_info_ = {{"best_epoch", o_.meta_epochs}, {"train_items", eligible.size()},
                    {"own_features_left_out", own_count}};
    }
    for (auto& p : net_->parameters(true)) p.set_requires_grad(true);
    net_->gen_on = true;
    net_->eval();
  }

  // Item-tower inputs of `ids` at inference (id part for trained items).
  torch::Tensor item_inputs(const std::vector<int64_t>& ids) const { return net_->item_input(content_.inputs(ids)); }

  // item_vectors_ rows: [v / 1, bias] with v the normalised item-tower
  // output (the user vector carries 1 / temperature and a final 1).
  void refresh_item_vectors(int32_t first) {
    c10::InferenceMode guard;
    const size_t w = width();
    item_vectors_.resize(static_cast<size_t>(num_items_) * w);
    const int32_t chunk = 4096;
    for (int32_t s = first; s < num_items_; s += chunk) {
      const int32_t e = std::min(num_items_, s + chunk);
      std::vector<int64_t> ids(static_cast<size_t>(e - s));
      std::iota(ids.begin(), ids.end(), int64_t{s});
      auto x = item_inputs(ids);
      auto v = torch::cat({net_->item_out(x), net_->item_bias(x).unsqueeze(1)}, 1).contiguous();
      std::copy(v.data_ptr<float>(), v.data_ptr<float>() + v.numel(),
                item_vectors_.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(s) * w));
    }
  }


  TwoTowerOptions o_;
  int32_t num_items_ = 0;
  int32_t id_rows_ = 0;  // id embeddings: the items at fit
  ItemContent content_;
  hybrid::FeatureSpace user_space_;
  mutable Net net_{nullptr};
  std::vector<float> item_vectors_;
  std::vector<double> epoch_seconds_;
  nlohmann::json info_;
  nlohmann::json finetune_info_ = nlohmann::json::object(), matched_info_, meta_info_;
};

std::unique_ptr<Model> create_two_tower(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = TwoTowerOptions::read(o);
  o.check_all_used();
  return std::make_unique<TwoTowerModel>(spec, options);
}

}  // namespace

void register_two_tower(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{kName, {}});
  TwoTowerOptions::read(docs);
  registry.add(ModelInfo{
      .name = kName,
      .description = "two-tower: user tower over history and attributes, item tower over id, features and pretrained "
                     "text (LibTorch, sampled softmax with log-Q); cold items from content",
      .options = docs.docs(),
      .create = create_two_tower,
      .load = TwoTowerModel::load,
  });
}

}  // namespace fewrec::models

// sasrec: self-attentive sequential recommendation (Kang & McAuley, 2018).
//
// Causal self-attention blocks over the last `maxlen` items of a user's
// history (learned positional embeddings, pre-attention layer norm, point-wise
// feed-forward, dropout), item embeddings shared between input and output.
// The representation at the last position is the user vector; an item's score
// is its dot product with it, so a new user with a few events is served by
// encoding them (adapt) and retrieval can use the item embeddings.
//
// Losses: bce (the paper: one sampled negative per position), sampled_softmax
// (`negatives` uniform negatives shared by the batch, cross-entropy against
// the positive) and softmax (full cross-entropy over the catalogue).
//
// Differences from the reference implementation, on purpose: padded keys are
// masked in attention (the reference lets real positions attend to padding)
// and batches are cut to their longest sequence; both only remove work on
// padding.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "builtin.h"
#include "common.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/threads.h"
#include "fewrec/train/train.h"

namespace fewrec::models {

namespace {

struct SasRecOptions {
  int64_t maxlen = 200;
  int64_t hidden = 50;
  int64_t blocks = 2;
  int64_t heads = 1;
  double dropout = 0.2;
  std::string loss = "bce";
  int64_t negatives = 256;
  std::string sampler = "uniform";
  int64_t epochs = 40;
  int64_t batch_size = 128;
  int64_t length_groups = 8;
  train::OptimizerOptions optimizer;
  int64_t warmup_steps = 0;
  std::string decay = "none";
  double clip_norm = 0.0;
  double l2_emb = 0.0;
  int64_t eval_every = 0;
  int64_t patience = 0;
  std::string checkpoint;
  int64_t threads = 0;

  static SasRecOptions read(DocumentedOptions& o) {
    SasRecOptions p;
    p.maxlen = o.get_int("maxlen", p.maxlen, "the last maxlen items of a history are encoded", 1, 4096);
    p.hidden = o.get_int("hidden", p.hidden, "embedding and hidden size", 1, 4096);
    p.blocks = o.get_int("blocks", p.blocks, "self-attention blocks", 1, 64);
    p.heads = o.get_int("heads", p.heads, "attention heads (must divide hidden)", 1, 64);
    p.dropout = o.get_double("dropout", p.dropout, "dropout on embeddings, attention weights and feed-forward", 0.0, 0.99);
    p.loss = o.get_choice("loss", p.loss, {"bce", "sampled_softmax", "softmax"},
                          "bce: one uniform negative per position (the paper); sampled_softmax: cross-entropy against "
                          "`negatives` uniform negatives shared by the batch; softmax: cross-entropy over every item");
    p.negatives = o.get_int("negatives", p.negatives, "sampled_softmax: negatives per batch", 1, 1 << 20);
    p.sampler = o.get_choice("sampler", p.sampler, {"uniform", "popularity"},
                             "sampled_softmax: negatives drawn uniformly, or by popularity^0.75 with the log-Q "
                             "correction (every logit minus the log of its item's sampling probability)");
    p.epochs = o.get_int("epochs", p.epochs, "passes over the users", 1, 100000);
    p.batch_size = o.get_int("batch_size", p.batch_size, "users (sequences) per step", 1, 1 << 20);
    p.length_groups = o.get_int("length_groups", p.length_groups,
                                "a batch is sorted by sequence length and cut into up to this many groups, each padded "
                                "only to its own longest sequence (same loss, less work on padding; 1 = off)",
                                1, 1024);
    p.optimizer.name = o.get_choice("optimizer", "adam", {"adam", "adamw", "adagrad", "sgd"}, "optimizer");
    p.optimizer.lr = o.get_double("learning_rate", 1e-3, "base learning rate", 0.0);
    p.optimizer.beta2 = o.get_double("beta2", 0.98, "adam/adamw second-moment decay (the paper: 0.98)", 0.0, 1.0);
    p.optimizer.weight_decay = o.get_double("weight_decay", 0.0, "weight decay on every parameter", 0.0);
    p.warmup_steps = o.get_int("warmup_steps", p.warmup_steps, "linear learning-rate warm-up steps", 0);
    p.decay = o.get_choice("decay", p.decay, {"none", "cosine"}, "learning-rate decay after warm-up (cosine: to 0 at the last step)");
    p.clip_norm = o.get_double("clip_norm", p.clip_norm, "clip the gradient norm to this (0 = off)", 0.0);
    p.l2_emb = o.get_double("l2_emb", p.l2_emb, "L2 penalty on the item embeddings of each batch", 0.0);
    p.eval_every = o.get_int("eval_every", p.eval_every,
                             "epochs between validation rounds (NDCG@10, full ranking, on the split's validation "
                             "set when there is one); 0 = never. The best epoch's weights are kept",
                             0);
    p.patience = o.get_int("patience", p.patience, "stop after this many validation rounds without a new best (0 = never)", 0);
    p.checkpoint = o.get_string("checkpoint", "", "checkpoint file written after every epoch and resumed from when present");
    p.threads = o.get_int("threads", p.threads, "LibTorch intra-op threads (0 = train.threads, else all cores)", 0, 1024);
    return p;
  }
};

// One self-attention block (pre-LN on the query, as the reference).
struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t hidden, int64_t heads, double dropout)
      : heads(heads),
        attn_norm(register_module("attn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).eps(1e-8)))),
        qkv(register_module("qkv", torch::nn::Linear(hidden, 3 * hidden))),
        out(register_module("out", torch::nn::Linear(hidden, hidden))),
        ffn_norm(register_module("ffn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).eps(1e-8)))),
        ffn1(register_module("ffn1", torch::nn::Linear(hidden, hidden))),
        ffn2(register_module("ffn2", torch::nn::Linear(hidden, hidden))),
        dropout(dropout) {}

  // x: [B, L, H]; mask: [B or 1, L, L] additive (0 or -inf).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) {
    const int64_t B = x.size(0), L = x.size(1), H = x.size(2), dh = H / heads;
    auto q_in = attn_norm(x);
    // Queries from the normalised input, keys and values from the raw input (as the reference).
    auto w = qkv->weight, b = qkv->bias;
    auto q = torch::nn::functional::linear(q_in, w.narrow(0, 0, H), b.narrow(0, 0, H));
    auto kv = torch::nn::functional::linear(x, w.narrow(0, H, 2 * H), b.narrow(0, H, 2 * H));
    auto k = kv.narrow(2, 0, H), v = kv.narrow(2, H, H);
    auto split = [&](const torch::Tensor& t) {
      return t.reshape({B, L, heads, dh}).permute({0, 2, 1, 3}).reshape({B * heads, L, dh});
    };
    auto qh = split(q), kh = split(k), vh = split(v);
    auto m = mask.size(0) == 1 ? mask : mask.repeat_interleave(heads, 0);
    auto scores = torch::baddbmm(m, qh, kh.transpose(1, 2), 1.0, 1.0 / std::sqrt(static_cast<double>(dh)));
    auto attn = torch::softmax(scores, -1);
    attn = torch::dropout(attn, dropout, is_training());
    auto ctx = torch::bmm(attn, vh).reshape({B, heads, L, dh}).permute({0, 2, 1, 3}).reshape({B, L, H});
    auto h = q_in + out(ctx);
    auto f = ffn_norm(h);
    auto y = ffn2(torch::dropout(torch::relu(ffn1(f)), dropout, is_training()));
    return f + torch::dropout(y, dropout, is_training());
  }

  int64_t heads;
  torch::nn::LayerNorm attn_norm;
  torch::nn::Linear qkv, out;
  torch::nn::LayerNorm ffn_norm;
  torch::nn::Linear ffn1, ffn2;
  double dropout;
};
TORCH_MODULE(Block);

struct NetImpl : torch::nn::Module {
  NetImpl(int64_t num_items, const SasRecOptions& o)
      : hidden(o.hidden), maxlen(o.maxlen), dropout(o.dropout),
        item_emb(register_module("item_emb", torch::nn::Embedding(num_items + 1, o.hidden))),
        pos_emb(register_module("pos_emb", torch::nn::Embedding(o.maxlen, o.hidden))),
        last_norm(register_module("last_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden}).eps(1e-8)))) {
    for (int64_t i = 0; i < o.blocks; ++i)
      blocks.push_back(register_module("block" + std::to_string(i), Block(o.hidden, o.heads, o.dropout)));
  }

  // seq: [B, L] item ids + 1 (0 = padding), left-padded; positions are
  // absolute in the maxlen window (the last column is position maxlen - 1).
  torch::Tensor forward(const torch::Tensor& seq) {
    const int64_t B = seq.size(0), L = seq.size(1);
    auto x = item_emb(seq) * std::sqrt(static_cast<double>(hidden));
    auto pos = torch::arange(maxlen - L, maxlen, torch::kLong);
    x = x + pos_emb(pos).unsqueeze(0);
    x = torch::dropout(x, dropout, is_training());
    auto keep = seq.ne(0).unsqueeze(-1).to(torch::kFloat);  // [B, L, 1]
    x = x * keep;
    // Additive mask: causal, padded keys masked, the diagonal always open
    // (padded queries would otherwise see nothing).
    auto causal = torch::ones({L, L}, torch::kBool).tril();
    auto allowed = causal.unsqueeze(0) & seq.ne(0).unsqueeze(1);  // [B, L(q), L(k)]
    allowed = allowed | torch::eye(L, torch::kBool).unsqueeze(0);
    auto mask = torch::zeros({B, L, L}).masked_fill(allowed.logical_not(), -1e9);
    for (auto& b : blocks) x = b->forward(x, mask) * keep;
    return last_norm(x);
  }

  int64_t hidden, maxlen;
  double dropout;
  torch::nn::Embedding item_emb, pos_emb;
  std::vector<Block> blocks;
  torch::nn::LayerNorm last_norm;
};
TORCH_MODULE(Net);

class SasRecState final : public UserState {
 public:
  std::vector<float> vector;  // [hidden]
  bool empty = false;         // no history: scored by training popularity
};

class SasRecModel final : public Model {
 public:
  SasRecModel(ModelSpec spec, SasRecOptions options) : Model(std::move(spec)), o_(std::move(options)) {
    FEWREC_CHECK(o_.hidden % o_.heads == 0, kInvalidArgument,
                 "model `sasrec`: heads ({}) must divide hidden ({})", o_.heads, o_.hidden);
  }

  void fit(const data::Dataset& train, const TrainOptions& topts, core::Monitor& monitor) override {
    const int threads = o_.threads > 0 ? static_cast<int>(o_.threads) : core::resolve_threads(topts.threads);
    train::set_threads(threads);
    torch::manual_seed(topts.seed);
    num_items_ = train.num_items();
    popularity_.assign(static_cast<size_t>(num_items_), 0.0f);
    for (ItemIndex i : train.item_column()) popularity_[static_cast<size_t>(i)] += 1.0f;
    net_ = Net(num_items_, o_);
    init_weights();

    // Training sequences: users with at least two items.
    const auto offsets = train.user_offsets();
    const auto items = train.item_column();
    std::vector<data::UserIndex> users;
    for (data::UserIndex u = 0; u < train.num_users(); ++u)
      if (offsets[u + 1] - offsets[u] >= 2) users.push_back(u);
    FEWREC_CHECK(!users.empty(), kInvalidArgument, "model `sasrec`: no user has two or more training interactions");
    std::vector<std::vector<ItemIndex>> user_sets(static_cast<size_t>(train.num_users()));
    for (auto u : users) user_sets[static_cast<size_t>(u)] = train.item_set(u);

    auto optimizer = train::make_optimizer(net_->parameters(), o_.optimizer);
    // Popularity sampler: probabilities proportional to count^0.75 (every
    // item at least one count, so none is impossible) and their logs.
    torch::Tensor sample_probs, log_probs;
    if (o_.loss == "sampled_softmax" && o_.sampler == "popularity") {
      std::vector<float> w(static_cast<size_t>(num_items_), 1.0f);
      for (ItemIndex i : items) w[static_cast<size_t>(i)] += 1.0f;
      for (float& x : w) x = std::pow(x, 0.75f);
      sample_probs = torch::from_blob(w.data(), {num_items_}, torch::kFloat).clone();
      sample_probs = sample_probs / sample_probs.sum();
      log_probs = sample_probs.log();
    }
    const int64_t steps_per_epoch = (static_cast<int64_t>(users.size()) + o_.batch_size - 1) / o_.batch_size;
    train::ScheduleOptions sched{o_.warmup_steps, o_.decay, steps_per_epoch * o_.epochs, 0.0, 1000, 0.5};
    int64_t start_epoch = 0;
    if (!o_.checkpoint.empty() && std::filesystem::exists(o_.checkpoint)) {
      start_epoch = train::load_checkpoint(o_.checkpoint, *net_, *optimizer);
      monitor.info(fmt::format("sasrec: resumed from {} after epoch {}", o_.checkpoint, start_epoch));
    }
    monitor.info(fmt::format("sasrec: {} training sequences, {} items, maxlen {}, hidden {}, {} blocks, {} heads, "
                             "{} loss, {} epochs, {} threads",
                             users.size(), num_items_, o_.maxlen, o_.hidden, o_.blocks, o_.heads, o_.loss, o_.epochs,
                             threads));

    core::Rng rng(core::derive_seed(topts.seed, 17));
    train::EarlyStopping stopping(o_.patience);
    train::EpochReporter reporter(monitor, "sasrec", o_.epochs);
    const bool validate = o_.eval_every > 0 && topts.valid && topts.valid->num_interactions() > 0;
    std::vector<int64_t> seq_buf, pos_buf, neg_buf;
    int64_t step = start_epoch * steps_per_epoch;
    epoch_seconds_.clear();
    for (int64_t epoch = start_epoch; epoch < o_.epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      net_->train();
      std::vector<data::UserIndex> order = users;
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[core::uniform_index(rng, i)]);
      double loss_sum = 0.0;
      int64_t batches = 0;
      for (size_t start = 0; start < order.size(); start += static_cast<size_t>(o_.batch_size)) {
        const size_t end = std::min(order.size(), start + static_cast<size_t>(o_.batch_size));
        // The batch's users sorted by input length (history minus its last
        // item, capped at maxlen) and cut into groups, each padded only to its
        // own longest input: the loss is the batch's mean over every target
        // position either way, so this only saves work on padding.
        std::vector<std::pair<int64_t, data::UserIndex>> batch;
        for (size_t i = start; i < end; ++i) {
          const auto u = order[i];
          batch.emplace_back(std::min<int64_t>(o_.maxlen, offsets[u + 1] - offsets[u] - 1), u);
        }
        std::sort(batch.begin(), batch.end());
        const size_t groups = std::max<size_t>(1, std::min<size_t>(o_.length_groups, batch.size() / 16));
        torch::Tensor negs;
        if (o_.loss == "sampled_softmax")
          negs = o_.sampler == "uniform" ? torch::randint(1, num_items_ + 1, {o_.negatives}, torch::kLong)
                                         : torch::multinomial(sample_probs, o_.negatives, /*replacement=*/true) + 1;
        torch::Tensor batch_loss = torch::zeros({});
        int64_t targets = 0;
        for (size_t g = 0; g < groups; ++g) {
          const size_t g0 = batch.size() * g / groups, g1 = batch.size() * (g + 1) / groups;
          if (g1 <= g0) continue;
          const int64_t B = static_cast<int64_t>(g1 - g0);
          const int64_t L = std::max<int64_t>(1, batch[g1 - 1].first);
          seq_buf.assign(static_cast<size_t>(B * L), 0);
          pos_buf.assign(static_cast<size_t>(B * L), 0);
          neg_buf.assign(o_.loss == "bce" ? static_cast<size_t>(B * L) : 0, 0);
          for (int64_t b = 0; b < B; ++b) {
            const auto [n, u] = batch[g0 + static_cast<size_t>(b)];
            const int64_t hi = offsets[u + 1];
            const auto& set = user_sets[static_cast<size_t>(u)];
            for (int64_t j = 0; j < n; ++j) {
              const int64_t col = L - n + j;
              const int64_t row = hi - 1 - n + j;  // input item; its target is row + 1
              seq_buf[static_cast<size_t>(b * L + col)] = items[static_cast<size_t>(row)] + 1;
              pos_buf[static_cast<size_t>(b * L + col)] = items[static_cast<size_t>(row + 1)] + 1;
              if (!neg_buf.empty()) {
                ItemIndex neg;
                do {
                  neg = static_cast<ItemIndex>(core::uniform_index(rng, static_cast<uint64_t>(num_items_)));
                } while (std::binary_search(set.begin(), set.end(), neg) && set.size() < static_cast<size_t>(num_items_));
                neg_buf[static_cast<size_t>(b * L + col)] = neg + 1;
              }
            }
          }
          // Cloned: the buffers are refilled for the next group while the
          // graph (embedding backward) still needs these indices.
          auto seq = torch::from_blob(seq_buf.data(), {B, L}, torch::kLong).clone();
          auto pos = torch::from_blob(pos_buf.data(), {B, L}, torch::kLong).clone();
          auto feats = net_->forward(seq);  // [B, L, H]
          auto valid = pos.ne(0);
          auto f = feats.index({valid});  // [N, H]
          auto p = pos.index({valid});
          targets += p.size(0);
          namespace F = torch::nn::functional;
          if (o_.loss == "bce") {
            auto neg = torch::from_blob(neg_buf.data(), {B, L}, torch::kLong).clone().index({valid});
            auto pl = (f * net_->item_emb(p)).sum(-1);
            auto nl = (f * net_->item_emb(neg)).sum(-1);
            auto sum = F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum);
            batch_loss = batch_loss + F::binary_cross_entropy_with_logits(pl, torch::ones_like(pl), sum) +
                       F::binary_cross_entropy_with_logits(nl, torch::zeros_like(nl), sum);
          } else if (o_.loss == "softmax") {
            auto logits = torch::mm(f, net_->item_emb->weight.narrow(0, 1, num_items_).t());
            batch_loss = batch_loss + F::cross_entropy(logits, p - 1, F::CrossEntropyFuncOptions().reduction(torch::kSum));
          } else {
            auto pl = (f * net_->item_emb(p)).sum(-1, /*keepdim=*/true);
            auto nl = torch::mm(f, net_->item_emb(negs).t());
            if (o_.sampler == "popularity") {
              pl = pl - log_probs.index_select(0, p - 1).unsqueeze(1);
              nl = nl - log_probs.index_select(0, negs - 1).unsqueeze(0);
            }
            // A sampled negative equal to the positive is not a negative.
            nl = nl.masked_fill(negs.unsqueeze(0).eq(p.unsqueeze(1)), -1e9);
            batch_loss = batch_loss + F::cross_entropy(torch::cat({pl, nl}, 1), torch::zeros({pl.size(0)}, torch::kLong),
                                                   F::CrossEntropyFuncOptions().reduction(torch::kSum));
          }
        }
        torch::Tensor loss = batch_loss / static_cast<double>(std::max<int64_t>(1, targets));
        if (o_.l2_emb > 0) loss = loss + o_.l2_emb * net_->item_emb->weight.pow(2).sum();
        train::set_learning_rate(*optimizer, train::scheduled_lr(o_.optimizer.lr, step, sched));
        optimizer->zero_grad();
        loss.backward();
        if (o_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(net_->parameters(), o_.clip_norm);
        optimizer->step();
        loss_sum += loss.item<double>();
        ++batches;
        ++step;
      }
      epoch_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (!o_.checkpoint.empty()) train::save_checkpoint(o_.checkpoint, *net_, *optimizer, epoch + 1);
      std::string extra;
      if (validate && ((epoch + 1) % o_.eval_every == 0 || epoch + 1 == o_.epochs)) {
        const double ndcg = validation_ndcg(train, *topts.valid);
        const bool best = stopping.update(ndcg, *net_, epoch + 1);
        extra = fmt::format("valid ndcg@10 {:.4f}{}", ndcg, best ? " (best)" : "");
      }
      reporter.epoch_done(epoch + 1, loss_sum / static_cast<double>(std::max<int64_t>(1, batches)),
                          static_cast<int64_t>(users.size()), extra);
      if (stopping.should_stop()) {
        monitor.info(fmt::format("sasrec: early stop after epoch {} (best epoch {})", epoch + 1, stopping.best_epoch()));
        break;
      }
    }
    if (stopping.has_best()) {
      stopping.restore(*net_);
      monitor.info(fmt::format("sasrec: kept the weights of epoch {} (valid ndcg@10 {:.4f})", stopping.best_epoch(),
                               stopping.best()));
    }
    net_->eval();
    refresh_item_vectors();
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    FEWREC_CHECK(net_, kInvalidArgument, "model `sasrec` is not trained");
    auto state = std::make_unique<SasRecState>();
    state->seen = history_item_set(context, num_items(), name());
    state->vector = encode(context.history);
    state->empty = context.history.empty();
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    const auto& st = dynamic_cast<const SasRecState&>(state);
    const auto& v = st.vector;
    const int32_t n = num_items();
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i] < 0 || items[i] >= n) throw_item_out_of_range(name(), items[i], n);
      if (st.empty) {
        out[i] = popularity_[static_cast<size_t>(items[i])];
        continue;
      }
      const float* row = item_vectors_.data() + static_cast<size_t>(items[i]) * static_cast<size_t>(o_.hidden);
      float s = 0.0f;
      for (int64_t j = 0; j < o_.hidden; ++j) s += row[j] * v[static_cast<size_t>(j)];
      out[i] = s;
    }
  }

  void score_all(const UserState& state, std::span<float> out) const override {
    FEWREC_CHECK(out.size() == static_cast<size_t>(num_items()), kInvalidArgument,
                 "model `sasrec`: score_all needs {} scores, got {}", num_items(), out.size());
    const auto& st = dynamic_cast<const SasRecState&>(state);
    if (st.empty) {
      std::copy(popularity_.begin(), popularity_.end(), out.begin());
      return;
    }
    const auto& v = st.vector;
    const size_t h = static_cast<size_t>(o_.hidden);
    for (size_t i = 0; i < out.size(); ++i) {
      const float* row = item_vectors_.data() + i * h;
      float s = 0.0f;
      for (size_t j = 0; j < h; ++j) s += row[j] * v[j];
      out[i] = s;
    }
  }

  int32_t num_items() const override { return num_items_; }
  int32_t vector_dim() const override { return static_cast<int32_t>(o_.hidden); }
  std::span<const float> item_vectors() const override { return item_vectors_; }
  std::vector<float> user_vector(const UserState& state) const override {
    return dynamic_cast<const SasRecState&>(state).vector;
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override {
    FEWREC_CHECK(net_, kInvalidArgument, "model `sasrec` is not trained");
    writer.put_i64(prefix + "num_items", num_items_);
    writer.put_array<float>(prefix + "popularity", popularity_);
    train::save_params(writer, prefix, *net_);
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader,
                                     const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = SasRecOptions::read(o);
    o.check_all_used();
    auto model = std::make_unique<SasRecModel>(spec, options);
    const auto n = reader.get_array<int64_t>(prefix + "num_items");
    if (n.size() != 1 || n[0] < 1 || n[0] > INT32_MAX)
      FEWREC_THROW(kCorrupt, "artifact {}: `{}num_items` is not a valid item count", reader.origin(), prefix);
    model->num_items_ = static_cast<int32_t>(n[0]);
    model->popularity_ = reader.get_array<float>(prefix + "popularity", static_cast<size_t>(model->num_items_));
    model->net_ = Net(model->num_items_, options);
    train::load_params(reader, prefix, *model->net_, "model `sasrec`");
    model->net_->eval();
    model->refresh_item_vectors();
    return model;
  }

  nlohmann::json summary() const override {
    nlohmann::json j{{"items", num_items_}, {"hidden", o_.hidden}, {"blocks", o_.blocks}, {"loss", o_.loss}};
    if (!epoch_seconds_.empty()) {
      auto s = epoch_seconds_;
      std::sort(s.begin(), s.end());
      j["median_epoch_seconds"] = s[s.size() / 2];
      j["epoch_seconds"] = epoch_seconds_;
    }
    return j;
  }

 private:
  void init_weights() {
    // Xavier-normal on every matrix, as the reference implementation.
    torch::NoGradGuard no_grad;
    for (auto& p : net_->named_parameters(true)) {
      if (p.value().dim() >= 2) torch::nn::init::xavier_normal_(p.value());
    }
  }

  void refresh_item_vectors() {
    auto w = net_->item_emb->weight.detach().narrow(0, 1, num_items_).contiguous();
    item_vectors_.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
  }

  // User vector from a history: the last position's output.
  std::vector<float> encode(const std::vector<data::Event>& history) const {
    std::vector<float> out(static_cast<size_t>(o_.hidden), 0.0f);
    if (history.empty()) return out;  // no history: zero vector (scores all 0; callers fall back)
    const int64_t n = std::min<int64_t>(o_.maxlen, static_cast<int64_t>(history.size()));
    std::vector<int64_t> seq(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      const auto item = history[history.size() - static_cast<size_t>(n) + static_cast<size_t>(j)].item;
      if (item < 0 || item >= num_items_) throw_item_out_of_range(name(), item, num_items_);
      seq[static_cast<size_t>(j)] = item + 1;
    }
    c10::InferenceMode guard;
    auto feats = net_->forward(torch::from_blob(seq.data(), {1, n}, torch::kLong));
    auto last = feats.select(1, n - 1).select(0, 0).contiguous();
    std::copy(last.data_ptr<float>(), last.data_ptr<float>() + o_.hidden, out.begin());
    return out;
  }

  // NDCG@10 of the validation items, full ranking excluding training items.
  double validation_ndcg(const data::Dataset& train, const data::Dataset& valid) {
    net_->eval();
    refresh_item_vectors();
    double sum = 0.0;
    int64_t users = 0;
    const auto voff = valid.user_offsets();
    const auto vitems = valid.item_column();
    std::vector<float> scores(static_cast<size_t>(num_items_));
    for (data::UserIndex u = 0; u < valid.num_users(); ++u) {
      if (voff[u + 1] == voff[u] || u >= train.num_users()) continue;
      auto ctx = data::context_from_dataset(train, u);
      if (ctx.history.empty()) continue;
      auto state = adapt(ctx);
      score_all(*state, scores);
      auto top = top_k(scores, 10, state->seen);
      std::vector<ItemIndex> truth(vitems.begin() + voff[u], vitems.begin() + voff[u + 1]);
      std::sort(truth.begin(), truth.end());
      double dcg = 0.0, idcg = 0.0;
      for (size_t r = 0; r < top.size(); ++r)
        if (std::binary_search(truth.begin(), truth.end(), top[r])) dcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
      for (size_t r = 0; r < std::min<size_t>(truth.size(), 10); ++r) idcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
      sum += idcg > 0 ? dcg / idcg : 0.0;
      ++users;
    }
    net_->train();
    return users ? sum / static_cast<double>(users) : 0.0;
  }

  SasRecOptions o_;
  int32_t num_items_ = 0;
  mutable Net net_{nullptr};  // forward() is not const in LibTorch; inference does not mutate it
  std::vector<float> item_vectors_;
  std::vector<double> epoch_seconds_;
  std::vector<float> popularity_;  // training interactions per item (empty histories)
};

std::unique_ptr<Model> create_sasrec(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = SasRecOptions::read(o);
  o.check_all_used();
  return std::make_unique<SasRecModel>(spec, options);
}

}  // namespace

void register_sasrec(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{"sasrec", {}});
  SasRecOptions::read(docs);
  registry.add(ModelInfo{
      .name = "sasrec",
      .description = "SASRec: causal self-attention over the last items of the history (LibTorch); new users by encoding their events",
      .options = docs.docs(),
      .create = create_sasrec,
      .load = SasRecModel::load,
  });
}

}  // namespace fewrec::models

// itemknn: item-based nearest neighbours on the binary user-item matrix.
//
//   sim(h, j) = c_hj / (n_h^alpha * n_j^(1 - alpha) + shrink)
//
// c_hj = users who interacted with both h and j, n_h = users of h; alpha 0.5
// is the cosine. Every item j keeps its `k` nearest neighbours (the k items h
// with the largest sim(h, j)), and a context scores j as the sum of sim(h, j)
// over its distinct history items h that are among j's neighbours — the
// classic item-based rule. The model needs no per-user parameters, so a new
// user with a history is served exactly like a known one.
//
// Co-occurrences are counted sparsely, item by item, through an item -> users
// inverted index (work = sum over users of |history|^2, memory O(items * k)),
// in parallel over items. The lists are stored transposed (by history item h:
// the items j that have h as a neighbour) so scoring a history touches only
// the history's rows.

#include <algorithm>
#include <cmath>

#include "builtin.h"
#include "common.h"
#include "fewrec/core/artifact.h"
#include "fewrec/core/monitor.h"
#include "fewrec/core/threads.h"

namespace fewrec::models {

namespace {

struct ItemKnnOptions {
  int64_t k = 100;
  double shrink = 5.0;
  double alpha = 0.5;
  bool normalize = false;
  double popularity_prior = 1e-6;

  static ItemKnnOptions read(DocumentedOptions& o) {
    ItemKnnOptions p;
    p.k = o.get_int("k", p.k, "neighbours kept per item (the most similar items it is scored from)", 1, INT32_MAX);
    p.shrink = o.get_double("shrink", p.shrink,
                            "added to the similarity denominator (damps pairs seen by few users)", 0.0);
    p.alpha = o.get_double("alpha", p.alpha,
                           "asymmetric cosine: divide c_hj by n_h^alpha * n_j^(1-alpha), h the history item (0.5 = cosine)", 0.0, 1.0);
    p.normalize = o.get_bool("normalize", p.normalize,
                             "divide each item's similarities by their sum over its k neighbours (rating-style; worse for top-N)");
    p.popularity_prior = o.get_double(
        "popularity_prior", p.popularity_prior,
        "adds this weight times item popularity (count / max count) to every score: the default only breaks ties "
        "and serves an empty history by popularity; larger values blend KNN with a popularity prior", 0.0);
    return p;
  }
};

class ItemKnnState final : public UserState {
 public:
  std::vector<float> scores;  // per item
};

class ItemKnnModel final : public Model {
 public:
  ItemKnnModel(ModelSpec spec, ItemKnnOptions options) : Model(std::move(spec)), options_(options) {}

  void fit(const data::Dataset& train, const TrainOptions& train_options, core::Monitor& monitor) override {
    const int32_t num_items = train.num_items();
    const int32_t num_users = train.num_users();

    // user -> distinct items (CSR); binary matrix, duplicates count once.
    std::vector<int64_t> user_offsets(static_cast<size_t>(num_users) + 1, 0);
    std::vector<ItemIndex> user_items;
    user_items.reserve(static_cast<size_t>(train.num_interactions()));
    for (UserIndex u = 0; u < num_users; ++u) {
      auto h = train.history(u);
      const size_t begin = user_items.size();
      user_items.insert(user_items.end(), h.items.begin(), h.items.end());
      std::sort(user_items.begin() + static_cast<std::ptrdiff_t>(begin), user_items.end());
      user_items.erase(std::unique(user_items.begin() + static_cast<std::ptrdiff_t>(begin), user_items.end()),
                       user_items.end());
      user_offsets[static_cast<size_t>(u) + 1] = static_cast<int64_t>(user_items.size());
    }

    // item -> users (inverted index); n_i = its length.
    std::vector<int64_t> item_offsets(static_cast<size_t>(num_items) + 1, 0);
    for (ItemIndex i : user_items) ++item_offsets[static_cast<size_t>(i) + 1];
    for (size_t i = 0; i < static_cast<size_t>(num_items); ++i) item_offsets[i + 1] += item_offsets[i];
    {
      int64_t max_count = 1;
      for (size_t i = 0; i < static_cast<size_t>(num_items); ++i)
        max_count = std::max(max_count, item_offsets[i + 1] - item_offsets[i]);
      prior_.resize(static_cast<size_t>(num_items));
      for (size_t i = 0; i < static_cast<size_t>(num_items); ++i)
        prior_[i] = static_cast<float>(options_.popularity_prior *
                                       static_cast<double>(item_offsets[i + 1] - item_offsets[i]) /
                                       static_cast<double>(max_count));
    }
    std::vector<UserIndex> item_users(user_items.size());
    {
      std::vector<int64_t> fill(item_offsets.begin(), item_offsets.end() - 1);
      for (UserIndex u = 0; u < num_users; ++u)
        for (int64_t r = user_offsets[u]; r < user_offsets[u + 1]; ++r)
          item_users[static_cast<size_t>(fill[static_cast<size_t>(user_items[r])]++)] = u;
    }

    // Denominator factors: n_h^alpha for the history item, n_j^(1-alpha) for the target.
    std::vector<double> source_norm(static_cast<size_t>(num_items)), target_norm(static_cast<size_t>(num_items));
    for (size_t i = 0; i < static_cast<size_t>(num_items); ++i) {
      const double n = static_cast<double>(item_offsets[i + 1] - item_offsets[i]);
      source_norm[i] = std::pow(n, options_.alpha);
      target_norm[i] = std::pow(n, 1.0 - options_.alpha);
    }

    const int threads = core::resolve_threads(train_options.threads);
    const size_t k = static_cast<size_t>(std::min<int64_t>(options_.k, std::max(0, num_items - 1)));
    monitor.info(fmt::format("itemknn: {} items, {} users, {} neighbours, {} threads", num_items, num_users,
                             options_.k, threads));

    struct Scratch {
      std::vector<int32_t> counts;  // c_hj for the current target j, indexed by h
      std::vector<ItemIndex> touched;
      std::vector<std::pair<float, ItemIndex>> candidates;
    };
    std::vector<Scratch> scratch(static_cast<size_t>(threads));
    // Per target item j: its k neighbours as (sim(h, j), h), unordered.
    std::vector<std::vector<std::pair<float, ItemIndex>>> lists(static_cast<size_t>(num_items));

    core::ProgressScope progress(monitor, "itemknn similarities", num_items);
    core::parallel_for(
        0, num_items, threads,
        [&](int64_t begin, int64_t end, int worker) {
          Scratch& s = scratch[static_cast<size_t>(worker)];
          if (s.counts.empty()) s.counts.assign(static_cast<size_t>(num_items), 0);
          for (int64_t j = begin; j < end; ++j) {
            s.touched.clear();
            for (int64_t a = item_offsets[j]; a < item_offsets[j + 1]; ++a) {
              const UserIndex u = item_users[static_cast<size_t>(a)];
              for (int64_t b = user_offsets[u]; b < user_offsets[u + 1]; ++b) {
                const ItemIndex h = user_items[static_cast<size_t>(b)];
                if (s.counts[static_cast<size_t>(h)]++ == 0) s.touched.push_back(h);
              }
            }
            s.candidates.clear();
            for (ItemIndex h : s.touched) {
              const int32_t c = s.counts[static_cast<size_t>(h)];
              s.counts[static_cast<size_t>(h)] = 0;
              if (h == j) continue;
              const double denom =
                  source_norm[static_cast<size_t>(h)] * target_norm[static_cast<size_t>(j)] + options_.shrink;
              const float sim = static_cast<float>(c / denom);
              if (sim > 0.0f) s.candidates.emplace_back(sim, h);
            }
            auto better = [](const std::pair<float, ItemIndex>& a, const std::pair<float, ItemIndex>& b) {
              return a.first > b.first || (a.first == b.first && a.second < b.second);
            };
            if (s.candidates.size() > k) {
              std::nth_element(s.candidates.begin(), s.candidates.begin() + static_cast<std::ptrdiff_t>(k),
                               s.candidates.end(), better);
              s.candidates.resize(k);
            }
            if (options_.normalize) {
              double sum = 0;
              for (const auto& c : s.candidates) sum += c.first;
              if (sum > 0)
                for (auto& c : s.candidates) c.first = static_cast<float>(c.first / sum);
            }
            lists[static_cast<size_t>(j)] = s.candidates;
          }
          progress.advance(end - begin);
        },
        /*grain=*/16);

    // Transpose into CSR by history item h: rows (j, sim(h, j)) for every j
    // that kept h as a neighbour, by increasing j.
    offsets_.assign(static_cast<size_t>(num_items) + 1, 0);
    for (const auto& list : lists)
      for (const auto& [sim, h] : list) ++offsets_[static_cast<size_t>(h) + 1];
    for (size_t h = 0; h < static_cast<size_t>(num_items); ++h) offsets_[h + 1] += offsets_[h];
    neighbors_.resize(static_cast<size_t>(offsets_.back()));
    similarities_.resize(static_cast<size_t>(offsets_.back()));
    {
      std::vector<int64_t> fill(offsets_.begin(), offsets_.end() - 1);
      for (size_t j = 0; j < lists.size(); ++j)
        for (const auto& [sim, h] : lists[j]) {
          const auto at = static_cast<size_t>(fill[static_cast<size_t>(h)]++);
          neighbors_[at] = static_cast<ItemIndex>(j);
          similarities_[at] = sim;
        }
    }
  }

  std::unique_ptr<UserState> adapt(const data::UserContext& context) const override {
    auto state = std::make_unique<ItemKnnState>();
    state->seen = history_item_set(context, num_items(), name());
    state->scores.assign(prior_.begin(), prior_.end());
    for (ItemIndex h : state->seen)
      for (int64_t r = offsets_[static_cast<size_t>(h)]; r < offsets_[static_cast<size_t>(h) + 1]; ++r)
        state->scores[static_cast<size_t>(neighbors_[static_cast<size_t>(r)])] +=
            similarities_[static_cast<size_t>(r)];
    return state;
  }

  void score(const UserState& state, std::span<const ItemIndex> items, std::span<float> out) const override {
    check_score_buffers(name(), items.size(), out.size());
    const auto& scores = state_scores(state);
    const int32_t n = num_items();
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i] < 0 || items[i] >= n) throw_item_out_of_range(name(), items[i], n);
      out[i] = scores[static_cast<size_t>(items[i])];
    }
  }

  void score_all(const UserState& state, std::span<float> out) const override {
    const auto& scores = state_scores(state);
    FEWREC_CHECK(out.size() == scores.size(), kInvalidArgument,
                 "model `{}`: score_all needs an output of {} scores (one per item), got {}", name(),
                 scores.size(), out.size());
    std::copy(scores.begin(), scores.end(), out.begin());
  }

  int32_t num_items() const override {
    return offsets_.empty() ? 0 : static_cast<int32_t>(offsets_.size() - 1);
  }

  void save(core::ArtifactWriter& writer, const std::string& prefix) const override {
    writer.put_array<int64_t>(prefix + "offsets", offsets_);
    writer.put_array<int32_t>(prefix + "neighbors", neighbors_);
    writer.put_array<float>(prefix + "similarities", similarities_);
    writer.put_array<float>(prefix + "prior", prior_);
  }

  static std::unique_ptr<Model> load(const ModelSpec& spec, const core::ArtifactReader& reader,
                                     const std::string& prefix) {
    DocumentedOptions o(spec);
    auto options = ItemKnnOptions::read(o);
    o.check_all_used();
    auto model = std::make_unique<ItemKnnModel>(spec, options);
    const std::string& origin = reader.origin();
    model->offsets_ = reader.get_array<int64_t>(prefix + "offsets");
    auto& offsets = model->offsets_;
    if (offsets.empty() || offsets.size() - 1 > static_cast<size_t>(INT32_MAX))
      FEWREC_THROW(kCorrupt, "artifact {}: section `{}offsets` has {} values, expected items + 1", origin, prefix,
                   offsets.size());
    if (offsets.front() != 0)
      FEWREC_THROW(kCorrupt, "artifact {}: section `{}offsets` does not start at 0", origin, prefix);
    for (size_t i = 1; i < offsets.size(); ++i)
      if (offsets[i] < offsets[i - 1])
        FEWREC_THROW(kCorrupt, "artifact {}: section `{}offsets` decreases at item {}", origin, prefix, i - 1);
    const auto total = static_cast<size_t>(offsets.back());
    model->neighbors_ = reader.get_array<int32_t>(prefix + "neighbors", total);
    model->similarities_ = reader.get_array<float>(prefix + "similarities", total);
    const auto n = static_cast<int32_t>(offsets.size() - 1);
    model->prior_ = reader.get_array<float>(prefix + "prior", static_cast<size_t>(n));
    for (float p : model->prior_)
      if (!std::isfinite(p))
        FEWREC_THROW(kCorrupt, "artifact {}: section `{}prior` holds a non-finite value", origin, prefix);
    for (size_t r = 0; r < total; ++r) {
      if (model->neighbors_[r] < 0 || model->neighbors_[r] >= n)
        FEWREC_THROW(kCorrupt, "artifact {}: section `{}neighbors` holds item {} outside the {} items", origin,
                     prefix, model->neighbors_[r], n);
      if (!std::isfinite(model->similarities_[r]))
        FEWREC_THROW(kCorrupt, "artifact {}: section `{}similarities` holds a non-finite value", origin, prefix);
    }
    return model;
  }

  nlohmann::json summary() const override {
    const int32_t n = num_items();
    int64_t with_neighbours = 0;
    for (int32_t i = 0; i < n; ++i)
      with_neighbours += offsets_[static_cast<size_t>(i) + 1] > offsets_[static_cast<size_t>(i)];
    return {{"items", n},
            {"items_in_some_neighbourhood", with_neighbours},
            {"neighbours", neighbors_.size()},
            {"mean_neighbours", n > 0 ? static_cast<double>(neighbors_.size()) / n : 0.0},
            {"k", options_.k},
            {"shrink", options_.shrink},
            {"alpha", options_.alpha},
            {"normalize", options_.normalize}};
  }

 private:
  const std::vector<float>& state_scores(const UserState& state) const {
    const auto* s = dynamic_cast<const ItemKnnState*>(&state);
    FEWREC_CHECK(s != nullptr && s->scores.size() == static_cast<size_t>(num_items()), kInvalidArgument,
                 "model `{}`: the user state was not made by this model's adapt()", name());
    return s->scores;
  }

  ItemKnnOptions options_;
  // Transposed neighbour lists (CSR): rows [offsets_[h], offsets_[h+1]) hold
  // the items j that have h among their k neighbours, with sim(h, j).
  std::vector<int64_t> offsets_;
  std::vector<ItemIndex> neighbors_;
  std::vector<float> similarities_;
  std::vector<float> prior_;  // popularity_prior * count / max count, per item
};

std::unique_ptr<Model> create_itemknn(const ModelSpec& spec) {
  DocumentedOptions o(spec);
  auto options = ItemKnnOptions::read(o);
  o.check_all_used();
  return std::make_unique<ItemKnnModel>(spec, options);
}

}  // namespace

void register_itemknn(ModelRegistry& registry) {
  DocumentedOptions docs(ModelSpec{"itemknn", {}});
  ItemKnnOptions::read(docs);
  registry.add(ModelInfo{
      .name = "itemknn",
      .description = "item-based k-nearest neighbours (cosine on co-occurrences); serves new users from their history",
      .options = docs.docs(),
      .create = create_itemknn,
      .load = ItemKnnModel::load,
  });
}

}  // namespace fewrec::models

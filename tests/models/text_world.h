// A synthetic world of items whose only content is a title of topic words,
// and a tiny in-memory GloVe over those words (encoder `test-glove`), shared by
// the tests of the models that read pretrained text vectors (hybrid,
// two_tower): no test depends on downloaded vectors.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "fewrec/core/monitor.h"
#include "fewrec/core/rng.h"
#include "fewrec/data/synthetic.h"
#include "fewrec/models/registry.h"
#include "fewrec/text/encoder.h"
#include "fewrec/text/glove.h"

namespace fewrec::models::testing {

constexpr int64_t kGloveDim = 16;

inline std::unique_ptr<Model> fitted(const ModelSpec& spec, const data::Dataset& ds, int threads = 1) {
  auto m = model_registry().create(spec);
  TrainOptions o;
  o.threads = threads;
  o.seed = 42;
  m->fit(ds, o, core::null_monitor());
  return m;
}
inline std::unique_ptr<Model> fitted(const std::string& spec, const data::Dataset& ds, int threads = 1) {
  return fitted(ModelSpec::parse(spec), ds, threads);
}

inline std::vector<float> scores_of(const Model& m, const data::UserContext& ctx) {
  auto state = m.adapt(ctx);
  std::vector<float> out(static_cast<size_t>(m.num_items()));
  m.score_all(*state, out);
  return out;
}

inline double auc(const std::vector<float>& s, const std::vector<ItemIndex>& pos, const std::vector<ItemIndex>& neg) {
  if (pos.empty() || neg.empty()) return -1;
  double wins = 0;
  for (ItemIndex p : pos)
    for (ItemIndex n : neg) wins += s[p] > s[n] ? 1.0 : s[p] == s[n] ? 0.5 : 0.0;
  return wins / (static_cast<double>(pos.size()) * static_cast<double>(neg.size()));
}

inline data::SyntheticOptions small_world() {
  data::SyntheticOptions o;
  o.num_users = 600;
  o.num_items = 300;
  o.mean_interactions = 30;
  o.seed = 11;
  return o;
}

// A tiny GloVe over the synthetic topic words: each topic has a random
// centre, its words lie near it. Registered once as encoder `test-glove`
// (with the real glove encoder's options).
inline void register_test_glove() {
  auto& registry = text::encoder_registry();
  if (registry.contains("test-glove")) return;
  core::Rng rng(3);
  std::vector<std::string> words;
  std::vector<float> vectors;
  for (const auto& [topic, topic_words] : data::synthetic_topics()) {
    std::vector<float> centre(kGloveDim);
    for (float& x : centre) x = static_cast<float>(core::uniform01(rng) * 2.0 - 1.0);
    for (const auto& w : topic_words) {
      words.push_back(w);
      for (float c : centre) vectors.push_back(c + 0.3f * static_cast<float>(core::uniform01(rng) - 0.5));
    }
  }
  auto glove = std::make_shared<const text::GloveVectors>(words, vectors, kGloveDim, "test-vectors");
  registry.add({"test-glove", "tiny GloVe over the synthetic topic words (tests)", registry.get("glove").options,
                [glove](const std::map<std::string, std::string>& options) {
                  return text::make_glove_encoder(glove, options);
                }});
}
// Every word weighs the same and no direction is removed: in a vocabulary of
// a few topics the first principal direction is a topic's.
constexpr const char* kTestGlove = "text_encoder=test-glove,text_options=sif_a=0;remove_pc=false";

// The synthetic interactions with a single item feature, a "title" of four
// words of the item's topic. With `disjoint_words` the titles of held-out
// (cold) items use the other half of the topic's words, which no trained
// title has: word features cannot link them, pretrained vectors can.
struct TextWorld {
  data::SyntheticTruth truth;
  data::Dataset full, train;
  std::vector<ItemIndex> cold;  // every fifth item: no training interaction
};

inline std::string title_of(int32_t topic, bool second_half, core::Rng& rng) {
  const auto& words = data::synthetic_topics()[static_cast<size_t>(topic)].second;
  const size_t half = words.size() / 2;
  std::string title;
  for (int k = 0; k < 4; ++k) {
    if (!title.empty()) title += ' ';
    title += words[(second_half ? half : 0) + core::uniform_index(rng, half)];
  }
  return title;
}

inline TextWorld text_world(bool disjoint_words) {
  TextWorld w;
  const auto syn = data::make_synthetic(small_world(), &w.truth);
  data::DatasetBuilder b;
  for (UserIndex u = 0; u < syn.num_users(); ++u) b.user(syn.users().id(u));
  core::Rng rng(17);
  for (ItemIndex i = 0; i < syn.num_items(); ++i) {
    b.item(syn.items().id(i));
    const bool cold = i % 5 == 0;
    const bool second_half = disjoint_words ? cold : core::uniform01(rng) < 0.5;
    b.item_features().set_text(i, "title", title_of(w.truth.item_topic[static_cast<size_t>(i)], second_half, rng));
  }
  for (UserIndex u = 0; u < syn.num_users(); ++u) {
    const auto h = syn.history(u);
    for (size_t k = 0; k < h.size(); ++k) b.add(u, h.items[k], h.timestamps[k], h.values[k]);
  }
  w.full = std::move(b).build("text-world");
  for (ItemIndex i = 0; i < w.full.num_items(); i += 5) w.cold.push_back(i);
  w.train = w.full.filter([](const data::Interaction& r) { return r.item % 5 != 0; });
  return w;
}

// Mean over users with cold items of the AUC of their cold items against
// the other cold items (the cold-items candidate protocol).
inline double cold_auc(const Model& m, const TextWorld& w) {
  double total = 0;
  int users = 0;
  for (UserIndex u = 0; u < w.full.num_users(); ++u) {
    std::vector<ItemIndex> pos, neg;
    const auto items = w.full.item_set(u);
    for (ItemIndex c : w.cold) (std::binary_search(items.begin(), items.end(), c) ? pos : neg).push_back(c);
    if (pos.empty()) continue;
    total += auc(scores_of(m, data::context_from_dataset(w.train, u)), pos, neg);
    ++users;
  }
  return total / users;
}

// `ds`'s catalogue plus, per topic, three items whose only content is a
// title of the topic's second-half words; *topic_of_new gets their topics.
inline data::Dataset grown(const TextWorld& w, std::vector<int32_t>* topic_of_new, int32_t per_topic = 3) {
  data::DatasetBuilder b;
  for (UserIndex u = 0; u < w.full.num_users(); ++u) b.user(w.full.users().id(u));
  const auto& title = *w.full.item_features().find("title");
  for (ItemIndex i = 0; i < w.full.num_items(); ++i) {
    b.item(w.full.items().id(i));
    b.item_features().set_text(i, "title", title.texts[static_cast<size_t>(i)]);
  }
  core::Rng rng(23);
  const auto topics = *std::max_element(w.truth.item_topic.begin(), w.truth.item_topic.end()) + 1;
  for (int32_t t = 0; t < topics; ++t)
    for (int32_t k = 0; k < per_topic; ++k) {
      const ItemIndex i = b.item("new-" + std::to_string(t) + "-" + std::to_string(k));
      b.item_features().set_text(i, "title", title_of(t, /*second_half=*/true, rng));
      if (topic_of_new) topic_of_new->push_back(t);
    }
  return std::move(b).build("grown");
}

}  // namespace fewrec::models::testing

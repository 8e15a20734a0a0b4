#include "fewrec/data/context.h"

#include <cmath>

#include "fewrec/core/error.h"

namespace fewrec::data {

std::vector<ItemIndex> UserContext::history_items() const {
  std::vector<ItemIndex> out;
  out.reserve(history.size());
  for (const auto& e : history) out.push_back(e.item);
  return out;
}

UserFeatures user_features_of(const Catalogue& catalogue, UserIndex user) {
  UserFeatures f;
  const auto& table = catalogue.user_features;
  if (user < 0 || user >= table.rows()) return f;
  const auto r = static_cast<size_t>(user);
  for (const auto& c : table.columns()) {
    switch (c.kind) {
      case FeatureKind::kCategorical:
        if (c.codes[r] >= 0) f.categorical[c.name] = c.vocab.id(c.codes[r]);
        break;
      case FeatureKind::kNumeric:
        if (!std::isnan(c.numbers[r])) f.numeric[c.name] = c.numbers[r];
        break;
      case FeatureKind::kTags: {
        auto tags = c.tags_of(user);
        if (tags.empty()) break;
        auto& out = f.tags[c.name];
        for (auto t : tags) out.push_back(c.vocab.id(t));
        break;
      }
      case FeatureKind::kText:
        if (!c.texts[r].empty()) f.text[c.name] = c.texts[r];
        break;
    }
  }
  return f;
}

UserContext context_from_dataset(const Dataset& ds, UserIndex user, bool known) {
  FEWREC_CHECK(user >= 0 && user < ds.num_users(), kInvalidArgument,
               "user index {} outside the dataset ({} users)", user, ds.num_users());
  UserContext ctx;
  if (known) ctx.user = user;
  auto h = ds.history(user);
  ctx.history.reserve(h.size());
  for (size_t i = 0; i < h.size(); ++i)
    ctx.history.push_back(Event{h.items[i], h.timestamps[i], h.values[i], h.events[i], h.weights[i]});
  ctx.features = user_features_of(ds.catalogue(), user);
  return ctx;
}

}  // namespace fewrec::data

// Helpers shared by the built-in models (internal to the models layer).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/dataset.h"
#include "fewrec/models/registry.h"

namespace fewrec::models {

// OptionReader that also records each option's default and doc, so a model's
// options are declared once (in its read function) and both parsed from a
// spec and listed by `fewrec models`.
class DocumentedOptions {
 public:
  explicit DocumentedOptions(const ModelSpec& spec)
      : reader_(spec.options, fmt::format("model `{}`", spec.name)), owner_name_(spec.name) {}

  int64_t get_int(const std::string& key, int64_t def, std::string_view doc,
                  std::optional<int64_t> min = std::nullopt, std::optional<int64_t> max = std::nullopt) {
    docs_.push_back({key, std::to_string(def), std::string(doc)});
    return reader_.get_int(key, def, doc, min, max);
  }
  double get_double(const std::string& key, double def, std::string_view doc,
                    std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt) {
    docs_.push_back({key, fmt::format("{}", def), std::string(doc)});
    return reader_.get_double(key, def, doc, min, max);
  }
  bool get_bool(const std::string& key, bool def, std::string_view doc) {
    docs_.push_back({key, def ? "true" : "false", std::string(doc)});
    return reader_.get_bool(key, def, doc);
  }
  // A free-form string option (the caller validates it).
  std::string get_string(const std::string& key, const std::string& def, std::string_view doc) {
    docs_.push_back({key, def, std::string(doc)});
    return reader_.get_string(key, def, doc);
  }
  // A string option restricted to `choices` (error lists them).
  std::string get_choice(const std::string& key, const std::string& def,
                         const std::vector<std::string>& choices, std::string_view doc) {
    docs_.push_back({key, def, std::string(doc)});
    std::string v = reader_.get_string(key, def, doc);
    if (std::find(choices.begin(), choices.end(), v) == choices.end())
      FEWREC_THROW(kInvalidArgument, "model `{}`: option `{}` must be one of {}, got `{}`", owner(), key,
                   core::join(choices, ", "), core::excerpt(v));
    return v;
  }
  // Unknown option -> kInvalidArgument listing the known ones.
  void check_all_used() const { reader_.check_all_used(); }
  const std::vector<OptionDoc>& docs() const { return docs_; }
  const std::map<std::string, std::string>& effective() const { return reader_.effective(); }

 private:
  const std::string& owner() const { return owner_name_; }
  core::OptionReader reader_;
  std::vector<OptionDoc> docs_;
  std::string owner_name_;
};

// Sorted, de-duplicated items of a context's history; an item outside
// [0, num_items) is kInvalidArgument naming the model.
inline std::vector<ItemIndex> history_item_set(const data::UserContext& context, int32_t num_items,
                                               std::string_view model) {
  std::vector<ItemIndex> items;
  items.reserve(context.history.size());
  for (const auto& e : context.history) {
    if (e.item < 0 || e.item >= num_items)
      FEWREC_THROW(kInvalidArgument, "model `{}`: history item index {} is outside the catalogue ({} items)",
                   model, e.item, num_items);
    items.push_back(e.item);
  }
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());
  return items;
}

// kInvalidArgument when score() is called with mismatched buffers.
inline void check_score_buffers(std::string_view model, size_t items, size_t out) {
  if (items != out)
    FEWREC_THROW(kInvalidArgument, "model `{}`: score() got {} items but an output of {} scores", model,
                 items, out);
}

// Keeps the newest `fraction` of `items` (at least `min_keep`) by their
// first event in `train` (ties: the higher index first), sorted by index.
// The meta-learners learn from them what new items are like.
template <class Index>
void keep_newest_items(const data::Dataset& train, std::vector<Index>& items, double fraction, size_t min_keep) {
  if (fraction >= 1.0 || items.size() <= min_keep) return;
  const auto col = train.item_column();
  const auto times = train.timestamp_column();
  std::vector<int64_t> first(static_cast<size_t>(train.num_items()), std::numeric_limits<int64_t>::max());
  for (size_t r = 0; r < col.size(); ++r)
    first[static_cast<size_t>(col[r])] = std::min(first[static_cast<size_t>(col[r])], times[r]);
  std::sort(items.begin(), items.end(), [&](Index a, Index b) {
    const auto ta = first[static_cast<size_t>(a)], tb = first[static_cast<size_t>(b)];
    return ta != tb ? ta > tb : a > b;
  });
  items.resize(std::max<size_t>(min_keep, static_cast<size_t>(std::llround(fraction * static_cast<double>(items.size())))));
  std::sort(items.begin(), items.end());
}

// meta_emb: how many of an item's `available` users a task draws (split
// into its cold and warm sets): 2 x shots, or with `by_popularity` 2 x shots
// x available / mean_available (at least 2), never more than available.
inline int64_t meta_task_draws(int64_t available, int64_t shots, double mean_available, bool by_popularity) {
  if (!by_popularity) return std::min<int64_t>(2 * shots, available);
  return std::clamp<int64_t>(
      std::llround(2.0 * static_cast<double>(shots) * static_cast<double>(available) / mean_available), 2, available);
}

// add_items' preconditions: the new items start right after the model's
// `model_items` and the catalogue has at least that many items; anything else
// is kInvalidArgument naming the model. Returns the catalogue's item count.
inline int32_t check_new_items(std::string_view model, const data::Catalogue& catalogue, int32_t model_items,
                               ItemIndex first_new_item) {
  if (first_new_item != model_items)
    FEWREC_THROW(kInvalidArgument, "model `{}`: new items must start at index {} (the model's item count), got {}",
                 model, model_items, first_new_item);
  const auto total = static_cast<int32_t>(catalogue.items.size());
  if (total < model_items)
    FEWREC_THROW(kInvalidArgument, "model `{}`: the catalogue has {} items, fewer than the model's {}", model, total,
                 model_items);
  return total;
}

[[noreturn]] inline void throw_item_out_of_range(std::string_view model, ItemIndex item, int32_t num_items) {
  FEWREC_THROW(kInvalidArgument, "model `{}`: item index {} is outside the catalogue ({} items)", model, item,
               num_items);
}

}  // namespace fewrec::models

// to_dataset: a training Dataset from what the store holds (one snapshot).
//
// Users and items keep the store's insertion order as their indices (items
// without feedback included). Feature columns:
//   users: one categorical column per attribute key; labels -> tags "labels"
//   items: categories -> tags "categories"; tags -> tags "tags";
//          text -> text column `text_column` ("title");
//          one categorical column per feature key;
//          hidden -> categorical "hidden" ("true"/"false") with HiddenItems::kFeature
// A feature / attribute key that collides with one of these names (or with
// the kind already used for it) is an error naming the key.
// Feedback becomes interactions with value, timestamp, event type (by name)
// and the weight of its type.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/core/monitor.h"
#include "fewrec/data/dataset.h"
#include "fewrec/store/store.h"

namespace fewrec::store {

enum class HiddenItems {
  kDrop,     // hidden items and their feedback are left out
  kKeep,     // kept like any other item
  kFeature,  // kept, with the categorical item column "hidden"
};

struct DatasetExportOptions {
  std::string name = "store";
  // Weight of each event type's interactions; types not listed get
  // default_weight. Finite and >= 0.
  std::map<std::string, float> type_weights;
  float default_weight = 1.0f;
  // Only these event types (empty: every type).
  std::vector<std::string> types;
  // Leave these event types out (e.g. the ones a service weighs negatively).
  std::vector<std::string> exclude_types;
  HiddenItems hidden = HiddenItems::kDrop;
  // Only feedback at or after this time.
  int64_t since = std::numeric_limits<int64_t>::min();
  // Name of the item text column ("" = leave the text out).
  std::string text_column = "title";
  // Item feature keys exported as numeric columns (values must parse as
  // numbers; an empty value is missing) instead of categorical ones.
  std::vector<std::string> numeric_item_features;
};

struct DatasetExportReport {
  int64_t users = 0;
  int64_t items = 0;
  int64_t interactions = 0;
  int64_t hidden_items_dropped = 0;
  int64_t feedback_dropped = 0;  // on dropped items or of other types (not counting `since`)
  nlohmann::json to_json() const;
};

// Writes the feature columns of item `it` into row `row` of `features`, as
// to_dataset() does (used to grow a catalogue with new items). Errors as
// to_dataset().
void export_item_row(data::FeatureTableBuilder& features, data::ItemIndex row, const ItemRecord& it,
                     const DatasetExportOptions& options);

// Progress of the feedback scan goes to `monitor` (task "export feedback").
data::Dataset to_dataset(const Store& store, const DatasetExportOptions& options = {},
                         DatasetExportReport* report = nullptr, core::Monitor* monitor = nullptr);

}  // namespace fewrec::store

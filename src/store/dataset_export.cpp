// to_dataset: the store's snapshot as a data::Dataset; see dataset_export.h.
#include "fewrec/store/dataset_export.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::store {

namespace {

constexpr const char* kUserLabels = "labels";
constexpr const char* kItemCategories = "categories";
constexpr const char* kItemTags = "tags";
constexpr const char* kItemHidden = "hidden";

void check_weight(std::string_view what, float w) {
  FEWREC_CHECK(std::isfinite(w) && w >= 0.0f, kInvalidArgument,
               "to_dataset: {} must be a finite number >= 0, got {}", what, w);
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;

}  // namespace

nlohmann::json DatasetExportReport::to_json() const {
  return nlohmann::json{{"users", users},
                        {"items", items},
                        {"interactions", interactions},
                        {"hidden_items_dropped", hidden_items_dropped},
                        {"feedback_dropped", feedback_dropped}};
}

void export_item_row(data::FeatureTableBuilder& f, data::ItemIndex row, const ItemRecord& it,
                     const DatasetExportOptions& o) {
  FEWREC_CHECK(o.text_column != kItemCategories && o.text_column != kItemTags &&
                   (o.hidden != HiddenItems::kFeature || o.text_column != kItemHidden),
               kInvalidArgument, "to_dataset: text_column `{}` collides with another item column",
               o.text_column);
  for (const auto& c : it.categories) f.add_tag(row, kItemCategories, c);
  for (const auto& t : it.tags) f.add_tag(row, kItemTags, t);
  if (!o.text_column.empty() && !it.text.empty()) f.set_text(row, o.text_column, it.text);
  if (o.hidden == HiddenItems::kFeature) f.set_categorical(row, kItemHidden, it.hidden ? "true" : "false");
  for (const auto& [key, value] : it.features) {
    const bool reserved = key == kItemCategories || key == kItemTags || (!o.text_column.empty() && key == o.text_column) ||
                          (o.hidden == HiddenItems::kFeature && key == kItemHidden);
    FEWREC_CHECK(!reserved, kInvalidArgument,
                 "to_dataset: item `{}` has a feature named `{}`, which is the column of the item's "
                 "{}; rename the feature",
                 it.id, key,
                 key == kItemCategories ? "categories"
                 : key == kItemTags     ? "tags"
                 : key == kItemHidden && o.hidden == HiddenItems::kFeature ? "hidden flag"
                                                                           : "text");
    if (std::find(o.numeric_item_features.begin(), o.numeric_item_features.end(), key) !=
        o.numeric_item_features.end()) {
      if (core::trim(value).empty()) continue;  // missing
      const auto x = core::parse_float(value);
      FEWREC_CHECK(x.has_value(), kInvalidArgument,
                   "to_dataset: item `{}`: feature `{}` = `{}` is not a number (it is listed in "
                   "numeric_item_features)",
                   it.id, key, core::excerpt(value));
      f.set_numeric(row, key, *x);
    } else {
      f.set_categorical(row, key, value);
    }
  }
}

data::Dataset to_dataset(const Store& store, const DatasetExportOptions& o, DatasetExportReport* report,
                         core::Monitor* monitor) {
  check_weight("default_weight", o.default_weight);
  for (const auto& [type, w] : o.type_weights) check_weight(fmt::format("the weight of type `{}`", type), w);
  for (const auto& t : o.types)
    FEWREC_CHECK(!t.empty(), kInvalidArgument, "to_dataset: an empty event type in `types`");
  FEWREC_CHECK(o.text_column != kItemCategories && o.text_column != kItemTags &&
                   (o.hidden != HiddenItems::kFeature || o.text_column != kItemHidden),
               kInvalidArgument, "to_dataset: text_column `{}` collides with another item column",
               o.text_column);
  const StringSet types(o.types.begin(), o.types.end());
  const StringSet excluded_types(o.exclude_types.begin(), o.exclude_types.end());
  data::DatasetBuilder b;
  DatasetExportReport rep;
  StringSet dropped_items;
  std::unordered_map<std::string, std::pair<data::EventType, float>, StringHash, std::equal_to<>> events;

  StoreScan scan;
  scan.user = [&](const UserRecord& u) {
    const data::UserIndex row = b.user(u.id);
    auto& f = b.user_features();
    for (const auto& [key, value] : u.attributes) {
      FEWREC_CHECK(key != kUserLabels, kInvalidArgument,
                   "to_dataset: user `{}` has an attribute named `{}`, which is the column of user "
                   "labels; rename the attribute",
                   u.id, key);
      f.set_categorical(row, key, value);
    }
    for (const auto& label : u.labels) f.add_tag(row, kUserLabels, label);
  };
  scan.item = [&](const ItemRecord& it) {
    if (it.hidden && o.hidden == HiddenItems::kDrop) {
      dropped_items.insert(it.id);
      ++rep.hidden_items_dropped;
      return;
    }
    export_item_row(b.item_features(), b.item(it.id), it, o);
  };
  // The total is a count taken before the scan's snapshot: progress only.
  core::ProgressScope progress(monitor != nullptr ? *monitor : core::null_monitor(), "export feedback",
                               monitor != nullptr ? store.count_feedback() : 0);
  int64_t unreported = 0;
  scan.feedback_since = o.since;
  scan.feedback = [&](const FeedbackRecord& e) {
    if (++unreported == 4096) {
      progress.advance(unreported);
      unreported = 0;
    }
    if ((!types.empty() && !types.contains(e.type)) || excluded_types.contains(e.type) ||
        dropped_items.contains(e.item)) {
      ++rep.feedback_dropped;
      return;
    }
    auto ev = events.find(e.type);
    if (ev == events.end()) {
      const auto w = o.type_weights.find(e.type);
      ev = events.emplace(e.type, std::pair{b.event_type(e.type),
                                            w == o.type_weights.end() ? o.default_weight : w->second})
               .first;
    }
    b.add(b.user(e.user), b.item(e.item), e.timestamp, e.value, ev->second.first, ev->second.second);
  };
  store.scan(scan);
  progress.advance(unreported);
  progress.finish();

  data::Dataset ds = std::move(b).build(o.name);
  rep.users = ds.num_users();
  rep.items = ds.num_items();
  rep.interactions = ds.num_interactions();
  if (report != nullptr) *report = rep;
  return ds;
}

}  // namespace fewrec::store

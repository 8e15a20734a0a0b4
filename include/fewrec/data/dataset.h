// Dataset: interactions grouped by user (CSR, time-sorted inside a user) plus
// user and item feature tables. Immutable once built.
//
// External string ids map to dense int32 indices (UserIndex, ItemIndex). The
// id maps and feature tables are shared (shared_ptr) between a dataset and
// the datasets derived from it (splits, filters), so every derived dataset
// lives in the same index space: item 17 is the same item in train and test.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace fewrec::data {

using UserIndex = int32_t;
using ItemIndex = int32_t;
using EventType = uint16_t;  // index into Dataset::event_types(); 0 = "rating"/default

// Bidirectional map external id <-> dense index.
class IdMap {
 public:
  // Returns the index of `id`, adding it when new.
  int32_t add(std::string_view id);
  // -1 when absent.
  int32_t find(std::string_view id) const;
  const std::string& id(int32_t index) const { return ids_[static_cast<size_t>(index)]; }
  int32_t size() const { return static_cast<int32_t>(ids_.size()); }
  const std::vector<std::string>& ids() const { return ids_; }
  void reserve(size_t n);

 private:
  std::vector<std::string> ids_;
  std::unordered_map<std::string, int32_t> index_;
};

enum class FeatureKind { kCategorical, kNumeric, kTags, kText };
const char* feature_kind_name(FeatureKind kind);

// One column of a feature table; rows are aligned with user / item indices.
struct FeatureColumn {
  std::string name;
  FeatureKind kind = FeatureKind::kCategorical;
  IdMap vocab;                    // categorical values / tags
  std::vector<int32_t> codes;     // kCategorical: vocab index per row, -1 missing
  std::vector<float> numbers;     // kNumeric: value per row, NaN missing
  std::vector<int64_t> offsets;   // kTags: CSR offsets, size rows + 1
  std::vector<int32_t> tags;      // kTags: vocab indices
  std::vector<std::string> texts; // kText: text per row, "" missing

  std::span<const int32_t> tags_of(int32_t row) const {
    return {tags.data() + offsets[row], static_cast<size_t>(offsets[row + 1] - offsets[row])};
  }
};

class FeatureTable {
 public:
  int32_t rows() const { return rows_; }
  const std::vector<FeatureColumn>& columns() const { return columns_; }
  // nullptr when absent.
  const FeatureColumn* find(std::string_view name) const;
  // Throws kNotFound naming the column and listing the present ones.
  const FeatureColumn& column(std::string_view name) const;
  // New table whose row i is row rows[i] of this one (columns and their
  // vocabularies kept); a row index outside the table gives a missing row.
  FeatureTable select_rows(std::span<const int32_t> rows) const;

 private:
  friend class FeatureTableBuilder;
  int32_t rows_ = 0;
  std::vector<FeatureColumn> columns_;
};

// Accumulates features by row; build(rows) pads every column to `rows`.
// Setting a column with a different kind than before is kInvalidArgument.
class FeatureTableBuilder {
 public:
  void set_categorical(int32_t row, std::string_view column, std::string_view value);
  void set_numeric(int32_t row, std::string_view column, float value);
  void add_tag(int32_t row, std::string_view column, std::string_view tag);
  void set_text(int32_t row, std::string_view column, std::string text);
  bool empty() const { return columns_.empty(); }
  FeatureTable build(int32_t rows) &&;

 private:
  struct Pending {
    FeatureColumn col;
    std::vector<std::vector<int32_t>> tag_rows;
  };
  Pending& get(std::string_view column, FeatureKind kind);
  std::vector<Pending> columns_;
};

// One interaction, as accumulated by builders and produced by filters.
struct Interaction {
  UserIndex user = 0;
  ItemIndex item = 0;
  int64_t timestamp = 0;
  float value = 1.0f;  // rating or strength
  EventType event = 0;
  float weight = 1.0f;
};

// Interactions as separate columns (any order): what builders accumulate.
// 26 bytes per interaction instead of 32 for a vector<Interaction>.
struct InteractionColumns {
  std::vector<UserIndex> users;
  std::vector<ItemIndex> items;
  std::vector<int64_t> timestamps;
  std::vector<float> values;
  std::vector<EventType> events;
  std::vector<float> weights;
  size_t size() const { return users.size(); }
  void reserve(size_t n);
  void push_back(const Interaction& r);
};

// Read-only view of one user's time-ordered history.
struct UserHistory {
  std::span<const ItemIndex> items;
  std::span<const int64_t> timestamps;
  std::span<const float> values;
  std::span<const EventType> events;
  std::span<const float> weights;
  size_t size() const { return items.size(); }
  bool empty() const { return items.empty(); }
};

// The shared, immutable part of a dataset: index spaces and side tables.
struct Catalogue {
  IdMap users;
  IdMap items;
  IdMap event_types;
  FeatureTable user_features;
  FeatureTable item_features;
};

class Dataset {
 public:
  Dataset();  // empty
  // Builds the CSR from rows (any order): sorted by (user, timestamp), ties in
  // input order. Every row's user / item must be inside the catalogue.
  Dataset(std::shared_ptr<const Catalogue> catalogue, std::vector<Interaction> rows,
          std::string name = "");
  // Same from columns; each column is permuted into CSR order one at a time,
  // so peak memory stays near 1.5x the columnar size.
  static Dataset from_columns(std::shared_ptr<const Catalogue> catalogue,
                              InteractionColumns columns, std::string name = "");

  const std::string& name() const { return name_; }
  int32_t num_users() const { return catalogue_->users.size(); }
  int32_t num_items() const { return catalogue_->items.size(); }
  int64_t num_interactions() const { return static_cast<int64_t>(items_.size()); }

  const Catalogue& catalogue() const { return *catalogue_; }
  const std::shared_ptr<const Catalogue>& catalogue_ptr() const { return catalogue_; }
  const IdMap& users() const { return catalogue_->users; }
  const IdMap& items() const { return catalogue_->items; }
  const IdMap& event_types() const { return catalogue_->event_types; }
  const FeatureTable& user_features() const { return catalogue_->user_features; }
  const FeatureTable& item_features() const { return catalogue_->item_features; }

  // CSR columns: user u owns rows [user_offsets()[u], user_offsets()[u+1]).
  std::span<const int64_t> user_offsets() const { return offsets_; }
  std::span<const ItemIndex> item_column() const { return items_; }
  std::span<const int64_t> timestamp_column() const { return timestamps_; }
  std::span<const float> value_column() const { return values_; }
  std::span<const EventType> event_column() const { return events_; }
  std::span<const float> weight_column() const { return weights_; }

  UserHistory history(UserIndex user) const;
  int64_t history_size(UserIndex user) const { return offsets_[user + 1] - offsets_[user]; }
  Interaction row(int64_t i) const;
  UserIndex user_of_row(int64_t i) const;  // binary search over offsets

  // All rows as Interaction structs (CSR order).
  std::vector<Interaction> rows() const;
  // New dataset over the same catalogue with the rows where keep(row) is true.
  template <class Pred>
  Dataset filter(Pred keep, std::string name = "") const {
    std::vector<Interaction> out;
    for (UserIndex u = 0; u < num_users(); ++u)
      for (int64_t i = offsets_[u]; i < offsets_[u + 1]; ++i) {
        Interaction r{u, items_[i], timestamps_[i], values_[i], events_[i], weights_[i]};
        if (keep(r)) out.push_back(r);
      }
    return Dataset(catalogue_, std::move(out), name.empty() ? name_ : std::move(name));
  }

  // Number of interactions per item (size num_items()).
  std::vector<int64_t> item_counts() const;
  // Users with at least one interaction.
  int32_t num_active_users() const;
  int32_t num_active_items() const;
  // Sorted, de-duplicated item list of a user.
  std::vector<ItemIndex> item_set(UserIndex user) const;

  // Summary for `fewrec data stats` (counts, density, history-length
  // quantiles, value histogram, time range, feature columns).
  nlohmann::json stats() const;

 private:
  void build_from(InteractionColumns columns);
  std::shared_ptr<const Catalogue> catalogue_;
  std::string name_;
  std::vector<int64_t> offsets_;
  std::vector<ItemIndex> items_;
  std::vector<int64_t> timestamps_;
  std::vector<float> values_;
  std::vector<EventType> events_;
  std::vector<float> weights_;
};

// Incremental construction from external ids (readers, synthetic data).
class DatasetBuilder {
 public:
  DatasetBuilder();
  UserIndex user(std::string_view id) { return catalogue_->users.add(id); }
  ItemIndex item(std::string_view id) { return catalogue_->items.add(id); }
  EventType event_type(std::string_view name);
  void add(UserIndex user, ItemIndex item, int64_t timestamp, float value, EventType event = 0,
           float weight = 1.0f);
  void reserve(size_t rows) { rows_.reserve(rows); }
  size_t size() const { return rows_.size(); }
  FeatureTableBuilder& user_features() { return user_features_; }
  FeatureTableBuilder& item_features() { return item_features_; }
  Dataset build(std::string name = "") &&;

 private:
  std::shared_ptr<Catalogue> catalogue_;
  InteractionColumns rows_;
  FeatureTableBuilder user_features_;
  FeatureTableBuilder item_features_;
};

}  // namespace fewrec::data

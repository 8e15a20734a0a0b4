// Feature vocabularies of the hybrid model (internal to the models layer).
//
// A FeatureSpace turns the rows of a feature table (or a new user's
// UserFeatures) into sorted lists of feature indices in [0, size()):
//   categorical  one feature per value ("occupation=writer");
//   tags         one feature per tag ("genres=Drama");
//   text         one feature per word token ("title:dragon"): lower-cased,
//                split on anything that is not a letter or digit (bytes >= 0x80
//                count as letters, so UTF-8 words stay whole), tokens shorter
//                than two bytes dropped; the vocabulary keeps the `max_vocab`
//                tokens of highest document frequency per column;
//   numeric      quantile buckets ("year in [1990, 1994)"), edges from the
//                values of the vocabulary rows; 0 buckets skips numeric columns.
// Values seen in fewer than `min_df` rows are dropped (they would be no more
// than an extra id). Values the vocabulary does not know are ignored when
// encoding, so new items and users with unseen values still encode.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fewrec/core/artifact.h"
#include "fewrec/data/context.h"
#include "fewrec/data/dataset.h"

namespace fewrec::models::hybrid {

// Which columns of a table become features: "all", "none" or a list of names.
struct ColumnSelection {
  bool all = true;
  std::vector<std::string> names;  // when !all; empty = none

  // Accepts "all", "none" or names separated by `,` `+` `|` `;` or blanks.
  // `what` names the option in errors ("model `hybrid`: option `item_features`").
  static ColumnSelection parse(std::string_view text, std::string_view what);
  // Canonical text: "all", "none" or the names joined by `+` (commas would
  // break the model spec string, which separates options by commas).
  std::string to_string() const;
};

struct VocabularyOptions {
  int64_t min_df = 2;            // drop values seen in fewer rows
  int64_t max_vocab = 20000;     // per text column: most frequent tokens kept (0 = all)
  int64_t numeric_buckets = 10;  // quantile buckets per numeric column (0 = skip numeric)
};

// Lower-cased word tokens of `text` (see the file comment), in order, duplicates kept.
std::vector<std::string> tokenize(std::string_view text);

class FeatureSpace {
 public:
  struct Column {
    std::string name;
    data::FeatureKind kind = data::FeatureKind::kCategorical;
    std::vector<std::string> values;                 // local feature index -> value / tag / token / bucket label
    std::vector<float> edges;                        // numeric: sorted bucket boundaries (buckets = edges + 1)
    int32_t offset = 0;                              // first feature index of the column
    std::unordered_map<std::string, int32_t> index;  // value -> local index (not numeric)
  };

  // Vocabulary from the rows `rows` of `table` (the hybrid passes the items /
  // users with training interactions: a value no trained row has would keep
  // its random initial embedding). A selected column the table does not have
  // is kInvalidArgument naming it and listing the present ones (`side` is
  // "item" or "user", `model` the model name, for messages).
  static FeatureSpace build(const data::FeatureTable& table, std::span<const int32_t> rows,
                            const ColumnSelection& selection, const VocabularyOptions& options,
                            std::string_view side, std::string_view model);

  int32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::vector<Column>& columns() const { return columns_; }

  // Appends the features of row `row` of `table` (columns matched by name and
  // kind; a row outside the table has none) to `out`, then sorts and
  // de-duplicates `out`.
  void encode_row(const data::FeatureTable& table, int32_t row, std::vector<int32_t>& out) const;
  // Same for a context's features (by column name; unknown columns and
  // values are ignored, a value of the wrong kind too).
  void encode(const data::UserFeatures& features, std::vector<int32_t>& out) const;

  // "genres=Drama", "title:dragon", "year in [1990, 1994)".
  std::string feature_name(int32_t feature) const;
  // {column: {kind, features}} for summaries.
  nlohmann::json describe() const;

  // Sections "<prefix>columns" (json) and "<prefix>values" (strings).
  void save(core::ArtifactWriter& writer, const std::string& prefix) const;
  // kCorrupt naming the artifact on any inconsistency.
  static FeatureSpace load(const core::ArtifactReader& reader, const std::string& prefix);

 private:
  void finish();  // offsets, indices, size
  int32_t bucket_of(const Column& c, float value) const;
  std::vector<Column> columns_;
  int32_t size_ = 0;
};

}  // namespace fewrec::models::hybrid

#include "fewrec/data/dataset.h"

#include "fewrec/core/threads.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "fewrec/core/error.h"

namespace fewrec::data {

// ---------------------------------------------------------------- IdMap

int32_t IdMap::add(std::string_view id) {
  auto it = index_.find(std::string(id));
  if (it != index_.end()) return it->second;
  FEWREC_CHECK(ids_.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
               kInvalidArgument, "too many distinct ids (more than {})",
               std::numeric_limits<int32_t>::max());
  auto index = static_cast<int32_t>(ids_.size());
  ids_.emplace_back(id);
  index_.emplace(ids_.back(), index);
  return index;
}

int32_t IdMap::find(std::string_view id) const {
  auto it = index_.find(std::string(id));
  return it == index_.end() ? -1 : it->second;
}

void IdMap::reserve(size_t n) {
  ids_.reserve(n);
  index_.reserve(n);
}

// ---------------------------------------------------------------- features

const char* feature_kind_name(FeatureKind kind) {
  switch (kind) {
    case FeatureKind::kCategorical: return "categorical";
    case FeatureKind::kNumeric: return "numeric";
    case FeatureKind::kTags: return "tags";
    case FeatureKind::kText: return "text";
  }
  return "unknown";
}

const FeatureColumn* FeatureTable::find(std::string_view name) const {
  for (const auto& c : columns_)
    if (c.name == name) return &c;
  return nullptr;
}

const FeatureColumn& FeatureTable::column(std::string_view name) const {
  if (const auto* c = find(name)) return *c;
  std::string present;
  for (const auto& c : columns_) {
    if (!present.empty()) present += ", ";
    present += c.name;
  }
  FEWREC_THROW(kNotFound, "feature column `{}` not found; present columns: {}", name,
               present.empty() ? std::string("(none)") : present);
}

FeatureTable FeatureTable::select_rows(std::span<const int32_t> rows) const {
  FeatureTable out;
  const auto n = rows.size();
  out.rows_ = static_cast<int32_t>(n);
  for (const auto& c : columns_) {
    FeatureColumn d;
    d.name = c.name;
    d.kind = c.kind;
    d.vocab = c.vocab;
    auto inside = [&](int32_t r) { return r >= 0 && r < rows_; };
    switch (c.kind) {
      case FeatureKind::kCategorical:
        d.codes.resize(n, -1);
        for (size_t i = 0; i < n; ++i)
          if (inside(rows[i])) d.codes[i] = c.codes[static_cast<size_t>(rows[i])];
        break;
      case FeatureKind::kNumeric:
        d.numbers.resize(n, std::numeric_limits<float>::quiet_NaN());
        for (size_t i = 0; i < n; ++i)
          if (inside(rows[i])) d.numbers[i] = c.numbers[static_cast<size_t>(rows[i])];
        break;
      case FeatureKind::kTags:
        d.offsets.assign(n + 1, 0);
        for (size_t i = 0; i < n; ++i) {
          if (inside(rows[i])) {
            auto t = c.tags_of(rows[i]);
            d.tags.insert(d.tags.end(), t.begin(), t.end());
          }
          d.offsets[i + 1] = static_cast<int64_t>(d.tags.size());
        }
        break;
      case FeatureKind::kText:
        d.texts.resize(n);
        for (size_t i = 0; i < n; ++i)
          if (inside(rows[i])) d.texts[i] = c.texts[static_cast<size_t>(rows[i])];
        break;
    }
    out.columns_.push_back(std::move(d));
  }
  return out;
}

FeatureTableBuilder::Pending& FeatureTableBuilder::get(std::string_view column, FeatureKind kind) {
  for (auto& p : columns_) {
    if (p.col.name != column) continue;
    FEWREC_CHECK(p.col.kind == kind, kInvalidArgument,
                 "feature column `{}` is {}, cannot set a {} value in it", column,
                 feature_kind_name(p.col.kind), feature_kind_name(kind));
    return p;
  }
  FEWREC_CHECK(!column.empty(), kInvalidArgument, "feature column name is empty");
  Pending p;
  p.col.name = std::string(column);
  p.col.kind = kind;
  columns_.push_back(std::move(p));
  return columns_.back();
}

namespace {
void check_row(int32_t row, std::string_view column) {
  FEWREC_CHECK(row >= 0, kInvalidArgument, "feature column `{}`: negative row {}", column, row);
}
}  // namespace

void FeatureTableBuilder::set_categorical(int32_t row, std::string_view column,
                                          std::string_view value) {
  check_row(row, column);
  auto& p = get(column, FeatureKind::kCategorical);
  auto& codes = p.col.codes;
  if (static_cast<size_t>(row) >= codes.size()) codes.resize(static_cast<size_t>(row) + 1, -1);
  // An empty value means "missing".
  codes[static_cast<size_t>(row)] = value.empty() ? -1 : p.col.vocab.add(value);
}

void FeatureTableBuilder::set_numeric(int32_t row, std::string_view column, float value) {
  check_row(row, column);
  auto& p = get(column, FeatureKind::kNumeric);
  auto& nums = p.col.numbers;
  if (static_cast<size_t>(row) >= nums.size())
    nums.resize(static_cast<size_t>(row) + 1, std::numeric_limits<float>::quiet_NaN());
  nums[static_cast<size_t>(row)] = value;
}

void FeatureTableBuilder::add_tag(int32_t row, std::string_view column, std::string_view tag) {
  check_row(row, column);
  auto& p = get(column, FeatureKind::kTags);
  if (static_cast<size_t>(row) >= p.tag_rows.size()) p.tag_rows.resize(static_cast<size_t>(row) + 1);
  if (tag.empty()) return;
  int32_t code = p.col.vocab.add(tag);
  auto& r = p.tag_rows[static_cast<size_t>(row)];
  if (std::find(r.begin(), r.end(), code) == r.end()) r.push_back(code);  // a tag once per row
}

void FeatureTableBuilder::set_text(int32_t row, std::string_view column, std::string text) {
  check_row(row, column);
  auto& p = get(column, FeatureKind::kText);
  auto& texts = p.col.texts;
  if (static_cast<size_t>(row) >= texts.size()) texts.resize(static_cast<size_t>(row) + 1);
  texts[static_cast<size_t>(row)] = std::move(text);
}

FeatureTable FeatureTableBuilder::build(int32_t rows) && {
  FEWREC_CHECK(rows >= 0, kInvalidArgument, "feature table: negative row count {}", rows);
  const auto n = static_cast<size_t>(rows);
  FeatureTable table;
  table.rows_ = rows;
  for (auto& p : columns_) {
    FeatureColumn& c = p.col;
    size_t have = 0;
    switch (c.kind) {
      case FeatureKind::kCategorical: have = c.codes.size(); break;
      case FeatureKind::kNumeric: have = c.numbers.size(); break;
      case FeatureKind::kTags: have = p.tag_rows.size(); break;
      case FeatureKind::kText: have = c.texts.size(); break;
    }
    FEWREC_CHECK(have <= n, kInvalidArgument,
                 "feature column `{}` has a value for row {} but the table has only {} rows",
                 c.name, have - 1, rows);
    switch (c.kind) {
      case FeatureKind::kCategorical: c.codes.resize(n, -1); break;
      case FeatureKind::kNumeric: c.numbers.resize(n, std::numeric_limits<float>::quiet_NaN()); break;
      case FeatureKind::kTags: {
        p.tag_rows.resize(n);
        c.offsets.assign(n + 1, 0);
        size_t total = 0;
        for (const auto& r : p.tag_rows) total += r.size();
        c.tags.clear();
        c.tags.reserve(total);
        for (size_t i = 0; i < n; ++i) {
          c.tags.insert(c.tags.end(), p.tag_rows[i].begin(), p.tag_rows[i].end());
          c.offsets[i + 1] = static_cast<int64_t>(c.tags.size());
        }
        p.tag_rows.clear();
        break;
      }
      case FeatureKind::kText: c.texts.resize(n); break;
    }
    table.columns_.push_back(std::move(c));
  }
  columns_.clear();
  return table;
}

// ---------------------------------------------------------------- Dataset

Dataset::Dataset() : catalogue_(std::make_shared<Catalogue>()), offsets_(1, 0) {}

void InteractionColumns::reserve(size_t n) {
  users.reserve(n);
  items.reserve(n);
  timestamps.reserve(n);
  values.reserve(n);
  events.reserve(n);
  weights.reserve(n);
}

void InteractionColumns::push_back(const Interaction& r) {
  users.push_back(r.user);
  items.push_back(r.item);
  timestamps.push_back(r.timestamp);
  values.push_back(r.value);
  events.push_back(r.event);
  weights.push_back(r.weight);
}

namespace {

InteractionColumns to_columns(std::vector<Interaction> rows) {
  InteractionColumns c;
  c.reserve(rows.size());
  for (const auto& r : rows) c.push_back(r);
  return c;
}

// out[pos] = in[order[pos]]; frees `in`.
template <class T>
std::vector<T> permute(std::vector<T>&& in, const std::vector<uint32_t>& order) {
  std::vector<T> out(order.size());
  for (size_t pos = 0; pos < order.size(); ++pos) out[pos] = in[order[pos]];
  std::vector<T>().swap(in);
  return out;
}

}  // namespace

Dataset::Dataset(std::shared_ptr<const Catalogue> catalogue, std::vector<Interaction> rows,
                 std::string name)
    : Dataset(from_columns(std::move(catalogue), to_columns(std::move(rows)), std::move(name))) {}

Dataset Dataset::from_columns(std::shared_ptr<const Catalogue> catalogue, InteractionColumns c,
                              std::string name) {
  Dataset ds;
  ds.catalogue_ = std::move(catalogue);
  ds.name_ = std::move(name);
  ds.build_from(std::move(c));
  return ds;
}

void Dataset::build_from(InteractionColumns c) {
  FEWREC_ASSERT(catalogue_ != nullptr);
  const int32_t nu = catalogue_->users.size();
  const int32_t ni = catalogue_->items.size();
  const size_t ne = std::max<size_t>(1, static_cast<size_t>(catalogue_->event_types.size()));
  const size_t n = c.users.size();
  FEWREC_ASSERT(c.items.size() == n && c.timestamps.size() == n && c.values.size() == n &&
                c.events.size() == n && c.weights.size() == n);
  for (size_t i = 0; i < n; ++i) {
    FEWREC_CHECK(c.users[i] >= 0 && c.users[i] < nu, kInvalidArgument,
                 "interaction {}: user index {} outside the catalogue ({} users)", i, c.users[i], nu);
    FEWREC_CHECK(c.items[i] >= 0 && c.items[i] < ni, kInvalidArgument,
                 "interaction {}: item index {} outside the catalogue ({} items)", i, c.items[i], ni);
    FEWREC_CHECK(static_cast<size_t>(c.events[i]) < ne, kInvalidArgument,
                 "interaction {}: event type {} outside the catalogue ({} event types)", i,
                 c.events[i], ne);
  }
  FEWREC_CHECK(n <= std::numeric_limits<uint32_t>::max(), kInvalidArgument,
               "too many interactions ({}) for one dataset", n);

  // Counting sort by user (stable), then by time inside a user (ties keep
  // input order: the sort key is (timestamp, input position)).
  offsets_.assign(static_cast<size_t>(nu) + 1, 0);
  for (UserIndex u : c.users) ++offsets_[static_cast<size_t>(u) + 1];
  for (size_t u = 0; u < static_cast<size_t>(nu); ++u) offsets_[u + 1] += offsets_[u];
  std::vector<uint32_t> order(n);
  {
    std::vector<int64_t> cursor(offsets_.begin(), offsets_.end() - 1);
    for (size_t i = 0; i < n; ++i)
      order[static_cast<size_t>(cursor[static_cast<size_t>(c.users[i])]++)] = static_cast<uint32_t>(i);
  }
  std::vector<UserIndex>().swap(c.users);
  // Timestamps in user order first (one gather), so the per-user time sort
  // reads contiguous memory; then the other columns, gathered in parallel.
  timestamps_ = permute(std::move(c.timestamps), order);
  core::parallel_for(0, nu, n >= (1u << 20) ? 2 : 1, [&](int64_t ub, int64_t ue, int) {
    std::vector<std::pair<int64_t, uint32_t>> keys;
    for (int64_t u = ub; u < ue; ++u) {
      const auto b = static_cast<size_t>(offsets_[u]), e = static_cast<size_t>(offsets_[u + 1]);
      if (e - b < 2) continue;
      if (std::is_sorted(timestamps_.begin() + b, timestamps_.begin() + e)) continue;
      keys.clear();
      for (size_t i = b; i < e; ++i) keys.emplace_back(timestamps_[i], order[i]);
      std::sort(keys.begin(), keys.end());
      for (size_t i = b; i < e; ++i) {
        timestamps_[i] = keys[i - b].first;
        order[i] = keys[i - b].second;
      }
    }
  }, 1024);
  core::parallel_for(0, 4, n >= (1u << 20) ? 2 : 1, [&](int64_t b, int64_t e, int) {
    for (int64_t col = b; col < e; ++col) {
      switch (col) {
        case 0: items_ = permute(std::move(c.items), order); break;
        case 1: values_ = permute(std::move(c.values), order); break;
        case 2: events_ = permute(std::move(c.events), order); break;
        case 3: weights_ = permute(std::move(c.weights), order); break;
      }
    }
  }, 1);
}

UserHistory Dataset::history(UserIndex user) const {
  FEWREC_ASSERT(user >= 0 && user < num_users());
  auto b = static_cast<size_t>(offsets_[static_cast<size_t>(user)]);
  auto len = static_cast<size_t>(offsets_[static_cast<size_t>(user) + 1]) - b;
  UserHistory h;
  h.items = std::span<const ItemIndex>(items_).subspan(b, len);
  h.timestamps = std::span<const int64_t>(timestamps_).subspan(b, len);
  h.values = std::span<const float>(values_).subspan(b, len);
  h.events = std::span<const EventType>(events_).subspan(b, len);
  h.weights = std::span<const float>(weights_).subspan(b, len);
  return h;
}

UserIndex Dataset::user_of_row(int64_t i) const {
  FEWREC_ASSERT(i >= 0 && i < num_interactions());
  auto it = std::upper_bound(offsets_.begin(), offsets_.end(), i);
  return static_cast<UserIndex>(it - offsets_.begin() - 1);
}

Interaction Dataset::row(int64_t i) const {
  auto u = user_of_row(i);
  auto k = static_cast<size_t>(i);
  return Interaction{u, items_[k], timestamps_[k], values_[k], events_[k], weights_[k]};
}

std::vector<Interaction> Dataset::rows() const {
  std::vector<Interaction> out;
  out.reserve(items_.size());
  for (UserIndex u = 0; u < num_users(); ++u)
    for (int64_t i = offsets_[u]; i < offsets_[u + 1]; ++i) {
      auto k = static_cast<size_t>(i);
      out.push_back(Interaction{u, items_[k], timestamps_[k], values_[k], events_[k], weights_[k]});
    }
  return out;
}

std::vector<int64_t> Dataset::item_counts() const {
  std::vector<int64_t> counts(static_cast<size_t>(num_items()), 0);
  for (auto it : items_) ++counts[static_cast<size_t>(it)];
  return counts;
}

int32_t Dataset::num_active_users() const {
  int32_t n = 0;
  for (size_t u = 0; u + 1 < offsets_.size(); ++u) n += offsets_[u + 1] > offsets_[u] ? 1 : 0;
  return n;
}

int32_t Dataset::num_active_items() const {
  std::vector<char> seen(static_cast<size_t>(num_items()), 0);
  int32_t n = 0;
  for (auto it : items_) {
    if (!seen[static_cast<size_t>(it)]) {
      seen[static_cast<size_t>(it)] = 1;
      ++n;
    }
  }
  return n;
}

std::vector<ItemIndex> Dataset::item_set(UserIndex user) const {
  auto h = history(user);
  std::vector<ItemIndex> out(h.items.begin(), h.items.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

// min / median / mean / p90 / max of a sample (sorted in place).
nlohmann::json summary(std::vector<int64_t> v) {
  nlohmann::json j = nlohmann::json::object();
  if (v.empty()) return j;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  double median = n % 2 ? static_cast<double>(v[n / 2])
                        : 0.5 * (static_cast<double>(v[n / 2 - 1]) + static_cast<double>(v[n / 2]));
  double sum = 0;
  for (auto x : v) sum += static_cast<double>(x);
  // Nearest-rank 90th percentile.
  auto rank = static_cast<size_t>(std::ceil(0.9 * static_cast<double>(n)));
  rank = std::clamp<size_t>(rank, 1, n);
  j["min"] = v.front();
  j["median"] = median;
  j["mean"] = sum / static_cast<double>(n);
  j["p90"] = v[rank - 1];
  j["max"] = v.back();
  return j;
}

nlohmann::json feature_stats(const FeatureTable& table) {
  nlohmann::json cols = nlohmann::json::array();
  for (const auto& c : table.columns()) {
    int64_t present = 0;
    const auto rows = static_cast<size_t>(table.rows());
    for (size_t r = 0; r < rows; ++r) {
      switch (c.kind) {
        case FeatureKind::kCategorical: present += c.codes[r] >= 0; break;
        case FeatureKind::kNumeric: present += !std::isnan(c.numbers[r]); break;
        case FeatureKind::kTags: present += c.offsets[r + 1] > c.offsets[r]; break;
        case FeatureKind::kText: present += !c.texts[r].empty(); break;
      }
    }
    nlohmann::json j;
    j["name"] = c.name;
    j["kind"] = feature_kind_name(c.kind);
    j["coverage"] = rows ? static_cast<double>(present) / static_cast<double>(rows) : 0.0;
    if (c.kind == FeatureKind::kCategorical || c.kind == FeatureKind::kTags)
      j["vocabulary"] = c.vocab.size();
    cols.push_back(std::move(j));
  }
  return cols;
}

}  // namespace

nlohmann::json Dataset::stats() const {
  nlohmann::json j;
  const int64_t n = num_interactions();
  j["name"] = name_;
  j["users"] = num_users();
  j["items"] = num_items();
  j["active_users"] = num_active_users();
  j["active_items"] = num_active_items();
  j["interactions"] = n;
  const double cells = static_cast<double>(num_users()) * static_cast<double>(num_items());
  j["density"] = cells > 0 ? static_cast<double>(n) / cells : 0.0;

  // History lengths over users with at least one interaction.
  std::vector<int64_t> lengths;
  for (UserIndex u = 0; u < num_users(); ++u)
    if (history_size(u) > 0) lengths.push_back(history_size(u));
  j["history_length"] = summary(std::move(lengths));
  std::vector<int64_t> pops;
  for (auto c : item_counts())
    if (c > 0) pops.push_back(c);
  j["item_popularity"] = summary(std::move(pops));

  if (n > 0) {
    auto [vmin, vmax] = std::minmax_element(values_.begin(), values_.end());
    double vsum = 0;
    for (auto v : values_) vsum += v;
    nlohmann::json value;
    value["min"] = *vmin;
    value["max"] = *vmax;
    value["mean"] = vsum / static_cast<double>(n);
    // Histogram when the values are few distinct levels (ratings, 0/1).
    constexpr size_t kMaxLevels = 20;
    std::map<float, int64_t> levels;
    for (auto v : values_) {
      if (std::isnan(v)) continue;
      ++levels[v];
      if (levels.size() > kMaxLevels) break;
    }
    if (levels.size() <= kMaxLevels) {
      nlohmann::json hist = nlohmann::json::array();
      for (auto [v, count] : levels) hist.push_back({{"value", v}, {"count", count}});
      value["histogram"] = std::move(hist);
    }
    j["value"] = std::move(value);

    auto [tmin, tmax] = std::minmax_element(timestamps_.begin(), timestamps_.end());
    j["time"] = {{"min", *tmin}, {"max", *tmax}};
  }

  std::vector<int64_t> per_event(static_cast<size_t>(std::max(1, event_types().size())), 0);
  for (auto e : events_) ++per_event[e];
  nlohmann::json events = nlohmann::json::array();
  for (int32_t e = 0; e < event_types().size(); ++e)
    events.push_back({{"name", event_types().id(e)}, {"count", per_event[static_cast<size_t>(e)]}});
  j["event_types"] = std::move(events);
  j["user_features"] = feature_stats(user_features());
  j["item_features"] = feature_stats(item_features());
  return j;
}

// ---------------------------------------------------------------- DatasetBuilder

DatasetBuilder::DatasetBuilder() : catalogue_(std::make_shared<Catalogue>()) {
  catalogue_->event_types.add("default");
}

EventType DatasetBuilder::event_type(std::string_view name) {
  int32_t found = catalogue_->event_types.find(name);
  if (found >= 0) return static_cast<EventType>(found);
  FEWREC_CHECK(catalogue_->event_types.size() <= std::numeric_limits<EventType>::max(),
               kInvalidArgument, "too many event types (more than {})",
               std::numeric_limits<EventType>::max() + 1);
  return static_cast<EventType>(catalogue_->event_types.add(name));
}

void DatasetBuilder::add(UserIndex user, ItemIndex item, int64_t timestamp, float value,
                         EventType event, float weight) {
  rows_.push_back(Interaction{user, item, timestamp, value, event, weight});
}

Dataset DatasetBuilder::build(std::string name) && {
  catalogue_->user_features = std::move(user_features_).build(catalogue_->users.size());
  catalogue_->item_features = std::move(item_features_).build(catalogue_->items.size());
  Dataset ds = Dataset::from_columns(catalogue_, std::move(rows_), std::move(name));
  catalogue_ = std::make_shared<Catalogue>();
  rows_ = InteractionColumns();
  return ds;
}

}  // namespace fewrec::data

#include "fewrec/data/split.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"

namespace fewrec::data {

namespace {

struct KindName {
  SplitKind kind;
  const char* name;
};
constexpr KindName kKinds[] = {
    {SplitKind::kRandom, "random"},          {SplitKind::kRandomUser, "random_user"},
    {SplitKind::kTemporal, "temporal"},      {SplitKind::kLeaveOneOut, "leave_one_out"},
    {SplitKind::kColdUsers, "cold_users"},   {SplitKind::kColdItems, "cold_items"},
};

// Stream ids for derive_seed, so the kinds draw from independent streams.
constexpr uint64_t kStreamRandom = 1;
constexpr uint64_t kStreamRandomUser = 2;
constexpr uint64_t kStreamColdUsers = 3;
constexpr uint64_t kStreamColdItems = 4;

template <class T>
void shuffle(std::vector<T>& v, core::Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    auto j = static_cast<size_t>(core::uniform_index(rng, i));
    std::swap(v[i - 1], v[j]);
  }
}

int64_t round_count(double fraction, int64_t n) {
  return std::clamp<int64_t>(static_cast<int64_t>(std::llround(fraction * static_cast<double>(n))), 0, n);
}

void validate(const SplitOptions& o) {
  FEWREC_CHECK(o.train_fraction > 0 && o.train_fraction <= 1, kInvalidArgument,
               "split.train_fraction must be in (0, 1], got {}", o.train_fraction);
  FEWREC_CHECK(o.valid_fraction >= 0 && o.valid_fraction < 1, kInvalidArgument,
               "split.valid_fraction must be in [0, 1), got {}", o.valid_fraction);
  FEWREC_CHECK(o.train_fraction + o.valid_fraction <= 1 + 1e-9, kInvalidArgument,
               "split.train_fraction + split.valid_fraction must be <= 1, got {} + {}",
               o.train_fraction, o.valid_fraction);
  FEWREC_CHECK(o.cold_user_fraction > 0 && o.cold_user_fraction <= 1, kInvalidArgument,
               "split.cold_user_fraction must be in (0, 1], got {}", o.cold_user_fraction);
  FEWREC_CHECK(o.cold_item_fraction > 0 && o.cold_item_fraction <= 1, kInvalidArgument,
               "split.cold_item_fraction must be in (0, 1], got {}", o.cold_item_fraction);
  FEWREC_CHECK(o.shots >= 0, kInvalidArgument, "split.shots must be >= 0, got {}", o.shots);
  FEWREC_CHECK(o.min_history >= 0, kInvalidArgument, "split.min_history must be >= 0, got {}",
               o.min_history);
  FEWREC_CHECK(o.query_from >= 0, kInvalidArgument, "split.query_from must be >= 0, got {}", o.query_from);
}

std::string part_name(const Dataset& ds, const char* part) {
  return ds.name().empty() ? std::string(part) : ds.name() + "/" + part;
}

enum Part : uint8_t { kTrain, kValid, kTest, kSupport, kHidden };

// Builds the split from a per-row assignment (CSR row order is kept, so
// timestamp ties keep their order in every part).
Split assemble(const Dataset& ds, const std::vector<uint8_t>& part, const SplitOptions& options) {
  std::vector<Interaction> rows[5];
  const auto offsets = ds.user_offsets();
  for (UserIndex u = 0; u < ds.num_users(); ++u)
    for (int64_t i = offsets[u]; i < offsets[u + 1]; ++i) {
      const auto k = static_cast<size_t>(i);
      rows[part[k]].push_back(Interaction{u, ds.item_column()[k], ds.timestamp_column()[k],
                                          ds.value_column()[k], ds.event_column()[k],
                                          ds.weight_column()[k]});
    }
  Split s;
  s.train = Dataset(ds.catalogue_ptr(), std::move(rows[kTrain]), part_name(ds, "train"));
  s.valid = Dataset(ds.catalogue_ptr(), std::move(rows[kValid]), part_name(ds, "valid"));
  s.test = Dataset(ds.catalogue_ptr(), std::move(rows[kTest]), part_name(ds, "test"));
  s.support = Dataset(ds.catalogue_ptr(), std::move(rows[kSupport]), part_name(ds, "support"));
  s.hidden = Dataset(ds.catalogue_ptr(), std::move(rows[kHidden]), part_name(ds, "hidden"));
  s.options = options;
  return s;
}

Split split_random(const Dataset& ds, const SplitOptions& o) {
  const int64_t n = ds.num_interactions();
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  core::Rng rng(core::derive_seed(o.seed, kStreamRandom));
  shuffle(perm, rng);
  const int64_t n_train = round_count(o.train_fraction, n);
  const int64_t n_valid = std::min(round_count(o.valid_fraction, n), n - n_train);
  std::vector<uint8_t> part(static_cast<size_t>(n), kTest);
  for (int64_t k = 0; k < n_train + n_valid; ++k)
    part[static_cast<size_t>(perm[static_cast<size_t>(k)])] = k < n_train ? kTrain : kValid;
  return assemble(ds, part, o);
}

Split split_random_user(const Dataset& ds, const SplitOptions& o) {
  std::vector<uint8_t> part(static_cast<size_t>(ds.num_interactions()), kTrain);
  const auto offsets = ds.user_offsets();
  std::vector<int64_t> perm;
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    const int64_t b = offsets[u], n = offsets[u + 1] - b;
    if (n < 2) continue;  // a single row stays in train
    // One stream per user: a user's split does not depend on the others.
    core::Rng rng(core::derive_seed(core::derive_seed(o.seed, kStreamRandomUser), static_cast<uint64_t>(u)));
    perm.resize(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), b);
    shuffle(perm, rng);
    int64_t n_train = round_count(o.train_fraction, n);
    n_train = std::clamp<int64_t>(n_train, 1, o.train_fraction < 1 ? n - 1 : n);
    const int64_t rest = n - n_train;
    // Valid comes out of the rest, keeping at least one test row.
    const int64_t n_valid = std::min(round_count(o.valid_fraction, n), std::max<int64_t>(rest - 1, 0));
    for (int64_t k = n_train; k < n; ++k)
      part[static_cast<size_t>(perm[static_cast<size_t>(k)])] = k < n_train + n_valid ? kValid : kTest;
  }
  return assemble(ds, part, o);
}

Split split_temporal(const Dataset& ds, const SplitOptions& o) {
  const int64_t n = ds.num_interactions();
  const auto ts = ds.timestamp_column();
  std::vector<int64_t> sorted(ts.begin(), ts.end());
  std::sort(sorted.begin(), sorted.end());
  // Cut times: rows strictly before the train_fraction time quantile go to
  // train; ties at a cut go to the later part, so every train row is older
  // than every valid / test row.
  constexpr int64_t kInf = std::numeric_limits<int64_t>::max();
  const int64_t k1 = round_count(o.train_fraction, n);
  const int64_t k2 = std::min(n, k1 + round_count(o.valid_fraction, n));
  const int64_t t1 = k1 < n ? sorted[static_cast<size_t>(k1)] : kInf;
  const int64_t t2 = k2 < n ? sorted[static_cast<size_t>(k2)] : kInf;
  std::vector<uint8_t> part(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = ts[i];
    part[static_cast<size_t>(i)] = t < t1 ? kTrain : (t < t2 ? kValid : kTest);
  }
  return assemble(ds, part, o);
}

Split split_leave_one_out(const Dataset& ds, const SplitOptions& o) {
  const bool with_valid = o.loo_valid || o.valid_fraction > 0;
  std::vector<uint8_t> part(static_cast<size_t>(ds.num_interactions()), kTrain);
  const auto offsets = ds.user_offsets();
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    const int64_t b = offsets[u], e = offsets[u + 1];
    if (e - b < (with_valid ? 3 : 2)) continue;
    part[static_cast<size_t>(e - 1)] = kTest;  // CSR is time-sorted: the last row is the latest
    if (with_valid) part[static_cast<size_t>(e - 2)] = kValid;
  }
  return assemble(ds, part, o);
}

// The held-out users: a seeded choice among users with >= min_history rows.
std::vector<UserIndex> choose_cold_users(const Dataset& ds, const SplitOptions& o) {
  const int64_t min_history = o.min_history > 0 ? o.min_history : static_cast<int64_t>(o.shots) + 1;
  std::vector<UserIndex> candidates;
  for (UserIndex u = 0; u < ds.num_users(); ++u)
    if (ds.history_size(u) >= std::max<int64_t>(min_history, 1)) candidates.push_back(u);
  core::Rng rng(core::derive_seed(o.seed, kStreamColdUsers));
  shuffle(candidates, rng);
  int64_t k = round_count(o.cold_user_fraction, static_cast<int64_t>(candidates.size()));
  if (k == 0 && !candidates.empty()) k = 1;
  candidates.resize(static_cast<size_t>(k));
  std::sort(candidates.begin(), candidates.end());
  return candidates;
}

Split split_cold_items(const Dataset& ds, const SplitOptions& o) {
  const auto ni = static_cast<size_t>(ds.num_items());
  constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> first_seen(ni, kNever);
  const auto items = ds.item_column();
  const auto ts = ds.timestamp_column();
  for (int64_t i = 0; i < ds.num_interactions(); ++i) {
    auto it = static_cast<size_t>(items[i]);
    first_seen[it] = std::min(first_seen[it], ts[i]);
  }
  std::vector<ItemIndex> active;
  for (size_t i = 0; i < ni; ++i)
    if (first_seen[i] != kNever) active.push_back(static_cast<ItemIndex>(i));
  if (o.cold_items_newest) {
    // Latest first interaction first; ties: the later-indexed (later-added) item first.
    std::sort(active.begin(), active.end(), [&](ItemIndex a, ItemIndex b) {
      auto ta = first_seen[static_cast<size_t>(a)], tb = first_seen[static_cast<size_t>(b)];
      return ta != tb ? ta > tb : a > b;
    });
  } else {
    core::Rng rng(core::derive_seed(o.seed, kStreamColdItems));
    shuffle(active, rng);
  }
  int64_t k = round_count(o.cold_item_fraction, static_cast<int64_t>(active.size()));
  if (k == 0 && !active.empty()) k = 1;
  active.resize(static_cast<size_t>(k));
  std::sort(active.begin(), active.end());
  std::vector<char> cold(ni, 0);
  for (auto i : active) cold[static_cast<size_t>(i)] = 1;
  std::vector<uint8_t> part(static_cast<size_t>(ds.num_interactions()));
  for (int64_t i = 0; i < ds.num_interactions(); ++i)
    part[static_cast<size_t>(i)] = cold[static_cast<size_t>(items[i])] ? kTest : kTrain;
  Split s = assemble(ds, part, o);
  s.cold_items = std::move(active);
  return s;
}

int64_t active_users(const Dataset& d) { return d.num_active_users(); }

}  // namespace

SplitKind parse_split_kind(std::string_view name) {
  std::vector<std::string> names;
  for (const auto& k : kKinds) {
    if (name == k.name) return k.kind;
    names.emplace_back(k.name);
  }
  std::string valid;
  for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
  std::string hint = core::closest_match(name, names);
  FEWREC_THROW(kInvalidArgument, "unknown split kind `{}`{}; valid kinds: {}", name,
               hint.empty() ? std::string() : " (did you mean `" + hint + "`?)", valid);
}

const char* split_kind_name(SplitKind kind) {
  for (const auto& k : kKinds)
    if (k.kind == kind) return k.name;
  return "unknown";
}

SplitOptions SplitOptions::from_config(core::Config& config) {
  SplitOptions o;
  o.kind = parse_split_kind(config.get_string(
      "split.kind", split_kind_name(o.kind),
      "random | random_user | temporal | leave_one_out | cold_users | cold_items"));
  o.train_fraction = config.get_double("split.train_fraction", o.train_fraction,
                                       "fraction of interactions (or time) for training");
  o.valid_fraction = config.get_double("split.valid_fraction", o.valid_fraction,
                                       "fraction for validation, taken out of the non-train part");
  const int64_t seed = config.get_int("split.seed", static_cast<int64_t>(o.seed), "split seed");
  FEWREC_CHECK(seed >= 0, kInvalidArgument, "split.seed must be >= 0, got {}", seed);
  o.seed = static_cast<uint64_t>(seed);
  o.loo_valid = config.get_bool("split.loo_valid", o.loo_valid,
                                "leave_one_out: also hold out the second-to-last interaction");
  o.cold_user_fraction = config.get_double("split.cold_user_fraction", o.cold_user_fraction,
                                           "cold_users: fraction of eligible users held out");
  const int64_t shots = config.get_int("split.shots", o.shots, "cold_users: support-set size N");
  FEWREC_CHECK(shots >= 0 && shots <= std::numeric_limits<int>::max(), kInvalidArgument,
               "split.shots must be >= 0, got {}", shots);
  o.shots = static_cast<int>(shots);
  const int64_t min_history = config.get_int(
      "split.min_history", o.min_history,
      "cold_users: held-out users need at least this many interactions (0 = shots + 1)");
  FEWREC_CHECK(min_history >= 0 && min_history <= std::numeric_limits<int>::max(), kInvalidArgument,
               "split.min_history must be >= 0, got {}", min_history);
  o.min_history = static_cast<int>(min_history);
  const int64_t query_from = config.get_int(
      "split.query_from", o.query_from,
      "cold_users: the query is the user's interactions after the first this many (0 = right after the "
      "support); the ones between the support and the query are hidden: neither revealed nor scored, and excluded from the ranking");
  FEWREC_CHECK(query_from >= 0 && query_from <= std::numeric_limits<int>::max(), kInvalidArgument,
               "split.query_from must be >= 0, got {}", query_from);
  o.query_from = static_cast<int>(query_from);
  o.cold_item_fraction = config.get_double("split.cold_item_fraction", o.cold_item_fraction,
                                           "cold_items: fraction of items held out");
  const std::string cold_items = config.get_string(
      "split.cold_items", "newest", "cold_items: which items to hold out: newest | random");
  FEWREC_CHECK(cold_items == "newest" || cold_items == "random", kInvalidArgument,
               "split.cold_items must be `newest` or `random`, got `{}`", cold_items);
  o.cold_items_newest = cold_items == "newest";
  validate(o);
  return o;
}

nlohmann::json SplitOptions::to_json() const {
  nlohmann::json j;
  j["kind"] = split_kind_name(kind);
  j["seed"] = seed;
  switch (kind) {
    case SplitKind::kRandom:
    case SplitKind::kRandomUser:
    case SplitKind::kTemporal:
      j["train_fraction"] = train_fraction;
      j["valid_fraction"] = valid_fraction;
      break;
    case SplitKind::kLeaveOneOut:
      j["loo_valid"] = loo_valid || valid_fraction > 0;
      break;
    case SplitKind::kColdUsers:
      j["cold_user_fraction"] = cold_user_fraction;
      j["shots"] = shots;
      j["min_history"] = min_history > 0 ? min_history : shots + 1;
      if (query_from > 0) j["query_from"] = query_from;
      break;
    case SplitKind::kColdItems:
      j["cold_item_fraction"] = cold_item_fraction;
      j["cold_items"] = cold_items_newest ? "newest" : "random";
      break;
  }
  return j;
}

nlohmann::json Split::describe() const {
  nlohmann::json j = options.to_json();
  j["train_rows"] = train.num_interactions();
  j["valid_rows"] = valid.num_interactions();
  j["test_rows"] = test.num_interactions();
  j["train_users"] = active_users(train);
  j["valid_users"] = active_users(valid);
  j["test_users"] = active_users(test);
  j["train_items"] = train.num_active_items();
  j["test_items"] = test.num_active_items();
  if (options.kind == SplitKind::kColdUsers) {
    j["support_rows"] = support.num_interactions();
    if (hidden.num_interactions() > 0) j["hidden_rows"] = hidden.num_interactions();
    j["cold_users"] = cold_users.size();
  }
  if (options.kind == SplitKind::kColdItems) j["cold_items_count"] = cold_items.size();
  if (options.kind == SplitKind::kTemporal) {
    // Time boundaries, recovered from the parts.
    auto ts_min = [](const Dataset& d) -> nlohmann::json {
      auto t = d.timestamp_column();
      if (t.empty()) return nullptr;
      return *std::min_element(t.begin(), t.end());
    };
    auto ts_max = [](const Dataset& d) -> nlohmann::json {
      auto t = d.timestamp_column();
      if (t.empty()) return nullptr;
      return *std::max_element(t.begin(), t.end());
    };
    j["train_time_max"] = ts_max(train);
    j["valid_time_min"] = ts_min(valid);
    j["test_time_min"] = ts_min(test);
  }
  return j;
}

Split make_cold_user_split(const Dataset& ds, const SplitOptions& options, int shots) {
  validate(options);
  FEWREC_CHECK(shots >= 0, kInvalidArgument, "shots must be >= 0, got {}", shots);
  FEWREC_CHECK(options.query_from == 0 || options.query_from >= shots, kInvalidArgument,
               "split.query_from ({}) must be 0 or >= the support size N ({}): the query cannot overlap the support",
               options.query_from, shots);
  const int64_t query_from = options.query_from > 0 ? options.query_from : shots;
  std::vector<UserIndex> cold = choose_cold_users(ds, options);
  std::vector<uint8_t> part(static_cast<size_t>(ds.num_interactions()), kTrain);
  const auto offsets = ds.user_offsets();
  for (UserIndex u : cold) {
    const int64_t b = offsets[u], e = offsets[u + 1];
    for (int64_t i = b; i < e; ++i)
      part[static_cast<size_t>(i)] = i - b < shots ? kSupport : (i - b < query_from ? kHidden : kTest);
  }
  SplitOptions o = options;
  o.kind = SplitKind::kColdUsers;
  if (o.min_history == 0) o.min_history = options.shots + 1;  // the one actually used
  o.shots = shots;
  Split s = assemble(ds, part, o);
  s.cold_users = std::move(cold);
  return s;
}

Split make_split(const Dataset& ds, const SplitOptions& options) {
  validate(options);
  switch (options.kind) {
    case SplitKind::kRandom: return split_random(ds, options);
    case SplitKind::kRandomUser: return split_random_user(ds, options);
    case SplitKind::kTemporal: return split_temporal(ds, options);
    case SplitKind::kLeaveOneOut: return split_leave_one_out(ds, options);
    case SplitKind::kColdUsers: return make_cold_user_split(ds, options, options.shots);
    case SplitKind::kColdItems: return split_cold_items(ds, options);
  }
  FEWREC_THROW(kInvalidArgument, "unknown split kind {}", static_cast<int>(options.kind));
}

}  // namespace fewrec::data

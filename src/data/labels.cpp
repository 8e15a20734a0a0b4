#include "fewrec/data/labels.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/data/preprocess.h"

namespace fewrec::data {

namespace {

constexpr const char* kFormat = "fewrec-label-model";
constexpr int kVersion = 1;
constexpr const char* kTargetForms = "`event:NAME`, `NAME:value>=NUMBER` or `value>=NUMBER`";

double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

// log(1 + exp(z)) without overflow.
double softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

// Solves A x = b for a symmetric positive definite A (n x n, row-major) by
// Cholesky; false when A is not positive definite.
bool cholesky_solve(std::vector<double> a, std::vector<double> b, size_t n, std::vector<double>& x) {
  for (size_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    const double l = std::sqrt(d);
    a[j * n + j] = l;
    for (size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / l;
    }
  }
  for (size_t i = 0; i < n; ++i) {  // L y = b
    double s = b[i];
    for (size_t k = 0; k < i; ++k) s -= a[i * n + k] * b[k];
    b[i] = s / a[i * n + i];
  }
  for (size_t i = n; i-- > 0;) {  // L^T x = y
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= a[k * n + i] * b[k];
    b[i] = s / a[i * n + i];
  }
  x = std::move(b);
  return true;
}

// Objective of fit_logistic at weights w (bias first).
double objective(std::span<const double> x, size_t cols, std::span<const uint8_t> y, double l2,
                 const std::vector<double>& w) {
  double loss = 0;
  const size_t rows = y.size();
  for (size_t i = 0; i < rows; ++i) {
    double z = w[0];
    for (size_t c = 0; c < cols; ++c) z += x[i * cols + c] * w[c + 1];
    loss += y[i] ? softplus(-z) : softplus(z);
  }
  for (size_t c = 1; c <= cols; ++c) loss += 0.5 * l2 * w[c] * w[c];
  return loss;
}

}  // namespace

// ---------------------------------------------------------------- target, options

LabelTarget LabelTarget::parse(std::string_view text) {
  LabelTarget t;
  t.text = std::string(core::trim(text));
  const std::string_view s = t.text;
  if (s.empty())
    FEWREC_THROW(kInvalidArgument, "config key `data.label_model.target` is empty; expected {}", kTargetForms);
  if (s.rfind("event:", 0) == 0) {
    t.kind = Kind::kEvent;
    t.event = std::string(core::trim(s.substr(6)));
    if (t.event.empty())
      FEWREC_THROW(kInvalidArgument, "config key `data.label_model.target`: `{}` names no event type; expected {}",
                   t.text, kTargetForms);
    return t;
  }
  const auto ge = s.find("value>=");
  if (ge != std::string_view::npos) {
    t.kind = Kind::kValue;
    std::string_view head = core::trim(s.substr(0, ge));
    if (!head.empty()) {
      if (head.back() != ':')
        FEWREC_THROW(kInvalidArgument, "config key `data.label_model.target`: cannot parse `{}`; expected {}",
                     t.text, kTargetForms);
      t.event = std::string(core::trim(head.substr(0, head.size() - 1)));
      if (t.event.empty())
        FEWREC_THROW(kInvalidArgument, "config key `data.label_model.target`: `{}` names no event type; expected {}",
                     t.text, kTargetForms);
    }
    auto number = core::parse_double(s.substr(ge + 7));
    if (!number || !std::isfinite(*number))
      FEWREC_THROW(kInvalidArgument,
                   "config key `data.label_model.target`: `{}`: expected a number after `value>=`, got `{}`",
                   t.text, s.substr(ge + 7));
    t.threshold = *number;
    return t;
  }
  FEWREC_THROW(kInvalidArgument, "config key `data.label_model.target`: cannot parse `{}`; expected {}", t.text,
               kTargetForms);
}

LabelModelOptions LabelModelOptions::from_config(core::Config& config) {
  LabelModelOptions o;
  o.target = config.get_string("data.label_model.target", "",
                               "label model supervision: event:NAME | NAME:value>=T | value>=T (see Label model)");
  o.threshold = config.get_double("data.label_model.threshold", o.threshold,
                                  "label model: a pair is positive when its probability >= this");
  o.l2 = config.get_double("data.label_model.l2", o.l2, "label model: L2 penalty on the standardised weights");
  o.trust_observed = config.get_bool(
      "data.label_model.trust_observed", o.trust_observed,
      "label model: a pair's observed target label overrides the model's probability");
  if (!o.target.empty()) LabelTarget::parse(o.target);  // malformed -> error now
  o.validate();
  return o;
}

void LabelModelOptions::validate() const {
  FEWREC_CHECK(threshold > 0 && threshold < 1, kInvalidArgument,
               "config key `data.label_model.threshold` must be in (0, 1), got {}", threshold);
  FEWREC_CHECK(l2 >= 0 && std::isfinite(l2), kInvalidArgument,
               "config key `data.label_model.l2` must be >= 0, got {}", l2);
  FEWREC_CHECK(max_iterations > 0, kInvalidArgument, "label model: max_iterations must be > 0, got {}",
               max_iterations);
}

// ---------------------------------------------------------------- pairs

int PairTable::column(std::string_view name) const {
  for (size_t c = 0; c < signal_names.size(); ++c)
    if (signal_names[c] == name) return static_cast<int>(c);
  return -1;
}

int64_t PairTable::num_labelled() const {
  return std::accumulate(labelled.begin(), labelled.end(), int64_t{0});
}

PairTable build_pair_table(const Dataset& ds, const LabelTarget& target) {
  const auto& types = ds.event_types();
  const auto events = ds.event_column();
  // Event types that occur in the data.
  std::vector<int64_t> type_count(static_cast<size_t>(std::max(1, types.size())), 0);
  for (auto e : events) ++type_count[e];
  std::vector<std::string> present;
  for (int32_t e = 0; e < types.size(); ++e)
    if (type_count[static_cast<size_t>(e)] > 0) present.push_back(types.id(e));

  int target_type = -1;
  if (!target.event.empty()) {
    target_type = types.find(target.event);
    if (target_type < 0 || type_count[static_cast<size_t>(target_type)] == 0) {
      std::string hint = core::closest_match(target.event, present);
      FEWREC_THROW(kInvalidArgument,
                   "config key `data.label_model.target`: `{}`: unknown event type `{}`{}; the data has: {}",
                   target.text, target.event, hint.empty() ? "" : fmt::format(" (did you mean `{}`?)", hint),
                   present.empty() ? "(none)" : core::join(present, ", "));
    }
  }
  const bool value_is_target = target.kind == LabelTarget::Kind::kValue && target.event.empty();

  PairTable t;
  // Feature event types: present ones except the target's.
  std::vector<int> type_col(type_count.size(), -1);
  std::vector<std::string> names;
  int feature_types = 0;
  for (int32_t e = 0; e < types.size(); ++e) {
    if (type_count[static_cast<size_t>(e)] == 0 || e == target_type) continue;
    type_col[static_cast<size_t>(e)] = static_cast<int>(names.size());
    names.push_back("count:" + types.id(e));
    ++feature_types;
  }
  const int c_events = feature_types > 1 ? static_cast<int>(names.size()) : -1;
  if (c_events >= 0) names.push_back("events");
  int c_vmax = -1, c_vlast = -1, c_vcent = -1;
  if (!value_is_target) {
    c_vmax = static_cast<int>(names.size());
    names.push_back("value_max");
    c_vlast = c_vmax + 1;
    names.push_back("value_last");
    c_vcent = c_vmax + 2;
    names.push_back("value_centred");
  }
  const int c_wsum = static_cast<int>(names.size());
  names.push_back("weight_sum");
  t.signal_names = names;
  const size_t nc = names.size();

  const auto offsets = ds.user_offsets();
  const auto items = ds.item_column();
  const auto values = ds.value_column();
  const auto weights = ds.weight_column();
  const auto times = ds.timestamp_column();
  std::vector<int64_t> pos;
  for (UserIndex u = 0; u < ds.num_users(); ++u) {
    const int64_t b = offsets[u], e = offsets[u + 1];
    if (e == b) continue;
    // The user's mean value over non-target events (for value_centred).
    double vsum = 0;
    int64_t vn = 0;
    for (int64_t r = b; r < e; ++r)
      if (events[r] != target_type) {
        vsum += values[r];
        ++vn;
      }
    const double user_mean = vn > 0 ? vsum / static_cast<double>(vn) : 0.0;
    pos.resize(static_cast<size_t>(e - b));
    std::iota(pos.begin(), pos.end(), b);
    // Stable by item: inside an item the rows stay in time order.
    std::stable_sort(pos.begin(), pos.end(), [&](int64_t x, int64_t y) { return items[x] < items[y]; });
    for (size_t g = 0; g < pos.size();) {
      size_t h = g;
      while (h < pos.size() && items[pos[h]] == items[pos[g]]) ++h;
      std::vector<double> row(nc, 0.0);
      int64_t n_feat = 0;
      double vmax = 0, vlast = 0, wsum = 0;
      bool has_target = false;
      double target_last = 0;
      int64_t last_t = times[pos[g]];
      for (size_t k = g; k < h; ++k) {
        const int64_t r = pos[k];
        last_t = std::max(last_t, times[r]);
        if (events[r] == target_type) {
          has_target = true;
          target_last = values[r];
          continue;
        }
        row[static_cast<size_t>(type_col[events[r]])] += 1;
        vmax = n_feat == 0 ? values[r] : std::max(vmax, static_cast<double>(values[r]));
        vlast = values[r];
        wsum += weights[r];
        ++n_feat;
      }
      if (c_events >= 0) row[static_cast<size_t>(c_events)] = static_cast<double>(n_feat);
      if (c_vmax >= 0 && n_feat > 0) {
        row[static_cast<size_t>(c_vmax)] = vmax;
        row[static_cast<size_t>(c_vlast)] = vlast;
        row[static_cast<size_t>(c_vcent)] = vlast - user_mean;
      }
      row[static_cast<size_t>(c_wsum)] = wsum;

      uint8_t labelled = 0, label = 0, observed = 0;
      if (target.kind == LabelTarget::Kind::kEvent) {
        labelled = 1;
        label = has_target ? 1 : 0;
        observed = label;  // absence is a training negative, not an observation
      } else if (target.event.empty()) {
        labelled = observed = 1;
        label = values[pos[h - 1]] >= target.threshold ? 1 : 0;  // latest event of the pair
      } else if (has_target) {
        labelled = observed = 1;
        label = target_last >= target.threshold ? 1 : 0;
      }
      t.users.push_back(u);
      t.items.push_back(items[pos[g]]);
      t.last_timestamps.push_back(last_t);
      t.signals.insert(t.signals.end(), row.begin(), row.end());
      t.labelled.push_back(labelled);
      t.labels.push_back(label);
      t.observed.push_back(observed);
      g = h;
    }
  }
  return t;
}

// ---------------------------------------------------------------- logistic regression

LogisticFit fit_logistic(std::span<const double> x, size_t cols, std::span<const uint8_t> y, double l2,
                         int max_iterations) {
  const size_t rows = y.size();
  FEWREC_CHECK(x.size() == rows * cols, kInvalidArgument, "fit_logistic: {} values for {} rows x {} columns",
               x.size(), rows, cols);
  FEWREC_CHECK(l2 >= 0, kInvalidArgument, "fit_logistic: l2 must be >= 0, got {}", l2);
  const size_t d = cols + 1;
  LogisticFit fit;
  fit.weights.assign(d, 0.0);
  double obj = objective(x, cols, y, l2, fit.weights);
  std::vector<double> grad(d), hess(d * d), step;
  std::vector<double> xi(d);
  for (int it = 0; it < max_iterations; ++it) {
    std::fill(grad.begin(), grad.end(), 0.0);
    std::fill(hess.begin(), hess.end(), 0.0);
    for (size_t i = 0; i < rows; ++i) {
      xi[0] = 1.0;
      for (size_t c = 0; c < cols; ++c) xi[c + 1] = x[i * cols + c];
      double z = 0;
      for (size_t c = 0; c < d; ++c) z += xi[c] * fit.weights[c];
      const double p = sigmoid(z);
      const double r = p - (y[i] ? 1.0 : 0.0);
      const double w = std::max(p * (1 - p), 1e-12);
      for (size_t a = 0; a < d; ++a) {
        grad[a] += r * xi[a];
        const double wa = w * xi[a];
        for (size_t b = 0; b <= a; ++b) hess[a * d + b] += wa * xi[b];
      }
    }
    for (size_t a = 0; a < d; ++a)
      for (size_t b = 0; b < a; ++b) hess[b * d + a] = hess[a * d + b];
    for (size_t c = 1; c < d; ++c) {
      grad[c] += l2 * fit.weights[c];
      hess[c * d + c] += l2;
    }
    // A tiny ridge keeps the system solvable for constant columns without l2.
    for (size_t c = 0; c < d; ++c) hess[c * d + c] += 1e-9 * (1.0 + hess[c * d + c]);
    if (!cholesky_solve(hess, grad, d, step)) break;
    // Step halving until the objective does not increase.
    double t = 1.0;
    std::vector<double> next(d);
    double next_obj = obj;
    bool moved = false;
    for (int h = 0; h < 40; ++h, t *= 0.5) {
      for (size_t c = 0; c < d; ++c) next[c] = fit.weights[c] - t * step[c];
      next_obj = objective(x, cols, y, l2, next);
      if (next_obj <= obj) {
        moved = true;
        break;
      }
    }
    fit.iterations = it + 1;
    if (!moved) {
      fit.converged = true;  // no descent left at machine precision
      break;
    }
    double max_step = 0;
    for (size_t c = 0; c < d; ++c) max_step = std::max(max_step, std::abs(next[c] - fit.weights[c]));
    fit.weights = next;
    const double improvement = obj - next_obj;
    obj = next_obj;
    if (max_step < 1e-9 || improvement <= 1e-12 * (1.0 + std::abs(obj))) {
      fit.converged = true;
      break;
    }
  }
  return fit;
}

// ---------------------------------------------------------------- LabelModel

LabelModel LabelModel::fit(const PairTable& pairs, const LabelModelOptions& options,
                           std::span<const uint8_t> train_mask) {
  options.validate();
  FEWREC_CHECK(!options.target.empty(), kInvalidArgument,
               "the label model needs a target: set `data.label_model.target` ({})", kTargetForms);
  FEWREC_CHECK(train_mask.empty() || train_mask.size() == pairs.size(), kInvalidArgument,
               "label model: train mask has {} entries for {} pairs", train_mask.size(), pairs.size());
  std::vector<size_t> rows;
  int64_t positives = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (!pairs.labelled[i] || (!train_mask.empty() && !train_mask[i])) continue;
    rows.push_back(i);
    positives += pairs.labels[i];
  }
  const auto n = static_cast<int64_t>(rows.size());
  FEWREC_CHECK(n > 0, kInvalidArgument, "data.label_model.target `{}`: no labelled pair to train on ({} pairs)",
               options.target, pairs.size());
  FEWREC_CHECK(positives > 0, kInvalidArgument,
               "data.label_model.target `{}`: no positive example among {} labelled pairs (need both classes)",
               options.target, n);
  FEWREC_CHECK(positives < n, kInvalidArgument,
               "data.label_model.target `{}`: no negative example among {} labelled pairs (need both classes)",
               options.target, n);

  LabelModel m;
  m.options_ = options;
  m.train_pairs_ = n;
  m.train_positives_ = positives;
  m.features_.push_back(Feature{"bias", "", false, 0, 1, 0});
  for (const auto& s : pairs.signal_names) {
    const bool lg = s.rfind("count:", 0) == 0 || s == "events" || s == "weight_sum";
    m.features_.push_back(Feature{lg ? "log1p(" + s + ")" : s, s, lg, 0, 1, 0});
  }
  const size_t cols = pairs.signal_names.size();
  // Transformed features of the training rows, then standardised.
  std::vector<double> x(rows.size() * cols);
  std::vector<uint8_t> y(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < cols; ++c) {
      double v = pairs.signal(rows[r], static_cast<int>(c));
      if (m.features_[c + 1].log1p) v = std::log1p(std::max(0.0, v));
      x[r * cols + c] = v;
    }
    y[r] = pairs.labels[rows[r]];
  }
  for (size_t c = 0; c < cols; ++c) {
    double mean = 0;
    for (size_t r = 0; r < rows.size(); ++r) mean += x[r * cols + c];
    mean /= static_cast<double>(rows.size());
    double var = 0;
    for (size_t r = 0; r < rows.size(); ++r) var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
    var /= static_cast<double>(rows.size());
    // A constant column (up to rounding) keeps scale 1: it stays 0 after centring.
    const double scale = var > 1e-12 * (1.0 + mean * mean) ? std::sqrt(var) : 1.0;
    for (size_t r = 0; r < rows.size(); ++r) x[r * cols + c] = (x[r * cols + c] - mean) / scale;
    m.features_[c + 1].mean = mean;
    m.features_[c + 1].scale = scale;
  }
  auto fit = fit_logistic(x, cols, y, options.l2, options.max_iterations);
  for (size_t c = 0; c <= cols; ++c) m.features_[c].weight = fit.weights[c];
  m.iterations_ = fit.iterations;
  return m;
}

std::vector<float> LabelModel::predict(const PairTable& pairs) const {
  std::vector<int> col(features_.size(), -1);
  for (size_t f = 1; f < features_.size(); ++f) col[f] = pairs.column(features_[f].signal);
  std::vector<float> out(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    double z = features_[0].weight;
    for (size_t f = 1; f < features_.size(); ++f) {
      const auto& ft = features_[f];
      double v = col[f] >= 0 ? pairs.signal(i, col[f]) : 0.0;
      if (ft.log1p) v = std::log1p(std::max(0.0, v));
      z += ft.weight * (v - ft.mean) / ft.scale;
    }
    out[i] = static_cast<float>(sigmoid(z));
  }
  return out;
}

std::vector<float> LabelModel::confidence(const PairTable& pairs) const {
  auto p = predict(pairs);
  if (options_.trust_observed)
    for (size_t i = 0; i < pairs.size(); ++i)
      if (pairs.observed[i]) p[i] = pairs.labels[i] ? 1.0f : 0.0f;
  return p;
}

nlohmann::json LabelModel::to_json() const {
  nlohmann::json feats = nlohmann::json::array();
  for (const auto& f : features_)
    feats.push_back({{"name", f.name},
                     {"signal", f.signal},
                     {"log1p", f.log1p},
                     {"mean", f.mean},
                     {"scale", f.scale},
                     {"weight", f.weight}});
  return {{"format", kFormat},
          {"version", kVersion},
          {"target", options_.target},
          {"threshold", options_.threshold},
          {"l2", options_.l2},
          {"trust_observed", options_.trust_observed},
          {"train_pairs", train_pairs_},
          {"train_positives", train_positives_},
          {"iterations", iterations_},
          {"features", feats}};
}

LabelModel LabelModel::from_json(const nlohmann::json& j, std::string_view origin) {
  auto bad = [&](std::string_view what) -> Error {
    return Error(ErrorCode::kCorrupt, fmt::format("`{}` is not a valid label model: {}", origin, what), __FILE__,
                 __LINE__);
  };
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string() || j["format"] != kFormat)
    throw bad(fmt::format("format is not `{}`", kFormat));
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int64_t>() != kVersion)
    throw bad(fmt::format("unsupported version (expected {})", kVersion));
  LabelModel m;
  try {
    m.options_.target = j.at("target").get<std::string>();
    m.options_.threshold = j.at("threshold").get<double>();
    m.options_.l2 = j.at("l2").get<double>();
    m.options_.trust_observed = j.at("trust_observed").get<bool>();
    m.train_pairs_ = j.at("train_pairs").get<int64_t>();
    m.train_positives_ = j.at("train_positives").get<int64_t>();
    m.iterations_ = j.at("iterations").get<int>();
    for (const auto& f : j.at("features")) {
      Feature ft{f.at("name").get<std::string>(), f.at("signal").get<std::string>(), f.at("log1p").get<bool>(),
                 f.at("mean").get<double>(),      f.at("scale").get<double>(),       f.at("weight").get<double>()};
      if (!std::isfinite(ft.mean) || !std::isfinite(ft.weight) || !(ft.scale > 0) || !std::isfinite(ft.scale))
        throw bad(fmt::format("feature `{}` has a non-finite weight, mean or scale", ft.name));
      m.features_.push_back(std::move(ft));
    }
  } catch (const nlohmann::json::exception& e) {
    throw bad(e.what());
  }
  if (m.features_.empty() || m.features_[0].name != "bias" || !m.features_[0].signal.empty())
    throw bad("the first feature must be the bias");
  try {
    LabelTarget::parse(m.options_.target);
    m.options_.validate();
  } catch (const Error& e) {
    throw bad(e.message());
  }
  return m;
}

void LabelModel::save(const std::filesystem::path& path) const {
  std::ofstream out(path);
  if (!out) FEWREC_THROW(kIo, "cannot write `{}`: {}", path.string(), std::strerror(errno));
  out << to_json().dump(2) << "\n";
  out.close();
  if (!out) FEWREC_THROW(kIo, "write failed for `{}`", path.string());
}

LabelModel LabelModel::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) FEWREC_THROW(kNotFound, "cannot open label model `{}`: {}", path.string(), std::strerror(errno));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) FEWREC_THROW(kCorrupt, "`{}` is not a valid label model: not JSON", path.string());
  return from_json(j, path.string());
}

// ---------------------------------------------------------------- applying it

Dataset apply_label_model(const Dataset& raw, const LabelModelOptions& options, DedupeKeep keep,
                          LabelReport* report) {
  FEWREC_CHECK(!options.target.empty(), kInvalidArgument,
               "data.labels = \"model\" needs `data.label_model.target` ({})", kTargetForms);
  const auto table = build_pair_table(raw, LabelTarget::parse(options.target));
  const auto model = LabelModel::fit(table, options);
  const auto conf = model.confidence(table);
  // Pair lookup: pairs are sorted by (user, item).
  auto find_pair = [&](UserIndex u, ItemIndex i) -> size_t {
    auto lo = std::lower_bound(table.users.begin(), table.users.end(), u) - table.users.begin();
    auto hi = std::upper_bound(table.users.begin(), table.users.end(), u) - table.users.begin();
    auto it = std::lower_bound(table.items.begin() + lo, table.items.begin() + hi, i);
    FEWREC_ASSERT(it != table.items.begin() + hi && *it == i);
    return static_cast<size_t>(it - table.items.begin());
  };
  const Dataset one = dedupe(raw, keep);
  std::vector<Interaction> out;
  for (auto r : one.rows()) {
    const float c = conf[find_pair(r.user, r.item)];
    if (c < options.threshold) continue;
    r.weight = c;
    out.push_back(r);
  }
  if (report) {
    report->pairs = static_cast<int64_t>(table.size());
    report->labelled = table.num_labelled();
    report->kept = static_cast<int64_t>(out.size());
    report->model = model.to_json();
  }
  return Dataset(raw.catalogue_ptr(), std::move(out), raw.name());
}

}  // namespace fewrec::data

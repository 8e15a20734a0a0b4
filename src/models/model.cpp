#include "fewrec/models/model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::models {

// ---------------------------------------------------------------------------
// ModelSpec

std::string ModelSpec::to_string() const {
  if (options.empty()) return name;
  std::string out = name;
  char sep = ':';
  for (const auto& [key, value] : options) {  // std::map: sorted, so the string is canonical
    out += sep;
    out += key;
    out += '=';
    out += value;
    sep = ',';
  }
  return out;
}

ModelSpec ModelSpec::parse(std::string_view text) {
  const std::string_view whole = core::trim(text);
  const size_t colon = whole.find(':');
  const std::string_view name = core::trim(whole.substr(0, colon));
  if (name.empty())
    FEWREC_THROW(kInvalidArgument, "model spec `{}`: missing model name; expected name or name:key=value,...",
                 core::excerpt(text));
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok)
      FEWREC_THROW(kInvalidArgument,
                   "model spec `{}`: bad model name `{}` (letters, digits, `_`, `-`, `.` only)",
                   core::excerpt(text), core::excerpt(name));
  }
  ModelSpec spec;
  spec.name = std::string(name);
  if (colon != std::string_view::npos) {
    const std::string_view rest = whole.substr(colon + 1);
    if (core::trim(rest).empty())
      FEWREC_THROW(kInvalidArgument, "model spec `{}`: expected key=value options after `:`",
                   core::excerpt(text));
    spec.options = core::parse_kv_list(rest, fmt::format("model spec `{}`", core::excerpt(text)));
  }
  return spec;
}

// ---------------------------------------------------------------------------
// Model defaults

void Model::score_all(const UserState& state, std::span<float> out) const {
  const int32_t n = num_items();
  FEWREC_CHECK(out.size() == static_cast<size_t>(n), kInvalidArgument,
               "model `{}`: score_all needs an output of {} scores (one per item), got {}", name(), n,
               out.size());
  std::vector<ItemIndex> items(static_cast<size_t>(n));
  std::iota(items.begin(), items.end(), ItemIndex{0});
  score(state, items, out);
}

void Model::add_items(const data::Catalogue& catalogue, ItemIndex first_new_item) {
  FEWREC_THROW(kUnavailable, "model `{}` cannot add items from content", name());
}

// ---------------------------------------------------------------------------
// Ranking

std::vector<ItemIndex> top_k(std::span<const float> scores, int k, std::span<const ItemIndex> exclude) {
  std::vector<ItemIndex> heap;
  if (k <= 0 || scores.empty()) return heap;

  // Exclusions are walked in step with the items, so they must be sorted.
  std::vector<ItemIndex> sorted_copy;
  if (!std::is_sorted(exclude.begin(), exclude.end())) {
    sorted_copy.assign(exclude.begin(), exclude.end());
    std::sort(sorted_copy.begin(), sorted_copy.end());
    exclude = sorted_copy;
  }

  // `better(a, b)`: a ranks before b (higher score, then lower index). With it
  // as the heap order the heap's front is the worst item kept so far.
  auto better = [&](ItemIndex a, ItemIndex b) {
    const float sa = scores[static_cast<size_t>(a)];
    const float sb = scores[static_cast<size_t>(b)];
    return sa > sb || (sa == sb && a < b);
  };
  const size_t want = std::min(static_cast<size_t>(k), scores.size());
  heap.reserve(want);
  size_t e = 0;
  const auto n = static_cast<ItemIndex>(scores.size());
  for (ItemIndex i = 0; i < n; ++i) {
    while (e < exclude.size() && exclude[e] < i) ++e;
    if (e < exclude.size() && exclude[e] == i) continue;
    if (std::isnan(scores[static_cast<size_t>(i)])) continue;  // NaN is never ranked
    if (heap.size() < want) {
      heap.push_back(i);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(i, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = i;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);  // best first
  return heap;
}

std::vector<std::pair<ItemIndex, float>> recommend(const Model& model, const data::UserContext& context,
                                                   int k, bool exclude_seen) {
  auto state = model.adapt(context);
  std::vector<float> scores(static_cast<size_t>(model.num_items()));
  model.score_all(*state, scores);
  auto items = top_k(scores, k, exclude_seen ? std::span<const ItemIndex>(state->seen)
                                             : std::span<const ItemIndex>());
  std::vector<std::pair<ItemIndex, float>> out;
  out.reserve(items.size());
  for (ItemIndex i : items) out.emplace_back(i, scores[static_cast<size_t>(i)]);
  return out;
}

}  // namespace fewrec::models

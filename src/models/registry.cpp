#include "fewrec/models/registry.h"

#include <algorithm>

#include "builtin.h"
#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::models {

void ModelRegistry::add(ModelInfo info) {
  FEWREC_ASSERT(!info.name.empty());
  FEWREC_ASSERT(info.create != nullptr);
  FEWREC_ASSERT(info.load != nullptr);
  if (contains(info.name))
    FEWREC_THROW(kInternal, "model `{}` is registered twice", info.name);
  infos_.push_back(std::move(info));
}

bool ModelRegistry::contains(std::string_view name) const {
  return std::any_of(infos_.begin(), infos_.end(), [&](const ModelInfo& i) { return i.name == name; });
}

const ModelInfo& ModelRegistry::get(std::string_view name) const {
  for (const auto& info : infos_)
    if (info.name == name) return info;
  std::vector<std::string> known;
  for (const auto* info : list()) known.push_back(info->name);
  std::string message = fmt::format("unknown model `{}`; known: {}", core::excerpt(name),
                                    known.empty() ? std::string("none") : core::join(known, ", "));
  if (std::string hint = core::closest_match(name, known); !hint.empty())
    message += fmt::format("; did you mean `{}`?", hint);
  FEWREC_THROW(kNotFound, "{}", message);
}

std::vector<const ModelInfo*> ModelRegistry::list() const {
  std::vector<const ModelInfo*> out;
  out.reserve(infos_.size());
  for (const auto& info : infos_) out.push_back(&info);
  std::sort(out.begin(), out.end(), [](const ModelInfo* a, const ModelInfo* b) { return a->name < b->name; });
  return out;
}

std::unique_ptr<Model> ModelRegistry::create(const ModelSpec& spec) const {
  auto model = get(spec.name).create(spec);
  FEWREC_ASSERT(model != nullptr);
  return model;
}

ModelRegistry& model_registry() {
  // Built once, thread-safely (function-local static), on first use.
  static ModelRegistry registry = [] {
    ModelRegistry r;
    register_builtin_models(r);
    return r;
  }();
  return registry;
}

void register_builtin_models(ModelRegistry& registry) {
  // The one place built-in models are added.
  register_popularity(registry);
  register_random(registry);
  register_itemknn(registry);
  register_als(registry);
  register_bpr(registry);
  register_hybrid(registry);
  register_sasrec(registry);
  register_two_tower(registry);
  register_melu(registry);
  register_content(registry);
  register_meta_ranker(registry);
  register_multitask(registry);
}

}  // namespace fewrec::models

// Registration hooks of the built-in models (internal to the models layer).
// register_builtin_models() in registry.cpp calls each of them; a new model
// adds one declaration here and one call there.
#pragma once

#include "fewrec/models/registry.h"

namespace fewrec::models {

void register_popularity(ModelRegistry& registry);
void register_random(ModelRegistry& registry);
void register_itemknn(ModelRegistry& registry);
void register_als(ModelRegistry& registry);
void register_bpr(ModelRegistry& registry);
void register_hybrid(ModelRegistry& registry);
void register_sasrec(ModelRegistry& registry);
void register_two_tower(ModelRegistry& registry);
void register_melu(ModelRegistry& registry);
void register_content(ModelRegistry& registry);
void register_meta_ranker(ModelRegistry& registry);
void register_multitask(ModelRegistry& registry);

}  // namespace fewrec::models

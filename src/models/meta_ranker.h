// Test hooks of the meta_ranker model (internal to the models layer and its
// tests): the raw signals it computes, so a test can check that a simulated
// task's leave-one-user-out signals equal those of a model trained without
// that user.
#pragma once

#include <vector>

#include "fewrec/data/context.h"
#include "fewrec/data/dataset.h"
#include "fewrec/models/model.h"

namespace fewrec::models {

// Signals [num_items x signals] of the simulated task of training user `user`
// with support = their first `n_support` events (counts without the user).
// `model` must be a meta_ranker trained on `train`.
std::vector<float> meta_ranker_task_signals(Model& model, const data::Dataset& train, data::UserIndex user,
                                            int n_support);
// Signals [num_items x signals] of a context, as adapt() computes them.
std::vector<float> meta_ranker_context_signals(const Model& model, const data::UserContext& context);
inline constexpr int kMetaRankerSignals = 12;

}  // namespace fewrec::models

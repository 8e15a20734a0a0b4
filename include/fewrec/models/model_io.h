// Saving and loading trained models as artifacts (kind "model").
//
// Sections: "spec" (string, ModelSpec::to_string), "config" (json: the
// effective config), "meta" (json: fewrec version, created, train stats),
// "catalogue/users", "catalogue/items" (external ids, so recommendations can
// be made by id), "catalogue/item_features/..." reserved, then the model's
// own sections under "model/". The spec is parsed back through the registry.
#pragma once

#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "fewrec/data/dataset.h"
#include "fewrec/models/model.h"
#include "fewrec/models/registry.h"

namespace fewrec::models {

struct LoadedModel {
  std::unique_ptr<Model> model;
  ModelSpec spec;
  nlohmann::json config;  // effective config at training time
  nlohmann::json meta;
  std::vector<std::string> user_ids;  // external ids by index
  std::vector<std::string> item_ids;
};

void save_model(const std::filesystem::path& path, const Model& model,
                const data::Catalogue& catalogue, const nlohmann::json& config,
                const nlohmann::json& meta = nlohmann::json::object());

// Throws kCorrupt / kNotFound with the path on a bad artifact.
LoadedModel load_model(const std::filesystem::path& path,
                       const ModelRegistry& registry = model_registry());

}  // namespace fewrec::models

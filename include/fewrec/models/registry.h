// Model registry: every model by name, with a description and its options.
// Registered explicitly from register_builtin_models(); an unknown name is an
// error that lists the known ones.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fewrec/models/model.h"

namespace fewrec::models {

struct OptionDoc {
  std::string key;
  std::string default_value;
  std::string doc;
};

struct ModelInfo {
  std::string name;
  std::string description;  // one line
  std::vector<OptionDoc> options;
  // Builds an untrained model; validates options (unknown option -> error
  // listing the known ones).
  std::function<std::unique_ptr<Model>(const ModelSpec&)> create;
  // Restores a trained model from its artifact sections (written by save()).
  std::function<std::unique_ptr<Model>(const ModelSpec&, const core::ArtifactReader&,
                                       const std::string& prefix)>
      load;
};

class ModelRegistry {
 public:
  void add(ModelInfo info);  // duplicate name -> kInternal
  // kNotFound: "unknown model `sasrek`; known: als, bpr, itemknn, popularity"
  const ModelInfo& get(std::string_view name) const;
  bool contains(std::string_view name) const;
  std::vector<const ModelInfo*> list() const;  // sorted by name
  std::unique_ptr<Model> create(const ModelSpec& spec) const;

 private:
  std::vector<ModelInfo> infos_;
};

// The process-wide registry with the built-in models registered (idempotent).
ModelRegistry& model_registry();

// Registers popularity, itemknn, ... into `registry`.
void register_builtin_models(ModelRegistry& registry);

}  // namespace fewrec::models

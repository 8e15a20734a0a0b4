#include "fewrec/models/model_io.h"

#include <chrono>
#include <ctime>
#include <exception>

#include "fewrec/core/artifact.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::models {

namespace {

constexpr const char* kKind = "model";
constexpr const char* kModelPrefix = "model/";

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  FEWREC_THROW(kCorrupt, "model artifact `{}`: {}", path, what);
}

void require_section(const core::ArtifactReader& reader, const std::string& path, const std::string& name) {
  if (!reader.has(name)) corrupt(path, fmt::format("missing section `{}`", name));
}

}  // namespace

void save_model(const std::filesystem::path& path, const Model& model, const data::Catalogue& catalogue,
                const nlohmann::json& config, const nlohmann::json& meta) {
  // A model must cover exactly the catalogue saved with it, or it could not be
  // loaded back.
  FEWREC_CHECK(model.num_items() == catalogue.items.size(), kInvalidArgument,
               "cannot save model `{}` to `{}`: it scores {} items but the catalogue has {}", model.name(),
               path.string(), model.num_items(), catalogue.items.size());
  core::ArtifactWriter writer(kKind);
  writer.put_string("spec", model.spec().to_string());
  writer.put_json("config", config);
  nlohmann::json m = meta.is_object() ? meta : nlohmann::json::object();
  if (!m.contains("created")) m["created"] = utc_now();
  m["model"] = model.spec().to_string();
  m["num_users"] = catalogue.users.size();
  m["num_items"] = catalogue.items.size();
  m["summary"] = model.summary();
  writer.put_json("meta", m);
  writer.put_strings("catalogue/users", catalogue.users.ids());
  writer.put_strings("catalogue/items", catalogue.items.ids());
  model.save(writer, kModelPrefix);
  writer.save(path);
}

LoadedModel load_model(const std::filesystem::path& path, const ModelRegistry& registry) {
  const std::string p = path.string();
  // Magic, version, kind and checksum (kCorrupt / kNotFound / kIo naming the path).
  const auto reader = core::ArtifactReader::open(path, kKind);

  for (const char* name : {"spec", "config", "meta", "catalogue/users", "catalogue/items"})
    require_section(reader, p, name);

  LoadedModel out;
  const std::string spec_text = reader.get_string("spec");
  try {
    out.spec = ModelSpec::parse(spec_text);
  } catch (const Error& e) {
    corrupt(p, fmt::format("bad model spec: {}", e.message()));
  }
  if (!registry.contains(out.spec.name)) {
    std::vector<std::string> known;
    for (const auto* info : registry.list()) known.push_back(info->name);
    FEWREC_THROW(kNotFound,
                 "model artifact `{}`: holds unknown model `{}` (made by a newer or different build?); known: {}",
                 p, core::excerpt(out.spec.name), core::join(known, ", "));
  }
  out.config = reader.get_json("config");
  out.meta = reader.get_json("meta");
  out.user_ids = reader.get_strings("catalogue/users");
  out.item_ids = reader.get_strings("catalogue/items");

  const ModelInfo& info = registry.get(out.spec.name);
  try {
    out.model = info.load(out.spec, reader, kModelPrefix);
  } catch (const Error& e) {
    // Whatever the loader tripped on (a missing or mis-sized section, an
    // option the spec should not hold), the file is at fault.
    if (e.message().find(p) != std::string::npos) FEWREC_THROW(kCorrupt, "{}", e.message());
    corrupt(p, e.message());
  } catch (const std::exception& e) {
    corrupt(p, fmt::format("model `{}` could not be restored: {}", out.spec.name, e.what()));
  }
  if (!out.model) corrupt(p, fmt::format("model `{}`: the loader returned nothing", out.spec.name));
  if (static_cast<size_t>(out.model->num_items()) != out.item_ids.size())
    corrupt(p, fmt::format("model `{}` scores {} items but the artifact's catalogue lists {}", out.spec.name,
                           out.model->num_items(), out.item_ids.size()));
  return out;
}

}  // namespace fewrec::models

#include <algorithm>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/text/encoder.h"

namespace fewrec::text {

void EncoderRegistry::add(EncoderInfo info) {
  FEWREC_ASSERT(!info.name.empty());
  FEWREC_ASSERT(info.create != nullptr);
  if (contains(info.name)) FEWREC_THROW(kInternal, "text encoder `{}` is registered twice", info.name);
  infos_.push_back(std::move(info));
}

bool EncoderRegistry::contains(std::string_view name) const {
  return std::any_of(infos_.begin(), infos_.end(), [&](const EncoderInfo& i) { return i.name == name; });
}

const EncoderInfo& EncoderRegistry::get(std::string_view name) const {
  for (const auto& info : infos_)
    if (info.name == name) return info;
  std::vector<std::string> known;
  for (const auto* info : list()) known.push_back(info->name);
  std::string message = fmt::format("unknown text encoder `{}`; known: {}", core::excerpt(name),
                                    known.empty() ? std::string("none") : core::join(known, ", "));
  if (std::string hint = core::closest_match(name, known); !hint.empty())
    message += fmt::format("; did you mean `{}`?", hint);
  FEWREC_THROW(kNotFound, "{}", message);
}

std::vector<const EncoderInfo*> EncoderRegistry::list() const {
  std::vector<const EncoderInfo*> out;
  for (const auto& info : infos_) out.push_back(&info);
  std::sort(out.begin(), out.end(), [](const EncoderInfo* a, const EncoderInfo* b) { return a->name < b->name; });
  return out;
}

std::unique_ptr<TextEncoder> EncoderRegistry::create(std::string_view name,
                                                     const std::map<std::string, std::string>& options) const {
  auto encoder = get(name).create(options);
  FEWREC_ASSERT(encoder != nullptr);
  return encoder;
}

EncoderRegistry& encoder_registry() {
  static EncoderRegistry registry = [] {
    EncoderRegistry r;
    register_hashing_encoder(r);
    register_glove_encoder(r);
    register_bert_encoder(r);
    return r;
  }();
  return registry;
}

}  // namespace fewrec::text

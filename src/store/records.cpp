// Validation of store records: the rules every Store implementation enforces
// before it writes.
#include "fewrec/store/records.h"

#include <cmath>

#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"

namespace fewrec::store {

namespace {

constexpr size_t kMaxNameBytes = 256;

// "" when `id` is a valid id, else what is wrong with it.
std::string id_problem(std::string_view id, size_t max_bytes) {
  if (id.empty()) return "is empty";
  if (id.size() > max_bytes) return fmt::format("has {} bytes (at most {})", id.size(), max_bytes);
  if (!core::is_valid_utf8(id)) return "is not valid UTF-8";
  for (char ch : id) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) return fmt::format("contains the control character \\x{:02x}", c);
  }
  return "";
}

void check_id(std::string_view what, std::string_view id) {
  const std::string problem = id_problem(id, kMaxIdBytes);
  FEWREC_CHECK(problem.empty(), kInvalidArgument, "{} id `{}` {}", what, core::excerpt(id), problem);
}

void check_text(std::string_view owner, std::string_view field, std::string_view text) {
  FEWREC_CHECK(core::is_valid_utf8(text), kInvalidArgument, "{}: {} is not valid UTF-8", owner,
               field);
}

void check_map(std::string_view owner, std::string_view field,
               const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    FEWREC_CHECK(!key.empty(), kInvalidArgument, "{}: {} key is empty", owner, field);
    check_text(owner, fmt::format("{} key `{}`", field, core::excerpt(key)), key);
    check_text(owner, fmt::format("{} `{}`", field, core::excerpt(key)), value);
  }
}

void check_list(std::string_view owner, std::string_view field, const std::vector<std::string>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    FEWREC_CHECK(!values[i].empty(), kInvalidArgument, "{}: {} {} is empty", owner, field, i);
    check_text(owner, fmt::format("{} {}", field, i), values[i]);
  }
}

}  // namespace

void validate_user(const UserRecord& user) {
  check_id("user", user.id);
  const std::string owner = fmt::format("user `{}`", user.id);
  check_map(owner, "attribute", user.attributes);
  check_list(owner, "label", user.labels);
}

void validate_item(const ItemRecord& item) {
  check_id("item", item.id);
  const std::string owner = fmt::format("item `{}`", item.id);
  check_list(owner, "category", item.categories);
  check_list(owner, "tag", item.tags);
  check_map(owner, "feature", item.features);
  check_text(owner, "text", item.text);
}

void validate_feedback(const FeedbackRecord& event, size_t position) {
  const std::string owner = fmt::format("feedback {}", position);
  std::string problem = id_problem(event.user, kMaxIdBytes);
  FEWREC_CHECK(problem.empty(), kInvalidArgument, "{}: user id `{}` {}", owner,
               core::excerpt(event.user), problem);
  problem = id_problem(event.item, kMaxIdBytes);
  FEWREC_CHECK(problem.empty(), kInvalidArgument, "{} (user `{}`): item id `{}` {}", owner,
               event.user, core::excerpt(event.item), problem);
  problem = id_problem(event.type, kMaxNameBytes);
  FEWREC_CHECK(problem.empty(), kInvalidArgument, "{} (user `{}`, item `{}`): event type `{}` {}",
               owner, event.user, event.item, core::excerpt(event.type), problem);
  FEWREC_CHECK(std::isfinite(event.value), kInvalidArgument,
               "{} (user `{}`, item `{}`): value {} is not a finite number", owner, event.user,
               event.item, event.value);
}

void validate_feedback(std::span<const FeedbackRecord> events) {
  for (size_t i = 0; i < events.size(); ++i) validate_feedback(events[i], i);
}

void validate_model_name(const std::string& name) {
  const std::string problem = id_problem(name, kMaxNameBytes);
  FEWREC_CHECK(problem.empty(), kInvalidArgument, "model name `{}` {}", core::excerpt(name), problem);
}

}  // namespace fewrec::store

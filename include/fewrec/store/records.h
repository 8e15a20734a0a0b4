// Records of the store: users, items, feedback events and model artifacts,
// as the recommendation service inserts and reads them.
//
// Every string is UTF-8. Ids are non-empty, at most kMaxIdBytes bytes, without
// NUL or other control characters; validate_*() throw kInvalidArgument naming
// the record and the field when a record breaks a rule (the store calls them
// before writing anything).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fewrec::store {

inline constexpr size_t kMaxIdBytes = 1024;

struct UserRecord {
  std::string id;
  // Categorical attributes ("gender" -> "f", "country" -> "fr").
  std::map<std::string, std::string> attributes;
  // Multi-valued labels ("likes:jazz", "premium"), order kept.
  std::vector<std::string> labels;
  // Unix seconds of the last upsert. Upserting with 0 stamps the current
  // time; 0 when read back means the row was created implicitly by feedback.
  int64_t updated_at = 0;

  bool operator==(const UserRecord&) const = default;
};

struct ItemRecord {
  std::string id;
  // Categories (for per-category recommendations and as features), order kept.
  std::vector<std::string> categories;
  // Free tags / labels, order kept.
  std::vector<std::string> tags;
  // Other categorical features ("brand" -> "acme", "year" -> "1999").
  std::map<std::string, std::string> features;
  // Title and / or description, for text encoders.
  std::string text;
  // Publication time (unix seconds; 0 = unknown).
  int64_t timestamp = 0;
  // Hidden items stay in the store but must not be recommended.
  bool hidden = false;
  // As UserRecord::updated_at.
  int64_t updated_at = 0;

  bool operator==(const ItemRecord&) const = default;
};

// One feedback event. (user, item, type, timestamp) is its identity: storing
// the same identity twice keeps the first event only, so clients may retry.
// Timestamps are any consistent int64 (unix seconds or milliseconds); use
// milliseconds when two events of one type on one item within a second must
// both count.
struct FeedbackRecord {
  std::string user;
  std::string item;
  std::string type;  // "click", "like", "rating", ... (non-empty)
  float value = 1.0f;  // rating or strength; finite
  int64_t timestamp = 0;

  bool operator==(const FeedbackRecord&) const = default;
};

// Which feedback of a user to return.
struct FeedbackQuery {
  int64_t limit = -1;        // at most this many events; -1 = all
  bool newest_first = true;  // else oldest first (time order)
  std::string type;          // only this event type; "" = every type
};

// One page of a listing in insertion order. Pass next_cursor back to get the
// next page; next_cursor == 0 means there is none. Cursors are opaque.
template <class T>
struct Page {
  std::vector<T> records;
  int64_t next_cursor = 0;
};

// A saved model artifact: versions count 1, 2, ... per name.
struct ModelInfo {
  std::string name;
  int64_t version = 0;
  int64_t created_at = 0;  // unix seconds
  int64_t size = 0;        // bytes
  nlohmann::json metadata = nlohmann::json::object();
};

struct ModelArtifact {
  ModelInfo info;
  std::string bytes;
};

// Throw kInvalidArgument naming the record (id, or position in its batch for
// feedback) and the broken rule.
void validate_user(const UserRecord& user);
void validate_item(const ItemRecord& item);
void validate_feedback(const FeedbackRecord& event, size_t position);
void validate_feedback(std::span<const FeedbackRecord> events);
void validate_model_name(const std::string& name);

}  // namespace fewrec::store

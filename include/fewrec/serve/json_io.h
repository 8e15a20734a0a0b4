// JSON <-> records of the HTTP API, strictly validated.
//
// Every parser throws kInvalidArgument with a message that names the field
// and where it is ("feedback[3].value: expected a number, got a string";
// "user: unknown field `atributes` (fields: id, attributes, labels)"), so a
// client can fix its request from the 400 answer alone. Unknown fields are
// errors: a typo never passes silently.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/serve/service.h"
#include "fewrec/store/records.h"

namespace fewrec::serve {

// Parses a request body; kInvalidArgument "request body is not valid JSON
// (line 1, column 7: ...)" when it is not.
nlohmann::json parse_body(std::string_view body);

// `where` names the value in messages ("user", "items[2]").
// `id_from_path`: the id given in the URL (the body's id, when present, must match).
store::UserRecord user_from_json(const nlohmann::json& j, const std::string& where,
                                 const std::string& id_from_path = "");
store::ItemRecord item_from_json(const nlohmann::json& j, const std::string& where,
                                 const std::string& id_from_path = "");
// `now` fills a missing timestamp.
store::FeedbackRecord feedback_from_json(const nlohmann::json& j, const std::string& where, int64_t now);

// A single object or an array of objects, or {"<key>": [...]} for batches.
std::vector<nlohmann::json> objects_of(const nlohmann::json& body, const std::string& key, size_t max_batch);

nlohmann::json to_json(const store::UserRecord& u);
nlohmann::json to_json(const store::ItemRecord& it);
nlohmann::json to_json(const store::FeedbackRecord& e);
nlohmann::json to_json(const RecommendResult& r, bool with_reasons);
// The same as compact JSON text, written directly (the service's hot path).
std::string recommend_json_text(const RecommendResult& r, bool with_reasons);

// POST /recommend body: {"history": [...], "attributes": {...}, "k", "exclude",
// "category", "exclude_seen", "reasons"}; history entries are item ids or
// {"item", "type", "value"} objects.
struct ContextRequest {
  std::vector<ContextEvent> events;
  std::map<std::string, std::string> attributes;
  RecommendOptions options;
};
ContextRequest context_from_json(const nlohmann::json& j);

}  // namespace fewrec::serve

// Strict JSON parsing of the HTTP API's records; see json_io.h.
#include "fewrec/serve/json_io.h"

#include <cmath>
#include <initializer_list>
#include <iterator>

#include "fewrec/core/error.h"

namespace fewrec::serve {

namespace {

using nlohmann::json;

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

void expect_object(const json& j, const std::string& where, std::initializer_list<const char*> fields) {
  FEWREC_CHECK(j.is_object(), kInvalidArgument, "{}: expected an object, got {}", where, type_name(j));
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* f : fields) known = known || it.key() == f;
    if (!known) {
      std::string list;
      for (const char* f : fields) list += (list.empty() ? "" : ", ") + std::string(f);
      FEWREC_THROW(kInvalidArgument, "{}: unknown field `{}` (fields: {})", where, it.key(), list);
    }
  }
}

std::string field_path(const std::string& where, const char* field) { return where + "." + field; }

std::string get_string(const json& j, const std::string& where, const char* field, bool required,
                       const std::string& def = "") {
  auto it = j.find(field);
  if (it == j.end()) {
    FEWREC_CHECK(!required, kInvalidArgument, "{}: missing field `{}`", where, field);
    return def;
  }
  FEWREC_CHECK(it->is_string(), kInvalidArgument, "{}: expected a string, got {}", field_path(where, field),
               type_name(*it));
  return it->get<std::string>();
}

std::vector<std::string> get_strings(const json& j, const std::string& where, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return {};
  FEWREC_CHECK(it->is_array(), kInvalidArgument, "{}: expected an array of strings, got {}",
               field_path(where, field), type_name(*it));
  std::vector<std::string> out;
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& v = (*it)[i];
    FEWREC_CHECK(v.is_string(), kInvalidArgument, "{}[{}]: expected a string, got {}", field_path(where, field), i,
                 type_name(v));
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::map<std::string, std::string> get_string_map(const json& j, const std::string& where, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return {};
  FEWREC_CHECK(it->is_object(), kInvalidArgument, "{}: expected an object of strings, got {}",
               field_path(where, field), type_name(*it));
  std::map<std::string, std::string> out;
  for (auto kv = it->begin(); kv != it->end(); ++kv) {
    FEWREC_CHECK(!kv.key().empty(), kInvalidArgument, "{}: an empty key", field_path(where, field));
    FEWREC_CHECK(kv->is_string(), kInvalidArgument, "{}.{}: expected a string, got {}", field_path(where, field),
                 kv.key(), type_name(*kv));
    out[kv.key()] = kv->get<std::string>();
  }
  return out;
}

int64_t get_int(const json& j, const std::string& where, const char* field, int64_t def) {
  auto it = j.find(field);
  if (it == j.end()) return def;
  FEWREC_CHECK(it->is_number_integer(), kInvalidArgument, "{}: expected an integer, got {}",
               field_path(where, field), type_name(*it));
  if (it->is_number_unsigned())
    FEWREC_CHECK(it->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), kInvalidArgument,
                 "{}: integer out of range", field_path(where, field));
  return it->get<int64_t>();
}

double get_number(const json& j, const std::string& where, const char* field, double def) {
  auto it = j.find(field);
  if (it == j.end()) return def;
  FEWREC_CHECK(it->is_number(), kInvalidArgument, "{}: expected a number, got {}", field_path(where, field),
               type_name(*it));
  const double v = it->get<double>();
  FEWREC_CHECK(std::isfinite(v) && std::abs(v) <= 3.0e38, kInvalidArgument, "{}: the number is out of range",
               field_path(where, field));
  return v;
}

bool get_bool(const json& j, const std::string& where, const char* field, bool def) {
  auto it = j.find(field);
  if (it == j.end()) return def;
  FEWREC_CHECK(it->is_boolean(), kInvalidArgument, "{}: expected true or false, got {}", field_path(where, field),
               type_name(*it));
  return it->get<bool>();
}

std::string id_field(const json& j, const std::string& where, const std::string& id_from_path) {
  if (id_from_path.empty()) return get_string(j, where, "id", true);
  const std::string id = get_string(j, where, "id", false, id_from_path);
  FEWREC_CHECK(id == id_from_path, kInvalidArgument, "{}.id: `{}` differs from the id in the URL (`{}`)", where, id,
               id_from_path);
  return id;
}

}  // namespace

json parse_body(std::string_view body) {
  try {
    return json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    // nlohmann's text starts with "[json.exception.parse_error.101] parse error at ...".
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    FEWREC_THROW(kInvalidArgument, "request body is not valid JSON ({})", what);
  }
}

store::UserRecord user_from_json(const json& j, const std::string& where, const std::string& id_from_path) {
  expect_object(j, where, {"id", "attributes", "labels", "updated_at"});  // updated_at: ignored (set by the store)
  store::UserRecord u;
  u.id = id_field(j, where, id_from_path);
  u.attributes = get_string_map(j, where, "attributes");
  u.labels = get_strings(j, where, "labels");
  store::validate_user(u);
  return u;
}

store::ItemRecord item_from_json(const json& j, const std::string& where, const std::string& id_from_path) {
  expect_object(j, where, {"id", "categories", "tags", "features", "text", "timestamp", "hidden", "updated_at"});
  store::ItemRecord it;
  it.id = id_field(j, where, id_from_path);
  it.categories = get_strings(j, where, "categories");
  it.tags = get_strings(j, where, "tags");
  it.features = get_string_map(j, where, "features");
  it.text = get_string(j, where, "text", false);
  it.timestamp = get_int(j, where, "timestamp", 0);
  it.hidden = get_bool(j, where, "hidden", false);
  store::validate_item(it);
  return it;
}

store::FeedbackRecord feedback_from_json(const json& j, const std::string& where, int64_t now) {
  expect_object(j, where, {"user", "item", "type", "value", "timestamp"});
  store::FeedbackRecord e;
  e.user = get_string(j, where, "user", true);
  e.item = get_string(j, where, "item", true);
  e.type = get_string(j, where, "type", true);
  e.value = static_cast<float>(get_number(j, where, "value", 1.0));
  e.timestamp = get_int(j, where, "timestamp", now);
  FEWREC_CHECK(!e.user.empty(), kInvalidArgument, "{}.user: must not be empty", where);
  FEWREC_CHECK(!e.item.empty(), kInvalidArgument, "{}.item: must not be empty", where);
  FEWREC_CHECK(!e.type.empty(), kInvalidArgument, "{}.type: must not be empty", where);
  return e;
}

std::vector<json> objects_of(const json& body, const std::string& key, size_t max_batch) {
  std::vector<json> out;
  const json* list = &body;
  if (body.is_object() && body.size() == 1 && body.contains(key)) list = &body[key];
  if (list->is_array()) {
    FEWREC_CHECK(list->size() <= max_batch, kInvalidArgument, "{}: a batch holds at most {} records, got {}", key,
                 max_batch, list->size());
    out.assign(list->begin(), list->end());
  } else {
    FEWREC_CHECK(list->is_object(), kInvalidArgument,
                 "request body: expected an object, an array of objects or {{\"{}\": [...]}}, got {}", key,
                 type_name(*list));
    out.push_back(*list);
  }
  return out;
}

json to_json(const store::UserRecord& u) {
  return json{{"id", u.id}, {"attributes", u.attributes}, {"labels", u.labels}, {"updated_at", u.updated_at}};
}

json to_json(const store::ItemRecord& it) {
  return json{{"id", it.id},         {"categories", it.categories}, {"tags", it.tags},
              {"features", it.features}, {"text", it.text},       {"timestamp", it.timestamp},
              {"hidden", it.hidden},     {"updated_at", it.updated_at}};
}

json to_json(const store::FeedbackRecord& e) {
  return json{{"user", e.user}, {"item", e.item}, {"type", e.type}, {"value", e.value}, {"timestamp", e.timestamp}};
}

namespace {

// Appends `s` as a JSON string. Ids and reasons are valid UTF-8 (the store
// validates them), so only quotes, backslashes and control bytes need escapes.
void append_string(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace

std::string recommend_json_text(const RecommendResult& r, bool with_reasons) {
  // Written by hand: the hot path of the service (nlohmann::json takes ~10 us).
  std::string out;
  out.reserve(64 + r.items.size() * (with_reasons ? 96 : 40));
  out += "{\"items\":[";
  for (size_t i = 0; i < r.items.size(); ++i) {
    const auto& rec = r.items[i];
    if (i) out += ',';
    out += "{\"id\":";
    append_string(out, rec.item);
    out += ",\"score\":";
    if (std::isfinite(rec.score))
      fmt::format_to(std::back_inserter(out), "{}", rec.score);
    else
      out += "null";
    if (with_reasons) {
      out += ",\"reason\":";
      append_string(out, rec.reason);
      out += ",\"because\":[";
      for (size_t j = 0; j < rec.because.size(); ++j) {
        if (j) out += ',';
        append_string(out, rec.because[j]);
      }
      out += ']';
    }
    out += '}';
  }
  out += "],\"source\":";
  append_string(out, r.source);
  out += ",\"model\":";
  append_string(out, r.model);
  out += '}';
  return out;
}

json to_json(const RecommendResult& r, bool with_reasons) {
  json items = json::array();
  for (const auto& rec : r.items) {
    json o{{"id", rec.item}, {"score", rec.score}};
    if (with_reasons) {
      o["reason"] = rec.reason;
      o["because"] = rec.because;
    }
    items.push_back(std::move(o));
  }
  return json{{"items", std::move(items)}, {"source", r.source}, {"model", r.model}};
}

ContextRequest context_from_json(const json& j) {
  const std::string where = "request";
  expect_object(j, where, {"history", "attributes", "k", "exclude", "category", "exclude_seen", "reasons"});
  ContextRequest r;
  if (auto it = j.find("history"); it != j.end()) {
    FEWREC_CHECK(it->is_array(), kInvalidArgument, "request.history: expected an array, got {}", type_name(*it));
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& v = (*it)[i];
      const std::string w = fmt::format("request.history[{}]", i);
      ContextEvent e;
      if (v.is_string()) {
        e.item = v.get<std::string>();
      } else {
        expect_object(v, w, {"item", "type", "value"});
        e.item = get_string(v, w, "item", true);
        e.type = get_string(v, w, "type", false);
        e.value = static_cast<float>(get_number(v, w, "value", 1.0));
      }
      FEWREC_CHECK(!e.item.empty(), kInvalidArgument, "{}: empty item id", w);
      r.events.push_back(std::move(e));
    }
  }
  r.attributes = get_string_map(j, where, "attributes");
  const int64_t k = get_int(j, where, "k", 0);
  FEWREC_CHECK(k >= 0 && k <= INT32_MAX, kInvalidArgument, "request.k: must be a positive integer");
  r.options.k = static_cast<int>(k);
  r.options.exclude = get_strings(j, where, "exclude");
  r.options.category = get_string(j, where, "category", false);
  r.options.exclude_seen = get_bool(j, where, "exclude_seen", true);
  r.options.reasons = get_bool(j, where, "reasons", false);
  return r;
}

}  // namespace fewrec::serve

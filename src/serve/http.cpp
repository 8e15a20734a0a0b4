// HttpServer: routes, auth, limits, errors and metrics; see http.h.
#include "fewrec/serve/http.h"

#include <httplib.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/strings.h"
#include "fewrec/serve/json_io.h"

namespace fewrec::serve {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Latency buckets of the Prometheus histogram (seconds).
constexpr std::array<double, 13> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1.0,   2.5,  5.0};

struct RouteMetrics {
  std::string name;
  std::array<std::atomic<int64_t>, 6> by_class{};  // 1xx .. 5xx, other
  std::array<std::atomic<int64_t>, kBuckets.size() + 1> buckets{};
  std::atomic<int64_t> micros{0};
};

int64_t now_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kUnavailable: return 503;
    default: return 500;
  }
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_text(httplib::Response& res, std::string json_text) {
  res.status = 200;
  res.set_content(std::move(json_text), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, json{{"error", {{"status", status}, {"message", message}}}});
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

// Query parameters, strictly: unknown names are errors.
class Params {
 public:
  // Only the URL's query string counts: httplib also merges a form-encoded
  // body into req.params, and a JSON body sent with curl -d is one.
  Params(const httplib::Request& req, std::initializer_list<const char*> known) {
    if (auto q = req.target.find('?'); q != std::string::npos)
      httplib::detail::parse_query_text(req.target.substr(q + 1), params_);
    for (const auto& [name, value] : params_) {
      bool ok = false;
      for (const char* k : known) ok = ok || name == k;
      if (!ok) {
        std::string list;
        for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        FEWREC_THROW(kInvalidArgument, "unknown query parameter `{}` (parameters: {})", core::excerpt(name),
                     list.empty() ? "none" : list);
      }
    }
  }
  bool has(const char* name) const { return params_.find(name) != params_.end(); }
  std::string str(const char* name, const std::string& def = "") const {
    auto it = params_.find(name);
    return it == params_.end() ? def : it->second;
  }
  int64_t integer(const char* name, int64_t def, int64_t min, int64_t max) const {
    if (!has(name)) return def;
    const std::string v = str(name);
    auto x = core::parse_int(v);
    FEWREC_CHECK(x.has_value() && *x >= min && *x <= max, kInvalidArgument,
                 "query parameter `{}`: expected an integer in [{}, {}], got `{}`", name, min, max, core::excerpt(v));
    return *x;
  }
  bool boolean(const char* name, bool def) const {
    if (!has(name)) return def;
    const std::string v = str(name);
    if (v == "true" || v == "1" || v.empty()) return true;
    if (v == "false" || v == "0") return false;
    FEWREC_THROW(kInvalidArgument, "query parameter `{}`: expected true or false, got `{}`", name, core::excerpt(v));
  }
  // Comma-separated values, over every occurrence of the parameter.
  std::vector<std::string> list(const char* name) const {
    std::vector<std::string> out;
    auto [b, e] = params_.equal_range(name);
    for (auto it = b; it != e; ++it)
      for (auto& part : core::split(it->second, ','))
        if (!part.empty()) out.emplace_back(part);
    return out;
  }

 private:
  httplib::Params params_;
};

RecommendOptions recommend_options(const Params& p, int max_k) {
  RecommendOptions o;
  o.k = static_cast<int>(p.integer("k", 0, 1, max_k));
  o.exclude_seen = p.boolean("exclude_seen", true);
  o.exclude = p.list("exclude");
  o.category = p.str("category");
  o.reasons = p.boolean("reasons", false);
  return o;
}

}  // namespace

// ------------------------------------------------------------------ options

HttpOptions HttpOptions::from_config(core::Config& c) {
  HttpOptions o;
  o.host = c.get_string("serve.host", o.host, "address to listen on (0.0.0.0 = every interface)");
  o.port = static_cast<int>(c.get_int("serve.port", o.port, "TCP port (0 = any free port, printed at start)"));
  o.threads = static_cast<int>(
      c.get_int("serve.threads", o.threads, "HTTP worker threads (an open keep-alive connection holds one)"));
  o.api_key = c.get_string("serve.api_key", "",
                           "key for write and admin endpoints (X-API-Key header); FEWREC_API_KEY when empty");
  if (o.api_key.empty())
    if (const char* env = std::getenv("FEWREC_API_KEY")) o.api_key = env;
  o.require_api_key = c.get_bool("serve.require_api_key", true,
                                 "refuse to start without an API key; false opens writes to anyone (local use)");
  o.max_body_bytes = c.get_int("serve.max_body_bytes", o.max_body_bytes, "largest request body (413 above)");
  o.max_batch = c.get_int("serve.max_batch", o.max_batch, "most records in one batch request");
  o.keep_alive_seconds = static_cast<int>(
      c.get_int("serve.keep_alive_seconds", o.keep_alive_seconds, "idle keep-alive connections close after this"));
  o.keep_alive_max_requests = static_cast<int>(c.get_int(
      "serve.keep_alive_max_requests", o.keep_alive_max_requests, "requests per keep-alive connection"));
  o.read_timeout_seconds =
      static_cast<int>(c.get_int("serve.read_timeout_seconds", o.read_timeout_seconds, "socket read timeout"));
  o.access_log = c.get_bool("serve.access_log", false, "log one line per request on stderr");
  FEWREC_CHECK(o.port >= 0 && o.port <= 65535, kInvalidArgument, "config key `serve.port` must be in [0, 65535], got {}",
               o.port);
  FEWREC_CHECK(o.threads >= 1, kInvalidArgument, "config key `serve.threads` must be >= 1, got {}", o.threads);
  FEWREC_CHECK(o.max_body_bytes >= 1024, kInvalidArgument, "config key `serve.max_body_bytes` must be >= 1024, got {}",
               o.max_body_bytes);
  FEWREC_CHECK(o.max_batch >= 1, kInvalidArgument, "config key `serve.max_batch` must be >= 1");
  FEWREC_CHECK(o.keep_alive_seconds >= 1 && o.keep_alive_max_requests >= 1 && o.read_timeout_seconds >= 1,
               kInvalidArgument,
               "config keys `serve.keep_alive_seconds`, `serve.keep_alive_max_requests` and "
               "`serve.read_timeout_seconds` must be >= 1");
  return o;
}

// --------------------------------------------------------------------- impl

struct HttpServer::Impl {
  Service& svc;
  HttpOptions o;
  core::Monitor& log;
  httplib::Server http;
  int port = -1;
  std::vector<std::unique_ptr<RouteMetrics>> routes;
  RouteMetrics* unmatched = nullptr;
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> feedback_received{0}, feedback_inserted{0};
  std::mutex reload_mu;
  std::thread reload_thread;
  std::atomic<bool> reload_running{false};
  std::atomic<bool> stopping{false}, listening{false};
  const Clock::time_point started = Clock::now();

  Impl(Service& s, HttpOptions opts, core::Monitor& m) : svc(s), o(std::move(opts)), log(m) {}

  RouteMetrics* add_route(const std::string& name) {
    routes.push_back(std::make_unique<RouteMetrics>());
    routes.back()->name = name;
    return routes.back().get();
  }

  static void observe(RouteMetrics& r, int status, double seconds) {
    const int cls = status >= 100 && status < 600 ? status / 100 - 1 : 5;
    r.by_class[static_cast<size_t>(cls)].fetch_add(1, std::memory_order_relaxed);
    size_t b = 0;
    while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
    r.buckets[b].fetch_add(1, std::memory_order_relaxed);
    r.micros.fetch_add(static_cast<int64_t>(seconds * 1e6), std::memory_order_relaxed);
  }

  struct KeyError {
    int status;
    const char* message;
  };

  void check_key(const httplib::Request& req) const {
    if (!o.require_api_key && o.api_key.empty()) return;
    std::string given = req.get_header_value("X-API-Key");
    if (given.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      if (auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
    }
    if (given.empty()) throw KeyError{401, "missing API key: send it in the X-API-Key header"};
    if (!constant_time_equal(given, o.api_key)) throw KeyError{403, "wrong API key"};
  }

  using Body = std::function<void(const httplib::Request&, httplib::Response&)>;

  // Wraps a handler with metrics, the key check and error translation.
  httplib::Server::Handler wrap(const std::string& name, bool needs_key, Body body) {
    RouteMetrics* m = add_route(name);
    return [this, m, needs_key, body = std::move(body)](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = Clock::now();
      in_flight.fetch_add(1, std::memory_order_relaxed);
      try {
        if (needs_key) check_key(req);
        body(req, res);
      } catch (const KeyError& e) {
        send_error(res, e.status, e.message);
      } catch (const Error& e) {
        const int status = status_of(e.code());
        if (status == 500) {
          log.info(fmt::format("error on {} {}: {} ({})", req.method, req.path, e.message(), e.where()));
          send_error(res, 500, "internal error");
        } else {
          send_error(res, status, e.message());
        }
      } catch (const std::bad_alloc&) {
        log.info(fmt::format("error on {} {}: out of memory", req.method, req.path));
        send_error(res, 503, "out of memory");
      } catch (const std::exception& e) {
        log.info(fmt::format("error on {} {}: {}", req.method, req.path, e.what()));
        send_error(res, 500, "internal error");
      }
      in_flight.fetch_sub(1, std::memory_order_relaxed);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      observe(*m, res.status, s);
      if (o.access_log) log.info(fmt::format("{} {} {} {:.2f} ms", req.method, req.path, res.status, s * 1e3));
    };
  }

  void routes_setup();
  void reload(const httplib::Request& req, httplib::Response& res);
  std::string metrics_text() const;
};

void HttpServer::Impl::routes_setup() {
  const auto max_batch = static_cast<size_t>(o.max_batch);
  const int max_k = svc.options().max_k;

  // httplib tries the patterns of a method in registration order (std::regex
  // each): the hot endpoints go first.
  // ---- recommendations
  http.Get(R"(/recommend/([^/]+))",
           wrap("recommend_user", false, [this, max_k](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {"k", "exclude_seen", "exclude", "category", "reasons"});
             auto ro = recommend_options(p, max_k);
             send_text(res, recommend_json_text(svc.recommend(req.matches[1], ro), ro.reasons));
           }));
  http.Post("/recommend", wrap("recommend_context", false, [this, max_k](const httplib::Request& req, httplib::Response& res) {
              Params p(req, {});
              auto cr = context_from_json(parse_body(req.body));
              FEWREC_CHECK(cr.options.k <= max_k, kInvalidArgument, "request.k: at most {}, got {}", max_k, cr.options.k);
              FEWREC_CHECK(cr.events.size() <= static_cast<size_t>(o.max_batch), kInvalidArgument,
                           "request.history: at most {} events", o.max_batch);
              send_text(res, recommend_json_text(svc.recommend_context(cr.events, cr.attributes, cr.options), cr.options.reasons));
            }));

  // ---- feedback
  http.Post("/feedback", wrap("feedback", true, [this, max_batch](const httplib::Request& req, httplib::Response& res) {
              Params p(req, {});
              auto objs = objects_of(parse_body(req.body), "feedback", max_batch);
              std::vector<store::FeedbackRecord> events;
              events.reserve(objs.size());
              const int64_t now = now_millis();
              for (size_t i = 0; i < objs.size(); ++i)
                events.push_back(
                    feedback_from_json(objs[i], objs.size() == 1 ? "feedback" : fmt::format("feedback[{}]", i), now));
              auto r = svc.insert_feedback(events);
              feedback_received.fetch_add(r.received, std::memory_order_relaxed);
              feedback_inserted.fetch_add(r.inserted, std::memory_order_relaxed);
              send_json(res, 200, json{{"received", r.received}, {"inserted", r.inserted}});
            }));

  http.Get("/health", wrap("health", false, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {});
             send_json(res, 200, json{{"status", "ok"}});
           }));
  http.Get("/metrics", wrap("metrics", false, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {});
             res.status = 200;
             res.set_content(metrics_text(), "text/plain; version=0.0.4");
           }));
  http.Get("/stats", wrap("stats", false, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {});
             send_json(res, 200, svc.stats().to_json());
           }));

  // ---- users
  http.Post("/users", wrap("users_upsert", true, [this, max_batch](const httplib::Request& req, httplib::Response& res) {
              Params p(req, {});
              auto objs = objects_of(parse_body(req.body), "users", max_batch);
              std::vector<store::UserRecord> users;
              users.reserve(objs.size());
              for (size_t i = 0; i < objs.size(); ++i)
                users.push_back(user_from_json(objs[i], objs.size() == 1 ? "user" : fmt::format("users[{}]", i)));
              svc.upsert_users(users);
              send_json(res, 200, json{{"upserted", users.size()}});
            }));
  http.Get("/users", wrap("users_list", false, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {"cursor", "limit"});
             auto page = svc.store().list_users(p.integer("cursor", 0, 0, INT64_MAX), p.integer("limit", 100, 1, 10000));
             json users = json::array();
             for (const auto& u : page.records) users.push_back(to_json(u));
             send_json(res, 200, json{{"users", users}, {"next_cursor", page.next_cursor}});
           }));
  http.Get(R"(/users/([^/]+))", wrap("users_get", false, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {});
             send_json(res, 200, to_json(svc.get_user(req.matches[1])));
           }));
  http.Put(R"(/users/([^/]+))", wrap("users_put", true, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {});
             std::vector<store::UserRecord> users{user_from_json(parse_body(req.body), "user", req.matches[1])};
             svc.upsert_users(users);
             send_json(res, 200, json{{"upserted", 1}});
           }));
  http.Delete(R"(/users/([^/]+))", wrap("users_delete", true, [this](const httplib::Request& req, httplib::Response& res) {
                Params p(req, {});
                std::vector<std::string> ids{req.matches[1]};
                FEWREC_CHECK(svc.delete_users(ids) > 0, kNotFound, "unknown user `{}`", ids[0]);
                send_json(res, 200, json{{"deleted", 1}});
              }));
  http.Get(R"(/users/([^/]+)/feedback)",
           wrap("users_feedback", false, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {"limit"});
             auto events = svc.user_feedback(req.matches[1], p.integer("limit", 100, 1, 1000000));
             json out = json::array();
             for (const auto& e : events) out.push_back(to_json(e));
             send_json(res, 200, json{{"feedback", out}});
           }));

  // ---- items
  http.Post("/items", wrap("items_upsert", true, [this, max_batch](const httplib::Request& req, httplib::Response& res) {
              Params p(req, {});
              auto objs = objects_of(parse_body(req.body), "items", max_batch);
              std::vector<store::ItemRecord> items;
              items.reserve(objs.size());
              for (size_t i = 0; i < objs.size(); ++i)
                items.push_back(item_from_json(objs[i], objs.size() == 1 ? "item" : fmt::format("items[{}]", i)));
              svc.upsert_items(items);
              send_json(res, 200, json{{"upserted", items.size()}});
            }));
  http.Get("/items", wrap("items_list", false, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {"cursor", "limit"});
             auto page = svc.store().list_items(p.integer("cursor", 0, 0, INT64_MAX), p.integer("limit", 100, 1, 10000));
             json items = json::array();
             for (const auto& it : page.records) items.push_back(to_json(it));
             send_json(res, 200, json{{"items", items}, {"next_cursor", page.next_cursor}});
           }));
  http.Get(R"(/items/([^/]+))", wrap("items_get", false, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {});
             send_json(res, 200, to_json(svc.get_item(req.matches[1])));
           }));
  http.Put(R"(/items/([^/]+))", wrap("items_put", true, [this](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {});
             std::vector<store::ItemRecord> items{item_from_json(parse_body(req.body), "item", req.matches[1])};
             svc.upsert_items(items);
             send_json(res, 200, json{{"upserted", 1}});
           }));
  http.Delete(R"(/items/([^/]+))", wrap("items_delete", true, [this](const httplib::Request& req, httplib::Response& res) {
                Params p(req, {});
                std::vector<std::string> ids{req.matches[1]};
                FEWREC_CHECK(svc.delete_items(ids) > 0, kNotFound, "unknown item `{}`", ids[0]);
                send_json(res, 200, json{{"deleted", 1}});
              }));
  http.Get(R"(/items/([^/]+)/similar)",
           wrap("items_similar", false, [this, max_k](const httplib::Request& req, httplib::Response& res) {
             Params p(req, {"k", "exclude", "category", "reasons"});
             auto ro = recommend_options(p, max_k);
             send_text(res, recommend_json_text(svc.similar_items(req.matches[1], ro), ro.reasons));
           }));

  // ---- admin
  http.Post("/admin/reload", wrap("admin_reload", true, [this](const httplib::Request& req, httplib::Response& res) {
              reload(req, res);
            }));

  // Errors httplib answers itself (no route, body too large, bad request):
  // a JSON body like ours.
  unmatched = add_route("unmatched");
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                      httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg;
    switch (res.status) {
      case 404: msg = fmt::format("no endpoint {} {}", req.method, core::excerpt(req.path)); break;
      case 413: msg = fmt::format("request body larger than {} bytes", o.max_body_bytes); break;
      case 400: msg = "malformed HTTP request (a POST or PUT needs a Content-Length header: with curl, pass -d '')"; break;
      default: msg = fmt::format("HTTP error {}", res.status); break;
    }
    send_error(res, res.status, msg);
    observe(*unmatched, res.status, 0.0);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
    log.info(fmt::format("unhandled exception on {} {}", req.method, req.path));
    send_error(res, 500, "internal error");
  });
}

void HttpServer::Impl::reload(const httplib::Request& req, httplib::Response& res) {
  Params p(req, {"wait"});
  if (p.boolean("wait", false)) {
    send_json(res, 200, svc.reload(log).to_json());
    return;
  }
  std::lock_guard lock(reload_mu);
  FEWREC_CHECK(!reload_running.load(), kUnavailable, "a reload is already running; try again when it has finished");
  if (reload_thread.joinable()) reload_thread.join();
  reload_running = true;
  reload_thread = std::thread([this] {
    try {
      svc.reload(log);
    } catch (const std::exception& e) {
      log.info(fmt::format("reload failed: {}", e.what()));
    }
    reload_running = false;
  });
  send_json(res, 202, json{{"status", "reloading"}});
}

std::string HttpServer::Impl::metrics_text() const {
  std::string out;
  out.reserve(8192);
  auto line = [&](const std::string& s) {
    out += s;
    out += '\n';
  };
  line("# HELP fewrec_http_requests_total HTTP requests by endpoint and status class.");
  line("# TYPE fewrec_http_requests_total counter");
  static const char* classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
  for (const auto& r : routes)
    for (size_t c = 0; c < 6; ++c)
      if (int64_t n = r->by_class[c].load(); n > 0 || c == 1)
        line(fmt::format("fewrec_http_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}", r->name, classes[c], n));
  line("# HELP fewrec_http_request_seconds Request latency by endpoint.");
  line("# TYPE fewrec_http_request_seconds histogram");
  for (const auto& r : routes) {
    int64_t cum = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cum += r->buckets[b].load();
      line(fmt::format("fewrec_http_request_seconds_bucket{{endpoint=\"{}\",le=\"{}\"}} {}", r->name,
                       b < kBuckets.size() ? fmt::format("{}", kBuckets[b]) : std::string("+Inf"), cum));
    }
    line(fmt::format("fewrec_http_request_seconds_sum{{endpoint=\"{}\"}} {}", r->name, r->micros.load() / 1e6));
    line(fmt::format("fewrec_http_request_seconds_count{{endpoint=\"{}\"}} {}", r->name, cum));
  }
  const auto st = svc.stats();
  auto gauge = [&](const char* name, const char* help, double v, const char* type = "gauge") {
    line(fmt::format("# HELP {} {}", name, help));
    line(fmt::format("# TYPE {} {}", name, type));
    line(fmt::format("{} {}", name, v));
  };
  gauge("fewrec_http_in_flight", "Requests being served.", static_cast<double>(in_flight.load()));
  gauge("fewrec_feedback_received_total", "Feedback events received over HTTP.",
        static_cast<double>(feedback_received.load()), "counter");
  gauge("fewrec_feedback_inserted_total", "Feedback events stored as new.", static_cast<double>(feedback_inserted.load()),
        "counter");
  gauge("fewrec_users", "Users in the store.", static_cast<double>(st.users));
  gauge("fewrec_items", "Items in the store.", static_cast<double>(st.items));
  gauge("fewrec_feedback_events", "Feedback events in the store.", static_cast<double>(st.feedback));
  gauge("fewrec_model_version", "Models swapped in since start (0 = none: popularity).",
        static_cast<double>(st.model_version));
  gauge("fewrec_model_items", "Items the served model scores.", static_cast<double>(st.model_items));
  gauge("fewrec_recommend_cache_hits_total", "Recommendations answered from the cache.",
        static_cast<double>(st.cache_hits), "counter");
  gauge("fewrec_recommend_cache_misses_total", "Recommendations computed (cache miss or no cache entry).",
        static_cast<double>(st.cache_misses), "counter");
  if (st.index_recall >= 0) gauge("fewrec_index_recall_at_10", "HNSW recall@10 against exact.", st.index_recall);
  gauge("fewrec_uptime_seconds", "Seconds since the server started.",
        std::chrono::duration<double>(Clock::now() - started).count());
  return out;
}

// ------------------------------------------------------------------ server

HttpServer::HttpServer(Service& service, HttpOptions options, core::Monitor& log)
    : impl_(std::make_unique<Impl>(service, std::move(options), log)) {
  const auto& o = impl_->o;
  FEWREC_CHECK(!o.require_api_key || !o.api_key.empty(), kInvalidArgument,
               "no API key: set serve.api_key (or FEWREC_API_KEY), or set serve.require_api_key = false to open "
               "write and admin endpoints to anyone (local use only)");
  auto& http = impl_->http;
  http.set_tcp_nodelay(true);
  http.set_keep_alive_timeout(o.keep_alive_seconds);
  http.set_keep_alive_max_count(static_cast<size_t>(o.keep_alive_max_requests));
  http.set_read_timeout(o.read_timeout_seconds, 0);
  http.set_write_timeout(o.read_timeout_seconds, 0);
  http.set_payload_max_length(static_cast<size_t>(o.max_body_bytes));
  const auto threads = static_cast<size_t>(o.threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl_->routes_setup();
}

HttpServer::~HttpServer() {
  stop();
  std::lock_guard lock(impl_->reload_mu);
  if (impl_->reload_thread.joinable()) impl_->reload_thread.join();
}

int HttpServer::bind() {
  auto& i = *impl_;
  if (i.o.port == 0) {
    i.port = i.http.bind_to_any_port(i.o.host);
  } else {
    i.port = i.http.bind_to_port(i.o.host, i.o.port) ? i.o.port : -1;
  }
  FEWREC_CHECK(i.port > 0, kUnavailable, "cannot listen on {}:{} (address in use or not available)", i.o.host,
               i.o.port);
  return i.port;
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::run() {
  if (impl_->port < 0) bind();
  impl_->listening = true;
  if (!impl_->stopping) impl_->http.listen_after_bind();
  impl_->listening = false;
}

void HttpServer::stop() {
  auto& i = *impl_;
  i.stopping = true;
  // run() may be between its check and httplib's start: wait for it briefly.
  for (int n = 0; n < 1000 && i.listening && !i.http.is_running(); ++n)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  i.http.stop();
}

std::string HttpServer::metrics_text() const { return impl_->metrics_text(); }

}  // namespace fewrec::serve

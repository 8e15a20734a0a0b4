// HttpServer: the Service as a JSON HTTP API on cpp-httplib.
//
// TCP_NODELAY and keep-alive are on; requests run on a pool of `threads`
// threads (one keep-alive connection holds a thread while it is open, so
// size the pool for the concurrent connections you expect). Write and admin
// endpoints need the API key (header `X-API-Key: <key>` or
// `Authorization: Bearer <key>`) unless require_api_key is false. Bodies
// above max_body_bytes answer 413. Errors answer
// {"error": {"status": <code>, "message": "..."}}: 400 bad input (the
// message names the field), 401 / 403 missing / wrong key, 404 unknown
// user / item / route, 413, 503 unavailable, 500 without internal details
// (those go to the log).
//
// Endpoints (see the README for examples):
//   GET    /health                         liveness (no key)
//   GET    /metrics                        Prometheus text format (no key)
//   GET    /stats                          counts, served model, index
//   POST   /users                          upsert one user, an array or {"users": [...]}
//   GET    /users/{id}   PUT /users/{id}   DELETE /users/{id}
//   GET    /users?cursor=&limit=           list
//   GET    /users/{id}/feedback?limit=     newest first
//   POST   /items  GET|PUT|DELETE /items/{id}  GET /items?cursor=&limit=
//   POST   /feedback                       one event, an array or {"feedback": [...]}
//   GET    /recommend/{user}?k=&exclude_seen=&exclude=a,b&category=&reasons=
//   POST   /recommend                      anonymous context (history in the body)
//   GET    /items/{id}/similar?k=&category=&exclude=&reasons=
//   POST   /admin/reload?wait=true         retrain / reload the model
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fewrec/core/monitor.h"
#include "fewrec/serve/service.h"

namespace fewrec::core {
class Config;
}

namespace fewrec::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = any free port (see HttpServer::port())
  int threads = 32;
  std::string api_key;
  bool require_api_key = true;  // false: writes open to anyone (local use only)
  int64_t max_body_bytes = 16 << 20;
  int64_t max_batch = 100000;  // records per batch request
  int keep_alive_seconds = 5;
  int keep_alive_max_requests = 100000;
  int read_timeout_seconds = 10;
  bool access_log = false;  // one line per request to the monitor

  // Reads serve.host, serve.port, serve.threads, serve.api_key,
  // serve.require_api_key, serve.max_body_bytes, ... (errors name the key).
  // FEWREC_API_KEY in the environment fills an empty serve.api_key.
  static HttpOptions from_config(core::Config& config);
};

class HttpServer {
 public:
  // kInvalidArgument when the key is required but empty.
  HttpServer(Service& service, HttpOptions options, core::Monitor& log);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port; returns the port (the chosen one when port was 0).
  // kUnavailable when the address cannot be bound.
  int bind();
  int port() const;
  // Serves until stop(); returns after in-flight requests finished.
  void run();
  // Stops accepting and lets in-flight requests finish. Thread-safe,
  // async-signal-unsafe (call it from a normal thread).
  void stop();
  // The Prometheus text of /metrics.
  std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fewrec::serve

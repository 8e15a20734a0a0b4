// HttpServer over loopback: the API end to end, and every kind of bad input.
#include "fewrec/serve/http.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "fewrec/core/error.h"
#include "fewrec/serve/json_io.h"
#include "serve_test_util.h"

namespace fewrec::serve {
namespace {

using namespace testing;  // NOLINT
using nlohmann::json;

constexpr const char* kKey = "test-key";

class Http : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = Service::open(test_options(dir_.file("store.db")), core::null_monitor());
    HttpOptions ho;
    ho.port = 0;
    ho.threads = 4;
    ho.api_key = kKey;
    ho.max_body_bytes = 64 * 1024;
    server_ = std::make_unique<HttpServer>(*service_, ho, core::null_monitor());
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_keep_alive(true);
  }
  void TearDown() override {
    client_.reset();  // closes the keep-alive connection
    server_->stop();
    thread_.join();
  }

  httplib::Headers key() const { return {{"X-API-Key", kKey}}; }
  httplib::Result post(const std::string& path, const std::string& body, bool with_key = true) {
    return client_->Post(path.c_str(), with_key ? key() : httplib::Headers{}, body, "application/json");
  }
  static json body(const httplib::Result& r) { return json::parse(r->body); }
  static std::string message(const httplib::Result& r) { return body(r)["error"]["message"].get<std::string>(); }

  void load_world() {
    json items = json::array();
    for (const auto& it : world_items()) items.push_back(to_json(it));
    ASSERT_EQ(post("/items", json{{"items", items}}.dump())->status, 200);
    json fb = json::array();
    for (const auto& e : world_feedback()) fb.push_back(to_json(e));
    auto r = post("/feedback", fb.dump());
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(body(r)["inserted"], 320);
    auto rl = post("/admin/reload?wait=true", "");
    ASSERT_EQ(rl->status, 200) << rl->body;
    EXPECT_EQ(body(rl)["model"], "itemknn");
  }

  TempDir dir_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(Http, RecommendationsFollowFeedback) {
  load_world();
  auto h = client_->Get("/health");
  ASSERT_EQ(h->status, 200);
  EXPECT_EQ(body(h)["status"], "ok");
  ASSERT_EQ(post("/users", R"({"id": "nu", "attributes": {"country": "fr"}})")->status, 200);
  auto g = client_->Get("/users/nu");
  ASSERT_EQ(g->status, 200);
  EXPECT_EQ(body(g)["attributes"]["country"], "fr");
  auto pop = client_->Get("/recommend/nu?k=10");
  ASSERT_EQ(pop->status, 200);
  EXPECT_EQ(body(pop)["source"], "popularity");
  auto fb = post("/feedback", R"([{"user": "nu", "item": "b1", "type": "click"},
                                  {"user": "nu", "item": "b2", "type": "click", "timestamp": 5},
                                  {"user": "nu", "item": "b3", "type": "like", "value": 1}])");
  ASSERT_EQ(fb->status, 200) << fb->body;
  auto r = client_->Get("/recommend/nu?k=10&reasons=true");
  ASSERT_EQ(r->status, 200);
  auto j = body(r);
  EXPECT_EQ(j["source"], "model");
  EXPECT_NE(j["items"], body(pop)["items"]);
  int b = 0;
  for (const auto& x : j["items"]) {
    b += is_b(x["id"].get<std::string>());
    EXPECT_TRUE(x.contains("reason"));
  }
  EXPECT_GE(b, 8);
  auto cat = client_->Get("/recommend/nu?k=3&category=A&exclude=a0,a1");
  ASSERT_EQ(cat->status, 200);
  ASSERT_EQ(body(cat)["items"].size(), 3u);
  const json cat_items = body(cat)["items"];
  for (const auto& x : cat_items) {
    EXPECT_TRUE(is_a(x["id"].get<std::string>()));
    EXPECT_NE(x["id"], "a0");
    EXPECT_NE(x["id"], "a1");
  }
  auto anon = post("/recommend", R"({"history": ["b4", {"item": "b5", "type": "click"}], "k": 5})", false);
  ASSERT_EQ(anon->status, 200) << anon->body;
  EXPECT_EQ(body(anon)["items"].size(), 5u);
  auto sim = client_->Get("/items/b5/similar?k=4");
  ASSERT_EQ(sim->status, 200);
  EXPECT_EQ(body(sim)["items"].size(), 4u);
  auto events = client_->Get("/users/nu/feedback");
  ASSERT_EQ(events->status, 200);
  EXPECT_EQ(body(events)["feedback"].size(), 3u);
  auto list = client_->Get("/items?limit=5");
  ASSERT_EQ(list->status, 200);
  EXPECT_EQ(body(list)["items"].size(), 5u);
  EXPECT_NE(body(list)["next_cursor"], 0);
  // Items: update, delete.
  ASSERT_EQ(client_->Put("/items/b9", key(), R"({"categories": ["B"], "text": "beta"})", "application/json")->status,
            200);
  EXPECT_EQ(client_->Delete("/items/b9", key())->status, 200);
  EXPECT_EQ(client_->Get("/items/b9")->status, 404);
  EXPECT_EQ(client_->Delete("/users/nu", key())->status, 200);
  EXPECT_EQ(client_->Get("/recommend/nu")->status, 404);
  // A JSON body sent as curl -d sends it (form-encoded content type) is read as JSON.
  auto form = client_->Post("/feedback", key(), R"({"user": "nu2", "item": "b1", "type": "click"})",
                            "application/x-www-form-urlencoded");
  EXPECT_EQ(form->status, 200) << form->body;
  // Metrics in Prometheus text.
  auto m = client_->Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("fewrec_http_requests_total{endpoint=\"recommend_user\",code=\"2xx\"}"), std::string::npos);
  EXPECT_NE(m->body.find("fewrec_http_request_seconds_bucket{endpoint=\"feedback\",le=\"+Inf\"}"), std::string::npos);
  EXPECT_NE(m->body.find("fewrec_model_version 1"), std::string::npos);
  EXPECT_EQ(m->body.find("code=\"other\""), std::string::npos) << "a response without a status";
  auto st = client_->Get("/stats");
  ASSERT_EQ(st->status, 200);
  EXPECT_EQ(body(st)["model"], "itemknn");
}

TEST_F(Http, BadInputGetsTheRightStatusAndMessage) {
  load_world();
  struct Case {
    std::string method, path, body;
    bool with_key;
    int status;
    std::string message;
  };
  const std::string big(70 * 1024, 'x');
  std::vector<Case> cases = {
      {"POST", "/feedback", "{\"user\": ", true, 400, "not valid JSON"},
      {"POST", "/feedback", "[{\"user\": \"u\", \"item\": \"a1\", \"type\": \"click\"}, {\"user\": \"u\", \"item\": "
                            "\"a1\", \"type\": \"click\", \"value\": \"high\"}]",
       true, 400, "feedback[1].value: expected a number, got a string"},
      {"POST", "/feedback", R"({"item": "a1", "type": "click"})", true, 400, "feedback: missing field `user`"},
      {"POST", "/feedback", R"({"user": "u", "item": "a1", "type": "click", "tstamp": 1})", true, 400,
       "unknown field `tstamp`"},
      {"POST", "/feedback", R"("hello")", true, 400, "expected an object, an array of objects"},
      {"POST", "/users", R"({"id": 5})", true, 400, "user.id: expected a string, got an integer"},
      {"POST", "/users", R"({"id": ""})", true, 400, "user id `` is empty"},
      {"POST", "/items", R"({"id": "x", "categories": "A"})", true, 400, "item.categories: expected an array"},
      {"PUT", "/users/u1", R"({"id": "u2"})", true, 400, "differs from the id in the URL"},
      {"GET", "/recommend/uA1?k=abc", "", false, 400, "query parameter `k`: expected an integer"},
      {"GET", "/recommend/uA1?k=0", "", false, 400, "query parameter `k`"},
      {"GET", "/recommend/uA1?kk=3", "", false, 400, "unknown query parameter `kk`"},
      {"GET", "/recommend/uA1?reasons=maybe", "", false, 400, "expected true or false"},
      {"POST", "/recommend", R"({"history": ["nope"]})", false, 404, "unknown item `nope`"},
      {"POST", "/recommend", R"({"history": "b1"})", false, 400, "request.history: expected an array"},
      {"GET", "/recommend/nobody", "", false, 404, "unknown user `nobody`"},
      {"GET", "/users/nobody", "", false, 404, "unknown user `nobody`"},
      {"DELETE", "/items/nothing", "", true, 404, "unknown item `nothing`"},
      {"GET", "/items/nothing/similar", "", false, 404, "unknown item `nothing`"},
      {"GET", "/no/such/endpoint", "", false, 404, "no endpoint GET /no/such/endpoint"},
      {"POST", "/feedback", "[" + big + "]", true, 413, "request body larger than 65536 bytes"},
      {"POST", "/feedback", R"({"user": "u", "item": "a1", "type": "click"})", false, 401, "missing API key"},
      {"POST", "/admin/reload", "", false, 401, "missing API key"},
      {"DELETE", "/users/uA1", "", false, 401, "missing API key"},
  };
  for (const auto& c : cases) {
    httplib::Headers h = c.with_key ? key() : httplib::Headers{};
    httplib::Result r = c.method == "GET"      ? client_->Get(c.path.c_str())
                        : c.method == "POST"   ? client_->Post(c.path.c_str(), h, c.body, "application/json")
                        : c.method == "PUT"    ? client_->Put(c.path.c_str(), h, c.body, "application/json")
                                               : client_->Delete(c.path.c_str(), h);
    ASSERT_TRUE(r) << c.method << " " << c.path << ": no response";
    EXPECT_EQ(r->status, c.status) << c.method << " " << c.path << ": " << r->body;
    json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << c.path << ": " << r->body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(c.message), std::string::npos)
        << c.method << " " << c.path << ": " << r->body;
    EXPECT_EQ(r->body.find(".cpp"), std::string::npos) << "internal details leaked: " << r->body;
  }
  // A wrong key is refused too, also as a bearer token.
  auto wrong = client_->Post("/feedback", httplib::Headers{{"X-API-Key", "nope"}}, "[]", "application/json");
  EXPECT_EQ(wrong->status, 403);
  EXPECT_EQ(message(wrong), "wrong API key");
  auto bearer = client_->Post("/feedback", httplib::Headers{{"Authorization", std::string("Bearer ") + kKey}}, "[]",
                              "application/json");
  EXPECT_EQ(bearer->status, 200);
  // Nothing of the bad requests was stored, and the server keeps serving.
  EXPECT_EQ(service_->stats().feedback, 320);
  EXPECT_EQ(client_->Get("/health")->status, 200);
  EXPECT_EQ(client_->Get("/recommend/uA1")->status, 200);
}

TEST(HttpOptionsTest, KeyIsRequiredUnlessDisabled) {
  TempDir dir;
  auto svc = Service::open(test_options(dir.file("s.db")), core::null_monitor());
  HttpOptions ho;
  ho.port = 0;
  try {
    HttpServer s(*svc, ho, core::null_monitor());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("serve.require_api_key = false"), std::string::npos);
  }
  ho.require_api_key = false;
  HttpServer open(*svc, ho, core::null_monitor());
  const int port = open.bind();
  std::thread t([&] { open.run(); });
  httplib::Client c("127.0.0.1", port);
  auto r = c.Post("/feedback", R"({"user": "u", "item": "i", "type": "click"})", "application/json");
  EXPECT_EQ(r->status, 200);
  open.stop();
  t.join();
}

}  // namespace
}  // namespace fewrec::serve

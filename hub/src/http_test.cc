#include "hub/http.h"

#include "hub/hub_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_support/process.h"
#include "web_files.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

HttpRequest Req(std::string method, std::string path) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

HttpHandler Echo(std::string name) {
  return [name](const HttpRequest& r) {
    json params = json::object();
    for (const auto& [k, v] : r.path_params) params[k] = v;
    return JsonResponse(200, {{"route", name}, {"params", params}});
  };
}

json Body(const HttpResponse& r) { return json::parse(r.body); }

TEST(RouterTest, MatchesLiteralsAndParametersInOrder) {
  Router router;
  router.Add("GET", "/api/v1/instruments", Echo("list"));
  router.Add("GET", "/api/v1/instruments/{id}", Echo("one"));
  router.Add("GET", "/api/v1/instruments/{id}/timeline", Echo("timeline"));
  router.Add("GET", "/{file}", Echo("file"));
  router.Add("GET", "/", Echo("root"));

  EXPECT_EQ(Body(router.Dispatch(Req("GET", "/api/v1/instruments")))["route"], "list");
  json one = Body(router.Dispatch(Req("GET", "/api/v1/instruments/nmr-1")));
  EXPECT_EQ(one["route"], "one");
  EXPECT_EQ(one["params"]["id"], "nmr-1");
  EXPECT_EQ(Body(router.Dispatch(Req("GET", "/api/v1/instruments/nmr-1/timeline")))["params"]["id"],
            "nmr-1");
  EXPECT_EQ(Body(router.Dispatch(Req("GET", "/app.js")))["params"]["file"], "app.js");
  EXPECT_EQ(Body(router.Dispatch(Req("GET", "/")))["route"], "root");
  // HEAD is served by the GET route (the server drops the body).
  EXPECT_EQ(Body(router.Dispatch(Req("HEAD", "/api/v1/instruments")))["route"], "list");
}

TEST(RouterTest, UnknownPathIsA404InTheErrorShape) {
  Router router;
  router.Add("GET", "/api/v1/instruments/{id}", Echo("one"));
  for (const char* path : {"/api/v1/nothing", "/api/v1/instruments/", "/api/v1/instruments/a/b",
                           "/api/v1/instruments"}) {
    HttpResponse r = router.Dispatch(Req("GET", path));
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.content_type, "application/json");
    json body = Body(r);
    EXPECT_EQ(body["error"]["status"], 404) << path;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(path), std::string::npos);
  }
}

// Found by the HTTP fuzzer: a query value that is not UTF-8 ("%CA%CD" decodes to such bytes),
// echoed in a 400's message, made nlohmann throw while the response was written, so the client
// got a 500 instead of the 400 that says what is wrong. Now the message gets U+FFFD.
TEST(JsonResponseTest, TextThatIsNotUtf8IsReplacedNotThrown) {
  const HttpResponse r = BadParameter("to",
                                      "not a time: '2\xca\xcd"
                                      "6-01-02'");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["error"]["message"],
            "parameter 'to': not a time: '2\xef\xbf\xbd\xef\xbf\xbd"
            "6-01-02'");
}

TEST(RouterTest, WrongMethodIsA405WithAllow) {
  Router router;
  router.Add("GET", "/api/v1/bookings", Echo("list"));
  router.Add("POST", "/api/v1/bookings", Echo("create"));
  router.Add("GET", "/metrics", Echo("metrics"));
  HttpResponse r = router.Dispatch(Req("DELETE", "/api/v1/bookings"));
  EXPECT_EQ(r.status, 405);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Allow");
  EXPECT_EQ(r.headers[0].second, "GET, POST, HEAD");
  EXPECT_EQ(Body(r)["error"]["status"], 405);
  EXPECT_EQ(Body(router.Dispatch(Req("POST", "/api/v1/bookings")))["route"], "create");
  EXPECT_EQ(router.Dispatch(Req("PUT", "/metrics")).status, 405);
}

TEST(RouterTest, AuthorizerRunsBeforeRouting) {
  Router router;
  router.Add("GET", "/api/v1/instruments", Echo("list"));
  router.SetAuthorizer([](const HttpRequest& r) -> std::optional<HttpResponse> {
    if (r.Header("authorization") == "Bearer good") return std::nullopt;
    return JsonError(401, "a bearer token is required");
  });
  EXPECT_EQ(router.Dispatch(Req("GET", "/api/v1/instruments")).status, 401);
  EXPECT_EQ(router.Dispatch(Req("GET", "/nowhere")).status, 401) << "unknown paths are not probed";
  HttpRequest ok = Req("GET", "/api/v1/instruments");
  ok.headers["authorization"] = "Bearer good";
  EXPECT_EQ(router.Dispatch(ok).status, 200);
}

TEST(HttpHelpersTest, ErrorsHaveOneShape) {
  HttpResponse r = BadParameter("from", "not an ISO 8601 time");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r), json::parse(R"({"error": {"status": 400, "message":
                                     "parameter 'from': not an ISO 8601 time"}})"));
}

TEST(HttpHelpersTest, ParsesTargets) {
  auto t = ParseTarget("/api/v1/instruments?city=Shanghai&state=IN_USE,IDLE&x=a%20b&flag&e=");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->path, "/api/v1/instruments");
  EXPECT_EQ(t->query["city"], "Shanghai");
  EXPECT_EQ(t->query["state"], "IN_USE,IDLE");
  EXPECT_EQ(t->query["x"], "a b");
  EXPECT_EQ(t->query["flag"], "");
  EXPECT_EQ(t->query["e"], "");
  // '+' is kept: an ISO 8601 offset needs no escaping.
  auto offset = ParseTarget("/t?from=2026-01-01T08:00:00+08:00");
  ASSERT_TRUE(offset.has_value());
  EXPECT_EQ(offset->query["from"], "2026-01-01T08:00:00+08:00");
  EXPECT_EQ(ParseTarget("/a%2Fb")->path, "/a/b");
  EXPECT_FALSE(ParseTarget("nopath").has_value());
  EXPECT_FALSE(ParseTarget("").has_value());
  EXPECT_FALSE(ParseTarget("/bad%zz").has_value());
  EXPECT_FALSE(ParseTarget("/short%2").has_value());
  EXPECT_FALSE(ParseTarget("/nul%00").has_value());
  EXPECT_FALSE(ParseTarget("/a?k=%g1").has_value());
}

class WebFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(root_);
    instrumeter::testing::WriteFile(root_ + "/index.html", "<!doctype html><title>x</title>");
    instrumeter::testing::WriteFile(root_ + "/app.js", "console.log(1)");
    instrumeter::testing::WriteFile(root_ + "/app.css", "body{}");
    instrumeter::testing::WriteFile(root_ + "/.secret", "no");
    instrumeter::testing::WriteFile(dir_.File("outside.txt"), "outside");
    std::filesystem::create_symlink(dir_.File("outside.txt"), root_ + "/escape.txt");
    std::filesystem::create_directories(root_ + "/sub");
  }
  instrumeter::testing::TempDir dir_;
  std::string root_ = dir_.File("web");
};

TEST_F(WebFilesTest, ServesFilesWithTheirTypes) {
  HttpResponse index = ServeWebFile(root_, "");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(index.body, "<!doctype html><title>x</title>");
  EXPECT_EQ(ServeWebFile(root_, "app.js").content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(ServeWebFile(root_, "app.css").content_type, "text/css; charset=utf-8");
  EXPECT_EQ(ServeWebFile(root_, "app.css").body, "body{}");
}

TEST_F(WebFilesTest, RefusesTraversalHiddenFilesFoldersAndEscapingLinks) {
  for (const char* name : {"..", "../outside.txt", ".secret", "escape.txt", "sub", "missing.js",
                           "/etc/passwd", "..\\outside.txt"}) {
    HttpResponse r = ServeWebFile(root_, name);
    EXPECT_EQ(r.status, 404) << name;
    EXPECT_EQ(Body(r)["error"]["status"], 404) << name;
  }
  EXPECT_EQ(ServeWebFile(dir_.File("no-such-root"), "").status, 404);
}

TEST(HttpConfigTest, DefaultsToLoopbackAndRefusesBadValuesByKey) {
  const std::string base = "[mqtt]\nbroker = \"tcp://127.0.0.1:1883\"\n[store]\npath = \"h.db\"\n";
  auto config = ParseHubConfig(base, "hub.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->http.enabled);
  EXPECT_EQ(config->http.server.listen, "127.0.0.1:8080");
  EXPECT_EQ(config->http.web_root, "");
  EXPECT_EQ(config->http.server.stream_heartbeat_ms, 15'000);

  auto custom = ParseHubConfig(base +
                                   "[http]\nlisten = \"[::1]:9090\"\nenabled = false\n"
                                   "web_root = \"/srv/web\"\nstream_queue_events = 10\n",
                               "hub.toml");
  ASSERT_TRUE(custom.ok()) << custom.status().ToString();
  EXPECT_FALSE(custom->http.enabled);
  EXPECT_EQ(custom->http.server.listen, "[::1]:9090");
  EXPECT_EQ(custom->http.web_root, "/srv/web");
  EXPECT_EQ(custom->http.server.stream_queue_events, 10u);

  for (const char* bad : {"listen = \"8080\"", "listen = \"host:\"", "listen = \"h:99999\"",
                          "listen = \"h:80x\"", "listen = \"h:123456789012345678901\""}) {
    auto refused = ParseHubConfig(base + "[http]\n" + bad + "\n", "hub.toml");
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("hub.toml [http]: key 'listen': expected host:port"),
              std::string::npos)
        << refused.status().message();
  }
  auto unknown = ParseHubConfig(base + "[http]\nport = 80\n", "hub.toml");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("port"), std::string::npos);
}

}  // namespace
}  // namespace instrumeter::hub

// Bearer tokens of the HTTP API: the policy (what is public, when tokens are required) and the
// answers (401 without or with a wrong token), against a real SQLite store.
#include "api_auth.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "hub/sqlite_store.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

HttpRequest Req(const std::string& method, const std::string& path,
                const std::string& authorization = "") {
  HttpRequest r;
  r.method = method;
  r.path = path;
  if (!authorization.empty()) r.headers["authorization"] = authorization;
  return r;
}

class ApiAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteStore({.path = dir_.File("hub.db")});
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }
  // A router whose every route answers 200, behind the token authorizer.
  Router Make(std::optional<bool> required, const std::string& listen = "127.0.0.1:8080") {
    Router router;
    for (const char* path : {"/api/v1/instruments", "/api/v1/stream", "/metrics", "/healthz", "/",
                             "/{file}", "/live/{token}"})
      router.Add("GET", path, [](const HttpRequest&) { return JsonResponse(200, {}); });
    router.Add("POST", "/api/v1/bookings",
               [](const HttpRequest&) { return JsonResponse(201, {}); });
    router.SetAuthorizer(MakeTokenAuthorizer(store_.get(), required, listen));
    return router;
  }
  std::string AddToken(const std::string& name) {
    Result<std::string> token = NewApiToken();
    EXPECT_TRUE(token.ok());
    EXPECT_TRUE(store_->AddApiToken({name, ApiTokenHash(*token), 1, std::nullopt}).ok());
    return *token;
  }

  instrumeter::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(ApiAuthTest, OnLoopbackWithoutTokensTheApiIsOpen) {
  Router router = Make(std::nullopt);
  EXPECT_EQ(router.Dispatch(Req("GET", "/api/v1/instruments")).status, 200);
  EXPECT_EQ(router.Dispatch(Req("POST", "/api/v1/bookings")).status, 201);
}

TEST_F(ApiAuthTest, OffLoopbackTokensAreRequiredEvenBeforeAnyExists) {
  Router router = Make(std::nullopt, "0.0.0.0:8080");
  EXPECT_EQ(router.Dispatch(Req("GET", "/api/v1/instruments")).status, 401);
  EXPECT_EQ(router.Dispatch(Req("GET", "/healthz")).status, 200);
  EXPECT_TRUE(IsLoopbackListen("[::1]:80"));
  EXPECT_TRUE(IsLoopbackListen("localhost:80"));
  EXPECT_FALSE(IsLoopbackListen("[::]:80"));
  EXPECT_FALSE(IsLoopbackListen(":8080"));
}

TEST_F(ApiAuthTest, WithoutOrWithAWrongTokenItIs401) {
  const std::string token = AddToken("ops");
  Router router = Make(std::nullopt);  // a token exists: required even on loopback
  for (const char* path : {"/api/v1/instruments", "/api/v1/stream", "/metrics"}) {
    HttpResponse none = router.Dispatch(Req("GET", path));
    EXPECT_EQ(none.status, 401) << path;
    const nlohmann::json body = nlohmann::json::parse(none.body);
    EXPECT_EQ(body["error"]["status"], 401);
    ASSERT_FALSE(none.headers.empty());
    EXPECT_EQ(none.headers[0].first, "WWW-Authenticate");
    HttpResponse wrong = router.Dispatch(Req("GET", path, "Bearer imt_" + std::string(64, '0')));
    EXPECT_EQ(wrong.status, 401) << path;
    EXPECT_NE(wrong.headers[0].second.find("invalid_token"), std::string::npos);
    EXPECT_EQ(router.Dispatch(Req("GET", path, "Bearer " + token)).status, 200) << path;
  }
  EXPECT_EQ(router.Dispatch(Req("GET", "/api/v1/instruments", "bearer " + token)).status, 200)
      << "the scheme is case-insensitive";
  EXPECT_EQ(router.Dispatch(Req("GET", "/api/v1/instruments", "Basic " + token)).status, 401);
  EXPECT_EQ(router.Dispatch(Req("GET", "/api/v1/instruments", token)).status, 401);
  // Every write endpoint, whatever its path.
  EXPECT_EQ(router.Dispatch(Req("POST", "/api/v1/bookings")).status, 401);
  EXPECT_EQ(router.Dispatch(Req("POST", "/app.js")).status, 401);
  EXPECT_EQ(router.Dispatch(Req("POST", "/api/v1/bookings", "Bearer " + token)).status, 201);
  // Public: the health check and the dashboard's files (they carry no telemetry).
  EXPECT_EQ(router.Dispatch(Req("GET", "/healthz")).status, 200);
  EXPECT_EQ(router.Dispatch(Req("GET", "/")).status, 200);
  EXPECT_EQ(router.Dispatch(Req("HEAD", "/app.js")).status, 200);
  // A customer's share link carries its own credential (share_api.h checks it), and is read-only.
  EXPECT_EQ(router.Dispatch(Req("GET", "/live/0123")).status, 200);
  EXPECT_EQ(router.Dispatch(Req("POST", "/live/0123")).status, 401);
}

TEST_F(ApiAuthTest, OnlyTheStreamTakesTheTokenAsAParameter) {
  const std::string token = AddToken("dashboard");
  Router router = Make(std::nullopt);
  HttpRequest stream = Req("GET", "/api/v1/stream");
  stream.query["access_token"] = token;
  EXPECT_EQ(router.Dispatch(stream).status, 200);
  HttpRequest list = Req("GET", "/api/v1/instruments");
  list.query["access_token"] = token;
  EXPECT_EQ(router.Dispatch(list).status, 401);
}

TEST_F(ApiAuthTest, ARevokedTokenIsRefusedAtOnce) {
  const std::string token = AddToken("ops");
  Router router = Make(std::nullopt);
  EXPECT_EQ(router.Dispatch(Req("GET", "/metrics", "Bearer " + token)).status, 200);
  ASSERT_TRUE(store_->RevokeApiToken("ops", 2).ok());
  EXPECT_EQ(router.Dispatch(Req("GET", "/metrics", "Bearer " + token)).status, 401);
  EXPECT_EQ(store_->RevokeApiToken("ops", 3).code(), Status::Code::kNotFound);
  EXPECT_EQ(store_->AddApiToken({"ops", ApiTokenHash("x"), 4, std::nullopt}).code(),
            Status::Code::kAlreadyExists);
}

TEST_F(ApiAuthTest, ConfigurationDecidesWhenSet) {
  AddToken("ops");
  EXPECT_EQ(Make(false).Dispatch(Req("GET", "/api/v1/instruments")).status, 200)
      << "require_tokens = false: open (development)";
  store_->RevokeApiToken("ops", 2);
  EXPECT_EQ(Make(true).Dispatch(Req("GET", "/api/v1/instruments")).status, 401)
      << "require_tokens = true with no active token: locked";
}

TEST_F(ApiAuthTest, TokensAreRandomAndStoredOnlyAsTheirHash) {
  Result<std::string> a = NewApiToken();
  Result<std::string> b = NewApiToken();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->size(), 4u + 64u);
  EXPECT_EQ(a->rfind("imt_", 0), 0u);
  AddToken("ops");
  Result<std::vector<ApiToken>> listed = store_->ListApiTokens();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().sha256.size(), 32u);
}

}  // namespace
}  // namespace instrumeter::hub

// The hub's HTTP seam: plain request and response structs, a Router that maps (method, path
// pattern) to handlers, and the JSON helpers every endpoint answers with. Nothing here knows
// about sockets or Boost.Beast: the server (http_server.h) parses the wire into an HttpRequest,
// calls Router::Dispatch and writes the HttpResponse back, so handlers are tested without
// sockets.
//
// Adding endpoints (e.g. the billing work's `POST /api/v1/bookings` and
// `GET /api/v1/billing/entries`): build a handler that takes an HttpRequest and returns an
// HttpResponse, and register it before the server starts:
//
//   router.Add("POST", "/api/v1/bookings", [&](const HttpRequest& req) {
//     if (req.body.empty()) return JsonError(400, "body: a JSON booking is required");
//     ...
//     return JsonResponse(201, booking_json);
//   });
//
// Conventions every handler follows: JSON bodies with snake_case keys; times as ISO 8601 UTC
// ("2026-01-01T08:00:00.000Z") with a *_unix_ms twin where a client computes with them; every
// error is `{"error": {"status": 400, "message": "parameter 'from': not an ISO 8601 time"}}`,
// and a bad query parameter is a 400 whose message starts with "parameter '<name>': ".
//
// Threading: a Router is filled on one thread before the server starts, then only read; its
// handlers run on the server's http thread, one at a time.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace instrumeter::hub {

struct HttpRequest {
  std::string method;  // "GET", "POST", ... (HEAD is dispatched as GET; the server drops the body)
  std::string path;    // percent-decoded, without the query: "/api/v1/instruments/nmr-1"
  std::map<std::string, std::string> query;        // decoded; the last of repeated keys wins
  std::map<std::string, std::string> path_params;  // filled by the Router: {"id", "nmr-1"}
  std::map<std::string, std::string> headers;      // names in lower case
  std::string body;

  // The header's value, or "" when absent. `name` in lower case.
  std::string Header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, e.g. Allow
  // Server-Sent Events: the server sends the headers and `body` (the stream's first lines), then
  // keeps the connection open and appends every broadcast event (HttpServer::Broadcast).
  bool stream = false;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Returns a response to refuse the request (401/403), or nullopt to let it through. Called
// before routing for every request. The seam for the security issue (bearer tokens); unset
// means every request is allowed (the server listens on loopback by default).
using HttpAuthorizer = std::function<std::optional<HttpResponse>(const HttpRequest&)>;

class Router {
 public:
  // `pattern` is a path whose segments are literals or `{name}` parameters, each matching one
  // non-empty segment: "/api/v1/instruments/{id}/timeline". Routes are tried in the order they
  // were added; the first whose method and pattern match handles the request. Not thread-safe:
  // add every route before the server starts.
  void Add(std::string method, const std::string& pattern, HttpHandler handler);
  void SetAuthorizer(HttpAuthorizer authorizer) { authorizer_ = std::move(authorizer); }

  // Routes `request` (its path_params filled from the pattern). Unknown path: 404 JSON. A path
  // that exists with other methods: 405 JSON with an Allow header.
  HttpResponse Dispatch(HttpRequest request) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // "{name}" for a parameter
    HttpHandler handler;
  };
  static bool Match(const Route& route, const std::vector<std::string>& segments,
                    std::map<std::string, std::string>* params);

  std::vector<Route> routes_;
  HttpAuthorizer authorizer_;
};

// A JSON body with `status`.
HttpResponse JsonResponse(int status, const nlohmann::json& body);
// Pre-serialised JSON (for large bodies written without building a json tree).
HttpResponse JsonTextResponse(int status, std::string body);
// {"error": {"status": <status>, "message": <message>}}.
HttpResponse JsonError(int status, const std::string& message);
// 400 for a bad query parameter: "parameter '<name>': <problem>".
HttpResponse BadParameter(const std::string& name, const std::string& problem);

// Decodes %XX escapes. '+' stays '+' (RFC 3986; so "+08:00" offsets need no escaping).
// nullopt for a malformed escape or a decoded NUL.
std::optional<std::string> PercentDecode(std::string_view text);
// Splits a request target ("/a/b?x=1&y=%20") into a decoded path and query map. nullopt when
// the target does not start with '/' or holds a malformed escape.
struct ParsedTarget {
  std::string path;
  std::map<std::string, std::string> query;
};
std::optional<ParsedTarget> ParseTarget(std::string_view target);

}  // namespace instrumeter::hub

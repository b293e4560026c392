#include "api_auth.h"

#include <openssl/rand.h>

#include <cctype>

#include "protocol/chain.h"

namespace instrumeter::hub {
namespace {

constexpr char kTokenPrefix[] = "imt_";

bool IsPublic(const HttpRequest& request) {
  if (request.method != "GET" && request.method != "HEAD") return false;
  if (request.path == "/healthz" || request.path == "/") return true;
  // A customer's share link: its token is its own credential (share_api.h), checked there.
  if (request.path.rfind("/live/", 0) == 0) return true;
  // A dashboard file: one segment, not an API route.
  return request.path.find('/', 1) == std::string::npos && request.path != "/metrics";
}

// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive), or of the event
// stream's access_token parameter.
std::string PresentedToken(const HttpRequest& request) {
  const std::string header = request.Header("authorization");
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() > kScheme.size()) {
    bool bearer = true;
    for (size_t i = 0; i < kScheme.size(); ++i)
      bearer = bearer && std::tolower(static_cast<unsigned char>(header[i])) == kScheme[i];
    if (bearer) return header.substr(kScheme.size());
  }
  if (request.path == "/api/v1/stream") {
    auto it = request.query.find("access_token");
    if (it != request.query.end()) return it->second;
  }
  return {};
}

HttpResponse Unauthorized(const std::string& message, bool invalid) {
  HttpResponse response = JsonError(401, message);
  response.headers.emplace_back(
      "WWW-Authenticate",
      std::string("Bearer realm=\"instrumeter\"") + (invalid ? ", error=\"invalid_token\"" : ""));
  return response;
}

}  // namespace

Result<std::string> NewApiToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    return Status::Internal("RAND_bytes failed: " + protocol::ossl::ErrorQueue());
  return kTokenPrefix +
         protocol::ToHex(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

std::string ApiTokenHash(std::string_view token) { return protocol::Sha256(token); }

bool IsLoopbackListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

HttpAuthorizer MakeTokenAuthorizer(Store* store, std::optional<bool> required,
                                   const std::string& listen) {
  const bool loopback = IsLoopbackListen(listen);
  return [store, required, loopback](const HttpRequest& request) -> std::optional<HttpResponse> {
    if (IsPublic(request)) return std::nullopt;
    bool needed = required.value_or(!loopback);
    if (!needed && !required.has_value()) {
      Result<bool> any = store->HasApiTokens();
      if (!any.ok()) return JsonError(503, "cannot check API tokens: " + any.status().message());
      needed = *any;
    }
    if (!needed) return std::nullopt;
    const std::string token = PresentedToken(request);
    if (token.empty())
      return Unauthorized(
          "a bearer token is required (Authorization: Bearer <token>; an operator makes one with "
          "`instrumeter-hub tokens add NAME`)",
          false);
    Result<std::optional<std::string>> name = store->FindApiToken(ApiTokenHash(token));
    if (!name.ok()) return JsonError(503, "cannot check API tokens: " + name.status().message());
    if (!name->has_value()) return Unauthorized("the bearer token is not valid", true);
    return std::nullopt;
  };
}

}  // namespace instrumeter::hub

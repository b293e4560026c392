// Bearer tokens for the hub's HTTP API (docs/security.md, "HTTP API"): which requests need one,
// and the Router authorizer that checks them. Tokens are made by `instrumeter-hub tokens add`,
// shown once, and stored only as their SHA-256.
//
// Policy while tokens are required: GET /healthz and the dashboard's static files (/ and
// /<file>) are public, since they carry no telemetry, and so are customers' share links
// (GET /live/<token>...; the share token is checked by share_api.h and is no bearer token);
// everything else (the /api/v1 routes, /metrics, and every method but GET) needs `Authorization:
// Bearer <token>`. The event stream also takes `?access_token=<token>`, because a browser's
// EventSource cannot set headers.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hub/http.h"
#include "hub/store.h"

namespace instrumeter::hub {

// A new token: "imt_" and 64 hex digits from OpenSSL's CSPRNG.
Result<std::string> NewApiToken();
// What the store keeps of a token: its SHA-256 (32 raw bytes).
std::string ApiTokenHash(std::string_view token);

// True for an address only this machine can reach: 127.0.0.0/8, ::1, localhost.
bool IsLoopbackListen(const std::string& listen);

// The authorizer for Router::SetAuthorizer. Tokens are required when `required` says so, and when
// it is unset as soon as the store holds any token or `listen` is not a loopback address.
// `store` is used on the http thread only and must outlive the authorizer.
HttpAuthorizer MakeTokenAuthorizer(Store* store, std::optional<bool> required,
                                   const std::string& listen);

}  // namespace instrumeter::hub

// Customer share links (issue 5; docs/security.md, "Share links"; docs/live-api.md): for a remote
// booking the hub issues `/live/<token>`, a public, read-only view of that one booking's
// instrument within that booking's window. The token is 128 bits from OpenSSL's CSPRNG, shown
// once (in the POST /api/v1/bookings response or by `instrumeter-hub bookings share`) and
// stored only as its SHA-256, so a request is looked up by hash, never compared byte by byte.
//
// A link opens `share_margin_s` before its booking starts and answers 410 Gone from
// `share_margin_s` after the booking ends, once a newer link replaced it, or once the booking is
// no longer remote. Share tokens and API bearer tokens live in separate tables: neither works as
// the other.
//
// Threading: the handlers run on the http thread and use its LiveView and Store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "hub/http.h"
#include "hub/live_view.h"
#include "hub/store.h"

namespace instrumeter::hub {

// The share page of a token: "/live/<token>".
std::string SharePath(const std::string& token);

// A new share token: 32 lowercase hex digits (128 random bits, RAND_bytes).
Result<std::string> NewShareToken();

// Makes a link for the remote booking `order_id` and returns its token (the only time it is
// seen). While the order has an active link: with `replace_active` that one is revoked,
// otherwise nothing is made and the result is nullopt. NotFound for an unknown order,
// FailedPrecondition for an on-site one. Thread: the Store's.
Result<std::optional<std::string>> IssueShareLink(Store* store, const std::string& order_id,
                                                  bool replace_active, int64_t now_unix_ms);

class ShareApi {
 public:
  struct Sources {
    LiveView* view;  // http thread
    Store* store;    // the http thread's own connection
    const Clock* clock;
    std::string web_root;  // holds live.html
    int64_t margin_ms = 3'600'000;
  };
  // Everything borrowed must outlive the ShareApi and the routes it adds.
  explicit ShareApi(Sources sources) : s_(std::move(sources)) {}

  // GET /live/{token} (the page) and GET /live/{token}/data (its JSON).
  void AddRoutes(Router* router);

  // 200 live.html for a link in force; a small HTML page with 404 (unknown) or 410 (expired,
  // replaced, no longer remote) otherwise, naming nothing of any booking.
  HttpResponse Page(const HttpRequest& request);
  // The booking, its instrument's state now, the timeline and in-use time of the window so far;
  // 404 / 410 JSON errors as Page.
  HttpResponse Data(const HttpRequest& request);

 private:
  // Fills `booking` with the booking behind `token` and returns nullopt, or returns the response
  // that refuses the token (`html` picks the page or the JSON form).
  std::optional<HttpResponse> Resolve(const std::string& token, bool html, Booking* booking);

  Sources s_;
};

}  // namespace instrumeter::hub

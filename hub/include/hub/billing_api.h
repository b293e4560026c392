// The billing side of the HTTP API (docs/billing.md, "HTTP API"): bookings in
// (`POST /api/v1/bookings`), bookings out (`GET /api/v1/bookings`) and the billing feed
// (`GET /api/v1/billing/entries`). Thin wrappers over bookings.h and ledger.h, so the HTTP routes
// and the CLI refuse and accept exactly the same things. Every route here needs a bearer token
// whenever tokens are required (src/api_auth.h).
//
// Threading: the handlers run on the http thread and use its Store and LiveView.
#pragma once

#include <cstdint>
#include <functional>

#include "common/clock.h"
#include "hub/billing_rules.h"
#include "hub/http.h"
#include "hub/live_view.h"
#include "hub/store.h"

namespace instrumeter::hub {

class BillingApi {
 public:
  struct Sources {
    Store* store;    // the http thread's own connection
    LiveView* view;  // re-reads its bookings after an import
    const Clock* clock;
    PartialBillingRules booking_defaults;  // [billing] defaults, as `bookings import` uses
  };
  // Everything borrowed must outlive the BillingApi and the routes it adds.
  explicit BillingApi(Sources sources) : s_(std::move(sources)) {}

  void AddRoutes(Router* router);

  // One booking object or an array, in the `bookings import` JSON format; all or nothing. 201
  // when a booking was created, else 200, with the counts and each booking's new share link
  // (remote bookings without one). 400 naming the element (`index`) and `field` otherwise.
  HttpResponse PostBookings(const HttpRequest& request);
  // ?instrument=&from=&to=: bookings whose window overlaps [from, to), in the import format.
  HttpResponse ListBookings(const HttpRequest& request);
  // ?after=<cursor>&limit=<n>: one page of the billing feed (ledger.h, ReadBillingFeed).
  HttpResponse BillingEntries(const HttpRequest& request);

 private:
  Sources s_;
};

}  // namespace instrumeter::hub

// The hub's HTTP side as one piece: its own database connection, the live view, the routes (live
// API, billing API, share links) and the server, wired to the ingest side through a LiveFeed.
// RunHub starts it once the ingest side is up and stops it after the last commit.
#pragma once

#include <memory>

#include "common/status.h"
#include "hub/billing_rules.h"
#include "hub/hub_config.h"
#include "hub/live_api.h"
#include "hub/live_feed.h"

namespace instrumeter::hub {

class LiveHttp {
 public:
  // Opens a second connection to the database (WAL lets it read while the ingest thread
  // writes), loads the live view, binds the listener and starts the http thread. `metrics` and
  // `feed` are borrowed and must outlive the LiveHttp; `health` is called on the http thread.
  // `booking_defaults` are the [billing] defaults that POST /api/v1/bookings resolves rules
  // with, as `bookings import` does.
  static Result<std::unique_ptr<LiveHttp>> Start(const HttpOptions& http, const StoreOptions& store,
                                                 const PartialBillingRules& booking_defaults,
                                                 const HubMetrics* metrics, LiveFeed* feed,
                                                 HealthProbe health);
  // Detaches from the feed, then stops the server and joins its thread.
  ~LiveHttp();
  LiveHttp(const LiveHttp&) = delete;
  LiveHttp& operator=(const LiveHttp&) = delete;

  int port() const;

 private:
  struct Parts;
  explicit LiveHttp(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

// The dashboard folder used when [http] web_root is empty (fixed at build time).
std::string DefaultWebRoot();

}  // namespace instrumeter::hub

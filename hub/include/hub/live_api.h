// The live API's handlers (docs/live-api.md): the instrument list and detail, timelines, the
// Server-Sent Events stream, /metrics, /healthz and the dashboard's files. Built on the Router
// seam (http.h) and free of sockets, so every handler is tested by calling it.
//
// Threading: everything here runs on the http thread; the LiveView, Store and web root belong to
// it. Only HubMetrics, HttpServerStats, LiveFeed::dropped() and the health probe are shared with
// other threads, and they are safe to read from any.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/clock.h"
#include "hub/http.h"
#include "hub/http_server.h"
#include "hub/ingestor.h"
#include "hub/live_feed.h"
#include "hub/live_view.h"

namespace instrumeter::hub {

// What /healthz checks: the ingest side's view of itself.
struct HealthReport {
  bool broker_connected = false;
  bool ingest_healthy = false;  // false while the last commit attempt failed
  std::string ingest_error;     // why, when not healthy
};
// Any thread; must not block.
using HealthProbe = std::function<HealthReport()>;

// The longest range GET /api/v1/instruments/{id}/timeline answers.
inline constexpr int64_t kMaxTimelineMs = 31 * kDayMs;

class LiveApi {
 public:
  struct Sources {
    LiveView* view;                     // http thread
    Store* store;                       // the http thread's own connection
    const HubMetrics* metrics;          // any thread
    const HttpServerStats* http_stats;  // any thread
    const LiveFeed* feed;               // dropped() only
    HealthProbe health;
    const Clock* clock;
    std::string web_root;  // the dashboard's folder
  };
  // Everything borrowed must outlive the LiveApi and the routes it adds.
  explicit LiveApi(Sources sources) : s_(std::move(sources)) {}

  // Adds every route; the dashboard's files last (they match any single-segment path).
  void AddRoutes(Router* router);

  // One SSE message for a live event ("id: N\nevent: state\ndata: {...}\n\n").
  std::string StreamMessage(const LiveEvent& event, uint64_t id) const;
  // Tells stream clients to reload the list: the hub dropped changes it could not deliver.
  std::string ResyncMessage(uint64_t id) const;

  HttpResponse ListInstruments(const HttpRequest& request);
  HttpResponse GetInstrument(const HttpRequest& request);
  HttpResponse GetTimeline(const HttpRequest& request);
  HttpResponse OpenStream(const HttpRequest& request);
  HttpResponse Metrics(const HttpRequest& request);
  HttpResponse Healthz(const HttpRequest& request);
  HttpResponse WebFile(const HttpRequest& request);

 private:
  // Brings the view up to date with time (a new day, the registry); a 503 response on failure.
  std::optional<HttpResponse> Refresh();
  // The agent health of `view`, read from the store when the view has not seen a heartbeat.
  void LoadHealth(const InstrumentView& view);

  Sources s_;
};

}  // namespace instrumeter::hub

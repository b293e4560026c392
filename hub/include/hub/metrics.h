// The hub's metrics in the Prometheus text exposition format (version 0.0.4), for GET /metrics.
// Names, types and labels are listed in docs/live-api.md; they are a contract with dashboards
// and alerts, so a name once published is not renamed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hub/http_server.h"
#include "hub/ingestor.h"
#include "hub/store.h"

namespace instrumeter::hub {

// Gauges computed from the live view when /metrics is scraped.
struct LiveGauges {
  uint64_t instruments = 0;  // registered, plus devices accepted unregistered
  uint64_t agents_online = 0;
  uint64_t agents_offline = 0;
  // Every state name ("OFF", ..., "NOT_OBSERVED") with its count, zeros included.
  std::vector<std::pair<std::string, uint64_t>> instruments_by_state;
  uint64_t agents_outbox_events = 0;  // sum of the agents' reported outbox depths
  bool ingest_healthy = false;
  std::optional<StoreSpace> store_space;  // none when the files could not be measured
  uint64_t feed_dropped = 0;  // live changes dropped because the http thread fell behind
};

std::string RenderPrometheus(const HubMetrics& metrics, const HttpServerStats& http,
                             const LiveGauges& gauges);

}  // namespace instrumeter::hub

#include "hub/clock_skew.h"

#include <algorithm>

namespace instrumeter::hub {
namespace {

// Observation points carry the meter: StateChange, Heartbeat, AgentStop (see MakeEventRow).
bool IsObservationPoint(const EventRow& row) { return row.powered_ms.has_value(); }

}  // namespace

std::optional<ClockSkewEstimate> EstimateClockSkew(const std::vector<EventRow>& events,
                                                   const ClockSkewOptions& options) {
  std::vector<const EventRow*> points;
  for (const EventRow& row : events)
    if (IsObservationPoint(row)) points.push_back(&row);
  if (points.empty() || options.points == 0) return std::nullopt;
  std::sort(points.begin(), points.end(),
            [](const EventRow* a, const EventRow* b) { return a->seq > b->seq; });
  points.resize(std::min(points.size(), options.points));
  std::vector<int64_t> ahead;
  for (const EventRow* p : points) ahead.push_back(p->wall_unix_ms - p->received_unix_ms);
  std::sort(ahead.begin(), ahead.end());
  ClockSkewEstimate estimate;
  estimate.agent_ahead_ms = ahead[ahead.size() / 2];
  estimate.skewed = estimate.agent_ahead_ms > options.threshold_ms ||
                    estimate.agent_ahead_ms < -options.threshold_ms;
  estimate.through_seq = points.front()->seq;
  estimate.points = points.size();
  return estimate;
}

Result<std::optional<ClockSkewEstimate>> EstimateClockSkew(Store* store,
                                                           const std::string& device_id,
                                                           const ClockSkewOptions& options) {
  Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
  if (!devices.ok()) return devices.status().WithContext("clock skew of '" + device_id + "'");
  for (const LoadedDevice& device : *devices) {
    if (device.record.device_id != device_id) continue;
    const uint64_t last = device.record.contiguous_seq;
    if (last == 0) return std::optional<ClockSkewEstimate>();
    // SessionMarks are not points: read a few more events than points wanted.
    const uint64_t span = 4 * std::max<uint64_t>(options.points, 1);
    const uint64_t first = last > span ? last - span + 1 : 1;
    Result<std::vector<EventRow>> rows = store->ReadEvents(device_id, first, last);
    if (!rows.ok()) return rows.status().WithContext("clock skew of '" + device_id + "'");
    return EstimateClockSkew(*rows, options);
  }
  return Status::NotFound("no telemetry from device '" + device_id + "'");
}

}  // namespace instrumeter::hub

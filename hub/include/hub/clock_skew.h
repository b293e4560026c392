// An agent's wall-clock offset as the hub sees it, and the skew flag (DESIGN rule 4;
// protocol/README.md, "Clocks"). Read-only, from stored events; hours never depend on it (they are
// measured on the agent's monotonic clock), it only says whether the agent's wall times, which
// place intervals, can be trusted.
//
// For an observation point, wall_unix_ms - received_unix_ms = (agent clock - hub clock) - the
// delivery delay. The delay is small for points sent live, so the median over the newest points
// estimates how far the agent's clock is ahead of the hub's (negative: behind), and follows a
// step of the agent's clock once most of those points came after it. Points delivered late from
// a backlog look like a clock behind: right after an agent delivers a long backlog the estimate
// can read behind until `points` live points have arrived.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "hub/store.h"

namespace instrumeter::hub {

struct ClockSkewOptions {
  size_t points = 5;            // the newest observation points considered
  int64_t threshold_ms = 5000;  // |agent_ahead_ms| above this is flagged
};

struct ClockSkewEstimate {
  int64_t agent_ahead_ms = 0;  // agent wall clock minus hub wall clock (negative: behind)
  bool skewed = false;         // |agent_ahead_ms| > threshold_ms
  uint64_t through_seq = 0;    // the newest point used
  size_t points = 0;           // how many points the estimate rests on
};

// From a device's events (any order): nullopt when none is an observation point.
std::optional<ClockSkewEstimate> EstimateClockSkew(const std::vector<EventRow>& events,
                                                   const ClockSkewOptions& options = {});

// Reads the newest events of the device's contiguous prefix from `store` and estimates. NotFound
// for a device the hub never heard from; nullopt while it has no observation point. Reads every
// device's cursor: meant for reports and tests, not for the ingest path.
Result<std::optional<ClockSkewEstimate>> EstimateClockSkew(Store* store,
                                                           const std::string& device_id,
                                                           const ClockSkewOptions& options = {});

}  // namespace instrumeter::hub

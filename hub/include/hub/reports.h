// What the CLI (and later the HTTP API) reports from a Store: machine hours over a time range and
// the current status of every instrument. Read-only; safe while the hub writes the same database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "hub/store.h"

namespace instrumeter::hub {

// Hours of one instrument within [from, to). Intervals are placed by their wall start and
// clipped proportionally to the range. The hub's figures come from interval durations, the
// counter figures from the agent's own meter (counter deltas of the same intervals, gaps
// included, clipped the same way); `counter_mismatch` says some interval in the range disagrees.
struct HoursRow {
  std::string instrument_id;
  std::string name;
  double powered_seconds = 0;
  double in_use_seconds = 0;
  double gap_seconds = 0;
  double counter_powered_seconds = 0;
  double counter_in_use_seconds = 0;
  bool counter_mismatch = false;
};

// One row per registered instrument (or just `instrument_id` when not empty; NotFound if it has
// neither a registration nor telemetry) plus devices that sent telemetry unregistered.
Result<std::vector<HoursRow>> ComputeHours(Store* store, int64_t from_unix_ms, int64_t to_unix_ms,
                                           const std::string& instrument_id);

struct StatusRow {
  std::string instrument_id;
  std::string name;
  std::string city;
  bool registered = true;
  // UNSPECIFIED: no run open, the instrument is not observed now.
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;
  int64_t state_since_wall_ms = 0;  // 0: never
  double powered_seconds = 0;       // all-time totals from intervals
  double in_use_seconds = 0;
  uint64_t events_stored = 0;
  std::optional<bool> online;     // nullopt: no status message yet
  int64_t last_seen_unix_ms = 0;  // 0: never
};

// One row per registered instrument plus devices that sent telemetry unregistered, by id.
Result<std::vector<StatusRow>> ComputeStatus(Store* store);

// "IN_USE", ... or "NOT_OBSERVED" for UNSPECIFIED (no run open).
const char* LiveStateName(v1::InstrumentState state);

}  // namespace instrumeter::hub

// Turns power readings into OFF / IDLE / IN_USE with hysteresis and a minimum dwell.
//
// Thresholds: below off_below_watts is OFF, above in_use_above_watts is IN_USE, in between is
// IDLE. A reading must cross a threshold by hysteresis_watts before the state changes (so a meter
// hovering at a threshold does not flap), and a new state must be indicated continuously for
// min_dwell_ms before it is reported (so a short spike is not a run). The first reading is
// classified without hysteresis. Pure logic, no I/O; time comes from the caller.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "adapters/adapter.h"

namespace instrumeter::adapters::modbus {

struct Thresholds {
  double off_below_watts = 0;
  double in_use_above_watts = 0;
  double hysteresis_watts = 0;
  int64_t min_dwell_ms = 0;
};

class PowerClassifier {
 public:
  explicit PowerClassifier(Thresholds thresholds) : t_(thresholds) {}

  // Feeds one valid reading taken at `now_ms` (monotonic) and returns the state to report.
  SourceState Update(double watts, int64_t now_ms);
  // A reading could not be used: a pending change must start its dwell again.
  void ResetPending() { pending_.reset(); }
  // Why the last Update gave its state, e.g. "812 W > in_use_above_watts 500 (+10)".
  const std::string& why() const { return why_; }

 private:
  // The state `watts` indicates, given the state in force (hysteresis applies around it).
  SourceState Indicated(double watts) const;

  Thresholds t_;
  std::optional<SourceState> current_;
  std::optional<SourceState> pending_;
  int64_t pending_since_ms_ = 0;
  std::string why_;
};

}  // namespace instrumeter::adapters::modbus

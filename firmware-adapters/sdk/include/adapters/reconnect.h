// When an adapter that holds a connection (modbus, scpi) may try its peer again after a failure.
//
// After a failure the next attempt waits a jittered, growing delay (common/backoff.h); until then
// Ready() refuses at once with "retrying in N ms: <last error>", so a Poll never blocks on a peer
// that is known to be down. Time comes from the adapter's Clock (a FakeClock in tests). Used from
// the adapter's poll thread only.
#pragma once

#include <cstdint>
#include <string>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/status.h"

namespace instrumeter::adapters {

class Reconnect {
 public:
  // `clock` must outlive this object.
  Reconnect(const Clock* clock, int64_t min_ms, int64_t max_ms)
      : clock_(clock), backoff_(min_ms, max_ms) {}

  // OK when an attempt may be made now; otherwise Unavailable("retrying in N ms: <last error>").
  Status Ready() const;
  // Records a failed attempt (or a lost connection) and schedules the next one; returns the same
  // Unavailable status Ready() will give until then.
  Status Failed(const std::string& error);
  // After a successful exchange: the next failure starts from the shortest delay again.
  void Succeeded();

 private:
  const Clock* clock_;
  Backoff backoff_;
  bool waiting_ = false;
  int64_t next_attempt_ms_ = 0;  // on clock_'s monotonic time
  std::string last_error_;
};

}  // namespace instrumeter::adapters

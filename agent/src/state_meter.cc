#include "state_meter.h"

namespace instrumeter::agent {

void ToProto(const Instant& instant, v1::Instant* out) {
  out->set_wall_unix_ms(instant.wall_unix_ms);
  out->set_monotonic_ms(instant.monotonic_ms);
  out->set_boot_id(instant.boot_id);
}

Instant FromProto(const v1::Instant& instant) {
  return Instant{instant.monotonic_ms(), instant.wall_unix_ms(), instant.boot_id()};
}

void ToProto(const Counters& counters, v1::Counters* out) {
  out->set_powered_ms(counters.powered_ms);
  out->set_in_use_ms(counters.in_use_ms);
}

Counters FromProto(const v1::Counters& counters) {
  return Counters{counters.powered_ms(), counters.in_use_ms()};
}

void StateMeter::Restore(const Counters& counters, v1::InstrumentState previous_state) {
  counters_ = counters;
  state_ = previous_state;
}

void StateMeter::Advance(const Instant& t, v1::InstrumentState s) {
  // Across a reboot (or a monotonic reading older than H) there is no measurable interval: the
  // horizon moves, the counters do not.
  if (t.SameBoot(horizon_) && t.monotonic_ms >= horizon_.monotonic_ms) {
    const auto delta = static_cast<uint64_t>(t.monotonic_ms - horizon_.monotonic_ms);
    if (protocol::IsPowered(s)) counters_.powered_ms += delta;
    if (protocol::IsInUse(s)) counters_.in_use_ms += delta;
  }
  horizon_ = t;
}

std::optional<StateChangeRecord> StateMeter::Observe(const Instant& t, v1::InstrumentState x) {
  if (!started_) {
    started_ = true;
    StateChangeRecord change{t, x, state_, counters_, /*run_start=*/true};
    state_ = x;
    horizon_ = t;
    since_ = t;
    return change;
  }
  if (x == state_) {
    candidate_.reset();
    Advance(t, state_);
    return std::nullopt;
  }
  const bool same_candidate = candidate_ == x;
  if (debounce_ms_ == 0 ||
      (same_candidate && t.monotonic_ms - candidate_since_.monotonic_ms >= debounce_ms_)) {
    const Instant at = same_candidate ? candidate_since_ : t;
    Advance(at, state_);
    StateChangeRecord change{at, x, state_, counters_, /*run_start=*/false};
    state_ = x;
    since_ = at;
    candidate_.reset();
    Advance(t, x);
    return change;
  }
  if (same_candidate) return std::nullopt;
  if (candidate_) Advance(t, state_);
  candidate_ = x;
  candidate_since_ = t;
  return std::nullopt;
}

}  // namespace instrumeter::agent

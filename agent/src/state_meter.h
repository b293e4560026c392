// The state machine with debounce and the hour meter (DESIGN rules 1, 2, 4). The hub re-derives
// the same numbers from the events to the millisecond (protocol/README.md, "Runs, intervals and
// gaps"), so the rules here are exact and must not be "improved" without changing the hub too:
//
//   S: confirmed state; H: horizon, the instant of the last settled observation; C: counters,
//   cumulative through H; K: an optional candidate state first seen at T_K.
//   Advance(t, s): if t is in H's boot and not before H, C grows by t - H in the ways s counts
//   (powered, in use); then H = t.
//   Observe(x at t):
//     x == S                          -> drop K; Advance(t, S)
//     x != S, debounce met or 0       -> T = (K == x ? T_K : t); Advance(T, S); StateChange at T;
//                                        S = x; drop K; Advance(t, x)
//     x != S, K == x, not yet met     -> nothing (H stays)
//     x != S, no K                    -> K = x, T_K = t (H stays)
//     x != S, K != x                  -> the K flicker is rejected: Advance(t, S); K = x, T_K = t
//   The first observation of a run confirms x at once and is a run_start StateChange.
//
// Time is never read here: every instant comes from the caller, so tests drive it with exact
// numbers. Not thread-safe; owned by the agent's loop.
#pragma once

#include <cstdint>
#include <optional>

#include "common/clock.h"
#include "protocol/codec.h"

namespace instrumeter::agent {

namespace v1 = ::instrumeter::v1;

struct Counters {
  uint64_t powered_ms = 0;
  uint64_t in_use_ms = 0;
  friend bool operator==(const Counters&, const Counters&) = default;
};

// Conversions to and from the wire messages.
void ToProto(const Instant& instant, v1::Instant* out);
Instant FromProto(const v1::Instant& instant);
void ToProto(const Counters& counters, v1::Counters* out);
Counters FromProto(const v1::Counters& counters);

// A confirmed state change, dated at the first observation of the new state.
struct StateChangeRecord {
  Instant at;
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;
  v1::InstrumentState previous_state = v1::INSTRUMENT_STATE_UNSPECIFIED;
  Counters counters;  // at `at`
  bool run_start = false;
};

class StateMeter {
 public:
  explicit StateMeter(int64_t debounce_ms) : debounce_ms_(debounce_ms) {}

  // Before the first Observe: the meter and state the previous run ended with (counters are
  // cumulative across runs, never reset). Without it a run starts from zero and UNSPECIFIED.
  void Restore(const Counters& counters, v1::InstrumentState previous_state);

  // Feeds one verdict; returns the state change it confirms, if any.
  std::optional<StateChangeRecord> Observe(const Instant& t, v1::InstrumentState x);

  bool started() const { return started_; }
  v1::InstrumentState state() const { return state_; }    // S (before start: the restored state)
  const Instant& horizon() const { return horizon_; }     // H
  const Counters& counters() const { return counters_; }  // C, through H
  const Instant& since() const { return since_; }         // when S was entered

 private:
  void Advance(const Instant& t, v1::InstrumentState s);

  int64_t debounce_ms_;
  bool started_ = false;
  v1::InstrumentState state_ = v1::INSTRUMENT_STATE_UNSPECIFIED;
  Instant horizon_;
  Instant since_;
  Counters counters_;
  std::optional<v1::InstrumentState> candidate_;
  Instant candidate_since_;
};

}  // namespace instrumeter::agent

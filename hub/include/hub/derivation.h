// Derivation: how the hub turns a device's events into state intervals and gaps, the hub's own
// measure of machine hours (protocol/README.md, "Runs, intervals and gaps"; DESIGN rules 2 and 4).
//
// Pure logic: no I/O, no clock, no threads. The ingestor applies events of one device in sequence
// order, over its contiguous prefix only, to a copy of that device's DerivationState, writes the
// changed intervals in the same transaction as the events, and adopts the new state only after
// the commit succeeded.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "telemetry.pb.h"

namespace instrumeter::hub {

namespace v1 = ::instrumeter::v1;

// Interval flags: why an interval deserves a second look. On disk they are stored by name
// (FlagsToString), so these bit values are in-memory only and may change.
// The run ended without an AgentStop: closed at its last observation point when the next run
// started.
inline constexpr uint32_t kFlagStoppedWithoutAgentStop = 1u << 0;
// A gap across a reboot, measured by wall clocks because the monotonic clocks differ.
inline constexpr uint32_t kFlagReboot = 1u << 1;
// Opened by a StateChange without run_start (or a Heartbeat) while no run was open.
inline constexpr uint32_t kFlagImplicitRunStart = 1u << 2;
// A Heartbeat or AgentStop reported another state than the one in force.
inline constexpr uint32_t kFlagStateMismatch = 1u << 3;
// The segment before this interval's start (or at its end, for a closing one) was not counted:
// the boot id changed within a run, or the monotonic clock went backwards.
inline constexpr uint32_t kFlagSegmentNotCounted = 1u << 4;
// The agent's counter deltas over the interval differ from what the hub measured.
inline constexpr uint32_t kFlagCounterMismatch = 1u << 5;
// The run's AgentStop was reconstructed after a crash (AgentStop.clean == false).
inline constexpr uint32_t kFlagUncleanStop = 1u << 6;
// A gap came out negative (clock went backwards) and was recorded as 0.
inline constexpr uint32_t kFlagClockBackwards = 1u << 7;

// "reboot,counter_mismatch" (fixed order, comma-separated, empty for none).
std::string FlagsToString(uint32_t flags);
// The inverse; an unknown name is Corruption (the database holds something this hub cannot read).
Result<uint32_t> FlagsFromString(std::string_view text);

enum class IntervalKind { kState, kGap };
// "state" / "gap", as stored.
const char* IntervalKindName(IntervalKind kind);

// A stretch of time of one device: in one state within one run and one boot (kState), or between
// two runs, when nobody observed the instrument (kGap). Identified within its device by
// (kind, start_seq); the open state interval of a run is rewritten as the run goes on.
struct Interval {
  IntervalKind kind = IntervalKind::kState;
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;  // kState only
  std::string boot_id;                                           // the boot of the start point
  int64_t start_wall_unix_ms = 0;  // the start point's wall time: it places, never measures
  int64_t duration_ms = 0;         // measured on the monotonic clock (kGap across boots: wall)
  uint64_t start_seq = 0;
  uint64_t end_seq = 0;
  // The agent's meter at the start and end points.
  uint64_t start_powered_ms = 0;
  uint64_t end_powered_ms = 0;
  uint64_t start_in_use_ms = 0;
  uint64_t end_in_use_ms = 0;
  uint32_t flags = 0;

  int64_t end_wall_unix_ms() const { return start_wall_unix_ms + duration_ms; }
  friend bool operator==(const Interval&, const Interval&) = default;
};

// An observation point (StateChange, Heartbeat, AgentStop): when, and the meter at that time.
struct ObservationPoint {
  uint64_t seq = 0;
  Instant at;
  uint64_t powered_ms = 0;
  uint64_t in_use_ms = 0;
  friend bool operator==(const ObservationPoint&, const ObservationPoint&) = default;
};

// Everything derivation remembers about one device between events. Persisted in the device row,
// in the same transaction as the events it reflects, so a restarted hub continues exactly.
struct DerivationState {
  bool run_open = false;
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;  // in force while run_open
  // The last observation point derived. While no run is open it is where the last run ended:
  // the start of the next gap.
  std::optional<ObservationPoint> last;
  // The state interval the open run is extending (run_open only).
  std::optional<Interval> open_interval;
  friend bool operator==(const DerivationState&, const DerivationState&) = default;
};

// Interval rows to write for one device, one per (kind, start_seq), latest version wins, in the
// order they were first touched. Not thread-safe; one per device per batch.
class IntervalChanges {
 public:
  void Put(const Interval& interval);
  const std::vector<Interval>& rows() const { return rows_; }
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<Interval> rows_;
  std::map<std::pair<IntervalKind, uint64_t>, size_t> index_;
};

// The meter an observation point carries (StateChange, Heartbeat, AgentStop); nullptr for a
// SessionMark.
const v1::Counters* MeterOf(const v1::Event& event);

// Applies the next event of a device (the lowest sequence not yet derived; the caller guarantees
// every lower sequence was applied before) to `state`, and records each interval it opens,
// extends or closes in `changes`. SessionMarks change nothing.
void ApplyEvent(const v1::Event& event, DerivationState* state, IntervalChanges* changes);

}  // namespace instrumeter::hub

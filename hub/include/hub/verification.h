// Verification: what the telemetry says about a booking, and about use outside every booking
// (DESIGN rule 6; docs/billing.md, "Verification"). Pure functions over intervals, bookings and
// rules: no I/O, no clock, no threads. The driver (billing_driver.h) gathers their inputs from the
// Store and appends their results to the ledger.
//
// Time is wall-clock milliseconds (UTC); a span [from, to) is half-open. An interval occupies
// [start_wall_unix_ms, start_wall_unix_ms + duration_ms) (derivation.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hub/billing_records.h"
#include "hub/billing_rules.h"
#include "hub/derivation.h"
#include "hub/store.h"

namespace instrumeter::hub {

struct Span {
  int64_t from_unix_ms = 0;
  int64_t to_unix_ms = 0;  // exclusive
  int64_t length_ms() const { return to_unix_ms > from_unix_ms ? to_unix_ms - from_unix_ms : 0; }
  friend bool operator==(const Span&, const Span&) = default;
};

// --- attribution: which booking owns which time ---

// A booking's window with its grace, for attribution.
struct BookedWindow {
  int64_t start_unix_ms = 0;
  int64_t end_unix_ms = 0;
  int64_t grace_before_ms = 0;
  int64_t grace_after_ms = 0;
};

// The attribution window of each booking of one instrument (given sorted by start, not
// overlapping): [start - grace_before, end + grace_after], except that booked time always belongs
// to its own booking and time claimed by the grace of two neighbours is split at the midpoint of
// the free time between them. So the windows never overlap: no in-use millisecond is counted for
// two bookings. [i] belongs to windows[i].
std::vector<Span> AttributionWindows(const std::vector<BookedWindow>& windows);

// --- sessions ---

// Session statuses, stored in the ledger by name (SessionStatusName): never rename.
enum class SessionStatus { kVerified, kPartial, kNoShow, kDisputed };
const char* SessionStatusName(SessionStatus status);  // "VERIFIED", "PARTIAL", ...

// Session flags (bits in memory; stored by name in a fixed order, SessionFlagNames).
inline constexpr uint32_t kSessionOverrun = 1u << 0;          // in use after the end
inline constexpr uint32_t kSessionUnbookedUse = 1u << 1;      // use ran on outside every booking
inline constexpr uint32_t kSessionGap = 1u << 2;              // part of the booked window uncovered
inline constexpr uint32_t kSessionClockSkew = 1u << 3;        // agent clock offset over the limit
inline constexpr uint32_t kSessionCounterMismatch = 1u << 4;  // agent counters != intervals
inline constexpr uint32_t kSessionAgentStoppedWhilePowered = 1u << 5;
inline constexpr uint32_t kSessionSourcesDisagree = 1u << 6;
inline constexpr uint32_t kSessionMarkOtherOrder = 1u << 7;  // a session mark of another order
// In-use time that no verified signature covers (DESIGN rule 5): measured, never billed.
inline constexpr uint32_t kSessionUnsigned = 1u << 8;
// The flags that need a human: any of them makes the session DISPUTED.
inline constexpr uint32_t kDisputeFlags = kSessionClockSkew | kSessionCounterMismatch |
                                          kSessionAgentStoppedWhilePowered |
                                          kSessionSourcesDisagree | kSessionMarkOtherOrder;
// "overrun", "unbooked_use", "gap", "clock_skew", "counter_mismatch",
// "agent_stopped_while_powered", "sources_disagree", "session_mark_other_order", "unsigned" (in
// this order).
std::vector<std::string> SessionFlagNames(uint32_t flags);

// What of an instrument's telemetry a verified signature covers (DESIGN rule 5). A signed event
// proves the time up to it: an interval is proven whole when its closing event is signed
// (end_seq <= billable_through), up to proven_until_unix_ms when the signature reaches into it
// (start_seq < billable_through < end_seq: a run still open, its last heartbeats not yet signed),
// and not at all when it starts at or after billable_through or touches an unproven stretch.
struct Proof {
  Billability billability;
  // The agent wall time of event billable_through (unused while billable_through is 0).
  int64_t proven_until_unix_ms = 0;
};

// The part of `iv` that `proof` does not cover: empty, a tail, or all of it.
Span UnprovenPart(const Interval& iv, const Proof& proof);

// What the hub knows about one instrument over a stretch of time.
struct Telemetry {
  // Intervals (state and gap) overlapping the stretch, any order.
  std::vector<Interval> intervals;
  // The state in force just before each gap began (the state of the gap's first point), by the
  // gap's start_seq. A gap missing here is treated as preceded by an unpowered state.
  std::map<uint64_t, v1::InstrumentState> state_before_gap;
  std::vector<HourFacts> hours;
  std::vector<MarkRecord> marks;
  // What a verified signature covers: only that in-use time is billed.
  Proof proof;
};

struct VerifyOptions {
  // VERIFIED needs covered_ms / booked_ms >= this, in parts per million.
  int64_t coverage_threshold_ppm = 950'000;
  // |estimated clock offset| above this is clock skew.
  int64_t max_clock_skew_ms = 60'000;
};

// What the telemetry says about one booking.
struct SessionMeasure {
  Span booked;       // [start, end)
  Span attribution;  // see AttributionWindows
  int64_t booked_ms = 0;
  // Booked time covered by state intervals of a known state (OFF, IDLE, IN_USE, FAULT): gaps,
  // UNKNOWN, time not received yet and time past a sequence gap (not derived) are not covered.
  int64_t covered_ms = 0;
  int64_t coverage_ppm = 0;  // covered_ms * 1e6 / booked_ms, rounded down
  int64_t in_use_ms = 0;     // IN_USE inside the attribution window
  // The part of in_use_ms that telemetry.proof does not cover (UnprovenPart).
  int64_t unsigned_in_use_ms = 0;
  int64_t powered_ms = 0;  // IDLE, IN_USE, FAULT inside the attribution window
  int64_t overrun_ms = 0;  // IN_USE inside the attribution window after the end
  // Minimum over fresh heartbeats in the attribution window of hub receive time - agent wall
  // time; nullopt when none was fresh.
  std::optional<int64_t> clock_offset_ms;
  int64_t own_marks = 0;  // session marks of this order inside the booked window
  std::vector<std::string> other_order_marks;  // other orders marked inside it, sorted, unique
  SessionStatus status = SessionStatus::kPartial;
  uint32_t flags = 0;
  // What the charges are computed from.
  int64_t billable_in_use_ms() const { return in_use_ms - unsigned_in_use_ms; }
};

// Measures `booking` against `telemetry`.
//   attribution: the booking's window from AttributionWindows;
//   others: the attribution windows of the instrument's other bookings (any order), to tell
//           whether use that runs past this window is someone else's or unbooked.
// Status: DISPUTED if any dispute flag; else PARTIAL if coverage < threshold; else NO_SHOW if
// nothing was in use; else VERIFIED.
// Flags: overrun if overrun_ms > allowed_overrun_seconds; unbooked_use if an IN_USE interval
// overlapping the window continues into time no booking owns; gap if covered < booked;
// clock_skew; counter_mismatch (an interval in the window flagged so by derivation);
// agent_stopped_while_powered (a gap in the window preceded by a powered state, or an interval in
// the window closed by a crash: stopped_without_agent_stop or unclean_stop); sources_disagree
// (an hour's disagreement inside the window); session_mark_other_order (a mark of another order
// inside the booked window); unsigned (unsigned_in_use_ms > 0).
SessionMeasure MeasureSession(const Booking& booking, const Span& attribution,
                              const std::vector<Span>& others, const Telemetry& telemetry,
                              const VerifyOptions& options);

// --- use outside every booking ---

struct UnbookedMeasure {
  Span day;
  int64_t in_use_ms = 0;        // IN_USE inside `day` and outside every attribution window
  std::vector<Span> stretches;  // where, merged where they touch, in order
};

// Unbooked use of one instrument within `day`; `attributions` are every attribution window that
// may overlap it (any order).
UnbookedMeasure MeasureUnbooked(const Span& day, const std::vector<Span>& attributions,
                                const std::vector<Interval>& intervals);

}  // namespace instrumeter::hub

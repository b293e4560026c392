#include "hub/derivation.h"

#include <array>

#include "protocol/codec.h"

namespace instrumeter::hub {
namespace {

struct FlagName {
  uint32_t flag;
  std::string_view name;
};

// Names are what the database holds: never rename one.
constexpr std::array<FlagName, 8> kFlagNames = {{
    {kFlagStoppedWithoutAgentStop, "stopped_without_agent_stop"},
    {kFlagReboot, "reboot"},
    {kFlagImplicitRunStart, "implicit_run_start"},
    {kFlagStateMismatch, "state_mismatch"},
    {kFlagSegmentNotCounted, "segment_not_counted"},
    {kFlagCounterMismatch, "counter_mismatch"},
    {kFlagUncleanStop, "unclean_stop"},
    {kFlagClockBackwards, "clock_backwards"},
}};

ObservationPoint PointOf(const v1::Event& event, const v1::Counters& counters) {
  ObservationPoint p;
  p.seq = event.sequence();
  p.at.wall_unix_ms = event.at().wall_unix_ms();
  p.at.monotonic_ms = event.at().monotonic_ms();
  p.at.boot_id = event.at().boot_id();
  p.powered_ms = counters.powered_ms();
  p.in_use_ms = counters.in_use_ms();
  return p;
}

// Rule 5: the agent's counter deltas must equal what the hub measured. Re-evaluated on every
// change, so it describes the interval as it stands.
void CheckCounters(Interval* iv) {
  int64_t expect_powered = 0;
  int64_t expect_in_use = 0;
  if (iv->kind == IntervalKind::kState) {
    expect_powered = protocol::IsPowered(iv->state) ? iv->duration_ms : 0;
    expect_in_use = protocol::IsInUse(iv->state) ? iv->duration_ms : 0;
  }
  const int64_t powered = static_cast<int64_t>(iv->end_powered_ms - iv->start_powered_ms);
  const int64_t in_use = static_cast<int64_t>(iv->end_in_use_ms - iv->start_in_use_ms);
  const bool mismatch = iv->end_powered_ms < iv->start_powered_ms ||
                        iv->end_in_use_ms < iv->start_in_use_ms || powered != expect_powered ||
                        in_use != expect_in_use;
  if (mismatch) {
    iv->flags |= kFlagCounterMismatch;
  } else {
    iv->flags &= ~kFlagCounterMismatch;
  }
}

void SetEnd(Interval* iv, const ObservationPoint& p) {
  iv->end_seq = p.seq;
  iv->end_powered_ms = p.powered_ms;
  iv->end_in_use_ms = p.in_use_ms;
  CheckCounters(iv);
}

Interval StartInterval(IntervalKind kind, v1::InstrumentState state, const ObservationPoint& p,
                       uint32_t flags) {
  Interval iv;
  iv.kind = kind;
  iv.state = state;
  iv.boot_id = p.at.boot_id;
  iv.start_wall_unix_ms = p.at.wall_unix_ms;
  iv.start_seq = p.seq;
  iv.start_powered_ms = p.powered_ms;
  iv.start_in_use_ms = p.in_use_ms;
  iv.flags = flags;
  SetEnd(&iv, p);
  return iv;
}

// Rule 2: a segment counts only within one boot and forwards on the monotonic clock.
bool Countable(const ObservationPoint& from, const ObservationPoint& to) {
  return from.at.SameBoot(to.at) && to.at.monotonic_ms >= from.at.monotonic_ms;
}

// The segment [state->last, p] in the state in force. Returns false when it cannot be counted:
// the open interval then still ends at the last point and is marked as such.
bool ExtendOpen(DerivationState* state, const ObservationPoint& p, IntervalChanges* changes) {
  Interval& open = *state->open_interval;
  if (!Countable(*state->last, p)) {
    open.flags |= kFlagSegmentNotCounted;
    changes->Put(open);
    return false;
  }
  open.duration_ms += p.at.monotonic_ms - state->last->at.monotonic_ms;
  SetEnd(&open, p);
  changes->Put(open);
  return true;
}

// Closes the open state interval (already ending at its last point) and the run.
void CloseRun(DerivationState* state, uint32_t flags, IntervalChanges* changes) {
  state->open_interval->flags |= flags;
  changes->Put(*state->open_interval);
  state->open_interval.reset();
  state->run_open = false;
}

// Rule 1 and 4: close a run the agent never closed, report the gap since the last run, and open
// a run in `run_state` at `p`.
void StartRun(DerivationState* state, v1::InstrumentState run_state, const ObservationPoint& p,
              uint32_t flags, IntervalChanges* changes) {
  if (state->run_open) CloseRun(state, kFlagStoppedWithoutAgentStop, changes);
  if (state->last.has_value()) {
    const ObservationPoint& end = *state->last;
    Interval gap = StartInterval(IntervalKind::kGap, v1::INSTRUMENT_STATE_UNSPECIFIED, end, 0);
    int64_t length = 0;
    if (end.at.SameBoot(p.at)) {
      length = p.at.monotonic_ms - end.at.monotonic_ms;
    } else {
      gap.flags |= kFlagReboot;
      length = p.at.wall_unix_ms - end.at.wall_unix_ms;
    }
    if (length < 0) {
      gap.flags |= kFlagClockBackwards;
      length = 0;
    }
    gap.duration_ms = length;
    SetEnd(&gap, p);
    changes->Put(gap);
  }
  state->run_open = true;
  state->state = run_state;
  state->open_interval = StartInterval(IntervalKind::kState, run_state, p, flags);
  state->last = p;
  changes->Put(*state->open_interval);
}

void ApplyStateChange(const v1::Event& event, DerivationState* state, IntervalChanges* changes) {
  const v1::StateChange& change = event.state_change();
  const ObservationPoint p = PointOf(event, change.counters());
  if (change.run_start() || !state->run_open) {
    StartRun(state, change.state(), p, change.run_start() ? 0 : kFlagImplicitRunStart, changes);
    return;
  }
  const bool counted = ExtendOpen(state, p, changes);
  if (!counted || change.state() != state->state) {
    // The previous interval ends at its last counted point; the new one starts here.
    state->open_interval = StartInterval(IntervalKind::kState, change.state(), p,
                                         counted ? 0 : kFlagSegmentNotCounted);
    changes->Put(*state->open_interval);
  }
  state->state = change.state();
  state->last = p;
}

void ApplyHeartbeat(const v1::Event& event, DerivationState* state, IntervalChanges* changes) {
  const v1::Heartbeat& hb = event.heartbeat();
  const ObservationPoint p = PointOf(event, hb.counters());
  if (!state->run_open) {
    StartRun(state, hb.state(), p, kFlagImplicitRunStart, changes);
    return;
  }
  if (!ExtendOpen(state, p, changes)) {
    state->open_interval =
        StartInterval(IntervalKind::kState, state->state, p, kFlagSegmentNotCounted);
  }
  if (hb.state() != state->state) state->open_interval->flags |= kFlagStateMismatch;
  changes->Put(*state->open_interval);
  state->last = p;
}

void ApplyAgentStop(const v1::Event& event, DerivationState* state, IntervalChanges* changes) {
  const v1::AgentStop& stop = event.agent_stop();
  // A stop with no run open closes nothing; the next gap still starts where the last run ended.
  if (!state->run_open) return;
  const ObservationPoint p = PointOf(event, stop.counters());
  // Even when this last segment cannot be counted (ExtendOpen flags it), the run ends here: the
  // gap to the next run starts at the stop.
  ExtendOpen(state, p, changes);
  uint32_t flags = stop.clean() ? 0 : kFlagUncleanStop;
  if (stop.state() != state->state) flags |= kFlagStateMismatch;
  CloseRun(state, flags, changes);
  state->last = p;
}

}  // namespace

std::string FlagsToString(uint32_t flags) {
  std::string out;
  for (const FlagName& f : kFlagNames) {
    if ((flags & f.flag) == 0) continue;
    if (!out.empty()) out += ',';
    out += f.name;
  }
  return out;
}

Result<uint32_t> FlagsFromString(std::string_view text) {
  uint32_t flags = 0;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view name = text.substr(0, comma);
    bool known = false;
    for (const FlagName& f : kFlagNames) {
      if (f.name == name) {
        flags |= f.flag;
        known = true;
      }
    }
    if (!known) return Status::Corruption("unknown interval flag '" + std::string(name) + "'");
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return flags;
}

const char* IntervalKindName(IntervalKind kind) {
  return kind == IntervalKind::kGap ? "gap" : "state";
}

void IntervalChanges::Put(const Interval& interval) {
  const auto key = std::make_pair(interval.kind, interval.start_seq);
  auto [it, inserted] = index_.try_emplace(key, rows_.size());
  if (inserted) {
    rows_.push_back(interval);
  } else {
    rows_[it->second] = interval;
  }
}

const v1::Counters* MeterOf(const v1::Event& event) {
  switch (event.body_case()) {
    case v1::Event::kStateChange:
      return &event.state_change().counters();
    case v1::Event::kHeartbeat:
      return &event.heartbeat().counters();
    case v1::Event::kAgentStop:
      return &event.agent_stop().counters();
    case v1::Event::kSessionMark:
    case v1::Event::BODY_NOT_SET:
      break;
  }
  return nullptr;
}

void ApplyEvent(const v1::Event& event, DerivationState* state, IntervalChanges* changes) {
  switch (event.body_case()) {
    case v1::Event::kStateChange:
      ApplyStateChange(event, state, changes);
      break;
    case v1::Event::kHeartbeat:
      ApplyHeartbeat(event, state, changes);
      break;
    case v1::Event::kAgentStop:
      ApplyAgentStop(event, state, changes);
      break;
    case v1::Event::kSessionMark:
    case v1::Event::BODY_NOT_SET:
      break;
  }
}

}  // namespace instrumeter::hub

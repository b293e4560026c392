#include "hub/verification.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "protocol/codec.h"

namespace instrumeter::hub {
namespace {

constexpr int64_t kMinute = 60'000;
// 2026-01-01T10:00:00Z: times below are minutes from here ("m(-10)" is 09:50).
constexpr int64_t kTen = 1'767'225'600'000 + 10 * 60 * kMinute;
constexpr int64_t m(double minutes) { return kTen + static_cast<int64_t>(minutes * kMinute); }

constexpr auto kOff = v1::INSTRUMENT_STATE_OFF;
constexpr auto kIdle = v1::INSTRUMENT_STATE_IDLE;
constexpr auto kUse = v1::INSTRUMENT_STATE_IN_USE;
constexpr auto kFault = v1::INSTRUMENT_STATE_FAULT;
constexpr auto kUnknown = v1::INSTRUMENT_STATE_UNKNOWN;

// A state interval from `from` to `to` (wall ms). Sequences matter only for gaps.
Interval State(v1::InstrumentState state, int64_t from, int64_t to, uint32_t flags = 0) {
  Interval iv;
  iv.kind = IntervalKind::kState;
  iv.state = state;
  iv.start_wall_unix_ms = from;
  iv.duration_ms = to - from;
  iv.flags = flags;
  return iv;
}

Interval Gap(int64_t from, int64_t to, uint64_t start_seq, uint32_t flags = 0) {
  Interval iv;
  iv.kind = IntervalKind::kGap;
  iv.start_wall_unix_ms = from;
  iv.duration_ms = to - from;
  iv.start_seq = start_seq;
  iv.end_seq = start_seq + 1;
  iv.flags = flags;
  return iv;
}

// Booked 10:00-11:00 with 10 minutes of grace on either side: attribution 09:50-11:10.
Booking TenToEleven() {
  Booking b;
  b.order_id = "ORD-1";
  b.instrument_id = "nmr-1";
  b.start_unix_ms = m(0);
  b.end_unix_ms = m(60);
  b.rules.grace_before_seconds = 600;
  b.rules.grace_after_seconds = 600;
  return b;
}

// An enrolled device whose every event a verified signature covers.
Proof AllSigned() {
  Proof p;
  p.billability.enrolled = true;
  p.billability.signed_through = p.billability.billable_through = UINT64_MAX;
  return p;
}

// Measures `t` as sent by a device that signed everything.
SessionMeasure Measure(Telemetry t, const Booking& b = TenToEleven(),
                       const std::vector<Span>& others = {}) {
  t.proof = AllSigned();
  return MeasureSession(b, {m(-10), m(70)}, others, t, VerifyOptions{});
}

std::vector<std::string> Flags(const SessionMeasure& m) { return SessionFlagNames(m.flags); }

using Names = std::vector<std::string>;

TEST(AttributionWindowsTest, GraceIsSharedAtTheMidpointAndNeverEntersBookedTime) {
  const int64_t g = 10 * kMinute;
  // Alone: the whole grace.
  EXPECT_EQ(AttributionWindows({{m(0), m(60), g, g}}), (std::vector<Span>{{m(-10), m(70)}}));
  // Back to back: the boundary is the shared instant.
  EXPECT_EQ(AttributionWindows({{m(-60), m(0), g, g}, {m(0), m(60), g, g}}),
            (std::vector<Span>{{m(-70), m(0)}, {m(0), m(70)}}));
  // 15 free minutes claimed by both graces: split at 07:30.
  EXPECT_EQ(AttributionWindows({{m(-60), m(0), g, g}, {m(15), m(60), g, g}}),
            (std::vector<Span>{{m(-70), m(7.5)}, {m(7.5), m(70)}}));
  // 30 free minutes: the graces do not meet; 10:10-10:20 belongs to nobody.
  EXPECT_EQ(AttributionWindows({{m(-60), m(0), g, g}, {m(30), m(60), g, g}}),
            (std::vector<Span>{{m(-70), m(10)}, {m(20), m(70)}}));
  // A long grace never reaches into the neighbour's booked time.
  EXPECT_EQ(AttributionWindows({{m(-60), m(0), 0, 0}, {m(15), m(60), 20 * kMinute, 0}}),
            (std::vector<Span>{{m(-60), m(0)}, {m(0), m(60)}}));
  // Three in a row: the middle one is bounded on both sides.
  EXPECT_EQ(AttributionWindows({{m(-60), m(0), g, g}, {m(4), m(6), g, g}, {m(10), m(20), g, g}}),
            (std::vector<Span>{{m(-70), m(2)}, {m(2), m(8)}, {m(8), m(30)}}));
}

// Every status and flag, with expectations worked out by hand from the intervals.
TEST(MeasureSessionTest, VerifiedSession) {
  Telemetry t;
  t.intervals = {State(kIdle, m(-60), m(5)), State(kUse, m(5), m(55)), State(kIdle, m(55), m(120))};
  const SessionMeasure r = Measure(t);
  EXPECT_EQ(r.status, SessionStatus::kVerified);
  EXPECT_EQ(Flags(r), Names{});
  EXPECT_EQ(r.booked_ms, 60 * kMinute);
  EXPECT_EQ(r.covered_ms, 60 * kMinute);
  EXPECT_EQ(r.coverage_ppm, 1'000'000);
  EXPECT_EQ(r.in_use_ms, 50 * kMinute);
  EXPECT_EQ(r.powered_ms, 80 * kMinute);  // the whole attribution window 09:50-11:10
  EXPECT_EQ(r.overrun_ms, 0);
  EXPECT_FALSE(r.clock_offset_ms.has_value());
}

TEST(MeasureSessionTest, NoShowWhenFullyObservedAndNeverInUse) {
  Telemetry idle;
  idle.intervals = {State(kIdle, m(-60), m(120))};
  SessionMeasure r = Measure(idle);
  EXPECT_EQ(r.status, SessionStatus::kNoShow);
  EXPECT_EQ(Flags(r), Names{});
  EXPECT_EQ(r.powered_ms, 80 * kMinute);

  Telemetry off;  // switched off: still a complete record
  off.intervals = {State(kOff, m(-60), m(30)), State(kFault, m(30), m(120))};
  r = Measure(off);
  EXPECT_EQ(r.status, SessionStatus::kNoShow);
  EXPECT_EQ(r.covered_ms, 60 * kMinute);
  EXPECT_EQ(r.powered_ms, 40 * kMinute);  // FAULT 10:30-11:10 is powered
}

// Only time a verified signature covers is billable: a signed event proves the time up to it;
// time after the last signed event, or in an interval that touches an unproven stretch, is
// measured but flagged.
TEST(MeasureSessionTest, InUseTimeNoSignatureCoversIsMeasuredButNotBillable) {
  Interval idle = State(kIdle, m(-60), m(5));
  Interval first = State(kUse, m(5), m(30));
  Interval second = State(kUse, m(30), m(55));
  Interval after = State(kIdle, m(55), m(120));
  idle.start_seq = 1, idle.end_seq = 2;
  first.start_seq = 2, first.end_seq = 5;
  second.start_seq = 5, second.end_seq = 9;
  after.start_seq = 9, after.end_seq = 12;
  Telemetry t;
  t.intervals = {idle, first, second, after};

  t.proof = AllSigned();
  t.proof.billability.billable_through = 5;  // signed up to the 10:30 change
  t.proof.proven_until_unix_ms = m(30);
  SessionMeasure r = MeasureSession(TenToEleven(), {m(-10), m(70)}, {}, t, {});
  EXPECT_EQ(r.status, SessionStatus::kVerified);  // what happened is not in doubt
  EXPECT_EQ(Flags(r), Names{"unsigned"});
  EXPECT_EQ(r.in_use_ms, 50 * kMinute);
  EXPECT_EQ(r.unsigned_in_use_ms, 25 * kMinute);
  EXPECT_EQ(r.billable_in_use_ms(), 25 * kMinute);

  // Signed up to a heartbeat at 10:45 inside the second run: proven up to it.
  t.proof.billability.billable_through = 7;
  t.proof.proven_until_unix_ms = m(45);
  r = MeasureSession(TenToEleven(), {m(-10), m(70)}, {}, t, {});
  EXPECT_EQ(r.unsigned_in_use_ms, 10 * kMinute);

  // A chain break resolved by a reset left sequences 6-7 unproven: the interval across it is
  // never billable, whatever was signed later.
  t.proof = AllSigned();
  t.proof.billability.unproven = {{6, 7}};
  r = MeasureSession(TenToEleven(), {m(-10), m(70)}, {}, t, {});
  EXPECT_EQ(r.unsigned_in_use_ms, 25 * kMinute);

  // Development mode: a device without a key signs nothing, so nothing is billable.
  t.proof = Proof{};
  r = MeasureSession(TenToEleven(), {m(-10), m(70)}, {}, t, {});
  EXPECT_EQ(Flags(r), Names{"unsigned"});
  EXPECT_EQ(r.billable_in_use_ms(), 0);
}

TEST(MeasureSessionTest, PartialWhenTelemetryIsMissing) {
  // In use from 10:00, nothing received after 10:30 (the agent is offline, its backlog not in).
  Telemetry t;
  t.intervals = {State(kUse, m(0), m(30))};
  const SessionMeasure r = Measure(t);
  EXPECT_EQ(r.status, SessionStatus::kPartial);
  EXPECT_EQ(Flags(r), Names{"gap"});
  EXPECT_EQ(r.covered_ms, 30 * kMinute);
  EXPECT_EQ(r.coverage_ppm, 500'000);
  EXPECT_EQ(r.in_use_ms, 30 * kMinute);
}

TEST(MeasureSessionTest, GapsAndUnknownAreNotCovered) {
  Telemetry t;
  // Off until 10:20, the agent away 10:20-10:30 (it stopped while the instrument was off),
  // in use 10:30-11:00, then UNKNOWN: the adapters could not tell.
  t.intervals = {State(kOff, m(-60), m(20)), Gap(m(20), m(30), 7), State(kUse, m(30), m(50)),
                 State(kUnknown, m(50), m(60)), State(kIdle, m(60), m(120))};
  t.state_before_gap[7] = kOff;
  const SessionMeasure r = Measure(t);
  EXPECT_EQ(r.status, SessionStatus::kPartial);
  EXPECT_EQ(Flags(r), Names{"gap"});
  EXPECT_EQ(r.covered_ms, 40 * kMinute);  // 60 - 10 (gap) - 10 (unknown)
  EXPECT_EQ(r.coverage_ppm, 666'666);
  EXPECT_EQ(r.in_use_ms, 20 * kMinute);
}

TEST(MeasureSessionTest, CoverageThresholdIsInclusive) {
  Telemetry t;
  t.intervals = {State(kIdle, m(-60), m(30)), Gap(m(30), m(33), 7), State(kUse, m(33), m(120))};
  t.state_before_gap[7] = kOff;
  SessionMeasure r = Measure(t);  // 57 of 60 minutes: exactly 95 %
  EXPECT_EQ(r.coverage_ppm, 950'000);
  EXPECT_EQ(r.status, SessionStatus::kVerified);
  EXPECT_EQ(Flags(r), (Names{"overrun", "unbooked_use", "gap"}));  // in use on past 11:00

  t.intervals = {State(kIdle, m(-60), m(30)), Gap(m(30), m(33) + 1, 7),
                 State(kUse, m(33) + 1, m(120))};
  r = Measure(t);  // one millisecond less
  EXPECT_EQ(r.status, SessionStatus::kPartial);
}

TEST(MeasureSessionTest, CounterMismatchIsDisputed) {
  Telemetry t;
  t.intervals = {State(kIdle, m(-60), m(5)), State(kUse, m(5), m(55), kFlagCounterMismatch),
                 State(kIdle, m(55), m(120))};
  const SessionMeasure r = Measure(t);
  EXPECT_EQ(r.status, SessionStatus::kDisputed);
  EXPECT_EQ(Flags(r), Names{"counter_mismatch"});
  EXPECT_EQ(r.in_use_ms, 50 * kMinute);  // still measured: a human decides
}

TEST(MeasureSessionTest, AgentStoppedWhileThePowerWasOn) {
  Telemetry t;
  // Stopped (cleanly) while IDLE at 10:10, back at 10:12.
  t.intervals = {State(kIdle, m(-60), m(10)), Gap(m(10), m(12), 7), State(kUse, m(12), m(120))};
  t.state_before_gap[7] = kIdle;
  SessionMeasure r = Measure(t);
  EXPECT_EQ(r.coverage_ppm, 966'666);  // 58 of 60 minutes: enough, but not trusted
  EXPECT_EQ(r.status, SessionStatus::kDisputed);
  EXPECT_EQ(Flags(r), (Names{"overrun", "unbooked_use", "gap", "agent_stopped_while_powered"}));

  // The same gap after the instrument was switched off is no dispute.
  t.state_before_gap[7] = kOff;
  r = Measure(t);
  EXPECT_EQ(Flags(r), (Names{"overrun", "unbooked_use", "gap"}));
  EXPECT_EQ(r.status, SessionStatus::kVerified);
}

TEST(MeasureSessionTest, CrashedRunInTheWindowIsDisputed) {
  Telemetry t;
  // In use from 09:00; the run crashed (closed at its last point, 10:30, when the next started);
  // back at 10:31 and in use until 11:30.
  t.intervals = {State(kUse, m(-60), m(30), kFlagStoppedWithoutAgentStop), Gap(m(30), m(31), 7),
                 State(kUse, m(31), m(90))};
  const SessionMeasure r = Measure(t);  // no state recorded before the gap: the flag decides
  EXPECT_EQ(r.status, SessionStatus::kDisputed);
  EXPECT_EQ(Flags(r), (Names{"overrun", "unbooked_use", "gap", "agent_stopped_while_powered"}));
  EXPECT_EQ(r.in_use_ms, 79 * kMinute);   // 09:50-10:30 and 10:31-11:10
  EXPECT_EQ(r.overrun_ms, 10 * kMinute);  // 11:00-11:10; after 11:10 it is unbooked use
  EXPECT_EQ(r.covered_ms, 59 * kMinute);
}

TEST(MeasureSessionTest, ClockSkewFromFreshHeartbeats) {
  Telemetry t;
  t.intervals = {State(kIdle, m(-60), m(0)), State(kUse, m(0), m(60)), State(kIdle, m(60), m(120))};
  const auto hour = [](int64_t start, int64_t offset_ms) {
    return HourFacts{
        .hour_start_unix_ms = start, .fresh_samples = 10, .fresh_offset_min_ms = offset_ms};
  };
  // The least offset in the window counts: network delay only ever adds.
  t.hours = {hour(m(-60), 30'000), hour(m(0), 45'000)};
  SessionMeasure r = Measure(t);
  EXPECT_EQ(r.clock_offset_ms, 30'000);
  EXPECT_EQ(r.status, SessionStatus::kVerified);

  t.hours = {hour(m(-60), 95'000), hour(m(0), 90'000)};  // the agent's clock is 90 s behind
  r = Measure(t);
  EXPECT_EQ(r.clock_offset_ms, 90'000);
  EXPECT_EQ(r.status, SessionStatus::kDisputed);
  EXPECT_EQ(Flags(r), Names{"clock_skew"});

  t.hours = {hour(m(0), -120'000)};  // two minutes ahead
  EXPECT_EQ(Flags(Measure(t)), Names{"clock_skew"});

  t.hours = {hour(m(120), -120'000)};  // outside the window: no estimate
  r = Measure(t);
  EXPECT_FALSE(r.clock_offset_ms.has_value());
  EXPECT_EQ(r.status, SessionStatus::kVerified);
}

TEST(MeasureSessionTest, SourcesDisagreeInsideTheWindow) {
  Telemetry t;
  t.intervals = {State(kIdle, m(-60), m(0)), State(kUse, m(0), m(60)), State(kIdle, m(60), m(120))};
  t.hours = {{.hour_start_unix_ms = m(-60),
              .disagreement_first_wall_ms = m(-55),
              .disagreement_last_wall_ms = m(-11)}};
  EXPECT_EQ(Measure(t).status, SessionStatus::kVerified);  // before 09:50
  t.hours[0].disagreement_last_wall_ms = m(-10);
  const SessionMeasure r = Measure(t);
  EXPECT_EQ(r.status, SessionStatus::kDisputed);
  EXPECT_EQ(Flags(r), Names{"sources_disagree"});
}

TEST(MeasureSessionTest, SessionMarks) {
  Telemetry t;
  t.intervals = {State(kIdle, m(-60), m(1)), State(kUse, m(1), m(59)), State(kIdle, m(59), m(120))};
  const auto mark = [](int64_t at, const char* order, v1::SessionMark::Kind kind) {
    return MarkRecord{1, at, kind, order, "Li Wei"};
  };
  // The previous order stopping in the grace before the start is normal; this order's marks
  // are evidence.
  t.marks = {mark(m(-2), "ORD-0", v1::SessionMark::KIND_STOP),
             mark(m(0.5), "ORD-1", v1::SessionMark::KIND_START),
             mark(m(59.5), "ORD-1", v1::SessionMark::KIND_STOP)};
  SessionMeasure r = Measure(t);
  EXPECT_EQ(r.status, SessionStatus::kVerified);
  EXPECT_EQ(r.own_marks, 2);
  EXPECT_TRUE(r.other_order_marks.empty());

  t.marks.push_back(mark(m(30), "ORD-9", v1::SessionMark::KIND_START));
  t.marks.push_back(mark(m(31), "ORD-9", v1::SessionMark::KIND_STOP));
  r = Measure(t);
  EXPECT_EQ(r.status, SessionStatus::kDisputed);
  EXPECT_EQ(Flags(r), Names{"session_mark_other_order"});
  EXPECT_EQ(r.other_order_marks, Names{"ORD-9"});
}

TEST(MeasureSessionTest, OverrunBeyondWhatIsAllowed) {
  Telemetry t;
  t.intervals = {State(kIdle, m(-60), m(0)), State(kUse, m(0), m(68)), State(kIdle, m(68), m(120))};
  Booking b = TenToEleven();
  SessionMeasure r = Measure(t, b);
  EXPECT_EQ(r.overrun_ms, 8 * kMinute);
  EXPECT_EQ(r.in_use_ms, 68 * kMinute);
  EXPECT_EQ(Flags(r), Names{"overrun"});
  EXPECT_EQ(r.status, SessionStatus::kVerified);  // informative, not a dispute
  b.rules.allowed_overrun_seconds = 600;
  EXPECT_EQ(Flags(Measure(t, b)), Names{});
}

TEST(MeasureSessionTest, UseRunningIntoTheNextBookingIsNotUnbooked) {
  Telemetry t;
  t.intervals = {State(kIdle, m(-60), m(0)), State(kUse, m(0), m(90)), State(kIdle, m(90), m(240))};
  // Alone, use 11:10-11:30 belongs to nobody.
  EXPECT_EQ(Flags(Measure(t)), (Names{"overrun", "unbooked_use"}));
  // With the next booking at 11:15 (10 minutes grace), the windows meet at 11:07:30.
  const std::vector<Span> windows = AttributionWindows(
      {{m(0), m(60), 10 * kMinute, 10 * kMinute}, {m(75), m(120), 10 * kMinute, 10 * kMinute}});
  const SessionMeasure r = MeasureSession(TenToEleven(), windows[0], {windows[1]}, t, {});
  EXPECT_EQ(r.attribution, (Span{m(-10), m(67.5)}));
  EXPECT_EQ(Flags(r), Names{"overrun"});
  EXPECT_EQ(r.in_use_ms, 4'050'000);  // 67.5 minutes
}

TEST(MeasureUnbookedTest, UseOutsideEveryWindow) {
  const Span day = {m(-600), m(840)};  // 00:00-24:00
  const std::vector<Span> windows = {{m(-10), m(70)}, {m(200), m(260)}};
  const std::vector<Interval> intervals = {
      State(kUse, m(-700), m(-590)),  // crosses midnight: 00:00-00:10 is this day's
      State(kIdle, m(-590), m(-30)), State(kUse, m(-30), m(100)),  // 09:30-09:50, 11:10-11:40
      State(kUse, m(100), m(110)),    // touches the stretch before: merged
      State(kUse, m(250), m(270)),    // 14:20-14:30 outside the second window
      State(kFault, m(300), m(400)),  // powered, not in use
  };
  const UnbookedMeasure u = MeasureUnbooked(day, windows, intervals);
  EXPECT_EQ(u.in_use_ms, (10 + 20 + 30 + 10 + 10) * kMinute);
  EXPECT_EQ(
      u.stretches,
      (std::vector<Span>{{m(-600), m(-590)}, {m(-30), m(-10)}, {m(70), m(110)}, {m(260), m(270)}}));
}

// ---------------------------------------------------------------------------------------------
// Property: random schedules with agent downtime, crashes and reboots go through the real
// derivation; every booking's measured seconds equal a plain count over the ground truth.

constexpr int64_t kHorizonS = 2 * 86'400;

struct Scenario {
  std::vector<v1::InstrumentState> truth;  // per second
  std::vector<bool> observed;              // per second: inside an observed run
  std::vector<v1::Event> events;
};

// An agent metering `truth`: runs with heartbeats every 10 minutes, state changes, clean stops or
// crashes, downtime and reboots. The meter is kept honestly, so no counter mismatch arises.
Scenario Generate(std::mt19937_64& rng) {
  Scenario s;
  const auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const v1::InstrumentState states[] = {kOff, kIdle, kUse, kUse, kUse, kFault, kUnknown};
  while (static_cast<int64_t>(s.truth.size()) < kHorizonS) {
    const v1::InstrumentState st = states[uniform(0, 6)];
    const int64_t len = uniform(0, 3) == 0 ? uniform(1, 120) : uniform(60, 5400);
    s.truth.insert(s.truth.end(), static_cast<size_t>(len), st);
  }
  s.truth.resize(kHorizonS);
  s.observed.assign(kHorizonS, false);

  uint64_t seq = 0;
  int boot = 1;
  int64_t boot_wall_s = -3600;  // the monotonic clock's zero, in seconds of the horizon
  uint64_t powered_ms = 0;
  uint64_t in_use_ms = 0;
  const auto at = [&](v1::Event* e, int64_t t) {
    e->set_sequence(++seq);
    e->mutable_at()->set_wall_unix_ms(kTen + t * 1000);
    e->mutable_at()->set_monotonic_ms((t - boot_wall_s) * 1000);
    e->mutable_at()->set_boot_id("boot-" + std::to_string(boot));
  };
  const auto meter = [&](v1::Counters* c) {
    c->set_powered_ms(powered_ms);
    c->set_in_use_ms(in_use_ms);
  };
  int64_t t = uniform(0, 1) == 0 ? 0 : uniform(1, 7200);
  while (t < kHorizonS - 1) {
    const int64_t end = std::min(kHorizonS, t + uniform(1800, 43'200));
    v1::Event start;
    at(&start, t);
    start.mutable_state_change()->set_state(s.truth[t]);
    start.mutable_state_change()->set_run_start(true);
    meter(start.mutable_state_change()->mutable_counters());
    s.events.push_back(start);
    int64_t last_point = t;
    for (int64_t u = t + 1; u < end; ++u) {
      // Second u-1 was observed in truth[u-1].
      if (protocol::IsPowered(s.truth[u - 1])) powered_ms += 1000;
      if (protocol::IsInUse(s.truth[u - 1])) in_use_ms += 1000;
      if (s.truth[u] != s.truth[u - 1]) {
        v1::Event e;
        at(&e, u);
        e.mutable_state_change()->set_state(s.truth[u]);
        e.mutable_state_change()->set_previous_state(s.truth[u - 1]);
        meter(e.mutable_state_change()->mutable_counters());
        s.events.push_back(e);
        last_point = u;
      }
      if ((u - t) % 600 == 0) {
        v1::Event e;
        at(&e, u);
        e.mutable_heartbeat()->set_state(s.truth[u]);
        e.mutable_heartbeat()->set_outbox_depth(1);
        meter(e.mutable_heartbeat()->mutable_counters());
        s.events.push_back(e);
        last_point = u;
      }
    }
    if (uniform(0, 9) < 6 || end == kHorizonS) {  // a clean stop at `end`
      if (protocol::IsPowered(s.truth[end - 1])) powered_ms += 1000;
      if (protocol::IsInUse(s.truth[end - 1])) in_use_ms += 1000;
      v1::Event e;
      at(&e, end);
      e.mutable_agent_stop()->set_state(s.truth[end - 1]);
      e.mutable_agent_stop()->set_clean(true);
      meter(e.mutable_agent_stop()->mutable_counters());
      s.events.push_back(e);
      last_point = end;
    } else {
      // A crash: what happened after the last point was never reported, and the restored meter
      // is the one of that point.
      powered_ms = s.events.back().has_heartbeat()
                       ? s.events.back().heartbeat().counters().powered_ms()
                       : s.events.back().state_change().counters().powered_ms();
      in_use_ms = s.events.back().has_heartbeat()
                      ? s.events.back().heartbeat().counters().in_use_ms()
                      : s.events.back().state_change().counters().in_use_ms();
    }
    for (int64_t u = t; u < last_point; ++u) s.observed[static_cast<size_t>(u)] = true;
    t = end + uniform(60, 10'800);
    if (uniform(0, 2) == 0) {  // a reboot: a new boot id and a monotonic clock from ~0
      ++boot;
      boot_wall_s = t - uniform(20, 120);
    }
  }
  return s;
}

std::vector<Interval> Derive(const std::vector<v1::Event>& events) {
  DerivationState state;
  IntervalChanges changes;
  for (const v1::Event& e : events) ApplyEvent(e, &state, &changes);
  std::vector<Interval> out;
  for (const Interval& iv : changes.rows())
    if (iv.duration_ms > 0) out.push_back(iv);
  return out;
}

// Independently: billable seconds by counting units one at a time.
int64_t NaiveBillable(const BillingRules& r, int64_t booked_ms, int64_t used_ms) {
  if (used_ms == 0) return 0;
  const int64_t cap_s = booked_ms / 1000 + r.allowed_overrun_seconds;
  const int64_t capped_ms = std::min(used_ms, cap_s * 1000);
  const int64_t unit_ms = r.billing_unit_seconds * 1000;
  int64_t units = 0;
  while ((units + 1) * unit_ms <= capped_ms) ++units;
  const int64_t rest_ms = capped_ms - units * unit_ms;
  if (r.rounding == Rounding::kUp && rest_ms > 0) ++units;
  if (r.rounding == Rounding::kNearest && 2 * rest_ms >= unit_ms) ++units;
  return std::max(std::min(units * r.billing_unit_seconds, cap_s), r.minimum_charge_seconds);
}

TEST(VerificationPropertyTest, MeasuredSecondsEqualTheGroundTruth) {
  int64_t sessions = 0;
  int64_t in_use_seen_ms = 0;
  for (uint64_t seed = 1; seed <= 120; ++seed) {
    std::mt19937_64 rng(seed);
    const Scenario s = Generate(rng);
    const std::vector<Interval> intervals = Derive(s.events);
    const auto uniform = [&](int64_t lo, int64_t hi) {
      return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };
    // Random bookings, never overlapping; every time a multiple of 2 s, so that the midpoint
    // split falls on a whole second and the truth can be counted per second.
    std::vector<Booking> bookings;
    std::vector<BookedWindow> windows;
    for (int64_t t = uniform(0, 3600) * 2; t < kHorizonS - 8 * 3600;) {
      Booking b;
      b.order_id = "ORD-" + std::to_string(bookings.size());
      b.start_unix_ms = kTen + t * 1000;
      b.end_unix_ms = b.start_unix_ms + uniform(450, 7200) * 2000;
      b.rules.grace_before_seconds = uniform(0, 900) * 2;
      b.rules.grace_after_seconds = uniform(0, 900) * 2;
      b.rules.billing_unit_seconds = uniform(1, 1800);
      b.rules.rounding = static_cast<Rounding>(uniform(0, 2));
      b.rules.minimum_charge_seconds = uniform(0, 3) == 0 ? uniform(0, 3600) : 0;
      b.rules.allowed_overrun_seconds = uniform(0, 1800);
      b.rules.rate_fen_per_hour = uniform(0, 100'000);
      windows.push_back({b.start_unix_ms, b.end_unix_ms, b.rules.grace_before_seconds * 1000,
                         b.rules.grace_after_seconds * 1000});
      t = (b.end_unix_ms - kTen) / 1000 + uniform(0, 1800) * 2;
      bookings.push_back(std::move(b));
    }
    const std::vector<Span> attribution = AttributionWindows(windows);
    Telemetry telemetry;
    telemetry.intervals = intervals;
    telemetry.proof = AllSigned();
    for (const Interval& iv : intervals)
      if (iv.kind == IntervalKind::kState)
        for (const Interval& gap : intervals)
          if (gap.kind == IntervalKind::kGap && gap.start_seq == iv.end_seq)
            telemetry.state_before_gap[gap.start_seq] = iv.state;

    int64_t attributed_ms = 0;
    for (size_t i = 0; i < bookings.size(); ++i) {
      const Booking& b = bookings[i];
      std::vector<Span> others = attribution;
      others.erase(others.begin() + static_cast<long>(i));
      const SessionMeasure r = MeasureSession(b, attribution[i], others, telemetry, {});
      // The plain count: seconds of the window that were observed, and in use / known.
      int64_t in_use_s = 0, powered_s = 0, covered_s = 0;
      for (int64_t u = (attribution[i].from_unix_ms - kTen) / 1000;
           u < (attribution[i].to_unix_ms - kTen) / 1000; ++u) {
        if (u < 0 || u >= kHorizonS || !s.observed[static_cast<size_t>(u)]) continue;
        in_use_s += protocol::IsInUse(s.truth[static_cast<size_t>(u)]);
        powered_s += protocol::IsPowered(s.truth[static_cast<size_t>(u)]);
      }
      for (int64_t u = (b.start_unix_ms - kTen) / 1000; u < (b.end_unix_ms - kTen) / 1000; ++u)
        covered_s +=
            s.observed[static_cast<size_t>(u)] && s.truth[static_cast<size_t>(u)] != kUnknown;
      ASSERT_EQ(r.in_use_ms, in_use_s * 1000) << "seed " << seed << " " << b.order_id;
      ASSERT_EQ(r.powered_ms, powered_s * 1000) << "seed " << seed << " " << b.order_id;
      ASSERT_EQ(r.covered_ms, covered_s * 1000) << "seed " << seed << " " << b.order_id;
      ASSERT_EQ(BillableSeconds(b.rules, r.booked_ms, r.in_use_ms),
                NaiveBillable(b.rules, r.booked_ms, r.in_use_ms))
          << "seed " << seed << " " << b.order_id;
      attributed_ms += r.in_use_ms;
      ++sessions;
    }
    // Nothing counted twice, nothing lost: sessions plus unbooked use is all observed use.
    int64_t unbooked_ms = 0;
    for (int64_t day = 0; day < kHorizonS; day += 86'400)
      unbooked_ms +=
          MeasureUnbooked({kTen + day * 1000, kTen + (day + 86'400) * 1000}, attribution, intervals)
              .in_use_ms;
    int64_t total_s = 0;
    for (int64_t u = 0; u < kHorizonS; ++u)
      total_s +=
          s.observed[static_cast<size_t>(u)] && protocol::IsInUse(s.truth[static_cast<size_t>(u)]);
    ASSERT_EQ(attributed_ms + unbooked_ms, total_s * 1000) << "seed " << seed;
    in_use_seen_ms += total_s * 1000;
  }
  EXPECT_GT(sessions, 1000);            // the property was exercised
  EXPECT_GT(in_use_seen_ms, 3600'000);  // ... on real use
}

}  // namespace
}  // namespace instrumeter::hub

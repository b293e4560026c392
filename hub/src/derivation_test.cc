#include "hub/derivation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "hub_testing/events.h"
#include "protocol/codec.h"

namespace instrumeter::hub {
namespace {

using testing::At;
using testing::Beat;
using testing::Change;
using testing::kBoot1;
using testing::kBoot2;
using testing::kMono;
using testing::kWall;
using testing::Mark;
using testing::Start;
using testing::Stop;

constexpr int64_t kWall2038 = 2'147'483'648'000;  // 2038-01-19T03:14:08Z, past int32 seconds

constexpr v1::InstrumentState kOff = v1::INSTRUMENT_STATE_OFF;
constexpr v1::InstrumentState kIdle = v1::INSTRUMENT_STATE_IDLE;
constexpr v1::InstrumentState kInUse = v1::INSTRUMENT_STATE_IN_USE;
constexpr v1::InstrumentState kUnknown = v1::INSTRUMENT_STATE_UNKNOWN;
constexpr v1::InstrumentState kNone = v1::INSTRUMENT_STATE_UNSPECIFIED;

// The expected row of an interval, written out by hand.
struct Row {
  IntervalKind kind;
  v1::InstrumentState state;
  const char* boot;
  int64_t start_wall;
  int64_t duration;
  uint64_t start_seq;
  uint64_t end_seq;
  uint64_t start_powered;
  uint64_t end_powered;
  uint64_t start_in_use;
  uint64_t end_in_use;
  const char* flags;
};

Interval ToInterval(const Row& r) {
  Interval iv;
  iv.kind = r.kind;
  iv.state = r.state;
  iv.boot_id = r.boot;
  iv.start_wall_unix_ms = r.start_wall;
  iv.duration_ms = r.duration;
  iv.start_seq = r.start_seq;
  iv.end_seq = r.end_seq;
  iv.start_powered_ms = r.start_powered;
  iv.end_powered_ms = r.end_powered;
  iv.start_in_use_ms = r.start_in_use;
  iv.end_in_use_ms = r.end_in_use;
  iv.flags = *FlagsFromString(r.flags);
  return iv;
}

std::string Describe(const Interval& iv) {
  return std::string(IntervalKindName(iv.kind)) + " " + protocol::StateName(iv.state) + " " +
         iv.boot_id + " wall=" + std::to_string(iv.start_wall_unix_ms - kWall) +
         " dur=" + std::to_string(iv.duration_ms) + " seq=" + std::to_string(iv.start_seq) + ".." +
         std::to_string(iv.end_seq) + " powered=" + std::to_string(iv.start_powered_ms) + ".." +
         std::to_string(iv.end_powered_ms) + " in_use=" + std::to_string(iv.start_in_use_ms) +
         ".." + std::to_string(iv.end_in_use_ms) + " flags=" + FlagsToString(iv.flags);
}

struct Case {
  std::string name;
  std::vector<v1::Event> events;
  std::vector<Row> expected;  // every interval, in the order first touched
  bool run_open_after;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> Cases() {
  const int64_t m = kMono;
  const int64_t w = kWall;
  const auto S = IntervalKind::kState;
  const auto G = IntervalKind::kGap;
  return {
      {"RunWithHeartbeatsAndStateChanges",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}),
        Beat(2, kIdle, {kBoot1, m + 60'000, w + 60'000, 60'000, 0}),
        Change(3, kInUse, {kBoot1, m + 90'000, w + 90'000, 90'000, 0}),
        Beat(4, kInUse, {kBoot1, m + 150'000, w + 150'000, 150'000, 60'000}),
        Change(5, kOff, {kBoot1, m + 200'000, w + 200'000, 200'000, 110'000}),
        Beat(6, kOff, {kBoot1, m + 260'000, w + 260'000, 200'000, 110'000}),
        Stop(7, kOff, {kBoot1, m + 300'000, w + 300'000, 200'000, 110'000})},
       {{S, kIdle, kBoot1, w, 90'000, 1, 3, 0, 90'000, 0, 0, ""},
        {S, kInUse, kBoot1, w + 90'000, 110'000, 3, 5, 90'000, 200'000, 0, 110'000, ""},
        {S, kOff, kBoot1, w + 200'000, 100'000, 5, 7, 200'000, 200'000, 110'000, 110'000, ""}},
       false},
      {"SameStateChangeExtendsWithoutSplitting",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}), Change(2, kIdle, {kBoot1, m + 500, w + 500, 500, 0}),
        Beat(3, kIdle, {kBoot1, m + 1'500, w + 1'500, 1'500, 0})},
       {{S, kIdle, kBoot1, w, 1'500, 1, 3, 0, 1'500, 0, 0, ""}},
       true},
      {"CrashRunStartWithoutAgentStop",
       {Start(1, kInUse, {kBoot1, m, w, 0, 0}),
        Beat(2, kInUse, {kBoot1, m + 60'000, w + 60'000, 60'000, 60'000}),
        // The agent died after seq 2 and came back 40 s later in the same boot.
        Start(3, kIdle, {kBoot1, m + 100'000, w + 100'000, 60'000, 60'000}),
        Beat(4, kIdle, {kBoot1, m + 130'000, w + 130'000, 90'000, 60'000})},
       {{S, kInUse, kBoot1, w, 60'000, 1, 2, 0, 60'000, 0, 60'000, "stopped_without_agent_stop"},
        {G, kNone, kBoot1, w + 60'000, 40'000, 2, 3, 60'000, 60'000, 60'000, 60'000, ""},
        {S, kIdle, kBoot1, w + 100'000, 30'000, 3, 4, 60'000, 90'000, 60'000, 60'000, ""}},
       true},
      {"CrashReconstructedStopIsFlaggedUnclean",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}),
        Stop(2, kIdle, {kBoot1, m + 7'000, w + 7'000, 7'000, 0}, /*clean=*/false),
        Start(3, kIdle, {kBoot1, m + 9'000, w + 9'000, 7'000, 0})},
       {{S, kIdle, kBoot1, w, 7'000, 1, 2, 0, 7'000, 0, 0, "unclean_stop"},
        {G, kNone, kBoot1, w + 7'000, 2'000, 2, 3, 7'000, 7'000, 0, 0, ""},
        {S, kIdle, kBoot1, w + 9'000, 0, 3, 3, 7'000, 7'000, 0, 0, ""}},
       true},
      {"CleanStopAndRestartGapIsTheExactMonotonicDifference",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}),
        Stop(2, kIdle, {kBoot1, m + 5'000, w + 5'000, 5'000, 0}),
        // NTP stepped the wall clock 777 ms while the agent was down: the gap ignores it.
        Start(3, kIdle, {kBoot1, m + 65'432, w + 65'432 + 777, 5'000, 0})},
       {{S, kIdle, kBoot1, w, 5'000, 1, 2, 0, 5'000, 0, 0, ""},
        {G, kNone, kBoot1, w + 5'000, 60'432, 2, 3, 5'000, 5'000, 0, 0, ""},
        {S, kIdle, kBoot1, w + 66'209, 0, 3, 3, 5'000, 5'000, 0, 0, ""}},
       true},
      {"RebootGapIsMeasuredByWallClocks",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}),
        Stop(2, kIdle, {kBoot1, m + 10'000, w + 10'000, 10'000, 0}),
        Start(3, kIdle, {kBoot2, 5'000, w + 130'000, 10'000, 0}),
        Beat(4, kIdle, {kBoot2, 8'000, w + 133'000, 13'000, 0})},
       {{S, kIdle, kBoot1, w, 10'000, 1, 2, 0, 10'000, 0, 0, ""},
        {G, kNone, kBoot1, w + 10'000, 120'000, 2, 3, 10'000, 10'000, 0, 0, "reboot"},
        {S, kIdle, kBoot2, w + 130'000, 3'000, 3, 4, 10'000, 13'000, 0, 0, ""}},
       true},
      {"RebootWithWallClockBehindRecordsAZeroGap",
       {Start(1, kOff, {kBoot1, m, w, 0, 0}), Stop(2, kOff, {kBoot1, m + 10'000, w + 10'000, 0, 0}),
        Start(3, kOff, {kBoot2, 5'000, w - 3'600'000, 0, 0})},
       {{S, kOff, kBoot1, w, 10'000, 1, 2, 0, 0, 0, 0, ""},
        {G, kNone, kBoot1, w + 10'000, 0, 2, 3, 0, 0, 0, 0, "reboot,clock_backwards"},
        {S, kOff, kBoot2, w - 3'600'000, 0, 3, 3, 0, 0, 0, 0, ""}},
       true},
      {"BootChangeMidRunIsNotCounted",
       {Start(1, kInUse, {kBoot1, m, w, 0, 0}),
        Beat(2, kInUse, {kBoot1, m + 1'000, w + 1'000, 1'000, 1'000}),
        Beat(3, kInUse, {kBoot2, 500, w + 50'000, 1'000, 1'000}),
        Beat(4, kInUse, {kBoot2, 2'500, w + 52'000, 3'000, 3'000})},
       {{S, kInUse, kBoot1, w, 1'000, 1, 2, 0, 1'000, 0, 1'000, "segment_not_counted"},
        {S, kInUse, kBoot2, w + 50'000, 2'000, 3, 4, 1'000, 3'000, 1'000, 3'000,
         "segment_not_counted"}},
       true},
      {"BootChangeAtAStateChangeStartsTheNewStateUncounted",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}), Change(2, kInUse, {kBoot2, 100, w + 9'000, 0, 0}),
        Beat(3, kInUse, {kBoot2, 1'100, w + 10'000, 1'000, 1'000})},
       {{S, kIdle, kBoot1, w, 0, 1, 1, 0, 0, 0, 0, "segment_not_counted"},
        {S, kInUse, kBoot2, w + 9'000, 1'000, 2, 3, 0, 1'000, 0, 1'000, "segment_not_counted"}},
       true},
      {"WallClockJumpsNeitherCreateNorDestroyHours",
       {Start(1, kInUse, {kBoot1, m, w, 0, 0}),
        Beat(2, kInUse, {kBoot1, m + 60'000, w + 60'000 + 3'600'000, 60'000, 60'000}),
        Beat(3, kInUse, {kBoot1, m + 120'000, w + 120'000 - 3'600'000, 120'000, 120'000}),
        Beat(4, kInUse, {kBoot1, m + 180'000, kWall2038, 180'000, 180'000}),
        Stop(5, kInUse, {kBoot1, m + 240'000, kWall2038 + 60'000, 240'000, 240'000})},
       {{S, kInUse, kBoot1, w, 240'000, 1, 5, 0, 240'000, 0, 240'000, ""}},
       false},
      {"RunPlacedIn2038",
       {Start(1, kIdle, {kBoot1, m, kWall2038, 0, 0}),
        Stop(2, kIdle, {kBoot1, m + 3'600'000, kWall2038 + 3'600'000, 3'600'000, 0})},
       {{S, kIdle, kBoot1, kWall2038, 3'600'000, 1, 2, 0, 3'600'000, 0, 0, ""}},
       false},
      {"CounterMismatchIsFlagged",
       {Start(1, kInUse, {kBoot1, m, w, 0, 0}),
        // The agent metered 59 s in use over a 60 s IN_USE segment.
        Beat(2, kInUse, {kBoot1, m + 60'000, w + 60'000, 60'000, 59'000}),
        Change(3, kIdle, {kBoot1, m + 60'000, w + 60'000, 60'000, 59'000}),
        Beat(4, kIdle, {kBoot1, m + 70'000, w + 70'000, 70'000, 59'000})},
       {{S, kInUse, kBoot1, w, 60'000, 1, 3, 0, 60'000, 0, 59'000, "counter_mismatch"},
        {S, kIdle, kBoot1, w + 60'000, 10'000, 3, 4, 60'000, 70'000, 59'000, 59'000, ""}},
       true},
      {"CounterMismatchClearsWhenTheMeterCatchesUp",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}),
        Beat(2, kIdle, {kBoot1, m + 1'000, w + 1'000, 900, 0}),
        Beat(3, kIdle, {kBoot1, m + 2'000, w + 2'000, 2'000, 0})},
       {{S, kIdle, kBoot1, w, 2'000, 1, 3, 0, 2'000, 0, 0, ""}},
       true},
      {"MeterAdvancingDuringAGapIsAMismatch",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}),
        Beat(2, kIdle, {kBoot1, m + 1'000, w + 1'000, 1'000, 0}),
        // Crash without a reconstructed stop; the checkpoint held 4 s more than the last beat.
        Start(3, kIdle, {kBoot1, m + 10'000, w + 10'000, 5'000, 0})},
       {{S, kIdle, kBoot1, w, 1'000, 1, 2, 0, 1'000, 0, 0, "stopped_without_agent_stop"},
        {G, kNone, kBoot1, w + 1'000, 9'000, 2, 3, 1'000, 5'000, 0, 0, "counter_mismatch"},
        {S, kIdle, kBoot1, w + 10'000, 0, 3, 3, 5'000, 5'000, 0, 0, ""}},
       true},
      {"StateChangeWithoutRunStartOpensAnImplicitRun",
       {Change(1, kIdle, {kBoot1, m, w, 0, 0}),
        Beat(2, kIdle, {kBoot1, m + 2'000, w + 2'000, 2'000, 0})},
       {{S, kIdle, kBoot1, w, 2'000, 1, 2, 0, 2'000, 0, 0, "implicit_run_start"}},
       true},
      {"HeartbeatAfterAStopOpensAnImplicitRunAfterAGap",
       {Start(1, kOff, {kBoot1, m, w, 0, 0}), Stop(2, kOff, {kBoot1, m + 1'000, w + 1'000, 0, 0}),
        Beat(3, kOff, {kBoot1, m + 4'000, w + 4'000, 0, 0})},
       {{S, kOff, kBoot1, w, 1'000, 1, 2, 0, 0, 0, 0, ""},
        {G, kNone, kBoot1, w + 1'000, 3'000, 2, 3, 0, 0, 0, 0, ""},
        {S, kOff, kBoot1, w + 4'000, 0, 3, 3, 0, 0, 0, 0, "implicit_run_start"}},
       true},
      {"HeartbeatInAnotherStateIsFlagged",
       {Start(1, kIdle, {kBoot1, m, w, 0, 0}),
        Beat(2, kInUse, {kBoot1, m + 1'000, w + 1'000, 1'000, 0})},
       {{S, kIdle, kBoot1, w, 1'000, 1, 2, 0, 1'000, 0, 0, "state_mismatch"}},
       true},
      {"UnknownCountsAsNeitherPoweredNorInUse",
       {Start(1, kUnknown, {kBoot1, m, w, 0, 0}),
        Stop(2, kUnknown, {kBoot1, m + 30'000, w + 30'000, 0, 0})},
       {{S, kUnknown, kBoot1, w, 30'000, 1, 2, 0, 0, 0, 0, ""}},
       false},
      {"SessionMarksChangeNothing",
       {Start(1, kInUse, {kBoot1, m, w, 0, 0}), Mark(2, {kBoot1, m + 100, w + 100, 0, 0}),
        Beat(3, kInUse, {kBoot1, m + 1'000, w + 1'000, 1'000, 1'000}),
        Mark(4, {kBoot1, m + 1'100, w + 1'100, 0, 0})},
       {{S, kInUse, kBoot1, w, 1'000, 1, 3, 0, 1'000, 0, 1'000, ""}},
       true},
      {"StopWithoutARunClosesNothing",
       {Stop(1, kOff, {kBoot1, m, w, 0, 0}), Start(2, kIdle, {kBoot1, m + 1'000, w + 1'000, 0, 0})},
       {{S, kIdle, kBoot1, w + 1'000, 0, 2, 2, 0, 0, 0, 0, ""}},
       true},
  };
}

class DerivationCaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(DerivationCaseTest, ProducesTheHandWorkedIntervals) {
  const Case& c = GetParam();
  DerivationState state;
  IntervalChanges changes;
  for (const v1::Event& e : c.events) ApplyEvent(e, &state, &changes);
  std::vector<std::string> got;
  for (const Interval& iv : changes.rows()) got.push_back(Describe(iv));
  std::vector<std::string> want;
  for (const Row& r : c.expected) want.push_back(Describe(ToInterval(r)));
  EXPECT_EQ(got, want);
  EXPECT_EQ(state.run_open, c.run_open_after);
}

TEST_P(DerivationCaseTest, EventByEventBatchesEndInTheSameRowsAndState) {
  // The ingestor derives batch by batch, persisting the state in between: splitting the events
  // into one-event batches must not change the outcome.
  const Case& c = GetParam();
  DerivationState whole;
  IntervalChanges all;
  for (const v1::Event& e : c.events) ApplyEvent(e, &whole, &all);

  DerivationState stepped;
  std::vector<Interval> rows;
  for (const v1::Event& e : c.events) {
    DerivationState copy = stepped;  // as reloaded from the device row
    IntervalChanges changes;
    ApplyEvent(e, &copy, &changes);
    for (const Interval& iv : changes.rows()) {
      auto same = std::find_if(rows.begin(), rows.end(), [&](const Interval& r) {
        return r.kind == iv.kind && r.start_seq == iv.start_seq;
      });
      if (same == rows.end()) {
        rows.push_back(iv);
      } else {
        *same = iv;
      }
    }
    stepped = copy;
  }
  EXPECT_EQ(rows, all.rows());
  EXPECT_EQ(stepped, whole);
}

INSTANTIATE_TEST_SUITE_P(Cases, DerivationCaseTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

TEST(DerivationTest, HoursOfARunAreTheSumOfItsSegments) {
  // 1 h IDLE, 2 h IN_USE, 30 min FAULT, heartbeats every 10 minutes: 3.5 h powered, 2 h in use.
  DerivationState state;
  IntervalChanges changes;
  uint64_t seq = 0;
  uint64_t powered = 0;
  uint64_t in_use = 0;
  int64_t t = 0;
  ApplyEvent(Start(++seq, kIdle, {kBoot1, kMono, kWall, 0, 0}), &state, &changes);
  const auto run = [&](v1::InstrumentState s, int minutes) {
    for (int i = 0; i < minutes / 10; ++i) {
      t += 600'000;
      powered += 600'000;
      if (s == kInUse) in_use += 600'000;
      ApplyEvent(Beat(++seq, s, {kBoot1, kMono + t, kWall + t, powered, in_use}), &state, &changes);
    }
  };
  run(kIdle, 60);
  ApplyEvent(Change(++seq, kInUse, {kBoot1, kMono + t, kWall + t, powered, in_use}), &state,
             &changes);
  run(kInUse, 120);
  ApplyEvent(
      Change(++seq, v1::INSTRUMENT_STATE_FAULT, {kBoot1, kMono + t, kWall + t, powered, in_use}),
      &state, &changes);
  run(v1::INSTRUMENT_STATE_FAULT, 30);
  ApplyEvent(
      Stop(++seq, v1::INSTRUMENT_STATE_FAULT, {kBoot1, kMono + t, kWall + t, powered, in_use}),
      &state, &changes);
  int64_t powered_ms = 0;
  int64_t in_use_ms = 0;
  for (const Interval& iv : changes.rows()) {
    EXPECT_EQ(iv.flags, 0u) << Describe(iv);
    if (protocol::IsPowered(iv.state)) powered_ms += iv.duration_ms;
    if (protocol::IsInUse(iv.state)) in_use_ms += iv.duration_ms;
  }
  EXPECT_EQ(changes.rows().size(), 3u);
  EXPECT_EQ(powered_ms, 3'600'000 * 7 / 2);
  EXPECT_EQ(in_use_ms, 2 * 3'600'000);
  EXPECT_EQ(static_cast<uint64_t>(powered_ms), powered);
}

TEST(DerivationTest, FlagNamesRoundTripAndUnknownNamesAreCorruption) {
  const uint32_t all = kFlagStoppedWithoutAgentStop | kFlagReboot | kFlagImplicitRunStart |
                       kFlagStateMismatch | kFlagSegmentNotCounted | kFlagCounterMismatch |
                       kFlagUncleanStop | kFlagClockBackwards;
  Result<uint32_t> parsed = FlagsFromString(FlagsToString(all));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, all);
  EXPECT_EQ(FlagsToString(0), "");
  EXPECT_EQ(*FlagsFromString(""), 0u);
  EXPECT_EQ(FlagsFromString("reboot,bogus").status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace instrumeter::hub

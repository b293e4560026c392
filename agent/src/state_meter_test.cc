#include "state_meter.h"

#include <gtest/gtest.h>

namespace instrumeter::agent {
namespace {

constexpr auto kOff = v1::INSTRUMENT_STATE_OFF;
constexpr auto kIdle = v1::INSTRUMENT_STATE_IDLE;
constexpr auto kInUse = v1::INSTRUMENT_STATE_IN_USE;
constexpr auto kFault = v1::INSTRUMENT_STATE_FAULT;
constexpr auto kUnknown = v1::INSTRUMENT_STATE_UNKNOWN;

// Drives a meter with a FakeClock: Step(ms, x) advances the clock, then observes x.
class MeterTest : public ::testing::Test {
 protected:
  std::optional<StateChangeRecord> Step(int64_t ms, v1::InstrumentState x) {
    clock_.Advance(ms);
    return meter_->Observe(clock_.Now(), x);
  }
  int64_t Mono() const { return clock_.MonotonicMs(); }
  void Expect(uint64_t powered_ms, uint64_t in_use_ms) {
    EXPECT_EQ(meter_->counters(), (Counters{powered_ms, in_use_ms}))
        << "powered " << meter_->counters().powered_ms << " in use "
        << meter_->counters().in_use_ms;
  }

  FakeClock clock_{10'000};
  std::unique_ptr<StateMeter> meter_ = std::make_unique<StateMeter>(0);
};

TEST_F(MeterTest, CountsEachStateTheWayItCounts) {
  auto first = Step(0, kOff);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->run_start);
  EXPECT_EQ(first->state, kOff);
  EXPECT_EQ(first->previous_state, v1::INSTRUMENT_STATE_UNSPECIFIED);
  EXPECT_EQ(first->at.monotonic_ms, 10'000);
  EXPECT_FALSE(Step(1000, kOff));
  Expect(0, 0);
  auto idle = Step(1000, kIdle);  // t = 12000
  ASSERT_TRUE(idle);
  EXPECT_FALSE(idle->run_start);
  EXPECT_EQ(idle->at.monotonic_ms, 12'000);
  EXPECT_EQ(idle->previous_state, kOff);
  EXPECT_EQ(idle->counters, (Counters{0, 0}));
  auto in_use = Step(1500, kInUse);  // the 1.5 s before it were IDLE
  ASSERT_TRUE(in_use);
  EXPECT_EQ(in_use->counters, (Counters{1500, 0}));
  EXPECT_FALSE(Step(2500, kInUse));
  Expect(4000, 2500);
  auto unknown = Step(1000, kUnknown);
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->counters, (Counters{5000, 3500}));
  EXPECT_FALSE(Step(1000, kUnknown));  // UNKNOWN counts as neither
  Expect(5000, 3500);
  ASSERT_TRUE(Step(500, kFault));
  Expect(5000, 3500);
  EXPECT_FALSE(Step(500, kFault));  // FAULT is powered, not in use
  Expect(5500, 3500);
  EXPECT_EQ(meter_->horizon().monotonic_ms, Mono());
}

TEST_F(MeterTest, DebounceRejectsFlickerAndBackdatesConfirmedChanges) {
  meter_ = std::make_unique<StateMeter>(3000);
  ASSERT_TRUE(Step(0, kIdle));      // t=10000, S=IDLE, run start without debounce
  EXPECT_FALSE(Step(1000, kIdle));  // t=11000
  Expect(1000, 0);
  EXPECT_FALSE(Step(1000, kInUse));  // t=12000: candidate, H stays at 11000
  EXPECT_EQ(meter_->horizon().monotonic_ms, 11'000);
  Expect(1000, 0);
  EXPECT_FALSE(Step(1000, kIdle));  // t=13000: flicker over, counted as IDLE
  Expect(3000, 0);
  EXPECT_EQ(meter_->horizon().monotonic_ms, 13'000);
  EXPECT_FALSE(Step(1000, kInUse));  // t=14000: candidate IN_USE
  EXPECT_FALSE(Step(1000, kOff));    // t=15000: other candidate: IN_USE rejected
  Expect(5000, 0);                   // 13000..15000 counted as IDLE
  EXPECT_EQ(meter_->horizon().monotonic_ms, 15'000);
  EXPECT_FALSE(Step(1000, kOff));  // t=16000: 1 s of 3
  EXPECT_EQ(meter_->state(), kIdle);
  auto off = Step(2000, kOff);  // t=18000: 3 s since 15000 -> confirmed
  ASSERT_TRUE(off);
  EXPECT_EQ(off->at.monotonic_ms, 15'000) << "dated back to the first observation";
  EXPECT_EQ(off->at.wall_unix_ms, 1'767'225'600'000 + 5'000);
  EXPECT_EQ(off->previous_state, kIdle);
  EXPECT_EQ(off->counters, (Counters{5000, 0}));
  EXPECT_EQ(meter_->state(), kOff);
  EXPECT_EQ(meter_->since().monotonic_ms, 15'000);
  EXPECT_EQ(meter_->horizon().monotonic_ms, 18'000);
  Expect(5000, 0);
  EXPECT_FALSE(Step(1000, kInUse));  // t=19000
  EXPECT_FALSE(Step(1000, kInUse));  // t=20000
  auto use = Step(2000, kInUse);     // t=22000
  ASSERT_TRUE(use);
  EXPECT_EQ(use->at.monotonic_ms, 19'000);
  EXPECT_EQ(use->counters, (Counters{5000, 0}));
  Expect(8000, 3000);  // 19000..22000 in use, from the backdated start
}

TEST_F(MeterTest, CountersContinueAcrossRestarts) {
  ASSERT_TRUE(Step(0, kInUse));
  EXPECT_FALSE(Step(60'000, kInUse));
  Expect(60'000, 60'000);
  const Counters saved = meter_->counters();

  // The next run restores what the last one ended with; the gap between runs is not counted.
  meter_ = std::make_unique<StateMeter>(0);
  meter_->Restore(saved, kInUse);
  EXPECT_EQ(meter_->state(), kInUse);
  auto start = Step(300'000, kIdle);
  ASSERT_TRUE(start);
  EXPECT_TRUE(start->run_start);
  EXPECT_EQ(start->previous_state, kInUse);
  EXPECT_EQ(start->counters, saved);
  EXPECT_FALSE(Step(1000, kIdle));
  Expect(61'000, 60'000);
}

TEST_F(MeterTest, WallClockJumpsChangeNothing) {
  ASSERT_TRUE(Step(0, kIdle));
  clock_.JumpWall(-3'600'000);  // NTP steps the clock back an hour
  EXPECT_FALSE(Step(1000, kIdle));
  clock_.JumpWall(+86'400'000);  // and a day forward
  EXPECT_FALSE(Step(1000, kIdle));
  Expect(2000, 0);
  auto use = Step(1000, kInUse);
  ASSERT_TRUE(use);
  EXPECT_EQ(use->at.wall_unix_ms, clock_.WallUnixMs());
  EXPECT_EQ(use->counters, (Counters{3000, 0}));
}

TEST_F(MeterTest, NothingIsCountedAcrossADifferentBoot) {
  ASSERT_TRUE(Step(0, kInUse));
  EXPECT_FALSE(Step(1000, kInUse));
  clock_.Reboot("00000000-0000-0000-0000-000000000002", 50);
  EXPECT_FALSE(Step(1000, kInUse));  // a different monotonic clock: no interval
  Expect(1000, 1000);
  EXPECT_FALSE(Step(1000, kInUse));
  Expect(2000, 2000);
}

}  // namespace
}  // namespace instrumeter::agent

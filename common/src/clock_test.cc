#include "common/clock.h"

#include <gtest/gtest.h>

namespace instrumeter {
namespace {

TEST(ClockTest, SystemClockHasBootIdAndMovesForward) {
  SystemClock clock;
  EXPECT_EQ(clock.BootId().size(), 36u) << clock.BootId();
  const int64_t a = clock.MonotonicMs();
  const int64_t b = clock.MonotonicMs();
  EXPECT_LE(a, b);
  EXPECT_GT(clock.WallUnixMs(), 1'700'000'000'000);
}

TEST(ClockTest, FakeClockWallJumpLeavesMonotonicAlone) {
  FakeClock clock(5000, 1'000'000);
  clock.Advance(250);
  clock.JumpWall(-3'600'000);
  EXPECT_EQ(clock.MonotonicMs(), 5250);
  EXPECT_EQ(clock.WallUnixMs(), 1'000'250 - 3'600'000);
  clock.Reboot("b2", 10);
  EXPECT_EQ(clock.Now().boot_id, "b2");
  EXPECT_EQ(clock.Now().monotonic_ms, 10);
}

TEST(TimeFormatTest, RoundTripsAndHonoursOffsets) {
  int64_t ms = 0;
  ASSERT_TRUE(ParseUtc("2026-11-29T08:00:00+08:00", &ms));
  EXPECT_EQ(FormatUtc(ms), "2026-11-29T00:00:00.000Z");
  ASSERT_TRUE(ParseUtc("2026-11-29T00:00:00.250Z", &ms));
  EXPECT_EQ(ms % 1000, 250);
  ASSERT_TRUE(ParseUtc("1970-01-02", &ms));
  EXPECT_EQ(ms, 86'400'000);
  ASSERT_TRUE(ParseUtc("2038-01-19T03:14:08Z", &ms));
  EXPECT_EQ(ms, 2'147'483'648'000) << "past the 32-bit time_t limit";
  EXPECT_FALSE(ParseUtc("2026-11-29T08:00:00", &ms)) << "a time without an offset is ambiguous";
  EXPECT_FALSE(ParseUtc("2026-13-01", &ms));
  EXPECT_FALSE(ParseUtc("yesterday", &ms));
}

}  // namespace
}  // namespace instrumeter

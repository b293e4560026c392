#include "hub/clock_skew.h"

#include <gtest/gtest.h>

namespace instrumeter::hub {
namespace {

// An observation point (it carries the meter) sent at agent wall time `wall`, received at `recv`.
EventRow Point(uint64_t seq, int64_t wall, int64_t recv) {
  EventRow row;
  row.seq = seq;
  row.kind = 11;
  row.wall_unix_ms = wall;
  row.received_unix_ms = recv;
  row.powered_ms = 0;
  row.in_use_ms = 0;
  return row;
}

EventRow SessionMark(uint64_t seq, int64_t wall, int64_t recv) {
  EventRow row = Point(seq, wall, recv);
  row.kind = 12;
  row.powered_ms.reset();
  row.in_use_ms.reset();
  return row;
}

TEST(ClockSkewTest, InStepClocksAreNotFlagged) {
  std::vector<EventRow> rows;
  for (uint64_t i = 1; i <= 8; ++i) rows.push_back(Point(i, 1000 * i, 1000 * i + 30));
  auto e = EstimateClockSkew(rows);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->agent_ahead_ms, -30);
  EXPECT_FALSE(e->skewed);
  EXPECT_EQ(e->through_seq, 8u);
  EXPECT_EQ(e->points, 5u);
}

TEST(ClockSkewTest, FollowsAStepOnceMostNewestPointsCameAfterIt) {
  constexpr int64_t kHour = 3'600'000;
  std::vector<EventRow> rows;
  for (uint64_t i = 1; i <= 10; ++i) rows.push_back(Point(i, 1000 * i, 1000 * i + 20));
  for (uint64_t i = 11; i <= 13; ++i) rows.push_back(Point(i, 1000 * i + kHour, 1000 * i + 20));
  auto e = EstimateClockSkew(rows);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->agent_ahead_ms, kHour - 20);
  EXPECT_TRUE(e->skewed);
  // Behind by an hour: flagged the other way.
  for (EventRow& r : rows) r.wall_unix_ms = r.received_unix_ms - kHour;
  e = EstimateClockSkew(rows);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->agent_ahead_ms, -kHour);
  EXPECT_TRUE(e->skewed);
}

TEST(ClockSkewTest, SessionMarksAreNotPointsAndNoPointMeansNoEstimate) {
  EXPECT_FALSE(EstimateClockSkew({SessionMark(1, 0, 10'000'000)}).has_value());
  auto e = EstimateClockSkew({Point(1, 5000, 5010), SessionMark(2, 0, 10'000'000)});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->agent_ahead_ms, -10);
  EXPECT_EQ(e->through_seq, 1u);
}

TEST(ClockSkewTest, ThresholdIsConfigurable) {
  auto e = EstimateClockSkew({Point(1, 13'000, 10'000)}, {.threshold_ms = 2000});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->agent_ahead_ms, 3000);
  EXPECT_TRUE(e->skewed);
  EXPECT_FALSE(EstimateClockSkew({Point(1, 13'000, 10'000)})->skewed);
}

}  // namespace
}  // namespace instrumeter::hub

#include "common/backoff.h"

#include <gtest/gtest.h>

namespace instrumeter {
namespace {

TEST(BackoffTest, GrowsToTheCapWithJitterAndResets) {
  Backoff backoff(100, 1000, /*seed=*/42);
  int64_t largest = 0;
  for (int i = 0; i < 50; ++i) {
    const int64_t d = backoff.NextDelayMs();
    EXPECT_GE(d, 50);
    EXPECT_LE(d, 1000);
    largest = std::max(largest, d);
  }
  EXPECT_GT(largest, 500) << "after many failures delays approach the cap";
  backoff.Reset();
  EXPECT_LE(backoff.NextDelayMs(), 100) << "the first retry after a reset is short";
}

TEST(BackoffTest, TwoSeedsDoNotMarchInLockstep) {
  Backoff a(1000, 60000, 1), b(1000, 60000, 2);
  int same = 0;
  for (int i = 0; i < 20; ++i) same += a.NextDelayMs() == b.NextDelayMs();
  EXPECT_LT(same, 3);
}

}  // namespace
}  // namespace instrumeter

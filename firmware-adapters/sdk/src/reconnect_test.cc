#include "adapters/reconnect.h"

#include <gtest/gtest.h>

namespace instrumeter::adapters {
namespace {

TEST(ReconnectTest, RefusesAtOnceUntilTheDelayPassesAndDelaysGrow) {
  FakeClock clock;
  Reconnect reconnect(&clock, 1000, 8000);
  EXPECT_TRUE(reconnect.Ready().ok());

  Status failed = reconnect.Failed("connect: Connection refused");
  ASSERT_EQ(failed.code(), Status::Code::kUnavailable);
  EXPECT_EQ(failed.message().rfind("retrying in ", 0), 0u) << failed.message();
  EXPECT_NE(failed.message().find(" ms: connect: Connection refused"), std::string::npos);
  EXPECT_FALSE(reconnect.Ready().ok());
  clock.Advance(999);
  // The first delay is at most the minimum (1000 ms).
  clock.Advance(1);
  EXPECT_TRUE(reconnect.Ready().ok());

  // Failing again and again: the delay grows to the cap, never beyond it.
  int64_t longest = 0;
  for (int i = 0; i < 8; ++i) {
    reconnect.Failed("again");
    int64_t waited = 0;
    while (!reconnect.Ready().ok()) {
      clock.Advance(100);
      waited += 100;
    }
    longest = std::max(longest, waited);
    EXPECT_LE(waited, 8000);
  }
  EXPECT_GT(longest, 1000) << "the delay grows";

  reconnect.Succeeded();
  EXPECT_TRUE(reconnect.Ready().ok());
  reconnect.Failed("once more");
  int64_t waited = 0;
  while (!reconnect.Ready().ok()) {
    clock.Advance(50);
    waited += 50;
  }
  EXPECT_LE(waited, 1000) << "after a success the delay starts from the minimum again";
}

}  // namespace
}  // namespace instrumeter::adapters

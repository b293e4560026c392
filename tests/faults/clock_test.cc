// Fault 6 of issue 6: the agent's wall clock stepped by +1 h, by -1 h and to the year 2038 (past
// 2^31 seconds) while it runs, through Debian's libfaketime (LD_PRELOAD, the offset read from a
// file the test rewrites; CLOCK_MONOTONIC left alone). Hours are measured on the monotonic clock,
// so none may be created or destroyed; the hub must flag the skew while it lasts.
#include <gtest/gtest.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "fault_scale.h"
#include "hub/clock_skew.h"
#include "hub/sqlite_store.h"
#include "stack.h"
#include "verify.h"

namespace instrumeter::testing {
namespace {

using std::chrono::seconds;

constexpr const char* kFakeTimeLib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
constexpr int64_t kHourMs = 3'600'000;

// The agent's clock offset as the hub estimates it from its newest points.
std::optional<hub::ClockSkewEstimate> HubSkew(const Stack& s, const std::string& id) {
  auto store = hub::OpenSqliteStore({.path = s.hub_db()});
  if (!store.ok()) return std::nullopt;
  auto estimate = hub::EstimateClockSkew(store->get(), id);
  return estimate.ok() ? *estimate : std::nullopt;
}

TEST(FAULT_SUITE, AgentWallClockSteppedHoursAndTo2038NoHoursCreatedOrDestroyedSkewFlagged) {
  if (!std::filesystem::exists(kFakeTimeLib)) GTEST_SKIP() << "faketime is not installed";
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  const std::string offset_file = s.dir() + "/faketime-offset";
  WriteFile(offset_file, "+0\n");
  std::string asan = std::getenv("ASAN_OPTIONS") != nullptr ? std::getenv("ASAN_OPTIONS") : "";
  // An ASan build wants its runtime first; libfaketime before it is harmless here.
  asan += std::string(asan.empty() ? "" : ":") + "verify_asan_link_order=0";
  const std::string id = "clock-1";
  ASSERT_OK(s.AddAgent(
      id,
      {.seed = 6001,
       .env = {std::string("LD_PRELOAD=") + kFakeTimeLib, "FAKETIME_TIMESTAMP_FILE=" + offset_file,
               "FAKETIME_CACHE_DURATION=1", "DONT_FAKE_MONOTONIC=1", "ASAN_OPTIONS=" + asan}}));
  ASSERT_OK(s.AddAgent("clock-2", {.seed = 6002}));  // beside it, with the true clock
  std::this_thread::sleep_for(seconds(6));
  auto skew = HubSkew(s, id);
  ASSERT_TRUE(skew.has_value());
  EXPECT_FALSE(skew->skewed) << "offset " << skew->agent_ahead_ms << " ms before any step";

  auto step = [&](int64_t offset_s, const char* what) {
    WriteFile(offset_file, (offset_s >= 0 ? "+" : "") + std::to_string(offset_s) + "\n");
    std::this_thread::sleep_for(seconds(8));
    auto now = HubSkew(s, id);
    ASSERT_TRUE(now.has_value()) << what;
    EXPECT_TRUE(now->skewed) << what << ": the hub did not flag the skew";
    EXPECT_NEAR(now->agent_ahead_ms, offset_s * 1000, 3000) << what;
    std::printf("[figures] agent clock %s: hub estimates it %lld ms ahead\n", what,
                static_cast<long long>(now->agent_ahead_ms));
  };
  step(kHourMs / 1000, "+1 h");
  step(-kHourMs / 1000, "-1 h");
  // A few seconds before 2038-01-19T03:14:08Z, so that the run crosses 2^31 seconds.
  const int64_t y2038_s = 2'147'483'648 - 4;
  step(y2038_s - static_cast<int64_t>(::time(nullptr)), "2038-01-19T03:14:04Z and on");
  WriteFile(offset_file, "+0\n");
  std::this_thread::sleep_for(seconds(8));
  skew = HubSkew(s, id);
  ASSERT_TRUE(skew.has_value());
  EXPECT_FALSE(skew->skewed) << "still flagged after the clock came back: " << skew->agent_ahead_ms;
  StopAndVerify(s);
}

}  // namespace
}  // namespace instrumeter::testing
